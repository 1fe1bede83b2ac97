package kakaogames

import (
	"encoding/json"
	"fmt"
	"playerguard/validator"
	"strings"
	"testing"
)

const lockoutBody = `{"desc":"playerId There is a valid lockout. (463.-10103)","lockout":{"kgAppId":"909428","idType":"playerId","id":"123456789123456","certMethod":"phone,card","reason":"","message":"","notificationOption":"alimtalk","memo":"","lockoutCode":"","lockoutSection":"mobile","regTime":1680773813000},"player":{"kgAppId":"909428","playerId":"123456789123456","status":"normal"},"token":{"onetimeToken":"1IB+jHhULoYJASZR18QUTQw0pDBZVjvOith9KD8miWQNsOgw4GjCGTTJhsWNUJHcWrtHJfazZ7lmLlyx"},"redirectUri":{"target":"lockout","lockout":"https://member.kakaogames.com/lockout?token=1IB%2BjHhULoYJASZR18QUTQw0pDBZVjvOith9KD8miWQNsOgw4GjCGTTJhsWNUJHcWrtHJfazZ7lmLlyx"}}`

func playerBody(id, status string) string {
	return fmt.Sprintf(`{"player":{"kgAppId":"909428","playerId":%q,"status":%q,"nickname":"n","data":{}}}`, id, status)
}

// TestDecide covers every row of the decision table, by status.
func TestDecide(t *testing.T) {
	allow := []string{"normal"}
	f := func(name string, status int, body, claimed string, want validator.Verdict, reason validator.Reason, failure bool, player string) {
		t.Helper()
		r := Decide(status, []byte(body), "application/json", claimed, allow)
		if r.Verdict != want || r.Reason != reason || r.Failure != failure || r.PlayerID != player {
			t.Errorf("%s: Decide(%d) = %v/%v failure=%v player=%q, want %v/%v failure=%v player=%q",
				name, status, r.Verdict, r.Reason, r.Failure, r.PlayerID, want, reason, failure, player)
		}
	}
	// 200 rows.
	f("normal", 200, playerBody("p1", "normal"), "", validator.Allow, validator.ReasonOK, false, "p1")
	f("normal, claimed", 200, playerBody("p1", "normal"), "p1", validator.Allow, validator.ReasonOK, false, "p1")
	f("numeric playerId", 200, `{"player":{"playerId":123,"status":"normal"}}`, "123", validator.Allow, validator.ReasonOK, false, "123")
	f("extra fields", 200, `{"player":{"playerId":"p1","status":"normal","x":[1,{}]},"y":null}`, "", validator.Allow, validator.ReasonOK, false, "p1")
	f("other status", 200, playerBody("p1", "delete"), "", validator.Kick, ReasonPlayerStatus, false, "p1")
	f("mismatch", 200, playerBody("p2", "normal"), "p1", validator.Kick, validator.ReasonPlayerMismatch, false, "p1")
	f("mismatch beats status", 200, playerBody("p2", "delete"), "p1", validator.Kick, validator.ReasonPlayerMismatch, false, "p1")
	for name, body := range map[string]string{
		"empty body":       "",
		"not JSON":         "<html>ok</html>",
		"truncated":        `{"player":{"playerId":"p1","status":"nor`,
		"no player":        `{"desc":"ok"}`,
		"null player":      `{"player":null}`,
		"player not obj":   `{"player":"p1"}`,
		"no status":        `{"player":{"playerId":"p1"}}`,
		"null status":      `{"player":{"playerId":"p1","status":null}}`,
		"status not str":   `{"player":{"playerId":"p1","status":1}}`,
		"no playerId":      `{"player":{"status":"normal"}}`,
		"empty playerId":   `{"player":{"playerId":"","status":"normal"}}`,
		"bool playerId":    `{"player":{"playerId":true,"status":"normal"}}`,
		"array":            `[{"player":{"playerId":"p1","status":"normal"}}]`,
		"trailing garbage": playerBody("p1", "normal") + "x",
	} {
		f("200 "+name, 200, body, "", validator.Unavailable, validator.ReasonUpstreamUnavailable, true, "")
		f("200 "+name+", claimed", 200, body, "p1", validator.Unavailable, validator.ReasonUpstreamUnavailable, true, "p1")
	}

	// Kicking 4xx rows, with the player named by the claim or the body.
	f("401", 401, `{"desc":"Token is invalid. (401.-29401)"}`, "", validator.Kick, validator.ReasonInvalidToken, false, "")
	f("401 claimed", 401, `{"desc":"Token is invalid. (401.-29401)"}`, "p1", validator.Kick, validator.ReasonInvalidToken, false, "p1")
	f("406", 406, `{"desc":"There is no player. (406.-10005)"}`, "", validator.Kick, ReasonNotAcceptable, false, "")
	f("462", 462, `{"desc":"Pending unregistration. (462.-10101)","player":{"playerId":"p9","status":"delete"}}`, "", validator.Kick, ReasonUnregistering, false, "p9")
	f("463", 463, lockoutBody, "", validator.Kick, ReasonLockout, false, "123456789123456")
	f("463 lockout only", 463, `{"lockout":{"idType":"playerId","id":"p7"}}`, "", validator.Kick, ReasonLockout, false, "p7")
	f("463 lockout other idType", 463, `{"lockout":{"idType":"deviceId","id":"d7"}}`, "", validator.Kick, ReasonLockout, false, "")
	f("463 claimed", 463, lockoutBody, "p1", validator.Kick, ReasonLockout, false, "p1")
	f("464", 464, `{"desc":"Sanctioned. (464.-10102)","player":{"playerId":"p3","status":"normal"}}`, "", validator.Kick, ReasonSanction, false, "p3")
	// The custom range is Kakao's whatever the body (but 473).
	for _, s := range []int{460, 465, 470, 472, 474, 479} {
		f(fmt.Sprint("custom 4xx ", s), s, `{"desc":"Abnormal. (465.-1)"}`, "", validator.Kick, ReasonAbnormalState, false, "")
		f(fmt.Sprint("custom 4xx ", s, ", JSON without desc"), s, `{"player":null}`, "", validator.Kick, ReasonAbnormalState, false, "")
		// A readable page that is not JSON is not Kakao's (a proxy's).
		f(fmt.Sprint("custom 4xx ", s, ", html"), s, "<html>no</html>", "", validator.Unavailable, validator.ReasonUpstreamUnavailable, true, "")
		f(fmt.Sprint("custom 4xx ", s, ", no body"), s, "", "p1", validator.Kick, ReasonAbnormalState, false, "p1")
	}
	f("401 html", 401, "<html>401 Authorization Required</html>", "", validator.Unavailable, validator.ReasonUpstreamUnavailable, true, "")
	f("401 no body", 401, "", "", validator.Kick, validator.ReasonInvalidToken, false, "")
	// Kakao refusing playerguard's own credentials kicks nobody.
	f("401 app authentication failed", 401, `{"desc":"App authentication failed. (401.-29001)"}`, "p1", validator.Unavailable, validator.ReasonUpstreamUnavailable, false, "p1")
	f("406 no body", 406, "", "", validator.Kick, ReasonNotAcceptable, false, "")
	// Any other 4xx is a verdict only with a Kakao error body of its own
	// status; else it is something in front of Kakao (a wrong path, a WAF).
	// A 404 never is: it says the path does not exist (a wrong -upstream).
	f("404, Kakao body", 404, `{"desc":"Not found. (404.0)"}`, "p1", validator.Unavailable, validator.ReasonUpstreamUnavailable, true, "p1")
	for _, s := range []int{402, 403, 409, 410, 418, 422, 451, 480, 499} {
		kakao := fmt.Sprintf(`{"desc":"Abnormal. (%d.-1)"}`, s)
		f(fmt.Sprint("other 4xx ", s, ", Kakao body"), s, kakao, "", validator.Kick, ReasonAbnormalState, false, "")
		f(fmt.Sprint("other 4xx ", s, ", other status in desc"), s, `{"desc":"Abnormal. (465.-1)"}`, "p1", validator.Unavailable, validator.ReasonUpstreamUnavailable, true, "p1")
		f(fmt.Sprint("other 4xx ", s, ", desc without code"), s, `{"desc":"Forbidden"}`, "", validator.Unavailable, validator.ReasonUpstreamUnavailable, true, "")
		f(fmt.Sprint("other 4xx ", s, ", html"), s, "<html>404 Not Found</html>", "", validator.Unavailable, validator.ReasonUpstreamUnavailable, true, "")
		f(fmt.Sprint("other 4xx ", s, ", no body"), s, "", "", validator.Unavailable, validator.ReasonUpstreamUnavailable, true, "")
		f(fmt.Sprint("other 4xx ", s, ", duplicate desc"), s, kakao[:len(kakao)-1]+`,"desc":"x"}`, "", validator.Unavailable, validator.ReasonUpstreamUnavailable, true, "")
	}

	// Never kicks: our own malformed request, and every outage.
	f("400", 400, `{"desc":"Bad request. (400.-1)"}`, "p1", validator.Unavailable, validator.ReasonUpstreamUnavailable, false, "p1")
	// Statuses about our request's shape, not the player: like 400.
	for _, s := range []int{405, 407, 411, 413, 414, 415, 421, 425, 426, 428, 431} {
		f(fmt.Sprint("request shape ", s), s, "<html>Request Header Fields Too Large</html>", "p1", validator.Unavailable, validator.ReasonUpstreamUnavailable, false, "p1")
	}
	f("408", 408, "", "", validator.Unavailable, validator.ReasonUpstreamUnavailable, true, "")
	f("429", 429, `{"desc":"Too many. (429.-1)"}`, "", validator.Unavailable, validator.ReasonUpstreamUnavailable, true, "")
	f("473", 473, `{"desc":"Maintenance. (473.-1)"}`, "", validator.Unavailable, validator.ReasonUpstreamMaintenance, true, "")
	for _, s := range []int{500, 501, 502, 503, 504, 599} {
		f(fmt.Sprint(s), s, `{"desc":"Internal error. (500.-1)"}`, "p1", validator.Unavailable, validator.ReasonUpstreamUnavailable, true, "p1")
	}
	for _, s := range []int{100, 201, 204, 301, 302, 304, 307} {
		f(fmt.Sprint(s), s, playerBody("p1", "normal"), "", validator.Unavailable, validator.ReasonUpstreamUnavailable, true, "")
	}
}

func TestDecideKeepsRawFields(t *testing.T) {
	r := Decide(463, []byte(lockoutBody), "", "", []string{"normal"})
	if r.Code != -10103 || !r.HasCode || r.Desc != "playerId There is a valid lockout. (463.-10103)" {
		t.Errorf("code/desc = %d %v %q", r.Code, r.HasCode, r.Desc)
	}
	for name, want := range map[string]string{
		"lockout":     `{"kgAppId":"909428","idType":"playerId","id":"123456789123456","certMethod":"phone,card","reason":"","message":"","notificationOption":"alimtalk","memo":"","lockoutCode":"","lockoutSection":"mobile","regTime":1680773813000}`,
		"token":       `{"onetimeToken":"1IB+jHhULoYJASZR18QUTQw0pDBZVjvOith9KD8miWQNsOgw4GjCGTTJhsWNUJHcWrtHJfazZ7lmLlyx"}`,
		"redirectUri": `{"target":"lockout","lockout":"https://member.kakaogames.com/lockout?token=1IB%2BjHhULoYJASZR18QUTQw0pDBZVjvOith9KD8miWQNsOgw4GjCGTTJhsWNUJHcWrtHJfazZ7lmLlyx"}`,
		"player":      `{"kgAppId":"909428","playerId":"123456789123456","status":"normal"}`,
	} {
		got := map[string][]byte{"lockout": Lockout(r), "token": Token(r), "redirectUri": RedirectURI(r), "player": Player(r)}[name]
		if string(got) != want {
			t.Errorf("%s = %s, want %s", name, got, want)
		}
	}
	if r := Decide(401, []byte(`{"desc":"x","player":null}`), "", "", nil); Player(r) != nil {
		t.Errorf("null player kept as %q", Player(r))
	}
}

func TestDecideAllowList(t *testing.T) {
	r := Decide(200, []byte(playerBody("p1", "vip")), "", "", []string{"normal", "vip"})
	if r.Verdict != validator.Allow {
		t.Fatalf("status in custom allow-list: %v/%v", r.Verdict, r.Reason)
	}
	r = Decide(200, []byte(playerBody("p1", "normal")), "", "", []string{"vip"})
	if r.Verdict != validator.Kick || r.Reason != ReasonPlayerStatus {
		t.Fatalf("normal outside allow-list: %v/%v", r.Verdict, r.Reason)
	}
}

func TestParseSubCode(t *testing.T) {
	f := func(desc string, code int, ok bool) {
		t.Helper()
		_, c, k := parseSubCode(desc)
		if c != code || k != ok {
			t.Errorf("parseSubCode(%q) = %d, %v; want %d, %v", desc, c, k, code, ok)
		}
	}
	if s, c, ok := parseSubCode("Token is invalid. (401.-29401)"); s != 401 || c != -29401 || !ok {
		t.Errorf("status, code = %d, %d, %v; want 401, -29401", s, c, ok)
	}
	f("Token is invalid. (401.-29401)", -29401, true)
	f("playerId There is a valid lockout. (463.-10103)", -10103, true)
	f("There is no player. (406.-10005)  ", -10005, true)
	f("x (500.1)", 1, true)
	f("(401.-29401)", -29401, true)
	f("a (b) (462.-10101)", -10101, true)
	f("", 0, false)
	f("no code", 0, false)
	f("(401)", 0, false)
	f("(.-1)", 0, false)
	f("(401.)", 0, false)
	f("(401.-)", 0, false)
	f("(401.+5)", 0, false)
	f("(4x1.-5)", 0, false)
	f("(401.-5x)", 0, false)
	f("(401.-29401) trailing", 0, false)
	f(")", 0, false)
	f("(401.99999999999999999999)", 0, false)
}

func FuzzParseSubCode(f *testing.F) {
	for _, s := range []string{"Token is invalid. (401.-29401)", "(463.-10103)", "()", "(.)", "((1.2))", "(1.-)"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		status, code, ok := parseSubCode(s)
		if !ok && (code != 0 || status != 0) {
			t.Fatalf("code %d without ok", code)
		}
		trimmed := strings.TrimRight(s, " \t\r\n")
		if ok && (!strings.HasSuffix(trimmed, ")") || !strings.Contains(trimmed, ".")) {
			t.Fatalf("accepted %q", s)
		}
	})
}

func FuzzDecide(f *testing.F) {
	f.Add(200, []byte(playerBody("p1", "normal")), "p1")
	f.Add(200, []byte(`{"player":{"playerId":1e3,"status":"normal"}}`), "")
	f.Add(463, []byte(lockoutBody), "")
	f.Add(401, []byte(`{"desc":"Token is invalid. (401.-29401)"}`), "p1")
	f.Add(500, []byte(`<html>`), "")
	f.Fuzz(func(t *testing.T, status int, body []byte, claimed string) {
		r := Decide(status, body, "", claimed, []string{"normal"})
		// Only a 200 that names the claimed player in good standing allows,
		// and encoding/json (a game server reading the bytes passed
		// through) reads the same player in the same standing.
		if r.Verdict == validator.Allow {
			var std struct {
				Player struct {
					PlayerID json.RawMessage `json:"playerId"`
					Status   *string         `json:"status"`
				} `json:"player"`
			}
			if err := json.Unmarshal(body, &std); err != nil || std.Player.Status == nil {
				t.Fatalf("allow of a body encoding/json cannot read (%v): %q", err, body)
			}
			id := string(std.Player.PlayerID)
			if len(id) > 0 && id[0] == '"' {
				json.Unmarshal(std.Player.PlayerID, &id)
			}
			if status != 200 || *std.Player.Status != "normal" || id != r.PlayerID || (claimed != "" && id != claimed) {
				t.Fatalf("allow from status %d body %q claimed %q: encoding/json reads player %q status %q", status, body, claimed, id, *std.Player.Status)
			}
		}
		// Outage statuses never kick.
		if r.Verdict == validator.Kick && (status < 400 || status >= 500 || status == 400 || status == 408 || status == 429 || status == 473 || requestShapeStatus(status)) {
			if status != 200 {
				t.Fatalf("kick from status %d", status)
			}
		}
		if r.Failure && r.Verdict != validator.Unavailable {
			t.Fatalf("failure with verdict %v", r.Verdict)
		}
	})
}

// TestDecideStrictBodies: a 200 body that two parsers could read two ways
// (duplicate keys, keys equal under case folding, a key folding to one the
// decision reads) is unreadable: unavailable, never an allow, whatever its
// first status says.
func TestDecideStrictBodies(t *testing.T) {
	for name, body := range map[string]string{
		"status twice":              `{"player":{"playerId":"p1","status":"sanctioned","status":"normal"}}`,
		"status twice, escaped":     `{"player":{"playerId":"p1","status":"sanctioned","st\u0061tus":"normal"}}`,
		"STATUS beside status":      `{"player":{"playerId":"p1","status":"sanctioned","STATUS":"normal"}}`,
		"STATUS alone":              `{"player":{"playerId":"p1","STATUS":"normal"}}`,
		"long s folding":            `{"player":{"playerId":"p1","status":"sanctioned","ſtatus":"normal"}}`,
		"long s escaped":            `{"player":{"playerId":"p1","status":"sanctioned","\u017ftatus":"normal"}}`,
		"two players":               `{"player":{"playerId":"p1","status":"sanctioned"},"player":{"playerId":"p1","status":"normal"}}`,
		"Player beside player":      `{"player":{"playerId":"p1","status":"sanctioned"},"Player":{"playerId":"p1","status":"normal"}}`,
		"PlayerID":                  `{"player":{"PlayerID":"p1","status":"normal"}}`,
		"playerId twice":            `{"player":{"playerId":"p2","playerId":"p1","status":"normal"}}`,
		"nickname folded twice":     `{"player":{"playerId":"p1","status":"normal","nickname":"a","NICKNAME":"b"}}`,
		"duplicate deep in data":    `{"player":{"playerId":"p1","status":"normal","data":{"x":[{"k":1,"k":2}]}}}`,
		"kelvin sign":               `{"player":{"playerId":"p1","status":"normal","\u212aey":1,"key":2}}`,
		"desc twice":                `{"desc":"a","desc":"b","player":{"playerId":"p1","status":"normal"}}`,
		"too deep":                  `{"player":{"playerId":"p1","status":"normal","data":` + strings.Repeat("[", 70) + strings.Repeat("]", 70) + `}}`,
		"invalid escape in data":    `{"player":{"playerId":"p1","status":"normal","data":"\x"}}`,
		"control character in data": "{\"player\":{\"playerId\":\"p1\",\"status\":\"normal\",\"data\":\"a\x01\"}}",
	} {
		r := Decide(200, []byte(body), "application/json", "p1", []string{"normal"})
		if r.Verdict != validator.Unavailable || !r.Failure {
			t.Errorf("%s: %v/%v failure=%v, want unavailable (a failure)", name, r.Verdict, r.Reason, r.Failure)
		}
	}
	// What stays readable: case variants outside the objects the decision
	// reads (a game's own data), escapes, white space, numbers as ids.
	for name, body := range map[string]string{
		"case variants in data": `{"player":{"playerId":"p1","status":"normal","data":{"k":1,"K":2}}}`,
		"escaped key":           `{"player":{"pl\u0061yerId":"p1","status":"norm\u0061l"}}`,
		"white space":           " {\n\"player\" : { \"playerId\" : \"p1\" , \"status\" : \"normal\" } }\n",
		"unknown keys":          `{"player":{"playerId":"p1","status":"normal","extra":[1,2,{"a":null}]},"more":true}`,
	} {
		if r := Decide(200, []byte(body), "application/json", "p1", []string{"normal"}); r.Verdict != validator.Allow {
			t.Errorf("%s: %v/%v, want allow", name, r.Verdict, r.Reason)
		}
	}
}

// TestDecideNamesPlayer: only a verdict about a player names one to purge.
func TestDecideNamesPlayer(t *testing.T) {
	f := func(name string, status int, body, claimed, named string) {
		t.Helper()
		if r := Decide(status, []byte(body), "", claimed, []string{"normal"}); r.Named != named {
			t.Errorf("%s: Named = %q, want %q", name, r.Named, named)
		}
	}
	f("allow", 200, playerBody("p1", "normal"), "", "p1")
	f("player status", 200, playerBody("p1", "delete"), "p9", "")
	f("player status, claimed", 200, playerBody("p1", "delete"), "p1", "p1")
	f("mismatch", 200, playerBody("p2", "normal"), "victim", "")
	f("invalid token, claimed", 401, `{"desc":"Token is invalid. (401.-29401)"}`, "victim", "")
	f("invalid token naming a player", 401, `{"desc":"x (401.-1)","player":{"playerId":"p1","status":"normal"}}`, "", "")
	f("lockout", 463, lockoutBody, "victim", "123456789123456")
	f("lockout, no body", 463, "", "victim", "")
	f("sanction naming the claim", 464, `{"desc":"x (464.-1)","player":{"playerId":"p3"}}`, "p3", "p3")
	f("no player", 406, `{"desc":"There is no player. (406.-10005)"}`, "victim", "")
}

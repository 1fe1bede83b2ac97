package validator

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"
)

const lockoutBody = `{"desc":"playerId There is a valid lockout. (463.-10103)","lockout":{"kgAppId":"909428","idType":"playerId","id":"123456789123456","certMethod":"phone,card","reason":"","message":"","notificationOption":"alimtalk","memo":"","lockoutCode":"","lockoutSection":"mobile","regTime":1680773813000},"player":{"kgAppId":"909428","playerId":"123456789123456","status":"normal"},"token":{"onetimeToken":"1IB+jHhULoYJASZR18QUTQw0pDBZVjvOith9KD8miWQNsOgw4GjCGTTJhsWNUJHcWrtHJfazZ7lmLlyx"},"redirectUri":{"target":"lockout","lockout":"https://member.kakaogames.com/lockout?token=1IB%2BjHhULoYJASZR18QUTQw0pDBZVjvOith9KD8miWQNsOgw4GjCGTTJhsWNUJHcWrtHJfazZ7lmLlyx"}}`

func playerBody(id, status string) string {
	return fmt.Sprintf(`{"player":{"kgAppId":"909428","playerId":%q,"status":%q,"nickname":"n","data":{}}}`, id, status)
}

// TestDecide covers every row of the decision table, by status.
func TestDecide(t *testing.T) {
	allow := []string{"normal"}
	f := func(name string, status int, body, claimed string, want Verdict, reason Reason, failure bool, player string) {
		t.Helper()
		r := Decide(status, []byte(body), "application/json", claimed, allow)
		if r.Verdict != want || r.Reason != reason || r.Failure != failure || r.PlayerID != player {
			t.Errorf("%s: Decide(%d) = %v/%v failure=%v player=%q, want %v/%v failure=%v player=%q",
				name, status, r.Verdict, r.Reason, r.Failure, r.PlayerID, want, reason, failure, player)
		}
	}
	// 200 rows.
	f("normal", 200, playerBody("p1", "normal"), "", Allow, ReasonOK, false, "p1")
	f("normal, claimed", 200, playerBody("p1", "normal"), "p1", Allow, ReasonOK, false, "p1")
	f("numeric playerId", 200, `{"player":{"playerId":123,"status":"normal"}}`, "123", Allow, ReasonOK, false, "123")
	f("extra fields", 200, `{"player":{"playerId":"p1","status":"normal","x":[1,{}]},"y":null}`, "", Allow, ReasonOK, false, "p1")
	f("other status", 200, playerBody("p1", "delete"), "", Kick, ReasonPlayerStatus, false, "p1")
	f("mismatch", 200, playerBody("p2", "normal"), "p1", Kick, ReasonPlayerMismatch, false, "p1")
	f("mismatch beats status", 200, playerBody("p2", "delete"), "p1", Kick, ReasonPlayerMismatch, false, "p1")
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
		f("200 "+name, 200, body, "", Unavailable, ReasonUpstreamUnavailable, true, "")
		f("200 "+name+", claimed", 200, body, "p1", Unavailable, ReasonUpstreamUnavailable, true, "p1")
	}

	// Kicking 4xx rows, with the player named by the claim or the body.
	f("401", 401, `{"desc":"Token is invalid. (401.-29401)"}`, "", Kick, ReasonInvalidToken, false, "")
	f("401 claimed", 401, `{"desc":"Token is invalid. (401.-29401)"}`, "p1", Kick, ReasonInvalidToken, false, "p1")
	f("406", 406, `{"desc":"There is no player. (406.-10005)"}`, "", Kick, ReasonNotAcceptable, false, "")
	f("462", 462, `{"desc":"Pending unregistration. (462.-10101)","player":{"playerId":"p9","status":"delete"}}`, "", Kick, ReasonUnregistering, false, "p9")
	f("463", 463, lockoutBody, "", Kick, ReasonLockout, false, "123456789123456")
	f("463 lockout only", 463, `{"lockout":{"idType":"playerId","id":"p7"}}`, "", Kick, ReasonLockout, false, "p7")
	f("463 lockout other idType", 463, `{"lockout":{"idType":"deviceId","id":"d7"}}`, "", Kick, ReasonLockout, false, "")
	f("463 claimed", 463, lockoutBody, "p1", Kick, ReasonLockout, false, "p1")
	f("464", 464, `{"desc":"Sanctioned. (464.-10102)","player":{"playerId":"p3","status":"normal"}}`, "", Kick, ReasonSanction, false, "p3")
	for _, s := range []int{402, 403, 404, 409, 410, 418, 451, 465, 499} {
		f(fmt.Sprint("other 4xx ", s), s, `{"desc":"Abnormal. (465.-1)"}`, "", Kick, ReasonAbnormalState, false, "")
	}
	f("4xx html body", 465, "<html>no</html>", "", Kick, ReasonAbnormalState, false, "")

	// Never kicks: our own malformed request, and every outage.
	f("400", 400, `{"desc":"Bad request. (400.-1)"}`, "p1", Unavailable, ReasonUpstreamUnavailable, false, "p1")
	// Statuses about our request's shape, not the player: like 400.
	for _, s := range []int{405, 411, 413, 414, 415, 431} {
		f(fmt.Sprint("request shape ", s), s, "<html>Request Header Fields Too Large</html>", "p1", Unavailable, ReasonUpstreamUnavailable, false, "p1")
	}
	f("408", 408, "", "", Unavailable, ReasonUpstreamUnavailable, true, "")
	f("429", 429, `{"desc":"Too many. (429.-1)"}`, "", Unavailable, ReasonUpstreamUnavailable, true, "")
	f("473", 473, `{"desc":"Maintenance. (473.-1)"}`, "", Unavailable, ReasonUpstreamMaintenance, true, "")
	for _, s := range []int{500, 501, 502, 503, 504, 599} {
		f(fmt.Sprint(s), s, `{"desc":"Internal error. (500.-1)"}`, "p1", Unavailable, ReasonUpstreamUnavailable, true, "p1")
	}
	for _, s := range []int{100, 201, 204, 301, 302, 304, 307} {
		f(fmt.Sprint(s), s, playerBody("p1", "normal"), "", Unavailable, ReasonUpstreamUnavailable, true, "")
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
		got := map[string][]byte{"lockout": r.Lockout(), "token": r.Token(), "redirectUri": r.RedirectURI(), "player": r.Player()}[name]
		if string(got) != want {
			t.Errorf("%s = %s, want %s", name, got, want)
		}
	}
	if r := Decide(401, []byte(`{"desc":"x","player":null}`), "", "", nil); r.Player() != nil {
		t.Errorf("null player kept as %q", r.Player())
	}
}

func TestDecideAllowList(t *testing.T) {
	r := Decide(200, []byte(playerBody("p1", "vip")), "", "", []string{"normal", "vip"})
	if r.Verdict != Allow {
		t.Fatalf("status in custom allow-list: %v/%v", r.Verdict, r.Reason)
	}
	r = Decide(200, []byte(playerBody("p1", "normal")), "", "", []string{"vip"})
	if r.Verdict != Kick || r.Reason != ReasonPlayerStatus {
		t.Fatalf("normal outside allow-list: %v/%v", r.Verdict, r.Reason)
	}
}

func TestParseSubCode(t *testing.T) {
	f := func(desc string, code int, ok bool) {
		t.Helper()
		c, k := parseSubCode(desc)
		if c != code || k != ok {
			t.Errorf("parseSubCode(%q) = %d, %v; want %d, %v", desc, c, k, code, ok)
		}
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
		code, ok := parseSubCode(s)
		if !ok && code != 0 {
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
		// Only a 200 that names the claimed player in good standing allows.
		if r.Verdict == Allow {
			p, ok := parsePlayer(r.Player())
			if status != 200 || !ok || p.status != "normal" || (claimed != "" && p.id != claimed) {
				t.Fatalf("allow from status %d body %q claimed %q", status, body, claimed)
			}
		}
		// Outage statuses never kick.
		if r.Verdict == Kick && (status < 400 || status >= 500 || status == 400 || status == 408 || status == 429 || status == 473 || requestShapeStatus(status)) {
			if status != 200 {
				t.Fatalf("kick from status %d", status)
			}
		}
		if r.Failure && r.Verdict != Unavailable {
			t.Fatalf("failure with verdict %v", r.Verdict)
		}
	})
}

// TestCacheHitBodyMatchesRenderAnswer: the body the hot path assembles
// for an allow served from cache is exactly what renderAnswer gives that
// answer.
func TestCacheHitBodyMatchesRenderAnswer(t *testing.T) {
	for _, body := range []string{
		`{"player":{"kgAppId":"909428","playerId":"123","status":"normal"}}`,
		`{"player":{"playerId":"123","status":"normal","data":{"nested":[1,2,{"x":"}"}]}},"extra":true}`,
		"  {\"player\" :\n {\"playerId\":\"123\",\"status\":\"normal\"} }  ",
	} {
		r := Decide(200, []byte(body), "application/json", "123", []string{"normal"})
		if r.Verdict != Allow {
			t.Fatalf("%s: %v %v", body, r.Verdict, r.Reason)
		}
		var resp fasthttp.Response
		writeCacheHit(&resp, r)
		want := renderAnswer(&answer{res: r, verdict: Allow, reason: ReasonOK, source: SourceCache})
		if !bytes.Equal(resp.Body(), want) {
			t.Errorf("cache-hit body\n got %s\nwant %s", resp.Body(), want)
		}
		if !json.Valid(resp.Body()) {
			t.Errorf("cache-hit body is not JSON: %s", resp.Body())
		}
	}
}

package validator

import (
	"bytes"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

const typicalRequestBody = `{"accessToken":"FvNkGat8GaTfyhx+Hm2rN/SFpn5Umv==","platform":"mobile","playerId":"123456789123456"}`

// TestDecodeJSON runs DecodeJSON then Check over good and bad bodies.
func TestDecodeJSON(t *testing.T) {
	long := strings.Repeat("a", MaxTokenLen+1)
	nest := func(n int, open, close string) string { return strings.Repeat(open, n) + strings.Repeat(close, n) }
	// A body of exactly MaxBodyLen bytes.
	exact := `{"accessToken":"t","platform":"pc"}`
	exact += strings.Repeat(" ", MaxBodyLen-len(exact))

	cases := []struct {
		name, body string
		want       string // the error message, or "" for success
		token      string
		platform   string
		player     string
	}{
		// Good bodies.
		{"typical", typicalRequestBody, "", "FvNkGat8GaTfyhx+Hm2rN/SFpn5Umv==", "mobile", "123456789123456"},
		{"no player", `{"accessToken":"t","platform":"pc"}`, "", "t", "pc", ""},
		{"null player", `{"accessToken":"t","platform":"web","playerId":null}`, "", "t", "web", ""},
		{"empty player", `{"accessToken":"t","platform":"web","playerId":""}`, "", "t", "web", ""},
		{"launcher", `{"platform":"launcher","accessToken":"t"}`, "", "t", "launcher", ""},
		{"field order", `{"playerId":"p","platform":"pc","accessToken":"t"}`, "", "t", "pc", "p"},
		{"white space", " \t\r\n{ \"accessToken\" :\n\"t\" ,\r\n\t\"platform\"\t:\t\"pc\" , \"playerId\" : \"p\" } \n\t\r ", "", "t", "pc", "p"},
		{"exactly the limit", exact, "", "t", "pc", ""},
		{"unknown string", `{"x":"y","accessToken":"t","platform":"pc"}`, "", "t", "pc", ""},
		{"unknown numbers", `{"a":0,"b":-1,"c":12.5e+3,"d":-0.0E-2,"e":1E9,"f":123456789012345678901234567890,"accessToken":"t","platform":"pc"}`, "", "t", "pc", ""},
		{"unknown literals", `{"a":true,"b":false,"c":null,"accessToken":"t","platform":"pc"}`, "", "t", "pc", ""},
		{"unknown containers", `{"a":{},"b":[],"c":{"d":[1,{"e":[null,"f",{"g":{}}]}],"h":"\"}"},"i":[[],[[]],{}],"accessToken":"t","platform":"pc"}`, "", "t", "pc", ""},
		{"unknown with escapes", `{"\u0078":"\"\\\/\b\f\n\r\t\u00e9\ud83d\ude00\ud800","accessToken":"t","platform":"pc"}`, "", "t", "pc", ""},
		{"case variant of accessToken", `{"AccessToken":"x","accessToken":"t","platform":"pc"}`, errReqKeyCase[reqKeyToken].Msg, "", "", ""},
		{"case variant of playerId", `{"accessToken":"t","platform":"pc","PlayerId":"victim"}`, errReqKeyCase[reqKeyPlayerID].Msg, "", "", ""},
		{"Unicode folding of platform", `{"accessToken":"t","platform":"pc","PLATFORM":"web"}`, errReqKeyCase[reqKeyPlatform].Msg, "", "", ""},
		{"case variant, escaped", `{"accessToken":"t","platform":"pc","playerId":"p","playerid":"q"}`, errReqKeyCase[reqKeyPlayerID].Msg, "", "", ""},
		{"slash escape", `{"accessToken":"abc\/def","platform":"pc"}`, "", "abc/def", "pc", ""},
		{"escaped key", `{"access\u0054oken":"t","pl\u0061tform":"pc","player\u0049d":"p"}`, "", "t", "pc", "p"},
		{"escaped platform", `{"accessToken":"t","platform":"mo\u0062ile"}`, "", "t", "mobile", ""},
		{"nesting at the limit", `{"x":` + nest(maxJSONDepth-1, "[", "]") + `,"accessToken":"t","platform":"pc"}`, "", "t", "pc", ""},
		{"objects at the limit", `{"x":` + strings.Repeat(`{"y":`, maxJSONDepth-2) + `{}` + strings.Repeat(`}`, maxJSONDepth-2) + `,"accessToken":"t","platform":"pc"}`, "", "t", "pc", ""},
		{"unknown key twice", `{"x":1,"x":2,"accessToken":"t","platform":"pc"}`, "", "t", "pc", ""},

		// DecodeJSON's refusals.
		{"empty", ``, "request body is not a JSON object", "", "", ""},
		{"space only", " \n", "request body is not a JSON object", "", "", ""},
		{"form", `accessToken=t&platform=pc`, "request body is not a JSON object", "", "", ""},
		{"array", `["t","pc"]`, "request body is not a JSON object", "", "", ""},
		{"string", `"t"`, "request body is not a JSON object", "", "", ""},
		{"null", `null`, "request body is not a JSON object", "", "", ""},
		{"truncated", `{"accessToken":"t","platform":"pc"`, "request body is not a JSON object", "", "", ""},
		{"truncated string", `{"accessToken":"t`, "request body is not a JSON object", "", "", ""},
		{"truncated escape", `{"accessToken":"t\u00`, "request body is not a JSON object", "", "", ""},
		{"truncated skip", `{"x":[1,{"y":tr`, "request body is not a JSON object", "", "", ""},
		{"BOM", "\xef\xbb\xbf{}", "request body is not a JSON object", "", "", ""},
		{"trailing object", `{"accessToken":"t","platform":"pc"} {}`, "request body has trailing data after the JSON object", "", "", ""},
		{"trailing brace", `{"accessToken":"t","platform":"pc"}}`, "request body has trailing data after the JSON object", "", "", ""},
		{"trailing NUL", "{\"accessToken\":\"t\",\"platform\":\"pc\"}\x00", "request body has trailing data after the JSON object", "", "", ""},
		{"too large", `{"accessToken":"t","platform":"pc","x":"` + strings.Repeat("a", MaxBodyLen) + `"}`, "request body too large (limit 16384 bytes)", "", "", ""},
		{"one over the limit", exact + " ", "request body too large (limit 16384 bytes)", "", "", ""},
		{"token number", `{"accessToken":123,"platform":"pc"}`, "accessToken must be a JSON string", "", "", ""},
		{"token object", `{"accessToken":{"a":"t"},"platform":"pc"}`, "accessToken must be a JSON string", "", "", ""},
		{"token array", `{"accessToken":["t"],"platform":"pc"}`, "accessToken must be a JSON string", "", "", ""},
		{"token true", `{"accessToken":true,"platform":"pc"}`, "accessToken must be a JSON string", "", "", ""},
		{"platform number", `{"accessToken":"t","platform":-1}`, "platform must be a JSON string", "", "", ""},
		{"platform false", `{"accessToken":"t","platform":false}`, "platform must be a JSON string", "", "", ""},
		{"player number", `{"accessToken":"t","platform":"pc","playerId":123456789123456}`, "playerId must be a JSON string", "", "", ""},
		{"player object", `{"accessToken":"t","platform":"pc","playerId":{}}`, "playerId must be a JSON string", "", "", ""},
		{"duplicate token", `{"accessToken":"t","accessToken":"u","platform":"pc"}`, `duplicate field "accessToken" in request body`, "", "", ""},
		{"duplicate token, escaped", `{"accessToken":"t","access\u0054oken":"u","platform":"pc"}`, `duplicate field "accessToken" in request body`, "", "", ""},
		{"duplicate null token", `{"accessToken":null,"accessToken":"u","platform":"pc"}`, `duplicate field "accessToken" in request body`, "", "", ""},
		{"duplicate platform", `{"accessToken":"t","platform":"pc","platform":"web"}`, `duplicate field "platform" in request body`, "", "", ""},
		{"duplicate player", `{"accessToken":"t","platform":"pc","playerId":null,"playerId":"p"}`, `duplicate field "playerId" in request body`, "", "", ""},
		{"too deep", `{"x":` + nest(maxJSONDepth, "[", "]") + `,"accessToken":"t","platform":"pc"}`, "request body nests too deeply", "", "", ""},
		{"too deep objects", `{"x":` + strings.Repeat(`{"y":`, maxJSONDepth-1) + `{}` + strings.Repeat(`}`, maxJSONDepth-1) + `}`, "request body nests too deeply", "", "", ""},
		{"very deep", `{"x":` + strings.Repeat("[", 100000)[:MaxBodyLen-10], "request body nests too deeply", "", "", ""},
		{"missing colon", `{"accessToken" "t"}`, "request body is not valid JSON", "", "", ""},
		{"missing comma", `{"accessToken":"t" "platform":"pc"}`, "request body is not valid JSON", "", "", ""},
		{"trailing comma", `{"accessToken":"t","platform":"pc",}`, "request body is not valid JSON", "", "", ""},
		{"trailing comma in skip", `{"x":[1,],"accessToken":"t","platform":"pc"}`, "request body is not valid JSON", "", "", ""},
		{"trailing comma in skipped object", `{"x":{"a":1,},"accessToken":"t","platform":"pc"}`, "request body is not valid JSON", "", "", ""},
		{"unquoted key", `{accessToken:"t"}`, "request body is not valid JSON", "", "", ""},
		{"single quotes", `{'accessToken':'t'}`, "request body is not valid JSON", "", "", ""},
		{"bad escape", `{"accessToken":"t\x","platform":"pc"}`, "request body is not valid JSON", "", "", ""},
		{"bad escape in key", `{"a\x":1}`, "request body is not valid JSON", "", "", ""},
		{"bad unicode escape", `{"accessToken":"t\u00g9","platform":"pc"}`, "request body is not valid JSON", "", "", ""},
		{"bad unicode escape skipped", `{"x":"\u12"}`, "request body is not valid JSON", "", "", ""},
		{"raw newline", "{\"accessToken\":\"t\nX-Evil: 1\",\"platform\":\"pc\"}", "request body is not valid JSON", "", "", ""},
		{"raw tab in key", "{\"a\tb\":1}", "request body is not valid JSON", "", "", ""},
		{"raw NUL skipped", "{\"x\":\"\x00\"}", "request body is not valid JSON", "", "", ""},
		{"bad literal", `{"x":nul,"accessToken":"t"}`, "request body is not valid JSON", "", "", ""},
		{"bad null token", `{"accessToken":nil}`, "request body is not valid JSON", "", "", ""},
		{"bad token value", `{"accessToken":}`, "request body is not valid JSON", "", "", ""},
		{"leading zero", `{"x":01}`, "request body is not valid JSON", "", "", ""},
		{"plus sign", `{"x":+1}`, "request body is not valid JSON", "", "", ""},
		{"bare dot", `{"x":1.}`, "request body is not valid JSON", "", "", ""},
		{"bare exponent", `{"x":1e}`, "request body is not valid JSON", "", "", ""},
		{"minus only", `{"x":-}`, "request body is not valid JSON", "", "", ""},
		{"hex", `{"x":0x1}`, "request body is not valid JSON", "", "", ""},
		{"NaN", `{"x":NaN}`, "request body is not valid JSON", "", "", ""},
		{"mismatched brackets", `{"x":[1}`, "request body is not valid JSON", "", "", ""},
		{"comment", `{/* */"accessToken":"t"}`, "request body is not valid JSON", "", "", ""},

		// CheckToken's and CheckPlayerID's refusals (a provider's Check
		// calls them; Kakao Games' platform rules are its own tests').
		{"missing token", `{"platform":"mobile"}`, "missing accessToken", "", "", ""},
		{"empty token", `{"accessToken":"","platform":"mobile"}`, "missing accessToken", "", "", ""},
		{"null token", `{"accessToken":null,"platform":"mobile"}`, "missing accessToken", "", "", ""},
		{"token too long", `{"accessToken":"` + long + `","platform":"pc"}`, "accessToken too long (limit 4096 bytes)", "", "", ""},
		{"escaped newline in token", `{"accessToken":"t\nX-Evil: 1","platform":"pc"}`, "accessToken contains invalid characters (control, space or non-ASCII)", "", "", ""},
		{"escaped NUL in token", `{"accessToken":"t\u0000","platform":"pc"}`, "accessToken contains invalid characters (control, space or non-ASCII)", "", "", ""},
		{"space in token", `{"accessToken":"t u","platform":"pc"}`, "accessToken contains invalid characters (control, space or non-ASCII)", "", "", ""},
		{"DEL in token", "{\"accessToken\":\"t\x7f\",\"platform\":\"pc\"}", "accessToken contains invalid characters (control, space or non-ASCII)", "", "", ""},
		{"non-ASCII token", `{"accessToken":"caf\u00e9","platform":"pc"}`, "accessToken contains invalid characters (control, space or non-ASCII)", "", "", ""},
		{"player too long", `{"accessToken":"t","platform":"pc","playerId":"` + strings.Repeat("1", MaxPlayerIDLen+1) + `"}`, "playerId too long (limit 256 bytes)", "", "", ""},
		{"player space", `{"accessToken":"t","platform":"pc","playerId":"a b"}`, "playerId contains invalid characters (control, space or non-ASCII)", "", "", ""},
		{"player newline", `{"accessToken":"t","platform":"pc","playerId":"a\r\nb"}`, "playerId contains invalid characters (control, space or non-ASCII)", "", "", ""},
	}
	for _, c := range cases {
		var r Request
		_, err := DecodeJSON([]byte(c.body), &r, nil)
		if err == nil {
			err = r.CheckToken()
		}
		if err == nil {
			err = r.CheckPlayerID()
		}
		got := ""
		if err != nil {
			var re *RequestError
			if !errors.As(err, &re) {
				t.Errorf("%s: error %T %v, want a *RequestError", c.name, err, err)
				continue
			}
			got = re.Msg
		}
		if got != c.want {
			t.Errorf("%s: got error %q, want %q", c.name, got, c.want)
			continue
		}
		if c.want != "" {
			if strings.Contains(got, long) {
				t.Errorf("%s: the token came back in the error", c.name)
			}
			continue
		}
		if string(r.Token) != c.token || string(r.Platform) != c.platform || string(r.PlayerID) != c.player {
			t.Errorf("%s: got %q %q %q, want %q %q %q", c.name, r.Token, r.Platform, r.PlayerID, c.token, c.platform, c.player)
		}
	}
}

// TestDecodeJSONEscapes checks unescaping against encoding/json.
func TestDecodeJSONEscapes(t *testing.T) {
	for _, s := range []string{
		`abc\/def`,
		`\"\\\/\b\f\n\r\t`,
		`caf\u00e9`,
		`caf\u00E9 \u20ac`,
		`\ud83d\ude00`,                 // a surrogate pair: U+1F600
		`x\uD83D\uDE00y`,               // upper-case hex
		`\ud800`,                       // a lone high surrogate
		`\udc00`,                       // a lone low surrogate
		`\ud800x`,                      // high surrogate then a plain byte
		`\ud800\u0041`,                 // high surrogate then a non-surrogate escape
		`\ud800\ud800\udc00`,           // lone, then a pair
		`\ude00\ud83d`,                 // reversed pair
		`\ud800\n`,                     // high surrogate then a short escape
		`\u0000\u001f`,                 // escaped controls are allowed in JSON
		`plain \u0041 mixed \/ runs é`, // raw UTF-8 between escapes
	} {
		body := `{"accessToken":"` + s + `","platform":"pc"}`
		var want struct {
			AccessToken string `json:"accessToken"`
		}
		if err := json.Unmarshal([]byte(body), &want); err != nil {
			t.Fatalf("%s: encoding/json: %v", s, err)
		}
		var r Request
		if _, err := DecodeJSON([]byte(body), &r, nil); err != nil {
			t.Errorf("%s: %v", s, err)
			continue
		}
		if string(r.Token) != want.AccessToken {
			t.Errorf("%s: got %q, want %q", s, r.Token, want.AccessToken)
		}
	}
}

// TestDecodeJSONAliasing: plain strings alias the body, escaped ones the
// scratch buffer, and neither can be appended to over its neighbour.
func TestDecodeJSONAliasing(t *testing.T) {
	body := []byte(`{"accessToken":"a\/b","platform":"pc","playerId":"c\/d"}`)
	scratch := make([]byte, 0, 64)
	var r Request
	got, err := DecodeJSON(body, &r, scratch)
	if err != nil {
		t.Fatal(err)
	}
	if &got[:1][0] != &scratch[:1][0] {
		t.Error("scratch was not reused")
	}
	if &r.Platform[0] != &body[bytes.Index(body, []byte("pc"))] {
		t.Error("platform does not alias the body")
	}
	if string(r.Token) != "a/b" || string(r.PlayerID) != "c/d" {
		t.Fatalf("got %q %q", r.Token, r.PlayerID)
	}
	_ = append(r.Token, "XXXX"...)
	_ = append(r.Platform, "XXXX"...)
	if string(r.PlayerID) != "c/d" || string(body) != `{"accessToken":"a\/b","platform":"pc","playerId":"c\/d"}` {
		t.Errorf("an append overwrote a neighbour: %q %s", r.PlayerID, body)
	}
	// The fields are reset by the next decode.
	if _, err := DecodeJSON([]byte(`{"accessToken":"t"}`), &r, got); err != nil || r.Platform != nil || r.PlayerID != nil {
		t.Errorf("not reset: %v %q %q", err, r.Platform, r.PlayerID)
	}
}

// TestDecodeJSONNoAllocs: the hot path does not allocate.
func TestDecodeJSONNoAllocs(t *testing.T) {
	body := []byte(typicalRequestBody)
	escaped := []byte(`{"access\u0054oken":"FvNkGat8GaTfyhx+Hm2rN\/SFpn5Umv==","platform":"mobile","playerId":"123456789123456","x":[1,{"y":null}]}`)
	scratch := make([]byte, 0, 512)
	var r Request
	var err error
	if n := testing.AllocsPerRun(1000, func() {
		scratch, err = DecodeJSON(body, &r, scratch)
	}); n != 0 || err != nil {
		t.Errorf("DecodeJSON: %v allocations per run (err %v), want 0", n, err)
	}
	if n := testing.AllocsPerRun(1000, func() {
		if err = r.CheckToken(); err == nil {
			err = r.CheckPlayerID()
		}
	}); n != 0 || err != nil {
		t.Errorf("CheckToken, CheckPlayerID: %v allocations per run (err %v), want 0", n, err)
	}
	if n := testing.AllocsPerRun(1000, func() {
		scratch, err = DecodeJSON(escaped, &r, scratch)
	}); n != 0 || err != nil {
		t.Errorf("DecodeJSON with escapes: %v allocations per run (err %v), want 0", n, err)
	}
	bad := []byte(`{"accessToken":"t","accessToken":"t"}`)
	if n := testing.AllocsPerRun(1000, func() {
		scratch, err = DecodeJSON(bad, &r, scratch)
	}); n != 0 || err == nil {
		t.Errorf("DecodeJSON refusing: %v allocations per run (err %v), want 0", n, err)
	}
}

// stdlibView is what encoding/json makes of a body.
type stdlibView struct {
	valid    bool           // json.Valid
	obj      map[string]any // the body, if it is an object
	depth    int            // its nesting depth (an object alone is 1)
	dupKnown bool           // a known key appears twice at the top level
}

func viewWithStdlib(t *testing.T, body []byte) stdlibView {
	var v stdlibView
	if v.valid = json.Valid(body); !v.valid {
		return v
	}
	// UseNumber, so that a number too big for a float64 is no error.
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var x any
	if err := dec.Decode(&x); err != nil {
		t.Fatalf("encoding/json: Valid but Decode: %v", err)
	}
	v.obj, _ = x.(map[string]any)
	if v.obj == nil {
		return v
	}
	v.depth = jsonDepth(x)
	// Read the top-level keys, which the map cannot show twice.
	dec = json.NewDecoder(bytes.NewReader(body))
	seen := map[string]bool{}
	if _, err := dec.Token(); err != nil { // the '{'
		t.Fatalf("encoding/json: Valid but Token: %v", err)
	}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			t.Fatalf("encoding/json: Valid but Token: %v", err)
		}
		key := tok.(string)
		if seen[key] && slices.Contains(defaultForm.names(), key) {
			v.dupKnown = true
		}
		seen[key] = true
		var raw json.RawMessage // the value, skipped
		if err := dec.Decode(&raw); err != nil {
			t.Fatalf("encoding/json: Valid but Decode: %v", err)
		}
	}
	return v
}

func jsonDepth(x any) int {
	d := 0
	switch x := x.(type) {
	case map[string]any:
		for _, e := range x {
			d = max(d, jsonDepth(e))
		}
	case []any:
		for _, e := range x {
			d = max(d, jsonDepth(e))
		}
	default:
		return 0
	}
	return d + 1
}

func FuzzDecodeJSON(f *testing.F) {
	for _, s := range []string{
		typicalRequestBody,
		`{"accessToken":"t","platform":"pc"}`,
		`{"accessToken":"abc\/def","platform":"web","playerId":null}`,
		` {"platform":"launcher","accessToken":"caf\u00e9\ud83d\ude00\ud800"} `,
		`{"access\u0054oken":"t","platform":"pc","x":[1,-2.5e3,true,false,null,{"y":{}},[]],"z":"\"\\\b\f\n\r\t"}`,
		`{"accessToken":"t","accessToken":"u","platform":"pc"}`,
		`{"accessToken":123,"platform":"pc"}`,
		`{"accessToken":"t","platform":"pc"} {}`,
		`["t","pc"]`,
		``,
		`{"accessToken":"t","platform":"pc"`,
		`{"accessToken":"t\x","platform":"pc"}`,
		"{\"accessToken\":\"t\nX\",\"platform\":\"pc\"}",
		`{"x":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}`,
		`{"x":01,"y":1.,"z":-}`,
		"{\"accessToken\":\"\xff\xfe\",\"platform\":\"pc\",\"playerId\":\"\xc3\"}",
		`{"AccessToken":"t","platform":"mobile","playerId":"\u0031"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var r Request
		_, err := DecodeJSON(body, &r, nil)
		if err != nil {
			var re *RequestError
			if !errors.As(err, &re) {
				t.Fatalf("error %T %v, want a *RequestError", err, err)
			}
		} else if err := r.CheckToken(); err != nil {
			var re *RequestError
			if !errors.As(err, &re) {
				t.Fatalf("CheckToken: error %T %v, want a *RequestError", err, err)
			}
		}

		v := viewWithStdlib(t, body)
		if err == nil {
			if !v.valid || v.obj == nil {
				t.Fatalf("DecodeJSON accepted %q; encoding/json does not read it as an object", body)
			}
			if v.depth > maxJSONDepth || v.dupKnown || len(body) > MaxBodyLen {
				t.Fatalf("DecodeJSON accepted %q: depth %d, duplicate known key %v, %d bytes", body, v.depth, v.dupKnown, len(body))
			}
			for k, name := range defaultForm.names() {
				got := [][]byte{r.Token, r.Platform, r.PlayerID, r.SessionID}[k]
				val, present := v.obj[name]
				switch val := val.(type) {
				case string:
					if utf8.Valid(got) && string(got) != val {
						t.Fatalf("%s: got %q, encoding/json %q", name, got, val)
					}
				case nil:
					if len(got) != 0 {
						t.Fatalf("%s: got %q, encoding/json has it absent or null (present %v)", name, got, present)
					}
				default:
					t.Fatalf("%s: accepted a %T", name, val)
				}
			}
			return
		}
		if !v.valid || v.obj == nil || len(body) > MaxBodyLen || v.depth > maxJSONDepth || v.dupKnown {
			return
		}
		for k := range v.obj {
			for _, name := range defaultForm.names() {
				if k != name && strings.EqualFold(k, name) {
					return // refused on purpose: a case variant of a known key
				}
			}
		}
		for _, name := range defaultForm.names() {
			switch v.obj[name].(type) {
			case string, nil:
			default:
				return
			}
		}
		t.Fatalf("DecodeJSON(%q): %v; encoding/json reads it fine", body, err)
	})
}

func BenchmarkDecodeJSON(b *testing.B) {
	body := []byte(typicalRequestBody)
	scratch := make([]byte, 0, 512)
	var r Request
	var err error
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if scratch, err = DecodeJSON(body, &r, scratch); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecodeJSONStdlib is the baseline: encoding/json into a struct.
func BenchmarkDecodeJSONStdlib(b *testing.B) {
	body := []byte(typicalRequestBody)
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		var r struct {
			AccessToken string  `json:"accessToken"`
			Platform    string  `json:"platform"`
			PlayerID    *string `json:"playerId"`
		}
		if err := json.Unmarshal(body, &r); err != nil {
			b.Fatal(err)
		}
	}
}

package kakaogames

import (
	"strings"
	"testing"

	"playerguard/validator"
)

// TestCheckPlatform: Check's refusals of a decoded request's platform.
func TestCheckPlatform(t *testing.T) {
	var kg Provider
	for _, c := range []struct{ name, body, want string }{
		{"missing platform", `{"accessToken":"t"}`, "missing platform"},
		{"null platform", `{"accessToken":"t","platform":null}`, "missing platform"},
		{"unknown platform", `{"accessToken":"t","platform":"xbox"}`, `unknown platform "xbox" (want web, launcher, mobile or pc)`},
		{"platform case", `{"accessToken":"t","platform":"Mobile"}`, `unknown platform "Mobile" (want web, launcher, mobile or pc)`},
		{"platform padded", `{"accessToken":"t","platform":"pc "}`, `unknown platform "pc " (want web, launcher, mobile or pc)`},
		{"platform quoted", `{"accessToken":"t","platform":"a\"b\\c"}`, `unknown platform "a\"b\\c" (want web, launcher, mobile or pc)`},
		{"platform control", `{"accessToken":"t","platform":"a\u0000\n\u00e9"}`, `unknown platform "a????" (want web, launcher, mobile or pc)`},
		{"platform long", `{"accessToken":"t","platform":"` + strings.Repeat("x", 40) + `"}`, `unknown platform "` + strings.Repeat("x", 32) + `" (want web, launcher, mobile or pc)`},
		{"good", `{"accessToken":"t","platform":"launcher","playerId":"p"}`, ""},
	} {
		var r validator.Request
		if _, err := validator.DecodeJSON([]byte(c.body), &r, nil); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		got := ""
		if err := kg.Check(&r); err != nil {
			got = err.Error()
		}
		if got != c.want {
			t.Errorf("%s: got error %q, want %q", c.name, got, c.want)
		}
	}
}

// TestCheckNeverEchoesToken: a token never appears in any message.
func TestCheckNeverEchoesToken(t *testing.T) {
	var kg Provider
	const tok = "SECRET-token-Zq9"
	for _, r := range []validator.Request{
		{Token: []byte(tok + " "), Platform: []byte(tok)},
		{Token: []byte(tok + "\n"), Platform: []byte("pc")},
		{Token: []byte(strings.Repeat(tok, validator.MaxTokenLen)), Platform: []byte("pc")},
		{Token: []byte(tok), Platform: []byte("pc"), PlayerID: []byte(tok + " ")},
		{Token: []byte(tok), Platform: []byte("pc"), PlayerID: []byte(strings.Repeat(tok, 100))},
	} {
		if err := kg.Check(&r); err == nil || strings.Contains(err.Error(), tok) {
			t.Errorf("Check(%.40q) = %v", r.Token, err)
		}
	}
	if err := kg.Check(&validator.Request{Token: []byte("t"), Platform: []byte("mobile"), PlayerID: []byte("p")}); err != nil {
		t.Errorf("valid request: %v", err)
	}
}

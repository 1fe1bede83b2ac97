package kakaologintest

import (
	"io"
	"net/http"
	"testing"

	"playerguard/validator"
	"playerguard/validator/kakaologin"
)

// TestFakeSpeaksKakaoLogin: the fake's answers read as the provider's
// decision table expects, per token, with calls counted.
func TestFakeSpeaksKakaoLogin(t *testing.T) {
	s, err := Start()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.Set("tok-valid", Valid(9876543210, 123456, 3600))
	s.Set("tok-blocked", Code(403, -4, "account sanctioned"))
	get := func(tok string) (int, []byte) {
		t.Helper()
		req, _ := http.NewRequest("GET", s.URL()+InfoPath, nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}
	for tok, want := range map[string]validator.Verdict{"tok-valid": validator.Allow, "tok-blocked": validator.Kick, "tok-unknown": validator.Kick} {
		status, body := get(tok)
		if d := kakaologin.Decide(status, body, "123456", ""); d.Verdict != want {
			t.Errorf("%s: %d %s -> %v, want %v", tok, status, body, d.Verdict, want)
		}
	}
	s.SetOverride(&Verdict{Status: 400, Body: `{"code":-7,"msg":"maintenance"}`})
	status, body := get("tok-valid")
	if d := kakaologin.Decide(status, body, "123456", ""); d.Reason != validator.ReasonUpstreamMaintenance {
		t.Errorf("override: %v", d.Reason)
	}
	if s.TokenCalls("tok-valid") != 2 || s.Calls() != 4 {
		t.Errorf("calls %d / %d", s.TokenCalls("tok-valid"), s.Calls())
	}
}

package iamport

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"playerguard/internal/testkit"
	"playerguard/validator/iamport/iamporttest"
)

func (h *harness) post(path, body string) testkit.Reply {
	h.t.Helper()
	req, _ := http.NewRequest("POST", h.url+path, strings.NewReader(body))
	return testkit.Do(h.t, client, req)
}

func otpBody(phone string, mod func(map[string]any)) string {
	m := map[string]any{"name": pName, "phone": phone, "birth": "20000101", "genderDigit": "3", "carrier": "SKT", "isMvno": false, "company": "game"}
	if mod != nil {
		mod(m)
	}
	b, _ := json.Marshal(m)
	return string(b)
}

// TestOTPFlow: a code request forwarded, the code confirmed through the
// age gate; a wrong code not_certified (and asked again); i'mport's
// refusal a 422 without the personal data it quoted.
func TestOTPFlow(t *testing.T) {
	h := newHarness(t, nil, nil)
	h.fake.SetPerson(pPhone, cert("2000-01-01"))
	r := h.post(OTPRequestPath, otpBody("010-5555-1234", nil))
	imp, _ := r.Body["impUid"].(string)
	if r.Status != 200 || !strings.HasPrefix(imp, "imp_") || len(r.Body) != 1 {
		t.Fatalf("request: %d %s", r.Status, r.Raw)
	}
	confirm := func(otp, player string) testkit.Reply {
		b, _ := json.Marshal(map[string]any{"impUid": imp, "otp": otp, "playerId": player, "minAge": 19})
		return h.post(OTPConfirmPath, string(b))
	}
	h.expect(confirm("654321", player), 403, "kick", "not_certified", "upstream")
	r = confirm(iamporttest.OTPCode, player)
	h.expect(r, 200, "allow", "ok", "upstream")
	if r.Body["minAge"] != float64(19) || r.Body["personKey"] == nil {
		t.Errorf("confirm answer %s", r.Raw)
	}
	h.expect(confirm(iamporttest.OTPCode, "someone-else"), 403, "kick", "certification_reused", "upstream")

	// Not the person i'mport knows: its message, without the name.
	r = h.post(OTPRequestPath, otpBody("010-1111-2222", nil))
	if r.Status != 422 || strings.Contains(r.Raw, pName) || !strings.Contains(r.Raw, "[redacted]") || !strings.Contains(r.Raw, "(code -1)") {
		t.Errorf("refused request: %d %s", r.Status, r.Raw)
	}
	if n := testkit.Metric(t, h.reg, "playerguard_otp_total", "step", "request", "outcome", "sent"); n != 1 {
		t.Errorf("otp_total{request,sent} = %v", n)
	}
	if n := testkit.Metric(t, h.reg, "playerguard_otp_total", "step", "confirm", "outcome", "not_certified"); n != 1 {
		t.Errorf("otp_total{confirm,not_certified} = %v", n)
	}
	if strings.Contains(h.logs.String(), pName) || strings.Contains(h.logs.String(), "5555") {
		t.Error("personal data in the logs")
	}
}

// TestOTPLimit: at most 5 code requests per phone in 10 minutes, however
// the number is written; the sixth is a 429 that never reaches i'mport.
func TestOTPLimit(t *testing.T) {
	h := newHarness(t, nil, nil)
	h.fake.SetPerson(pPhone, cert("2000-01-01"))
	for i, phone := range []string{"010-5555-1234", "01055551234", "0105555-1234", "010-55551234", "01055551234"} {
		if r := h.post(OTPRequestPath, otpBody(phone, nil)); r.Status != 200 {
			t.Fatalf("request %d: %d %s", i, r.Status, r.Raw)
		}
	}
	r := h.post(OTPRequestPath, otpBody("010-5555-1234", nil))
	if msg, _ := r.Body["error"].(string); r.Status != 429 || !strings.Contains(msg, "at most 5 per 10m0s") {
		t.Errorf("sixth: %d %s", r.Status, r.Raw)
	}
	if n := h.fake.SMSSent(); n != 5 {
		t.Errorf("%d SMS sent, want 5", n)
	}
	h.clk.Add(10 * time.Minute)
	if r := h.post(OTPRequestPath, otpBody("01055551234", nil)); r.Status != 200 {
		t.Errorf("after the window: %d %s", r.Status, r.Raw)
	}
}

// TestOTPBadInput: every field checked before anything is forwarded.
func TestOTPBadInput(t *testing.T) {
	h := newHarness(t, nil, nil)
	for _, c := range []struct {
		name string
		mod  func(map[string]any)
		want string
	}{
		{"phone letters", func(m map[string]any) { m["phone"] = "010-55x5-1234" }, "phone must be digits"},
		{"phone short", func(m map[string]any) { m["phone"] = "010-555" }, "10 or 11 digits"},
		{"birth 6 digits", func(m map[string]any) { m["birth"] = "000101" }, "birth must be a real date, YYYYMMDD"},
		{"birth not a date", func(m map[string]any) { m["birth"] = "20010229" }, "birth must be a real date"},
		{"gender digit 9", func(m map[string]any) { m["genderDigit"] = "9" }, "genderDigit must be"},
		{"gender digit a number", func(m map[string]any) { m["genderDigit"] = 1 }, "wrong type"},
		{"carrier", func(m map[string]any) { m["carrier"] = "SKT-MVNO" }, "carrier must be SKT, KT or LGT"},
		{"isMvno a string", func(m map[string]any) { m["isMvno"] = "false" }, "wrong type"},
		{"isMvno missing", func(m map[string]any) { delete(m, "isMvno") }, "isMvno is required"},
		{"no name", func(m map[string]any) { delete(m, "name") }, "name is required"},
		{"unknown field", func(m map[string]any) { m["ssn"] = "x" }, `unknown field "ssn"`},
	} {
		r := h.post(OTPRequestPath, otpBody(pPhone, c.mod))
		if msg, _ := r.Body["error"].(string); r.Status != 400 || !strings.Contains(msg, c.want) {
			t.Errorf("%s: %d %s, want 400 %q", c.name, r.Status, r.Raw, c.want)
		}
	}
	for body, want := range map[string]string{
		`{"impUid":"imp_1","otp":"12","playerId":"p"}`:                "otp must be",
		`{"impUid":"x_1","otp":"123456","playerId":"p"}`:              "impUid must be imp_",
		`{"impUid":"imp_1","otp":"123456"}`:                           "missing playerId",
		`{"impUid":"imp_1","otp":"123456","playerId":"p","minAge":0}`: "minAge must be",
	} {
		if r := h.post(OTPConfirmPath, body); r.Status != 400 || !strings.Contains(r.Raw, want) {
			t.Errorf("confirm %s: %d %s, want 400 %q", body, r.Status, r.Raw, want)
		}
	}
	if h.fake.TokenCalls() != 0 {
		t.Error("a bad request reached i'mport")
	}
}

// TestScrub: personal data in any spelling leaves i'mport's message.
func TestScrub(t *testing.T) {
	for in, want := range map[string]string{
		"no match for 010-5555-1234 born 2000-01-01": "no match for [redacted] born [redacted]",
		"no match for 01055551234 (20000101)":        "no match for [redacted] ([redacted])",
		"홍길동SECRETNAME 님, 2000.01.01 생":              "[redacted] 님, [redacted] 생",
		"error 42: try again in 10 minutes":          "error 42: try again in 10 minutes",
		"code -1, 3 attempts":                        "code -1, 3 attempts",
	} {
		if got := scrub(in, pName); got != want {
			t.Errorf("scrub(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestPhoneLimitBounded: a flood of distinct numbers is held to maxPhones.
func TestPhoneLimitBounded(t *testing.T) {
	clk := testkit.NewClock(t0)
	l := newPhoneLimit(5, OTPWindow, clk.Now)
	for i := range maxPhones {
		l.take("0101" + strconv.Itoa(1000000+i))
	}
	if l.take("01099999999") {
		t.Error("a new number past maxPhones was let through")
	}
	if !l.take("01011000000") {
		t.Error("a known number under its limit was refused")
	}
	clk.Add(OTPWindow + 2*time.Second)
	if !l.take("01099999999") {
		t.Error("a new number refused after the window")
	}
}

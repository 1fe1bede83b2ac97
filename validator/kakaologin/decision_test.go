package kakaologin

import (
	"fmt"
	"testing"

	"playerguard/validator"
)

const app = "123456"

func info(id, appID string, expires int) string {
	return fmt.Sprintf(`{"id":%s,"expires_in":%d,"app_id":%s}`, id, expires, appID)
}

func errBodyOf(code int) string {
	return fmt.Sprintf(`{"code":%d,"msg":"some text that may change"}`, code)
}

// TestDecide names every row of the decision table.
func TestDecide(t *testing.T) {
	type want struct {
		verdict validator.Verdict
		reason  validator.Reason
		failure bool
	}
	allow := want{validator.Allow, validator.ReasonOK, false}
	kick := func(r validator.Reason) want { return want{validator.Kick, r, false} }
	down := want{validator.Unavailable, validator.ReasonUpstreamUnavailable, true}
	maint := want{validator.Unavailable, validator.ReasonUpstreamMaintenance, true}
	config := want{validator.Unavailable, ReasonRejectedConfig, false}
	f := func(name string, status int, body, claimed string, w want) {
		t.Helper()
		d := Decide(status, []byte(body), app, claimed)
		if d.Verdict != w.verdict || d.Reason != w.reason || d.Failure != w.failure {
			t.Errorf("%s: %v/%v failure=%v, want %v/%v failure=%v", name, d.Verdict, d.Reason, d.Failure, w.verdict, w.reason, w.failure)
		}
	}
	// 200 rows.
	f("valid", 200, info("9876543210", app, 3600), "", allow)
	f("valid, claimed", 200, info("9876543210", app, 3600), "9876543210", allow)
	f("64-bit id", 200, info("9223372036854775807", app, 10), "9223372036854775807", allow)
	f("another app", 200, info("9876543210", "654321", 3600), "", kick(ReasonWrongApp))
	f("another app beats mismatch", 200, info("1", "654321", 3600), "2", kick(ReasonWrongApp))
	f("another user", 200, info("9876543210", app, 3600), "1111", kick(validator.ReasonPlayerMismatch))
	for name, body := range map[string]string{
		"empty":            "",
		"not JSON":         "<html>ok</html>",
		"no id":            `{"expires_in":10,"app_id":123456}`,
		"no app_id":        `{"id":1,"expires_in":10}`,
		"no expires_in":    `{"id":1,"app_id":123456}`,
		"id as string":     `{"id":"1","expires_in":10,"app_id":123456}`,
		"id fraction":      `{"id":1.5,"expires_in":10,"app_id":123456}`,
		"id exponent":      `{"id":1e3,"expires_in":10,"app_id":123456}`,
		"app_id twice":     `{"id":1,"expires_in":10,"app_id":654321,"app_id":123456}`,
		"App_id variant":   `{"id":1,"expires_in":10,"app_id":654321,"APP_ID":123456}`,
		"leading zero":     `{"id":1,"expires_in":10,"app_id":0123456}`,
		"no time left":     `{"id":1,"expires_in":0,"app_id":123456}`,
		"negative time":    `{"id":1,"expires_in":-9223372037,"app_id":123456}`,
		"trailing garbage": info("1", app, 10) + "x",
		"array":            `[` + info("1", app, 10) + `]`,
		"invalid UTF-8":    "{\"id\":1,\"expires_in\":10,\"app_id\":123456,\"note\":\"\xeb\"}",
	} {
		f("200 "+name, 200, body, "", down)
	}

	// Kicks: the documented code with its documented status.
	f("-401", 401, errBodyOf(-401), "", kick(validator.ReasonInvalidToken))
	f("-406 underage", 401, errBodyOf(-406), "", kick(ReasonUnderage))
	f("-4 sanctioned", 403, errBodyOf(-4), "", kick(ReasonAccountBlocked))
	f("-101 not linked", 400, errBodyOf(-101), "", kick(ReasonNotLinked))
	f("-103 dormant", 400, errBodyOf(-103), "", kick(ReasonAccountDormant))

	// Outages, most of them HTTP 400.
	for _, c := range []int{-1, -10, -11, -603} {
		f(fmt.Sprint(c), 400, errBodyOf(c), "", down)
	}
	f("-7 maintenance", 400, errBodyOf(-7), "", maint)
	f("-9798 maintenance", 503, errBodyOf(-9798), "", maint)
	for _, s := range []int{500, 502, 503, 504, 408, 429, 302} {
		f(fmt.Sprint("status ", s), s, "", "", down)
		f(fmt.Sprint("status ", s, " html"), s, "<html>Bad Gateway</html>", "", down)
	}
	// The app's own setup or standing: unavailable, no failure, no kick.
	for _, c := range []struct{ code, status int }{{-2, 400}, {-8, 400}, {-3, 403}, {-5, 403}, {-6, 403}, {-9, 400}, {-12, 403}, {-903, 400}} {
		f(fmt.Sprint(c.code), c.status, errBodyOf(c.code), "", config)
	}
	// Anything else is unavailable, never a kick: unknown codes, a code
	// with another status than Kakao documents, a 401 or 403 without a
	// Kakao body (a proxy's page), duplicate codes.
	f("unknown code", 400, errBodyOf(-99999), "", down)
	f("-402 (no consent)", 403, errBodyOf(-402), "", down)
	f("-401 with 400", 400, errBodyOf(-401), "", down)
	f("-4 with 400", 400, errBodyOf(-4), "", down)
	f("-401 with 200", 200, errBodyOf(-401), "", down)
	f("401 html", 401, "<html>Unauthorized</html>", "", down)
	f("403 WAF", 403, "<html>blocked</html>", "", down)
	f("404 no body", 404, "", "", down)
	f("code twice", 401, `{"code":-1,"code":-401}`, "", down)
	f("CODE variant", 401, `{"code":-1,"CODE":-401}`, "", down)
	f("code as string", 401, `{"code":"-401"}`, "", down)
	f("invalid UTF-8", 401, "{\"code\":-401,\"msg\":\"\xff\"}", "", down)
}

func TestDecideUser(t *testing.T) {
	d := Decide(200, []byte(info("9876543210", app, 3600)), app, "")
	if d.User != (User{ID: "9876543210", AppID: app, ExpiresIn: 3600}) {
		t.Errorf("User = %+v", d.User)
	}
	if d := Decide(401, []byte(errBodyOf(-401)), app, ""); d.Code != -401 || !d.HasCode {
		t.Errorf("code = %d %v", d.Code, d.HasCode)
	}
}

func FuzzDecide(f *testing.F) {
	f.Add(200, []byte(info("1", app, 10)), "1")
	f.Add(401, []byte(errBodyOf(-401)), "")
	f.Add(400, []byte(errBodyOf(-7)), "")
	f.Fuzz(func(t *testing.T, status int, body []byte, claimed string) {
		d := Decide(status, body, app, claimed)
		if d.Verdict == validator.Allow && (status != 200 || d.User.AppID != app || claimed != "" && d.User.ID != claimed) {
			t.Fatalf("allow from %d %q claimed %q", status, body, claimed)
		}
		if d.Verdict == validator.Kick && status != 200 && status != 400 && status != 401 && status != 403 {
			t.Fatalf("kick from status %d", status)
		}
		if d.Failure && d.Verdict != validator.Unavailable {
			t.Fatalf("failure with verdict %v", d.Verdict)
		}
	})
}

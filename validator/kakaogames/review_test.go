package kakaogames

// Regression tests for the outside review (issue 11): each one drives the
// public HTTP API against the in-process fake upstream, scripting the fault
// per token (FaultRaw where an HTTP library would refuse to produce it).

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"playerguard/validator"
	"strings"
	"sync"
	"testing"
	"time"

	"playerguard/cache"
	"playerguard/validator/kakaogames/kakaogamestest"
)

// rawResponse is an HTTP/1.1 response with a JSON body, as bytes.
func rawResponse(status int, body string) string {
	return fmt.Sprintf("HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s",
		status, http.StatusText(status), len(body), body)
}

// oversized pads a Kakao error body past the 64 KiB upstream body cap.
func oversized(status int) []byte {
	return fmt.Appendf(nil, `{"desc":"Kicked. (%d.-1)","pad":"%s"}`, status, strings.Repeat("x", 70<<10))
}

// TestOversizedKickBodyIsKick (item 1): a 401, 406 or 46x whose body is
// over the cap is still a kick, never an outage: no breaker failure, no
// stale allow, no open-policy allow, no invented drop-in body.
func TestOversizedKickBodyIsKick(t *testing.T) {
	for _, policy := range []validator.Policy{validator.PolicyOpen, validator.PolicyStale} {
		t.Run(policy.String(), func(t *testing.T) {
			h := newHarness(t, func(c *testConfig) { c.Policy = policy; c.BreakerFailures = 1 })
			for _, c := range []struct {
				status int
				reason string
			}{{401, "invalid_token"}, {406, "not_acceptable"}, {462, "unregistering"}, {463, "lockout"}, {464, "sanction"}, {470, "abnormal_state"}} {
				tok := fmt.Sprint("tok-big-", c.status)
				// The player had an allow, now expired: the stale policy
				// would serve it if the kick were taken for an outage.
				h.fake.Set(tok, kakaogamestest.Allow(testApp, "p1", "normal"))
				h.expect(h.check(tok, "mobile", "p1"), 200, "allow", "ok", "upstream")
				h.clk.Add(6 * time.Minute)
				h.fake.Set(tok, kakaogamestest.Verdict{Status: c.status, Body: oversized(c.status)})
				h.expect(h.check(tok, "mobile", "p1"), 403, "kick", c.reason, "upstream")
				r := h.dropIn(map[string]string{"accessToken": tok, "platform": "mobile", "playerId": "p1"})
				if r.status != c.status || r.header.Get("X-Playerguard-Decision") != "kick" {
					t.Errorf("%d drop-in: %d %s", c.status, r.status, r.raw)
				}
			}
			if n := h.v.BreakerFailures(Name); n != 0 {
				t.Errorf("breaker counted %d failures for kicks", n)
			}
			if !strings.Contains(h.logs.String(), "upstream kick's body dropped") {
				t.Error("no log line says the kick's body was dropped")
			}
			// An oversized 200 is still unreadable: unavailable.
			h.fake.Set("tok-big-200", kakaogamestest.Verdict{Status: 200, Body: oversized(200)})
			if r := h.check("tok-big-200", "mobile", ""); r.str("reason") == "ok" && r.str("source") == "upstream" {
				t.Errorf("oversized 200 allowed: %s", r.raw)
			}
		})
	}
}

// TestTokenKickEndsEveryAllowOfToken (item 2): an invalid_token verdict
// drops the token's cached allows under every claimed playerId and every
// platform, fresh and stale; with -negative-ttl the cached kick answers
// the token under any claim on the same platform, and not on another.
func TestTokenKickEndsEveryAllowOfToken(t *testing.T) {
	h := newHarness(t, func(c *testConfig) { c.NegativeTTL = time.Minute })
	const tok = "tok-revoked"
	h.fake.Set(tok, kakaogamestest.Allow(testApp, "p1", "normal"))
	for _, c := range [][2]string{{"mobile", "p1"}, {"pc", "p1"}, {"mobile", ""}} {
		h.expect(h.check(tok, c[0], c[1]), 200, "allow", "ok", "upstream")
		h.expect(h.check(tok, c[0], c[1]), 200, "allow", "ok", "cache")
	}
	h.fake.Set(tok, kakaogamestest.Invalid())
	h.expect(h.check(tok, "web", ""), 403, "kick", "invalid_token", "upstream")
	calls := h.fake.TokenCalls(tok)
	// Every claim on the kick's platform: the cached kick, no upstream call.
	h.expect(h.check(tok, "web", "p1"), 403, "kick", "invalid_token", "cache")
	h.expect(h.check(tok, "web", "someone"), 403, "kick", "invalid_token", "cache")
	if n := h.fake.TokenCalls(tok); n != calls {
		t.Errorf("cached kick made %d upstream calls", n-calls)
	}
	// Other platforms: the allows are gone (not served fresh), and the
	// kick is not assumed there either: the upstream is asked.
	h.expect(h.check(tok, "mobile", "p1"), 403, "kick", "invalid_token", "upstream")
	// Nor stale in the next outage.
	h.fake.SetOverride(&kakaogamestest.Verdict{Status: 500})
	h.clk.Add(2 * time.Minute)
	for _, c := range [][2]string{{"pc", "p1"}, {"mobile", ""}} {
		if r := h.check(tok, c[0], c[1]); r.status != 503 {
			t.Errorf("%s/%q after the token's kick, in an outage: %d %s, want 503", c[0], c[1], r.status, r.raw)
		}
	}
}

// TestPurgeOnlyOnVerdictAboutPlayer (item 3): a garbage token (or someone
// else's valid one) sent with a victim's playerId does not purge the
// victim, however many are sent; a verdict naming the victim does.
func TestPurgeOnlyOnVerdictAboutPlayer(t *testing.T) {
	h := newHarness(t, nil)
	h.fake.Set("tok-victim", kakaogamestest.Allow(testApp, "victim", "normal"))
	h.expect(h.check("tok-victim", "mobile", "victim"), 200, "allow", "ok", "upstream")
	h.fake.Set("tok-attacker", kakaogamestest.Allow(testApp, "attacker", "normal"))

	h.expect(h.check("tok-garbage", "mobile", "victim"), 403, "kick", "invalid_token", "upstream")
	h.expect(h.check("tok-attacker", "mobile", "victim"), 403, "kick", "player_mismatch", "upstream")
	h.expect(h.check("tok-victim", "mobile", "victim"), 200, "allow", "ok", "cache")

	// More purges than the old tombstone table held (1,250 for this
	// 10,000-entry cache) flushed every entry; none of these purge at all.
	for i := range 1300 {
		r := h.check(fmt.Sprint("tok-spray-", i), "mobile", fmt.Sprint("player-", i))
		if r.status != 403 {
			t.Fatalf("spray %d: %d %s", i, r.status, r.raw)
		}
	}
	h.expect(h.check("tok-victim", "mobile", "victim"), 200, "allow", "ok", "cache")
	// And the outage protection is still there.
	h.clk.Add(6 * time.Minute)
	h.fake.SetOverride(&kakaogamestest.Verdict{Status: 500})
	h.expect(h.check("tok-victim", "mobile", "victim"), 200, "allow", "ok", "stale")
	h.fake.SetOverride(nil)

	// A verdict about the victim (a lockout naming them, on another token)
	// purges them: their stale allow is not served in the next outage.
	h.fake.Set("tok-victim-2", kakaogamestest.Lockout(testApp, "victim"))
	h.expect(h.check("tok-victim-2", "pc", ""), 403, "kick", "lockout", "upstream")
	h.fake.SetOverride(&kakaogamestest.Verdict{Status: 500})
	h.expect(h.check("tok-victim", "mobile", "victim"), 503, "unavailable", "upstream_unavailable", "upstream")
}

// TestStrictUpstreamBodies (item 4): a 200 whose body reads two ways is
// unavailable, never an allow, in both APIs; the drop-in never passes it.
func TestStrictUpstreamBodies(t *testing.T) {
	h := newHarness(t, func(c *testConfig) { c.Policy = validator.PolicyClosed; c.BreakerFailures = 100 })
	for i, body := range []string{
		`{"player":{"playerId":"p1","status":"sanctioned","status":"normal"}}`,
		`{"player":{"playerId":"p1","status":"sanctioned","STATUS":"normal"}}`,
		`{"player":{"playerId":"p1","status":"sanctioned","ſtatus":"normal"}}`,
		`{"player":{"playerId":"p1","status":"sanctioned","st\u0061tus":"normal"}}`,
		`{"player":{"playerId":"p1","status":"sanctioned"},"player":{"playerId":"p1","status":"normal"}}`,
		`{"player":{"playerId":"p1","status":"sanctioned"},"Player":{"playerId":"p1","status":"normal"}}`,
		`{"player":{"PlayerID":"p1","status":"normal"}}`,
	} {
		tok := fmt.Sprint("tok-two-ways-", i)
		h.fake.Set(tok, kakaogamestest.Verdict{Status: 200, Body: []byte(body)})
		h.expect(h.check(tok, "mobile", "p1"), 503, "unavailable", "upstream_unavailable", "upstream")
		r := h.dropIn(map[string]string{"accessToken": tok, "platform": "mobile", "playerId": "p1"})
		if r.status != 503 || strings.Contains(r.raw, "normal") {
			t.Errorf("drop-in %s: %d %s", body, r.status, r.raw)
		}
	}
}

// TestOneRequestOneForm (item 5): a JSON body with any of the three fields
// as headers too is a 400 naming the conflict, and is never forwarded.
func TestOneRequestOneForm(t *testing.T) {
	h := newHarness(t, nil)
	h.fake.Set("tok-a", kakaogamestest.Allow(testApp, "p1", "normal"))
	for _, hdr := range []string{"playerId", "accessToken", "platform", "PLAYERID"} {
		req, _ := http.NewRequest("POST", h.url+Path, strings.NewReader(`{"accessToken":"tok-a","platform":"mobile"}`))
		req.Header.Set(hdr, "victim")
		r := h.do(req)
		want := strings.ToLower(hdr)
		if r.status != 400 || !strings.Contains(strings.ToLower(r.str("error")), want+" header") {
			t.Errorf("body + %s header: %d %s", hdr, r.status, r.raw)
		}
	}
	// A body key that is a known one but for its case is refused too:
	// the claim it carries would otherwise be dropped unchecked.
	r := h.post(`{"accessToken":"tok-a","platform":"mobile","PlayerId":"victim"}`)
	if r.status != 400 || !strings.Contains(r.str("error"), "playerId") {
		t.Errorf("PlayerId key: %d %s", r.status, r.raw)
	}
	if n := h.fake.Calls(); n != 0 {
		t.Errorf("%d upstream calls for refused requests", n)
	}
	// Each form alone still works.
	h.expect(h.post(`{"accessToken":"tok-a","platform":"mobile","playerId":"p1"}`), 200, "allow", "ok", "upstream")
	req, _ := http.NewRequest("POST", h.url+Path, nil)
	req.Header.Set("accessToken", "tok-a")
	req.Header.Set("platform", "mobile")
	req.Header.Set("playerId", "p1")
	h.expect(h.do(req), 200, "allow", "ok", "cache")
}

// TestOutOfStepConnectionNeverReused (item 6): bytes the upstream sent that
// no request asked for are never read as the next validation's answer.
func TestOutOfStepConnectionNeverReused(t *testing.T) {
	allowB := rawResponse(200, `{"player":{"kgAppId":"909428","playerId":"pB","status":"normal"}}`)
	allowA := rawResponse(200, `{"player":{"kgAppId":"909428","playerId":"pA","status":"normal"}}`)
	cases := []struct {
		name   string
		raw    string
		status int // what tok-first itself gets
	}{
		{"unsolicited response after the answer", allowA + allowB, 503},
		{"204 followed by bytes", "HTTP/1.1 204 No Content\r\n\r\n" + allowB, 503},
		{"304 followed by bytes", "HTTP/1.1 304 Not Modified\r\n\r\n" + allowB, 503},
		{"101", "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n" + allowB, 503},
		{"unknown 1xx before the answer", "HTTP/1.1 199 Whatever\r\n\r\n" + allowA, 503},
		{"stray response on an idle connection", allowA + kakaogamestest.RawPause + allowB, 200},
		{"100 Continue is fine", "HTTP/1.1 100 Continue\r\n\r\n" + allowA, 200},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := newHarness(t, func(cfg *testConfig) { cfg.Policy = validator.PolicyClosed; cfg.MaxUpstreamConns = 1 })
			h.fake.Set("tok-first", kakaogamestest.Verdict{Fault: kakaogamestest.FaultRaw, Raw: []byte(c.raw)})
			r := h.check("tok-first", "mobile", "")
			if r.status != c.status {
				t.Fatalf("tok-first: %d %s, want %d", r.status, r.raw, c.status)
			}
			if strings.Contains(c.raw, kakaogamestest.RawPause) {
				waitFor(t, "the stray response", func() bool { return h.fake.RawWrites() == 1 })
			}
			// The upstream would refuse this token: whatever the first
			// exchange left on the connection must not answer it.
			h.expect(h.check("tok-second", "mobile", ""), 403, "kick", "invalid_token", "upstream")
			if c.status == 503 && h.metric("playerguard_upstream_requests_total", "outcome", "protocol_error") != 1 {
				t.Error("the out-of-step response is not counted as protocol_error")
			}
		})
	}
}

// TestForeign4xxIsNotVerdict (item 7): a 403 or 404 without a Kakao error
// body (a wrong -upstream path, a WAF page) kicks nobody: it is an upstream
// failure, the outage policy answers, and an error line says what to check.
func TestForeign4xxIsNotVerdict(t *testing.T) {
	h := newHarness(t, func(c *testConfig) { c.BreakerFailures = 100 })
	h.fake.Set("tok-a", kakaogamestest.Allow(testApp, "p1", "normal"))
	h.expect(h.check("tok-a", "mobile", "p1"), 200, "allow", "ok", "upstream")
	h.clk.Add(6 * time.Minute)
	for _, v := range []kakaogamestest.Verdict{
		{Status: 404, Body: []byte("<html><body>404 Not Found</body></html>"), ContentType: "text/html"},
		{Status: 403, Body: []byte("<html>Request blocked by the WAF</html>"), ContentType: "text/html"},
		{Status: 403, Body: []byte(`{"desc":"Forbidden (401.-1)"}`)},
		{Status: 418},
	} {
		h.fake.SetOverride(&v)
		h.expect(h.check("tok-a", "mobile", "p1"), 200, "allow", "ok", "stale")
		h.expect(h.check("tok-new", "mobile", "p1"), 503, "unavailable", "upstream_unavailable", "upstream")
	}
	if !strings.Contains(h.logs.String(), "upstream answered 404 Not Found") {
		t.Errorf("no error line names the foreign 404:\n%s", h.logs.String())
	}
	// A Kakao error body of the same status is Kakao's verdict.
	h.fake.SetOverride(&kakaogamestest.Verdict{Status: 403, Body: []byte(`{"desc":"Forbidden. (403.-10200)"}`)})
	h.expect(h.check("tok-a", "mobile", "p1"), 403, "kick", "abnormal_state", "upstream")
	// Statuses about the connection are like 400: not verdicts, not failures.
	for _, s := range []int{407, 421, 425, 426, 428} {
		h.fake.SetOverride(&kakaogamestest.Verdict{Status: s})
		h.expect(h.check(fmt.Sprint("tok-conn-", s), "mobile", ""), 503, "unavailable", "upstream_unavailable", "upstream")
	}
}

// TestNoSecretInLogsOrResponses (item 8): an upstream that echoes every
// request header into its bodies and error responses, a malformed answer
// fasthttp quotes, and a malformed caller request at debug level: the app
// secret, the admin key and the access token reach no log line, metric
// or response.
func TestNoSecretInLogsOrResponses(t *testing.T) {
	h := newHarness(t, func(c *testConfig) { c.Policy = validator.PolicyClosed; c.BreakerFailures = 100 })
	const token = "TOKEN-recognisable-5f2c9a"
	echo := kakaogamestest.EchoMark
	verdicts := []kakaogamestest.Verdict{
		{Status: 500, Body: []byte(`{"desc":"internal error, request was ` + echo + ` (500.-1)"}`)},
		{Status: 503, Body: []byte(`<html>` + echo + `</html>`), ContentType: "text/html"},
		{Status: 400, Body: []byte(`{"desc":"bad request ` + echo + ` (400.-1)"}`)},
		{Status: 404, Body: []byte(`{"desc":"no route for ` + echo + `"}`)},
		{Status: 429, Body: []byte(`{"desc":"slow down ` + echo + ` (429.-1)"}`)},
		{Status: 401, Body: []byte(`{"desc":"Token is invalid: ` + echo + ` (401.-29401)"}`)},
		{Status: 401, Body: []byte(`{"desc":"Token is invalid. (401.-29401)"}`)}, // a kick, to search its audit line
		{Status: 463, Body: []byte(`{"desc":"lockout ` + echo + ` (463.-1)","lockout":{"idType":"playerId","id":"p1"}}`)},
		{Status: 200, Body: []byte(`{"player":{"playerId":"p1","status":"normal","nickname":"` + echo + `"}}`)},
		{Fault: kakaogamestest.FaultRaw, Raw: []byte("HTTP/1.1 2OO " + echo + "\r\n\r\n")},
		{Fault: kakaogamestest.FaultRaw, Raw: []byte("HTTP/1.1 200 OK\r\n" + strings.ReplaceAll(echo, "\r\n", "") + " bad header\r\nContent-Length: 2\r\n\r\n{}")},
		{Fault: kakaogamestest.FaultRaw, Raw: []byte("HTTP/1.1 200 OK\r\nX-Echo: " + echo + "\r\nContent-Length: 2\r\n\r\n{}")},
	}
	var responses strings.Builder
	for _, v := range verdicts {
		h.fake.SetOverride(&v)
		for _, player := range []string{"", "p1"} {
			r := h.check(token, "mobile", player)
			responses.WriteString(fmt.Sprint(r.header) + r.raw)
			r = h.dropIn(map[string]string{"accessToken": token, "platform": "mobile", "playerId": player})
			responses.WriteString(fmt.Sprint(r.header) + r.raw)
		}
	}
	if n := h.fake.Calls(); n < int64(len(verdicts)) {
		t.Fatalf("only %d upstream calls", n)
	}
	// A caller request fasthttp cannot parse, with the token in a header.
	for _, req := range []string{
		"POST /v1/validate HTTP/1.1\r\nHost: x\r\naccessToken: " + token + "\r\nbad header line\r\n\r\n",
		"POST /v1/validate HTTP/1.1\r\nHost: x\r\naccessToken: " + token + "\r\nContent-Length: zz\r\n\r\n",
	} {
		for _, resp := range h.raw(req) {
			responses.WriteString(bodyOf(resp))
		}
	}
	var scrape strings.Builder
	mfs, _ := h.reg.Gather()
	for _, mf := range mfs {
		scrape.WriteString(mf.String())
	}
	logs := h.logs.String()
	for where, text := range map[string]string{"logs": logs, "metrics": scrape.String(), "responses": responses.String()} {
		for _, secret := range []string{token, testSecret, testKey} {
			if strings.Contains(text, secret) {
				t.Errorf("%s contain %q", where, secret)
			}
		}
	}
	for _, want := range []string{"upstream failure", `"msg":"kick"`} {
		if !strings.Contains(logs, want) {
			t.Errorf("logs lack %q: the paths this test searches did not run", want)
		}
	}
}

// TestUpstreamHeaderCase (item 12): the upstream request carries appSecret,
// kgAppId, accessToken and playerId in the case the Kakao docs show.
func TestUpstreamHeaderCase(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	heads := make(chan string, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		br := bufio.NewReader(c)
		var head strings.Builder
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				return
			}
			head.WriteString(line)
			if line == "\r\n" {
				break
			}
		}
		heads <- head.String()
		io.WriteString(c, rawResponse(200, `{"player":{"playerId":"p1","status":"normal"}}`))
	}()
	h := newHarness(t, func(c *testConfig) { c.Upstream = "http://" + ln.Addr().String() })
	h.expect(h.check("tok-case", "mobile", "p1"), 200, "allow", "ok", "upstream")
	head := <-heads
	for _, name := range []string{"\r\nappSecret: ", "\r\nkgAppId: ", "\r\naccessToken: tok-case\r\n", "\r\nplayerId: p1\r\n", "\r\nplatform: mobile\r\n", "\r\nAuthorization: KakaoAK "} {
		if !strings.Contains(head, name) {
			t.Errorf("upstream request lacks %q:\n%s", name, head)
		}
	}
}

// TestUpstreamOutcomeNonStandard (item 12): a status outside 200-599 is
// counted as outcome "other", not as a 5xx.
func TestUpstreamOutcomeNonStandard(t *testing.T) {
	h := newHarness(t, func(c *testConfig) { c.Policy = validator.PolicyClosed })
	h.fake.Set("tok-600", kakaogamestest.Verdict{Fault: kakaogamestest.FaultRaw, Raw: []byte("HTTP/1.1 600 Strange\r\nContent-Length: 0\r\n\r\n")})
	h.expect(h.check("tok-600", "mobile", ""), 503, "unavailable", "upstream_unavailable", "upstream")
	if got := h.metric("playerguard_upstream_requests_total", "outcome", "other"); got != 1 {
		t.Errorf("outcome other = %v, want 1", got)
	}
	if got := h.metric("playerguard_upstream_requests_total", "outcome", "5xx"); got != 0 {
		t.Errorf("outcome 5xx = %v, want 0", got)
	}
}

// TestAdminPurgeStrictBody (item 12): /admin/purge refuses trailing data,
// duplicate keys, case-folded and unknown keys, and purges nothing then.
func TestAdminPurgeStrictBody(t *testing.T) {
	h := newHarness(t, nil)
	h.fake.Set("tok-a", kakaogamestest.Allow(testApp, "p1", "normal"))
	h.expect(h.check("tok-a", "mobile", "p1"), 200, "allow", "ok", "upstream")
	for _, body := range []string{
		`{"playerId":"p1"} {"playerId":"p2"}`,
		`{"playerId":"p1"}x`,
		`{"playerId":"p2","playerId":"p1"}`,
		`{"PlayerId":"p1"}`,
		`{"playerid":"p1"}`,
		`{"playerId":"p1","scope":"all"}`,
	} {
		resp := h.admin(testAdmin, body)
		msg, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 400 {
			t.Errorf("%s: %d %s, want 400", body, resp.StatusCode, msg)
		}
	}
	h.expect(h.check("tok-a", "mobile", "p1"), 200, "allow", "ok", "cache")
	if resp := h.admin(testAdmin, `{"playerId":"p1"}`); resp.StatusCode != 200 {
		t.Fatalf("good purge: %d", resp.StatusCode)
	}
	h.expect(h.check("tok-a", "mobile", "p1"), 200, "allow", "ok", "upstream")
}

// Found by the hostile review of the first fixes: each failed on fec59ad.

// TestIdlePooledConnectionStillUsed: a pooled connection idle past its
// last call's deadline is reused, not taken for one with unread data (the
// peek used to fail on the expired deadline, and nine such connections in
// a row failed the call and opened the breaker).
func TestIdlePooledConnectionStillUsed(t *testing.T) {
	h := newHarness(t, func(c *testConfig) {
		c.UpstreamTimeout = 200 * time.Millisecond
		c.MaxUpstreamConns = 64
		c.Policy = validator.PolicyClosed
		c.BreakerFailures = 2
	})
	h.fake.SetDefault(kakaogamestest.Allow(testApp, "p", "normal"))
	h.fake.SetLatency(50 * time.Millisecond)
	var wg sync.WaitGroup
	for i := range 30 { // 30 connections in the pool
		wg.Go(func() { h.check(fmt.Sprint("tok-burst-", i), "mobile", "") })
	}
	wg.Wait()
	h.fake.SetLatency(0)
	// Past every pooled connection's last deadline: the real clock, as
	// the deadlines are the kernel's.
	time.Sleep(300 * time.Millisecond)
	for i := range 12 {
		h.expect(h.check(fmt.Sprint("tok-after-", i), "mobile", ""), 200, "allow", "ok", "upstream")
	}
	if n := h.metric("playerguard_upstream_requests_total", "outcome", "protocol_error"); n != 0 {
		t.Errorf("%v idle connections taken for out of step", n)
	}
}

// TestTLSStrayBytesNeverAnswer: over TLS, a stray response that crypto/tls
// has already decrypted (the rest of a 16 KiB record after the body) does
// not answer the next validation.
func TestTLSStrayBytesNeverAnswer(t *testing.T) {
	first := rawResponse(200, `{"player":{"kgAppId":"909428","playerId":"pA","status":"normal"},"pad":"`+strings.Repeat("x", 10000)+`"}`)
	stray := rawResponse(200, `{"player":{"kgAppId":"909428","playerId":"ghost","status":"normal"}}`)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("accessToken") == "tok-first" {
			c, _, _ := w.(http.Hijacker).Hijack()
			c.Write([]byte(first + stray)) // one write: one 16 KiB record
			io.Copy(io.Discard, c)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(401)
		w.Write([]byte(`{"desc":"Token is invalid. (401.-29401)"}`))
	}))
	srv.TLS = &tls.Config{DynamicRecordSizingDisabled: true}
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.StartTLS()
	defer srv.Close()
	ca := filepath.Join(t.TempDir(), "ca.pem")
	os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600)
	h := newHarness(t, func(c *testConfig) {
		c.Upstream = srv.URL
		c.UpstreamCAFile = ca
		c.MaxUpstreamConns = 1
		c.Policy = validator.PolicyClosed
	})
	h.expect(h.check("tok-first", "mobile", ""), 503, "unavailable", "upstream_unavailable", "upstream")
	h.expect(h.check("tok-never-valid", "mobile", ""), 403, "kick", "invalid_token", "upstream")
}

// blockingCache holds every allow's cache write until released: the
// window in which the allow's flight can still be joined.
type blockingCache struct {
	*cache.Cache[*validator.Result]
	release chan struct{}
}

func (b *blockingCache) Set(k *cache.Key, tags cache.Tags, s cache.Stamp, fresh, stale time.Duration, v *validator.Result) bool {
	if v.Verdict == validator.Allow {
		<-b.release
	}
	return b.Cache.Set(k, tags, s, fresh, stale, v)
}

// TestKickDetachesFlightsOfToken: after a kick of a token is answered, no
// validation joins an allow of that token fetched before it, even one
// still being written to the cache.
func TestKickDetachesFlightsOfToken(t *testing.T) {
	bc := &blockingCache{release: make(chan struct{})}
	h := newHarness(t, func(c *testConfig) {
		c.wrapCache = func(inner *cache.Cache[*validator.Result]) validator.Cache {
			bc.Cache = inner
			return bc
		}
	})
	var once sync.Once
	release := func() { once.Do(func() { close(bc.release) }) }
	defer release()
	post := func(player string) reply { // not h.check: it waits for settling flights
		b, _ := json.Marshal(map[string]string{"accessToken": "tok-a", "platform": "mobile", "playerId": player})
		resp, err := h.http.Post(h.url+Path, "application/json", bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		r := reply{status: resp.StatusCode, raw: string(raw)}
		json.Unmarshal(raw, &r.body)
		return r
	}
	h.fake.Set("tok-a", kakaogamestest.Allow(testApp, "p1", "normal"))
	h.expect(post("p1"), 200, "allow", "ok", "upstream") // its cache write is held
	h.fake.Set("tok-a", kakaogamestest.Invalid())
	h.expect(post(""), 403, "kick", "invalid_token", "upstream")
	h.expect(post("p1"), 403, "kick", "invalid_token", "upstream")
	release()
	h.v.Settle()
	h.expect(post("p1"), 403, "kick", "invalid_token", "upstream") // the held write was refused
}

// TestWrongUpstreamPathKicksNobody: a wrong -upstream path answers 404
// with a Kakao-shaped body (the fake does, as Kakao's gateway may); it is
// no verdict.
func TestWrongUpstreamPathKicksNobody(t *testing.T) {
	h := newHarness(t, func(c *testConfig) { c.Upstream += "/wrong-base"; c.Policy = validator.PolicyClosed })
	h.fake.SetDefault(kakaogamestest.Allow(testApp, "p1", "normal"))
	h.expect(h.check("tok-good", "mobile", "p1"), 503, "unavailable", "upstream_unavailable", "upstream")
	if !strings.Contains(h.logs.String(), "upstream answered 404 Not Found") {
		t.Errorf("no error line names the 404:\n%s", h.logs.String())
	}
}

// TestInvalidHeaderValueNotLogged: fasthttp's "invalid header value %q"
// ignores SecureErrorLogMessage; its debug line must not carry the token.
func TestInvalidHeaderValueNotLogged(t *testing.T) {
	h := newHarness(t, nil)
	const tok = "TOKEN-in-a-bad-header-77"
	for _, end := range []string{"\r", "\x01", "\x7f"} {
		h.raw("GET " + Path + " HTTP/1.1\r\nHost: pg\r\nplatform: mobile\r\naccessToken: " + tok + end + "\r\n\r\n")
	}
	if logs := h.logs.String(); strings.Contains(logs, tok) || !strings.Contains(logs, "fasthttp") {
		t.Errorf("logs:\n%s", logs)
	}
}

// TestEscapedEchoDropped: a gateway that JSON-escapes what it echoes
// ("\/" for "/", \u escapes) still has the body dropped.
func TestEscapedEchoDropped(t *testing.T) {
	const secret = "app/secret/with+slash="
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		esc := strings.ReplaceAll(r.Header.Get("appSecret"), "/", `\/`)
		esc = strings.Replace(esc, "a", `\u0061`, 1)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(463)
		fmt.Fprintf(w, `{"desc":"debug appSecret=%s (463.-10103)"}`, esc)
	}))
	defer up.Close()
	h := newHarness(t, func(c *testConfig) { c.AppSecret = secret; c.Upstream = up.URL })
	r := h.check("tok-echo", "mobile", "p1")
	// An answer echoing our request is nobody's verdict.
	h.expect(r, 503, "unavailable", "upstream_unavailable", "upstream")
	d := h.dropIn(map[string]string{"accessToken": "tok-echo", "platform": "mobile"})
	for _, text := range []string{r.raw, d.raw, h.logs.String()} {
		if strings.Contains(text, secret) || strings.Contains(text, `app\/secret`) {
			t.Errorf("the secret came through: %s", text)
		}
	}
}

// TestNegativeCacheAuditNamesClaim: a kick answered from the negative
// cache is logged under the request's claim, not the first kicked one's.
func TestNegativeCacheAuditNamesClaim(t *testing.T) {
	h := newHarness(t, func(c *testConfig) { c.NegativeTTL = time.Minute })
	h.expect(h.check("tok-garbage", "mobile", "first-claim"), 403, "kick", "invalid_token", "upstream")
	h.expect(h.check("tok-garbage", "mobile", "second-claim"), 403, "kick", "invalid_token", "cache")
	lines := strings.Split(strings.TrimSpace(h.logs.String()), "\n")
	if last := lines[len(lines)-1]; !strings.Contains(last, `"player":"second-claim"`) {
		t.Errorf("last kick line: %s", last)
	}
}

// TestDroppedKickBodyPurgesClaim: a sanction whose body was dropped names
// nobody; it purges the claimed player, so their other allows are not
// served stale in the next outage.
func TestDroppedKickBodyPurgesClaim(t *testing.T) {
	h := newHarness(t, nil)
	h.fake.Set("tok-phone", kakaogamestest.Allow(testApp, "p1", "normal"))
	h.expect(h.check("tok-phone", "mobile", "p1"), 200, "allow", "ok", "upstream")
	h.fake.Set("tok-pc", kakaogamestest.Verdict{Status: 464, Body: oversized(464)})
	h.expect(h.check("tok-pc", "pc", "p1"), 403, "kick", "sanction", "upstream")
	h.clk.Add(6 * time.Minute)
	h.fake.SetOverride(&kakaogamestest.Verdict{Status: 500})
	h.expect(h.check("tok-phone", "mobile", "p1"), 503, "unavailable", "upstream_unavailable", "upstream")
}

// Found by the second hostile review: each failed on 67136ea.

// TestDuplicateClaimHeadersRefused: a field sent on two header lines (the
// second differing in case, or the first empty) is a 400 on both
// endpoints: a game server keeping the last playerId would act on a claim
// nobody checked.
func TestDuplicateClaimHeadersRefused(t *testing.T) {
	h := newHarness(t, nil)
	h.fake.Set("tok-attacker", kakaogamestest.Allow(testApp, "attacker", "normal"))
	for _, hdrs := range []string{"playerId: attacker\r\nplayerId: victim\r\n", "playerId: \r\nplayerId: victim\r\n", "playerId: attacker\r\nPlayerID: victim\r\n"} {
		for _, path := range []string{Path, ValidationPath} {
			rs := h.raw("POST " + path + " HTTP/1.1\r\nHost: pg\r\nplatform: mobile\r\naccessToken: tok-attacker\r\n" + hdrs + "Content-Length: 0\r\n\r\n")
			if len(rs) != 1 || rs[0].StatusCode != 400 || !strings.Contains(bodyOf(rs[0]), "playerId header is sent more than once") {
				t.Errorf("%s with %q: %v", path, hdrs, rs)
			}
		}
	}
	if n := h.fake.Calls(); n != 0 {
		t.Errorf("%d upstream calls", n)
	}
}

// TestDropInNeverAnswersAKickOrAFailureAsKakaoWould: a kick playerguard
// made of a 200 is a 403, never a 2xx; a 4xx that is no verdict is a 503,
// never a 4xx a Kakao-shaped caller takes for a kick.
func TestDropInNeverAnswersAKickOrAFailureAsKakaoWould(t *testing.T) {
	h := newHarness(t, func(c *testConfig) { c.Policy = validator.PolicyClosed; c.BreakerFailures = 100 })
	h.fake.Set("tok-of-A", kakaogamestest.Allow(testApp, "A", "normal"))
	h.fake.Set("tok-del", kakaogamestest.Allow(testApp, "C", "delete"))
	for _, c := range [][2]string{{"tok-of-A", "B"}, {"tok-del", ""}} {
		r := h.dropIn(map[string]string{"accessToken": c[0], "platform": "mobile", "playerId": c[1]})
		if r.status != 403 || r.header.Get("X-Playerguard-Decision") != "kick" {
			t.Errorf("%s: %d %s", c[0], r.status, r.raw)
		}
	}
	h.fake.Set("tok-waf", kakaogamestest.Verdict{Status: 403, ContentType: "text/html", Body: []byte("<html>Forbidden by WAF</html>")})
	h.fake.Set("tok-404", kakaogamestest.Verdict{Status: 404, Body: []byte(`{"desc":"Not found. (404.0)"}`)})
	h.fake.Set("tok-429", kakaogamestest.Verdict{Status: 429, Body: []byte(`{"desc":"Slow down. (429.-1)"}`)})
	h.fake.Set("tok-400", kakaogamestest.Verdict{Status: 400, Body: []byte(`{"desc":"Bad. (400.-1)"}`)})
	for _, tok := range []string{"tok-waf", "tok-404", "tok-429", "tok-400"} {
		r := h.dropIn(map[string]string{"accessToken": tok, "platform": "mobile", "playerId": "p1"})
		if r.status != 503 || r.header.Get("X-Playerguard-Decision") != "unavailable" {
			t.Errorf("%s: %d %s", tok, r.status, r.raw)
		}
	}
}

// TestTrailingCRLFKeepsTheAnswer: line ends after a complete response (a
// known buggy-server habit) leave the answer standing; the connection is
// closed.
func TestTrailingCRLFKeepsTheAnswer(t *testing.T) {
	h := newHarness(t, func(c *testConfig) { c.Policy = validator.PolicyOpen; c.BreakerFailures = 100 })
	lock := kakaogamestest.Lockout(testApp, "p1")
	h.fake.Set("tok-locked", kakaogamestest.Verdict{Fault: kakaogamestest.FaultRaw, Raw: []byte(rawResponse(463, string(lock.Body)) + "\r\n")})
	h.expect(h.check("tok-locked", "mobile", "p1"), 403, "kick", "lockout", "upstream")
	h.expect(h.check("tok-next", "mobile", ""), 403, "kick", "invalid_token", "upstream")
}

// TestNoKickForRefusedCredentialsOrProxyPages: Kakao's "App
// authentication failed (401.-29001)" and a proxy's 401 page kick nobody
// and purge nothing; a stale allow still serves in the next outage.
func TestNoKickForRefusedCredentialsOrProxyPages(t *testing.T) {
	h := newHarness(t, func(c *testConfig) { c.BreakerFailures = 100 })
	h.fake.Set("tok-good", kakaogamestest.Allow(testApp, "p1", "normal"))
	h.expect(h.check("tok-good", "mobile", "p1"), 200, "allow", "ok", "upstream")
	h.clk.Add(6 * time.Minute)
	for _, v := range []kakaogamestest.Verdict{
		{Status: 401, Body: []byte(`{"desc":"App authentication failed. (401.-29001)"}`)},
		{Status: 401, ContentType: "text/html", Body: []byte("<html><title>401 Authorization Required</title>nginx</html>")},
	} {
		h.fake.SetOverride(&v)
		if r := h.check("tok-good", "mobile", "p1"); r.str("decision") != "allow" || r.str("source") != "stale" {
			t.Errorf("%s: %s", v.Body, r.raw)
		}
	}
	if !strings.Contains(h.logs.String(), "upstream refused playerguard's credentials") {
		t.Error("no error line for the refused credentials")
	}
}

// TestFailureBodyNamesNoOne: a degraded allow or a 503 never carries the
// player object of the failed response.
func TestFailureBodyNamesNoOne(t *testing.T) {
	h := newHarness(t, func(c *testConfig) { c.Policy = validator.PolicyOpen; c.BreakerFailures = 100 })
	h.fake.SetOverride(&kakaogamestest.Verdict{Status: 503, Body: []byte(`{"player":{"playerId":"someone-else","status":"normal"},"desc":"down (503.-1)"}`)})
	if r := h.check("tok-x", "mobile", "p1"); strings.Contains(r.raw, "someone-else") {
		t.Errorf("open policy: %s", r.raw)
	}
}

// Found by the third hostile review: each failed on 79b55b1.

// TestTrailerClaimRefused: a field in a chunked request's trailer (which
// fasthttp's Peek, and so a fasthttp game server, falls back to) is a 400,
// never an unchecked claim.
func TestTrailerClaimRefused(t *testing.T) {
	h := newHarness(t, nil)
	h.fake.Set("tok-attacker", kakaogamestest.Allow(testApp, "attacker", "normal"))
	body := `{"accessToken":"tok-attacker","platform":"mobile"}`
	const te = "Transfer-Encoding: chunked\r\n\r\n"
	for name, req := range map[string]string{
		"drop-in, announced":   "POST " + ValidationPath + " HTTP/1.1\r\nHost: pg\r\nTrailer: playerId\r\nplatform: mobile\r\naccessToken: tok-attacker\r\n" + te + "0\r\nplayerId: victim\r\n\r\n",
		"drop-in, unannounced": "POST " + ValidationPath + " HTTP/1.1\r\nHost: pg\r\nplatform: mobile\r\naccessToken: tok-attacker\r\n" + te + "0\r\nplayerId: victim\r\n\r\n",
		"json body + trailer":  "POST " + Path + " HTTP/1.1\r\nHost: pg\r\nContent-Type: application/json\r\n" + te + fmt.Sprintf("%x\r\n%s\r\n", len(body), body) + "0\r\nplayerId: victim\r\n\r\n",
	} {
		rs := h.raw(req)
		if len(rs) != 1 || rs[0].StatusCode != 400 || !strings.Contains(bodyOf(rs[0]), "playerId") {
			t.Errorf("%s: %v", name, rs)
		}
	}
}

// TestDroppedProxyPageKicksNobody: a verdict status whose body was
// dropped kicks only when the body was JSON too large to keep; a proxy's
// page (large, or quoting the request) is no verdict.
func TestDroppedProxyPageKicksNobody(t *testing.T) {
	h := newHarness(t, func(c *testConfig) { c.BreakerFailures = 100; c.Policy = validator.PolicyClosed })
	page := "<html><title>401 Authorization Required</title>nginx</html>"
	h.fake.Set("tok-big", kakaogamestest.Verdict{Status: 401, ContentType: "text/html", Body: []byte(page + strings.Repeat("<!-- pad -->", 7000))})
	h.fake.Set("tok-echo-page", kakaogamestest.Verdict{Status: 401, ContentType: "text/html", Body: []byte(page + "<pre>" + kakaogamestest.EchoMark + "</pre>")})
	h.fake.Set("tok-echo-json", kakaogamestest.Verdict{Status: 463, Body: []byte(`{"desc":"` + kakaogamestest.EchoMark + ` (463.-1)"}`)})
	for _, tok := range []string{"tok-big", "tok-echo-page", "tok-echo-json"} {
		h.expect(h.check(tok, "mobile", "p1"), 503, "unavailable", "upstream_unavailable", "upstream")
	}
	// JSON too large to keep is still Kakao's verdict.
	h.fake.Set("tok-big-json", kakaogamestest.Verdict{Status: 464, Body: oversized(464)})
	h.expect(h.check("tok-big-json", "mobile", "p1"), 403, "kick", "sanction", "upstream")
}

// Found by the review of issue 12 (each failed on ce961a9).

// TestTokenPieceOfKakaosAnswerStillKicks: a junk token chosen to be a
// piece of Kakao's own 401 answer is still an invalid_token kick, never
// an outage (which opened the breaker, and let the player in under the
// open policy), and the body holding it is not handed back.
func TestTokenPieceOfKakaosAnswerStillKicks(t *testing.T) {
	h := newHarness(t, func(c *testConfig) { c.Policy = validator.PolicyOpen })
	const tok = `(401.-29401)"}`
	for range 5 {
		r := h.check(tok, "mobile", "p1")
		h.expect(r, 403, "kick", "invalid_token", "upstream")
		d := h.dropIn(map[string]string{"accessToken": tok, "platform": "mobile", "playerId": "p1"})
		if d.status != 401 || strings.Contains(d.raw, "(401.") || strings.Contains(r.raw, "(401.") {
			t.Fatalf("the answer holding the token came back: /v1 %s, drop-in %d %q", r.raw, d.status, d.raw)
		}
	}
	if n := h.v.BreakerFailures(Name); n != 0 {
		t.Errorf("breaker counted %d failures", n)
	}
}

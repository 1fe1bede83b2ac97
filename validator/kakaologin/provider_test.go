package kakaologin_test

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"playerguard/cache"
	"playerguard/internal/testkit"
	"playerguard/metrics"
	"playerguard/validator"
	"playerguard/validator/kakaologin"
	"playerguard/validator/kakaologin/kakaologintest"
)

const (
	app     = "123456"
	appN    = 123456
	userA   = "9876543210"
	userAN  = 9876543210
	tokenA  = "SECRET-kl-token-aaaaaaaaaaaaaaaaaaaa"
	tokenB  = "SECRET-kl-token-bbbbbbbbbbbbbbbbbbbb"
	tokenC  = "SECRET-kl-token-cccccccccccccccccccc"
	httpOK  = 200
	kickSt  = 403
	unavail = 503
)

// harness is playerguard with the Kakao Login provider alone, in front of
// the fake Kakao Login API, on loopback.
type harness struct {
	t    *testing.T
	fake *kakaologintest.Server
	v    *validator.Validator
	clk  *testkit.Clock
	reg  *prometheus.Registry
	logs *testkit.SyncBuffer
	url  string
}

func newHarness(t *testing.T, mod func(*validator.Config)) *harness {
	t.Helper()
	fake, err := kakaologintest.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(fake.Close)
	h := &harness{t: t, fake: fake, clk: testkit.NewClock(time.Unix(1_700_000_000, 0)), reg: prometheus.NewRegistry(), logs: &testkit.SyncBuffer{}}
	log := slog.New(slog.NewJSONHandler(h.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	cfg := validator.Config{
		CacheTTL: 5 * time.Minute, StaleFor: 30 * time.Minute,
		BreakerFailures: 3, BreakerTimeout: time.Hour,
		Logger: log, Metrics: metrics.New(h.reg, "test"), Now: h.clk.Now,
		Unconfigured: []validator.Endpoint{{Provider: "kakao-games", Path: "/v1/validate"}},
	}
	if mod != nil {
		mod(&cfg)
	}
	c, err := cache.New[*validator.Result](cache.Config{MaxEntries: 10_000, MaxAge: cfg.CacheTTL + cfg.StaleFor + time.Second, Now: h.clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	cfg.Cache = c
	p, err := kakaologin.New(kakaologin.Config{AppID: app, API: fake.URL(), Timeout: time.Second, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	v, err := validator.New(cfg, p)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(v.Close)
	h.v = v
	h.url = testkit.Serve(t, v.NewServer())
	return h
}

type reply struct {
	status int
	header http.Header
	body   map[string]any
	raw    string
}

func (h *harness) do(method, path, body string, headers map[string]string) reply {
	h.t.Helper()
	req, err := http.NewRequest(method, h.url+path, strings.NewReader(body))
	if err != nil {
		h.t.Fatal(err)
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	k := testkit.Do(h.t, http.DefaultClient, req)
	// An allow is cached just after it is answered; the next request
	// expects it there.
	h.v.Settle()
	return reply{status: k.Status, header: k.Header, raw: k.Raw, body: k.Body}
}

func (h *harness) check(token, player string) reply {
	h.t.Helper()
	b, _ := json.Marshal(map[string]string{"accessToken": token, "playerId": player})
	if player == "" {
		b, _ = json.Marshal(map[string]string{"accessToken": token})
	}
	return h.do("POST", kakaologin.Path, string(b), nil)
}

func (h *harness) expect(r reply, status int, decision, reason, source string) {
	h.t.Helper()
	if r.status != status || r.body["decision"] != decision || r.body["reason"] != reason || r.body["source"] != source {
		h.t.Fatalf("got %d %s, want %d %s/%s/%s", r.status, r.raw, status, decision, reason, source)
	}
	if r.header.Get("X-Playerguard-Decision") != decision || r.header.Get("X-Playerguard-Reason") != reason || r.header.Get("X-Playerguard-Source") != source {
		h.t.Fatalf("headers %v, want %s/%s/%s", r.header, decision, reason, source)
	}
}

func (h *harness) metric(name string, labels ...string) float64 {
	h.t.Helper()
	return testkit.Metric(h.t, h.reg, name, labels...)
}

// TestAnswers: each row of the decision table through the HTTP API, with
// the same statuses, fields and headers as /v1/validate.
func TestAnswers(t *testing.T) {
	h := newHarness(t, func(c *validator.Config) { c.BreakerFailures = 100 })
	h.fake.Set(tokenA, kakaologintest.Valid(userAN, appN, 3600))
	r := h.check(tokenA, userA)
	h.expect(r, httpOK, "allow", "ok", "upstream")
	user, _ := r.body["user"].(map[string]any)
	if user["id"] != userA || user["appId"] != float64(appN) || user["expiresIn"] != float64(3600) {
		t.Errorf("user object %v", r.body["user"])
	}
	hit := h.check(tokenA, userA)
	h.expect(hit, httpOK, "allow", "ok", "cache")
	if !strings.Contains(hit.raw, `"user":{"id":"`+userA+`"`) {
		t.Errorf("cache hit body %s", hit.raw)
	}
	h.expect(h.check(tokenA, "1111"), kickSt, "kick", "player_mismatch", "upstream")

	for _, c := range []struct {
		v              kakaologintest.Verdict
		status         int
		decision, want string
	}{
		{kakaologintest.Valid(userAN, appN+1, 3600), kickSt, "kick", "wrong_app"},
		{kakaologintest.Invalid(), kickSt, "kick", "invalid_token"},
		{kakaologintest.Code(401, -406, "underage"), kickSt, "kick", "underage"},
		{kakaologintest.Code(403, -4, "restricted"), kickSt, "kick", "account_blocked"},
		{kakaologintest.Code(400, -101, "not linked"), kickSt, "kick", "not_linked"},
		{kakaologintest.Code(400, -103, "dormant"), kickSt, "kick", "account_dormant"},
		{kakaologintest.Code(400, -7, "maintenance"), unavail, "unavailable", "upstream_maintenance"},
		{kakaologintest.Code(400, -10, "quota"), unavail, "unavailable", "upstream_unavailable"},
		{kakaologintest.Code(503, -9798, "maintenance"), unavail, "unavailable", "upstream_maintenance"},
		{kakaologintest.Code(403, -3, "setting"), unavail, "unavailable", "upstream_rejected_config"},
		{kakaologintest.Verdict{Status: 502, Body: "<html>bad gateway</html>"}, unavail, "unavailable", "upstream_unavailable"},
	} {
		h.fake.Set(tokenB, c.v)
		h.expect(h.check(tokenB, ""), c.status, c.decision, c.want, "upstream")
	}
	if !strings.Contains(h.logs.String(), "code -3") {
		t.Errorf("a rejected configuration is not logged with its code:\n%s", h.logs)
	}
	if n := h.metric("playerguard_upstream_requests_total", "provider", "kakao-login", "outcome", "4xx"); n < 8 {
		t.Errorf("upstream_requests_total{provider=kakao-login,outcome=4xx} = %v", n)
	}
	if n := h.metric("playerguard_validations_total", "provider", "kakao-login", "reason", "wrong_app"); n != 1 {
		t.Errorf("validations_total{reason=wrong_app} = %v", n)
	}
	// Nothing of the tokens in logs or metrics.
	metricsText := func() string {
		var b strings.Builder
		mfs, _ := h.reg.Gather()
		for _, mf := range mfs {
			b.WriteString(mf.String())
		}
		return b.String()
	}()
	for _, s := range []string{h.logs.String(), metricsText} {
		if strings.Contains(s, "SECRET-kl") {
			t.Errorf("a token leaked: %s", s)
		}
	}
}

// TestCacheBoundByTokenExpiry: an allow is cached for at most -cache-ttl
// and never past the token's expires_in less 30 s, stale window included.
func TestCacheBoundByTokenExpiry(t *testing.T) {
	h := newHarness(t, nil)
	h.fake.Set(tokenA, kakaologintest.Valid(userAN, appN, 90)) // cacheable for 60 s
	h.expect(h.check(tokenA, ""), httpOK, "allow", "ok", "upstream")
	h.clk.Add(59 * time.Second)
	h.expect(h.check(tokenA, ""), httpOK, "allow", "ok", "cache")
	h.clk.Add(2 * time.Second)
	// Past the token's life: asked again, and in an outage no stale allow.
	h.fake.SetOverride(&kakaologintest.Verdict{Status: 500})
	h.expect(h.check(tokenA, ""), unavail, "unavailable", "upstream_unavailable", "upstream")
	h.fake.SetOverride(nil)
	if n := h.fake.TokenCalls(tokenA); n != 2 {
		t.Errorf("%d calls for the token, want 2", n)
	}

	// A token with 30 s or less left is answered, never cached.
	h.fake.Set(tokenB, kakaologintest.Valid(userAN, appN, 30))
	h.expect(h.check(tokenB, ""), httpOK, "allow", "ok", "upstream")
	h.expect(h.check(tokenB, ""), httpOK, "allow", "ok", "upstream")

	// A long-lived token is bounded by -cache-ttl (5 min), then stale.
	h.fake.Set(tokenC, kakaologintest.Valid(userAN, appN, 21600))
	h.expect(h.check(tokenC, ""), httpOK, "allow", "ok", "upstream")
	h.clk.Add(5*time.Minute + time.Second)
	h.fake.SetOverride(&kakaologintest.Verdict{Status: 500})
	r := h.check(tokenC, "")
	h.expect(r, httpOK, "allow", "ok", "stale")
	if r.header.Get("X-Playerguard-Degraded") != "true" {
		t.Error("a stale allow is not marked degraded")
	}
}

// TestCoalescing: concurrent validations of one token share one call.
func TestCoalescing(t *testing.T) {
	h := newHarness(t, nil)
	v := kakaologintest.Valid(userAN, appN, 3600)
	v.Delay = 200 * time.Millisecond
	h.fake.Set(tokenA, v)
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			if r := h.check(tokenA, userA); r.status != httpOK {
				t.Errorf("status %d: %s", r.status, r.raw)
			}
		})
	}
	wg.Wait()
	if n := h.fake.TokenCalls(tokenA); n != 1 {
		t.Errorf("%d upstream calls, want 1", n)
	}
	if n := h.metric("playerguard_coalesced_requests_total", "provider", "kakao-login"); n != 19 {
		t.Errorf("coalesced_requests_total = %v, want 19", n)
	}
}

// TestBreakerAndPolicies: failures open the provider's own breaker (its
// configuration rejections do not), and the outage policies answer.
func TestBreakerAndPolicies(t *testing.T) {
	h := newHarness(t, func(c *validator.Config) { c.Policy = validator.PolicyClosed })
	h.fake.SetOverride(&kakaologintest.Verdict{Status: 403, Body: `{"code":-3,"msg":"setting"}`})
	for range 5 {
		h.expect(h.check(tokenA, ""), unavail, "unavailable", "upstream_rejected_config", "upstream")
	}
	h.fake.SetOverride(&kakaologintest.Verdict{Status: 400, Body: `{"code":-7,"msg":"maintenance"}`})
	for range 3 {
		h.expect(h.check(tokenA, ""), unavail, "unavailable", "upstream_maintenance", "upstream")
	}
	calls := h.fake.Calls()
	h.expect(h.check(tokenA, ""), unavail, "unavailable", "circuit_open", "upstream")
	if h.fake.Calls() != calls {
		t.Error("the open breaker let a call through")
	}
	if n := h.metric("playerguard_breaker_state", "provider", "kakao-login"); n != metrics.BreakerOpen {
		t.Errorf("breaker_state{provider=kakao-login} = %v", n)
	}

	open := newHarness(t, func(c *validator.Config) { c.Policy = validator.PolicyOpen })
	open.fake.SetOverride(&kakaologintest.Verdict{Status: 400, Body: `{"code":-7,"msg":"maintenance"}`})
	r := open.check(tokenA, "")
	open.expect(r, httpOK, "allow", "ok", "policy")
	if r.body["upstreamFailure"] != "upstream_maintenance" {
		t.Errorf("open policy body %s", r.raw)
	}
}

// TestBadInput: malformed requests are 400s naming the problem, and never
// reach Kakao.
func TestBadInput(t *testing.T) {
	h := newHarness(t, nil)
	long := strings.Repeat("a", validator.MaxTokenLen+1)
	for _, c := range []struct {
		name, body string
		headers    map[string]string
		want       string
	}{
		{"no token", `{"playerId":"1"}`, nil, "missing accessToken"},
		{"long token", `{"accessToken":"` + long + `"}`, nil, "too long"},
		{"control", `{"accessToken":"a\u0001b"}`, nil, "invalid characters"},
		{"letters", `{"accessToken":"t","playerId":"abc"}`, nil, "decimal"},
		{"negative", `{"accessToken":"t","playerId":"-1"}`, nil, "decimal"},
		{"platform", `{"accessToken":"t","platform":"pc"}`, nil, `unknown field "platform" (want accessToken, playerId, sessionId)`},
		{"unknown", `{"accessToken":"t","extra":1}`, nil, `unknown field "extra"`},
		{"case", `{"AccessToken":"t"}`, nil, "case-sensitive"},
		{"body and header", `{"accessToken":"t"}`, map[string]string{"playerId": "1"}, "one form"},
		{"header letters", "", map[string]string{"accessToken": "t", "playerId": "x1"}, "decimal"},
		{"no header token", "", map[string]string{"playerId": "1"}, "missing accessToken"},
	} {
		r := h.do("POST", kakaologin.Path, c.body, c.headers)
		if r.status != 400 || !strings.Contains(r.body["error"].(string), c.want) {
			t.Errorf("%s: %d %s, want 400 naming %q", c.name, r.status, r.raw, c.want)
		}
	}
	if n := h.fake.Calls(); n != 0 {
		t.Errorf("%d bad requests reached Kakao", n)
	}
	// Headers by GET (nginx auth_request) work; a platform header of the
	// caller's own is no field of this provider.
	h.fake.Set(tokenA, kakaologintest.Valid(userAN, appN, 3600))
	h.expect(h.do("GET", kakaologin.Path, "", map[string]string{"accessToken": tokenA, "playerId": userA, "platform": "x"}), httpOK, "allow", "ok", "upstream")
	// Not even sent twice: it is no field of this provider's.
	req, _ := http.NewRequest("GET", h.url+kakaologin.Path, nil)
	req.Header.Set("accessToken", tokenA)
	req.Header.Add("platform", "a")
	req.Header.Add("Platform", "b")
	if k := testkit.Do(t, http.DefaultClient, req); k.Status != httpOK {
		t.Errorf("two platform headers: %d %s", k.Status, k.Raw)
	}
	// Kakao Games is not configured here.
	r := h.do("POST", "/v1/validate", `{"accessToken":"t","platform":"pc"}`, nil)
	if r.status != 404 || !strings.Contains(r.raw, "kakao-games is not configured") {
		t.Errorf("/v1/validate without kakao-games: %d %s", r.status, r.raw)
	}
}

// TestTokenPieceOfKakaosAnswerStillKicks: a junk token that is a piece of
// Kakao's own -401 answer is still an invalid_token kick: never an
// upstream failure, which opened the breaker for everyone and let the
// player in under the open policy.
func TestTokenPieceOfKakaosAnswerStillKicks(t *testing.T) {
	h := newHarness(t, func(c *validator.Config) { c.Policy = validator.PolicyOpen })
	for range 5 {
		h.expect(h.check(`"code":-401}`, ""), kickSt, "kick", "invalid_token", "upstream")
	}
	if n := h.metric("playerguard_breaker_state", "provider", "kakao-login"); n != metrics.BreakerClosed {
		t.Errorf("breaker state %v", n)
	}
}

// TestExpiresInMustBePositive: an answer saying the token has no time
// left (or a negative time, which once overflowed into a 292-year cache
// entry) is no allow.
func TestExpiresInMustBePositive(t *testing.T) {
	h := newHarness(t, nil)
	for i, exp := range []string{"0", "-5", "-9223372037"} {
		tok := tokenA + string(rune('a'+i))
		h.fake.Set(tok, kakaologintest.Verdict{Body: `{"id":` + userA + `,"expires_in":` + exp + `,"app_id":` + app + `}`})
		h.expect(h.check(tok, ""), unavail, "unavailable", "upstream_unavailable", "upstream")
	}
}

// TestSessionEndsWithItsToken: a live session ends when its access
// token does (expires_in, less the 30 s margin), also one registered on
// a cached allow 40 s later (the end is the fetch's, not the hit's); a
// token about to expire is answered and registers no session.
func TestSessionEndsWithItsToken(t *testing.T) {
	h := newHarness(t, nil)
	session := func(token, id string) reply {
		b, _ := json.Marshal(map[string]string{"accessToken": token, "sessionId": id})
		return h.do("POST", kakaologin.Path, string(b), nil)
	}
	listed := func() int {
		r := h.do("GET", "/v1/sessions?playerId="+userA, "", nil)
		list, _ := r.body["sessions"].([]any)
		return len(list)
	}
	h.fake.Set(tokenA, kakaologintest.Valid(userAN, appN, 90)) // 60 s of life for playerguard
	h.expect(session(tokenA, "s-1"), httpOK, "allow", "ok", "upstream")
	h.clk.Add(40 * time.Second)
	h.expect(session(tokenA, "s-2"), httpOK, "allow", "ok", "cache")
	if n := listed(); n != 2 {
		t.Fatalf("%d sessions, want 2", n)
	}
	h.clk.Add(21 * time.Second) // 61 s after the fetch
	if n := listed(); n != 0 {
		t.Errorf("%d sessions outlived their token", n)
	}
	h.fake.Set(tokenB, kakaologintest.Valid(userAN, appN, 30))
	h.expect(session(tokenB, "s-3"), httpOK, "allow", "ok", "upstream")
	if n := listed(); n != 0 {
		t.Errorf("a token about to expire registered %d sessions", n)
	}
	if got := h.metric("playerguard_sessions_refused_total", "reason", "expiring"); got != 1 {
		t.Errorf("sessions_refused_total{expiring} = %v", got)
	}
}

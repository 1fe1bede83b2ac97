package kakaogames

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"playerguard/validator"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"playerguard/cache"
	"playerguard/internal/testkit"
	"playerguard/metrics"
	"playerguard/validator/kakaogames/kakaogamestest"
)

const (
	testApp    = "909428"
	testSecret = "SECRET-app-7f3a"
	testKey    = "SECRET-adminkey-91c2"
	testAdmin  = "SECRET-admintoken-55e0"
)

// clock is a settable clock for the cache; syncBuffer collects logs.
type (
	clock      = testkit.Clock
	syncBuffer = testkit.SyncBuffer
)

// harness is one playerguard (validator + fasthttp listener + ops handler)
// in front of one fake upstream, all on loopback.
type harness struct {
	t     *testing.T
	fake  *kakaogamestest.Server
	v     *validator.Validator
	cache *cache.Cache[*validator.Result]
	clk   *clock
	reg   *prometheus.Registry
	logs  *syncBuffer
	url   string // the validation API
	ops   http.Handler
	http  *http.Client
}

// testConfig is a Kakao Games provider's configuration and the engine's,
// set field by field as one (their field names are distinct).
type testConfig struct {
	validator.Config
	kgConfig
	// wrapCache, if set, wraps the harness's cache for the validator.
	wrapCache func(*cache.Cache[*validator.Result]) validator.Cache
}

// kgConfig is Config, embedded in testConfig under another name.
type kgConfig = Config

// newKakaoGamesValidator builds a Validator with the Kakao Games provider
// alone, both logging to the engine's logger.
func newKakaoGamesValidator(c testConfig) (*validator.Validator, error) {
	if c.kgConfig.Logger == nil {
		c.kgConfig.Logger = c.Config.Logger
	}
	kg, err := New(c.kgConfig)
	if err != nil {
		return nil, err
	}
	v, err := validator.New(c.Config, kg)
	if err != nil {
		kg.Close()
	}
	return v, err
}

func newHarness(t *testing.T, mod func(*testConfig)) *harness {
	t.Helper()
	fake, err := kakaogamestest.Start(kakaogamestest.Config{AppID: testApp, AppSecret: testSecret, AdminKey: testKey})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(fake.Close)
	h := &harness{t: t, fake: fake, clk: testkit.NewClock(time.Unix(1_700_000_000, 0)), reg: prometheus.NewRegistry(), logs: &syncBuffer{}}
	var cfg testConfig
	cfg.Upstream = fake.URL()
	cfg.AppID = testApp
	cfg.AppSecret = testSecret
	cfg.AdminKey = testKey
	cfg.UpstreamTimeout = time.Second
	cfg.CacheTTL = 5 * time.Minute
	cfg.StaleFor = 30 * time.Minute
	cfg.BreakerFailures = 3
	cfg.BreakerTimeout = 200 * time.Millisecond
	cfg.Config.Logger = slog.New(slog.NewJSONHandler(h.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	cfg.Metrics = metrics.New(h.reg, "test")
	cfg.Now = h.clk.Now
	if mod != nil {
		mod(&cfg)
	}
	c, err := cache.New[*validator.Result](cache.Config{MaxEntries: 10_000, MaxAge: max(cfg.CacheTTL+cfg.StaleFor, cfg.NegativeTTL, time.Second), Now: cfg.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	cfg.Cache = c
	if cfg.wrapCache != nil {
		cfg.Cache = cfg.wrapCache(c)
	}
	h.cache = c
	h.v, err = newKakaoGamesValidator(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.v.Close)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := h.v.NewServer()
	go srv.Serve(ln)
	h.url = "http://" + ln.Addr().String()
	h.ops = h.v.OpsHandler(http.NotFoundHandler(), testAdmin)
	tr := &http.Transport{MaxIdleConnsPerHost: 64}
	h.http = &http.Client{Timeout: 10 * time.Second, Transport: tr}
	t.Cleanup(func() {
		// A connection the client dialed but never used holds fasthttp's
		// Shutdown (see cmd/playerguard/drain.go); drop the client's first.
		tr.CloseIdleConnections()
		h.v.SetDraining() // ends the /v1/events streams, as a drain does
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.ShutdownWithContext(ctx)
	})
	return h
}

// reply is a parsed playerguard response.
type reply struct {
	status int
	header http.Header
	raw    string
	body   map[string]any
}

func (r reply) str(field string) string { s, _ := r.body[field].(string); return s }

func (h *harness) do(req *http.Request) reply {
	h.t.Helper()
	k := testkit.Do(h.t, h.http, req)
	r := reply{status: k.Status, header: k.Header, raw: k.Raw, body: k.Body}
	// An allow from the upstream is written to the cache just after it is
	// answered (flightGroup.do); tests that look next expect it there.
	h.v.Settle()
	return r
}

// post sends a JSON body to /v1/validate.
func (h *harness) post(body string) reply {
	h.t.Helper()
	req, _ := http.NewRequest("POST", h.url+Path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	return h.do(req)
}

// check validates token/platform/player through the JSON API.
func (h *harness) check(token, platform, player string) reply {
	h.t.Helper()
	b, _ := json.Marshal(map[string]string{"accessToken": token, "platform": platform, "playerId": player})
	return h.post(string(b))
}

func (h *harness) expect(r reply, status int, decision, reason, source string) {
	h.t.Helper()
	if r.status != status || r.str("decision") != decision || r.str("reason") != reason || (source != "" && r.str("source") != source) {
		h.t.Fatalf("got %d %s, want %d decision=%s reason=%s source=%s", r.status, r.raw, status, decision, reason, source)
	}
}

// metric reads one sample from the harness's registry.
func (h *harness) metric(name string, labels ...string) float64 {
	h.t.Helper()
	mfs, err := h.reg.Gather()
	if err != nil {
		h.t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			want := map[string]string{}
			for i := 0; i+1 < len(labels); i += 2 {
				want[labels[i]] = labels[i+1]
			}
			for _, lp := range m.GetLabel() {
				if w, ok := want[lp.GetName()]; ok && w != lp.GetValue() {
					continue next
				}
			}
			switch {
			case m.Counter != nil:
				return m.Counter.GetValue()
			case m.Gauge != nil:
				return m.Gauge.GetValue()
			}
		}
	}
	h.t.Fatalf("no sample %s%v", name, labels)
	return 0
}

func (h *harness) admin(token, body string) *http.Response {
	req := httptest.NewRequest("POST", "/admin/purge", strings.NewReader(body))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	w := httptest.NewRecorder()
	h.ops.ServeHTTP(w, req)
	return w.Result()
}

// TestDecisionTableEndToEnd drives every row of the decision table through
// the fake upstream and the HTTP API.
func TestDecisionTableEndToEnd(t *testing.T) {
	h := newHarness(t, nil)
	raw := func(status int, body string) kakaogamestest.Verdict {
		return kakaogamestest.Verdict{Status: status, Body: []byte(body)}
	}
	cases := []struct {
		name     string
		verdict  kakaogamestest.Verdict
		claim    string
		status   int
		decision string
		reason   string
	}{
		{"normal", kakaogamestest.Allow(testApp, "p1", "normal"), "p1", 200, "allow", "ok"},
		{"normal unclaimed", kakaogamestest.Allow(testApp, "p1", "normal"), "", 200, "allow", "ok"},
		{"status delete", kakaogamestest.Allow(testApp, "p1", "delete"), "p1", 403, "kick", "player_status"},
		{"mismatch", kakaogamestest.Allow(testApp, "p2", "normal"), "p1", 403, "kick", "player_mismatch"},
		{"401", kakaogamestest.Invalid(), "p1", 403, "kick", "invalid_token"},
		{"406", kakaogamestest.NoPlayer(), "p1", 403, "kick", "not_acceptable"},
		{"462", kakaogamestest.Unregistering(testApp, "p1"), "p1", 403, "kick", "unregistering"},
		{"463", kakaogamestest.Lockout(testApp, "p1"), "p1", 403, "kick", "lockout"},
		{"464", kakaogamestest.Sanction(testApp, "p1"), "p1", 403, "kick", "sanction"},
		{"465", raw(465, `{"desc":"Already used. (465.-10104)"}`), "p1", 403, "kick", "abnormal_state"},
		{"400", raw(400, `{"desc":"Bad. (400.-1)"}`), "p1", 503, "unavailable", "upstream_unavailable"},
		{"408", raw(408, ""), "p1", 503, "unavailable", "upstream_unavailable"},
		{"429", raw(429, `{"desc":"Slow down. (429.-1)"}`), "p1", 503, "unavailable", "upstream_unavailable"},
		{"473", kakaogamestest.Maintenance(), "p1", 503, "unavailable", "upstream_maintenance"},
		{"500", kakaogamestest.Error(500), "p1", 503, "unavailable", "upstream_unavailable"},
		{"503", kakaogamestest.Error(503), "p1", 503, "unavailable", "upstream_unavailable"},
		{"200 unparsable", raw(200, `{"player":`), "p1", 503, "unavailable", "upstream_unavailable"},
	}
	for i, c := range cases {
		token := fmt.Sprintf("tok-row-%d", i)
		h.fake.Set(token, c.verdict)
		r := h.check(token, "mobile", c.claim)
		if r.status != c.status || r.str("decision") != c.decision || r.str("reason") != c.reason {
			t.Errorf("%s: got %d %s, want %d %s/%s", c.name, r.status, r.raw, c.status, c.decision, c.reason)
		}
		if r.header.Get("X-Playerguard-Decision") != c.decision || r.header.Get("X-Playerguard-Reason") != c.reason {
			t.Errorf("%s: headers %v", c.name, r.header)
		}
		// The failures above are spread out by successes; keep the breaker
		// closed for the rows after them.
		ok := fmt.Sprintf("tok-ok-%d", i)
		h.fake.Set(ok, kakaogamestest.Allow(testApp, "ok", "normal"))
		h.expect(h.check(ok, "pc", ""), 200, "allow", "ok", "upstream")
	}
}

// TestLockoutDetailReachesCaller: the lockout page URL and the rest of a
// 463 reach the game server exactly as the upstream sent them.
func TestLockoutDetailReachesCaller(t *testing.T) {
	h := newHarness(t, nil)
	v := kakaogamestest.Lockout(testApp, "123456789123456")
	h.fake.Set("tok-locked", v)
	r := h.check("tok-locked", "mobile", "123456789123456")
	h.expect(r, 403, "kick", "lockout", "upstream")
	var up map[string]json.RawMessage
	if err := json.Unmarshal(v.Body, &up); err != nil {
		t.Fatal(err)
	}
	var got map[string]json.RawMessage
	json.Unmarshal([]byte(r.raw), &got)
	for _, f := range []string{"lockout", "token", "redirectUri", "player"} {
		if !bytes.Equal(got[f], up[f]) {
			t.Errorf("%s = %s, want %s", f, got[f], up[f])
		}
	}
	var u struct {
		Status int    `json:"status"`
		Code   int    `json:"code"`
		Desc   string `json:"desc"`
	}
	json.Unmarshal(got["upstream"], &u)
	if u.Status != 463 || u.Code != -10103 || !strings.HasSuffix(u.Desc, "(463.-10103)") {
		t.Errorf("upstream = %s", got["upstream"])
	}
}

func TestUpstreamGetsSecretsAndFields(t *testing.T) {
	h := newHarness(t, nil)
	h.fake.Set("tok-a", kakaogamestest.Allow(testApp, "p1", "normal"))
	h.expect(h.check("tok-a", "launcher", "p1"), 200, "allow", "ok", "upstream")
	got := h.fake.LastRequest()
	want := kakaogamestest.RequestInfo{Method: "POST", Path: ValidationPath, AppSecret: testSecret, Authorization: "KakaoAK " + testKey,
		AppID: testApp, Platform: "launcher", AccessToken: "tok-a", PlayerID: "p1", ContentType: "application/json;charset=UTF-8"}
	if got != want {
		t.Errorf("upstream saw %+v, want %+v", got, want)
	}
}

func TestCacheHitAndExpiry(t *testing.T) {
	h := newHarness(t, nil)
	h.fake.Set("tok-a", kakaogamestest.Allow(testApp, "p1", "normal"))
	first := h.check("tok-a", "mobile", "p1")
	h.expect(first, 200, "allow", "ok", "upstream")
	h.cache.Wait()
	second := h.check("tok-a", "mobile", "p1")
	h.expect(second, 200, "allow", "ok", "cache")
	if fmt.Sprint(first.body["player"]) != fmt.Sprint(second.body["player"]) {
		t.Errorf("cached player %v, upstream player %v", second.body["player"], first.body["player"])
	}
	if n := h.fake.TokenCalls("tok-a"); n != 1 {
		t.Fatalf("upstream calls = %d, want 1", n)
	}
	h.clk.Add(5*time.Minute - time.Second)
	h.expect(h.check("tok-a", "mobile", "p1"), 200, "allow", "ok", "cache")
	h.clk.Add(time.Second)
	h.expect(h.check("tok-a", "mobile", "p1"), 200, "allow", "ok", "upstream")
	if n := h.fake.TokenCalls("tok-a"); n != 2 {
		t.Fatalf("upstream calls after expiry = %d, want 2", n)
	}
	if hits, misses := h.metric("playerguard_cache_hits_total"), h.metric("playerguard_cache_misses_total"); hits != 2 || misses != 2 {
		t.Errorf("hits/misses = %v/%v, want 2/2", hits, misses)
	}
}

func TestKicksAreNotCached(t *testing.T) {
	h := newHarness(t, nil)
	h.fake.Set("tok-bad", kakaogamestest.Invalid())
	h.expect(h.check("tok-bad", "mobile", ""), 403, "kick", "invalid_token", "upstream")
	h.cache.Wait()
	h.expect(h.check("tok-bad", "mobile", ""), 403, "kick", "invalid_token", "upstream")
	if n := h.fake.TokenCalls("tok-bad"); n != 2 {
		t.Fatalf("upstream calls = %d, want 2 (no negative cache by default)", n)
	}
}

func TestNegativeCache(t *testing.T) {
	h := newHarness(t, func(c *testConfig) { c.NegativeTTL = 10 * time.Second })
	h.fake.Set("tok-bad", kakaogamestest.Invalid())
	h.fake.Set("tok-sanctioned", kakaogamestest.Sanction(testApp, "p2"))
	h.expect(h.check("tok-bad", "mobile", "p1"), 403, "kick", "invalid_token", "upstream")
	h.cache.Wait()
	h.expect(h.check("tok-bad", "mobile", "p1"), 403, "kick", "invalid_token", "cache")
	h.clk.Add(10 * time.Second)
	h.expect(h.check("tok-bad", "mobile", "p1"), 403, "kick", "invalid_token", "upstream")
	// Only invalid_token is remembered.
	h.check("tok-sanctioned", "mobile", "p2")
	h.cache.Wait()
	h.expect(h.check("tok-sanctioned", "mobile", "p2"), 403, "kick", "sanction", "upstream")
}

// TestKeyIsolation: the same token with another playerId or platform is a
// separate entry and a separate upstream call.
func TestKeyIsolation(t *testing.T) {
	h := newHarness(t, nil)
	h.fake.Set("tok-a", kakaogamestest.Allow(testApp, "p1", "normal"))
	h.expect(h.check("tok-a", "mobile", "p1"), 200, "allow", "ok", "upstream")
	h.cache.Wait()
	h.expect(h.check("tok-a", "mobile", "p1"), 200, "allow", "ok", "cache")
	h.expect(h.check("tok-a", "pc", "p1"), 200, "allow", "ok", "upstream")
	h.expect(h.check("tok-a", "mobile", ""), 200, "allow", "ok", "upstream")
	// Another claimed player must never be answered from p1's allow.
	h.expect(h.check("tok-a", "mobile", "p2"), 403, "kick", "player_mismatch", "upstream")
	if n := h.fake.TokenCalls("tok-a"); n != 4 {
		t.Fatalf("upstream calls = %d, want 4", n)
	}
}

// TestCoalescing: N concurrent identical validations make one upstream call.
func TestCoalescing(t *testing.T) {
	h := newHarness(t, nil)
	h.fake.SetLatency(300 * time.Millisecond)
	const tokens, perToken = 20, 25
	for i := range tokens {
		h.fake.Set(fmt.Sprint("tok-storm-", i), kakaogamestest.Allow(testApp, fmt.Sprint("p", i), "normal"))
	}
	var wg sync.WaitGroup
	errs := make(chan string, tokens*perToken)
	for i := range tokens * perToken {
		wg.Go(func() {
			tok := fmt.Sprint("tok-storm-", i%tokens)
			b, _ := json.Marshal(map[string]string{"accessToken": tok, "platform": "mobile"})
			resp, err := http.Post(h.url+Path, "application/json", bytes.NewReader(b))
			if err != nil {
				errs <- err.Error()
				return
			}
			resp.Body.Close()
			if resp.StatusCode != 200 {
				errs <- resp.Status
			}
		})
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	for i := range tokens {
		if n := h.fake.TokenCalls(fmt.Sprint("tok-storm-", i)); n != 1 {
			t.Errorf("token %d: %d upstream calls, want 1", i, n)
		}
	}
	shared := h.metric("playerguard_coalesced_requests_total")
	fromCache := h.metric("playerguard_cache_hits_total")
	if shared+fromCache != tokens*perToken-tokens {
		t.Errorf("coalesced %v + cache hits %v, want %d", shared, fromCache, tokens*perToken-tokens)
	}
}

// TestCoalescedWaitersSurviveCallerDisconnect: the caller whose request
// started the upstream call hangs up; the others still get the answer.
func TestCoalescedWaitersSurviveCallerDisconnect(t *testing.T) {
	h := newHarness(t, nil)
	h.fake.SetLatency(400 * time.Millisecond)
	h.fake.Set("tok-a", kakaogamestest.Allow(testApp, "p1", "normal"))
	body := `{"accessToken":"tok-a","platform":"mobile"}`
	conn, err := net.Dial("tcp", strings.TrimPrefix(h.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s", Path, len(body), body)
	time.Sleep(100 * time.Millisecond) // the leader is now waiting on the upstream
	conn.Close()
	var wg sync.WaitGroup
	for range 5 {
		wg.Go(func() {
			resp, err := http.Post(h.url+Path, "application/json", strings.NewReader(body))
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Errorf("waiter got %s", resp.Status)
			}
		})
	}
	wg.Wait()
	if n := h.fake.TokenCalls("tok-a"); n != 1 {
		t.Errorf("upstream calls = %d, want 1", n)
	}
}

// waitFor polls cond for up to 5s; the breaker's clock is the real one.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestBreakerOpensAndHalfOpens(t *testing.T) {
	h := newHarness(t, func(c *testConfig) { c.Policy = validator.PolicyClosed })
	h.fake.SetOverride(&kakaogamestest.Verdict{Status: 500, Body: []byte(`{"desc":"down (500.-1)"}`)})
	for i := range 3 {
		h.expect(h.check(fmt.Sprint("tok-f", i), "mobile", ""), 503, "unavailable", "upstream_unavailable", "upstream")
	}
	if g := h.metric("playerguard_breaker_state"); g != metrics.BreakerOpen {
		t.Fatalf("breaker state = %v, want open", g)
	}
	calls := h.fake.Calls()
	// Open: answered at once, upstream untouched.
	for i := range 10 {
		start := time.Now()
		h.expect(h.check(fmt.Sprint("tok-o", i), "mobile", ""), 503, "unavailable", "circuit_open", "upstream")
		if d := time.Since(start); d > 150*time.Millisecond {
			t.Errorf("open breaker answer took %v", d)
		}
	}
	if n := h.fake.Calls(); n != calls {
		t.Fatalf("open breaker let %d calls through", n-calls)
	}
	// Half-open after the timeout; a failing probe reopens it.
	waitFor(t, "half-open", func() bool { return h.metric("playerguard_breaker_state") == metrics.BreakerHalfOpen })
	h.expect(h.check("tok-probe1", "mobile", ""), 503, "unavailable", "upstream_unavailable", "upstream")
	if g := h.metric("playerguard_breaker_state"); g != metrics.BreakerOpen {
		t.Fatalf("after failed probe: state %v, want open", g)
	}
	// The upstream heals; the next probe closes the breaker.
	h.fake.SetOverride(nil)
	h.fake.Set("tok-probe2", kakaogamestest.Allow(testApp, "p1", "normal"))
	waitFor(t, "half-open again", func() bool { return h.metric("playerguard_breaker_state") == metrics.BreakerHalfOpen })
	h.expect(h.check("tok-probe2", "mobile", ""), 200, "allow", "ok", "upstream")
	if g := h.metric("playerguard_breaker_state"); g != metrics.BreakerClosed {
		t.Fatalf("after good probe: state %v, want closed", g)
	}
	if n := h.metric("playerguard_breaker_transitions_total", "to", "open"); n != 2 {
		t.Errorf("transitions to open = %v, want 2", n)
	}
}

// TestKicksDoNotTripBreaker: a wave of authoritative kicks is the upstream
// working, not failing.
func TestKicksDoNotTripBreaker(t *testing.T) {
	h := newHarness(t, nil)
	for i := range 10 {
		h.expect(h.check(fmt.Sprint("tok-unknown", i), "mobile", ""), 403, "kick", "invalid_token", "upstream")
	}
	h.fake.SetOverride(&kakaogamestest.Verdict{Status: 400, Body: []byte(`{"desc":"bad (400.-1)"}`)})
	for i := range 10 {
		h.expect(h.check(fmt.Sprint("tok-400", i), "mobile", ""), 503, "unavailable", "upstream_unavailable", "upstream")
	}
	if g := h.metric("playerguard_breaker_state"); g != metrics.BreakerClosed {
		t.Fatalf("breaker state = %v, want closed", g)
	}
	if !strings.Contains(h.logs.String(), "malformed (400)") {
		t.Error("an upstream 400 was not logged loudly")
	}
}

func TestTimeoutIsUnavailableNotKick(t *testing.T) {
	h := newHarness(t, func(c *testConfig) { c.UpstreamTimeout = 200 * time.Millisecond; c.Policy = validator.PolicyClosed })
	h.fake.Set("tok-slow", kakaogamestest.Verdict{Status: 200, Body: []byte(playerBody("p1", "normal")), Delay: 2 * time.Second})
	start := time.Now()
	h.expect(h.check("tok-slow", "mobile", "p1"), 503, "unavailable", "upstream_unavailable", "upstream")
	if d := time.Since(start); d > time.Second {
		t.Errorf("took %v with a 200ms upstream timeout", d)
	}
	if n := h.metric("playerguard_upstream_requests_total", "outcome", "timeout"); n != 1 {
		t.Errorf("timeouts = %v, want 1", n)
	}
}

func TestPolicyStale(t *testing.T) {
	h := newHarness(t, nil)
	h.fake.Set("tok-a", kakaogamestest.Allow(testApp, "p1", "normal"))
	h.expect(h.check("tok-a", "mobile", "p1"), 200, "allow", "ok", "upstream")
	h.cache.Wait()
	h.fake.SetOverride(&kakaogamestest.Verdict{Status: 503, Body: []byte(`{"desc":"down (503.-1)"}`)})
	// Fresh: a plain cache hit, outage or not.
	h.expect(h.check("tok-a", "mobile", "p1"), 200, "allow", "ok", "cache")
	// Expired but within -stale-for: a degraded allow with the player.
	h.clk.Add(6 * time.Minute)
	r := h.check("tok-a", "mobile", "p1")
	h.expect(r, 200, "allow", "ok", "stale")
	if r.body["degraded"] != true || r.body["player"] == nil || r.header.Get("X-Playerguard-Degraded") != "true" {
		t.Errorf("stale allow: %s %v", r.raw, r.header)
	}
	// Never seen: unavailable.
	h.expect(h.check("tok-new", "mobile", "p9"), 503, "unavailable", "upstream_unavailable", "upstream")
	// Past -stale-for: unavailable.
	h.clk.Add(30 * time.Minute)
	h.expect(h.check("tok-a", "mobile", "p1"), 503, "unavailable", "upstream_unavailable", "upstream")
	if n := h.metric("playerguard_cache_stale_serves_total"); n != 1 {
		t.Errorf("stale serves = %v, want 1", n)
	}
	if !strings.Contains(h.logs.String(), `"msg":"degraded allow"`) {
		t.Error("degraded allow not in the audit log")
	}
}

func TestPolicyStaleWhileBreakerOpen(t *testing.T) {
	h := newHarness(t, nil)
	h.fake.Set("tok-a", kakaogamestest.Allow(testApp, "p1", "normal"))
	h.check("tok-a", "mobile", "p1")
	h.cache.Wait()
	h.clk.Add(6 * time.Minute)
	h.fake.SetOverride(&kakaogamestest.Verdict{Status: 500})
	for i := range 3 {
		h.check(fmt.Sprint("tok-f", i), "mobile", "")
	}
	r := h.check("tok-a", "mobile", "p1")
	h.expect(r, 200, "allow", "ok", "stale")
	if r.str("upstreamFailure") != "circuit_open" {
		t.Errorf("upstreamFailure = %q, want circuit_open", r.str("upstreamFailure"))
	}
}

func TestPolicyOpen(t *testing.T) {
	h := newHarness(t, func(c *testConfig) { c.Policy = validator.PolicyOpen })
	h.fake.SetOverride(&kakaogamestest.Verdict{Status: 502})
	r := h.check("tok-any", "mobile", "p1")
	h.expect(r, 200, "allow", "ok", "policy")
	if r.body["degraded"] != true {
		t.Errorf("open allow not degraded: %s", r.raw)
	}
	// Open is for outages only: a kick stays a kick.
	h.fake.SetOverride(nil)
	h.expect(h.check("tok-bad", "mobile", "p1"), 403, "kick", "invalid_token", "upstream")
}

func TestPolicyClosed(t *testing.T) {
	h := newHarness(t, func(c *testConfig) { c.Policy = validator.PolicyClosed })
	h.fake.Set("tok-a", kakaogamestest.Allow(testApp, "p1", "normal"))
	h.check("tok-a", "mobile", "p1")
	h.cache.Wait()
	h.clk.Add(6 * time.Minute)
	h.fake.SetOverride(&kakaogamestest.Verdict{Status: 500})
	h.expect(h.check("tok-a", "mobile", "p1"), 503, "unavailable", "upstream_unavailable", "upstream")
}

// TestNoStaleAfterKick: once the upstream has kicked a player, no stale
// allow of that player is served, for that token or any other.
func TestNoStaleAfterKick(t *testing.T) {
	h := newHarness(t, nil)
	h.fake.Set("tok-1", kakaogamestest.Allow(testApp, "p1", "normal"))
	h.fake.Set("tok-2", kakaogamestest.Allow(testApp, "p1", "normal"))
	h.fake.Set("tok-3", kakaogamestest.Allow(testApp, "p3", "normal"))
	h.check("tok-1", "mobile", "p1")
	h.check("tok-2", "pc", "")
	h.check("tok-3", "mobile", "p3")
	h.cache.Wait()
	h.clk.Add(6 * time.Minute) // all three are stale now

	// tok-2's own key turns invalid; p1 is sanctioned through a new token.
	h.fake.Set("tok-2", kakaogamestest.Invalid())
	h.expect(h.check("tok-2", "pc", ""), 403, "kick", "invalid_token", "upstream")
	h.fake.Set("tok-4", kakaogamestest.Sanction(testApp, "p1"))
	h.expect(h.check("tok-4", "mobile", ""), 403, "kick", "sanction", "upstream")

	h.fake.SetOverride(&kakaogamestest.Verdict{Status: 503})
	h.expect(h.check("tok-1", "mobile", "p1"), 503, "unavailable", "upstream_unavailable", "upstream")
	h.expect(h.check("tok-2", "pc", ""), 503, "unavailable", "upstream_unavailable", "upstream")
	h.expect(h.check("tok-3", "mobile", "p3"), 200, "allow", "ok", "stale") // p3 untouched
}

// TestKickDropsPlayersFreshAllows: a kick for a player drops every fresh
// cached allow of that player at once.
func TestKickDropsPlayersFreshAllows(t *testing.T) {
	h := newHarness(t, nil)
	h.fake.Set("tok-1", kakaogamestest.Allow(testApp, "p1", "normal"))
	h.check("tok-1", "mobile", "p1")
	h.cache.Wait()
	h.expect(h.check("tok-1", "mobile", "p1"), 200, "allow", "ok", "cache")
	h.fake.Set("tok-2", kakaogamestest.Lockout(testApp, "p1"))
	h.expect(h.check("tok-2", "mobile", ""), 403, "kick", "lockout", "upstream")
	h.fake.Set("tok-1", kakaogamestest.Lockout(testApp, "p1"))
	h.expect(h.check("tok-1", "mobile", "p1"), 403, "kick", "lockout", "upstream")
	if !strings.Contains(h.logs.String(), `"msg":"kick"`) || !strings.Contains(h.logs.String(), `"upstream_code":-10103`) {
		t.Errorf("kick audit line missing: %s", h.logs.String())
	}
}

func TestAdminPurge(t *testing.T) {
	h := newHarness(t, nil)
	h.fake.Set("tok-1", kakaogamestest.Allow(testApp, "p1", "normal"))
	h.fake.Set("tok-2", kakaogamestest.Allow(testApp, "p2", "normal"))
	h.check("tok-1", "mobile", "p1")
	h.check("tok-2", "mobile", "p2")
	h.cache.Wait()

	for _, tok := range []string{"", "wrong", testAdmin + "x", testAdmin[:5]} {
		if r := h.admin(tok, `{"playerId":"p1"}`); r.StatusCode != 401 {
			t.Errorf("token %q: status %d, want 401", tok, r.StatusCode)
		}
	}
	h.expect(h.check("tok-1", "mobile", "p1"), 200, "allow", "ok", "cache")

	for body, want := range map[string]int{`{}`: 400, `nope`: 400, `{"playerId":""}`: 400, `{"player":"p1"}`: 400, `{"accessToken":"t"}`: 400} {
		if r := h.admin(testAdmin, body); r.StatusCode != want {
			t.Errorf("body %s: status %d, want %d", body, r.StatusCode, want)
		}
	}
	if r := h.admin(testAdmin, `{"playerId":"p1"}`); r.StatusCode != 200 {
		t.Fatalf("purge player: %d", r.StatusCode)
	}
	h.expect(h.check("tok-1", "mobile", "p1"), 200, "allow", "ok", "upstream")
	h.expect(h.check("tok-2", "mobile", "p2"), 200, "allow", "ok", "cache")

	if r := h.admin(testAdmin, `{"accessToken":"tok-2","platform":"mobile","playerId":"p2"}`); r.StatusCode != 200 {
		t.Fatalf("purge key: %d", r.StatusCode)
	}
	h.expect(h.check("tok-2", "mobile", "p2"), 200, "allow", "ok", "upstream")

	// Without an admin token configured, the admin API is closed.
	closed := h.v.OpsHandler(http.NotFoundHandler(), "")
	req := httptest.NewRequest("POST", "/admin/purge", strings.NewReader(`{"playerId":"p1"}`))
	req.Header.Set("Authorization", "Bearer ")
	w := httptest.NewRecorder()
	closed.ServeHTTP(w, req)
	if w.Code != 401 {
		t.Errorf("admin without configured token: %d, want 401", w.Code)
	}
}

func TestHealthAndReady(t *testing.T) {
	h := newHarness(t, nil)
	get := func(path string) int {
		w := httptest.NewRecorder()
		h.ops.ServeHTTP(w, httptest.NewRequest("GET", path, nil))
		return w.Code
	}
	if s := get("/healthz"); s != 200 {
		t.Errorf("/healthz = %d", s)
	}
	if s := get("/readyz"); s != 200 {
		t.Errorf("/readyz = %d", s)
	}
	h.v.SetDraining()
	if s := get("/readyz"); s != 503 {
		t.Errorf("/readyz while draining = %d, want 503", s)
	}
	if s := get("/healthz"); s != 200 {
		t.Errorf("/healthz while draining = %d", s)
	}
}

// TestHeaderMode: the fields as headers, by GET or by POST with no body,
// as nginx auth_request and Envoy ext_authz send them.
func TestHeaderMode(t *testing.T) {
	h := newHarness(t, nil)
	h.fake.Set("tok-a", kakaogamestest.Allow(testApp, "p1", "normal"))
	for _, method := range []string{"GET", "POST"} {
		req, _ := http.NewRequest(method, h.url+Path, nil)
		req.Header.Set("accessToken", "tok-a")
		req.Header.Set("platform", "mobile")
		req.Header.Set("playerId", "p1")
		r := h.do(req)
		if r.status != 200 || r.str("decision") != "allow" {
			t.Errorf("%s: %d %s", method, r.status, r.raw)
		}
	}
	req, _ := http.NewRequest("GET", h.url+Path, nil)
	req.Header.Set("platform", "mobile")
	if r := h.do(req); r.status != 400 || r.str("error") != "missing accessToken" {
		t.Errorf("GET without token: %d %s", r.status, r.raw)
	}
}

// TestBadRequests: every caller mistake is a 400 naming the problem, and
// none reaches the upstream.
func TestBadRequests(t *testing.T) {
	h := newHarness(t, nil)
	long := strings.Repeat("a", validator.MaxTokenLen+1)
	cases := map[string]struct {
		body string
		want string
	}{
		"missing token":    {`{"platform":"mobile"}`, "missing accessToken"},
		"empty token":      {`{"accessToken":"","platform":"mobile"}`, "missing accessToken"},
		"missing platform": {`{"accessToken":"t"}`, "missing platform"},
		"unknown platform": {`{"accessToken":"t","platform":"xbox"}`, `unknown platform "xbox" (want web, launcher, mobile or pc)`},
		"not JSON":         {`accessToken=t&platform=pc`, "request body is not a JSON object"},
		"JSON array":       {`["t","pc"]`, "request body is not a JSON object"},
		"wrong type":       {`{"accessToken":123,"platform":"pc"}`, "accessToken must be a JSON string"},
		"newline in token": {`{"accessToken":"t\nX-Evil: 1","platform":"pc"}`, "accessToken contains invalid characters (control, space or non-ASCII)"},
		"NUL in token":     {`{"accessToken":"t\u0000","platform":"pc"}`, "accessToken contains invalid characters (control, space or non-ASCII)"},
		"token too long":   {`{"accessToken":"` + long + `","platform":"pc"}`, "accessToken too long (limit 4096 bytes)"},
		"bad playerId":     {`{"accessToken":"t","platform":"pc","playerId":"a b"}`, "playerId contains invalid characters (control, space or non-ASCII)"},
		"duplicate field":  {`{"accessToken":"t","accessToken":"u","platform":"pc"}`, `duplicate field "accessToken" in request body`},
		"trailing data":    {`{"accessToken":"t","platform":"pc"} {}`, "request body has trailing data after the JSON object"},
	}
	for name, c := range cases {
		r := h.post(c.body)
		if r.status != 400 || r.str("error") != c.want {
			t.Errorf("%s: got %d %s, want 400 %q", name, r.status, r.raw, c.want)
		}
		if strings.Contains(r.raw, long) {
			t.Errorf("%s: the token came back in the error", name)
		}
	}
	// A body over the limit is refused on its declared length, before any
	// of it is read. (Sent without the body: a server that closes with
	// unread data resets the connection, and a client still writing the
	// body could lose the answer; the decoder's own limit is in
	// TestDecodeJSON.)
	for _, n := range []int{validator.MaxBodyLen + 1, 4 * validator.MaxBodyLen} {
		resps := h.raw(fmt.Sprintf("POST %s HTTP/1.1\r\nHost: pg\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", Path, n))
		if len(resps) != 1 || resps[0].StatusCode != 413 || !strings.Contains(bodyOf(resps[0]), "request body too large (limit 16384 bytes)") {
			t.Errorf("%d-byte body: %d answers %v", n, len(resps), resps)
		}
	}
	req, _ := http.NewRequest("PUT", h.url+Path, strings.NewReader(`{}`))
	if r := h.do(req); r.status != 405 || r.header.Get("Allow") != "GET, POST" {
		t.Errorf("PUT: %d %v", r.status, r.header)
	}
	req, _ = http.NewRequest("GET", h.url+"/v2/validate", nil)
	if r := h.do(req); r.status != 404 || r.str("error") == "" {
		t.Errorf("unknown path: %d %s", r.status, r.raw)
	}
	if n := h.fake.Calls(); n != 0 {
		t.Errorf("bad requests reached the upstream %d times", n)
	}
	if n := h.metric("playerguard_bad_requests_total"); n < float64(len(cases)) {
		t.Errorf("bad_requests_total = %v", n)
	}
}

// dropIn sends a Kakao-style request to the drop-in endpoint.
func (h *harness) dropIn(headers map[string]string) reply {
	h.t.Helper()
	req, _ := http.NewRequest("POST", h.url+ValidationPath, nil)
	req.Header.Set("Content-Type", "application/json;charset=UTF-8")
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	return h.do(req)
}

// TestDropIn: the Kakao endpoint's own request and response, our secrets
// added, bodies passed through byte for byte, from cache when fresh.
func TestDropIn(t *testing.T) {
	h := newHarness(t, nil)
	allow := kakaogamestest.Allow(testApp, "p1", "normal")
	lock := kakaogamestest.Lockout(testApp, "p2")
	h.fake.Set("tok-a", allow)
	h.fake.Set("tok-l", lock)
	h.fake.Set("tok-e", kakaogamestest.Error(500))
	hdr := func(tok, player string) map[string]string {
		return map[string]string{"accessToken": tok, "platform": "mobile", "playerId": player,
			"appSecret": "caller-secret", "Authorization": "KakaoAK caller-key", "kgAppId": "1"}
	}
	r := h.dropIn(hdr("tok-a", "p1"))
	if r.status != 200 || r.raw != string(allow.Body) {
		t.Fatalf("allow: %d %q, want %q", r.status, r.raw, allow.Body)
	}
	if got := h.fake.LastRequest(); got.AppSecret != testSecret || got.Authorization != "KakaoAK "+testKey || got.AppID != testApp {
		t.Errorf("caller's secrets reached the upstream: %+v", got)
	}
	h.cache.Wait()
	r = h.dropIn(hdr("tok-a", "p1"))
	if r.status != 200 || r.raw != string(allow.Body) || r.header.Get("X-Playerguard-Source") != "cache" {
		t.Fatalf("cached allow: %d %q %v", r.status, r.raw, r.header)
	}
	if n := h.fake.TokenCalls("tok-a"); n != 1 {
		t.Errorf("upstream calls = %d, want 1", n)
	}
	r = h.dropIn(hdr("tok-l", "p2"))
	if r.status != 463 || r.raw != string(lock.Body) {
		t.Errorf("lockout: %d %q", r.status, r.raw)
	}
	r = h.dropIn(hdr("tok-e", "p3"))
	if r.status != 500 || r.raw != string(kakaogamestest.Error(500).Body) {
		t.Errorf("500: %d %q", r.status, r.raw)
	}
	r = h.dropIn(map[string]string{"platform": "mobile"})
	if r.status != 400 || r.str("desc") != "missing accessToken" {
		t.Errorf("missing token: %d %q", r.status, r.raw)
	}
	req, _ := http.NewRequest("GET", h.url+ValidationPath, nil)
	if r := h.do(req); r.status != 405 {
		t.Errorf("GET drop-in: %d", r.status)
	}
	// A 200 we cannot read must not pass through as a 200.
	h.fake.Set("tok-junk", kakaogamestest.Verdict{Status: 200, Body: []byte("<html>")})
	r = h.dropIn(hdr("tok-junk", ""))
	if r.status != 503 {
		t.Errorf("unreadable 200 passed through as %d %q", r.status, r.raw)
	}
}

func TestDropInOutagePolicies(t *testing.T) {
	h := newHarness(t, func(c *testConfig) { c.Policy = validator.PolicyOpen })
	h.fake.SetOverride(&kakaogamestest.Verdict{Fault: kakaogamestest.FaultClose})
	r := h.dropIn(map[string]string{"accessToken": "t", "platform": "pc", "playerId": "p1"})
	var body struct {
		Player struct{ PlayerID, Status string }
	}
	json.Unmarshal([]byte(r.raw), &body)
	if r.status != 200 || body.Player.PlayerID != "p1" || body.Player.Status != "normal" || r.header.Get("X-Playerguard-Degraded") != "true" {
		t.Errorf("open policy drop-in: %d %s %v", r.status, r.raw, r.header)
	}

	h = newHarness(t, nil)
	allow := kakaogamestest.Allow(testApp, "p1", "normal")
	h.fake.Set("tok-a", allow)
	h.dropIn(map[string]string{"accessToken": "tok-a", "platform": "pc"})
	h.cache.Wait()
	h.clk.Add(6 * time.Minute)
	h.fake.SetOverride(&kakaogamestest.Verdict{Fault: kakaogamestest.FaultClose})
	r = h.dropIn(map[string]string{"accessToken": "tok-a", "platform": "pc"})
	if r.status != 200 || r.raw != string(allow.Body) || r.header.Get("X-Playerguard-Source") != "stale" {
		t.Errorf("stale drop-in: %d %s %v", r.status, r.raw, r.header)
	}
	r = h.dropIn(map[string]string{"accessToken": "tok-b", "platform": "pc"})
	if r.status != 503 || r.str("reason") != "upstream_unavailable" {
		t.Errorf("no-response drop-in: %d %s", r.status, r.raw)
	}
}

// TestSecretsNeverLeak drives allow, kicks, failures, bad requests and
// admin calls with recognisable secrets, then searches logs, metrics and
// every response for them.
func TestSecretsNeverLeak(t *testing.T) {
	h := newHarness(t, func(c *testConfig) { c.NegativeTTL = time.Minute })
	tok := func(s string) string { return "SECRET-token-" + s }
	h.fake.Set(tok("ok"), kakaogamestest.Allow(testApp, "p1", "normal"))
	h.fake.Set(tok("lock"), kakaogamestest.Lockout(testApp, "p2"))
	h.fake.Set(tok("err"), kakaogamestest.Error(500))
	var responses strings.Builder
	for _, tk := range []string{tok("ok"), tok("ok"), tok("lock"), tok("err"), tok("unknown"), tok("unknown")} {
		responses.WriteString(h.check(tk, "mobile", "").raw)
		responses.WriteString(h.dropIn(map[string]string{"accessToken": tk, "platform": "mobile"}).raw)
	}
	responses.WriteString(h.post(`{"accessToken":"` + tok("bad\n") + `","platform":"mobile"}`).raw)
	responses.WriteString(h.post(`{"accessToken":"` + tok("x") + `","platform":"SECRET-platform"}`).raw)
	h.admin(testAdmin, `{"accessToken":"`+tok("ok")+`","platform":"mobile"}`)
	h.admin("SECRET-wrong-admin", `{"playerId":"p1"}`)
	h.fake.SetOverride(&kakaogamestest.Verdict{Status: 503})
	for i := range 5 {
		responses.WriteString(h.check(tok(fmt.Sprint("down", i)), "mobile", "").raw)
	}
	var scrape strings.Builder
	mfs, _ := h.reg.Gather()
	for _, mf := range mfs {
		scrape.WriteString(mf.String())
	}
	for where, text := range map[string]string{"logs": h.logs.String(), "metrics": scrape.String(), "responses": responses.String()} {
		for _, secret := range []string{"SECRET-token", testSecret, testKey, testAdmin, "SECRET-wrong-admin"} {
			if strings.Contains(text, secret) {
				t.Errorf("%s contain %q", where, secret)
			}
		}
	}
	if !strings.Contains(h.logs.String(), `"msg":"kick"`) || !strings.Contains(h.logs.String(), "upstream failure") {
		t.Error("the log lines this test searches were not written")
	}
}

func TestMetricsLint(t *testing.T) {
	h := newHarness(t, nil)
	h.fake.Set("tok-a", kakaogamestest.Allow(testApp, "p1", "normal"))
	h.check("tok-a", "mobile", "p1")
	problems, err := testutil.GatherAndLint(h.reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("%s: %s", p.Metric, p.Text)
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	kg := func(c Config) testConfig { return testConfig{kgConfig: c} }
	for name, cfg := range map[string]testConfig{
		"no upstream":     kg(Config{AppID: "1"}),
		"no app":          kg(Config{Upstream: "http://127.0.0.1:1"}),
		"bad scheme":      kg(Config{Upstream: "ftp://x", AppID: "1"}),
		"no host":         kg(Config{Upstream: "http://", AppID: "1"}),
		"query":           kg(Config{Upstream: "http://x/?a=b", AppID: "1"}),
		"negative ttl":    {Config: validator.Config{CacheTTL: -1}, kgConfig: Config{Upstream: "http://x", AppID: "1"}},
		"negative limit":  kg(Config{Upstream: "http://x", AppID: "1", MaxUpstreamConns: -1}),
		"unknown policy":  {Config: validator.Config{Policy: 9}, kgConfig: Config{Upstream: "http://x", AppID: "1"}},
		"missing CA file": kg(Config{Upstream: "https://x", AppID: "1", UpstreamCAFile: "/nonexistent"}),
	} {
		if _, err := newKakaoGamesValidator(cfg); err == nil {
			t.Errorf("%s: New succeeded", name)
		}
	}
	if _, err := validator.New(validator.Config{}); err == nil {
		t.Error("New with no provider succeeded")
	}
}

package kakaooidc

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"playerguard/cache"
	"playerguard/internal/testkit"
	"playerguard/metrics"
	"playerguard/validator"
	"playerguard/validator/kakaooidc/kakaooidctest"
)

const (
	aud     = "rest-api-key-0123456789abcdef"
	aud2    = "native-app-key-fedcba9876543210"
	userA   = "4000000001"
	userB   = "4000000002"
	httpOK  = 200
	kickSt  = 403
	unavail = 503
)

// t0 is the harness clock's start.
var t0 = time.Unix(1_700_000_000, 0)

// harness is playerguard with the Kakao OIDC provider alone, its key set
// served by the fake on loopback, the clock injected.
type harness struct {
	t    *testing.T
	fake *kakaooidctest.Server
	p    *Provider
	v    *validator.Validator
	clk  *testkit.Clock
	reg  *prometheus.Registry
	logs *testkit.SyncBuffer
	url  string
}

type setup struct {
	engine func(*validator.Config)
	oidc   func(*Config)
	fake   func(*kakaooidctest.Server)
	// noWait: do not wait for the start-up fetch.
	noWait bool
}

func newHarness(t *testing.T, s setup) *harness {
	t.Helper()
	fake, err := kakaooidctest.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(fake.Close)
	if s.fake != nil {
		s.fake(fake)
	}
	h := &harness{t: t, fake: fake, clk: testkit.NewClock(t0), reg: prometheus.NewRegistry(), logs: &testkit.SyncBuffer{}}
	log := slog.New(slog.NewJSONHandler(h.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	m := metrics.New(h.reg, "test")
	cfg := validator.Config{
		CacheTTL: 5 * time.Minute, StaleFor: 30 * time.Minute,
		BreakerFailures: 3, BreakerTimeout: time.Hour,
		Logger: log, Metrics: m, Now: h.clk.Now,
	}
	if s.engine != nil {
		s.engine(&cfg)
	}
	c, err := cache.New[*validator.Result](cache.Config{MaxEntries: 100_000, MaxAge: cfg.CacheTTL + cfg.StaleFor + time.Second, Now: h.clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	cfg.Cache = c
	oc := Config{Audiences: []string{aud, aud2}, JWKSURL: fake.URL(), Timeout: time.Second, Logger: log, Metrics: m, Now: h.clk.Now, tick: -1}
	if s.oidc != nil {
		s.oidc(&oc)
	}
	p, err := New(oc)
	if err != nil {
		t.Fatal(err)
	}
	h.p = p
	if !s.noWait {
		h.waitFetch()
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

// waitFetch waits for the fetch under way (New starts the first).
func (h *harness) waitFetch() { h.p.keys.wait() }

// advance moves the clock and runs the schedule's poll, waiting for a
// fetch it starts.
func (h *harness) advance(d time.Duration) {
	h.clk.Add(d)
	h.p.keys.poll()
	h.p.keys.wait()
}

type reply = testkit.Reply

// client keeps connections for the tests' bursts of requests.
var client = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}

func (h *harness) do(method, body string, headers map[string]string) reply {
	h.t.Helper()
	req, err := http.NewRequest(method, h.url+Path, strings.NewReader(body))
	if err != nil {
		h.t.Fatal(err)
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	r := testkit.Do(h.t, client, req)
	h.v.Settle()
	return r
}

// check validates token with an optional nonce and claimed player.
func (h *harness) check(token, nonce, player string) reply {
	h.t.Helper()
	m := map[string]string{"idToken": token}
	if nonce != "" {
		m["nonce"] = nonce
	}
	if player != "" {
		m["playerId"] = player
	}
	b, _ := json.Marshal(m)
	return h.do("POST", string(b), nil)
}

func (h *harness) expect(r reply, status int, decision, reason, source string) {
	h.t.Helper()
	if r.Status != status || r.Body["decision"] != decision || r.Body["reason"] != reason || r.Body["source"] != source {
		h.t.Fatalf("got %d %s, want %d %s/%s/%s", r.Status, r.Raw, status, decision, reason, source)
	}
	if r.Header.Get("X-Playerguard-Decision") != decision || r.Header.Get("X-Playerguard-Reason") != reason || r.Header.Get("X-Playerguard-Source") != source {
		h.t.Fatalf("headers %v, want %s/%s/%s", r.Header, decision, reason, source)
	}
}

// claims are a valid token's for user, issued at the clock's now.
func (h *harness) claims(user string) kakaooidctest.Claims {
	now := h.clk.Now()
	return kakaooidctest.Claims{Sub: user, Aud: aud, Iat: now, Exp: now.Add(6 * time.Hour), AuthTime: now, Nickname: "hana", Email: "hana-secret@example.com"}
}

// token is a valid kid-1 token of user.
func (h *harness) token(user string) string { return h.fake.Sign("kid-1", h.claims(user)) }

func (h *harness) metric(name string, labels ...string) float64 {
	h.t.Helper()
	return testkit.Metric(h.t, h.reg, name, labels...)
}

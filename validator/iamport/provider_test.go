package iamport

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"

	"playerguard/cache"
	"playerguard/internal/testkit"
	"playerguard/metrics"
	"playerguard/validator"
	"playerguard/validator/iamport/iamporttest"
)

// Recognisable personal data: none of it may leave playerguard.
const (
	impKey    = "SECRET-imp-key-0001"
	impSecret = "SECRET-imp-secret-0002"
	pName     = "홍길동SECRETNAME"
	pPhone    = "01055551234"
	pCI       = "SECRET-CI-ABCDEFGHIJKLMNOP=="
	pDI       = "SECRET-DI-QRSTUVWXYZ=="
	player    = "player-1"
)

var personSecret = []byte("0123456789abcdef0123456789abcdef")

type harness struct {
	t    *testing.T
	fake *iamporttest.Server
	p    *Provider
	v    *validator.Validator
	clk  *testkit.Clock
	reg  *prometheus.Registry
	logs *testkit.SyncBuffer
	url  string
}

// t0 is 2026-06-15 12:00 in Seoul.
var t0 = time.Date(2026, 6, 15, 12, 0, 0, 0, Seoul)

func newHarness(t *testing.T, mod func(*Config), eng func(*validator.Config)) *harness {
	t.Helper()
	fake, err := iamporttest.Start(impKey, impSecret)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(fake.Close)
	h := &harness{t: t, fake: fake, clk: testkit.NewClock(t0), reg: prometheus.NewRegistry(), logs: &testkit.SyncBuffer{}}
	log := slog.New(slog.NewJSONHandler(h.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	m := metrics.New(h.reg, "test")
	cfg := validator.Config{CacheTTL: 5 * time.Minute, StaleFor: 30 * time.Minute, BreakerFailures: 100, Logger: log, Metrics: m, Now: h.clk.Now}
	if eng != nil {
		eng(&cfg)
	}
	c, err := cache.New[*validator.Result](cache.Config{MaxEntries: 10_000, MaxAge: time.Hour, Now: h.clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	cfg.Cache = c
	pc := Config{Key: impKey, Secret: impSecret, PersonKeySecret: personSecret, API: fake.URL(), Timeout: 5 * time.Second, Logger: log, Metrics: m, Now: h.clk.Now}
	if mod != nil {
		mod(&pc)
	}
	p, err := New(pc)
	if err != nil {
		t.Fatal(err)
	}
	h.p = p
	v, err := validator.New(cfg, p)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(v.Close)
	h.v = v
	h.url = testkit.Serve(t, v.NewServer())
	return h
}

var client = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}

func (h *harness) do(body string, headers map[string]string) testkit.Reply {
	h.t.Helper()
	req, _ := http.NewRequest("POST", h.url+Path, strings.NewReader(body))
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	r := testkit.Do(h.t, client, req)
	h.v.Settle()
	return r
}

func (h *harness) gate(imp, player string, minAge int) testkit.Reply {
	h.t.Helper()
	m := map[string]any{"impUid": imp, "playerId": player}
	if minAge != 0 {
		m["minAge"] = minAge
	}
	b, _ := json.Marshal(m)
	return h.do(string(b), nil)
}

func (h *harness) expect(r testkit.Reply, status int, decision, reason, source string) {
	h.t.Helper()
	if r.Status != status || r.Body["decision"] != decision || r.Body["reason"] != reason || r.Body["source"] != source {
		h.t.Fatalf("got %d %s, want %d %s/%s/%s", r.Status, r.Raw, status, decision, reason, source)
	}
}

// cert is a certified adult born on birthday.
func cert(birthday string) iamporttest.Cert {
	b, _ := ParseDate(birthday)
	return iamporttest.Cert{Name: pName, Gender: "male", Birthday: birthday, Birth: time.Date(b.Year, b.Month, b.Day, 0, 0, 0, 0, Seoul).Unix(),
		Certified: true, CertifiedAt: t0.Add(-time.Hour).Unix(), UniqueKey: pCI, UniqueInSite: pDI, Phone: pPhone, Carrier: "SKT"}
}

// TestAgeGate: the verdicts through the HTTP API, the answer's fields,
// and the cache.
func TestAgeGate(t *testing.T) {
	h := newHarness(t, nil, nil)
	h.fake.Set("imp_100", cert("2000-01-01"))
	h.fake.Set("imp_101", cert("2007-06-16")) // 19 tomorrow
	h.fake.Set("imp_102", cert("2007-06-15")) // 19 today
	unc := cert("2000-01-01")
	unc.Certified = false
	h.fake.Set("imp_103", unc)

	r := h.gate("imp_100", player, 0)
	h.expect(r, 200, "allow", "ok", "upstream")
	m := hmac.New(sha256.New, personSecret)
	m.Write([]byte(pCI))
	want := map[string]any{"decision": "allow", "reason": "ok", "source": "upstream", "minAge": float64(19),
		"certifiedAt": float64(t0.Add(-time.Hour).Unix()), "personKey": hex.EncodeToString(m.Sum(nil))}
	if len(r.Body) != len(want) {
		t.Errorf("answer %s, want exactly %v", r.Raw, want)
	}
	for k, v := range want {
		if r.Body[k] != v {
			t.Errorf("%s = %v, want %v", k, r.Body[k], v)
		}
	}
	h.expect(h.gate("imp_100", player, 0), 200, "allow", "ok", "cache")
	if hit := h.gate("imp_100", player, 0); hit.Body["personKey"] != want["personKey"] {
		t.Errorf("cache hit %s", hit.Raw)
	}

	h.expect(h.gate("imp_101", player, 0), 403, "kick", "underage", "upstream")
	h.expect(h.gate("imp_101", player, 0), 403, "kick", "underage", "cache")
	h.expect(h.gate("imp_101", player, 15), 200, "allow", "ok", "upstream") // the key covers minAge
	h.expect(h.gate("imp_101", player, 19), 403, "kick", "underage", "upstream")
	h.expect(h.gate("imp_102", player, 0), 200, "allow", "ok", "upstream")
	h.expect(h.gate("imp_103", player, 0), 403, "kick", "not_certified", "upstream")
	h.expect(h.gate("imp_999", player, 0), 403, "kick", "not_certified", "upstream") // unknown to i'mport
	// An underage kick purged nothing: the minAge 15 allow is still cached.
	h.expect(h.gate("imp_101", player, 15), 200, "allow", "ok", "cache")
	if n := h.fake.TokenCalls(); n != 1 {
		t.Errorf("%d getToken calls, want 1 (reused)", n)
	}
}

// TestOneVerificationOnePlayer: an imp_uid that gave a verdict for one
// player is refused for another, within the window, and free after.
func TestOneVerificationOnePlayer(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.ReuseWindow = time.Hour }, func(c *validator.Config) { c.CacheTTL = 0 })
	h.fake.Set("imp_200", cert("2000-01-01"))
	h.expect(h.gate("imp_200", "a", 0), 200, "allow", "ok", "upstream")
	calls := h.fake.CertCalls()
	h.expect(h.gate("imp_200", "b", 0), 403, "kick", "certification_reused", "upstream")
	if h.fake.CertCalls() != calls {
		t.Error("a reused verification was fetched")
	}
	h.expect(h.gate("imp_200", "a", 0), 200, "allow", "ok", "upstream")
	h.clk.Add(time.Hour)
	h.expect(h.gate("imp_200", "b", 0), 200, "allow", "ok", "upstream")
	h.expect(h.gate("imp_200", "a", 0), 403, "kick", "certification_reused", "upstream")
}

// TestMaxCertAge: a certification older than the limit is expired.
func TestMaxCertAge(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.MaxCertAge = 30 * time.Minute }, nil)
	h.fake.Set("imp_300", cert("2000-01-01")) // certified an hour ago
	h.expect(h.gate("imp_300", player, 0), 403, "kick", "certification_expired", "upstream")
}

// TestTokenSharedAndRefreshed: 1,000 concurrent validations share one
// getToken; a 401 refreshes once and retries once; a skewed i'mport clock
// changes nothing; the token is replaced before it expires.
func TestTokenSharedAndRefreshed(t *testing.T) {
	h := newHarness(t, nil, func(c *validator.Config) { c.CacheTTL = 0 })
	h.fake.SetSkew(-10 * 365 * 24 * time.Hour)
	h.fake.SetTokenDelay(50 * time.Millisecond)
	for i := range 1000 {
		h.fake.Set(fmt.Sprintf("imp_%d", 1000+i), cert("2000-01-01"))
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	answers := map[string]int{}
	for w := range 50 {
		wg.Go(func() {
			for i := w; i < 1000; i += 50 {
				r := h.gate(fmt.Sprintf("imp_%d", 1000+i), fmt.Sprintf("p%d", i), 0)
				mu.Lock()
				answers[fmt.Sprint(r.Body["decision"])]++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if answers["allow"] != 1000 {
		t.Fatalf("answers %v", answers)
	}
	if n := h.fake.TokenCalls(); n != 1 {
		t.Errorf("%d getToken calls for 1,000 validations, want 1", n)
	}
	h.fake.SetTokenDelay(0)

	h.fake.RevokeTokens()
	h.expect(h.gate("imp_1000", "p0", 0), 200, "allow", "ok", "upstream")
	if n := h.fake.TokenCalls(); n != 2 {
		t.Errorf("%d getToken calls after a 401, want 2", n)
	}

	h.clk.Add(28*time.Minute + 59*time.Second) // 1 s before the margin
	h.gate("imp_1000", "p0", 0)
	if n := h.fake.TokenCalls(); n != 2 {
		t.Errorf("%d getToken calls, want the token reused", n)
	}
	h.clk.Add(2 * time.Second)
	h.gate("imp_1000", "p0", 0)
	if n := h.fake.TokenCalls(); n != 3 {
		t.Errorf("%d getToken calls, want a refresh a minute before expiry", n)
	}
	if n := testkit.Metric(t, h.reg, "playerguard_token_refreshes_total", "provider", "iamport", "outcome", "ok"); n != 3 {
		t.Errorf("token_refreshes_total{outcome=ok} = %v, want 3", n)
	}
}

// TestNeverAKickOnFailure: i'mport failing is unavailable, and no outage
// policy admits to an age gate.
func TestNeverAKickOnFailure(t *testing.T) {
	for _, policy := range []validator.Policy{validator.PolicyOpen, validator.PolicyStale} {
		h := newHarness(t, nil, func(c *validator.Config) { c.Policy = policy; c.CacheTTL = time.Second })
		h.fake.Set("imp_400", cert("2000-01-01"))
		h.expect(h.gate("imp_400", player, 0), 200, "allow", "ok", "upstream")
		h.clk.Add(2 * time.Second) // stale now
		for _, st := range []int{500, 503, 408, 429, 400, 403} {
			h.fake.SetStatus(st)
			h.expect(h.gate("imp_400", player, 0), 503, "unavailable", "upstream_unavailable", "upstream")
		}
		h.fake.SetStatus(0)
		h.fake.RevokeTokens()
		h.fake.SetTokenDown(true)
		h.expect(h.gate("imp_400", player, 0), 503, "unavailable", "upstream_unavailable", "upstream")
		if n := testkit.Metric(t, h.reg, "playerguard_token_refreshes_total", "outcome", "error"); n != 1 {
			t.Errorf("token_refreshes_total{outcome=error} = %v, want 1", n)
		}
	}
	// 401 after the retry: one refresh, one retry, then unavailable.
	h := newHarness(t, nil, nil)
	h.fake.Set("imp_401", cert("2000-01-01"))
	h.fake.SetStatus(401)
	h.expect(h.gate("imp_401", player, 0), 503, "unavailable", "upstream_unavailable", "upstream")
	if n, c := h.fake.TokenCalls(), h.fake.CertCalls(); n != 2 || c != 2 {
		t.Errorf("%d getToken and %d certification calls, want 2 and 2", n, c)
	}
}

// TestBadInput: a 400 naming the problem, never forwarded.
func TestBadInput(t *testing.T) {
	h := newHarness(t, nil, nil)
	for _, c := range []struct{ name, body, want string }{
		{"not imp_", `{"impUid":"abc_1","playerId":"p"}`, "impUid must be imp_ followed by digits"},
		{"imp_ only", `{"impUid":"imp_","playerId":"p"}`, "impUid must be imp_"},
		{"letters", `{"impUid":"imp_12a","playerId":"p"}`, "impUid must be imp_"},
		{"path tricks", `{"impUid":"imp_1/../users","playerId":"p"}`, "impUid must be imp_"},
		{"missing impUid", `{"playerId":"p"}`, "missing impUid"},
		{"missing playerId", `{"impUid":"imp_1"}`, "missing playerId"},
		{"long playerId", `{"impUid":"imp_1","playerId":"` + strings.Repeat("p", 257) + `"}`, "playerId too long"},
		{"minAge 0", `{"impUid":"imp_1","playerId":"p","minAge":0}`, "minAge must be an integer from 1 to 100"},
		{"minAge 101", `{"impUid":"imp_1","playerId":"p","minAge":101}`, "minAge must be an integer from 1 to 100"},
		{"minAge 19.0", `{"impUid":"imp_1","playerId":"p","minAge":19.0}`, "minAge must be an integer"},
		{"minAge a string", `{"impUid":"imp_1","playerId":"p","minAge":"19"}`, "minAge must be a JSON number"},
		{"unknown field", `{"impUid":"imp_1","playerId":"p","name":"x"}`, `unknown field "name"`},
		{"accessToken", `{"accessToken":"imp_1","playerId":"p"}`, `unknown field "accessToken"`},
	} {
		t.Run(c.name, func(t *testing.T) {
			h.t = t
			r := h.do(c.body, nil)
			if msg, _ := r.Body["error"].(string); r.Status != 400 || !strings.Contains(msg, c.want) {
				t.Errorf("%d %s, want 400 with %q", r.Status, r.Raw, c.want)
			}
		})
	}
	h.t = t
	r := h.do("", map[string]string{"impUid": "imp_1", "playerId": "p"})
	if r.Status != 400 || !strings.Contains(r.Raw, "takes a JSON body") {
		t.Errorf("headers only: %d %s", r.Status, r.Raw)
	}
	r = h.do(`{"impUid":"imp_1","playerId":"p"}`, map[string]string{"playerId": "q"})
	if r.Status != 400 || !strings.Contains(r.Raw, "JSON body only") {
		t.Errorf("body and header: %d %s", r.Status, r.Raw)
	}
	if h.fake.TokenCalls()+h.fake.CertCalls() != 0 {
		t.Error("a bad request reached i'mport")
	}
}

// TestPrivacy: no personal datum, secret or token in answers, logs or
// metrics, on any path.
func TestPrivacy(t *testing.T) {
	h := newHarness(t, nil, nil)
	h.fake.Set("imp_500", cert("2000-01-01"))
	h.fake.Set("imp_501", cert("2015-01-01"))
	var answers strings.Builder
	for _, r := range []testkit.Reply{
		h.gate("imp_500", player, 0), h.gate("imp_501", player, 0), h.gate("imp_500", "other", 0), h.gate("imp_404", player, 0),
	} {
		answers.WriteString(r.Raw)
	}
	h.fake.SetStatus(500)
	answers.WriteString(h.gate("imp_502", player, 0).Raw)
	h.fake.SetStatus(0)
	h.fake.RevokeTokens()
	h.fake.SetTokenDown(true)
	answers.WriteString(h.gate("imp_503", player, 0).Raw)
	mfs, _ := h.reg.Gather()
	var ms strings.Builder
	for _, mf := range mfs {
		ms.WriteString(mf.String())
	}
	for where, text := range map[string]string{"answers": answers.String(), "logs": h.logs.String(), "metrics": ms.String()} {
		for _, secret := range []string{pName, "SECRETNAME", pPhone, "5555", pCI, pDI, "2000-01-01", "male", impKey, impSecret, "fake-iamport-token"} {
			if strings.Contains(text, secret) {
				t.Errorf("%q found in %s", secret, where)
			}
		}
	}
	// Without the person key secret, no personKey.
	h2 := newHarness(t, func(c *Config) { c.PersonKeySecret = nil }, nil)
	h2.fake.Set("imp_600", cert("2000-01-01"))
	if r := h2.gate("imp_600", player, 0); r.Body["personKey"] != nil || r.Status != 200 {
		t.Errorf("without a person key secret: %s", r.Raw)
	}
}

// TestDecide is the decision table.
func TestDecide(t *testing.T) {
	now := t0
	g := Gate{Rule: RuleFull, MinAge: 19}
	ok := func(resp string) string { return `{"code":0,"message":null,"response":` + resp + `}` }
	adult := `{"certified":true,"certified_at":1781400000,"birthday":"2000-01-01","birth":946652400,"unique_key":"ci","name":"x","phone":"010"}`
	for _, c := range []struct {
		name   string
		status int
		body   string
		g      Gate
		want   validator.Reason
		kick   bool
	}{
		{"adult", 200, ok(adult), g, validator.ReasonOK, false},
		{"19 tomorrow", 200, ok(`{"certified":true,"birthday":"2007-06-16"}`), g, ReasonUnderage, true},
		{"19 today", 200, ok(`{"certified":true,"birthday":"2007-06-15"}`), g, validator.ReasonOK, false},
		{"year rule: 19 in December", 200, ok(`{"certified":true,"birthday":"2007-12-31"}`), Gate{Rule: RuleYear, MinAge: 19}, validator.ReasonOK, false},
		{"birth only (Seoul)", 200, ok(`{"certified":true,"birth":1181833200}`), g, validator.ReasonOK, false}, // 2007-06-15 00:00 KST
		{"birth only: midnight of the 16th in Seoul, still the 15th in UTC", 200, ok(`{"certified":true,"birth":1181919600}`), g, ReasonUnderage, true},
		{"no birth date", 200, ok(`{"certified":true}`), g, validator.ReasonUpstreamUnavailable, false},
		{"not certified", 200, ok(`{"certified":false,"birthday":"2000-01-01"}`), g, ReasonNotCertified, true},
		{"certified null", 200, ok(`{"certified":null,"birthday":"2000-01-01"}`), g, ReasonNotCertified, true},
		{"certified 1234", 200, ok(`{"certified":1234,"birthday":"2000-01-01"}`), g, ReasonNotCertified, true},
		{"non-zero code", 200, `{"code":-1,"message":"no such","response":null}`, g, ReasonNotCertified, true},
		{"404 from i'mport", 404, `{"code":-1,"message":"인증결과가 존재하지 않습니다","response":null}`, g, ReasonNotCertified, true},
		{"404 not i'mport's", 404, `<html>not found</html>`, g, validator.ReasonUpstreamUnavailable, false},
		{"expired certification", 200, ok(adult), Gate{Rule: RuleFull, MinAge: 19, MaxCertAge: time.Hour}, ReasonCertificationExpired, true},
		{"401", 401, `{"code":-1,"message":"Unauthorized","response":null}`, g, validator.ReasonUpstreamUnavailable, false},
		{"500", 500, `{"code":-1,"message":"x","response":null}`, g, validator.ReasonUpstreamUnavailable, false},
		{"429", 429, ``, g, validator.ReasonUpstreamUnavailable, false},
		{"200 unparsable", 200, `{"code":0,"response":`, g, validator.ReasonUpstreamUnavailable, false},
		{"200 duplicate certified", 200, ok(`{"certified":false,"certified":true,"birthday":"2000-01-01"}`), g, validator.ReasonUpstreamUnavailable, false},
		{"200 no code", 200, `{"response":` + adult + `}`, g, validator.ReasonUpstreamUnavailable, false},
		{"code a string", 200, `{"code":"0","message":null,"response":` + adult + `}`, g, validator.ReasonUpstreamUnavailable, false},
		{"code 0.0", 200, `{"code":0.0,"message":null,"response":` + adult + `}`, g, validator.ReasonUpstreamUnavailable, false},
		{"birth 0 and no birthday", 200, ok(`{"certified":true,"birth":0}`), g, validator.ReasonUpstreamUnavailable, false},
	} {
		d := Decide(c.status, []byte(c.body), now, c.g)
		if d.Reason != c.want || (d.Verdict == validator.Kick) != c.kick {
			t.Errorf("%s: %s %s, want %s (kick %v)", c.name, d.Verdict, d.Reason, c.want, c.kick)
		}
	}
}

// TestReuseRace: two players presenting one imp_uid at once: one verdict,
// one certification_reused.
func TestReuseRace(t *testing.T) {
	h := newHarness(t, nil, nil)
	h.fake.Set("imp_700", cert("2000-01-01"))
	h.fake.SetTokenDelay(100 * time.Millisecond) // both wait on the token, then race
	var wg sync.WaitGroup
	got := make([]string, 2)
	for i, pl := range []string{"alice", "mallory"} {
		wg.Go(func() { got[i] = fmt.Sprint(h.gate("imp_700", pl, 0).Body["reason"]) })
	}
	wg.Wait()
	if !(got[0] == "ok" && got[1] == "certification_reused" || got[0] == "certification_reused" && got[1] == "ok") {
		t.Errorf("answers %v, want one ok and one certification_reused", got)
	}
}

// TestReuseTableBounded: bindings expire from first use, whatever the
// rebinds, so the table does not grow past what the window holds.
func TestReuseTableBounded(t *testing.T) {
	clk := testkit.NewClock(t0)
	rt := newReuseTable(time.Hour, clk.Now)
	rt.claim("imp_1", "a")
	for i := range 1000 {
		rt.claim(fmt.Sprintf("imp_%d", 1000+i), "b")
	}
	for range 3 {
		clk.Add(50 * time.Minute)
		if ok, _ := rt.claim("imp_1", "a"); !ok {
			t.Fatal("the same player refused")
		}
	}
	if n := rt.size(); n > 2 {
		t.Errorf("%d bindings held, want the expired ones gone", n)
	}
	clk.Add(61 * time.Minute)
	if ok, _ := rt.claim("imp_1", "b"); !ok {
		t.Error("imp_1 still bound past its window from first use")
	}
	rt.release("imp_1", "b")
	if ok, _ := rt.claim("imp_1", "c"); !ok {
		t.Error("a released claim still binds")
	}
}

// TestCacheBounds: an allow is not cached past the certification's
// maximum age; an underage kick not past midnight in Seoul.
func TestCacheBounds(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.MaxCertAge = 61 * time.Minute }, nil)
	h.fake.Set("imp_800", cert("2000-01-01")) // certified an hour ago
	h.expect(h.gate("imp_800", player, 0), 200, "allow", "ok", "upstream")
	h.expect(h.gate("imp_800", player, 0), 200, "allow", "ok", "cache")
	h.clk.Add(61 * time.Second)
	h.expect(h.gate("imp_800", player, 0), 403, "kick", "certification_expired", "upstream")

	h2 := newHarness(t, nil, func(c *validator.Config) { c.CacheTTL = 24 * time.Hour })
	h2.fake.Set("imp_801", cert("2007-06-16")) // 19 tomorrow (t0 is 15 June, noon in Seoul)
	h2.expect(h2.gate("imp_801", player, 0), 403, "kick", "underage", "upstream")
	h2.expect(h2.gate("imp_801", player, 0), 403, "kick", "underage", "cache")
	h2.clk.Add(12 * time.Hour)
	h2.expect(h2.gate("imp_801", player, 0), 200, "allow", "ok", "upstream")
}

// TestAgeGatePurge: /admin/purge by impUid drops its entries under every
// player and minimum age; by playerId, the player's, cached kicks too.
// Kick answers carry no upstream object.
func TestAgeGatePurge(t *testing.T) {
	h := newHarness(t, nil, nil)
	h.fake.Set("imp_900", cert("2000-01-01"))
	h.fake.Set("imp_901", cert("2015-01-01"))
	ops := httptest.NewServer(h.v.OpsHandler(http.NotFoundHandler(), "admintok"))
	defer ops.Close()
	purge := func(body string) testkit.Reply {
		req, _ := http.NewRequest("POST", ops.URL+"/admin/purge", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer admintok")
		return testkit.Do(t, client, req)
	}
	h.gate("imp_900", player, 0)
	h.gate("imp_900", player, 15)
	h.expect(h.gate("imp_900", player, 15), 200, "allow", "ok", "cache")
	if r := purge(`{"impUid":"imp_900"}`); r.Status != 200 || !strings.Contains(r.Raw, "token") {
		t.Fatalf("purge by impUid: %d %s", r.Status, r.Raw)
	}
	h.expect(h.gate("imp_900", player, 0), 200, "allow", "ok", "upstream")
	h.expect(h.gate("imp_900", player, 15), 200, "allow", "ok", "upstream")

	kick := h.gate("imp_901", player, 0)
	if _, has := kick.Body["upstream"]; has || len(kick.Body) != 6 {
		t.Errorf("kick answer %s: want decision, reason, source, minAge, certifiedAt, personKey only", kick.Raw)
	}
	h.expect(h.gate("imp_901", player, 0), 403, "kick", "underage", "cache")
	if r := purge(`{"playerId":"` + player + `"}`); r.Status != 200 {
		t.Fatalf("purge by player: %d %s", r.Status, r.Raw)
	}
	h.expect(h.gate("imp_901", player, 0), 403, "kick", "underage", "upstream")
	if r := purge(`{"provider":"iamport","accessToken":"imp_901"}`); r.Status != 400 || !strings.Contains(r.Raw, "takes impUid") {
		t.Errorf("accessToken for iamport: %d %s", r.Status, r.Raw)
	}
}

// TestCacheHitZeroAllocs: an age gate answered from the cache (the
// inline answer members) allocates nothing.
func TestCacheHitZeroAllocs(t *testing.T) {
	h := newHarness(t, nil, nil)
	h.fake.Set("imp_1000", cert("2000-01-01"))
	ctx := testkit.HitCtx(t, h.v.Handler, h.v.Settle, func(r *fasthttp.Request) {
		r.SetRequestURI(Path)
		r.SetBodyString(`{"impUid":"imp_1000","playerId":"` + player + `","minAge":19}`)
	})
	if b := string(ctx.Response.Body()); !strings.HasPrefix(b, `{"decision":"allow","reason":"ok","source":"cache","minAge":19,"certifiedAt":`) {
		t.Errorf("cache hit body %s", b)
	}
	testkit.ZeroAllocs(t, h.v.Handler, ctx)
}

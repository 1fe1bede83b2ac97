package fleet

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"

	"playerguard/cache"
	"playerguard/internal/redistest"
	"playerguard/internal/testkit"
	"playerguard/metrics"
	"playerguard/validator"
	"playerguard/validator/kakaogames"
	"playerguard/validator/kakaogames/kakaogamestest"
)

const (
	testApp   = "909428"
	fleetKey  = "SECRET-fleet-key-0123456789abcdef0123"
	redisWait = 50 * time.Millisecond
)

// sidecar is one playerguard of the fleet: a validator with the Kakao
// Games provider, its own cache and tier, its validation API on loopback.
type sidecar struct {
	t     *testing.T
	name  string
	v     *validator.Validator
	tier  *Tier
	cache *cache.Cache[*validator.Result]
	reg   *prometheus.Registry
	logs  *testkit.SyncBuffer
	url   string
	ops   http.Handler
	http  *http.Client
}

type fleetTest struct {
	t     *testing.T
	redis *redistest.Server
	fake  *kakaogamestest.Server
	cars  []*sidecar
}

func newFleet(t *testing.T, n int, mod func(*Config)) *fleetTest {
	t.Helper()
	rs := redistest.Start(t)
	fake, err := kakaogamestest.Start(kakaogamestest.Config{AppID: testApp})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(fake.Close)
	ft := &fleetTest{t: t, redis: rs, fake: fake}
	for i := range n {
		ft.cars = append(ft.cars, ft.start(string(rune('A'+i)), mod))
	}
	for _, c := range ft.cars {
		c.waitConnected()
	}
	return ft
}

func (ft *fleetTest) start(name string, mod func(*Config)) *sidecar {
	t := ft.t
	t.Helper()
	s := &sidecar{t: t, name: name, reg: prometheus.NewRegistry(), logs: &testkit.SyncBuffer{}}
	log := slog.New(slog.NewJSONHandler(s.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	cfg := Config{
		Addrs: []string{ft.redis.Addr}, Key: []byte(fleetKey), Timeout: redisWait,
		FlightTTL: time.Second, MaxTTL: 5 * time.Minute, Logger: log, Registerer: s.reg, Retry: 50 * time.Millisecond,
	}
	if mod != nil {
		mod(&cfg)
	}
	tier, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	s.tier = tier
	c, err := cache.New[*validator.Result](cache.Config{MaxEntries: 10_000, MaxAge: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	s.cache = c
	kg, err := kakaogames.New(kakaogames.Config{Upstream: ft.fake.URL(), AppID: testApp, AppSecret: "fake-app-secret", AdminKey: "fake-admin-key",
		UpstreamTimeout: time.Second, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	s.v, err = validator.New(validator.Config{
		CacheTTL: 5 * time.Minute, StaleFor: 10 * time.Minute, BreakerFailures: 3, BreakerTimeout: 200 * time.Millisecond,
		Cache: c, Fleet: tier, Logger: log, Metrics: metrics.New(s.reg, "test"),
	}, kg)
	if err != nil {
		t.Fatal(err)
	}
	tier.Start(s.v)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := s.v.NewServer()
	go srv.Serve(ln)
	s.url = "http://" + ln.Addr().String()
	s.ops = s.v.OpsHandler(http.NotFoundHandler(), "SECRET-admin-token")
	tr := &http.Transport{MaxIdleConnsPerHost: 64}
	s.http = &http.Client{Timeout: 10 * time.Second, Transport: tr}
	t.Cleanup(func() {
		tr.CloseIdleConnections()
		s.v.SetDraining() // ends the /v1/events streams, as a drain does
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.ShutdownWithContext(ctx)
		s.v.Close()
		tier.Close()
		c.Close()
	})
	return s
}

func (s *sidecar) waitConnected() {
	s.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !s.tier.Connected() {
		if time.Now().After(deadline) {
			s.t.Fatalf("sidecar %s not in the fleet after 30s", s.name)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// check validates token for player on platform "mobile" and returns the
// decision and source.
func (s *sidecar) check(token, player string) (status int, decision, source string) {
	s.t.Helper()
	b, _ := json.Marshal(map[string]string{"accessToken": token, "platform": "mobile", "playerId": player})
	req, _ := http.NewRequest("POST", s.url+kakaogames.Path, strings.NewReader(string(b)))
	r := testkit.Do(s.t, s.http, req)
	s.v.Settle()
	d, _ := r.Body["decision"].(string)
	src, _ := r.Body["source"].(string)
	return r.Status, d, src
}

func (s *sidecar) metric(name string, labels ...string) float64 {
	s.t.Helper()
	return testkit.Metric(s.t, s.reg, name, labels...)
}

func key(token, player string) cache.Key {
	var kb cache.KeyBuilder
	return kb.Key([]byte("mobile"), []byte(player), []byte(token))
}

// cached says whether s holds a fresh allow for token and player.
func (s *sidecar) cached(token, player string) bool {
	k := key(token, player)
	_, st := s.cache.Get(&k, time.Now())
	return st == cache.Fresh
}

func (ft *fleetTest) allow(token, player string) {
	ft.fake.Set(token, kakaogamestest.Allow(testApp, player, "normal"))
}

// TestSharedAllow: an allow on A answers B and C without an upstream
// call, as a cache hit, and is then cached locally by each.
func TestSharedAllow(t *testing.T) {
	ft := newFleet(t, 3, nil)
	a, b, c := ft.cars[0], ft.cars[1], ft.cars[2]
	ft.allow("tok-1", "1001")
	if st, d, src := a.check("tok-1", "1001"); st != 200 || d != "allow" || src != "upstream" {
		t.Fatalf("A: %d %s %s", st, d, src)
	}
	for _, s := range []*sidecar{b, c} {
		if st, d, src := s.check("tok-1", "1001"); st != 200 || d != "allow" || src != "cache" {
			t.Fatalf("%s: %d %s %s, want a shared allow", s.name, st, d, src)
		}
		if !s.cached("tok-1", "1001") {
			t.Errorf("%s did not cache the shared allow locally", s.name)
		}
		if got := s.metric("playerguard_fleet_upstream_calls_saved_total", "how", "shared"); got != 1 {
			t.Errorf("%s: saved{shared} = %v, want 1", s.name, got)
		}
	}
	if n := ft.fake.Calls(); n != 1 {
		t.Errorf("upstream calls = %d, want 1", n)
	}
	// Another claim of the same token is another key: not answered by it.
	if _, d, src := b.check("tok-1", "1002"); src != "upstream" || d != "kick" {
		t.Errorf("a claim the token does not match: %s from %s, want a kick from upstream", d, src)
	}
	// No key in Redis names the token or the player.
	keys := ft.redis.Do("KEYS", "*")
	for _, secret := range []string{"tok-1", "1001"} {
		if strings.Contains(keys, secret) {
			t.Errorf("a Redis key holds %q: %s", secret, keys)
		}
	}
	if !strings.Contains(keys, "pg:v:") {
		t.Errorf("no shared value in Redis: %q", keys)
	}
}

// TestKickReachesEverySidecar: a kick learnt on B drops the player's
// allows on A and C (timed), and the shared allow written before it is not
// served again anywhere.
func TestKickReachesEverySidecar(t *testing.T) {
	ft := newFleet(t, 3, nil)
	a, b, c := ft.cars[0], ft.cars[1], ft.cars[2]
	var lags []time.Duration
	for round := range 20 {
		player := fmt.Sprint(2000 + round)
		good, bad := "good-"+player, "bad-"+player
		ft.allow(good, player)
		ft.fake.Set(bad, kakaogamestest.Lockout(testApp, player))
		for _, s := range ft.cars {
			if _, d, _ := s.check(good, player); d != "allow" {
				t.Fatalf("%s: %s, want allow", s.name, d)
			}
		}
		start := time.Now()
		if _, d, _ := b.check(bad, player); d != "kick" {
			t.Fatalf("B: %s, want the lockout's kick", d)
		}
		for _, s := range []*sidecar{a, c} {
			for s.cached(good, player) {
				if time.Since(start) > 5*time.Second {
					t.Fatalf("%s still holds %s's allow 5s after B's kick", s.name, player)
				}
				time.Sleep(50 * time.Microsecond)
			}
			lags = append(lags, time.Since(start))
		}
		// The shared allow predates the kick: A asks the upstream again.
		before := ft.fake.TokenCalls(good)
		if _, _, src := a.check(good, player); src != "upstream" {
			t.Fatalf("A after the kick: source %s, want upstream", src)
		}
		if ft.fake.TokenCalls(good) != before+1 {
			t.Fatal("A did not ask the upstream after the kick")
		}
	}
	sort.Slice(lags, func(i, j int) bool { return lags[i] < lags[j] })
	t.Logf("kick propagation over %d drops: p50 %v, p99 %v, max %v", len(lags), lags[len(lags)/2], lags[len(lags)*99/100], lags[len(lags)-1])
	if got := a.metric("playerguard_fleet_invalidations_total", "kind", "token"); got < 20 {
		t.Errorf("A: invalidations{token} = %v, want 20", got)
	}
	if got := a.metric("playerguard_fleet_values_ignored_total", "why", "kicked"); got < 1 {
		t.Errorf("A: values_ignored{kicked} = %v, want at least 1", got)
	}
}

// TestAdminPurgeReachesEverySidecar: /admin/purge of a player on C drops
// the player on A and B.
func TestAdminPurgeReachesEverySidecar(t *testing.T) {
	ft := newFleet(t, 3, nil)
	ft.allow("tok-p", "3001")
	for _, s := range ft.cars {
		s.check("tok-p", "3001")
	}
	req, _ := http.NewRequest("POST", "/admin/purge", strings.NewReader(`{"playerId":"3001"}`))
	req.Header.Set("Authorization", "Bearer SECRET-admin-token")
	rec := &responseRecorder{header: http.Header{}}
	ft.cars[2].ops.ServeHTTP(rec, req)
	if rec.status != 200 {
		t.Fatalf("purge: %d %s", rec.status, rec.body.String())
	}
	deadline := time.Now().Add(5 * time.Second)
	for _, s := range ft.cars {
		for s.cached("tok-p", "3001") {
			if time.Now().After(deadline) {
				t.Fatalf("%s still holds the purged player", s.name)
			}
			time.Sleep(time.Millisecond)
		}
	}
	calls := ft.fake.Calls()
	if _, _, src := ft.cars[0].check("tok-p", "3001"); src != "upstream" || ft.fake.Calls() != calls+1 {
		t.Errorf("after the purge A answered from %s; the shared allow should be stale", src)
	}
}

type responseRecorder struct {
	header http.Header
	status int
	body   strings.Builder
}

func (r *responseRecorder) Header() http.Header         { return r.header }
func (r *responseRecorder) Write(b []byte) (int, error) { return r.body.Write(b) }
func (r *responseRecorder) WriteHeader(s int)           { r.status = s }

// TestForgedValuesIgnored: a value altered in Redis, one written without
// the fleet key, and an authentic one copied under another key are each
// ignored and counted; the upstream answers instead.
func TestForgedValuesIgnored(t *testing.T) {
	ft := newFleet(t, 2, nil)
	a, b := ft.cars[0], ft.cars[1]
	name := func(token, player string) string {
		k := key(token, player)
		return a.tier.keys.name("pg:", "v", k[:])
	}
	ft.allow("tok-x", "4001")
	ft.fake.Set("tok-y", kakaogamestest.Lockout(testApp, "4002"))
	a.check("tok-x", "4001")

	// Altered: one byte of the ciphertext flipped.
	ft.redis.Do("SETRANGE", name("tok-x", "4001"), "40", "Z")
	calls := ft.fake.Calls()
	if _, d, src := b.check("tok-x", "4001"); d != "allow" || src != "upstream" || ft.fake.Calls() != calls+1 {
		t.Fatalf("altered value: %s from %s, want the upstream's allow", d, src)
	}
	if got := b.metric("playerguard_fleet_values_ignored_total", "why", "forged"); got != 1 {
		t.Errorf("forged = %v, want 1", got)
	}

	// Copied: tok-x's authentic value under tok-y's key; tok-y is locked out.
	ft.redis.Do("COPY", name("tok-x", "4001"), name("tok-y", "4001"), "REPLACE")
	if _, d, src := b.check("tok-y", "4001"); d != "kick" || src != "upstream" {
		t.Fatalf("copied value: %s from %s, want the upstream's kick", d, src)
	}
	// Written by someone without the key.
	ft.redis.Do("SET", name("tok-z", "4003"), strings.Repeat("A", 200))
	ft.fake.Set("tok-z", kakaogamestest.Invalid())
	if _, d, src := b.check("tok-z", "4003"); d != "kick" || src != "upstream" {
		t.Fatalf("forged value: %s from %s, want the upstream's kick", d, src)
	}
	if got := b.metric("playerguard_fleet_values_ignored_total", "why", "forged"); got != 3 {
		t.Errorf("forged = %v, want 3", got)
	}
	// Too large.
	ft.redis.Do("SET", name("tok-w", "4004"), strings.Repeat("A", MaxValueLen+1))
	ft.allow("tok-w", "4004")
	if _, _, src := b.check("tok-w", "4004"); src != "upstream" {
		t.Fatalf("oversized value answered from %s", src)
	}
	if got := b.metric("playerguard_fleet_values_ignored_total", "why", "too_large"); got != 1 {
		t.Errorf("too_large = %v, want 1", got)
	}
}

// TestCoalescingAcrossSidecars: a storm of connects over a set of tokens
// spread across three sidecars makes one upstream call per token.
func TestCoalescingAcrossSidecars(t *testing.T) {
	// A generous Redis budget: under -race on two cores a round trip can
	// take longer than the default 50ms, and a sidecar whose lookup ran
	// out of budget rightly calls the upstream itself. This test is about
	// the flights, not the budget (TestRedisFrozen is).
	ft := newFleet(t, 3, func(c *Config) { c.Timeout = time.Second })
	const tokens, connects = 100, 1000
	for i := range tokens {
		ft.allow(fmt.Sprint("storm-", i), fmt.Sprint(5000+i))
	}
	ft.fake.SetLatency(50 * time.Millisecond)
	var wg sync.WaitGroup
	errs := make(chan string, connects)
	sem := make(chan struct{}, 96)
	for i := range connects {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			s := ft.cars[i%3]
			n := (i * 7) % tokens
			if _, d, _ := s.check(fmt.Sprint("storm-", n), fmt.Sprint(5000+n)); d != "allow" {
				errs <- d
			}
		}()
	}
	wg.Wait()
	close(errs)
	for d := range errs {
		t.Fatalf("a storm connect answered %s", d)
	}
	var waited float64
	for _, s := range ft.cars {
		waited += s.metric("playerguard_fleet_upstream_calls_saved_total", "how", "waited")
	}
	t.Logf("storm: %d connects over %d tokens on 3 sidecars: %d upstream calls, %v waited for another sidecar", connects, tokens, ft.fake.Calls(), waited)
	if n := ft.fake.Calls(); n != tokens {
		t.Errorf("upstream calls = %d, want %d (one per token)", n, tokens)
	}
}

// TestRedisKilledMidLoad: killing Redis under load changes no verdict and
// delays no validation beyond the Redis budget; the sidecars run
// local-only, stay up, and are back in the fleet once Redis is.
func TestRedisKilledMidLoad(t *testing.T) {
	ft := newFleet(t, 3, nil)
	const players = 50
	for i := range players {
		ft.allow(fmt.Sprint("load-", i), fmt.Sprint(6000+i))
		ft.fake.Set(fmt.Sprint("locked-", i), kakaogamestest.Lockout(testApp, fmt.Sprint(7000+i)))
	}
	var (
		mu      sync.Mutex
		slowest time.Duration
		wrong   []string
	)
	run := func(rounds int) {
		var wg sync.WaitGroup
		for w := range 12 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for r := range rounds {
					s := ft.cars[(w+r)%3]
					i := (w*31 + r) % players
					// Fresh keys: every one a local miss.
					tok, player, want := fmt.Sprint("load-", i), fmt.Sprint(6000+i), "allow"
					if r%4 == 3 {
						tok, player, want = fmt.Sprint("locked-", i), fmt.Sprint(7000+i), "kick"
					}
					k := key(tok, player)
					s.cache.Delete(&k)
					start := time.Now()
					_, d, _ := s.check(tok, player)
					took := time.Since(start)
					mu.Lock()
					slowest = max(slowest, took)
					if d != want {
						wrong = append(wrong, fmt.Sprintf("%s %s: %s, want %s", s.name, tok, d, want))
					}
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
	}
	run(20)
	ft.redis.Kill()
	run(40)
	if len(wrong) > 0 {
		t.Fatalf("%d wrong verdicts, first: %s", len(wrong), wrong[0])
	}
	// The upstream answers at once here: what a validation waited beyond
	// its own work is Redis. (Generous for -race and a loaded machine.)
	if slowest > redisWait+500*time.Millisecond {
		t.Errorf("slowest validation %v with Redis dying, want within the %v budget (plus scheduling)", slowest, redisWait)
	}
	t.Logf("slowest validation while Redis died: %v", slowest)
	for _, s := range ft.cars {
		if s.tier.Connected() {
			t.Errorf("%s says it is in the fleet with Redis dead", s.name)
		}
		if got := s.metric("playerguard_redis_connected"); got != 0 {
			t.Errorf("%s: redis_connected = %v, want 0", s.name, got)
		}
	}
	ft.redis.Restart()
	for _, s := range ft.cars {
		s.waitConnected()
	}
}

// TestRedisFrozen: a Redis that holds its connections and answers nothing
// delays no validation beyond the budget; the breaker takes the sidecar
// local-only, and it is back once Redis answers.
func TestRedisFrozen(t *testing.T) {
	ft := newFleet(t, 1, nil)
	s := ft.cars[0]
	for i := range 20 {
		ft.allow(fmt.Sprint("frz-", i), fmt.Sprint(8000+i))
	}
	ft.redis.Freeze()
	var slowest time.Duration
	for i := range 20 {
		start := time.Now()
		if _, d, _ := s.check(fmt.Sprint("frz-", i), fmt.Sprint(8000+i)); d != "allow" {
			t.Fatalf("frozen Redis: %s, want allow", d)
		}
		slowest = max(slowest, time.Since(start))
	}
	t.Logf("slowest validation with Redis frozen: %v", slowest)
	if slowest > redisWait+500*time.Millisecond {
		t.Errorf("slowest validation %v with Redis frozen, want within the %v budget", slowest, redisWait)
	}
	if got := s.metric("playerguard_redis_operations_total", "op", "look", "outcome", "skipped"); got == 0 {
		t.Error("the breaker never stopped the lookups")
	}
	ft.redis.Thaw()
	s.waitConnected()
}

// TestRestartedEmptyAfterMissedKick: Redis restarts with an empty dataset
// while a kick happened that A could not hear; when A is back in the
// fleet, its stale allow is gone.
func TestRestartedEmptyAfterMissedKick(t *testing.T) {
	ft := newFleet(t, 2, nil)
	a, b := ft.cars[0], ft.cars[1]
	ft.allow("tok-r", "9001")
	ft.fake.Set("tok-r2", kakaogamestest.Lockout(testApp, "9001"))
	a.check("tok-r", "9001")
	if !a.cached("tok-r", "9001") {
		t.Fatal("A did not cache the allow")
	}
	ft.redis.Kill()
	// B learns of the lockout while Redis is down: its kick cannot reach A.
	if _, d, _ := b.check("tok-r2", "9001"); d != "kick" {
		t.Fatalf("B: %s, want kick", d)
	}
	if !a.cached("tok-r", "9001") {
		t.Fatal("A lost the allow without hearing the kick (test setup)")
	}
	ft.redis.Restart()
	a.waitConnected()
	b.waitConnected()
	if a.cached("tok-r", "9001") {
		t.Fatal("A still holds the allow of a player kicked while it was away")
	}
	if got := a.metric("playerguard_fleet_flushes_total"); got < 2 {
		t.Errorf("A: flushes = %v, want one at start and one on rejoining", got)
	}
	// B's kick, kept while Redis was down, went out once B was back: its
	// markers are in the new dataset. (A may not hear the message itself:
	// it can be published before A resubscribes, and pub/sub keeps
	// nothing. A's own flush on rejoining is what covers that.)
	deadline := time.Now().Add(5 * time.Second)
	for ft.redis.Do("KEYS", "pg:p:*") == "*0" || b.metric("playerguard_fleet_kicks_pending") != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("B's pending kick was never published (pending %v)", b.metric("playerguard_fleet_kicks_pending"))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestBadConfig: what New refuses, and a Redis that refuses the
// credentials (exit 2 in main), unlike one that is down (local-only).
func TestBadConfig(t *testing.T) {
	for _, cfg := range []Config{
		{},
		{Addrs: []string{"localhost"}, Key: []byte(fleetKey)},
		{Addrs: []string{"localhost:99999"}, Key: []byte(fleetKey)},
		{Addrs: []string{"127.0.0.1:6379"}, Key: []byte("short")},
	} {
		if tier, err := New(cfg); err == nil {
			tier.Close()
			t.Errorf("New(%v) accepted", cfg.Addrs)
		}
	}
	rs := redistest.Start(t, "--requirepass", "SECRET-redis-pass")
	_, err := New(Config{Addrs: []string{rs.Addr}, Key: []byte(fleetKey), Password: "wrong"})
	if err == nil || !strings.Contains(err.Error(), "refused") || strings.Contains(err.Error(), "wrong") {
		t.Errorf("wrong password: %v, want a refusal naming no password", err)
	}
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	down := ln.Addr().String()
	ln.Close()
	tier, err := New(Config{Addrs: []string{down}, Key: []byte(fleetKey)})
	if err != nil {
		t.Fatalf("a Redis that is down: %v, want local-only", err)
	}
	tier.Start(nil)
	if tier.Connected() {
		t.Error("connected to nothing")
	}
	tier.Close()
}

// TestCacheHitZeroAllocsWithFleet: with the fleet tier configured, a local
// hit never reaches Redis and allocates nothing (CI runs it without -race:
// go test -run Allocs).
func TestCacheHitZeroAllocsWithFleet(t *testing.T) {
	ft := newFleet(t, 1, nil)
	s := ft.cars[0]
	ft.allow("tok-alloc", "1234")
	ctx := testkit.HitCtx(t, s.v.Handler, s.v.Settle, func(r *fasthttp.Request) {
		r.SetRequestURI(kakaogames.Path)
		r.SetBodyString(`{"accessToken":"tok-alloc","platform":"mobile","playerId":"1234"}`)
	})
	looks := s.metric("playerguard_redis_operations_total", "op", "look", "outcome", "ok")
	testkit.ZeroAllocs(t, s.v.Handler, ctx)
	if got := s.metric("playerguard_redis_operations_total", "op", "look", "outcome", "ok"); got != looks {
		t.Errorf("local hits made %v Redis lookups", got-looks)
	}
}

// TestFailedKickRetried: a kick whose round trip fails while the
// subscriptions stay up (Redis out of memory refuses the markers' SETs) is
// sent again once Redis takes writes, without waiting for a
// resubscription: its markers are what keep the other sidecars from
// serving a shared allow from before the kick.
func TestFailedKickRetried(t *testing.T) {
	ft := newFleet(t, 2, nil)
	a, b := ft.cars[0], ft.cars[1]
	ft.allow("tok-f", "9101")
	ft.fake.Set("tok-f2", kakaogamestest.Lockout(testApp, "9101"))
	a.check("tok-f", "9101")
	flushes := b.metric("playerguard_fleet_flushes_total")
	ft.redis.Do("CONFIG", "SET", "maxmemory-policy", "noeviction")
	ft.redis.Do("CONFIG", "SET", "maxmemory", "1")
	if _, d, _ := b.check("tok-f2", "9101"); d != "kick" {
		t.Fatalf("B: %s, want kick", d)
	}
	deadline := time.Now().Add(2 * time.Second)
	for b.metric("playerguard_redis_operations_total", "op", "kick", "outcome", "error") == 0 {
		if time.Now().After(deadline) {
			t.Fatal("B's kick did not fail with Redis out of memory (test setup)")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if keys := ft.redis.Do("KEYS", "pg:p:*"); keys != "*0" {
		t.Fatalf("markers written with Redis out of memory: %q", keys)
	}
	ft.redis.Do("CONFIG", "SET", "maxmemory", "0")
	deadline = time.Now().Add(5 * time.Second)
	for ft.redis.Do("KEYS", "pg:p:*") == "*0" {
		if time.Now().After(deadline) {
			t.Fatal("B's failed kick was never sent again")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if got := b.metric("playerguard_fleet_flushes_total"); got != flushes {
		t.Errorf("B resubscribed (%v -> %v): the retry should not need it", flushes, got)
	}
	// The shared allow from before the kick is stale for A too.
	k := key("tok-f", "9101")
	a.cache.Delete(&k)
	if _, _, src := a.check("tok-f", "9101"); src != "upstream" {
		t.Errorf("A after the kick: source %s, want upstream", src)
	}
}

// TestLockReleasedWithBreakerOpen: a flight that took the fleet's lock
// lets it go even if its sidecar's breaker opened meanwhile: the other
// sidecars wait on that lock.
func TestLockReleasedWithBreakerOpen(t *testing.T) {
	ft := newFleet(t, 1, nil)
	tier := ft.cars[0].tier
	k := key("tok-lock", "1")
	f := tier.Look(&k, "1", cache.TokenOf([]byte("tok-lock"))).(*flight)
	if !f.locked {
		t.Fatal("Look did not take the lock")
	}
	for range 20 { // twenty failures open the breaker
		_, done, ok := tier.use()
		if !ok {
			break
		}
		done(false)
	}
	if _, _, ok := tier.use(); ok {
		t.Fatal("the breaker did not open (test setup)")
	}
	f.Done()
	// Well within the lock's own life (FlightTTL, 1s here).
	deadline := time.Now().Add(500 * time.Millisecond)
	for ft.redis.Do("EXISTS", f.lkey) != ":0" {
		if time.Now().After(deadline) {
			t.Fatal("the lock outlived its flight with the breaker open")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

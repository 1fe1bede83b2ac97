package fleet

import (
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sony/gobreaker/v2"

	"playerguard/cache"
	"playerguard/internal/redistest"
	"playerguard/internal/testkit"
	"playerguard/metrics"
	"playerguard/validator"
	"playerguard/validator/iamport"
	"playerguard/validator/iamport/iamporttest"
	"playerguard/validator/kakaogames/kakaogamestest"
)

// waitFor polls cond every few ms until it holds or d has passed.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestReviewKickerRevivesItsOwnKick: B learns that a player is locked out
// while its Redis breaker is open (Redis stalled for the 20 or so round
// trips that open it: about a second here), so its kick is kept to be sent
// later. Once Redis answers again, and before the
// kept kick goes out (the next probe tick, up to -retry later), a local
// miss on B itself finds the allow shared before the kick, with no marker
// yet, and serves and re-caches it: the stamp it is cached with postdates
// B's own purge, so nothing refuses it. When the kick finally goes out,
// every other sidecar drops the player, but B ignores its own message and
// keeps admitting the locked-out player for up to -cache-ttl.
//
// Rule 1: an allow looked up before a kick must never be served after the
// kick, on any sidecar (the kicking one included).
func TestReviewKickerRevivesItsOwnKick(t *testing.T) {
	// Retry 1s is the production default (the probe's tick).
	ft := newFleet(t, 2, func(c *Config) { c.Retry = time.Second })
	a, b := ft.cars[0], ft.cars[1]
	const good, bad, player = "rv-good", "rv-bad", "9501"
	ft.allow(good, player)
	if _, d, src := a.check(good, player); d != "allow" || src != "upstream" {
		t.Fatalf("A: %s from %s", d, src)
	}
	if _, d, src := b.check(good, player); d != "allow" || src != "cache" {
		t.Fatalf("B: %s from %s, want the shared allow", d, src)
	}
	// The player is locked out: every token of theirs kicks from now on.
	ft.fake.Set(good, kakaogamestest.Lockout(testApp, player))
	ft.fake.Set(bad, kakaogamestest.Lockout(testApp, player))
	for i := range 40 {
		ft.allow(fmt.Sprint("rv-miss-", i), fmt.Sprint(9600+i))
	}
	flushes := b.metric("playerguard_fleet_flushes_total")

	// Redis stalls: B's lookups time out and its breaker opens.
	ft.redis.Freeze()
	for i := 0; b.tier.breaker.State() != gobreaker.StateOpen; i++ {
		if i == 40 {
			ft.redis.Thaw()
			t.Fatal("B's breaker did not open (test setup)")
		}
		b.check(fmt.Sprint("rv-miss-", i), fmt.Sprint(9600+i))
	}
	// B learns of the lockout: its own entries of the player go at once,
	// the kick is kept for when Redis is back.
	if _, d, _ := b.check(bad, player); d != "kick" {
		ft.redis.Thaw()
		t.Fatalf("B: %s, want the lockout's kick", d)
	}
	ft.redis.Thaw()
	if b.cached(good, player) {
		t.Fatal("B still holds the allow after its own kick (test setup)")
	}
	// The probe closes the breaker; the kept kick goes out a tick later.
	waitFor(t, 10*time.Second, "B's breaker did not close", func() bool { return b.tier.breaker.State() == gobreaker.StateClosed })
	calls := ft.fake.TokenCalls(good)
	_, d, src := b.check(good, player)
	if d == "allow" {
		t.Errorf("B, after its own kick of player %s: %s from %s without asking the upstream (%d calls), want the upstream's kick", player, d, src, ft.fake.TokenCalls(good)-calls)
	}
	// The kick goes out at last: A drops the player, B keeps the revived allow.
	waitFor(t, 5*time.Second, "B's kept kick never went out", func() bool { return ft.redis.Do("KEYS", "pg:p:*") != "*0" })
	waitFor(t, 5*time.Second, "A never dropped the player", func() bool { return !a.cached(good, player) })
	// (A is not asked: its upstream kick would be published and drop the
	// player on B, hiding what B does on its own.)
	time.Sleep(100 * time.Millisecond) // B heard its own message, if it heeds it
	if _, d, src := b.check(good, player); d != "kick" {
		t.Errorf("B after its kick reached the fleet: %s from %s, want kick (every other sidecar kicks)", d, src)
	}
	if got := b.metric("playerguard_fleet_flushes_total"); got != flushes {
		t.Logf("note: B resubscribed during the stall (%v -> %v flushes)", flushes, got)
	}
}

// ageGateT is startAgeGate with a given Redis budget.
func startAgeGateT(t *testing.T, rs *redistest.Server, fake *iamporttest.Server, timeout time.Duration) *ageGate {
	t.Helper()
	reg := prometheus.NewRegistry()
	log := slog.New(slog.DiscardHandler)
	tier, err := New(Config{Addrs: []string{rs.Addr}, Key: []byte(fleetKey), Timeout: timeout, Registerer: reg, Retry: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	m := metrics.New(reg, "test")
	p, err := iamport.New(iamport.Config{Key: "imp-key", Secret: "SECRET-imp", API: fake.URL(), Timeout: time.Second, Logger: log, Metrics: m, Shared: tier})
	if err != nil {
		t.Fatal(err)
	}
	c, _ := cache.New[*validator.Result](cache.Config{MaxEntries: 1000, MaxAge: time.Hour})
	v, err := validator.New(validator.Config{CacheTTL: time.Minute, Cache: c, Fleet: tier, Logger: log, Metrics: m}, p)
	if err != nil {
		t.Fatal(err)
	}
	tier.Start(v)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := v.NewServer()
	go srv.Serve(ln)
	t.Cleanup(func() { ln.Close(); srv.Shutdown(); v.Close(); tier.Close(); c.Close() })
	g := &ageGate{url: "http://" + ln.Addr().String(), reg: reg, tier: tier}
	waitFor(t, 10*time.Second, "age gate not in the fleet", tier.Connected)
	return g
}

// TestReviewIamportRedisBudget: with Redis frozen, one age gate
// validation waits on Redis once for the imp_uid claim (Claim), once for
// the fleet's access token (Load) and once more to share the token it
// fetched (Store, before the waiting validation may go on): each with a
// whole -redis-timeout of its own.
//
// Rule 2: no validation waits on Redis longer than -redis-timeout in all.
func TestReviewIamportRedisBudget(t *testing.T) {
	const budget = 300 * time.Millisecond
	rs, fake := iamportFleet(t)
	fake.Set("imp_900", adultCert("ci-900"))
	g := startAgeGateT(t, rs, fake, budget)
	rs.Freeze()
	defer rs.Thaw()
	start := time.Now()
	d, r := g.check(t, "imp_900", "p-900")
	took := time.Since(start)
	t.Logf("age gate validation with Redis frozen: %s %s in %v (budget %v)", d, r, took, budget)
	if d != "allow" {
		t.Errorf("frozen Redis: %s %s, want allow", d, r)
	}
	if took > budget+150*time.Millisecond {
		t.Errorf("the validation took %v with Redis frozen: over the %v Redis budget (Claim, token Load and token Store each wait a whole budget)", took, budget)
	}
}

// TestReviewSharedClaimAlteredHolder: player p-1 binds imp_300 on A. Someone
// who can write to Redis (no fleet key) alters the binding's value. On B,
// another player presenting imp_300 is then decided by B's own table
// alone, as with Redis down: the binding is ignored and counted, never
// trusted. Failing closed instead would let a Redis writer refuse any
// player (a kick because of Redis); what admits p-4 is still i'mport's
// own verdict of an adult. SECURITY.md says a Redis writer can defeat the
// fleet-wide rule this way (each sidecar's own rule stands).
func TestReviewSharedClaimAlteredHolder(t *testing.T) {
	rs, fake := iamportFleet(t)
	fake.Set("imp_300", adultCert("ci-300"))
	a, b := startAgeGateT(t, rs, fake, time.Second), startAgeGateT(t, rs, fake, time.Second)
	if d, r := a.check(t, "imp_300", "p-1"); d != "allow" {
		t.Fatalf("A: %s %s", d, r)
	}
	if d, r := b.check(t, "imp_300", "p-3"); d != "kick" || r != "certification_reused" {
		t.Fatalf("B before any tampering: %s %s, want certification_reused (test setup)", d, r)
	}
	// Alter one byte of every provider state value (the binding and the
	// access token: the writer cannot tell them apart, nor needs to).
	for _, k := range strings.Split(rs.Do("KEYS", "pg:s:*"), "\n") {
		rs.Do("SETRANGE", k, "30", "Z")
	}
	forged := testkit.Metric(t, b.reg, "playerguard_fleet_values_ignored_total", "why", "forged")
	if d, r := b.check(t, "imp_300", "p-4"); d != "allow" {
		t.Errorf("B, a third player, after the binding was altered: %s %s, want i'mport's allow (the altered binding is not trusted either way)", d, r)
	}
	if got := testkit.Metric(t, b.reg, "playerguard_fleet_values_ignored_total", "why", "forged"); got <= forged {
		t.Errorf("the altered binding was not counted as forged (%v -> %v)", forged, got)
	}
	// A's own table still binds imp_300 to p-1.
	if d, r := a.check(t, "imp_300", "p-4"); d != "kick" || r != "certification_reused" {
		t.Errorf("A, the third player: %s %s, want certification_reused from its own table", d, r)
	}
}

// purge posts body to s's /admin/purge.
func (s *sidecar) purge(body string) {
	s.t.Helper()
	req, _ := http.NewRequest("POST", "/admin/purge", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer SECRET-admin-token")
	rec := &responseRecorder{header: http.Header{}}
	s.ops.ServeHTTP(rec, req)
	if rec.status != 200 {
		s.t.Fatalf("purge %s: %d %s", body, rec.status, rec.body.String())
	}
}

// TestReviewAdminPurgeDetachesFlights: an upstream call for a player is
// under way on A when an admin purges the player on A. A validation that
// arrives on A after the purge joins that call and is answered with the
// allow fetched before it. The same purge received from another sidecar
// (FleetPurged) detaches the flights; the purging sidecar's own
// servePurge{playerId} does not (nor does the key-scope purge).
//
// Rule 1: an allow looked up before a kick (an admin purge is one, see the
// package comment) must never be served after it, on any sidecar.
func TestReviewAdminPurgeDetachesFlights(t *testing.T) {
	ft := newFleet(t, 2, nil)
	a := ft.cars[0]
	const tok, player = "ap-tok", "9701"
	ft.allow(tok, player)
	ft.fake.SetLatency(400 * time.Millisecond)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); a.check(tok, player) }()
	waitFor(t, 2*time.Second, "the first call never reached the upstream", func() bool { return ft.fake.TokenCalls(tok) == 1 })
	a.purge(`{"playerId":"` + player + `"}`)
	// After the purge: a new validation of the player on A.
	_, d, src := a.check(tok, player)
	wg.Wait()
	if n := ft.fake.TokenCalls(tok); n < 2 {
		t.Errorf("a validation that started after the admin purge was answered %s (%s) by the upstream call from before it (%d upstream calls, want 2)", d, src, n)
	}
}

// TestReviewReplayedOldValue: an authentic value that was overwritten
// (the player kicked, then validated again) and is written back by someone
// who kept a copy is still refused: the kick's marker outlives it. A
// regression test (passes).
func TestReviewReplayedOldValue(t *testing.T) {
	ft := newFleet(t, 2, nil)
	a, b := ft.cars[0], ft.cars[1]
	const good, bad, player = "rp-good", "rp-bad", "9801"
	k := key(good, player)
	vkey := a.tier.keys.name("pg:", "v", k[:])
	c := *a.tier.client.Load()
	get := func() []byte {
		raw, err := c.Do(t.Context(), c.B().Get().Key(vkey).Build()).AsBytes()
		if err != nil {
			t.Fatal(err)
		}
		return raw
	}
	ft.allow(good, player)
	ft.fake.Set(bad, kakaogamestest.Lockout(testApp, player))
	a.check(good, player)
	old := get()
	if _, d, _ := b.check(bad, player); d != "kick" {
		t.Fatalf("B: %s, want kick", d)
	}
	waitFor(t, 5*time.Second, "A kept the player", func() bool { return !a.cached(good, player) })
	// Validated again after the kick: a new value, looked up after it.
	if _, _, src := a.check(good, player); src != "upstream" {
		t.Fatalf("A after the kick: %s, want upstream", src)
	}
	if string(get()) == string(old) {
		t.Fatal("the value was not overwritten (test setup)")
	}
	// The old one written back.
	if err := c.Do(t.Context(), c.B().Set().Key(vkey).Value(string(old)).Px(time.Minute).Build()).Error(); err != nil {
		t.Fatal(err)
	}
	b.cache.Delete(&k)
	calls := ft.fake.TokenCalls(good)
	if _, _, src := b.check(good, player); src != "upstream" || ft.fake.TokenCalls(good) != calls+1 {
		t.Errorf("the replayed pre-kick value answered B (%s)", src)
	}
}

// TestReviewKickerRacesItsOwnMarker: the same as
// TestReviewKickerRevivesItsOwnKick with nothing failing. B's kick drops
// the player locally at once, but its markers are set by the publishing
// goroutine a moment later; B's next validation of the player's other
// token, arriving in that moment, finds the allow shared before the kick
// with no marker yet, serves it and caches it (its stamp postdates the
// purge). B then ignores its own kick message, so the revived allow stays
// for up to -cache-ttl. Racy by nature: a few rounds in a hundred hit it
// on an idle machine, so many rounds are run.
func TestReviewKickerRacesItsOwnMarker(t *testing.T) {
	ft := newFleet(t, 2, nil)
	a, b := ft.cars[0], ft.cars[1]
	served, kept := 0, 0
	const rounds = 300
	for r := range rounds {
		player := fmt.Sprint(20000 + r)
		good, bad := "rm-good-"+player, "rm-bad-"+player
		ft.allow(good, player)
		a.check(good, player)
		ft.fake.Set(good, kakaogamestest.Lockout(testApp, player))
		ft.fake.Set(bad, kakaogamestest.Lockout(testApp, player))
		if _, d, _ := b.check(bad, player); d != "kick" {
			t.Fatalf("B: %s, want kick", d)
		}
		if _, d, _ := b.check(good, player); d == "allow" {
			served++
			time.Sleep(20 * time.Millisecond) // the markers and the message are out
			if b.cached(good, player) {
				kept++
			}
		}
	}
	t.Logf("B served the allow from before its own kick in %d of %d rounds, and still held it once the kick was out in %d", served, rounds, kept)
	if served > 0 {
		t.Errorf("B served an allow looked up before its own kick %d times (kept %d)", served, kept)
	}
}

// TestReviewUnclaimedLookChecksValuesPlayer: a lookup without a claim
// reads the marker of the player the value is about (one more round trip),
// in Look and in Wait. A regression test (passes).
func TestReviewUnclaimedLookChecksValuesPlayer(t *testing.T) {
	ft := newFleet(t, 2, nil)
	a, b := ft.cars[0], ft.cars[1]
	var kb cache.KeyBuilder
	k := kb.Key([]byte("mobile"), nil, []byte("uc-tok"))
	tok := cache.TokenOf([]byte("uc-tok"))
	f := a.tier.Look(&k, "", tok)
	if !f.Led() {
		t.Fatal("A did not lead")
	}
	f.Store([]byte("payload"), "9901", time.Now().Add(time.Minute))
	if v, _ := b.tier.Look(&k, "", tok).Value(); string(v) != "payload" {
		t.Fatalf("B: %q, want the shared value (test setup)", v)
	}
	// The player is kicked (marker only: no message to anyone).
	ft.redis.Do("SET", a.tier.keys.name("pg:", "p", []byte("9901")), fmt.Sprint(time.Now().UnixMicro()))
	if v, _ := b.tier.Look(&k, "", tok).Value(); v != nil {
		t.Errorf("B, no claim, the value's player kicked: %q, want none", v)
	}
	ft.redis.Do("SET", a.tier.keys.name("pg:", "l", k[:]), "someone", "PX", "300")
	w := b.tier.Look(&k, "", tok)
	if w.Led() {
		t.Fatal("B led with the lock held (test setup)")
	}
	if v, _ := w.Wait(); v != nil {
		t.Errorf("B waiting, no claim, the value's player kicked: %q, want none", v)
	}
}

// FuzzReviewOpenKick: openKick never panics on what anyone can publish,
// nor on any plaintext sealed with the fleet key (as a kick or a note);
// sealKick's and sealNote's messages open to what was sealed.
func FuzzReviewOpenKick(f *testing.F) {
	k := deriveKeys([]byte(fleetKey))
	f.Add([]byte{}, []byte{1}, "p", uint64(7), true, uint8(2))
	f.Add([]byte{kickVersion, 0, 0, 0, 0, 0, 0, 0, 1}, []byte{0, 0, 0, 0, 0, 0, 0, 0, 0, 200}, "", uint64(0), false, uint8(0))
	f.Fuzz(func(t *testing.T, raw, plain []byte, player string, token uint64, hasToken bool, nkeys uint8) {
		k.openKick("pg:kicks", raw)
		// Any plaintext, sealed as sealKick seals.
		b := make([]byte, 21, 21+len(plain)+k.kicks.Overhead())
		b[0] = kickVersion
		copy(b[9:21], raw)
		msg := k.kicks.Seal(b, b[9:21], plain, kickAAD("pg:kicks", b[:9]))
		k.openKick("pg:kicks", msg)
		b[0] = noteVersion // and as a note
		k.openKick("pg:kicks", k.kicks.Seal(b[:21], b[9:21], plain, kickAAD("pg:kicks", b[:9])))
		// A real note round-trips (a player is required).
		if player != "" {
			n := &validator.FleetKick{Provider: "kakao-games", Reason: string(plain), Admin: hasToken, RedirectURI: raw}
			if note, ok := k.sealNote("pg:kicks", 42, int64(token>>1), player, n); ok {
				o, err := k.openKick("pg:kicks", note)
				got := o.p
				if err != nil || got.Player != player || got.Kick == nil || got.Kick.Reason != n.Reason || got.Kick.Admin != n.Admin ||
					string(got.Kick.RedirectURI) != string(raw) || got.HasToken || len(got.Keys) != 0 || o.sent != int64(token>>1) {
					t.Fatalf("note round trip: %v %+v %+v", err, o, got.Kick)
				}
			}
		}
		// A real kick round-trips.
		p := validator.FleetPurge{Player: player, Token: cache.TokenID(token), HasToken: hasToken}
		for i := range int(nkeys % 8) {
			var key cache.Key
			key[0] = byte(i)
			p.Keys = append(p.Keys, key)
		}
		o, err := k.openKick("pg:kicks", k.sealKick("pg:kicks", 42, p))
		sender, got := o.sender, o.p
		if err != nil || sender != 42 || got.Player != p.Player || got.Token != p.Token || got.HasToken != p.HasToken || len(got.Keys) != len(p.Keys) {
			t.Fatalf("round trip: %v %d %+v, want %+v", err, sender, got, p)
		}
		if _, err := k.openKick("pg:other", k.sealKick("pg:kicks", 42, p)); err == nil {
			t.Fatal("a kick opened on another channel")
		}
	})
}

// FuzzReviewOpen: open never panics on what anyone can write, nor on a
// value sealed with the fleet key; seal's values open to what was sealed,
// and under no other key.
func FuzzReviewOpen(f *testing.F) {
	k := deriveKeys([]byte(fleetKey))
	f.Add([]byte{}, "p", []byte("x"), int64(1000))
	f.Add(make([]byte, valueHeader+2+32), "", []byte{}, int64(-5))
	f.Fuzz(func(t *testing.T, raw []byte, player string, payload []byte, life int64) {
		now := time.Now()
		k.open("pg:v:x", raw, now)
		if len(player) > 1<<16-1 {
			return
		}
		exp := now.Add(time.Duration(life) * time.Millisecond)
		v := k.seal("pg:v:x", exp, now, player, payload)
		o, err := k.open("pg:v:x", v, now)
		switch {
		case !now.Before(time.UnixMilli(exp.UnixMilli())):
			if err == nil {
				t.Fatal("an expired value opened")
			}
		case len(v) > MaxValueLen:
		case err != nil || o.player != player || string(o.payload) != string(payload):
			t.Fatalf("round trip: %v %q %q", err, o.player, o.payload)
		}
		if _, err := k.open("pg:v:y", v, now); err == nil {
			t.Fatal("a value opened under another key")
		}
		// Truncated or extended, it does not open.
		for _, b := range [][]byte{v[:len(v)-1], append(append([]byte{}, v...), 0)} {
			if _, err := k.open("pg:v:x", b, now); err == nil {
				t.Fatal("an altered value opened")
			}
		}
	})
}

// TestReviewDeletedMarkerRevivesAllow: after a kick that every sidecar
// heard, deleting its markers in Redis (or their eviction, or a failover
// that lost them) makes the allow shared before it current again, even on
// a sidecar that heard the kick and could remember it. SECURITY.md names
// this as the residual risk of a writable Redis; it still breaks rule 1
// as stated, and a sidecar-local memory of the kicks it sent and heard
// (see TestReviewKickerRevivesItsOwnKick) would close it for every sidecar
// that was in the fleet at the time of the kick.
func TestReviewDeletedMarkerRevivesAllow(t *testing.T) {
	ft := newFleet(t, 2, nil)
	a, b := ft.cars[0], ft.cars[1]
	const good, bad, player = "dm-good", "dm-bad", "9901"
	ft.allow(good, player)
	a.check(good, player)
	ft.fake.Set(good, kakaogamestest.Lockout(testApp, player))
	ft.fake.Set(bad, kakaogamestest.Lockout(testApp, player))
	if _, d, _ := b.check(bad, player); d != "kick" {
		t.Fatalf("B: %s, want kick", d)
	}
	waitFor(t, 5*time.Second, "A never heard the kick", func() bool { return !a.cached(good, player) })
	for _, pattern := range []string{"pg:p:*", "pg:t:*"} {
		for _, k := range strings.Split(ft.redis.Do("KEYS", pattern), "\n") {
			ft.redis.Do("DEL", k)
		}
	}
	if _, d, src := a.check(good, player); d != "kick" {
		t.Errorf("A, which heard the kick, once the markers were deleted: %s from %s, want kick", d, src)
	}
}

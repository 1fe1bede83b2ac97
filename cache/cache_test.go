package cache

import (
	"fmt"
	"sync"
	"testing"
	"time"
)

// clock is a settable clock for tests.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func newTestCache(t testing.TB, cfg Config) (*Cache[string], *clock) {
	t.Helper()
	clk := &clock{t: time.Unix(1_700_000_000, 0)}
	if cfg.MaxEntries == 0 {
		cfg.MaxEntries = 1000
	}
	if cfg.MaxAge == 0 {
		cfg.MaxAge = time.Hour
	}
	cfg.Now = clk.Now
	c, err := New[string](cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c, clk
}

func key(app, platform, player, token string) Key {
	var b KeyBuilder
	return b.Key(app, []byte(platform), []byte(player), []byte(token))
}

func mustSet(t *testing.T, c *Cache[string], k Key, player string, s Stamp, fresh, stale time.Duration, v string) {
	t.Helper()
	if !c.Set(&k, player, s, fresh, stale, v) {
		t.Fatalf("Set(%s) refused", v)
	}
	c.Wait()
}

func expect(t *testing.T, c *Cache[string], k Key, wantV string, wantS State) {
	t.Helper()
	v, s := c.Get(&k, c.now())
	if v != wantV || s != wantS {
		t.Fatalf("Get = (%q, %d), want (%q, %d)", v, s, wantV, wantS)
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	for _, cfg := range []Config{{MaxEntries: 0, MaxAge: time.Second}, {MaxEntries: 1, MaxAge: 0}} {
		if _, err := New[int](cfg); err == nil {
			t.Errorf("New(%+v) succeeded", cfg)
		}
	}
}

func TestFreshStaleExpired(t *testing.T) {
	c, clk := newTestCache(t, Config{})
	k := key("app", "mobile", "p1", "tok")
	expect(t, c, k, "", Miss)
	mustSet(t, c, k, "p1", c.Stamp(), 5*time.Minute, 30*time.Minute, "allow")
	expect(t, c, k, "allow", Fresh)
	clk.Add(5*time.Minute - time.Nanosecond)
	expect(t, c, k, "allow", Fresh)
	clk.Add(time.Nanosecond)
	expect(t, c, k, "allow", Stale)
	clk.Add(30*time.Minute - time.Nanosecond)
	expect(t, c, k, "allow", Stale)
	clk.Add(time.Nanosecond)
	expect(t, c, k, "", Miss)
}

func TestSetClampsToMaxAge(t *testing.T) {
	c, clk := newTestCache(t, Config{MaxAge: 10 * time.Minute})
	k := key("app", "mobile", "p1", "tok")
	mustSet(t, c, k, "p1", c.Stamp(), 8*time.Minute, time.Hour, "v")
	clk.Add(10*time.Minute - time.Nanosecond)
	expect(t, c, k, "v", Stale)
	clk.Add(time.Nanosecond)
	expect(t, c, k, "", Miss)
	if c.Set(&k, "p1", c.Stamp(), 0, time.Minute, "zero") {
		t.Fatal("Set with zero fresh period accepted")
	}
}

// TestKeyIsolation: every field of the key matters, and the length prefixes
// keep field boundaries from being shifted.
func TestKeyIsolation(t *testing.T) {
	base := key("app", "mobile", "p1", "tok")
	others := map[string]Key{
		"app":          key("app2", "mobile", "p1", "tok"),
		"platform":     key("app", "pc", "p1", "tok"),
		"player":       key("app", "mobile", "p2", "tok"),
		"no player":    key("app", "mobile", "", "tok"),
		"token":        key("app", "mobile", "p1", "tok2"),
		"shifted":      key("app", "mobile", "p1t", "ok"),
		"shifted back": key("ap", "pmobile", "p1", "tok"),
	}
	c, _ := newTestCache(t, Config{})
	mustSet(t, c, base, "p1", c.Stamp(), time.Minute, 0, "base")
	for name, k := range others {
		if k == base {
			t.Errorf("%s: same key as base", name)
		}
		expect(t, c, k, "", Miss)
	}
	if key("app", "mobile", "p1", "tok") != base {
		t.Error("key derivation is not deterministic")
	}
}

// TestHashCollisionNeverAnswers forges two keys that share ristretto's
// 64-bit index: the second must miss, never see the first's value.
func TestHashCollisionNeverAnswers(t *testing.T) {
	c, _ := newTestCache(t, Config{})
	a := key("app", "mobile", "p1", "tok")
	b := a
	b[31] ^= 0xff // same hash(), different key
	if a.hash() != b.hash() {
		t.Fatal("test setup: hashes differ")
	}
	mustSet(t, c, a, "p1", c.Stamp(), time.Minute, time.Minute, "a")
	expect(t, c, b, "", Miss)
	c.Delete(&b) // must not drop a's entry either
	c.Wait()
	expect(t, c, a, "a", Fresh)
	mustSet(t, c, b, "p2", c.Stamp(), time.Minute, time.Minute, "b")
	expect(t, c, b, "b", Fresh)
	expect(t, c, a, "", Miss) // evicted by b: a miss, never b's value
}

func TestDelete(t *testing.T) {
	c, clk := newTestCache(t, Config{})
	k := key("app", "mobile", "p1", "tok")
	mustSet(t, c, k, "p1", c.Stamp(), time.Minute, time.Hour, "v")
	clk.Add(2 * time.Minute)
	expect(t, c, k, "v", Stale)
	c.Delete(&k)
	expect(t, c, k, "", Miss)
}

func TestPurgePlayer(t *testing.T) {
	c, _ := newTestCache(t, Config{})
	k1 := key("app", "mobile", "p1", "tok1")
	k2 := key("app", "pc", "p1", "tok2")
	k3 := key("app", "mobile", "p2", "tok3")
	s := c.Stamp()
	mustSet(t, c, k1, "p1", s, time.Minute, time.Hour, "1")
	mustSet(t, c, k2, "p1", s, time.Minute, time.Hour, "2")
	mustSet(t, c, k3, "p2", s, time.Minute, time.Hour, "3")

	c.PurgePlayer("p1")
	expect(t, c, k1, "", Miss)
	expect(t, c, k2, "", Miss)
	expect(t, c, k3, "3", Fresh)

	// An allow fetched before the purge (old stamp) is refused.
	if c.Set(&k1, "p1", s, time.Minute, time.Hour, "late") {
		t.Fatal("Set with a pre-purge stamp accepted")
	}
	c.Wait()
	expect(t, c, k1, "", Miss)
	// One fetched after it is accepted.
	mustSet(t, c, k1, "p1", c.Stamp(), time.Minute, time.Hour, "new")
	expect(t, c, k1, "new", Fresh)

	c.PurgePlayer("") // names nobody
	expect(t, c, k3, "3", Fresh)
	if got := c.Stats().Purges; got != 1 {
		t.Errorf("Purges = %d, want 1", got)
	}
}

func TestTombstoneOverflowInvalidatesAll(t *testing.T) {
	c, _ := newTestCache(t, Config{MaxTombstones: 4})
	k := key("app", "mobile", "keeper", "tok")
	mustSet(t, c, k, "keeper", c.Stamp(), time.Minute, time.Hour, "v")
	for i := range 4 {
		c.PurgePlayer(fmt.Sprint("victim", i))
	}
	expect(t, c, k, "v", Fresh)
	if got := c.Stats().Tombstones; got != 4 {
		t.Fatalf("Tombstones = %d, want 4", got)
	}
	c.PurgePlayer("one-too-many")
	expect(t, c, k, "", Miss)
	if got := c.Stats().Tombstones; got != 0 {
		t.Fatalf("Tombstones after overflow = %d, want 0", got)
	}
	mustSet(t, c, k, "keeper", c.Stamp(), time.Minute, time.Hour, "again")
	expect(t, c, k, "again", Fresh)
}

func TestSweepForgetsOldTombstones(t *testing.T) {
	c, clk := newTestCache(t, Config{MaxAge: 10 * time.Minute})
	c.PurgePlayer("p1")
	c.sweep()
	if got := c.Stats().Tombstones; got != 1 {
		t.Fatalf("Tombstones = %d, want 1", got)
	}
	clk.Add(10 * time.Minute)
	c.sweep()
	if got := c.Stats().Tombstones; got != 0 {
		t.Fatalf("Tombstones after MaxAge = %d, want 0", got)
	}
}

func TestBoundedEntries(t *testing.T) {
	c, _ := newTestCache(t, Config{MaxEntries: 100})
	var b KeyBuilder
	for i := range 5000 {
		k := b.Key("app", []byte("mobile"), nil, fmt.Appendf(nil, "tok%d", i))
		c.Set(&k, "p", c.Stamp(), time.Minute, 0, "v")
	}
	c.Wait()
	st := c.Stats()
	if st.Entries > 100 {
		t.Fatalf("Entries = %d, want <= 100", st.Entries)
	}
	// 5000 Sets into 100 places: each was evicted, refused or dropped.
	if got := st.Entries + st.Evictions + st.Rejections + st.Dropped; got < 5000 {
		t.Errorf("entries %d + evictions %d + rejections %d + dropped %d = %d, want >= 5000",
			st.Entries, st.Evictions, st.Rejections, st.Dropped, got)
	}
}

func TestHotPathAllocs(t *testing.T) {
	c, _ := newTestCache(t, Config{})
	var b KeyBuilder
	tok := []byte("FvNkGat8GaTfyhxHm2rNSFpn5UmvgBBU0kJYVc5kw5mP4lt4IwBFJKhINM0hSFPvnnjy0dlwoF128dDWOOLEWhTrefQ0zYDb3lzeG2uQuyOG1zKZKrwPFRpbNU6Ttno47txU3Slb8L/n6ayXqeAWAg7DtraptD3QLrylAoSNWl1SK3vsXnYy//gqI6i4gWT/ZnSswEHEvj6ooc8vR119IVs4mA==")
	platform, player := []byte("mobile"), []byte("123456789123456")
	k := b.Key("909428", platform, player, tok)
	mustSet(t, c, k, "123456789123456", c.Stamp(), time.Minute, 0, "v")
	c.PurgePlayer("someone-else") // exercise the tombstone lookup too
	allocs := testing.AllocsPerRun(1000, func() {
		k := b.Key("909428", platform, player, tok)
		if _, s := c.Get(&k, time.Time{}); s != Fresh {
			t.Fatal("miss")
		}
	})
	if allocs != 0 {
		t.Fatalf("key+Get allocates %v times per call, want 0", allocs)
	}
}

func BenchmarkKey(b *testing.B) {
	var kb KeyBuilder
	tok := make([]byte, 200)
	platform, player := []byte("mobile"), []byte("123456789123456")
	b.ReportAllocs()
	for b.Loop() {
		kb.Key("909428", platform, player, tok)
	}
}

func BenchmarkGetFresh(b *testing.B) {
	c, _ := newTestCache(b, Config{MaxEntries: 100_000})
	var kb KeyBuilder
	keys := make([]Key, 1000)
	for i := range keys {
		keys[i] = kb.Key("909428", []byte("mobile"), nil, fmt.Appendf(nil, "tok%d", i))
		c.Set(&keys[i], "p", c.Stamp(), time.Hour, 0, "v")
	}
	c.Wait()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			c.Get(&keys[i%len(keys)], time.Time{})
			i++
		}
	})
}

// TestSetIsVisibleOnReturn: a Get right after Set sees the value, with no
// Wait: the validator relies on it to make exactly one upstream call per key.
func TestSetIsVisibleOnReturn(t *testing.T) {
	c, _ := newTestCache(t, Config{MaxEntries: 100_000})
	var b KeyBuilder
	for i := range 2000 {
		k := b.Key("app", []byte("mobile"), nil, fmt.Appendf(nil, "tok%d", i))
		if !c.Set(&k, "p", c.Stamp(), time.Minute, 0, "v") {
			t.Fatalf("Set %d dropped", i)
		}
		if _, s := c.Get(&k, c.now()); s != Fresh {
			t.Fatalf("Get right after Set %d: state %d", i, s)
		}
	}
}

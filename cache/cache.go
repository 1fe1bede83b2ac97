// Package cache holds playerguard's decision cache: values keyed by a digest
// of (app id, platform, claimed player id, access token), each fresh for a
// while and then stale for a while, and droppable all at once per player.
//
// Entries live in a ristretto cache bounded by Config.MaxEntries. Freshness
// and staleness are judged by the cache's own clock (Config.Now), so tests can
// move time; ristretto's TTL is not used (entries past their stale window
// read as misses and are evicted by ristretto's admission policy as room is
// needed).
//
// In front of ristretto sits a direct-mapped index of pointers to entries
// ristretto holds, filled by Gets and read without a lock: a hit there is
// one atomic load and a key compare, where ristretto's Get takes a shard
// lock, probes a map and feeds its admission policy (a front hit feeds it
// once a second per entry). ristretto stays the store of record (it alone admits, evicts and
// bounds the entry count); an entry it lets go of, or Delete drops, is
// marked gone and never served from the index again.
//
// Purging a player is O(1): it records a tombstone with a sequence number,
// and any entry for that player whose Stamp is older is treated as absent.
// Stamps are taken before the upstream is asked (Cache.Stamp), so an allow
// that was in flight while the player was kicked is refused by Set as well.
// Tombstones are forgotten once every entry they could hide has expired; if
// there are ever more than Config.MaxTombstones of them, the whole cache is
// invalidated instead, which is always safe.
//
// All methods are safe for concurrent use. The zero Cache is not usable; use
// New.
package cache

import (
	"errors"
	"math/bits"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/ristretto/v2"
)

// maxCounters caps ristretto's admission counters (4 bits each, plus a
// bloom filter of about 10 bits each).
const maxCounters = 2_000_000

// The front index has four slots per entry ristretto may hold, rounded up
// to a power of two, within these bounds. It is direct-mapped: keys that
// share a slot take turns in it, and with n keys in use over m slots about
// e^(-n/m) of them have a slot to themselves (one slot per entry, with the
// working set as large as the cache, left 55% of hits in the front; four,
// 85%). A slot is one pointer (8 bytes), so the largest front is 2 MiB;
// pages of it no Get ever touched are never faulted in and cost no RSS.
// Below the minimum, a small cache would have its few entries collide in
// the index for the sake of a few KiB.
const (
	minFront = 1 << 10
	maxFront = 1 << 18
)

// State says how a Get found its key.
type State uint8

const (
	Miss  State = iota // absent, expired, or hidden by a purge
	Fresh              // within its fresh period
	Stale              // fresh period over, stale period not yet
)

// Stamp orders cache writes against purges; see Cache.Stamp.
type Stamp uint64

// Config configures a Cache.
type Config struct {
	// MaxEntries bounds the number of entries. It must be positive.
	MaxEntries int64
	// MaxAge is the longest fresh+stale lifetime any Set will ask for; Set
	// clamps to it. It bounds how long a tombstone must be kept. It must be
	// positive.
	MaxAge time.Duration
	// MaxTombstones bounds the purge records kept at once. If zero,
	// MaxEntries/8, at least 1024, is used.
	MaxTombstones int
	// Now is the clock. If nil, time.Now is used.
	Now func() time.Time
}

// Cache is a decision cache. See the package comment.
type Cache[V any] struct {
	rc       *ristretto.Cache[uint64, *entry[V]]
	front    []atomic.Pointer[entry[V]] // see Get; len is a power of two
	mask     uint64                     // len(front) - 1
	now      func() time.Time
	maxAge   time.Duration
	maxTombs int

	seq   atomic.Uint64 // last purge sequence number
	floor atomic.Uint64 // entries stamped below this are invalid (whole-cache purge)
	ntomb atomic.Int64  // len(tombs), read without the lock on the hot path

	mu    sync.RWMutex
	tombs map[string]tombstone

	purges                       atomic.Uint64
	evictions, rejections, drops atomic.Uint64

	stop chan struct{}
	done chan struct{}
}

type tombstone struct {
	seq   uint64
	until int64 // unix nanos after which no entry it could hide is alive
}

type entry[V any] struct {
	// What a fresh hit reads comes first, 64 bytes together: the key,
	// the fresh deadline, the stamp, the value and the gone and reported
	// words.
	key   Key
	fresh int64 // unix nanos: fresh before this
	stamp Stamp
	val   V
	// gone is set once ristretto lets go of the entry (evicts, replaces,
	// deletes or refuses it) or Delete is about to, and never cleared: the
	// entry may still be reachable through a front slot, and must not be
	// served from there.
	gone atomic.Bool
	// reported is the second (Unix time, truncated) of the last front hit
	// reported to ristretto (see Get).
	reported atomic.Uint32

	stale  int64 // unix nanos: stale before this
	player string
}

// New returns a Cache; call Close when done with it.
func New[V any](cfg Config) (*Cache[V], error) {
	if cfg.MaxEntries <= 0 {
		return nil, errors.New("cache: MaxEntries must be positive")
	}
	if cfg.MaxAge <= 0 {
		return nil, errors.New("cache: MaxAge must be positive")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.MaxTombstones <= 0 {
		cfg.MaxTombstones = int(max(cfg.MaxEntries/8, 1024))
	}
	nfront := min(max(uint64(1)<<bits.Len64(uint64(4*cfg.MaxEntries-1)), minFront), maxFront)
	c := &Cache[V]{
		front:    make([]atomic.Pointer[entry[V]], nfront),
		mask:     nfront - 1,
		now:      cfg.Now,
		maxAge:   cfg.MaxAge,
		maxTombs: cfg.MaxTombstones,
		tombs:    make(map[string]tombstone),
		stop:     make(chan struct{}),
		done:     make(chan struct{}),
	}
	rc, err := ristretto.NewCache(&ristretto.Config[uint64, *entry[V]]{
		// ristretto's docs suggest 10x the items kept. Capped: a sidecar
		// sees thousands of players, not a million, and at the 1,000,000
		// default 10x is ~32 MB of sketch and bloom filter that every hit's
		// access tracking touches at random (bench/RESULTS.md).
		NumCounters: min(max(cfg.MaxEntries*10, 1000), maxCounters),
		MaxCost:     cfg.MaxEntries,
		BufferItems: 64,
		// ristretto's own Metrics would add a striped atomic to every Get;
		// the callbacks below count what we report, on the Set path only.
		Metrics:            false,
		IgnoreInternalCost: true, // cost 1 per entry: MaxCost counts entries
		OnEvict:            func(*ristretto.Item[*entry[V]]) { c.evictions.Add(1) },
		OnReject:           func(*ristretto.Item[*entry[V]]) { c.rejections.Add(1) },
		// ristretto calls OnExit for every value that leaves its store or is
		// refused entry: after OnEvict and OnReject, on Del, and for the old
		// value when Set replaces a key's value. That is exactly when an
		// entry must stop being served from the front.
		OnExit: c.forget,
	})
	if err != nil {
		return nil, err
	}
	c.rc = rc
	go c.sweepLoop(time.Minute)
	return c, nil
}

// Close stops the cache's goroutines and drops every entry.
func (c *Cache[V]) Close() {
	close(c.stop)
	<-c.done
	c.rc.Close()
	// ristretto's Close let go of what it held (and forget cleared their
	// slots), but slots can still point at entries that were gone before a
	// Get installed them; drop those too, so all can be collected.
	clear(c.front)
}

// forget marks e gone and takes it out of the front. ristretto calls it
// (as OnExit) with a nil e for a Del of an absent key. The CAS leaves the
// slot alone if another entry has taken it since.
func (c *Cache[V]) forget(e *entry[V]) {
	if e == nil {
		return
	}
	e.gone.Store(true)
	c.slot(e.key.hash()).CompareAndSwap(e, nil)
}

// slot is the front slot for a key's hash. It takes the hash's low bits,
// which ristretto also shards on (hash % 256); that is harmless, as the
// hash is a slice of a SHA-256 digest whose bits are all uniform and
// independent, and the front shares no lock or line with the shards. Two
// keys with the same hash also share a slot, but ristretto cannot hold both
// of them at once anyway.
func (c *Cache[V]) slot(h uint64) *atomic.Pointer[entry[V]] {
	return &c.front[h&c.mask]
}

// Stamp returns the stamp to pass to Set for a value about to be fetched.
// Take it before asking the upstream: a purge that happens after it hides
// (and refuses) the value.
func (c *Cache[V]) Stamp() Stamp { return Stamp(c.seq.Load()) }

// Get returns k's value and whether it is fresh or stale at now, which must
// come from the same clock as Config.Now. (The caller passes the time it
// already read: on the hot path a clock read costs as much as the lookup.)
// No allocation, no lock unless some player was purged recently.
func (c *Cache[V]) Get(k *Key, now time.Time) (V, State) {
	var zero V
	h := k.hash()
	slot := c.slot(h)
	if e := slot.Load(); e != nil && e.key == *k && !e.gone.Load() {
		// A front hit. ristretto's admission policy still has to hear of
		// the key's popularity, or in a full cache it would evict the
		// players who connect the most as if they were never seen
		// (TestFrontHitsFeedAdmission). Each entry reports itself at most
		// once a second: a report is a whole ristretto Get on cold memory
		// plus the sketch updates of its policy goroutine, which on every
		// hit would undo most of what the front saves. What the policy
		// compares at admission is then "seen in how many recent seconds",
		// which still puts a returning player far above a token seen once.
		// (Reporting a random 1 in 8 or 1 in 32 hits instead let a flood
		// of one-time keys evict most hot keys in some runs of that test.)
		if sec := uint32(now.Unix()); e.reported.Load() != sec {
			e.reported.Store(sec)
			c.rc.Get(h)
		}
		return c.judge(e, now)
	}
	e, ok := c.rc.Get(h)
	if !ok || e.key != *k || e.gone.Load() {
		return zero, Miss
	}
	// If ristretto lets go of e between its Get above and this Store, the
	// slot keeps a gone entry: never served (the check above), overwritten
	// by the next miss on the slot, and with at most one per slot, bounded
	// in number by the front's size.
	slot.Store(e)
	return c.judge(e, now)
}

// judge answers a Get with e, the entry for its key.
func (c *Cache[V]) judge(e *entry[V], now time.Time) (V, State) {
	var zero V
	if !c.visible(e.player, e.stamp) {
		return zero, Miss
	}
	switch now := now.UnixNano(); {
	case now < e.fresh:
		return e.val, Fresh
	case now < e.stale:
		return e.val, Stale
	}
	return zero, Miss
}

// visible reports whether an entry for player stamped s survives the purges.
func (c *Cache[V]) visible(player string, s Stamp) bool {
	if uint64(s) < c.floor.Load() {
		return false
	}
	if c.ntomb.Load() == 0 {
		return true
	}
	c.mu.RLock()
	t, ok := c.tombs[player]
	c.mu.RUnlock()
	return !ok || uint64(s) >= t.seq
}

// Set stores v for k, fresh for fresh and then stale for stale more, on
// behalf of player (which PurgePlayer names), and returns once a Get can
// see it. It refuses, returning false, a value whose stamp predates a purge
// of its player. ristretto may still drop a Set under contention or refuse
// it by its admission policy when full; that only costs a later miss.
func (c *Cache[V]) Set(k *Key, player string, s Stamp, fresh, stale time.Duration, v V) bool {
	if fresh <= 0 {
		return false
	}
	fresh = min(fresh, c.maxAge)
	stale = max(min(stale, c.maxAge-fresh), 0)
	if !c.visible(player, s) {
		return false
	}
	now := c.now().UnixNano()
	e := &entry[V]{
		key:    *k,
		player: player,
		stamp:  s,
		fresh:  now + int64(fresh),
		stale:  now + int64(fresh+stale),
		val:    v,
	}
	// No ristretto TTL: Get judges freshness on its own clock, and a
	// ristretto TTL would cost a clock read on every Get plus an expiry
	// index per entry. Entries past their stale window stay until the
	// admission policy evicts them; MaxEntries bounds them all the same.
	if !c.rc.Set(k.hash(), e, 1) {
		c.drops.Add(1)
		return false
	}
	// ristretto applies Sets asynchronously. Wait until this one is
	// visible, so that once the caller's upstream call is over, no request
	// for the same key can slip in between and make a second call (a
	// reconnect storm showed 1,003 calls for 1,000 tokens without this).
	c.rc.Wait()
	return true
}

// Delete drops k's entry, fresh or stale. A Get that starts after Delete
// misses k until it is Set again.
func (c *Cache[V]) Delete(k *Key) {
	h := k.hash()
	e := c.slot(h).Load()
	if e == nil || e.key != *k || e.gone.Load() {
		var ok bool
		if e, ok = c.rc.Get(h); !ok || e.key != *k {
			return
		}
	}
	// Forget it first: then no Get serves it, whether it finds it in the
	// front or in ristretto before Del has taken it out. (ristretto calls
	// forget again from Del; the second time does nothing.)
	c.forget(e)
	c.rc.Del(h)
}

// PurgePlayer hides every entry of player, and refuses Sets stamped before
// now. An empty player names nobody and is ignored.
func (c *Cache[V]) PurgePlayer(player string) {
	if player == "" {
		return
	}
	c.purges.Add(1)
	seq := c.seq.Add(1)
	until := c.now().Add(c.maxAge).UnixNano()
	c.mu.Lock()
	defer c.mu.Unlock()
	c.tombs[player] = tombstone{seq: seq, until: until}
	if len(c.tombs) > c.maxTombs {
		// Too many players purged within one MaxAge (a sanction wave, or
		// someone spraying bad tokens with made-up player ids): forget them
		// all and invalidate everything stamped so far instead.
		c.floor.Store(c.seq.Add(1))
		clear(c.tombs)
	}
	c.ntomb.Store(int64(len(c.tombs)))
}

func (c *Cache[V]) sweepLoop(every time.Duration) {
	defer close(c.done)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-t.C:
			c.sweep()
		}
	}
}

// sweep forgets tombstones that can no longer hide anything.
func (c *Cache[V]) sweep() {
	now := c.now().UnixNano()
	c.mu.Lock()
	defer c.mu.Unlock()
	for p, t := range c.tombs {
		if now >= t.until {
			delete(c.tombs, p)
		}
	}
	c.ntomb.Store(int64(len(c.tombs)))
}

// Wait blocks until every Set so far has been applied. Set already waits
// for its own; this is for tests and benchmarks.
func (c *Cache[V]) Wait() { c.rc.Wait() }

// Stats is a snapshot of the cache's counters.
type Stats struct {
	Entries    uint64 // entries held (including stale, expired and hidden ones not yet evicted)
	Evictions  uint64 // entries evicted to make room or on expiry
	Rejections uint64 // Sets refused by the admission policy
	Dropped    uint64 // Sets dropped under contention
	Purges     uint64 // PurgePlayer calls
	Tombstones uint64 // purge records held now
}

// Stats reads the counters; cheap enough for every scrape.
func (c *Cache[V]) Stats() Stats {
	return Stats{
		Entries:    uint64(c.rc.MaxCost() - c.rc.RemainingCost()),
		Evictions:  c.evictions.Load(),
		Rejections: c.rejections.Load(),
		Dropped:    c.drops.Load(),
		Purges:     c.purges.Load(),
		Tombstones: uint64(c.ntomb.Load()),
	}
}

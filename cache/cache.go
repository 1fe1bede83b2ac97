// Package cache holds playerguard's decision cache: values keyed by a digest
// of (platform, claimed player id, access token), each fresh for a while and
// then stale for a while, and droppable all at once per player or per token.
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
// Every entry is filed under two tags: the player it is about and a digest
// of its access token (TokenOf). PurgePlayer and PurgeToken drop every entry
// under a tag at once, through an index kept beside ristretto, and leave
// every other entry alone: no pattern of purges can evict an unrelated
// entry. A value fetched while its player or token was purged must not be
// stored either: Stamps are taken before the upstream is asked
// (Cache.Stamp), and Set refuses a value stamped before a purge of either
// of its tags (or of its key: Delete). For that each purge leaves its
// sequence number in one of purgeBuckets buckets picked by a hash of what
// it purged, and Set refuses a value whose tags' or key's buckets hold a
// number newer than its stamp: bounded, never overflowing, and two things
// sharing a bucket only refuse a Set, which costs a later miss. A Set that
// a purge overtook (the value linked but not yet in ristretto) looks again
// once ristretto has it, and takes it back.
//
// All methods are safe for concurrent use. The zero Cache is not usable; use
// New.
package cache

import (
	"errors"
	"hash/maphash"
	"math"
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

// Tags are what an entry is filed under for purges: the player it is about
// ("" for none) and its access token's digest.
type Tags struct {
	Player string
	Token  TokenID
}

// purgeBuckets is the size of the purge table (8 bytes a bucket). With n
// purges during one upstream call, a Set is refused by a bucket shared by
// chance with probability about 3n/purgeBuckets.
const purgeBuckets = 1 << 16

// Config configures a Cache.
type Config struct {
	// MaxEntries bounds the number of entries. It must be positive.
	MaxEntries int64
	// MaxAge is the longest fresh+stale lifetime any Set will ask for; Set
	// clamps to it. It must be positive.
	MaxAge time.Duration
	// Now is the clock. If nil, time.Now is used.
	Now func() time.Time
}

// Cache is a decision cache. See the package comment.
type Cache[V any] struct {
	rc     *ristretto.Cache[uint64, *entry[V]]
	front  []atomic.Pointer[entry[V]] // see Get; len is a power of two
	mask   uint64                     // len(front) - 1
	now    func() time.Time
	maxAge time.Duration
	seed   maphash.Seed // for the purge log's player hashes

	seq atomic.Uint64 // purges so far; written under mu

	mu      sync.Mutex
	players map[string]*entry[V]  // the first entry of each player's list
	tokens  map[TokenID]*entry[V] // the first entry of each token's list
	purged  [purgeBuckets]uint64  // the newest purge's seq, per bucket (see bucket)
	inUse   int                   // buckets with a purge
	all     uint64                // the seq of the last PurgeAll

	purges                       atomic.Uint64
	evictions, rejections, drops atomic.Uint64

	stop chan struct{}
	done chan struct{}
}

// purgeRecord is one purge in the log: of a player (by hash), a token, or
// one key (Delete, by its hash).
type purgeRecord struct {
	kind purgeKind
	h    uint64
}

type purgeKind uint8

const (
	purgedPlayer purgeKind = iota
	purgedToken
	purgedKey
)

type entry[V any] struct {
	// What a fresh hit reads comes first, 64 bytes together: the key,
	// the fresh deadline, the stamp, the value and the gone and reported
	// words.
	key   Key
	fresh int64 // unix nanos: fresh before this
	stamp Stamp
	val   V
	// gone is set once ristretto lets go of the entry (evicts, replaces,
	// deletes or refuses it) or Delete or a purge is about to, and never
	// cleared: the entry may still be reachable through a front slot, and
	// must not be served from there.
	gone atomic.Bool
	// reported is the second (Unix time, truncated) of the last front hit
	// reported to ristretto (see Get).
	reported atomic.Uint32

	stale int64 // unix nanos: stale before this
	tags  Tags
	// The entry's places in its player's and its token's lists (under the
	// Cache's mu). Every filed entry is in its token's list: it is filed
	// while it is the list's head or has a predecessor (see filed).
	byPlayer, byToken links[V]
}

type links[V any] struct{ prev, next *entry[V] }

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
	nfront := min(max(uint64(1)<<bits.Len64(uint64(4*cfg.MaxEntries-1)), minFront), maxFront)
	c := &Cache[V]{
		front:   make([]atomic.Pointer[entry[V]], nfront),
		mask:    nfront - 1,
		now:     cfg.Now,
		maxAge:  cfg.MaxAge,
		seed:    maphash.MakeSeed(),
		players: make(map[string]*entry[V]),
		tokens:  make(map[TokenID]*entry[V]),
		stop:    make(chan struct{}),
		done:    make(chan struct{}),
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
	return c, nil
}

// Close drops every entry.
func (c *Cache[V]) Close() {
	c.rc.Close()
	// ristretto's Close let go of what it held (and forget cleared their
	// slots), but slots can still point at entries that were gone before a
	// Get installed them; drop those too, so all can be collected.
	clear(c.front)
}

// forget marks e gone and takes it out of the front and the purge index.
// ristretto calls it (as OnExit) with a nil e for a Del of an absent key.
// The CAS leaves the slot alone if another entry has taken it since.
func (c *Cache[V]) forget(e *entry[V]) {
	if e == nil {
		return
	}
	e.gone.Store(true)
	c.slot(e.key.hash()).CompareAndSwap(e, nil)
	c.mu.Lock()
	c.unlink(e)
	c.mu.Unlock()
}

// link files e under its tags. c.mu must be held.
func (c *Cache[V]) link(e *entry[V]) {
	if p := e.tags.Player; p != "" {
		head := c.players[p]
		e.byPlayer = links[V]{next: head}
		if head != nil {
			head.byPlayer.prev = e
		}
		c.players[p] = e
	}
	head := c.tokens[e.tags.Token]
	e.byToken = links[V]{next: head}
	if head != nil {
		head.byToken.prev = e
	}
	c.tokens[e.tags.Token] = e
}

// filed reports whether e is in the index. c.mu must be held. (A flag
// would say the same for 8 bytes more per entry.)
func (c *Cache[V]) filed(e *entry[V]) bool {
	return e.byToken.prev != nil || c.tokens[e.tags.Token] == e
}

// unlink takes e out of its lists, if it is in them. c.mu must be held.
func (c *Cache[V]) unlink(e *entry[V]) {
	if !c.filed(e) {
		return
	}
	if p := e.tags.Player; p != "" {
		l := &e.byPlayer
		switch {
		case l.prev != nil:
			l.prev.byPlayer.next = l.next
		case l.next != nil:
			c.players[p] = l.next
		default:
			delete(c.players, p)
		}
		if l.next != nil {
			l.next.byPlayer.prev = l.prev
		}
		*l = links[V]{}
	}
	l := &e.byToken
	switch {
	case l.prev != nil:
		l.prev.byToken.next = l.next
	case l.next != nil:
		c.tokens[e.tags.Token] = l.next
	default:
		delete(c.tokens, e.tags.Token)
	}
	if l.next != nil {
		l.next.byToken.prev = l.prev
	}
	*l = links[V]{}
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
// Take it before asking the upstream: a purge of the value's player or
// token that happens after it refuses the value.
func (c *Cache[V]) Stamp() Stamp { return Stamp(c.seq.Load()) }

// Get returns k's value and whether it is fresh or stale at now, which must
// come from the same clock as Config.Now. (The caller passes the time it
// already read: on the hot path a clock read costs as much as the lookup.)
// No allocation, no lock.
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
	switch now := now.UnixNano(); {
	case now < e.fresh:
		return e.val, Fresh
	case now < e.stale:
		return e.val, Stale
	}
	return zero, Miss
}

// deadline is now+d in unix nanos, saturating instead of wrapping.
func deadline(now int64, d time.Duration) int64 {
	if t := now + int64(d); t >= now {
		return t
	}
	return math.MaxInt64
}

// purgedSince reports whether a purge of k or either of tags happened
// after stamp s, or may have (a bucket shared by chance). c.mu must be
// held.
func (c *Cache[V]) purgedSince(s Stamp, k *Key, tags Tags) bool {
	if c.all > uint64(s) || c.purged[bucket(purgedKey, k.hash())] > uint64(s) || c.purged[bucket(purgedToken, uint64(tags.Token))] > uint64(s) {
		return true
	}
	return tags.Player != "" && c.purged[bucket(purgedPlayer, c.playerHash(tags.Player))] > uint64(s)
}

// bucket picks r's bucket in the purge table (Fibonacci hashing, with the
// kind mixed in so that a player, a token and a key with equal hashes do
// not share one).
func bucket(kind purgeKind, h uint64) int {
	return int((h^uint64(kind)*0xbf58476d1ce4e5b9)*0x9e3779b97f4a7c15>>48) & (purgeBuckets - 1)
}

// playerHash is a player's hash in the purge log: a collision only refuses
// a Set, and never 0 (which marks no player).
func (c *Cache[V]) playerHash(p string) uint64 { return maphash.String(c.seed, p) | 1 }

// Set stores v for k, fresh for fresh and then stale for stale more,
// filed under tags (which PurgePlayer and PurgeToken name), and returns
// once a Get can see it. It refuses, returning false, a value whose stamp
// predates a purge of its player or its token. ristretto may still drop a
// Set under contention or refuse it by its admission policy when full;
// that only costs a later miss.
func (c *Cache[V]) Set(k *Key, tags Tags, s Stamp, fresh, stale time.Duration, v V) bool {
	if fresh <= 0 {
		return false
	}
	fresh = min(fresh, c.maxAge)
	stale = max(min(stale, c.maxAge-fresh), 0)
	now := c.now().UnixNano()
	e := &entry[V]{
		key:   *k,
		tags:  tags,
		stamp: s,
		fresh: deadline(now, fresh),
		stale: deadline(now, fresh+stale),
		val:   v,
	}
	// Filed before ristretto has it: a purge from here on finds e and
	// marks it gone, so it is never served even if ristretto takes it
	// after.
	c.mu.Lock()
	if c.purgedSince(s, k, tags) {
		c.mu.Unlock()
		return false
	}
	c.link(e)
	c.mu.Unlock()
	// No ristretto TTL: Get judges freshness on its own clock, and a
	// ristretto TTL would cost a clock read on every Get plus an expiry
	// index per entry. Entries past their stale window stay until the
	// admission policy evicts them; MaxEntries bounds them all the same.
	if !c.rc.Set(k.hash(), e, 1) {
		c.drops.Add(1)
		c.forget(e)
		return false
	}
	// ristretto applies Sets asynchronously. Wait until this one is
	// visible, so that once the caller's upstream call is over, no request
	// for the same key can slip in between and make a second call (a
	// reconnect storm showed 1,003 calls for 1,000 tokens without this).
	c.rc.Wait()
	// A purge since the check above found e in the index (and marked it
	// gone), but a Delete looks in the front and ristretto only, where e
	// may not have been yet: look again, now that ristretto has it.
	c.mu.Lock()
	overtaken := c.purgedSince(s, k, tags)
	c.mu.Unlock()
	if overtaken {
		e.gone.Store(true)
		c.mu.Lock()
		c.unlink(e)
		c.mu.Unlock()
		c.drop(e)
		return false
	}
	return true
}

// Delete drops k's entry, fresh or stale, and refuses Sets for k stamped
// before now. A Get that starts after Delete misses k until it is Set
// again.
func (c *Cache[V]) Delete(k *Key) {
	h := k.hash()
	c.mu.Lock()
	c.logPurge(purgeRecord{purgedKey, h})
	c.mu.Unlock()
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

// PurgePlayer drops every entry filed under player, fresh or stale, and
// refuses Sets for that player stamped before now. An empty player names
// nobody and is ignored.
func (c *Cache[V]) PurgePlayer(player string) {
	if player == "" {
		return
	}
	c.purge(purgeRecord{purgedPlayer, c.playerHash(player)}, func() *entry[V] { return c.players[player] },
		func(e *entry[V]) *entry[V] { return e.byPlayer.next })
}

// PurgeToken drops every entry filed under token, under any player and
// platform, and refuses Sets for that token stamped before now.
func (c *Cache[V]) PurgeToken(token TokenID) {
	c.purge(purgeRecord{purgedToken, uint64(token)}, func() *entry[V] { return c.tokens[token] },
		func(e *entry[V]) *entry[V] { return e.byToken.next })
}

// purge logs r and drops the entries of the list starting at first().
func (c *Cache[V]) purge(r purgeRecord, first func() *entry[V], next func(*entry[V]) *entry[V]) {
	c.purges.Add(1)
	var victims []*entry[V]
	c.mu.Lock()
	c.logPurge(r)
	for e := first(); e != nil; {
		n := next(e)
		victims = append(victims, e)
		e.gone.Store(true) // before c.mu is let go: no Get serves it from here on
		c.unlink(e)
		e = n
	}
	c.mu.Unlock()
	for _, e := range victims {
		c.drop(e)
	}
}

// PurgeAll drops every entry and refuses Sets stamped before now: what a
// sidecar does when it may have missed purges (a fleet tier that lost its
// subscription). It takes the index lock for as long as it walks the
// entries (about 100 ns each).
func (c *Cache[V]) PurgeAll() {
	c.purges.Add(1)
	var victims []*entry[V]
	c.mu.Lock()
	seq := c.seq.Load() + 1
	c.all = seq
	c.seq.Store(seq)
	for _, head := range c.tokens {
		for e := head; e != nil; e = e.byToken.next {
			e.gone.Store(true)
			victims = append(victims, e)
		}
	}
	// Every filed entry is in its token's list (see filed): emptying the
	// lists unlinks them all.
	clear(c.tokens)
	clear(c.players)
	for _, e := range victims {
		e.byPlayer, e.byToken = links[V]{}, links[V]{}
	}
	c.mu.Unlock()
	for _, e := range victims {
		c.drop(e)
	}
}

// logPurge records r as the newest purge. c.mu must be held.
func (c *Cache[V]) logPurge(r purgeRecord) {
	seq := c.seq.Load() + 1
	b := &c.purged[bucket(r.kind, r.h)]
	if *b == 0 {
		c.inUse++
	}
	*b = seq
	c.seq.Store(seq)
}

func (c *Cache[V]) tombstones() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return uint64(c.inUse)
}

// drop takes e, already gone, out of the front and ristretto.
func (c *Cache[V]) drop(e *entry[V]) {
	h := e.key.hash()
	c.slot(h).CompareAndSwap(e, nil)
	if cur, ok := c.rc.Get(h); ok && cur == e {
		// If another entry for h lands between the Get and the Del, Del
		// takes it too: that costs one more miss, never a wrong answer.
		c.rc.Del(h)
	}
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
	Purges     uint64 // PurgePlayer and PurgeToken calls
	Tombstones uint64 // purge table buckets holding a purge (of 65,536)
}

// Stats reads the counters; cheap enough for every scrape.
func (c *Cache[V]) Stats() Stats {
	return Stats{
		Entries:    uint64(c.rc.MaxCost() - c.rc.RemainingCost()),
		Evictions:  c.evictions.Load(),
		Rejections: c.rejections.Load(),
		Dropped:    c.drops.Load(),
		Purges:     c.purges.Load(),
		Tombstones: c.tombstones(),
	}
}

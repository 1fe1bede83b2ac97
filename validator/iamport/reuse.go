package iamport

import (
	"crypto/sha256"
	"sync"
	"time"
)

// maxReuseEntries bounds the reuse table: past it, the oldest bindings
// go first (a binding lost early lets one verification admit a second
// player, which the window was there to stop, so the bound is generous).
const maxReuseEntries = 1 << 20

// reuseTable binds an imp_uid to the first player a verdict was given for,
// for a window: one verification, one player. Keys are digests. In memory
// (the fleet tier will share it).
type reuseTable struct {
	window time.Duration
	now    func() time.Time

	mu    sync.Mutex
	by    map[[sha256.Size]byte]binding
	order [][sha256.Size]byte // insertion order, for expiry and the bound
}

type binding struct {
	player [sha256.Size]byte
	until  time.Time
}

func newReuseTable(window time.Duration, now func() time.Time) *reuseTable {
	return &reuseTable{window: window, now: now, by: map[[sha256.Size]byte]binding{}}
}

// free reports whether impUID may be used for player: unbound, bound to
// player, or bound past its window.
func (t *reuseTable) free(impUID, player string) bool {
	k, p := sha256.Sum256([]byte(impUID)), sha256.Sum256([]byte(player))
	t.mu.Lock()
	defer t.mu.Unlock()
	b, ok := t.by[k]
	return !ok || b.player == p || !t.now().Before(b.until)
}

// bind binds impUID to player for the window, unless it is bound to
// another player still.
func (t *reuseTable) bind(impUID, player string) {
	k, p := sha256.Sum256([]byte(impUID)), sha256.Sum256([]byte(player))
	now := t.now()
	t.mu.Lock()
	defer t.mu.Unlock()
	t.expire(now)
	if b, ok := t.by[k]; ok && b.player != p && now.Before(b.until) {
		return
	}
	if _, ok := t.by[k]; !ok {
		t.order = append(t.order, k)
	}
	t.by[k] = binding{player: p, until: now.Add(t.window)}
}

// expire drops bindings past their window from the front, and the oldest
// beyond the bound; t.mu is held.
func (t *reuseTable) expire(now time.Time) {
	n := 0
	for _, k := range t.order {
		b, ok := t.by[k]
		if ok && now.Before(b.until) && len(t.order)-n <= maxReuseEntries {
			break
		}
		if ok && (!now.Before(b.until) || len(t.order)-n > maxReuseEntries) {
			delete(t.by, k)
		}
		n++
	}
	t.order = t.order[n:]
}

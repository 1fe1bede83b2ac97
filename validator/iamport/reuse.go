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

// reuseTable binds an imp_uid to the first player it was presented for,
// for a window from that first use: one verification, one player. Keys
// are digests. In memory; with a fleet tier, the binding is claimed in the
// fleet too (Provider.claimShared), so a second sidecar refuses the
// verification to a second player as well.
type reuseTable struct {
	window time.Duration
	now    func() time.Time

	mu    sync.Mutex
	by    map[[sha256.Size]byte]binding
	order [][sha256.Size]byte // by first use, so by expiry too
}

type binding struct {
	player [sha256.Size]byte
	until  time.Time
}

func newReuseTable(window time.Duration, now func() time.Time) *reuseTable {
	return &reuseTable{window: window, now: now, by: map[[sha256.Size]byte]binding{}}
}

// claim binds impUID to player, atomically, unless it is bound to
// another player still: false then. fresh says the binding is new (the
// caller releases it if the verification turns out to admit no one).
func (t *reuseTable) claim(impUID, player string) (ok, fresh bool) {
	k, p := sha256.Sum256([]byte(impUID)), sha256.Sum256([]byte(player))
	now := t.now()
	t.mu.Lock()
	defer t.mu.Unlock()
	t.expire(now)
	if b, bound := t.by[k]; bound && now.Before(b.until) {
		return b.player == p, false
	}
	t.by[k] = binding{player: p, until: now.Add(t.window)}
	t.order = append(t.order, k)
	return true, true
}

// release drops a fresh claim of impUID (by player) that gave no verdict
// about an age: an unknown or uncertified imp_uid, or no answer.
func (t *reuseTable) release(impUID, player string) {
	k, p := sha256.Sum256([]byte(impUID)), sha256.Sum256([]byte(player))
	t.mu.Lock()
	defer t.mu.Unlock()
	if b, ok := t.by[k]; ok && b.player == p {
		delete(t.by, k) // its order entry goes when expire reaches it
	}
}

// expire drops the bindings past their window, and the oldest beyond the
// bound; t.mu is held. Bindings never move in order (their window runs
// from first use), so the live ones are a suffix.
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

// size is the number of bindings held (tests).
func (t *reuseTable) size() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.by)
}

// claimShared claims impUID for player across the fleet, when there is
// one: ok false if another player holds it; fresh says this claim made
// the binding. A fleet that cannot answer leaves the local claim alone to
// decide (ok true, not fresh): Redis failing never refuses anyone.
func (p *Provider) claimShared(impUID, player string, budget *time.Duration) (ok, fresh bool) {
	if p.cfg.Shared == nil {
		return true, false
	}
	me := playerDigest(player)
	held, won, err := p.cfg.Shared.Claim(reuseName(impUID), me, p.cfg.Now().Add(p.cfg.ReuseWindow), budget)
	if err != nil {
		return true, false
	}
	return won || string(held) == string(me), won
}

// reuseName is the fleet's name of impUID's binding.
func reuseName(impUID string) string { return "iamport imp_uid\x00" + impUID }

// playerDigest is what the fleet's binding holds of a player.
func playerDigest(player string) []byte {
	d := sha256.Sum256([]byte("playerguard iamport player\x00" + player))
	return d[:]
}

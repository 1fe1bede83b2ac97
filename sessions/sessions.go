// Package sessions holds the live sessions of connected players and the
// kick events about them (issue 16): a bounded registry of sessions by id
// and by player, each with the credential needed to validate it again,
// and a bounded, numbered buffer of events that clients read from a given
// id on (Server-Sent Events' Last-Event-ID) or are told to start over.
//
// It also delivers the events (ServeEvents, the SSE stream; Webhook) and
// schedules revalidations (Revalidator: each session within a round of
// its last, paced). It knows nothing of providers: the engine registers
// a session on an allow, revalidates through itself, and turns kicks
// into events here. Credentials stay in this process's memory and leave
// it with their session.
package sessions

import (
	"container/heap"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"sync"
	"time"
)

// Session is one connected player's session. C is the credential the
// engine needs to ask the upstream again (its own copy of the request).
type Session[C any] struct {
	ID, Player, Provider string
	Since, LastValidated time.Time
	// Expires is when the credential (or -session-max-age) ends it.
	Expires time.Time
	Cred    C

	due  time.Time // its next revalidation (Registry.Revalidate)
	slot int       // its index in the registry's heap of due times
	// gen tells this session's registration (or renewal: a new
	// credential) from any other under the same id: what a revalidation
	// learnt applies to the one it asked about (EndSession, Validated).
	gen uint64
}

// Errors of Add.
var (
	ErrOtherPlayer = errors.New("sessionId is in use by another player (one session id, one player)")
	ErrFull        = errors.New("too many live sessions")
)

// Registry is the live sessions, safe for concurrent use.
type Registry[C any] struct {
	max    int
	maxAge time.Duration
	now    func() time.Time

	mu       sync.Mutex
	byID     map[string]*Session[C]
	byPlayer map[string][]*Session[C] // a player's few sessions (a map each cost 200 bytes a session more)
	counts   map[string]int           // held sessions by provider
	every    time.Duration            // the revalidation round; 0: none
	due      dueHeap[C]
	gens     uint64 // the last gen given
}

// dueHeap orders sessions by their next revalidation.
type dueHeap[C any] []*Session[C]

func (h dueHeap[C]) Len() int           { return len(h) }
func (h dueHeap[C]) Less(i, j int) bool { return h[i].due.Before(h[j].due) }
func (h dueHeap[C]) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].slot, h[j].slot = i, j
}
func (h *dueHeap[C]) Push(x any) {
	s := x.(*Session[C])
	s.slot = len(*h)
	*h = append(*h, s)
}
func (h *dueHeap[C]) Pop() any {
	old := *h
	s := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	s.slot = -1
	return s
}

// Revalidate makes the registry schedule each session's revalidation
// every round: a new session's first one at a random point of the
// round after it began (so that sessions spread evenly over the round
// whenever they came), each next one a round after the last, less up to
// a tenth of it at random (never later than a round: a verdict changed
// upstream is seen within one). Sessions held already are scheduled as
// if new.
func (r *Registry[C]) Revalidate(every time.Duration) {
	now := r.now()
	r.mu.Lock()
	defer r.mu.Unlock()
	r.every = every
	for _, s := range r.byID {
		if s.slot < 0 && every > 0 {
			s.due = now.Add(time.Duration(rand.Int64N(int64(every))))
			heap.Push(&r.due, s)
		}
	}
}

// NewRegistry returns a registry of at most max sessions (max > 0), each
// ended maxAge after it began at the latest (maxAge > 0); now is its
// clock (nil: time.Now).
func NewRegistry[C any](max int, maxAge time.Duration, now func() time.Time) *Registry[C] {
	if now == nil {
		now = time.Now
	}
	return &Registry[C]{max: max, maxAge: maxAge, now: now, byID: map[string]*Session[C]{},
		byPlayer: map[string][]*Session[C]{}, counts: map[string]int{}}
}

// Add registers s, or renews it if its id is already this player's (a
// reconnect with the same id: its provider, credential and expiry are the
// new ones, its Since stays, and so does the end its maximum age sets).
// An id held by another player is ErrOtherPlayer; a new session beyond
// the bound is ErrFull (naming the bound). s.Since zero means now.
func (r *Registry[C]) Add(s Session[C]) error {
	now := r.now()
	if s.Since.IsZero() {
		s.Since = now
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if old, ok := r.byID[s.ID]; ok && !r.expired(old, now) {
		if old.Player != s.Player {
			return ErrOtherPlayer
		}
		r.count(old.Provider, -1)
		r.count(s.Provider, 1)
		r.gens++
		old.Provider, old.LastValidated, old.Cred, old.gen = s.Provider, s.LastValidated, s.Cred, r.gens
		old.Expires = minTime(s.Expires, old.Since.Add(r.maxAge))
		return nil
	} else if ok {
		r.remove(old)
	}
	if len(r.byID) >= r.max {
		return fmt.Errorf("%w (at most %d: -max-sessions)", ErrFull, r.max)
	}
	n := s
	n.Expires = minTime(s.Expires, s.Since.Add(r.maxAge))
	n.slot = -1
	r.gens++
	n.gen = r.gens
	if r.every > 0 {
		n.due = now.Add(time.Duration(rand.Int64N(int64(r.every))))
		heap.Push(&r.due, &n)
	}
	r.count(s.Provider, 1)
	r.byID[s.ID] = &n
	r.byPlayer[s.Player] = append(r.byPlayer[s.Player], &n)
	return nil
}

func (r *Registry[C]) expired(s *Session[C], now time.Time) bool { return !now.Before(s.Expires) }

// count adds d to provider's count; r.mu is held.
func (r *Registry[C]) count(provider string, d int) {
	if r.counts[provider] += d; r.counts[provider] <= 0 {
		delete(r.counts, provider)
	}
}

// minTime is the earlier of a and b, a zero a meaning none.
func minTime(a, b time.Time) time.Time {
	if a.IsZero() || b.Before(a) {
		return b
	}
	return a
}

// remove drops s; r.mu is held.
func (r *Registry[C]) remove(s *Session[C]) {
	delete(r.byID, s.ID)
	if s.slot >= 0 {
		heap.Remove(&r.due, s.slot)
	}
	r.count(s.Provider, -1)
	if l := slices.DeleteFunc(r.byPlayer[s.Player], func(x *Session[C]) bool { return x == s }); len(l) > 0 {
		r.byPlayer[s.Player] = l
	} else {
		delete(r.byPlayer, s.Player)
	}
	var zero C
	s.Cred = zero // the credential leaves with its session
}

// Remove ends the session id; false if there is none (or it had expired).
func (r *Registry[C]) Remove(id string) bool {
	now := r.now()
	r.mu.Lock()
	defer r.mu.Unlock()
	s, ok := r.byID[id]
	if !ok {
		return false
	}
	r.remove(s)
	return !r.expired(s, now)
}

// EndPlayer ends every session of player (provider "" for any) last
// validated before before, and returns them, credentials
// dropped: one kick event each. A session validated since is left: a kick
// is about what the upstream said then, and a later allow is newer.
func (r *Registry[C]) EndPlayer(player, provider string, before time.Time) []Session[C] {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []Session[C]
	for _, s := range slices.Clone(r.byPlayer[player]) { // remove edits the list
		if (provider == "" || s.Provider == provider) && s.LastValidated.Before(before) {
			c := *s
			var zero C
			c.Cred = zero
			out = append(out, c)
			r.remove(s)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// EndSession ends s if it is still the session registered under its id
// (not renewed, not ended and registered again): what a revalidation of
// s learnt is about s alone.
func (r *Registry[C]) EndSession(s Session[C]) bool {
	now := r.now()
	r.mu.Lock()
	defer r.mu.Unlock()
	cur, ok := r.byID[s.ID]
	if !ok || cur.gen != s.gen {
		return false
	}
	r.remove(cur)
	return !r.expired(cur, now)
}

// ByPlayer lists player's live sessions by id, without credentials.
func (r *Registry[C]) ByPlayer(player string) []Session[C] {
	now := r.now()
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []Session[C]
	for _, s := range r.byPlayer[player] {
		if !r.expired(s, now) {
			c := *s
			var zero C
			c.Cred = zero
			out = append(out, c)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// Expire ends the sessions whose credential or maximum age is over, and
// returns how many it ended (no event: the player did not misbehave).
func (r *Registry[C]) Expire() int {
	now := r.now()
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, s := range r.byID {
		if r.expired(s, now) {
			r.remove(s)
			n++
		}
	}
	return n
}

// ByProvider counts the sessions held per provider (kept as they come
// and go, not counted per call: a scrape costs no walk of 100,000
// sessions; expired ones count until Expire drops them).
func (r *Registry[C]) ByProvider() map[string]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string]int, len(r.counts))
	for p, n := range r.counts {
		out[p] = n
	}
	return out
}

// Validated records a fresh allow for s (a revalidation) at at, of a
// credential that ends at expires (zero: none known, the end stays): the
// session's end moves to it, bounded by its maximum age. A session renewed
// or replaced meanwhile is left alone.
func (r *Registry[C]) Validated(s Session[C], at, expires time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if cur, ok := r.byID[s.ID]; ok && cur.gen == s.gen {
		cur.LastValidated = at
		if !expires.IsZero() {
			cur.Expires = minTime(expires, cur.Since.Add(r.maxAge))
		}
	}
}

// Next is the session whose revalidation is due first, with its
// credential, and when it is due; false when there is none. Ended
// sessions met on the way are dropped.
func (r *Registry[C]) Next() (Session[C], time.Time, bool) {
	now := r.now()
	r.mu.Lock()
	defer r.mu.Unlock()
	for len(r.due) > 0 {
		s := r.due[0]
		if r.expired(s, now) {
			r.remove(s)
			continue
		}
		return *s, s.due, true
	}
	return Session[C]{}, time.Time{}, false
}

// Behind is how late the most overdue revalidation is (0 when none is
// overdue): a revalidator that cannot keep up with its rounds.
func (r *Registry[C]) Behind() time.Duration {
	now := r.now()
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.due) == 0 {
		return 0
	}
	return max(now.Sub(r.due[0].due), 0)
}

// Revalidated schedules s's next revalidation a round after at (less up
// to a tenth of a round); a session gone meanwhile is left gone.
func (r *Registry[C]) Revalidated(s Session[C], at time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if s, ok := r.byID[s.ID]; ok && s.slot >= 0 {
		s.due = at.Add(r.every - time.Duration(rand.Int64N(int64(r.every/10)+1)))
		heap.Fix(&r.due, s.slot)
	}
}

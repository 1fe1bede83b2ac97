package sessions

import (
	"sync"
	"time"
)

// Verdict is what a revalidation learnt of a session.
type Verdict uint8

const (
	// Keep: an allow; the session goes on.
	Keep Verdict = iota
	// Kick: the upstream says the player must go.
	Kick
	// Unknown: no verdict (outage, breaker open, maintenance): the session
	// goes on and is asked again next round. An outage never kicks.
	Unknown
)

// Revalidator validates every live session of a registry again once a
// round (Registry.Revalidate schedules them: spread over the round, each
// within a round of the last), starting at most MaxRPS a second and
// never more than Concurrency at once.
type Revalidator[C any] struct {
	Registry *Registry[C]
	// Every is a round's length (-revalidate-every); MaxRPS the most
	// validations started a second (-revalidate-max-rps). Both positive.
	Every  time.Duration
	MaxRPS float64
	// Concurrency bounds the validations under way (each waits for its
	// upstream: one at a time, a 30 ms upstream would allow 33 a second
	// whatever MaxRPS says). Zero means 64.
	Concurrency int
	// Validate asks the upstream about s, bypassing every cache, and says
	// what it learnt; expires is the credential's new end for Keep (zero:
	// none of its own). For Kick, Validate has ended the session (and
	// emitted its events). It is called from several goroutines at once.
	Validate func(s Session[C]) (v Verdict, expires time.Time)
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// poll is the longest the revalidator sleeps before it looks again at
// what is due first (a session added meanwhile may be due sooner).
const poll = time.Second

// Run revalidates until stop is closed, then waits for the validations
// under way. It calls Registry.Revalidate.
func (r *Revalidator[C]) Run(stop <-chan struct{}) {
	now := r.Now
	if now == nil {
		now = time.Now
	}
	r.Registry.Revalidate(r.Every)
	gap := time.Duration(float64(time.Second) / r.MaxRPS)
	n := r.Concurrency
	if n <= 0 {
		n = 64
	}
	busy := make(chan struct{}, n)
	var wg sync.WaitGroup
	defer wg.Wait()
	// slot is when the next validation may start: one gap after the
	// last one's slot, not after the moment it started, so that sleeps
	// that overshoot (a millisecond's sleep takes more) do not add up to
	// a lower rate; but never more than a burst behind now, so that an
	// idle spell does not save up a spike: one call at 5 a second, 30 at
	// 600 (the 50 ms a timer's overshoot can lose over them).
	burst := max(gap, 50*time.Millisecond)
	var slot time.Time
	for {
		s, due, ok := r.Registry.Next()
		wait := poll
		if ok {
			if t := now(); slot.Before(t.Add(-burst)) {
				slot = t.Add(-burst)
			}
			wait = max(due.Sub(now()), slot.Add(gap).Sub(now()))
		}
		if wait > 0 {
			select {
			case <-stop:
				return
			case <-time.After(min(wait, poll)):
			}
			continue
		}
		select {
		case <-stop:
			return
		case busy <- struct{}{}:
		}
		slot = slot.Add(gap)
		// Next round's turn first: the session is not due again while
		// this validation is under way.
		r.Registry.Revalidated(s, now())
		wg.Add(1)
		go func() {
			defer func() { <-busy; wg.Done() }()
			// Unknown: asked again next round (an outage never kicks).
			if v, expires := r.Validate(s); v == Keep {
				r.Registry.Validated(s, now(), expires)
			}
		}()
	}
}

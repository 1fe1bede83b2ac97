package sessions

import (
	"math/rand/v2"
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

// Revalidator validates every live session again once a round, spread
// evenly over the round with jitter, and never faster than MaxRPS.
type Revalidator[C any] struct {
	Registry *Registry[C]
	// Every is a round's length (-revalidate-every); MaxRPS the most
	// validations a second (-revalidate-max-rps). Both positive.
	Every  time.Duration
	MaxRPS float64
	// Validate asks the upstream about s, bypassing every cache, and says
	// what it learnt; expires is the credential's new end for Keep.
	Validate func(s Session[C]) (v Verdict, reason string, expires time.Time)
	// OnKick hears each Kick (the caller ends the player's sessions and
	// emits their events).
	OnKick func(s Session[C], reason string)
	// OnResult, if set, hears each verdict (the metric).
	OnResult func(Verdict)
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Run revalidates until stop is closed.
func (r *Revalidator[C]) Run(stop <-chan struct{}) {
	now := r.Now
	if now == nil {
		now = time.Now
	}
	minGap := time.Duration(float64(time.Second) / r.MaxRPS)
	for {
		roundStart := now()
		sessions := r.Registry.Snapshot()
		gap := minGap
		if n := len(sessions); n > 0 {
			gap = max(r.Every/time.Duration(n), minGap)
		}
		last := time.Time{}
		for i, s := range sessions {
			// Session i's slot is [i·gap, (i+1)·gap) of the round, at a
			// random point within it but at least minGap after the one
			// before: the round ends on time, the rate is never exceeded,
			// and sidecars that started together do not ask in step.
			at := roundStart.Add(time.Duration(i)*gap + time.Duration(rand.Int64N(int64(gap-minGap)+1)))
			if !last.IsZero() && at.Sub(last) < minGap {
				at = last.Add(minGap)
			}
			if wait := at.Sub(now()); wait > 0 {
				select {
				case <-stop:
					return
				case <-time.After(wait):
				}
			} else {
				select {
				case <-stop:
					return
				default:
				}
			}
			last = now()
			v, reason, expires := r.Validate(s)
			if r.OnResult != nil {
				r.OnResult(v)
			}
			switch v {
			case Keep:
				r.Registry.Validated(s.ID, now(), expires)
			case Kick:
				if r.OnKick != nil {
					r.OnKick(s, reason)
				}
			}
		}
		// The rest of the round, if the sessions took less.
		if rest := r.Every - now().Sub(roundStart); rest > 0 {
			select {
			case <-stop:
				return
			case <-time.After(rest):
			}
		}
	}
}

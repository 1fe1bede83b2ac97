package sessions

import "time"

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
// within a round of the last), never faster than MaxRPS.
type Revalidator[C any] struct {
	Registry *Registry[C]
	// Every is a round's length (-revalidate-every); MaxRPS the most
	// validations a second (-revalidate-max-rps). Both positive.
	Every  time.Duration
	MaxRPS float64
	// Validate asks the upstream about s, bypassing every cache, and says
	// what it learnt; expires is the credential's new end for Keep (zero:
	// none of its own).
	Validate func(s Session[C]) (v Verdict, reason string, expires time.Time)
	// OnKick, if set, hears each Kick (the caller ends the player's
	// sessions and emits their events, if Validate did not).
	OnKick func(s Session[C], reason string)
	// OnResult, if set, hears each verdict.
	OnResult func(Verdict)
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// poll is the longest the revalidator sleeps before it looks again at
// what is due first (a session added meanwhile may be due sooner).
const poll = time.Second

// Run revalidates until stop is closed. It calls Registry.Revalidate.
func (r *Revalidator[C]) Run(stop <-chan struct{}) {
	now := r.Now
	if now == nil {
		now = time.Now
	}
	r.Registry.Revalidate(r.Every)
	minGap := time.Duration(float64(time.Second) / r.MaxRPS)
	var last time.Time
	for {
		s, due, ok := r.Registry.Next()
		wait := poll
		if ok {
			wait = due.Sub(now())
			if !last.IsZero() {
				wait = max(wait, last.Add(minGap).Sub(now()))
			}
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
		default:
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
		// Unknown too: asked again next round (an outage never kicks).
		r.Registry.Revalidated(s.ID, last)
	}
}

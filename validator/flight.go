package validator

import (
	"sync"

	"playerguard/cache"
)

// flightGroup coalesces concurrent validations of the same key onto one
// upstream call, like golang.org/x/sync/singleflight but keyed by the
// fixed-size cache key (no string conversion) and telling followers apart
// from the leader, which the coalesced-requests metric needs.
//
// The leader makes the call on its own goroutine with no caller context:
// nothing a single caller does (disconnecting, timing out) can cancel the
// call the others are waiting on. The call is bounded by the upstream
// timeout instead.
type flightGroup struct {
	mu    sync.Mutex
	calls map[cache.Key]*flight
}

type flight struct {
	done chan struct{}
	res  *Result
}

// do runs fn once for all concurrent callers with key k and returns its
// result to each; shared is true for the callers that did not run it.
// With noJoin, a caller that finds a call under way does not wait for it:
// it gets nil, true at once.
func (g *flightGroup) do(k *cache.Key, noJoin bool, fn func() *Result) (res *Result, shared bool) {
	g.mu.Lock()
	if g.calls == nil {
		g.calls = make(map[cache.Key]*flight)
	}
	if f, ok := g.calls[*k]; ok {
		g.mu.Unlock()
		if noJoin {
			return nil, true
		}
		<-f.done
		return f.res, true
	}
	f := &flight{done: make(chan struct{})}
	g.calls[*k] = f
	g.mu.Unlock()

	// Publish the result even if fn panics, so followers are not stranded;
	// the panic itself carries on to the leader's recover (fasthttp's).
	defer func() {
		if f.res == nil { // fn panicked
			f.res = failed(ReasonUpstreamUnavailable, errPanic, "")
		}
		g.mu.Lock()
		delete(g.calls, *k)
		g.mu.Unlock()
		close(f.done)
	}()
	f.res = fn()
	return f.res, false
}

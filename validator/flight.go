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
	mu       sync.Mutex
	calls    map[cache.Key]*flight
	settling int        // settle funcs running
	settled  *sync.Cond // on mu; broadcast when settling drops to 0
}

type flight struct {
	done chan struct{}
	res  *Result
	// tags are the token and the claimed player of the flight's request
	// (see detach).
	tags cache.Tags
}

// do runs fn once for all concurrent callers with key k and returns its
// result to each; shared is true for the callers that did not run it.
// With noJoin, a caller that finds a call under way does not wait for it:
// it gets nil, true at once.
//
// fn may return a settle func, work that must finish before a new caller
// for k stops joining this flight (the cache write of an allow). It runs
// after the result is handed out, on a goroutine of its own: the leader
// and its followers answer at once, and callers arriving until settle
// returns share the result instead of asking the upstream again.
//
// tags name the request's token and claimed player, for detach.
func (g *flightGroup) do(k *cache.Key, tags cache.Tags, noJoin bool, fn func() (*Result, func())) (res *Result, shared bool) {
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
	f := &flight{done: make(chan struct{}), tags: tags}
	g.calls[*k] = f
	g.mu.Unlock()

	// Publish the result even if fn panics, so followers are not stranded;
	// the panic itself carries on to the leader's recover (fasthttp's).
	var settle func()
	defer func() {
		if f.res == nil { // fn panicked
			f.res = failed(ReasonUpstreamUnavailable, errPanic, "")
		}
		if settle == nil {
			g.forget(k, f)
			close(f.done)
			return
		}
		g.mu.Lock()
		g.settling++
		g.mu.Unlock()
		close(f.done)
		key := *k // k belongs to the caller's pooled state
		go func() {
			settle()
			g.mu.Lock()
			if g.calls[key] == f {
				delete(g.calls, key)
			}
			if g.settling--; g.settling == 0 && g.settled != nil {
				g.settled.Broadcast()
			}
			g.mu.Unlock()
		}()
	}()
	f.res, settle = fn()
	return f.res, false
}

// forget ends f's flight for new callers, unless detach did already (and
// another flight for k may have started since).
func (g *flightGroup) forget(k *cache.Key, f *flight) {
	g.mu.Lock()
	if g.calls[*k] == f {
		delete(g.calls, *k)
	}
	g.mu.Unlock()
}

// detach makes every flight of token (or, with player not "", of that
// claimed player or answered about them) unjoinable, but the one for
// except: a kick of the token or the player must not be followed by a
// caller joining an allow that was fetched, or is being cached, before it.
// Callers already waiting keep the answer they joined for, as a purge
// does not take back answers already given.
func (g *flightGroup) detach(token cache.TokenID, player string, except *cache.Key) {
	g.detachIf(true, token, player, except)
}

// detachPlayer is detach for a player alone (a purge or kick that names
// no token).
func (g *flightGroup) detachPlayer(player string) {
	var none cache.Key
	g.detachIf(false, 0, player, &none)
}

func (g *flightGroup) detachIf(byToken bool, token cache.TokenID, player string, except *cache.Key) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for k, f := range g.calls {
		if k == *except {
			continue
		}
		match := byToken && f.tags.Token == token || player != "" && f.tags.Player == player
		if !match && player != "" {
			select {
			case <-f.done: // f.res is written before done closes
				match = f.res.PlayerID == player
			default:
			}
		}
		if match {
			delete(g.calls, k)
		}
	}
}

// detachKey makes the flight for k, if any, unjoinable (a purge of that
// one key).
func (g *flightGroup) detachKey(k *cache.Key) {
	g.mu.Lock()
	delete(g.calls, *k)
	g.mu.Unlock()
}

// wait returns once no settle func is running (Validator.Close, tests).
func (g *flightGroup) wait() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.settled == nil {
		g.settled = sync.NewCond(&g.mu)
	}
	for g.settling > 0 {
		g.settled.Wait()
	}
}

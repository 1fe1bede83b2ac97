// Command ceiling is the upper bound of playerguard's bench (bench/README.md):
// a bare fasthttp server, configured like playerguard's validation listener,
// that answers each known path with a fixed response (status, content type,
// headers, body) captured from playerguard's own cache-hit answer in the
// same run, so both put the same bytes on the wire (the hit scenario checks
// it). It routes and sets headers the way playerguard does (the raw request
// URI first; header names normalized once, not per answer), so what it
// spends is what any fasthttp sidecar must. Whatever playerguard does
// beyond this (decoding the request, hashing the cache key, the cache
// lookup, metrics) is the gap the bench measures.
//
// A route with a lookup ("json" or "headers") is the bench's minimal peer
// instead: the least any correct cache hit must do on top of the ceiling.
// It reads accessToken, platform and playerId with playerguard's own code
// (validator.DecodeJSON for the JSON body, validator.ReadHeaders for the
// drop-in headers), hashes them into playerguard's cache key
// (cache.SumKey), finds it in a read-only map filled at start, and answers that
// player's body as captured from playerguard. No clock, expiry, metrics,
// input checks or concurrent updates: a floor, not a design. With "hold"
// (a duration) a keyed route is the storm's minimal peer: the first request
// for a player waits that long, as for one upstream call with a free
// upstream, and every request for the player that arrives meanwhile waits
// for the same end (coalescing); later ones are answered at once.
//
//	ceiling -spec FILE [-listen 127.0.0.1:0]
//
// FILE is JSON, as package playerguard/bench/peers/spec describes. Other
// paths, and unknown players, get 404. It prints "listening ADDR" on
// stdout once it accepts connections and serves until SIGTERM or SIGINT.
package main

import (
	"bytes"
	"os"
	"sync"
	"time"

	"github.com/valyala/fasthttp"

	"playerguard/bench/peers/spec"
	"playerguard/cache"
	"playerguard/validator"
)

type answer struct {
	path   []byte
	status int
	ctype  []byte
	hdr    [][2][]byte
	body   []byte
	lookup string
	bodies map[cache.Key][]byte // keyed routes: each player's body by cache key

	hold    time.Duration // > 0: coalesce each player on one wait
	mu      sync.Mutex
	flights map[cache.Key]chan struct{} // closed when the wait is over
}

// wait blocks until the player's one wait of a.hold is over, starting it
// if this is the player's first request.
func (a *answer) wait(k cache.Key) {
	a.mu.Lock()
	done, ok := a.flights[k]
	if !ok {
		done = make(chan struct{})
		a.flights[k] = done
		time.AfterFunc(a.hold, func() { close(done) })
	}
	a.mu.Unlock()
	<-done
}

// bodyFor is the answer body for this request: the route's own, or for a
// keyed route the requesting player's (nil if unknown or unreadable).
func (a *answer) bodyFor(ctx *fasthttp.RequestCtx) []byte {
	var req validator.Request
	switch a.lookup {
	case "":
		return a.body
	case "json":
		var scratch [64]byte
		if _, err := validator.DecodeJSON(ctx.Request.Body(), &req, scratch[:0]); err != nil {
			return nil
		}
	default:
		if validator.ReadHeaders(ctx, &req) != nil {
			return nil
		}
	}
	return a.keyed(spec.Key(req.Platform, req.PlayerID, req.Token))
}

// keyed is the body of the player whose cache key is k (nil if unknown),
// after the player's wait when the route holds.
func (a *answer) keyed(k cache.Key) []byte {
	b, ok := a.bodies[k]
	if ok && a.hold > 0 {
		a.wait(k)
	}
	return b
}

func main() { os.Exit(run()) }

func run() int {
	sp, ln, code := spec.Start("ceiling")
	if code != 0 {
		return code
	}
	var routes []*answer
	for _, r := range sp.Routes {
		a := &answer{path: []byte(r.Path), status: r.Status, ctype: []byte(r.ContentType), body: []byte(r.Body), lookup: r.Lookup}
		if r.Lookup != "" {
			a.bodies = r.Bodies()
		}
		if a.hold, _ = r.HoldFor(); a.hold > 0 { // checked by Load
			a.flights = map[cache.Key]chan struct{}{}
		}
		for _, kv := range r.Headers {
			// Names normalized once here, so each answer sets them as they
			// are (SetCanonical), as playerguard does.
			a.hdr = append(a.hdr, [2][]byte{fasthttp.AppendNormalizedHeaderKey(nil, kv[0]), []byte(kv[1])})
		}
		routes = append(routes, a)
	}

	// The same server settings as playerguard's validation listener
	// (cmd/playerguard/main.go), so only the handler differs.
	srv := &fasthttp.Server{
		Handler: func(ctx *fasthttp.RequestCtx) {
			// Routed as playerguard routes: the raw request URI first,
			// fasthttp's parsed and normalized path only if that fails.
			a := match(routes, ctx.Request.Header.RequestURI())
			if a == nil {
				if a = match(routes, ctx.Path()); a == nil {
					ctx.SetStatusCode(fasthttp.StatusNotFound)
					return
				}
			}
			body := a.bodyFor(ctx)
			if body == nil {
				ctx.SetStatusCode(fasthttp.StatusNotFound)
				return
			}
			h := &ctx.Response.Header
			for _, kv := range a.hdr {
				h.SetCanonical(kv[0], kv[1])
			}
			ctx.SetStatusCode(a.status)
			h.SetContentTypeBytes(a.ctype)
			ctx.Response.SetBodyRaw(body)
		},
		Name:                         "playerguard",
		MaxRequestBodySize:           16 << 10,
		ReadBufferSize:               8 << 10,
		CloseOnShutdown:              true,
		NoDefaultServerHeader:        true,
		DisablePreParseMultipartForm: true,
	}
	return spec.Serve("ceiling", ln, srv.Serve, srv.ShutdownWithContext)
}

// match returns the answer whose path is path exactly, or nil.
func match(routes []*answer, path []byte) *answer {
	for _, a := range routes {
		if bytes.Equal(a.path, path) {
			return a
		}
	}
	return nil
}

// Command nethttp is the bench's "quick prototype" peer (bench/README.md):
// what a team might write in an afternoon instead of playerguard, with the
// standard library only. net/http, encoding/json for the /v1/validate
// body, the same SHA-256 cache key as playerguard, and a map guarded by a
// sync.Mutex. Its cache is filled at start with every player's answer as
// captured from playerguard; it answers the same status, X-Playerguard-*
// headers, content type and body (net/http adds its own Date and
// Content-Length, in its own order).
//
//	nethttp -spec FILE [-listen 127.0.0.1:0]
//
// FILE is JSON, as package playerguard/bench/peers/spec describes; only
// routes with "lookup":"json" are served (others are refused at start).
// Unknown paths and players get 404. It prints "listening ADDR" on stdout
// once it accepts connections and serves until SIGTERM or SIGINT.
package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"sync"

	"playerguard/bench/peers/spec"
	"playerguard/cache"
)

func main() { os.Exit(run()) }

func run() int {
	sp, ln, code := spec.Start("nethttp")
	if code != 0 {
		return code
	}
	mux := http.NewServeMux()
	for _, r := range sp.Routes {
		if r.Lookup != "json" {
			fmt.Fprintf(os.Stderr, "nethttp: -spec: route %s: lookup %q (only json)\n", r.Path, r.Lookup)
			return 2
		}
		mux.Handle("POST "+r.Path, newRoute(r))
	}
	srv := &http.Server{Handler: mux}
	return spec.Serve("nethttp", ln, srv.Serve, srv.Shutdown)
}

// route is one keyed route: the players' answers by cache key.
type route struct {
	status  int
	ctype   string
	headers [][2]string

	mu    sync.Mutex
	cache map[cache.Key][]byte
}

func newRoute(r spec.Route) *route {
	return &route{status: r.Status, ctype: r.ContentType, headers: r.Headers, cache: r.Bodies()}
}

func (rt *route) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var req struct {
		AccessToken string `json:"accessToken"`
		Platform    string `json:"platform"`
		PlayerID    string `json:"playerId"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 16<<10)).Decode(&req); err != nil || req.AccessToken == "" || req.Platform == "" {
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	k := spec.Key([]byte(req.Platform), []byte(req.PlayerID), []byte(req.AccessToken))
	rt.mu.Lock()
	body, ok := rt.cache[k]
	rt.mu.Unlock()
	if !ok {
		http.NotFound(w, r)
		return
	}
	h := w.Header()
	for _, kv := range rt.headers {
		h.Set(kv[0], kv[1])
	}
	h.Set("Content-Type", rt.ctype)
	w.WriteHeader(rt.status)
	w.Write(body)
}

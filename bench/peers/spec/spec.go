// Package spec is the -spec file of the bench's own peers (the ceiling,
// the minimal peer and the net/http prototype, under bench/peers): the
// routes they answer, captured from playerguard in the same run, and for a
// keyed route the players it knows; the cache key they find players by
// (playerguard's own, cache.SumKey); and the life cycle they share.
package spec

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"playerguard/cache"
)

// Spec is the -spec file: {"routes":[…]}.
type Spec struct {
	Routes []Route `json:"routes"`
}

// Route is the answer to one path.
type Route struct {
	Path        string      `json:"path"`
	Status      int         `json:"status"`
	ContentType string      `json:"contentType"`
	Headers     [][2]string `json:"headers"`
	// Body is the answer of an unkeyed route.
	Body string `json:"body,omitempty"`
	// Lookup keys the route on the player: "json" reads it from the JSON
	// body, "headers" from the drop-in headers; each known player is
	// answered its own Body from Players, others 404.
	Lookup  string   `json:"lookup,omitempty"`
	Players []Player `json:"players,omitempty"`
	// Hold (a duration; keyed routes) makes each player's first request
	// wait that long and the player's requests meanwhile wait with it.
	Hold string `json:"hold,omitempty"`
}

// Player is one known player of a keyed route and its answer body.
type Player struct {
	Token    string `json:"token"`
	Platform string `json:"platform"`
	PlayerID string `json:"playerId"`
	Body     string `json:"body"`
}

// Load reads and checks a spec file.
func Load(file string) (*Spec, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	var s Spec
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	if len(s.Routes) == 0 {
		return nil, fmt.Errorf("%s holds no routes", file)
	}
	for _, r := range s.Routes {
		switch r.Lookup {
		case "", "json", "headers":
		default:
			return nil, fmt.Errorf("route %s: lookup %q (want json or headers)", r.Path, r.Lookup)
		}
		if _, err := r.HoldFor(); err != nil {
			return nil, err
		}
	}
	return &s, nil
}

// HoldFor is the route's Hold as a duration (0 when none).
func (r *Route) HoldFor() (time.Duration, error) {
	if r.Hold == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(r.Hold)
	if err != nil || d <= 0 || r.Lookup == "" {
		return 0, fmt.Errorf("route %s: hold %q (want a positive duration, on a keyed route)", r.Path, r.Hold)
	}
	return d, nil
}

// Key is playerguard's cache key for a request's fields (cache.SumKey),
// with a buffer on the caller's stack for the hashed input.
func Key(platform, playerID, token []byte) cache.Key {
	var scratch [256]byte
	k, _ := cache.SumKey(scratch[:0], platform, playerID, token)
	return k
}

// Bodies maps each of a keyed route's players, by cache key, to its body.
func (r *Route) Bodies() map[cache.Key][]byte {
	m := make(map[cache.Key][]byte, len(r.Players))
	for _, p := range r.Players {
		m[Key([]byte(p.Platform), []byte(p.PlayerID), []byte(p.Token))] = []byte(p.Body)
	}
	return m
}

// Serve is the peers' shared life cycle: serve on ln, say "listening
// ADDR" on stdout (the bench waits for it), and on SIGINT or SIGTERM shut
// down within 5 s. It returns the exit code.
func Serve(name string, ln net.Listener, serve func(net.Listener) error, shutdown func(context.Context) error) int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- serve(ln) }()
	fmt.Printf("listening %s\n", ln.Addr())
	select {
	case <-ctx.Done():
	case err := <-errc:
		fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
		return 1
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = shutdown(sctx)
	return 0
}

// Start parses a peer's flags (-spec FILE, -listen ADDR), loads the spec
// and listens. On failure it prints one line naming the problem and
// returns the exit code (2 for a bad spec, 1 when it cannot listen).
func Start(name string) (*Spec, net.Listener, int) {
	listen := flag.String("listen", "127.0.0.1:0", "listen `address` (loopback)")
	specFile := flag.String("spec", "", "JSON `file` of the routes to answer (required)")
	flag.Parse()
	sp, err := Load(*specFile)
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: -spec: %v\n", name, err)
		return nil, nil, 2
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
		return nil, nil, 1
	}
	return sp, ln, 0
}

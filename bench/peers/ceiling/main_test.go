package main

import (
	"sync"
	"testing"
	"time"

	"playerguard/cache"
)

// TestHoldCoalesces: a holding route makes a player's first request wait
// the hold, requests arriving meanwhile end with it, and later ones are
// answered at once. Unknown players neither wait nor get a body.
func TestHoldCoalesces(t *testing.T) {
	const hold = 400 * time.Millisecond
	k := cache.Key{1}
	a := &answer{lookup: "headers", hold: hold, flights: map[cache.Key]chan struct{}{},
		bodies: map[cache.Key][]byte{k: []byte("body")}}
	timed := func() time.Duration {
		t0 := time.Now()
		if b := a.keyed(k); string(b) != "body" {
			t.Errorf("keyed: %q", b)
		}
		return time.Since(t0)
	}
	var first time.Duration
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); first = timed() }()
	time.Sleep(hold / 4)
	joined := timed() // arrives during the first one's wait
	wg.Wait()
	if first < hold {
		t.Errorf("the first request waited %v, want the hold, %v", first, hold)
	}
	if joined >= hold {
		t.Errorf("a request arriving during the wait waited %v, want it to end with the first (< %v)", joined, hold)
	}
	if d := timed(); d >= hold {
		t.Errorf("a request after the wait waited %v", d)
	}
	if len(a.flights) != 1 {
		t.Errorf("%d waits started for one player, want 1", len(a.flights))
	}
	if b := a.keyed(cache.Key{2}); b != nil || len(a.flights) != 1 {
		t.Errorf("an unknown player: body %q, %d waits; want nil and no new wait", b, len(a.flights))
	}
}

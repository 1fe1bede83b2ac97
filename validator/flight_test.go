package validator

import (
	"testing"
	"time"

	"playerguard/cache"
)

// TestFlightSettleAfterAnswer: the leader and its followers get the result
// before the flight's settle work (the cache write) is done, and callers
// arriving until it is done share the result instead of calling again.
func TestFlightSettleAfterAnswer(t *testing.T) {
	var g flightGroup
	var k cache.Key
	k[0] = 1
	release := make(chan struct{})
	settled := make(chan struct{})
	calls := 0
	want := &Result{Verdict: Allow}
	fn := func() (*Result, func()) {
		calls++
		return want, func() { <-release; close(settled) }
	}

	res, shared := g.do(&k, cache.Tags{}, false, fn) // returns while settle is blocked
	if res != want || shared {
		t.Fatalf("leader: %v, shared %v", res, shared)
	}
	select {
	case <-settled:
		t.Fatal("settle finished before it was released")
	default:
	}
	// A caller during the settle window joins the finished flight.
	done := make(chan struct{})
	go func() {
		defer close(done)
		if res, shared := g.do(&k, cache.Tags{}, false, fn); res != want || !shared {
			t.Errorf("during settle: %v, shared %v", res, shared)
		}
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("a caller during the settle window waited for it")
	}
	waited := make(chan struct{})
	go func() { g.wait(); close(waited) }()
	select {
	case <-waited:
		t.Fatal("wait returned while a settle was running")
	case <-time.After(20 * time.Millisecond):
	}
	close(release)
	<-waited
	// Settled: the next caller starts a new flight.
	if res, shared := g.do(&k, cache.Tags{}, false, func() (*Result, func()) { calls++; return want, nil }); res != want || shared {
		t.Errorf("after settle: %v, shared %v", res, shared)
	}
	if calls != 2 {
		t.Errorf("fn ran %d times, want 2", calls)
	}
}

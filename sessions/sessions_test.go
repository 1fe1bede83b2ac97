package sessions

import (
	"errors"
	"fmt"
	"runtime"
	"testing"
	"time"

	"playerguard/internal/testkit"
)

// held is how many sessions r holds (expired ones not yet dropped too).
func held[C any](r *Registry[C]) int {
	n := 0
	for _, c := range r.ByProvider() {
		n += c
	}
	return n
}

// get is session id, if live, as ByPlayer lists it.
func get[C any](r *Registry[C], id string) (Session[C], bool) {
	r.mu.Lock()
	s, ok := r.byID[id]
	r.mu.Unlock()
	if !ok {
		return Session[C]{}, false
	}
	for _, l := range r.ByPlayer(s.Player) {
		if l.ID == id {
			return l, true
		}
	}
	return Session[C]{}, false
}

func TestRegistry(t *testing.T) {
	clk := testkit.NewClock(time.Unix(1_700_000_000, 0))
	r := NewRegistry[string](3, 48*time.Hour, clk.Now)
	exp := clk.Now().Add(time.Hour)
	add := func(id, player, provider string) error {
		return r.Add(Session[string]{ID: id, Player: player, Provider: provider, Since: clk.Now(), LastValidated: clk.Now(), Expires: exp, Cred: "SECRET-" + id})
	}
	if err := add("s1", "p1", "kakao-games"); err != nil {
		t.Fatal(err)
	}
	if err := add("s2", "p1", "kakao-login"); err != nil {
		t.Fatal(err)
	}
	if err := add("s1", "p2", "kakao-games"); !errors.Is(err, ErrOtherPlayer) {
		t.Errorf("s1 for another player: %v, want ErrOtherPlayer", err)
	}
	if err := add("s1", "p1", "kakao-games"); err != nil || held(r) != 2 {
		t.Errorf("s1 again for its player: %v, %d sessions; want a renewal", err, held(r))
	}
	if err := add("s3", "p3", "kakao-games"); err != nil {
		t.Fatal(err)
	}
	if err := add("s4", "p4", "kakao-games"); !errors.Is(err, ErrFull) || err.Error() != "too many live sessions (at most 3: -max-sessions)" {
		t.Errorf("beyond the bound: %v", err)
	}
	got := r.ByPlayer("p1")
	if len(got) != 2 || got[0].ID != "s1" || got[1].ID != "s2" || got[0].Cred != "" {
		t.Errorf("ByPlayer(p1) = %+v, want s1, s2 without credentials", got)
	}
	if next, _, ok := r.Next(); ok {
		t.Errorf("Next = %+v without revalidation, want none due", next)
	}
	if c := r.ByProvider(); c["kakao-games"] != 2 || c["kakao-login"] != 1 {
		t.Errorf("ByProvider = %v", c)
	}
	ended := r.EndPlayer("p1", "kakao-login", clk.Now().Add(time.Second))
	if len(ended) != 1 || ended[0].ID != "s2" || ended[0].Cred != "" || len(r.ByPlayer("p1")) != 1 {
		t.Errorf("EndPlayer(p1, kakao-login) = %+v; left %+v", ended, r.ByPlayer("p1"))
	}
	if !r.Remove("s3") || r.Remove("s3") || r.Remove("nope") {
		t.Error("Remove: want true once, then false, and false for an unknown id")
	}
	// Expiry: the session goes, and its id is free for another player.
	clk.Add(2 * time.Hour)
	if len(r.ByPlayer("p1")) != 0 {
		t.Error("an expired session is listed")
	}
	if err := add("s1", "p9", "kakao-games"); err != nil {
		t.Errorf("an expired session's id for another player: %v", err)
	}
	clk.Add(2 * time.Hour)
	if n := r.Expire(); n != 1 || held(r) != 0 {
		t.Errorf("Expire = %d, %d left; want 1, 0", n, held(r))
	}
}

func TestBuffer(t *testing.T) {
	b := NewBuffer(3, 1)
	if ev, reset, _, _ := b.Since(0); len(ev) != 0 || reset {
		t.Errorf("empty: %v %v", ev, reset)
	}
	_, _, _, more := b.Since(0)
	for i := range 5 {
		e := b.Append(Event{Type: "kick", SessionID: string(rune('a' + i))})
		if e.ID != uint64(i+1) {
			t.Fatalf("event %d numbered %d", i, e.ID)
		}
	}
	select {
	case <-more:
	default:
		t.Error("a reader waiting was not woken")
	}
	ids := func(ev []Event) (out []uint64) {
		for _, e := range ev {
			out = append(out, e.ID)
		}
		return out
	}
	for _, c := range []struct {
		since uint64
		want  []uint64
		reset bool
	}{
		{4, []uint64{5}, false},
		{2, []uint64{3, 4, 5}, false},
		{5, nil, false},
		{1, []uint64{3, 4, 5}, true}, // 2 is gone: missed
		{0, []uint64{3, 4, 5}, true},
		{99, nil, true}, // another process's numbering
	} {
		ev, reset, _, _ := b.Since(c.since)
		if got := ids(ev); reset != c.reset || len(got) != len(c.want) || (len(got) > 0 && (got[0] != c.want[0] || got[len(got)-1] != c.want[len(c.want)-1])) {
			t.Errorf("Since(%d) = %v reset %v, want %v reset %v", c.since, got, reset, c.want, c.reset)
		}
	}
	if b.Last() != 5 {
		t.Errorf("Last = %d", b.Last())
	}
	// Numbered from elsewhere (a restarted sidecar): an ID from before is
	// older than anything kept.
	b = NewBuffer(3, 1000)
	if _, reset, upTo, _ := b.Since(999); reset || upTo != 999 {
		t.Errorf("empty from 1000: Since(999) reset %v upTo %d", reset, upTo)
	}
	b.Append(Event{Type: "kick"})
	if ev, reset, _, _ := b.Since(17); !reset || len(ev) != 1 || ev[0].ID != 1000 {
		t.Errorf("Since(17) from 1000 = %v reset %v, want a reset and event 1000", ev, reset)
	}
}

// TestRegistryMaxAge: a session ends at its maximum age whatever its
// credential says, a renewal keeps the first start's bound, and the
// per-provider counts follow renewals and ends.
func TestRegistryMaxAge(t *testing.T) {
	clk := testkit.NewClock(time.Unix(1_700_000_000, 0))
	r := NewRegistry[string](10, time.Hour, clk.Now)
	start := clk.Now()
	if err := r.Add(Session[string]{ID: "s", Player: "p", Provider: "kakao-games", Expires: start.Add(5 * time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if s, ok := get(r, "s"); !ok || !s.Expires.Equal(start.Add(time.Hour)) || !s.Since.Equal(start) {
		t.Fatalf("Get = %+v %v, want since now, ending at the maximum age", s, ok)
	}
	clk.Add(30 * time.Minute)
	// Renewed under another provider, with no end of its own.
	if err := r.Add(Session[string]{ID: "s", Player: "p", Provider: "kakao-login"}); err != nil {
		t.Fatal(err)
	}
	if s, _ := get(r, "s"); !s.Expires.Equal(start.Add(time.Hour)) || !s.Since.Equal(start) {
		t.Errorf("renewed: %+v, want the first start's bound", s)
	}
	if c := r.ByProvider(); len(c) != 1 || c["kakao-login"] != 1 {
		t.Errorf("ByProvider after a renewal = %v", c)
	}
	s, _ := get(r, "s")
	r.Validated(s, clk.Now(), clk.Now().Add(10*time.Minute))
	if s, _ := get(r, "s"); !s.Expires.Equal(clk.Now().Add(10 * time.Minute)) {
		t.Errorf("revalidated with a credential ending in 10m: ends %v", s.Expires)
	}
	clk.Add(11 * time.Minute)
	if _, ok := get(r, "s"); ok {
		t.Error("a session past its credential's end is live")
	}
	if r.Expire() != 1 || len(r.ByProvider()) != 0 {
		t.Errorf("after Expire: %v", r.ByProvider())
	}
}

// TestRegistryGenerations: what a revalidation learnt of a session
// applies to that session alone, not to one renewed or registered again
// under its id meanwhile; a kick ends only sessions validated before it.
func TestRegistryGenerations(t *testing.T) {
	clk := testkit.NewClock(time.Unix(1_700_000_000, 0))
	r := NewRegistry[string](10, time.Hour, clk.Now)
	r.Add(Session[string]{ID: "room-7", Player: "pa", Provider: "kakao-games", LastValidated: clk.Now(), Cred: "old"})
	asked, _ := get(r, "room-7")
	r.Remove("room-7")
	r.Add(Session[string]{ID: "room-7", Player: "pb", Provider: "kakao-games", LastValidated: clk.Now(), Cred: "pb's"})
	if r.EndSession(asked) {
		t.Error("a revalidation of pa's room-7 ended pb's room-7")
	}
	clk.Add(time.Minute)
	r.Validated(asked, clk.Now(), clk.Now().Add(time.Minute))
	if s, _ := get(r, "room-7"); !s.LastValidated.Equal(clk.Now().Add(-time.Minute)) {
		t.Error("a revalidation of pa's room-7 marked pb's validated")
	}
	// A renewal (the same player, a new credential) is another session too.
	cur, _ := get(r, "room-7")
	r.Add(Session[string]{ID: "room-7", Player: "pb", Provider: "kakao-games", LastValidated: clk.Now(), Cred: "new"})
	if r.EndSession(cur) {
		t.Error("a revalidation of the old credential ended the renewed session")
	}
	renewed, _ := get(r, "room-7")
	// A kick made before the renewal's validation leaves it.
	if ended := r.EndPlayer("pb", "", clk.Now().Add(-time.Second)); len(ended) != 0 {
		t.Errorf("a kick from before the session's last validation ended %+v", ended)
	}
	if ended := r.EndPlayer("pb", "", clk.Now().Add(time.Second)); len(ended) != 1 {
		t.Errorf("a kick after it ended %+v, want room-7", ended)
	}
	if r.EndSession(renewed) {
		t.Error("EndSession of a session a kick ended says it ended it")
	}
}

// BenchmarkRegistryAdd is a session's registration (a connect with a
// sessionId) into a registry of 100,000 with revalidation on, and the
// heap each session costs with a 200-byte credential (bytes/session: the
// figure behind sizing -max-sessions).
func BenchmarkRegistryAdd(b *testing.B) {
	const n = 100_000
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("room-%06d", i)
	}
	for b.Loop() {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		r := NewRegistry[[]byte](n, 24*time.Hour, nil)
		r.Revalidate(10 * time.Minute)
		for i, id := range ids {
			r.Add(Session[[]byte]{ID: id, Player: ids[(i+1)%n][5:], Provider: "kakao-games", Cred: make([]byte, 200)})
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/n, "bytes/session")
		runtime.KeepAlive(r)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/add")
}

package sessions

import (
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

func liveSessions(r *Registry[string], n int, player func(i int) string) {
	for i := range n {
		r.Add(Session[string]{ID: "s" + string(rune('a'+i)), Player: player(i), Provider: "kakao-games", Since: time.Now(), Expires: time.Now().Add(24 * time.Hour), Cred: "tok"})
	}
}

// TestRevalidatorRound: every session is asked once a round, spread over
// it; a kick is handed on, an unknown keeps the session.
func TestRevalidatorRound(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		reg := NewRegistry[string](100, 48*time.Hour, nil)
		liveSessions(reg, 10, func(i int) string { return string(rune('A' + i)) })
		var mu sync.Mutex
		asked := map[string]int{}
		var kicked []string
		rv := &Revalidator[string]{Registry: reg, Every: 10 * time.Second, MaxRPS: 100,
			Validate: func(s Session[string]) (Verdict, time.Time) {
				mu.Lock()
				defer mu.Unlock()
				asked[s.ID]++
				switch s.ID {
				case "sc":
					kicked = append(kicked, s.ID)
					reg.EndSession(s)
					return Kick, time.Time{}
				case "sd":
					return Unknown, time.Time{}
				}
				return Keep, time.Now().Add(time.Hour)
			},
		}
		stop := make(chan struct{})
		go rv.Run(stop)
		time.Sleep(4 * time.Second)
		synctest.Wait()
		mu.Lock()
		early := len(asked)
		mu.Unlock()
		if early == 0 || early >= 10 {
			t.Errorf("after 4s of a 10s round %d sessions asked, want them spread over the round", early)
		}
		time.Sleep(6*time.Second + time.Millisecond)
		synctest.Wait()
		mu.Lock()
		if len(asked) != 10 || len(kicked) != 1 || kicked[0] != "sc" {
			t.Errorf("after a round: asked %v, kicked %v", asked, kicked)
		}
		mu.Unlock()
		if len(reg.ByPlayer("C")) != 0 || len(reg.ByPlayer("D")) != 1 {
			t.Error("the kicked session stayed, or the unknown one went")
		}
		close(stop)
	})
}

// TestRevalidatorRate: never faster than MaxRPS, however short the round.
func TestRevalidatorRate(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		reg := NewRegistry[string](100, 48*time.Hour, nil)
		liveSessions(reg, 20, func(i int) string { return "p" })
		var mu sync.Mutex
		calls := 0
		rv := &Revalidator[string]{Registry: reg, Every: time.Second, MaxRPS: 2,
			Validate: func(Session[string]) (Verdict, time.Time) {
				mu.Lock()
				calls++
				mu.Unlock()
				return Keep, time.Now().Add(time.Hour)
			}}
		stop := make(chan struct{})
		go rv.Run(stop)
		time.Sleep(5 * time.Second)
		synctest.Wait()
		mu.Lock()
		if calls > 11 || calls < 5 { // at 0, 0.5, ..., 5 s: 11 at most
			t.Errorf("%d validations in 5s at 2 a second", calls)
		}
		mu.Unlock()
		close(stop)
	})
}

// TestRevalidatorWithinARound: each session is asked within a round of
// the last time, and one that comes mid-round within a round of coming,
// however sessions come and go around it.
func TestRevalidatorWithinARound(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const round = 10 * time.Second
		reg := NewRegistry[string](1000, 48*time.Hour, nil)
		var mu sync.Mutex
		last := map[string]time.Time{}
		worst := time.Duration(0)
		rv := &Revalidator[string]{Registry: reg, Every: round, MaxRPS: 1000,
			Validate: func(s Session[string]) (Verdict, time.Time) {
				mu.Lock()
				defer mu.Unlock()
				since := s.Since
				if at, ok := last[s.ID]; ok {
					since = at
				}
				worst = max(worst, time.Since(since))
				last[s.ID] = time.Now()
				return Keep, time.Time{}
			}}
		stop := make(chan struct{})
		go rv.Run(stop)
		for i := range 60 {
			// A session comes every half second, and every third one
			// leaves again 7 s later.
			id := "s" + string(rune('A'+i))
			reg.Add(Session[string]{ID: id, Player: id, Provider: "kakao-games"})
			if i%3 == 0 {
				go func() {
					time.Sleep(7 * time.Second)
					reg.Remove(id)
				}()
			}
			time.Sleep(500 * time.Millisecond)
		}
		time.Sleep(3 * round)
		synctest.Wait()
		close(stop)
		mu.Lock()
		defer mu.Unlock()
		// The poll (a second) is the slack on a session that came while
		// the revalidator slept.
		if worst > round+poll {
			t.Errorf("a session waited %s for a revalidation, want at most a round (%s)", worst, round)
		}
		for i := range 60 {
			if id := "s" + string(rune('A'+i)); i%3 != 0 && last[id].IsZero() {
				t.Errorf("session %s, which stayed, was never asked", id)
			}
		}
	})
}

// TestRevalidatorConcurrent: validations that each wait on a slow
// upstream run side by side, never more than Concurrency at once, so the
// rate is MaxRPS's and not one over the upstream's latency.
func TestRevalidatorConcurrent(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		reg := NewRegistry[string](100, 48*time.Hour, nil)
		liveSessions(reg, 8, func(i int) string { return string(rune('A' + i)) })
		var mu sync.Mutex
		running, most, done := 0, 0, 0
		rv := &Revalidator[string]{Registry: reg, Every: time.Second, MaxRPS: 100, Concurrency: 4,
			Validate: func(Session[string]) (Verdict, time.Time) {
				mu.Lock()
				running++
				most = max(most, running)
				mu.Unlock()
				time.Sleep(time.Second) // the upstream
				mu.Lock()
				running--
				done++
				mu.Unlock()
				return Keep, time.Time{}
			}}
		stop := make(chan struct{})
		go rv.Run(stop)
		time.Sleep(3 * time.Second)
		synctest.Wait()
		mu.Lock()
		if most != 4 || done < 8 {
			t.Errorf("at most %d at once, %d done in 3s; want 4 at once and every session done (one at a time: 3)", most, done)
		}
		mu.Unlock()
		close(stop)
		time.Sleep(2 * time.Second) // Run waits for those under way
		synctest.Wait()
	})
}

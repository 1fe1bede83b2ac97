package main

import (
	"fmt"
	"time"

	"playerguard/validator/kakaogames/kakaogamestest"
)

// makePlayers returns n deterministic players of a scenario; claimID
// makes each claim its playerId (as a game server that knows it would).
func makePlayers(scenario string, n int, claimID bool) []player {
	ps := make([]player, n)
	for i := range ps {
		ps[i] = player{token: makeToken(scenario, i), platform: platforms[i%len(platforms)]}
		if claimID {
			ps[i].id = makePlayerID(i)
		}
	}
	return ps
}

// validateAll sends each player once, workers at a time, and returns the
// answers, latencies and errors in the players' order.
func validateAll(c *hclient, players []player, workers int) ([]reply, []time.Duration, []error) {
	replies := make([]reply, len(players))
	lats := make([]time.Duration, len(players))
	errs := make([]error, len(players))
	// Bounded by count; the time bound is a backstop.
	loop(workers, 10*time.Minute, int64(len(players)), func(_ int, i int64) {
		replies[i], lats[i], errs[i] = c.do(players[i], 10*time.Second, false)
	})
	return replies, lats, errs
}

func fromPlayerguardCache(r reply) bool { return r.source == "cache" }
func fromNginxCache(r reply) bool       { return r.cache == "HIT" }

// warm sends every player until each is answered allow from the cache
// (cached tells), in at most 5 passes. It returns how many were still not
// cached, and an error if any answer was not a 200.
func warm(c *hclient, players []player, workers int, cached func(reply) bool) (int, error) {
	todo := players
	for pass := 0; pass < 5 && len(todo) > 0; pass++ {
		replies, _, errs := validateAll(c, todo, workers)
		var next []player
		for i, r := range replies {
			if errs[i] != nil {
				return len(todo), fmt.Errorf("warming the cache (%s): %w", c.mode, errs[i])
			}
			if r.status != 200 {
				return len(todo), fmt.Errorf("warming the cache (%s): token %d answered %d %s/%s, want 200 allow", c.mode, i, r.status, r.decision, r.reason)
			}
			if !cached(r) {
				next = append(next, todo[i])
			}
		}
		todo = next
	}
	return len(todo), nil
}

// startAllowed starts a fake upstream (latency lat) that allows n players
// made for scenario, each claiming its playerId, and playerguard in front
// of it with flags. The caller closes the fake and stops playerguard.
func (e *env) startAllowed(scenario string, n int, lat time.Duration, flags ...string) (*kakaogamestest.Server, []player, *playerguard, error) {
	fake, err := kakaogamestest.Start(kakaogamestest.Config{Latency: lat})
	if err != nil {
		return nil, nil, nil, err
	}
	up := fake.Config()
	players := makePlayers(scenario, n, true)
	for _, p := range players {
		fake.Set(p.token, kakaogamestest.Allow(up.AppID, p.id, "normal"))
	}
	pg, err := e.startPlayerguard(up, fake.URL(), flags...)
	if err != nil {
		fake.Close()
		return nil, nil, nil, err
	}
	return fake, players, pg, nil
}

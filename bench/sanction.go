package main

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"time"

	"playerguard/validator/kakaogames/kakaogamestest"
)

// runSanction: a warm cache of o.players; every tenth player turns locked
// out or sanctioned upstream and is purged through POST /admin/purge. Each
// purged player's next connect must be a kick; everyone else must still
// be answered from the cache.
func runSanction(e *env, r *Report) error {
	o := e.o
	lat := o.latencyOr(30 * time.Millisecond)
	fake, players, pg, err := e.startAllowed("sanction", o.players, lat)
	if err != nil {
		return err
	}
	defer fake.Close()
	defer pg.stop(5 * time.Second)
	up := fake.Config()
	const workers = 32
	c := newHClient(pg.api, modeV1, workers, up)
	defer c.close()
	if left, err := warm(c, players, workers, fromPlayerguardCache); err != nil {
		return err
	} else if left != 0 {
		return fmt.Errorf("%d players still not cached after 5 passes", left)
	}

	// The wave: every tenth player, alternately locked out and sanctioned.
	wantReason := map[string]string{}
	var purged []player
	for i := 0; i < len(players); i += 10 {
		p := players[i]
		if (i/10)%2 == 0 {
			fake.Set(p.token, kakaogamestest.Lockout(up.AppID, p.id))
			wantReason[p.token] = "lockout"
		} else {
			fake.Set(p.token, kakaogamestest.Sanction(up.AppID, p.id))
			wantReason[p.token] = "sanction"
		}
		purged = append(purged, p)
	}
	r.setup("%s warm players (cached), fake upstream latency %v; %s of them (every tenth) turned locked out / sanctioned upstream, then purged by playerId",
		fmtInt(int64(len(players))), lat, fmtInt(int64(len(purged))))
	r.setup("purges: POST /admin/purge {\"playerId\"} with the bearer admin token, 8 at a time; then every player connects once (/v1/validate, %d at a time, shuffled)", workers)

	m0, err := pg.metrics()
	if err != nil {
		return err
	}
	purgeLat, purgeErrs, purgeSecs, firstPurgeErr := purgeAll(pg, purged, 8)
	m1, err := pg.metrics()
	if err != nil {
		return err
	}
	d := distOf(purgeLat)
	r.Rows = append(r.Rows, Row{Name: "purges (POST /admin/purge)", Requests: int64(len(purged)), RPS: float64(len(purged)) / purgeSecs,
		P50us: d.P50, P90us: d.P90, P99us: d.P99, MaxUs: d.Max, Errors: purgeErrs})
	r.check(kindCorrectness, "every purge accepted", "200 each", purgeErrs == 0, "%d failed%s", purgeErrs, errSuffix(firstPurgeErr))
	purges := m1.sum("playerguard_cache_purges_total") - m0.sum("playerguard_cache_purges_total")
	r.check(kindCorrectness, "purges counted in /metrics", fmt.Sprint(len(purged)), int(purges) == len(purged), "%.0f", purges)

	// Every player connects once, in a shuffled order.
	order := append([]player(nil), players...)
	rand.New(rand.NewPCG(3, 4)).Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
	calls0 := fake.Calls()
	u0 := snapshot(pg)
	start := time.Now()
	replies, lats, errs := validateAll(c, order, workers)
	secs := time.Since(start).Seconds()
	u1 := snapshot(pg)
	calls := fake.Calls() - calls0
	m2, err := pg.metrics()
	if err != nil {
		return err
	}
	var kickLat, hitLat []time.Duration
	var badKick, badHit int64
	var firstBad string
	for i, p := range order {
		rep := replies[i]
		if want, ok := wantReason[p.token]; ok {
			kickLat = append(kickLat, lats[i])
			if errs[i] != nil || rep.status != 403 || rep.decision != "kick" || rep.reason != want {
				badKick++
				firstBad = cmpOrStr(firstBad, fmt.Sprintf("purged player %s: %d %s/%s, want 403 kick/%s (%v)", p.id, rep.status, rep.decision, rep.reason, want, errs[i]))
			}
			continue
		}
		hitLat = append(hitLat, lats[i])
		if errs[i] != nil || rep.status != 200 || rep.source != "cache" {
			badHit++
			firstBad = cmpOrStr(firstBad, fmt.Sprintf("player %s: %d %s/%s source %q, want 200 allow from cache (%v)", p.id, rep.status, rep.decision, rep.reason, rep.source, errs[i]))
		}
	}
	all := distOf(lats)
	r.Rows = append(r.Rows, Row{Name: "connects after the wave (all players)", Requests: int64(len(order)), RPS: float64(len(order)) / secs,
		P50us: all.P50, P90us: all.P90, P99us: all.P99, MaxUs: all.Max, Errors: badKick + badHit, UpstreamCalls: i64(calls),
		CPUSeconds: f64(u1.cpu - u0.cpu), CPUusPerReq: f64((u1.cpu - u0.cpu) / float64(len(order)) * 1e6), PeakRSSMiB: mib(peakRSS(pg))})
	kd, hd := distOf(kickLat), distOf(hitLat)
	r.Rows = append(r.Rows,
		Row{Name: "  of which purged players (kick)", Requests: int64(kd.N), P50us: kd.P50, P90us: kd.P90, P99us: kd.P99, MaxUs: kd.Max, Errors: badKick},
		Row{Name: "  of which other players (cache)", Requests: int64(hd.N), P50us: hd.P50, P90us: hd.P90, P99us: hd.P99, MaxUs: hd.Max, Errors: badHit},
	)
	hits := m2.sum("playerguard_cache_hits_total") - m1.sum("playerguard_cache_hits_total")
	misses := m2.sum("playerguard_cache_misses_total") - m1.sum("playerguard_cache_misses_total")
	ratio := hits / (hits + misses)
	want := float64(len(players)-len(purged)) / float64(len(players))
	r.check(kindCorrectness, "each purged player's next connect is a kick (lockout / sanction)", fmt.Sprint(len(purged)), badKick == 0,
		"%d of %d%s", len(purged)-int(badKick), len(purged), badSuffix(badKick, firstBad))
	r.check(kindCorrectness, "every other player still answered from the cache", fmt.Sprint(len(players)-len(purged)), badHit == 0,
		"%d of %d%s", len(players)-len(purged)-int(badHit), len(players)-len(purged), badSuffix(badHit, firstBad))
	r.check(kindCorrectness, "cache hit ratio from /metrics after the wave", fmt.Sprintf("= %.3f (unaffected share)", want),
		hits+misses > 0 && int(hits) == len(players)-len(purged) && int(misses) == len(purged),
		"%.3f (%.0f hits, %.0f misses)", ratio, hits, misses)
	r.check(kindCorrectness, "one upstream call per purged player", fmt.Sprint(len(purged)), calls == int64(len(purged)), "%d", calls)
	return nil
}

// purgeAll purges each player by playerId, workers at a time.
func purgeAll(pg *playerguard, players []player, workers int) (lat []time.Duration, errs int64, secs float64, first error) {
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: workers}}
	defer hc.CloseIdleConnections()
	lats := make([]time.Duration, len(players))
	fails := make([]error, len(players))
	start := time.Now()
	loop(workers, 5*time.Minute, int64(len(players)), func(_ int, i int64) {
		body := fmt.Sprintf(`{"playerId":%q}`, players[i].id)
		req, _ := http.NewRequest(http.MethodPost, "http://"+pg.ops+"/admin/purge", bytes.NewBufferString(body))
		req.Header.Set("Authorization", "Bearer "+pg.adminToken)
		req.Header.Set("Content-Type", "application/json")
		t0 := time.Now()
		resp, err := hc.Do(req)
		if err != nil {
			fails[i] = err
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		lats[i] = time.Since(t0)
		if resp.StatusCode != http.StatusOK {
			fails[i] = fmt.Errorf("status %d: %s", resp.StatusCode, b)
		}
	})
	secs = time.Since(start).Seconds()
	for i, err := range fails {
		if err != nil {
			errs++
			first = cmpOr(first, err)
			continue
		}
		lat = append(lat, lats[i])
	}
	return lat, errs, secs, first
}

func cmpOrStr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func badSuffix(n int64, first string) string {
	if n == 0 {
		return ""
	}
	return "; first: " + first
}

func errSuffix(err error) string {
	if err == nil {
		return ""
	}
	return "; first: " + err.Error()
}

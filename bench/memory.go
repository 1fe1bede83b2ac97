package main

import (
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"time"

	"playerguard/validator/kakaogames/kakaogamestest"
)

// runMemory: fill the cache with distinct allowed players, at the default
// bound and at a small one, and report RSS and the entries held.
func runMemory(e *env, r *Report) error {
	o := e.o
	fake, err := kakaogamestest.Start(kakaogamestest.Config{})
	if err != nil {
		return err
	}
	defer fake.Close()
	up := fake.Config()
	// Every token is an allow for one player; the requests claim no
	// playerId, so the fake's fixed player never mismatches. The cached
	// answer has the size of any player's.
	fake.SetDefault(kakaogamestest.Allow(up.AppID, "100000000000000", "normal"))
	workers := 128
	if o.smoke {
		workers = 16
	}
	r.setup("fake upstream: any token an allow, no latency; Go client (drop-in), %d connections, every request a new token", workers)
	r.setup("RSS idle: VmRSS 0.5s after start; after: VmRSS 1s after the fill (ristretto applies writes asynchronously); bytes/entry = (after - idle) / entries")
	r.setup("retained: of 2,000 filled players picked at random, how many are still answered from the cache")

	runs := []struct{ bound, fill int }{
		{1_000_000, o.memEntries},
		{o.memBound, o.memBoundFill},
	}
	tbl := Table{Title: "memory:", Header: []string{"run", "filled", "cache entries", "bound", "RSS idle MiB", "RSS after MiB", "peak RSS MiB", "Go heap in use MiB", "bytes/entry", "retained"}}
	for k, run := range runs {
		flags := []string{"-cache-max-entries", fmt.Sprint(run.bound)}
		pg, err := e.startPlayerguard(up, fake.URL(), flags...)
		if err != nil {
			return err
		}
		time.Sleep(500 * time.Millisecond)
		rssIdle := currentRSS(pg)
		c := newHClient(pg.api, modeDropIn, workers, up)
		label := fmt.Sprintf("fill %s players, -cache-max-entries %s", fmtInt(int64(run.fill)), fmtInt(int64(run.bound)))
		scen := fmt.Sprintf("mem%d", k)
		var errs, sent atomic.Int64
		rec := newRecorder(workers)
		fake.ResetCounts()
		u0 := snapshot(pg)
		stop := e.ticker("memory: "+label, sent.Load)
		start := time.Now()
		n := loop(workers, 10*time.Minute, int64(run.fill), func(w int, i int64) {
			sent.Add(1)
			p := player{token: makeToken(scen, int(i)), platform: platforms[i%4]}
			rep, d, err := c.do(p, 10*time.Second, false)
			rec.add(w, d)
			if err != nil || rep.status != 200 {
				errs.Add(1)
			}
		})
		secs := time.Since(start).Seconds()
		stop()
		u1 := snapshot(pg)
		calls := fake.Calls()
		time.Sleep(time.Second)
		m, err := pg.metrics()
		if err != nil {
			c.close()
			pg.stop(5 * time.Second)
			return err
		}
		entries := int64(m.sum("playerguard_cache_entries"))
		heap := int64(m.sum("go_memstats_heap_inuse_bytes"))
		rssAfter, peak := currentRSS(pg), peakRSS(pg)

		// Retention: a random sample of the filled players.
		rng := rand.New(rand.NewPCG(uint64(k), 9))
		sample := make([]player, min(2000, int(n)))
		for i := range sample {
			j := rng.IntN(int(n))
			sample[i] = player{token: makeToken(scen, j), platform: platforms[j%4]}
		}
		replies, _, _ := validateAll(c, sample, 32)
		var retained int
		for _, rep := range replies {
			if rep.source == "cache" {
				retained++
			}
		}
		c.close()
		pg.stop(5 * time.Second)

		d := distOf(rec.all())
		r.Rows = append(r.Rows, Row{Name: label, Requests: n, RPS: float64(n) / secs, P50us: d.P50, P90us: d.P90, P99us: d.P99, MaxUs: d.Max,
			Errors: errs.Load(), UpstreamCalls: i64(calls), CPUSeconds: f64(u1.cpu - u0.cpu), CPUusPerReq: f64((u1.cpu - u0.cpu) / float64(n) * 1e6),
			PeakRSSMiB: mib(peak)})
		perEntry := "-"
		if entries > 0 {
			perEntry = fmtInt((rssAfter - rssIdle) / entries)
		}
		tbl.Rows = append(tbl.Rows, []string{fmt.Sprint(k + 1), fmtInt(n), fmtInt(entries), fmtInt(int64(run.bound)),
			fmt.Sprintf("%.0f", float64(rssIdle)/(1<<20)), fmt.Sprintf("%.0f", float64(rssAfter)/(1<<20)), fmt.Sprintf("%.0f", float64(peak)/(1<<20)),
			fmt.Sprintf("%.0f", float64(heap)/(1<<20)), perEntry, fmt.Sprintf("%d/%d", retained, len(sample))})

		r.check(kindCorrectness, label+": every fill answered allow", "0 errors", errs.Load() == 0, "%d errors", errs.Load())
		r.check(kindCorrectness, label+": playerguard_cache_entries within -cache-max-entries", "≤ "+fmtInt(int64(run.bound)),
			entries <= int64(run.bound), "%s", fmtInt(entries))
		if k == 0 {
			want := int64(float64(min(run.fill, run.bound)) * 0.95)
			r.check(kindTarget, fmt.Sprintf("memory: %s players cached within the bound", fmtInt(int64(run.fill))),
				fmt.Sprintf("≥ 95%% held (%s) and ≤ %s", fmtInt(want), fmtInt(int64(run.bound))),
				entries >= want && entries <= int64(run.bound),
				"%s entries; RSS idle %.0f MiB, after %.0f MiB (peak %.0f MiB)", fmtInt(entries),
				float64(rssIdle)/(1<<20), float64(rssAfter)/(1<<20), float64(peak)/(1<<20))
		}
		e.logf("memory: %s: %s entries, RSS %s MiB idle -> %s MiB", label, fmtInt(entries), fmtInt(rssIdle>>20), fmtInt(rssAfter>>20))
	}
	r.Tables = append(r.Tables, tbl)
	return nil
}

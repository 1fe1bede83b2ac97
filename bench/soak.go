package main

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"playerguard/validator/kakaogames/kakaogamestest"
)

// soakSample is one reading of playerguard's own gauges.
type soakSample struct {
	at         time.Duration
	rss        float64 // process_resident_memory_bytes
	heap       float64 // go_memstats_heap_inuse_bytes
	goroutines float64 // go_goroutines
	fds        float64 // process_open_fds
}

// runSoak runs a mixed load for -soak-duration: cache hits, misses (a new
// token each), kicks, and a short upstream outage every third of the run,
// against a small cache so that eviction runs all the time. It samples
// playerguard's RSS, heap, goroutines and open file descriptors and fails
// if any of them keeps growing: the second half's peak may not exceed the
// first half's by more than a fixed slack (RSS and heap: 25% + 16 MiB;
// goroutines and descriptors: 50, about one per load connection, since
// both halves hold the same connections).
func runSoak(e *env, r *Report) error {
	o := e.o
	dur := o.soakDuration
	const (
		workers  = 24
		warmN    = 2_000
		kickN    = 200
		cacheMax = 5_000
	)
	fake, warm, pg, err := e.startAllowed("soak-warm", warmN, 5*time.Millisecond,
		"-cache-max-entries", fmt.Sprint(cacheMax), "-breaker-timeout", "1s", "-upstream-timeout", "500ms")
	if err != nil {
		return err
	}
	defer fake.Close()
	defer pg.stop(5 * time.Second)
	up := fake.Config()
	kicked := makePlayers("soak-kick", kickN, true)
	for i, p := range kicked {
		switch i % 3 {
		case 0:
			fake.Set(p.token, kakaogamestest.Lockout(up.AppID, p.id))
		case 1:
			fake.Set(p.token, kakaogamestest.Sanction(up.AppID, p.id))
		default:
			fake.Set(p.token, kakaogamestest.Invalid())
		}
	}
	fake.SetDefault(kakaogamestest.Allow(up.AppID, "soak-miss", "normal")) // every new token
	every := max(dur/30, time.Second)
	r.setup("%v of mixed load from %d workers (/v1/validate and drop-in): 70%% hits over %s warm players, 15%% misses (a new token each), 15%% kicks (lockout, sanction, invalid token); fake upstream latency 5ms",
		dur, workers, fmtInt(warmN))
	r.setup("an outage (upstream 500s) for the middle 10%% of each third of the run; playerguard with %s; gauges sampled every %v",
		"-cache-max-entries 5000 -breaker-timeout 1s -upstream-timeout 500ms", every)

	v1 := newHClient(pg.api, modeV1, workers, up)
	drop := newHClient(pg.api, modeDropIn, workers, up)
	defer v1.close()
	defer drop.close()

	var samples []soakSample
	var sampleErr error
	start := time.Now()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() { // the sampler
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			m, err := pg.metrics()
			if err != nil {
				sampleErr = err
			} else {
				samples = append(samples, soakSample{at: time.Since(start),
					rss: m.sum("process_resident_memory_bytes"), heap: m.sum("go_memstats_heap_inuse_bytes"),
					goroutines: m.sum("go_goroutines"), fds: m.sum("process_open_fds")})
			}
			select {
			case <-stop:
				return
			case <-t.C:
			}
		}
	})
	wg.Go(func() { // the outages, and keeping the fake's own bookkeeping bounded
		third := dur / 3
		for i := range 3 {
			select {
			case <-stop:
				return
			case <-time.After(time.Until(start.Add(time.Duration(i)*third + third*45/100))):
			}
			fake.SetOverride(&kakaogamestest.Verdict{Status: 500, Body: []byte(`{"desc":"Internal server error. (500.-1)"}`)})
			select {
			case <-stop:
				fake.SetOverride(nil)
				return
			case <-time.After(third / 10):
			}
			fake.SetOverride(nil)
			fake.ResetCounts()
		}
	})

	rec := newRecorder(workers)
	var n, errs, wrongAllow, wrongKick, misses atomic.Int64
	var firstWrong atomic.Value
	loop(workers, dur, 0, func(w int, i int64) {
		rng := rand.New(rand.NewPCG(uint64(w), uint64(i)))
		c := v1
		if i%2 == 1 {
			c = drop
		}
		var p player
		var kick bool
		switch x := rng.IntN(100); {
		case x < 70:
			p = warm[rng.IntN(len(warm))]
		case x < 85:
			p = player{token: fmt.Sprintf("soak-miss-%d-%d", w, i), platform: "pc"}
			misses.Add(1)
		default:
			p, kick = kicked[rng.IntN(len(kicked))], true
		}
		rep, lat, err := c.do(p, 5*time.Second, false)
		rec.add(w, lat)
		n.Add(1)
		switch {
		case err != nil:
			errs.Add(1)
		case kick && rep.decision == "allow":
			wrongAllow.Add(1)
			firstWrong.CompareAndSwap(nil, fmt.Sprintf("kicked player %s allowed (%s)", p.id, rep.source))
		case !kick && rep.decision == "kick":
			wrongKick.Add(1)
			firstWrong.CompareAndSwap(nil, fmt.Sprintf("player %s kicked (%s)", p.token, rep.reason))
		}
	})
	close(stop)
	wg.Wait()
	if sampleErr != nil && len(samples) < 4 {
		return fmt.Errorf("sampling /metrics: %v", sampleErr)
	}
	secs := time.Since(start).Seconds()
	u := snapshot(pg)
	d := distOf(rec.all())
	r.Rows = append(r.Rows, Row{Name: "mixed load", Requests: n.Load(), RPS: float64(n.Load()) / secs,
		P50us: d.P50, P90us: d.P90, P99us: d.P99, MaxUs: d.Max, Errors: errs.Load() + wrongAllow.Load() + wrongKick.Load(),
		CPUSeconds: f64(u.cpu), CPUusPerReq: f64(u.cpu / float64(n.Load()) * 1e6), PeakRSSMiB: mib(peakRSS(pg))})

	why := ""
	if v := firstWrong.Load(); v != nil {
		why = ": " + v.(string)
	}
	r.check(kindCorrectness, "no kicked player allowed, no allowed player kicked", "0", wrongAllow.Load()+wrongKick.Load() == 0,
		"%d allowed, %d kicked%s", wrongAllow.Load(), wrongKick.Load(), why)
	r.check(kindCorrectness, "every request answered", "0 transport errors", errs.Load() == 0, "%d", errs.Load())

	half := len(samples) / 2
	if half < 2 {
		return fmt.Errorf("only %d samples: run longer (-soak-duration)", len(samples))
	}
	first, second := samples[:half], samples[half:]
	peak := func(s []soakSample, f func(soakSample) float64) float64 {
		m := 0.0
		for _, x := range s {
			m = max(m, f(x))
		}
		return m
	}
	const mb = 1 << 20
	for _, g := range []struct {
		name  string
		f     func(soakSample) float64
		slack func(float64) float64
		unit  float64
		uname string
	}{
		{"RSS", func(s soakSample) float64 { return s.rss }, func(p float64) float64 { return p*1.25 + 16*mb }, mb, "MiB"},
		{"heap in use", func(s soakSample) float64 { return s.heap }, func(p float64) float64 { return p*1.25 + 16*mb }, mb, "MiB"},
		{"goroutines", func(s soakSample) float64 { return s.goroutines }, func(p float64) float64 { return p + 50 }, 1, ""},
		{"open file descriptors", func(s soakSample) float64 { return s.fds }, func(p float64) float64 { return p + 50 }, 1, ""},
	} {
		p1, p2 := peak(first, g.f), peak(second, g.f)
		r.check(kindCorrectness, g.name+" does not keep growing", fmt.Sprintf("2nd-half peak ≤ %.0f%s", g.slack(p1)/g.unit, g.uname),
			p2 <= g.slack(p1), "1st-half peak %.1f%s, 2nd-half peak %.1f%s, last %.1f%s",
			p1/g.unit, g.uname, p2/g.unit, g.uname, g.f(samples[len(samples)-1])/g.unit, g.uname)
	}
	last := samples[len(samples)-1]
	r.note("%d samples; last: RSS %.1f MiB, heap %.1f MiB, %.0f goroutines, %.0f open fds; %s misses filled and evicted a %s-entry cache",
		len(samples), last.rss/mb, last.heap/mb, last.goroutines, last.fds, fmtInt(misses.Load()), fmtInt(cacheMax))
	return nil
}

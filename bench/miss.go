package main

import (
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"time"

	"playerguard/validator/kakaogames/kakaogamestest"
)

// missSample is one measured run of the miss load against one target.
type missSample struct {
	d        dist
	requests int64
	errors   int64
	cpu      float64
	seconds  float64
}

// runMiss: every connect a new token, so every validation goes upstream.
// The no-sidecar peer ("direct") sends the same requests, with the
// secrets, straight to the fake; the latency playerguard adds is the
// difference of the medians, paired per round.
func runMiss(e *env, r *Report) error {
	o := e.o
	lat := o.latencyOr(30 * time.Millisecond)
	fake, err := kakaogamestest.Start(kakaogamestest.Config{Latency: lat})
	if err != nil {
		return err
	}
	defer fake.Close()
	up := fake.Config()
	const fixedPlayer = "100000000000000"
	// Any token is an allow for one player; the requests claim no playerId.
	fake.SetDefault(kakaogamestest.Allow(up.AppID, fixedPlayer, "normal"))
	pg, err := e.startPlayerguard(up, fake.URL())
	if err != nil {
		return err
	}
	defer pg.stop(5 * time.Second)
	r.setup("fake upstream latency %v; every request a token never seen before (no playerId claimed)", lat)
	r.setup("Go client (fasthttp), %d workers, each pausing a random think time (exponential, mean %v) between requests; the three targets interleaved request by request; %d round(s) of %v after %v warm-up, medians reported",
		o.connections, max(lat, time.Millisecond), o.rounds, o.duration, o.warmup)
	r.setup("added latency = p50(playerguard) - p50(direct) within each round; direct = the same client calling the fake itself, with the secrets")
	if o.errorRate > 0 {
		r.setup("-error-rate %.3f: that share of tokens is answered 500 upstream (expected: 503 from /v1/validate, the 500 passed through by drop-in and direct)", o.errorRate)
	}

	type target struct {
		name string
		c    *hclient
		pg   bool
	}
	targets := []target{
		{"playerguard /v1/validate", newHClient(pg.api, modeV1, o.connections, up), true},
		{"playerguard drop-in", newHClient(pg.api, modeDropIn, o.connections, up), true},
		{"direct (no sidecar)", newHClient(fake.Addr(), modeDirect, o.connections, up), false},
	}
	defer func() {
		for _, t := range targets {
			t.c.close()
		}
	}()

	var next atomic.Int64 // token number: never reused in the run
	failing := func(i int64) bool {
		// A fixed pseudo-random share of the tokens (Knuth's multiplicative hash).
		return o.errorRate > 0 && float64((uint64(i)*2654435761)%10000) < o.errorRate*10000
	}
	// Each worker pauses a random (exponential) think time between its
	// requests: without it the workers fall into lockstep (all send, wait
	// the upstream's latency, all send again) and the server sees bursts
	// that say more about the generator than about the server.
	think := max(lat, time.Millisecond)
	rngs := make([]*rand.Rand, o.connections)
	for w := range rngs {
		rngs[w] = rand.New(rand.NewPCG(uint64(w), 11))
	}
	// The targets are interleaved request by request, so that all three
	// are measured in the same moments: on a noisy machine, runs even
	// seconds apart differ by more than the few hundred microseconds
	// being measured.
	type outcome struct {
		rec      *recorder
		requests atomic.Int64
		errors   atomic.Int64
	}
	var sent atomic.Int64 // for the progress line
	drive := func(dur time.Duration, outs []*outcome) {
		loop(o.connections, dur, 0, func(w int, k int64) {
			defer time.Sleep(time.Duration(rngs[w].ExpFloat64() * float64(think)))
			sent.Add(1)
			ti := int(k % int64(len(targets)))
			t, out := targets[ti], outs[ti]
			i := next.Add(1)
			p := player{token: makeToken("miss", int(i)), platform: platforms[i%4]}
			want := 200
			if failing(i) {
				fake.Set(p.token, kakaogamestest.Error(500))
				want = 500
				if t.c.mode == modeV1 {
					want = 503
				}
			}
			rep, d, err := t.c.do(p, 10*time.Second, false)
			out.requests.Add(1)
			if err != nil || rep.status != want {
				out.errors.Add(1)
			}
			out.rec.add(w, d)
		})
	}
	newOutcomes := func() []*outcome {
		outs := make([]*outcome, len(targets))
		for i := range outs {
			outs[i] = &outcome{rec: newRecorder(o.connections)}
		}
		return outs
	}

	samples := map[string][]missSample{}
	var warmErrs, totalCalls, totalReqs, pgReqs int64
	var pgCPU []float64 // per round: playerguard CPU µs per request, both modes
	for round := range o.rounds {
		if o.warmup > 0 {
			outs := newOutcomes()
			drive(o.warmup, outs)
			for _, out := range outs {
				warmErrs += out.errors.Load()
			}
		}
		outs := newOutcomes()
		u0, c0 := snapshot(pg), fake.Calls()
		start := time.Now()
		sent.Store(0)
		stop := e.ticker(fmt.Sprintf("miss: round %d/%d", round+1, o.rounds), sent.Load)
		drive(o.duration, outs)
		stop()
		secs := time.Since(start).Seconds()
		cpu := snapshot(pg).cpu - u0.cpu
		totalCalls += fake.Calls() - c0
		var roundPG int64
		for i, t := range targets {
			s := missSample{d: distOf(outs[i].rec.all()), requests: outs[i].requests.Load(), errors: outs[i].errors.Load(), seconds: secs}
			totalReqs += s.requests
			if t.pg {
				roundPG += s.requests
			}
			samples[t.name] = append(samples[t.name], s)
			e.logf("miss: round %d/%d %-26s p50 %s  p99 %s  %d requests", round+1, o.rounds, t.name, fmtUs(s.d.P50), fmtUs(s.d.P99), s.requests)
		}
		pgReqs += roundPG
		pgCPU = append(pgCPU, cpu/float64(roundPG)*1e6)
		for _, t := range targets {
			if t.pg {
				samples[t.name][round].cpu = cpu
			}
		}
	}

	for _, t := range targets {
		ss := samples[t.name]
		row := Row{Name: t.name}
		var rps, p50, p90, p99, mx, cpu []float64
		for _, s := range ss {
			row.Requests += s.requests
			row.Errors += s.errors
			rps = append(rps, float64(s.requests)/s.seconds)
			p50, p90, p99, mx = append(p50, s.d.P50), append(p90, s.d.P90), append(p99, s.d.P99), append(mx, s.d.Max)
			cpu = append(cpu, s.cpu)
		}
		row.RPS, row.P50us, row.P90us, row.P99us, row.MaxUs = median(rps), median(p50), median(p90), median(p99), median(mx)
		row.RoundsRPS = rps
		if t.pg {
			row.CPUSeconds, row.CPUusPerReq, row.PeakRSSMiB = f64(median(cpu)), f64(median(pgCPU)), mib(peakRSS(pg))
		} else {
			row.UpstreamCalls = i64(row.Requests) // each direct request is one upstream call
		}
		r.check(kindCorrectness, t.name+": every answer as expected", "0 errors", row.Errors == 0, "%d errors", row.Errors)
		r.Rows = append(r.Rows, row)
	}
	r.setup("CPU columns: playerguard's CPU over both of its modes together (their requests are interleaved), per playerguard request; upstream calls are checked for both modes together below")
	// Measured runs only: the direct requests are one call each, so the
	// rest of the calls are playerguard's, and each of its misses must be
	// exactly one.
	r.check(kindCorrectness, "playerguard: one upstream call per miss", "calls = requests", totalCalls-(totalReqs-pgReqs) == pgReqs,
		"%s calls for %s requests", fmtInt(totalCalls-(totalReqs-pgReqs)), fmtInt(pgReqs))
	r.check(kindCorrectness, "warm-up answers as expected", "0 errors", warmErrs == 0, "%d errors", warmErrs)

	direct := samples["direct (no sidecar)"]
	for _, name := range []string{"playerguard drop-in", "playerguard /v1/validate"} {
		var added []float64
		for i, s := range samples[name] {
			if i < len(direct) {
				added = append(added, s.d.P50-direct[i].d.P50)
			}
		}
		v := median(added)
		r.Ratios = append(r.Ratios, Ratio{Name: "added p50 latency, µs: " + name + " - direct", Value: v, Rounds: added})
		overConfigured := median(collect(samples[name], func(s missSample) float64 { return s.d.P50 })) - float64(lat/time.Microsecond)
		r.check(kindTarget, "miss "+name+": median latency added over the upstream's", "< 200µs", v < 200,
			"%s vs direct (%s over the fake's configured %v)", fmtUs(v), fmtUs(overConfigured), lat)
	}
	return nil
}

func collect[T any](xs []T, f func(T) float64) []float64 {
	out := make([]float64, len(xs))
	for i, x := range xs {
		out[i] = f(x)
	}
	return out
}

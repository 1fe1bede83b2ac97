package main

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"sync/atomic"
	"time"

	"playerguard/validator/iamport/iamporttest"
	"playerguard/validator/kakaogames/kakaogamestest"
	"playerguard/validator/kakaologin/kakaologintest"
	"playerguard/validator/kakaooidc/kakaooidctest"
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
// difference of the medians, paired per round. Each round then runs the
// same load over kakao-login (/v1/kakao-login/validate and its own
// no-sidecar peer against the Kakao Login fake) in a phase of its own, and
// then over kakao-oidc: -oidc-miss-tokens ID tokens never seen before,
// signed at set-up, interleaved with a no-sidecar peer that verifies each
// token in the bench's own process; and then over the iamport age gate:
// every request an imp_uid never sent before, against an i'mport fake
// behind a proxy that adds the same latency, interleaved with a
// no-sidecar peer calling the fake (through the same proxy) itself.
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
	// The same for Kakao Login: any token is one user's, answered after
	// the same latency.
	kl, err := kakaologintest.Start()
	if err != nil {
		return err
	}
	defer kl.Close()
	kl.SetDefault(klValid(fixedPlayer, lat))
	// kakao-oidc: every request a token never sent before, each signed at
	// set-up: the measured ones and, when there is a warm-up, two per
	// worker for each round's (the start's burst).
	oidc, err := kakaooidctest.Start()
	if err != nil {
		return err
	}
	defer oidc.Close()
	oidcWarm := 0
	if o.warmup > 0 {
		oidcWarm = 2 * o.connections
	}
	// And 2 × -oidc-miss-tokens for the saturated run after the rounds.
	nOIDC := o.rounds*(o.oidcMissTokens+oidcWarm) + 2*o.oidcMissTokens
	e.logf("miss: signing %s kakao-oidc ID tokens", fmtInt(int64(nOIDC)))
	oidcToks := signOIDC(oidc, 5_000_000_000, nOIDC, false)
	oidcDirectPeer, err := newOIDCDirect(oidc)
	if err != nil {
		return err
	}
	// iamport: the fake answers at once, so a delaying proxy in front of
	// it adds the upstream latency, for playerguard and the direct peer
	// alike. Every request is a new imp_uid, a certified adult, made known
	// to the fake just before it is sent. The direct peer's access token
	// is fetched once, before playerguard starts (so the fake's one other
	// token call is playerguard's).
	ia, err := iamporttest.Start(iaKey, iaSecret)
	if err != nil {
		return err
	}
	defer ia.Close()
	iaProxy, err := startDelayProxy(ia.URL(), lat)
	if err != nil {
		return err
	}
	defer iaProxy.Close()
	iaAuth, err := iaToken(iaProxy.URL())
	if err != nil {
		return err
	}
	iaTokens0 := ia.TokenCalls() // the direct peer's
	iaCertAt := time.Now().Add(-time.Minute).Unix()
	pgFlags := append(append(kakaoLoginFlags(kl), kakaoOIDCFlags(oidc)...), iamportFlags(iaProxy.URL())...)
	pg, err := e.startPlayerguardEnv(up, fake.URL(), iamportEnv(), pgFlags...)
	if err != nil {
		return err
	}
	defer pg.stop(5 * time.Second)
	if err := waitOIDCReady(pg); err != nil {
		return err
	}
	oidcFetches0 := oidc.Fetches() // the start-up fetch
	r.setup("fake upstream latency %v; every request a token never seen before (no playerId claimed)", lat)
	r.setup("Go client (fasthttp), %d workers, each pausing a random think time (exponential, mean %v) between requests; the three targets interleaved request by request; %d round(s) of %v after %v warm-up, medians reported",
		o.connections, max(lat, time.Millisecond), o.rounds, o.duration, o.warmup)
	r.setup("added latency = p50(playerguard) - p50(direct) within each round; direct = the same client calling the fake itself, with the secrets")
	r.setup("kakao-login: playerguard runs both providers (-kakao-login-app-id %s -kakao-login-api <in-process kakaologintest fake>); each round, after the Kakao Games phase, the same load (workers, think time, warm-up, duration) in a phase of its own, two targets interleaved request by request: %s ({\"accessToken\"} only, a new token each time) and %s, the same client calling the Kakao Login fake's GET %s itself with the bearer token; the fake answers every token allow (expires_in %ds) after the same %v",
		klAppID, klMiss, klMissDirect, klInfoPath, klExpiresIn, lat)
	r.setup("kakao-oidc: playerguard also runs -kakao-oidc-audiences %s -kakao-oidc-jwks-url <in-process kakaooidctest key set>; each round, after the kakao-login phase, the same workers and think time in a phase of its own, two targets interleaved request by request: %s ({\"idToken\"} only, each a token never sent before: %s per round, signed at set-up with the fake's 2048-bit key, every one an allow), and %s, the same worker verifying a token itself with golang-jwt (RS256; iss, aud, exp, iat) in the bench's process, no network; the phase ends after %s requests to playerguard (plus %d unmeasured in its warm-up) or -duration, whichever comes first",
		oidcAudience, oidcMiss, fmtInt(int64(o.oidcMissTokens)), oidcMissDirect, fmtInt(int64(o.oidcMissTokens)), oidcWarm)
	r.setup("iamport: playerguard also runs the age gate (PLAYERGUARD_IAMPORT_KEY, PLAYERGUARD_IAMPORT_SECRET, -iamport-api <a delaying proxy in front of the in-process iamporttest fake>; the fake answers at once, the proxy (bench/delayproxy.go) holds every request %v first); each round, after the kakao-oidc phase, the same load as kakao-login's (workers, think time, warm-up, duration) in a phase of its own, two targets interleaved request by request: %s ({\"impUid\",\"playerId\",\"minAge\":%d}, every request an imp_uid never sent before, each a certified adult born %s, each with its own playerId: every answer must be exactly %s) and %s, the same client calling GET %s{imp_uid} through the same proxy itself, with an access token it fetched once at set-up",
		lat, iaMiss, iaMinAge, iaBirthday, iaAllowBody(iaCertAt), iaMissDirect, iaCertPath)
	if o.errorRate > 0 {
		r.setup("-error-rate %.3f: that share of tokens is answered 500 upstream (expected: 503 from /v1/validate, the 500 passed through by drop-in and direct)", o.errorRate)
		r.setup("kakao-login, -error-rate %.3f: the same share of its tokens answered 500 by the Kakao Login fake (expected: 503 from %s, the 500 passed through by %s)", o.errorRate, klPath, klMissDirect)
		r.setup("kakao-oidc: -error-rate does not apply (no upstream call per token)")
		r.setup("iamport: -error-rate does not apply (the fake fails every certification or none)")
	}

	type target struct {
		name string
		c    doer
		pg   bool
		// failWant is the status expected for a token the upstream answers 500.
		failWant int
		// allow checks the answer to a token the upstream allows.
		allow func(reply) bool
	}
	status200 := func(rep reply) bool { return rep.status == 200 }
	// A kakao-login miss must be an allow from the upstream.
	fromUpstream := func(rep reply) bool {
		return rep.status == 200 && rep.decision == "allow" && rep.source == "upstream"
	}
	// phase is one set of targets interleaved request by request, and the
	// fake their misses reach.
	type phase struct {
		label   string // progress lines
		targets []target
		// newP is request number i of the phase, to its target number ti.
		newP func(ti int, i int64) player
		// fail scripts the upstream's 500 for token (nil: -error-rate
		// does not apply).
		fail  func(token string)
		calls func() int64
		// count, if positive, bounds each measured run's requests (and
		// warm, the warm-up's) besides the duration.
		count, warm int64
		// preciseCPU: playerguard's CPU from its CPU-time clock (ns), not
		// /proc ticks (10 ms); spread: each worker starting after a think
		// time, not all at once (short runs).
		preciseCPU, spread bool
		// keepBody: read each answer's body (for allow).
		keepBody bool
		next     atomic.Int64 // token number: never reused in the run
		samples  map[string][]missSample
		warmErrs int64
		// Measured runs: the fake's calls, all requests, playerguard's.
		totalCalls, totalReqs, pgReqs int64
		pgCPU                         []float64 // per round: playerguard CPU µs per request
		pgCPUs                        float64   // playerguard CPU seconds over the measured runs
	}
	kg := &phase{
		label: "miss",
		targets: []target{
			{"playerguard /v1/validate", newHClient(pg.api, modeV1, o.connections, up), true, 503, status200},
			{"playerguard drop-in", newHClient(pg.api, modeDropIn, o.connections, up), true, 500, status200},
			{"direct (no sidecar)", newHClient(fake.Addr(), modeDirect, o.connections, up), false, 500, status200},
		},
		newP:  func(_ int, i int64) player { return player{token: makeToken("miss", int(i)), platform: platforms[i%4]} },
		fail:  func(tok string) { fake.Set(tok, kakaogamestest.Error(500)) },
		calls: fake.Calls,
	}
	klFail := kakaologintest.Code(500, -1, "internal error")
	klFail.Delay = lat
	klm := &phase{
		label: "miss kakao-login",
		targets: []target{
			{klMiss, newHClient(pg.api, modeKakaoLogin, o.connections, up), true, 503, fromUpstream},
			{klMissDirect, newHClient(strings.TrimPrefix(kl.URL(), "http://"), modeKakaoLoginDirect, o.connections, up), false, 500, status200},
		},
		newP:  func(_ int, i int64) player { return player{token: makeToken("miss-kl", int(i))} },
		fail:  func(tok string) { kl.Set(tok, klFail) },
		calls: kl.Calls,
	}
	// kakao-oidc: playerguard's requests take the signed tokens in order,
	// each once; the direct peer, which caches nothing, verifies any.
	var oidcNext atomic.Int64
	om := &phase{
		label: "miss kakao-oidc",
		targets: []target{
			{oidcMiss, newHClient(pg.api, modeKakaoOIDC, o.connections, up), true, 0, fromUpstream},
			{oidcMissDirect, oidcDirectPeer, false, 0, status200},
		},
		newP: func(ti int, i int64) player {
			if ti == 1 {
				return oidcToks[int(i)%len(oidcToks)].player
			}
			n := int(oidcNext.Add(1) - 1)
			if n >= len(oidcToks) {
				return player{token: "bench-ran-out-of-signed-tokens"} // counted an error
			}
			return oidcToks[n].player
		},
		calls: oidc.Fetches,
		// Two targets alternate: twice as many requests as tokens.
		count: 2 * int64(o.oidcMissTokens), warm: 2 * int64(oidcWarm),
		preciseCPU: true, spread: true,
	}
	iaDirect := newHClient(iaProxy.Addr(), modeIamportDirect, o.connections, up)
	iaDirect.auth = iaAuth
	iaWant := iaAllowBody(iaCertAt)
	iam := &phase{
		label: "miss iamport",
		targets: []target{
			{iaMiss, newHClient(pg.api, modeIamport, o.connections, up), true, 0, func(rep reply) bool { return rep.status == 200 && string(rep.body) == iaWant }},
			{iaMissDirect, iaDirect, false, 0, status200},
		},
		// Request number i of the phase: imp_uid number i, made known to
		// the fake now.
		newP: func(_ int, i int64) player {
			ia.Set(iaPlayer(i).token, iaCert(i, iaCertAt))
			return iaPlayer(i)
		},
		calls:      ia.CertCalls,
		preciseCPU: true,
		keepBody:   true,
	}
	phases := []*phase{kg, klm, om, iam}
	defer func() {
		for _, ph := range phases {
			for _, t := range ph.targets {
				t.c.close()
			}
		}
	}()

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
	drive := func(ph *phase, dur time.Duration, n int64, outs []*outcome) {
		started := make([]bool, o.connections)
		loop(o.connections, dur, n, func(w int, k int64) {
			if ph.spread && !started[w] {
				// Spread the start: 64 requests at once would be a
				// burst of queued verifications in a short run.
				started[w] = true
				time.Sleep(time.Duration(rngs[w].ExpFloat64() * float64(think)))
			}
			defer time.Sleep(time.Duration(rngs[w].ExpFloat64() * float64(think)))
			sent.Add(1)
			ti := int(k % int64(len(ph.targets)))
			t, out := ph.targets[ti], outs[ti]
			i := ph.next.Add(1)
			p := ph.newP(ti, i)
			fails := ph.fail != nil && failing(i)
			if fails {
				ph.fail(p.token)
			}
			rep, d, err := t.c.do(p, 10*time.Second, ph.keepBody)
			out.requests.Add(1)
			if err != nil || (fails && rep.status != t.failWant) || (!fails && !t.allow(rep)) {
				out.errors.Add(1)
			}
			out.rec.add(w, d)
		})
	}
	newOutcomes := func(ph *phase) []*outcome {
		outs := make([]*outcome, len(ph.targets))
		for i := range outs {
			outs[i] = &outcome{rec: newRecorder(o.connections)}
		}
		return outs
	}

	for _, ph := range phases {
		ph.samples = map[string][]missSample{}
	}
	for round := range o.rounds {
		for _, ph := range phases {
			if o.warmup > 0 {
				outs := newOutcomes(ph)
				drive(ph, o.warmup, ph.warm, outs)
				for _, out := range outs {
					ph.warmErrs += out.errors.Load()
				}
			}
			outs := newOutcomes(ph)
			cpuNow := func() float64 { return snapshot(pg).cpu }
			if ph.preciseCPU {
				cpuNow = func() float64 { return cpuClock(pg) }
			}
			u0, c0 := cpuNow(), ph.calls()
			start := time.Now()
			sent.Store(0)
			stop := e.ticker(fmt.Sprintf("%s: round %d/%d", ph.label, round+1, o.rounds), sent.Load)
			drive(ph, o.duration, ph.count, outs)
			stop()
			secs := time.Since(start).Seconds()
			cpu := cpuNow() - u0
			ph.totalCalls += ph.calls() - c0
			var roundPG int64
			for i, t := range ph.targets {
				s := missSample{d: distOf(outs[i].rec.all()), requests: outs[i].requests.Load(), errors: outs[i].errors.Load(), seconds: secs}
				ph.totalReqs += s.requests
				if t.pg {
					roundPG += s.requests
				}
				ph.samples[t.name] = append(ph.samples[t.name], s)
				e.logf("%s: round %d/%d %-36s p50 %s  p99 %s  %d requests", ph.label, round+1, o.rounds, t.name, fmtUs(s.d.P50), fmtUs(s.d.P99), s.requests)
			}
			ph.pgReqs += roundPG
			ph.pgCPUs += cpu
			ph.pgCPU = append(ph.pgCPU, cpu/float64(roundPG)*1e6)
			for _, t := range ph.targets {
				if t.pg {
					ph.samples[t.name][round].cpu = cpu
				}
			}
		}
	}

	for _, ph := range phases {
		for _, t := range ph.targets {
			ss := ph.samples[t.name]
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
				row.CPUSeconds, row.CPUusPerReq, row.PeakRSSMiB = f64(median(cpu)), f64(median(ph.pgCPU)), mib(peakRSS(pg))
				switch ph {
				case klm, iam:
					// kakao-login (iamport) is the only playerguard target
					// of its phase: the rest of the fake's calls are its own.
					row.UpstreamCalls = i64(ph.totalCalls - (ph.totalReqs - ph.pgReqs))
				case om:
					row.UpstreamCalls = i64(ph.totalCalls) // key fetches
				}
			} else if ph == om {
				row.UpstreamCalls = i64(0) // verified in-process
			} else {
				row.UpstreamCalls = i64(row.Requests) // each direct request is one upstream call
			}
			r.check(kindCorrectness, t.name+": every answer as expected", "0 errors", row.Errors == 0, "%d errors", row.Errors)
			r.Rows = append(r.Rows, row)
		}
	}
	// kakao-oidc at saturation, once after the rounds: the same workers
	// without think time, playerguard only, 2 × -oidc-miss-tokens new
	// tokens: the CPU per miss when requests queue, not each one waking
	// the process up.
	satFetches0 := oidc.Fetches()
	var sat Row
	var satCPU float64
	{
		c := om.targets[0].c
		rec := newRecorder(o.connections)
		var reqs, errs atomic.Int64
		cpu0 := cpuClock(pg)
		start := time.Now()
		stop := e.ticker("miss kakao-oidc: saturated", reqs.Load)
		loop(o.connections, o.duration, 2*int64(o.oidcMissTokens), func(w int, _ int64) {
			rep, d, err := c.do(om.newP(0, 0), 10*time.Second, false)
			reqs.Add(1)
			if err != nil || !fromUpstream(rep) {
				errs.Add(1)
			}
			rec.add(w, d)
		})
		stop()
		secs := time.Since(start).Seconds()
		satCPU = cpuClock(pg) - cpu0
		d := distOf(rec.all())
		sat = Row{Name: oidcSat, Requests: reqs.Load(), RPS: float64(reqs.Load()) / secs, P50us: d.P50, P90us: d.P90, P99us: d.P99, MaxUs: d.Max,
			Errors: errs.Load(), UpstreamCalls: i64(oidc.Fetches() - satFetches0), CPUSeconds: f64(satCPU),
			CPUusPerReq: f64(satCPU / float64(reqs.Load()) * 1e6), PeakRSSMiB: mib(peakRSS(pg))}
		e.logf("miss kakao-oidc: saturated %s  %.0f req/s  p50 %s  p99 %s  %d requests", oidcSat, sat.RPS, fmtUs(d.P50), fmtUs(d.P99), sat.Requests)
		r.check(kindCorrectness, oidcSat+": every answer as expected", "0 errors", sat.Errors == 0, "%d errors", sat.Errors)
		r.Rows = append(r.Rows, sat)
	}
	r.setup("%s: once after the rounds, the same %d workers without think time (closed loop), playerguard only, %s more new tokens (or -duration); its CPU from the CPU-time clock as the phase's", oidcSat, o.connections, fmtInt(2*int64(o.oidcMissTokens)))

	r.setup("CPU columns: playerguard's CPU over both of its modes together (their requests are interleaved), per playerguard request; upstream calls are checked for both modes together below")
	r.setup("%s: its CPU is playerguard's over the kakao-login phase, per kakao-login request; its upstream calls are the Kakao Login fake's in the measured runs, less the direct ones", klMiss)
	// Measured runs only: the direct requests are one call each, so the
	// rest of the calls are playerguard's, and each of its misses must be
	// exactly one.
	r.check(kindCorrectness, "playerguard: one upstream call per miss", "calls = requests", kg.totalCalls-(kg.totalReqs-kg.pgReqs) == kg.pgReqs,
		"%s calls for %s requests", fmtInt(kg.totalCalls-(kg.totalReqs-kg.pgReqs)), fmtInt(kg.pgReqs))
	r.check(kindCorrectness, "warm-up answers as expected", "0 errors", kg.warmErrs == 0, "%d errors", kg.warmErrs)
	r.check(kindCorrectness, "kakao-login: one upstream call per miss ("+klPath+")", "calls = requests", klm.totalCalls-(klm.totalReqs-klm.pgReqs) == klm.pgReqs,
		"%s calls for %s requests", fmtInt(klm.totalCalls-(klm.totalReqs-klm.pgReqs)), fmtInt(klm.pgReqs))
	r.check(kindCorrectness, "kakao-login warm-up answers as expected", "0 errors", klm.warmErrs == 0, "%d errors", klm.warmErrs)
	r.setup("%s: its CPU is playerguard's over the kakao-oidc phase, per kakao-oidc request (every one a miss: a full verification), read from playerguard's CPU-time clock (clock_getcpuclockid(3), nanoseconds: /proc's 10 ms ticks are coarse for a phase of a few tenths of a CPU second); its upstream calls are the key set fetches in the measured runs", oidcMiss)
	fetches := oidc.Fetches()
	r.check(kindCorrectness, "kakao-oidc: no key fetch beyond the start-up one (miss, saturated run included)", "1 fetch in all", oidcFetches0 == 1 && fetches == oidcFetches0,
		"%d in all (%d by the time the provider was ready)", fetches, oidcFetches0)
	r.check(kindCorrectness, "kakao-oidc: every request a token never sent before", "≤ the tokens signed", oidcNext.Load() <= int64(len(oidcToks)),
		"%s sent of %s signed", fmtInt(oidcNext.Load()), fmtInt(int64(len(oidcToks))))
	r.check(kindCorrectness, "kakao-oidc warm-up answers as expected", "0 errors", om.warmErrs == 0, "%d errors", om.warmErrs)
	r.setup("%s: its CPU is playerguard's over the iamport phase, per age gate request (every one a miss), from playerguard's CPU-time clock as kakao-oidc's; its upstream calls are the i'mport fake's certification calls in the measured runs, less the direct ones", iaMiss)
	r.check(kindCorrectness, "iamport: one certification call per miss (GET "+iaCertPath+"{imp_uid})", "calls = requests", iam.totalCalls-(iam.totalReqs-iam.pgReqs) == iam.pgReqs,
		"%s calls for %s requests", fmtInt(iam.totalCalls-(iam.totalReqs-iam.pgReqs)), fmtInt(iam.pgReqs))
	iaTokens := ia.TokenCalls()
	r.check(kindCorrectness, "iamport: 1 getToken call in all by playerguard (the token reused)", "1 call", iaTokens0 == 1 && iaTokens-iaTokens0 == 1,
		"%d (the fake's TokenCalls() %d in all, %d of them the direct peer's, at set-up)", iaTokens-iaTokens0, iaTokens, iaTokens0)
	r.check(kindCorrectness, "iamport warm-up answers as expected", "0 errors", iam.warmErrs == 0, "%d errors", iam.warmErrs)

	direct := kg.samples["direct (no sidecar)"]
	for _, name := range []string{"playerguard drop-in", "playerguard /v1/validate"} {
		var added []float64
		for i, s := range kg.samples[name] {
			if i < len(direct) {
				added = append(added, s.d.P50-direct[i].d.P50)
			}
		}
		v := median(added)
		r.Ratios = append(r.Ratios, Ratio{Name: "added p50 latency, µs: " + name + " - direct", Value: v, Rounds: added})
		overConfigured := median(collect(kg.samples[name], func(s missSample) float64 { return s.d.P50 })) - float64(lat/time.Microsecond)
		r.check(kindTarget, "miss "+name+": median latency added over the upstream's", "< 200µs", v < 200,
			"%s vs direct (%s over the fake's configured %v)", fmtUs(v), fmtUs(overConfigured), lat)
	}
	// kakao-login against its own no-sidecar peer: reported, no target.
	{
		klDirect := klm.samples[klMissDirect]
		var added []float64
		for i, s := range klm.samples[klMiss] {
			if i < len(klDirect) {
				added = append(added, s.d.P50-klDirect[i].d.P50)
			}
		}
		v := median(added)
		r.Ratios = append(r.Ratios, Ratio{Name: "added p50 latency, µs: " + klMiss + " - " + klMissDirect, Value: v, Rounds: added})
		overConfigured := median(collect(klm.samples[klMiss], func(s missSample) float64 { return s.d.P50 })) - float64(lat/time.Microsecond)
		r.note("%s: median latency added over the upstream's %s vs %s (%s over the Kakao Login fake's configured %v); no target set for this provider",
			klMiss, fmtUs(v), klMissDirect, fmtUs(overConfigured), lat)
	}
	// kakao-oidc: no upstream, so the latency added is playerguard's
	// round trip over the game server's own verification; and its CPU per
	// miss, whose inverse is the misses one core sustains.
	{
		oDirect := om.samples[oidcMissDirect]
		var added []float64
		for i, s := range om.samples[oidcMiss] {
			if i < len(oDirect) {
				added = append(added, s.d.P50-oDirect[i].d.P50)
			}
		}
		v := median(added)
		r.Ratios = append(r.Ratios, Ratio{Name: "added p50 latency, µs: " + oidcMiss + " - " + oidcMissDirect, Value: v, Rounds: added})
		perMiss := om.pgCPUs / float64(om.pgReqs) // CPU seconds
		perRound := make([]float64, len(om.pgCPU))
		for i, us := range om.pgCPU {
			perRound[i] = 1e6 / us
		}
		r.Ratios = append(r.Ratios, Ratio{Name: "verifications per second per core: 1 ÷ (" + oidcMiss + " CPU s per miss)", Value: median(perRound), Rounds: perRound})
		r.Ratios = append(r.Ratios, Ratio{Name: "verifications per second per core: 1 ÷ (" + oidcSat + " CPU s per miss)", Value: float64(sat.Requests) / satCPU})
		r.note("%s: median latency added %s over %s (p50 %s vs %s; no upstream: the whole of playerguard's p50 is its round trip, its verification included); no target set for this provider",
			oidcMiss, fmtUs(v), oidcMissDirect,
			fmtUs(median(collect(om.samples[oidcMiss], func(s missSample) float64 { return s.d.P50 }))),
			fmtUs(median(collect(oDirect, func(s missSample) float64 { return s.d.P50 }))))
		r.note("%s: %.1f µs of playerguard CPU per miss over all measured rounds (%.3f CPU s for %s misses; per round, median %.1f µs): %s verifications per second per core at this load (%d workers, think time); saturated: %.1f µs per miss, %s per second per core; the Go benchmark of the verification alone (BenchmarkVerify, -cpu 1) is about 24,000/s",
			oidcMiss, perMiss*1e6, om.pgCPUs, fmtInt(om.pgReqs), median(om.pgCPU), fmtInt(int64(math.Round(1/perMiss))), o.connections,
			satCPU/float64(sat.Requests)*1e6, fmtInt(int64(math.Round(float64(sat.Requests)/satCPU))))
	}
	// iamport against its own no-sidecar peer, and its CPU per miss:
	// reported, no target.
	{
		iDirect := iam.samples[iaMissDirect]
		var added []float64
		for i, s := range iam.samples[iaMiss] {
			if i < len(iDirect) {
				added = append(added, s.d.P50-iDirect[i].d.P50)
			}
		}
		v := median(added)
		r.Ratios = append(r.Ratios, Ratio{Name: "added p50 latency, µs: " + iaMiss + " - " + iaMissDirect, Value: v, Rounds: added})
		overConfigured := median(collect(iam.samples[iaMiss], func(s missSample) float64 { return s.d.P50 })) - float64(lat/time.Microsecond)
		r.note("%s: median latency added over the upstream's %s vs %s (%s over the proxy's configured %v); no target set for this provider",
			iaMiss, fmtUs(v), iaMissDirect, fmtUs(overConfigured), lat)
		r.note("%s: %.1f µs of playerguard CPU per miss over all measured rounds (%.3f CPU s for %s misses; per round, median %.1f µs)",
			iaMiss, iam.pgCPUs/float64(iam.pgReqs)*1e6, iam.pgCPUs, fmtInt(iam.pgReqs), median(iam.pgCPU))
	}
	return nil
}

// The miss rows of kakao-login.
const (
	klMiss       = klRowPrefix + klPath
	klMissDirect = klRowPrefix + "direct (no sidecar)"
)

func collect[T any](xs []T, f func(T) float64) []float64 {
	out := make([]float64, len(xs))
	for i, x := range xs {
		out[i] = f(x)
	}
	return out
}

package main

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"playerguard/validator/kakaogames/kakaogamestest"
)

// outageRec is one request of the outage load.
type outageRec struct {
	at  time.Duration // start, since the load began
	lat time.Duration
	rep reply
	err error
}

// upstreamAttempt reports whether the answer came from a call to the
// upstream that failed (as opposed to the open breaker refusing at once).
func (o outageRec) upstreamAttempt() bool {
	switch {
	case o.err != nil:
		return false
	case o.rep.status == 503:
		return o.rep.reason != "circuit_open"
	case o.rep.degraded:
		return o.rep.failure != "" && o.rep.failure != "circuit_open"
	}
	return false
}

func (o outageRec) circuitOpen() bool {
	return o.err == nil && (o.rep.reason == "circuit_open" || o.rep.failure == "circuit_open")
}

// poll is one look at playerguard's breaker gauge or the fake's counter.
type poll struct {
	at    time.Duration
	state float64 // playerguard_breaker_state: 0 closed, 1 half-open, 2 open
	calls int64   // the fake's Calls()
}

// slowThreshold is "waited": a cache hit or an open-breaker refusal takes
// well under a millisecond; an upstream call takes its latency.
const slowThreshold = 5 * time.Millisecond

// runOutage: steady load over a warm-ish key set while the upstream
// answers 500s, then hangs, then heals.
func runOutage(e *env, r *Report) error {
	o := e.o
	lat := o.latencyOr(30 * time.Millisecond)
	bt, ut, ttl := 2*time.Second, 500*time.Millisecond, 3*time.Second
	healthyFor, failFor, hangFor, tail := 4*time.Second, 5*time.Second, 5*time.Second, 2*time.Second
	nWarm, workers, pace := 2000, 16, 5*time.Millisecond
	if o.smoke {
		bt, ut, ttl = 500*time.Millisecond, 300*time.Millisecond, time.Second
		healthyFor, failFor, hangFor, tail = time.Second, 1200*time.Millisecond, 1200*time.Millisecond, 500*time.Millisecond
		nWarm, workers = 200, 8
	}
	maxRecovery := bt + ut + 2*time.Second // give up waiting for the breaker to close

	fake, err := kakaogamestest.Start(kakaogamestest.Config{Latency: lat})
	if err != nil {
		return err
	}
	defer fake.Close()
	up := fake.Config()
	warmPlayers := makePlayers("outage", nWarm, true)
	for _, p := range warmPlayers {
		fake.Set(p.token, kakaogamestest.Allow(up.AppID, p.id, "normal"))
	}
	fake.SetDefault(kakaogamestest.Allow(up.AppID, "100000000000000", "normal")) // new tokens (no playerId claimed)
	flags := []string{"-breaker-timeout", bt.String(), "-upstream-timeout", ut.String(), "-breaker-failures", "5",
		"-cache-ttl", ttl.String(), "-stale-for", "10m", "-on-upstream-failure", "stale"}
	pg, err := e.startPlayerguard(up, fake.URL(), flags...)
	if err != nil {
		return err
	}
	defer pg.stop(5 * time.Second)
	r.setup("playerguard %v", flags)
	r.setup("fake upstream latency %v; %s warm players (cached first; they expire after %v and are then served stale while the upstream fails) and 1 request in 5 a new token",
		lat, fmtInt(int64(nWarm)), ttl)
	r.setup("Go client (/v1/validate), %d workers each pausing %v between requests; phases: healthy %v, 500s %v, hang %v, healed until the breaker closes + %v",
		workers, pace, healthyFor, failFor, hangFor, tail)
	r.setup("\"waited\" = slower than %v; an upstream attempt = an answer whose failure is not circuit_open (the half-open probe, or requests sharing its call)", slowThreshold)

	c := newHClient(pg.api, modeV1, workers+32, up)
	defer c.close()
	if left, err := warm(c, warmPlayers, 32, fromPlayerguardCache); err != nil {
		return err
	} else if left != 0 {
		return fmt.Errorf("%d warm players still not cached after 5 passes", left)
	}

	t0 := time.Now()
	since := func() time.Duration { return time.Since(t0) }
	var stop atomic.Bool
	hardStop := healthyFor + failFor + hangFor + maxRecovery + tail + 5*time.Second
	recs := make([][]outageRec, workers)
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 7))
			for !stop.Load() && since() < hardStop {
				i := next.Add(1)
				var p player
				if i%5 == 0 {
					p = player{token: makeToken("outage-new", int(i)), platform: platforms[i%4]}
				} else {
					p = warmPlayers[rng.IntN(len(warmPlayers))]
				}
				at := since()
				rep, d, err := c.do(p, 10*time.Second, false)
				recs[w] = append(recs[w], outageRec{at: at, lat: d, rep: rep, err: err})
				time.Sleep(pace)
			}
		}()
	}
	closedAfter := make(chan time.Duration, 1) // first closed state seen after the heal
	var healAt atomic.Int64                    // since t0; 0 until healed
	wg.Add(1)
	go func() {
		defer wg.Done()
		sent := false
		for !stop.Load() && since() < hardStop {
			if m, err := pg.metrics(); err == nil {
				p := poll{at: since(), state: m.sum("playerguard_breaker_state")}
				if h := healAt.Load(); h != 0 && !sent && p.state == 0 {
					closedAfter <- p.at
					sent = true
				}
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()

	// The fake's call counter, sampled every millisecond, so that calls
	// can be assigned to phases whose boundaries are known only afterwards.
	var callLog []poll
	wg.Add(1)
	go func() {
		defer wg.Done()
		last := int64(-1)
		for !stop.Load() && since() < hardStop {
			if c := fake.Calls(); c != last {
				callLog = append(callLog, poll{at: since(), calls: c})
				last = c
			}
			time.Sleep(time.Millisecond)
		}
	}()

	time.Sleep(healthyFor)
	tFail, callsFail := since(), fake.Calls()
	v500 := kakaogamestest.Error(500)
	fake.SetOverride(&v500)
	e.logf("outage: upstream answers 500")
	time.Sleep(failFor)
	tHang, callsHang := since(), fake.Calls()
	hang := kakaogamestest.Verdict{Fault: kakaogamestest.FaultHang}
	fake.SetOverride(&hang)
	e.logf("outage: upstream hangs")
	time.Sleep(hangFor)
	tHeal, callsHeal := since(), fake.Calls()
	fake.SetOverride(nil)
	healAt.Store(int64(tHeal))
	e.logf("outage: upstream healed")
	var tClosed time.Duration
	select {
	case tClosed = <-closedAfter:
		e.logf("outage: breaker closed %s after the heal", fmtDur(tClosed-tHeal))
	case <-time.After(maxRecovery):
	}
	time.Sleep(tail)
	stop.Store(true)
	wg.Wait()
	tEnd, callsEnd := since(), fake.Calls()

	var all []outageRec
	for _, rs := range recs {
		all = append(all, rs...)
	}
	// The breaker opened when the first request was refused by it.
	var tOpen time.Duration
	for _, rec := range all {
		if rec.at >= tFail && rec.circuitOpen() && (tOpen == 0 || rec.at < tOpen) {
			tOpen = rec.at
		}
	}
	callsAt := func(t time.Duration) int64 { // calls made before t (to the millisecond)
		var c int64
		for _, p := range callLog {
			if p.at <= t {
				c = p.calls
			}
		}
		return c
	}

	type phase struct {
		name       string
		from, to   time.Duration
		calls      int64
		open, dead bool // the breaker is open / the upstream is dead
	}
	openEnd := tHang
	if tOpen == 0 {
		tOpen = tHang // never opened: the 500s phase has no open part
	}
	closedAt := tClosed
	if closedAt == 0 {
		closedAt = tEnd
	}
	phases := []phase{
		{"1 healthy", 0, tFail, callsFail, false, false},
		{"2 500s, breaker closed", tFail, tOpen, callsAt(tOpen) - callsFail, false, true},
		{"3 500s, breaker open", tOpen, openEnd, callsHang - callsAt(tOpen), true, true},
		{"4 hang, breaker open", tHang, tHeal, callsHeal - callsHang, true, true},
		{"5 healed, breaker not yet closed", tHeal, closedAt, callsAt(closedAt) - callsHeal, true, false},
		{"6 recovered", closedAt, tEnd + time.Nanosecond, callsEnd - callsAt(closedAt), false, false},
	}
	tbl := Table{Title: "decisions by phase (count):", Header: []string{"phase", "window",
		"allow cache", "allow upstream", "allow stale", "unavail. circuit_open", "unavail. other", "kick", "errors", "slow >5ms", "upstream attempts"}}
	var kicks, errs int64
	var openLat []time.Duration
	var openSlow, openAttempts, openSlowAttempts, openProbeCalls int64
	var recoveredOK = true
	for _, ph := range phases {
		var lats []time.Duration
		var n [9]int64
		for _, rec := range all {
			if rec.at < ph.from || rec.at >= ph.to {
				continue
			}
			lats = append(lats, rec.lat)
			switch {
			case rec.err != nil:
				n[6]++
			case rec.rep.status == 200 && rec.rep.source == "cache":
				n[0]++
			case rec.rep.status == 200 && rec.rep.source == "upstream":
				n[1]++
			case rec.rep.status == 200 && rec.rep.source == "stale":
				n[2]++
			case rec.rep.status == 503 && rec.rep.reason == "circuit_open":
				n[3]++
			case rec.rep.status == 503:
				n[4]++
			case rec.rep.status == 403:
				n[5]++
			default:
				n[6]++
			}
			if rec.lat > slowThreshold {
				n[7]++
			}
			if rec.upstreamAttempt() {
				n[8]++
			}
			if ph.open && ph.dead {
				openLat = append(openLat, rec.lat)
				if rec.lat > slowThreshold {
					openSlow++
					if rec.upstreamAttempt() {
						openSlowAttempts++
					}
				}
				if rec.upstreamAttempt() {
					openAttempts++
				}
			}
			if ph.name == "6 recovered" && (rec.err != nil || rec.rep.status != 200) {
				recoveredOK = false
			}
		}
		if ph.open && ph.dead {
			openProbeCalls += ph.calls
		}
		kicks += n[5]
		errs += n[6]
		d := distOf(lats)
		secs := (ph.to - ph.from).Seconds()
		row := Row{Name: ph.name, Requests: int64(len(lats)), P50us: d.P50, P90us: d.P90, P99us: d.P99, MaxUs: d.Max,
			Errors: n[5] + n[6], UpstreamCalls: i64(ph.calls)}
		if secs > 0 {
			row.RPS = float64(len(lats)) / secs
		}
		r.Rows = append(r.Rows, row)
		cells := []string{ph.name, fmt.Sprintf("%.2fs", secs)}
		for _, v := range n {
			cells = append(cells, fmtInt(v))
		}
		tbl.Rows = append(tbl.Rows, cells)
	}
	r.Tables = append(r.Tables, tbl)
	r.note("phase boundaries (s since the load began): 500s at %.2f, breaker open at %.2f, hang at %.2f, heal at %.2f, breaker closed at %s; the rows' errors column counts kicks and unexpected answers",
		tFail.Seconds(), tOpen.Seconds(), tHang.Seconds(), tHeal.Seconds(), orDash(secsOr(tClosed)))

	r.check(kindCorrectness, "no kick during the outage", "0 kicks", kicks == 0, "%d kicks", kicks)
	r.check(kindCorrectness, "every answer an allow or an unavailable", "0 errors", errs == 0, "%d errors", errs)
	r.check(kindCorrectness, "breaker opened on the 500s", "opens", tOpen < tHang && tOpen > 0, "opened %s after the 500s began", fmtDur(tOpen-tFail))
	r.check(kindCorrectness, "breaker closed after the heal, then every answer an allow", fmt.Sprintf("closed within %v", maxRecovery),
		tClosed != 0 && recoveredOK, "%s", recoveredNote(tClosed, tHeal, recoveredOK))
	od := distOf(openLat)
	r.check(kindTarget, "outage: p99 once the breaker is open (phases 3-4)", "< 2ms", len(openLat) > 0 && od.P99 < 2000,
		"p99 %s, p50 %s over %s requests", fmtUs(od.P99), fmtUs(od.P50), fmtInt(int64(od.N)))
	r.check(kindTarget, "outage: once open, no request waits on the dead upstream except the breaker's half-open probes", "0 others",
		openAttempts <= openProbeCalls,
		"%d requests made or shared an upstream attempt for %d half-open probe call(s) (%d of them slower than %v); %d other requests slower than %v (not waiting on the upstream)",
		openAttempts, openProbeCalls, openSlowAttempts, slowThreshold, openSlow-openSlowAttempts, slowThreshold)
	rec := "never"
	if tClosed != 0 {
		rec = fmtDur(tClosed - tHeal)
	}
	r.check(kindTarget, "outage: breaker closed within -breaker-timeout after the heal", "≤ "+bt.String(),
		tClosed != 0 && tClosed-tHeal <= bt, "%s (gauge polled every 20ms)", rec)
	return nil
}

func secsOr(d time.Duration) string {
	if d == 0 {
		return ""
	}
	return fmt.Sprintf("%.2f", d.Seconds())
}

func recoveredNote(tClosed, tHeal time.Duration, ok bool) string {
	if tClosed == 0 {
		return "the breaker never closed"
	}
	s := fmt.Sprintf("closed %s after the heal", fmtDur(tClosed-tHeal))
	if !ok {
		s += ", but some answers after that were not allows"
	}
	return s
}

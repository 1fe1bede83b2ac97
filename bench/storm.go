package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"playerguard/bench/peers/spec"
	"playerguard/validator/kakaogames/kakaogamestest"
)

// runStorm: a reconnect storm. o.stormRequests connects over o.stormTokens
// tokens, each on its own connection dialled beforehand, all released at
// once. playerguard must make exactly one upstream call per distinct
// token; the no-sidecar peer makes one per connect.
func runStorm(e *env, r *Report) error {
	o := e.o
	lat := o.latencyOr(50 * time.Millisecond)
	nTok, nReq := o.stormTokens, o.stormRequests
	players := makePlayers("storm", nTok, true)
	// Every token nReq/nTok times, in a fixed shuffled order.
	order := make([]player, nReq)
	for k := range order {
		order[k] = players[k%nTok]
	}
	rng := rand.New(rand.NewPCG(1, 2))
	rng.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })

	fake, err := kakaogamestest.Start(kakaogamestest.Config{Latency: lat})
	if err != nil {
		return err
	}
	defer fake.Close()
	up := fake.Config()
	for _, p := range players {
		fake.Set(p.token, kakaogamestest.Allow(up.AppID, p.id, "normal"))
	}
	r.setup("%s connects over %s tokens (drop-in headers, playerId claimed), one connection each, dialled first, then all released at once",
		fmtInt(int64(nReq)), fmtInt(int64(nTok)))
	r.setup("fake upstream latency %v; latency is per request, from its write to its whole answer read; req/s = connects / (release to last answer)", lat)
	r.setup("the ceiling row answers at once (no upstream): its CPU and RSS are what %s fresh connections cost the same fasthttp listener", fmtInt(int64(nReq)))
	r.setup("the minimal row is that listener holding each token's connects on one %v wait (a free upstream, perfect coalescing): the least any sidecar must do here", lat)
	r.setup("playerguard's concurrent upstream calls are capped by -max-upstream-conns (default 256): with %s tokens at once, run at the default and at %d",
		fmtInt(int64(nTok)), max(1024, nTok))

	bigCap := max(1024, nTok)
	variants := []struct {
		name  string
		flags []string
	}{
		{"playerguard drop-in, default -max-upstream-conns 256", nil},
		{fmt.Sprintf("playerguard drop-in, -max-upstream-conns %d", bigCap), []string{"-max-upstream-conns", fmt.Sprint(bigCap)}},
	}
	bound := lat + 50*time.Millisecond
	for _, v := range variants {
		pg, err := e.startPlayerguard(up, fake.URL(), v.flags...)
		if err != nil {
			return err
		}
		raw, conns, err := armStorm(pg.api, order, nil)
		if err != nil {
			pg.stop(5 * time.Second)
			return err
		}
		fake.ResetCounts()
		m0, err0 := pg.metrics()
		u0 := snapshot(pg)
		out := fire(conns, raw, "allow")
		u1 := snapshot(pg)
		closeAll(conns)
		m1, err1 := pg.metrics()
		calls, distinct := fake.Calls(), int64(fake.Distinct())
		row := out.row(v.name)
		row.UpstreamCalls = i64(calls)
		row.CPUSeconds = f64(u1.cpu - u0.cpu)
		row.CPUusPerReq = f64((u1.cpu - u0.cpu) / float64(nReq) * 1e6)
		row.PeakRSSMiB = mib(peakRSS(pg))
		pg.stop(5 * time.Second)
		r.Rows = append(r.Rows, row)

		r.check(kindCorrectness, v.name+": one upstream call per distinct token", fmt.Sprintf("calls = distinct = %d", nTok),
			calls == int64(nTok) && distinct == int64(nTok), "calls %s, distinct %s", fmtInt(calls), fmtInt(distinct))
		r.check(kindCorrectness, v.name+": every connect allowed", "0 errors", row.Errors == 0, "%d errors%s", row.Errors, out.errNote())
		r.check(kindTarget, "storm "+v.name+": p99 connect latency", "< "+bound.String(), row.P99us < float64(bound/time.Microsecond),
			"p99 %s (upstream %v)", fmtUs(row.P99us), lat)
		if err := errors.Join(err0, err1); err == nil {
			r.note("%s: coalesced %s, cache hits %s, cache misses %s (from /metrics); storm took %s, last request written %s after the release",
				v.name, fmtInt(int64(m1.sum("playerguard_coalesced_requests_total")-m0.sum("playerguard_coalesced_requests_total"))),
				fmtInt(int64(m1.sum("playerguard_cache_hits_total")-m0.sum("playerguard_cache_hits_total"))),
				fmtInt(int64(m1.sum("playerguard_cache_misses_total")-m0.sum("playerguard_cache_misses_total"))),
				fmtDur(out.wall), fmtDur(out.spread))
		}
		e.logf("storm: %s: p99 %s, %d upstream calls", v.name, fmtUs(row.P99us), calls)
	}

	if o.perf {
		if err := e.profileStorm(r, up, fake, order, bigCap); err != nil {
			return err
		}
	}

	// The ceiling, answering every connect at once with the allow body:
	// no upstream, no cache. Its CPU and memory per connect show what the
	// fresh connections themselves cost a fasthttp server with
	// playerguard's listener settings. The minimal peer is the same server
	// doing the least a coalescing sidecar must: each token's first connect
	// waits one upstream latency (an upstream that costs nothing), the
	// connects for it that arrive meanwhile wait for the same end, later
	// ones are answered at once. Its p99 is the best any sidecar can do in
	// this storm on this machine.
	hdrs := [][2]string{{"X-Playerguard-Decision", "allow"}, {"X-Playerguard-Reason", "ok"}, {"X-Playerguard-Source", "upstream"}}
	allow := kakaogamestest.Allow(up.AppID, players[0].id, "normal")
	keyed := spec.Route{Path: dropInPath, Status: 200, ContentType: kakaogamestest.DefaultContentType, Headers: hdrs,
		Lookup: "headers", Hold: lat.String()}
	for _, p := range players {
		keyed.Players = append(keyed.Players, spec.Player{Token: p.token, Platform: p.platform, PlayerID: p.id,
			Body: string(kakaogamestest.Allow(up.AppID, p.id, "normal").Body)})
	}
	for _, peer := range []struct {
		name  string
		route spec.Route
	}{
		{"ceiling (fixed answer, no upstream)", spec.Route{Path: dropInPath, Status: 200, ContentType: kakaogamestest.DefaultContentType, Body: string(allow.Body), Headers: hdrs}},
		{fmt.Sprintf("minimal (one %v wait per token, coalesced)", lat), keyed},
	} {
		srv, err := e.startCeiling([]spec.Route{peer.route})
		if err != nil {
			return err
		}
		raw, conns, err := armStorm(srv.addr, order, nil)
		if err != nil {
			srv.stop(5 * time.Second)
			return err
		}
		u0 := snapshot(srv)
		out := fire(conns, raw, "allow")
		u1 := snapshot(srv)
		closeAll(conns)
		row := out.row(peer.name)
		row.CPUSeconds = f64(u1.cpu - u0.cpu)
		row.CPUusPerReq = f64((u1.cpu - u0.cpu) / float64(nReq) * 1e6)
		row.PeakRSSMiB = mib(peakRSS(srv))
		srv.stop(5 * time.Second)
		r.Rows = append(r.Rows, row)
		r.check(kindCorrectness, strings.Fields(peer.name)[0]+": every connect answered", "0 errors", row.Errors == 0, "%d errors%s", row.Errors, out.errNote())
		if peer.route.Hold != "" {
			r.note("the minimal peer's p99 is %s against the %v bound: the best a sidecar could do in this storm here", fmtUs(row.P99us), bound)
		}
	}

	// The no-sidecar peer. Its fake runs in a child process: 10,000 client
	// and 10,000 server connections in one process would pass the usual
	// open-files limit of 20,000.
	child, err := e.startChildFake()
	if err != nil {
		return err
	}
	defer child.close()
	if err := firstErr(doOK(child, "latency "+lat.String()), doOK(child, "default-allow "+up.AppID+" 100000000000000")); err != nil {
		return err
	}
	raw, conns, err := armStorm(child.addr, order, &up)
	if err != nil {
		return err
	}
	if err := doOK(child, "reset"); err != nil {
		closeAll(conns)
		return err
	}
	out := fire(conns, raw, "")
	closeAll(conns)
	calls, _, err := child.counts()
	if err != nil {
		return err
	}
	row := out.row("direct (no sidecar)")
	row.UpstreamCalls = i64(calls)
	r.Rows = append(r.Rows, row)
	r.check(kindCorrectness, "direct (no sidecar): every connect answered", "0 errors", row.Errors == 0, "%d errors%s", row.Errors, out.errNote())
	r.note("direct (no sidecar): %s upstream calls for %s connects; storm took %s", fmtInt(calls), fmtInt(int64(nReq)), fmtDur(out.wall))
	return nil
}

func doOK(c *childFake, cmd string) error {
	s, err := c.do(cmd)
	if err == nil && s != "ok" {
		err = fmt.Errorf("child fake upstream: %q answered %q", cmd, s)
	}
	return err
}

// rawDropIn is one drop-in request (the Kakao endpoint's headers), with
// the upstream secrets when secrets is not nil (the no-sidecar peer).
func rawDropIn(host string, p player, secrets *kakaogamestest.Config) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: %s\r\naccessToken: %s\r\nplatform: %s\r\n",
		dropInPath, host, kakaogamestest.DefaultContentType, p.token, p.platform)
	if p.id != "" {
		fmt.Fprintf(&b, "playerId: %s\r\n", p.id)
	}
	if secrets != nil {
		fmt.Fprintf(&b, "appSecret: %s\r\nAuthorization: KakaoAK %s\r\nkgAppId: %s\r\n", secrets.AppSecret, secrets.AdminKey, secrets.AppID)
	}
	b.WriteString("Content-Length: 0\r\n\r\n")
	return b.Bytes()
}

// armStorm readies a storm against addr: the raw request of each connect
// in order (with the upstream secrets when secrets is not nil) and a
// connection for each, dialled.
func armStorm(addr string, order []player, secrets *kakaogamestest.Config) ([][]byte, []net.Conn, error) {
	raw := make([][]byte, len(order))
	for k, p := range order {
		raw[k] = rawDropIn(addr, p, secrets)
	}
	conns, err := dialAll(addr, len(order))
	return raw, conns, err
}

// dialAll opens n connections to addr, 64 dials at a time.
func dialAll(addr string, n int) ([]net.Conn, error) {
	conns := make([]net.Conn, n)
	var mu sync.Mutex
	var first error
	loop(64, 2*time.Minute, int64(n), func(_ int, i int64) {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			mu.Lock()
			first = cmpOr(first, err)
			mu.Unlock()
			return
		}
		conns[i] = c
	})
	for _, c := range conns {
		if c == nil && first == nil {
			first = errors.New("dialling timed out")
		}
	}
	if first != nil {
		closeAll(conns)
		return nil, fmt.Errorf("cannot open %d connections to %s: %w", n, addr, first)
	}
	return conns, nil
}

func cmpOr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

func closeAll(conns []net.Conn) {
	for _, c := range conns {
		if c != nil {
			c.Close()
		}
	}
}

// stormOutcome is what fire measured.
type stormOutcome struct {
	lat    []time.Duration
	errs   int64
	first  error // the first failure, for the report
	wall   time.Duration
	spread time.Duration // from the release to the last request written
}

// fire writes raw[i] on conns[i], all released at once, and reads every
// answer. An answer is an error unless it is a 200 whose
// X-Playerguard-Decision equals wantDecision (when not "").
func fire(conns []net.Conn, raw [][]byte, wantDecision string) stormOutcome {
	n := len(conns)
	lat := make([]time.Duration, n)
	written := make([]time.Duration, n)
	errs := make([]error, n)
	start := make(chan struct{})
	var ready, done sync.WaitGroup
	var release time.Time
	for i := range conns {
		ready.Add(1)
		done.Add(1)
		go func() {
			defer done.Done()
			c := conns[i]
			br := bufio.NewReaderSize(c, 2048)
			ready.Done()
			<-start
			t0 := time.Now()
			written[i] = t0.Sub(release)
			c.SetDeadline(t0.Add(30 * time.Second))
			if _, err := c.Write(raw[i]); err != nil {
				errs[i] = err
				return
			}
			status, decision, err := readAnswer(br)
			if err != nil {
				errs[i] = err
				return
			}
			lat[i] = time.Since(t0)
			switch {
			case status != http.StatusOK:
				errs[i] = fmt.Errorf("status %d (%s)", status, decision)
			case wantDecision != "" && decision != wantDecision:
				errs[i] = fmt.Errorf("decision %q, want %q", decision, wantDecision)
			}
		}()
	}
	ready.Wait()
	release = time.Now()
	close(start)
	done.Wait()
	out := stormOutcome{wall: time.Since(release)}
	for i := range n {
		out.spread = max(out.spread, written[i])
		if errs[i] != nil {
			out.errs++
			out.first = cmpOr(out.first, errs[i])
			continue
		}
		out.lat = append(out.lat, lat[i])
	}
	return out
}

// readAnswer reads one HTTP/1.1 response from br and returns its status
// and X-Playerguard-Decision header. It is a small parser, not net/http's,
// because the storm's client shares the machine with the server it
// measures: every microsecond it spends is taken from the server. The
// servers measured always send Content-Length.
func readAnswer(br *bufio.Reader) (status int, decision string, err error) {
	line, err := br.ReadSlice('\n')
	if err != nil {
		return 0, "", err
	}
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) {
		return 0, "", fmt.Errorf("bad status line %q", line)
	}
	if status, err = strconv.Atoi(string(line[9:12])); err != nil {
		return 0, "", fmt.Errorf("bad status line %q", line)
	}
	clen := -1
	for {
		line, err = br.ReadSlice('\n')
		if err != nil {
			return 0, "", err
		}
		line = bytes.TrimRight(line, "\r\n")
		if len(line) == 0 {
			break
		}
		k, v, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			return 0, "", fmt.Errorf("bad header line %q", line)
		}
		v = bytes.TrimSpace(v)
		switch {
		case bytes.EqualFold(k, []byte("Content-Length")):
			if clen, err = strconv.Atoi(string(v)); err != nil {
				return 0, "", fmt.Errorf("bad Content-Length %q", v)
			}
		case bytes.EqualFold(k, []byte("X-Playerguard-Decision")):
			decision = string(v)
		}
	}
	if clen < 0 {
		return 0, "", errors.New("answer without Content-Length")
	}
	_, err = br.Discard(clen)
	return status, decision, err
}

func (s stormOutcome) row(name string) Row {
	d := distOf(s.lat)
	return Row{Name: name, Requests: int64(len(s.lat)) + s.errs, RPS: float64(len(s.lat)) / s.wall.Seconds(),
		P50us: d.P50, P90us: d.P90, P99us: d.P99, MaxUs: d.Max, Errors: s.errs}
}

func (s stormOutcome) errNote() string {
	if s.first == nil {
		return ""
	}
	return fmt.Sprintf(" (first: %v)", s.first)
}

// profileStorm records playerguard (at -max-upstream-conns bigCap) with
// perf over one extra, unmeasured storm, from just before the release to
// the last answer, and notes its hottest functions.
func (e *env) profileStorm(r *Report, up kakaogamestest.Config, fake *kakaogamestest.Server, order []player, bigCap int) error {
	perf := lookTool("perf", "/usr/bin/perf")
	if perf == "" {
		r.Skipped = append(r.Skipped, "storm perf profile: perf is not installed (apt-get install -y linux-perf)")
		return nil
	}
	pg, err := e.startPlayerguard(up, fake.URL(), "-max-upstream-conns", fmt.Sprint(bigCap))
	if err != nil {
		return err
	}
	defer pg.stop(5 * time.Second)
	raw, conns, err := armStorm(pg.api, order, nil)
	if err != nil {
		return err
	}
	defer closeAll(conns)
	rec, err := e.startPerf(perf, pg.PID(), 20_000)
	if err != nil {
		r.note("storm perf: %v", err)
		return nil
	}
	fire(conns, raw, "")
	prof, err := rec.stop()
	if err != nil {
		r.note("storm perf: %v", err)
		return nil
	}
	r.note("perf profile of playerguard (-max-upstream-conns %d) over one extra, unmeasured storm, from just before the release to the last answer (share of the process's samples at -F 20000, functions ≥ 0.5%%; [k] kernel, [.] user):\n%s", bigCap, prof)
	return nil
}

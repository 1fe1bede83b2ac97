package main

import (
	"bufio"
	crand "crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"playerguard/validator/kakaogames/kakaogamestest"
)

// redisHint is what to run when redis-server is missing.
const redisHint = "apt-get install -y redis-server"

// runFleet: three sidecars sharing one redis-server (the fleet tier), and
// three without it for comparison, in front of one fake upstream. A storm
// spread over the three (one upstream call per token for the fleet, one
// per token and sidecar without), a kick on one sidecar reaching the
// others, and what a shared hit and a fleet miss cost.
func runFleet(e *env, r *Report) error {
	o := e.o
	bin := lookTool("redis-server", "/usr/bin/redis-server")
	if bin == "" {
		r.skipMissingHint("redis-server", "fleet scenario", redisHint)
		return nil
	}
	lat := o.latencyOr(50 * time.Millisecond)
	rd, raddr, err := e.startRedis(bin)
	if err != nil {
		return err
	}
	defer rd.stop(5 * time.Second)
	fake, err := kakaogamestest.Start(kakaogamestest.Config{Latency: lat})
	if err != nil {
		return err
	}
	defer fake.Close()
	up := fake.Config()
	key := make([]byte, 32)
	crand.Read(key)
	fl, err := e.startSidecars(up, fake.URL(), []string{"PLAYERGUARD_FLEET_KEY=" + hex.EncodeToString(key)}, "-redis-addr", raddr, "-redis-timeout", o.redisTimeout.String())
	defer stopAll(fl)
	if err != nil {
		return err
	}
	lo, err := e.startSidecars(up, fake.URL(), nil)
	defer stopAll(lo)
	if err != nil {
		return err
	}
	r.setup("one redis-server (%s, no persistence); fleet: sidecars A, B, C with -redis-addr, -redis-timeout %v and the same PLAYERGUARD_FLEET_KEY; "+
		"no fleet: three more sidecars without -redis-addr; one fake upstream for all, latency %v", raddr, o.redisTimeout, lat)
	if err := fleetStorm(e, r, fake, fl, lo, rd); err != nil {
		return err
	}
	if d, err := inFleet(fl); err != nil {
		return err
	} else if d > 100*time.Millisecond {
		r.note("after the storm the fleet's sidecars were back in the fleet (playerguard_redis_connected 1 on all three) %s later; the latency part waited for it", fmtDur(d))
	}
	cs := make([]*hclient, 4) // A, B, C, and the first sidecar of no fleet
	for i, pg := range append(fl[:3:3], lo[0]) {
		cs[i] = newHClient(pg.api, modeV1, 16, up)
		defer cs[i].close()
	}
	ps, err := fleetLatency(r, fake, fl, cs, o.fleetPlayers)
	if err != nil {
		return err
	}
	return fleetKicks(r, fake, cs, ps)
}

// startSidecars starts three playerguard processes and, with -redis-addr
// among flags, waits until each is in the fleet.
func (e *env) startSidecars(up kakaogamestest.Config, upURL string, env []string, flags ...string) ([]*playerguard, error) {
	var pgs []*playerguard
	for range 3 {
		pg, err := e.startPlayerguardEnv(up, upURL, env, flags...)
		if err != nil {
			return pgs, err
		}
		pgs = append(pgs, pg)
	}
	if len(flags) == 0 {
		return pgs, nil
	}
	_, err := inFleet(pgs)
	return pgs, err
}

// inFleet waits until every sidecar of pgs is in the fleet
// (playerguard_redis_connected 1: subscribed, its Redis breaker closed),
// at most 15s, and returns how long that took.
func inFleet(pgs []*playerguard) (time.Duration, error) {
	start := time.Now()
	for i := 0; i < len(pgs); {
		m, err := pgs[i].metrics()
		switch {
		case err == nil && m.sum("playerguard_redis_connected") == 1:
			i++
		case time.Since(start) > 15*time.Second:
			return 0, fmt.Errorf("sidecar %c not in the fleet (playerguard_redis_connected 1) after 15s: %v", 'A'+i, err)
		default:
			time.Sleep(20 * time.Millisecond)
		}
	}
	return time.Since(start), nil
}

func stopAll(pgs []*playerguard) {
	for _, pg := range pgs {
		pg.stop(5 * time.Second)
	}
}

// startRedis runs redis-server on a free loopback port, without
// persistence, until the bench stops it (or dies: SIGKILL then).
func (e *env) startRedis(bin string) (*process, string, error) {
	dir, err := e.tempDir("redis-")
	if err != nil {
		return nil, "", err
	}
	for attempt := 0; ; attempt++ {
		ports, err := freePorts(1)
		if err != nil {
			return nil, "", err
		}
		_, port, _ := net.SplitHostPort(ports[0])
		cmd := exec.Command(bin, "--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir, "--daemonize", "no")
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		p, err := startProcess("redis-server", cmd)
		if err != nil {
			return nil, "", err
		}
		if err = waitPong(ports[0], p, 10*time.Second); err == nil {
			return p, ports[0], nil
		}
		p.stop(time.Second)
		if attempt == 2 || !strings.Contains(p.out.String(), "in use") {
			return nil, "", err
		}
	}
}

// waitPong polls addr with PING until it answers +PONG, p exits, or timeout.
func waitPong(addr string, p *process, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		if p.exited() {
			return p.failure()
		}
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.SetDeadline(time.Now().Add(time.Second))
			_, err = c.Write([]byte("PING\r\n"))
			line, _ := bufio.NewReader(c).ReadString('\n')
			c.Close()
			if err == nil && strings.HasPrefix(line, "+PONG") {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("redis-server on %s: no PONG after %v", addr, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// procs sums several processes (sidecars and Redis) for CPU and RSS.
type procs []measured

func (ps procs) PIDs() []int {
	var out []int
	for _, m := range ps {
		out = append(out, m.PIDs()...)
	}
	return out
}

// scrapes are one /metrics scrape of each sidecar of a group.
type scrapes []promText

func scrapeAll(pgs []*playerguard) (scrapes, error) {
	var s scrapes
	for _, pg := range pgs {
		m, err := pg.metrics()
		if err != nil {
			return nil, err
		}
		s = append(s, m)
	}
	return s, nil
}

// sum is promText.sum over the group's sidecars, or over the one at
// index only (when only is not negative).
func (s scrapes) sum(only int, name string, labels ...string) float64 {
	var v float64
	for i, m := range s {
		if only < 0 || i == only {
			v += m.sum(name, labels...)
		}
	}
	return v
}

// fleetStorm: stormRequests connects over stormTokens tokens, each token's
// connects dealt round-robin over the three sidecars (starting at a
// different one for each token), all released at once: against the
// fleet, then against the sidecars without it.
func fleetStorm(e *env, r *Report, fake *kakaogamestest.Server, fl, lo []*playerguard, rd *process) error {
	nTok, nReq := e.o.stormTokens, e.o.stormRequests
	up := fake.Config()
	players := makePlayers("fleet-storm", nTok, true)
	for i := range players {
		players[i].id = makePlayerID(700_000 + i) // no player of the other parts
		fake.Set(players[i].token, kakaogamestest.Allow(up.AppID, players[i].id, "normal"))
	}
	tok := make([]int, nReq)
	for k := range tok {
		tok[k] = k % nTok
	}
	rand.New(rand.NewPCG(5, 6)).Shuffle(nReq, func(i, j int) { tok[i], tok[j] = tok[j], tok[i] })
	order, side, seen := make([]player, nReq), make([]int, nReq), make([]int, nTok)
	pairs := 0 // distinct (sidecar, token): the calls of three sidecars alone
	for k, t := range tok {
		order[k], side[k] = players[t], (t+seen[t])%3
		if seen[t] < 3 {
			pairs++
		}
		seen[t]++
	}
	r.setup("storm: %s connects over %s tokens (drop-in headers, playerId claimed), one connection each, dialled first, then all released at once; "+
		"each token's connects dealt round-robin over the three sidecars; CPU and RSS summed over the three (and redis-server, for the fleet)",
		fmtInt(int64(nReq)), fmtInt(int64(nTok)))
	for _, v := range []struct {
		name  string
		pgs   []*playerguard
		all   procs
		fleet bool
	}{
		{"storm, fleet (A, B, C with -redis-addr)", fl, procs{fl[0], fl[1], fl[2], rd}, true},
		{"storm, no fleet (3 sidecars alone)", lo, procs{lo[0], lo[1], lo[2]}, false},
	} {
		raw, conns := make([][]byte, nReq), make([]net.Conn, nReq)
		for s, pg := range v.pgs {
			var idx []int
			for k := range order {
				if side[k] == s {
					idx = append(idx, k)
				}
			}
			cs, err := dialAll(pg.api, len(idx))
			if err != nil {
				closeAll(conns)
				return err
			}
			for j, k := range idx {
				conns[k], raw[k] = cs[j], rawDropIn(pg.api, order[k], nil)
			}
		}
		fake.ResetCounts()
		m0, err0 := scrapeAll(v.pgs)
		u0 := snapshot(v.all)
		out := fire(conns, raw, "allow")
		u1 := snapshot(v.all)
		closeAll(conns)
		m1, err1 := scrapeAll(v.pgs)
		calls, distinct := fake.Calls(), fake.Distinct()
		row := out.row(v.name)
		row.UpstreamCalls = i64(calls)
		row.CPUSeconds = f64(u1.cpu - u0.cpu)
		row.CPUusPerReq = f64((u1.cpu - u0.cpu) / float64(nReq) * 1e6)
		row.PeakRSSMiB = mib(peakRSS(v.all))
		r.Rows = append(r.Rows, row)
		r.check(kindCorrectness, v.name+": every connect allowed", "0 errors", row.Errors == 0, "%d errors%s", row.Errors, out.errNote())
		if err := errors.Join(err0, err1); err != nil {
			return err
		}
		delta := func(name string, labels ...string) int64 {
			return int64(m1.sum(-1, name, labels...) - m0.sum(-1, name, labels...))
		}
		if !v.fleet {
			r.check(kindCorrectness, v.name+": one upstream call per token and sidecar", fmt.Sprintf("calls = %s (distinct sidecar, token)", fmtInt(int64(pairs))),
				calls == int64(pairs) && distinct == nTok, "calls %s, distinct tokens %s", fmtInt(calls), fmtInt(int64(distinct)))
		} else {
			// Failed look, wait and store round trips (error, timeout, or
			// skipped: local-only or out of budget) are what lets a sidecar
			// call the upstream although another's call was, or could have
			// been, shared.
			var ops []string
			var fails int64
			for _, op := range []string{"look", "wait", "store", "release", "kick", "state", "connect"} {
				for _, out := range []string{"ok", "error", "timeout", "skipped"} {
					n := delta("playerguard_redis_operations_total", `op="`+op+`"`, `outcome="`+out+`"`)
					if n > 0 {
						ops = append(ops, fmt.Sprintf("%s %s %s", op, out, fmtInt(n)))
					}
					if out != "ok" && (op == "look" || op == "wait" || op == "store") {
						fails += n
					}
				}
			}
			r.check(kindCorrectness, v.name+": no upstream call beyond one per token but for a Redis failure",
				fmt.Sprintf("calls = %s, or more only with Redis look/wait/store failures, and at most %s", fmtInt(int64(nTok)), fmtInt(int64(pairs))),
				distinct == nTok && (calls == int64(nTok) || calls > int64(nTok) && calls <= int64(pairs) && fails > 0),
				"calls %s, distinct tokens %s, Redis failures %d", fmtInt(calls), fmtInt(int64(distinct)), fails)
			r.check(kindTarget, v.name+": one upstream call per token across the fleet", "= "+fmtInt(int64(nTok)), calls == int64(nTok),
				"%s (%.2f per token; the sidecars alone: %s)", fmtInt(calls), float64(calls)/float64(nTok), fmtInt(int64(pairs)))
			if out := 3 - m1.sum(-1, "playerguard_redis_connected"); out > 0 {
				r.note("%s: %.0f of the 3 sidecars were out of the fleet (playerguard_redis_connected 0: Redis breaker open after failed round trips) when the storm ended", v.name, out)
			}
			r.note("%s: the fleet saved %s calls as shared allows and %s by waiting for another sidecar's call (playerguard_fleet_upstream_calls_saved_total); Redis round trips: %s",
				v.name, fmtInt(delta("playerguard_fleet_upstream_calls_saved_total", `how="shared"`)),
				fmtInt(delta("playerguard_fleet_upstream_calls_saved_total", `how="waited"`)), strings.Join(ops, ", "))
		}
		r.note("%s: coalesced in a sidecar %s, cache hits %s, misses %s (from /metrics); storm took %s",
			v.name, fmtInt(delta("playerguard_coalesced_requests_total")), fmtInt(delta("playerguard_cache_hits_total")),
			fmtInt(delta("playerguard_cache_misses_total")), fmtDur(out.wall))
		e.logf("fleet: %s: p99 %s, %d upstream calls", v.name, fmtUs(row.P99us), calls)
	}
	return nil
}

// offsetPlayers are makePlayers(scenario, n, true) with player ids from
// makePlayerID(from): the parts of the fleet scenario share no player.
func offsetPlayers(scenario string, n, from int, fake *kakaogamestest.Server) []player {
	ps := makePlayers(scenario, n, true)
	for i := range ps {
		ps[i].id = makePlayerID(from + i)
		fake.Set(ps[i].token, kakaogamestest.Allow(fake.Config().AppID, ps[i].id, "normal"))
	}
	return ps
}

// step is one validation of each of a list of keys on one sidecar, whose
// every answer must be a 200 allow from source.
type step struct {
	name   string
	c      *hclient
	ps     []player
	source string
	lat    []time.Duration // by key
	mu     sync.Mutex
	bad    int64
	first  string
}

func (s *step) do(i int) {
	rep, lat, err := s.c.do(s.ps[i], 10*time.Second, false)
	s.lat[i] = lat
	if err != nil || rep.status != 200 || rep.decision != "allow" || rep.source != s.source {
		s.mu.Lock()
		s.bad++
		s.first = cmpOrStr(s.first, fmt.Sprintf("%s: %d %s/%s source %q, want 200 allow from %s (%v)", s.ps[i].id, rep.status, rep.decision, rep.reason, rep.source, s.source, err))
		s.mu.Unlock()
	}
}

func (s *step) row() Row {
	d := distOf(s.lat)
	return Row{Name: s.name, Requests: int64(len(s.lat)), P50us: d.P50, P90us: d.P90, P99us: d.P99, MaxUs: d.Max, Errors: s.bad}
}

// fleetLatency: n keys, each validated first on A (a miss with Redis: the
// look, then the upstream) and, interleaved, a new key on a sidecar
// without the fleet (a miss without), 8 keys at a time; then, one
// validation at a time, each key on B twice (a shared hit: a local miss
// found in Redis; then a local hit), on C (shared) and on A (local). It
// returns the keys, now cached on A, B and C. cs are A, B, C and the
// sidecar without the fleet.
func fleetLatency(r *Report, fake *kakaogamestest.Server, fl []*playerguard, cs []*hclient, n int) ([]player, error) {
	ps := offsetPlayers("fleet", n, 500_000, fake)
	miss := []*step{
		{name: "miss, fleet (A: Redis look, then upstream)", c: cs[0], ps: ps, source: "upstream"},
		{name: "miss, no fleet", c: cs[3], ps: offsetPlayers("fleet-alone", n, 600_000, fake), source: "upstream"},
	}
	hit := []*step{
		{name: "shared hit (B's first: local miss, Redis hit)", c: cs[1], ps: ps, source: "cache"},
		{name: "local hit (B's second)", c: cs[1], ps: ps, source: "cache"},
		{name: "shared hit (C's first)", c: cs[2], ps: ps, source: "cache"},
		{name: "local hit (A's second)", c: cs[0], ps: ps, source: "cache"},
	}
	for _, s := range append(miss, hit...) {
		s.lat = make([]time.Duration, n)
	}
	r.setup("latency: %s keys, each a miss on A interleaved with a miss of another key on a sidecar without the fleet (/v1/validate, 8 keys at a time); "+
		"then, one request at a time, each key on B twice, on C, on A", fmtInt(int64(n)))
	calls0 := fake.Calls()
	loop(8, 5*time.Minute, int64(n), func(_ int, i int64) {
		for _, s := range miss {
			s.do(int(i))
		}
	})
	time.Sleep(100 * time.Millisecond) // A's shares are written after its answers: let the last land
	m0, err := scrapeAll(fl)
	if err != nil {
		return nil, err
	}
	loop(1, 5*time.Minute, int64(n), func(_ int, i int64) {
		for _, s := range hit {
			s.do(int(i))
		}
	})
	m1, err := scrapeAll(fl)
	if err != nil {
		return nil, err
	}
	calls := fake.Calls() - calls0
	for _, s := range append(miss, hit...) {
		r.Rows = append(r.Rows, s.row())
		r.check(kindCorrectness, s.name+": every answer a 200 allow from "+s.source, fmt.Sprint(n), s.bad == 0, "%d of %d%s", int64(n)-s.bad, n, badSuffix(s.bad, s.first))
	}
	r.check(kindCorrectness, "latency: one upstream call per miss, none per hit", fmt.Sprint(2*n), calls == int64(2*n), "%d", calls)
	for car, want := range []int{0, n, n} {
		got := m1.sum(car, "playerguard_fleet_upstream_calls_saved_total", `how="shared"`) - m0.sum(car, "playerguard_fleet_upstream_calls_saved_total", `how="shared"`)
		looks := m1.sum(car, "playerguard_redis_operations_total", `op="look"`) - m0.sum(car, "playerguard_redis_operations_total", `op="look"`)
		r.check(kindCorrectness, fmt.Sprintf("latency: %c's first validations shared allows, its second local", 'A'+car),
			fmt.Sprintf("%d shared, %d Redis looks", want, want), int(got) == want && int(looks) == want, "%.0f shared, %.0f looks", got, looks)
	}
	t := Table{Title: fmt.Sprintf("added latency over %s keys (µs; per key: the median of each key's difference, the same key on B, or the two misses sent back to back)", fmtInt(int64(n))),
		Header: []string{"", "p50", "against", "p50", "p50 difference", "per key"}}
	for _, c := range [][2]*step{{hit[0], hit[1]}, {miss[0], miss[1]}} {
		a, b := c[0].row(), c[1].row()
		diff := make([]float64, n)
		for i := range diff {
			diff[i] = float64(c[0].lat[i]-c[1].lat[i]) / float64(time.Microsecond)
		}
		t.Rows = append(t.Rows, []string{c[0].name, fmtUs(a.P50us), c[1].name, fmtUs(b.P50us), fmt.Sprintf("%+.0f", a.P50us-b.P50us), fmt.Sprintf("%+.0f", median(diff))})
	}
	r.Tables = append(r.Tables, t)
	return ps, nil
}

// fleetKicks: for each key (cached on A, B and C), the fake turns a second
// token of its player into a lockout and the key's own token invalid; the
// second token is validated on B (a kick, published to the fleet) and A
// and C are polled with the first token until an answer is not from
// their cache. The propagation is from B's answer to the sending of that
// poll (every 200 µs; an upper bound by one poll). 8 keys at a time.
func fleetKicks(r *Report, fake *kakaogamestest.Server, cs []*hclient, ps []player) error {
	up := fake.Config()
	n := len(ps)
	second := makePlayers("fleet-kick", n, true)
	for i, p := range ps {
		second[i].id = p.id
		fake.Set(second[i].token, kakaogamestest.Lockout(up.AppID, p.id))
		fake.Set(p.token, kakaogamestest.Invalid()) // a poll that misses is a kick, not a refill
	}
	r.setup("kicks: for each of the %s keys, a second token of its player, now a lockout upstream, validated on B; A and C polled with the key (its token now invalid upstream) "+
		"every 200µs until an answer is not from their cache; propagation = B's kick answer → that poll sent; 8 keys at a time", fmtInt(int64(n)))
	prop := [2][]time.Duration{make([]time.Duration, n), make([]time.Duration, n)}
	for i := range n {
		prop[0][i], prop[1][i] = -1, -1 // not measured
	}
	var mu sync.Mutex
	var badB, badPoll, atOnce int64
	var first string
	fail := func(count *int64, format string, a ...any) {
		mu.Lock()
		*count++
		first = cmpOrStr(first, fmt.Sprintf(format, a...))
		mu.Unlock()
	}
	loop(8, 5*time.Minute, int64(n), func(_ int, i int64) {
		rep, _, err := cs[1].do(second[i], 10*time.Second, false)
		kicked := time.Now()
		if err != nil || rep.status != 403 || rep.decision != "kick" || rep.reason != "lockout" {
			fail(&badB, "B, %s: %d %s/%s (%v), want 403 kick/lockout", second[i].id, rep.status, rep.decision, rep.reason, err)
		}
		var wg sync.WaitGroup
		for j, c := range []*hclient{cs[0], cs[2]} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for polls := 0; ; polls++ {
					sent := time.Now()
					rep, _, err := c.do(ps[i], 10*time.Second, false)
					switch {
					case err != nil || rep.source != "cache" && rep.decision != "kick":
						fail(&badPoll, "%c, %s: %d %s/%s source %q (%v), want an allow from cache or a kick", "AC"[j], ps[i].id, rep.status, rep.decision, rep.reason, rep.source, err)
						return
					case rep.source != "cache":
						prop[j][i] = sent.Sub(kicked)
						if polls == 0 {
							mu.Lock()
							atOnce++
							mu.Unlock()
						}
						return
					case sent.Sub(kicked) > 5*time.Second:
						fail(&badPoll, "%c, %s: still answered from cache 5s after B's kick", "AC"[j], ps[i].id)
						return
					}
					time.Sleep(200 * time.Microsecond)
				}
			}()
		}
		wg.Wait()
	})
	r.check(kindCorrectness, "kicks: B answers each second token kick/lockout", fmt.Sprint(n), badB == 0, "%d of %d%s", int64(n)-badB, n, badSuffix(badB, first))
	r.check(kindCorrectness, "kicks: A and C stop answering the key from cache within 5s, then kick it", fmt.Sprint(2*n), badPoll == 0,
		"%d of %d%s", int64(2*n)-badPoll, 2*n, badSuffix(badPoll, first))
	ms := func(us float64) string { return fmt.Sprintf("%.2f ms", us/1000) }
	measured := func(ds []time.Duration) []time.Duration {
		return slices.DeleteFunc(slices.Clone(ds), func(d time.Duration) bool { return d < 0 })
	}
	all := distOf(measured(append(prop[0], prop[1]...)))
	for j, name := range []string{"kick propagation B → A", "kick propagation B → C"} {
		d := distOf(measured(prop[j]))
		r.Rows = append(r.Rows, Row{Name: name, Requests: int64(d.N), P50us: d.P50, P90us: d.P90, P99us: d.P99, MaxUs: d.Max})
	}
	r.note("kick propagation (B's kick answer → A and C no longer answering from cache), %s samples: p50 %s, p99 %s, max %s; %d of them already gone at the first poll",
		fmtInt(int64(all.N)), ms(all.P50), ms(all.P99), ms(all.Max), atOnce)
	return nil
}

package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"playerguard/bench/peers/spec"
	"playerguard/validator/kakaogames/kakaogamestest"
	"playerguard/validator/kakaooidc/kakaooidctest"
)

// klHit is the hit row of playerguard's kakao-login endpoint.
const klHit = klRowPrefix + klPath

// hitTarget is one server the hit load is run against.
type hitTarget struct {
	name     string
	proc     measured
	job      wrkJob
	upstream bool // its cache misses reach the fake (calls are counted)
}

// hitSample is one measured wrk run.
type hitSample struct {
	res   wrkResult
	cpu   float64 // CPU seconds of the target's processes during the run
	calls int64   // upstream calls during the run
}

func (s hitSample) cpuPerReq() float64 { return s.cpu / float64(s.res.Requests) * 1e6 }

// hitCacheTTL is playerguard's -cache-ttl in the hit scenario: longer than
// the scenario (a 7-round run lasts over 5 minutes, the default -cache-ttl),
// so that no warm entry expires during the load.
const hitCacheTTL = "30m"

// runHit: steady connects over a warm cache, at o.connections connections,
// for /v1/validate and drop-in, against the ceiling, minimal and nginx peers,
// and for /v1/kakao-login/validate and /v1/kakao-oidc/validate (playerguard
// only).
func runHit(e *env, r *Report) error {
	o := e.o
	kl, klPlayers, err := startKakaoLoginAllowed("kl-hit", o.hitTokens)
	if err != nil {
		return err
	}
	defer kl.Close()
	oidc, err := kakaooidctest.Start()
	if err != nil {
		return err
	}
	defer oidc.Close()
	e.logf("hit: signing %s kakao-oidc ID tokens", fmtInt(int64(o.oidcHitTokens)))
	oidcToks := signOIDC(oidc, 4_000_000_000, o.oidcHitTokens, true)
	oidcPs := oidcPlayers(oidcToks)
	flags := append(kakaoLoginFlags(kl), kakaoOIDCFlags(oidc)...)
	fake, players, pg, err := e.startAllowed("hit", o.hitTokens, 0, append(flags, "-cache-ttl", hitCacheTTL)...)
	if err != nil {
		return err
	}
	defer fake.Close()
	defer pg.stop(5 * time.Second)
	if err := waitOIDCReady(pg); err != nil {
		return err
	}
	oidcFetches0 := oidc.Fetches() // the start-up fetch
	up := fake.Config()
	r.setup("%s warm players (each token claims its playerId, platforms cycled), every one cached before the load", fmtInt(int64(len(players))))
	r.setup("wrk -t%d -c%d, %d round(s) of %v per server (after %v unmeasured warm-up), servers alternated, medians reported",
		min(o.threads, o.connections), o.connections, o.rounds, o.duration, o.warmup)
	r.setup("playerguard: built from the tree, defaults but -log-level error -cache-ttl %s (longer than the scenario), three providers enabled (kakao-games; kakao-login: -kakao-login-app-id %s -kakao-login-api <in-process kakaologintest fake>; kakao-oidc: -kakao-oidc-audiences %s -kakao-oidc-jwks-url <in-process kakaooidctest key set>); ceiling: bench/peers/ceiling answering playerguard's own cache-hit bytes; nginx: bench/peers/nginx.conf.tmpl", hitCacheTTL, klAppID, oidcAudience)
	r.setup("kakao-login /v1/kakao-login/validate: %s more warm Kakao Login tokens (each claims its user id; expires_in %ds, so each allow is cached for -cache-ttl), every one cached before the load, loaded by the same wrk in the same alternated rounds; Kakao Games only for the ceiling, minimal, net/http prototype and nginx peers (none of them has a kakao-login equivalent)",
		fmtInt(int64(len(klPlayers))), klExpiresIn)
	r.setup("%s: %s warm Kakao ID tokens (RS256, signed at set-up by the fake's 2048-bit key; each request {\"idToken\",\"playerId\"} claims the token's sub; exp %v ahead, so each allow is cached for -cache-ttl), every one cached before the load, loaded by the same wrk in the same alternated rounds, next to kakao-login (one target from playerguard /v1/validate); playerguard only",
		oidcHit, fmtInt(int64(len(oidcToks))), oidcLifetime)

	const warmWorkers = 32
	for _, m := range []mode{modeDropIn, modeV1} {
		c := newHClient(pg.api, m, warmWorkers, up)
		left, err := warm(c, players, warmWorkers, fromPlayerguardCache)
		c.close()
		if err != nil {
			return err
		}
		r.check(kindCorrectness, "warm players answered allow from cache ("+m.String()+")", "all", left == 0,
			"%s of %s", fmtInt(int64(len(players)-left)), fmtInt(int64(len(players))))
	}
	{
		c := newHClient(pg.api, modeKakaoLogin, warmWorkers, up)
		left, err := warm(c, klPlayers, warmWorkers, fromPlayerguardCache)
		if err != nil {
			c.close()
			return err
		}
		r.check(kindCorrectness, "warm Kakao Login tokens answered allow from cache ("+klPath+")", "all", left == 0,
			"%s of %s", fmtInt(int64(len(klPlayers)-left)), fmtInt(int64(len(klPlayers))))
		// The answer is the kakao-login provider's: the token's user.
		ps := []player{klPlayers[0], klPlayers[len(klPlayers)-1]}
		bad := ""
		for _, p := range ps {
			rep, _, err := c.do(p, 5*time.Second, true)
			if err != nil {
				c.close()
				return err
			}
			if rep.status != 200 || rep.decision != "allow" || rep.source != "cache" || !klCachedBody(rep.body, p.id) {
				bad = fmt.Sprintf(": %d %s/%s %q", rep.status, rep.decision, rep.source, rep.body)
				break
			}
		}
		c.close()
		r.check(kindCorrectness, "kakao-login cache hits carry the token's user ("+klPath+")", `200, X-Playerguard-Source: cache, {"decision":"allow",…,"user":{"id":"<claimed>","appId":`+klAppID+`,…}}`,
			bad == "", "tokens checked: %d%s", len(ps), bad)
	}
	{
		c := newHClient(pg.api, modeKakaoOIDC, warmWorkers, up)
		left, err := warm(c, oidcPs, warmWorkers, fromPlayerguardCache)
		if err != nil {
			c.close()
			return err
		}
		r.check(kindCorrectness, "warm Kakao ID tokens answered allow from cache ("+oidcPath+")", "all", left == 0,
			"%s of %s", fmtInt(int64(len(oidcPs)-left)), fmtInt(int64(len(oidcPs))))
		// The answer is the kakao-oidc provider's: the token's user.
		ts := []oidcToken{oidcToks[0], oidcToks[len(oidcToks)/2], oidcToks[len(oidcToks)-1]}
		bad := ""
		for _, t := range ts {
			rep, _, err := c.do(t.player, 5*time.Second, true)
			if err != nil {
				c.close()
				return err
			}
			if want := oidcCachedBody(t); rep.status != 200 || rep.decision != "allow" || rep.source != "cache" || string(rep.body) != want {
				bad = fmt.Sprintf(": %d %s/%s %q, want %s", rep.status, rep.decision, rep.source, rep.body, want)
				break
			}
		}
		c.close()
		r.check(kindCorrectness, "kakao-oidc cache hits carry the token's user ("+oidcPath+")", `200, X-Playerguard-Source: cache, {"decision":"allow",…,"user":{"id":"<sub>","exp":<exp>,"authTime":…,"nickname":…}}`,
			bad == "", "tokens checked: %d%s", len(ts), bad)
	}

	// The ceiling answers playerguard's cache-hit bytes for players[0];
	// the minimal peer, the same server, each player's own after the
	// least a correct cache hit must do (decode, hash, look up).
	var routes, keyed []spec.Route
	for _, m := range []mode{modeV1, modeDropIn} {
		rt, err := captureRoute(pg.api, m, players[0], up)
		if err != nil {
			return err
		}
		kr, err := minimalRoute(pg.api, m, rt, players, up)
		if err != nil {
			return err
		}
		routes, keyed = append(routes, rt), append(keyed, kr)
	}
	ceil, err := e.startCeiling(routes)
	if err != nil {
		return err
	}
	defer ceil.stop(5 * time.Second)
	minimal, err := e.startCeiling(keyed)
	if err != nil {
		return err
	}
	defer minimal.stop(5 * time.Second)
	// The quick prototype: net/http, encoding/json, a mutex-guarded map.
	proto, err := e.startPeer("nethttp", e.protoBin, keyed[:1])
	if err != nil {
		return err
	}
	defer proto.stop(5 * time.Second)
	// The prototype frames answers its own way (net/http's header order,
	// Date, Content-Length): compared as the bench reads them.
	{
		ps := []player{players[0], players[len(players)-1]}
		same, detail, err := sameReplies(pg.api, proto.addr, modeV1, ps, up)
		if err != nil {
			return err
		}
		r.check(kindCorrectness, "the net/http prototype answers as playerguard (/v1/validate)", "same status, X-Playerguard-*, content type, body",
			same, "players checked: %d%s", len(ps), detail)
	}
	r.setup("answer bodies: /v1/validate %d bytes, drop-in %d bytes (the ceiling sends the same, with the same X-Playerguard-* headers)",
		len(routes[0].Body), len(routes[1].Body))
	r.setup("net/http prototype: bench/peers/nethttp, the standard library's server and encoding/json, the same key, a mutex-guarded map; /v1/validate only")
	r.setup("minimal: the ceiling plus the least a correct cache hit does (playerguard's JSON decoder or the three headers, its SHA-256 key, a read-only map of the %s players, each player's own answer bytes)",
		fmtInt(int64(len(players))))
	for _, m := range []mode{modeV1, modeDropIn} {
		// The ceiling answers every player with players[0]'s bytes; the
		// minimal peer answers each player with its own.
		for _, peer := range []struct {
			name, addr string
			who        []player
		}{
			{"ceiling", ceil.addr, players[:1]},
			{"minimal peer", minimal.addr, []player{players[0], players[len(players)/2], players[len(players)-1]}},
		} {
			same, n, detail, err := sameWire(pg.api, peer.addr, m, peer.who)
			if err != nil {
				return err
			}
			r.check(kindCorrectness, "the "+peer.name+" answers with playerguard's bytes ("+m.String()+")", "same status, headers, body (Date aside)",
				same, "%d bytes, players checked: %d%s", n, len(peer.who), detail)
		}
	}

	var ngx *nginxPeer
	if e.nginx == "" {
		r.skipMissing("nginx", "nginx peer")
	} else {
		if ngx, err = e.startNginx(up, fake.Addr()); err != nil {
			return err
		}
		defer ngx.stop(5 * time.Second)
		c := newHClient(ngx.addr, modeDropIn, warmWorkers, up)
		left, err := warm(c, players, warmWorkers, fromNginxCache)
		c.close()
		if err != nil {
			return fmt.Errorf("nginx peer: %w", err)
		}
		r.check(kindCorrectness, "warm players answered from nginx's cache", "all (X-Cache-Status: HIT)", left == 0,
			"%s of %s", fmtInt(int64(len(players)-left)), fmtInt(int64(len(players))))
	}
	if e.wrk == "" {
		r.skipMissing("wrk", "hit load (wrk drives it)")
		return nil
	}

	var targets []hitTarget
	add := func(name string, p measured, m mode, addr string, upstream bool) error {
		ps := players
		switch m {
		case modeKakaoLogin:
			ps = klPlayers
		case modeKakaoOIDC:
			ps = oidcPs
		}
		job, err := e.newWrkJob(strings.ReplaceAll(strings.Fields(name)[0], "/", ""), ps, m, addr)
		targets = append(targets, hitTarget{name: name, proc: p, job: job, upstream: upstream})
		return err
	}
	// kakao-oidc and kakao-login first: next to playerguard /v1/validate,
	// which they are compared with, so that kakao-login and it run back to
	// back in every round, kakao-oidc one target away (the pairs measured
	// before it came keep their places).
	if err := firstErr(
		add(oidcHit, pg, modeKakaoOIDC, pg.api, true),
		add(klHit, pg, modeKakaoLogin, pg.api, true),
		add("playerguard /v1/validate", pg, modeV1, pg.api, true),
		add("minimal /v1/validate", minimal, modeV1, minimal.addr, false),
		add("ceiling /v1/validate", ceil, modeV1, ceil.addr, false),
		add("net/http prototype /v1/validate", proto, modeV1, proto.addr, false),
		add("playerguard drop-in", pg, modeDropIn, pg.api, true),
		add("minimal drop-in", minimal, modeDropIn, minimal.addr, false),
		add("ceiling drop-in", ceil, modeDropIn, ceil.addr, false),
	); err != nil {
		return err
	}
	if ngx != nil {
		if err := add("nginx drop-in (proxy_cache)", ngx, modeDropIn, ngx.addr, true); err != nil {
			return err
		}
	}

	// Calls to any fake: a hit load's misses reach one of them (a
	// kakao-oidc miss only when it names a key playerguard does not hold).
	upCalls := func() int64 { return fake.Calls() + kl.Calls() + oidc.Fetches() }
	samples := map[string][]hitSample{}
	for round := range o.rounds {
		for _, t := range alternate(targets, round) {
			if o.warmup > 0 {
				if _, err := e.runWrk(t.job, o.warmup, o.connections); err != nil {
					return err
				}
			}
			u0, c0 := snapshot(t.proc), upCalls()
			res, err := e.runWrk(t.job, o.duration, o.connections)
			if err != nil {
				return err
			}
			u1, c1 := snapshot(t.proc), upCalls()
			samples[t.name] = append(samples[t.name], hitSample{res: res, cpu: u1.cpu - u0.cpu, calls: c1 - c0})
			e.logf("hit: round %d/%d %-28s %8.0f req/s  p99 %s  errors %d", round+1, o.rounds, t.name, res.rps(), fmtUs(res.P99), res.errors())
		}
	}

	allOK, pgCalls, klCalls, oidcCalls := true, int64(0), int64(0), int64(0)
	var bad []string
	// The rows: Kakao Games' as before, then kakao-login's, then
	// kakao-oidc's.
	rowOrder := make([]hitTarget, 0, len(targets))
	isProvider := func(name string) bool {
		return strings.HasPrefix(name, klRowPrefix) || strings.HasPrefix(name, oidcRowPrefix)
	}
	for _, t := range targets {
		if !isProvider(t.name) {
			rowOrder = append(rowOrder, t)
		}
	}
	for _, prefix := range []string{klRowPrefix, oidcRowPrefix} {
		for _, t := range targets {
			if strings.HasPrefix(t.name, prefix) {
				rowOrder = append(rowOrder, t)
			}
		}
	}
	for _, t := range rowOrder {
		ss := samples[t.name]
		row := Row{Name: t.name, PeakRSSMiB: mib(peakRSS(t.proc))}
		var rps, p50, p90, p99, mx, cpu, cpr []float64
		var calls int64
		for _, s := range ss {
			row.Requests += s.res.Requests
			row.Errors += s.res.errors()
			calls += s.calls
			rps = append(rps, s.res.rps())
			p50, p90, p99, mx = append(p50, s.res.P50), append(p90, s.res.P90), append(p99, s.res.P99), append(mx, s.res.Max)
			cpu, cpr = append(cpu, s.cpu), append(cpr, s.cpuPerReq())
		}
		row.RPS, row.P50us, row.P90us, row.P99us, row.MaxUs = median(rps), median(p50), median(p90), median(p99), median(mx)
		row.RoundsRPS = rps
		row.CPUSeconds, row.CPUusPerReq = f64(median(cpu)), f64(median(cpr))
		if t.upstream {
			row.UpstreamCalls = i64(calls)
		}
		if strings.HasPrefix(t.name, "playerguard") {
			pgCalls += calls
		}
		if strings.HasPrefix(t.name, klRowPrefix) {
			klCalls += calls
		}
		if strings.HasPrefix(t.name, oidcRowPrefix) {
			oidcCalls += calls
		}
		if row.Errors != 0 {
			allOK = false
			bad = append(bad, fmt.Sprintf("%s: %d", t.name, row.Errors))
		}
		r.Rows = append(r.Rows, row)
	}
	r.check(kindCorrectness, "every hit answered 200 (allow), on every server", "0 errors", allOK, "%s", orDefault(strings.Join(bad, ", "), "0 errors"))
	r.check(kindCorrectness, "playerguard made no upstream call during the hit load", "0", pgCalls == 0, "%d", pgCalls)
	r.check(kindCorrectness, "playerguard made no upstream call during the kakao-login hit load", "0", klCalls == 0, "%d", klCalls)
	r.check(kindCorrectness, "playerguard made no upstream call (key fetch) during the kakao-oidc hit load", "0", oidcCalls == 0, "%d", oidcCalls)
	fetches := oidc.Fetches()
	r.check(kindCorrectness, "kakao-oidc: no key fetch beyond the start-up one (hit)", "1 fetch in all", oidcFetches0 == 1 && fetches == oidcFetches0,
		"%d in all (%d by the time the provider was ready)", fetches, oidcFetches0)

	// Peer ratios, paired per round.
	ratio := func(name, a, b string, f func(hitSample) float64) (float64, bool) {
		sa, sb := samples[a], samples[b]
		if len(sa) == 0 || len(sb) == 0 {
			return 0, false
		}
		var rs []float64
		for i := range min(len(sa), len(sb)) {
			rs = append(rs, f(sa[i])/f(sb[i]))
		}
		v := median(rs)
		r.Ratios = append(r.Ratios, Ratio{Name: name, Value: v, Rounds: rs})
		return v, true
	}
	rps := func(s hitSample) float64 { return s.res.rps() }
	p99 := func(s hitSample) float64 { return s.res.P99 }
	cpr := func(s hitSample) float64 { return s.cpuPerReq() }
	const (
		pgV1, pgDrop     = "playerguard /v1/validate", "playerguard drop-in"
		ceilV1, ceilDrop = "ceiling /v1/validate", "ceiling drop-in"
		nginxDrop        = "nginx drop-in (proxy_cache)"
	)
	target := func(name, want string, v float64, ok bool) {
		r.check(kindTarget, name, want, ok, "%.3f", v)
	}
	if v, ok := ratio("throughput: playerguard drop-in ÷ ceiling drop-in", pgDrop, ceilDrop, rps); ok {
		target("hit drop-in throughput vs ceiling", "≥ 0.95", v, v >= 0.95)
	}
	if v, ok := ratio("throughput: playerguard /v1/validate ÷ ceiling /v1/validate", pgV1, ceilV1, rps); ok {
		target("hit /v1/validate throughput vs ceiling", "≥ 0.90", v, v >= 0.90)
	}
	if v, ok := ratio("throughput: playerguard drop-in ÷ nginx drop-in", pgDrop, nginxDrop, rps); ok {
		target("hit drop-in throughput vs nginx", "≥ 1.10", v, v >= 1.10)
	}
	if v, ok := ratio("throughput: playerguard /v1/validate ÷ nginx drop-in", pgV1, nginxDrop, rps); ok {
		target("hit /v1/validate throughput vs nginx", "≥ 1.10", v, v >= 1.10)
	}
	if v, ok := ratio("p99: playerguard drop-in ÷ ceiling drop-in", pgDrop, ceilDrop, p99); ok {
		target("hit drop-in p99 vs ceiling", "≤ 1.10", v, v <= 1.10)
	}
	if v, ok := ratio("p99: playerguard /v1/validate ÷ ceiling /v1/validate", pgV1, ceilV1, p99); ok {
		target("hit /v1/validate p99 vs ceiling", "≤ 1.10", v, v <= 1.10)
	}
	if v, ok := ratio("CPU per request: playerguard drop-in ÷ ceiling drop-in", pgDrop, ceilDrop, cpr); ok {
		target("hit drop-in CPU per request vs ceiling", "≤ 1.15", v, v <= 1.15)
	}
	if v, ok := ratio("CPU per request: playerguard /v1/validate ÷ ceiling /v1/validate", pgV1, ceilV1, cpr); ok {
		target("hit /v1/validate CPU per request vs ceiling", "≤ 1.15", v, v <= 1.15)
	}
	ratio("CPU per request: nginx drop-in ÷ ceiling drop-in", nginxDrop, ceilDrop, cpr)

	const protoV1 = "net/http prototype /v1/validate"
	ratio("throughput: net/http prototype ÷ ceiling /v1/validate", protoV1, ceilV1, rps)
	ratio("CPU per request: net/http prototype ÷ ceiling /v1/validate", protoV1, ceilV1, cpr)
	ratio("throughput: playerguard /v1/validate ÷ net/http prototype", pgV1, protoV1, rps)

	// The minimal peer bounds what any correct implementation can score
	// against the ceiling here; playerguard ÷ minimal is its own overhead.
	const minV1, minDrop = "minimal /v1/validate", "minimal drop-in"
	for _, c := range []struct {
		mode               string
		pgName, min, ceil  string
		throughput, cpuTgt float64
	}{
		{"drop-in", pgDrop, minDrop, ceilDrop, 0.95, 1.15},
		{"/v1/validate", pgV1, minV1, ceilV1, 0.90, 1.15},
	} {
		floor, ok1 := ratio("throughput: minimal "+c.mode+" ÷ ceiling "+c.mode, c.min, c.ceil, rps)
		floorCPU, ok2 := ratio("CPU per request: minimal "+c.mode+" ÷ ceiling "+c.mode, c.min, c.ceil, cpr)
		own, ok3 := ratio("throughput: playerguard "+c.mode+" ÷ minimal "+c.mode, c.pgName, c.min, rps)
		ownCPU, ok4 := ratio("CPU per request: playerguard "+c.mode+" ÷ minimal "+c.mode, c.pgName, c.min, cpr)
		if !ok1 || !ok2 || !ok3 || !ok4 {
			continue
		}
		r.note("%s: the minimal peer (decode, SHA-256 key, map lookup, nothing else) reaches %.3f of the ceiling's throughput at %.3f× its CPU per request (targets: ≥ %.2f, ≤ %.2f×); playerguard reaches %.3f of the minimal peer's throughput at %.3f× its CPU",
			c.mode, floor, floorCPU, c.throughput, c.cpuTgt, own, ownCPU)
	}

	// kakao-login's cache hit against Kakao Games' /v1/validate, the same
	// process in the same rounds: informational, no target.
	ratio("throughput: "+klHit+" ÷ playerguard /v1/validate", klHit, pgV1, rps)
	ratio("CPU per request: "+klHit+" ÷ playerguard /v1/validate", klHit, pgV1, cpr)
	// kakao-oidc's the same way.
	ratio("throughput: "+oidcHit+" ÷ playerguard /v1/validate", oidcHit, pgV1, rps)
	ratio("CPU per request: "+oidcHit+" ÷ playerguard /v1/validate", oidcHit, pgV1, cpr)

	if o.perf {
		e.profileHit(r, targets)
	}
	return nil
}

// sameWire reports whether the servers at a and b answer each of ps in
// mode m with the same bytes (Date aside), the size of a's last answer,
// and the first difference.
func sameWire(a, b string, m mode, ps []player) (same bool, n int, detail string, err error) {
	for _, p := range ps {
		want, err1 := wireAnswer(a, m, p)
		got, err2 := wireAnswer(b, m, p)
		if err := firstErr(err1, err2); err != nil {
			return false, 0, "", err
		}
		n = len(want)
		if got != want {
			return false, n, ":\n" + want + "\n---\n" + got, nil
		}
	}
	return true, n, "", nil
}

// sameReplies reports whether the servers at a and b give each of ps in
// mode m the same reply as the bench reads it (status, X-Playerguard-*,
// content type, body), and the first difference.
func sameReplies(a, b string, m mode, ps []player, up kakaogamestest.Config) (same bool, detail string, err error) {
	ca, cb := newHClient(a, m, 1, up), newHClient(b, m, 1, up)
	defer ca.close()
	defer cb.close()
	for _, p := range ps {
		want, _, err1 := ca.do(p, 5*time.Second, true)
		got, _, err2 := cb.do(p, 5*time.Second, true)
		if err := firstErr(err1, err2); err != nil {
			return false, "", err
		}
		if !reflect.DeepEqual(got, want) {
			show := func(r reply) string {
				return fmt.Sprintf("%d %s/%s/%s %s %q", r.status, r.decision, r.reason, r.source, r.ctype, r.body)
			}
			return false, ": " + show(got) + ", want " + show(want), nil
		}
	}
	return true, "", nil
}

// profileHit records playerguard (both modes) and the ceiling with perf
// during one extra, unmeasured wrk run each, and notes their hottest
// functions. It is an external view: the lead profiles the hot path with
// go test -bench in validator/.
func (e *env) profileHit(r *Report, targets []hitTarget) {
	perf := lookTool("perf", "/usr/bin/perf")
	if perf == "" {
		r.Skipped = append(r.Skipped, "perf profile: perf is not installed (apt-get install -y linux-perf)")
		return
	}
	for _, t := range targets {
		if strings.HasPrefix(t.name, "nginx") {
			continue
		}
		pids := t.proc.PIDs()
		if len(pids) == 0 {
			continue
		}
		out, err := e.perfRecord(perf, pids[0], t)
		if err != nil {
			r.note("perf %s: %v", t.name, err)
			continue
		}
		r.note("perf profile of %s during one extra %v wrk run (share of the process's samples, functions ≥ 0.5%%; [k] kernel, [.] user):\n%s", t.name, e.o.duration, out)
	}
}

func (e *env) perfRecord(perf string, pid int, t hitTarget) (string, error) {
	rec, err := e.startPerf(perf, pid, 999)
	if err != nil {
		return "", err
	}
	secs := max(1, int(e.o.duration.Seconds()))
	_, wrkErr := e.runWrk(t.job, time.Duration(secs)*time.Second, e.o.connections)
	out, err := rec.stop()
	return out, firstErr(wrkErr, err)
}

// perfRun is a perf record of one process, under way.
type perfRun struct {
	perf, data string
	cmd        *exec.Cmd
	out        *tailBuffer
}

// startPerf starts recording pid with call graphs at freq samples a
// second and returns once perf has had time to attach.
func (e *env) startPerf(perf string, pid, freq int) (*perfRun, error) {
	dir, err := e.tempDir("perf-")
	if err != nil {
		return nil, err
	}
	r := &perfRun{perf: perf, data: filepath.Join(dir, "perf.data"), out: &tailBuffer{max: 4 << 10}}
	r.cmd = exec.Command(perf, "record", "-F", strconv.Itoa(freq), "-g", "-p", strconv.Itoa(pid), "-o", r.data)
	r.cmd.Stdout, r.cmd.Stderr = r.out, r.out
	if err := r.cmd.Start(); err != nil {
		return nil, err
	}
	time.Sleep(500 * time.Millisecond)
	return r, nil
}

// stop ends the recording and returns the process's hottest functions,
// by self time and inclusive of callees (request-path functions only).
func (r *perfRun) stop() (string, error) {
	r.cmd.Process.Signal(os.Interrupt)
	if err := r.cmd.Wait(); err != nil && !strings.Contains(err.Error(), "interrupt") {
		return "", fmt.Errorf("perf record: %v: %s", err, r.out.String())
	}
	flat, err := perfReport(r.perf, r.data, "--no-children", 25, nil)
	if err != nil {
		return "", err
	}
	// Inclusive time of the functions playerguard adds over the ceiling.
	ours := regexp.MustCompile(`playerguard/|ristretto|prometheus|sha256|time\.Now|fasthttp\.\(\*RequestCtx\)|fasthttp\.\(\*Server\)\.serveConn|fasthttp\.\(\*HostClient\)\.Do$|runtime\.gcAssistAlloc$|runtime\.gcBgMarkWorker$|asm_exc_page_fault`)
	incl, err := perfReport(r.perf, r.data, "--children", 30, ours)
	if err != nil {
		return "", err
	}
	return "  self time:\n" + flat + "\n  inclusive (callees counted), request path functions:\n" + incl, nil
}

// perfReport runs perf report on data and returns up to max symbol lines
// (only those matching keep, if not nil).
func perfReport(perf, data, mode string, maxLines int, keep *regexp.Regexp) (string, error) {
	rep, err := exec.Command(perf, "report", "-i", data, "--stdio", mode, "--sort", "symbol",
		"-g", "none", "--percent-limit", "0.5").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("perf report: %v: %s", err, rep)
	}
	var lines []string
	for _, l := range strings.Split(string(rep), "\n") {
		t := strings.TrimSpace(perfTrailer.ReplaceAllString(l, ""))
		if !strings.Contains(t, "%") || strings.HasPrefix(t, "#") || (keep != nil && !keep.MatchString(t)) {
			continue
		}
		lines = append(lines, "    "+t)
		if len(lines) == maxLines {
			break
		}
	}
	return strings.Join(lines, "\n"), nil
}

// perfTrailer is the empty columns perf report prints after the symbol.
var perfTrailer = regexp.MustCompile(`(\s+-)+\s*$`)

// alternate is the order to run targets in a round: as listed in even
// rounds, reversed in odd ones. Servers compared with each other are
// listed next to each other, so each pair runs back to back either way,
// and none always runs first.
func alternate[T any](targets []T, round int) []T {
	out := append([]T(nil), targets...)
	if round%2 == 1 {
		slices.Reverse(out)
	}
	return out
}

func firstErr(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

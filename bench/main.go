// Command bench runs playerguard's end-to-end load scenarios on loopback
// and compares playerguard with peers measured in the same run by the same
// load generator. See bench/README.md.
//
//	go run ./bench -scenario all           # full run (a few minutes)
//	go run ./bench -scenario all -smoke    # CI: seconds, correctness only
//	go run ./bench -scenario hit -json     # machine-readable
//
// Each run builds playerguard from the tree once (go build ./cmd/playerguard)
// and runs it as a subprocess configured through the environment against
// an in-process fake Kakao upstream (validator/kakaogames/kakaogamestest);
// hit and miss also enable its kakao-login provider against an in-process
// Kakao Login fake (validator/kakaologin/kakaologintest) and its kakao-oidc
// provider against an in-process key set (validator/kakaooidc/kakaooidctest);
// fleet starts a redis-server of its own for three sidecars.
// Every load is bounded in count and time and stops by itself. The exit
// code is 1 if a correctness check failed or a scenario could not run, 2
// on bad flags; a missed performance target is reported, not an error.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"time"
)

func main() {
	if os.Getenv(childEnv) != "" {
		os.Exit(runFakeChild())
	}
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// options are the run's settings. Sizes and durations default to the full
// run's; -smoke switches the defaults to seconds-long sizes (flags given
// explicitly still win).
type options struct {
	scenario        string
	duration        time.Duration // one measured load run
	warmup          time.Duration // unmeasured load before each measured run
	connections     int           // hit (wrk) and miss (Go client) connections
	rounds          int           // peers alternate this many times; medians are reported
	threads         int           // wrk threads
	upstreamLatency time.Duration // negative: each scenario's default
	errorRate       float64       // miss: share of tokens the upstream answers 500
	smoke           bool
	json            bool
	perf            bool // hit and storm: record the servers with perf

	hitTokens      int
	oidcHitTokens  int // hit: warm kakao-oidc ID tokens
	oidcMissTokens int // miss: new kakao-oidc ID tokens per round
	stormTokens    int
	stormRequests  int
	players        int // sanction-wave
	memEntries     int // memory: players filled into the default-bound cache
	memBound       int // memory: -cache-max-entries of the bounded run
	memBoundFill   int // memory: players filled into the bounded cache
	soakDuration   time.Duration
	fleetPlayers   int           // fleet: keys of the latency and kick parts
	redisTimeout   time.Duration // fleet: the sidecars' -redis-timeout
	sessions       int           // sessions: live sessions (5% are sanctioned)
	revalEvery     time.Duration // sessions: playerguard's -revalidate-every
	revalMaxRPS    float64       // sessions: playerguard's -revalidate-max-rps
}

// scenario is one load scenario.
type scenario struct {
	name  string
	title string
	run   func(e *env, r *Report) error
}

var scenarios = []scenario{
	{"hit", "steady connects over a warm cache, with the ceiling, minimal and nginx peers", runHit},
	{"miss", "every connect a new token: latency added over the upstream's", runMiss},
	{"storm", "reconnect storm: many connects over fewer tokens, all at once", runStorm},
	{"outage", "the upstream fails, hangs, then recovers under steady load", runOutage},
	{"sanction-wave", "a share of warm players sanctioned upstream and purged", runSanction},
	{"memory", "the cache filled with distinct players: RSS and the entry bound", runMemory},
	{"fleet", "three sidecars sharing a Redis: storm calls, kick propagation, shared-hit and miss latency", runFleet},
	{"sessions", "live sessions revalidated, a sanction wave mid-run: kick events over SSE", runSessions},
	{"soak", "mixed load with outages: RSS, heap, goroutines and fds must not keep growing", runSoak},
}

func scenarioNames() []string {
	var n []string
	for _, s := range scenarios {
		n = append(n, s.name)
	}
	return n
}

func parseOptions(args []string, stderr io.Writer) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.scenario, "scenario", "", "scenario to run: "+strings.Join(scenarioNames(), ", ")+", or all")
	fs.DurationVar(&o.duration, "duration", 3*time.Second, "length of one measured load run (wrk rounds it up to whole seconds)")
	fs.DurationVar(&o.warmup, "warmup", time.Second, "unmeasured load before each measured run; 0 for none")
	fs.IntVar(&o.connections, "connections", 64, "connections of the hit (wrk) and miss (Go client) loads")
	fs.IntVar(&o.rounds, "rounds", 7, "times each peer is measured, alternating with the others; medians are reported")
	fs.IntVar(&o.threads, "threads", 2, "wrk threads")
	fs.DurationVar(&o.upstreamLatency, "upstream-latency", -1, "fake upstream latency for miss, storm, outage, sanction-wave, fleet and sessions (default: 30ms, 50ms for storm and fleet)")
	fs.Float64Var(&o.errorRate, "error-rate", 0, "miss: share of new tokens (0..1) the fake upstream answers 500")
	fs.BoolVar(&o.smoke, "smoke", false, "tiny sizes (seconds in all) for CI: asserts correctness, not speed")
	fs.BoolVar(&o.json, "json", false, "print machine-readable results instead of tables")
	fs.BoolVar(&o.perf, "perf", false, "hit: also record playerguard and its Go peers with perf(1) during one extra run each; storm: playerguard over one extra storm; print their top functions")
	fs.IntVar(&o.hitTokens, "hit-tokens", 10_000, "hit: distinct warm players the load cycles over")
	fs.IntVar(&o.oidcHitTokens, "oidc-hit-tokens", 2_000, "hit: distinct warm kakao-oidc ID tokens (each signed at set-up, about 1 ms of CPU each)")
	fs.IntVar(&o.oidcMissTokens, "oidc-miss-tokens", 1_000, "miss: new kakao-oidc ID tokens sent per round (each signed at set-up)")
	fs.IntVar(&o.stormTokens, "storm-tokens", 1_000, "storm and fleet: distinct tokens")
	fs.IntVar(&o.stormRequests, "storm-requests", 10_000, "storm and fleet: connects launched at once (one connection each)")
	fs.IntVar(&o.players, "players", 10_000, "sanction-wave: warm players (10% are sanctioned)")
	fs.IntVar(&o.memEntries, "memory-entries", 1_000_000, "memory: distinct players filled into the cache at the default bound")
	fs.IntVar(&o.memBound, "memory-bound", 100_000, "memory: -cache-max-entries of the bounded run")
	fs.IntVar(&o.memBoundFill, "memory-bound-fill", 300_000, "memory: distinct players filled into the bounded run")
	fs.IntVar(&o.fleetPlayers, "fleet-players", 200, "fleet: keys validated across the sidecars, then kicked (latency and kick propagation)")
	fs.DurationVar(&o.redisTimeout, "redis-timeout", 50*time.Millisecond, "fleet: the fleet sidecars' -redis-timeout (playerguard's default 50ms)")
	fs.IntVar(&o.sessions, "sessions", 10_000, "sessions: live sessions registered (every twentieth is sanctioned mid-run)")
	fs.DurationVar(&o.revalEvery, "revalidate-every", 20*time.Second, "sessions: playerguard's -revalidate-every (a round; the scenario lasts a little over two)")
	fs.Float64Var(&o.revalMaxRPS, "revalidate-max-rps", 600, "sessions: playerguard's -revalidate-max-rps")
	fs.DurationVar(&o.soakDuration, "soak-duration", time.Minute, "soak: how long the mixed load runs (CI: 60s; try 30m before a release)")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if o.smoke {
		given := map[string]bool{}
		fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
		o.applySmoke(given)
	}
	if o.scenario == "" {
		return nil, fmt.Errorf("-scenario is required: %s, or all", strings.Join(scenarioNames(), ", "))
	}
	if o.scenario != "all" && !slices.Contains(scenarioNames(), o.scenario) {
		return nil, fmt.Errorf("-scenario: unknown %q (want %s, or all)", o.scenario, strings.Join(scenarioNames(), ", "))
	}
	switch {
	case o.duration <= 0 || o.duration > 10*time.Minute:
		return nil, errors.New("-duration: must be in (0, 10m]")
	case o.warmup < 0 || o.warmup > time.Minute:
		return nil, errors.New("-warmup: must be in [0, 1m]")
	case o.connections < 1 || o.connections > 4096:
		return nil, errors.New("-connections: must be in [1, 4096]")
	case o.rounds < 1 || o.rounds > 20:
		return nil, errors.New("-rounds: must be in [1, 20]")
	case o.threads < 1:
		return nil, errors.New("-threads: must be positive")
	case o.soakDuration < 4*time.Second || o.soakDuration > 24*time.Hour:
		return nil, errors.New("-soak-duration: must be in [4s, 24h]")
	case o.errorRate < 0 || o.errorRate > 1:
		return nil, errors.New("-error-rate: must be in [0, 1]")
	case o.hitTokens < 1 || o.stormTokens < 1 || o.stormRequests < o.stormTokens || o.players < 10:
		return nil, errors.New("sizes: -hit-tokens, -storm-tokens positive; -storm-requests >= -storm-tokens; -players >= 10")
	case o.stormRequests > 15_000:
		return nil, errors.New("-storm-requests: at most 15000 (one connection each; the open-files limit is often 20000)")
	case o.fleetPlayers < 1 || o.fleetPlayers > 100_000:
		return nil, errors.New("-fleet-players: must be in [1, 100000]")
	case o.redisTimeout <= 0 || o.redisTimeout > 5*time.Second:
		return nil, errors.New("-redis-timeout: must be in (0, 5s]")
	case o.sessions < 20 || o.sessions > 100_000:
		return nil, errors.New("-sessions: must be in [20, 100000]")
	case o.revalEvery < time.Second || o.revalEvery > 10*time.Minute:
		return nil, errors.New("-revalidate-every: must be in [1s, 10m]")
	case o.revalMaxRPS <= 0 || o.revalMaxRPS > 10_000:
		return nil, errors.New("-revalidate-max-rps: must be in (0, 10000]")
	case o.memEntries < 1 || o.memBound < 1 || o.memBoundFill < 1:
		return nil, errors.New("-memory-*: must be positive")
	case o.oidcHitTokens < 1 || o.oidcHitTokens > 100_000 || o.oidcMissTokens < 1 || o.oidcMissTokens > 100_000:
		return nil, errors.New("-oidc-hit-tokens, -oidc-miss-tokens: must be in [1, 100000] (each token is signed at set-up)")
	}
	return o, nil
}

// applySmoke sets the smoke sizes for every flag not given explicitly.
func (o *options) applySmoke(given map[string]bool) {
	set := func(name string, apply func()) {
		if !given[name] {
			apply()
		}
	}
	set("duration", func() { o.duration = time.Second })
	set("warmup", func() { o.warmup = 0 })
	set("rounds", func() { o.rounds = 1 })
	set("hit-tokens", func() { o.hitTokens = 500 })
	set("oidc-hit-tokens", func() { o.oidcHitTokens = 100 })
	set("oidc-miss-tokens", func() { o.oidcMissTokens = 100 })
	set("storm-tokens", func() { o.stormTokens = 100 })
	set("storm-requests", func() { o.stormRequests = 1_000 })
	set("players", func() { o.players = 500 })
	set("memory-entries", func() { o.memEntries = 5_000 })
	set("memory-bound", func() { o.memBound = 1_000 })
	set("memory-bound-fill", func() { o.memBoundFill = 5_000 })
	set("fleet-players", func() { o.fleetPlayers = 50 })
	set("soak-duration", func() { o.soakDuration = 8 * time.Second })
	set("sessions", func() { o.sessions = 200 })
	set("revalidate-every", func() { o.revalEvery = 2 * time.Second })
}

// latencyOr is the upstream latency to use: -upstream-latency if given,
// else def.
func (o *options) latencyOr(def time.Duration) time.Duration {
	if o.upstreamLatency >= 0 {
		return o.upstreamLatency
	}
	return def
}

func run(args []string, stdout, stderr io.Writer) int {
	o, err := parseOptions(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "bench: %v\n", err)
		return 2
	}
	e, err := newEnv(o, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "bench: %v\n", err)
		return 1
	}
	defer e.close()
	out := &Output{
		Command: "go run ./bench " + strings.Join(args, " "),
		Date:    time.Now().UTC().Format(time.RFC3339),
		Machine: e.machine(),
		Tree:    e.tree(),
	}
	for _, s := range scenarios {
		if o.scenario != "all" && o.scenario != s.name {
			continue
		}
		r := e.runScenario(s)
		out.Reports = append(out.Reports, r)
		out.Failed = out.Failed || r.failed()
	}
	if o.json {
		if err := writeJSON(stdout, out); err != nil {
			fmt.Fprintf(stderr, "bench: %v\n", err)
			return 1
		}
	} else {
		writeText(stdout, out)
	}
	if out.Failed {
		return 1
	}
	return 0
}

// runScenario runs s and returns its report; a setup failure becomes the
// report's Error.
func (e *env) runScenario(s scenario) *Report {
	r := &Report{Scenario: s.name, Title: s.title}
	e.logf("scenario %s: %s", s.name, s.title)
	start := time.Now()
	if err := s.run(e, r); err != nil {
		r.Error = err.Error()
		e.logf("scenario %s: %v", s.name, err)
	}
	r.Seconds = time.Since(start).Seconds()
	if e.o.smoke {
		for i := range r.Checks {
			if r.Checks[i].Kind == kindTarget {
				r.Checks[i].Kind = kindUnjudged
			}
		}
	}
	return r
}

// tree names the commit measured and any uncommitted change to
// playerguard's own code (the run builds the working tree).
func (e *env) tree() string {
	head, err := exec.Command("git", "-C", e.root, "rev-parse", "--short", "HEAD").Output()
	if err != nil {
		return "unknown (not a git checkout)"
	}
	s := strings.TrimSpace(string(head))
	dirty, _ := exec.Command("git", "-C", e.root, "status", "--porcelain", "--", "cmd", "validator", "cache", "metrics", "fleet", "go.mod", "go.sum").Output()
	var files []string
	for _, l := range strings.Split(strings.TrimSpace(string(dirty)), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			files = append(files, l)
		}
	}
	if len(files) > 0 {
		s += fmt.Sprintf(" + uncommitted changes (%s)", strings.Join(files, ", "))
	}
	return s
}

// machine describes this machine for the report.
func (e *env) machine() Machine {
	m := Machine{NProc: runtime.NumCPU(), Go: runtime.Version()}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	if e.wrk != "" {
		out, _ := exec.Command(e.wrk, "--version").CombinedOutput()
		if f := strings.Fields(string(out)); len(f) > 1 {
			m.Wrk = f[1]
		}
	}
	if e.nginx != "" {
		out, _ := exec.Command(e.nginx, "-v").CombinedOutput()
		m.Nginx = strings.TrimPrefix(strings.TrimSpace(string(out)), "nginx version: ")
	}
	return m
}

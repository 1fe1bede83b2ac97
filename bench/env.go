package main

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"playerguard/validator/kakaogames/kakaogamestest"
)

// installHint is what to run when a peer or the load generator is missing.
const installHint = "apt-get install -y nginx wrk"

// env is what every scenario of one run shares: options, the temp dir,
// the binaries built from the tree, and the external tools found.
type env struct {
	o        *options
	dir      string // temp dir, removed by close
	root     string // module root
	pgBin    string // playerguard built from the tree
	ceilBin  string // bench/peers/ceiling built from the tree
	protoBin string // bench/peers/nethttp built from the tree
	wrk      string // path of wrk, "" if missing
	nginx    string // path of nginx, "" if missing
	self     string // this executable, for the child fake upstream
	progress io.Writer
}

// newEnv builds playerguard and the ceiling from the tree (once per run)
// and finds wrk and nginx.
func newEnv(o *options, progress io.Writer) (*env, error) {
	e := &env{o: o, progress: progress}
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return nil, fmt.Errorf("cannot find the module root (go env GOMOD): %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return nil, errors.New("run the bench inside the playerguard module (cd to the repository first)")
	}
	e.root = filepath.Dir(gomod)
	if e.self, err = os.Executable(); err != nil {
		return nil, err
	}
	if e.dir, err = os.MkdirTemp("", "playerguard-bench-"); err != nil {
		return nil, err
	}
	start := time.Now()
	e.logf("building playerguard and the peers from %s", e.root)
	build := exec.Command("go", "build", "-o", e.dir+string(os.PathSeparator), "./cmd/playerguard", "./bench/peers/ceiling", "./bench/peers/nethttp")
	build.Dir = e.root
	if out, err := build.CombinedOutput(); err != nil {
		e.close()
		return nil, fmt.Errorf("go build: %v\n%s", err, out)
	}
	e.logf("built in %.1fs", time.Since(start).Seconds())
	e.pgBin = filepath.Join(e.dir, "playerguard")
	e.ceilBin = filepath.Join(e.dir, "ceiling")
	e.protoBin = filepath.Join(e.dir, "nethttp")
	e.wrk = lookTool("wrk", "/usr/bin/wrk")
	e.nginx = lookTool("nginx", "/usr/sbin/nginx")
	return e, nil
}

func lookTool(name, fallback string) string {
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	if st, err := os.Stat(fallback); err == nil && st.Mode()&0o111 != 0 {
		return fallback
	}
	return ""
}

func (e *env) close() {
	if e.dir != "" {
		os.RemoveAll(e.dir)
	}
}

// logf prints a progress line on stderr.
func (e *env) logf(format string, a ...any) {
	if e.progress != nil {
		fmt.Fprintf(e.progress, "bench: "+format+"\n", a...)
	}
}

// ticker prints a progress line every 2s while a long load runs; the
// returned func stops it. Short loads print nothing.
func (e *env) ticker(label string, count func() int64) func() {
	if e.progress == nil {
		return func() {}
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		start := time.Now()
		t := time.NewTicker(2 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				n := count()
				e.logf("%s: %d requests, %.0f/s", label, n, float64(n)/time.Since(start).Seconds())
			}
		}
	}()
	return func() { close(stop); wg.Wait() }
}

// tempDir makes a fresh directory under the run's temp dir.
func (e *env) tempDir(prefix string) (string, error) {
	return os.MkdirTemp(e.dir, prefix)
}

// playerguard is a running playerguard process.
type playerguard struct {
	*process
	api, ops   string // listen addresses
	adminToken string
	flags      []string // the scenario's own flags, for the report
}

// startPlayerguard runs the binary built from the tree against the fake
// upstream at up. Configuration goes through the environment, as in
// production; flags carries the scenario's own settings. Logging is at
// error level so that log lines do not distort the numbers.
func (e *env) startPlayerguard(up kakaogamestest.Config, upURL string, flags ...string) (*playerguard, error) {
	return e.startPlayerguardEnv(up, upURL, nil, flags...)
}

// startPlayerguardEnv is startPlayerguard with extraEnv (KEY=value) added
// to playerguard's environment: the secrets of further providers.
func (e *env) startPlayerguardEnv(up kakaogamestest.Config, upURL string, extraEnv []string, flags ...string) (*playerguard, error) {
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		ports, err := freePorts(2)
		if err != nil {
			return nil, err
		}
		api, ops := ports[0], ports[1]
		tok := make([]byte, 16)
		rand.Read(tok)
		pg := &playerguard{api: api, ops: ops, adminToken: hex.EncodeToString(tok), flags: flags}
		cmd := exec.Command(e.pgBin, flags...)
		cmd.Env = append(cleanEnv(),
			"PLAYERGUARD_UPSTREAM="+upURL,
			"PLAYERGUARD_APP_ID="+up.AppID,
			"PLAYERGUARD_APP_SECRET="+up.AppSecret,
			"PLAYERGUARD_ADMIN_KEY="+up.AdminKey,
			"PLAYERGUARD_ADMIN_TOKEN="+pg.adminToken,
			"PLAYERGUARD_LISTEN="+api,
			"PLAYERGUARD_OPS_LISTEN="+ops,
			"PLAYERGUARD_LOG_LEVEL=error",
		)
		cmd.Env = append(cmd.Env, extraEnv...)
		p, err := startProcess("playerguard", cmd)
		if err != nil {
			return nil, err
		}
		pg.process = p
		if err := waitHTTP("http://"+ops+"/readyz", p, 15*time.Second); err != nil {
			p.stop(2 * time.Second)
			lastErr = err
			if strings.Contains(p.out.String(), "cannot listen") {
				continue // a port raced away: pick others
			}
			return nil, err
		}
		if err := waitTCP(api, p, 5*time.Second); err != nil {
			p.stop(2 * time.Second)
			return nil, err
		}
		return pg, nil
	}
	return nil, lastErr
}

// metrics scrapes playerguard's /metrics.
func (pg *playerguard) metrics() (promText, error) {
	return scrape("http://" + pg.ops + "/metrics")
}

// promText is a scraped Prometheus text exposition: series (name plus
// labels, as printed) to value.
type promText map[string]float64

func scrape(url string) (promText, error) {
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	m := promText{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			continue
		}
		m[line[:i]] = v
	}
	return m, sc.Err()
}

// sum adds the series of metric name whose labels include every one of
// labels (each written k="v").
func (m promText) sum(name string, labels ...string) float64 {
	var s float64
	for series, v := range m {
		rest, ok := strings.CutPrefix(series, name)
		if !ok || (rest != "" && rest[0] != '{') {
			continue
		}
		match := true
		for _, l := range labels {
			if !strings.Contains(rest, l) {
				match = false
				break
			}
		}
		if match {
			s += v
		}
	}
	return s
}

// childEnv, when set, makes this executable run as the child fake
// upstream instead of the bench (see runFakeChild).
const childEnv = "BENCH_FAKEUPSTREAM_CHILD"

// childFake is a fake upstream in a child process. The storm's no-sidecar
// peer needs one: 10,000 client connections and 10,000 server connections
// in one process would pass the open-files limit (often 20,000).
type childFake struct {
	p    *process
	addr string
	in   io.WriteCloser
	out  *bufio.Reader
	mu   sync.Mutex
}

func (e *env) startChildFake() (*childFake, error) {
	cmd := exec.Command(e.self)
	cmd.Env = append(cleanEnv(), childEnv+"=1")
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	outPipe, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	p, err := startProcess("child fake upstream", cmd)
	if err != nil {
		return nil, err
	}
	c := &childFake{p: p, in: in, out: bufio.NewReader(outPipe)}
	line, err := c.read()
	if err != nil {
		c.close()
		return nil, err
	}
	addr, ok := strings.CutPrefix(line, "addr ")
	if !ok {
		c.close()
		return nil, fmt.Errorf("child fake upstream said %q", line)
	}
	c.addr = addr
	return c, nil
}

func (c *childFake) PIDs() []int { return c.p.PIDs() }

func (c *childFake) read() (string, error) {
	type res struct {
		s   string
		err error
	}
	ch := make(chan res, 1)
	go func() {
		s, err := c.out.ReadString('\n')
		ch <- res{strings.TrimSpace(s), err}
	}()
	select {
	case r := <-ch:
		if r.err != nil {
			return "", fmt.Errorf("child fake upstream: %w; output: %s", r.err, c.p.out.String())
		}
		return r.s, nil
	case <-time.After(10 * time.Second):
		return "", errors.New("child fake upstream did not answer within 10s")
	}
}

// do sends one command line and returns the answer line.
func (c *childFake) do(cmd string) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, err := io.WriteString(c.in, cmd+"\n"); err != nil {
		return "", err
	}
	return c.read()
}

// counts returns the child's Calls and Distinct.
func (c *childFake) counts() (calls, distinct int64, err error) {
	s, err := c.do("counts")
	if err != nil {
		return 0, 0, err
	}
	if _, err := fmt.Sscanf(s, "counts %d %d", &calls, &distinct); err != nil {
		return 0, 0, fmt.Errorf("child fake upstream said %q", s)
	}
	return calls, distinct, nil
}

func (c *childFake) close() {
	c.in.Close() // EOF: the child closes its server and exits
	select {
	case <-c.p.done:
	case <-time.After(5 * time.Second):
		c.p.stop(time.Second)
	}
}

// runFakeChild is the child side: a fake upstream driven by commands on
// stdin, one per line, each answered on one stdout line:
//
//	latency 50ms             -> ok
//	default-allow APPID PID  -> ok
//	counts                   -> counts CALLS DISTINCT
//	reset                    -> ok
//
// EOF on stdin closes the server and exits.
func runFakeChild() int {
	s, err := kakaogamestest.Start(kakaogamestest.Config{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer s.Close()
	fmt.Println("addr", s.Addr())
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		switch {
		case len(f) == 2 && f[0] == "latency":
			d, err := time.ParseDuration(f[1])
			if err != nil {
				fmt.Println("error", err)
				continue
			}
			s.SetLatency(d)
			fmt.Println("ok")
		case len(f) == 3 && f[0] == "default-allow":
			s.SetDefault(kakaogamestest.Allow(f[1], f[2], "normal"))
			fmt.Println("ok")
		case len(f) == 1 && f[0] == "counts":
			fmt.Println("counts", s.Calls(), s.Distinct())
		case len(f) == 1 && f[0] == "reset":
			s.ResetCounts()
			fmt.Println("ok")
		default:
			fmt.Println("error unknown command")
		}
	}
	return 0
}

package main

import (
	"bufio"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"text/template"
	"time"

	"github.com/valyala/fasthttp"

	"playerguard/bench/peers/spec"
	"playerguard/validator/kakaogames/kakaogamestest"
)

// captureRoute asks playerguard (at addr) for p in mode m and returns the
// answer as a ceiling route, with its X-Playerguard-* headers: the ceiling
// then puts the same bytes on the wire as playerguard's cache hit.
func captureRoute(addr string, m mode, p player, up kakaogamestest.Config) (spec.Route, error) {
	c := newHClient(addr, m, 1, up)
	defer c.close()
	r, _, err := c.do(p, 5*time.Second, true)
	if err != nil {
		return spec.Route{}, err
	}
	if r.status != fasthttp.StatusOK || r.source != "cache" {
		return spec.Route{}, fmt.Errorf("capturing the cache-hit answer of %s: got status %d source %q", m, r.status, r.source)
	}
	route := spec.Route{Status: r.status, ContentType: r.ctype, Body: string(r.body),
		Headers: [][2]string{
			{"X-Playerguard-Decision", r.decision},
			{"X-Playerguard-Reason", r.reason},
			{"X-Playerguard-Source", r.source},
		}}
	route.Path = apiPath
	if m != modeV1 {
		route.Path = dropInPath
	}
	return route, nil
}

// minimalRoute is the minimal peer's route for mode m: route (captured
// from playerguard) keyed on the player, with every player's own body as
// playerguard answers its cache hit, asked for here workers at a time.
func minimalRoute(addr string, m mode, route spec.Route, players []player, up kakaogamestest.Config) (spec.Route, error) {
	const workers = 32
	c := newHClient(addr, m, workers, up)
	defer c.close()
	route.Body, route.Lookup = "", "headers"
	if m == modeV1 {
		route.Lookup = "json"
	}
	route.Players = make([]spec.Player, len(players))
	errs := make([]error, len(players))
	loop(workers, 2*time.Minute, int64(len(players)), func(_ int, i int64) {
		p := players[i]
		r, _, err := c.do(p, 5*time.Second, true)
		if err == nil && (r.status != fasthttp.StatusOK || r.source != "cache") {
			err = fmt.Errorf("capturing the cache-hit answers of %s: player %d got status %d source %q", m, i, r.status, r.source)
		}
		errs[i] = err
		route.Players[i] = spec.Player{Token: p.token, Platform: p.platform, PlayerID: p.id, Body: string(r.body)}
	})
	for i, p := range route.Players {
		if p.Body == "" && errs[i] == nil {
			errs[i] = errors.New("capturing the cache-hit answers: timed out")
		}
	}
	return route, firstErr(errs...)
}

// wireAnswer asks the server at addr for p in mode m on a fresh
// connection and returns its answer as received: the status line, every
// header but Date (in the order fasthttp lists them), and the body.
func wireAnswer(addr string, m mode, p player) (string, error) {
	var req []byte
	if m == modeV1 {
		body := fmt.Sprintf(`{"accessToken":%q,"platform":%q,"playerId":%q}`, p.token, p.platform, p.id)
		req = fmt.Appendf(nil, "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s",
			apiPath, addr, len(body), body)
	} else {
		req = rawDropIn(addr, p, nil)
	}
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write(req); err != nil {
		return "", err
	}
	var resp fasthttp.Response
	if err := resp.Read(bufio.NewReader(c)); err != nil {
		return "", err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%d\n", resp.StatusCode())
	for k, v := range resp.Header.All() {
		if string(k) != fasthttp.HeaderDate {
			fmt.Fprintf(&b, "%s: %s\n", k, v)
		}
	}
	b.Write(resp.Body())
	return b.String(), nil
}

// peer is a running peer built from bench/peers (the ceiling, the
// minimal peer, the net/http prototype).
type peer struct {
	*process
	addr string
}

func (e *env) startCeiling(routes []spec.Route) (*peer, error) {
	return e.startPeer("ceiling", e.ceilBin, routes)
}

// startPeer runs bin (a command of bench/peers) with a -spec file of
// routes and waits for it to say where it listens.
func (e *env) startPeer(name, bin string, routes []spec.Route) (*peer, error) {
	dir, err := e.tempDir(name + "-")
	if err != nil {
		return nil, err
	}
	b, err := json.Marshal(spec.Spec{Routes: routes})
	if err != nil {
		return nil, err
	}
	specFile := filepath.Join(dir, "spec.json")
	if err := os.WriteFile(specFile, b, 0o644); err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "-spec", specFile, "-listen", "127.0.0.1:0")
	cmd.Env = cleanEnv()
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	p, err := startProcess(name, cmd)
	if err != nil {
		return nil, err
	}
	lines := make(chan string, 1)
	go func() {
		br := bufio.NewReader(stdout)
		l, _ := br.ReadString('\n')
		lines <- strings.TrimSpace(l)
		io.Copy(p.out, br)
	}()
	select {
	case l := <-lines:
		addr, ok := strings.CutPrefix(l, "listening ")
		if !ok {
			p.stop(time.Second)
			return nil, p.failure()
		}
		return &peer{process: p, addr: addr}, nil
	case <-time.After(10 * time.Second):
		p.stop(time.Second)
		return nil, fmt.Errorf("%s did not start within 10s", name)
	}
}

//go:embed peers/nginx.conf.tmpl
var nginxConfTmpl string

// nginxPeer is Debian's nginx as a caching reverse proxy (the template's
// comment says how). Its CPU and memory are summed over the master and
// its workers.
type nginxPeer struct {
	*process
	addr string
	dir  string
}

func (n *nginxPeer) PIDs() []int {
	return append([]int{n.PID()}, childPIDs(n.PID())...)
}

func (e *env) startNginx(up kakaogamestest.Config, upAddr string) (*nginxPeer, error) {
	tmpl, err := template.New("nginx.conf").Parse(nginxConfTmpl)
	if err != nil {
		return nil, err
	}
	dir, err := e.tempDir("nginx-")
	if err != nil {
		return nil, err
	}
	// Workers drop root for nobody when the master runs as root: they must
	// be able to reach the cache directory nginx creates (and chowns) here.
	for _, d := range []string{e.dir, dir} {
		if err := os.Chmod(d, 0o755); err != nil {
			return nil, err
		}
	}
	ports, err := freePorts(1)
	if err != nil {
		return nil, err
	}
	addr := ports[0]
	var conf strings.Builder
	if err := tmpl.Execute(&conf, map[string]string{
		"Dir": dir, "Listen": addr, "Upstream": upAddr,
		"AppID": up.AppID, "AppSecret": up.AppSecret, "AdminKey": up.AdminKey,
	}); err != nil {
		return nil, err
	}
	confFile := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(confFile, []byte(conf.String()), 0o600); err != nil {
		return nil, err
	}
	errLog := filepath.Join(dir, "error.log")
	cmd := exec.Command(e.nginx, "-p", dir, "-c", confFile, "-e", errLog)
	cmd.Env = cleanEnv()
	p, err := startProcess("nginx", cmd)
	if err != nil {
		return nil, err
	}
	n := &nginxPeer{process: p, addr: addr, dir: dir}
	if err := waitTCP(addr, p, 10*time.Second); err != nil {
		p.stop(2 * time.Second)
		log, _ := os.ReadFile(errLog)
		return nil, fmt.Errorf("%w\nnginx error.log:\n%s", err, log)
	}
	return n, nil
}

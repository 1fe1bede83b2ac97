package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"playerguard/validator/kakaogames"
	"playerguard/validator/kakaogames/kakaogamestest"
)

// binary is playerguard built once for the tests that run it as a process.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "playerguard-test")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "playerguard")
	out, err := exec.Command("go", "build", "-race", "-o", binary, ".").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "cannot build playerguard: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// sigtermDrains sends SIGTERM and requires exit 0 within soon (else the
// drain took too long "with what") and at all within limit (else
// "held": what held the drain open).
func (p *proc) sigtermDrains(t *testing.T, soon, limit time.Duration, held, what string) {
	t.Helper()
	start := time.Now()
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-p.done:
		p.done <- err // for the cleanup
		if err != nil {
			t.Fatalf("exit: %v\n%s", err, p.stderr.String())
		}
	case <-time.After(limit):
		t.Fatal(held)
	}
	if d := time.Since(start); d > soon {
		t.Errorf("drain took %v with %s", d, what)
	}
}

// freeAddr returns a loopback address nobody listens on right now.
func freeAddr(t *testing.T) string {
	t.Helper()
	return freeAddrs(t, 1)[0]
}

// freeAddrs returns n distinct loopback addresses that were free a moment
// ago. All n are held open until each is chosen: closing one before asking
// for the next let the kernel hand the same port out twice.
func freeAddrs(t *testing.T, n int) []string {
	t.Helper()
	addrs := make([]string, 0, n)
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		addrs = append(addrs, ln.Addr().String())
	}
	return addrs
}

// proc is a running playerguard.
type proc struct {
	cmd            *exec.Cmd
	listen, ops    string
	stdout, stderr *lockedBuffer
	done           chan error
}

type lockedBuffer struct {
	mu  chan struct{}
	buf bytes.Buffer
}

func newLockedBuffer() *lockedBuffer { return &lockedBuffer{mu: make(chan struct{}, 1)} }
func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu <- struct{}{}
	defer func() { <-b.mu }()
	return b.buf.Write(p)
}
func (b *lockedBuffer) String() string {
	b.mu <- struct{}{}
	defer func() { <-b.mu }()
	return b.buf.String()
}

// start runs playerguard with args and env and waits until it is ready.
// If it cannot listen (another process took a port between freeAddrs and
// the bind), it tries again on other ports.
func start(t *testing.T, env []string, args ...string) *proc {
	t.Helper()
	for attempt := 1; ; attempt++ {
		p, err := tryStart(t, env, args...)
		if err == nil {
			return p
		}
		if attempt == 3 || !strings.Contains(p.stderr.String(), "cannot listen") {
			t.Fatalf("%v\n%s", err, p.stderr.String())
		}
	}
}

// tryStart is one attempt of start. The proc it returns on an error has
// exited (its stderr says why).
func tryStart(t *testing.T, env []string, args ...string) (*proc, error) {
	t.Helper()
	addrs := freeAddrs(t, 2)
	p := &proc{listen: addrs[0], ops: addrs[1], stdout: newLockedBuffer(), stderr: newLockedBuffer(), done: make(chan error, 1)}
	args = append([]string{"-listen", p.listen, "-ops-listen", p.ops}, args...)
	p.cmd = exec.Command(binary, args...)
	p.cmd.Env = append([]string{"PATH=" + os.Getenv("PATH")}, env...)
	p.cmd.Stdout, p.cmd.Stderr = p.stdout, p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.done <- p.cmd.Wait() }()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
			t.Errorf("playerguard (pid %d) had not exited 10s after SIGKILL", p.cmd.Process.Pid)
		}
		if t.Failed() {
			t.Logf("playerguard stderr:\n%s", p.stderr.String())
		}
	})
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get("http://" + p.ops + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return p, nil
			}
		}
		select {
		case err := <-p.done:
			p.done <- err // for the cleanup, which waits for the exit
			return p, fmt.Errorf("playerguard exited early: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("playerguard not ready\n%s", p.stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func startFake(t *testing.T) *kakaogamestest.Server {
	t.Helper()
	fake, err := kakaogamestest.Start(kakaogamestest.Config{AppID: "909428", AppSecret: "s3cret", AdminKey: "k3y"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(fake.Close)
	return fake
}

func upstreamEnv(fake *kakaogamestest.Server) []string {
	return []string{
		"PLAYERGUARD_UPSTREAM=" + fake.URL(),
		"PLAYERGUARD_APP_ID=909428",
		"PLAYERGUARD_APP_SECRET=s3cret",
		"PLAYERGUARD_ADMIN_KEY=k3y",
	}
}

// requireTool finds an external program; missing, the test skips, except
// under CI=true where .ci/run is supposed to have installed it.
func requireTool(t *testing.T, name, install string, paths ...string) string {
	t.Helper()
	for _, p := range append([]string{name}, paths...) {
		if path, err := exec.LookPath(p); err == nil {
			return path
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s not found; .ci/run should have installed it (%s)", name, install)
	}
	t.Skipf("%s not found; install it with: %s", name, install)
	return ""
}

// TestNginxAuthRequest: Debian's nginx, configured with the shipped
// deploy/nginx/auth_request.conf, admits an allowed player and refuses a
// kicked one.
func TestNginxAuthRequest(t *testing.T) {
	nginx := requireTool(t, "nginx", "apt-get install -y nginx", "/usr/sbin/nginx")
	fake := startFake(t)
	fake.Set("tok-good", kakaogamestest.Allow("909428", "p1", "normal"))
	fake.Set("tok-locked", kakaogamestest.Lockout("909428", "p2"))
	pg := start(t, upstreamEnv(fake))

	snippet, err := os.ReadFile("../../deploy/nginx/auth_request.conf")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(snippet, []byte("127.0.0.1:7600")) {
		t.Fatal("the shipped snippet no longer points at playerguard's default address")
	}
	// The "game server" behind nginx.
	game := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "welcome\n")
	})}
	gameLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go game.Serve(gameLn)
	t.Cleanup(func() { game.Close() })
	if !bytes.Contains(snippet, []byte("127.0.0.1:7000")) {
		t.Fatal("the shipped snippet no longer proxies to the example game server address")
	}
	snippet = bytes.ReplaceAll(snippet, []byte("127.0.0.1:7000"), []byte(gameLn.Addr().String()))

	dir := t.TempDir()
	front := freeAddr(t)
	conf := fmt.Sprintf(`daemon off;
worker_processes 1;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log info;
events { worker_connections 64; }
http {
    access_log off;
    client_body_temp_path %[1]s/body;
    proxy_temp_path %[1]s/proxy;
    fastcgi_temp_path %[1]s/fastcgi;
    uwsgi_temp_path %[1]s/uwsgi;
    scgi_temp_path %[1]s/scgi;
    server {
        listen %[2]s;
%[3]s
    }
}
`, dir, front, bytes.ReplaceAll(snippet, []byte("127.0.0.1:7600"), []byte(pg.listen)))
	if err := os.WriteFile(filepath.Join(dir, "nginx.conf"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(nginx, "-p", dir, "-c", filepath.Join(dir, "nginx.conf"))
	var nginxErr bytes.Buffer
	cmd.Stderr = &nginxErr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGQUIT)
		cmd.Wait()
		if t.Failed() {
			log, _ := os.ReadFile(filepath.Join(dir, "error.log"))
			t.Logf("nginx stderr:\n%s\nerror.log:\n%s", nginxErr.String(), log)
		}
	})

	get := func(token string) (int, string, string) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			req, _ := http.NewRequest("GET", "http://"+front+"/game/connect", nil)
			req.Header.Set("accessToken", token)
			req.Header.Set("platform", "mobile")
			resp, err := http.DefaultClient.Do(req)
			if err == nil {
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				return resp.StatusCode, string(body), resp.Header.Get("X-Playerguard-Reason")
			}
			if time.Now().After(deadline) {
				t.Fatalf("nginx not answering: %v", err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	if status, body, _ := get("tok-good"); status != 200 || body != "welcome\n" {
		t.Errorf("allowed player: %d %q", status, body)
	}
	if status, _, reason := get("tok-locked"); status != 403 || reason != "lockout" {
		t.Errorf("kicked player: %d reason %q", status, reason)
	}
	if status, _, _ := get("tok-unknown"); status != 403 {
		t.Errorf("invalid token: %d", status)
	}
	if n := fake.TokenCalls("tok-good"); n != 1 {
		t.Errorf("upstream calls for the allowed player = %d, want 1", n)
	}
}

// TestDemo runs -demo and every curl line it prints, with the real curl,
// and checks each answers what its comment says.
func TestDemo(t *testing.T) {
	curl := requireTool(t, "curl", "apt-get install -y curl")
	pg := start(t, nil, "-demo")
	var out string
	deadline := time.Now().Add(10 * time.Second)
	for out = pg.stdout.String(); !strings.Contains(out, "Stop with Ctrl-C"); out = pg.stdout.String() {
		if time.Now().After(deadline) {
			t.Fatalf("demo output incomplete:\n%s", out)
		}
		time.Sleep(20 * time.Millisecond)
	}
	statusRe := regexp.MustCompile(`HTTP (\d{3})\s*$`)
	var comment string
	ran := 0
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "# ") {
			comment = line
			continue
		}
		if !strings.HasPrefix(line, "curl ") {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		res, err := exec.CommandContext(ctx, "sh", "-c", strings.Replace(line, "curl", curl, 1)).Output()
		cancel()
		if err != nil {
			t.Errorf("%s: %v", line, err)
			continue
		}
		ran++
		got := string(res)
		m := statusRe.FindStringSubmatch(got)
		want := map[string]string{"allow": "200", "kick": "403", "unavailable": "503"}
		switch {
		case strings.Contains(comment, "key set"):
			if !strings.Contains(got, "kakao-oidc: ready") || !strings.Contains(got, `playerguard_keys{provider="kakao-oidc"} 1`) {
				t.Errorf("key set line: %q", got)
			}
		case strings.Contains(comment, "fleet tier"):
			if !strings.Contains(got, "playerguard_redis_connected") {
				t.Errorf("fleet line printed nothing: %q", got)
			}
		case strings.Contains(comment, "metrics"):
			if !strings.Contains(got, "playerguard_validations_total") {
				t.Errorf("metrics line printed nothing: %q", got)
			}
		case strings.Contains(comment, "drop-in"):
			if !strings.Contains(got, `"status":"normal"`) || m == nil || m[1] != "200" {
				t.Errorf("%s\n%s -> %s", comment, line, got)
			}
		default:
			found := false
			for decision, status := range want {
				if strings.Contains(comment, ": "+decision) {
					found = true
					if m == nil || m[1] != status || !strings.Contains(got, `"decision":"`+decision+`"`) {
						t.Errorf("%s\n%s -> %s", comment, line, got)
					}
				}
			}
			if !found {
				t.Errorf("comment %q names no decision", comment)
			}
		}
	}
	if ran < 21 {
		t.Errorf("ran %d curl lines, want at least 21 (5 Kakao Games players, drop-in, 5 Kakao Login users, 4 ID tokens, 4 age gate verifications, key set, metrics):\n%s", ran, out)
	}
}

// TestSIGTERMDrains: on SIGTERM playerguard turns unready at once, stops
// accepting, finishes every in-flight validation (here all waiting on a
// slow upstream), and exits 0.
func TestSIGTERMDrains(t *testing.T) {
	fake := startFake(t)
	fake.SetLatency(1500 * time.Millisecond)
	const inflight = 20
	for i := range inflight {
		fake.Set(fmt.Sprint("tok-", i%5), kakaogamestest.Allow("909428", fmt.Sprint("p", i%5), "normal"))
	}
	pg := start(t, upstreamEnv(fake))

	type result struct {
		status int
		body   string
		err    error
	}
	results := make(chan result, inflight)
	for i := range inflight {
		go func() {
			body := fmt.Sprintf(`{"accessToken":"tok-%d","platform":"mobile"}`, i%5)
			resp, err := http.Post("http://"+pg.listen+"/v1/validate", "application/json", strings.NewReader(body))
			if err != nil {
				results <- result{err: err}
				return
			}
			b, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			results <- result{resp.StatusCode, string(b), err}
		}()
	}
	time.Sleep(500 * time.Millisecond) // all requests are now waiting on the upstream
	pg.cmd.Process.Signal(syscall.SIGTERM)

	// Unready while draining, and no longer accepting validations.
	deadline := time.Now().Add(time.Second)
	for {
		resp, err := http.Get("http://" + pg.ops + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 503 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("/readyz did not turn unready during the drain")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := net.DialTimeout("tcp", pg.listen, 200*time.Millisecond); err == nil {
		t.Error("still accepting connections while draining")
	}

	for range inflight {
		r := <-results
		if r.err != nil || r.status != 200 || !strings.Contains(r.body, `"decision":"allow"`) {
			t.Errorf("in-flight request: %d %q %v", r.status, r.body, r.err)
		}
	}
	select {
	case err := <-pg.done:
		pg.done <- err // for the cleanup, which waits for the exit
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v\n%s", err, pg.stderr.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatal("no exit 20s after SIGTERM")
	}
	if n := fake.Calls(); n != 5 {
		t.Errorf("upstream calls = %d, want 5 (coalesced)", n)
	}
	if !strings.Contains(pg.stderr.String(), `"msg":"stopped"`) {
		t.Errorf("no stop line:\n%s", pg.stderr.String())
	}
}

// TestDrainWithIdleKeepAlive: an idle keep-alive connection from a game
// server does not hold the drain open (the API server has no IdleTimeout).
func TestDrainWithIdleKeepAlive(t *testing.T) {
	fake := startFake(t)
	fake.Set("tok-a", kakaogamestest.Allow("909428", "p1", "normal"))
	pg := start(t, upstreamEnv(fake))
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
	resp, err := client.Post("http://"+pg.listen+"/v1/validate", "application/json", strings.NewReader(`{"accessToken":"tok-a","platform":"pc"}`))
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close() // the connection now idles in the client's pool
	pg.sigtermDrains(t, 2*time.Second, 10*time.Second, "an idle keep-alive connection held the drain open", "one idle connection")
}

// TestAllowRemoteSaysSo: a non-loopback -listen needs -allow-remote, and
// then the log says the API is exposed.
func TestAllowRemoteSaysSo(t *testing.T) {
	fake := startFake(t)
	_, port, _ := net.SplitHostPort(freeAddr(t))
	pg := start(t, upstreamEnv(fake), "-listen", "0.0.0.0:"+port, "-allow-remote")
	if !strings.Contains(pg.stderr.String(), "validation API exposed beyond loopback") {
		t.Errorf("no warning for a non-loopback listener:\n%s", pg.stderr.String())
	}
}

// TestDrainWithUnusedConnection: a connection a client dialed but never
// sent a request on (HTTP client pools do that) does not hold the drain
// open until -drain-timeout.
func TestDrainWithUnusedConnection(t *testing.T) {
	fake := startFake(t)
	pg := start(t, upstreamEnv(fake), "-drain-timeout", "10s")
	conn, err := net.Dial("tcp", pg.listen)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	pg.sigtermDrains(t, 3*time.Second, 8*time.Second, "an unused connection held the drain open", "one unused connection")
}

// TestOversizedBodyGets413: a request whose body is over the limit gets its
// 413 and the JSON naming the limit, every time, though the client is
// still sending the body when the answer comes: playerguard closes such a
// connection lingering (half-close, discard what still arrives) so that
// the client's kernel never sees a reset that would drop the answer.
func TestOversizedBodyGets413(t *testing.T) {
	fake := startFake(t)
	pg := start(t, upstreamEnv(fake))
	url := "http://" + pg.listen + kakaogames.Path
	const want = `{"error":"request body too large (limit 16384 bytes)"}`
	body := bytes.Repeat([]byte("a"), 2<<20)
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	defer client.CloseIdleConnections()
	for i := range 40 {
		resp, err := client.Post(url, "application/json", bytes.NewReader(body))
		if err != nil {
			t.Errorf("request %d: %v", i, err)
			continue
		}
		got, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 413 || string(got) != want {
			t.Errorf("request %d: %d %q %v, want 413 %s", i, resp.StatusCode, got, err, want)
		}
	}

	t.Run("curl", func(t *testing.T) {
		curl := requireTool(t, "curl", "apt-get install -y curl")
		file := filepath.Join(t.TempDir(), "body")
		if err := os.WriteFile(file, body, 0o600); err != nil {
			t.Fatal(err)
		}
		for name, args := range map[string][]string{
			// The declared length alone: curl sends no body and waits.
			"Content-Length only": {"-X", "POST", "-H", "Content-Length: 2097152"},
			// The body itself (curl sends Expect: 100-continue first).
			"whole body": {"--data-binary", "@" + file},
		} {
			args = append([]string{"-sS", "--max-time", "10", "-H", "Content-Type: application/json", "-w", `\n%{http_code}`}, args...)
			out, err := exec.Command(curl, append(args, url)...).CombinedOutput()
			if err != nil || string(out) != want+"\n413" {
				t.Errorf("%s: %q %v, want 413 %s", name, out, err, want)
			}
		}
	})
}

// TestDrainNotHeldByStalledCaller: a caller that sent part of a request
// and stopped does not hold the drain open: on SIGTERM its connection is
// answered 408 and closed, and playerguard exits 0 at once, not after
// -drain-timeout.
func TestDrainNotHeldByStalledCaller(t *testing.T) {
	fake := startFake(t)
	pg := start(t, upstreamEnv(fake), "-drain-timeout", "30s")
	dial := func(send string) net.Conn {
		t.Helper()
		conn, err := net.Dial("tcp", pg.listen)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		if _, err := io.WriteString(conn, send); err != nil {
			t.Fatal(err)
		}
		return conn
	}
	// One byte of a request line, then nothing.
	oneByte := dial("P")
	// A whole header that asks before sending its body: the 100 Continue
	// proves playerguard is now waiting in the middle of the request.
	midBody := dial("POST " + kakaogames.Path + " HTTP/1.1\r\nHost: pg\r\nContent-Type: application/json\r\nContent-Length: 60\r\nExpect: 100-continue\r\n\r\n")
	midBody.SetReadDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(midBody)
	if line, err := br.ReadString('\n'); err != nil || !strings.HasPrefix(line, "HTTP/1.1 100 ") {
		t.Fatalf("no 100 Continue: %q %v", line, err)
	}
	if line, err := br.ReadString('\n'); err != nil || line != "\r\n" {
		t.Fatalf("after 100 Continue: %q %v", line, err)
	}

	pg.sigtermDrains(t, 3*time.Second, 10*time.Second, "a stalled caller held the drain open", "two stalled callers")
	if !strings.Contains(pg.stderr.String(), `"msg":"stopped"`) {
		t.Errorf("no stop line:\n%s", pg.stderr.String())
	}

	const want408 = `{"error":"timed out reading the request"}`
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("caller stalled mid-body: no answer: %v", err)
	}
	got, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 408 || string(got) != want408 {
		t.Errorf("caller stalled mid-body: %d %q, want 408 %s", resp.StatusCode, got, want408)
	}
	// The one byte may or may not have been read when the drain began:
	// read, it is a request cut short (408); unread, the connection had
	// no request yet and closes without an answer.
	oneByte.SetReadDeadline(time.Now().Add(10 * time.Second))
	// (Unread, the close may come as a reset.)
	if raw, err := io.ReadAll(oneByte); err != nil && !(len(raw) == 0 && errors.Is(err, syscall.ECONNRESET)) {
		t.Errorf("caller stalled after one byte: %q %v", raw, err)
	} else if len(raw) > 0 {
		resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(raw)), nil)
		if err != nil {
			t.Fatalf("caller stalled after one byte: %q: %v", raw, err)
		}
		got, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 408 || string(got) != want408 {
			t.Errorf("caller stalled after one byte: %d %q, want 408 %s", resp.StatusCode, got, want408)
		}
	}
}

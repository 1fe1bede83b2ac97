package kakaogamestest

import (
	"bufio"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

const docLockoutBody = `{"desc":"playerId There is a valid lockout. (463.-10103)","lockout":{"kgAppId":"909428","idType":"playerId","id":"123456789123456","certMethod":"phone,card","reason":"","message":"","notificationOption":"alimtalk","memo":"","lockoutCode":"","lockoutSection":"mobile","regTime":1680773813000},"player":{"kgAppId":"909428","playerId":"123456789123456","status":"normal"},"token":{"onetimeToken":"1IB+jHhULoYJASZR18QUTQw0pDBZVjvOith9KD8miWQNsOgw4GjCGTTJhsWNUJHcWrtHJfazZ7lmLlyx"},"redirectUri":{"target":"lockout","lockout":"https://member.kakaogames.com/lockout?token=1IB%2BjHhULoYJASZR18QUTQw0pDBZVjvOith9KD8miWQNsOgw4GjCGTTJhsWNUJHcWrtHJfazZ7lmLlyx"}}`

func start(t *testing.T, cfg Config) *Server {
	t.Helper()
	s, err := Start(cfg)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(s.Close)
	return s
}

// goodHeaders are the headers a correct client sends to a default Server.
func goodHeaders(token string) map[string]string {
	return map[string]string{
		"Content-Type":  "application/json;charset=UTF-8",
		"appSecret":     DefaultAppSecret,
		"Authorization": "KakaoAK " + DefaultAdminKey,
		"kgAppId":       DefaultAppID,
		"platform":      "pc",
		"accessToken":   token,
	}
}

func newClient(timeout time.Duration) *http.Client {
	return &http.Client{Timeout: timeout, Transport: &http.Transport{DisableKeepAlives: true}}
}

func newReq(t *testing.T, method, url string, hdr map[string]string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header[k] = []string{v} // as is: exercises case-insensitive matching
	}
	return req
}

type result struct {
	status int
	header http.Header
	body   string
	err    error
}

func call(t *testing.T, c *http.Client, method, url string, hdr map[string]string) result {
	t.Helper()
	resp, err := c.Do(newReq(t, method, url, hdr))
	if err != nil {
		return result{err: err}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return result{status: resp.StatusCode, header: resp.Header, body: string(b), err: err}
}

func validate(t *testing.T, s *Server, hdr map[string]string) result {
	t.Helper()
	return call(t, newClient(5*time.Second), http.MethodPost, s.URL()+ValidationPath, hdr)
}

func mustOK(t *testing.T, r result) {
	t.Helper()
	if r.err != nil {
		t.Fatalf("request failed: %v", r.err)
	}
}

var descRE = regexp.MustCompile(`\((\d{3})\.-?\d+\)$`)

func checkDesc(t *testing.T, status int, body []byte) {
	t.Helper()
	var v struct {
		Desc string `json:"desc"`
	}
	if err := json.Unmarshal(body, &v); err != nil {
		t.Fatalf("body %s: %v", body, err)
	}
	m := descRE.FindStringSubmatch(v.Desc)
	if m == nil || m[1] != strconv.Itoa(status) {
		t.Errorf("desc %q does not end with (%d.SUBCODE)", v.Desc, status)
	}
}

func TestLockoutBodyIsTheDocumentedOne(t *testing.T) {
	v := Lockout("909428", "123456789123456")
	if v.Status != 463 {
		t.Errorf("status %d", v.Status)
	}
	if string(v.Body) != docLockoutBody {
		t.Errorf("body differs from the docs:\n got %s\nwant %s", v.Body, docLockoutBody)
	}
	w := Lockout("111", "222")
	var got struct {
		Lockout struct{ KgAppID, ID string }
		Player  struct{ KgAppID, PlayerID string }
	}
	if err := json.Unmarshal(w.Body, &got); err != nil {
		t.Fatal(err)
	}
	if got.Lockout.KgAppID != "111" || got.Lockout.ID != "222" || got.Player.KgAppID != "111" || got.Player.PlayerID != "222" {
		t.Errorf("not substituted: %s", w.Body)
	}
}

func TestBuildersReturnFreshBodies(t *testing.T) {
	a, b := Invalid(), Invalid()
	a.Body[0] = 'X'
	if b.Body[0] != '{' {
		t.Error("builders share their body")
	}
}

func TestBuilders(t *testing.T) {
	s := start(t, Config{})
	const app, pid = DefaultAppID, "123456789123456"
	cases := []struct {
		name   string
		v      Verdict
		status int
		check  func(t *testing.T, body []byte)
	}{
		{"allow", Allow(app, pid, "normal"), 200, func(t *testing.T, body []byte) {
			want := `{"player":{"kgAppId":"909428","playerId":"123456789123456","status":"normal","nickname":"player-123456789123456","data":{}}}`
			if string(body) != want {
				t.Errorf("body %s, want %s", body, want)
			}
		}},
		{"allow-delete", Allow(app, pid, "delete"), 200, nil},
		{"invalid", Invalid(), 401, func(t *testing.T, body []byte) {
			if string(body) != `{"desc":"Token is invalid. (401.-29401)"}` {
				t.Errorf("body %s", body)
			}
		}},
		{"noplayer", NoPlayer(), 406, func(t *testing.T, body []byte) {
			if string(body) != `{"desc":"There is no player. (406.-10005)"}` {
				t.Errorf("body %s", body)
			}
		}},
		{"unregistering", Unregistering(app, pid), 462, func(t *testing.T, body []byte) {
			checkDesc(t, 462, body)
			if !strings.Contains(string(body), "(462.-10101)") || !strings.Contains(string(body), `"playerId":"123456789123456","status":"delete"`) {
				t.Errorf("body %s", body)
			}
		}},
		{"lockout", Lockout(app, pid), 463, func(t *testing.T, body []byte) {
			checkDesc(t, 463, body)
			if string(body) != docLockoutBody {
				t.Errorf("body %s", body)
			}
		}},
		{"sanction", Sanction(app, pid), 464, func(t *testing.T, body []byte) {
			checkDesc(t, 464, body)
			if !strings.Contains(string(body), "(464.-10102)") || !strings.Contains(string(body), `"playerId":"123456789123456"`) {
				t.Errorf("body %s", body)
			}
		}},
		{"maintenance", Maintenance(), 473, func(t *testing.T, body []byte) {
			if string(body) != `{"desc":"Service is under maintenance. (473.-1)"}` {
				t.Errorf("body %s", body)
			}
		}},
		{"error500", Error(500), 500, func(t *testing.T, body []byte) {
			if string(body) != `{"desc":"Internal server error. (500.-1)"}` {
				t.Errorf("body %s", body)
			}
		}},
		{"error503", Error(503), 503, nil},
		{"error465", Error(465), 465, nil},
		{"error418", Error(418), 418, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.v.Status != tc.status {
				t.Fatalf("builder status %d, want %d", tc.v.Status, tc.status)
			}
			if tc.status != 200 {
				checkDesc(t, tc.status, tc.v.Body)
			}
			if !json.Valid(tc.v.Body) {
				t.Fatalf("invalid JSON %s", tc.v.Body)
			}
			tok := "tok-" + tc.name
			s.Set(tok, tc.v)
			r := validate(t, s, goodHeaders(tok))
			mustOK(t, r)
			if r.status != tc.status {
				t.Errorf("status %d, want %d", r.status, tc.status)
			}
			if r.body != string(tc.v.Body) {
				t.Errorf("body %s, want %s", r.body, tc.v.Body)
			}
			if ct := r.header.Get("Content-Type"); ct != DefaultContentType {
				t.Errorf("Content-Type %q", ct)
			}
			if tc.check != nil {
				tc.check(t, []byte(r.body))
			}
		})
	}
}

func TestLoopbackOnly(t *testing.T) {
	for _, addr := range []string{":0", "0.0.0.0:0", "192.0.2.1:0", "example.com:0", "nonsense"} {
		if s, err := Start(Config{Addr: addr}); err == nil {
			s.Close()
			t.Errorf("%q accepted", addr)
		}
	}
	s := start(t, Config{Addr: "127.0.0.1:0"})
	if !strings.HasPrefix(s.URL(), "http://127.0.0.1:") || strings.HasSuffix(s.Addr(), ":0") {
		t.Errorf("URL %s Addr %s", s.URL(), s.Addr())
	}
}

func TestRouting(t *testing.T) {
	s := start(t, Config{})
	c := newClient(5 * time.Second)
	r := call(t, c, http.MethodPost, s.URL()+"/service/v4/auth/validation", goodHeaders("x"))
	mustOK(t, r)
	if r.status != 404 || r.body != `{"desc":"Not found. (404.0)"}` {
		t.Errorf("wrong path: %d %s", r.status, r.body)
	}
	r = call(t, c, http.MethodGet, s.URL()+ValidationPath, goodHeaders("x"))
	mustOK(t, r)
	if r.status != 405 {
		t.Errorf("GET: %d %s", r.status, r.body)
	}
	checkDesc(t, 405, []byte(r.body))
	if s.Calls() != 0 || s.TokenCalls("x") != 0 || s.Distinct() != 0 {
		t.Errorf("404/405 counted: calls=%d token=%d distinct=%d", s.Calls(), s.TokenCalls("x"), s.Distinct())
	}
	if li := s.LastRequest(); li.Method != "GET" || li.Path != ValidationPath {
		t.Errorf("LastRequest %+v", li)
	}
}

func TestHeaderChecks(t *testing.T) {
	s := start(t, Config{})
	s.SetDefault(Allow(DefaultAppID, "p", "normal"))
	for _, name := range []string{"appSecret", "Authorization", "kgAppId", "platform", "accessToken"} {
		t.Run("missing-"+name, func(t *testing.T) {
			h := goodHeaders("tok")
			delete(h, name)
			r := validate(t, s, h)
			mustOK(t, r)
			want := `{"desc":"Required header is missing or invalid: ` + name + ` (400.-1)"}`
			if r.status != 400 || r.body != want {
				t.Errorf("got %d %s, want 400 %s", r.status, r.body, want)
			}
		})
	}
	t.Run("bad-platform", func(t *testing.T) {
		h := goodHeaders("tok")
		h["platform"] = "xbox"
		r := validate(t, s, h)
		mustOK(t, r)
		if r.status != 400 || !strings.Contains(r.body, "platform (400.-1)") {
			t.Errorf("got %d %s", r.status, r.body)
		}
	})
	for name, val := range map[string]string{
		"appSecret":     "wrong",
		"Authorization": DefaultAdminKey, // missing "KakaoAK "
		"kgAppId":       "1",
	} {
		t.Run("wrong-"+name, func(t *testing.T) {
			h := goodHeaders("tok")
			h[name] = val
			r := validate(t, s, h)
			mustOK(t, r)
			if r.status != 401 || r.body != `{"desc":"App authentication failed. (401.-29001)"}` {
				t.Errorf("got %d %s", r.status, r.body)
			}
		})
	}
	t.Run("case-insensitive-names", func(t *testing.T) {
		h := map[string]string{}
		for k, v := range goodHeaders("tok") {
			h[strings.ToUpper(k)] = v
		}
		h["PLAYERID"] = "claimed"
		r := validate(t, s, h)
		mustOK(t, r)
		if r.status != 200 {
			t.Errorf("got %d %s", r.status, r.body)
		}
		if li := s.LastRequest(); li.PlayerID != "claimed" || li.AccessToken != "tok" || li.Platform != "pc" {
			t.Errorf("LastRequest %+v", li)
		}
	})
	// 5 missing + bad platform + 3 wrong + 1 good; all "tok" but the
	// missing-accessToken one.
	if got := s.Calls(); got != 10 {
		t.Errorf("Calls %d, want 10", got)
	}
	if got := s.TokenCalls("tok"); got != 9 {
		t.Errorf("TokenCalls(tok) %d, want 9", got)
	}
	if got := s.TokenCalls(""); got != 1 {
		t.Errorf(`TokenCalls("") %d, want 1`, got)
	}
}

func TestCustomConfigAndLastRequest(t *testing.T) {
	s := start(t, Config{AppID: "42", AppSecret: "sec", AdminKey: "adm"})
	s.Set("t1", Allow("42", "A", "normal"))
	h := map[string]string{
		"Content-Type": "application/json;charset=UTF-8", "appSecret": "sec", "Authorization": "KakaoAK adm",
		"kgAppId": "42", "platform": "mobile", "accessToken": "t1", "playerId": "B",
	}
	r := validate(t, s, h)
	mustOK(t, r)
	if r.status != 200 || !strings.Contains(r.body, `"playerId":"A"`) {
		t.Errorf("got %d %s (the fake must not check playerId)", r.status, r.body)
	}
	want := RequestInfo{
		Method: "POST", Path: ValidationPath, AppSecret: "sec", Authorization: "KakaoAK adm", AppID: "42",
		Platform: "mobile", AccessToken: "t1", PlayerID: "B", ContentType: "application/json;charset=UTF-8",
	}
	if got := s.LastRequest(); got != want {
		t.Errorf("LastRequest\n got %+v\nwant %+v", got, want)
	}
	r = validate(t, s, goodHeaders("t1")) // default secrets: wrong here
	mustOK(t, r)
	if r.status != 401 {
		t.Errorf("default secrets accepted: %d", r.status)
	}
}

func TestDefaultOverrideAndUnset(t *testing.T) {
	s := start(t, Config{})
	s.Set("good", Allow(DefaultAppID, "1", "normal"))
	expect := func(tok string, status int) {
		t.Helper()
		r := validate(t, s, goodHeaders(tok))
		mustOK(t, r)
		if r.status != status {
			t.Errorf("%s: status %d, want %d (%s)", tok, r.status, status, r.body)
		}
	}
	expect("good", 200)
	expect("unknown", 401) // initial default: Invalid
	s.SetDefault(NoPlayer())
	expect("unknown", 406)
	out := Error(503)
	s.SetOverride(&out)
	expect("good", 503)
	expect("unknown", 503)
	s.SetOverride(nil)
	expect("good", 200)
	s.Unset("good")
	expect("good", 406)
}

func TestCountingAndReset(t *testing.T) {
	s := start(t, Config{})
	s.Set("a", Allow(DefaultAppID, "1", "normal"))
	for range 3 {
		mustOK(t, validate(t, s, goodHeaders("a")))
	}
	mustOK(t, validate(t, s, goodHeaders("b")))
	if s.Calls() != 4 || s.TokenCalls("a") != 3 || s.TokenCalls("b") != 1 || s.TokenCalls("c") != 0 || s.Distinct() != 2 {
		t.Errorf("calls=%d a=%d b=%d distinct=%d", s.Calls(), s.TokenCalls("a"), s.TokenCalls("b"), s.Distinct())
	}
	s.ResetCounts()
	if s.Calls() != 0 || s.TokenCalls("a") != 0 || s.TokenCalls("b") != 0 || s.Distinct() != 0 {
		t.Errorf("after reset: calls=%d a=%d b=%d distinct=%d", s.Calls(), s.TokenCalls("a"), s.TokenCalls("b"), s.Distinct())
	}
	r := validate(t, s, goodHeaders("a"))
	mustOK(t, r)
	if r.status != 200 || s.Distinct() != 1 {
		t.Errorf("verdict lost by ResetCounts or distinct wrong: %d %d", r.status, s.Distinct())
	}
}

func TestHeadersContentTypeAndLatency(t *testing.T) {
	s := start(t, Config{Latency: 60 * time.Millisecond})
	s.Set("redir", Verdict{Status: 302, ContentType: "text/plain", Body: []byte("go"), Header: map[string]string{"Location": "https://example.invalid/x"}})
	c := &http.Client{Timeout: 5 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	t0 := time.Now()
	r := call(t, c, http.MethodPost, s.URL()+ValidationPath, goodHeaders("redir"))
	mustOK(t, r)
	if d := time.Since(t0); d < 60*time.Millisecond {
		t.Errorf("answered after %v, latency 60ms", d)
	}
	if r.status != 302 || r.body != "go" || r.header.Get("Location") != "https://example.invalid/x" || r.header.Get("Content-Type") != "text/plain" {
		t.Errorf("got %d %q %v", r.status, r.body, r.header)
	}
	s.SetLatency(0)
	s.Set("slow", Verdict{Status: 200, Body: []byte("{}"), Delay: 80 * time.Millisecond})
	t0 = time.Now()
	mustOK(t, validate(t, s, goodHeaders("slow")))
	if d := time.Since(t0); d < 80*time.Millisecond {
		t.Errorf("answered after %v, delay 80ms", d)
	}
}

func TestFaultHang(t *testing.T) {
	s := start(t, Config{})
	s.Set("hang", Verdict{Fault: FaultHang})
	t0 := time.Now()
	r := call(t, newClient(200*time.Millisecond), http.MethodPost, s.URL()+ValidationPath, goodHeaders("hang"))
	var ne net.Error
	if r.err == nil || !errors.As(r.err, &ne) || !ne.Timeout() {
		t.Fatalf("want a client timeout, got %+v", r)
	}
	if d := time.Since(t0); d > 2*time.Second {
		t.Errorf("timed out after %v", d)
	}
	if s.Calls() != 1 {
		t.Errorf("Calls %d", s.Calls())
	}
}

func TestFaultReset(t *testing.T) {
	s := start(t, Config{})
	s.Set("reset", Verdict{Status: 200, Body: Allow(DefaultAppID, "1", "normal").Body, Fault: FaultReset})
	s.Set("reset-empty", Verdict{Fault: FaultReset})
	for _, tok := range []string{"reset", "reset-empty"} {
		r := validate(t, s, goodHeaders(tok))
		if r.err == nil {
			t.Errorf("%s: want an error, got %d %q", tok, r.status, r.body)
		} else {
			t.Logf("%s: client error: %v", tok, r.err)
		}
	}
	// At the TCP level: the status line arrives, then the connection is reset.
	conn, err := net.Dial("tcp", s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	if err := newReq(t, http.MethodPost, s.URL()+ValidationPath, goodHeaders("reset")).Write(conn); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(conn)
	if err == nil {
		t.Logf("read %q then EOF (RST may have been seen as EOF)", got)
	} else {
		t.Logf("read %q then %v", got, err)
	}
	if len(got) > 0 && !strings.HasPrefix(string(got), "HTTP/1.1 200 OK\r\n") {
		t.Errorf("partial answer %q", got)
	}
}

func TestFaultTrickle(t *testing.T) {
	s := start(t, Config{})
	body := Allow(DefaultAppID, "1", "normal").Body
	s.Set("trickle", Verdict{Body: body, Fault: FaultTrickle})
	c := newClient(0)
	t0 := time.Now()
	resp, err := c.Do(newReq(t, http.MethodPost, s.URL()+ValidationPath, goodHeaders("trickle")))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.ContentLength != int64(len(body)) {
		t.Errorf("status %d, length %d", resp.StatusCode, resp.ContentLength)
	}
	br := bufio.NewReader(resp.Body)
	b, err := br.ReadByte()
	if err != nil || b != body[0] {
		t.Fatalf("first byte %q, %v", b, err)
	}
	if d := time.Since(t0); d > 1500*time.Millisecond {
		t.Errorf("first byte after %v", d)
	}
	done := make(chan int)
	go func() {
		n, _ := io.Copy(io.Discard, br)
		done <- int(n)
	}()
	select {
	case n := <-done:
		t.Fatalf("whole body (%d more bytes) within %v", n, time.Since(t0))
	case <-time.After(1500 * time.Millisecond):
	}
	t1 := time.Now()
	s.Close()
	if d := time.Since(t1); d > 2*time.Second {
		t.Errorf("Close took %v", d)
	}
	n := <-done
	if n == 0 || n >= len(body)-1 {
		t.Errorf("trickled %d more bytes in ~1.5s", n)
	}
}

func TestFaultClose(t *testing.T) {
	s := start(t, Config{})
	s.Set("close", Verdict{Fault: FaultClose})
	r := validate(t, s, goodHeaders("close"))
	if r.err == nil {
		t.Fatalf("want an error, got %d %q", r.status, r.body)
	}
	t.Logf("client error: %v", r.err)
	if s.Calls() != 1 {
		t.Errorf("Calls %d", s.Calls())
	}
}

// waitGoroutines polls until the goroutine count is back to at most n.
func waitGoroutines(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for {
		got := runtime.NumGoroutine()
		if got <= n {
			return
		}
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			buf = buf[:runtime.Stack(buf, true)]
			t.Fatalf("%d goroutines, want <= %d:\n%s", got, n, buf)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestCloseReleasesEverything(t *testing.T) {
	// Warm up: fasthttp starts a process-wide date-refresh goroutine once.
	w, err := Start(Config{})
	if err != nil {
		t.Fatal(err)
	}
	mustOK(t, validate(t, w, goodHeaders("x")))
	w.Close()
	waitGoroutines(t, runtime.NumGoroutine()) // settle
	time.Sleep(50 * time.Millisecond)
	before := runtime.NumGoroutine()

	s, err := Start(Config{})
	if err != nil {
		t.Fatal(err)
	}
	s.Set("hang", Verdict{Fault: FaultHang})
	s.Set("trickle", Verdict{Fault: FaultTrickle})
	s.Set("slow", Verdict{Status: 200, Body: []byte("{}"), Delay: time.Hour})
	s.Set("ok", Allow(DefaultAppID, "1", "normal"))

	c := &http.Client{Timeout: 30 * time.Second}
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	var toks []string
	for range 5 {
		toks = append(toks, "hang", "trickle", "slow")
	}
	for _, tok := range toks {
		wg.Go(func() {
			r := call(t, c, http.MethodPost, s.URL()+ValidationPath, goodHeaders(tok))
			if r.err != nil { // trickle: headers, then an error reading the body
				errs <- r.err
			}
		})
	}
	deadline := time.Now().Add(5 * time.Second)
	for s.Calls() < int64(len(toks)) {
		if time.Now().After(deadline) {
			t.Fatalf("only %d calls arrived", s.Calls())
		}
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond) // let hang and trickle hijack their connections
	// An idle keep-alive connection as well.
	mustOK(t, call(t, c, http.MethodPost, s.URL()+ValidationPath, goodHeaders("ok")))

	t0 := time.Now()
	s.Close()
	if d := time.Since(t0); d > 2*time.Second {
		t.Errorf("Close took %v", d)
	}
	s.Close() // idempotent
	wg.Wait()
	close(errs)
	n := 0
	for range errs {
		n++
	}
	if n != len(toks) {
		t.Errorf("%d of the %d in-flight requests failed", n, len(toks))
	}
	if _, err := net.DialTimeout("tcp", s.Addr(), time.Second); err == nil {
		t.Error("still listening after Close")
	}
	c.CloseIdleConnections()
	waitGoroutines(t, before)
}

func TestCloseWithHungHijackedRequests(t *testing.T) {
	s, err := Start(Config{})
	if err != nil {
		t.Fatal(err)
	}
	s.SetDefault(Verdict{Fault: FaultHang})
	var wg sync.WaitGroup
	for range 10 {
		wg.Go(func() {
			r := call(t, newClient(30*time.Second), http.MethodPost, s.URL()+ValidationPath, goodHeaders("any"))
			if r.err == nil {
				t.Errorf("hung request answered %d", r.status)
			}
		})
	}
	deadline := time.Now().Add(5 * time.Second)
	for s.Calls() < 10 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(20 * time.Millisecond) // let the handlers hijack
	t0 := time.Now()
	s.Close()
	if d := time.Since(t0); d > 2*time.Second {
		t.Errorf("Close took %v", d)
	}
	wg.Wait()
}

func TestConcurrentUse(t *testing.T) {
	s := start(t, Config{})
	c := &http.Client{Timeout: 5 * time.Second}
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for j := range 50 {
				tok := "t" + strconv.Itoa(j%5)
				if i == 0 {
					s.Set(tok, Allow(DefaultAppID, tok, "normal"))
					_ = s.LastRequest()
					_ = s.Distinct()
				}
				r := call(t, c, http.MethodPost, s.URL()+ValidationPath, goodHeaders(tok))
				if r.err != nil || (r.status != 200 && r.status != 401) {
					t.Errorf("got %+v", r)
					return
				}
			}
		})
	}
	wg.Wait()
	if s.Calls() != 400 || s.Distinct() != 5 {
		t.Errorf("calls %d distinct %d", s.Calls(), s.Distinct())
	}
}

func TestDemo(t *testing.T) {
	s := start(t, Config{})
	s.LoadDemo("")
	players := Demo(DefaultAppID)
	if len(players) != 5 {
		t.Fatalf("%d demo players", len(players))
	}
	want := map[string]int{"allow": 200, "kick (lockout)": 463, "kick (sanction)": 464, "kick (invalid token)": 401, "unavailable (upstream error)": 500}
	for _, p := range players {
		if !strings.HasPrefix(p.Token, "demo-") || len(p.Token) < 30 {
			t.Errorf("%s: token %q", p.Name, p.Token)
		}
		h := goodHeaders(p.Token)
		h["platform"] = p.Platform
		h["playerId"] = p.PlayerID
		r := validate(t, s, h)
		mustOK(t, r)
		if r.status != want[p.Expect] {
			t.Errorf("%s (%s): status %d %s", p.Name, p.Expect, r.status, r.body)
		}
		if r.status == 200 && !strings.Contains(r.body, `"playerId":"`+p.PlayerID+`"`) {
			t.Errorf("%s: body %s", p.Name, r.body)
		}
	}
}

// BenchmarkHandle measures the request handler alone (no network).
func BenchmarkHandle(b *testing.B) {
	s, err := Start(Config{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	s.Set("tok", Allow(DefaultAppID, "1", "normal"))
	var req fasthttp.Request
	req.Header.SetMethod(http.MethodPost)
	req.SetRequestURI(ValidationPath)
	for k, v := range goodHeaders("tok") {
		req.Header.Set(k, v)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		var ctx fasthttp.RequestCtx
		for pb.Next() {
			ctx.Init(&req, nil, nil)
			s.handle(&ctx)
			if ctx.Response.StatusCode() != 200 {
				b.Errorf("status %d", ctx.Response.StatusCode())
				return
			}
		}
	})
}

func BenchmarkValidate(b *testing.B) {
	s, err := Start(Config{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	s.Set("tok", Allow(DefaultAppID, "1", "normal"))
	c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256}}
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req, _ := http.NewRequest(http.MethodPost, s.URL()+ValidationPath, nil)
			for k, v := range goodHeaders("tok") {
				req.Header.Set(k, v)
			}
			resp, err := c.Do(req)
			if err != nil {
				b.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	})
}

package kakaogames

import (
	"bytes"
	"encoding/pem"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"playerguard/validator"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"playerguard/metrics"
	"playerguard/validator/kakaogames/kakaogamestest"
)

// goroutines waits for the goroutine count to settle back to at most base
// (plus slack for runtime helpers) and fails if it does not.
func checkGoroutines(t *testing.T, base int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		n := runtime.NumGoroutine()
		if n <= base+2 {
			return
		}
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("goroutines: %d before, %d after\n%s", base, n, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestUpstreamFaults: every way the upstream can misbehave yields the
// decision the table prescribes, never an allow it did not grant, within
// the upstream timeout plus a margin, with no goroutine left behind and
// the breaker counting exactly the failures.
func TestUpstreamFaults(t *testing.T) {
	const timeout = 300 * time.Millisecond
	body := func(s string) []byte { return []byte(s) }
	cases := []struct {
		name    string
		verdict kakaogamestest.Verdict
		status  int
		reason  string
		failure bool // counts against the breaker
	}{
		{"reset mid-response", kakaogamestest.Verdict{Status: 200, Body: body(playerBody("p1", "normal")), Fault: kakaogamestest.FaultReset}, 503, "upstream_unavailable", true},
		{"closed without answer", kakaogamestest.Verdict{Fault: kakaogamestest.FaultClose}, 503, "upstream_unavailable", true},
		{"never answers", kakaogamestest.Verdict{Fault: kakaogamestest.FaultHang}, 503, "upstream_unavailable", true},
		{"trickles", kakaogamestest.Verdict{Status: 200, Body: body(playerBody("p1", "normal")), Fault: kakaogamestest.FaultTrickle}, 503, "upstream_unavailable", true},
		{"body over the limit", kakaogamestest.Verdict{Status: 200, Body: body(`{"player":{"playerId":"p1","status":"normal","data":"` + strings.Repeat("x", 64<<10) + `"}}`)}, 503, "upstream_unavailable", true},
		{"truncated JSON", kakaogamestest.Verdict{Status: 200, Body: body(`{"player":{"playerId":"p1","sta`)}, 503, "upstream_unavailable", true},
		{"invalid JSON", kakaogamestest.Verdict{Status: 200, Body: body(`{player: p1}`)}, 503, "upstream_unavailable", true},
		{"missing player", kakaogamestest.Verdict{Status: 200, Body: body(`{}`)}, 503, "upstream_unavailable", true},
		{"missing status", kakaogamestest.Verdict{Status: 200, Body: body(`{"player":{"playerId":"p1"}}`)}, 503, "upstream_unavailable", true},
		{"wrong content type, good body", kakaogamestest.Verdict{Status: 200, Body: body(playerBody("p1", "normal")), ContentType: "text/plain"}, 200, "ok", false},
		{"HTML 200", kakaogamestest.Verdict{Status: 200, Body: body("<html><body>Welcome to the proxy</body></html>"), ContentType: "text/html"}, 503, "upstream_unavailable", true},
		{"408", kakaogamestest.Verdict{Status: 408}, 503, "upstream_unavailable", true},
		{"429", kakaogamestest.Verdict{Status: 429, Body: body(`{"desc":"Too many requests. (429.-1)"}`)}, 503, "upstream_unavailable", true},
		{"473", kakaogamestest.Maintenance(), 503, "upstream_maintenance", true},
		{"500", kakaogamestest.Error(500), 503, "upstream_unavailable", true},
		{"502 HTML", kakaogamestest.Verdict{Status: 502, Body: body("<html>Bad Gateway</html>"), ContentType: "text/html"}, 503, "upstream_unavailable", true},
		{"503", kakaogamestest.Error(503), 503, "upstream_unavailable", true},
		{"504", kakaogamestest.Verdict{Status: 504}, 503, "upstream_unavailable", true},
		{"unknown 4xx, HTML", kakaogamestest.Verdict{Status: 499, Body: body("<html>nope</html>"), ContentType: "text/html"}, 503, "upstream_unavailable", true},
		{"unknown 4xx, Kakao body", kakaogamestest.Verdict{Status: 499, Body: body(`{"desc":"Abnormal. (499.-1)"}`)}, 403, "abnormal_state", false},
		{"redirect", kakaogamestest.Verdict{Status: 302, Header: map[string]string{"Location": "https://login.example/"}}, 503, "upstream_unavailable", true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := newHarness(t, func(cfg *testConfig) {
				cfg.UpstreamTimeout = timeout
				cfg.Policy = validator.PolicyClosed
				cfg.BreakerFailures = 100
			})
			h.fake.Set("tok-warm", kakaogamestest.Allow(testApp, "p0", "normal"))
			h.check("tok-warm", "mobile", "") // connections and pools exist before counting
			base := runtime.NumGoroutine()

			h.fake.Set("tok-f", c.verdict)
			start := time.Now()
			r := h.check("tok-f", "mobile", "p1")
			elapsed := time.Since(start)
			if r.status != c.status || r.str("reason") != c.reason {
				t.Fatalf("got %d %s, want %d %s", r.status, r.raw, c.status, c.reason)
			}
			if elapsed > timeout+500*time.Millisecond {
				t.Errorf("answer took %v with a %v upstream timeout", elapsed, timeout)
			}
			failures := 0.0
			if c.failure {
				failures = 1
			}
			if got := h.v.BreakerFailures(Name); float64(got) != failures {
				t.Errorf("breaker counted %d failures, want %v", got, failures)
			}
			h.fake.Close() // releases hung handlers; our side must not linger
			checkGoroutines(t, base)
		})
	}
}

func TestConnectionRefused(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	h := newHarness(t, func(c *testConfig) { c.Upstream = "http://" + addr; c.Policy = validator.PolicyClosed })
	start := time.Now()
	h.expect(h.check("tok-a", "mobile", ""), 503, "unavailable", "upstream_unavailable", "upstream")
	if d := time.Since(start); d > time.Second {
		t.Errorf("took %v", d)
	}
	if n := h.metric("playerguard_upstream_requests_total", "outcome", "connection_error"); n != 1 {
		t.Errorf("connection errors = %v, want 1", n)
	}
}

// TestUpstreamCallCap: a storm of distinct tokens against a hanging
// upstream uses at most the cap of connections; the excess waits, then gets
// unavailable; nothing crashes and nothing allows.
func TestUpstreamCallCap(t *testing.T) {
	h := newHarness(t, func(c *testConfig) {
		c.MaxUpstreamConns = 4
		c.UpstreamTimeout = 300 * time.Millisecond
		c.Policy = validator.PolicyClosed
		c.BreakerFailures = 1000
	})
	h.fake.SetOverride(&kakaogamestest.Verdict{Fault: kakaogamestest.FaultHang})
	var wg sync.WaitGroup
	statuses := make(chan int, 40)
	for i := range 40 {
		wg.Go(func() { statuses <- h.check(fmt.Sprint("tok-", i), "mobile", "").status })
	}
	wg.Wait()
	close(statuses)
	for s := range statuses {
		if s != 503 {
			t.Errorf("status %d, want 503", s)
		}
	}
	if n := h.fake.Calls(); n > 40 || n == 0 {
		t.Errorf("upstream saw %d calls", n)
	}
	if n := h.metric("playerguard_upstream_saturated_total"); n == 0 {
		t.Error("no call was refused for the cap")
	}
	if n := h.metric("playerguard_upstream_in_flight_requests"); n != 0 {
		t.Errorf("in-flight gauge = %v after the storm", n)
	}
}

// TestUpstreamTLS: the upstream's certificate is always verified; a private
// CA is trusted only through -upstream-ca-file.
func TestUpstreamTLS(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != ValidationPath || r.Header.Get("appSecret") != testSecret {
			w.WriteHeader(400)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(playerBody("p1", "normal")))
	}))
	defer srv.Close()
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // our failed handshakes are expected

	h := newHarness(t, func(c *testConfig) { c.Upstream = srv.URL; c.Policy = validator.PolicyClosed })
	h.expect(h.check("tok-a", "mobile", ""), 503, "unavailable", "upstream_unavailable", "upstream")

	ca := filepath.Join(t.TempDir(), "ca.pem")
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	if err := os.WriteFile(ca, pemBytes, 0o600); err != nil {
		t.Fatal(err)
	}
	h = newHarness(t, func(c *testConfig) { c.Upstream = srv.URL; c.UpstreamCAFile = ca })
	h.expect(h.check("tok-a", "mobile", ""), 200, "allow", "ok", "upstream")

	notPEM := filepath.Join(t.TempDir(), "bad.pem")
	os.WriteFile(notPEM, []byte("not a certificate"), 0o600)
	if _, err := New(Config{Upstream: srv.URL, AppID: "1", UpstreamCAFile: notPEM}); err == nil {
		t.Error("a CA file without certificates was accepted")
	}
}

// TestHalfOpenLetsOneProbeThrough: when the breaker half-opens under load,
// one request probes the upstream and the rest are answered at once.
func TestHalfOpenLetsOneProbeThrough(t *testing.T) {
	h := newHarness(t, func(c *testConfig) { c.Policy = validator.PolicyClosed })
	h.fake.SetOverride(&kakaogamestest.Verdict{Status: 500})
	for i := range 3 {
		h.check(fmt.Sprint("tok-f", i), "mobile", "")
	}
	waitFor(t, "half-open", func() bool { return h.metric("playerguard_breaker_state") == metrics.BreakerHalfOpen })
	h.fake.SetOverride(nil)
	h.fake.SetLatency(300 * time.Millisecond)
	before := h.fake.Calls()
	var wg sync.WaitGroup
	var mu sync.Mutex
	reasons := map[string]int{}
	for i := range 10 {
		wg.Go(func() {
			r := h.check(fmt.Sprint("tok-p", i), "mobile", "")
			mu.Lock()
			reasons[r.str("decision")+"/"+r.str("reason")]++
			mu.Unlock()
		})
	}
	wg.Wait()
	if n := h.fake.Calls() - before; n != 1 {
		t.Errorf("%d probes reached the upstream while half-open, want 1 (%v)", n, reasons)
	}
	if reasons["kick/invalid_token"] != 1 || reasons["unavailable/circuit_open"] != 9 {
		t.Errorf("answers %v", reasons)
	}
}

func TestNoAllowWithoutUpstreamAllow(t *testing.T) {
	// Under the closed policy, no sequence of failures yields an allow.
	h := newHarness(t, func(c *testConfig) { c.Policy = validator.PolicyClosed; c.UpstreamTimeout = 200 * time.Millisecond })
	for i, v := range []kakaogamestest.Verdict{
		{Status: 200, Body: []byte(`{"player":{"playerId":"p1","status":"normal"`)},
		{Status: 200, Body: []byte(`{"player":{"playerId":"p1","status":"normal"}}`), Fault: kakaogamestest.FaultReset},
		{Status: 201, Body: []byte(playerBody("p1", "normal"))},
		{Status: 304},
		{Status: 200, Body: bytes.Repeat([]byte(" "), 70<<10)},
	} {
		tok := fmt.Sprint("tok-", i)
		h.fake.Set(tok, v)
		if r := h.check(tok, "mobile", "p1"); r.status == 200 || r.str("decision") == "allow" {
			t.Errorf("verdict %d allowed: %s", i, r.raw)
		}
	}
}

// TestHalfOpenProbeHasNoFollowers: requests for the same key as a hanging
// half-open probe do not join it; they are answered at once.
func TestHalfOpenProbeHasNoFollowers(t *testing.T) {
	h := newHarness(t, func(c *testConfig) { c.Policy = validator.PolicyClosed })
	h.fake.SetOverride(&kakaogamestest.Verdict{Status: 500})
	for i := range 3 {
		h.check(fmt.Sprint("tok-f", i), "mobile", "")
	}
	waitFor(t, "half-open", func() bool { return h.metric("playerguard_breaker_state") == metrics.BreakerHalfOpen })
	h.fake.SetOverride(&kakaogamestest.Verdict{Fault: kakaogamestest.FaultHang})
	probe := make(chan reply, 1)
	go func() { probe <- h.check("tok-same", "mobile", "") }()
	waitFor(t, "the probe to reach the upstream", func() bool { return h.fake.TokenCalls("tok-same") == 1 })
	for range 5 {
		start := time.Now()
		h.expect(h.check("tok-same", "mobile", ""), 503, "unavailable", "circuit_open", "upstream")
		if d := time.Since(start); d > 150*time.Millisecond {
			t.Errorf("a follower waited %v on the hanging probe", d)
		}
	}
	h.expect(<-probe, 503, "unavailable", "upstream_unavailable", "upstream")
	if n := h.fake.TokenCalls("tok-same"); n != 1 {
		t.Errorf("upstream calls = %d, want 1 (the probe)", n)
	}
}

// TestStormOneCallPerKey: waves of requests for the same keys, arriving
// before, during and just after each key's upstream call, make exactly one
// call per key (the allow is visible in the cache when the call ends).
func TestStormOneCallPerKey(t *testing.T) {
	// 1,600 requests at once under -race on a busy CI machine can keep a
	// call past the harness's 1 s timeout: that is an unavailable (and a
	// call again later), correct but not what this test is about.
	h := newHarness(t, func(c *testConfig) { c.UpstreamTimeout = 30 * time.Second })
	h.fake.SetLatency(20 * time.Millisecond)
	const tokens = 200
	for i := range tokens {
		h.fake.Set(fmt.Sprint("tok-", i), kakaogamestest.Allow(testApp, fmt.Sprint("p", i), "normal"))
	}
	var wg sync.WaitGroup
	for wave := range 8 {
		for i := range tokens {
			wg.Go(func() {
				if r := h.check(fmt.Sprint("tok-", i), "mobile", ""); r.status != 200 {
					t.Errorf("wave %d token %d: %d", wave, i, r.status)
				}
			})
		}
		time.Sleep(7 * time.Millisecond) // waves straddle the calls' ends
	}
	wg.Wait()
	if n := h.fake.Calls(); n != tokens {
		t.Errorf("upstream calls = %d for %d tokens", n, tokens)
	}
}

// TestOtherUpstreamImplementations: upstreams other than our fasthttp fake
// frame responses differently: lowercase header names (as Node writes
// what it is given), chunked bodies (net/http after a Flush), Connection:
// close. Decisions and pass-through must not depend on it.
func TestOtherUpstreamImplementations(t *testing.T) {
	allow := playerBody("p1", "normal")
	// A raw upstream: lowercase header names, one answer per connection.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				buf := make([]byte, 16<<10)
				c.Read(buf) // the request fits one read here
				body := allow
				status := "200 OK"
				if bytes.Contains(buf, []byte("tok-locked")) {
					body, status = lockoutBody, "463 Lockout"
				}
				fmt.Fprintf(c, "HTTP/1.1 %s\r\ncontent-type: application/json;charset=UTF-8\r\ncontent-length: %d\r\nconnection: close\r\n\r\n%s", status, len(body), body)
			}()
		}
	}()
	h := newHarness(t, func(c *testConfig) { c.Upstream = "http://" + ln.Addr().String() })
	h.expect(h.check("tok-a", "mobile", "p1"), 200, "allow", "ok", "upstream")
	r := h.check("tok-locked", "mobile", "")
	h.expect(r, 403, "kick", "lockout", "upstream")
	if d := h.dropIn(map[string]string{"accessToken": "tok-locked", "platform": "pc"}); d.status != 463 || d.raw != lockoutBody ||
		d.header.Get("Content-Type") != "application/json;charset=UTF-8" {
		t.Errorf("drop-in lockout through a lowercase-header upstream: %d %q %v", d.status, d.raw, d.header)
	}

	// net/http, chunked.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if r.Header.Get("accessToken") == "tok-sanctioned" {
			w.WriteHeader(464)
			io.WriteString(w, `{"desc":"Sanctioned. `)
			w.(http.Flusher).Flush()
			io.WriteString(w, `(464.-10102)","player":{"playerId":"p3","status":"normal"}}`)
			return
		}
		io.WriteString(w, allow[:10])
		w.(http.Flusher).Flush() // forces chunked encoding
		io.WriteString(w, allow[10:])
	}))
	defer srv.Close()
	h = newHarness(t, func(c *testConfig) { c.Upstream = srv.URL })
	h.expect(h.check("tok-a", "mobile", "p1"), 200, "allow", "ok", "upstream")
	h.expect(h.check("tok-sanctioned", "mobile", ""), 403, "kick", "sanction", "upstream")
}

// Package testkit holds the small helpers playerguard's tests share: a
// settable clock, a log buffer many goroutines may write to, an HTTP
// answer read whole, and a metric's value.
package testkit

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"
	"github.com/valyala/fasthttp"
)

// Clock is a settable clock, safe for concurrent use.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// NewClock returns a Clock reading t.
func NewClock(t time.Time) *Clock { return &Clock{t: t} }

// Now reads the clock.
func (c *Clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }

// Add moves the clock by d.
func (c *Clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// SyncBuffer collects log output from many goroutines.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String is everything written so far.
func (s *SyncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// Reply is an HTTP response read whole; Body is its JSON object, if it is
// one.
type Reply struct {
	Status int
	Header http.Header
	Raw    string
	Body   map[string]any
}

// Do sends req with c and reads the whole answer; a transport error fails
// the test.
func Do(t testing.TB, c *http.Client, req *http.Request) Reply {
	t.Helper()
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	r := Reply{Status: resp.StatusCode, Header: resp.Header, Raw: string(raw)}
	json.Unmarshal(raw, &r.Body)
	return r
}

// Metric sums the values of the counters and gauges named name in reg
// whose labels include labels (name, value pairs).
func Metric(t testing.TB, reg prometheus.Gatherer, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			have := map[string]string{}
			for _, lp := range m.GetLabel() {
				have[lp.GetName()] = lp.GetValue()
			}
			for i := 0; i+1 < len(labels); i += 2 {
				if have[labels[i]] != labels[i+1] {
					continue next
				}
			}
			switch {
			case m.Counter != nil:
				sum += m.Counter.GetValue()
			case m.Gauge != nil:
				sum += m.Gauge.GetValue()
			}
		}
	}
	return sum
}

// Serve serves srv on a free loopback port until the test ends and
// returns its base URL.
func Serve(t testing.TB, srv *fasthttp.Server) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.ShutdownWithContext(ctx)
	})
	return "http://" + ln.Addr().String()
}

// HitCtx returns a request context whose validation is a cache hit: it
// builds the request with build, serves it with handler (the answer must
// be a 200), waits for the cache write (settle), and serves it again,
// which must be answered from the cache. Serve it again after
// ctx.Response.Reset().
func HitCtx(tb testing.TB, handler fasthttp.RequestHandler, settle func(), build func(r *fasthttp.Request)) *fasthttp.RequestCtx {
	tb.Helper()
	ctx := &fasthttp.RequestCtx{}
	ctx.Init(&fasthttp.Request{}, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1234}, nil)
	ctx.Request.Header.SetMethod("POST")
	build(&ctx.Request)
	handler(ctx)
	if ctx.Response.StatusCode() != 200 {
		tb.Fatalf("warm-up: %d %s", ctx.Response.StatusCode(), ctx.Response.Body())
	}
	settle()
	ctx.Response.Reset()
	handler(ctx)
	if h := ctx.Response.Header.Peek("X-Playerguard-Source"); string(h) != "cache" {
		tb.Fatalf("second validation from %q, want cache: %s", h, ctx.Response.Body())
	}
	return ctx
}

// ZeroAllocs fails t unless serving ctx with handler allocates nothing.
// Under -race it skips: the race detector makes sync.Pool drop items at
// random, so allocation counts mean nothing there (CI runs these without
// it).
func ZeroAllocs(t *testing.T, handler fasthttp.RequestHandler, ctx *fasthttp.RequestCtx) {
	t.Helper()
	if RaceEnabled {
		t.Skip("allocation counts are meaningless under -race (sync.Pool drops items); run without -race")
	}
	if n := testing.AllocsPerRun(1000, func() {
		ctx.Response.Reset()
		handler(ctx)
	}); n != 0 {
		t.Errorf("%v allocations per cache hit, want 0", n)
	}
}

// Gather is every metric of reg as the text /metrics serves.
func Gather(t testing.TB, reg prometheus.Gatherer) string {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	for _, mf := range mfs {
		if _, err := expfmt.MetricFamilyToText(&b, mf); err != nil {
			t.Fatal(err)
		}
	}
	return b.String()
}

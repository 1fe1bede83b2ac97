package validator

import (
	"bufio"
	"errors"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// closingServer answers the first request of every connection with a
// keep-alive 200 and reads the second, then closes without answering: an
// upstream whose idle close crossed the request on the wire.
type closingServer struct {
	ln       net.Listener
	requests atomic.Int64
	wg       sync.WaitGroup
}

func startClosingServer(t *testing.T, answerFirst bool) *closingServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &closingServer{ln: ln}
	t.Cleanup(func() { ln.Close(); s.wg.Wait() })
	s.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.wg.Go(func() {
				defer c.Close()
				br := bufio.NewReader(c)
				for i := 0; ; i++ {
					req, err := http.ReadRequest(br)
					if err != nil {
						return
					}
					req.Body.Close()
					s.requests.Add(1)
					if i > 0 || !answerFirst {
						return // closed, unanswered
					}
					c.Write([]byte("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"))
				}
			})
		}
	})
	return s
}

func (s *closingServer) upstream(t *testing.T) *HTTPUpstream {
	t.Helper()
	u, err := NewHTTPUpstream(HTTPUpstreamConfig{URL: "http://" + s.ln.Addr().String(), Timeout: 2 * time.Second, MaxConns: 1, MaxBody: 1024})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(u.Close)
	return u
}

// TestResendOnIdleClose: a GET on a pooled connection that the upstream
// closes before answering goes once more, on another connection; on a
// fresh connection it does not (that is an upstream failure), and a POST
// never is (the upstream may have acted on it: an SMS sent).
func TestResendOnIdleClose(t *testing.T) {
	s := startClosingServer(t, true)
	u := s.upstream(t)
	for i := range 3 {
		ex, err := u.Do(u.NewRequest(fasthttp.MethodGet, "/v"), nil)
		if err != nil || ex.Status != 200 {
			t.Fatalf("call %d: %v %d", i, err, ex.Status)
		}
	}
	// 1 on the first connection; then per call the pooled connection's
	// unanswered request and the resent one.
	if n := s.requests.Load(); n != 5 {
		t.Errorf("%d requests reached the upstream, want 5", n)
	}

	post := startClosingServer(t, true)
	pu := post.upstream(t)
	if _, err := pu.Do(pu.NewRequest(fasthttp.MethodPost, "/v"), nil); err != nil {
		t.Fatal(err)
	}
	if _, err := pu.Do(pu.NewRequest(fasthttp.MethodPost, "/v"), nil); !errors.Is(err, errConnection) {
		t.Errorf("a POST closed unanswered: %v, want a connection error", err)
	}
	if n := post.requests.Load(); n != 2 {
		t.Errorf("%d POSTs reached the upstream, want 2: none resent", n)
	}

	never := startClosingServer(t, false)
	nu := never.upstream(t)
	_, err := nu.Do(nu.NewRequest(fasthttp.MethodGet, "/v"), nil)
	if err == nil || !errors.Is(err, errConnection) {
		t.Errorf("a fresh connection closed unanswered: %v, want a connection error", err)
	}
	if n := never.requests.Load(); n != 1 {
		t.Errorf("%d requests, want 1: no resend on a fresh connection", n)
	}
}

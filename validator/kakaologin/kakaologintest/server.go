// Package kakaologintest is an in-process fake of Kakao Login's
// GET /v1/user/access_token_info, for tests, the demo and load tests. It
// listens on loopback only, scripts its answer per access token, and never
// talks to Kakao.
//
// A request must be GET /v1/user/access_token_info with "Authorization:
// Bearer <token>"; any other path is 404 and any other method 405 (Kakao's
// error shape, not counted as calls). The answer is the token's verdict
// (Set), else the override (SetOverride), else the default (initially
// Invalid: -401). Every counted call is remembered per token.
//
// All methods are safe for concurrent use.
package kakaologintest

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// InfoPath is the endpoint the fake serves.
const InfoPath = "/v1/user/access_token_info"

// Verdict is what the fake answers for one token.
type Verdict struct {
	Status int    // HTTP status; 0 means 200
	Body   string // the JSON body, as is
	Delay  time.Duration
	// Hang: never answer (until the client gives up or Close).
	Hang bool
}

// Valid is a live token of user id for app appID, with expiresIn seconds left.
func Valid(userID, appID int64, expiresIn int) Verdict {
	return Verdict{Body: fmt.Sprintf(`{"id":%d,"expires_in":%d,"app_id":%d}`, userID, expiresIn, appID)}
}

// Code is a Kakao error: status and {"code": code, "msg": msg}.
func Code(status, code int, msg string) Verdict {
	return Verdict{Status: status, Body: fmt.Sprintf(`{"msg":%q,"code":%d}`, msg, code)}
}

// Invalid is the answer for an expired, revoked or unknown token.
func Invalid() Verdict { return Code(401, -401, "this access token does not exist") }

// Server is a running fake.
type Server struct {
	ln   net.Listener
	srv  *http.Server
	quit chan struct{}
	once sync.Once

	mu       sync.RWMutex
	verdicts map[string]Verdict
	def      Verdict
	override *Verdict
	calls    map[string]int64
	total    atomic.Int64
}

// Start serves on a free loopback port until Close.
func Start() (*Server, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &Server{ln: ln, quit: make(chan struct{}), verdicts: map[string]Verdict{}, calls: map[string]int64{}, def: Invalid()}
	s.srv = &http.Server{Handler: http.HandlerFunc(s.handle), ReadHeaderTimeout: 10 * time.Second}
	go s.srv.Serve(ln)
	return s, nil
}

// URL is the base URL to configure as the Kakao Login API, http://127.0.0.1:PORT.
func (s *Server) URL() string { return "http://" + s.ln.Addr().String() }

// Close stops the fake and releases hanging answers.
func (s *Server) Close() {
	s.once.Do(func() {
		close(s.quit)
		s.srv.Close()
	})
}

// Set scripts the answer for token.
func (s *Server) Set(token string, v Verdict) {
	s.mu.Lock()
	s.verdicts[token] = v
	s.mu.Unlock()
}

// SetDefault sets the answer for tokens without a Set.
func (s *Server) SetDefault(v Verdict) {
	s.mu.Lock()
	s.def = v
	s.mu.Unlock()
}

// SetOverride answers every token with v (an outage); nil ends it.
func (s *Server) SetOverride(v *Verdict) {
	s.mu.Lock()
	s.override = v
	s.mu.Unlock()
}

// Calls is the number of counted calls; TokenCalls those for one token.
func (s *Server) Calls() int64 { return s.total.Load() }

func (s *Server) TokenCalls(token string) int64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.calls[token]
}

var errNoBearer = errors.New("no bearer token")

func bearer(r *http.Request) (string, error) {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || tok == "" {
		return "", errNoBearer
	}
	return tok, nil
}

func (s *Server) handle(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json;charset=UTF-8")
	if r.URL.Path != InfoPath {
		w.WriteHeader(http.StatusNotFound)
		fmt.Fprint(w, `{"msg":"not found","code":-1}`)
		return
	}
	if r.Method != http.MethodGet {
		w.WriteHeader(http.StatusMethodNotAllowed)
		fmt.Fprint(w, `{"msg":"method not allowed","code":-2}`)
		return
	}
	tok, err := bearer(r)
	s.total.Add(1)
	s.mu.Lock()
	s.calls[tok]++
	v, ok := s.verdicts[tok]
	if s.override != nil {
		v, ok = *s.override, true
	}
	if !ok {
		v = s.def
	}
	s.mu.Unlock()
	if err != nil {
		v = Code(401, -401, "no access token")
	}
	if v.Hang {
		select {
		case <-r.Context().Done():
		case <-s.quit:
		}
		return
	}
	if v.Delay > 0 {
		t := time.NewTimer(v.Delay)
		select {
		case <-t.C:
		case <-s.quit:
			t.Stop()
			return
		}
	}
	status := v.Status
	if status == 0 {
		status = http.StatusOK
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(v.Body)))
	w.WriteHeader(status)
	fmt.Fprint(w, v.Body)
}

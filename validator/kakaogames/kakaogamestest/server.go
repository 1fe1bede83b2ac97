// Package kakaogamestest is an in-process fake of the Kakao Games OpenAPI
// token validation endpoint, POST /service/v5/auth/validation.
//
// It is meant for tests, for the embedded demo (playerguard -demo) and for
// load tests only: it accepts well-known fake secrets, never talks to the
// real service and listens on loopback only (127.0.0.1:0 by default). It
// is built on fasthttp, does no per-request logging and does not allocate
// on the hot path, so that it can serve tens of thousands of requests per
// second. Every distinct accessToken seen is remembered (for TokenCalls)
// until ResetCounts.
//
// Contract of a request, checked in this order:
//
//  1. The path must be /service/v5/auth/validation (else 404
//     {"desc":"Not found. (404.0)"}) and the method POST (else 405). These
//     requests are not counted as calls.
//  2. The headers appSecret, Authorization, kgAppId, platform and
//     accessToken must be present and non-empty, and platform one of web,
//     launcher, mobile, pc (else 400 {"desc":"Required header is missing or
//     invalid: <name> (400.-1)"}). appSecret, Authorization ("KakaoAK
//     <admin key>") and kgAppId must equal the configured ones (else 401
//     {"desc":"App authentication failed. (401.-29001)"}). Header names are
//     case-insensitive. These requests ARE counted, under their accessToken
//     (possibly ""), so a test can prove which secrets a client sent.
//  3. The verdict is the override if one is set, else the token's verdict
//     (Set), else the default (SetDefault; initially Invalid()). The fake
//     waits Config.Latency (SetLatency) plus Verdict.Delay, then answers or
//     applies the verdict's Fault.
//
// The optional playerId header is recorded (LastRequest) but never checked
// against the verdict: a token set to Allow(app, "A") answers player A even
// when the request claims another player.
//
// Every answer, including 400/401/404/405, is preceded by the configured
// Latency. Close releases every waiting, hanging or trickling handler at
// once and closes every connection.
package kakaogamestest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"
)

// ValidationPath is the only path the fake serves.
const ValidationPath = "/service/v5/auth/validation"

// Defaults applied by Start for zero Config fields.
const (
	DefaultAppID     = "909428"
	DefaultAppSecret = "fake-app-secret"
	DefaultAdminKey  = "fake-admin-key"
	DefaultAddr      = "127.0.0.1:0"
)

// Config configures a fake upstream. Zero values are documented per field.
type Config struct {
	AppID     string        // kgAppId the fake expects; "" means "909428"
	AppSecret string        // appSecret it expects; "" means "fake-app-secret"
	AdminKey  string        // admin key expected as "KakaoAK <key>"; "" means "fake-admin-key"
	Latency   time.Duration // added before every answer (load tests use 30-50ms)
	Addr      string        // listen address; "" means "127.0.0.1:0"
}

// RequestInfo is a copy of the interesting parts of one request.
type RequestInfo struct {
	Method, Path, AppSecret, Authorization, AppID, Platform, AccessToken, PlayerID, ContentType string
}

// Server is a running fake upstream. All its methods are safe for
// concurrent use.
type Server struct {
	cfg      Config
	wantAuth string // "KakaoAK " + AdminKey

	ln   net.Listener
	srv  *fasthttp.Server
	quit chan struct{} // closed by Close: releases waiting handlers

	latency  atomic.Int64 // time.Duration
	override atomic.Pointer[prepared]
	def      atomic.Pointer[prepared]

	calls     atomic.Int64
	distinct  atomic.Int64
	rawWrites atomic.Int64

	tokMu  sync.RWMutex
	tokens map[string]*tokenEntry

	lastMu sync.Mutex
	last   [9][]byte // RequestInfo fields, in declaration order
	lastOK bool

	connsMu sync.Mutex
	closed  bool
	conns   map[net.Conn]bool // every open connection -> hijacked
	wg      sync.WaitGroup    // accept loop, connection goroutines, hijack handlers

	closeOnce sync.Once
}

type tokenEntry struct {
	verdict atomic.Pointer[prepared]
	calls   atomic.Int64
}

// Start listens on cfg.Addr and serves until Close. The address must be a
// loopback one (127.0.0.0/8, ::1 or localhost).
func Start(cfg Config) (*Server, error) {
	if cfg.AppID == "" {
		cfg.AppID = DefaultAppID
	}
	if cfg.AppSecret == "" {
		cfg.AppSecret = DefaultAppSecret
	}
	if cfg.AdminKey == "" {
		cfg.AdminKey = DefaultAdminKey
	}
	if cfg.Addr == "" {
		cfg.Addr = DefaultAddr
	}
	if err := checkLoopback(cfg.Addr); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return nil, err
	}
	s := &Server{
		cfg:      cfg,
		wantAuth: "KakaoAK " + cfg.AdminKey,
		ln:       ln,
		quit:     make(chan struct{}),
		tokens:   make(map[string]*tokenEntry),
		conns:    make(map[net.Conn]bool),
	}
	s.latency.Store(int64(cfg.Latency))
	s.def.Store(prepare(Invalid()))
	s.srv = &fasthttp.Server{
		Handler:               s.handle,
		Name:                  "kakaogamestest",
		Concurrency:           256 * 1024,
		ReadTimeout:           30 * time.Second,
		WriteTimeout:          30 * time.Second,
		IdleTimeout:           2 * time.Minute, // longer than clients' idle timeouts: no reuse-after-close races
		MaxRequestBodySize:    64 * 1024,
		ReadBufferSize:        16 * 1024, // headers with a 4096-byte accessToken
		NoDefaultServerHeader: true,
		Logger:                nopLogger{},
	}
	s.wg.Add(1)
	go s.acceptLoop()
	return s, nil
}

// acceptLoop serves each connection in its own goroutine with
// fasthttp.Server.ServeConn rather than fasthttp.Server.Serve: Serve's
// worker pool keeps a cleaner goroutine sleeping up to
// MaxIdleWorkerDuration (10s) after the listener is closed, and Shutdown
// polls every 100ms and never closes busy keep-alive connections. Owning
// the connections lets Close end everything at once and wait for it.
func (s *Server) acceptLoop() {
	defer s.wg.Done()
	var backoff time.Duration
	for {
		c, err := s.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Temporary (e.g. EMFILE under a load test): back off a little.
			if backoff == 0 {
				backoff = 5 * time.Millisecond
			} else if backoff < time.Second {
				backoff *= 2
			}
			t := time.NewTimer(backoff)
			select {
			case <-t.C:
				continue
			case <-s.quit:
				t.Stop()
				return
			}
		}
		backoff = 0
		s.connsMu.Lock()
		if s.closed {
			s.connsMu.Unlock()
			_ = c.Close()
			continue // the next Accept fails: the listener is closed
		}
		s.conns[c] = false
		s.wg.Add(1) // counter > 0 (this goroutine): safe even while Close waits
		s.connsMu.Unlock()
		go s.serveConn(c)
	}
}

func (s *Server) serveConn(c net.Conn) {
	defer s.wg.Done()
	_ = s.srv.ServeConn(c) // closes c, unless it was hijacked
	s.connsMu.Lock()
	if hijacked := s.conns[c]; !hijacked {
		delete(s.conns, c) // no-op on the nil map after Close
	}
	s.connsMu.Unlock()
}

// checkLoopback refuses listen addresses that are not loopback: the fake
// accepts well-known fake secrets and must never be reachable from outside.
func checkLoopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("kakaogamestest: listen address %q: %w", addr, err)
	}
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("kakaogamestest: listen address %q is not loopback (use 127.0.0.1:PORT)", addr)
}

type nopLogger struct{}

func (nopLogger) Printf(string, ...any) {}

// URL returns the base URL, "http://127.0.0.1:PORT".
func (s *Server) URL() string { return "http://" + s.Addr() }

// Addr returns the listening address, "127.0.0.1:PORT".
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Config returns the effective configuration (defaults applied; Latency
// as given to Start, see SetLatency).
func (s *Server) Config() Config { return s.cfg }

// Close stops listening, releases every waiting, hanging or trickling
// handler, closes every connection and waits for the handlers and the
// connection goroutines to end. It is idempotent.
func (s *Server) Close() {
	s.closeOnce.Do(func() {
		s.connsMu.Lock()
		s.closed = true
		conns := s.conns
		s.conns = nil
		s.connsMu.Unlock()

		close(s.quit)
		_ = s.ln.Close()
		for c := range conns {
			_ = c.Close()
		}
		s.wg.Wait()
	})
}

// Set sets the verdict for one token. Safe for concurrent use.
func (s *Server) Set(token string, v Verdict) {
	s.entry(token, true).verdict.Store(prepare(v))
}

// Unset removes the token's verdict: it gets the default again.
func (s *Server) Unset(token string) {
	if e := s.entry(token, false); e != nil {
		e.verdict.Store(nil)
	}
}

// SetDefault sets the verdict for tokens with no Set. The initial default
// is Invalid().
func (s *Server) SetDefault(v Verdict) { s.def.Store(prepare(v)) }

// SetOverride makes every request that passes the header checks get v,
// whatever its token (an outage, a maintenance...). nil restores the
// per-token verdicts.
func (s *Server) SetOverride(v *Verdict) {
	if v == nil {
		s.override.Store(nil)
		return
	}
	s.override.Store(prepare(*v))
}

// SetLatency changes the delay added before every answer.
func (s *Server) SetLatency(d time.Duration) { s.latency.Store(int64(d)) }

// Calls returns the number of requests to the validation endpoint (right
// path and method) received, whether they passed the header checks or not,
// answered or faulted. A request is counted when it arrives, before the
// latency.
func (s *Server) Calls() int64 { return s.calls.Load() }

// TokenCalls returns the number of counted calls carrying this accessToken
// ("" counts the calls without one).
func (s *Server) TokenCalls(token string) int64 {
	if e := s.entry(token, false); e != nil {
		return e.calls.Load()
	}
	return 0
}

// RawWrites returns how many FaultRaw answers were written in full.
func (s *Server) RawWrites() int64 { return s.rawWrites.Load() }

// Distinct returns the number of distinct accessToken values counted.
func (s *Server) Distinct() int { return int(s.distinct.Load()) }

// ResetCounts zeroes Calls, TokenCalls and Distinct (verdicts stay). It is
// not atomic with respect to requests in flight.
func (s *Server) ResetCounts() {
	s.tokMu.Lock()
	for tok, e := range s.tokens {
		e.calls.Store(0)
		if e.verdict.Load() == nil {
			delete(s.tokens, tok)
		}
	}
	s.calls.Store(0)
	s.distinct.Store(0)
	s.tokMu.Unlock()
}

// LastRequest returns a copy of the most recent request's method, path and
// headers, any request included (404/405 too). The zero RequestInfo means
// no request yet.
func (s *Server) LastRequest() RequestInfo {
	s.lastMu.Lock()
	defer s.lastMu.Unlock()
	if !s.lastOK {
		return RequestInfo{}
	}
	l := &s.last
	return RequestInfo{
		Method: string(l[0]), Path: string(l[1]), AppSecret: string(l[2]), Authorization: string(l[3]),
		AppID: string(l[4]), Platform: string(l[5]), AccessToken: string(l[6]), PlayerID: string(l[7]),
		ContentType: string(l[8]),
	}
}

// entry returns the token's entry, creating it if create.
func (s *Server) entry(token string, create bool) *tokenEntry {
	s.tokMu.RLock()
	e := s.tokens[token]
	s.tokMu.RUnlock()
	if e != nil || !create {
		return e
	}
	s.tokMu.Lock()
	e = s.tokens[token]
	if e == nil {
		e = &tokenEntry{}
		s.tokens[token] = e
	}
	s.tokMu.Unlock()
	return e
}

// entryBytes is entry(string(tok), true) without allocating on a hit.
func (s *Server) entryBytes(tok []byte) *tokenEntry {
	s.tokMu.RLock()
	e := s.tokens[string(tok)]
	s.tokMu.RUnlock()
	if e != nil {
		return e
	}
	return s.entry(string(tok), true)
}

var (
	bodyNotFound       = []byte(`{"desc":"Not found. (404.0)"}`)
	bodyNotAllowed     = []byte(`{"desc":"Method not allowed. (405.0)"}`)
	bodyAppAuthFailed  = []byte(`{"desc":"App authentication failed. (401.-29001)"}`)
	bodyMissingHeaders = func() map[string][]byte {
		m := make(map[string][]byte)
		for _, h := range []string{"appSecret", "Authorization", "kgAppId", "platform", "accessToken"} {
			m[h] = []byte(`{"desc":"Required header is missing or invalid: ` + h + ` (400.-1)"}`)
		}
		return m
	}()
)

func validPlatform(p []byte) bool {
	switch string(p) {
	case "web", "launcher", "mobile", "pc":
		return true
	}
	return false
}

func (s *Server) handle(ctx *fasthttp.RequestCtx) {
	h := &ctx.Request.Header
	method, path := ctx.Method(), ctx.Path()
	secret, auth, appID := h.Peek("appSecret"), h.Peek("Authorization"), h.Peek("kgAppId")
	platform, token, playerID := h.Peek("platform"), h.Peek("accessToken"), h.Peek("playerId")

	s.lastMu.Lock()
	for i, b := range [...][]byte{method, path, secret, auth, appID, platform, token, playerID, h.ContentType()} {
		s.last[i] = append(s.last[i][:0], b...)
	}
	s.lastOK = true
	s.lastMu.Unlock()

	if string(path) != ValidationPath {
		s.answerFixed(ctx, fasthttp.StatusNotFound, bodyNotFound)
		return
	}
	if !ctx.IsPost() {
		ctx.Response.Header.Set("Allow", fasthttp.MethodPost)
		s.answerFixed(ctx, fasthttp.StatusMethodNotAllowed, bodyNotAllowed)
		return
	}

	s.calls.Add(1)
	e := s.entryBytes(token)
	if e.calls.Add(1) == 1 {
		s.distinct.Add(1)
	}

	var missing string
	switch {
	case len(secret) == 0:
		missing = "appSecret"
	case len(auth) == 0:
		missing = "Authorization"
	case len(appID) == 0:
		missing = "kgAppId"
	case !validPlatform(platform):
		missing = "platform"
	case len(token) == 0:
		missing = "accessToken"
	}
	if missing != "" {
		s.answerFixed(ctx, fasthttp.StatusBadRequest, bodyMissingHeaders[missing])
		return
	}
	if string(secret) != s.cfg.AppSecret || string(auth) != s.wantAuth || string(appID) != s.cfg.AppID {
		s.answerFixed(ctx, fasthttp.StatusUnauthorized, bodyAppAuthFailed)
		return
	}

	v := s.override.Load()
	if v == nil {
		v = e.verdict.Load()
	}
	if v == nil {
		v = s.def.Load()
	}
	if !s.wait(time.Duration(s.latency.Load()) + v.delay) {
		s.abort(ctx)
		return
	}
	switch v.fault {
	case FaultHang:
		s.hijack(ctx, hang)
		return
	case FaultReset:
		s.hijack(ctx, v.reset)
		return
	case FaultTrickle:
		s.hijack(ctx, func(c, raw net.Conn) { v.trickle(c, s.quit) })
		return
	case FaultClose:
		s.hijack(ctx, func(c, raw net.Conn) {})
		return
	case FaultRaw:
		out := v.raw
		if v.echo {
			out = echoed(out, ctx.Request.Header.Header(), false)
		}
		s.hijack(ctx, func(c, _ net.Conn) {
			first, rest, paused := bytes.Cut(out, []byte(RawPause))
			if _, err := c.Write(first); err != nil {
				return
			}
			if paused {
				if !s.wait(RawPauseFor) {
					return
				}
				if _, err := c.Write(rest); err != nil {
					return
				}
			}
			s.rawWrites.Add(1)
			_ = s.srv.ServeConn(c)
		})
		return
	}
	ctx.SetStatusCode(v.status)
	ctx.Response.Header.SetContentType(v.ct)
	for _, kv := range v.hdr {
		ctx.Response.Header.Set(kv[0], kv[1])
	}
	if v.echo {
		ctx.Response.SetBody(echoed(v.body, ctx.Request.Header.Header(), true))
		return
	}
	ctx.Response.SetBodyRaw(v.body) // v.body is never modified
}

// answerFixed answers a fixed JSON body after the configured latency.
func (s *Server) answerFixed(ctx *fasthttp.RequestCtx, status int, body []byte) {
	if !s.wait(time.Duration(s.latency.Load())) {
		s.abort(ctx)
		return
	}
	ctx.SetStatusCode(status)
	ctx.Response.Header.SetContentType(DefaultContentType)
	ctx.Response.SetBodyRaw(body)
}

// wait sleeps d; false if Close interrupted it.
func (s *Server) wait(d time.Duration) bool {
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	select {
	case <-t.C:
		return true
	case <-s.quit:
		t.Stop()
		return false
	}
}

// abort drops the connection without answering (the server is closing).
func (s *Server) abort(ctx *fasthttp.RequestCtx) {
	s.hijack(ctx, func(c, raw net.Conn) {})
}

// hijack makes fasthttp write nothing and hand the connection to fn once
// the request handler has returned. c is fasthttp's wrapper (it reads
// through the request's buffered reader), raw the underlying connection.
// fasthttp closes the connection when fn returns.
func (s *Server) hijack(ctx *fasthttp.RequestCtx, fn func(c, raw net.Conn)) {
	raw := ctx.Conn()
	ctx.HijackSetNoResponse(true)
	ctx.Hijack(func(c net.Conn) {
		// Registered here rather than in the request handler: fasthttp
		// skips the hijack handler when the connection broke in between,
		// and a registration made there would never end. serveConn may
		// untrack raw before or after this; both orders end untracked.
		s.connsMu.Lock()
		if s.closed {
			s.connsMu.Unlock()
			return
		}
		s.conns[raw] = true
		s.wg.Add(1) // counter > 0: raw's serveConn goroutine or the accept loop still runs
		s.connsMu.Unlock()
		defer s.wg.Done()
		defer func() {
			s.connsMu.Lock()
			delete(s.conns, raw)
			s.connsMu.Unlock()
		}()
		fn(c, raw)
	})
}

// hang reads (and discards) until the client goes away or Close closes
// the connection.
func hang(c, _ net.Conn) {
	_, _ = io.Copy(io.Discard, c)
}

func (p *prepared) reset(c, raw net.Conn) {
	_, _ = c.Write(p.head)
	_, _ = c.Write(p.body[:len(p.body)/2])
	if tc, ok := raw.(*net.TCPConn); ok {
		_ = tc.SetLinger(0) // Close sends RST instead of FIN
	}
	_ = raw.Close()
}

func (p *prepared) trickle(c net.Conn, quit <-chan struct{}) {
	if _, err := c.Write(p.head); err != nil {
		return
	}
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for i := range p.body {
		if i > 0 {
			select {
			case <-t.C:
			case <-quit:
				return
			}
		}
		_ = c.SetWriteDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Write(p.body[i : i+1]); err != nil {
			return
		}
	}
}

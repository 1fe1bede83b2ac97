// Package iamporttest is a fake i'mport (PortOne v1) REST API on
// loopback, for tests and the demo: POST /users/getToken and GET
// /certifications/{imp_uid}, as ../shared/REFERENCE.md §3 and seed 002
// describe them. It counts token requests, revokes tokens on request,
// runs its own clock (so a skewed one can be tested) and fails on
// request.
package iamporttest

import (
	"encoding/json"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Cert is one certification the fake knows, in i'mport's field names.
type Cert struct {
	Name         string `json:"name"`
	Gender       string `json:"gender"`
	Birth        int64  `json:"birth"`
	Birthday     string `json:"birthday"`
	Certified    bool   `json:"certified"`
	CertifiedAt  int64  `json:"certified_at"`
	UniqueKey    string `json:"unique_key"`
	UniqueInSite string `json:"unique_in_site"`
	Phone        string `json:"phone"`
	Carrier      string `json:"carrier"`
	Foreigner    bool   `json:"foreigner"`
}

// Server is the fake. Its methods are safe for concurrent use.
type Server struct {
	ln          net.Listener
	srv         *http.Server
	key, secret string

	tokenCalls atomic.Int64
	certCalls  atomic.Int64

	mu      sync.Mutex
	certs   map[string]Cert
	tokens  map[string]int64 // token -> expired_at (the fake's clock)
	seq     int
	skew    time.Duration // added to the real clock for "now"
	status  int           // forced status of certification calls (0: none)
	delay   time.Duration // before answering getToken
	tokDown bool          // getToken answers 500

	people  map[string]Cert   // by phone digits: who an SMS code request matches
	pending map[string]string // imp_uid -> phone digits, awaiting its code
	sms     atomic.Int64
}

// OTPCode is the code every fake SMS carries.
const OTPCode = "123456"

// SetPerson makes SMS code requests for phone (its digits) match c (the
// request's name must be c.Name).
func (s *Server) SetPerson(phoneDigits string, c Cert) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.people == nil {
		s.people, s.pending = map[string]Cert{}, map[string]string{}
	}
	s.people[phoneDigits] = c
}

// SMSSent counts the codes the fake "sent".
func (s *Server) SMSSent() int64 { return s.sms.Load() }

func (s *Server) authorized(r *http.Request) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	exp, ok := s.tokens[r.Header.Get("Authorization")]
	return ok && time.Now().Add(s.skew).Unix() < exp
}

// otpRequest answers POST /certifications/otp/request (seed 004): the
// person must be known by phone and name, else code -1 with a message.
func (s *Server) otpRequest(w http.ResponseWriter, r *http.Request) {
	if !s.authorized(r) {
		answer(w, 401, -1, "Unauthorized", nil)
		return
	}
	var body struct {
		Name        string `json:"name"`
		Phone       string `json:"phone"`
		Birth       string `json:"birth"`
		GenderDigit string `json:"gender_digit"`
		Carrier     string `json:"carrier"`
		IsMvno      bool   `json:"is_mvno"`
	}
	if json.NewDecoder(r.Body).Decode(&body) != nil || body.Name == "" || body.Phone == "" || body.Birth == "" || body.GenderDigit == "" || body.Carrier == "" {
		answer(w, 400, -1, "필수 파라메터가 누락되었습니다", nil)
		return
	}
	digits := strings.Map(func(c rune) rune {
		if c >= '0' && c <= '9' {
			return c
		}
		return -1
	}, body.Phone)
	s.mu.Lock()
	c, ok := s.people[digits]
	if !ok || c.Name != body.Name {
		s.mu.Unlock()
		// Quoting what it was sent, as an API might.
		answer(w, 200, -1, "본인인증 정보가 일치하지 않습니다: "+body.Name, nil)
		return
	}
	s.seq++
	imp := "imp_9" + strconv.Itoa(100000+s.seq)
	s.pending[imp] = digits
	s.mu.Unlock()
	s.sms.Add(1)
	answer(w, 200, 0, "", map[string]any{"imp_uid": imp})
}

// otpConfirm answers POST /certifications/otp/confirm/{imp_uid}: the
// right code gives the certification; a wrong one HTTP 400 with code -1
// (an assumption: the seed does not say).
func (s *Server) otpConfirm(w http.ResponseWriter, r *http.Request) {
	if !s.authorized(r) {
		answer(w, 401, -1, "Unauthorized", nil)
		return
	}
	var body struct {
		OTP string `json:"otp"`
	}
	json.NewDecoder(r.Body).Decode(&body)
	imp := r.PathValue("imp_uid")
	s.mu.Lock()
	digits, ok := s.pending[imp]
	c := s.people[digits]
	s.mu.Unlock()
	switch {
	case !ok:
		answer(w, 404, -1, "인증결과가 존재하지 않습니다", nil)
	case body.OTP != OTPCode:
		answer(w, 400, -1, "인증번호가 일치하지 않습니다", nil)
	default:
		resp := map[string]any{}
		b, _ := json.Marshal(c)
		json.Unmarshal(b, &resp)
		resp["imp_uid"] = imp
		answer(w, 200, 0, "", resp)
	}
}

// Start starts the fake on a free loopback port, accepting key and secret.
func Start(key, secret string) (*Server, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &Server{ln: ln, key: key, secret: secret, certs: map[string]Cert{}, tokens: map[string]int64{}}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /users/getToken", s.getToken)
	mux.HandleFunc("GET /certifications/{imp_uid}", s.certification)
	mux.HandleFunc("POST /certifications/otp/request", s.otpRequest)
	mux.HandleFunc("POST /certifications/otp/confirm/{imp_uid}", s.otpConfirm)
	s.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go s.srv.Serve(ln)
	return s, nil
}

// URL is the API's base URL.
func (s *Server) URL() string { return "http://" + s.ln.Addr().String() }

// Close stops the fake.
func (s *Server) Close() { s.srv.Close() }

// Set makes imp_uid known with c.
func (s *Server) Set(impUID string, c Cert) { s.mu.Lock(); s.certs[impUID] = c; s.mu.Unlock() }

// TokenCalls and CertCalls count the requests received.
func (s *Server) TokenCalls() int64 { return s.tokenCalls.Load() }
func (s *Server) CertCalls() int64  { return s.certCalls.Load() }

// RevokeTokens makes every token issued so far answer 401.
func (s *Server) RevokeTokens() { s.mu.Lock(); clear(s.tokens); s.mu.Unlock() }

// SetSkew sets the fake's clock to the real one plus d.
func (s *Server) SetSkew(d time.Duration) { s.mu.Lock(); s.skew = d; s.mu.Unlock() }

// SetStatus forces certification answers to status with an i'mport-like
// body (0: answer normally).
func (s *Server) SetStatus(status int) { s.mu.Lock(); s.status = status; s.mu.Unlock() }

// SetTokenDelay delays getToken answers; SetTokenDown makes them 500s.
func (s *Server) SetTokenDelay(d time.Duration) { s.mu.Lock(); s.delay = d; s.mu.Unlock() }
func (s *Server) SetTokenDown(down bool)        { s.mu.Lock(); s.tokDown = down; s.mu.Unlock() }

func answer(w http.ResponseWriter, status, code int, msg string, resp any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	var m any
	if msg != "" {
		m = msg
	}
	json.NewEncoder(w).Encode(map[string]any{"code": code, "message": m, "response": resp})
}

func (s *Server) getToken(w http.ResponseWriter, r *http.Request) {
	s.tokenCalls.Add(1)
	var body struct {
		Key    string `json:"imp_key"`
		Secret string `json:"imp_secret"`
	}
	json.NewDecoder(r.Body).Decode(&body)
	s.mu.Lock()
	delay, down := s.delay, s.tokDown
	s.mu.Unlock()
	time.Sleep(delay)
	if down {
		answer(w, 500, -1, "internal error", nil)
		return
	}
	if body.Key != s.key || body.Secret != s.secret {
		answer(w, 401, -1, "imp_key, imp_secret 파라메터가 누락되었습니다", nil)
		return
	}
	s.mu.Lock()
	now := time.Now().Add(s.skew).Unix()
	s.seq++
	tok := "fake-iamport-token-" + strconv.Itoa(s.seq)
	s.tokens[tok] = now + 1800
	s.mu.Unlock()
	answer(w, 200, 0, "", map[string]any{"access_token": tok, "now": now, "expired_at": now + 1800})
}

func (s *Server) certification(w http.ResponseWriter, r *http.Request) {
	s.certCalls.Add(1)
	authorized := s.authorized(r)
	s.mu.Lock()
	status := s.status
	c, known := s.certs[r.PathValue("imp_uid")]
	s.mu.Unlock()
	switch {
	case !authorized:
		answer(w, 401, -1, "Unauthorized", nil)
	case status != 0:
		answer(w, status, -1, http.StatusText(status), nil)
	case !known || !strings.HasPrefix(r.PathValue("imp_uid"), "imp_"):
		answer(w, 404, -1, "인증결과가 존재하지 않습니다", nil)
	default:
		resp := map[string]any{}
		b, _ := json.Marshal(c)
		json.Unmarshal(b, &resp)
		resp["imp_uid"] = r.PathValue("imp_uid")
		resp["merchant_uid"] = "order-" + r.PathValue("imp_uid")
		resp["pg_provider"] = "danal"
		resp["origin"] = "https://game.example/verify"
		answer(w, 200, 0, "", resp)
	}
}

package iamport

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"

	"playerguard/validator"
)

// TokenPath is i'mport's access token endpoint.
const TokenPath = "/users/getToken"

// refreshMargin is how long before its expiry (by i'mport's clock) a token
// is replaced: i'mport extends a token asked for in its last minute, so a
// token reused up to here never expires mid-call.
const refreshMargin = time.Minute

// tokenSource holds i'mport's access token: one reused until refreshMargin
// before expired_at, judged by the server's now (a skewed local clock
// does not matter: what counts is the time left, measured on the local
// monotonic clock from when the answer arrived), and one refresh at a
// time, shared by every request that needs it.
type tokenSource struct {
	up          *validator.HTTPUpstream
	key, secret string
	now         func() time.Time // time.Now (monotonic), or a test's clock
	refreshes   map[string]prometheus.Counter
	log         *slog.Logger
	// shared, if set, holds the fleet's token: one for every sidecar
	// (i'mport hands one account's servers one token until it expires).
	shared validator.SharedState

	mu      sync.Mutex
	tok     string
	got     time.Time     // when tok arrived (local, monotonic)
	life    time.Duration // expired_at - now (i'mport's clock) - refreshMargin
	pending *refresh
	refused map[string]bool // tokens i'mport answered 401 for
}

type refresh struct {
	done chan struct{}
	tok  string
	err  error
	// budget is the starter's wait on the fleet: the fleet's token is
	// looked for within it, and what is left goes back to the starter.
	budget time.Duration
}

// errTokenRefused: getToken answered, but not with a token.
var errTokenRefused = errors.New("i'mport refused playerguard's API key and secret (getToken)")

// get returns a token valid for a while yet, refreshing it first if
// needed; stale is a token the caller found refused (a 401), which must
// not be returned again.
//
// budget is what remains of the caller's wait on the fleet: a refresh it
// starts looks there for the fleet's token within it (and spends it).
func (s *tokenSource) get(stale string, budget *time.Duration) (string, error) {
	s.mu.Lock()
	if stale != "" {
		// Refused by i'mport: not to be taken from the fleet again (the
		// sidecar that stored it may not have been told yet).
		if s.refused == nil || len(s.refused) > 64 {
			s.refused = map[string]bool{}
		}
		s.refused[stale] = true
	}
	if s.tok != "" && s.tok != stale && s.now().Sub(s.got) < s.life {
		t := s.tok
		s.mu.Unlock()
		return t, nil
	}
	r := s.pending
	started := r == nil
	if r == nil {
		r = &refresh{done: make(chan struct{})}
		if budget != nil {
			r.budget = *budget
		}
		s.pending = r
		go s.refresh(r)
	}
	s.mu.Unlock()
	<-r.done // bounded by the upstream timeout
	if budget != nil && started {
		*budget = r.budget
	}
	return r.tok, r.err
}

func (s *tokenSource) refresh(r *refresh) {
	if tok, life := s.fromFleet(r); tok != "" {
		s.refreshes["shared"].Inc()
		s.mu.Lock()
		s.tok, s.got, s.life = tok, s.now(), life
		s.pending = nil
		s.mu.Unlock()
		r.tok = tok
		close(r.done)
		return
	}
	tok, life, err := s.fetch()
	if err == nil && s.shared != nil {
		// Shared after the waiting requests have it: they wait on
		// i'mport, not on Redis.
		until := s.now().Add(life)
		defer func() { go s.shared.Store(s.sharedName(), encodeToken(tok, until), until) }()
	}
	if err != nil {
		s.refreshes["error"].Inc()
		s.log.Warn("i'mport access token refresh failed", "provider", Name, "error", err.Error())
	} else {
		s.refreshes["ok"].Inc()
	}
	s.mu.Lock()
	if err == nil {
		s.tok, s.got, s.life = tok, s.now(), life
	}
	s.pending = nil
	s.mu.Unlock()
	r.tok, r.err = tok, err
	close(r.done)
}

// sharedName names the fleet's token: one per i'mport account.
func (s *tokenSource) sharedName() string { return "iamport token\x00" + s.key }

// fromFleet is the fleet's token and what remains of its life, if there is
// one that is not the token a caller found refused ("" otherwise).
func (s *tokenSource) fromFleet(r *refresh) (string, time.Duration) {
	if s.shared == nil {
		return "", 0
	}
	b := s.shared.Load(s.sharedName(), &r.budget)
	if len(b) <= 8 {
		return "", 0
	}
	tok := string(b[8:])
	life := time.UnixMilli(int64(binary.BigEndian.Uint64(b))).Sub(s.now())
	s.mu.Lock()
	refused := s.refused[tok]
	s.mu.Unlock()
	if life <= 0 || refused {
		return "", 0
	}
	return tok, life
}

// encodeToken frames a token and the time it is to be replaced.
func encodeToken(tok string, until time.Time) []byte {
	return append(binary.BigEndian.AppendUint64(nil, uint64(until.UnixMilli())), tok...)
}

// fetch asks getToken for a token and its life.
func (s *tokenSource) fetch() (string, time.Duration, error) {
	req := s.up.NewRequest(fasthttp.MethodPost, TokenPath)
	req.Header.SetContentType("application/json")
	b, _ := json.Marshal(map[string]string{"imp_key": s.key, "imp_secret": s.secret})
	req.SetBody(b)
	ex, err := s.up.Do(req, nil)
	if err != nil {
		return "", 0, err
	}
	if ex.Status != fasthttp.StatusOK || ex.Dropped != nil {
		return "", 0, fmt.Errorf("%w: HTTP %d", errTokenRefused, ex.Status)
	}
	var doc struct {
		Code     *int `json:"code"`
		Response *struct {
			AccessToken string `json:"access_token"`
			Now         int64  `json:"now"`
			ExpiredAt   int64  `json:"expired_at"`
		} `json:"response"`
	}
	if err := json.Unmarshal(ex.Body, &doc); err != nil || doc.Code == nil {
		return "", 0, errors.New("i'mport getToken answer is not {code, response}")
	}
	if *doc.Code != 0 || doc.Response == nil || doc.Response.AccessToken == "" {
		return "", 0, fmt.Errorf("%w: code %s", errTokenRefused, strconv.Itoa(*doc.Code))
	}
	left := time.Duration(doc.Response.ExpiredAt-doc.Response.Now) * time.Second
	return doc.Response.AccessToken, left - refreshMargin, nil
}

package iamport

import (
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

	mu      sync.Mutex
	tok     string
	got     time.Time     // when tok arrived (local, monotonic)
	life    time.Duration // expired_at - now (i'mport's clock) - refreshMargin
	pending *refresh
}

type refresh struct {
	done chan struct{}
	tok  string
	err  error
}

// errTokenRefused: getToken answered, but not with a token.
var errTokenRefused = errors.New("i'mport refused playerguard's API key and secret (getToken)")

// get returns a token valid for a while yet, refreshing it first if
// needed; stale is a token the caller found refused (a 401), which must
// not be returned again.
func (s *tokenSource) get(stale string) (string, error) {
	s.mu.Lock()
	if s.tok != "" && s.tok != stale && s.now().Sub(s.got) < s.life {
		t := s.tok
		s.mu.Unlock()
		return t, nil
	}
	r := s.pending
	if r == nil {
		r = &refresh{done: make(chan struct{})}
		s.pending = r
		go s.refresh(r)
	}
	s.mu.Unlock()
	<-r.done // bounded by the upstream timeout
	return r.tok, r.err
}

func (s *tokenSource) refresh(r *refresh) {
	tok, life, err := s.fetch()
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

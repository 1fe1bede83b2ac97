package main

import (
	"bytes"
	"fmt"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"

	"playerguard/validator/kakaogames/kakaogamestest"
	"playerguard/validator/kakaologin"
	"playerguard/validator/kakaologin/kakaologintest"
)

// Paths the bench sends to.
const (
	apiPath    = "/v1/validate"
	dropInPath = kakaogamestest.ValidationPath // playerguard's drop-in, nginx's and the fake's path
	klPath     = kakaologin.Path               // playerguard's kakao-login endpoint
	klInfoPath = kakaologintest.InfoPath       // the Kakao Login fake's (Kakao's) endpoint
)

// mode is the request shape.
type mode int

const (
	// modeV1 is playerguard's own API: POST /v1/validate with a JSON body.
	modeV1 mode = iota
	// modeDropIn is the Kakao endpoint's shape without secrets: POST
	// /service/v5/auth/validation with accessToken, platform, playerId
	// headers (playerguard's drop-in mode, the nginx peer).
	modeDropIn
	// modeDirect is the same with the secrets added: what a game server
	// sends to the upstream itself (the no-sidecar peer).
	modeDirect
	// modeKakaoLogin is playerguard's kakao-login provider: POST
	// /v1/kakao-login/validate with {"accessToken", "playerId"} (no
	// platform: the provider refuses unknown fields).
	modeKakaoLogin
	// modeKakaoLoginDirect is what a game server sends to Kakao Login
	// itself: GET /v1/user/access_token_info with "Authorization: Bearer".
	modeKakaoLoginDirect
	// modeKakaoOIDC is playerguard's kakao-oidc provider: POST
	// /v1/kakao-oidc/validate with {"idToken", "playerId"} (no nonce).
	modeKakaoOIDC
	// modeIamport is playerguard's iamport age gate: POST
	// /v1/iamport/age-gate with {"impUid", "playerId", "minAge"}.
	modeIamport
	// modeIamportDirect is what a game server sends to i'mport itself:
	// GET /certifications/{imp_uid} with "Authorization: <access token>"
	// (hclient.auth, fetched once and reused).
	modeIamportDirect
)

func (m mode) String() string {
	return [...]string{"/v1/validate", "drop-in", "direct", "kakao-login", "direct kakao-login", "kakao-oidc", "iamport", "direct iamport"}[m]
}

// doer sends one validation: an hclient, or a peer that validates in the
// bench's own process (oidcDirect).
type doer interface {
	do(p player, timeout time.Duration, keepBody bool) (reply, time.Duration, error)
	close()
}

// player is one token the bench sends, with the playerId it claims ("" for
// none) and the platform; session, if set, is the sessionId a /v1/validate
// request carries (the sessions scenario's live sessions).
type player struct {
	token, platform, id string
	session             string
}

// hclient is a Go load client for the scenarios that check each answer.
// Safe for concurrent use.
type hclient struct {
	hc   *fasthttp.HostClient
	mode mode
	up   kakaogamestest.Config // secrets for modeDirect
	auth string                // modeIamportDirect's access token
}

func newHClient(addr string, m mode, conns int, up kakaogamestest.Config) *hclient {
	return &hclient{
		hc: &fasthttp.HostClient{
			Addr:                          addr,
			MaxConns:                      conns,
			MaxIdleConnDuration:           10 * time.Second,
			ReadTimeout:                   10 * time.Second,
			WriteTimeout:                  10 * time.Second,
			MaxConnWaitTimeout:            10 * time.Second,
			DisableHeaderNamesNormalizing: true,
			NoDefaultUserAgentHeader:      true,
			MaxIdemponentCallAttempts:     1,
			RetryIfErr:                    func(*fasthttp.Request, int, error) (bool, bool) { return false, false },
		},
		mode: m,
		up:   up,
	}
}

func (c *hclient) close() { c.hc.CloseIdleConnections() }

// reply is what the bench reads of one answer.
type reply struct {
	status   int
	decision string // X-Playerguard-Decision
	reason   string // X-Playerguard-Reason
	source   string // X-Playerguard-Source
	degraded bool   // X-Playerguard-Degraded: true
	failure  string // upstreamFailure of a degraded /v1/validate allow
	cache    string // X-Cache-Status (the nginx peer)
	ctype    string
	body     []byte // only when asked for
}

// do sends one validation and returns the answer and its latency.
func (c *hclient) do(p player, timeout time.Duration, keepBody bool) (reply, time.Duration, error) {
	req := fasthttp.AcquireRequest()
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.Header.SetMethod(fasthttp.MethodPost)
	req.Header.SetHost(c.hc.Addr)
	switch c.mode {
	case modeV1:
		req.SetRequestURI(apiPath)
		req.Header.SetContentType("application/json")
		req.SetBodyRaw(v1Body(p))
	case modeDropIn, modeDirect:
		req.SetRequestURI(dropInPath)
		req.Header.SetContentType(kakaogamestest.DefaultContentType)
		req.Header.Set("accessToken", p.token)
		req.Header.Set("platform", p.platform)
		if p.id != "" {
			req.Header.Set("playerId", p.id)
		}
		if c.mode == modeDirect {
			req.Header.Set("appSecret", c.up.AppSecret)
			req.Header.Set("Authorization", "KakaoAK "+c.up.AdminKey)
			req.Header.Set("kgAppId", c.up.AppID)
		}
	case modeKakaoLogin:
		req.SetRequestURI(klPath)
		req.Header.SetContentType("application/json")
		req.SetBodyRaw(klBody(p))
	case modeKakaoLoginDirect:
		req.Header.SetMethod(fasthttp.MethodGet)
		req.SetRequestURI(klInfoPath)
		req.Header.Set("Authorization", "Bearer "+p.token)
	case modeKakaoOIDC:
		req.SetRequestURI(oidcPath)
		req.Header.SetContentType("application/json")
		req.SetBodyRaw(oidcBody(p))
	case modeIamport:
		req.SetRequestURI(iaPath)
		req.Header.SetContentType("application/json")
		req.SetBodyRaw(iaBody(p))
	case modeIamportDirect:
		req.Header.SetMethod(fasthttp.MethodGet)
		req.SetRequestURI(iaCertPath + p.token)
		req.Header.Set("Authorization", c.auth)
	}
	start := time.Now()
	err := c.hc.DoTimeout(req, resp, timeout)
	lat := time.Since(start)
	if err != nil {
		return reply{}, lat, err
	}
	h := &resp.Header
	r := reply{
		status:   resp.StatusCode(),
		decision: string(h.Peek("X-Playerguard-Decision")),
		reason:   string(h.Peek("X-Playerguard-Reason")),
		source:   string(h.Peek("X-Playerguard-Source")),
		degraded: string(h.Peek("X-Playerguard-Degraded")) == "true",
		cache:    string(h.Peek("X-Cache-Status")),
		ctype:    string(h.ContentType()),
	}
	if r.degraded {
		r.failure = jsonStringField(resp.Body(), "upstreamFailure")
	}
	if keepBody {
		r.body = append([]byte(nil), resp.Body()...)
	}
	return r, lat, nil
}

// v1Body is the /v1/validate JSON body for p. Tokens and ids the bench
// makes need no escaping.
func v1Body(p player) []byte {
	b := make([]byte, 0, 64+len(p.token))
	b = append(b, `{"accessToken":"`...)
	b = append(b, p.token...)
	b = append(b, `","platform":"`...)
	b = append(b, p.platform...)
	b = append(b, '"')
	if p.id != "" {
		b = append(b, `,"playerId":"`...)
		b = append(b, p.id...)
		b = append(b, '"')
	}
	if p.session != "" {
		b = append(b, `,"sessionId":"`...)
		b = append(b, p.session...)
		b = append(b, '"')
	}
	return append(b, '}')
}

// klBody is the /v1/kakao-login/validate JSON body for p: the token and,
// if p claims one, the Kakao user id (p.platform is not sent).
func klBody(p player) []byte {
	b := make([]byte, 0, 48+len(p.token))
	b = append(b, `{"accessToken":"`...)
	b = append(b, p.token...)
	b = append(b, '"')
	if p.id != "" {
		b = append(b, `,"playerId":"`...)
		b = append(b, p.id...)
		b = append(b, '"')
	}
	return append(b, '}')
}

// jsonStringField finds "name":"value" in a flat JSON body; "" if absent.
func jsonStringField(body []byte, name string) string {
	key := []byte(`"` + name + `":"`)
	i := bytes.Index(body, key)
	if i < 0 {
		return ""
	}
	rest := body[i+len(key):]
	j := bytes.IndexByte(rest, '"')
	if j < 0 {
		return ""
	}
	return string(rest[:j])
}

// makeToken is the deterministic access token number i of a scenario:
// 64 characters, like a real token's length in the vendor's examples.
func makeToken(scenario string, i int) string {
	s := fmt.Sprintf("bench-%s-%010d-", scenario, i)
	const pad = "QmVuY2hUb2tlbkZvclBsYXllcmd1YXJkTG9hZFRlc3RzAAAAAAAAAAAAAAAAAAAAAAAA"
	return s + pad[:64-len(s)]
}

// makePlayerID is the 15-digit playerId of player i.
func makePlayerID(i int) string { return fmt.Sprintf("1%014d", i) }

// platforms is cycled through so every platform is exercised.
var platforms = [...]string{"pc", "mobile", "launcher", "web"}

// loop runs workers goroutines, each calling fn in sequence, until dur has
// passed or (if n > 0) n calls were started in all. It returns the number
// of calls made. Bounded in time and count: it always stops by itself
// (each fn must bound its own time too).
func loop(workers int, dur time.Duration, n int64, fn func(worker int, i int64)) int64 {
	var next atomic.Int64
	deadline := time.Now().Add(dur)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(deadline) {
				i := next.Add(1) - 1
				if n > 0 && i >= n {
					return
				}
				fn(w, i)
			}
		}()
	}
	wg.Wait()
	if made := next.Load(); n <= 0 || made < n {
		return made
	}
	return n
}

// recorder collects latencies from many goroutines, one slice per worker.
type recorder struct {
	per [][]time.Duration
}

func newRecorder(workers int) *recorder {
	return &recorder{per: make([][]time.Duration, workers)}
}

func (r *recorder) add(worker int, d time.Duration) {
	r.per[worker] = append(r.per[worker], d)
}

func (r *recorder) all() []time.Duration {
	var out []time.Duration
	for _, p := range r.per {
		out = append(out, p...)
	}
	return out
}

// dist is a latency distribution in microseconds.
type dist struct {
	N                  int
	P50, P90, P99, Max float64
}

func distOf(lat []time.Duration) dist {
	if len(lat) == 0 {
		return dist{}
	}
	s := slices.Clone(lat)
	slices.Sort(s)
	us := func(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }
	return dist{
		N:   len(s),
		P50: us(quantile(s, 0.50)),
		P90: us(quantile(s, 0.90)),
		P99: us(quantile(s, 0.99)),
		Max: us(s[len(s)-1]),
	}
}

// quantile is the nearest-rank quantile of sorted s.
func quantile(s []time.Duration, q float64) time.Duration {
	i := int(math.Ceil(q*float64(len(s)))) - 1
	return s[max(0, min(i, len(s)-1))]
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

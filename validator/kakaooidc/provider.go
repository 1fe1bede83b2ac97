// Package kakaooidc is the Kakao OIDC provider: Kakao Login's OpenID
// Connect ID tokens, verified locally (no call to Kakao, no quota) against
// Kakao's published RS256 keys, which it caches and refreshes on a
// schedule and, for a key id it does not hold, at most once per interval
// (see keySet). Kakao asks that the keys be cached and may block a
// service that fetches them too often.
//
// Every token that is not a cache hit is verified in full: a compact JWS
// of three parts whose header (a strict JSON object) says alg RS256 (any
// other, "none" and HS256 included, is refused before a key is looked
// at) and names a key of the set; the signature (golang-jwt's RS256);
// then the claims, by Judge: iss, aud among the configured audiences,
// exp required and not passed and iat not in the future (with the
// leeway), sub present, the nonce when the request sends one, auth_time
// when a maximum age is set, and the claimed player.
//
// The header and the payload are read with validator.JSONReader, not
// golang-jwt's parser: encoding/json keeps the last of two members of one
// name and matches names regardless of case, and a token whose claims
// read two ways is no token (invalid_token).
package kakaooidc

import (
	"crypto/rsa"
	"encoding/json"
	"errors"
	"log/slog"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/prometheus/client_golang/prometheus"

	"playerguard/metrics"
	"playerguard/validator"
)

// The provider's name, endpoint and defaults.
const (
	Name = "kakao-oidc"
	// Path is playerguard's endpoint for Kakao ID tokens.
	Path = "/v1/kakao-oidc/validate"
	// DefaultIssuer is the iss of Kakao's ID tokens.
	DefaultIssuer = "https://kauth.kakao.com"
	// DefaultJWKSURL is where Kakao publishes its keys.
	DefaultJWKSURL = "https://kauth.kakao.com/.well-known/jwks.json"
	// DefaultLeeway, DefaultRefresh and DefaultMinInterval are the
	// defaults of Config's fields.
	DefaultLeeway      = 30 * time.Second
	DefaultRefresh     = time.Hour
	DefaultMinInterval = 30 * time.Second
	// MaxLeeway is the largest leeway accepted.
	MaxLeeway = 5 * time.Minute
)

// Limits on a request.
const (
	MaxTokenLen = 8 << 10 // bytes of idToken
	MaxNonceLen = 256
)

// Config configures the provider. Zero values are documented per field;
// New rejects impossible ones.
type Config struct {
	// Audiences are the app keys tokens may be issued to (aud): the REST
	// API key, the native app key, the JavaScript key. Required.
	Audiences []string
	// Issuer is the iss tokens must have. Empty means DefaultIssuer.
	Issuer string
	// JWKSURL is the key set's URL. Empty means DefaultJWKSURL.
	JWKSURL string
	// Leeway is the clock skew allowed on exp, iat and auth_time. Zero
	// means DefaultLeeway; negative none.
	Leeway time.Duration
	// RequireNonce refuses (400) a request without a nonce.
	RequireNonce bool
	// MaxAuthAge, if positive, kicks tokens whose auth_time is older.
	MaxAuthAge time.Duration
	// Refresh is how often the key set is fetched again; MinInterval the
	// least time between fetches for tokens naming unknown keys. Zero
	// means DefaultRefresh and DefaultMinInterval.
	Refresh, MinInterval time.Duration
	// Timeout bounds one key fetch, and so every wait on one. Zero means
	// 2s.
	Timeout time.Duration
	// MaxBody caps the key set's body. Zero means 64 KiB.
	MaxBody int
	// Logger receives the key set's lines. Nil means discard.
	Logger *slog.Logger
	// Metrics is where the key set's series go (the validator's). Nil
	// means a registry of its own.
	Metrics *metrics.Metrics
	// Now is the clock. Nil means time.Now.
	Now func() time.Time

	// tick is how often the schedule is looked at: 0 means a second; a
	// negative one, never (tests drive it with keySet.poll).
	tick time.Duration
}

// Provider is the Kakao OIDC provider. New starts fetching its keys in the
// background; Close stops it.
type Provider struct {
	cfg   Config
	rules Rules
	keys  *keySet
}

// ParseAudiences splits a comma-separated list of app keys, dropping
// empty items; an error for a key with spaces or control characters.
func ParseAudiences(s string) ([]string, error) {
	var out []string
	for a := range strings.SplitSeq(s, ",") {
		a = strings.TrimSpace(a)
		if a == "" {
			continue
		}
		for _, c := range []byte(a) {
			if c <= ' ' || c == 0x7f {
				return nil, errors.New("an app key holds a space or a control character")
			}
		}
		out = append(out, a)
	}
	return out, nil
}

// New returns the provider and starts loading its key set.
func New(cfg Config) (*Provider, error) {
	if len(cfg.Audiences) == 0 {
		return nil, errors.New("kakao oidc audiences are required (the app keys tokens may be issued to)")
	}
	for _, a := range cfg.Audiences {
		if a == "" {
			return nil, errors.New("kakao oidc audiences: an empty app key")
		}
	}
	if cfg.Issuer == "" {
		cfg.Issuer = DefaultIssuer
	}
	if cfg.JWKSURL == "" {
		cfg.JWKSURL = DefaultJWKSURL
	}
	switch {
	case cfg.Leeway == 0:
		cfg.Leeway = DefaultLeeway
	case cfg.Leeway < 0:
		cfg.Leeway = 0
	case cfg.Leeway > MaxLeeway:
		return nil, errors.New("kakao oidc leeway must be at most " + MaxLeeway.String())
	}
	if cfg.Refresh == 0 {
		cfg.Refresh = DefaultRefresh
	}
	if cfg.MinInterval == 0 {
		cfg.MinInterval = DefaultMinInterval
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 2 * time.Second
	}
	if cfg.MaxBody == 0 {
		cfg.MaxBody = 64 << 10
	}
	switch {
	case cfg.Refresh < 0 || cfg.MinInterval < 0 || cfg.Timeout < 0 || cfg.MaxBody < 0 || cfg.MaxAuthAge < 0:
		return nil, errors.New("kakao oidc durations and limits must not be negative")
	case cfg.Refresh < cfg.MinInterval:
		return nil, errors.New("kakao oidc key set refresh (" + cfg.Refresh.String() + ") must not be shorter than its minimum interval (" + cfg.MinInterval.String() + ")")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Metrics == nil {
		cfg.Metrics = metrics.New(prometheus.NewRegistry(), "")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	base, path, err := splitURL(cfg.JWKSURL)
	if err != nil {
		return nil, errors.New("kakao oidc jwks url: " + err.Error())
	}
	up, err := validator.NewHTTPUpstream(validator.HTTPUpstreamConfig{URL: base, Timeout: cfg.Timeout, MaxConns: 4, MaxBody: cfg.MaxBody})
	if err != nil {
		return nil, errors.New("kakao oidc jwks " + err.Error())
	}
	ks := &keySet{
		up: up, path: path, every: cfg.Refresh, minGap: cfg.MinInterval,
		now: cfg.Now, log: cfg.Logger, start: cfg.Now(),
		stop: make(chan struct{}), done: make(chan struct{}),
	}
	ks.m = cfg.Metrics.KeySet(Name, metrics.KeySetGauges{Keys: ks.held, Age: ks.age, Refresh: cfg.Refresh.Seconds()})
	ks.poll() // starts the first fetch; New does not wait for it
	switch {
	case cfg.tick == 0:
		go ks.loop(time.Second)
	case cfg.tick > 0:
		go ks.loop(cfg.tick)
	default:
		close(ks.done)
	}
	return &Provider{
		cfg:   cfg,
		rules: Rules{Issuer: cfg.Issuer, Audiences: cfg.Audiences, Leeway: cfg.Leeway, MaxAuthAge: cfg.MaxAuthAge},
		keys:  ks,
	}, nil
}

// CheckJWKSURL reports a problem with a key set URL, as New would.
func CheckJWKSURL(s string) error {
	_, _, err := splitURL(s)
	return err
}

// splitURL splits a key set URL (an upstream URL: http:// or https://,
// a host, no user info, query or fragment) into the base HTTPUpstream
// takes and the path requested under it.
func splitURL(s string) (base, path string, err error) {
	if err := validator.CheckUpstreamURL(s); err != nil {
		return "", "", err
	}
	u, _ := url.Parse(s) // checked
	path = u.EscapedPath()
	if path == "" {
		path = "/"
	}
	u.Path, u.RawPath = "", ""
	return u.String(), path, nil
}

// fields are the raw values of a Result: the user.
var fields = &validator.Fields{Names: [4]string{"user"}}

// Spec implements validator.Provider.
func (p *Provider) Spec() validator.Spec {
	return validator.Spec{
		Name: Name, Path: Path, StrictFields: true, IDToken: true,
		// Verification is CPU: as many at once as there are requests (a
		// wait on a key fetch is bounded by the fetch's timeout).
		Timeout: p.cfg.Timeout, MaxCalls: 1 << 16,
		Fields: fields,
		Kicks: []validator.Reason{validator.ReasonInvalidToken, ReasonTokenExpired, ReasonWrongAudience, ReasonWrongIssuer,
			ReasonNonceMismatch, ReasonAuthTooOld, validator.ReasonPlayerMismatch},
		Unavailable: []validator.Reason{ReasonKeysUnavailable, ReasonUnknownKey},
	}
}

// Ready implements validator.Readiness: ready once a key set is held.
func (p *Provider) Ready() (bool, string) {
	if p.keys.cur.Load() == nil {
		return false, "key set not fetched yet"
	}
	return true, ""
}

// Close implements validator.Provider.
func (p *Provider) Close() {
	p.keys.close()
	p.keys.up.Close()
}

// The caller mistakes of Check.
var (
	errMissingToken  = &validator.RequestError{Msg: "missing idToken"}
	errTokenTooLong  = &validator.RequestError{Msg: "idToken too long (limit " + strconv.Itoa(MaxTokenLen) + " bytes)"}
	errTokenChars    = &validator.RequestError{Msg: "idToken contains invalid characters (control, space or non-ASCII)"}
	errTokenForm     = &validator.RequestError{Msg: "idToken is not a compact JWS: three base64url parts separated by dots"}
	errNonceTooLong  = &validator.RequestError{Msg: "nonce too long (limit " + strconv.Itoa(MaxNonceLen) + " bytes)"}
	errNonceChars    = &validator.RequestError{Msg: "nonce contains invalid characters (control, space or non-ASCII)"}
	errNonceRequired = &validator.RequestError{Msg: "missing nonce: this playerguard requires one (-kakao-oidc-require-nonce)"}
)

// Check implements validator.Provider: an idToken of the compact form, an
// optional nonce, an optional playerId (compared with sub).
func (p *Provider) Check(r *validator.Request) error { return p.check(r, p.cfg.RequireNonce) }

// CheckPurge implements validator.PurgeChecker: Check, but a purge needs
// no nonce (it drops the token's entries under every nonce).
func (p *Provider) CheckPurge(r *validator.Request) error { return p.check(r, false) }

func (p *Provider) check(r *validator.Request, needNonce bool) error {
	t := r.Token
	switch {
	case len(t) == 0:
		return errMissingToken
	case len(t) > MaxTokenLen:
		return errTokenTooLong
	}
	// The form check reads every byte once (and a form-valid token is
	// visible ASCII): the characters are looked at apart only to say
	// what is wrong.
	h, pl, sig, ok := splitToken(t)
	if !ok || !isBase64URL(h) || !isBase64URL(pl) || !isBase64URL(sig) {
		if !validator.VisibleASCII(t) {
			return errTokenChars
		}
		return errTokenForm
	}
	switch n := r.Nonce; {
	case len(n) > MaxNonceLen:
		return errNonceTooLong
	case !validator.VisibleASCII(n):
		return errNonceChars
	case len(n) == 0 && needNonce:
		return errNonceRequired
	}
	return r.CheckPlayerID()
}

// Call implements validator.Provider: the verification, with no upstream
// call unless the token names a key the set must be fetched for.
func (p *Provider) Call(r *validator.Request) *validator.Result {
	claimed, nonce := string(r.PlayerID), string(r.Nonce)
	kick := func(reason validator.Reason) *validator.Result {
		return &validator.Result{Verdict: validator.Kick, Reason: reason, PlayerID: claimed, Fields: fields}
	}
	hPart, pPart, sPart, _ := splitToken(r.Token) // Check saw three
	hb, ok1 := decodePart(hPart)
	pb, ok2 := decodePart(pPart)
	sig, ok3 := decodePart(sPart)
	if !ok1 || !ok2 || !ok3 {
		return kick(validator.ReasonInvalidToken)
	}
	h, ok := readHeader(hb)
	if !ok || h.alg != jwt.SigningMethodRS256.Alg() || h.kid == "" {
		// Not an RS256 token: no key is looked at.
		return kick(validator.ReasonInvalidToken)
	}
	c, ok := readClaims(pb)
	if !ok {
		return kick(validator.ReasonInvalidToken)
	}
	pk, found := p.keys.key(h.kid)
	switch found {
	case keyUnknown:
		return kick(validator.ReasonInvalidToken)
	case keysUnavailable:
		// With a set held, tokens signed with its keys verify: an outage
		// policy admitting the rest would admit only forgeries (and
		// tokens of a key published meanwhile). It answers only while no
		// set was ever fetched.
		held := p.keys.cur.Load() != nil
		return &validator.Result{Verdict: validator.Unavailable, Reason: ReasonKeysUnavailable, NoPolicy: held, PlayerID: claimed, Fields: fields}
	case keyLimited:
		return &validator.Result{Verdict: validator.Unavailable, Reason: ReasonUnknownKey, NoPolicy: true, PlayerID: claimed, Fields: fields}
	}
	signed := r.Token[:len(hPart)+1+len(pPart)]
	if err := verifyRS256(signed, sig, pk); err != nil {
		return kick(validator.ReasonInvalidToken)
	}
	now := p.cfg.Now()
	reason := Judge(&c, &p.rules, now, nonce, claimed)
	res := kick(reason)
	if reason != validator.ReasonPlayerMismatch && reason != ReasonNonceMismatch {
		// Kakao signed it: a verdict about its user, whose other cached
		// allows a kick purges. (A mismatch is about the request.)
		res.Named = c.Subject
	}
	if res.PlayerID == "" {
		res.PlayerID = c.Subject
	}
	if reason != validator.ReasonOK {
		return res
	}
	res.Verdict = validator.Allow
	res.Body = userJSON(&c)
	res.ContentType = "application/json"
	res.SetRaw(0, 0, len(res.Body))
	// Cached no longer than the token lives (the cache TTL may be
	// shorter), nor past its authentication's maximum age; one within its
	// leeway is answered, not cached.
	until := c.Expiry
	if p.rules.MaxAuthAge > 0 {
		until = min(until, c.AuthTime+int64(p.rules.MaxAuthAge/time.Second))
	}
	res.MaxAge = -1
	if left := until - now.Unix(); left >= 1 {
		res.MaxAge = int32(min(left, 1<<31-1))
	}
	return res
}

// verifyRS256 checks sig over signed with golang-jwt's RS256 method
// (PKCS #1 v1.5 over SHA-256, by crypto/rsa).
func verifyRS256(signed, sig []byte, pk *rsa.PublicKey) error {
	return jwt.SigningMethodRS256.Verify(string(signed), sig, pk)
}

// userJSON is an allow's user object: the id (a string: 64 bits do not
// fit a JavaScript number), exp, and the claims the token carries of
// auth_time, nickname, picture and email.
func userJSON(c *Claims) []byte {
	u := struct {
		ID       string `json:"id"`
		Exp      int64  `json:"exp"`
		AuthTime *int64 `json:"authTime,omitempty"`
		Nickname string `json:"nickname,omitempty"`
		Picture  string `json:"picture,omitempty"`
		Email    string `json:"email,omitempty"`
	}{ID: c.Subject, Exp: c.Expiry, Nickname: c.Nickname, Picture: c.Picture, Email: c.Email}
	if c.HasAuthTime {
		u.AuthTime = &c.AuthTime
	}
	b, err := json.Marshal(u)
	if err != nil {
		panic("kakaooidc: marshal of the user object: " + err.Error()) // strings and ints always marshal
	}
	return b
}

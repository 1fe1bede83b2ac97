package kakaologin

import (
	"errors"
	"log/slog"
	"strconv"
	"time"

	"github.com/valyala/fasthttp"

	"playerguard/validator"
)

// The provider's name, endpoint and upstream.
const (
	Name = "kakao-login"
	// Path is playerguard's endpoint for Kakao Login access tokens.
	Path = "/v1/kakao-login/validate"
	// DefaultAPI is Kakao's REST API host.
	DefaultAPI = "https://kapi.kakao.com"
	// InfoPath is the upstream endpoint asked about each token.
	InfoPath = "/v1/user/access_token_info"
)

// ExpiryMargin is how long before a token's own expiry its allow leaves
// the cache: a token that expires while its player connects is no allow.
const ExpiryMargin = 30 * time.Second

// maxUserIDLen is the longest Kakao user id: a 64-bit integer's digits.
const maxUserIDLen = 19

// Config configures the Kakao Login provider. Zero values are documented
// per field; New rejects impossible ones.
type Config struct {
	// AppID is the app's numeric id: tokens issued to any other app are
	// kicked (wrong_app). Required.
	AppID string
	// API is Kakao's REST API base URL. Empty means DefaultAPI.
	API string
	// CAFile, if set, is a PEM file of CAs trusted for API instead of the
	// system pool. TLS is always verified.
	CAFile string
	// Timeout bounds one call. Zero means 2s.
	Timeout time.Duration
	// MaxConns caps connections to API, MaxCalls concurrent calls.
	// Zero means 256 and MaxConns.
	MaxConns, MaxCalls int
	// MaxBody caps a response body. Zero means 64 KiB.
	MaxBody int
	// Logger receives the upstream failure lines. Nil means discard.
	Logger *slog.Logger
}

// Provider is the Kakao Login provider: validator.Provider for access
// tokens, decided by Decide.
type Provider struct {
	up  *validator.HTTPUpstream
	cfg Config
	log *slog.Logger
}

// CheckAppID reports whether s is a Kakao app id: a positive decimal
// integer.
func CheckAppID(s string) error {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 || strconv.FormatInt(n, 10) != s {
		return errors.New("must be the app's numeric id, a positive integer")
	}
	return nil
}

// New returns the Kakao Login provider.
func New(cfg Config) (*Provider, error) {
	if cfg.AppID == "" {
		return nil, errors.New("kakao login app id is required")
	}
	if err := CheckAppID(cfg.AppID); err != nil {
		return nil, errors.New("kakao login app id: " + err.Error())
	}
	if cfg.Timeout < 0 || cfg.MaxConns < 0 || cfg.MaxCalls < 0 || cfg.MaxBody < 0 {
		return nil, errors.New("kakao login limits must not be negative")
	}
	if cfg.API == "" {
		cfg.API = DefaultAPI
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 2 * time.Second
	}
	if cfg.MaxConns == 0 {
		cfg.MaxConns = 256
	}
	if cfg.MaxCalls == 0 {
		cfg.MaxCalls = cfg.MaxConns
	}
	if cfg.MaxBody == 0 {
		cfg.MaxBody = 64 << 10
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	up, err := validator.NewHTTPUpstream(validator.HTTPUpstreamConfig{
		URL: cfg.API, CAFile: cfg.CAFile, Timeout: cfg.Timeout, MaxConns: cfg.MaxConns, MaxBody: cfg.MaxBody,
	})
	if err != nil {
		return nil, errors.New("kakao login " + err.Error())
	}
	return &Provider{up: up, cfg: cfg, log: cfg.Logger}, nil
}

// fields are the raw values of a Kakao Login Result: the user.
var fields = &validator.Fields{Names: [4]string{"user"}}

// Spec implements validator.Provider.
func (p *Provider) Spec() validator.Spec {
	return validator.Spec{
		Name: Name, Path: Path, StrictFields: true,
		Timeout: p.cfg.Timeout, MaxCalls: p.cfg.MaxCalls,
		Fields: fields,
		Kicks: []validator.Reason{validator.ReasonInvalidToken, ReasonUnderage, ReasonAccountBlocked, ReasonNotLinked,
			ReasonAccountDormant, ReasonWrongApp, validator.ReasonPlayerMismatch},
		Unavailable: []validator.Reason{validator.ReasonUpstreamUnavailable, validator.ReasonUpstreamMaintenance, ReasonRejectedConfig},
	}
}

var errPlayerIDDigits = &validator.RequestError{Msg: "playerId must be the Kakao user id as a decimal string (digits only, at most " + strconv.Itoa(maxUserIDLen) + ")"}

// Check implements validator.Provider: an access token, and an optional
// playerId that is a Kakao user id (decimal digits).
func (p *Provider) Check(r *validator.Request) error {
	if err := r.CheckToken(); err != nil {
		return err
	}
	id := r.PlayerID
	if len(id) == 0 {
		return nil
	}
	if len(id) > maxUserIDLen || id[0] == '0' {
		return errPlayerIDDigits
	}
	for _, c := range id {
		if c < '0' || c > '9' {
			return errPlayerIDDigits
		}
	}
	return nil
}

// Close implements validator.Provider.
func (p *Provider) Close() { p.up.Close() }

// Call implements validator.Provider: one GET /v1/user/access_token_info.
func (p *Provider) Call(r *validator.Request) *validator.Result {
	claimed := string(r.PlayerID)
	req := p.up.NewRequest(fasthttp.MethodGet, InfoPath)
	req.Header.Set("Authorization", "Bearer "+string(r.Token))
	ex, err := p.up.Do(req, r.Token)
	if err != nil {
		res := &validator.Result{Verdict: validator.Unavailable, Reason: validator.ReasonUpstreamUnavailable, Failure: true, Err: err, PlayerID: claimed, Fields: fields}
		p.logFailure(res)
		return res
	}
	d := Decide(ex.Status, ex.Body, p.cfg.AppID, claimed)
	res := &validator.Result{
		Verdict: d.Verdict, Reason: d.Reason, Failure: d.Failure,
		Status: ex.Status, ContentType: "application/json",
		Code: d.Code, HasCode: d.HasCode,
		PlayerID: claimed, Err: ex.Dropped, Fields: fields,
	}
	if d.User.ID != "" {
		// The answer's user object: the id as a string (64 bits do not
		// fit a JavaScript number), the app and the seconds left.
		b := make([]byte, 0, 64)
		b = append(b, `{"id":"`...)
		b = append(b, d.User.ID...)
		b = append(b, `","appId":`...)
		b = append(b, d.User.AppID...)
		b = append(b, `,"expiresIn":`...)
		b = strconv.AppendInt(b, d.User.ExpiresIn, 10)
		b = append(b, '}')
		res.Body = b
		res.SetRaw(0, 0, len(b))
		if res.PlayerID == "" {
			res.PlayerID = d.User.ID
		}
	}
	switch {
	case d.Verdict == validator.Allow:
		// A later kick of this user purges this allow.
		res.Named = d.User.ID
		// In seconds, not a Duration: a huge expires_in must not wrap.
		left := d.User.ExpiresIn - int64(ExpiryMargin/time.Second)
		res.MaxAge = -1 // about to expire: answer, do not cache
		if left >= 1 {
			res.MaxAge = int32(min(left, 1<<31-1))
		}
	case d.Verdict == validator.Unavailable:
		p.logFailure(res)
	}
	return res
}

func (p *Provider) logFailure(res *validator.Result) {
	attrs := []any{"provider", Name, "player", res.PlayerID, "reason", res.Reason.String(), "upstream_status", res.Status}
	if res.HasCode {
		attrs = append(attrs, "upstream_code", res.Code)
	}
	if res.Err != nil {
		attrs = append(attrs, "error", res.Err.Error())
	}
	if res.Reason == ReasonRejectedConfig {
		p.log.Error("Kakao refused playerguard's app (code "+strconv.Itoa(res.Code)+"): check -kakao-login-app-id and the app's settings on Kakao Developers; no player is kicked for it", attrs...)
		return
	}
	p.log.Warn("upstream failure", attrs...)
}

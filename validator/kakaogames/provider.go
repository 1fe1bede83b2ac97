// Package kakaogames is the Kakao Games provider: it validates a player's
// access token with the Kakao Games OpenAPI (POST
// /service/v5/auth/validation, appSecret and "KakaoAK <admin key>"),
// decides from its answer (Decide, the decision table, on a strict reading
// of the body), and serves playerguard's /v1/validate and the drop-in
// stand-in for the Kakao endpoint itself. Its fake is kakaogamestest.
package kakaogames

import (
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/valyala/fasthttp"

	"playerguard/validator"
)

// Name is the provider's name.
const Name = "kakao-games"

// Path is playerguard's own validation endpoint for Kakao Games tokens.
const Path = "/v1/validate"

// ValidationPath is the Kakao Games OpenAPI player validation endpoint,
// which playerguard also serves as a drop-in.
const ValidationPath = "/service/v5/auth/validation"

// Config configures the Kakao Games provider. Zero values are
// documented per field; NewKakaoGames rejects impossible ones.
type Config struct {
	// Upstream is the Kakao Games OpenAPI base URL, http:// or https://,
	// e.g. https://kr-openapi-zinny3.game.kakao.com:10443. Required.
	Upstream string
	// AppID is the kgAppId. Required.
	AppID string
	// AppSecret and AdminKey are sent upstream as appSecret and
	// "Authorization: KakaoAK <AdminKey>". Never logged.
	AppSecret, AdminKey string
	// UpstreamCAFile, if set, is a PEM file of CAs trusted for the upstream
	// instead of the system pool. TLS is always verified.
	UpstreamCAFile string
	// UpstreamTimeout bounds one upstream call. Zero means 2s.
	UpstreamTimeout time.Duration
	// MaxUpstreamConns caps connections to the upstream. Zero means 256.
	MaxUpstreamConns int
	// MaxUpstreamBody caps an upstream response body. Zero means 64 KiB.
	MaxUpstreamBody int
	// MaxUpstreamCalls caps concurrent upstream calls (distinct keys; the
	// same key is coalesced). A call beyond it waits up to UpstreamTimeout
	// for a slot, then answers unavailable. Zero means MaxUpstreamConns.
	MaxUpstreamCalls int
	// AllowStatuses lists the player.status values in good standing. Nil
	// means just "normal".
	AllowStatuses []string
	// Logger receives the upstream failure lines. Nil means discard.
	Logger *slog.Logger
}

// Provider is the Kakao Games provider: POST /service/v5/auth/validation,
// decided by Decide. It serves Path and the drop-in ValidationPath.
type Provider struct {
	up      *validator.HTTPUpstream
	cfg     Config
	authz   string // "KakaoAK " + admin key
	log     *slog.Logger
	timeout time.Duration
}

// New returns the Kakao Games provider.
func New(cfg Config) (*Provider, error) {
	if cfg.Upstream == "" {
		return nil, errors.New("upstream URL is required")
	}
	if cfg.AppID == "" {
		return nil, errors.New("app id is required")
	}
	for _, c := range []struct{ name, v string }{{"app id", cfg.AppID}, {"app secret", cfg.AppSecret}, {"admin key", cfg.AdminKey}} {
		if err := validator.CheckCredential(c.v); err != nil {
			return nil, fmt.Errorf("%s: %w", c.name, err)
		}
	}
	if cfg.UpstreamTimeout < 0 {
		return nil, errors.New("durations must not be negative")
	}
	if cfg.MaxUpstreamConns < 0 || cfg.MaxUpstreamBody < 0 || cfg.MaxUpstreamCalls < 0 {
		return nil, errors.New("limits must not be negative")
	}
	if cfg.UpstreamTimeout == 0 {
		cfg.UpstreamTimeout = 2 * time.Second
	}
	if cfg.MaxUpstreamConns == 0 {
		cfg.MaxUpstreamConns = 256
	}
	if cfg.MaxUpstreamBody == 0 {
		cfg.MaxUpstreamBody = 64 << 10
	}
	if cfg.MaxUpstreamCalls == 0 {
		cfg.MaxUpstreamCalls = cfg.MaxUpstreamConns
	}
	if cfg.AllowStatuses == nil {
		cfg.AllowStatuses = []string{"normal"}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	up, err := validator.NewHTTPUpstream(validator.HTTPUpstreamConfig{
		URL: cfg.Upstream, CAFile: cfg.UpstreamCAFile, Timeout: cfg.UpstreamTimeout,
		MaxConns: cfg.MaxUpstreamConns, MaxBody: cfg.MaxUpstreamBody,
		Secrets: []string{cfg.AppSecret, cfg.AdminKey},
	})
	if err != nil {
		return nil, err
	}
	return &Provider{up: up, cfg: cfg, authz: "KakaoAK " + cfg.AdminKey, log: cfg.Logger, timeout: cfg.UpstreamTimeout}, nil
}

// Spec implements Provider.
func (kg *Provider) Spec() validator.Spec {
	return validator.Spec{
		Name: Name, Path: Path, Platform: true,
		Timeout: kg.cfg.UpstreamTimeout, MaxCalls: kg.cfg.MaxUpstreamCalls,
		Fields: fields,
		Kicks: []validator.Reason{validator.ReasonInvalidToken, ReasonNotAcceptable, ReasonUnregistering, ReasonLockout,
			ReasonSanction, ReasonAbnormalState, validator.ReasonPlayerMismatch, ReasonPlayerStatus},
		Unavailable: []validator.Reason{validator.ReasonUpstreamUnavailable, validator.ReasonUpstreamMaintenance},
	}
}

// Check implements validator.Provider: a token, a platform of web,
// launcher, mobile or pc, and an optional playerId.
func (kg *Provider) Check(r *validator.Request) error {
	if err := r.CheckToken(); err != nil {
		return err
	}
	switch {
	case len(r.Platform) == 0:
		return errMissingPlatform
	case !knownPlatform(r.Platform):
		return unknownPlatform(r.Platform)
	}
	return r.CheckPlayerID()
}

var errMissingPlatform = &validator.RequestError{Msg: "missing platform"}

func knownPlatform(p []byte) bool {
	switch string(p) { // a switch on string(p) neither allocates nor copies
	case "web", "launcher", "mobile", "pc":
		return true
	}
	return false
}

// unknownPlatform names p, truncated and with bytes outside 0x20..0x7E
// replaced by '?', so the message is short and safe to log.
func unknownPlatform(p []byte) *validator.RequestError {
	return &validator.RequestError{Msg: "unknown platform " + strconv.Quote(string(validator.EchoSafe(p))) + " (want web, launcher, mobile or pc)"}
}

// Close implements validator.Provider.
func (kg *Provider) Close() { kg.up.Close() }

// Call implements validator.Provider: one POST /service/v5/auth/validation.
func (kg *Provider) Call(r *validator.Request) *validator.Result {
	claimed := string(r.PlayerID)
	req := kg.up.NewRequest(fasthttp.MethodPost, ValidationPath)
	req.Header.SetContentType("application/json;charset=UTF-8")
	req.Header.Set("appSecret", kg.cfg.AppSecret)
	req.Header.Set("Authorization", kg.authz)
	req.Header.Set("kgAppId", kg.cfg.AppID)
	req.Header.SetBytesV("platform", r.Platform)
	req.Header.SetBytesV("accessToken", r.Token)
	if len(r.PlayerID) > 0 {
		req.Header.SetBytesV("playerId", r.PlayerID)
	}
	ex, err := kg.up.Do(req, r.Token)
	if err != nil {
		res := &validator.Result{Verdict: validator.Unavailable, Reason: validator.ReasonUpstreamUnavailable, Failure: true, Err: err, PlayerID: claimed}
		kg.logFailure(res, r)
		return res
	}
	res := Decide(ex.Status, ex.Body, ex.ContentType, claimed, kg.cfg.AllowStatuses)
	res.Err = ex.Dropped
	if ex.TokenEcho {
		res = withheld(res, claimed)
	}
	if ex.Dropped != nil && res.Verdict == validator.Kick && (errors.Is(ex.Dropped, validator.ErrEchoed) || !jsonContentType(ex.ContentType)) {
		// A verdict status whose body is gone decides by its status only
		// when the body was Kakao's: JSON too large to keep. A body that
		// echoed our request, or a page that is not JSON (a proxy's 401
		// page, large or quoting the request), is nobody's verdict.
		res = unavailable(&validator.Result{Status: ex.Status, ContentType: ex.ContentType, PlayerID: claimed, Err: ex.Dropped, Fields: fields},
			validator.ReasonUpstreamUnavailable, true)
	}
	if ex.Dropped != nil && res.Verdict == validator.Kick && res.Reason != validator.ReasonInvalidToken && res.Named == "" {
		// A verdict about the token's player whose body (which may have
		// named them) is gone: the claim is the best name there is. Only
		// the upstream makes a body too large or echoing, so no caller can
		// choose to purge someone this way.
		res.Named = claimed
	}
	if res.Verdict == validator.Unavailable {
		kg.logFailure(res, r)
	}
	return res
}

// withheld is res decided on a body that holds the request's token: a
// 200 is nobody's allow (a token the upstream echoes back into its
// answer), a kick or failure keeps its verdict but loses the body (the
// caller could have chosen the token to be a piece of Kakao's own 401
// answer: that must neither turn the kick into an outage nor come back in
// answers, the cache or logs). What it names it names from the body,
// never from the claim.
func withheld(res *validator.Result, claimed string) *validator.Result {
	if res.Status == 200 {
		return unavailable(&validator.Result{Status: res.Status, ContentType: res.ContentType, PlayerID: claimed, Err: validator.ErrEchoed, Fields: fields},
			validator.ReasonUpstreamUnavailable, true)
	}
	stripped := &validator.Result{
		Verdict: res.Verdict, Reason: res.Reason, Failure: res.Failure,
		Status: res.Status, ContentType: res.ContentType,
		Code: res.Code, HasCode: res.HasCode,
		PlayerID: res.PlayerID, Named: res.Named, Fields: fields,
		Err: errTokenEchoed,
	}
	return stripped
}

var errTokenEchoed = errors.New("upstream body holds the access token; body withheld")

// jsonContentType reports a JSON media type (application/json, with or
// without parameters, or a +json suffix).
func jsonContentType(ct string) bool {
	mt, _, _ := strings.Cut(ct, ";")
	mt = strings.ToLower(strings.TrimSpace(mt))
	return mt == "application/json" || strings.HasSuffix(mt, "+json")
}

func (kg *Provider) logFailure(res *validator.Result, r *validator.Request) {
	attrs := []any{
		"provider", Name,
		"player", res.PlayerID,
		"platform", string(r.Platform),
		"reason", res.Reason.String(),
		"upstream_status", res.Status,
	}
	if res.HasCode {
		attrs = append(attrs, "upstream_code", res.Code)
	}
	if res.Err != nil {
		attrs = append(attrs, "error", res.Err.Error())
	}
	switch {
	case res.Status == 400 || requestShapeStatus(res.Status):
		// The upstream says our request is malformed: a bug or a bad
		// -app-id/secret/key/-upstream, and every player is affected.
		kg.log.Error("upstream rejected playerguard's request as malformed ("+strconv.Itoa(res.Status)+"): check -app-id, the app secret, the admin key and -upstream", attrs...)
		return
	case credentialsRefused(res):
		kg.log.Error("upstream refused playerguard's credentials (401.-29001): check the app secret, the admin key and -app-id; no player is kicked for it", attrs...)
		return
	case res.Status == 404:
		// The path does not exist there: every player gets the same.
		kg.log.Error("upstream answered 404 Not Found, so it is no verdict about the player: check -upstream (its path, or a proxy in front of Kakao)", attrs...)
		return
	case foreign4xx(res):
		// Not Kakao's verdict: most likely every player gets the same.
		kg.log.Error("upstream answered "+strconv.Itoa(res.Status)+" without a Kakao error body, so it is no verdict about the player: check -upstream (a wrong path, or a proxy, WAF or load balancer in front of Kakao)", attrs...)
		return
	}
	kg.log.Warn("upstream failure", attrs...)
}

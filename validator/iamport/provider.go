// Package iamport is the i'mport (PortOne v1) age gate: playerguard holds
// the i'mport API key and secret, fetches a player's carrier identity
// verification (GET /certifications/{imp_uid}), decides the age rule
// (AgeRule: full age in Seoul, or the Youth Protection Act's year rule),
// and answers only allow or kick, the minimum age, when the person was
// certified and an opaque person key: never the name, phone, birth date,
// gender, CI or DI.
//
// The access token (POST /users/getToken) is reused until a minute before
// it expires by i'mport's clock, refreshed one at a time, and refreshed
// once more when a certification call answers 401 (tokenSource). One
// verification admits one player: an imp_uid presented for a second
// playerId within the reuse window is a kick (certification_reused).
// Without a verdict the gate answers unavailable whatever the outage
// policy: validator.Spec.AgeGate.
package iamport

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"

	"playerguard/metrics"
	"playerguard/validator"
)

// The provider's name, endpoint and defaults.
const (
	Name = "iamport"
	// Path is playerguard's age gate endpoint.
	Path = "/v1/iamport/age-gate"
	// DefaultAPI is i'mport's REST API.
	DefaultAPI = "https://api.iamport.kr"
	// CertPath is the certification endpoint, before the imp_uid.
	CertPath = "/certifications/"
	// DefaultMinAge is the minimum age when neither the request nor the
	// configuration gives one: adults only.
	DefaultMinAge = 19
	// DefaultReuseWindow is how long an imp_uid stays bound to its player.
	DefaultReuseWindow = 24 * time.Hour
)

// Config configures the age gate. Zero values are documented per field.
type Config struct {
	// Key and Secret are i'mport's REST API key and secret. Required.
	Key, Secret string
	// PersonKeySecret, if set, keys the HMAC-SHA256 of the CI given as
	// personKey; without it no personKey is given.
	PersonKeySecret []byte
	// API is i'mport's base URL. Empty means DefaultAPI.
	API string
	// Rule is how age is counted; MinAge the default minimum age (zero:
	// DefaultMinAge); MaxCertAge, if positive, refuses older
	// certifications.
	Rule       AgeRule
	MinAge     int
	MaxCertAge time.Duration
	// ReuseWindow is how long an imp_uid stays bound to the first player
	// it admitted or refused. Zero means DefaultReuseWindow.
	ReuseWindow time.Duration
	// OTPMaxPerPhone caps SMS code requests per phone number in OTPWindow.
	// Zero means DefaultOTPMaxPerPhone.
	OTPMaxPerPhone int
	// Timeout bounds every i'mport call. Zero means 2s.
	Timeout time.Duration
	// MaxConns caps connections and concurrent calls. Zero means 64.
	MaxConns int
	// Logger receives the failure lines. Nil means discard.
	Logger *slog.Logger
	// Metrics is where the token refreshes are counted (the validator's).
	// Nil means a registry of its own.
	Metrics *metrics.Metrics
	// Now is the clock. Nil means time.Now.
	Now func() time.Time
	// Shared, if set, is the fleet's store (package fleet): the access
	// token and the imp_uid bindings are then one for the whole fleet.
	Shared validator.SharedState
}

// Provider is the age gate.
type Provider struct {
	cfg    Config
	up     *validator.HTTPUpstream
	tokens *tokenSource
	reuse  *reuseTable
	otp    otpState
	log    *slog.Logger
}

// New returns the age gate.
func New(cfg Config) (*Provider, error) {
	switch {
	case cfg.Key == "" || cfg.Secret == "":
		return nil, errors.New("iamport key and secret are both required")
	case cfg.MinAge < 0 || cfg.MinAge > 100:
		return nil, errors.New("iamport minimum age must be between 1 and 100")
	case cfg.MaxCertAge < 0 || cfg.ReuseWindow < 0 || cfg.Timeout < 0 || cfg.MaxConns < 0 || cfg.OTPMaxPerPhone < 0:
		return nil, errors.New("iamport durations and limits must not be negative")
	case cfg.Rule != RuleFull && cfg.Rule != RuleYear:
		return nil, errors.New("unknown age rule")
	}
	if cfg.API == "" {
		cfg.API = DefaultAPI
	}
	if cfg.MinAge == 0 {
		cfg.MinAge = DefaultMinAge
	}
	if cfg.ReuseWindow == 0 {
		cfg.ReuseWindow = DefaultReuseWindow
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 2 * time.Second
	}
	if cfg.OTPMaxPerPhone == 0 {
		cfg.OTPMaxPerPhone = DefaultOTPMaxPerPhone
	}
	if cfg.MaxConns == 0 {
		cfg.MaxConns = 64
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Metrics == nil {
		cfg.Metrics = metrics.New(prometheus.NewRegistry(), "")
	}
	up, err := validator.NewHTTPUpstream(validator.HTTPUpstreamConfig{
		URL: cfg.API, Timeout: cfg.Timeout, MaxConns: cfg.MaxConns, MaxBody: 64 << 10,
		Secrets: []string{cfg.Key, cfg.Secret},
	})
	if err != nil {
		return nil, errors.New("iamport " + err.Error())
	}
	p := &Provider{
		cfg: cfg, up: up, log: cfg.Logger,
		tokens: &tokenSource{up: up, key: cfg.Key, secret: cfg.Secret, now: cfg.Now, log: cfg.Logger, refreshes: cfg.Metrics.TokenRefreshes(Name), shared: cfg.Shared},
		reuse:  newReuseTable(cfg.ReuseWindow, cfg.Now),
		otp:    otpState{limit: newPhoneLimit(cfg.OTPMaxPerPhone, OTPWindow, cfg.Now)},
	}
	p.otp.requests, p.otp.confirms = cfg.Metrics.OTP(Name, otpRequestOutcomes, otpConfirmOutcomes)
	return p, nil
}

// fields: the answer's members, inline.
var fields = &validator.Fields{Inline: true}

// Spec implements validator.Provider.
func (p *Provider) Spec() validator.Spec {
	return validator.Spec{
		Name: Name, Path: Path, StrictFields: true, AgeGate: true,
		Timeout: p.cfg.Timeout, MaxCalls: p.cfg.MaxConns,
		Fields:      fields,
		Kicks:       []validator.Reason{ReasonUnderage, ReasonNotCertified, ReasonCertificationExpired, ReasonCertificationReused},
		Unavailable: []validator.Reason{validator.ReasonUpstreamUnavailable},
	}
}

// Close implements validator.Provider.
func (p *Provider) Close() { p.up.Close() }

var (
	errImpUID       = &validator.RequestError{Msg: "impUid must be imp_ followed by digits (at most 32)"}
	errMissingImp   = &validator.RequestError{Msg: "missing impUid"}
	errMissingID    = &validator.RequestError{Msg: "missing playerId (the verification is bound to the player it admits)"}
	errMinAge       = &validator.RequestError{Msg: "minAge must be an integer from 1 to 100"}
	maxImpUIDDigits = 32
)

// Check implements validator.Provider.
func (p *Provider) Check(r *validator.Request) error {
	if err := checkImpUID(r.Token); err != nil {
		return err
	}
	if len(r.PlayerID) == 0 {
		return errMissingID
	}
	if err := r.CheckPlayerID(); err != nil {
		return err
	}
	if len(r.MinAge) > 0 {
		if _, ok := parseMinAge(r.MinAge); !ok {
			return errMinAge
		}
	}
	return nil
}

// CheckPurge implements validator.PurgeChecker: a purge names the
// imp_uid alone (every entry of it goes, under any player and minimum
// age); a playerId, if given, is checked as a validation's.
func (p *Provider) CheckPurge(r *validator.Request) error {
	if err := checkImpUID(r.Token); err != nil {
		return err
	}
	return r.CheckPlayerID()
}

// checkImpUID: imp_ and 1 to 32 digits.
func checkImpUID(imp []byte) error {
	switch {
	case len(imp) == 0:
		return errMissingImp
	case len(imp) <= 4 || len(imp) > 4+maxImpUIDDigits || string(imp[:4]) != "imp_":
		return errImpUID
	}
	for _, c := range imp[4:] {
		if c < '0' || c > '9' {
			return errImpUID
		}
	}
	return nil
}

// parseMinAge reads minAge: an integer 1..100 written plainly.
func parseMinAge(b []byte) (int, bool) {
	n, err := strconv.Atoi(string(b))
	return n, err == nil && n >= 1 && n <= 100 && strconv.Itoa(n) == string(b)
}

// Call implements validator.Provider.
func (p *Provider) Call(r *validator.Request) *validator.Result {
	impUID, player := string(r.Token), string(r.PlayerID)
	minAge := p.cfg.MinAge
	if len(r.MinAge) > 0 {
		minAge, _ = parseMinAge(r.MinAge) // checked
	}
	return p.gate(impUID, player, minAge, "age_gate", func(budget *time.Duration) (int, []byte, error) { return p.certification(impUID, budget) })
}

// gate is the age gate on the certification fetch returns, for both ways
// to one (the imp_uid of a completed verification, an SMS code
// confirmed): the reuse claim, taken before the call, atomically (two
// players presenting one imp_uid at once must not both get a verdict),
// Decide, and the answer's members.
func (p *Provider) gate(impUID, player string, minAge int, step string, fetch func(budget *time.Duration) (int, []byte, error)) *validator.Result {
	res := &validator.Result{PlayerID: player, Fields: fields, Scoped: true}
	budget := p.redisBudget()
	ok, fresh := p.reuse.claim(impUID, player)
	sharedFresh := false
	if ok {
		ok, sharedFresh = p.claimShared(impUID, player, &budget)
		if !ok && fresh {
			p.reuse.release(impUID, player) // another sidecar's player holds it
		}
	}
	if !ok {
		res.Verdict, res.Reason = validator.Kick, ReasonCertificationReused
		res.Body = p.members(minAge, nil)
		res.SetRaw(0, 0, len(res.Body))
		return res
	}
	status, body, err := fetch(&budget)
	now := p.cfg.Now()
	d := Decision{Verdict: validator.Unavailable, Reason: validator.ReasonUpstreamUnavailable, Failure: true}
	if err == nil {
		d = Decide(status, body, now, Gate{Rule: p.cfg.Rule, MinAge: minAge, MaxCertAge: p.cfg.MaxCertAge})
	}
	if fresh && d.Reason != validator.ReasonOK && d.Reason != ReasonUnderage {
		// No verdict about this person's age: the imp_uid binds no one.
		p.reuse.release(impUID, player)
	}
	if sharedFresh && d.Reason != validator.ReasonOK && d.Reason != ReasonUnderage {
		go p.cfg.Shared.Delete(reuseName(impUID), playerDigest(player)) // off the answer's path
	}
	res.Verdict, res.Reason, res.Failure, res.Err = d.Verdict, d.Reason, d.Failure, err
	res.Status, res.Code, res.HasCode = status, d.Code, d.HasCode
	if d.Verdict == validator.Unavailable {
		attrs := []any{"provider", Name, "step", step, "player", player, "reason", res.Reason.String(), "upstream_status", status}
		if err != nil {
			attrs = append(attrs, "error", err.Error())
		}
		p.log.Warn("upstream failure", attrs...)
		return res
	}
	res.CacheKick = d.Reason == ReasonUnderage
	res.MaxAge = p.maxAge(d, now)
	res.Body = p.members(minAge, &d.Cert)
	res.SetRaw(0, 0, len(res.Body))
	return res
}

// maxAge bounds a verdict's life in the cache, in seconds (0: no bound):
// an allow not past the certification's maximum age, an underage kick not
// past midnight in Seoul (the player may be old enough tomorrow).
func (p *Provider) maxAge(d Decision, now time.Time) int32 {
	var until time.Time
	switch {
	case d.Verdict == validator.Allow && p.cfg.MaxCertAge > 0:
		until = time.Unix(d.Cert.CertifiedAt, 0).Add(p.cfg.MaxCertAge)
	case d.Reason == ReasonUnderage:
		y, m, day := now.In(Seoul).Date()
		until = time.Date(y, m, day+1, 0, 0, 0, 0, Seoul)
	default:
		return 0
	}
	left := int64(until.Sub(now) / time.Second)
	if left < 1 {
		return -1 // answered, not cached
	}
	return int32(min(left, 1<<31-1))
}

// members are the answer's own fields: minAge, and for a certification
// read, certifiedAt and personKey.
func (p *Provider) members(minAge int, c *Cert) []byte {
	b := make([]byte, 0, 128)
	b = append(b, `,"minAge":`...)
	b = strconv.AppendInt(b, int64(minAge), 10)
	if c == nil {
		return b
	}
	if c.CertifiedAt != 0 {
		b = append(b, `,"certifiedAt":`...)
		b = strconv.AppendInt(b, c.CertifiedAt, 10)
	}
	if len(p.cfg.PersonKeySecret) > 0 && c.UniqueKey != "" {
		m := hmac.New(sha256.New, p.cfg.PersonKeySecret)
		m.Write([]byte(c.UniqueKey))
		b = append(b, `,"personKey":"`...)
		b = hex.AppendEncode(b, m.Sum(nil))
		b = append(b, '"')
	}
	return b
}

// certification fetches GET /certifications/{imp_uid}.
func (p *Provider) certification(impUID string, budget *time.Duration) (int, []byte, error) {
	return p.call(fasthttp.MethodGet, CertPath+impUID, nil, budget)
}

// redisBudget is one validation's whole wait on the fleet (none without
// one).
func (p *Provider) redisBudget() time.Duration {
	if p.cfg.Shared == nil {
		return 0
	}
	return p.cfg.Shared.Budget()
}

// call makes one i'mport call with the access token, and on a 401 once
// more with a fresh one. A body that echoes the token, or is over the
// cap, comes back nil (unreadable).
// budget is what remains of the validation's wait on the fleet.
func (p *Provider) call(method, path string, body []byte, budget *time.Duration) (int, []byte, error) {
	stale := ""
	for attempt := 0; ; attempt++ {
		tok, err := p.tokens.get(stale, budget)
		if err != nil {
			return 0, nil, err
		}
		req := p.up.NewRequest(method, path)
		req.Header.Set("Authorization", tok)
		if body != nil {
			req.Header.SetContentType("application/json")
			req.SetBody(body)
		}
		ex, err := p.up.Do(req, []byte(tok))
		if err != nil {
			return 0, nil, err
		}
		if ex.Status == fasthttp.StatusUnauthorized && attempt == 0 {
			stale = tok
			continue
		}
		got := ex.Body
		if ex.TokenEcho || ex.Dropped != nil {
			got = nil
		}
		return ex.Status, got, nil
	}
}

// CheckMinAge reports a problem with -age-gate-min-age.
func CheckMinAge(n int) error {
	if n < 1 || n > 100 {
		return errors.New("must be from 1 to 100")
	}
	return nil
}

// ParsePersonKeySecret reads the person key secret: hex, at least 16 bytes.
func ParsePersonKeySecret(s string) ([]byte, error) {
	b, err := hex.DecodeString(strings.TrimSpace(s))
	if err != nil || len(b) < 16 {
		return nil, errors.New("must be hex, at least 32 digits (16 bytes)")
	}
	return b, nil
}

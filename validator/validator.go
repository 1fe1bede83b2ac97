package validator

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sony/gobreaker/v2"

	"playerguard/cache"
	"playerguard/metrics"
)

// Policy is what to answer when the upstream cannot give a verdict.
type Policy uint8

const (
	// PolicyStale allows a player whose allow expired less than StaleFor
	// ago (degraded), and answers unavailable otherwise.
	PolicyStale Policy = iota
	// PolicyOpen allows everyone (degraded).
	PolicyOpen
	// PolicyClosed answers unavailable.
	PolicyClosed
)

var policyNames = []string{"stale", "open", "closed"}

func (p Policy) String() string { return policyNames[p] }

// ParsePolicy parses "stale", "open" or "closed".
func ParsePolicy(s string) (Policy, error) {
	for i, n := range policyNames {
		if s == n {
			return Policy(i), nil
		}
	}
	return 0, fmt.Errorf("unknown outage policy %q (want stale, open or closed)", s)
}

// Cache is what the validator needs of a decision cache; *cache.Cache is
// the real one.
type Cache interface {
	Get(k *cache.Key, now time.Time) (*Result, cache.State)
	Set(k *cache.Key, tags cache.Tags, s cache.Stamp, fresh, stale time.Duration, v *Result) bool
	Stamp() cache.Stamp
	Delete(k *cache.Key)
	PurgePlayer(player string)
	PurgeToken(t cache.TokenID)
}

// Config configures a Validator. Zero values are documented per field;
// New rejects impossible ones.
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

	// CacheTTL is how long an allow is served from cache. Zero disables
	// caching (coalescing still applies).
	CacheTTL time.Duration
	// CacheMaxEntries bounds the cache when New builds it. Zero means 1,000,000.
	CacheMaxEntries int64
	// StaleFor is how long after CacheTTL an allow may still be served by
	// PolicyStale during an outage. Zero means never.
	StaleFor time.Duration
	// NegativeTTL caches invalid_token kicks for that long, answering the
	// token on that platform whatever player is claimed. Zero disables it.
	NegativeTTL time.Duration
	// AllowStatuses lists the player.status values in good standing. Nil
	// means just "normal".
	AllowStatuses []string
	// Policy is the outage policy. The zero value is PolicyStale.
	Policy Policy

	// BreakerFailures is how many consecutive upstream failures open the
	// breaker. Zero means 5.
	BreakerFailures uint32
	// BreakerTimeout is how long the breaker stays open before letting one
	// probe through. Zero means 10s.
	BreakerTimeout time.Duration

	// Cache, if set, is used instead of a cache New builds from CacheMaxEntries.
	Cache Cache
	// Logger receives kick, degraded-allow and upstream failure lines. Nil
	// means discard.
	Logger *slog.Logger
	// Metrics, if set, is updated; nil means a private registry.
	Metrics *metrics.Metrics
	// Now is the clock for request timing and cache freshness; it must be
	// the clock of Cache when Cache is set. Nil means time.Now.
	Now func() time.Time
}

// Validator answers validations. Safe for concurrent use; see New.
type Validator struct {
	cfg      Config
	up       *upstream
	cache    Cache
	own      *cache.Cache[*Result] // the cache New built, if any
	flights  flightGroup
	breaker  *gobreaker.CircuitBreaker[*Result]
	slots    chan struct{} // upstream call slots
	log      *slog.Logger
	m        *metrics.Metrics
	draining atomic.Bool
	ctxClock bool // start times come from fasthttp's RequestCtx.Time
	// breakerState mirrors the breaker's state as of its last transition
	// (gobreaker moves from open to half-open lazily, on the next call).
	breakerState atomic.Int32

	// Label children resolved once: the hot path does no map lookups.
	counts  [numVerdicts][maxReasons][numSources]*metrics.Counter
	latency [numSources]*metrics.Histogram

	states sync.Pool // *reqState
}

// reqState is the per-request scratch space, pooled.
type reqState struct {
	req     Request
	kb      cache.KeyBuilder
	key     cache.Key
	token   cache.TokenID // set on a miss
	stamp   cache.Stamp   // taken by call, before the upstream is asked
	scratch []byte
}

var (
	errUpstreamFailure  = errors.New("upstream failure")
	errUpstreamRejected = errors.New("upstream rejected the request as malformed")
)

// New returns a Validator. Call Close when done.
func New(cfg Config) (*Validator, error) {
	if cfg.Upstream == "" {
		return nil, errors.New("upstream URL is required")
	}
	if cfg.AppID == "" {
		return nil, errors.New("app id is required")
	}
	for _, c := range []struct{ name, v string }{{"app id", cfg.AppID}, {"app secret", cfg.AppSecret}, {"admin key", cfg.AdminKey}} {
		if err := CheckCredential(c.v); err != nil {
			return nil, fmt.Errorf("%s: %w", c.name, err)
		}
	}
	if cfg.UpstreamTimeout < 0 || cfg.CacheTTL < 0 || cfg.StaleFor < 0 || cfg.NegativeTTL < 0 || cfg.BreakerTimeout < 0 {
		return nil, errors.New("durations must not be negative")
	}
	if cfg.MaxUpstreamConns < 0 || cfg.MaxUpstreamBody < 0 || cfg.MaxUpstreamCalls < 0 || cfg.CacheMaxEntries < 0 {
		return nil, errors.New("limits must not be negative")
	}
	if cfg.Policy > PolicyClosed {
		return nil, fmt.Errorf("unknown outage policy %d", cfg.Policy)
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
	if cfg.CacheMaxEntries == 0 {
		cfg.CacheMaxEntries = 1_000_000
	}
	if cfg.AllowStatuses == nil {
		cfg.AllowStatuses = []string{"normal"}
	}
	if cfg.BreakerFailures == 0 {
		cfg.BreakerFailures = 5
	}
	if cfg.BreakerTimeout == 0 {
		cfg.BreakerTimeout = 10 * time.Second
	}
	ctxClock := cfg.Now == nil
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Metrics == nil {
		cfg.Metrics = metrics.New(prometheus.NewRegistry(), "")
	}
	up, err := newUpstream(&cfg)
	if err != nil {
		return nil, err
	}
	v := &Validator{
		cfg:   cfg,
		up:    up,
		cache: cfg.Cache,
		slots: make(chan struct{}, cfg.MaxUpstreamCalls),
		log:   cfg.Logger,
		m:     cfg.Metrics,
		// With the real clock, a request's start is fasthttp's own
		// reading (RequestCtx.Time), which it takes anyway: one clock
		// read fewer on the hot path.
		ctxClock: ctxClock,
	}
	if v.cache == nil {
		life := cfg.CacheTTL + cfg.StaleFor
		if life < cfg.CacheTTL { // overflowed
			life = math.MaxInt64
		}
		maxAge := max(life, cfg.NegativeTTL, time.Second)
		c, err := cache.New[*Result](cache.Config{MaxEntries: cfg.CacheMaxEntries, MaxAge: maxAge, Now: cfg.Now})
		if err != nil {
			return nil, err
		}
		v.cache, v.own = c, c
		v.m.CacheStatsFunc(func() metrics.CacheStats {
			s := c.Stats()
			return metrics.CacheStats{
				Entries: s.Entries, MaxEntries: uint64(cfg.CacheMaxEntries),
				Evictions: s.Evictions, Rejections: s.Rejections, Dropped: s.Dropped,
				Purges: s.Purges, Tombstones: s.Tombstones,
			}
		})
	}
	v.breaker = gobreaker.NewCircuitBreaker[*Result](gobreaker.Settings{
		Name:        "kakao-games-validation",
		MaxRequests: 1,
		Timeout:     cfg.BreakerTimeout,
		ReadyToTrip: func(c gobreaker.Counts) bool { return c.ConsecutiveFailures >= cfg.BreakerFailures },
		IsExcluded:  func(err error) bool { return errors.Is(err, errUpstreamRejected) || errors.Is(err, errSaturated) },
		OnStateChange: func(_ string, from, to gobreaker.State) {
			// Runs under the breaker's lock: no calls back into it.
			v.breakerState.Store(int32(to))
			v.m.BreakerTransitions.WithLabelValues(breakerLabel(to)).Inc()
			v.log.Warn("upstream circuit breaker", "from", breakerLabel(from), "to", breakerLabel(to))
		},
	})
	v.m.BreakerStateFunc(func() float64 { return breakerGauge(v.breaker.State()) })
	v.resolveMetrics()
	v.states.New = func() any { return &reqState{scratch: make([]byte, 0, 512)} }
	return v, nil
}

// Close releases the cache New built. In-flight validations must be done.
func (v *Validator) Close() {
	v.flights.wait() // cache writes of answers already sent
	if v.own != nil {
		v.own.Close()
	}
	v.up.client.CloseIdleConnections()
}

// SetDraining marks the validator as shutting down: /readyz turns unready.
func (v *Validator) SetDraining() { v.draining.Store(true) }

func breakerLabel(s gobreaker.State) string {
	switch s {
	case gobreaker.StateOpen:
		return "open"
	case gobreaker.StateHalfOpen:
		return "half_open"
	}
	return "closed"
}

func breakerGauge(s gobreaker.State) float64 {
	switch s {
	case gobreaker.StateOpen:
		return metrics.BreakerOpen
	case gobreaker.StateHalfOpen:
		return metrics.BreakerHalfOpen
	}
	return metrics.BreakerClosed
}

// resolveMetrics creates every (decision, reason, source) series that can
// occur, so dashboards see zeros instead of gaps, and keeps the children.
func (v *Validator) resolveMetrics() {
	add := func(vd Verdict, r Reason, s Source) {
		v.counts[vd][r][s] = v.m.Validations.WithLabelValues(vd.String(), r.String(), s.String())
	}
	for s := range numSources {
		add(Allow, ReasonOK, s)
		v.latency[s] = v.m.ValidationSeconds.WithLabelValues(s.String())
	}
	for r := ReasonInvalidToken; r <= ReasonPlayerStatus; r++ {
		add(Kick, r, SourceUpstream)
	}
	add(Kick, ReasonInvalidToken, SourceCache) // negative cache
	for r := ReasonUpstreamUnavailable; r <= ReasonUpstreamMaintenance; r++ {
		add(Unavailable, r, SourceUpstream)
	}
}

// answer is one validation's outcome as served to one caller.
type answer struct {
	res      *Result // the result rendered (for stale: the cached allow)
	verdict  Verdict
	reason   Reason
	source   Source
	degraded bool
	cause    *Result // for a degraded allow: the failure behind it
}

// validate answers one checked request that arrived at now: cache, then the
// (coalesced, breaker-guarded) upstream, then the outage policy.
func (v *Validator) validate(st *reqState, now time.Time) answer {
	st.key = st.kb.Key(st.req.Platform, st.req.PlayerID, st.req.Token)
	if res, s := v.cache.Get(&st.key, now); s == cache.Fresh {
		// Counted by observe, as validations_total{source="cache"}, which
		// cache_hits_total sums.
		return answer{res: res, verdict: res.Verdict, reason: res.Reason, source: SourceCache}
	}
	if v.cfg.NegativeTTL > 0 {
		// An invalid_token kick is filed under the token and platform
		// alone (it says nothing about a player): it answers every claim.
		k := st.kb.TokenKey(st.req.Platform, st.req.Token)
		if res, s := v.cache.Get(&k, now); s == cache.Fresh && res.Verdict == Kick {
			return answer{res: res, verdict: Kick, reason: res.Reason, source: SourceCache}
		}
	}
	v.m.CacheMisses.Inc()
	// While the breaker is not closed, the call under way for this key is
	// a probe of an upstream that was failing: only the probe itself may
	// wait on it; everyone else is answered at once, as if it were open.
	probing := v.breakerState.Load() != int32(gobreaker.StateClosed)
	st.token = cache.TokenOf(st.req.Token)
	tags := cache.Tags{Player: string(st.req.PlayerID), Token: st.token}
	res, shared := v.flights.do(&st.key, tags, probing, func() (*Result, func()) { return v.fetch(st) })
	switch {
	case res == nil:
		res = circuitOpen(string(st.req.PlayerID), gobreaker.ErrTooManyRequests)
	case shared:
		v.m.Coalesced.Inc()
	}
	if res.Verdict != Unavailable {
		return answer{res: res, verdict: res.Verdict, reason: res.Reason, source: SourceUpstream}
	}
	failure := answer{res: res, verdict: Unavailable, reason: res.Reason, source: SourceUpstream}
	switch v.cfg.Policy {
	case PolicyStale:
		// Look again: a kick since the first look has purged the entry,
		// and a fresh one may have landed meanwhile.
		c, s := v.cache.Get(&st.key, v.cfg.Now())
		if s == cache.Miss || c.Verdict != Allow {
			return failure
		}
		if s == cache.Fresh {
			return answer{res: c, verdict: Allow, reason: ReasonOK, source: SourceCache}
		}
		v.m.StaleServes.Inc()
		return answer{res: c, verdict: Allow, reason: ReasonOK, source: SourceStale, degraded: true, cause: res}
	case PolicyOpen:
		return answer{res: res, verdict: Allow, reason: ReasonOK, source: SourcePolicy, degraded: true, cause: res}
	}
	return failure
}

// fetch makes the upstream call for st (the flight's leader only) and
// applies its effects on the cache.
func (v *Validator) fetch(st *reqState) (*Result, func()) {
	claimed := string(st.req.PlayerID)
	res, err := v.breaker.Execute(func() (*Result, error) {
		return v.call(st, claimed)
	})
	switch {
	case errors.Is(err, gobreaker.ErrOpenState), errors.Is(err, gobreaker.ErrTooManyRequests):
		// No request waits on an upstream the breaker has given up on.
		return circuitOpen(claimed, err), nil
	case res == nil:
		return failed(ReasonUpstreamUnavailable, err, claimed), nil
	}

	switch res.Verdict {
	case Allow:
		if v.cfg.CacheTTL > 0 {
			// Settled after the answer is out (see flightGroup.do): the
			// write waits for ristretto to apply it, which measured 35-40 us
			// of a miss's latency (bench miss scenario). A purge of the
			// player or the token meanwhile refuses the write (the stamp
			// predates it); like a purge during the upstream call, it does
			// not take back answers already shared.
			key, tags, stamp := st.key, cache.Tags{Player: res.PlayerID, Token: st.token}, st.stamp
			return res, func() { v.cache.Set(&key, tags, stamp, v.cfg.CacheTTL, v.cfg.StaleFor, res) }
		}
	case Kick:
		// Authoritative. This key's entry goes, and so does every cached
		// allow of the token (under any claim and platform) and of the
		// player the verdict is about (Result.Named: never a claim alone,
		// which anyone can make). A player_mismatch is about the claim
		// only: the token and its player are fine.
		// (This key's own entry is the token's: no Delete of it, which
		// would only fill the purge table faster under a flood of kicks.
		// A player_mismatch key cannot hold an allow: that needs the
		// claim to be the token's player.)
		token := st.token
		if res.Reason != ReasonPlayerMismatch {
			// Flights first: no caller may join an allow of the token (or
			// the player) fetched before this kick, even one still being
			// cached, from here on.
			v.flights.detach(token, res.Named, &st.key)
			v.cache.PurgeToken(token)
		}
		v.cache.PurgePlayer(res.Named)
		if v.cfg.NegativeTTL > 0 && res.Reason == ReasonInvalidToken {
			k := st.kb.TokenKey(st.req.Platform, st.req.Token)
			v.cache.Set(&k, cache.Tags{Token: token}, v.cache.Stamp(), v.cfg.NegativeTTL, 0, res)
		}
		if res.Err != nil {
			v.log.Warn("upstream kick's body dropped", "player", res.PlayerID, "platform", string(st.req.Platform),
				"reason", res.Reason.String(), "upstream_status", res.Status, "error", res.Err.Error())
		}
	case Unavailable:
		v.logFailure(res, st)
	}
	return res, nil
}

// call makes one upstream request within a concurrency slot. Its error is
// what the breaker counts: errUpstreamFailure for failures, excluded errors
// for our own malformed request and for saturation, nil otherwise.
func (v *Validator) call(st *reqState, claimed string) (*Result, error) {
	select {
	case v.slots <- struct{}{}:
	default:
		t := time.NewTimer(v.cfg.UpstreamTimeout)
		select {
		case v.slots <- struct{}{}:
			t.Stop()
		case <-t.C:
			v.m.UpstreamRejected.Inc()
			return failed(ReasonUpstreamUnavailable, errSaturated, claimed), errSaturated
		}
	}
	// Stamped once the call can start: a purge while this waited for a
	// slot is older than what the upstream is about to say.
	st.stamp = v.cache.Stamp()
	v.m.UpstreamInFlight.Inc()
	ex, err := v.up.call(st.req.Platform, st.req.PlayerID, st.req.Token)
	v.m.UpstreamInFlight.Dec()
	<-v.slots

	if err != nil {
		outcome := "connection_error"
		switch {
		case errors.Is(err, errTimeout):
			outcome = "timeout"
		case errors.Is(err, errOutOfStep):
			outcome = "protocol_error"
		}
		v.m.UpstreamRequests.WithLabelValues(outcome).Inc()
		return failed(ReasonUpstreamUnavailable, err, claimed), errUpstreamFailure
	}
	v.m.UpstreamRequests.WithLabelValues(metrics.UpstreamOutcome(ex.status)).Inc()
	v.m.UpstreamSeconds.Observe(ex.latency.Seconds())
	res := Decide(ex.status, ex.body, ex.contentType, claimed, v.cfg.AllowStatuses)
	res.Err = ex.dropped
	if ex.dropped != nil && res.Verdict == Kick && (errors.Is(ex.dropped, errEchoed) || !jsonContentType(ex.contentType)) {
		// A verdict status whose body is gone decides by its status only
		// when the body was Kakao's: JSON too large to keep. A body that
		// echoed our request, or a page that is not JSON (a proxy's 401
		// page, large or quoting the request), is nobody's verdict.
		res = (&Result{Status: ex.status, ContentType: ex.contentType, PlayerID: claimed, Err: ex.dropped}).
			unavailable(ReasonUpstreamUnavailable, true)
	}
	if ex.dropped != nil && res.Verdict == Kick && res.Reason != ReasonInvalidToken && res.Named == "" {
		// A verdict about the token's player whose body (which may have
		// named them) is gone: the claim is the best name there is. Only
		// the upstream makes a body too large or echoing, so no caller can
		// choose to purge someone this way.
		res.Named = claimed
	}
	switch {
	case res.Failure:
		return res, errUpstreamFailure
	case res.Verdict == Unavailable:
		return res, errUpstreamRejected
	}
	return res, nil
}

// jsonContentType reports a JSON media type (application/json, with or
// without parameters, or a +json suffix).
func jsonContentType(ct string) bool {
	mt, _, _ := strings.Cut(ct, ";")
	mt = strings.ToLower(strings.TrimSpace(mt))
	return mt == "application/json" || strings.HasSuffix(mt, "+json")
}

func (v *Validator) logFailure(res *Result, st *reqState) {
	attrs := []any{
		"player", res.PlayerID,
		"platform", string(st.req.Platform),
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
		v.log.Error("upstream rejected playerguard's request as malformed ("+strconv.Itoa(res.Status)+"): check -app-id, the app secret, the admin key and -upstream", attrs...)
		return
	case credentialsRefused(res):
		v.log.Error("upstream refused playerguard's credentials (401.-29001): check the app secret, the admin key and -app-id; no player is kicked for it", attrs...)
		return
	case res.Status == 404:
		// The path does not exist there: every player gets the same.
		v.log.Error("upstream answered 404 Not Found, so it is no verdict about the player: check -upstream (its path, or a proxy in front of Kakao)", attrs...)
		return
	case foreign4xx(res):
		// Not Kakao's verdict: most likely every player gets the same.
		v.log.Error("upstream answered "+strconv.Itoa(res.Status)+" without a Kakao error body, so it is no verdict about the player: check -upstream (a wrong path, or a proxy, WAF or load balancer in front of Kakao)", attrs...)
		return
	}
	v.log.Warn("upstream failure", attrs...)
}

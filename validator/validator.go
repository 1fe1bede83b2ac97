package validator

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
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
	PurgeAll()
}

// Config configures a Validator's engine; each Provider has its own
// configuration. Zero values are documented per field; New rejects
// impossible ones.
type Config struct {
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
	// Policy is the outage policy. The zero value is PolicyStale.
	Policy Policy

	// BreakerFailures is how many consecutive upstream failures open a
	// provider's breaker. Zero means 5.
	BreakerFailures uint32
	// BreakerTimeout is how long a breaker stays open before letting one
	// probe through. Zero means 10s.
	BreakerTimeout time.Duration

	// Unconfigured lists the endpoints of known providers that are not
	// configured, so that a call to one answers 404 naming the provider
	// instead of an unknown path.
	Unconfigured []Endpoint

	// Cache, if set, is used instead of a cache New builds from CacheMaxEntries.
	Cache Cache
	// Sessions configures the live sessions (sessionId on a validation)
	// and their kick events.
	Sessions SessionsConfig
	// Fleet, if set, is the tier shared with the other sidecars (package
	// fleet); nil means this sidecar learns alone.
	Fleet Fleet
	// Logger receives kick, degraded-allow and saturation lines. Nil
	// means discard.
	Logger *slog.Logger
	// Metrics, if set, is updated; nil means a private registry.
	Metrics *metrics.Metrics
	// Now is the clock for request timing and cache freshness; it must be
	// the clock of Cache when Cache is set. Nil means time.Now.
	Now func() time.Time
}

// Endpoint is a provider's name and validation path.
type Endpoint struct{ Provider, Path string }

// Validator answers validations for its providers. Safe for concurrent
// use; see New.
type Validator struct {
	cfg       Config
	providers []*provider
	cache     Cache
	own       *cache.Cache[*Result] // the cache New built, if any
	fleet     Fleet
	live      *live
	flights   flightGroup
	log       *slog.Logger
	m         *metrics.Metrics
	draining  atomic.Bool
	ctxClock  bool // start times come from fasthttp's RequestCtx.Time

	states sync.Pool // *reqState
}

// reqState is the per-request scratch space, pooled.
type reqState struct {
	req     Request
	kb      cache.KeyBuilder
	key     cache.Key
	token   cache.TokenID // set on a miss
	stamp   cache.Stamp   // taken by call, before the upstream is asked
	ans     Answer        // a Route's answer
	scratch []byte
}

var (
	errUpstreamFailure  = errors.New("upstream failure")
	errUpstreamRejected = errors.New("upstream rejected the request as malformed")
)

// New returns a Validator for providers (at least one; names and paths
// distinct). It owns them: Close closes them.
func New(cfg Config, providers ...Provider) (*Validator, error) {
	if len(providers) == 0 {
		return nil, errors.New("no provider configured")
	}
	if cfg.CacheTTL < 0 || cfg.StaleFor < 0 || cfg.NegativeTTL < 0 || cfg.BreakerTimeout < 0 {
		return nil, errors.New("durations must not be negative")
	}
	if cfg.CacheMaxEntries < 0 {
		return nil, errors.New("limits must not be negative")
	}
	if cfg.Policy > PolicyClosed {
		return nil, fmt.Errorf("unknown outage policy %d", cfg.Policy)
	}
	if cfg.CacheMaxEntries == 0 {
		cfg.CacheMaxEntries = 1_000_000
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
	v := &Validator{
		cfg:   cfg,
		cache: cfg.Cache,
		fleet: cfg.Fleet,
		log:   cfg.Logger,
		m:     cfg.Metrics,
		// With the real clock, a request's start is fasthttp's own
		// reading (RequestCtx.Time), which it takes anyway: one clock
		// read fewer on the hot path.
		ctxClock: ctxClock,
	}
	seen := map[string]bool{}
	for _, p := range providers {
		s := p.Spec()
		switch {
		case s.Name == "" || s.Path == "" || s.Fields == nil || s.Timeout <= 0 || s.MaxCalls <= 0 || s.IDToken && s.Platform ||
			s.AgeGate && (s.Platform || s.IDToken):
			return nil, fmt.Errorf("provider %q: incomplete spec", s.Name)
		case seen[s.Name] || seen[s.Path] || s.Path[0] != '/':
			return nil, fmt.Errorf("provider %q: name or path %q taken or invalid", s.Name, s.Path)
		}
		seen[s.Name], seen[s.Path] = true, true
		pv := v.newProvider(p, s)
		if r, ok := p.(Router); ok {
			for _, rt := range r.Routes() {
				whole := rt.Serve != nil && rt.Read == nil && rt.Refuse == nil && rt.Write == nil
				validates := rt.Serve == nil && rt.Read != nil && rt.Refuse != nil && rt.Write != nil
				if seen[rt.Path] || rt.Path == "" || rt.Path[0] != '/' || !whole && !validates {
					return nil, fmt.Errorf("provider %q: route %q taken or incomplete", s.Name, rt.Path)
				}
				seen[rt.Path] = true
				pv.routes = append(pv.routes, rt)
			}
		}
		v.providers = append(v.providers, pv)
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
	v.states.New = func() any { return &reqState{scratch: make([]byte, 0, 512)} }
	if err := v.newLive(cfg.Sessions); err != nil {
		if v.own != nil {
			v.own.Close()
		}
		return nil, err
	}
	return v, nil
}

// newProvider builds the engine's state for p: its breaker, call slots
// and metric series.
func (v *Validator) newProvider(p Provider, s Spec) *provider {
	pv := &provider{
		p: p, spec: s, path: []byte(s.Path), ns: []byte(s.Name),
		form:      form{onlyKnown: s.StrictFields, noPlatform: !s.Platform, idToken: s.IDToken, ageGate: s.AgeGate}.sealed(),
		hitPrefix: hitPrefix(s.Fields),
		slots:     make(chan struct{}, s.MaxCalls),
	}
	name := s.Name
	pv.breaker = gobreaker.NewCircuitBreaker[*Result](gobreaker.Settings{
		Name:        name,
		MaxRequests: 1,
		Timeout:     v.cfg.BreakerTimeout,
		ReadyToTrip: func(c gobreaker.Counts) bool { return c.ConsecutiveFailures >= v.cfg.BreakerFailures },
		IsExcluded:  func(err error) bool { return errors.Is(err, errUpstreamRejected) || errors.Is(err, errSaturated) },
		OnStateChange: func(_ string, from, to gobreaker.State) {
			// Runs under the breaker's lock: no calls back into it.
			pv.breakerState.Store(int32(to))
			pv.m.BreakerTransitions[breakerLabel(to)].Inc()
			v.log.Warn("upstream circuit breaker", "provider", name, "from", breakerLabel(from), "to", breakerLabel(to))
		},
	})
	pv.m = v.m.Provider(name, func() float64 { return breakerGauge(pv.breaker.State()) })
	// Every (decision, reason, source) series that can occur, so that
	// dashboards see zeros instead of gaps.
	add := func(vd Verdict, r Reason, src Source) {
		pv.counts[vd][r][src] = v.m.Validations.WithLabelValues(name, vd.String(), r.String(), src.String())
	}
	for src := range numSources {
		add(Allow, ReasonOK, src)
		pv.latency[src] = v.m.ValidationSeconds.WithLabelValues(name, src.String())
	}
	for _, r := range s.Kicks {
		add(Kick, r, SourceUpstream)
	}
	add(Kick, ReasonInvalidToken, SourceCache) // negative cache
	add(Unavailable, ReasonCircuitOpen, SourceUpstream)
	add(Unavailable, ReasonUpstreamUnavailable, SourceUpstream) // saturation, transport failures
	for _, r := range s.Unavailable {
		add(Unavailable, r, SourceUpstream)
	}
	// Anything else a provider answers gets its series on first use
	// (observe), not dropped.
	return pv
}

// hitPrefix is the cache-hit allow body up to Raw(0), for fields.
func hitPrefix(f *Fields) []byte {
	if f.Inline {
		return []byte(`{"decision":"allow","reason":"ok","source":"cache"`)
	}
	return []byte(`{"decision":"allow","reason":"ok","source":"cache","` + f.Names[0] + `":`)
}

// Close closes the providers and the cache New built. In-flight
// validations must be done.
func (v *Validator) Close() {
	v.live.close()
	v.flights.wait() // cache writes of answers already sent
	if v.own != nil {
		v.own.Close()
	}
	for _, pv := range v.providers {
		pv.p.Close()
	}
}

// SetDraining marks the validator as shutting down: /readyz turns
// unready, and every /v1/events stream ends (its client reconnects to
// another sidecar, or to this one's successor, with Last-Event-ID).
func (v *Validator) SetDraining() {
	v.draining.Store(true)
	v.live.drain()
}

// Providers lists the configured providers' names.
func (v *Validator) Providers() []string {
	names := make([]string, len(v.providers))
	for i, pv := range v.providers {
		names[i] = pv.spec.Name
	}
	return names
}

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

// Answer is one validation's outcome as served to one caller.
type Answer struct {
	Res      *Result // the result rendered (for stale: the cached allow)
	Verdict  Verdict
	Reason   Reason
	Source   Source
	Degraded bool    // an allow by the outage policy (stale or open)
	Cause    *Result // for a degraded allow: the failure behind it
}

// validate answers one checked request for pv that arrived at now: cache,
// then the (coalesced, breaker-guarded) upstream, then the outage policy.
func (v *Validator) validate(pv *provider, st *reqState, now time.Time) Answer {
	platform := v.keyFor(pv, st)
	if res, s := v.cache.Get(&st.key, now); s == cache.Fresh {
		// Counted by observe, as validations_total{source="cache"}, which
		// cache_hits_total sums.
		return Answer{Res: res, Verdict: res.Verdict, Reason: res.Reason, Source: SourceCache}
	}
	if v.cfg.NegativeTTL > 0 {
		// An invalid_token kick is filed under the token and platform
		// alone (it says nothing about a player): it answers every claim.
		k := st.kb.TokenKey(platform, st.req.Token)
		if res, s := v.cache.Get(&k, now); s == cache.Fresh && res.Verdict == Kick {
			return Answer{Res: res, Verdict: Kick, Reason: res.Reason, Source: SourceCache}
		}
	}
	pv.m.CacheMisses.Inc()
	// While the breaker is not closed, the call under way for this key is
	// a probe of an upstream that was failing: only the probe itself may
	// wait on it; everyone else is answered at once, as if it were open.
	probing := pv.breakerState.Load() != int32(gobreaker.StateClosed)
	st.token = cache.TokenOf(st.req.Token)
	tags := cache.Tags{Player: string(st.req.PlayerID), Token: st.token}
	res, shared := v.flights.do(&st.key, tags, probing, func() (*Result, func()) { return v.fetch(pv, st) })
	switch {
	case res == nil:
		res = circuitOpen(string(st.req.PlayerID), gobreaker.ErrTooManyRequests)
	case shared:
		pv.m.Coalesced.Inc()
	}
	if res.fleet {
		return Answer{Res: res, Verdict: Allow, Reason: ReasonOK, Source: SourceCache}
	}
	if res.Verdict != Unavailable {
		return Answer{Res: res, Verdict: res.Verdict, Reason: res.Reason, Source: SourceUpstream}
	}
	failure := Answer{Res: res, Verdict: Unavailable, Reason: res.Reason, Source: SourceUpstream}
	if res.NoPolicy || pv.spec.AgeGate {
		return failure
	}
	switch v.cfg.Policy {
	case PolicyStale:
		// Look again: a kick since the first look has purged the entry,
		// and a fresh one may have landed meanwhile.
		c, s := v.cache.Get(&st.key, v.cfg.Now())
		if s == cache.Miss || c.Verdict != Allow {
			return failure
		}
		if s == cache.Fresh {
			return Answer{Res: c, Verdict: Allow, Reason: ReasonOK, Source: SourceCache}
		}
		pv.m.StaleServes.Inc()
		return Answer{Res: c, Verdict: Allow, Reason: ReasonOK, Source: SourceStale, Degraded: true, Cause: res}
	case PolicyOpen:
		return Answer{Res: res, Verdict: Allow, Reason: ReasonOK, Source: SourcePolicy, Degraded: true, Cause: res}
	}
	return failure
}

// keyFor sets st.key, the cache key of st's request for pv, and returns
// the request's platform (as keys have it).
func (v *Validator) keyFor(pv *provider, st *reqState) []byte {
	platform := pv.platform(&st.req)
	switch {
	case pv.spec.IDToken:
		st.key = st.kb.NonceKey(platform, st.req.PlayerID, st.req.Token, st.req.Nonce)
	case pv.spec.AgeGate:
		st.key = st.kb.NonceKey(platform, st.req.PlayerID, st.req.Token, st.req.MinAge)
	default:
		st.key = st.kb.Key(platform, st.req.PlayerID, st.req.Token)
	}
	return platform
}

// fetch makes the upstream call for st (the flight's leader only) and
// applies its effects on the cache.
func (v *Validator) fetch(pv *provider, st *reqState) (*Result, func()) {
	claimed := string(st.req.PlayerID)
	var sf SharedFlight
	if v.fleet != nil && !pv.spec.AgeGate {
		// The fleet next: another sidecar's allow, or its call under way.
		// (The age gate's answers stay per sidecar: its reuse rule is
		// claimed per verification, see package iamport.)
		// Stamped before asking: a kick that reaches this sidecar after
		// the fleet answered refuses the shared allow's local copy.
		st.stamp = v.cache.Stamp()
		sf = v.fleet.Look(&st.key, claimed, st.token)
		b, expires := sf.Value()
		if b == nil && !sf.Led() {
			b, expires = sf.Wait()
		}
		if res := v.shared(pv, st, b, expires); res != nil {
			sf.Done()
			return res, nil
		}
		defer func() {
			if sf != nil {
				sf.Done()
			}
		}()
	}
	res, err := pv.breaker.Execute(func() (*Result, error) {
		return v.call(pv, st)
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
		fresh, stale := v.cfg.CacheTTL, v.cfg.StaleFor
		if res.MaxAge != 0 {
			// The verdict's own life (a token's expiry) bounds the entry,
			// stale window included: an expired token is no allow.
			life := time.Duration(max(res.MaxAge, 0)) * time.Second
			fresh = min(fresh, life)
			stale = min(stale, life-fresh)
		}
		if fresh > 0 {
			// Settled after the answer is out (see flightGroup.do): the
			// write waits for ristretto to apply it, which measured 35-40 us
			// of a miss's latency (bench miss scenario). A purge of the
			// player or the token meanwhile refuses the write (the stamp
			// predates it); like a purge during the upstream call, it does
			// not take back answers already shared.
			key, tags, stamp := st.key, cache.Tags{Player: res.PlayerID, Token: st.token}, st.stamp
			if sf != nil && shareable(pv, res) {
				// Shared after the local write, in the same settle: a
				// sidecar that finds it can only be later than this
				// one's own callers. Readers check it against every kick
				// since this flight's Look (package fleet).
				shared, expires := sf, v.cfg.Now().Add(fresh)
				sf = nil
				return res, func() {
					v.cache.Set(&key, tags, stamp, fresh, stale, res)
					shared.Store(encodeShared(pv, res, stale), res.PlayerID, expires)
				}
			}
			return res, func() { v.cache.Set(&key, tags, stamp, fresh, stale, res) }
		}
	case Kick:
		if res.Scoped {
			// About this request's key alone (an age gate's answer for
			// one minimum age): nothing else is purged. Cached when the
			// provider says so.
			if fresh := v.kickLife(res); res.CacheKick && fresh > 0 {
				key, tags, stamp := st.key, cache.Tags{Player: res.PlayerID, Token: st.token}, st.stamp
				return res, func() { v.cache.Set(&key, tags, stamp, fresh, 0, res) }
			}
			return res, nil
		}
		v.kicked(pv, st, res, sourceValidation)
	}
	return res, nil
}

// kicked applies an authoritative (not Scoped) kick of pv for st: this
// key's entry goes, and so does every cached allow of the token (under
// any claim and platform) and of the player the verdict is about
// (Result.Named: never a claim alone, which anyone can make), here and
// across the fleet; and the named player's live sessions of pv end, a
// kick event each, source saying what asked (a connect's validation or a
// revalidation). A player_mismatch is about the claim only: the token
// and its player are fine.
func (v *Validator) kicked(pv *provider, st *reqState, res *Result, source string) {
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
	var note *FleetKick
	if res.Named != "" {
		redirect, lockToken := lockoutOf(res)
		now := v.cfg.Now()
		v.kickSessions(res.Named, pv.spec.Name, res.Reason.String(), source, redirect, lockToken, now)
		note = &FleetKick{Provider: pv.spec.Name, Reason: res.Reason.String(), RedirectURI: redirect, Token: lockToken, At: now}
	}
	if v.fleet != nil {
		v.fleet.Kick(FleetPurge{Player: res.Named, Token: token, HasToken: res.Reason != ReasonPlayerMismatch, Kick: note})
	}
	if v.cfg.NegativeTTL > 0 && res.Reason == ReasonInvalidToken {
		k := st.kb.TokenKey(pv.platform(&st.req), st.req.Token)
		v.cache.Set(&k, cache.Tags{Token: token}, v.cache.Stamp(), v.cfg.NegativeTTL, 0, res)
	}
	if res.Err != nil {
		v.log.Warn("upstream kick's body dropped", "provider", pv.name(), "player", res.PlayerID, "platform", string(st.req.Platform),
			"reason", res.Reason.String(), "upstream_status", res.Status, "error", res.Err.Error())
	}
}

// shared is the allow another sidecar shared (b, fresh until expires),
// cached here for what remains of its life; nil if there is none or it
// does not decode.
func (v *Validator) shared(pv *provider, st *reqState, b []byte, expires time.Time) *Result {
	if b == nil {
		return nil
	}
	res, stale, err := decodeShared(pv, b)
	if err != nil || st.req.PlayerID != nil && res.PlayerID != string(st.req.PlayerID) {
		v.fleet.Ignored()
		return nil
	}
	res.fleet = true
	if res.MaxAge > 0 {
		// When the sharing sidecar had it is not in the frame: now is a
		// bound that errs late by the value's age (at most the cache TTL).
		res.fetched = uint32(v.cfg.Now().Unix())
	}
	if fresh := expires.Sub(v.cfg.Now()); fresh > 0 {
		// With the stamp taken before Look: a kick that lands here since
		// refuses it; one before Look made the fleet refuse the value.
		v.cache.Set(&st.key, cache.Tags{Player: res.PlayerID, Token: st.token}, st.stamp, fresh, stale, res)
	}
	return res
}

// kickLife is how long a cacheable kick is cached: the cache TTL, bounded
// by the Result's MaxAge.
func (v *Validator) kickLife(res *Result) time.Duration {
	fresh := v.cfg.CacheTTL
	if res.MaxAge != 0 {
		fresh = min(fresh, time.Duration(max(res.MaxAge, 0))*time.Second)
	}
	return fresh
}

// call makes one upstream call within a concurrency slot. Its error is
// what the breaker counts: errUpstreamFailure for failures, excluded errors
// for our own rejected request and for saturation, nil otherwise.
func (v *Validator) call(pv *provider, st *reqState) (*Result, error) {
	select {
	case pv.slots <- struct{}{}:
	default:
		t := time.NewTimer(pv.spec.Timeout)
		select {
		case pv.slots <- struct{}{}:
			t.Stop()
		case <-t.C:
			pv.m.UpstreamRejected.Inc()
			res := failed(ReasonUpstreamUnavailable, errSaturated, string(st.req.PlayerID))
			v.log.Warn("upstream failure", "provider", pv.name(), "player", res.PlayerID, "platform", string(st.req.Platform),
				"reason", res.Reason.String(), "upstream_status", 0, "error", errSaturated.Error())
			return res, errSaturated
		}
	}
	// Stamped once the call can start: a purge while this waited for a
	// slot is older than what the upstream is about to say.
	st.stamp = v.cache.Stamp()
	pv.m.UpstreamInFlight.Inc()
	start := time.Now()
	res := pv.p.Call(&st.req)
	took := time.Since(start)
	if res.MaxAge > 0 {
		// Built for this call and not shared yet: the engine finishes it.
		res.fetched = uint32(v.cfg.Now().Unix())
	}
	pv.m.UpstreamInFlight.Dec()
	<-pv.slots

	switch {
	case res.Status != 0:
		pv.m.UpstreamRequests[metrics.UpstreamOutcome(res.Status)].Inc()
		pv.m.UpstreamSeconds.Observe(took.Seconds())
	case res.Err != nil:
		outcome := "connection_error"
		switch {
		case errors.Is(res.Err, errTimeout):
			outcome = "timeout"
		case errors.Is(res.Err, errOutOfStep):
			outcome = "protocol_error"
		}
		pv.m.UpstreamRequests[outcome].Inc()
	}
	switch {
	case res.Failure:
		return res, errUpstreamFailure
	case res.Verdict == Unavailable:
		return res, errUpstreamRejected
	}
	return res, nil
}

// Settle waits until the cache writes of the answers already sent are
// done (an allow is cached just after it is answered): what a test that
// looks next, or a shutdown, waits for.
func (v *Validator) Settle() { v.flights.wait() }

// BreakerFailures is how many failures the named provider's breaker has
// counted since it last changed state (0 for an unknown provider).
func (v *Validator) BreakerFailures(provider string) uint32 {
	if pv := v.byName(provider); pv != nil {
		return pv.breaker.Counts().TotalFailures
	}
	return 0
}

// byName is the configured provider named name, or nil.
func (v *Validator) byName(name string) *provider {
	for _, pv := range v.providers {
		if pv.spec.Name == name {
			return pv
		}
	}
	return nil
}

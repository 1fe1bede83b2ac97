// Package metrics defines playerguard's Prometheus metrics on an injected
// prometheus.Registerer. Every name is prefixed playerguard_, and every label
// value comes from a closed set chosen by the caller at start-up: never a
// token, a player id or free text.
//
// The hot path should resolve its label children once (WithLabelValues at
// start-up) and keep them; nothing here allocates per observation. Values
// that already live elsewhere (cache sizes, breaker state) are read at scrape
// time through functions, not copied on every request.
//
// A *Metrics is safe for concurrent use.
package metrics

import (
	"runtime"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

const namespace = "playerguard"

// Label names.
const (
	LabelProvider = "provider"
	LabelDecision = "decision"
	LabelReason   = "reason"
	LabelSource   = "source"
	LabelOutcome  = "outcome"
	LabelTo       = "to"
)

// Metrics holds the collectors the validator updates directly.
type Metrics struct {
	// Every metric about an upstream or a decision has a provider label
	// ("kakao-games", "kakao-login", ...) first.

	// Validations counts answered validations by provider, decision,
	// reason, source.
	// Striped: every request updates it (striped.go).
	Validations *CounterVec
	// ValidationSeconds is the time from request read to response written,
	// as the game server sees it, by provider and source. Striped, like
	// Validations.
	ValidationSeconds *HistogramVec
	// BadRequests counts requests refused with a 4xx before any lookup.
	BadRequests prometheus.Counter

	// UpstreamRequests counts calls to a provider's API by outcome: the
	// status class ("2xx", "3xx", "4xx", "5xx", "other" for a status outside
	// 200-599), or "timeout", "connection_error" or "protocol_error" (a
	// response out of step with the request: an unexpected 1xx or 101,
	// bytes after the response).
	UpstreamRequests *prometheus.CounterVec
	// UpstreamSeconds is the latency of upstream calls that got a response.
	UpstreamSeconds *prometheus.HistogramVec
	// UpstreamInFlight is the number of upstream calls under way.
	UpstreamInFlight *prometheus.GaugeVec
	// UpstreamRejected counts upstream calls not made because the
	// concurrency cap was reached.
	UpstreamRejected *prometheus.CounterVec

	// CacheMisses counts lookups that had to ask the upstream (or the
	// outage policy); StaleServes degraded allows answered from an expired
	// entry. (playerguard_cache_hits_total is not updated by anyone: it is
	// the sum of Validations{source="cache"}, read at scrape time.)
	CacheMisses *prometheus.CounterVec
	StaleServes *prometheus.CounterVec

	// Coalesced counts validations that shared another's upstream call
	// instead of making their own.
	Coalesced *prometheus.CounterVec

	// BreakerTransitions counts breaker state changes by provider and the
	// new state.
	BreakerTransitions *prometheus.CounterVec

	reg prometheus.Registerer
}

// Breaker states as the playerguard_breaker_state gauge reports them.
const (
	BreakerClosed   = 0
	BreakerHalfOpen = 1
	BreakerOpen     = 2
)

// New creates the metrics and registers them, the build info, and the Go and
// process collectors on reg. It panics if reg already has any of them, like
// prometheus.MustRegister: that is a wiring bug, not a runtime condition.
func New(reg prometheus.Registerer, version string) *Metrics {
	m := &Metrics{
		reg: reg,
		Validations: NewCounterVec("validations_total",
			"Validations answered, by provider, decision (allow, kick, unavailable), reason and source (upstream, cache, stale, policy).",
			LabelProvider, LabelDecision, LabelReason, LabelSource),
		ValidationSeconds: NewHistogramVec("validation_duration_seconds",
			"Time to answer a validation as the game server sees it, by provider and source.",
			[]float64{.00005, .0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
			LabelProvider, LabelSource),
		BadRequests: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: namespace,
			Name:      "bad_requests_total",
			Help:      "Validation requests refused as malformed (4xx) before any lookup.",
		}),
		UpstreamRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace,
			Name:      "upstream_requests_total",
			Help:      "Calls to a provider's API, by provider and outcome (2xx, 3xx, 4xx, 5xx, other status, timeout, connection_error, protocol_error).",
		}, []string{LabelProvider, LabelOutcome}),
		UpstreamSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace,
			Name:      "upstream_request_duration_seconds",
			Help:      "Latency of calls to a provider's API that got a response, by provider.",
			Buckets:   []float64{.005, .01, .02, .03, .05, .075, .1, .15, .25, .5, 1, 2, 5},
		}, []string{LabelProvider}),
		UpstreamInFlight: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: namespace,
			Name:      "upstream_in_flight_requests",
			Help:      "Calls to a provider's API under way, by provider.",
		}, []string{LabelProvider}),
		UpstreamRejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace,
			Name:      "upstream_saturated_total",
			Help:      "Upstream calls not made because the provider's concurrent upstream call cap was reached, by provider.",
		}, []string{LabelProvider}),
		CacheMisses: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace,
			Name:      "cache_misses_total",
			Help:      "Validations with no fresh cache entry, by provider.",
		}, []string{LabelProvider}),
		StaleServes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace,
			Name:      "cache_stale_serves_total",
			Help:      "Degraded allows served from an expired entry while the upstream was failing, by provider.",
		}, []string{LabelProvider}),
		Coalesced: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace,
			Name:      "coalesced_requests_total",
			Help:      "Validations that shared another validation's upstream call, by provider.",
		}, []string{LabelProvider}),
		BreakerTransitions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace,
			Name:      "breaker_transitions_total",
			Help:      "Circuit breaker state changes, by provider and the state entered (closed, half_open, open).",
		}, []string{LabelProvider, LabelTo}),
	}
	hits := &hitsCollector{v: m.Validations}
	buildInfo := prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace:   namespace,
		Name:        "build_info",
		Help:        "A metric with a constant '1' value labeled by the version and Go version playerguard was built with.",
		ConstLabels: prometheus.Labels{"version": version, "goversion": runtime.Version()},
	})
	buildInfo.Set(1)
	reg.MustRegister(
		m.Validations, m.ValidationSeconds, m.BadRequests,
		m.UpstreamRequests, m.UpstreamSeconds, m.UpstreamInFlight, m.UpstreamRejected,
		hits, m.CacheMisses, m.StaleServes, m.Coalesced,
		m.BreakerTransitions, buildInfo,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return m
}

// UpstreamOutcomes are the outcome label values of
// playerguard_upstream_requests_total: the status classes UpstreamOutcome
// gives, and the failures without a status.
var UpstreamOutcomes = []string{"2xx", "3xx", "4xx", "5xx", "other", "timeout", "connection_error", "protocol_error"}

// BreakerStates are the to label values of
// playerguard_breaker_transitions_total.
var BreakerStates = []string{"closed", "half_open", "open"}

// ProviderMetrics are one provider's series of the upstream and the cache,
// resolved once (the hot path does no label lookups). Its maps are read
// only.
type ProviderMetrics struct {
	UpstreamRequests   map[string]prometheus.Counter // by outcome, UpstreamOutcomes
	UpstreamSeconds    prometheus.Observer
	UpstreamInFlight   prometheus.Gauge
	UpstreamRejected   prometheus.Counter
	CacheMisses        prometheus.Counter
	StaleServes        prometheus.Counter
	Coalesced          prometheus.Counter
	BreakerTransitions map[string]prometheus.Counter // by the state entered, BreakerStates
}

// Provider creates every series of provider that can occur, so that
// dashboards and alerts see zeros instead of gaps, and returns them: the
// upstream outcomes, the cache's, the breaker's transitions and its state
// (read at scrape time from state: 0 closed, 1 half-open, 2 open; read
// lazily, the gauge leaves "open" when the breaker's timeout passes even
// if no request arrives to notice). The validation series are the
// caller's to create (it knows the reasons).
func (m *Metrics) Provider(provider string, state func() float64) *ProviderMetrics {
	pm := &ProviderMetrics{
		UpstreamRequests:   map[string]prometheus.Counter{},
		UpstreamSeconds:    m.UpstreamSeconds.WithLabelValues(provider),
		UpstreamInFlight:   m.UpstreamInFlight.WithLabelValues(provider),
		UpstreamRejected:   m.UpstreamRejected.WithLabelValues(provider),
		CacheMisses:        m.CacheMisses.WithLabelValues(provider),
		StaleServes:        m.StaleServes.WithLabelValues(provider),
		Coalesced:          m.Coalesced.WithLabelValues(provider),
		BreakerTransitions: map[string]prometheus.Counter{},
	}
	for _, o := range UpstreamOutcomes {
		pm.UpstreamRequests[o] = m.UpstreamRequests.WithLabelValues(provider, o)
	}
	for _, to := range BreakerStates {
		pm.BreakerTransitions[to] = m.BreakerTransitions.WithLabelValues(provider, to)
	}
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace:   namespace,
		Name:        "breaker_state",
		Help:        "Upstream circuit breaker state, by provider: 0 closed, 1 half-open, 2 open.",
		ConstLabels: prometheus.Labels{LabelProvider: provider},
	}, state))
	return pm
}

// hitsCollector is playerguard_cache_hits_total: the validations answered
// from a fresh entry, by provider, summed at scrape time.
type hitsCollector struct{ v *CounterVec }

var descHits = prometheus.NewDesc(namespace+"_cache_hits_total", "Validations answered from a fresh cache entry, by provider.", []string{LabelProvider}, nil)

func (c *hitsCollector) Describe(ch chan<- *prometheus.Desc) { ch <- descHits }

func (c *hitsCollector) Collect(ch chan<- prometheus.Metric) {
	sums := c.v.sumBy(LabelProvider, LabelSource, "cache")
	for _, p := range sums.order {
		ch <- prometheus.MustNewConstMetric(descHits, prometheus.CounterValue, float64(sums.n[p]), p)
	}
}

// UpstreamOutcome returns the outcome label for an HTTP status: 2xx, 3xx,
// 4xx, 5xx, or "other" for any status outside 200-599 (a final 1xx, 6xx
// and beyond), which is no server error but no HTTP answer either.
func UpstreamOutcome(status int) string {
	switch {
	case status >= 200 && status < 300:
		return "2xx"
	case status >= 300 && status < 400:
		return "3xx"
	case status >= 400 && status < 500:
		return "4xx"
	case status >= 500 && status < 600:
		return "5xx"
	}
	return "other"
}

// CacheStats is what the cache reports at scrape time.
type CacheStats struct {
	Entries    uint64 // entries held now
	MaxEntries uint64 // the configured bound
	Evictions  uint64 // total entries evicted to make room
	Rejections uint64 // total Sets refused by the admission policy
	Dropped    uint64 // total Sets dropped under contention
	Purges     uint64 // total purges of a player or a token
	Tombstones uint64 // purge-table buckets holding a purge (of 65,536)
}

// CacheStatsFunc exposes the cache's own counters, read at scrape time.
func (m *Metrics) CacheStatsFunc(stats func() CacheStats) {
	m.reg.MustRegister(&cacheCollector{stats: stats})
}

type cacheCollector struct {
	stats func() CacheStats
}

var (
	descEntries    = prometheus.NewDesc(namespace+"_cache_entries", "Entries held in the decision cache, including stale and expired ones not yet evicted.", nil, nil)
	descMaxEntries = prometheus.NewDesc(namespace+"_cache_max_entries", "The configured bound on cache entries.", nil, nil)
	descEvictions  = prometheus.NewDesc(namespace+"_cache_evictions_total", "Cache entries evicted to make room or after their stale window passed.", nil, nil)
	descRejections = prometheus.NewDesc(namespace+"_cache_rejections_total", "Cache writes refused by the admission policy.", nil, nil)
	descDropped    = prometheus.NewDesc(namespace+"_cache_dropped_sets_total", "Cache writes dropped under contention.", nil, nil)
	descPurges     = prometheus.NewDesc(namespace+"_cache_purges_total", "Purges of a player or of a token: on a kick (its token, and the player the verdict names), or by /admin/purge.", nil, nil)
	descTombstones = prometheus.NewDesc(namespace+"_cache_tombstones", "Buckets of the purge table (65,536) holding a purge: what refuses cache writes of answers fetched before a purge of their player, token or key.", nil, nil)
)

func (c *cacheCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descEntries, descMaxEntries, descEvictions, descRejections, descDropped, descPurges, descTombstones} {
		ch <- d
	}
}

func (c *cacheCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.stats()
	ch <- prometheus.MustNewConstMetric(descEntries, prometheus.GaugeValue, float64(s.Entries))
	ch <- prometheus.MustNewConstMetric(descMaxEntries, prometheus.GaugeValue, float64(s.MaxEntries))
	ch <- prometheus.MustNewConstMetric(descEvictions, prometheus.CounterValue, float64(s.Evictions))
	ch <- prometheus.MustNewConstMetric(descRejections, prometheus.CounterValue, float64(s.Rejections))
	ch <- prometheus.MustNewConstMetric(descDropped, prometheus.CounterValue, float64(s.Dropped))
	ch <- prometheus.MustNewConstMetric(descPurges, prometheus.CounterValue, float64(s.Purges))
	ch <- prometheus.MustNewConstMetric(descTombstones, prometheus.GaugeValue, float64(s.Tombstones))
}

// KeyFetchOutcomes are the outcome label values of
// playerguard_key_fetches_total: "ok", a status other than 200
// ("bad_status"), "timeout", "connection_error", a body that is not a key
// set or is over the cap ("unreadable"), and a key set without one usable
// key ("no_usable_keys").
var KeyFetchOutcomes = []string{"ok", "bad_status", "timeout", "connection_error", "unreadable", "no_usable_keys"}

// KeySetMetrics are the series of a provider that verifies tokens itself
// against a published key set (Kakao OIDC), resolved once.
type KeySetMetrics struct {
	Fetches map[string]prometheus.Counter // by outcome, KeyFetchOutcomes
	// KeysRefused counts keys left out of fetched sets (not RSA, malformed,
	// too short, no kid).
	KeysRefused prometheus.Counter
	// RefreshesSkipped counts tokens with an unknown key id that found
	// the refresh limit spent: answered without a fetch.
	RefreshesSkipped prometheus.Counter
}

// KeySetGauges are read at scrape time.
type KeySetGauges struct {
	// Keys is the number of keys held; Age the seconds since the held set
	// was fetched (since start-up while none has been); Refresh the
	// configured refresh interval, for alerts on Age.
	Keys, Age func() float64
	Refresh   float64
}

// KeySet creates provider's key set series (zeros from the start) and
// returns those the provider updates.
func (m *Metrics) KeySet(provider string, g KeySetGauges) *KeySetMetrics {
	fetches := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace:   namespace,
		Name:        "key_fetches_total",
		Help:        "Fetches of the provider's public key set, by outcome (ok, bad_status, timeout, connection_error, unreadable, no_usable_keys).",
		ConstLabels: prometheus.Labels{LabelProvider: provider},
	}, []string{LabelOutcome})
	km := &KeySetMetrics{
		Fetches: map[string]prometheus.Counter{},
		KeysRefused: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace:   namespace,
			Name:        "keys_refused_total",
			Help:        "Keys left out of fetched key sets as unusable (not RSA, malformed, under 2048 bits, no kid), by provider; each is logged.",
			ConstLabels: prometheus.Labels{LabelProvider: provider},
		}),
		RefreshesSkipped: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace:   namespace,
			Name:        "key_refreshes_skipped_total",
			Help:        "Tokens with an unknown key id answered without a key fetch because the refresh limit (-kakao-oidc-jwks-min-interval) was spent, by provider.",
			ConstLabels: prometheus.Labels{LabelProvider: provider},
		}),
	}
	for _, o := range KeyFetchOutcomes {
		km.Fetches[o] = fetches.WithLabelValues(o)
	}
	refresh := prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: namespace, Name: "key_set_refresh_interval_seconds",
		Help:        "The configured key set refresh interval, by provider (alerts compare the age with it).",
		ConstLabels: prometheus.Labels{LabelProvider: provider},
	})
	refresh.Set(g.Refresh)
	m.reg.MustRegister(fetches, km.KeysRefused, km.RefreshesSkipped, refresh,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: namespace, Name: "keys",
			Help:        "Public keys held to verify tokens with, by provider.",
			ConstLabels: prometheus.Labels{LabelProvider: provider},
		}, g.Keys),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: namespace, Name: "key_set_age_seconds",
			Help:        "Seconds since the held key set was fetched (since start-up while none has been), by provider.",
			ConstLabels: prometheus.Labels{LabelProvider: provider},
		}, g.Age),
	)
	return km
}

// TokenRefreshOutcomes are the outcome label values of
// playerguard_token_refreshes_total: "ok", or "error" (no response, a
// status other than 200, or an answer without a token).
var TokenRefreshOutcomes = []string{"ok", "error", "shared"}

// TokenRefreshes returns provider's counters of its upstream access token
// refreshes (i'mport's getToken), by outcome, created at zero.
func (m *Metrics) TokenRefreshes(provider string) map[string]prometheus.Counter {
	v := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace:   namespace,
		Name:        "token_refreshes_total",
		Help:        "Refreshes of the provider's own upstream access token, by provider and outcome (ok, error, shared: another sidecar's token taken from the fleet tier, no call).",
		ConstLabels: prometheus.Labels{LabelProvider: provider},
	}, []string{LabelOutcome})
	m.reg.MustRegister(v)
	out := map[string]prometheus.Counter{}
	for _, o := range TokenRefreshOutcomes {
		out[o] = v.WithLabelValues(o)
	}
	return out
}

// OTP returns provider's counters of its SMS one-time code endpoints,
// playerguard_otp_total{provider,step,outcome}, by step ("request",
// "confirm") and outcome, created at zero.
func (m *Metrics) OTP(provider string, requestOutcomes, confirmOutcomes []string) (requests, confirms map[string]prometheus.Counter) {
	v := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace:   namespace,
		Name:        "otp_total",
		Help:        "SMS one-time code requests and confirmations of the age gate, by provider, step (request, confirm) and outcome (request: sent, limited, rejected, failed, bad_request; confirm: the age gate's reason, unavailable, bad_request).",
		ConstLabels: prometheus.Labels{LabelProvider: provider},
	}, []string{"step", LabelOutcome})
	m.reg.MustRegister(v)
	requests, confirms = map[string]prometheus.Counter{}, map[string]prometheus.Counter{}
	for _, o := range requestOutcomes {
		requests[o] = v.WithLabelValues("request", o)
	}
	for _, o := range confirmOutcomes {
		confirms[o] = v.WithLabelValues("confirm", o)
	}
	return requests, confirms
}

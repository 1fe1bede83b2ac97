package fleet

import "github.com/prometheus/client_golang/prometheus"

// tierMetrics are the fleet tier's series (see docs in the README's ops
// section and deploy/prometheus/alerts.yml).
type tierMetrics struct {
	ops           *prometheus.CounterVec
	seconds       *prometheus.HistogramVec
	connected     prometheus.Gauge
	invalidations *prometheus.CounterVec
	ignored       *prometheus.CounterVec
	saved         *prometheus.CounterVec
	flushes       prometheus.Counter
	pending       prometheus.Gauge
	kicksDropped  prometheus.Counter
}

// Operation and outcome labels, created up front so dashboards see zeros.
var (
	opNames      = []string{"look", "wait", "store", "release", "kick", "state", "connect"}
	outcomeNames = []string{"ok", "error", "timeout", "skipped"}
	ignoredNames = []string{"forged", "malformed", "too_large", "expired", "kicked", "undecodable", "kick_forged", "kick_malformed"}
)

func newTierMetrics(reg prometheus.Registerer) *tierMetrics {
	m := &tierMetrics{
		ops: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "playerguard_redis_operations_total",
			Help: "Redis round trips of the fleet tier by operation (look: a local miss's read and lock; wait: a poll for another sidecar's call; store: an allow shared; release: a lock let go; kick: markers set and published; state: a provider's shared state, the i'mport token and imp_uid bindings; connect) and outcome (ok, error, timeout, skipped: not asked, local-only or out of budget).",
		}, []string{"op", "outcome"}),
		seconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "playerguard_redis_operation_seconds",
			Help:    "Latency of the fleet tier's Redis round trips by operation.",
			Buckets: []float64{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25},
		}, []string{"op"}),
		connected: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "playerguard_redis_connected",
			Help: "1 while the sidecar is in the fleet (subscribed to kicks, Redis breaker closed), 0 while it runs local-only.",
		}),
		invalidations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "playerguard_fleet_invalidations_total",
			Help: "Kicks and purges received from other sidecars, by what they drop (player, token, key).",
		}, []string{"kind"}),
		ignored: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "playerguard_fleet_values_ignored_total",
			Help: "Shared values and kick messages ignored, by why: forged (HMAC fails, or copied under another key), malformed, too_large, expired, kicked (looked up before a kick of its player or token), undecodable, kick_forged, kick_malformed.",
		}, []string{"why"}),
		saved: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "playerguard_fleet_upstream_calls_saved_total",
			Help: "Upstream calls the fleet tier saved: shared (an allow another sidecar shared, found on a local miss), waited (another sidecar's call under way, waited for).",
		}, []string{"how"}),
		flushes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "playerguard_fleet_flushes_total",
			Help: "Times every local entry was dropped because the kick subscription had been lost (kicks may have been missed) and was back.",
		}),
		pending: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "playerguard_fleet_kicks_pending",
			Help: "Kicks and purges not yet published (Redis unreachable), sent when it is back.",
		}),
		kicksDropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "playerguard_fleet_kicks_dropped_total",
			Help: "Kicks and purges never published: more were pending than the 10,000 kept.",
		}),
	}
	for _, op := range opNames {
		m.seconds.WithLabelValues(op)
		for _, o := range outcomeNames {
			m.ops.WithLabelValues(op, o)
		}
	}
	for _, k := range []string{"player", "token", "key"} {
		m.invalidations.WithLabelValues(k)
	}
	for _, w := range ignoredNames {
		m.ignored.WithLabelValues(w)
	}
	for _, h := range []string{"shared", "waited"} {
		m.saved.WithLabelValues(h)
	}
	if reg != nil {
		reg.MustRegister(m.ops, m.seconds, m.connected, m.invalidations, m.ignored, m.saved, m.flushes, m.pending, m.kicksDropped)
	}
	return m
}

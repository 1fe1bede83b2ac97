package metrics

import "github.com/prometheus/client_golang/prometheus"

// Label values of the live sessions' series, created at zero.
var (
	// RevalidationOutcomes: keep (an allow), kick, unknown (no verdict:
	// outage, breaker open, maintenance; the session stays).
	RevalidationOutcomes = []string{"keep", "kick", "unknown"}
	// KickEventSources: a revalidation, another validation on this
	// sidecar, a kick from another sidecar through the fleet tier, an
	// operator's /admin/kick.
	KickEventSources = []string{"revalidation", "validation", "fleet", "admin"}
	// SessionRefusals: the -max-sessions bound, a sessionId held by
	// another player, an allow naming no player (the open outage policy
	// for a request without playerId: answered, not registered), an allow
	// whose credential is about to expire (the provider said do not cache
	// it: answered, not registered).
	SessionRefusals = []string{"full", "other_player", "no_player", "expiring"}
	// WebhookOutcomes: each delivery attempt's (status_3xx...: the
	// receiver's answer was not a 2xx).
	WebhookOutcomes = []string{"ok", "error", "timeout", "status_1xx", "status_3xx", "status_4xx", "status_5xx", "status_other"}
)

// SessionMetrics are the live sessions' series (issue 16), resolved once.
type SessionMetrics struct {
	Refused        map[string]prometheus.Counter // by SessionRefusals
	Revalidations  *prometheus.CounterVec        // provider, outcome
	KickEvents     map[string]prometheus.Counter // by KickEventSources
	Webhook        map[string]prometheus.Counter // by WebhookOutcomes
	WebhookDelay   prometheus.Observer
	WebhookDropped prometheus.Counter
	SSEClients     prometheus.Gauge
}

// SessionGauges are read at scrape time.
type SessionGauges struct {
	// Live counts the sessions held per provider; every provider named
	// in Providers gets a series, zero when it has none.
	Live      func() map[string]int
	Providers []string
	// WebhookQueue is the events waiting for delivery (nil: no webhook).
	WebhookQueue func() float64
	// Behind is how late the most overdue revalidation is, in seconds
	// (nil: revalidation off).
	Behind func() float64
}

// Sessions creates the live sessions' series and returns those updated
// as things happen.
func (m *Metrics) Sessions(g SessionGauges) *SessionMetrics {
	refused := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Name: "sessions_refused_total",
		Help: "Sessions not registered on an allow, by reason: full (-max-sessions, answered 503), other_player (the sessionId is another player's, answered 400), no_player (an allow by the open outage policy naming no player: answered, not registered), expiring (an allow of a credential about to expire: answered, not registered).",
	}, []string{LabelReason})
	reval := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Name: "revalidations_total",
		Help: "Live sessions validated again with the upstream (cache bypassed), by provider and outcome: keep (an allow), kick (the session's player was kicked), unknown (no verdict: outage, breaker open, maintenance; the session stays).",
	}, []string{LabelProvider, LabelOutcome})
	kicks := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Name: "kick_events_total",
		Help: "Kick events emitted to the game server (one per session ended), by source: revalidation, validation (another connect of the player was kicked), fleet (a kick from another sidecar), admin (/admin/kick).",
	}, []string{LabelSource})
	hook := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Name: "webhook_deliveries_total",
		Help: "Attempts to POST a kick event to -events-webhook, by outcome: ok (2xx), error (no connection, or it dropped), timeout (-events-webhook-timeout), status_Nxx (any other answer). Each failure is retried with backoff.",
	}, []string{LabelOutcome})
	delay := prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: namespace, Name: "webhook_delivery_delay_seconds",
		Help:    "Time from a kick event to its acknowledgement by -events-webhook, retries included.",
		Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300},
	})
	dropped := prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: namespace, Name: "webhook_events_dropped_total",
		Help: "Kick events dropped undelivered because the webhook's queue (10,000) was full: the receiver has been failing for long. GET /v1/events with Last-Event-ID still has those among the last -events-buffer events.",
	})
	clients := prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: namespace, Name: "sse_clients",
		Help: "Clients connected to the GET /v1/events stream.",
	})
	m.reg.MustRegister(refused, reval, kicks, hook, delay, dropped, clients, &sessionsCollector{g: g})
	sm := &SessionMetrics{
		Refused: map[string]prometheus.Counter{}, Revalidations: reval, KickEvents: map[string]prometheus.Counter{},
		Webhook: map[string]prometheus.Counter{}, WebhookDelay: delay, WebhookDropped: dropped, SSEClients: clients,
	}
	for _, r := range SessionRefusals {
		sm.Refused[r] = refused.WithLabelValues(r)
	}
	for _, p := range g.Providers {
		for _, o := range RevalidationOutcomes {
			reval.WithLabelValues(p, o)
		}
	}
	for _, s := range KickEventSources {
		sm.KickEvents[s] = kicks.WithLabelValues(s)
	}
	for _, o := range WebhookOutcomes {
		sm.Webhook[o] = hook.WithLabelValues(o)
	}
	return sm
}

var (
	descSessions     = prometheus.NewDesc(namespace+"_sessions", "Live sessions (connected players watched), by provider.", []string{LabelProvider}, nil)
	descWebhookQueue = prometheus.NewDesc(namespace+"_webhook_queue", "Kick events waiting for delivery to -events-webhook.", nil, nil)
	descBehind       = prometheus.NewDesc(namespace+"_revalidation_behind_seconds", "How late the most overdue revalidation of a live session is (0: every session is asked within its round). Growing: -revalidate-max-rps (or the upstream) cannot keep up with -revalidate-every over this many sessions.", nil, nil)
)

type sessionsCollector struct{ g SessionGauges }

func (c *sessionsCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descSessions
	ch <- descWebhookQueue
	ch <- descBehind
}

func (c *sessionsCollector) Collect(ch chan<- prometheus.Metric) {
	live := c.g.Live()
	for _, p := range c.g.Providers {
		ch <- prometheus.MustNewConstMetric(descSessions, prometheus.GaugeValue, float64(live[p]), p)
	}
	if c.g.WebhookQueue != nil {
		ch <- prometheus.MustNewConstMetric(descWebhookQueue, prometheus.GaugeValue, c.g.WebhookQueue())
	}
	if c.g.Behind != nil {
		ch <- prometheus.MustNewConstMetric(descBehind, prometheus.GaugeValue, c.g.Behind())
	}
}

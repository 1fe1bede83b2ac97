package validator

import (
	"sync/atomic"
	"time"

	"github.com/sony/gobreaker/v2"
	"github.com/valyala/fasthttp"

	"playerguard/metrics"
)

// Provider is one upstream the engine asks for verdicts: Kakao Games,
// Kakao Login, ... It says what a request to it looks like, how to make
// (or, for a token verified locally, spare) one call, and how the answer
// becomes a Result. Everything around the call is the engine's: decoding,
// the cache, coalescing, call slots, the breaker, the outage policy,
// purges, metrics and audit lines. A Provider is safe for concurrent use.
type Provider interface {
	// Spec describes the provider; the engine reads it once, in New.
	Spec() Spec
	// Check reports a problem with a decoded request as a
	// *RequestError; nil means it may be asked about. The engine has
	// checked nothing yet: Check must call r.CheckToken (or check the
	// token as strictly itself).
	Check(r *Request) error
	// Call asks the upstream about r (a checked request; its PlayerID is
	// the claim, empty when none) and decides. It never returns nil and
	// never panics on any answer. A Result with Failure set is an
	// upstream failure (the breaker counts it); one that is Unavailable
	// without Failure is an answer about playerguard's own request or
	// setup (no breaker failure). The outage policy answers every
	// Unavailable result alike, but one with NoPolicy (and every one of
	// an AgeGate provider). Result.Status is the upstream's HTTP status (0
	// with Err set: no response); a Result with neither made no call.
	Call(r *Request) *Result
	// Close releases the provider's connections; no Call is under way.
	Close()
}

// Spec is what the engine needs to know of a provider.
type Spec struct {
	// Name is the provider's name: the provider label of its metrics,
	// /admin/purge's provider, its breaker's name. lower-kebab-case,
	// e.g. "kakao-games".
	Name string
	// Path is its validation endpoint, e.g. "/v1/validate"; it takes POST
	// with a JSON body or GET/POST with the fields as headers.
	Path string
	// Platform says its requests carry a platform. Without one, a
	// platform field is an unknown field and its cache keys are filed
	// under Name instead.
	Platform bool
	// StrictFields refuses unknown fields in a request body (a 400);
	// otherwise they are skipped, as /v1/validate always has.
	StrictFields bool
	// IDToken says its requests carry an idToken and an optional nonce
	// instead of an accessToken (and no platform): Request.Token and
	// Request.Nonce, both covered by the cache key.
	IDToken bool
	// AgeGate says its requests are an age gate's: a JSON body (never
	// headers) of impUid (Request.Token), playerId and minAge
	// (Request.MinAge, covered by the cache key), and that no outage
	// policy admits to it: without a verdict it answers unavailable.
	AgeGate bool
	// Timeout bounds one call; a call also waits at most this long for
	// one of MaxCalls call slots (concurrent calls, distinct keys).
	Timeout  time.Duration
	MaxCalls int
	// Fields names the raw JSON values its Results carry (Result.Raw).
	Fields *Fields
	// Kicks and Unavailable list the reasons Call can give for those
	// verdicts, so every metric series exists from the start.
	Kicks, Unavailable []Reason
}

// Readiness is implemented by a provider that cannot answer from the
// start (one that must first load keys): /readyz lists each provider's
// state, and answers 503 for ?provider=name until that one is ready.
type Readiness interface {
	// Ready reports whether the provider can decide, and if not, why
	// not, in a few words ("key set not fetched yet").
	Ready() (ok bool, why string)
}

// PurgeChecker is implemented by a provider whose /admin/purge requests
// are checked otherwise than its validations (Check): a purge of an ID
// token needs no nonce.
type PurgeChecker interface {
	CheckPurge(r *Request) error
}

// Router is implemented by a provider that serves endpoints of its own
// beside Spec.Path, read and written its own way (Kakao Games' drop-in
// stand-in for the Kakao endpoint); the engine validates in between,
// exactly as for Spec.Path.
type Router interface {
	Routes() []Route
}

// Route is one endpoint of a Router.
type Route struct {
	// Path is the endpoint's path; Usage says how to call it, for the
	// unknown-path answer (e.g. "the drop-in POST /service/v5/auth/validation").
	Path, Usage string
	// Read fills r from the request. An error is the caller's mistake,
	// answered by Refuse, as is an error of the provider's Check.
	Read func(ctx *fasthttp.RequestCtx, r *Request) error
	// Refuse answers a caller mistake.
	Refuse func(ctx *fasthttp.RequestCtx, err error)
	// Write answers a for r; the X-Playerguard-* headers are set.
	Write func(ctx *fasthttp.RequestCtx, r *Request, a *Answer)
	// Serve, instead of the three above, answers the request whole: an
	// endpoint that is not a validation (the age gate's SMS code
	// request); the engine only routes to it.
	Serve func(ctx *fasthttp.RequestCtx)
}

// Fields names the raw JSON values a provider's Results hand the caller
// in the /v1 answer: Names[0] (the player or user object) in allows and
// kicks, the others in kicks only. An allow must carry Raw(0).
type Fields struct {
	Names [numRaw]string
	// Inline: Raw(0) is not a value but object members, each after a
	// comma (`,"minAge":19,"certifiedAt":1`), written at the top level of
	// allows and kicks; Names[0] is unused. Its answers carry no
	// "upstream" object either: they are exactly the provider's.
	Inline bool
}

// numRaw is how many raw values a Result can point at.
const numRaw = 4

// provider is the engine's state for one Provider.
type provider struct {
	p    Provider
	spec Spec
	path []byte
	// ns is the platform slot of cache keys when requests carry no
	// platform: the provider's name, which no platform is.
	ns []byte
	// hitPrefix is the cache-hit allow body up to Raw(0).
	hitPrefix []byte
	// routes are the provider's own (Router).
	routes []Route
	// form is the request keys of Path.
	form form

	breaker *gobreaker.CircuitBreaker[*Result]
	// breakerState mirrors the breaker's state as of its last transition
	// (gobreaker moves from open to half-open lazily, on the next call).
	breakerState atomic.Int32
	slots        chan struct{} // upstream call slots

	// Label children resolved once: the hot path does no map lookups.
	counts  [numVerdicts][maxReasons][numSources]*metrics.Counter
	latency [numSources]*metrics.Histogram
	m       *metrics.ProviderMetrics
}

// platform is the platform slot of r's cache key.
func (pv *provider) platform(r *Request) []byte {
	if pv.spec.Platform {
		return r.Platform
	}
	return pv.ns
}

func (pv *provider) name() string { return pv.spec.Name }

// tokenKey is the request key its token is sent as.
func (pv *provider) tokenKey() int {
	switch {
	case pv.spec.IDToken:
		return reqKeyIDToken
	case pv.spec.AgeGate:
		return reqKeyImpUID
	}
	return reqKeyToken
}

// ready is the provider's Readiness, true for one without.
func (pv *provider) ready() (bool, string) {
	if r, ok := pv.p.(Readiness); ok {
		return r.Ready()
	}
	return true, ""
}

package validator

import (
	"strconv"
	"sync"
)

// Verdict is what playerguard tells the game server.
type Verdict uint8

const (
	Allow       Verdict = iota // let the player in (200)
	Kick                       // the upstream refused the player (403)
	Unavailable                // no verdict could be had (503): "try again", never "banned"
	numVerdicts
)

var verdictNames = [numVerdicts]string{"allow", "kick", "unavailable"}

func (v Verdict) String() string { return verdictNames[v] }

// Reason says why; its String is the "reason" field and metric label.
//
// The reasons below are the engine's, the vocabulary every provider
// shares; a provider adds its own with NewReason, so that every reason
// has one name and one number across metrics, headers and logs.
type Reason uint8

const (
	ReasonOK                  Reason = iota // an allow
	ReasonInvalidToken                      // the token is not (or no longer) valid
	ReasonPlayerMismatch                    // the token is another player's than claimed
	ReasonUpstreamUnavailable               // no verdict: the upstream failed
	ReasonCircuitOpen                       // no verdict: the breaker refused the call
	ReasonUpstreamMaintenance               // no verdict: the upstream is in maintenance
	numBuiltinReasons
)

// maxReasons bounds the reasons of all providers together; the tables the
// hot path indexes by Reason are this long.
const maxReasons = 64

// reasonNames[r] is r's name; each element is written once, by init or
// NewReason, before r is handed out, so reading it needs no lock.
var (
	reasonMu    sync.Mutex // NewReason
	numReasons  = int(numBuiltinReasons)
	reasonNames = [maxReasons]string{
		"ok", "invalid_token", "player_mismatch",
		"upstream_unavailable", "circuit_open", "upstream_maintenance",
	}
)

// NewReason registers a reason a provider gives and returns it; a name
// registered already returns the same Reason, so providers share the
// engine's (invalid_token, player_mismatch...). Call it at package
// initialisation (a package-level var), before any Validator is built. The
// name is a metric label value and a JSON field value: lower_snake_case,
// from a closed set, never input. It panics past maxReasons or on a name
// that is not lower_snake_case: a wiring bug.
func NewReason(name string) Reason {
	reasonMu.Lock()
	defer reasonMu.Unlock()
	for i, n := range reasonNames[:numReasons] {
		if n == name {
			return Reason(i)
		}
	}
	if numReasons == maxReasons {
		panic("validator: more than " + strconv.Itoa(maxReasons) + " reasons")
	}
	for _, c := range name {
		if (c < 'a' || c > 'z') && c != '_' {
			panic("validator: reason " + strconv.Quote(name) + " is not lower_snake_case")
		}
	}
	r := Reason(numReasons)
	reasonNames[r] = name
	reasonBytes[r] = []byte(name)
	numReasons++
	return r
}

func (r Reason) String() string { return reasonNames[r] }

// Source says where an answer came from.
type Source uint8

const (
	SourceUpstream Source = iota // this request's (possibly shared) upstream call
	SourceCache                  // a fresh cache entry
	SourceStale                  // an expired allow, served by the "stale" outage policy
	SourcePolicy                 // the "open" outage policy, with no entry at all
	numSources
)

var sourceNames = [numSources]string{"upstream", "cache", "stale", "policy"}

func (s Source) String() string { return sourceNames[s] }

// Result is the outcome of one upstream exchange, shared by every request
// that coalesced onto it and by the cache. It is immutable once built.
type Result struct {
	// The fields every cache hit reads come first: the verdict, the status
	// and the upstream's body (a /v1 hit also reads the player span below).

	Verdict Verdict
	Reason  Reason
	// Failure marks an upstream failure (the breaker counts it and the
	// outage policy applies). Unavailable results that are not failures
	// (the upstream's 400, the breaker refusing) have it false.
	Failure bool
	// NoPolicy says the outage policy must not answer this Unavailable
	// result with an allow: playerguard chose not to ask (a token signed
	// with a key it may not look up yet), so an allow by stale or open
	// would let in whoever sends such tokens.
	NoPolicy bool
	// Scoped says a kick is about this request's key alone (an age
	// gate's verdict for one minimum age): it purges nothing else.
	// CacheKick caches such a kick like an allow (for the cache TTL,
	// bounded by MaxAge).
	Scoped, CacheKick bool
	// HasCode says whether Code is set.
	HasCode bool
	// fleet marks an allow another sidecar shared (answered as a cache
	// hit: no upstream call was made for it). Beside the other flags: in
	// the padding before MaxAge, so cached Results do not grow.
	fleet bool
	// MaxAge, when positive, bounds how long an allow may be cached, in
	// seconds (a token's remaining life); negative means it must not be
	// cached at all; zero, no bound beyond the cache TTL.
	MaxAge int32
	// fetched is when an allow with a MaxAge was had (unix seconds; 0
	// when unknown), so that the credential's end, fetched + MaxAge, is
	// known to a live session registered on the cached allow later. In
	// the padding after MaxAge: cached Results do not grow.
	fetched uint32

	// Status is the upstream's HTTP status; 0 when there was no response.
	Status int
	// Body and ContentType are the upstream's response as received.
	Body        []byte
	ContentType string

	// Code is the upstream's error code (Kakao Games: the sub-code from
	// desc's trailing "(STATUS.SUBCODE)"); Desc its message to the player,
	// handed on with kicks only.
	Code int
	Desc string

	// Fields names the raw values, raw says where they sit in Body:
	// offsets, not slices, because allows live in the cache by the
	// hundred thousand (see Raw).
	Fields *Fields
	raw    [numRaw]span

	// PlayerID is the player this verdict is about: the one the request
	// claimed, else the one the upstream named ("" when neither).
	PlayerID string
	// Named is the player the upstream's answer is a verdict about, and so
	// whose cached allows a kick purges: a 200's player, a kick body's
	// player or lockout id. Never the claim alone (anyone can claim any
	// player), and "" for invalid_token and player_mismatch, which say
	// nothing about a player.
	Named string

	// Err is the transport error, or why the body was dropped, for logs;
	// nil when a whole response arrived.
	Err error
}

// failed returns the Result for a call that got no response at all.
func failed(reason Reason, err error, claimed string) *Result {
	return &Result{Verdict: Unavailable, Reason: reason, Failure: true, Err: err, PlayerID: claimed}
}

// circuitOpen is the Result when the breaker refused the call: no
// response, and not a failure of its own (the breaker counted those).
func circuitOpen(claimed string, err error) *Result {
	return &Result{Verdict: Unavailable, Reason: ReasonCircuitOpen, Err: err, PlayerID: claimed}
}

// span is a value's place in a Result's Body; the zero span is absent.
type span struct{ off, end uint32 }

func (s span) set() bool { return s.end > 0 }

// Raw returns raw value i (named by Fields.Names[i]) of Body, byte for
// byte, or nil when absent.
func (r *Result) Raw(i int) []byte {
	s := r.raw[i]
	if !s.set() {
		return nil
	}
	return r.Body[s.off:s.end:s.end]
}

// SetRaw says that raw value i is Body[off:end], a JSON value; a provider
// calls it while building the Result.
func (r *Result) SetRaw(i, off, end int) {
	r.raw[i] = span{uint32(off), uint32(end)}
}

// internContentType returns the usual content types without allocating,
// so a hundred thousand cached allows share two strings.
func internContentType(ct []byte) string {
	switch string(ct) {
	case "application/json;charset=UTF-8":
		return "application/json;charset=UTF-8"
	case "application/json":
		return "application/json"
	case "application/json; charset=utf-8":
		return "application/json; charset=utf-8"
	}
	return string(ct)
}

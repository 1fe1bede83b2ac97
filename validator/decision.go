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
// The reasons below are the engine's and Kakao Games'; another provider
// adds its own with NewReason, so that every reason has one name and one
// number across metrics, headers and logs.
type Reason uint8

const (
	ReasonOK Reason = iota
	ReasonInvalidToken
	ReasonNotAcceptable
	ReasonUnregistering
	ReasonLockout
	ReasonSanction
	ReasonAbnormalState
	ReasonPlayerMismatch
	ReasonPlayerStatus
	ReasonUpstreamUnavailable
	ReasonCircuitOpen
	ReasonUpstreamMaintenance
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
		"ok", "invalid_token", "not_acceptable", "unregistering", "lockout", "sanction",
		"abnormal_state", "player_mismatch", "player_status",
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
	// HasCode says whether Code is set.
	HasCode bool
	// MaxAge, when positive, bounds how long an allow may be cached, in
	// seconds (a token's remaining life); negative means it must not be
	// cached at all; zero, no bound beyond the cache TTL.
	MaxAge int32

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

// Decide maps one upstream answer to a Result: the decision table. status
// and body are the upstream's response (body nil when it was dropped: too
// large, or echoing playerguard's credentials); claimed is the playerId the
// request asked about ("" if none); allowStatuses lists the player.status
// values that mean good standing. Decide keeps a reference to body.
//
// Nothing that does not parse as a documented 200 can become an allow, and
// no status that stands for an outage can become a kick. Bodies are read
// strictly (parseKakaoBody): the decision is made on exactly the bytes the
// game server is handed.
//
// The 4xx rule: 401, 406 and the custom 460-479 range but 473 are Kakao's
// verdicts whatever the body, as the status line says it all; 400, 408,
// 429, 473 and the statuses about the request's shape (requestShapeStatus)
// never are. Any other 4xx is a verdict (abnormal_state) only when its
// body is a Kakao error, a desc ending in "(STATUS.SUBCODE)" with that same
// status: a 403 from a WAF or a load balancer in front of Kakao says
// nothing about the player. A 404 never is, Kakao-shaped or not: it says
// the path does not exist, the mark of a wrong -upstream.
func Decide(status int, body []byte, contentType, claimed string, allowStatuses []string) *Result {
	r := &Result{Status: status, Body: body, ContentType: contentType, PlayerID: claimed, Fields: kakaoGamesFields}
	kb, parsed := parseKakaoBody(body)
	descStatus := 0
	if parsed {
		r.raw = [numRaw]span{kb.player, kb.lockout, kb.token, kb.redirectURI}
		if kb.hasDesc {
			r.Desc = kb.desc
			descStatus, r.Code, r.HasCode = parseSubCode(r.Desc)
		}
	}

	switch {
	case status == 200:
		if !parsed || !kb.hasStatus || !kb.hasPlayerID || kb.playerID == "" {
			// A 200 we cannot read is a broken upstream, not a verdict.
			return r.unavailable(ReasonUpstreamUnavailable, true)
		}
		if r.PlayerID == "" {
			r.PlayerID = kb.playerID
		}
		switch {
		case claimed != "" && kb.playerID != claimed:
			// About the claim, not about the token's player: nobody to purge.
			return r.kick(ReasonPlayerMismatch)
		case !contains(allowStatuses, kb.status):
			r.Named = kb.playerID
			return r.kick(ReasonPlayerStatus)
		}
		r.Named = kb.playerID
		r.Verdict, r.Reason = Allow, ReasonOK
		return r
	case status == 400 || requestShapeStatus(status):
		// Our request was malformed: a bug or a misconfiguration, never
		// the player's fault. Not counted against the breaker.
		return r.unavailable(ReasonUpstreamUnavailable, false)
	case status == 408 || status == 429:
		return r.unavailable(ReasonUpstreamUnavailable, true)
	case status == 473:
		// The SDK tables document 473 as maintenance (it replaced 503).
		return r.unavailable(ReasonUpstreamMaintenance, true)
	case credentialsRefused(r):
		// Kakao refused playerguard's own app secret, admin key or app
		// id: every player gets it, and none of them is at fault. Like
		// the 400: unavailable, not a breaker failure, an error line.
		return r.unavailable(ReasonUpstreamUnavailable, false)
	case verdictStatus(status) && (parsed || len(body) == 0) ||
		status >= 400 && status < 500 && status != 404 && r.HasCode && descStatus == status:
		// (A verdict status with a readable body that is not JSON, such
		// as a proxy's "401 Authorization Required" page, is not Kakao's.)
		if parsed {
			r.Named = namedPlayer(&kb)
		}
		if r.PlayerID == "" {
			r.PlayerID = r.Named
		}
		if status == 401 {
			// "This token is invalid" says nothing about any player.
			r.Named = ""
		}
		return r.kick(kickReason(status))
	default: // 1xx, 3xx, 5xx, a 4xx without a Kakao error body, anything else
		return r.unavailable(ReasonUpstreamUnavailable, true)
	}
}

// credentialsRefused reports Kakao's answer to a request whose app
// credentials it refuses: 401 with sub-code -29001 ("App authentication
// failed").
func credentialsRefused(r *Result) bool {
	return r.Status == 401 && r.HasCode && r.Code == -29001
}

// verdictStatus reports the statuses that are Kakao's verdict about the
// token or its player whatever the body says: 401, 406 and the custom
// abnormal-state range 460-479, except 473 (maintenance).
func verdictStatus(status int) bool {
	return status == 401 || status == 406 || status >= 460 && status < 480 && status != 473
}

// foreign4xx reports a 4xx that Decide found to be nobody's verdict: not
// Kakao's own (no Kakao error body) and not one of the statuses about the
// request or the upstream's load. Its Result is a failure that an operator
// must hear of: the usual cause is a wrong -upstream.
func foreign4xx(r *Result) bool {
	s := r.Status
	return s >= 400 && s < 500 && r.Verdict == Unavailable && r.Failure &&
		s != 408 && s != 429 && s != 473
}

// requestShapeStatus reports the HTTP statuses that describe the shape of
// our request (its method, length, size, headers or media type) and so
// (407, 421, 425, 426 and 428: the connection to it) and so can never be a
// verdict about a player: a gateway answering 431 to a long token header
// must not ban the player. They are treated like 400.
func requestShapeStatus(status int) bool {
	switch status {
	case 405, 407, 411, 413, 414, 415, 421, 425, 426, 428, 431:
		return true
	}
	return false
}

// kickReason maps a kicking 4xx status to its reason.
func kickReason(status int) Reason {
	switch status {
	case 401:
		return ReasonInvalidToken
	case 406:
		return ReasonNotAcceptable
	case 462:
		return ReasonUnregistering
	case 463:
		return ReasonLockout
	case 464:
		return ReasonSanction
	}
	return ReasonAbnormalState
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

func (r *Result) kick(reason Reason) *Result {
	r.Verdict, r.Reason = Kick, reason
	return r
}

func (r *Result) unavailable(reason Reason, failure bool) *Result {
	r.Verdict, r.Reason, r.Failure = Unavailable, reason, failure
	return r
}

// namedPlayer is the player a kick's body names: its player object's
// playerId, else a lockout's id of idType playerId.
func namedPlayer(kb *kakaoBody) string {
	if kb.hasPlayerID && kb.playerID != "" {
		return kb.playerID
	}
	if kb.hasLockoutID && kb.lockoutIDType == "playerId" {
		return kb.lockoutID
	}
	return ""
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

// kakaoGamesFields are the raw values of a Kakao Games answer.
var kakaoGamesFields = &Fields{Names: [numRaw]string{"player", "lockout", "token", "redirectUri"}}

// Player, Lockout, Token and RedirectURI return the raw JSON values of
// those fields of a Kakao Games Body, byte for byte, or nil when absent
// or null.
func (r *Result) Player() []byte      { return r.Raw(0) }
func (r *Result) Lockout() []byte     { return r.Raw(1) }
func (r *Result) Token() []byte       { return r.Raw(2) }
func (r *Result) RedirectURI() []byte { return r.Raw(3) }

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

// parseSubCode reads the status and sub-code from desc's trailing
// "(STATUS.SUBCODE)", e.g. 463 and -10103 from "playerId There is a valid
// lockout. (463.-10103)". Any status and sub-code are accepted; there is
// no closed list.
func parseSubCode(desc string) (status, code int, ok bool) {
	end := len(desc)
	for end > 0 && isSpace(desc[end-1]) {
		end--
	}
	if end == 0 || desc[end-1] != ')' {
		return 0, 0, false
	}
	open := -1
	for i := end - 2; i >= 0; i-- {
		if desc[i] == '(' {
			open = i
			break
		}
	}
	if open < 0 {
		return 0, 0, false
	}
	inner := desc[open+1 : end-1]
	dot := -1
	for i := 0; i < len(inner); i++ {
		if inner[i] == '.' {
			dot = i
			break
		}
	}
	if dot <= 0 || !allDigits(inner[:dot]) {
		return 0, 0, false
	}
	code, err := strconv.Atoi(inner[dot+1:])
	if err != nil || inner[dot+1] == '+' {
		return 0, 0, false
	}
	status, err = strconv.Atoi(inner[:dot])
	if err != nil {
		return 0, 0, false
	}
	return status, code, true
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\n' }

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

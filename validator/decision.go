package validator

import (
	"bytes"
	"encoding/json"
	"strconv"
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
	numReasons
)

var reasonNames = [numReasons]string{
	"ok", "invalid_token", "not_acceptable", "unregistering", "lockout", "sanction",
	"abnormal_state", "player_mismatch", "player_status",
	"upstream_unavailable", "circuit_open", "upstream_maintenance",
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

	// Status is the upstream's HTTP status; 0 when there was no response.
	Status int
	// Body and ContentType are the upstream's response as received.
	Body        []byte
	ContentType string

	// Code is the sub-code from desc's trailing "(STATUS.SUBCODE)"; HasCode
	// says whether desc had one.
	Code    int
	HasCode bool
	Desc    string

	// Where the raw JSON values of the fields the game server needs sit in
	// Body: offsets, not slices, because allows live in the cache by the
	// hundred thousand (see Player, Lockout, Token, RedirectURI).
	player, lockout, token, redirectURI span

	// PlayerID is the player this verdict is about: the one the request
	// claimed, else the one the upstream named ("" when neither).
	PlayerID string

	// Err is the transport error, for logs; nil when there was a response.
	Err error
}

// upstreamBody is the union of the fields the Kakao Games API documents for
// its validation responses. Unknown fields are ignored.
type upstreamBody struct {
	Player      json.RawMessage `json:"player"`
	Desc        *string         `json:"desc"`
	Lockout     json.RawMessage `json:"lockout"`
	Token       json.RawMessage `json:"token"`
	RedirectURI json.RawMessage `json:"redirectUri"`
}

type upstreamPlayer struct {
	PlayerID json.RawMessage `json:"playerId"`
	Status   *string         `json:"status"`
}

type upstreamLockout struct {
	IDType string          `json:"idType"`
	ID     json.RawMessage `json:"id"`
}

// Decide maps one upstream answer to a Result: the decision table. status
// and body are the upstream's response; claimed is the playerId the request
// asked about ("" if none); allowStatuses lists the player.status values that
// mean good standing. Decide keeps a reference to body.
//
// Nothing that does not parse as a documented 200 can become an allow, and
// no status that stands for an outage can become a kick.
func Decide(status int, body []byte, contentType, claimed string, allowStatuses []string) *Result {
	r := &Result{Status: status, Body: body, ContentType: contentType, PlayerID: claimed}
	var ub upstreamBody
	parsed := len(body) > 0 && json.Unmarshal(body, &ub) == nil
	if parsed {
		r.player = spanOf(body, ub.Player)
		r.lockout = spanOf(body, ub.Lockout)
		r.token = spanOf(body, ub.Token)
		r.redirectURI = spanOf(body, ub.RedirectURI)
		if ub.Desc != nil {
			r.Desc = *ub.Desc
			r.Code, r.HasCode = parseSubCode(r.Desc)
		}
	}

	switch {
	case status == 200:
		p, ok := parsePlayer(r.Player())
		if !parsed || !ok {
			// A 200 we cannot read is a broken upstream, not a verdict.
			return r.unavailable(ReasonUpstreamUnavailable, true)
		}
		if r.PlayerID == "" {
			r.PlayerID = p.id
		}
		switch {
		case claimed != "" && p.id != claimed:
			return r.kick(ReasonPlayerMismatch)
		case !contains(allowStatuses, p.status):
			return r.kick(ReasonPlayerStatus)
		}
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
	case status >= 400 && status < 500:
		if r.PlayerID == "" {
			r.PlayerID = kickedPlayer(r)
		}
		return r.kick(kickReason(status))
	default: // 1xx, 3xx, 5xx, anything else
		return r.unavailable(ReasonUpstreamUnavailable, true)
	}
}

// requestShapeStatus reports the HTTP statuses that describe the shape of
// our request (its method, length, size, headers or media type) and so
// can never be a verdict about a player, though the table's "any other
// 4xx" would otherwise make them kicks: a gateway answering 431 to a long
// token header must not ban the player. They are treated like 400.
func requestShapeStatus(status int) bool {
	switch status {
	case 405, 411, 413, 414, 415, 431:
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

type playerFields struct{ id, status string }

// parsePlayer reads the playerId and status a 200 must carry.
func parsePlayer(raw []byte) (playerFields, bool) {
	var p upstreamPlayer
	if raw == nil || json.Unmarshal(raw, &p) != nil || p.Status == nil {
		return playerFields{}, false
	}
	id, ok := idString(p.PlayerID)
	if !ok || id == "" {
		return playerFields{}, false
	}
	return playerFields{id: id, status: *p.Status}, true
}

// kickedPlayer names the player a kick response is about: its player
// object, else a lockout of idType playerId.
func kickedPlayer(r *Result) string {
	var p upstreamPlayer
	if r.player.set() && json.Unmarshal(r.Player(), &p) == nil {
		if id, ok := idString(p.PlayerID); ok && id != "" {
			return id
		}
	}
	var l upstreamLockout
	if r.lockout.set() && json.Unmarshal(r.Lockout(), &l) == nil && l.IDType == "playerId" {
		if id, ok := idString(l.ID); ok {
			return id
		}
	}
	return ""
}

// idString reads an id documented as a string; a JSON number is accepted as
// its literal text, since player ids are numeric and some encoders say so.
func idString(raw json.RawMessage) (string, bool) {
	if len(raw) == 0 || string(raw) == "null" {
		return "", false
	}
	if raw[0] == '"' {
		var s string
		if json.Unmarshal(raw, &s) != nil {
			return "", false
		}
		return s, true
	}
	var n json.Number
	if json.Unmarshal(raw, &n) != nil {
		return "", false
	}
	return n.String(), true
}

// span is a value's place in a Result's Body; the zero span is absent.
type span struct{ off, end uint32 }

func (s span) set() bool { return s.end > 0 }

func (r *Result) raw(s span) []byte {
	if !s.set() {
		return nil
	}
	return r.Body[s.off:s.end:s.end]
}

// Player, Lockout, Token and RedirectURI return the raw JSON values of
// those fields of Body, byte for byte, or nil when absent or null.
func (r *Result) Player() []byte      { return r.raw(r.player) }
func (r *Result) Lockout() []byte     { return r.raw(r.lockout) }
func (r *Result) Token() []byte       { return r.raw(r.token) }
func (r *Result) RedirectURI() []byte { return r.raw(r.redirectURI) }

// spanOf finds raw in body. It is always there verbatim: json.RawMessage
// copies the source bytes. JSON null counts as absent.
func spanOf(body []byte, raw json.RawMessage) span {
	if len(raw) == 0 || string(raw) == "null" {
		return span{}
	}
	i := bytes.Index(body, raw)
	if i < 0 {
		return span{}
	}
	return span{uint32(i), uint32(i + len(raw))}
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

// parseSubCode reads the sub-code from desc's trailing "(STATUS.SUBCODE)",
// e.g. -10103 from "playerId There is a valid lockout. (463.-10103)". Any
// status and sub-code are accepted; there is no closed list.
func parseSubCode(desc string) (int, bool) {
	end := len(desc)
	for end > 0 && isSpace(desc[end-1]) {
		end--
	}
	if end == 0 || desc[end-1] != ')' {
		return 0, false
	}
	open := -1
	for i := end - 2; i >= 0; i-- {
		if desc[i] == '(' {
			open = i
			break
		}
	}
	if open < 0 {
		return 0, false
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
		return 0, false
	}
	code, err := strconv.Atoi(inner[dot+1:])
	if err != nil || inner[dot+1] == '+' {
		return 0, false
	}
	return code, true
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

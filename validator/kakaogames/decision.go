package kakaogames

import (
	"slices"
	"strconv"

	"playerguard/validator"
)

// The reasons Kakao Games gives beyond the engine's (ok, invalid_token,
// player_mismatch, upstream_unavailable, upstream_maintenance...).
var (
	// ReasonNotAcceptable: 406, the player is not acceptable.
	ReasonNotAcceptable = validator.NewReason("not_acceptable")
	// ReasonUnregistering: 462, the player's unregistration is pending.
	ReasonUnregistering = validator.NewReason("unregistering")
	// ReasonLockout: 463, a valid lockout (Kakao's protection flow).
	ReasonLockout = validator.NewReason("lockout")
	// ReasonSanction: 464, the player is sanctioned.
	ReasonSanction = validator.NewReason("sanction")
	// ReasonAbnormalState: another 46x/47x, or a Kakao-shaped 4xx.
	ReasonAbnormalState = validator.NewReason("abnormal_state")
	// ReasonPlayerStatus: a 200 whose player.status is not in good
	// standing (-allow-status).
	ReasonPlayerStatus = validator.NewReason("player_status")
)

// fields are the raw values of a Kakao Games answer, in the body as
// received: the /v1 answer hands them on byte for byte.
var fields = &validator.Fields{Names: [4]string{"player", "lockout", "token", "redirectUri"}}

// Player, Lockout, Token and RedirectURI return the raw JSON values of
// those fields of a Kakao Games Result's body, byte for byte, or nil when
// absent or null.
func Player(r *validator.Result) []byte      { return r.Raw(0) }
func Lockout(r *validator.Result) []byte     { return r.Raw(1) }
func Token(r *validator.Result) []byte       { return r.Raw(2) }
func RedirectURI(r *validator.Result) []byte { return r.Raw(3) }

func kick(r *validator.Result, reason validator.Reason) *validator.Result {
	r.Verdict, r.Reason = validator.Kick, reason
	return r
}

func unavailable(r *validator.Result, reason validator.Reason, failure bool) *validator.Result {
	r.Verdict, r.Reason, r.Failure = validator.Unavailable, reason, failure
	return r
}

// Decide maps one upstream answer to a Result: the decision table. status
// and body are the upstream's response (body nil when it was dropped: too
// large, or echoing playerguard's credentials); claimed is the playerId the
// request asked about ("" if none); allowStatuses lists the player.status
// values that mean good standing. Decide keeps a reference to body.
//
// Nothing that does not parse as a documented 200 can become an allow, and
// no status that stands for an outage can become a kick. Bodies are read
// strictly (parseBody): the decision is made on exactly the bytes the
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
func Decide(status int, body []byte, contentType, claimed string, allowStatuses []string) *validator.Result {
	r := &validator.Result{Status: status, Body: body, ContentType: contentType, PlayerID: claimed, Fields: fields}
	kb, parsed := parseBody(body)
	descStatus := 0
	if parsed {
		for i, s := range [...]span{kb.player, kb.lockout, kb.token, kb.redirectURI} {
			if s.end > 0 {
				r.SetRaw(i, s.off, s.end)
			}
		}
		if kb.hasDesc {
			r.Desc = kb.desc
			descStatus, r.Code, r.HasCode = parseSubCode(r.Desc)
		}
	}

	switch {
	case status == 200:
		if !parsed || !kb.hasStatus || !kb.hasPlayerID || kb.playerID == "" {
			// A 200 we cannot read is a broken upstream, not a verdict.
			return unavailable(r, validator.ReasonUpstreamUnavailable, true)
		}
		if r.PlayerID == "" {
			r.PlayerID = kb.playerID
		}
		switch {
		case claimed != "" && kb.playerID != claimed:
			// About the claim, not about the token's player: nobody to purge.
			return kick(r, validator.ReasonPlayerMismatch)
		case !slices.Contains(allowStatuses, kb.status):
			r.Named = kb.playerID
			return kick(r, ReasonPlayerStatus)
		}
		r.Named = kb.playerID
		r.Verdict, r.Reason = validator.Allow, validator.ReasonOK
		return r
	case status == 400 || requestShapeStatus(status):
		// Our request was malformed: a bug or a misconfiguration, never
		// the player's fault. Not counted against the breaker.
		return unavailable(r, validator.ReasonUpstreamUnavailable, false)
	case status == 408 || status == 429:
		return unavailable(r, validator.ReasonUpstreamUnavailable, true)
	case status == 473:
		// The SDK tables document 473 as maintenance (it replaced 503).
		return unavailable(r, validator.ReasonUpstreamMaintenance, true)
	case credentialsRefused(r):
		// Kakao refused playerguard's own app secret, admin key or app
		// id: every player gets it, and none of them is at fault. Like
		// the 400: unavailable, not a breaker failure, an error line.
		return unavailable(r, validator.ReasonUpstreamUnavailable, false)
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
		return kick(r, kickReason(status))
	default: // 1xx, 3xx, 5xx, a 4xx without a Kakao error body, anything else
		return unavailable(r, validator.ReasonUpstreamUnavailable, true)
	}
}

// credentialsRefused reports Kakao's answer to a request whose app
// credentials it refuses: 401 with sub-code -29001 ("App authentication
// failed").
func credentialsRefused(r *validator.Result) bool {
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
func foreign4xx(r *validator.Result) bool {
	s := r.Status
	return s >= 400 && s < 500 && r.Verdict == validator.Unavailable && r.Failure &&
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
func kickReason(status int) validator.Reason {
	switch status {
	case 401:
		return validator.ReasonInvalidToken
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

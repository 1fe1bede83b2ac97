// Package kakaologin is the Kakao Login provider: it checks a Kakao Login
// access token with GET {api}/v1/user/access_token_info (Authorization:
// Bearer <token>), which answers the Kakao user id, the seconds the token
// has left and the app it was issued to, and decides from that or from
// Kakao's {"code": N, "msg": "..."} errors.
//
// Kakao answers maintenance, quota and internal errors with HTTP 400 (its
// REST API error table, REFERENCE §2): a "4xx means kick" rule would ban
// everyone during Kakao's maintenance. The code decides, and a code is a
// kick only with the HTTP status Kakao documents for it.
//
// Decide is the decision table, a pure function; Provider plugs it into
// playerguard's engine (validator.Provider): POST/GET Path, allows cached
// until the earlier of -cache-ttl and the token's expiry less
// ExpiryMargin. Its fake is kakaologintest.
package kakaologin

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"

	"playerguard/validator"
)

// The reasons this provider gives beyond the engine's (ok, invalid_token,
// player_mismatch, upstream_unavailable, upstream_maintenance...).
var (
	// ReasonWrongApp: the token is valid, but was issued to another app.
	ReasonWrongApp = validator.NewReason("wrong_app")
	// ReasonUnderage: -406, a user under 14 on an app that refuses them.
	ReasonUnderage = validator.NewReason("underage")
	// ReasonAccountBlocked: -4, the account is sanctioned or restricted.
	ReasonAccountBlocked = validator.NewReason("account_blocked")
	// ReasonNotLinked: -101, the user is not linked to the app.
	ReasonNotLinked = validator.NewReason("not_linked")
	// ReasonAccountDormant: -103, a dormant or nonexistent Kakao account.
	ReasonAccountDormant = validator.NewReason("account_dormant")
	// ReasonRejectedConfig: Kakao refused the app itself (its keys, its
	// settings, its standing): never the player's fault, never a kick.
	ReasonRejectedConfig = validator.NewReason("upstream_rejected_config")
)

// Decision is what Decide makes of one answer.
type Decision struct {
	Verdict validator.Verdict
	Reason  validator.Reason
	// Failure marks an upstream failure: the breaker counts it and the
	// outage policy answers. A rejected configuration is unavailable but
	// no failure (like Kakao Games' 400): the upstream is working.
	Failure bool
	// Code is Kakao's error code (HasCode says there was one).
	Code    int
	HasCode bool
	// User is the token's user, from a 200 (Verdict Allow, or a kick for
	// another app or another user than claimed).
	User User
}

// User is what access_token_info says of a valid token.
type User struct {
	ID        string // the Kakao user id, as its decimal digits
	AppID     string // the app the token was issued to, as its decimal digits
	ExpiresIn int64  // seconds the token has left
}

// codeRule is one row of Kakao's error table as Decide applies it.
type codeRule struct {
	status  int // the HTTP status Kakao documents for the code
	verdict validator.Verdict
	reason  validator.Reason
	failure bool
}

// codes is Kakao's REST API error table (REFERENCE §2) as decisions.
var codes = map[int]codeRule{
	-401: {401, validator.Kick, validator.ReasonInvalidToken, false},
	-406: {401, validator.Kick, ReasonUnderage, false},
	-4:   {403, validator.Kick, ReasonAccountBlocked, false},
	-101: {400, validator.Kick, ReasonNotLinked, false},
	-103: {400, validator.Kick, ReasonAccountDormant, false},

	-1:    {400, validator.Unavailable, validator.ReasonUpstreamUnavailable, true},
	-7:    {400, validator.Unavailable, validator.ReasonUpstreamMaintenance, true},
	-10:   {400, validator.Unavailable, validator.ReasonUpstreamUnavailable, true},
	-11:   {400, validator.Unavailable, validator.ReasonUpstreamUnavailable, true},
	-603:  {400, validator.Unavailable, validator.ReasonUpstreamUnavailable, true},
	-9798: {503, validator.Unavailable, validator.ReasonUpstreamMaintenance, true},

	-2:   {400, validator.Unavailable, ReasonRejectedConfig, false},
	-8:   {400, validator.Unavailable, ReasonRejectedConfig, false},
	-3:   {403, validator.Unavailable, ReasonRejectedConfig, false},
	-5:   {403, validator.Unavailable, ReasonRejectedConfig, false},
	-6:   {403, validator.Unavailable, ReasonRejectedConfig, false},
	-9:   {400, validator.Unavailable, ReasonRejectedConfig, false},
	-12:  {403, validator.Unavailable, ReasonRejectedConfig, false},
	-903: {400, validator.Unavailable, ReasonRejectedConfig, false},
}

// Decide maps one access_token_info answer to a Decision: status and body
// are Kakao's response, appID the app's numeric id (-kakao-login-app-id),
// claimed the user id the request claims ("" for none). Only a 200 whose
// body reads strictly as {"id", "expires_in", "app_id"} integers, for this
// app and the claimed user, allows; only a documented code with its
// documented status kicks.
func Decide(status int, body []byte, appID, claimed string) Decision {
	unavailable := Decision{Verdict: validator.Unavailable, Reason: validator.ReasonUpstreamUnavailable, Failure: true}
	if status == 200 {
		u, ok := parseInfo(body)
		if !ok {
			return unavailable // a 200 we cannot read is a broken upstream
		}
		d := Decision{Verdict: validator.Allow, Reason: validator.ReasonOK, User: u}
		switch {
		case u.AppID != appID:
			d.Verdict, d.Reason = validator.Kick, ReasonWrongApp
		case claimed != "" && u.ID != claimed:
			d.Verdict, d.Reason = validator.Kick, validator.ReasonPlayerMismatch
		}
		return d
	}
	code, ok := parseError(body)
	if !ok {
		return unavailable // no Kakao error: a proxy, a WAF, an outage
	}
	rule, known := codes[code]
	if !known || rule.status != status {
		unavailable.Code, unavailable.HasCode = code, true
		return unavailable
	}
	return Decision{Verdict: rule.verdict, Reason: rule.reason, Failure: rule.failure, Code: code, HasCode: true}
}

var errBody = errors.New("kakaologin: unreadable body")

// parseInfo reads a 200's {"id": N, "expires_in": N, "app_id": N}.
func parseInfo(body []byte) (User, bool) {
	var u User
	var idOK, appOK, expOK bool
	err := strictObject(body, func(key string, dec *json.Decoder) error {
		switch key {
		case "id":
			s, err := integer(dec)
			u.ID, idOK = s, err == nil
			return err
		case "app_id":
			s, err := integer(dec)
			u.AppID, appOK = s, err == nil
			return err
		case "expires_in":
			s, err := integer(dec)
			if err != nil {
				return err
			}
			n, err := strconv.ParseInt(s, 10, 64)
			// A token with no time left, or less than none, is no
			// live token: the answer is unreadable, not an allow.
			u.ExpiresIn, expOK = n, err == nil && n >= 1
			return err
		}
		return skip(dec)
	}, "id", "app_id", "expires_in")
	if err != nil || !idOK || !appOK || !expOK {
		return User{}, false
	}
	return u, true
}

// parseError reads the code of an error body {"code": N, "msg": "..."}.
func parseError(body []byte) (int, bool) {
	code, ok := 0, false
	err := strictObject(body, func(key string, dec *json.Decoder) error {
		if key != "code" {
			return skip(dec)
		}
		s, err := integer(dec)
		if err != nil {
			return err
		}
		code, err = strconv.Atoi(s)
		ok = err == nil
		return err
	}, "code", "msg")
	return code, err == nil && ok
}

// strictObject reads body as one JSON object and hands each key to field,
// which must read its value. A duplicate key, a key that differs from one
// of known only in case, invalid UTF-8 (encoding/json would read "\xeb"
// and "\xec" as one key) or trailing data makes the body unreadable: two
// parsers must not read it two ways.
func strictObject(body []byte, field func(key string, dec *json.Decoder) error, known ...string) error {
	if !utf8.Valid(body) {
		return errBody
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return errBody
	}
	seen := map[string]bool{}
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return errBody
		}
		key, _ := t.(string)
		for _, k := range known {
			if key != k && strings.EqualFold(key, k) {
				return errBody
			}
		}
		if seen[key] {
			return errBody
		}
		seen[key] = true
		if err := field(key, dec); err != nil {
			return errBody
		}
	}
	if _, err := dec.Token(); err != nil { // the '}'
		return errBody
	}
	if _, err := dec.Token(); err != io.EOF {
		return errBody
	}
	return nil
}

// integer reads a JSON integer (no fraction, no exponent, no leading
// zeros) as its decimal digits.
func integer(dec *json.Decoder) (string, error) {
	t, err := dec.Token()
	if err != nil {
		return "", err
	}
	n, ok := t.(json.Number)
	if !ok {
		return "", errBody
	}
	s := n.String()
	digits := strings.TrimPrefix(s, "-")
	if digits == "" || strings.TrimLeft(digits, "0123456789") != "" || len(digits) > 1 && digits[0] == '0' || len(digits) > 19 {
		return "", errBody
	}
	return s, nil
}

// skip reads one value of any type.
func skip(dec *json.Decoder) error {
	var v json.RawMessage
	return dec.Decode(&v)
}

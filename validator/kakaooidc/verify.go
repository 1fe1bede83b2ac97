package kakaooidc

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"math"
	"slices"
	"strconv"
	"time"

	"playerguard/validator"
)

// The provider's kick reasons beside the engine's invalid_token and
// player_mismatch, and its unavailable ones.
var (
	ReasonTokenExpired  = validator.NewReason("token_expired")
	ReasonWrongAudience = validator.NewReason("wrong_audience")
	ReasonWrongIssuer   = validator.NewReason("wrong_issuer")
	ReasonNonceMismatch = validator.NewReason("nonce_mismatch")
	ReasonAuthTooOld    = validator.NewReason("auth_too_old")

	// ReasonKeysUnavailable: the key set was never fetched, or the token
	// names a key the set does not hold while the key endpoint cannot be
	// reached. The outage policy applies.
	ReasonKeysUnavailable = validator.NewReason("keys_unavailable")
	// ReasonUnknownKey: the token names a key not in a set fetched less
	// than -kakao-oidc-jwks-min-interval ago, so no fetch was made for it:
	// a key published since (picked up by the next fetch the limit
	// allows) or junk. Never an allow by the outage policy.
	ReasonUnknownKey = validator.NewReason("unknown_key")
)

// Claims are what an ID token says, as verify needs them: the registered
// claims Kakao sets, and the profile claims the user consented to.
type Claims struct {
	Issuer   string
	Audience []string
	Subject  string
	// Expiry, IssuedAt and AuthTime are Unix seconds; the Has fields say
	// whether the token carries them.
	Expiry, IssuedAt, AuthTime          int64
	HasExpiry, HasIssuedAt, HasAuthTime bool
	Nonce                               string
	HasNonce                            bool
	Nickname, Picture, Email            string
}

// Rules are what a token must satisfy besides its signature.
type Rules struct {
	Issuer     string
	Audiences  []string
	Leeway     time.Duration
	MaxAuthAge time.Duration // 0: any
}

// Judge decides a token whose signature has been verified: the first rule
// it breaks, in this order (structure, then issuer, audience, expiry,
// nonce, authentication age, the claimed player), or ok. nonce and
// claimed are the request's ("" when not sent).
func Judge(c *Claims, r *Rules, now time.Time, nonce, claimed string) validator.Reason {
	// RFC 7519: the time must be before exp (plus the leeway), and iat
	// and auth_time are judged to the same second.
	at := func(sec int64) time.Time { return time.Unix(sec, 0) }
	switch {
	case !c.HasExpiry, c.Subject == "":
		return validator.ReasonInvalidToken
	case c.HasIssuedAt && at(c.IssuedAt).After(now.Add(r.Leeway)):
		return validator.ReasonInvalidToken // issued in the future
	case c.Issuer != r.Issuer:
		return ReasonWrongIssuer
	case !slices.ContainsFunc(c.Audience, func(a string) bool { return slices.Contains(r.Audiences, a) }):
		return ReasonWrongAudience
	case !now.Before(at(c.Expiry).Add(r.Leeway)):
		return ReasonTokenExpired
	case nonce != "" && (!c.HasNonce || c.Nonce != nonce):
		return ReasonNonceMismatch
	case r.MaxAuthAge > 0 && (!c.HasAuthTime || now.After(at(c.AuthTime).Add(r.MaxAuthAge+r.Leeway))):
		return ReasonAuthTooOld
	case claimed != "" && claimed != c.Subject:
		return validator.ReasonPlayerMismatch
	}
	return validator.ReasonOK
}

// header is what verify reads of a token's JOSE header.
type header struct {
	alg, kid string
}

var (
	headerKeys = []string{"alg", "kid"}
	claimKeys  = []string{"iss", "aud", "sub", "exp", "iat", "auth_time", "nonce", "nickname", "picture", "email"}
)

// readHeader reads a token's decoded header strictly (a JSON object, no
// member twice or in two cases); false if it is not one.
func readHeader(b []byte) (header, bool) {
	var h header
	r, ok := validator.NewJSONReader(b)
	if !ok {
		return h, false
	}
	err := r.Object(1, headerKeys, func(k int) error {
		s, _, err := r.String()
		if k == 0 {
			h.alg = s
		} else {
			h.kid = s
		}
		return err
	})
	return h, err == nil && r.End()
}

// readClaims reads a token's decoded payload strictly; false if it is not
// a JSON object without duplicate members whose known claims have their
// types (strings; aud a string or an array of strings; the times numbers).
func readClaims(b []byte) (Claims, bool) {
	var c Claims
	r, ok := validator.NewJSONReader(b)
	if !ok {
		return c, false
	}
	err := r.Object(1, claimKeys, func(k int) error {
		switch k {
		case 1: // aud
			off, end, err := r.Raw(2, nil)
			if err != nil {
				return err
			}
			if end > 0 {
				c.Audience, ok = audience(b[off:end])
				if !ok {
					return errClaim
				}
			}
			return nil
		case 3, 4, 5: // exp, iat, auth_time: numbers
			off, end, err := r.Raw(2, nil)
			if err != nil || end == 0 {
				return err
			}
			n, ok := numericDate(string(b[off:end]))
			if !ok {
				return errClaim
			}
			switch k {
			case 3:
				c.Expiry, c.HasExpiry = n, true
			case 4:
				c.IssuedAt, c.HasIssuedAt = n, true
			default:
				c.AuthTime, c.HasAuthTime = n, true
			}
			return nil
		}
		s, present, err := r.String()
		switch k {
		case 0:
			c.Issuer = s
		case 2:
			c.Subject = s
		case 6:
			c.Nonce, c.HasNonce = s, present
		case 7:
			c.Nickname = s
		case 8:
			c.Picture = s
		case 9:
			c.Email = s
		}
		return err
	})
	return c, err == nil && r.End()
}

type claimError struct{}

func (claimError) Error() string { return "claim of the wrong type" }

var errClaim error = claimError{}

// numericDate reads a NumericDate (RFC 7519: seconds, possibly with a
// fraction) as whole seconds; a quoted string is not one.
func numericDate(s string) (int64, bool) {
	if s == "" || s[0] != '-' && (s[0] < '0' || s[0] > '9') {
		return 0, false
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		return n, true
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsInf(f, 0) || math.IsNaN(f) || f > 1<<53 || f < -(1<<53) {
		return 0, false
	}
	return int64(math.Floor(f)), true
}

// audience reads aud (valid JSON, checked by the reader): a string, or
// an array of strings.
func audience(raw []byte) ([]string, bool) {
	if raw[0] == '"' {
		var s string
		err := json.Unmarshal(raw, &s)
		return []string{s}, err == nil
	}
	var out []string
	if raw[0] != '[' || json.Unmarshal(raw, &out) != nil {
		return nil, false
	}
	return out, true
}

// splitToken splits a compact JWS into its three parts; false if it has
// not exactly three.
func splitToken(tok []byte) (h, p, s []byte, ok bool) {
	i := bytes.IndexByte(tok, '.')
	if i < 0 {
		return nil, nil, nil, false
	}
	j := bytes.IndexByte(tok[i+1:], '.')
	if j < 0 {
		return nil, nil, nil, false
	}
	j += i + 1
	if bytes.IndexByte(tok[j+1:], '.') >= 0 {
		return nil, nil, nil, false
	}
	return tok[:i], tok[i+1 : j], tok[j+1:], true
}

// isBase64URL reports whether b is canonical unpadded base64url
// (base64.RawURLEncoding.Strict()): its alphabet, its length, and no bits
// set past the last byte (which would give one token a second spelling,
// and a second cache entry, that decodes the same).
func isBase64URL(b []byte) bool {
	if len(b)%4 == 1 {
		return false
	}
	for _, c := range b {
		if b64Value[c] < 0 {
			return false
		}
	}
	if len(b) == 0 {
		return true
	}
	last := b64Value[b[len(b)-1]]
	switch len(b) % 4 {
	case 2:
		return last&0x0f == 0
	case 3:
		return last&0x03 == 0
	}
	return true
}

// b64Value is each byte's value in the base64url alphabet, -1 outside it.
var b64Value = func() (t [256]int8) {
	for i := range t {
		t[i] = -1
	}
	for i, c := range "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_" {
		t[c] = int8(i)
	}
	return t
}()

var strictB64 = base64.RawURLEncoding.Strict()

func decodePart(b []byte) ([]byte, bool) {
	out := make([]byte, strictB64.DecodedLen(len(b)))
	n, err := strictB64.Decode(out, b)
	return out[:n], err == nil
}

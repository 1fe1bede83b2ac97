package validator

import (
	"bytes"
	"encoding/binary"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// Request is one validation request as the caller sent it. Its byte slices
// alias the request body, the request headers or a scratch buffer owned by
// the caller; they are valid only until that buffer is reused.
type Request struct {
	Token    []byte // accessToken, or idToken for a provider of ID tokens
	Platform []byte // one of web, launcher, mobile, pc
	PlayerID []byte // optional; empty when not claimed
	Nonce    []byte // ID tokens only: optional; empty when not sent
	MinAge   []byte // age gates only: a JSON integer as sent; empty when not sent
	Provider []byte // /admin/purge only: the provider a key purge is for
	// SessionID is the game server's name for the connection an allow
	// starts (any provider, optional): the session playerguard watches.
	SessionID []byte

	tokenKey int8 // the key Token was sent as (/admin/purge tells them apart)
}

// Limits on caller input.
const (
	MaxTokenLen    = 4096 // bytes
	MaxPlayerIDLen = 256
	MaxBodyLen     = 16 << 10 // the JSON body
	MaxSessionLen  = 128      // sessionId
)

// maxJSONDepth is how deeply a request body may nest: the body's own object
// is depth 1.
const maxJSONDepth = 32

// RequestError is a caller mistake: the API answers it with 400 and Msg.
// Msg never contains the access token.
type RequestError struct{ Msg string }

func (e *RequestError) Error() string { return e.Msg }

// The fixed caller mistakes, allocated once so that refusing a request does
// not allocate either.
var (
	errBodyTooLarge    = &RequestError{"request body too large (limit " + strconv.Itoa(MaxBodyLen) + " bytes)"}
	errBodyNotJSON     = &RequestError{"request body is not a JSON object"}
	errBodyTrailing    = &RequestError{"request body has trailing data after the JSON object"}
	errBodyInvalidJSON = &RequestError{"request body is not valid JSON"}
	errBodyTooDeep     = &RequestError{"request body nests too deeply"}

	errMissingToken    = &RequestError{"missing accessToken"}
	errTokenTooLong    = &RequestError{"accessToken too long (limit " + strconv.Itoa(MaxTokenLen) + " bytes)"}
	errTokenChars      = &RequestError{"accessToken contains invalid characters (control, space or non-ASCII)"}
	errTwoTokens       = &RequestError{"send one of accessToken, idToken and impUid"}
	errPlayerIDTooLong = &RequestError{"playerId too long (limit " + strconv.Itoa(MaxPlayerIDLen) + " bytes)"}
	errPlayerIDChars   = &RequestError{"playerId contains invalid characters (control, space or non-ASCII)"}
	errSessionEmpty    = &RequestError{"sessionId is empty: send the game server's id of this connection, or no sessionId"}
	errSessionTooLong  = &RequestError{"sessionId too long (limit " + strconv.Itoa(MaxSessionLen) + " bytes)"}
	errSessionChars    = &RequestError{"sessionId contains invalid characters (control, space or non-ASCII)"}
	errSessionDots     = &RequestError{"sessionId must not be \".\" or \"..\" (a URL path cannot name it)"}
)

// The known keys of a request body, in the order of reqKeyNames.
const (
	reqKeyUnknown = iota - 1
	reqKeyToken
	reqKeyPlatform
	reqKeyPlayerID
	reqKeyIDToken // the token of a provider of ID tokens (Spec.IDToken)
	reqKeyNonce
	reqKeyImpUID // an age gate's verification (Spec.AgeGate), its token
	reqKeyMinAge
	reqKeySessionID // every validation's (not /admin/purge's)
	numReqKeys
	// reqKeyProvider is /admin/purge's provider: no header, no error
	// tables, so after numReqKeys.
	reqKeyProvider = numReqKeys
)

var reqKeyNames = [numReqKeys]string{"accessToken", "platform", "playerId", "idToken", "nonce", "impUid", "minAge", "sessionId"}

var (
	reqKeyBytes        [numReqKeys][]byte
	errReqKeyNotString [numReqKeys + 1]*RequestError
	errReqKeyDuplicate [numReqKeys + 1]*RequestError
	errReqKeyCase      [numReqKeys]*RequestError
)

func init() {
	for k, name := range append(reqKeyNames[:], "provider") {
		errReqKeyNotString[k] = &RequestError{name + " must be a JSON string"}
		errReqKeyDuplicate[k] = &RequestError{"duplicate field " + strconv.Quote(name) + " in request body"}
	}
	for k, name := range reqKeyNames {
		reqKeyBytes[k] = []byte(name)
		errReqKeyCase[k] = &RequestError{"field names are case-sensitive: a field differs from " + strconv.Quote(name) + " only in case; send " + strconv.Quote(name)}
	}
}

// DecodeJSON parses a JSON request body into r. Strings that contain escapes
// are unescaped into scratch, which it returns (possibly grown) so the caller
// can reuse it; strings without escapes alias body. It returns a *RequestError
// naming the problem.
//
// r is reset first; on error its fields are unspecified. scratch's previous
// contents are overwritten. The decode is a single O(len(body)) pass and
// does not allocate unless scratch must grow.
//
// Unknown fields are skipped (a newer caller may send more), but a field
// whose name differs from a known one only in case ("PlayerId", or
// "ſtatus"-style Unicode folding) is refused: skipping it would drop the
// claim the caller meant to make.
func DecodeJSON(body []byte, r *Request, scratch []byte) ([]byte, error) {
	return decodeJSON(body, r, scratch, defaultForm)
}

// form says which request keys a body may have.
type form struct {
	onlyKnown  bool // refuse unknown keys
	noPlatform bool // platform is not a key (an unknown one)
	provider   bool // provider is a key (/admin/purge)
	// idToken: the keys are idToken, nonce and playerId (a provider of ID
	// tokens); accessToken and platform are unknown ones.
	idToken bool
	// purge: /admin/purge's, every key (a token as accessToken or idToken).
	purge bool
	// ageGate: the keys are impUid, playerId and minAge (a number).
	ageGate bool

	// mask has a bit per request key of the form (1<<k): computed once by
	// sealed, so that the request path tests a bit rather than the flags.
	mask uint16
}

// sealed is f with its key set computed; every form in use is sealed.
func (f form) sealed() form {
	f.mask = 0
	for k := range numReqKeys {
		if f.derive(k) {
			f.mask |= 1 << k
		}
	}
	return f
}

// defaultForm is Kakao Games': accessToken, platform, playerId.
var defaultForm = form{}.sealed()

// has says whether request key k is one of f's (f is sealed).
func (f form) has(k int) bool { return f.mask>>k&1 != 0 }

// derive says from f's flags whether request key k is one of f's.
func (f form) derive(k int) bool {
	switch {
	case f.purge:
		return k != reqKeyMinAge && k != reqKeySessionID
	case k == reqKeySessionID:
		return true
	case f.ageGate:
		return k == reqKeyImpUID || k == reqKeyMinAge || k == reqKeyPlayerID
	}
	switch k {
	case reqKeyToken:
		return !f.idToken
	case reqKeyPlatform:
		return !f.idToken && !f.noPlatform
	case reqKeyIDToken, reqKeyNonce:
		return f.idToken
	case reqKeyImpUID, reqKeyMinAge:
		return false
	}
	return true
}

// names lists f's keys, in the order of reqKeyNames.
func (f form) names() []string {
	var ns []string
	for k, name := range reqKeyNames {
		if f.has(k) {
			ns = append(ns, name)
		}
	}
	return ns
}

// decodeJSON is DecodeJSON for the keys of f.
func decodeJSON(body []byte, r *Request, scratch []byte, f form) ([]byte, error) {
	*r = Request{}
	scratch = scratch[:0]
	if len(body) > MaxBodyLen {
		return scratch, errBodyTooLarge
	}
	d := jsonDecoder{b: body, scratch: scratch, form: f}
	err := d.request(r)
	return d.scratch, err
}

// jsonDecoder is a strict (RFC 8259) JSON reader over one request body.
// Running out of input is errBodyNotJSON (a truncated body); a byte that
// cannot come next is errBodyInvalidJSON.
type jsonDecoder struct {
	b       []byte
	i       int // the next byte to read
	scratch []byte
	form    // a request's keys
}

func (d *jsonDecoder) skipSpace() {
	for d.i < len(d.b) {
		switch d.b[d.i] {
		case ' ', '\t', '\n', '\r':
			d.i++
		default:
			return
		}
	}
}

// request reads the body's one object into r.
func (d *jsonDecoder) request(r *Request) error {
	d.skipSpace()
	if d.i >= len(d.b) || d.b[d.i] != '{' {
		return errBodyNotJSON
	}
	d.i++
	d.skipSpace()
	if d.i >= len(d.b) {
		return errBodyNotJSON
	}
	if d.b[d.i] != '}' {
		var seen [numReqKeys + 1]bool
		for {
			// A key.
			if d.b[d.i] != '"' {
				return errBodyInvalidJSON
			}
			k, err := d.key()
			if err != nil {
				return err
			}
			if err := d.colon(); err != nil {
				return err
			}
			// Its value.
			if k == reqKeyUnknown {
				err = d.skipValue(1)
			} else {
				if seen[k] {
					return errReqKeyDuplicate[k]
				}
				seen[k] = true
				var v []byte
				if k == reqKeyMinAge {
					v, err = d.numberOrNull()
				} else {
					v, err = d.stringOrNull(k)
				}
				switch k {
				case reqKeyMinAge:
					r.MinAge = v
				case reqKeyImpUID:
					if r.Token != nil {
						return errTwoTokens
					}
					r.Token, r.tokenKey = v, int8(k)
				case reqKeyToken, reqKeyIDToken:
					if r.Token != nil {
						return errTwoTokens
					}
					r.Token, r.tokenKey = v, int8(k)
				case reqKeyNonce:
					r.Nonce = v
				case reqKeyPlatform:
					r.Platform = v
				case reqKeyProvider:
					r.Provider = v
				case reqKeySessionID:
					r.SessionID = v
				default:
					r.PlayerID = v
				}
			}
			if err != nil {
				return err
			}
			// A comma and the next key, or the end.
			d.skipSpace()
			if d.i >= len(d.b) {
				return errBodyNotJSON
			}
			if d.b[d.i] == '}' {
				break
			}
			if d.b[d.i] != ',' {
				return errBodyInvalidJSON
			}
			d.i++
			d.skipSpace()
			if d.i >= len(d.b) {
				return errBodyNotJSON
			}
		}
	}
	d.i++ // the '}'
	d.skipSpace()
	if d.i < len(d.b) {
		return errBodyTrailing
	}
	return nil
}

// key reads the object key at d.i (a '"') and says which known key it is.
func (d *jsonDecoder) key() (int, error) {
	mark := len(d.scratch)
	s, err := d.str()
	if err != nil {
		return reqKeyUnknown, err
	}
	k := reqKeyUnknown
	switch string(s) {
	case "accessToken":
		k = reqKeyToken
	case "platform":
		k = reqKeyPlatform
	case "playerId":
		k = reqKeyPlayerID
	case "idToken":
		k = reqKeyIDToken
	case "nonce":
		k = reqKeyNonce
	case "impUid":
		k = reqKeyImpUID
	case "minAge":
		k = reqKeyMinAge
	case "sessionId":
		k = reqKeySessionID
	case "provider":
		if d.provider {
			k = reqKeyProvider
		}
	}
	if k != reqKeyProvider && k != reqKeyUnknown && !d.has(k) {
		k = reqKeyUnknown
	}
	if k == reqKeyUnknown {
		for i := range reqKeyBytes {
			// (Not sessionId: a caller's own "sessionID" field, skipped
			// before sessions came, is no claim dropped; it stays skipped.)
			if d.has(i) && i != reqKeySessionID && bytes.EqualFold(s, reqKeyBytes[i]) && string(s) != reqKeyNames[i] {
				return k, errReqKeyCase[i]
			}
		}
		if d.onlyKnown {
			return k, unknownField(s, d.form)
		}
	}
	d.scratch = d.scratch[:mark] // an escaped key is not kept
	return k, nil
}

// unknownField names an unknown key, echoed safely (echoSafe).
func unknownField(key []byte, f form) *RequestError {
	want := strings.Join(f.names(), ", ")
	if f.provider {
		want = "provider, " + want
	}
	return &RequestError{"unknown field " + strconv.Quote(string(echoSafe(key))) + " (want " + want + ")"}
}

// stringOrNull reads the value of known key k: a string, or null (nil).
func (d *jsonDecoder) stringOrNull(k int) ([]byte, error) {
	if d.i >= len(d.b) {
		return nil, errBodyNotJSON
	}
	switch c := d.b[d.i]; c {
	case '"':
		return d.str()
	case 'n':
		return nil, d.literal("null")
	case '{', '[', 't', 'f', '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
		return nil, errReqKeyNotString[k]
	default:
		return nil, errBodyInvalidJSON
	}
}

// numberOrNull reads minAge's value: a JSON number (its text), or null.
func (d *jsonDecoder) numberOrNull() ([]byte, error) {
	if d.i >= len(d.b) {
		return nil, errBodyNotJSON
	}
	switch c := d.b[d.i]; {
	case c == 'n':
		return nil, d.literal("null")
	case c == '-' || isDigit(c):
		start := d.i
		if err := d.skipNumber(); err != nil {
			return nil, err
		}
		return d.b[start:d.i:d.i], nil
	case c == '"' || c == '{' || c == '[' || c == 't' || c == 'f':
		return nil, errMinAgeNotNumber
	}
	return nil, errBodyInvalidJSON
}

var errMinAgeNotNumber = &RequestError{"minAge must be a JSON number"}

// str reads the string at d.i (a '"'). Without escapes the result aliases
// the body; otherwise it is unescaped onto the end of d.scratch. Either way
// its capacity is clipped so that appending to it cannot overwrite anything.
func (d *jsonDecoder) str() ([]byte, error) {
	start := d.i + 1
	// Keys, platforms and player ids end within two words: those the
	// byte loop below finishes. Past that the string is long (a token),
	// and most need no attention: find the closing quote with IndexByte
	// (vectorised) and make sure nothing before it is an escape or a
	// control character; for a 200-byte token that is a third of the byte
	// scan.
	i := start + plainRun(d.b[start:min(start+16, len(d.b))])
	if i == start+16 {
		if q := bytes.IndexByte(d.b[i:], '"'); q >= 0 {
			if end := i + q; bytes.IndexByte(d.b[i:end], '\\') < 0 && !hasControl(d.b[i:end]) {
				d.i = end + 1
				return d.b[start:end:end], nil
			}
		}
		i += plainRun(d.b[i:])
	}
	for ; i < len(d.b); i++ {
		switch c := d.b[i]; {
		case c == '"':
			d.i = i + 1
			return d.b[start:i:i], nil
		case c == '\\':
			return d.unescape(start, i)
		case c < 0x20:
			return nil, errBodyInvalidJSON
		}
	}
	return nil, errBodyNotJSON
}

// unescape finishes reading a string that starts at start and whose first
// escape is at i.
func (d *jsonDecoder) unescape(start, i int) ([]byte, error) {
	mark := len(d.scratch)
	d.scratch = append(d.scratch, d.b[start:i]...)
	for i < len(d.b) {
		c := d.b[i]
		switch {
		case c == '"':
			d.i = i + 1
			n := len(d.scratch)
			return d.scratch[mark:n:n], nil
		case c < 0x20:
			return nil, errBodyInvalidJSON
		case c != '\\':
			// A run of plain bytes.
			j := i + 1
			for j < len(d.b) && d.b[j] != '"' && d.b[j] != '\\' && d.b[j] >= 0x20 {
				j++
			}
			d.scratch = append(d.scratch, d.b[i:j]...)
			i = j
			continue
		}
		// An escape.
		if i+1 >= len(d.b) {
			return nil, errBodyNotJSON
		}
		switch e := d.b[i+1]; e {
		case '"', '\\', '/':
			d.scratch = append(d.scratch, e)
		case 'b':
			d.scratch = append(d.scratch, '\b')
		case 'f':
			d.scratch = append(d.scratch, '\f')
		case 'n':
			d.scratch = append(d.scratch, '\n')
		case 'r':
			d.scratch = append(d.scratch, '\r')
		case 't':
			d.scratch = append(d.scratch, '\t')
		case 'u':
			r, err := hex4(d.b, i+2)
			if err != nil {
				return nil, err
			}
			i += 6
			if utf16.IsSurrogate(r) {
				// Half of a pair: take the other half if it follows,
				// else U+FFFD (and what follows is read on its own), as
				// encoding/json does.
				if i+1 < len(d.b) && d.b[i] == '\\' && d.b[i+1] == 'u' {
					if r2, err := hex4(d.b, i+2); err == nil {
						if pair := utf16.DecodeRune(r, r2); pair != utf8.RuneError {
							d.scratch = utf8.AppendRune(d.scratch, pair)
							i += 6
							continue
						}
					}
				}
				r = utf8.RuneError
			}
			d.scratch = utf8.AppendRune(d.scratch, r)
			continue
		default:
			return nil, errBodyInvalidJSON
		}
		i += 2
	}
	return nil, errBodyNotJSON
}

// hex4 reads the four hex digits of a \u escape at b[i:].
func hex4(b []byte, i int) (rune, error) {
	var r rune
	for k := i; k < i+4; k++ {
		if k >= len(b) {
			return 0, errBodyNotJSON
		}
		c := b[k]
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c -= 'a' - 10
		case 'A' <= c && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, errBodyInvalidJSON
		}
		r = r<<4 | rune(c)
	}
	return r, nil
}

// skipString checks the string at d.i (a '"') and moves past it.
func (d *jsonDecoder) skipString() error {
	i := d.i + 1
	for i < len(d.b) {
		c := d.b[i]
		switch {
		case c == '"':
			d.i = i + 1
			return nil
		case c < 0x20:
			return errBodyInvalidJSON
		case c != '\\':
			i++
			continue
		}
		if i+1 >= len(d.b) {
			return errBodyNotJSON
		}
		switch d.b[i+1] {
		case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			i += 2
		case 'u':
			if _, err := hex4(d.b, i+2); err != nil {
				return err
			}
			i += 6
		default:
			return errBodyInvalidJSON
		}
	}
	return errBodyNotJSON
}

// literal checks that word (true, false or null) is at d.i and moves past it.
func (d *jsonDecoder) literal(word string) error {
	for k := 0; k < len(word); k++ {
		if d.i+k >= len(d.b) {
			return errBodyNotJSON
		}
		if d.b[d.i+k] != word[k] {
			return errBodyInvalidJSON
		}
	}
	d.i += len(word)
	return nil
}

// skipNumber checks the number at d.i (a '-' or a digit) and moves past it.
func (d *jsonDecoder) skipNumber() error {
	b, i := d.b, d.i
	if b[i] == '-' {
		i++
	}
	if i >= len(b) {
		return errBodyNotJSON
	}
	switch c := b[i]; {
	case c == '0':
		i++
	case '1' <= c && c <= '9':
		i = skipDigits(b, i+1)
	default:
		return errBodyInvalidJSON
	}
	if i < len(b) && b[i] == '.' {
		i++
		if i >= len(b) {
			return errBodyNotJSON
		}
		if !isDigit(b[i]) {
			return errBodyInvalidJSON
		}
		i = skipDigits(b, i+1)
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if i >= len(b) {
			return errBodyNotJSON
		}
		if !isDigit(b[i]) {
			return errBodyInvalidJSON
		}
		i = skipDigits(b, i+1)
	}
	d.i = i
	return nil
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

func skipDigits(b []byte, i int) int {
	for i < len(b) && isDigit(b[i]) {
		i++
	}
	return i
}

// skipValue checks the value at d.i, of any type, and moves past it. depth
// is the nesting depth of the container holding it. It keeps its own stack
// (one bit per open container) rather than recursing.
func (d *jsonDecoder) skipValue(depth int) error {
	var arrays uint64 // bit n set: the container at open[n] is an array
	open := 0         // containers opened here and not yet closed
	for {
		// A value.
		if d.i >= len(d.b) {
			return errBodyNotJSON
		}
		var err error
		switch c := d.b[d.i]; c {
		case '{', '[':
			if depth+open+1 > maxJSONDepth {
				return errBodyTooDeep
			}
			d.i++
			d.skipSpace()
			if d.i >= len(d.b) {
				return errBodyNotJSON
			}
			if c == '{' && d.b[d.i] == '}' || c == '[' && d.b[d.i] == ']' {
				d.i++ // empty
				break
			}
			if c == '[' {
				arrays |= 1 << open
			} else {
				arrays &^= 1 << open
				if err := d.skipKeyColon(); err != nil {
					return err
				}
			}
			open++
			continue // to its first value
		case '"':
			err = d.skipString()
		case 't':
			err = d.literal("true")
		case 'f':
			err = d.literal("false")
		case 'n':
			err = d.literal("null")
		case '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
			err = d.skipNumber()
		default:
			return errBodyInvalidJSON
		}
		if err != nil {
			return err
		}
		// After a value: close containers until one has a next value.
		for {
			if open == 0 {
				return nil
			}
			d.skipSpace()
			if d.i >= len(d.b) {
				return errBodyNotJSON
			}
			inArray := arrays>>(open-1)&1 == 1
			c := d.b[d.i]
			if inArray && c == ']' || !inArray && c == '}' {
				d.i++
				open--
				continue
			}
			if c != ',' {
				return errBodyInvalidJSON
			}
			d.i++
			d.skipSpace()
			if !inArray {
				if err := d.skipKeyColon(); err != nil {
					return err
				}
			}
			break
		}
	}
}

// skipKeyColon checks an object key and its colon, at or after white space,
// and moves to the value (after its leading white space).
func (d *jsonDecoder) skipKeyColon() error {
	d.skipSpace()
	if d.i >= len(d.b) {
		return errBodyNotJSON
	}
	if d.b[d.i] != '"' {
		return errBodyInvalidJSON
	}
	if err := d.skipString(); err != nil {
		return err
	}
	return d.colon()
}

// colon reads the ':' after an object key, with the space around it.
func (d *jsonDecoder) colon() error {
	d.skipSpace()
	if d.i >= len(d.b) {
		return errBodyNotJSON
	}
	if d.b[d.i] != ':' {
		return errBodyInvalidJSON
	}
	d.i++
	d.skipSpace()
	return nil
}

// CheckToken reports a problem with r.Token: missing, longer than
// MaxTokenLen, or holding anything but visible ASCII.
func (r *Request) CheckToken() error {
	switch {
	case len(r.Token) == 0:
		return errMissingToken
	case len(r.Token) > MaxTokenLen:
		return errTokenTooLong
	case !visibleASCII(r.Token):
		return errTokenChars
	}
	return nil
}

// CheckPlayerID reports a problem with r.PlayerID alone (which may be
// empty: not claimed): longer than MaxPlayerIDLen, or holding anything but
// visible ASCII.
func (r *Request) CheckPlayerID() error { return r.checkPlayerID() }

func (r *Request) checkPlayerID() error {
	switch {
	case len(r.PlayerID) > MaxPlayerIDLen:
		return errPlayerIDTooLong
	case !visibleASCII(r.PlayerID):
		return errPlayerIDChars
	}
	return nil
}

// checkSessionID reports a problem with r.SessionID, sent (not nil): empty,
// longer than MaxSessionLen, "." or "..", or holding anything but
// visible ASCII. (The request path tests for nil itself: no call on a
// request without one.)
func (r *Request) checkSessionID() error {
	switch {
	case len(r.SessionID) == 0:
		return errSessionEmpty
	case len(r.SessionID) > MaxSessionLen:
		return errSessionTooLong
	case string(r.SessionID) == "." || string(r.SessionID) == "..":
		return errSessionDots // no URL could name it in DELETE /v1/sessions/{id}
	case !visibleASCII(r.SessionID):
		return errSessionChars
	}
	return nil
}

// VisibleASCII reports whether every byte of b is in 0x21..0x7E: no
// control characters, space, DEL or non-ASCII (what a provider's Check
// wants of a field of its own, as CheckToken of the token).
func VisibleASCII(b []byte) bool { return visibleASCII(b) }

func visibleASCII(b []byte) bool {
	// A word at a time (SWAR bit tricks from "Bit Twiddling Hacks":
	// hasless/hasmore), four words to a branch: tokens are ~200 bytes and
	// this runs on every request.
	for len(b) >= 32 {
		w0, w1 := binary.LittleEndian.Uint64(b), binary.LittleEndian.Uint64(b[8:])
		w2, w3 := binary.LittleEndian.Uint64(b[16:]), binary.LittleEndian.Uint64(b[24:])
		if (notVisible(w0)|notVisible(w1)|notVisible(w2)|notVisible(w3))&hi8 != 0 {
			return false
		}
		b = b[32:]
	}
	for len(b) >= 8 {
		if notVisible(binary.LittleEndian.Uint64(b))&hi8 != 0 {
			return false
		}
		b = b[8:]
	}
	for _, c := range b {
		if c < 0x21 || c > 0x7e {
			return false
		}
	}
	return true
}

// notVisible has the high bit of each byte of w set where that byte is
// below 0x21 or above 0x7E (and maybe elsewhere when one is: callers only
// test for zero).
func notVisible(w uint64) uint64 { return (w-lo8*0x21)&^w | (w + lo8*(0x7f-0x7e)) | w }

// hasControl reports whether b holds a byte below 0x20, which a JSON
// string may not.
func hasControl(b []byte) bool {
	for len(b) >= 32 {
		w0, w1 := binary.LittleEndian.Uint64(b), binary.LittleEndian.Uint64(b[8:])
		w2, w3 := binary.LittleEndian.Uint64(b[16:]), binary.LittleEndian.Uint64(b[24:])
		if (below20(w0)|below20(w1)|below20(w2)|below20(w3))&hi8 != 0 {
			return true
		}
		b = b[32:]
	}
	for len(b) >= 8 {
		if below20(binary.LittleEndian.Uint64(b))&hi8 != 0 {
			return true
		}
		b = b[8:]
	}
	for _, c := range b {
		if c < 0x20 {
			return true
		}
	}
	return false
}

// below20 has the high bit of each byte of w set where that byte is below
// 0x20 (and maybe elsewhere when one is).
func below20(w uint64) uint64 { return (w - lo8*0x20) &^ w }

const (
	lo8 = 0x0101010101010101
	hi8 = 0x8080808080808080
)

// plainRun returns how many leading bytes of b need no attention inside a
// JSON string: not '"', not '\\', not a control character. It skips eight
// bytes at a time and leaves the interesting word to the byte loop.
func plainRun(b []byte) int {
	n := 0
	for len(b)-n >= 8 {
		w := binary.LittleEndian.Uint64(b[n:])
		q := w ^ (lo8 * '"')
		bs := w ^ (lo8 * '\\')
		if (q-lo8)&^q&hi8 != 0 || (bs-lo8)&^bs&hi8 != 0 || (w-lo8*0x20)&^w&hi8 != 0 {
			break
		}
		n += 8
	}
	return n
}

// maxEchoLen is how much of a caller's value an error echoes.
const maxEchoLen = 32

// EchoSafe returns the first 32 bytes of b with bytes outside 0x20..0x7E
// replaced by '?': a caller's value short and safe to quote in an error
// message (never a token).
func EchoSafe(b []byte) []byte { return echoSafe(b) }

func echoSafe(b []byte) []byte {
	echo := append([]byte(nil), b[:min(len(b), maxEchoLen)]...)
	for i, c := range echo {
		if c < 0x20 || c > 0x7e {
			echo[i] = '?'
		}
	}
	return echo
}

package validator

import (
	"errors"
	"unicode"
	"unicode/utf8"
)

// kakaoBody is what Decide reads of an upstream response body: where the
// fields the game server is handed sit in the body, and the values the
// decision depends on.
type kakaoBody struct {
	player, lockout, token, redirectURI span

	desc    string // desc, unescaped
	hasDesc bool

	playerID    string // player.playerId (a number as its literal text)
	hasPlayerID bool
	status      string // player.status
	hasStatus   bool

	lockoutIDType string // lockout.idType
	lockoutID     string // lockout.id
	hasLockoutID  bool
}

// maxUpstreamDepth is how deeply an upstream body may nest; the body's own
// object is depth 1. Kakao's bodies nest three deep; a game's player data
// may add some.
const maxUpstreamDepth = 64

// errUpstreamJSON is any reason parseKakaoBody refuses a body; which one
// does not matter to the decision (unreadable is unreadable).
var errUpstreamJSON = errors.New("upstream body is not strict JSON")

// The keys Decide reads, per object, by position.
var (
	topKeys     = []string{"player", "desc", "lockout", "token", "redirectUri"}
	playerKeys  = []string{"playerId", "status"}
	lockoutKeys = []string{"idType", "id"}
)

const (
	topPlayer = iota
	topDesc
	topLockout
	topToken
	topRedirectURI
)

// parseKakaoBody reads body as the strict JSON object Decide needs, or
// refuses it. It refuses what two parsers could read two ways, because the
// game server reads the same bytes playerguard decides on (it is handed
// the player object, or in drop-in mode the whole body):
//
//   - a key twice in one object, at any depth ("st\u0061tus" is "status");
//   - in the objects the decision reads (the body, player, lockout), two
//     keys equal under Unicode case folding ("status" and "STATUS" or
//     "ſtatus"), or a key that folds to one Decide reads without being it
//     ("Player", "PlayerID"): encoding/json, for one, matches keys
//     case-insensitively and keeps the last, so it would see another
//     status than the first key says;
//   - anything that is not RFC 8259 JSON (invalid UTF-8 included: other
//     parsers replace it, or refuse it, or keep the bytes, so "\xeb" and
//     "\xec" could be one key or one player id to them), trailing data after the object,
//     nesting beyond maxUpstreamDepth, and decision fields of the wrong
//     type (a desc, status or idType that is not a string, a playerId or
//     id that is neither a string nor a number). null is an absent field.
func parseKakaoBody(body []byte) (kakaoBody, bool) {
	var kb kakaoBody
	d := jsonDecoder{b: body}
	d.skipSpace()
	if d.i >= len(d.b) || d.b[d.i] != '{' || !utf8.Valid(body) {
		return kb, false
	}
	err := d.object(1, topKeys, func(k int) error {
		switch k {
		case topPlayer:
			return d.rawField(&kb.player, 2, func() error { return d.playerObject(&kb) })
		case topLockout:
			return d.rawField(&kb.lockout, 2, func() error { return d.lockoutObject(&kb) })
		case topToken:
			return d.rawField(&kb.token, 2, nil)
		case topRedirectURI:
			return d.rawField(&kb.redirectURI, 2, nil)
		default: // topDesc
			s, ok, err := d.stringField()
			kb.desc, kb.hasDesc = s, ok
			return err
		}
	})
	if err != nil {
		return kakaoBody{}, false
	}
	d.skipSpace()
	if d.i != len(d.b) {
		return kakaoBody{}, false
	}
	return kb, true
}

func (d *jsonDecoder) playerObject(kb *kakaoBody) error {
	return d.object(2, playerKeys, func(k int) error {
		var err error
		if k == 0 {
			kb.playerID, kb.hasPlayerID, err = d.idField()
		} else {
			kb.status, kb.hasStatus, err = d.stringField()
		}
		return err
	})
}

func (d *jsonDecoder) lockoutObject(kb *kakaoBody) error {
	return d.object(2, lockoutKeys, func(k int) error {
		var err error
		if k == 0 {
			kb.lockoutIDType, _, err = d.stringField()
		} else {
			kb.lockoutID, kb.hasLockoutID, err = d.idField()
		}
		return err
	})
}

// rawField reads the value at d.i (at depth), records where it sits in s
// (nothing for null), and reads an object with obj when it is one and obj
// is not nil.
func (d *jsonDecoder) rawField(s *span, depth int, obj func() error) error {
	start := d.i
	var err error
	switch {
	case d.i >= len(d.b):
		return errUpstreamJSON
	case d.b[d.i] == 'n':
		return d.literal("null")
	case d.b[d.i] == '{' && obj != nil:
		err = obj()
	default:
		err = d.value(depth)
	}
	if err != nil {
		return err
	}
	*s = span{uint32(start), uint32(d.i)}
	return nil
}

// stringField reads a string or null.
func (d *jsonDecoder) stringField() (string, bool, error) {
	if d.i < len(d.b) && d.b[d.i] == 'n' {
		return "", false, d.literal("null")
	}
	if d.i >= len(d.b) || d.b[d.i] != '"' {
		return "", false, errUpstreamJSON
	}
	s, err := d.str()
	return string(s), err == nil, err
}

// idField reads an id documented as a string; a JSON number is taken as its
// literal text, since player ids are numeric and some encoders say so.
func (d *jsonDecoder) idField() (string, bool, error) {
	if d.i < len(d.b) && (d.b[d.i] == '-' || isDigit(d.b[d.i])) {
		start := d.i
		if err := d.skipNumber(); err != nil {
			return "", false, err
		}
		return string(d.b[start:d.i]), true, nil
	}
	return d.stringField()
}

// object reads the object at d.i (a '{') at depth, refusing duplicate keys.
// With known non-nil it is an object the decision reads: each key in known
// is handed to field by its index (field must read the value), keys that
// fold to one in known without being it are refused, and so are two keys
// equal under case folding. Other keys' values are checked by value.
func (d *jsonDecoder) object(depth int, known []string, field func(k int) error) error {
	if depth > maxUpstreamDepth {
		return errUpstreamJSON
	}
	d.i++ // the '{'
	d.skipSpace()
	if d.i < len(d.b) && d.b[d.i] == '}' {
		d.i++
		return nil
	}
	seen := make(map[string]struct{})
	for {
		if d.i >= len(d.b) || d.b[d.i] != '"' {
			return errUpstreamJSON
		}
		raw, err := d.str()
		if err != nil {
			return err
		}
		key := string(raw)
		k := -1
		if known != nil {
			fk := foldKey(key)
			for i, name := range known {
				if key == name {
					k = i
				} else if fk == foldKey(name) {
					return errUpstreamJSON // "STATUS", "Player", "ſtatus"
				}
			}
			key = fk
		}
		if _, dup := seen[key]; dup {
			return errUpstreamJSON
		}
		seen[key] = struct{}{}
		if err := d.colon(); err != nil {
			return err
		}
		if k >= 0 {
			err = field(k)
		} else {
			err = d.value(depth + 1)
		}
		if err != nil {
			return err
		}
		if end, err := d.after('}'); end || err != nil {
			return err
		}
	}
}

// after reads what follows a member of a container that ends with end: a
// comma (false: another member comes) or end (true).
func (d *jsonDecoder) after(end byte) (bool, error) {
	d.skipSpace()
	if d.i >= len(d.b) {
		return false, errUpstreamJSON
	}
	switch d.b[d.i] {
	case end:
		d.i++
		return true, nil
	case ',':
		d.i++
		d.skipSpace()
		return false, nil
	}
	return false, errUpstreamJSON
}

// value checks the value at d.i, of any type, found at depth; objects in
// it are checked for duplicate keys.
func (d *jsonDecoder) value(depth int) error {
	if d.i >= len(d.b) {
		return errUpstreamJSON
	}
	switch c := d.b[d.i]; c {
	case '{':
		return d.object(depth, nil, nil)
	case '[':
		if depth > maxUpstreamDepth {
			return errUpstreamJSON
		}
		d.i++
		d.skipSpace()
		if d.i < len(d.b) && d.b[d.i] == ']' {
			d.i++
			return nil
		}
		for {
			if err := d.value(depth + 1); err != nil {
				return err
			}
			if end, err := d.after(']'); end || err != nil {
				return err
			}
		}
	case '"':
		return d.skipString()
	case 't':
		return d.literal("true")
	case 'f':
		return d.literal("false")
	case 'n':
		return d.literal("null")
	case '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
		return d.skipNumber()
	}
	return errUpstreamJSON
}

// foldKey maps s to one representative of its class under Unicode simple
// case folding (each rune to the smallest rune of its folding orbit), so
// that foldKey(a) == foldKey(b) exactly when strings.EqualFold(a, b).
func foldKey(s string) string {
	ascii := true
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= utf8.RuneSelf || 'a' <= c && c <= 'z' {
			ascii = false
			break
		}
	}
	if ascii {
		return s // no lower-case letter to fold: its own representative
	}
	b := make([]byte, 0, len(s))
	for _, r := range s {
		m := r
		for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
			m = min(m, f)
		}
		b = utf8.AppendRune(b, m)
	}
	return string(b)
}

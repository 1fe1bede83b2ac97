package validator

import (
	"errors"
	"unicode"
	"unicode/utf8"
)

// maxUpstreamDepth is how deeply an upstream body may nest; the body's own
// object is depth 1. Kakao's bodies nest three deep; a game's player data
// may add some.
const maxUpstreamDepth = 64

// errUpstreamJSON is any reason a JSONReader refuses a body; which one
// does not matter to the decision (unreadable is unreadable).
var errUpstreamJSON = errors.New("upstream body is not strict JSON")

// JSONReader reads one upstream body strictly, for a provider's decision:
// RFC 8259 JSON in valid UTF-8, no key twice in one object at any depth,
// nesting at most 64 deep (the body's own object is depth 1), and, in the objects a decision reads,
// no two keys equal under Unicode case folding and no key that folds to
// one it reads without being it ("STATUS", "Player", "ſtatus"): two
// parsers must not read the same bytes two ways, because the game server
// reads what playerguard decides on. encoding/json, for one, matches keys
// case-insensitively and keeps the last.
//
// Its methods read the value at the current position and move past it;
// any error means the body is unreadable (which error does not matter).
type JSONReader struct{ d jsonDecoder }

// NewJSONReader returns a reader of body, or false when body is not valid
// UTF-8 or does not start (after white space) with an object.
func NewJSONReader(body []byte) (*JSONReader, bool) {
	r := &JSONReader{jsonDecoder{b: body}}
	r.d.skipSpace()
	if r.d.i >= len(body) || body[r.d.i] != '{' || !utf8.Valid(body) {
		return nil, false
	}
	return r, true
}

// Object reads the object at the current position (a '{') at depth.
// With known non-nil it is an object the decision reads: each key in
// known is handed to field by its index (field must read its value with
// the reader), and keys folding to one in known without being it are
// refused. Other keys' values are checked and skipped.
func (r *JSONReader) Object(depth int, known []string, field func(k int) error) error {
	if r.d.i >= len(r.d.b) || r.d.b[r.d.i] != '{' {
		return errUpstreamJSON
	}
	return r.d.object(depth, known, field)
}

// Raw reads any value at depth and returns where it sits in the body
// (end 0: null); obj, if not nil, reads it instead when it is an object.
func (r *JSONReader) Raw(depth int, obj func() error) (off, end int, err error) {
	var s span
	err = r.d.rawField(&s, depth, obj)
	return int(s.off), int(s.end), err
}

// String reads a string (true) or null (false).
func (r *JSONReader) String() (string, bool, error) { return r.d.stringField() }

// ID reads a string, or a number as its literal text (true), or null.
func (r *JSONReader) ID() (string, bool, error) { return r.d.idField() }

// End reports whether nothing but white space follows.
func (r *JSONReader) End() bool {
	r.d.skipSpace()
	return r.d.i == len(r.d.b)
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

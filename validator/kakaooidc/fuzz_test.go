package kakaooidc

import (
	"bytes"
	"encoding/json"
	"math"
	"strings"
	"testing"
)

// FuzzReadClaims: what readClaims accepts, encoding/json reads as one
// object with the same claims, no key twice and no known claim in two
// cases: the verdict is made on what any other reader of the token sees.
func FuzzReadClaims(f *testing.F) {
	for _, s := range []string{
		`{"iss":"https://kauth.kakao.com","aud":"k","sub":"1","exp":1700000000,"iat":1699990000,"auth_time":1699990000,"nonce":"n","nickname":"hana"}`,
		`{"aud":["a","b"],"sub":"1","exp":1.5e9}`,
		`{"sub":"1","sub":"2"}`,
		`{"sub":"1","SUB":"2"}`,
		`{"exp":"1700000000"}`,
		`{"aud":{"x":1}}`,
		`{"nonce":null,"email":"a\u0040b"}`,
		`["x"]`,
		"{\"sub\":\"\xff\"}",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		c, ok := readClaims(b)
		if !ok {
			return
		}
		var m map[string]any
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.UseNumber()
		if err := dec.Decode(&m); err != nil || m == nil {
			t.Fatalf("readClaims accepted %q; encoding/json: %v", b, err)
		}
		if dec.More() {
			t.Fatalf("readClaims accepted trailing data: %q", b)
		}
		for k := range m {
			for _, known := range claimKeys {
				if k != known && strings.EqualFold(k, known) {
					t.Fatalf("readClaims accepted %q beside or instead of %q", k, known)
				}
			}
		}
		str := func(name, got string) {
			if v, present := m[name]; present && v != nil && v != got {
				t.Fatalf("%s: readClaims %q, encoding/json %v (%q)", name, got, v, b)
			}
		}
		str("iss", c.Issuer)
		str("sub", c.Subject)
		str("nonce", c.Nonce)
		str("email", c.Email)
		if v, present := m["exp"]; present && v != nil {
			n, isNum := v.(json.Number)
			f, err := n.Float64()
			if !isNum || err != nil || !c.HasExpiry || int64(math.Floor(f)) != c.Expiry {
				t.Fatalf("exp: readClaims %d %v, encoding/json %v (%q)", c.Expiry, c.HasExpiry, v, b)
			}
		}
		if u := c; u.Subject != "" {
			out := userJSON(&u)
			var back map[string]any
			if json.Unmarshal(out, &back) != nil || back["id"] != u.Subject {
				t.Fatalf("user object %s for sub %q", out, u.Subject)
			}
		}
	})
}

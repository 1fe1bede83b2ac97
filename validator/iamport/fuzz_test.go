package iamport

import (
	"bytes"
	"encoding/json"
	"testing"

	"playerguard/validator"
)

// FuzzDecide: no body makes Decide panic, and an allow is only ever given
// for what encoding/json also reads as code 0 and certified true, with a
// birth date: the decision is made on what any reader of the body sees.
func FuzzDecide(f *testing.F) {
	for _, s := range []string{
		`{"code":0,"message":null,"response":{"certified":true,"birthday":"2000-01-01","certified_at":1781400000,"unique_key":"ci"}}`,
		`{"code":0,"response":{"certified":true,"birth":946652400}}`,
		`{"code":-1,"message":"x","response":null}`,
		`{"code":0,"response":{"certified":false,"certified":true,"birthday":"2000-01-01"}}`,
		`{"code":"0","response":{"certified":true,"birthday":"2000-01-01"}}`,
		`{"code":0,"response":{"Certified":true,"birthday":"2000-01-01"}}`,
		`{"code":0,"response":{"certified":"true","birthday":"2000-01-01"}}`,
	} {
		f.Add(200, []byte(s))
	}
	f.Fuzz(func(t *testing.T, status int, body []byte) {
		d := Decide(status, body, t0, Gate{Rule: RuleFull, MinAge: 19})
		if d.Verdict != validator.Allow {
			return
		}
		var doc struct {
			Code     *json.Number `json:"code"`
			Response *struct {
				Certified *bool   `json:"certified"`
				Birthday  *string `json:"birthday"`
				Birth     *int64  `json:"birth"`
			} `json:"response"`
		}
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.UseNumber()
		if err := dec.Decode(&doc); err != nil || doc.Code == nil || doc.Code.String() != "0" && doc.Code.String() != "-0" ||
			doc.Response == nil || doc.Response.Certified == nil || !*doc.Response.Certified || status != 200 ||
			(doc.Response.Birthday == nil && doc.Response.Birth == nil) {
			t.Fatalf("allow for HTTP %d %q, which encoding/json reads otherwise (%v)", status, body, err)
		}
	})
}

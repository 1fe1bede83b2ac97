package iamport

import (
	"strconv"
	"time"

	"playerguard/validator"
)

// The age gate's reasons beside the engine's.
var (
	ReasonUnderage             = validator.NewReason("underage")
	ReasonNotCertified         = validator.NewReason("not_certified")
	ReasonCertificationExpired = validator.NewReason("certification_expired")
	ReasonCertificationReused  = validator.NewReason("certification_reused")
)

// Cert is what the age gate reads of a certification: never the name,
// phone, gender or DI; the CI (UniqueKey) only to derive the person key.
type Cert struct {
	Certified   bool
	CertifiedAt int64 // Unix seconds; 0 when absent
	Birthday    string
	Birth       int64 // Unix seconds, read in Seoul
	HasBirth    bool
	UniqueKey   string
}

// Gate is the rule a certification must meet.
type Gate struct {
	Rule       AgeRule
	MinAge     int
	MaxCertAge time.Duration // 0: any
}

// Decision is the age gate's verdict on one i'mport answer.
type Decision struct {
	Verdict validator.Verdict
	Reason  validator.Reason
	// Failure: an upstream failure (the breaker counts it).
	Failure bool
	Code    int
	HasCode bool
	Cert    Cert // when the certification was read
}

// Decide is the age gate's decision table, a pure function of the HTTP
// status and body of GET /certifications/{imp_uid} (after the one retry
// a 401 gets) and now.
//
//   - 200, code 0, certified, the rule met: allow, ok; not met: kick,
//     underage; certified_at older than MaxCertAge: kick,
//     certification_expired; certified false: kick, not_certified.
//   - 200 with a non-zero code, or 404 with an i'mport body (a code and a
//     message: an imp_uid i'mport does not know): kick, not_certified.
//   - Anything else (401 after the retry, 5xx, 408, 429, another status, a
//     body that is not i'mport's or not strict JSON, a certified answer
//     without a birth date): unavailable, never a kick.
func Decide(status int, body []byte, now time.Time, g Gate) Decision {
	unavailable := Decision{Verdict: validator.Unavailable, Reason: validator.ReasonUpstreamUnavailable, Failure: true}
	env, ok := readEnvelope(body)
	if ok {
		unavailable.Code, unavailable.HasCode = env.code, true
	}
	switch {
	case status == 404 && ok && env.code != 0:
		return Decision{Verdict: validator.Kick, Reason: ReasonNotCertified, Code: env.code, HasCode: true}
	case status != 200 || !ok:
		return unavailable
	case env.code != 0:
		return Decision{Verdict: validator.Kick, Reason: ReasonNotCertified, Code: env.code, HasCode: true}
	case !env.hasCert:
		return unavailable
	}
	c := env.cert
	d := Decision{Verdict: validator.Kick, Code: 0, HasCode: true, Cert: c}
	if !c.Certified {
		d.Reason = ReasonNotCertified
		return d
	}
	if g.MaxCertAge > 0 && (c.CertifiedAt == 0 || now.Sub(time.Unix(c.CertifiedAt, 0)) > g.MaxCertAge) {
		d.Reason = ReasonCertificationExpired
		return d
	}
	birth, ok := ParseDate(c.Birthday)
	if !ok {
		if !c.HasBirth {
			return unavailable // certified, and no birth date to judge by
		}
		birth = DateIn(time.Unix(c.Birth, 0))
	}
	if !g.Rule.Meets(birth, DateIn(now), g.MinAge) {
		d.Reason = ReasonUnderage
		return d
	}
	d.Verdict, d.Reason = validator.Allow, validator.ReasonOK
	return d
}

// envelope is an i'mport answer: {code, message, response}.
type envelope struct {
	code    int
	hasCert bool
	cert    Cert
}

var (
	envelopeKeys = []string{"code", "message", "response"}
	certKeys     = []string{"certified", "certified_at", "birthday", "birth", "unique_key"}
)

// readEnvelope reads body strictly (validator.JSONReader): an object with
// an integer code; response, when an object, is the certification.
func readEnvelope(body []byte) (envelope, bool) {
	var e envelope
	r, ok := validator.NewJSONReader(body)
	if !ok {
		return e, false
	}
	hasCode := false
	err := r.Object(1, envelopeKeys, func(k int) error {
		switch k {
		case 0: // an integer, written as one
			off, end, err := r.Raw(2, nil)
			if err != nil || end == 0 || !isInteger(body[off:end]) {
				return errField
			}
			n, err := strconv.Atoi(string(body[off:end]))
			if err != nil {
				return errField
			}
			e.code, hasCode = n, true
			return nil
		case 1:
			_, _, err := r.String()
			return err
		}
		_, _, err := r.Raw(2, func() error {
			e.hasCert = true
			return r.Object(2, certKeys, func(k int) error { return readCertField(r, body, k, &e.cert) })
		})
		return err
	})
	return e, err == nil && hasCode && r.End()
}

func readCertField(r *validator.JSONReader, body []byte, k int, c *Cert) error {
	switch k {
	case 0: // certified: true, or anything else (false, null) is not
		off, end, err := r.Raw(3, nil)
		if err != nil {
			return err
		}
		c.Certified = string(body[off:end]) == "true"
		return nil
	case 1, 3: // certified_at, birth: Unix seconds
		s, present, err := r.ID()
		if err != nil || !present {
			return err
		}
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || !isInteger([]byte(s)) {
			return errField
		}
		switch {
		case k == 1:
			c.CertifiedAt = n
		case n != 0: // 0 is no birth date, not 1 January 1970
			c.Birth, c.HasBirth = n, true
		}
		return nil
	}
	s, _, err := r.String()
	if k == 2 {
		c.Birthday = s
	} else {
		c.UniqueKey = s
	}
	return err
}

// isInteger reports whether b is a JSON integer: -?digits, no sign, no
// fraction, no exponent.
func isInteger(b []byte) bool {
	if len(b) > 0 && b[0] == '-' {
		b = b[1:]
	}
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

type fieldError struct{}

func (fieldError) Error() string { return "i'mport field of the wrong type" }

var errField error = fieldError{}

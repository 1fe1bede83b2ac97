package iamport

import (
	"crypto/sha256"
	"encoding/json"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"

	"playerguard/validator"
)

// The SMS one-time code endpoints (seed 004): for games i'mport (via
// Danal) approved for it. Each SMS costs the game money, so requests are
// limited per phone number before anything is forwarded.
const (
	OTPRequestPath = "/v1/iamport/otp/request"
	OTPConfirmPath = "/v1/iamport/otp/confirm"
	// The upstream's.
	otpRequestUpstream = "/certifications/otp/request"
	otpConfirmUpstream = "/certifications/otp/confirm/"
	// DefaultOTPMaxPerPhone and OTPWindow: at most 5 code requests per
	// phone number in 10 minutes.
	DefaultOTPMaxPerPhone = 5
	OTPWindow             = 10 * time.Minute
)

// OTPOutcomes are the outcome label values of playerguard_otp_total: for
// step "request", sent (forwarded, i'mport answered an imp_uid), limited
// (over -otp-max-per-phone, not forwarded), rejected (i'mport's non-zero
// code: 422), failed (no answer: 503), bad_request (400); for step
// "confirm", the age gate's reasons, unavailable and bad_request.
var (
	otpRequestOutcomes = []string{"sent", "limited", "rejected", "failed", "bad_request"}
	otpConfirmOutcomes = []string{"ok", "underage", "not_certified", "certification_expired", "certification_reused", "unavailable", "bad_request"}
)

// Routes implements validator.Router: the two SMS code endpoints.
func (p *Provider) Routes() []validator.Route {
	return []validator.Route{
		{Path: OTPRequestPath, Usage: "POST " + OTPRequestPath, Serve: p.serveOTPRequest},
		{Path: OTPConfirmPath, Usage: "POST " + OTPConfirmPath, Serve: p.serveOTPConfirm},
	}
}

// maxPhones bounds the phones phoneLimit follows at once: past it (a
// flood of distinct numbers within a window), new numbers are refused like
// a number over its limit until old ones age out.
const maxPhones = 1 << 18

// phoneLimit counts code requests per phone number (a digest of its
// digits: 010-5555-1234 and 01055551234 are one phone) in a sliding
// window.
type phoneLimit struct {
	max    int
	window time.Duration
	now    func() time.Time

	mu    sync.Mutex
	sent  map[[sha256.Size]byte][]time.Time
	sweep time.Time
}

func newPhoneLimit(max int, window time.Duration, now func() time.Time) *phoneLimit {
	return &phoneLimit{max: max, window: window, now: now, sent: map[[sha256.Size]byte][]time.Time{}}
}

// take records one request for phone (its digits) and reports whether it
// is within the limit; a request over it is not recorded.
func (l *phoneLimit) take(digits string) bool {
	k := sha256.Sum256([]byte("playerguard phone\x00" + digits))
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.sweep) > l.window || len(l.sent) >= maxPhones && now.Sub(l.sweep) > time.Second { // drop phones quiet for a window
		for pk, ts := range l.sent {
			if len(ts) == 0 || now.Sub(ts[len(ts)-1]) >= l.window {
				delete(l.sent, pk)
			}
		}
		l.sweep = now
	}
	ts, known := l.sent[k]
	if !known && len(l.sent) >= maxPhones {
		return false
	}
	i := 0
	for i < len(ts) && now.Sub(ts[i]) >= l.window {
		i++
	}
	ts = ts[i:]
	if len(ts) >= l.max {
		l.sent[k] = ts
		return false
	}
	l.sent[k] = append(ts, now)
	return true
}

// otpRequest is POST /v1/iamport/otp/request's body.
type otpRequest struct {
	Name        string `json:"name"`
	Phone       string `json:"phone"`
	Birth       string `json:"birth"`
	GenderDigit string `json:"genderDigit"`
	Carrier     string `json:"carrier"`
	IsMvno      *bool  `json:"isMvno"`
	Company     string `json:"company"`
	MerchantUID string `json:"merchantUid"`
	PG          string `json:"pg"`
}

var otpRequestKeys = []string{"name", "phone", "birth", "genderDigit", "carrier", "isMvno", "company", "merchantUid", "pg"}

// readStrict reads body into v after checking it with validator.JSONReader
// (one object, no member twice or in two cases, only known names).
func readStrict(body []byte, known []string, v any) string {
	if len(body) == 0 {
		return "request body must be a JSON object"
	}
	r, ok := validator.NewJSONReader(body)
	if !ok {
		return "request body is not a JSON object"
	}
	unknown := ""
	err := r.Object(1, known, func(k int) error { _, _, err := r.Raw(2, nil); return err })
	if err != nil || !r.End() {
		return "request body is not valid JSON, or has a field twice or in two cases"
	}
	dec := json.NewDecoder(strings.NewReader(string(body)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		unknown = err.Error()
		if strings.Contains(unknown, "unknown field") {
			return "unknown field " + strings.TrimPrefix(unknown, "json: unknown field ") + " (want " + strings.Join(known, ", ") + ")"
		}
		return "a field has the wrong type: " + strings.TrimPrefix(unknown, "json: ")
	}
	return ""
}

// check reports what is wrong with a code request ("" when nothing) and
// the phone's digits.
func (q *otpRequest) check() (string, string) {
	switch {
	case q.Name == "" || len(q.Name) > 64:
		return "name is required, at most 64 bytes", ""
	case q.GenderDigit == "" || len(q.GenderDigit) != 1 || q.GenderDigit[0] < '1' || q.GenderDigit[0] > '8':
		return "genderDigit must be the 7th digit of the resident registration number, \"1\" to \"8\"", ""
	case q.Carrier != "SKT" && q.Carrier != "KT" && q.Carrier != "LGT":
		return "carrier must be SKT, KT or LGT (with isMvno true for a budget carrier)", ""
	case q.IsMvno == nil:
		return "isMvno is required: true or false", ""
	case len(q.Company) > 64 || len(q.MerchantUID) > 64 || len(q.PG) > 64:
		return "company, merchantUid and pg are at most 64 bytes", ""
	}
	if _, ok := ParseDate(birthDashed(q.Birth)); !ok {
		return "birth must be a real date, YYYYMMDD", ""
	}
	var digits strings.Builder
	for i, c := range q.Phone {
		switch {
		case c >= '0' && c <= '9':
			digits.WriteRune(c)
		case c == '-' && i > 0:
		default:
			return "phone must be digits, with optional dashes", ""
		}
	}
	if n := digits.Len(); n < 10 || n > 11 {
		return "phone must be a mobile number of 10 or 11 digits", ""
	}
	return "", digits.String()
}

// birthDashed turns YYYYMMDD into YYYY-MM-DD ("" when not 8 digits).
func birthDashed(b string) string {
	if len(b) != 8 {
		return ""
	}
	for _, c := range b {
		if c < '0' || c > '9' {
			return ""
		}
	}
	return b[:4] + "-" + b[4:6] + "-" + b[6:]
}

func (p *Provider) serveOTPRequest(ctx *fasthttp.RequestCtx) {
	count := p.otp.requests
	if !ctx.IsPost() {
		ctx.Response.Header.Set("Allow", "POST")
		validator.WriteError(ctx, fasthttp.StatusMethodNotAllowed, "method not allowed: use POST with a JSON body")
		return
	}
	var q otpRequest
	msg := readStrict(ctx.Request.Body(), otpRequestKeys, &q)
	digits := ""
	if msg == "" {
		msg, digits = q.check()
	}
	if msg != "" {
		count["bad_request"].Inc()
		validator.WriteError(ctx, fasthttp.StatusBadRequest, msg)
		return
	}
	if !p.otp.limit.take(digits) {
		count["limited"].Inc()
		validator.WriteError(ctx, fasthttp.StatusTooManyRequests, "too many code requests for this phone number: at most "+
			strconv.Itoa(p.otp.limit.max)+" per "+p.otp.limit.window.String()+" (-otp-max-per-phone); each SMS costs the game")
		return
	}
	body, _ := json.Marshal(map[string]any{
		"name": q.Name, "phone": q.Phone, "birth": q.Birth, "gender_digit": q.GenderDigit,
		"carrier": q.Carrier, "is_mvno": *q.IsMvno, "company": q.Company, "merchant_uid": q.MerchantUID, "pg": q.PG,
	})
	budget := p.redisBudget()
	status, got, err := p.call(fasthttp.MethodPost, otpRequestUpstream, body, &budget)
	var doc struct {
		Code     *int    `json:"code"`
		Message  *string `json:"message"`
		Response *struct {
			ImpUID string `json:"imp_uid"`
		} `json:"response"`
	}
	if err == nil && got != nil {
		err = json.Unmarshal(got, &doc)
	}
	switch {
	case err != nil || doc.Code == nil || status >= 500 || status == 401 || status == 408 || status == 429:
		count["failed"].Inc()
		attrs := []any{"provider", Name, "step", "otp_request", "upstream_status", status}
		if err != nil {
			attrs = append(attrs, "error", err.Error())
		}
		p.log.Warn("upstream failure", attrs...)
		validator.WriteError(ctx, fasthttp.StatusServiceUnavailable, "i'mport unavailable: a code may or may not have been sent; try again later")
	case *doc.Code == 0 && doc.Response != nil && validImpUID(doc.Response.ImpUID):
		count["sent"].Inc()
		ctx.SetStatusCode(fasthttp.StatusOK)
		ctx.SetContentType("application/json")
		b, _ := json.Marshal(map[string]string{"impUid": doc.Response.ImpUID})
		ctx.SetBody(b)
	default:
		count["rejected"].Inc()
		m := "i'mport refused the request (code " + strconv.Itoa(*doc.Code) + ")"
		if doc.Message != nil && *doc.Message != "" {
			m = scrub(*doc.Message, q.Name) + " (code " + strconv.Itoa(*doc.Code) + ")"
		}
		validator.WriteError(ctx, fasthttp.StatusUnprocessableEntity, m)
	}
}

// scrub removes personal data from i'mport's message, should it quote
// them: the caller's name (and the other strings given), and every run of
// six or more digits, separators allowed between them (a phone number or
// a birth date in any spelling: 010-5555-1234, 2000.01.01).
func scrub(msg string, data ...string) string {
	for _, d := range data {
		if len(d) >= 2 {
			msg = strings.ReplaceAll(msg, d, "[redacted]")
		}
	}
	var b strings.Builder
	for i := 0; i < len(msg); {
		if msg[i] < '0' || msg[i] > '9' {
			b.WriteByte(msg[i])
			i++
			continue
		}
		// A run: digits, with single separators between them.
		j, digits, end := i, 0, i
		for j < len(msg) {
			switch c := msg[j]; {
			case c >= '0' && c <= '9':
				digits++
				j++
				end = j
				continue
			case (c == '-' || c == '.' || c == '/' || c == ' ') && j+1 < len(msg) && msg[j+1] >= '0' && msg[j+1] <= '9':
				j++
				continue
			}
			break
		}
		if digits >= 6 {
			b.WriteString("[redacted]")
		} else {
			b.WriteString(msg[i:end])
		}
		i = end
	}
	return b.String()
}

func validImpUID(s string) bool { return checkImpUID([]byte(s)) == nil }

// otpConfirm is POST /v1/iamport/otp/confirm's body.
type otpConfirm struct {
	ImpUID   string `json:"impUid"`
	OTP      string `json:"otp"`
	PlayerID string `json:"playerId"`
	MinAge   *int   `json:"minAge"`
}

var otpConfirmKeys = []string{"impUid", "otp", "playerId", "minAge"}

func (p *Provider) serveOTPConfirm(ctx *fasthttp.RequestCtx) {
	count := p.otp.confirms
	if !ctx.IsPost() {
		ctx.Response.Header.Set("Allow", "POST")
		validator.WriteError(ctx, fasthttp.StatusMethodNotAllowed, "method not allowed: use POST with a JSON body")
		return
	}
	var q otpConfirm
	msg := readStrict(ctx.Request.Body(), otpConfirmKeys, &q)
	minAge := p.cfg.MinAge
	if msg == "" {
		r := validator.Request{Token: []byte(q.ImpUID), PlayerID: []byte(q.PlayerID)}
		if q.MinAge != nil {
			r.MinAge = []byte(strconv.Itoa(*q.MinAge))
			minAge = *q.MinAge
		}
		if err := p.Check(&r); err != nil {
			msg = err.Error()
		} else if len(q.OTP) < 4 || len(q.OTP) > 8 || strings.Trim(q.OTP, "0123456789") != "" {
			msg = "otp must be the code the SMS gave, 4 to 8 digits"
		}
	}
	if msg != "" {
		count["bad_request"].Inc()
		validator.WriteError(ctx, fasthttp.StatusBadRequest, msg)
		return
	}
	res := p.confirm(q.ImpUID, q.PlayerID, q.OTP, minAge)
	if c := count[res.Reason.String()]; c != nil {
		c.Inc()
	} else {
		count["unavailable"].Inc()
	}
	validator.WriteAnswer(ctx, &validator.Answer{Res: res, Verdict: res.Verdict, Reason: res.Reason, Source: validator.SourceUpstream})
}

// confirm sends the code and judges the certification it returns as the
// age gate does. A code i'mport refuses (a non-zero code in its own
// answer, whatever the 4xx but 401, 408 and 429) is not_certified: the
// client may ask again.
func (p *Provider) confirm(impUID, player, otp string, minAge int) *validator.Result {
	return p.gate(impUID, player, minAge, "otp_confirm", func(budget *time.Duration) (int, []byte, error) {
		body, _ := json.Marshal(map[string]string{"otp": otp})
		status, got, err := p.call(fasthttp.MethodPost, otpConfirmUpstream+impUID, body, budget)
		if env, isEnv := readEnvelope(got); err == nil && isEnv && env.code != 0 && status >= 400 && status < 500 && status != 401 && status != 408 && status != 429 {
			status = 404 // Decide's not_certified: i'mport's refusal
		}
		return status, got, err
	})
}

// otpState is the provider's SMS code state and series.
type otpState struct {
	limit              *phoneLimit
	requests, confirms map[string]prometheus.Counter
}

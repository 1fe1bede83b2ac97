package validator

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/valyala/fasthttp"
)

var (
	ctJSON = []byte("application/json")

	hdrDecision = []byte("X-Playerguard-Decision")
	hdrReason   = []byte("X-Playerguard-Reason")
	hdrSource   = []byte("X-Playerguard-Source")
	hdrDegraded = []byte("X-Playerguard-Degraded")
	hdrTrue     = []byte("true")

	// Pre-rendered label bytes for the response headers.
	verdictBytes [numVerdicts][]byte
	reasonBytes  [maxReasons][]byte // filled by init and NewReason
	sourceBytes  [numSources][]byte
)

func init() {
	for i := range numVerdicts {
		verdictBytes[i] = []byte(i.String())
	}
	for i := range numBuiltinReasons {
		reasonBytes[i] = []byte(i.String())
	}
	for i := range numSources {
		sourceBytes[i] = []byte(i.String())
	}
}

// Handler serves the validation API: each provider's endpoint (POST/GET
// /v1/validate for Kakao Games, /v1/kakao-login/validate...) and the
// providers' own routes (Kakao Games' drop-in POST
// /service/v5/auth/validation). Use it as a fasthttp.Server's Handler.
func (v *Validator) Handler(ctx *fasthttp.RequestCtx) {
	// Callers send a path as is: compared with the raw request URI, that
	// skips fasthttp's URI parsing and normalizing (an eighth of a cache
	// hit's CPU). Anything else (a query string, an absolute URI, dot
	// segments, escapes) goes the normalized way.
	if !v.route(ctx, ctx.Request.Header.RequestURI()) && !v.route(ctx, ctx.Path()) && !v.serveLive(ctx) {
		v.notFound(ctx, ctx.Path())
	}
}

// route serves a request for path if it is a provider's, and says whether
// it was.
func (v *Validator) route(ctx *fasthttp.RequestCtx, path []byte) bool {
	for _, pv := range v.providers {
		if bytes.Equal(path, pv.path) {
			v.serveValidate(ctx, pv)
			return true
		}
		for i := range pv.routes {
			if string(path) == pv.routes[i].Path { // compared in place, no copy
				v.serveRoute(ctx, pv, &pv.routes[i])
				return true
			}
		}
	}
	return false
}

// notFound answers a path no configured provider serves: 404 naming the
// provider if it is an unconfigured one's, else the paths there are.
func (v *Validator) notFound(ctx *fasthttp.RequestCtx, path []byte) {
	for _, e := range v.cfg.Unconfigured {
		if string(path) == e.Path {
			writeError(ctx, fasthttp.StatusNotFound, "provider "+e.Provider+" is not configured")
			return
		}
	}
	var uses []string
	for _, pv := range v.providers {
		uses = append(uses, "POST "+pv.spec.Path)
		for _, rt := range pv.routes {
			uses = append(uses, rt.Usage)
		}
	}
	uses = append(uses, "GET /v1/events", "GET /v1/sessions?playerId=...", "DELETE /v1/sessions/{sessionId}")
	msg := "unknown path: use " + strings.Join(uses, " or ")
	writeError(ctx, fasthttp.StatusNotFound, msg)
}

// ErrorHandler answers requests fasthttp could not read; use it as the
// fasthttp.Server's ErrorHandler so callers get JSON naming the problem: 413
// for a body over MaxBodyLen (the server's MaxRequestBodySize), 431 for
// headers over the read buffer, 408 for a read that timed out (a deadline
// the server or a drain set), 400 for anything else.
//
// fasthttp closes the connection after writing the answer. When the body
// is too large, the client is most likely still sending it, and a plain
// close with unread data makes the kernel reset the connection, which can
// drop the answer before the client reads it. So if ctx.Conn() (the
// net.Conn the server's listener accepted) has a method LingerOnClose(),
// ErrorHandler calls it: the connection's Close must then send the answer
// and a FIN and discard what the client still sends for a bounded time
// before it really closes, the way nginx's lingering close does.
// cmd/playerguard's listener provides it; without it the close is plain.
func (v *Validator) ErrorHandler(ctx *fasthttp.RequestCtx, err error) {
	v.m.BadRequests.Inc()
	var tooBig *fasthttp.ErrSmallBuffer
	var timeout interface{ Timeout() bool } // net.Error's, os.ErrDeadlineExceeded's
	switch {
	case errors.Is(err, fasthttp.ErrBodyTooLarge):
		writeError(ctx, fasthttp.StatusRequestEntityTooLarge, errBodyTooLarge.Msg)
		if c, ok := ctx.Conn().(interface{ LingerOnClose() }); ok {
			c.LingerOnClose()
		}
	case errors.As(err, &tooBig):
		writeError(ctx, fasthttp.StatusRequestHeaderFieldsTooLarge, "request headers too large")
	case errors.As(err, &timeout) && timeout.Timeout():
		writeError(ctx, fasthttp.StatusRequestTimeout, "timed out reading the request")
	default:
		writeError(ctx, fasthttp.StatusBadRequest, "cannot parse HTTP request")
	}
}

// started is when the request's handling began.
func (v *Validator) started(ctx *fasthttp.RequestCtx) time.Time {
	if v.ctxClock {
		return ctx.Time()
	}
	return v.cfg.Now()
}

// elapsed is the time since start (from started).
func (v *Validator) elapsed(start time.Time) time.Duration {
	if v.ctxClock {
		// time.Since reads only the monotonic clock, where Now().Sub
		// would read the wall clock too.
		return time.Since(start)
	}
	return v.cfg.Now().Sub(start)
}

func (v *Validator) getState() *reqState { return v.states.Get().(*reqState) }

// putState returns st to the pool. Its scratch buffer stays: DecodeJSON
// never grows it beyond MaxBodyLen.
func (v *Validator) putState(st *reqState) {
	st.req = Request{} // drop references into the finished request's buffers
	st.ans = Answer{}
	v.states.Put(st)
}

// serveValidate is a provider's POST/GET endpoint: a JSON body, or the
// same fields as headers (what nginx auth_request and Envoy ext_authz
// forward).
func (v *Validator) serveValidate(ctx *fasthttp.RequestCtx, pv *provider) {
	start := v.started(ctx)
	if !ctx.IsPost() && !ctx.IsGet() {
		ctx.Response.Header.Set("Allow", "GET, POST")
		v.refuse(ctx, fasthttp.StatusMethodNotAllowed, "method not allowed: use POST (JSON body or headers) or GET (headers)")
		return
	}
	st := v.getState()
	defer v.putState(st)
	var err error
	f := pv.form
	if body := ctx.Request.Body(); pv.spec.AgeGate && len(body) == 0 {
		err = errBodyRequired
	} else if len(body) > 0 {
		st.scratch, err = decodeJSON(body, &st.req, st.scratch, f)
		if err == nil {
			// One request, one form: a playerId header beside a body would
			// otherwise be a claim nobody checks.
			err = headerFields(ctx, f)
		}
	} else {
		err = readHeaders(ctx, &st.req, f)
	}
	if err == nil && st.req.SessionID != nil {
		err = st.req.checkSessionID()
	}
	if err == nil {
		err = pv.p.Check(&st.req)
	}
	if err != nil {
		v.badRequest(ctx, err)
		return
	}
	a := v.validate(pv, st, start)
	if st.req.SessionID != nil && a.Verdict == Allow {
		if err := v.register(pv, st, &a); err != nil && err != errNoSession {
			v.refuseSession(ctx, err)
			v.observe(pv, &a, start)
			return
		}
	}
	if raw := a.Res.Raw(0); a.Source == SourceCache && a.Verdict == Allow && raw != nil {
		// The hot path: no allocation.
		writeAnswerHeaders(ctx, &a)
		ctx.SetStatusCode(fasthttp.StatusOK)
		ctx.Response.Header.SetContentTypeBytes(ctJSON)
		writeCacheHit(&ctx.Response, pv.hitPrefix, raw)
	} else {
		WriteAnswer(ctx, &a)
		v.audit(pv, st, &a)
	}
	v.observe(pv, &a, start)
}

// serveRoute is a provider's own endpoint (Route): the route reads the
// request and writes the answer, the engine does the rest.
func (v *Validator) serveRoute(ctx *fasthttp.RequestCtx, pv *provider, rt *Route) {
	if rt.Serve != nil {
		rt.Serve(ctx)
		return
	}
	start := v.started(ctx)
	st := v.getState()
	defer v.putState(st)
	err := rt.Read(ctx, &st.req)
	if err == nil && st.req.SessionID != nil {
		err = st.req.checkSessionID()
	}
	if err == nil {
		err = pv.p.Check(&st.req)
	}
	if err != nil {
		v.m.BadRequests.Inc()
		rt.Refuse(ctx, err)
		return
	}
	// The answer lives in the pooled state: handed to Write, a function
	// value, a local would escape to the heap on every request.
	st.ans = v.validate(pv, st, start)
	a := &st.ans
	if st.req.SessionID != nil && a.Verdict == Allow {
		if err := v.register(pv, st, a); err != nil && err != errNoSession {
			v.refuseSession(ctx, err)
			v.observe(pv, a, start)
			return
		}
	}
	writeAnswerHeaders(ctx, a)
	rt.Write(ctx, &st.req, a)
	v.audit(pv, st, a)
	v.observe(pv, a, start)
}

// The request header names in the form fasthttp stores them (it
// normalizes names as it parses, unless told not to, which playerguard's
// servers never are).
const (
	hdrTokenName    = "Accesstoken"
	hdrPlatformName = "Platform"
	hdrPlayerIDName = "Playerid"
	hdrIDTokenName  = "Idtoken"
	hdrNonceName    = "Nonce"
	hdrImpUIDName   = "Impuid"
	hdrMinAgeName   = "Minage"
	hdrSessionName  = "Sessionid"
)

var errBodyRequired = &RequestError{"this endpoint takes a JSON body (impUid, playerId, minAge, sessionId), not headers"}

// ReadHeaders fills r from the accessToken, platform and playerId headers
// (names are case-insensitive), as the drop-in endpoint and header-carried
// /v1/validate requests are read. r's fields point into ctx's request. A
// field sent on two header lines is a *RequestError: which line counts
// would be up to each reader, and a game server keeping the last
// "playerId" would act on a claim nobody checked.
func ReadHeaders(ctx *fasthttp.RequestCtx, r *Request) error { return readHeaders(ctx, r, defaultForm) }

// readHeaders is ReadHeaders for the fields of f: a header of a field
// that is not f's (platform for a provider without platforms) is none of
// the provider's, a header of the caller's own, neither read nor refused.
func readHeaders(ctx *fasthttp.RequestCtx, r *Request, f form) error {
	*r = Request{}
	seen := ^f.mask // keys not of the form: never looked for in a trailer
	// One pass over the headers, in the form fasthttp stores their names
	// (it normalizes them as it parses): cheaper than a lookup each, and
	// it sees a second line of the same name, which a lookup would not.
	for name, value := range ctx.Request.Header.All() {
		k := reqHeaderKey(name)
		if k == reqKeyUnknown || !f.has(k) {
			continue
		}
		if seen>>k&1 != 0 {
			return errReqKeyTwice[k]
		}
		seen |= 1 << k
		switch k {
		case reqKeyToken, reqKeyIDToken:
			r.Token = value
		case reqKeyNonce:
			r.Nonce = value
		case reqKeyPlatform:
			r.Platform = value
		case reqKeySessionID:
			r.SessionID = value
		default:
			r.PlayerID = value
		}
	}
	// Nor is sessionId: the game server's own name for the connection,
	// not a claim anyone checks (one lookup fewer on every header
	// request).
	return trailerFields(ctx, seen|1<<reqKeySessionID)
}

// trailerFields refuses a field sent in a chunked request's trailer, which
// All does not list but fasthttp's Peek (a game server's, too) falls back
// to: a claim there would be read by others and checked by nobody. seen
// marks the fields found among the headers (and those not of the form);
// only the others are looked up.
func trailerFields(ctx *fasthttp.RequestCtx, seen uint16) error {
	h := &ctx.Request.Header
	for k, name := range reqHeaderNameBytes {
		if seen>>k&1 == 0 && h.PeekCanonical(name) != nil {
			return errReqKeyTrailer[k]
		}
	}
	return nil
}

var errReqKeyTrailer = func() (e [numReqKeys]*RequestError) {
	for k, name := range reqKeyNames {
		e[k] = &RequestError{name + " sent in a request trailer: send it as a header or in the JSON body"}
	}
	return e
}()

// reqHeaderKey says which request key a header name (as fasthttp stores
// it) is, if any.
func reqHeaderKey(name []byte) int {
	switch string(name) {
	case hdrTokenName:
		return reqKeyToken
	case hdrPlatformName:
		return reqKeyPlatform
	case hdrPlayerIDName:
		return reqKeyPlayerID
	case hdrIDTokenName:
		return reqKeyIDToken
	case hdrNonceName:
		return reqKeyNonce
	case hdrImpUIDName:
		return reqKeyImpUID
	case hdrMinAgeName:
		return reqKeyMinAge
	case hdrSessionName:
		return reqKeySessionID
	}
	return reqKeyUnknown
}

var errReqKeyTwice = func() (e [numReqKeys]*RequestError) {
	for k, name := range reqKeyNames {
		e[k] = &RequestError{"the " + name + " header is sent more than once: send each field once"}
	}
	return e
}()

// errBodyAndHeader[id][k] refuses a JSON body sent with request key k as
// a header too; id is form.idToken, whose fields the message lists.
var errBodyAndHeader = func() (e [3][numReqKeys]*RequestError) {
	for id, fields := range []string{"accessToken, platform and playerId", "idToken, nonce and playerId"} {
		for k, name := range reqKeyNames {
			e[id][k] = &RequestError{"request has a JSON body and a " + name + " header: send " + fields + " in one form, the body or the headers"}
		}
	}
	for k, name := range reqKeyNames {
		e[2][k] = &RequestError{"request has a JSON body and a " + name + " header: this endpoint takes impUid, playerId and minAge in the JSON body only"}
	}
	return e
}()

// headerFields refuses a request that carries any of f's fields as
// headers (present, even empty); the body path calls it. fasthttp's
// lookup sees the headers and then a chunked request's trailer, so one
// lookup a field covers both sections.
func headerFields(ctx *fasthttp.RequestCtx, f form) error {
	h := &ctx.Request.Header
	id := 0
	switch {
	case f.idToken:
		id = 1
	case f.ageGate:
		id = 2
	}
	for k, name := range reqHeaderNameBytes {
		// A sessionId header beside a body is ignored, as it was before
		// sessions came (a caller's own trace header, say): the body's
		// sessionId is the one.
		if f.has(k) && k != reqKeySessionID && h.PeekCanonical(name) != nil {
			return errBodyAndHeader[id][k]
		}
	}
	return nil
}

var reqHeaderNameBytes = [numReqKeys][]byte{[]byte(hdrTokenName), []byte(hdrPlatformName), []byte(hdrPlayerIDName), []byte(hdrIDTokenName), []byte(hdrNonceName), []byte(hdrImpUIDName), []byte(hdrMinAgeName), []byte(hdrSessionName)}

func (v *Validator) observe(pv *provider, a *Answer, start time.Time) {
	c := pv.counts[a.Verdict][a.Reason][a.Source]
	if c == nil {
		// A combination the provider did not list: resolved each time
		// (a lock) rather than stored (a race), and never dropped.
		c = v.m.Validations.WithLabelValues(pv.name(), a.Verdict.String(), a.Reason.String(), a.Source.String())
	}
	c.Inc()
	pv.latency[a.Source].Observe(v.elapsed(start))
}

func writeAnswerHeaders(ctx *fasthttp.RequestCtx, a *Answer) {
	h := &ctx.Response.Header
	h.SetCanonical(hdrDecision, verdictBytes[a.Verdict])
	h.SetCanonical(hdrReason, reasonBytes[a.Reason])
	h.SetCanonical(hdrSource, sourceBytes[a.Source])
	if a.Degraded {
		h.SetCanonical(hdrDegraded, hdrTrue)
	}
}

// writeCacheHit writes the /v1/validate body of an allow answered from the
// cache: what renderAnswer gives, assembled around the cached player
// object without allocating. (fasthttp's server keeps each connection's
// response buffer, so this is a copy into warm memory. Rendering the body
// once per cached allow instead cost every entry ~170 bytes, a quarter
// more RSS at 1,000,000 players, for no measurable gain in the hit
// scenario.)
func writeCacheHit(resp *fasthttp.Response, prefix, raw []byte) {
	resp.AppendBody(prefix)
	resp.AppendBody(raw)
	resp.AppendBodyString("}")
}

func statusFor(v Verdict) int {
	switch v {
	case Allow:
		return fasthttp.StatusOK
	case Kick:
		return fasthttp.StatusForbidden
	}
	return fasthttp.StatusServiceUnavailable
}

// WriteAnswer writes a as every validation endpoint answers: the status
// (200 allow, 403 kick, 503 unavailable), the X-Playerguard-* headers and
// the JSON body of RenderAnswer. A provider's own endpoint that decides
// outside the engine (the age gate's SMS code confirmation) answers so.
func WriteAnswer(ctx *fasthttp.RequestCtx, a *Answer) {
	writeAnswerHeaders(ctx, a)
	ctx.SetStatusCode(statusFor(a.Verdict))
	ctx.Response.Header.SetContentTypeBytes(ctJSON)
	ctx.Response.SetBodyRaw(renderAnswer(a))
}

// RenderAnswer renders the /v1 answer body of a (for anything but a
// cache-hit allow, which the engine writes itself to the same bytes): the
// decision, reason and source, the degraded marks, the Result's raw values
// and the upstream's status, code and (kicks only) desc.
func RenderAnswer(a *Answer) []byte { return renderAnswer(a) }

func renderAnswer(a *Answer) []byte {
	r := a.Res
	b := make([]byte, 0, 256+len(r.Body))
	b = append(b, `{"decision":"`...)
	b = append(b, a.Verdict.String()...)
	b = append(b, `","reason":"`...)
	b = append(b, a.Reason.String()...)
	b = append(b, `","source":"`...)
	b = append(b, a.Source.String()...)
	b = append(b, '"')
	if a.Degraded {
		b = append(b, `,"degraded":true,"upstreamFailure":"`...)
		b = append(b, a.Cause.Reason.String()...)
		b = append(b, '"')
	}
	if f := r.Fields; f != nil && r.Verdict != Unavailable && f.Inline {
		b = append(b, r.Raw(0)...) // members, each after a comma
	} else if f != nil && r.Verdict != Unavailable {
		// A failure's body names no one the answer is about.
		b = appendRaw(b, f.Names[0], r.Raw(0))
		if a.Verdict == Kick {
			for i := 1; i < numRaw; i++ {
				b = appendRaw(b, f.Names[i], r.Raw(i))
			}
		}
	}
	if u := upstreamOf(a); u != nil && u.Status != 0 && (r.Fields == nil || !r.Fields.Inline) {
		b = append(b, `,"upstream":{"status":`...)
		b = strconv.AppendInt(b, int64(u.Status), 10)
		if u.HasCode {
			b = append(b, `,"code":`...)
			b = strconv.AppendInt(b, int64(u.Code), 10)
		}
		// A kick's desc is Kakao's word to the player; any other answer's
		// is not the caller's to read (an upstream or gateway in trouble
		// may echo our request, secrets included, into it).
		if u.Desc != "" && a.Verdict == Kick {
			b = append(b, `,"desc":`...)
			b = appendJSONString(b, u.Desc)
		}
		b = append(b, '}')
	}
	return append(b, '}')
}

// upstreamOf is the exchange whose status an answer reports: the failure
// for a degraded allow, none for a plain allow.
func upstreamOf(a *Answer) *Result {
	switch {
	case a.Degraded:
		return a.Cause
	case a.Verdict == Allow:
		return nil
	}
	return a.Res
}

func appendRaw(b []byte, name string, raw []byte) []byte {
	if raw == nil {
		return b
	}
	b = append(b, `,"`...)
	b = append(b, name...)
	b = append(b, `":`...)
	return append(b, raw...)
}

func appendJSONString(b []byte, s string) []byte {
	q, _ := json.Marshal(s) // a string always marshals
	return append(b, q...)
}

// badRequest answers a caller mistake.
func (v *Validator) badRequest(ctx *fasthttp.RequestCtx, err error) {
	v.m.BadRequests.Inc()
	writeError(ctx, RequestErrorStatus(err), RequestErrorMessage(err))
}

// RequestErrorStatus is the status a caller mistake is answered with: 413
// for a body too large, 400 for anything else.
func RequestErrorStatus(err error) int {
	if errors.Is(err, errBodyTooLarge) {
		return fasthttp.StatusRequestEntityTooLarge
	}
	return fasthttp.StatusBadRequest
}

// RequestErrorMessage is the message a caller mistake is answered with:
// a *RequestError's, else "invalid request". It never holds a token.
func RequestErrorMessage(err error) string {
	var re *RequestError
	if errors.As(err, &re) {
		return re.Msg
	}
	return "invalid request"
}

func (v *Validator) refuse(ctx *fasthttp.RequestCtx, status int, msg string) {
	v.m.BadRequests.Inc()
	writeError(ctx, status, msg)
}

// WriteError writes {"error": msg}, JSON, with status. msg must never
// hold a token.
func WriteError(ctx *fasthttp.RequestCtx, status int, msg string) { writeError(ctx, status, msg) }

func writeError(ctx *fasthttp.RequestCtx, status int, msg string) {
	ctx.SetStatusCode(status)
	ctx.Response.Header.SetContentTypeBytes(ctJSON)
	b := appendJSONString([]byte(`{"error":`), msg)
	ctx.Response.SetBodyRaw(append(b, '}'))
}

// audit logs one line per kick and per degraded allow served: what CS
// teams search when a player asks why they could not get in. Never the
// token.
func (v *Validator) audit(pv *provider, st *reqState, a *Answer) {
	if a.Verdict != Kick && !a.Degraded {
		return
	}
	u := upstreamOf(a)
	// The request's claim first: a cached invalid_token kick carries the
	// claim of whoever was kicked first.
	player := string(st.req.PlayerID)
	if player == "" {
		player = a.Res.PlayerID
	}
	attrs := make([]slog.Attr, 0, 10)
	attrs = append(attrs, slog.String("provider", pv.name()), slog.String("player", player))
	if pv.spec.Platform {
		attrs = append(attrs, slog.String("platform", string(st.req.Platform)))
	}
	attrs = append(attrs,
		slog.String("decision", a.Verdict.String()),
		slog.String("reason", a.Reason.String()),
		slog.String("source", a.Source.String()),
	)
	if a.Degraded {
		attrs = append(attrs, slog.String("upstream_failure", a.Cause.Reason.String()))
	}
	if u != nil {
		attrs = append(attrs, slog.Int("upstream_status", u.Status))
		if u.HasCode {
			attrs = append(attrs, slog.Int("upstream_code", u.Code))
		}
	}
	msg := "kick"
	if a.Degraded {
		msg = "degraded allow"
	}
	v.log.LogAttrs(context.Background(), slog.LevelInfo, msg, attrs...)
}

// FasthttpLogger returns a fasthttp.Logger that sends fasthttp's own
// messages (connection errors, mostly clients hanging up) to the
// validator's log at debug level.
func (v *Validator) FasthttpLogger() fasthttp.Logger { return fasthttpLogger{v.log} }

type fasthttpLogger struct{ log *slog.Logger }

func (l fasthttpLogger) Printf(format string, args ...any) {
	if l.log.Enabled(context.Background(), slog.LevelDebug) {
		l.log.Debug("fasthttp", "message", redactQuoted(fmt.Sprintf(format, args...)))
	}
}

// quoted matches a Go-quoted string, as fasthttp's %q puts them in its
// messages.
var quoted = regexp.MustCompile(`"(?:[^"\\]|\\.)*"`)

// redactQuoted replaces every quoted string in a fasthttp message but the
// connection addresses with "[redacted]": some of fasthttp's texts quote
// what they could not parse whatever SecureErrorLogMessage says ("invalid
// header value %q"), and that can be an access token.
func redactQuoted(msg string) string {
	return quoted.ReplaceAllStringFunc(msg, func(q string) string {
		if s, err := strconv.Unquote(q); err == nil {
			if _, err := netip.ParseAddrPort(s); err == nil {
				return q
			}
		}
		return `"[redacted]"`
	})
}

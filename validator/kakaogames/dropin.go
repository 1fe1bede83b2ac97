package kakaogames

import (
	"encoding/json"
	"errors"

	"github.com/valyala/fasthttp"

	"playerguard/validator"
)

// Routes implements validator.Router: the drop-in POST
// /service/v5/auth/validation, a stand-in for the Kakao Games endpoint.
// The caller's secrets, if any, are ignored; ours are sent. Answers are
// Kakao's own where there is one, byte for byte, so a Kakao-shaped
// caller reads them as it reads Kakao's.
func (kg *Provider) Routes() []validator.Route {
	return []validator.Route{{
		Path:   ValidationPath,
		Usage:  "the drop-in POST " + ValidationPath,
		Read:   readDropIn,
		Refuse: refuseDropIn,
		Write:  kg.writeDropIn,
	}}
}

var ctJSON = []byte("application/json")

// errMethod is a drop-in request by another method than POST.
var errMethod = errors.New("method not allowed: use POST")

func readDropIn(ctx *fasthttp.RequestCtx, r *validator.Request) error {
	if !ctx.IsPost() {
		return errMethod
	}
	return validator.ReadHeaders(ctx, r)
}

// refuseDropIn answers a caller mistake; drop-in callers also get a desc,
// the field Kakao-shaped clients read.
func refuseDropIn(ctx *fasthttp.RequestCtx, err error) {
	if errors.Is(err, errMethod) {
		ctx.Response.Header.Set("Allow", "POST")
		validator.WriteError(ctx, fasthttp.StatusMethodNotAllowed, errMethod.Error())
		return
	}
	msg := validator.RequestErrorMessage(err)
	b, _ := json.Marshal(struct {
		Error string `json:"error"`
		Desc  string `json:"desc"`
	}{msg, msg})
	ctx.SetStatusCode(validator.RequestErrorStatus(err))
	ctx.Response.Header.SetContentTypeBytes(ctJSON)
	ctx.Response.SetBodyRaw(b)
}

func (kg *Provider) writeDropIn(ctx *fasthttp.RequestCtx, req *validator.Request, a *validator.Answer) {
	r := a.Res
	switch {
	case a.Verdict == validator.Allow && a.Source == validator.SourcePolicy:
		// Open policy, nothing cached: there is no upstream body to give.
		ctx.SetStatusCode(fasthttp.StatusOK)
		ctx.Response.Header.SetContentTypeBytes(ctJSON)
		ctx.Response.SetBodyRaw(renderOpenDropIn(kg.cfg.AppID, req))
	case a.Verdict == validator.Allow || a.Verdict == validator.Kick && r.Status >= 400 || a.Verdict == validator.Unavailable && r.Status >= 500:
		// The upstream's own answer (fresh, cached, stale, a kick's 4xx, a
		// 5xx), byte for byte.
		ctx.SetStatusCode(r.Status)
		ctx.Response.Header.SetContentType(r.ContentType)
		ctx.Response.SetBodyRaw(r.Body)
	case a.Verdict == validator.Kick:
		// A kick playerguard made of a 200 (player_mismatch,
		// player_status): a Kakao-shaped caller must not see a 2xx.
		ctx.SetStatusCode(fasthttp.StatusForbidden)
		ctx.Response.Header.SetContentTypeBytes(ctJSON)
		ctx.Response.SetBodyRaw(validator.RenderAnswer(a))
	default:
		// No response, a redirect, a 200 we could not read, or a 4xx that
		// is no verdict (400, 404, 408, 429, 473, a proxy's page): never a
		// 2xx or 3xx for something that is not an allow, and never a 4xx
		// a Kakao-shaped caller would take for a kick.
		ctx.SetStatusCode(fasthttp.StatusServiceUnavailable)
		ctx.Response.Header.SetContentTypeBytes(ctJSON)
		ctx.Response.SetBodyRaw(validator.RenderAnswer(a))
	}
}

// renderOpenDropIn is the drop-in 200 body the open policy answers with
// when no upstream body exists: the documented shape, status "normal", so
// Kakao-shaped callers admit the player, plus a playerguard object saying
// it is degraded.
func renderOpenDropIn(appID string, req *validator.Request) []byte {
	type player struct {
		KgAppID  string `json:"kgAppId"`
		PlayerID string `json:"playerId,omitempty"`
		Status   string `json:"status"`
	}
	type pg struct {
		Degraded bool   `json:"degraded"`
		Reason   string `json:"reason"`
	}
	b, _ := json.Marshal(struct {
		Player      player `json:"player"`
		Playerguard pg     `json:"playerguard"`
	}{player{appID, string(req.PlayerID), "normal"}, pg{true, "outage_policy_open"}})
	return b
}

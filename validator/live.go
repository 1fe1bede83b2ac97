package validator

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/valyala/fasthttp"

	"playerguard/cache"
	"playerguard/metrics"
	"playerguard/sessions"
)

// SessionsConfig configures the live sessions (Config.Sessions): the
// connected players a validation with a sessionId registered, validated
// again while they play, and kicked through events the game server reads
// (GET /v1/events, or a webhook). Zero values are documented per field.
type SessionsConfig struct {
	// Max bounds the live sessions; past it a new one is refused (503)
	// and the validation still answers. Zero means 100,000.
	Max int
	// MaxAge ends a session that long after it began, whatever its
	// credential says. Zero means 24h.
	MaxAge time.Duration
	// RevalidateEvery is how often each live session is validated again
	// with the upstream, spread over the round. Zero turns revalidation
	// off.
	RevalidateEvery time.Duration
	// RevalidateMaxRPS bounds revalidations a second, all providers
	// together. Zero means 5.
	RevalidateMaxRPS float64
	// EventsBuffer is how many events a reconnecting SSE client can
	// catch up on (Last-Event-ID). Zero means 10,000.
	EventsBuffer int
	// WebhookURL, if set, receives each event as a JSON POST, in order,
	// at least once; WebhookTimeout bounds one attempt (zero: 2s) and
	// WebhookBackoff is the first retry's wait (zero: 100ms, doubling to
	// 30s).
	WebhookURL     string
	WebhookTimeout time.Duration
	WebhookBackoff time.Duration
}

// Kick event sources (the events' "source" and the metric's label).
const (
	sourceRevalidation = "revalidation"
	sourceValidation   = "validation"
	sourceFleet        = "fleet"
	sourceAdmin        = "admin"
)

// cred is what a live session needs to be asked about again: its
// provider and its own copy of the request (the pooled one is reused).
// It lives in this process's memory only, and goes with its session.
type cred struct {
	pv  *provider
	req Request
}

// newCred copies r's fields (the session id aside: it is the session's
// own) into one buffer.
func newCred(pv *provider, r *Request) cred {
	buf := make([]byte, 0, len(r.Token)+len(r.Platform)+len(r.PlayerID)+len(r.Nonce)+len(r.MinAge))
	cp := func(b []byte) []byte {
		if b == nil {
			return nil
		}
		start := len(buf)
		buf = append(buf, b...)
		return buf[start:len(buf):len(buf)]
	}
	c := cred{pv: pv}
	c.req.Token = cp(r.Token)
	c.req.Platform = cp(r.Platform)
	c.req.PlayerID = cp(r.PlayerID)
	c.req.Nonce = cp(r.Nonce)
	c.req.MinAge = cp(r.MinAge)
	c.req.tokenKey = r.tokenKey
	return c
}

// live is the engine's live sessions and their events.
type live struct {
	reg    *sessions.Registry[cred]
	events *sessions.Buffer
	hook   *sessions.Webhook // nil without a webhook
	m      *metrics.SessionMetrics

	emitMu     sync.Mutex    // emit's
	streams    chan struct{} // closed by SetDraining: every SSE stream ends
	stop       chan struct{} // closed by Close
	drainOnce  sync.Once
	closeOnce  sync.Once
	background sync.WaitGroup
}

// newLive builds v's live sessions and starts their goroutines: the
// sweep of ended sessions, the revalidation rounds and the webhook.
func (v *Validator) newLive(c SessionsConfig) error {
	if c.Max < 0 || c.MaxAge < 0 || c.RevalidateEvery < 0 || c.RevalidateMaxRPS < 0 || c.EventsBuffer < 0 ||
		c.WebhookTimeout < 0 || c.WebhookBackoff < 0 {
		return errors.New("sessions: limits and durations must not be negative")
	}
	if c.Max == 0 {
		c.Max = 100_000
	}
	if c.MaxAge == 0 {
		c.MaxAge = 24 * time.Hour
	}
	if c.RevalidateMaxRPS == 0 {
		c.RevalidateMaxRPS = 5
	}
	if c.EventsBuffer == 0 {
		c.EventsBuffer = 10_000
	}
	l := &live{

		reg:     sessions.NewRegistry[cred](c.Max, c.MaxAge, v.cfg.Now),
		events:  sessions.NewBuffer(c.EventsBuffer, uint64(time.Now().UnixMicro())),
		streams: make(chan struct{}),
		stop:    make(chan struct{}),
	}
	g := metrics.SessionGauges{Live: l.reg.ByProvider, Providers: v.Providers()}
	if c.WebhookURL != "" {
		l.hook = &sessions.Webhook{URL: c.WebhookURL, Timeout: c.WebhookTimeout, Backoff: c.WebhookBackoff}
		g.WebhookQueue = func() float64 { return float64(l.hook.Queued()) }
	}
	if c.RevalidateEvery > 0 {
		g.Behind = func() float64 { return l.reg.Behind().Seconds() }
	}
	l.m = v.m.Sessions(g)
	if l.hook != nil {
		l.hook.OnResult = func(outcome string, delay time.Duration) {
			if c := l.m.Webhook[outcome]; c != nil {
				c.Inc()
			}
			if outcome == "ok" {
				l.m.WebhookDelay.Observe(delay.Seconds())
			} else {
				v.log.Warn("kick event webhook failed", "outcome", outcome)
			}
		}
		l.hook.OnDropped = l.m.WebhookDropped.Inc
		l.hook.Start()
	}
	v.live = l
	l.background.Add(1)
	go func() {
		defer l.background.Done()
		// Ended sessions (credential or maximum age over) leave memory
		// and the gauge within a sweep; no event: nobody misbehaved.
		t := time.NewTicker(10 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-l.stop:
				return
			case <-t.C:
				l.reg.Expire()
			}
		}
	}()
	if c.RevalidateEvery > 0 {
		rv := &sessions.Revalidator[cred]{
			Registry: l.reg, Every: c.RevalidateEvery, MaxRPS: c.RevalidateMaxRPS,
			Validate: v.revalidate, Now: v.cfg.Now,
		}
		l.background.Add(1)
		go func() {
			defer l.background.Done()
			rv.Run(l.stop)
		}()
	}
	return nil
}

// close stops the live sessions' goroutines; events not yet delivered
// to the webhook are dropped.
func (l *live) close() {
	l.closeOnce.Do(func() {
		l.drain()
		close(l.stop)
		l.background.Wait()
		if l.hook != nil {
			l.hook.Stop()
		}
	})
}

// drain ends every SSE stream (a drain waits for open connections).
func (l *live) drain() { l.drainOnce.Do(func() { close(l.streams) }) }

// errNoSession: an allow that names no player, or whose credential ends
// now, cannot be a session (counted, and the allow answered as is).
var errNoSession = errors.New("no session for this allow")

// register makes a's allow for st a live session named by its sessionId.
// An error is the caller's to answer: ErrOtherPlayer (400), ErrFull
// (503); errNoSession is counted and the allow answered as is.
func (v *Validator) register(pv *provider, st *reqState, a *Answer) error {
	l := v.live
	player := a.Res.PlayerID
	if player == "" {
		// The open outage policy's allow of a request without playerId:
		// nobody to watch, and refusing would undo the policy.
		l.m.Refused["no_player"].Inc()
		return errNoSession
	}
	now := v.cfg.Now()
	var expires time.Time
	switch r := a.Res; {
	case r.Verdict != Allow: // the open policy's: no credential end known
	case r.MaxAge < 0:
		// About to expire (the provider said do not cache it): the
		// session would end at once. Answered, not registered.
		l.m.Refused["expiring"].Inc()
		return errNoSession
	case r.MaxAge > 0 && r.fetched != 0:
		expires = time.Unix(int64(r.fetched)+int64(r.MaxAge), 0)
	case r.MaxAge > 0:
		expires = now.Add(time.Duration(r.MaxAge) * time.Second)
	}
	err := l.reg.Add(sessions.Session[cred]{
		ID: string(st.req.SessionID), Player: player, Provider: pv.spec.Name,
		Since: now, LastValidated: now, Expires: expires, Cred: newCred(pv, &st.req),
	})
	switch {
	case errors.Is(err, sessions.ErrFull):
		l.m.Refused["full"].Inc()
	case errors.Is(err, sessions.ErrOtherPlayer):
		l.m.Refused["other_player"].Inc()
	}
	return err
}

// refuseSession answers a session not registered (register's error).
func (v *Validator) refuseSession(ctx *fasthttp.RequestCtx, err error) {
	if errors.Is(err, sessions.ErrOtherPlayer) {
		v.refuse(ctx, fasthttp.StatusBadRequest, err.Error())
		return
	}
	writeError(ctx, fasthttp.StatusServiceUnavailable, "session not registered: "+err.Error())
}

// lockoutOf is a kick's redirectUri and token objects, if its provider
// has them (Kakao Games' lockout page).
func lockoutOf(res *Result) (redirect, token []byte) {
	if res.Fields == nil || res.Fields.Inline {
		return nil, nil
	}
	for i, n := range res.Fields.Names {
		switch n {
		case "redirectUri":
			redirect = res.Raw(i)
		case "token":
			token = res.Raw(i)
		}
	}
	return redirect, token
}

// emit numbers and hands on one kick event for session s.
func (v *Validator) emit(s sessions.Session[cred], reason, source string, redirect, token []byte) {
	l := v.live
	// Numbered and queued for the webhook in one step: it gets them in
	// the order of their ids.
	l.emitMu.Lock()
	defer l.emitMu.Unlock()
	e := l.events.Append(sessions.Event{
		Type: "kick", SessionID: s.ID, PlayerID: s.Player, Provider: s.Provider,
		Reason: reason, Source: source, At: v.cfg.Now().UTC(),
		RedirectURI: json.RawMessage(redirect), Token: json.RawMessage(token),
	})
	if c := l.m.KickEvents[source]; c != nil {
		c.Inc()
	}
	if l.hook != nil {
		l.hook.Deliver(e)
	}
	v.log.Info("session kicked", "event", e.ID, "session", s.ID, "player", s.Player, "provider", s.Provider, "reason", reason, "source", source)
}

// kickSessions ends player's sessions of provider ("" for any) last
// validated before before, one kick event each; it returns how many.
func (v *Validator) kickSessions(player, provider, reason, source string, redirect, token []byte, before time.Time) int {
	ended := v.live.reg.EndPlayer(player, provider, before)
	for _, s := range ended {
		v.emit(s, reason, source, redirect, token)
	}
	return len(ended)
}

// FleetKicked ends, with a kick event each, the sessions here of a player
// another sidecar kicked (package fleet calls it for each kick received).
func (v *Validator) FleetKicked(player string, k FleetKick) {
	source := sourceFleet
	if k.Admin {
		source = sourceAdmin
	}
	v.kickSessions(player, k.Provider, k.Reason, source, k.RedirectURI, k.Token, k.At)
}

// revalidate asks the upstream about live session s again, the cache and
// the flights bypassed (the verdict must be fresh), through the breaker
// and the call slots like any miss. An allow keeps it; a kick has every
// effect a validation's kick has and ends s; anything else (outage,
// breaker open, maintenance) is Unknown: the session stays.
func (v *Validator) revalidate(s sessions.Session[cred]) (sessions.Verdict, time.Time) {
	pv := s.Cred.pv
	st := v.getState()
	defer v.putState(st)
	st.req = s.Cred.req
	v.keyFor(pv, st)
	st.token = cache.TokenOf(st.req.Token)
	res, _ := pv.breaker.Execute(func() (*Result, error) { return v.call(pv, st) })
	outcome, verdict := "unknown", sessions.Unknown
	var expires time.Time
	switch {
	case res == nil: // the breaker refused
	case res.Verdict == Allow:
		outcome, verdict = "keep", sessions.Keep
		switch {
		case res.MaxAge > 0:
			expires = v.cfg.Now().Add(time.Duration(res.MaxAge) * time.Second)
		case res.MaxAge < 0:
			expires = v.cfg.Now() // about to expire: the session ends now, quietly
		}
	case res.Verdict == Kick:
		outcome, verdict = "kick", sessions.Kick
		if !res.Scoped {
			// Purges, the fleet, and the sessions of the player the
			// verdict names, as for a connect's kick.
			v.kicked(pv, st, res, sourceRevalidation)
		}
		// This session, if that did not end it: a verdict about the
		// token alone (invalid_token) or about this key alone (an age
		// gate's) says nothing of the player's other sessions. This very
		// session: not one renewed or registered again under its id
		// while the upstream was asked.
		if v.live.reg.EndSession(s) {
			redirect, token := lockoutOf(res)
			v.emit(s, res.Reason.String(), sourceRevalidation, redirect, token)
		}
	}
	v.live.m.Revalidations.WithLabelValues(pv.spec.Name, outcome).Inc()
	return verdict, expires
}

// serveLive serves the session endpoints and the event stream, and says
// whether path was one of theirs.
func (v *Validator) serveLive(ctx *fasthttp.RequestCtx) bool {
	path := ctx.URI().PathOriginal()
	switch {
	case string(path) == "/v1/events":
		if !ctx.IsGet() {
			ctx.Response.Header.Set("Allow", "GET")
			v.refuse(ctx, fasthttp.StatusMethodNotAllowed, "method not allowed: use GET /v1/events (a Server-Sent Events stream)")
			return true
		}
		l := v.live
		sessions.ServeEvents(ctx, l.events, sessions.Stream{
			Done:   l.streams,
			OnOpen: l.m.SSEClients.Inc, OnClose: l.m.SSEClients.Dec,
		})
	case string(path) == "/v1/sessions":
		if !ctx.IsGet() {
			ctx.Response.Header.Set("Allow", "GET")
			v.refuse(ctx, fasthttp.StatusMethodNotAllowed, "method not allowed: use GET /v1/sessions?playerId=... (DELETE /v1/sessions/{sessionId} ends one)")
			return true
		}
		v.listSessions(ctx)
	case bytes.HasPrefix(path, []byte("/v1/sessions/")):
		if !ctx.IsDelete() {
			ctx.Response.Header.Set("Allow", "DELETE")
			v.refuse(ctx, fasthttp.StatusMethodNotAllowed, "method not allowed: use DELETE /v1/sessions/{sessionId} (the player left)")
			return true
		}
		v.endSession(ctx, path[len("/v1/sessions/"):])
	default:
		return false
	}
	return true
}

// sessionJSON is a session as GET /v1/sessions lists it: no credential.
type sessionJSON struct {
	SessionID     string    `json:"sessionId"`
	PlayerID      string    `json:"playerId"`
	Provider      string    `json:"provider"`
	Since         time.Time `json:"since"`
	LastValidated time.Time `json:"lastValidated"`
}

func (v *Validator) listSessions(ctx *fasthttp.RequestCtx) {
	args := ctx.QueryArgs()
	r := Request{PlayerID: args.Peek("playerId")}
	if len(r.PlayerID) == 0 {
		v.refuse(ctx, fasthttp.StatusBadRequest, "give playerId: GET /v1/sessions?playerId=...")
		return
	}
	if err := r.checkPlayerID(); err != nil {
		v.badRequest(ctx, err)
		return
	}
	out := struct {
		Sessions []sessionJSON `json:"sessions"`
	}{Sessions: []sessionJSON{}}
	for _, s := range v.live.reg.ByPlayer(string(r.PlayerID)) {
		out.Sessions = append(out.Sessions, sessionJSON{s.ID, s.Player, s.Provider, s.Since.UTC(), s.LastValidated.UTC()})
	}
	b, _ := json.Marshal(out)
	ctx.SetStatusCode(fasthttp.StatusOK)
	ctx.Response.Header.SetContentTypeBytes(ctJSON)
	ctx.Response.SetBodyRaw(b)
}

func (v *Validator) endSession(ctx *fasthttp.RequestCtx, escaped []byte) {
	id, err := url.PathUnescape(string(escaped))
	if err != nil {
		v.refuse(ctx, fasthttp.StatusBadRequest, "sessionId in the path is not validly percent-encoded")
		return
	}
	r := Request{SessionID: []byte(id)}
	if err := r.checkSessionID(); err != nil {
		v.badRequest(ctx, err)
		return
	}
	if !v.live.reg.Remove(id) {
		writeError(ctx, fasthttp.StatusNotFound, "no live session "+strconv.Quote(id))
		return
	}
	ctx.SetStatusCode(fasthttp.StatusNoContent)
}

var errKickNull = errors.New("null")

// maxKickReason bounds /admin/kick's reason (it reaches the game server
// in each event, and the log).
const maxKickReason = 256

// serveKick is POST /admin/kick: {"playerId", "provider"?, "reason"?}
// ends the player's sessions (of that provider, or of every one) with a
// kick event each, on this sidecar and, through the fleet tier, on every
// other; the player's cached allows go too, so a reconnect asks the
// upstream. Unknown fields are refused, as by /admin/purge.
func (v *Validator) serveKick(w http.ResponseWriter, r *http.Request) {
	raw, err := readOpsBody(w, r)
	if err != nil {
		return
	}
	var req struct {
		PlayerID *string `json:"playerId"`
		Provider *string `json:"provider"`
		Reason   *string `json:"reason"`
	}
	// Read twice: strictly (no key twice, none in another case), then
	// into the struct with unknown keys refused.
	jr, ok := NewJSONReader(raw)
	if ok {
		err = jr.Object(1, []string{"playerId", "provider", "reason"}, func(int) error {
			_, isString, err := jr.String()
			if err == nil && !isString {
				err = errKickNull // null is no provider (every one) nor reason
			}
			return err
		})
	}
	if !ok || err != nil || !jr.End() {
		opsJSON(w, http.StatusBadRequest, map[string]string{"error": "request body must be one JSON object of strings (not null), each key once: {\"playerId\", \"provider\"?, \"reason\"?}"})
		return
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		opsJSON(w, http.StatusBadRequest, map[string]string{"error": "unknown field or wrong type (want playerId, provider, reason: strings)"})
		return
	}
	if req.PlayerID == nil || *req.PlayerID == "" {
		opsJSON(w, http.StatusBadRequest, map[string]string{"error": "give playerId: {\"playerId\": \"...\", \"provider\": \"optional\", \"reason\": \"...\"}"})
		return
	}
	player := Request{PlayerID: []byte(*req.PlayerID)}
	if err := player.checkPlayerID(); err != nil {
		opsJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
		return
	}
	provider := ""
	if req.Provider != nil {
		if v.byName(*req.Provider) == nil {
			opsJSON(w, http.StatusBadRequest, map[string]string{"error": "provider " + strconv.Quote(string(echoSafe([]byte(*req.Provider)))) + " is not configured (configured: " + strings.Join(v.Providers(), ", ") + ")"})
			return
		}
		provider = *req.Provider
	}
	reason := "admin"
	if req.Reason != nil {
		reason = *req.Reason
		if reason == "" || len(reason) > maxKickReason || !utf8.ValidString(reason) || strings.IndexFunc(reason, unicode.IsControl) >= 0 {
			opsJSON(w, http.StatusBadRequest, map[string]string{"error": "reason must be 1 to " + strconv.Itoa(maxKickReason) + " bytes of UTF-8 text without control characters"})
			return
		}
	}
	id := *req.PlayerID
	v.flights.detachPlayer(id)
	v.cache.PurgePlayer(id)
	now := v.cfg.Now()
	n := v.kickSessions(id, provider, reason, sourceAdmin, nil, nil, now)
	if v.fleet != nil {
		v.fleet.Kick(FleetPurge{Player: id, Kick: &FleetKick{Provider: provider, Reason: reason, Admin: true, At: now}})
	}
	v.log.LogAttrs(context.Background(), slog.LevelInfo, "admin kick", slog.String("player", id), slog.String("provider", provider),
		slog.String("reason", reason), slog.Int("sessions", n))
	opsJSON(w, http.StatusOK, map[string]any{"kicked": "player", "playerId": id, "provider": provider, "sessions": n, "fleet": v.fleet != nil})
}

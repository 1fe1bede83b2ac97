package kakaogames

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"playerguard/internal/testkit"
	"playerguard/sessions"
	"playerguard/validator"
	"playerguard/validator/kakaogames/kakaogamestest"
)

// kickEvent is an event's data as the game server reads it.
type kickEvent = sessions.Event

func decodeEvent(t *testing.T, e testkit.SSEEvent) kickEvent {
	t.Helper()
	var k kickEvent
	if e.Type != "kick" || json.Unmarshal([]byte(e.Data), &k) != nil || fmt.Sprint(k.ID) != e.ID {
		t.Fatalf("event %+v: want a kick whose data's id is the event's", e)
	}
	return k
}

// receiver is a webhook that acknowledges every event, recording each
// delivery.
type receiver struct {
	mu     sync.Mutex
	bodies []kickEvent
	srv    *httptest.Server
}

func newReceiver(t *testing.T) *receiver {
	r := &receiver{}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b, _ := io.ReadAll(req.Body)
		var e kickEvent
		if json.Unmarshal(b, &e) != nil || req.Header.Get("Content-Type") != "application/json" {
			w.WriteHeader(400)
			return
		}
		r.mu.Lock()
		r.bodies = append(r.bodies, e)
		r.mu.Unlock()
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) got() []kickEvent {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]kickEvent(nil), r.bodies...)
}

// liveHarness is a harness on the real clock (revalidation waits on it)
// with revalidation every round and a webhook receiver.
func liveHarness(t *testing.T, round time.Duration, mod func(*testConfig)) (*harness, *receiver) {
	rcv := newReceiver(t)
	h := newHarness(t, func(c *testConfig) {
		c.Config.Now = time.Now
		c.Sessions = validator.SessionsConfig{RevalidateEvery: round, RevalidateMaxRPS: 1000, WebhookURL: rcv.srv.URL, WebhookBackoff: 10 * time.Millisecond}
		if mod != nil {
			mod(c)
		}
	})
	return h, rcv
}

// connect validates token for player with sessionId.
func (h *harness) connect(token, player, session string) reply {
	h.t.Helper()
	b, _ := json.Marshal(map[string]string{"accessToken": token, "platform": "pc", "playerId": player, "sessionId": session})
	return h.post(string(b))
}

func (h *harness) sessionsOf(player string) []map[string]any {
	h.t.Helper()
	req, _ := http.NewRequest("GET", h.url+"/v1/sessions?playerId="+url.QueryEscape(player), nil)
	r := h.do(req)
	if r.status != 200 {
		h.t.Fatalf("GET /v1/sessions: %d %s", r.status, r.raw)
	}
	var out struct {
		Sessions []map[string]any `json:"sessions"`
	}
	json.Unmarshal([]byte(r.raw), &out)
	return out.Sessions
}

func (h *harness) kick(body string) (int, string) {
	req := httptest.NewRequest("POST", "/admin/kick", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+testAdmin)
	w := httptest.NewRecorder()
	h.ops.ServeHTTP(w, req)
	return w.Code, w.Body.String()
}

// TestSessionKickedOnRevalidation: once the upstream sanctions a
// connected player, the player's session is kicked within one round: the
// event reaches the SSE stream and the webhook, once, and nobody else's
// session is touched.
func TestSessionKickedOnRevalidation(t *testing.T) {
	const round = 400 * time.Millisecond
	h, rcv := liveHarness(t, round, nil)
	stream := testkit.OpenSSE(t, h.url+"/v1/events", "")
	h.fake.Set("tok-a", kakaogamestest.Allow(testApp, "pa", "normal"))
	h.fake.Set("tok-b", kakaogamestest.Allow(testApp, "pb", "normal"))
	h.expect(h.connect("tok-a", "pa", "room1-a"), 200, "allow", "ok", "upstream")
	h.expect(h.connect("tok-b", "pb", "room1-b"), 200, "allow", "ok", "upstream")
	if s := h.sessionsOf("pa"); len(s) != 1 || s[0]["sessionId"] != "room1-a" || s[0]["provider"] != "kakao-games" {
		t.Fatalf("sessions of pa: %v", s)
	}
	// A round or two of allows first: they keep both sessions.
	waitFor(t, "revalidations", func() bool { return h.metric("playerguard_revalidations_total", "outcome", "keep") >= 4 })

	switched := time.Now()
	h.fake.Set("tok-a", kakaogamestest.Sanction(testApp, "pa"))
	e := decodeEvent(t, stream.Next(t, 5*round))
	if e.SessionID != "room1-a" || e.PlayerID != "pa" || e.Provider != "kakao-games" || e.Reason != "sanction" || e.Source != "revalidation" {
		t.Fatalf("event %+v", e)
	}
	// Within one round of the switch (and the scheduler's second of
	// slack on a busy machine).
	if d := e.At.Sub(switched); d > round+time.Second {
		t.Errorf("kicked %s after the switch, want within a round (%s)", d, round)
	}
	waitFor(t, "the webhook's delivery", func() bool { return len(rcv.got()) == 1 })
	if w := rcv.got()[0]; w.ID != e.ID || w.SessionID != "room1-a" || w.Source != "revalidation" {
		t.Errorf("webhook got %+v, want the stream's event", w)
	}
	if s := h.sessionsOf("pa"); len(s) != 0 {
		t.Errorf("the kicked session is listed: %v", s)
	}
	if s := h.sessionsOf("pb"); len(s) != 1 {
		t.Errorf("the other player's session went: %v", s)
	}
	// Rounds later: still one event (the session is gone), pb untouched.
	waitFor(t, "more rounds", func() bool { return h.metric("playerguard_revalidations_total", "outcome", "keep") >= 8 })
	if more := stream.Pending(); len(more) != 0 {
		t.Errorf("more events: %+v", more)
	}
	if n := len(rcv.got()); n != 1 {
		t.Errorf("webhook got %d deliveries, want 1", n)
	}
	if got := h.metric("playerguard_kick_events_total", "source", "revalidation"); got != 1 {
		t.Errorf("kick_events_total{source=revalidation} = %v", got)
	}
	// The revalidation's kick is a kick: the player's cached allow is gone.
	h.expect(h.check("tok-a", "pc", "pa"), 403, "kick", "sanction", "upstream")
}

// TestOutageNeverKicksASession: while the upstream fails (5xx, then the
// breaker open, then maintenance), revalidations say unknown and the
// session stays; when it is back, they say keep.
func TestOutageNeverKicksASession(t *testing.T) {
	const round = 200 * time.Millisecond
	h, rcv := liveHarness(t, round, func(c *testConfig) {
		c.BreakerTimeout = time.Hour // once open, it stays open
	})
	stream := testkit.OpenSSE(t, h.url+"/v1/events", "")
	h.fake.Set("tok-a", kakaogamestest.Allow(testApp, "pa", "normal"))
	h.expect(h.connect("tok-a", "pa", "s-a"), 200, "allow", "ok", "upstream")

	h.fake.Set("tok-a", kakaogamestest.Error(503))
	// Three failures open the breaker (BreakerFailures 3); rounds after
	// that are refused by it.
	waitFor(t, "the breaker to open", func() bool { return h.metric("playerguard_breaker_state") == 2 })
	before := h.metric("playerguard_upstream_requests_total", "outcome", "5xx")
	waitFor(t, "revalidations with the breaker open", func() bool { return h.metric("playerguard_revalidations_total", "outcome", "unknown") >= 6 })
	if after := h.metric("playerguard_upstream_requests_total", "outcome", "5xx"); after != before {
		t.Errorf("the upstream was asked %v times with the breaker open", after-before)
	}
	if s := h.sessionsOf("pa"); len(s) != 1 {
		t.Fatalf("an outage ended the session: %v", s)
	}
	if ev := stream.Pending(); len(ev) != 0 || len(rcv.got()) != 0 {
		t.Fatalf("events during an outage: %+v, webhook %+v", ev, rcv.got())
	}
	if h.metric("playerguard_revalidations_total", "outcome", "kick") != 0 {
		t.Error("a revalidation counted a kick")
	}
}

// TestMaintenanceNeverKicksASession: a 473 (maintenance) is no verdict.
func TestMaintenanceNeverKicksASession(t *testing.T) {
	h, rcv := liveHarness(t, 200*time.Millisecond, nil)
	h.fake.Set("tok-a", kakaogamestest.Allow(testApp, "pa", "normal"))
	h.expect(h.connect("tok-a", "pa", "s-a"), 200, "allow", "ok", "upstream")
	h.fake.Set("tok-a", kakaogamestest.Maintenance())
	waitFor(t, "revalidations in maintenance", func() bool { return h.metric("playerguard_revalidations_total", "outcome", "unknown") >= 3 })
	if s := h.sessionsOf("pa"); len(s) != 1 || len(rcv.got()) != 0 {
		t.Fatalf("maintenance ended the session: %v, events %+v", s, rcv.got())
	}
	h.fake.Set("tok-a", kakaogamestest.Allow(testApp, "pa", "normal"))
	waitFor(t, "a keep after maintenance", func() bool { return h.metric("playerguard_revalidations_total", "outcome", "keep") >= 1 })
}

// TestValidationKickEndsSessions: a new connect of a connected player
// that comes back locked out kicks the player's sessions, the event
// carrying the lockout page's objects as the upstream sent them.
func TestValidationKickEndsSessions(t *testing.T) {
	h, rcv := liveHarness(t, 0, nil)
	stream := testkit.OpenSSE(t, h.url+"/v1/events", "")
	h.fake.Set("tok-1", kakaogamestest.Allow(testApp, "pa", "normal"))
	h.fake.Set("tok-2", kakaogamestest.Allow(testApp, "pa", "normal"))
	h.expect(h.connect("tok-1", "pa", "s1"), 200, "allow", "ok", "upstream")
	h.expect(h.connect("tok-2", "pa", "s2"), 200, "allow", "ok", "upstream")
	lock := kakaogamestest.Lockout(testApp, "pa")
	h.fake.Set("tok-3", lock)
	h.expect(h.check("tok-3", "mobile", "pa"), 403, "kick", "lockout", "upstream")
	var up map[string]json.RawMessage
	json.Unmarshal(lock.Body, &up)
	got := map[string]bool{}
	for range 2 {
		e := decodeEvent(t, stream.Next(t, 5*time.Second))
		if e.PlayerID != "pa" || e.Reason != "lockout" || e.Source != "validation" ||
			string(e.RedirectURI) != string(up["redirectUri"]) || string(e.Token) != string(up["token"]) {
			t.Errorf("event %+v, want the lockout's redirectUri %s and token %s", e, up["redirectUri"], up["token"])
		}
		got[e.SessionID] = true
	}
	if !got["s1"] || !got["s2"] || len(h.sessionsOf("pa")) != 0 {
		t.Errorf("events for %v; sessions left %v", got, h.sessionsOf("pa"))
	}
	waitFor(t, "the webhook", func() bool { return len(rcv.got()) == 2 })
	// An invalid_token kick names no player: nobody's sessions end.
	h.expect(h.connect("tok-1", "pa", "s1"), 200, "allow", "ok", "upstream")
	h.fake.Set("tok-bad", kakaogamestest.Invalid())
	h.expect(h.check("tok-bad", "pc", "pa"), 403, "kick", "invalid_token", "upstream")
	if len(h.sessionsOf("pa")) != 1 {
		t.Error("an invalid_token kick of a claim ended the claimed player's session")
	}
}

// TestEventsReplay: a client that reconnects with Last-Event-ID gets
// exactly the events after it; one whose Last-Event-ID is not a number
// gets a reset and then what comes next.
func TestEventsReplay(t *testing.T) {
	h, _ := liveHarness(t, 0, nil)
	all := testkit.OpenSSE(t, h.url+"/v1/events", "")
	var ids []uint64
	for i := range 5 {
		p := fmt.Sprintf("p%d", i)
		h.fake.Set("tok-"+p, kakaogamestest.Allow(testApp, p, "normal"))
		h.expect(h.connect("tok-"+p, p, "s-"+p), 200, "allow", "ok", "upstream")
		if code, body := h.kick(`{"playerId":"` + p + `","reason":"wave 1"}`); code != 200 || !strings.Contains(body, `"sessions":1`) {
			t.Fatalf("admin kick: %d %s", code, body)
		}
		ids = append(ids, decodeEvent(t, all.Next(t, 5*time.Second)).ID)
	}
	// Numbered from the sidecar's start in microseconds: above any ID a
	// sidecar gave before a restart, exact in JavaScript.
	if ids[0] < uint64(time.Now().Add(-time.Hour).UnixMicro()) || ids[4] != ids[0]+4 || ids[4] >= 1<<53 {
		t.Fatalf("event ids %v, want consecutive from the start time in µs", ids)
	}
	s := testkit.OpenSSE(t, h.url+"/v1/events", fmt.Sprint(ids[1]))
	for i := 2; i < 5; i++ {
		e := decodeEvent(t, s.Next(t, 5*time.Second))
		if e.ID != ids[i] || e.SessionID != fmt.Sprintf("s-p%d", i) || e.Source != "admin" || e.Reason != "wave 1" {
			t.Fatalf("replayed %+v, want event %d", e, ids[i])
		}
	}
	r := testkit.OpenSSE(t, h.url+"/v1/events", "not-a-number")
	if e := r.Next(t, 5*time.Second); e.Type != "reset" {
		t.Fatalf("first event %+v, want a reset", e)
	}
	// An ID from before a restart (smaller than any kept): a reset, then
	// everything kept.
	old := testkit.OpenSSE(t, h.url+"/v1/events", "17")
	if e := old.Next(t, 5*time.Second); e.Type != "reset" {
		t.Fatalf("an old ID: %+v, want a reset", e)
	}
	for i := range 5 {
		if e := decodeEvent(t, old.Next(t, 5*time.Second)); e.ID != ids[i] {
			t.Fatalf("after the reset: %+v, want %d", e, ids[i])
		}
	}
	h.fake.Set("tok-p9", kakaogamestest.Allow(testApp, "p9", "normal"))
	h.expect(h.connect("tok-p9", "p9", "s-p9"), 200, "allow", "ok", "upstream")
	h.kick(`{"playerId":"p9"}`)
	for _, c := range []*testkit.SSE{s, r, old, all} {
		if e := decodeEvent(t, c.Next(t, 5*time.Second)); e.ID != ids[4]+1 || e.SessionID != "s-p9" || e.Reason != "admin" {
			t.Errorf("next event %+v, want %d for s-p9", e, ids[4]+1)
		}
	}
}

// TestSessionBadInput: every refusal the issue names, each changing
// nothing.
func TestSessionBadInput(t *testing.T) {
	h, _ := liveHarness(t, 0, func(c *testConfig) { c.Sessions.Max = 2 })
	h.fake.Set("tok-a", kakaogamestest.Allow(testApp, "pa", "normal"))
	h.fake.Set("tok-b", kakaogamestest.Allow(testApp, "pb", "normal"))
	h.fake.Set("tok-c", kakaogamestest.Allow(testApp, "pc", "normal"))
	for _, c := range []struct{ name, session, want string }{
		{"too long", strings.Repeat("x", 129), "sessionId too long (limit 128 bytes)"},
		{"control character", "a\tb", "sessionId contains invalid characters"},
		{"space", "a b", "sessionId contains invalid characters"},
		{"empty", "", "sessionId is empty"},
		{"dots", "..", `sessionId must not be "." or ".."`},
	} {
		r := h.connect("tok-a", "pa", c.session)
		if r.status != 400 || !strings.Contains(r.str("error"), c.want) {
			t.Errorf("%s: %d %s, want 400 naming %q", c.name, r.status, r.raw, c.want)
		}
	}
	if got := h.fake.TokenCalls("tok-a"); got != 0 {
		t.Errorf("refused requests reached the upstream %d times", got)
	}
	h.expect(h.connect("tok-a", "pa", strings.Repeat("x", 128)), 200, "allow", "ok", "upstream")
	// One session id, one player.
	r := h.connect("tok-b", "pb", strings.Repeat("x", 128))
	if r.status != 400 || !strings.Contains(r.str("error"), "one session id, one player") {
		t.Errorf("another player's sessionId: %d %s", r.status, r.raw)
	}
	// The bound: the second session fits, the third is refused, the
	// validation itself still answers.
	h.expect(h.connect("tok-b", "pb", "s-b"), 200, "allow", "ok", "cache")
	r = h.connect("tok-c", "pc", "s-c")
	if r.status != 503 || !strings.Contains(r.str("error"), "at most 2: -max-sessions") {
		t.Errorf("past -max-sessions: %d %s", r.status, r.raw)
	}
	h.expect(h.check("tok-c", "pc", "pc"), 200, "allow", "ok", "cache")
	if h.metric("playerguard_sessions_refused_total", "reason", "full") != 1 || h.metric("playerguard_sessions_refused_total", "reason", "other_player") != 1 {
		t.Error("refusals not counted")
	}
	// The header form carries it too.
	req, _ := http.NewRequest("POST", h.url+Path, nil)
	req.Header.Set("accessToken", "tok-b")
	req.Header.Set("platform", "pc")
	req.Header.Set("playerId", "pb")
	req.Header.Set("sessionId", "s-b")
	h.expect(h.do(req), 200, "allow", "ok", "cache")
	// Callers from before sessions are answered as before: a body with a
	// field of their own spelt "sessionID" (skipped), a body beside a
	// SessionId header of theirs (ignored); neither registers a session.
	r = h.post(`{"accessToken":"tok-b","platform":"pc","playerId":"pb","sessionID":"their trace"}`)
	h.expect(r, 200, "allow", "ok", "cache")
	req, _ = http.NewRequest("POST", h.url+Path, strings.NewReader(`{"accessToken":"tok-b","platform":"pc","playerId":"pb"}`))
	req.Header.Set("SessionId", "trace 42")
	h.expect(h.do(req), 200, "allow", "ok", "cache")
	if s := h.sessionsOf("pb"); len(s) != 1 || s[0]["sessionId"] != "s-b" {
		t.Errorf("pb's sessions %v, want s-b alone", s)
	}

	del := func(id string) reply {
		req, _ := http.NewRequest("DELETE", h.url+"/v1/sessions/"+id, nil)
		return h.do(req)
	}
	if r := del("nope"); r.status != 404 || !strings.Contains(r.str("error"), `no live session "nope"`) {
		t.Errorf("DELETE of an unknown session: %d %s", r.status, r.raw)
	}
	if r := del("s-b"); r.status != 204 {
		t.Errorf("DELETE: %d %s", r.status, r.raw)
	}
	if r := del("s-b"); r.status != 404 {
		t.Errorf("DELETE twice: %d %s", r.status, r.raw)
	}
	if r := del("a%2Fb"); r.status != 404 || !strings.Contains(r.str("error"), `"a/b"`) {
		t.Errorf("DELETE of an escaped id: %d %s, want it unescaped", r.status, r.raw)
	}
	req, _ = http.NewRequest("GET", h.url+"/v1/sessions", nil)
	if r := h.do(req); r.status != 400 || !strings.Contains(r.str("error"), "give playerId") {
		t.Errorf("GET /v1/sessions without playerId: %d %s", r.status, r.raw)
	}
	req, _ = http.NewRequest("POST", h.url+"/v1/events", nil)
	if r := h.do(req); r.status != 405 || r.header.Get("Allow") != "GET" {
		t.Errorf("POST /v1/events: %d %s", r.status, r.raw)
	}

	// /admin/kick: the token, a playerId, known fields and providers.
	req2 := httptest.NewRequest("POST", "/admin/kick", strings.NewReader(`{"playerId":"pa"}`))
	w := httptest.NewRecorder()
	h.ops.ServeHTTP(w, req2)
	if w.Code != 401 {
		t.Errorf("/admin/kick without the token: %d", w.Code)
	}
	for _, c := range []struct{ body, want string }{
		{`{}`, "give playerId"},
		{`{"playerId":""}`, "give playerId"},
		{`{"playerId":"pa","why":"x"}`, "unknown field"},
		{`{"playerId":"pa","playerId":"pb"}`, "each key once"},
		{`{"playerId":"pa","provider":"steam"}`, `provider \"steam\" is not configured`},
		{`{"playerId":"pa","reason":"a` + "\\n" + `b"}`, "without control characters"},
		{`{"playerId":"pa","reason":"a\u007fb"}`, "without control characters"},
		{`{"playerId":"pa","reason":"a\u0085b"}`, "without control characters"},
		{`{"playerId":"pa","provider":null}`, "(not null)"},
		{`[1]`, "one JSON object"},
	} {
		if code, body := h.kick(c.body); code != 400 || !strings.Contains(body, c.want) {
			t.Errorf("/admin/kick %s: %d %s, want 400 naming %q", c.body, code, body, c.want)
		}
	}
	if len(h.sessionsOf("pa")) != 1 {
		t.Error("a refused /admin/kick ended a session")
	}
}

// TestSessionSecrets: the access token of a live session appears in no
// answer, event, log line or metric.
func TestSessionSecrets(t *testing.T) {
	const token = "SECRET-session-token-4b1d"
	h, rcv := liveHarness(t, 100*time.Millisecond, nil)
	stream := testkit.OpenSSE(t, h.url+"/v1/events", "")
	h.fake.Set(token, kakaogamestest.Allow(testApp, "pa", "normal"))
	h.expect(h.connect(token, "pa", "s-a"), 200, "allow", "ok", "upstream")
	waitFor(t, "revalidations", func() bool { return h.metric("playerguard_revalidations_total", "outcome", "keep") >= 2 })
	h.fake.Set(token, kakaogamestest.Lockout(testApp, "pa"))
	e := stream.Next(t, 5*time.Second)
	waitFor(t, "the webhook", func() bool { return len(rcv.got()) == 1 })
	req, _ := http.NewRequest("GET", h.url+"/v1/sessions?playerId=pa", nil)
	list := h.do(req).raw
	hook, _ := json.Marshal(rcv.got())
	metricsText := testkit.Gather(t, h.reg)
	for what, text := range map[string]string{"event": e.Data, "webhook": string(hook), "sessions": list, "logs": h.logs.String(), "metrics": metricsText} {
		if strings.Contains(text, token) || strings.Contains(text, testSecret) || strings.Contains(text, testKey) {
			t.Errorf("%s holds a secret: %s", what, text)
		}
	}
}

// TestRevalidationActsOnItsSession: a verdict about the session a
// revalidation asked about ends that session, not one registered under
// its id while the upstream was asked: another player's (the game server
// reused the connection id) or the same player's with a new token.
func TestRevalidationActsOnItsSession(t *testing.T) {
	h, _ := liveHarness(t, 300*time.Millisecond, nil)
	stream := testkit.OpenSSE(t, h.url+"/v1/events", "")
	h.fake.Set("tok-a", kakaogamestest.Allow(testApp, "pa", "normal"))
	h.fake.Set("tok-b", kakaogamestest.Allow(testApp, "pb", "normal"))
	h.fake.Set("tok-old", kakaogamestest.Allow(testApp, "pc", "normal"))
	h.fake.Set("tok-new", kakaogamestest.Allow(testApp, "pc", "normal"))
	h.expect(h.connect("tok-a", "pa", "room-7"), 200, "allow", "ok", "upstream")
	h.expect(h.connect("tok-old", "pc", "conn-1"), 200, "allow", "ok", "upstream")
	// pa's token turns invalid and pc's old one expires; the upstream
	// takes 700 ms to say so.
	for _, tok := range []string{"tok-a", "tok-old"} {
		v := kakaogamestest.Invalid()
		v.Delay = 700 * time.Millisecond
		h.fake.Set(tok, v)
	}
	waitFor(t, "both revalidations under way", func() bool { return h.fake.TokenCalls("tok-a") >= 2 && h.fake.TokenCalls("tok-old") >= 2 })
	// pa leaves and pb takes room-7; pc reconnects on conn-1 with a new token.
	req, _ := http.NewRequest("DELETE", h.url+"/v1/sessions/room-7", nil)
	if r := h.do(req); r.status != 204 {
		t.Fatalf("DELETE: %d %s", r.status, r.raw)
	}
	h.expect(h.connect("tok-b", "pb", "room-7"), 200, "allow", "ok", "upstream")
	h.expect(h.connect("tok-new", "pc", "conn-1"), 200, "allow", "ok", "upstream")
	waitFor(t, "both verdicts", func() bool { return h.metric("playerguard_revalidations_total", "outcome", "kick") >= 2 })
	if len(h.sessionsOf("pb")) != 1 || len(h.sessionsOf("pc")) != 1 {
		t.Errorf("a verdict about an older session ended a newer one: pb %v, pc %v", h.sessionsOf("pb"), h.sessionsOf("pc"))
	}
	if ev := stream.Pending(); len(ev) != 0 {
		t.Errorf("events for sessions that were gone: %+v", ev)
	}
}

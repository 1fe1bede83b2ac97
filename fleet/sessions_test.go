package fleet

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"playerguard/internal/testkit"
	"playerguard/validator/kakaogames"
	"playerguard/validator/kakaogames/kakaogamestest"
)

// connect validates token for player on s with sessionId.
func (s *sidecar) connect(token, player, session string) int {
	s.t.Helper()
	b, _ := json.Marshal(map[string]string{"accessToken": token, "platform": "mobile", "playerId": player, "sessionId": session})
	req, _ := http.NewRequest("POST", s.url+kakaogames.Path, strings.NewReader(string(b)))
	r := testkit.Do(s.t, s.http, req)
	s.v.Settle()
	return r.Status
}

type fleetEvent struct {
	SessionID, PlayerID, Provider, Reason, Source string
	RedirectURI                                   json.RawMessage
}

func nextKick(t *testing.T, s *testkit.SSE) fleetEvent {
	t.Helper()
	e := s.Next(t, 10*time.Second)
	var k fleetEvent
	if e.Type != "kick" || json.Unmarshal([]byte(e.Data), &k) != nil {
		t.Fatalf("event %+v, want a kick", e)
	}
	return k
}

// TestAdminKickReachesEverySidecar: /admin/kick on A ends the player's
// session on B, through a real redis-server, with an admin event there.
func TestAdminKickReachesEverySidecar(t *testing.T) {
	ft := newFleet(t, 2, nil)
	a, b := ft.cars[0], ft.cars[1]
	ft.allow("tok-k", "4001")
	if st := b.connect("tok-k", "4001", "b-room-1"); st != 200 {
		t.Fatalf("connect on B: %d", st)
	}
	stream := testkit.OpenSSE(t, b.url+"/v1/events", "")
	req, _ := http.NewRequest("POST", "/admin/kick", strings.NewReader(`{"playerId":"4001","reason":"cheating wave"}`))
	req.Header.Set("Authorization", "Bearer SECRET-admin-token")
	rec := &responseRecorder{header: http.Header{}}
	a.ops.ServeHTTP(rec, req)
	if rec.status != 200 || !strings.Contains(rec.body.String(), `"sessions":0`) || !strings.Contains(rec.body.String(), `"fleet":true`) {
		t.Fatalf("kick on A: %d %s", rec.status, rec.body.String())
	}
	e := nextKick(t, stream)
	if e.SessionID != "b-room-1" || e.PlayerID != "4001" || e.Source != "admin" || e.Reason != "cheating wave" || e.Provider != "kakao-games" {
		t.Fatalf("B's event %+v", e)
	}
	// B's cached allow went with it: a reconnect asks the upstream.
	if b.cached("tok-k", "4001") {
		t.Error("B still holds the kicked player's allow")
	}
	if got := b.metric("playerguard_kick_events_total", "source", "admin"); got != 1 {
		t.Errorf("B: kick_events_total{admin} = %v", got)
	}
}

// TestLockoutReachesSessionsOnOtherSidecars: a connect on A that comes
// back locked out ends the player's session on B, as a fleet event with
// the lockout page's objects.
func TestLockoutReachesSessionsOnOtherSidecars(t *testing.T) {
	ft := newFleet(t, 2, nil)
	a, b := ft.cars[0], ft.cars[1]
	ft.allow("tok-ok", "4002")
	if st := b.connect("tok-ok", "4002", "b-room-2"); st != 200 {
		t.Fatalf("connect on B: %d", st)
	}
	stream := testkit.OpenSSE(t, b.url+"/v1/events", "")
	lock := kakaogamestest.Lockout(testApp, "4002")
	ft.fake.Set("tok-locked", lock)
	if _, d, _ := a.check("tok-locked", "4002"); d != "kick" {
		t.Fatalf("A: %s, want the lockout", d)
	}
	e := nextKick(t, stream)
	var up map[string]json.RawMessage
	json.Unmarshal(lock.Body, &up)
	if e.SessionID != "b-room-2" || e.Source != "fleet" || e.Reason != "lockout" || string(e.RedirectURI) != string(up["redirectUri"]) {
		t.Fatalf("B's event %+v, want a fleet lockout with redirectUri %s", e, up["redirectUri"])
	}
}

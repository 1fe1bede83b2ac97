package fleet

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/redis/rueidis"

	"playerguard/internal/testkit"
	"playerguard/validator"
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

// TestKickNoteReplayed: a kick note published again (anyone who can
// publish on the channel can copy one) ends no session; nor does one
// sent longer ago than a note takes.
func TestKickNoteReplayed(t *testing.T) {
	ft := newFleet(t, 2, nil)
	a, b := ft.cars[0], ft.cars[1]
	ft.allow("tok-r", "4003")
	// A tap on the channel, as anyone with Redis access could have.
	tap, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{ft.redis.Addr}, DisableCache: true})
	if err != nil {
		t.Fatal(err)
	}
	defer tap.Close()
	notes := make(chan string, 16)
	subscribed := make(chan struct{})
	go tap.Receive(rueidis.WithOnSubscriptionHook(context.Background(), func(rueidis.PubSubSubscription) { close(subscribed) }),
		tap.B().Subscribe().Channel(b.tier.chann).Build(), func(m rueidis.PubSubMessage) {
			if len(m.Message) > 0 && m.Message[0] == noteVersion {
				notes <- m.Message
			}
		})
	select {
	case <-subscribed:
	case <-time.After(10 * time.Second):
		t.Fatal("the tap did not subscribe")
	}
	req, _ := http.NewRequest("POST", "/admin/kick", strings.NewReader(`{"playerId":"4003"}`))
	req.Header.Set("Authorization", "Bearer SECRET-admin-token")
	a.ops.ServeHTTP(&responseRecorder{header: http.Header{}}, req)
	var note string
	select {
	case note = <-notes:
	case <-time.After(10 * time.Second):
		t.Fatal("no note published")
	}
	// B reconnects the player, then the note is published again.
	if st := b.connect("tok-r", "4003", "b-room-3"); st != 200 {
		t.Fatalf("connect on B: %d", st)
	}
	stream := testkit.OpenSSE(t, b.url+"/v1/events", "")
	if err := tap.Do(context.Background(), tap.B().Publish().Channel(b.tier.chann).Message(note).Build()).Error(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for b.metric("playerguard_fleet_values_ignored_total", "why", "note_replayed") < 1 {
		if time.Now().After(deadline) {
			t.Fatal("the replayed note was not counted as one")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if ev := stream.Pending(); len(ev) != 0 {
		t.Errorf("a replayed note kicked: %+v", ev)
	}
	if got := b.metric("playerguard_sessions", "provider", "kakao-games"); got != 1 {
		t.Errorf("B's sessions after the replay: %v, want 1", got)
	}
	// An old note, sealed with the fleet key but sent long ago.
	old, _ := b.tier.keys.sealNote(b.tier.chann, 7, time.Now().Add(-time.Hour).UnixMicro(), "4003", &validator.FleetKick{Reason: "old"})
	tap.Do(context.Background(), tap.B().Publish().Channel(b.tier.chann).Message(rueidis.BinaryString(old)).Build())
	for b.metric("playerguard_fleet_values_ignored_total", "why", "note_stale") < 1 {
		if time.Now().After(deadline) {
			t.Fatal("the old note was not counted as stale")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if got := b.metric("playerguard_sessions", "provider", "kakao-games"); got != 1 {
		t.Errorf("B's sessions after an old note: %v, want 1", got)
	}
}

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

// adminKick is POST /admin/kick with body on s's ops handler.
func (s *sidecar) adminKick(body string) *responseRecorder {
	req, _ := http.NewRequest("POST", "/admin/kick", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer SECRET-admin-token")
	rec := &responseRecorder{header: http.Header{}}
	s.ops.ServeHTTP(rec, req)
	return rec
}

// sessionsOf is how many live sessions s lists for player.
func (s *sidecar) sessionsOf(player string) int {
	s.t.Helper()
	req, _ := http.NewRequest("GET", s.url+"/v1/sessions?playerId="+player, nil)
	r := testkit.Do(s.t, s.http, req)
	list, _ := r.Body["sessions"].([]any)
	return len(list)
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
	rec := a.adminKick(`{"playerId":"4001","reason":"cheating wave"}`)
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

// barrier kicks a player of its own through a's /admin/kick and waits
// for the event on b's stream: every note a published before has been
// heard by b. It returns the events that came before the barrier's.
func barrier(t *testing.T, a, b *sidecar, stream *testkit.SSE, player string) []testkit.SSEEvent {
	t.Helper()
	b.t.Helper()
	if st := b.connect("tok-"+player, player, "barrier-"+player); st != 200 {
		t.Fatalf("barrier connect: %d", st)
	}
	a.adminKick(`{"playerId":"` + player + `"}`)
	var before []testkit.SSEEvent
	for {
		e := stream.Next(t, 10*time.Second)
		if strings.Contains(e.Data, `"barrier-`+player+`"`) {
			return before
		}
		before = append(before, e)
	}
}

// TestKickNoteReplayed: a kick note published again (anyone who can
// publish on the channel can copy one), or one sealed long ago, ends no
// session validated after the kick.
func TestKickNoteReplayed(t *testing.T) {
	ft := newFleet(t, 2, nil)
	a, b := ft.cars[0], ft.cars[1]
	ft.allow("tok-r", "4003")
	ft.allow("tok-4900", "4900")
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
	a.adminKick(`{"playerId":"4003"}`)
	var note string
	select {
	case note = <-notes:
	case <-time.After(10 * time.Second):
		t.Fatal("no note published")
	}
	// The player connects on B after the kick, then the note is
	// published again, and an old one.
	time.Sleep(10 * time.Millisecond)
	if st := b.connect("tok-r", "4003", "b-room-3"); st != 200 {
		t.Fatalf("connect on B: %d", st)
	}
	stream := testkit.OpenSSE(t, b.url+"/v1/events", "")
	old, _ := b.tier.keys.sealNote(b.tier.chann, 7, time.Now().Add(-time.Hour).UnixMicro(), "4003", &validator.FleetKick{Reason: "old"})
	for _, m := range []string{note, rueidis.BinaryString(old)} {
		if err := tap.Do(context.Background(), tap.B().Publish().Channel(b.tier.chann).Message(m).Build()).Error(); err != nil {
			t.Fatal(err)
		}
	}
	if ev := barrier(t, a, b, stream, "4900"); len(ev) != 0 {
		t.Errorf("a replayed or old note kicked: %+v", ev)
	}
	if got := b.sessionsOf("4003"); got != 1 {
		t.Errorf("B's sessions of 4003 after the replay: %d, want 1", got)
	}
}

// TestHeldKickEndsNoLaterSession: a kick A made while Redis was frozen
// goes out when it is back; meanwhile the player connected on B with an
// upstream allow: that session stays.
func TestHeldKickEndsNoLaterSession(t *testing.T) {
	ft := newFleet(t, 2, nil)
	a, b := ft.cars[0], ft.cars[1]
	ft.allow("tok-4901", "4901")
	ft.redis.Freeze()
	ft.fake.Set("tok-locked", kakaogamestest.Lockout(testApp, "7001"))
	if _, d, _ := a.check("tok-locked", "7001"); d != "kick" {
		t.Fatalf("A: %s, want the lockout", d)
	}
	time.Sleep(10 * time.Millisecond)
	// The lockout is lifted; the player connects on B, allowed.
	ft.allow("tok-fresh", "7001")
	if st := b.connect("tok-fresh", "7001", "b-room-9"); st != 200 {
		t.Fatalf("connect on B: %d", st)
	}
	ft.redis.Thaw()
	a.waitConnected()
	b.waitConnected()
	stream := testkit.OpenSSE(t, b.url+"/v1/events", "")
	deadline := time.Now().Add(10 * time.Second)
	for a.metric("playerguard_fleet_kicks_pending") != 0 {
		if time.Now().After(deadline) {
			t.Fatal("A's held kick never went out")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if ev := barrier(t, a, b, stream, "4901"); len(ev) != 0 {
		t.Errorf("B kicked a session allowed after the kick, on a kick held while Redis was frozen: %+v", ev)
	}
	if got := b.sessionsOf("7001"); got != 1 {
		t.Errorf("B's sessions of 7001: %d, want 1", got)
	}
}

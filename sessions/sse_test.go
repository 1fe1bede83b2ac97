package sessions

import (
	"encoding/json"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"playerguard/internal/testkit"
)

func serveEvents(t *testing.T, b *Buffer, s Stream) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) { ServeEvents(ctx, b, s) }}
	go srv.Serve(ln)
	t.Cleanup(func() { ln.Close() })
	return "http://" + ln.Addr().String() + "/v1/events"
}

func TestServeEvents(t *testing.T) {
	b := NewBuffer(100, 1)
	done := make(chan struct{})
	url := serveEvents(t, b, Stream{Heartbeat: 30 * time.Millisecond, Done: done})
	b.Append(Event{Type: "kick", SessionID: "before"}) // before the client: not sent

	c := testkit.OpenSSE(t, url, "")
	for i := range 3 {
		b.Append(Event{Type: "kick", SessionID: "s" + string(rune('1'+i)), PlayerID: "p", Source: "validation", Reason: "lockout",
			RedirectURI: json.RawMessage(`"https://example.invalid/lockout"`)})
	}
	var last string
	for i := range 3 {
		e := c.Next(t, 5*time.Second)
		if e.Type != "kick" || e.ID != string(rune('2'+i)) {
			t.Fatalf("event %d: %+v", i, e)
		}
		var got Event
		if err := json.Unmarshal([]byte(e.Data), &got); err != nil || got.SessionID != "s"+string(rune('1'+i)) || string(got.RedirectURI) != `"https://example.invalid/lockout"` {
			t.Fatalf("data %s: %v", e.Data, err)
		}
		last = e.ID
	}
	// Reconnecting with the last id seen: exactly what was missed.
	b.Append(Event{Type: "kick", SessionID: "missed-1"})
	b.Append(Event{Type: "kick", SessionID: "missed-2"})
	c2 := testkit.OpenSSE(t, url, last)
	for _, want := range []string{"missed-1", "missed-2"} {
		e := c2.Next(t, 5*time.Second)
		var got Event
		json.Unmarshal([]byte(e.Data), &got)
		if got.SessionID != want {
			t.Fatalf("after Last-Event-ID %s: %+v, want %s", last, e, want)
		}
	}
	// A Last-Event-ID that is not a number: reset, then from now.
	c3 := testkit.OpenSSE(t, url, "abc")
	if e := c3.Next(t, 5*time.Second); e.Type != "reset" {
		t.Fatalf("Last-Event-ID abc: %+v, want a reset", e)
	}
	b.Append(Event{Type: "kick", SessionID: "after-reset"})
	if e := c3.Next(t, 5*time.Second); !strings.Contains(e.Data, "after-reset") {
		t.Fatalf("after the reset: %+v", e)
	}
	// Heartbeats on an idle stream, after the opening comment.
	deadline := time.Now().Add(5 * time.Second)
	for !slices.Contains(c.Comments(), ": heartbeat") {
		if time.Now().After(deadline) {
			t.Fatalf("no heartbeat: %q", c.Comments())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if got := c.Comments()[0]; got != ": playerguard events" {
		t.Errorf("first comment %q, want the opening one", got)
	}
	// A drain ends every stream.
	close(done)
	for _, e := range c2.Rest(t, 5*time.Second) {
		if !strings.Contains(e.Data, "after-reset") {
			t.Errorf("after the drain: %+v (only after-reset was pending)", e)
		}
	}
}

// TestServeEventsTooFarBehind: a client whose Last-Event-ID is older than
// what is kept gets a reset, then everything kept.
func TestServeEventsTooFarBehind(t *testing.T) {
	b := NewBuffer(2, 1)
	for range 5 {
		b.Append(Event{Type: "kick"})
	}
	c := testkit.OpenSSE(t, serveEvents(t, b, Stream{}), "1")
	want := []string{"reset", "4", "5"}
	for _, w := range want {
		e := c.Next(t, 5*time.Second)
		got := e.ID
		if e.Type == "reset" {
			got = "reset"
		}
		if got != w {
			t.Fatalf("got %+v, want %s", e, w)
		}
	}
}

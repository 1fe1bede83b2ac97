package sessions

import (
	"bufio"
	"encoding/json"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// sseClient reads one stream: each event's id, type and data, and the
// comments.
type sseClient struct {
	t    *testing.T
	res  *http.Response
	r    *bufio.Reader
	seen []string // "comment", "kick 3", "reset"
}

type sseEvent struct {
	id, typ, data string
}

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

func connect(t *testing.T, url, lastID string) *sseClient {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { res.Body.Close() })
	if ct := res.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("Content-Type %q", ct)
	}
	return &sseClient{t: t, res: res, r: bufio.NewReader(res.Body)}
}

// next is the next event (comments skipped and counted).
func (c *sseClient) next() (sseEvent, bool) {
	c.t.Helper()
	var e sseEvent
	for {
		line, err := c.r.ReadString('\n')
		if err != nil {
			return e, false
		}
		line = strings.TrimSuffix(line, "\n")
		switch {
		case line == "":
			if e.typ != "" {
				return e, true
			}
		case strings.HasPrefix(line, ":"):
			c.seen = append(c.seen, "comment"+line)
		case strings.HasPrefix(line, "id: "):
			e.id = line[4:]
		case strings.HasPrefix(line, "event: "):
			e.typ = line[7:]
		case strings.HasPrefix(line, "data: "):
			e.data = line[6:]
		}
	}
}

func TestServeEvents(t *testing.T) {
	b := NewBuffer(100)
	done := make(chan struct{})
	url := serveEvents(t, b, Stream{Heartbeat: 30 * time.Millisecond, Done: done})
	b.Append(Event{Type: "kick", SessionID: "before"}) // before the client: not sent

	c := connect(t, url, "")
	if _, err := c.r.ReadString('\n'); err != nil { // the opening comment
		t.Fatal(err)
	}
	for i := range 3 {
		b.Append(Event{Type: "kick", SessionID: "s" + string(rune('1'+i)), PlayerID: "p", Source: "validation", Reason: "lockout",
			RedirectURI: json.RawMessage(`"https://example.invalid/lockout"`)})
	}
	var last string
	for i := range 3 {
		e, ok := c.next()
		if !ok || e.typ != "kick" || e.id != string(rune('2'+i)) {
			t.Fatalf("event %d: %+v (ok %v)", i, e, ok)
		}
		var got Event
		if err := json.Unmarshal([]byte(e.data), &got); err != nil || got.SessionID != "s"+string(rune('1'+i)) || string(got.RedirectURI) != `"https://example.invalid/lockout"` {
			t.Fatalf("data %s: %v", e.data, err)
		}
		last = e.id
	}
	// Reconnecting with the last id seen: exactly what was missed.
	b.Append(Event{Type: "kick", SessionID: "missed-1"})
	b.Append(Event{Type: "kick", SessionID: "missed-2"})
	c2 := connect(t, url, last)
	for _, want := range []string{"missed-1", "missed-2"} {
		e, ok := c2.next()
		var got Event
		json.Unmarshal([]byte(e.data), &got)
		if !ok || got.SessionID != want {
			t.Fatalf("after Last-Event-ID %s: %+v, want %s", last, e, want)
		}
	}
	// A Last-Event-ID that is not a number: reset, then from now.
	c3 := connect(t, url, "abc")
	if e, ok := c3.next(); !ok || e.typ != "reset" {
		t.Fatalf("Last-Event-ID abc: %+v, want a reset", e)
	}
	b.Append(Event{Type: "kick", SessionID: "after-reset"})
	if e, ok := c3.next(); !ok || !strings.Contains(e.data, "after-reset") {
		t.Fatalf("after the reset: %+v", e)
	}
	// Heartbeats on an idle stream.
	deadline := time.Now().Add(5 * time.Second)
	for {
		hb := 0
		for _, s := range c.seen {
			if s == "comment: heartbeat" {
				hb++
			}
		}
		if hb > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no heartbeat")
		}
		c.r.ReadString('\n')
		line, _ := c.r.Peek(1)
		if len(line) > 0 && line[0] == ':' {
			l, _ := c.r.ReadString('\n')
			c.seen = append(c.seen, "comment"+strings.TrimSuffix(l, "\n"))
		}
	}
	// A drain ends every stream.
	close(done)
	for {
		e, ok := c2.next()
		if !ok {
			break // the stream ended
		}
		if !strings.Contains(e.data, "after-reset") {
			t.Errorf("after the drain: %+v (only after-reset was pending)", e)
		}
	}
}

// TestServeEventsTooFarBehind: a client whose Last-Event-ID is older than
// what is kept gets a reset, then everything kept.
func TestServeEventsTooFarBehind(t *testing.T) {
	b := NewBuffer(2)
	for range 5 {
		b.Append(Event{Type: "kick"})
	}
	c := connect(t, serveEvents(t, b, Stream{}), "1")
	want := []string{"reset", "4", "5"}
	for _, w := range want {
		e, ok := c.next()
		got := e.id
		if e.typ == "reset" {
			got = "reset"
		}
		if !ok || got != w {
			t.Fatalf("got %+v, want %s", e, w)
		}
	}
}

package testkit

import (
	"bufio"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// SSEEvent is one Server-Sent Event as a client reads it.
type SSEEvent struct{ ID, Type, Data string }

// SSE is a client of one event stream: its events arrive on a channel,
// its comments (the opening one, heartbeats) are kept apart.
type SSE struct {
	events chan SSEEvent
	res    *http.Response

	mu       sync.Mutex
	comments []string
}

// OpenSSE connects to url (with Last-Event-ID lastID, if not "") and
// reads the stream until the test ends.
func OpenSSE(t testing.TB, url, lastID string) *SSE {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if ct := res.Header.Get("Content-Type"); res.StatusCode != 200 || ct != "text/event-stream" {
		res.Body.Close()
		t.Fatalf("GET %s: %d, Content-Type %q", url, res.StatusCode, ct)
	}
	s := &SSE{events: make(chan SSEEvent, 1024), res: res}
	t.Cleanup(func() { res.Body.Close() })
	go func() {
		defer close(s.events)
		r := bufio.NewReader(res.Body)
		var e SSEEvent
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return
			}
			line = strings.TrimSuffix(line, "\n")
			switch {
			case line == "":
				if e.Type != "" {
					s.events <- e
				}
				e = SSEEvent{}
			case strings.HasPrefix(line, ":"):
				s.mu.Lock()
				s.comments = append(s.comments, line)
				s.mu.Unlock()
			case strings.HasPrefix(line, "id: "):
				e.ID = line[4:]
			case strings.HasPrefix(line, "event: "):
				e.Type = line[7:]
			case strings.HasPrefix(line, "data: "):
				e.Data = line[6:]
			}
		}
	}()
	return s
}

// Next is the next event, or a test failure after within.
func (s *SSE) Next(t testing.TB, within time.Duration) SSEEvent {
	t.Helper()
	select {
	case e, ok := <-s.events:
		if !ok {
			t.Fatal("the event stream ended")
		}
		return e
	case <-time.After(within):
		t.Fatalf("no event within %s", within)
	}
	return SSEEvent{}
}

// Pending is the events received and not yet read, without waiting.
func (s *SSE) Pending() []SSEEvent {
	var out []SSEEvent
	for {
		select {
		case e, ok := <-s.events:
			if !ok {
				return out
			}
			out = append(out, e)
		default:
			return out
		}
	}
}

// Comments is the comment lines received so far (": heartbeat"...).
func (s *SSE) Comments() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.comments...)
}

// Rest is every event until the stream ends, or a test failure if it
// has not ended within.
func (s *SSE) Rest(t testing.TB, within time.Duration) []SSEEvent {
	t.Helper()
	var out []SSEEvent
	deadline := time.After(within)
	for {
		select {
		case e, ok := <-s.events:
			if !ok {
				return out
			}
			out = append(out, e)
		case <-deadline:
			t.Fatalf("the stream did not end within %s", within)
		}
	}
}

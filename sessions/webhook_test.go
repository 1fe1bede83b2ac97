package sessions

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"
)

// TestWebhook: a 500, then no answer within the timeout, then a 200 for
// the first event; the second waits its turn; each is acknowledged once,
// in order, and the outcomes are reported.
func TestWebhook(t *testing.T) {
	var (
		mu       sync.Mutex
		attempts = map[uint64]int{}
		acked    []uint64
	)
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var e Event
		b, _ := io.ReadAll(r.Body)
		if err := json.Unmarshal(b, &e); err != nil || r.Header.Get("Content-Type") != "application/json" {
			t.Errorf("body %q: %v", b, err)
		}
		mu.Lock()
		attempts[e.ID]++
		n := attempts[e.ID]
		mu.Unlock()
		switch {
		case e.ID == 1 && n == 1:
			w.WriteHeader(500)
		case e.ID == 1 && n == 2:
			<-release // past the sender's timeout
		default:
			mu.Lock()
			acked = append(acked, e.ID)
			mu.Unlock()
		}
	}))
	defer srv.Close()
	defer close(release)
	var outcomes []string
	var omu sync.Mutex
	wh := &Webhook{URL: srv.URL, Timeout: 100 * time.Millisecond, Backoff: 10 * time.Millisecond,
		OnResult: func(o string, _ time.Duration) { omu.Lock(); outcomes = append(outcomes, o); omu.Unlock() }}
	wh.Start()
	defer wh.Stop()
	b := NewBuffer(10, 1)
	for _, s := range []string{"s1", "s2"} {
		wh.Deliver(b.Append(Event{Type: "kick", SessionID: s, At: time.Now()}))
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		mu.Lock()
		n := len(acked)
		mu.Unlock()
		if n == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("acknowledged %v after 5s (attempts %v)", acked, attempts)
		}
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond) // nothing more may come
	mu.Lock()
	defer mu.Unlock()
	if acked[0] != 1 || acked[1] != 2 || attempts[1] != 3 || attempts[2] != 1 {
		t.Errorf("acknowledged %v, attempts %v; want 1 then 2, three attempts of 1 and one of 2", acked, attempts)
	}
	omu.Lock()
	defer omu.Unlock()
	want := []string{"status_5xx", "timeout", "ok", "ok"}
	if len(outcomes) != len(want) {
		t.Fatalf("outcomes %v, want %v", outcomes, want)
	}
	for i := range want {
		if outcomes[i] != want[i] {
			t.Errorf("outcomes %v, want %v", outcomes, want)
			break
		}
	}
}

// TestWebhookNoRedirect: a redirect is a failure, retried at the same
// URL, never followed to where it points.
func TestWebhookNoRedirect(t *testing.T) {
	var mu sync.Mutex
	hits, elsewhere := 0, 0
	other := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { mu.Lock(); elsewhere++; mu.Unlock() }))
	defer other.Close()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		hits++
		n := hits
		mu.Unlock()
		if n == 1 {
			http.Redirect(w, r, other.URL, http.StatusTemporaryRedirect)
		}
	}))
	defer srv.Close()
	outcomes := make(chan string, 10)
	wh := &Webhook{URL: srv.URL, Backoff: time.Millisecond, OnResult: func(o string, _ time.Duration) { outcomes <- o }}
	wh.Start()
	defer wh.Stop()
	wh.Deliver(Event{ID: 1, Type: "kick", At: time.Now()})
	if a, b := <-outcomes, <-outcomes; a != "status_3xx" || b != "ok" {
		t.Errorf("outcomes %s, %s; want status_3xx then ok", a, b)
	}
	mu.Lock()
	defer mu.Unlock()
	if elsewhere != 0 || hits != 2 {
		t.Errorf("the redirect's target got %d calls, the webhook %d", elsewhere, hits)
	}
}

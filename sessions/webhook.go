package sessions

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"sync"
	"time"
)

// Webhook POSTs each event, as JSON, to one URL, in order, at least once:
// an answer other than 2xx, a dropped connection or no answer within
// Timeout is tried again with backoff, and the next event waits (so events
// of one session arrive in order). The event id lets the receiver drop a
// duplicate.
type Webhook struct {
	URL     string
	Timeout time.Duration // per attempt; zero means 2s
	// MaxQueue bounds the events waiting; past it the oldest are dropped
	// (OnDropped). Zero means 10,000.
	MaxQueue int
	// OnResult, if set, hears each attempt's outcome ("ok", "error",
	// "timeout", "status_5xx"..., "status_other") and, for "ok", how long after the event
	// it was delivered.
	OnResult func(outcome string, delay time.Duration)
	// OnDropped, if set, hears each event dropped unsent.
	OnDropped func()
	// Backoff is the first retry's wait, doubling to MaxBackoff. Zero
	// means 100ms and 30s.
	Backoff, MaxBackoff time.Duration

	mu     sync.Mutex
	queue  []Event
	wake   chan struct{}
	stop   chan struct{}
	done   chan struct{}
	once   sync.Once
	client *http.Client
}

// Start runs the deliverer until Stop.
func (w *Webhook) Start() {
	if w.Timeout <= 0 {
		w.Timeout = 2 * time.Second
	}
	if w.MaxQueue <= 0 {
		w.MaxQueue = 10_000
	}
	if w.Backoff <= 0 {
		w.Backoff = 100 * time.Millisecond
	}
	if w.MaxBackoff <= 0 {
		w.MaxBackoff = 30 * time.Second
	}
	// A redirect is not followed: it is an answer other than a 2xx
	// (retried), not a licence to send players' events elsewhere.
	w.client = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	w.wake, w.stop, w.done = make(chan struct{}, 1), make(chan struct{}), make(chan struct{})
	go w.run()
}

// Stop ends delivery; events not yet delivered are dropped.
func (w *Webhook) Stop() {
	w.once.Do(func() { close(w.stop) })
	<-w.done
}

// Queued is the number of events waiting (the one being sent included).
func (w *Webhook) Queued() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.queue)
}

// Deliver queues e.
func (w *Webhook) Deliver(e Event) {
	w.mu.Lock()
	if len(w.queue) >= w.MaxQueue {
		w.queue = w.queue[1:]
		if w.OnDropped != nil {
			w.OnDropped()
		}
	}
	w.queue = append(w.queue, e)
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

func (w *Webhook) run() {
	defer close(w.done)
	for {
		w.mu.Lock()
		var e Event
		ok := len(w.queue) > 0
		if ok {
			e = w.queue[0]
		}
		w.mu.Unlock()
		if !ok {
			select {
			case <-w.wake:
				continue
			case <-w.stop:
				return
			}
		}
		pause := w.Backoff
		for !w.send(e) {
			select {
			case <-time.After(pause):
			case <-w.stop:
				return
			}
			pause = min(2*pause, w.MaxBackoff)
		}
		w.mu.Lock()
		if len(w.queue) > 0 && w.queue[0].ID == e.ID {
			w.queue = w.queue[1:]
		}
		w.mu.Unlock()
	}
}

// send makes one attempt; true once the receiver acknowledged (2xx).
func (w *Webhook) send(e Event) bool {
	body, _ := json.Marshal(e)
	ctx, cancel := context.WithTimeout(context.Background(), w.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.URL, bytes.NewReader(body))
	if err != nil {
		w.result("error", 0)
		return false
	}
	req.Header.Set("Content-Type", "application/json")
	res, err := w.client.Do(req)
	switch {
	case err != nil && ctx.Err() != nil:
		w.result("timeout", 0)
		return false
	case err != nil:
		w.result("error", 0)
		return false
	}
	io.Copy(io.Discard, io.LimitReader(res.Body, 64<<10))
	res.Body.Close()
	if res.StatusCode < 200 || res.StatusCode > 299 {
		outcome := "status_other"
		if c := res.StatusCode / 100; c >= 1 && c <= 5 {
			outcome = "status_" + string(rune('0'+c)) + "xx"
		}
		w.result(outcome, 0)
		return false
	}
	w.result("ok", time.Since(e.At))
	return true
}

func (w *Webhook) result(outcome string, delay time.Duration) {
	if w.OnResult != nil {
		w.OnResult(outcome, delay)
	}
}

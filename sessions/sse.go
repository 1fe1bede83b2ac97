package sessions

import (
	"bufio"
	"encoding/json"
	"strconv"
	"time"

	"github.com/valyala/fasthttp"
)

// Stream is what ServeEvents needs besides the buffer.
type Stream struct {
	// Heartbeat is how often an SSE comment keeps an idle stream alive
	// (proxies close silent connections). Zero means 15s.
	Heartbeat time.Duration
	// Done ends every stream (a drain: fasthttp's shutdown waits for open
	// connections, and a stream never ends on its own).
	Done <-chan struct{}
	// OnOpen and OnClose, if set, count the clients (a gauge).
	OnOpen, OnClose func()
}

// ServeEvents answers GET /v1/events as a Server-Sent Events stream of
// b's events: `id: N`, `event: kick`, `data: <JSON>` each; a client that
// sends Last-Event-ID gets every event after it still kept, or first an
// `event: reset` (it may have missed some: list the sessions again), as
// does one whose Last-Event-ID is not a number (it starts from now).
// Without Last-Event-ID the stream starts from now.
func ServeEvents(ctx *fasthttp.RequestCtx, b *Buffer, s Stream) {
	if s.Heartbeat <= 0 {
		s.Heartbeat = 15 * time.Second
	}
	from, reset := b.Last(), false
	if h := ctx.Request.Header.Peek("Last-Event-ID"); len(h) > 0 {
		if id, err := strconv.ParseUint(string(h), 10, 64); err == nil {
			from = id
		} else {
			reset = true
		}
	}
	ctx.SetContentType("text/event-stream")
	ctx.Response.Header.Set("Cache-Control", "no-store")
	ctx.Response.Header.Set("X-Accel-Buffering", "no") // nginx: do not buffer the stream
	ctx.SetBodyStreamWriter(func(w *bufio.Writer) {
		if s.OnOpen != nil {
			s.OnOpen()
			defer s.OnClose()
		}
		// A comment first: the client sees the stream open at once.
		if _, err := w.WriteString(": playerguard events\n\n"); err != nil || w.Flush() != nil {
			return
		}
		beat := time.NewTicker(s.Heartbeat)
		defer beat.Stop()
		for {
			events, missed, upTo, more := b.Since(from)
			if missed || reset {
				w.WriteString("event: reset\ndata: {}\n\n")
				reset = false
			}
			for _, e := range events {
				data, _ := json.Marshal(e)
				w.WriteString("id: " + strconv.FormatUint(e.ID, 10) + "\nevent: " + e.Type + "\ndata: ")
				w.Write(data)
				w.WriteString("\n\n")
			}
			from = upTo
			if w.Flush() != nil {
				return // the client is gone
			}
			select {
			case <-more:
			case <-beat.C:
				if _, err := w.WriteString(": heartbeat\n\n"); err != nil || w.Flush() != nil {
					return
				}
			case <-s.Done:
				return
			}
		}
	})
}

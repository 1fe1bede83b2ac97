package sessions

import (
	"encoding/json"
	"sync"
	"time"
)

// Event is one kick event, as sent to the game server (SSE data, webhook
// body). ID numbers events, increasing, per sidecar (see NewBuffer).
type Event struct {
	ID        uint64    `json:"id"`
	Type      string    `json:"type"` // "kick"
	SessionID string    `json:"sessionId"`
	PlayerID  string    `json:"playerId"`
	Provider  string    `json:"provider"`
	Reason    string    `json:"reason"`
	Source    string    `json:"source"` // revalidation, validation, fleet, admin
	At        time.Time `json:"at"`
	// RedirectURI and Token are a lockout's (the upstream's own objects,
	// as the game client needs them to show the lockout page).
	RedirectURI json.RawMessage `json:"redirectUri,omitempty"`
	Token       json.RawMessage `json:"token,omitempty"`
}

// Buffer numbers events and keeps the last few for readers that come
// back (Last-Event-ID); safe for concurrent use.
type Buffer struct {
	mu    sync.Mutex
	ring  []Event
	first uint64        // the first event's ID
	next  uint64        // the ID the next event gets
	wake  chan struct{} // closed and replaced on each Append
}

// NewBuffer keeps the last size events (size > 0), numbered from first
// (> 0). The engine starts at the time it started, in microseconds since
// 1970: a sidecar that restarted numbers above any ID it gave before (a
// client's Last-Event-ID from before the restart is then older than
// anything kept, and gets a reset, instead of a silent gap), and the IDs
// stay below 2^53, exact as JavaScript numbers, until the year 2255.
func NewBuffer(size int, first uint64) *Buffer {
	return &Buffer{ring: make([]Event, size), first: first, next: first, wake: make(chan struct{})}
}

// Append numbers e, keeps it and wakes the readers; it returns e as kept.
func (b *Buffer) Append(e Event) Event {
	b.mu.Lock()
	e.ID = b.next
	b.next++
	b.ring[e.ID%uint64(len(b.ring))] = e
	close(b.wake)
	b.wake = make(chan struct{})
	b.mu.Unlock()
	return e
}

// Since returns the events after id, in order, and a channel closed when
// another is appended. reset says the reader may have missed events and
// should list sessions again: id is older than what is kept (the events
// returned are then all those kept), or newer than any given (another
// process's numbering: none are returned, the reader starts from now).
//
// upTo is the id the reader is at after these events (the last returned,
// or the newest for a reader that starts from now).
func (b *Buffer) Since(id uint64) (events []Event, reset bool, upTo uint64, more <-chan struct{}) {
	b.mu.Lock()
	defer b.mu.Unlock()
	last := b.next - 1
	oldest := b.first
	if n := uint64(len(b.ring)); last >= b.first+n {
		oldest = last - n + 1
	}
	switch {
	case id > last:
		reset, id = true, last // numbering this process never gave
	case id+1 < oldest:
		reset, id = true, oldest-1
	}
	for i := id + 1; i <= last; i++ {
		events = append(events, b.ring[i%uint64(len(b.ring))])
	}
	return events, reset, last, b.wake
}

// Last is the newest event's id (first-1 for none): where a reader that
// starts from now begins.
func (b *Buffer) Last() uint64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.next - 1
}

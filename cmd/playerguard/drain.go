package main

import (
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// drainListener remembers the connections it accepted, so that a drain can
// close those that never sent a byte.
//
// Why: fasthttp counts a fresh connection as active from the moment it is
// accepted, before any request arrives, and (without a ReadTimeout, which
// the API server does without for speed) waits for it to send one. HTTP
// client pools dial connections they may never use (Go's transport does,
// under concurrency), so one such connection would hold a drain open until
// -drain-timeout. Keep-alive connections between requests are fasthttp's
// to close, and it does.
type drainListener struct {
	net.Listener
	mu    sync.Mutex
	conns map[*drainConn]struct{}
}

func newDrainListener(ln net.Listener) *drainListener {
	return &drainListener{Listener: ln, conns: map[*drainConn]struct{}{}}
}

func (l *drainListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	dc := &drainConn{Conn: c, l: l, accepted: time.Now()}
	l.mu.Lock()
	l.conns[dc] = struct{}{}
	l.mu.Unlock()
	return dc, nil
}

// closeUnused closes the connections that have not sent a byte in the
// olderThan since they were accepted: the client had its chance. It
// returns how many it closed.
func (l *drainListener) closeUnused(olderThan time.Duration) int {
	var victims []*drainConn
	cutoff := time.Now().Add(-olderThan)
	l.mu.Lock()
	for c := range l.conns {
		if !c.used.Load() && c.accepted.Before(cutoff) {
			victims = append(victims, c)
		}
	}
	l.mu.Unlock()
	for _, c := range victims {
		c.Close()
	}
	return len(victims)
}

// closeUnusedWhile calls closeUnused every tick until done is closed.
func (l *drainListener) closeUnusedWhile(done <-chan struct{}, olderThan, tick time.Duration) {
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		l.closeUnused(olderThan)
		select {
		case <-done:
			return
		case <-t.C:
		}
	}
}

type drainConn struct {
	net.Conn
	l        *drainListener
	accepted time.Time
	used     atomic.Bool
	once     sync.Once
}

func (c *drainConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 && !c.used.Load() {
		c.used.Store(true)
	}
	return n, err
}

func (c *drainConn) Close() error {
	c.once.Do(func() {
		c.l.mu.Lock()
		delete(c.l.conns, c)
		c.l.mu.Unlock()
	})
	return c.Conn.Close()
}

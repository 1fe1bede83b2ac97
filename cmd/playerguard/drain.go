package main

import (
	"context"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// drainListener is the API listener. It remembers the connections it
// accepted, so that a drain can end those with no request in progress, and
// gives them a lingering close for the answers fasthttp writes while the
// client is still sending (validator.ErrorHandler's LingerOnClose).
//
// Why the drain needs it: the API server has no ReadTimeout or IdleTimeout
// (they cost throughput), so fasthttp waits as long as a client likes for
// a request's first byte or its rest, and its Shutdown waits for every such
// connection. HTTP client pools dial connections they may never use (Go's
// transport does, under concurrency), and a caller can stall in the middle
// of a request; either would hold a drain open until -drain-timeout.
type drainListener struct {
	net.Listener
	mu       sync.Mutex
	conns    map[*drainConn]struct{}
	draining bool // set by drain; guarded by mu, so no Accept escapes it
	// writeGrace is how long a drained connection may still take to
	// write: long enough for an in-flight validation (bounded by the
	// upstream timeout) to be answered, short enough that a client that
	// never reads its answers cannot hold the drain. Zero: no bound.
	writeGrace time.Duration

	lingering atomic.Int64 // connections marked to linger, not yet closed
}

// Bounds on a lingering close: long enough for a client to finish sending
// a body it started before the answer came (16 KiB is the limit, but
// clients send what they declared), short enough that a client that keeps
// sending cannot hold a connection.
const (
	lingerTimeout  = 2 * time.Second
	lingerMaxBytes = 4 << 20
)

// aLongTimeAgo is a read deadline that has passed (net/http uses the same
// to abort a read).
var aLongTimeAgo = time.Unix(1, 0)

func newDrainListener(ln net.Listener) *drainListener {
	return &drainListener{Listener: ln, conns: map[*drainConn]struct{}{}}
}

func (l *drainListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	dc := &drainConn{Conn: c, l: l}
	l.mu.Lock()
	l.conns[dc] = struct{}{}
	draining := l.draining
	l.mu.Unlock()
	if draining {
		dc.drain()
	}
	return dc, nil
}

// drain ends every connection that has no request in progress: it sets
// each one's read deadline in the past. A connection waiting for a request
// then fails its read, and fasthttp closes it: silently if it never sent
// a byte (see Read) or was idle between keep-alive requests, with a 408
// (through validator.ErrorHandler) if a request had begun to arrive. A
// connection whose handler is running is not reading: its answer is
// written, fasthttp (CloseOnShutdown) closes it after. Connections
// accepted from now on are drained as they come.
//
// This relies on fasthttp's serveConn leaving read deadlines alone, which
// it does without ReadTimeout, IdleTimeout and a HeaderReceived hook;
// drainWhile repeats drain in case that changes.
func (l *drainListener) drain() {
	l.mu.Lock()
	l.draining = true
	conns := make([]*drainConn, 0, len(l.conns))
	for c := range l.conns {
		conns = append(conns, c)
	}
	l.mu.Unlock()
	for _, c := range conns {
		c.drain()
	}
}

// drainWhile calls drain every tick until done is closed.
func (l *drainListener) drainWhile(done <-chan struct{}, tick time.Duration) {
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		l.drain()
		select {
		case <-done:
			return
		case <-t.C:
		}
	}
}

// waitLingering waits until no connection is lingering, or ctx is done,
// so that the process does not exit (and reset them) mid-linger.
func (l *drainListener) waitLingering(ctx context.Context) {
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for l.lingering.Load() > 0 {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

type drainConn struct {
	net.Conn
	l    *drainListener
	used atomic.Bool // a byte was read

	mu       sync.Mutex // orders drain against LingerOnClose
	draining bool
	linger   bool

	once sync.Once
}

func (c *drainConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		if !c.used.Load() {
			c.used.Store(true)
		}
		return n, err
	}
	if err != nil && !c.used.Load() {
		c.mu.Lock()
		drained := c.draining
		c.mu.Unlock()
		if drained {
			// The drain cut a connection that never sent a byte. To
			// fasthttp this is the client hanging up (io.EOF), which it
			// closes without an answer; the timeout would get a 408 for a
			// request nobody made.
			return 0, io.EOF
		}
	}
	return n, err
}

// drain cuts the connection's reads, unless it is lingering: its linger
// has deadlines of its own.
func (c *drainConn) drain() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.linger {
		return
	}
	if !c.draining && c.l.writeGrace > 0 {
		// Once, at the first drain: a write blocked on a client that does
		// not read (pipelining requests) would otherwise hold the drain
		// until -drain-timeout.
		c.Conn.SetWriteDeadline(time.Now().Add(c.l.writeGrace))
	}
	c.draining = true
	c.Conn.SetReadDeadline(aLongTimeAgo)
}

// LingerOnClose makes Close linger: return at once, then, on its own
// goroutine, half-close the connection (the client gets what was written,
// then a FIN), read and discard what the client still sends (at most
// lingerMaxBytes, for at most lingerTimeout), and only then close it. A
// close with unread data would reset the connection instead, and the
// reset can destroy an answer the client has not read yet.
// validator.ErrorHandler calls it for a body over the limit.
func (c *drainConn) LingerOnClose() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.linger {
		c.linger = true
		c.l.lingering.Add(1)
	}
}

func (c *drainConn) Close() error {
	first := false
	c.once.Do(func() {
		first = true
		c.l.mu.Lock()
		delete(c.l.conns, c)
		c.l.mu.Unlock()
	})
	c.mu.Lock()
	linger := c.linger
	c.mu.Unlock()
	if !linger {
		return c.Conn.Close()
	}
	if first {
		go c.closeLingering()
	}
	return nil
}

func (c *drainConn) closeLingering() {
	defer c.l.lingering.Add(-1)
	defer c.Conn.Close()
	tc, ok := c.Conn.(interface{ CloseWrite() error }) // *net.TCPConn
	if !ok || tc.CloseWrite() != nil {
		return
	}
	if c.Conn.SetReadDeadline(time.Now().Add(lingerTimeout)) != nil {
		return
	}
	io.CopyN(io.Discard, c.Conn, lingerMaxBytes)
}

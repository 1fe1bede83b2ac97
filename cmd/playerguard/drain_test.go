package main

import (
	"context"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"playerguard/validator"
	"playerguard/validator/kakaogames"
)

// TestDrainNotHeldByNonReader: a client that pipelines requests and never
// reads the answers blocks the server's writes; the drain still ends,
// after the write grace, well within the drain timeout.
func TestDrainNotHeldByNonReader(t *testing.T) {
	kg, err := kakaogames.New(kakaogames.Config{Upstream: "http://127.0.0.1:1", AppID: "1", AppSecret: "s", AdminKey: "k"})
	if err != nil {
		t.Fatal(err)
	}
	v, err := validator.New(validator.Config{Logger: slog.New(slog.DiscardHandler)}, kg)
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := newDrainListener(raw)
	ln.writeGrace = 200 * time.Millisecond
	srv := v.NewServer()
	go srv.Serve(ln)

	c, err := net.Dial("tcp", raw.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.(*net.TCPConn).SetReadBuffer(4096)
	// Requests for an unknown path (answered at once, 404) until the
	// server's writes block: the client never reads.
	req := []byte(strings.Repeat("GET /nowhere HTTP/1.1\r\nHost: pg\r\n\r\n", 1000))
	// Until the client's writes block: the server's answers fill the
	// client's receive buffer, then the server stops reading.
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); {
		c.SetWriteDeadline(time.Now().Add(200 * time.Millisecond))
		if _, err := c.Write(req); err != nil {
			break
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	done := make(chan struct{})
	go ln.drainWhile(done, 20*time.Millisecond)
	start := time.Now()
	err = srv.ShutdownWithContext(ctx)
	close(done)
	if err != nil {
		t.Fatalf("drain: %v after %v", err, time.Since(start))
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("drain took %v with a 200ms write grace", d)
	}
}

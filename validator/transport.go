package validator

import (
	"bufio"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"time"

	"github.com/valyala/fasthttp"
)

// errOutOfStep is a response that does not end where the request's answer
// should: an informational status other than 100, 102 and 103 (a 101
// included), or bytes after the response. The connection may hold another
// request's answer; it is closed and the call fails.
var errOutOfStep = errors.New("upstream connection out of step")

// errClosedUnanswered: the upstream closed the connection (EOF, reset,
// broken pipe) before the first byte of an answer.
var errClosedUnanswered = errors.New("upstream closed the connection before answering")

// closedUnanswered reports whether err is the peer closing the connection
// (not a timeout).
func closedUnanswered(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// maxInterim bounds the 100/102/103 responses accepted before the final one.
const maxInterim = 8

// strictTransport is the HostClient transport of the upstream: fasthttp's
// own (transport.RoundTrip in fasthttp's client.go) with what a call
// deciding on a player's access cannot do without. fasthttp v1.78 puts a
// connection back into its pool with bytes after the response still
// unread (an unsolicited response, a 204 or 304 followed by a body), skips
// any 1xx as interim and takes a 101 as final; the next call on that
// connection, for another player, would read the stray answer. So:
//
//   - a pooled connection that has bytes waiting, or was closed by the
//     upstream, is closed instead of used (unsolicitedData);
//   - a 1xx other than 100, 102 and 103, or bytes after the response (in
//     fasthttp's reader, or over TLS decrypted inside the tls.Conn), fail
//     the call with errOutOfStep and close the connection;
//   - a body over maxBody drops the body, keeps the status (a kick is a
//     kick however long its body: the status line is the verdict), closes
//     the connection and returns errTooLarge with resp's status set;
//   - a GET on a pooled connection that the upstream closes before the
//     first byte of an answer (EOF, reset, broken pipe: its idle close
//     crossed the request) is sent once more on another connection, the
//     only resend there is: an upstream with a keep-alive timeout shorter
//     than MaxIdleConnDuration would otherwise fail such calls, and open
//     the breaker (bench/RESULTS.md, issue 14). A POST is never resent:
//     the upstream may have acted on it before the connection went.
//
// Every call is bounded by timeout from the moment it starts, waiting for
// a connection included.
type strictTransport struct {
	timeout time.Duration
	maxBody int
}

func (t *strictTransport) RoundTrip(hc *fasthttp.HostClient, req *fasthttp.Request, resp *fasthttp.Response) (bool, error) {
	deadline := time.Now().Add(t.timeout)
	resent := false
	for attempt := 0; ; attempt++ {
		wait := time.Until(deadline)
		if wait <= 0 {
			return false, fasthttp.ErrTimeout
		}
		cc, err := hc.AcquireConn(wait, false)
		if err != nil {
			return false, err
		}
		conn := cc.Conn()
		// A connection fresh from a dial has never been used (its last use
		// is zero): nothing can be waiting on it. A pooled one still has
		// its last call's deadline, long past: the peek would fail on it
		// without looking, so it is cleared first.
		if !cc.LastUseTime().IsZero() && (conn.SetReadDeadline(time.Time{}) != nil || unsolicitedData(conn)) {
			hc.CloseConn(cc)
			if attempt < maxInterim {
				continue
			}
			return false, fmt.Errorf("%w: every pooled connection had unread data", errOutOfStep)
		}
		pooled := !cc.LastUseTime().IsZero()
		keep, err := t.exchange(hc, conn, req, resp, deadline)
		if keep {
			hc.ReleaseConn(cc)
		} else {
			hc.CloseConn(cc)
		}
		if pooled && !resent && req.Header.IsGet() && errors.Is(err, errClosedUnanswered) {
			// The upstream closed an idle connection as the request went
			// out on it (a keep-alive timeout shorter than ours, the close
			// in flight when the peek above looked), or died after reading
			// it: a GET asks again (it changes nothing upstream); a POST
			// may have been acted on (an SMS sent, a one-time code used),
			// so it never is. The next connection is checked as any other.
			resent = true
			resp.Reset()
			continue
		}
		return false, err
	}
}

// exchange writes req and reads resp on conn. keep says whether conn may
// serve another call.
func (t *strictTransport) exchange(hc *fasthttp.HostClient, conn net.Conn, req *fasthttp.Request, resp *fasthttp.Response, deadline time.Time) (keep bool, err error) {
	if err := conn.SetDeadline(deadline); err != nil {
		return false, err
	}
	bw := hc.AcquireWriter(conn)
	err = req.Write(bw)
	if err == nil {
		err = bw.Flush()
	}
	hc.ReleaseWriter(bw)
	if err != nil {
		if closedUnanswered(err) {
			err = fmt.Errorf("%w: %w", errClosedUnanswered, err)
		}
		return false, err
	}

	br := hc.AcquireReader(conn)
	defer hc.ReleaseReader(br)
	if _, err := br.Peek(1); err != nil && closedUnanswered(err) {
		return false, fmt.Errorf("%w: %w", errClosedUnanswered, err)
	}
	if hc.DisableHeaderNamesNormalizing {
		resp.Header.DisableNormalizing()
	}
	if err := readFinalHeader(br, resp); err != nil {
		return false, err
	}
	if status := resp.StatusCode(); status != fasthttp.StatusNoContent && status != fasthttp.StatusNotModified {
		if err := resp.ReadBody(br, t.maxBody); err != nil {
			if errors.Is(err, fasthttp.ErrBodyTooLarge) {
				resp.ResetBody()
				return false, fmt.Errorf("%w (limit %d bytes)", errTooLarge, t.maxBody)
			}
			return false, err
		}
		if resp.Header.ContentLength() == -1 { // chunked: trailers end it
			if err := resp.Header.ReadTrailer(br); err != nil {
				return false, err
			}
		}
	}
	if n := br.Buffered(); n > 0 {
		if rest, _ := br.Peek(n); onlyCRLF(rest) {
			// Buggy servers leave line ends after a body (fasthttp's own
			// reader skips them): the answer stands, the connection goes.
			return false, nil
		}
		return false, fmt.Errorf("%w: %d bytes after the response", errOutOfStep, n)
	}
	keep = !req.ConnectionClose() && !resp.ConnectionClose()
	if tc, ok := conn.(*tls.Conn); ok && keep {
		// Bytes after the response may sit decrypted inside the TLS
		// connection (a body read straight into fasthttp's buffer leaves
		// the rest of its 16 KiB record there), where neither br nor a
		// peek at the socket sees them.
		switch tlsPending(tc) {
		case pendingData:
			return false, fmt.Errorf("%w: bytes after the response", errOutOfStep)
		case pendingClosed:
			keep = false
		}
	}
	return keep, nil
}

func onlyCRLF(b []byte) bool {
	for _, c := range b {
		if c != '\r' && c != '\n' {
			return false
		}
	}
	return true
}

type pending uint8

const (
	pendingNone pending = iota
	pendingData
	pendingClosed
)

// tlsPending reads what tc holds without waiting for the network: a read
// with a deadline already passed returns the plaintext tc has buffered, or
// a whole record it has buffered, and fails at once otherwise. A timeout
// does not break a tls.Conn (crypto/tls keeps only lasting errors).
func tlsPending(tc *tls.Conn) pending {
	if tc.SetReadDeadline(aLongTimeAgo) != nil {
		return pendingClosed
	}
	var b [1]byte
	n, err := tc.Read(b[:])
	var ne net.Error
	switch {
	case n > 0:
		return pendingData
	case errors.As(err, &ne) && ne.Timeout():
		return pendingNone
	}
	return pendingClosed
}

// aLongTimeAgo is a deadline that has passed (net/http uses the same to
// abort a read).
var aLongTimeAgo = time.Unix(1, 0)

// readFinalHeader reads resp's header, past at most maxInterim 100, 102 or
// 103 responses.
func readFinalHeader(br *bufio.Reader, resp *fasthttp.Response) error {
	for n := 0; ; n++ {
		if err := resp.Header.Read(br); err != nil {
			return err
		}
		switch s := resp.StatusCode(); {
		case s == fasthttp.StatusContinue || s == fasthttp.StatusProcessing || s == fasthttp.StatusEarlyHints:
			if n == maxInterim {
				return fmt.Errorf("%w: over %d interim responses", errOutOfStep, maxInterim)
			}
		case s >= 100 && s < 200:
			return fmt.Errorf("%w: unexpected %d response", errOutOfStep, s)
		default:
			return nil
		}
	}
}

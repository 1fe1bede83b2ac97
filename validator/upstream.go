package validator

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/valyala/fasthttp"
)

// HTTPUpstreamConfig configures an HTTPUpstream.
type HTTPUpstreamConfig struct {
	// URL is the upstream's base URL, http:// or https://; its path is
	// the prefix of every request's (see CheckUpstreamURL).
	URL string
	// CAFile, if set, is a PEM file of CAs trusted instead of the system
	// pool. TLS is always verified.
	CAFile string
	// Timeout bounds one request, from waiting for a connection to the
	// last byte of the answer. Required.
	Timeout time.Duration
	// MaxConns caps connections; MaxBody caps a response body (a larger
	// one is dropped, its status kept). Both required.
	MaxConns, MaxBody int
	// Secrets are the credentials sent with every request: a body that
	// echoes one is dropped, and an error text quoting one is scrubbed.
	Secrets []string
}

// HTTPUpstream is the hardened HTTP client every provider calling an API
// uses: one host, strictTransport (no connection out of step carries
// another call, a body over the cap keeps its status), no retries (but
// one resend of a GET the upstream's idle close left unanswered), no
// redirects followed, bodies echoing the credentials or the access token
// dropped, error texts scrubbed of them. Safe for concurrent use.
type HTTPUpstream struct {
	client  *fasthttp.HostClient
	base    string // scheme://host/base-path, no trailing slash
	host    string
	secrets []string
	timeout time.Duration
}

// Exchange is one upstream answer as received, copied out of fasthttp's
// pooled buffers.
type Exchange struct {
	Status      int
	Body        []byte // nil when dropped
	ContentType string
	// Dropped says why the body was dropped (too large, or echoing a
	// secret); nil when it was kept.
	Dropped error
	// TokenEcho says the kept body holds the request's access token (and
	// no secret): decide on it, but never hand it on or log it.
	TokenEcho bool
	// CacheControl is the Cache-Control header ("" when absent; the
	// first, when sent more than once).
	CacheControl string
}

// Transport failures, as Result.Err and for the upstream_requests outcome.
var (
	errTimeout    = ErrTimeout
	errTooLarge   = errors.New("upstream response body too large")
	errSaturated  = errors.New("too many concurrent upstream calls")
	errConnection = errors.New("upstream connection error")
	errPanic      = errors.New("upstream call panicked")
	errEchoed     = ErrEchoed
)

// ErrTimeout is (wrapped in) HTTPUpstream.Do's error when the request
// ran out of its timeout.
var ErrTimeout = errors.New("upstream timed out")

// ErrEchoed is Exchange.Dropped for a body that echoed a secret or the
// access token: whatever its status, such a body is nobody's verdict
// unless the provider knows better.
var ErrEchoed = errors.New("upstream response body echoes playerguard's credentials or the access token; body dropped")

// NewHTTPUpstream returns a client for cfg.URL.
func NewHTTPUpstream(cfg HTTPUpstreamConfig) (*HTTPUpstream, error) {
	// CheckUpstream's rules, so that -check-config refuses what this does.
	u, err := parseUpstreamURL(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("upstream URL: %w", err)
	}
	if cfg.Timeout <= 0 || cfg.MaxConns <= 0 || cfg.MaxBody <= 0 {
		return nil, errors.New("upstream timeout, connection cap and body cap must be positive")
	}
	var pool *x509.CertPool
	if cfg.CAFile != "" {
		if pool, err = readCAFile(cfg.CAFile); err != nil {
			return nil, fmt.Errorf("upstream CA file: %w", err)
		}
	}
	isTLS := u.Scheme == "https"
	addr := u.Host
	if u.Port() == "" {
		if isTLS {
			addr = net.JoinHostPort(u.Hostname(), "443")
		} else {
			addr = net.JoinHostPort(u.Hostname(), "80")
		}
	}
	var tlsConfig *tls.Config
	if isTLS {
		tlsConfig = &tls.Config{ServerName: u.Hostname(), MinVersion: tls.VersionTLS12, RootCAs: pool}
	}
	return &HTTPUpstream{
		client: &fasthttp.HostClient{
			Addr:                addr,
			Name:                "playerguard",
			IsTLS:               isTLS,
			TLSConfig:           tlsConfig,
			MaxConns:            cfg.MaxConns,
			MaxConnWaitTimeout:  cfg.Timeout,
			MaxIdleConnDuration: 30 * time.Second,
			ReadTimeout:         cfg.Timeout,
			WriteTimeout:        cfg.Timeout,
			MaxResponseBodySize: cfg.MaxBody,
			Transport:           &strictTransport{timeout: cfg.Timeout, maxBody: cfg.MaxBody},
			// fasthttp's error texts otherwise quote what it could not
			// parse, and an upstream or gateway that echoes request headers
			// would put the secrets and the token into a log line.
			SecureErrorLogMessage: true,
			// A validation is not idempotent in the upstream's eyes (it may
			// count attempts); never resend one behind the breaker's back.
			MaxIdemponentCallAttempts: 1,
			RetryIfErr:                func(*fasthttp.Request, int, error) (bool, bool) { return false, false },
			// Keep the response's header names as sent (the request's are
			// kept by NewRequest).
			DisableHeaderNamesNormalizing: true,
			NoDefaultUserAgentHeader:      true,
		},
		base:    u.Scheme + "://" + u.Host + strings.TrimSuffix(u.Path, "/"),
		host:    u.Host,
		secrets: cfg.Secrets,
		timeout: cfg.Timeout,
	}, nil
}

// NewRequest returns a request for method and path (under the base URL)
// whose header names are sent as set: some gateways are picky about case
// even though HTTP is not. Hand it to Do, which releases it.
func (u *HTTPUpstream) NewRequest(method, path string) *fasthttp.Request {
	req := fasthttp.AcquireRequest()
	req.Header.DisableNormalizing()
	req.SetRequestURI(u.base + path)
	req.Header.SetMethod(method)
	req.Header.SetHost(u.host)
	return req
}

// Do sends req (from NewRequest; released) about token and returns the
// answer. Its error is a transport failure: no HTTP response (errTimeout,
// errOutOfStep, errConnection, scrubbed of the secrets and the token);
// every status, good or bad, is an Exchange.
func (u *HTTPUpstream) Do(req *fasthttp.Request, token []byte) (Exchange, error) {
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	var ex Exchange
	switch err := u.client.DoTimeout(req, resp, u.timeout); {
	case errors.Is(err, errTooLarge):
		// strictTransport kept the status: it is still the verdict.
		ex.Dropped = err
	case err != nil:
		return ex, u.scrub(classify(err), token)
	default:
		ex.Body = append([]byte(nil), resp.Body()...)
	}
	ex.Status = resp.StatusCode()
	ex.ContentType = internContentType(resp.Header.ContentType())
	for name, value := range resp.Header.All() {
		// Names are kept as sent (DisableHeaderNamesNormalizing).
		if bytes.EqualFold(name, hdrCacheControl) {
			ex.CacheControl = string(value)
			break
		}
	}
	switch {
	case u.echoes(ex.Body, nil):
		// Our credentials: never handed on, cached or logged; nobody's
		// verdict.
		ex.Body, ex.Dropped = nil, errEchoed
	case u.echoes(ex.Body, token):
		// Only the caller's own token: which a caller can choose to be a
		// piece of the upstream's own answer ("code":-401}), so the body
		// still decides; the provider must not hand it on.
		ex.TokenEcho = true
	}
	return ex, nil
}

var hdrCacheControl = []byte("Cache-Control")

// Close closes the idle connections.
func (u *HTTPUpstream) Close() { u.client.CloseIdleConnections() }

// minEchoLen is the shortest access token looked for in upstream bodies:
// a shorter one would be found by chance in ordinary JSON.
const minEchoLen = 8

// echoes reports whether body holds a secret or (token not nil) the
// request's access token: an upstream or gateway echoing our request.
// The body is looked at as sent and with its JSON escapes undone (an
// echoing gateway may write "\/" for "/", and the game server reads the
// unescaped text).
func (u *HTTPUpstream) echoes(body, token []byte) bool {
	if len(body) == 0 {
		return false
	}
	if u.holds(body, token) {
		return true
	}
	return bytes.IndexByte(body, '\\') >= 0 && u.holds(unescapeAll(body), token)
}

func (u *HTTPUpstream) holds(b, token []byte) bool {
	for _, s := range u.secrets {
		if s != "" && bytes.Contains(b, []byte(s)) {
			return true
		}
	}
	return len(token) >= minEchoLen && bytes.Contains(b, token)
}

// unescapeAll undoes every JSON string escape in b, inside strings or not
// (outside them a backslash is not JSON anyway); a malformed escape is
// kept as it is.
func unescapeAll(b []byte) []byte {
	out := make([]byte, 0, len(b))
	for i := 0; i < len(b); i++ {
		c := b[i]
		if c != '\\' || i+1 >= len(b) {
			out = append(out, c)
			continue
		}
		switch e := b[i+1]; e {
		case '"', '\\', '/':
			out = append(out, e)
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			r, err := hex4(b, i+2)
			if err != nil {
				out = append(out, c)
				continue
			}
			i += 4
			if utf16.IsSurrogate(r) && i+7 < len(b) && b[i+2] == '\\' && b[i+3] == 'u' {
				if r2, err := hex4(b, i+4); err == nil {
					if p := utf16.DecodeRune(r, r2); p != utf8.RuneError {
						r = p
						i += 6
					}
				}
			}
			out = utf8.AppendRune(out, r)
		default:
			out = append(out, c)
			continue
		}
		i++
	}
	return out
}

// scrub removes the secrets and the access token from a transport error's
// text, which is logged: fasthttp's SecureErrorLogMessage leaves some
// messages quoting what they could not parse ("invalid header key %q").
func (u *HTTPUpstream) scrub(err error, token []byte) error {
	msg := err.Error()
	clean := msg
	for _, s := range u.secrets {
		if s != "" {
			clean = strings.ReplaceAll(clean, s, "[secret]")
		}
	}
	if len(token) > 0 {
		clean = strings.ReplaceAll(clean, string(token), "[access token]")
	}
	if clean == msg {
		return err
	}
	return &scrubbedError{msg: clean, err: err}
}

// scrubbedError is an error whose text had secrets removed; it still
// matches what it wraps (errors.Is), but its text is the clean one.
type scrubbedError struct {
	msg string
	err error
}

func (e *scrubbedError) Error() string { return e.msg }
func (e *scrubbedError) Unwrap() error { return e.err }

// classify turns a fasthttp client error into one of ours. The original is
// wrapped for the log; it names the upstream address, never a header.
func classify(err error) error {
	var ne net.Error
	switch {
	case errors.Is(err, fasthttp.ErrTimeout), errors.Is(err, fasthttp.ErrDialTimeout),
		errors.Is(err, fasthttp.ErrNoFreeConns), errors.As(err, &ne) && ne.Timeout():
		return fmt.Errorf("%w: %w", errTimeout, err)
	case errors.Is(err, errOutOfStep):
		return err
	}
	return fmt.Errorf("%w: %w", errConnection, err)
}

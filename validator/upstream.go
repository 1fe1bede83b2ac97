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

// ValidationPath is the Kakao Games OpenAPI player validation endpoint.
const ValidationPath = "/service/v5/auth/validation"

// upstream calls the Kakao Games validation API. Safe for concurrent use.
type upstream struct {
	client   *fasthttp.HostClient
	uri      string // full URL of the validation endpoint
	host     string
	appID    string
	secret   string
	adminKey string
	authz    string // "KakaoAK " + admin key
	timeout  time.Duration
}

// exchange is one upstream answer as received, copied out of fasthttp's
// pooled buffers.
type exchange struct {
	status      int
	body        []byte // nil when dropped
	contentType string
	latency     time.Duration
	// dropped says why the body was dropped (errTooLarge, errEchoed);
	// nil when it was kept.
	dropped error
}

// Transport failures, as Result.Err and for the upstream_requests outcome.
var (
	errTimeout    = errors.New("upstream timed out")
	errTooLarge   = errors.New("upstream response body too large")
	errSaturated  = errors.New("too many concurrent upstream calls")
	errConnection = errors.New("upstream connection error")
	errPanic      = errors.New("upstream call panicked")
	errEchoed     = errors.New("upstream response body echoes playerguard's credentials or the access token; body dropped")
)

func newUpstream(cfg *Config) (*upstream, error) {
	// CheckUpstream's rules, so that -check-config refuses what this does.
	u, err := parseUpstreamURL(cfg.Upstream)
	if err != nil {
		return nil, fmt.Errorf("upstream URL: %w", err)
	}
	var pool *x509.CertPool
	if cfg.UpstreamCAFile != "" {
		if pool, err = readCAFile(cfg.UpstreamCAFile); err != nil {
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
	base := strings.TrimSuffix(u.Path, "/")
	return &upstream{
		client: &fasthttp.HostClient{
			Addr:                addr,
			Name:                "playerguard",
			IsTLS:               isTLS,
			TLSConfig:           tlsConfig,
			MaxConns:            cfg.MaxUpstreamConns,
			MaxConnWaitTimeout:  cfg.UpstreamTimeout,
			MaxIdleConnDuration: 30 * time.Second,
			ReadTimeout:         cfg.UpstreamTimeout,
			WriteTimeout:        cfg.UpstreamTimeout,
			MaxResponseBodySize: cfg.MaxUpstreamBody,
			Transport:           &strictTransport{timeout: cfg.UpstreamTimeout, maxBody: cfg.MaxUpstreamBody},
			// fasthttp's error texts otherwise quote what it could not
			// parse, and an upstream or gateway that echoes request headers
			// would put the secrets and the token into a log line.
			SecureErrorLogMessage: true,
			// A validation is not idempotent in the upstream's eyes (it may
			// count attempts); never resend one behind the breaker's back.
			MaxIdemponentCallAttempts: 1,
			RetryIfErr:                func(*fasthttp.Request, int, error) (bool, bool) { return false, false },
			// Keep the response's header names as sent (the request's are
			// kept by call).
			DisableHeaderNamesNormalizing: true,
			NoDefaultUserAgentHeader:      true,
		},
		uri:      u.Scheme + "://" + u.Host + base + ValidationPath,
		host:     u.Host,
		appID:    cfg.AppID,
		secret:   cfg.AppSecret,
		adminKey: cfg.AdminKey,
		authz:    "KakaoAK " + cfg.AdminKey,
		timeout:  cfg.UpstreamTimeout,
	}, nil
}

// call asks the upstream about one token. It returns an error only when no
// HTTP response arrived; every status, good or bad, is an exchange.
func (u *upstream) call(platform, playerID, token []byte) (exchange, error) {
	req := fasthttp.AcquireRequest()
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)

	// Send appSecret, kgAppId, accessToken and playerId in the case the
	// docs show; some gateways are picky even though HTTP is not. (The
	// HostClient's DisableHeaderNamesNormalizing covers responses only.)
	req.Header.DisableNormalizing()
	req.SetRequestURI(u.uri)
	req.Header.SetMethod(fasthttp.MethodPost)
	req.Header.SetHost(u.host)
	req.Header.SetContentType("application/json;charset=UTF-8")
	req.Header.Set("appSecret", u.secret)
	req.Header.Set("Authorization", u.authz)
	req.Header.Set("kgAppId", u.appID)
	req.Header.SetBytesV("platform", platform)
	req.Header.SetBytesV("accessToken", token)
	if len(playerID) > 0 {
		req.Header.SetBytesV("playerId", playerID)
	}

	start := time.Now()
	err := u.client.DoTimeout(req, resp, u.timeout)
	ex := exchange{latency: time.Since(start)}
	switch {
	case errors.Is(err, errTooLarge):
		// strictTransport kept the status: it is still the verdict.
		ex.dropped = err
	case err != nil:
		return ex, u.scrub(classify(err), token)
	default:
		ex.body = append([]byte(nil), resp.Body()...)
	}
	ex.status = resp.StatusCode()
	ex.contentType = internContentType(resp.Header.ContentType())
	if u.echoes(ex.body, token) {
		// Never handed on, cached or logged: the status alone decides.
		ex.body, ex.dropped = nil, errEchoed
	}
	return ex, nil
}

// minEchoLen is the shortest access token looked for in upstream bodies:
// a shorter one would be found by chance in ordinary JSON.
const minEchoLen = 8

// echoes reports whether body holds the app secret, the admin key or the
// request's access token: an upstream or gateway echoing our request.
// The body is looked at as sent and with its JSON escapes undone (an
// echoing gateway may write "\/" for "/", and the game server reads the
// unescaped text).
func (u *upstream) echoes(body, token []byte) bool {
	if len(body) == 0 {
		return false
	}
	if u.holds(body, token) {
		return true
	}
	return bytes.IndexByte(body, '\\') >= 0 && u.holds(unescapeAll(body), token)
}

func (u *upstream) holds(b, token []byte) bool {
	for _, s := range [...]string{u.secret, u.adminKey} {
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
func (u *upstream) scrub(err error, token []byte) error {
	msg := err.Error()
	clean := msg
	for _, r := range [...][2]string{{u.secret, "[app secret]"}, {u.adminKey, "[admin key]"}, {string(token), "[access token]"}} {
		if r[0] != "" {
			clean = strings.ReplaceAll(clean, r[0], r[1])
		}
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

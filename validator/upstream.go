package validator

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/valyala/fasthttp"
)

// ValidationPath is the Kakao Games OpenAPI player validation endpoint.
const ValidationPath = "/service/v5/auth/validation"

// upstream calls the Kakao Games validation API. Safe for concurrent use.
type upstream struct {
	client  *fasthttp.HostClient
	uri     string // full URL of the validation endpoint
	host    string
	appID   string
	secret  string
	authz   string // "KakaoAK " + admin key
	timeout time.Duration
}

// exchange is one upstream answer as received, copied out of fasthttp's
// pooled buffers.
type exchange struct {
	status      int
	body        []byte
	contentType string
	latency     time.Duration
}

// Transport failures, as Result.Err and for the upstream_requests outcome.
var (
	errTimeout    = errors.New("upstream timed out")
	errTooLarge   = errors.New("upstream response body too large")
	errSaturated  = errors.New("too many concurrent upstream calls")
	errConnection = errors.New("upstream connection error")
	errPanic      = errors.New("upstream call panicked")
)

func newUpstream(cfg *Config) (*upstream, error) {
	u, err := url.Parse(cfg.Upstream)
	if err != nil {
		return nil, fmt.Errorf("cannot parse upstream URL: %w", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("upstream URL must be http:// or https://, got %q", u.Scheme)
	}
	if u.Host == "" {
		return nil, errors.New("upstream URL has no host")
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return nil, errors.New("upstream URL must be scheme://host[:port][/path] with no user info, query or fragment")
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
		tlsConfig = &tls.Config{ServerName: u.Hostname(), MinVersion: tls.VersionTLS12}
		if cfg.UpstreamCAFile != "" {
			pool, err := loadCAFile(cfg.UpstreamCAFile)
			if err != nil {
				return nil, err
			}
			tlsConfig.RootCAs = pool
		}
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
			// A validation is not idempotent in the upstream's eyes (it may
			// count attempts); never resend one behind the breaker's back.
			MaxIdemponentCallAttempts: 1,
			RetryIfErr:                func(*fasthttp.Request, int, error) (bool, bool) { return false, false },
			// Send appSecret, kgAppId, accessToken with the exact case the
			// docs show; some gateways are picky even though HTTP is not.
			DisableHeaderNamesNormalizing: true,
			NoDefaultUserAgentHeader:      true,
		},
		uri:     u.Scheme + "://" + u.Host + base + ValidationPath,
		host:    u.Host,
		appID:   cfg.AppID,
		secret:  cfg.AppSecret,
		authz:   "KakaoAK " + cfg.AdminKey,
		timeout: cfg.UpstreamTimeout,
	}, nil
}

func loadCAFile(path string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("cannot read upstream CA file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("upstream CA file %s holds no PEM certificate", path)
	}
	return pool, nil
}

// call asks the upstream about one token. It returns an error only when no
// HTTP response arrived; every status, good or bad, is an exchange.
func (u *upstream) call(platform, playerID, token []byte) (exchange, error) {
	req := fasthttp.AcquireRequest()
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)

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
	latency := time.Since(start)
	if err != nil {
		return exchange{latency: latency}, classify(err)
	}
	return exchange{
		status:      resp.StatusCode(),
		body:        append([]byte(nil), resp.Body()...),
		contentType: internContentType(resp.Header.ContentType()),
		latency:     latency,
	}, nil
}

// classify turns a fasthttp client error into one of ours. The original is
// wrapped for the log; it names the upstream address, never a header.
func classify(err error) error {
	var ne net.Error
	switch {
	case errors.Is(err, fasthttp.ErrTimeout), errors.Is(err, fasthttp.ErrDialTimeout),
		errors.Is(err, fasthttp.ErrNoFreeConns), errors.As(err, &ne) && ne.Timeout():
		return fmt.Errorf("%w: %w", errTimeout, err)
	case errors.Is(err, fasthttp.ErrBodyTooLarge):
		return fmt.Errorf("%w: %w", errTooLarge, err)
	}
	return fmt.Errorf("%w: %w", errConnection, err)
}

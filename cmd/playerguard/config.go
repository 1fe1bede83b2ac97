package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"playerguard/fleet"
	"playerguard/metrics"
	"playerguard/validator"
	"playerguard/validator/iamport"
	"playerguard/validator/kakaogames"
	"playerguard/validator/kakaologin"
	"playerguard/validator/kakaooidc"
)

// envPrefix starts the environment variable of every flag: -cache-ttl is
// PLAYERGUARD_CACHE_TTL. A flag given on the command line wins.
const envPrefix = "PLAYERGUARD_"

// Secret environment variables. They have no flag: a flag's value shows in
// ps and /proc/PID/cmdline.
const (
	envAppSecret  = envPrefix + "APP_SECRET"
	envAdminKey   = envPrefix + "ADMIN_KEY"
	envAdminToken = envPrefix + "ADMIN_TOKEN"

	envIamportKey       = envPrefix + "IAMPORT_KEY"
	envIamportSecret    = envPrefix + "IAMPORT_SECRET"
	envIamportPersonKey = envPrefix + "IAMPORT_PERSON_KEY_SECRET"

	envRedisPassword = envPrefix + "REDIS_PASSWORD"
	envFleetKey      = envPrefix + "FLEET_KEY"
)

// Config is everything playerguard is started with.
type Config struct {
	Listen, OpsListen string
	AllowRemote       bool

	Upstream       string
	AppID          string
	UpstreamCAFile string

	KakaoLoginAppID   string
	KakaoLoginAPI     string
	KakaoLoginTimeout time.Duration

	KakaoOIDCAudiences    string
	KakaoOIDCIssuer       string
	KakaoOIDCJWKSURL      string
	KakaoOIDCLeeway       time.Duration
	KakaoOIDCRequireNonce bool
	KakaoOIDCMaxAuthAge   time.Duration
	KakaoOIDCJWKSRefresh  time.Duration
	KakaoOIDCJWKSMinGap   time.Duration

	IamportAPI                                           string
	IamportKeyFile, IamportSecretFile, IamportPersonFile string
	IamportKeyEnv, IamportSecretEnv, IamportPersonEnv    string
	AgeGateMinAge                                        int
	AgeRule                                              string
	AgeGateMaxCertAge, AgeGateReuseWindow                time.Duration
	OTPMaxPerPhone                                       int

	AppSecretFile, AdminKeyFile, AdminTokenFile string

	RedisAddr, RedisUsername, RedisPrefix string
	RedisPasswordFile, FleetKeyFile       string
	RedisPasswordEnv, FleetKeyEnv         string
	RedisTLS                              bool
	RedisCAFile                           string
	RedisTimeout                          time.Duration
	// The secrets' environment variables (PLAYERGUARD_APP_SECRET, ...) as
	// given; resolveSecrets weighs them against the files.
	AppSecretEnv, AdminKeyEnv, AdminTokenEnv string

	CacheTTL        time.Duration
	CacheMaxEntries int64
	StaleFor        time.Duration
	NegativeTTL     time.Duration
	OnFailure       string
	AllowStatus     string

	UpstreamTimeout  time.Duration
	MaxUpstreamConns int
	BreakerFailures  uint
	BreakerTimeout   time.Duration

	MaxSessions          int
	SessionMaxAge        time.Duration
	RevalidateEvery      time.Duration
	RevalidateMaxRPS     float64
	EventsBuffer         int
	EventsWebhook        string
	EventsWebhookTimeout time.Duration

	DrainTimeout time.Duration
	LogLevel     string
	Pprof        bool

	CheckConfig bool
	Demo        bool
	Version     bool
}

// newFlagSet defines every flag on a FlagSet bound to c, with the defaults.
func newFlagSet(c *Config) *flag.FlagSet {
	fs := flag.NewFlagSet("playerguard", flag.ContinueOnError)
	fs.StringVar(&c.Listen, "listen", "127.0.0.1:7600", "address of the validation API (`host:port`); must be loopback unless -allow-remote")
	fs.StringVar(&c.OpsListen, "ops-listen", "127.0.0.1:7601", "address of /metrics, /healthz, /readyz and /admin/* (`host:port`)")
	fs.BoolVar(&c.AllowRemote, "allow-remote", false, "allow a non-loopback -listen (the validation API has no authentication of its own) and -events-webhook")
	fs.StringVar(&c.Upstream, "upstream", "", "Kakao Games OpenAPI base `URL`, e.g. https://kr-openapi-zinny3.game.kakao.com:10443; with -app-id, enables the kakao-games provider")
	fs.StringVar(&c.AppID, "app-id", "", "Kakao Games app id, sent as kgAppId; with -upstream, enables the kakao-games provider")
	fs.StringVar(&c.KakaoLoginAppID, "kakao-login-app-id", "", "Kakao Developers app `id` (numeric) whose Kakao Login access tokens are accepted; enables the kakao-login provider")
	fs.StringVar(&c.KakaoLoginAPI, "kakao-login-api", kakaologin.DefaultAPI, "Kakao REST API base `URL` for the kakao-login provider")
	fs.DurationVar(&c.KakaoLoginTimeout, "kakao-login-timeout", 0, "bound on one kakao-login upstream call; 0 means -upstream-timeout")
	fs.StringVar(&c.KakaoOIDCAudiences, "kakao-oidc-audiences", "", "comma-separated Kakao app `keys` (REST API, native app, JavaScript) ID tokens may be issued to (aud); enables the kakao-oidc provider")
	fs.StringVar(&c.KakaoOIDCIssuer, "kakao-oidc-issuer", kakaooidc.DefaultIssuer, "the iss kakao-oidc ID tokens must have, exactly")
	fs.StringVar(&c.KakaoOIDCJWKSURL, "kakao-oidc-jwks-url", kakaooidc.DefaultJWKSURL, "`URL` of Kakao's public key set (JWKS) for kakao-oidc")
	fs.DurationVar(&c.KakaoOIDCLeeway, "kakao-oidc-leeway", kakaooidc.DefaultLeeway, "clock skew allowed on an ID token's exp, iat and auth_time (at most 5m)")
	fs.BoolVar(&c.KakaoOIDCRequireNonce, "kakao-oidc-require-nonce", false, "refuse (400) a kakao-oidc validation that sends no nonce")
	fs.DurationVar(&c.KakaoOIDCMaxAuthAge, "kakao-oidc-max-auth-age", 0, "kick ID tokens whose auth_time is older (auth_too_old); 0 means any age")
	fs.DurationVar(&c.KakaoOIDCJWKSRefresh, "kakao-oidc-jwks-refresh", kakaooidc.DefaultRefresh, "how often the key set is fetched again (sooner when its Cache-Control max-age says so)")
	fs.DurationVar(&c.KakaoOIDCJWKSMinGap, "kakao-oidc-jwks-min-interval", kakaooidc.DefaultMinInterval, "least time between key fetches for tokens naming an unknown key id (per sidecar)")
	fs.StringVar(&c.IamportAPI, "iamport-api", iamport.DefaultAPI, "i'mport (PortOne v1) REST API base `URL` for the iamport age gate")
	fs.StringVar(&c.IamportKeyFile, "iamport-key-file", "", "`file` holding the i'mport REST API key (or set "+envIamportKey+"); with the secret, enables the iamport age gate")
	fs.StringVar(&c.IamportSecretFile, "iamport-secret-file", "", "`file` holding the i'mport REST API secret (or set "+envIamportSecret+")")
	fs.StringVar(&c.IamportPersonFile, "iamport-person-key-secret-file", "", "`file` holding the hex key of the age gate's personKey, an HMAC of the CI (or set "+envIamportPersonKey+"); without one no personKey is given")
	fs.IntVar(&c.AgeGateMinAge, "age-gate-min-age", iamport.DefaultMinAge, "the age gate's minimum age when a request gives none (1-100)")
	fs.StringVar(&c.AgeRule, "age-rule", "full", "how the age gate counts age: full (full age on today's date in Seoul) or year (born in or before this year minus the minimum age, the Youth Protection Act's rule)")
	fs.DurationVar(&c.AgeGateMaxCertAge, "age-gate-max-cert-age", 0, "refuse certifications older than this (certification_expired); 0 means any age")
	fs.DurationVar(&c.AgeGateReuseWindow, "age-gate-reuse-window", iamport.DefaultReuseWindow, "how long an imp_uid stays bound to the player it was first used for (certification_reused for another)")
	fs.StringVar(&c.RedisAddr, "redis-addr", "", "Redis or Valkey `host:port` of the fleet tier (comma-separated for a cluster's seeds): verdicts, flights and kicks shared by every sidecar; none means this sidecar learns alone")
	fs.StringVar(&c.RedisUsername, "redis-username", "", "Redis ACL `user` (password in "+envRedisPassword+" or -redis-password-file)")
	fs.StringVar(&c.RedisPasswordFile, "redis-password-file", "", "`file` holding the Redis password (or set "+envRedisPassword+")")
	fs.BoolVar(&c.RedisTLS, "redis-tls", false, "connect to Redis over TLS (verified against the system CAs or -redis-ca-file)")
	fs.StringVar(&c.RedisCAFile, "redis-ca-file", "", "PEM `file` of CAs trusted for Redis instead of the system pool (implies -redis-tls)")
	fs.DurationVar(&c.RedisTimeout, "redis-timeout", 50*time.Millisecond, "the most one validation waits on Redis, in all; beyond it the sidecar goes on as if alone")
	fs.StringVar(&c.RedisPrefix, "redis-prefix", "pg:", "prefix of every Redis key and channel of the fleet tier (one per game, if games share a Redis)")
	fs.StringVar(&c.FleetKeyFile, "fleet-key-file", "", "`file` holding the fleet key, at least 32 bytes, the same on every sidecar (or set "+envFleetKey+"); required with -redis-addr")
	fs.IntVar(&c.OTPMaxPerPhone, "otp-max-per-phone", iamport.DefaultOTPMaxPerPhone, "most SMS code requests (/v1/iamport/otp/request) per phone number in 10 minutes; more are a 429, never sent to i'mport")
	fs.StringVar(&c.UpstreamCAFile, "upstream-ca-file", "", "PEM `file` of CAs to trust for the upstream instead of the system's (TLS is always verified)")
	fs.StringVar(&c.AppSecretFile, "app-secret-file", "", "`file` holding the app secret (or set "+envAppSecret+")")
	fs.StringVar(&c.AdminKeyFile, "admin-key-file", "", "`file` holding the upstream admin key, sent as KakaoAK (or set "+envAdminKey+")")
	fs.StringVar(&c.AdminTokenFile, "admin-token-file", "", "`file` holding the bearer token for /admin/* (or set "+envAdminToken+"); without one /admin/* answers 401")
	fs.DurationVar(&c.CacheTTL, "cache-ttl", 5*time.Minute, "how long an allow is served from cache; 0 disables the cache")
	fs.Int64Var(&c.CacheMaxEntries, "cache-max-entries", 1_000_000, "most cache entries kept")
	fs.DurationVar(&c.StaleFor, "stale-for", 30*time.Minute, "how long after -cache-ttl an expired allow may be served while the upstream fails (policy stale)")
	fs.DurationVar(&c.NegativeTTL, "negative-ttl", 0, "how long an invalid_token kick is cached (it answers that token on that platform whatever playerId is claimed); 0 disables")
	fs.StringVar(&c.OnFailure, "on-upstream-failure", "stale", "outage `policy`: stale (serve recent allows, else unavailable), open (allow everyone), closed (unavailable)")
	fs.StringVar(&c.AllowStatus, "allow-status", "normal", "comma-separated player.status values in good standing")
	fs.DurationVar(&c.UpstreamTimeout, "upstream-timeout", 2*time.Second, "bound on one upstream call")
	fs.IntVar(&c.MaxUpstreamConns, "max-upstream-conns", 256, "most connections and concurrent calls to the upstream")
	fs.UintVar(&c.BreakerFailures, "breaker-failures", 5, "consecutive upstream failures that open the circuit breaker")
	fs.DurationVar(&c.BreakerTimeout, "breaker-timeout", 10*time.Second, "how long the breaker stays open before one probe call")
	fs.IntVar(&c.MaxSessions, "max-sessions", 100_000, "most live sessions (validations with a sessionId); past it a new session is refused with a 503 and the validation still answers")
	fs.DurationVar(&c.SessionMaxAge, "session-max-age", 24*time.Hour, "a session ends this long after it began, whatever its credential's life")
	fs.DurationVar(&c.RevalidateEvery, "revalidate-every", 10*time.Minute, "how often each live session is validated again with the upstream (cache bypassed), spread evenly; 0 turns revalidation off")
	fs.Float64Var(&c.RevalidateMaxRPS, "revalidate-max-rps", 5, "most revalidations started a second, all providers together, up to 64 under way at once (3,000 sessions every 10m need 5)")
	fs.IntVar(&c.EventsBuffer, "events-buffer", 10_000, "kick events kept for SSE clients that reconnect with Last-Event-ID")
	fs.StringVar(&c.EventsWebhook, "events-webhook", "", "`URL` each kick event is POSTed to as JSON, retried until a 2xx, in order; must be loopback unless -allow-remote")
	fs.DurationVar(&c.EventsWebhookTimeout, "events-webhook-timeout", 2*time.Second, "bound on one -events-webhook attempt")
	fs.DurationVar(&c.DrainTimeout, "drain-timeout", 15*time.Second, "on SIGTERM, how long in-flight validations get to finish")
	fs.StringVar(&c.LogLevel, "log-level", "info", "debug, info, warn or error")
	fs.BoolVar(&c.Pprof, "pprof", false, "serve Go's profiler at /debug/pprof/ on the ops listener (for performance investigations)")
	fs.BoolVar(&c.CheckConfig, "check-config", false, "validate the configuration, print every problem, and exit (0 if none, 2 otherwise)")
	fs.BoolVar(&c.Demo, "demo", false, "start embedded fakes of every upstream (Kakao Games, Kakao Login, Kakao's OIDC keys) with sample players and print curl lines to try")
	fs.BoolVar(&c.Version, "version", false, "print the version and exit")
	return fs
}

// envName is the environment variable of a flag.
func envName(flagName string) string {
	return envPrefix + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// parseConfig reads flags from args and, for flags not given there, from
// environ (KEY=VALUE pairs). Unknown PLAYERGUARD_ variables and stray
// arguments are errors: a typo must not silently fall back to a default.
func parseConfig(args []string, environ []string, usage io.Writer) (*Config, error) {
	c := &Config{}
	fs := newFlagSet(c)
	fs.SetOutput(io.Discard)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			printUsage(fs, usage)
			return nil, flag.ErrHelp // the usage was printed
		}
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q (settings are -flags or %s* variables)", fs.Arg(0), envPrefix)
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })

	env := map[string]string{}
	for _, kv := range environ {
		k, v, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, envPrefix) {
			env[k] = v
		}
	}
	known := map[string]bool{envAppSecret: true, envAdminKey: true, envAdminToken: true, envIamportKey: true, envIamportSecret: true, envIamportPersonKey: true, envRedisPassword: true, envFleetKey: true}
	var errs []error
	fs.VisitAll(func(f *flag.Flag) {
		name := envName(f.Name)
		known[name] = true
		v, ok := env[name]
		if !ok || given[f.Name] {
			return
		}
		if err := fs.Set(f.Name, v); err != nil {
			errs = append(errs, fmt.Errorf("%s: invalid value %q: %v", name, v, err))
		}
	})
	var unknown []string
	for k := range env {
		if !known[k] && !serviceLink(k) {
			unknown = append(unknown, k)
		}
	}
	slices.Sort(unknown)
	for _, k := range unknown {
		errs = append(errs, fmt.Errorf("unknown environment variable %s (see playerguard -h)", k))
	}
	c.AppSecretEnv, c.AdminKeyEnv, c.AdminTokenEnv = env[envAppSecret], env[envAdminKey], env[envAdminToken]
	c.IamportKeyEnv, c.IamportSecretEnv, c.IamportPersonEnv = env[envIamportKey], env[envIamportSecret], env[envIamportPersonKey]
	c.RedisPasswordEnv, c.FleetKeyEnv = env[envRedisPassword], env[envFleetKey]
	return c, errors.Join(errs...)
}

// serviceLink reports whether name is one of the variables Kubernetes puts
// into every pod of a namespace that has a Service named "playerguard"
// (PLAYERGUARD_SERVICE_HOST, PLAYERGUARD_PORT_7601_TCP_ADDR, ...). They are
// not settings; refusing them would stop the sidecar from starting for a
// reason nobody in the pod chose. No flag is named service-* or port*.
func serviceLink(name string) bool {
	rest := strings.TrimPrefix(name, envPrefix)
	return strings.HasPrefix(rest, "SERVICE_") || rest == "PORT" || strings.HasPrefix(rest, "PORT_")
}

func printUsage(fs *flag.FlagSet, w io.Writer) {
	fmt.Fprintf(w, "Usage: playerguard [flags]\n\n"+
		"playerguard validates game players' access tokens against the Kakao Games\n"+
		"OpenAPI for the game server beside it. Every flag may also be set in the\n"+
		"environment as PLAYERGUARD_<FLAG> (upper case, - becomes _); a flag on the\n"+
		"command line wins. Secrets come only from the environment or files:\n"+
		"%s, %s, %s, %s, %s, %s, %s, %s.\n\nFlags:\n", envAppSecret, envAdminKey, envAdminToken, envIamportKey, envIamportSecret, envIamportPersonKey, envRedisPassword, envFleetKey)
	fs.SetOutput(w)
	fs.PrintDefaults()
	fs.SetOutput(io.Discard)
}

// Validate reports every problem with c, one error per problem, each naming
// its setting. It changes nothing: it reads the secret files and the CA
// file only to check them. It makes every check start-up makes (the
// upstream's through validator's own, CheckUpstreamURL and
// CheckUpstreamCAFile), so that a configuration it passes also starts.
func (c *Config) Validate() error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }

	if err := checkListen(c.Listen); err != nil {
		bad("-listen: %v", err)
	} else if !c.AllowRemote && !isLoopback(c.Listen) {
		bad("-listen: %s is not a loopback address; the validation API has no authentication, so pass -allow-remote to expose it", c.Listen)
	}
	if err := checkListen(c.OpsListen); err != nil {
		bad("-ops-listen: %v", err)
	}
	if c.Listen == c.OpsListen || sameListener(c.Listen, c.OpsListen) {
		bad("-ops-listen: must differ from -listen (%s)", c.Listen)
	}

	if c.Demo && (c.Upstream != "" || c.AppSecretEnv != "" || c.AdminKeyEnv != "" || c.AppSecretFile != "" || c.AdminKeyFile != "" ||
		c.KakaoLoginAPI != kakaologin.DefaultAPI || c.KakaoOIDCJWKSURL != kakaooidc.DefaultJWKSURL ||
		c.iamport() || c.IamportAPI != iamport.DefaultAPI) {
		// A stray PLAYERGUARD_DEMO=true in a real deployment must not
		// quietly swap the real upstream for the fake one and its players.
		bad("-demo: cannot be combined with -upstream, -kakao-login-api, -kakao-oidc-jwks-url, -iamport-api or upstream secrets (the demo brings its own fake upstreams)")
	}
	if !c.Demo {
		if !c.kakaoGames() && !c.kakaoLogin() && !c.kakaoOIDC() && !c.iamport() {
			bad("no provider configured: enable kakao-games with -upstream and -app-id (and its secrets), kakao-login with -kakao-login-app-id, kakao-oidc with -kakao-oidc-audiences, or the iamport age gate with " + envIamportKey + " and " + envIamportSecret)
		}
		if c.kakaoGames() {
			if c.Upstream == "" {
				bad("-upstream: required with -app-id (the Kakao Games OpenAPI base URL)")
			} else if err := validator.CheckUpstreamURL(c.Upstream); err != nil {
				bad("-upstream: %v", err)
			}
			if c.AppID == "" {
				bad("-app-id: required with -upstream (the kgAppId)")
			} else if err := validator.CheckCredential(c.AppID); err != nil {
				bad("-app-id: %v", err)
			}
		}
		if c.kakaoLogin() {
			if err := kakaologin.CheckAppID(c.KakaoLoginAppID); err != nil {
				bad("-kakao-login-app-id: %v", err)
			}
			if err := validator.CheckUpstreamURL(c.KakaoLoginAPI); err != nil {
				bad("-kakao-login-api: %v", err)
			}
		}
	} else if c.KakaoLoginAppID != "" {
		if err := kakaologin.CheckAppID(c.KakaoLoginAppID); err != nil {
			bad("-kakao-login-app-id: %v", err)
		}
	}
	if c.KakaoLoginTimeout < 0 {
		bad("-kakao-login-timeout: must not be negative")
	}
	errs = append(errs, c.checkKakaoOIDC()...)
	if err := iamport.CheckMinAge(c.AgeGateMinAge); err != nil {
		bad("-age-gate-min-age: %v", err)
	}
	if _, err := iamport.ParseAgeRule(c.AgeRule); err != nil {
		bad("-age-rule: %v", err)
	}
	if c.AgeGateMaxCertAge < 0 {
		bad("-age-gate-max-cert-age: must not be negative")
	}
	if c.AgeGateReuseWindow <= 0 {
		bad("-age-gate-reuse-window: must be positive")
	}
	if c.OTPMaxPerPhone <= 0 {
		bad("-otp-max-per-phone: must be positive")
	}
	if err := validator.CheckUpstreamURL(c.IamportAPI); err != nil {
		bad("-iamport-api: %v", err)
	}
	_, secretErrs := c.resolveSecrets()
	errs = append(errs, secretErrs...)
	c.validateFleet(bad)
	if err := validator.CheckUpstreamCAFile(c.UpstreamCAFile); err != nil {
		bad("-upstream-ca-file: %v", err)
	}

	if c.CacheTTL < 0 {
		bad("-cache-ttl: must not be negative")
	} else if c.CacheTTL > maxCacheDuration {
		bad("-cache-ttl: must be at most %v", maxCacheDuration)
	}
	if c.CacheMaxEntries <= 0 {
		bad("-cache-max-entries: must be positive")
	}
	if c.StaleFor < 0 {
		bad("-stale-for: must not be negative")
	} else if c.StaleFor > maxCacheDuration {
		bad("-stale-for: must be at most %v", maxCacheDuration)
	}
	if c.NegativeTTL < 0 {
		bad("-negative-ttl: must not be negative")
	} else if c.NegativeTTL > maxCacheDuration {
		bad("-negative-ttl: must be at most %v", maxCacheDuration)
	}
	if _, err := validator.ParsePolicy(c.OnFailure); err != nil {
		bad("-on-upstream-failure: %v", err)
	}
	if len(c.allowStatuses()) == 0 {
		bad("-allow-status: must list at least one status")
	}
	if c.UpstreamTimeout <= 0 {
		bad("-upstream-timeout: must be positive")
	}
	if c.MaxUpstreamConns <= 0 {
		bad("-max-upstream-conns: must be positive")
	}
	if c.BreakerFailures == 0 || c.BreakerFailures > 1<<31 {
		bad("-breaker-failures: must be between 1 and 2^31")
	}
	if c.BreakerTimeout <= 0 {
		bad("-breaker-timeout: must be positive")
	}
	if c.MaxSessions <= 0 {
		bad("-max-sessions: must be positive")
	}
	if c.SessionMaxAge <= 0 || c.SessionMaxAge > maxCacheDuration {
		bad("-session-max-age: must be positive and at most %s", maxCacheDuration)
	}
	if c.RevalidateEvery < 0 {
		bad("-revalidate-every: must not be negative (0 turns revalidation off)")
	}
	if !(c.RevalidateMaxRPS > 0 && c.RevalidateMaxRPS <= 10_000) {
		bad("-revalidate-max-rps: must be above 0 and at most 10000")
	}
	if c.EventsBuffer <= 0 || c.EventsBuffer > 10_000_000 {
		bad("-events-buffer: must be between 1 and 10000000")
	}
	if c.EventsWebhook != "" {
		if err := checkWebhook(c.EventsWebhook); err != nil {
			bad("-events-webhook: %v", err)
		} else if u, _ := url.Parse(c.EventsWebhook); !c.AllowRemote && !isLoopback(net.JoinHostPort(u.Hostname(), "0")) {
			bad("-events-webhook: %s is not a loopback address; kick events name players, so pass -allow-remote to send them off this machine", u.Hostname())
		}
	}
	if c.EventsWebhookTimeout <= 0 {
		bad("-events-webhook-timeout: must be positive")
	}
	if c.DrainTimeout <= 0 {
		bad("-drain-timeout: must be positive")
	}
	if _, err := c.logLevel(); err != nil {
		bad("-log-level: %v", err)
	}
	return errors.Join(errs...)
}

// validateFleet checks the fleet tier's settings (its secrets are
// resolveSecrets').
func (c *Config) validateFleet(bad func(string, ...any)) {
	if c.RedisAddr == "" {
		if c.RedisUsername != "" || c.RedisPasswordFile != "" || c.RedisPasswordEnv != "" || c.RedisTLS || c.RedisCAFile != "" ||
			c.FleetKeyFile != "" || c.FleetKeyEnv != "" {
			bad("-redis-username, -redis-password-file, -redis-tls, -redis-ca-file, -fleet-key-file, %s and %s need -redis-addr", envRedisPassword, envFleetKey)
		}
		return
	}
	for _, a := range c.redisAddrs() {
		if err := fleet.CheckAddr(a); err != nil {
			bad("-redis-addr: %v", err)
		}
	}
	if c.RedisTimeout <= 0 || c.RedisTimeout > 5*time.Second {
		bad("-redis-timeout: must be positive and at most 5s")
	}
	if c.RedisPrefix == "" || strings.ContainsAny(c.RedisPrefix, " \t\r\n") || len(c.RedisPrefix) > 64 {
		bad("-redis-prefix: must be 1 to 64 bytes without white space")
	}
	if _, err := c.redisTLS(); err != nil {
		bad("-redis-ca-file: %v", err)
	}
}

// redisAddrs is -redis-addr's list.
func (c *Config) redisAddrs() []string {
	var out []string
	for _, a := range strings.Split(c.RedisAddr, ",") {
		out = append(out, strings.TrimSpace(a))
	}
	return out
}

// redisTLS is the TLS configuration for Redis: nil without -redis-tls or
// -redis-ca-file.
func (c *Config) redisTLS() (*tls.Config, error) {
	if !c.RedisTLS && c.RedisCAFile == "" {
		return nil, nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if c.RedisCAFile != "" {
		pem, err := os.ReadFile(c.RedisCAFile)
		if err != nil {
			return nil, err
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%s holds no PEM certificate", c.RedisCAFile)
		}
		cfg.RootCAs = pool
	}
	return cfg, nil
}

// secrets are the secret values playerguard runs with.
type secrets struct {
	appSecret, adminKey, adminToken string
	iamportKey, iamportSecret       string
	personKey                       []byte
	redisPassword, fleetKey         string
}

// resolveSecrets reads each secret from its environment variable or its
// file, and returns one error per secret it cannot resolve, each naming
// its setting: Validate reports them, run uses the values.
func (c *Config) resolveSecrets() (secrets, []error) {
	var s secrets
	var errs []error
	var err error
	// Kakao Games' secrets are required when it is enabled, and only then.
	kg := !c.Demo && c.kakaoGames()
	if s.appSecret, err = secret(c.AppSecretEnv, envAppSecret, c.AppSecretFile, "-app-secret-file", kg); err != nil {
		errs = append(errs, err)
	}
	if s.adminKey, err = secret(c.AdminKeyEnv, envAdminKey, c.AdminKeyFile, "-admin-key-file", kg); err != nil {
		errs = append(errs, err)
	}
	if s.adminToken, err = secret(c.AdminTokenEnv, envAdminToken, c.AdminTokenFile, "-admin-token-file", false); err != nil {
		errs = append(errs, err)
	}
	// i'mport's two: either enables the age gate, which needs both.
	fl := c.RedisAddr != ""
	if s.redisPassword, err = secret(c.RedisPasswordEnv, envRedisPassword, c.RedisPasswordFile, "-redis-password-file", false); err != nil {
		errs = append(errs, err)
	}
	if s.fleetKey, err = secret(c.FleetKeyEnv, envFleetKey, c.FleetKeyFile, "-fleet-key-file", fl); err != nil {
		errs = append(errs, err)
	} else if fl && len(s.fleetKey) < 32 {
		errs = append(errs, fmt.Errorf("-fleet-key-file: the fleet key must be at least 32 bytes (%d given); make one with: openssl rand -base64 48", len(s.fleetKey)))
	}
	ia := c.iamport()
	if s.iamportKey, err = secret(c.IamportKeyEnv, envIamportKey, c.IamportKeyFile, "-iamport-key-file", ia); err != nil {
		errs = append(errs, err)
	}
	if s.iamportSecret, err = secret(c.IamportSecretEnv, envIamportSecret, c.IamportSecretFile, "-iamport-secret-file", ia); err != nil {
		errs = append(errs, err)
	}
	var person string
	if person, err = secret(c.IamportPersonEnv, envIamportPersonKey, c.IamportPersonFile, "-iamport-person-key-secret-file", false); err != nil {
		errs = append(errs, err)
	} else if person != "" {
		if s.personKey, err = iamport.ParsePersonKeySecret(person); err != nil {
			errs = append(errs, fmt.Errorf("-iamport-person-key-secret-file: %v", err))
		}
	}
	return s, errs
}

// secret resolves one secret from its environment variable or its file;
// giving both is an error, and so is giving neither when required. Either
// way white space around it is dropped (a file written by an editor, a
// Kubernetes Secret made from one, ends in a newline), and what is left
// must be visible ASCII: it travels in a header, and the echo checks and
// log scrubbing look for it exactly as sent.
func secret(fromEnv, envName, file, flagName string, required bool) (string, error) {
	var s, from string
	switch {
	case fromEnv != "" && file != "":
		return "", fmt.Errorf("%s: set either %s or %s, not both", flagName, envName, flagName)
	case file != "":
		b, err := os.ReadFile(file)
		if err != nil {
			return "", fmt.Errorf("%s: %v", flagName, err)
		}
		s, from = strings.TrimSpace(string(b)), file
		if s == "" {
			return "", fmt.Errorf("%s: %s is empty", flagName, file)
		}
	case fromEnv == "" && required:
		return "", fmt.Errorf("%s: required: set %s or %s", flagName, envName, flagName)
	case fromEnv == "":
		return "", nil
	default:
		s, from = strings.TrimSpace(fromEnv), envName
		if s == "" {
			return "", fmt.Errorf("%s: %s is only white space", flagName, envName)
		}
	}
	if err := validator.CheckCredential(s); err != nil {
		return "", fmt.Errorf("%s: %s: %v", flagName, from, err)
	}
	return s, nil
}

// kakaoGames says the kakao-games provider is enabled (-upstream or
// -app-id given: Validate wants both).
func (c *Config) kakaoGames() bool { return c.Upstream != "" || c.AppID != "" }

// iamport says the iamport age gate is enabled: either of its secrets
// given (resolveSecrets wants both).
func (c *Config) iamport() bool {
	return c.IamportKeyEnv != "" || c.IamportSecretEnv != "" || c.IamportKeyFile != "" || c.IamportSecretFile != ""
}

// kakaoOIDC says the kakao-oidc provider is enabled.
func (c *Config) kakaoOIDC() bool {
	return strings.TrimSpace(strings.ReplaceAll(c.KakaoOIDCAudiences, ",", "")) != ""
}

// checkKakaoOIDC checks the -kakao-oidc-* flags.
func (c *Config) checkKakaoOIDC() []error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if !c.kakaoOIDC() && !c.Demo {
		var set []string
		for _, f := range []struct {
			name  string
			isSet bool
		}{
			{"-kakao-oidc-issuer", c.KakaoOIDCIssuer != kakaooidc.DefaultIssuer},
			{"-kakao-oidc-jwks-url", c.KakaoOIDCJWKSURL != kakaooidc.DefaultJWKSURL},
			{"-kakao-oidc-leeway", c.KakaoOIDCLeeway != kakaooidc.DefaultLeeway},
			{"-kakao-oidc-require-nonce", c.KakaoOIDCRequireNonce},
			{"-kakao-oidc-max-auth-age", c.KakaoOIDCMaxAuthAge != 0},
			{"-kakao-oidc-jwks-refresh", c.KakaoOIDCJWKSRefresh != kakaooidc.DefaultRefresh},
			{"-kakao-oidc-jwks-min-interval", c.KakaoOIDCJWKSMinGap != kakaooidc.DefaultMinInterval},
		} {
			if f.isSet {
				set = append(set, f.name)
			}
		}
		if len(set) > 0 {
			bad("-kakao-oidc-audiences: required with %s (the app keys ID tokens may be issued to)", strings.Join(set, ", "))
		}
	}
	if _, err := kakaooidc.ParseAudiences(c.KakaoOIDCAudiences); err != nil {
		bad("-kakao-oidc-audiences: %v", err)
	}
	if c.KakaoOIDCIssuer == "" {
		bad("-kakao-oidc-issuer: must not be empty")
	}
	if err := kakaooidc.CheckJWKSURL(c.KakaoOIDCJWKSURL); err != nil {
		bad("-kakao-oidc-jwks-url: %v", err)
	}
	switch {
	case c.KakaoOIDCLeeway < 0:
		bad("-kakao-oidc-leeway: must not be negative")
	case c.KakaoOIDCLeeway > kakaooidc.MaxLeeway:
		bad("-kakao-oidc-leeway: must be at most %v", kakaooidc.MaxLeeway)
	}
	if c.KakaoOIDCMaxAuthAge < 0 {
		bad("-kakao-oidc-max-auth-age: must not be negative")
	}
	switch {
	case c.KakaoOIDCJWKSMinGap <= 0:
		bad("-kakao-oidc-jwks-min-interval: must be positive")
	case c.KakaoOIDCJWKSRefresh < c.KakaoOIDCJWKSMinGap:
		bad("-kakao-oidc-jwks-refresh: must be at least -kakao-oidc-jwks-min-interval (%v)", c.KakaoOIDCJWKSMinGap)
	}
	return errs
}

// kakaoLogin says the kakao-login provider is enabled.
func (c *Config) kakaoLogin() bool { return c.KakaoLoginAppID != "" }

// providers builds the enabled providers, in a fixed order.
func (c *Config) providers(sec secrets, log *slog.Logger, m *metrics.Metrics, shared validator.SharedState) ([]validator.Provider, error) {
	var ps []validator.Provider
	closeAll := func() {
		for _, p := range ps {
			p.Close()
		}
	}
	if c.kakaoGames() {
		kg, err := kakaogames.New(kakaogames.Config{
			Upstream:         c.Upstream,
			AppID:            c.AppID,
			AppSecret:        sec.appSecret,
			AdminKey:         sec.adminKey,
			UpstreamCAFile:   c.UpstreamCAFile,
			UpstreamTimeout:  c.UpstreamTimeout,
			MaxUpstreamConns: c.MaxUpstreamConns,
			AllowStatuses:    c.allowStatuses(),
			Logger:           log,
		})
		if err != nil {
			return nil, fmt.Errorf("%s: %w", kakaogames.Name, err)
		}
		ps = append(ps, kg)
	}
	if c.kakaoLogin() {
		timeout := c.KakaoLoginTimeout
		if timeout == 0 {
			timeout = c.UpstreamTimeout
		}
		kl, err := kakaologin.New(kakaologin.Config{
			AppID: c.KakaoLoginAppID, API: c.KakaoLoginAPI, Timeout: timeout,
			MaxConns: c.MaxUpstreamConns, Logger: log,
		})
		if err != nil {
			closeAll()
			return nil, fmt.Errorf("%s: %w", kakaologin.Name, err)
		}
		ps = append(ps, kl)
	}
	if c.kakaoOIDC() {
		auds, _ := kakaooidc.ParseAudiences(c.KakaoOIDCAudiences) // checked
		leeway := c.KakaoOIDCLeeway
		if leeway == 0 {
			leeway = -1 // none (the package's zero is its default)
		}
		ko, err := kakaooidc.New(kakaooidc.Config{
			Audiences: auds, Issuer: c.KakaoOIDCIssuer, JWKSURL: c.KakaoOIDCJWKSURL,
			Leeway: leeway, RequireNonce: c.KakaoOIDCRequireNonce, MaxAuthAge: c.KakaoOIDCMaxAuthAge,
			Refresh: c.KakaoOIDCJWKSRefresh, MinInterval: c.KakaoOIDCJWKSMinGap,
			Timeout: c.UpstreamTimeout, Logger: log, Metrics: m,
		})
		if err != nil {
			closeAll()
			return nil, fmt.Errorf("%s: %w", kakaooidc.Name, err)
		}
		ps = append(ps, ko)
	}
	if c.iamport() {
		rule, _ := iamport.ParseAgeRule(c.AgeRule) // checked
		ia, err := iamport.New(iamport.Config{
			Key: sec.iamportKey, Secret: sec.iamportSecret, PersonKeySecret: sec.personKey,
			API: c.IamportAPI, Rule: rule, MinAge: c.AgeGateMinAge, MaxCertAge: c.AgeGateMaxCertAge,
			ReuseWindow: c.AgeGateReuseWindow, OTPMaxPerPhone: c.OTPMaxPerPhone, Timeout: c.UpstreamTimeout, MaxConns: c.MaxUpstreamConns, Logger: log, Metrics: m,
			Shared: shared,
		})
		if err != nil {
			closeAll()
			return nil, fmt.Errorf("%s: %w", iamport.Name, err)
		}
		ps = append(ps, ia)
	}
	return ps, nil
}

// unconfigured lists the endpoints of the providers not enabled, so that
// calls to them answer 404 naming the provider.
func (c *Config) unconfigured() []validator.Endpoint {
	var es []validator.Endpoint
	if !c.kakaoGames() {
		es = append(es, validator.Endpoint{Provider: kakaogames.Name, Path: kakaogames.Path},
			validator.Endpoint{Provider: kakaogames.Name, Path: kakaogames.ValidationPath})
	}
	if !c.kakaoLogin() {
		es = append(es, validator.Endpoint{Provider: kakaologin.Name, Path: kakaologin.Path})
	}
	if !c.kakaoOIDC() {
		es = append(es, validator.Endpoint{Provider: kakaooidc.Name, Path: kakaooidc.Path})
	}
	if !c.iamport() {
		es = append(es, validator.Endpoint{Provider: iamport.Name, Path: iamport.Path},
			validator.Endpoint{Provider: iamport.Name, Path: iamport.OTPRequestPath},
			validator.Endpoint{Provider: iamport.Name, Path: iamport.OTPConfirmPath})
	}
	return es
}

func (c *Config) allowStatuses() []string {
	var out []string
	for _, s := range strings.Split(c.AllowStatus, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

func (c *Config) logLevel() (slog.Level, error) {
	var l slog.Level
	err := l.UnmarshalText([]byte(c.LogLevel))
	return l, err
}

func checkListen(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	if port == "" {
		return fmt.Errorf("%q has no port", addr)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("%q: port must be a number from 0 to 65535", addr)
	}
	if host != "" && host != "localhost" && net.ParseIP(host) == nil {
		return fmt.Errorf("%q: host must be an IP address or localhost", addr)
	}
	return nil
}

// sameListener reports whether two listen addresses would claim the same
// port on a shared address: the same port (not 0) on equal hosts, with
// localhost as 127.0.0.1 and an empty or unspecified host overlapping
// every other.
func sameListener(a, b string) bool {
	ha, pa, errA := net.SplitHostPort(a)
	hb, pb, errB := net.SplitHostPort(b)
	if errA != nil || errB != nil || pa != pb || pa == "0" {
		return false
	}
	norm := func(h string) net.IP {
		if h == "localhost" {
			h = "127.0.0.1"
		}
		return net.ParseIP(h)
	}
	ia, ib := norm(ha), norm(hb)
	return ha == "" || hb == "" || ia.IsUnspecified() || ib.IsUnspecified() || ia.Equal(ib)
}

// maxCacheDuration bounds -cache-ttl, -stale-for and -negative-ttl: their
// sums must not overflow the cache's nanosecond deadlines.
const maxCacheDuration = 10 * 365 * 24 * time.Hour

// checkWebhook says what is wrong with a webhook URL: http or https, a
// host, no user info or fragment.
func checkWebhook(raw string) error {
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		return errors.New("not a URL")
	case u.Scheme != "http" && u.Scheme != "https":
		return errors.New("must be an http:// or https:// URL")
	case u.Hostname() == "":
		return errors.New("has no host")
	case u.User != nil:
		return errors.New("must not carry credentials (user:password@)")
	case u.Fragment != "":
		return errors.New("must not have a #fragment")
	}
	return nil
}

func isLoopback(addr string) bool {
	host, _, _ := net.SplitHostPort(addr)
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

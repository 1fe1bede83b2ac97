// Command playerguard is the validation sidecar: it runs beside a game
// server and answers, on each player connect, whether the player may come in,
// by validating the player's access token against the Kakao Games OpenAPI.
//
// main is wiring only: flags and environment to a Config, the Config to a
// validator, the validator to two listeners, and a drain on SIGTERM.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"playerguard/fleet"
	"playerguard/metrics"
	"playerguard/validator"
	"playerguard/validator/iamport"
	"playerguard/validator/iamport/iamporttest"
	"playerguard/validator/kakaogames"
	"playerguard/validator/kakaogames/kakaogamestest"
	"playerguard/validator/kakaologin"
	"playerguard/validator/kakaologin/kakaologintest"
	"playerguard/validator/kakaooidc"
	"playerguard/validator/kakaooidc/kakaooidctest"
)

// version is stamped at build time with -ldflags "-X main.version=...".
var version = ""

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Environ(), os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func buildVersion() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
}

// run is playerguard until ctx is cancelled (by SIGINT/SIGTERM); it returns
// the exit code: 0 after a clean drain, 1 on a runtime failure, 2 on bad
// configuration.
func run(ctx context.Context, args, environ []string, stdout, stderr io.Writer) int {
	cfg, err := parseConfig(args, environ, stdout)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		printProblems(stderr, err)
		return 2
	}
	if cfg.Version {
		fmt.Fprintln(stdout, "playerguard", buildVersion())
		return 0
	}
	if err := cfg.Validate(); err != nil {
		printProblems(stderr, err)
		return 2
	}
	if cfg.CheckConfig {
		fmt.Fprintln(stdout, "playerguard: configuration OK")
		return 0
	}
	sec, errs := cfg.resolveSecrets()
	if len(errs) > 0 { // a secret file changed since Validate read it
		printProblems(stderr, errors.Join(errs...))
		return 2
	}
	level, _ := cfg.logLevel()
	log := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: level}))

	var fakes *demoFakes
	if cfg.Demo {
		var err error
		if fakes, err = startDemo(cfg, &sec); err != nil {
			log.Error("cannot start the demo upstreams", "error", err.Error())
			return 1
		}
		defer fakes.Close()
	}
	return serve(ctx, cfg, sec, log, stdout, stderr, fakes)
}

// printProblems prints each configuration problem on its own line.
func printProblems(w io.Writer, err error) {
	var joined interface{ Unwrap() []error }
	if errors.As(err, &joined) {
		for _, e := range joined.Unwrap() {
			fmt.Fprintf(w, "playerguard: %v\n", e)
		}
		return
	}
	fmt.Fprintf(w, "playerguard: %v\n", err)
}

// serve runs playerguard; fakes are the demo's (nil without -demo).
func serve(ctx context.Context, cfg *Config, sec secrets, log *slog.Logger, stdout, stderr io.Writer, fakes *demoFakes) int {
	reg := prometheus.NewRegistry()
	m := metrics.New(reg, buildVersion())
	policy, _ := validator.ParsePolicy(cfg.OnFailure)
	// Interfaces set only with a tier: a nil *fleet.Tier in one would not
	// be nil.
	var (
		tier   *fleet.Tier
		shared validator.Fleet
		state  validator.SharedState
	)
	if cfg.RedisAddr != "" {
		tlsCfg, _ := cfg.redisTLS() // checked
		var err error
		tier, err = fleet.New(fleet.Config{
			Addrs: cfg.redisAddrs(), Username: cfg.RedisUsername, Password: sec.redisPassword, TLS: tlsCfg,
			Timeout: cfg.RedisTimeout, Prefix: cfg.RedisPrefix, Key: []byte(sec.fleetKey),
			FlightTTL: cfg.UpstreamTimeout, MaxTTL: cfg.CacheTTL, Logger: log, Registerer: reg,
		})
		if err != nil {
			fmt.Fprintf(stderr, "playerguard: -redis-addr: %v\n", err)
			return 2
		}
		defer tier.Close()
		shared, state = tier, tier
	}
	providers, err := cfg.providers(sec, log, m, state)
	if err != nil {
		log.Error("cannot start a provider", "error", err.Error())
		return 2
	}
	v, err := validator.New(validator.Config{
		CacheTTL:        cfg.CacheTTL,
		CacheMaxEntries: cfg.CacheMaxEntries,
		StaleFor:        cfg.StaleFor,
		NegativeTTL:     cfg.NegativeTTL,
		Policy:          policy,
		BreakerFailures: uint32(cfg.BreakerFailures),
		BreakerTimeout:  cfg.BreakerTimeout,
		Unconfigured:    cfg.unconfigured(),
		Sessions: validator.SessionsConfig{
			Max: cfg.MaxSessions, MaxAge: cfg.SessionMaxAge,
			RevalidateEvery: cfg.RevalidateEvery, RevalidateMaxRPS: cfg.RevalidateMaxRPS,
			EventsBuffer: cfg.EventsBuffer, WebhookURL: cfg.EventsWebhook, WebhookTimeout: cfg.EventsWebhookTimeout,
		},
		Fleet:   shared,
		Logger:  log,
		Metrics: m,
	}, providers...)
	if err != nil {
		for _, p := range providers {
			p.Close()
		}
		log.Error("cannot start the validator", "error", err.Error())
		return 2
	}
	defer v.Close()
	if tier != nil {
		tier.Start(v)
	}

	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		log.Error("cannot listen", "setting", "-listen", "error", err.Error())
		return 1
	}
	apiLn := newDrainListener(ln)
	// A validation may wait -upstream-timeout for a call slot, then as long
	// for the call: a drained connection's answer gets both, and a second.
	apiLn.writeGrace = 2*cfg.UpstreamTimeout + time.Second
	opsLn, err := net.Listen("tcp", cfg.OpsListen)
	if err != nil {
		apiLn.Close()
		log.Error("cannot listen", "setting", "-ops-listen", "error", err.Error())
		return 1
	}
	api := v.NewServer()
	opsHandler := v.OpsHandler(promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}), sec.adminToken)
	if cfg.Pprof {
		mux := http.NewServeMux()
		mux.Handle("/", opsHandler)
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
		opsHandler = mux
	}
	ops := &http.Server{
		Handler:           opsHandler,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       60 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 2)
	go func() { errc <- api.Serve(apiLn) }()
	go func() { errc <- ops.Serve(opsLn) }()

	if cfg.AllowRemote && !isLoopback(cfg.Listen) {
		log.Warn("validation API exposed beyond loopback (-allow-remote): anyone who can reach it can use it", "listen", apiLn.Addr().String())
	}
	log.Info("playerguard started", "version", buildVersion(), "listen", apiLn.Addr().String(), "ops_listen", opsLn.Addr().String(),
		"providers", strings.Join(v.Providers(), ","), "upstream", cfg.Upstream, "app_id", cfg.AppID, "kakao_login_app_id", cfg.KakaoLoginAppID, "policy", cfg.OnFailure, "cache_ttl", cfg.CacheTTL.String(), "fleet", cfg.RedisAddr != "", "demo", cfg.Demo)
	if fakes != nil {
		printDemo(stdout, cfg, fakes, apiLn.Addr().String(), opsLn.Addr().String())
	}

	code := 0
	select {
	case <-ctx.Done():
	case err := <-errc:
		log.Error("listener failed", "error", err.Error())
		code = 1
	}

	// Drain: unready first, so load balancers stop sending; then stop
	// accepting and wait for in-flight validations. The signal context is
	// already cancelled, so the drain gets a fresh one.
	v.SetDraining()
	log.Info("draining", "timeout", cfg.DrainTimeout.String())
	dctx, cancel := context.WithTimeout(context.Background(), cfg.DrainTimeout)
	defer cancel()
	drained := make(chan struct{})
	go apiLn.drainWhile(drained, 100*time.Millisecond)
	err = api.ShutdownWithContext(dctx)
	close(drained)
	if err != nil {
		log.Error("drain incomplete", "error", err.Error())
		code = 1
	}
	apiLn.waitLingering(dctx)
	if err := ops.Shutdown(dctx); err != nil {
		log.Warn("ops listener did not close cleanly", "error", err.Error())
	}
	log.Info("stopped")
	return code
}

// demoFakes are the demo's fake upstreams.
type demoFakes struct {
	kg *kakaogamestest.Server
	kl *kakaologintest.Server
	ko *kakaooidctest.Server
	ia *iamporttest.Server
	// iaCerts are the demo's verifications, loaded at start.
	iaCerts []iamporttest.DemoCert
}

func (f *demoFakes) Close() {
	f.kg.Close()
	f.kl.Close()
	f.ko.Close()
	f.ia.Close()
}

// demoKakaoLoginAppID is the demo's Kakao Login app id when none is given.
const demoKakaoLoginAppID = "100001"

// startDemo starts the embedded fake upstreams and points cfg and sec at
// them.
func startDemo(cfg *Config, sec *secrets) (*demoFakes, error) {
	if cfg.AppID == "" {
		cfg.AppID = "909428"
	}
	if cfg.KakaoLoginAppID == "" {
		cfg.KakaoLoginAppID = demoKakaoLoginAppID
	}
	kg, err := kakaogamestest.Start(kakaogamestest.Config{AppID: cfg.AppID, AppSecret: "demo-app-secret", AdminKey: "demo-admin-key"})
	if err != nil {
		return nil, err
	}
	kl, err := kakaologintest.Start()
	if err != nil {
		kg.Close()
		return nil, err
	}
	ko, err := kakaooidctest.Start()
	if err != nil {
		kg.Close()
		kl.Close()
		return nil, err
	}
	ia, err := iamporttest.Start(iamporttest.DemoKey, iamporttest.DemoSecret)
	if err != nil {
		kg.Close()
		kl.Close()
		ko.Close()
		return nil, err
	}
	kg.LoadDemo(cfg.AppID)
	kl.LoadDemo(cfg.KakaoLoginAppID)
	if !cfg.kakaoOIDC() {
		cfg.KakaoOIDCAudiences = kakaooidctest.DemoAudience
	}
	cfg.Upstream = kg.URL()
	cfg.KakaoLoginAPI = kl.URL()
	cfg.KakaoOIDCJWKSURL = ko.URL()
	cfg.IamportAPI = ia.URL()
	cfg.IamportKeyEnv, cfg.IamportSecretEnv = iamporttest.DemoKey, iamporttest.DemoSecret
	sec.iamportKey, sec.iamportSecret = iamporttest.DemoKey, iamporttest.DemoSecret
	sec.personKey = []byte("playerguard demo person key 0001")
	sec.appSecret, sec.adminKey = "demo-app-secret", "demo-admin-key"
	return &demoFakes{kg: kg, kl: kl, ko: ko, ia: ia, iaCerts: ia.LoadDemo(time.Now())}, nil
}

func printDemo(w io.Writer, cfg *Config, fakes *demoFakes, listen, opsListen string) {
	fmt.Fprintf(w, "\nplayerguard demo: a fake Kakao Games API runs at %s with these players.\n", cfg.Upstream)
	fmt.Fprintf(w, "Paste a line into another terminal; the comment says what it answers.\n\n")
	for _, p := range kakaogamestest.Demo(cfg.AppID) {
		fmt.Fprintf(w, "# %s: %s\n", p.Name, p.Expect)
		fmt.Fprintf(w, "curl -s -w ' HTTP %%{http_code}\\n' -X POST http://%s%s -d '{\"accessToken\":\"%s\",\"platform\":\"%s\",\"playerId\":\"%s\"}'\n\n",
			listen, kakaogames.Path, p.Token, p.Platform, p.PlayerID)
	}
	if ps := kakaogamestest.Demo(cfg.AppID); len(ps) > 0 {
		p := ps[0]
		fmt.Fprintf(w, "# drop-in mode: the Kakao endpoint's own headers, no secrets; answers as Kakao would (200)\n")
		fmt.Fprintf(w, "curl -s -w ' HTTP %%{http_code}\\n' -X POST http://%s%s -H 'accessToken: %s' -H 'platform: %s' -H 'playerId: %s'\n\n",
			listen, kakaogames.ValidationPath, p.Token, p.Platform, p.PlayerID)
	}
	fmt.Fprintf(w, "A fake Kakao Login API (app id %s) runs at %s with these users.\n\n", cfg.KakaoLoginAppID, cfg.KakaoLoginAPI)
	for _, u := range kakaologintest.Demo() {
		fmt.Fprintf(w, "# %s: %s\n", u.Name, u.Expect)
		fmt.Fprintf(w, "curl -s -w ' HTTP %%{http_code}\\n' -X POST http://%s%s -d '{\"accessToken\":\"%s\",\"playerId\":\"%s\"}'\n\n",
			listen, kakaologin.Path, u.Token, u.UserID)
	}
	auds, _ := kakaooidc.ParseAudiences(cfg.KakaoOIDCAudiences)
	fmt.Fprintf(w, "A fake of Kakao's OIDC key set runs at %s; these ID tokens (app key %s) are verified locally, no call to Kakao.\n\n", cfg.KakaoOIDCJWKSURL, auds[0])
	for _, tk := range fakes.ko.Demo(auds[0], time.Now()) {
		fmt.Fprintf(w, "# %s: %s\n", tk.Name, tk.Expect)
		fmt.Fprintf(w, "curl -s -w ' HTTP %%{http_code}\\n' -X POST http://%s%s -d '{\"idToken\":\"%s\",\"playerId\":\"%s\"}'\n\n",
			listen, kakaooidc.Path, tk.Token, tk.UserID)
	}
	fmt.Fprintf(w, "A fake i'mport API runs at %s; the age gate (minimum age %d, rule %s) answers yes or no, never the personal data.\n\n", cfg.IamportAPI, cfg.AgeGateMinAge, cfg.AgeRule)
	for _, c := range fakes.iaCerts {
		fmt.Fprintf(w, "# %s: %s\n", c.Name, c.Expect)
		fmt.Fprintf(w, "curl -s -w ' HTTP %%{http_code}\\n' -X POST http://%s%s -d '{\"impUid\":\"%s\",\"playerId\":\"demo-player-%s\"}'\n\n",
			listen, iamport.Path, c.ImpUID, c.ImpUID[len(c.ImpUID)-1:])
	}
	fmt.Fprintf(w, "# the key set's health\ncurl -s http://%s/readyz; curl -s http://%s/metrics | grep -E '^playerguard_(keys|key_)'\n\n", opsListen, opsListen)
	if ps := kakaogamestest.Demo(cfg.AppID); len(ps) > 0 {
		p := ps[0]
		name, _, _ := strings.Cut(p.Name, " (")
		watched := "validated again every " + cfg.RevalidateEvery.String()
		if cfg.RevalidateEvery == 0 {
			watched = "not validated again (-revalidate-every 0)"
		}
		fmt.Fprintf(w, "# live sessions: with a sessionId, an allow makes %s's connection a live session, %s; then the player's sessions are listed: allow (200)\n", name, watched)
		fmt.Fprintf(w, "curl -s -w ' HTTP %%{http_code}\\n' -X POST http://%s%s -d '{\"accessToken\":\"%s\",\"platform\":\"%s\",\"playerId\":\"%s\",\"sessionId\":\"demo-session-1\"}' && curl -s -w ' HTTP %%{http_code}\\n' 'http://%s/v1/sessions?playerId=%s'\n\n",
			listen, kakaogames.Path, p.Token, p.Platform, p.PlayerID, listen, p.PlayerID)
		fmt.Fprintf(w, "# kick events, a Server-Sent Events stream that does not end: run it in a terminal of its own\n#   curl -N http://%s/v1/events\n", listen)
		// The admin token itself is never printed: the line reads it
		// from where the demo got it.
		kick := func(bearer string) string {
			return fmt.Sprintf("curl -s -w ' HTTP %%{http_code}\\n' -X POST http://%s/admin/kick -H \"Authorization: Bearer %s\" -d '{\"playerId\":\"%s\",\"reason\":\"demo\"}'", opsListen, bearer, p.PlayerID)
		}
		switch {
		case cfg.AdminTokenFile != "":
			fmt.Fprintf(w, "# admin kick: ends %s's live sessions, one kick event each on that stream (source admin)\n%s\n\n", name, kick("$(cat '"+cfg.AdminTokenFile+"')"))
		case cfg.AdminTokenEnv != "":
			fmt.Fprintf(w, "# admin kick: ends %s's live sessions, one kick event each on that stream (source admin),\n", name)
			fmt.Fprintf(w, "# in a shell where %s is the demo's admin token\n%s\n\n", envAdminToken, kick("$"+envAdminToken))
		default:
			fmt.Fprintf(w, "# admin kick: off, this demo has no admin token. Start the demo with one to kick %s by hand:\n", name)
			fmt.Fprintf(w, "#   export %s=\"$(openssl rand -hex 32)\"   (in both terminals)\n#   go run ./cmd/playerguard -demo\n#   %s\n\n", envAdminToken, kick("$"+envAdminToken))
		}
	}
	if cfg.RedisAddr != "" {
		fmt.Fprintf(w, "# fleet tier on Redis at %s: 1 when in the fleet, and the upstream calls other sidecars saved this one\n", cfg.RedisAddr)
		fmt.Fprintf(w, "curl -s http://%s/metrics | grep -E '^playerguard_(redis_connected|fleet_upstream_calls_saved_total)'\n\n", opsListen)
		fmt.Fprintf(w, "# A second sidecar on the same Redis (the same PLAYERGUARD_FLEET_KEY, other ports) answers a player\n")
		fmt.Fprintf(w, "# this one let in from the fleet, without an upstream call (\"source\":\"cache\"):\n")
		fmt.Fprintf(w, "#   go run ./cmd/playerguard -demo -redis-addr %s -listen 127.0.0.1:7610 -ops-listen 127.0.0.1:7611\n\n", cfg.RedisAddr)
	} else {
		fmt.Fprintf(w, "# fleet tier: off. To share verdicts and kicks between sidecars, run a redis-server and start each with\n")
		fmt.Fprintf(w, "#   export PLAYERGUARD_FLEET_KEY=\"$(openssl rand -base64 48)\"   (once, the same for all)\n")
		fmt.Fprintf(w, "#   go run ./cmd/playerguard -demo -redis-addr 127.0.0.1:6379\n\n")
	}
	fmt.Fprintf(w, "# metrics\ncurl -s http://%s/metrics | grep '^playerguard_validations_total'\n\n", opsListen)
	fmt.Fprintf(w, "Stop with Ctrl-C.\n")
}

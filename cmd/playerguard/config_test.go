package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	osexec "os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// runConfig runs playerguard with -check-config appended and returns the
// exit code, stdout and stderr.
func runConfig(t *testing.T, env []string, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(context.Background(), append(args, "-check-config"), env, &out, &errb)
	return code, out.String(), errb.String()
}

var goodEnv = []string{
	"PLAYERGUARD_UPSTREAM=https://kr-openapi-zinny3.game.kakao.com:10443",
	"PLAYERGUARD_APP_ID=909428",
	"PLAYERGUARD_APP_SECRET=s",
	"PLAYERGUARD_ADMIN_KEY=k",
}

func TestCheckConfigGood(t *testing.T) {
	code, out, errs := runConfig(t, goodEnv)
	if code != 0 || errs != "" || !strings.Contains(out, "configuration OK") {
		t.Fatalf("code %d, stdout %q, stderr %q", code, out, errs)
	}
	// -demo needs nothing else.
	if code, _, errs := runConfig(t, nil, "-demo"); code != 0 {
		t.Fatalf("-demo: code %d: %s", code, errs)
	}
}

// TestKubernetesServiceLinksIgnored: a Service named playerguard in the
// namespace injects PLAYERGUARD_SERVICE_* and PLAYERGUARD_PORT* variables
// into every pod; they must not stop the sidecar.
func TestKubernetesServiceLinksIgnored(t *testing.T) {
	env := append(goodEnv,
		"PLAYERGUARD_SERVICE_HOST=10.0.0.7", "PLAYERGUARD_SERVICE_PORT=7601", "PLAYERGUARD_SERVICE_PORT_PG_OPS=7601",
		"PLAYERGUARD_PORT=tcp://10.0.0.7:7601", "PLAYERGUARD_PORT_7601_TCP=tcp://10.0.0.7:7601",
		"PLAYERGUARD_PORT_7601_TCP_PROTO=tcp", "PLAYERGUARD_PORT_7601_TCP_PORT=7601", "PLAYERGUARD_PORT_7601_TCP_ADDR=10.0.0.7")
	if code, _, errs := runConfig(t, env); code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
}

func TestFlagWinsOverEnv(t *testing.T) {
	c, err := parseConfig([]string{"-cache-ttl", "1m"}, append(goodEnv, "PLAYERGUARD_CACHE_TTL=2m", "PLAYERGUARD_STALE_FOR=3m", "PLAYERGUARD_ON_UPSTREAM_FAILURE=closed"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.CacheTTL != time.Minute || c.StaleFor != 3*time.Minute || c.OnFailure != "closed" {
		t.Fatalf("ttl %v stale %v policy %s", c.CacheTTL, c.StaleFor, c.OnFailure)
	}
}

func TestSecretsFromFiles(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		writeFile(t, p, content) // prometheus_test.go's
		return p
	}
	c, err := parseConfig([]string{"-upstream", "http://127.0.0.1:1", "-app-id", "1",
		"-app-secret-file", write("secret", "s3cret\n"), "-admin-key-file", write("key", "  k3y  \n"), "-admin-token-file", write("tok", "adm\n")}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	before := *c
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(*c, before) {
		t.Errorf("Validate changed the config:\n%+v\nwas\n%+v", *c, before)
	}
	sec, errs := c.resolveSecrets()
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	if sec.appSecret != "s3cret" || sec.adminKey != "k3y" || sec.adminToken != "adm" || sec.iamportKey != "" || sec.personKey != nil {
		t.Fatalf("secrets %+v", sec)
	}
}

// TestBadConfig: each problem is one line naming its setting, exit 2.
func TestBadConfig(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty")
	os.WriteFile(empty, nil, 0o600)
	f := func(name string, env []string, args []string, want ...string) {
		t.Helper()
		code, out, errs := runConfig(t, env, args...)
		if code != 2 {
			t.Errorf("%s: exit %d, want 2 (stdout %q)", name, code, out)
		}
		lines := strings.Split(strings.TrimSuffix(errs, "\n"), "\n")
		if len(lines) != len(want) {
			t.Errorf("%s: %d lines, want %d:\n%s", name, len(lines), len(want), errs)
			return
		}
		for i, w := range want {
			if lines[i] != "playerguard: "+w {
				t.Errorf("%s: line %d = %q, want %q", name, i, lines[i], "playerguard: "+w)
			}
		}
	}
	f("nothing", nil, nil,
		"no provider configured: enable kakao-games with -upstream and -app-id (and its secrets), kakao-login with -kakao-login-app-id, kakao-oidc with -kakao-oidc-audiences, or the iamport age gate with PLAYERGUARD_IAMPORT_KEY and PLAYERGUARD_IAMPORT_SECRET")
	f("kakao-games without its secrets", nil, []string{"-upstream", "http://h", "-app-id", "1"},
		"-app-secret-file: required: set PLAYERGUARD_APP_SECRET or -app-secret-file",
		"-admin-key-file: required: set PLAYERGUARD_ADMIN_KEY or -admin-key-file")
	f("kakao-games half configured", goodEnv[2:], []string{"-app-id", "1"}, "-upstream: required with -app-id (the Kakao Games OpenAPI base URL)")
	f("kakao-login app id", nil, []string{"-kakao-login-app-id", "12ab"}, "-kakao-login-app-id: must be the app's numeric id, a positive integer")
	f("kakao-login app id zero", nil, []string{"-kakao-login-app-id", "0"}, "-kakao-login-app-id: must be the app's numeric id, a positive integer")
	f("kakao-login api", nil, []string{"-kakao-login-app-id", "123", "-kakao-login-api", "kapi.kakao.com"},
		`-kakao-login-api: "kapi.kakao.com" is not an http:// or https:// URL`)
	f("kakao-login timeout", nil, []string{"-kakao-login-app-id", "123", "-kakao-login-timeout", "-1s"}, "-kakao-login-timeout: must not be negative")
	f("kakao-oidc flags without audiences", nil, []string{"-kakao-login-app-id", "123", "-kakao-oidc-leeway", "10s", "-kakao-oidc-require-nonce"},
		"-kakao-oidc-audiences: required with -kakao-oidc-leeway, -kakao-oidc-require-nonce (the app keys ID tokens may be issued to)")
	f("kakao-oidc audiences blank", nil, []string{"-kakao-oidc-audiences", " , ", "-kakao-oidc-jwks-url", "http://127.0.0.1:1/jwks"},
		"no provider configured: enable kakao-games with -upstream and -app-id (and its secrets), kakao-login with -kakao-login-app-id, kakao-oidc with -kakao-oidc-audiences, or the iamport age gate with PLAYERGUARD_IAMPORT_KEY and PLAYERGUARD_IAMPORT_SECRET",
		"-kakao-oidc-audiences: required with -kakao-oidc-jwks-url (the app keys ID tokens may be issued to)")
	f("kakao-oidc jwks url", nil, []string{"-kakao-oidc-audiences", "k1", "-kakao-oidc-jwks-url", "kauth.kakao.com/.well-known/jwks.json"},
		`-kakao-oidc-jwks-url: "kauth.kakao.com/.well-known/jwks.json" is not an http:// or https:// URL`)
	f("kakao-oidc leeway", nil, []string{"-kakao-oidc-audiences", "k1", "-kakao-oidc-leeway", "6m"}, "-kakao-oidc-leeway: must be at most 5m0s")
	f("kakao-oidc audience with a space", nil, []string{"-kakao-oidc-audiences", "k1,k 2"}, "-kakao-oidc-audiences: an app key holds a space or a control character")
	f("kakao-oidc intervals", nil, []string{"-kakao-oidc-audiences", "k1", "-kakao-oidc-jwks-refresh", "10s", "-kakao-oidc-max-auth-age", "-1s"},
		"-kakao-oidc-max-auth-age: must not be negative", "-kakao-oidc-jwks-refresh: must be at least -kakao-oidc-jwks-min-interval (30s)")
	f("kakao-oidc min interval", nil, []string{"-kakao-oidc-audiences", "k1", "-kakao-oidc-jwks-min-interval", "0s"}, "-kakao-oidc-jwks-min-interval: must be positive")
	f("iamport key without its secret", []string{"PLAYERGUARD_IAMPORT_KEY=k"}, nil,
		"-iamport-secret-file: required: set PLAYERGUARD_IAMPORT_SECRET or -iamport-secret-file")
	f("iamport person key not hex", []string{"PLAYERGUARD_IAMPORT_KEY=k", "PLAYERGUARD_IAMPORT_SECRET=s", "PLAYERGUARD_IAMPORT_PERSON_KEY_SECRET=xyz"}, nil,
		"-iamport-person-key-secret-file: must be hex, at least 32 digits (16 bytes)")
	f("age gate settings", []string{"PLAYERGUARD_IAMPORT_KEY=k", "PLAYERGUARD_IAMPORT_SECRET=s"}, []string{"-age-gate-min-age", "0", "-age-rule", "korean", "-age-gate-reuse-window", "0s", "-iamport-api", "api.iamport.kr"},
		"-age-gate-min-age: must be from 1 to 100", `-age-rule: unknown age rule "korean" (want full or year)`, "-age-gate-reuse-window: must be positive",
		`-iamport-api: "api.iamport.kr" is not an http:// or https:// URL`)
	f("bad upstream", goodEnv, []string{"-upstream", "kakao.com"}, `-upstream: "kakao.com" is not an http:// or https:// URL`)
	f("upstream without a host", goodEnv, []string{"-upstream", "https://"}, `-upstream: "https://" has no host`)
	f("unparsable upstream", goodEnv, []string{"-upstream", "http://h:x"}, `-upstream: cannot parse: invalid port ":x" after host`)
	f("upstream with user info", goodEnv, []string{"-upstream", "http://u:pw@h"},
		`-upstream: "http://u:xxxxx@h" has user info; want scheme://host[:port][/path] (the upstream is authenticated with the app secret and admin key)`)
	f("upstream with a query", goodEnv, []string{"-upstream", "http://h/?a=b"}, `-upstream: "http://h/?a=b" has a query; want scheme://host[:port][/path]`)
	f("upstream with a fragment", goodEnv, []string{"-upstream", "http://h/#top"}, `-upstream: "http://h/#top" has a fragment; want scheme://host[:port][/path]`)
	f("CA file without a certificate", goodEnv, []string{"-upstream-ca-file", empty}, "-upstream-ca-file: "+empty+" holds no PEM certificate")
	f("missing CA file", goodEnv, []string{"-upstream-ca-file", "/nonexistent/ca.pem"}, "-upstream-ca-file: cannot read: open /nonexistent/ca.pem: no such file or directory")
	f("bad duration env", append(goodEnv, "PLAYERGUARD_CACHE_TTL=5 minutes"), nil,
		`PLAYERGUARD_CACHE_TTL: invalid value "5 minutes": parse error`)
	f("bad flag", goodEnv, []string{"-cache-ttl", "x"}, `invalid value "x" for flag -cache-ttl: parse error`)
	f("unknown flag", goodEnv, []string{"-cache-tll", "1m"}, "flag provided but not defined: -cache-tll")
	f("unknown env", append(goodEnv, "PLAYERGUARD_CACHE_TLL=1m"), nil, "unknown environment variable PLAYERGUARD_CACHE_TLL (see playerguard -h)")
	f("stray arg", goodEnv, []string{"extra"}, `unexpected argument "extra" (settings are -flags or PLAYERGUARD_* variables)`)
	f("policy", goodEnv, []string{"-on-upstream-failure", "maybe"}, `-on-upstream-failure: unknown outage policy "maybe" (want stale, open or closed)`)
	f("negatives", goodEnv, []string{"-cache-ttl", "-1s", "-stale-for", "-1s", "-negative-ttl", "-1s", "-upstream-timeout", "0s"},
		"-cache-ttl: must not be negative", "-stale-for: must not be negative", "-negative-ttl: must not be negative", "-upstream-timeout: must be positive")
	f("remote listen", goodEnv, []string{"-listen", "0.0.0.0:7600"},
		"-listen: 0.0.0.0:7600 is not a loopback address; the validation API has no authentication, so pass -allow-remote to expose it")
	f("bad listen", goodEnv, []string{"-listen", "7600"}, "-listen: address 7600: missing port in address")
	f("same listeners", goodEnv, []string{"-listen", "127.0.0.1:9", "-ops-listen", "127.0.0.1:9"}, "-ops-listen: must differ from -listen (127.0.0.1:9)")
	f("both secret sources", goodEnv, []string{"-app-secret-file", empty}, "-app-secret-file: set either PLAYERGUARD_APP_SECRET or -app-secret-file, not both")
	f("empty secret file", goodEnv[:3], []string{"-admin-key-file", empty}, "-admin-key-file: "+empty+" is empty")
	f("missing secret file", goodEnv[:3], []string{"-admin-key-file", "/nonexistent/key"}, "-admin-key-file: open /nonexistent/key: no such file or directory")
	f("log level", goodEnv, []string{"-log-level", "loud"}, `-log-level: slog: level string "loud": unknown name`)
	f("allow status", goodEnv, []string{"-allow-status", " , "}, "-allow-status: must list at least one status")
	f("entries", goodEnv, []string{"-cache-max-entries", "0"}, "-cache-max-entries: must be positive")
	f("demo with a real upstream", append(goodEnv, "PLAYERGUARD_DEMO=true"), nil,
		"-demo: cannot be combined with -upstream, -kakao-login-api, -kakao-oidc-jwks-url, -iamport-api or upstream secrets (the demo brings its own fake upstreams)")
	f("sessions", goodEnv, []string{"-max-sessions", "0", "-session-max-age", "0s", "-revalidate-every", "-1s", "-revalidate-max-rps", "0",
		"-events-buffer", "0", "-events-webhook-timeout", "0s"},
		"-max-sessions: must be positive", "-session-max-age: must be positive and at most 87600h0m0s",
		"-revalidate-every: must not be negative (0 turns revalidation off)", "-revalidate-max-rps: must be above 0 and at most 10000",
		"-events-buffer: must be between 1 and 10000000", "-events-webhook-timeout: must be positive")
	f("remote webhook", goodEnv, []string{"-events-webhook", "http://10.0.0.5:8080/kicks?key=SECRET-hook-key"},
		"-events-webhook: 10.0.0.5 is not a loopback address; kick events name players, so pass -allow-remote to send them off this machine")
	f("webhook scheme", goodEnv, []string{"-events-webhook", "ftp://127.0.0.1/x"}, "-events-webhook: must be an http:// or https:// URL")
	f("webhook credentials", goodEnv, []string{"-events-webhook", "http://u:SECRET-pw@127.0.0.1/x"}, "-events-webhook: must not carry credentials (user:password@)")
	f("webhook host", goodEnv, []string{"-events-webhook", "http:///x"}, "-events-webhook: has no host")

	// -allow-remote lifts the loopback rule, for the listener and the
	// webhook; revalidation 0 is off, not an error.
	if code, _, errs := runConfig(t, goodEnv, "-listen", "0.0.0.0:7600", "-allow-remote"); code != 0 {
		t.Errorf("-allow-remote: exit %d: %s", code, errs)
	}
	if code, _, errs := runConfig(t, goodEnv, "-events-webhook", "https://hooks.example:8443/kicks", "-allow-remote", "-revalidate-every", "0"); code != 0 {
		t.Errorf("-events-webhook with -allow-remote: exit %d: %s", code, errs)
	}
	if code, _, errs := runConfig(t, goodEnv, "-events-webhook", "http://localhost:9000/kicks"); code != 0 {
		t.Errorf("a loopback -events-webhook: exit %d: %s", code, errs)
	}
}

func TestHelpAndVersion(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"-h"}, nil, &out, &errb); code != 0 {
		t.Fatalf("-h: exit %d", code)
	}
	for _, want := range []string{"-on-upstream-failure policy", "PLAYERGUARD_APP_SECRET", "-demo"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("-h lacks %q", want)
		}
	}
	out.Reset()
	if code := run(context.Background(), []string{"-version"}, nil, &out, &errb); code != 0 || !strings.HasPrefix(out.String(), "playerguard ") {
		t.Fatalf("-version: exit %d %q", code, out.String())
	}
}

// TestCheckConfigAgreesWithStartup: a configuration start-up refuses,
// -check-config refuses too, and with the same words: exit 2 both ways,
// one line naming the setting, and start-up never gets as far as serving.
func TestCheckConfigAgreesWithStartup(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		writeFile(t, p, content) // prometheus_test.go's
		return p
	}
	notPEM := write("not-pem", "not a certificate\n")
	emptyFile := write("empty", "")
	// A https:// upstream, so that start-up uses the CA file; nothing
	// listens on port 1, and nothing here gets to call it.
	env := []string{
		"PLAYERGUARD_UPSTREAM=https://127.0.0.1:1",
		"PLAYERGUARD_APP_ID=909428",
		"PLAYERGUARD_APP_SECRET=s",
		"PLAYERGUARD_ADMIN_KEY=k",
	}
	without := func(name string) []string {
		var out []string
		for _, kv := range env {
			if !strings.HasPrefix(kv, name+"=") {
				out = append(out, kv)
			}
		}
		return out
	}
	cases := []struct {
		name    string
		env     []string
		args    []string
		setting string // the line must name it
	}{
		{"upstream with user info", env, []string{"-upstream", "http://u:p@127.0.0.1:1"}, "-upstream:"},
		{"upstream with a query", env, []string{"-upstream", "http://127.0.0.1:1/?a=b"}, "-upstream:"},
		{"upstream with a fragment", env, []string{"-upstream", "http://127.0.0.1:1/#top"}, "-upstream:"},
		{"upstream not a URL", env, []string{"-upstream", "kakao.com"}, "-upstream:"},
		{"upstream without a host", env, []string{"-upstream", "https://"}, "-upstream:"},
		{"upstream with another scheme", env, []string{"-upstream", "ftp://127.0.0.1:1"}, "-upstream:"},
		{"upstream unparsable", env, []string{"-upstream", "http://127.0.0.1:x"}, "-upstream:"},
		{"no upstream", without("PLAYERGUARD_UPSTREAM"), nil, "-upstream:"},
		{"no app id", without("PLAYERGUARD_APP_ID"), nil, "-app-id:"},
		{"CA file without a certificate", env, []string{"-upstream-ca-file", notPEM}, "-upstream-ca-file:"},
		{"CA file empty", env, []string{"-upstream-ca-file", emptyFile}, "-upstream-ca-file:"},
		{"CA file missing", env, []string{"-upstream-ca-file", filepath.Join(dir, "missing")}, "-upstream-ca-file:"},
		{"CA file a directory", env, []string{"-upstream-ca-file", dir}, "-upstream-ca-file:"},
		{"no app secret", without("PLAYERGUARD_APP_SECRET"), nil, "-app-secret-file:"},
		{"both secret sources", env, []string{"-app-secret-file", notPEM}, "-app-secret-file:"},
		{"empty secret file", without("PLAYERGUARD_ADMIN_KEY"), []string{"-admin-key-file", emptyFile}, "-admin-key-file:"},
		{"missing secret file", without("PLAYERGUARD_ADMIN_KEY"), []string{"-admin-key-file", filepath.Join(dir, "missing")}, "-admin-key-file:"},
		{"unreadable admin token file", env, []string{"-admin-token-file", dir}, "-admin-token-file:"},
		{"bad duration env", append(env, "PLAYERGUARD_CACHE_TTL=5 minutes"), nil, "PLAYERGUARD_CACHE_TTL:"},
		{"bad flag", env, []string{"-cache-ttl", "x"}, "-cache-ttl:"},
		{"unknown flag", env, []string{"-cache-tll", "1m"}, "-cache-tll"},
		{"unknown env", append(env, "PLAYERGUARD_CACHE_TLL=1m"), nil, "PLAYERGUARD_CACHE_TLL"},
		{"stray arg", env, []string{"extra"}, `"extra"`},
		{"policy", env, []string{"-on-upstream-failure", "maybe"}, "-on-upstream-failure:"},
		{"negative ttl", env, []string{"-cache-ttl", "-1s"}, "-cache-ttl:"},
		{"zero upstream timeout", env, []string{"-upstream-timeout", "0s"}, "-upstream-timeout:"},
		{"zero upstream conns", env, []string{"-max-upstream-conns", "0"}, "-max-upstream-conns:"},
		{"zero breaker failures", env, []string{"-breaker-failures", "0"}, "-breaker-failures:"},
		{"zero drain timeout", env, []string{"-drain-timeout", "0s"}, "-drain-timeout:"},
		{"remote listen", env, []string{"-listen", "0.0.0.0:7600"}, "-listen:"},
		{"bad listen", env, []string{"-listen", "7600"}, "-listen:"},
		{"same listeners", env, []string{"-listen", "127.0.0.1:9", "-ops-listen", "127.0.0.1:9"}, "-ops-listen:"},
		{"log level", env, []string{"-log-level", "loud"}, "-log-level:"},
		{"allow status", env, []string{"-allow-status", " , "}, "-allow-status:"},
		{"entries", env, []string{"-cache-max-entries", "0"}, "-cache-max-entries:"},
		{"demo with a real upstream", append(env, "PLAYERGUARD_DEMO=true"), nil, "-demo:"},
		{"kakao-oidc leeway", env, []string{"-kakao-oidc-audiences", "k1", "-kakao-oidc-leeway", "10m"}, "-kakao-oidc-leeway:"},
		{"kakao-oidc jwks url", env, []string{"-kakao-oidc-audiences", "k1", "-kakao-oidc-jwks-url", "ftp://h/jwks"}, "-kakao-oidc-jwks-url:"},
		{"kakao-oidc flag without audiences", env, []string{"-kakao-oidc-max-auth-age", "1h"}, "-kakao-oidc-audiences:"},
		{"iamport secret without its key", append(env, "PLAYERGUARD_IAMPORT_SECRET=s"), nil, "-iamport-key-file:"},
	}
	// runBinary runs playerguard and returns its exit code and stderr.
	runBinary := func(env []string, args ...string) (int, string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		cmd := osexec.CommandContext(ctx, binary, args...)
		cmd.Env = env
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		err := cmd.Run()
		if ctx.Err() != nil {
			t.Fatalf("%v: still running after 20s (it started serving):\n%s", args, stderr.String())
		}
		var exit *osexec.ExitError
		if err != nil && !errors.As(err, &exit) {
			t.Fatal(err)
		}
		return cmd.ProcessState.ExitCode(), stderr.String()
	}
	for _, c := range cases {
		addrs := freeAddrs(t, 2)
		args := append([]string{"-listen", addrs[0], "-ops-listen", addrs[1]}, c.args...)
		checkCode, checkErr := runBinary(c.env, append(args, "-check-config")...)
		lines := strings.Split(strings.TrimSuffix(checkErr, "\n"), "\n")
		if checkCode != 2 || len(lines) != 1 || !strings.HasPrefix(lines[0], "playerguard: ") || !strings.Contains(lines[0], c.setting) {
			t.Errorf("%s: -check-config: exit %d, want 2 and one line naming %s:\n%s", c.name, checkCode, c.setting, checkErr)
		}
		startCode, startErr := runBinary(c.env, args...)
		if startCode != 2 || startErr != checkErr {
			t.Errorf("%s: start-up: exit %d, want 2 and what -check-config said (%q):\n%s", c.name, startCode, checkErr, startErr)
		}
	}
}

// TestSecretsFromEnvTrimmedAndChecked: a secret from the environment loses
// the newline a Kubernetes Secret made from a file carries (the echo
// checks look for the value as sent), and one with a control character
// inside is refused, naming the variable but not showing the value.
func TestSecretsFromEnvTrimmedAndChecked(t *testing.T) {
	c, err := parseConfig(nil, []string{"PLAYERGUARD_APP_SECRET=s3cret\n", "PLAYERGUARD_ADMIN_KEY=\tk3y ", "PLAYERGUARD_ADMIN_TOKEN=adm\r\n"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	s, errs := c.resolveSecrets()
	if len(errs) != 0 || s.appSecret != "s3cret" || s.adminKey != "k3y" || s.adminToken != "adm" {
		t.Fatalf("secrets %q %q %q, errors %v", s.appSecret, s.adminKey, s.adminToken, errs)
	}
	env := append([]string{}, goodEnv[:2]...)
	env = append(env, "PLAYERGUARD_APP_SECRET=bad\x01secret", "PLAYERGUARD_ADMIN_KEY=k")
	code, _, errOut := runConfig(t, env)
	if code != 2 || !strings.Contains(errOut, "PLAYERGUARD_APP_SECRET") || strings.Contains(errOut, "secret\x01") || strings.Contains(errOut, "bad") {
		t.Errorf("control character in a secret: code %d: %q", code, errOut)
	}
}

// TestCheckConfigListenAndDurations: ports out of range, two listeners on
// one port, and durations whose sum would overflow fail -check-config (and
// so start-up) with exit 2.
func TestCheckConfigListenAndDurations(t *testing.T) {
	for _, args := range [][]string{
		{"-listen", "127.0.0.1:99999"},
		{"-listen", "127.0.0.1:abc"},
		{"-ops-listen", "127.0.0.1:-1"},
		{"-listen", "localhost:7700", "-ops-listen", "127.0.0.1:7700"},
		{"-ops-listen", "0.0.0.0:7600"},
		{"-stale-for", "2562047h47m"},
		{"-cache-ttl", "100000h"},
	} {
		if code, _, errOut := runConfig(t, goodEnv, args...); code != 2 || strings.Count(strings.TrimSpace(errOut), "\n") != 0 {
			t.Errorf("%v: code %d, stderr %q", args, code, errOut)
		}
	}
}

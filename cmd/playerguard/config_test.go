package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
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
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	c, err := parseConfig([]string{"-upstream", "http://127.0.0.1:1", "-app-id", "1",
		"-app-secret-file", write("secret", "s3cret\n"), "-admin-key-file", write("key", "  k3y  \n"), "-admin-token-file", write("tok", "adm\n")}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.AppSecret != "s3cret" || c.AdminKey != "k3y" || c.AdminToken != "adm" {
		t.Fatalf("secrets %q %q %q", c.AppSecret, c.AdminKey, c.AdminToken)
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
		"-upstream: required (the Kakao Games OpenAPI base URL)",
		"-app-id: required (the kgAppId)",
		"-app-secret-file: required: set PLAYERGUARD_APP_SECRET or -app-secret-file",
		"-admin-key-file: required: set PLAYERGUARD_ADMIN_KEY or -admin-key-file")
	f("bad upstream", goodEnv, []string{"-upstream", "kakao.com"}, `-upstream: "kakao.com" is not an http:// or https:// URL with a host`)
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
		"-demo: cannot be combined with -upstream or upstream secrets (the demo brings its own fake upstream)")

	// -allow-remote lifts the loopback rule.
	if code, _, errs := runConfig(t, goodEnv, "-listen", "0.0.0.0:7600", "-allow-remote"); code != 0 {
		t.Errorf("-allow-remote: exit %d: %s", code, errs)
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

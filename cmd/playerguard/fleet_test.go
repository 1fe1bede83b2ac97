package main

import (
	"bytes"
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"playerguard/internal/redistest"
	"playerguard/internal/testkit"
)

const testFleetKey = "SECRET-fleet-key-for-cmd-tests-0123456789"

// TestFleetBadConfig: each fleet setting's mistake is one line and exit 2.
func TestFleetBadConfig(t *testing.T) {
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "ca.pem")
	os.WriteFile(notPEM, []byte("not a certificate"), 0o600)
	key := "PLAYERGUARD_FLEET_KEY=" + testFleetKey
	for _, c := range []struct {
		name string
		env  []string
		args []string
		want string
	}{
		{"not host:port", []string{key}, []string{"-redis-addr", "redis"}, `-redis-addr: redis address "redis" is not host:port`},
		{"bad port", []string{key}, []string{"-redis-addr", "redis:0"}, `-redis-addr: redis address "redis:0" has no valid port`},
		{"no fleet key", nil, []string{"-redis-addr", "127.0.0.1:6379"}, "-fleet-key-file: required: set PLAYERGUARD_FLEET_KEY or -fleet-key-file"},
		{"short fleet key", []string{"PLAYERGUARD_FLEET_KEY=short"}, []string{"-redis-addr", "127.0.0.1:6379"},
			"-fleet-key-file: the fleet key must be at least 32 bytes (5 given); make one with: openssl rand -base64 48"},
		{"CA file", []string{key}, []string{"-redis-addr", "127.0.0.1:6379", "-redis-ca-file", notPEM}, "-redis-ca-file: " + notPEM + " holds no PEM certificate"},
		{"timeout", []string{key}, []string{"-redis-addr", "127.0.0.1:6379", "-redis-timeout", "0s"}, "-redis-timeout: must be positive and at most 5s"},
		{"key without redis", []string{key}, nil, "-redis-username, -redis-password-file, -redis-tls, -redis-ca-file, -fleet-key-file, PLAYERGUARD_REDIS_PASSWORD and PLAYERGUARD_FLEET_KEY need -redis-addr"},
	} {
		code, _, errs := runConfig(t, append(c.env, goodEnv...), c.args...)
		if code != 2 || errs != "playerguard: "+c.want+"\n" {
			t.Errorf("%s: exit %d, %q; want 2, %q", c.name, code, errs, c.want)
		}
		if strings.Contains(errs, testFleetKey) {
			t.Errorf("%s: the fleet key is in the message", c.name)
		}
	}
}

// TestFleetStartup: a Redis that refuses the credentials stops playerguard
// with one line and exit 2, naming no password; one that is down does not
// (it starts local-only).
func TestFleetStartup(t *testing.T) {
	rs := redistest.Start(t, "--requirepass", "SECRET-right-pass")
	env := ([]string{"PLAYERGUARD_FLEET_KEY=" + testFleetKey, "PLAYERGUARD_REDIS_PASSWORD=SECRET-wrong-pass", "PLAYERGUARD_DEMO=true"})
	var out, errb bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	code := run(ctx, []string{"-redis-addr", rs.Addr, "-listen", freeAddr(t), "-ops-listen", freeAddr(t)}, env, &out, &errb)
	last := lastLine(errb.String())
	if code != 2 || !strings.HasPrefix(last, "playerguard: -redis-addr: redis refused the connection") {
		t.Errorf("wrong password: exit %d, last line %q", code, last)
	}
	if strings.Contains(errb.String(), "SECRET-") || strings.Contains(out.String(), "SECRET-") {
		t.Error("a secret is in the output")
	}

	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	down := ln.Addr().String()
	ln.Close()
	ctx, cancel = context.WithCancel(context.Background())
	var logs testkit.SyncBuffer
	done := make(chan int)
	go func() {
		done <- run(ctx, []string{"-redis-addr", down, "-listen", freeAddr(t), "-ops-listen", freeAddr(t)},
			[]string{"PLAYERGUARD_FLEET_KEY=" + testFleetKey, "PLAYERGUARD_DEMO=true"}, &bytes.Buffer{}, &logs)
	}()
	select {
	case code := <-done:
		t.Fatalf("a Redis that is down stopped playerguard: exit %d", code)
	case <-time.After(2 * time.Second):
	}
	cancel()
	if code := <-done; code != 0 {
		t.Errorf("exit %d after the drain", code)
	}
	if !strings.Contains(logs.String(), "running local-only") {
		t.Errorf("no local-only line in the log:\n%s", logs.String())
	}
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

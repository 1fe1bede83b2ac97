package main

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"playerguard/internal/redistest"
	"playerguard/internal/testkit"
	"playerguard/validator/kakaogames/kakaogamestest"
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

// TestDemoFleet: two demo sidecars on one redis-server, as the demo's
// fleet lines say: the second answers the first's allow from the fleet,
// and its metrics say so.
func TestDemoFleet(t *testing.T) {
	rs := redistest.Start(t)
	env := []string{"PLAYERGUARD_FLEET_KEY=" + testFleetKey}
	a := start(t, env, "-demo", "-redis-addr", rs.Addr)
	b := start(t, env, "-demo", "-redis-addr", rs.Addr)
	for _, p := range []*proc{a, b} {
		deadline := time.Now().Add(15 * time.Second)
		for !strings.Contains(p.stdout.String(), "Stop with Ctrl-C") || !strings.Contains(metricsOf(t, p), "playerguard_redis_connected 1") {
			if time.Now().After(deadline) {
				t.Fatalf("demo sidecar not in the fleet:\n%s\n%s", p.stdout.String(), p.stderr.String())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	out := a.stdout.String()
	if !strings.Contains(out, "# fleet tier on Redis at "+rs.Addr) || strings.Contains(out, testFleetKey) {
		t.Errorf("the demo's fleet lines are missing, or show the fleet key:\n%s", out)
	}
	alice := kakaogamestest.Demo("909428")[0]
	body := `{"accessToken":"` + alice.Token + `","platform":"` + alice.Platform + `","playerId":"` + alice.PlayerID + `"}`
	for i, p := range []*proc{a, b} {
		res, err := http.Post("http://"+p.listen+"/v1/validate", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		want := []string{"upstream", "cache"}[i]
		if src := res.Header.Get("X-Playerguard-Source"); res.StatusCode != 200 || src != want {
			t.Errorf("sidecar %d: %d from %s, want 200 from %s", i, res.StatusCode, src, want)
		}
		time.Sleep(100 * time.Millisecond) // A's allow is shared just after its answer
	}
	if m := metricsOf(t, b); !strings.Contains(m, `playerguard_fleet_upstream_calls_saved_total{how="shared"} 1`) {
		t.Errorf("B's saved calls:\n%s", grepLines(m, "playerguard_fleet_upstream_calls_saved_total"))
	}
}

func metricsOf(t *testing.T, p *proc) string {
	res, err := http.Get("http://" + p.ops + "/metrics")
	if err != nil {
		return ""
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return string(b)
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

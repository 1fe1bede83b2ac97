package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"go/format"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"playerguard/internal/testkit"
	"playerguard/validator/kakaogames"
	"playerguard/validator/kakaogames/kakaogamestest"
)

// readmeSnippet is the body of README.md's fenced block in lang whose
// first line starts with first (the snippet's file name, as a comment).
func readmeSnippet(t *testing.T, lang, first string) string {
	t.Helper()
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	var found []string
	for _, block := range strings.Split(string(readme), "```"+lang+"\n")[1:] {
		body, _, ok := strings.Cut(block, "\n```")
		if ok && strings.HasPrefix(body, first) {
			found = append(found, body+"\n")
		}
	}
	if len(found) != 1 {
		t.Fatalf("README.md has %d ```%s blocks starting %q, want 1", len(found), lang, first)
	}
	return found[0]
}

// demoAllowed is the demo's first Kakao Games player who is let in.
func demoAllowed(t *testing.T) kakaogamestest.DemoPlayer {
	t.Helper()
	for _, p := range kakaogamestest.Demo("909428") {
		if p.Expect == "allow" {
			return p
		}
	}
	t.Fatal("the demo has no Kakao Games player who is allowed")
	return kakaogamestest.DemoPlayer{}
}

// lines is a process's stdout, line by line.
type lines struct {
	ch   chan string
	mu   chan struct{}
	rest []byte
}

func newLines() *lines { return &lines{ch: make(chan string, 256), mu: make(chan struct{}, 1)} }

func (l *lines) Write(p []byte) (int, error) {
	l.mu <- struct{}{}
	defer func() { <-l.mu }()
	l.rest = append(l.rest, p...)
	for {
		i := bytes.IndexByte(l.rest, '\n')
		if i < 0 {
			return len(p), nil
		}
		l.ch <- string(l.rest[:i])
		l.rest = l.rest[i+1:]
	}
}

// expect requires the next line to be want, within d.
func (l *lines) expect(t *testing.T, want string, d time.Duration, stderr *lockedBuffer) {
	t.Helper()
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case got := <-l.ch:
		if got != want {
			t.Fatalf("printed %q, want %q\nstderr:\n%s", got, want, stderr.String())
		}
	case <-timer.C:
		t.Fatalf("printed nothing in %v, want %q\nstderr:\n%s", d, want, stderr.String())
	}
}

// waitSSEClients waits until pg counts n clients on /v1/events.
func waitSSEClients(t *testing.T, pg *proc, n int) {
	t.Helper()
	want := regexp.MustCompile(`(?m)^playerguard_sse_clients ` + strconv.Itoa(n) + `$`)
	deadline := time.Now().Add(30 * time.Second)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !want.MatchString(metricsOf(t, pg)) {
		if time.Now().After(deadline) {
			t.Fatalf("no %d SSE client(s) connected within 30s:\n%s", n, grepLines(metricsOf(t, pg), "playerguard_sse_clients"))
		}
		<-tick.C
	}
}

// validateSession lets player in with sessionID, a live session.
func validateSession(t *testing.T, pg *proc, p kakaogamestest.DemoPlayer, sessionID string) {
	t.Helper()
	body := `{"accessToken":"` + p.Token + `","platform":"` + p.Platform + `","playerId":"` + p.PlayerID + `","sessionId":"` + sessionID + `"}`
	req, _ := http.NewRequest("POST", "http://"+pg.listen+kakaogames.Path, strings.NewReader(body))
	if r := testkit.Do(t, http.DefaultClient, req); r.Status != 200 {
		t.Fatalf("validation with a sessionId: %d %s", r.Status, r.Raw)
	}
}

// adminKick kicks player through POST /admin/kick and requires that it
// ended one session.
func adminKick(t *testing.T, pg *proc, token, player, reason string) {
	t.Helper()
	req, _ := http.NewRequest("POST", "http://"+pg.ops+"/admin/kick", strings.NewReader(`{"playerId":"`+player+`","reason":"`+reason+`"}`))
	req.Header.Set("Authorization", "Bearer "+token)
	r := testkit.Do(t, http.DefaultClient, req)
	var got struct {
		Kicked, PlayerID string
		Sessions         int
	}
	if err := json.Unmarshal([]byte(r.Raw), &got); r.Status != 200 || err != nil || got.Kicked != "player" || got.PlayerID != player || got.Sessions != 1 {
		t.Fatalf("POST /admin/kick: %d %s", r.Status, r.Raw)
	}
}

// TestReadmeEventClients runs the README's two SSE clients, Go and
// Node, as written but for the address, against the demo: each prints
// an admin kick of a live session; after the sidecar restarts on the
// same address, each reconnects with its Last-Event-ID, gets the reset
// (the id is from the old process), lists the player's sessions (none:
// sessions live in memory), and prints the next kick on the new stream.
func TestReadmeEventClients(t *testing.T) {
	const adminToken = "readme-test-admin-token-0123456789"
	clients := []struct {
		name, lang, first, file string
		// tool finds the program that runs the snippet (it skips or
		// fails the test without it); prepare builds what it needs.
		tool    func(t *testing.T) string
		prepare func(t *testing.T, ctx context.Context, tool, dir, src string) []string
	}{
		{
			name: "go", lang: "go", first: "// sse.go:", file: "sse.go",
			tool: func(t *testing.T) string {
				path, err := exec.LookPath("go")
				if err != nil {
					t.Fatal(err) // the tests are run by it
				}
				return path
			},
			prepare: func(t *testing.T, ctx context.Context, goTool, dir, src string) []string {
				if formatted, err := format.Source([]byte(src)); err != nil || string(formatted) != src {
					t.Errorf("the README's Go snippet is not gofmt-formatted (%v)", err)
				}
				// Built outside any module: an import other than the
				// standard library's fails the build. (Built, not go
				// run: killing go run would leave its child running.)
				bin := filepath.Join(dir, "sse")
				build := exec.CommandContext(ctx, goTool, "build", "-o", bin, "sse.go")
				build.Dir = dir
				if out, err := build.CombinedOutput(); err != nil {
					t.Fatalf("go build of the README's Go snippet: %v\n%s", err, out)
				}
				return []string{bin}
			},
		},
		{
			name: "node", lang: "js", first: "// sse.mjs:", file: "sse.mjs",
			tool: func(t *testing.T) string { return requireTool(t, "node", "apt-get install -y nodejs") },
			prepare: func(t *testing.T, ctx context.Context, node, dir, src string) []string {
				if out, err := exec.CommandContext(ctx, node, "--check", filepath.Join(dir, "sse.mjs")).CombinedOutput(); err != nil {
					t.Fatalf("node --check of the README's Node snippet: %v\n%s", err, out)
				}
				return []string{node, filepath.Join(dir, "sse.mjs")}
			},
		},
	}
	for _, c := range clients {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			tool := c.tool(t)
			src := readmeSnippet(t, c.lang, c.first)
			const readmeAddr = "127.0.0.1:7600"
			if !strings.Contains(src, `"http://`+readmeAddr+`"`) {
				t.Fatalf("the snippet no longer points at playerguard's default address %s:\n%s", readmeAddr, src)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			env := []string{"PLAYERGUARD_ADMIN_TOKEN=" + adminToken}
			pg := start(t, env, "-demo")
			dir := t.TempDir()
			src = strings.ReplaceAll(src, readmeAddr, pg.listen)
			if err := os.WriteFile(filepath.Join(dir, c.file), []byte(src), 0o644); err != nil {
				t.Fatal(err)
			}
			argv := c.prepare(t, ctx, tool, dir, src)
			if t.Failed() {
				return
			}

			player := demoAllowed(t)
			out, stderr := newLines(), newLockedBuffer()
			cmd := exec.CommandContext(ctx, argv[0], append(argv[1:], player.PlayerID)...)
			cmd.Dir = dir
			cmd.Stdout, cmd.Stderr = out, stderr
			cmd.WaitDelay = 5 * time.Second
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				cmd.Process.Kill()
				cmd.Wait()
			})

			waitSSEClients(t, pg, 1)
			validateSession(t, pg, player, "readme-1")
			adminKick(t, pg, adminToken, player.PlayerID, "readme-test")
			out.expect(t, "kick readme-1 "+player.PlayerID+" readme-test admin", 10*time.Second, stderr)

			// A restart: the stream ends, the client comes back to the
			// same address with an id the new process never gave.
			pg.sigtermDrains(t, 5*time.Second, 15*time.Second, "an open event stream held the drain open", "one event stream")
			listen := pg.listen
			pg = start(t, env, "-demo", "-listen", listen) // the last -listen wins
			pg.listen = listen
			out.expect(t, "reset "+player.PlayerID+" sessions 0", 15*time.Second, stderr)
			validateSession(t, pg, player, "readme-2")
			adminKick(t, pg, adminToken, player.PlayerID, "second")
			out.expect(t, "kick readme-2 "+player.PlayerID+" second admin", 10*time.Second, stderr)
		})
	}
}

// TestDemoSessionLines: the demo's session lines do what their comments
// say. With an admin token (from a file, or the environment) the admin
// kick line, run as printed, kicks the live session the validation line
// made, and the stream the comment names carries the kick; the token
// itself is never printed. Without one, the kick line is only a comment
// (TestDemo runs the rest).
func TestDemoSessionLines(t *testing.T) {
	curl := requireTool(t, "curl", "apt-get install -y curl")
	const token = "demo-session-lines-admin-token-0123"
	tokenFile := filepath.Join(t.TempDir(), "admin-token")
	if err := os.WriteFile(tokenFile, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	player := demoAllowed(t)
	cases := []struct {
		name     string
		env      []string // playerguard's
		args     []string
		shellEnv []string // the shell's that runs the printed line
	}{
		{"token file", nil, []string{"-admin-token-file", tokenFile}, nil},
		{"token in the environment", []string{envAdminToken + "=" + token}, nil, []string{envAdminToken + "=" + token}},
		{"no token", nil, nil, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			pg := start(t, c.env, append([]string{"-demo"}, c.args...)...)
			deadline := time.Now().Add(10 * time.Second)
			for !strings.Contains(pg.stdout.String(), "Stop with Ctrl-C") {
				if time.Now().After(deadline) {
					t.Fatalf("demo output incomplete:\n%s", pg.stdout.String())
				}
				time.Sleep(20 * time.Millisecond)
			}
			out := pg.stdout.String()
			if strings.Contains(out, token) {
				t.Fatalf("the demo printed the admin token:\n%s", out)
			}
			// The line after the comment that starts with prefix.
			after := func(prefix string) string {
				t.Helper()
				sc := bufio.NewScanner(strings.NewReader(out))
				for sc.Scan() {
					if strings.HasPrefix(sc.Text(), prefix) {
						for sc.Scan() {
							if !strings.HasPrefix(sc.Text(), "# ") || strings.HasPrefix(sc.Text(), "#   curl") {
								return sc.Text()
							}
						}
					}
				}
				t.Fatalf("no line after %q:\n%s", prefix, out)
				return ""
			}
			run := func(line string) string {
				t.Helper()
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				sh := exec.CommandContext(ctx, "sh", "-c", strings.Replace(line, "curl", curl, 1))
				sh.Env = append([]string{"PATH=" + os.Getenv("PATH")}, c.shellEnv...)
				got, err := sh.Output()
				if err != nil {
					t.Fatalf("%s: %v", line, err)
				}
				return string(got)
			}

			stream := after("# kick events")
			url, ok := strings.CutPrefix(stream, "#   curl -N ")
			if !ok || url != "http://"+pg.listen+"/v1/events" {
				t.Fatalf("the stream line: %q", stream)
			}
			events := testkit.OpenSSE(t, url, "")
			waitSSEClients(t, pg, 1)
			if got := run(after("# live sessions")); !strings.Contains(got, `"decision":"allow"`) ||
				!strings.Contains(got, `{"sessions":[{"sessionId":"demo-session-1","playerId":"`+player.PlayerID+`","provider":"kakao-games"`) {
				t.Fatalf("the live sessions line: %s", got)
			}
			kick := after("# admin kick")
			if c.name == "no token" {
				if !strings.HasPrefix(kick, "#   curl") || !strings.Contains(kick, "/admin/kick") {
					t.Errorf("without an admin token the kick line must be a comment, got %q", kick)
				}
				return
			}
			if got := run(kick); !strings.Contains(got, `"sessions":1`) || !strings.HasSuffix(got, "HTTP 200\n") {
				t.Fatalf("the admin kick line: %s", got)
			}
			e := events.Next(t, 10*time.Second)
			var ev struct{ Type, SessionID, PlayerID, Reason, Source string }
			if err := json.Unmarshal([]byte(e.Data), &ev); err != nil || e.Type != "kick" || ev.SessionID != "demo-session-1" ||
				ev.PlayerID != player.PlayerID || ev.Reason != "demo" || ev.Source != "admin" {
				t.Errorf("event after the admin kick line: %+v", e)
			}
		})
	}
}

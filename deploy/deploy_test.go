// Package deploy has no code: its tests check the deployment files beside
// them the way a careful reviewer would. The Dockerfile builds a static,
// trimmed, version-stamped binary into a non-root image with no secrets; the
// systemd unit is hardened, hands secrets over as credentials, stops more
// slowly than playerguard drains, and really starts playerguard with the
// example environment file. Each check also has a test that breaks the file
// on purpose and expects the check to say so.
//
// The Kubernetes manifests are checked by their own module in kubernetes/,
// which keeps k8s.io/api out of playerguard's go.mod.
package deploy

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// defaultDrainTimeout is playerguard's -drain-timeout default
// (cmd/playerguard/config.go); docs/configuration.md, which a test keeps
// equal to the flags, must say the same (TestDrainTimeoutDefault).
const defaultDrainTimeout = 15 * time.Second

// secretEnv are the environment variables that carry secrets. They may name
// a value in no deployment file but a Secret.
var secretEnv = []string{"PLAYERGUARD_APP_SECRET", "PLAYERGUARD_ADMIN_KEY", "PLAYERGUARD_ADMIN_TOKEN"}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// --- Dockerfile ---

// instruction is one Dockerfile instruction, continuation lines joined.
type instruction struct {
	line int    // where it starts, 1-based
	cmd  string // upper case: FROM, RUN, ...
	args string
}

// parseDockerfile splits a Dockerfile into instructions: comments and blank
// lines dropped, backslash continuations joined (comment lines inside a
// continuation are dropped too, as BuildKit does). Heredocs are refused: the
// checks below would not see inside them.
func parseDockerfile(src string) ([]instruction, error) {
	var out []instruction
	var cur *instruction
	sc := bufio.NewScanner(strings.NewReader(src))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		cont := strings.HasSuffix(line, `\`)
		line = strings.TrimSpace(strings.TrimSuffix(line, `\`))
		if cur == nil {
			cmd, args, _ := strings.Cut(line, " ")
			cur = &instruction{line: n, cmd: strings.ToUpper(cmd), args: strings.TrimSpace(args)}
		} else {
			cur.args += " " + line
		}
		if !cont {
			if strings.Contains(cur.args, "<<") && cur.cmd != "LABEL" {
				return nil, fmt.Errorf("line %d: heredoc: not supported by these checks", cur.line)
			}
			out = append(out, *cur)
			cur = nil
		}
	}
	if cur != nil {
		return nil, fmt.Errorf("line %d: continuation at end of file", cur.line)
	}
	return out, sc.Err()
}

// words splits s at spaces outside double or single quotes, dropping the
// quotes: enough for ARG, ENV, LABEL, COPY and USER arguments.
func words(s string) []string {
	var out []string
	var b strings.Builder
	var quote rune
	in := false
	for _, r := range s {
		switch {
		case quote != 0 && r == quote:
			quote = 0
		case quote == 0 && (r == '"' || r == '\''):
			quote, in = r, true
		case quote == 0 && (r == ' ' || r == '\t'):
			if in {
				out = append(out, b.String())
				b.Reset()
				in = false
			}
		default:
			b.WriteRune(r)
			in = true
		}
	}
	if in {
		out = append(out, b.String())
	}
	return out
}

// stage is the instructions from one FROM to the next.
type stage struct {
	from string // image
	name string // AS name, if any
	ins  []instruction
}

func stages(ins []instruction) []stage {
	var out []stage
	for _, in := range ins {
		if in.cmd == "FROM" {
			var image, name string
			w := words(in.args)
			for i := 0; i < len(w); i++ {
				switch {
				case strings.HasPrefix(w[i], "--"):
				case strings.EqualFold(w[i], "AS") && i+1 < len(w):
					name = w[i+1]
					i++
				case image == "":
					image = w[i]
				}
			}
			out = append(out, stage{from: image, name: name})
			continue
		}
		if len(out) > 0 {
			out[len(out)-1].ins = append(out[len(out)-1].ins, in)
		}
	}
	return out
}

var secretWord = regexp.MustCompile(`(?i)secret|key|token|passw(or)?d|credential`)

// checkDockerfile returns every problem with the Dockerfile, each a sentence
// saying what is wrong and why it matters.
func checkDockerfile(src string) []string {
	ins, err := parseDockerfile(src)
	if err != nil {
		return []string{err.Error()}
	}
	var problems []string
	bad := func(format string, a ...any) { problems = append(problems, fmt.Sprintf(format, a...)) }

	st := stages(ins)
	if len(st) < 2 {
		return append(problems, fmt.Sprintf("want a multi-stage build (a builder stage and a final stage), found %d FROM line(s): the Go toolchain must not ship in the image", len(st)))
	}
	final := st[len(st)-1]

	// The build: static, trimmed, version-stamped, in a builder stage.
	var build *instruction
	for _, s := range st[:len(st)-1] {
		cgoEnv := false
		for i, in := range s.ins {
			if in.cmd == "ENV" && strings.Contains(in.args, "CGO_ENABLED=0") {
				cgoEnv = true
			}
			if in.cmd == "RUN" && strings.Contains(in.args, "go build") {
				build = &s.ins[i]
				if !cgoEnv && !strings.Contains(in.args, "CGO_ENABLED=0") {
					bad("line %d: go build without CGO_ENABLED=0: the binary must be static to run on distroless/static or scratch", in.line)
				}
			}
		}
	}
	if build == nil {
		bad("no RUN ... go build in a builder stage")
	} else {
		for _, want := range []struct{ s, why string }{
			{"-trimpath", "so that no build machine paths end up in the binary"},
			{"-X main.version=", "so that playerguard -version and the build_info metric say which build runs"},
			{"./cmd/playerguard", "the binary to build"},
		} {
			if !strings.Contains(build.args, want.s) {
				bad("line %d: go build lacks %s: %s", build.line, want.s, want.why)
			}
		}
	}

	// The final stage: a base with CA certificates, the binary, a numeric
	// non-root user, the binary as exec-form entrypoint.
	switch {
	case strings.HasPrefix(final.from, "gcr.io/distroless/static"):
	case final.from == "scratch":
		certs := false
		for _, in := range final.ins {
			if in.cmd == "COPY" && strings.Contains(in.args, "ca-certificates") {
				certs = true
			}
		}
		if !certs {
			bad("final stage FROM scratch copies no CA certificates: the upstream is HTTPS")
		}
	default:
		bad("final stage FROM %s: want gcr.io/distroless/static* (or scratch with CA certificates): nothing in the image but the binary", final.from)
	}
	binary := ""
	for _, in := range final.ins {
		if in.cmd == "COPY" && strings.Contains(in.args, "--from=") {
			if w := words(in.args); len(w) > 0 {
				binary = w[len(w)-1]
			}
		}
	}
	if binary == "" {
		bad("final stage has no COPY --from=<builder>: where does the binary come from?")
	}
	user := ""
	for _, in := range final.ins {
		if in.cmd == "USER" {
			user = in.args
		}
	}
	if !regexp.MustCompile(`^[0-9]+(:[0-9]+)?$`).MatchString(user) {
		bad("final stage USER %q: want a numeric uid[:gid], so that Kubernetes runAsNonRoot can verify it", user)
	} else {
		for _, id := range strings.Split(user, ":") {
			if n, _ := strconv.Atoi(id); n == 0 {
				bad("final stage USER %q: must not be root (0)", user)
			}
		}
	}
	entry := ""
	for _, in := range final.ins {
		if in.cmd == "ENTRYPOINT" {
			entry = in.args
		}
	}
	var argv []string
	switch {
	case entry == "":
		bad("final stage has no ENTRYPOINT: want [%q]", binary)
	case json.Unmarshal([]byte(entry), &argv) != nil || len(argv) == 0:
		bad("ENTRYPOINT %s: want exec form [%q]: the shell form needs a shell, and would keep SIGTERM from reaching playerguard", entry, binary)
	case argv[0] != binary:
		bad("ENTRYPOINT runs %q, but the binary is copied to %q", argv[0], binary)
	}
	exposed := map[string]bool{}
	for _, in := range final.ins {
		if in.cmd == "EXPOSE" {
			for _, p := range words(in.args) {
				exposed[strings.TrimSuffix(p, "/tcp")] = true
			}
		}
	}
	for _, p := range []string{"7600", "7601"} {
		if !exposed[p] {
			bad("final stage does not EXPOSE %s", p)
		}
	}

	// Anywhere: no secrets, no health check, no downloads that bypass the
	// module checksums.
	for _, in := range ins {
		switch in.cmd {
		case "ENV", "ARG", "LABEL":
			w := words(in.args)
			if in.cmd == "ENV" && len(w) == 2 && !strings.Contains(w[0], "=") {
				w = []string{w[0] + "=" + w[1]} // legacy ENV key value
			}
			for _, kv := range w {
				k, v, _ := strings.Cut(kv, "=")
				if secretWord.MatchString(k) {
					bad("line %d: %s %s: a secret in an image is readable by anyone who can pull it; secrets come at run time", in.line, in.cmd, k)
				}
				for _, e := range secretEnv {
					if strings.Contains(v, e) {
						bad("line %d: %s %s names %s: secrets come at run time", in.line, in.cmd, k, e)
					}
				}
			}
		case "HEALTHCHECK":
			bad("line %d: HEALTHCHECK: the orchestrator probes /healthz and /readyz on the ops port, and distroless has no tool to run a check with", in.line)
		case "ADD":
			for _, w := range words(in.args) {
				if strings.HasPrefix(w, "http://") || strings.HasPrefix(w, "https://") || strings.HasPrefix(w, "git@") {
					bad("line %d: ADD %s: a download with no checksum; build from the context and the module proxy", in.line, w)
				}
			}
		}
		for _, e := range secretEnv {
			if in.cmd != "ENV" && in.cmd != "ARG" && in.cmd != "LABEL" && strings.Contains(in.args, e+"=") {
				bad("line %d: %s sets %s: secrets come at run time", in.line, in.cmd, e)
			}
		}
	}
	return problems
}

func TestDockerfile(t *testing.T) {
	for _, p := range checkDockerfile(readFile(t, "Dockerfile")) {
		t.Errorf("deploy/Dockerfile: %s", p)
	}
	// The build context is the repository root: .git and build output must
	// not be sent to the builder, nor copied into the builder stage.
	// The builder is the Go release go.mod asks for.
	gomod := readFile(t, "../go.mod")
	if m := regexp.MustCompile(`(?m)^go (1\.[0-9]+)`).FindStringSubmatch(gomod); m == nil {
		t.Error("go.mod has no go line")
	} else if ins, err := parseDockerfile(readFile(t, "Dockerfile")); err == nil {
		if st := stages(ins); len(st) > 0 && !strings.HasPrefix(st[0].from, "golang:"+m[1]) {
			t.Errorf("deploy/Dockerfile builds with %s, but go.mod says go %s: want golang:%s", st[0].from, m[1], m[1])
		}
	}
	ignore := strings.Fields(readFile(t, "../.dockerignore"))
	for _, want := range []string{".git", "dist"} {
		if !slices.Contains(ignore, want) {
			t.Errorf(".dockerignore does not exclude %s", want)
		}
	}
}

// TestDockerfileChecks breaks the Dockerfile in one way at a time and
// expects checkDockerfile to name the problem.
func TestDockerfileChecks(t *testing.T) {
	good := readFile(t, "Dockerfile")
	f := func(name, old, new, want string) {
		t.Helper()
		if !strings.Contains(good, old) {
			t.Fatalf("%s: the Dockerfile no longer contains %q; update this test", name, old)
		}
		problems := checkDockerfile(strings.Replace(good, old, new, 1))
		for _, p := range problems {
			if strings.Contains(p, want) {
				return
			}
		}
		t.Errorf("%s: want a problem containing %q, got %q", name, want, problems)
	}
	f("single stage", "FROM gcr.io/distroless/static-debian12:nonroot", "", "multi-stage")
	f("cgo", "CGO_ENABLED=0 GOOS=", "GOOS=", "CGO_ENABLED=0")
	f("no trimpath", "-trimpath ", "", "-trimpath")
	f("no version", "-X main.version=${VERSION}", "", "-X main.version=")
	f("root user", "USER 65532:65532", "USER 0", "must not be root")
	f("named user", "USER 65532:65532", "USER nonroot", "numeric")
	f("no user", "USER 65532:65532", "", "numeric")
	f("shell entrypoint", `ENTRYPOINT ["/playerguard"]`, "ENTRYPOINT /playerguard", "exec form")
	f("wrong entrypoint", `ENTRYPOINT ["/playerguard"]`, `ENTRYPOINT ["/bin/playerguard"]`, "copied to")
	f("healthcheck", "ENTRYPOINT", "HEALTHCHECK CMD [\"/playerguard\", \"-version\"]\nENTRYPOINT", "HEALTHCHECK")
	f("secret env", "ENTRYPOINT", "ENV PLAYERGUARD_APP_SECRET=hunter2\nENTRYPOINT", "PLAYERGUARD_APP_SECRET")
	f("secret arg", "ARG VERSION=dev\nRUN", "ARG VERSION=dev\nARG GITHUB_TOKEN\nRUN", "GITHUB_TOKEN")
	f("secret label", "org.opencontainers.image.title=", "build.api-key=x org.opencontainers.image.title=", "build.api-key")
	f("remote add", "COPY . .", "ADD https://example.com/x.tar.gz /src/\nCOPY . .", "ADD https://")
	f("fat base", "FROM gcr.io/distroless/static-debian12:nonroot", "FROM debian:bookworm", "distroless")
	f("scratch without certs", "FROM gcr.io/distroless/static-debian12:nonroot", "FROM scratch", "CA certificates")
	f("no expose", "EXPOSE 7600 7601", "EXPOSE 7600", "EXPOSE 7601")
}

// --- systemd ---

// unit is a parsed systemd unit file: section -> key -> values in order.
type unit map[string]map[string][]string

func parseUnit(src string) (unit, error) {
	u := unit{}
	section := ""
	var logical strings.Builder
	start := 0
	sc := bufio.NewScanner(strings.NewReader(src))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if logical.Len() == 0 && (line == "" || line[0] == '#' || line[0] == ';') {
			continue
		}
		if logical.Len() == 0 {
			start = n
		}
		if strings.HasSuffix(line, `\`) {
			logical.WriteString(strings.TrimSuffix(line, `\`) + " ")
			continue
		}
		logical.WriteString(line)
		line = logical.String()
		logical.Reset()
		if strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]") {
			section = line[1 : len(line)-1]
			if u[section] == nil {
				u[section] = map[string][]string{}
			}
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok || section == "" {
			return nil, fmt.Errorf("line %d: %q is not key=value in a section", start, line)
		}
		u[section][strings.TrimSpace(k)] = append(u[section][strings.TrimSpace(k)], strings.TrimSpace(v))
	}
	return u, sc.Err()
}

// last is the effective value of a single-valued setting.
func (u unit) last(section, key string) (string, bool) {
	v := u[section][key]
	if len(v) == 0 {
		return "", false
	}
	return v[len(v)-1], true
}

// parseTimespan reads a systemd time span such as 30, 30s, 1min 30s, 500ms.
func parseTimespan(s string) (time.Duration, error) {
	units := map[string]time.Duration{
		"": time.Second, "s": time.Second, "sec": time.Second, "second": time.Second, "seconds": time.Second,
		"ms": time.Millisecond, "msec": time.Millisecond,
		"m": time.Minute, "min": time.Minute, "minute": time.Minute, "minutes": time.Minute,
		"h": time.Hour, "hr": time.Hour, "hour": time.Hour, "hours": time.Hour,
	}
	re := regexp.MustCompile(`^\s*([0-9]+)\s*([a-z]*)`)
	var d time.Duration
	for rest := s; strings.TrimSpace(rest) != ""; {
		m := re.FindStringSubmatch(rest)
		if m == nil {
			return 0, fmt.Errorf("cannot parse time span %q", s)
		}
		n, _ := strconv.Atoi(m[1])
		u, ok := units[m[2]]
		if !ok {
			return 0, fmt.Errorf("time span %q: unknown unit %q", s, m[2])
		}
		d += time.Duration(n) * u
		rest = rest[len(m[0]):]
	}
	return d, nil
}

func isYes(v string) bool {
	switch strings.ToLower(v) {
	case "yes", "true", "on", "1":
		return true
	}
	return false
}

var credFlag = regexp.MustCompile(`-([a-z-]+-file)[= ]\$\{CREDENTIALS_DIRECTORY\}/([A-Za-z0-9_.-]+)`)

// checkUnit returns every problem with the unit, given the drain timeout it
// must outlast.
func checkUnit(src string, drain time.Duration) []string {
	u, err := parseUnit(src)
	if err != nil {
		return []string{err.Error()}
	}
	var problems []string
	bad := func(format string, a ...any) { problems = append(problems, fmt.Sprintf(format, a...)) }
	const svc = "Service"
	if u[svc] == nil {
		return []string{"no [Service] section"}
	}

	// Hardening: directive -> the value it must have ("yes" means any true
	// boolean) and why.
	for _, h := range []struct{ key, want, why string }{
		{"NoNewPrivileges", "yes", "no setuid escalation"},
		{"ProtectSystem", "strict", "the whole file system read-only"},
		{"ProtectHome", "yes", "no access to /home, /root, /run/user"},
		{"PrivateTmp", "yes", "its own /tmp"},
		{"PrivateDevices", "yes", "no physical devices"},
		{"ProtectKernelTunables", "yes", "/proc/sys and /sys read-only"},
		{"ProtectKernelModules", "yes", "no module loading"},
		{"ProtectKernelLogs", "yes", "no kernel log access"},
		{"ProtectControlGroups", "yes", "cgroups read-only"},
		{"RestrictAddressFamilies", "AF_INET AF_INET6 AF_UNIX", "TCP and local sockets only"},
		{"CapabilityBoundingSet", "", "no capabilities at all"},
		{"LockPersonality", "yes", "no personality changes"},
		{"MemoryDenyWriteExecute", "yes", "no writable executable memory (Go needs none)"},
		{"Restart", "on-failure", "come back after a crash"},
		{"KillSignal", "SIGTERM", "the signal playerguard drains on"},
	} {
		v, ok := u.last(svc, h.key)
		switch {
		case !ok:
			bad("[Service] lacks %s=%s (%s)", h.key, h.want, h.why)
		case h.want == "yes" && !isYes(v):
			bad("[Service] %s=%s: want yes (%s)", h.key, v, h.why)
		case h.want != "yes" && strings.Join(strings.Fields(v), " ") != h.want:
			bad("[Service] %s=%s: want %s=%s (%s)", h.key, v, h.key, h.want, h.why)
		}
	}
	if !slices.Contains(u[svc]["SystemCallFilter"], "@system-service") {
		bad("[Service] lacks SystemCallFilter=@system-service (an allow list of the system calls a service needs)")
	}
	if _, ok := u.last(svc, "RestartSec"); !ok {
		bad("[Service] lacks RestartSec= (without it a crash loop restarts every 100ms)")
	}
	if t, _ := u.last(svc, "Type"); t != "exec" && t != "simple" {
		bad("[Service] Type=%s: want exec or simple (playerguard does not fork or notify)", t)
	}

	// A dedicated unprivileged user.
	if dyn, _ := u.last(svc, "DynamicUser"); !isYes(dyn) {
		if user, _ := u.last(svc, "User"); user == "" || user == "root" || user == "0" {
			bad("[Service] runs as root: want DynamicUser=yes or a dedicated User=")
		}
	}

	// Stopping outlasts the drain.
	if v, ok := u.last(svc, "TimeoutStopSec"); !ok {
		bad("[Service] lacks TimeoutStopSec= above the drain timeout (%s)", drain)
	} else if d, err := parseTimespan(v); err != nil {
		bad("[Service] TimeoutStopSec: %v", err)
	} else if d <= drain {
		bad("[Service] TimeoutStopSec=%s is not above the drain timeout %s: systemd would SIGKILL playerguard mid-drain", v, drain)
	}

	// Configuration from the environment file, secrets as credentials.
	if v, _ := u.last(svc, "EnvironmentFile"); strings.TrimPrefix(v, "-") != "/etc/playerguard/playerguard.env" {
		bad("[Service] EnvironmentFile=%s: want /etc/playerguard/playerguard.env", v)
	}
	for _, env := range u[svc]["Environment"] {
		for _, e := range secretEnv {
			if strings.Contains(env, e) {
				bad("[Service] Environment= sets %s: unit files are world-readable; use LoadCredential= and the -*-file flags", e)
			}
		}
	}
	execStart, _ := u.last(svc, "ExecStart")
	creds := map[string]bool{}
	for _, lc := range u[svc]["LoadCredential"] {
		id, _, _ := strings.Cut(lc, ":")
		creds[id] = true
	}
	used := map[string]bool{}
	for _, m := range credFlag.FindAllStringSubmatch(execStart, -1) {
		used[m[2]] = true
		if !creds[m[2]] {
			bad("ExecStart reads credential %s (-%s) but no LoadCredential=%s:... provides it", m[2], m[1], m[2])
		}
	}
	for id := range creds {
		if !used[id] {
			bad("LoadCredential=%s is passed to no -*-file flag in ExecStart", id)
		}
	}
	for _, f := range []string{"-app-secret-file", "-admin-key-file"} {
		if !strings.Contains(execStart, f) {
			bad("ExecStart lacks %s=${CREDENTIALS_DIRECTORY}/...: the secret is required", f)
		}
	}
	return problems
}

// envFile reads KEY=VALUE lines; with commented, also "#KEY=VALUE" lines.
func envFile(src string, commented bool) []string {
	var out []string
	re := regexp.MustCompile(`^([A-Z][A-Z0-9_]*)=(.*)$`)
	for _, line := range strings.Split(src, "\n") {
		line = strings.TrimSpace(line)
		if commented {
			line = strings.TrimPrefix(line, "#")
		}
		if re.MatchString(line) {
			out = append(out, line)
		}
	}
	return out
}

// unitDrain is the drain timeout the unit must outlast: the example env
// file's PLAYERGUARD_DRAIN_TIMEOUT if set, else the default.
func unitDrain(t *testing.T) time.Duration {
	for _, kv := range envFile(readFile(t, "systemd/playerguard.env.example"), false) {
		if v, ok := strings.CutPrefix(kv, "PLAYERGUARD_DRAIN_TIMEOUT="); ok {
			d, err := time.ParseDuration(v)
			if err != nil {
				t.Fatalf("playerguard.env.example: PLAYERGUARD_DRAIN_TIMEOUT: %v", err)
			}
			return d
		}
	}
	return defaultDrainTimeout
}

func TestSystemdUnit(t *testing.T) {
	for _, p := range checkUnit(readFile(t, "systemd/playerguard.service"), unitDrain(t)) {
		t.Errorf("deploy/systemd/playerguard.service: %s", p)
	}
	for _, kv := range envFile(readFile(t, "systemd/playerguard.env.example"), true) {
		for _, e := range secretEnv {
			if strings.HasPrefix(kv, e+"=") {
				t.Errorf("playerguard.env.example sets %s: secrets are credentials, not environment", e)
			}
		}
	}
}

// TestSystemdUnitChecks breaks the unit in one way at a time and expects
// checkUnit to name the problem.
func TestSystemdUnitChecks(t *testing.T) {
	good := readFile(t, "systemd/playerguard.service")
	f := func(name, old, new, want string) {
		t.Helper()
		if !strings.Contains(good, old) {
			t.Fatalf("%s: the unit no longer contains %q; update this test", name, old)
		}
		problems := checkUnit(strings.Replace(good, old, new, 1), defaultDrainTimeout)
		for _, p := range problems {
			if strings.Contains(p, want) {
				return
			}
		}
		t.Errorf("%s: want a problem containing %q, got %q", name, want, problems)
	}
	f("no NoNewPrivileges", "NoNewPrivileges=yes\n", "", "NoNewPrivileges")
	f("NoNewPrivileges off", "NoNewPrivileges=yes", "NoNewPrivileges=no", "NoNewPrivileges=no")
	f("ProtectSystem full", "\nProtectSystem=strict", "\nProtectSystem=full", "ProtectSystem=full")
	f("capabilities", "CapabilityBoundingSet=\n", "CapabilityBoundingSet=CAP_NET_BIND_SERVICE\n", "CapabilityBoundingSet")
	f("address families", "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX", "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX AF_NETLINK", "RestrictAddressFamilies")
	f("no syscall filter", "SystemCallFilter=@system-service\n", "", "@system-service")
	f("no MemoryDenyWriteExecute", "MemoryDenyWriteExecute=yes\n", "", "MemoryDenyWriteExecute")
	f("short stop", "TimeoutStopSec=30s", "TimeoutStopSec=10s", "mid-drain")
	f("short stop, bare seconds", "TimeoutStopSec=30s", "TimeoutStopSec=15", "mid-drain")
	f("root", "DynamicUser=yes", "User=root", "runs as root")
	f("forking", "Type=exec", "Type=forking", "Type=forking")
	f("no restart", "Restart=on-failure", "Restart=no", "Restart")
	f("no RestartSec", "RestartSec=2s\n", "", "RestartSec")
	f("secret in env", "EnvironmentFile=", "Environment=PLAYERGUARD_ADMIN_KEY=x\nEnvironmentFile=", "world-readable")
	f("missing credential", "LoadCredential=admin-key:/etc/playerguard/admin-key\n", "", "no LoadCredential=admin-key")
	f("unused credential", "-admin-token-file=${CREDENTIALS_DIRECTORY}/admin-token", "", "passed to no -*-file flag")
	f("no env file", "EnvironmentFile=/etc/playerguard/playerguard.env", "EnvironmentFile=/etc/default/playerguard", "EnvironmentFile")
	if d, err := parseTimespan("1min 30s"); err != nil || d != 90*time.Second {
		t.Errorf("parseTimespan(1min 30s) = %v, %v", d, err)
	}
}

// buildDir holds the binary buildPlayerguard builds, if it ran.
var buildDir string

// buildPlayerguard builds the real binary once for the tests that run it.
var buildPlayerguard = sync.OnceValues(func() (string, error) {
	var err error
	if buildDir, err = os.MkdirTemp("", "playerguard-deploy-test"); err != nil {
		return "", err
	}
	bin := filepath.Join(buildDir, "playerguard")
	out, err := exec.Command("go", "build", "-o", bin, "playerguard/cmd/playerguard").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build: %v\n%s", err, out)
	}
	return bin, nil
})

func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

func playerguard(t *testing.T) string {
	t.Helper()
	bin, err := buildPlayerguard()
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

// TestSystemdUnitStartsPlayerguard runs the unit's ExecStart the way systemd
// would, with the example environment file and the credentials in a
// directory, under -check-config: the flags, the credential names and every
// variable in the example (the commented-out ones too) are a configuration
// playerguard accepts.
func TestSystemdUnitStartsPlayerguard(t *testing.T) {
	u, err := parseUnit(readFile(t, "systemd/playerguard.service"))
	if err != nil {
		t.Fatal(err)
	}
	creds := t.TempDir()
	for _, lc := range u["Service"]["LoadCredential"] {
		id, _, _ := strings.Cut(lc, ":")
		if err := os.WriteFile(filepath.Join(creds, id), []byte("test-"+id+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	execStart, _ := u.last("Service", "ExecStart")
	argv := strings.Fields(strings.ReplaceAll(execStart, "${CREDENTIALS_DIRECTORY}", creds))
	if len(argv) == 0 || argv[0] != "/usr/local/bin/playerguard" {
		t.Fatalf("ExecStart %q: want /usr/local/bin/playerguard (deploy/README.md installs it there)", execStart)
	}
	example := readFile(t, "systemd/playerguard.env.example")
	for _, commented := range []bool{false, true} {
		cmd := exec.Command(playerguard(t), append(argv[1:], "-check-config")...)
		cmd.Env = envFile(example, commented)
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), "configuration OK") {
			t.Errorf("ExecStart with playerguard.env.example (commented-out lines too: %v) -check-config: %v\n%s", commented, err, out)
		}
	}
}

// TestSystemdAnalyze runs systemd-analyze verify (syntax, known directives,
// the executable) and security (the exposure score) on a copy of the unit
// whose ExecStart points at a freshly built playerguard. Without
// systemd-analyze it skips, except under CI=true: Debian's systemd package
// provides it, and .ci/run installs it.
func TestSystemdAnalyze(t *testing.T) {
	sa, err := exec.LookPath("systemd-analyze")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("systemd-analyze not found: apt-get install systemd")
		}
		t.Skip("systemd-analyze not found; to run this check: apt-get install systemd")
	}
	unitText := readFile(t, "systemd/playerguard.service")
	unitText = strings.ReplaceAll(unitText, "/usr/local/bin/playerguard", playerguard(t))
	path := filepath.Join(t.TempDir(), "playerguard.service")
	if err := os.WriteFile(path, []byte(unitText), 0o644); err != nil {
		t.Fatal(err)
	}
	// verify exits 0 on warnings such as an unknown directive or a bad
	// value, which it only prints: any output is a failure.
	var out bytes.Buffer
	cmd := exec.Command(sa, "verify", "--man=no", path)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil || out.Len() > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out.String())
	}
	// security scores the sandboxing from 0 (locked down) to 10. The
	// threshold is in tenths: fail above 2.0 ("OK" ends at 2.9); the unit
	// scores 1.2 today.
	out.Reset()
	cmd = exec.Command(sa, "security", "--offline=yes", "--threshold=20", "--no-pager", path)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Errorf("systemd-analyze security: exposure above 2.0 (%v):\n%s", err, out.String())
	}
}

// --- settings named in deploy/ exist ---

// documentedEnv reads the environment variables docs/configuration.md lists
// (that document is generated from the flags and checked against
// playerguard -h by cmd/playerguard's tests).
func documentedEnv(t *testing.T) map[string]bool {
	t.Helper()
	env := map[string]bool{}
	for _, m := range regexp.MustCompile("`(PLAYERGUARD_[A-Z0-9_]+)`").FindAllStringSubmatch(readFile(t, "../docs/configuration.md"), -1) {
		env[m[1]] = true
	}
	if len(env) < 10 {
		t.Fatalf("docs/configuration.md lists %d PLAYERGUARD_ variables; is it generated?", len(env))
	}
	return env
}

// notSettings are PLAYERGUARD_ names the deployment files may mention that
// are not settings: the variables Kubernetes' service links would inject
// for a Service named playerguard, which the manifests turn off because
// playerguard refuses them.
var notSettings = map[string]bool{"PLAYERGUARD_SERVICE_HOST": true, "PLAYERGUARD_PORT": true}

// TestDeploySettingsDocumented: every PLAYERGUARD_ variable any file under
// deploy/ mentions is a real setting, so an example cannot teach a typo
// (which playerguard would refuse at start).
func TestDeploySettingsDocumented(t *testing.T) {
	env := documentedEnv(t)
	re := regexp.MustCompile(`\bPLAYERGUARD_[A-Z0-9_]*[A-Z0-9]`)
	err := filepath.WalkDir(".", func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || strings.HasSuffix(path, "_test.go") || strings.HasSuffix(path, ".sum") {
			return err
		}
		for _, name := range re.FindAllString(readFile(t, path), -1) {
			if !env[name] && !notSettings[name] {
				t.Errorf("deploy/%s names %s, which is not a playerguard setting (docs/configuration.md)", path, name)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestDrainTimeoutDefault keeps defaultDrainTimeout, which the unit and the
// Kubernetes grace periods are checked against, equal to the documented
// default.
func TestDrainTimeoutDefault(t *testing.T) {
	doc := readFile(t, "../docs/configuration.md")
	m := regexp.MustCompile("(?m)^\\| `-drain-timeout` \\|[^|]*\\| `PLAYERGUARD_DRAIN_TIMEOUT` \\| `([^`]+)` \\|").FindStringSubmatch(doc)
	if m == nil {
		t.Fatal("docs/configuration.md has no -drain-timeout row")
	}
	if d, err := time.ParseDuration(m[1]); err != nil || d != defaultDrainTimeout {
		t.Errorf("docs/configuration.md: -drain-timeout default %s, this test assumes %s", m[1], defaultDrainTimeout)
	}
}

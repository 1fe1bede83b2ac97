package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"maps"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// referencePath is the configuration reference, generated from the flags by
// TestConfigurationReference.
const referencePath = "../../docs/configuration.md"

// updateDocsEnv, set to 1, makes TestConfigurationReference rewrite the
// reference instead of comparing. It is an environment variable rather than
// a -update test flag so that it can never collide with a flag another test
// file of this package defines. playerguard never sees it: its tests pass
// an explicit environment.
const updateDocsEnv = "PLAYERGUARD_UPDATE_DOCS"

// secretDocs are the rows of the secrets table: each secret's variable, its
// file flag, and what it is.
var secretDocs = []struct{ env, fileFlag, what string }{
	{envAppSecret, "app-secret-file", "Kakao Games app secret, sent as `appSecret` (required with kakao-games, unless `-demo`)"},
	{envAdminKey, "admin-key-file", "Kakao Games admin key, sent as `Authorization: KakaoAK …` (required with kakao-games, unless `-demo`)"},
	{envAdminToken, "admin-token-file", "bearer token for `/admin/*` on the ops listener (optional: without it `/admin/*` answers 401)"},
	{envIamportKey, "iamport-key-file", "i'mport REST API key (`imp_key`); with the secret, enables the iamport age gate"},
	{envIamportSecret, "iamport-secret-file", "i'mport REST API secret (`imp_secret`; required with the key)"},
	{envIamportPersonKey, "iamport-person-key-secret-file", "hex key (at least 16 bytes) of the age gate's `personKey`, an HMAC-SHA256 of the CI (optional: without it no `personKey`)"},
	{envRedisPassword, "redis-password-file", "password of the Redis ACL user of the fleet tier (optional)"},
	{envFleetKey, "fleet-key-file", "the fleet key, at least 32 bytes, the same on every sidecar: names Redis keys and authenticates and encrypts what is shared (required with `-redis-addr`)"},
}

// mdEscape makes a help string literal text in a Markdown table cell.
var mdEscape = strings.NewReplacer(`\`, `\\`, `|`, `\|`, `*`, `\*`, `<`, `\<`, "`", "\\`")

// renderReference renders docs/configuration.md from the flag definitions.
func renderReference(fs *flag.FlagSet) (string, error) {
	var b strings.Builder
	p := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	p("# Configuration reference\n\n")
	p("<!-- Generated from the flag definitions in cmd/playerguard/config.go by\n")
	p("     TestConfigurationReference (cmd/playerguard/docs_test.go); do not edit.\n")
	p("     Regenerate with `make docs`. TestReferenceMatchesHelp checks it against\n")
	p("     `playerguard -h`. -->\n\n")
	p("Every setting is a flag, and every flag can also be set in the environment as\n")
	p("`%s<FLAG>`: upper case, `-` becomes `_` (`-cache-ttl 10m` or\n", envPrefix)
	p("`%s=10m`). A flag given on the command line wins over its\n", envName("cache-ttl"))
	p("variable. An unknown `%s` variable or a stray argument is an error, so a\n", envPrefix)
	p("typo cannot silently fall back to a default. Durations are Go durations\n")
	p("(`300ms`, `1m30s`, `2h`); booleans are `true` or `false` (`-allow-remote` alone\n")
	p("means true).\n\n")
	p("A missing or invalid setting stops playerguard with a one-line error naming\n")
	p("the setting and exit code 2; `playerguard -check-config` validates\n")
	p("everything, prints every problem, and exits 0 or 2.\n\n")

	p("## Secrets\n\n")
	p("Secrets come only from the environment or from files, never from a flag\n")
	p("value, which `ps` and `/proc/PID/cmdline` would show. Give each either as its\n")
	p("variable or as its file, not both. A file is read once at start; leading and\n")
	p("trailing white space is dropped, and an empty file is an error.\n\n")
	p("| secret | environment | or file flag |\n|---|---|---|\n")
	for _, s := range secretDocs {
		if fs.Lookup(s.fileFlag) == nil {
			return "", fmt.Errorf("secret %s: no flag -%s", s.env, s.fileFlag)
		}
		p("| %s | `%s` | `-%s` |\n", s.what, s.env, s.fileFlag)
	}

	p("\n## Flags\n\n")
	p("A default left empty means none; `-upstream` and `-app-id` are required\n")
	p("unless `-demo`.\n\n")
	p("| flag | value | environment | default | description |\n|---|---|---|---|---|\n")
	fs.VisitAll(func(f *flag.Flag) {
		value, usage := flag.UnquoteUsage(f)
		p("| `-%s` | %s | `%s` | %s | %s |\n", f.Name, code(value), envName(f.Name), code(f.DefValue), mdEscape.Replace(usage))
	})
	p("\n## Deployment\n\n")
	p("`deploy/README.md` shows these settings in use: a Kubernetes sidecar whose\n")
	p("secrets come from a Secret, and a systemd unit whose secrets are credentials.\n")
	return b.String(), nil
}

// code is s as a Markdown code span, or nothing for "".
func code(s string) string {
	if s == "" {
		return ""
	}
	return "`" + s + "`"
}

func TestConfigurationReference(t *testing.T) {
	want, err := renderReference(newFlagSet(&Config{}))
	if err != nil {
		t.Fatal(err)
	}
	if os.Getenv(updateDocsEnv) == "1" {
		if err := os.MkdirAll("../../docs", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(referencePath, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote %s", referencePath)
		return
	}
	got, err := os.ReadFile(referencePath)
	if err != nil {
		t.Fatalf("%v\nGenerate it with: make docs (%s=1 go test ./cmd/playerguard -run TestConfigurationReference)", err, updateDocsEnv)
	}
	if string(got) != want {
		gl, wl := strings.Split(string(got), "\n"), strings.Split(want, "\n")
		i := 0
		for i < len(gl) && i < len(wl) && gl[i] == wl[i] {
			i++
		}
		line := func(l []string) string {
			if i < len(l) {
				return l[i]
			}
			return "(end of file)"
		}
		t.Errorf("docs/configuration.md is out of date with the flags: line %d is\n\t%s\nwant\n\t%s\n"+
			"Regenerate it with: make docs (%s=1 go test ./cmd/playerguard -run TestConfigurationReference)",
			i+1, line(gl), line(wl), updateDocsEnv)
	}
}

// flagDoc is what one source says of a flag.
type flagDoc struct {
	value   string // placeholder: duration, host:port, ...
	env     string // only the reference has it
	def     string
	hasDef  bool // -h shows no default when it is the zero value
	usage   string
	zeroDef bool // the default is the zero value of its type
}

// helpFlags parses the flag list printed by flag.PrintDefaults.
func helpFlags(help string) map[string]flagDoc {
	out := map[string]flagDoc{}
	head := regexp.MustCompile(`^  -([a-z0-9-]+)(?: (\S+))?$`)
	defRe := regexp.MustCompile(` \(default (.*)\)$`)
	lines := strings.Split(help, "\n")
	for i := 0; i < len(lines); i++ {
		m := head.FindStringSubmatch(lines[i])
		if m == nil {
			continue
		}
		d := flagDoc{value: m[2]}
		var usage []string
		for i+1 < len(lines) && strings.HasPrefix(lines[i+1], "    \t") {
			i++
			usage = append(usage, strings.TrimPrefix(lines[i], "    \t"))
		}
		d.usage = strings.Join(usage, "\n")
		if dm := defRe.FindStringSubmatch(d.usage); dm != nil {
			d.usage = strings.TrimSuffix(d.usage, dm[0])
			d.def, d.hasDef = dm[1], true
			if s, err := strconv.Unquote(dm[1]); err == nil {
				d.def = s // string flags print %q
			}
		}
		out[m[1]] = d
	}
	return out
}

// referenceFlags parses the flags table of the reference.
func referenceFlags(doc string) map[string]flagDoc {
	out := map[string]flagDoc{}
	row := regexp.MustCompile("^\\| `-([a-z0-9-]+)` \\| (.*?) \\| `([A-Z0-9_]+)` \\| (.*?) \\| (.*) \\|$")
	unescape := regexp.MustCompile(`\\(.)`)
	uncode := func(s string) string { return strings.TrimSuffix(strings.TrimPrefix(s, "`"), "`") }
	for _, line := range strings.Split(doc, "\n") {
		m := row.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		def := uncode(m[4])
		out[m[1]] = flagDoc{
			value:   uncode(m[2]),
			env:     m[3],
			def:     def,
			hasDef:  true,
			usage:   unescape.ReplaceAllString(m[5], "$1"),
			zeroDef: def == "" || def == "false" || def == "0" || def == "0s",
		}
	}
	return out
}

// compareReference returns every difference between the reference doc and
// the -h output help: flags, value placeholders, help texts, defaults,
// environment variables, and the secret variables -h names.
func compareReference(doc, help string) []string {
	var problems []string
	bad := func(format string, a ...any) { problems = append(problems, fmt.Sprintf(format, a...)) }
	hf, rf := helpFlags(help), referenceFlags(doc)
	if len(hf) < 10 {
		return []string{fmt.Sprintf("parsed only %d flags from playerguard -h:\n%s", len(hf), help)}
	}
	for _, name := range slices.Sorted(maps.Keys(hf)) {
		h := hf[name]
		r, ok := rf[name]
		if !ok {
			bad("-%s: in playerguard -h, not in docs/configuration.md", name)
			continue
		}
		if r.value != h.value {
			bad("-%s: value %q in the reference, %q in -h", name, r.value, h.value)
		}
		if r.usage != h.usage {
			bad("-%s: help text differs:\nreference: %s\n-h:        %s", name, r.usage, h.usage)
		}
		switch {
		case h.hasDef && r.def != h.def:
			bad("-%s: default %q in the reference, %q in -h", name, r.def, h.def)
		case !h.hasDef && !r.zeroDef:
			bad("-%s: default %q in the reference, none in -h", name, r.def)
		}
		if r.env != envName(name) {
			bad("-%s: environment %s in the reference, playerguard reads %s", name, r.env, envName(name))
		}
	}
	for _, name := range slices.Sorted(maps.Keys(rf)) {
		if _, ok := hf[name]; !ok {
			bad("-%s: in docs/configuration.md, not in playerguard -h", name)
		}
	}
	for _, env := range regexp.MustCompile(`PLAYERGUARD_[A-Z_]*[A-Z]`).FindAllString(help, -1) {
		if !strings.Contains(doc, "`"+env+"`") {
			bad("playerguard -h names %s; docs/configuration.md does not", env)
		}
	}
	return problems
}

func helpOutput(t *testing.T) string {
	t.Helper()
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"-h"}, nil, &out, &errb); code != 0 {
		t.Fatalf("playerguard -h: exit %d: %s", code, errb.String())
	}
	return out.String()
}

// TestReferenceMatchesHelp checks docs/configuration.md as written against
// what playerguard -h prints, flag by flag: the same flags, value
// placeholders, help texts and defaults, and every secret variable -h names.
// Then it sets every documented variable to its documented default and
// expects playerguard to accept them all (no unknown variable) and to end
// up with the same configuration as with no settings at all.
func TestReferenceMatchesHelp(t *testing.T) {
	docBytes, err := os.ReadFile(referencePath)
	if err != nil {
		t.Fatalf("%v (generate it with: make docs)", err)
	}
	doc := string(docBytes)
	for _, p := range compareReference(doc, helpOutput(t)) {
		t.Error(p)
	}

	// The documented variables and defaults are the real ones.
	var environ []string
	for _, r := range referenceFlags(doc) {
		environ = append(environ, r.env+"="+r.def)
	}
	for _, s := range secretDocs {
		if !strings.Contains(doc, "| `"+s.env+"` | `-"+s.fileFlag+"` |") {
			t.Errorf("docs/configuration.md: no secrets row for %s and -%s", s.env, s.fileFlag)
		}
		environ = append(environ, s.env+"=x")
	}
	var out bytes.Buffer
	fromEnv, err := parseConfig(nil, environ, &out)
	if err != nil {
		t.Fatalf("playerguard refuses the documented variables set to their documented defaults: %v", err)
	}
	defaults, err := parseConfig(nil, nil, &out)
	if err != nil {
		t.Fatal(err)
	}
	defaults.AppSecretEnv, defaults.AdminKeyEnv, defaults.AdminTokenEnv = "x", "x", "x"
	defaults.IamportKeyEnv, defaults.IamportSecretEnv, defaults.IamportPersonEnv = "x", "x", "x"
	defaults.RedisPasswordEnv, defaults.FleetKeyEnv = "x", "x"
	if !reflect.DeepEqual(fromEnv, defaults) {
		t.Errorf("documented defaults, set through the environment, give\n%+v\nnot the built-in defaults\n%+v", fromEnv, defaults)
	}
}

// TestReferenceComparisonCatches changes the reference in one way at a time
// and expects compareReference to name the difference.
func TestReferenceComparisonCatches(t *testing.T) {
	good, err := renderReference(newFlagSet(&Config{}))
	if err != nil {
		t.Fatal(err)
	}
	help := helpOutput(t)
	if p := compareReference(good, help); len(p) > 0 {
		t.Fatalf("the rendered reference differs from -h: %q", p)
	}
	f := func(name, old, new, want string) {
		t.Helper()
		if !strings.Contains(good, old) {
			t.Fatalf("%s: the reference no longer contains %q; update this test", name, old)
		}
		for _, p := range compareReference(strings.Replace(good, old, new, 1), help) {
			if strings.Contains(p, want) {
				return
			}
		}
		t.Errorf("%s: want a difference containing %q", name, want)
	}
	f("missing flag", "| `-cache-ttl` |", "| `-cache-ttl-old` |", "-cache-ttl: in playerguard -h, not in")
	f("extra flag", "| `-cache-ttl` |", "| `-cache-ttl2` | `duration` | `PLAYERGUARD_CACHE_TTL2` | `1s` | x |\n| `-cache-ttl` |", "-cache-ttl2: in docs/configuration.md, not in playerguard -h")
	f("default", "| `5m0s` |", "| `10m` |", `-cache-ttl: default "10m" in the reference, "5m0s" in -h`)
	f("zero default", "`PLAYERGUARD_NEGATIVE_TTL` | `0s` |", "`PLAYERGUARD_NEGATIVE_TTL` | `1s` |", `-negative-ttl: default "1s" in the reference, none in -h`)
	f("help text", "bound on one upstream call", "bound on each upstream call", "-upstream-timeout: help text differs")
	f("value", "| `-listen` | `host:port` |", "| `-listen` | `addr` |", "-listen: value")
	f("environment", "`PLAYERGUARD_LOG_LEVEL`", "`PLAYERGUARD_LOGLEVEL`", "playerguard reads PLAYERGUARD_LOG_LEVEL")
	f("secret variable", "`PLAYERGUARD_ADMIN_TOKEN` |", "`PLAYERGUARD_TOKEN` |", "names PLAYERGUARD_ADMIN_TOKEN")
}

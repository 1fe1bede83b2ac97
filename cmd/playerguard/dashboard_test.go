package main

import (
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"playerguard/fleet"
	"playerguard/metrics"
	"playerguard/validator/iamport/iamporttest"
	"playerguard/validator/kakaologin/kakaologintest"
)

const dashboardFile = "../../deploy/grafana/playerguard.json"

// TestDashboardMetricsExist: every metric the dashboard and the alerts
// query is one a running playerguard exports, with the labels and label
// values the queries select on; the dashboard has its datasource and
// instance variables, every query uses both, and every query of a
// per-provider metric picks its providers; panel ids are unique, and the
// key set's series (kakao-oidc), the fleet tier's (-redis-addr) and the
// live sessions' (with -events-webhook) are all on a panel.
func TestDashboardMetricsExist(t *testing.T) {
	fake := startFake(t)
	// The kakao-login provider too, never asked: its series are on /metrics
	// from start-up, so selectors on provider="kakao-login" can be checked.
	kl, err := kakaologintest.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(kl.Close)
	// And kakao-oidc, its keys from a fake of Kakao's key endpoint: its key
	// set series are on /metrics from start-up too.
	ko := startOIDCFake(t)
	// And the iamport age gate, never asked: its token refresh series too.
	ia, err := iamporttest.Start("ik", "is")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ia.Close)
	// And the fleet tier, its Redis an address nobody listens on: a Redis
	// that is down is no error (the tier runs local-only, and keeps
	// trying), and the tier's series are on /metrics from start-up, their
	// label values created up front, so no Redis is needed to check them.
	// And an events webhook nobody listens on: playerguard_webhook_queue
	// is on /metrics only with one. No session is registered (no request
	// has a sessionId), so nothing is sent to it.
	noRedis, fleetKey := freeAddr(t), strings.Repeat("k", 32)
	pg := start(t, append(upstreamEnv(fake), "PLAYERGUARD_IAMPORT_KEY=ik", "PLAYERGUARD_IAMPORT_SECRET=is", "PLAYERGUARD_FLEET_KEY="+fleetKey),
		append([]string{"-breaker-failures", trafficBreakers, "-breaker-timeout", "30s",
			"-kakao-login-app-id", "100001", "-kakao-login-api", kl.URL(), "-iamport-api", ia.URL(),
			"-redis-addr", noRedis, "-events-webhook", "http://" + freeAddr(t) + "/kicks"}, oidcArgs(ko)...)...)
	driveTraffic(t, fake, pg, false)
	exp := parseExposition(t, scrape(t, pg))

	onDashboard := map[string]bool{} // metrics the panels query

	// check reports what a query's selectors ask of /metrics that is not there.
	check := func(where, expr string, dashboard bool) {
		t.Helper()
		sels, grouping, err := promqlSelectors(expr)
		if err != nil {
			t.Errorf("%s: %v\n%s", where, err, expr)
			return
		}
		if len(sels) == 0 {
			t.Errorf("%s: no metric in %q", where, expr)
		}
		for _, s := range sels {
			if !dashboard && s.name == "up" {
				continue // Prometheus' own, per target
			}
			for _, problem := range exp.check(s) {
				t.Errorf("%s: %s\n%s", where, problem, expr)
			}
			if !dashboard {
				continue
			}
			onDashboard[s.name] = true
			if !slices.Contains(s.matchers, matcher{"instance", "=~", "$instance"}) {
				t.Errorf("%s: %s does not filter on instance=~\"$instance\"\n%s", where, s.name, expr)
			}
			// A per-provider metric: provider=~"$provider", or the one
			// provider the panel is about.
			if exp.hasLabel(s.name, "provider") && !slices.ContainsFunc(s.matchers, func(m matcher) bool { return m.label == "provider" }) {
				t.Errorf("%s: %s does not filter on provider (provider=~\"$provider\", or one provider)\n%s", where, s.name, expr)
			}
		}
		// A by/without/on/ignoring label must be on one of the metrics.
		for _, l := range grouping {
			if !targetLabels[l] && !slices.ContainsFunc(sels, func(s selector) bool { return exp.hasLabel(s.name, l) }) {
				t.Errorf("%s: grouping label %q is on none of its metrics\n%s", where, l, expr)
			}
		}
	}

	var dash struct {
		SchemaVersion int
		Panels        []dashPanel
		Templating    struct {
			List []struct {
				Name, Type, Definition string
				Query                  json.RawMessage
				Datasource             *dashDatasource
				Multi, IncludeAll      bool
			}
		}
	}
	if err := json.Unmarshal([]byte(readFile(t, dashboardFile)), &dash); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	if dash.SchemaVersion < 38 {
		t.Errorf("schemaVersion %d, want 38 or later (Grafana 10)", dash.SchemaVersion)
	}

	vars := map[string]bool{}
	for _, v := range dash.Templating.List {
		vars[v.Name] = true
		switch v.Name {
		case "datasource":
			var q string
			if v.Type != "datasource" || json.Unmarshal(v.Query, &q) != nil || q != "prometheus" {
				t.Errorf("variable datasource: type %s, query %s; want a prometheus datasource variable", v.Type, v.Query)
			}
		case "instance":
			if v.Type != "query" || !v.Multi || !v.IncludeAll {
				t.Errorf("variable instance: type %s, multi %v, includeAll %v; want a multi query with All", v.Type, v.Multi, v.IncludeAll)
			}
			if v.Datasource == nil || v.Datasource.UID != "${datasource}" {
				t.Errorf("variable instance: datasource %+v, want ${datasource}", v.Datasource)
			}
			// Grafana 10 stores the query as an object; older ones as a string.
			var q struct{ Query string }
			if json.Unmarshal(v.Query, &q) != nil {
				json.Unmarshal(v.Query, &q.Query)
			}
			for _, text := range []string{q.Query, v.Definition} {
				m := labelValuesRe.FindStringSubmatch(text)
				if m == nil || m[2] != "instance" {
					t.Errorf("variable instance: query %q, want label_values(<metric>, instance)", text)
					continue
				}
				check("variable instance", m[1], false)
			}
		}
	}
	for _, name := range []string{"datasource", "instance"} {
		if !vars[name] {
			t.Errorf("no %s variable", name)
		}
	}

	targets := 0
	ids := map[int]string{}
	var walk func([]dashPanel)
	walk = func(panels []dashPanel) {
		for _, p := range panels {
			if other, dup := ids[p.ID]; dup || p.ID <= 0 {
				t.Errorf("panel %q: id %d (also %q); want a unique positive id", p.Title, p.ID, other)
			}
			ids[p.ID] = p.Title
			walk(p.Panels) // a collapsed row holds its panels
			if p.Type == "row" {
				continue
			}
			where := fmt.Sprintf("panel %q", p.Title)
			if len(p.Targets) == 0 {
				t.Errorf("%s: no queries", where)
			}
			if p.Datasource == nil || p.Datasource.UID != "${datasource}" {
				t.Errorf("%s: datasource %+v, want uid ${datasource}", where, p.Datasource)
			}
			for _, tg := range p.Targets {
				targets++
				if tg.Datasource == nil || tg.Datasource.UID != "${datasource}" {
					t.Errorf("%s, query %s: datasource %+v, want uid ${datasource}", where, tg.RefID, tg.Datasource)
				}
				check(fmt.Sprintf("%s, query %s", where, tg.RefID), tg.Expr, true)
			}
		}
	}
	walk(dash.Panels)
	t.Logf("%d dashboard queries checked", targets)

	// The key set's series (metrics.KeySet) are each on some panel.
	keySeries := 0
	for name := range exp.types {
		if strings.HasPrefix(name, "playerguard_key") {
			keySeries++
			if !onDashboard[name] {
				t.Errorf("%s: no panel queries %s", dashboardFile, name)
			}
		}
	}
	if keySeries == 0 {
		t.Errorf("no playerguard_key* series on /metrics of a playerguard with kakao-oidc")
	}

	// The fleet tier's series are exactly those package fleet registers (a
	// tier of the test's own, on a registry of its own, with the same
	// unreachable Redis), and each is on some panel.
	reg := prometheus.NewRegistry()
	tier, err := fleet.New(fleet.Config{Addrs: []string{noRedis}, Key: []byte(fleetKey), Registerer: reg})
	if err != nil {
		t.Fatalf("fleet.New with Redis down: %v", err)
	}
	tier.Close()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var registered, exposed []string
	for _, f := range families {
		registered = append(registered, f.GetName())
	}
	for name := range exp.types {
		if strings.HasPrefix(name, "playerguard_redis_") || strings.HasPrefix(name, "playerguard_fleet_") {
			exposed = append(exposed, name)
		}
	}
	slices.Sort(registered)
	slices.Sort(exposed)
	if len(registered) == 0 || !slices.Equal(exposed, registered) {
		t.Errorf("fleet series on /metrics of a playerguard with -redis-addr: %q; package fleet registers %q", exposed, registered)
	}
	for _, name := range registered {
		queried := onDashboard[name]
		if exp.types[name] == "histogram" {
			queried = onDashboard[name+"_bucket"] || onDashboard[name+"_count"] || onDashboard[name+"_sum"]
		}
		if !queried {
			t.Errorf("%s: no panel queries %s", dashboardFile, name)
		}
	}

	// The live sessions' series are those metrics.Sessions adds (on a
	// registry of the test's own, with a webhook and revalidation on, as
	// the playerguard above has), and each is on /metrics and on some
	// panel.
	sreg := prometheus.NewRegistry()
	sm := metrics.New(sreg, "test")
	base, err := sreg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	before := map[string]bool{}
	for _, f := range base {
		before[f.GetName()] = true
	}
	zero := func() float64 { return 0 }
	sm.Sessions(metrics.SessionGauges{Live: func() map[string]int { return nil }, Providers: []string{"kakao-games"}, WebhookQueue: zero, Behind: zero})
	all, err := sreg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sessionSeries []string
	for _, f := range all {
		if !before[f.GetName()] {
			sessionSeries = append(sessionSeries, f.GetName())
		}
	}
	if len(sessionSeries) == 0 {
		t.Errorf("metrics.Sessions registers no series")
	}
	for _, name := range sessionSeries {
		if _, ok := exp.types[name]; !ok {
			t.Errorf("%s: not on /metrics of a playerguard with -events-webhook", name)
		}
		queried := onDashboard[name]
		if exp.types[name] == "histogram" {
			queried = onDashboard[name+"_bucket"] || onDashboard[name+"_count"] || onDashboard[name+"_sum"]
		}
		if !queried {
			t.Errorf("%s: no panel queries %s", dashboardFile, name)
		}
	}

	// No two panels overlap on Grafana's 24-column grid.
	for i, a := range dash.Panels {
		for _, b := range dash.Panels[i+1:] {
			ga, gb := a.GridPos, b.GridPos
			if ga.X < gb.X+gb.W && gb.X < ga.X+ga.W && ga.Y < gb.Y+gb.H && gb.Y < ga.Y+ga.H {
				t.Errorf("panels %q %+v and %q %+v overlap", a.Title, ga, b.Title, gb)
			}
		}
		if a.GridPos.W <= 0 || a.GridPos.H <= 0 || a.GridPos.X+a.GridPos.W > 24 {
			t.Errorf("panel %q: gridPos %+v", a.Title, a.GridPos)
		}
	}

	// The panels the alerts' runbooks send the on-call to exist.
	alertsText := readFile(t, alertsFile)
	titles := map[string]bool{}
	for _, p := range dash.Panels {
		titles[p.Title] = true
	}
	for _, m := range regexp.MustCompile(`dashboard "([^"]+)"`).FindAllStringSubmatch(strings.Join(strings.Fields(alertsText), " "), -1) {
		if !titles[m[1]] {
			t.Errorf("%s cites dashboard panel %q; there is none", alertsFile, m[1])
		}
	}

	rules := alertExprs(t, alertsText)
	if len(rules) == 0 {
		t.Fatalf("no alert rules found in %s", alertsFile)
	}
	for name, expr := range rules {
		check("alert "+name, expr, false)
	}
	t.Logf("%d alert expressions checked", len(rules))
}

var labelValuesRe = regexp.MustCompile(`^label_values\(\s*(.+?)\s*,\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\)$`)

type dashDatasource struct{ Type, UID string }

type dashPanel struct {
	ID          int
	Type, Title string
	GridPos     struct{ X, Y, W, H int }
	Datasource  *dashDatasource
	Targets     []struct {
		Expr, RefID string
		Datasource  *dashDatasource
	}
	Panels []dashPanel
}

// alertExprs returns the expr of every alert in a rules file laid out as
// alerts.yml is: "- alert: Name", then "expr: <one line>" or "expr: |" and
// a more indented block. (The module has no YAML parser, and this file's
// layout is ours; TestPromtoolRules checks it parses.)
func alertExprs(t *testing.T, text string) map[string]string {
	t.Helper()
	exprs := map[string]string{}
	lines := strings.Split(text, "\n")
	alert := ""
	for i := 0; i < len(lines); i++ {
		line := strings.TrimRight(lines[i], " ")
		trimmed := strings.TrimLeft(line, " ")
		indent := len(line) - len(trimmed)
		if name, ok := strings.CutPrefix(trimmed, "- alert: "); ok {
			alert = strings.TrimSpace(name)
			if _, dup := exprs[alert]; dup {
				t.Errorf("%s: alert %s twice", alertsFile, alert)
			}
			exprs[alert] = ""
			continue
		}
		v, ok := strings.CutPrefix(trimmed, "expr:")
		if !ok || alert == "" {
			continue
		}
		v = strings.TrimSpace(v)
		if v == "|" || v == "|-" || v == ">" || v == ">-" {
			var block []string
			for i+1 < len(lines) {
				next := lines[i+1]
				if strings.TrimSpace(next) != "" && len(next)-len(strings.TrimLeft(next, " ")) <= indent {
					break
				}
				block = append(block, next)
				i++
			}
			v = strings.Join(block, "\n")
		} else if uq, err := strconv.Unquote(v); err == nil {
			v = uq
		} else if strings.HasPrefix(v, "'") {
			v = strings.ReplaceAll(strings.Trim(v, "'"), "''", "'")
		}
		exprs[alert] = v
		alert = ""
	}
	for name, expr := range exprs {
		if strings.TrimSpace(expr) == "" {
			t.Errorf("%s: alert %s: no expr found", alertsFile, name)
		}
	}
	return exprs
}

// selector is one vector selector of a PromQL expression.
type selector struct {
	name     string
	matchers []matcher
}

type matcher struct{ label, op, value string }

// PromQL words that are not metric names: keywords, and aggregators (which
// may be followed by "by (...)" rather than "(").
var promqlWords = map[string]bool{
	"and": true, "or": true, "unless": true, "bool": true, "offset": true, "inf": true, "nan": true, "atan2": true,
	"sum": true, "min": true, "max": true, "avg": true, "group": true, "stddev": true, "stdvar": true,
	"count": true, "count_values": true, "bottomk": true, "topk": true, "quantile": true,
}

// PromQL words followed by a parenthesised list of label names.
var promqlGrouping = map[string]bool{
	"by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true,
}

// promqlSelectors returns the vector selectors of a PromQL expression, which
// may hold Grafana variables ($x, ${x}, [$__rate_interval]), and the labels
// of its by, without, on, ignoring and group_left/right lists. It is a
// lexer, not a parser: an identifier is a metric name unless it is a
// keyword or aggregator, a function (followed by "("), a label in one of
// those lists or in a matcher, or part of a duration, number or string.
func promqlSelectors(expr string) (sels []selector, grouping []string, err error) {
	s := expr
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == '#': // comment
			for i < len(s) && s[i] != '\n' {
				i++
			}
		case c == '"' || c == '\'' || c == '`':
			_, n, err := promqlString(s[i:])
			if err != nil {
				return nil, nil, err
			}
			i += n
		case c == '[': // range or subquery: durations and Grafana variables
			j := strings.IndexByte(s[i:], ']')
			if j < 0 {
				return nil, nil, fmt.Errorf("unclosed [ at %d", i)
			}
			i += j + 1
		case c == '{':
			ms, n, err := promqlMatchers(s[i:])
			if err != nil {
				return nil, nil, err
			}
			sels = append(sels, selector{matchers: ms})
			i += n
		case c == '$': // a Grafana variable
			i++
			if i < len(s) && s[i] == '{' {
				j := strings.IndexByte(s[i:], '}')
				if j < 0 {
					return nil, nil, fmt.Errorf("unclosed ${ at %d", i)
				}
				i += j + 1
			}
			for i < len(s) && isIdentChar(s[i]) {
				i++
			}
		case c >= '0' && c <= '9' || c == '.': // numbers and durations: 0.99, 1e3, 5m, 1h30m
			for i < len(s) && (isIdentChar(s[i]) || s[i] == '.') {
				i++
			}
		case isIdentChar(c):
			j := i
			for j < len(s) && (isIdentChar(s[j]) || s[j] == ':') {
				j++
			}
			word := s[i:j]
			k := j
			for k < len(s) && strings.ContainsRune(" \t\r\n", rune(s[k])) {
				k++
			}
			lower := strings.ToLower(word)
			switch {
			case promqlGrouping[lower]:
				i = k
				if k < len(s) && s[k] == '(' {
					end := strings.IndexByte(s[k:], ')')
					if end < 0 {
						return nil, nil, fmt.Errorf("unclosed %s ( at %d", word, k)
					}
					for _, l := range strings.Split(s[k+1:k+end], ",") {
						if l = strings.TrimSpace(l); l != "" {
							grouping = append(grouping, l)
						}
					}
					i = k + end + 1
				}
			case promqlWords[lower], k < len(s) && s[k] == '(':
				i = j
			default:
				sel := selector{name: word}
				i = j
				if k < len(s) && s[k] == '{' {
					ms, n, err := promqlMatchers(s[k:])
					if err != nil {
						return nil, nil, err
					}
					sel.matchers = ms
					i = k + n
				}
				sels = append(sels, sel)
			}
		default:
			i++
		}
	}
	return sels, grouping, nil
}

func isIdentChar(c byte) bool {
	return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

// promqlMatchers parses {label op "value", ...} at the start of s and
// returns the matchers and the length consumed.
func promqlMatchers(s string) ([]matcher, int, error) {
	var ms []matcher
	i := 1 // past {
	for {
		for i < len(s) && strings.ContainsRune(" \t\r\n,", rune(s[i])) {
			i++
		}
		if i >= len(s) {
			return nil, 0, fmt.Errorf("unclosed { in %q", s)
		}
		if s[i] == '}' {
			return ms, i + 1, nil
		}
		j := i
		for j < len(s) && isIdentChar(s[j]) {
			j++
		}
		if j == i {
			return nil, 0, fmt.Errorf("want a label name at %q", s[i:])
		}
		m := matcher{label: s[i:j]}
		for j < len(s) && s[j] == ' ' {
			j++
		}
		for _, op := range []string{"=~", "!~", "!=", "="} {
			if strings.HasPrefix(s[j:], op) {
				m.op = op
				j += len(op)
				break
			}
		}
		if m.op == "" {
			return nil, 0, fmt.Errorf("want a matcher operator at %q", s[j:])
		}
		for j < len(s) && s[j] == ' ' {
			j++
		}
		v, n, err := promqlString(s[j:])
		if err != nil {
			return nil, 0, err
		}
		m.value = v
		ms = append(ms, m)
		i = j + n
	}
}

// promqlString reads the quoted string at the start of s.
func promqlString(s string) (string, int, error) {
	if s == "" || !strings.ContainsRune("\"'`", rune(s[0])) {
		return "", 0, fmt.Errorf("want a string at %q", s)
	}
	q := s[0]
	for i := 1; i < len(s); i++ {
		switch s[i] {
		case '\\':
			if q != '`' {
				i++
			}
		case q:
			raw := s[:i+1]
			if q == '\'' {
				raw = `"` + strings.ReplaceAll(raw[1:i], `"`, `\"`) + `"`
			}
			v, err := strconv.Unquote(raw)
			return v, i + 1, err
		}
	}
	return "", 0, fmt.Errorf("unclosed string %q", s)
}

// exposition is a parsed /metrics page: the type of each family, and the
// label sets of each sample name.
type exposition struct {
	types   map[string]string
	samples map[string][]map[string]string
}

func parseExposition(t *testing.T, page string) *exposition {
	t.Helper()
	e := &exposition{types: map[string]string{}, samples: map[string][]map[string]string{}}
	for line := range strings.Lines(page) {
		line = strings.TrimSpace(line)
		if f, ok := strings.CutPrefix(line, "# TYPE "); ok {
			if name, typ, ok := strings.Cut(f, " "); ok {
				e.types[name] = typ
			}
			continue
		}
		if line == "" || line[0] == '#' {
			continue
		}
		end := strings.IndexAny(line, "{ ")
		if end < 0 {
			t.Fatalf("cannot parse /metrics line %q", line)
		}
		name, labels := line[:end], map[string]string{}
		if line[end] == '{' {
			ms, _, err := promqlMatchers(line[end:])
			if err != nil {
				t.Fatalf("cannot parse /metrics line %q: %v", line, err)
			}
			for _, m := range ms {
				labels[m.label] = m.value
			}
		}
		e.samples[name] = append(e.samples[name], labels)
	}
	return e
}

// hasLabel says whether some sample of the metric has the label (le counts,
// on a histogram's _bucket series).
func (e *exposition) hasLabel(name, label string) bool {
	return slices.ContainsFunc(e.samples[name], func(l map[string]string) bool { _, ok := l[label]; return ok })
}

// plainAlternation is a regexp that is only literal label values: a|b|c.
var plainAlternation = regexp.MustCompile(`^[a-zA-Z0-9_]+(\|[a-zA-Z0-9_]+)*$`)

// Labels Prometheus attaches to every target: never on /metrics.
var targetLabels = map[string]bool{"instance": true, "job": true}

// check returns what selector s asks that the page does not have: the
// metric, the right type for a histogram series, the labels it matches on
// and at least one value each (non-)equality or regexp matcher names.
func (e *exposition) check(s selector) []string {
	if s.name == "" {
		return []string{fmt.Sprintf("selector %v has no metric name", s.matchers)}
	}
	samples, ok := e.samples[s.name]
	if !ok {
		return []string{fmt.Sprintf("metric %s is not on /metrics", s.name)}
	}
	var problems []string
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		base, ok := strings.CutSuffix(s.name, suffix)
		if !ok {
			continue
		}
		if typ := e.types[base]; typ != "histogram" && (typ != "summary" || suffix == "_bucket") {
			problems = append(problems, fmt.Sprintf("%s: %s is a %s, not a histogram", s.name, base, typ))
		}
	}
	for _, m := range s.matchers {
		if targetLabels[m.label] || strings.Contains(m.value, "$") {
			continue
		}
		var values []string
		for _, l := range samples {
			if v, ok := l[m.label]; ok && !slices.Contains(values, v) {
				values = append(values, v)
			}
		}
		if len(values) == 0 {
			problems = append(problems, fmt.Sprintf("%s has no label %q", s.name, m.label))
			continue
		}
		match := func(v string) bool { return v == m.value }
		if m.op == "=~" || m.op == "!~" {
			re, err := regexp.Compile("^(?:" + m.value + ")$")
			if err != nil {
				problems = append(problems, fmt.Sprintf("%s{%s%s%q}: %v", s.name, m.label, m.op, m.value, err))
				continue
			}
			match = re.MatchString
		}
		if !slices.ContainsFunc(values, match) {
			problems = append(problems, fmt.Sprintf("%s{%s%s%q}: no %s value matches (have %v)", s.name, m.label, m.op, m.value, m.label, values))
		}
		// A plain alternation, a|b|c: each one, so a typo in one shows.
		if (m.op == "=~" || m.op == "!~") && plainAlternation.MatchString(m.value) {
			for _, alt := range strings.Split(m.value, "|") {
				if !slices.Contains(values, alt) {
					problems = append(problems, fmt.Sprintf("%s{%s%s%q}: no %s value %q (have %v)", s.name, m.label, m.op, m.value, m.label, alt, values))
				}
			}
		}
	}
	return problems
}

// TestPromQLSelectors: the lexer TestDashboardMetricsExist relies on finds
// the metrics, and only the metrics, of the kinds of expressions the
// dashboard and the alerts use.
func TestPromQLSelectors(t *testing.T) {
	f := func(expr string, want ...string) {
		t.Helper()
		sels, _, err := promqlSelectors(expr)
		if err != nil {
			t.Fatalf("%s: %v", expr, err)
		}
		var got []string
		for _, s := range sels {
			ms := make([]string, 0, len(s.matchers))
			for _, m := range s.matchers {
				ms = append(ms, m.label+m.op+strconv.Quote(m.value))
			}
			got = append(got, s.name+"{"+strings.Join(ms, ",")+"}")
		}
		if !slices.Equal(got, want) {
			t.Errorf("%s:\n got %q\nwant %q", expr, got, want)
		}
	}
	f(`up{job=~".*playerguard.*"} == 0`, `up{job=~".*playerguard.*"}`)
	f(`histogram_quantile(0.99, sum by (job, instance, le) (rate(a_bucket[5m]))) > 1`, `a_bucket{}`)
	f(`sum(rate(a{instance=~"$instance"}[$__rate_interval])) by (le) / on (instance) group_left(version) b`,
		`a{instance=~"$instance"}`, `b{}`)
	f(`count(x{ instance =~ "$instance" } == 2) or vector(0)`, `x{instance=~"$instance"}`)
	f("a offset 1h and bool b unless c[1h] offset 5m", `a{}`, `b{}`, `c{}`)
	f(`min_over_time(s[1m]) >= 1 and max by (job) (max_over_time(s[1m])) == 2`, `s{}`, `s{}`)
	f(`rate(v{decision="kick",reason='lock"out'}[5m]) > 1e3 * 0.1`, `v{decision="kick",reason="lock\"out"}`)
	f("sum by (reason) (rate(k{o!=\"2xx\", r!~`a|b`}[${__range}]))", `k{o!="2xx",r!~"a|b"}`)
	f(`topk(3, x) # a comment naming not_a_metric`, `x{}`)

	_, grouping, err := promqlSelectors(`sum by (job, le) (a) / on(job) group_left (version, goversion) sum without (x) (b)`)
	if want := []string{"job", "le", "job", "version", "goversion", "x"}; err != nil || !slices.Equal(grouping, want) {
		t.Errorf("grouping labels %q, %v; want %q", grouping, err, want)
	}
}

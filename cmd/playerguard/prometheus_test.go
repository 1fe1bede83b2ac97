package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"playerguard/validator/kakaogames/kakaogamestest"
	"playerguard/validator/kakaooidc/kakaooidctest"
)

// The Prometheus files under deploy/, from this package's directory.
const (
	alertsFile      = "../../deploy/prometheus/alerts.yml"
	alertsTestFile  = "../../deploy/prometheus/alerts_test.yml"
	scrapeFile      = "../../deploy/prometheus/scrape.yml"
	podsJobName     = "playerguard-pods"
	trafficBreakers = "3" // -breaker-failures for the traffic tests
)

// TestPromtoolRules: the shipped rules parse, their unit tests pass, and the
// example Prometheus configuration (which loads them) is valid.
func TestPromtoolRules(t *testing.T) {
	promtool := requireTool(t, "promtool", "apt-get install -y prometheus")
	run := func(args ...string) {
		t.Helper()
		out, err := exec.Command(promtool, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	run("check", "rules", alertsFile)
	run("test", "rules", alertsTestFile)

	// Debian builds Prometheus without Kubernetes service discovery: there,
	// check the configuration with the pod job's discovery swapped for an
	// equivalent file_sd_configs (its relabelling is checked as written, and
	// TestRealPrometheus runs it).
	out, err := exec.Command(promtool, "check", "config", scrapeFile).CombinedOutput()
	if err == nil {
		return
	}
	if !strings.Contains(string(out), "field kubernetes_sd_configs not found") {
		t.Fatalf("promtool check config %s: %v\n%s", scrapeFile, err, out)
	}
	t.Logf("this promtool has no kubernetes_sd_configs (Debian's build); checking %s with file_sd_configs in its place", scrapeFile)
	dir := t.TempDir()
	cfg := withFileSD(t, readFile(t, scrapeFile), filepath.Join(dir, "pods.json"))
	abs, err := filepath.Abs(alertsFile)
	if err != nil {
		t.Fatal(err)
	}
	cfg = replaceOnce(t, cfg, "\n  - alerts.yml\n", "\n  - "+abs+"\n")
	writeFile(t, filepath.Join(dir, "pods.json"), "[]")
	writeFile(t, filepath.Join(dir, "prometheus.yml"), cfg)
	run("check", "config", filepath.Join(dir, "prometheus.yml"))
}

// withFileSD returns the scrape.yml text with the pod job's
// kubernetes_sd_configs block replaced by a file_sd_configs reading path.
func withFileSD(t *testing.T, cfg, path string) string {
	t.Helper()
	startJob := strings.Index(cfg, "  - job_name: "+podsJobName+"\n")
	if startJob < 0 {
		t.Fatalf("%s has no job %s", scrapeFile, podsJobName)
	}
	job := cfg[startJob:]
	from := strings.Index(job, "    kubernetes_sd_configs:\n")
	to := strings.Index(job, "    relabel_configs:\n")
	if from < 0 || to < from {
		t.Fatalf("job %s in %s: want kubernetes_sd_configs, then relabel_configs", podsJobName, scrapeFile)
	}
	sd := fmt.Sprintf("    file_sd_configs:\n      - files: [%q]\n        refresh_interval: 1s\n", path)
	return cfg[:startJob] + job[:from] + sd + job[to:]
}

// podsRelabelling returns the pod job's relabel_configs block, as written.
func podsRelabelling(t *testing.T) string {
	t.Helper()
	cfg := readFile(t, scrapeFile)
	startJob := strings.Index(cfg, "  - job_name: "+podsJobName+"\n")
	if startJob < 0 {
		t.Fatalf("%s has no job %s", scrapeFile, podsJobName)
	}
	job := cfg[startJob+1:]
	if next := strings.Index(job, "\n  - job_name:"); next >= 0 {
		job = job[:next+1]
	}
	i := strings.Index(job, "    relabel_configs:\n")
	if i < 0 {
		t.Fatalf("job %s in %s has no relabel_configs", podsJobName, scrapeFile)
	}
	return job[i:]
}

// TestPromtoolCheckMetrics: promtool's linter finds nothing to say about a
// /metrics page of a playerguard that has served allows, kicks and an
// outage.
func TestPromtoolCheckMetrics(t *testing.T) {
	promtool := requireTool(t, "promtool", "apt-get install -y prometheus")
	fake := startFake(t)
	ko := startOIDCFake(t)
	// With the fleet tier too (its Redis down: its series are there from
	// start-up, see TestDashboardMetricsExist).
	pg := start(t, append(upstreamEnv(fake), "PLAYERGUARD_FLEET_KEY="+strings.Repeat("k", 32)),
		append([]string{"-breaker-failures", trafficBreakers, "-breaker-timeout", "30s", "-redis-addr", freeAddr(t)}, oidcArgs(ko)...)...)
	driveTraffic(t, fake, pg, false)
	page := scrape(t, pg)
	if !strings.Contains(page, "playerguard_redis_connected") {
		t.Fatal("no fleet series to check")
	}

	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = strings.NewReader(page)
	out, err := cmd.CombinedOutput()
	if err != nil || len(out) > 0 {
		t.Fatalf("promtool check metrics: %v\n%s", err, out)
	}
}

// TestRealPrometheus: Debian's Prometheus scrapes a real playerguard every
// second, with alerts.yml loaded and the Kubernetes job's relabelling from
// scrape.yml applied to file-discovered "pods"; after allows, kicks and an
// outage that opens the breaker, its query API reports exactly the traffic
// sent, and the alerts that should be pending or firing are. That
// playerguard's kakao-oidc key endpoint is down from the start (never
// loaded); a second one, kakao-oidc only and refreshing every second, loses
// its key endpoint once it holds a set (stale).
func TestRealPrometheus(t *testing.T) {
	prom := requireTool(t, "prometheus", "apt-get install -y prometheus")
	fake := startFake(t)
	keysDown := startOIDCFake(t)
	keysDown.SetDown(true)
	pg := start(t, upstreamEnv(fake), append([]string{"-breaker-failures", trafficBreakers, "-breaker-timeout", "30s", "-cache-ttl", "1s"},
		oidcArgs(keysDown)...)...)

	keysLost := startOIDCFake(t)
	pgOIDC := start(t, nil, oidcArgs(keysLost, "-kakao-oidc-jwks-refresh", "1s", "-kakao-oidc-jwks-min-interval", "1s")...)
	for deadline := time.Now().Add(10 * time.Second); ; {
		resp, err := http.Get("http://" + pgOIDC.ops + "/readyz?provider=kakao-oidc")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("kakao-oidc not ready 10s after start-up: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	keysLost.SetDown(true) // the set held is kept, and ages

	// Simulated pods, as Kubernetes discovery would label them: only the
	// running pod's pg-ops port may become a target.
	pod := func(addr, name, port, phase string) map[string]any {
		return map[string]any{"targets": []string{addr}, "labels": map[string]string{
			"__meta_kubernetes_namespace":                        "game",
			"__meta_kubernetes_pod_name":                         name,
			"__meta_kubernetes_pod_container_name":               "playerguard",
			"__meta_kubernetes_pod_container_port_name":          port,
			"__meta_kubernetes_pod_phase":                        phase,
			"__meta_kubernetes_pod_node_name":                    "node-a",
			"__meta_kubernetes_pod_label_app_kubernetes_io_name": "gameserver",
		}}
	}
	pods, _ := json.Marshal([]any{
		pod(pg.ops, "gs-0", "pg-ops", "Running"),
		pod(pg.listen, "gs-0", "pg-api", "Running"), // the validation API: not a metrics port
		pod("127.0.0.1:9", "gs-0", "game", "Running"),
		pod("127.0.0.1:9", "gs-old", "pg-ops", "Succeeded"),
	})

	// The temp dir first: cleanups run last-in first-out, so Prometheus is
	// stopped before its storage is removed.
	dir := t.TempDir()
	alerts, err := filepath.Abs(alertsFile)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "pods.json"), string(pods))
	cfg := fmt.Sprintf(`global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
rule_files:
  - %q
scrape_configs:
  - job_name: playerguard
    static_configs:
      - targets: [%q]
  - job_name: %s
    static_configs:
      - targets: [%q]
  - job_name: %s
    file_sd_configs:
      - files: [%q]
        refresh_interval: 1s
%s`, alerts, pg.ops, oidcJobName, pgOIDC.ops, podsJobName, filepath.Join(dir, "pods.json"), podsRelabelling(t))
	writeFile(t, filepath.Join(dir, "prometheus.yml"), cfg)

	addr := freeAddr(t)
	api := "http://" + addr
	logs := newLockedBuffer()
	cmd := exec.Command(prom,
		"--config.file="+filepath.Join(dir, "prometheus.yml"),
		"--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr,
		"--log.level=info",
	)
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("prometheus configuration:\n%s\nprometheus log:\n%s", cfg, logs.String())
		}
	})

	deadline := time.Now().Add(30 * time.Second)
	waitFor := func(what string, ok func() (bool, string)) {
		t.Helper()
		for {
			done, last := ok()
			if done {
				return
			}
			select {
			case err := <-exited:
				exited <- err
				t.Fatalf("prometheus exited while waiting for %s: %v", what, err)
			default:
			}
			if time.Now().After(deadline) {
				t.Fatalf("after 30s, still waiting for %s; last: %s", what, last)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	waitFor("prometheus ready", func() (bool, string) {
		resp, err := http.Get(api + "/-/ready")
		if err != nil {
			return false, err.Error()
		}
		resp.Body.Close()
		return resp.StatusCode == 200, resp.Status
	})
	// A scrape before any traffic: rates need the counters' zeros.
	waitFor("a first scrape of playerguard", func() (bool, string) {
		v, desc := promValue(t, api, `up{job="playerguard"}`)
		return v == 1, desc
	})

	sent := driveTraffic(t, fake, pg, true)
	t.Logf("sent: %+v", sent)

	job := `job="playerguard"`
	kg := job + `,provider="kakao-games"`
	oidc := `job="` + oidcJobName + `"`
	want := []struct {
		query string
		value float64
	}{
		{`playerguard_breaker_state{` + kg + `}`, 2},
		{`sum(playerguard_validations_total{` + job + `,decision="kick",reason="lockout"})`, float64(sent.lockouts)},
		{`sum(playerguard_validations_total{` + job + `,decision="kick",reason="sanction"})`, float64(sent.sanctions)},
		{`sum(playerguard_validations_total{` + job + `,decision="allow"})`, float64(sent.allows)},
		{`sum(playerguard_validations_total{` + job + `,decision="allow",source="stale"})`, float64(sent.stale)},
		{`sum(playerguard_validations_total{` + job + `,decision="unavailable"})`, float64(sent.unavailable)},
		{`playerguard_upstream_requests_total{` + kg + `,outcome="5xx"}`, float64(sent.failures)},
		{`playerguard_coalesced_requests_total{` + kg + `}`, float64(sent.coalesced)},
		{`playerguard_cache_stale_serves_total{` + kg + `}`, float64(sent.stale)},
		{`count(ALERTS{` + job + `,alertname="PlayerguardServingStale",alertstate="firing"})`, 1},
		{`count(ALERTS{` + job + `,alertname="PlayerguardUpstreamErrorRatioHigh"})`, 1},
		// The key sets: never loaded (every fetch failing), and loaded,
		// then kept past twice its refresh interval.
		{`playerguard_keys{` + job + `,provider="kakao-oidc"}`, 0},
		{`sum(playerguard_key_fetches_total{` + job + `,outcome="ok"})`, 0},
		{`count(sum(playerguard_key_fetches_total{` + job + `,outcome!="ok"}) > 0)`, 1},
		{`count(ALERTS{` + job + `,alertname="PlayerguardKeySetNeverLoaded",provider="kakao-oidc",alertstate="pending"})`, 1},
		{`playerguard_keys{` + oidc + `}`, 1},
		{`playerguard_key_set_refresh_interval_seconds{` + oidc + `}`, 1},
		{`count(ALERTS{` + oidc + `,alertname="PlayerguardKeySetStale",provider="kakao-oidc",alertstate="pending"})`, 1},
		{`count(ALERTS{` + oidc + `,alertname="PlayerguardKeySetNeverLoaded"}) or vector(0)`, 0},
		// The pod job, relabelled as scrape.yml says, scrapes the same sidecar.
		{`up{job="` + podsJobName + `",instance="game/gs-0",namespace="game",pod="gs-0",container="playerguard",node="node-a",app="gameserver"}`, 1},
		{`count(up{job="` + podsJobName + `"})`, 1},
	}
	waitFor("prometheus to see the traffic", func() (bool, string) {
		var wrong []string
		for _, w := range want {
			if v, desc := promValue(t, api, w.query); v != w.value {
				wrong = append(wrong, fmt.Sprintf("%s = %s, want %v", w.query, desc, w.value))
			}
		}
		return len(wrong) == 0, "\n\t" + strings.Join(wrong, "\n\t")
	})

	// Every rule evaluates cleanly against real series, and every alert
	// carries what an on-call needs.
	var rules struct {
		Data struct {
			Groups []struct {
				Name  string
				Rules []struct {
					Name, Health, LastError, Type string
					Labels, Annotations           map[string]string
				}
			}
		}
	}
	promGet(t, api+"/api/v1/rules", &rules)
	n := 0
	for _, g := range rules.Data.Groups {
		if g.Name != "playerguard" {
			t.Errorf("unexpected rule group %q", g.Name)
		}
		for _, r := range g.Rules {
			n++
			if r.Type != "alerting" || r.Health != "ok" || r.LastError != "" {
				t.Errorf("rule %s: type %s, health %s, %s", r.Name, r.Type, r.Health, r.LastError)
			}
			if !strings.HasPrefix(r.Name, "Playerguard") {
				t.Errorf("alert %s: want a name starting Playerguard", r.Name)
			}
			if s := r.Labels["severity"]; s != "critical" && s != "warning" {
				t.Errorf("alert %s: severity %q, want critical or warning", r.Name, s)
			}
			for _, a := range []string{"summary", "description", "runbook"} {
				if strings.TrimSpace(r.Annotations[a]) == "" {
					t.Errorf("alert %s: no %s annotation", r.Name, a)
				}
			}
		}
	}
	if want := len(alertExprs(t, readFile(t, alertsFile))); n != want {
		t.Errorf("prometheus loaded %d rules from %s, want its %d alerts", n, alertsFile, want)
	}
}

// oidcJobName is TestRealPrometheus' job for its kakao-oidc-only sidecar.
const oidcJobName = "playerguard-oidc"

// startOIDCFake starts a fake of Kakao's key endpoint (one key, kid-1),
// closed when the test ends.
func startOIDCFake(t *testing.T) *kakaooidctest.Server {
	t.Helper()
	ko, err := kakaooidctest.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ko.Close)
	return ko
}

// oidcArgs are the flags that enable kakao-oidc with ko's key set, then
// extra.
func oidcArgs(ko *kakaooidctest.Server, extra ...string) []string {
	return append([]string{"-kakao-oidc-audiences", "k1", "-kakao-oidc-jwks-url", ko.URL()}, extra...)
}

// promValue runs an instant query and returns its single value (-1 when
// the result is empty or more than one sample) and a description.
func promValue(t *testing.T, api, query string) (float64, string) {
	t.Helper()
	var res struct {
		Status string
		Error  string
		Data   struct {
			Result []struct {
				Metric map[string]string
				Value  [2]any
			}
		}
	}
	promGet(t, api+"/api/v1/query?query="+url.QueryEscape(query), &res)
	if res.Status != "success" {
		t.Fatalf("query %s: %s", query, res.Error)
	}
	switch len(res.Data.Result) {
	case 0:
		return -1, "no result"
	case 1:
	default:
		return -1, fmt.Sprintf("%d series: %v", len(res.Data.Result), res.Data.Result)
	}
	s, _ := res.Data.Result[0].Value[1].(string)
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return -1, fmt.Sprintf("value %q", s)
	}
	return v, s
}

func promGet(t *testing.T, u string, into any) {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	// The API answers 400/422 with a JSON error body; decode it either way.
	if err := json.Unmarshal(body, into); err != nil {
		t.Fatalf("GET %s: %s: %v\n%s", u, resp.Status, err, body)
	}
}

// sentTraffic is what driveTraffic sent, as playerguard answered it.
type sentTraffic struct {
	allows, stale, lockouts, sanctions, invalid, unavailable int
	failures                                                 int // upstream calls that answered 5xx
	coalesced                                                int // sanction validations that shared another's upstream call
}

// driveTraffic makes playerguard (started with -breaker-failures 3, and
// -cache-ttl 1s when stale) answer allows from the upstream and the cache,
// lockout, sanction and invalid-token kicks, concurrent sanctions that
// coalesce, a bad request, then an outage (every upstream call answers 500)
// that opens the breaker; with stale, an allow whose cache entry has expired
// is then served stale. Every answer is checked on the way.
func driveTraffic(t *testing.T, fake *kakaogamestest.Server, pg *proc, stale bool) sentTraffic {
	t.Helper()
	var sent sentTraffic
	// check counts one answer; it runs on the test goroutine only.
	check := func(token, d, r, s, decision, reason, source string) {
		t.Helper()
		if d != decision || r != reason || s != source {
			t.Fatalf("token %s: %s/%s/%s, want %s/%s/%s", token, d, r, s, decision, reason, source)
		}
		switch {
		case d == "allow":
			sent.allows++
			if s == "stale" {
				sent.stale++
			}
		case r == "lockout":
			sent.lockouts++
		case r == "sanction":
			sent.sanctions++
		case r == "invalid_token":
			sent.invalid++
		case d == "unavailable":
			sent.unavailable++
		}
	}
	expect := func(token, decision, reason, source string) {
		t.Helper()
		d, r, s := pgValidate(t, pg, token)
		check(token, d, r, s, decision, reason, source)
	}

	fake.Set("tok-allow-1", kakaogamestest.Allow("909428", "p1", "normal"))
	fake.Set("tok-allow-2", kakaogamestest.Allow("909428", "p2", "normal"))
	fake.Set("tok-locked", kakaogamestest.Lockout("909428", "p3"))
	sanction := kakaogamestest.Sanction("909428", "p4")
	sanction.Delay = 300 * time.Millisecond // long enough for the burst below to coalesce
	fake.Set("tok-sanctioned", sanction)

	for _, tok := range []string{"tok-allow-1", "tok-allow-2"} {
		expect(tok, "allow", "ok", "upstream")
		// The cache's Set is asynchronous (ristretto): until it lands, the
		// upstream answers again, or (in the write's last microseconds)
		// the allow's flight is shared: counted as coalesced.
		fromUpstream := 1
		for deadline := time.Now().Add(5 * time.Second); ; {
			d, r, s := pgValidate(t, pg, tok)
			if s == "cache" || time.Now().After(deadline) {
				check(tok, d, r, s, "allow", "ok", "cache")
				break
			}
			check(tok, d, r, s, "allow", "ok", "upstream")
			fromUpstream++
			time.Sleep(10 * time.Millisecond)
		}
		sent.coalesced += fromUpstream - int(fake.TokenCalls(tok))
	}
	for range 3 {
		expect("tok-locked", "kick", "lockout", "upstream") // kicks are never cached
	}
	expect("tok-unknown", "kick", "invalid_token", "upstream")

	const burst = 5
	answers := make(chan [3]string, burst)
	var wg sync.WaitGroup
	for range burst {
		wg.Go(func() {
			d, r, s := pgValidate(t, pg, "tok-sanctioned")
			answers <- [3]string{d, r, s}
		})
	}
	wg.Wait()
	close(answers)
	for a := range answers {
		check("tok-sanctioned", a[0], a[1], a[2], "kick", "sanction", "upstream")
	}
	sent.coalesced += burst - int(fake.TokenCalls("tok-sanctioned"))

	resp, err := http.Post("http://"+pg.listen+"/v1/validate", "application/json", strings.NewReader(`{"accessToken":"x"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 400 {
		t.Fatalf("request without platform: %s, want 400", resp.Status)
	}

	if stale {
		time.Sleep(1100 * time.Millisecond) // -cache-ttl 1s: let tok-allow-1's allow expire
	}
	outage := kakaogamestest.Error(500)
	fake.SetOverride(&outage)
	for i := range 3 { // -breaker-failures 3
		expect(fmt.Sprintf("tok-outage-%d", i), "unavailable", "upstream_unavailable", "upstream")
		sent.failures++
	}
	calls := fake.Calls()
	expect("tok-outage-3", "unavailable", "circuit_open", "upstream")
	if stale {
		expect("tok-allow-1", "allow", "ok", "stale")
	} else {
		expect("tok-allow-1", "allow", "ok", "cache")
	}
	if fake.Calls() != calls {
		t.Fatalf("the upstream was called with the breaker open")
	}
	return sent
}

// pgValidate asks playerguard about a token and returns its decision,
// reason and source headers.
func pgValidate(t *testing.T, pg *proc, token string) (decision, reason, source string) {
	t.Helper()
	body := fmt.Sprintf(`{"accessToken":%q,"platform":"mobile"}`, token)
	resp, err := http.Post("http://"+pg.listen+"/v1/validate", "application/json", strings.NewReader(body))
	if err != nil {
		t.Error(err)
		return
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	h := resp.Header
	return h.Get("X-Playerguard-Decision"), h.Get("X-Playerguard-Reason"), h.Get("X-Playerguard-Source")
}

// scrape returns playerguard's /metrics page.
func scrape(t *testing.T, pg *proc) string {
	t.Helper()
	resp, err := http.Get("http://" + pg.ops + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET /metrics: %s %v", resp.Status, err)
	}
	return string(body)
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func replaceOnce(t *testing.T, s, old, new string) string {
	t.Helper()
	if strings.Count(s, old) != 1 {
		t.Fatalf("want exactly one %q in:\n%s", old, s)
	}
	return strings.Replace(s, old, new, 1)
}

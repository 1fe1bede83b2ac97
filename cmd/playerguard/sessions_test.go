package main

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"playerguard/internal/testkit"
	"playerguard/metrics"
	"playerguard/validator"
	"playerguard/validator/iamport"
	"playerguard/validator/kakaogames"
	"playerguard/validator/kakaogames/kakaogamestest"
	"playerguard/validator/kakaologin"
	"playerguard/validator/kakaologin/kakaologintest"
	"playerguard/validator/kakaooidc"
)

// TestSessionsEveryProvider: a validation with a sessionId registers a
// session under each provider, and each one's revalidation (its own
// copy of the credential asked again: an access token, an ID token with
// its nonce, an imp_uid with its minimum age) keeps it.
func TestSessionsEveryProvider(t *testing.T) {
	cfg, err := parseConfig([]string{"-demo"}, nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	var sec secrets
	fakes, err := startDemo(cfg, &sec)
	if err != nil {
		t.Fatal(err)
	}
	defer fakes.Close()
	reg := prometheus.NewRegistry()
	m := metrics.New(reg, "test")
	ps, err := cfg.providers(sec, nil, m, nil)
	if err != nil {
		t.Fatal(err)
	}
	v, err := validator.New(validator.Config{CacheTTL: time.Minute, Metrics: m,
		Sessions: validator.SessionsConfig{RevalidateEvery: 300 * time.Millisecond, RevalidateMaxRPS: 100}}, ps...)
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	defer v.SetDraining()
	api := testkit.Serve(t, v.NewServer())

	allow := func(expect string) bool { return expect == "allow" || strings.HasPrefix(expect, "allow ") }
	var kg kakaogamestest.DemoPlayer
	for _, p := range kakaogamestest.Demo(cfg.AppID) {
		if allow(p.Expect) {
			kg = p
			break
		}
	}
	var kl kakaologintest.DemoUser
	for _, u := range kakaologintest.Demo() {
		if allow(u.Expect) {
			kl = u
			break
		}
	}
	auds, _ := kakaooidc.ParseAudiences(cfg.KakaoOIDCAudiences)
	var idToken, oidcUser string
	for _, tk := range fakes.ko.Demo(auds[0], time.Now()) {
		if allow(tk.Expect) {
			idToken, oidcUser = tk.Token, tk.UserID
			break
		}
	}
	var impUID string
	for _, c := range fakes.iaCerts {
		if allow(c.Expect) {
			impUID = c.ImpUID
			break
		}
	}
	cases := []struct{ provider, path, body, player string }{
		{"kakao-games", kakaogames.Path, `{"accessToken":"` + kg.Token + `","platform":"` + kg.Platform + `","playerId":"` + kg.PlayerID + `","sessionId":"s-kg"}`, kg.PlayerID},
		{"kakao-login", kakaologin.Path, `{"accessToken":"` + kl.Token + `","playerId":"` + kl.UserID + `","sessionId":"s-kl"}`, kl.UserID},
		{"kakao-oidc", kakaooidc.Path, `{"idToken":"` + idToken + `","playerId":"` + oidcUser + `","sessionId":"s-ko"}`, oidcUser},
		{"iamport", iamport.Path, `{"impUid":"` + impUID + `","playerId":"demo-player-x","minAge":19,"sessionId":"s-ia"}`, "demo-player-x"},
	}
	for _, c := range cases {
		req, _ := http.NewRequest("POST", api+c.path, strings.NewReader(c.body))
		if r := testkit.Do(t, http.DefaultClient, req); r.Status != 200 {
			t.Fatalf("%s: %d %s", c.provider, r.Status, r.Raw)
		}
		r := testkit.Do(t, http.DefaultClient, mustGet(t, api+"/v1/sessions?playerId="+c.player))
		var list struct {
			Sessions []struct{ SessionID, Provider string }
		}
		json.Unmarshal([]byte(r.Raw), &list)
		if len(list.Sessions) != 1 || list.Sessions[0].Provider != c.provider {
			t.Errorf("%s: sessions %s", c.provider, r.Raw)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for _, c := range cases {
		for testkit.Metric(t, reg, "playerguard_revalidations_total", "provider", c.provider, "outcome", "keep") < 2 {
			if time.Now().After(deadline) {
				t.Fatalf("%s: no revalidation kept the session (unknown %v, kick %v)", c.provider,
					testkit.Metric(t, reg, "playerguard_revalidations_total", "provider", c.provider, "outcome", "unknown"),
					testkit.Metric(t, reg, "playerguard_revalidations_total", "provider", c.provider, "outcome", "kick"))
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	if got := testkit.Metric(t, reg, "playerguard_sessions", "provider", "iamport"); got != 1 {
		t.Errorf("playerguard_sessions{iamport} = %v", got)
	}
}

// TestDrainEndsEventStreams: an open /v1/events stream neither holds a
// drain open nor is cut mid-event: SIGTERM ends it, and playerguard
// exits promptly.
func TestDrainEndsEventStreams(t *testing.T) {
	fake := startFake(t)
	pg := start(t, upstreamEnv(fake))
	stream := testkit.OpenSSE(t, "http://"+pg.listen+"/v1/events", "")
	pg.sigtermDrains(t, 2*time.Second, 10*time.Second, "an open event stream held the drain open", "one event stream")
	if rest := stream.Rest(t, 5*time.Second); len(rest) != 0 {
		t.Errorf("events on a drained stream: %+v", rest)
	}
}

package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"playerguard/internal/testkit"
	"playerguard/validator"
	"playerguard/validator/iamport"
	"playerguard/validator/iamport/iamporttest"
	"playerguard/validator/kakaogames"
	"playerguard/validator/kakaogames/kakaogamestest"
	"playerguard/validator/kakaologin"
	"playerguard/validator/kakaologin/kakaologintest"
)

// TestBothProviders: one playerguard with Kakao Games and Kakao Login, as
// cmd wires them: their cache entries are their own even for the same
// token, /readyz names both, the unknown-path answer lists every endpoint,
// and /admin/purge's provider purges that provider's key and refuses what
// the provider does not take.
func TestBothProviders(t *testing.T) {
	kgFake, err := kakaogamestest.Start(kakaogamestest.Config{AppID: "909428", AppSecret: "s3cret", AdminKey: "k3y"})
	if err != nil {
		t.Fatal(err)
	}
	defer kgFake.Close()
	klFake, err := kakaologintest.Start()
	if err != nil {
		t.Fatal(err)
	}
	defer klFake.Close()
	const tok = "shared-token-0123456789"
	kgFake.Set(tok, kakaogamestest.Allow("909428", "777", "normal"))
	klFake.Set(tok, kakaologintest.Invalid())

	cfg := &Config{Upstream: kgFake.URL(), AppID: "909428", KakaoLoginAppID: "100001", KakaoLoginAPI: klFake.URL(),
		UpstreamTimeout: time.Second, MaxUpstreamConns: 16, AllowStatus: "normal"}
	ps, err := cfg.providers(secrets{appSecret: "s3cret", adminKey: "k3y"}, nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	v, err := validator.New(validator.Config{CacheTTL: time.Minute, Unconfigured: cfg.unconfigured()}, ps...)
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := v.NewServer()
	go srv.Serve(ln)
	defer srv.ShutdownWithContext(context.Background())
	api := "http://" + ln.Addr().String()
	ops := httptest.NewServer(v.OpsHandler(http.NotFoundHandler(), "admintok"))
	defer ops.Close()

	post := func(url, body string, header ...string) testkit.Reply {
		t.Helper()
		req, _ := http.NewRequest("POST", url, strings.NewReader(body))
		for i := 0; i+1 < len(header); i += 2 {
			req.Header.Set(header[i], header[i+1])
		}
		r := testkit.Do(t, http.DefaultClient, req)
		v.Settle()
		return r
	}
	// The same token: an allow on one provider, a kick on the other, each
	// answered as its own provider says. (The kick's purge of its token
	// reaches the other provider's allow too: purge tags are not per
	// provider, which costs a call, never an answer.)
	for range 2 {
		if r := post(api+kakaogames.Path, `{"accessToken":"`+tok+`","platform":"pc"}`); r.Status != 200 {
			t.Fatalf("kakao-games: %d %s", r.Status, r.Raw)
		}
		if r := post(api+kakaologin.Path, `{"accessToken":"`+tok+`"}`); r.Status != 403 || r.Body["reason"] != "invalid_token" {
			t.Fatalf("kakao-login: %d %s", r.Status, r.Raw)
		}
	}
	if klFake.TokenCalls(tok) != 2 {
		t.Errorf("kakao-login calls %d, want 2: its kicks are not cached, nor answered by the other's allow", klFake.TokenCalls(tok))
	}

	r := testkit.Do(t, http.DefaultClient, mustGet(t, ops.URL+"/readyz"))
	if r.Status != 200 || !strings.Contains(r.Raw, "providers: kakao-games, kakao-login") {
		t.Errorf("/readyz: %d %q", r.Status, r.Raw)
	}
	r = post(api+"/v1/nope", "")
	want := "unknown path: use POST /v1/validate or the drop-in POST /service/v5/auth/validation or POST /v1/kakao-login/validate or GET /v1/events or GET /v1/sessions?playerId=... or DELETE /v1/sessions/{sessionId}"
	if r.Status != 404 || r.Body["error"] != want {
		t.Errorf("unknown path: %d %s, want %q", r.Status, r.Raw, want)
	}

	// A Kakao Login allow, cached, then purged by provider and key.
	klFake.Set("kl-token-abcdefgh", kakaologintest.Valid(4000000001, 100001, 21600))
	check := func() string {
		return post(api+kakaologin.Path, `{"accessToken":"kl-token-abcdefgh","playerId":"4000000001"}`).Body["source"].(string)
	}
	if s1, s2 := check(), check(); s1 != "upstream" || s2 != "cache" {
		t.Fatalf("sources %s, %s", s1, s2)
	}
	purge := func(body string) testkit.Reply {
		return post(ops.URL+"/admin/purge", body, "Authorization", "Bearer admintok")
	}
	for body, wantErr := range map[string]string{
		`{"provider":"kakao-login","platform":"pc","accessToken":"kl-token-abcdefgh"}`: "provider kakao-login takes no platform",
		`{"provider":"kakao-nope","accessToken":"kl-token-abcdefgh"}`:                  `provider "kakao-nope" is not configured (configured: kakao-games, kakao-login)`,
		`{"provider":"kakao-login","accessToken":"kl-token-abcdefgh","playerId":"x1"}`: "playerId must be the Kakao user id",
	} {
		if r := purge(body); r.Status != 400 || !strings.Contains(r.Body["error"].(string), wantErr) {
			t.Errorf("purge %s: %d %s, want 400 naming %q", body, r.Status, r.Raw, wantErr)
		}
	}
	if s := check(); s != "cache" {
		t.Fatalf("a refused purge purged: source %s", s)
	}
	// A key purge without provider is the first configured's (Kakao
	// Games'): this key stays.
	if r := purge(`{"accessToken":"kl-token-abcdefgh","platform":"pc","playerId":"4000000001"}`); r.Status != 200 {
		t.Fatalf("purge: %d %s", r.Status, r.Raw)
	}
	if s := check(); s != "cache" {
		t.Fatalf("a kakao-games purge purged a kakao-login key: source %s", s)
	}
	if r := purge(`{"provider":"kakao-login","accessToken":"kl-token-abcdefgh","playerId":"4000000001"}`); r.Status != 200 || r.Body["purged"] != "key" {
		t.Fatalf("purge: %d %s", r.Status, r.Raw)
	}
	if s := check(); s != "upstream" {
		t.Errorf("after the purge: source %s, want upstream", s)
	}
}

func mustGet(t *testing.T, url string) *http.Request {
	t.Helper()
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

// TestAgeGateWired: the iamport age gate as cmd wires it from its secrets
// and flags: the person key, the default minimum age, the year rule.
func TestAgeGateWired(t *testing.T) {
	fake, err := iamporttest.Start("ik", "is")
	if err != nil {
		t.Fatal(err)
	}
	defer fake.Close()
	born := time.Now().In(iamport.Seoul).Year() - 19 // 19 this year: the year rule admits, full age may not
	fake.Set("imp_1", iamporttest.Cert{Certified: true, Birthday: strconv.Itoa(born) + "-12-31", CertifiedAt: time.Now().Unix(), UniqueKey: "ci-1"})
	env := []string{"PLAYERGUARD_IAMPORT_KEY=ik", "PLAYERGUARD_IAMPORT_SECRET=is", "PLAYERGUARD_IAMPORT_PERSON_KEY_SECRET=00112233445566778899aabbccddeeff"}
	cfg, err := parseConfig([]string{"-iamport-api", fake.URL(), "-age-rule", "year"}, env, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	sec, errs := cfg.resolveSecrets()
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	ps, err := cfg.providers(sec, nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	v, err := validator.New(validator.Config{CacheTTL: time.Minute, Unconfigured: cfg.unconfigured()}, ps...)
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	api := testkit.Serve(t, v.NewServer())
	req, _ := http.NewRequest("POST", api+iamport.Path, strings.NewReader(`{"impUid":"imp_1","playerId":"p1"}`))
	r := testkit.Do(t, http.DefaultClient, req)
	if r.Status != 200 || r.Body["minAge"] != float64(19) || len(r.Body["personKey"].(string)) != 64 {
		t.Errorf("age gate: %d %s", r.Status, r.Raw)
	}
	req, _ = http.NewRequest("POST", api+kakaologin.Path, strings.NewReader(`{"accessToken":"t"}`))
	if r := testkit.Do(t, http.DefaultClient, req); r.Status != 404 || !strings.Contains(r.Raw, "kakao-login is not configured") {
		t.Errorf("an unconfigured provider: %d %s", r.Status, r.Raw)
	}
}

package kakaooidc

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"playerguard/internal/testkit"
	"playerguard/validator"
	"playerguard/validator/kakaologin"
	"playerguard/validator/kakaooidc/kakaooidctest"
)

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// TestAllow: a valid token is an allow with the user object (profile
// claims only when present); the second validation is a cache hit.
func TestAllow(t *testing.T) {
	h := newHarness(t, setup{})
	c := h.claims(userA)
	c.Picture = "https://example.com/p.png"
	tok := h.fake.Sign("kid-1", c)
	r := h.check(tok, "", userA)
	h.expect(r, httpOK, "allow", "ok", "upstream")
	user, _ := r.Body["user"].(map[string]any)
	want := map[string]any{"id": userA, "exp": float64(c.Exp.Unix()), "authTime": float64(c.AuthTime.Unix()),
		"nickname": "hana", "picture": "https://example.com/p.png", "email": "hana-secret@example.com"}
	if len(user) != len(want) {
		t.Fatalf("user %v, want %v", user, want)
	}
	for k, v := range want {
		if user[k] != v {
			t.Errorf("user.%s = %v, want %v", k, user[k], v)
		}
	}
	hit := h.check(tok, "", userA)
	h.expect(hit, httpOK, "allow", "ok", "cache")
	if !strings.Contains(hit.Raw, `"user":{"id":"`+userA+`"`) {
		t.Errorf("cache hit body %s", hit.Raw)
	}

	// No profile claims: none in the answer; no claim: the token's user.
	bare := kakaooidctest.Claims{Sub: userB, Aud: aud2, Iat: h.clk.Now(), Exp: h.clk.Now().Add(time.Hour)}
	r = h.check(h.fake.Sign("kid-1", bare), "", "")
	h.expect(r, httpOK, "allow", "ok", "upstream")
	if user, _ := r.Body["user"].(map[string]any); len(user) != 2 || user["id"] != userB {
		t.Errorf("bare user %v, want id and exp only", r.Body["user"])
	}

	// The same fields as headers, by GET and by POST.
	for _, m := range []string{"GET", "POST"} {
		r := h.do(m, "", map[string]string{"idToken": tok, "playerId": userA})
		h.expect(r, httpOK, "allow", "ok", "cache")
	}
	if n := h.fake.Fetches(); n != 1 {
		t.Errorf("%d key fetches, want the start-up one", n)
	}
}

// TestKicks: one row per verification rule, through the HTTP API.
func TestKicks(t *testing.T) {
	h := newHarness(t, setup{oidc: func(c *Config) { c.MaxAuthAge = time.Hour }})
	if _, err := h.fake.AddKey("kid-2"); err != nil {
		t.Fatal(err)
	}
	h.fake.RemoveKey("kid-2") // a real key, never published
	now := h.clk.Now()
	valid := h.claims(userA)
	with := func(f func(*kakaooidctest.Claims)) string {
		c := valid
		f(&c)
		return h.fake.Sign("kid-1", c)
	}
	extra := func(k string, v any) string {
		return with(func(c *kakaooidctest.Claims) { c.Extra = map[string]any{k: v} })
	}
	hdr1 := kakaooidctest.Header("kid-1")
	pl := valid.Payload()
	priv := h.fake.Key("kid-1")

	// alg confusion: HS256 keyed with the public key's bytes.
	pubDER, _ := x509.MarshalPKIXPublicKey(h.p.keys.cur.Load().byKID["kid-1"])
	hsSigned := b64([]byte(`{"alg":"HS256","typ":"JWT","kid":"kid-1"}`)) + "." + b64(pl)
	mac := hmac.New(sha256.New, pubDER)
	mac.Write([]byte(hsSigned))
	hs256 := hsSigned + "." + b64(mac.Sum(nil))

	good := h.fake.Sign("kid-1", valid)
	parts := strings.Split(good, ".")
	for _, c := range []struct {
		name, token, nonce, player, reason string
	}{
		{"bad signature: another key's", h.fake.SignRaw("kid-2", hdr1, pl), "", "", "invalid_token"},
		{"bad signature: payload changed", parts[0] + "." + b64([]byte(strings.Replace(string(pl), userA, userB, 1))) + "." + parts[2], "", "", "invalid_token"},
		{"alg none", b64([]byte(`{"alg":"none","kid":"kid-1"}`)) + "." + b64(pl) + ".", "", "", "invalid_token"},
		{"alg HS256 with the public key", hs256, "", "", "invalid_token"},
		{"alg RS512", priv.SignRaw([]byte(`{"alg":"RS512","kid":"kid-1"}`), pl), "", "", "invalid_token"},
		{"no kid", priv.SignRaw([]byte(`{"alg":"RS256"}`), pl), "", "", "invalid_token"},
		{"header not an object", priv.SignRaw([]byte(`["RS256"]`), pl), "", "", "invalid_token"},
		{"header with alg twice", priv.SignRaw([]byte(`{"alg":"none","alg":"RS256","kid":"kid-1"}`), pl), "", "", "invalid_token"},
		{"header with ALG beside alg", priv.SignRaw([]byte(`{"alg":"RS256","ALG":"none","kid":"kid-1"}`), pl), "", "", "invalid_token"},
		{"payload not an object", priv.SignRaw(hdr1, []byte(`"`+userA+`"`)), "", "", "invalid_token"},
		{"payload not JSON", priv.SignRaw(hdr1, []byte(`{"sub":`)), "", "", "invalid_token"},
		{"payload with sub twice", priv.SignRaw(hdr1, []byte(strings.Replace(string(pl), "{", `{"sub":"`+userB+`",`, 1))), "", "", "invalid_token"},
		{"payload with Sub beside sub", priv.SignRaw(hdr1, []byte(strings.Replace(string(pl), "{", `{"Sub":"`+userB+`",`, 1))), "", "", "invalid_token"},
		{"exp a string", extra("exp", "9999999999"), "", "", "invalid_token"},
		{"missing exp", extra("exp", nil), "", "", "invalid_token"},
		{"missing sub", extra("sub", nil), "", "", "invalid_token"},
		{"iat in the future", with(func(c *kakaooidctest.Claims) { c.Iat = now.Add(time.Minute) }), "", "", "invalid_token"},
		{"expired", with(func(c *kakaooidctest.Claims) { c.Exp = now.Add(-31 * time.Second) }), "", "", "token_expired"},
		{"another app's", with(func(c *kakaooidctest.Claims) { c.Aud = "someone-elses-key" }), "", "", "wrong_audience"},
		{"no aud", extra("aud", nil), "", "", "wrong_audience"},
		{"aud list without ours", extra("aud", []string{"x", "y"}), "", "", "wrong_audience"},
		{"another issuer", with(func(c *kakaooidctest.Claims) { c.Iss = "https://kauth.kakao.com/" }), "", "", "wrong_issuer"},
		{"nonce differs", with(func(c *kakaooidctest.Claims) { c.Nonce = "n-1" }), "n-2", "", "nonce_mismatch"},
		{"nonce asked, none in the token", good, "n-1", "", "nonce_mismatch"},
		{"auth too old", with(func(c *kakaooidctest.Claims) { c.AuthTime = now.Add(-time.Hour - 31*time.Second) }), "", "", "auth_too_old"},
		{"no auth_time with a max age", with(func(c *kakaooidctest.Claims) { c.AuthTime = time.Time{} }), "", "", "auth_too_old"},
		{"another player claimed", good, "", userB, "player_mismatch"},
	} {
		t.Run(c.name, func(t *testing.T) {
			h.t = t
			h.expect(h.check(c.token, c.nonce, c.player), kickSt, "kick", c.reason, "upstream")
		})
	}
	h.t = t
	if n := h.fake.Fetches(); n != 1 {
		// Only the start-up fetch: every token was refused before a key
		// was looked up, or named kid-1.
		t.Errorf("%d key fetches, want 1", n)
	}

	// Within the leeway, and the rules that pass.
	for _, c := range []struct{ name, token, nonce string }{
		{"expired within the leeway", with(func(c *kakaooidctest.Claims) { c.Exp = now.Add(-29 * time.Second) }), ""},
		{"iat within the leeway", with(func(c *kakaooidctest.Claims) { c.Iat = now.Add(29 * time.Second) }), ""},
		{"aud list with ours", extra("aud", []string{"x", aud2}), ""},
		{"nonce equal", with(func(c *kakaooidctest.Claims) { c.Nonce = "n-1" }), "n-1"},
		{"nonce in the token, none asked", with(func(c *kakaooidctest.Claims) { c.Nonce = "n-1" }), ""},
		{"exp with a fraction", extra("exp", float64(now.Add(time.Hour).Unix())+0.5), ""},
		{"unknown claims and header members", priv.SignRaw([]byte(`{"alg":"RS256","kid":"kid-1","typ":"JWT","x":{"y":[1]}}`), []byte(strings.Replace(string(pl), "{", `{"at_hash":"abc","amr":["pwd"],`, 1))), ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			h.t = t
			h.expect(h.check(c.token, c.nonce, ""), httpOK, "allow", "ok", "upstream")
		})
	}
}

// TestNonceRequired: with RequireNonce, a request without one is a 400.
func TestNonceRequired(t *testing.T) {
	h := newHarness(t, setup{oidc: func(c *Config) { c.RequireNonce = true }})
	c := h.claims(userA)
	c.Nonce = "abc"
	tok := h.fake.Sign("kid-1", c)
	r := h.check(tok, "", "")
	if r.Status != 400 || !strings.Contains(r.Raw, "missing nonce") {
		t.Errorf("no nonce: %d %s, want 400 naming it", r.Status, r.Raw)
	}
	h.expect(h.check(tok, "abc", ""), httpOK, "allow", "ok", "upstream")
}

// TestBadInput: a 400 naming the problem, and no key fetch.
func TestBadInput(t *testing.T) {
	h := newHarness(t, setup{})
	good := h.token(userA)
	junkKID := b64([]byte(`{"alg":"RS256","kid":"never-heard-of"}`)) + ".e30.c2ln"
	long := junkKID + strings.Repeat("A", MaxTokenLen-len(junkKID)+4)
	body := func(m map[string]any) string { b, _ := json.Marshal(m); return string(b) }
	for _, c := range []struct{ name, body, want string }{
		{"missing", `{}`, "missing idToken"},
		{"over 8 KiB", body(map[string]any{"idToken": long}), "idToken too long (limit 8192 bytes)"},
		{"control character", body(map[string]any{"idToken": junkKID + "\n"}), "idToken contains invalid characters"},
		{"space", body(map[string]any{"idToken": "a.b. c"}), "idToken contains invalid characters"},
		{"two parts", body(map[string]any{"idToken": "abc.def"}), "idToken is not a compact JWS"},
		{"four parts", body(map[string]any{"idToken": junkKID + ".x"}), "idToken is not a compact JWS"},
		{"not base64url", body(map[string]any{"idToken": "ab+c.def.ghi"}), "idToken is not a compact JWS"},
		{"padded", body(map[string]any{"idToken": "abc=.def.ghi"}), "idToken is not a compact JWS"},
		{"impossible length", body(map[string]any{"idToken": "abcde.def.ghi"}), "idToken is not a compact JWS"},
		{"non-canonical base64 (bits past the end)", body(map[string]any{"idToken": "eyJ9.e30.AB"}), "idToken is not a compact JWS"},
		{"a number", `{"idToken":1}`, "idToken must be a JSON string"},
		{"accessToken instead", body(map[string]any{"accessToken": good}), `unknown field "accessToken" (want playerId, idToken, nonce, sessionId)`},
		{"platform", body(map[string]any{"idToken": good, "platform": "pc"}), `unknown field "platform"`},
		{"idtoken in another case", body(map[string]any{"IdToken": good}), "field names are case-sensitive"},
		{"nonce over 256 bytes", body(map[string]any{"idToken": junkKID, "nonce": strings.Repeat("n", 257)}), "nonce too long (limit 256 bytes)"},
		{"nonce with a control character", body(map[string]any{"idToken": junkKID, "nonce": "a\tb"}), "nonce contains invalid characters"},
		{"idToken twice", `{"idToken":"` + junkKID + `","idToken":"` + good + `"}`, `duplicate field "idToken"`},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := h.do("POST", c.body, nil)
			if r.Status != 400 || !strings.Contains(r.Body["error"].(string), c.want) {
				t.Errorf("%d %s, want 400 with %q", r.Status, r.Raw, c.want)
			}
			if strings.Contains(r.Raw, good) {
				t.Errorf("the answer quotes the token")
			}
		})
	}
	// Headers: the same checks, a body and headers together refused.
	for _, c := range []struct {
		name    string
		body    string
		headers map[string]string
		want    string
	}{
		{"header over 8 KiB", "", map[string]string{"idToken": long}, "idToken too long"},
		{"nonce header over 256 bytes", "", map[string]string{"idToken": junkKID, "nonce": strings.Repeat("n", 257)}, "nonce too long"},
		{"body and a nonce header", body(map[string]any{"idToken": good}), map[string]string{"Nonce": "x"}, "request has a JSON body and a nonce header: send idToken, nonce and playerId in one form"},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := h.do("POST", c.body, c.headers)
			if r.Status != 400 || !strings.Contains(r.Raw, c.want) {
				t.Errorf("%d %s, want 400 with %q", r.Status, r.Raw, c.want)
			}
		})
	}
	// A header the form does not have is the caller's own.
	r := h.do("GET", "", map[string]string{"idToken": good, "Platform": "pc", "accessToken": "x"})
	h.expect(r, httpOK, "allow", "ok", "upstream")
	if n := h.fake.Fetches(); n != 1 {
		t.Errorf("%d key fetches, want only the start-up one", n)
	}
}

// TestJudge is the claim rules as a table (the signature verified).
func TestJudge(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	rules := &Rules{Issuer: DefaultIssuer, Audiences: []string{"a", "b"}, Leeway: 30 * time.Second}
	aged := *rules
	aged.MaxAuthAge = time.Hour
	noLeeway := *rules
	noLeeway.Leeway = 0
	base := Claims{Issuer: DefaultIssuer, Audience: []string{"b"}, Subject: "1", Expiry: now.Unix() + 60, HasExpiry: true,
		IssuedAt: now.Unix(), HasIssuedAt: true, AuthTime: now.Unix() - 60, HasAuthTime: true}
	for _, c := range []struct {
		name           string
		mod            func(*Claims)
		rules          *Rules
		nonce, claimed string
		want           validator.Reason
	}{
		{"ok", func(*Claims) {}, rules, "", "", validator.ReasonOK},
		{"ok, claimed", func(*Claims) {}, rules, "", "1", validator.ReasonOK},
		{"no exp", func(c *Claims) { c.HasExpiry = false }, rules, "", "", validator.ReasonInvalidToken},
		{"no sub", func(c *Claims) { c.Subject = "" }, rules, "", "", validator.ReasonInvalidToken},
		{"iat 31s ahead", func(c *Claims) { c.IssuedAt = now.Unix() + 31 }, rules, "", "", validator.ReasonInvalidToken},
		{"iat 30s ahead", func(c *Claims) { c.IssuedAt = now.Unix() + 30 }, rules, "", "", validator.ReasonOK},
		{"no iat", func(c *Claims) { c.HasIssuedAt = false }, rules, "", "", validator.ReasonOK},
		{"iss", func(c *Claims) { c.Issuer = "https://kauth.kakao.com.evil" }, rules, "", "", ReasonWrongIssuer},
		{"aud", func(c *Claims) { c.Audience = []string{"c"} }, rules, "", "", ReasonWrongAudience},
		{"aud none", func(c *Claims) { c.Audience = nil }, rules, "", "", ReasonWrongAudience},
		{"exp 31s ago", func(c *Claims) { c.Expiry = now.Unix() - 31 }, rules, "", "", ReasonTokenExpired},
		{"exp 30s ago", func(c *Claims) { c.Expiry = now.Unix() - 30 }, rules, "", "", ReasonTokenExpired},
		{"exp 29s ago", func(c *Claims) { c.Expiry = now.Unix() - 29 }, rules, "", "", validator.ReasonOK},
		{"exp now, no leeway", func(c *Claims) { c.Expiry = now.Unix() }, &noLeeway, "", "", ReasonTokenExpired},
		{"exp in a second, no leeway", func(c *Claims) { c.Expiry = now.Unix() + 1 }, &noLeeway, "", "", validator.ReasonOK},
		{"nonce", func(c *Claims) { c.Nonce, c.HasNonce = "x", true }, rules, "y", "", ReasonNonceMismatch},
		{"nonce empty in token", func(c *Claims) { c.Nonce, c.HasNonce = "", true }, rules, "y", "", ReasonNonceMismatch},
		{"auth age", func(c *Claims) { c.AuthTime = now.Unix() - 3631 }, &aged, "", "", ReasonAuthTooOld},
		{"auth age within leeway", func(c *Claims) { c.AuthTime = now.Unix() - 3630 }, &aged, "", "", validator.ReasonOK},
		{"auth age off", func(c *Claims) { c.AuthTime = 0 }, rules, "", "", validator.ReasonOK},
		{"player", func(*Claims) {}, rules, "", "2", validator.ReasonPlayerMismatch},
		{"expired and another app's: the app first", func(c *Claims) { c.Expiry, c.Audience = 0, []string{"c"} }, rules, "", "", ReasonWrongAudience},
	} {
		cl := base
		c.mod(&cl)
		if got := Judge(&cl, c.rules, now, c.nonce, c.claimed); got != c.want {
			t.Errorf("%s: %s, want %s", c.name, got, c.want)
		}
	}
}

// TestCacheBoundByExpiry: an allow is cached until the token's exp at
// the latest, stale window included; then the token is expired.
func TestCacheBoundByExpiry(t *testing.T) {
	h := newHarness(t, setup{engine: func(c *validator.Config) { c.Policy = validator.PolicyStale }})
	c := h.claims(userA)
	c.Exp = h.clk.Now().Add(2 * time.Minute)
	tok := h.fake.Sign("kid-1", c)
	h.expect(h.check(tok, "", ""), httpOK, "allow", "ok", "upstream")
	h.clk.Add(119 * time.Second)
	h.expect(h.check(tok, "", ""), httpOK, "allow", "ok", "cache")
	h.clk.Add(2 * time.Second)
	// Past exp, within the leeway: verified again (not a cache hit).
	h.expect(h.check(tok, "", ""), httpOK, "allow", "ok", "upstream")
	h.clk.Add(30 * time.Second)
	h.expect(h.check(tok, "", ""), kickSt, "kick", "token_expired", "upstream")

	// The cache key covers the nonce and the claim.
	c = h.claims(userA)
	c.Nonce = "n-1"
	tok = h.fake.Sign("kid-1", c)
	h.expect(h.check(tok, "n-1", ""), httpOK, "allow", "ok", "upstream")
	h.expect(h.check(tok, "n-2", ""), kickSt, "kick", "nonce_mismatch", "upstream")
	h.expect(h.check(tok, "n-1", userB), kickSt, "kick", "player_mismatch", "upstream")
}

// TestKickPurgesUser: a kick of a token Kakao signed drops its user's
// other cached allows; a mismatch (about the request) drops none.
func TestKickPurgesUser(t *testing.T) {
	h := newHarness(t, setup{})
	a := h.token(userA)
	h.expect(h.check(a, "", ""), httpOK, "allow", "ok", "upstream")
	h.expect(h.check(a, "", userB), kickSt, "kick", "player_mismatch", "upstream")
	h.expect(h.check(a, "", ""), httpOK, "allow", "ok", "cache")

	c := h.claims(userA)
	c.Exp = h.clk.Now().Add(-time.Hour)
	h.expect(h.check(h.fake.Sign("kid-1", c), "", ""), kickSt, "kick", "token_expired", "upstream")
	h.expect(h.check(a, "", ""), httpOK, "allow", "ok", "upstream")
}

// TestNoSecretsInLogsOrMetrics: tokens, nonces and profile claims never
// reach a log line or a metric, whatever the answer.
func TestNoSecretsInLogsOrMetrics(t *testing.T) {
	h := newHarness(t, setup{})
	c := h.claims(userA)
	c.Nonce = "SECRET-nonce-1234"
	tok := h.fake.Sign("kid-1", c)
	h.check(tok, "SECRET-nonce-1234", "")
	h.check(tok, "SECRET-nonce-9999", "")
	junk := b64([]byte(`{"alg":"RS256","kid":"SECRET-kid"}`)) + "." + b64([]byte(`{"sub":"1"}`)) + ".c2ln"
	h.check(junk, "", "")
	h.fake.SetStatus(500)
	h.advance(time.Hour)
	sig := strings.Split(tok, ".")[2]
	mfs, _ := h.reg.Gather()
	var metricsText strings.Builder
	for _, mf := range mfs {
		metricsText.WriteString(mf.String())
	}
	for _, where := range []string{h.logs.String(), metricsText.String()} {
		for _, secret := range []string{sig, strings.Split(tok, ".")[1], "SECRET-nonce", "hana-secret@example.com", "hana"} {
			if strings.Contains(where, secret) {
				t.Errorf("%q found in logs or metrics", secret)
			}
		}
	}
}

// TestAdminPurge: /admin/purge with provider kakao-oidc and an idToken
// drops every entry of the token (any nonce or claim); by playerId, the
// user's.
func TestAdminPurge(t *testing.T) {
	h := newHarness(t, setup{})
	ops := httptest.NewServer(h.v.OpsHandler(http.NotFoundHandler(), "admintok"))
	defer ops.Close()
	purge := func(body string) (int, string) {
		req, _ := http.NewRequest("POST", ops.URL+"/admin/purge", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer admintok")
		r := testkit.Do(t, client, req)
		return r.Status, r.Raw
	}
	c := h.claims(userA)
	c.Nonce = "n-1"
	tok := h.fake.Sign("kid-1", c)
	h.expect(h.check(tok, "n-1", userA), httpOK, "allow", "ok", "upstream")
	h.expect(h.check(tok, "", ""), httpOK, "allow", "ok", "upstream")
	if s, raw := purge(`{"provider":"kakao-oidc","idToken":"` + tok + `"}`); s != 200 || !strings.Contains(raw, `"purged":"token"`) {
		t.Fatalf("purge: %d %s", s, raw)
	}
	h.expect(h.check(tok, "n-1", userA), httpOK, "allow", "ok", "upstream")
	h.expect(h.check(tok, "", ""), httpOK, "allow", "ok", "upstream")
	if s, _ := purge(`{"playerId":"` + userA + `"}`); s != 200 {
		t.Fatalf("player purge: %d", s)
	}
	h.expect(h.check(tok, "", ""), httpOK, "allow", "ok", "upstream")
	for body, want := range map[string]string{
		`{"provider":"kakao-oidc","idToken":"x.y"}`:                         "idToken is not a compact JWS",
		`{"provider":"kakao-oidc","idToken":"` + tok + `","platform":"pc"}`: "takes no platform",
		`{"provider":"kakao-oidc","idToken":"a.b.c","accessToken":"d"}`:     "send one of accessToken, idToken and impUid",
	} {
		if s, raw := purge(body); s != 400 || !strings.Contains(raw, want) {
			t.Errorf("%s: %d %s, want 400 %q", body, s, raw, want)
		}
	}
	if strings.Contains(h.logs.String(), strings.Split(tok, ".")[2]) {
		t.Error("the purged token is in the log")
	}
}

// TestAdminPurgeRouting: an idToken purge without provider is for the
// provider of ID tokens even when another is configured first; an
// accessToken one for kakao-oidc is refused; with -kakao-oidc-require-nonce
// a purge needs no nonce.
func TestAdminPurgeRouting(t *testing.T) {
	fake, err := kakaooidctest.Start()
	if err != nil {
		t.Fatal(err)
	}
	defer fake.Close()
	kl, err := kakaologin.New(kakaologin.Config{AppID: "100001", API: "http://127.0.0.1:1"})
	if err != nil {
		t.Fatal(err)
	}
	p, err := New(Config{Audiences: []string{aud}, JWKSURL: fake.URL(), RequireNonce: true, tick: -1})
	if err != nil {
		t.Fatal(err)
	}
	p.keys.wait()
	v, err := validator.New(validator.Config{CacheTTL: time.Hour}, kl, p)
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	api := testkit.Serve(t, v.NewServer())
	ops := httptest.NewServer(v.OpsHandler(http.NotFoundHandler(), "admintok"))
	defer ops.Close()
	now := time.Now()
	tok := fake.Sign("kid-1", kakaooidctest.Claims{Sub: userA, Aud: aud, Iat: now, Exp: now.Add(time.Hour), Nonce: "n"})
	validate := func() string {
		req, _ := http.NewRequest("POST", api+Path, strings.NewReader(`{"idToken":"`+tok+`","nonce":"n"}`))
		r := testkit.Do(t, client, req)
		v.Settle()
		return r.Header.Get("X-Playerguard-Source")
	}
	purge := func(body string) (int, string) {
		req, _ := http.NewRequest("POST", ops.URL+"/admin/purge", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer admintok")
		r := testkit.Do(t, client, req)
		return r.Status, r.Raw
	}
	validate()
	if src := validate(); src != "cache" {
		t.Fatalf("second validation from %q", src)
	}
	if s, raw := purge(`{"idToken":"` + tok + `"}`); s != 200 || !strings.Contains(raw, "token") {
		t.Fatalf("purge without provider: %d %s", s, raw)
	}
	if src := validate(); src != "upstream" {
		t.Errorf("after the purge: from %q, want upstream", src)
	}
	if s, raw := purge(`{"provider":"kakao-oidc","accessToken":"` + tok + `"}`); s != 400 || !strings.Contains(raw, "provider kakao-oidc takes idToken") {
		t.Errorf("accessToken for kakao-oidc: %d %s", s, raw)
	}
	if s, raw := purge(`{"provider":"kakao-login","idToken":"` + tok + `"}`); s != 400 || !strings.Contains(raw, "provider kakao-login takes accessToken") {
		t.Errorf("idToken for kakao-login: %d %s", s, raw)
	}
}

// TestAuthAgeBoundsCache: with a maximum authentication age, an allow is
// not cached past it.
func TestAuthAgeBoundsCache(t *testing.T) {
	h := newHarness(t, setup{oidc: func(c *Config) { c.MaxAuthAge = 10 * time.Minute }})
	c := h.claims(userA)
	c.AuthTime = h.clk.Now().Add(-9 * time.Minute)
	tok := h.fake.Sign("kid-1", c)
	h.expect(h.check(tok, "", ""), httpOK, "allow", "ok", "upstream")
	h.clk.Add(59 * time.Second)
	h.expect(h.check(tok, "", ""), httpOK, "allow", "ok", "cache")
	h.clk.Add(2 * time.Second)
	h.expect(h.check(tok, "", ""), httpOK, "allow", "ok", "upstream") // within the leeway
	h.clk.Add(30 * time.Second)
	h.expect(h.check(tok, "", ""), kickSt, "kick", "auth_too_old", "upstream")
}

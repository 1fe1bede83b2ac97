package kakaooidc

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"playerguard/validator"
	"playerguard/validator/kakaooidc/kakaooidctest"
)

// junk is a token naming key id kid with a signature nobody made: what
// an attacker sprays.
func junk(kid string) string {
	return b64([]byte(`{"alg":"RS256","kid":"`+kid+`"}`)) + "." + b64([]byte(`{"sub":"1","aud":"`+aud+`","exp":9999999999}`)) + ".c2lnbmF0dXJl"
}

// TestStartsWhileKeysLoad: New does not wait for the key set; until one
// is fetched the provider is not ready and answers keys_unavailable
// (never a kick); the retry after a failed start-up fetch loads it.
func TestStartsWhileKeysLoad(t *testing.T) {
	h := newHarness(t, setup{fake: func(f *kakaooidctest.Server) { f.SetStatus(503) }})
	if ok, why := h.p.Ready(); ok || why != "key set not fetched yet" {
		t.Errorf("Ready = %v %q before any set", ok, why)
	}
	tok := h.token(userA)
	// The limit: the start-up fetch was just made.
	h.expect(h.check(tok, "", ""), unavail, "unavailable", "keys_unavailable", "upstream")
	if n := h.fake.Fetches(); n != 1 {
		t.Fatalf("%d fetches, want the start-up one", n)
	}
	if got := h.metric("playerguard_key_fetches_total", "outcome", "bad_status"); got != 1 {
		t.Errorf("bad_status fetches = %v", got)
	}
	// The retry backs off: 1s, then 2s.
	h.advance(999 * time.Millisecond)
	if n := h.fake.Fetches(); n != 1 {
		t.Fatalf("%d fetches before the backoff", n)
	}
	h.advance(time.Millisecond)
	if n := h.fake.Fetches(); n != 2 {
		t.Fatalf("%d fetches after 1s, want the retry", n)
	}
	h.fake.SetStatus(0)
	h.advance(2 * time.Second)
	if ok, _ := h.p.Ready(); !ok {
		t.Fatal("not ready after a good fetch")
	}
	h.expect(h.check(tok, "", ""), httpOK, "allow", "ok", "upstream")
	if got := h.metric("playerguard_keys"); got != 1 {
		t.Errorf("keys gauge = %v", got)
	}
}

// TestNeverFetchedUnderOpenPolicy: the key set never fetched is an
// outage like any other: the open policy admits. Once a set is held, a
// token it cannot verify while the endpoint is down is no outage of
// tokens (those signed with its keys verify): the policy admits no
// forgery.
func TestNeverFetchedUnderOpenPolicy(t *testing.T) {
	h := newHarness(t, setup{
		fake:   func(f *kakaooidctest.Server) { f.SetDown(true) },
		engine: func(c *validator.Config) { c.Policy = validator.PolicyOpen },
	})
	r := h.check(h.token(userA), "", "")
	h.expect(r, httpOK, "allow", "ok", "policy")
	if got := h.metric("playerguard_key_fetches_total", "outcome", "connection_error"); got != 1 {
		t.Errorf("connection_error fetches = %v", got)
	}
	h.fake.SetDown(false)
	h.advance(time.Second) // the retry
	h.fake.SetDown(true)
	h.clk.Add(31 * time.Second)
	h.expect(h.check(junk("made-up"), "", userB), unavail, "unavailable", "keys_unavailable", "upstream")
	h.expect(h.check(h.token(userA), "", ""), httpOK, "allow", "ok", "upstream")
}

// TestRefreshSchedule: every Refresh; sooner when Cache-Control's
// max-age says so, never sooner than MinInterval.
func TestRefreshSchedule(t *testing.T) {
	for _, c := range []struct {
		cc   string
		next time.Duration
	}{
		{"", time.Hour},
		{"public, max-age=7200", time.Hour},
		{"public, max-age=600", 10 * time.Minute},
		{"max-age=5", 30 * time.Second},
		{"no-cache", 30 * time.Second},
	} {
		t.Run(c.cc, func(t *testing.T) {
			h := newHarness(t, setup{fake: func(f *kakaooidctest.Server) { f.SetCacheControl(c.cc) }})
			h.advance(c.next - time.Second)
			if n := h.fake.Fetches(); n != 1 {
				t.Fatalf("%d fetches a second before %v", n, c.next)
			}
			h.advance(time.Second)
			if n := h.fake.Fetches(); n != 2 {
				t.Fatalf("%d fetches at %v, want 2", n, c.next)
			}
			if age := h.metric("playerguard_key_set_age_seconds"); age != 0 {
				t.Errorf("age %v just after a fetch", age)
			}
		})
	}
}

// TestFailedRefreshKeepsSet: a failed refresh keeps the last good set
// (tokens still verify, nothing is kicked) and the age grows.
func TestFailedRefreshKeepsSet(t *testing.T) {
	h := newHarness(t, setup{})
	tok := h.token(userA)
	for _, fail := range []func(){
		func() { h.fake.SetStatus(500) },
		func() { h.fake.SetStatus(0); h.fake.SetDown(true) },
		func() { h.fake.SetDown(false); h.fake.SetBody([]byte(`<html>maintenance</html>`)) },
		func() { h.fake.SetBody([]byte(`{"keys":[]}`)) },
		func() { h.fake.SetBody([]byte(`{"keys":[{"kty":"EC","kid":"e","crv":"P-256","x":"AA","y":"AA"}]}`)) },
	} {
		fail()
		h.advance(time.Hour)
	}
	for _, o := range []string{"bad_status", "connection_error", "unreadable", "no_usable_keys"} {
		if h.metric("playerguard_key_fetches_total", "outcome", o) == 0 {
			t.Errorf("no %s fetch counted", o)
		}
	}
	h.expect(h.check(tok, "", ""), httpOK, "allow", "ok", "upstream")
	if got := h.metric("playerguard_keys"); got != 1 {
		t.Errorf("keys gauge %v, want the last good set's 1", got)
	}
	if age := h.metric("playerguard_key_set_age_seconds"); age != 5*3600 {
		t.Errorf("age %v, want 5h", age)
	}
	if !strings.Contains(h.logs.String(), "keeping the last good set") {
		t.Error("no log line for the failed fetches")
	}
	// A token with an unknown key while the endpoint fails: unavailable,
	// not a kick.
	h.fake.SetBody(nil)
	h.fake.SetDown(true)
	h.clk.Add(time.Minute)
	h.expect(h.check(junk("kid-new"), "", ""), unavail, "unavailable", "keys_unavailable", "upstream")
	// Once it is back, the next fetch the limit allows settles it.
	h.fake.SetDown(false)
	h.clk.Add(time.Minute)
	h.expect(h.check(junk("kid-new"), "", ""), kickSt, "kick", "invalid_token", "upstream")
}

// TestUnknownKIDOneFetchPerInterval: 10,000 tokens with random key ids
// within one second make at most one key fetch; requests for unknown keys
// while it runs wait on it; after it, they are answered without one.
func TestUnknownKIDOneFetchPerInterval(t *testing.T) {
	h := newHarness(t, setup{})
	h.clk.Add(31 * time.Second) // past the start-up fetch's interval
	h.fake.SetDelay(100 * time.Millisecond)
	var wg sync.WaitGroup
	counts := make([]map[string]int, 32)
	next := make(chan int)
	for w := range counts {
		counts[w] = map[string]int{}
		wg.Go(func() {
			for i := range next {
				r := h.check(junk(fmt.Sprintf("junk-%d", i)), "", "")
				reason, _ := r.Body["reason"].(string)
				if r.Status == httpOK {
					reason = "ALLOWED"
				}
				counts[w][reason]++
			}
		})
	}
	for i := range 10_000 {
		next <- i
	}
	close(next)
	wg.Wait()
	if n := h.fake.Fetches(); n != 2 {
		t.Errorf("%d fetches, want the start-up one and one for the 10,000", n)
	}
	total := map[string]int{}
	for _, c := range counts {
		for k, n := range c {
			total[k] += n
		}
	}
	// Those that waited on the fetch: invalid_token (the fetch succeeded
	// without their kid); the rest: unknown_key, unavailable. None in.
	if total["invalid_token"] == 0 || total["invalid_token"]+total["unknown_key"] != 10_000 {
		t.Errorf("answers %v", total)
	}
	if skipped := h.metric("playerguard_key_refreshes_skipped_total"); int(skipped) != total["unknown_key"] {
		t.Errorf("skipped %v, want %d", skipped, total["unknown_key"])
	}
}

// TestUnknownKIDUnderOpenPolicy: an unknown key the limit keeps from a
// fetch is no outage: the open policy does not let junk in.
func TestUnknownKIDUnderOpenPolicy(t *testing.T) {
	h := newHarness(t, setup{engine: func(c *validator.Config) { c.Policy = validator.PolicyOpen }})
	h.expect(h.check(junk("made-up"), "", ""), unavail, "unavailable", "unknown_key", "upstream")
	h.clk.Add(30 * time.Second)
	h.expect(h.check(junk("made-up"), "", ""), kickSt, "kick", "invalid_token", "upstream")
	if n := h.fake.Fetches(); n != 2 {
		t.Errorf("%d fetches, want 2", n)
	}
}

// TestRotationWhileSprayed: a key Kakao publishes after the last fetch
// is accepted within MinInterval while junk key ids arrive every 100 ms,
// and the junk makes one fetch per interval, no more.
func TestRotationWhileSprayed(t *testing.T) {
	h := newHarness(t, setup{})
	if _, err := h.fake.AddKey("kid-2"); err != nil {
		t.Fatal(err)
	}
	tok := h.fake.Sign("kid-2", h.claims(userA))
	accepted := time.Duration(0)
	for step := time.Duration(0); step <= 40*time.Second; step += 100 * time.Millisecond {
		h.clk.Add(100 * time.Millisecond)
		h.check(junk(fmt.Sprintf("spray-%d", step)), "", "")
		r := h.check(tok, "", "")
		if r.Status == httpOK {
			accepted = step + 100*time.Millisecond
			break
		}
		// Until then: not known yet, and no kick.
		h.expect(r, unavail, "unavailable", "unknown_key", "upstream")
	}
	if accepted == 0 || accepted > 30*time.Second {
		t.Fatalf("kid-2 accepted after %v, want within 30s", accepted)
	}
	if n := h.fake.Fetches(); n != 2 {
		t.Errorf("%d fetches in %v of spray, want 2", n, accepted)
	}
	// Without a spray a new key's first token fetches at once (the
	// interval since the last fetch has passed).
	h.clk.Add(31 * time.Second)
	if _, err := h.fake.AddKey("kid-3"); err != nil {
		t.Fatal(err)
	}
	h.expect(h.check(h.fake.Sign("kid-3", h.claims(userA)), "", ""), httpOK, "allow", "ok", "upstream")
}

// TestKeyRemovedIsRefused: a key Kakao stops publishing stops verifying
// tokens at the next fetch.
func TestKeyRemovedIsRefused(t *testing.T) {
	h := newHarness(t, setup{})
	if _, err := h.fake.AddKey("kid-2"); err != nil {
		t.Fatal(err)
	}
	h.advance(time.Hour)
	c := h.claims(userA)
	c.Nonce = "n" // not the cached entry's key
	tok := h.fake.Sign("kid-1", c)
	h.fake.RemoveKey("kid-1")
	h.advance(time.Hour)
	// Refused at once; a kick once a fetch the limit allows confirms it.
	h.expect(h.check(tok, "", ""), unavail, "unavailable", "unknown_key", "upstream")
	h.clk.Add(30 * time.Second)
	h.expect(h.check(tok, "", ""), kickSt, "kick", "invalid_token", "upstream")
	if !strings.Contains(h.logs.String(), `"kids":"kid-2"`) {
		t.Errorf("no log line of the new set: %s", h.logs.String())
	}
}

// TestFetchHygiene: the fetch's timeout, body cap, TLS verification, and
// the keys refused one by one.
func TestFetchHygiene(t *testing.T) {
	t.Run("timeout", func(t *testing.T) {
		h := newHarness(t, setup{
			fake: func(f *kakaooidctest.Server) { f.SetDelay(2 * time.Second) },
			oidc: func(c *Config) { c.Timeout = 100 * time.Millisecond },
		})
		if got := h.metric("playerguard_key_fetches_total", "outcome", "timeout"); got != 1 {
			t.Errorf("timeout fetches = %v", got)
		}
	})
	t.Run("body cap", func(t *testing.T) {
		h := newHarness(t, setup{
			fake: func(f *kakaooidctest.Server) {
				f.SetBody([]byte(`{"keys":[],"x":"` + strings.Repeat("x", 2000) + `"}`))
			},
			oidc: func(c *Config) { c.MaxBody = 1000 },
		})
		if got := h.metric("playerguard_key_fetches_total", "outcome", "unreadable"); got != 1 {
			t.Errorf("unreadable fetches = %v", got)
		}
	})
	t.Run("TLS verified", func(t *testing.T) {
		srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.Write([]byte(`{"keys":[]}`))
		}))
		srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshake
		srv.StartTLS()
		defer srv.Close()
		h := newHarness(t, setup{oidc: func(c *Config) { c.JWKSURL = srv.URL + "/.well-known/jwks.json" }})
		if got := h.metric("playerguard_key_fetches_total", "outcome", "connection_error"); got != 1 {
			t.Errorf("a self-signed certificate: connection_error fetches = %v", got)
		}
	})
	t.Run("bad keys refused, good kept", func(t *testing.T) {
		var good, small json.RawMessage
		f, err := kakaooidctest.Start()
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		var set struct{ Keys []json.RawMessage }
		json.Unmarshal(kakaooidctest.JWKS(f.Key("kid-1")), &set)
		good = set.Keys[0]
		weak, _ := rsa.GenerateKey(rand.Reader, 1024)
		small = json.RawMessage(`{"kty":"RSA","kid":"small","n":"` + b64(weak.N.Bytes()) + `","e":"AQAB"}`)
		body := `{"keys":[` + strings.Join([]string{
			`{"kty":"EC","kid":"ec","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}`,
			`{"kty":"RSA","kid":"broken","n":"!!!","e":"AQAB"}`,
			`{"kty":"RSA","n":"` + b64(weak.N.Bytes()) + `","e":"AQAB"}`,
			string(small),
			strings.Replace(string(good), `"kid-1"`, `"other"`, 1),
			strings.Replace(string(good), `"sig"`, `"enc"`, 1),
			`"not an object"`,
			string(good),
			string(good),
		}, ",") + `]}`
		h := newHarness(t, setup{fake: func(s *kakaooidctest.Server) { s.SetBody([]byte(body)) }})
		h.fake = f // tokens signed by f's kid-1, served by the harness's fake
		if got := h.metric("playerguard_keys"); got != 2 {
			t.Errorf("keys held %v, want kid-1 and other", got)
		}
		if got := h.metric("playerguard_keys_refused_total"); got != 7 {
			t.Errorf("keys refused %v, want 7: %s", got, h.logs.String())
		}
		for _, why := range []string{`is not RSA`, `malformed RSA key`, `no kid`, `1024 bits`, `use \"enc\" is not sig`, `not a JSON key object`, `a second key with this kid`} {
			if !strings.Contains(h.logs.String(), why) {
				t.Errorf("no log line saying %s", why)
			}
		}
		h.expect(h.check(h.token(userA), "", ""), httpOK, "allow", "ok", "upstream")
	})
}

// TestReadyz: /readyz says which providers are ready, and
// ?provider=kakao-oidc answers 503 until its keys are loaded.
func TestReadyz(t *testing.T) {
	h := newHarness(t, setup{fake: func(f *kakaooidctest.Server) { f.SetStatus(500) }})
	srv := httptest.NewServer(h.v.OpsHandler(http.NotFoundHandler(), ""))
	defer srv.Close()
	get := func(q string) (int, string) {
		resp, err := http.Get(srv.URL + "/readyz" + q)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var b strings.Builder
		buf := make([]byte, 512)
		for {
			n, err := resp.Body.Read(buf)
			b.Write(buf[:n])
			if err != nil {
				break
			}
		}
		return resp.StatusCode, b.String()
	}
	if s, b := get(""); s != 200 || !strings.Contains(b, "kakao-oidc: not ready: key set not fetched yet") {
		t.Errorf("/readyz: %d %q", s, b)
	}
	if s, b := get("?provider=kakao-oidc"); s != 503 || !strings.Contains(b, "not ready") {
		t.Errorf("/readyz?provider=kakao-oidc: %d %q", s, b)
	}
	if s, _ := get("?provider=kakao-games"); s != 404 {
		t.Errorf("/readyz?provider=kakao-games: %d, want 404 (not configured)", s)
	}
	h.fake.SetStatus(0)
	h.advance(time.Second)
	if s, b := get("?provider=kakao-oidc"); s != 200 || b != "kakao-oidc: ready\n" {
		t.Errorf("after a fetch: %d %q", s, b)
	}
	if s, b := get(""); s != 200 || !strings.Contains(b, "kakao-oidc: ready\n") {
		t.Errorf("/readyz after a fetch: %d %q", s, b)
	}
}

// TestMaxAge reads Cache-Control.
func TestMaxAge(t *testing.T) {
	for cc, want := range map[string]time.Duration{
		"": -1, "public": -1, "max-age=60": time.Minute, "public, MAX-AGE=120, must-revalidate": 2 * time.Minute,
		`max-age="30"`: 30 * time.Second, "max-age=-5": -1, "max-age=x": -1, "no-store": 0,
		"max-age=99999999999999": 365 * 24 * time.Hour,
	} {
		if got := maxAge(cc); got != want {
			t.Errorf("maxAge(%q) = %v, want %v", cc, got, want)
		}
	}
}

// TestScheduleLoop: the loop itself (not a test's poll) retries a failed
// start-up fetch once the backoff has passed, and refreshes on the hour.
// Its ticker is real (5 ms here); the clock it reads is the test's.
func TestScheduleLoop(t *testing.T) {
	h := newHarness(t, setup{fake: func(f *kakaooidctest.Server) { f.SetStatus(502) }})
	h.p.Close()
	h.fake.SetStatus(0)
	p, err := New(Config{Audiences: []string{aud}, JWKSURL: h.fake.URL(), Timeout: time.Second, Now: h.clk.Now, tick: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	eventually := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("%s: not within 10s", what)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	eventually("the start-up fetch", func() bool { ok, _ := p.Ready(); return ok })
	n := h.fake.Fetches()
	h.clk.Add(time.Hour)
	eventually("the refresh on the hour", func() bool { return h.fake.Fetches() == n+1 })
}

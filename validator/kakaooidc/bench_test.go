package kakaooidc

import (
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"playerguard/internal/testkit"
	"playerguard/validator"
	"playerguard/validator/kakaooidc/kakaooidctest"
)

// benchProvider is the provider before the fake with its key set loaded,
// and a valid token of userA (real clock).
func benchProvider(tb testing.TB) (*Provider, *kakaooidctest.Server, string) {
	tb.Helper()
	fake, err := kakaooidctest.Start()
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(fake.Close)
	p, err := New(Config{Audiences: []string{aud}, JWKSURL: fake.URL(), tick: -1})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(p.Close)
	p.keys.wait()
	now := time.Now()
	tok := fake.Sign("kid-1", kakaooidctest.Claims{Sub: userA, Aud: aud, Iat: now, Exp: now.Add(6 * time.Hour), AuthTime: now, Nickname: "hana", Nonce: "n-0123456789"})
	return p, fake, tok
}

// BenchmarkVerify is a miss's own work, the cache aside: decoding, the
// strict reads, one RS256 verification (2048-bit key) and the claims.
// verifications/s is per benchmark goroutine count: run with -cpu 1 for
// a core's figure.
func BenchmarkVerify(b *testing.B) {
	p, _, tok := benchProvider(b)
	r := &validator.Request{Token: []byte(tok), PlayerID: []byte(userA)}
	if err := p.Check(r); err != nil {
		b.Fatal(err)
	}
	if res := p.Call(r); res.Verdict != validator.Allow {
		b.Fatalf("%v %v", res.Verdict, res.Reason)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		r := &validator.Request{Token: []byte(tok), PlayerID: []byte(userA)}
		for pb.Next() {
			p.Call(r)
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "verifications/s")
}

// hitValidator is playerguard with the provider, and a request context
// whose validation is a cache hit.
func hitValidator(tb testing.TB) (*validator.Validator, *fasthttp.RequestCtx) {
	tb.Helper()
	p, _, tok := benchProvider(tb)
	v, err := validator.New(validator.Config{CacheTTL: time.Hour, CacheMaxEntries: 1000}, p)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(v.Close)
	ctx := testkit.HitCtx(tb, v.Handler, v.Settle, func(r *fasthttp.Request) {
		r.SetRequestURI(Path)
		r.SetBodyString(`{"idToken":"` + tok + `","nonce":"n-0123456789","playerId":"` + userA + `"}`)
	})
	return v, ctx
}

// TestCacheHitZeroAllocs: a kakao-oidc cache hit, through the real
// handler, allocates nothing.
func TestCacheHitZeroAllocs(t *testing.T) {
	v, ctx := hitValidator(t)
	testkit.ZeroAllocs(t, v.Handler, ctx)
}

// BenchmarkHandlerCacheHit is the kakao-oidc hot path (a Kakao-sized ID
// token of about 700 bytes, a nonce and a claim).
func BenchmarkHandlerCacheHit(b *testing.B) {
	v, ctx := hitValidator(b)
	b.ReportAllocs()
	for b.Loop() {
		ctx.Response.Reset()
		v.Handler(ctx)
	}
}

// BenchmarkJudge is the decision on a verified token's claims (the
// table TestJudge checks), for an allow with every rule on.
func BenchmarkJudge(b *testing.B) {
	now := time.Now()
	c := &Claims{Issuer: DefaultIssuer, Audience: []string{"other", aud}, Subject: userA,
		Expiry: now.Add(time.Hour).Unix(), IssuedAt: now.Unix(), AuthTime: now.Unix(),
		HasExpiry: true, HasIssuedAt: true, HasAuthTime: true, Nonce: "n-0123456789", HasNonce: true}
	r := &Rules{Issuer: DefaultIssuer, Audiences: []string{aud}, Leeway: DefaultLeeway, MaxAuthAge: time.Hour}
	if got := Judge(c, r, now, "n-0123456789", userA); got != validator.ReasonOK {
		b.Fatalf("Judge = %v", got)
	}
	b.ReportAllocs()
	for b.Loop() {
		Judge(c, r, now, "n-0123456789", userA)
	}
}

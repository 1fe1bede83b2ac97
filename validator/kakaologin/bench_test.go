package kakaologin_test

import (
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"playerguard/internal/testkit"
	"playerguard/validator"
	"playerguard/validator/kakaologin"
	"playerguard/validator/kakaologin/kakaologintest"
)

// hitValidator is playerguard with the Kakao Login provider before the
// fake, and a request context whose validation is a cache hit.
func hitValidator(tb testing.TB) (*validator.Validator, *fasthttp.RequestCtx) {
	tb.Helper()
	fake, err := kakaologintest.Start()
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(fake.Close)
	fake.Set(tokenA, kakaologintest.Valid(userAN, appN, 21600))
	p, err := kakaologin.New(kakaologin.Config{AppID: app, API: fake.URL()})
	if err != nil {
		tb.Fatal(err)
	}
	v, err := validator.New(validator.Config{CacheTTL: time.Hour, CacheMaxEntries: 1000}, p)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(v.Close)
	ctx := testkit.HitCtx(tb, v.Handler, v.Settle, func(r *fasthttp.Request) {
		r.SetRequestURI(kakaologin.Path)
		r.SetBodyString(`{"accessToken":"` + tokenA + `","playerId":"` + userA + `"}`)
	})
	return v, ctx
}

// TestCacheHitZeroAllocs: a Kakao Login cache hit, through the real
// handler, allocates nothing.
func TestCacheHitZeroAllocs(t *testing.T) {
	v, ctx := hitValidator(t)
	testkit.ZeroAllocs(t, v.Handler, ctx)
}

// BenchmarkHandlerCacheHit is the Kakao Login hot path.
func BenchmarkHandlerCacheHit(b *testing.B) {
	v, ctx := hitValidator(b)
	b.ReportAllocs()
	for b.Loop() {
		ctx.Response.Reset()
		v.Handler(ctx)
	}
}

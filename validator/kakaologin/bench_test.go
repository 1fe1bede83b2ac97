package kakaologin_test

import (
	"testing"
	"time"

	"github.com/valyala/fasthttp"

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
	ctx := &fasthttp.RequestCtx{}
	ctx.Request.Header.SetMethod("POST")
	ctx.Request.SetRequestURI(kakaologin.Path)
	ctx.Request.SetBodyString(`{"accessToken":"` + tokenA + `","playerId":"` + userA + `"}`)
	v.Handler(ctx)
	if ctx.Response.StatusCode() != 200 {
		tb.Fatalf("warm-up: %d %s", ctx.Response.StatusCode(), ctx.Response.Body())
	}
	v.Settle()
	ctx.Response.Reset()
	v.Handler(ctx)
	if h := ctx.Response.Header.Peek("X-Playerguard-Source"); string(h) != "cache" {
		tb.Fatalf("second validation from %q, want cache", h)
	}
	return v, ctx
}

// TestCacheHitZeroAllocs: a Kakao Login cache hit, through the real
// handler, allocates nothing.
func TestCacheHitZeroAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are meaningless under -race (sync.Pool drops items); run without -race")
	}
	v, ctx := hitValidator(t)
	if n := testing.AllocsPerRun(1000, func() {
		ctx.Response.Reset()
		v.Handler(ctx)
	}); n != 0 {
		t.Errorf("%v allocations per cache hit, want 0", n)
	}
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

package kakaogames

import (
	"fmt"
	"net"
	"playerguard/validator"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"playerguard/cache"
	"playerguard/internal/testkit"
	"playerguard/validator/kakaogames/kakaogamestest"
)

// hitCtx returns a RequestCtx for a cache-hit validation after warming the
// cache through the real upstream path once.
func hitCtx(tb testing.TB, v *validator.Validator, dropIn bool) *fasthttp.RequestCtx {
	tb.Helper()
	return testkit.HitCtx(tb, v.Handler, v.Settle, func(r *fasthttp.Request) {
		if dropIn {
			r.SetRequestURI(ValidationPath)
			r.Header.Set("accessToken", benchToken)
			r.Header.Set("platform", "mobile")
			r.Header.Set("playerId", "123456789123456")
			return
		}
		r.SetRequestURI(Path)
		r.SetBodyString(`{"accessToken":"` + benchToken + `","platform":"mobile","playerId":"123456789123456"}`)
	})
}

const benchToken = "FvNkGat8GaTfyhxHm2rNSFpn5UmvgBBU0kJYVc5kw5mP4lt4IwBFJKhINM0hSFPvnnjy0dlwoF128dDWOOLEWhTrefQ0zYDb3lzeG2uQuyOG1zKZKrwPFRpbNU6Ttno47txU3Slb8L/n6ayXqeAWAg7DtraptD3QLrylAoSNWl1SK3vsXnYy//gqI6i4gWT/ZnSswEHEvj6ooc8vR119IVs4mA=="

func benchValidator(tb testing.TB) *validator.Validator {
	tb.Helper()
	fake, err := kakaogamestest.Start(kakaogamestest.Config{AppID: testApp, AppSecret: testSecret, AdminKey: testKey})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(fake.Close)
	fake.Set(benchToken, kakaogamestest.Allow(testApp, "123456789123456", "normal"))
	v, err := newKakaoGamesValidator(testConfig{Config: validator.Config{CacheTTL: time.Hour, CacheMaxEntries: 1000}, kgConfig: Config{Upstream: fake.URL(), AppID: testApp, AppSecret: testSecret, AdminKey: testKey}})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(v.Close)
	return v
}

// TestCacheHitZeroAllocs: the hot path, through the real handler, in both
// API shapes, allocates nothing.
func TestCacheHitZeroAllocs(t *testing.T) {
	v := benchValidator(t)
	for _, dropIn := range []bool{false, true} {
		t.Run(fmt.Sprintf("dropIn=%v", dropIn), func(t *testing.T) { testkit.ZeroAllocs(t, v.Handler, hitCtx(t, v, dropIn)) })
	}
}

func benchmarkHit(b *testing.B, dropIn bool) {
	v := benchValidator(b)
	ctx := hitCtx(b, v, dropIn)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		ctx.Response.Reset()
		v.Handler(ctx)
	}
}

// BenchmarkHandlerCacheHit is the hot path: /v1/validate with a JSON body,
// answered from cache.
func BenchmarkHandlerCacheHit(b *testing.B) { benchmarkHit(b, false) }

// BenchmarkHandlerCacheHitDropIn is the drop-in hot path (headers).
func BenchmarkHandlerCacheHitDropIn(b *testing.B) { benchmarkHit(b, true) }

// BenchmarkHandlerFixedBody is the baseline: a handler that writes the same
// response with no work at all, i.e. what fasthttp's own ctx handling
// costs per request.
func BenchmarkHandlerFixedBody(b *testing.B) {
	v := benchValidator(b)
	ctx := hitCtx(b, v, false)
	body := append([]byte(nil), ctx.Response.Body()...)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		ctx.Response.Reset()
		ctx.SetStatusCode(200)
		ctx.Response.Header.SetContentTypeBytes(ctJSON)
		ctx.Response.SetBodyRaw(body)
	}
}

func BenchmarkDecideAllow(b *testing.B) {
	body := []byte(`{"player":{"kgAppId":"909428","playerId":"123456789123456","status":"normal","nickname":"n","data":{}}}`)
	b.ReportAllocs()
	for b.Loop() {
		Decide(200, body, "application/json", "123456789123456", []string{"normal"})
	}
}

func BenchmarkDecideLockout(b *testing.B) {
	body := []byte(lockoutBody)
	b.ReportAllocs()
	for b.Loop() {
		Decide(463, body, "application/json", "", []string{"normal"})
	}
}

// BenchmarkRenderLockout is the answer rendering of a lockout kick
// (the /v1 body with the upstream's lockout, token and redirectUri): what
// every kick's answer costs beside its decision.
func BenchmarkRenderLockout(b *testing.B) {
	res := Decide(463, []byte(lockoutBody), "application/json", "", []string{"normal"})
	a := validator.Answer{Res: res, Verdict: res.Verdict, Reason: res.Reason, Source: validator.SourceUpstream}
	b.ReportAllocs()
	for b.Loop() {
		validator.RenderAnswer(&a)
	}
}

// BenchmarkCacheMemoryPerEntry fills a cache with allows as the upstream
// sends them and reports the heap each entry costs (bytes/entry), the
// figure behind sizing -cache-max-entries against a memory limit.
func BenchmarkCacheMemoryPerEntry(b *testing.B) {
	const n = 200_000
	for b.Loop() {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		c, err := cache.New[*validator.Result](cache.Config{MaxEntries: n, MaxAge: time.Hour})
		if err != nil {
			b.Fatal(err)
		}
		var kb cache.KeyBuilder
		for i := range n {
			id := fmt.Sprintf("%015d", 100000000000000+i)
			body := []byte(`{"player":{"kgAppId":"909428","playerId":"` + id + `","status":"normal","nickname":"player-` + id + `","data":{}}}`)
			res := Decide(200, body, "application/json;charset=UTF-8", "", []string{"normal"})
			tok := fmt.Appendf(nil, "token-%d-%s", i, benchToken[:150])
			k := kb.Key([]byte("mobile"), nil, tok)
			for !c.Set(&k, cache.Tags{Player: res.PlayerID, Token: cache.TokenOf(tok)}, c.Stamp(), time.Hour, 0, res) {
				c.Wait() // ristretto drops Sets under pressure; this is a fill, not a race
			}
		}
		c.Wait()
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/n, "bytes/entry")
		b.ReportMetric(float64(c.Stats().Entries), "entries")
		c.Close()
	}
}

// benchPlayers is how many distinct cached players the "Many" benchmarks
// cycle over: the bench's hit scenario's working set, so that cache misses
// in the CPU's caches count as they do under real load.
const benchPlayers = 10_000

type manyReq struct{ token, platform, id, body []byte }

// manyValidator returns a validator with benchPlayers players cached, and
// their requests.
func manyValidator(b *testing.B) (*validator.Validator, []manyReq) {
	b.Helper()
	fake, err := kakaogamestest.Start(kakaogamestest.Config{AppID: testApp, AppSecret: testSecret, AdminKey: testKey})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(fake.Close)
	v, err := newKakaoGamesValidator(testConfig{Config: validator.Config{CacheTTL: time.Hour}, kgConfig: Config{Upstream: fake.URL(), AppID: testApp, AppSecret: testSecret, AdminKey: testKey}})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(v.Close)
	platforms := []string{"mobile", "pc", "launcher"}
	reqs := make([]manyReq, benchPlayers)
	for i := range reqs {
		id := fmt.Sprintf("%015d", 100000000000000+i)
		tok := fmt.Sprintf("%06d", i) + benchToken[6:]
		fake.Set(tok, kakaogamestest.Allow(testApp, id, "normal"))
		r := manyReq{token: []byte(tok), platform: []byte(platforms[i%3]), id: []byte(id)}
		r.body = fmt.Appendf(nil, `{"accessToken":%q,"platform":%q,"playerId":%q}`, tok, r.platform, id)
		reqs[i] = r
	}
	ctx := &fasthttp.RequestCtx{}
	for i := range reqs {
		// ristretto may drop a Set under contention: ask again until the
		// answer comes from the cache.
		for try := 0; string(ctx.Response.Header.Peek("X-Playerguard-Source")) != "cache"; try++ {
			setManyReq(ctx, &reqs[i], false)
			v.Handler(ctx)
			v.Settle()
			if ctx.Response.StatusCode() != 200 || try == 10 {
				b.Fatalf("warm-up: %d %s", ctx.Response.StatusCode(), ctx.Response.Body())
			}
		}
		ctx.Response.Reset()
	}
	return v, reqs
}

func setManyReq(ctx *fasthttp.RequestCtx, r *manyReq, dropIn bool) {
	ctx.Request.Reset()
	ctx.Response.Reset()
	ctx.Request.Header.SetMethod("POST")
	if dropIn {
		ctx.Request.SetRequestURI(ValidationPath)
		ctx.Request.Header.SetBytesV("accessToken", r.token)
		ctx.Request.Header.SetBytesV("platform", r.platform)
		ctx.Request.Header.SetBytesV("playerId", r.id)
	} else {
		ctx.Request.SetRequestURI(Path)
		ctx.Request.SetBodyRaw(r.body)
	}
}

// benchmarkHitMany: cache hits over benchPlayers players from parallel
// goroutines (b.RunParallel; -cpu sets how many), each with its own
// RequestCtx as fasthttp gives each connection. fixed replaces the handler
// with a fixed answer: the request setup's own cost, to subtract.
func benchmarkHitMany(b *testing.B, dropIn, fixed bool) {
	v, reqs := manyValidator(b)
	body := []byte(`{"decision":"allow","reason":"ok","source":"cache","player":{"kgAppId":"909428","playerId":"100000000000000","status":"normal","nickname":"player-100000000000000","data":{}}}`)
	var next atomic.Uint64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		// As fasthttp's server sets up a connection's RequestCtx (Init2
		// with reduceMemoryUsage false): the response keeps its body
		// buffer between requests instead of taking one from the shared
		// pool each time.
		c1, c2 := net.Pipe()
		defer c1.Close()
		defer c2.Close()
		ctx := &fasthttp.RequestCtx{}
		ctx.Init2(c1, nil, false)
		i := int(next.Add(7919)) % len(reqs)
		for pb.Next() {
			setManyReq(ctx, &reqs[i], dropIn)
			if fixed {
				h := &ctx.Response.Header
				h.Set("X-Playerguard-Decision", "allow")
				h.Set("X-Playerguard-Reason", "ok")
				h.Set("X-Playerguard-Source", "cache")
				ctx.SetStatusCode(fasthttp.StatusOK)
				ctx.Response.Header.SetContentTypeBytes(ctJSON)
				ctx.Response.SetBodyRaw(body)
			} else {
				v.Handler(ctx)
			}
			if i++; i == len(reqs) {
				i = 0
			}
		}
	})
}

// BenchmarkHandlerHitMany is the cache-hit handler as the hit scenario
// drives it: many players, parallel callers. Subtract the Fixed variant.
func BenchmarkHandlerHitMany(b *testing.B) {
	b.Run("v1", func(b *testing.B) { benchmarkHitMany(b, false, false) })
	b.Run("dropin", func(b *testing.B) { benchmarkHitMany(b, true, false) })
	b.Run("v1-fixed", func(b *testing.B) { benchmarkHitMany(b, false, true) })
	b.Run("dropin-fixed", func(b *testing.B) { benchmarkHitMany(b, true, true) })
}

package fleet

import (
	"fmt"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"playerguard/cache"
	"playerguard/internal/redistest"
	"playerguard/validator"
	"playerguard/validator/kakaogames"
	"playerguard/validator/kakaogames/kakaogamestest"
)

// BenchmarkMiss: one validation of a token never seen, through the
// handler, against the fake upstream (no latency): "fleet" with a real
// Redis (a look and lock before the call, the store after the answer,
// waited for by Settle outside the timer), "alone" without a tier. The
// difference is what the fleet tier adds to a miss.
//
//	go test -run '^$' -bench Miss -count 5 ./fleet/
func BenchmarkMiss(b *testing.B) {
	rs := redistest.Start(b)
	fake, err := kakaogamestest.Start(kakaogamestest.Config{AppID: testApp})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(fake.Close)
	fake.SetDefault(kakaogamestest.Allow(testApp, "7", "normal"))
	for _, mode := range []string{"fleet", "alone"} {
		b.Run(mode, func(b *testing.B) {
			var tier *Tier
			var shared validator.Fleet
			if mode == "fleet" {
				if tier, err = New(Config{Addrs: []string{rs.Addr}, Key: []byte(fleetKey)}); err != nil {
					b.Fatal(err)
				}
				shared = tier
			}
			c, _ := cache.New[*validator.Result](cache.Config{MaxEntries: 1 << 20, MaxAge: time.Hour})
			kg, err := kakaogames.New(kakaogames.Config{Upstream: fake.URL(), AppID: testApp, AppSecret: "fake-app-secret", AdminKey: "fake-admin-key"})
			if err != nil {
				b.Fatal(err)
			}
			v, err := validator.New(validator.Config{CacheTTL: time.Minute, Cache: c, Fleet: shared}, kg)
			if err != nil {
				b.Fatal(err)
			}
			if tier != nil {
				tier.Start(v)
				for deadline := time.Now().Add(10 * time.Second); !tier.Connected(); time.Sleep(time.Millisecond) {
					if time.Now().After(deadline) {
						b.Fatal("not in the fleet")
					}
				}
			}
			defer func() {
				v.Close()
				if tier != nil {
					tier.Close()
				}
				c.Close()
			}()
			ctx := &fasthttp.RequestCtx{}
			b.ResetTimer()
			for i := range b.N {
				ctx.Request.Reset()
				ctx.Response.Reset()
				ctx.Request.Header.SetMethod("POST")
				ctx.Request.SetRequestURI(kakaogames.Path)
				ctx.Request.SetBodyString(fmt.Sprintf(`{"accessToken":"bench-%s-%d","platform":"mobile","playerId":"7"}`, mode, i))
				v.Handler(ctx)
				if ctx.Response.StatusCode() != 200 {
					b.Fatalf("%d %s", ctx.Response.StatusCode(), ctx.Response.Body())
				}
				b.StopTimer()
				v.Settle() // the store, after the answer
				b.StartTimer()
			}
		})
	}
}

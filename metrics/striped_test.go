package metrics

import (
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/expfmt"
)

// TestStripedMatchesClientGolang: the striped counter and histogram expose
// exactly what client_golang's own would for the same updates, made from
// many goroutines at once.
func TestStripedMatchesClientGolang(t *testing.T) {
	bounds := []float64{.00005, .0001, .001, .01, .1, 1}
	ours := NewHistogramVec("test_seconds", "help", bounds, "source")
	theirs := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: namespace, Name: "test_seconds", Help: "help", Buckets: bounds,
	}, []string{"source"})
	oursC := NewCounterVec("test_total", "help", "source")
	theirsC := prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: "test_total", Help: "help"}, []string{"source"})

	// Durations on bucket edges, between them, beyond the last, and below
	// zero (counted as zero), so each bucket's boundary rule is exercised.
	var ds []time.Duration
	for _, b := range bounds {
		edge := time.Duration(b * float64(time.Second))
		ds = append(ds, edge, edge-1, edge+1)
	}
	ds = append(ds, 0, -time.Second, 3*time.Second, 17*time.Microsecond)

	var mu sync.Mutex
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(g), 1))
			oh, oc := ours.WithLabelValues("a"), oursC.WithLabelValues("a")
			for range 5000 {
				d := ds[r.IntN(len(ds))]
				oh.Observe(d)
				oc.Inc()
				mu.Lock()
				theirs.WithLabelValues("a").Observe(max(d, 0).Seconds())
				theirsC.WithLabelValues("a").Inc()
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	ours.WithLabelValues("untouched")
	theirs.WithLabelValues("untouched")

	for _, pair := range []struct{ ours, theirs prometheus.Collector }{{ours, theirs}, {oursC, theirsC}} {
		want, err := testutil.CollectAndFormat(pair.theirs, expfmt.TypeTextPlain)
		if err != nil {
			t.Fatal(err)
		}
		got, err := testutil.CollectAndFormat(pair.ours, expfmt.TypeTextPlain)
		if err != nil {
			t.Fatal(err)
		}
		// The sums are float additions in another order: compare them
		// with a tolerance, the rest byte for byte.
		gotRest, gotSum := splitSum(string(got))
		wantRest, wantSum := splitSum(string(want))
		if gotRest != wantRest {
			t.Errorf("exposition differs:\n--- striped\n%s\n--- client_golang\n%s", got, want)
		}
		if len(gotSum) != len(wantSum) {
			t.Fatalf("sums: %v vs %v", gotSum, wantSum)
		}
		for i := range gotSum {
			if d := gotSum[i] - wantSum[i]; d > 1e-6 || d < -1e-6 {
				t.Errorf("sum %d: %v, client_golang %v", i, gotSum[i], wantSum[i])
			}
		}
	}
	if n := oursC.WithLabelValues("a").Value(); n != 8*5000 {
		t.Errorf("counter = %d, want %d", n, 8*5000)
	}
}

func splitSum(expo string) (rest string, sums []float64) {
	var b strings.Builder
	for _, line := range strings.Split(expo, "\n") {
		if name, val, ok := strings.Cut(line, " "); ok && strings.Contains(name, "_sum") {
			f, err := parseFloat(val)
			if err == nil {
				sums = append(sums, f)
				b.WriteString(name + " SUM\n")
				continue
			}
		}
		b.WriteString(line + "\n")
	}
	return b.String(), sums
}

// TestStripedRegistry: the families register beside client_golang's and
// pass the registry's consistency checks, and a child made twice is one
// series.
func TestStripedRegistry(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := New(reg, "test")
	a := m.Validations.WithLabelValues("kakao-games", "allow", "ok", "cache")
	if b := m.Validations.WithLabelValues("kakao-games", "allow", "ok", "cache"); a != b {
		t.Error("WithLabelValues made a second child for the same labels")
	}
	a.Inc()
	a.Inc()
	m.Validations.WithLabelValues("kakao-games", "kick", "invalid_token", "cache").Inc()
	up := m.Validations.WithLabelValues("kakao-games", "allow", "ok", "upstream")
	up.Inc()
	up.Inc()
	m.Validations.WithLabelValues("kakao-login", "allow", "ok", "upstream").Inc()
	m.Validations.WithLabelValues("kakao-login", "allow", "ok", "cache").Inc()
	m.ValidationSeconds.WithLabelValues("kakao-games", "cache").Observe(3 * time.Microsecond)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	found := map[string]bool{}
	for _, mf := range mfs {
		found[mf.GetName()] = true
	}
	for _, name := range []string{"playerguard_validations_total", "playerguard_validation_duration_seconds", "playerguard_cache_hits_total"} {
		if !found[name] {
			t.Errorf("%s not gathered", name)
		}
	}
	if n, err := testutil.GatherAndCount(reg, "playerguard_cache_hits_total"); err != nil || n != 2 {
		t.Errorf("cache_hits_total series: %d, %v", n, err)
	}
	// cache_hits_total is the validations answered from the cache, of any
	// decision, per provider: 2 allows and 1 kick, not the 2 upstream
	// allows; and the other provider's own.
	want := "# HELP playerguard_cache_hits_total Validations answered from a fresh cache entry, by provider.\n# TYPE playerguard_cache_hits_total counter\n" +
		"playerguard_cache_hits_total{provider=\"kakao-games\"} 3\nplayerguard_cache_hits_total{provider=\"kakao-login\"} 1\n"
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "playerguard_cache_hits_total"); err != nil {
		t.Error(err)
	}
}

func TestHistogramBucketsChecked(t *testing.T) {
	for _, bounds := range [][]float64{{1, 0.5}, make([]float64, maxBuckets+1)} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("NewHistogramVec(%v) did not panic", bounds)
				}
			}()
			NewHistogramVec("x", "h", bounds)
		}()
	}
}

// BenchmarkStripedVsClientGolang: one cache hit's metric updates (a
// counter, a histogram) from all cores at once.
func BenchmarkStripedVsClientGolang(b *testing.B) {
	b.Run("striped", func(b *testing.B) {
		c := NewCounterVec("c", "h").WithLabelValues()
		h := NewHistogramVec("h", "h", []float64{.00005, .0001, .00025, .0005, .001}).WithLabelValues()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				c.Inc()
				h.Observe(3 * time.Microsecond)
			}
		})
	})
	b.Run("client_golang", func(b *testing.B) {
		c := prometheus.NewCounter(prometheus.CounterOpts{Name: "c", Help: "h"})
		h := prometheus.NewHistogram(prometheus.HistogramOpts{Name: "h", Help: "h", Buckets: []float64{.00005, .0001, .00025, .0005, .001}})
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				c.Inc()
				h.Observe((3 * time.Microsecond).Seconds())
			}
		})
	})
}

func parseFloat(s string) (float64, error) { return strconv.ParseFloat(s, 64) }

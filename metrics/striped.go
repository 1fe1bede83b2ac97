package metrics

import (
	"math/rand/v2"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Striped counters and histograms, for the metrics every cache hit
// updates. A client_golang counter is one atomic word, and its histogram
// three (a bucket, the count, and the sum through a compare-and-swap
// loop): with the handler running on every core, those cache lines move
// between cores on each request. The bench's parallel cache-hit benchmark
// (validator.BenchmarkHandlerHitMany) measured the three hit-path updates
// at about 13% of a hit's CPU time that way (with cache_hits_total, since
// derived from validations_total, as a third).
//
// Here each metric keeps stripes on cache lines of their own, and each
// update goes to a stripe picked by the runtime's per-thread random
// source, so two cores rarely write the same line; a scrape adds the
// stripes up. The exposition is the same as client_golang's: a counter,
// or a histogram with cumulative buckets, _sum and _count.

// stripes is the number of stripes per metric: with 2 cores updating at
// once, two updates meet on a stripe one time in eight.
const stripes = 8

func stripe() uint32 { return rand.Uint32() & (stripes - 1) }

// Stripes are 128 bytes apart and padded past their last hot word, so two
// never share a cache line (nor the adjacent line Intel prefetches with
// it), however the allocator aligns them.
type paddedUint64 struct {
	atomic.Uint64
	_ [120]byte
}

// Counter is a striped counter. Create it through a CounterVec.
type Counter struct {
	cells [stripes]paddedUint64
}

// Inc adds one.
func (c *Counter) Inc() { c.cells[stripe()].Add(1) }

// Value is the sum of the stripes.
func (c *Counter) Value() uint64 {
	var n uint64
	for i := range c.cells {
		n += c.cells[i].Load()
	}
	return n
}

// family is a metric family with labels whose children are made at
// start-up (WithLabelValues) and kept by the caller.
type family[T any] struct {
	desc     *prometheus.Desc
	labels   []string
	newChild func() *T
	mu       sync.Mutex
	children map[string]*T
	order    []labelled[T]
}

type labelled[T any] struct {
	lvs []string
	m   *T
}

func newFamily[T any](name, help string, labels []string, newChild func() *T) family[T] {
	return family[T]{
		desc:     prometheus.NewDesc(namespace+"_"+name, help, labels, nil),
		labels:   labels,
		newChild: newChild,
		children: map[string]*T{},
	}
}

// WithLabelValues returns the child for lvs, creating it (and so its
// series, at zero) on first use. It takes a lock: call it at start-up.
func (f *family[T]) WithLabelValues(lvs ...string) *T {
	var key []byte
	for _, s := range lvs {
		key = append(key, s...)
		key = append(key, 0xff) // not valid UTF-8: cannot occur in a label value
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if m, ok := f.children[string(key)]; ok {
		return m
	}
	m := f.newChild()
	f.children[string(key)] = m
	f.order = append(f.order, labelled[T]{append([]string(nil), lvs...), m})
	return m
}

func (f *family[T]) Describe(ch chan<- *prometheus.Desc) { ch <- f.desc }

// list is the children made so far, in the order they were made.
func (f *family[T]) list() []labelled[T] {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.order
}

func (f *family[T]) collect(ch chan<- prometheus.Metric, metric func(m *T, lvs []string) prometheus.Metric) {
	for _, c := range f.list() {
		ch <- metric(c.m, c.lvs)
	}
}

// CounterVec is a striped counter family.
type CounterVec struct{ family[Counter] }

// NewCounterVec returns a counter family named playerguard_<name>.
func NewCounterVec(name, help string, labels ...string) *CounterVec {
	return &CounterVec{newFamily(name, help, labels, func() *Counter { return new(Counter) })}
}

// sums is sumBy's answer: a sum per value of the grouping label, in the
// order the values were first seen.
type sums struct {
	order []string
	n     map[string]uint64
}

// sumBy is, for each value of the label group, the sum of the children
// with that value whose label has value.
func (v *CounterVec) sumBy(group, label, value string) sums {
	g, i := slices.Index(v.labels, group), slices.Index(v.labels, label)
	s := sums{n: map[string]uint64{}}
	for _, c := range v.list() {
		k := c.lvs[g]
		if _, ok := s.n[k]; !ok {
			s.order = append(s.order, k)
			s.n[k] = 0
		}
		if c.lvs[i] == value {
			s.n[k] += c.m.Value()
		}
	}
	return s
}

func (v *CounterVec) Collect(ch chan<- prometheus.Metric) {
	v.collect(ch, func(c *Counter, lvs []string) prometheus.Metric {
		return prometheus.MustNewConstMetric(v.desc, prometheus.CounterValue, float64(c.Value()), lvs...)
	})
}

// Histogram is a striped histogram of durations. Create it through a
// HistogramVec.
type Histogram struct {
	bounds  []float64 // upper bounds in seconds, ascending
	nanos   []int64   // the same bounds in nanoseconds
	stripes [stripes]histStripe
}

// maxBuckets bounds a HistogramVec's buckets, so a stripe is a fixed array.
const maxBuckets = 29

type histStripe struct {
	// counts[i] is observations in (bounds[i-1], bounds[i]]; counts[n] is
	// +Inf. The count is their sum, so the two cannot disagree.
	counts [maxBuckets + 1]atomic.Uint64
	sum    atomic.Int64 // nanoseconds
	_      [120]byte
}

// Observe records d. Negative durations count as zero.
func (h *Histogram) Observe(d time.Duration) {
	n := max(int64(d), 0)
	i := 0
	for i < len(h.nanos) && n > h.nanos[i] {
		i++
	}
	s := &h.stripes[stripe()]
	s.counts[i].Add(1)
	s.sum.Add(n)
}

// snapshot returns the cumulative bucket counts, the count and the sum in
// seconds.
func (h *Histogram) snapshot() (map[float64]uint64, uint64, float64) {
	per := make([]uint64, len(h.bounds)+1)
	var sum int64
	for si := range h.stripes {
		s := &h.stripes[si]
		for i := range per {
			per[i] += s.counts[i].Load()
		}
		sum += s.sum.Load()
	}
	buckets := make(map[float64]uint64, len(h.bounds))
	var cum uint64
	for i, b := range h.bounds {
		cum += per[i]
		buckets[b] = cum
	}
	return buckets, cum + per[len(h.bounds)], time.Duration(sum).Seconds()
}

// HistogramVec is a striped histogram family, for durations.
type HistogramVec struct{ family[Histogram] }

// NewHistogramVec returns a histogram family named playerguard_<name> with
// the given bucket upper bounds in seconds (ascending).
func NewHistogramVec(name, help string, bounds []float64, labels ...string) *HistogramVec {
	if len(bounds) > maxBuckets || !slices.IsSorted(bounds) {
		panic("metrics: histogram buckets must be ascending, at most " + strconv.Itoa(maxBuckets))
	}
	var nanos []int64
	for _, b := range bounds {
		nanos = append(nanos, int64(b*float64(time.Second)))
	}
	return &HistogramVec{newFamily(name, help, labels, func() *Histogram {
		return &Histogram{bounds: bounds, nanos: nanos}
	})}
}

func (v *HistogramVec) Collect(ch chan<- prometheus.Metric) {
	v.collect(ch, func(h *Histogram, lvs []string) prometheus.Metric {
		buckets, count, sum := h.snapshot()
		return prometheus.MustNewConstHistogram(v.desc, count, sum, buckets, lvs...)
	})
}

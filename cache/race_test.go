//go:build race

package cache

// raceEnabled: the race detector slows ristretto's goroutines enough that
// its lossy access buffers drop most reports, so admission tests mean
// nothing under -race.
const raceEnabled = true

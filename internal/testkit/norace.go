//go:build !race

package testkit

// RaceEnabled says the race detector is on.
const RaceEnabled = false

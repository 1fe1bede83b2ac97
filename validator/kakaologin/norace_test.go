//go:build !race

package kakaologin_test

const raceEnabled = false

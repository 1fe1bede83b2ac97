//go:build !race

package kakaogames

const raceEnabled = false

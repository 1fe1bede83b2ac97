//go:build !race

package kakaooidc

const raceEnabled = false

package kakaooidctest

import "time"

// DemoAudience is the demo's app key (aud) when none is given.
const DemoAudience = "demo-kakao-rest-api-key"

// DemoToken is one sample ID token of the demo.
type DemoToken struct {
	Name   string // short human label, e.g. "hana (valid)"
	Token  string // the idToken to send
	UserID string // its sub
	Expect string // short human text: "allow", "kick (token_expired)"...
}

// Demo returns sample ID tokens for app key aud signed now by the fake's
// kid-1: a valid one (six hours left, as Kakao's), an expired one,
// another app's, and one whose signature does not match.
func (s *Server) Demo(aud string, now time.Time) []DemoToken {
	valid := Claims{Sub: "4000000011", Aud: aud, Iat: now, Exp: now.Add(6 * time.Hour), AuthTime: now, Nickname: "hana"}
	expired := Claims{Sub: "4000000012", Aud: aud, Iat: now.Add(-7 * time.Hour), Exp: now.Add(-time.Hour), AuthTime: now.Add(-7 * time.Hour)}
	other := valid
	other.Sub, other.Aud, other.Nickname = "4000000013", "another-apps-key", ""
	forged := valid
	forged.Sub, forged.Nickname = "4000000014", ""
	bad := s.Sign("kid-1", forged)
	// The signature of another token: well-formed, and wrong.
	tampered := bad[:lastDot(bad)+1] + s.Sign("kid-1", valid)[lastDot(s.Sign("kid-1", valid))+1:]
	return []DemoToken{
		{"hana (valid)", s.Sign("kid-1", valid), valid.Sub, "allow"},
		{"jun (expired)", s.Sign("kid-1", expired), expired.Sub, "kick (token_expired)"},
		{"mina (another app's key)", s.Sign("kid-1", other), other.Sub, "kick (wrong_audience)"},
		{"seo (bad signature)", tampered, forged.Sub, "kick (invalid_token)"},
	}
}

func lastDot(t string) int {
	for i := len(t) - 1; i >= 0; i-- {
		if t[i] == '.' {
			return i
		}
	}
	return -1
}

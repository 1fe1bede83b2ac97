package kakaogamestest

// DemoPlayer is one sample player of the demo.
type DemoPlayer struct {
	Name     string // short human label, e.g. "alice (normal)"
	Token    string // accessToken to send; clearly fake ("demo-...")
	PlayerID string // playerId the token belongs to
	Platform string // platform header to send
	Expect   string // short human text: "allow", "kick (lockout)", "unavailable (upstream error)"...
}

type demoEntry struct {
	p       DemoPlayer
	verdict func(appID, playerID string) Verdict
}

var demoEntries = []demoEntry{
	{
		DemoPlayer{"alice (normal)", "demo-YWxpY2Utbm9ybWFsLXBsYXllci1mYWtlLTAw", "100000000000001", "pc", "allow"},
		func(appID, playerID string) Verdict { return Allow(appID, playerID, "normal") },
	},
	{
		DemoPlayer{"bob (locked out)", "demo-Ym9iLWxvY2tlZG91dC1wbGF5ZXItZmFrZS0w", "100000000000002", "mobile", "kick (lockout)"},
		Lockout,
	},
	{
		DemoPlayer{"carol (sanctioned)", "demo-Y2Fyb2wtc2FuY3Rpb25lZC1wbGF5ZXItZi0w", "100000000000003", "launcher", "kick (sanction)"},
		Sanction,
	},
	{
		DemoPlayer{"dave (invalid token)", "demo-ZGF2ZS1pbnZhbGlkLXRva2VuLWZha2UtMDAw", "100000000000004", "web", "kick (invalid token)"},
		func(string, string) Verdict { return Invalid() },
	},
	{
		DemoPlayer{"erin (upstream failing)", "demo-ZXJpbi1mYWlsaW5nLXVwc3RyZWFtLWZha2Ut", "100000000000005", "pc", "unavailable (upstream error)"},
		func(string, string) Verdict { return Error(500) },
	},
}

// Demo returns the sample players of the demo: a normal player, a locked
// out one, a sanctioned one, one with an invalid token and one whose
// validation fails upstream (500). The players do not depend on appID
// (it is accepted for symmetry with LoadDemo). The result is a fresh slice.
func Demo(appID string) []DemoPlayer {
	_ = appID
	out := make([]DemoPlayer, len(demoEntries))
	for i, e := range demoEntries {
		out[i] = e.p
	}
	return out
}

// LoadDemo Sets the verdicts of Demo(appID)'s players. appID "" means the
// server's configured AppID.
func (s *Server) LoadDemo(appID string) {
	if appID == "" {
		appID = s.cfg.AppID
	}
	for _, e := range demoEntries {
		s.Set(e.p.Token, e.verdict(appID, e.p.PlayerID))
	}
}

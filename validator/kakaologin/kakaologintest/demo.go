package kakaologintest

import "strconv"

// DemoUser is one sample Kakao Login user of the demo.
type DemoUser struct {
	Name   string // short human label, e.g. "hana (valid)"
	Token  string // accessToken to send; clearly fake ("demo-kl-...")
	UserID string // the Kakao user id the token belongs to ("" for none)
	Expect string // short human text: "allow", "kick (wrong_app)"...
}

type demoEntry struct {
	u       DemoUser
	verdict func(appID int64, userID int64) Verdict
}

var demoEntries = []demoEntry{
	{DemoUser{"hana (valid)", "demo-kl-aGFuYS12YWxpZC10b2tlbi1mYWtlLTAw", "4000000001", "allow"},
		func(app, id int64) Verdict { return Valid(id, app, 21599) }},
	{DemoUser{"jun (expired token)", "demo-kl-anVuLWV4cGlyZWQtdG9rZW4tZmFrZS0w", "4000000002", "kick (invalid_token)"},
		func(int64, int64) Verdict { return Invalid() }},
	{DemoUser{"mina (another app's token)", "demo-kl-bWluYS1vdGhlci1hcHAtdG9rZW4tZmFr", "4000000003", "kick (wrong_app)"},
		func(app, id int64) Verdict { return Valid(id, app+1, 21599) }},
	{DemoUser{"seo (sanctioned account)", "demo-kl-c2VvLXNhbmN0aW9uZWQtYWNjb3VudC1m", "4000000004", "kick (account_blocked)"},
		func(int64, int64) Verdict { return Code(403, -4, "the account is restricted") }},
	{DemoUser{"woo (Kakao in maintenance)", "demo-kl-d29vLW1haW50ZW5hbmNlLWZha2UtMDAw", "4000000005", "unavailable (upstream_maintenance; HTTP 400 from Kakao, no kick)"},
		func(int64, int64) Verdict { return Code(400, -7, "service under maintenance") }},
}

// Demo returns the demo's sample users: a valid token, an expired one,
// another app's token, a sanctioned account and a token asked about
// during Kakao's maintenance (HTTP 400, code -7). The result is a fresh
// slice.
func Demo() []DemoUser {
	out := make([]DemoUser, len(demoEntries))
	for i, e := range demoEntries {
		out[i] = e.u
	}
	return out
}

// LoadDemo Sets the verdicts of Demo's users for app appID (a positive
// integer).
func (s *Server) LoadDemo(appID string) {
	app, _ := strconv.ParseInt(appID, 10, 64)
	for _, e := range demoEntries {
		id, _ := strconv.ParseInt(e.u.UserID, 10, 64)
		s.Set(e.u.Token, e.verdict(app, id))
	}
}

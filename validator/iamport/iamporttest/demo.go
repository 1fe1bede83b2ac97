package iamporttest

import (
	"strconv"
	"time"
)

// The demo's i'mport credentials.
const (
	DemoKey    = "demo-imp-key"
	DemoSecret = "demo-imp-secret"
)

// DemoCert is one sample verification of the demo.
type DemoCert struct {
	Name   string // short human label
	ImpUID string
	Expect string // "allow", "kick (underage)"...
}

// LoadDemo makes the demo's verifications known, dated from now (in
// Seoul): an adult, a 17-year-old, an uncertified verification, and
// someone who turns 19 today. It returns them.
func (s *Server) LoadDemo(now time.Time) []DemoCert {
	seoul := time.FixedZone("Asia/Seoul", 9*60*60)
	today := now.In(seoul)
	birthday := func(years int) string {
		y, m, d := today.AddDate(-years, 0, 0).Date()
		if m != today.Month() { // 29 February in a common year
			y, m, d = today.Year()-years, today.Month(), today.Day()-1
		}
		return time.Date(y, m, d, 0, 0, 0, 0, seoul).Format(time.DateOnly)
	}
	certified := now.Add(-time.Minute).Unix()
	c := func(bd string, ok bool, n int) Cert {
		return Cert{Name: "데모" + strconv.Itoa(n), Gender: "female", Birthday: bd, Certified: ok, CertifiedAt: certified,
			UniqueKey: "demo-ci-" + strconv.Itoa(n), UniqueInSite: "demo-di-" + strconv.Itoa(n), Phone: "0100000000" + strconv.Itoa(n), Carrier: "SKT"}
	}
	demo := []struct {
		d    DemoCert
		cert Cert
	}{
		{DemoCert{"an adult (30)", "imp_100000000001", "allow"}, c(birthday(30), true, 1)},
		{DemoCert{"a 17-year-old", "imp_100000000002", "kick (underage)"}, c(birthday(17), true, 2)},
		{DemoCert{"a verification never completed", "imp_100000000003", "kick (not_certified)"}, c(birthday(30), false, 3)},
		{DemoCert{"19 today", "imp_100000000004", "allow"}, c(birthday(19), true, 4)},
	}
	out := make([]DemoCert, len(demo))
	for i, e := range demo {
		s.Set(e.d.ImpUID, e.cert)
		out[i] = e.d
	}
	return out
}

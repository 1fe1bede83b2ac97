package iamport

import (
	"testing"
	"time"
)

func d(y int, m time.Month, day int) Date { return Date{y, m, day} }

// TestAgeRules: the edges of both rules.
func TestAgeRules(t *testing.T) {
	for _, c := range []struct {
		name         string
		rule         AgeRule
		birth, today Date
		min          int
		want         bool
	}{
		{"full: the day before the 19th birthday", RuleFull, d(2007, 6, 15), d(2026, 6, 14), 19, false},
		{"full: the 19th birthday", RuleFull, d(2007, 6, 15), d(2026, 6, 15), 19, true},
		{"full: the day after", RuleFull, d(2007, 6, 15), d(2026, 6, 16), 19, true},
		{"full: born 29 Feb, 28 Feb of a common year", RuleFull, d(2008, 2, 29), d(2027, 2, 28), 19, false},
		{"full: born 29 Feb, 1 Mar of a common year", RuleFull, d(2008, 2, 29), d(2027, 3, 1), 19, true},
		{"full: born 29 Feb, 29 Feb of a leap year", RuleFull, d(2004, 2, 29), d(2024, 2, 29), 20, true},
		{"full: born 29 Feb, 28 Feb of a leap year", RuleFull, d(2004, 2, 29), d(2024, 2, 28), 20, false},
		{"full: 12, the day before", RuleFull, d(2014, 1, 1), d(2025, 12, 31), 12, false},
		{"full: 12 on New Year's Day", RuleFull, d(2014, 1, 1), d(2026, 1, 1), 12, true},
		{"year: turns 19 in December, in January", RuleYear, d(2007, 12, 31), d(2026, 1, 1), 19, true},
		{"year: born the next year", RuleYear, d(2008, 1, 1), d(2026, 12, 31), 19, false},
		{"year: the seed's year check is not full age", RuleFull, d(2007, 12, 31), d(2026, 1, 1), 19, false},
	} {
		if got := c.rule.Meets(c.birth, c.today, c.min); got != c.want {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
	// New Year's Eve in UTC is already New Year's Day in Seoul.
	eve := time.Date(2025, 12, 31, 15, 30, 0, 0, time.UTC)
	if got := DateIn(eve); got != d(2026, 1, 1) {
		t.Errorf("DateIn(%v) = %v, want 2026-01-01", eve, got)
	}
	if !RuleYear.Meets(d(2007, 5, 5), DateIn(eve), 19) || RuleYear.Meets(d(2007, 5, 5), DateIn(eve.Add(-time.Hour)), 19) {
		t.Error("the year rule does not turn over at midnight in Seoul")
	}
	for s, ok := range map[string]bool{"2007-06-15": true, "2007-02-30": false, "2007-6-15": false, "07-06-15": false, "": false, "2008-02-29": true, "2007-02-29": false} {
		if _, got := ParseDate(s); got != ok {
			t.Errorf("ParseDate(%q) ok = %v", s, got)
		}
	}
}

package iamport

import (
	"errors"
	"strconv"
	"time"
)

// Seoul is Korea's time: UTC+9 all year (no daylight saving since 1988),
// fixed so the age rule needs no time zone database on the host.
var Seoul = time.FixedZone("Asia/Seoul", 9*60*60)

// AgeRule is how an age gate counts a player's age.
type AgeRule int

const (
	// RuleFull is full age (만 나이) on today's date in Seoul: game
	// ratings 12 and 15, and the Game Industry Promotion Act.
	RuleFull AgeRule = iota
	// RuleYear is the Youth Protection Act's: born in or before this
	// year (in Seoul) minus the minimum age, whatever the day.
	RuleYear
)

func (r AgeRule) String() string { return [...]string{"full", "year"}[r] }

// ParseAgeRule reads -age-rule.
func ParseAgeRule(s string) (AgeRule, error) {
	switch s {
	case "full":
		return RuleFull, nil
	case "year":
		return RuleYear, nil
	}
	return 0, errors.New("unknown age rule " + strconv.Quote(s) + " (want full or year)")
}

// Date is a calendar date.
type Date struct {
	Year  int
	Month time.Month
	Day   int
}

// ParseDate reads YYYY-MM-DD, a real date.
func ParseDate(s string) (Date, bool) {
	t, err := time.Parse(time.DateOnly, s)
	if err != nil || t.Format(time.DateOnly) != s {
		return Date{}, false
	}
	return Date{t.Year(), t.Month(), t.Day()}, true
}

// DateIn is the date at t in Seoul.
func DateIn(t time.Time) Date {
	y, m, d := t.In(Seoul).Date()
	return Date{y, m, d}
}

// FullAge is the full age on today of someone born on birth: the years
// since, less one before this year's birthday. A birthday on 29 February
// counts as 1 March in common years.
func FullAge(birth, today Date) int {
	age := today.Year - birth.Year
	m, d := birth.Month, birth.Day
	if m == time.February && d == 29 && !leap(today.Year) {
		m, d = time.March, 1
	}
	if today.Month < m || today.Month == m && today.Day < d {
		age--
	}
	return age
}

// Meets reports whether someone born on birth is old enough, minAge, on
// today under rule.
func (r AgeRule) Meets(birth, today Date, minAge int) bool {
	if r == RuleYear {
		return birth.Year <= today.Year-minAge
	}
	return FullAge(birth, today) >= minAge
}

func leap(y int) bool { return y%4 == 0 && (y%100 != 0 || y%400 == 0) }

package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"strings"
	"text/tabwriter"
	"time"
)

// Report is one scenario's outcome.
type Report struct {
	Scenario string   `json:"scenario"`
	Title    string   `json:"title"`
	Setup    []string `json:"setup"`             // how it was run: sizes, flags, latencies
	Rows     []Row    `json:"rows"`              // the results table
	Tables   []Table  `json:"tables,omitempty"`  // scenario-specific tables (outage phases, memory)
	Ratios   []Ratio  `json:"ratios,omitempty"`  // peer comparisons
	Checks   []Check  `json:"checks"`            // correctness assertions and targets
	Notes    []string `json:"notes,omitempty"`   // observations, profiles
	Skipped  []string `json:"skipped,omitempty"` // peers or parts not run, and why
	Error    string   `json:"error,omitempty"`   // the scenario could not run
	Seconds  float64  `json:"seconds"`           // wall time
}

// Row is one line of the results table. Latencies are in microseconds.
// A nil pointer is "not applicable" (printed "-", null in JSON).
type Row struct {
	Name          string    `json:"name"`
	Requests      int64     `json:"requests"`
	RPS           float64   `json:"rps"`
	P50us         float64   `json:"p50_us"`
	P90us         float64   `json:"p90_us"`
	P99us         float64   `json:"p99_us"`
	MaxUs         float64   `json:"max_us"`
	Errors        int64     `json:"errors"`
	UpstreamCalls *int64    `json:"upstream_calls"`
	CPUSeconds    *float64  `json:"cpu_seconds"`
	CPUusPerReq   *float64  `json:"cpu_us_per_request"`
	PeakRSSMiB    *float64  `json:"peak_rss_mib"`
	RoundsRPS     []float64 `json:"rounds_rps,omitempty"` // each round's req/s, when there were rounds
}

// Table is a free-form table.
type Table struct {
	Title  string     `json:"title"`
	Header []string   `json:"header"`
	Rows   [][]string `json:"rows"`
}

// Ratio compares playerguard with a peer.
type Ratio struct {
	Name   string    `json:"name"`
	Value  float64   `json:"value"`
	Rounds []float64 `json:"rounds,omitempty"`
}

// Check kinds.
const (
	// kindCorrectness is an assertion: a failure fails the run.
	kindCorrectness = "correctness"
	// kindTarget is a performance target: reported met or missed.
	kindTarget = "target"
	// kindUnjudged is a performance target in a -smoke run: its sizes are
	// too small to say anything about speed, so it is shown, not judged.
	kindUnjudged = "target-not-judged"
)

// Check is one assertion or target with what the run measured.
type Check struct {
	Name   string `json:"name"`
	Kind   string `json:"kind"`
	Target string `json:"target"`
	Got    string `json:"got"`
	OK     bool   `json:"ok"`
}

func (r *Report) setup(format string, a ...any) { r.Setup = append(r.Setup, fmt.Sprintf(format, a...)) }
func (r *Report) note(format string, a ...any)  { r.Notes = append(r.Notes, fmt.Sprintf(format, a...)) }

func (r *Report) check(kind, name, target string, ok bool, format string, a ...any) {
	r.Checks = append(r.Checks, Check{Name: name, Kind: kind, Target: target, Got: fmt.Sprintf(format, a...), OK: ok})
}

// skipMissing records a peer or part not run. Under CI=true (CI installs
// wrk, nginx and redis-server) a missing tool is a correctness failure,
// not a skip.
func (r *Report) skipMissing(tool, what string) { r.skipMissingHint(tool, what, installHint) }

// skipMissingHint is skipMissing with the install command to print.
func (r *Report) skipMissingHint(tool, what, hint string) {
	msg := fmt.Sprintf("%s: %s is not installed (%s)", what, tool, hint)
	r.Skipped = append(r.Skipped, msg)
	if os.Getenv("CI") == "true" {
		r.check(kindCorrectness, tool+" installed", "CI installs "+tool, false, "missing")
	}
}

// failed reports whether a correctness check failed or the scenario errored.
func (r *Report) failed() bool {
	if r.Error != "" {
		return true
	}
	for _, c := range r.Checks {
		if c.Kind == kindCorrectness && !c.OK {
			return true
		}
	}
	return false
}

func i64(v int64) *int64       { return &v }
func f64(v float64) *float64   { return &v }
func mib(bytes int64) *float64 { return f64(float64(bytes) / (1 << 20)) }

// fmtUs prints a latency given in microseconds with a readable unit.
func fmtUs(us float64) string {
	switch {
	case math.IsNaN(us):
		return "-"
	case us < 1000:
		return fmt.Sprintf("%.0fµs", us)
	case us < 1e6:
		return fmt.Sprintf("%.2fms", us/1000)
	}
	return fmt.Sprintf("%.2fs", us/1e6)
}

func fmtDur(d time.Duration) string { return fmtUs(float64(d) / float64(time.Microsecond)) }

// fmtInt prints n with thousands separators.
func fmtInt(n int64) string {
	s := fmt.Sprint(n)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// Output is what -json prints: the machine, the command, every report.
type Output struct {
	Command string    `json:"command"`
	Tree    string    `json:"tree"` // the commit measured, and uncommitted changes to playerguard's code
	Date    string    `json:"date"`
	Machine Machine   `json:"machine"`
	Reports []*Report `json:"reports"`
	Failed  bool      `json:"failed"`
}

// Machine describes where the run happened.
type Machine struct {
	NProc  int    `json:"nproc"`
	CPU    string `json:"cpu"`
	Kernel string `json:"kernel"`
	Go     string `json:"go"`
	Wrk    string `json:"wrk"`
	Nginx  string `json:"nginx"`
}

func writeJSON(w io.Writer, out *Output) error {
	// JSON has no NaN (a median of nothing): null-like zeros instead.
	fix := func(v *float64) {
		if math.IsNaN(*v) || math.IsInf(*v, 0) {
			*v = 0
		}
	}
	for _, r := range out.Reports {
		for i := range r.Rows {
			row := &r.Rows[i]
			for _, v := range []*float64{&row.RPS, &row.P50us, &row.P90us, &row.P99us, &row.MaxUs, row.CPUSeconds, row.CPUusPerReq, row.PeakRSSMiB} {
				if v != nil {
					fix(v)
				}
			}
			for j := range row.RoundsRPS {
				fix(&row.RoundsRPS[j])
			}
		}
		for i := range r.Ratios {
			fix(&r.Ratios[i].Value)
			for j := range r.Ratios[i].Rounds {
				fix(&r.Ratios[i].Rounds[j])
			}
		}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}

// writeText prints the reports as tables.
func writeText(w io.Writer, out *Output) {
	m := out.Machine
	fmt.Fprintf(w, "playerguard bench, %s\ncommand: %s\ntree: %s\nmachine: %d CPUs, %s, kernel %s, %s, wrk %s, nginx %s\n",
		out.Date, out.Command, out.Tree, m.NProc, m.CPU, m.Kernel, m.Go, orDash(m.Wrk), orDash(m.Nginx))
	for _, r := range out.Reports {
		writeReport(w, r)
	}
	fmt.Fprintf(w, "\n== summary ==\n")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, r := range out.Reports {
		if r.Error != "" {
			fmt.Fprintf(tw, "%s\tERROR\t%s\n", r.Scenario, firstLine(r.Error))
		}
		for _, c := range r.Checks {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", r.Scenario, verdict(c), c.Name, c.Got)
		}
		for _, s := range r.Skipped {
			fmt.Fprintf(tw, "%s\tskipped\t%s\t\n", r.Scenario, s)
		}
	}
	tw.Flush()
	if out.Failed {
		fmt.Fprintf(w, "\nbench: FAILED (a correctness check failed or a scenario could not run)\n")
	} else {
		fmt.Fprintf(w, "\nbench: every correctness check passed\n")
	}
}

func verdict(c Check) string {
	switch {
	case c.Kind == kindTarget && c.OK:
		return "met"
	case c.Kind == kindTarget:
		return "MISSED"
	case c.Kind == kindUnjudged:
		return "smoke: n/a"
	case c.OK:
		return "ok"
	}
	return "FAIL"
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	return l
}

func writeReport(w io.Writer, r *Report) {
	fmt.Fprintf(w, "\n== %s: %s (%.0fs) ==\n", r.Scenario, r.Title, r.Seconds)
	for _, s := range r.Setup {
		fmt.Fprintf(w, "  %s\n", s)
	}
	if r.Error != "" {
		fmt.Fprintf(w, "ERROR: %s\n", r.Error)
	}
	if len(r.Rows) > 0 {
		fmt.Fprintln(w)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "\treq/s\tp50\tp90\tp99\tmax\terrors\tupstream calls\tCPU s\tCPU µs/req\tpeak RSS MiB\t")
		for _, row := range r.Rows {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n",
				row.Name, fmtRate(row.RPS), fmtUs(row.P50us), fmtUs(row.P90us), fmtUs(row.P99us), fmtUs(row.MaxUs),
				fmtInt(row.Errors), optInt(row.UpstreamCalls), optF(row.CPUSeconds, "%.2f"), optF(row.CPUusPerReq, "%.1f"), optF(row.PeakRSSMiB, "%.0f"))
		}
		tw.Flush()
	}
	for _, t := range r.Tables {
		fmt.Fprintf(w, "\n%s\n", t.Title)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, strings.Join(t.Header, "\t")+"\t")
		for _, row := range t.Rows {
			fmt.Fprintln(tw, strings.Join(row, "\t")+"\t")
		}
		tw.Flush()
	}
	if len(r.Ratios) > 0 {
		fmt.Fprintf(w, "\nratios (median of the per-round ratios):\n")
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		for _, ra := range r.Ratios {
			rounds := make([]string, len(ra.Rounds))
			for i, v := range ra.Rounds {
				rounds[i] = fmt.Sprintf("%.3f", v)
			}
			if len(rounds) == 0 {
				fmt.Fprintf(tw, "  %s\t%.3f\t(one run)\n", ra.Name, ra.Value)
				continue
			}
			fmt.Fprintf(tw, "  %s\t%.3f\t(rounds: %s)\n", ra.Name, ra.Value, strings.Join(rounds, " "))
		}
		tw.Flush()
	}
	if len(r.Checks) > 0 {
		fmt.Fprintf(w, "\nchecks:\n")
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		for _, c := range r.Checks {
			fmt.Fprintf(tw, "  [%s]\t%s\t(%s)\t%s\n", verdict(c), c.Name, c.Target, c.Got)
		}
		tw.Flush()
	}
	for _, s := range r.Skipped {
		fmt.Fprintf(w, "skipped: %s\n", s)
	}
	for _, n := range r.Notes {
		fmt.Fprintf(w, "note: %s\n", n)
	}
}

func fmtRate(r float64) string {
	if r <= 0 || math.IsNaN(r) {
		return "-"
	}
	return fmtInt(int64(math.Round(r)))
}

func optInt(p *int64) string {
	if p == nil {
		return "-"
	}
	return fmtInt(*p)
}

func optF(p *float64, format string) string {
	if p == nil || math.IsNaN(*p) {
		return "-"
	}
	return fmt.Sprintf(format, *p)
}

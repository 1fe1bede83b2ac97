package main

import (
	"io"
	"os"
	"testing"
)

// TestMain lets the test binary serve as the storm's child fake upstream,
// as the bench binary does (see runFakeChild).
func TestMain(m *testing.M) {
	if os.Getenv(childEnv) != "" {
		os.Exit(runFakeChild())
	}
	os.Exit(m.Run())
}

// TestSmoke runs every scenario at smoke sizes (what
// go run ./bench -scenario all -smoke runs) and fails on any correctness
// check: the storm makes one upstream call per distinct token, the
// sanction wave kicks the purged players, the outage never kicks and
// recovers, the hit load gets 100% allows, the fleet's kicks reach every
// sidecar, each sanctioned live session's kick event reaches the SSE
// client once and no other's. Speed is not judged. A missing wrk, nginx or redis-server
// skips its part, except under CI=true, where CI has installed them and
// their absence fails.
func TestSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end load scenarios: skipped with -short")
	}
	o, err := parseOptions([]string{"-scenario", "all", "-smoke"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	e, err := newEnv(o, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer e.close()
	for _, s := range scenarios {
		t.Run(s.name, func(t *testing.T) {
			r := e.runScenario(s)
			if r.Error != "" {
				t.Fatalf("scenario could not run: %s", r.Error)
			}
			for _, c := range r.Checks {
				if c.Kind == kindCorrectness && !c.OK {
					t.Errorf("%s: got %s, want %s", c.Name, c.Got, c.Target)
				}
			}
			for _, sk := range r.Skipped {
				t.Logf("skipped: %s", sk)
			}
			t.Logf("%s: %d checks in %.1fs", s.name, len(r.Checks), r.Seconds)
		})
	}
}

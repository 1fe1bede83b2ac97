package fleet

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"playerguard/internal/redistest"
	"playerguard/internal/testkit"
	"playerguard/validator/iamport"
	"playerguard/validator/iamport/iamporttest"
)

// ageGate is a sidecar with the iamport age gate alone, on the fleet.
type ageGate struct {
	url  string
	reg  *prometheus.Registry
	tier *Tier
}

func startAgeGate(t *testing.T, rs *redistest.Server, fake *iamporttest.Server) *ageGate {
	t.Helper()
	return startAgeGateT(t, rs, fake, time.Second)
}

func (g *ageGate) check(t *testing.T, impUID, player string) (decision, reason string) {
	t.Helper()
	req, _ := http.NewRequest("POST", g.url+iamport.Path, strings.NewReader(`{"impUid":"`+impUID+`","playerId":"`+player+`"}`))
	r := testkit.Do(t, http.DefaultClient, req)
	d, _ := r.Body["decision"].(string)
	rs, _ := r.Body["reason"].(string)
	return d, rs
}

// iamportFleet is a Redis and an i'mport fake for age gate sidecars.
func iamportFleet(t *testing.T) (*redistest.Server, *iamporttest.Server) {
	t.Helper()
	rs := redistest.Start(t)
	fake, err := iamporttest.Start("imp-key", "SECRET-imp")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(fake.Close)
	return rs, fake
}

// adultCert is a certified adult's verification.
func adultCert(ci string) iamporttest.Cert {
	now := time.Now()
	return iamporttest.Cert{Name: "홍길동", Gender: "male", Birthday: "1990-01-01", Birth: time.Date(1990, 1, 1, 0, 0, 0, 0, iamport.Seoul).Unix(),
		Certified: true, CertifiedAt: now.Add(-time.Hour).Unix(), UniqueKey: ci, UniqueInSite: "di-" + ci, Phone: "01012345678", Carrier: "SKT"}
}

// TestIamportSharedState: with a fleet, the i'mport access token is one
// for every sidecar (one getToken), and one verification admits one player
// across sidecars, not one per sidecar.
func TestIamportSharedState(t *testing.T) {
	rs, fake := iamportFleet(t)
	adult := adultCert("ci-1")
	fake.Set("imp_100", adult)
	fake.Set("imp_200", adult)
	a, b := startAgeGate(t, rs, fake), startAgeGate(t, rs, fake)
	if d, r := a.check(t, "imp_100", "p-1"); d != "allow" {
		t.Fatalf("A: %s %s, want allow", d, r)
	}
	if d, r := b.check(t, "imp_200", "p-2"); d != "allow" {
		t.Fatalf("B: %s %s, want allow", d, r)
	}
	if n := fake.TokenCalls(); n != 1 {
		t.Errorf("getToken calls = %d, want 1 for the fleet", n)
	}
	if got := testkit.Metric(t, b.reg, "playerguard_token_refreshes_total", "provider", "iamport", "outcome", "shared"); got != 1 {
		t.Errorf("B: token_refreshes{shared} = %v, want 1", got)
	}
	// imp_100 admitted p-1 on A: on B it admits p-1 again, and no one else.
	if d, r := b.check(t, "imp_100", "p-1"); d != "allow" {
		t.Errorf("B, same player: %s %s, want allow", d, r)
	}
	if d, r := b.check(t, "imp_100", "p-3"); d != "kick" || r != "certification_reused" {
		t.Errorf("B, another player: %s %s, want kick certification_reused", d, r)
	}
	// The key names neither the verification nor the player.
	keys := rs.Do("KEYS", "*")
	for _, s := range []string{"imp_100", "p-1", "imp-key"} {
		if strings.Contains(keys, s) {
			t.Errorf("a Redis key holds %q", s)
		}
	}
	// Redis gone: a verification never seen is still decided (nothing is
	// refused for Redis), and B's own table still binds it to its player.
	fake.Set("imp_500", adult)
	rs.Kill()
	if d, r := b.check(t, "imp_500", "p-5"); d != "allow" {
		t.Errorf("B with Redis dead: %s %s, want allow", d, r)
	}
	if d, r := b.check(t, "imp_500", "p-6"); d != "kick" || r != "certification_reused" {
		t.Errorf("B with Redis dead, another player: %s %s, want certification_reused from its own table", d, r)
	}
}

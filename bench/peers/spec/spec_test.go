package spec

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"playerguard/cache"
)

// TestKeyIsPlayerguardKey: the peers must hash exactly what playerguard
// hashes, or the minimal peer would not be doing playerguard's work; a
// token longer than Key's stack buffer included.
func TestKeyIsPlayerguardKey(t *testing.T) {
	var kb cache.KeyBuilder
	for _, c := range [][3]string{
		{"mobile", "123456789123456", "FvNkGat8GaTfyhxHm2rNSFpn5UmvgBBU0kJYVc5kw5mP"},
		{"pc", "", "t"},
		{"launcher", "1", strings.Repeat("x", 300)},
	} {
		want := kb.Key([]byte(c[0]), []byte(c[1]), []byte(c[2]))
		if got := Key([]byte(c[0]), []byte(c[1]), []byte(c[2])); got != want {
			t.Errorf("Key(%q, %q, %d-byte token) differs from cache.KeyBuilder.Key", c[0], c[1], len(c[2]))
		}
	}
}

func TestLoad(t *testing.T) {
	for _, c := range []struct {
		name, json, wantErr string
	}{
		{"fixed route", `{"routes":[{"path":"/a","status":200,"body":"x"}]}`, ""},
		{"keyed route with hold", `{"routes":[{"path":"/a","status":200,"lookup":"headers","hold":"50ms","players":[{"token":"t","platform":"pc"}]}]}`, ""},
		{"no routes", `{"routes":[]}`, "holds no routes"},
		{"not JSON", `{"routes":`, "unexpected end"},
		{"unknown lookup", `{"routes":[{"path":"/a","lookup":"query"}]}`, `lookup "query"`},
		{"hold on a fixed route", `{"routes":[{"path":"/a","hold":"50ms"}]}`, `hold "50ms"`},
		{"hold not a duration", `{"routes":[{"path":"/a","lookup":"json","hold":"soon"}]}`, `hold "soon"`},
		{"hold not positive", `{"routes":[{"path":"/a","lookup":"json","hold":"-1s"}]}`, `hold "-1s"`},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := filepath.Join(t.TempDir(), "spec.json")
			if err := os.WriteFile(f, []byte(c.json), 0o644); err != nil {
				t.Fatal(err)
			}
			s, err := Load(f)
			switch {
			case c.wantErr == "" && err != nil:
				t.Fatalf("Load: %v", err)
			case c.wantErr == "" && len(s.Routes) != 1:
				t.Fatalf("Load: %d routes, want 1", len(s.Routes))
			case c.wantErr != "" && (err == nil || !strings.Contains(err.Error(), c.wantErr)):
				t.Fatalf("Load: error %v, want one containing %q", err, c.wantErr)
			}
		})
	}
	if _, err := Load(filepath.Join(t.TempDir(), "missing.json")); err == nil {
		t.Error("Load of a missing file: no error")
	}
}

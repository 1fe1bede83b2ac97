package validator

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/valyala/fasthttp"
)

// TestCacheHitBodyMatchesRenderAnswer: the body the hot path assembles
// for an allow served from cache is exactly what RenderAnswer gives that
// answer, whatever JSON the raw value holds.
func TestCacheHitBodyMatchesRenderAnswer(t *testing.T) {
	fields := &Fields{Names: [numRaw]string{"player", "lockout"}}
	for _, raw := range []string{
		`{"kgAppId":"909428","playerId":"123","status":"normal"}`,
		`{"playerId":"123","status":"normal","data":{"nested":[1,2,{"x":"}"}]}}`,
		`{"id":"9876543210","appId":123456,"expiresIn":3600}`,
	} {
		body := []byte(`{"x":1,"player":` + raw + `}`)
		r := &Result{Verdict: Allow, Reason: ReasonOK, Body: body, Fields: fields}
		r.SetRaw(0, len(`{"x":1,"player":`), len(body)-1)
		pv := hitPrefix(fields)
		var resp fasthttp.Response
		writeCacheHit(&resp, pv, r.Raw(0))
		want := RenderAnswer(&Answer{Res: r, Verdict: Allow, Reason: ReasonOK, Source: SourceCache})
		if !bytes.Equal(resp.Body(), want) {
			t.Errorf("cache-hit body\n got %s\nwant %s", resp.Body(), want)
		}
		if !json.Valid(resp.Body()) {
			t.Errorf("cache-hit body is not JSON: %s", resp.Body())
		}
	}
}

func TestNewReason(t *testing.T) {
	r := NewReason("test_only_reason")
	if r.String() != "test_only_reason" || string(reasonBytes[r]) != "test_only_reason" || r < numBuiltinReasons {
		t.Fatalf("NewReason = %d %q", r, r.String())
	}
	if NewReason("test_only_reason") != r || NewReason("invalid_token") != ReasonInvalidToken {
		t.Error("a registered name is not returned as it was")
	}
	defer func() {
		if recover() == nil {
			t.Error("NewReason accepted a name that is no label value")
		}
	}()
	NewReason("Not a label")
}

func TestUnescapeAll(t *testing.T) {
	for in, want := range map[string]string{
		`a\/b`: "a/b", `\u0041\u00e9`: "Aé", `\ud83d\ude00x`: "😀x", `\n\t\"\\`: "\n\t\"\\",
		`\x`: `\x`, `\u12`: `\u12`, `end\`: `end\`, `\ud800`: "\uFFFD",
	} {
		if got := string(unescapeAll([]byte(in))); got != want {
			t.Errorf("%q: %q, want %q", in, got, want)
		}
	}
}

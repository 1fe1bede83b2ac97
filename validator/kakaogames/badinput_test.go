package kakaogames

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"playerguard/validator"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"playerguard/validator/kakaogames/kakaogamestest"
)

// raw sends bytes on a fresh TCP connection and returns every response
// read until the server closes or goes quiet.
func (h *harness) raw(req string) []*http.Response {
	h.t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(h.url, "http://"))
	if err != nil {
		h.t.Fatal(err)
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, req); err != nil {
		h.t.Fatal(err)
	}
	conn.SetReadDeadline(time.Now().Add(3 * time.Second))
	br := bufio.NewReader(conn)
	var out []*http.Response
	for {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			return out
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body = io.NopCloser(bytes.NewReader(body))
		out = append(out, resp)
		conn.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	}
}

func bodyOf(r *http.Response) string {
	b, _ := io.ReadAll(r.Body)
	r.Body = io.NopCloser(bytes.NewReader(b))
	return string(b)
}

// TestBadInputOnTheWire covers what only shows on the wire: every
// malformed request gets a 4xx naming the problem, and none is forwarded.
func TestBadInputOnTheWire(t *testing.T) {
	h := newHarness(t, nil)
	h.fake.Set("tok-a", kakaogamestest.Allow(testApp, "p1", "normal"))
	jsonReq := func(method, path, body string, extra ...string) string {
		return fmt.Sprintf("%s %s HTTP/1.1\r\nHost: pg\r\nContent-Type: application/json\r\nContent-Length: %d\r\n%s\r\n%s",
			method, path, len(body), strings.Join(extra, ""), body)
	}
	good := `{"accessToken":"tok-a","platform":"mobile","playerId":"p1"}`
	cases := []struct {
		name   string
		req    string
		status int
		want   string // substring of the body
	}{
		{"empty body, no headers", jsonReq("POST", Path, ""), 400, "missing accessToken"},
		{"wrong method", jsonReq("DELETE", Path, good), 405, "method not allowed"},
		{"unknown path", jsonReq("POST", "/v1/validat", good), 404, "unknown path"},
		{"drop-in by GET", jsonReq("GET", ValidationPath, ""), 405, "use POST"},
		{"drop-in missing platform", jsonReq("POST", ValidationPath, "", "accessToken: tok-a\r\n"), 400, "missing platform"},
		{"drop-in token with space", jsonReq("POST", ValidationPath, "", "accessToken: tok a\r\nplatform: pc\r\n"), 400, "accessToken contains invalid characters"},
		{"drop-in non-ASCII token", jsonReq("POST", ValidationPath, "", "accessToken: tok\xc3\xa9\r\nplatform: pc\r\n"), 400, "accessToken contains invalid characters"},
		{"drop-in injected CRLF", "POST " + ValidationPath + " HTTP/1.1\r\nHost: pg\r\naccessToken: tok-a\rappSecret: stolen\r\nplatform: pc\r\n\r\n", 400, ""},
		{"huge headers", jsonReq("POST", Path, good, "X-Big: "+strings.Repeat("a", 32<<10)+"\r\n"), 431, "request headers too large"},
		{"bad Content-Length", "POST " + Path + " HTTP/1.1\r\nHost: pg\r\nContent-Length: banana\r\n\r\n", 400, ""},
		{"not HTTP", "HELLO\r\n\r\n", 400, ""},
	}
	for _, c := range cases {
		resps := h.raw(c.req)
		if len(resps) == 0 {
			t.Errorf("%s: no response", c.name)
			continue
		}
		r := resps[0]
		if body := bodyOf(r); r.StatusCode != c.status || !strings.Contains(body, c.want) {
			t.Errorf("%s: %d %q, want %d containing %q", c.name, r.StatusCode, body, c.status, c.want)
		}
	}
	if n := h.fake.Calls(); n != 0 {
		t.Errorf("malformed requests reached the upstream %d times", n)
	}

	// The handler matches the raw request URI first; every other spelling
	// of the two paths still reaches them, through fasthttp's normalizing.
	for _, path := range []string{Path + "?trace=1", "http://pg" + Path, "/v1/./validate", "/v1/x/../validate", "/v1/%76alidate", "//v1/validate"} {
		if resps := h.raw(jsonReq("POST", path, good)); len(resps) != 1 || resps[0].StatusCode != 200 {
			t.Errorf("POST %s: %v", path, resps)
		}
	}
	for _, path := range []string{"/v1/validate/", "/V1/validate", Path + "x", "/service/v5/auth/validation/x"} {
		if resps := h.raw(jsonReq("POST", path, good)); len(resps) != 1 || resps[0].StatusCode != 404 {
			t.Errorf("POST %s: %v, want 404", path, resps)
		}
	}

	// HTTP/1.0 works (and closes the connection after).
	resps := h.raw("POST " + Path + " HTTP/1.0\r\nContent-Length: " + fmt.Sprint(len(good)) + "\r\n\r\n" + good)
	if len(resps) != 1 || resps[0].StatusCode != 200 {
		t.Errorf("HTTP/1.0: %d responses", len(resps))
	}
	// Pipelined requests are answered in order.
	bad := `{"accessToken":"","platform":"mobile"}`
	resps = h.raw(jsonReq("POST", Path, good) + jsonReq("POST", Path, bad) + jsonReq("POST", Path, good))
	if len(resps) != 3 || resps[0].StatusCode != 200 || resps[1].StatusCode != 400 || resps[2].StatusCode != 200 {
		var got []int
		for _, r := range resps {
			got = append(got, r.StatusCode)
		}
		t.Errorf("pipelined: %v, want [200 400 200]", got)
	}
}

// TestClientDisconnectsMidRequest: callers hanging up half way, before or
// during the upstream call, leave the server serving and nothing behind.
func TestClientDisconnectsMidRequest(t *testing.T) {
	h := newHarness(t, nil)
	h.fake.Set("tok-a", kakaogamestest.Allow(testApp, "p1", "normal"))
	h.fake.SetLatency(200 * time.Millisecond)
	addr := strings.TrimPrefix(h.url, "http://")
	for _, partial := range []string{
		"POST " + Path + " HTTP/1.1\r\nHost: pg\r\nContent-Le",
		"POST " + Path + " HTTP/1.1\r\nHost: pg\r\nContent-Length: 100\r\n\r\n{\"accessToken\":",
		"POST " + Path + " HTTP/1.1\r\nHost: pg\r\nContent-Length: 44\r\n\r\n{\"accessToken\":\"tok-a\",\"platform\":\"mobile\"}",
	} {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(conn, partial)
		time.Sleep(20 * time.Millisecond)
		conn.Close()
	}
	h.expect(h.check("tok-a", "mobile", ""), 200, "allow", "ok", "")
}

// FuzzDropInHeaders feeds arbitrary header values through fasthttp's own
// request parser into the drop-in reader and Check: whatever gets through
// Check is safe to send upstream as a header.
func FuzzDropInHeaders(f *testing.F) {
	f.Add("tok-a", "mobile", "p1")
	f.Add("FvNkGat8GaTfyhxHm2rN/SFpn5Umv==", "launcher", "")
	f.Add("tok\r\nappSecret: x", "pc", "1")
	f.Add("tok", "PC", "a b")
	f.Add("", "web", "\x00")
	f.Fuzz(func(t *testing.T, token, platform, player string) {
		raw := "POST " + ValidationPath + " HTTP/1.1\r\nHost: pg\r\naccessToken: " + token +
			"\r\nplatform: " + platform + "\r\nplayerId: " + player + "\r\n\r\n"
		var req fasthttp.Request
		if err := req.Read(bufio.NewReader(strings.NewReader(raw))); err != nil {
			return // fasthttp refused it before us: never forwarded
		}
		var ctx fasthttp.RequestCtx
		req.CopyTo(&ctx.Request)
		var r validator.Request
		validator.ReadHeaders(&ctx, &r)
		if (&Provider{}).Check(&r) != nil {
			return
		}
		for _, b := range append(append([]byte(nil), r.Token...), r.PlayerID...) {
			if b <= ' ' || b >= 0x7f {
				t.Fatalf("accepted byte %#x in %q / %q", b, r.Token, r.PlayerID)
			}
		}
		switch string(r.Platform) {
		case "web", "launcher", "mobile", "pc":
		default:
			t.Fatalf("accepted platform %q", r.Platform)
		}
		if len(r.Token) == 0 || len(r.Token) > validator.MaxTokenLen || len(r.PlayerID) > validator.MaxPlayerIDLen {
			t.Fatalf("accepted lengths %d/%d", len(r.Token), len(r.PlayerID))
		}
	})
}

// TestLongestTokenFitsHeaders: a token of the maximum length travels as a
// drop-in header within the server's header limit.
func TestLongestTokenFitsHeaders(t *testing.T) {
	h := newHarness(t, nil)
	tok := strings.Repeat("A", validator.MaxTokenLen)
	h.fake.Set(tok, kakaogamestest.Allow(testApp, "p1", "normal"))
	r := h.dropIn(map[string]string{"accessToken": tok, "platform": "pc", "playerId": "p1",
		"User-Agent": strings.Repeat("u", 512), "X-Forwarded-For": "10.0.0.1, 10.0.0.2"})
	if r.status != 200 {
		t.Fatalf("max-length token: %d %s", r.status, r.raw)
	}
	r = h.dropIn(map[string]string{"accessToken": tok + "A", "platform": "pc"})
	if r.status != 400 || r.str("error") != "accessToken too long (limit 4096 bytes)" {
		t.Fatalf("token one byte too long: %d %s", r.status, r.raw)
	}
}

// TestDropInHeaderNamesAnyCase: the drop-in reads its three headers
// whatever case the caller spells their names in, exactly as fasthttp's
// normalizing Peek would find them (ReadHeaders skips the normalizing).
func TestDropInHeaderNamesAnyCase(t *testing.T) {
	for _, names := range [][3]string{
		{"accessToken", "platform", "playerId"},
		{"ACCESSTOKEN", "PLATFORM", "PLAYERID"},
		{"accesstoken", "Platform", "playerid"},
		{"AccessToken", "pLaTfOrM", "PlayerId"},
	} {
		raw := "POST " + ValidationPath + " HTTP/1.1\r\nHost: pg\r\n" + names[0] + ": tok\r\n" +
			names[1] + ": pc\r\n" + names[2] + ": p1\r\nX-Other: 1\r\n\r\n"
		var ctx fasthttp.RequestCtx
		if err := ctx.Request.Read(bufio.NewReader(strings.NewReader(raw))); err != nil {
			t.Fatal(err)
		}
		var r validator.Request
		validator.ReadHeaders(&ctx, &r)
		h := &ctx.Request.Header
		if string(r.Token) != "tok" || string(r.Platform) != "pc" || string(r.PlayerID) != "p1" ||
			string(h.Peek("accessToken")) != "tok" || string(h.Peek("playerId")) != "p1" {
			t.Errorf("%v: read %q %q %q", names, r.Token, r.Platform, r.PlayerID)
		}
	}
}

package kakaogamestest

import (
	"bytes"
	"encoding/json"
	"net/url"
	"strconv"
	"time"

	"github.com/valyala/fasthttp"
)

// DefaultContentType is the Content-Type of every answer whose Verdict has
// no ContentType, as the real API sends it.
const DefaultContentType = "application/json;charset=UTF-8"

// Verdict is what the fake answers for one token.
type Verdict struct {
	Status      int               // HTTP status; 0 means 200
	Body        []byte            // response body, sent as is (but see EchoMark)
	ContentType string            // "" means "application/json;charset=UTF-8"
	Header      map[string]string // extra response headers (e.g. Location for a redirect)
	Delay       time.Duration     // extra delay on top of Config.Latency
	Fault       Fault             // misbehaviour instead of a normal answer
	// Raw is what FaultRaw writes, byte for byte, instead of a response.
	Raw []byte
}

// EchoMark, anywhere in a Verdict's Body or Raw, is replaced by the
// request's header block as received (for Body, escaped as the inside of
// a JSON string): an upstream or gateway that echoes the request, secrets
// included, into its answers.
const EchoMark = "{{request headers}}"

// RawPause, in a Verdict's Raw, makes FaultRaw stop writing there for
// RawPauseFor before it writes the rest: bytes that reach an idle
// connection after its answer (Server.RawWrites counts the Raws written
// in full).
const (
	RawPause    = "{{pause}}"
	RawPauseFor = 50 * time.Millisecond
)

// Fault is a misbehaviour the fake applies instead of a normal answer.
type Fault int

const (
	// FaultNone answers normally.
	FaultNone Fault = iota
	// FaultHang reads the request and never answers; the connection is
	// held open until the client gives up or the Server is closed.
	FaultHang
	// FaultReset writes the status line, the headers (announcing the full
	// Content-Length) and the first half of the body, then resets the TCP
	// connection (SO_LINGER 0, so the peer sees an RST).
	FaultReset
	// FaultTrickle writes the status line and the headers at once, then
	// the body at one byte per second.
	FaultTrickle
	// FaultClose closes the connection (FIN) without writing anything.
	FaultClose
	// FaultRaw writes Verdict.Raw as it is (any bytes: several responses,
	// a 101, a 1xx, a malformed status line...; see RawPause and EchoMark)
	// and then serves the connection's next requests as usual, so that
	// whatever Raw left over is read as the answer to the next request.
	FaultRaw
)

// String returns the fault's name, e.g. "hang".
func (f Fault) String() string {
	switch f {
	case FaultNone:
		return "none"
	case FaultHang:
		return "hang"
	case FaultReset:
		return "reset"
	case FaultTrickle:
		return "trickle"
	case FaultClose:
		return "close"
	case FaultRaw:
		return "raw"
	}
	return "fault(" + strconv.Itoa(int(f)) + ")"
}

// faultFallbackBody is what FaultReset and FaultTrickle send (in part) when
// the Verdict has no Body.
var faultFallbackBody = []byte(`{"desc":"Partial answer from the fake upstream. (500.-1)"}`)

// Player is the "player" object of the validation API's answers.
type player struct {
	KgAppID  string    `json:"kgAppId"`
	PlayerID string    `json:"playerId"`
	Status   string    `json:"status"`
	Nickname string    `json:"nickname,omitempty"`
	Data     *struct{} `json:"data,omitempty"`
}

func marshal(v any) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		panic("kakaogamestest: marshal: " + err.Error()) // only fixed shapes of strings: cannot happen
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
}

func descBody(desc string) []byte {
	return marshal(struct {
		Desc string `json:"desc"`
	}{desc})
}

// Allow answers 200 with
// {"player":{"kgAppId":appID,"playerId":playerID,"status":status,"nickname":"player-<playerID>","data":{}}}.
// status is normally "normal" (good standing) or "delete" (pending
// unregistration).
func Allow(appID, playerID, status string) Verdict {
	return Verdict{
		Status: fasthttp.StatusOK,
		Body: marshal(struct {
			Player player `json:"player"`
		}{player{KgAppID: appID, PlayerID: playerID, Status: status, Nickname: "player-" + playerID, Data: &struct{}{}}}),
	}
}

// Invalid answers 401 {"desc":"Token is invalid. (401.-29401)"}.
// It is the initial default verdict of a Server.
func Invalid() Verdict {
	return Verdict{Status: fasthttp.StatusUnauthorized, Body: descBody("Token is invalid. (401.-29401)")}
}

// NoPlayer answers 406 {"desc":"There is no player. (406.-10005)"}.
func NoPlayer() Verdict {
	return Verdict{Status: fasthttp.StatusNotAcceptable, Body: descBody("There is no player. (406.-10005)")}
}

// Unregistering answers 462 (the player is pending unregistration) with
// desc "... (462.-10101)" and the player object (status "delete").
func Unregistering(appID, playerID string) Verdict {
	return Verdict{
		Status: 462,
		Body: marshal(struct {
			Desc   string `json:"desc"`
			Player player `json:"player"`
		}{"playerId There is a pending unregistration. (462.-10101)", player{KgAppID: appID, PlayerID: playerID, Status: "delete"}}),
	}
}

// lockoutToken is the one-time token of the vendor's documented example.
const lockoutToken = "1IB+jHhULoYJASZR18QUTQw0pDBZVjvOith9KD8miWQNsOgw4GjCGTTJhsWNUJHcWrtHJfazZ7lmLlyx"

// Lockout answers 463 with the vendor's documented lockout body, kgAppId,
// lockout id and playerId substituted. With appID "909428" and playerID
// "123456789123456" the body is byte for byte the documented one.
func Lockout(appID, playerID string) Verdict {
	type lockout struct {
		KgAppID            string `json:"kgAppId"`
		IDType             string `json:"idType"`
		ID                 string `json:"id"`
		CertMethod         string `json:"certMethod"`
		Reason             string `json:"reason"`
		Message            string `json:"message"`
		NotificationOption string `json:"notificationOption"`
		Memo               string `json:"memo"`
		LockoutCode        string `json:"lockoutCode"`
		LockoutSection     string `json:"lockoutSection"`
		RegTime            int64  `json:"regTime"`
	}
	type token struct {
		OnetimeToken string `json:"onetimeToken"`
	}
	type redirect struct {
		Target  string `json:"target"`
		Lockout string `json:"lockout"`
	}
	return Verdict{
		Status: 463,
		Body: marshal(struct {
			Desc        string   `json:"desc"`
			Lockout     lockout  `json:"lockout"`
			Player      player   `json:"player"`
			Token       token    `json:"token"`
			RedirectURI redirect `json:"redirectUri"`
		}{
			Desc: "playerId There is a valid lockout. (463.-10103)",
			Lockout: lockout{
				KgAppID: appID, IDType: "playerId", ID: playerID, CertMethod: "phone,card",
				NotificationOption: "alimtalk", LockoutSection: "mobile", RegTime: 1680773813000,
			},
			Player:      player{KgAppID: appID, PlayerID: playerID, Status: "normal"},
			Token:       token{lockoutToken},
			RedirectURI: redirect{"lockout", "https://member.kakaogames.com/lockout?token=" + url.QueryEscape(lockoutToken)},
		}),
	}
}

// Sanction answers 464 (the player is under a sanction/punishment) with
// desc "... (464.-10102)" and the player object (status "normal": the
// sidecar must rely on the HTTP status, not on player.status).
func Sanction(appID, playerID string) Verdict {
	return Verdict{
		Status: 464,
		Body: marshal(struct {
			Desc   string `json:"desc"`
			Player player `json:"player"`
		}{"playerId There is a valid sanction. (464.-10102)", player{KgAppID: appID, PlayerID: playerID, Status: "normal"}}),
	}
}

// Maintenance answers 473 {"desc":"Service is under maintenance. (473.-1)"}.
func Maintenance() Verdict {
	return Verdict{Status: 473, Body: descBody("Service is under maintenance. (473.-1)")}
}

// Error answers status with {"desc":"<text>. (<status>.-1)"}, e.g.
// Error(500) is {"desc":"Internal server error. (500.-1)"}. Typical uses:
// 500, 503, 465 (other abnormal player state), 400.
func Error(status int) Verdict {
	var text string
	switch status {
	case 400:
		text = "Bad request."
	case 465:
		text = "Player is in an abnormal state."
	case 500:
		text = "Internal server error."
	case 502:
		text = "Bad gateway."
	case 503:
		text = "Service unavailable."
	case 504:
		text = "Gateway timeout."
	default:
		text = fasthttp.StatusMessage(status) + "."
	}
	return Verdict{Status: status, Body: descBody(text + " (" + strconv.Itoa(status) + ".-1)")}
}

// prepared is a Verdict made ready for the hot path: defaults applied,
// body and headers copied, raw header block built for the faults that
// write by hand.
type prepared struct {
	status int
	body   []byte
	ct     string
	hdr    [][2]string
	delay  time.Duration
	fault  Fault
	head   []byte // raw status line and headers, for FaultReset and FaultTrickle
	raw    []byte // for FaultRaw
	echo   bool   // body or raw holds EchoMark
}

func prepare(v Verdict) *prepared {
	p := &prepared{
		status: v.Status,
		body:   bytes.Clone(v.Body),
		ct:     v.ContentType,
		delay:  v.Delay,
		fault:  v.Fault,
		raw:    bytes.Clone(v.Raw),
		echo:   bytes.Contains(v.Body, []byte(EchoMark)) || bytes.Contains(v.Raw, []byte(EchoMark)),
	}
	if p.status == 0 {
		p.status = fasthttp.StatusOK
	}
	if p.ct == "" {
		p.ct = DefaultContentType
	}
	if p.body == nil {
		p.body = []byte{}
	}
	for k, val := range v.Header {
		p.hdr = append(p.hdr, [2]string{k, val})
	}
	if p.fault == FaultReset || p.fault == FaultTrickle {
		if len(p.body) == 0 {
			p.body = faultFallbackBody
		}
		h := make([]byte, 0, 256)
		h = append(h, "HTTP/1.1 "...)
		h = strconv.AppendInt(h, int64(p.status), 10)
		h = append(h, ' ')
		h = append(h, fasthttp.StatusMessage(p.status)...)
		h = append(h, "\r\nContent-Type: "...)
		h = append(h, p.ct...)
		h = append(h, "\r\nContent-Length: "...)
		h = strconv.AppendInt(h, int64(len(p.body)), 10)
		h = append(h, "\r\n"...)
		for _, kv := range p.hdr {
			h = append(h, kv[0]...)
			h = append(h, ": "...)
			h = append(h, kv[1]...)
			h = append(h, "\r\n"...)
		}
		h = append(h, "Connection: close\r\n\r\n"...)
		p.head = h
	}
	return p
}

// echoed returns b with EchoMark replaced by head, JSON-string-escaped if
// inJSON.
func echoed(b, head []byte, inJSON bool) []byte {
	if inJSON {
		q, _ := json.Marshal(string(head))
		head = q[1 : len(q)-1]
	}
	return bytes.ReplaceAll(b, []byte(EchoMark), head)
}

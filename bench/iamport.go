package main

import (
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/valyala/fasthttp"

	"playerguard/validator/iamport"
	"playerguard/validator/iamport/iamporttest"
)

// The iamport age gate as the miss scenario runs it: playerguard also
// serves POST /v1/iamport/age-gate against an in-process i'mport fake
// (iamporttest), behind a delayProxy that adds the upstream latency (the
// fake answers at once).
const (
	iaKey    = "bench-imp-key"
	iaSecret = "bench-imp-secret"
	// iaMinAge is the minimum age every request asks for.
	iaMinAge = 19
	// iaBirthday is every verification's birth date: an adult.
	iaBirthday = "2000-01-01"
	// iaRowPrefix starts the name of every iamport row.
	iaRowPrefix = iamport.Name + " "
	// iaPath is playerguard's age gate endpoint; iaCertPath the fake's
	// (i'mport's) certification endpoint, before the imp_uid.
	iaPath     = iamport.Path
	iaCertPath = iamport.CertPath
	// iaFirstUID is the number of the first imp_uid the bench sends.
	iaFirstUID = 100_000_000_000
)

// The iamport miss rows.
const (
	iaMiss       = iaRowPrefix + iaPath
	iaMissDirect = iaRowPrefix + "direct (no sidecar)"
)

// iamportEnv is playerguard's environment enabling the age gate.
func iamportEnv() []string {
	return []string{"PLAYERGUARD_IAMPORT_KEY=" + iaKey, "PLAYERGUARD_IAMPORT_SECRET=" + iaSecret}
}

// iamportFlags are the playerguard flags pointing the age gate at api.
func iamportFlags(api string) []string { return []string{"-iamport-api", api} }

// iaCert is the fake's verification number n: a certified adult, with its
// own CI, certified at certifiedAt (unix seconds).
func iaCert(n int64, certifiedAt int64) iamporttest.Cert {
	s := strconv.FormatInt(n, 10)
	return iamporttest.Cert{Name: "벤치" + s, Gender: "male", Birthday: iaBirthday, Certified: true, CertifiedAt: certifiedAt,
		UniqueKey: "ci-bench-" + s, UniqueInSite: "di-bench-" + s, Phone: "010" + s, Carrier: "SKT"}
}

// iaPlayer is request number n: imp_uid number n and its own playerId.
func iaPlayer(n int64) player {
	return player{token: "imp_" + strconv.FormatInt(iaFirstUID+n, 10), id: "bench-age-" + strconv.FormatInt(n, 10)}
}

// iaBody is the /v1/iamport/age-gate JSON body for p: the imp_uid, the
// playerId and the minimum age.
func iaBody(p player) []byte {
	b := make([]byte, 0, 80)
	b = append(b, `{"impUid":"`...)
	b = append(b, p.token...)
	b = append(b, `","playerId":"`...)
	b = append(b, p.id...)
	b = append(b, `","minAge":`...)
	b = strconv.AppendInt(b, iaMinAge, 10)
	return append(b, '}')
}

// iaAllowBody is the age gate's allow from the upstream for a
// verification certified at certifiedAt (no personKey: the bench sets no
// person key secret).
func iaAllowBody(certifiedAt int64) string {
	return fmt.Sprintf(`{"decision":"allow","reason":"ok","source":"upstream","minAge":%d,"certifiedAt":%d}`, iaMinAge, certifiedAt)
}

// iaToken gets an access token from api's POST /users/getToken, as a game
// server without a sidecar does once and then reuses.
func iaToken(api string) (string, error) {
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.Header.SetMethod(fasthttp.MethodPost)
	req.SetRequestURI(api + iamport.TokenPath)
	req.Header.SetContentType("application/json")
	b, _ := json.Marshal(map[string]string{"imp_key": iaKey, "imp_secret": iaSecret})
	req.SetBody(b)
	if err := fasthttp.DoTimeout(req, resp, 5*time.Second); err != nil {
		return "", err
	}
	var doc struct {
		Code     int `json:"code"`
		Response struct {
			AccessToken string `json:"access_token"`
		} `json:"response"`
	}
	if err := json.Unmarshal(resp.Body(), &doc); err != nil || resp.StatusCode() != 200 || doc.Code != 0 || doc.Response.AccessToken == "" {
		return "", fmt.Errorf("iamport getToken: HTTP %d %q", resp.StatusCode(), resp.Body())
	}
	return doc.Response.AccessToken, nil
}

package main

import (
	"bytes"
	"fmt"
	"strconv"
	"time"

	"playerguard/validator/kakaologin/kakaologintest"
)

// The kakao-login provider as the hit and miss scenarios run it: the
// playerguard under test serves Kakao Games and Kakao Login at once, the
// latter against an in-process Kakao Login fake (kakaologintest).
const (
	// klAppID is the Kakao Developers app id playerguard accepts tokens of.
	klAppID = "100001"
	// klExpiresIn is the seconds left on every token the fake answers for:
	// long enough that an allow is cached for -cache-ttl (an allow is cached
	// for min(-cache-ttl, expires_in - 30 s)).
	klExpiresIn = 21600
	// klRowPrefix starts the name of every kakao-login row.
	klRowPrefix = "kakao-login "
)

// kakaoLoginFlags are the playerguard flags enabling kakao-login against kl.
func kakaoLoginFlags(kl *kakaologintest.Server) []string {
	return []string{"-kakao-login-app-id", klAppID, "-kakao-login-api", kl.URL()}
}

// klValid is the fake's answer for a live token of Kakao user id (a
// decimal string), after delay.
func klValid(id string, delay time.Duration) kakaologintest.Verdict {
	n, _ := strconv.ParseInt(id, 10, 64)
	app, _ := strconv.ParseInt(klAppID, 10, 64)
	v := kakaologintest.Valid(n, app, klExpiresIn)
	v.Delay = delay
	return v
}

// startKakaoLoginAllowed starts a Kakao Login fake that answers n
// players made for scenario (tokens of klAppID, each claiming its user
// id, no platform) allow without delay. The caller closes the fake.
func startKakaoLoginAllowed(scenario string, n int) (*kakaologintest.Server, []player, error) {
	kl, err := kakaologintest.Start()
	if err != nil {
		return nil, nil, err
	}
	players := makePlayers(scenario, n, true)
	for i := range players {
		players[i].platform = ""
		kl.Set(players[i].token, klValid(players[i].id, 0))
	}
	return kl, players, nil
}

// klCachedBody reports whether body is the kakao-login allow from cache
// for user id: {"decision":"allow","reason":"ok","source":"cache",
// "user":{"id":"<id>","appId":<app>,"expiresIn":<n>}}.
func klCachedBody(body []byte, id string) bool {
	prefix := fmt.Sprintf(`{"decision":"allow","reason":"ok","source":"cache","user":{"id":%q,"appId":%s,"expiresIn":`, id, klAppID)
	rest, ok := bytes.CutPrefix(body, []byte(prefix))
	if !ok {
		return false
	}
	digits, ok := bytes.CutSuffix(rest, []byte("}}"))
	if !ok {
		return false
	}
	secs, err := strconv.Atoi(string(digits))
	return err == nil && secs > 0 && secs <= klExpiresIn
}

package main

import (
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"runtime"
	"strconv"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"playerguard/validator/kakaooidc"
	"playerguard/validator/kakaooidc/kakaooidctest"
)

// The kakao-oidc provider as the hit and miss scenarios run it: the
// playerguard under test also verifies Kakao ID tokens, against the key
// set of an in-process fake (kakaooidctest). Tokens are signed once, at
// set-up (an RSA-2048 signature costs about a millisecond), never during
// a load.
const (
	// oidcAudience is the app key (aud) playerguard accepts tokens of.
	oidcAudience = "bench-kakao-rest-api-key"
	// oidcKID is the fake's key every token is signed with.
	oidcKID = "kid-1"
	// oidcLifetime is how long every token lives from its signing (Kakao's
	// ID tokens: 6 h): an allow is cached for -cache-ttl (it is cached for
	// min(-cache-ttl, exp - now)).
	oidcLifetime = 6 * time.Hour
	// oidcRowPrefix starts the name of every kakao-oidc row.
	oidcRowPrefix = kakaooidc.Name + " "
	// oidcPath is playerguard's kakao-oidc endpoint.
	oidcPath = kakaooidc.Path
)

// The kakao-oidc rows.
const (
	oidcHit        = oidcRowPrefix + oidcPath
	oidcMiss       = oidcRowPrefix + oidcPath
	oidcMissDirect = oidcRowPrefix + "direct (verified in-process, no sidecar)"
	oidcSat        = oidcRowPrefix + "saturated (no think time)"
)

// kakaoOIDCFlags are the playerguard flags enabling kakao-oidc against s.
func kakaoOIDCFlags(s *kakaooidctest.Server) []string {
	return []string{"-kakao-oidc-audiences", oidcAudience, "-kakao-oidc-jwks-url", s.URL()}
}

// oidcToken is one signed ID token, as a player (token = the idToken; id
// = its sub when the requests claim it), and the claims its allow reports.
type oidcToken struct {
	player
	sub           string
	exp, authTime int64
	nickname      string
}

// signOIDC signs n ID tokens with the fake's key, on every core: token i
// claims sub firstSub+i (Kakao user ids are numbers, sent as strings), the
// audience, iat and auth_time now, exp oidcLifetime ahead, a nickname.
// claimID makes each request claim its sub as playerId.
func signOIDC(s *kakaooidctest.Server, firstSub int64, n int, claimID bool) []oidcToken {
	now := time.Now().Truncate(time.Second)
	toks := make([]oidcToken, n)
	var wg sync.WaitGroup
	workers := max(1, runtime.NumCPU())
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += workers {
				sub := strconv.FormatInt(firstSub+int64(i), 10)
				c := kakaooidctest.Claims{Sub: sub, Aud: oidcAudience, Iat: now, Exp: now.Add(oidcLifetime), AuthTime: now, Nickname: "player" + strconv.Itoa(i)}
				t := oidcToken{player: player{token: s.Sign(oidcKID, c)}, sub: sub, exp: c.Exp.Unix(), authTime: now.Unix(), nickname: c.Nickname}
				if claimID {
					t.id = sub
				}
				toks[i] = t
			}
		}()
	}
	wg.Wait()
	return toks
}

// oidcPlayers are the requests of toks.
func oidcPlayers(toks []oidcToken) []player {
	ps := make([]player, len(toks))
	for i, t := range toks {
		ps[i] = t.player
	}
	return ps
}

// waitOIDCReady waits until playerguard holds the fake's key set (its
// start-up fetch): /readyz answers 200 for the sidecar before that.
func waitOIDCReady(pg *playerguard) error {
	return waitHTTP("http://"+pg.ops+"/readyz?provider="+kakaooidc.Name, pg.process, 10*time.Second)
}

// oidcCachedBody is the kakao-oidc allow from cache for t.
func oidcCachedBody(t oidcToken) string {
	return fmt.Sprintf(`{"decision":"allow","reason":"ok","source":"cache","user":{"id":%q,"exp":%d,"authTime":%d,"nickname":%q}}`,
		t.sub, t.exp, t.authTime, t.nickname)
}

// oidcBody is the /v1/kakao-oidc/validate JSON body for p: the ID token
// and, if p claims one, its sub as playerId (no nonce).
func oidcBody(p player) []byte {
	b := make([]byte, 0, 48+len(p.token))
	b = append(b, `{"idToken":"`...)
	b = append(b, p.token...)
	b = append(b, '"')
	if p.id != "" {
		b = append(b, `,"playerId":"`...)
		b = append(b, p.id...)
		b = append(b, '"')
	}
	return append(b, '}')
}

// oidcDirect is the game server without a sidecar: it verifies each ID
// token itself, in the bench's process, as a game server would with
// golang-jwt (RS256 only; iss, aud, exp and iat checked, 30 s leeway),
// against the fake's public key read from kakaooidctest.JWKS, not fetched
// (so the fake's Fetches count playerguard's alone). Its latency is the
// verification's alone: no network. Safe for concurrent use.
type oidcDirect struct {
	key    *rsa.PublicKey
	parser *jwt.Parser
}

func newOIDCDirect(s *kakaooidctest.Server) (*oidcDirect, error) {
	var set struct {
		Keys []struct{ KID, N, E string } `json:"keys"`
	}
	if err := json.Unmarshal(kakaooidctest.JWKS(s.Key(oidcKID)), &set); err != nil {
		return nil, err
	}
	if len(set.Keys) != 1 {
		return nil, errors.New("kakaooidctest.JWKS: want one key")
	}
	n, err1 := base64.RawURLEncoding.DecodeString(set.Keys[0].N)
	e, err2 := base64.RawURLEncoding.DecodeString(set.Keys[0].E)
	if err := errors.Join(err1, err2); err != nil {
		return nil, err
	}
	return &oidcDirect{
		key: &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(new(big.Int).SetBytes(e).Int64())},
		parser: jwt.NewParser(jwt.WithValidMethods([]string{"RS256"}), jwt.WithIssuer(kakaooidctest.Issuer),
			jwt.WithAudience(oidcAudience), jwt.WithExpirationRequired(), jwt.WithIssuedAt(), jwt.WithLeeway(30*time.Second)),
	}, nil
}

// do verifies p's token: a 200 allow if it verifies, a 403 kick if not.
func (d *oidcDirect) do(p player, _ time.Duration, _ bool) (reply, time.Duration, error) {
	start := time.Now()
	_, err := d.parser.Parse(p.token, func(t *jwt.Token) (any, error) {
		if t.Header["kid"] != oidcKID {
			return nil, errors.New("unknown kid")
		}
		return d.key, nil
	})
	lat := time.Since(start)
	if err != nil {
		return reply{status: 403, decision: "kick"}, lat, nil
	}
	return reply{status: 200, decision: "allow"}, lat, nil
}

func (d *oidcDirect) close() {}

// Package kakaooidctest is a fake of Kakao's OpenID Connect key endpoint
// on loopback, for tests and the demo: it serves a JWK Set of RSA keys it
// generates, signs ID tokens with them on demand, rotates keys, counts
// fetches, and fails on request (a status, a dropped connection, a slow
// answer, a body of your choosing).
package kakaooidctest

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"math/big"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// JWKSPath is where the fake serves its key set.
const JWKSPath = "/.well-known/jwks.json"

// Issuer is the iss Kakao's tokens carry (and the fake's, by default).
const Issuer = "https://kauth.kakao.com"

// Server is the fake. Its methods are safe for concurrent use.
type Server struct {
	ln  net.Listener
	srv *http.Server

	fetches atomic.Int64

	mu        sync.Mutex
	keys      []*Key // published, in order
	status    int    // 0: 200
	body      []byte // nil: the key set
	cc        string // Cache-Control
	drop      bool   // close connections without answering
	delay     time.Duration
	published []*Key // every key ever made, to sign with after removal
}

// Key is one signing key of the fake.
type Key struct {
	KID  string
	priv *rsa.PrivateKey
}

// Start starts the fake on a free loopback port with one 2048-bit key,
// "kid-1".
func Start() (*Server, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &Server{ln: ln}
	if _, err := s.AddKey("kid-1"); err != nil {
		ln.Close()
		return nil, err
	}
	mux := http.NewServeMux()
	mux.HandleFunc(JWKSPath, s.serveJWKS)
	s.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go s.srv.Serve(ln)
	return s, nil
}

// URL is the key set's URL.
func (s *Server) URL() string { return "http://" + s.ln.Addr().String() + JWKSPath }

// Close stops the fake.
func (s *Server) Close() { s.srv.Close() }

// Fetches is how many key set requests the fake has received.
func (s *Server) Fetches() int64 { return s.fetches.Load() }

// AddKey generates a 2048-bit key named kid and publishes it.
func (s *Server) AddKey(kid string) (*Key, error) {
	priv, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	k := &Key{KID: kid, priv: priv}
	s.mu.Lock()
	s.keys = append(s.keys, k)
	s.published = append(s.published, k)
	s.mu.Unlock()
	return k, nil
}

// RemoveKey stops publishing kid (tokens can still be signed with it).
func (s *Server) RemoveKey(kid string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, k := range s.keys {
		if k.KID == kid {
			s.keys = append(s.keys[:i:i], s.keys[i+1:]...)
			return
		}
	}
}

// SetStatus makes the key endpoint answer status (0: 200 and the set).
func (s *Server) SetStatus(status int) { s.mu.Lock(); s.status = status; s.mu.Unlock() }

// SetBody makes the key endpoint answer body instead of the set (nil:
// the set).
func (s *Server) SetBody(body []byte) { s.mu.Lock(); s.body = body; s.mu.Unlock() }

// SetCacheControl sets the answer's Cache-Control header ("" for none).
func (s *Server) SetCacheControl(cc string) { s.mu.Lock(); s.cc = cc; s.mu.Unlock() }

// SetDown makes the key endpoint close connections without answering.
func (s *Server) SetDown(down bool) { s.mu.Lock(); s.drop = down; s.mu.Unlock() }

// SetDelay delays every answer by d.
func (s *Server) SetDelay(d time.Duration) { s.mu.Lock(); s.delay = d; s.mu.Unlock() }

func (s *Server) serveJWKS(w http.ResponseWriter, r *http.Request) {
	s.fetches.Add(1)
	s.mu.Lock()
	status, body, cc, drop, delay := s.status, s.body, s.cc, s.drop, s.delay
	if body == nil {
		body = JWKS(s.keys...)
	}
	s.mu.Unlock()
	if delay > 0 {
		select {
		case <-time.After(delay):
		case <-r.Context().Done():
			return
		}
	}
	if drop {
		if c, _, err := w.(http.Hijacker).Hijack(); err == nil {
			c.Close()
		}
		return
	}
	if cc != "" {
		w.Header().Set("Cache-Control", cc)
	}
	w.Header().Set("Content-Type", "application/json;charset=UTF-8")
	if status != 0 {
		w.WriteHeader(status)
	}
	w.Write(body)
}

// JWKS is the JWK Set of keys' public halves, as Kakao publishes its own.
func JWKS(keys ...*Key) []byte {
	type jwk struct {
		KID string `json:"kid"`
		KTY string `json:"kty"`
		Alg string `json:"alg"`
		Use string `json:"use"`
		N   string `json:"n"`
		E   string `json:"e"`
	}
	set := struct {
		Keys []jwk `json:"keys"`
	}{Keys: []jwk{}}
	for _, k := range keys {
		pub := k.priv.PublicKey
		set.Keys = append(set.Keys, jwk{
			KID: k.KID, KTY: "RSA", Alg: "RS256", Use: "sig",
			N: b64(pub.N.Bytes()), E: b64(big.NewInt(int64(pub.E)).Bytes()),
		})
	}
	b, _ := json.Marshal(set)
	return b
}

// Key returns the key named kid, published or not (nil if none).
func (s *Server) Key(kid string) *Key {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, k := range s.published {
		if k.KID == kid {
			return k
		}
	}
	return nil
}

// Claims are an ID token's claims as the fake signs them: Kakao's, and any
// Extra (which win).
type Claims struct {
	Sub      string
	Aud      string
	Iss      string // "" means Issuer
	Exp, Iat time.Time
	AuthTime time.Time // zero: none
	Nonce    string
	Nickname string
	Email    string
	Picture  string
	Extra    map[string]any
}

// Payload is c as JSON.
func (c Claims) Payload() []byte {
	m := map[string]any{"sub": c.Sub, "aud": c.Aud, "iss": c.Iss, "exp": c.Exp.Unix(), "iat": c.Iat.Unix()}
	if c.Iss == "" {
		m["iss"] = Issuer
	}
	if !c.AuthTime.IsZero() {
		m["auth_time"] = c.AuthTime.Unix()
	}
	for k, v := range map[string]string{"nonce": c.Nonce, "nickname": c.Nickname, "email": c.Email, "picture": c.Picture} {
		if v != "" {
			m[k] = v
		}
	}
	for k, v := range c.Extra {
		if v == nil {
			delete(m, k)
		} else {
			m[k] = v
		}
	}
	b, _ := json.Marshal(m)
	return b
}

// Sign returns an RS256 ID token of c signed by the key named kid.
func (s *Server) Sign(kid string, c Claims) string {
	return s.SignRaw(kid, Header(kid), c.Payload())
}

// Header is an RS256 JOSE header naming kid.
func Header(kid string) []byte {
	return []byte(`{"alg":"RS256","typ":"JWT","kid":` + strconv.Quote(kid) + `}`)
}

// SignRaw signs header and payload, given as bytes (so tests can send
// what no encoder writes), with the key named kid: header.payload.sig,
// base64url. An unknown kid panics.
func (s *Server) SignRaw(kid string, header, payload []byte) string {
	k := s.Key(kid)
	if k == nil {
		panic("kakaooidctest: no key " + strconv.Quote(kid))
	}
	return k.SignRaw(header, payload)
}

// SignRaw signs header and payload with k.
func (k *Key) SignRaw(header, payload []byte) string {
	signed := b64(header) + "." + b64(payload)
	sum := sha256.Sum256([]byte(signed))
	sig, err := rsa.SignPKCS1v15(nil, k.priv, crypto.SHA256, sum[:])
	if err != nil {
		panic(errors.New("kakaooidctest: sign: " + err.Error()))
	}
	return signed + "." + b64(sig)
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

package validator

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"

	"playerguard/cache"
)

// OpsHandler serves the ops listener: /healthz, /readyz, the given metrics
// handler at /metrics, and POST /admin/purge and /admin/kick guarded by
// adminToken (an empty adminToken disables the admin API: every call
// answers 401).
func (v *Validator) OpsHandler(metricsHandler http.Handler, adminToken string) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", metricsHandler)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("GET /readyz", v.serveReady)
	want := sha256.Sum256([]byte(adminToken))
	mux.HandleFunc("/admin/", func(w http.ResponseWriter, r *http.Request) {
		// Authenticate before anything else, so an unauthenticated caller
		// learns nothing, not even which admin paths exist.
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		sum := sha256.Sum256([]byte(got))
		// Comparing digests keeps the comparison constant-time in the
		// token's length as well as its contents.
		if adminToken == "" || !ok || subtle.ConstantTimeCompare(sum[:], want[:]) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="playerguard admin"`)
			opsJSON(w, http.StatusUnauthorized, map[string]string{"error": "missing or wrong admin token (Authorization: Bearer <token>)"})
			return
		}
		switch {
		case r.URL.Path != "/admin/purge" && r.URL.Path != "/admin/kick":
			opsJSON(w, http.StatusNotFound, map[string]string{"error": "unknown admin path: use POST /admin/purge or POST /admin/kick"})
		case r.Method != http.MethodPost:
			w.Header().Set("Allow", "POST")
			opsJSON(w, http.StatusMethodNotAllowed, map[string]string{"error": "method not allowed: use POST"})
		case r.URL.Path == "/admin/kick":
			v.serveKick(w, r)
		default:
			v.servePurge(w, r)
		}
	})
	return mux
}

// serveReady is /readyz: 503 while draining, else 200 with the providers
// and each one's state. A provider not ready yet (keys not loaded) does not
// make the sidecar unready: the others serve, and its own requests answer
// unavailable, which is what an unready pod would give the game server
// anyway. ?provider=name answers for that provider alone: 503 until it is
// ready (a startup probe for a fleet that must have it), 404 if unknown.
func (v *Validator) serveReady(w http.ResponseWriter, r *http.Request) {
	if v.draining.Load() {
		http.Error(w, "draining", http.StatusServiceUnavailable)
		return
	}
	if name := r.URL.Query().Get("provider"); name != "" || r.URL.Query().Has("provider") {
		pv := v.byName(name)
		if pv == nil {
			http.Error(w, "unknown provider "+strconv.Quote(name)+": configured are "+strings.Join(v.Providers(), ", "), http.StatusNotFound)
			return
		}
		if ok, why := pv.ready(); !ok {
			http.Error(w, name+": not ready: "+why, http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, name+": ready\n")
		return
	}
	var b strings.Builder
	b.WriteString("ready\nproviders: " + strings.Join(v.Providers(), ", ") + "\n")
	for _, pv := range v.providers {
		if ok, why := pv.ready(); ok {
			b.WriteString(pv.name() + ": ready\n")
		} else {
			b.WriteString(pv.name() + ": not ready: " + why + "\n")
		}
	}
	io.WriteString(w, b.String())
}

// readOpsBody reads an admin call's body, at most MaxBodyLen; on an error
// it has answered (400, or 413 for a body too large).
func readOpsBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	raw, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyLen))
	if err != nil {
		status, msg := http.StatusBadRequest, "cannot read request body"
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			status, msg = http.StatusRequestEntityTooLarge, errBodyTooLarge.Msg
		}
		opsJSON(w, status, map[string]string{"error": msg})
	}
	return raw, err
}

// servePurge drops cache entries: {"playerId": "..."} drops every entry of
// that player (under every provider: dropping too much costs one upstream
// call); {"provider"?, "accessToken", "platform"?, "playerId"?} drops that
// one key of the provider (the first configured when none is named:
// Kakao Games, whose keys have a platform). The body is read as strictly as a
// validation's, and unknown fields are refused too: a purge that silently
// did less than asked would leave a player's allows in place.
func (v *Validator) servePurge(w http.ResponseWriter, r *http.Request) {
	raw, err := readOpsBody(w, r)
	if err != nil {
		return
	}
	var req Request
	if _, err := decodeJSON(raw, &req, nil, form{onlyKnown: true, provider: true, purge: true}.sealed()); err != nil {
		opsJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
		return
	}
	var pv *provider
	if req.Provider != nil {
		if pv = v.byName(string(req.Provider)); pv == nil {
			opsJSON(w, http.StatusBadRequest, map[string]string{"error": "provider " + strconv.Quote(string(echoSafe(req.Provider))) + " is not configured (configured: " + strings.Join(v.Providers(), ", ") + ")"})
			return
		}
	}
	if req.Token == nil && req.Platform == nil {
		if len(req.PlayerID) == 0 {
			opsJSON(w, http.StatusBadRequest, map[string]string{"error": "give playerId, or accessToken and platform (and playerId if the validations claimed one), or provider, accessToken (and playerId)"})
			return
		}
		if err := req.checkPlayerID(); err != nil {
			opsJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
			return
		}
		player := string(req.PlayerID)
		// Flights first, as for a kick: no validation from here on joins
		// an upstream call of the player made before the purge.
		v.flights.detachPlayer(player)
		v.cache.PurgePlayer(player)
		if v.fleet != nil {
			v.fleet.Kick(FleetPurge{Player: player})
		}
		v.log.Info("admin purge", "player", player)
		opsJSON(w, http.StatusOK, map[string]string{"purged": "player", "playerId": player})
		return
	}
	if pv == nil {
		// The first configured: Kakao Games when it is, as before
		// providers; for an idToken, the first provider of ID tokens.
		pv = v.providers[0]
		for _, p := range v.providers {
			if req.tokenKey != reqKeyToken && p.tokenKey() == int(req.tokenKey) {
				pv = p
				break
			}
		}
	}
	if int(req.tokenKey) != pv.tokenKey() {
		opsJSON(w, http.StatusBadRequest, map[string]string{"error": "provider " + pv.spec.Name + " takes " + reqKeyNames[pv.tokenKey()]})
		return
	}
	if !pv.spec.Platform && req.Platform != nil {
		opsJSON(w, http.StatusBadRequest, map[string]string{"error": "provider " + pv.spec.Name + " takes no platform"})
		return
	}
	if !pv.spec.IDToken && req.Nonce != nil {
		opsJSON(w, http.StatusBadRequest, map[string]string{"error": "provider " + pv.spec.Name + " takes no nonce"})
		return
	}
	check := pv.p.Check
	if pc, ok := pv.p.(PurgeChecker); ok {
		check = pc.CheckPurge
	}
	if err := check(&req); err != nil {
		opsJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
		return
	}
	if pv.spec.IDToken || pv.spec.AgeGate {
		// Every entry of the ID token (or verification), under any nonce,
		// minimum age and claim (they are filed under the token's digest):
		// a purge is for the token.
		var none cache.Key
		v.flights.detach(cache.TokenOf(req.Token), "", &none)
		v.cache.PurgeToken(cache.TokenOf(req.Token))
		if v.fleet != nil {
			v.fleet.Kick(FleetPurge{Token: cache.TokenOf(req.Token), HasToken: true})
		}
		v.log.Info("admin purge", "provider", pv.spec.Name, "scope", "token")
		opsJSON(w, http.StatusOK, map[string]string{"purged": "token"})
		return
	}
	st := v.getState()
	defer v.putState(st)
	platform := pv.platform(&req)
	k := st.kb.Key(platform, req.PlayerID, req.Token)
	v.flights.detachKey(&k)
	v.cache.Delete(&k)
	// And the token's cached invalid_token kick on that platform, if any
	// (-negative-ttl files it under the platform and token alone).
	neg := st.kb.TokenKey(platform, req.Token)
	v.cache.Delete(&neg)
	if v.fleet != nil {
		v.fleet.Kick(FleetPurge{Token: cache.TokenOf(req.Token), Keys: []cache.Key{k, neg}})
	}
	attrs := []any{"provider", pv.spec.Name, "player", string(req.PlayerID)}
	if pv.spec.Platform {
		attrs = append(attrs, "platform", string(req.Platform))
	}
	v.log.Info("admin purge", append(attrs, "scope", "key")...)
	opsJSON(w, http.StatusOK, map[string]string{"purged": "key"})
}

func opsJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

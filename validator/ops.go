package validator

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
)

// OpsHandler serves the ops listener: /healthz, /readyz, the given metrics
// handler at /metrics, and POST /admin/purge guarded by adminToken (an
// empty adminToken disables the admin API: every call answers 401).
func (v *Validator) OpsHandler(metricsHandler http.Handler, adminToken string) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", metricsHandler)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if v.draining.Load() {
			http.Error(w, "draining", http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, "ready\n")
	})
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
		case r.URL.Path != "/admin/purge":
			opsJSON(w, http.StatusNotFound, map[string]string{"error": "unknown admin path: use POST /admin/purge"})
		case r.Method != http.MethodPost:
			w.Header().Set("Allow", "POST")
			opsJSON(w, http.StatusMethodNotAllowed, map[string]string{"error": "method not allowed: use POST"})
		default:
			v.servePurge(w, r)
		}
	})
	return mux
}

// servePurge drops cache entries: {"playerId": "..."} drops every entry of
// that player; {"accessToken", "platform", "playerId"?} drops that one key.
func (v *Validator) servePurge(w http.ResponseWriter, r *http.Request) {
	var body struct {
		AccessToken *string `json:"accessToken"`
		Platform    *string `json:"platform"`
		PlayerID    *string `json:"playerId"`
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, MaxBodyLen))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&body); err != nil {
		msg := "request body is not a JSON object with accessToken, platform, playerId"
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			msg = errBodyTooLarge.Msg
		}
		opsJSON(w, http.StatusBadRequest, map[string]string{"error": msg})
		return
	}
	str := func(p *string) string {
		if p == nil {
			return ""
		}
		return *p
	}
	if body.AccessToken == nil && body.Platform == nil {
		if str(body.PlayerID) == "" {
			opsJSON(w, http.StatusBadRequest, map[string]string{"error": "give playerId, or accessToken and platform (and playerId if the validations claimed one)"})
			return
		}
		req := Request{Token: []byte("x"), Platform: []byte("pc"), PlayerID: []byte(*body.PlayerID)}
		if err := req.Check(); err != nil {
			opsJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
			return
		}
		v.cache.PurgePlayer(*body.PlayerID)
		v.log.Info("admin purge", "player", *body.PlayerID)
		opsJSON(w, http.StatusOK, map[string]string{"purged": "player", "playerId": *body.PlayerID})
		return
	}
	req := Request{Token: []byte(str(body.AccessToken)), Platform: []byte(str(body.Platform)), PlayerID: []byte(str(body.PlayerID))}
	if err := req.Check(); err != nil {
		opsJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
		return
	}
	var kb = v.getState()
	defer v.putState(kb)
	k := kb.kb.Key(req.Platform, req.PlayerID, req.Token)
	v.cache.Delete(&k)
	v.log.Info("admin purge", "player", string(req.PlayerID), "platform", string(req.Platform), "scope", "key")
	opsJSON(w, http.StatusOK, map[string]string{"purged": "key"})
}

func opsJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

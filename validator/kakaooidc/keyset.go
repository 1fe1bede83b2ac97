package kakaooidc

import (
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/valyala/fasthttp"

	"playerguard/metrics"
	"playerguard/validator"
)

// minKeyBits is the shortest RSA modulus accepted in a key set.
const minKeyBits = 2048

// keySet holds the public keys tokens are verified with and decides when
// to fetch them again. Kakao asks that its keys be cached and may block a
// service that fetches them too often, so there are exactly three reasons
// to fetch:
//   - the schedule: at start-up, then every refresh (or the response's
//     Cache-Control max-age when shorter, never more often than minGap),
//     and after a failed fetch with a backoff from one second to minGap;
//   - a token naming a key id the set does not hold, at most once per
//     minGap since the last fetch began, whatever triggered that one: every
//     request that wants a fetch while one is under way waits on that one,
//     and one arriving when the limit is spent is answered without one
//     (so junk key ids cost Kakao nothing beyond the limit, and a key
//     Kakao publishes is picked up within minGap while they arrive);
//   - nothing else: a failed fetch keeps the last good set.
//
// A fetch is bounded by the upstream's timeout, so is every wait on one.
type keySet struct {
	up     *validator.HTTPUpstream
	path   string
	every  time.Duration // the scheduled refresh
	minGap time.Duration
	now    func() time.Time
	log    *slog.Logger
	m      *metrics.KeySetMetrics
	start  time.Time

	cur atomic.Pointer[keys] // nil until a fetch succeeds

	mu       sync.Mutex
	fetching *fetch    // the fetch under way; nil when none
	last     time.Time // when the last fetch began; zero before the first
	lastOK   bool      // the last fetch that ended succeeded
	next     time.Time // when the schedule fetches next
	failures int       // fetches failed in a row

	stop    chan struct{}
	done    chan struct{}
	closing sync.Once
}

// keys is one fetched key set; immutable.
type keys struct {
	byKID   map[string]*rsa.PublicKey
	fetched time.Time
}

// fetch is one fetch under way; done is closed when it has ended, ok says
// whether it succeeded (then its keys are cur).
type fetch struct {
	done chan struct{}
	ok   bool
}

// lookup outcomes.
type found int

const (
	keyFound found = iota
	// keyUnknown: a fetch that ended after the request arrived succeeded
	// without the key id. The token is not Kakao's.
	keyUnknown
	// keysUnavailable: no set was ever fetched, or the fetch the request
	// waited on failed, or the last fetch failed and the limit forbids
	// another: the key endpoint cannot be reached.
	keysUnavailable
	// keyLimited: the key id is not in a set fetched less than minGap
	// ago, successfully: it may be a key published since, which the next
	// fetch allowed will show, or junk.
	keyLimited
)

// key returns the public key named kid, fetching the set first when kid
// is unknown and the limit allows (or a fetch is under way).
func (s *keySet) key(kid string) (*rsa.PublicKey, found) {
	if pk := s.lookup(kid); pk != nil {
		return pk, keyFound
	}
	s.mu.Lock()
	if pk := s.lookup(kid); pk != nil { // a fetch ended since
		s.mu.Unlock()
		return pk, keyFound
	}
	f := s.fetching
	if f == nil {
		if !s.last.IsZero() && s.now().Sub(s.last) < s.minGap {
			usable := s.lastOK && s.cur.Load() != nil
			s.mu.Unlock()
			s.m.RefreshesSkipped.Inc()
			if !usable {
				return nil, keysUnavailable
			}
			return nil, keyLimited
		}
		f = s.startLocked()
	}
	s.mu.Unlock()
	<-f.done // the fetch is bounded by the upstream timeout
	if pk := s.lookup(kid); pk != nil {
		return pk, keyFound
	}
	if !f.ok {
		return nil, keysUnavailable
	}
	return nil, keyUnknown
}

// lookup is the held set's key named kid, nil if none.
func (s *keySet) lookup(kid string) *rsa.PublicKey {
	if k := s.cur.Load(); k != nil {
		return k.byKID[kid]
	}
	return nil
}

// startLocked starts a fetch; s.mu is held.
func (s *keySet) startLocked() *fetch {
	f := &fetch{done: make(chan struct{})}
	s.fetching = f
	s.last = s.now()
	go s.run(f)
	return f
}

// run makes fetch f and records its outcome.
func (s *keySet) run(f *fetch) {
	set, maxAge, outcome, err := s.get()
	s.m.Fetches[outcome].Inc()
	s.mu.Lock()
	now := s.now()
	if err == nil {
		set.fetched = now
		old := s.cur.Swap(set)
		s.failures, s.lastOK = 0, true
		wait := s.every
		if maxAge >= 0 {
			wait = min(wait, max(maxAge, s.minGap))
		}
		s.next = now.Add(wait)
		if old == nil || !sameKIDs(old, set) {
			s.log.Info("key set loaded", "provider", Name, "keys", len(set.byKID), "kids", strings.Join(kids(set), ","))
		}
	} else {
		s.failures++
		s.lastOK = false
		backoff := min(time.Second<<min(s.failures-1, 30), s.minGap, s.every)
		s.next = now.Add(backoff)
		held := 0
		if k := s.cur.Load(); k != nil {
			held = len(k.byKID)
		}
		s.log.Warn("key set fetch failed; keeping the last good set", "provider", Name, "outcome", outcome, "error", err.Error(),
			"keys_held", held, "failures_in_a_row", s.failures, "retry_in", backoff.String())
	}
	f.ok = err == nil
	s.fetching = nil
	s.mu.Unlock()
	close(f.done)
}

// poll starts the scheduled fetch when it is due: the loop calls it every
// second, tests when they have moved the clock.
func (s *keySet) poll() {
	s.mu.Lock()
	if s.fetching == nil && !s.now().Before(s.next) {
		s.startLocked()
	}
	s.mu.Unlock()
}

// wait returns once no fetch is under way (tests, Close).
func (s *keySet) wait() {
	s.mu.Lock()
	f := s.fetching
	s.mu.Unlock()
	if f != nil {
		<-f.done
	}
}

func (s *keySet) loop(tick time.Duration) {
	defer close(s.done)
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		s.poll()
		select {
		case <-s.stop:
			return
		case <-t.C:
		}
	}
}

// close stops the loop and waits for a fetch under way; a second close
// does nothing.
func (s *keySet) close() {
	s.closing.Do(func() { close(s.stop) })
	<-s.done
	s.wait()
}

// held is the number of keys held; age the seconds since they were
// fetched, or since start-up while none has been.
func (s *keySet) held() float64 {
	if k := s.cur.Load(); k != nil {
		return float64(len(k.byKID))
	}
	return 0
}

func (s *keySet) age() float64 {
	since := s.start
	if k := s.cur.Load(); k != nil {
		since = k.fetched
	}
	return s.now().Sub(since).Seconds()
}

// The errors of a fetch, by outcome.
var (
	errNoUsableKeys = errors.New("key set holds no usable RSA key")
	errNotKeySet    = errors.New(`body is not a JSON key set ({"keys": [...]})`)
)

// get fetches and reads the key set: the keys, the response's max-age
// (-1 when none) and the outcome label.
func (s *keySet) get() (*keys, time.Duration, string, error) {
	req := s.up.NewRequest(fasthttp.MethodGet, s.path)
	req.Header.Set("Accept", "application/json")
	ex, err := s.up.Do(req, nil)
	switch {
	case errors.Is(err, validator.ErrTimeout):
		return nil, 0, "timeout", err
	case err != nil:
		return nil, 0, "connection_error", err
	case ex.Status != fasthttp.StatusOK:
		return nil, 0, "bad_status", fmt.Errorf("key endpoint answered HTTP %d", ex.Status)
	case ex.Dropped != nil:
		return nil, 0, "unreadable", ex.Dropped
	}
	set, err := s.parse(ex.Body)
	switch {
	case errors.Is(err, errNoUsableKeys):
		return nil, 0, "no_usable_keys", err
	case err != nil:
		return nil, 0, "unreadable", err
	}
	return set, maxAge(ex.CacheControl), "ok", nil
}

// parse reads a JWK Set, keeping the RSA signing keys jwkset accepts and
// logging each key it leaves out: one bad key does not discard the good
// ones, and a set with no good key is errNoUsableKeys.
func (s *keySet) parse(body []byte) (*keys, error) {
	var doc struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(body, &doc); err != nil || doc.Keys == nil {
		return nil, errNotKeySet
	}
	set := &keys{byKID: make(map[string]*rsa.PublicKey, len(doc.Keys))}
	for i, raw := range doc.Keys {
		kid, pk, why := readKey(raw)
		if why == "" {
			if _, dup := set.byKID[kid]; dup {
				why = "a second key with this kid (the first is kept)"
			}
		}
		if why != "" {
			s.m.KeysRefused.Inc()
			s.log.Warn("key refused", "provider", Name, "index", i, "kid", string(validator.EchoSafe([]byte(kid))), "why", why)
			continue
		}
		set.byKID[kid] = pk
	}
	if len(set.byKID) == 0 {
		return nil, errNoUsableKeys
	}
	return set, nil
}

// readKey reads one JWK: an RSA public key for signatures, with a kid, at
// least minKeyBits, RS256 if it names an algorithm. why says what is
// wrong with it ("" when nothing).
func readKey(raw json.RawMessage) (kid string, pk *rsa.PublicKey, why string) {
	var m jwkset.JWKMarshal
	if err := json.Unmarshal(raw, &m); err != nil {
		return "", nil, "not a JSON key object"
	}
	kid = m.KID
	switch {
	case kid == "":
		return "", nil, "no kid: no token can name it"
	case m.KTY != jwkset.KtyRSA:
		return kid, nil, "kty " + strconv.Quote(string(validator.EchoSafe([]byte(m.KTY)))) + " is not RSA"
	case m.USE != "" && m.USE != jwkset.UseSig:
		return kid, nil, "use " + strconv.Quote(string(validator.EchoSafe([]byte(m.USE)))) + " is not sig"
	case m.ALG != "" && m.ALG != jwkset.AlgRS256:
		return kid, nil, "alg " + strconv.Quote(string(validator.EchoSafe([]byte(m.ALG)))) + " is not RS256"
	case m.D != "":
		return kid, nil, "holds a private key: a key set publishes public keys only"
	}
	jwk, err := jwkset.NewJWKFromMarshal(m, jwkset.JWKMarshalOptions{}, jwkset.JWKValidateOptions{})
	if err != nil {
		return kid, nil, "malformed RSA key"
	}
	pk, ok := jwk.Key().(*rsa.PublicKey)
	switch {
	case !ok:
		return kid, nil, "not an RSA public key"
	case pk.N.BitLen() < minKeyBits:
		return kid, nil, "RSA key of " + strconv.Itoa(pk.N.BitLen()) + " bits (at least " + strconv.Itoa(minKeyBits) + ")"
	case pk.E < 3 || pk.E%2 == 0:
		return kid, nil, "RSA exponent is not an odd number of at least 3"
	}
	return kid, pk, ""
}

// maxAge reads Cache-Control's max-age, in whole seconds; -1 when it has
// none. no-cache and no-store count as 0 (the caller's floor applies).
func maxAge(cc string) time.Duration {
	age := time.Duration(-1)
	for d := range strings.SplitSeq(cc, ",") {
		d = strings.ToLower(strings.TrimSpace(d))
		switch {
		case d == "no-cache", d == "no-store":
			return 0
		case strings.HasPrefix(d, "max-age="):
			n, err := strconv.ParseInt(strings.Trim(d[len("max-age="):], `"`), 10, 64)
			if err == nil && n >= 0 {
				age = time.Duration(min(n, int64(365*24*3600))) * time.Second
			}
		}
	}
	return age
}

func kids(k *keys) []string {
	ids := make([]string, 0, len(k.byKID))
	for kid := range k.byKID {
		ids = append(ids, string(validator.EchoSafe([]byte(kid))))
	}
	slices.Sort(ids)
	return ids
}

func sameKIDs(a, b *keys) bool {
	if len(a.byKID) != len(b.byKID) {
		return false
	}
	for kid, pk := range a.byKID {
		if q := b.byKID[kid]; q == nil || !q.Equal(pk) {
			return false
		}
	}
	return true
}

// Package fleet is playerguard's fleet tier: a Redis (or Valkey) that every
// sidecar of a game shares, so that what one sidecar learns from an
// upstream answers the others. It implements validator.Fleet:
//
//   - Shared allows. On a local miss a sidecar reads the shared entry (one
//     pipelined round trip, with its kick markers); an upstream allow is
//     written for what remains of its fresh life. Keys are HMACs under the
//     fleet key (no token, player id or verification in any key); values
//     are encrypted and carry an HMAC over themselves, their expiry and
//     the key they are stored under, so a value anyone without the fleet
//     key wrote, altered or copied is ignored and counted.
//   - Fleet-wide flights. The same round trip takes a lock (SET NX PX, for
//     the upstream timeout); a sidecar that finds it taken waits for the
//     leader's value, polling, at most that long, then calls itself.
//   - Kicks. A kick or an admin purge sets the player's (or token's) kick
//     marker to the time of the kick, and is published, sealed, on one
//     channel that every sidecar subscribes to; each drops the player's
//     local entries. A shared value looked up before a kick of its player
//     or token (less the clock skew allowed) is stale: so an allow that was
//     in flight anywhere when the kick landed is never served after it.
//     Each sidecar also remembers the kicks it made or heard and judges
//     values by them too, so a marker not yet written, or deleted, does not
//     revive an allow where the kick is known.
//     Pub/sub rather than client-side tracking: tracking's invalidations
//     carry only key names, which here are digests a receiver cannot turn
//     back into the player to drop, and some managed Redis offer no
//     tracking.
//   - Failure. Every Redis wait of one validation shares one budget
//     (Config.Timeout); half of 20 round trips in 2 s failing opens the
//     tier's breaker, and the sidecar runs local-only, never waiting on
//     Redis (a flight holding a lock still fills or releases it). A lost subscription
//     may have missed kicks: when it is back, every local entry is dropped
//     (validator.FleetFlush), and kicks this sidecar could not publish are
//     published.
package fleet

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/rueidis"
	"github.com/sony/gobreaker/v2"

	"playerguard/cache"
	"playerguard/validator"
)

// Config configures a Tier.
type Config struct {
	// Addrs are Redis addresses, host:port: one for a single server, more
	// for the seeds of a cluster.
	Addrs              []string
	Username, Password string
	// TLS, if set, is used for every connection.
	TLS *tls.Config
	// Timeout is the most one validation waits on Redis, in all. Zero
	// means 50ms.
	Timeout time.Duration
	// Prefix starts every key and the channel; zero means "pg:".
	Prefix string
	// Key is the fleet key, at least 32 bytes, the same on every sidecar.
	Key []byte
	// FlightTTL is how long a fleet lock lives and a sidecar waits for
	// another's call: the upstream timeout. Zero means 5s.
	FlightTTL time.Duration
	// MaxTTL is the longest a shared allow lives (the cache TTL): kick
	// markers live that long. Zero means 5m.
	MaxTTL time.Duration
	// ClockSkew is the most the sidecars' clocks may differ: a value
	// looked up less than this before a kick is stale. Zero means 1s.
	ClockSkew time.Duration
	// Logger gets connection changes and refused messages. Nil discards.
	Logger *slog.Logger
	// Registerer gets the tier's metrics; nil means none registered.
	Registerer prometheus.Registerer
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Retry is how long the tier waits between connection attempts
	// while Redis is down. Zero means 1s.
	Retry time.Duration
}

// ErrRefused wraps Redis refusing playerguard's credentials or commands at
// start-up: a configuration error, unlike a Redis that is merely down.
var ErrRefused = errors.New("redis refused the connection")

// Local is what the tier drops entries of: the validator.
type Local interface {
	FleetPurged(validator.FleetPurge)
	// FleetKicked ends the sessions of a player another sidecar kicked.
	FleetKicked(player string, k validator.FleetKick)
	FleetFlush()
}

// Tier is the fleet tier. Its methods are safe for concurrent use.
type Tier struct {
	cfg    Config
	keys   keys
	opts   rueidis.ClientOption
	client atomic.Pointer[rueidis.Client]
	id     uint64 // this sidecar's, in kick messages
	lockID string
	chann  string
	log    *slog.Logger
	m      *tierMetrics

	breaker *gobreaker.TwoStepCircuitBreaker[struct{}]
	// breakerState mirrors the breaker's state as of its last transition.
	breakerState atomic.Int32
	// subscribed says the kick channel's subscription is live; missed,
	// that it was lost (or never held) since the last flush.
	subscribed atomic.Bool
	local      Local

	kicks chan validator.FleetPurge // to publish
	mu    sync.Mutex
	// pending are kicks that could not be published, sent when the tier
	// is back (bounded: the oldest go first).
	pending []validator.FleetPurge

	// recent are the kicks this sidecar made or heard, by subject, with
	// their time, judged beside Redis's markers: a marker not written yet
	// (the publisher is behind, or Redis refused it), or lost or deleted
	// since, must not revive an allow on a sidecar that knows of the kick.
	recentMu sync.Mutex
	recent   map[string]int64 // "p"+player, "t"+token: unix µs
	order    []recentKick     // by time, for expiry

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

type recentKick struct {
	subject string
	at      int64
}

// maxRecent bounds the kicks remembered: past it the oldest go, and with
// them only this memory's second opinion (the markers remain).
const maxRecent = 100_000

var errFailed = errors.New("redis operation failed")

// maxPending bounds the kicks kept for publishing once Redis is back.
const maxPending = 10_000

// New checks cfg and connects. Credentials or commands that Redis refuses
// are an error wrapping ErrRefused; a Redis that is down is not an error:
// the tier starts local-only and keeps trying. Call Start next.
func New(cfg Config) (*Tier, error) {
	if len(cfg.Addrs) == 0 {
		return nil, errors.New("no Redis address")
	}
	for _, a := range cfg.Addrs {
		if err := CheckAddr(a); err != nil {
			return nil, err
		}
	}
	if len(cfg.Key) < 32 {
		return nil, errors.New("the fleet key must be at least 32 bytes")
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 50 * time.Millisecond
	}
	if cfg.Prefix == "" {
		cfg.Prefix = "pg:"
	}
	if cfg.FlightTTL == 0 {
		cfg.FlightTTL = 5 * time.Second
	}
	if cfg.MaxTTL == 0 {
		cfg.MaxTTL = 5 * time.Minute
	}
	if cfg.ClockSkew == 0 {
		cfg.ClockSkew = time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Retry == 0 {
		cfg.Retry = time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Timeout < 0 || cfg.FlightTTL < 0 || cfg.MaxTTL < 0 || cfg.ClockSkew < 0 || cfg.Retry < 0 {
		return nil, errors.New("durations must not be negative")
	}
	var idb [8]byte
	rand.Read(idb[:])
	t := &Tier{
		cfg:    cfg,
		keys:   deriveKeys(cfg.Key),
		id:     binary.BigEndian.Uint64(idb[:]),
		lockID: strconv.FormatUint(binary.BigEndian.Uint64(idb[:]), 36),
		chann:  cfg.Prefix + "kicks",
		log:    cfg.Logger,
		m:      newTierMetrics(cfg.Registerer),
		kicks:  make(chan validator.FleetPurge, 1024),
		recent: map[string]int64{},
	}
	t.opts = rueidis.ClientOption{
		InitAddress: cfg.Addrs,
		Username:    cfg.Username,
		Password:    cfg.Password,
		TLSConfig:   cfg.TLS,
		// No client-side cache (nothing here reads the same key twice
		// in its life) and so no CLIENT TRACKING; no retries beyond the
		// validation's budget; no CLIENT SETINFO (one command fewer for
		// the ACL).
		DisableCache:  true,
		DisableRetry:  true,
		ClientSetInfo: rueidis.DisableClientSetInfo,
		Dialer:        net.Dialer{Timeout: 2 * time.Second, KeepAlive: time.Second},
		// A Redis that accepts connections and stops answering breaks
		// the connection (and the subscription) within this: rueidis
		// PINGs an idle one.
		ConnWriteTimeout: 3 * time.Second,
	}
	t.breaker = gobreaker.NewTwoStepCircuitBreaker[struct{}](gobreaker.Settings{
		Name:        "redis",
		MaxRequests: 1,
		Timeout:     2 * time.Second,
		// Half or more of at least 20 round trips in 2 s failing, rather
		// than a few in a row: under a reconnect storm on a loaded host
		// some round trips overrun the 50ms budget in bursts (the bench's
		// fleet storm: 82 of 300 lookups), and opening then would drop
		// the fleet's coalescing exactly when it is needed. A Redis that
		// is down or frozen fails every round trip and trips it at once.
		Interval:    2 * time.Second,
		ReadyToTrip: func(c gobreaker.Counts) bool { return c.Requests >= 20 && 2*c.TotalFailures >= c.Requests },
		OnStateChange: func(_ string, from, to gobreaker.State) {
			// Runs under the breaker's lock: no calls back into it.
			t.breakerState.Store(int32(to))
			t.log.Warn("redis circuit breaker", "from", from.String(), "to", to.String())
			t.setConnected()
		},
	})
	t.ctx, t.cancel = context.WithCancel(context.Background())
	if err := t.connect(); err != nil {
		if errors.Is(err, ErrRefused) {
			t.cancel()
			return nil, err
		}
		t.log.Warn("redis unreachable: running local-only until it answers", "addr", strings.Join(cfg.Addrs, ","), "error", err.Error())
	}
	t.setConnected()
	return t, nil
}

// CheckAddr reports whether a is host:port with a port number.
func CheckAddr(a string) error {
	host, port, err := net.SplitHostPort(a)
	if err != nil || host == "" {
		return fmt.Errorf("redis address %q is not host:port", a)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("redis address %q has no valid port", a)
	}
	return nil
}

// connect makes the client, if there is none yet.
func (t *Tier) connect() error {
	if t.client.Load() != nil {
		return nil
	}
	c, err := rueidis.NewClient(t.opts)
	if err != nil {
		if re, ok := rueidis.IsRedisErr(err); ok && !re.IsNil() {
			// Redis's own words (WRONGPASS, NOPERM...) name no secret.
			return fmt.Errorf("%w: %.200s", ErrRefused, re.Error())
		}
		return err
	}
	t.client.Store(&c)
	return nil
}

// Start runs the tier's background work (connecting, the kick channel's
// subscription, publishing kicks) until Close, dropping entries of local.
func (t *Tier) Start(local Local) {
	t.local = local
	t.wg.Add(3)
	go t.subscribe()
	go t.publish()
	go t.probe()
}

// Close stops the tier and closes its connections.
func (t *Tier) Close() {
	t.cancel()
	t.wg.Wait()
	if c := t.client.Load(); c != nil {
		(*c).Close()
	}
}

// Connected says the tier is in the fleet: subscribed to kicks, and its
// breaker closed.
func (t *Tier) Connected() bool {
	return t.subscribed.Load() && t.breakerState.Load() == int32(gobreaker.StateClosed)
}

func (t *Tier) setConnected() {
	if t.Connected() {
		t.m.connected.Set(1)
	} else {
		t.m.connected.Set(0)
	}
}

// subscribe holds the kick channel's subscription, connecting first if
// need be, and again whenever it is lost.
func (t *Tier) subscribe() {
	defer t.wg.Done()
	for t.ctx.Err() == nil {
		if err := t.connect(); err != nil {
			t.m.ops.WithLabelValues("connect", outcome(err)).Inc()
			if errors.Is(err, ErrRefused) {
				t.log.Error("redis refused playerguard", "error", err.Error())
			}
			t.sleep(t.cfg.Retry)
			continue
		}
		c := *t.client.Load()
		ctx := rueidis.WithOnSubscriptionHook(t.ctx, func(s rueidis.PubSubSubscription) {
			if s.Kind == "subscribe" {
				// Runs on the connection's goroutine: the flush and the
				// replay go elsewhere.
				go t.rejoined()
			}
		})
		err := c.Receive(ctx, c.B().Subscribe().Channel(t.chann).Build(), t.received)
		if t.ctx.Err() != nil {
			return // closing
		}
		if t.subscribed.Swap(false) {
			t.log.Warn("redis subscription lost: local-only until it is back", "error", errString(err))
		}
		t.setConnected()
		if t.ctx.Err() != nil {
			return
		}
		t.sleep(t.cfg.Retry)
	}
}

func errString(err error) string {
	if err == nil {
		return "unsubscribed"
	}
	return err.Error()
}

func (t *Tier) sleep(d time.Duration) {
	select {
	case <-t.ctx.Done():
	case <-time.After(d):
	}
}

// rejoined runs once the subscription is (back) in place: what was cached
// while it was not may have missed kicks, so all of it goes; then the
// kicks this sidecar could not publish are.
func (t *Tier) rejoined() {
	t.subscribed.Store(true)
	if t.local != nil {
		t.local.FleetFlush()
	}
	t.m.flushes.Inc()
	t.setConnected()
	t.log.Info("redis subscription in place: in the fleet", "local_entries", "dropped")
	t.replay()
}

// replay queues the kicks kept for when Redis is back.
func (t *Tier) replay() {
	t.mu.Lock()
	p := t.pending
	t.pending = nil
	t.m.pending.Set(0)
	t.mu.Unlock()
	for _, k := range p {
		t.queue(k)
	}
}

// received applies one kick message.
func (t *Tier) received(msg rueidis.PubSubMessage) {
	o, err := t.keys.openKick(t.chann, []byte(msg.Message))
	if err != nil {
		t.m.ignored.WithLabelValues("kick_" + err.Error()).Inc()
		return
	}
	if o.sender == t.id {
		return // dropped here before it was sent
	}
	p := o.p
	if p.Kick != nil {
		// A note: the sessions of a player kicked (its purge came first),
		// those last validated before the kick: one validated since had a
		// newer allow. So a note heard late or heard again ends no session
		// that came after it. (By the sender's clock: a session validated
		// within the clock skew after the kick may end too, which needs
		// the upstream to change its verdict within that second.)
		if t.local != nil {
			k := *p.Kick
			k.At = time.UnixMicro(o.sent)
			t.local.FleetKicked(p.Player, k)
		}
		return
	}
	kind := "player"
	switch {
	case len(p.Keys) > 0:
		kind = "key"
	case p.HasToken:
		kind = "token"
	}
	t.m.invalidations.WithLabelValues(kind).Inc()
	t.remember(p)
	if t.local != nil {
		t.local.FleetPurged(p)
	}
}

// Kick implements validator.Fleet: it never waits on Redis (a goroutine
// publishes).
func (t *Tier) Kick(p validator.FleetPurge) {
	if p.Player == "" && !p.HasToken && len(p.Keys) == 0 {
		return // names nothing (a player_mismatch kick)
	}
	t.remember(p)
	t.queue(p)
}

// remember records p's subjects as kicked now (for a kick heard, a little
// after it was made: that errs towards refusing a value).
func (t *Tier) remember(p validator.FleetPurge) {
	now := t.cfg.Now().UnixMicro()
	life := (t.cfg.MaxTTL + t.cfg.FlightTTL + t.cfg.ClockSkew).Microseconds()
	t.recentMu.Lock()
	defer t.recentMu.Unlock()
	add := func(subject string) {
		t.recent[subject] = now
		t.order = append(t.order, recentKick{subject, now})
	}
	if p.Player != "" {
		add("p" + p.Player)
	}
	if p.HasToken || len(p.Keys) > 0 {
		add("t" + string(tokenID(p.Token)))
	}
	n := 0
	for _, k := range t.order {
		if len(t.order)-n <= maxRecent && k.at > now-life {
			break
		}
		if t.recent[k.subject] == k.at {
			delete(t.recent, k.subject)
		}
		n++
	}
	t.order = t.order[n:]
}

// kickedSince says whether this sidecar made or heard a kick of player or
// token at or after lookedUp less the clock skew.
func (t *Tier) kickedSince(player string, token cache.TokenID, lookedUp int64) bool {
	since := lookedUp - t.cfg.ClockSkew.Microseconds()
	t.recentMu.Lock()
	defer t.recentMu.Unlock()
	if at, ok := t.recent["t"+string(tokenID(token))]; ok && at >= since {
		return true
	}
	if player == "" {
		return false
	}
	at, ok := t.recent["p"+player]
	return ok && at >= since
}

func (t *Tier) queue(p validator.FleetPurge) {
	select {
	case t.kicks <- p:
	default:
		t.keep(p)
	}
}

// keep holds p for when Redis is back.
func (t *Tier) keep(p validator.FleetPurge) {
	t.mu.Lock()
	if len(t.pending) >= maxPending {
		t.pending = t.pending[1:]
		t.m.kicksDropped.Inc()
	}
	t.pending = append(t.pending, p)
	t.m.pending.Set(float64(len(t.pending)))
	t.mu.Unlock()
}

func (t *Tier) publish() {
	defer t.wg.Done()
	for {
		select {
		case <-t.ctx.Done():
			return
		case p := <-t.kicks:
			if err := t.send(p); err != nil {
				t.keep(p)
			}
		}
	}
}

// send sets the kick markers of what p names and publishes p.
func (t *Tier) send(p validator.FleetPurge) error {
	c, done, ok := t.use()
	if !ok {
		t.m.ops.WithLabelValues("kick", "skipped").Inc()
		return errors.New("local-only")
	}
	now := strconv.FormatInt(t.cfg.Now().UnixMicro(), 10)
	life := t.cfg.MaxTTL + t.cfg.FlightTTL + t.cfg.ClockSkew
	cmds := make(rueidis.Commands, 0, 4)
	if p.Player != "" {
		cmds = append(cmds, c.B().Set().Key(t.keys.name(t.cfg.Prefix, "p", []byte(p.Player))).Value(now).Px(life).Build())
	}
	if p.HasToken || len(p.Keys) > 0 {
		cmds = append(cmds, c.B().Set().Key(t.keys.name(t.cfg.Prefix, "t", tokenID(p.Token))).Value(now).Px(life).Build())
	}
	cmds = append(cmds, c.B().Publish().Channel(t.chann).Message(rueidis.BinaryString(t.keys.sealKick(t.chann, t.id, p))).Build())
	if p.Kick != nil && p.Player != "" {
		// The kick's own time, not the send's: one held while Redis was
		// away ends only the sessions from before it.
		if note, ok := t.keys.sealNote(t.chann, t.id, p.Kick.At.UnixMicro(), p.Player, p.Kick); ok {
			cmds = append(cmds, c.B().Publish().Channel(t.chann).Message(rueidis.BinaryString(note)).Build())
		}
	}
	start := time.Now()
	var err error
	for _, r := range t.bounded(c, t.cfg.Timeout, cmds) {
		if err == nil {
			err = r.Error()
		}
	}
	t.m.seconds.WithLabelValues("kick").Observe(time.Since(start).Seconds())
	t.m.ops.WithLabelValues("kick", outcome(err)).Inc()
	done(err == nil)
	return err
}

// bounded runs cmds and returns within d whatever Redis does: rueidis
// honours a context's deadline once a connection is up, but a Redis that
// accepts connections and never answers can hold a new connection's
// handshake longer, so the wait is bounded here, not there. A round trip
// given up on finishes (or fails) on its own goroutine.
func (t *Tier) bounded(c rueidis.Client, d time.Duration, cmds rueidis.Commands) []rueidis.RedisResult {
	return t.boundedLate(c, d, cmds, nil)
}

// boundedLate is bounded, and calls late (on its own goroutine) with the
// results of a round trip given up on, if they come: a command may have
// taken effect after all (a lock taken).
func (t *Tier) boundedLate(c rueidis.Client, d time.Duration, cmds rueidis.Commands, late func([]rueidis.RedisResult)) []rueidis.RedisResult {
	done := make(chan []rueidis.RedisResult, 1)
	var settled atomic.Bool // by whichever comes first: the reply or the deadline
	go func() {
		// rueidis's own deadline is later than ours, so that a reply on
		// its way is still read for late.
		ctx, cancel := context.WithTimeout(t.ctx, d+t.cfg.FlightTTL)
		rs := c.DoMulti(ctx, cmds...)
		cancel()
		if !settled.CompareAndSwap(false, true) && late != nil {
			late(rs)
			return
		}
		done <- rs
	}()
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case rs := <-done:
		return rs
	case <-timer.C:
	case <-t.ctx.Done():
	}
	if !settled.CompareAndSwap(false, true) {
		return <-done // the reply came just now
	}
	rs := make([]rueidis.RedisResult, len(cmds))
	for i := range rs {
		rs[i] = rueidis.NewErrorResult(context.DeadlineExceeded)
	}
	return rs
}

// probe lets the breaker close without validations to carry it: while it
// is not closed, a PING each Retry (the one request half-open lets
// through). Without it a sidecar with no local misses would stay
// local-only after Redis is back. While in the fleet, it replays kicks
// that failed to go out.
func (t *Tier) probe() {
	defer t.wg.Done()
	for t.ctx.Err() == nil {
		t.sleep(t.cfg.Retry)
		if t.breaker.State() == gobreaker.StateClosed {
			// A kick whose round trip failed while the subscription
			// stayed up (a timeout, a full Redis) goes out again here,
			// not only on the next resubscription.
			if t.Connected() {
				t.replay()
			}
			continue
		}
		c, done, ok := t.use()
		if !ok {
			continue
		}
		err := t.bounded(c, t.cfg.Timeout, rueidis.Commands{c.B().Ping().Build()})[0].Error()
		t.m.ops.WithLabelValues("connect", outcome(err)).Inc()
		done(err == nil)
	}
}

// use is the client and the breaker's permission to use it, if the tier
// may ask Redis now; done reports whether the use went well.
func (t *Tier) use() (rueidis.Client, func(bool), bool) {
	cp := t.client.Load()
	if cp == nil {
		return nil, nil, false
	}
	done, err := t.breaker.Allow()
	if err != nil {
		return nil, nil, false
	}
	return *cp, func(ok bool) {
		if ok {
			done(nil)
		} else {
			done(errFailed)
		}
	}, true
}

// owed is use for what a flight owes the fleet: a flight that holds a
// lock is answered (its value stored, or the lock let go) even while the
// breaker is open, for other sidecars wait on it; without this they would
// wait out the lock's life (the upstream timeout), as the bench's storm
// showed when the breaker opened mid-storm. Such a round trip does not
// count for the breaker.
func (t *Tier) owed(f *flight) (rueidis.Client, func(bool), bool) {
	if c, done, ok := t.use(); ok || !f.locked {
		return c, done, ok
	}
	cp := t.client.Load()
	if cp == nil {
		return nil, nil, false
	}
	return *cp, func(bool) {}, true
}

// outcome is an operation's outcome label.
func outcome(err error) string {
	switch {
	case err == nil:
		return "ok"
	case errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	}
	return "error"
}

// Ignored implements validator.Fleet.
func (t *Tier) Ignored() { t.m.ignored.WithLabelValues("undecodable").Inc() }

// Look implements validator.Fleet.
func (t *Tier) Look(key *cache.Key, player string, token cache.TokenID) validator.SharedFlight {
	f := &flight{t: t, budget: t.cfg.Timeout, looked: t.cfg.Now(), player: player, token: token, led: true}
	c, done, ok := t.use()
	if !ok {
		t.m.ops.WithLabelValues("look", "skipped").Inc()
		return f
	}
	f.vkey = t.keys.name(t.cfg.Prefix, "v", key[:])
	f.lkey = t.keys.name(t.cfg.Prefix, "l", key[:])
	f.tkey = t.keys.name(t.cfg.Prefix, "t", tokenID(token))
	cmds := rueidis.Commands{
		c.B().Set().Key(f.lkey).Value(t.lockID).Nx().Px(t.cfg.FlightTTL).Build(),
		c.B().Get().Key(f.vkey).Build(),
		c.B().Get().Key(f.tkey).Build(),
	}
	if player != "" {
		f.pkey = t.keys.name(t.cfg.Prefix, "p", []byte(player))
		cmds = append(cmds, c.B().Get().Key(f.pkey).Build())
	}
	lkey := f.lkey
	rs, err := f.doLate(c, "look", cmds, func(rs []rueidis.RedisResult) {
		// Given up on, but the lock was taken: let it go, or the other
		// sidecars would wait on a flight that fills nothing until the
		// lock's life is over.
		if rs[0].Error() == nil {
			t.bounded(c, t.cfg.Timeout, rueidis.Commands{c.B().Del().Key(lkey).Build()})
			t.m.ops.WithLabelValues("release", "ok").Inc()
		}
	})
	done(err == nil)
	if err != nil {
		return f // lead, alone
	}
	// SET NX answers OK when taken, nil when another holds the lock.
	f.locked = rs[0].Error() == nil
	f.led = f.locked
	f.val, f.exp = f.judge(c, rs[1], rs[2], rs[3:])
	if f.val != nil {
		t.m.saved.WithLabelValues("shared").Inc()
	}
	return f
}

// flight is one local miss's fleet state; see validator.SharedFlight.
type flight struct {
	t      *Tier
	budget time.Duration // what remains of the validation's Redis wait
	looked time.Time
	player string
	token  cache.TokenID

	vkey, lkey, tkey, pkey string
	led, locked            bool
	val                    []byte
	exp                    time.Time
}

// do runs cmds within what remains of the budget; the error is the first
// failure (a Redis nil is not one).
func (f *flight) do(c rueidis.Client, op string, cmds rueidis.Commands) ([]rueidis.RedisResult, error) {
	return f.doLate(c, op, cmds, nil)
}

// doLate is do, with late as for boundedLate.
func (f *flight) doLate(c rueidis.Client, op string, cmds rueidis.Commands, late func([]rueidis.RedisResult)) ([]rueidis.RedisResult, error) {
	if f.budget <= 0 {
		f.t.m.ops.WithLabelValues(op, "skipped").Inc()
		return nil, context.DeadlineExceeded
	}
	start := time.Now()
	rs := f.t.boundedLate(c, f.budget, cmds, late)
	took := time.Since(start)
	f.budget -= took
	var err error
	for _, r := range rs {
		if e := r.Error(); e != nil && !rueidis.IsRedisNil(e) && err == nil {
			err = e
		}
	}
	f.t.m.seconds.WithLabelValues(op).Observe(took.Seconds())
	f.t.m.ops.WithLabelValues(op, outcome(err)).Inc()
	return rs, err
}

// judge is the value read, if authentic, current and not kicked since it
// was looked up: marks are the token's and (for a claim) the player's kick
// markers, read with it.
func (f *flight) judge(c rueidis.Client, v, tmark rueidis.RedisResult, pmark []rueidis.RedisResult) ([]byte, time.Time) {
	raw, err := v.AsBytes()
	if err != nil {
		return nil, time.Time{} // none
	}
	t := f.t
	o, err := t.keys.open(f.vkey, raw, t.cfg.Now())
	if err != nil {
		t.m.ignored.WithLabelValues(err.Error()).Inc()
		return nil, time.Time{}
	}
	if f.player != "" && o.player != f.player {
		t.m.ignored.WithLabelValues("forged").Inc() // the key covers the claim
		return nil, time.Time{}
	}
	if t.kickedSince(o.player, f.token, o.lookedUp) {
		t.m.ignored.WithLabelValues("kicked").Inc()
		return nil, time.Time{}
	}
	marks := []rueidis.RedisResult{tmark}
	if f.player != "" {
		marks = append(marks, pmark...)
	} else if o.player != "" {
		// No claim: the player is the value's; one more read.
		rs, err := f.do(c, "look", rueidis.Commands{c.B().Get().Key(t.keys.name(t.cfg.Prefix, "p", []byte(o.player))).Build()})
		if err != nil {
			return nil, time.Time{}
		}
		marks = append(marks, rs[0])
	}
	for _, m := range marks {
		s, err := m.ToString()
		if rueidis.IsRedisNil(err) {
			continue
		}
		at, ok := parseMarker(s)
		if err != nil || !ok || at >= o.lookedUp-t.cfg.ClockSkew.Microseconds() {
			t.m.ignored.WithLabelValues("kicked").Inc()
			return nil, time.Time{}
		}
	}
	return o.payload, o.expires
}

func (f *flight) Value() ([]byte, time.Time) { return f.val, f.exp }
func (f *flight) Led() bool                  { return f.led }

// Wait polls for the leader's value: every 2 ms at first, then less often,
// until the value is there, the lock is gone without one, the flight's
// time is up, or Redis fails (or the budget is spent).
func (f *flight) Wait() ([]byte, time.Time) {
	t := f.t
	deadline := f.looked.Add(t.cfg.FlightTTL)
	pause := 2 * time.Millisecond
	for {
		time.Sleep(pause)
		pause = min(2*pause, 20*time.Millisecond)
		if !t.cfg.Now().Before(deadline) {
			return nil, time.Time{}
		}
		c, done, ok := t.use()
		if !ok {
			return nil, time.Time{}
		}
		cmds := rueidis.Commands{
			c.B().Get().Key(f.vkey).Build(),
			c.B().Get().Key(f.lkey).Build(),
			c.B().Get().Key(f.tkey).Build(),
		}
		if f.pkey != "" {
			cmds = append(cmds, c.B().Get().Key(f.pkey).Build())
		}
		rs, err := f.do(c, "wait", cmds)
		done(err == nil)
		if err != nil {
			return nil, time.Time{}
		}
		if b, exp := f.judge(c, rs[0], rs[2], rs[3:]); b != nil {
			t.m.saved.WithLabelValues("waited").Inc()
			return b, exp
		}
		if rueidis.IsRedisNil(rs[1].Error()) {
			return nil, time.Time{} // the leader got no allow, or is gone
		}
	}
}

// Store writes b under the flight's key until expires, and ends the flight.
// It runs after the answer is out (the validator's settle): its wait is
// Timeout of its own.
func (f *flight) Store(b []byte, player string, expires time.Time) {
	t := f.t
	if f.vkey == "" { // local-only at Look
		return
	}
	ttl := expires.Sub(t.cfg.Now())
	c, done, ok := t.owed(f)
	if ttl <= 0 || !ok {
		f.Done()
		return
	}
	f.budget = t.cfg.Timeout
	val := t.keys.seal(f.vkey, expires, f.looked, player, b)
	cmds := rueidis.Commands{c.B().Set().Key(f.vkey).Value(rueidis.BinaryString(val)).Px(ttl).Build()}
	if f.locked {
		cmds = append(cmds, c.B().Del().Key(f.lkey).Build())
		f.locked = false
	}
	_, err := f.do(c, "store", cmds)
	done(err == nil)
}

// Done releases the flight's lock, if it holds one, without waiting: a
// waiter that finds it gone calls the upstream itself.
func (f *flight) Done() {
	if !f.locked {
		return
	}
	t := f.t
	c, done, ok := t.owed(f)
	f.locked = false
	if !ok {
		return
	}
	lkey := f.lkey
	go func() {
		ctx, cancel := context.WithTimeout(t.ctx, t.cfg.Timeout)
		err := c.Do(ctx, c.B().Del().Key(lkey).Build()).Error()
		cancel()
		t.m.ops.WithLabelValues("release", outcome(err)).Inc()
		done(err == nil)
	}()
}

// stateName is the Redis key of a provider's shared state named name.
func (t *Tier) stateName(name string) string { return t.keys.name(t.cfg.Prefix, "s", []byte(name)) }

// Budget implements validator.SharedState.
func (t *Tier) Budget() time.Duration { return t.cfg.Timeout }

// state runs cmds for a provider's shared state within *budget (nil: a
// whole Timeout), and takes what they waited off it.
func (t *Tier) state(op string, budget *time.Duration, build func(c rueidis.Client) rueidis.Commands) ([]rueidis.RedisResult, error) {
	c, done, ok := t.use()
	if !ok {
		t.m.ops.WithLabelValues(op, "skipped").Inc()
		return nil, errors.New("local-only")
	}
	f := &flight{t: t, budget: t.cfg.Timeout}
	if budget != nil {
		f.budget = *budget
	}
	rs, err := f.do(c, op, build(c))
	if budget != nil {
		*budget = f.budget
	}
	done(err == nil)
	return rs, err
}

// openState reads a provider's value read under rkey; nil if absent or
// not authentic (counted).
func (t *Tier) openState(rkey string, r rueidis.RedisResult) []byte {
	raw, err := r.AsBytes()
	if err != nil {
		return nil
	}
	o, err := t.keys.open(rkey, raw, t.cfg.Now())
	if err != nil {
		t.m.ignored.WithLabelValues(err.Error()).Inc()
		return nil
	}
	return o.payload
}

// Load implements validator.SharedState.
func (t *Tier) Load(name string, budget *time.Duration) []byte {
	rkey := t.stateName(name)
	rs, err := t.state("state", budget, func(c rueidis.Client) rueidis.Commands {
		return rueidis.Commands{c.B().Get().Key(rkey).Build()}
	})
	if err != nil {
		return nil
	}
	return t.openState(rkey, rs[0])
}

// Store implements validator.SharedState.
func (t *Tier) Store(name string, value []byte, expires time.Time) {
	ttl := expires.Sub(t.cfg.Now())
	if ttl <= 0 {
		return
	}
	rkey := t.stateName(name)
	t.state("state", nil, func(c rueidis.Client) rueidis.Commands {
		v := t.keys.seal(rkey, expires, t.cfg.Now(), "", value)
		return rueidis.Commands{c.B().Set().Key(rkey).Value(rueidis.BinaryString(v)).Px(ttl).Build()}
	})
}

// Claim implements validator.SharedState: SET NX GET (Redis 7), so the
// claim and the read of whoever holds it are one command.
func (t *Tier) Claim(name string, value []byte, expires time.Time, budget *time.Duration) ([]byte, bool, error) {
	ttl := expires.Sub(t.cfg.Now())
	if ttl <= 0 {
		return nil, false, errors.New("claim already expired")
	}
	rkey := t.stateName(name)
	rs, err := t.state("state", budget, func(c rueidis.Client) rueidis.Commands {
		v := t.keys.seal(rkey, expires, t.cfg.Now(), "", value)
		return rueidis.Commands{c.B().Set().Key(rkey).Value(rueidis.BinaryString(v)).Nx().Get().Px(ttl).Build()}
	})
	if err != nil {
		return nil, false, err
	}
	if rueidis.IsRedisNil(rs[0].Error()) {
		return value, true, nil // it was free: ours now
	}
	held := t.openState(rkey, rs[0])
	if held == nil {
		// Held by a value that does not verify: nobody's claim can be
		// trusted, so neither can ours be made.
		return nil, false, errors.New("shared claim held by a value that does not verify")
	}
	return held, false, nil
}

// Delete implements validator.SharedState. (A read, then a delete: a
// claim made in between by another sidecar can be lost, which costs one
// more verification of that imp_uid, never an admission.)
func (t *Tier) Delete(name string, value []byte) {
	rkey := t.stateName(name)
	rs, err := t.state("state", nil, func(c rueidis.Client) rueidis.Commands {
		return rueidis.Commands{c.B().Get().Key(rkey).Build()}
	})
	if err != nil {
		return
	}
	if held := t.openState(rkey, rs[0]); held != nil && string(held) == string(value) {
		t.state("state", nil, func(c rueidis.Client) rueidis.Commands {
			return rueidis.Commands{c.B().Del().Key(rkey).Build()}
		})
	}
}

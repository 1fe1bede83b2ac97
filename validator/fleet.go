package validator

import (
	"encoding/binary"
	"errors"
	"time"

	"playerguard/cache"
)

// Fleet is a tier shared by every sidecar of a fleet (package fleet, on
// Redis or Valkey): allows looked up on a local miss, one upstream call
// per key across the fleet, and kicks and purges that reach every sidecar.
// Its methods bound their own waits and never fail: whatever goes wrong
// with the store reads as a miss (or, for a flight, as leading it), and
// the validation goes on as it would without a fleet. A local hit never
// reaches it.
type Fleet interface {
	// Look is a local miss's question to the fleet: the shared allow for
	// key, if any, and this sidecar's place in the fleet's flight for it.
	// player is the claim ("" for none), token the request's token.
	Look(key *cache.Key, player string, token cache.TokenID) SharedFlight
	// Kick drops what p names from the shared tier and from every other
	// sidecar (this one has dropped it already).
	Kick(p FleetPurge)
	// Ignored counts a shared value that was authentic but that this
	// sidecar could not use (written by another version, or about
	// another provider).
	Ignored()
}

// SharedFlight is one local miss's view of the fleet; its methods are
// called by one goroutine, in this order: Value, then Wait if not Led,
// then Store or Done.
type SharedFlight interface {
	// Value is the authentic, current shared allow found by Look (nil if
	// none), fresh until expires.
	Value() (b []byte, expires time.Time)
	// Led says this sidecar is to call the upstream: it holds the fleet's
	// lock for the key, or none could be had.
	Led() bool
	// Wait waits for the value the sidecar that leads the flight shares,
	// for at most the upstream timeout. nil: none came (the leader got no
	// allow, or is gone, or the store failed): call the upstream.
	Wait() (b []byte, expires time.Time)
	// Store shares b, an allow about player, until expires, and ends the
	// flight.
	Store(b []byte, player string, expires time.Time)
	// Done ends a flight without a value to share.
	Done()
}

// FleetPurge is what a kick or a purge drops across the fleet: every entry
// of Player (if not ""), every entry of Token (if HasToken), and the
// entries Keys. In the shared tier, Keys drop every shared entry of Token
// (shared entries are checked against kicks by player and token only).
type FleetPurge struct {
	Player   string
	Token    cache.TokenID
	HasToken bool
	Keys     []cache.Key
	// Kick, for a kick of Player (not a purge), ends Player's sessions
	// on every other sidecar, each with a kick event (FleetKicked).
	Kick *FleetKick
}

// FleetKick is what the other sidecars' kick events say: the provider
// whose sessions of the player end ("" for every provider's: an
// operator's kick naming none), the reason, whether an operator kicked
// (the events' source is then admin, else fleet), a lockout's
// redirectUri and token objects (raw JSON, nil if none), and when the
// kick was made: only sessions last validated before At end (one
// validated since had a newer allow), so a kick heard late (held while
// Redis was away) or heard again ends no session that came after it.
type FleetKick struct {
	Provider, Reason   string
	Admin              bool
	RedirectURI, Token []byte
	At                 time.Time
}

// FleetPurged drops locally what another sidecar's kick or purge named
// (package fleet calls it for each one received; a purge received twice
// drops nothing more). Flights of the token or player under way here are
// detached: no caller joins an allow fetched before the kick.
func (v *Validator) FleetPurged(p FleetPurge) {
	if p.HasToken {
		var none cache.Key
		v.flights.detach(p.Token, p.Player, &none)
		v.cache.PurgeToken(p.Token)
	} else if p.Player != "" {
		v.flights.detachPlayer(p.Player)
	}
	v.cache.PurgePlayer(p.Player)
	for i := range p.Keys {
		v.flights.detachKey(&p.Keys[i])
		v.cache.Delete(&p.Keys[i])
	}
}

// FleetFlush drops every local entry: the fleet tier calls it when it may
// have missed kicks (its subscription was lost and is back).
func (v *Validator) FleetFlush() {
	v.cache.PurgeAll()
}

// A shared allow is encoded as: version, provider name, status, MaxAge,
// the stale window, content type, PlayerID, Named, the raw spans, then
// the body. The fleet tier authenticates (and encrypts) it; this only
// frames it.
const sharedVersion = 1

var errShared = errors.New("shared value does not decode")

// encodeShared frames res, an allow of pv, with the stale window that
// follows its fresh one.
func encodeShared(pv *provider, res *Result, stale time.Duration) []byte {
	name := pv.spec.Name
	b := make([]byte, 0, 64+len(name)+len(res.ContentType)+len(res.PlayerID)+len(res.Named)+len(res.Body))
	b = append(b, sharedVersion, byte(len(name)))
	b = append(b, name...)
	b = binary.BigEndian.AppendUint16(b, uint16(res.Status))
	b = binary.BigEndian.AppendUint32(b, uint32(res.MaxAge))
	b = binary.BigEndian.AppendUint32(b, uint32(min(stale.Milliseconds(), 1<<32-1)))
	b = append(b, byte(len(res.ContentType)))
	b = append(b, res.ContentType...)
	b = binary.BigEndian.AppendUint16(b, uint16(len(res.PlayerID)))
	b = append(b, res.PlayerID...)
	b = binary.BigEndian.AppendUint16(b, uint16(len(res.Named)))
	b = append(b, res.Named...)
	for _, s := range res.raw {
		b = binary.BigEndian.AppendUint32(b, s.off)
		b = binary.BigEndian.AppendUint32(b, s.end)
	}
	return append(b, res.Body...)
}

// shareable says whether res, an allow of pv, can be framed: every length
// fits its field (they always do for what the providers produce).
func shareable(pv *provider, res *Result) bool {
	return len(pv.spec.Name) < 256 && len(res.ContentType) < 256 && len(res.PlayerID) < 1<<16 && len(res.Named) < 1<<16 &&
		res.Status > 0 && res.Status < 1<<16
}

// decodeShared reads an allow of pv framed by encodeShared, and its stale
// window. It trusts nothing: every length and span is checked.
func decodeShared(pv *provider, b []byte) (*Result, time.Duration, error) {
	r := sharedReader{b: b}
	if r.u8() != sharedVersion || string(r.bytes(int(r.u8()))) != pv.spec.Name {
		return nil, 0, errShared
	}
	res := &Result{Verdict: Allow, Reason: ReasonOK, Fields: pv.spec.Fields}
	res.Status = int(r.u16())
	res.MaxAge = int32(r.u32())
	stale := time.Duration(r.u32()) * time.Millisecond
	res.ContentType = string(r.bytes(int(r.u8())))
	res.PlayerID = string(r.bytes(int(r.u16())))
	res.Named = string(r.bytes(int(r.u16())))
	for i := range res.raw {
		res.raw[i] = span{r.u32(), r.u32()}
	}
	if r.bad {
		return nil, 0, errShared
	}
	res.Body = r.b
	for _, s := range res.raw {
		if s.off > s.end || int(s.end) > len(res.Body) {
			return nil, 0, errShared
		}
	}
	if !res.raw[0].set() || res.Status == 0 || res.MaxAge < 0 {
		return nil, 0, errShared
	}
	return res, stale, nil
}

// sharedReader reads big-endian fields off b; a read past the end sets bad.
type sharedReader struct {
	b   []byte
	bad bool
}

func (r *sharedReader) bytes(n int) []byte {
	if n > len(r.b) {
		r.bad, r.b = true, nil
		return nil
	}
	v := r.b[:n:n]
	r.b = r.b[n:]
	return v
}

func (r *sharedReader) u8() byte {
	if v := r.bytes(1); v != nil {
		return v[0]
	}
	return 0
}

func (r *sharedReader) u16() uint16 {
	if v := r.bytes(2); v != nil {
		return binary.BigEndian.Uint16(v)
	}
	return 0
}

func (r *sharedReader) u32() uint32 {
	if v := r.bytes(4); v != nil {
		return binary.BigEndian.Uint32(v)
	}
	return 0
}

// SharedState is the fleet's store for a provider's own state (package
// fleet): small values under names the provider chooses, stored under
// HMACs of the names, sealed (encrypted and authenticated), each with an
// expiry. Every method is bounded by the fleet's Redis timeout; a failure
// is an error (or, for Load, nothing found), after which the provider goes
// on with its own state alone.
//
// Load and Claim, which a validation waits on, spend from *budget, what
// remains of the validation's Redis wait (start it at Budget()); Store and
// Delete are for after the answer, with a whole budget each.
type SharedState interface {
	// Budget is one validation's whole Redis wait (-redis-timeout).
	Budget() time.Duration
	// Load is the value stored under name, authentic and unexpired; nil
	// if there is none or it cannot be read.
	Load(name string, budget *time.Duration) []byte
	// Store writes value under name until expires.
	Store(name string, value []byte, expires time.Time)
	// Claim stores value under name until expires unless name holds a
	// value already, atomically across the fleet, and returns the value
	// name holds now: value itself when the claim won.
	Claim(name string, value []byte, expires time.Time, budget *time.Duration) (held []byte, won bool, err error)
	// Delete drops name's value if it is still value.
	Delete(name string, value []byte)
}

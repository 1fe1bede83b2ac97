package fleet

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"strconv"
	"time"

	"playerguard/cache"
	"playerguard/validator"
)

// keys are the fleet key's subkeys, one per use, so no two uses share one.
type keys struct {
	names []byte       // HMAC key for Redis key names
	mac   []byte       // HMAC key for shared values
	block cipher.Block // AES-256 for shared values' contents (CTR)
	kicks cipher.AEAD  // AES-256-GCM for kick messages
}

func deriveKeys(fleetKey []byte) keys {
	sub := func(use string) []byte {
		m := hmac.New(sha256.New, fleetKey)
		m.Write([]byte("playerguard fleet " + use))
		return m.Sum(nil)
	}
	block, err := aes.NewCipher(sub("value contents"))
	if err != nil {
		panic(err) // a 32-byte key is always valid
	}
	kb, err := aes.NewCipher(sub("kick messages"))
	if err != nil {
		panic(err)
	}
	gcm, err := cipher.NewGCM(kb)
	if err != nil {
		panic(err)
	}
	return keys{names: sub("key names"), mac: sub("value mac"), block: block, kicks: gcm}
}

// name is the Redis key for kind and id under prefix: an HMAC of them
// under the fleet key, so a key tells nothing of the token, player or
// verification behind it, even to one who can guess them.
func (k *keys) name(prefix, kind string, id []byte) string {
	m := hmac.New(sha256.New, k.names)
	m.Write([]byte(kind))
	m.Write([]byte{0})
	m.Write(id)
	var sum [sha256.Size]byte
	return prefix + kind + ":" + base64.RawURLEncoding.EncodeToString(m.Sum(sum[:0])[:18])
}

func tokenID(t cache.TokenID) []byte { return binary.LittleEndian.AppendUint64(nil, uint64(t)) }

// A shared value, as stored:
//
//	version (1) | expires, unix ms (8) | looked up, unix µs (8) | IV (16)
//	| AES-CTR(player length (2) | player | payload) | HMAC-SHA256 (32)
//
// The HMAC is over the Redis key the value is stored under, then
// everything before it: a value written without the fleet key, altered,
// or copied under another key fails it. "Looked up" is when the writer
// asked the fleet before its upstream call: a kick of the player or the
// token since then (less the clock skew allowed) makes it stale.
const (
	valueVersion = 1
	valueHeader  = 1 + 8 + 8 + aes.BlockSize
	// MaxValueLen bounds what is read back: an upstream body is capped
	// well below it.
	MaxValueLen = 256 << 10
)

var (
	errForged    = errors.New("forged")
	errMalformed = errors.New("malformed")
	errTooLarge  = errors.New("too_large")
	errExpired   = errors.New("expired")
)

func (k *keys) seal(rkey string, expires time.Time, lookedUp time.Time, player string, payload []byte) []byte {
	b := make([]byte, valueHeader, valueHeader+2+len(player)+len(payload)+sha256.Size)
	b[0] = valueVersion
	binary.BigEndian.PutUint64(b[1:], uint64(expires.UnixMilli()))
	binary.BigEndian.PutUint64(b[9:], uint64(lookedUp.UnixMicro()))
	iv := b[17:valueHeader]
	rand.Read(iv)
	start := len(b)
	b = binary.BigEndian.AppendUint16(b, uint16(len(player)))
	b = append(b, player...)
	b = append(b, payload...)
	cipher.NewCTR(k.block, iv).XORKeyStream(b[start:], b[start:])
	return append(b, k.sum(rkey, b)...)
}

func (k *keys) sum(rkey string, b []byte) []byte {
	m := hmac.New(sha256.New, k.mac)
	m.Write([]byte(rkey))
	m.Write([]byte{0})
	m.Write(b)
	return m.Sum(nil)
}

// opened is a shared value that passed its HMAC.
type opened struct {
	expires  time.Time
	lookedUp int64 // unix µs
	player   string
	payload  []byte
}

// open checks b, read under rkey, and decrypts it; the error names why
// it is ignored (the values_ignored metric's label).
func (k *keys) open(rkey string, b []byte, now time.Time) (opened, error) {
	switch {
	case len(b) > MaxValueLen:
		return opened{}, errTooLarge
	case len(b) < valueHeader+2+sha256.Size:
		return opened{}, errMalformed
	}
	body, mac := b[:len(b)-sha256.Size], b[len(b)-sha256.Size:]
	if !hmac.Equal(mac, k.sum(rkey, body)) {
		return opened{}, errForged
	}
	if body[0] != valueVersion {
		return opened{}, errMalformed
	}
	o := opened{
		expires:  time.UnixMilli(int64(binary.BigEndian.Uint64(body[1:]))),
		lookedUp: int64(binary.BigEndian.Uint64(body[9:])),
	}
	if !now.Before(o.expires) {
		return opened{}, errExpired
	}
	plain := make([]byte, len(body)-valueHeader)
	cipher.NewCTR(k.block, body[17:valueHeader]).XORKeyStream(plain, body[valueHeader:])
	n := int(binary.BigEndian.Uint16(plain))
	if 2+n > len(plain) {
		return opened{}, errMalformed
	}
	o.player, o.payload = string(plain[2:2+n]), plain[2+n:]
	return o, nil
}

// A kick message, as published:
//
//	version (1) | sender (8) | nonce (12) | AES-GCM(kind (1) | token (8)
//	| key count (1) | keys (32 each) | player), with the channel, the
//	version and the sender as additional data
//
// so a message that anyone without the fleet key wrote is dropped, and a
// player id never crosses Redis in the clear.
//
// A kick of a player (not a purge) is followed by a note of version 2,
// sealed the same way, for the player's sessions:
//
//	flags (1: admin) | kicked at (8: unix µs) | player (2+n)
//	| provider (1+n) | reason (2+n) | redirectUri (2+n) | token (2+n),
//	each length big-endian
//
// A note ends only the player's sessions last validated before the kick
// (less the clock skew), so one heard late, twice, or sent again by
// someone who copied it ends no session that came after the kick. A
// sidecar from before notes drops them (kick_malformed) and still
// applies the purge, which comes first in its own message of version 1.
const (
	kickVersion = 1
	noteVersion = 2
	kickToken   = 1 << 0
	noteAdmin   = 1 << 0
)

func (k *keys) sealKick(channel string, sender uint64, p validator.FleetPurge) []byte {
	plain := make([]byte, 0, 10+len(p.Keys)*32+len(p.Player))
	var kind byte
	if p.HasToken {
		kind |= kickToken
	}
	plain = append(plain, kind)
	plain = binary.BigEndian.AppendUint64(plain, uint64(p.Token))
	plain = append(plain, byte(len(p.Keys)))
	for _, key := range p.Keys {
		plain = append(plain, key[:]...)
	}
	plain = append(plain, p.Player...)
	return k.sealMessage(kickVersion, channel, sender, plain)
}

// sealNote seals the note of a kick of player; ok is false when a field
// does not fit its length (never for what the validator sends: reasons
// and providers are short, a lockout's objects a few hundred bytes).
func (k *keys) sealNote(channel string, sender uint64, sent int64, player string, n *validator.FleetKick) ([]byte, bool) {
	if len(player) >= 1<<16 || len(n.Provider) >= 1<<8 || len(n.Reason) >= 1<<16 || len(n.RedirectURI) >= 1<<16 || len(n.Token) >= 1<<16 {
		return nil, false
	}
	plain := make([]byte, 0, 10+len(player)+len(n.Provider)+len(n.Reason)+len(n.RedirectURI)+len(n.Token))
	var flags byte
	if n.Admin {
		flags |= noteAdmin
	}
	plain = append(plain, flags)
	plain = binary.BigEndian.AppendUint64(plain, uint64(sent))
	plain = appendField16(plain, []byte(player))
	plain = append(plain, byte(len(n.Provider)))
	plain = append(plain, n.Provider...)
	plain = appendField16(plain, []byte(n.Reason))
	plain = appendField16(plain, n.RedirectURI)
	plain = appendField16(plain, n.Token)
	return k.sealMessage(noteVersion, channel, sender, plain), true
}

func appendField16(b, f []byte) []byte {
	b = binary.BigEndian.AppendUint16(b, uint16(len(f)))
	return append(b, f...)
}

// sealMessage is a kick message of version with plain sealed.
func (k *keys) sealMessage(version byte, channel string, sender uint64, plain []byte) []byte {
	b := make([]byte, 1+8+12, 1+8+12+len(plain)+k.kicks.Overhead())
	b[0] = version
	binary.BigEndian.PutUint64(b[1:], sender)
	rand.Read(b[9:21])
	return k.kicks.Seal(b, b[9:21], plain, kickAAD(channel, b[:9]))
}

// kickAAD is what a kick message's seal covers besides its contents: the
// channel, the version and the sender.
func kickAAD(channel string, head []byte) []byte { return append([]byte(channel), head...) }

// openedKick is a kick message opened.
type openedKick struct {
	sender uint64
	p      validator.FleetPurge
	// A note's (p.Kick set): when the kick was made (unix µs).
	sent int64
}

// openKick opens a message of either version: a note comes back as a
// FleetPurge with Player and Kick set and nothing to purge.
func (k *keys) openKick(channel string, b []byte) (o openedKick, err error) {
	if len(b) < 21+k.kicks.Overhead() || b[0] != kickVersion && b[0] != noteVersion {
		return o, errMalformed
	}
	plain, err := k.kicks.Open(nil, b[9:21], b[21:], kickAAD(channel, b[:9]))
	if err != nil {
		return o, errForged
	}
	o.sender = binary.BigEndian.Uint64(b[1:])
	if b[0] == noteVersion {
		o.p, o.sent, err = openNote(plain)
		return o, err
	}
	p := &o.p
	if len(plain) < 10 || len(plain) < 10+int(plain[9])*32 {
		return o, errMalformed
	}
	p.HasToken = plain[0]&kickToken != 0
	p.Token = cache.TokenID(binary.BigEndian.Uint64(plain[1:]))
	n := int(plain[9])
	rest := plain[10:]
	for i := range n {
		var key cache.Key
		copy(key[:], rest[i*32:])
		p.Keys = append(p.Keys, key)
	}
	p.Player = string(rest[n*32:])
	return o, nil
}

// openNote reads a note's plaintext.
func openNote(plain []byte) (validator.FleetPurge, int64, error) {
	var p validator.FleetPurge
	if len(plain) < 9 {
		return p, 0, errMalformed
	}
	n := &validator.FleetKick{Admin: plain[0]&noteAdmin != 0}
	sent := int64(binary.BigEndian.Uint64(plain[1:]))
	rest := plain[9:]
	field := func(width int) ([]byte, bool) {
		if len(rest) < width {
			return nil, false
		}
		l := int(rest[0])
		if width == 2 {
			l = int(binary.BigEndian.Uint16(rest))
		}
		if len(rest) < width+l {
			return nil, false
		}
		f := rest[width : width+l]
		rest = rest[width+l:]
		return f, true
	}
	player, ok1 := field(2)
	provider, ok2 := field(1)
	reason, ok3 := field(2)
	redirect, ok4 := field(2)
	token, ok5 := field(2)
	if !ok1 || !ok2 || !ok3 || !ok4 || !ok5 || len(rest) != 0 || len(player) == 0 {
		return p, 0, errMalformed
	}
	n.Provider, n.Reason = string(provider), string(reason)
	if len(redirect) > 0 {
		n.RedirectURI = redirect
	}
	if len(token) > 0 {
		n.Token = token
	}
	p.Player, p.Kick = string(player), n
	return p, sent, nil
}

// A kick marker (a player's or a token's) holds the kick's time, unix µs,
// in decimal. It is not authenticated: a forged or altered one can only
// make values look stale (an upstream call), never current.
func parseMarker(s string) (int64, bool) {
	n, err := strconv.ParseInt(s, 10, 64)
	return n, err == nil && n > 0
}

package cache

import (
	"crypto/sha256"
	"encoding/binary"
)

// Key identifies one cached decision: a SHA-256 digest over the platform,
// the claimed player id and the access token. The token itself is never
// stored anywhere in the cache, only this digest. (The app id is not part
// of it: one cache serves one app.)
type Key [sha256.Size]byte

// KeyBuilder derives Keys without allocating. A KeyBuilder is not safe for
// concurrent use; keep one per goroutine (or per pooled request state).
type KeyBuilder struct {
	buf []byte
}

// Key returns the digest of the three fields. Each field is prefixed with
// its length (a uvarint), so no choice of field contents can make two
// different tuples hash the same input ("ab"+"c" and "a"+"bc" differ).
// Hashing is most of a cache hit's own CPU (SHA-256 works in 64-byte
// blocks), so the input carries no more than that: no app id, short
// length prefixes.
func (b *KeyBuilder) Key(platform, playerID, token []byte) Key {
	var k Key
	k, b.buf = SumKey(b.buf[:0], platform, playerID, token)
	return k
}

// SumKey is KeyBuilder.Key for callers that keep no KeyBuilder: it builds
// the hashed input in scratch (grown if too small) and returns it with the
// Key for reuse. A stack array's slice serves as scratch without
// allocating.
func SumKey(scratch, platform, playerID, token []byte) (Key, []byte) {
	buf := appendField(scratch[:0], platform)
	buf = appendField(buf, playerID)
	buf = appendField(buf, token)
	return sha256.Sum256(buf), buf
}

// NonceKey is Key for an answer that also depends on a nonce (an ID
// token's, which the request may carry): four fields, so no Key,
// NonceKey or TokenKey share an input (see TokenKey), and an empty nonce
// is a nonce not sent.
func (b *KeyBuilder) NonceKey(platform, playerID, token, nonce []byte) Key {
	buf := appendField(b.buf[:0], platform)
	buf = appendField(buf, playerID)
	buf = appendField(buf, token)
	buf = appendField(buf, nonce)
	b.buf = buf
	return sha256.Sum256(buf)
}

func appendField(buf, f []byte) []byte {
	buf = binary.AppendUvarint(buf, uint64(len(f)))
	return append(buf, f...)
}

// hash is the 64-bit index ristretto files an entry under. Entries keep the
// whole Key and Get compares it, so two Keys that share a hash only evict
// each other; one can never be answered with the other's entry.
func (k *Key) hash() uint64 { return binary.LittleEndian.Uint64(k[:8]) }

// TokenKey returns the Key of an answer about a token on a platform
// whatever player is claimed (an invalid_token kick, which says nothing
// about any player). Its hashed input is two length-prefixed fields where
// Key's is three, so no Key and TokenKey share an input: reading either
// input field by field gives the same first two fields, and one of them
// then ends.
func (b *KeyBuilder) TokenKey(platform, token []byte) Key {
	buf := appendField(b.buf[:0], platform)
	buf = appendField(buf, token)
	b.buf = buf
	return sha256.Sum256(buf)
}

// TokenID is a digest of an access token alone, the tag under which every
// cached answer about that token is filed (Tags) so that PurgeToken finds
// them under any player and platform. It is 64 bits of a SHA-256: two
// tokens sharing one only purge each other's entries, which costs an
// upstream call, never a wrong answer; and like Key it cannot be turned
// back into the token.
type TokenID uint64

// tokenDomain separates TokenOf's hashed input from Key's.
const tokenDomain = "playerguard token\x00"

// TokenOf returns token's TokenID.
func TokenOf(token []byte) TokenID {
	h := sha256.New()
	h.Write([]byte(tokenDomain))
	h.Write(token)
	var sum [sha256.Size]byte
	return TokenID(binary.LittleEndian.Uint64(h.Sum(sum[:0])))
}

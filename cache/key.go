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

func appendField(buf, f []byte) []byte {
	buf = binary.AppendUvarint(buf, uint64(len(f)))
	return append(buf, f...)
}

// hash is the 64-bit index ristretto files an entry under. Entries keep the
// whole Key and Get compares it, so two Keys that share a hash only evict
// each other; one can never be answered with the other's entry.
func (k *Key) hash() uint64 { return binary.LittleEndian.Uint64(k[:8]) }

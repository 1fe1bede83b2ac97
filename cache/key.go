package cache

import (
	"crypto/sha256"
	"encoding/binary"
)

// Key identifies one cached decision: a SHA-256 digest over the app id, the
// platform, the claimed player id and the access token. The token itself is
// never stored anywhere in the cache, only this digest.
type Key [sha256.Size]byte

// KeyBuilder derives Keys without allocating. A KeyBuilder is not safe for
// concurrent use; keep one per goroutine (or per pooled request state).
type KeyBuilder struct {
	buf []byte
}

// Key returns the digest of the four fields. Each field is length-prefixed,
// so no choice of field contents can make two different tuples hash the same
// input ("ab"+"c" and "a"+"bc" differ).
func (b *KeyBuilder) Key(appID string, platform, playerID, token []byte) Key {
	buf := b.buf[:0]
	buf = appendField(buf, appID)
	buf = appendField(buf, platform)
	buf = appendField(buf, playerID)
	buf = appendField(buf, token)
	b.buf = buf
	return sha256.Sum256(buf)
}

func appendField[T string | []byte](buf []byte, f T) []byte {
	buf = binary.BigEndian.AppendUint32(buf, uint32(len(f)))
	return append(buf, f...)
}

// hash is the 64-bit index ristretto files an entry under. Entries keep the
// whole Key and Get compares it, so two Keys that share a hash only evict
// each other; one can never be answered with the other's entry.
func (k *Key) hash() uint64 { return binary.LittleEndian.Uint64(k[:8]) }

package validator

import "testing"

// TestSWARScans checks the word-at-a-time scanners against plain byte
// loops for every byte value at every position of buffers up to five words
// (past the four-word unrolled loops), alone and next to another odd byte.
func TestSWARScans(t *testing.T) {
	naiveVisible := func(b []byte) bool {
		for _, c := range b {
			if c < 0x21 || c > 0x7e {
				return false
			}
		}
		return true
	}
	naivePlain := func(b []byte) int {
		for i, c := range b {
			if c == '"' || c == '\\' || c < 0x20 {
				return i
			}
		}
		return len(b)
	}
	naiveControl := func(b []byte) bool {
		for _, c := range b {
			if c < 0x20 {
				return true
			}
		}
		return false
	}
	for n := 0; n <= 41; n++ {
		for pos := 0; pos < n; pos++ {
			for v := 0; v < 256; v++ {
				for _, other := range []byte{'a', 0x7f, 0x80, '"', 0x00, 0xff} {
					b := make([]byte, n)
					for i := range b {
						b[i] = 'a'
					}
					b[pos] = byte(v)
					if pos+1 < n {
						b[pos+1] = other
					}
					if got, want := visibleASCII(b), naiveVisible(b); got != want {
						t.Fatalf("visibleASCII(%q) = %v, want %v", b, got, want)
					}
					if got, want := hasControl(b), naiveControl(b); got != want {
						t.Fatalf("hasControl(%q) = %v, want %v", b, got, want)
					}
					// plainRun may stop early at a word holding an odd byte,
					// never late.
					if got, want := plainRun(b), naivePlain(b); got > want || want-got >= 8 {
						t.Fatalf("plainRun(%q) = %d, first odd byte at %d", b, got, want)
					}
				}
			}
		}
	}
}

package policy

import (
	"encoding/binary"

	"github.com/scopegate/scopegate/internal/bytesconv"
)

// litPrefix is a literal path prefix with its last eight bytes preloaded, so
// rejecting a path that does not start with it is one 64-bit compare in the
// common case (prefixes of a list tend to share their beginnings, not their
// ends).
type litPrefix struct {
	s    string
	tail uint64 // little-endian s[len(s)-8:], when len(s) >= 8
}

func newLitPrefix(s string) litPrefix {
	lp := litPrefix{s: s}
	if len(s) >= 8 {
		lp.tail = binary.LittleEndian.Uint64([]byte(s[len(s)-8:]))
	}
	return lp
}

// prefixOf reports whether path starts with the prefix. It does not allocate.
func (lp *litPrefix) prefixOf(path string) bool {
	n := len(lp.s)
	if len(path) < n {
		return false
	}
	if n >= 8 {
		if binary.LittleEndian.Uint64(bytesconv.Bytes(path[n-8:n])) != lp.tail {
			return false
		}
		return path[:n-8] == lp.s[:n-8]
	}
	return path[:n] == lp.s
}

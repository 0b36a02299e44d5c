package policy

import "unsafe"

// bytesOf returns a read-only byte view of s without copying.
//
// WARNING: the returned slice aliases the string's memory and must never be
// written to or retained past the call that received it. It exists so hashes
// and decoders can read request strings without allocating.
func bytesOf(s string) []byte {
	if s == "" {
		return nil
	}
	return unsafe.Slice(unsafe.StringData(s), len(s))
}

// stringOf returns a string view of b without copying.
//
// WARNING: the string aliases b; b must not be modified while the string is
// in use. Used only for the caller-provided scratch buffer of [Request].
func stringOf(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}

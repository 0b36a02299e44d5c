package proxy

import "unsafe"

// b2s returns a string view of b without copying.
//
// WARNING: the string aliases b, which is usually a fasthttp buffer valid
// only until the handler returns (or until the header it came from is
// changed). Use it only for values handed to the policy engine or the store
// for the duration of one call (neither retains them), never for anything
// stored, logged asynchronously or passed to another goroutine.
func b2s(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}

// s2b returns a read-only byte view of s without copying.
//
// WARNING: the slice aliases s's memory and must never be written to.
func s2b(s string) []byte {
	if s == "" {
		return nil
	}
	return unsafe.Slice(unsafe.StringData(s), len(s))
}

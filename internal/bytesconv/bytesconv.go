// Package bytesconv views bytes as a string and a string as bytes without
// copying, for the request path and the loaders (fasthttp buffers, pgx row
// buffers, request strings handed to hashes and decoders).
package bytesconv

import "unsafe"

// String returns a string view of b without copying.
//
// WARNING: the string aliases b, usually a buffer valid only until the
// call or handler that received it returns (a fasthttp header, a pgx row):
// b must not change while the string is in use, and the string must not be
// stored, logged asynchronously or handed to another goroutine.
func String(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}

// Bytes returns a read-only byte view of s without copying.
//
// WARNING: the slice aliases s's memory: it must never be written to, nor
// kept past the call that received it.
func Bytes(s string) []byte {
	if s == "" {
		return nil
	}
	return unsafe.Slice(unsafe.StringData(s), len(s))
}

package proxy

import (
	"bytes"

	"github.com/valyala/fasthttp"
)

// headerIndex holds the request fields the decision reads, found in one
// pass over the header instead of one normalized lookup each (a lookup
// copies and normalizes the name, then scans every field). Each is the
// first occurrence, as Peek returns it; names compare case-insensitively.
// Values alias the request's buffers, so the index is valid only until the
// header is modified: forward cleans the request after the decision.
type headerIndex struct {
	requestID, apiKey, clientKey, authorization, origin []byte
	xRealIP, xfMethod, xfURI, xOrigMethod, xOrigURI     []byte
	xff                                                 []byte // the first X-Forwarded-For line
	xffLines                                            int    // how many lines there are
	acrMethod, acrHeaders                               []byte // Access-Control-Request-Method/-Headers (first lines)
	acrHeadersLines                                     int    // how many -Headers lines there are
	xRealIPLines, originLines                           int    // how many X-Real-IP and Origin lines
	// underscore: some field name holds '_' (identityHeaderSent looks
	// closer only then).
	underscore bool
	// repeatedRequestField: X-Forwarded-Method/-Uri or X-Original-Method/
	// -URI came in more than one line. A proxy sets each once, so a second
	// line was added by its client, and which one names the original
	// request is ambiguous.
	repeatedRequestField bool
}

// scan fills x from h; apiKeyHeader is the configured API key header name.
func (x *headerIndex) scan(h *fasthttp.RequestHeader, apiKeyHeader string) {
	*x = headerIndex{}
	for k, v := range h.All() {
		if equalFoldASCII(k, apiKeyHeader) {
			first(&x.apiKey, v)
		}
		if !x.underscore && bytes.IndexByte(k, '_') >= 0 {
			x.underscore = true
		}
		switch len(k) {
		case 6: // Origin
			if equalFoldASCII(k, "Origin") {
				first(&x.origin, v)
				x.originLines++
			}
		case 9: // X-Real-Ip
			if equalFoldASCII(k, "X-Real-Ip") {
				first(&x.xRealIP, v)
				x.xRealIPLines++
			}
		case 12: // X-Request-Id, X-Client-Key
			if equalFoldASCII(k, "X-Request-Id") {
				first(&x.requestID, v)
			} else if equalFoldASCII(k, "X-Client-Key") {
				first(&x.clientKey, v)
			}
		case 13: // Authorization
			if equalFoldASCII(k, "Authorization") {
				first(&x.authorization, v)
			}
		case 15: // X-Forwarded-For, X-Forwarded-Uri
			if equalFoldASCII(k, "X-Forwarded-For") {
				if x.xffLines == 0 {
					x.xff = v
				}
				x.xffLines++
			} else if equalFoldASCII(k, "X-Forwarded-Uri") {
				x.requestField(&x.xfURI, v)
			}
		case 18: // X-Forwarded-Method
			if equalFoldASCII(k, "X-Forwarded-Method") {
				x.requestField(&x.xfMethod, v)
			}
		case 17: // X-Original-Method
			if equalFoldASCII(k, "X-Original-Method") {
				x.requestField(&x.xOrigMethod, v)
			}
		case 29: // Access-Control-Request-Method
			if equalFoldASCII(k, "Access-Control-Request-Method") {
				first(&x.acrMethod, v)
			}
		case 30: // Access-Control-Request-Headers
			if equalFoldASCII(k, "Access-Control-Request-Headers") {
				if x.acrHeadersLines == 0 {
					x.acrHeaders = v
				}
				x.acrHeadersLines++
			}
		case 14: // X-Original-Uri
			if equalFoldASCII(k, "X-Original-Uri") {
				x.requestField(&x.xOrigURI, v)
			}
		}
	}
}

// first stores v in *dst unless an earlier field already did, and reports
// whether it stored it. A present but empty field is recorded as a non-nil
// empty slice.
func first(dst *[]byte, v []byte) bool {
	if *dst != nil {
		return false
	}
	if v == nil {
		v = []byte{}
	}
	*dst = v
	return true
}

// equalFoldASCII reports whether b and s are equal ignoring ASCII case
// (header names are ASCII tokens; unlike bytes.EqualFold, no Unicode
// folding).
func equalFoldASCII(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := 0; i < len(s); i++ {
		c, d := b[i], s[i]
		if c == d {
			continue
		}
		if c|0x20 != d|0x20 || c|0x20 < 'a' || c|0x20 > 'z' {
			return false
		}
	}
	return true
}

// requestField keeps v in *dst as first does, and notes a second line of a
// forward-auth request field.
func (x *headerIndex) requestField(dst *[]byte, v []byte) {
	if !first(dst, v) {
		x.repeatedRequestField = true
	}
}

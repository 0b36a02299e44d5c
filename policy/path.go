package policy

import (
	"unicode/utf8"

	"github.com/scopegate/scopegate/internal/bytesconv"
)

// Raw path screening (SPEC §5 "Paths").
//
// Before any rule runs, the raw path (the path part of the request target as
// received; the query is not screened) is rejected with path_invalid when it:
//
//   - does not start with "/";
//   - holds an encoded slash (%2F) or backslash (%5C), in either case, or a
//     raw backslash;
//   - holds a NUL, raw or %00;
//   - holds an empty segment ("//" anywhere, a leading "//" included; a
//     single trailing "/" is not an empty segment);
//   - holds a "." or ".." segment, literal or percent-encoded in any case
//     ("%2e", "%2E%2e", ".%2e"), or any other segment made of dots and
//     encoded spaces or tabs only ("...", "..%20", ".%09"): Windows drops
//     trailing dots and spaces from a segment, so IIS reads those as
//     ".." or ".";
//   - holds a segment whose text before a ";" (raw or %3B) is empty, "." or
//     ".." ("/..;/admin", "/.;x", "/;jsessionid=1"): servlet containers
//     (Tomcat, Jetty) strip ";" path parameters and then read such a
//     segment as a dot or empty segment, so the path would mean something
//     else to the upstream than to the rules;
//   - holds a "%" not followed by two hex digits;
//   - does not decode to valid UTF-8.
//
// An encoded slash is special: a path whose only defect is %2F is matched
// with %2F as segment text, and passes only on a route with
// allow_encoded_slash (see [Engine.Match]). The pieces between encoded
// slashes are screened like segments ("a%2F..%2Fsecret", "..%2Fx" and
// "a%2F.." are path_invalid), since an upstream that decodes %2F reads them
// as segments and would resolve the dots past what the rules matched; so is
// an empty piece before an encoded slash ("%2F%2F", a segment starting with
// "%2F": "//" or an absolute path to such an upstream). A trailing "a%2F"
// (a folder-like key) stays valid.

type pathDefect uint8

const (
	pathOK           pathDefect = 0
	pathEncodedSlash pathDefect = 1 << iota
	pathBad
	// pathEscaped is not a defect: the path holds percent escapes and must
	// be decoded (and checked for UTF-8) before matching.
	pathEscaped
)

// screenPath returns the defects of a raw path. It does not allocate.
func screenPath(raw string) (d pathDefect) {
	if raw == "" || raw[0] != '/' {
		return pathBad
	}
	dots, other := 0, false // dot count and whether the segment has anything else
	emptyPiece := true      // nothing yet since the last '/' or %2F
	escapes, nonASCII := false, false
	for i := 1; i <= len(raw); i++ {
		if i == len(raw) || raw[i] == '/' {
			if !other && dots > 0 {
				return d | pathBad // ".", "..", "...", "..%20"
			}
			if emptyPiece && i < len(raw) {
				// An empty segment before another "/", or an empty piece
				// after an encoded slash ("a%2F/b": "a//b" to an upstream
				// that decodes %2F).
				return d | pathBad
			}
			dots, other, emptyPiece = 0, false, true
			continue
		}
		wasEmpty := emptyPiece
		emptyPiece = false
		switch c := raw[i]; c {
		case '\\', 0:
			return d | pathBad
		case '.':
			dots++
		case ' ', '\t': // not "other", as encoded below
		case ';':
			if !other {
				return d | pathBad // "..;", ".;", ";" start of a segment
			}
		case '%':
			if i+2 >= len(raw) || !isHex(raw[i+1]) || !isHex(raw[i+2]) {
				return d | pathBad
			}
			escapes = true
			v := unhex(raw[i+1])<<4 | unhex(raw[i+2])
			i += 2
			switch v {
			case '/':
				// An upstream that decodes %2F splits the segment there: a
				// "." or ".." piece before it would be a dot segment to it.
				d |= pathEncodedSlash
				if wasEmpty || !other && dots > 0 {
					return d | pathBad // "%2F%2F", "/%2Fetc", "..%2F"
				}
				dots, other, emptyPiece = 0, false, true
			case '\\', 0:
				return d | pathBad
			case '.':
				dots++
			case ' ', '\t':
				// Not "other": Windows (IIS) drops trailing spaces, so
				// "..%20" is ".." there.
			case ';':
				if !other {
					return d | pathBad
				}
			default:
				other = true
			}
		default:
			other = true
			if c >= 0x80 {
				nonASCII = true
			}
		}
	}
	if escapes {
		return d | pathEscaped
	}
	if nonASCII && !utf8.ValidString(raw) {
		return d | pathBad
	}
	return d
}

// decodePath percent-decodes a screened raw path. With keepSlash, %2F stays
// as the three bytes of segment text. A path without escapes is returned as
// is; otherwise the result is written to scratch when it is large enough
// (then it aliases scratch), else to a new buffer. ok is false when the
// result is not valid UTF-8.
func decodePath(raw string, keepSlash bool, scratch []byte) (path string, ok bool) {
	n := 0
	for i := 0; i < len(raw); i++ {
		if raw[i] == '%' {
			n++
		}
	}
	if n == 0 {
		return raw, utf8.ValidString(raw)
	}
	var buf []byte
	if cap(scratch) >= len(raw) {
		buf = scratch[:0]
	} else {
		buf = make([]byte, 0, len(raw))
	}
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		if c == '%' && i+2 < len(raw) && isHex(raw[i+1]) && isHex(raw[i+2]) {
			v := unhex(raw[i+1])<<4 | unhex(raw[i+2])
			if v == '/' && keepSlash {
				buf = append(buf, raw[i:i+3]...)
			} else {
				buf = append(buf, v)
			}
			i += 2
			continue
		}
		buf = append(buf, c)
	}
	if !utf8.Valid(buf) {
		return "", false
	}
	return bytesconv.String(buf), true
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c >= '0' && c <= '9':
		return c - '0'
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10
	}
	return 0
}

package upstream

import (
	"errors"
	"strings"
	"testing"
)

// scanAll feeds answer to a fresh conn (as after a request) in
// pieces of size n and returns the error, how many bytes were read when the
// final header block ended (-1: never) and the phase it ended in.
func scanAll(answer string, n int) (err error, bodyAt int, phase connPhase) {
	c := &conn{phase: phaseStatus}
	bodyAt = -1
	for i := 0; i < len(answer); i += n {
		piece := answer[i:min(i+n, len(answer))]
		if _, err := c.scan([]byte(piece)); err != nil {
			return err, bodyAt, c.phase
		}
		if c.phase == phaseBody && bodyAt < 0 {
			bodyAt = i + len(piece)
		}
	}
	return nil, bodyAt, c.phase
}

func TestConnScan(t *testing.T) {
	cases := []struct {
		name, answer string
		switched     bool
		headersEnd   bool // not read when switched: the scan stops at the 101
	}{
		{"200", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", false, true},
		{"101", "HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\n", true, false},
		{"103 then 101", "HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 101 Switching Protocols\r\n\r\n", true, false},
		{"100 then 200", "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n\r\n", false, true},
		{"bare LF", "HTTP/1.1 103 Early\nLink: x\n\nHTTP/1.1 101 Sw\n\n", true, false},
		{"HTTP/1.0 101", "HTTP/1.0 101 Switching\r\n\r\n", true, false},
		{"body looks like a 101", "HTTP/1.1 200 OK\r\n\r\nHTTP/1.1 101 x\r\n\r\n", false, true},
		{"header block never ends", "HTTP/1.1 200 OK\r\nA: b\r\n", false, false},
		{"not HTTP", "garbage that is long enough\r\n\r\n", false, true},
		{"empty lines before a 101", "\r\n\r\nHTTP/1.1 101 Switching\r\n\r\n", true, false},
		{"spaces before the code", "HTTP/1.1   101 Switching\r\n\r\n", true, false},
		{"103, a stray empty line, 101", "HTTP/1.1 103 Early\r\n\r\n\r\nHTTP/1.1 101 Sw\r\n\r\n", true, false},
		{"short garbage line", "bad\n\nbody", false, true},
		{"200 with spaces", "HTTP/1.1  200 OK\r\n\r\nHTTP/1.1 101 x", false, true},
		{"many spaces before the code", "HTTP/1.1" + strings.Repeat(" ", 40) + "101 Switching\r\n\r\n", true, false},
		{"code cut by the line's end", "HTTP/1.1 10\r\n\r\n", false, true},
		{"no space after the version", "HTTP/1.1101 x\r\n\r\n", false, true},
	}
	for _, c := range cases {
		for _, n := range []int{1, 2, 3, 5, 7, 13, len(c.answer)} {
			err, bodyAt, _ := scanAll(c.answer, n)
			if got := errors.Is(err, errSwitchedConn); got != c.switched {
				t.Errorf("%s in pieces of %d: switched %v, want %v", c.name, n, got, c.switched)
			}
			if got := bodyAt >= 0; !c.switched && got != c.headersEnd {
				t.Errorf("%s in pieces of %d: header block ended %v, want %v", c.name, n, got, c.headersEnd)
			}
		}
	}
}

// FuzzConnScan: how the answer is split across reads never changes
// whether a 101 is seen or where the header block ends.
func FuzzConnScan(f *testing.F) {
	f.Add("HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 101 Switching Protocols\r\n\r\n", uint8(3))
	f.Add("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", uint8(1))
	f.Add("HTTP/1.1 100 Continue\n\nHTTP/1.1 204 No\r\n\n\r\n", uint8(2))
	f.Fuzz(func(t *testing.T, answer string, n uint8) {
		if n == 0 || len(answer) > 4096 {
			return
		}
		whole := &conn{phase: phaseStatus}
		wat, werr := whole.scan([]byte(answer))
		if werr != nil && (wat < 0 || wat+3 > len(answer) || answer[wat:wat+3] != "101") {
			t.Fatalf("%q: the 101 line reported at %d", answer, wat)
		}
		err, _, phase := scanAll(answer, int(n))
		if errors.Is(werr, errSwitchedConn) != errors.Is(err, errSwitchedConn) {
			t.Fatalf("%q in pieces of %d: switched %v, whole %v", answer, n, err, werr)
		}
		if werr == nil && err == nil && phase != whole.phase {
			t.Fatalf("%q in pieces of %d: phase %d, whole %d", answer, n, phase, whole.phase)
		}
	})
}

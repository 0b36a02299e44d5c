package deadline

import (
	"testing"
	"time"
)

func TestCoarse(t *testing.T) {
	const slack = time.Second
	now := time.Now()
	far := now.Add(time.Minute)
	tests := []struct {
		name      string
		want, set time.Time
		out       time.Time
		apply     bool
	}{
		{"zero clears a set one", time.Time{}, far, time.Time{}, true},
		{"zero with none set: nothing", time.Time{}, time.Time{}, time.Time{}, false},
		{"set within slack after want: kept", far, far.Add(slack / 2), far.Add(slack / 2), false},
		{"set exactly at want: kept", far, far, far, false},
		{"set before want: renewed, slack later", far, far.Add(-time.Millisecond), far.Add(slack), true},
		{"set too late: renewed", far, far.Add(2 * slack), far.Add(slack), true},
		{"none set: slack later", far, time.Time{}, far.Add(slack), true},
		{"near: exactly", now.Add(slack), time.Time{}, now.Add(slack), true},
		{"past: exactly", now.Add(-time.Hour), far, now.Add(-time.Hour), true},
	}
	for _, tt := range tests {
		out, apply := Coarse(tt.want, tt.set, slack)
		if !out.Equal(tt.out) || apply != tt.apply {
			t.Errorf("%s: Coarse = %v, %v; want %v, %v", tt.name, out, apply, tt.out, tt.apply)
		}
	}
}

type recordConn struct{ read, write []time.Time }

func (c *recordConn) SetReadDeadline(t time.Time) error  { c.read = append(c.read, t); return nil }
func (c *recordConn) SetWriteDeadline(t time.Time) error { c.write = append(c.write, t); return nil }

// TestRenew: the first renewal sets the deadline a slack later, the next
// within the slack keeps it (no call), and read and write stay apart.
func TestRenew(t *testing.T) {
	const slack = time.Second
	want := time.Now().Add(time.Minute)
	var c recordConn
	var rd, wd time.Time
	for _, w := range []time.Time{want, want.Add(slack / 2)} {
		if err := Renew(&c, false, w, &rd, slack); err != nil {
			t.Fatal(err)
		}
	}
	if err := Renew(&c, true, want, &wd, slack); err != nil {
		t.Fatal(err)
	}
	if len(c.read) != 1 || !c.read[0].Equal(want.Add(slack)) || !rd.Equal(want.Add(slack)) {
		t.Errorf("read deadlines set %v (kept %v), want one at %v", c.read, rd, want.Add(slack))
	}
	if len(c.write) != 1 || !wd.Equal(want.Add(slack)) {
		t.Errorf("write deadlines set %v (kept %v)", c.write, wd)
	}
}

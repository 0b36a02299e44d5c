// Package deadline holds the rule of coarse connection deadlines that the
// traffic listener (proxy.Listener) and the upstream connections share.
//
// Renewing a deadline costs a clock read and a change to the runtime's
// timer heap; a keep-alive connection renews its deadlines several times a
// request. With a slack, a deadline already set within the slack after the
// instant asked for is kept, so a busy connection renews it about once per
// slack. A deadline never fires early and at most one slack late.
package deadline

import "time"

// Slack is how much later than due a deadline of a connection with this
// timeout may fire: a sixteenth of it (30 s: 1.9 s).
func Slack(timeout time.Duration) time.Duration { return timeout / 16 }

// Coarse returns the deadline to set for want, given the one set now
// (set; zero: none), and whether it must be set at all:
//
//   - zero want clears a deadline that is set;
//   - a set deadline within slack after want is kept;
//   - a want less than two slacks away (an interrupt: now or past) is set
//     exactly;
//   - any other want is set slack later, so it is kept for the renewals
//     that follow.
func Coarse(want, set time.Time, slack time.Duration) (time.Time, bool) {
	if want.IsZero() {
		return want, !set.IsZero()
	}
	if !set.IsZero() && !set.Before(want) && set.Sub(want) <= slack {
		return set, false
	}
	if time.Until(want) < 2*slack {
		return want, true
	}
	return want.Add(slack), true
}

// Conn is the part of net.Conn whose deadlines Renew sets.
type Conn interface {
	SetReadDeadline(t time.Time) error
	SetWriteDeadline(t time.Time) error
}

// Renew sets c's read (or, with write, write) deadline for want through
// Coarse, given *set, the one set now, which it updates.
func Renew(c Conn, write bool, want time.Time, set *time.Time, slack time.Duration) error {
	d, ok := Coarse(want, *set, slack)
	if !ok {
		return nil
	}
	*set = d
	if write {
		return c.SetWriteDeadline(d)
	}
	return c.SetReadDeadline(d)
}

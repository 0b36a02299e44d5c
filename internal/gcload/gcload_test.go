package gcload

import (
	"runtime/debug"
	"testing"
)

// TestRaise: overlapping raises restore the setting found once
// the last ends, and a higher setting than the load's is left alone.
func TestRaise(t *testing.T) {
	orig := debug.SetGCPercent(100)
	defer debug.SetGCPercent(orig)
	current := func() int { p := debug.SetGCPercent(0); debug.SetGCPercent(p); return p }

	a := Raise()
	b := Raise()
	if got := current(); got != Percent {
		t.Fatalf("during the loads GOGC = %d, want %d", got, Percent)
	}
	a()
	a() // a second call does nothing
	if got := current(); got != Percent {
		t.Errorf("with one load left GOGC = %d, want %d", got, Percent)
	}
	b()
	if got := current(); got != 100 {
		t.Errorf("after the loads GOGC = %d, want 100", got)
	}

	debug.SetGCPercent(1000)
	c := Raise()
	if got := current(); got != 1000 {
		t.Errorf("a higher GOGC was lowered to %d", got)
	}
	c()
	if got := current(); got != 1000 {
		t.Errorf("after the load GOGC = %d, want 1000", got)
	}
}

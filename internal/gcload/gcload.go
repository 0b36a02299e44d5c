// Package gcload raises the garbage collector's target while a store's
// first full load runs (see [Raise]). It is process-wide, so the command
// decides when; the store's benchmarks call it as the command does.
package gcload

import (
	"runtime/debug"
	"sync"
)

// Percent is the GOGC a first full load runs at (see [Raise]).
const Percent = 400

var (
	gcMu     sync.Mutex
	gcRaised int // first loads under way
	gcPrev   int // the GOGC to restore when the last one ends
)

// Raise raises GOGC to at least Percent until the returned function is
// called (once). The first full load keeps nearly all it
// allocates (a compiled client, its text and its usage slot per row), so
// at the default GOGC the collector runs cycle after cycle over a heap
// that is all live: at a million clients, CPU spent for nothing freed
// (issue 16). Peak memory does not grow with it, since there is little
// garbage, and a GOMEMLIMIT still applies. Loads running at the same time
// share one raise; the last to finish restores the setting it found (a
// GOGC above Percent, or off, is kept).
func Raise() (restore func()) {
	gcMu.Lock()
	if gcRaised == 0 {
		gcPrev = debug.SetGCPercent(Percent)
		if gcPrev < 0 || gcPrev > Percent {
			debug.SetGCPercent(gcPrev)
		}
	}
	gcRaised++
	gcMu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			gcMu.Lock()
			defer gcMu.Unlock()
			if gcRaised--; gcRaised == 0 {
				debug.SetGCPercent(gcPrev)
			}
		})
	}
}

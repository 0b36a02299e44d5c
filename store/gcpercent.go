package store

import (
	"runtime/debug"
	"sync"
)

// loadGCPercent is the GOGC the first full load runs at (see
// raiseGCPercent).
const loadGCPercent = 400

var (
	gcMu     sync.Mutex
	gcRaised int // first loads under way
	gcPrev   int // the GOGC to restore when the last one ends
)

// raiseGCPercent raises GOGC to at least loadGCPercent until the returned
// function is called (once). The first full load keeps nearly all it
// allocates (a compiled client, its text and its usage slot per row), so
// at the default GOGC the collector runs cycle after cycle over a heap
// that is all live: at a million clients, CPU spent for nothing freed
// (issue 16). Peak memory does not grow with it, since there is little
// garbage, and a GOMEMLIMIT still applies. Stores opened at the same time
// share one raise; the last to finish restores the setting it found (a
// GOGC above loadGCPercent, or off, is kept).
func raiseGCPercent() (restore func()) {
	gcMu.Lock()
	if gcRaised == 0 {
		gcPrev = debug.SetGCPercent(loadGCPercent)
		if gcPrev < 0 || gcPrev > loadGCPercent {
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

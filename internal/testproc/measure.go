package testproc

import (
	"runtime"
	"syscall"
	"time"
)

// ProcessCPU is this process's user and system CPU so far (every
// goroutine's), 0 when unknown: the benchmarks' cpu-ns/op.
func ProcessCPU() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// LiveHeap returns the live heap in bytes after two collections (the
// second frees what finalizers and cleanups of the first released): what
// a benchmark reads before and after building something it keeps.
func LiveHeap() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

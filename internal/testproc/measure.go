package testproc

import (
	"bufio"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
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

// PeakRSS returns the peak resident set (VmHWM) of process pid in KiB.
func PeakRSS(pid int) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "VmHWM:") {
			fs := strings.Fields(line)
			if len(fs) >= 2 {
				return strconv.ParseInt(fs[1], 10, 64)
			}
		}
	}
	return 0, fmt.Errorf("no VmHWM for pid %d", pid)
}

// ProcStat returns the fields of /proc/PID/stat after the command name
// (which may hold spaces): [0] is field 3 (state), [1] the parent's pid,
// [2] the process group, [11] and [12] utime and stime in clock ticks.
func ProcStat(pid int) ([]string, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return nil, err
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return nil, fmt.Errorf("unexpected /proc/%d/stat format", pid)
	}
	return strings.Fields(s[i+1:]), nil
}

package main

import (
	"fmt"
	"strconv"

	"github.com/scopegate/scopegate/internal/testproc"
)

// clockTicks is USER_HZ, 100 on every Linux this runs on.
const clockTicks = 100

// cpuTime returns the user+system CPU time of pid in microseconds, from
// /proc/PID/stat (fields 14 and 15, in clock ticks).
func cpuTime(pid int) (int64, error) {
	f, err := testproc.ProcStat(pid)
	if err != nil {
		return 0, err
	}
	if len(f) < 13 {
		return 0, fmt.Errorf("short /proc stat")
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("bad /proc stat times")
	}
	return (ut + st) * 1_000_000 / clockTicks, nil
}

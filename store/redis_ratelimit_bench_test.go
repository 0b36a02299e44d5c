package store

import (
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/scopegate/scopegate/internal/redistest"
	"github.com/scopegate/scopegate/internal/testproc"
	"github.com/scopegate/scopegate/policy"
)

// BenchmarkRedisTake takes from 100 shared buckets with 32 or 64
// concurrent callers against a private redis-server, as a busy replica
// does (32 callers make batches of about the size the included bench's
// proxy-apikey-redis sees, 64 twice that). Beside
// ns/op it reports what each take costs in CPU: this process's
// (cpu-ns/op: the batcher, go-redis, the hand-offs) and Redis's
// (redis-cpu-ns/op, from INFO cpu), and the takes per script call.
//
//	go test ./store -run '^$' -bench RedisTake -benchtime 200000x
func BenchmarkRedisTake(b *testing.B) {
	srv := redistest.Start(b)
	for _, callers := range []int{32, 64} {
		b.Run(fmt.Sprintf("callers=%d", callers), func(b *testing.B) { benchmarkRedisTake(b, srv.Addr, callers) })
	}
}

func benchmarkRedisTake(b *testing.B, addr string, callers int) {
	r := newRedisBuckets(b, addr, RedisBucketsConfig{})
	ids := make([]string, 100)
	for i := range ids {
		ids[i] = fmt.Sprintf("client-%03d", i)
	}
	r.Take(ids[0], 1<<30, time.Now()) // loads the script
	calls0, redis0, cpu0 := r.m.calls.Get(), redisCPU(b, addr), testproc.ProcessCPU()
	var next atomic.Int64
	b.SetParallelism(max(1, callers/runtime.GOMAXPROCS(0)))
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			id := ids[next.Add(1)%int64(len(ids))]
			if a := r.Take(id, 1<<30, time.Now()); a.Status != policy.BucketTaken {
				b.Errorf("take: %+v", a)
				return
			}
		}
	})
	b.StopTimer()
	n := float64(b.N)
	b.ReportMetric(float64(testproc.ProcessCPU()-cpu0)/n, "cpu-ns/op")
	b.ReportMetric(float64(redisCPU(b, addr)-redis0)/n, "redis-cpu-ns/op")
	b.ReportMetric(n/float64(r.m.calls.Get()-calls0), "takes/call")
}

// redisCPU is the CPU redis-server at addr has used (INFO cpu).
func redisCPU(b *testing.B, addr string) time.Duration {
	info, err := redistest.Command(addr, "INFO", "cpu")
	if err != nil {
		b.Fatal(err)
	}
	var total float64
	for _, line := range strings.Split(info, "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), ":")
		if ok && (k == "used_cpu_sys" || k == "used_cpu_user") {
			f, _ := strconv.ParseFloat(v, 64)
			total += f
		}
	}
	return time.Duration(total * float64(time.Second))
}

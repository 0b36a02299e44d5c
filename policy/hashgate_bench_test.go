package policy

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// roundTrip stands for a loopback HTTP round trip in the flood.
const roundTrip = time.Millisecond

// BenchmarkSlowHashFirstCheck measures a bcrypt client's first check (a
// fresh client each time, so nothing is remembered) alone ("flood-0") and
// while 200 goroutines, 200 connections' worth, send another bcrypt client
// distinct wrong guesses back to back, each after the previous answer plus
// a loopback round trip ("flood-200"), with the default gate
// (half of GOMAXPROCS slots). Besides ns/op it reports the p50, p99 and
// maximum latency of the first check in milliseconds. bcrypt cost 4 (the
// floor): the figure is the wait the flood adds, on top of the client's own
// hash, which at cost 10–12 alone takes 50–250 ms.
//
//	go test ./policy -run '^$' -bench SlowHashFirstCheck -benchtime 200x
func BenchmarkSlowHashFirstCheck(b *testing.B) {
	bc, err := bcrypt.GenerateFromPassword([]byte("good"), bcrypt.MinCost)
	if err != nil {
		b.Fatal(err)
	}
	rec := ClientRecord{ID: "good", ClientKey: "g", Status: "active", APIKeyHash: string(bc)}
	victim := mustClient(b, ClientRecord{ID: "victim", ClientKey: "k", Status: "active", APIKeyHash: string(bc)})
	for _, flood := range []int{0, 200} {
		b.Run(fmt.Sprintf("flood-%d", flood), func(b *testing.B) {
			e := mustEngine(b, EngineConfig{})
			// Each flooding goroutine pauses a loopback round trip between
			// an answer and its next request: in-process, refused guesses
			// would otherwise spin and starve the CPU as no network client
			// can.
			stop := floodGuesses(e, victim, flood, roundTrip, nil)
			for flood > 0 && e.slow.checks.Load() < 4 { // the flood is under way
				time.Sleep(time.Millisecond)
			}
			lat := make([]time.Duration, 0, b.N)
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				c, _ := CompileClient(rec) // nothing remembered
				start := time.Now()
				d := decideAPIKey(e, apiReq("GET", "/x", "g.good"), func(string) *Client { return c })
				lat = append(lat, time.Since(start))
				if !d.Allowed() {
					b.Fatalf("good client's first check: %v", d.Reason)
				}
			}
			b.StopTimer()
			stop()
			slices.Sort(lat)
			ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
			b.ReportMetric(ms(lat[len(lat)/2]), "p50-ms")
			b.ReportMetric(ms(lat[(len(lat)*99)/100]), "p99-ms")
			b.ReportMetric(ms(lat[len(lat)-1]), "max-ms")
		})
	}
}

package policy

import (
	"crypto/sha256"
	"encoding/hex"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/scopegate/scopegate/internal/testproc"
)

// snapshotRecord is client i of a large member database, as the store reads
// it: its own copy of every string (lists included, so sharing can only
// come from their content), shared list contents, a SHA-256 hash, and a rate
// limit on every other client.
func snapshotRecord(i int) ClientRecord {
	n := strconv.Itoa(i)
	sum := sha256.Sum256([]byte("secret-" + n))
	upd := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(i) * time.Second)
	rec := ClientRecord{
		ID:             "00000000-0000-4000-8000-" + strings.Repeat("0", 12-len(n)) + n,
		ClientKey:      "client-" + n,
		Name:           "Client " + n,
		Status:         strings.Clone("active"),
		APIKeyHash:     "sha256:" + hex.EncodeToString(sum[:]),
		AllowedOrigins: []string{strings.Clone("https://app.example.com"), strings.Clone("https://*.example.org")},
		AllowedIPs:     []string{strings.Clone("10.0.0.0/8"), strings.Clone("192.168.1.10")},
		AllowedPaths:   []string{strings.Clone("GET /api/**"), strings.Clone("POST /api/orders/*")},
		UpdatedAt:      upd,
	}
	if i%2 == 0 {
		r := 600
		rec.RateLimitPerMin = &r
	}
	return rec
}

// compileSnapshot compiles n clients (snapshotRecord) and keeps them until
// it has measured: the live heap they hold per client (records dropped)
// and the time CompileClient took for all of them.
func compileSnapshot(tb testing.TB, n int) (perClient float64, spent time.Duration) {
	tb.Helper()
	before := testproc.LiveHeap()
	clients := make([]*Client, n)
	for i := range clients {
		rec := snapshotRecord(i)
		t := time.Now()
		c, errs := CompileClient(rec)
		spent += time.Since(t)
		if len(errs) > 0 {
			tb.Fatal(errs)
		}
		clients[i] = c
	}
	perClient = float64(testproc.LiveHeap()-before-uint64(n*8)) / float64(n)
	runtime.KeepAlive(clients)
	return perClient, spent
}

// BenchmarkCompileClients compiles a snapshot of 100,000 clients (see
// snapshotRecord) and keeps them: B-retained/client is the live heap they
// hold (records dropped), ms-compile the time CompileClient took for all
// of them. Target (issue 16): at most 640 bytes per client, 100,000
// clients compiled well within a second.
func BenchmarkCompileClients(b *testing.B) {
	b.ReportAllocs()
	var perClient float64
	var spent time.Duration
	for b.Loop() {
		perClient, spent = compileSnapshot(b, 100000)
	}
	b.ReportMetric(perClient, "B-retained/client")
	b.ReportMetric(float64(spent.Microseconds())/1000, "ms-compile")
}

// TestCompiledClientFootprint keeps issue 16's bound: 100,000 compiled
// clients of a large member database (see snapshotRecord) retain at most
// 640 bytes each. A memory bound, not a timing: it cannot flake on a slow
// machine. Not parallel, so no other test's heap is counted.
func TestCompiledClientFootprint(t *testing.T) {
	if testing.Short() {
		t.Skip("compiles 100,000 clients")
	}
	const bound = 640
	per, _ := compileSnapshot(t, 100000)
	t.Logf("%.0f bytes retained per compiled client", per)
	if per > bound {
		t.Errorf("%.0f bytes retained per compiled client, want at most %d", per, bound)
	}
}

package console

import (
	"fmt"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/scopegate/scopegate/policy"
)

// fakeStore is a StoreView over fixed clients.
type fakeStore struct {
	mu      sync.Mutex
	clients []*policy.Client
	state   string
}

func (f *fakeStore) State(time.Time) (string, time.Time) {
	return f.state, time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
}

func (f *fakeStore) ListClients() []*policy.Client {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]*policy.Client(nil), f.clients...)
}

type fixedRoutes struct{ r *policy.Routes }

func (f fixedRoutes) Routes() *policy.Routes { return f.r }

func client(t testing.TB, key string, limit *int) *policy.Client {
	t.Helper()
	c, errs := policy.CompileClient(policy.ClientRecord{ID: "id-" + key, ClientKey: key, Name: "Client " + key,
		Status: "active", APIKeyHash: "sha256:" + strings.Repeat("0", 64), RateLimitPerMin: limit})
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	return c
}

func testConsole(t testing.TB, now *time.Time) *Console {
	t.Helper()
	routes, _, err := policy.ParseRoutes([]byte("routes:\n  - path: /a/**\n  - path: /b/**\n    methods: [GET]\n"))
	if err != nil {
		t.Fatal(err)
	}
	st := &fakeStore{state: "ok", clients: []*policy.Client{client(t, "app", nil), client(t, "lim", ptr(60))}}
	return New(Config{Store: st, Routes: fixedRoutes{routes}, StoreKind: "file", Now: func() time.Time { return *now }})
}

func ptr(n int) *int { return &n }

// TestObserveNoAllocs: recording an allowed decision, a denial (ring and
// stream included) and a decision presenting an unknown key allocates
// nothing once the client has been seen.
func TestObserveNoAllocs(t *testing.T) {
	now := time.Now()
	c := testConsole(t, &now)
	sub := c.subs.add(4) // a stream open, never read: its sends are dropped
	defer c.subs.remove(sub)
	reqID := []byte("req-1")
	allow := Event{Time: now, Took: 20 * time.Microsecond, Status: 200, Route: 0, Method: "GET", Path: "/a/x", ClientKey: "app", ClientFound: true, RequestID: reqID}
	deny := Event{Time: now, Took: 5 * time.Microsecond, Status: 403, Reason: policy.ReasonPathNotAllowed, Route: 1, Method: "DELETE", Path: "/b/x", ClientKey: "app", ClientFound: true, RequestID: reqID}
	unknown := Event{Time: now, Status: 401, Reason: policy.ReasonAPIKeyInvalid, Route: -1, Method: "GET", Path: "/zzz", ClientKey: "nobody", RequestID: reqID}
	c.Observe(&deny) // first denial of app allocates its reason counters, once
	for name, e := range map[string]*Event{"allow": &allow, "deny": &deny, "unknown key": &unknown} {
		if n := testing.AllocsPerRun(200, func() { c.Observe(e) }); n != 0 {
			t.Errorf("%s: %v allocations per Observe, want 0", name, n)
		}
	}
	if len(c.clients.Load().byKey) != 2 {
		t.Errorf("an unknown client_key grew the table: %d entries", len(c.clients.Load().byKey))
	}
}

// BenchmarkObserve measures Observe from every core at once (the request
// path's cost), allowed and denied decisions mixed 3:1.
func BenchmarkObserve(b *testing.B) {
	now := time.Now()
	c := testConsole(b, &now)
	reqID := []byte("0123456789abcdef-42")
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			e := Event{Time: now, Took: 30 * time.Microsecond, Status: 200, Route: 0, Method: "GET", Path: "/a/x", ClientKey: "app", ClientFound: true, RequestID: reqID}
			if i&3 == 3 {
				e.Status, e.Reason = 403, policy.ReasonPathNotAllowed
			}
			c.Observe(&e)
			i++
		}
	})
}

// TestHistogramBuckets: every duration lands in a bucket whose middle is
// within 12.5% of it, buckets grow with the duration, and quantiles read
// back a known distribution.
func TestHistogramBuckets(t *testing.T) {
	prev := 0
	for ns := int64(1024); ns < 1<<36; ns = ns*21/20 + 1 {
		i := bucketOf(time.Duration(ns))
		if i < prev {
			t.Fatalf("bucketOf(%d) = %d after %d", ns, i, prev)
		}
		prev = i
		if mid := bucketMid(i); math.Abs(mid-float64(ns))/float64(ns) > 0.125 {
			t.Fatalf("bucketOf(%d): middle %v is more than 12.5%% off", ns, mid)
		}
	}
	if bucketOf(0) != 0 || bucketOf(-5) != 0 || bucketOf(time.Hour) != histBuckets-1 {
		t.Error("out-of-range durations are not clamped")
	}
	var h histogram
	for i := 0; i < 99; i++ {
		h.add(100 * time.Microsecond)
	}
	h.add(50 * time.Millisecond)
	var cs counts
	h.addTo(&cs)
	lat := cs.latency()
	if lat.P50 == nil || math.Abs(*lat.P50-0.1) > 0.0125 {
		t.Errorf("p50 = %v ms, want about 0.1", lat.P50)
	}
	if *lat.P99 > 0.1125 {
		t.Errorf("p99 = %v ms, want about 0.1 (99 of 100 samples)", *lat.P99)
	}
	var none counts
	if l := none.latency(); l.P50 != nil || l.P99 != nil {
		t.Error("no sample must give null quantiles")
	}
}

// TestMinutesRollOver: decisions land in their minute; an hour later the
// old minutes are gone, and the window always has 60 entries ending at now.
func TestMinutesRollOver(t *testing.T) {
	now := time.Date(2026, 5, 1, 10, 30, 15, 0, time.UTC)
	c := testConsole(t, &now)
	for i := 0; i < 3; i++ {
		c.Observe(&Event{Time: now, Route: 0})
	}
	c.Observe(&Event{Time: now, Route: 0, Reason: policy.ReasonNoRoute, Status: 403})
	now = now.Add(time.Minute)
	c.Observe(&Event{Time: now, Route: 0, Reason: policy.ReasonNoRoute, Status: 403})
	v := c.overview(now)
	if len(v.Minutes) != 60 || v.Minutes[59].T != "2026-05-01T10:31:00Z" || v.Minutes[58].T != "2026-05-01T10:30:00Z" {
		t.Fatalf("minutes: %d entries, last %q", len(v.Minutes), v.Minutes[len(v.Minutes)-1].T)
	}
	if m := v.Minutes[58]; m.Allowed != 3 || m.Denied != 1 || m.Reasons["no_route"] != 1 {
		t.Errorf("10:30 = %+v", m)
	}
	if m := v.Minutes[59]; m.Allowed != 0 || m.Denied != 1 {
		t.Errorf("10:31 = %+v", m)
	}
	now = now.Add(time.Hour) // the same slots, an hour on
	c.Observe(&Event{Time: now, Route: 0})
	v = c.overview(now)
	total := uint64(0)
	for _, m := range v.Minutes {
		total += m.Allowed + m.Denied
	}
	if total != 1 || v.Minutes[59].Allowed != 1 {
		t.Errorf("an hour later the window holds %d decisions, want only the new one", total)
	}
	if v.Totals.Allowed != 4 || v.Totals.Denied != 2 {
		t.Errorf("totals = %+v", v.Totals)
	}
}

// TestDenialRing: the last 200 denials, newest first, with long values cut.
func TestDenialRing(t *testing.T) {
	now := time.Now()
	c := testConsole(t, &now)
	for i := 0; i < 250; i++ {
		c.Observe(&Event{Time: now, Status: 403, Reason: policy.ReasonNoRoute, Route: -1, Method: "GET",
			Path: fmt.Sprintf("/p/%d/%s", i, strings.Repeat("x", 300)), RequestID: []byte(fmt.Sprint("r", i))})
	}
	got := c.ring.recent()
	if len(got) != ringSize {
		t.Fatalf("%d denials kept, want %d", len(got), ringSize)
	}
	if got[0].RequestID != "r249" || got[ringSize-1].RequestID != "r50" {
		t.Errorf("order: first %s, last %s", got[0].RequestID, got[ringSize-1].RequestID)
	}
	if len(got[0].Path) != maxPath || got[0].ClientKey != nil || got[0].UserSub != nil {
		t.Errorf("entry = %+v", got[0])
	}
}

// TestSlowSubscriberNeverBlocks: streams that fall behind miss denials
// (counted) while Observe never waits; what a stream got is in order.
func TestSlowSubscriberNeverBlocks(t *testing.T) {
	now := time.Now()
	c := testConsole(t, &now)
	a, b := c.subs.add(4), c.subs.add(4)
	n := streamBuffer + 50
	for i := 0; i < n; i++ { // nobody reads meanwhile: this would hang if a send waited
		c.Observe(&Event{Time: now, Status: 401, Reason: policy.ReasonCredentialsMissing, Route: -1})
	}
	for i := 0; i < streamBuffer; i++ {
		if seq := <-a.ch; seq != uint64(i+1) {
			t.Fatalf("stream got %d at %d", seq, i)
		}
	}
	if a.dropped.Load() != 50 || b.dropped.Load() != 50 || c.subs.dropped.Load() != 100 {
		t.Errorf("dropped: %d, %d, total %d; want 50, 50, 100", a.dropped.Load(), b.dropped.Load(), c.subs.dropped.Load())
	}
	if c.subs.add(2) != nil {
		t.Error("a third stream was accepted over a limit of 2")
	}
	c.subs.remove(a)
	if c.subs.count() != 1 {
		t.Errorf("%d streams after one left", c.subs.count())
	}
}

// TestClientsAndRoutes: per-client and per-route counters, the remaining
// tokens estimate, a routes reload carrying counters over, and clients
// deleted from the store dropping out.
func TestClientsAndRoutes(t *testing.T) {
	now := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
	c := testConsole(t, &now)
	c.Observe(&Event{Time: now, Route: 0, ClientKey: "lim", ClientFound: true, RateLimit: policy.RateLimitState{Applied: true, Limit: 60, Remaining: 10}})
	c.Observe(&Event{Time: now, Route: 1, ClientKey: "app", ClientFound: true, Reason: policy.ReasonPathNotAllowed, Status: 403})
	c.Observe(&Event{Time: now, Route: 1, ClientKey: "app", ClientFound: true})
	now = now.Add(5 * time.Second)
	views := map[string]clientView{}
	for _, v := range c.clientViews(now) {
		views[v.ClientKey] = v
	}
	if v := views["lim"]; v.Requests != 1 || v.Remaining == nil || *v.Remaining != 15 || *v.RateLimitPerMin != 60 || v.LastUsedAt == nil {
		t.Errorf("lim = %+v (remaining %v)", v, v.Remaining)
	}
	if v := views["app"]; v.Requests != 2 || v.Denials["path_not_allowed"] != 1 || v.Remaining != nil || v.RateLimitPerMin != nil || !v.RateLimitDefault {
		t.Errorf("app = %+v", v)
	}
	rv := c.routeViews()
	if len(rv) != 2 || rv[0].Hits != 1 || rv[1].Hits != 2 || rv[1].Denials["path_not_allowed"] != 1 || rv[1].Methods[0] != "GET" {
		t.Errorf("routes = %+v", rv)
	}
	// A reload that puts a new rule first: /b/** keeps its counts.
	r2, _, _ := policy.ParseRoutes([]byte("routes:\n  - path: /c/**\n  - path: /b/**\n    methods: [GET]\n"))
	c.cfg.Routes = fixedRoutes{r2}
	rv = c.routeViews()
	if len(rv) != 2 || rv[0].Path != "/c/**" || rv[0].Hits != 0 || rv[1].Hits != 2 {
		t.Errorf("after reload: %+v", rv)
	}
	st := c.cfg.Store.(*fakeStore)
	st.mu.Lock()
	st.clients = st.clients[1:] // "app" deleted
	st.mu.Unlock()
	if vs := c.clientViews(now); len(vs) != 1 || len(c.clients.Load().byKey) != 1 {
		t.Errorf("after delete: %d views, %d tables entries", len(vs), len(c.clients.Load().byKey))
	}
}

// TestClientFoundDecidesTheTable: a client_key joins the clients table
// when the store found it, whatever the answer (a 503 of a Redis in deny
// mode included), and never when it did not, even on an allowed request
// (a public route does not look the key up).
func TestClientFoundDecidesTheTable(t *testing.T) {
	now := time.Now()
	c := testConsole(t, &now)
	before := len(c.clients.Load().byKey)
	c.Observe(&Event{Time: now, Route: 0, ClientKey: "made-up", Status: 200})
	c.Observe(&Event{Time: now, Route: 0, ClientKey: "app", ClientFound: true, Status: 503, Reason: policy.ReasonRateLimitUnavailable})
	byKey := c.clients.Load().byKey
	if byKey["made-up"] != nil {
		t.Error("a key the store did not find joined the table")
	}
	if cs := byKey["app"]; cs == nil || cs.requests.Load() != 1 {
		t.Errorf("a found client's 503 was not counted (table %d → %d entries)", before, len(byKey))
	}
}

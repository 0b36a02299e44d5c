package policy

import (
	"net/netip"
	"reflect"
	"runtime"
	"slices"
	"testing"
	"time"
)

// TestInternedListsShareOnlyEqualLists: clients whose lists are equal entry
// for entry share one compiled matcher; a client whose list differs in any
// way (an entry, the order, the split between entries) gets its own, and
// decides by its own list only.
func TestInternedListsShareOnlyEqualLists(t *testing.T) {
	base := func(key string) ClientRecord {
		return ClientRecord{ID: "id-" + key, ClientKey: key, Status: "active", APIKeyHash: sha256Hex("s"),
			AllowedIPs:     []string{"10.0.0.0/8", "192.168.1.10"},
			AllowedOrigins: []string{"https://app.example.com", "https://*.example.org"},
			AllowedPaths:   []string{"GET /api/**", "POST /api/orders/*"}}
	}
	a := mustClient(t, base("a"))
	b := mustClient(t, base("b"))
	if a.ipList != b.ipList || a.originList != b.originList || a.pathList != b.pathList {
		t.Fatal("equal lists are compiled twice, not shared")
	}
	tests := []struct {
		name   string
		change func(*ClientRecord)
		ip     bool // which list differs
		origin bool
		path   bool
	}{
		{"other ip", func(r *ClientRecord) { r.AllowedIPs = []string{"10.0.0.0/8", "192.168.1.11"} }, true, false, false},
		{"ips reordered", func(r *ClientRecord) { r.AllowedIPs = []string{"192.168.1.10", "10.0.0.0/8"} }, true, false, false},
		{"one ip fewer", func(r *ClientRecord) { r.AllowedIPs = []string{"10.0.0.0/8"} }, true, false, false},
		{"other origin", func(r *ClientRecord) {
			r.AllowedOrigins = []string{"https://evil.example.com", "https://*.example.org"}
		}, false, true, false},
		{"other path", func(r *ClientRecord) { r.AllowedPaths = []string{"GET /api/**", "POST /api/**"} }, false, false, true},
		// The same bytes split differently are another list.
		{"entries joined", func(r *ClientRecord) { r.AllowedPaths = []string{"GET /api/**POST /api/orders/*"} }, false, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := base("c")
			tt.change(&rec)
			c, _ := CompileClient(rec)
			if (c.ipList != a.ipList) != tt.ip || (c.originList != a.originList) != tt.origin || (c.pathList != a.pathList) != tt.path {
				t.Fatalf("shared ip/origin/path = %v/%v/%v, want %v/%v/%v", c.ipList == a.ipList,
					c.originList == a.originList, c.pathList == a.pathList, !tt.ip, !tt.origin, !tt.path)
			}
			if got := c.Record(); !slices.Equal(got.AllowedIPs, rec.AllowedIPs) ||
				!slices.Equal(got.AllowedOrigins, rec.AllowedOrigins) || !slices.Equal(got.AllowedPaths, rec.AllowedPaths) {
				t.Errorf("Record() lists = %q %q %q, want %q %q %q", got.AllowedIPs, got.AllowedOrigins, got.AllowedPaths,
					rec.AllowedIPs, rec.AllowedOrigins, rec.AllowedPaths)
			}
		})
	}

	// Each decides by its own list: "other ip" admits .11 and not .10.
	rec := base("d")
	rec.AllowedIPs = []string{"192.168.1.11"}
	d := mustClient(t, rec)
	ip10, ip11 := netip.MustParseAddr("192.168.1.10"), netip.MustParseAddr("192.168.1.11")
	if !a.ipAllowed(ip10) || a.ipAllowed(ip11) || d.ipAllowed(ip10) || !d.ipAllowed(ip11) {
		t.Errorf("a admits .10/.11 = %v/%v (want true/false), d = %v/%v (want false/true)",
			a.ipAllowed(ip10), a.ipAllowed(ip11), d.ipAllowed(ip10), d.ipAllowed(ip11))
	}
	// A client without a list is unrestricted, whatever others carry.
	rec = base("e")
	rec.AllowedIPs, rec.AllowedOrigins, rec.AllowedPaths = nil, []string{}, nil
	e := mustClient(t, rec)
	if !e.ipAllowed(ip11) || !e.originAllowed("https://evil.example.com") || !e.pathAllowed("DELETE", "/x") {
		t.Error("a client without lists is restricted")
	}
}

// TestInternerForgetsUnusedLists: a compiled list nobody holds any more
// leaves the interner, so a snapshot that changes lists over time does not
// keep every list it ever saw.
func TestInternerForgetsUnusedLists(t *testing.T) {
	rec := ClientRecord{ID: "x", ClientKey: "x", Status: "active", APIKeyHash: sha256Hex("s"),
		AllowedPaths: []string{"/only-this-test/forgets/**"}}
	c := mustClient(t, rec)
	key := string(listKey(nil, rec.AllowedPaths))
	has := func() bool {
		pathLists.mu.Lock()
		defer pathLists.mu.Unlock()
		_, ok := pathLists.m[key]
		return ok
	}
	if !has() {
		t.Fatal("the compiled list is not interned")
	}
	runtime.KeepAlive(c)
	c = nil
	for i := 0; i < 100 && has(); i++ {
		runtime.GC() // the cleanup runs after a collection finds the list unreachable
		runtime.Gosched()
	}
	if has() {
		t.Error("a list no client holds stays interned")
	}
}

// TestClientRecordRoundTrip: Record returns the row as given (lists, NULLs,
// a negative limit, a non-canonical hash, empty-but-present lists), and
// SameRow tells it from any changed row.
func TestClientRecordRoundTrip(t *testing.T) {
	exp := time.Date(2030, 1, 2, 3, 4, 5, 6, time.UTC)
	used := time.Date(2026, 12, 1, 10, 0, 0, 7, time.Local)
	neg, rate := -5, 60
	full := ClientRecord{ID: "11111111-0000-4000-8000-000000000001", ClientKey: "k1", Name: "Full", Status: "paused",
		APIKeyHash:     "SHA256:AB", // not a hash scopegate knows: kept as text
		AllowedOrigins: []string{"https://a.example.com"}, AllowedIPs: []string{"bad-ip"}, AllowedPaths: []string{},
		RateLimitPerMin: &neg, ExpiresAt: &exp, LastUsedAt: &used, UpdatedAt: time.Date(2026, 12, 7, 0, 0, 0, 9, time.UTC)}
	tests := []struct {
		name string
		rec  ClientRecord
	}{
		{"full", full},
		{"canonical sha256", ClientRecord{ID: "i2", ClientKey: "k2", Status: "active", APIKeyHash: "sha256:" + sha256Hex("s"),
			RateLimitPerMin: &rate, UpdatedAt: time.Unix(1700000000, 5)}},
		{"bare hex", ClientRecord{ID: "i3", ClientKey: "k3", Status: "active", APIKeyHash: sha256Hex("s")}},
		{"bcrypt", ClientRecord{ID: "i4", ClientKey: "k4", Status: "revoked", APIKeyHash: "$2a$04$invalid"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, _ := CompileClient(tt.rec)
			got := c.Record()
			if !reflect.DeepEqual(normTimes(got), normTimes(tt.rec)) {
				t.Errorf("Record() = %+v\nwant       %+v", got, tt.rec)
			}
			if !c.SameRow(tt.rec) {
				t.Error("SameRow(its own row) = false")
			}
			changes := []func(*ClientRecord){
				func(r *ClientRecord) { r.Name += "x" },
				func(r *ClientRecord) { r.Status = "active2" },
				func(r *ClientRecord) { r.APIKeyHash = "sha256:" + sha256Hex("other") },
				func(r *ClientRecord) { r.AllowedIPs = append(slices.Clone(r.AllowedIPs), "10.0.0.1") },
				func(r *ClientRecord) { r.AllowedPaths = []string{"/x"} },
				func(r *ClientRecord) {
					if r.RateLimitPerMin != nil {
						r.RateLimitPerMin = nil
					} else {
						r.RateLimitPerMin = &rate
					}
				},
				func(r *ClientRecord) { n := 7; r.RateLimitPerMin = &n },
				func(r *ClientRecord) { e := exp.Add(time.Second); r.ExpiresAt = &e },
			}
			for i, change := range changes {
				r := tt.rec
				change(&r)
				if c.SameRow(r) || c.SameContent(r) {
					t.Errorf("change %d: SameRow, SameContent(changed row) = %v, %v", i, c.SameRow(r), c.SameContent(r))
				}
			}
			r := tt.rec
			r.UpdatedAt = r.UpdatedAt.Add(time.Nanosecond)
			if c.SameRow(r) || !c.SameContent(r) {
				t.Errorf("a new updated_at: SameRow, SameContent = %v, %v; want false, true", c.SameRow(r), c.SameContent(r))
			}
			r = tt.rec
			now := time.Now()
			r.LastUsedAt = &now
			if !c.SameRow(r) {
				t.Error("SameRow: a new last_used_at counts as a change")
			}
		})
	}
}

// normTimes drops the monotonic readings and locations, which Record does
// not keep (instants are kept exactly).
func normTimes(r ClientRecord) ClientRecord {
	norm := func(p *time.Time) *time.Time {
		if p == nil {
			return nil
		}
		t := p.UTC()
		return &t
	}
	r.ExpiresAt, r.LastUsedAt = norm(r.ExpiresAt), norm(r.LastUsedAt)
	r.UpdatedAt = r.UpdatedAt.UTC()
	return r
}

// TestOriginListsCounts: the union follows the active clients, a list
// leaves with its last active client, and equal lists count once.
func TestOriginListsCounts(t *testing.T) {
	mk := func(key, status string, origins ...string) *Client {
		c, _ := CompileClient(ClientRecord{ID: key, ClientKey: key, Status: status, APIKeyHash: sha256Hex("s"), AllowedOrigins: origins})
		return c
	}
	a1 := mk("a1", "active", "https://a.example.com")
	a2 := mk("a2", "active", "https://a.example.com")
	b := mk("b", "active", "https://*.b.example.com")
	off := mk("off", "suspended", "https://off.example.com")
	o := NewOriginLists()
	for _, c := range []*Client{a1, a2, b, off, nil} {
		o.Add(c)
	}
	allowed := func(origin string) bool { return o.Origins().set.match(origin) }
	if !allowed("https://a.example.com") || !allowed("https://x.b.example.com") || allowed("https://off.example.com") {
		t.Fatal("the union is not the active clients' lists")
	}
	// A clone changes on its own.
	clone := o.Clone()
	clone.Remove(b)
	if clone.Origins().set.match("https://x.b.example.com") || !allowed("https://x.b.example.com") {
		t.Error("a clone and its original share their counts")
	}
	first := o.Origins()
	o.Remove(a1)
	if o.Origins() != first || !allowed("https://a.example.com") {
		t.Error("removing one of two clients sharing a list changed the union")
	}
	o.Remove(a2)
	if allowed("https://a.example.com") {
		t.Error("a list stays after its last active client left")
	}
	o.Remove(off)
	if !allowed("https://x.b.example.com") {
		t.Error("removing an inactive client removed another's list")
	}
}

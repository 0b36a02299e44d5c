package store

import (
	"fmt"
	"testing"

	"github.com/scopegate/scopegate/policy"
)

func snapClient(t *testing.T, i int, status string, origins ...string) *policy.Client {
	t.Helper()
	c, errs := policy.CompileClient(policy.ClientRecord{ID: fmt.Sprintf("id-%d", i), ClientKey: fmt.Sprintf("key-%d", i),
		Status: status, APIKeyHash: "sha256:" + fmt.Sprintf("%064x", i), AllowedOrigins: origins})
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	return c
}

// TestClientSnapEdit: an edit leaves the published snapshot as it was,
// copies only the shards it writes, and keeps the count and the active
// clients' origins in step.
func TestClientSnapEdit(t *testing.T) {
	cors, _, err := policy.ParseRoutes([]byte("cors:\n  allow_origins: clients\nroutes: []\n"))
	if err != nil {
		t.Fatal(err)
	}
	allowed := func(s *clientSnap, origin string) bool { return cors.CORS().OriginAllowed(origin, s.origins) }
	const n = 1000
	old := newClientSnap(n)
	for i := range n {
		old.put(clientEntry{client: snapClient(t, i, "active", "https://shared.example.com"), slot: &usageSlot{}})
	}
	old.put(clientEntry{client: snapClient(t, n, "active", "https://own.example.com"), slot: &usageSlot{}})
	old.seal()
	if old.len() != n+1 || !allowed(old, "https://own.example.com") || !allowed(old, "https://shared.example.com") {
		t.Fatalf("built snapshot: %d clients, origins own/shared %v/%v", old.len(),
			allowed(old, "https://own.example.com"), allowed(old, "https://shared.example.com"))
	}

	// Suspend the one client with its own origin, and one of the shared.
	ed := old.edit()
	for _, i := range []int{n, 7} {
		prev, _ := old.entry(fmt.Sprintf("id-%d", i))
		ed.remove(prev.client.ID)
		origin := "https://shared.example.com"
		if i == n {
			origin = "https://own.example.com"
		}
		ed.put(clientEntry{client: snapClient(t, i, "suspended", origin), slot: prev.slot})
	}
	next := ed.next.seal()
	if c := old.client("key-7"); c == nil || !c.Active || !allowed(old, "https://own.example.com") {
		t.Error("the edit changed the published snapshot")
	}
	if c := next.client("key-7"); c == nil || c.Active {
		t.Errorf("next: key-7 = %v, want suspended", c)
	}
	if next.len() != n+1 || allowed(next, "https://own.example.com") || !allowed(next, "https://shared.example.com") {
		t.Errorf("next: %d clients, origins own/shared %v/%v, want %d, false/true", next.len(),
			allowed(next, "https://own.example.com"), allowed(next, "https://shared.example.com"), n+1)
	}
	copied := 0
	for i := range clientShards {
		if fmt.Sprintf("%p", old.ids[i]) != fmt.Sprintf("%p", next.ids[i]) {
			copied++
		}
	}
	if copied == 0 || copied > 2 {
		t.Errorf("%d id shards copied for 2 changed clients, want 1 or 2", copied)
	}

	// A deleted client leaves with its client_key.
	ed = next.edit()
	ed.remove("id-3")
	last := ed.next.seal()
	if last.client("key-3") != nil || last.len() != n || next.client("key-3") == nil {
		t.Errorf("delete: key-3 still found (%v) or count %d, want gone and %d", last.client("key-3") != nil, last.len(), n)
	}
}

//go:build !race

package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/scopegate/scopegate/internal/storetest"
	"github.com/scopegate/scopegate/policy"
	"github.com/scopegate/scopegate/store"
)

var (
	sinkClient *policy.Client
	sinkUser   *policy.User
)

func TestFileLookupNoAllocs(t *testing.T) {
	f := openFile(t, writeFile(t, storetest.Basic().YAML()), store.FileConfig{NoWatch: true})
	ctx, now := context.Background(), time.Now()
	tests := []struct {
		name string
		fn   func()
	}{
		{"client", func() { sinkClient, _ = f.LookupClient("app", now) }},
		{"unknown_client", func() { sinkClient, _ = f.LookupClient("nope", now) }},
		{"user", func() { sinkUser, _ = f.LookupUser(ctx, "alice", now) }},
		{"mark_used", func() { f.MarkUsed("55555555-0000-4000-8000-000000000001", now) }},
	}
	for _, tc := range tests {
		if n := testing.AllocsPerRun(100, tc.fn); n != 0 {
			t.Errorf("%s: %v allocs per call, want 0", tc.name, n)
		}
	}
}

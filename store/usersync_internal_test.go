package store

import (
	"context"
	"testing"
	"time"

	"github.com/scopegate/scopegate/internal/pgtest"
	"github.com/scopegate/scopegate/internal/storetest"
	"github.com/scopegate/scopegate/policy"
)

func TestLatestPerUser(t *testing.T) {
	up := func(id, name string) profileUpdate {
		return profileUpdate{id: id, p: policy.UserProfile{DisplayName: name}}
	}
	tests := []struct {
		name     string
		in, want []profileUpdate
	}{
		{"empty", nil, nil},
		{"distinct", []profileUpdate{up("a", "1"), up("b", "1")}, []profileUpdate{up("a", "1"), up("b", "1")}},
		{"repeated", []profileUpdate{up("a", "1"), up("b", "1"), up("a", "2"), up("c", "1"), up("b", "2")},
			[]profileUpdate{up("a", "2"), up("c", "1"), up("b", "2")}},
	}
	for _, tt := range tests {
		got := latestPerUser(append([]profileUpdate(nil), tt.in...))
		if len(got) != len(tt.want) {
			t.Errorf("%s: %v, want %v", tt.name, got, tt.want)
			continue
		}
		for i := range got {
			if got[i] != tt.want[i] {
				t.Errorf("%s: %v, want %v", tt.name, got, tt.want)
				break
			}
		}
	}
}

// TestWriteUpdatesRepeatedUser: a batch naming one user twice (two requests
// queued before either marked the user) writes the later update; the
// statement alone would fail ("ON CONFLICT DO UPDATE command cannot affect
// row a second time") and lose the whole batch.
func TestWriteUpdatesRepeatedUser(t *testing.T) {
	db, dsn := pgtest.NewPool(t)
	pgtest.Exec(t, db, storetest.Basic().SQL())
	s, err := OpenPostgres(context.Background(), PostgresConfig{DSN: dsn, UserSync: UserSyncConfig{Enabled: true}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close(context.Background()) })
	const alice, carol = "44444444-0000-4000-8000-000000000001", "44444444-0000-4000-8000-000000000003"
	batch := []profileUpdate{
		{id: alice, p: policy.UserProfile{DisplayName: "Alicia"}},
		{id: carol, p: policy.UserProfile{DisplayName: "Caroline"}},
		{id: alice, p: policy.UserProfile{DisplayName: "Ally"}},
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s.writeUpdates(ctx, batch)
	if n := s.sync.updFailures.Get(); n != 0 {
		t.Fatalf("%d update failures", n)
	}
	for id, want := range map[string]string{alice: "Ally", carol: "Caroline"} {
		var name string
		if err := db.QueryRow(ctx, "SELECT display_name FROM users WHERE id = $1", id).Scan(&name); err != nil || name != want {
			t.Errorf("user %s: %q, %v; want %q", id, name, err, want)
		}
	}
}

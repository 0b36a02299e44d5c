package pgtest

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// DB is what the fixture helpers need; *pgxpool.Pool, *pgx.Conn and pgx.Tx
// satisfy it.
type DB interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// Client is an api_clients row to insert. Zero values: Name = ClientKey,
// Status "active", APIKeyHash "sha256:" + 64 zeros, empty lists.
type Client struct {
	ClientKey       string
	Name            string
	Status          string
	APIKeyHash      string
	AllowedOrigins  []string
	AllowedIPs      []string
	AllowedPaths    []string
	RateLimitPerMin *int
	ExpiresAt       *time.Time
	LastUsedAt      *time.Time
}

// InsertClient inserts c and returns its id.
func InsertClient(t testing.TB, db DB, c Client) string {
	t.Helper()
	if c.Name == "" {
		c.Name = c.ClientKey
	}
	if c.Status == "" {
		c.Status = "active"
	}
	if c.APIKeyHash == "" {
		c.APIKeyHash = "sha256:0000000000000000000000000000000000000000000000000000000000000000"
	}
	return insert(t, db, `INSERT INTO api_clients
  (client_key, name, status, api_key_hash, allowed_origins, allowed_ips, allowed_paths, rate_limit_per_min, expires_at, last_used_at)
VALUES ($1, $2, $3::text::client_status, $4, $5::jsonb, $6::jsonb, $7::jsonb, $8, $9, $10) RETURNING id::text`,
		c.ClientKey, c.Name, c.Status, c.APIKeyHash, jsonList(c.AllowedOrigins), jsonList(c.AllowedIPs),
		jsonList(c.AllowedPaths), c.RateLimitPerMin, c.ExpiresAt, c.LastUsedAt)
}

// User is a users row to insert. Zero values: Status "active", IsActive
// true, NULL email and display name.
type User struct {
	Sub         string
	Email       string
	DisplayName string
	Status      string
	Inactive    bool // is_active = false
}

// InsertUser inserts u and returns its id.
func InsertUser(t testing.TB, db DB, u User) string {
	t.Helper()
	if u.Status == "" {
		u.Status = "active"
	}
	return insert(t, db, `INSERT INTO users (authentik_sub, email, display_name, status, is_active)
VALUES ($1, NULLIF($2, ''), NULLIF($3, ''), $4::text::record_status, $5) RETURNING id::text`,
		u.Sub, u.Email, u.DisplayName, u.Status, !u.Inactive)
}

// InsertModule inserts a module (name = key; status "" means "active") and
// returns its id.
func InsertModule(t testing.TB, db DB, key, status string) string {
	t.Helper()
	return insert(t, db, `INSERT INTO modules (module_key, name, status) VALUES ($1, $1, $2::text::record_status) RETURNING id::text`,
		key, orActive(status))
}

// InsertCompany inserts a company (name = key; status "" means "active")
// and returns its id.
func InsertCompany(t testing.TB, db DB, key, status string) string {
	t.Helper()
	return insert(t, db, `INSERT INTO companies (company_key, name, status) VALUES ($1, $1, $2::text::record_status) RETURNING id::text`,
		key, orActive(status))
}

// InsertSite inserts a site of companyID (name = key; status "" means
// "active") and returns its id.
func InsertSite(t testing.TB, db DB, key, companyID, status string) string {
	t.Helper()
	return insert(t, db, `INSERT INTO sites (site_key, company_id, name, status) VALUES ($1, $2, $1, $3::text::record_status) RETURNING id::text`,
		key, companyID, orActive(status))
}

// InsertGrant inserts a user_scope_permissions row; scopeType is "company"
// or "site" and scopeID the company or site id. It returns the row id.
func InsertGrant(t testing.TB, db DB, userID, moduleID, action, scopeType, scopeID string) string {
	t.Helper()
	var companyID, siteID *string
	if scopeType == "company" {
		companyID = &scopeID
	} else {
		siteID = &scopeID
	}
	return insert(t, db, `INSERT INTO user_scope_permissions (user_id, module_id, action, scope_type, company_id, site_id)
VALUES ($1, $2, $3::text::permission_action, $4::text::scope_type, $5, $6) RETURNING id::text`,
		userID, moduleID, action, scopeType, companyID, siteID)
}

// InsertLegacyGrant inserts a row of the legacy permissions table (scopeID
// is a key or an id as text) and returns its id.
func InsertLegacyGrant(t testing.TB, db DB, userID, scopeType, scopeID, module, action string) string {
	t.Helper()
	return insert(t, db, `INSERT INTO permissions (user_id, scope_type, scope_id, module, action)
VALUES ($1, $2, $3, $4, $5) RETURNING id::text`, userID, scopeType, scopeID, module, action)
}

// Exec runs sql and fails the test on error.
func Exec(t testing.TB, db DB, sql string, args ...any) {
	t.Helper()
	if _, err := db.Exec(context.Background(), sql, args...); err != nil {
		t.Fatalf("pgtest: %s: %v", sql, err)
	}
}

func insert(t testing.TB, db DB, sql string, args ...any) string {
	t.Helper()
	var id string
	if err := db.QueryRow(context.Background(), sql, args...).Scan(&id); err != nil {
		t.Fatalf("pgtest: insert: %v", err)
	}
	return id
}

func orActive(s string) string {
	if s == "" {
		return "active"
	}
	return s
}

func jsonList(l []string) string {
	if l == nil {
		return "[]"
	}
	b, _ := json.Marshal(l)
	return string(b)
}

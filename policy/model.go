package policy

import "time"

// ClientRecord is one api_clients row as the store read it. jsonb list
// entries that are not JSON strings are passed as their raw JSON text, so
// they fail to parse and never match.
type ClientRecord struct {
	ID              string
	ClientKey       string
	Name            string
	Status          string // enum label as text; only "active" is active
	APIKeyHash      string
	AllowedOrigins  []string
	AllowedIPs      []string
	AllowedPaths    []string
	RateLimitPerMin *int // nil: SCOPEGATE_DEFAULT_RATE_LIMIT_PER_MIN
	ExpiresAt       *time.Time
	LastUsedAt      *time.Time
	UpdatedAt       time.Time
}

// UserRecord is one users row.
type UserRecord struct {
	ID          string
	Sub         string // authentik_sub
	Email       string // "" when NULL
	DisplayName string
	Status      string // enum label as text; only "active" is active
	IsActive    bool
}

// GrantRecord is one grant of a user, from user_scope_permissions or, when
// Legacy is set, from the legacy permissions table.
type GrantRecord struct {
	Module    string // modules.module_key (legacy: permissions.module)
	Action    string // view, create, update, delete, manage (compared as text)
	ScopeType string // "company" or "site"
	// ScopeID is the company or site id (uuid text); for legacy grants it is
	// permissions.scope_id, which holds a key or an id.
	ScopeID string
	Legacy  bool
}

// ModuleRecord is one modules row.
type ModuleRecord struct {
	ID, Key, Status string
}

// CompanyRecord is one companies row.
type CompanyRecord struct {
	ID, Key, Status string
}

// SiteRecord is one sites row.
type SiteRecord struct {
	ID, Key, CompanyID, Status string
}

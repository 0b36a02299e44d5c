package main

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/kelseyhightower/envconfig"

	"github.com/scopegate/scopegate/policy"
	"github.com/scopegate/scopegate/store"
)

// Config is every SCOPEGATE_ environment variable (SPEC §1–§9). The README's
// configuration table lists the same names, defaults and meanings.
type Config struct {
	// Stores (SPEC §7).
	DatabaseURL string `envconfig:"SCOPEGATE_DATABASE_URL"`
	StoreFile   string `envconfig:"SCOPEGATE_STORE_FILE"`

	// Listeners (SPEC §5).
	ListenAddr     string        `envconfig:"SCOPEGATE_LISTEN_ADDR" default:":8080"`
	AdminAddr      string        `envconfig:"SCOPEGATE_ADMIN_ADDR" default:"127.0.0.1:9090"`
	GRPCAddr       string        `envconfig:"SCOPEGATE_GRPC_ADDR"` // SPEC §12; empty: off
	AdminToken     string        `envconfig:"SCOPEGATE_ADMIN_TOKEN"`
	TLSCertFile    string        `envconfig:"SCOPEGATE_TLS_CERT_FILE"`
	TLSKeyFile     string        `envconfig:"SCOPEGATE_TLS_KEY_FILE"`
	ReadTimeout    time.Duration `envconfig:"SCOPEGATE_READ_TIMEOUT" default:"30s"`
	WriteTimeout   time.Duration `envconfig:"SCOPEGATE_WRITE_TIMEOUT" default:"60s"`
	IdleTimeout    time.Duration `envconfig:"SCOPEGATE_IDLE_TIMEOUT" default:"90s"`
	MaxHeaderBytes int           `envconfig:"SCOPEGATE_MAX_HEADER_BYTES" default:"16384"`
	MaxBodyBytes   int           `envconfig:"SCOPEGATE_MAX_BODY_BYTES" default:"10485760"`
	MaxConns       int           `envconfig:"SCOPEGATE_MAX_CONNS" default:"10000"`

	// Proxy and forward-auth (SPEC §5).
	UpstreamURL            string        `envconfig:"SCOPEGATE_UPSTREAM_URL"`
	UpstreamTimeout        time.Duration `envconfig:"SCOPEGATE_UPSTREAM_TIMEOUT" default:"30s"`
	UpstreamIdleTimeout    time.Duration `envconfig:"SCOPEGATE_UPSTREAM_IDLE_TIMEOUT" default:"1s"`
	TunnelIdleTimeout      time.Duration `envconfig:"SCOPEGATE_TUNNEL_IDLE_TIMEOUT" default:"1h"`
	MaxTunnels             int           `envconfig:"SCOPEGATE_MAX_TUNNELS" default:"10000"`
	AuthPath               string        `envconfig:"SCOPEGATE_AUTH_PATH" default:"/_auth"`
	IdentityHeaderPrefix   string        `envconfig:"SCOPEGATE_IDENTITY_HEADER_PREFIX" default:"X-Auth-"`
	StripCredentials       bool          `envconfig:"SCOPEGATE_STRIP_CREDENTIALS" default:"true"`
	TrustedProxies         string        `envconfig:"SCOPEGATE_TRUSTED_PROXIES" default:"127.0.0.0/8,::1/128"`
	ShutdownTimeout        time.Duration `envconfig:"SCOPEGATE_SHUTDOWN_TIMEOUT" default:"15s"`
	LogAllowed             bool          `envconfig:"SCOPEGATE_LOG_ALLOWED" default:"false"`
	LogLevel               string        `envconfig:"SCOPEGATE_LOG_LEVEL" default:"info"`
	RoutesFile             string        `envconfig:"SCOPEGATE_ROUTES_FILE"`
	LegacyPermissions      bool          `envconfig:"SCOPEGATE_LEGACY_PERMISSIONS" default:"true"`
	APIKeyHeader           string        `envconfig:"SCOPEGATE_API_KEY_HEADER" default:"X-API-Key"`
	DefaultRateLimitPerMin int           `envconfig:"SCOPEGATE_DEFAULT_RATE_LIMIT_PER_MIN" default:"0"`

	// JWTs (SPEC §3).
	JWTCookie       string        `envconfig:"SCOPEGATE_JWT_COOKIE"`
	JWTJWKSURL      string        `envconfig:"SCOPEGATE_JWT_JWKS_URL"`
	JWTIssuer       string        `envconfig:"SCOPEGATE_JWT_ISSUER"`
	JWTJWKSRefresh  time.Duration `envconfig:"SCOPEGATE_JWT_JWKS_REFRESH" default:"15m"`
	JWTHS256Secret  string        `envconfig:"SCOPEGATE_JWT_HS256_SECRET"`
	JWTAlgorithms   string        `envconfig:"SCOPEGATE_JWT_ALGORITHMS" default:"RS256,ES256,EdDSA"`
	JWTAudience     string        `envconfig:"SCOPEGATE_JWT_AUDIENCE"`
	JWTLeeway       time.Duration `envconfig:"SCOPEGATE_JWT_LEEWAY" default:"30s"`
	JWTSubjectClaim string        `envconfig:"SCOPEGATE_JWT_SUBJECT_CLAIM" default:"sub"`
	JWTRequireExp   bool          `envconfig:"SCOPEGATE_JWT_REQUIRE_EXP" default:"true"`

	// Caching, change feed, last_used_at (SPEC §6).
	CacheTTL               time.Duration `envconfig:"SCOPEGATE_CACHE_TTL" default:"30s"`
	NegativeCacheTTL       time.Duration `envconfig:"SCOPEGATE_NEGATIVE_CACHE_TTL" default:"5s"`
	StaleTTL               time.Duration `envconfig:"SCOPEGATE_STALE_TTL" default:"5m"`
	LastUsedFlushInterval  time.Duration `envconfig:"SCOPEGATE_LAST_USED_FLUSH_INTERVAL" default:"10s"`
	ClientReloadInterval   time.Duration `envconfig:"SCOPEGATE_CLIENT_RELOAD_INTERVAL" default:"5m"`
	DatabaseConnectTimeout time.Duration `envconfig:"SCOPEGATE_DATABASE_CONNECT_TIMEOUT" default:"5s"`

	// Users from token claims (SPEC §14).
	UserSync           string        `envconfig:"SCOPEGATE_USER_SYNC" default:"off"`
	UserSyncInterval   time.Duration `envconfig:"SCOPEGATE_USER_SYNC_INTERVAL" default:"1h"`
	UserSyncTrustEmail bool          `envconfig:"SCOPEGATE_USER_SYNC_TRUST_EMAIL" default:"false"`

	// Several replicas: cluster-wide rate limits (SPEC §9).
	RateLimitBackend      string        `envconfig:"SCOPEGATE_RATE_LIMIT_BACKEND" default:"local"`
	RedisURL              string        `envconfig:"SCOPEGATE_REDIS_URL"`
	RedisKeyPrefix        string        `envconfig:"SCOPEGATE_REDIS_KEY_PREFIX" default:"scopegate:"`
	RedisTimeout          time.Duration `envconfig:"SCOPEGATE_REDIS_TIMEOUT" default:"50ms"`
	RateLimitOnRedisError string        `envconfig:"SCOPEGATE_RATE_LIMIT_ON_REDIS_ERROR" default:"local"`

	// jwtAlgorithmsSet: SCOPEGATE_JWT_ALGORITHMS was set (not its default),
	// so it is the whole allow-list, HS256 not added for a secret.
	jwtAlgorithmsSet bool
}

// ConfigError is invalid configuration: it names the variable.
type ConfigError struct {
	Var string // full name, such as SCOPEGATE_UPSTREAM_TIMEOUT
	Msg string
}

// Error is one line, whatever Msg holds (a library's error, a routes file's
// list of errors may span lines).
func (e *ConfigError) Error() string {
	return "invalid configuration: " + e.Var + ": " + strings.ReplaceAll(e.Msg, "\n", "; ")
}

// loadConfig reads the environment. A bad value is a *ConfigError.
func loadConfig() (*Config, error) {
	if err := checkEnv(os.Environ()); err != nil {
		return nil, err
	}
	var c Config
	if err := envconfig.Process("", &c); err != nil {
		var pe *envconfig.ParseError
		if errors.As(err, &pe) {
			return nil, &ConfigError{Var: pe.KeyName, Msg: fmt.Sprintf("cannot parse %q as %s", pe.Value, pe.TypeName)}
		}
		return nil, &ConfigError{Var: "SCOPEGATE_*", Msg: err.Error()}
	}
	_, c.jwtAlgorithmsSet = os.LookupEnv("SCOPEGATE_JWT_ALGORITHMS")
	if err := c.validate(); err != nil {
		return nil, err
	}
	return &c, nil
}

func (c *Config) validate() error {
	nonNeg := []struct {
		name string
		d    time.Duration
	}{
		{"UPSTREAM_TIMEOUT", c.UpstreamTimeout}, {"UPSTREAM_IDLE_TIMEOUT", c.UpstreamIdleTimeout}, {"SHUTDOWN_TIMEOUT", c.ShutdownTimeout},
		{"CACHE_TTL", c.CacheTTL}, {"NEGATIVE_CACHE_TTL", c.NegativeCacheTTL}, {"STALE_TTL", c.StaleTTL},
		{"LAST_USED_FLUSH_INTERVAL", c.LastUsedFlushInterval}, {"JWT_LEEWAY", c.JWTLeeway},
		{"JWT_JWKS_REFRESH", c.JWTJWKSRefresh}, {"READ_TIMEOUT", c.ReadTimeout},
		{"WRITE_TIMEOUT", c.WriteTimeout}, {"IDLE_TIMEOUT", c.IdleTimeout},
		{"TUNNEL_IDLE_TIMEOUT", c.TunnelIdleTimeout},
	}
	for _, v := range nonNeg {
		if v.d < 0 {
			return &ConfigError{Var: "SCOPEGATE_" + v.name, Msg: "must not be negative"}
		}
	}
	if c.LastUsedFlushInterval == 0 {
		return &ConfigError{Var: "SCOPEGATE_LAST_USED_FLUSH_INTERVAL", Msg: "must be positive"}
	}
	if c.UpstreamIdleTimeout == 0 {
		return &ConfigError{Var: "SCOPEGATE_UPSTREAM_IDLE_TIMEOUT", Msg: "must be positive"}
	}
	for _, v := range []struct {
		name string
		n    int
	}{{"MAX_HEADER_BYTES", c.MaxHeaderBytes}, {"MAX_BODY_BYTES", c.MaxBodyBytes}, {"MAX_CONNS", c.MaxConns}, {"MAX_TUNNELS", c.MaxTunnels}} {
		if v.n <= 0 {
			return &ConfigError{Var: "SCOPEGATE_" + v.name, Msg: "must be positive"}
		}
	}
	if c.JWTCookie != "" && !isToken(c.JWTCookie) {
		return &ConfigError{Var: "SCOPEGATE_JWT_COOKIE", Msg: fmt.Sprintf("%q is not a cookie name (letters, digits and %s)", c.JWTCookie, tokenSymbols)}
	}
	if c.JWTJWKSURL != "" {
		if err := checkHTTPURL(c.JWTJWKSURL); err != nil {
			return &ConfigError{Var: "SCOPEGATE_JWT_JWKS_URL", Msg: err.Error()}
		}
	}
	if c.DefaultRateLimitPerMin < 0 {
		return &ConfigError{Var: "SCOPEGATE_DEFAULT_RATE_LIMIT_PER_MIN", Msg: "must not be negative"}
	}
	if c.AuthPath == "" || c.AuthPath[0] != '/' {
		return &ConfigError{Var: "SCOPEGATE_AUTH_PATH", Msg: "must start with /"}
	}
	if c.IdentityHeaderPrefix == "" {
		return &ConfigError{Var: "SCOPEGATE_IDENTITY_HEADER_PREFIX", Msg: "must not be empty"}
	}
	for _, h := range []struct{ name, v string }{{"IDENTITY_HEADER_PREFIX", c.IdentityHeaderPrefix}, {"API_KEY_HEADER", c.APIKeyHeader}} {
		if !isToken(h.v) {
			return &ConfigError{Var: "SCOPEGATE_" + h.name, Msg: fmt.Sprintf("%q is not a header field name (letters, digits and %s)", h.v, tokenSymbols)}
		}
	}
	if !policy.ForwardedHeaderName(c.APIKeyHeader) {
		// Header names with '_' are dropped before forwarding, and nginx
		// drops them by default.
		return &ConfigError{Var: "SCOPEGATE_API_KEY_HEADER", Msg: fmt.Sprintf("%q: a header name with '_' is dropped by the proxy and by nginx", c.APIKeyHeader)}
	}
	for _, a := range []struct{ name, v string }{{"LISTEN_ADDR", c.ListenAddr}, {"ADMIN_ADDR", c.AdminAddr}} {
		if err := checkListenAddr(a.v); err != nil {
			return &ConfigError{Var: "SCOPEGATE_" + a.name, Msg: err.Error()}
		}
	}
	if _, err := c.trustedProxies(); err != nil {
		return err
	}
	if (c.TLSCertFile == "") != (c.TLSKeyFile == "") {
		return &ConfigError{Var: "SCOPEGATE_TLS_CERT_FILE", Msg: "SCOPEGATE_TLS_CERT_FILE and SCOPEGATE_TLS_KEY_FILE go together"}
	}
	if err := c.validateRedis(); err != nil {
		return err
	}
	if c.DatabaseURL != "" && c.StoreFile != "" {
		return &ConfigError{Var: "SCOPEGATE_STORE_FILE", Msg: "set either SCOPEGATE_DATABASE_URL or SCOPEGATE_STORE_FILE, not both"}
	}
	return c.validateUserSync()
}

// validateUserSync checks SCOPEGATE_USER_SYNC and its interval.
func (c *Config) validateUserSync() error {
	switch c.UserSync {
	case "off":
		return nil
	case "claims":
	default:
		return &ConfigError{Var: "SCOPEGATE_USER_SYNC", Msg: fmt.Sprintf("%q is not off or claims", c.UserSync)}
	}
	if c.UserSyncInterval <= 0 {
		return &ConfigError{Var: "SCOPEGATE_USER_SYNC_INTERVAL", Msg: "must be positive"}
	}
	return nil
}

// errSyncFileStore refuses user sync without PostgreSQL (serve checks it
// once the store is settled: the demo replaces the store and turns sync
// off).
var errSyncFileStore = &ConfigError{Var: "SCOPEGATE_USER_SYNC", Msg: "claims needs SCOPEGATE_DATABASE_URL: the file store (SCOPEGATE_STORE_FILE) is declarative and never written"}

// userSyncOn reports whether users are created and refreshed from claims.
func (c *Config) userSyncOn() bool { return c.UserSync == "claims" }

// validateRedis checks the variables of SPEC §9. A malformed
// SCOPEGATE_REDIS_URL is refused whichever the backend (without quoting it:
// it may hold a password).
func (c *Config) validateRedis() error {
	if c.RateLimitBackend != "local" && c.RateLimitBackend != "redis" {
		return &ConfigError{Var: "SCOPEGATE_RATE_LIMIT_BACKEND", Msg: fmt.Sprintf("%q is not local or redis", c.RateLimitBackend)}
	}
	if c.RedisURL != "" {
		if _, err := store.ParseRedisURL(c.RedisURL); err != nil {
			return &ConfigError{Var: "SCOPEGATE_REDIS_URL", Msg: err.Error()}
		}
	} else if c.RateLimitBackend == "redis" {
		return &ConfigError{Var: "SCOPEGATE_REDIS_URL", Msg: "required with SCOPEGATE_RATE_LIMIT_BACKEND=redis"}
	}
	if c.RedisTimeout <= 0 {
		return &ConfigError{Var: "SCOPEGATE_REDIS_TIMEOUT", Msg: "must be positive"}
	}
	if _, err := store.ParseRedisErrorMode(c.RateLimitOnRedisError); err != nil {
		return &ConfigError{Var: "SCOPEGATE_RATE_LIMIT_ON_REDIS_ERROR", Msg: err.Error()}
	}
	return nil
}

// checkListenAddr reports whether addr is a listen address: [host]:port
// with a port number (or service name). Whether it can be bound is found
// out by listening (a busy port is a runtime failure, exit 1).
func checkListenAddr(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%q is not [host]:port", addr)
	}
	if strings.ContainsAny(host, " /") {
		return fmt.Errorf("%q: %q is not a host", addr, host)
	}
	if _, err := net.LookupPort("tcp", port); err != nil || port == "" {
		return fmt.Errorf("%q: %q is not a port", addr, port)
	}
	return nil
}

// checkHTTPURL reports whether s is an absolute http(s) URL with a host.
func checkHTTPURL(s string) error {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%q is not an http(s) URL", s)
	}
	return nil
}

// tokenSymbols are the characters besides letters and digits an HTTP token
// may hold.
const tokenSymbols = "!#$%&'*+-.^_`|~"

// isToken reports whether s is an HTTP token (RFC 9110 §5.6.2), as a header
// field name must be.
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte(tokenSymbols, c) >= 0:
		default:
			return false
		}
	}
	return true
}

// trustedProxies parses SCOPEGATE_TRUSTED_PROXIES (CIDRs or single addresses).
func (c *Config) trustedProxies() ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, f := range strings.Split(c.TrustedProxies, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		if p, err := netip.ParsePrefix(f); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(f)
		if err != nil {
			return nil, &ConfigError{Var: "SCOPEGATE_TRUSTED_PROXIES", Msg: fmt.Sprintf("%q is not an address or CIDR", f)}
		}
		out = append(out, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
	}
	return out, nil
}

// splitList splits a comma-separated variable, dropping blanks.
func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// testEnvPrefixes name variables that only the test harness and the
// benchmarks read (internal/pgtest's SCOPEGATE_TEST_DATABASE_URL, bench's
// SCOPEGATE_BENCH_*): checkEnv lets them through. The gateway reads no
// variable with these prefixes.
var testEnvPrefixes = []string{"SCOPEGATE_TEST_", "SCOPEGATE_BENCH_"}

// knownVars returns every variable Config reads, from its envconfig tags
// (nested structs included), sorted.
func knownVars() []string {
	var out []string
	var walk func(t reflect.Type)
	walk = func(t reflect.Type) {
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			if name := f.Tag.Get("envconfig"); name != "" {
				out = append(out, name)
			} else if f.Type.Kind() == reflect.Struct && f.IsExported() {
				walk(f.Type)
			}
		}
	}
	walk(reflect.TypeOf(Config{}))
	slices.Sort(out)
	return out
}

// checkEnv refuses a SCOPEGATE_ variable in environ that no setting reads:
// in a gateway a misspelled SCOPEGATE_TRUSTED_PROXIES must not silently mean
// the default. The error names the variable and the closest known name.
func checkEnv(environ []string) error {
	known := knownVars()
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(name, "SCOPEGATE_") || slices.Contains(known, name) ||
			slices.ContainsFunc(testEnvPrefixes, func(p string) bool { return strings.HasPrefix(name, p) }) {
			continue
		}
		msg := "unknown variable"
		if near := closest(name, known); near != "" {
			msg += "; did you mean " + near + "?"
		}
		return &ConfigError{Var: name, Msg: msg + " (every variable: docs/configuration.md)"}
	}
	return nil
}

// closest returns the name in names nearest to s by edit distance, or ""
// when none is within a third of s's length.
func closest(s string, names []string) string {
	best, bestD := "", len(s)/3+1
	for _, n := range names {
		if d := editDistance(s, n); d < bestD {
			best, bestD = n, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance between a and b (bytes).
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

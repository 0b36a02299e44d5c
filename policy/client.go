package policy

import (
	"crypto/sha256"
	"fmt"
	"net/netip"
	"sync"
	"time"
)

// Client is a compiled api_clients row: IP prefixes, origin matchers, path
// globs and the hash verifier are parsed once by [CompileClient] and never on
// the request path. A Client is immutable (apart from its internal cache) and
// safe for concurrent use; the store replaces the whole value when the row
// changes, which also drops its verified-token cache.
type Client struct {
	ID              string
	ClientKey       string
	Name            string
	Active          bool      // status is 'active'
	ExpiresAt       time.Time // zero: never expires
	RateLimitPerMin int       // -1: NULL (use the default); 0: unlimited
	rec             ClientRecord

	hash verifier

	// Each restriction is active when the stored list was non-empty; a list
	// whose entries are all malformed then matches nothing.
	restrictIPs     bool
	ips             []netip.Prefix
	restrictOrigins bool
	originSet       originSet
	restrictPaths   bool
	paths           globIndex

	verified verifiedCache
}

// Record returns the row the client was compiled from.
func (c *Client) Record() ClientRecord { return c.rec }

// CompileClient compiles a row. Malformed list entries are reported in the
// returned errors (one per entry, naming the list and the entry, never the
// hash) and never match; an unusable api_key_hash is reported too and never
// verifies; a negative rate_limit_per_min is reported and treated as NULL.
// The Client is returned in every case.
func CompileClient(rec ClientRecord) (*Client, []error) {
	c := &Client{ID: rec.ID, ClientKey: rec.ClientKey, Name: rec.Name, Active: rec.Status == "active", RateLimitPerMin: -1, rec: rec}
	if rec.ExpiresAt != nil {
		c.ExpiresAt = *rec.ExpiresAt
	}
	var errs []error
	if rec.RateLimitPerMin != nil {
		if *rec.RateLimitPerMin >= 0 {
			c.RateLimitPerMin = *rec.RateLimitPerMin
		} else {
			// Not a limit: reported, and the default applies as for NULL.
			errs = append(errs, fmt.Errorf("client %q: negative rate_limit_per_min %d: using the default", rec.ClientKey, *rec.RateLimitPerMin))
		}
	}
	var err error
	if c.hash, err = compileHash(rec.APIKeyHash); err != nil {
		errs = append(errs, fmt.Errorf("client %q: api_key_hash: %w", rec.ClientKey, err))
	}
	c.restrictIPs = len(rec.AllowedIPs) > 0
	for _, s := range rec.AllowedIPs {
		p, err := compileIP(s)
		if err != nil {
			errs = append(errs, fmt.Errorf("client %q: allowed_ips entry %q: %w", rec.ClientKey, s, err))
			continue
		}
		c.ips = append(c.ips, p)
	}
	c.restrictOrigins = len(rec.AllowedOrigins) > 0
	for _, s := range rec.AllowedOrigins {
		o, err := compileOrigin(s)
		if err != nil {
			errs = append(errs, fmt.Errorf("client %q: allowed_origins entry %q: %w", rec.ClientKey, s, err))
			continue
		}
		c.originSet.add(o)
	}
	c.restrictPaths = len(rec.AllowedPaths) > 0
	for _, s := range rec.AllowedPaths {
		g, err := compileGlob(s, false)
		if err != nil {
			errs = append(errs, fmt.Errorf("client %q: allowed_paths entry %q: %w", rec.ClientKey, s, err))
			continue
		}
		c.paths.add(g)
	}
	return c, errs
}

// checkSecret verifies the presented secret, from the verified-token cache
// for slow hashes. It does not allocate for SHA-256 hashes or cached tokens.
func (c *Client) checkSecret(secret string, now time.Time, ttl time.Duration) bool {
	if !c.hash.slow() {
		return c.hash.verify(secret)
	}
	key := sha256.Sum256(bytesOf(secret))
	if c.verified.hit(key, now) {
		return true
	}
	if !c.hash.verify(secret) {
		return false
	}
	c.verified.add(key, now.Add(ttl))
	return true
}

// ipAllowed reports check 5 of SPEC §3.
func (c *Client) ipAllowed(ip netip.Addr) bool {
	return !c.restrictIPs || prefixesContain(c.ips, ip)
}

// originAllowed reports check 6: an absent Origin always passes.
func (c *Client) originAllowed(origin string) bool {
	if !c.restrictOrigins || origin == "" {
		return true
	}
	return c.originSet.match(origin)
}

// pathAllowed reports check 7 over the decoded path.
func (c *Client) pathAllowed(method, path string) bool {
	if !c.restrictPaths {
		return true
	}
	return c.paths.first(method, path, nil) >= 0
}

// verifiedCacheMax bounds the verified tokens remembered per client.
const verifiedCacheMax = 64

// verifiedCache remembers secrets that passed a slow hash, keyed by their
// SHA-256, until a deadline. It lives inside a Client, so replacing the
// client (any change to the row) drops it.
type verifiedCache struct {
	mu sync.Mutex
	m  map[[sha256.Size]byte]time.Time
}

func (v *verifiedCache) hit(key [sha256.Size]byte, now time.Time) bool {
	v.mu.Lock()
	until, ok := v.m[key]
	if ok && !now.Before(until) {
		delete(v.m, key)
		ok = false
	}
	v.mu.Unlock()
	return ok
}

func (v *verifiedCache) add(key [sha256.Size]byte, until time.Time) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.m == nil {
		v.m = make(map[[sha256.Size]byte]time.Time)
	}
	if len(v.m) >= verifiedCacheMax {
		clear(v.m)
	}
	v.m[key] = until
}

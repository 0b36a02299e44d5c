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

// secretCheck is the outcome of [Client.checkSecret].
type secretCheck uint8

const (
	secretWrong secretCheck = iota // the secret does not match
	secretGood                     // the secret matches
	secretBusy                     // not verified: no hashing slot within the bound
)

// checkSecret verifies the presented secret. A slow hash's outcome, either
// way, is remembered by the client (keyed by the secret's SHA-256) until
// ttl passes: the hash cannot change without the client being replaced, so
// a remembered outcome never goes stale. A slow verification needs a slot
// of gate, which is shared fairly between clients and may refuse
// (secretBusy: the client's queue is full or no slot came within the
// gate's wait). It does not allocate for SHA-256 hashes or remembered
// outcomes.
func (c *Client) checkSecret(secret string, now time.Time, ttl time.Duration, gate *slowHashGate) secretCheck {
	if !c.hash.slow() {
		return outcome(c.hash.verify(secret))
	}
	key := sha256.Sum256(bytesOf(secret))
	if ok, known := c.verified.lookup(key, now); known {
		return outcome(ok)
	}
	if !gate.acquire(c.ID) {
		return secretBusy
	}
	defer gate.release(c.ID)
	// A request that waited for its turn may find the outcome stored by the
	// one before it (the same secret arriving in a burst): one slow check.
	if ok, known := c.verified.lookup(key, now); known {
		return outcome(ok)
	}
	ok := gate.verify(func() bool { return c.hash.verify(secret) })
	c.verified.add(key, ok, now.Add(ttl))
	return outcome(ok)
}

func outcome(ok bool) secretCheck {
	if ok {
		return secretGood
	}
	return secretWrong
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

// verifiedCacheMax bounds the outcomes remembered per client, of each kind.
const verifiedCacheMax = 64

// verifiedCache remembers the outcomes of slow-hash checks, keyed by the
// presented secret's SHA-256, until a deadline. Successes and failures are
// kept apart, so a flood of wrong guesses cannot push out the secret in use
// (and the same wrong secret, say from a client still holding a rotated
// key, costs one slow check per TTL, not one per request). It lives inside
// a Client, so replacing the client (any change to the row) drops it.
type verifiedCache struct {
	mu        sync.Mutex
	good, bad map[[sha256.Size]byte]time.Time
}

// lookup returns the remembered outcome for key; known is false when there
// is none or it has expired.
func (v *verifiedCache) lookup(key [sha256.Size]byte, now time.Time) (ok, known bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if hit(v.good, key, now) {
		return true, true
	}
	if hit(v.bad, key, now) {
		return false, true
	}
	return false, false
}

// hit reports whether m holds key until after now, deleting an expired entry.
func hit(m map[[sha256.Size]byte]time.Time, key [sha256.Size]byte, now time.Time) bool {
	until, ok := m[key]
	if ok && !now.Before(until) {
		delete(m, key)
		ok = false
	}
	return ok
}

// add remembers outcome ok for key until until.
func (v *verifiedCache) add(key [sha256.Size]byte, ok bool, until time.Time) {
	v.mu.Lock()
	defer v.mu.Unlock()
	m := &v.bad
	if ok {
		m = &v.good
	}
	if *m == nil {
		*m = make(map[[sha256.Size]byte]time.Time)
	}
	if len(*m) >= verifiedCacheMax {
		clear(*m)
	}
	(*m)[key] = until
}

package policy

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/scopegate/scopegate/internal/bytesconv"
)

// Client is a compiled api_clients row: IP prefixes, origin matchers, path
// globs and the hash verifier are parsed once by [CompileClient] and never on
// the request path. A Client is immutable (apart from its internal cache) and
// safe for concurrent use; the store replaces the whole value when the row
// changes, which also drops its verified-token cache.
//
// A Client is compact, so a snapshot of a million fits in memory (issue 16):
// each distinct list is compiled once and shared by every client that
// carries it (see intern.go), its strings share one allocation, and what
// only [Client.Record] needs is kept encoded in it.
type Client struct {
	ID              string
	ClientKey       string
	Name            string
	Active          bool      // status is 'active'
	ExpiresAt       time.Time // zero: never expires
	RateLimitPerMin int       // -1: NULL (use the default); 0: unlimited

	hash verifier

	// Each restriction is active when the stored list was non-empty (the
	// pointer is then set, shared with every client carrying the same
	// list); a list whose entries are all malformed then matches nothing.
	*ipList
	*originList
	*pathList

	// cold holds the rest of the row, encoded (see [Client.Record]); it
	// shares one allocation with ID, ClientKey and Name.
	cold string
}

// Flags of the encoded rest of a row (Client.cold).
const (
	coldRate         = 1 << iota // rate_limit_per_min is not NULL (raw value follows)
	coldExpires                  // expires_at is not NULL (the value is Client.ExpiresAt)
	coldLastUsed                 // last_used_at is not NULL (value follows)
	coldLastUsedUTC              // ... and was in UTC
	coldUpdatedUTC               // updated_at was in UTC
	coldHashText                 // api_key_hash is not the canonical "sha256:<lower hex>" of hash.sum: its text ends cold
	coldIPsEmpty                 // allowed_ips was an empty, non-nil list
	coldOriginsEmpty             // allowed_origins likewise
	coldPathsEmpty               // allowed_paths likewise
)

// Status returns the row's status (active, suspended, revoked). It does
// not allocate.
func (c *Client) Status() string { return c.decodeCold().status }

// LastUsed returns the row's last_used_at as loaded, zero when null. It
// does not allocate.
func (c *Client) LastUsed() time.Time { return c.decodeCold().lastUsed }

// Record returns the row the client was compiled from. It allocates (the
// lists are copies, the hash is formatted): it is for tests and one-off
// display; a listing of every client reads Status and LastUsed.
func (c *Client) Record() ClientRecord {
	d := c.decodeCold()
	rec := ClientRecord{ID: c.ID, ClientKey: c.ClientKey, Name: c.Name, Status: d.status, UpdatedAt: d.updated}
	rec.APIKeyHash = d.hashText
	if d.flags&coldHashText == 0 {
		rec.APIKeyHash = "sha256:" + hex.EncodeToString(c.hash.sum[:])
	}
	rec.AllowedIPs = listOf(c.ipList.source(), d.flags&coldIPsEmpty != 0)
	rec.AllowedOrigins = listOf(c.originList.source(), d.flags&coldOriginsEmpty != 0)
	rec.AllowedPaths = listOf(c.pathList.source(), d.flags&coldPathsEmpty != 0)
	if d.flags&coldRate != 0 {
		r := d.rate
		rec.RateLimitPerMin = &r
	}
	if d.flags&coldExpires != 0 {
		t := c.ExpiresAt
		rec.ExpiresAt = &t
	}
	if d.flags&coldLastUsed != 0 {
		t := d.lastUsed
		rec.LastUsedAt = &t
	}
	return rec
}

// SameRow reports whether rec is the row c was compiled from, last_used_at
// aside (scopegate writes that column itself): when it is, c is still what
// compiling rec would give. Lists compare as [slices.Equal] does (nil and
// empty alike). It does not allocate.
func (c *Client) SameRow(rec ClientRecord) bool {
	return c.SameContent(rec) && rec.UpdatedAt.Equal(c.decodeCold().updated)
}

// SameContent is SameRow without updated_at: for a store whose rows carry
// no such column (the declarative file stamps its load time).
func (c *Client) SameContent(rec ClientRecord) bool {
	if rec.ID != c.ID || rec.ClientKey != c.ClientKey || rec.Name != c.Name {
		return false
	}
	d := c.decodeCold()
	if rec.Status != d.status ||
		!slices.Equal(rec.AllowedIPs, c.ipList.source()) ||
		!slices.Equal(rec.AllowedOrigins, c.originList.source()) ||
		!slices.Equal(rec.AllowedPaths, c.pathList.source()) {
		return false
	}
	if (rec.RateLimitPerMin != nil) != (d.flags&coldRate != 0) || rec.RateLimitPerMin != nil && *rec.RateLimitPerMin != d.rate {
		return false
	}
	if (rec.ExpiresAt != nil) != (d.flags&coldExpires != 0) || rec.ExpiresAt != nil && !rec.ExpiresAt.Equal(c.ExpiresAt) {
		return false
	}
	if d.flags&coldHashText != 0 {
		return rec.APIKeyHash == d.hashText
	}
	return isCanonicalSHA256(rec.APIKeyHash, &c.hash.sum)
}

// isCanonicalSHA256 reports whether h is "sha256:" and the lower-case hex of
// sum. It does not allocate.
func isCanonicalSHA256(h string, sum *[sha256.Size]byte) bool {
	const digits = "0123456789abcdef"
	if len(h) != len("sha256:")+2*sha256.Size || h[:len("sha256:")] != "sha256:" {
		return false
	}
	h = h[len("sha256:"):]
	for i, b := range sum {
		if h[2*i] != digits[b>>4] || h[2*i+1] != digits[b&15] {
			return false
		}
	}
	return true
}

// source returns the stored entries of a list, nil for none.
func (l *ipList) source() []string {
	if l == nil {
		return nil
	}
	return l.src
}

func (l *originList) source() []string {
	if l == nil {
		return nil
	}
	return l.src
}

func (l *pathList) source() []string {
	if l == nil {
		return nil
	}
	return l.src
}

// listOf returns a copy of src; an empty one is nil unless the stored list
// was empty rather than absent.
func listOf(src []string, empty bool) []string {
	if len(src) == 0 {
		if empty {
			return []string{}
		}
		return nil
	}
	return slices.Clone(src)
}

// coldRow is the decoded Client.cold.
type coldRow struct {
	flags             uint16
	status            string
	rate              int
	lastUsed, updated time.Time
	hashText          string
}

// decodeCold decodes c.cold. It does not allocate.
func (c *Client) decodeCold() (d coldRow) {
	s := c.cold
	d.flags = uint16(s[0]) | uint16(s[1])<<8
	s = s[2:]
	n, w := uvarint(s)
	d.status, s = s[w:w+int(n)], s[w+int(n):]
	if d.flags&coldRate != 0 {
		v, w := varint(s)
		d.rate, s = int(v), s[w:]
	}
	readTime := func(utc bool) time.Time {
		sec, w := varint(s)
		s = s[w:]
		ns, w := uvarint(s)
		s = s[w:]
		t := time.Unix(sec, int64(ns))
		if utc {
			t = t.UTC()
		}
		return t
	}
	if d.flags&coldLastUsed != 0 {
		d.lastUsed = readTime(d.flags&coldLastUsedUTC != 0)
	}
	d.updated = readTime(d.flags&coldUpdatedUTC != 0)
	d.hashText = s
	return d
}

// appendTime appends t as zigzag seconds ([binary.AppendVarint]) and
// nanoseconds.
func appendTime(b []byte, t time.Time) []byte {
	b = binary.AppendVarint(b, t.Unix())
	return binary.AppendUvarint(b, uint64(t.Nanosecond()))
}

func isUTC(t time.Time) bool { return t.Location() == time.UTC }

// CompileClient compiles a row. Malformed list entries are reported in the
// returned errors (one per entry, naming the list and the entry, never the
// hash) and never match; an unusable api_key_hash is reported too and never
// verifies; a negative rate_limit_per_min is reported and treated as NULL.
// The Client is returned in every case. It keeps no string of rec: the
// caller's buffers may be reused.
func CompileClient(rec ClientRecord) (*Client, []error) {
	c := &Client{Active: rec.Status == "active", RateLimitPerMin: -1}
	var flags uint16
	if rec.ExpiresAt != nil {
		c.ExpiresAt = *rec.ExpiresAt
		flags |= coldExpires
	}
	var errs []error
	if rec.RateLimitPerMin != nil {
		flags |= coldRate
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
	if c.hash.kind != hashSHA256 || !isCanonicalSHA256(rec.APIKeyHash, &c.hash.sum) {
		flags |= coldHashText
	}
	if c.ipList = ipLists.get(rec.AllowedIPs, compileIPList); c.ipList != nil {
		errs = c.ipList.report(errs, rec.ClientKey, "allowed_ips")
	} else if rec.AllowedIPs != nil {
		flags |= coldIPsEmpty
	}
	if c.originList = originLists.get(rec.AllowedOrigins, compileOriginList); c.originList != nil {
		errs = c.originList.report(errs, rec.ClientKey, "allowed_origins")
	} else if rec.AllowedOrigins != nil {
		flags |= coldOriginsEmpty
	}
	if c.pathList = pathLists.get(rec.AllowedPaths, compilePathList); c.pathList != nil {
		errs = c.pathList.report(errs, rec.ClientKey, "allowed_paths")
	} else if rec.AllowedPaths != nil {
		flags |= coldPathsEmpty
	}
	if rec.LastUsedAt != nil {
		flags |= coldLastUsed
		if isUTC(*rec.LastUsedAt) {
			flags |= coldLastUsedUTC
		}
	}
	if isUTC(rec.UpdatedAt) {
		flags |= coldUpdatedUTC
	}

	// One allocation for every string: ID, ClientKey, Name, then the
	// encoded rest of the row.
	var stack [256]byte
	b := append(stack[:0], rec.ID...)
	b = append(b, rec.ClientKey...)
	b = append(b, rec.Name...)
	b = append(b, byte(flags), byte(flags>>8))
	b = binary.AppendUvarint(b, uint64(len(rec.Status)))
	b = append(b, rec.Status...)
	if rec.RateLimitPerMin != nil {
		b = binary.AppendVarint(b, int64(*rec.RateLimitPerMin))
	}
	if rec.LastUsedAt != nil {
		b = appendTime(b, *rec.LastUsedAt)
	}
	b = appendTime(b, rec.UpdatedAt)
	if flags&coldHashText != 0 {
		b = append(b, rec.APIKeyHash...)
	}
	text := string(b)
	i, j, k := len(rec.ID), len(rec.ID)+len(rec.ClientKey), len(rec.ID)+len(rec.ClientKey)+len(rec.Name)
	c.ID, c.ClientKey, c.Name, c.cold = text[:i], text[i:j], text[j:k], text[k:]
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
	key := sha256.Sum256(bytesconv.Bytes(secret))
	if ok, known := c.hash.verified.lookup(key, now); known {
		return outcome(ok)
	}
	if !gate.acquire(c.ID) {
		return secretBusy
	}
	defer gate.release(c.ID)
	// A request that waited for its turn may find the outcome stored by the
	// one before it (the same secret arriving in a burst): one slow check.
	if ok, known := c.hash.verified.lookup(key, now); known {
		return outcome(ok)
	}
	ok := gate.verify(func() bool { return c.hash.verify(secret) })
	c.hash.verified.add(key, ok, now.Add(ttl))
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
	return c.ipList == nil || prefixesContain(c.ips, ip)
}

// originAllowed reports check 6: an absent Origin always passes.
func (c *Client) originAllowed(origin string) bool {
	if c.originList == nil || origin == "" {
		return true
	}
	return c.originSet.match(origin)
}

// pathAllowed reports check 7 over the decoded path.
func (c *Client) pathAllowed(method, path string) bool {
	if c.pathList == nil {
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
// the slow hash of a Client, so replacing the client (any change to the
// row) drops it.
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

package main

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/scopegate/scopegate/policy"
)

// cmdKeys runs `scopegate keys create|rotate|revoke|suspend|activate|list|
// show` against SCOPEGATE_DATABASE_URL (SPEC §8). create and rotate print
// the token <client_key>.<secret> alone on one line on stdout, once; only its
// SHA-256 hash is stored. Notes go to stderr.
func cmdKeys(args []string, stdout, stderr io.Writer) error {
	return runGroup("keys", keysCommands, args, stdout, stderr)
}

var keysCommands = []command{
	{name: "create", usage: "--client-key K --name N [--origin O]... [--ip CIDR]... [--path GLOB]... [--rate-per-min N] [--expires-in 720h|30d]",
		summary: "create a key; prints the token <client_key>.<secret> once",
		flags: func(fs *flag.FlagSet) func([]string) (dbRun, error) {
			check := keysCreateFlags(fs)
			return func([]string) (dbRun, error) {
				in, err := check()
				if err != nil {
					return nil, err
				}
				return func(c *dbCtx) error { return keysCreate(c, in) }, nil
			}
		}},
	keyCommand("rotate", "replace the secret; prints the new token once, the old one stops working", keysRotate),
	keyCommand("revoke", "revoke the key for good (status 'revoked')", func(c *dbCtx, key string) error {
		return keysSetStatus(c, "revoke", key, "revoked")
	}),
	keyCommand("suspend", "suspend the key (status 'suspended'); `keys activate` undoes it", func(c *dbCtx, key string) error {
		return keysSetStatus(c, "suspend", key, "suspended")
	}),
	keyCommand("activate", "make a suspended key active again (a revoked key stays revoked)", func(c *dbCtx, key string) error {
		return keysSetStatus(c, "activate", key, "active")
	}),
	{name: "list", list: true, summary: "list every key: status, expiry, last use (never a secret or hash)",
		flags: func(*flag.FlagSet) func([]string) (dbRun, error) {
			return func([]string) (dbRun, error) { return keysList, nil }
		}},
	{name: "show", usage: "CLIENT_KEY", args: 1, list: true, summary: "show one key's settings (never its secret or hash)",
		flags: func(*flag.FlagSet) func([]string) (dbRun, error) {
			return func(pos []string) (dbRun, error) {
				return func(c *dbCtx) error { return keysShow(c, pos[0]) }, nil
			}
		}},
}

// keyCommand is a `keys VERB CLIENT_KEY` command.
func keyCommand(verb, summary string, run func(c *dbCtx, key string) error) command {
	return command{name: verb, usage: "CLIENT_KEY", args: 1, summary: summary,
		flags: func(*flag.FlagSet) func([]string) (dbRun, error) {
			return func(pos []string) (dbRun, error) {
				return func(c *dbCtx) error { return run(c, pos[0]) }, nil
			}
		}}
}

// stringList is a repeatable string flag: each use adds one entry, in order.
type stringList []string

func (l *stringList) String() string { return strings.Join(*l, ",") }

func (l *stringList) Set(s string) error {
	*l = append(*l, s)
	return nil
}

// lifetime is the --expires-in flag: a Go duration (720h) or whole days
// (30d).
type lifetime struct {
	d   time.Duration
	set bool
}

func (l *lifetime) String() string { return l.d.String() }

func (l *lifetime) Set(s string) error {
	d, err := parseLifetime(s)
	if err != nil {
		return err
	}
	l.d, l.set = d, true
	return nil
}

// parseLifetime reads "30d" (whole days) or a Go duration such as "720h" or
// "90m".
func parseLifetime(s string) (time.Duration, error) {
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil || n < 0 || n > 100*365 {
			return 0, fmt.Errorf("%q is not a number of days such as 30d", s)
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%q is not a duration such as 720h or 30d", s)
	}
	return d, nil
}

// keysCreateInput is a validated `keys create` command line.
type keysCreateInput struct {
	clientKey, name     string
	origins, ips, paths []string
	ratePerMin          *int
	expiresIn           time.Duration // 0: never
}

// keysCreateFlags registers the flags of `keys create` and returns the
// function that validates them once parsed.
func keysCreateFlags(fs *flag.FlagSet) func() (*keysCreateInput, error) {
	var in keysCreateInput
	var origins, ips, paths stringList
	var expires lifetime
	rate := fs.Int("rate-per-min", 0, "requests per minute (token bucket); 0 = unlimited; unset = SCOPEGATE_DEFAULT_RATE_LIMIT_PER_MIN")
	fs.Var(&expires, "expires-in", "lifetime such as 720h or 30d; unset = never expires")
	fs.StringVar(&in.clientKey, "client-key", "", "client_key (required, unique)")
	fs.StringVar(&in.name, "name", "", "human-readable name (required)")
	fs.Var(&origins, "origin", "allowed Origin (repeatable)")
	fs.Var(&ips, "ip", "allowed IP address or CIDR (repeatable)")
	fs.Var(&paths, "path", "allowed path glob, optionally prefixed by methods: 'GET,POST /api/**' (repeatable)")
	return func() (*keysCreateInput, error) {
		rateSet := false
		fs.Visit(func(f *flag.Flag) { rateSet = rateSet || f.Name == "rate-per-min" })
		switch {
		case in.clientKey == "":
			return nil, &usageError{msg: "keys create: --client-key is required"}
		case strings.TrimSpace(in.clientKey) != in.clientKey || strings.ContainsAny(in.clientKey, " \t\r\n"):
			return nil, &usageError{msg: "keys create: --client-key must not contain white space"}
		case in.name == "":
			return nil, &usageError{msg: "keys create: --name is required"}
		case rateSet && *rate < 0:
			return nil, &usageError{msg: "keys create: --rate-per-min must be 0 (unlimited) or more"}
		case expires.set && expires.d <= 0:
			return nil, &usageError{msg: "keys create: --expires-in must be a positive duration such as 720h or 30d"}
		}
		if rateSet {
			in.ratePerMin = rate
		}
		in.expiresIn = expires.d
		in.origins, in.ips, in.paths = nonNilList(origins), nonNilList(ips), nonNilList(paths)
		if err := checkClientEntries(&in); err != nil {
			return nil, err
		}
		return &in, nil
	}
}

// checkClientEntries validates every --origin, --ip and --path entry with
// the compiler the gateway uses, one flag at a time so the message names
// the flag.
func checkClientEntries(in *keysCreateInput) error {
	var bad []string
	check := func(flagName string, entries []string, rec func(string) policy.ClientRecord) {
		for _, e := range entries {
			r := rec(e)
			r.APIKeyHash = "sha256:" + strings.Repeat("0", 64)
			if _, errs := policy.CompileClient(r); len(errs) > 0 {
				bad = append(bad, fmt.Sprintf("--%s %q: %s", flagName, e, trimClientPrefix(errs[0].Error())))
			}
		}
	}
	check("origin", in.origins, func(e string) policy.ClientRecord { return policy.ClientRecord{AllowedOrigins: []string{e}} })
	check("ip", in.ips, func(e string) policy.ClientRecord { return policy.ClientRecord{AllowedIPs: []string{e}} })
	check("path", in.paths, func(e string) policy.ClientRecord { return policy.ClientRecord{AllowedPaths: []string{e}} })
	if len(bad) > 0 {
		return &usageError{msg: "keys create: invalid entries, nothing stored:\n  " + strings.Join(bad, "\n  ")}
	}
	return nil
}

// trimClientPrefix drops the `client "": ` prefix of policy.CompileClient
// errors for a record without a client_key.
func trimClientPrefix(s string) string { return strings.TrimPrefix(s, `client "": `) }

func nonNilList(l []string) []string {
	if l == nil {
		return []string{}
	}
	return l
}

// newSecret returns a new secret (32 random bytes, base64url without
// padding) and its stored form sha256:<hex>.
func newSecret() (secret, hash string, err error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", "", fmt.Errorf("generating a secret: %w", err)
	}
	secret = base64.RawURLEncoding.EncodeToString(b[:])
	sum := sha256.Sum256([]byte(secret))
	return secret, "sha256:" + hex.EncodeToString(sum[:]), nil
}

func keysCreate(c *dbCtx, in *keysCreateInput) error {
	secret, hash, err := newSecret()
	if err != nil {
		return err
	}
	var expires *time.Time
	if in.expiresIn > 0 {
		t := time.Now().Add(in.expiresIn).UTC().Truncate(time.Second)
		expires = &t
	}
	origins, _ := json.Marshal(in.origins)
	ips, _ := json.Marshal(in.ips)
	paths, _ := json.Marshal(in.paths)
	var id string
	err = c.conn.QueryRow(c.ctx, `INSERT INTO api_clients
  (client_key, name, status, api_key_hash, allowed_origins, allowed_ips, allowed_paths, rate_limit_per_min, expires_at, created_at, updated_at)
VALUES ($1, $2, 'active', $3, $4::jsonb, $5::jsonb, $6::jsonb, $7, $8, now(), now())
ON CONFLICT (client_key) DO NOTHING
RETURNING id::text`,
		in.clientKey, in.name, hash, string(origins), string(ips), string(paths), in.ratePerMin, expires).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("keys create: client_key %q already exists; choose another or use `scopegate keys rotate %s`", in.clientKey, in.clientKey)
	}
	if err != nil {
		return err
	}
	if len(in.ips) == 0 && len(in.paths) == 0 {
		fmt.Fprintln(c.stderr, "note: no --ip and no --path: the key is accepted from any address on any path")
	}
	fmt.Fprintln(c.stdout, in.clientKey+"."+secret)
	fmt.Fprintf(c.stderr, "created client %q (id %s). The token above is shown only once: store it now.\n", in.clientKey, id)
	if expires != nil {
		fmt.Fprintf(c.stderr, "it expires at %s\n", expires.Format(time.RFC3339))
	}
	return nil
}

func keysRotate(c *dbCtx, key string) error {
	secret, hash, err := newSecret()
	if err != nil {
		return err
	}
	var status string
	err = c.conn.QueryRow(c.ctx, `UPDATE api_clients SET api_key_hash = $2, updated_at = now()
WHERE client_key = $1 RETURNING status::text`, key, hash).Scan(&status)
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("keys rotate: no client with client_key %q", key)
	}
	if err != nil {
		return err
	}
	fmt.Fprintln(c.stdout, key+"."+secret)
	fmt.Fprintf(c.stderr, "rotated client %q: the previous token stops working now. The token above is shown only once: store it now.\n", key)
	if status != "active" {
		fmt.Fprintf(c.stderr, "warning: the client's status is %q, so the new token is refused until it is 'active'\n", status)
	}
	return nil
}

// keysSetStatus moves a key to status. Revocation is final: a revoked key is
// never made active or suspended again (create a new one).
func keysSetStatus(c *dbCtx, verb, key, status string) error {
	if status != "revoked" {
		var old string
		err := c.conn.QueryRow(c.ctx, `SELECT status::text FROM api_clients WHERE client_key = $1`, key).Scan(&old)
		if err == nil && old == "revoked" {
			return fmt.Errorf("keys %s: client %q is revoked, and revocation is final: create a new key with `scopegate keys create`", verb, key)
		}
	}
	old, found, err := setStatus(c, "api_clients", "client_key", "client_status", key, status)
	switch {
	case err != nil:
		return err
	case !found:
		return fmt.Errorf("keys %s: no client with client_key %q", verb, key)
	case old == status:
		fmt.Fprintf(c.stderr, "client %q was already %s: nothing changed\n", key, status)
	case status == "active":
		fmt.Fprintf(c.stderr, "client %q is active again (was %s): its token works within a second\n", key, old)
	default:
		fmt.Fprintf(c.stderr, "%s client %q (was %s): its token stops working within a second\n", status, key, old)
	}
	return nil
}

// keyRow is one client as listed and shown: never a secret or a hash.
type keyRow struct {
	ID              string     `json:"id"`
	ClientKey       string     `json:"client_key"`
	Name            string     `json:"name"`
	Status          string     `json:"status"`
	AllowedOrigins  []string   `json:"allowed_origins"`
	AllowedIPs      []string   `json:"allowed_ips"`
	AllowedPaths    []string   `json:"allowed_paths"`
	RateLimitPerMin *int32     `json:"rate_limit_per_min"`
	ExpiresAt       *time.Time `json:"expires_at"`
	LastUsedAt      *time.Time `json:"last_used_at"`
	CreatedAt       time.Time  `json:"created_at"`
	UpdatedAt       time.Time  `json:"updated_at"`
}

// rate describes the per-minute limit as the table shows it.
func (k *keyRow) rate() string {
	switch {
	case k.RateLimitPerMin == nil:
		return "default"
	case *k.RateLimitPerMin == 0:
		return "unlimited"
	}
	return fmt.Sprint(*k.RateLimitPerMin)
}

// queryKeys returns the clients whose client_key is key, or all when key is
// "", ordered by client_key.
func queryKeys(c *dbCtx, key string) ([]keyRow, error) {
	rows, err := c.conn.Query(c.ctx, `SELECT id::text, client_key, name, status::text, allowed_origins, allowed_ips, allowed_paths,
  rate_limit_per_min, expires_at, last_used_at, created_at, updated_at
FROM api_clients WHERE $1 = '' OR client_key = $1 ORDER BY client_key`, key)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (keyRow, error) {
		var k keyRow
		err := r.Scan(&k.ID, &k.ClientKey, &k.Name, &k.Status, &k.AllowedOrigins, &k.AllowedIPs, &k.AllowedPaths,
			&k.RateLimitPerMin, &k.ExpiresAt, &k.LastUsedAt, &k.CreatedAt, &k.UpdatedAt)
		return k, err
	})
}

// keysList prints one line per client: never a hash or a secret.
func keysList(c *dbCtx) error {
	list, err := queryKeys(c, "")
	if err != nil {
		return err
	}
	if list == nil {
		list = []keyRow{}
	}
	cells := make([][]string, 0, len(list))
	for _, k := range list {
		cells = append(cells, []string{k.ClientKey, k.Name, k.Status, timeOr(k.ExpiresAt, "never"), timeOr(k.LastUsedAt, "never"), k.rate()})
	}
	return c.printList(list, []string{"CLIENT_KEY", "NAME", "STATUS", "EXPIRES_AT", "LAST_USED_AT", "RATE_PER_MIN"}, cells)
}

// keysShow prints one client's settings.
func keysShow(c *dbCtx, key string) error {
	list, err := queryKeys(c, key)
	if err != nil {
		return err
	}
	if len(list) == 0 {
		return fmt.Errorf("keys show: no client with client_key %q", key)
	}
	k := list[0]
	if c.json {
		return c.printJSON(k)
	}
	any := func(l []string) string {
		if len(l) == 0 {
			return "any (no restriction)"
		}
		return strings.Join(l, ", ")
	}
	fmt.Fprintf(c.stdout, "client_key:         %s\nid:                 %s\nname:               %s\nstatus:             %s\n"+
		"allowed_origins:    %s\nallowed_ips:        %s\nallowed_paths:      %s\nrate_limit_per_min: %s\n"+
		"expires_at:         %s\nlast_used_at:       %s\ncreated_at:         %s\nupdated_at:         %s\n",
		k.ClientKey, k.ID, k.Name, k.Status, any(k.AllowedOrigins), any(k.AllowedIPs), any(k.AllowedPaths), k.rate(),
		timeOr(k.ExpiresAt, "never"), timeOr(k.LastUsedAt, "never"), timeOr(&k.CreatedAt, ""), timeOr(&k.UpdatedAt, ""))
	return nil
}

package main

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/scopegate/scopegate/policy"
)

const keysUsage = `usage:
  scopegate keys create --client-key K --name N [--origin O]... [--ip CIDR]... [--path GLOB]...
                        [--rate-per-min N] [--expires-in 720h]
  scopegate keys rotate K
  scopegate keys revoke K
  scopegate keys list`

// cmdKeys runs `scopegate keys create|rotate|revoke|list` against
// SCOPEGATE_DATABASE_URL (SPEC §8). create and rotate print the token
// <client_key>.<secret> alone on one line on stdout, once; only its SHA-256
// hash is stored. Notes go to stderr.
func cmdKeys(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return &usageError{msg: keysUsage}
	}
	sub, args := args[0], args[1:]
	var run func(ctx context.Context, conn *pgx.Conn) error
	switch sub {
	case "create":
		in, err := parseKeysCreate(args, stderr)
		if err != nil {
			return err
		}
		run = func(ctx context.Context, conn *pgx.Conn) error { return keysCreate(ctx, conn, in, stdout, stderr) }
	case "rotate", "revoke":
		if len(args) != 1 || args[0] == "" || strings.HasPrefix(args[0], "-") {
			return &usageError{msg: "usage: scopegate keys " + sub + " CLIENT_KEY"}
		}
		key := args[0]
		if sub == "rotate" {
			run = func(ctx context.Context, conn *pgx.Conn) error { return keysRotate(ctx, conn, key, stdout, stderr) }
		} else {
			run = func(ctx context.Context, conn *pgx.Conn) error { return keysRevoke(ctx, conn, key, stderr) }
		}
	case "list":
		if len(args) != 0 {
			return &usageError{msg: "usage: scopegate keys list"}
		}
		run = func(ctx context.Context, conn *pgx.Conn) error { return keysList(ctx, conn, stdout) }
	case "help", "-h", "--help":
		fmt.Fprintln(stdout, keysUsage)
		return nil
	default:
		return &usageError{msg: fmt.Sprintf("unknown keys command %q\n%s", sub, keysUsage)}
	}

	ctx := context.Background()
	conn, err := keysConnect(ctx)
	if err != nil {
		return err
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		conn.Close(cctx)
	}()
	return run(ctx, conn)
}

// keysConnect opens one connection to SCOPEGATE_DATABASE_URL. Errors never
// include the URL (it may hold a password).
func keysConnect(ctx context.Context) (*pgx.Conn, error) {
	cfg, err := loadConfig()
	if err != nil {
		return nil, err
	}
	if cfg.DatabaseURL == "" {
		return nil, &ConfigError{Var: "SCOPEGATE_DATABASE_URL", Msg: "not set: keys needs the PostgreSQL database URL"}
	}
	connCfg, err := pgx.ParseConfig(cfg.DatabaseURL)
	if err != nil {
		return nil, &ConfigError{Var: "SCOPEGATE_DATABASE_URL", Msg: "cannot parse the connection string"}
	}
	if cfg.DatabaseConnectTimeout > 0 {
		connCfg.ConnectTimeout = cfg.DatabaseConnectTimeout
	}
	conn, err := pgx.ConnectConfig(ctx, connCfg)
	if err != nil {
		return nil, fmt.Errorf("keys: cannot connect to the database (%s:%d, database %q): %w",
			connCfg.Host, connCfg.Port, connCfg.Database, err)
	}
	return conn, nil
}

// stringList is a repeatable string flag: each use adds one entry, in order.
type stringList []string

func (l *stringList) String() string { return strings.Join(*l, ",") }

func (l *stringList) Set(s string) error {
	*l = append(*l, s)
	return nil
}

// keysCreateInput is a validated `keys create` command line.
type keysCreateInput struct {
	clientKey, name       string
	origins, ips, paths   []string
	ratePerMin            *int
	expiresIn             time.Duration // 0: never
	rateSet, expiresInSet bool
}

func parseKeysCreate(args []string, stderr io.Writer) (*keysCreateInput, error) {
	fs := flag.NewFlagSet("keys create", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var in keysCreateInput
	var origins, ips, paths stringList
	rate := fs.Int("rate-per-min", 0, "requests per minute (token bucket); 0 = unlimited; unset = SCOPEGATE_DEFAULT_RATE_LIMIT_PER_MIN")
	expiresIn := fs.Duration("expires-in", 0, "lifetime such as 720h; unset = never expires")
	fs.StringVar(&in.clientKey, "client-key", "", "client_key (required, unique)")
	fs.StringVar(&in.name, "name", "", "human-readable name (required)")
	fs.Var(&origins, "origin", "allowed Origin (repeatable)")
	fs.Var(&ips, "ip", "allowed IP address or CIDR (repeatable)")
	fs.Var(&paths, "path", "allowed path glob, optionally prefixed by methods: 'GET,POST /api/**' (repeatable)")
	if err := fs.Parse(args); err != nil {
		return nil, &usageError{msg: "keys create: " + err.Error() + "\n" + keysUsage}
	}
	if fs.NArg() > 0 {
		return nil, &usageError{msg: fmt.Sprintf("keys create: unexpected argument %q\n%s", fs.Arg(0), keysUsage)}
	}
	fs.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "rate-per-min":
			in.rateSet = true
		case "expires-in":
			in.expiresInSet = true
		}
	})
	switch {
	case in.clientKey == "":
		return nil, &usageError{msg: "keys create: --client-key is required\n" + keysUsage}
	case strings.TrimSpace(in.clientKey) != in.clientKey || strings.ContainsAny(in.clientKey, " \t\r\n"):
		return nil, &usageError{msg: "keys create: --client-key must not contain white space"}
	case in.name == "":
		return nil, &usageError{msg: "keys create: --name is required\n" + keysUsage}
	case in.rateSet && *rate < 0:
		return nil, &usageError{msg: "keys create: --rate-per-min must be 0 (unlimited) or more"}
	case in.expiresInSet && *expiresIn <= 0:
		return nil, &usageError{msg: "keys create: --expires-in must be a positive duration such as 720h"}
	}
	if in.rateSet {
		in.ratePerMin = rate
	}
	in.expiresIn = *expiresIn
	in.origins, in.ips, in.paths = nonNilList(origins), nonNilList(ips), nonNilList(paths)

	// Validate every entry with the compiler the gateway uses, one flag at
	// a time so the message names the flag.
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
		return nil, &usageError{msg: "keys create: invalid entries, nothing stored:\n  " + strings.Join(bad, "\n  ")}
	}
	if len(in.ips) == 0 && len(in.paths) == 0 {
		fmt.Fprintln(stderr, "note: no --ip and no --path: the key is accepted from any address on any path")
	}
	return &in, nil
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

func keysCreate(ctx context.Context, conn *pgx.Conn, in *keysCreateInput, stdout, stderr io.Writer) error {
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
	err = conn.QueryRow(ctx, `INSERT INTO api_clients
  (client_key, name, status, api_key_hash, allowed_origins, allowed_ips, allowed_paths, rate_limit_per_min, expires_at, created_at, updated_at)
VALUES ($1, $2, 'active', $3, $4::jsonb, $5::jsonb, $6::jsonb, $7, $8, now(), now())
ON CONFLICT (client_key) DO NOTHING
RETURNING id::text`,
		in.clientKey, in.name, hash, string(origins), string(ips), string(paths), in.ratePerMin, expires).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("keys create: client_key %q already exists; choose another or use `scopegate keys rotate %s`", in.clientKey, in.clientKey)
	}
	if err != nil {
		return fmt.Errorf("keys create: %w", err)
	}
	fmt.Fprintln(stdout, in.clientKey+"."+secret)
	fmt.Fprintf(stderr, "created client %q (id %s). The token above is shown only once: store it now.\n", in.clientKey, id)
	if expires != nil {
		fmt.Fprintf(stderr, "it expires at %s\n", expires.Format(time.RFC3339))
	}
	return nil
}

func keysRotate(ctx context.Context, conn *pgx.Conn, key string, stdout, stderr io.Writer) error {
	secret, hash, err := newSecret()
	if err != nil {
		return err
	}
	var status string
	err = conn.QueryRow(ctx, `UPDATE api_clients SET api_key_hash = $2, updated_at = now()
WHERE client_key = $1 RETURNING status::text`, key, hash).Scan(&status)
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("keys rotate: no client with client_key %q", key)
	}
	if err != nil {
		return fmt.Errorf("keys rotate: %w", err)
	}
	fmt.Fprintln(stdout, key+"."+secret)
	fmt.Fprintf(stderr, "rotated client %q: the previous token stops working now. The token above is shown only once: store it now.\n", key)
	if status != "active" {
		fmt.Fprintf(stderr, "warning: the client's status is %q, so the new token is refused until it is 'active'\n", status)
	}
	return nil
}

func keysRevoke(ctx context.Context, conn *pgx.Conn, key string, stderr io.Writer) error {
	tag, err := conn.Exec(ctx, `UPDATE api_clients SET status = 'revoked', updated_at = now() WHERE client_key = $1`, key)
	if err != nil {
		return fmt.Errorf("keys revoke: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("keys revoke: no client with client_key %q", key)
	}
	fmt.Fprintf(stderr, "revoked client %q: its token stops working now\n", key)
	return nil
}

// keysList prints one line per client: never a hash or a secret.
func keysList(ctx context.Context, conn *pgx.Conn, stdout io.Writer) error {
	rows, err := conn.Query(ctx, `SELECT client_key, name, status::text, expires_at, last_used_at, rate_limit_per_min
FROM api_clients ORDER BY client_key`)
	if err != nil {
		return fmt.Errorf("keys list: %w", err)
	}
	defer rows.Close()
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "CLIENT_KEY\tNAME\tSTATUS\tEXPIRES_AT\tLAST_USED_AT\tRATE_PER_MIN")
	for rows.Next() {
		var key, name, status string
		var expires, lastUsed *time.Time
		var rate *int32
		if err := rows.Scan(&key, &name, &status, &expires, &lastUsed, &rate); err != nil {
			return fmt.Errorf("keys list: %w", err)
		}
		rateText := "default"
		switch {
		case rate == nil:
		case *rate == 0:
			rateText = "unlimited"
		default:
			rateText = fmt.Sprint(*rate)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", key, name, status, timeOr(expires, "never"), timeOr(lastUsed, "never"), rateText)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("keys list: %w", err)
	}
	return tw.Flush()
}

func timeOr(t *time.Time, none string) string {
	if t == nil {
		return none
	}
	return t.UTC().Format(time.RFC3339)
}

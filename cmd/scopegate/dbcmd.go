package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// The database commands (keys, users, grants, modules, companies, sites)
// share one shape: a group of subcommands, each with its flags, its usage
// line and what it does with one connection to SCOPEGATE_DATABASE_URL.
// Their command lines are checked before any connection is made, --help
// prints the usage and exits 0, and every database error goes through
// dbError.

// command is one subcommand of a group, such as `modules add`.
type command struct {
	name    string // "add"
	usage   string // what follows "scopegate GROUP NAME": "KEY --name NAME"
	summary string // one line for the group's usage
	args    int    // exact number of positional arguments
	list    bool   // takes --json
	// flags registers the command's flags on fs and returns the function
	// that checks the parsed command line (positional arguments in pos) and
	// returns what to run against the database.
	flags func(fs *flag.FlagSet) func(pos []string) (dbRun, error)
}

// dbRun is a checked command, ready to run on a connection.
type dbRun func(c *dbCtx) error

// dbCtx is what a database command runs with.
type dbCtx struct {
	ctx            context.Context
	conn           *pgx.Conn
	stdout, stderr io.Writer
	json           bool // --json: machine-readable output on stdout
}

// errHelp reports that usage was printed on request (exit 0).
var errHelp = errors.New("help shown")

// isHelp reports whether arg asks for help.
func isHelp(arg string) bool {
	return arg == "help" || arg == "-h" || arg == "--help" || arg == "-help"
}

// groupUsage is the usage text of a group: one line per subcommand.
func groupUsage(group string, cmds []command) string {
	var b strings.Builder
	b.WriteString("usage:\n")
	for _, c := range cmds {
		fmt.Fprintf(&b, "  scopegate %s %s %s\n", group, c.name, c.usage)
		if c.summary != "" {
			fmt.Fprintf(&b, "      %s\n", c.summary)
		}
	}
	b.WriteString("\nRun `scopegate " + group + " COMMAND --help` for a command's flags. SCOPEGATE_DATABASE_URL names the database.")
	return b.String()
}

// runGroup parses `scopegate GROUP SUB ...` and runs SUB against the
// database.
func runGroup(group string, cmds []command, args []string, stdout, stderr io.Writer) error {
	usage := groupUsage(group, cmds)
	if len(args) == 0 {
		return &usageError{msg: usage}
	}
	if isHelp(args[0]) {
		fmt.Fprintln(stdout, usage)
		return errHelp
	}
	var cmd *command
	for i := range cmds {
		if cmds[i].name == args[0] {
			cmd = &cmds[i]
		}
	}
	if cmd == nil {
		return &usageError{msg: fmt.Sprintf("unknown %s command %q\n%s", group, args[0], usage)}
	}
	name := group + " " + cmd.name
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	asJSON := false
	if cmd.list {
		fs.BoolVar(&asJSON, "json", false, "print JSON instead of a table")
	}
	check := cmd.flags(fs)
	line := strings.TrimSpace("usage: scopegate " + name + " " + cmd.usage)
	pos, err := parseInterspersed(fs, args[1:])
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(stdout, line)
		if cmd.summary != "" {
			fmt.Fprintln(stdout, "\n"+cmd.summary)
		}
		printFlags(stdout, fs)
		return errHelp
	}
	if err != nil {
		return &usageError{msg: name + ": " + err.Error() + "\n" + line}
	}
	switch {
	case len(pos) > cmd.args:
		return &usageError{msg: fmt.Sprintf("%s: unexpected argument %q\n%s", name, pos[cmd.args], line)}
	case len(pos) < cmd.args:
		return &usageError{msg: fmt.Sprintf("%s: missing argument\n%s", name, line)}
	}
	run, err := check(pos)
	if err != nil {
		return err
	}
	ctx := context.Background()
	conn, err := connectDB(ctx, group)
	if err != nil {
		return err
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		conn.Close(cctx)
	}()
	err = run(&dbCtx{ctx: ctx, conn: conn, stdout: stdout, stderr: stderr, json: asJSON})
	return dbError(name, err)
}

// parseInterspersed parses flags anywhere among the positional arguments
// ("modules add KEY --name N" as well as "modules add --name N KEY"). "--"
// ends the flags.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		if len(args) > len(rest) && args[len(args)-len(rest)-1] == "--" {
			return append(pos, rest...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// printFlags lists fs's flags, "--name" spelled with two dashes.
func printFlags(w io.Writer, fs *flag.FlagSet) {
	first := true
	fs.VisitAll(func(f *flag.Flag) {
		if first {
			fmt.Fprintln(w, "\nflags:")
			first = false
		}
		arg, help := flag.UnquoteUsage(f)
		if arg != "" {
			arg = " " + arg
		}
		fmt.Fprintf(w, "  --%s%s\n      %s\n", f.Name, arg, help)
	})
}

// connectDB opens one connection to SCOPEGATE_DATABASE_URL for command cmd.
// Errors never include the URL (it may hold a password).
func connectDB(ctx context.Context, cmd string) (*pgx.Conn, error) {
	cfg, err := loadConfig()
	if err != nil {
		return nil, err
	}
	if cfg.DatabaseURL == "" {
		return nil, &ConfigError{Var: "SCOPEGATE_DATABASE_URL", Msg: "not set: " + cmd + " needs the PostgreSQL database URL"}
	}
	connCfg, err := pgx.ParseConfig(cfg.DatabaseURL)
	if err != nil {
		// pgx redacts the password in its parse errors; say no more than that.
		return nil, &ConfigError{Var: "SCOPEGATE_DATABASE_URL", Msg: "cannot parse the connection string"}
	}
	if cfg.DatabaseConnectTimeout > 0 {
		connCfg.ConnectTimeout = cfg.DatabaseConnectTimeout
	}
	conn, err := pgx.ConnectConfig(ctx, connCfg)
	if err != nil {
		return nil, fmt.Errorf("%s: cannot connect to the database (%s:%d, database %q): %s",
			cmd, connCfg.Host, connCfg.Port, connCfg.Database, connectErrLine(err))
	}
	return conn, nil
}

// errNoSchema is what every command says about a database without the
// tables or types it reads.
const errNoSchema = "the database has no scopegate schema (or an older one): run `scopegate migrate` first"

// dbError is the one mapping of database errors to what the commands print:
// a missing table, column or type gets the migrate hint instead of
// PostgreSQL's "relation ... does not exist"; other errors are prefixed by
// the command's name. Errors that already name the command pass unchanged.
func dbError(cmd string, err error) error {
	if err == nil || errors.Is(err, errHelp) {
		return err
	}
	if missingSchema(err) {
		return fmt.Errorf("%s: %s", cmd, errNoSchema)
	}
	var ue *usageError
	var ce *ConfigError
	if errors.As(err, &ue) || errors.As(err, &ce) || strings.HasPrefix(err.Error(), cmd+":") {
		return err
	}
	return fmt.Errorf("%s: %w", cmd, err)
}

// missingSchema reports whether err is PostgreSQL's "undefined table,
// column, type or function" (what an unmigrated database answers).
func missingSchema(err error) bool {
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		return false
	}
	switch pe.Code {
	case "42P01", // undefined_table
		"42703", // undefined_column
		"42704", // undefined_object (an enum type)
		"42883": // undefined_function
		return true
	}
	return false
}

// uniqueViolation returns the constraint a unique violation broke, or "".
func uniqueViolation(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "23505" {
		return pe.ConstraintName
	}
	return ""
}

// printList prints rows under header as an aligned table, or v as indented
// JSON with --json.
func (c *dbCtx) printList(v any, header []string, rows [][]string) error {
	if c.json {
		return c.printJSON(v)
	}
	tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(header, "\t"))
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	return tw.Flush()
}

// printJSON writes v as indented JSON.
func (c *dbCtx) printJSON(v any) error {
	enc := json.NewEncoder(c.stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// timeOr formats t as RFC 3339 UTC, or none when t is nil.
func timeOr(t *time.Time, none string) string {
	if t == nil {
		return none
	}
	return t.UTC().Format(time.RFC3339)
}

// orDash is s, or "-" when s is empty (a table cell must not be blank).
func orDash(s *string) string {
	if s == nil || *s == "" {
		return "-"
	}
	return *s
}

// setStatus moves the row of table whose keyCol is key to status (cast to
// enum typ) and reports the status it had; found is false when no row has
// that key. A row already in status is left alone (updated_at unchanged), so
// the caller can say "already".
func setStatus(c *dbCtx, table, keyCol, typ, key, status string) (old string, found bool, err error) {
	q := fmt.Sprintf(`WITH old AS (SELECT id, status::text AS status FROM %[1]s WHERE %[2]s = $1 FOR UPDATE),
upd AS (UPDATE %[1]s t SET status = $2::text::%[3]s, updated_at = now() FROM old
        WHERE t.id = old.id AND old.status <> $2 RETURNING t.id)
SELECT old.status, (SELECT count(*) FROM upd) FROM old`, table, keyCol, typ)
	var n int64
	err = c.conn.QueryRow(c.ctx, q, key, status).Scan(&old, &n)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", false, nil
	}
	return old, err == nil, err
}

// checkSchema stops start-up with the migrate hint when the database
// answers but lacks scopegate's tables (the store would otherwise serve
// 503s, retrying a load that cannot succeed). An unreachable or unparsable
// database is left to the store, which retries and reports it.
func checkSchema(ctx context.Context, cfg *Config) error {
	connCfg, err := pgx.ParseConfig(cfg.DatabaseURL)
	if err != nil {
		return nil
	}
	if cfg.DatabaseConnectTimeout > 0 {
		connCfg.ConnectTimeout = cfg.DatabaseConnectTimeout
	}
	conn, err := pgx.ConnectConfig(ctx, connCfg)
	if err != nil {
		return nil
	}
	defer conn.Close(context.Background())
	var ok bool
	err = conn.QueryRow(ctx, `SELECT to_regclass('api_clients') IS NOT NULL AND to_regclass('users') IS NOT NULL
  AND to_regclass('user_scope_permissions') IS NOT NULL`).Scan(&ok)
	if err == nil && !ok {
		return errors.New("SCOPEGATE_DATABASE_URL: " + errNoSchema)
	}
	return nil
}

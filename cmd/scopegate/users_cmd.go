package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/jackc/pgx/v5"
)

// userRow is one user as listed and shown.
type userRow struct {
	ID          string     `json:"id"`
	Sub         string     `json:"authentik_sub"`
	Email       *string    `json:"email"`
	DisplayName *string    `json:"display_name"`
	Status      string     `json:"status"`
	IsActive    bool       `json:"is_active"`
	CreatedAt   time.Time  `json:"created_at"`
	Grants      []grantRow `json:"grants,omitempty"` // show only
}

// active reports what the gateway reads: status 'active' and is_active.
func (u *userRow) active() string {
	if u.Status == "active" && u.IsActive {
		return "yes"
	}
	return "no"
}

const userColumns = `u.id::text, u.authentik_sub, u.email, u.display_name, u.status::text, u.is_active, u.created_at`

func scanUser(r pgx.CollectableRow) (userRow, error) {
	var u userRow
	err := r.Scan(&u.ID, &u.Sub, &u.Email, &u.DisplayName, &u.Status, &u.IsActive, &u.CreatedAt)
	return u, err
}

// cmdUsers runs `scopegate users list|show|add` against
// SCOPEGATE_DATABASE_URL. Users normally come from the identity provider;
// add is for a first user and for tests.
func cmdUsers(args []string, stdout, stderr io.Writer) error {
	return runGroup("users", usersCommands, args, stdout, stderr)
}

var usersCommands = []command{
	{name: "list", summary: "list every user (subject, email, status)", list: true,
		flags: func(*flag.FlagSet) func([]string) (dbRun, error) {
			return func([]string) (dbRun, error) { return usersList, nil }
		}},
	{name: "show", usage: "SUB|ID", args: 1, list: true, summary: "show a user and every grant they hold",
		flags: func(*flag.FlagSet) func([]string) (dbRun, error) {
			return func(pos []string) (dbRun, error) {
				return func(c *dbCtx) error { return usersShow(c, pos[0]) }, nil
			}
		}},
	{name: "add", usage: "--sub SUB [--email EMAIL] [--name NAME]", summary: "add an active user (users.authentik_sub = the JWT's subject)",
		flags: func(fs *flag.FlagSet) func([]string) (dbRun, error) {
			sub := fs.String("sub", "", "the subject of the user's JWTs (users.authentik_sub, required)")
			email := fs.String("email", "", "email address (unique; optional)")
			name := fs.String("name", "", "display name (optional)")
			return func([]string) (dbRun, error) {
				if err := checkKey("users add: --sub", *sub); err != nil {
					return nil, err
				}
				return func(c *dbCtx) error { return usersAdd(c, *sub, *email, *name) }, nil
			}
		}},
}

func usersList(c *dbCtx) error {
	rows, err := c.conn.Query(c.ctx, `SELECT `+userColumns+` FROM users u ORDER BY u.authentik_sub`)
	if err != nil {
		return err
	}
	list, err := pgx.CollectRows(rows, scanUser)
	if err != nil {
		return err
	}
	cells := make([][]string, 0, len(list))
	for _, u := range list {
		cells = append(cells, []string{u.Sub, orDash(u.Email), orDash(u.DisplayName), u.Status, fmt.Sprint(u.IsActive), u.active(), u.ID})
	}
	return c.printList(list, []string{"SUB", "EMAIL", "NAME", "STATUS", "IS_ACTIVE", "ACTIVE", "ID"}, cells)
}

// findUser returns the user whose authentik_sub (or id) is ref.
func findUser(c *dbCtx, ref string) (userRow, error) {
	rows, err := c.conn.Query(c.ctx, `SELECT `+userColumns+` FROM users u
WHERE u.authentik_sub = $1 OR u.id::text = $1 ORDER BY (u.authentik_sub = $1) DESC LIMIT 1`, ref)
	if err != nil {
		return userRow{}, err
	}
	u, err := pgx.CollectExactlyOneRow(rows, scanUser)
	if errors.Is(err, pgx.ErrNoRows) {
		return u, fmt.Errorf("no user with authentik_sub or id %q (see `scopegate users list`)", ref)
	}
	return u, err
}

func usersShow(c *dbCtx, ref string) error {
	u, err := findUser(c, ref)
	if err != nil {
		return err
	}
	if u.Grants, err = queryGrants(c, u.ID); err != nil {
		return err
	}
	if c.json {
		return c.printJSON(u)
	}
	fmt.Fprintf(c.stdout, "id:            %s\nauthentik_sub: %s\nemail:         %s\ndisplay_name:  %s\nstatus:        %s\nis_active:     %t\nactive:        %s\ncreated_at:    %s\n\n",
		u.ID, u.Sub, orDash(u.Email), orDash(u.DisplayName), u.Status, u.IsActive, u.active(), u.CreatedAt.UTC().Format(time.RFC3339))
	if len(u.Grants) == 0 {
		fmt.Fprintln(c.stdout, "no grants (add one with `scopegate grants add`)")
		return nil
	}
	return c.printList(nil, grantHeader[1:], grantCells(u.Grants, false))
}

func usersAdd(c *dbCtx, sub, email, name string) error {
	var id string
	err := c.conn.QueryRow(c.ctx, `INSERT INTO users (id, authentik_sub, email, display_name, status, is_active, created_at, updated_at)
VALUES (gen_random_uuid(), $1, NULLIF($2, ''), NULLIF($3, ''), 'active', true, now(), now())
ON CONFLICT (authentik_sub) DO NOTHING RETURNING id::text`, sub, email, name).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("users add: a user with authentik_sub %q already exists", sub)
	}
	if uniqueViolation(err) == "users_email_key" {
		return fmt.Errorf("users add: another user already has the email %q", email)
	}
	if err != nil {
		return err
	}
	fmt.Fprintln(c.stdout, id)
	fmt.Fprintf(c.stderr, "added user %q (id %s), active, no grants yet\n", sub, id)
	return nil
}

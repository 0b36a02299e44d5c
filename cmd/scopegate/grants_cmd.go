package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"
)

// grantRow is one grant, from user_scope_permissions or (legacy) permissions.
type grantRow struct {
	ID        string `json:"id"`
	User      string `json:"user,omitempty"` // authentik_sub (grants list)
	Module    string `json:"module"`
	Action    string `json:"action"`
	ScopeType string `json:"scope_type"`
	Scope     string `json:"scope"`  // company_key or site_key (legacy: scope_id as stored)
	Source    string `json:"source"` // user_scope_permissions | permissions
}

var grantHeader = []string{"USER", "MODULE", "ACTION", "SCOPE", "SOURCE", "ID"}

func grantCells(gs []grantRow, withUser bool) [][]string {
	cells := make([][]string, 0, len(gs))
	for _, g := range gs {
		r := []string{g.Module, g.Action, g.ScopeType + ":" + g.Scope, g.Source, g.ID}
		if withUser {
			r = append([]string{g.User}, r...)
		}
		cells = append(cells, r)
	}
	return cells
}

// queryGrants returns the grants of the user with id userID, or of every
// user when userID is "", from both permission tables (the legacy one as
// stored: the gateway reads it only with SCOPEGATE_LEGACY_PERMISSIONS=true).
func queryGrants(c *dbCtx, userID string) ([]grantRow, error) {
	rows, err := c.conn.Query(c.ctx, `SELECT g.id::text, u.authentik_sub, m.module_key, g.action::text, g.scope_type::text,
       coalesce(co.company_key, s.site_key, ''), 'user_scope_permissions'
FROM user_scope_permissions g
JOIN users u ON u.id = g.user_id
JOIN modules m ON m.id = g.module_id
LEFT JOIN companies co ON co.id = g.company_id
LEFT JOIN sites s ON s.id = g.site_id
WHERE $1 = '' OR g.user_id::text = $1
UNION ALL
SELECT p.id::text, u.authentik_sub, p.module, p.action, p.scope_type, p.scope_id, 'permissions'
FROM permissions p JOIN users u ON u.id = p.user_id
WHERE $1 = '' OR p.user_id::text = $1
ORDER BY 2, 3, 4, 5, 6`, userID)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (grantRow, error) {
		var g grantRow
		err := r.Scan(&g.ID, &g.User, &g.Module, &g.Action, &g.ScopeType, &g.Scope, &g.Source)
		return g, err
	})
}

// permissionActions are the labels of the permission_action type.
var permissionActions = []string{"view", "create", "update", "delete", "manage"}

// grantSpec is a `grants add|remove` command line.
type grantSpec struct {
	user, module, action, company, site string
}

// grantFlags registers the flags of grants add and remove.
func grantFlags(fs *flag.FlagSet, verb string) func([]string) (dbRun, error) {
	var g grantSpec
	fs.StringVar(&g.user, "user", "", "the user's authentik_sub or id (required)")
	fs.StringVar(&g.module, "module", "", "module_key (or id) (required)")
	fs.StringVar(&g.action, "action", "", "one of "+strings.Join(permissionActions, ", ")+" (required)")
	fs.StringVar(&g.company, "company", "", "company_key (or id): a grant on the company and all its sites")
	fs.StringVar(&g.site, "site", "", "site_key (or id): a grant on one site")
	return func([]string) (dbRun, error) {
		cmd := "grants " + verb
		switch {
		case g.user == "" || g.module == "" || g.action == "":
			return nil, &usageError{msg: cmd + ": --user, --module and --action are required"}
		case (g.company == "") == (g.site == ""):
			return nil, &usageError{msg: cmd + ": give exactly one of --company and --site"}
		}
		if !slices.Contains(permissionActions, g.action) {
			return nil, &usageError{msg: fmt.Sprintf("%s: --action %q is not one of %s", cmd, g.action, strings.Join(permissionActions, ", "))}
		}
		if verb == "add" {
			return func(c *dbCtx) error { return grantsAdd(c, &g) }, nil
		}
		return func(c *dbCtx) error { return grantsRemove(c, &g) }, nil
	}
}

// cmdGrants runs `scopegate grants list|add|remove` against
// SCOPEGATE_DATABASE_URL (user_scope_permissions).
func cmdGrants(args []string, stdout, stderr io.Writer) error {
	return runGroup("grants", grantsCommands, args, stdout, stderr)
}

var grantsCommands = []command{
	{name: "list", usage: "[--user SUB|ID]", list: true, summary: "list grants, of one user or of all",
		flags: func(fs *flag.FlagSet) func([]string) (dbRun, error) {
			user := fs.String("user", "", "only this user's grants (authentik_sub or id)")
			return func([]string) (dbRun, error) {
				return func(c *dbCtx) error { return grantsList(c, *user) }, nil
			}
		}},
	{name: "add", usage: "--user SUB|ID --module M --action A (--company C | --site S)",
		summary: "grant a user an action on a module, on a company or a site",
		flags:   func(fs *flag.FlagSet) func([]string) (dbRun, error) { return grantFlags(fs, "add") }},
	{name: "remove", usage: "--user SUB|ID --module M --action A (--company C | --site S)",
		summary: "remove that grant",
		flags:   func(fs *flag.FlagSet) func([]string) (dbRun, error) { return grantFlags(fs, "remove") }},
}

func grantsList(c *dbCtx, user string) error {
	id := ""
	if user != "" {
		u, err := findUser(c, user)
		if err != nil {
			return err
		}
		id = u.ID
	}
	gs, err := queryGrants(c, id)
	if err != nil {
		return err
	}
	if gs == nil {
		gs = []grantRow{}
	}
	return c.printList(gs, grantHeader, grantCells(gs, true))
}

// resolveGrant returns the ids a grant names: user, module, and the company
// or the site.
func resolveGrant(c *dbCtx, g *grantSpec) (user, module, scopeType, scopeID string, err error) {
	u, err := findUser(c, g.user)
	if err != nil {
		return
	}
	if module, err = lookupID(c, modulesKind, g.module); err != nil {
		return
	}
	scopeType, kind, ref := "company", companiesKind, g.company
	if g.site != "" {
		scopeType, kind, ref = "site", sitesKind, g.site
	}
	scopeID, err = lookupID(c, kind, ref)
	return u.ID, module, scopeType, scopeID, err
}

func (g *grantSpec) String() string {
	scope := "company:" + g.company
	if g.site != "" {
		scope = "site:" + g.site
	}
	return fmt.Sprintf("%s on %s for %q at %s", g.action, g.module, g.user, scope)
}

func grantsAdd(c *dbCtx, g *grantSpec) error {
	user, module, scopeType, scopeID, err := resolveGrant(c, g)
	if err != nil {
		return err
	}
	var id string
	err = c.conn.QueryRow(c.ctx, `INSERT INTO user_scope_permissions
  (id, user_id, module_id, action, scope_type, company_id, site_id, created_at, updated_at)
VALUES (gen_random_uuid(), $1, $2, $3::text::permission_action, $4::text::scope_type,
        CASE WHEN $4 = 'company' THEN $5::uuid END, CASE WHEN $4 = 'site' THEN $5::uuid END, now(), now())
ON CONFLICT DO NOTHING RETURNING id::text`, user, module, g.action, scopeType, scopeID).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		fmt.Fprintf(c.stderr, "grant %s already exists: nothing changed\n", g)
		return nil
	}
	if err != nil {
		return err
	}
	fmt.Fprintln(c.stdout, id)
	fmt.Fprintf(c.stderr, "granted %s\n", g)
	return nil
}

func grantsRemove(c *dbCtx, g *grantSpec) error {
	user, module, scopeType, scopeID, err := resolveGrant(c, g)
	if err != nil {
		return err
	}
	tag, err := c.conn.Exec(c.ctx, `DELETE FROM user_scope_permissions
WHERE user_id = $1 AND module_id = $2 AND action::text = $3 AND scope_type::text = $4
  AND coalesce(company_id, site_id) = $5::uuid`, user, module, g.action, scopeType, scopeID)
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("grants remove: no grant %s (see `scopegate grants list --user %s`)", g, g.user)
	}
	fmt.Fprintf(c.stderr, "removed grant %s: it stops working within a second on every gateway\n", g)
	return nil
}

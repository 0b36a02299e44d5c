package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// directoryKind is one of the three tables a grant names: modules,
// companies, sites. They share list, add, deactivate and activate.
type directoryKind struct {
	group  string // command group and table: "modules"
	keyCol string // "module_key"
	noun   string // "module"
	parent bool   // sites: each belongs to a company (--company)
}

var (
	modulesKind   = directoryKind{group: "modules", keyCol: "module_key", noun: "module"}
	companiesKind = directoryKind{group: "companies", keyCol: "company_key", noun: "company"}
	sitesKind     = directoryKind{group: "sites", keyCol: "site_key", noun: "site", parent: true}
)

// directoryRow is one module, company or site as listed.
type directoryRow struct {
	ID        string    `json:"id"`
	Key       string    `json:"key"`
	Name      string    `json:"name"`
	Status    string    `json:"status"`
	Company   string    `json:"company,omitempty"` // sites: the company_key
	CreatedAt time.Time `json:"created_at"`
}

// cmdModules, cmdCompanies and cmdSites run `scopegate modules|companies|
// sites list|add|deactivate|activate` against SCOPEGATE_DATABASE_URL.
func cmdModules(args []string, stdout, stderr io.Writer) error {
	return runGroup("modules", modulesKind.commands(), args, stdout, stderr)
}

func cmdCompanies(args []string, stdout, stderr io.Writer) error {
	return runGroup("companies", companiesKind.commands(), args, stdout, stderr)
}

func cmdSites(args []string, stdout, stderr io.Writer) error {
	return runGroup("sites", sitesKind.commands(), args, stdout, stderr)
}

func (k directoryKind) commands() []command {
	addUsage := "KEY --name NAME"
	if k.parent {
		addUsage = "KEY --company COMPANY --name NAME"
	}
	return []command{
		{name: "list", summary: "list every " + k.noun + " (key, name, status)", list: true,
			flags: func(*flag.FlagSet) func([]string) (dbRun, error) {
				return func([]string) (dbRun, error) { return k.list, nil }
			}},
		{name: "add", usage: addUsage, args: 1, summary: "add an active " + k.noun,
			flags: func(fs *flag.FlagSet) func([]string) (dbRun, error) {
				name := fs.String("name", "", "human-readable name (required)")
				company := ""
				if k.parent {
					fs.StringVar(&company, "company", "", "company_key (or id) of the site's company (required)")
				}
				return func(pos []string) (dbRun, error) {
					if err := checkKey(k.group+" add", pos[0]); err != nil {
						return nil, err
					}
					if *name == "" {
						return nil, &usageError{msg: k.group + " add: --name is required"}
					}
					if k.parent && company == "" {
						return nil, &usageError{msg: k.group + " add: --company is required"}
					}
					return func(c *dbCtx) error { return k.add(c, pos[0], *name, company) }, nil
				}
			}},
		k.statusCommand("deactivate", "inactive"),
		k.statusCommand("activate", "active"),
	}
}

// statusCommand is `GROUP deactivate|activate KEY`.
func (k directoryKind) statusCommand(verb, status string) command {
	return command{name: verb, usage: "KEY", args: 1,
		summary: fmt.Sprintf("set a %s's status to '%s'", k.noun, status),
		flags: func(*flag.FlagSet) func([]string) (dbRun, error) {
			return func(pos []string) (dbRun, error) {
				return func(c *dbCtx) error {
					old, found, err := setStatus(c, k.group, k.keyCol, "record_status", pos[0], status)
					switch {
					case err != nil:
						return err
					case !found:
						return fmt.Errorf("%s %s: no %s with %s %q", k.group, verb, k.noun, k.keyCol, pos[0])
					case old == status:
						fmt.Fprintf(c.stderr, "%s %q was already %s: nothing changed\n", k.noun, pos[0], status)
					default:
						fmt.Fprintf(c.stderr, "%s %q is now %s (was %s)\n", k.noun, pos[0], status, old)
					}
					return nil
				}, nil
			}
		}}
}

// checkKey refuses an empty key or one with white space.
func checkKey(cmd, key string) error {
	if key == "" || strings.ContainsAny(key, " \t\r\n") || strings.HasPrefix(key, "-") {
		return &usageError{msg: fmt.Sprintf("%s: %q is not a key (no white space, not starting with -)", cmd, key)}
	}
	return nil
}

func (k directoryKind) list(c *dbCtx) error {
	q := fmt.Sprintf(`SELECT t.id::text, t.%s, t.name, t.status::text, t.created_at, '' FROM %s t ORDER BY 2`, k.keyCol, k.group)
	if k.parent {
		q = `SELECT t.id::text, t.site_key, t.name, t.status::text, t.created_at, c.company_key
FROM sites t JOIN companies c ON c.id = t.company_id ORDER BY 6, 2`
	}
	rows, err := c.conn.Query(c.ctx, q)
	if err != nil {
		return err
	}
	list, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (directoryRow, error) {
		var d directoryRow
		err := r.Scan(&d.ID, &d.Key, &d.Name, &d.Status, &d.CreatedAt, &d.Company)
		return d, err
	})
	if err != nil {
		return err
	}
	header := []string{strings.ToUpper(k.keyCol), "NAME", "STATUS", "ID"}
	if k.parent {
		header = []string{"SITE_KEY", "COMPANY_KEY", "NAME", "STATUS", "ID"}
	}
	cells := make([][]string, 0, len(list))
	for _, d := range list {
		if k.parent {
			cells = append(cells, []string{d.Key, d.Company, d.Name, d.Status, d.ID})
		} else {
			cells = append(cells, []string{d.Key, d.Name, d.Status, d.ID})
		}
	}
	return c.printList(list, header, cells)
}

func (k directoryKind) add(c *dbCtx, key, name, company string) error {
	var id string
	var err error
	if k.parent {
		var companyID string
		if companyID, err = lookupID(c, companiesKind, company); err != nil {
			return err
		}
		err = c.conn.QueryRow(c.ctx, `INSERT INTO sites (id, site_key, company_id, name, status, created_at, updated_at)
VALUES (gen_random_uuid(), $1, $2, $3, 'active', now(), now())
ON CONFLICT (site_key) DO NOTHING RETURNING id::text`, key, companyID, name).Scan(&id)
	} else {
		err = c.conn.QueryRow(c.ctx, fmt.Sprintf(`INSERT INTO %[1]s (id, %[2]s, name, status, created_at, updated_at)
VALUES (gen_random_uuid(), $1, $2, 'active', now(), now())
ON CONFLICT (%[2]s) DO NOTHING RETURNING id::text`, k.group, k.keyCol), key, name).Scan(&id)
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("%s add: %s %q already exists", k.group, k.keyCol, key)
	}
	if err != nil {
		return err
	}
	fmt.Fprintln(c.stdout, id)
	fmt.Fprintf(c.stderr, "added %s %q (id %s)\n", k.noun, key, id)
	return nil
}

// lookupID returns the id of the module, company or site whose key (or id)
// is ref.
func lookupID(c *dbCtx, k directoryKind, ref string) (string, error) {
	var id string
	err := c.conn.QueryRow(c.ctx, fmt.Sprintf(`SELECT id::text FROM %s WHERE %s = $1 OR id::text = $1 ORDER BY (%[2]s = $1) DESC LIMIT 1`,
		k.group, k.keyCol), ref).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", fmt.Errorf("no %s with %s or id %q (see `scopegate %s list`)", k.noun, k.keyCol, ref, k.group)
	}
	return id, err
}

package main

import (
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/scopegate/scopegate/policy"
)

// The documentation is checked against the code in both directions where a
// list is complete (every variable, every reason code, every command), and
// from the docs to the code everywhere else: a name the docs use must exist.

const repoRoot = "../.."

// docsComplete: the configuration and reason tables live in docs/ and must
// list everything (false would check only that they name nothing that does
// not exist).
const docsComplete = true

// docFiles are the markdown files a reader of the repository sees.
func docFiles(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(repoRoot, "docs", "*.md"))
	if err != nil || len(files) < 6 {
		t.Fatalf("docs/*.md: %v %v", files, err)
	}
	return append(files, filepath.Join(repoRoot, "README.md"), filepath.Join(repoRoot, "configs", "kubernetes", "README.md"))
}

func readDoc(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// docTableRows returns the cells of the first markdown table after the
// heading "# title" (any level) in text, without the header row.
func docTableRows(t *testing.T, file, text, title string) [][]string {
	t.Helper()
	m := regexp.MustCompile(`(?m)^#+ ` + regexp.QuoteMeta(title) + `\n`).FindStringIndex(text)
	if m == nil {
		t.Fatalf("%s has no heading %q", file, title)
	}
	var rows [][]string
	started := false
	for _, line := range strings.Split(text[m[1]:], "\n") {
		line = strings.TrimSpace(line)
		if !strings.HasPrefix(line, "|") {
			if started {
				break
			}
			continue
		}
		started = true
		if strings.HasPrefix(line, "|---") || strings.HasPrefix(line, "| ---") {
			continue
		}
		// Split on | not escaped as \|.
		parts := regexp.MustCompile(`\s*(?:^|[^\\])\|\s*`).Split(" "+line+" ", -1)
		var cells []string
		for _, p := range parts[1 : len(parts)-1] {
			cells = append(cells, strings.TrimSpace(p))
		}
		rows = append(rows, cells)
	}
	if len(rows) < 2 {
		t.Fatalf("%s: no table under %q", file, title)
	}
	return rows[1:]
}

var mdLinkRE = regexp.MustCompile(`\]\(([^)\s]+)\)|<(https?://[^>]+)>`)

// TestDocsLinksStayInRepo: every link of the README and docs/ points to a
// file of the repository (no http(s) link, no path leaving the checkout),
// and a link to a heading of a markdown file finds that heading.
func TestDocsLinksStayInRepo(t *testing.T) {
	root, _ := filepath.Abs(repoRoot)
	for _, f := range docFiles(t) {
		text := readDoc(t, f)
		for _, m := range mdLinkRE.FindAllStringSubmatch(text, -1) {
			target := m[1] + m[2]
			if regexp.MustCompile(`^[a-zA-Z][a-zA-Z+.-]*:`).MatchString(target) {
				t.Errorf("%s: link %q leaves the repository", f, target)
				continue
			}
			file, anchor, _ := strings.Cut(target, "#")
			dest := f
			if file != "" {
				dest = filepath.Join(filepath.Dir(f), file)
				abs, _ := filepath.Abs(dest)
				if !strings.HasPrefix(abs, root+string(filepath.Separator)) && abs != root {
					t.Errorf("%s: link %q leaves the repository", f, target)
					continue
				}
				if _, err := os.Stat(dest); err != nil {
					t.Errorf("%s: link %q: %v", f, target, err)
					continue
				}
			}
			if anchor != "" && strings.HasSuffix(dest, ".md") && !slices.Contains(headingSlugs(readDoc(t, dest)), anchor) {
				t.Errorf("%s: link %q: no heading #%s in %s", f, target, anchor, dest)
			}
		}
	}
}

// headingSlugs are GitHub's anchors of text's headings.
func headingSlugs(text string) []string {
	var out []string
	for _, m := range regexp.MustCompile(`(?m)^#+ (.+)$`).FindAllStringSubmatch(text, -1) {
		s := strings.ToLower(strings.TrimSpace(m[1]))
		s = regexp.MustCompile(`[^a-z0-9 _-]`).ReplaceAllString(s, "")
		out = append(out, strings.ReplaceAll(s, " ", "-"))
	}
	return out
}

// TestDocsConfiguration: docs/configuration.md lists every Config variable
// with its exact default, and nothing else.
func TestDocsConfiguration(t *testing.T) {
	const file = "docs/configuration.md"
	rows := docTableRows(t, file, readDoc(t, filepath.Join(repoRoot, file)), "Configuration")
	got := map[string]string{}
	for _, r := range rows {
		if len(r) != 3 || r[2] == "" {
			t.Errorf("row %q: want variable | default | meaning", r)
			continue
		}
		got[strings.Trim(r[0], "`")] = r[1]
	}
	typ := reflect.TypeOf(Config{})
	for i := 0; i < typ.NumField(); i++ {
		f := typ.Field(i)
		if !f.IsExported() {
			continue // derived, not a variable
		}
		name := f.Tag.Get("envconfig")
		def := "—"
		if d := f.Tag.Get("default"); d != "" {
			def = "`" + d + "`"
		}
		cell, ok := got[name]
		switch {
		case !ok && docsComplete:
			t.Errorf("%s lacks %s (Config.%s)", file, name, f.Name)
		case !ok:
		case cell != def:
			t.Errorf("%s: %s default %q, want %q", file, name, cell, def)
		}
		delete(got, name)
	}
	for name := range got {
		t.Errorf("%s lists %s, which is not a Config field", file, name)
	}
}

// TestDocsReasonCodes: docs/reason-codes.md is policy.AllReasons(), each
// with its status.
func TestDocsReasonCodes(t *testing.T) {
	const file = "docs/reason-codes.md"
	rows := docTableRows(t, file, readDoc(t, filepath.Join(repoRoot, file)), "Reason codes")
	got := map[string]string{}
	for _, r := range rows {
		if len(r) != 3 || r[2] == "" {
			t.Errorf("row %q: want reason | status | meaning", r)
			continue
		}
		got[strings.Trim(r[0], "`")] = r[1]
	}
	for _, r := range policy.AllReasons() {
		s, ok := got[r.String()]
		switch {
		case !ok && docsComplete:
			t.Errorf("%s lacks %s", file, r)
		case !ok:
		case s != strconv.Itoa(r.Status()):
			t.Errorf("%s: %s status %s, want %d", file, r, s, r.Status())
		}
		delete(got, r.String())
	}
	for code := range got {
		t.Errorf("%s lists reason %s, which policy does not have", file, code)
	}
}

var (
	statusReasonRE = regexp.MustCompile("\\b[45]\\d\\d `([a-z_]+)`")
	commandRE      = regexp.MustCompile("`scopegate ([a-z]+)(?: ([a-z]+))?")
)

// TestDocsNameRealThings: every SCOPEGATE_ variable the docs name is read by
// the gateway (or is a documented test variable), every "4xx `code`" is a
// reason code, and every `scopegate COMMAND [SUB]` exists; docs/commands.md
// names every command and subcommand.
func TestDocsNameRealThings(t *testing.T) {
	// bad_request is the proxy's answer to unparsable HTTP, before any
	// policy; auth_unavailable is made by the shipped nginx recipe.
	reasons := map[string]bool{"bad_request": true, "auth_unavailable": true}
	for _, r := range policy.AllReasons() {
		reasons[r.String()] = true
	}
	top := map[string]bool{}
	for _, c := range commands() {
		top[c.name] = true
	}
	groups := map[string][]command{"keys": keysCommands, "users": usersCommands, "grants": grantsCommands,
		"modules": modulesKind.commands(), "companies": companiesKind.commands(), "sites": sitesKind.commands()}
	for _, f := range docFiles(t) {
		text := readDoc(t, f)
		checkKnownVars(t, f, text)
		for _, m := range statusReasonRE.FindAllStringSubmatch(text, -1) {
			if !reasons[m[1]] {
				t.Errorf("%s: %q is not a reason code", f, m[0])
			}
		}
		for _, m := range commandRE.FindAllStringSubmatch(text, -1) {
			if !top[m[1]] {
				t.Errorf("%s: `scopegate %s` is not a command", f, m[1])
				continue
			}
			if subs, ok := groups[m[1]]; ok && m[2] != "" && !slices.ContainsFunc(subs, func(c command) bool { return c.name == m[2] }) {
				t.Errorf("%s: `scopegate %s %s` is not a command", f, m[1], m[2])
			}
		}
	}
	ref := readDoc(t, filepath.Join(repoRoot, "docs", "commands.md"))
	for name := range top {
		if !strings.Contains(ref, "`scopegate "+name) {
			t.Errorf("docs/commands.md does not describe `scopegate %s`", name)
		}
	}
	for g, subs := range groups {
		for _, s := range subs {
			if !regexp.MustCompile(`scopegate ` + g + ` [a-z|\\]*\b` + s.name + `\b`).MatchString(ref) {
				t.Errorf("docs/commands.md does not describe `scopegate %s %s`", g, s.name)
			}
		}
	}
}

// TestPackageImports: no package imports what docs/design.md's table
// forbids it (policy has no HTTP server, database driver or logger; proxy
// never talks to PostgreSQL; ...).
func TestPackageImports(t *testing.T) {
	const file = "docs/design.md"
	rows := docTableRows(t, file, readDoc(t, filepath.Join(repoRoot, file)), "What each package may import")
	for _, r := range rows {
		pkg := strings.Trim(r[0], "`")
		var forbidden []string
		for _, f := range strings.Split(r[1], ",") {
			forbidden = append(forbidden, strings.Trim(strings.TrimSpace(f), "`"))
		}
		files, _ := filepath.Glob(filepath.Join(repoRoot, pkg, "*.go"))
		if len(files) == 0 {
			t.Errorf("%s names package %s, which has no Go files", file, pkg)
		}
		for _, gf := range files {
			if strings.HasSuffix(gf, "_test.go") {
				continue
			}
			af, err := parser.ParseFile(token.NewFileSet(), gf, nil, parser.ImportsOnly)
			if err != nil {
				t.Fatal(err)
			}
			for _, imp := range af.Imports {
				p, _ := strconv.Unquote(imp.Path.Value)
				for _, bad := range forbidden {
					if p == bad || strings.HasPrefix(p, bad+"/") {
						t.Errorf("%s imports %s, which %s forbids for %s", gf, p, file, pkg)
					}
				}
			}
		}
	}
}

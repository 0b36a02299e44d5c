package main

import (
	"bufio"
	"io"
	"net/http"
	"os"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/scopegate/scopegate/policy"
)

func readREADME(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// readmeTableRows returns the rows ("| a | b | c |" lines, cells trimmed)
// of the markdown table that follows the heading "## title".
func readmeTableRows(t *testing.T, readme, title string) [][]string {
	t.Helper()
	i := strings.Index(readme, "\n## "+title+"\n")
	if i < 0 {
		t.Fatalf("README.md has no section %q", title)
	}
	section := readme[i+len(title)+5:]
	if j := strings.Index(section, "\n## "); j >= 0 {
		section = section[:j]
	}
	var rows [][]string
	inTable := false
	sc := bufio.NewScanner(strings.NewReader(section))
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "|") {
			if inTable {
				break
			}
			continue
		}
		inTable = true
		cells := strings.Split(strings.Trim(line, "|"), "|")
		for k := range cells {
			cells[k] = strings.TrimSpace(cells[k])
		}
		if strings.HasPrefix(cells[0], "---") {
			continue
		}
		rows = append(rows, cells)
	}
	if len(rows) < 2 {
		t.Fatalf("README.md section %q has no table", title)
	}
	return rows[1:] // without the header row
}

// TestReadmeConfigTable: the configuration table lists every Config
// variable with its exact default, and nothing else.
func TestReadmeConfigTable(t *testing.T) {
	rows := readmeTableRows(t, readREADME(t), "Configuration")
	got := map[string]string{}
	for _, r := range rows {
		if len(r) != 3 || r[2] == "" {
			t.Errorf("row %q: want variable | default | meaning", r)
			continue
		}
		got[strings.Trim(r[0], "`")] = r[1]
	}
	typ := reflect.TypeOf(Config{})
	want := map[string]bool{}
	for i := 0; i < typ.NumField(); i++ {
		f := typ.Field(i)
		if !f.IsExported() {
			continue // derived, not a variable
		}
		name := f.Tag.Get("envconfig")
		want[name] = true
		def := "—"
		if d := f.Tag.Get("default"); d != "" {
			def = "`" + d + "`"
		}
		cell, ok := got[name]
		switch {
		case !ok:
			t.Errorf("README.md configuration table lacks %s (Config.%s)", name, f.Name)
		case cell != def:
			t.Errorf("README.md: %s default %q, want %q", name, cell, def)
		}
	}
	for name := range got {
		if !want[name] {
			t.Errorf("README.md lists %s, which is not a Config field", name)
		}
	}
}

// TestReadmeReasonTable: the reason codes table is policy.AllReasons(),
// with each reason's status.
func TestReadmeReasonTable(t *testing.T) {
	rows := readmeTableRows(t, readREADME(t), "Reason codes")
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
		case !ok:
			t.Errorf("README.md reason table lacks %s", r)
		case s != strconv.Itoa(r.Status()):
			t.Errorf("README.md: %s status %s, want %d", r, s, r.Status())
		}
		delete(got, r.String())
	}
	for code := range got {
		t.Errorf("README.md lists reason %s, which policy does not have", code)
	}
}

// TestReadmeQuickStart: the two commands of the quick start stay exactly
// as .ci/run and new users run them.
func TestReadmeQuickStart(t *testing.T) {
	readme := readREADME(t)
	for _, cmd := range []string{"    go run ./cmd/scopegate demo\n", "    go test -race ./...\n"} {
		if !strings.Contains(readme, cmd) {
			t.Errorf("README.md lacks the command line %q", cmd)
		}
	}
}

var metricFamilyRE = regexp.MustCompile(`(?m)^(scopegate_[a-z_]+?)(?:_bucket|_sum|_count)?(?:\{| )`)

// TestReadmeMetrics: every scopegate_ metric family a gateway on
// PostgreSQL exposes on /metrics is listed in the README's metrics table.
func TestReadmeMetrics(t *testing.T) {
	env := parityEnv(t)
	env["SCOPEGATE_DATABASE_URL"] = parityDB(t)
	// The Redis series exist from start-up, before any call: no Redis is
	// needed here.
	env["SCOPEGATE_RATE_LIMIT_BACKEND"] = "redis"
	env["SCOPEGATE_REDIS_URL"] = "redis://127.0.0.1:1/0"
	g := startGateway(t, env)
	resp, err := http.Get("http://" + g.admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	families := map[string]bool{}
	for _, m := range metricFamilyRE.FindAllStringSubmatch(string(body), -1) {
		families[m[1]] = true
	}
	if len(families) < 10 {
		t.Fatalf("only %d scopegate_ families on /metrics:\n%s", len(families), body)
	}
	for _, want := range []string{"# TYPE scopegate_decisions_total counter", "# TYPE scopegate_decision_duration_seconds histogram"} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %q (metadata)", want)
		}
	}
	listed := map[string]bool{}
	for _, r := range readmeTableRows(t, readREADME(t), "Metrics") {
		name := strings.Trim(r[0], "`")
		if i := strings.IndexByte(name, '{'); i >= 0 {
			name = name[:i]
		}
		listed[name] = true
	}
	var missing []string
	for f := range families {
		if !listed[f] {
			missing = append(missing, f)
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Errorf("README.md metrics table lacks %v", missing)
	}
	for f := range listed {
		if !families[f] {
			t.Errorf("README.md lists metric %s, which /metrics does not expose", f)
		}
	}
}

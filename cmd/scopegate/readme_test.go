package main

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
)

func readREADME(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
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

// TestDocsMetrics: every scopegate_ metric family a gateway on PostgreSQL
// exposes on /metrics is listed in docs/metrics.md, and nothing else.
func TestDocsMetrics(t *testing.T) {
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
	for _, r := range docTableRows(t, "docs/metrics.md", readDoc(t, filepath.Join(repoRoot, "docs", "metrics.md")), "Metrics") {
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
		t.Errorf("docs/metrics.md lacks %v", missing)
	}
	for f := range listed {
		if !families[f] {
			t.Errorf("docs/metrics.md lists metric %s, which /metrics does not expose", f)
		}
	}
}

// TestReadmeFrontPage: the README stays a front page (under 200 lines), and
// every page of docs/ is linked from it or from docs/README.md.
func TestReadmeFrontPage(t *testing.T) {
	readme := readREADME(t)
	if n := strings.Count(readme, "\n"); n >= 200 {
		t.Errorf("README.md has %d lines; keep it a front page under 200 and move reference material to docs/", n)
	}
	index := readDoc(t, filepath.Join(repoRoot, "docs", "README.md"))
	pages, _ := filepath.Glob(filepath.Join(repoRoot, "docs", "*.md"))
	for _, p := range pages {
		name := filepath.Base(p)
		if name != "README.md" && !strings.Contains(readme, "(docs/"+name) && !strings.Contains(index, "("+name) {
			t.Errorf("neither README.md nor docs/README.md links to docs/%s", name)
		}
	}
}

package main

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// chartReport is two rounds of four scenarios, one of them named with
// markup, for the chart tests.
func chartReport() *report {
	rd := func(n int, apikey float64) roundResult {
		return round1(n, []scenarioResult{
			{Name: "direct", Requests: 1000, RPS: 10000, P99us: 100},
			{Name: "proxy-apikey", Requests: 500, RPS: apikey, P99us: 400},
			{Name: "nginx-proxy", Requests: 600, RPS: 6000, P99us: 300, Errors: 2},
			{Name: `odd<&>"name`, Requests: 100, RPS: 1000, P99us: 900},
		})
	}
	r := &report{Machine: machine{Cores: 2, CPUModel: "test <cpu>", GoVersion: "go1.26"}, Store: "file", Conns: 4, Duration: "1s",
		Rounds: []roundResult{rd(1, 5000), rd(2, 4000)}}
	r.summarize()
	return r
}

// TestChartSVG: the chart is well-formed XML with one group per scenario,
// the median ratio to direct of each, whiskers for the spread, p99 labels,
// errors shown, and every name escaped.
func TestChartSVG(t *testing.T) {
	svg := chartReport().svg()
	dec := xml.NewDecoder(bytes.NewReader(svg))
	groups := 0
	var texts []string
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("not well-formed: %v\n%s", err, svg)
		}
		switch v := tok.(type) {
		case xml.StartElement:
			if v.Name.Local == "g" {
				groups++
			}
		case xml.CharData:
			texts = append(texts, string(v))
		}
	}
	all := strings.Join(texts, "|")
	if groups != 4 {
		t.Errorf("%d scenario groups, want 4", groups)
	}
	// proxy-apikey: 50% then 40% of direct: median 45%, whisker 40–50%.
	for _, want := range []string{"|100%|", "|45%|", "|60%|", "proxy-apikey: 45% of direct (min 40%, max 50%), p99 400 µs", `odd<&>"name`, "4 errors", "test <cpu>"} {
		if !strings.Contains(all, want) {
			t.Errorf("chart text lacks %q", want)
		}
	}
	if bytes.Contains(svg, []byte(`odd<&>`)) {
		t.Error("a scenario name is not escaped")
	}
}

// TestChartOfResults: -chart draws the chart of a results file beside it.
func TestChartOfResults(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "results.json")
	b, _ := json.Marshal(chartReport())
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := writeChartOf(p); err != nil {
		t.Fatal(err)
	}
	svg, err := os.ReadFile(filepath.Join(dir, "results.svg"))
	if err != nil || !bytes.HasPrefix(svg, []byte("<svg ")) {
		t.Fatalf("results.svg: %v %.40s", err, svg)
	}
	if err := writeChartOf(filepath.Join(dir, "missing.json")); err == nil {
		t.Error("a missing file drew a chart")
	}
}

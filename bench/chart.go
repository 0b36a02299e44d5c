package main

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
)

// writeChartOf reads a results JSON file (-out) and writes its chart
// beside it.
func writeChartOf(jsonPath string) error {
	b, err := os.ReadFile(jsonPath)
	if err != nil {
		return err
	}
	var rep report
	if err := json.Unmarshal(b, &rep); err != nil {
		return fmt.Errorf("%s: %w", jsonPath, err)
	}
	if len(rep.Rounds) == 0 {
		return fmt.Errorf("%s: no rounds", jsonPath)
	}
	out := svgPath(jsonPath)
	if err := os.WriteFile(out, rep.svg(), 0o644); err != nil {
		return err
	}
	fmt.Fprintln(os.Stderr, "wrote", out)
	return nil
}

// svgPath is where the chart of a run goes: beside the JSON, with .svg.
func svgPath(jsonPath string) string {
	return strings.TrimSuffix(jsonPath, filepath.Ext(jsonPath)) + ".svg"
}

// chartRow is one scenario as the chart draws it.
type chartRow struct {
	name               string
	ratio, lo, hi      float64 // throughput as a fraction of direct: median, min, max over rounds
	p99us              float64 // median p99 over rounds
	errors             int64
	hasRatio, isDirect bool
}

// chartRows gathers each scenario over every round, in the order of round 1.
func (r *report) chartRows() []chartRow {
	idx := map[string]int{}
	var rows []chartRow
	ratios, p99s := map[string][]float64{}, map[string][]float64{}
	for _, rd := range r.Rounds {
		for _, s := range rd.Scenarios {
			if _, ok := idx[s.Name]; !ok {
				idx[s.Name] = len(rows)
				rows = append(rows, chartRow{name: s.Name, isDirect: s.Name == "direct"})
			}
			if s.RatioToDirect > 0 {
				ratios[s.Name] = append(ratios[s.Name], s.RatioToDirect)
			}
			p99s[s.Name] = append(p99s[s.Name], s.P99us)
			rows[idx[s.Name]].errors += s.Errors
		}
	}
	for i := range rows {
		row := &rows[i]
		if v := ratios[row.name]; len(v) > 0 {
			row.ratio = median(v) // sorts v
			row.lo, row.hi, row.hasRatio = v[0], v[len(v)-1], true
		}
		row.p99us = median(p99s[row.name])
	}
	return rows
}

// svg draws the run as a self-contained SVG chart: throughput of each
// scenario as a percentage of direct (bar: median over rounds; whisker:
// min–max) beside its p99 latency, so the comparison reads at a glance.
func (r *report) svg() []byte {
	rows := r.chartRows()
	const (
		W      = 960
		labelW = 190
		rowH   = 26
		top    = 74
		gap    = 40
	)
	leftW := (W - labelW - gap - 20) * 3 / 5
	rightW := W - labelW - gap - 20 - leftW
	x0, x1 := float64(labelW), float64(labelW+leftW+gap)
	H := top + rowH*len(rows) + 40

	maxRatio := 1.0
	maxP99 := 0.0
	for _, row := range rows {
		maxRatio = math.Max(maxRatio, row.hi)
		maxP99 = math.Max(maxP99, row.p99us)
	}
	maxRatio = math.Ceil(maxRatio*4) / 4
	maxP99 = niceCeil(maxP99)

	var b bytes.Buffer
	esc := func(s string) string {
		var e bytes.Buffer
		_ = xml.EscapeText(&e, []byte(s))
		return e.String()
	}
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 %d %d" width="%d" height="%d" font-family="system-ui, -apple-system, Segoe UI, Roboto, Helvetica, Arial, sans-serif" font-size="12">`+"\n", W, H, W, H)
	fmt.Fprintf(&b, `<rect width="%d" height="%d" fill="#fff"/>`+"\n", W, H)
	rounds := len(r.Rounds)
	fmt.Fprintf(&b, `<text x="12" y="22" font-size="16" font-weight="600" fill="#1d2733">scopegate benchmark: throughput and p99 by scenario</text>`+"\n")
	fmt.Fprintf(&b, `<text x="12" y="40" fill="#66727f">%s</text>`+"\n", esc(fmt.Sprintf(
		"%d cores, %s, %s; store %s, %d connections, %s per scenario, %d round(s): bars are medians, whiskers min–max",
		r.Machine.Cores, r.Machine.CPUModel, r.Machine.GoVersion, r.Store, r.Conns, r.Duration, rounds)))
	fmt.Fprintf(&b, `<text x="%.0f" y="62" font-weight="600" fill="#1d2733">requests/s, %% of direct (higher is better)</text>`+"\n", x0)
	fmt.Fprintf(&b, `<text x="%.0f" y="62" font-weight="600" fill="#1d2733">p99 latency, µs (lower is better)</text>`+"\n", x1)

	// Grid lines and their labels.
	bottom := float64(top + rowH*len(rows))
	step := 0.25
	if maxRatio > 1.5 {
		step = 0.5
	}
	for v := 0.0; v <= maxRatio+1e-9; v += step {
		x := x0 + v/maxRatio*float64(leftW)
		fmt.Fprintf(&b, `<line x1="%.1f" x2="%.1f" y1="%d" y2="%.0f" stroke="#e8ecf0"/>`, x, x, top-4, bottom)
		fmt.Fprintf(&b, `<text x="%.1f" y="%.0f" text-anchor="middle" fill="#66727f">%.0f%%</text>`+"\n", x, bottom+16, v*100)
	}
	for i := 0; i <= 4; i++ {
		f := float64(i) / 4
		x := x1 + f*float64(rightW)
		fmt.Fprintf(&b, `<line x1="%.1f" x2="%.1f" y1="%d" y2="%.0f" stroke="#e8ecf0"/>`, x, x, top-4, bottom)
		fmt.Fprintf(&b, `<text x="%.1f" y="%.0f" text-anchor="middle" fill="#66727f">%s</text>`+"\n", x, bottom+16, esc(fmt.Sprintf("%.0f", f*maxP99)))
	}
	if maxRatio > 1 { // the 100% line: as fast as direct
		x := x0 + float64(leftW)/maxRatio
		fmt.Fprintf(&b, `<line x1="%.1f" x2="%.1f" y1="%d" y2="%.0f" stroke="#66727f" stroke-dasharray="3 3"/>`+"\n", x, x, top-4, bottom)
	}

	for i, row := range rows {
		y := float64(top + i*rowH)
		colour := barColour(row.name)
		fmt.Fprintf(&b, `<g class="scenario"><title>%s</title>`, esc(fmt.Sprintf("%s: %.0f%% of direct (min %.0f%%, max %.0f%%), p99 %.0f µs, %d errors",
			row.name, row.ratio*100, row.lo*100, row.hi*100, row.p99us, row.errors)))
		fmt.Fprintf(&b, `<text x="%d" y="%.1f" text-anchor="end" fill="#1d2733">%s</text>`, labelW-10, y+rowH/2+4, esc(row.name))
		if row.hasRatio {
			w := row.ratio / maxRatio * float64(leftW)
			fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%d" rx="2" fill="%s"/>`, x0, y+5, w, rowH-10, colour)
			if row.hi > row.lo {
				lx, hx := x0+row.lo/maxRatio*float64(leftW), x0+row.hi/maxRatio*float64(leftW)
				fmt.Fprintf(&b, `<line x1="%.1f" x2="%.1f" y1="%.1f" y2="%.1f" stroke="#1d2733"/>`, lx, hx, y+rowH/2, y+rowH/2)
			}
			fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" fill="#1d2733">%.0f%%</text>`, x0+math.Max(w, row.hi/maxRatio*float64(leftW))+6, y+rowH/2+4, row.ratio*100)
		}
		if maxP99 > 0 {
			w := row.p99us / maxP99 * float64(rightW)
			fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%d" rx="2" fill="%s" opacity="0.55"/>`, x1, y+5, w, rowH-10, colour)
			fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" fill="#1d2733">%s</text>`, x1+w+6, y+rowH/2+4, esc(fmt.Sprintf("%.0f", row.p99us)))
		}
		if row.errors > 0 {
			fmt.Fprintf(&b, `<text x="%d" y="%.1f" text-anchor="end" fill="#d64545">%d errors</text>`, W-8, y+rowH/2+4, row.errors)
		}
		b.WriteString("</g>\n")
	}
	b.WriteString("</svg>\n")
	return b.Bytes()
}

// barColour tells the kinds of scenario apart: the direct baseline, the
// gateway's own, the reference floors and nginx.
func barColour(name string) string {
	switch {
	case name == "direct":
		return "#7f8c8d"
	case strings.HasPrefix(name, "nginx"):
		return "#16a085"
	case strings.HasPrefix(name, "fasthttp"):
		return "#b7950b"
	case strings.HasSuffix(name, "@baseline"):
		return "#8e44ad"
	}
	return "#2f6fdb"
}

// niceCeil rounds v up to 1, 2 or 5 times a power of ten.
func niceCeil(v float64) float64 {
	if v <= 0 {
		return 0
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= v {
			return m * p
		}
	}
	return 10 * p
}

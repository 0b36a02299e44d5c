package main

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/scopegate/scopegate/internal/testproc"
)

// artefactsEnv is SCOPEGATE_TEST_ARTIFACTS, read before the tests clear
// the SCOPEGATE_ variables.
var artefactsEnv = os.Getenv("SCOPEGATE_TEST_ARTIFACTS")

// artefactDir is where browser tests write their screenshots:
// SCOPEGATE_TEST_ARTIFACTS when set, else the system's temporary directory.
func artefactDir(t *testing.T) string {
	if d := artefactsEnv; d != "" {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		return d
	}
	return os.TempDir()
}

// TestConsoleInBrowser loads the operator page from a real serve in
// headless Chromium: the page asks for the admin token, then shows a
// fixture client, a denial reason, a route and the decisions chart; a denial
// sent meanwhile arrives through the live tail; the client named with a
// <script> and a path holding markup are shown as text and never run; the
// page fits a phone's width. Screenshots at 1280 px and at 390 px are
// written as artefacts. Skipped (loudly) without Chromium, failed under
// CI=true.
func TestConsoleInBrowser(t *testing.T) {
	chromium := testproc.Chromium(t)
	f := consoleFixture()
	env := parityEnv(t)
	env["SCOPEGATE_STORE_FILE"] = fixtureStoreFile(t, f)
	env["SCOPEGATE_ADMIN_TOKEN"] = consoleAdminToken
	g := startGateway(t, env)
	sendConsoleMix(t, g, f, consoleMix())
	// A path with markup in it, sent raw (an HTTP client would escape it).
	rawDenial(t, g.traffic, "/api/<script>window.__xss=3</script>", "xss-path")

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	actx, cancelAlloc := chromedp.NewExecAllocator(ctx,
		chromedp.ExecPath(chromium),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
	)
	defer cancelAlloc()
	bctx, cancelBrowser := chromedp.NewContext(actx)
	defer cancelBrowser() // stops the Chromium it started

	page := "http://" + g.admin + "/"
	poll := func(expr string) chromedp.Action[chromedp.Void] {
		return void(chromedp.Poll[bool](expr, chromedp.WithPollingTimeout(30*time.Second)))
	}
	err := chromedp.Do(bctx,
		chromedp.Navigate(page),
		chromedp.WaitVisible(chromedp.ID("token-input")),
		chromedp.SendKeys(chromedp.ID("token-input"), consoleAdminToken),
		chromedp.Click(chromedp.CSS("#token-form button")),
		poll(`document.body.dataset.loaded === "true" && document.querySelectorAll("#tail tbody tr").length > 0 && document.getElementById("live-pill").textContent === "live tail on"`),
	)
	if err != nil {
		t.Fatalf("loading the page: %v\n%s", err, pageDebug(bctx, t))
	}

	// A denial sent now reaches the open page through the live tail.
	r, _ := http.NewRequest("GET", g.base+"/api/live-check", nil)
	r.Header.Set("X-Request-Id", "browser-live-1")
	if resp, err := http.DefaultClient.Do(r); err == nil {
		resp.Body.Close()
	}
	if err := chromedp.Do(bctx, poll(`document.getElementById("tail").textContent.includes("browser-live-1")`)); err != nil {
		t.Fatalf("the live denial did not reach the page: %v\n%s", err, pageDebug(bctx, t))
	}

	type pageState struct {
		TopRequests, TopDenials, Routes, Tail, Hygiene, Health string
		ChartRects, ChartTitles                                int
		XSS                                                    any
		Scripts                                                int
		OverflowX                                              bool
	}
	got, err := chromedp.Run(bctx, chromedp.Evaluate[pageState](`({
		TopRequests: document.getElementById("top-requests").textContent,
		TopDenials: document.getElementById("top-denials").textContent,
		Routes: document.getElementById("routes").textContent,
		Tail: document.getElementById("tail").textContent,
		Hygiene: document.getElementById("hygiene").textContent,
		Health: document.getElementById("health").textContent,
		ChartRects: document.querySelectorAll("#decisions-chart rect").length,
		ChartTitles: document.querySelectorAll("#decisions-chart title").length,
		XSS: window.__xss === undefined ? null : window.__xss,
		Scripts: document.scripts.length,
		OverflowX: document.documentElement.scrollWidth > window.innerWidth,
	})`))
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		what string
		ok   bool
	}{
		{"fixture client app among the top clients by requests", strings.Contains(got.TopRequests, "app")},
		{"denial reason path_not_allowed among the top clients by denials", strings.Contains(got.TopDenials, "path_not_allowed")},
		{"the route /api/companies/{company}/inventory/** listed", strings.Contains(got.Routes, "/api/companies/{company}/inventory/**")},
		{"denial reason rate_limited in the live tail", strings.Contains(got.Tail, "rate_limited")},
		{"the decisions chart has bars", got.ChartRects > 0 && got.ChartTitles == 60},
		{"the xss client's name is shown as text", strings.Contains(got.TopDenials+got.Hygiene, "xss")},
		{"the path with markup is shown as text in the tail", strings.Contains(got.Tail, "/api/<script>window.__xss=3</script>")},
		{"no injected markup ran", got.XSS == nil},
		{"no script element was added", got.Scripts == 1},
		{"the store's state is shown", strings.Contains(got.Health, "file, ok")},
		{"nothing overflows 1280 px", !got.OverflowX},
	}
	for _, c := range checks {
		if !c.ok {
			t.Errorf("page: %s: not so", c.what)
		}
	}
	name, err := chromedp.Run(bctx, chromedp.Evaluate[string](`[...document.querySelectorAll("td.name")].map(e => e.textContent).join("\n")`))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(name, consoleXSSName) {
		t.Errorf("the xss client's name is not shown verbatim as text: %q", name)
	}

	dir := artefactDir(t)
	wide, err := chromedp.Run(bctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(bctx, chromedp.EmulateViewport(390, 844), poll(`window.innerWidth === 390`)); err != nil {
		t.Fatal(err)
	}
	narrowOverflow, err := chromedp.Run(bctx, chromedp.Evaluate[bool](`document.documentElement.scrollWidth > window.innerWidth`))
	if err != nil {
		t.Fatal(err)
	}
	narrow, err := chromedp.Run(bctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	if narrowOverflow {
		t.Error("page: the page is wider than a 390 px phone screen")
	}
	for name, b := range map[string][]byte{"scopegate-console-1280.png": wide, "scopegate-console-390.png": narrow} {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("screenshot: %s", p)
	}
}

// rawDenial sends GET target as written (no escaping) with no credential
// and reads the status line.
func rawDenial(t *testing.T, addr, target, requestID string) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: x\r\nX-Request-Id: %s\r\nConnection: close\r\n\r\n", target, requestID)
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil || !strings.Contains(line, " 401 ") {
		t.Fatalf("raw request %s: %q %v", target, line, err)
	}
}

// void drops an action's value.
func void[T any](a chromedp.Action[T]) chromedp.Action[chromedp.Void] {
	return func(ctx context.Context, t *chromedp.Target) (chromedp.Void, error) {
		_, err := a(ctx, t)
		return chromedp.Void{}, err
	}
}

// pageDebug writes a screenshot and returns the page's text, for a failure
// message.
func pageDebug(ctx context.Context, t *testing.T) string {
	if b, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)); err == nil {
		p := filepath.Join(artefactDir(t), "scopegate-console-failure.png")
		_ = os.WriteFile(p, b, 0o644)
		t.Logf("screenshot of the failure: %s", p)
	}
	text, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body.dataset.loaded + " | " + document.body.innerText`))
	if err != nil {
		return err.Error()
	}
	return text
}

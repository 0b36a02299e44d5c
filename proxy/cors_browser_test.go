package proxy

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/scopegate/scopegate/internal/testproc"
)

// browserPage is the script the page runs: three fetch() calls with an API
// key to the gateway (a cross-origin request with a custom header, so the
// browser sends a preflight first), then it POSTs what the script could
// read to /result on its own origin.
const browserPage = `<!doctype html>
<html><body><script>
(async () => {
  const out = {calls: []};
  try {
    for (let i = 0; i < 3; i++) {
      const r = await fetch(%q + "/api/things", {headers: {"X-API-Key": %q}});
      out.calls.push({status: r.status, body: await r.text(),
        retry_after: r.headers.get("Retry-After"), request_id: r.headers.get("X-Request-Id")});
    }
  } catch (e) {
    out.error = String(e);
  }
  await fetch("/result", {method: "POST", body: JSON.stringify(out)});
})();
</script></body></html>`

type browserResult struct {
	Calls []struct {
		Status     int     `json:"status"`
		Body       string  `json:"body"`
		RetryAfter *string `json:"retry_after"`
		RequestID  *string `json:"request_id"`
	} `json:"calls"`
	Error string `json:"error"`
}

// runBrowser serves the page on pageLn, loads it at pageURL in a fresh
// headless Chromium (its process group stopped afterwards) and returns what the page
// posted back.
func runBrowser(t *testing.T, bin string, pageLn net.Listener, pageURL, gateway, key string) browserResult {
	t.Helper()
	results := make(chan []byte, 1)
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, browserPage, gateway, key)
	})
	mux.HandleFunc("POST /result", func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		select {
		case results <- b:
		default:
		}
	})
	srv := &http.Server{Handler: mux}
	go func() { _ = srv.Serve(pageLn) }()
	defer srv.Close()

	dir := t.TempDir()
	// Its own process group: Chromium's zygote, renderer and network
	// processes outlive a kill of its PID and go on writing to the profile
	// while the test's cleanup removes it. StopGroup ends them all, and only
	// them, before that.
	p, err := testproc.StartGroup("chromium", exec.Command(bin, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-crash-reporter", "--disable-breakpad",
		"--user-data-dir="+filepath.Join(dir, "profile"), pageURL), filepath.Join(dir, "chromium.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := p.StopGroup(); err != nil {
			t.Error(err)
		}
	}()
	var raw []byte
	select {
	case raw = <-results:
	case <-p.Done():
		t.Fatalf("chromium exited before the page reported:\n%s", p.Output(0))
	case <-time.After(60 * time.Second):
		t.Fatalf("no result from the page within 60 s; chromium log:\n%s", p.Output(0))
	}
	var res browserResult
	if err := json.Unmarshal(raw, &res); err != nil {
		t.Fatalf("page result %s: %v", raw, err)
	}
	return res
}

// TestCORSBrowser loads a page from one loopback origin in headless Chromium
// that calls the gateway, on another origin, with fetch() and an API key:
// the browser's own preflight and CORS checks pass, and the script reads a
// 200 body and a 429's Retry-After. A page on an origin no client lists
// cannot read anything (fetch fails).
func TestCORSBrowser(t *testing.T) {
	bin := testproc.Chromium(t)
	pageLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	pageOrigin := "http://" + pageLn.Addr().String()
	up, seen := corsUpstream(t)
	e := newEnv(t, envOptions{routes: corsRoutes, upstreams: []string{"http://" + up}, fixture: addCORSClients(pageOrigin)})
	gateway := "http://" + e.addr
	tok := e.fix.Token("browser") // rate limit 2 per minute

	res := runBrowser(t, bin, pageLn, pageOrigin+"/", gateway, tok)
	if res.Error != "" || len(res.Calls) != 3 {
		t.Fatalf("page result: %+v", res)
	}
	if c := res.Calls[0]; c.Status != 200 || c.Body != `{"ok":true}` || c.RequestID == nil || *c.RequestID == "" {
		t.Errorf("first call: %+v", c)
	}
	if c := res.Calls[2]; c.Status != 429 || c.RetryAfter == nil || *c.RetryAfter == "" || *c.RetryAfter == "0" ||
		!strings.Contains(c.Body, `"reason":"rate_limited"`) {
		t.Errorf("third call: %+v (want a readable 429 with Retry-After)", res.Calls[2])
	}
	if n := seen.Load(); n != 2 {
		t.Errorf("the upstream saw %d requests, want the 2 allowed ones (preflights are answered by the gateway)", n)
	}

	// The same page from http://localhost:port, an origin nobody lists.
	otherLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(otherLn.Addr().String())
	res = runBrowser(t, bin, otherLn, "http://localhost:"+port+"/", gateway, e.fix.Token("app"))
	if res.Error == "" || len(res.Calls) != 0 {
		t.Errorf("a page on an unlisted origin read answers: %+v", res)
	}
}

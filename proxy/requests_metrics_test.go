package proxy

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/scopegate/scopegate/policy"
	"github.com/valyala/fasthttp"
)

// holdUpstream answers 200 at once, except /api/hold, which it answers
// only once release is called; entered gets a value when a held request
// arrives. The test's cleanup releases it too, so a test that fails while
// a request is held still ends (Shutdown waits for the handler).
func holdUpstream(t *testing.T) (addr string, entered chan struct{}, release func()) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	held := make(chan struct{})
	var once sync.Once
	entered, release = make(chan struct{}, 1), func() { once.Do(func() { close(held) }) }
	srv := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		if string(ctx.Path()) == "/api/hold" {
			entered <- struct{}{}
			<-held
		}
		ctx.SetBodyString("ok")
	}}
	done := make(chan struct{})
	go func() { _ = srv.Serve(ln); close(done) }()
	t.Cleanup(func() { release(); _ = srv.Shutdown(); _ = ln.Close(); <-done })
	return ln.Addr().String(), entered, release
}

// TestRequestMetrics: scopegate_requests_total counts answers by status
// class and route pattern (route "none" when no route matched) over real
// requests, read from /metrics on the admin listener, and
// scopegate_requests_in_flight is 1 while a request waits for its upstream
// and 0 once it is answered.
func TestRequestMetrics(t *testing.T) {
	set := metrics.NewSet()
	shared := func(c *Config) { c.Metrics = set }
	upAddr, entered, release := holdUpstream(t)
	e := newEnv(t, envOptions{upstreams: []string{"http://" + upAddr}, mutate: shared})
	// A second gateway on the same metrics set whose upstream is down.
	down := newEnv(t, envOptions{upstreams: []string{"http://" + deadAddr(t)}, mutate: shared})

	admin := e.startAdmin(t)
	scrape := func() string {
		t.Helper()
		resp, err := http.Get(admin + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	value := func(body, series string) float64 {
		t.Helper()
		m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(series) + ` (\S+)$`).FindStringSubmatch(body)
		if m == nil {
			t.Fatalf("/metrics lacks %s", series)
		}
		v, _ := strconv.ParseFloat(m[1], 64)
		return v
	}
	const inFlight = `scopegate_requests_in_flight`
	series := func(code, route string) string {
		return `scopegate_requests_total{code="` + code + `",route="` + route + `"}`
	}

	// Every route's series exist before any request.
	body := scrape()
	for _, s := range []string{series("2xx", "/api/**"), series("5xx", "/api/companies/{company}/sites/{site}/**"), series("4xx", "none")} {
		if v := value(body, s); v != 0 {
			t.Errorf("%s = %v before any request", s, v)
		}
	}

	key := e.fix.Token("app")
	cases := []struct {
		name   string
		env    *env
		req    string
		status int
	}{
		{"allowed", e, reqText("GET", "/api/things", "X-API-Key", key), 200},
		{"allowed public", e, reqText("GET", "/healthz"), 200},
		{"denied", e, reqText("GET", "/api/things"), 401},
		{"denied no route", e, reqText("GET", "/elsewhere", "X-API-Key", key), 403},
		{"forward-auth untrusted", e, reqText("GET", "/_auth", "X-Forwarded-Uri", "/api/things"), 403},
		{"upstream down", down, reqText("GET", "/api/things", "X-API-Key", key), 502},
	}
	for _, c := range cases {
		if r := c.env.do(directPeer, c.req); r.status != c.status {
			t.Fatalf("%s: status %d, want %d: %s", c.name, r.status, c.status, r.body)
		}
	}
	body = scrape()
	for _, w := range []struct {
		series string
		want   float64
	}{
		{series("2xx", "/api/**"), 1},
		{series("2xx", "/healthz"), 1},
		{series("4xx", "/api/**"), 1},
		{series("4xx", "none"), 2},
		{series("5xx", "/api/**"), 1},
		{series("3xx", "/api/**"), 0},
		{inFlight, 0},
	} {
		if v := value(body, w.series); v != w.want {
			t.Errorf("%s = %v, want %v", w.series, v, w.want)
		}
	}

	// In flight: 1 while the upstream holds the request, 0 after.
	answered := make(chan *rawResponse, 1)
	go func() {
		answered <- doRawNoFatal(e.addr, reqText("GET", "/api/hold", "X-API-Key", key))
	}()
	select {
	case <-entered:
	case <-time.After(10 * time.Second):
		t.Fatal("the held request never reached the upstream")
	}
	if v := value(scrape(), inFlight); v != 1 {
		t.Errorf("%s = %v while a request is held, want 1", inFlight, v)
	}
	release()
	if r := <-answered; r == nil || r.status != 200 {
		t.Fatalf("held request: %+v", r)
	}
	body = scrape()
	if v := value(body, inFlight); v != 0 {
		t.Errorf("%s = %v after the answer, want 0", inFlight, v)
	}
	if v := value(body, series("2xx", "/api/**")); v != 2 {
		t.Errorf("2xx on /api/** = %v after the held request, want 2", v)
	}
	if !strings.Contains(body, "# TYPE scopegate_requests_in_flight gauge") {
		t.Errorf("/metrics lacks the gauge's metadata")
	}
}

// doRawNoFatal is doRaw for another goroutine: nil on any failure.
func doRawNoFatal(addr, raw string) *rawResponse {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := io.WriteString(c, raw); err != nil {
		return nil
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return &rawResponse{status: resp.StatusCode, header: resp.Header, body: b}
}

// TestSettleLabelsWithTheDecisionsRoutes: a reload between a decision and
// its answer does not relabel the request: its counter and log name the
// route of the routes file it was decided with.
func TestSettleLabelsWithTheDecisionsRoutes(t *testing.T) {
	e := newEnv(t, envOptions{noUpstream: true})
	p := e.proxy
	decidedWith := e.engine.Routes()
	st := p.pool.Get().(*reqState)
	defer p.release(st)
	st.req = policy.Request{Method: "GET", RawPath: "/healthz"}
	_, d := e.engine.Match(&st.req)
	if d.Route != 0 || !d.Allowed() {
		t.Fatalf("/healthz: %+v, want route 0 allowed", d)
	}
	reloaded, _, err := policy.ParseRoutes([]byte("default: deny\nroutes:\n  - path: /other\n    auth: none\n"))
	if err != nil {
		t.Fatal(err)
	}
	e.engine.SetRoutes(reloaded)
	var ctx fasthttp.RequestCtx
	p.settle(&ctx, st, &d, 0, false)
	if st.routes != decidedWith || st.routes.Path(st.route) != "/healthz" {
		t.Errorf("settled with route %d of %p (%q), want /healthz of the routes decided with (%p)",
			st.route, st.routes, st.routes.Path(st.route), decidedWith)
	}
}

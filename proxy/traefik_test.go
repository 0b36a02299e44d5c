package proxy

import (
	"fmt"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/scopegate/scopegate/internal/testproc"
)

// traefikVersion is the Traefik the recipe tests run; .ci/traefik builds it.
const traefikVersion = "v3.7.9"

// traefikBinary finds Traefik: $SCOPEGATE_TEST_TRAEFIK, then traefik on
// PATH, then the cache .ci/traefik builds into. Without it the test skips
// loudly, and fails under CI=true.
func traefikBinary(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("SCOPEGATE_TEST_TRAEFIK"); p != "" {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("SCOPEGATE_TEST_TRAEFIK=%s: %v", p, err)
		}
		return p
	}
	cached := []string{"/var/cache/scopegate/traefik-" + traefikVersion}
	if home, err := os.UserHomeDir(); err == nil {
		cached = append(cached, filepath.Join(home, ".cache", "scopegate", "traefik-"+traefikVersion))
	}
	p := testproc.Find([]string{"traefik"}, cached...)
	if p == "" {
		testproc.SkipOrFail(t, "Traefik not found ($SCOPEGATE_TEST_TRAEFIK, PATH, /var/cache/scopegate/traefik-"+traefikVersion+"; .ci/traefik builds it); the Traefik recipe tests did not run")
	}
	return p
}

// startTraefik runs a real Traefik on the shipped configs/traefik/: the
// static traefik.yml and the dynamic.yml its file provider loads, copied to
// the same relative paths under a temporary directory Traefik starts in,
// with only the addresses replaced (the entry point on a free loopback
// port, scopegate's and the app's). Traefik's output goes to a file there,
// shown if the test fails. It stops Traefik (by PID) when the test ends and
// returns the entry point's address once the routers serve.
func startTraefik(t testing.TB, scopegateAddr, appAddr string) string {
	t.Helper()
	bin := traefikBinary(t)
	addr := testproc.FreeAddr(t)
	dir := t.TempDir()
	renderRecipe(t, "traefik", filepath.Join(dir, "configs", "traefik"), map[string]map[string]string{
		"traefik.yml": {
			`address: ":8000"`: `address: "` + addr + `"`,
		},
		"dynamic.yml": {
			`address: "http://127.0.0.1:8080/_auth"`: `address: "http://` + scopegateAddr + `/_auth"`,
			`- url: "http://127.0.0.1:8080"`:         `- url: "http://` + scopegateAddr + `"`,
			`- url: "http://127.0.0.1:8081"`:         `- url: "http://` + appAddr + `"`,
		},
	})
	cmd := exec.Command(bin, "--configFile=configs/traefik/traefik.yml")
	cmd.Dir = dir
	// SIGINT to this Traefik only.
	p := testproc.Run(t, "traefik", cmd, filepath.Join(dir, "traefik.log"), os.Interrupt, 10*time.Second)
	// Ready when a request reaches scopegate through the routers (its
	// answers carry X-Request-Id; Traefik's own 404 before the file
	// provider has loaded does not).
	testproc.WaitReady(t, p, 30*time.Second, 50*time.Millisecond, func() error {
		// Without t: a connection Traefik resets while it starts is a retry,
		// not a failure.
		r := doRawNoFatal(addr, reqText("GET", "/api/things"))
		if r == nil {
			return fmt.Errorf("Traefik at %s does not answer yet", addr)
		}
		if r.header.Get("X-Request-Id") == "" {
			return fmt.Errorf("Traefik at %s does not route to scopegate yet (status %d)", addr, r.status)
		}
		return nil
	})
	return addr
}

// TestTraefikRecipeEverySpelling runs the shipped configs/traefik/ under
// a real Traefik in front of scopegate's /_auth and an echo app (issue 15:
// X_Auth_User_Id passed Traefik and reached the app as the identity).
//   - A header whose name holds '_' and reads as an identity header, in any
//     case and on one or two lines, is refused: 403 identity_header_sent,
//     the JSON denial reaching the client through Traefik.
//   - An allowed request with every '-' spelling of the identity fields (and
//     a prefixed name that is none of the seven) and every spelling of the
//     credential fields and overrides gives the app scopegate's identity
//     fields only and none of the others.
func TestTraefikRecipeEverySpelling(t *testing.T) {
	traefikBinary(t)
	e := newEnv(t, envOptions{noUpstream: true, trusted: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}})
	app := startEcho(t)
	tr := startTraefik(t, e.addr, app.addr)
	_, underscored := identitySpellings()
	for _, name := range underscored {
		for _, lines := range []int{1, 2} {
			h := []string{"X-API-Key", e.fix.Token("app")}
			for i := 0; i < lines; i++ {
				h = append(h, name, "victim")
			}
			r := doRaw(t, netip.Addr{}, tr, reqText("GET", "/api/things", h...))
			if r.status != 403 || r.reason() != "identity_header_sent" {
				t.Errorf("%d× %s: status %d %s, want 403 identity_header_sent", lines, name, r.status, r.body)
			}
		}
	}
	r := doRaw(t, netip.Addr{}, tr, reqText("GET", "/api/things", recipeSpoofHeaders(e, false)...))
	if r.status != 200 {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	checkRecipeEcho(t, "traefik", echoOf(t, r), true)
}

// TestTraefikRecipeAloneStripsUnderscoreSpellings: the recipe does not rely
// on scopegate's refusal. Behind a scopegate whose identity prefix is
// another (X-Gw-, so X_Auth_* is nothing to it and the request is allowed),
// the shipped regex still removes every spelling of X-Auth-* and of the
// credential fields and overrides before the app.
func TestTraefikRecipeAloneStripsUnderscoreSpellings(t *testing.T) {
	traefikBinary(t)
	e := newEnv(t, envOptions{noUpstream: true, trusted: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")},
		mutate: func(c *Config) { c.IdentityHeaderPrefix = "X-Gw-" }})
	app := startEcho(t)
	tr := startTraefik(t, e.addr, app.addr)
	h := recipeSpoofHeaders(e, true)
	h = append(h, recipeSpoofHeaders(e, false)[4:]...)
	r := doRaw(t, netip.Addr{}, tr, reqText("GET", "/api/things", h...))
	if r.status != 200 {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	ec := echoOf(t, r)
	stripped := map[string]bool{}
	for _, n := range strippedAfterCheck {
		stripped[strings.ToLower(n)] = true
	}
	for k, v := range ec.Headers {
		n := strings.ToLower(strings.ReplaceAll(k, "_", "-"))
		if strings.HasPrefix(n, "x-auth-") || stripped[n] {
			t.Errorf("the app got %s: %q", k, v)
		}
	}
}

// TestTraefikAnswerHygiene: behind the shipped configs/traefik/, a denial
// reaches the client with scopegate's status, JSON body and X-Request-Id
// but without the fields meant for proxies that scopegate's own answer to
// Traefik carries (X-Scopegate-Reason, X-Scopegate-Error, Server:
// scopegate); an allowed request gives the app the X-Request-Id scopegate
// chose, and its answer reaches the client without a Server field either.
func TestTraefikAnswerHygiene(t *testing.T) {
	traefikBinary(t)
	e := newEnv(t, envOptions{noUpstream: true, trusted: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}})
	app := startEcho(t)
	tr := startTraefik(t, e.addr, app.addr)
	leaks := func(h http.Header) []string {
		return proxyOnlyFields(h, func([]string) bool { return false }) // no Server field at all
	}

	// What Traefik gets from scopegate: the test fails if the recipe stops
	// hiding them, not because scopegate stopped sending them.
	direct := doRaw(t, netip.Addr{}, e.addr, reqText("GET", "/_auth", "X-Forwarded-Method", "GET", "X-Forwarded-Uri", "/api/things"))
	if direct.status != 401 || len(leaks(direct.header)) < 3 {
		t.Fatalf("scopegate's own denial: status %d, proxy-only fields %q, want 401 and Server, X-Scopegate-Reason, X-Scopegate-Error", direct.status, leaks(direct.header))
	}

	for _, c := range []struct {
		name    string
		headers []string
		status  int
		reason  string
	}{
		{"no credential", nil, 401, "credentials_missing"},
		{"unknown key", []string{"X-API-Key", "sg_nope"}, 401, "api_key_invalid"},
		{"identity header sent", []string{"X-API-Key", e.fix.Token("app"), "X_Auth_Type", "admin"}, 403, "identity_header_sent"},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := doRaw(t, netip.Addr{}, tr, reqText("GET", "/api/things", c.headers...))
			checkProxiedDenial(t, r, c.status, c.reason, leaks)
		})
	}

	t.Run("allowed", func(t *testing.T) {
		r := doRaw(t, netip.Addr{}, tr, reqText("GET", "/api/things", "X-API-Key", e.fix.Token("app"), "X-Request-Id", "traefik-hygiene-1"))
		if r.status != 200 {
			t.Fatalf("status %d: %s", r.status, r.body)
		}
		if got := echoOf(t, r).header("X-Request-Id"); got != "traefik-hygiene-1" {
			t.Errorf("the app got X-Request-Id %q, want traefik-hygiene-1", got)
		}
		if l := leaks(r.header); len(l) != 0 {
			t.Errorf("the client got %q", l)
		}
	})
}

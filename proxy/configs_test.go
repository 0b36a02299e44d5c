package proxy

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/scopegate/scopegate/policy"
)

// readConfig reads the shipped configs/name.
func readConfig(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "configs", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// identityNames are the identity headers with the default prefix.
var identityNames = []string{"X-Auth-Type", "X-Auth-Client-Id", "X-Auth-Client-Key", "X-Auth-User-Id", "X-Auth-User-Sub", "X-Auth-User-Email", "X-Auth-Scope"}

// TestRoutesExample: configs/routes.example.yaml is the SPEC §4 example and
// compiles without errors or warnings.
func TestRoutesExample(t *testing.T) {
	r, warnings, err := policy.ParseRoutes(readConfig(t, "routes.example.yaml"))
	if err != nil || r == nil {
		t.Fatalf("ParseRoutes: %v", err)
	}
	if len(warnings) != 0 {
		t.Errorf("warnings: %v", warnings)
	}
}

// TestTraefikConfig checks the structure of configs/traefik/ (the Traefik
// tests run it): the static file loads the dynamic one; forwardAuth to
// /_auth, trustForwardHeader false, every identity header in
// authResponseHeaders, the proxy-only answer fields removed around the
// check, and the API key headers removed after it.
func TestTraefikConfig(t *testing.T) {
	var doc struct {
		HTTP struct {
			Routers     map[string]struct{ Middlewares []string } `yaml:"routers"`
			Middlewares map[string]struct {
				ForwardAuth *struct {
					Address                  string   `yaml:"address"`
					TrustForwardHeader       *bool    `yaml:"trustForwardHeader"`
					AuthResponseHeaders      []string `yaml:"authResponseHeaders"`
					AuthResponseHeadersRegex string   `yaml:"authResponseHeadersRegex"`
				} `yaml:"forwardAuth"`
				Headers *struct {
					CustomRequestHeaders  map[string]*string `yaml:"customRequestHeaders"`
					CustomResponseHeaders map[string]*string `yaml:"customResponseHeaders"`
				} `yaml:"headers"`
			} `yaml:"middlewares"`
		} `yaml:"http"`
	}
	var static struct {
		Providers struct {
			File struct{ Filename string } `yaml:"file"`
		} `yaml:"providers"`
	}
	if err := yaml.Unmarshal(readConfig(t, filepath.Join("traefik", "traefik.yml")), &static); err != nil {
		t.Fatal(err)
	}
	if got := static.Providers.File.Filename; got != "configs/traefik/dynamic.yml" {
		t.Errorf("configs/traefik/traefik.yml loads %q, want configs/traefik/dynamic.yml", got)
	}
	if err := yaml.Unmarshal(readConfig(t, filepath.Join("traefik", "dynamic.yml")), &doc); err != nil {
		t.Fatal(err)
	}
	fa := doc.HTTP.Middlewares["scopegate"].ForwardAuth
	if fa == nil {
		t.Fatal("no scopegate forwardAuth middleware")
	}
	if !strings.HasSuffix(fa.Address, "/_auth") {
		t.Errorf("address %q", fa.Address)
	}
	if fa.TrustForwardHeader == nil || *fa.TrustForwardHeader {
		t.Errorf("trustForwardHeader must be false")
	}
	for _, h := range identityNames {
		found := false
		for _, g := range fa.AuthResponseHeaders {
			found = found || strings.EqualFold(g, h)
		}
		if !found {
			t.Errorf("authResponseHeaders lacks %s", h)
		}
	}
	if got, want := doc.HTTP.Routers["app"].Middlewares, []string{"scopegate-hide", "scopegate", "scopegate-strip"}; !slices.Equal(got, want) {
		t.Errorf("router app middlewares %q, want %q (the answer's hygiene around the check, the strip after it)", got, want)
	}
	hide := doc.HTTP.Middlewares["scopegate-hide"].Headers
	for _, h := range []string{"Server", "X-Scopegate-Reason", "X-Scopegate-Error"} {
		if hide == nil || hide.CustomResponseHeaders[h] == nil || *hide.CustomResponseHeaders[h] != "" {
			t.Errorf("scopegate-hide does not remove %s from answers", h)
		}
	}
	// Traefik matches the regex against the names as Go keeps them
	// (canonical: X_auth_user_id), deleting the client's and copying
	// scopegate's: every spelling of the identity and stripped fields, no
	// other name.
	re, err := regexp.Compile(fa.AuthResponseHeadersRegex)
	if err != nil {
		t.Fatalf("authResponseHeadersRegex: %v", err)
	}
	all, _ := identitySpellings()
	for _, n := range append(all, credentialSpellings()...) {
		if !re.MatchString(http.CanonicalHeaderKey(n)) {
			t.Errorf("authResponseHeadersRegex does not match %s", http.CanonicalHeaderKey(n))
		}
	}
	for _, n := range []string{"X-Request-Id", "X-Site-Key", "Authorization", "X-Authority", "X-Api-Keys", "My-X-Auth-Id", "X-Forwarded-For"} {
		if re.MatchString(n) {
			t.Errorf("authResponseHeadersRegex matches %s", n)
		}
	}
	strip := doc.HTTP.Middlewares["scopegate-strip"].Headers
	for _, h := range strippedAfterCheck {
		if strip == nil || strip.CustomRequestHeaders[h] == nil || *strip.CustomRequestHeaders[h] != "" {
			t.Errorf("scopegate-strip does not remove %s", h)
		}
	}
}

// TestEnvoyConfig checks the structure of configs/envoy.yaml (Envoy is not
// run here): ext_authz HTTP service with path_prefix /_auth/envoy, fail
// closed, identity headers allowed upstream.
func TestEnvoyConfig(t *testing.T) {
	raw := readConfig(t, "envoy.yaml")
	var doc map[string]any
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	var authz map[string]any
	var remove []string
	walkMaps(doc, func(m map[string]any) {
		if m["@type"] == "type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthz" {
			authz = m
		}
		if l, ok := m["request_headers_to_remove"].([]any); ok {
			for _, h := range l {
				remove = append(remove, fmt.Sprint(h))
			}
		}
	})
	if authz == nil {
		t.Fatal("no ext_authz filter")
	}
	if authz["failure_mode_allow"] != false {
		t.Errorf("failure_mode_allow must be false")
	}
	svc, _ := authz["http_service"].(map[string]any)
	if svc == nil || svc["path_prefix"] != "/_auth/envoy" {
		t.Errorf("http_service.path_prefix: %v", svc)
	}
	// The filter's own allowed_headers; authorization_request's is
	// deprecated in current Envoy.
	if _, ok := authz["allowed_headers"].(map[string]any); !ok {
		t.Errorf("ext_authz has no allowed_headers")
	}
	if req, ok := svc["authorization_request"].(map[string]any); ok && req["allowed_headers"] != nil {
		t.Errorf("http_service.authorization_request.allowed_headers is deprecated: use the filter's allowed_headers")
	}
	// Longer than scopegate's own waits in one check: a JWKS refetch for an
	// unknown kid and a first load of the user, 2 s each.
	uri, _ := svc["server_uri"].(map[string]any)
	if d, err := time.ParseDuration(fmt.Sprint(uri["timeout"])); err != nil || d <= 4*time.Second {
		t.Errorf("http_service.server_uri.timeout %v, want more than 4s", uri["timeout"])
	}
	if !strings.Contains(string(raw), "prefix: x-auth-") {
		t.Errorf("allowed_upstream_headers lacks the x-auth- prefix")
	}
	if !strings.Contains(string(raw), "headers_with_underscores_action: DROP_HEADER") {
		t.Errorf("underscore header names are not dropped")
	}
	for _, h := range strippedAfterCheck {
		if !slices.Contains(remove, strings.ToLower(h)) {
			t.Errorf("request_headers_to_remove lacks %s", strings.ToLower(h))
		}
	}
}

// walkMaps calls fn on every mapping of a decoded YAML document.
func walkMaps(v any, fn func(map[string]any)) {
	switch x := v.(type) {
	case map[string]any:
		fn(x)
		for _, c := range x {
			walkMaps(c, fn)
		}
	case []any:
		for _, c := range x {
			walkMaps(c, fn)
		}
	}
}

// overrideHeaders are the method and URL overrides the shipped front-end
// configs remove on the way to the app: the proxy mode's own list.
var overrideHeaders = requestOverrides[:]

// strippedAfterCheck are the fields the shipped front-end configs remove on
// the way to the app once scopegate has checked the request: the API key
// fields and the overrides.
var strippedAfterCheck = append([]string{"X-API-Key", "X-Client-Key"}, overrideHeaders...)

// TestForwardAuthEnvoyRemovesUnsetIdentity: the Envoy answer names the
// identity headers it has no value for in x-envoy-auth-headers-to-remove.
func TestForwardAuthEnvoyRemovesUnsetIdentity(t *testing.T) {
	e := newEnv(t, envOptions{})
	r := e.do(trustedPeer, reqText("GET", "/_auth/envoy/api/things", "X-API-Key", e.fix.Token("app"), "X-Forwarded-For", "127.0.0.1"))
	if r.status != 200 {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	got := r.header.Get("X-Envoy-Auth-Headers-To-Remove")
	for _, h := range []string{"X-Auth-User-Id", "X-Auth-User-Sub", "X-Auth-User-Email", "X-Auth-Scope"} {
		if !strings.Contains(got, h) {
			t.Errorf("remove list %q lacks %s", got, h)
		}
	}
	if strings.Contains(got, "X-Auth-Client-Key") {
		t.Errorf("remove list %q names a header that is set", got)
	}
}

// TestNginxConfigNames: configs/nginx/scopegate.conf forwards every
// identity header.
func TestNginxConfigNames(t *testing.T) {
	conf := string(readConfig(t, filepath.Join("nginx", "scopegate.conf")))
	for _, h := range identityNames {
		if !strings.Contains(conf, "proxy_set_header "+h+" ") {
			t.Errorf("scopegate.conf does not set %s", h)
		}
		v := "$upstream_http_" + strings.ReplaceAll(strings.ToLower(h), "-", "_")
		if !strings.Contains(conf, v) {
			t.Errorf("scopegate.conf does not read %s", v)
		}
	}
}

// credentialSpellings returns, for each field the shipped recipes remove
// once scopegate has checked the request (strippedAfterCheck), the spellings
// a client may use: lower and upper case, and '_' for every '-' and for
// the first one only.
func credentialSpellings() []string {
	var out []string
	for _, n := range strippedAfterCheck {
		i := strings.Index(n, "-")
		out = append(out, strings.ToLower(n), strings.ToUpper(n),
			strings.ReplaceAll(n, "-", "_"), n[:i]+"_"+n[i+1:])
	}
	return out
}

// recipeSpoofHeaders is one allowed request's header fields for the recipe
// tests: the app's API key as a client_key/secret pair, every spelling of
// the credential fields and overrides (two lines each, a credential with
// the value the check read, since a second key would change the decision),
// and every identity spelling from identitySpellings that underscored
// selects (two lines each).
func recipeSpoofHeaders(e *env, underscored bool) []string {
	secret := e.fix.Secrets["app"]
	h := []string{"X-Client-Key", "app", "X-API-Key", secret}
	for _, s := range credentialSpellings() {
		v := "DELETE"
		switch strings.ToLower(strings.ReplaceAll(s, "_", "-")) {
		case "x-client-key":
			v = "app"
		case "x-api-key":
			v = secret
		}
		h = append(h, s, v, s, v)
	}
	all, _ := identitySpellings()
	for _, s := range all {
		if strings.Contains(s, "_") == underscored {
			h = append(h, s, "victim", s, "victim")
		}
	}
	return h
}

// checkRecipeEcho asserts what an app behind a shipped recipe received for
// an allowed recipeSpoofHeaders request: the identity fields are
// scopegate's (one line each, nothing else with the prefix in any
// spelling), and no spelling of a credential field or override is left.
// byPrefix: the recipe removes every prefixed name; else (nginx, which
// cannot remove by prefix) a '-' spelling of a prefixed name that is none of
// the seven identity fields (X-Auth-Role) may pass, as documented.
func checkRecipeEcho(t *testing.T, recipe string, ec echoed, byPrefix bool) {
	t.Helper()
	want := map[string]string{"x-auth-type": "api_key", "x-auth-client-key": "app", "x-auth-client-id": "55555555-0000-4000-8000-000000000001"}
	stripped := map[string]bool{}
	for _, n := range strippedAfterCheck {
		stripped[strings.ToLower(n)] = true
	}
	seen := map[string]bool{}
	for k, v := range ec.Headers {
		n := strings.ToLower(strings.ReplaceAll(k, "_", "-"))
		switch {
		case n == "x-auth-role" && !byPrefix && !strings.Contains(k, "_"):
		case strings.HasPrefix(n, "x-auth-"):
			if len(v) != 1 || v[0] != want[n] || k != http.CanonicalHeaderKey(n) {
				t.Errorf("%s: the app got %s: %q", recipe, k, v)
			}
			seen[n] = true
		case stripped[n]:
			t.Errorf("%s: the app got %s: %q", recipe, k, v)
		}
	}
	for n := range want {
		if !seen[n] {
			t.Errorf("%s: the app did not get %s (headers %v)", recipe, n, ec.Headers)
		}
	}
}

// TestKubernetesTraefikRegex: the Traefik IngressRoute recipe of
// configs/kubernetes strips with the same authResponseHeadersRegex as
// configs/traefik/dynamic.yml, which the Traefik tests run.
func TestKubernetesTraefikRegex(t *testing.T) {
	find := func(raw []byte) string {
		for _, line := range strings.Split(string(raw), "\n") {
			if k, v, ok := strings.Cut(strings.TrimSpace(line), ":"); ok && k == "authResponseHeadersRegex" {
				return strings.TrimSpace(v)
			}
		}
		return ""
	}
	want := find(readConfig(t, filepath.Join("traefik", "dynamic.yml")))
	got := find(readConfig(t, filepath.Join("kubernetes", "traefik-ingressroute.yaml")))
	if want == "" || got != want {
		t.Errorf("configs/kubernetes/traefik-ingressroute.yaml authResponseHeadersRegex %s, want %s (configs/traefik/dynamic.yml)", got, want)
	}
}

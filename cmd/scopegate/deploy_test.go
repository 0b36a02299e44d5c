package main

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// yamlDocs parses every document of a YAML file.
func yamlDocs(t *testing.T, path string) []map[string]any {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var docs []map[string]any
	dec := yaml.NewDecoder(f)
	for {
		var d map[string]any
		err := dec.Decode(&d)
		if errors.Is(err, io.EOF) {
			return docs
		}
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if d != nil {
			docs = append(docs, d)
		}
	}
}

// dig walks nested maps and lists: keys for maps, "#i" is not supported;
// lists are searched by a "name" field when the key is "name=X".
func dig(v any, path ...string) any {
	for _, k := range path {
		switch x := v.(type) {
		case map[string]any:
			v = x[k]
		case []any:
			name, ok := strings.CutPrefix(k, "name=")
			if !ok {
				return nil
			}
			v = nil
			for _, e := range x {
				if m, ok := e.(map[string]any); ok && m["name"] == name {
					v = m
				}
			}
		default:
			return nil
		}
	}
	return v
}

var scopegateVarRE = regexp.MustCompile(`\bSCOPEGATE_[A-Z0-9_]+\b`)

// pendingVars are contract variables that the manifests set and that other
// work adds to Config; they are accepted until Config has them. None now:
// SCOPEGATE_ADMIN_TOKEN is Config's.
var pendingVars []string

// checkKnownVars fails for a SCOPEGATE_ name in text that Config does not
// read (a misspelling in a shipped file would stop start-up).
func checkKnownVars(t *testing.T, file, text string) {
	t.Helper()
	known := knownVars()
	for _, v := range scopegateVarRE.FindAllString(text, -1) {
		if !slices.Contains(known, v) && !slices.Contains(pendingVars, v) &&
			!slices.ContainsFunc(testEnvPrefixes, func(p string) bool { return strings.HasPrefix(v, p) }) {
			t.Errorf("%s names %s, which is not a configuration variable", file, v)
		}
	}
}

// TestKubernetesManifests: configs/kubernetes parses; the Deployment has two
// replicas, readiness on /readyz and liveness on /healthz of the admin port,
// the routes file mounted where SCOPEGATE_ROUTES_FILE points, Redis as the
// rate-limit backend with its Service; a Service, a Gateway-API route and a
// Traefik IngressRoute exist; only known variables are named.
func TestKubernetesManifests(t *testing.T) {
	files, err := filepath.Glob("../../configs/kubernetes/*.yaml")
	if err != nil || len(files) < 4 {
		t.Fatalf("configs/kubernetes/*.yaml: %v %v", files, err)
	}
	kinds := map[string]map[string]any{} // kind/name
	for _, f := range files {
		b, _ := os.ReadFile(f)
		checkKnownVars(t, f, string(b))
		for _, d := range yamlDocs(t, f) {
			kind, _ := d["kind"].(string)
			name, _ := dig(d, "metadata", "name").(string)
			if kind == "" || name == "" || d["apiVersion"] == nil {
				t.Errorf("%s: a document without apiVersion, kind or metadata.name: %v", f, d)
			}
			kinds[kind+"/"+name] = d
		}
	}
	for _, want := range []string{"Deployment/scopegate", "Service/scopegate", "ConfigMap/scopegate-routes", "Job/scopegate-migrate",
		"Deployment/scopegate-redis", "Service/scopegate-redis", "HTTPRoute/api", "IngressRoute/api", "Middleware/scopegate-auth", "Middleware/scopegate-hide"} {
		if kinds[want] == nil {
			t.Errorf("no %s in configs/kubernetes", want)
		}
	}
	dep := kinds["Deployment/scopegate"]
	if dep == nil {
		t.FailNow()
	}
	if r := dig(dep, "spec", "replicas"); r != 2 {
		t.Errorf("replicas = %v, want 2", r)
	}
	c := dig(dep, "spec", "template", "spec", "containers", "name=scopegate")
	if p := dig(c, "readinessProbe", "httpGet", "path"); p != "/readyz" {
		t.Errorf("readinessProbe path = %v, want /readyz", p)
	}
	if p := dig(c, "livenessProbe", "httpGet", "path"); p != "/healthz" {
		t.Errorf("livenessProbe path = %v, want /healthz", p)
	}
	env := func(name string) any { return dig(c, "env", "name="+name, "value") }
	if env("SCOPEGATE_RATE_LIMIT_BACKEND") != "redis" || !strings.Contains(env("SCOPEGATE_REDIS_URL").(string), "scopegate-redis:6379") {
		t.Errorf("the Deployment does not use the Redis Service for rate limits")
	}
	if env("SCOPEGATE_ROUTES_FILE") != "/etc/scopegate/routes.yaml" || dig(c, "volumeMounts", "name=routes", "mountPath") != "/etc/scopegate" {
		t.Errorf("the routes file is not mounted where SCOPEGATE_ROUTES_FILE points")
	}
	routes, _ := dig(kinds["ConfigMap/scopegate-routes"], "data", "routes.yaml").(string)
	if code, out, errOut := routesCheckText(t, routes); code != exitOK {
		t.Errorf("the ConfigMap's routes file fails routes check: %d %s%s", code, out, errOut)
	}
}

// routesCheckText runs `scopegate routes check` on text.
func routesCheckText(t *testing.T, text string) (int, string, string) {
	t.Helper()
	p := filepath.Join(t.TempDir(), "routes.yaml")
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return cli(t, "routes", "check", "--strict", p)
}

// TestComposeFile: configs/docker-compose.yml parses, shares no network
// namespace, mounts a routes file where SCOPEGATE_ROUTES_FILE points, and
// names only known variables; the Dockerfile's HEALTHCHECK asks readiness.
func TestComposeFile(t *testing.T) {
	const path = "../../configs/docker-compose.yml"
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	checkKnownVars(t, path, string(b))
	docs := yamlDocs(t, path)
	services, _ := dig(docs[0], "services").(map[string]any)
	for name, s := range services {
		if dig(s, "network_mode") != nil {
			t.Errorf("service %s shares a network namespace", name)
		}
	}
	sg := services["scopegate"]
	if f := dig(sg, "environment", "SCOPEGATE_ROUTES_FILE"); f != "/etc/scopegate/routes.yaml" {
		t.Errorf("scopegate SCOPEGATE_ROUTES_FILE = %v", f)
	}
	vols, _ := dig(sg, "volumes").([]any)
	if !slices.Contains(vols, any("./routes.example.yaml:/etc/scopegate/routes.yaml:ro")) {
		t.Errorf("scopegate volumes %v do not mount the routes file", vols)
	}
	if _, err := os.Stat("../../configs/routes.example.yaml"); err != nil {
		t.Error(err)
	}
	df, err := os.ReadFile("../../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	checkKnownVars(t, "Dockerfile", string(df))
	if !regexp.MustCompile(`(?m)^HEALTHCHECK .*\n\s+CMD \["/usr/local/bin/scopegate", "healthcheck"\]`).Match(df) {
		t.Errorf("the Dockerfile's HEALTHCHECK is not `scopegate healthcheck` (readiness)")
	}
}

package policy

import (
	"bytes"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"testing"

	"gopkg.in/yaml.v3"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

// goldenCorpus is testdata/decisions.yaml.
type goldenCorpus struct {
	Routes    string `yaml:"routes"`
	Directory struct {
		Modules   []struct{ ID, Key, Status string } `yaml:"modules"`
		Companies []struct{ ID, Key, Status string } `yaml:"companies"`
		Sites     []struct {
			ID, Key, Status string
			CompanyID       string `yaml:"company_id"`
		} `yaml:"sites"`
	} `yaml:"directory"`
	Clients []struct {
		ID             string   `yaml:"id"`
		ClientKey      string   `yaml:"client_key"`
		Status         string   `yaml:"status"`
		Secret         string   `yaml:"secret"`
		AllowedPaths   []string `yaml:"allowed_paths"`
		AllowedOrigins []string `yaml:"allowed_origins"`
		AllowedIPs     []string `yaml:"allowed_ips"`
		RateLimit      *int     `yaml:"rate_limit_per_min"`
	} `yaml:"clients"`
	Users []struct {
		ID       string `yaml:"id"`
		Sub      string `yaml:"sub"`
		Status   string `yaml:"status"`
		IsActive bool   `yaml:"is_active"`
		Grants   []struct {
			Module    string `yaml:"module"`
			Action    string `yaml:"action"`
			ScopeType string `yaml:"scope_type"`
			ScopeID   string `yaml:"scope_id"`
			Legacy    bool   `yaml:"legacy"`
		} `yaml:"grants"`
	} `yaml:"users"`
	Cases []struct {
		Name    string            `yaml:"name"`
		Method  string            `yaml:"method"`
		Path    string            `yaml:"path"`
		APIKey  string            `yaml:"api_key"`
		User    string            `yaml:"user"`
		Origin  string            `yaml:"origin"`
		IP      string            `yaml:"ip"`
		Headers map[string]string `yaml:"headers"`
		Query   map[string]string `yaml:"query"`
	} `yaml:"cases"`
}

// TestGoldenDecisions runs the corpus of testdata/decisions.yaml through the
// engine the way the proxy does and compares the decisions with
// testdata/decisions.golden (-update rewrites it).
func TestGoldenDecisions(t *testing.T) {
	data, err := os.ReadFile("testdata/decisions.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var c goldenCorpus
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		t.Fatalf("decisions.yaml: %v", err)
	}
	var mods []ModuleRecord
	var cos []CompanyRecord
	var sites []SiteRecord
	for _, m := range c.Directory.Modules {
		mods = append(mods, ModuleRecord{ID: m.ID, Key: m.Key, Status: m.Status})
	}
	for _, m := range c.Directory.Companies {
		cos = append(cos, CompanyRecord{ID: m.ID, Key: m.Key, Status: m.Status})
	}
	for _, s := range c.Directory.Sites {
		sites = append(sites, SiteRecord{ID: s.ID, Key: s.Key, CompanyID: s.CompanyID, Status: s.Status})
	}
	dir := NewDirectory(mods, cos, sites)
	clients := map[string]*Client{}
	for _, r := range c.Clients {
		clients[r.ClientKey] = mustClient(t, ClientRecord{ID: r.ID, ClientKey: r.ClientKey, Status: r.Status, APIKeyHash: sha256Hex(r.Secret),
			AllowedPaths: r.AllowedPaths, AllowedOrigins: r.AllowedOrigins, AllowedIPs: r.AllowedIPs, RateLimitPerMin: r.RateLimit})
	}
	users := map[string]*User{}
	for _, u := range c.Users {
		var gs []GrantRecord
		for _, g := range u.Grants {
			gs = append(gs, GrantRecord{Module: g.Module, Action: g.Action, ScopeType: g.ScopeType, ScopeID: g.ScopeID, Legacy: g.Legacy})
		}
		users[u.Sub] = CompileUser(UserRecord{ID: u.ID, Sub: u.Sub, Status: u.Status, IsActive: u.IsActive}, gs, dir)
	}
	e := mustEngine(t, EngineConfig{Routes: mustRoutes(t, c.Routes)})

	var out bytes.Buffer
	for _, tc := range c.Cases {
		req := &Request{Method: tc.Method, RawPath: tc.Path, Origin: tc.Origin, Now: t0,
			Values: values{h: tc.Headers, q: tc.Query}}
		if tc.IP != "" {
			req.ClientIP = netip.MustParseAddr(tc.IP)
		}
		switch {
		case tc.APIKey != "":
			req.Cred = ParseCredential(CredentialHeaders{APIKey: tc.APIKey})
		case tc.User != "":
			req.Cred = Credential{Kind: CredentialJWT, Token: "verified-elsewhere"}
		}
		m, d := e.Match(req)
		if d.Reason == ReasonNone && !m.Public {
			switch req.Cred.Kind {
			case CredentialAPIKey:
				d = e.AuthorizeClient(req, &m, clients[req.Cred.ClientKey])
			case CredentialJWT:
				d = e.AuthorizeUser(req, &m, users[tc.User], dir)
			}
		}
		reason := d.Reason.String()
		if d.Allowed() {
			reason = "allow"
		}
		fmt.Fprintf(&out, "%-40s %3d %-24s route=%d", tc.Name, d.Status(), reason, d.Route)
		if id := d.Identity; id.Type != CredentialNone {
			fmt.Fprintf(&out, " type=%s", id.Type)
			if id.ClientKey != "" {
				fmt.Fprintf(&out, " client=%s", id.ClientKey)
			}
			if id.UserSub != "" {
				fmt.Fprintf(&out, " user=%s", id.UserSub)
			}
			if id.ScopeKind != "" {
				fmt.Fprintf(&out, " scope=%s:%s", id.ScopeKind, id.ScopeKey)
			}
		}
		if rl := d.RateLimit; rl.Applied {
			fmt.Fprintf(&out, " ratelimit=%d/%d reset=%d retry=%d", rl.Remaining, rl.Limit, rl.ResetSecs, rl.RetryAfter)
		}
		out.WriteByte('\n')
	}
	const golden = "testdata/decisions.golden"
	if *update {
		if err := os.WriteFile(golden, out.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if !bytes.Equal(out.Bytes(), want) {
		t.Errorf("decisions differ from %s (run with -update and review the diff):\n--- got\n%s--- want\n%s", golden, out.Bytes(), want)
	}
}

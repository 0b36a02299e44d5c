package main

import (
	"fmt"
	"os"

	"github.com/scopegate/scopegate/internal/storetest"
	"github.com/scopegate/scopegate/policy"
)

// fixtureID is the id of the benchmark fixture's row n of a kind (1
// modules, 2 companies, 3 sites, 4 users, 5 API clients).
func fixtureID(kind, n int) string { return fmt.Sprintf("%08d-0000-4000-8000-%012d", kind, n) }

// benchFixture is the benchmark's data, written as a declarative store file
// (-store file) or copied into PostgreSQL (-store pg, copyFixture): 1,000 API
// clients, 10,000 users, 100 companies of 10 sites, 10 modules. User 1 (the
// proxy-jwt user) holds 100 company grants on module inventory; every other
// user holds 5 company grants over several modules and 5 site grants.
func benchFixture() storetest.Fixture {
	f := storetest.Fixture{Secrets: map[string]string{}}
	id := fixtureID
	modules := []string{"inventory", "billing", "stock", "reports", "hr", "crm", "fleet", "orders", "payroll", "audit"}
	for i, m := range modules {
		f.Modules = append(f.Modules, policy.ModuleRecord{ID: id(1, i+1), Key: m, Status: "active"})
	}
	for c := 1; c <= nCompanies; c++ {
		f.Companies = append(f.Companies, policy.CompanyRecord{ID: id(2, c), Key: companyKey(c), Status: "active"})
		for s := 1; s <= nSitesPer; s++ {
			f.Sites = append(f.Sites, policy.SiteRecord{ID: id(3, c*100+s), Key: siteKey(c, s), CompanyID: id(2, c), Status: "active"})
		}
	}
	for u := 1; u <= nUsers; u++ {
		sub := userSub(u)
		f.Users = append(f.Users, policy.UserRecord{ID: id(4, u), Sub: sub, Email: fmt.Sprintf("user%d@bench.test", u), Status: "active", IsActive: true})
		if u == 1 {
			for c := 1; c <= nCompanies; c++ {
				f.Grants = append(f.Grants, storetest.Grant{User: sub, Module: "inventory", Action: "view", Company: companyKey(c)})
			}
			continue
		}
		for k := 0; k < 5; k++ {
			f.Grants = append(f.Grants, storetest.Grant{User: sub, Module: modules[[]int{0, 1, 2, 3, 7}[k]], Action: "view", Company: companyKey((u*7+k*13)%100 + 1)})
			f.Grants = append(f.Grants, storetest.Grant{User: sub, Module: "inventory", Action: "update", Site: siteKey((u*11+k*17)%100+1, k%10+1)})
		}
	}
	ips, origins, paths := clientLists()
	for i := 1; i <= nClients; i++ {
		f.Secrets[clientKey(i)] = clientSecret(i)
		f.Clients = append(f.Clients, policy.ClientRecord{
			ID: id(5, i), ClientKey: clientKey(i), Name: fmt.Sprintf("Bench client %d", i), Status: "active",
			APIKeyHash: storetest.HashSecret(clientSecret(i)), AllowedIPs: ips, AllowedOrigins: origins, AllowedPaths: paths,
		})
	}
	return f
}

// writeFileStore writes the benchmark fixture as a declarative store file.
func writeFileStore(path string) error {
	return os.WriteFile(path, benchFixture().YAML(), 0o644)
}

// clientLists returns the lists every benchmark client holds: 10 CIDRs, 10
// origins and 20 path globs (the shapes of the policy benchmark). Clients
// have no rate limit, so the benchmark measures authorization, not throttling.
func clientLists() (ips, origins, paths []string) {
	for i := 0; i < 9; i++ {
		ips = append(ips, fmt.Sprintf("10.%d.0.0/16", i))
	}
	ips = append(ips, "127.0.0.0/8")
	for i := 0; i < 9; i++ {
		origins = append(origins, fmt.Sprintf("https://app%d.bench.test", i))
	}
	origins = append(origins, "https://*.example.test")
	for i := 0; i < 18; i++ {
		paths = append(paths, fmt.Sprintf("GET /svc%d/**", i))
	}
	paths = append(paths, "/public/**", "/api/**")
	return ips, origins, paths
}

package store_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/scopegate/scopegate/internal/storetest"
	"github.com/scopegate/scopegate/store"
)

// FuzzParseFile checks that ParseFile never panics, that every rejection is
// made of line-numbered *FileError values, and that an accepted file has an
// id on every row.
func FuzzParseFile(f *testing.F) {
	// Seeds: the fixture, the demo file, and a few near misses.
	f.Add(storetest.Basic().YAML())
	if demo, err := os.ReadFile(filepath.Join("..", "configs", "demo", "store.yaml")); err == nil {
		f.Add(demo)
	}
	f.Add([]byte("{}"))
	f.Add([]byte("grants: [{user: a, module: b, action: view, site: c}]"))
	f.Add([]byte("api_clients: [{client_key: a, api_key_hash: '$2b$10$abc'}]"))
	f.Add([]byte("sites: &x [{site_key: s, company: *x}]"))
	f.Fuzz(func(t *testing.T, raw []byte) {
		data, err := store.ParseFile("f.yaml", raw)
		if err != nil {
			fes := store.FileErrors(err)
			if len(fes) == 0 {
				t.Fatalf("ParseFile error %q holds no *FileError", err)
			}
			for _, fe := range fes {
				if fe.Line < 1 {
					t.Fatalf("FileError %q has line %d", fe, fe.Line)
				}
			}
			return
		}
		for _, c := range data.Clients {
			if c.ID == "" || c.ClientKey == "" || c.APIKeyHash == "" {
				t.Fatalf("accepted client without id, key or hash: %+v", c)
			}
		}
		for _, u := range data.Users {
			if u.ID == "" || u.Sub == "" {
				t.Fatalf("accepted user without id or sub: %+v", u)
			}
		}
	})
}

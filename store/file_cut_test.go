package store_test

import (
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/scopegate/scopegate/store"
)

// cutStore is a store file whose second client is restricted to one path,
// with its list fields after api_key_hash: a writer that stops right after
// api_key_hash leaves an entry that parses without them.
const cutStore = `api_clients:
  - client_key: app
    api_key_hash: ` + validHash + `
    allowed_origins: []
    allowed_ips: []
    allowed_paths: []
  - client_key: partner
    api_key_hash: ` + validHash + `
    allowed_origins: []
    allowed_ips: []
    allowed_paths: [GET /api/orders/**]
`

// TestFileReloadRejectsFileCutMidEntry: a writer that rewrites the store
// file in place and pauses inside an entry (after api_key_hash, before the
// allowed_* lines) must not get the cut entry loaded: the watcher's reload
// of the partial file is rejected (it names the missing list), the client
// keeps its path restriction, and the whole file is loaded once written.
// A missing list used to read as "no restriction", so the partner key
// reached every path until the writer went on (issue 15).
func TestFileReloadRejectsFileCutMidEntry(t *testing.T) {
	path := writeFile(t, []byte(cutStore))
	reloads := make(chan error, 64)
	f := openFile(t, path, store.FileConfig{Debounce: 20 * time.Millisecond, OnReload: func(err error) { reloads <- err }})
	restricted := func(when string) {
		t.Helper()
		c, err := f.LookupClient("partner", time.Now())
		if err != nil || c == nil {
			t.Fatalf("%s: LookupClient(partner) = %v, %v", when, c, err)
		}
		if got := c.Record().AllowedPaths; !slices.Equal(got, []string{"GET /api/orders/**"}) {
			t.Fatalf("%s: partner allowed_paths = %q, want its restriction kept", when, got)
		}
	}
	restricted("at start")

	cut := strings.Index(cutStore, "    allowed_origins: []\n    allowed_ips: []\n    allowed_paths: [GET")
	w, err := os.OpenFile(path, os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if _, err := w.WriteString(cutStore[:cut]); err != nil {
		t.Fatal(err)
	}
	if err := w.Sync(); err != nil {
		t.Fatal(err)
	}
	// The writer pauses here until the watcher has read the partial file:
	// a report about it is either a success (the cut entry loaded) or an
	// error naming the missing list; one about the emptied file may come
	// first and is skipped.
	deadline := time.After(5 * time.Second)
	for partial := false; !partial; {
		select {
		case err := <-reloads:
			if err == nil {
				restricted("after the partial file was loaded")
				t.Fatal("the partial file was loaded")
			}
			partial = strings.Contains(err.Error(), "missing allowed_")
		case <-deadline:
			t.Fatal("the watcher never reported the partial file")
		}
	}
	restricted("after the partial file was rejected")

	if _, err := w.WriteString(cutStore[cut:]); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	for loaded := false; !loaded; {
		select {
		case err := <-reloads:
			loaded = err == nil
		case <-deadline:
			t.Fatal("the completed file was never loaded")
		}
	}
	restricted("after the whole file was written")
}

// TestParseFileRequiresClientLists: every api_clients entry names its three
// lists; a missing or null one is an error at the entry's line naming it,
// and [] is accepted as "no restriction".
func TestParseFileRequiresClientLists(t *testing.T) {
	full := "api_clients:\n  - client_key: a\n    api_key_hash: " + validHash + "\n    allowed_origins: []\n    allowed_ips: []\n    allowed_paths: []\n"
	if _, err := store.ParseFile("s.yaml", []byte(full)); err != nil {
		t.Fatalf("all three lists given as []: %v", err)
	}
	for _, field := range []string{"allowed_origins", "allowed_ips", "allowed_paths"} {
		for _, how := range []string{"missing", "null"} {
			t.Run(field+" "+how, func(t *testing.T) {
				replacement := ""
				if how == "null" {
					replacement = "    " + field + ":\n"
				}
				doc := strings.Replace(full, "    "+field+": []\n", replacement, 1)
				_, err := store.ParseFile("s.yaml", []byte(doc))
				fes := store.FileErrors(err)
				if len(fes) != 1 || fes[0].Line != 2 || !strings.Contains(fes[0].Msg, "missing "+field) {
					t.Errorf("ParseFile without %s = %v, want one error at line 2 naming it", field, err)
				}
			})
		}
	}
}

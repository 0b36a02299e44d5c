package store

import (
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/scopegate/scopegate/policy"
)

// FileData is the validated content of a store file: the same rows the
// PostgreSQL store reads from its tables, with every id filled in.
type FileData struct {
	Clients   []policy.ClientRecord
	Users     []policy.UserRecord
	Modules   []policy.ModuleRecord
	Companies []policy.CompanyRecord
	Sites     []policy.SiteRecord
	// Grants holds each user's grants, by user id, in file order.
	Grants map[string][]policy.GrantRecord
}

// FileError is one problem in a store file, with its 1-based line.
type FileError struct {
	Path string
	Line int
	Msg  string
}

func (e *FileError) Error() string {
	return e.Path + ":" + strconv.Itoa(e.Line) + ": " + e.Msg
}

// FileErrors returns the [*FileError] values held by an error from
// [ParseFile] or [OpenFile], in file order.
func FileErrors(err error) []*FileError {
	var out []*FileError
	var walk func(error)
	walk = func(err error) {
		if fe, ok := err.(*FileError); ok {
			out = append(out, fe)
			return
		}
		switch u := err.(type) {
		case interface{ Unwrap() []error }:
			for _, e := range u.Unwrap() {
				walk(e)
			}
		case interface{ Unwrap() error }:
			walk(u.Unwrap())
		}
	}
	if err != nil {
		walk(err)
	}
	return out
}

// maxFileErrors bounds how many problems one parse reports.
const maxFileErrors = 50

// ParseFile decodes and validates a store file. path is used in error
// messages only. The format (see configs/demo/store.yaml for an example):
//
//	companies:    [{id?, company_key, name?, status?}]
//	modules:      [{id?, module_key, name?, status?}]
//	sites:        [{id?, site_key, company, name?, status?}]   # company: company_key or id
//	users:        [{id?, authentik_sub, email?, display_name?, status?, is_active?}]
//	api_clients:  [{id?, client_key, name?, status?, api_key_hash, allowed_origins,
//	                allowed_ips, allowed_paths, rate_limit_per_min?, expires_at?}]
//	grants:       [{user, module, action, company | site}]
//
// All sections are optional, but the file must hold a mapping (an empty
// store is `{}`), so a file truncated mid-write is rejected. A missing id is
// derived from the key (a name-based UUID of table and key), so it is the
// same on every load and every replica. A missing name is the key; a missing
// status is 'active'; is_active defaults to true. Statuses are the enum
// labels of the schema (client_status: active, suspended, revoked;
// record_status: active, inactive); actions are view, create, update, delete,
// manage. In grants, user is an authentik_sub or a user id, module a
// module_key or id, company and site a key or id (keys are tried first);
// exactly one of company and site is given. expires_at is an RFC 3339 time.
//
// Every api_clients entry names allowed_origins, allowed_ips and
// allowed_paths, [] for no restriction: a missing list is an error, so that
// a file cut inside an entry cannot be read as an unrestricted client.
//
// api_key_hash holds sha256:<hex>, 64 bare hex characters, a bcrypt hash or
// an argon2id PHC string, never a secret: anything else is rejected.
// allowed_* entries are validated by [policy.CompileClient].
//
// Every problem found is reported as a [*FileError] with its line (up to
// 50), joined with errors.Join: unknown or repeated fields, duplicate keys,
// ids and emails, bad labels, bad list entries, grants naming a missing row,
// duplicate grants.
func ParseFile(path string, raw []byte) (*FileData, error) {
	d := &fileDecoder{path: path}
	var doc yaml.Node
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		return nil, d.yamlError(err)
	}
	if len(doc.Content) == 0 {
		d.errorf(1, "empty file: expected a mapping with api_clients, users, modules, companies, sites and grants ({} for an empty store)")
		return nil, d.err()
	}
	root := deref(doc.Content[0])
	top := d.fields(root, "the file", []string{"api_clients", "users", "modules", "companies", "sites", "grants"}, nil)
	if top == nil {
		return nil, d.err()
	}
	data := &FileData{Grants: map[string][]policy.GrantRecord{}}
	companies := d.companies(top["companies"], data)
	modules := d.modules(top["modules"], data)
	sites := d.sites(top["sites"], data, companies)
	users := d.users(top["users"], data)
	d.clients(top["api_clients"], data)
	d.grants(top["grants"], data, users, modules, companies, sites)
	if err := d.err(); err != nil {
		return nil, err
	}
	return data, nil
}

// fileDecoder collects problems while walking the YAML tree.
type fileDecoder struct {
	path string
	errs []error
}

func (d *fileDecoder) errorf(line int, format string, args ...any) {
	if len(d.errs) == maxFileErrors {
		d.errs = append(d.errs, &FileError{Path: d.path, Line: line, Msg: "too many errors"})
	}
	if len(d.errs) > maxFileErrors {
		return
	}
	d.errs = append(d.errs, &FileError{Path: d.path, Line: line, Msg: fmt.Sprintf(format, args...)})
}

func (d *fileDecoder) err() error { return errors.Join(d.errs...) }

// yamlError turns a yaml.v3 syntax error ("yaml: line 3: ...") into a
// FileError.
func (d *fileDecoder) yamlError(err error) error {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	line := 1
	if rest, ok := strings.CutPrefix(msg, "line "); ok {
		if i := strings.IndexByte(rest, ':'); i > 0 {
			if n, convErr := strconv.Atoi(rest[:i]); convErr == nil {
				line, msg = n, strings.TrimSpace(rest[i+1:])
			}
		}
	}
	return &FileError{Path: d.path, Line: line, Msg: "invalid YAML: " + msg}
}

func deref(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool {
	return n == nil || (n.Kind == yaml.ScalarNode && n.Tag == "!!null")
}

// plainSecretFields are field names that suggest a secret was pasted where
// only its hash belongs.
var plainSecretFields = map[string]bool{"secret": true, "api_key": true, "token": true, "key": true, "password": true}

// fields checks that n is a mapping whose keys are all known and unique, and
// returns the value nodes by key. required keys must be present and not
// null. It returns nil (after reporting) when n is not a mapping.
func (d *fileDecoder) fields(n *yaml.Node, what string, known, required []string) map[string]*yaml.Node {
	n = deref(n)
	if n.Kind != yaml.MappingNode {
		d.errorf(n.Line, "%s: expected a mapping", what)
		return nil
	}
	out := make(map[string]*yaml.Node, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], deref(n.Content[i+1])
		switch {
		case !slices.Contains(known, k.Value):
			if plainSecretFields[k.Value] {
				d.errorf(k.Line, "%s: unknown field %q: store the secret's hash in api_key_hash (sha256:<hex>), never the secret", what, k.Value)
			} else {
				d.errorf(k.Line, "%s: unknown field %q (known: %s)", what, k.Value, strings.Join(known, ", "))
			}
		case out[k.Value] != nil:
			d.errorf(k.Line, "%s: field %q repeated", what, k.Value)
		default:
			out[k.Value] = v
		}
	}
	for _, r := range required {
		if isNull(out[r]) {
			d.errorf(n.Line, "%s: missing %s", what, r)
		}
	}
	return out
}

// items returns the entries of a section (nil for an absent or null one).
func (d *fileDecoder) items(n *yaml.Node, section string) []*yaml.Node {
	if isNull(n) {
		return nil
	}
	if n.Kind != yaml.SequenceNode {
		d.errorf(n.Line, "%s: expected a list", section)
		return nil
	}
	out := make([]*yaml.Node, len(n.Content))
	for i, c := range n.Content {
		out[i] = deref(c)
	}
	return out
}

// str returns a scalar's text ("" for absent or null).
func (d *fileDecoder) str(m map[string]*yaml.Node, field, what string) string {
	n := m[field]
	if isNull(n) {
		return ""
	}
	if n.Kind != yaml.ScalarNode {
		d.errorf(n.Line, "%s: %s: expected a string", what, field)
		return ""
	}
	return n.Value
}

// id returns the row's id: the given uuid (lower-cased) or one derived from
// table and key. item is the row, for the line of a derived id.
func (d *fileDecoder) id(m map[string]*yaml.Node, item *yaml.Node, table, key, what string, seen map[string]int) string {
	id, ln := d.str(m, "id", what), item.Line
	switch {
	case id == "" && key == "":
		return nameUUID(table + "/") // the missing key was reported
	case id == "":
		id = nameUUID(table + "/" + key)
	case !isUUID(id):
		d.errorf(m["id"].Line, "%s: id %q is not a uuid", what, id)
		return id
	default:
		id, ln = strings.ToLower(id), m["id"].Line
	}
	if prev, dup := seen[id]; dup {
		d.errorf(ln, "%s: duplicate id %s (first at line %d)", what, id, prev)
	}
	seen[id] = ln
	return id
}

// key reads a required unique key field.
func (d *fileDecoder) key(m map[string]*yaml.Node, field, what string, seen map[string]int) string {
	k := d.str(m, field, what)
	if k == "" {
		return ""
	}
	ln := m[field].Line
	if prev, dup := seen[k]; dup {
		d.errorf(ln, "%s: duplicate %s %q (first at line %d)", what, field, k, prev)
		return ""
	}
	seen[k] = ln
	return k
}

// status reads a status label, 'active' when absent.
func (d *fileDecoder) status(m map[string]*yaml.Node, what string, labels []string) string {
	s := d.str(m, "status", what)
	if s == "" {
		return "active"
	}
	if !slices.Contains(labels, s) {
		d.errorf(m["status"].Line, "%s: status %q is not one of %s", what, s, strings.Join(labels, ", "))
	}
	return s
}

var (
	recordStatuses = []string{"active", "inactive"}
	clientStatuses = []string{"active", "suspended", "revoked"}
	actions        = []string{"view", "create", "update", "delete", "manage"}
)

// index maps keys and ids of one table to ids, for references.
type index struct {
	byKey map[string]string
	byID  map[string]string // id → key
}

func newIndex() *index {
	return &index{byKey: map[string]string{}, byID: map[string]string{}}
}

func (x *index) add(key, id string) {
	if key != "" {
		if _, dup := x.byKey[key]; !dup {
			x.byKey[key] = id
		}
	}
	if _, dup := x.byID[id]; !dup {
		x.byID[id] = key
	}
}

// resolve returns the id of the row named by a key or an id.
func (x *index) resolve(ref string) (id, key string, ok bool) {
	if id, ok := x.byKey[ref]; ok {
		return id, ref, true
	}
	if key, ok := x.byID[strings.ToLower(ref)]; ok {
		return strings.ToLower(ref), key, true
	}
	return "", "", false
}

func (d *fileDecoder) companies(n *yaml.Node, data *FileData) *index {
	x, keys, ids := newIndex(), map[string]int{}, map[string]int{}
	for i, item := range d.items(n, "companies") {
		what := fmt.Sprintf("companies[%d]", i)
		m := d.fields(item, what, []string{"id", "company_key", "name", "status"}, []string{"company_key"})
		if m == nil {
			continue
		}
		key := d.key(m, "company_key", what, keys)
		id := d.id(m, item, "companies", key, what, ids)
		data.Companies = append(data.Companies, policy.CompanyRecord{ID: id, Key: key, Status: d.status(m, what, recordStatuses)})
		x.add(key, id)
	}
	return x
}

func (d *fileDecoder) modules(n *yaml.Node, data *FileData) *index {
	x, keys, ids := newIndex(), map[string]int{}, map[string]int{}
	for i, item := range d.items(n, "modules") {
		what := fmt.Sprintf("modules[%d]", i)
		m := d.fields(item, what, []string{"id", "module_key", "name", "status"}, []string{"module_key"})
		if m == nil {
			continue
		}
		key := d.key(m, "module_key", what, keys)
		id := d.id(m, item, "modules", key, what, ids)
		data.Modules = append(data.Modules, policy.ModuleRecord{ID: id, Key: key, Status: d.status(m, what, recordStatuses)})
		x.add(key, id)
	}
	return x
}

func (d *fileDecoder) sites(n *yaml.Node, data *FileData, companies *index) *index {
	x, keys, ids := newIndex(), map[string]int{}, map[string]int{}
	for i, item := range d.items(n, "sites") {
		what := fmt.Sprintf("sites[%d]", i)
		m := d.fields(item, what, []string{"id", "site_key", "company", "name", "status"}, []string{"site_key", "company"})
		if m == nil {
			continue
		}
		key := d.key(m, "site_key", what, keys)
		id := d.id(m, item, "sites", key, what, ids)
		companyID := ""
		if ref := d.str(m, "company", what); ref != "" {
			var ok bool
			if companyID, _, ok = companies.resolve(ref); !ok {
				d.errorf(m["company"].Line, "%s: company %q is not a company_key or id of companies", what, ref)
			}
		}
		data.Sites = append(data.Sites, policy.SiteRecord{ID: id, Key: key, CompanyID: companyID, Status: d.status(m, what, recordStatuses)})
		x.add(key, id)
	}
	return x
}

func (d *fileDecoder) users(n *yaml.Node, data *FileData) *index {
	x, subs, ids, emails := newIndex(), map[string]int{}, map[string]int{}, map[string]int{}
	for i, item := range d.items(n, "users") {
		what := fmt.Sprintf("users[%d]", i)
		m := d.fields(item, what, []string{"id", "authentik_sub", "email", "display_name", "status", "is_active"}, []string{"authentik_sub"})
		if m == nil {
			continue
		}
		sub := d.key(m, "authentik_sub", what, subs)
		id := d.id(m, item, "users", sub, what, ids)
		email := d.str(m, "email", what)
		if email != "" {
			if prev, dup := emails[email]; dup {
				d.errorf(m["email"].Line, "%s: duplicate email %q (first at line %d)", what, email, prev)
			}
			emails[email] = m["email"].Line
		}
		active := true
		if v := m["is_active"]; !isNull(v) {
			b, err := strconv.ParseBool(v.Value)
			if v.Kind != yaml.ScalarNode || v.Tag != "!!bool" || err != nil {
				d.errorf(v.Line, "%s: is_active: expected true or false", what)
			}
			active = b
		}
		data.Users = append(data.Users, policy.UserRecord{
			ID: id, Sub: sub, Email: email, DisplayName: d.str(m, "display_name", what),
			Status: d.status(m, what, recordStatuses), IsActive: active,
		})
		x.add(sub, id)
	}
	return x
}

func (d *fileDecoder) clients(n *yaml.Node, data *FileData) {
	keys, ids := map[string]int{}, map[string]int{}
	known := []string{"id", "client_key", "name", "status", "api_key_hash", "allowed_origins", "allowed_ips", "allowed_paths", "rate_limit_per_min", "expires_at"}
	for i, item := range d.items(n, "api_clients") {
		what := fmt.Sprintf("api_clients[%d]", i)
		m := d.fields(item, what, known, []string{"client_key", "api_key_hash"})
		if m == nil {
			continue
		}
		d.explicitLists(m, item, what)
		rec := policy.ClientRecord{ClientKey: d.key(m, "client_key", what, keys)}
		rec.ID = d.id(m, item, "api_clients", rec.ClientKey, what, ids)
		rec.Name = d.str(m, "name", what)
		if rec.Name == "" {
			rec.Name = rec.ClientKey
		}
		rec.Status = d.status(m, what, clientStatuses)
		if h := d.str(m, "api_key_hash", what); h != "" {
			if msg := checkHash(h); msg != "" {
				d.errorf(m["api_key_hash"].Line, "%s: api_key_hash %s", what, msg) // never echo the value: it may be a secret
			}
			rec.APIKeyHash = h
		}
		rec.AllowedOrigins = d.list(m, "allowed_origins", what, func(e string) policy.ClientRecord { return policy.ClientRecord{AllowedOrigins: []string{e}} })
		rec.AllowedIPs = d.list(m, "allowed_ips", what, func(e string) policy.ClientRecord { return policy.ClientRecord{AllowedIPs: []string{e}} })
		rec.AllowedPaths = d.list(m, "allowed_paths", what, func(e string) policy.ClientRecord { return policy.ClientRecord{AllowedPaths: []string{e}} })
		if v := m["rate_limit_per_min"]; !isNull(v) {
			n, err := strconv.Atoi(v.Value)
			if v.Kind != yaml.ScalarNode || v.Tag != "!!int" || err != nil || n < 0 {
				d.errorf(v.Line, "%s: rate_limit_per_min: expected a whole number >= 0 (0: unlimited; omit for the default)", what)
			} else {
				rec.RateLimitPerMin = &n
			}
		}
		if v := m["expires_at"]; !isNull(v) {
			t, err := time.Parse(time.RFC3339Nano, v.Value)
			if v.Kind != yaml.ScalarNode || err != nil {
				d.errorf(v.Line, "%s: expires_at: expected an RFC 3339 time such as 2030-01-02T15:04:05Z", what)
			} else {
				t = t.UTC()
				rec.ExpiresAt = &t
			}
		}
		data.Clients = append(data.Clients, rec)
	}
}

// clientLists are the api_clients fields an entry must name explicitly.
var clientLists = []string{"allowed_ips", "allowed_origins", "allowed_paths"}

// explicitLists reports each allowed_* field missing from a client entry
// (or null: "allowed_paths:" with nothing under it). An empty list is no
// restriction, as in the database, but it must be written ([]): a file cut
// mid-write (an editor saving in place, a copy still running when the
// watcher reads it) can end inside an entry, and a missing list read as
// "no restriction" would lift the entry's restrictions until the rest
// arrives (issue 15: a path-restricted key reached /api/admin).
func (d *fileDecoder) explicitLists(m map[string]*yaml.Node, item *yaml.Node, what string) {
	for _, f := range clientLists {
		if isNull(m[f]) {
			d.errorf(item.Line, "%s: missing %s: write it on every client, [] for no restriction (a file cut mid-write must not lift a restriction)", what, f)
		}
	}
}

// list reads one allowed_* list, checking each entry on its own line with
// policy.CompileClient. Absent or null (reported by explicitLists) is the
// empty list.
func (d *fileDecoder) list(m map[string]*yaml.Node, field, what string, one func(string) policy.ClientRecord) []string {
	out := []string{}
	n := m[field]
	if isNull(n) {
		return out
	}
	if n.Kind != yaml.SequenceNode {
		d.errorf(n.Line, "%s: %s: expected a list of strings", what, field)
		return out
	}
	for _, e := range n.Content {
		e = deref(e)
		if e.Kind != yaml.ScalarNode || e.Tag == "!!null" {
			d.errorf(e.Line, "%s: %s: expected a string", what, field)
			continue
		}
		rec := one(e.Value)
		rec.APIKeyHash = placeholderHash
		if _, errs := policy.CompileClient(rec); len(errs) > 0 {
			d.errorf(e.Line, "%s: %s", what, strings.TrimPrefix(errs[0].Error(), `client "": `))
		}
		out = append(out, e.Value)
	}
	return out
}

// placeholderHash is a well-formed hash, so that compiling one list entry on
// its own reports only that entry.
const placeholderHash = "sha256:0000000000000000000000000000000000000000000000000000000000000000"

// checkHash returns "" for a hash in one of the formats of SPEC §3 (as
// policy.CompileClient accepts them), else why it is refused. It never
// includes the value, which may be a pasted secret.
func checkHash(h string) string {
	if _, errs := policy.CompileClient(policy.ClientRecord{APIKeyHash: h}); len(errs) == 0 {
		return ""
	}
	switch {
	case strings.HasPrefix(h, "sha256:"):
		return "must be sha256: followed by 64 hex characters"
	case strings.HasPrefix(h, "$2a$"), strings.HasPrefix(h, "$2b$"), strings.HasPrefix(h, "$2y$"):
		return "is not a valid bcrypt hash"
	case strings.HasPrefix(h, "$argon2id$"):
		return "is not a valid argon2id PHC string ($argon2id$v=19$m=...,t=...,p=...$salt$hash)"
	}
	return "is not a hash: give sha256:<hex of the secret's SHA-256>, a bcrypt hash or an argon2id PHC string; plain secrets are refused"
}

func (d *fileDecoder) grants(n *yaml.Node, data *FileData, users, modules, companies, sites *index) {
	type grantKey struct{ user, module, action, scopeType, scopeID string }
	seen := map[grantKey]int{}
	for i, item := range d.items(n, "grants") {
		what := fmt.Sprintf("grants[%d]", i)
		m := d.fields(item, what, []string{"user", "module", "action", "company", "site"}, []string{"user", "module", "action"})
		if m == nil {
			continue
		}
		ok := true
		userID, _, found := users.resolve(d.str(m, "user", what))
		if ref := d.str(m, "user", what); ref != "" && !found {
			d.errorf(m["user"].Line, "%s: user %q is not an authentik_sub or id of users", what, ref)
			ok = false
		}
		_, moduleKey, found := modules.resolve(d.str(m, "module", what))
		if ref := d.str(m, "module", what); ref != "" && !found {
			d.errorf(m["module"].Line, "%s: module %q is not a module_key or id of modules", what, ref)
			ok = false
		}
		action := d.str(m, "action", what)
		if action != "" && !slices.Contains(actions, action) {
			d.errorf(m["action"].Line, "%s: action %q is not one of %s", what, action, strings.Join(actions, ", "))
			ok = false
		}
		company, site := d.str(m, "company", what), d.str(m, "site", what)
		var scopeType, scopeID string
		switch {
		case company != "" && site != "":
			d.errorf(item.Line, "%s: give company or site, not both", what)
			ok = false
		case company != "":
			scopeType = "company"
			if scopeID, _, found = companies.resolve(company); !found {
				d.errorf(m["company"].Line, "%s: company %q is not a company_key or id of companies", what, company)
				ok = false
			}
		case site != "":
			scopeType = "site"
			if scopeID, _, found = sites.resolve(site); !found {
				d.errorf(m["site"].Line, "%s: site %q is not a site_key or id of sites", what, site)
				ok = false
			}
		default:
			d.errorf(item.Line, "%s: missing company or site", what)
			ok = false
		}
		if !ok || userID == "" || moduleKey == "" || action == "" {
			continue
		}
		k := grantKey{userID, moduleKey, action, scopeType, scopeID}
		if prev, dup := seen[k]; dup {
			d.errorf(item.Line, "%s: duplicate grant (first at line %d)", what, prev)
			continue
		}
		seen[k] = item.Line
		data.Grants[userID] = append(data.Grants[userID], policy.GrantRecord{Module: moduleKey, Action: action, ScopeType: scopeType, ScopeID: scopeID})
	}
}

// fileNamespace is the namespace of the name-based UUIDs (RFC 9562 version
// 5) given to rows without an id. Changing it changes every derived id.
var fileNamespace = [16]byte{0x6b, 0x1f, 0x3c, 0x52, 0x8e, 0x4a, 0x4d, 0x2b, 0x9a, 0x77, 0x0c, 0x51, 0x3e, 0x90, 0xd2, 0x14}

// nameUUID returns the version 5 UUID of name in fileNamespace.
func nameUUID(name string) string {
	h := sha1.New()
	h.Write(fileNamespace[:])
	h.Write([]byte(name))
	var u [16]byte
	copy(u[:], h.Sum(nil))
	u[6] = (u[6] & 0x0f) | 0x50
	u[8] = (u[8] & 0x3f) | 0x80
	var b [36]byte
	hex.Encode(b[0:8], u[0:4])
	b[8] = '-'
	hex.Encode(b[9:13], u[4:6])
	b[13] = '-'
	hex.Encode(b[14:18], u[6:8])
	b[18] = '-'
	hex.Encode(b[19:23], u[8:10])
	b[23] = '-'
	hex.Encode(b[24:], u[10:])
	return string(b[:])
}

// isUUID reports whether s is a uuid in the canonical 8-4-4-4-12 form.
func isUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < 36; i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
				return false
			}
		}
	}
	return true
}

package policy

// Directory holds the modules, companies and sites, indexed by key and by id.
// It is immutable and safe for concurrent use; the store swaps in a new one
// when a row changes. A site of an inactive company is inactive. A nil
// *Directory knows nothing.
type Directory struct {
	modulesByID    map[string]*Module
	modulesByKey   map[string]*Module
	companiesByID  map[string]*Company
	companiesByKey map[string]*Company
	sitesByID      map[string]*Site
	sitesByKey     map[string]*Site
}

// Module is a compiled modules row.
type Module struct {
	ID, Key string
	Active  bool // status 'active'
}

// Company is a compiled companies row.
type Company struct {
	ID, Key string
	Active  bool // status 'active'
}

// Site is a compiled sites row.
type Site struct {
	ID, Key string
	Company *Company // nil when the company is not in the directory
	// Active reports that the site and its company are both active.
	Active bool
}

// NewDirectory builds a Directory. Only the status "active" is active; a
// site whose company is inactive or unknown is inactive.
func NewDirectory(modules []ModuleRecord, companies []CompanyRecord, sites []SiteRecord) *Directory {
	d := &Directory{
		modulesByID:    make(map[string]*Module, len(modules)),
		modulesByKey:   make(map[string]*Module, len(modules)),
		companiesByID:  make(map[string]*Company, len(companies)),
		companiesByKey: make(map[string]*Company, len(companies)),
		sitesByID:      make(map[string]*Site, len(sites)),
		sitesByKey:     make(map[string]*Site, len(sites)),
	}
	for _, r := range modules {
		m := &Module{ID: r.ID, Key: r.Key, Active: r.Status == "active"}
		d.modulesByID[r.ID] = m
		d.modulesByKey[r.Key] = m
	}
	for _, r := range companies {
		c := &Company{ID: r.ID, Key: r.Key, Active: r.Status == "active"}
		d.companiesByID[r.ID] = c
		d.companiesByKey[r.Key] = c
	}
	for _, r := range sites {
		co := d.companiesByID[r.CompanyID]
		s := &Site{ID: r.ID, Key: r.Key, Company: co, Active: r.Status == "active" && co != nil && co.Active}
		d.sitesByID[r.ID] = s
		d.sitesByKey[r.Key] = s
	}
	return d
}

// Module returns the module whose id or module_key is v, or nil.
func (d *Directory) Module(v string) *Module {
	if d == nil || v == "" {
		return nil
	}
	if m := d.modulesByID[v]; m != nil {
		return m
	}
	return d.modulesByKey[v]
}

// Company returns the company whose id or company_key is v, or nil.
func (d *Directory) Company(v string) *Company {
	if d == nil || v == "" {
		return nil
	}
	if c := d.companiesByID[v]; c != nil {
		return c
	}
	return d.companiesByKey[v]
}

// Site returns the site whose id or site_key is v, or nil.
func (d *Directory) Site(v string) *Site {
	if d == nil || v == "" {
		return nil
	}
	if s := d.sitesByID[v]; s != nil {
		return s
	}
	return d.sitesByKey[v]
}

package console

import (
	"strings"
	"sync/atomic"

	"github.com/scopegate/scopegate/policy"
)

// routeTable holds the counters of one routes file (src), by route index.
type routeTable struct {
	src   *policy.Routes
	stats []routeStats
}

type routeStats struct {
	hits    atomic.Uint64 // requests that matched the route, allowed or denied
	denials reasonCounts
}

// observeRoute counts a decision on route i of the routes in use. A reload
// swaps in a new table once (the first decision after it).
func (c *Console) observeRoute(i int, r policy.Reason) {
	t := c.routeTable()
	if i < 0 || i >= len(t.stats) {
		return
	}
	s := &t.stats[i]
	s.hits.Add(1)
	if r != policy.ReasonNone {
		s.denials[reasonIndex(r)].Add(1)
	}
}

// routeTable returns the table of the routes in use, building it when the
// routes changed. Counters carry over to a rule with the same methods and
// path in the new file.
func (c *Console) routeTable() *routeTable {
	t := c.routes.Load()
	src := c.cfg.Routes.Routes()
	if t.src == src {
		return t
	}
	c.routesMu.Lock()
	defer c.routesMu.Unlock()
	if t = c.routes.Load(); t.src == src {
		return t
	}
	n := &routeTable{src: src, stats: make([]routeStats, src.Len())}
	old := make(map[string]*routeStats, len(t.stats))
	for i := range t.stats {
		if k := routeKey(t.src.Info(i)); old[k] == nil {
			old[k] = &t.stats[i]
		}
	}
	for i := range n.stats {
		k := routeKey(src.Info(i))
		if o := old[k]; o != nil {
			delete(old, k) // a repeated rule does not count twice
			n.stats[i].hits.Store(o.hits.Load())
			for j := range o.denials {
				n.stats[i].denials[j].Store(o.denials[j].Load())
			}
		}
	}
	c.routes.Store(n)
	return n
}

func routeKey(ri policy.RouteInfo) string {
	return strings.Join(ri.Methods, ",") + " " + ri.Path
}

// routeView is one entry of /api/v1/routes.
type routeView struct {
	Index   int               `json:"index"`
	Line    int               `json:"line"`
	Path    string            `json:"path"`
	Methods []string          `json:"methods"` // empty: every method
	Module  *string           `json:"module"`
	Auth    []string          `json:"auth"`
	Hits    uint64            `json:"hits"`
	Denials map[string]uint64 `json:"denials"`
}

// routeViews builds /api/v1/routes, in the order of the routes file.
func (c *Console) routeViews() []routeView {
	t := c.routeTable()
	out := make([]routeView, 0, len(t.stats))
	for i := range t.stats {
		ri := t.src.Info(i)
		v := routeView{
			Index: i, Line: ri.Line, Path: ri.Path, Methods: ri.Methods, Auth: ri.Auth,
			Hits: t.stats[i].hits.Load(), Denials: t.stats[i].denials.snapshot(),
		}
		if v.Methods == nil {
			v.Methods = []string{}
		}
		if ri.Module != "" {
			m := ri.Module
			v.Module = &m
		}
		out = append(out, v)
	}
	return out
}

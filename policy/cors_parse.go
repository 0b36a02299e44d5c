package policy

import (
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// cors parses the cors: block (SPEC §11). allow_origins is required: the
// word clients, or a non-empty list of allowed_origins patterns ("*" only
// without allow_credentials). The other fields default to the SPEC
// example: allow_methods [GET, HEAD, POST, PUT, PATCH, DELETE],
// allow_headers [Authorization, Content-Type, X-API-Key, X-Client-Key],
// expose_headers the request id, RateLimit and Retry-After headers,
// max_age 600, allow_credentials false. Errors go to p.errs with their lines.
func (p *routesParser) cors(n *yaml.Node) *CORS {
	c := &CORS{}
	methods, headers, expose := defaultCORSMethods, defaultCORSHeaders, defaultCORSExpose
	maxAge := defaultCORSMaxAge
	var originsNode *yaml.Node
	var anyOrigin *yaml.Node
	nerr := len(p.errs)
	p.mapping(n, "cors", func(key string, k, v *yaml.Node) {
		switch key {
		case "allow_origins":
			originsNode = v
			if v.Kind == yaml.ScalarNode && v.Tag == "!!str" {
				if v.Value != "clients" {
					p.errorf(v, `cors: allow_origins must be "clients" or a list of origins`)
				}
				c.fromClients = true
				return
			}
			list := p.list(v, "cors: allow_origins")
			if v.Kind == yaml.SequenceNode && len(v.Content) == 0 {
				p.errorf(v, "cors: allow_origins is empty (no browser could call)")
			}
			for _, e := range list {
				o, err := compileOrigin(e.Value)
				if err != nil {
					p.errorf(e, "cors: allow_origins entry %q: %v", e.Value, err)
					continue
				}
				if o.any {
					anyOrigin = e
				}
				c.origins.add(o)
			}
		case "allow_methods":
			methods = p.tokens(v, "cors: allow_methods", validMethod, "a method in upper case")
		case "allow_headers":
			headers = p.tokens(v, "cors: allow_headers", isToken, "a header name")
		case "expose_headers":
			expose = p.tokens(v, "cors: expose_headers", isToken, "a header name")
		case "max_age":
			n, err := strconv.Atoi(v.Value)
			if v.Kind != yaml.ScalarNode || v.Tag != "!!int" || err != nil || n < 0 || n > maxCORSMaxAge {
				p.errorf(v, "cors: max_age must be a whole number of seconds from 0 to %d", maxCORSMaxAge)
				return
			}
			maxAge = n
		case "allow_credentials":
			if v.Kind != yaml.ScalarNode || v.Tag != "!!bool" {
				p.errorf(v, "cors: allow_credentials must be true or false")
				return
			}
			c.credentials = strings.EqualFold(v.Value, "true")
		default:
			p.errorf(k, "unknown field %q in cors", key)
		}
	})
	if n.Kind == yaml.MappingNode && originsNode == nil {
		p.errorf(n, `cors: allow_origins is required ("clients" or a list of origins)`)
	}
	if anyOrigin != nil && c.credentials {
		p.errorf(anyOrigin, `cors: allow_origins "*" with allow_credentials: true would let every site read answers made with the browser's cookies`)
	}
	if len(p.errs) > nerr {
		return nil
	}
	c.methods = methods
	for _, h := range headers {
		c.headers = append(c.headers, strings.ToLower(h))
	}
	c.allowMethods = strings.Join(methods, ", ")
	c.allowHeaders = strings.Join(headers, ", ")
	c.exposeHeaders = strings.Join(expose, ", ")
	c.maxAge = strconv.Itoa(maxAge)
	return c
}

// tokens parses a list of scalars that must each pass ok (want names what
// they must be), dropping duplicates. An empty list is allowed.
func (p *routesParser) tokens(n *yaml.Node, what string, ok func(string) bool, want string) []string {
	out := []string{}
	if n.Kind == yaml.SequenceNode && len(n.Content) == 0 {
		return out
	}
	for _, e := range p.list(n, what) {
		if !ok(e.Value) {
			p.errorf(e, "%s: %q is not %s", what, e.Value, want)
			continue
		}
		dup := false
		for _, o := range out {
			dup = dup || strings.EqualFold(o, e.Value)
		}
		if !dup {
			out = append(out, e.Value)
		}
	}
	return out
}

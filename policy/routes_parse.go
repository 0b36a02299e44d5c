package policy

import (
	"errors"
	"fmt"
	"strings"

	"gopkg.in/yaml.v3"
)

// maxRoutesFile bounds the size of a routes file ParseRoutes accepts.
const maxRoutesFile = 4 << 20

// ParseRoutes parses and compiles a routes file (SPEC §4). Errors (as
// RoutesError values joined with errors.Join) make the file invalid: YAML
// syntax, unknown fields, duplicate keys, aliases, an unknown default or
// credential kind, a malformed scope, a scope placeholder the path lacks, a
// bad glob or method. Warnings (rules shadowed by an earlier rule, which can
// never match) do not. When action_by_method is absent the mapping of the
// SPEC example applies (GET/HEAD view, POST create, PUT/PATCH update, DELETE
// delete); when superuser_actions is absent it is [manage].
func ParseRoutes(data []byte) (r *Routes, warnings []RoutesError, err error) {
	if len(data) > maxRoutesFile {
		return nil, nil, RoutesError{Line: 1, Msg: "routes file larger than 4 MiB"}
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		line := yamlErrLine(err)
		return nil, nil, RoutesError{Line: line, Msg: strings.Replace(err.Error(), "line "+itoa(line)+": ", "", 1)}
	}
	p := routesParser{r: &Routes{actionByMethod: defaultActionByMethod, superuser: []string{"manage"}}}
	if doc.Kind == 0 || len(doc.Content) == 0 {
		return nil, nil, RoutesError{Line: 1, Msg: "empty routes file"}
	}
	p.file(doc.Content[0])
	if len(p.errs) > 0 {
		return nil, nil, errors.Join(p.errs...)
	}
	rules := p.r.rules
	for i := range rules {
		p.r.index.add(rules[i].glob)
	}
	for j := range rules {
		for i := 0; i < j; i++ {
			if shadows(&rules[i], &rules[j]) {
				warnings = append(warnings, RoutesError{Line: rules[j].line,
					Msg: fmt.Sprintf("route %q is shadowed by the route on line %d and never matches", rules[j].path, rules[i].line)})
				break
			}
		}
	}
	return p.r, warnings, nil
}

// yamlErrLine digs the line out of a yaml.v3 error ("yaml: line 3: ...").
func yamlErrLine(err error) int {
	var n int
	if _, e := fmt.Sscanf(err.Error(), "yaml: line %d:", &n); e == nil && n > 0 {
		return n
	}
	var te *yaml.TypeError
	if errors.As(err, &te) && len(te.Errors) > 0 {
		if _, e := fmt.Sscanf(te.Errors[0], "line %d:", &n); e == nil && n > 0 {
			return n
		}
	}
	return 1
}

type routesParser struct {
	r    *Routes
	errs []error
}

func (p *routesParser) errorf(n *yaml.Node, format string, args ...any) {
	line := 1
	if n != nil && n.Line > 0 {
		line = n.Line
	}
	p.errs = append(p.errs, RoutesError{Line: line, Msg: fmt.Sprintf(format, args...)})
}

// mapping walks a mapping node, rejecting aliases and duplicate keys.
func (p *routesParser) mapping(n *yaml.Node, what string, f func(key string, k, v *yaml.Node)) {
	if n.Kind != yaml.MappingNode {
		p.errorf(n, "%s must be a mapping", what)
		return
	}
	seen := make(map[string]bool, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			p.errorf(k, "%s: keys must be scalars", what)
			continue
		}
		if v.Kind == yaml.AliasNode || k.Kind == yaml.AliasNode {
			p.errorf(v, "%s: YAML aliases are not supported", what)
			continue
		}
		if seen[k.Value] {
			p.errorf(k, "%s: duplicate key %q", what, k.Value)
			continue
		}
		seen[k.Value] = true
		f(k.Value, k, v)
	}
}

func (p *routesParser) scalar(n *yaml.Node, what string) (string, bool) {
	if n.Kind != yaml.ScalarNode {
		p.errorf(n, "%s must be a scalar", what)
		return "", false
	}
	return n.Value, true
}

func (p *routesParser) list(n *yaml.Node, what string) []*yaml.Node {
	if n.Kind != yaml.SequenceNode {
		p.errorf(n, "%s must be a list", what)
		return nil
	}
	for _, c := range n.Content {
		if c.Kind != yaml.ScalarNode {
			p.errorf(c, "%s entries must be scalars", what)
			return nil
		}
	}
	return n.Content
}

func (p *routesParser) file(root *yaml.Node) {
	sawRoutes := false
	p.mapping(root, "routes file", func(key string, k, v *yaml.Node) {
		switch key {
		case "default":
			s, ok := p.scalar(v, "default")
			switch {
			case !ok:
			case s == "deny":
			case s == "authenticated":
				p.r.defaultAuthenticated = true
			default:
				p.errorf(v, "unknown default %q (want deny or authenticated)", s)
			}
		case "action_by_method":
			m := make(map[string]string)
			p.mapping(v, "action_by_method", func(method string, k, v *yaml.Node) {
				if !validMethod(method) {
					p.errorf(k, "action_by_method: bad method %q", method)
					return
				}
				if a, ok := p.scalar(v, "action"); ok {
					if !validName(a) {
						p.errorf(v, "action_by_method: bad action %q", a)
						return
					}
					m[method] = a
				}
			})
			p.r.actionByMethod = m
		case "superuser_actions":
			var acts []string
			if v.Kind == yaml.ScalarNode && v.Tag == "!!null" {
				p.r.superuser = nil
				return
			}
			for _, a := range p.list(v, "superuser_actions") {
				if !validName(a.Value) {
					p.errorf(a, "superuser_actions: bad action %q", a.Value)
					continue
				}
				acts = append(acts, a.Value)
			}
			p.r.superuser = acts
		case "cors":
			p.r.cors = p.cors(v)
		case "routes":
			sawRoutes = true
			if v.Kind == yaml.ScalarNode && v.Tag == "!!null" {
				return
			}
			if v.Kind != yaml.SequenceNode {
				p.errorf(v, "routes must be a list")
				return
			}
			for _, rn := range v.Content {
				p.route(rn)
			}
		default:
			p.errorf(k, "unknown field %q", key)
		}
	})
	if !sawRoutes && len(p.errs) == 0 {
		p.errorf(root, "missing routes")
	}
}

func (p *routesParser) route(n *yaml.Node) {
	r := route{line: n.Line, accept: acceptAll, scope: scopeSpec{slot: -1}}
	var methods []string
	var pathNode, scopeNode, authNode *yaml.Node
	nerr := len(p.errs)
	p.mapping(n, "route", func(key string, k, v *yaml.Node) {
		switch key {
		case "path":
			r.path, _ = p.scalar(v, "path")
			pathNode = v
		case "methods":
			for _, m := range p.list(v, "methods") {
				if !validMethod(m.Value) {
					p.errorf(m, "bad method %q (methods are upper case)", m.Value)
					continue
				}
				methods = append(methods, m.Value)
			}
		case "module":
			if s, ok := p.scalar(v, "module"); ok {
				if s == "" {
					p.errorf(v, "empty module")
				}
				r.module = s
			}
		case "action":
			if s, ok := p.scalar(v, "action"); ok {
				if !validName(s) {
					p.errorf(v, "bad action %q", s)
				}
				r.action = s
			}
		case "scope":
			scopeNode = v
			if s, ok := p.scalar(v, "scope"); ok {
				sp, err := compileScope(s)
				if err != nil {
					p.errorf(v, "scope %q: %v", s, err)
					return
				}
				r.scope = sp
			}
		case "auth":
			authNode = v
			p.auth(v, &r)
		case "allow_encoded_slash":
			if v.Kind != yaml.ScalarNode || v.Tag != "!!bool" {
				p.errorf(v, "allow_encoded_slash must be true or false")
				return
			}
			r.allowEncodedSlash = v.Value == "true" || v.Value == "True" || v.Value == "TRUE"
		default:
			p.errorf(k, "unknown field %q in route", key)
		}
	})
	if n.Kind != yaml.MappingNode {
		return
	}
	if pathNode == nil {
		p.errorf(n, "route without path")
		return
	}
	segs, err := compileSegments(r.path, true)
	if err != nil {
		p.errorf(pathNode, "path %q: %v", r.path, err)
		return
	}
	r.glob = glob{methods: methods, segs: segs, src: r.path}
	r.glob.setPrefix()
	if !r.assignSlots() {
		p.errorf(scopeNode, "scope placeholder {%s} is not in the path %q", r.scope.name, r.path)
	}
	if r.public && (r.module != "" || r.scope.kind != scopeNone) {
		p.errorf(authNode, "an auth: none route cannot have a module or a scope")
	}
	if r.action != "" && r.module == "" {
		p.errorf(n, "action without module")
	}
	if r.scope.kind != scopeNone && r.module == "" && !r.public {
		// A scope is authorized only through a grant on a module: without
		// one, any user would pass and X-Auth-Scope would name a company
		// or site nobody checked them against.
		p.errorf(scopeNode, "scope without module: a scope is checked against the grants of a module")
	}
	if r.module != "" && r.scope.kind == scopeNone {
		p.errorf(n, `module %q needs a scope (use scope: any for any company or site)`, r.module)
	}
	if len(p.errs) == nerr {
		p.r.rules = append(p.r.rules, r)
	}
}

func (p *routesParser) auth(v *yaml.Node, r *route) {
	if v.Kind == yaml.ScalarNode {
		if v.Value == "none" {
			r.public = true
			r.accept = 0
			return
		}
		p.errorf(v, `auth must be none or a list of api_key, jwt`)
		return
	}
	if v.Kind != yaml.SequenceNode || len(v.Content) == 0 {
		p.errorf(v, `auth must be none or a non-empty list of api_key, jwt`)
		return
	}
	r.accept = 0
	for _, c := range v.Content {
		switch {
		case c.Kind != yaml.ScalarNode:
			p.errorf(c, "auth entries must be scalars")
		case c.Value == "api_key":
			r.accept |= acceptAPIKey
		case c.Value == "jwt":
			r.accept |= acceptJWT
		default:
			p.errorf(c, "unknown credential kind %q (want api_key or jwt)", c.Value)
		}
	}
}

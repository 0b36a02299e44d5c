package proxy

import (
	"net"
	"strings"
	"sync"

	"github.com/valyala/fasthttp"

	"github.com/scopegate/scopegate/internal/bytesconv"
	"github.com/scopegate/scopegate/policy"
	"github.com/scopegate/scopegate/proxy/envoycheck"
)

// envoyCall is the pooled request context of a CheckEnvoy call.
type envoyCall struct {
	ctx  fasthttp.RequestCtx
	addr net.TCPAddr
	ip   [16]byte
	uri  []byte
}

var envoyCalls = sync.Pool{New: func() any { return new(envoyCall) }}

// Request fields CheckEnvoy does not copy: the client address is Source,
// and the body framing belongs to the check's own transport.
var envoySkipped = [...]string{"x-forwarded-for", "x-real-ip", "content-length", "transfer-encoding", "host"}

// CheckEnvoy decides an Envoy ext_authz check on the path of /_auth/envoy:
// the check becomes one request (method, AuthPath/envoy + path, headers,
// X-Forwarded-For: Source, from Peer) served by the same handler, so the
// decision, its metrics, its log line, its CORS handling and its answer are
// those of the HTTP form. Header fields over MaxHeaderBytes in all are
// answered 431 bad_request, as the listener answers them. It is safe for
// concurrent use.
func (p *Proxy) CheckEnvoy(c *envoycheck.Request) *envoycheck.Answer {
	call := envoyCalls.Get().(*envoyCall)
	defer envoyCalls.Put(call)
	ctx := &call.ctx
	ctx.Request.Reset()
	ctx.Response.Reset()
	ctx.Init2(nil, nil, false) // the request's time is now
	n := 0
	if ip := c.Peer.Unmap(); ip.Is4() {
		a := ip.As4()
		n = copy(call.ip[:], a[:])
	} else if ip.Is6() {
		a := ip.As16()
		n = copy(call.ip[:], a[:])
	}
	call.addr = net.TCPAddr{IP: call.ip[:n], Port: 1}
	ctx.SetRemoteAddr(&call.addr)

	fault := policy.ReasonNone
	if c.Missing || c.Method == "" || c.Path == "" || c.Path[0] != '/' || !c.Source.IsValid() {
		fault = policy.ReasonForwardedInvalid
	}
	h := &ctx.Request.Header
	if c.Method != "" {
		h.SetMethod(c.Method)
	}
	call.uri = append(append(call.uri[:0], p.envoyPath...), c.Path...)
	if fault != policy.ReasonNone {
		call.uri = append(call.uri[:0], p.envoyPath...)
	}
	h.SetRequestURIBytes(call.uri)
	if c.Host != "" {
		h.SetHost(c.Host)
	}
	size := len(c.Method) + len(c.Path) + len(c.Host)
	if c.Headers != nil {
		for k, v := range c.Headers {
			size += len(k) + len(v) + 4
			if size > p.cfg.MaxHeaderBytes {
				break
			}
			if k == "" || k[0] == ':' || skippedEnvoyField(k) {
				continue
			}
			h.Add(k, v)
		}
	}
	if c.Source.IsValid() {
		h.SetCanonical(hdrXFF, c.Source.Unmap().AppendTo(call.uri[:0]))
	}
	if size > p.cfg.MaxHeaderBytes {
		p.answerUnparsed(ctx, fasthttp.StatusRequestHeaderFieldsTooLarge, "the request headers are too large",
			"gRPC check: header fields over SCOPEGATE_MAX_HEADER_BYTES")
	} else {
		p.handle(ctx, true, fault)
	}
	return p.envoyAnswer(c, &ctx.Response)
}

func skippedEnvoyField(k string) bool {
	for _, s := range envoySkipped {
		if strings.EqualFold(k, s) {
			return true
		}
	}
	return false
}

// envoyAnswer lays resp (the /_auth/envoy answer) out for Envoy.
func (p *Proxy) envoyAnswer(c *envoycheck.Request, resp *fasthttp.Response) *envoycheck.Answer {
	a := &envoycheck.Answer{Status: resp.StatusCode()}
	allowed := a.Status == fasthttp.StatusOK
	a.Client = make([]envoycheck.Header, 0, 8)
	if allowed {
		a.Upstream = make([]envoycheck.Header, 0, 8)
	}
	for k, v := range resp.Header.All() {
		name := bytesconv.String(k)
		switch {
		case equalFoldASCII(k, "Content-Length"), equalFoldASCII(k, "Connection"), equalFoldASCII(k, "Date"):
		case !allowed:
			a.Client = append(a.Client, p.hdr(name, v))
		case policy.HasHeaderPrefix(name, p.prefix):
			a.Upstream = append(a.Upstream, p.hdr(name, v))
		case equalFoldASCII(k, "X-Request-Id"):
			a.Upstream = append(a.Upstream, p.hdr(name, v))
			a.Client = append(a.Client, p.hdr(name, v))
		case equalFoldASCII(k, "X-Envoy-Auth-Headers-To-Remove"), equalFoldASCII(k, "Cache-Control"),
			equalFoldASCII(k, "Content-Type"):
			// The HTTP form's own means of removal, and the auth
			// answer's own framing: not the client's.
		default:
			a.Client = append(a.Client, p.hdr(name, v))
		}
	}
	if !allowed {
		a.Body = string(resp.Body())
		return a
	}
	if c.Headers == nil {
		return a
	}
	for k := range c.Headers {
		if !policy.HasHeaderPrefix(k, p.prefix) || setIn(a.Upstream, k) || containsFold(a.Remove, k) {
			continue
		}
		a.Remove = append(a.Remove, k)
	}
	return a
}

// hdr copies a response header field; the names scopegate sets itself are
// not copied (constants outlive the call).
func (p *Proxy) hdr(name string, v []byte) envoycheck.Header {
	for _, k := range [...]string{p.hdrType, p.hdrClient, p.hdrCKey, p.hdrUserID, p.hdrUserSub, p.hdrEmail, p.hdrScope, "X-Request-Id"} {
		if name == k {
			return envoycheck.Header{Name: k, Value: string(v)}
		}
	}
	return envoycheck.Header{Name: strings.Clone(name), Value: string(v)}
}

// setIn reports whether hs sets the header name (any case).
func setIn(hs []envoycheck.Header, name string) bool {
	for _, h := range hs {
		if strings.EqualFold(h.Name, name) {
			return true
		}
	}
	return false
}

func containsFold(l []string, s string) bool {
	for _, x := range l {
		if strings.EqualFold(x, s) {
			return true
		}
	}
	return false
}

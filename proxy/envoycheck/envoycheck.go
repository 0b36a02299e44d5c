// Package envoycheck holds the transport-neutral form of an Envoy ext_authz
// check and its answer: what the gRPC server (package extauthz) hands the
// proxy's /_auth/envoy decision path and gets back. It depends on nothing,
// so neither side imports the other.
package envoycheck

import (
	"iter"
	"net/netip"
)

// Request is one Envoy ext_authz check, whatever its transport: the
// fields of the gRPC Authorization/Check request's attributes (SPEC §12).
// the proxy (Proxy.CheckEnvoy) decides it on the same path as /_auth/envoy.
type Request struct {
	// Peer is the transport's peer (the Envoy that called). Only a
	// trusted proxy may ask (else 403 forwarded_untrusted).
	Peer netip.Addr
	// Source is attributes.source.address: the client. Invalid (absent or
	// not an IP address): 403 forwarded_invalid.
	Source netip.Addr
	// Missing reports that attributes.request.http is absent: 403
	// forwarded_invalid.
	Missing bool
	// Method and Path are the request's method and :path (raw, with the
	// query). An empty method, or a path that does not start with "/", is
	// 403 forwarded_invalid; the path is screened as in SPEC §5.
	Method, Path string
	// Host is the :authority ("" when absent).
	Host string
	// Headers are the request's header fields as Envoy sends them (lower
	// case names; a name may repeat). Pseudo-headers (":path"), and the
	// forwarded address fields (the client address is Source), are skipped.
	Headers iter.Seq2[string, string]
}

// Header is one header field of an [Answer].
type Header struct{ Name, Value string }

// Answer is the decision on a [Request], laid out as Envoy's
// CheckResponse wants it.
type Answer struct {
	// Status is the HTTP status of the /_auth/envoy answer: 200 allows;
	// anything else (the 204 of an allowed CORS preflight included) is the
	// answer the client gets.
	Status int
	// Upstream (allowed) are the headers to set on the upstream request,
	// overwriting: the identity headers and X-Request-Id.
	Upstream []Header
	// Remove (allowed) are the client's header names with the identity
	// prefix (any case, '_' read as '-') that Upstream does not set.
	Remove []string
	// Client are the headers of the client's answer: when allowed the
	// rate-limit, X-Request-Id and CORS headers; when denied every header
	// of the denial.
	Client []Header
	// Body is the denial's JSON body ("" when allowed).
	Body string
}

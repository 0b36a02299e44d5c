// Package proxy adapts fasthttp to the policy engine: the traffic handler
// (reverse proxy and forward-auth), the denial writer and the admin listener.
//
// proxy orchestrates and maps decisions to HTTP; it holds no allow/deny rule
// of its own. For each request it reads the raw request target (never the
// decoded, cleaned fasthttp Path), fills a [policy.Request], asks the
// [policy.Engine] and the store, and then either forwards the request to an
// upstream, answers a forward-auth call, or writes a JSON denial.
//
// Security notes:
//   - Forwarded headers (X-Forwarded-For, X-Real-IP, X-Forwarded-Method/-Uri,
//     X-Original-Method/-URI) are read only from peers in the trusted-proxy
//     list. An untrusted peer gets 403 forwarded_untrusted on every
//     forward-auth path, and its X-Forwarded-* and Forwarded headers are
//     replaced, not passed on, in proxy mode.
//   - Every incoming header whose name starts with the identity prefix
//     (default X-Auth-, compared case-insensitively and with '_' read as '-')
//     is removed before forwarding, on every route.
//   - The raw path is forwarded unchanged, so the path that was checked is the
//     path the upstream sees.
//   - Store failures fail closed with 503 store_unavailable.
package proxy

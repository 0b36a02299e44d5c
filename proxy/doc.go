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
//     forward-auth path, and in proxy mode its forwarding headers
//     (Forwarded, every X-Forwarded-*, X-Real-IP, True-Client-IP,
//     CF-Connecting-IP, Front-End-Https...) are replaced or dropped, never
//     passed on. More than one X-Real-IP line from a trusted peer is
//     forwarded_invalid.
//   - Every incoming header whose name starts with the identity prefix
//     (default X-Auth-, compared case-insensitively and with '_' read as '-')
//     is removed before forwarding, on every route. In forward-auth mode,
//     where the proxy in front forwards the client's headers, a name with
//     '_' that reads as the prefix (X_Auth_User_Id) is refused: 403
//     identity_header_sent.
//   - A field the decision read (credentials, Origin, a scope header) is
//     kept when the client names it in Connection; a repeated Origin is
//     origin_not_allowed.
//   - The raw path is forwarded unchanged, so the path that was checked is the
//     path the upstream sees.
//   - Store failures fail closed with 503 store_unavailable.
//
// Forward-auth answers (AuthPath):
//   - 200 allows, with the identity headers and, for rate-limited keys, the
//     RateLimit headers; Envoy also gets x-envoy-auth-headers-to-remove
//     naming the identity headers that have no value.
//   - Denials have the proxy mode's status, JSON body and headers, except
//     that the 400-class reasons (path_invalid, forwarded_invalid) are
//     answered 403, and they also carry X-Scopegate-Reason and
//     X-Scopegate-Error so nginx, which discards the auth body, can rebuild
//     the JSON (configs/nginx/scopegate.conf).
//   - 429 rate_limited and 503 store_unavailable keep their status: Traefik
//     and Envoy pass them on (Envoy maps 5xx to its status_on_error);
//     nginx turns them into 500, which configs/nginx/scopegate.conf maps back to 429
//     (with Retry-After) or 503 with error_page. Answering 403 instead would
//     lose the status for Traefik and Envoy, and a 503 is still a denial.
//   - The original request comes from X-Forwarded-Method/-Uri (Traefik) or
//     X-Original-Method/-URI (nginx); if both conventions are present and
//     disagree, one was forged by the client behind the other proxy:
//     403 forwarded_invalid. A missing method or URI is forwarded_invalid.
//
// Envoy over gRPC: [Proxy.CheckEnvoy] decides a check of package extauthz
// (SCOPEGATE_GRPC_ADDR) on the /_auth/envoy path itself, so both transports
// answer, count and log alike (see package envoycheck for its form).
//
// CORS (a cors: block in the routes file): preflights are answered on the
// traffic listener and on /_auth/envoy (204 or 403 cors_rejected, never
// forwarded), and every answer passes through corsAnswer last (proxy/cors.go).
//
// Malformed HTTP (unparsable request, headers over MaxHeaderBytes, a body
// over MaxBodyBytes) is answered before any decision with 400/431/413 and a
// JSON body whose reason is "bad_request".
package proxy

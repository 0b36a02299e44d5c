// Package policy decides whether a request may pass.
//
// policy is pure: it imports no HTTP server, no database driver and no logger,
// and it has no clock of its own (decisions read Request.Now); the one timer
// is the bound on a bcrypt or Argon2id check's wait for a hashing slot,
// which measures how long a request has been held, not what time it is.
// The HTTP side (package proxy) fills a
// [Request], the store side supplies compiled [Client], [User] and [Directory]
// values, and the [Engine] returns a [Decision]. The zero Decision denies.
//
// Everything that decides allow or deny lives here: credential parsing, hash
// verification, the API-key checks of SPEC §3, raw path screening of SPEC §5,
// JWT verification, route matching and scoped permissions of SPEC §4.
//
// # Calling sequence
//
// For every request the HTTP side:
//
//  1. parses the credential with [ParseCredential] into Request.Cred;
//  2. computes the client address with [Engine.ClientIP] and stores the
//     returned Reason in Request.Forwarded (so forwarded_invalid is reported
//     after path_invalid, the order of SPEC §4);
//  3. calls [Engine.Match]: raw path screening, route match, credential kind;
//     a Decision with a Reason denies, m.Public allows without credentials;
//  4. for an API key, looks the client up by Cred.ClientKey and calls
//     [Engine.AuthorizeClient]; for a JWT, calls [Engine.VerifyToken], looks
//     the user up by Claims.Subject and calls [Engine.AuthorizeUser]. With
//     user sync on (JWTConfig.Profile), Claims.Profile is the token's
//     [UserProfile] ([ProfileFromClaims]), which the store writes (SPEC §14).
//
// Compiled values are immutable and safe for concurrent use; the Engine's
// token buckets and verified-token cache are internally synchronised. The
// hot paths (credential parsing, Match, a SHA-256 or cached slow-hash API-key
// decision, a cached JWT decision with the permission check) do not allocate;
// TestDecideNoAllocs keeps it so.
//
// # Choices where SPEC is silent
//
//   - X-Forwarded-For entries must be plain IP addresses (no port, no
//     brackets, no zone); anything else from a trusted peer is
//     forwarded_invalid. When every entry is a trusted proxy the left-most
//     is the client.
//   - Methods in routes and allowed_paths match exactly, except that GET
//     admits HEAD (HEAD is GET without content, RFC 9110 §9.3.2; nginx's
//     limit_except GET does the same). HEAD does not admit GET.
//   - An Authorization header with a scheme other than Bearer or ApiKey is
//     not a scopegate credential and is ignored (the JWT cookie is then
//     considered).
//   - An X-Client-Key without X-API-Key is a malformed API key
//     (api_key_invalid).
//   - Invalid percent escapes and paths that do not decode to UTF-8 are
//     path_invalid, like the encodings SPEC §5 lists.
//   - A route with a module needs a scope (scope: any for any scope); a
//     public (auth: none) route cannot have either.
//   - API keys on a route with a scope are authorized by their own
//     allowed_paths only; their Identity carries no scope.
//   - A verified JWT is served from the cache for at most
//     JWTConfig.CacheMaxAge (default 5m) and never past exp + leeway.
package policy

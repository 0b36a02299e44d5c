// Package policy decides whether a request may pass.
//
// policy is pure: it imports no HTTP server, no database driver and no logger,
// and it has no clock of its own. The HTTP side (package proxy) fills a
// [Request], the store side supplies compiled [Client], [User] and [Directory]
// values, and the [Engine] returns a [Decision]. The zero Decision denies.
//
// Everything that decides allow or deny lives here: credential parsing, hash
// verification, the API-key checks of SPEC §3, raw path screening of SPEC §5,
// JWT verification, route matching and scoped permissions of SPEC §4.
package policy

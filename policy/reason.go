package policy

// Reason is the machine-readable code of a denial (SPEC §3–§6). The zero
// Reason is [ReasonNone], carried by allowed decisions.
type Reason uint8

// Reasons, as they appear in the JSON body of a denial.
const (
	ReasonNone                  Reason = iota
	ReasonCredentialsMissing           // 401 credentials_missing
	ReasonAPIKeyInvalid                // 401 api_key_invalid
	ReasonAPIKeyInactive               // 401 api_key_inactive
	ReasonAPIKeyExpired                // 401 api_key_expired
	ReasonIPNotAllowed                 // 403 ip_not_allowed
	ReasonOriginNotAllowed             // 403 origin_not_allowed
	ReasonPathNotAllowed               // 403 path_not_allowed
	ReasonRateLimited                  // 429 rate_limited
	ReasonTokenExpired                 // 401 token_expired
	ReasonTokenInvalid                 // 401 token_invalid
	ReasonUserUnknown                  // 403 user_unknown
	ReasonUserInactive                 // 403 user_inactive
	ReasonNoRoute                      // 403 no_route
	ReasonCredentialNotAccepted        // 401 credential_not_accepted
	ReasonScopeUnknown                 // 403 scope_unknown
	ReasonScopeInactive                // 403 scope_inactive
	ReasonModuleUnknown                // 403 module_unknown
	ReasonModuleInactive               // 403 module_inactive
	ReasonPermissionDenied             // 403 permission_denied
	ReasonPathInvalid                  // 400 path_invalid
	ReasonForwardedInvalid             // 400 forwarded_invalid
	ReasonForwardedUntrusted           // 403 forwarded_untrusted
	ReasonIdentityHeaderSent           // 403 identity_header_sent
	ReasonStoreUnavailable             // 503 store_unavailable
	ReasonRateLimitUnavailable         // 503 rate_limit_unavailable
	ReasonUpstreamUnavailable          // 502 upstream_unavailable
	ReasonUpstreamTimeout              // 504 upstream_timeout
	ReasonCORSRejected                 // 403 cors_rejected
	ReasonInternal                     // 500 internal_error
	ReasonTooManyTunnels               // 503 too_many_tunnels
	reasonCount
)

var reasonInfo = [reasonCount]struct {
	code   string
	status int
	text   string
}{
	ReasonNone:                  {"", 200, ""},
	ReasonCredentialsMissing:    {"credentials_missing", 401, "credentials are required"},
	ReasonAPIKeyInvalid:         {"api_key_invalid", 401, "the API key is not valid"},
	ReasonAPIKeyInactive:        {"api_key_inactive", 401, "the API key is not active"},
	ReasonAPIKeyExpired:         {"api_key_expired", 401, "the API key has expired"},
	ReasonIPNotAllowed:          {"ip_not_allowed", 403, "the client IP is not allowed for this key"},
	ReasonOriginNotAllowed:      {"origin_not_allowed", 403, "the origin is not allowed for this key"},
	ReasonPathNotAllowed:        {"path_not_allowed", 403, "the path is not allowed for this key"},
	ReasonRateLimited:           {"rate_limited", 429, "rate limit exceeded"},
	ReasonTokenExpired:          {"token_expired", 401, "the token has expired"},
	ReasonTokenInvalid:          {"token_invalid", 401, "the token is not valid"},
	ReasonUserUnknown:           {"user_unknown", 403, "the user is not known"},
	ReasonUserInactive:          {"user_inactive", 403, "the user is not active"},
	ReasonNoRoute:               {"no_route", 403, "no route matches this request"},
	ReasonCredentialNotAccepted: {"credential_not_accepted", 401, "this route does not accept this kind of credential"},
	ReasonScopeUnknown:          {"scope_unknown", 403, "the scope is missing or not known"},
	ReasonScopeInactive:         {"scope_inactive", 403, "the scope is not active"},
	ReasonModuleUnknown:         {"module_unknown", 403, "the module is not known"},
	ReasonModuleInactive:        {"module_inactive", 403, "the module is not active"},
	ReasonPermissionDenied:      {"permission_denied", 403, "permission denied"},
	ReasonPathInvalid:           {"path_invalid", 400, "the request path is not acceptable"},
	ReasonForwardedInvalid:      {"forwarded_invalid", 400, "a forwarded header could not be parsed"},
	ReasonForwardedUntrusted:    {"forwarded_untrusted", 403, "forward-auth requests are accepted only from trusted proxies"},
	ReasonIdentityHeaderSent:    {"identity_header_sent", 403, "the request carries an identity header spelled with an underscore"},
	ReasonStoreUnavailable:      {"store_unavailable", 503, "the credential store is unavailable"},
	ReasonRateLimitUnavailable:  {"rate_limit_unavailable", 503, "the shared rate limit is unavailable"},
	ReasonUpstreamUnavailable:   {"upstream_unavailable", 502, "the upstream is unavailable"},
	ReasonUpstreamTimeout:       {"upstream_timeout", 504, "the upstream did not answer in time"},
	ReasonCORSRejected:          {"cors_rejected", 403, "the CORS preflight is not allowed"},
	ReasonInternal:              {"internal_error", 500, "internal error"},
	ReasonTooManyTunnels:        {"too_many_tunnels", 503, "too many upgrade tunnels are open"},
}

// String returns the reason code, such as "api_key_invalid"; "" for [ReasonNone].
func (r Reason) String() string {
	if r >= reasonCount {
		return "internal_error"
	}
	return reasonInfo[r].code
}

// Status returns the HTTP status SPEC assigns to the reason (200 for [ReasonNone]).
func (r Reason) Status() int {
	if r >= reasonCount {
		return 500
	}
	return reasonInfo[r].status
}

// Text returns a short human-readable explanation for the JSON "error" field.
func (r Reason) Text() string {
	if r >= reasonCount {
		return "internal error"
	}
	return reasonInfo[r].text
}

// ParseReason returns the Reason whose code is s.
func ParseReason(s string) (Reason, bool) {
	for r := Reason(1); r < reasonCount; r++ {
		if reasonInfo[r].code == s {
			return r, true
		}
	}
	return ReasonNone, false
}

// AllReasons returns every denial reason, in declaration order.
func AllReasons() []Reason {
	out := make([]Reason, 0, reasonCount-1)
	for r := Reason(1); r < reasonCount; r++ {
		out = append(out, r)
	}
	return out
}

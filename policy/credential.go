package policy

import (
	"encoding/base64"
	"strings"

	"github.com/scopegate/scopegate/internal/bytesconv"
)

// CredentialHeaders holds the raw values a credential can come from. Empty
// means absent.
type CredentialHeaders struct {
	APIKey        string // SCOPEGATE_API_KEY_HEADER (default X-API-Key)
	ClientKey     string // X-Client-Key
	Authorization string
	JWTCookie     string // value of the cookie named by SCOPEGATE_JWT_COOKIE
}

// Credential is the one credential a request carries (SPEC §3: the first
// present of X-API-Key / the X-Client-Key pair, then Authorization, then the
// JWT cookie). Its strings alias the request's buffers.
type Credential struct {
	Kind CredentialKind
	// API key: ClientKey and Secret (split at the last dot, or the
	// X-Client-Key pair). Malformed is set when an API key was presented but
	// cannot be split; it is then api_key_invalid.
	ClientKey string
	Secret    string
	Malformed bool
	// Token is the whole presented token: the API key as sent, or the JWT.
	Token string
	// InAuthorization reports that the credential came in the Authorization
	// header (stripped before forwarding with SCOPEGATE_STRIP_CREDENTIALS).
	InAuthorization bool
}

// ParseCredential picks and parses the credential of a request (SPEC §3):
//
//   - X-API-Key, or the pair X-Client-Key + X-API-Key (the secret). An
//     X-Client-Key without X-API-Key is a malformed API key;
//   - else Authorization "Bearer <token>" (a JWT when the token looks like
//     one: three base64url segments whose first decodes to a JSON object with
//     "alg"; otherwise an API key) or "ApiKey <token>" (always an API key);
//     scheme names are case-insensitive. Other schemes (Basic, ...) are not
//     scopegate credentials and are ignored;
//   - else the JWT cookie.
//
// An API key token is split at its last dot into client_key and secret;
// either part empty is Malformed. Only the first present source is
// considered. It does not allocate.
func ParseCredential(h CredentialHeaders) Credential {
	if h.APIKey != "" || h.ClientKey != "" {
		if h.ClientKey != "" {
			return Credential{Kind: CredentialAPIKey, ClientKey: h.ClientKey, Secret: h.APIKey, Token: h.APIKey, Malformed: h.APIKey == ""}
		}
		return apiKeyCredential(h.APIKey, false)
	}
	if h.Authorization != "" {
		scheme, tok := SplitAuthorization(h.Authorization)
		switch {
		case strings.EqualFold(scheme, "Bearer"):
			if looksLikeJWT(tok) {
				return Credential{Kind: CredentialJWT, Token: tok, InAuthorization: true}
			}
			return apiKeyCredential(tok, true)
		case strings.EqualFold(scheme, "ApiKey"):
			return apiKeyCredential(tok, true)
		}
	}
	if h.JWTCookie != "" {
		return Credential{Kind: CredentialJWT, Token: h.JWTCookie}
	}
	return Credential{}
}

// SplitAuthorization splits an Authorization value into its scheme and
// its credentials, spaces around each trimmed: "Bearer  t " is "Bearer"
// and "t". Scheme names are case-insensitive (strings.EqualFold); a value
// without credentials yields token "". The one reader of Authorization's
// form: credentials here, the admin token in proxy.
func SplitAuthorization(v string) (scheme, token string) {
	scheme, token, _ = strings.Cut(strings.TrimSpace(v), " ")
	return scheme, strings.TrimSpace(token)
}

func apiKeyCredential(tok string, inAuth bool) Credential {
	c := Credential{Kind: CredentialAPIKey, Token: tok, InAuthorization: inAuth}
	i := strings.LastIndexByte(tok, '.')
	if i <= 0 || i == len(tok)-1 {
		c.Malformed = true
		return c
	}
	c.ClientKey, c.Secret = tok[:i], tok[i+1:]
	return c
}

// JWT recognition decodes the header on the stack up to stackJWTHeader
// encoded bytes (the common case: no allocation) and on the heap up to
// maxJWTHeader (headers carrying x5c certificate chains); longer headers are
// not recognised as JWTs.
const (
	stackJWTHeader = 2048
	maxJWTHeader   = 16 << 10
)

// looksLikeJWT reports whether tok is three base64url segments whose first
// decodes to a JSON object with an "alg" member. It does not allocate for
// headers up to 2 KiB.
func looksLikeJWT(tok string) bool {
	i := strings.IndexByte(tok, '.')
	if i <= 0 || i > maxJWTHeader {
		return false
	}
	rest := tok[i+1:]
	j := strings.IndexByte(rest, '.')
	if j <= 0 || strings.IndexByte(rest[j+1:], '.') >= 0 {
		return false
	}
	// An empty signature segment still makes a JWT (alg none), which then
	// fails verification as token_invalid rather than passing as an API key.
	if !isBase64URL(tok[:i]) || !isBase64URL(rest[:j]) || !isBase64URL(rest[j+1:]) {
		return false
	}
	var stack [stackJWTHeader / 4 * 3]byte
	buf := stack[:]
	if i > stackJWTHeader {
		buf = make([]byte, base64.RawURLEncoding.DecodedLen(i))
	}
	n, err := base64.RawURLEncoding.Decode(buf, bytesconv.Bytes(tok[:i]))
	if err != nil {
		return false
	}
	return jsonObjectHasAlg(buf[:n])
}

func isBase64URL(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// jsonObjectHasAlg is a cheap shape check, not a JSON parser: the text is an
// object and holds the member name "alg". The real parser runs later.
func jsonObjectHasAlg(b []byte) bool {
	s := strings.TrimSpace(bytesconv.String(b))
	if len(s) < 2 || s[0] != '{' || s[len(s)-1] != '}' {
		return false
	}
	for {
		i := strings.Index(s, `"alg"`)
		if i < 0 {
			return false
		}
		s = s[i+5:]
		if t := strings.TrimLeft(s, " \t\r\n"); t != "" && t[0] == ':' {
			return true
		}
	}
}

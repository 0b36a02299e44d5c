package policy

import (
	"encoding/base64"
	"strings"
	"testing"
)

// testJWTLike is a syntactically JWT-shaped token ({"alg":"RS256","typ":"JWT"}).
var testJWTLike = base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"RS256","typ":"JWT"}`)) + ".eyJzdWIiOiJ4In0.c2ln"

func TestParseCredential(t *testing.T) {
	tests := []struct {
		name string
		in   CredentialHeaders
		want Credential
	}{
		{"none", CredentialHeaders{}, Credential{}},
		{"x-api-key", CredentialHeaders{APIKey: "acme.s3cret"},
			Credential{Kind: CredentialAPIKey, ClientKey: "acme", Secret: "s3cret", Token: "acme.s3cret"}},
		{"split at last dot", CredentialHeaders{APIKey: "acme.eu.s3cret"},
			Credential{Kind: CredentialAPIKey, ClientKey: "acme.eu", Secret: "s3cret", Token: "acme.eu.s3cret"}},
		{"no dot is malformed", CredentialHeaders{APIKey: "acme"},
			Credential{Kind: CredentialAPIKey, Token: "acme", Malformed: true}},
		{"empty secret is malformed", CredentialHeaders{APIKey: "acme."},
			Credential{Kind: CredentialAPIKey, Token: "acme.", Malformed: true}},
		{"empty client key is malformed", CredentialHeaders{APIKey: ".s3cret"},
			Credential{Kind: CredentialAPIKey, Token: ".s3cret", Malformed: true}},
		{"client key pair", CredentialHeaders{APIKey: "s3cr.et", ClientKey: "acme"},
			Credential{Kind: CredentialAPIKey, ClientKey: "acme", Secret: "s3cr.et", Token: "s3cr.et"}},
		{"client key without secret", CredentialHeaders{ClientKey: "acme", Authorization: "Bearer " + testJWTLike},
			Credential{Kind: CredentialAPIKey, ClientKey: "acme", Malformed: true}},
		{"x-api-key wins over authorization", CredentialHeaders{APIKey: "a.b", Authorization: "Bearer " + testJWTLike},
			Credential{Kind: CredentialAPIKey, ClientKey: "a", Secret: "b", Token: "a.b"}},
		{"bearer jwt", CredentialHeaders{Authorization: "Bearer " + testJWTLike},
			Credential{Kind: CredentialJWT, Token: testJWTLike, InAuthorization: true}},
		{"bearer scheme case-insensitive", CredentialHeaders{Authorization: "bearer " + testJWTLike},
			Credential{Kind: CredentialJWT, Token: testJWTLike, InAuthorization: true}},
		{"bearer api key", CredentialHeaders{Authorization: "Bearer acme.s3cret"},
			Credential{Kind: CredentialAPIKey, ClientKey: "acme", Secret: "s3cret", Token: "acme.s3cret", InAuthorization: true}},
		{"bearer three dots not jwt", CredentialHeaders{Authorization: "Bearer a.b.c"},
			Credential{Kind: CredentialAPIKey, ClientKey: "a.b", Secret: "c", Token: "a.b.c", InAuthorization: true}},
		{"apikey scheme is never jwt", CredentialHeaders{Authorization: "ApiKey " + testJWTLike},
			Credential{Kind: CredentialAPIKey, ClientKey: testJWTLike[:len(testJWTLike)-5], Secret: "c2ln", Token: testJWTLike, InAuthorization: true}},
		{"basic ignored, cookie used", CredentialHeaders{Authorization: "Basic dXNlcjpwYXNz", JWTCookie: "tok"},
			Credential{Kind: CredentialJWT, Token: "tok"}},
		{"bearer alg none is a jwt", CredentialHeaders{Authorization: "Bearer eyJhbGciOiJub25lIn0.e30."},
			Credential{Kind: CredentialJWT, Token: "eyJhbGciOiJub25lIn0.e30.", InAuthorization: true}},
		{"bearer empty is malformed key", CredentialHeaders{Authorization: "Bearer "},
			Credential{Kind: CredentialAPIKey, Malformed: true, InAuthorization: true}},
		{"authorization wins over cookie", CredentialHeaders{Authorization: "Bearer a.b", JWTCookie: testJWTLike},
			Credential{Kind: CredentialAPIKey, ClientKey: "a", Secret: "b", Token: "a.b", InAuthorization: true}},
		{"cookie", CredentialHeaders{JWTCookie: testJWTLike}, Credential{Kind: CredentialJWT, Token: testJWTLike}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ParseCredential(tt.in); got != tt.want {
				t.Errorf("ParseCredential(%+v) = %+v, want %+v", tt.in, got, tt.want)
			}
		})
	}
}

func TestLooksLikeJWT(t *testing.T) {
	enc := base64.RawURLEncoding.EncodeToString
	tests := []struct {
		name, tok string
		want      bool
	}{
		{"jwt", testJWTLike, true},
		{"alg with spaces, empty signature", enc([]byte(`{ "alg" : "none" }`)) + ".e30.", true},
		{"alg none shape", enc([]byte(`{"alg":"none"}`)) + ".e30.x", true},
		{"no alg", enc([]byte(`{"typ":"JWT"}`)) + ".e30.x", false},
		{"alg as value only", enc([]byte(`{"x":"alg"}`)) + ".e30.x", false},
		{"not json", enc([]byte(`alg:1`)) + ".e30.x", false},
		{"two segments", enc([]byte(`{"alg":"x"}`)) + ".e30", false},
		{"four segments", enc([]byte(`{"alg":"x"}`)) + ".e30.x.y", false},
		{"large x5c header", enc([]byte(`{"x5c":["`+strings.Repeat("A", 4000)+`"],"alg":"RS256"}`)) + ".e30.x", true},
		{"padding char", enc([]byte(`{"alg":"x"}`)) + "=.e30.x", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := looksLikeJWT(tt.tok); got != tt.want {
				t.Errorf("looksLikeJWT(%q) = %v, want %v", tt.tok, got, tt.want)
			}
		})
	}
}

// FuzzParseCredential checks that no header set panics and that an API key's
// parts always recombine into the presented token.
func FuzzParseCredential(f *testing.F) {
	// Seed corpus: each credential source and the JWT/API-key boundary.
	f.Add("acme.s3cret", "", "", "")
	f.Add("", "", "Bearer "+testJWTLike, "")
	f.Add("", "", "ApiKey a.b.c", "")
	f.Add("s", "client", "", "")
	f.Add("", "", "Bearer eyJhbGciOiJub25lIn0.e30.", "")
	f.Add("", "", "Basic x", "cookie")
	f.Add("", "", "Bearer ....", "")
	f.Fuzz(func(t *testing.T, apiKey, clientKey, authz, cookie string) {
		c := ParseCredential(CredentialHeaders{APIKey: apiKey, ClientKey: clientKey, Authorization: authz, JWTCookie: cookie})
		if c.Kind == CredentialAPIKey && !c.Malformed && clientKey == "" {
			if c.ClientKey+"."+c.Secret != c.Token || c.ClientKey == "" || c.Secret == "" {
				t.Fatalf("split %q into %q and %q", c.Token, c.ClientKey, c.Secret)
			}
		}
	})
}

func TestSplitAuthorization(t *testing.T) {
	tests := []struct{ in, scheme, token string }{
		{"Bearer abc", "Bearer", "abc"},
		{"bearer  abc ", "bearer", "abc"},
		{" ApiKey k.s", "ApiKey", "k.s"},
		{"Bearer", "Bearer", ""},
		{"Bearer ", "Bearer", ""},
		{"Basic dXNlcjpwYXNz", "Basic", "dXNlcjpwYXNz"},
		{"Bearer a b", "Bearer", "a b"},
		{"", "", ""},
	}
	for _, tt := range tests {
		if s, tok := SplitAuthorization(tt.in); s != tt.scheme || tok != tt.token {
			t.Errorf("SplitAuthorization(%q) = %q, %q; want %q, %q", tt.in, s, tok, tt.scheme, tt.token)
		}
	}
}

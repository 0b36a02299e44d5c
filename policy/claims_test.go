package policy

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/golang-jwt/jwt/v5"
)

func TestProfileFromClaims(t *testing.T) {
	long := strings.Repeat("ü", MaxDisplayNameRunes+1)
	longEmail := strings.Repeat("a", MaxEmailBytes) + "@x.io"
	tests := []struct {
		name   string
		claims map[string]any
		trust  bool
		want   UserProfile
	}{
		{"nothing", map[string]any{}, false, UserProfile{}},
		{"verified", map[string]any{"email": "a@x.io", "email_verified": true, "name": "A", "preferred_username": "a", "iss": "https://idp/"},
			false, UserProfile{Email: "a@x.io", DisplayName: "A", Issuer: "https://idp/"}},
		{"unverified", map[string]any{"email": "a@x.io", "email_verified": false},
			false, UserProfile{Problems: "email: email_verified is not true"}},
		{"email_verified absent", map[string]any{"email": "a@x.io"},
			false, UserProfile{Problems: "email: email_verified is not true"}},
		{"email_verified as a string", map[string]any{"email": "a@x.io", "email_verified": "true"},
			false, UserProfile{Problems: "email: email_verified is not true"}},
		{"unverified, trusted", map[string]any{"email": "a@x.io", "email_verified": false},
			true, UserProfile{Email: "a@x.io"}},
		{"email as a number", map[string]any{"email": 42.0, "email_verified": true},
			true, UserProfile{Problems: "email: not a string"}},
		{"email not an address", map[string]any{"email": "a b@x", "email_verified": true},
			false, UserProfile{Problems: "email: not an address"}},
		{"email with two @", map[string]any{"email": "a@b@x", "email_verified": true},
			false, UserProfile{Problems: "email: not an address"}},
		{"email too long", map[string]any{"email": longEmail, "email_verified": true},
			false, UserProfile{Problems: "email: longer than 254 bytes"}},
		{"email with CRLF", map[string]any{"email": "a@x.io\r\nX-Auth-User-Id: 1", "email_verified": true},
			false, UserProfile{Problems: "email: contains control characters"}},
		{"empty email", map[string]any{"email": "", "email_verified": true}, false, UserProfile{}},
		{"null claims", map[string]any{"email": nil, "name": nil, "iss": nil}, false, UserProfile{}},
		{"name as an object", map[string]any{"name": map[string]any{"first": "A"}, "preferred_username": "a"},
			false, UserProfile{DisplayName: "a", Problems: "name: not a string"}},
		{"name blank", map[string]any{"name": "  ", "preferred_username": "a"}, false, UserProfile{DisplayName: "a"}},
		{"name trimmed", map[string]any{"name": " Ann Lee "}, false, UserProfile{DisplayName: "Ann Lee"}},
		{"name with NUL", map[string]any{"name": "A\x00"}, false, UserProfile{Problems: "name: contains control characters"}},
		{"name invalid UTF-8", map[string]any{"name": "A\xff", "preferred_username": "a"},
			false, UserProfile{DisplayName: "a", Problems: "name: not valid UTF-8"}},
		{"name truncated", map[string]any{"name": long}, false,
			UserProfile{DisplayName: long[:2*MaxDisplayNameRunes], Problems: "name: truncated to 200 characters"}},
		{"iss as a list", map[string]any{"iss": []any{"a"}}, false, UserProfile{Problems: "iss: not a string"}},
		{"iss too long", map[string]any{"iss": strings.Repeat("i", MaxIssuerBytes+1)}, false, UserProfile{Problems: "iss: longer than 1024 bytes"}},
		{"everything wrong", map[string]any{"email": true, "name": 1.0, "preferred_username": []any{}, "iss": 2.0}, false,
			UserProfile{Problems: "email: not a string; name: not a string; preferred_username: not a string; iss: not a string"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ProfileFromClaims(tt.claims, tt.trust); got != tt.want {
				t.Errorf("got  %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestStorableSubject(t *testing.T) {
	for sub, want := range map[string]bool{
		"abc": true, "": false, "a\x00b": false, "\xff": false, "a\nb": false,
		strings.Repeat("s", MaxSubjectBytes): true, strings.Repeat("s", MaxSubjectBytes+1): false,
		"5f3c0e8ad7b1c64e0f9f3fa1c2e0d3b6b5a4c3d2e1f0a9b8c7d6e5f4a3b2c1d0": true,
	} {
		if got := StorableSubject(sub); got != want {
			t.Errorf("StorableSubject(%q) = %v, want %v", sub, got, want)
		}
	}
}

func TestProfileDiffers(t *testing.T) {
	u := &User{Email: "a@x.io", DisplayName: "A"}
	tests := []struct {
		p    UserProfile
		want bool
	}{
		{UserProfile{}, false},
		{UserProfile{Email: "a@x.io", DisplayName: "A"}, false},
		{UserProfile{Email: "b@x.io"}, true},
		{UserProfile{DisplayName: "B"}, true},
		{UserProfile{Issuer: "other", Problems: "x"}, false}, // neither is a column of users
	}
	for _, tt := range tests {
		if got := tt.p.Differs(u); got != tt.want {
			t.Errorf("%+v.Differs = %v, want %v", tt.p, got, tt.want)
		}
	}
	if n := testing.AllocsPerRun(100, func() { tests[1].p.Differs(u) }); n != 0 {
		t.Errorf("Differs allocates %v", n)
	}
}

// TestVerifyTokenProfile: the profile is mapped only when asked for, once
// per token, and a cache hit with it still does not allocate.
func TestVerifyTokenProfile(t *testing.T) {
	claims := jwt.MapClaims{"sub": "p", "iss": "https://idp", "exp": t0.Add(time.Hour).Unix(),
		"email": "p@x.io", "email_verified": true, "name": "P"}
	tok := sign(t, jwt.SigningMethodRS256, "rsa", fixture.rsa, claims)
	off := mustEngine(t, EngineConfig{JWT: JWTConfig{Keys: fixture.keys}})
	if c, d := off.VerifyToken(jwtReq(tok, t0)); d.Reason != ReasonNone || c.Profile != nil {
		t.Errorf("profile off: %+v %v; want no profile", c, d.Reason)
	}
	on := mustEngine(t, EngineConfig{JWT: JWTConfig{Keys: fixture.keys, Profile: ProfileConfig{Enabled: true}}})
	c, d := on.VerifyToken(jwtReq(tok, t0))
	if d.Reason != ReasonNone || c.Profile == nil || *c.Profile != (UserProfile{Email: "p@x.io", DisplayName: "P", Issuer: "https://idp"}) {
		t.Fatalf("profile on: %+v %v", c.Profile, d.Reason)
	}
	req := jwtReq(tok, t0)
	if n := testing.AllocsPerRun(100, func() {
		if c2, _ := on.VerifyToken(req); c2.Profile != c.Profile {
			t.Fatal("the cached token's profile was mapped again")
		}
	}); n != 0 {
		t.Errorf("a cache hit with a profile allocates %v", n)
	}
}

// FuzzProfileFromClaims: whatever a token's payload holds, the profile is
// text PostgreSQL can store and a header can carry, within the limits.
func FuzzProfileFromClaims(f *testing.F) {
	f.Add([]byte(`{"email":"a@x.io","email_verified":true,"name":"A","iss":"https://idp"}`), false)
	f.Add([]byte(`{"email":42,"name":{"a":1},"preferred_username":"\u0000"}`), true)
	f.Add([]byte(`{"name":"\ud800x","email":"a@b@c"}`), true)
	f.Fuzz(func(t *testing.T, payload []byte, trust bool) {
		var claims map[string]any
		if json.Unmarshal(payload, &claims) != nil {
			return
		}
		p := ProfileFromClaims(claims, trust)
		for field, v := range map[string]string{"email": p.Email, "display_name": p.DisplayName, "issuer": p.Issuer} {
			if !utf8.ValidString(v) || strings.IndexFunc(v, unicode.IsControl) >= 0 {
				t.Errorf("%s %q is not storable text", field, v)
			}
		}
		if len(p.Email) > MaxEmailBytes || utf8.RuneCountInString(p.DisplayName) > MaxDisplayNameRunes || len(p.Issuer) > MaxIssuerBytes {
			t.Errorf("over a limit: %+v", p)
		}
		if p.Email != "" && (!looksLikeEmail(p.Email) || claims["email_verified"] != true && !trust) {
			t.Errorf("email %q taken without being verified or trusted", p.Email)
		}
	})
}

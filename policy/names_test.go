package policy

import "testing"

func TestHasHeaderPrefix(t *testing.T) {
	for in, want := range map[string]bool{
		"X-Auth-Type": true, "x-auth-type": true, "X_Auth_Type": true, "X-AUTH-": true,
		"X-Auth": false, "X-Authorization": false, "Authorization": false, "X-Auth_": true,
	} {
		if got := HasHeaderPrefix(in, "X-Auth-"); got != want {
			t.Errorf("HasHeaderPrefix(%q) = %v, want %v", in, got, want)
		}
	}
}

func TestSameQueryKey(t *testing.T) {
	for _, c := range []struct {
		key  string
		want bool
	}{
		{"site[]", true}, {"site[0]", true}, {" site", true}, {"  site[x]", true}, {"SITE", true}, {"Site", true},
		{"site\x00", true}, {"site\x00x", true}, {"site\x00[]", true},
		{"sites", false}, {"sit", false}, {"[]site", false}, {"site_", false}, {"s-ite", false}, {"", false},
	} {
		if got := SameQueryKey(c.key, "site"); got != c.want {
			t.Errorf("SameQueryKey(%q, site) = %v, want %v", c.key, got, c.want)
		}
	}
	if !SameQueryKey("a.b", "a_b") || !SameQueryKey("a b", "a_b") || !SameQueryKey("a_b", "a.b") {
		t.Errorf("PHP reads '.' and ' ' in a key as '_'")
	}
}

func TestSameHeaderNameAndForwarded(t *testing.T) {
	if !SameHeaderName("x_site_key", "X-Site-Key") || SameHeaderName("X-Site-Keys", "X-Site-Key") {
		t.Errorf("SameHeaderName must read '_' as '-' and compare whole names")
	}
	if ForwardedHeaderName("X_Site_Key") || !ForwardedHeaderName("X-Site-Key") {
		t.Errorf("ForwardedHeaderName must refuse exactly the names with '_'")
	}
}

func TestIdentityHeaderSpoof(t *testing.T) {
	for _, c := range []struct {
		name, prefix string
		want         bool
	}{
		{"X_Auth_User_Id", "X-Auth-", true},
		{"x_auth_type", "X-Auth-", true},
		{"X-Auth_User", "X-Auth-", true},     // one '_' is enough
		{"X-Auth-User-Id", "X-Auth-", false}, // the real spelling: removed, not refused
		{"X_Other_Id", "X-Auth-", false},
		{"X_Auth", "X-Auth-", false},
		{"X_Auth_User_Id", "", false}, // no identity headers configured
	} {
		if got := IdentityHeaderSpoof(c.name, c.prefix); got != c.want {
			t.Errorf("IdentityHeaderSpoof(%q, %q) = %v, want %v", c.name, c.prefix, got, c.want)
		}
	}
}

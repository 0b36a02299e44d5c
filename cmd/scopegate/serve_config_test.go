package main

import (
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// TestEnvExampleListsEveryVariable: configs/scopegate.env.example names
// every SCOPEGATE_ variable of Config.
func TestEnvExampleListsEveryVariable(t *testing.T) {
	b, err := os.ReadFile("../../configs/scopegate.env.example")
	if err != nil {
		t.Fatal(err)
	}
	text := string(b)
	typ := reflect.TypeOf(Config{})
	for i := 0; i < typ.NumField(); i++ {
		if !typ.Field(i).IsExported() {
			continue // derived, not a variable
		}
		name := typ.Field(i).Tag.Get("envconfig")
		if !strings.Contains(text, name+"=") {
			t.Errorf("scopegate.env.example lacks %s", name)
		}
	}
}

// TestJWTAlgorithmsAllowList: the HS256 secret adds HS256 to the default
// algorithms only; an explicit SCOPEGATE_JWT_ALGORITHMS is the whole list.
func TestJWTAlgorithmsAllowList(t *testing.T) {
	cases := []struct {
		name, algs string // algs "": the variable unset
		want       int
		reason     string
	}{
		{"default list, secret set", "", 200, ""},
		{"explicit list without HS256", "RS256", 401, "token_invalid"},
		{"explicit list with HS256", "RS256,HS256", 200, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			env := map[string]string{"SCOPEGATE_STORE_FILE": basicStoreFile(t), "SCOPEGATE_JWT_HS256_SECRET": paritySecret}
			if c.algs != "" {
				env["SCOPEGATE_JWT_ALGORITHMS"] = c.algs
			}
			g := startGateway(t, env)
			status, body := httpGet(t, g.base+"/anything", "Authorization", "Bearer "+parityJWT(t, "alice", ""))
			if status != c.want || !strings.Contains(body, c.reason) {
				t.Errorf("HS256 token: %d %s, want %d %s", status, body, c.want, c.reason)
			}
		})
	}
}

// TestJWTRequireExp: a JWT without exp is 401 token_invalid by default and
// with SCOPEGATE_JWT_REQUIRE_EXP=true, and passes with =false (SPEC §3); a
// token with exp passes either way.
func TestJWTRequireExp(t *testing.T) {
	sign := func(claims jwt.MapClaims) string {
		s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString([]byte(paritySecret))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	noExp := sign(jwt.MapClaims{"sub": "alice", "iat": time.Now().Unix()})
	withExp := parityJWT(t, "alice", "")
	for _, c := range []struct {
		name, value string // value "": the variable unset
		noExpStatus int
	}{
		{"default", "", 401},
		{"true", "true", 401},
		{"false", "false", 200},
	} {
		t.Run(c.name, func(t *testing.T) {
			env := map[string]string{"SCOPEGATE_STORE_FILE": basicStoreFile(t), "SCOPEGATE_JWT_HS256_SECRET": paritySecret}
			if c.value != "" {
				env["SCOPEGATE_JWT_REQUIRE_EXP"] = c.value
			}
			g := startGateway(t, env)
			status, body := httpGet(t, g.base+"/anything", "Authorization", "Bearer "+noExp)
			if status != c.noExpStatus || (status == 401 && !strings.Contains(body, `"token_invalid"`)) {
				t.Errorf("token without exp: %d %s, want %d", status, body, c.noExpStatus)
			}
			if status, body := httpGet(t, g.base+"/anything", "Authorization", "Bearer "+withExp); status != 200 {
				t.Errorf("token with exp: %d %s, want 200", status, body)
			}
		})
	}
}

// TestUnprefixedVariablesIgnored: only SCOPEGATE_ variables configure
// scopegate. envconfig would otherwise fall back to the bare names, so a
// TRUSTED_PROXIES or DATABASE_URL meant for another program in the same
// environment would be read.
func TestUnprefixedVariablesIgnored(t *testing.T) {
	clearScopegateEnv(t)
	for k, v := range map[string]string{
		"TRUSTED_PROXIES": "0.0.0.0/0", "DATABASE_URL": "postgres://other@db/other",
		"LISTEN_ADDR": "0.0.0.0:1", "JWT_ALGORITHMS": "RS256", "STRIP_CREDENTIALS": "false",
	} {
		t.Setenv(k, v)
	}
	cfg, err := loadConfig()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.TrustedProxies != "127.0.0.0/8,::1/128" || cfg.DatabaseURL != "" || cfg.ListenAddr != ":8080" ||
		cfg.JWTAlgorithms != "RS256,ES256,EdDSA" || cfg.jwtAlgorithmsSet || !cfg.StripCredentials {
		t.Errorf("unprefixed variables were read: %+v", cfg)
	}
}

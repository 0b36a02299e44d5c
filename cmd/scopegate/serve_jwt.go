package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/scopegate/scopegate/policy"
)

// buildJWT assembles the token verification settings of SPEC §3: keys from
// SCOPEGATE_JWT_JWKS_URL, or from the issuer's OpenID discovery document,
// refreshed every SCOPEGATE_JWT_JWKS_REFRESH and on an unknown kid at most
// once per 5 s; and/or the HS256 secret.
func buildJWT(ctx context.Context, cfg *Config, logger *slog.Logger) (policy.JWTConfig, error) {
	jc := policy.JWTConfig{
		HS256Secret:  []byte(cfg.JWTHS256Secret),
		Algorithms:   splitList(cfg.JWTAlgorithms),
		Issuer:       cfg.JWTIssuer,
		Audience:     cfg.JWTAudience,
		Leeway:       cfg.JWTLeeway,
		SubjectClaim: cfg.JWTSubjectClaim,
		// SPEC §3: a token without exp is token_invalid unless
		// SCOPEGATE_JWT_REQUIRE_EXP=false.
		AllowMissingExp: !cfg.JWTRequireExp,
	}
	if !cfg.JWTRequireExp {
		logger.Warn("SCOPEGATE_JWT_REQUIRE_EXP=false: JWTs without exp are accepted and never expire")
	}
	if len(jc.Algorithms) == 0 {
		return jc, &ConfigError{Var: "SCOPEGATE_JWT_ALGORITHMS", Msg: "must list at least one algorithm"}
	}
	for _, a := range jc.Algorithms {
		switch a {
		case "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA":
		case "HS256":
			if cfg.JWTHS256Secret == "" {
				return jc, &ConfigError{Var: "SCOPEGATE_JWT_ALGORITHMS", Msg: "HS256 needs SCOPEGATE_JWT_HS256_SECRET"}
			}
		default:
			return jc, &ConfigError{Var: "SCOPEGATE_JWT_ALGORITHMS", Msg: fmt.Sprintf("unsupported algorithm %q", a)}
		}
	}
	if cfg.JWTHS256Secret != "" && !slices.Contains(jc.Algorithms, "HS256") {
		if !cfg.jwtAlgorithmsSet {
			// With the default list, a configured secret means HS256 is
			// wanted (SPEC §3: "HS256 only with a secret").
			jc.Algorithms = append(jc.Algorithms, "HS256")
		} else {
			// An explicit SCOPEGATE_JWT_ALGORITHMS is the whole allow-list.
			logger.Warn("SCOPEGATE_JWT_HS256_SECRET is set but SCOPEGATE_JWT_ALGORITHMS does not list HS256: HS256 tokens are refused")
		}
	}
	if cfg.JWTJWKSURL != "" {
		kf, err := newJWKS(ctx, cfg.JWTJWKSURL, cfg.JWTJWKSRefresh, logger)
		if err != nil {
			return jc, &ConfigError{Var: "SCOPEGATE_JWT_JWKS_URL", Msg: err.Error()}
		}
		jc.Keys = kf
		return jc, nil
	}
	if cfg.JWTIssuer == "" {
		return jc, nil
	}
	if cfg.JWTHS256Secret != "" && !cfg.jwtAlgorithmsSet {
		// The shared secret verifies the tokens; the issuer is there for
		// the iss check only. Discovery (and its retries against an issuer
		// that may not serve OpenID metadata) happens only when asked for:
		// a JWKS URL, or an explicit SCOPEGATE_JWT_ALGORITHMS.
		logger.Info("SCOPEGATE_JWT_HS256_SECRET is set and SCOPEGATE_JWT_JWKS_URL is not: SCOPEGATE_JWT_ISSUER is checked in iss only, no OpenID discovery")
		return jc, nil
	}
	discoveryURL, err := discoveryURLOf(cfg.JWTIssuer)
	if err != nil {
		return jc, &ConfigError{Var: "SCOPEGATE_JWT_ISSUER", Msg: err.Error()}
	}
	ks := &discoveredKeys{}
	jc.Keys = ks
	// One attempt before serving, so keys are normally there from the first
	// request; an identity provider that is down does not stop start-up.
	if err := ks.discover(ctx, discoveryURL, cfg.JWTJWKSRefresh, logger); err != nil {
		logger.Warn("OpenID discovery failed; retrying in the background, tokens needing its keys are token_invalid meanwhile",
			slog.String("url", discoveryURL), slog.String("err", err.Error()))
		go ks.retry(ctx, discoveryURL, cfg.JWTJWKSRefresh, logger)
	}
	return jc, nil
}

// discoveredKeys is the key set named by the issuer's OpenID discovery
// document. Until discovery succeeds every key lookup fails, so tokens
// signed with those keys are token_invalid (HS256 with the shared secret
// does not need it).
type discoveredKeys struct {
	kf atomic.Pointer[jwksKeys]
}

var errNoKeysYet = errors.New("the issuer's keys are not known yet (OpenID discovery has not succeeded)")

// Keyfunc implements policy.KeySet.
func (d *discoveredKeys) Keyfunc(t *jwt.Token) (any, error) {
	kf := d.kf.Load()
	if kf == nil {
		return nil, errNoKeysYet
	}
	return kf.Keyfunc(t)
}

// discover reads jwks_uri from discoveryURL and sets up the key set.
func (d *discoveredKeys) discover(ctx context.Context, discoveryURL string, refresh time.Duration, logger *slog.Logger) error {
	jwksURL, err := discoverJWKS(ctx, discoveryURL)
	if err != nil {
		return err
	}
	kf, err := newJWKS(ctx, jwksURL, refresh, logger)
	if err != nil {
		return err
	}
	d.kf.Store(kf)
	return nil
}

// retry runs discover with backoff (1 s doubling to 1 min) until it
// succeeds or ctx ends.
func (d *discoveredKeys) retry(ctx context.Context, discoveryURL string, refresh time.Duration, logger *slog.Logger) {
	wait := time.Second
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		err := d.discover(ctx, discoveryURL, refresh, logger)
		if err == nil {
			logger.Info("OpenID discovery succeeded", slog.String("url", discoveryURL))
			return
		}
		logger.Warn("OpenID discovery failed", slog.String("url", discoveryURL), slog.String("err", err.Error()))
		wait = min(2*wait, time.Minute)
	}
}

// discoveryURLOf returns issuer + "/.well-known/openid-configuration", or an
// error when issuer is not an http(s) URL with a host.
func discoveryURLOf(issuer string) (string, error) {
	if err := checkHTTPURL(issuer); err != nil {
		return "", err
	}
	return strings.TrimSuffix(issuer, "/") + "/.well-known/openid-configuration", nil
}

// discoverJWKS reads jwks_uri from the discovery document at u.
func discoverJWKS(ctx context.Context, u string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return "", fmt.Errorf("discovery URL %q: %w", u, err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", fmt.Errorf("fetching %s: %w", u, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("fetching %s: status %d", u, resp.StatusCode)
	}
	var doc struct {
		JWKSURI string `json:"jwks_uri"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&doc); err != nil {
		return "", fmt.Errorf("decoding %s: %w", u, err)
	}
	if doc.JWKSURI == "" {
		return "", fmt.Errorf("%s has no jwks_uri", u)
	}
	return doc.JWKSURI, nil
}

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/MicahParks/keyfunc/v3"
	"golang.org/x/time/rate"

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
	jwksURL := cfg.JWTJWKSURL
	if jwksURL == "" && cfg.JWTIssuer != "" {
		u, err := discoverJWKS(ctx, cfg.JWTIssuer)
		if err != nil {
			return jc, &ConfigError{Var: "SCOPEGATE_JWT_ISSUER", Msg: err.Error()}
		}
		jwksURL = u
	}
	if jwksURL == "" {
		return jc, nil
	}
	refresh := cfg.JWTJWKSRefresh
	if refresh <= 0 {
		refresh = 15 * time.Minute
	}
	kf, err := keyfunc.NewDefaultOverrideCtx(ctx, []string{jwksURL}, keyfunc.Override{
		HTTPTimeout:     10 * time.Second,
		RefreshInterval: refresh,
		// An unknown kid refetches the set at most once per 5 s; requests
		// never wait for the limiter (RateLimitWaitMax), they fail as
		// token_invalid instead.
		RefreshUnknownKID: rate.NewLimiter(rate.Every(5*time.Second), 1),
		RateLimitWaitMax:  time.Millisecond,
		RefreshErrorHandlerFunc: func(u string) func(context.Context, error) {
			return func(_ context.Context, err error) {
				logger.Warn("JWKS refresh failed", slog.String("url", u), slog.String("err", err.Error()))
			}
		},
	})
	if err != nil {
		return jc, &ConfigError{Var: "SCOPEGATE_JWT_JWKS_URL", Msg: err.Error()}
	}
	jc.Keys = kf
	return jc, nil
}

// discoverJWKS reads jwks_uri from the issuer's
// /.well-known/openid-configuration.
func discoverJWKS(ctx context.Context, issuer string) (string, error) {
	u := strings.TrimSuffix(issuer, "/") + "/.well-known/openid-configuration"
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

package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/MicahParks/keyfunc/v3"
	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/time/rate"
)

// unknownKIDEvery is the contract's bound on refetches for an unknown kid
// (SPEC §3: at most once per 5 s).
const unknownKIDEvery = 5 * time.Second

// unknownKIDWait bounds the refetch an unknown kid starts, and so how long a
// request waits for it.
const unknownKIDWait = 2 * time.Second

// jwksKeys is the key set at a JWKS URL, a policy.KeySet. jwkset refreshes
// it every SCOPEGATE_JWT_JWKS_REFRESH; a kid it does not hold refetches it
// at once when the last unknown-kid refetch is at least unknownKIDEvery old,
// and fails at once (token_invalid) otherwise, never waiting for a later
// slot. A request that finds a refetch running waits for that one.
//
// jwkset's own unknown-kid refresh is not used: it waits for the limiter's
// next slot and runs the refetch under the same deadline, so under a steady
// stream of unknown kids the request that reserved a slot had used most of
// the deadline waiting, its refetch failed, and the slot was lost: a
// rotated key took two slots (8–10 s) or more instead of one (issue 15).
type jwksKeys struct {
	stored  keyfunc.Keyfunc // reads the stored set, never fetches
	refetch keyfunc.Keyfunc // on a miss, refetches the set (bounded by unknownKIDWait) and reads again
	limit   *rate.Limiter   // one unknown-kid refetch per unknownKIDEvery, taken when it starts

	mu      sync.Mutex
	running chan struct{} // closed when the running refetch ends; nil when none runs
}

// newJWKS returns the key set at jwksURL, refreshed every refresh (default
// 15m) and on an unknown kid at most once per unknownKIDEvery. An
// unreachable URL is not an error: the set is fetched again in the
// background.
func newJWKS(ctx context.Context, jwksURL string, refresh time.Duration, logger *slog.Logger) (*jwksKeys, error) {
	if refresh <= 0 {
		refresh = 15 * time.Minute
	}
	st, err := jwkset.NewStorageFromHTTP(jwksURL, jwkset.HTTPClientStorageOptions{
		Ctx:                       ctx,
		HTTPTimeout:               10 * time.Second,
		NoErrorReturnFirstHTTPReq: true,
		RefreshInterval:           refresh,
		RefreshErrorHandler: func(_ context.Context, err error) {
			logger.Warn("JWKS refresh failed", slog.String("url", jwksURL), slog.String("err", err.Error()))
		},
	})
	if err != nil {
		return nil, err
	}
	client := func(opts jwkset.HTTPClientOptions) (keyfunc.Keyfunc, error) {
		opts.HTTPURLs = map[string]jwkset.Storage{jwksURL: st}
		c, err := jwkset.NewHTTPClient(opts)
		if err != nil {
			return nil, err
		}
		return keyfunc.New(keyfunc.Options{Ctx: ctx, Storage: c})
	}
	k := &jwksKeys{limit: rate.NewLimiter(rate.Every(unknownKIDEvery), 1)}
	if k.stored, err = client(jwkset.HTTPClientOptions{}); err != nil {
		return nil, err
	}
	// The limiter jwkset waits on never makes it wait (k.limit decides);
	// RateLimitWaitMax is then the refetch's own deadline.
	if k.refetch, err = client(jwkset.HTTPClientOptions{RefreshUnknownKID: rate.NewLimiter(rate.Inf, 1), RateLimitWaitMax: unknownKIDWait}); err != nil {
		return nil, err
	}
	return k, nil
}

// Keyfunc implements policy.KeySet.
func (k *jwksKeys) Keyfunc(t *jwt.Token) (any, error) {
	key, err := k.stored.Keyfunc(t)
	if err == nil || !errors.Is(err, jwkset.ErrKeyNotFound) {
		return key, err
	}
	k.mu.Lock()
	if running := k.running; running != nil {
		k.mu.Unlock()
		<-running // bounded by unknownKIDWait
		return k.stored.Keyfunc(t)
	}
	if !k.limit.Allow() {
		k.mu.Unlock()
		return nil, fmt.Errorf("%w (the JWKS was refetched less than %v ago)", err, unknownKIDEvery)
	}
	done := make(chan struct{})
	k.running = done
	k.mu.Unlock()
	defer func() {
		k.mu.Lock()
		k.running = nil
		k.mu.Unlock()
		close(done)
	}()
	return k.refetch.Keyfunc(t)
}

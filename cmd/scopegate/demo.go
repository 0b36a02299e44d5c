package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/golang-jwt/jwt/v5"

	"github.com/scopegate/scopegate/configs"
)

// The demo's public secrets, documented in the header of
// configs/demo/store.yaml (which holds only their SHA-256 hashes).
const (
	demoToken        = "demo.demo-secret-change-me"
	demoWrongToken   = "demo.wrong-secret"
	demoLimitedToken = "demo-limited.demo-limited-secret"
	demoUser         = "alice"
	demoJWTLifetime  = 24 * time.Hour
	demoAudience     = "scopegate-demo"
	demoListenAddr   = "127.0.0.1:8080"
	demoJWKSPath     = "/.well-known/jwks.json"
)

// cmdDemo runs `scopegate demo`: the real gateway on the declarative store
// of configs/demo, a built-in echo upstream and a local JWT signing key. It
// prints a working API key, a demo JWT and curl lines to try, and stops on
// Ctrl-C (SIGINT) or SIGTERM.
func cmdDemo(args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 {
		return &usageError{msg: "demo takes no arguments (SCOPEGATE_* variables still apply)"}
	}
	return withConfigAndSignals(stderr, func(cfg *Config, logger *slog.Logger, sigs <-chan os.Signal) error {
		return runDemo(cfg, logger, stdout, sigs, nil)
	})
}

// runDemo runs the demo with cfg (from loadConfig, so SCOPEGATE_* overrides
// apply) until a SIGTERM/SIGINT arrives on sigs. It prints the banner once
// to out when both listeners accept, then calls ready (if not nil). The
// temporary directory, the echo upstream and the key server are gone when
// it returns.
func runDemo(cfg *Config, logger *slog.Logger, out io.Writer, sigs <-chan os.Signal, ready func()) error {
	dir, err := os.MkdirTemp("", "scopegate-demo-")
	if err != nil {
		return fmt.Errorf("demo: creating a temporary directory: %w", err)
	}
	defer os.RemoveAll(dir)
	storePath, routesPath := filepath.Join(dir, "store.yaml"), filepath.Join(dir, "routes.yaml")
	for name, dst := range map[string]string{"demo/store.yaml": storePath, "demo/routes.yaml": routesPath} {
		b, err := fs.ReadFile(configs.Demo, name)
		if err != nil {
			return fmt.Errorf("demo: reading the embedded %s: %w", name, err)
		}
		if err := os.WriteFile(dst, b, 0o600); err != nil {
			return fmt.Errorf("demo: writing %s: %w", dst, err)
		}
	}

	// The signing key lives only in this process; its public half is served
	// as a JWKS so the gateway runs its real JWKS path.
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return fmt.Errorf("demo: generating a signing key: %w", err)
	}
	kidBytes := make([]byte, 4)
	_, _ = rand.Read(kidBytes)
	kid := "scopegate-demo-" + hex.EncodeToString(kidBytes)
	jwks, err := demoJWKS(pub, kid)
	if err != nil {
		return err
	}

	echo, err := startDemoServer(demoEcho(cfg.IdentityHeaderPrefix, cfg.APIKeyHeader))
	if err != nil {
		return fmt.Errorf("demo: starting the echo upstream: %w", err)
	}
	defer echo.close()
	idp, err := startDemoServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != demoJWKSPath {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(jwks)
	}))
	if err != nil {
		return fmt.Errorf("demo: starting the key server: %w", err)
	}
	defer idp.close()

	// The demo brings its own data, routes, upstream and keys; listeners and
	// everything else still follow SCOPEGATE_*.
	for _, v := range []struct{ name, val string }{
		{"SCOPEGATE_DATABASE_URL", cfg.DatabaseURL}, {"SCOPEGATE_STORE_FILE", cfg.StoreFile},
		{"SCOPEGATE_ROUTES_FILE", cfg.RoutesFile}, {"SCOPEGATE_UPSTREAM_URL", cfg.UpstreamURL},
		{"SCOPEGATE_JWT_JWKS_URL", cfg.JWTJWKSURL}, {"SCOPEGATE_USER_SYNC", demoIgnoredSync(cfg)},
	} {
		if v.val != "" {
			logger.Warn("the demo ignores this variable and uses its own", slog.String("var", v.name))
		}
	}
	cfg.DatabaseURL = ""
	cfg.StoreFile = storePath
	cfg.UserSync = "off" // the demo's store is a file, never written
	cfg.RoutesFile = routesPath
	cfg.UpstreamURL = echo.url
	cfg.JWTJWKSURL = idp.url + demoJWKSPath
	if os.Getenv("SCOPEGATE_LISTEN_ADDR") == "" {
		cfg.ListenAddr = demoListenAddr
	}
	if cfg.JWTIssuer == "" {
		cfg.JWTIssuer = idp.url
	}
	if cfg.JWTAudience == "" {
		cfg.JWTAudience = demoAudience
	}
	if !slices.Contains(splitList(cfg.JWTAlgorithms), "EdDSA") {
		cfg.JWTAlgorithms += ",EdDSA"
	}

	now := time.Now()
	claims := jwt.MapClaims{
		"sub": demoUser, cfg.JWTSubjectClaim: demoUser,
		"iss": cfg.JWTIssuer, "aud": cfg.JWTAudience,
		"iat": now.Unix(), "exp": now.Add(demoJWTLifetime).Unix(),
		"email": "alice@example.com",
	}
	tok := jwt.NewWithClaims(jwt.SigningMethodEdDSA, claims)
	tok.Header["kid"] = kid
	userJWT, err := tok.SignedString(priv)
	if err != nil {
		return fmt.Errorf("demo: signing the demo JWT: %w", err)
	}

	scheme := "http://"
	if cfg.TLSCertFile != "" {
		scheme = "https://" // SCOPEGATE_TLS_* apply to the demo too
	}
	err = serve(cfg, logger, sigs, func(traffic, admin net.Addr) {
		demoWarmUp(scheme+loopbackAddr(traffic), cfg.APIKeyHeader, userJWT, logger)
		writeDemoBanner(out, demoBanner{
			base:      scheme + loopbackAddr(traffic),
			admin:     "http://" + loopbackAddr(admin),
			authPath:  cfg.AuthPath,
			keyHeader: cfg.APIKeyHeader,
			upstream:  echo.url,
			jwksURL:   cfg.JWTJWKSURL,
			jwt:       userJWT,
			expires:   now.Add(demoJWTLifetime),
			dir:       dir,
		})
		if ready != nil {
			ready()
		}
	})
	var le *listenError
	if errors.As(err, &le) && errors.Is(err, syscall.EADDRINUSE) {
		alt := "127.0.0.1:8181"
		if le.Var == "SCOPEGATE_ADMIN_ADDR" {
			alt = "127.0.0.1:9191"
		}
		return &exitError{code: exitFail, msg: fmt.Sprintf(
			"demo: %s is already in use (another program, or another demo, listens there): stop it or pick a free address, e.g. %s=%s go run ./cmd/scopegate demo",
			le.Addr, le.Var, alt)}
	}
	return err
}

// demoJWKS returns the JSON Web Key Set holding the demo's public key.
func demoJWKS(pub ed25519.PublicKey, kid string) ([]byte, error) {
	ctx := context.Background()
	jwk, err := jwkset.NewJWKFromKey(pub, jwkset.JWKOptions{Metadata: jwkset.JWKMetadataOptions{
		KID: kid, ALG: jwkset.AlgEdDSA, USE: jwkset.UseSig,
	}})
	if err != nil {
		return nil, fmt.Errorf("demo: building the JWKS: %w", err)
	}
	set := jwkset.NewMemoryStorage()
	if err := set.KeyWrite(ctx, jwk); err != nil {
		return nil, fmt.Errorf("demo: building the JWKS: %w", err)
	}
	raw, err := set.JSONPublic(ctx)
	if err != nil {
		return nil, fmt.Errorf("demo: building the JWKS: %w", err)
	}
	return raw, nil
}

// loopbackAddr turns a bound address into one a local curl can reach: an
// unspecified host (":8080", "[::]:8080") becomes 127.0.0.1.
func loopbackAddr(a net.Addr) string {
	hp, err := loopbackHostPort(a.String())
	if err != nil {
		return a.String()
	}
	return hp
}

// demoServer is a small net/http server on a loopback port.
type demoServer struct {
	srv *http.Server
	url string
}

func startDemoServer(h http.Handler) (*demoServer, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &demoServer{
		srv: &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second},
		url: "http://" + ln.Addr().String(),
	}
	go func() { _ = s.srv.Serve(ln) }()
	return s, nil
}

func (s *demoServer) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = s.srv.Shutdown(ctx)
}

// demoIgnoredSync is SCOPEGATE_USER_SYNC when it asks for sync, which the
// demo's file store never does, else "".
func demoIgnoredSync(cfg *Config) string {
	if cfg.userSyncOn() {
		return cfg.UserSync
	}
	return ""
}

package main

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/scopegate/scopegate/policy"
	"github.com/scopegate/scopegate/proxy"
)

const explainUsage = `usage: scopegate explain [--api-key TOKEN | --jwt TOKEN | --sub SUBJECT] [--header 'Name: value']...
                         [--origin ORIGIN] [--peer ADDR] METHOD PATH[?QUERY]

Runs the decision serve would make for the described request, against the
store and routes file of the SCOPEGATE_* configuration, and prints every
step of the order with its outcome: client address, path screening, route,
credential, the key's or the user's checks, scope, module and the grant
that allowed it (or why none did). Nothing is written: last_used_at is not
touched, and rate limits are counted in explain's own bucket.

Exit 0 when the request would be allowed, 1 when denied, 2 for bad usage.`

// explainRequest is a parsed `scopegate explain` command line.
type explainRequest struct {
	method, target string
	header         [][2]string
	peer           netip.Addr
	sub            string // --sub: a token is minted for this subject
}

func parseExplain(args []string, stdout io.Writer) (*explainRequest, error) {
	fs := flag.NewFlagSet("explain", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var headers stringList
	apiKey := fs.String("api-key", "", "an API key <client_key>.<secret>, sent as the API key header")
	token := fs.String("jwt", "", "a JWT, sent as Authorization: Bearer")
	sub := fs.String("sub", "", "a user's subject: explain signs a short-lived token for it with a key of its own (so the token checks pass by construction)")
	origin := fs.String("origin", "", "the Origin header")
	peer := fs.String("peer", "127.0.0.1", "the address the request comes from (the connection's peer)")
	fs.Var(&headers, "header", "a header field 'Name: value' (repeatable)")
	pos, err := parseInterspersed(fs, args)
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(stdout, explainUsage)
		printFlags(stdout, fs)
		return nil, errHelp
	}
	if err != nil {
		return nil, &usageError{msg: "explain: " + err.Error() + "\n" + explainUsage}
	}
	if len(pos) != 2 {
		return nil, &usageError{msg: "explain: want METHOD and PATH\n" + explainUsage}
	}
	r := &explainRequest{method: strings.ToUpper(pos[0]), target: pos[1], sub: *sub}
	if !strings.HasPrefix(r.target, "/") {
		return nil, &usageError{msg: fmt.Sprintf("explain: PATH %q must start with /", r.target)}
	}
	n := 0
	for _, set := range []string{*apiKey, *token, *sub} {
		if set != "" {
			n++
		}
	}
	if n > 1 {
		return nil, &usageError{msg: "explain: give at most one of --api-key, --jwt and --sub"}
	}
	if r.peer, err = netip.ParseAddr(*peer); err != nil {
		return nil, &usageError{msg: fmt.Sprintf("explain: --peer %q is not an IP address", *peer)}
	}
	for _, h := range headers {
		name, value, ok := strings.Cut(h, ":")
		if !ok || strings.TrimSpace(name) == "" {
			return nil, &usageError{msg: fmt.Sprintf("explain: --header %q is not 'Name: value'", h)}
		}
		r.header = append(r.header, [2]string{strings.TrimSpace(name), strings.TrimSpace(value)})
	}
	if *origin != "" {
		r.header = append(r.header, [2]string{"Origin", *origin})
	}
	if *apiKey != "" {
		r.header = append(r.header, [2]string{"", *apiKey}) // named below, from SCOPEGATE_API_KEY_HEADER
	}
	if *token != "" {
		r.header = append(r.header, [2]string{"Authorization", "Bearer " + *token})
	}
	return r, nil
}

// traceStep is one step the engine reported.
type traceStep struct {
	Step   string `json:"step"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail"`
}

// cmdExplain runs `scopegate explain`: the request goes through the same
// proxy handler, engine and store as serve's, built from the same
// configuration, with a tracer on the engine.
func cmdExplain(args []string, stdout, stderr io.Writer) error {
	r, err := parseExplain(args, stdout)
	if err != nil {
		return err
	}
	cfg, err := loadConfig()
	if err != nil {
		return err
	}
	for i, h := range r.header {
		if h[0] == "" {
			r.header[i][0] = cfg.APIKeyHeader
		}
	}
	// Warnings (a store that cannot be reached, a JWKS that cannot be
	// fetched) go to stderr; the decision log does not.
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if cfg.DatabaseURL == "" && cfg.StoreFile == "" {
		return errNoStore
	}
	routes, err := loadRoutes(cfg.RoutesFile, logger)
	if err != nil {
		return err
	}
	trusted, err := cfg.trustedProxies()
	if err != nil {
		return err
	}
	jwtCfg, err := buildJWT(ctx, cfg, logger)
	if err != nil {
		return err
	}
	if r.sub != "" {
		tok, err := mintExplainToken(cfg, &jwtCfg, r.sub)
		if err != nil {
			return err
		}
		r.header = append(r.header, [2]string{"Authorization", "Bearer " + tok})
	}
	var steps []traceStep
	ec := engineConfig(cfg, routes, jwtCfg, trusted)
	ec.Trace = func(step string, ok bool, detail string) {
		steps = append(steps, traceStep{step, ok, detail})
	}
	engine, err := newEngine(ec)
	if err != nil {
		return err
	}
	st, err := openStore(ctx, cfg, logger)
	if err != nil {
		return err
	}
	defer func() {
		cctx, ccancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer ccancel()
		st.store.Close(cctx)
	}()
	p, err := proxy.New(proxy.Config{
		Logger:               slog.New(slog.DiscardHandler),
		AuthPath:             cfg.AuthPath,
		IdentityHeaderPrefix: cfg.IdentityHeaderPrefix,
		StripCredentials:     cfg.StripCredentials,
		APIKeyHeader:         cfg.APIKeyHeader,
		JWTCookie:            cfg.JWTCookie,
		BaseContext:          ctx,
		MaxHeaderBytes:       cfg.MaxHeaderBytes,
		MaxBodyBytes:         cfg.MaxBodyBytes,
	}, proxy.Deps{Engine: engine, Store: explainStore{st.store}})
	if err != nil {
		return &ConfigError{Var: "SCOPEGATE_AUTH_PATH", Msg: err.Error()}
	}
	ans := p.ServeDescribed(r.method, r.target, r.header, netip.AddrPortFrom(r.peer, 40000))
	printExplain(stdout, r, steps, ans, cfg.IdentityHeaderPrefix)
	if ans.Status/100 != 2 {
		return &exitError{code: exitFail}
	}
	return nil
}

// explainStore is the live store with its one write turned off: explain
// does not move last_used_at.
type explainStore struct{ proxy.Store }

func (explainStore) MarkUsed(string, time.Time) {}

// mintExplainToken signs a five-minute token for sub with a random HS256
// key that only this process knows, and adds that key to jc, so --sub
// explains the user's side of the decision without a real token. Its
// claims satisfy the configured issuer, audience and subject claim.
func mintExplainToken(cfg *Config, jc *policy.JWTConfig, sub string) (string, error) {
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return "", err
	}
	jc.HS256Secret = key
	if !slices.Contains(jc.Algorithms, "HS256") {
		jc.Algorithms = append(slices.Clip(jc.Algorithms), "HS256")
	}
	now := time.Now()
	claims := jwt.MapClaims{cfg.JWTSubjectClaim: sub, "iat": now.Unix(), "exp": now.Add(5 * time.Minute).Unix()}
	if cfg.JWTIssuer != "" {
		claims["iss"] = cfg.JWTIssuer
	}
	if cfg.JWTAudience != "" {
		claims["aud"] = cfg.JWTAudience
	}
	return jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(key)
}

// printExplain prints the request, the steps and the answer.
func printExplain(w io.Writer, r *explainRequest, steps []traceStep, ans proxy.Answer, identityPrefix string) {
	fmt.Fprintf(w, "%s %s from %s\n\n", r.method, r.target, r.peer)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, s := range steps {
		mark := "ok"
		if !s.OK {
			mark = "DENY"
		}
		fmt.Fprintf(tw, "  %-4s  %s\t%s\n", mark, s.Step, s.Detail)
	}
	tw.Flush()
	var body struct {
		Reason string `json:"reason"`
		Error  string `json:"error"`
	}
	_ = json.Unmarshal(ans.Body, &body)
	if ans.Status/100 == 2 {
		fmt.Fprintf(w, "\nanswer: %d allow\n", ans.Status)
	} else {
		fmt.Fprintf(w, "\nanswer: %d %s (%s)\n", ans.Status, body.Reason, body.Error)
	}
	for _, h := range ans.Header {
		if policy.HasHeaderPrefix(h[0], identityPrefix) || policy.HasHeaderPrefix(h[0], "RateLimit") ||
			strings.EqualFold(h[0], "Retry-After") || strings.EqualFold(h[0], "WWW-Authenticate") {
			fmt.Fprintf(w, "  %s: %s\n", h[0], h[1])
		}
	}
}

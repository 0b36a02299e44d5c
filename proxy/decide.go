package proxy

import (
	"crypto/sha256"
	"encoding/hex"
	"log/slog"
	"net/netip"
	"time"

	"github.com/scopegate/scopegate/policy"
)

// decide runs SPEC §4's order for st.req (filled by fill): raw path
// screening → forwarded headers from a trusted peer → route → credential
// kind → the credential's checks → for users scope, module and grant. It
// sets st.req.ClientIP and st.req.Now. The engine decides; decide only
// fetches what the engine needs from the store and fails closed when the
// store cannot answer.
func (p *Proxy) decide(st *reqState, peer netip.Addr, xff, xRealIP string, now time.Time) policy.Decision {
	req := &st.req
	req.Now = now
	ip, ipReason := p.engine.ClientIP(peer, xff, xRealIP)
	req.ClientIP = ip
	req.Forwarded = ipReason // Match denies with it right after path screening
	if cap(st.pathBuf) < len(req.RawPath) {
		st.pathBuf = make([]byte, 0, len(req.RawPath)+64)
	}
	req.Scratch = st.pathBuf[:0]

	if p.isPreflight(st) {
		if d, ok := p.preflight(st); ok {
			return d
		}
	}
	m, d := p.engine.Match(req)
	if d.Reason != policy.ReasonNone {
		return withRoute(d, m.Route)
	}
	if m.Public {
		return policy.Decision{Verdict: policy.Allow, Route: m.Route}
	}
	switch req.Cred.Kind {
	case policy.CredentialAPIKey:
		c, err := p.store.LookupClient(req.Cred.ClientKey, now)
		if err != nil {
			p.storeError(err)
			return withRoute(policy.Denied(policy.ReasonStoreUnavailable), m.Route)
		}
		st.knownClient = c != nil && c.ClientKey == req.Cred.ClientKey
		var limit int
		if d, limit = p.engine.CheckClient(req, &m, c); limit > 0 {
			d = p.engine.FinishClient(req, &m, c, d, limit, p.bucket.Take(c.ID, limit, now))
		}
		if d.Allowed() && c != nil {
			p.store.MarkUsed(c.ID, now)
			st.credDeadline = c.ExpiresAt // zero: none
		}
	case policy.CredentialJWT:
		claims, vd := p.engine.VerifyToken(req)
		if vd.Reason != policy.ReasonNone {
			return withRoute(vd, m.Route)
		}
		st.sub = claims.Subject // verified: safe to log
		st.credDeadline = p.engine.TokenDeadline(claims)
		dir, err := p.store.Directory(now)
		if err != nil {
			p.storeError(err)
			return withRoute(policy.Denied(policy.ReasonStoreUnavailable), m.Route)
		}
		// The base context, never the RequestCtx. No per-request context is
		// made: a warm cache never reads it, and the store bounds a miss
		// itself (store.PostgresConfig.UserLoadTimeout).
		u, err := p.store.LookupUser(p.cfg.BaseContext, claims.Subject, now)
		if err == nil && p.users != nil { // SPEC §14: create or refresh from the claims
			u, err = p.users.SyncUser(p.cfg.BaseContext, u, claims, now)
		}
		if err != nil {
			p.storeError(err)
			return withRoute(policy.Denied(policy.ReasonStoreUnavailable), m.Route)
		}
		d = p.engine.AuthorizeUser(req, &m, u, dir)
	default:
		// Match should have answered credentials_missing; fail closed.
		d = policy.Denied(policy.ReasonCredentialsMissing)
	}
	return withRoute(d, m.Route)
}

// withRoute records the matched route (for the decision log).
func withRoute(d policy.Decision, route int) policy.Decision {
	d.Route = route
	return d
}

// storeError counts a failed store call and logs it at most once a second
// (the decision log has a line per request anyway).
func (p *Proxy) storeError(err error) {
	p.m.storeErrors.Inc()
	now := time.Now().UnixNano()
	last := p.storeErrLogged.Load()
	if now-last < int64(time.Second) || !p.storeErrLogged.CompareAndSwap(last, now) {
		return
	}
	p.log.LogAttrs(p.cfg.BaseContext, slog.LevelWarn, "store lookup failed", slog.String("err", err.Error()))
}

// presentedClientKey is the decision log's attribute for the client_key an
// API-key request presented: the key itself when it names a client the
// store knows (an identifier), else client_key_hash, the first 12 hex
// digits of its SHA-256. An unknown one may be a secret: a client that
// swapped X-Client-Key and X-API-Key presents its secret as the key.
func (st *reqState) presentedClientKey() slog.Attr {
	k := st.req.Cred.ClientKey
	if st.knownClient {
		return slog.String("client_key", truncate(k, 64))
	}
	sum := sha256.Sum256([]byte(k))
	return slog.String("client_key_hash", hex.EncodeToString(sum[:6]))
}

package proxy

import (
	"context"
	"fmt"
	"testing"

	"github.com/golang-jwt/jwt/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/valyala/fasthttp"

	"github.com/scopegate/scopegate/internal/testproc"
	"github.com/scopegate/scopegate/store"
)

// aliceClaims match alice's row in storetest.Basic: with sync on, her
// requests find nothing to write.
func aliceClaims() jwt.MapClaims {
	return jwt.MapClaims{"sub": "alice", "iss": "https://idp.example.com/", "name": "Alice",
		"email": "alice@example.com", "email_verified": true}
}

// syncBench is one gateway over a PostgreSQL store with user sync on (its
// creation bound lifted), and the same gateway with sync off.
type syncBench struct {
	on, off *env
	db      *pgxpool.Pool
}

func newSyncBench(tb testing.TB) syncBench {
	s, db := openSyncStore(tb, func(c *store.UserSyncConfig) { c.CreateRate, c.CreateBurst = 1e9, 1<<30 })
	return syncBench{
		db:  db,
		on:  newEnv(tb, envOptions{noUpstream: true, store: s, userSync: s}),
		off: newEnv(tb, envOptions{noUpstream: true, store: s}),
	}
}

// meCtx is a decision-only GET /api/me (auth: [jwt], no grant needed) with
// tok, for calling the handler directly.
func meCtx(tok string) *fasthttp.RequestCtx {
	ctx, req, addr := handlerCtx("127.0.0.1", func(r *fasthttp.Request) {
		r.SetRequestURI("/api/me")
		r.Header.Set("Authorization", "Bearer "+tok)
	})
	ctx.Init(req, addr, nil)
	return ctx
}

// BenchmarkUserSync: the decision of GET /api/me with a JWT, on the real
// PostgreSQL store, in one run: a known user with sync off (off), the same
// with SCOPEGATE_USER_SYNC=claims and unchanged claims (steady: must cost
// no allocation more than off), and the first request of a new user (jit:
// lookup miss, insert, load; every iteration a new subject, tokens signed
// before the timer). commit_floor is one single-row INSERT committed on the
// same database: what a durable write costs on this disk, the floor of jit.
func BenchmarkUserSync(b *testing.B) {
	sb := newSyncBench(b)
	known := func(e *env) func(b *testing.B) {
		return func(b *testing.B) {
			ctx := meCtx(jwtWith(b, aliceClaims()))
			e.proxy.Handler(ctx) // verify the token, load alice: outside the timing
			b.ReportAllocs()
			defer reportCPU(b)()
			for b.Loop() {
				ctx.Response.Reset()
				e.proxy.Handler(ctx)
				if ctx.Response.StatusCode() != 200 {
					b.Fatalf("status %d: %s", ctx.Response.StatusCode(), ctx.Response.Body())
				}
			}
		}
	}
	b.Run("off", known(sb.off))
	b.Run("steady", known(sb.on))
	round := 0
	b.Run("jit", func(b *testing.B) {
		round++
		ctxs := make([]*fasthttp.RequestCtx, b.N)
		for i := range ctxs {
			ctxs[i] = meCtx(jwtWith(b, jwt.MapClaims{"sub": fmt.Sprintf("jit-%d-%d", round, i), "iss": "https://idp.example.com/",
				"name": "New User", "email": fmt.Sprintf("jit-%d-%d@example.com", round, i), "email_verified": true}))
		}
		b.ReportAllocs()
		b.ResetTimer()
		defer reportCPU(b)()
		for i := 0; i < b.N; i++ {
			sb.on.proxy.Handler(ctxs[i])
			if ctxs[i].Response.StatusCode() != 200 {
				b.Fatalf("status %d: %s", ctxs[i].Response.StatusCode(), ctxs[i].Response.Body())
			}
		}
	})
	b.Run("commit_floor", func(b *testing.B) {
		ctx := context.Background()
		if _, err := sb.db.Exec(ctx, "CREATE TABLE IF NOT EXISTS bench_commit_floor (n int)"); err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		defer reportCPU(b)()
		for i := 0; b.Loop(); i++ {
			if _, err := sb.db.Exec(ctx, "INSERT INTO bench_commit_floor VALUES ($1)", i); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// reportCPU reports the process's CPU time (user + system, every goroutine:
// the store's writer and change feed included; PostgreSQL's own is not) per
// iteration as cpu-ns/op, from now until the returned function runs.
func reportCPU(b *testing.B) func() {
	start := testproc.ProcessCPU()
	return func() {
		if b.N > 0 {
			b.ReportMetric(float64(testproc.ProcessCPU()-start)/float64(b.N), "cpu-ns/op")
		}
	}
}

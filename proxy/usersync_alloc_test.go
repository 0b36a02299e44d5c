//go:build !race

package proxy

import "testing"

// TestUserSyncSteadyNoAllocs: with SCOPEGATE_USER_SYNC=claims, a known
// user whose claims match the row is decided without allocating, as with
// sync off (the profile is mapped once per token, when it is verified).
func TestUserSyncSteadyNoAllocs(t *testing.T) {
	sb := newSyncBench(t)
	for name, e := range map[string]*env{"off": sb.off, "steady": sb.on} {
		ctx := meCtx(jwtWith(t, aliceClaims()))
		run := func() {
			ctx.Response.Reset()
			e.proxy.Handler(ctx)
		}
		run()
		if ctx.Response.StatusCode() != 200 {
			t.Fatalf("%s: status %d: %s", name, ctx.Response.StatusCode(), ctx.Response.Body())
		}
		if n := testing.AllocsPerRun(200, run); n != 0 {
			t.Errorf("%s: %v allocs per request, want 0", name, n)
		}
	}
}

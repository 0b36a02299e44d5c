package proxy

import (
	"github.com/valyala/fasthttp"

	"github.com/scopegate/scopegate/internal/bytesconv"
	"github.com/scopegate/scopegate/policy"
)

var (
	hdrWWWAuthenticate = []byte("WWW-Authenticate")
	hdrRetryAfter      = []byte("Retry-After")
	hdrRateLimitPolicy = []byte("RateLimit-Policy")
	hdrRateLimit       = []byte("RateLimit")
	hdrRateLimitLimit  = []byte("RateLimit-Limit")
	hdrRateLimitRemain = []byte("RateLimit-Remaining")
	hdrRateLimitReset  = []byte("RateLimit-Reset")
	hdrCacheControl    = []byte("Cache-Control")
	hdrContentType     = []byte("Content-Type")
	// hdrDenyReason and hdrDenyError carry the reason code and its text on
	// forward-auth denials, so a proxy that discards the auth body (nginx
	// auth_request) can rebuild the JSON denial (see configs/nginx/scopegate.conf).
	hdrDenyReason = []byte("X-Scopegate-Reason")
	hdrDenyError  = []byte("X-Scopegate-Error")

	valBearerInvalid = []byte(`Bearer error="invalid_token"`)
	valNoStore       = []byte("no-store")
	valJSON          = []byte("application/json")
	valOne           = []byte("1")
)

// answer is a response scopegate writes itself: a decision's denial, a
// malformed request, an upstream's failure, a panic. Each is built as one
// value (denial, malformed) and written by writeAnswer; the decision log and
// the metrics read the same value, so the log never disagrees with what the
// client got.
type answer struct {
	status int
	reason policy.Reason // the denial's reason; ReasonNone for a malformed request
	code   string        // the body's reason code
	text   string        // the body's error text
	// forwardAuth: a forward-auth answer, which repeats the reason in
	// headers for nginx (auth_request discards the body).
	forwardAuth bool
	// restart drops what the response held (an upstream's answer begun).
	restart bool
	// close closes the client connection after the answer.
	close bool
	// rateLimit is the client's bucket (Applied: the request reached it).
	rateLimit policy.RateLimitState
}

// reasonBadRequest is the reason code of a request malformed at the HTTP
// level (not a policy decision).
const reasonBadRequest = "bad_request"

// denial builds the answer to d, a denial (ReasonNone reads as
// internal_error). This is the one place where the forward-auth status
// mapping lives: there the 400-class reasons are answered 403 (nginx turns
// any other 4xx into 500).
func denial(d *policy.Decision, forwardAuth bool) answer {
	r := d.Reason
	if r == policy.ReasonNone {
		r = policy.ReasonInternal
	}
	status := r.Status()
	if forwardAuth && status == fasthttp.StatusBadRequest {
		status = fasthttp.StatusForbidden
	}
	return answer{status: status, reason: r, code: r.String(), text: r.Text(), forwardAuth: forwardAuth, rateLimit: d.RateLimit}
}

// malformed builds the answer to a request that is malformed at the HTTP
// level: status, reason "bad_request", text, and Connection: close.
func malformed(status int, text string) answer {
	return answer{status: status, code: reasonBadRequest, text: text, close: true}
}

// writeAnswer writes a: its status, the JSON body
// {"error","reason","request_id"}, X-Request-Id, WWW-Authenticate for token
// failures, the rate-limit headers when the request reached a bucket (and
// Retry-After on a 429), the reason headers of a forward-auth denial, and
// Connection: close when asked. A malformed request is counted here.
func (p *Proxy) writeAnswer(ctx *fasthttp.RequestCtx, st *reqState, a answer) {
	resp := &ctx.Response
	if a.restart {
		resp.Reset()
		resp.Header.SetCanonical(hdrRequestID, st.reqID)
	}
	if a.reason == policy.ReasonNone {
		p.m.badRequests.Inc()
	}
	resp.SetStatusCode(a.status)
	resp.Header.SetCanonical(hdrContentType, valJSON)
	if a.close {
		resp.SetConnectionClose()
	}
	if a.reason != policy.ReasonNone {
		resp.Header.SetCanonical(hdrCacheControl, valNoStore)
	}
	if a.reason == policy.ReasonTokenExpired || a.reason == policy.ReasonTokenInvalid {
		resp.Header.SetCanonical(hdrWWWAuthenticate, valBearerInvalid)
	}
	if a.forwardAuth {
		resp.Header.SetCanonical(hdrDenyReason, bytesconv.Bytes(a.code))
		resp.Header.SetCanonical(hdrDenyError, bytesconv.Bytes(a.text))
	}
	p.setRateLimitHeaders(ctx, st, &a.rateLimit, a.reason == policy.ReasonRateLimited)
	// The request id holds no '"', '\\' or control character
	// (validRequestID), and reason codes and texts are constant ASCII
	// without quotes.
	b := append(st.scratch[:0], `{"error":"`...)
	b = append(b, a.text...)
	b = append(b, `","reason":"`...)
	b = append(b, a.code...)
	b = append(b, `","request_id":"`...)
	b = append(b, st.reqID...)
	b = append(b, "\"}\n"...)
	resp.SetBody(b)
	st.scratch = b[:0]
}

// setRateLimitHeaders writes the RateLimit headers of SPEC §5 when the
// request reached the client's bucket, and Retry-After on a 429.
func (p *Proxy) setRateLimitHeaders(ctx *fasthttp.RequestCtx, st *reqState, rl *policy.RateLimitState, limited bool) {
	if !rl.Applied {
		if limited {
			ctx.Response.Header.SetCanonical(hdrRetryAfter, valOne)
		}
		return
	}
	h := &ctx.Response.Header
	b := append(st.scratch[:0], `"per-minute";q=`...)
	b = fasthttp.AppendUint(b, rl.Limit)
	b = append(b, ";w=60"...)
	h.SetCanonical(hdrRateLimitPolicy, b)
	b = append(b[:0], `"per-minute";r=`...)
	b = fasthttp.AppendUint(b, nonNeg(rl.Remaining))
	b = append(b, ";t="...)
	b = fasthttp.AppendUint(b, nonNeg(rl.ResetSecs))
	h.SetCanonical(hdrRateLimit, b)
	h.SetCanonical(hdrRateLimitLimit, fasthttp.AppendUint(b[:0], rl.Limit))
	h.SetCanonical(hdrRateLimitRemain, fasthttp.AppendUint(b[:0], nonNeg(rl.Remaining)))
	h.SetCanonical(hdrRateLimitReset, fasthttp.AppendUint(b[:0], nonNeg(rl.ResetSecs)))
	if limited {
		ra := rl.RetryAfter
		if ra < 1 {
			ra = 1
		}
		h.SetCanonical(hdrRetryAfter, fasthttp.AppendUint(b[:0], ra))
	}
	st.scratch = b[:0]
}

func nonNeg(n int) int {
	if n < 0 {
		return 0
	}
	return n
}

// headerSetter is *fasthttp.RequestHeader or *fasthttp.ResponseHeader; the
// names set are canonical (canonicalHeaderName), so none is normalized again.
type headerSetter interface {
	SetCanonical(key, value []byte)
}

// identityField is one identity header and its value ("" when unset).
type identityField struct{ name, value string }

// identityFields returns the identity headers of SPEC §5 other than the
// scope header, with their values for id. It does not allocate.
func (p *Proxy) identityFields(id *policy.Identity) [6]identityField {
	return [6]identityField{
		{p.hdrType, id.Type.String()},
		{p.hdrClient, id.ClientID},
		{p.hdrCKey, id.ClientKey},
		{p.hdrUserID, id.UserID},
		{p.hdrUserSub, id.UserSub},
		{p.hdrEmail, id.UserEmail},
	}
}

// hasScope reports whether id carries an X-Auth-Scope value.
func hasScope(id *policy.Identity) bool { return id.ScopeKind != "" && id.ScopeKey != "" }

// setIdentity writes the identity headers of SPEC §5 into h (the upstream
// request or the forward-auth answer). Absent values are not set.
func (p *Proxy) setIdentity(h headerSetter, st *reqState, id *policy.Identity) {
	if id.Type == policy.CredentialNone {
		return
	}
	for _, f := range p.identityFields(id) {
		if f.value != "" {
			h.SetCanonical(bytesconv.Bytes(f.name), bytesconv.Bytes(f.value))
		}
	}
	if hasScope(id) {
		b := append(st.scratch[:0], id.ScopeKind...)
		b = append(b, ':')
		b = append(b, id.ScopeKey...)
		h.SetCanonical(bytesconv.Bytes(p.hdrScope), b)
		st.scratch = b[:0]
	}
}

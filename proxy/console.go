package proxy

import (
	"time"

	"github.com/valyala/fasthttp"

	"github.com/scopegate/scopegate/policy"
	"github.com/scopegate/scopegate/proxy/console"
)

// observeConsole hands d to the operator page's counters (when there is a
// console), with a, the answer to a denial (nil when d allows), so the
// page's status and reason are those the client gets. It does not
// allocate: the event lives on the stack and the console copies what it
// keeps.
func (p *Proxy) observeConsole(st *reqState, d *policy.Decision, a *answer, took time.Duration) {
	if p.console == nil {
		return
	}
	e := console.Event{
		Time:      st.req.Now, // the request's start, set by decide
		Took:      took,
		Status:    fasthttp.StatusOK,
		Route:     d.Route,
		Method:    st.req.Method,
		Path:      st.req.RawPath,
		ClientKey: d.Identity.ClientKey,
		// knownClient: the store found the presented client_key.
		ClientFound: st.knownClient,
		UserSub:     d.Identity.UserSub,
		RequestID:   st.reqID,
		RateLimit:   d.RateLimit,
	}
	if e.Time.IsZero() { // denied before decide ran (path, forwarded headers)
		e.Time = time.Now()
	}
	if st.preflight {
		e.Status = fasthttp.StatusNoContent
	}
	if a != nil {
		e.Status, e.Reason = a.status, a.reason
	}
	if e.ClientKey == "" && st.req.Cred.Kind == policy.CredentialAPIKey {
		e.ClientKey = st.req.Cred.ClientKey // an identifier, not the secret
	}
	if e.UserSub == "" {
		e.UserSub = st.sub // verified
	}
	p.console.Observe(&e)
}

package proxy

import (
	"errors"
	"github.com/VictoriaMetrics/metrics"
	"log/slog"
	"time"

	"github.com/valyala/fasthttp"
)

// NewServer returns the fasthttp server of the traffic listener, with the
// limits of the Config: header size (431 past it), body size (413),
// timeouts, connection count. Request bodies are streamed to the upstream
// (StreamRequestBody) rather than buffered whole. Malformed requests that
// fasthttp rejects before the handler runs get a JSON answer with
// reason "bad_request" and an X-Request-Id.
func (p *Proxy) NewServer() *fasthttp.Server {
	return &fasthttp.Server{
		Handler:                       p.Handler,
		ErrorHandler:                  p.errorHandler,
		Name:                          "scopegate",
		NoDefaultServerHeader:         true,
		NoDefaultContentType:          true,
		ReadBufferSize:                p.cfg.MaxHeaderBytes,
		MaxRequestBodySize:            p.cfg.MaxBodyBytes,
		StreamRequestBody:             true,
		DisablePreParseMultipartForm:  true,
		ReadTimeout:                   p.cfg.ReadTimeout,
		WriteTimeout:                  p.cfg.WriteTimeout,
		IdleTimeout:                   p.cfg.IdleTimeout,
		Concurrency:                   p.cfg.MaxConns,
		CloseOnShutdown:               true,
		DisableHeaderNamesNormalizing: false,
		Logger:                        fasthttpLogger{p.log},
	}
}

// NewAdminServer returns the fasthttp server of the admin listener. Its
// /metrics carries # HELP and # TYPE lines, so scrapers know counters from
// gauges and histograms (VictoriaMetrics' ExposeMetadata, a process-wide
// setting, made here with the server that serves it).
func (p *Proxy) NewAdminServer() *fasthttp.Server {
	metrics.ExposeMetadata(true)
	return &fasthttp.Server{
		Handler:               p.AdminHandler,
		Name:                  "scopegate-admin",
		NoDefaultServerHeader: true,
		ReadTimeout:           10 * time.Second,
		WriteTimeout:          30 * time.Second,
		IdleTimeout:           60 * time.Second,
		Concurrency:           256,
		CloseOnShutdown:       true,
		Logger:                fasthttpLogger{p.log},
	}
}

// errorHandler answers requests fasthttp could not parse: 431 for headers
// over MaxHeaderBytes, 413 for bodies over MaxBodyBytes, 408 on a read
// timeout, else 400.
func (p *Proxy) errorHandler(ctx *fasthttp.RequestCtx, err error) {
	status, text := fasthttp.StatusBadRequest, "the request could not be parsed"
	var sizeErr *fasthttp.ErrSmallBuffer
	switch {
	case errors.As(err, &sizeErr):
		status, text = fasthttp.StatusRequestHeaderFieldsTooLarge, "the request headers are too large"
	case errors.Is(err, fasthttp.ErrBodyTooLarge):
		status, text = fasthttp.StatusRequestEntityTooLarge, "the request body is too large"
	case isTimeout(err):
		status, text = fasthttp.StatusRequestTimeout, "the request was not received in time"
	}
	st := p.pool.Get().(*reqState)
	defer p.release(st)
	p.requestID(ctx, st, ctx.Request.Header.PeekBytes(hdrRequestID))
	p.writeBadRequest(ctx, st, status, text)
	p.log.LogAttrs(p.cfg.BaseContext, slog.LevelInfo, "bad request",
		slog.Int("status", status), slog.String("err", err.Error()), slog.String("request_id", string(st.reqID)))
}

// writeBadRequest answers a request that is malformed at the HTTP level
// (not a policy decision): status, a JSON body with reason "bad_request",
// and Connection: close.
func (p *Proxy) writeBadRequest(ctx *fasthttp.RequestCtx, st *reqState, status int, text string) {
	p.m.badRequests.Inc()
	ctx.Response.SetStatusCode(status)
	ctx.Response.Header.SetCanonical(hdrContentType, valJSON)
	ctx.Response.SetConnectionClose()
	b := append(st.scratch[:0], `{"error":"`...)
	b = append(b, text...)
	b = append(b, `","reason":"bad_request","request_id":"`...)
	b = append(b, st.reqID...)
	b = append(b, "\"}\n"...)
	ctx.Response.SetBody(b)
	st.scratch = b[:0]
}

// fasthttpLogger routes fasthttp's own messages to slog.
type fasthttpLogger struct{ l *slog.Logger }

func (f fasthttpLogger) Printf(format string, args ...any) {
	f.l.Debug("fasthttp", slog.String("msg", sprintf(format, args...)))
}

package proxy

import (
	"errors"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/valyala/fasthttp"
)

// NewServer returns the fasthttp server of the traffic listener: the
// [Config.ListenerServer] settings with the proxy's handler, and an error
// handler that gives malformed requests fasthttp rejects before the handler
// runs a JSON answer with reason "bad_request" and an X-Request-Id.
func (p *Proxy) NewServer() *fasthttp.Server {
	s := p.cfg.ListenerServer(p.Handler)
	s.ErrorHandler = p.errorHandler
	s.Logger = fasthttpLogger{p.log}
	return s
}

// ListenerServer returns a fasthttp server for h with the traffic
// listener's settings from c (defaults applied): header size (431 past it),
// body size (413), timeouts, connection count. Request bodies are streamed
// to the upstream (StreamRequestBody) rather than buffered whole.
// [Proxy.NewServer] is built on it, and so are the benchmark's reference
// servers, so they pay for the same limits.
func (c Config) ListenerServer(h fasthttp.RequestHandler) *fasthttp.Server {
	c.setDefaults()
	return &fasthttp.Server{
		Handler:                       h,
		Name:                          "scopegate",
		NoDefaultServerHeader:         true,
		NoDefaultContentType:          true,
		ReadBufferSize:                c.MaxHeaderBytes,
		MaxRequestBodySize:            c.MaxBodyBytes,
		StreamRequestBody:             true,
		DisablePreParseMultipartForm:  true,
		ReadTimeout:                   c.ReadTimeout,
		WriteTimeout:                  c.WriteTimeout,
		IdleTimeout:                   c.IdleTimeout,
		Concurrency:                   c.MaxConns,
		CloseOnShutdown:               true,
		DisableHeaderNamesNormalizing: false,
		// Errors about a malformed request do not quote it: its
		// Authorization header or API key would reach the log.
		SecureErrorLogMessage: true,
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
		SecureErrorLogMessage: true,
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
	p.answerUnparsed(ctx, status, text, unquoted(err.Error()))
}

// answerUnparsed answers a request refused before any policy ran (status,
// text) and logs why.
func (p *Proxy) answerUnparsed(ctx *fasthttp.RequestCtx, status int, text, why string) {
	st := p.pool.Get().(*reqState)
	defer p.release(st)
	p.requestID(ctx, st, ctx.Request.Header.PeekBytes(hdrRequestID))
	p.writeAnswer(ctx, st, malformed(status, text))
	p.m.countRequest(nil, -1, status)
	p.log.LogAttrs(p.cfg.BaseContext, slog.LevelInfo, "bad request",
		slog.Int("status", status), slog.String("err", why), slog.String("request_id", string(st.reqID)))
}

// unquoted cuts a fasthttp error message where it starts quoting the
// offending input ("invalid header value \"...\""): a malformed request
// line or header field can hold an API key or a token, which must not reach
// the log. SecureErrorLogMessage only drops fasthttp's buffer dumps.
func unquoted(msg string) string {
	if i := strings.IndexByte(msg, '"'); i >= 0 {
		return msg[:i] + "(input not logged)"
	}
	return msg
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// fasthttpLogger routes fasthttp's own messages to slog.
type fasthttpLogger struct{ l *slog.Logger }

func (f fasthttpLogger) Printf(format string, args ...any) {
	f.l.Debug("fasthttp", slog.String("msg", unquoted(sprintf(format, args...))))
}

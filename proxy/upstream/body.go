package upstream

import (
	"errors"
	"io"
	"slices"
	"time"

	"github.com/valyala/fasthttp"
)

// errBodyTooLarge stops a chunked request body past MaxBodyBytes.
var errBodyTooLarge = errors.New("proxy: request body too large")

// limitedBody passes a request body stream through until more than left
// bytes were read (a chunked body declares no length), and keeps the
// client's read error apart from the upstream's. At its end it drops the
// trailer section the client sent: fasthttp reads the trailer only while
// the body streams to the upstream, after the caller's header hygiene ran,
// and would forward it, identity or forwarded fields included. Like nginx,
// the gateway forwards no request trailers.
type limitedBody struct {
	r        io.Reader
	left     int64
	exceeded bool
	readErr  error // the client's body failed: framing, timeout, reset, short
	declared int64 // Content-Length, or -1 (chunked)
	read     int64
	x        *Exchange               // its name buffers copy the trailer names
	h        *fasthttp.RequestHeader // whose trailer to drop at the end
}

func (l *limitedBody) Read(p []byte) (int, error) {
	if int64(len(p)) > l.left+1 {
		p = p[:l.left+1]
	}
	n, err := l.r.Read(p)
	l.read += int64(n)
	if err == io.EOF && l.declared >= 0 && l.read < l.declared {
		// The client closed before sending what it declared: fasthttp's
		// stream ends it as a plain EOF.
		err = io.ErrUnexpectedEOF
	}
	if err != nil && err != io.EOF {
		l.readErr = err
	}
	if err == io.EOF {
		l.dropTrailer()
	}
	l.left -= int64(n)
	if l.left < 0 {
		l.exceeded = true
		return 0, errBodyTooLarge
	}
	return n, err
}

// dropTrailer deletes the trailer fields the client sent. The names are
// copied first (deleting moves the fields), into the exchange's reused
// buffers.
func (l *limitedBody) dropTrailer() {
	keys := l.h.PeekTrailerKeys()
	if len(keys) == 0 {
		return
	}
	x := l.x
	x.names, x.keys = x.names[:0], x.keys[:0]
	for _, k := range keys {
		start := len(x.keys)
		x.keys = append(x.keys, k...)
		x.names = append(x.names, x.keys[start:len(x.keys):len(x.keys)])
	}
	for _, k := range x.names {
		l.h.DelBytes(k)
	}
	x.names, x.keys = x.names[:0], x.keys[:0]
}

// outcome tells what the client's body did: OK when it did not fail.
func (l *limitedBody) outcome() Outcome {
	switch {
	case l.exceeded:
		return BodyTooLarge
	case l.readErr == nil:
		return OK
	case isTimeout(l.readErr):
		// Not sent within the client side's read timeout: the client's
		// fault, not the upstream's.
		return BodyTimedOut
	}
	return BodyMalformed
}

// bufferAnswer's failures.
var (
	errAnswerTooLarge = errors.New("an answer of unknown length over SCOPEGATE_MAX_BODY_BYTES for an HTTP/1.0 client")
	errAnswerTooSlow  = errors.New("an answer of unknown length not over within SCOPEGATE_UPSTREAM_TIMEOUT for an HTTP/1.0 client")
)

// bufferAnswer reads resp's streamed answer of unknown length whole, for
// an HTTP/1.0 client, and sets it as the body with its length. One larger
// than MaxBodyBytes, or not over within Timeout (an event stream, a long
// poll: nothing could reach the client before its end), fails.
func bufferAnswer(resp *fasthttp.Response, cfg *Config) error {
	bs := resp.BodyStream()
	deadline := time.Now().Add(cfg.Timeout)
	var (
		body []byte
		err  error
	)
	for {
		if len(body) == cap(body) {
			body = slices.Grow(body, 32<<10)
		}
		var n int
		n, err = bs.Read(body[len(body):cap(body)])
		body = body[:len(body)+n]
		switch {
		case err == io.EOF:
			err = nil
		case err != nil:
		case len(body) > cfg.MaxBodyBytes:
			err = errAnswerTooLarge
		case time.Now().After(deadline):
			err = errAnswerTooSlow
		default:
			continue
		}
		break
	}
	if err != nil {
		if rc, ok := bs.(fasthttp.ReadCloserWithError); ok {
			_ = rc.CloseWithError(err)
		}
		return err
	}
	_ = resp.CloseBodyStream()
	resp.SetBody(body)
	return nil
}

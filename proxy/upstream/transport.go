package upstream

import (
	"bufio"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"

	"github.com/valyala/fasthttp"
)

// transport is the HostClient's exchange: fasthttp's default transport for
// this package's settings, with the changes below. Those settings are all it
// honours: the HostClient's ReadTimeout, WriteTimeout, MaxConnDuration and
// MaxResponseBodySize and a request's DoTimeout/DoDeadline are not applied
// here (the connections keep their own deadlines, see conn.go). fasthttp streams every answer of
// a StreamResponseBody client, at four allocations and a stream copy per
// answer; most API answers are a few hundred bytes that arrive in the same
// read as their header block. An answer whose body is already buffered
// whole when its header block has been read is read into the response
// (no stream, the connection back in the pool at once); any other answer
// streams through an [answerStream], as before. What the client receives
// is the same either way, except a chunked answer's trailer (dropped). The
// connection is marked closing as the answer arrives (its Connection
// field, or a body that ends with the connection), not when its body has
// streamed: by then the proxy has rewritten the answer's headers.
type transport struct{}

// maxInterimAnswers bounds the 1xx answers (other than 101) skipped before
// the final one, as fasthttp does.
const maxInterimAnswers = 100

var errTooManyInterim = errors.New("proxy: too many interim (1xx) answers")

// RoundTrip sends req on a pooled connection of hc and reads the answer's
// header block into resp, and its body when it is already buffered whole.
// retry tells hc whether the request may be tried again (its RetryIfErr
// decides): an error after the connection was taken may be a stale
// keep-alive connection.
func (transport) RoundTrip(hc *fasthttp.HostClient, req *fasthttp.Request, resp *fasthttp.Response) (retry bool, err error) {
	cc, err := hc.AcquireConn(0, req.ConnectionClose())
	if err != nil {
		return false, err
	}
	conn := cc.Conn()
	if err := writeRequest(hc, conn, req); err != nil {
		hc.CloseConn(cc)
		return true, err
	}
	if req.Header.IsHead() {
		resp.SkipBody = true
	}
	if hc.DisableHeaderNamesNormalizing {
		resp.Header.DisableNormalizing()
	}
	br := hc.AcquireReader(conn)
	if err := readHeader(&resp.Header, br); err != nil {
		hc.ReleaseReader(br)
		hc.CloseConn(cc)
		return true, err
	}
	n, noBody := resp.Header.ContentLength(), skipsBody(resp)
	// A body that ends with the connection (-2) leaves none to reuse, even
	// when fasthttp did not mark it closing (an Upgrade answer).
	closeConn := req.ConnectionClose() || resp.ConnectionClose() || n == -2 && !noBody
	if noBody || n >= 0 && n <= br.Buffered() {
		if !noBody {
			resp.StreamBody = false
			err = resp.ReadBody(br, 0) // from the buffer: no read, no wait
		}
		hc.ReleaseReader(br)
		if err != nil || closeConn {
			hc.CloseConn(cc)
		} else {
			hc.ReleaseConn(cc)
		}
		return false, err
	}
	s := &answerStream{sr: fasthttp.AcquireResponse(), hc: hc, cc: cc, br: br, closeConn: closeConn}
	// fasthttp's stream of the body (chunked framing, a length, or to the
	// end of the connection) is owned by s's scratch response, so the
	// answer's own body stream can be s. A chunked answer's trailer lands in
	// the scratch response's header and goes no further: like nginx, the
	// gateway forwards no trailers.
	s.sr.StreamBody = true
	s.sr.Header.SetContentLength(n)
	if err := s.sr.ReadBody(br, 0); err != nil { // never, for a stream
		s.CloseWithError(err)
		return false, err
	}
	resp.SetBodyStream(s, n)
	return false, nil
}

// writeRequest writes req on conn through one of hc's pooled writers; a
// timeout is fasthttp.ErrTimeout, as fasthttp reports it.
func writeRequest(hc *fasthttp.HostClient, conn net.Conn, req *fasthttp.Request) error {
	bw := hc.AcquireWriter(conn)
	err := req.Write(bw)
	if err == nil {
		err = bw.Flush()
	}
	hc.ReleaseWriter(bw)
	if isTimeout(err) {
		err = fasthttp.ErrTimeout
	}
	return err
}

// readHeader reads an answer's header block into h, skipping interim (1xx
// other than 101) answers.
func readHeader(h *fasthttp.ResponseHeader, br *bufio.Reader) error {
	if err := h.Read(br); err != nil {
		return err
	}
	for n := 0; ; n++ {
		if c := h.StatusCode(); c < 100 || c > 199 || c == fasthttp.StatusSwitchingProtocols {
			return nil
		}
		if n >= maxInterimAnswers {
			return errTooManyInterim
		}
		if err := h.Read(br); err != nil {
			return err
		}
	}
}

// skipsBody reports whether resp has no body to read: a HEAD request's
// answer, or a 1xx, 204 or 304 (RFC 9112 §6.3).
func skipsBody(resp *fasthttp.Response) bool {
	c := resp.StatusCode()
	return resp.SkipBody || c < 200 || c == fasthttp.StatusNoContent || c == fasthttp.StatusNotModified
}

// answerStream is a streamed answer's body. It reads through fasthttp's
// stream of the body, held by its scratch response, and when closed gives
// the connection back to hc's pool if the body was read to its end without
// an error and neither side asked to close it, or closes it. A Close while
// a Read is blocked in another goroutine closes the connection first, so
// the Read returns. One is made per streamed answer (its scratch response
// comes from fasthttp's pool): it is closed more than once (fasthttp, and
// bufferAnswer on a failure), so it must not be reused.
type answerStream struct {
	sr        *fasthttp.Response // owns fasthttp's stream of the body
	hc        *fasthttp.HostClient
	cc        any // the *fasthttp.clientConn hc.AcquireConn returned (an unexported type)
	br        *bufio.Reader
	closeConn bool
	fullyRead bool
	closed    atomic.Bool
	readMu    sync.Mutex
}

// Read reads the body; io.EOF at its end.
func (s *answerStream) Read(p []byte) (int, error) {
	if s.closed.Load() {
		return 0, io.ErrClosedPipe
	}
	s.readMu.Lock()
	defer s.readMu.Unlock()
	if s.closed.Load() {
		return 0, io.ErrClosedPipe
	}
	n, err := s.sr.BodyStream().Read(p)
	if errors.Is(err, io.EOF) {
		s.fullyRead = true
	}
	return n, err
}

// CloseWithError ends the stream; err is why its reader stopped (nil when
// it did not fail). The connection goes back to the pool only after a
// whole body and no error. A second call does nothing. (No Close: fasthttp
// would call both.)
func (s *answerStream) CloseWithError(err error) error {
	if s.closed.Swap(true) {
		return nil
	}
	locked := s.readMu.TryLock()
	reuse := locked && err == nil && s.fullyRead && !s.closeConn
	if !reuse {
		s.closeConnNow()
	}
	if !locked {
		s.readMu.Lock() // the closed connection ends the blocked Read
	}
	_ = s.sr.CloseBodyStream()
	s.hc.ReleaseReader(s.br)
	if reuse {
		s.hc.ReleaseConn(connOf(s.cc, s.hc.ReleaseConn))
	}
	fasthttp.ReleaseResponse(s.sr)
	s.sr, s.hc, s.cc, s.br = nil, nil, nil, nil
	s.readMu.Unlock()
	return nil
}

// closeConnNow closes the stream's connection and drops it from the pool.
func (s *answerStream) closeConnNow() {
	s.hc.CloseConn(connOf(s.cc, s.hc.CloseConn))
}

// connOf returns cc as the connection type of the HostClient method take
// (fasthttp's clientConn, which this package cannot name).
func connOf[C any](cc any, take func(C)) C { return cc.(C) }

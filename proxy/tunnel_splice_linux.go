package proxy

import (
	"io"
	"net"
	"os"
	"syscall"
)

// splicer moves bytes from one socket to another through a pipe with
// splice(2): the kernel hands the pages over and no byte is copied into
// or out of the process, which is most of what a tunnel costs for large
// messages. Waits go through the runtime's poller (RawConn), so the
// pump's read and write deadlines and the close of either connection
// wake it as they wake a Read or a Write.
type splicer struct {
	src, dst syscall.RawConn
	r, w     int // the pipe's ends
	// The callbacks and what they leave behind, made once: a closure made
	// per call would cost an allocation per message.
	fillFn, drainFn func(fd uintptr) bool
	n               int64 // fill: bytes moved; drain: bytes left
	serr            error
}

// spliceMax is the most one fill moves: the pipe's default capacity.
const spliceMax = 64 << 10

const spliceFlags = 0x1 | 0x2 // SPLICE_F_MOVE | SPLICE_F_NONBLOCK

// newSplicer returns a splicer from src to dst, or nil when either is not
// a bare TCP connection or the pipe cannot be made (the caller keeps
// copying). src must have nothing buffered above the socket.
func newSplicer(dst, src net.Conn) mover {
	d, s := bareTCP(dst), bareTCP(src)
	if d == nil || s == nil {
		return nil
	}
	drc, err1 := d.SyscallConn()
	src2, err2 := s.SyscallConn()
	if err1 != nil || err2 != nil {
		return nil
	}
	var p [2]int
	if err := syscall.Pipe2(p[:], syscall.O_CLOEXEC|syscall.O_NONBLOCK); err != nil {
		return nil
	}
	sp := &splicer{src: src2, dst: drc, r: p[0], w: p[1]}
	sp.fillFn, sp.drainFn = sp.fillFD, sp.drainFD
	return sp
}

// fillFD splices what the socket fd has into the pipe; false: nothing
// yet, wait for the socket.
func (s *splicer) fillFD(fd uintptr) bool {
	for {
		s.n, s.serr = syscall.Splice(int(fd), nil, s.w, nil, spliceMax, spliceFlags)
		switch s.serr {
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return false
		}
		return true
	}
}

// drainFD splices the s.n bytes in the pipe to the socket fd; false: the
// socket's buffer is full, wait for it.
func (s *splicer) drainFD(fd uintptr) bool {
	for s.n > 0 {
		m, e := syscall.Splice(s.r, nil, int(fd), nil, int(s.n), spliceFlags)
		switch e {
		case nil:
			if m == 0 {
				s.serr = io.ErrShortWrite // the pipe ran dry: cannot happen
				return true
			}
			s.n -= m
		case syscall.EINTR:
		case syscall.EAGAIN:
			return false
		default:
			s.serr = e
			return true
		}
	}
	return true
}

func (s *splicer) fill(net.Conn) (int, error) {
	s.n, s.serr = 0, nil
	err := s.src.Read(s.fillFn)
	switch {
	case err != nil:
		return 0, err // a deadline, or the connection closed
	case s.serr != nil:
		return 0, os.NewSyscallError("splice", s.serr)
	case s.n == 0:
		return 0, io.EOF
	}
	return int(s.n), nil
}

func (s *splicer) drain(_ net.Conn, n int) error {
	s.n, s.serr = int64(n), nil
	if err := s.dst.Write(s.drainFn); err != nil {
		return err
	}
	if s.serr != nil {
		return os.NewSyscallError("splice", s.serr)
	}
	return nil
}

func (s *splicer) release() {
	_ = syscall.Close(s.r)
	_ = syscall.Close(s.w)
}

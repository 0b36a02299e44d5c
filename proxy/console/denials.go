package console

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/scopegate/scopegate/policy"
)

// ringSize is how many denials /api/v1/decisions keeps.
const ringSize = 200

// Each kept text is cut to these many bytes; the buffers are allocated once
// with the ring, so recording a denial does not allocate.
const (
	maxMethod    = 16
	maxPath      = 256
	maxClientKey = 64
	maxUserSub   = 256
	maxRequestID = 200
)

// denialRing holds the last ringSize denials. A writer takes a sequence
// number, then the mutex of its slot only (writers contend only when
// ringSize of them are in flight at once).
type denialRing struct {
	next  atomic.Uint64 // the last sequence number handed out (1-based)
	slots [ringSize]denial
}

type denial struct {
	mu                                          sync.Mutex
	seq                                         uint64 // 0: empty
	at                                          int64  // unix nanoseconds
	status                                      int
	reason                                      policy.Reason
	method, path, clientKey, userSub, requestID []byte
}

func (r *denialRing) init() {
	for i := range r.slots {
		d := &r.slots[i]
		d.method = make([]byte, 0, maxMethod)
		d.path = make([]byte, 0, maxPath)
		d.clientKey = make([]byte, 0, maxClientKey)
		d.userSub = make([]byte, 0, maxUserSub)
		d.requestID = make([]byte, 0, maxRequestID)
	}
}

// add records e and returns its sequence number.
func (r *denialRing) add(e *Event) uint64 {
	seq := r.next.Add(1)
	d := &r.slots[(seq-1)%ringSize]
	d.mu.Lock()
	if seq > d.seq { // a slow writer never overwrites a newer denial
		d.seq, d.at, d.status, d.reason = seq, e.Time.UnixNano(), e.Status, e.Reason
		d.method = appendCut(d.method[:0], e.Method, maxMethod)
		d.path = appendCut(d.path[:0], e.Path, maxPath)
		d.clientKey = appendCut(d.clientKey[:0], e.ClientKey, maxClientKey)
		d.userSub = appendCut(d.userSub[:0], e.UserSub, maxUserSub)
		d.requestID = appendCut(d.requestID[:0], e.RequestID, maxRequestID)
	}
	d.mu.Unlock()
	return seq
}

// appendCut appends s, cut to n bytes, to dst.
func appendCut[S string | []byte](dst []byte, s S, n int) []byte {
	if len(s) > n {
		s = s[:n]
	}
	return append(dst, s...)
}

// decisionView is one entry of /api/v1/decisions and one event of the
// stream.
type decisionView struct {
	Seq       uint64  `json:"-"`
	Time      string  `json:"time"`
	RequestID string  `json:"request_id"`
	Status    int     `json:"status"`
	Reason    string  `json:"reason"`
	Method    string  `json:"method"`
	Path      string  `json:"path"`
	ClientKey *string `json:"client_key"`
	UserSub   *string `json:"user_sub"`
}

// get returns denial seq, false when it has been overwritten (or is not
// written yet).
func (r *denialRing) get(seq uint64) (decisionView, bool) {
	d := &r.slots[(seq-1)%ringSize]
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.seq != seq {
		return decisionView{}, false
	}
	v := decisionView{
		Seq:       seq,
		Time:      time.Unix(0, d.at).UTC().Format(time.RFC3339Nano),
		RequestID: string(d.requestID),
		Status:    d.status,
		Reason:    d.reason.String(),
		Method:    string(d.method),
		Path:      string(d.path),
		ClientKey: optional(d.clientKey),
		UserSub:   optional(d.userSub),
	}
	return v, true
}

func optional(b []byte) *string {
	if len(b) == 0 {
		return nil
	}
	s := string(b)
	return &s
}

// recent returns the kept denials, newest first.
func (r *denialRing) recent() []decisionView {
	last := r.next.Load()
	out := make([]decisionView, 0, min(last, ringSize))
	for seq := last; seq > 0 && last-seq < ringSize; seq-- {
		if v, ok := r.get(seq); ok {
			out = append(out, v)
		}
	}
	return out
}

// subscribers are the open denial streams. notify never blocks: a stream
// whose buffer is full misses the denial, and the miss is counted.
type subscribers struct {
	mu      sync.Mutex // serializes changes to list
	list    atomic.Pointer[[]*subscriber]
	dropped atomic.Uint64
}

type subscriber struct {
	ch      chan uint64 // sequence numbers of new denials
	dropped atomic.Uint64
}

// streamBuffer is how many denials a stream may fall behind before it
// misses some.
const streamBuffer = 256

func (s *subscribers) notify(seq uint64) {
	l := s.list.Load()
	if l == nil {
		return
	}
	for _, sub := range *l {
		select {
		case sub.ch <- seq:
		default:
			sub.dropped.Add(1)
			s.dropped.Add(1)
		}
	}
}

// add registers a stream; nil when max are open.
func (s *subscribers) add(max int) *subscriber {
	s.mu.Lock()
	defer s.mu.Unlock()
	var cur []*subscriber
	if l := s.list.Load(); l != nil {
		cur = *l
	}
	if len(cur) >= max {
		return nil
	}
	sub := &subscriber{ch: make(chan uint64, streamBuffer)}
	n := append(append(make([]*subscriber, 0, len(cur)+1), cur...), sub)
	s.list.Store(&n)
	return sub
}

func (s *subscribers) remove(sub *subscriber) {
	s.mu.Lock()
	defer s.mu.Unlock()
	l := s.list.Load()
	if l == nil {
		return
	}
	n := make([]*subscriber, 0, len(*l))
	for _, x := range *l {
		if x != sub {
			n = append(n, x)
		}
	}
	s.list.Store(&n)
}

func (s *subscribers) count() int {
	if l := s.list.Load(); l != nil {
		return len(*l)
	}
	return 0
}

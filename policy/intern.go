package policy

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"runtime"
	"sync"
	"weak"

	"github.com/scopegate/scopegate/internal/bytesconv"
)

// Interning of compiled client lists (issue 16: a million clients).
//
// Many clients carry the same allowed_ips, allowed_origins or allowed_paths
// list. Each distinct list is compiled once and shared by every client that
// carries it: an interner maps the list's exact content (every entry, in
// order, length-prefixed so no two lists share a key) to its compiled form
// through a weak pointer, and forgets the entry once no client holds it.
// Compiled lists are immutable, so sharing one is safe; two clients share a
// compiled list only when their stored lists are equal entry for entry.

// listSrc is what every interned list keeps of its source: the key, the
// entries as stored (substrings of the key) and the compile errors of its
// malformed entries, reported for each client that carries the list.
type listSrc struct {
	key  string
	src  []string
	errs []entryError
}

// entryError is a malformed list entry and why.
type entryError struct {
	entry string
	err   error
}

// report appends one error per malformed entry, naming the client and the
// list (never the hash).
func (l *listSrc) report(errs []error, clientKey, list string) []error {
	for _, e := range l.errs {
		errs = append(errs, fmt.Errorf("client %q: %s entry %q: %w", clientKey, list, e.entry, e.err))
	}
	return errs
}

// ipList is a compiled allowed_ips list.
type ipList struct {
	listSrc
	ips []netip.Prefix
}

// originList is a compiled allowed_origins list.
type originList struct {
	listSrc
	originSet originSet
}

// pathList is a compiled allowed_paths list.
type pathList struct {
	listSrc
	paths globIndex
}

// interner shares one compiled value per distinct list. It is safe for
// concurrent use.
type interner[T any] struct {
	mu sync.Mutex
	m  map[string]weak.Pointer[T]
}

var (
	ipLists     interner[ipList]
	originLists interner[originList]
	pathLists   interner[pathList]
)

// listKey appends the interning key of list to b: each entry's length as a
// uvarint, then its bytes. Distinct lists have distinct keys.
func listKey(b []byte, list []string) []byte {
	for _, s := range list {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	return b
}

// keyEntries returns the entries of a key built by listKey, as substrings of
// it.
func keyEntries(key string) []string {
	var out []string
	for len(key) > 0 {
		n, w := uvarint(key)
		key = key[w:]
		out = append(out, key[:n])
		key = key[n:]
	}
	return out
}

// get returns the compiled value of list, compiling it with build (given
// the list's source, entries aliasing the key) when no live value has its
// key. An empty list has none: get returns nil.
func (in *interner[T]) get(list []string, build func(src listSrc) *T) *T {
	if len(list) == 0 {
		return nil
	}
	var stack [512]byte
	kb := listKey(stack[:0], list)
	in.mu.Lock()
	defer in.mu.Unlock()
	if wp, ok := in.m[string(kb)]; ok {
		if v := wp.Value(); v != nil {
			return v
		}
	}
	key := string(kb)
	v := build(listSrc{key: key, src: keyEntries(key)})
	wp := weak.Make(v)
	if in.m == nil {
		in.m = make(map[string]weak.Pointer[T])
	}
	in.m[key] = wp
	runtime.AddCleanup(v, in.forget, internEntry[T]{key, wp})
	return v
}

// internEntry names an interner entry for its cleanup.
type internEntry[T any] struct {
	key string
	wp  weak.Pointer[T]
}

// forget drops the entry of a collected value, unless the key was compiled
// again since.
func (in *interner[T]) forget(e internEntry[T]) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.m[e.key] == e.wp {
		delete(in.m, e.key)
	}
}

func compileIPList(src listSrc) *ipList {
	l := &ipList{listSrc: src}
	compileEach(&l.listSrc, compileIP, func(p netip.Prefix) { l.ips = append(l.ips, p) })
	return l
}

func compileOriginList(src listSrc) *originList {
	l := &originList{listSrc: src}
	compileEach(&l.listSrc, compileOrigin, l.originSet.add)
	return l
}

func compilePathList(src listSrc) *pathList {
	l := &pathList{listSrc: src}
	compileEach(&l.listSrc, func(s string) (glob, error) { return compileGlob(s, false) }, l.paths.add)
	return l
}

// compileEach compiles every entry of l with compile: a malformed one is
// recorded in l.errs, the others go to add, in order.
func compileEach[V any](l *listSrc, compile func(string) (V, error), add func(V)) {
	for _, s := range l.src {
		v, err := compile(s)
		if err != nil {
			l.errs = append(l.errs, entryError{s, err})
			continue
		}
		add(v)
	}
}

// uvarint decodes a uvarint written by [binary.AppendUvarint] at the start
// of s: the value and its width. s must hold a whole one.
func uvarint(s string) (v uint64, w int) {
	return binary.Uvarint(bytesconv.Bytes(s))
}

// varint decodes a varint written by [binary.AppendVarint] (zigzag) at the
// start of s: the value and its width. s must hold a whole one.
func varint(s string) (v int64, w int) {
	return binary.Varint(bytesconv.Bytes(s))
}

package store

import (
	"hash/maphash"
	"iter"
	"maps"

	"github.com/scopegate/scopegate/policy"
)

// clientShards is the number of shards of a client snapshot. A change-feed
// batch copies only the shards it touches, so applying a revocation costs
// a few thousand map entries, not the whole snapshot (at 1,000,000
// clients a shard holds about 8,000).
const clientShards = 128

// shardSeed spreads keys and ids over the shards.
var shardSeed = maphash.MakeSeed()

func shardOf(s string) int { return int(maphash.String(shardSeed, s) % clientShards) }

// clientSnap is an immutable view of every API client, sharded by
// client_key and by id. A change builds a new snapshot that shares the
// shards it does not touch (copy on write) and swaps it in; the usage
// slots carry over by pointer so no mark is lost across a swap.
type clientSnap struct {
	keys    [clientShards]map[string]*policy.Client // by client_key
	ids     [clientShards]map[string]clientEntry    // by id
	origins *policy.ClientOrigins                   // the active clients' allowed_origins (sealed)
	// lists counts the active clients' origin lists. It belongs to the
	// writer (under writeMu, or the builder of an unpublished snapshot):
	// a change moves it to the next snapshot and updates it there.
	lists *policy.OriginLists
}

// clientEntry is the compiled client of an id and its usage slot.
type clientEntry struct {
	client *policy.Client
	slot   *usageSlot
}

// newClientSnap returns an empty snapshot to fill with put, sized for
// about n clients.
func newClientSnap(n int) *clientSnap {
	s := &clientSnap{lists: policy.NewOriginLists()}
	per := n/clientShards + n/(4*clientShards) // 25% for the spread
	for i := range s.keys {
		s.keys[i] = make(map[string]*policy.Client, per)
		s.ids[i] = make(map[string]clientEntry, per)
	}
	return s
}

// len returns the number of clients.
func (s *clientSnap) len() int {
	n := 0
	for _, ids := range s.ids {
		n += len(ids)
	}
	return n
}

// client returns the client with this client_key, nil when none. It does
// not allocate.
func (s *clientSnap) client(key string) *policy.Client {
	return s.keys[shardOf(key)][key]
}

// entry returns the entry of id; ok is false when absent or s is nil.
func (s *clientSnap) entry(id string) (e clientEntry, ok bool) {
	if s == nil {
		return clientEntry{}, false
	}
	e, ok = s.ids[shardOf(id)][id]
	return e, ok
}

// entries yields every id and its entry.
func (s *clientSnap) entries() iter.Seq2[string, clientEntry] {
	return func(yield func(string, clientEntry) bool) {
		for _, m := range s.ids {
			for id, e := range m {
				if !yield(id, e) {
					return
				}
			}
		}
	}
}

// clients yields every client.
func (s *clientSnap) clients() iter.Seq[*policy.Client] {
	return func(yield func(*policy.Client) bool) {
		for _, e := range s.entries() {
			if !yield(e.client) {
				return
			}
		}
	}
}

// put adds or replaces e (by its client's id and client_key) in a
// snapshot being built or edited; the caller owns the shards it writes
// (see snapEdit). It does not remove a previous entry of the same id.
func (s *clientSnap) put(e clientEntry) {
	c := e.client
	s.ids[shardOf(c.ID)][c.ID] = e
	s.keys[shardOf(c.ClientKey)][c.ClientKey] = c
	s.lists.Add(c)
}

// seal compiles the snapshot's derived values once its clients are final.
func (s *clientSnap) seal() *clientSnap {
	s.origins = s.lists.Origins()
	return s
}

// snapEdit builds the successor of a published snapshot: shards are
// copied the first time they are written.
type snapEdit struct {
	next            *clientSnap
	ownKeys, ownIDs [clientShards]bool
}

// edit starts the successor of s, taking over its origin-list counts.
func (s *clientSnap) edit() *snapEdit {
	return s.editWith(s.lists)
}

// editWith starts the successor of s with lists as its origin-list counts
// (which must count s's clients).
func (s *clientSnap) editWith(lists *policy.OriginLists) *snapEdit {
	next := *s
	next.lists = lists
	return &snapEdit{next: &next}
}

// buildSnap starts a snapshot from nothing, sized for about n clients:
// every shard is new, so none is copied.
func buildSnap(n int) *snapEdit {
	e := &snapEdit{next: newClientSnap(n)}
	for i := range clientShards {
		e.ownKeys[i], e.ownIDs[i] = true, true
	}
	return e
}

// own makes the shards of id and key writable.
func (e *snapEdit) own(id, key string) {
	if i := shardOf(id); !e.ownIDs[i] {
		e.next.ids[i] = cloneMap(e.next.ids[i])
		e.ownIDs[i] = true
	}
	if i := shardOf(key); !e.ownKeys[i] {
		e.next.keys[i] = cloneMap(e.next.keys[i])
		e.ownKeys[i] = true
	}
}

// cloneMap copies m; a nil map becomes an empty one.
func cloneMap[V any](m map[string]V) map[string]V {
	if m == nil {
		return map[string]V{}
	}
	return maps.Clone(m)
}

// remove drops the entry of id (and its client_key, unless another client
// took it meanwhile).
func (e *snapEdit) remove(id string) {
	prev, ok := e.next.entry(id)
	if !ok {
		return
	}
	c := prev.client
	e.own(id, c.ClientKey)
	if e.next.keys[shardOf(c.ClientKey)][c.ClientKey] == c {
		delete(e.next.keys[shardOf(c.ClientKey)], c.ClientKey)
	}
	delete(e.next.ids[shardOf(id)], id)
	e.next.lists.Remove(c)
}

// put adds ent, which must not be in the snapshot under its id (remove it
// first).
func (e *snapEdit) put(ent clientEntry) {
	e.own(ent.client.ID, ent.client.ClientKey)
	e.next.put(ent)
}

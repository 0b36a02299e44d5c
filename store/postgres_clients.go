package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/scopegate/scopegate/internal/bytesconv"
	"github.com/scopegate/scopegate/policy"
)

// ClientOrigins returns the allowed_origins of the active clients (SPEC §11
// allow_origins: clients), rebuilt with every change of the client
// snapshot. It never touches the database and does not allocate; nil before
// the first load.
func (s *Postgres) ClientOrigins() *policy.ClientOrigins {
	if snap := s.clients.Load(); snap != nil {
		return snap.origins
	}
	return nil
}

// usageSlot holds the newest not-yet-flushed use of one client (unix
// nanoseconds, 0: none).
type usageSlot struct {
	pending atomic.Int64
}

// LookupClient returns the compiled client with this client_key, nil when
// none exists. It never touches the database and does not allocate. Before
// the first load, and past the stale TTL while the database is unreachable,
// it returns [ErrUnavailable].
func (s *Postgres) LookupClient(clientKey string, now time.Time) (*policy.Client, error) {
	snap := s.clients.Load()
	if snap == nil || s.stale(now) {
		return nil, ErrUnavailable
	}
	return snap.client(clientKey), nil
}

// Clients returns the number of clients in the snapshot.
func (s *Postgres) Clients() int {
	if snap := s.clients.Load(); snap != nil {
		return snap.len()
	}
	return 0
}

// rowScan reads rows of clients_all.sql / clients_by_id.sql without a copy
// of their text: the record it returns aliases the driver's buffer and is
// valid only until the next row ([policy.CompileClient] keeps no string of
// it). Loading a million clients then allocates a few objects per row, not
// a dozen strings.
type rowScan struct {
	text                       [8]pgtype.DriverBytes // id … allowed_paths, in column order
	rate                       pgtype.Int4
	expires, lastUsed, updated pgtype.Timestamptz
	dest                       []any
	// What the record points to, reused from row to row.
	lists      [3][]string // allowed_origins, allowed_ips, allowed_paths
	rateN      int
	expiresAt  time.Time
	lastUsedAt time.Time
}

func newRowScan() *rowScan {
	r := &rowScan{}
	for i := range r.text {
		r.dest = append(r.dest, &r.text[i])
	}
	r.dest = append(r.dest, &r.rate, &r.expires, &r.lastUsed, &r.updated)
	return r
}

var errNullColumn = errors.New("NULL in a NOT NULL column of api_clients")

// scan reads the current row.
func (r *rowScan) scan(rows pgx.Rows) (policy.ClientRecord, error) {
	var rec policy.ClientRecord
	if err := rows.Scan(r.dest...); err != nil {
		return rec, err
	}
	for i := range r.text {
		if r.text[i] == nil {
			return rec, errNullColumn
		}
	}
	rec.ID, rec.ClientKey, rec.Name = bytesconv.String(r.text[0]), bytesconv.String(r.text[1]), bytesconv.String(r.text[2])
	rec.Status, rec.APIKeyHash = bytesconv.String(r.text[3]), bytesconv.String(r.text[4])
	rec.AllowedOrigins = r.list(0)
	rec.AllowedIPs = r.list(1)
	rec.AllowedPaths = r.list(2)
	if r.rate.Valid {
		r.rateN = int(r.rate.Int32)
		rec.RateLimitPerMin = &r.rateN
	}
	var err error
	if rec.ExpiresAt, err = timeOrNil(r.expires, &r.expiresAt); err != nil {
		return rec, err
	}
	if rec.LastUsedAt, err = timeOrNil(r.lastUsed, &r.lastUsedAt); err != nil {
		return rec, err
	}
	if !r.updated.Valid {
		return rec, errNullColumn
	}
	var u time.Time
	if _, err := timeOrNil(r.updated, &u); err != nil {
		return rec, err
	}
	rec.UpdatedAt = u
	return rec, nil
}

// list parses list i (0 allowed_origins, 1 allowed_ips, 2 allowed_paths)
// into its scratch slice.
func (r *rowScan) list(i int) []string {
	l := parseListInto(r.lists[i], bytesconv.String(r.text[5+i]))
	if cap(l) > cap(r.lists[i]) {
		r.lists[i] = l // keep the grown scratch
	}
	return l
}

// timeOrNil stores a timestamptz column's time in *dst and returns dst,
// nil for NULL. An infinite value is an error, as scanning it into a
// time.Time is.
func timeOrNil(t pgtype.Timestamptz, dst *time.Time) (*time.Time, error) {
	if !t.Valid {
		return nil, nil
	}
	if t.InfinityModifier != pgtype.Finite {
		return nil, fmt.Errorf("cannot scan %s into a time", t.InfinityModifier)
	}
	*dst = t.Time
	return dst, nil
}

// parseListInto turns a jsonb list into its entries: JSON strings become
// their text, any other entry its raw JSON text (which then fails to parse
// as an origin, address or glob, and never matches). A value that is not
// an array becomes one such raw entry, never an empty list, so it cannot
// lift a restriction. An empty array is nil. It appends to scratch[:0] in
// the common case (an array of strings without escapes), so a loader can
// reuse one slice per list for every row.
func parseListInto(scratch []string, text string) []string {
	text = strings.Trim(text, " \t\r\n") // JSON whitespace only
	if text == "[]" || text == "" {
		return nil
	}
	if out, ok := parseSimpleList(scratch[:0], text); ok {
		return out
	}
	var raw []json.RawMessage
	if text[0] != '[' || json.Unmarshal([]byte(text), &raw) != nil {
		return []string{text}
	}
	if len(raw) == 0 {
		return nil
	}
	out := make([]string, len(raw))
	for i, e := range raw {
		if len(e) >= 2 && e[0] == '"' {
			var str string
			if json.Unmarshal(e, &str) == nil {
				out[i] = str
				continue
			}
		}
		out[i] = string(e)
	}
	return out
}

// parseSimpleList is the fast path of parseListInto for the common case, an
// array of strings without escapes as PostgreSQL prints jsonb: the entries
// are substrings of text, with no copy. It reports false for anything else.
func parseSimpleList(out []string, text string) ([]string, bool) {
	if out == nil {
		out = make([]string, 0, strings.Count(text, ",")+1)
	}
	i := 1 // past '['
	skip := func() {
		for i < len(text) && (text[i] == ' ' || text[i] == '\t' || text[i] == '\n' || text[i] == '\r') {
			i++
		}
	}
	if text[0] != '[' {
		return nil, false
	}
	for {
		skip()
		if i >= len(text) || text[i] != '"' {
			return nil, false
		}
		i++
		start := i
		for i < len(text) && text[i] != '"' {
			if text[i] == '\\' || text[i] < 0x20 {
				return nil, false
			}
			i++
		}
		if i >= len(text) {
			return nil, false
		}
		out = append(out, text[start:i])
		i++
		skip()
		if i >= len(text) {
			return nil, false
		}
		switch text[i] {
		case ',':
			i++
		case ']':
			if i != len(text)-1 {
				return nil, false
			}
			return out, true
		default:
			return nil, false
		}
	}
}

// compile compiles a row, logging each malformed entry once per client_key
// and message. Safe for concurrent use.
func (s *Postgres) compile(rec policy.ClientRecord) *policy.Client {
	c, errs := policy.CompileClient(rec)
	for _, err := range errs {
		k := rec.ClientKey + "\x00" + err.Error()
		s.loggedMu.Lock()
		_, seen := s.logged[k]
		s.logged[k] = struct{}{}
		s.loggedMu.Unlock()
		if seen {
			continue
		}
		s.log.Warn("malformed api_clients entry never matches", slog.String("client_key", strings.Clone(rec.ClientKey)),
			slog.String("err", err.Error()))
	}
	return c
}

// buildClientSnap reads every row into the successor of old (nil: into a
// new snapshot), not yet sealed. Rows unchanged since old keep their
// compiled client (and its verified-token cache) and their usage slot, and
// the successor shares every shard of old that no change touched: a
// reload that finds nothing new copies nothing, so a periodic reload of a
// million clients leaves the collector (and the change feed) alone.
// lists must be a copy of old's origin-list counts (old's own belong to
// the writer). It does not touch the current snapshot, so it may run
// while the change feed keeps applying changes; see [Postgres.swapFull].
func (s *Postgres) buildClientSnap(ctx context.Context, old *clientSnap, lists *policy.OriginLists) (*snapEdit, error) {
	var ed *snapEdit
	if old != nil {
		ed = old.editWith(lists)
	} else {
		n := 0
		var guess int64
		if err := s.pool.QueryRow(ctx, sqlClientsGuess).Scan(&guess); err == nil && guess > 0 {
			n = int(min(guess, 1<<26))
		}
		ed = buildSnap(n)
	}
	rows, err := s.pool.Query(ctx, sqlClientsAll)
	if err != nil {
		return nil, fmt.Errorf("loading api_clients: %w", err)
	}
	defer rows.Close()
	var seen [clientShards]int // rows found in old, by id shard
	rs := newRowScan()
	for rows.Next() {
		rec, err := rs.scan(rows)
		if err != nil {
			return nil, fmt.Errorf("loading api_clients: %w", err)
		}
		e := clientEntry{slot: nil}
		if prev, ok := old.entry(rec.ID); ok {
			seen[shardOf(rec.ID)]++
			if prev.client.SameRow(rec) {
				continue
			}
			ed.remove(rec.ID)
			e.slot = prev.slot
		} else {
			e.slot = &usageSlot{}
		}
		e.client = s.compile(rec)
		ed.put(e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("loading api_clients: %w", err)
	}
	if old != nil {
		if err := s.dropMissing(ctx, old, &seen, ed); err != nil {
			return nil, err
		}
	}
	return ed, nil
}

// dropMissing removes from ed the clients of old that the load did not
// find (deleted rows). Only a shard whose count of found rows falls short
// of its size holds one; its ids are checked against the table.
func (s *Postgres) dropMissing(ctx context.Context, old *clientSnap, seen *[clientShards]int, ed *snapEdit) error {
	for i, m := range old.ids {
		if seen[i] == len(m) {
			continue
		}
		ids := make([]string, 0, len(m))
		for id := range m {
			ids = append(ids, id)
		}
		rows, err := s.pool.Query(ctx, sqlClientsPresent, ids)
		if err != nil {
			return fmt.Errorf("loading api_clients: %w", err)
		}
		present, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return fmt.Errorf("loading api_clients: %w", err)
		}
		kept := make(map[string]struct{}, len(present))
		for _, id := range present {
			kept[id] = struct{}{}
		}
		for _, id := range ids {
			if _, ok := kept[id]; !ok {
				ed.remove(id)
			}
		}
	}
	return nil
}

// reloadClients re-reads the rows with these ids (change feed): changed rows
// are recompiled, missing ones removed. Usage slots come from the current
// snapshot, else from also (a snapshot just replaced). Only the shards the
// ids fall in are copied. Called under writeMu.
func (s *Postgres) reloadClients(ctx context.Context, ids []string, also *clientSnap) error {
	old := s.clients.Load()
	if old == nil {
		return errors.New("reloading api_clients: no snapshot yet")
	}
	rows, err := s.pool.Query(ctx, sqlClientsByID, ids)
	if err != nil {
		return fmt.Errorf("reloading api_clients: %w", err)
	}
	var compiled []*policy.Client
	rs := newRowScan()
	for rows.Next() {
		rec, err := rs.scan(rows)
		if err != nil {
			rows.Close()
			return fmt.Errorf("reloading api_clients: %w", err)
		}
		compiled = append(compiled, s.compile(rec))
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("reloading api_clients: %w", err)
	}
	ed := old.edit()
	// Drop every named id first (deleted rows, and the old client_key of a
	// renamed one), then add what the database returned.
	for _, id := range ids {
		ed.remove(id)
	}
	for _, c := range compiled {
		e := clientEntry{client: c}
		if prev, ok := old.entry(c.ID); ok {
			e.slot = prev.slot
		} else if prev, ok := also.entry(c.ID); ok {
			e.slot = prev.slot
		} else {
			e.slot = &usageSlot{}
		}
		ed.put(e)
	}
	s.clients.Store(ed.next.seal())
	return nil
}

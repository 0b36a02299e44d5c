package store

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	gocache "github.com/patrickmn/go-cache"
	"golang.org/x/sync/singleflight"

	"github.com/scopegate/scopegate/policy"
)

//go:embed sql/*.sql
var sqlFiles embed.FS

// query returns the text of sql/<name>.sql.
func query(name string) string {
	b, err := sqlFiles.ReadFile("sql/" + name + ".sql")
	if err != nil {
		panic("store: missing embedded query " + name) // programmer error
	}
	return string(b)
}

var (
	sqlClientsAll     = query("clients_all")
	sqlClientsByID    = query("clients_by_id")
	sqlClientsGuess   = query("clients_estimate")
	sqlClientsPresent = query("clients_present")
	sqlModules        = query("modules")
	sqlCompanies      = query("companies")
	sqlSites          = query("sites")
	sqlUserBySub      = query("user_by_sub")
	sqlGrantsBySub    = query("grants_by_sub")
	sqlLegacyBySub    = query("legacy_grants_by_sub")
	sqlUserSubsByID   = query("user_subs_by_id")
	sqlFlushLastUsed  = query("flush_last_used")
	// sqlNotifyTriggers checks that the change triggers of migration 0002
	// exist.
	sqlNotifyTriggers = query("notify_triggers")
	listenChannel     = "scopegate_changes"
	listenerAppName   = "scopegate-listener"
	poolAppName       = "scopegate"
	// maxBackoff caps the delay between reconnect attempts (listener and
	// full reload): once the database is back, the store is current again
	// within about this long (SPEC §6 "reconnect ... on their own").
	maxBackoff = 500 * time.Millisecond
)

// ErrInvalidDatabaseURL is returned by [OpenPostgres] for a DSN that cannot
// be parsed; `serve` reports it as invalid configuration (exit 2). It never
// carries the DSN.
var ErrInvalidDatabaseURL = errors.New("store: cannot parse the database URL (check SCOPEGATE_DATABASE_URL)")

// PostgresConfig configures [OpenPostgres]. Zero durations take the defaults
// of SPEC §6 named on each field.
type PostgresConfig struct {
	// DSN is the PostgreSQL connection string (SCOPEGATE_DATABASE_URL). It
	// never appears in errors or logs.
	DSN string
	// Logger receives store events (reconnects, malformed entries, flush
	// failures). nil discards them.
	Logger *slog.Logger
	// Metrics receives the store's counters; nil creates a private set,
	// available from [Postgres.Metrics].
	Metrics *metrics.Set
	// CacheTTL is how long a looked-up user stays fresh (default 30s).
	CacheTTL time.Duration
	// NegativeCacheTTL is how long an unknown subject stays cached as unknown
	// (default 5s).
	NegativeCacheTTL time.Duration
	// StaleTTL is how long what was known keeps serving after the database
	// was last reachable (default 5m).
	StaleTTL time.Duration
	// FlushInterval is the period of the batched last_used_at write
	// (default 10s).
	FlushInterval time.Duration
	// ReloadInterval is the period of the full reload that backs up the
	// change feed (default 5m).
	ReloadInterval time.Duration
	// ConnectTimeout bounds each connection attempt and each ping of the
	// change-feed connection (default 5s). The initial load in OpenPostgres
	// is bounded by its ctx.
	ConnectTimeout time.Duration
	// UserLoadTimeout bounds loading one user on a cache miss (default 2s):
	// the query, and so the wait of every request sharing it. Past it the
	// lookup fails with [ErrUnavailable] (503 store_unavailable).
	UserLoadTimeout time.Duration
	// HealthInterval is how often the idle change-feed connection is pinged
	// to notice a dead database (default 2s).
	HealthInterval time.Duration
	// LegacyPermissions also reads grants from the legacy permissions table.
	// Zero is off; `serve` passes SCOPEGATE_LEGACY_PERMISSIONS (default true).
	LegacyPermissions bool
	// MaxConns bounds the pool (0: the pgxpool default).
	MaxConns int32
	// UserSync creates and refreshes users from verified token claims
	// (SPEC §14); the zero value is off. See [Postgres.SyncUser].
	UserSync UserSyncConfig
}

func (c *PostgresConfig) setDefaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&c.CacheTTL, 30*time.Second)
	def(&c.NegativeCacheTTL, 5*time.Second)
	def(&c.StaleTTL, 5*time.Minute)
	def(&c.FlushInterval, 10*time.Second)
	def(&c.ReloadInterval, 5*time.Minute)
	def(&c.ConnectTimeout, 5*time.Second)
	def(&c.HealthInterval, 2*time.Second)
	def(&c.UserLoadTimeout, 2*time.Second)
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Metrics == nil {
		c.Metrics = metrics.NewSet()
	}
}

// Postgres is the PostgreSQL [Store]: a compiled snapshot of every API
// client, the directory of modules, companies and sites, a per-user cache,
// the change feed (LISTEN scopegate_changes) and the last_used_at writer.
// It is safe for concurrent use. Create it with [OpenPostgres].
type Postgres struct {
	changeHooks
	cfg    PostgresConfig
	log    *slog.Logger
	pool   *pgxpool.Pool
	m      *storeMetrics
	ctx    context.Context // background work; cancelled by Close
	cancel context.CancelFunc
	wg     sync.WaitGroup

	clients atomic.Pointer[clientSnap]
	dir     atomic.Pointer[policy.Directory]
	// writeMu serializes every change of the client snapshot and the
	// directory (full reloads and change-feed batches), queries included, so
	// an older read never overwrites a newer one.
	writeMu  sync.Mutex
	logged   map[string]struct{} // malformed-entry messages already logged
	loggedMu sync.Mutex

	users   *gocache.Cache // authentik_sub → *userEntry
	userMu  sync.Mutex     // guards userGen changes with cache writes, and idToSub
	userGen atomic.Uint64  // bumped by every eviction; a load that raced one is not cached
	// userEpoch is bumped when every cached user may be out of date
	// (expireUsers); an entry loaded in an older epoch is not fresh.
	userEpoch atomic.Uint64
	idToSub   map[string]string
	loads     singleflight.Group // in-flight user loads by subject
	sync      *userSync          // nil: user sync off
	events    chan feedEvent
	// connectFailed receives the first failed listener connection attempt.
	connectFailed chan error
	// dialed receives (without blocking, capacity 1) when the pool opens a
	// connection: a listener waiting to reconnect tries at once.
	dialed   chan struct{}
	flushes  atomic.Int64 // UPDATE statements sent by the last_used writer
	flushMu  sync.Mutex   // one flush at a time (ticker and Close)
	closeOne sync.Once

	// Reachability (SPEC §6). loaded: a full load has succeeded once. down:
	// the database is currently unreachable; lastOK: when it was last seen
	// reachable (unix nanoseconds).
	loaded atomic.Bool
	down   atomic.Bool
	lastOK atomic.Int64
	// lastLoad is when the last full load succeeded (unix nanoseconds).
	lastLoad atomic.Int64
}

// OpenPostgres connects to the database, loads the client snapshot and the
// directory and starts the change feed, the periodic reload and the
// last_used_at writer; it returns once the first load is done. A DSN that
// cannot be parsed is an error (which never contains the DSN). A database
// that is down is not: after the first failed connection attempt (or when
// ctx ends first) it returns a store that is not ready ([Postgres.Ready]
// false, lookups fail with [ErrUnavailable]) and keeps retrying with backoff
// in the background. Close releases it.
func OpenPostgres(ctx context.Context, cfg PostgresConfig) (*Postgres, error) {
	cfg.setDefaults()
	pcfg, err := pgxpool.ParseConfig(cfg.DSN)
	if err != nil {
		// The parse error may quote the DSN (and so the password): keep it out.
		return nil, ErrInvalidDatabaseURL
	}
	if cfg.MaxConns > 0 {
		pcfg.MaxConns = cfg.MaxConns
	}
	pcfg.ConnConfig.ConnectTimeout = cfg.ConnectTimeout
	if _, ok := pcfg.ConnConfig.RuntimeParams["application_name"]; !ok {
		pcfg.ConnConfig.RuntimeParams["application_name"] = poolAppName
	}
	// A pooled connection that opens is news that the database answers: it
	// wakes a listener waiting to reconnect (see listen).
	dialed := make(chan struct{}, 1)
	afterConnect := pcfg.AfterConnect
	pcfg.AfterConnect = func(ctx context.Context, conn *pgx.Conn) error {
		select {
		case dialed <- struct{}{}:
		default:
		}
		if afterConnect != nil {
			return afterConnect(ctx, conn)
		}
		return nil
	}
	pool, err := pgxpool.NewWithConfig(context.Background(), pcfg)
	if err != nil {
		return nil, fmt.Errorf("store: creating the connection pool: %w", err)
	}
	bg, cancel := context.WithCancel(context.Background())
	s := &Postgres{
		cfg:     cfg,
		log:     cfg.Logger,
		pool:    pool,
		ctx:     bg,
		cancel:  cancel,
		logged:  map[string]struct{}{},
		users:   gocache.New(cfg.CacheTTL+cfg.StaleTTL, time.Minute),
		idToSub: map[string]string{},
		events:  make(chan feedEvent, 4096),
		dialed:  dialed,

		connectFailed: make(chan error, 1),
	}
	s.m = newStoreMetrics(cfg.Metrics, s)
	s.down.Store(true)
	if s.sync = newUserSync(cfg.UserSync, newSyncMetrics(cfg.Metrics)); s.sync != nil {
		s.wg.Add(1)
		go s.syncLoop()
	}

	// The listener LISTENs before the first load so no change falls in
	// between; it then asks the applier for a full load, which OpenPostgres
	// waits for, unless the first connection attempt already failed (the
	// database is down: start not ready) or ctx ends.
	first := make(chan error, 1)
	s.wg.Add(3)
	go s.listen()
	go s.apply(first)
	go s.flushLoop()
	select {
	case err := <-first:
		if err != nil {
			s.log.Warn("initial load failed; retrying in the background", slog.String("err", err.Error()))
		}
	case err := <-s.connectFailed:
		s.log.Warn("database unreachable at start; retrying in the background", slog.String("err", err.Error()))
	case <-ctx.Done():
		s.log.Warn("initial load not finished; continuing in the background")
	}
	return s, nil
}

// Metrics returns the metrics set the store writes to.
func (s *Postgres) Metrics() *metrics.Set { return s.cfg.Metrics }

// Ready reports whether the first load succeeded and the database is
// reachable, or unreachable for no longer than the stale TTL.
func (s *Postgres) Ready(now time.Time) bool {
	return s.loaded.Load() && !s.stale(now)
}

// stale reports whether the database has been unreachable for longer than
// the stale TTL at now.
func (s *Postgres) stale(now time.Time) bool {
	return s.down.Load() && now.UnixNano()-s.lastOK.Load() > int64(s.cfg.StaleTTL)
}

// markDown records that the database is unreachable, from the last moment
// it was seen reachable.
func (s *Postgres) markDown(err error) {
	if s.down.CompareAndSwap(false, true) {
		s.log.Warn("database unreachable; serving what was known", slog.String("err", err.Error()),
			slog.Duration("stale_ttl", s.cfg.StaleTTL))
	}
}

// markUp records a successful full load.
func (s *Postgres) markUp() {
	now := time.Now().UnixNano()
	s.lastOK.Store(now)
	s.lastLoad.Store(now)
	if s.down.CompareAndSwap(true, false) && s.loaded.Load() {
		s.log.Info("database reachable again")
	}
	s.loaded.Store(true)
}

// touch records that the database answered (listener ping or notification).
func (s *Postgres) touch() {
	if !s.down.Load() {
		s.lastOK.Store(time.Now().UnixNano())
	}
}

// Close stops the background work, flushes last_used_at and writes the
// queued user sync updates (bounded by ctx), and closes the pool. Later
// calls return nil.
func (s *Postgres) Close(ctx context.Context) error {
	var err error
	s.closeOne.Do(func() {
		s.cancel()
		s.wg.Wait()
		if s.sync != nil {
			s.drainSync(ctx)
		}
		err = s.flush(ctx)
		s.pool.Close()
	})
	return err
}

// Directory returns the current modules, companies and sites. Before the
// first load, and past the stale TTL while the database is unreachable, it
// returns [ErrUnavailable].
func (s *Postgres) Directory(now time.Time) (*policy.Directory, error) {
	d := s.dir.Load()
	if d == nil || s.stale(now) {
		return nil, ErrUnavailable
	}
	return d, nil
}

// backoff returns the delay before retry n (0-based): 100ms doubling to
// maxBackoff (500ms). It used to reach 5 s, so a database back from an
// outage of a few seconds waited up to 5 s more for the next attempt
// (issue 15).
func backoff(n int) time.Duration {
	d := 100 * time.Millisecond
	for i := 0; i < n && d < maxBackoff; i++ {
		d *= 2
	}
	return min(d, maxBackoff)
}

// sleep waits d or until the store closes; it reports whether to go on.
func (s *Postgres) sleep(d time.Duration) bool {
	return s.sleepOr(d, nil)
}

// sleepOr waits d, or until wake receives, or until the store closes; it
// reports whether to go on.
func (s *Postgres) sleepOr(d time.Duration, wake <-chan struct{}) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-wake:
		return true
	case <-s.ctx.Done():
		return false
	}
}

var _ Store = (*Postgres)(nil)

// Reload reloads every client and the directory now, expires every cached
// user (each reloads on its next lookup) and returns when done (SIGHUP).
// Unchanged clients keep their compiled form. The change feed keeps
// applying changes meanwhile.
func (s *Postgres) Reload() error {
	done := make(chan error, 1)
	select {
	case s.events <- feedEvent{full: true, done: done, recv: time.Now()}:
	case <-s.ctx.Done():
		return errors.New("store: reload: store closed")
	}
	select {
	case err := <-done:
		if err != nil {
			return fmt.Errorf("store: reload: %w", err)
		}
		return nil
	case <-s.ctx.Done():
		return errors.New("store: reload: store closed")
	}
}

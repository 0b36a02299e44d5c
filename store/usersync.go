package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/jackc/pgx/v5/pgconn"
	gocache "github.com/patrickmn/go-cache"
	"golang.org/x/sync/singleflight"
	"golang.org/x/time/rate"

	"github.com/scopegate/scopegate/policy"
)

var (
	sqlUserProvision  = query("user_provision")
	sqlUserSyncUpdate = query("user_sync_update")
)

// UserSyncConfig configures user sync from verified token claims (SPEC
// §14). The zero value is off. The token side (which claims are mapped, and
// how) is policy.ProfileConfig.
type UserSyncConfig struct {
	// Enabled turns sync on (SCOPEGATE_USER_SYNC=claims).
	Enabled bool
	// Interval is the least time between two syncs of one known user, and
	// between two log lines about one subject's failed provisioning
	// (SCOPEGATE_USER_SYNC_INTERVAL, default 1h).
	Interval time.Duration
	// QueueSize bounds the updates of known users waiting to be written
	// (default 1024); a full queue drops the update (counted) and the user
	// is tried again on a later request.
	QueueSize int
	// BatchSize is the most updates one statement writes (default 256).
	BatchSize int
	// BatchWindow is how long the writer waits for more updates after the
	// first of a batch (default 200ms).
	BatchWindow time.Duration
	// CreateRate and CreateBurst bound how many new users this process
	// creates per second (default 20, burst 100): a flood of distinct new
	// subjects with valid tokens is decided as unknown (403 user_unknown)
	// beyond it, counted, and never queued.
	CreateRate  float64
	CreateBurst int
	// CreateConcurrency bounds the inserts running at once (default 4), so
	// new users never take the whole pool; a request waits for a slot at
	// most UserLoadTimeout, then is decided as unknown.
	CreateConcurrency int
}

func (c *UserSyncConfig) setDefaults() {
	if c.Interval <= 0 {
		c.Interval = time.Hour
	}
	if c.QueueSize <= 0 {
		c.QueueSize = 1024
	}
	if c.BatchSize <= 0 {
		c.BatchSize = 256
	}
	if c.BatchWindow <= 0 {
		c.BatchWindow = 200 * time.Millisecond
	}
	if c.CreateRate <= 0 {
		c.CreateRate = 20
	}
	if c.CreateBurst <= 0 {
		c.CreateBurst = 100
	}
	if c.CreateConcurrency <= 0 {
		c.CreateConcurrency = 4
	}
}

// Metric names of user sync, for dashboards and tests.
const (
	MetricSyncCreated        = `scopegate_user_sync_created_total`
	MetricSyncCreateFailures = `scopegate_user_sync_create_failures_total`
	MetricSyncCreateLimited  = `scopegate_user_sync_create_limited_total`
	MetricSyncQueued         = `scopegate_user_sync_updates_queued_total`
	MetricSyncDropped        = `scopegate_user_sync_updates_dropped_total`
	MetricSyncWritten        = `scopegate_user_sync_updates_written_total`
	MetricSyncUpdateFailures = `scopegate_user_sync_update_failures_total`
)

// profileUpdate is a known user's changed profile waiting to be written.
type profileUpdate struct {
	id string
	p  policy.UserProfile
}

// userSync is the state of user sync in one store.
type userSync struct {
	cfg     UserSyncConfig
	queue   chan profileUpdate
	limiter *rate.Limiter
	slots   chan struct{}
	creates singleflight.Group // in-flight provisioning by subject
	// recent: user ids queued within the interval (at most once per
	// interval per user). failed: subjects whose creation the database
	// refused, not tried again for NegativeCacheTTL. logged: subjects whose
	// failure was logged within the interval.
	recent, failed, logged *gocache.Cache
	*syncMetrics
}

// syncMetrics are user sync's series. They exist (at zero) with sync off
// too, so dashboards need no condition.
type syncMetrics struct {
	created, createFailures, createLimited *metrics.Counter
	queued, dropped, written, updFailures  *metrics.Counter
}

func newSyncMetrics(set *metrics.Set) *syncMetrics {
	return &syncMetrics{
		created:        set.GetOrCreateCounter(MetricSyncCreated),
		createFailures: set.GetOrCreateCounter(MetricSyncCreateFailures),
		createLimited:  set.GetOrCreateCounter(MetricSyncCreateLimited),
		queued:         set.GetOrCreateCounter(MetricSyncQueued),
		dropped:        set.GetOrCreateCounter(MetricSyncDropped),
		written:        set.GetOrCreateCounter(MetricSyncWritten),
		updFailures:    set.GetOrCreateCounter(MetricSyncUpdateFailures),
	}
}

// newUserSync returns the sync state of cfg, nil when sync is off.
func newUserSync(cfg UserSyncConfig, m *syncMetrics) *userSync {
	if !cfg.Enabled {
		return nil
	}
	cfg.setDefaults()
	return &userSync{
		cfg:         cfg,
		queue:       make(chan profileUpdate, cfg.QueueSize),
		limiter:     rate.NewLimiter(rate.Limit(cfg.CreateRate), cfg.CreateBurst),
		slots:       make(chan struct{}, cfg.CreateConcurrency),
		recent:      gocache.New(cfg.Interval, time.Minute),
		failed:      gocache.New(time.Minute, time.Minute),
		logged:      gocache.New(cfg.Interval, time.Minute),
		syncMetrics: m,
	}
}

// SyncUser applies user sync (SPEC §14) to a verified token whose subject
// LookupUser answered u for. Off (or without c.Profile), it returns u as
// is. For a known user it queues the changed email or name for the
// background writer, at most once per interval, and returns u: it never
// waits on the database and, when nothing changed, does not allocate. For
// an unknown subject it creates the row (one insert per subject at a time,
// bounded in rate and concurrency) and returns the user as loaded after it,
// so the request is decided as a known user; the negative cache entry is
// dropped first. A subject that cannot be created (the database answered
// with an error: read-only, a privilege, a constraint, a trigger; the bound
// was reached; a subject too long to store) gives nil: the request is
// decided as unknown. A database that cannot be reached (connection lost,
// timeout) gives [ErrUnavailable], as LookupUser does.
func (s *Postgres) SyncUser(ctx context.Context, u *policy.User, c policy.Claims, now time.Time) (*policy.User, error) {
	y := s.sync
	if y == nil || c.Profile == nil {
		return u, nil
	}
	if u != nil {
		y.observe(u, c.Profile)
		return u, nil
	}
	return s.create(ctx, c.Subject, c.Profile, now)
}

// observe queues u's changed profile unless it was queued within the
// interval; a full queue drops it (and it is tried again later).
func (y *userSync) observe(u *policy.User, p *policy.UserProfile) {
	if !p.Differs(u) {
		return
	}
	if _, ok := y.recent.Get(u.ID); ok {
		return
	}
	select {
	case y.queue <- profileUpdate{id: u.ID, p: *p}:
		y.recent.Set(u.ID, struct{}{}, gocache.DefaultExpiration)
		y.queued.Inc()
	default:
		y.dropped.Inc()
	}
}

// create provisions sub: see SyncUser.
func (s *Postgres) create(ctx context.Context, sub string, p *policy.UserProfile, now time.Time) (*policy.User, error) {
	y := s.sync
	if !policy.StorableSubject(sub) {
		s.logCreateFailure(sub, "subject cannot be stored (too long, or control characters)")
		return nil, nil
	}
	if _, ok := y.failed.Get(sub); ok {
		return nil, nil
	}
	v, err, _ := y.creates.Do(sub, func() (any, error) {
		if !y.limiter.Allow() {
			y.createLimited.Inc()
			return nil, nil
		}
		qctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.UserLoadTimeout)
		defer cancel()
		select {
		case y.slots <- struct{}{}:
			defer func() { <-y.slots }()
		case <-qctx.Done():
			y.createLimited.Inc()
			return nil, nil
		}
		created, err := s.insertUser(qctx, sub, p)
		if err != nil {
			var pe *pgconn.PgError
			if errors.As(err, &pe) && !connectionLost(qctx, err) {
				// The database answered and refused: decided as unknown,
				// not tried again for a while.
				y.createFailures.Inc()
				y.failed.Set(sub, struct{}{}, s.cfg.NegativeCacheTTL)
				s.logCreateFailure(sub, err.Error())
				return nil, nil
			}
			s.m.storeErrors.Inc()
			return nil, fmt.Errorf("%w: creating user: %v", ErrUnavailable, err)
		}
		if created {
			y.created.Inc()
		}
		// The negative entry (and any load racing this insert) must not
		// keep the subject unknown.
		s.evictSubs([]string{sub})
		return s.loadUser(qctx, sub, now)
	})
	u, _ := v.(*policy.User)
	return u, err
}

// insertUser runs user_provision.sql and reports whether it created the
// row. When it did not and an email was asked for, a concurrent insert may
// have taken the email first: it tries once more without it.
func (s *Postgres) insertUser(ctx context.Context, sub string, p *policy.UserProfile) (bool, error) {
	email, problems := p.Email, p.Problems
	for {
		rows, err := s.pool.Query(ctx, sqlUserProvision, sub, email, p.DisplayName, p.Issuer, problems)
		if err != nil {
			return false, err
		}
		n := 0
		for rows.Next() {
			n++
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return false, err
		}
		if n > 0 || email == "" {
			return n > 0, nil
		}
		email = ""
		problems = joinProblems(problems, "email: held by another user")
	}
}

func joinProblems(a, b string) string {
	if a == "" {
		return b
	}
	return a + "; " + b
}

// logCreateFailure logs why sub could not be created, once per subject per
// interval. The subject is the verified one (safe to log), cut to a length
// a log line can hold.
func (s *Postgres) logCreateFailure(sub, why string) {
	y := s.sync
	if _, ok := y.logged.Get(sub); ok {
		return
	}
	y.logged.Set(sub, struct{}{}, gocache.DefaultExpiration)
	if len(sub) > 128 {
		sub = sub[:128] + "…"
	}
	s.log.Warn("user sync could not create the user; decided as unknown", slog.String("sub", sub), slog.String("err", why))
}

// syncLoop writes queued profile updates in batches until Close.
func (s *Postgres) syncLoop() {
	defer s.wg.Done()
	y := s.sync
	batch := make([]profileUpdate, 0, y.cfg.BatchSize)
	for {
		select {
		case <-s.ctx.Done():
			return
		case u := <-y.queue:
			batch = append(batch[:0], u)
		}
		window := time.NewTimer(y.cfg.BatchWindow)
	fill:
		for len(batch) < y.cfg.BatchSize {
			select {
			case u := <-y.queue:
				batch = append(batch, u)
			case <-window.C:
				break fill
			case <-s.ctx.Done():
				break fill
			}
		}
		window.Stop()
		ctx, cancel := context.WithTimeout(context.WithoutCancel(s.ctx), s.cfg.ConnectTimeout+changeLoadBudget)
		s.writeUpdates(ctx, batch)
		cancel()
	}
}

// drainSync writes what is still queued (Close), bounded by ctx.
func (s *Postgres) drainSync(ctx context.Context) {
	y := s.sync
	var batch []profileUpdate
	for {
		select {
		case u := <-y.queue:
			batch = append(batch, u)
			if len(batch) < y.cfg.BatchSize {
				continue
			}
		default:
		}
		if len(batch) == 0 || ctx.Err() != nil {
			return
		}
		s.writeUpdates(ctx, batch)
		batch = batch[:0]
	}
}

// writeUpdates writes a batch in one statement. When it fails on a unique
// key (a concurrent write took an email the statement checked was free),
// each update is written alone, so one conflict does not lose the others.
// Failures are counted and logged; the users are tried again once their
// interval has passed.
func (s *Postgres) writeUpdates(ctx context.Context, batch []profileUpdate) {
	batch = latestPerUser(batch)
	err := s.execUpdates(ctx, batch)
	var pe *pgconn.PgError
	if err != nil && len(batch) > 1 && errors.As(err, &pe) && pe.Code == "23505" {
		for i := range batch {
			if e := s.execUpdates(ctx, batch[i:i+1]); e != nil {
				s.updateFailed(e, 1)
			}
		}
		return
	}
	if err != nil {
		s.updateFailed(err, len(batch))
	}
}

// latestPerUser keeps the last update of each user in batch (filtering it
// in place): two requests of one user can both queue before either marks
// it, and one statement cannot write a user's auth_sync_state twice.
func latestPerUser(batch []profileUpdate) []profileUpdate {
	last := make(map[string]int, len(batch))
	for i, u := range batch {
		last[u.id] = i
	}
	if len(last) == len(batch) {
		return batch
	}
	out := batch[:0]
	for i, u := range batch {
		if last[u.id] == i {
			out = append(out, u)
		}
	}
	return out
}

func (s *Postgres) updateFailed(err error, n int) {
	s.sync.updFailures.Add(n)
	s.m.storeErrors.Inc()
	s.log.Warn("user sync update failed; tried again after the interval", slog.Int("users", n), slog.String("err", err.Error()))
}

// execUpdates runs user_sync_update.sql for batch.
func (s *Postgres) execUpdates(ctx context.Context, batch []profileUpdate) error {
	n := len(batch)
	ids, emails, names := make([]string, n), make([]string, n), make([]string, n)
	iss, problems := make([]string, n), make([]string, n)
	for i, u := range batch {
		ids[i], emails[i], names[i], iss[i], problems[i] = u.id, u.p.Email, u.p.DisplayName, u.p.Issuer, u.p.Problems
	}
	tag, err := s.pool.Exec(ctx, sqlUserSyncUpdate, ids, emails, names, iss, problems, s.sync.cfg.Interval.Microseconds())
	if err != nil {
		return err
	}
	s.sync.written.Add(int(tag.RowsAffected()))
	return nil
}

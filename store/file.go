package store

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/scopegate/scopegate/policy"
)

// FileConfig configures a [File] store.
type FileConfig struct {
	// Logger receives the results of watcher reloads and watcher errors
	// (explicit [File.Reload] calls return their error instead). If nil,
	// logs are discarded.
	Logger *slog.Logger
	// NoWatch disables the fsnotify watcher; the file is then reloaded only
	// by [File.Reload] (SIGHUP). Zero: the file's directory is watched.
	NoWatch bool
	// Debounce is how long the watcher waits after the last change event
	// before it reloads, so an editor's write-rename-chmod burst is one
	// reload. Zero means 100ms.
	Debounce time.Duration
	// OnReload, if set, is called after every reload attempt (explicit or by
	// the watcher) with its result: nil when the new data is in use, else the
	// error that kept the old data. Watcher reloads that find the content
	// unchanged are not reported. It runs on the watcher's goroutine for
	// watcher reloads and must not call Reload or Close. The store logs
	// watcher reloads itself, so serve does not set it; tests use it to wait
	// for reloads.
	OnReload func(err error)
}

// File is the declarative store (SPEC §7, SCOPEGATE_STORE_FILE): every
// api_clients, users, modules, companies, sites and grants row comes from one
// YAML file, validated as a whole (see [ParseFile] for the format) and
// swapped in atomically. A file that fails validation on reload is rejected
// and the previous data stays in use. last_used_at is kept in memory only.
//
// File implements [Store]; it is safe for concurrent use. Lookups read an
// immutable snapshot through an atomic pointer and do not allocate.
type File struct {
	changeHooks
	path   string
	cfg    FileConfig
	logger *slog.Logger

	snap atomic.Pointer[fileSnapshot]

	reloadMu sync.Mutex        // serializes reloads
	lastSum  [sha256.Size]byte // content of the last load attempt

	usedMu sync.Mutex
	used   map[string]time.Time // client id → newest use

	watcher   *fsnotify.Watcher
	stop      chan struct{}
	done      chan struct{}
	closeOnce sync.Once
}

// fileSnapshot is one loaded version of the file. It is never modified after
// it is published.
type fileSnapshot struct {
	clients map[string]*policy.Client // by client_key
	users   map[string]*policy.User   // by authentik_sub
	origins *policy.ClientOrigins     // the active clients' allowed_origins
	dir     *policy.Directory
	data    *FileData
	loaded  time.Time // when this version was loaded
}

// OpenFile loads the store file at path and, unless cfg.NoWatch, starts
// watching its directory for changes. An invalid file is an error (a joined
// list of [*FileError] values with line numbers).
func OpenFile(path string, cfg FileConfig) (*File, error) {
	if cfg.Debounce <= 0 {
		cfg.Debounce = 100 * time.Millisecond
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("store file %q: %w", path, err)
	}
	f := &File{path: abs, cfg: cfg, logger: logger, used: make(map[string]time.Time)}
	if err := f.load(); err != nil {
		return nil, err
	}
	if !cfg.NoWatch {
		if err := f.startWatcher(); err != nil {
			return nil, fmt.Errorf("watching store file %q: %w", path, err)
		}
	}
	return f, nil
}

// Path returns the absolute path of the store file.
func (f *File) Path() string { return f.path }

// Reload re-reads the file (serve calls it on SIGHUP). On error the old data
// stays in use and the error is returned (not logged: the caller logs it);
// OnReload is called either way.
func (f *File) Reload() error {
	err := f.load()
	if f.cfg.OnReload != nil {
		f.cfg.OnReload(err)
	}
	return err
}

// report logs the result of a watcher reload and calls OnReload.
func (f *File) report(err error) {
	if err != nil {
		f.logger.Error("store file reload rejected, keeping the previous data", slog.String("path", f.path), slog.String("err", err.Error()))
	} else {
		f.logger.Info("store file reloaded", slog.String("path", f.path))
	}
	if f.cfg.OnReload != nil {
		f.cfg.OnReload(err)
	}
}

// load reads, validates and compiles the file, then publishes it.
func (f *File) load() error {
	f.reloadMu.Lock()
	defer f.reloadMu.Unlock()
	raw, err := os.ReadFile(f.path)
	if err != nil {
		return fmt.Errorf("reading store file: %w", err)
	}
	f.lastSum = sha256.Sum256(raw)
	snap, err := f.compile(raw)
	if err != nil {
		return err
	}
	f.snap.Store(snap)
	f.notify()
	return nil
}

// reloadIfChanged reloads when the file's content differs from the last
// load attempt, so a rejected file is reported once, not on every event.
func (f *File) reloadIfChanged() {
	raw, err := os.ReadFile(f.path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return // mid-rename; the create event that follows reloads
		}
		f.report(fmt.Errorf("reading store file: %w", err))
		return
	}
	f.reloadMu.Lock()
	same := sha256.Sum256(raw) == f.lastSum
	f.reloadMu.Unlock()
	if same {
		return
	}
	f.report(f.load())
}

// compile parses raw and builds a snapshot. Clients whose row is unchanged
// since the previous snapshot keep their compiled value, so their
// verified-token caches survive a reload that touched other rows.
func (f *File) compile(raw []byte) (*fileSnapshot, error) {
	data, err := ParseFile(f.path, raw)
	if err != nil {
		return nil, err
	}
	prev := f.snap.Load()
	now := time.Now().UTC()
	s := &fileSnapshot{
		clients: make(map[string]*policy.Client, len(data.Clients)),
		users:   make(map[string]*policy.User, len(data.Users)),
		data:    data,
		loaded:  now,
	}
	s.dir = policy.NewDirectory(data.Modules, data.Companies, data.Sites)
	for _, rec := range data.Clients {
		if prev != nil {
			if old, ok := prev.clients[rec.ClientKey]; ok && old.SameContent(rec) {
				s.clients[rec.ClientKey] = old
				continue
			}
		}
		rec.UpdatedAt = now
		c, _ := policy.CompileClient(rec) // entries were validated by ParseFile
		s.clients[rec.ClientKey] = c
	}
	for _, u := range data.Users {
		s.users[u.Sub] = policy.CompileUser(u, data.Grants[u.ID], s.dir)
	}
	s.origins = policy.NewClientOrigins(maps.Values(s.clients))
	return s, nil
}

// LookupClient returns the client with this client_key, nil when none
// exists. It does not allocate.
func (f *File) LookupClient(clientKey string, now time.Time) (*policy.Client, error) {
	return f.snap.Load().clients[clientKey], nil
}

// LookupUser returns the user with this authentik_sub, nil when unknown. It
// does not allocate.
func (f *File) LookupUser(ctx context.Context, sub string, now time.Time) (*policy.User, error) {
	return f.snap.Load().users[sub], nil
}

// Directory returns the modules, companies and sites of the current file.
func (f *File) Directory(now time.Time) (*policy.Directory, error) {
	return f.snap.Load().dir, nil
}

// ClientOrigins returns the allowed_origins of the active clients of the
// current file (SPEC §11 allow_origins: clients). It does not allocate.
func (f *File) ClientOrigins() *policy.ClientOrigins { return f.snap.Load().origins }

// Data returns the rows of the current file, as validated. The caller must
// not modify them.
func (f *File) Data() *FileData { return f.snap.Load().data }

// MarkUsed records a use of the client in memory (never moving it
// backwards). It does not block on I/O.
func (f *File) MarkUsed(clientID string, at time.Time) {
	f.usedMu.Lock()
	if old, ok := f.used[clientID]; !ok || at.After(old) {
		f.used[clientID] = at
	}
	f.usedMu.Unlock()
}

// LastUsed returns the newest use recorded by [File.MarkUsed] for a client id,
// and whether there is one. Uses survive reloads (ids are stable).
func (f *File) LastUsed(clientID string) (time.Time, bool) {
	f.usedMu.Lock()
	defer f.usedMu.Unlock()
	t, ok := f.used[clientID]
	return t, ok
}

// Ready reports true: a File exists only once its file has loaded.
func (f *File) Ready(now time.Time) bool { return f.snap.Load() != nil }

// Close stops the watcher. It is safe to call more than once.
func (f *File) Close(ctx context.Context) error {
	f.closeOnce.Do(func() {
		if f.watcher == nil {
			return
		}
		close(f.stop)
		f.watcher.Close()
		select {
		case <-f.done:
		case <-ctx.Done():
		}
	})
	return nil
}

// startWatcher watches the file's directory rather than the file itself, so
// editors that write a new file and rename it over the old one, and
// Kubernetes ConfigMap symlink swaps, are seen too; followTarget adds the
// directories on the file's symlink path. Any event in the
// directory schedules a debounced check; the file is reloaded only when its
// content changed.
func (f *File) startWatcher() error {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return err
	}
	if err := w.Add(filepath.Dir(f.path)); err != nil {
		w.Close()
		return err
	}
	f.watcher = w
	f.followTarget()
	f.stop = make(chan struct{})
	f.done = make(chan struct{})
	go f.watch()
	return nil
}

func (f *File) watch() {
	defer close(f.done)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for {
		select {
		case <-f.stop:
			return
		case _, ok := <-f.watcher.Events:
			if !ok {
				return
			}
			timer.Reset(f.cfg.Debounce)
		case err, ok := <-f.watcher.Errors:
			if !ok {
				return
			}
			f.logger.Warn("store file watcher error", slog.String("path", f.path), slog.String("err", err.Error()))
		case <-timer.C:
			f.followTarget()
			f.reloadIfChanged()
		}
	}
}

// followTarget keeps the watcher on every directory whose change can change
// what the path reads (watchDirs): the path's own, those of the symlinks on
// the way to the file (a mounted secret, a checkout elsewhere), and the
// parent of a symlinked directory on the way (a release layout's
// "current" link, a Kubernetes ConfigMap's "..data"). It runs again after
// every change, so a flipped link is followed, and drops directories no
// longer on the way; fsnotify itself drops a directory that went away, so
// a recreated one is watched again.
func (f *File) followTarget() {
	want := watchDirs(f.path)
	have := map[string]bool{}
	for _, d := range f.watcher.WatchList() {
		have[d] = true
	}
	for d := range want {
		if !have[d] {
			if err := f.watcher.Add(d); err != nil {
				f.logger.Warn("store file watcher cannot watch a directory on the way to the file",
					slog.String("path", f.path), slog.String("dir", d), slog.String("err", err.Error()))
			}
		}
	}
	for d := range have {
		if !want[d] {
			_ = f.watcher.Remove(d)
		}
	}
}

// watchDirs returns the directories whose changes can change what path
// reads: its own, the directory of each symlink followed to the file, the
// parent of each symlinked directory on the way, and the file's own
// directory. At most 40 links are followed, as the kernel does.
func watchDirs(path string) map[string]bool {
	dirs := map[string]bool{} // the loop's first pass adds the path's own
	p := filepath.Clean(path)
	for hops := 0; hops < 40; hops++ {
		dir := filepath.Dir(p)
		dirs[dir] = true
		for d := dir; d != filepath.Dir(d); d = filepath.Dir(d) {
			if fi, err := os.Lstat(d); err == nil && fi.Mode()&os.ModeSymlink != 0 {
				dirs[filepath.Dir(d)] = true
			}
		}
		target, err := os.Readlink(p)
		if err != nil {
			break // the file itself (or gone)
		}
		if !filepath.IsAbs(target) {
			target = filepath.Join(dir, target)
		}
		p = target
	}
	if real, err := filepath.EvalSymlinks(path); err == nil {
		dirs[filepath.Dir(real)] = true
	}
	return dirs
}

// Interface guard.
var _ Store = (*File)(nil)

package pgtest

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"syscall"

	"github.com/scopegate/scopegate/internal/testproc"
)

var errNoBinaries = errors.New("initdb and pg_ctl not found")

// cluster is a throwaway PostgreSQL cluster in a temporary directory.
type cluster struct {
	dir, data, pgCtl string
	asUser           string // run the binaries as this user (initdb refuses root)
	dsn              string
	watchdog         *exec.Cmd
}

// findBinaries looks for initdb and pg_ctl in PATH, then in the newest
// /usr/lib/postgresql/*/bin.
func findBinaries() (initdb, pgCtl string, err error) {
	if i, err1 := exec.LookPath("initdb"); err1 == nil {
		if p, err2 := exec.LookPath("pg_ctl"); err2 == nil {
			return i, p, nil
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return versionOf(dirs[i]) > versionOf(dirs[j]) })
	for _, d := range dirs {
		i, p := filepath.Join(d, "initdb"), filepath.Join(d, "pg_ctl")
		if isExec(i) && isExec(p) {
			return i, p, nil
		}
	}
	return "", "", errNoBinaries
}

func versionOf(binDir string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return v
}

func isExec(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0
}

func startCluster() (*cluster, error) {
	initdb, pgCtl, err := findBinaries()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "scopegate-pgtest-")
	if err != nil {
		return nil, err
	}
	c := &cluster{dir: dir, data: filepath.Join(dir, "data"), pgCtl: pgCtl}
	if os.Geteuid() == 0 {
		// initdb refuses to run as root: hand the directory to postgres.
		u, err := user.Lookup("postgres")
		if err != nil {
			os.RemoveAll(dir)
			return nil, fmt.Errorf("running as root and no postgres user to run initdb as: %w", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
		c.asUser = "postgres"
	}
	if out, err := c.command(initdb, "-D", c.data, "-U", "postgres", "-A", "trust", "--no-sync", "-E", "UTF8", "--no-locale").CombinedOutput(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("initdb: %v: %s", err, out)
	}
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		port, err := testproc.Port()
		if err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
		opts := fmt.Sprintf("-c listen_addresses=127.0.0.1 -p %d -k %s -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200", port, dir)
		out, err := c.command(pgCtl, "-D", c.data, "-o", opts, "-l", filepath.Join(dir, "postgres.log"), "-w", "-t", "30", "start").CombinedOutput()
		if err == nil {
			c.dsn = fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", port)
			c.startWatchdog()
			return c, nil
		}
		lastErr = fmt.Errorf("pg_ctl start: %v: %s", err, out)
	}
	os.RemoveAll(dir)
	return nil, lastErr
}

func (c *cluster) command(bin string, args ...string) *exec.Cmd {
	if c.asUser != "" {
		return exec.Command("runuser", append([]string{"-u", c.asUser, "--", bin}, args...)...)
	}
	return exec.Command(bin, args...)
}

// startWatchdog stops the cluster when this process is gone, in case the
// test binary exits without calling Stop (no TestMain, a panic, a kill).
func (c *cluster) startWatchdog() {
	stop := c.command(c.pgCtl, "-D", c.data, "-m", "immediate", "stop").String()
	script := fmt.Sprintf("while kill -0 %d 2>/dev/null; do sleep 1; done; %s >/dev/null 2>&1; rm -rf %q",
		os.Getpid(), stop, c.dir)
	cmd := exec.Command("sh", "-c", script)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if cmd.Start() == nil {
		c.watchdog = cmd
		go cmd.Wait() //nolint:errcheck
	}
}

func (c *cluster) stop() {
	_ = c.command(c.pgCtl, "-D", c.data, "-m", "fast", "-w", "stop").Run()
	if c.watchdog != nil && c.watchdog.Process != nil {
		_ = c.watchdog.Process.Kill()
	}
	_ = os.RemoveAll(c.dir)
}

package testproc

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
)

// StartGroup is [Start] for a program that starts helpers of its own (a
// browser's zygote, renderers, GPU and network processes): the command runs
// as the leader of a new process group, which [Proc.StopGroup] ends whole.
func StartGroup(name string, cmd *exec.Cmd, logPath string) (*Proc, error) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setpgid = true
	return Start(name, cmd, logPath)
}

// StopGroup kills the process group p leads (p started by [StartGroup])
// and waits until none of its members is left, for at most 10 s, so that
// nothing it started still writes to its files. It signals only that group.
func (p *Proc) StopGroup() error {
	if p == nil || p.Cmd.Process == nil {
		return nil
	}
	if a := p.Cmd.SysProcAttr; a == nil || !a.Setpgid {
		p.Stop(nil, 0)
		return fmt.Errorf("%s: not started by StartGroup; stopped by its PID only", p.Name)
	}
	pgid := p.Pid()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		if !groupAlive(pgid) {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: process group %d still has members after 10 s", p.Name, pgid)
		}
	}
	<-p.done
	return nil
}

// groupAlive reports whether a process other than a zombie is in process
// group pgid.
func groupAlive(pgid int) bool {
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		pid, err := strconv.Atoi(filepath.Base(d))
		if err != nil {
			continue
		}
		fs, err := ProcStat(pid)
		if err != nil || len(fs) < 3 || fs[0] == "Z" {
			continue // gone meanwhile, or a zombie
		}
		if g, err := strconv.Atoi(fs[2]); err == nil && g == pgid {
			return true
		}
	}
	return false
}

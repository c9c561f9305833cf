package harness

import (
	"os"
	"os/exec"
	"syscall"
	"time"
)

// Process is a child process whose output is appended to a log file; it is
// killed when the test process dies.
type Process struct {
	Cmd *exec.Cmd
	// Done is closed when the process has exited.
	Done <-chan struct{}
	log  *os.File
}

// StartProcess starts cmd with its stdout and stderr appended to logPath.
func StartProcess(cmd *exec.Cmd, logPath string) (*Process, error) {
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, err
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(done)
	}()
	return &Process{Cmd: cmd, Done: done, log: logf}, nil
}

// Exited reports whether the process has exited.
func (p *Process) Exited() bool {
	select {
	case <-p.Done:
		return true
	default:
		return false
	}
}

// Stop sends sig to the process, unless it has exited, and waits for it,
// killing it after timeout; then it closes the log.
func (p *Process) Stop(sig syscall.Signal, timeout time.Duration) {
	if !p.Exited() {
		_ = p.Cmd.Process.Signal(sig)
		select {
		case <-p.Done:
		case <-time.After(timeout):
			_ = p.Cmd.Process.Kill()
			<-p.Done
		}
	}
	_ = p.log.Close()
}

package testlab

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Process is a program started in a node through the lab. Its stdout and stderr are kept
// (merged, line by line) and Close kills it if it still runs.
type Process struct {
	Name string // for messages: "redundantd@node1"
	Node *Node
	Cmd  *exec.Cmd
	Dir  string // its private directory under the lab's Dir

	done chan struct{} // closed when the process has exited and its output is read
	err  error         // Wait's result, valid after done

	mu     sync.Mutex
	lines  []string
	notify chan struct{} // closed and replaced on every new line
	onLine func(string)
}

// StartProcess starts cmd in node n as a new process group, with stdout and stderr captured.
// The lab kills the group on Close. dir is created if it does not exist.
func (n *Node) StartProcess(name, dir string, cmd *exec.Cmd) (*Process, error) {
	return n.startProcess(name, dir, cmd, nil)
}

func (n *Node) startProcess(name, dir string, cmd *exec.Cmd, onLine func(string)) (*Process, error) {
	l := n.lab
	if dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("testlab: %w", err)
		}
	}
	p := &Process{Name: name, Node: n, Cmd: cmd, Dir: dir, done: make(chan struct{}),
		notify: make(chan struct{}), onLine: onLine}
	pr, pw, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("testlab: %w", err)
	}
	cmd.Stdout, cmd.Stderr = pw, pw
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	// Own process group: signals reach keepalived's children too, and a Ctrl-C on the
	// terminal reaches only this process, which then cleans up in order.
	cmd.SysProcAttr.Setpgid = true
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL

	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		pr.Close()
		pw.Close()
		return nil, errors.New("testlab: lab closed")
	}
	err = n.Start(cmd)
	if err == nil {
		l.procs = append(l.procs, p)
	}
	l.mu.Unlock()
	pw.Close()
	if err != nil {
		pr.Close()
		return nil, fmt.Errorf("testlab: start %s in %s: %w", name, n.Name, err)
	}
	read := make(chan struct{})
	go func() {
		defer close(read)
		p.readLines(pr)
	}()
	go func() {
		err := cmd.Wait()
		<-read
		pr.Close()
		p.err = err
		close(p.done)
	}()
	return p, nil
}

func (p *Process) readLines(r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if p.onLine != nil {
			p.onLine(line)
		}
		p.mu.Lock()
		p.lines = append(p.lines, line)
		close(p.notify)
		p.notify = make(chan struct{})
		p.mu.Unlock()
	}
}

// Pid is the process id (also its process group id).
func (p *Process) Pid() int { return p.Cmd.Process.Pid }

// Output returns everything the process wrote so far, stdout and stderr merged.
func (p *Process) Output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.lines, "\n")
}

// WaitOutput waits until a line containing substr appears (counting lines already written),
// and returns that line.
func (p *Process) WaitOutput(ctx context.Context, substr string) (string, error) {
	seen := 0
	for {
		p.mu.Lock()
		for ; seen < len(p.lines); seen++ {
			if strings.Contains(p.lines[seen], substr) {
				line := p.lines[seen]
				p.mu.Unlock()
				return line, nil
			}
		}
		notify := p.notify
		p.mu.Unlock()
		select {
		case <-notify:
		case <-p.done:
			p.mu.Lock()
			n := len(p.lines)
			p.mu.Unlock()
			if seen == n {
				return "", fmt.Errorf("testlab: %s exited (%v) before printing %q", p.Name, p.err, substr)
			}
		case <-ctx.Done():
			return "", fmt.Errorf("testlab: %s: waiting for %q: %w", p.Name, substr, ctx.Err())
		}
	}
}

// Signal sends sig to the process group.
func (p *Process) Signal(sig syscall.Signal) error {
	select {
	case <-p.done:
		return fmt.Errorf("testlab: %s already exited", p.Name)
	default:
	}
	if err := syscall.Kill(-p.Pid(), sig); err != nil {
		return fmt.Errorf("testlab: signal %v to %s: %w", sig, p.Name, err)
	}
	return nil
}

func (p *Process) kill() {
	select {
	case <-p.done:
	default:
		syscall.Kill(-p.Pid(), syscall.SIGKILL)
	}
}

// Kill sends SIGKILL to the process group (an unplanned failure: nothing is sent on the wire)
// and waits for the exit.
func (p *Process) Kill(ctx context.Context) error {
	if err := p.Signal(syscall.SIGKILL); err != nil {
		return err
	}
	_, err := p.Wait(ctx)
	return err
}

// Term sends SIGTERM (a planned shutdown) and waits up to ctx for the exit. The exit status is
// returned as the error (nil for status 0).
func (p *Process) Term(ctx context.Context) error {
	if err := p.Signal(syscall.SIGTERM); err != nil {
		return err
	}
	exitErr, err := p.Wait(ctx)
	if err != nil {
		return err
	}
	return exitErr
}

// Wait waits for the process to exit. exitErr is the process's result (nil for status 0);
// err is set when ctx ends first.
func (p *Process) Wait(ctx context.Context) (exitErr, err error) {
	select {
	case <-p.done:
		return p.err, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("testlab: waiting for %s to exit: %w", p.Name, ctx.Err())
	}
}

// WaitGroupGone waits, after the process exited, until no process of its group is left (every
// child reaped, zombies included). A daemon's child outlives a SIGKILL of the group by a few
// milliseconds, and keepalived refuses to start while the pid in its vrrp.pid file exists.
func (p *Process) WaitGroupGone(ctx context.Context) error {
	if _, err := p.Wait(ctx); err != nil {
		return err
	}
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for syscall.Kill(-p.Pid(), 0) == nil {
		select {
		case <-tick.C:
		case <-ctx.Done():
			return fmt.Errorf("testlab: waiting for the processes of %s to exit: %w", p.Name, ctx.Err())
		}
	}
	return nil
}

// Done is closed when the process has exited.
func (p *Process) Done() <-chan struct{} { return p.done }

// Exited reports whether the process has exited, and its result.
func (p *Process) Exited() (bool, error) {
	select {
	case <-p.done:
		return true, p.err
	default:
		return false, nil
	}
}

var builds struct {
	sync.Mutex
	dir   string
	paths map[string]string
}

// BuildBinary compiles the main package pkg (an import path such as
// "github.com/redundantd/redundantd/cmd/redundantd", or a path relative to the module root
// such as "./cmd/redundantd") once per process into a temporary directory, and returns the
// binary's path. The environment variable REDUNDANTD_BIN, when set, is returned for
// cmd/redundantd instead of building. RemoveBinaries deletes the directory.
func BuildBinary(ctx context.Context, pkg string) (string, error) {
	return buildBinary(ctx, pkg, false)
}

// BuildRelease is BuildBinary with the flags of packaging/build.sh: CGO_ENABLED=0, -trimpath,
// -ldflags="-s -w" (static, stripped), so that a measurement of the binary (its memory, for
// example) is of what the package installs. REDUNDANTD_BIN overrides it as for BuildBinary.
func BuildRelease(ctx context.Context, pkg string) (string, error) {
	return buildBinary(ctx, pkg, true)
}

func buildBinary(ctx context.Context, pkg string, release bool) (string, error) {
	if strings.HasSuffix(pkg, "cmd/redundantd") {
		if bin := os.Getenv("REDUNDANTD_BIN"); bin != "" {
			return bin, nil
		}
	}
	builds.Lock()
	defer builds.Unlock()
	key := pkg
	if release {
		key = "release " + pkg
	}
	if p, ok := builds.paths[key]; ok {
		return p, nil
	}
	root, err := moduleRoot()
	if err != nil {
		return "", err
	}
	if builds.dir == "" {
		builds.dir, err = os.MkdirTemp("", "testlab-bin-")
		if err != nil {
			return "", fmt.Errorf("testlab: %w", err)
		}
		builds.paths = map[string]string{}
	}
	out := filepath.Join(builds.dir, filepath.Base(pkg))
	args := []string{"build", "-o", out}
	if release {
		out = filepath.Join(builds.dir, "release", filepath.Base(pkg))
		if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
			return "", fmt.Errorf("testlab: %w", err)
		}
		args = []string{"build", "-trimpath", "-tags=nethttpomithttp2", "-ldflags=-s -w", "-o", out} // as packaging/build.sh
	}
	gobin := "/usr/local/go/bin/go" // where the Go tarball installs it, for a PATH without it
	if p, err := exec.LookPath("go"); err == nil {
		gobin = p
	}
	cmd := exec.CommandContext(ctx, gobin, append(args, pkg)...)
	cmd.Dir = root
	if release {
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	}
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("testlab: go build %s: %w\n%s", pkg, err, b)
	}
	builds.paths[key] = out
	return out, nil
}

// RemoveBinaries deletes what BuildBinary built in this process.
func RemoveBinaries() error {
	builds.Lock()
	defer builds.Unlock()
	if builds.dir == "" {
		return nil
	}
	err := os.RemoveAll(builds.dir)
	builds.dir, builds.paths = "", nil
	return err
}

// moduleRoot finds the redundantd module: upwards from the working directory, else from this
// source file's location.
func moduleRoot() (string, error) {
	isRoot := func(dir string) bool {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		return err == nil && strings.Contains(string(b), "module github.com/redundantd/redundantd\n")
	}
	var starts []string
	if wd, err := os.Getwd(); err == nil {
		starts = append(starts, wd)
	}
	if _, file, _, ok := runtime.Caller(0); ok {
		starts = append(starts, filepath.Dir(file))
	}
	for _, d := range starts {
		for {
			if isRoot(d) {
				return d, nil
			}
			parent := filepath.Dir(d)
			if parent == d {
				break
			}
			d = parent
		}
	}
	return "", errors.New("testlab: cannot find the redundantd module (go.mod) to build from")
}

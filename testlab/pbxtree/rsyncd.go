package pbxtree

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	stdsync "sync"
	"time"
)

// Rsyncd is an rsync daemon on a listener the caller opened: each connection is served by
// its own "rsync --daemon" process started on the accepted socket (rsync's inetd mode), so
// no port is chosen here and the daemon's CPU time is that of those processes.
type Rsyncd struct {
	ln   net.Listener
	bin  string
	conf string
	log  string

	wg   stdsync.WaitGroup // the accept loop and the connection processes
	mu   stdsync.Mutex
	cpu  time.Duration // user + system time of the connection processes that exited
	live int           // connection processes running
	idle *stdsync.Cond
	errs []error
}

// StartRsyncd writes the daemon's configuration in dir, one writable module per entry of
// modules (name to path; paths are created), and serves ln until Close. bin is the rsync
// binary. As root the modules write with uid and gid 0, so owners are kept.
func StartRsyncd(ln net.Listener, bin, dir string, modules map[string]string) (*Rsyncd, error) {
	var c strings.Builder
	fmt.Fprintf(&c, "use chroot = no\nnumeric ids = yes\n")
	for name, path := range modules {
		if err := os.MkdirAll(path, 0o755); err != nil {
			return nil, err
		}
		fmt.Fprintf(&c, "[%s]\n  path = %s\n  read only = no\n", name, path)
		if os.Geteuid() == 0 {
			c.WriteString("  uid = 0\n  gid = 0\n")
		}
	}
	r := &Rsyncd{ln: ln, bin: bin, conf: filepath.Join(dir, "rsyncd.conf"), log: filepath.Join(dir, "rsyncd.log")}
	r.idle = stdsync.NewCond(&r.mu)
	if err := os.WriteFile(r.conf, []byte(c.String()), 0o600); err != nil {
		return nil, err
	}
	r.wg.Go(r.serve)
	return r, nil
}

// URL returns the rsync:// address of module, with a trailing slash (its content).
func (r *Rsyncd) URL(module string) string {
	return "rsync://" + r.ln.Addr().String() + "/" + module + "/"
}

func (r *Rsyncd) serve() {
	for {
		c, err := r.ln.Accept()
		if err != nil {
			return
		}
		if err := r.start(c); err != nil {
			r.mu.Lock()
			r.errs = append(r.errs, err)
			r.mu.Unlock()
		}
	}
}

// start runs one daemon process on c (its stdin and stdout).
func (r *Rsyncd) start(c net.Conn) error {
	defer c.Close()
	fc, ok := c.(interface{ File() (*os.File, error) })
	if !ok {
		return fmt.Errorf("rsyncd: %T has no file descriptor", c)
	}
	f, err := fc.File()
	if err != nil {
		return err
	}
	defer f.Close()
	cmd := exec.Command(r.bin, "--daemon", "--config="+r.conf, "--log-file="+r.log)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = f, f, os.Stderr
	if err := cmd.Start(); err != nil {
		return err
	}
	r.mu.Lock()
	r.live++
	r.mu.Unlock()
	r.wg.Go(func() {
		err := cmd.Wait()
		r.mu.Lock()
		defer r.mu.Unlock()
		if cmd.ProcessState != nil {
			r.cpu += cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
		}
		if err != nil {
			r.errs = append(r.errs, fmt.Errorf("rsyncd connection: %w", err))
		}
		r.live--
		r.idle.Broadcast()
	})
	return nil
}

// CPU waits until every connection's process has exited (the daemon side of a transfer
// ends shortly after the client) and returns their CPU time so far.
func (r *Rsyncd) CPU() time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	for r.live > 0 {
		r.idle.Wait()
	}
	return r.cpu
}

// Close stops accepting, waits for the connection processes and returns what failed.
func (r *Rsyncd) Close() error {
	err := r.ln.Close()
	if errors.Is(err, net.ErrClosed) {
		err = nil
	}
	r.wg.Wait()
	r.mu.Lock()
	defer r.mu.Unlock()
	return errors.Join(append([]error{err}, r.errs...)...)
}

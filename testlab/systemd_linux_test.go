package testlab

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// notifySocket is the test's end of NOTIFY_SOCKET: what systemd reads from a Type=notify
// service. Unix sockets are not scoped by network namespace, so a daemon in a lab node
// reaches it.
type notifySocket struct {
	t    *testing.T
	conn *net.UnixConn
	path string
}

func listenNotifySocket(t *testing.T) *notifySocket {
	t.Helper()
	path := filepath.Join(t.TempDir(), "notify")
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &notifySocket{t: t, conn: c, path: path}
}

// next returns the next message that is not a watchdog ping (skip true) or the next message.
func (s *notifySocket) next(ctx context.Context, skipPings bool) string {
	s.t.Helper()
	dl, _ := ctx.Deadline()
	for {
		if err := s.conn.SetReadDeadline(dl); err != nil {
			s.t.Fatal(err)
		}
		b := make([]byte, 4096)
		n, err := s.conn.Read(b)
		if err != nil {
			s.t.Fatalf("reading NOTIFY_SOCKET: %v", err)
		}
		if msg := string(b[:n]); !skipPings || msg != "WATCHDOG=1" {
			return msg
		}
	}
}

// TestSystemdNotify runs the real redundantd as systemd runs a Type=notify service with
// WatchdogSec=: it says READY=1 once its API answers, pings WATCHDOG=1 while it runs, frames
// a SIGHUP reload with RELOADING=1 and READY=1, and says STOPPING=1 on SIGTERM before it
// exits 0. Redundancy is off (no VRRP), the API is in a lab node of its own.
func TestSystemdNotify(t *testing.T) {
	l := NewT(t, Options{Nodes: 1})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	bin, err := BuildBinary(ctx, "./cmd/redundantd")
	if err != nil {
		t.Fatal(err)
	}
	n := l.Node(1)
	dir := filepath.Join(l.Dir, "sdnotify")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(dir, "redundantd.toml")
	body := fmt.Sprintf("[node]\nid = \"sd\"\ninterface = %q\naddress = %q\nstate_dir = %q\n[redundancy]\nenabled = false\n[api]\nlisten = %q\n",
		n.Iface, n.Addr, dir, APIAddr)
	if err := os.WriteFile(conf, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	sock := listenNotifySocket(t)
	cmd := exec.Command(bin, "-config", conf)
	// WatchdogSec=200ms; no WATCHDOG_PID, which systemd sets after the fork.
	cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+sock.path, "WATCHDOG_USEC=200000")
	p, err := n.StartProcess("redundantd@"+n.Name, dir, cmd)
	if err != nil {
		t.Fatal(err)
	}

	if msg := sock.next(ctx, true); !strings.HasPrefix(msg, "READY=1\n") && msg != "READY=1" {
		t.Fatalf("first message %q, want READY=1", msg)
	}
	if _, err := n.Status(ctx); err != nil {
		t.Errorf("API after READY=1: %v", err)
	}
	for i := range 3 {
		if msg := sock.next(ctx, false); msg != "WATCHDOG=1" {
			t.Fatalf("message %d after READY: %q, want WATCHDOG=1", i, msg)
		}
	}

	if err := p.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	if msg := sock.next(ctx, true); !strings.HasPrefix(msg, "RELOADING=1\nMONOTONIC_USEC=") {
		t.Errorf("after SIGHUP: %q, want RELOADING=1 with MONOTONIC_USEC", msg)
	}
	if msg := sock.next(ctx, true); msg != "READY=1" {
		t.Errorf("after the reload: %q, want READY=1", msg)
	}
	if _, err := p.WaitOutput(ctx, "configuration reloaded"); err != nil {
		t.Error(err)
	}

	if err := p.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if msg := sock.next(ctx, true); msg != "STOPPING=1" {
		t.Errorf("after SIGTERM: %q, want STOPPING=1", msg)
	}
	if exitErr, err := p.Wait(ctx); err != nil || exitErr != nil {
		t.Errorf("exit: %v, %v; want status 0", exitErr, err)
	}
	// Outside journald (no JOURNAL_STREAM) the lines keep their timestamps.
	if out := p.Output(); !strings.Contains(out, "time=") {
		t.Errorf("log without timestamps outside journald:\n%s", out)
	}
}

package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestWatchdogInterval(t *testing.T) {
	tests := []struct {
		name      string
		usec, pid string
		want      time.Duration
		wantErr   bool
		wantErrIs error
		self      int
	}{
		{name: "off", usec: "", pid: "", want: 0},
		{name: "half of WatchdogSec=30s", usec: "30000000", want: 15 * time.Second},
		{name: "for this process", usec: "10000000", pid: "42", self: 42, want: 5 * time.Second},
		{name: "for another process", usec: "10000000", pid: "41", self: 42, want: 0},
		{name: "one microsecond", usec: "1", want: time.Microsecond},
		{name: "zero", usec: "0", wantErrIs: ErrBadWatchdog},
		{name: "negative", usec: "-5", wantErrIs: ErrBadWatchdog},
		{name: "not a number", usec: "30s", wantErrIs: ErrBadWatchdog},
		{name: "bad pid", usec: "1000", pid: "me", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := watchdogInterval(tt.usec, tt.pid, tt.self)
			if tt.wantErrIs != nil && !errors.Is(err, tt.wantErrIs) || tt.wantErr && err == nil ||
				tt.wantErrIs == nil && !tt.wantErr && err != nil {
				t.Fatalf("watchdogInterval(%q, %q): error %v", tt.usec, tt.pid, err)
			}
			if got != tt.want {
				t.Errorf("watchdogInterval(%q, %q) = %v, want %v", tt.usec, tt.pid, got, tt.want)
			}
		})
	}
}

func TestNewNotifierAddress(t *testing.T) {
	for _, sock := range []string{"relative.sock", "./n.sock", "tcp://x"} {
		if _, err := newNotifier(sock); err == nil {
			t.Errorf("newNotifier(%q): no error", sock)
		}
	}
}

func TestReloadingMessage(t *testing.T) {
	if got, want := reloading(1500*time.Millisecond), "RELOADING=1\nMONOTONIC_USEC=1500000"; got != want {
		t.Errorf("reloading = %q, want %q", got, want)
	}
	if got := reloading(0); got != "RELOADING=1" {
		t.Errorf("reloading(0) = %q", got)
	}
}

// listenNotify is a stand-in for systemd's end of NOTIFY_SOCKET.
func listenNotify(t *testing.T, name string) (*net.UnixConn, string) {
	t.Helper()
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c, name
}

// readNotify reads one datagram; the deadline only keeps a broken test from hanging.
func readNotify(t *testing.T, c *net.UnixConn) string {
	t.Helper()
	if err := c.SetReadDeadline(time.Now().Add(30 * time.Second)); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 4096)
	n, err := c.Read(b)
	if err != nil {
		t.Fatalf("reading the notify socket: %v", err)
	}
	return string(b[:n])
}

func TestNotifySendsOneDatagram(t *testing.T) {
	for _, name := range []string{
		filepath.Join(t.TempDir(), "notify.sock"),
		fmt.Sprintf("@redundantd-test-%d-%d", os.Getpid(), time.Now().UnixNano()),
	} {
		t.Run(name, func(t *testing.T) {
			c, sock := listenNotify(t, name)
			n, err := newNotifier(sock)
			if err != nil {
				t.Fatal(err)
			}
			if err := n.notify("READY=1\nSTATUS=up"); err != nil {
				t.Fatal(err)
			}
			if got := readNotify(t, c); got != "READY=1\nSTATUS=up" {
				t.Errorf("got %q", got)
			}
		})
	}
}

func TestNotifyErrors(t *testing.T) {
	var n *notifier
	if err := n.notify("READY=1"); err != nil {
		t.Errorf("nil notifier: %v", err)
	}
	n, err := newNotifier(filepath.Join(t.TempDir(), "nobody-listens"))
	if err != nil {
		t.Fatal(err)
	}
	if err := n.notify("READY=1"); err == nil || !strings.Contains(err.Error(), "sd_notify") {
		t.Errorf("notify to a missing socket: %v", err)
	}
}

// TestWatchdogLoop: pings while alive returns, STOPPING=1 once the context ends, and an
// alive that blocks stops the pings.
func TestWatchdogLoop(t *testing.T) {
	c, sock := listenNotify(t, filepath.Join(t.TempDir(), "notify.sock"))
	n, _ := newNotifier(sock)
	ctx, cancel := context.WithCancel(context.Background())
	calls := make(chan struct{}, 100)
	done := make(chan struct{})
	go func() {
		defer close(done)
		n.watchdog(ctx, time.Millisecond, func() {
			select {
			case calls <- struct{}{}:
			default:
			}
		}, func(err error) { t.Error(err) })
	}()
	for range 3 {
		if got := readNotify(t, c); got != "WATCHDOG=1" {
			t.Fatalf("got %q, want WATCHDOG=1", got)
		}
	}
	cancel()
	<-done
	// Pings already sent before the cancel come first.
	for {
		got := readNotify(t, c)
		if got == "STOPPING=1" {
			break
		}
		if got != "WATCHDOG=1" {
			t.Fatalf("got %q, want STOPPING=1", got)
		}
	}
	if len(calls) < 3 {
		t.Errorf("alive called %d times for 3 pings", len(calls))
	}

	// A daemon stuck in alive sends no ping; STOPPING=1 cannot be sent either then, which
	// is what systemd's stop timeout is for.
	c2, sock2 := listenNotify(t, filepath.Join(t.TempDir(), "stuck.sock"))
	n2, _ := newNotifier(sock2)
	ctx2, cancel2 := context.WithCancel(context.Background())
	stuck, entered := make(chan struct{}), make(chan struct{})
	done2 := make(chan struct{})
	go func() {
		defer close(done2)
		var once sync.Once
		// After the release alive may run again before the loop sees the cancel.
		n2.watchdog(ctx2, time.Millisecond, func() { once.Do(func() { close(entered) }); <-stuck }, func(err error) { t.Error(err) })
	}()
	<-entered
	if err := c2.SetReadDeadline(time.Now().Add(20 * time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	if _, err := c2.Read(make([]byte, 64)); err == nil {
		t.Error("a ping was sent while alive was blocked")
	}
	cancel2()
	close(stuck)
	<-done2
}

func TestJournalLogs(t *testing.T) {
	for _, asJSON := range []bool{false, true} {
		var b bytes.Buffer
		log := slog.New(newLogHandler(&b, asJSON, slog.LevelDebug, true)).With("node", "pbx-a")
		log.Error("e", "k", 1)
		log.Warn("w")
		log.Info("i")
		log.Debug("d")
		lines := strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
		if len(lines) != 4 {
			t.Fatalf("json %t: %d lines: %q", asJSON, len(lines), b.String())
		}
		for i, prio := range []string{"<3>", "<4>", "<6>", "<7>"} {
			if !strings.HasPrefix(lines[i], prio) || strings.Contains(lines[i], "time") || !strings.Contains(lines[i], "pbx-a") {
				t.Errorf("json %t: line %q: want prefix %s, no time, the node", asJSON, lines[i], prio)
			}
		}
	}
	var b bytes.Buffer
	slog.New(newLogHandler(&b, false, slog.LevelInfo, false)).Info("i")
	if !strings.HasPrefix(b.String(), "time=") {
		t.Errorf("outside journald: %q, want the timestamp", b.String())
	}
}

func TestUnderJournal(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "stderr"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	dev, ino, ok := fileID(f)
	if !ok {
		t.Skip("skipping: no device and inode for files on this system")
	}
	env := fmt.Sprintf("%d:%d", dev, ino)
	if !underJournal(env, f) {
		t.Errorf("underJournal(%q, its own file) = false", env)
	}
	for _, e := range []string{"", fmt.Sprintf("%d:%d", dev, ino+1), "junk"} {
		if underJournal(e, f) {
			t.Errorf("underJournal(%q) = true", e)
		}
	}
	if underJournal(env, &bytes.Buffer{}) {
		t.Error("underJournal(a buffer) = true")
	}
}

package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"
)

// The service manager's side of the daemon (sd_notify(3), sd_watchdog_enabled(3)): with
// Type=notify systemd orders the units that come After=redundantd behind READY=1, kills and
// restarts a daemon that stops sending WATCHDOG=1 within WatchdogSec, and shows STOPPING=1 and
// RELOADING=1 in `systemctl status`. The protocol is one datagram per message on the unix
// socket named by NOTIFY_SOCKET; implemented here in a few lines rather than importing
// go-systemd for them.

// ErrBadWatchdog is returned for a WATCHDOG_USEC that is not a positive number of
// microseconds.
var ErrBadWatchdog = errors.New("WATCHDOG_USEC is not a positive number of microseconds")

// notifier sends state changes to the service manager. The nil *notifier (not started by
// systemd, or Type=simple) sends nothing.
type notifier struct {
	addr *net.UnixAddr
}

// notifierFromEnv reads NOTIFY_SOCKET, WATCHDOG_USEC and WATCHDOG_PID and removes them from
// the environment, so that the service commands and notify scripts redundantd runs do not
// take the daemon's socket and watchdog for theirs. It returns the notifier (nil when
// NOTIFY_SOCKET is unset) and the watchdog ping interval (0 when the watchdog is off).
func notifierFromEnv() (*notifier, time.Duration, error) {
	sock := os.Getenv("NOTIFY_SOCKET")
	usec, pid := os.Getenv("WATCHDOG_USEC"), os.Getenv("WATCHDOG_PID")
	for _, k := range []string{"NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"} {
		os.Unsetenv(k)
	}
	if sock == "" {
		return nil, 0, nil
	}
	n, err := newNotifier(sock)
	if err != nil {
		return nil, 0, err
	}
	every, err := watchdogInterval(usec, pid, os.Getpid())
	return n, every, err
}

// newNotifier checks the NOTIFY_SOCKET value: an absolute path, or "@name" for a socket in the
// abstract namespace (Go's net package maps the leading '@' to the NUL byte).
func newNotifier(sock string) (*notifier, error) {
	if !strings.HasPrefix(sock, "/") && !strings.HasPrefix(sock, "@") {
		return nil, fmt.Errorf("NOTIFY_SOCKET %q: want an absolute path or @abstract", sock)
	}
	return &notifier{addr: &net.UnixAddr{Name: sock, Net: "unixgram"}}, nil
}

// watchdogInterval is how often to send WATCHDOG=1 for the environment systemd sets with
// WatchdogSec=: half the timeout, as sd_watchdog_enabled(3) advises, so that one late ping is
// not yet a kill. It is 0 (no pings) when WATCHDOG_USEC is unset or when WATCHDOG_PID names
// another process (the variables were inherited from a parent that is the real service).
func watchdogInterval(usec, pid string, self int) (time.Duration, error) {
	if usec == "" {
		return 0, nil
	}
	if pid != "" {
		p, err := strconv.Atoi(pid)
		if err != nil || p <= 0 {
			return 0, fmt.Errorf("WATCHDOG_PID %q is not a process ID", pid)
		}
		if p != self {
			return 0, nil
		}
	}
	u, err := strconv.ParseUint(usec, 10, 63)
	if err != nil || u == 0 {
		return 0, fmt.Errorf("%w: %q", ErrBadWatchdog, usec)
	}
	// At least 1µs: WATCHDOG_USEC=1 would otherwise give a zero interval, which time.Ticker
	// refuses.
	return max(time.Duration(u/2)*time.Microsecond, time.Microsecond), nil
}

// notify sends one message ("READY=1", or several assignments separated by newlines).
func (n *notifier) notify(state string) error {
	if n == nil {
		return nil
	}
	c, err := net.DialUnix("unixgram", nil, n.addr)
	if err != nil {
		return fmt.Errorf("sd_notify: %w", err)
	}
	defer c.Close()
	if _, err := c.Write([]byte(state)); err != nil {
		return fmt.Errorf("sd_notify %s: %w", firstLine(state), err)
	}
	return nil
}

// reloading is the message that opens a reload: systemd (since v253, Type=notify-reload)
// matches MONOTONIC_USEC against the time it sent SIGHUP; older versions ignore the field.
// now is CLOCK_MONOTONIC, 0 when unknown (the field is then left out).
func reloading(now time.Duration) string {
	if now <= 0 {
		return "RELOADING=1"
	}
	return fmt.Sprintf("RELOADING=1\nMONOTONIC_USEC=%d", now.Microseconds())
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	return l
}

// watchdog sends WATCHDOG=1 every interval for as long as alive returns (alive takes the
// daemon's locks, so a deadlocked daemon stops pinging and systemd restarts it), and
// STOPPING=1 as soon as ctx is cancelled: systemctl shows "deactivating" while the virtual
// IPs are released and the services stopped. every 0 means no pings, only STOPPING=1.
func (n *notifier) watchdog(ctx context.Context, every time.Duration, alive func(), onErr func(error)) {
	if n == nil {
		return
	}
	var tick <-chan time.Time
	if every > 0 {
		t := time.NewTicker(every)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-ctx.Done():
			if err := n.notify("STOPPING=1"); err != nil {
				onErr(err)
			}
			return
		case <-tick:
			alive()
			if err := n.notify("WATCHDOG=1"); err != nil {
				onErr(err)
			}
		}
	}
}

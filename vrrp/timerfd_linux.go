package vrrp

import (
	"errors"
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// timerfd is the production protocolTimer, on a Linux timerfd (CLOCK_MONOTONIC). The Go
// runtime sleeps in epoll_wait with a timeout in whole milliseconds, so a time.Timer whose
// remaining time has a fraction of a millisecond fires up to 1 ms late in an idle process, and
// Master_Down_Interval and Skew_Time (RFC 3768 section 6.1) have such fractions (3609.375 ms
// at priority 100). A timerfd's expiry makes the descriptor readable, which ends epoll_wait at
// once; keepalived's scheduler waits on one too.
// takeoverLead is how long before a takeover deadline a Router with a timerfd wakes up to be
// ready (see Router.readyForTakeover): more than the wake-up latency of an idle or lightly
// loaded machine (0.2-0.4 ms measured on the lab's virtual machine, 2 ms at worst under
// load), and so at most 2 ms of CPU per takeover.
const takeoverLead = 2 * time.Millisecond

type timerfd struct {
	f    *os.File
	c    chan time.Time
	done chan struct{}
}

var _ protocolTimer = (*timerfd)(nil)

func newTimerfd() (*timerfd, error) {
	fd, err := unix.TimerfdCreate(unix.CLOCK_MONOTONIC, unix.TFD_NONBLOCK|unix.TFD_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("vrrp: timerfd_create: %w", err)
	}
	t := &timerfd{f: os.NewFile(uintptr(fd), "timerfd"), c: make(chan time.Time, 1), done: make(chan struct{})}
	go t.read()
	return t, nil
}

// read turns expirations into ticks until Close.
func (t *timerfd) read() {
	defer close(t.done)
	var b [8]byte
	for {
		_, err := t.f.Read(b[:])
		if errors.Is(err, os.ErrClosed) {
			return
		}
		t.tick()
		if err != nil {
			// Not seen in practice; a tick per 10 ms keeps the protocol running on the clock.
			time.Sleep(10 * time.Millisecond)
		}
	}
}

func (t *timerfd) tick() {
	select {
	case t.c <- time.Now():
	default: // one is pending already
	}
}

func (t *timerfd) C() <-chan time.Time { return t.c }

// Reset arms the timer d from now, replacing any earlier setting, and drops a pending tick.
func (t *timerfd) Reset(d time.Duration) {
	select {
	case <-t.c:
	default:
	}
	if d <= 0 {
		d = 1 // an it_value of zero would disarm it
	}
	if err := t.settime(unix.NsecToTimespec(int64(d))); err != nil {
		time.AfterFunc(d, t.tick) // cannot happen with a valid time; never lose the deadline
	}
}

// Stop disarms the timer.
func (t *timerfd) Stop() {
	t.settime(unix.Timespec{})
	select {
	case <-t.c:
	default:
	}
}

func (t *timerfd) settime(v unix.Timespec) error {
	rc, err := t.f.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	err = rc.Control(func(fd uintptr) {
		serr = unix.TimerfdSettime(int(fd), 0, &unix.ItimerSpec{Value: v}, nil)
	})
	return errors.Join(err, serr)
}

// Close releases the descriptor and waits for the reader to end.
func (t *timerfd) Close() error {
	err := t.f.Close()
	<-t.done
	return err
}

package sync

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redundantd/redundantd/testlab/pbxtree"
	"github.com/redundantd/redundantd/testlab/poll"
	"github.com/redundantd/redundantd/testlab/syncbuf"
)

// TestJunkConnectionsRateLimited: 300 connections that are not the peer (plain text on the
// sync port) are all counted in Status, and logged a few times only, the last line saying
// how many were left out.
func TestJunkConnectionsRateLimited(t *testing.T) {
	logs := &syncbuf.Buffer{}
	_, b := newPair(t, func(_, cb *Config) {
		cb.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	})
	const junk = 300
	base := b.Status().JunkConnections
	for range junk {
		c, err := net.Dial("tcp", b.ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		c.Write([]byte("GET / HTTP/1.0\r\n\r\n"))
		c.Close()
	}
	poll.Until(t, 20*time.Second, fmt.Sprintf("%d junk connections counted", junk), func() bool {
		return b.Status().JunkConnections-base >= junk
	})
	if n := b.Status().JunkConnections - base; n != junk {
		t.Errorf("junk connections counted: %d, want %d", n, junk)
	}
	lines := logs.Lines("sync: refused")
	t.Logf("%d junk connections, %d log lines", junk, len(lines))
	if len(lines) == 0 || len(lines) > junkLogBurst {
		t.Errorf("%d log lines for %d junk connections, want 1..%d:\n%s", len(lines), junk, junkLogBurst, strings.Join(lines, "\n"))
	}
}

// TestListenOnAddress: with the listener bound to one address the sync port answers there
// only, and replication works through it.
func TestListenOnAddress(t *testing.T) {
	a, b := newPairOn(t, "127.0.0.1:0", "127.0.0.2:0", nil)
	pbxtree.WriteFile(t, a.path(0, "sip.conf"), []byte("sip"), old0)
	syncNow(t, a)
	assertSame(t, a, b)
	if got := b.ListenAddr().String(); got != b.ln.Addr().String() || !strings.HasPrefix(got, "127.0.0.2:") {
		t.Errorf("ListenAddr %s, want %s", got, b.ln.Addr())
	}
	_, port, _ := net.SplitHostPort(b.ln.Addr().String())
	c, err := net.Dial("tcp", net.JoinHostPort("127.0.0.1", port))
	if err == nil {
		c.Close()
		t.Fatalf("the sync port answers on 127.0.0.1 with listen %s", b.ln.Addr())
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("dial 127.0.0.1:%s: %v, want connection refused", port, err)
	}
}

func TestLogLimit(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	l := logLimit{window: time.Minute, burst: 2}
	type step struct {
		at         time.Duration
		ok         bool
		suppressed int
	}
	for i, s := range []step{
		{0, true, 0},
		{time.Second, true, 0},
		{2 * time.Second, false, 0},
		{3 * time.Second, false, 0},
		{59 * time.Second, false, 0},
		{60 * time.Second, true, 3}, // new window: the first line tells what was left out
		{61 * time.Second, true, 0},
		{62 * time.Second, false, 0},
		{-time.Hour, true, 1}, // the clock went back: a new window
	} {
		ok, sup := l.allow(t0.Add(s.at))
		if ok != s.ok || sup != s.suppressed {
			t.Errorf("step %d (%v): allow = %v, %d; want %v, %d", i, s.at, ok, sup, s.ok, s.suppressed)
		}
	}
}

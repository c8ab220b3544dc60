package vrrp

import (
	"testing"
	"time"
)

func recvTick(t *testing.T, tm protocolTimer, within time.Duration) (time.Time, bool) {
	t.Helper()
	select {
	case at := <-tm.C():
		return at, true
	case <-time.After(within):
		return time.Time{}, false
	}
}

// The timerfd timer ticks once per arming, never before its time, the last Reset wins, Stop
// disarms it, and Close ends its reader.
func TestTimerfd(t *testing.T) {
	tm, err := newTimerfd()
	if err != nil {
		t.Fatal(err)
	}

	start := time.Now()
	const d = 20*time.Millisecond + 375*time.Microsecond
	tm.Reset(d)
	at, ok := recvTick(t, tm, 2*time.Second)
	if !ok {
		t.Fatal("no tick after Reset")
	}
	if at.Sub(start) < d {
		t.Errorf("ticked after %v, before the %v it was set to", at.Sub(start), d)
	}
	t.Logf("ticked %v after the deadline", at.Sub(start)-d)
	if _, ok := recvTick(t, tm, 50*time.Millisecond); ok {
		t.Error("a second tick from one Reset")
	}

	// The later Reset replaces the earlier one, whichever is sooner.
	tm.Reset(time.Hour)
	tm.Reset(time.Millisecond)
	if _, ok := recvTick(t, tm, 2*time.Second); !ok {
		t.Error("no tick after Reset(1h), Reset(1ms)")
	}
	tm.Reset(time.Millisecond)
	tm.Reset(time.Hour)
	if _, ok := recvTick(t, tm, 50*time.Millisecond); ok {
		t.Error("tick after Reset(1ms), Reset(1h)")
	}

	// A deadline already past ticks at once (an it_value of zero would disarm the timerfd).
	tm.Reset(-time.Second)
	if _, ok := recvTick(t, tm, 2*time.Second); !ok {
		t.Error("no tick after Reset with a past deadline")
	}

	tm.Reset(10 * time.Millisecond)
	tm.Stop()
	if _, ok := recvTick(t, tm, 50*time.Millisecond); ok {
		t.Error("tick after Stop")
	}

	done := make(chan error, 1)
	go func() { done <- tm.Close() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Close: %v", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("Close did not return: the reader is still blocked")
	}
}

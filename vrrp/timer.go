package vrrp

import "time"

// protocolTimer runs Master_Down_Timer and Adver_Timer (RFC 3768 section 6.2) for Run. A tick
// only tells Run to look at the clock: a stale or early one (from before a Reset) is harmless,
// since the Machine ignores a Tick before its deadline and Run re-arms the timer after every
// step.
type protocolTimer interface {
	C() <-chan time.Time
	Reset(d time.Duration)
	Stop()
	Close() error
}

// stdTimer is the portable protocolTimer, and the one tests get (it follows testing/synctest's
// fake clock).
type stdTimer struct{ t *time.Timer }

func newStdTimer() stdTimer {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return stdTimer{t}
}

func (s stdTimer) C() <-chan time.Time   { return s.t.C }
func (s stdTimer) Reset(d time.Duration) { s.t.Reset(d) }
func (s stdTimer) Stop()                 { s.t.Stop() }
func (s stdTimer) Close() error          { s.t.Stop(); return nil }

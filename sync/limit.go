package sync

import "time"

// logLimit bounds how often something is logged: at most burst lines per window. It counts
// what it suppressed, so that the next line it allows can say how many were left out. It is
// a pure core: the caller passes the time in and serialises the calls.
type logLimit struct {
	window     time.Duration
	burst      int
	start      time.Time // of the current window
	used       int
	suppressed int
}

// allow reports whether a line may be logged at now and, if so, how many were suppressed
// since the last line that was.
func (l *logLimit) allow(now time.Time) (ok bool, suppressed int) {
	if l.start.IsZero() || now.Sub(l.start) >= l.window || now.Before(l.start) {
		l.start, l.used = now, 0
	}
	if l.used >= l.burst {
		l.suppressed++
		return false, 0
	}
	l.used++
	suppressed, l.suppressed = l.suppressed, 0
	return true, suppressed
}

// Junk connections (port scans, health checks, a wrong certificate: anything that fails the
// TLS handshake or the Hello) are counted in Status and logged at most junkLogBurst times per
// junkLogWindow, so a flood cannot fill the log.
const (
	junkLogBurst  = 5
	junkLogWindow = time.Minute
)

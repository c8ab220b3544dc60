package appliance

import (
	"sync"
	"time"
)

// Severity orders events the way Epygi's System Events page does: 1 is the most important.
type Severity int

const (
	SeverityCritical Severity = 1
	SeverityWarning  Severity = 2
	SeverityInfo     Severity = 3
)

// Event is one entry of the node's event log: a role change, a device or peer problem, an
// operator action. Events are what an operator reads after the fact, and what notifications
// (mail, SNMP, hooks) are built from.
type Event struct {
	Seq      uint64    `json:"seq"`
	Time     time.Time `json:"time"`
	Severity Severity  `json:"severity"`
	Source   string    `json:"source"` // "vrrp", "berofos", "sync", "appliance"
	Name     string    `json:"name"`   // short machine-readable kind, e.g. "transition"
	Message  string    `json:"message"`
}

// eventLog keeps the most recent events in a ring. Appending never blocks on readers, so a
// slow API client or notifier cannot delay a takeover (design invariant).
type eventLog struct {
	mu   sync.Mutex
	buf  []Event
	next int
	full bool
	seq  uint64
}

func newEventLog(size int) *eventLog {
	return &eventLog{buf: make([]Event, size)}
}

func (l *eventLog) add(e Event) Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.seq++
	e.Seq = l.seq
	l.buf[l.next] = e
	l.next = (l.next + 1) % len(l.buf)
	if l.next == 0 {
		l.full = true
	}
	return e
}

// since returns the retained events with Seq > after, oldest first.
func (l *eventLog) since(after uint64) []Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []Event
	start, n := 0, l.next
	if l.full {
		start, n = l.next, len(l.buf)
	}
	for i := 0; i < n; i++ {
		e := l.buf[(start+i)%len(l.buf)]
		if e.Seq > after {
			out = append(out, e)
		}
	}
	return out
}

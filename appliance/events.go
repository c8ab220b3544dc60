package appliance

import (
	"sort"
	"sync"
	"time"
)

// Priority orders events the way Epygi's System Events page (seed 004, Figure 10) does: a
// Backup coming up in Active mode is 1, in Passive mode 2, a Backup going down 3. Higher is
// more urgent.
type Priority int

const (
	PriorityInfo    Priority = 1 // normal operation: became Backup, a sync ran, a service started
	PriorityNotice  Priority = 2 // worth reading: became Master, Passive mode, a swap, a drift
	PriorityWarning Priority = 3 // needs an operator: peer down, a device unreachable, a failed service
)

// Applications, the seed's "Application" column.
const (
	AppRedundancy = "REDUNDANCY" // VRRP role, peer, swap, mode, the node itself
	AppBerofos    = "BEROFOS"
	AppSync       = "SYNC"
	AppService    = "SERVICE"
	AppConsole    = "CONSOLE" // the web console's log-ins and lock-outs
)

// Event statuses, the seed's "Status" column.
const (
	StatusNew  = "new"
	StatusRead = "read"
)

// Event is one entry of the node's event log, in the shape of the seed's System Events table:
// a role change, a device or peer problem, an operator action. Events are what an operator
// reads after the fact, and what notifications are built from.
type Event struct {
	Seq         uint64    `json:"seq"`
	Time        time.Time `json:"time"`
	Priority    Priority  `json:"priority"`
	Application string    `json:"application"`
	Name        string    `json:"name"` // short machine-readable kind, e.g. "became master"
	Description string    `json:"description"`
	Status      string    `json:"status"` // "new" or "read"
}

// kept reports whether e belongs to the protected class of the log: role changes, modes,
// swaps, the peer and the node's own start and stop. They have a retention budget of their
// own, so a flood of ordinary events (a device flapping, a burst of sync runs) can never push
// them out (issue 12 item 8).
func (e Event) kept() bool { return e.Application == AppRedundancy }

// EventLimits bounds the log: Count events per class (protected and ordinary), none older
// than MaxAge.
type EventLimits struct {
	Count  int
	MaxAge time.Duration
}

// DefaultEventLimits keeps 1000 events of each class for 90 days.
var DefaultEventLimits = EventLimits{Count: 1000, MaxAge: 90 * 24 * time.Hour}

// eventLog keeps the events in memory, two bounded classes merged by sequence number. It is
// the pure half of the event store: persistence (eventStore) replays into it and follows it.
// Appending never blocks on readers, so a slow API client or notifier cannot delay a
// takeover (design invariant).
type eventLog struct {
	mu      sync.Mutex
	limits  EventLimits
	classes [2][]Event // [0] ordinary, [1] protected; each oldest first
	seq     uint64
	changed chan struct{} // closed and replaced on every change, for followers
}

func newEventLog(limits EventLimits) *eventLog {
	return &eventLog{limits: limits, changed: make(chan struct{})}
}

func class(e Event) int {
	if e.kept() {
		return 1
	}
	return 0
}

// add numbers e and stores it; it returns e with its sequence number and status set.
func (l *eventLog) add(e Event) Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.seq++
	e.Seq = l.seq
	if e.Status == "" {
		e.Status = StatusNew
	}
	l.put(e)
	l.notify()
	return e
}

// restore puts back an event read from disk, keeping its number.
func (l *eventLog) restore(e Event) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.seq = max(l.seq, e.Seq)
	l.put(e)
}

func (l *eventLog) put(e Event) {
	c := class(e)
	l.classes[c] = append(l.classes[c], e)
	if over := len(l.classes[c]) - l.limits.Count; l.limits.Count > 0 && over > 0 {
		l.classes[c] = append(l.classes[c][:0:0], l.classes[c][over:]...)
	}
}

// prune drops the events older than MaxAge at now.
func (l *eventLog) prune(now time.Time) {
	if l.limits.MaxAge <= 0 {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	cut := now.Add(-l.limits.MaxAge)
	for c := range l.classes {
		i := sort.Search(len(l.classes[c]), func(i int) bool { return !l.classes[c][i].Time.Before(cut) })
		l.classes[c] = l.classes[c][i:]
	}
}

// markRead sets the status of the given events (all events up to and including upTo when
// seqs is empty and upTo > 0) to read and returns how many changed.
func (l *eventLog) markRead(seqs []uint64, upTo uint64) int {
	want := make(map[uint64]bool, len(seqs))
	for _, s := range seqs {
		want[s] = true
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for c := range l.classes {
		for i := range l.classes[c] {
			e := &l.classes[c][i]
			if e.Status != StatusRead && (want[e.Seq] || (len(seqs) == 0 && e.Seq <= upTo)) {
				e.Status = StatusRead
				n++
			}
		}
	}
	if n > 0 {
		l.notify()
	}
	return n
}

func (l *eventLog) notify() {
	close(l.changed)
	l.changed = make(chan struct{})
}

// since returns the retained events with Seq > after, oldest first, and a channel that is
// closed at the next change.
func (l *eventLog) since(after uint64) ([]Event, <-chan struct{}) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []Event
	for c := range l.classes {
		for _, e := range l.classes[c] {
			if e.Seq > after {
				out = append(out, e)
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Seq < out[j].Seq })
	return out, l.changed
}

// watch returns a channel that is closed at the next change (an event added or marked).
func (l *eventLog) watch() <-chan struct{} {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.changed
}

// lastSeq is the number of the newest event.
func (l *eventLog) lastSeq() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.seq
}

// all returns every retained event, oldest first.
func (l *eventLog) all() []Event {
	ev, _ := l.since(0)
	return ev
}

package appliance

import (
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func seqsOf(evs []Event) []uint64 {
	out := []uint64{}
	for _, e := range evs {
		out = append(out, e.Seq)
	}
	return out
}

func TestEventLogRetention(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	ord := func(at time.Duration) Event { return Event{Time: t0.Add(at), Application: AppSync, Name: "run"} }
	kept := func(at time.Duration) Event {
		return Event{Time: t0.Add(at), Application: AppRedundancy, Name: "became master"}
	}
	tests := []struct {
		name    string
		limits  EventLimits
		add     []Event
		pruneAt time.Duration
		want    []uint64
	}{
		{"ring drops the oldest", EventLimits{Count: 3}, []Event{ord(0), ord(1), ord(2), ord(3), ord(4)}, 0, []uint64{3, 4, 5}},
		{"a flood of ordinary events keeps the transitions", EventLimits{Count: 2},
			[]Event{kept(0), kept(1), ord(2), ord(3), ord(4), ord(5), ord(6)}, 0, []uint64{1, 2, 6, 7}},
		{"protected events have their own bound", EventLimits{Count: 2},
			[]Event{kept(0), ord(1), kept(2), kept(3)}, 0, []uint64{2, 3, 4}},
		{"age bound, both classes", EventLimits{Count: 10, MaxAge: time.Hour},
			[]Event{kept(0), ord(time.Minute), ord(2*time.Hour + 45*time.Minute), kept(3 * time.Hour)}, 3*time.Hour + 30*time.Minute, []uint64{3, 4}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l := newEventLog(tc.limits)
			for _, e := range tc.add {
				l.add(e)
			}
			if tc.pruneAt != 0 {
				l.prune(t0.Add(tc.pruneAt))
			}
			if diff := cmp.Diff(tc.want, seqsOf(l.all())); diff != "" {
				t.Errorf("retained (-want +got):\n%s", diff)
			}
		})
	}
}

func TestEventLogSinceAndMarkRead(t *testing.T) {
	l := newEventLog(EventLimits{Count: 10})
	for _, app := range []string{AppRedundancy, AppSync, AppRedundancy, AppBerofos} {
		l.add(Event{Application: app})
	}
	got, changed := l.since(2)
	if diff := cmp.Diff([]uint64{3, 4}, seqsOf(got)); diff != "" {
		t.Errorf("since(2) (-want +got):\n%s", diff)
	}
	if n := l.markRead([]uint64{1, 4, 9}, 0); n != 2 {
		t.Errorf("markRead(1,4,9) = %d, want 2", n)
	}
	select {
	case <-changed:
	default:
		t.Error("marking read did not signal followers")
	}
	if n := l.markRead(nil, 3); n != 2 { // 2 and 3; 1 was read already
		t.Errorf("markRead(up to 3) = %d, want 2", n)
	}
	for _, e := range l.all() {
		if e.Status != StatusRead {
			t.Errorf("event %d status %q, want read", e.Seq, e.Status)
		}
	}
}

func TestEventStoreKeepsEventsAcrossRestarts(t *testing.T) {
	dir := t.TempDir()
	now := func() time.Time { return time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC) }
	s := openEventStore(dir, DefaultEventLimits, slog.New(slog.DiscardHandler), now)
	for _, name := range []string{"start", "became master", "stop"} {
		s.add(Event{Time: now(), Application: AppRedundancy, Name: name, Priority: PriorityNotice})
	}
	s.flush()
	s.markRead([]uint64{2}, 0)
	s.flush()
	s.add(Event{Time: now(), Application: AppSync, Name: "run"})
	s.flush()
	// A crash mid-append leaves a partial line; it is skipped, not fatal.
	f, err := os.OpenFile(filepath.Join(dir, eventsFile), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(`{"seq":5,"time":"2026-12-01T`)
	f.Close()

	r := openEventStore(dir, DefaultEventLimits, slog.New(slog.DiscardHandler), now)
	got := r.log.all()
	if diff := cmp.Diff([]uint64{1, 2, 3, 4}, seqsOf(got)); diff != "" {
		t.Fatalf("events after reopening (-want +got):\n%s", diff)
	}
	if got[1].Status != StatusRead || got[0].Status != StatusNew || got[1].Name != "became master" {
		t.Errorf("restored events = %+v", got)
	}
	if e := r.add(Event{Application: AppRedundancy, Name: "start"}); e.Seq != 5 {
		t.Errorf("first event after the restart has seq %d, want 5", e.Seq)
	}
}

func TestEventStoreWithoutItsDisk(t *testing.T) {
	// A file where the state directory should be refuses every write, root's too.
	parent := t.TempDir()
	dir := filepath.Join(parent, "state")
	if err := os.WriteFile(dir, nil, 0o600); err != nil { // state_dir is a file: every write fails
		t.Fatal(err)
	}
	s := openEventStore(dir, DefaultEventLimits, slog.New(slog.DiscardHandler), time.Now)
	s.add(Event{Application: AppRedundancy, Name: "became master"})
	s.add(Event{Application: AppRedundancy, Name: "became backup"})
	s.flush()
	st := s.status()
	if st.Unpersisted != 2 || st.Error == "" || st.Retained != 2 {
		t.Fatalf("status with an unusable state dir = %+v, want 2 unpersisted with an error", st)
	}
	// The disk comes back: everything kept in memory is written.
	if err := os.Remove(dir); err != nil {
		t.Fatal(err)
	}
	s.add(Event{Application: AppSync, Name: "run"})
	s.flush()
	if st := s.status(); st.Unpersisted != 0 || st.Error != "" {
		t.Fatalf("status after the disk is back = %+v", st)
	}
	r := openEventStore(dir, DefaultEventLimits, slog.New(slog.DiscardHandler), time.Now)
	if diff := cmp.Diff([]uint64{1, 2, 3}, seqsOf(r.log.all())); diff != "" {
		t.Errorf("events on disk (-want +got):\n%s", diff)
	}
}

package appliance

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// eventStore keeps the event log in state_dir across restarts (issue 7 section 5). Memory is
// the truth and the file follows it: recording an event only wakes the writer, which appends
// what it has not written yet and fsyncs once per batch. When the disk refuses (full,
// read-only), the events stay in memory, Unpersisted counts them, and the next successful
// write rewrites the whole file, so nothing recorded while the disk was full is lost on disk
// once it has room again. Marking events read rewrites the file (atomically), since a line
// once appended is never edited.
type eventStore struct {
	path string
	log  *eventLog
	lg   *slog.Logger
	now  func() time.Time
	wake chan struct{}

	mu          sync.Mutex
	persisted   uint64 // highest Seq on disk
	rewrite     bool   // the file must be rewritten from memory (read marks, a failed write, too long)
	lines       int    // lines in the file since the last rewrite
	unpersisted uint64 // events recorded since the last successful write (0 when the disk follows)
	lastErr     string
}

const eventsFile = "events.jsonl"

// openEventStore loads the events kept in dir (skipping lines it cannot read, which a crash
// mid-append may leave) and returns the store. A missing or unreadable file is not an error:
// the node must start without its disk; the problem is reported by Status.
func openEventStore(dir string, limits EventLimits, lg *slog.Logger, now func() time.Time) *eventStore {
	s := &eventStore{path: filepath.Join(dir, eventsFile), log: newEventLog(limits), lg: lg, now: now,
		wake: make(chan struct{}, 1), rewrite: true}
	bad, err := s.load()
	switch {
	case err != nil && !errors.Is(err, os.ErrNotExist):
		s.lastErr = err.Error()
		lg.Warn("event log not loaded; starting with an empty log", "path", s.path, "err", err)
	case bad > 0:
		lg.Warn("event log: skipped unreadable lines", "path", s.path, "lines", bad)
	}
	s.log.prune(now())
	return s
}

func (s *eventStore) load() (bad int, err error) {
	b, err := os.ReadFile(s.path)
	if err != nil {
		return 0, err
	}
	for line := range bytes.Lines(b) {
		var e Event
		if err := json.Unmarshal(line, &e); err != nil || e.Seq == 0 {
			bad++
			continue
		}
		s.log.restore(e)
	}
	return bad, nil
}

// add stamps e (when it has no time), records it in memory and wakes the writer; it never
// waits for the disk.
func (s *eventStore) add(e Event) Event {
	if e.Time.IsZero() {
		e.Time = s.now()
	}
	e = s.log.add(e)
	s.kick()
	return e
}

// markRead marks events read (see eventLog.markRead) and schedules a rewrite.
func (s *eventStore) markRead(seqs []uint64, upTo uint64) int {
	n := s.log.markRead(seqs, upTo)
	if n > 0 {
		s.mu.Lock()
		s.rewrite = true
		s.mu.Unlock()
		s.kick()
	}
	return n
}

func (s *eventStore) kick() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// EventStoreStatus is the event log's part of the status answer.
type EventStoreStatus struct {
	Retained    int    `json:"retained"`
	Unpersisted uint64 `json:"unpersisted"` // events kept only in memory (disk full or read-only)
	Error       string `json:"error,omitempty"`
}

func (s *eventStore) status() EventStoreStatus {
	n := len(s.log.all())
	s.mu.Lock()
	defer s.mu.Unlock()
	return EventStoreStatus{Retained: n, Unpersisted: s.unpersisted, Error: s.lastErr}
}

// run writes until ctx is done, then once more, so the node's last events reach the disk.
func (s *eventStore) run(ctx context.Context) {
	prune := time.NewTicker(time.Hour)
	defer prune.Stop()
	for {
		select {
		case <-ctx.Done():
			s.flush()
			return
		case <-prune.C:
			s.log.prune(s.now())
			s.mu.Lock()
			s.rewrite = true
			s.mu.Unlock()
		case <-s.wake:
		}
		s.flush()
	}
}

// flush brings the file up to date with memory.
func (s *eventStore) flush() {
	s.mu.Lock()
	rewrite, after := s.rewrite || s.lines > 4*max(s.log.limits.Count, 1), s.persisted
	s.mu.Unlock()
	var evs []Event
	if rewrite {
		evs = s.log.all()
	} else {
		evs, _ = s.log.since(after)
	}
	if len(evs) == 0 && !rewrite {
		return
	}
	err := s.write(evs, rewrite)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		if s.lastErr == "" {
			s.lg.Warn("event log kept in memory only", "path", s.path, "err", err)
		}
		s.lastErr = err.Error()
		s.unpersisted = s.log.lastSeq() - s.persisted
		s.rewrite = true
		return
	}
	if s.lastErr != "" {
		s.lg.Info("event log written to disk again", "path", s.path)
	}
	s.lastErr, s.unpersisted = "", 0
	if len(evs) > 0 {
		s.persisted = max(s.persisted, evs[len(evs)-1].Seq)
	}
	if rewrite {
		s.rewrite, s.lines = false, len(evs)
	} else {
		s.lines += len(evs)
	}
}

func encodeEvents(evs []Event) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	for _, e := range evs {
		_ = enc.Encode(e) // an Event always encodes
	}
	return buf.Bytes()
}

// write appends evs to the file, or replaces the file with them (atomically) when whole.
func (s *eventStore) write(evs []Event, whole bool) error {
	if err := os.MkdirAll(filepath.Dir(s.path), 0o700); err != nil {
		return err
	}
	data := encodeEvents(evs)
	if whole {
		return writeFileAtomic(s.path, data, 0o600)
	}
	f, err := os.OpenFile(s.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(f)
	_, err = w.Write(data)
	err = errors.Join(err, w.Flush(), f.Sync(), f.Close())
	if err != nil {
		// A partial line is skipped on load; the rewrite that follows replaces it.
		return fmt.Errorf("append to %s: %w", s.path, err)
	}
	return nil
}

// writeFileAtomic replaces name with data: written to a temporary file beside it, fsynced,
// renamed over it, and the directory fsynced, so a crash leaves the old or the new file.
func writeFileAtomic(name string, data []byte, perm os.FileMode) error {
	dir := filepath.Dir(name)
	f, err := os.CreateTemp(dir, "."+filepath.Base(name)+".*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = f.Write(data)
	err = errors.Join(err, f.Chmod(perm), f.Sync(), f.Close())
	if err == nil {
		err = os.Rename(tmp, name)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", name, err)
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}

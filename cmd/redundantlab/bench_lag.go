//go:build linux

package main

import (
	"context"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	pbxsync "github.com/redundantd/redundantd/sync"
)

func init() {
	register("bench lag", "replication lag with watch = true: a voicemail closed on the Master to complete on the Backup (RPO)", benchLag)
}

// benchLag measures what an operator loses in a crash (the recovery point): the time from a
// message's .txt closed on the Master to both its files present and complete on the Backup,
// with the source's inotify watcher on (issue 9 item 6). Two nodes replicate on loopback; the
// Backup's folder is watched with inotify, and every .txt that appears is checked to have its
// audio complete beside it (a reader must never see the .txt first).
func benchLag(ctx context.Context, args []string) error {
	fl := flag.NewFlagSet("bench lag", flag.ContinueOnError)
	n := fl.Int("n", 200, "messages arriving one by one")
	rate := fl.Float64("rate", 5, "messages per second")
	burst := fl.Int("burst", 20, "messages arriving at once, afterwards")
	size := fl.Int("size", 160_000, "audio bytes per message (10 s of 8 kHz 16-bit)")
	if err := fl.Parse(args); err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "bench-lag-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	src, dst := filepath.Join(dir, "src", "voicemail"), filepath.Join(dir, "dst", "voicemail")
	inbox := func(root string) string { return filepath.Join(root, "1000", "INBOX") }
	for _, d := range []string{inbox(src), inbox(dst)} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	stop, err := startLagNodes(ctx, dir, src, dst)
	if err != nil {
		return err
	}
	defer stop()
	w, err := watchArrivals(inbox(dst), *size)
	if err != nil {
		return err
	}
	defer w.close()

	audio := make([]byte, *size)
	_, _ = rand.Read(audio)
	next := 1
	one := func() (int, time.Time, error) {
		num := next
		next++
		base := filepath.Join(inbox(src), fmt.Sprintf("msg%04d", num))
		if err := os.WriteFile(base+".wav", audio, 0o644); err != nil {
			return 0, time.Time{}, err
		}
		if err := os.WriteFile(base+".txt", fmt.Appendf(nil, "[message]\nmsgnum=%d\n", num), 0o644); err != nil {
			return 0, time.Time{}, err
		}
		return num, time.Now(), nil
	}
	fmt.Printf("replication lag, watch = true, %d-byte messages, on loopback\n\n", *size)
	sent := map[int]time.Time{}
	tick := time.NewTicker(time.Duration(float64(time.Second) / *rate))
	for range *n {
		num, at, err := one()
		if err != nil {
			return err
		}
		sent[num] = at
		<-tick.C
	}
	tick.Stop()
	if err := report(fmt.Sprintf("%d messages at %g/s", *n, *rate), w, sent, 30*time.Second); err != nil {
		return err
	}
	sent = map[int]time.Time{}
	for range *burst {
		num, at, err := one()
		if err != nil {
			return err
		}
		sent[num] = at
	}
	if err := report(fmt.Sprintf("%d messages at once", *burst), w, sent, 30*time.Second); err != nil {
		return err
	}
	if bad := w.txtFirst(); len(bad) > 0 {
		return fmt.Errorf("a .txt was visible on the Backup before its complete audio: %v", bad)
	}
	fmt.Println("\nno .txt was ever visible on the Backup before its complete audio")
	return nil
}

// report waits for every message of sent to arrive and prints the lag's p50 / p99 / max.
func report(what string, w *arrivals, sent map[int]time.Time, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	var lags []time.Duration
	for num, at := range sent {
		got, err := w.wait(num, deadline)
		if err != nil {
			return fmt.Errorf("%s: message %d: %w", what, num, err)
		}
		lags = append(lags, got.Sub(at))
	}
	slices.Sort(lags)
	pct := func(p float64) time.Duration { return lags[min(len(lags)-1, int(p*float64(len(lags))))] }
	fmt.Printf("%-24s p50 %7.1f ms   p99 %7.1f ms   max %7.1f ms\n", what,
		msf(pct(0.50)), msf(pct(0.99)), msf(lags[len(lags)-1]))
	return nil
}

func msf(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// startLagNodes runs a source and a replica with inotify watching on loopback.
func startLagNodes(ctx context.Context, dir, src, dst string) (func(), error) {
	p, err := startSyncPair(ctx, dir, []string{src}, []string{dst},
		pbxsync.Config{Interval: "24h", Watch: true, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return nil, err
	}
	p.dst.SetRole(pbxsync.RoleReplica)
	p.src.SetRole(pbxsync.RoleSource)
	// The first run (empty trees) pairs the nodes; lag is measured from then on. Becoming
	// the source starts it; SyncNow queues behind it and succeeds once the pair is paired.
	if _, err := p.src.SyncNow(ctx); err != nil {
		p.stop()
		return nil, fmt.Errorf("first run: %w", err)
	}
	return p.stop, nil
}

// arrivals watches the Backup's folder: when each message is complete there, and whether any
// .txt appeared before its complete audio.
type arrivals struct {
	fd   int
	dir  string
	size int

	mu       sync.Mutex
	complete map[int]time.Time
	early    []string
	changed  chan struct{}
	done     chan struct{}
}

func watchArrivals(dir string, size int) (*arrivals, error) {
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC)
	if err != nil {
		return nil, err
	}
	if _, err := unix.InotifyAddWatch(fd, dir, unix.IN_MOVED_TO|unix.IN_CLOSE_WRITE|unix.IN_CREATE); err != nil {
		unix.Close(fd)
		return nil, err
	}
	w := &arrivals{fd: fd, dir: dir, size: size, complete: map[int]time.Time{}, changed: make(chan struct{}), done: make(chan struct{})}
	go w.loop()
	return w, nil
}

func (w *arrivals) loop() {
	defer close(w.done)
	buf := make([]byte, 64<<10)
	for {
		n, err := unix.Read(w.fd, buf)
		if err != nil {
			if errors.Is(err, unix.EINTR) {
				continue
			}
			return
		}
		at := time.Now()
		for off := 0; off+unix.SizeofInotifyEvent <= n; {
			ev := (*unix.InotifyEvent)(unixPointer(buf, off))
			name := strings.TrimRight(string(buf[off+unix.SizeofInotifyEvent:off+unix.SizeofInotifyEvent+int(ev.Len)]), "\x00")
			off += unix.SizeofInotifyEvent + int(ev.Len)
			w.saw(name, at)
		}
	}
}

// saw checks the message a file of name belongs to.
func (w *arrivals) saw(name string, at time.Time) {
	var num int
	if _, err := fmt.Sscanf(name, "msg%04d.", &num); err != nil || strings.HasPrefix(name, ".") {
		return
	}
	base := filepath.Join(w.dir, fmt.Sprintf("msg%04d", num))
	wav, werr := os.Stat(base + ".wav")
	_, terr := os.Stat(base + ".txt")
	w.mu.Lock()
	defer w.mu.Unlock()
	audioDone := werr == nil && wav.Size() == int64(w.size)
	if strings.HasSuffix(name, ".txt") && terr == nil && !audioDone {
		w.early = append(w.early, name)
	}
	if _, seen := w.complete[num]; !seen && audioDone && terr == nil {
		w.complete[num] = at
		close(w.changed)
		w.changed = make(chan struct{})
	}
}

func (w *arrivals) wait(num int, deadline time.Time) (time.Time, error) {
	for {
		w.mu.Lock()
		at, ok := w.complete[num]
		ch := w.changed
		w.mu.Unlock()
		if ok {
			return at, nil
		}
		select {
		case <-ch:
		case <-time.After(time.Until(deadline)):
			return time.Time{}, errors.New("not complete on the Backup in time")
		}
	}
}

func (w *arrivals) txtFirst() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.early)
}

func (w *arrivals) close() {
	unix.Close(w.fd)
}

func unixPointer(b []byte, off int) unsafe.Pointer { return unsafe.Pointer(&b[off]) }

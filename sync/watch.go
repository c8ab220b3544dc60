package sync

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/fsnotify/fsnotify"
)

// The watcher triggers a run watchQuiet after the last change, so that a message (audio
// files, then .txt) goes in one run, but never later than watchMaxDelay after the first change
// not yet replicated: a PBX that records a message every 200 ms would otherwise postpone
// the run for as long as the traffic lasts (measured with `redundantlab bench lag`: with a
// 700 ms quiet time alone, 200 messages at 5/s waited 21 s at the median).
const (
	watchQuiet    = 150 * time.Millisecond
	watchMaxDelay = 600 * time.Millisecond
)

// watchDelay is how long to wait, at now, before triggering a run for changes pending since
// first: the quiet time, cut short so the run starts by first + watchMaxDelay.
func watchDelay(first, now time.Time) time.Duration {
	return max(0, min(watchQuiet, first.Add(watchMaxDelay).Sub(now)))
}

// watch triggers a run shortly after a change in the trees while this node is the source.
// The periodic run stays the safety net for anything inotify misses (queue overflow, trees
// over the watch limit).
//
// It also lets a source skip its stat walk: every event bumps watchGen (after any new folder
// is watched), and a source run whose previous scan started with the watcher healthy and the
// same watchGen knows that nothing changed since (see sourceScan). Any trouble (a folder that
// could not be watched, a queue overflow, a watcher error) clears watchOK until the next
// start, so every run scans again.
func (n *Node) watch(ctx context.Context, ready chan<- struct{}) {
	defer n.watchOK.Store(false)
	w, err := fsnotify.NewWatcher()
	if err != nil {
		n.log.Warn("sync: watch disabled", "err", err)
		close(ready)
		return
	}
	defer w.Close()
	ok := true
	add := func(root string) {
		if !n.addWatches(w, root) {
			ok = false
			n.watchOK.Store(false)
		}
	}
	for _, p := range n.cfg.Paths {
		add(p)
	}
	if err := w.Add(n.cfg.StateDir); err != nil { // for the sentinel only
		ok = false
	}
	n.watchGen.Add(1)
	n.watchOK.Store(ok)
	close(ready)
	var timer *time.Timer
	var fire <-chan time.Time
	var first time.Time // the first change not yet handed to a run; zero when none
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-w.Events:
			if !ok {
				return
			}
			if !n.watchEvent(ev, add) {
				continue
			}
			n.watchGen.Add(1)
			now := time.Now()
			if first.IsZero() {
				first = now
			}
			if timer == nil {
				timer = time.NewTimer(watchDelay(first, now))
			} else {
				timer.Reset(watchDelay(first, now))
			}
			fire = timer.C
		case err, ok := <-w.Errors:
			if !ok {
				return
			}
			n.log.Warn("sync: watch", "err", err)
			n.watchOK.Store(false) // e.g. queue overflow: events were lost
			n.watchGen.Add(1)
		case <-fire:
			fire, first = nil, time.Time{}
			if n.cfg.Watch && n.Role() == RoleSource {
				select {
				case n.trigger <- struct{}{}:
				default:
				}
			}
		}
	}
}

// addWatches watches root and every folder under it except tmp/ folders and the trash; it
// reports false when a folder could not be listed or watched (runs must then scan).
func (n *Node) addWatches(w *fsnotify.Watcher, root string) bool {
	ok := true
	_ = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if !errors.Is(err, fs.ErrNotExist) { // gone again: nothing to watch
				ok = false
			}
			return nil
		}
		if !d.IsDir() {
			return nil
		}
		if (skipName(d.Name(), true) && p != root) || n.isTrash(p) {
			return filepath.SkipDir
		}
		if err := w.Add(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			n.log.Warn("sync: watch", "path", p, "err", err)
			ok = false
		}
		return nil
	})
	return ok
}

// watchEvent handles one inotify event: the sentinel in the state folder, a .lock coming or
// going, a new folder to watch. It reports whether the event is a change to replicate (the
// caller counts it and debounces the run).
func (n *Node) watchEvent(ev fsnotify.Event, add func(string)) bool {
	name := filepath.Base(ev.Name)
	if filepath.Dir(ev.Name) == filepath.Clean(n.cfg.StateDir) {
		if name == sentinelName {
			select {
			case n.sentinel <- struct{}{}:
			default:
			}
		}
		return false // the manifest, trash and conflict records are not replicated
	}
	if skipName(name, false) {
		n.watchGen.Add(1) // a .lock coming or going changes what a scan skips
		return false
	}
	if n.isTrash(ev.Name) {
		return false // the trash folder of a tree is not replicated
	}
	if ev.Has(fsnotify.Create) && !skipName(name, true) {
		add(ev.Name) // new folders are watched too (no-op for files)
	}
	return true
}

// isTrash reports whether p is the trash folder of one of the trees.
func (n *Node) isTrash(p string) bool {
	return filepath.Base(p) == trashDirName && slices.Contains(n.cfg.Paths, filepath.Dir(p))
}

// sentinelName is touched in the state directory (watched by the same inotify instance as the
// trees) before a source run trusts its watcher: inotify delivers the events of one instance
// in order, so once the watcher has seen the sentinel's event it has seen every change made
// in the trees before the run started.
const sentinelName = tmpPrefix + "sentinel"

// watcherCaughtUp touches the sentinel and waits for the watcher to report it.
func (n *Node) watcherCaughtUp() bool {
	select { // drop a stale signal
	case <-n.sentinel:
	default:
	}
	name := filepath.Join(n.cfg.StateDir, sentinelName)
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE, 0o600)
	if err != nil {
		return false
	}
	f.Close()
	now := time.Now()
	if err := os.Chtimes(name, now, now); err != nil {
		return false
	}
	t := time.NewTimer(time.Second)
	defer t.Stop()
	select {
	case <-n.sentinel:
		return true
	case <-t.C:
		return false
	}
}

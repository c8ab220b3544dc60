package sync

import (
	"context"
	"io/fs"
	"path/filepath"
	"time"

	"github.com/fsnotify/fsnotify"
)

// watchDebounce is how long the watcher waits after the last change before it triggers a run,
// so that a message (audio files, then .txt) goes in one run.
const watchDebounce = 700 * time.Millisecond

// watch triggers a run shortly after a change in the trees while this node is the source.
// The periodic run stays the safety net for anything inotify misses (queue overflow, trees
// over the watch limit).
func (n *Node) watch(ctx context.Context) {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		n.log.Warn("sync: watch disabled", "err", err)
		return
	}
	defer w.Close()
	add := func(root string) {
		_ = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return nil
			}
			if d.IsDir() {
				if skipName(d.Name(), true) && p != root {
					return filepath.SkipDir
				}
				if err := w.Add(p); err != nil {
					n.log.Warn("sync: watch", "path", p, "err", err)
				}
			}
			return nil
		})
	}
	for _, p := range n.cfg.Paths {
		add(p)
	}
	var timer *time.Timer
	var fire <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-w.Events:
			if !ok {
				return
			}
			name := filepath.Base(ev.Name)
			if skipName(name, false) {
				continue
			}
			if ev.Has(fsnotify.Create) {
				add(ev.Name) // new folders are watched too (no-op for files)
			}
			if timer == nil {
				timer = time.NewTimer(watchDebounce)
			} else {
				timer.Reset(watchDebounce)
			}
			fire = timer.C
		case err, ok := <-w.Errors:
			if !ok {
				return
			}
			n.log.Warn("sync: watch", "err", err)
		case <-fire:
			fire = nil
			if n.Role() == RoleSource {
				select {
				case n.trigger <- struct{}{}:
				default:
				}
			}
		}
	}
}

package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
)

// Logs under systemd: journald stamps every line itself, so the daemon's own timestamp is
// noise there, and it reads a "<N>" syslog priority at the start of a line (SyslogLevelPrefix=,
// on by default), which makes `journalctl -p warning` and the colouring work.

// underJournal reports whether w is the stream journald reads: JOURNAL_STREAM (systemd.exec(5))
// names its device and inode, so a stderr the operator redirected to a file is not mistaken
// for it.
func underJournal(env string, w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok || env == "" {
		return false
	}
	dev, ino, ok := fileID(f)
	return ok && journalStreamIs(env, dev, ino)
}

// journalStreamIs compares a JOURNAL_STREAM value with a file's device and inode.
func journalStreamIs(env string, dev, ino uint64) bool {
	return env == fmt.Sprintf("%d:%d", dev, ino)
}

// newLogHandler is the daemon's log handler: text or JSON on w; under journald without the
// time and with each line's syslog priority in front.
func newLogHandler(w io.Writer, asJSON bool, level slog.Level, journal bool) slog.Handler {
	opts := &slog.HandlerOptions{Level: level}
	var pw *prefixWriter
	if journal {
		opts.ReplaceAttr = func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) == 0 && a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		}
		pw = &prefixWriter{w: w}
		w = pw
	}
	var h slog.Handler = slog.NewTextHandler(w, opts)
	if asJSON {
		h = slog.NewJSONHandler(w, opts)
	}
	if journal {
		h = priorityHandler{Handler: h, w: pw}
	}
	return h
}

// syslogPriority is sd-daemon(3)'s level for a slog level: err, warning, info, debug.
func syslogPriority(l slog.Level) int {
	switch {
	case l >= slog.LevelError:
		return 3
	case l >= slog.LevelWarn:
		return 4
	case l >= slog.LevelInfo:
		return 6
	default:
		return 7
	}
}

// priorityHandler puts the record's priority in front of the line the wrapped handler writes
// (slog's handlers write each record with one Write).
type priorityHandler struct {
	slog.Handler
	w *prefixWriter
}

func (h priorityHandler) Handle(ctx context.Context, r slog.Record) error {
	h.w.mu.Lock()
	defer h.w.mu.Unlock()
	h.w.prefix = fmt.Appendf(h.w.prefix[:0], "<%d>", syslogPriority(r.Level))
	return h.Handler.Handle(ctx, r)
}

func (h priorityHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return priorityHandler{Handler: h.Handler.WithAttrs(as), w: h.w}
}

func (h priorityHandler) WithGroup(name string) slog.Handler {
	return priorityHandler{Handler: h.Handler.WithGroup(name), w: h.w}
}

// prefixWriter writes prefix and the line in one Write, so that concurrent loggers (other
// handlers derived with With share it) never split a line from its priority.
type prefixWriter struct {
	mu     sync.Mutex // held by priorityHandler.Handle around the wrapped handler's Write
	w      io.Writer
	prefix []byte
	buf    []byte
}

func (p *prefixWriter) Write(b []byte) (int, error) {
	p.buf = append(append(p.buf[:0], p.prefix...), b...)
	if _, err := p.w.Write(p.buf); err != nil {
		return 0, err
	}
	return len(b), nil
}

package appliance

import (
	"bytes"
	"fmt"
	"hash/fnv"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/redundantd/redundantd/appliance/internal/htmlw"
)

// The live stream (server-sent events, the HTML standard's EventSource): a page opens
// /console/live?view=NAME and gets its live part rendered by the same function as the page,
// whenever it changes. The page's script puts it in place; nothing is rendered in the
// browser, and a page without script still works by reloading.

const (
	consoleLiveTick = time.Second      // how often the view is rendered again (peer status, services)
	consoleLivePing = 20 * time.Second // a comment line that keeps proxies and the browser from timing out
)

// liveView renders the live part of a view for session s, or reports an unknown view.
func (c *console) liveView(view string, r *http.Request, s *consoleSession) (htmlw.HTML, error) {
	var w htmlw.Writer
	switch view {
	case "status":
		statusLive(&w, c.statusView())
	case "settings":
		settingsLive(&w, s.csrf, c.settingsView())
	case "events":
		eventsLive(&w, c.eventsView(parseEventFilter(r.URL.Query()), s.csrf))
	default:
		return htmlw.HTML{}, fmt.Errorf("unknown view %q: want status, settings or events", view)
	}
	return w.HTML(), nil
}

// liveHash identifies a rendering of a live part (FNV-1a, 64 bits: a change detector, not a
// security measure).
func liveHash(h htmlw.HTML) string {
	f := fnv.New64a()
	f.Write([]byte(h.String()))
	return strconv.FormatUint(f.Sum64(), 16)
}

// liveShown is the hash of the live part the page shows when it opens the stream: the id of
// the last update it received (Last-Event-ID, which EventSource sends when it reconnects
// after a lost connection), else the part it was loaded with (the page's have parameter).
// Without Last-Event-ID a page that had been updated and reconnected while the state went
// back to the one it was loaded with would keep showing the update in between.
func liveShown(r *http.Request) string {
	if id := r.Header.Get("Last-Event-ID"); id != "" {
		return id
	}
	return r.URL.Query().Get("have")
}

// writeSSE writes one server-sent event: its name, its id and the data, one "data:" line
// each. The id is the hash of the live part it carries (liveHash): the browser's EventSource
// keeps the last one and sends it back as Last-Event-ID when it reconnects (see liveShown).
func writeSSE(w *bytes.Buffer, event, id, data string) {
	fmt.Fprintf(w, "event: %s\nid: %s\n", event, id)
	for line := range strings.Lines(data) {
		fmt.Fprintf(w, "data: %s\n", strings.TrimRight(line, "\r\n"))
	}
	w.WriteString("\n")
}

// live streams a view until the browser goes, the session ends or the node stops. It
// renders on every change of the event log and every consoleLiveTick, and sends only what
// differs from the last thing sent.
func (c *console) live(w http.ResponseWriter, r *http.Request) {
	s := c.current(r, false)
	if s == nil {
		http.Error(w, "not logged in", http.StatusUnauthorized)
		return
	}
	view := r.URL.Query().Get("view")
	first, err := c.liveView(view, r, s)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if c.streams.Add(1) > consoleMaxStreams {
		c.streams.Add(-1)
		http.Error(w, "too many live pages open; close some", http.StatusServiceUnavailable)
		return
	}
	defer c.streams.Add(-1)
	// The stream outlives the server's read timeout; each write has its own deadline.
	rc := http.NewResponseController(w)
	_ = rc.SetReadDeadline(time.Time{})
	w.Header().Set("Content-Type", "text/event-stream")
	w.WriteHeader(http.StatusOK)
	c.stream(w, rc, r, s, view, first)
}

func (c *console) stream(w http.ResponseWriter, rc *http.ResponseController, r *http.Request, s *consoleSession, view string, last htmlw.HTML) {
	var buf bytes.Buffer
	send := func() bool {
		// A browser that stops reading (a laptop put to sleep) must not hold the stream.
		_ = rc.SetWriteDeadline(time.Now().Add(10 * time.Second))
		_, err := w.Write(buf.Bytes())
		buf.Reset()
		return err == nil && rc.Flush() == nil
	}
	buf.WriteString("retry: 2000\n\n")
	if liveShown(r) != liveHash(last) {
		writeSSE(&buf, view, liveHash(last), last.String()) // the page is out of date already
	}
	if !send() {
		return
	}
	tick := time.NewTicker(consoleLiveTick)
	defer tick.Stop()
	lastSent := time.Now()
	for {
		changed := c.a.events.log.watch()
		select {
		case <-r.Context().Done():
			return
		case <-c.a.runCtx.Done():
			return
		case <-changed:
		case <-tick.C:
		}
		if c.auth.session(s.id, c.a.now(), false) == nil {
			buf.WriteString("event: logout\ndata: the session ended\n\n")
			send()
			return
		}
		html, err := c.liveView(view, r, s)
		switch {
		case err != nil:
			c.a.log.Error("console: live render", "view", view, "err", err)
			return
		case html != last:
			writeSSE(&buf, view, liveHash(html), html.String())
			last = html
		case time.Since(lastSent) >= consoleLivePing:
			buf.WriteString(": ping\n\n")
		default:
			continue
		}
		if !send() {
			return
		}
		lastSent = time.Now()
	}
}

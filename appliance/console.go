package appliance

import (
	"embed"
	"fmt"
	"io/fs"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/redundantd/redundantd/appliance/internal/htmlw"
)

// The web console (issue 11 section 1, docs/console.md): the seed's Redundancy Settings,
// Status and System Events pages, server-rendered by Go functions (console_pages.go, through
// htmlw, which escapes by construction) with the stylesheet and script embedded in the
// binary, on the API listener under /console/. It changes nothing by itself: every
// action calls what the JSON API calls (Status, SetBackupMode, Swap, the event store's
// markRead), so the console and redundantctl cannot disagree.

//go:embed console/static/*
var consoleFiles embed.FS

const (
	consolePath       = "/console/"
	consoleMaxStreams = 16 // live streams at once
	consoleLoginRate  = 1  // log-in attempts per second, sustained, from everyone together
	consoleLoginBurst = 5
)

// console serves the pages. It holds no state of the node: only the log-in state.
type console struct {
	a       *Appliance
	auth    *consoleAuth
	tls     bool
	static  http.Handler
	routes  *http.ServeMux
	streams atomic.Int32
	// sessionCookie and loginCookie (the log-in form's CSRF token, double submit) carry
	// the node's ID: browsers keep cookies per host, not per port, so the Master's console
	// and the Backup's behind the access port (same address) must not overwrite each other's.
	sessionCookie, loginCookie string
	// logins bounds the log-in attempts, apart from the API's limit for changes, so that a
	// guesser can neither lock redundantctl out nor try passwords quickly.
	logins *tokenBucket
}

// newConsole builds the console from the configuration; the users file was checked by
// LoadConfig and is read again here, as the daemon starts.
func newConsole(a *Appliance, cfg ConsoleConfig) (*console, error) {
	users, err := loadConsoleUsers(cfg.UsersFile)
	if err != nil {
		return nil, fmt.Errorf("console: %w", err)
	}
	static, _ := fs.Sub(consoleFiles, "console/static")
	c := &console{a: a, auth: newConsoleAuth(users, cfg), tls: cfg.TLS(),
		logins:        newTokenBucket(consoleLoginRate, consoleLoginBurst),
		sessionCookie: "redundantd_session_" + cookieSafe(a.cfg.Node.ID), loginCookie: "redundantd_login_" + cookieSafe(a.cfg.Node.ID),
		static: http.StripPrefix(consolePath+"static/", http.FileServerFS(static))}
	c.routes = c.mux()
	return c, nil
}

// cookieSafe keeps the letters, digits, '-' and '_' of s (a cookie name is an HTTP token).
func cookieSafe(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' {
			return r
		}
		return '_'
	}, s)
}

// consoleTime shows a time the way the seed's event table does.
func consoleTime(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return t.Local().Format("Mon Jan _2 15:04:05 2006")
}

// withConsole serves the console beside the API: /console/... to c, "/" redirected to the
// console, everything else to api (behind its bearer-token guard, unchanged). Without a
// console it is api itself.
func withConsole(api http.Handler, c *console) http.Handler {
	if c == nil {
		return api
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case strings.HasPrefix(r.URL.Path, consolePath) || r.URL.Path == "/console":
			c.ServeHTTP(w, r)
		case r.URL.Path == "/" && (r.Method == http.MethodGet || r.Method == http.MethodHead):
			http.Redirect(w, r, consolePath, http.StatusSeeOther)
		default:
			api.ServeHTTP(w, r)
		}
	})
}

// consolePage is what the layout of every page shows (consoleHead).
type consolePage struct {
	Title  string
	Page   string // the nav entry to highlight
	User   string
	CSRF   string
	Flash  string
	NodeID string
	Live   htmlw.URL // the live stream's URL; zero for none
	// LiveHTML is the page's live part, rendered by the function the stream uses.
	LiveHTML htmlw.HTML
}

func (c *console) mux() *http.ServeMux {
	m := http.NewServeMux()
	m.Handle("GET /console/static/", c.static)
	m.HandleFunc("GET /console/login", c.loginPage)
	m.HandleFunc("POST /console/login", func(w http.ResponseWriter, r *http.Request) {
		c.limitedBy(c.logins, c.loginPost)(w, r)
	})
	m.HandleFunc("GET /console/{$}", c.page(func(w http.ResponseWriter, r *http.Request, s *consoleSession) {
		http.Redirect(w, r, consolePath+"status", http.StatusSeeOther)
	}))
	m.HandleFunc("GET /console", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, consolePath, http.StatusSeeOther)
	})
	m.HandleFunc("POST /console/logout", c.form(c.logout))
	m.HandleFunc("GET /console/settings", c.page(c.settingsPage))
	m.HandleFunc("POST /console/mode", c.form(c.modePost))
	m.HandleFunc("GET /console/swap", c.page(c.swapPage))
	m.HandleFunc("POST /console/swap", c.form(c.swapPost))
	m.HandleFunc("GET /console/status", c.page(c.statusPage))
	m.HandleFunc("GET /console/events", c.page(c.eventsPage))
	m.HandleFunc("POST /console/events/read", c.form(c.readPost))
	m.HandleFunc("GET /console/live", c.live)
	return m
}

// ServeHTTP applies the API's Host check (DNS rebinding) and the page headers, then routes.
func (c *console) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !c.a.guard.hostAllowed(r.Host) {
		http.Error(w, fmt.Sprintf("host %q is not this node's address (api.listen, api.names)", r.Host), http.StatusMisdirectedRequest)
		return
	}
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "same-origin")
	h.Set("Cache-Control", "no-store")
	c.routes.ServeHTTP(w, r)
}

// cookie builds the console's cookies: HttpOnly, SameSite=Strict, Secure with TLS.
func (c *console) cookie(name, value string, maxAge int) *http.Cookie {
	return &http.Cookie{Name: name, Value: value, Path: consolePath, MaxAge: maxAge, HttpOnly: true,
		Secure: c.tls, SameSite: http.SameSiteStrictMode}
}

// current returns the request's session, or nil.
func (c *console) current(r *http.Request, touch bool) *consoleSession {
	ck, err := r.Cookie(c.sessionCookie)
	if err != nil {
		return nil
	}
	return c.auth.session(ck.Value, c.a.now(), touch)
}

// page wraps a GET handler that needs a session: without one the browser goes to the log-in.
func (c *console) page(h func(http.ResponseWriter, *http.Request, *consoleSession)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s := c.current(r, true)
		if s == nil {
			http.Redirect(w, r, consolePath+"login", http.StatusSeeOther)
			return
		}
		h(w, r, s)
	}
}

// form wraps a POST handler: it needs a session, the session's CSRF token in the form, and
// a token of the API's rate limit for changes.
func (c *console) form(h func(http.ResponseWriter, *http.Request, *consoleSession)) http.HandlerFunc {
	return c.limited(func(w http.ResponseWriter, r *http.Request) {
		s := c.current(r, true)
		if s == nil {
			http.Error(w, "not logged in (or the session ended): log in again", http.StatusUnauthorized)
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
		if !tokenEqual(r.PostFormValue("csrf"), s.csrf) {
			http.Error(w, "the form's CSRF token is missing or wrong: reload the page and try again", http.StatusForbidden)
			return
		}
		h(w, r, s)
	})
}

// limited applies the API's rate limit for changes.
func (c *console) limited(h http.HandlerFunc) http.HandlerFunc { return c.limitedBy(c.a.mutating, h) }

func (c *console) limitedBy(b *tokenBucket, h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !b.allow(c.a.now()) {
			w.Header().Set("Retry-After", "1")
			http.Error(w, "too many requests; try again in a second", http.StatusTooManyRequests)
			return
		}
		h(w, r)
	}
}

// render writes a page: the layout with p around what body writes.
func (c *console) render(w http.ResponseWriter, code int, p consolePage, body func(*htmlw.Writer, *consolePage)) {
	var hw htmlw.Writer
	consoleHead(&hw, &p)
	body(&hw, &p)
	consoleFoot(&hw)
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(code)
	_, _ = w.Write(hw.Bytes())
}

// sessionPage is the layout of a page of a logged-in session, with its flash message.
func (c *console) sessionPage(s *consoleSession, name, title string) consolePage {
	return consolePage{Title: title, Page: name, User: s.user, CSRF: s.csrf, Flash: c.auth.takeFlash(s.id), NodeID: c.a.cfg.Node.ID}
}

// done ends a form: the message is shown on the next page, which the browser loads by GET
// (post/redirect/get, so a reload does not repeat the change).
func (c *console) done(w http.ResponseWriter, r *http.Request, s *consoleSession, msg, to string) {
	c.auth.setFlash(s.id, msg)
	http.Redirect(w, r, to, http.StatusSeeOther)
}

func (c *console) loginPage(w http.ResponseWriter, r *http.Request) {
	if c.current(r, false) != nil {
		http.Redirect(w, r, consolePath+"status", http.StatusSeeOther)
		return
	}
	c.showLogin(w, http.StatusOK, "")
}

func (c *console) showLogin(w http.ResponseWriter, code int, msg string) {
	tok := randomHex(32)
	http.SetCookie(w, c.cookie(c.loginCookie, tok, 3600))
	c.render(w, code, consolePage{Title: "Log in", Page: "login", CSRF: tok, Flash: msg, NodeID: c.a.cfg.Node.ID}, loginBody)
}

// loginPost checks the form's token against the log-in cookie, then the password; a wrong
// one counts towards the user's lock-out, the lock-out itself is an event.
func (c *console) loginPost(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	ck, err := r.Cookie(c.loginCookie)
	if err != nil || !tokenEqual(r.PostFormValue("csrf"), ck.Value) {
		c.showLogin(w, http.StatusForbidden, "The form expired or its CSRF token is missing: try again.")
		return
	}
	user, now := r.PostFormValue("user"), c.a.now()
	if len(user) > 64 {
		// No such user (the users file allows 64 bytes); not counted, so that the lock-out
		// table holds short names only.
		c.showLogin(w, http.StatusUnauthorized, "Wrong user name or password.")
		return
	}
	switch c.auth.login(user, r.PostFormValue("password"), now) {
	case loginOK:
		s := c.auth.open(user, now)
		http.SetCookie(w, c.cookie(c.loginCookie, "", -1))
		http.SetCookie(w, c.cookie(c.sessionCookie, s.id, 0))
		c.a.record(Event{Priority: PriorityInfo, Application: AppConsole, Name: "login",
			Description: fmt.Sprintf("console user %q logged in from %s", user, r.RemoteAddr)})
		http.Redirect(w, r, consolePath+"status", http.StatusSeeOther)
	case loginLockedNow:
		c.a.record(Event{Priority: PriorityWarning, Application: AppConsole, Name: "locked out",
			Description: fmt.Sprintf("console user %.64q locked out for %s after %d wrong passwords (last from %s)",
				user, c.auth.window, c.auth.attempts, r.RemoteAddr)})
		c.showLogin(w, http.StatusUnauthorized, "Wrong user name or password.")
	case loginLocked:
		until, _ := c.auth.lockedUntil(user, now)
		c.showLogin(w, http.StatusTooManyRequests, fmt.Sprintf("Too many wrong passwords: this user is locked out until %s.", until.Local().Format("15:04:05")))
	default:
		c.showLogin(w, http.StatusUnauthorized, "Wrong user name or password.")
	}
}

func (c *console) logout(w http.ResponseWriter, r *http.Request, s *consoleSession) {
	c.auth.close(s.id)
	http.SetCookie(w, c.cookie(c.sessionCookie, "", -1))
	http.Redirect(w, r, consolePath+"login", http.StatusSeeOther)
}

func (c *console) settingsPage(w http.ResponseWriter, r *http.Request, s *consoleSession) {
	v := c.settingsView()
	c.showLive(w, r, s, "settings", "Redundancy Settings", nil, func(w *htmlw.Writer, p *consolePage) { settingsBody(w, p, v) })
}

func (c *console) statusPage(w http.ResponseWriter, r *http.Request, s *consoleSession) {
	c.showLive(w, r, s, "status", "Status", nil, statusBody)
}

func (c *console) eventsPage(w http.ResponseWriter, r *http.Request, s *consoleSession) {
	f := parseEventFilter(r.URL.Query())
	c.showLive(w, r, s, "events", "System Events", f.values(), func(w *htmlw.Writer, p *consolePage) { eventsBody(w, p, f) })
}

// showLive renders a page whose live part (liveView) is updated by the stream. The part is
// rendered once, put in the page, and its hash given to the stream, which then sends nothing
// until the part changes: a form the operator is filling in is not replaced by the same
// content the moment the page has loaded. query is the rest of the stream's query (the
// Events page's filter).
func (c *console) showLive(w http.ResponseWriter, r *http.Request, s *consoleSession, name, title string, query url.Values,
	body func(*htmlw.Writer, *consolePage)) {
	live, err := c.liveView(name, r, s)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	q := url.Values{"view": {name}, "have": {liveHash(live)}}
	for k, v := range query {
		q[k] = v
	}
	p := c.sessionPage(s, name, title)
	p.Live, p.LiveHTML = htmlw.Path(consolePath+"live").Query(q), live
	c.render(w, http.StatusOK, p, body)
}

func (c *console) swapPage(w http.ResponseWriter, r *http.Request, s *consoleSession) {
	v := c.settingsView()
	c.render(w, http.StatusOK, c.sessionPage(s, "swap", "Swap Master Device"), func(w *htmlw.Writer, p *consolePage) { swapBody(w, p, v) })
}

// modePost sets the group's Backup mode, as PUT /api/v1/backup-mode does.
func (c *console) modePost(w http.ResponseWriter, r *http.Request, s *consoleSession) {
	m, err := ParseBackupMode(r.PostFormValue("mode"))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	res := c.a.SetBackupMode(r.Context(), m, fmt.Sprintf("console user %s on %s", s.user, c.a.cfg.Node.ID))
	c.done(w, r, s, fmt.Sprintf("Backup Device Mode set to %s; the other node: %s.", res.Mode, res.Peer), consolePath+"settings")
}

// swapPost runs the swap, as POST /api/v1/swap does; the confirmation page sends confirm.
func (c *console) swapPost(w http.ResponseWriter, r *http.Request, s *consoleSession) {
	if r.PostFormValue("confirm") != "yes" {
		http.Redirect(w, r, consolePath+"swap", http.StatusSeeOther)
		return
	}
	_ = http.NewResponseController(w).SetWriteDeadline(time.Time{})
	res, err := c.a.Swap(r.Context(), SwapRequest{})
	msg := fmt.Sprintf("Swap done in %.1f ms: %s is Master.", res.TotalMS, orUnknown(res.NewMaster))
	if err != nil {
		msg = fmt.Sprintf("Swap %s: %s", res.State, orUnknown(res.Error))
	}
	c.done(w, r, s, msg, consolePath+"settings")
}

// readPost marks events read, as POST /api/v1/events/read does: one (seq) or all up to one
// (up_to); then back to the list with its filter.
func (c *console) readPost(w http.ResponseWriter, r *http.Request, s *consoleSession) {
	var seqs []uint64
	var upTo uint64
	if v := r.PostFormValue("seq"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			http.Error(w, "seq: not an event number", http.StatusBadRequest)
			return
		}
		seqs = []uint64{n}
	} else if n, err := strconv.ParseUint(r.PostFormValue("up_to"), 10, 64); err == nil && n > 0 {
		upTo = n
	} else {
		http.Error(w, "name the events: seq or up_to", http.StatusBadRequest)
		return
	}
	f := parseEventFilter(r.PostForm)
	if upTo > 0 && f != (eventFilter{}) {
		// "Mark all read" on a filtered list marks what the filter shows, not the rest.
		for _, e := range c.a.events.log.all() {
			if e.Seq <= upTo && f.match(e) {
				seqs = append(seqs, e.Seq)
			}
		}
		if upTo = 0; len(seqs) == 0 {
			c.done(w, r, s, "0 marked as read.", consolePath+"events?"+f.query())
			return
		}
	}
	n := c.a.events.markRead(seqs, upTo)
	c.done(w, r, s, fmt.Sprintf("%d marked as read.", n), consolePath+"events?"+f.query())
}

// eventFilter is the Events page's filter: one priority (0 any) and one application ("" any).
type eventFilter struct {
	Priority    Priority
	Application string
}

func parseEventFilter(q url.Values) eventFilter {
	var f eventFilter
	if n, err := strconv.Atoi(q.Get("priority")); err == nil && n >= int(PriorityInfo) && n <= int(PriorityWarning) {
		f.Priority = Priority(n)
	}
	for _, app := range notifyApplications {
		if q.Get("application") == app {
			f.Application = app
		}
	}
	return f
}

// values is the filter as a URL's query.
func (f eventFilter) values() url.Values {
	q := url.Values{}
	if f.Priority != 0 {
		q.Set("priority", strconv.Itoa(int(f.Priority)))
	}
	if f.Application != "" {
		q.Set("application", f.Application)
	}
	return q
}

// query encodes the filter for a URL.
func (f eventFilter) query() string { return f.values().Encode() }

func (f eventFilter) match(e Event) bool {
	return (f.Priority == 0 || e.Priority == f.Priority) && (f.Application == "" || e.Application == f.Application)
}

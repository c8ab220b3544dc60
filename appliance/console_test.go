package appliance

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"html"
	"io"
	"maps"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redundantd/redundantd/appliance/internal/htmlw"
	"github.com/redundantd/redundantd/berofos"
	pbxsync "github.com/redundantd/redundantd/sync"
	"github.com/redundantd/redundantd/testlab/tlscert"
	"github.com/redundantd/redundantd/vrrp"
	"golang.org/x/crypto/bcrypt"
	xhtml "golang.org/x/net/html"
)

// writeUsersFile writes a users file with the given user:password pairs (bcrypt at its
// lowest cost, to keep the tests fast) and returns its path.
func writeUsersFile(t *testing.T, dir string, pairs ...string) string {
	t.Helper()
	var b strings.Builder
	b.WriteString("# console operators\n\n")
	for i := 0; i < len(pairs); i += 2 {
		h, err := bcrypt.GenerateFromPassword([]byte(pairs[i+1]), bcrypt.MinCost)
		if err != nil {
			t.Fatal(err)
		}
		b.WriteString(pairs[i] + ":" + string(h) + "\n")
	}
	path := filepath.Join(dir, "console.users")
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// enableConsole turns the console on in cfg with user admin / password "s3cret".
func enableConsole(t *testing.T, cfg *Config) {
	t.Helper()
	cfg.Console = ConsoleConfig{Enabled: true, UsersFile: writeUsersFile(t, cfg.Node.StateDir, "admin", "s3cret"),
		LockoutAttempts: DefaultLockoutAttempts, LockoutWindow: DefaultLockoutWindow, SessionIdle: DefaultSessionIdle}
}

func TestConsoleConfig(t *testing.T) {
	dir := t.TempDir()
	users := writeUsersFile(t, dir, "admin", "pw")
	cases := []struct {
		name, toml, want string
	}{
		{"off by default", "", ""},
		{"enabled", "[console]\nenabled = true\nusers_file = \"" + users + "\"\n", ""},
		{"no users file", "[console]\nenabled = true\n", "console.enabled (line 10): needs console.users_file"},
		{"relative users file", "[console]\nusers_file = \"users\"\n", "must be an absolute path"},
		{"cert without key", "[console]\ntls_cert = \"/etc/c.pem\"\n", "console.tls_cert (line 10): needs console.tls_key"},
		{"key without cert", "[console]\ntls_key = \"/etc/c.key\"\n", "console.tls_key (line 10): needs console.tls_cert"},
		{"lockout range", "[console]\nlockout_attempts = 0\n", "console.lockout_attempts"},
		{"window range", "[console]\nlockout_window = \"1s\"\n", "console.lockout_window"},
		{"unknown key", "[console]\nport = 1\n", "console.port"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg, err := ParseConfig([]byte(minimal + c.toml))
			if c.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				if cfg.Console.LockoutAttempts != 5 || cfg.Console.LockoutWindow != 15*time.Minute || cfg.Console.SessionIdle != 30*time.Minute {
					t.Errorf("defaults: %+v", cfg.Console)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want it to name %q", err, c.want)
			}
		})
	}
}

// TestConsoleUsersFile: LoadConfig reads the users file and the certificate as the daemon
// does, so -check refuses what the daemon would.
func TestConsoleUsersFile(t *testing.T) {
	dir := t.TempDir()
	good := writeUsersFile(t, dir, "admin", "pw", "ops", "pw2")
	u, err := loadConsoleUsers(good)
	if err != nil || len(u) != 2 || u["ops"] == nil {
		t.Fatalf("users %v, %v", u, err)
	}
	h, _ := bcrypt.GenerateFromPassword([]byte("x"), bcrypt.MinCost)
	bad := map[string]string{
		"no hash":    "admin\n",
		"not bcrypt": "admin:{SHA}abc\n",
		"twice":      "admin:" + string(h) + "\nadmin:" + string(h) + "\n",
		"empty":      "# nobody\n",
		"space":      "ad min:" + string(h) + "\n",
	}
	for name, body := range bad {
		p := filepath.Join(dir, strings.ReplaceAll(name, " ", "_"))
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := loadConsoleUsers(p); !errors.Is(err, ErrUsersFile) {
			t.Errorf("%s: %v, want ErrUsersFile", name, err)
		}
	}
	open := filepath.Join(dir, "open")
	if err := os.WriteFile(open, []byte("admin:"+string(h)+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := loadConsoleUsers(open); err == nil || !strings.Contains(err.Error(), "open to others") {
		t.Errorf("a world-readable users file: %v", err)
	}
	conf := filepath.Join(dir, "r.toml")
	body := minimal + "[console]\nenabled = true\nusers_file = \"" + open + "\"\ntls_cert = \"" + filepath.Join(dir, "none.pem") +
		"\"\ntls_key = \"" + filepath.Join(dir, "none.key") + "\"\n"
	if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = LoadConfig(conf)
	for _, want := range []string{"console.users_file", "open to others", "console.tls_cert", "none.pem"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("LoadConfig: %v, want %q", err, want)
		}
	}
}

// TestConsoleLockout: five wrong passwords within the window lock the user out (the fifth
// reports it once, for the event); while locked the right password is refused unchecked;
// after the window it works again. Unknown names are counted the same way.
func TestConsoleLockout(t *testing.T) {
	users, err := parseConsoleUsers("users", []byte("admin:"+mustHash(t, "right")+"\n"))
	if err != nil {
		t.Fatal(err)
	}
	auth := newConsoleAuth(users, ConsoleConfig{LockoutAttempts: 5, LockoutWindow: 15 * time.Minute, SessionIdle: time.Minute})
	t0 := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	for i := range 4 {
		if got := auth.login("admin", "wrong", t0.Add(time.Duration(i)*time.Minute)); got != loginWrong {
			t.Fatalf("attempt %d: %v, want wrong", i+1, got)
		}
	}
	if got := auth.login("admin", "wrong", t0.Add(4*time.Minute)); got != loginLockedNow {
		t.Fatalf("fifth wrong password: %v, want locked now", got)
	}
	if got := auth.login("admin", "right", t0.Add(10*time.Minute)); got != loginLocked {
		t.Fatalf("right password while locked: %v, want locked", got)
	}
	if until, ok := auth.lockedUntil("admin", t0.Add(14*time.Minute)); !ok || !until.Equal(t0.Add(15*time.Minute)) {
		t.Fatalf("locked until %v %t, want %v", until, ok, t0.Add(15*time.Minute))
	}
	if got := auth.login("admin", "right", t0.Add(15*time.Minute)); got != loginOK {
		t.Fatalf("after the window: %v, want ok", got)
	}
	// A success clears the count: four more wrong ones do not lock.
	for i := range 4 {
		if got := auth.login("admin", "wrong", t0.Add(16*time.Minute+time.Duration(i))); got != loginWrong {
			t.Fatalf("after a success, attempt %d: %v", i+1, got)
		}
	}
	for i := range 5 {
		got := auth.login("nobody", "x", t0)
		if want := map[bool]loginResult{true: loginLockedNow, false: loginWrong}[i == 4]; got != want {
			t.Fatalf("unknown user, attempt %d: %v, want %v", i+1, got, want)
		}
	}
	// Sessions end after the idle time; a touch keeps one alive.
	s := auth.open("admin", t0)
	if auth.session(s.id, t0.Add(50*time.Second), true) == nil || auth.session(s.id, t0.Add(100*time.Second), false) == nil {
		t.Fatal("a session in use ended")
	}
	if auth.session(s.id, t0.Add(111*time.Second), false) != nil {
		t.Fatal("an idle session is still open")
	}
}

func mustHash(t *testing.T, pw string) string {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return string(h)
}

// consoleClient is a browser without script: a cookie jar, no redirects followed.
type consoleClient struct {
	t    *testing.T
	base string
	c    *http.Client
}

func newConsoleClient(t *testing.T, base string, tr http.RoundTripper) *consoleClient {
	jar, _ := cookiejar.New(nil)
	return &consoleClient{t: t, base: base, c: &http.Client{Jar: jar, Transport: tr, Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

var csrfField = regexp.MustCompile(`name="csrf" value="([0-9a-f]+)"`)

// do sends a request and returns the status, the Location and the body.
func (cc *consoleClient) do(method, path string, form url.Values) (int, string, string) {
	cc.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, cc.base+path, body)
	if err != nil {
		cc.t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := cc.c.Do(req)
	if err != nil {
		cc.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("Location"), string(b)
}

// csrf loads path and returns the CSRF token of its first form.
func (cc *consoleClient) csrf(path string) string {
	cc.t.Helper()
	code, _, body := cc.do("GET", path, nil)
	m := csrfField.FindStringSubmatch(body)
	if code != http.StatusOK || m == nil {
		cc.t.Fatalf("GET %s: %d, no CSRF token in\n%s", path, code, body)
	}
	return m[1]
}

func (cc *consoleClient) login(user, pw string) int {
	cc.t.Helper()
	tok := cc.csrf("/console/login")
	code, _, _ := cc.do("POST", "/console/login", url.Values{"csrf": {tok}, "user": {user}, "password": {pw}})
	return code
}

// runConsoleNode runs a node (fake VRRP engine, Master) with the console on a loopback
// listener and returns it with its base URL. Log-in attempts are not rate-limited unless
// beforeRun puts the limit back.
func runConsoleNode(t *testing.T, edit func(*Config), beforeRun ...func(*Appliance)) (*Appliance, string) {
	t.Helper()
	cfg := testConfig(t)
	enableConsole(t, cfg)
	if edit != nil {
		edit(cfg)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fr := &fakeRouter{ran: make(chan struct{}), status: vrrp.Status{State: vrrp.StateMaster, Priority: 100}}
	a, err := New(cfg, Options{APIListener: ln, DialVRRP: func(vrrp.Config) (Router, error) { return fr, nil }})
	if err != nil {
		t.Fatal(err)
	}
	a.console.logins = newTokenBucket(100, 100) // the tests guess faster than a person may
	for _, f := range beforeRun {
		f(a)
	}
	runUntilCleanup(t, a, fr)
	scheme := "http://"
	if cfg.Console.TLS() {
		scheme = "https://"
	}
	return a, scheme + ln.Addr().String()
}

// TestConsoleRefusals: a wrong password, a form without the CSRF token and a page without
// a session are refused and change nothing; the lock-out is an event; the bearer-token API
// is unchanged beside the console.
func TestConsoleRefusals(t *testing.T) {
	a, base := runConsoleNode(t, nil)
	cc := newConsoleClient(t, base, nil)

	if code, loc, _ := cc.do("GET", "/console/status", nil); code != http.StatusSeeOther || loc != "/console/login" {
		t.Fatalf("a page without a session: %d -> %q, want the log-in", code, loc)
	}
	if code, loc, _ := cc.do("GET", "/", nil); code != http.StatusSeeOther || loc != "/console/" {
		t.Fatalf("/: %d -> %q", code, loc)
	}
	if code := cc.login("admin", "wrong"); code != http.StatusUnauthorized {
		t.Fatalf("a wrong password: %d, want 401", code)
	}
	if code, _, body := cc.do("POST", "/console/login", url.Values{"user": {"admin"}, "password": {"s3cret"}}); code != http.StatusForbidden || !strings.Contains(body, "CSRF") {
		t.Fatalf("log-in without the form's token: %d", code)
	}
	if code := cc.login("admin", "s3cret"); code != http.StatusSeeOther {
		t.Fatalf("log-in: %d, want 303", code)
	}
	var session *http.Cookie
	u, _ := url.Parse(base + "/console/")
	for _, ck := range cc.c.Jar.Cookies(u) {
		if ck.Name == "redundantd_session_pbx-a" {
			session = ck
		}
	}
	if session == nil {
		t.Fatal("no session cookie")
	}
	// The form without its token, and with another session's token, changes nothing.
	if code, _, _ := cc.do("POST", "/console/mode", url.Values{"mode": {"passive"}}); code != http.StatusForbidden {
		t.Fatalf("mode without the CSRF token: %d, want 403", code)
	}
	other := newConsoleClient(t, base, nil)
	if code := other.login("admin", "s3cret"); code != http.StatusSeeOther {
		t.Fatalf("second log-in: %d", code)
	}
	if code, _, _ := cc.do("POST", "/console/mode", url.Values{"mode": {"passive"}, "csrf": {other.csrf("/console/settings")}}); code != http.StatusForbidden {
		t.Fatalf("mode with another session's token: %d, want 403", code)
	}
	if a.mode().Mode != ModeActive {
		t.Fatalf("a refused form changed the mode to %s", a.mode().Mode)
	}
	// With the token it works, and says who did it.
	code, loc, _ := cc.do("POST", "/console/mode", url.Values{"mode": {"passive"}, "csrf": {cc.csrf("/console/settings")}})
	if code != http.StatusSeeOther || loc != "/console/settings" || a.mode().Mode != ModePassive || !strings.Contains(a.mode().SetBy, "console user admin") {
		t.Fatalf("mode: %d -> %q, mode %+v", code, loc, a.mode())
	}
	if _, _, body := cc.do("GET", "/console/settings", nil); !strings.Contains(body, "Backup Device Mode set to passive") {
		t.Fatalf("no result on the settings page:\n%s", body)
	}
	// After logging out, the cookie opens nothing.
	if code, _, _ := cc.do("POST", "/console/logout", url.Values{"csrf": {cc.csrf("/console/status")}}); code != http.StatusSeeOther {
		t.Fatalf("logout: %d", code)
	}
	replay := newConsoleClient(t, base, nil)
	replay.c.Jar.SetCookies(u, []*http.Cookie{{Name: "redundantd_session_pbx-a", Value: session.Value}})
	if code, loc, _ := replay.do("GET", "/console/status", nil); code != http.StatusSeeOther || loc != "/console/login" {
		t.Fatalf("the old session after logout: %d %q", code, loc)
	}

	// Lock-out: five wrong passwords (the good log-ins cleared the first), one event.
	for range 5 {
		cc.login("admin", "wrong")
	}
	if code := cc.login("admin", "s3cret"); code != http.StatusTooManyRequests {
		t.Fatalf("the right password while locked out: %d, want 429", code)
	}
	n := 0
	for _, e := range a.events.log.all() {
		if e.Application == AppConsole && e.Name == "locked out" {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("%d lock-out events, want 1: %v", n, eventNames(a))
	}

	// The JSON API is as before: reads open on loopback, changes need the token.
	api := &http.Client{Timeout: 5 * time.Second}
	resp, err := api.Get(base + "/api/v1/status")
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /api/v1/status: %v %v", resp, err)
	}
	resp.Body.Close()
	req, _ := http.NewRequest("PUT", base+"/api/v1/backup-mode", strings.NewReader(`{"mode":"active"}`))
	req.Header.Set("Content-Type", "application/json")
	// The browser's session cookie is no substitute for the token.
	req.AddCookie(&http.Cookie{Name: "redundantd_session_pbx-a", Value: other.sessionID(base)})
	if resp, err := api.Do(req); err != nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("PUT backup-mode with a console cookie and no token: %v %v", resp, err)
	}
	req, _ = http.NewRequest("PUT", base+"/api/v1/backup-mode", strings.NewReader(`{"mode":"active"}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+a.guard.token)
	if resp, err := api.Do(req); err != nil || resp.StatusCode != http.StatusOK || a.mode().Mode != ModeActive {
		t.Fatalf("PUT backup-mode with the token: %v %v", resp, err)
	}
	// A rebinding host name is refused by the console as by the API.
	req, _ = http.NewRequest("GET", base+"/console/login", nil)
	req.Host = "evil.example"
	if resp, err := api.Do(req); err != nil || resp.StatusCode != http.StatusMisdirectedRequest {
		t.Fatalf("console with Host evil.example: %v %v", resp, err)
	}
}

func (cc *consoleClient) sessionID(base string) string {
	u, _ := url.Parse(base + "/console/")
	for _, ck := range cc.c.Jar.Cookies(u) {
		if ck.Name == "redundantd_session_pbx-a" {
			return ck.Value
		}
	}
	return ""
}

// TestConsoleEventsAndLive: the Events page filters and marks read through the event store,
// and the live stream sends the status again when it changes.
func TestConsoleEventsAndLive(t *testing.T) {
	a, base := runConsoleNode(t, nil)
	cc := newConsoleClient(t, base, nil)
	if code := cc.login("admin", "s3cret"); code != http.StatusSeeOther {
		t.Fatalf("log-in: %d", code)
	}
	e := a.record(Event{Priority: PriorityWarning, Application: AppBerofos, Name: "unreachable", Description: "fos1: unreachable <script>"})
	_, _, body := cc.do("GET", "/console/events?priority=3&application=BEROFOS", nil)
	if !strings.Contains(body, "fos1: unreachable &lt;script&gt;") || strings.Contains(body, "node pbx-a started") {
		t.Fatalf("filtered events page:\n%s", body)
	}
	tok := csrfField.FindStringSubmatch(body)[1]
	form := url.Values{"csrf": {tok}, "seq": {itoa(e.Seq)}, "priority": {"3"}, "application": {"BEROFOS"}}
	if code, loc, _ := cc.do("POST", "/console/events/read", form); code != http.StatusSeeOther || loc != "/console/events?application=BEROFOS&priority=3" {
		t.Fatalf("mark read: %d -> %q", code, loc)
	}
	for _, ev := range a.events.log.all() {
		if (ev.Seq == e.Seq) != (ev.Status == StatusRead) {
			t.Fatalf("event %d is %s after marking %d", ev.Seq, ev.Status, e.Seq)
		}
	}
	// "Mark all read" on a filtered list marks only what it shows.
	a.record(Event{Priority: PriorityWarning, Application: AppBerofos, Name: "unreachable", Description: "fos2"})
	last := a.record(Event{Priority: PriorityInfo, Application: AppSync, Name: "run", Description: "run"})
	form = url.Values{"csrf": {tok}, "up_to": {itoa(last.Seq)}, "application": {"BEROFOS"}}
	if code, _, _ := cc.do("POST", "/console/events/read", form); code != http.StatusSeeOther {
		t.Fatalf("mark all: %d", code)
	}
	for _, ev := range a.events.log.all() {
		if want := ev.Application == AppBerofos; (ev.Status == StatusRead) != want {
			t.Errorf("event %d %s is %s", ev.Seq, ev.Application, ev.Status)
		}
	}

	// The live stream of the page: nothing while the page is up to date, then the view
	// again when an event changes it.
	_, _, page := cc.do("GET", "/console/events", nil)
	m := regexp.MustCompile(`data-live="([^"]+)"`).FindStringSubmatch(page)
	if m == nil || !strings.Contains(m[1], "have=") {
		t.Fatalf("no live URL with the part's hash in the page:\n%s", page)
	}
	req, _ := http.NewRequest("GET", base+html.UnescapeString(m[1]), nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := cc.c.Do(req.WithContext(ctx))
	if err != nil || resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("live: %v %v", resp, err)
	}
	defer resp.Body.Close()
	events := make(chan string, 8)
	go readSSE(resp.Body, events)
	a.record(Event{Priority: PriorityNotice, Application: AppRedundancy, Name: "mode changed", Description: "a new event for the live view"})
	select {
	case ev := <-events:
		if !strings.Contains(ev, "a new event for the live view") {
			t.Fatalf("live update:\n%s", ev)
		}
	case <-ctx.Done():
		t.Fatal("no live update after a new event")
	}
}

func itoa(n uint64) string { return strconv.FormatUint(n, 10) }

// TestConsoleLiveShown: the stream's first update is decided against what the page shows:
// the last update's id when the browser reconnects (Last-Event-ID), else the hash it was
// loaded with.
func TestConsoleLiveShown(t *testing.T) {
	tests := []struct {
		name, have, lastID, want string
	}{
		{"first connection", "h0", "", "h0"},
		{"reconnect after an update", "h0", "h1", "h1"},
		{"reconnect, no have", "", "h1", "h1"},
		{"neither", "", "", ""},
	}
	for _, tt := range tests {
		r := httptest.NewRequest("GET", "/console/live?view=status&have="+tt.have, nil)
		if tt.lastID != "" {
			r.Header.Set("Last-Event-ID", tt.lastID)
		}
		if got := liveShown(r); got != tt.want {
			t.Errorf("%s: liveShown = %q, want %q", tt.name, got, tt.want)
		}
	}
	var b bytes.Buffer
	writeSSE(&b, "status", "abc", "<p>one</p>\n<p>two</p>")
	if want := "event: status\nid: abc\ndata: <p>one</p>\ndata: <p>two</p>\n\n"; b.String() != want {
		t.Errorf("writeSSE wrote %q, want %q", b.String(), want)
	}
}

// readSSE sends the data of each server-sent event read from r.
func readSSE(r io.Reader, out chan<- string) {
	defer close(out)
	buf := make([]byte, 64<<10)
	var acc, data strings.Builder
	for {
		n, err := r.Read(buf)
		acc.Write(buf[:n])
		for {
			s := acc.String()
			i := strings.Index(s, "\n\n")
			if i < 0 {
				break
			}
			for line := range strings.Lines(s[:i+1]) {
				if d, ok := strings.CutPrefix(strings.TrimRight(line, "\n"), "data: "); ok {
					data.WriteString(d + "\n")
				}
			}
			if data.Len() > 0 {
				out <- data.String()
				data.Reset()
			}
			acc.Reset()
			acc.WriteString(s[i+2:])
		}
		if err != nil {
			return
		}
	}
}

// TestConsoleTLS: with a certificate the API listener serves HTTPS, the session cookie is
// Secure, and the bearer-token API works over it.
func TestConsoleTLS(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile, pool := tlscert.Files(t, dir)
	a, base := runConsoleNode(t, func(c *Config) { c.Console.TLSCert, c.Console.TLSKey = certFile, keyFile })
	// The client offers HTTP/2 as a browser does; the node answers in HTTP/1.1 (http1Only).
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: true}
	defer tr.CloseIdleConnections()
	cc := newConsoleClient(t, base, tr)
	tok := cc.csrf("/console/login")
	req, _ := http.NewRequest("POST", base+"/console/login", strings.NewReader(url.Values{"csrf": {tok}, "user": {"admin"}, "password": {"s3cret"}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := cc.c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	var ck *http.Cookie
	for _, c := range resp.Cookies() {
		if c.Name == "redundantd_session_pbx-a" {
			ck = c
		}
	}
	if ck == nil || !ck.Secure || !ck.HttpOnly || ck.SameSite != http.SameSiteStrictMode || ck.Path != "/console/" {
		t.Fatalf("session cookie %+v, want Secure HttpOnly SameSite=Strict", ck)
	}
	req, _ = http.NewRequest("GET", base+"/api/v1/status", nil)
	req.Header.Set("Authorization", "Bearer "+a.guard.token)
	resp, err = (&http.Client{Transport: tr}).Do(req)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("status over TLS: %v %v", resp, err)
	}
	resp.Body.Close()
	if resp.Proto != "HTTP/1.1" || resp.TLS == nil || resp.TLS.NegotiatedProtocol == "h2" {
		t.Errorf("answered in %s (ALPN %q), want HTTP/1.1", resp.Proto, resp.TLS.NegotiatedProtocol)
	}
	// Plain HTTP on the TLS port gets nothing but the server's 400.
	resp, err = http.Get("http://" + strings.TrimPrefix(base, "https://") + "/api/v1/status")
	if err == nil {
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Fatalf("plain HTTP to the TLS listener: %d", resp.StatusCode)
		}
	}
}

func TestBerofosLEDs(t *testing.T) {
	states := func(ps []ledPort) string {
		var b strings.Builder
		for _, p := range ps {
			b.WriteString(p.Name + "=" + p.State + " ")
		}
		return strings.TrimSpace(b.String())
	}
	cases := []struct {
		d      berofos.DeviceStatus
		bypass bool
		want   string
	}{
		{berofos.DeviceStatus{Reachable: true, Mode: 0}, false, "A=on B=off C=off D=on"},
		{berofos.DeviceStatus{Reachable: true, Mode: 1}, false, "A=on B=on C=off D=off"},
		{berofos.DeviceStatus{Reachable: true, Mode: 1}, true, "A=on B=on C=on D=on"},
		{berofos.DeviceStatus{Reachable: false, Mode: 1}, false, "A=unknown B=unknown C=unknown D=unknown"},
		{berofos.DeviceStatus{Reachable: true, Mode: -1}, false, "A=unknown B=unknown C=unknown D=unknown"},
	}
	for _, c := range cases {
		if got := states(berofosLEDs(c.d, c.bypass)); got != c.want {
			t.Errorf("mode %d reachable %t bypass %t: %s, want %s", c.d.Mode, c.d.Reachable, c.bypass, got, c.want)
		}
	}
}

// TestConsoleViewsRenderEveryPart renders the parts the two-node tests do not reach (a
// sync run, a failed berofos watchdog, an unhealthy peer, a failed swap).
func TestConsoleViewsRenderEveryPart(t *testing.T) {
	at := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	v := statusView{
		Nodes: []nodeCard{{Title: "This node", Known: true, NodeID: "pbx-a", Role: "master", LastSync: &PeerSyncResult{At: at, OK: true},
			Services: []PeerServiceState{{Name: "asterisk", State: "running"}}},
			{Title: "Peer", Known: true, NodeID: "pbx-b", Role: "backup", Unhealthy: "sip check failed", LastSync: &PeerSyncResult{At: at, Error: "disk full"}}},
		Berofos: []berofosCard{{DeviceStatus: berofos.DeviceStatus{Name: "fos1", Reachable: true, Mode: 1, Desired: berofos.LinesToMe, InPlace: true, Watchdog: 2},
			Ports: berofosLEDs(berofos.DeviceStatus{Reachable: true, Mode: 1}, false), Fail: true}},
		Sync: &pbxsync.Status{Runs: 3, LastRun: pbxsync.RunStats{Started: at, Duration: 1500 * time.Millisecond, Files: 7, BytesSent: 4096}, LastSuccess: at},
		Swap: &SwapResult{State: "failed", Started: at, Error: "the peer is initialize, not Backup"},
	}
	var buf htmlw.Writer
	statusLive(&buf, v)
	for _, want := range []string{"lines to-me <span class=\"ok\">in place</span>", `class="port fail-on"`, "7 changed", "4096 sent",
		"unhealthy: sip check failed", "disk full", "asterisk: running", "failed Tue Dec  1", "the peer is initialize, not Backup"} {
		if !strings.Contains(buf.HTML().String(), want) {
			t.Errorf("status view lacks %q:\n%s", want, buf.HTML())
		}
	}
	buf = htmlw.Writer{}
	sv := settingsView{Role: "backup", BackupMode: "active", SwapNote: "this node is backup, not Master; ask the Master",
		Swap: &SwapResult{State: "done", NewMaster: "pbx-b", Timeline: []SwapStep{{Step: "resign", AtMS: 18, TookMS: 1.5}}}}
	settingsLive(&buf, "tok", sv)
	for _, want := range []string{"Not available: this node is backup, not Master; ask the Master.", "<td>resign</td><td>18.0 ms</td>", "(from the configuration)"} {
		if !strings.Contains(buf.HTML().String(), want) {
			t.Errorf("settings view lacks %q:\n%s", want, buf.HTML())
		}
	}
}

// TestConsoleBackupAccessConfig: the access port is on (7777) with the console and a known
// peer, off with 0, and refused where it would collide or has nowhere to go.
func TestConsoleBackupAccessConfig(t *testing.T) {
	dir := t.TempDir()
	users := writeUsersFile(t, dir, "admin", "pw")
	on := "[console]\nenabled = true\nusers_file = \"" + users + "\"\n"
	peer := "peer = \"192.0.2.12\"\n"
	cases := []struct {
		name, toml             string
		listen, target, errSub string
	}{
		{"default with a peer", peer + on, "127.0.0.1:7777", "192.0.2.12:7400", ""},
		{"console off", peer + "[console]\n", "", "192.0.2.12:7400", ""},
		{"no peer", on, "", "", ""},
		{"turned off", peer + on + "backup_access_port = 0\n", "", "192.0.2.12:7400", ""},
		{"own target", on + "backup_access_port = 8080\nbackup_console = \"pbx-b.example.net:7400\"\n", "127.0.0.1:8080", "pbx-b.example.net:7400", ""},
		{"the API's port", peer + on + "backup_access_port = 7400\n", "", "", "console.backup_access_port (line 13): 7400 is the port of api.listen"},
		{"nowhere to go", on + "backup_access_port = 7777\n", "", "", "needs the other node's console"},
		{"out of range", peer + on + "backup_access_port = 70000\n", "", "", "out of range 0..65535"},
		{"bad target", on + "backup_console = \"pbx-b\"\n", "", "", "console.backup_console"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg, err := ParseConfig([]byte(minimal + c.toml))
			if c.errSub != "" {
				if err == nil || !strings.Contains(err.Error(), c.errSub) {
					t.Fatalf("error %v, want %q", err, c.errSub)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			listen := cfg.Console.backupAccessListen(cfg.API.Listen)
			if listen != c.listen || cfg.Console.BackupConsole != c.target {
				t.Errorf("listen %q target %q, want %q %q", listen, cfg.Console.BackupConsole, c.listen, c.target)
			}
		})
	}
}

// TestConsoleLoginRate: log-in attempts beyond the burst are refused (429) before the
// password is compared or counted, and the JSON API's changes are not limited by them.
func TestConsoleLoginRate(t *testing.T) {
	// A clock that stands still: the bucket does not refill however slow the machine is.
	at := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	a, base := runConsoleNode(t, nil, func(a *Appliance) {
		a.now = func() time.Time { return at }
		a.console.logins = newTokenBucket(consoleLoginRate, consoleLoginBurst)
	})
	cc := newConsoleClient(t, base, nil)
	codes := map[int]int{}
	for range consoleLoginBurst + 3 {
		codes[cc.login("nobody", "guess")]++
	}
	if want := map[int]int{http.StatusUnauthorized: consoleLoginBurst, http.StatusTooManyRequests: 3}; !maps.Equal(codes, want) {
		t.Fatalf("answers %v, want %v", codes, want)
	}
	if _, locked := a.console.auth.lockedUntil("nobody", at); !locked {
		t.Fatal("five wrong passwords did not lock the name out")
	}
	req, _ := http.NewRequest("PUT", base+"/api/v1/backup-mode", strings.NewReader(`{"mode":"passive"}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+a.guard.token)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("the API after a burst of log-ins: %v %v", resp, err)
	}
}

// TestConsoleEscapesHostileData: an event whose application, name and description are
// markup, on a node whose ID is markup, is shown as that text on the Events page, in its
// live stream and on the Status page, and adds no element or attribute to them: a real HTML
// parser finds the one script of the layout, no event handler, and the cells' text equal to
// what was recorded.
func TestConsoleEscapesHostileData(t *testing.T) {
	const id = `pbx-"><script>alert(1)</script>&amp;é`
	a, base := runConsoleNode(t, func(c *Config) { c.Node.ID = id })
	cc := newConsoleClient(t, base, nil)
	if code := cc.login("admin", "s3cret"); code != http.StatusSeeOther {
		t.Fatalf("log-in: %d", code)
	}
	e := a.record(Event{Priority: PriorityWarning, Application: `APP' onmouseover='alert(1)`, Name: `<img src=x onerror=alert(1)>`,
		Description: `"></td></tr></table><script>alert(document.cookie)</script> & ünïcode — ●`})
	check := func(what, doc string) *xhtml.Node { t.Helper(); return parseConsolePage(t, what, doc) }
	cells := func(root *xhtml.Node) []string { return rowCells(root, e.Seq) }
	want := []string{"New", consoleTime(e.Time), "3", e.Application, e.Name, e.Description}

	_, _, body := cc.do("GET", "/console/events", nil)
	root := check("events page", body)
	if got := cells(root); len(got) < len(want) || !slices.Equal(got[:len(want)], want) {
		t.Errorf("the event's row reads %q, want %q", got, want)
	}
	if !strings.Contains(body, "&lt;script&gt;alert(document.cookie)&lt;/script&gt; &amp; ünïcode") {
		t.Errorf("the description is not escaped as text:\n%s", body)
	}
	for n := range root.Descendants() {
		if n.Data == "title" && textOf(n) != "System Events · "+id+" · redundantd" || attr(n, "class") == "node" && textOf(n) != id {
			t.Errorf("the node's ID reads %q in <%s>", textOf(n), n.Data)
		}
	}

	// The live stream sends the same part (no "have": the page is out of date at once).
	req, _ := http.NewRequest("GET", base+"/console/live?view=events", nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := cc.c.Do(req.WithContext(ctx))
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("live: %v %v", resp, err)
	}
	defer resp.Body.Close()
	events := make(chan string, 8)
	go readSSE(resp.Body, events)
	select {
	case part := <-events:
		if got := cells(check("live part", part)); len(got) < len(want) || !slices.Equal(got[:len(want)], want) {
			t.Errorf("the live part's row reads %q, want %q", got, want)
		}
	case <-ctx.Done():
		t.Fatal("no live part")
	}

	_, _, body = cc.do("GET", "/console/status", nil)
	found := false
	for n := range check("status page", body).Descendants() {
		found = found || attr(n, "data-node") == id
	}
	if !found {
		t.Errorf("no node card with data-node %q:\n%s", id, body)
	}
}

// parseConsolePage parses a page or a live part as a browser does and fails the test for
// any element or attribute that could run script: a <script> other than the layout's, an
// <img>, an event handler, a style.
func parseConsolePage(t *testing.T, what, doc string) *xhtml.Node {
	t.Helper()
	root, err := xhtml.Parse(strings.NewReader(doc))
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	for n := range root.Descendants() {
		if n.Type != xhtml.ElementNode {
			continue
		}
		if n.Data == "script" && attr(n, "src") != "/console/static/console.js" || n.Data == "img" {
			t.Errorf("%s: a <%s> element of the data:\n%s", what, n.Data, doc)
		}
		for _, at := range n.Attr {
			if strings.HasPrefix(at.Key, "on") || at.Key == "style" {
				t.Errorf("%s: attribute %s=%q on <%s>", what, at.Key, at.Val, n.Data)
			}
		}
	}
	return root
}

// rowCells is the text of each cell of the Events table's row of event seq.
func rowCells(root *xhtml.Node, seq uint64) []string {
	for n := range root.Descendants() {
		if n.Data == "tr" && attr(n, "data-seq") == itoa(seq) {
			var out []string
			for td := range n.ChildNodes() {
				if td.Data == "td" {
					out = append(out, textOf(td))
				}
			}
			return out
		}
	}
	return nil
}

func attr(n *xhtml.Node, key string) string {
	for _, a := range n.Attr {
		if a.Key == key {
			return a.Val
		}
	}
	return ""
}

// textOf is the text of n and its descendants, as textContent is.
func textOf(n *xhtml.Node) string {
	var b strings.Builder
	for d := range n.Descendants() {
		if d.Type == xhtml.TextNode {
			b.WriteString(d.Data)
		}
	}
	return b.String()
}

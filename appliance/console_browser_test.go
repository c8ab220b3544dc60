package appliance

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/redundantd/redundantd/testlab/syncbuf"
)

// The console in a real browser: Debian's headless Chromium driven over the DevTools
// protocol (chromedp), against two real nodes (twoNodes: real VRRP engines on an in-memory
// segment, the real peer link). REDUNDANTD_CONSOLE_SCREENSHOTS=DIR saves a screenshot of each
// page there (docs/console/ holds the committed ones); a failing test saves what each tab
// showed in its artifact directory (go test -artifacts keeps it).

// findChromium returns the browser to drive, or "" when none is installed.
func findChromium() string {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// browser starts a headless Chromium for the test and returns its first tab.
func browser(t *testing.T) context.Context {
	t.Helper()
	path := findChromium()
	if path == "" {
		t.Skip("no chromium installed (apt-get install chromium): the console's browser test needs one")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(path),
		chromedp.WindowSize(1100, 900), chromedp.UserDataDir(t.TempDir()))
	if os.Geteuid() == 0 {
		opts = append(opts, chromedp.NoSandbox) // Chromium refuses to run as root with its sandbox
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	// Bound the whole walk: a page that never shows what the test waits for fails the test
	// instead of hanging it.
	ctx, cancelTimeout := context.WithTimeout(ctx, 3*time.Minute)
	t.Cleanup(func() { cancelTimeout(); cancel(); cancelAlloc() })
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start %s: %v", path, err)
	}
	return ctx
}

// tab is one browser tab and what the test calls it.
type tab struct {
	t    *testing.T
	ctx  context.Context
	name string
}

// The helpers work through JavaScript on the live document, never through node IDs found
// earlier: the live stream replaces parts of a page at any moment, and an ID found before
// an update is gone after it. Each is retried until it succeeds or 30 s pass, since a page
// that is loading has no document to evaluate in for a moment.

// eval evaluates js until it returns true (it may fail while a page loads).
func (b *tab) eval(what, js string) {
	b.t.Helper()
	if err := b.try(js); err != nil {
		b.t.Fatalf("%s: %s (%s): %v", b.name, what, js, err)
	}
}

// try evaluates js until it returns true, or until 30 s have passed (then the error). A
// promise is awaited.
func (b *tab) try(js string) error {
	deadline := time.Now().Add(30 * time.Second)
	ctx, cancel := context.WithDeadline(b.ctx, deadline) // also for a promise that never settles
	defer cancel()
	for {
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](js, chromedp.EvalAwaitPromise))
		if err == nil && ok {
			return nil
		}
		if ctx.Err() != nil || time.Now().After(deadline) {
			if err == nil {
				err = errors.New("still false")
			}
			return err
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// until waits for a JavaScript predicate to hold.
func (b *tab) until(what, js string) {
	b.t.Helper()
	b.eval("waiting for "+what, "Boolean("+js+")")
}

// open loads url and waits for sel to be on it.
func (b *tab) open(url, sel string) {
	b.t.Helper()
	if err := chromedp.Do(b.ctx, chromedp.Navigate(url)); err != nil {
		b.t.Fatalf("%s: open %s: %v", b.name, url, err)
	}
	b.until(sel+" on "+url, fmt.Sprintf("document.querySelector(%q)", sel))
}

// set sets the value of the form field sel and fires its change event, as a choice made by
// hand does.
func (b *tab) set(sel, value string) {
	b.t.Helper()
	b.eval("set "+sel, fmt.Sprintf(`(() => { const e = document.querySelector(%q); if (!e) return false; e.value = %q;
		e.dispatchEvent(new Event("change", {bubbles: true})); return e.value === %q })()`, sel, value, value))
}

// click clicks sel. The click runs after the evaluation has answered, so that a click that
// loads another page is neither lost nor repeated.
func (b *tab) click(sel string) {
	b.t.Helper()
	b.eval("click "+sel, fmt.Sprintf("(() => { const e = document.querySelector(%q); if (!e) return false; setTimeout(() => e.click(), 0); return true })()", sel))
}

// text returns the text of sel, once it is there.
func (b *tab) text(sel string) string {
	b.t.Helper()
	q := fmt.Sprintf("document.querySelector(%q)", sel)
	b.until(sel, q)
	s, err := chromedp.Run(b.ctx, chromedp.Evaluate[string](q+".textContent"))
	if err != nil {
		b.t.Fatalf("%s: text of %s: %v", b.name, sel, err)
	}
	return strings.TrimSpace(s)
}

// drawn is the JavaScript for "the page has loaded and been drawn": the load event has
// passed (the stylesheet is in) and two animation frames have run since, so the page has been
// laid out and painted. The element a step waits for is in the document as soon as the parser
// reaches it, while the render-blocking stylesheet may still be loading; Chromium then has no
// layout to capture and refuses the screenshot ("Cannot take screenshot with 0 width").
const drawn = `document.readyState === "complete" &&
	new Promise(ok => requestAnimationFrame(() => requestAnimationFrame(() => ok(true))))`

// shot saves a screenshot of the page as name.png in dir (quality 100 is png), once the
// page is drawn.
func (b *tab) shot(dir, name string) error {
	waited := b.try(drawn)
	png, err := chromedp.Run(b.ctx, chromedp.FullScreenshot(100))
	if err == nil {
		err = os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644)
	}
	if err != nil {
		if waited != nil {
			err = fmt.Errorf("%w (the page was not drawn: %w)", err, waited)
		}
		return fmt.Errorf("%s: screenshot %s: %w", b.name, name, err)
	}
	return nil
}

// docShot saves a screenshot for the documentation when REDUNDANTD_CONSOLE_SCREENSHOTS is set.
func (b *tab) docShot(name string) {
	b.t.Helper()
	if dir := os.Getenv("REDUNDANTD_CONSOLE_SCREENSHOTS"); dir != "" {
		if err := b.shot(dir, name); err != nil {
			b.t.Error(err)
		}
	}
}

// onFailure saves each tab's screen in the test's artifact directory if the test failed.
func onFailure(t *testing.T, tabs ...*tab) {
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		dir := t.ArtifactDir()
		for _, b := range tabs {
			if b.ctx.Err() == nil {
				if err := b.shot(dir, "failed-"+b.name); err != nil {
					t.Log(err)
				}
			}
		}
		t.Logf("screenshots of the failure: %s (kept with go test -artifacts)", dir)
	})
}

// nodeLogs keeps what the nodes log, for a failing test to show: a refusal in the console
// (a swap refused, say) has its cause in the nodes' logs, not on the page.
type nodeLogs struct{ syncbuf.Buffer }

// logger is node's logger, into l.
func (l *nodeLogs) logger(node string) *slog.Logger {
	return slog.New(slog.NewTextHandler(l, nil)).With("node", node)
}

// onFailureLog shows the nodes' logs if the test failed.
func (l *nodeLogs) onFailureLog(t *testing.T) {
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("the nodes' logs (the test failed at %s):\n%s", time.Now().Format(time.RFC3339Nano), l.String())
		}
	})
}

// role is the JavaScript for "the role the Status page shows for node".
func role(node string) string {
	return fmt.Sprintf(`(document.querySelector('[data-node="%s"] .role') || {}).textContent`, node)
}

func portOf(ln net.Listener) string {
	_, p, _ := net.SplitHostPort(ln.Addr().String())
	return p
}

// leds is the JavaScript for "the berofos ports show these states" (port, state, ...).
func leds(ps ...string) string {
	var conds []string
	for i := 0; i < len(ps); i += 2 {
		conds = append(conds, fmt.Sprintf(`(document.querySelector('[data-port="%s"]') || {dataset: {}}).dataset.state === "%s"`, ps[i], ps[i+1]))
	}
	return strings.Join(conds, " && ")
}

// TestConsoleInBrowser walks the operator's workflow in Chromium: a wrong password is
// refused, the log-in shows both nodes, the Backup is switched to Passive on the Master's
// Redundancy Settings page, the swap is confirmed there while a second tab on the Status
// page follows the roles and the berofos LEDs live (no reload), an event is read and
// marked, and the new Backup's console is reached through the new Master's access port.
func TestConsoleInBrowser(t *testing.T) {
	ctx := browser(t)
	// One simulated berofos between them: node 0 is wired to port B (relay mode 1 gives it
	// the lines), node 1 to port D (mode 0).
	sim, conf := startSim(t, map[string]string{"mode": "0", "modedef": "0"})
	// And each with its Backup Device GUI Access Port.
	var logs nodeLogs
	logs.onFailureLog(t)
	var apiLns, accessLns [2]net.Listener
	for i := range 2 {
		apiLns[i], accessLns[i] = listenLoopback(t), listenLoopback(t)
	}
	_, n := twoNodesWith(t, func(i int, cfg *Config) {
		enableConsole(t, cfg)
		// The peer link at its default interval (1 s: down after 3 s without a status), not
		// twoNodes' 100 ms. With Chromium drawing pages beside the two nodes on a loaded
		// 2-core machine, a 10 ms sleep in this test has been seen to wake 315 ms late: longer
		// than the 300 ms after which a 100 ms link is down. The swap is then refused, rightly
		// ("no Backup present: the peer link is down"), and the test failed.
		cfg.Peer.Interval = time.Second
		cfg.Berofos = BerofosConfig{Enabled: true, Conf: conf, LinesMode: 1 - i, Timeout: time.Second,
			PollInterval: 200 * time.Millisecond, KickInterval: time.Second}
		cfg.Console.BackupAccessPort = accessLns[i].Addr().(*net.TCPAddr).Port
		cfg.Console.BackupConsole = apiLns[1-i].Addr().String()
	}, func(i int, o *Options) {
		o.APIListener, o.AccessListener = apiLns[i], accessLns[i]
		o.Logger = logs.logger(fmt.Sprintf("pbx-%c", 'a'+i))
	})
	base := n[0].api + "/console/"
	b := &tab{t: t, ctx: ctx, name: "main"}
	liveCtx, cancelLive := chromedp.NewContext(ctx)
	defer cancelLive()
	live := &tab{t: t, ctx: liveCtx, name: "live"}
	onFailure(t, b, live)

	// A wrong password is refused.
	b.open(base+"login", "#user")
	b.set("#user", "admin")
	b.set("#password", "wrong")
	b.click("#login")
	if got := b.text("#flash"); got != "Wrong user name or password." {
		t.Fatalf("after a wrong password: %q", got)
	}
	b.docShot("login")

	// The right one shows both nodes and the berofos.
	b.set("#user", "admin")
	b.set("#password", "s3cret")
	b.click("#login")
	b.until("the Master and its Backup", role("pbx-a")+` === "master" && `+role("pbx-b")+` === "backup"`)
	b.until("the lines on port B (A-B connected)", leds("A", "on", "B", "on", "C", "off", "D", "off"))
	if id := b.text(`[data-node="pbx-b"] .mono`); id != PeerID(18, Version, "pbx-b") {
		t.Errorf("the peer's ID is %q", id)
	}

	// Backup Device Mode: Passive, saved on the Master, confirmed by the Backup.
	b.open(base+"settings", "#mode")
	b.set("#mode", "passive")
	b.click("#save-mode")
	if got := b.text("#flash"); !strings.Contains(got, "set to passive") || !strings.Contains(got, "confirmed") {
		t.Fatalf("after saving the mode: %q", got)
	}
	if m := n[1].a.mode().Mode; m != ModePassive || !n[1].router.Status().Passive {
		t.Fatalf("the Backup's mode is %s (engine passive %t), want passive", m, n[1].router.Status().Passive)
	}
	b.docShot("settings")

	// A second tab follows the Status page live.
	live.open(base+"status", `[data-node="pbx-b"]`)
	live.until("the live stream", `document.getElementById("live-state").className === "live-state on"`)
	live.eval("mark the page", `(window.notReloaded = true)`)
	live.until("passive on the status page", `document.querySelector('[data-node="pbx-b"] .mode').textContent === "passive"`)

	// Swap Master Device, with its confirmation.
	b.click("#swap")
	b.until("the confirmation", `document.querySelector("#confirm-swap")`)
	b.docShot("swap")
	b.click("#confirm-swap")
	if got := b.text("#flash"); !strings.Contains(got, "Swap done") || !strings.Contains(got, "pbx-b is Master") {
		t.Fatalf("after the swap: %q", got)
	}
	live.until("the swapped roles, live", role("pbx-a")+` === "backup" && `+role("pbx-b")+` === "master" && window.notReloaded === true`)
	live.until("the lines on port D (A-D connected), live", leds("A", "on", "B", "off", "C", "off", "D", "on"))
	if n[0].a.role() != "backup" || n[1].a.role() != "master" || sim.Mode() != 0 {
		t.Fatalf("after the swap: roles %s, %s, relay mode %d", n[0].a.role(), n[1].a.role(), sim.Mode())
	}
	live.docShot("status")

	// Events: the seed's table; filter, then mark one read.
	b.open(base+"events", "table.events")
	b.set("#application", "REDUNDANCY")
	b.set("#priority", "2")
	b.click("#filter")
	// Only the filtered page has the choice as the selected attribute.
	b.until("the filtered page", `document.querySelector('#priority option[value="2"][selected]') && document.querySelector("tr.status-new")`)
	b.until("only REDUNDANCY events of priority 2", `[...document.querySelectorAll("tbody tr[data-seq]")].every(r => r.classList.contains("prio-2") && r.children[3].textContent === "REDUNDANCY")`)
	b.docShot("events")
	seqText, err := chromedp.Run(b.ctx, chromedp.Evaluate[string](`document.querySelector("tr.status-new").dataset.seq`))
	if err != nil {
		t.Fatal(err)
	}
	seq, _ := strconv.ParseUint(seqText, 10, 64)
	b.click(`tr[data-seq="` + seqText + `"] .mark-read`)
	b.until("the event shown read", `document.getElementById("flash") && document.querySelector('tr[data-seq="`+seqText+`"] td.status').textContent === "Read"`)
	for _, e := range n[0].a.events.log.all() {
		if e.Seq == seq && e.Status != StatusRead {
			t.Fatalf("event %d is %s in the store", seq, e.Status)
		}
	}
	if loc, _ := chromedp.Run(b.ctx, chromedp.Location()); !strings.Contains(loc, "application=REDUNDANCY") {
		t.Errorf("the filter was lost after marking: %s", loc)
	}

	// The new Backup's console through the new Master's access port: pbx-a's Status page at
	// pbx-b's port (this browser is logged in to pbx-a already).
	b.open("http://"+accessLns[1].Addr().String()+"/console/status", `[data-node="pbx-b"]`)
	b.until("pbx-a's console through pbx-b's access port", `document.querySelector(".brand .node").textContent === "pbx-a" && `+
		role("pbx-a")+` === "backup" && location.port === "`+portOf(accessLns[1])+`"`)
	// pbx-b's console at the same address: its own log-in and cookie; pbx-a's session stays.
	b.open(n[1].api+"/console/login", "#user")
	b.set("#user", "admin")
	b.set("#password", "s3cret")
	b.click("#login")
	b.until("pbx-b's status", `document.querySelector(".brand .node").textContent === "pbx-b" && `+role("pbx-b")+` === "master"`)
	b.open(base+"status", `[data-node="pbx-b"]`)
	if loc, _ := chromedp.Run(b.ctx, chromedp.Location()); !strings.HasSuffix(loc, "/console/status") {
		t.Fatalf("logging in to pbx-b ended the session on pbx-a: at %s", loc)
	}

	// The same page on a phone: one column, no horizontal scrolling.
	if err := chromedp.Do(b.ctx, chromedp.EmulateViewport(390, 844, chromedp.EmulateScale(2))); err != nil {
		t.Fatal(err)
	}
	b.open(base+"status", `[data-node="pbx-b"]`)
	b.until("no horizontal scrolling on a phone", `document.documentElement.scrollWidth <= window.innerWidth`)
	b.docShot("status-phone")
}

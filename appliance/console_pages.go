package appliance

import (
	"strconv"

	"github.com/redundantd/redundantd/appliance/internal/htmlw"
	pbxsync "github.com/redundantd/redundantd/sync"
)

// The console's pages as Go functions writing through htmlw, which escapes every text and
// attribute value by construction (markup is constant, values are escaped, URLs are our own
// paths). They were html/template files until the template engine's run-time method lookup
// turned out to cost 2.7 MB of binary and about 1.5 MiB of RSS with the console off
// (docs/benchmarks.md, "Where redundantd's RSS goes"). Each page is the layout (consoleHead,
// consoleFoot) around its body; a page with live content renders its live part with the
// function the live stream uses (settingsLive, statusLive, eventsLive).

// consoleHead writes the document up to the page's body: the head, the header with the
// navigation and the log-out form, the title and the flash message.
func consoleHead(w *htmlw.Writer, p *consolePage) {
	w.M("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n" +
		"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>")
	w.T(p.Title)
	w.M(" · ")
	w.T(p.NodeID)
	w.M(" · redundantd</title>\n<link rel=\"stylesheet\" href=\"/console/static/console.css\">\n" +
		"<script src=\"/console/static/console.js\" defer></script>\n</head>\n")
	if p.Live.IsZero() {
		w.M("<body>")
	} else {
		w.Open("body", htmlw.U("data-live", p.Live))
	}
	w.M("\n<header>\n<div class=\"brand\">redundantd <span class=\"node\">")
	w.T(p.NodeID)
	w.M("</span></div>\n")
	if p.User != "" {
		w.M("<nav>\n<a href=\"/console/settings\"")
		here(w, p.Page == "settings" || p.Page == "swap")
		w.M(">Redundancy Settings</a>\n<a href=\"/console/status\"")
		here(w, p.Page == "status")
		w.M(">Status</a>\n<a href=\"/console/events\"")
		here(w, p.Page == "events")
		w.M(">Events</a>\n</nav>\n<form class=\"logout\" method=\"post\" action=\"/console/logout\">")
		hidden(w, "csrf", p.CSRF)
		w.M("<span class=\"user\">")
		w.T(p.User)
		w.M("</span> <button type=\"submit\">Log out</button></form>")
	}
	w.M("\n</header>\n<main>\n<h1>")
	w.T(p.Title)
	if !p.Live.IsZero() {
		w.M(" <span id=\"live-state\" class=\"live-state\" title=\"live updates\">●</span>")
	}
	w.M("</h1>\n")
	if p.Flash != "" {
		w.M("<p class=\"flash\" id=\"flash\">")
		w.T(p.Flash)
		w.M("</p>")
	}
	w.M("\n")
}

func consoleFoot(w *htmlw.Writer) { w.M("</main>\n</body>\n</html>\n") }

// here marks the navigation entry of the page shown.
func here(w *htmlw.Writer, on bool) {
	if on {
		w.M(" class=\"here\"")
	}
}

// hidden writes a hidden form field.
func hidden(w *htmlw.Writer, name, value string) {
	w.Open("input", htmlw.A("type", "hidden"), htmlw.A("name", name), htmlw.A("value", value))
}

// liveDiv writes the page's live part in the element the script replaces.
func liveDiv(w *htmlw.Writer, live htmlw.HTML) {
	w.M("<div id=\"live\">")
	w.Fragment(live)
	w.M("</div>\n")
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func consoleMS(f float64) string { return strconv.FormatFloat(f, 'f', 1, 64) + " ms" }

func loginBody(w *htmlw.Writer, p *consolePage) {
	w.M("\n<form class=\"card login\" method=\"post\" action=\"/console/login\">\n")
	hidden(w, "csrf", p.CSRF)
	w.M("\n<label>User <input name=\"user\" id=\"user\" autocomplete=\"username\" required autofocus></label>\n" +
		"<label>Password <input name=\"password\" id=\"password\" type=\"password\" autocomplete=\"current-password\" required></label>\n" +
		"<button type=\"submit\" id=\"login\">Log in</button>\n</form>\n")
}

// settingsBody is the Redundancy Settings page: the configuration, then the live part.
func settingsBody(w *htmlw.Writer, p *consolePage, v settingsView) {
	w.M("\n<section class=\"card\">\n<h2>Configuration</h2>\n" +
		"<p class=\"hint\">From the configuration file; change it there and reload (SIGHUP).</p>\n" +
		"<dl class=\"settings\">\n<dt>Enable Redundancy</dt><dd>")
	w.T(yesNo(v.Enabled))
	w.M("</dd>\n<dt>Redundant Group ID</dt><dd>")
	w.T(strconv.Itoa(int(v.GroupID)))
	w.M("</dd>\n<dt>Virtual IP Address / Subnet Mask</dt><dd>")
	for _, ip := range v.VirtualIPs {
		w.Elem("span", ip, htmlw.A("class", "chip"))
	}
	if len(v.VirtualIPs) == 0 {
		w.M("none")
	}
	w.M("</dd>\n<dt>Redundant Device Address</dt><dd>")
	w.T(cmpOr(v.PeerAddress, "not configured (multicast)"))
	w.M("</dd>\n<dt>Synchronization Interval</dt><dd>")
	w.T(v.SyncInterval)
	w.M("</dd>\n<dt>Backup Device GUI Access Port</dt><dd>")
	w.T(v.AccessPort)
	w.M("</dd>\n<dt>Priority</dt><dd>")
	w.T(strconv.Itoa(int(v.Priority)))
	w.M("</dd>\n<dt>Advertisement Interval</dt><dd>")
	w.T(v.AdvertInterval.String())
	w.M("</dd>\n<dt>Preempt</dt><dd>")
	w.T(yesNo(v.Preempt))
	w.M("</dd>\n</dl>\n</section>\n")
	liveDiv(w, p.LiveHTML)
}

func cmpOr(s, otherwise string) string {
	if s == "" {
		return otherwise
	}
	return s
}

// settingsLive is the Redundancy Settings page's live part: the current mode, the Backup
// mode switch, the swap button and the last swap.
func settingsLive(w *htmlw.Writer, csrf string, v settingsView) {
	w.M("\n<section class=\"card\">\n<p class=\"info\" id=\"current-mode\">Info: Current mode: Device is in <b>")
	w.T(v.Role)
	w.M("</b> mode</p>\n<form method=\"post\" action=\"/console/mode\" class=\"row\">\n")
	hidden(w, "csrf", csrf)
	w.M("\n<label for=\"mode\">Backup Device Mode</label>\n<select name=\"mode\" id=\"mode\">\n<option value=\"active\"")
	selected(w, v.BackupMode == "active")
	w.M(">Active</option>\n<option value=\"passive\"")
	selected(w, v.BackupMode == "passive")
	w.M(">Passive</option>\n</select>\n<button type=\"submit\" id=\"save-mode\">Save</button>\n</form>\n" +
		"<p class=\"hint\" id=\"mode-now\">The group's Backup mode is <b>")
	w.T(v.BackupMode)
	w.M("</b>")
	if !v.ModeSetAt.IsZero() {
		w.M(", set ")
		w.T(consoleTime(v.ModeSetAt))
		w.M(" by ")
		w.T(v.ModeSetBy)
	} else {
		w.M(" (from the configuration)")
	}
	w.M(".</p>\n</section>\n<section class=\"card\">\n<h2>Swap Master Device</h2>\n")
	if v.CanSwap {
		w.M("<p>This node hands the Master role to <b>")
		w.T(v.PeerNode)
		w.M("</b>: its services stop, a final sync runs, and the Backup takes over.</p>\n" +
			"<form method=\"get\" action=\"/console/swap\"><button type=\"submit\" id=\"swap\" class=\"danger\">Swap Master Device</button></form>\n")
	} else {
		w.M("<p class=\"hint\" id=\"swap-note\">Not available: ")
		w.T(v.SwapNote)
		w.M(".</p>\n<button type=\"button\" disabled>Swap Master Device</button>")
	}
	w.M("\n")
	if s := v.Swap; s != nil {
		w.M("<p class=\"hint\" id=\"last-swap\">Last swap: <b>")
		w.T(s.State)
		w.M("</b> ")
		swapSummary(w, s, ", ")
		w.M("</p>\n<table class=\"timeline\"><tr><th>step</th><th>at</th><th>took</th><th>detail</th></tr>\n")
		for _, st := range s.Timeline {
			w.M("<tr>")
			w.Elem("td", st.Step)
			w.Elem("td", consoleMS(st.AtMS))
			w.Elem("td", consoleMS(st.TookMS))
			w.Elem("td", st.Detail)
			w.M("</tr>")
		}
		w.M("\n</table>")
	}
	w.M("\n</section>\n")
}

// swapSummary writes "STARTED[SEP NEW became Master] in MS[: ERROR]".
func swapSummary(w *htmlw.Writer, s *SwapResult, sep string) {
	w.T(consoleTime(s.Started))
	if s.NewMaster != "" {
		w.T(sep + s.NewMaster + " became Master")
	}
	w.M(" in ")
	w.T(consoleMS(s.TotalMS))
	if s.Error != "" {
		w.M(": ")
		w.T(s.Error)
	}
}

func selected(w *htmlw.Writer, on bool) {
	if on {
		w.M(" selected")
	}
}

func swapBody(w *htmlw.Writer, p *consolePage, v settingsView) {
	w.M("\n<section class=\"card confirm\">\n")
	if v.CanSwap {
		w.M("\n<p>Swap the Master role from <b>")
		w.T(p.NodeID)
		w.M("</b> to <b>")
		w.T(v.PeerNode)
		w.M("</b>?</p>\n<p class=\"hint\">The PBX services stop on this node, a final sync runs, this node resigns and ")
		w.T(v.PeerNode)
		w.M(" takes over (also when it is Passive). This node continues as a Backup in the group's mode (")
		w.T(v.BackupMode)
		w.M("). Calls in progress are cut.</p>\n<form method=\"post\" action=\"/console/swap\" class=\"row\">\n")
		hidden(w, "csrf", p.CSRF)
		w.M("\n<input type=\"hidden\" name=\"confirm\" value=\"yes\">\n" +
			"<button type=\"submit\" id=\"confirm-swap\" class=\"danger\">Yes, swap now</button>\n" +
			"<a href=\"/console/settings\" class=\"button\">Cancel</a>\n</form>\n")
	} else {
		w.M("<p>A swap is not possible now: ")
		w.T(v.SwapNote)
		w.M(".</p><p><a href=\"/console/settings\" class=\"button\">Back</a></p>")
	}
	w.M("\n</section>\n")
}

func statusBody(w *htmlw.Writer, p *consolePage) {
	w.M("\n")
	liveDiv(w, p.LiveHTML)
}

// statusLive is the Status page's live part: both nodes, the berofos, the last sync run and
// the last swap.
func statusLive(w *htmlw.Writer, v statusView) {
	w.M("\n<div class=\"nodes\">\n")
	for _, n := range v.Nodes {
		nodeHTML(w, n)
	}
	w.M("\n</div>\n")
	if len(v.Berofos) > 0 {
		w.M("<section class=\"card\">\n<h2>berofos</h2>\n<div class=\"devices\">\n")
		for _, d := range v.Berofos {
			berofosHTML(w, d)
		}
		w.M("\n</div>\n</section>")
	}
	w.M("\n")
	if v.Sync != nil {
		syncHTML(w, v.Sync)
	}
	w.M("\n")
	if s := v.Swap; s != nil {
		w.M("<section class=\"card\"><h2>Last swap</h2><p id=\"status-swap\">")
		w.T(s.State)
		w.M(" ")
		swapSummary(w, s, ": ")
		w.M("</p></section>")
	}
	w.M("\n")
}

func nodeHTML(w *htmlw.Writer, n nodeCard) {
	w.Open("section", htmlw.A("class", "card node role-"+cmpOr(n.Role, "unknown")), htmlw.A("data-node", n.NodeID))
	w.M("\n<h2>")
	w.T(n.Title)
	if n.NodeID != "" {
		w.T(": " + n.NodeID)
	}
	w.M("</h2>\n")
	if n.Note != "" {
		w.Elem("p", n.Note, htmlw.A("class", "warn"))
	}
	w.M("\n")
	if n.Known {
		w.M("<dl>\n<dt>ID</dt><dd class=\"mono\">")
		w.T(n.ID)
		w.M("</dd>\n<dt>Role</dt>")
		w.Elem("dd", n.Role, htmlw.A("class", "role"), htmlw.A("data-role", n.Role))
		w.M("\n<dt>Backup mode</dt><dd class=\"mode\">")
		w.T(n.Mode)
		w.M("</dd>\n<dt>Version</dt><dd>")
		w.T(n.Version)
		w.M("</dd>\n<dt>Last sync</dt><dd>")
		if ls := n.LastSync; ls != nil {
			w.T(consoleTime(ls.At) + " ")
			if ls.OK {
				w.M("<span class=\"ok\">ok</span>")
			} else {
				w.M("<span class=\"bad\">failed</span> ")
				w.T(ls.Error)
			}
		} else {
			w.M("none yet")
		}
		w.M("</dd>\n<dt>Services</dt><dd>")
		for _, s := range n.Services {
			w.Elem("span", s.Name+": "+s.State, htmlw.A("class", "chip svc-"+s.State))
		}
		if len(n.Services) == 0 {
			w.M("none configured")
		}
		if n.Unhealthy != "" {
			w.M("<br>")
			w.Elem("span", "unhealthy: "+n.Unhealthy, htmlw.A("class", "bad"))
		}
		w.M("</dd>\n</dl>")
	}
	w.M("\n</section>")
}

// berofosHTML draws one device's front panel: four LEDs per port, the Fail LED, its state.
func berofosHTML(w *htmlw.Writer, d berofosCard) {
	w.M("<div class=\"device\">\n<div class=\"device-name\">")
	w.T(d.Name)
	w.M(" ")
	w.Elem("span", d.Host, htmlw.A("class", "hint"))
	w.M("</div>\n")
	w.Open("div", htmlw.A("class", "front"), htmlw.A("aria-label", "relay mode "+strconv.Itoa(d.Mode)))
	w.M("\n")
	for _, p := range d.Ports {
		w.Open("div", htmlw.A("class", "port port-"+p.State), htmlw.A("data-port", p.Name), htmlw.A("data-state", p.State))
		w.M("<span class=\"led\"></span><span class=\"led\"></span><span class=\"led\"></span><span class=\"led\"></span>")
		w.Elem("span", p.Name, htmlw.A("class", "port-name"))
		w.M("</div>")
	}
	if d.Fail {
		w.M("\n<div class=\"port fail-on\">")
	} else {
		w.M("\n<div class=\"port fail-off\">")
	}
	w.M("<span class=\"led fail\"></span><span class=\"port-name\">Fail</span></div>\n</div>\n<p class=\"hint\">")
	if d.Reachable {
		conn := "A-B"
		if d.Mode == 0 {
			conn = "A-D"
		}
		w.Tf("mode %d (%s)", d.Mode, conn)
		if d.Desired.String() == "unknown" {
			w.M(", left to the Master")
		} else {
			w.T(", lines " + d.Desired.String())
			if d.InPlace {
				w.M(" <span class=\"ok\">in place</span>")
			}
		}
	} else {
		w.M("<span class=\"bad\">unreachable</span>")
	}
	if d.LastError != "" {
		w.T("; last error: " + d.LastError)
	}
	w.M("</p>\n</div>")
}

// syncHTML is the last sync run.
func syncHTML(w *htmlw.Writer, s *pbxsync.Status) {
	w.M("<section class=\"card\">\n<h2>Last sync run</h2>\n")
	if s.Runs > 0 {
		r := s.LastRun
		w.M("<dl>\n<dt>Started</dt><dd>")
		w.T(consoleTime(r.Started) + " (" + r.Duration.String() + ")")
		w.M("</dd>\n<dt>Files</dt><dd>")
		w.Tf("%d changed (%d whole, %d delta, %d local), %d deleted", r.Files, r.FilesWhole, r.FilesDelta, r.FilesLocal, r.Deleted)
		w.M("</dd>\n<dt>Bytes</dt><dd>")
		w.Tf("%d sent, %d received", r.BytesSent, r.BytesRecv)
		w.M("</dd>\n<dt>Result</dt><dd>")
		if s.LastError != "" {
			w.Elem("span", s.LastError, htmlw.A("class", "bad"))
		} else {
			w.M("<span class=\"ok\">ok</span>")
		}
		w.Tf("; last success %s; %d runs", consoleTime(s.LastSuccess), s.Runs)
		w.M("</dd>\n</dl>")
	} else {
		w.M("<p class=\"hint\">No run yet (role ")
		w.T(s.Role.String())
		w.M(").</p>")
	}
	w.M("\n</section>")
}

// eventsBody is the System Events page: the filter, then the live part with the table.
func eventsBody(w *htmlw.Writer, p *consolePage, f eventFilter) {
	w.M("\n<form method=\"get\" action=\"/console/events\" class=\"row filter\">\n" +
		"<label>Priority <select name=\"priority\" id=\"priority\">\n<option value=\"\">all</option>\n<option value=\"1\"")
	selected(w, f.Priority == PriorityInfo)
	w.M(">1 info</option>\n<option value=\"2\"")
	selected(w, f.Priority == PriorityNotice)
	w.M(">2 notice</option>\n<option value=\"3\"")
	selected(w, f.Priority == PriorityWarning)
	w.M(">3 warning</option>\n</select></label>\n" +
		"<label>Application <select name=\"application\" id=\"application\">\n<option value=\"\">all</option>\n")
	for _, app := range notifyApplications {
		w.Open("option", htmlw.Bool("selected", app == f.Application))
		w.T(app)
		w.M("</option>")
	}
	w.M("\n</select></label>\n<button type=\"submit\" id=\"filter\">Filter</button>\n</form>\n")
	liveDiv(w, p.LiveHTML)
}

// filterFields writes the filter as hidden fields, so that a form keeps the list's filter.
func filterFields(w *htmlw.Writer, f eventFilter) {
	if f.Priority != 0 {
		hidden(w, "priority", strconv.Itoa(int(f.Priority)))
	}
	if f.Application != "" {
		hidden(w, "application", f.Application)
	}
}

// eventsLive is the System Events page's live part: the count of new events, "mark all
// read" and the table of the seed's Figure 10.
func eventsLive(w *htmlw.Writer, v eventsView) {
	w.M("\n<div class=\"row\">\n")
	w.Elem("span", strconv.Itoa(v.Unread)+" new", htmlw.A("class", "hint"), htmlw.A("id", "unread"))
	w.M("\n")
	if v.UpTo != 0 {
		w.M("<form method=\"post\" action=\"/console/events/read\">\n")
		hidden(w, "csrf", v.CSRF)
		hidden(w, "up_to", strconv.FormatUint(v.UpTo, 10))
		w.M("\n")
		filterFields(w, v.Filter)
		w.M("\n<button type=\"submit\" id=\"read-all\">Mark all as read</button></form>")
	}
	w.M("\n</div>\n<div class=\"table-wrap\">\n<table class=\"events\">\n" +
		"<thead><tr><th>Status</th><th>Timestamp</th><th>Priority</th><th>Application</th><th>Name</th><th>Description</th><th></th></tr></thead>\n<tbody>\n")
	for _, e := range v.Rows {
		eventRow(w, e, v.CSRF, v.Filter)
	}
	if len(v.Rows) == 0 {
		w.M("<tr><td colspan=\"7\" class=\"hint\">No events")
		if v.Filter != (eventFilter{}) {
			w.M(" match the filter")
		}
		w.M(".</td></tr>")
	}
	w.M("\n</tbody>\n</table>\n</div>\n")
	if v.More > 0 {
		w.Elem("p", strconv.Itoa(v.More)+" older events not shown.", htmlw.A("class", "hint"))
	}
	w.M("\n")
}

// eventRow is one event, with its "mark read" form while it is new.
func eventRow(w *htmlw.Writer, e Event, csrf string, f eventFilter) {
	prio, seq := strconv.Itoa(int(e.Priority)), strconv.FormatUint(e.Seq, 10)
	w.Open("tr", htmlw.A("class", "prio-"+prio+" status-"+e.Status), htmlw.A("data-seq", seq))
	w.M("\n<td class=\"status\" data-label=\"Status\">")
	if e.Status == StatusNew {
		w.M("New")
	} else {
		w.M("Read")
	}
	w.M("</td>\n<td data-label=\"Timestamp\">")
	w.T(consoleTime(e.Time))
	w.M("</td>\n<td data-label=\"Priority\">")
	w.T(prio)
	w.M("</td>\n<td data-label=\"Application\">")
	w.T(e.Application)
	w.M("</td>\n<td data-label=\"Name\">")
	w.T(e.Name)
	w.M("</td>\n<td data-label=\"Description\">")
	w.T(e.Description)
	w.M("</td>\n<td>")
	if e.Status == StatusNew {
		w.M("<form method=\"post\" action=\"/console/events/read\">\n")
		hidden(w, "csrf", csrf)
		hidden(w, "seq", seq)
		w.M("\n")
		filterFields(w, f)
		w.M("\n<button type=\"submit\" class=\"small mark-read\">Mark read</button></form>")
	}
	w.M("</td>\n</tr>")
}

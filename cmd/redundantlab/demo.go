//go:build linux

package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/redundantd/redundantd/appliance"
	"github.com/redundantd/redundantd/testlab"
	"github.com/redundantd/redundantd/testlab/fossim"
	"github.com/redundantd/redundantd/testlab/poll"
)

func init() {
	register("demo", "the whole appliance on two nodes and a simulated berofos: election, voicemail replication, SIGKILL failover with lines and PBX, return as Backup, Passive mode, swap, event log", runDemo)
}

// demo is the state of one demo run: the lab, the recorder and the output.
type demo struct {
	out   io.Writer
	lab   *testlab.Lab
	tl    *testlab.Timeline
	nodes []*testlab.Router
	pbx   [2]*testlab.PBX
	vrid  uint8
	fos   *testlab.Berofos
	// linesMode[i] is the relay mode that gives node i+1 the ISDN lines.
	linesMode []int
}

// demoBox is the voicemail box the demo leaves its messages in.
const demoBox = "1000"

func runDemo(ctx context.Context, args []string) error { return demoMain(ctx, os.Stdout, args) }

// demoMain runs the demo, printing to out; the lab is removed whatever happens.
func demoMain(ctx context.Context, out io.Writer, args []string) error {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	logs := fs.Bool("logs", false, "print the daemons' logs at the end")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if os.Geteuid() != 0 {
		return errors.New("demo: the lab needs root (network namespaces); run it with sudo")
	}
	parent := ctx
	ctx, cancel := context.WithTimeout(ctx, 120*time.Second)
	defer cancel()
	begin := time.Now()
	d := &demo{out: out, vrid: 51}
	d.say("redundantd lab demo: two PBX nodes, one virtual IP, RFC 3768 VRRP, replication, a berofos, all on this machine\n\n")

	d.say("Setting up\n")
	t := time.Now()
	if _, err := testlab.BuildBinary(ctx, testlab.RedundantdPkg); err != nil {
		return err
	}
	defer testlab.RemoveBinaries()
	d.say("  built redundantd                              %s\n", secs(time.Since(t)))

	lab, err := testlab.New(ctx, testlab.Options{Nodes: 2})
	if err != nil {
		return err
	}
	d.lab = lab
	err = d.run(ctx)
	interrupted := parent.Err() != nil
	if (err != nil && !interrupted) || *logs {
		d.printLogs(err != nil)
	}
	cerr := lab.Close()
	left, _ := lab.Namespaces()
	if interrupted {
		d.say("\ninterrupted: lab removed (%d namespaces left)\n", len(left))
		return errors.Join(errors.New("demo interrupted"), cerr)
	}
	if err != nil {
		return errors.Join(err, cerr)
	}
	if cerr != nil {
		return cerr
	}
	if len(left) > 0 {
		return fmt.Errorf("demo: namespaces left behind: %v", left)
	}
	d.say("\n9. Cleanup\n  lab removed: %d namespaces left, daemons stopped\n", len(left))
	d.say("\nDone in %s.\n", secs(time.Since(begin)))
	return nil
}

func (d *demo) say(format string, a ...any) { fmt.Fprintf(d.out, format, a...) }

// run is the scripted part of the demo; the caller removes the lab whatever happens.
func (d *demo) run(ctx context.Context) error {
	if err := d.setup(ctx); err != nil {
		return err
	}
	steps := []func(context.Context) error{d.election, d.voicemail, d.crash, d.comeBack, d.passive, d.activate, d.swap, d.eventLog, d.final}
	for _, step := range steps {
		if err := step(ctx); err != nil {
			return err
		}
	}
	return nil
}

// cfgs are the two nodes' VRRP settings: node1 is preferred (it is Master after the election).
func (d *demo) cfgs() [2]testlab.VRRPConfig {
	vip := d.lab.DefaultVIP()
	return [2]testlab.VRRPConfig{
		{VRID: d.vrid, Priority: 110, AdvertInterval: time.Second, VIPs: []netip.Prefix{vip}},
		{VRID: d.vrid, Priority: 100, AdvertInterval: time.Second, VIPs: []netip.Prefix{vip}},
	}
}

// setup starts the berofos and the recorder and describes the lab.
func (d *demo) setup(ctx context.Context) error {
	l := d.lab
	vip := l.DefaultVIP()
	cfgs := d.cfgs()
	// The ISDN lines: a simulated berofos on the bridge. node1 is wired to port B (relay mode
	// 1, A-B, gives it the lines), node2 to port D (mode 0, A-D); only the Master sets it.
	fos, err := l.StartBerofos(ctx, "fos1", fossim.Config{})
	if err != nil {
		return err
	}
	d.fos, d.linesMode = fos, []int{1, 0}
	d.say("  lab %s: bridge br0 in its own namespace, one namespace per node\n", l.Name)
	d.say("    node1  %-13s priority %d\n", l.Node(1).Addr, cfgs[0].Priority)
	d.say("    node2  %-13s priority %d\n", l.Node(2).Addr, cfgs[1].Priority)
	d.say("    fos1   %-13s simulated berofos: ISDN lines to node1 in relay mode A-B, to node2 in A-D\n", fos.Host.Addr)
	d.say("    virtual IP %s, VRID %d, adverts every 1 s, preempt off\n", vip, d.vrid)
	d.say("    each node: a PBX service (started on the Master only), a voicemail tree at %s\n", l.PBXTree())
	d.say("    replicated Master -> Backup (inotify-driven), a peer link between the daemons\n")
	tl, err := l.Record(ctx, vip.Addr())
	if err != nil {
		return err
	}
	d.tl = tl
	return nil
}

// election starts node1, then node2, as an appliance pair.
func (d *demo) election(ctx context.Context) error {
	cfgs := d.cfgs()
	d.say("\n1. Election: node1 starts, then node2; neither hears a Master, so node1 waits its\n")
	d.say("   Master_Down_Interval (3 adverts + Skew_Time) and becomes Master; node2 joins as Backup\n")
	t0 := time.Now()
	ps, err := testlab.StartPBXPair(ctx, d.lab, cfgs, [2]string{d.fos.TOML(d.linesMode[0]), d.fos.TOML(d.linesMode[1])})
	for _, p := range ps {
		if p != nil && p.Router != nil {
			d.nodes = append(d.nodes, p.Router)
		}
	}
	if err != nil {
		return err
	}
	d.pbx = ps
	master, backup := ps[0], ps[1]
	if _, err := d.tl.WaitVIP(ctx, master.Router.Node, true, t0); err != nil {
		return err
	}
	up, err := d.waitEvent(ctx, master, "up active", t0)
	if err != nil {
		return err
	}
	if _, err := d.waitLines(ctx, master.Router); err != nil {
		return err
	}
	if err := waitFor(ctx, 5*time.Second, "the PBX on node1 only", func() bool { return master.Running() && !backup.Running() }); err != nil {
		return err
	}
	d.printWindow(t0, t0, up.Time)
	d.say("  %8s  %s event on node1: %q\n", "+"+ms(up.Time.Sub(t0)), up.Name, up.Description)
	bst, err := backup.Router.Node.Status(ctx)
	if err != nil {
		return err
	}
	d.say("  => node1 is Master after %s (its Master_Down_Interval at priority %d: %s, plus start-up);\n",
		ms(d.firstVIP(master.Router.Node, t0).Sub(t0)), cfgs[0].Priority, ms(testlab.MasterDownInterval(time.Second, cfgs[0].Priority)))
	d.say("     node2 is %s, master_ip %s; %s; %s\n", bst.State, bst.MasterIP, d.lines(), d.where())
	return nil
}

// voicemail leaves a message on the Master and waits for it on the Backup.
func (d *demo) voicemail(ctx context.Context) error {
	d.say("\n2. A caller leaves a voicemail on node1 (the Master)\n")
	return d.replicate(ctx, d.pbx[0], d.pbx[1], 1)
}

// replicate writes message n on from and waits until to has it.
func (d *demo) replicate(ctx context.Context, from, to *testlab.PBX, n int) error {
	audio := demoAudio(n)
	t := time.Now()
	if err := from.WriteMessage(demoBox, n, audio); err != nil {
		return err
	}
	if err := waitFor(ctx, 10*time.Second, fmt.Sprintf("message %d on %s", n, to.Router.Node.Name), func() bool {
		return to.HasMessage(demoBox, n, audio)
	}); err != nil {
		return err
	}
	d.say("  => box %s msg%04d (%d bytes) written on %s is on %s %s later (replication %s -> %s)\n",
		demoBox, n, len(audio), from.Router.Node.Name, to.Router.Node.Name, ms(time.Since(t)), from.Router.Node.Name, to.Router.Node.Name)
	return nil
}

// demoAudio is the content of message n: distinct per message, the size of a short message.
func demoAudio(n int) []byte {
	return bytes.Repeat([]byte(fmt.Sprintf("RIFF voicemail %d ", n)), 4000)
}

// crash kills the Master and shows the VIP, the lines and the PBX moving.
func (d *demo) crash(ctx context.Context) error {
	master, backup := d.pbx[0], d.pbx[1]
	d.say("\n3. The Master crashes: SIGKILL node1's redundantd (nothing is sent on the wire)\n")
	f, err := testlab.MeasureFailover(ctx, d.tl, master.Router, backup.Router, false)
	if err != nil {
		return err
	}
	if _, err := d.waitLines(ctx, backup.Router); err != nil {
		return err
	}
	if err := waitFor(ctx, 5*time.Second, "the PBX on node2", backup.Running); err != nil {
		return err
	}
	d.printFailover(ctx, f, "last advert heard from "+master.Router.Node.Name, d.pbxRows(ctx, backup, f.Ref.At))
	d.say("  (the killed node keeps %s and its PBX marker: the process died, not the host; the\n", d.tl.VIP)
	d.say("   daemon removes the stale address and stops the PBX when it starts again)\n")
	return nil
}

// pbxRows are the timeline rows of p's PBX start and of p's events after ref.
func (d *demo) pbxRows(ctx context.Context, p *testlab.PBX, ref time.Time) []row {
	var rows []row
	if fi, err := os.Stat(p.Marker); err == nil && fi.ModTime().After(ref) {
		rows = append(rows, row{fi.ModTime(), "PBX service started on " + p.Router.Node.Name})
	}
	evs, _ := d.events(ctx, p) // the rows are an illustration: without the log, none
	for _, e := range evs {
		if e.Time.After(ref) && e.Application == appliance.AppRedundancy {
			rows = append(rows, row{e.Time, fmt.Sprintf("%s event %q", p.Router.Node.Name, e.Name)})
		}
	}
	return rows
}

// comeBack restarts the old Master: it must return as a quiet Backup and receive the data.
func (d *demo) comeBack(ctx context.Context) error {
	old, cur := d.pbx[0], d.pbx[1]
	d.say("\n4. node1 comes back with priority 110; preempt is off, so it must stay Backup\n")
	t3 := time.Now()
	setsBefore := len(d.fos.Sim.Sets())
	if err := old.Router.Start(ctx); err != nil {
		return err
	}
	if err := old.Router.WaitState(ctx, "backup"); err != nil {
		return err
	}
	if _, err := d.tl.WaitVIP(ctx, old.Router.Node, false, t3); err != nil {
		return fmt.Errorf("the restarted node1 kept the stale virtual IP: %w", err)
	}
	if err := waitFor(ctx, 5*time.Second, "node1 stopping its stale PBX", func() bool { return !old.Running() }); err != nil {
		return err
	}
	up, err := d.waitEvent(ctx, cur, "up active", t3)
	if err != nil {
		return err
	}
	d.say("  %8s  redundantd restarted on node1\n", "+0 ms")
	d.printWindow(t3, t3, up.Time)
	d.say("  %8s  %s event on node2: %q\n", "+"+ms(up.Time.Sub(t3)), up.Name, up.Description)
	sent := len(d.tl.AdvertsBetween(t3, up.Time, testlab.From(old.Router.Node, d.vrid)))
	newSets := len(d.fos.Sim.Sets()) - setsBefore
	// The status says which Master node1 hears once an advert of node2 has arrived.
	var ost testlab.Status
	if err := waitFor(ctx, 5*time.Second, "an advert of node2 heard by node1", func() bool {
		var err error
		ost, err = old.Router.Node.Status(ctx)
		return err == nil && ost.MasterIP != ""
	}); err != nil {
		return err
	}
	d.say("  => node1 is %s (master_ip %s), sent %d adverts and %d berofos sets; node2 is still Master;\n     %s; %s\n",
		ost.State, ost.MasterIP, sent, newSets, d.lines(), d.where())
	if ost.State != "backup" || sent != 0 || newSets != 0 {
		return fmt.Errorf("node1 did not return as a quiet Backup: state %s, %d adverts, %d berofos sets", ost.State, sent, newSets)
	}
	if !old.HasMessage(demoBox, 1, demoAudio(1)) {
		return errors.New("node1 lost message 1")
	}
	d.say("  a second voicemail, now on node2 (the Master):\n")
	return d.replicate(ctx, cur, old, 2)
}

// passive sets the Backup Passive, loses the Master and shows that the Backup does not take
// over.
func (d *demo) passive(ctx context.Context) error {
	bk, master := d.pbx[0], d.pbx[1]
	d.say("\n5. Passive mode: the operator sets the Backup (node1) Passive through node2's API\n")
	var mr appliance.BackupModeResponse
	if err := master.API(ctx, http.MethodPut, "/api/v1/backup-mode", appliance.BackupModeRequest{Mode: "passive"}, &mr); err != nil {
		return err
	}
	if err := waitFor(ctx, 5*time.Second, "node1 Passive", func() bool {
		st, err := bk.Status(ctx)
		return err == nil && st.Passive
	}); err != nil {
		return err
	}
	d.say("  PUT /api/v1/backup-mode {\"mode\":\"passive\"} on node2: mode %s, peer %s; node1 reports passive\n", mr.Mode, mr.Peer)
	d.say("  SIGKILL node2's redundantd (the Master is lost)\n")
	tk := time.Now()
	if err := master.Router.Kill(ctx); err != nil {
		return err
	}
	down, err := d.waitEvent(ctx, bk, "peer down", tk)
	if err != nil {
		return err
	}
	// An Active Backup would take over after its Master_Down_Interval; watch one advert
	// interval longer than that. There is nothing to wait on: the point is that nothing happens.
	mdi := testlab.MasterDownInterval(time.Second, d.cfgs()[0].Priority)
	d.say("  %8s  node1 event %q: %s\n", "+"+ms(down.Time.Sub(tk)), down.Name, down.Description)
	d.say("  watching node1 for its Master_Down_Interval (%s) plus one advert interval...\n", ms(mdi))
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(time.Until(tk.Add(mdi + time.Second))):
	}
	st, err := bk.Status(ctx)
	if err != nil {
		return err
	}
	sent := len(d.tl.AdvertsBetween(tk, time.Now(), testlab.From(bk.Router.Node, d.vrid)))
	d.say("  => after %s node1 is still %s (passive %t): %d adverts sent, virtual IP on node1: %t, PBX on node1: %t, %s\n",
		ms(time.Since(tk)), st.State, st.Passive, sent, d.tl.Holds(bk.Router.Node), bk.Running(), d.lines())
	if st.State != "backup" || sent != 0 || bk.Running() || d.tl.Holds(bk.Router.Node) {
		return fmt.Errorf("the Passive Backup took over on its own: state %s, %d adverts, PBX %t", st.State, sent, bk.Running())
	}
	return nil
}

// activate sets the Passive Backup Active: it takes over; the lost node then returns as Backup.
func (d *demo) activate(ctx context.Context) error {
	bk, master := d.pbx[0], d.pbx[1]
	var mr appliance.BackupModeResponse
	d.say("  the operator sets node1 Active (PUT /api/v1/backup-mode on node1):\n")
	ta := time.Now()
	if err := bk.API(ctx, http.MethodPut, "/api/v1/backup-mode", appliance.BackupModeRequest{Mode: "active"}, &mr); err != nil {
		return err
	}
	vip, err := d.tl.WaitVIP(ctx, bk.Router.Node, true, ta)
	if err != nil {
		return err
	}
	lines, err := d.waitLines(ctx, bk.Router)
	if err != nil {
		return err
	}
	if err := waitFor(ctx, 5*time.Second, "the PBX on node1", bk.Running); err != nil {
		return err
	}
	rows := append([]row{{ta, "PUT backup-mode active on node1"}, {vip.At, fmt.Sprintf("%s added to node1", vip.Addr)}}, d.pbxRows(ctx, bk, ta)...)
	rows = append(rows, d.fosRows(ta)...)
	d.printRows(ta, "the mode change", rows)
	d.say("  => node1 took over %s after being set Active, the lines on it after %s (leaving passive mode starts\n", ms(vip.At.Sub(ta)), ms(lines.Sub(ta)))
	d.say("     its Master_Down_Timer: %s at priority %d)\n", ms(testlab.MasterDownInterval(time.Second, d.cfgs()[0].Priority)), d.cfgs()[0].Priority)

	d.say("  node2 comes back: ")
	tr := time.Now()
	if err := master.Router.Start(ctx); err != nil {
		return err
	}
	if err := master.Router.WaitState(ctx, "backup"); err != nil {
		return err
	}
	if _, err := d.waitEvent(ctx, bk, "up", tr); err != nil {
		return err
	}
	if err := waitFor(ctx, 5*time.Second, "node2 stopping its stale PBX", func() bool { return !master.Running() }); err != nil {
		return err
	}
	d.say("Backup after %s, peer link up; %s\n", ms(time.Since(tr)), d.where())
	return nil
}

// swap asks the Master for a swap just after a voicemail was left on it.
func (d *demo) swap(ctx context.Context) error {
	old, nw := d.pbx[0], d.pbx[1]
	d.say("\n6. Swap for maintenance: a voicemail is left on node1, then POST /api/v1/swap on node1\n")
	audio := demoAudio(3)
	if err := old.WriteMessage(demoBox, 3, audio); err != nil {
		return err
	}
	ts := time.Now()
	var res appliance.SwapResult
	if err := old.API(ctx, http.MethodPost, "/api/v1/swap", struct{}{}, &res); err != nil {
		return err
	}
	done := time.Now()
	if res.State != "done" {
		return fmt.Errorf("swap %s: %s", res.State, res.Error)
	}
	d.say("  the Master's timeline (SwapResult, ms from the command):\n")
	for _, s := range res.Timeline {
		d.say("  %8.1f  %-18s took %7.1f ms  %s\n", s.AtMS, s.Step, s.TookMS, s.Detail)
	}
	d.say("  %8.1f  answered: %s, new Master %s\n", res.TotalMS, res.State, res.NewMaster)
	rel, err := d.tl.WaitVIP(ctx, old.Router.Node, false, ts)
	if err != nil {
		return err
	}
	add, err := d.tl.WaitVIP(ctx, nw.Router.Node, true, ts)
	if err != nil {
		return err
	}
	if err := waitFor(ctx, 5*time.Second, "the PBX on node2 only", func() bool { return nw.Running() && !old.Running() }); err != nil {
		return err
	}
	rows := []row{{ts, "POST /api/v1/swap sent to node1"}, {rel.At, fmt.Sprintf("%s removed from node1", rel.Addr)},
		{add.At, fmt.Sprintf("%s added to node2", add.Addr)}, {done, "swap answered"}}
	rows = append(rows, d.fosRows(ts)...)
	if fi, err := os.Stat(nw.Marker); err == nil && fi.ModTime().After(ts) {
		rows = append(rows, row{fi.ModTime(), "PBX service started on node2"})
	}
	d.printRows(ts, "the command (seen on the wire and the devices)", rows)
	got := nw.HasMessage(demoBox, 3, audio)
	d.say("  => virtual IP gap %s (node1 released -> node2 holds); message 3 on node2: %t; %s; %s\n",
		ms1(add.At.Sub(rel.At)), got, d.lines(), d.where())
	if !got {
		return errors.New("the voicemail left just before the swap is not on the new Master")
	}
	return nil
}

// eventLog prints node1's event log as the seed's System Events page (Figure 10) does:
// newest first.
func (d *demo) eventLog(ctx context.Context) error {
	evs, err := d.events(ctx, d.pbx[0])
	if err != nil {
		return err
	}
	d.say("\n7. Event log of node1 (GET /api/v1/events; `redundantctl events`), newest first\n")
	printEvents(d.out, evs)
	return nil
}

// maxDescription keeps a table row on one line of a wide terminal; the API has the whole text.
const maxDescription = 110

// printEvents prints evs newest first as a table with the seed's columns.
func printEvents(w io.Writer, evs []appliance.Event) {
	fmt.Fprintf(w, "  %-6s %-23s %-3s %-11s %-18s %s\n", "Status", "Time", "Pri", "Application", "Name", "Description")
	for i := len(evs) - 1; i >= 0; i-- {
		e := evs[i]
		status := e.Status
		if status != "" {
			status = strings.ToUpper(status[:1]) + status[1:]
		}
		desc := e.Description
		if r := []rune(desc); len(r) > maxDescription {
			desc = string(r[:maxDescription-1]) + "…"
		}
		fmt.Fprintf(w, "  %-6s %-23s %-3d %-11s %-18s %s\n", status, e.Time.Format("Mon Jan _2 15:04:05.000"),
			int(e.Priority), e.Application, e.Name, desc)
	}
}

// final prints both nodes' state and stops the daemons.
func (d *demo) final(ctx context.Context) error {
	d.say("\n8. Final state\n")
	for _, p := range d.pbx {
		st, err := p.Status(ctx)
		if err != nil {
			return err
		}
		holding := strings.Join(st.Holding, " ")
		if holding == "" {
			holding = "none"
		}
		since := st.Since
		if t, err := time.Parse(time.RFC3339Nano, st.Since); err == nil {
			since = t.Format("15:04:05.000")
		}
		d.say("  %s: %s since %s, %d transitions, holds %s, backup mode %s, PBX running %t\n", p.Router.Node.Name, st.State,
			since, st.Transitions, holding, st.BackupMode, p.Running())
	}
	d.say("  fos1: %s, %d set requests received in all\n", d.lines(), len(d.fos.Sim.Sets()))
	for _, p := range d.pbx {
		if err := p.Router.Term(ctx); err != nil {
			return fmt.Errorf("stopping %s: %w", p.Router, err)
		}
	}
	return nil
}

// where says which node runs the PBX.
func (d *demo) where() string {
	var on []string
	for _, p := range d.pbx {
		if p.Running() {
			on = append(on, p.Router.Node.Name)
		}
	}
	if len(on) == 0 {
		return "PBX running nowhere"
	}
	return "PBX running on " + strings.Join(on, " and ")
}

// events is p's event log, oldest first.
func (d *demo) events(ctx context.Context, p *testlab.PBX) ([]appliance.Event, error) {
	var evs []appliance.Event
	err := p.API(ctx, http.MethodGet, "/api/v1/events", nil, &evs)
	return evs, err
}

// waitEvent waits until p logs an event named name (or starting with it) at or after t.
func (d *demo) waitEvent(ctx context.Context, p *testlab.PBX, name string, t time.Time) (appliance.Event, error) {
	var found appliance.Event
	err := waitFor(ctx, 10*time.Second, fmt.Sprintf("a %q event on %s", name, p.Router.Node.Name), func() bool {
		evs, err := d.events(ctx, p)
		if err != nil {
			return false
		}
		for _, e := range evs {
			if strings.HasPrefix(e.Name, name) && !e.Time.Before(t.Add(-time.Millisecond)) {
				found = e
				return true
			}
		}
		return false
	})
	return found, err
}

// waitFor polls cond (poll.Context, every poll.Step) until it holds, ctx ends or limit
// passes.
func waitFor(ctx context.Context, limit time.Duration, what string, cond func() bool) error {
	wctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	if err := poll.Context(wctx, poll.Step, cond); err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("demo: waiting for %s: %w", what, ctx.Err())
		}
		return fmt.Errorf("demo: no %s within %s", what, limit)
	}
	return nil
}

// modeName is the berofos relay mode as the device's web page shows it.
func modeName(m int) string {
	switch m {
	case 0:
		return "A-D"
	case 1:
		return "A-B"
	case 2:
		return "A-B,C-D"
	}
	return fmt.Sprintf("mode %d", m)
}

// lines says where the berofos sends the ISDN lines now.
func (d *demo) lines() string {
	m := d.fos.Sim.Mode()
	for i, lm := range d.linesMode {
		if lm == m {
			return fmt.Sprintf("ISDN lines on node%d (relay %s)", i+1, modeName(m))
		}
	}
	return "ISDN lines: relay " + modeName(m)
}

// waitLines waits until the berofos gives the lines to r's node and returns when it saw that.
func (d *demo) waitLines(ctx context.Context, r *testlab.Router) (time.Time, error) {
	want := d.linesMode[idx(d.nodes, r)]
	deadline := time.Now().Add(5 * time.Second)
	for {
		if d.fos.Sim.Mode() == want {
			return time.Now(), nil
		}
		if time.Now().After(deadline) {
			return time.Time{}, fmt.Errorf("the berofos did not switch the lines to %s within 5 s (%s)", r.Node.Name, d.lines())
		}
		select {
		case <-ctx.Done():
			return time.Time{}, ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
}

func idx(rs []*testlab.Router, r *testlab.Router) int {
	for i, x := range rs {
		if x == r {
			return i
		}
	}
	return -1
}

// firstVIP is when n first gained the VIP after t.
func (d *demo) firstVIP(n *testlab.Node, t time.Time) time.Time {
	for _, e := range d.tl.VIPEvents() {
		if e.Node == n && e.Present && e.At.After(t) {
			return e.At
		}
	}
	return time.Time{}
}

// printWindow prints the VIP events and adverts in (from, to], relative to ref, collapsing
// runs of adverts from the same sender.
func (d *demo) printWindow(ref, from, to time.Time) {
	type line struct {
		at   time.Time
		text string
	}
	var lines []line
	for _, e := range d.tl.VIPEvents() {
		if e.At.After(from) && !e.At.After(to) {
			verb := "removed from"
			if e.Present {
				verb = "added to"
			}
			lines = append(lines, line{e.At, fmt.Sprintf("%s %s %s", e.Addr, verb, e.Node.Name)})
		}
	}
	var prev *testlab.Advert
	run := 0
	flush := func() {
		if run > 0 {
			lines = append(lines, line{prev.At, fmt.Sprintf("... %d more adverts from %s, last one", run, d.nodeName(prev.Src))})
		}
		run = 0
	}
	for _, a := range d.tl.AdvertsBetween(from, to, nil) {
		if prev != nil && prev.Src == a.Src && prev.Priority == a.Priority {
			run++
			a := a
			prev = &a
			continue
		}
		flush()
		a := a
		prev = &a
		lines = append(lines, line{a.At, fmt.Sprintf("advert from %s, priority %d", d.nodeName(a.Src), a.Priority)})
	}
	flush()
	// Stable insertion sort by time: few lines.
	for i := 1; i < len(lines); i++ {
		for j := i; j > 0 && lines[j].at.Before(lines[j-1].at); j-- {
			lines[j], lines[j-1] = lines[j-1], lines[j]
		}
	}
	for _, ln := range lines {
		d.say("  %8s  %s\n", "+"+ms(ln.at.Sub(ref)), ln.text)
	}
}

func (d *demo) nodeName(a interface{ String() string }) string {
	for _, n := range d.lab.Nodes() {
		if n.Addr.String() == a.String() {
			return n.Name
		}
	}
	return a.String()
}

// row is one line of a printed timeline.
type row struct {
	at   time.Time
	text string
}

// fosRows are the berofos set requests received after t.
func (d *demo) fosRows(t time.Time) []row {
	var rows []row
	for _, set := range d.fos.Sim.Sets() {
		if set.At.After(t) {
			rows = append(rows, row{set.At, fmt.Sprintf("berofos fos1: set %s=%s", set.Key, set.Value)})
		}
	}
	return rows
}

// printRows prints rows sorted by time, in ms from ref.
func (d *demo) printRows(ref time.Time, refText string, rows []row) {
	sort.SliceStable(rows, func(i, j int) bool { return rows[i].at.Before(rows[j].at) })
	d.say("  timeline in ms from %s:\n", refText)
	for _, r := range rows {
		d.say("  %8s  %-46s %s\n", ms(r.at.Sub(ref)), r.text, r.at.Format("15:04:05.000"))
	}
}

// printFailover prints a takeover timeline in milliseconds from its reference advert, with
// extra rows (the PBX, the events).
func (d *demo) printFailover(ctx context.Context, f testlab.Failover, refText string, extra []row) {
	ref := f.Ref.At
	sig := "SIGKILL"
	if f.Planned {
		sig = "SIGTERM"
	}
	rows := []row{{ref, refText}, {f.Signal, sig + " sent to " + f.From.String()}}
	if st, err := f.To.Node.Status(ctx); err == nil && !st.SinceTime().IsZero() && st.State == "master" {
		rows = append(rows, row{st.SinceTime(), f.To.Node.Name + " reports Master (status API \"since\")"})
	}
	rows = append(rows, row{f.VIP.At, fmt.Sprintf("%s added to %s", f.VIP.Addr, f.To.Node.Name)})
	if !f.FirstAdvert.At.IsZero() {
		rows = append(rows, row{f.FirstAdvert.At, fmt.Sprintf("first advert from %s, priority %d", f.To.Node.Name, f.FirstAdvert.Priority)})
	}
	if !f.FirstGARP.At.IsZero() {
		rows = append(rows, row{f.FirstGARP.At, fmt.Sprintf("first gratuitous ARP for %s", f.FirstGARP.SenderIP)})
	}
	rows = append(rows, d.fosRows(ref)...)
	rows = append(rows, extra...)
	d.printRows(ref, "the "+refText, rows)
	rule := "Master_Down_Interval"
	if f.Planned {
		rule = "Skew_Time"
	}
	d.say("  => takeover in %s; RFC 3768 %s of %s: %s (target: within %s)\n",
		ms(f.Elapsed()), rule, f.To.Node.Name, ms(f.Theory()), ms(f.Target()))
}

func (d *demo) printLogs(failed bool) {
	n := 0
	if failed {
		n = 30
	}
	for _, r := range d.nodes {
		p := r.Proc()
		if p == nil {
			continue
		}
		out := p.Output()
		if n > 0 {
			lines := strings.Split(out, "\n")
			if len(lines) > n {
				lines = lines[len(lines)-n:]
			}
			out = strings.Join(lines, "\n")
		}
		fmt.Fprintf(os.Stderr, "\n--- log of %s ---\n%s\n", r, out)
	}
}

func ms(d time.Duration) string {
	return fmt.Sprintf("%d ms", d.Round(time.Millisecond).Milliseconds())
}

func secs(d time.Duration) string { return fmt.Sprintf("%.1f s", d.Seconds()) }

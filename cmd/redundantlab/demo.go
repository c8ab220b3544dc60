//go:build linux

package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/redundantd/redundantd/testlab"
	"github.com/redundantd/redundantd/testlab/fossim"
)

func init() {
	register("demo", "two nodes and a simulated berofos: election, SIGKILL failover timeline, return as Backup, planned handover", runDemo)
}

// demo is the state of one demo run: the lab, the recorder and the output.
type demo struct {
	out   io.Writer
	lab   *testlab.Lab
	tl    *testlab.Timeline
	nodes []*testlab.Router
	vrid  uint8
	fos   *testlab.Berofos
	// linesMode[i] is the relay mode that gives node i+1 the ISDN lines.
	linesMode []int
}

func runDemo(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	logs := fs.Bool("logs", false, "print the daemons' logs at the end")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if os.Geteuid() != 0 {
		return errors.New("demo: the lab needs root (network namespaces); run it with sudo")
	}
	parent := ctx
	ctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	begin := time.Now()
	d := &demo{out: os.Stdout, vrid: 51}
	d.say("redundantd lab demo: two PBX nodes, one virtual IP, RFC 3768 VRRP, all on this machine\n\n")

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
	d.say("\n6. Cleanup\n  lab removed: %d namespaces left, daemons stopped\n", len(left))
	d.say("\nDone in %s.\n", secs(time.Since(begin)))
	return nil
}

func (d *demo) say(format string, a ...any) { fmt.Fprintf(d.out, format, a...) }

// run is the scripted part of the demo; the caller removes the lab whatever happens.
func (d *demo) run(ctx context.Context) error {
	l := d.lab
	vip := l.DefaultVIP()
	n1, n2 := l.Node(1), l.Node(2)
	cfgs := []testlab.VRRPConfig{
		{VRID: d.vrid, Priority: 110, AdvertInterval: time.Second, VIPs: []netip.Prefix{vip}},
		{VRID: d.vrid, Priority: 100, AdvertInterval: time.Second, VIPs: []netip.Prefix{vip}},
	}
	// The ISDN lines: a simulated berofos on the bridge. node1 is wired to port B (relay mode
	// 1, A-B, gives it the lines), node2 to port D (mode 0, A-D); only the Master sets it.
	fos, err := l.StartBerofos(ctx, "fos1", fossim.Config{})
	if err != nil {
		return err
	}
	d.fos, d.linesMode = fos, []int{1, 0}
	for i := range cfgs {
		cfgs[i].Extra = fos.TOML(d.linesMode[i])
	}
	d.say("  lab %s: bridge br0 in its own namespace, one namespace per node\n", l.Name)
	d.say("    node1  %-13s priority %d\n", n1.Addr, cfgs[0].Priority)
	d.say("    node2  %-13s priority %d\n", n2.Addr, cfgs[1].Priority)
	d.say("    fos1   %-13s simulated berofos: ISDN lines to node1 in relay mode A-B, to node2 in A-D\n", fos.Host.Addr)
	d.say("    virtual IP %s, VRID %d, adverts every 1 s, preempt off\n", vip, d.vrid)

	tl, err := l.Record(ctx, vip.Addr())
	if err != nil {
		return err
	}
	d.tl = tl

	// 1. Election.
	d.say("\n1. Election: node1 starts, then node2; neither hears a Master, so each waits its own\n")
	d.say("   Master_Down_Interval (3 adverts + Skew_Time), which is shorter for the higher priority\n")
	t0 := time.Now()
	for i, n := range []*testlab.Node{n1, n2} {
		r, err := n.StartRouter(ctx, testlab.Redundantd, cfgs[i])
		if err != nil {
			return err
		}
		d.nodes = append(d.nodes, r)
		// Wait for the API so the start order is the order on the wire.
		if err := r.WaitState(ctx, "backup"); err != nil {
			return err
		}
		d.say("  %8s  redundantd started on %s (Backup)\n", "+"+ms(time.Since(t0)), n.Name)
	}
	master, backup, err := d.waitRoles(ctx, 15*time.Second)
	if err != nil {
		return err
	}
	if _, err := tl.WaitVIP(ctx, master.Node, true, t0); err != nil {
		return err
	}
	settled := time.Now()
	for i := 0; i < 2; i++ {
		a, err := tl.WaitAdvert(ctx, settled, "an advert", testlab.From(master.Node, d.vrid))
		if err != nil {
			return err
		}
		settled = a.At
	}
	mcfg := cfgs[idx(d.nodes, master)]
	d.printWindow(t0, t0, settled)
	bst, err := backup.Node.Status(ctx)
	if err != nil {
		return err
	}
	d.say("  => %s is Master after %s (its Master_Down_Interval at priority %d: %s, plus start-up);\n     %s is %s, master_ip %s; %s\n",
		master.Node.Name, ms(d.firstVIP(master.Node, t0).Sub(t0)), mcfg.Priority,
		ms(testlab.MasterDownInterval(time.Second, mcfg.Priority)), backup.Node.Name, bst.State, bst.MasterIP, d.lines())

	// 2. Unplanned failover.
	d.say("\n2. Unplanned failover: SIGKILL the Master's redundantd (nothing is sent on the wire)\n")
	f, err := testlab.MeasureFailover(ctx, tl, master, backup, false)
	if err != nil {
		return err
	}
	if _, err := d.waitLines(ctx, backup); err != nil {
		return err
	}
	d.printFailover(ctx, f, "last advert heard from "+master.Node.Name)
	d.say("  (the killed daemon's namespace still has %s: the process died, not the host; the\n", vip.Addr())
	d.say("   daemon removes that stale address when it starts again)\n")

	// 3. The old Master returns.
	old, cur := master, backup
	d.say("\n3. %s comes back with priority %d; preempt is off, so it must stay Backup\n",
		old.Node.Name, cfgs[idx(d.nodes, old)].Priority)
	t3 := time.Now()
	setsBefore := len(d.fos.Sim.Sets())
	if err := old.Start(ctx); err != nil {
		return err
	}
	if err := old.WaitState(ctx, "backup"); err != nil {
		return err
	}
	if _, err := tl.WaitVIP(ctx, old.Node, false, f.Signal); err != nil {
		return fmt.Errorf("the restarted %s kept the stale virtual IP: %w", old.Node.Name, err)
	}
	held := t3
	for i := 0; i < 3; i++ {
		a, err := tl.WaitAdvert(ctx, held, "an advert", testlab.From(cur.Node, d.vrid))
		if err != nil {
			return err
		}
		held = a.At
	}
	d.say("  %8s  redundantd restarted on %s\n", "+0 ms", old.Node.Name)
	d.printWindow(t3, t3, held)
	ost, err := old.Node.Status(ctx)
	if err != nil {
		return err
	}
	sent := len(tl.AdvertsBetween(t3, held, testlab.From(old.Node, d.vrid)))
	newSets := len(d.fos.Sim.Sets()) - setsBefore
	d.say("  => %s is %s (master_ip %s), sent %d adverts and %d berofos sets; %s is still Master; %s\n",
		old.Node.Name, ost.State, ost.MasterIP, sent, newSets, cur.Node.Name, d.lines())
	if ost.State != "backup" || sent != 0 || newSets != 0 {
		return fmt.Errorf("%s did not return as a quiet Backup: state %s, %d adverts, %d berofos sets", old.Node.Name, ost.State, sent, newSets)
	}

	// 4. Planned handover.
	d.say("\n4. Planned handover: SIGTERM %s's redundantd (it resigns with a priority-0 advert)\n", cur.Node.Name)
	f, err = testlab.MeasureFailover(ctx, tl, cur, old, true)
	if err != nil {
		return err
	}
	if _, err := d.waitLines(ctx, old); err != nil {
		return err
	}
	d.printFailover(ctx, f, "priority-0 advert from "+cur.Node.Name)
	if _, perr := cur.Proc().Exited(); perr != nil {
		return fmt.Errorf("%s exited with %v after SIGTERM, want status 0", cur, perr)
	}

	// 5. Final state.
	d.say("\n5. Final state\n")
	for _, r := range d.nodes {
		if exited, _ := r.Proc().Exited(); exited {
			d.say("  %s: stopped\n", r.Node.Name)
			continue
		}
		st, err := r.Node.Status(ctx)
		if err != nil {
			return err
		}
		d.say("  %s: %s since %s, %d transitions, virtual IPs %s\n", r.Node.Name, st.State,
			st.SinceTime().Format("15:04:05.000"), st.Transitions, strings.Join(st.VirtualIPs, " "))
	}
	d.say("  fos1: %s, %d set requests received in all\n", d.lines(), len(d.fos.Sim.Sets()))
	if err := old.Term(ctx); err != nil {
		return fmt.Errorf("stopping %s: %w", old, err)
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

// waitRoles polls both daemons' status until one is Master and the other Backup.
func (d *demo) waitRoles(ctx context.Context, limit time.Duration) (master, backup *testlab.Router, err error) {
	deadline := time.Now().Add(limit)
	for {
		s0, e0 := d.nodes[0].State(ctx)
		s1, e1 := d.nodes[1].State(ctx)
		switch {
		case s0 == "master" && s1 == "backup":
			return d.nodes[0], d.nodes[1], nil
		case s1 == "master" && s0 == "backup":
			return d.nodes[1], d.nodes[0], nil
		case time.Now().After(deadline):
			return nil, nil, fmt.Errorf("no single Master after %s: node1 %q (%v), node2 %q (%v)", limit, s0, e0, s1, e1)
		}
		select {
		case <-ctx.Done():
			return nil, nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
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

// printFailover prints a takeover timeline in milliseconds from its reference advert.
func (d *demo) printFailover(ctx context.Context, f testlab.Failover, refText string) {
	ref := f.Ref.At
	type row struct {
		at   time.Time
		text string
	}
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
	for _, set := range d.fos.Sim.Sets() {
		if set.At.After(ref) {
			rows = append(rows, row{set.At, fmt.Sprintf("berofos fos1: set %s=%s", set.Key, set.Value)})
		}
	}
	sort.SliceStable(rows, func(i, j int) bool { return rows[i].at.Before(rows[j].at) })
	d.say("  timeline in ms from the %s:\n", refText)
	for _, r := range rows {
		d.say("  %8s  %-46s %s\n", ms(r.at.Sub(ref)), r.text, r.at.Format("15:04:05.000"))
	}
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
		out := r.Proc().Output()
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

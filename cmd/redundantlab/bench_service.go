//go:build linux

package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/redundantd/redundantd/appliance"
	"github.com/redundantd/redundantd/testlab"
)

func init() {
	register("bench service", "phones served again after a power loss and a swap: redundantd [[service]] vs keepalived + notify scripts + rsync", runBenchService)
}

// serviceSeries is the measured takeovers of one setup in one scenario.
type serviceSeries struct {
	impl    testlab.Impl
	planned bool
	runs    []testlab.ServiceTakeover
	fresh   []freshRun // unplanned: the phone registered just before each loss
	reregs  int        // REGISTERs beyond the first per phone, over the series
}

// freshRun is a phone that registered on the Master shortly before its power loss.
type freshRun struct {
	before   time.Duration // its 200 OK, before the loss
	onBackup time.Duration // its registration in the Backup's tree after the 200 OK; -1: not by the loss
	known    bool          // phone A's call to it answered by the new Master
}

func (s serviceSeries) scenario() string {
	if s.planned {
		if s.impl == testlab.Keepalived {
			return "planned (SIGTERM to the Master's keepalived)"
		}
		return "planned (POST /api/v1/swap)"
	}
	return "unplanned (power loss of the Master)"
}

func (s serviceSeries) times(f func(testlab.ServiceTakeover) time.Duration) []time.Duration {
	var out []time.Duration
	for _, r := range s.runs {
		if d := f(r); d >= 0 {
			out = append(out, d)
		}
	}
	return out
}

func callTime(t testlab.ServiceTakeover) time.Duration { return t.Call }

// serviceCfg is both nodes' VRRP instance: equal priorities (so the Master_Down_Interval is the
// same whichever node takes over), adverts every second, preempt off.
var serviceCfg = testlab.VRRPConfig{VRID: 51, Priority: 100, AdvertInterval: time.Second}

// masterDown is RFC 5798's Master_Down_Interval of serviceCfg: 3 x advert + skew.
func masterDown() time.Duration {
	return 3*serviceCfg.AdvertInterval + time.Duration(256-int(serviceCfg.Priority))*serviceCfg.AdvertInterval/256
}

func runBenchService(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("bench service", flag.ContinueOnError)
	runs := fs.Int("runs", 10, "takeovers of each kind per setup")
	only := fs.String("impl", "both", "redundantd, keepalived or both")
	every := fs.Duration("rsync-every", 10*time.Second, "keepalived setup: the cron-style rsync interval")
	verbose := fs.Bool("v", false, "print every takeover as it is measured")
	before := fs.Duration("fresh-before", time.Second, "unplanned: a new phone registers this long before each power loss")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *runs < 1 {
		return errors.New("bench service: -runs must be at least 1")
	}
	if os.Geteuid() != 0 {
		return errors.New("bench service: the lab needs root (network namespaces)")
	}
	if m := testlab.PBXMissing(); len(m) > 0 {
		return fmt.Errorf("bench service: %w; missing: %v", testlab.ErrNoPBX, m)
	}
	impls, err := benchImpls("bench service", *only)
	if err != nil {
		return err
	}
	if slices.Contains(impls, testlab.Redundantd) {
		if _, err := testlab.BuildBinary(ctx, testlab.RedundantdPkg); err != nil {
			return err
		}
		defer testlab.RemoveBinaries()
	}
	fmt.Printf("service benchmark: 2 PBX nodes (Kamailio) + 2 baresip phones (3600 s expiry), VRID %d, priority %d on both, adverts every %s, preempt off, %d runs of each kind\n",
		serviceCfg.VRID, serviceCfg.Priority, serviceCfg.AdvertInterval, *runs)
	fmt.Println("times are from the power loss (link cut, every process of the node SIGKILLed) or from the command")
	var results []serviceSeries
	for _, impl := range impls {
		res, err := benchService(ctx, impl, benchServiceOpts{runs: *runs, every: *every, before: *before, verbose: *verbose})
		if err != nil {
			return fmt.Errorf("%s: %w", impl, err)
		}
		results = append(results, res...)
	}
	printServiceResults(results, *every)
	printFresh(results, *before)
	return nil
}

// benchServiceOpts are the bench's flags.
type benchServiceOpts struct {
	runs          int
	every, before time.Duration
	verbose       bool
}

// serviceLab is one setup's lab: two PBX nodes, the phones, the sampler.
type serviceLab struct {
	lab    *testlab.Lab
	probe  testlab.ServiceProbe
	files  [2]testlab.KamailioFiles
	phones *testlab.Node
}

func newServiceLab(ctx context.Context, impl testlab.Impl) (*serviceLab, func(), error) {
	lab, err := testlab.New(ctx, testlab.Options{Nodes: 2})
	if err != nil {
		return nil, func() {}, err
	}
	s := &serviceLab{lab: lab}
	cleanup := func() {
		s.probe.Watch.Stop()
		for _, n := range lab.Nodes() {
			n.KillKamailio()
		}
		lab.Close()
	}
	vip := lab.DefaultVIP()
	s.probe.Watch = testlab.WatchKamailio(lab, vip.Addr())
	// The adverts as the bridge sees them (kernel stamps): the lost Master's last one.
	if s.probe.Timeline, err = lab.Record(ctx, vip.Addr()); err != nil {
		return s, cleanup, err
	}
	s.probe.SIP = netip.AddrPortFrom(vip.Addr(), 5060)
	if s.phones, err = lab.AddHost("phones"); err != nil {
		return s, cleanup, err
	}
	s.probe.From = s.phones
	for i := range 2 {
		kc := testlab.KamailioConfig{VIP: vip.Addr()}
		if impl == testlab.Redundantd {
			// Each daemon (and its Kamailio) sees its own tree at the same path.
			kc.Tree = filepath.Join(lab.PBXTree(), "kamailio")
		}
		if s.files[i], err = lab.Node(i + 1).WriteKamailio(kc); err != nil {
			return s, cleanup, err
		}
	}
	return s, cleanup, nil
}

// startPhones registers alice and bob through the VIP (node 1 must serve) and waits until
// node 2's copy of the registrations lists both.
func (s *serviceLab) startPhones(ctx context.Context, backupSnapshot string) error {
	for _, n := range []**testlab.Phone{&s.probe.Caller, &s.probe.Callee} {
		user := "alice"
		if n == &s.probe.Callee {
			user = "bob"
		}
		p, err := s.phones.StartPhone(ctx, testlab.PhoneConfig{User: user, Registrar: s.probe.SIP})
		if err != nil {
			return err
		}
		*n = p
	}
	if _, err := s.probe.Caller.Call(ctx, "bob"); err != nil {
		return fmt.Errorf("first call: %w", err)
	}
	at, err := testlab.WaitUsers(ctx, backupSnapshot, []string{"alice", "bob"})
	if err != nil {
		return err
	}
	fmt.Printf("  both registrations on the Backup %v after bob's REGISTER was answered\n", at.Sub(s.probe.Callee.RegisteredAt()).Round(time.Millisecond))
	return nil
}

func waitUp(ctx context.Context, n *testlab.Node) error {
	for ctx.Err() == nil {
		if n.KamailioUp(ctx, 5060, 200*time.Millisecond) {
			return nil
		}
	}
	return fmt.Errorf("kamailio did not come up on %s: %w", n.Name, ctx.Err())
}

// waitNoKamailio waits until no Kamailio runs on n.
func waitNoKamailio(ctx context.Context, n *testlab.Node) error {
	for {
		if p, _ := n.KamailioPids(); len(p) == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("kamailio still runs on %s: %w", n.Name, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// serviceNode is one side of a setup, whichever implementation runs it: how it loses power,
// comes back as Backup, and hands over on purpose.
type serviceNode interface {
	node() *testlab.Node
	snapshot() string
	loss(ctx context.Context) error
	powerOn(ctx context.Context) error
	planned(ctx context.Context) error
	afterPlanned(ctx context.Context) error
}

type rdNode struct{ p *testlab.PBX }

func (r rdNode) node() *testlab.Node { return r.p.Router.Node }
func (r rdNode) snapshot() string    { return filepath.Join(r.p.Tree, "kamailio", "usrloc.db") }
func (r rdNode) loss(ctx context.Context) error {
	return r.node().PowerLoss(ctx, r.p.Router.Proc())
}
func (r rdNode) powerOn(ctx context.Context) error {
	if err := r.node().RestoreLink(); err != nil {
		return err
	}
	if err := r.p.Router.Start(ctx); err != nil {
		return err
	}
	return r.p.Router.WaitState(ctx, "backup")
}
func (r rdNode) planned(ctx context.Context) error {
	var res appliance.SwapResult
	if err := r.p.API(ctx, "POST", "/api/v1/swap", struct{}{}, &res); err != nil || res.State != "done" {
		return fmt.Errorf("swap: %+v, %w", res, err)
	}
	return nil
}
func (r rdNode) afterPlanned(ctx context.Context) error { return r.p.Router.WaitState(ctx, "backup") }

// ready waits until the peer link is up again (a swap needs it) with r as Master.
func (r rdNode) ready(ctx context.Context) error {
	for {
		st, err := r.p.Status(ctx)
		if err == nil && st.Peer != nil && st.Peer.Connected && st.Peer.Role == "backup" {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("peer link of %s: %w (%v)", r.node().Name, ctx.Err(), err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

type kaNode struct{ k *testlab.KeepalivedPBX }

func (k kaNode) node() *testlab.Node               { return k.k.Node }
func (k kaNode) snapshot() string                  { return k.k.Files.Snapshot }
func (k kaNode) loss(ctx context.Context) error    { return k.k.PowerLoss(ctx) }
func (k kaNode) planned(ctx context.Context) error { return k.k.Router.Term(ctx) }
func (k kaNode) powerOn(ctx context.Context) error {
	if err := k.k.PowerOn(ctx); err != nil {
		return err
	}
	return k.k.Router.WaitState(ctx, "backup")
}
func (k kaNode) afterPlanned(ctx context.Context) error {
	if err := k.k.Router.Start(ctx); err != nil {
		return err
	}
	return k.k.Router.WaitState(ctx, "backup")
}

// benchService runs the unplanned then the planned series for one setup in a lab of its own,
// the two nodes trading the Master role at each run.
func benchService(ctx context.Context, impl testlab.Impl, o benchServiceOpts) ([]serviceSeries, error) {
	runs, every, verbose := o.runs, o.every, o.verbose
	s, cleanup, err := newServiceLab(ctx, impl)
	defer cleanup()
	if err != nil {
		return nil, err
	}
	sctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	var master, backup serviceNode
	switch impl {
	case testlab.Redundantd:
		fmt.Printf("\nredundantd: [[service]] kamailioctl start/stop/check, [sync] watch = true\n")
		ps, err := testlab.StartPBXPair(sctx, s.lab, [2]testlab.VRRPConfig{serviceCfg, serviceCfg},
			[2]string{s.files[0].ServiceTOML(), s.files[1].ServiceTOML()})
		if err != nil {
			return nil, err
		}
		master, backup = rdNode{ps[0]}, rdNode{ps[1]}
	case testlab.Keepalived:
		fmt.Printf("\nkeepalived: notify_master/backup/fault/stop run kamailioctl start/stop, rsync every %s from the Master\n", every)
		ks, err := testlab.StartKeepalivedPBXPair(sctx, s.lab, [2]testlab.VRRPConfig{serviceCfg, serviceCfg}, s.files, every)
		defer func() {
			for _, k := range ks {
				if k != nil {
					k.Close(context.Background())
				}
			}
		}()
		if err != nil {
			return nil, err
		}
		master, backup = kaNode{ks[0]}, kaNode{ks[1]}
	}
	if err := waitUp(sctx, master.node()); err != nil {
		return nil, err
	}
	// With rsync the registrations reach the Backup on the next cron run.
	wctx, wcancel := context.WithTimeout(ctx, 30*time.Second+2*every)
	err = s.startPhones(wctx, backup.snapshot())
	wcancel()
	if err != nil {
		return nil, err
	}
	var out []serviceSeries
	for _, planned := range []bool{false, true} {
		ser := serviceSeries{impl: impl, planned: planned}
		fmt.Printf("  %s:", ser.scenario())
		for i := 0; i < runs; i++ {
			var fresh *freshRun
			if !planned {
				fresh = &freshRun{before: o.before}
			}
			t, err := serviceRun(ctx, s, master, backup, fresh, fmt.Sprintf("carol%d", i+1), every)
			if err != nil {
				return nil, fmt.Errorf("%s run %d: %w", ser.scenario(), i+1, err)
			}
			ser.runs = append(ser.runs, t)
			if fresh != nil {
				ser.fresh = append(ser.fresh, *fresh)
			}
			if verbose {
				fmt.Printf("\n    run %d: %s -> %s: %v", i+1, master.node().Name, backup.node().Name, t)
				if fresh != nil {
					arrived := "not on the Backup by the loss"
					if fresh.onBackup >= 0 {
						arrived = fmt.Sprintf("on the Backup %s after it", fresh.onBackup.Round(time.Millisecond))
					}
					fmt.Printf("; carol%d registered %s before: %s, known to the new Master: %v",
						i+1, fresh.before.Round(time.Millisecond), arrived, fresh.known)
				}
			} else {
				fmt.Printf(" %.2f", t.Call.Seconds())
			}
			master, backup = backup, master
		}
		last := ser.runs[len(ser.runs)-1].Registers
		ser.reregs = last[0] + last[1] - 2
		if verbose {
			fmt.Println()
		} else {
			fmt.Println(" s (call answered)")
		}
		out = append(out, ser)
	}
	samples, both := s.probe.Watch.Stop()
	fmt.Printf("  %d samples (5 ms): Kamailio on both nodes in %d\n", samples, both)
	return out, nil
}

// serviceRun measures one takeover from master to backup and brings the old master back as
// Backup with the registrations in its tree, ready for the next run the other way. With fresh
// (a power loss), phone user registers on the Master fresh.before before the loss, and fresh
// gets whether the new Master knows it.
func serviceRun(ctx context.Context, s *serviceLab, master, backup serviceNode, fresh *freshRun, user string, every time.Duration) (testlab.ServiceTakeover, error) {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second+2*every)
	defer cancel()
	if r, ok := master.(rdNode); ok {
		if err := r.ready(ctx); err != nil {
			return testlab.ServiceTakeover{}, err
		}
	}
	act := master.planned
	var phone *testlab.Phone
	if fresh != nil {
		act = master.loss
		var err error
		if phone, err = s.registerFresh(ctx, backup.snapshot(), user, fresh); err != nil {
			return testlab.ServiceTakeover{}, err
		}
		defer phone.Proc.Kill(context.Background())
	}
	t, err := s.probe.Measure(ctx, backup.node(), act)
	if err != nil {
		return t, err
	}
	if fresh != nil {
		fresh.before = t.At.Sub(phone.RegisteredAt())
		_, err := s.probe.Caller.Call(ctx, user)
		fresh.known = err == nil
	}
	if fresh == nil {
		err = master.afterPlanned(ctx)
	} else {
		err = master.powerOn(ctx)
	}
	if err != nil {
		return t, err
	}
	if err := waitNoKamailio(ctx, master.node()); err != nil {
		return t, err
	}
	return t, waitListed(ctx, master.snapshot(), "alice", "bob")
}

// registerFresh starts phone user through the VIP, notes when its registration reaches the
// Backup's copy (polled every 20 ms), and returns f.before after its 200 OK.
func (s *serviceLab) registerFresh(ctx context.Context, backupSnapshot, user string, f *freshRun) (*testlab.Phone, error) {
	p, err := s.phones.StartPhone(ctx, testlab.PhoneConfig{User: user, Registrar: s.probe.SIP})
	if err != nil {
		return nil, err
	}
	deadline := p.RegisteredAt().Add(f.before)
	f.onBackup = -1
	for time.Now().Before(deadline) {
		if users, err := testlab.RegisteredUsers(ctx, backupSnapshot); err == nil && slices.Contains(users, user) {
			f.onBackup = time.Since(p.RegisteredAt())
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(time.Until(deadline))
	return p, nil
}

// waitListed waits until the usrloc database lists every one of users (and maybe others).
func waitListed(ctx context.Context, db string, users ...string) error {
	for {
		got, err := testlab.RegisteredUsers(ctx, db)
		if err == nil && !slices.ContainsFunc(users, func(u string) bool { return !slices.Contains(got, u) }) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s does not list %v: %v (%v): %w", db, users, got, err, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func svcSecs(d time.Duration) string { return fmt.Sprintf("%.2f s", d.Seconds()) }

// sinceAdvert is a step's time counted from the lost Master's last advert; -1 when unknown.
func sinceAdvert(f func(testlab.ServiceTakeover) time.Duration) func(testlab.ServiceTakeover) time.Duration {
	return func(t testlab.ServiceTakeover) time.Duration {
		if d, ok := t.SinceAdvert(f(t)); ok {
			return d
		}
		return -1
	}
}

// serviceStep is one row of the results: a time of each takeover.
type serviceStep struct {
	name          string
	f             func(testlab.ServiceTakeover) time.Duration
	unplannedOnly bool
}

func serviceSteps() []serviceStep {
	vip := func(t testlab.ServiceTakeover) time.Duration { return t.VIP }
	return []serviceStep{
		{"last advert of the lost Master, before", func(t testlab.ServiceTakeover) time.Duration {
			if t.LastAdvert.IsZero() {
				return -1
			}
			return t.At.Sub(t.LastAdvert)
		}, true},
		{"virtual IP on the new Master", vip, false},
		{"Kamailio process there", func(t testlab.ServiceTakeover) time.Duration { return t.Kamailio }, false},
		{"first OPTIONS to the VIP answered", func(t testlab.ServiceTakeover) time.Duration { return t.Options }, false},
		{"phone A -> B answered (INVITE 200)", callTime, false},
		{"VIP, from the last advert", sinceAdvert(vip), true},
		{"phone A -> B, from the last advert", sinceAdvert(callTime), true},
	}
}

// printServiceStep prints one line of the table: the step's median and worst for each
// series of the row, "-" where a series has no figure for it.
func printServiceStep(name string, f func(testlab.ServiceTakeover) time.Duration, row []serviceSeries) {
	fmt.Printf("%-36s", name)
	for _, s := range row {
		ts := s.times(f)
		if len(ts) == 0 {
			fmt.Printf(" | %10s %10s %23s", "-", "-", "")
			continue
		}
		fmt.Printf(" | %10s %10s %23s", svcSecs(median(ts)), svcSecs(slices.Max(ts)), "")
	}
	fmt.Println()
}

func printServiceResults(results []serviceSeries, every time.Duration) {
	steps := serviceSteps()
	for _, planned := range []bool{false, true} {
		fmt.Println()
		var row []serviceSeries
		for _, s := range results {
			if s.planned == planned {
				row = append(row, s)
			}
		}
		if len(row) == 0 {
			continue
		}
		fmt.Printf("%-36s", "")
		for _, s := range row {
			fmt.Printf(" | %-45s", fmt.Sprintf("%s, %s", s.impl, s.scenario()))
		}
		fmt.Println()
		fmt.Printf("%-36s", "")
		for range row {
			fmt.Printf(" | %10s %10s %23s", "median", "worst", "")
		}
		fmt.Println()
		for _, st := range steps {
			if !(st.unplannedOnly && planned) {
				printServiceStep(st.name, st.f, row)
			}
		}
		fmt.Printf("%-36s", "re-REGISTERs (both phones, series)")
		for _, s := range row {
			fmt.Printf(" | %10d %34s", s.reregs, "")
		}
		fmt.Println()
	}
	fmt.Printf("\n(keepalived: rsync every %s; planned = SIGTERM to the Master's keepalived, then restarted)\n\n", every)
	for _, s := range results {
		if s.impl != testlab.Redundantd {
			continue
		}
		target := time.Second
		what := "1 s after the command"
		if !s.planned {
			target = masterDown() + 500*time.Millisecond
			what = fmt.Sprintf("Master_Down_Interval %s + 0.5 s after the loss", svcSecs(masterDown()))
		}
		calls := s.times(callTime)
		verdict := "within target"
		if slices.Max(calls) > target {
			verdict = "MISSED target"
		}
		line := fmt.Sprintf("redundantd %s: phones served again worst %s, median %s vs target %s (%s): %s; re-REGISTERs %d",
			s.scenario(), svcSecs(slices.Max(calls)), svcSecs(median(calls)), svcSecs(target), what, verdict, s.reregs)
		if adv := s.times(sinceAdvert(callTime)); !s.planned && len(adv) > 0 {
			// Stricter: the Master_Down_Interval runs from the last advert, up to an advert
			// interval before the loss.
			v := "within"
			if slices.Max(adv) > target {
				v = "MISSED"
			}
			line += fmt.Sprintf("; from the last advert worst %s, median %s: %s", svcSecs(slices.Max(adv)), svcSecs(median(adv)), v)
		}
		for _, k := range results {
			if k.impl == testlab.Keepalived && k.planned == s.planned {
				kc := k.times(callTime)
				cmp := "not later than keepalived"
				if median(calls) > median(kc) || slices.Max(calls) > slices.Max(kc) {
					cmp = "LATER than keepalived"
				}
				line += fmt.Sprintf("; keepalived median %s, worst %s: %s", svcSecs(median(kc)), svcSecs(slices.Max(kc)), cmp)
			}
		}
		fmt.Println(line)
	}
}

// printFresh is the registration-freshness target: a phone registered shortly before the loss
// is known to the new Master.
func printFresh(results []serviceSeries, before time.Duration) {
	for _, s := range results {
		if len(s.fresh) == 0 {
			continue
		}
		known, arrived := 0, []time.Duration{}
		for _, f := range s.fresh {
			if f.known {
				known++
			}
			if f.onBackup >= 0 {
				arrived = append(arrived, f.onBackup)
			}
		}
		line := fmt.Sprintf("%s: a phone registered %s before the loss known to the new Master in %d of %d runs",
			s.impl, svcSecs(before), known, len(s.fresh))
		if len(arrived) > 0 {
			line += fmt.Sprintf("; its registration on the Backup after its 200 OK: median %s, worst %s (%d of %d arrived before the loss)",
				svcSecs(median(arrived)), svcSecs(slices.Max(arrived)), len(arrived), len(s.fresh))
		} else {
			line += "; none reached the Backup before the loss"
		}
		fmt.Println(line)
	}
}

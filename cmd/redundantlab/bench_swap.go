//go:build linux

package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
	"time"

	"github.com/redundantd/redundantd/appliance"
	"github.com/redundantd/redundantd/testlab"
	"github.com/redundantd/redundantd/testlab/fossim"
)

func init() {
	register("bench swap", "swaps back and forth on the appliance pair with a berofos: final sync, VIP gap on the wire, command -> IPs and lines, voicemails lost; keepalived's priority-and-reload workaround", runBenchSwap)
}

// Targets of issue 7 for a swap.
const (
	swapGapTarget   = 100 * time.Millisecond // old Master releases the VIP -> new Master holds it
	swapLinesTarget = time.Second            // command -> new Master holds the IPs and the lines (sync excluded)
)

// swapRun is one measured swap.
type swapRun struct {
	From, To   string
	Sync       time.Duration // the final sync step of the SwapResult
	SyncDetail string
	Gap        time.Duration // VIP removed from the old Master -> added to the new one (netlink); negative: overlap
	IPs        time.Duration // command -> VIP on the new Master
	Lines      time.Duration // command -> the berofos relay set to the new Master's mode (the simulator's clock)
	Answered   time.Duration // command -> the API's answer (the new Master confirmed addresses and lines)
	Lost       bool          // the voicemail written just before the swap is not on the new Master
}

// IPsAndLines is the command -> new Master holding the IPs and the lines.
func (r swapRun) IPsAndLines() time.Duration { return max(r.IPs, r.Lines) }

// swapSummary is the median and worst of each figure over a series of swaps.
type swapSummary struct {
	Runs                          int
	SyncMedian, SyncWorst         time.Duration
	GapMedian, GapWorst           time.Duration
	IPsLinesMedian, IPsLinesWorst time.Duration
	NoSyncMedian, NoSyncWorst     time.Duration // IPsAndLines minus the final sync
	AnsweredMedian, AnsweredWorst time.Duration
	Lost                          int
	// EarlyAnswers counts the swaps answered ("addresses and lines confirmed") before the
	// berofos received the set that moves the lines.
	EarlyAnswers                       int
	GapWithinTarget, LinesWithinTarget bool
}

// summarize is the pure reduction of the runs; the targets are checked on the worst run.
func summarize(runs []swapRun) swapSummary {
	s := swapSummary{Runs: len(runs)}
	if len(runs) == 0 {
		return s
	}
	col := func(f func(swapRun) time.Duration) (time.Duration, time.Duration) {
		v := make([]time.Duration, len(runs))
		for i, r := range runs {
			v[i] = f(r)
		}
		return median(v), slices.Max(v)
	}
	s.SyncMedian, s.SyncWorst = col(func(r swapRun) time.Duration { return r.Sync })
	s.GapMedian, s.GapWorst = col(func(r swapRun) time.Duration { return r.Gap })
	s.IPsLinesMedian, s.IPsLinesWorst = col(swapRun.IPsAndLines)
	s.NoSyncMedian, s.NoSyncWorst = col(func(r swapRun) time.Duration { return r.IPsAndLines() - r.Sync })
	s.AnsweredMedian, s.AnsweredWorst = col(func(r swapRun) time.Duration { return r.Answered })
	for _, r := range runs {
		if r.Lost {
			s.Lost++
		}
		if r.Answered < r.Lines {
			s.EarlyAnswers++
		}
	}
	s.GapWithinTarget = s.GapWorst < swapGapTarget
	s.LinesWithinTarget = s.NoSyncWorst < swapLinesTarget
	return s
}

func verdict(ok bool) string {
	if ok {
		return "within target"
	}
	return "MISSED target"
}

// printSwapRuns prints one line per run and the summary.
func printSwapRuns(w io.Writer, runs []swapRun) swapSummary {
	fmt.Fprintf(w, "%4s %-14s %10s %-34s %10s %10s %10s %10s %10s %5s\n", "run", "swap", "sync", "(final sync sent)", "VIP gap", "IPs", "lines", "IPs+lines", "answered", "lost")
	for i, r := range runs {
		fmt.Fprintf(w, "%4d %-14s %10s %-34s %10s %10s %10s %10s %10s %5t\n", i+1, r.From+" -> "+r.To, ms1(r.Sync), r.SyncDetail,
			ms1(r.Gap), ms1(r.IPs), ms1(r.Lines), ms1(r.IPsAndLines()), ms1(r.Answered), r.Lost)
	}
	s := summarize(runs)
	fmt.Fprintf(w, "\n%-44s %10s %10s\n", "", "median", "worst")
	fmt.Fprintf(w, "%-44s %10s %10s\n", "final sync", ms1(s.SyncMedian), ms1(s.SyncWorst))
	fmt.Fprintf(w, "%-44s %10s %10s  target < %s: %s\n", "VIP gap (released -> held, netlink)", ms1(s.GapMedian), ms1(s.GapWorst), ms(swapGapTarget), verdict(s.GapWithinTarget))
	fmt.Fprintf(w, "%-44s %10s %10s\n", "command -> IPs and lines", ms1(s.IPsLinesMedian), ms1(s.IPsLinesWorst))
	fmt.Fprintf(w, "%-44s %10s %10s  target < %s: %s\n", "command -> IPs and lines, final sync excluded", ms1(s.NoSyncMedian), ms1(s.NoSyncWorst), ms(swapLinesTarget), verdict(s.LinesWithinTarget))
	fmt.Fprintf(w, "%-44s %10s %10s\n", "command -> API answer", ms1(s.AnsweredMedian), ms1(s.AnsweredWorst))
	fmt.Fprintf(w, "voicemails lost: %d of %d (must be 0)\n", s.Lost, s.Runs)
	fmt.Fprintf(w, "swaps answered before the berofos was set: %d of %d\n", s.EarlyAnswers, s.Runs)
	return s
}

func runBenchSwap(ctx context.Context, args []string) error {
	return benchSwapMain(ctx, os.Stdout, args)
}

func benchSwapMain(ctx context.Context, out io.Writer, args []string) error {
	fs := flag.NewFlagSet("bench swap", flag.ContinueOnError)
	runs := fs.Int("runs", 10, "swaps (back and forth)")
	settled := fs.Bool("settled", false, "wait until the voicemail has reached the Backup before each swap, so that the final sync has nothing left to send")
	verbose := fs.Bool("v", false, "print each swap's own timeline (SwapResult) as it is measured")
	withKA := fs.Bool("keepalived", true, "also measure keepalived's workaround (lower the Master's priority, SIGHUP) when it is installed")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *runs < 1 {
		return errors.New("bench swap: -runs must be at least 1")
	}
	if os.Geteuid() != 0 {
		return errors.New("bench swap: the lab needs root (network namespaces)")
	}
	if _, err := testlab.BuildBinary(ctx, testlab.RedundantdPkg); err != nil {
		return err
	}
	defer testlab.RemoveBinaries()
	lab, err := testlab.New(ctx, testlab.Options{Nodes: 2})
	if err != nil {
		return err
	}
	err = benchSwapLab(ctx, out, lab, swapOptions{runs: *runs, settled: *settled, keepalived: *withKA, verbose: *verbose})
	return errors.Join(err, lab.Close())
}

// swapOptions are the bench's flags.
type swapOptions struct {
	runs       int
	settled    bool // the voicemail is on the Backup before the swap
	keepalived bool
	verbose    bool // print each SwapResult's timeline
}

// swapBench is the lab of one bench swap run.
type swapBench struct {
	settled   bool
	verbose   bool
	out       io.Writer
	lab       *testlab.Lab
	tl        *testlab.Timeline
	fos       *testlab.Berofos
	pbx       [2]*testlab.PBX
	linesMode [2]int
}

func benchSwapLab(ctx context.Context, out io.Writer, lab *testlab.Lab, opt swapOptions) error {
	runs := opt.runs
	b := &swapBench{out: out, lab: lab, linesMode: [2]int{1, 0}, settled: opt.settled, verbose: opt.verbose}
	vip := lab.DefaultVIP()
	tl, err := lab.Record(ctx, vip.Addr())
	if err != nil {
		return err
	}
	b.tl = tl
	fos, err := lab.StartBerofos(ctx, "fos1", fossim.Config{})
	if err != nil {
		return err
	}
	b.fos = fos
	cfgs := [2]testlab.VRRPConfig{
		{VRID: 51, Priority: 110, AdvertInterval: time.Second, VIPs: []netip.Prefix{vip}},
		{VRID: 51, Priority: 100, AdvertInterval: time.Second, VIPs: []netip.Prefix{vip}},
	}
	fmt.Fprintf(out, "swap benchmark: lab %s, 2 redundantd nodes (priorities 110 and 100, adverts every 1 s), a simulated berofos,\n", lab.Name)
	when := "just before"
	if opt.settled {
		when = "and replicated (inotify) before"
	}
	fmt.Fprintf(out, "a voicemail written on the Master %s each of %d swaps (POST /api/v1/swap), back and forth\n", when, runs)
	fmt.Fprintln(out, "times in ms from the command; VIP times from netlink in the nodes, lines from the berofos simulator's set")
	ps, err := testlab.StartPBXPair(ctx, lab, cfgs, [2]string{fos.TOML(b.linesMode[0]), fos.TOML(b.linesMode[1])})
	if err != nil {
		return err
	}
	b.pbx = ps
	var results []swapRun
	for i := range runs {
		from, to := i%2, 1-i%2
		r, err := b.swapOnce(ctx, from, to, i+1)
		if err != nil {
			return fmt.Errorf("swap %d: %w", i+1, err)
		}
		results = append(results, r)
	}
	fmt.Fprintln(out)
	s := printSwapRuns(out, results)
	for _, p := range ps {
		if err := p.Router.Term(ctx); err != nil {
			return fmt.Errorf("stopping %s: %w", p.Router, err)
		}
	}
	if opt.keepalived {
		if err := b.keepalived(ctx, runs); err != nil {
			return fmt.Errorf("keepalived: %w", err)
		}
	}
	if s.Lost > 0 {
		return fmt.Errorf("bench swap: %d voicemails lost", s.Lost)
	}
	return nil
}

// ready waits until from is Master with the PBX and the lines, and its peer is a connected Backup.
func (b *swapBench) ready(ctx context.Context, from int) error {
	m := b.pbx[from]
	return waitFor(ctx, 15*time.Second, m.Router.Node.Name+" Master with a Backup, the PBX and the lines", func() bool {
		st, err := m.Status(ctx)
		return err == nil && st.State == "master" && st.Peer != nil && st.Peer.Connected && st.Peer.Role == "backup" &&
			m.Running() && !b.pbx[1-from].Running() && b.fos.Sim.Mode() == b.linesMode[from]
	})
}

// swapOnce leaves message n on the Master, swaps and measures.
func (b *swapBench) swapOnce(ctx context.Context, from, to, n int) (swapRun, error) {
	m, nb := b.pbx[from], b.pbx[to]
	r := swapRun{From: m.Router.Node.Name, To: nb.Router.Node.Name}
	if err := b.ready(ctx, from); err != nil {
		return r, err
	}
	audio := demoAudio(n)
	if err := m.WriteMessage(demoBox, n, audio); err != nil {
		return r, err
	}
	if b.settled {
		if err := waitFor(ctx, 10*time.Second, "the message on the Backup", func() bool { return nb.HasMessage(demoBox, n, audio) }); err != nil {
			return r, err
		}
	}
	cmd := time.Now()
	var res appliance.SwapResult
	if err := m.API(ctx, http.MethodPost, "/api/v1/swap", struct{}{}, &res); err != nil {
		return r, err
	}
	r.Answered = time.Since(cmd)
	if res.State != "done" {
		return r, fmt.Errorf("swap %s: %s", res.State, res.Error)
	}
	r.Lost = !nb.HasMessage(demoBox, n, audio)
	if b.verbose {
		fmt.Fprintf(b.out, "swap %d %s -> %s:", n, r.From, r.To)
		for _, s := range res.Timeline {
			fmt.Fprintf(b.out, " %s %.1f ms;", s.Step, s.TookMS)
		}
		fmt.Fprintf(b.out, " total %.1f ms\n", res.TotalMS)
	}
	for _, s := range res.Timeline {
		if s.Step == "final sync" {
			r.Sync = time.Duration(s.TookMS * float64(time.Millisecond))
			r.SyncDetail = s.Detail
		}
	}
	rel, err := b.tl.WaitVIP(ctx, m.Router.Node, false, cmd)
	if err != nil {
		return r, err
	}
	add, err := b.tl.WaitVIP(ctx, nb.Router.Node, true, cmd)
	if err != nil {
		return r, err
	}
	r.Gap, r.IPs = add.At.Sub(rel.At), add.At.Sub(cmd)
	want := strconv.Itoa(b.linesMode[to])
	var set fossim.SetRecord
	if err := waitFor(ctx, 5*time.Second, "the berofos set to "+nb.Router.Node.Name, func() bool {
		for _, s := range b.fos.Sim.Sets() {
			if s.At.After(cmd) && s.Key == "mode" && s.Value == want {
				set = s
				return true
			}
		}
		return false
	}); err != nil {
		return r, err
	}
	r.Lines = set.At.Sub(cmd)
	return r, nil
}

// keepalived measures the usual keepalived switchover: keepalived has no swap command, so the
// operator lowers the Master's priority below the Backup's in keepalived.conf and reloads it
// (SIGHUP); the Backup (preempt on, as the workaround needs) takes over. Each run lowers the
// Master from 100 to 50, then puts the new Backup back at 100 for the next run.
func (b *swapBench) keepalived(ctx context.Context, runs int) error {
	if testlab.KeepalivedPath() == "" {
		fmt.Fprintln(b.out, "\nkeepalived is not installed: no reference for its reload workaround")
		return nil
	}
	if err := waitFor(ctx, 5*time.Second, "the VIP released by redundantd", func() bool { return len(b.tl.Holders()) == 0 }); err != nil {
		return err
	}
	vip := b.lab.DefaultVIP()
	cfg := testlab.VRRPConfig{VRID: 51, Priority: 100, AdvertInterval: time.Second, VIPs: []netip.Prefix{vip}, Preempt: true}
	fmt.Fprintf(b.out, "\nkeepalived: no switchover command; the workaround: lower the Master's priority (100 -> 50) in\n")
	fmt.Fprintf(b.out, "keepalived.conf and SIGHUP it; the Backup (priority 100, preempt on) takes over. %d runs, times from the SIGHUP\n", runs)
	var rs [2]*testlab.Router
	for i := range 2 {
		r, err := b.lab.Node(i+1).StartRouter(ctx, testlab.Keepalived, cfg)
		if err != nil {
			return err
		}
		rs[i] = r
		want := "master"
		if i == 1 {
			want = "backup"
		}
		if err := r.WaitState(ctx, want); err != nil {
			return err
		}
	}
	defer func() {
		for _, r := range rs {
			_ = r.Term(context.Background())
		}
	}()
	var took, gaps []time.Duration
	fmt.Fprintf(b.out, "%4s %-14s %12s %10s\n", "run", "switch", "SIGHUP->VIP", "VIP gap")
	for i := range runs {
		m, nb := rs[i%2], rs[1-i%2]
		if _, err := b.tl.WaitAdvert(ctx, time.Now(), "an advert of "+m.String(), testlab.From(m.Node, 51)); err != nil {
			return err
		}
		hup := time.Now()
		if err := reloadKeepalived(m, 50); err != nil {
			return err
		}
		add, err := b.tl.WaitVIP(ctx, nb.Node, true, hup)
		if err != nil {
			return err
		}
		rel, err := b.tl.WaitVIP(ctx, m.Node, false, hup)
		if err != nil {
			return err
		}
		took, gaps = append(took, add.At.Sub(hup)), append(gaps, add.At.Sub(rel.At))
		fmt.Fprintf(b.out, "%4d %-14s %12s %10s\n", i+1, m.Node.Name+" -> "+nb.Node.Name, ms1(add.At.Sub(hup)), ms1(add.At.Sub(rel.At)))
		// Back to 100 on the new Backup, which must stay Backup (equal priority, no preemption).
		if err := reloadKeepalived(m, 100); err != nil {
			return err
		}
		if err := waitQuietBackup(ctx, b.tl, m, nb, 51); err != nil {
			return err
		}
	}
	fmt.Fprintf(b.out, "keepalived SIGHUP -> VIP on the new Master: median %s, worst %s (Master_Down_Interval at priority 100: %s);\n",
		ms1(median(took)), ms1(slices.Max(took)), ms1(testlab.MasterDownInterval(time.Second, 100)))
	fmt.Fprintf(b.out, "VIP gap median %s, worst %s; no data sync, no lines, no services\n", ms1(median(gaps)), ms1(slices.Max(gaps)))
	return nil
}

// reloadKeepalived rewrites r's keepalived.conf with priority p and sends SIGHUP.
func reloadKeepalived(r *testlab.Router, p uint8) error {
	r.Config.Priority = p
	text, err := testlab.KeepalivedConf(r.Node, r.Config)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(r.Dir, "keepalived.conf"), []byte(text), 0o644); err != nil {
		return err
	}
	return r.Proc().Signal(syscall.SIGHUP)
}

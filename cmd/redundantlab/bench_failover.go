//go:build linux

package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/redundantd/redundantd/testlab"
)

func init() {
	register("bench failover", "unplanned (SIGKILL) and planned (SIGTERM) failover times, redundantd vs keepalived", runBenchFailover)
}

// failoverSeries is the measured takeovers of one implementation in one mode.
type failoverSeries struct {
	impl    testlab.Impl
	planned bool
	runs    []time.Duration // reference advert -> VIP on the new Master
	signal  []time.Duration // the signal -> VIP on the new Master
	adverts []time.Duration // reference advert -> the new Master's first advert
	theory  time.Duration
	margin  time.Duration // the target is theory + margin
}

// targetMargin is what the project allows beyond the RFC time for scheduling and address
// installation: 20 ms at version 2's whole-second adverts, 5 ms for version 3's sub-second
// ones (issue 8: Master_Down_Interval + 5 ms, 0.366 s at priority 100 and 100 ms adverts).
func targetMargin(version uint8) time.Duration {
	if version == 3 {
		return 5 * time.Millisecond
	}
	return 20 * time.Millisecond
}

func (s failoverSeries) mode() string {
	if s.planned {
		return "planned (SIGTERM, from the priority-0 advert)"
	}
	return "unplanned (SIGKILL, from the last advert)"
}

func (s failoverSeries) median() time.Duration { return median(s.runs) }

func median(runs []time.Duration) time.Duration {
	r := slices.Clone(runs)
	slices.Sort(r)
	if len(r) == 0 {
		return 0
	}
	if len(r)%2 == 1 {
		return r[len(r)/2]
	}
	return (r[len(r)/2-1] + r[len(r)/2]) / 2
}

func (s failoverSeries) worst() time.Duration { return slices.Max(s.runs) }
func (s failoverSeries) best() time.Duration  { return slices.Min(s.runs) }

// tenths is d in milliseconds rounded to 0.1 ms: the two implementations differ by about a
// millisecond, which whole milliseconds would hide or exaggerate.
func tenths(d time.Duration) float64 {
	return float64(d.Round(100*time.Microsecond)) / float64(time.Millisecond)
}

func ms1(d time.Duration) string { return fmt.Sprintf("%.1f ms", tenths(d)) }

func runBenchFailover(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("bench failover", flag.ContinueOnError)
	runs := fs.Int("runs", 10, "failovers of each kind per implementation")
	only := fs.String("impl", "both", "redundantd, keepalived or both")
	verbose := fs.Bool("v", false, "print every failover as it is measured")
	peerLink := fs.Bool("peer", true, "also the peer link's scenarios (redundantd appliance pair): daemon crash, advert path cut with the link on a cable")
	cuts := fs.Int("cuts", 3, "advert path cuts in the peer link's scenario")
	version := fs.Uint("version", 2, "VRRP version: 2 (RFC 3768) or 3 (RFC 9568), keepalived's vrrp_version alike")
	interval := fs.Duration("interval", time.Second, "advert interval: whole seconds for -version 2, 10ms steps (10ms..40.95s) for -version 3")
	ipv6 := fs.Bool("ipv6", false, "an IPv6 group (fe80::1 and 2001:db8::64, adverts to ff02::12, Neighbor Advertisements); needs -version 3")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := checkFailoverFlags(*runs, *version, *interval, *ipv6); err != nil {
		return err
	}
	if os.Geteuid() != 0 {
		return errors.New("bench failover: the lab needs root (network namespaces)")
	}
	impls, err := benchImpls("bench failover", *only)
	if err != nil {
		return err
	}
	if slices.Contains(impls, testlab.Redundantd) {
		if _, err := testlab.BuildBinary(ctx, testlab.RedundantdPkg); err != nil {
			return err
		}
		defer testlab.RemoveBinaries()
	}

	lab, err := testlab.New(ctx, testlab.Options{Nodes: 2})
	if err != nil {
		return err
	}
	defer lab.Close()
	vips, family := []netip.Prefix{lab.DefaultVIP()}, "IPv4"
	if *ipv6 {
		vips, family = testlab.DefaultVIPs6(), "IPv6"
	}
	tl, err := lab.Record(ctx, vips[len(vips)-1].Addr())
	if err != nil {
		return err
	}
	cfg := testlab.VRRPConfig{Version: uint8(*version), VRID: benchVRID, Priority: 100, AdvertInterval: *interval, VIPs: vips}
	fmt.Printf("failover benchmark: lab %s, 2 nodes, VRRPv%d over %s (VIP %s), VRID %d, priority %d on both, adverts every %s, preempt off, %d runs of each kind\n",
		lab.Name, cfg.Version, family, tl.VIP, cfg.VRID, cfg.Priority, cfg.AdvertInterval, *runs)
	fmt.Println("times are from the reference advert seen on the bridge to the new Master's VIP appearing (netlink)")

	var results []failoverSeries
	for _, impl := range impls {
		res, err := benchImpl(ctx, lab, tl, impl, cfg, *runs, *verbose)
		if err != nil {
			return fmt.Errorf("%s: %w", impl, err)
		}
		results = append(results, res...)
	}
	var peer *peerLinkResults
	if *peerLink && slices.Contains(impls, testlab.Redundantd) {
		res, err := benchPeerLink(ctx, lab, tl, cfg, *runs, *cuts, *verbose)
		if err != nil {
			return fmt.Errorf("redundantd with the peer link: %w", err)
		}
		peer = &res
	}
	printFailoverResults(results)
	if peer != nil {
		printPeerLinkResults(*peer, results)
	}
	return nil
}

// checkFailoverFlags refuses a run count, version, interval and family that bench failover
// cannot run: the interval as the version carries it (RFC 3768 whole seconds, RFC 9568
// centiseconds), IPv6 only with version 3.
func checkFailoverFlags(runs int, version uint, interval time.Duration, ipv6 bool) error {
	if runs < 1 {
		return errors.New("bench failover: -runs must be at least 1")
	}
	switch {
	case version != 2 && version != 3:
		return fmt.Errorf("bench failover: -version %d: want 2 or 3", version)
	case version == 2 && (interval < time.Second || interval > 255*time.Second || interval%time.Second != 0):
		return fmt.Errorf("bench failover: -interval %v: version 2 carries whole seconds 1s..255s", interval)
	case version == 3 && (interval < 10*time.Millisecond || interval > 40950*time.Millisecond || interval%(10*time.Millisecond) != 0):
		return fmt.Errorf("bench failover: -interval %v: version 3 carries 10ms steps, 10ms..40.95s", interval)
	case ipv6 && version != 3:
		return errors.New("bench failover: -ipv6 needs -version 3 (RFC 9568; version 2 is IPv4 only)")
	}
	return nil
}

// benchImpl runs the SIGKILL series then the SIGTERM series for one implementation, the two
// nodes trading the Master role at each run, and stops both at the end.
func benchImpl(ctx context.Context, lab *testlab.Lab, tl *testlab.Timeline, impl testlab.Impl, cfg testlab.VRRPConfig, runs int, verbose bool) ([]failoverSeries, error) {
	fmt.Printf("\n%s: starting node1, then node2\n", impl)
	master, err := lab.Node(1).StartRouter(ctx, impl, cfg)
	if err != nil {
		return nil, err
	}
	if err := master.WaitState(ctx, "master"); err != nil {
		return nil, err
	}
	backup, err := lab.Node(2).StartRouter(ctx, impl, cfg)
	if err != nil {
		return nil, err
	}
	if err := waitQuietBackup(ctx, tl, backup, master, cfg.VRID); err != nil {
		return nil, err
	}
	var out []failoverSeries
	for _, planned := range []bool{false, true} {
		s := failoverSeries{impl: impl, planned: planned, margin: targetMargin(cfg.Version)}
		fmt.Printf("  %s:", s.mode())
		for i := 0; i < runs; i++ {
			f, err := testlab.MeasureFailover(ctx, tl, master, backup, planned)
			if err != nil {
				return nil, err
			}
			if err := backup.WaitState(ctx, "master"); err != nil {
				return nil, err
			}
			s.runs = append(s.runs, f.Elapsed())
			s.signal = append(s.signal, f.VIP.At.Sub(f.Signal))
			if !f.FirstAdvert.At.IsZero() {
				s.adverts = append(s.adverts, f.FirstAdvert.At.Sub(f.Ref.At))
			}
			s.theory = f.Theory()
			if verbose {
				fmt.Printf("\n    run %d: %s -> %s %s", i+1, f.From.Node.Name, f.To.Node.Name, ms1(f.Elapsed()))
			} else {
				fmt.Printf(" %.1f", tenths(f.Elapsed()))
			}
			// The stopped node returns as Backup (preempt off) and is the next Backup.
			if err := master.Start(ctx); err != nil {
				return nil, err
			}
			if err := waitQuietBackup(ctx, tl, master, backup, cfg.VRID); err != nil {
				return nil, err
			}
			master, backup = backup, master
		}
		fmt.Println(" ms")
		out = append(out, s)
	}
	for _, r := range []*testlab.Router{master, backup} {
		if err := r.Term(ctx); err != nil {
			return nil, fmt.Errorf("stopping %s: %w", r, err)
		}
	}
	if h, err := lab.Holders(tl.VIP); err != nil || len(h) != 0 {
		return nil, fmt.Errorf("after stopping %s the VIP is still held by %d nodes (%v)", impl, len(h), err)
	}
	return out, nil
}

// waitQuietBackup waits until b is Backup, holds no VIP, and an advert of m has been seen
// after b reported Backup (so b's Master_Down timer runs from a real advert).
func waitQuietBackup(ctx context.Context, tl *testlab.Timeline, b, m *testlab.Router, vrid uint8) error {
	wctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if err := b.WaitState(wctx, "backup"); err != nil {
		return err
	}
	if _, err := tl.WaitAdvert(wctx, time.Now(), "an advert of "+m.String(), testlab.From(m.Node, vrid)); err != nil {
		return err
	}
	for {
		ok, err := b.Node.HasAddr(tl.VIP)
		if err != nil {
			return err
		}
		if !ok {
			return nil
		}
		select {
		case <-wctx.Done():
			return fmt.Errorf("%s still holds the stale VIP after restarting", b)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func printFailoverResults(results []failoverSeries) {
	fmt.Println()
	fmt.Printf("%-11s %-46s %4s %9s %9s %9s %9s %9s %10s\n", "impl", "failover", "runs", "best", "median", "worst", "RFC", "target", "advert p50")
	for _, s := range results {
		fmt.Printf("%-11s %-46s %4d %9s %9s %9s %9s %9s %10s\n", s.impl, s.mode(), len(s.runs),
			ms1(s.best()), ms1(s.median()), ms1(s.worst()), ms1(s.theory), ms1(s.theory+s.margin), ms1(median(s.adverts)))
	}
	fmt.Println("(best/median/worst: to the VIP on the new Master; advert p50: to its first advert)")
	fmt.Println()
	for _, s := range results {
		if s.impl != testlab.Redundantd {
			continue
		}
		target := s.theory + s.margin
		verdict := "within target"
		if s.worst() > target {
			verdict = "MISSED target"
		}
		line := fmt.Sprintf("redundantd %s: worst %s vs target %s: %s", strings.SplitN(s.mode(), " ", 2)[0], ms1(s.worst()), ms1(target), verdict)
		for _, k := range results {
			if k.impl == testlab.Keepalived && k.planned == s.planned {
				cmp := "not slower than keepalived"
				if s.median() > k.median() || s.worst() > k.worst() {
					cmp = "SLOWER than keepalived"
				}
				line += fmt.Sprintf("; median %s vs keepalived %s, worst %s vs %s: %s",
					ms1(s.median()), ms1(k.median()), ms1(s.worst()), ms1(k.worst()), cmp)
			}
		}
		fmt.Println(line)
	}
}

// benchImpls is the -impl choice of bench (redundantd, keepalived or both), without
// keepalived when it is not installed (said on stdout: the figures then have no reference).
func benchImpls(bench, only string) ([]testlab.Impl, error) {
	var impls []testlab.Impl
	switch only {
	case "both":
		impls = []testlab.Impl{testlab.Redundantd, testlab.Keepalived}
	case "redundantd", "keepalived":
		impls = []testlab.Impl{testlab.Impl(only)}
	default:
		return nil, fmt.Errorf("%s: -impl %q: want redundantd, keepalived or both", bench, only)
	}
	if slices.Contains(impls, testlab.Keepalived) && testlab.KeepalivedPath() == "" {
		fmt.Println("keepalived is not installed: measuring redundantd only (no reference)")
		impls = slices.DeleteFunc(impls, func(i testlab.Impl) bool { return i == testlab.Keepalived })
	}
	if len(impls) == 0 {
		return nil, fmt.Errorf("%s: nothing to measure", bench)
	}
	return impls, nil
}

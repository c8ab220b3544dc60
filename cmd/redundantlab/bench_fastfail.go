//go:build linux

package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/redundantd/redundantd/testlab"
)

// The peer link's scenarios of `bench failover` (issue 8 sections 4 and 5): the daemon crash
// that the link reports at once, and the advert path cut while the link, on a cable of its
// own, shows the Master alive. Both run redundantd as the appliance pair (replication, the
// peer link, a PBX service) in the lab of the protocol series, after them.

// crashTarget is issue 8's target for SIGKILL of the Master's daemon to the VIP on the Backup.
const crashTarget = 50 * time.Millisecond

// benchVRID is the group of every series of bench failover.
const benchVRID = 51

// peerLinkResults is what the two scenarios measured.
type peerLinkResults struct {
	crash      []time.Duration // SIGKILL -> VIP on the Backup
	byRule     int             // takeovers the crash rule made (the rest: the protocol's timer)
	cuts       int             // advert path cuts held without a takeover
	cutFor     time.Duration
	cutEvents  int           // "adverts lost" events raised, one per cut expected
	cutTakeovs int           // takeovers during the cuts (want 0)
	cutKill    time.Duration // SIGKILL of the Master during a cut -> VIP on the Backup
	cutKillBy  string        // how that takeover was made
	lost       time.Duration // host lost (bridge and cable cut): last advert -> VIP on the Backup
	lostBy     string
	lostTheory time.Duration // Master_Down_Interval
}

// benchPeerLink runs the crash series (runs SIGKILLs, the nodes trading the Master role) with
// the peer link on the bridge, then cuts the advert path cuts times with the link on a cable,
// and kills the Master during a last cut.
func benchPeerLink(ctx context.Context, lab *testlab.Lab, tl *testlab.Timeline, cfg testlab.VRRPConfig, runs, cuts int, verbose bool) (peerLinkResults, error) {
	var res peerLinkResults
	for _, n := range lab.Nodes() { // the protocol series' state (events, last role) goes
		if err := os.RemoveAll(filepath.Join(lab.Dir, n.Name+"-"+string(testlab.Redundantd))); err != nil {
			return res, err
		}
	}
	ps, err := testlab.NewPBXPair(lab)
	if err != nil {
		return res, err
	}
	for _, p := range ps { // a check starved by a loaded machine must not hand the role over
		p.CheckInterval = time.Minute
	}
	cfgs := [2]testlab.VRRPConfig{cfg, cfg}
	fmt.Printf("\nredundantd with the peer link ([peer] interval 200ms, on the bridge): starting node1, then node2\n")
	if err := testlab.StartPBXs(ctx, lab, ps, cfgs, [2]string{}); err != nil {
		return res, err
	}
	fmt.Print("  daemon crash (SIGKILL, from the signal to the VIP on the Backup):")
	master, backup := ps[0], ps[1]
	for i := 0; i < runs; i++ {
		d, how, err := measureCrash(ctx, tl, master, backup)
		if err != nil {
			return res, err
		}
		res.crash = append(res.crash, d)
		if how == "crash rule" {
			res.byRule++
		}
		if verbose {
			fmt.Printf("\n    run %d: %s -> %s %s (%s)", i+1, master.Router.Node.Name, backup.Router.Node.Name, ms1(d), how)
		} else {
			fmt.Printf(" %.1f", tenths(d))
		}
		if err := master.Router.Start(ctx); err != nil {
			return res, err
		}
		if err := waitPeerBackup(ctx, tl, master, backup); err != nil {
			return res, err
		}
		master, backup = backup, master
	}
	fmt.Println(" ms")
	for _, p := range ps {
		if err := p.Router.Term(ctx); err != nil {
			return res, fmt.Errorf("stopping %s: %w", p.Router, err)
		}
	}

	if err := testlab.CablePeers(lab, ps); err != nil {
		return res, err
	}
	fmt.Printf("redundantd with the peer link on a cable of its own, adverts on the bridge: starting node1, then node2\n")
	if err := testlab.StartPBXs(ctx, lab, ps, cfgs, [2]string{}); err != nil {
		return res, err
	}
	master, backup = ps[0], ps[1]
	if err := waitPeerBackup(ctx, tl, backup, master); err != nil {
		return res, err
	}
	res.cutFor = 2 * testlab.MasterDownInterval(cfg.AdvertInterval, cfg.Priority)
	fmt.Printf("  advert path cut (bridge isolated, the cable up) for %s each:", res.cutFor.Round(time.Millisecond))
	for i := 0; i < cuts; i++ {
		took, raised, err := measureCut(ctx, lab, tl, master, backup, res.cutFor, true)
		if err != nil {
			return res, err
		}
		res.cuts++
		res.cutTakeovs += took
		res.cutEvents += raised
		fmt.Printf(" %d takeover(s), %d event(s);", took, raised)
	}
	fmt.Println()
	res.lostTheory = testlab.MasterDownInterval(cfg.AdvertInterval, cfg.Priority)
	if res.lost, res.lostBy, err = measureHostLost(ctx, lab, tl, master, backup); err != nil {
		return res, err
	}
	fmt.Printf("  host lost (the Master cut off the bridge and the cable): VIP on %s %s after its last advert (%s)\n",
		backup.Router.Node.Name, ms1(res.lost), res.lostBy)
	master, backup = backup, master // the healed split leaves the higher address Master
	if err := waitPeerBackup(ctx, tl, backup, master); err != nil {
		return res, err
	}
	d, how, err := measureCutKill(ctx, lab, tl, master, backup)
	if err != nil {
		return res, err
	}
	res.cutKill, res.cutKillBy = d, how
	fmt.Printf("  SIGKILL of the Master during a cut: VIP on %s after %s (%s)\n", backup.Router.Node.Name, ms1(d), how)
	if err := backup.Router.Term(ctx); err != nil {
		return res, fmt.Errorf("stopping %s: %w", backup.Router, err)
	}
	return res, nil
}

// measureCrash kills master's daemon and times the VIP on backup from the signal; how says
// whether the crash rule or Master_Down_Timer made the takeover (from backup's event).
func measureCrash(ctx context.Context, tl *testlab.Timeline, master, backup *testlab.PBX) (time.Duration, string, error) {
	if !tl.Holds(master.Router.Node) {
		return 0, "", fmt.Errorf("%s does not hold the VIP before the crash", master.Router)
	}
	seq, err := backup.LastSeq(ctx)
	if err != nil {
		return 0, "", err
	}
	return killTimed(ctx, tl, master, backup, seq)
}

// killTimed sends SIGKILL to master's daemon, times the VIP on backup from the signal, waits
// for the exit and reads how backup took over (its first "became master" event after seq).
func killTimed(ctx context.Context, tl *testlab.Timeline, master, backup *testlab.PBX, seq uint64) (time.Duration, string, error) {
	wctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	killed := time.Now()
	if err := master.Router.Proc().Signal(syscall.SIGKILL); err != nil {
		return 0, "", err
	}
	ev, err := tl.WaitVIP(wctx, backup.Router.Node, true, killed)
	if err != nil {
		return 0, "", fmt.Errorf("%s did not take over after SIGKILL of %s: %w", backup.Router, master.Router, err)
	}
	if _, err := master.Router.Proc().Wait(wctx); err != nil {
		return 0, "", err
	}
	how, err := takeoverHow(wctx, backup, seq)
	return ev.At.Sub(killed), how, err
}

// takeoverHow reads backup's "became master" event after seq: the crash rule, the
// protocol's timer, or what else it says.
func takeoverHow(ctx context.Context, backup *testlab.PBX, seq uint64) (string, error) {
	e, err := backup.WaitEvent(ctx, "became master", seq)
	switch {
	case err != nil:
		return "", err
	case strings.Contains(e.Description, "closed without a goodbye"):
		return "crash rule", nil
	case strings.Contains(e.Description, "Master_Down_Interval"):
		return "Master_Down_Timer", nil
	}
	return e.Description, nil
}

// waitPeerBackup waits until b is a quiet Backup of m (no VIP, an advert of m heard since) and
// b's peer link shows m as Master holding its address, so that the next crash starts from a
// settled pair.
func waitPeerBackup(ctx context.Context, tl *testlab.Timeline, b, m *testlab.PBX) error {
	if err := waitQuietBackup(ctx, tl, b.Router, m.Router, benchVRID); err != nil {
		return err
	}
	wctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	for {
		st, err := b.Status(wctx)
		if err == nil && st.Peer != nil && st.Peer.Connected && st.Peer.Role == "master" && st.Peer.HoldsAddresses {
			return nil
		}
		select {
		case <-wctx.Done():
			return fmt.Errorf("%s's peer link does not show %s as Master holding the VIP: %w", b.Router, m.Router, wctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// measureCut isolates the bridge for d while the peer link runs on the cable and reports the
// takeovers seen (the VIP on backup) and the "adverts lost" events backup raised; heal rejoins
// the nodes and waits for master's adverts again.
func measureCut(ctx context.Context, lab *testlab.Lab, tl *testlab.Timeline, master, backup *testlab.PBX, d time.Duration, heal bool) (int, int, error) {
	seq, err := backup.LastSeq(ctx)
	if err != nil {
		return 0, 0, err
	}
	cut := time.Now()
	if err := lab.Partition(true); err != nil {
		return 0, 0, err
	}
	wctx, cancel := context.WithTimeout(ctx, d)
	_, verr := tl.WaitVIP(wctx, backup.Router.Node, true, cut)
	cancel()
	took := 0
	switch {
	case verr == nil:
		took = 1
	case !errors.Is(verr, context.DeadlineExceeded):
		return 0, 0, verr
	}
	evs, err := backup.Events(ctx)
	if err != nil {
		return 0, 0, err
	}
	raised := 0
	for _, e := range evs {
		if e.Seq > seq && e.Name == "adverts lost" {
			raised++
		}
	}
	if !heal {
		return took, raised, nil
	}
	if err := lab.Partition(false); err != nil {
		return 0, 0, err
	}
	return took, raised, waitPeerBackup(ctx, tl, backup, master)
}

// measureCutKill cuts the advert path, waits for the hold, then kills master's daemon and
// times the VIP on backup from the signal.
func measureCutKill(ctx context.Context, lab *testlab.Lab, tl *testlab.Timeline, master, backup *testlab.PBX) (time.Duration, string, error) {
	seq, err := backup.LastSeq(ctx)
	if err != nil {
		return 0, "", err
	}
	if err := lab.Partition(true); err != nil {
		return 0, "", err
	}
	defer lab.Partition(false)
	wctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if _, err := backup.WaitEvent(wctx, "adverts lost", seq); err != nil {
		return 0, "", err
	}
	return killTimed(ctx, tl, master, backup, seq)
}

// measureHostLost cuts master off everything (its bridge port isolated from the backup, the
// cable pulled) while it runs on, and times the VIP on backup from master's last advert
// before the cut: the hold must not delay the protocol's takeover. Then it heals the network
// and waits until backup, the higher address at equal priority, is the only Master.
func measureHostLost(ctx context.Context, lab *testlab.Lab, tl *testlab.Timeline, master, backup *testlab.PBX) (time.Duration, string, error) {
	seq, err := backup.LastSeq(ctx)
	if err != nil {
		return 0, "", err
	}
	cut := time.Now()
	if err := lab.Partition(true); err != nil {
		return 0, "", err
	}
	if err := master.Router.Node.SetCable(false); err != nil {
		return 0, "", err
	}
	wctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	ev, err := tl.WaitVIP(wctx, backup.Router.Node, true, cut)
	if err != nil {
		return 0, "", fmt.Errorf("%s did not take over from the lost %s: %w", backup.Router, master.Router, err)
	}
	ref, ok := tl.LastAdvert(cut, testlab.From(master.Router.Node, benchVRID))
	if !ok {
		return 0, "", fmt.Errorf("no advert of %s before the cut", master.Router)
	}
	how, err := takeoverHow(wctx, backup, seq)
	if err != nil {
		return 0, "", err
	}
	if err := lab.Partition(false); err != nil {
		return 0, "", err
	}
	if err := master.Router.Node.SetCable(true); err != nil {
		return 0, "", err
	}
	if err := master.Router.WaitState(wctx, "backup"); err != nil {
		return 0, "", err
	}
	return ev.At.Sub(ref.At), how, nil
}

// printPeerLinkResults prints the crash figures beside keepalived's SIGKILL series of the same
// run (also from the signal), and the cut scenario's outcome.
func printPeerLinkResults(res peerLinkResults, results []failoverSeries) {
	fmt.Println()
	fmt.Printf("%-11s %-52s %4s %9s %9s %9s %9s\n", "impl", "daemon crash, SIGKILL to the VIP on the Backup", "runs", "best", "median", "worst", "target")
	fmt.Printf("%-11s %-52s %4d %9s %9s %9s %9s\n", "redundantd", "peer link closed by the kernel (crash rule)", len(res.crash),
		ms1(sliceMin(res.crash)), ms1(median(res.crash)), ms1(sliceMax(res.crash)), ms1(crashTarget))
	for _, s := range results {
		if s.planned || len(s.signal) == 0 {
			continue
		}
		fmt.Printf("%-11s %-52s %4d %9s %9s %9s %9s\n", s.impl, "protocol only (Master_Down_Interval)", len(s.signal),
			ms1(sliceMin(s.signal)), ms1(median(s.signal)), ms1(sliceMax(s.signal)), "")
	}
	verdict := "within target"
	if sliceMax(res.crash) > crashTarget {
		verdict = "MISSED target"
	}
	fmt.Printf("redundantd daemon crash: worst %s vs target %s: %s; %d of %d takeovers by the crash rule\n",
		ms1(sliceMax(res.crash)), ms1(crashTarget), verdict, res.byRule, len(res.crash))
	fmt.Printf("advert path cut with the peer link on a cable: %d cut(s) of %s, %d takeover(s) (want 0), %d \"adverts lost\" event(s) (want %d); "+
		"SIGKILL of the Master during a cut: VIP on the Backup after %s (%s)\n",
		res.cuts, res.cutFor.Round(time.Millisecond), res.cutTakeovs, res.cutEvents, res.cuts, ms1(res.cutKill), res.cutKillBy)
	fmt.Printf("host lost while its adverts run (bridge and cable cut), peer link on the cable: VIP on the Backup %s after the last advert (%s; Master_Down_Interval %s)\n",
		ms1(res.lost), res.lostBy, ms1(res.lostTheory))
}

func sliceMin(d []time.Duration) time.Duration {
	if len(d) == 0 {
		return 0
	}
	return slices.Min(d)
}

func sliceMax(d []time.Duration) time.Duration {
	if len(d) == 0 {
		return 0
	}
	return slices.Max(d)
}

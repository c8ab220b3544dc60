package testlab

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/redundantd/redundantd/appliance"
	"github.com/redundantd/redundantd/testlab/poll"
)

// Issue 8 section 2 with the daemon: redundantd on two nodes, each with [redundancy] (VRID
// 51) and a [[redundancy.group]] (VRID 52) on the lab's one bridge. The Master's link is
// cut: both groups move to the other node, whose API shows one role; the cut node holds
// neither address. (The lab has one bridge, so the two groups share eth0 here; two
// interfaces are tested with the engine, vrrp.TestUnitMovesTogether.)
func TestRedundantdGroupsMoveTogether(t *testing.T) {
	t.Parallel()
	l, ctx, tl := recordedLab(t, 60*time.Second)
	second := netip.PrefixFrom(l.DefaultVIP().Addr().Next(), l.DefaultVIP().Bits())
	cfg := VRRPConfig{Extra: fmt.Sprintf("[[redundancy.group]]\ngroup_id = 52\nvirtual_ips = [%q]\n", second)}
	master, backup := pair(t, ctx, l, tl, Redundantd, Redundantd, cfg)
	holds := func(n *Node, want bool) func() bool {
		return func() bool {
			a, err1 := n.HasAddr(l.DefaultVIP().Addr())
			b, err2 := n.HasAddr(second.Addr())
			return err1 == nil && err2 == nil && a == want && b == want
		}
	}
	if err := poll.Context(ctx, 20*time.Millisecond, holds(master.Node, true)); err != nil {
		t.Fatalf("node1 does not hold both VIPs: %v", err)
	}

	cut := time.Now()
	if err := master.Node.CutLink(); err != nil {
		t.Fatal(err)
	}
	if err := backup.WaitState(ctx, "master"); err != nil {
		t.Fatal(err)
	}
	if err := poll.Context(ctx, 20*time.Millisecond, holds(backup.Node, true)); err != nil {
		t.Fatalf("node2 does not hold both VIPs: %v", err)
	}
	t.Logf("both groups on node2 %v after node1's link was cut", time.Since(cut).Round(time.Millisecond))
	if err := master.WaitState(ctx, "initialize"); err != nil {
		t.Fatal(err)
	}
	if err := poll.Context(ctx, 20*time.Millisecond, holds(master.Node, false)); err != nil {
		t.Errorf("node1 kept a VIP without carrier: %v", err)
	}
	st, err := backup.Node.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.State != "master" {
		t.Errorf("node2's API: state %q; want master (the unit's role)", st.State)
	}
}

// Issue 8 section 2 with a LAN and a WAN: redundantd on two nodes of a lab with a second
// bridge, each with [redundancy] (VRID 51, version 2, 1 s) on eth0 (br0) and a
// [[redundancy.group]] (VRID 52, version 3, 100 ms) on eth1 (br1). Only the Master's WAN
// cable is pulled: the whole unit leaves Master, so both virtual IPs move to the other node,
// the LAN one too; the cut node's API reports one role for the unit and why it left Master.
// When the cable is back, the node rejoins as Backup and takes nothing back (no preempt).
func TestRedundantdGroupsLANWANCut(t *testing.T) {
	t.Parallel()
	l := NewT(t, Options{WAN: true})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	tl, err := l.Record(ctx, l.DefaultVIP().Addr())
	if err != nil {
		t.Fatal(err)
	}
	wanVIP := l.DefaultWANVIP()
	cfg := VRRPConfig{Extra: fmt.Sprintf("[[redundancy.group]]\ninterface = \"eth1\"\ngroup_id = 52\nversion = 3\nadvert_interval = \"100ms\"\nvirtual_ips = [%q]\n", wanVIP)}
	master, backup := pair(t, ctx, l, tl, Redundantd, Redundantd, cfg)
	holds := func(n *Node, want bool) func() bool { return holdsBoth(n, l.DefaultVIP().Addr(), wanVIP.Addr(), want) }
	if err := poll.Context(ctx, 20*time.Millisecond, holds(master.Node, true)); err != nil {
		t.Fatalf("node1 does not hold both VIPs: %v", err)
	}
	// node2's WAN group hears node1's 100 ms adverts: the unit is settled.
	waitGroups(t, ctx, backup.Node, func(gs []appliance.GroupStatus) bool {
		return gs[1].State == "backup" && gs[1].MasterIP == master.Node.WAN.Addr.String()
	}, "node2's WAN group hearing node1")

	cut := time.Now()
	if err := master.Node.WAN.Cut(); err != nil {
		t.Fatal(err)
	}
	if err := backup.WaitState(ctx, "master"); err != nil {
		t.Fatal(err)
	}
	if err := poll.Context(ctx, 20*time.Millisecond, holds(backup.Node, true)); err != nil {
		t.Fatalf("node2 does not hold both VIPs: %v", err)
	}
	t.Logf("both groups on node2 %v after node1's WAN link was cut", time.Since(cut).Round(time.Millisecond))
	if err := master.WaitState(ctx, "initialize"); err != nil {
		t.Fatal(err)
	}
	if err := poll.Context(ctx, 20*time.Millisecond, holds(master.Node, false)); err != nil {
		t.Fatalf("node1 kept a VIP (the LAN one too must go): %v", err)
	}
	checkLeftForWAN(t, ctx, master.Node)
	if st, err := backup.Node.ApplianceStatus(ctx); err != nil || st.State != "master" || len(st.Holding) != 2 {
		t.Errorf("node2's API: %v, state %q holding %v; want master holding both", err, st.State, st.Holding)
	}

	if err := master.Node.WAN.Restore(); err != nil {
		t.Fatal(err)
	}
	if err := master.WaitState(ctx, "backup"); err != nil {
		t.Fatal(err)
	}
	waitGroups(t, ctx, master.Node, func(gs []appliance.GroupStatus) bool {
		return gs[0].State == "backup" && gs[1].State == "backup" && gs[1].Fault == ""
	}, "node1's groups both rejoining as Backup")
	if !holds(master.Node, false)() || !holds(backup.Node, true)() {
		t.Errorf("after node1's WAN link came back: node1 holds a VIP, or node2 lost one")
	}
	if st, err := backup.Node.ApplianceStatus(ctx); err != nil || st.State != "master" {
		t.Errorf("node2's API after the restore: %v, state %q; want master", err, st.State)
	}
}

// holdsBoth says whether n holds (want) or holds neither of (!want) the addresses a and b.
func holdsBoth(n *Node, a, b netip.Addr, want bool) func() bool {
	return func() bool {
		ha, err1 := n.HasAddr(a)
		hb, err2 := n.HasAddr(b)
		return err1 == nil && err2 == nil && ha == want && hb == want
	}
}

// waitGroups waits until the two groups of n's API status satisfy cond.
func waitGroups(t *testing.T, ctx context.Context, n *Node, cond func([]appliance.GroupStatus) bool, what string) {
	t.Helper()
	if err := poll.Context(ctx, 20*time.Millisecond, func() bool {
		st, err := n.ApplianceStatus(ctx)
		return err == nil && len(st.Groups) == 2 && cond(st.Groups)
	}); err != nil {
		t.Fatalf("waiting for %s: %v", what, err)
	}
}

// checkLeftForWAN checks the API of a node whose WAN cable was pulled while it was Master:
// one role for the unit (initialize, at fault by the WAN group) and why it left Master.
func checkLeftForWAN(t *testing.T, ctx context.Context, n *Node) {
	t.Helper()
	st, err := n.ApplianceStatus(ctx)
	if err != nil {
		t.Fatal(err)
	}
	lm := st.LeftMaster
	if st.State != "initialize" || !strings.HasPrefix(st.Fault, "group eth1/52: ") || lm == nil ||
		lm.From != "master" || lm.Cause != "interface down" || !strings.HasPrefix(lm.Reason, "group eth1/52: ") {
		t.Errorf("%s's API: state %q, fault %q, left_master %+v; want the unit at fault by eth1/52, left Master for it", n.Name, st.State, st.Fault, lm)
	}
	if len(st.Groups) != 2 || st.Groups[0].State == "master" || st.Groups[1].State != "initialize" {
		t.Errorf("%s's groups %+v: want eth0/51 out of Master, eth1/52 in initialize", n.Name, st.Groups)
	}
}

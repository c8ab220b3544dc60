package testlab

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

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

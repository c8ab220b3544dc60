package testlab

import (
	"context"
	"fmt"
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	"github.com/redundantd/redundantd/appliance"
	"github.com/redundantd/redundantd/testlab/poll"
)

// TestKamailioUnderRedundantd runs Kamailio as a redundantd [[service]] on an appliance pair
// (each daemon sees its own replicated tree at the same path): the Master starts it, the
// registrations of two baresip phones (3600 s expiry) reach the Backup through the sync,
// and after a swap and then a power loss of the new Master (link cut, every process of the
// node killed) phone A's call to phone B is answered through the virtual IP without either
// phone registering again. Kamailio never runs on two nodes at once. Times are logged.
func TestKamailioUnderRedundantd(t *testing.T) {
	requirePBX(t)
	requireUnshare(t)
	l, ctx, _ := recordedLab(t, 90*time.Second)
	vip := l.DefaultVIP()
	sipVIP := netip.AddrPortFrom(vip.Addr(), 5060)
	phones, err := l.AddHost("phones")
	if err != nil {
		t.Fatal(err)
	}
	// Each daemon (and Kamailio, its child) sees its own tree at l.PBXTree(); the live
	// database and the runtime files stay under the node's own directory.
	var files [2]KamailioFiles
	var extra [2]string
	for i := range 2 {
		n := l.Node(i + 1)
		files[i], err = n.WriteKamailio(KamailioConfig{VIP: vip.Addr(), Tree: filepath.Join(l.PBXTree(), "kamailio")})
		if err != nil {
			t.Fatal(err)
		}
		extra[i] = files[i].ServiceTOML()
	}
	// Kamailio daemonizes out of the lab's process groups: kill what is left by pid, before
	// the lab removes the namespaces (cleanups run last-registered first).
	t.Cleanup(func() {
		for _, n := range l.Nodes() {
			n.KillKamailio()
		}
	})
	w := WatchKamailio(l, vip.Addr())
	t.Cleanup(func() { w.Stop() }) // before the lab closes, even when the test fails early
	ps, err := StartPBXPair(ctx, l, [2]VRRPConfig{{Priority: 150}, {Priority: 100}}, extra)
	if err != nil {
		t.Fatal(err)
	}
	a, b := ps[0], ps[1]
	if !waitUp(ctx, l.Node(1)) {
		t.Fatal("kamailio did not come up on the Master")
	}
	snapOn := func(p *PBX) string { return filepath.Join(p.Tree, "kamailio", "usrloc.db") }

	alice, err := phones.StartPhone(ctx, PhoneConfig{User: "alice", Registrar: sipVIP})
	if err != nil {
		t.Fatal(err)
	}
	bob, err := phones.StartPhone(ctx, PhoneConfig{User: "bob", Registrar: sipVIP})
	if err != nil {
		t.Fatal(err)
	}
	registered := time.Now()
	if _, err := alice.Call(ctx, "bob"); err != nil {
		t.Fatalf("on node1: %v", err)
	}
	onBackup := waitUsers(ctx, t, snapOn(b), []string{"alice", "bob"})
	t.Logf("both registrations in the Backup's tree %v after the second REGISTER was answered (snapshot + sync with watch)",
		onBackup.Sub(registered).Round(time.Millisecond))

	probe := ServiceProbe{Watch: w, From: phones, SIP: sipVIP, Caller: alice, Callee: bob}

	// Planned: swap to node 2.
	var res appliance.SwapResult
	sw, err := probe.Measure(ctx, l.Node(2), func(ctx context.Context) error {
		if err := a.API(ctx, "POST", "/api/v1/swap", struct{}{}, &res); err != nil || res.State != "done" {
			return fmt.Errorf("swap: %+v, %w", res, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("swap timeline: %+v", res.Timeline)
	t.Logf("swap: %v", sw)
	if err := poll.Context(ctx, 20*time.Millisecond, func() bool {
		p1, _ := l.Node(1).KamailioPids()
		return len(p1) == 0
	}); err != nil {
		t.Fatalf("kamailio still runs on the old Master: %v", err)
	}
	if sw.Registers != [2]int{1, 1} {
		t.Fatalf("REGISTERs after the swap: alice %d, bob %d; want 1 each", sw.Registers[0], sw.Registers[1])
	}

	// Unplanned: node 2 loses power: its link is cut and every process of it is killed.
	loss, err := probe.Measure(ctx, l.Node(1), func(ctx context.Context) error {
		return l.Node(2).PowerLoss(ctx, b.Router.Proc())
	})
	if err != nil {
		t.Fatalf("after the loss of node2: %v", err)
	}
	t.Logf("loss of node2: %v", loss)
	if loss.Registers != [2]int{1, 1} {
		t.Fatalf("REGISTERs after the loss: alice %d, bob %d; want 1 each", loss.Registers[0], loss.Registers[1])
	}
	samples, both := w.Stop()
	if both > 0 {
		t.Errorf("kamailio ran on both nodes in %d of %d samples", both, samples)
	}
	t.Logf("%d samples (5 ms): kamailio on one node at most in each", samples)
}

// waitUp waits until Kamailio answers OPTIONS on the node's 127.0.0.1:5060.
func waitUp(ctx context.Context, n *Node) bool {
	for ctx.Err() == nil {
		if n.KamailioUp(ctx, 5060, 200*time.Millisecond) {
			return true
		}
	}
	return false
}

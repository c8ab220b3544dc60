package testlab

import (
	"context"
	"net/netip"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/redundantd/redundantd/appliance"
)

// since formats how long after the mark k was first seen ("-" when not yet).
func since(w *KamailioWatch, k string) string {
	d, ok := w.Since(k)
	if !ok {
		return "-"
	}
	return d.Round(time.Millisecond).String()
}

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
			pids, _ := n.KamailioPids()
			for _, pid := range pids {
				syscall.Kill(pid, syscall.SIGKILL)
			}
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

	// Planned: swap to node 2.
	start := time.Now()
	w.Mark(start)
	var res appliance.SwapResult
	if err := a.API(ctx, "POST", "/api/v1/swap", struct{}{}, &res); err != nil || res.State != "done" {
		t.Fatalf("swap: %+v, %v", res, err)
	}
	swapped := time.Since(start)
	t.Logf("swap timeline: %+v", res.Timeline)
	optAt, err := SIPPing(ctx, phones, sipVIP)
	if err != nil {
		t.Fatal(err)
	}
	callAt, err := alice.Call(ctx, "bob")
	if err != nil {
		t.Fatalf("after the swap: %v", err)
	}
	t.Logf("swap: answered in %v; VIP on node2 +%s, kamailio on node2 +%s, OPTIONS to the VIP answered +%v, alice->bob answered +%v",
		swapped.Round(time.Millisecond), since(w, "vip@node2"), since(w, "kamailio@node2"),
		optAt.Sub(start).Round(time.Millisecond), callAt.Sub(start).Round(time.Millisecond))
	if err := waitCond(ctx, 20*time.Millisecond, func() bool {
		p1, _ := l.Node(1).KamailioPids()
		return len(p1) == 0
	}); err != nil {
		t.Fatalf("kamailio still runs on the old Master: %v", err)
	}
	if a, b := alice.Registers(), bob.Registers(); a != 1 || b != 1 {
		t.Fatalf("REGISTERs after the swap: alice %d, bob %d; want 1 each", a, b)
	}

	// Unplanned: node 2 loses power: its link is cut and every process of it is killed.
	lost := time.Now()
	w.Mark(lost)
	if err := l.Node(2).CutLink(); err != nil {
		t.Fatal(err)
	}
	pids, _ := l.Node(2).KamailioPids()
	for _, pid := range pids {
		syscall.Kill(pid, syscall.SIGKILL)
	}
	if err := b.Router.Kill(ctx); err != nil {
		t.Fatal(err)
	}
	optAt, err = SIPPing(ctx, phones, sipVIP)
	if err != nil {
		t.Fatal(err)
	}
	callAt, err = alice.Call(ctx, "bob")
	if err != nil {
		t.Fatalf("after the loss of node2: %v", err)
	}
	t.Logf("loss of node2: VIP on node1 +%s, kamailio on node1 +%s, OPTIONS to the VIP answered +%v, alice->bob answered +%v",
		since(w, "vip@node1"), since(w, "kamailio@node1"),
		optAt.Sub(lost).Round(time.Millisecond), callAt.Sub(lost).Round(time.Millisecond))
	if a, b := alice.Registers(), bob.Registers(); a != 1 || b != 1 {
		t.Fatalf("REGISTERs after the loss: alice %d, bob %d; want 1 each", a, b)
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

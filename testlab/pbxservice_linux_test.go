package testlab

import (
	"context"
	"fmt"
	"net/netip"
	"path/filepath"
	"strings"
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
// phone registering again. A third phone registers on the new Master just before its power
// loss, and the Master is lost as soon as that registration is on the Backup (the snapshot
// tick plus the sync's watch delay after its 200 OK, docs/pbx.md): A's call to it is answered
// after the takeover without it registering again. Kamailio never runs on two nodes at once,
// and redundantd started it once per Master role (the event log). Times are logged.
func TestKamailioUnderRedundantd(t *testing.T) {
	requirePBX(t)
	requireUnshare(t)
	l, ctx, tl := recordedLab(t, 90*time.Second)
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

	probe := ServiceProbe{Watch: w, From: phones, SIP: sipVIP, Caller: alice, Callee: bob, Timeline: tl}

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
	waitStarts(ctx, t, b, 1) // node 2 started Kamailio once, at the swap

	// A fresh registration on the new Master: node 2 loses power as soon as it reached
	// node 1's tree, and not later.
	carol, err := phones.StartPhone(ctx, PhoneConfig{User: "carol", Registrar: sipVIP})
	if err != nil {
		t.Fatal(err)
	}
	onOld := waitUsers(ctx, t, snapOn(a), []string{"alice", "bob", "carol"})
	t.Logf("carol's registration in node1's tree %v after its REGISTER was answered on node2 (snapshot tick, snapshot, sync watch delay, transfer)",
		onOld.Sub(carol.RegisteredAt()).Round(time.Millisecond))

	// Unplanned: node 2 loses power: its link is cut and every process of it is killed.
	// The probe calls carol first: the new Master knows her from the replicated snapshot.
	probe.Callee = carol
	loss, err := probe.Measure(ctx, l.Node(1), func(ctx context.Context) error {
		return l.Node(2).PowerLoss(ctx, b.Router.Proc())
	})
	if err != nil {
		t.Fatalf("after the loss of node2: %v", err)
	}
	t.Logf("loss of node2, %v after carol's REGISTER was answered: %v", loss.At.Sub(carol.RegisteredAt()).Round(time.Millisecond), loss)
	if d, ok := loss.SinceAdvert(loss.VIP); ok {
		t.Logf("VIP on node1 %v after node2's last advert (node1's Master_Down_Interval %v)", d.Round(time.Millisecond), MasterDownInterval(time.Second, 150))
	}
	if _, err := alice.Call(ctx, "bob"); err != nil {
		t.Fatalf("alice -> bob after the loss of node2: %v", err)
	}
	if r := [3]int{alice.Registers(), bob.Registers(), carol.Registers()}; r != [3]int{1, 1, 1} {
		t.Fatalf("REGISTERs after the loss: alice %d, bob %d, carol %d; want 1 each", r[0], r[1], r[2])
	}
	// Node 1 started it twice: as the first Master and after the loss; never a second time
	// while it ran.
	waitStarts(ctx, t, a, 2)
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

// waitStarts waits until the node's event log holds want "started" events of the kamailio
// service, and fails the test when it holds more, or a failed start.
func waitStarts(ctx context.Context, t *testing.T, p *PBX, want int) {
	t.Helper()
	var started, failed int
	err := poll.Context(ctx, 50*time.Millisecond, func() bool {
		var evs []appliance.Event
		if err := p.API(ctx, "GET", "/api/v1/events", nil, &evs); err != nil {
			return false
		}
		started, failed = 0, 0
		for _, e := range evs {
			if e.Application != appliance.AppService || !strings.HasPrefix(e.Description, "service kamailio ") {
				continue
			}
			switch e.Name {
			case "started":
				started++
			case "start-failed":
				failed++
			}
		}
		return started >= want || failed > 0
	})
	if err != nil || started != want || failed > 0 {
		t.Fatalf("%s: kamailio started %d times, failed to start %d times; want %d starts (%v)", p.Router.Node.Name, started, failed, want, err)
	}
}

package testlab

import (
	"bytes"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/redundantd/redundantd/testlab/poll"
)

// Issue 8 section 3: the Master's interface is deleted (a driver reload, a VLAN recreated) and
// created again under the same name with a new index. The daemon leaves Master at once and
// releases the VIP, the Backup takes over, and when the interface is back the daemon rejoins
// as Backup without a restart and can take over again through the new interface.
func TestRedundantdInterfaceRecreated(t *testing.T) {
	t.Parallel()
	l, ctx, tl := recordedLab(t, 90*time.Second)
	master, backup := pair(t, ctx, l, tl, Redundantd, Redundantd, VRRPConfig{})
	oldMAC, err := master.Node.MAC()
	if err != nil {
		t.Fatal(err)
	}

	deleted := time.Now()
	if err := master.Node.DeleteLink(); err != nil {
		t.Fatal(err)
	}
	if err := master.WaitState(ctx, "initialize"); err != nil {
		t.Fatal(err)
	}
	if st, err := master.Node.Status(ctx); err != nil || st.Fault != "interface eth0 gone" {
		t.Errorf("node1's status with eth0 deleted: %+v, %v; want the fault %q", st, err, "interface eth0 gone")
	}
	ev, err := tl.WaitVIP(ctx, backup.Node, true, deleted)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("eth0 deleted: VIP on node2 %v later", ev.At.Sub(deleted).Round(time.Millisecond))

	recreated := time.Now()
	if err := master.Node.RecreateLink(); err != nil {
		t.Fatal(err)
	}
	newMAC, err := master.Node.MAC()
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(newMAC, oldMAC) {
		t.Logf("the new eth0 has the old MAC %s", newMAC)
	}
	if err := master.WaitState(ctx, "backup"); err != nil {
		t.Fatal(err)
	}
	t.Logf("eth0 recreated: node1 backup again within %v", time.Since(recreated).Round(time.Millisecond))
	if err := poll.Context(ctx, 20*time.Millisecond, func() bool {
		st, err := master.Node.Status(ctx)
		return err == nil && st.Fault == "" && st.MasterIP == backup.Node.Addr.String()
	}); err != nil {
		t.Fatalf("node1 does not follow node2 through the new eth0: %v", err)
	}

	// node2 stops: node1 hears its priority-0 advert and takes over, through the new
	// interface (its sockets are bound to it: the adverts and gratuitous ARPs come from the
	// new eth0's MAC).
	killed := time.Now()
	if err := backup.Term(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := tl.WaitVIP(ctx, master.Node, true, killed); err != nil {
		t.Fatal(err)
	}
	a, err := tl.WaitAdvert(ctx, killed, "an advert of node1 after the takeover", From(master.Node, 51))
	if err != nil {
		t.Fatal(err)
	}
	g, err := tl.WaitGARP(ctx, killed)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.SrcMAC, newMAC) || !bytes.Equal(g.SrcMAC, newMAC) {
		t.Errorf("advert from %s, gratuitous ARP from %s; want both from the new eth0's %s", a.SrcMAC, g.SrcMAC, newMAC)
	}
	if err := master.WaitState(ctx, "master"); err != nil {
		t.Fatal(err)
	}
	assertSoleMaster(t, ctx, l, tl, master)
}

// Issue 8 section 3: with garp_refresh the Master announces the VIP again once per period
// after its burst, for as long as it is Master; the Backup announces nothing.
func TestRedundantdGARPRefresh(t *testing.T) {
	t.Parallel()
	l, ctx, tl := recordedLab(t, 60*time.Second)
	const refresh = time.Second
	cfg := VRRPConfig{GARPCount: 2, GARPInterval: 100 * time.Millisecond, GARPRefresh: refresh}
	master, backup := pair(t, ctx, l, tl, Redundantd, Redundantd, cfg)
	mac, err := master.Node.MAC()
	if err != nil {
		t.Fatal(err)
	}
	bmac, err := backup.Node.MAC()
	if err != nil {
		t.Fatal(err)
	}
	// pair returns well after the burst (the Backup's start and an advert): from here on the
	// Master's gratuitous ARPs are the refresh rounds.
	from := time.Now()
	var last ARP
	for range 4 {
		after := from
		if !last.At.IsZero() {
			after = last.At
		}
		g, err := tl.WaitGARP(ctx, after)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(g.SrcMAC, mac) {
			t.Fatalf("gratuitous ARP from %s; want only the Master's %s", g.SrcMAC, mac)
		}
		if !last.At.IsZero() {
			gap := g.At.Sub(last.At)
			t.Logf("refresh round %v after the previous one", gap.Round(time.Millisecond))
			// A timer never fires early; the sniffer's clock may differ by a little. Late is
			// load, bounded loosely.
			if gap < refresh-50*time.Millisecond || gap > 3*refresh {
				t.Errorf("refresh rounds %v apart; want about %v", gap, refresh)
			}
		}
		last = g
	}
	for _, g := range tl.GARPs(from, time.Now()) {
		if bytes.Equal(g.SrcMAC, bmac) {
			t.Errorf("the Backup sent a gratuitous ARP: %+v", g)
		}
	}

	// SIGHUP with garp_refresh = "0": the rounds stop without a restart.
	off := master.Config
	off.GARPRefresh = 0
	conf := filepath.Join(master.Dir, "redundantd.toml")
	if err := os.WriteFile(conf, []byte(RedundantdTOML(master.Node, off, filepath.Join(master.Dir, "state"))), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := master.Proc().Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	if err := poll.Context(ctx, 20*time.Millisecond, func() bool {
		return hasEvent(lastEvents(t, master.Node), "config reloaded: configuration reloaded; applied: redundancy.garp_refresh")
	}); err != nil {
		t.Fatalf("garp_refresh not reloaded: %v", err)
	}
	// A round sent just before the reload may be read a little after it; then, over more
	// than two former periods, none.
	quiet := time.Now().Add(200 * time.Millisecond)
	time.Sleep(200*time.Millisecond + 2*refresh + refresh/2)
	if got := tl.GARPs(quiet, time.Now()); len(got) != 0 {
		t.Errorf("gratuitous ARPs after garp_refresh was reloaded to 0: %+v", got)
	}
	if st, err := master.State(ctx); err != nil || st != "master" {
		t.Errorf("after the reload: %s, %v; want still master", st, err)
	}
	assertSoleMaster(t, ctx, l, tl, master, backup)
}

// Issue 8 section 3: the ARP settings virtual-MAC mode sets on the parent (arp_ignore=1,
// arp_announce=2) survive a SIGKILL of the daemon, which cannot restore them; its next start
// does, in either mode, and a clean stop after it leaves the values from before.
func TestRedundantdVirtualMACSysctlsRestored(t *testing.T) {
	t.Parallel()
	l, ctx, tl := recordedLab(t, 90*time.Second)
	n := l.Node(1)
	const ign, ann = "net/ipv4/conf/eth0/arp_ignore", "net/ipv4/conf/eth0/arp_announce"
	sysctls := func(when string) (string, string) {
		t.Helper()
		i, err := n.Sysctl(ign)
		if err != nil {
			t.Fatal(err)
		}
		a, err := n.Sysctl(ann)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: arp_ignore %s, arp_announce %s", when, i, a)
		return i, a
	}
	i0, a0 := sysctls("before")
	if i0 == "1" && a0 == "2" {
		t.Fatal("the lab's eth0 has virtual-MAC mode's values already; the test could not tell a restore")
	}
	want := func(when, wi, wa string) {
		t.Helper()
		if i, a := sysctls(when); i != wi || a != wa {
			t.Errorf("%s: arp_ignore %s, arp_announce %s; want %s and %s", when, i, a, wi, wa)
		}
	}
	r := StartRouterT(t, n, Redundantd, VRRPConfig{VirtualMAC: true})
	// restart starts the daemon again after it exited, in the given mode.
	restart := func(vmac bool) {
		t.Helper()
		r.Config.VirtualMAC = vmac
		if err := r.Start(ctx); err != nil {
			t.Fatal(err)
		}
		if err := r.WaitState(ctx, "master"); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.WaitState(ctx, "master"); err != nil {
		t.Fatal(err)
	}
	if _, err := tl.WaitVIP(ctx, n, true, time.Time{}); err != nil {
		t.Fatal(err)
	}
	want("virtual-MAC mode", "1", "2")
	if err := r.Kill(ctx); err != nil {
		t.Fatal(err)
	}
	want("after SIGKILL", "1", "2")
	// The next start in virtual-MAC mode keeps 1 and 2 while it runs; its clean stop must
	// put back the values from before the killed run, not the killed run's.
	restart(true)
	want("virtual-MAC mode after the restart", "1", "2")
	if err := r.Term(ctx); err != nil {
		t.Fatal(err)
	}
	want("after a clean stop", i0, a0)

	// Killed again, then started without virtual-MAC mode: restored at that start, and the
	// killed run's macvlan, with the VIP on it, is gone.
	restart(true)
	if err := r.Kill(ctx); err != nil {
		t.Fatal(err)
	}
	want("after the second SIGKILL", "1", "2")
	restart(false)
	want("started without virtual-MAC mode", i0, a0)
	addrs, err := n.Addrs()
	if err != nil {
		t.Fatal(err)
	}
	vips := 0
	for _, p := range addrs {
		if p.Addr() == l.DefaultVIP().Addr() {
			vips++
		}
	}
	if _, err := n.Sysctl("net/ipv4/conf/vrrp.51/arp_ignore"); err == nil || vips != 1 {
		t.Errorf("after the start without virtual-MAC mode: macvlan vrrp.51 still there (%v) or the VIP held %d times, want once", err == nil, vips)
	}
	if err := r.Term(ctx); err != nil {
		t.Fatal(err)
	}
}

// Issue 8 sections 1 and 3: the same for an IPv6 group. The recreated eth0 has a new MAC
// address, hence a new EUI-64 link-local address, the source of IPv6 adverts (RFC 9568 section
// 5.1.2.1): the daemon rejoins as Backup from it (it stayed in fault, lacking its old one,
// before), and takes over through the new interface with adverts and Neighbor Advertisements
// from its new MAC and link-local address.
func TestRedundantdIPv6InterfaceRecreatedNewMAC(t *testing.T) {
	t.Parallel()
	cfg := ipv6Group()
	l, ctx, tl := recordedLabFor(t, 90*time.Second, cfg.VIPs[1].Addr())
	master, backup := pair(t, ctx, l, tl, Redundantd, Redundantd, cfg)
	oldLL := master.Node.LinkLocal

	deleted := time.Now()
	if err := master.Node.DeleteLink(); err != nil {
		t.Fatal(err)
	}
	if err := master.WaitState(ctx, "initialize"); err != nil {
		t.Fatal(err)
	}
	if _, err := tl.WaitVIP(ctx, backup.Node, true, deleted); err != nil {
		t.Fatal(err)
	}
	if err := master.Node.RecreateLink(); err != nil { // waits for the new link-local address
		t.Fatal(err)
	}
	if master.Node.LinkLocal == oldLL {
		t.Fatalf("the new eth0 has the old link-local address %s; the test needs a new MAC", oldLL)
	}
	if err := master.WaitState(ctx, "backup"); err != nil {
		t.Fatal(err)
	}
	if err := poll.Context(ctx, 20*time.Millisecond, func() bool {
		st, err := master.Node.Status(ctx)
		return err == nil && st.Fault == "" && st.MasterIP == backup.Node.LinkLocal.String()
	}); err != nil {
		t.Fatalf("node1 does not follow node2 through the new eth0: %v", err)
	}

	killed := time.Now()
	if err := backup.Term(ctx); err != nil {
		t.Fatal(err)
	}
	if err := master.WaitState(ctx, "master"); err != nil {
		t.Fatal(err)
	}
	checkIPv6Master(t, ctx, tl, master, cfg, killed) // adverts from the new link-local address, NAs from the new MAC
	assertSoleMaster(t, ctx, l, tl, master)
}

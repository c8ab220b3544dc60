package vrrp

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redundantd/redundantd/testlab/poll"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// newSwitch makes a namespace with a bridge br0, up, for attaching nodes with plug: unlike a
// veth pair between the nodes, one node's interface can then be deleted while the other's
// stays.
func newSwitch(t *testing.T) *testNS {
	t.Helper()
	sw := newTestNS(t)
	br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "br0"}}
	if err := sw.h.LinkAdd(br); err != nil {
		t.Fatalf("bridge: %v", err)
	}
	if err := sw.h.LinkSetUp(sw.link(t, "br0")); err != nil {
		t.Fatal(err)
	}
	return sw
}

// plug connects ifname (in n, with address p) to sw's bridge through a veth whose other end,
// port, is a bridge port in sw.
// switchedPair plugs a (vrt0, labA) and b (vrt1, labB) into a new switch, dials a at priority
// 200 (in virtual-MAC mode when vmac, its Config changed by tweakA when not nil) and b at 100,
// and waits until a is Master and b follows it.
func switchedPair(t *testing.T, vmac bool, tweakA func(*Config)) (sw, a, b *testNS, na, nb *node) {
	t.Helper()
	sw = newSwitch(t)
	a, b = newTestNS(t), newTestNS(t)
	plug(t, sw, "pa", a, "vrt0", labA)
	plug(t, sw, "pb", b, "vrt1", labB)
	if vmac {
		needMacvlan(t, a, "vrt0")
	}
	cfgA := labConfig("vrt0", labA, 200, t.TempDir())
	cfgA.VirtualMAC = vmac
	cfgA.Logger = testLogger(t, "a")
	if tweakA != nil {
		tweakA(&cfgA)
	}
	cfgB := labConfig("vrt1", labB, 100, t.TempDir())
	cfgB.Logger = testLogger(t, "b")
	na, nb = dialNode(t, a, cfgA), dialNode(t, b, cfgB)
	na.waitEvent(t, 0, StateBackup, StateMaster, CauseMasterDown)
	poll.Until(t, 5*time.Second, "b follows a", func() bool { return nb.r.Status().MasterIP == labA.Addr() })
	return sw, a, b, na, nb
}

func plug(t *testing.T, sw *testNS, port string, n *testNS, ifname string, p netip.Prefix) {
	t.Helper()
	veth := &netlink.Veth{
		LinkAttrs:     netlink.LinkAttrs{Name: ifname},
		PeerName:      port,
		PeerNamespace: netlink.NsFd(int(sw.ns)),
	}
	if err := n.h.LinkAdd(veth); err != nil {
		t.Fatalf("veth %s/%s: %v", ifname, port, err)
	}
	if err := sw.h.LinkSetMaster(sw.link(t, port), sw.link(t, "br0")); err != nil {
		t.Fatalf("%s into br0: %v", port, err)
	}
	n.addAddr(t, ifname, p)
	for _, up := range []func() error{
		func() error { return sw.h.LinkSetUp(sw.link(t, port)) },
		func() error { return n.h.LinkSetUp(n.link(t, ifname)) },
	} {
		if err := up(); err != nil {
			t.Fatalf("%s/%s up: %v", ifname, port, err)
		}
	}
}

// eventsFrom returns the node's events from index i on.
func (nd *node) eventsFrom(i int) []Event {
	nd.mu.Lock()
	defer nd.mu.Unlock()
	if i >= len(nd.events) {
		return nil
	}
	return slices.Clone(nd.events[i:])
}

func (nd *node) eventCount() int {
	nd.mu.Lock()
	defer nd.mu.Unlock()
	return len(nd.events)
}

// waitEvent waits for an event from index i on with the given transition and cause.
func (nd *node) waitEvent(t *testing.T, i int, from, to State, cause Cause) Event {
	t.Helper()
	var got Event
	poll.Until(t, 10*time.Second, from.String()+"->"+to.String()+" ("+cause.String()+")", func() bool {
		for _, e := range nd.eventsFrom(i) {
			if e.From == from && e.To == to && e.Cause == cause {
				got = e
				return true
			}
		}
		return false
	})
	return got
}

// Issue 12 item 3: the Master's interface is deleted (and later created again under the same
// name, with a new index), or loses its carrier. The Master leaves the protocol at once,
// saying why, holds no address and sends nothing; the peer takes over; when the interface is
// back the node rejoins as Backup without a restart, and (higher priority, preempt) becomes
// Master again through the new interface.
func TestRouterFollowsInterface(t *testing.T) {
	sw, a, b, na, nb := switchedPair(t, false, nil)
	oldIndex := a.link(t, "vrt0").Attrs().Index

	// Deleted: the veth pair goes, and with it a's VIP.
	ia, ib := na.eventCount(), nb.eventCount()
	deleted := time.Now()
	if err := a.h.LinkDel(a.link(t, "vrt0")); err != nil {
		t.Fatal(err)
	}
	e := na.waitEvent(t, ia, StateMaster, StateInitialize, CauseInterfaceGone)
	t.Logf("a left master %v after vrt0 was deleted", e.At.Sub(deleted).Round(time.Millisecond))
	if e.Reason != "interface vrt0 gone" || e.Err != nil {
		t.Errorf("a's event: %+v; want reason %q and no error", e, "interface vrt0 gone")
	}
	// The status is published once the step is done, after OnEvent.
	poll.Until(t, time.Second, "a's status shows the fault", func() bool { return na.r.Status().Fault != "" })
	if s := na.r.Status(); s.State != StateInitialize || s.Fault != "interface vrt0 gone" || len(s.VirtualIPs) != 0 || s.MasterIP.IsValid() {
		t.Errorf("a's status: %+v; want initialize, the fault, no VIP, no master", s)
	}
	eb := nb.waitEvent(t, ib, StateBackup, StateMaster, CauseMasterDown)
	t.Logf("b took over %v after the deletion", eb.At.Sub(deleted).Round(time.Millisecond))
	poll.Until(t, time.Second, "b holds the VIP", func() bool { return b.hasAddr(t, "vrt1", labVIP) })
	if n := len(na.eventsFrom(ia)); n != 1 {
		t.Errorf("a's events after the deletion: %+v; want only the one leaving master", na.eventsFrom(ia))
	}

	// Created again (same name, new index): a rejoins as Backup, then preempts b.
	ia, ib = na.eventCount(), nb.eventCount()
	arps := listenFrames(t, b, "vrt1", etherTypeARP)
	plug(t, sw, "pa", a, "vrt0", labA)
	recreated := time.Now()
	if got := a.link(t, "vrt0").Attrs().Index; got == oldIndex {
		t.Fatalf("the new vrt0 has the old index %d; the test needs a new one", got)
	}
	e = na.waitEvent(t, ia, StateInitialize, StateBackup, CauseInterfaceBack)
	t.Logf("a rejoined as backup %v after vrt0 was recreated and up", e.At.Sub(recreated).Round(time.Millisecond))
	if e.Reason != "interface vrt0 back" {
		t.Errorf("a's rejoin: %+v; want reason %q", e, "interface vrt0 back")
	}
	na.waitEvent(t, ia, StateBackup, StateMaster, CausePreempting)
	nb.waitEvent(t, ib, StateMaster, StateBackup, CausePreempted) // a's adverts leave by the new interface
	poll.Until(t, time.Second, "a holds the VIP on the new vrt0", func() bool { return a.hasAddr(t, "vrt0", labVIP) })
	// Its gratuitous ARPs leave by the new interface too.
	macA := a.iface(t, "vrt0").HardwareAddr
	nextFrame(t, arps, 3*time.Second, func(f []byte) bool {
		return len(f) >= 42 && bytes.Equal(f[6:12], macA) && net.IP(f[28:32]).Equal(labVIP.Addr().AsSlice())
	})
	poll.Until(t, time.Second, "b released the VIP", func() bool { return !b.hasAddr(t, "vrt1", labVIP) })
	poll.Until(t, time.Second, "a's status: master, no fault", func() bool {
		s := na.r.Status()
		return s.Fault == "" && s.State == StateMaster
	})

	// Carrier lost (the switch port goes down): the same, with the reason.
	ia, ib = na.eventCount(), nb.eventCount()
	cut := time.Now()
	if err := sw.h.LinkSetDown(sw.link(t, "pa")); err != nil {
		t.Fatal(err)
	}
	e = na.waitEvent(t, ia, StateMaster, StateInitialize, CauseInterfaceDown)
	t.Logf("a left master %v after losing carrier", e.At.Sub(cut).Round(time.Millisecond))
	if e.Reason != "interface vrt0 has no carrier" {
		t.Errorf("a's event: %+v; want reason %q", e, "interface vrt0 has no carrier")
	}
	if a.hasAddr(t, "vrt0", labVIP) {
		t.Error("a kept the VIP on an interface without carrier")
	}
	nb.waitEvent(t, ib, StateBackup, StateMaster, CauseMasterDown)
	ia = na.eventCount()
	if err := sw.h.LinkSetUp(sw.link(t, "pa")); err != nil {
		t.Fatal(err)
	}
	na.waitEvent(t, ia, StateInitialize, StateBackup, CauseInterfaceBack)
	na.waitEvent(t, ia, StateBackup, StateMaster, CausePreempting)
}

// The Master's primary address removed (and added back): the kernel's address notification
// takes it out of the protocol with the reason, without waiting for the safety poll, which
// runs only every linkSafetyPoll while the link and address notifications are subscribed.
func TestRouterSeesPrimaryAddressRemoved(t *testing.T) {
	sw := newSwitch(t)
	a := newTestNS(t)
	plug(t, sw, "pa", a, "vrt0", labA)
	cfg := labConfig("vrt0", labA, 200, t.TempDir())
	cfg.Logger = testLogger(t, "a")
	na := dialNode(t, a, cfg)
	na.waitEvent(t, 0, StateBackup, StateMaster, CauseMasterDown)
	lm, ok := na.r.link.(*linkMonitor)
	if !ok {
		t.Fatalf("Dial's link watcher is %T, want *linkMonitor", na.r.link)
	}
	if got := lm.pollInterval(time.Second); got != linkSafetyPoll {
		t.Fatalf("poll interval with notifications subscribed: %v, want %v", got, linkSafetyPoll)
	}

	i := na.eventCount()
	removed := time.Now()
	if err := a.h.AddrDel(a.link(t, "vrt0"), netlinkAddr(labA)); err != nil {
		t.Fatal(err)
	}
	e := na.waitEvent(t, i, StateMaster, StateInitialize, CauseInterfaceDown)
	t.Logf("a left master %v after its primary address was removed", e.At.Sub(removed).Round(time.Millisecond))
	if want := "interface vrt0 lacks the primary address " + labA.Addr().String(); e.Reason != want {
		t.Errorf("a's event: %+v; want reason %q", e, want)
	}
	poll.Until(t, time.Second, "a released the VIP", func() bool { return !a.hasAddr(t, "vrt0", labVIP) })

	i = na.eventCount()
	a.addAddr(t, "vrt0", labA)
	na.waitEvent(t, i, StateInitialize, StateBackup, CauseInterfaceBack)
	na.waitEvent(t, i, StateBackup, StateMaster, CauseMasterDown)
	if got := lm.pollInterval(time.Second); got != linkSafetyPoll {
		t.Errorf("poll interval after the changes: %v, want %v (no notification was lost)", got, linkSafetyPoll)
	}
}

// Issue 12 item 6: a StateDir that cannot be written (read-only, full, not a directory) does not
// keep the Router from starting or from becoming Master; Status.RecordError says why, and once
// the directory is usable the record is written without a restart.
func TestRouterRunsWithoutStateDir(t *testing.T) {
	needRoot(t)
	roDir := t.TempDir()
	if err := unix.Mount(roDir, roDir, "", unix.MS_BIND, ""); err != nil {
		t.Skipf("cannot bind-mount %s: %v", roDir, err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(roDir, unix.MNT_DETACH); err != nil {
			t.Errorf("unmounting %s: %v", roDir, err)
		}
	})
	if err := unix.Mount("", roDir, "", unix.MS_REMOUNT|unix.MS_BIND|unix.MS_RDONLY, ""); err != nil {
		t.Fatalf("remounting %s read-only: %v", roDir, err)
	}
	fullDir := t.TempDir()
	if err := unix.Mount("tmpfs", fullDir, "tmpfs", 0, "size=64k"); err != nil {
		t.Skipf("cannot mount a tmpfs on %s: %v", fullDir, err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(fullDir, unix.MNT_DETACH); err != nil {
			t.Errorf("unmounting %s: %v", fullDir, err)
		}
	})
	filler := filepath.Join(fullDir, "filler")
	if err := os.WriteFile(filler, make([]byte, 1<<20), 0o600); !errors.Is(err, unix.ENOSPC) {
		t.Fatalf("filling the tmpfs: %v, want ENOSPC", err)
	}
	fileDir := filepath.Join(t.TempDir(), "state")
	if err := os.WriteFile(fileDir, nil, 0o600); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name, dir, want string
		fix             func(t *testing.T)
	}{
		{"read-only", roDir, "read-only file system", func(t *testing.T) {
			if err := unix.Mount("", roDir, "", unix.MS_REMOUNT|unix.MS_BIND, ""); err != nil {
				t.Fatalf("remounting %s read-write: %v", roDir, err)
			}
		}},
		{"full", fullDir, "no space left on device", func(t *testing.T) {
			if err := os.Remove(filler); err != nil {
				t.Fatal(err)
			}
		}},
		{"not a directory", fileDir, "not a directory", func(t *testing.T) {
			if err := os.Remove(fileDir); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, b := newTestNS(t), newTestNS(t)
			connect(t, a, "vrt0", labA, b, "vrt1", labB)
			cfg := labConfig("vrt0", labA, 255, tc.dir) // the owner: Master at once
			cfg.Logger = testLogger(t, "a")
			na := dialNode(t, a, cfg)
			na.waitEvent(t, 0, StateInitialize, StateMaster, CauseOwner)
			poll.Until(t, time.Second, "a holds the VIP", func() bool { return a.hasAddr(t, "vrt0", labVIP) })
			var s Status
			poll.Until(t, time.Second, "the record error reported", func() bool { s = na.r.Status(); return s.RecordError != "" })
			if s.State != StateMaster || !strings.Contains(s.RecordError, tc.want) {
				t.Errorf("status: %+v; want master with a record error saying %q", s, tc.want)
			}

			tc.fix(t)
			path := recordPath(tc.dir, "vrt0", 51)
			poll.Until(t, 5*time.Second, "the record written", func() bool {
				_, err := os.Stat(path)
				return err == nil && na.r.Status().RecordError == ""
			})
			if rec := readRecord(t, path); !slices.Equal(rec.Addresses, []netip.Prefix{labVIP}) {
				t.Errorf("record: %+v; want the claim on %v", rec, labVIP)
			}
			na.stop(t)
			if rec := readRecord(t, path); len(rec.Addresses) != 0 {
				t.Errorf("record after a clean stop: %+v; want no address", rec)
			}
		})
	}
}

// In virtual-MAC mode the macvlan goes with its deleted parent: when the parent is created
// again the node makes the macvlan again on it and rejoins, its adverts and VIP on the new
// macvlan.
func TestRouterFollowsInterfaceVirtualMAC(t *testing.T) {
	sw, a, _, na, nb := switchedPair(t, true, nil)

	ia, ib := na.eventCount(), nb.eventCount()
	if err := a.h.LinkDel(a.link(t, "vrt0")); err != nil {
		t.Fatal(err)
	}
	na.waitEvent(t, ia, StateMaster, StateInitialize, CauseInterfaceGone)
	nb.waitEvent(t, ib, StateBackup, StateMaster, CauseMasterDown)

	ia, ib = na.eventCount(), nb.eventCount()
	plug(t, sw, "pa", a, "vrt0", labA)
	na.waitEvent(t, ia, StateInitialize, StateBackup, CauseInterfaceBack)
	na.waitEvent(t, ia, StateBackup, StateMaster, CausePreempting)
	nb.waitEvent(t, ib, StateMaster, StateBackup, CausePreempted)
	vm := a.link(t, vmacName(51))
	if vm.Attrs().ParentIndex != a.link(t, "vrt0").Attrs().Index {
		t.Errorf("%s has parent index %d, want the new vrt0's %d", vmacName(51), vm.Attrs().ParentIndex, a.link(t, "vrt0").Attrs().Index)
	}
	poll.Until(t, time.Second, "a holds the VIP on the new macvlan", func() bool { return a.hasAddr(t, vmacName(51), labVIP) })
	if got := readSysctlIn(t, a, "net/ipv4/conf/vrt0/arp_ignore"); got != "1" {
		t.Errorf("the new vrt0's arp_ignore = %s, want 1 (set for virtual-MAC mode)", got)
	}
	na.stop(t)
	if _, err := a.h.LinkByName(vmacName(51)); err == nil {
		t.Errorf("%s left behind after Run returned", vmacName(51))
	}
	if got := readSysctlIn(t, a, "net/ipv4/conf/vrt0/arp_ignore"); got != "0" {
		t.Errorf("the new vrt0's arp_ignore after Run = %s, want 0 restored", got)
	}
	if _, err := os.Stat(sysctlJournalPath(na.r.cfg.StateDir, "vrt0", 51)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("virtual-MAC sysctl record after a clean stop: %v; want none", err)
	}
}

// Issue 8 section 3, IPv6: a recreated interface has a new MAC address (a veth, a driver
// reload, a VLAN made again on another parent), hence a new EUI-64 link-local address, the
// source RFC 9568 section 5.1.2.1 wants for adverts. A group whose Primary was not
// configured (picked from the interface, as usual for IPv6) rejoins as Backup with the new
// link-local address as its Primary, and its adverts come from it; the peer names it so. In
// virtual-MAC mode the macvlan is made again on the new interface.
func TestRouterFollowsInterfaceIPv6NewMAC(t *testing.T) {
	for _, vmac := range []bool{false, true} {
		t.Run(fmt.Sprintf("virtual MAC %t", vmac), func(t *testing.T) {
			sw := newSwitch(t)
			a, b := newTestNS(t), newTestNS(t)
			plug(t, sw, "pa", a, "vrt0", labA)
			plug(t, sw, "pb", b, "vrt1", labB)
			if vmac {
				needMacvlan(t, a, "vrt0")
			}
			oldLL := a.linkLocal6(t, "vrt0")
			b.linkLocal6(t, "vrt1")

			cfgA := labConfig6("vrt0", 200, t.TempDir())
			cfgA.VirtualMAC = vmac
			cfgA.Logger = testLogger(t, "a")
			cfgB := labConfig6("vrt1", 100, t.TempDir())
			cfgB.Logger = testLogger(t, "b")
			na := dialNode(t, a, cfgA)
			nb := dialNode(t, b, cfgB)
			na.waitEvent(t, 0, StateBackup, StateMaster, CauseMasterDown)
			poll.Until(t, 5*time.Second, "b follows a", func() bool { return nb.r.Status().MasterIP == oldLL })

			ia, ib := na.eventCount(), nb.eventCount()
			if err := a.h.LinkDel(a.link(t, "vrt0")); err != nil {
				t.Fatal(err)
			}
			if e := na.waitEvent(t, ia, StateMaster, StateInitialize, CauseInterfaceGone); e.Err != nil {
				t.Errorf("a leaving master: %+v; want no error (the macvlan went with vrt0)", e)
			}
			nb.waitEvent(t, ib, StateBackup, StateMaster, CauseMasterDown)

			ia, ib = na.eventCount(), nb.eventCount()
			plug(t, sw, "pa", a, "vrt0", labA)
			newLL := a.linkLocal6(t, "vrt0")
			if newLL == oldLL {
				t.Fatalf("the new vrt0 has the old link-local address %s; the test needs a new MAC", newLL)
			}
			e := na.waitEvent(t, ia, StateInitialize, StateBackup, CauseInterfaceBack)
			if e.Reason != "interface vrt0 back" {
				t.Errorf("a's rejoin: %+v; want reason %q", e, "interface vrt0 back")
			}
			na.waitEvent(t, ia, StateBackup, StateMaster, CausePreempting)
			nb.waitEvent(t, ib, StateMaster, StateBackup, CausePreempted)
			poll.Until(t, 2*time.Second, "b names a by its new link-local address", func() bool {
				return nb.r.Status().MasterIP == newLL
			})
			// The status is published once the step is done, after OnEvent.
			poll.Until(t, time.Second, "a's status: master from the new link-local address, no fault", func() bool {
				s := na.r.Status()
				return s.State == StateMaster && s.MasterIP == newLL && s.Fault == ""
			})
			if e := na.eventsFrom(ia); e[0].Err != nil {
				t.Errorf("a's rejoin: %+v; want no error", e[0])
			}
			if vmac {
				if got := a.link(t, vmacName6(51)).Attrs().ParentIndex; got != a.link(t, "vrt0").Attrs().Index {
					t.Errorf("%s has parent index %d, want the new vrt0's", vmacName6(51), got)
				}
			}
			if s := nb.r.Status(); len(s.Dropped) != 0 {
				t.Errorf("b dropped %v", s.Dropped)
			}
		})
	}
}

// The same for an IPv4 group whose Primary was picked (a group on another interface than
// node.interface): renumbered, it rejoins from its new address. A configured Primary is
// waited for instead (TestRouterSeesPrimaryAddressRemoved).
func TestRouterFollowsRenumberedPrimary(t *testing.T) {
	_, a, _, na, nb := switchedPair(t, false, func(c *Config) {
		c.Primary = netip.Addr{} // picked: labA, vrt0's only address
	})

	ia := na.eventCount()
	if err := a.h.AddrDel(a.link(t, "vrt0"), netlinkAddr(labA)); err != nil {
		t.Fatal(err)
	}
	na.waitEvent(t, ia, StateMaster, StateInitialize, CauseInterfaceDown)
	renumbered := netip.MustParsePrefix("192.0.2.9/24")
	a.addAddr(t, "vrt0", renumbered)
	na.waitEvent(t, ia, StateInitialize, StateBackup, CauseInterfaceBack)
	// Master again: by preemption if b took over meanwhile, else when its timer runs out.
	poll.Until(t, 10*time.Second, "a master again", func() bool { return na.r.Status().State == StateMaster })
	poll.Until(t, 2*time.Second, "b names a by its new address", func() bool { return nb.r.Status().MasterIP == renumbered.Addr() })
	if s := na.r.Status(); s.MasterIP != renumbered.Addr() {
		t.Errorf("a's MasterIP %v, want %v", s.MasterIP, renumbered.Addr())
	}
}

// Issue 8 section 3: an interface renamed away is gone (the configuration names a name); a
// new interface renamed to the configured name is picked up like a recreated one, in
// virtual-MAC mode with the macvlan moved from the renamed link to it.
func TestRouterFollowsRenamedInterface(t *testing.T) {
	for _, vmac := range []bool{false, true} {
		t.Run(fmt.Sprintf("virtual MAC %t", vmac), func(t *testing.T) {
			sw, a, _, na, nb := switchedPair(t, vmac, nil)

			rename := func(from, to string) {
				t.Helper()
				l := a.link(t, from)
				if err := a.h.LinkSetDown(l); err != nil {
					t.Fatal(err)
				}
				if err := a.h.LinkSetName(l, to); err != nil {
					t.Fatalf("renaming %s to %s: %v", from, to, err)
				}
			}
			ib := nb.eventCount()
			rename("vrt0", "vrt9")
			// Out (for being set down, or at once for being renamed), and saying why.
			poll.Until(t, 5*time.Second, "a's fault says it was renamed", func() bool {
				s := na.r.Status()
				return s.State == StateInitialize && s.Fault == "interface vrt0 gone (renamed to vrt9)"
			})
			nb.waitEvent(t, ib, StateBackup, StateMaster, CauseMasterDown)
			for _, l := range []string{"vrt9", vmacName(51)} {
				if a.hasAddr(t, l, labVIP) {
					t.Errorf("a kept the VIP on %s", l)
				}
			}

			// A new link is renamed to vrt0.
			ia, ib := na.eventCount(), nb.eventCount()
			plug(t, sw, "pn", a, "vrtn", labA)
			rename("vrtn", "vrt0")
			if err := a.h.LinkSetUp(a.link(t, "vrt0")); err != nil {
				t.Fatal(err)
			}
			na.waitEvent(t, ia, StateInitialize, StateBackup, CauseInterfaceBack)
			na.waitEvent(t, ia, StateBackup, StateMaster, CausePreempting)
			nb.waitEvent(t, ib, StateMaster, StateBackup, CausePreempted)
			vipLink := "vrt0"
			if vmac {
				vipLink = vmacName(51)
				if got := a.link(t, vipLink).Attrs().ParentIndex; got != a.link(t, "vrt0").Attrs().Index {
					t.Errorf("%s has parent index %d, want the new vrt0's %d", vipLink, got, a.link(t, "vrt0").Attrs().Index)
				}
				// The renamed link's ARP settings are put back; the new vrt0 has the mode's.
				for link, want := range map[string]string{"vrt9": "0", "vrt0": "1"} {
					if got := readSysctlIn(t, a, "net/ipv4/conf/"+link+"/arp_ignore"); got != want {
						t.Errorf("%s's arp_ignore = %s, want %s", link, got, want)
					}
				}
			}
			poll.Until(t, time.Second, "a holds the VIP on the new vrt0", func() bool { return a.hasAddr(t, vipLink, labVIP) })
		})
	}
}

// setOperState sets ifname's link mode and operational state as a supplicant does (IFLA_LINKMODE,
// IFLA_OPERSTATE; RFC 2863 dormant: an 802.1X port before authorisation).
func setOperState(t *testing.T, n *testNS, ifname string, mode, state uint8) {
	t.Helper()
	idx := n.link(t, ifname).Attrs().Index
	var err error
	n.do(t, func() {
		req := nl.NewNetlinkRequest(unix.RTM_NEWLINK, unix.NLM_F_ACK)
		req.AddData(nl.NewIfInfomsg(unix.AF_UNSPEC))
		req.Data[0].(*nl.IfInfomsg).Index = int32(idx)
		req.AddData(nl.NewRtAttr(unix.IFLA_LINKMODE, []byte{mode}))
		req.AddData(nl.NewRtAttr(unix.IFLA_OPERSTATE, []byte{state}))
		_, err = req.Execute(unix.NETLINK_ROUTE, 0)
	})
	if err != nil {
		t.Fatalf("setting %s's operational state to %d: %v", ifname, state, err)
	}
}

// Issue 8 section 3: a dormant interface (up, with carrier, but RFC 2863 dormant: an 802.1X
// port not yet authorised, a wifi not associated) cannot carry the protocol: the Master
// leaves it, saying so, and rejoins once the interface is up (the supplicant's part).
func TestRouterDormantInterface(t *testing.T) {
	sw := newSwitch(t)
	a := newTestNS(t)
	plug(t, sw, "pa", a, "vrt0", labA)
	cfg := labConfig("vrt0", labA, 200, t.TempDir())
	cfg.Logger = testLogger(t, "a")
	na := dialNode(t, a, cfg)
	na.waitEvent(t, 0, StateBackup, StateMaster, CauseMasterDown)

	i := na.eventCount()
	setOperState(t, a, "vrt0", 1, uint8(netlink.OperDormant))
	if st := a.link(t, "vrt0").Attrs().OperState; st != netlink.OperDormant {
		t.Skipf("vrt0's operational state is %v after setting it dormant; nothing to test", st)
	}
	e := na.waitEvent(t, i, StateMaster, StateInitialize, CauseInterfaceDown)
	if want := "interface vrt0 is dormant (waiting for authorisation or association, e.g. 802.1X or wifi)"; e.Reason != want {
		t.Errorf("a's event: %+v; want reason %q", e, want)
	}
	poll.Until(t, time.Second, "a released the VIP", func() bool { return !a.hasAddr(t, "vrt0", labVIP) })

	i = na.eventCount()
	setOperState(t, a, "vrt0", 1, uint8(netlink.OperUp)) // authorised
	na.waitEvent(t, i, StateInitialize, StateBackup, CauseInterfaceBack)
	na.waitEvent(t, i, StateBackup, StateMaster, CauseMasterDown)
}

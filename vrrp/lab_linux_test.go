package vrrp

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"slices"
	"testing"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/redundantd/redundantd/testlab/labns"
)

// A small namespace lab for this package's privileged tests. Each test creates its own named
// namespaces ("vrt-<pid>-<n>", testlab/labns), joined by veth pairs, addressed in 192.0.2.0/24, and deletes
// them in t.Cleanup even when it fails. Nothing is sent outside them.

func needRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root (CAP_NET_ADMIN, CAP_NET_RAW) to create network namespaces")
	}
}

type testNS struct {
	name string
	ns   netns.NsHandle
	h    *netlink.Handle
}

func newTestNS(t testing.TB) *testNS {
	t.Helper()
	needRoot(t)
	name, ns := labns.New(t, "vrt")
	n := &testNS{name: name, ns: ns}
	var err error
	if n.h, err = netlink.NewHandleAt(ns); err != nil {
		t.Fatalf("netlink handle in %s: %v", name, err)
	}
	t.Cleanup(n.h.Close)
	lo, err := n.h.LinkByName("lo")
	if err == nil {
		err = n.h.LinkSetUp(lo)
	}
	if err != nil {
		t.Fatalf("lo up in %s: %v", name, err)
	}
	// Links made here from now on run no duplicate address detection: their link-local
	// addresses are usable as soon as the kernel has made them (see linkLocal6), not a second
	// or two later.
	n.do(t, func() {
		for _, conf := range []string{"default", "all"} {
			if err = writeSysctl(sysctlValue{"net/ipv6/conf/" + conf + "/accept_dad", "0"}); err != nil {
				break
			}
		}
	})
	if err != nil && !errors.Is(err, os.ErrNotExist) { // not there: a kernel without IPv6
		t.Fatalf("disabling DAD in %s: %v", name, err)
	}
	return n
}

// do runs fn on an OS thread that is inside the namespace: sockets, netlink handles and
// /proc/sys/net files opened by fn belong to it.
func (n *testNS) do(t testing.TB, fn func()) {
	t.Helper()
	if err := labns.Do(n.ns, func() error { fn(); return nil }); err != nil {
		t.Fatalf("in namespace %s: %v", n.name, err)
	}
}

// link returns the named link of the namespace.
func (n *testNS) link(t testing.TB, name string) netlink.Link {
	t.Helper()
	l, err := n.h.LinkByName(name)
	if err != nil {
		t.Fatalf("%s: link %s: %v", n.name, name, err)
	}
	return l
}

// addAddr configures p on the named link.
func (n *testNS) addAddr(t testing.TB, ifname string, p netip.Prefix) {
	t.Helper()
	if err := n.h.AddrAdd(n.link(t, ifname), netlinkAddr(p)); err != nil {
		t.Fatalf("%s: adding %s to %s: %v", n.name, p, ifname, err)
	}
}

// addrs lists the IPv4 prefixes on the named link, or nil when the link does not exist.
func (n *testNS) addrs(t testing.TB, ifname string) []netip.Prefix {
	t.Helper()
	l, err := n.h.LinkByName(ifname)
	if err != nil {
		return nil
	}
	as, err := n.h.AddrList(l, netlink.FAMILY_V4)
	if err != nil {
		t.Fatalf("%s: listing addresses of %s: %v", n.name, ifname, err)
	}
	var out []netip.Prefix
	for _, a := range as {
		if p, ok := ipNetPrefix(a.IPNet); ok {
			out = append(out, p)
		}
	}
	return out
}

func (n *testNS) hasAddr(t testing.TB, ifname string, p netip.Prefix) bool {
	return slices.Contains(n.addrs(t, ifname), p)
}

// connect joins a and b with a veth pair named ifA (in a) and ifB (in b), both up, with
// addresses pa and pb.
func connect(t testing.TB, a *testNS, ifA string, pa netip.Prefix, b *testNS, ifB string, pb netip.Prefix) {
	t.Helper()
	veth := &netlink.Veth{
		LinkAttrs:     netlink.LinkAttrs{Name: ifA},
		PeerName:      ifB,
		PeerNamespace: netlink.NsFd(int(b.ns)),
	}
	if err := a.h.LinkAdd(veth); err != nil {
		t.Fatalf("veth %s/%s: %v", ifA, ifB, err)
	}
	for _, side := range []struct {
		n    *testNS
		name string
		p    netip.Prefix
	}{{a, ifA, pa}, {b, ifB, pb}} {
		side.n.addAddr(t, side.name, side.p)
		if err := side.n.h.LinkSetUp(side.n.link(t, side.name)); err != nil {
			t.Fatalf("%s up: %v", side.name, err)
		}
	}
}

// needMacvlan skips the test when the kernel cannot create macvlan links (no module).
func needMacvlan(t testing.TB, n *testNS, parent string) {
	t.Helper()
	probe := &netlink.Macvlan{
		LinkAttrs: netlink.LinkAttrs{Name: "vrt-probe", ParentIndex: n.link(t, parent).Attrs().Index},
		Mode:      netlink.MACVLAN_MODE_BRIDGE,
	}
	if err := n.h.LinkAdd(probe); err != nil {
		if errors.Is(err, unix.EOPNOTSUPP) {
			t.Skipf("this kernel has no macvlan support: %v", err)
		}
		t.Fatalf("creating a macvlan: %v", err)
	}
	if err := n.h.LinkDel(probe); err != nil {
		t.Fatal(err)
	}
}

// iface returns the net.Interface of a link of the namespace.
func (n *testNS) iface(t testing.TB, name string) *net.Interface {
	t.Helper()
	return linkInterface(n.link(t, name))
}

package testlab

import (
	"context"
	"encoding/hex"
	"errors"
	"flag"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/vishvananda/netlink"
	"golang.org/x/net/ipv4"

	"github.com/redundantd/redundantd/testlab/poll"
)

// addrCmp compares netip.Addr values (unexported fields) by value.
var addrCmp = cmp.Comparer(func(a, b netip.Addr) bool { return a == b })

func TestMain(m *testing.M) {
	// The lab tests spend their time waiting for RFC timers, not on the CPU: unless -parallel
	// was given, run them all at once rather than GOMAXPROCS at a time.
	flag.Parse()
	explicit := false
	flag.Visit(func(f *flag.Flag) { explicit = explicit || f.Name == "test.parallel" })
	if !explicit {
		flag.Set("test.parallel", "16")
	}
	code := m.Run()
	RemoveBinaries()
	os.Exit(code)
}

// exchange sends a UDP datagram from a to b and waits for b's echo.
func exchange(t *testing.T, a, b *Node, timeout time.Duration) error {
	t.Helper()
	return exchangeVia(t, a, b, a.Addr, b.Addr, timeout)
}

// exchangeVia is exchange between a's address aAddr and b's bAddr (their WAN addresses, say).
func exchangeVia(t *testing.T, a, b *Node, aAddr, bAddr netip.Addr, timeout time.Duration) error {
	t.Helper()
	srv, err := b.ListenPacket("udp4", bAddr.String()+":0")
	if err != nil {
		t.Fatalf("listen in %s: %v", b.Name, err)
	}
	defer srv.Close()
	go func() {
		buf := make([]byte, 64)
		for {
			n, from, err := srv.ReadFrom(buf)
			if err != nil {
				return
			}
			srv.WriteTo(buf[:n], from)
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	c, err := a.DialContext(ctx, "udp4", srv.LocalAddr().String())
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(timeout))
	msg := "hello from " + a.Name
	if _, err := c.Write([]byte(msg)); err != nil {
		return err
	}
	buf := make([]byte, 64)
	n, err := c.Read(buf)
	if err != nil {
		return err
	}
	if got := string(buf[:n]); got != msg {
		t.Fatalf("echo from %s = %q, want %q", b.Name, got, msg)
	}
	if la := c.LocalAddr().(*net.UDPAddr); la.IP.String() != aAddr.String() {
		t.Fatalf("datagram left %s from %s, want %s", a.Name, la.IP, aAddr)
	}
	return nil
}

func TestLabNodesTalk(t *testing.T) {
	t.Parallel()
	l := NewT(t, Options{Nodes: 3})
	ns, err := l.Namespaces()
	if err != nil {
		t.Fatal(err)
	}
	want := []string{l.Name + "-br", l.Name + "-node1", l.Name + "-node2", l.Name + "-node3"}
	if diff := cmp.Diff(want, ns); diff != "" {
		t.Errorf("namespaces (-want +got):\n%s", diff)
	}
	for i, n := range l.Nodes() {
		wantAddr := netip.AddrFrom4([4]byte{192, 0, 2, byte(11 + i)})
		if n.Addr != wantAddr || n.Prefix.Bits() != 24 || n.Iface != "eth0" {
			t.Errorf("node %d = %s %s on %s, want %s/24 on eth0", i+1, n.Name, n.Prefix, n.Iface, wantAddr)
		}
		ok, err := n.HasAddr(n.Addr)
		if err != nil || !ok {
			t.Errorf("%s: own address installed = %t, %v", n.Name, ok, err)
		}
	}
	for _, pair := range [][2]int{{1, 2}, {2, 3}, {3, 1}} {
		if err := exchange(t, l.Node(pair[0]), l.Node(pair[1]), 2*time.Second); err != nil {
			t.Errorf("UDP %s -> %s: %v", l.Node(pair[0]).Name, l.Node(pair[1]).Name, err)
		}
	}
	h, err := l.AddHost("fos")
	if err != nil {
		t.Fatal(err)
	}
	if h.Addr != netip.MustParseAddr("192.0.2.201") {
		t.Errorf("extra host address = %s, want 192.0.2.201", h.Addr)
	}
	if err := exchange(t, h, l.Node(1), 2*time.Second); err != nil {
		t.Errorf("UDP fos -> node1: %v", err)
	}
	if _, err := l.AddHost("fos"); err == nil {
		t.Error("AddHost with a duplicate name succeeded")
	}
}

func TestCutAndRestoreLink(t *testing.T) {
	t.Parallel()
	l := NewT(t, Options{})
	a, b := l.Node(1), l.Node(2)
	if err := exchange(t, a, b, 2*time.Second); err != nil {
		t.Fatalf("before the cut: %v", err)
	}
	if err := b.CutLink(); err != nil {
		t.Fatal(err)
	}
	if err := exchange(t, a, b, 300*time.Millisecond); err == nil {
		t.Fatal("UDP exchange succeeded across a cut link")
	}
	if err := b.RestoreLink(); err != nil {
		t.Fatal(err)
	}
	// The node's eth0 regains carrier asynchronously; retry within a deadline.
	wctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	var err error
	if perr := poll.Context(wctx, poll.Step, func() bool { err = exchange(t, a, b, 300*time.Millisecond); return err == nil }); perr != nil {
		t.Fatalf("after restoring the link: %v", err)
	}
}

// A lab with Options.WAN: every node has eth1 on br1 in the WAN subnet beside its eth0, the
// nodes talk over both, and cutting a node's WAN link takes eth1's carrier only.
func TestLabWAN(t *testing.T) {
	t.Parallel()
	l := NewT(t, Options{WAN: true})
	if l.WANSubnet != DefaultWANSubnet || l.DefaultWANVIP() != netip.MustParsePrefix("198.51.100.100/24") {
		t.Errorf("WAN subnet %s, VIP %s", l.WANSubnet, l.DefaultWANVIP())
	}
	for i, n := range l.Nodes() {
		want := netip.AddrFrom4([4]byte{198, 51, 100, byte(11 + i)})
		if n.WAN == nil || n.WAN.Iface != "eth1" || n.WAN.Addr != want || n.WAN.Prefix.Bits() != 24 {
			t.Fatalf("node %d's WAN %+v, want %s/24 on eth1", i+1, n.WAN, want)
		}
	}
	a, b := l.Node(1), l.Node(2)
	if err := exchangeVia(t, a, b, a.WAN.Addr, b.WAN.Addr, 2*time.Second); err != nil {
		t.Fatalf("UDP over br1: %v", err)
	}
	if err := b.WAN.Cut(); err != nil {
		t.Fatal(err)
	}
	carrier := func(n *Node, iface string) bool {
		eth, err := n.handle.LinkByName(iface)
		return err == nil && eth.Attrs().OperState == netlink.OperUp
	}
	poll.Until(t, 3*time.Second, "node2's eth1 without carrier", func() bool { return !carrier(b, "eth1") })
	if !carrier(b, "eth0") {
		t.Error("node2's eth0 lost carrier with its WAN link")
	}
	if err := exchange(t, a, b, 2*time.Second); err != nil {
		t.Errorf("UDP over br0 with the WAN link cut: %v", err)
	}
	if err := b.WAN.Restore(); err != nil {
		t.Fatal(err)
	}
	if err := exchangeVia(t, a, b, a.WAN.Addr, b.WAN.Addr, 2*time.Second); err != nil {
		t.Errorf("UDP over br1 after the restore: %v", err)
	}
	// A lab without the option has neither.
	if l := NewT(t, Options{Nodes: 1}); l.Node(1).WAN != nil || l.WANSubnet.IsValid() {
		t.Errorf("a lab without WAN: node1's WAN %+v, subnet %s", l.Node(1).WAN, l.WANSubnet)
	}
}

func TestCloseRemovesEverything(t *testing.T) {
	t.Parallel()
	RequireRoot(t)
	l, err := New(context.Background(), Options{Nodes: 2, Prefix: "rlabclose"})
	SkipIfUnprivileged(t, err)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.AddHost("extra"); err != nil {
		l.Close()
		t.Fatal(err)
	}
	p, err := l.Node(1).StartProcess("sleep", "", exec.Command("sleep", "300"))
	if err != nil {
		l.Close()
		t.Fatal(err)
	}
	// The child really runs in the node's namespace.
	self, err := os.Readlink("/proc/self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	child, err := os.Readlink("/proc/" + strconv.Itoa(p.Pid()) + "/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	if child == self {
		t.Errorf("child runs in the test's namespace %s", self)
	}
	dir := l.Dir
	if err := l.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if exited, _ := p.Exited(); !exited {
		t.Error("process still runs after Close")
	}
	ns, err := l.Namespaces()
	if err != nil {
		t.Fatal(err)
	}
	if len(ns) != 0 {
		t.Errorf("namespaces left after Close: %v", ns)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("lab directory %s left after Close (stat: %v)", dir, err)
	}
	if err := l.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// vrrpPayload is a hand-built RFC 3768 advertisement: VRID 51, priority 100, one address
// 192.0.2.100, interval 1 s, auth none.
var vrrpPayload = []byte{
	0x21, 51, 100, 1, 0, 1, 0x00, 0x00,
	192, 0, 2, 100,
	0, 0, 0, 0, 0, 0, 0, 0,
}

func init() {
	var sum uint32
	for i := 0; i < len(vrrpPayload); i += 2 {
		sum += uint32(vrrpPayload[i])<<8 | uint32(vrrpPayload[i+1])
	}
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	c := ^uint16(sum)
	vrrpPayload[6], vrrpPayload[7] = byte(c>>8), byte(c)
}

func TestSniffVRRPAndWatchVIP(t *testing.T) {
	t.Parallel()
	l := NewT(t, Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	vip := netip.MustParsePrefix("192.0.2.100/24")
	tl, err := l.Record(ctx, vip.Addr())
	if err != nil {
		t.Fatal(err)
	}
	a, b := l.Node(1), l.Node(2)

	// An advert from node1, sent the way a VRRP router sends it.
	start := time.Now()
	err = sendVRRP(a, func(pc *ipv4.PacketConn, dst *net.IPAddr) error {
		if err := pc.SetMulticastTTL(255); err != nil {
			return err
		}
		_, err := pc.WriteTo(vrrpPayload, nil, dst)
		return err
	})
	if err != nil {
		t.Fatalf("send advert from node1: %v", err)
	}
	got, err := tl.WaitAdvert(ctx, start, "the test advert", From(a, 51))
	if err != nil {
		t.Fatal(err)
	}
	want := Advert{
		At: got.At, SrcMAC: got.SrcMAC,
		Src: a.Addr, Dst: netip.MustParseAddr("224.0.0.18"), TTL: 255,
		Version: 2, VRID: 51, Priority: 100, Interval: time.Second,
		Addresses: []netip.Addr{vip.Addr()},
	}
	if diff := cmp.Diff(want, got, addrCmp); diff != "" {
		t.Errorf("sniffed advert (-want +got):\n%s", diff)
	}

	// The VIP added to and removed from node2 by netlink, as a daemon would.
	eth, err := b.handle.LinkByName("eth0")
	if err != nil {
		t.Fatal(err)
	}
	before := time.Now()
	if err := b.handle.AddrAdd(eth, &netlink.Addr{IPNet: ipNet(vip)}); err != nil {
		t.Fatal(err)
	}
	added, err := tl.WaitVIP(ctx, b, true, before)
	if err != nil {
		t.Fatal(err)
	}
	if d := added.At.Sub(before); d < 0 || d > time.Second {
		t.Errorf("VIP added event %v after the add", d)
	}
	if h := tl.Holders(); len(h) != 1 || h[0] != b {
		t.Errorf("holders = %v, want [node2]", h)
	}
	if err := b.RemoveAddr(vip); err != nil {
		t.Fatal(err)
	}
	if _, err := tl.WaitVIP(ctx, b, false, added.At); err != nil {
		t.Fatal(err)
	}
	if h := tl.Holders(); len(h) != 0 {
		t.Errorf("holders after removal = %d nodes, want none", len(h))
	}
}

func TestParseVRRPFrame(t *testing.T) {
	frame := []byte{
		0x01, 0x00, 0x5e, 0x00, 0x00, 0x12, // dst MAC
		0x02, 0x11, 0x22, 0x33, 0x44, 0x55, // src MAC
		0x08, 0x00,
		0x45, 0xc0, 0x00, 0x28, 0x00, 0x00, 0x00, 0x00, 0xff, 0x70, 0x00, 0x00, // IPv4, ttl 255, proto 112
		192, 0, 2, 12, 224, 0, 0, 18,
	}
	frame = append(frame, vrrpPayload...)
	got, ok := parseVRRPFrame(frame)
	if !ok {
		t.Fatal("frame not recognised")
	}
	want := Advert{
		SrcMAC: net.HardwareAddr{0x02, 0x11, 0x22, 0x33, 0x44, 0x55},
		Src:    netip.MustParseAddr("192.0.2.12"), Dst: netip.MustParseAddr("224.0.0.18"),
		TTL: 255, Version: 2, VRID: 51, Priority: 100, Interval: time.Second,
		Addresses: []netip.Addr{netip.MustParseAddr("192.0.2.100")},
	}
	if diff := cmp.Diff(want, got, addrCmp); diff != "" {
		t.Errorf("parseVRRPFrame (-want +got):\n%s", diff)
	}
	for _, n := range []int{0, 14, 33, len(frame) - 13} {
		if _, ok := parseVRRPFrame(frame[:n]); ok {
			t.Errorf("truncated frame of %d bytes accepted", n)
		}
	}
	other := append([]byte(nil), frame...)
	other[14+9] = 17 // UDP
	if _, ok := parseVRRPFrame(other); ok {
		t.Error("UDP frame accepted as VRRP")
	}
}

func TestParseARPFrame(t *testing.T) {
	frame := []byte{
		0xff, 0xff, 0xff, 0xff, 0xff, 0xff, // broadcast
		0x02, 0x11, 0x22, 0x33, 0x44, 0x55,
		0x08, 0x06,
		0x00, 0x01, 0x08, 0x00, 6, 4, 0x00, 0x01, // Ethernet/IPv4, request
		0x02, 0x11, 0x22, 0x33, 0x44, 0x55, 192, 0, 2, 100, // sender
		0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 192, 0, 2, 100, // target
	}
	got, ok := parseARPFrame(frame)
	if !ok {
		t.Fatal("ARP frame not recognised")
	}
	mac := net.HardwareAddr{0x02, 0x11, 0x22, 0x33, 0x44, 0x55}
	want := ARP{SrcMAC: mac, Op: 1, SenderMAC: mac,
		SenderIP: netip.MustParseAddr("192.0.2.100"), TargetIP: netip.MustParseAddr("192.0.2.100")}
	if diff := cmp.Diff(want, got, addrCmp); diff != "" {
		t.Errorf("parseARPFrame (-want +got):\n%s", diff)
	}
	if !got.Gratuitous() {
		t.Error("announcement not reported as gratuitous")
	}
	if _, ok := parseARPFrame(frame[:len(frame)-1]); ok {
		t.Error("truncated ARP frame accepted")
	}
}

// ipv6Frame is an Ethernet frame to dstMAC from 02:11:22:33:44:55 carrying payload as next
// header next from src to dst with hop limit 255.
func ipv6Frame(t *testing.T, dstMAC string, src, dst string, next byte, payload string) []byte {
	t.Helper()
	p, err := hex.DecodeString(payload)
	if err != nil {
		t.Fatal(err)
	}
	mac, _ := net.ParseMAC(dstMAC)
	f := append(mac, 0x02, 0x11, 0x22, 0x33, 0x44, 0x55, 0x86, 0xdd)
	f = append(f, 0x60, 0, 0, 0, byte(len(p)>>8), byte(len(p)), next, 255)
	s, d := netip.MustParseAddr(src).As16(), netip.MustParseAddr(dst).As16()
	f = append(append(f, s[:]...), d[:]...)
	return append(f, p...)
}

func TestParseVRRP6Frame(t *testing.T) {
	// keepalived's VRRPv3 IPv6 advert (vrrp/testdata/keepalived/v3-ipv6-1s.hex).
	frame := ipv6Frame(t, "33:33:00:00:00:12", "fe80::a8ae:beff:fe13:8616", "ff02::12", 112,
		"31346402006452d2fe80000000000000000000000000005220010db8000000000000000000000100")
	got, ok := parseVRRPFrame(frame)
	if !ok {
		t.Fatal("frame not recognised")
	}
	want := Advert{
		SrcMAC: net.HardwareAddr{0x02, 0x11, 0x22, 0x33, 0x44, 0x55},
		Src:    netip.MustParseAddr("fe80::a8ae:beff:fe13:8616"), Dst: netip.MustParseAddr("ff02::12"),
		TTL: 255, Version: 3, VRID: 52, Priority: 100, Interval: time.Second,
		Addresses: []netip.Addr{netip.MustParseAddr("fe80::52"), netip.MustParseAddr("2001:db8::100")},
	}
	if diff := cmp.Diff(want, got, addrCmp); diff != "" {
		t.Errorf("parseVRRPFrame (-want +got):\n%s", diff)
	}
	for _, n := range []int{0, 14, 53, 61, len(frame) - 1} {
		if _, ok := parseVRRPFrame(frame[:n]); ok {
			t.Errorf("truncated frame of %d bytes accepted", n)
		}
	}
}

func TestParseNAFrame(t *testing.T) {
	// redundantd's NA for fe80::1 from fe80::2, Override only (vrrp's TestBuildNAGolden).
	frame := ipv6Frame(t, "33:33:00:00:00:01", "fe80::2", "ff02::1", 58,
		"8800f96720000000fe80000000000000000000000000000102010000"+"5e000233")
	got, ok := parseNAFrame(frame)
	if !ok {
		t.Fatal("frame not recognised")
	}
	want := NA{
		SrcMAC: net.HardwareAddr{0x02, 0x11, 0x22, 0x33, 0x44, 0x55},
		Src:    netip.MustParseAddr("fe80::2"), Dst: netip.MustParseAddr("ff02::1"), HopLimit: 255,
		Override: true, Target: netip.MustParseAddr("fe80::1"),
		TargetMAC: net.HardwareAddr{0x00, 0x00, 0x5e, 0x00, 0x02, 0x33},
	}
	if diff := cmp.Diff(want, got, addrCmp); diff != "" {
		t.Errorf("parseNAFrame (-want +got):\n%s", diff)
	}
	frame[54+4] = 0xe0 // R, S and O
	if got, _ := parseNAFrame(frame); !got.Router || !got.Solicited || !got.Override {
		t.Errorf("flags 0xe0 parsed as %+v", got)
	}
	for _, n := range []int{0, 14, 54, 77, len(frame) - 1} {
		if _, ok := parseNAFrame(frame[:n]); ok {
			t.Errorf("truncated frame of %d bytes accepted", n)
		}
	}
}

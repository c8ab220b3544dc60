package vrrp

import (
	"encoding/hex"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/mdlayher/packet"
)

// garpGolden is the frame for 192.0.2.100 at 02:00:00:00:00:01, field by field.
var garpGolden = strings.Join([]string{
	"ffffffffffff", // destination: broadcast
	"020000000001", // source
	"0806",         // EtherType ARP
	"0001",         // hardware type Ethernet
	"0800",         // protocol type IPv4
	"06", "04",     // address lengths
	"0001",         // request
	"020000000001", // sender hardware address
	"c0000264",     // sender protocol address 192.0.2.100
	"000000000000", // target hardware address
	"c0000264",     // target protocol address 192.0.2.100
	strings.Repeat("00", 18),
}, "")

func TestBuildGARPGolden(t *testing.T) {
	b := make([]byte, garpFrameLen)
	for i := range b {
		b[i] = 0xee // stale bytes from a previous frame must not leak into the padding
	}
	hw := net.HardwareAddr{2, 0, 0, 0, 0, 1}
	if err := buildGARP(b, hw, netip.MustParseAddr("192.0.2.100")); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(garpGolden, hex.EncodeToString(b)); diff != "" {
		t.Errorf("frame (-want +got):\n%s", diff)
	}
	if err := buildGARP(b, hw, netip.MustParseAddr("2001:db8::1")); err == nil {
		t.Error("buildGARP accepted an IPv6 address")
	}
	if err := buildGARP(b, hw[:4], netip.MustParseAddr("192.0.2.100")); err == nil {
		t.Error("buildGARP accepted a 4-byte hardware address")
	}
}

// listenFrames opens a packet socket for EtherType proto on a link of n, for observing what a
// peer puts on the wire.
func listenFrames(t *testing.T, n *testNS, ifname string, proto int) *packet.Conn {
	t.Helper()
	ifi := n.iface(t, ifname)
	var c *packet.Conn
	var err error
	n.do(t, func() { c, err = packet.Listen(ifi, packet.Raw, proto, nil) })
	if err != nil {
		t.Fatalf("packet socket on %s: %v", ifname, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// nextFrame returns the next frame for which keep is true, or fails after timeout.
func nextFrame(t *testing.T, c *packet.Conn, timeout time.Duration, keep func([]byte) bool) []byte {
	t.Helper()
	b := make([]byte, 2048)
	deadline := time.Now().Add(timeout)
	for {
		if err := c.SetReadDeadline(deadline); err != nil {
			t.Fatal(err)
		}
		n, _, err := c.ReadFrom(b)
		if err != nil {
			t.Fatalf("waiting for a frame: %v", err)
		}
		if keep(b[:n]) {
			return b[:n]
		}
	}
}

func TestARPAnnouncerOnTheWire(t *testing.T) {
	a, b := newTestNS(t), newTestNS(t)
	connect(t, a, "vrt0", labA, b, "vrt1", labB)
	sniff := listenFrames(t, b, "vrt1", etherTypeARP)

	ifi := a.iface(t, "vrt0")
	var ann *frameAnnouncer
	var err error
	a.do(t, func() { ann, err = newARPAnnouncer(ifi) })
	if err != nil {
		t.Fatal(err)
	}
	defer ann.Close()
	vips := []netip.Addr{netip.MustParseAddr("192.0.2.100"), netip.MustParseAddr("192.0.2.101")}
	if err := ann.Announce(vips); err != nil {
		t.Fatalf("Announce: %v", err)
	}
	for _, ip := range vips {
		want := make([]byte, garpFrameLen)
		if err := buildGARP(want, ifi.HardwareAddr, ip); err != nil {
			t.Fatal(err)
		}
		got := nextFrame(t, sniff, 2*time.Second, func(f []byte) bool {
			return len(f) >= 42 && net.IP(f[28:32]).Equal(ip.AsSlice())
		})
		if diff := cmp.Diff(hex.EncodeToString(want), hex.EncodeToString(got)); diff != "" {
			t.Errorf("gratuitous ARP for %v as received by the peer (-want +got):\n%s", ip, diff)
		}
	}
}

package testlab

import (
	"context"
	"net"
	"net/netip"
	"testing"
	"time"

	"golang.org/x/net/ipv4"
)

// recordedLab builds a two-node lab for the test, a context bounded by timeout, and a
// Timeline recording the adverts, ARPs and default VIP of the lab; all end with the test.
func recordedLab(t *testing.T, timeout time.Duration) (*Lab, context.Context, *Timeline) {
	t.Helper()
	return recordedLabFor(t, timeout, netip.Addr{})
}

// recordedLabFor is recordedLab with the Timeline following vip (the default VIP if invalid).
func recordedLabFor(t *testing.T, timeout time.Duration, vip netip.Addr) (*Lab, context.Context, *Timeline) {
	t.Helper()
	l := NewT(t, Options{})
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	t.Cleanup(cancel)
	if !vip.IsValid() {
		vip = l.DefaultVIP().Addr()
	}
	tl, err := l.Record(ctx, vip)
	if err != nil {
		t.Fatal(err)
	}
	return l, ctx, tl
}

// sendVRRP opens a raw protocol-112 socket in node n, aimed at 224.0.0.18 on its eth0, and
// hands it to send: the way a VRRP router (or a forger of adverts) sends.
func sendVRRP(n *Node, send func(pc *ipv4.PacketConn, dst *net.IPAddr) error) error {
	return n.Do(func() error {
		c, err := net.ListenPacket("ip4:112", "0.0.0.0")
		if err != nil {
			return err
		}
		defer c.Close()
		pc := ipv4.NewPacketConn(c)
		ifi, err := net.InterfaceByName("eth0")
		if err != nil {
			return err
		}
		if err := pc.SetMulticastInterface(ifi); err != nil {
			return err
		}
		return send(pc, &net.IPAddr{IP: net.IPv4(224, 0, 0, 18)})
	})
}

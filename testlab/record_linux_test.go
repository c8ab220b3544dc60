package testlab

import (
	"context"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/redundantd/redundantd/testlab/fossim"
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

// berofosLab is a recorded lab with a berofos and an appliance pair that switches its lines:
// node1 (priority 150) is Master with the lines on its side (relay mode 1), node2 (100) its
// Backup. The fault tests start from it.
type berofosLab struct {
	*Lab
	ctx  context.Context
	tl   *Timeline
	fos  *Berofos
	a, b *PBX
}

func newBerofosLab(t *testing.T, timeout time.Duration) *berofosLab {
	t.Helper()
	l, ctx, tl := recordedLab(t, timeout)
	fos, err := l.StartBerofos(ctx, "fos1", fossim.Config{})
	if err != nil {
		t.Fatal(err)
	}
	ps, err := StartPBXPair(ctx, l, [2]VRRPConfig{{Priority: 150}, {Priority: 100}}, [2]string{fos.TOML(1), fos.TOML(0)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := waitMode(ctx, fos, 1); err != nil {
		t.Fatalf("lines not on node1: %v", err)
	}
	return &berofosLab{Lab: l, ctx: ctx, tl: tl, fos: fos, a: ps[0], b: ps[1]}
}

package vrrp

import (
	"bytes"
	"net/netip"
	"testing"
	"time"
)

// openConn opens a rawConn in n on ifname.
func openConn(t *testing.T, n *testNS, ifname string, primary netip.Addr, peers []netip.Addr) *rawConn {
	t.Helper()
	return openIn(t, n, ifname, func(cc connConfig) (*rawConn, error) { return newRawConn(cc) }, primary, peers)
}

// openIn opens a Conn with open in n, receiving on and sending from ifname, and closes it when
// the test ends.
func openIn[C Conn](t *testing.T, n *testNS, ifname string, open func(connConfig) (C, error), primary netip.Addr, peers []netip.Addr) C {
	t.Helper()
	ifi := n.iface(t, ifname)
	var c C
	var err error
	n.do(t, func() { c, err = open(connConfig{recv: ifi, send: ifi, primary: primary, peers: peers}) })
	if err != nil {
		t.Fatalf("opening a Conn in %s: %v", n.name, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// receiveWithin runs Receive with a deadline, so that a lost packet fails the test instead of
// hanging it.
func receiveWithin(t *testing.T, c *rawConn, d time.Duration) Inbound {
	t.Helper()
	return receiveBy(t, c.pc, c, d)
}

// receiveBy is receiveWithin for any Conn whose socket is pc.
func receiveBy(t *testing.T, pc interface{ SetReadDeadline(time.Time) error }, c Conn, d time.Duration) Inbound {
	t.Helper()
	if err := pc.SetReadDeadline(time.Now().Add(d)); err != nil {
		t.Fatal(err)
	}
	in, err := c.Receive()
	if err != nil {
		t.Fatalf("Receive: %v", err)
	}
	return in
}

func testAdvertBytes(t *testing.T, prio uint8) []byte {
	t.Helper()
	a := Advertisement{Version: 2, Type: TypeAdvertisement, VRID: 51, Priority: prio, Interval: time.Second,
		Addresses: []netip.Addr{labVIP.Addr()}}
	b, err := a.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestRawConnMulticast(t *testing.T) {
	a, b := newTestNS(t), newTestNS(t)
	connect(t, a, "vrt0", labA, b, "vrt1", labB)
	ca := openConn(t, a, "vrt0", labA.Addr(), nil)
	cb := openConn(t, b, "vrt1", labB.Addr(), nil)

	payload := testAdvertBytes(t, 100)
	if err := ca.Send(payload, vrrpGroup); err != nil {
		t.Fatalf("Send: %v", err)
	}
	in := receiveWithin(t, cb, 2*time.Second)
	if in.Src != labA.Addr() || in.Dst != vrrpGroup || in.TTL != 255 || !bytes.Equal(in.Payload, payload) {
		t.Errorf("received %+v; want from %v to %v with TTL 255 and the payload sent", in, labA.Addr(), vrrpGroup)
	}
	// The payload is a copy: the next read must not overwrite it.
	kept := bytes.Clone(in.Payload)
	if err := ca.Send(testAdvertBytes(t, 7), vrrpGroup); err != nil {
		t.Fatal(err)
	}
	receiveWithin(t, cb, 2*time.Second)
	if !bytes.Equal(in.Payload, kept) {
		t.Error("Receive returned a payload aliasing its read buffer")
	}
	// Multicast loopback is off: the sender does not read its own advert.
	if err := ca.pc.SetReadDeadline(time.Now().Add(200 * time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	if in, err := ca.Receive(); err == nil {
		t.Errorf("sender received %+v: multicast loopback is on", in)
	}
}

func TestRawConnUnicast(t *testing.T) {
	a, b := newTestNS(t), newTestNS(t)
	connect(t, a, "vrt0", labA, b, "vrt1", labB)
	ca := openConn(t, a, "vrt0", labA.Addr(), []netip.Addr{labB.Addr()})
	cb := openConn(t, b, "vrt1", labB.Addr(), []netip.Addr{labA.Addr()})
	payload := testAdvertBytes(t, 100)
	if err := ca.Send(payload, labB.Addr()); err != nil {
		t.Fatalf("Send: %v", err)
	}
	in := receiveWithin(t, cb, 2*time.Second)
	if in.Src != labA.Addr() || in.Dst != labB.Addr() || in.TTL != 255 || !bytes.Equal(in.Payload, payload) {
		t.Errorf("received %+v; want unicast from %v to %v with TTL 255", in, labA.Addr(), labB.Addr())
	}

	// Multicast adverts for a group another socket of the host joined (keepalived on the same
	// box, say) do not reach a unicast-mode Conn.
	cm := openConn(t, b, "vrt1", labB.Addr(), nil)
	ma := openConn(t, a, "vrt0", labA.Addr(), nil)
	if err := ma.Send(payload, vrrpGroup); err != nil {
		t.Fatal(err)
	}
	receiveWithin(t, cm, 2*time.Second)
	if err := cb.pc.SetReadDeadline(time.Now().Add(300 * time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	if in, err := cb.Receive(); err == nil {
		t.Errorf("unicast-mode Conn received %+v, sent to %v", in, vrrpGroup)
	}
}

// One raw socket sees the VRRP unicast to any local address, whatever the interface; a Conn
// returns only what arrived on its own.
func TestRawConnFiltersInterface(t *testing.T) {
	a, b, c := newTestNS(t), newTestNS(t), newTestNS(t)
	cNet, bNet := netip.MustParsePrefix("198.51.100.1/24"), netip.MustParsePrefix("198.51.100.2/24")
	connect(t, a, "vrt0", labA, b, "vrt1", labB)
	connect(t, c, "vrt2", cNet, b, "vrt3", bNet)
	ca := openConn(t, a, "vrt0", labA.Addr(), nil)
	cc := openConn(t, c, "vrt2", cNet.Addr(), []netip.Addr{bNet.Addr()})
	cb := openConn(t, b, "vrt1", labB.Addr(), nil)

	if err := cc.Send(testAdvertBytes(t, 9), bNet.Addr()); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond) // let it arrive first
	if err := ca.Send(testAdvertBytes(t, 100), vrrpGroup); err != nil {
		t.Fatal(err)
	}
	in := receiveWithin(t, cb, 2*time.Second)
	if in.Src != labA.Addr() {
		t.Errorf("Conn on vrt1 returned a datagram from %v (another interface)", in.Src)
	}
}

package berofos_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/redundantd/redundantd/berofos"
	"github.com/redundantd/redundantd/testlab/fossim"
	"github.com/redundantd/redundantd/testlab/labns"
	"github.com/redundantd/redundantd/testlab/poll"
)

// labPair creates two uniquely named namespaces joined by a veth pair: the device side with
// 192.0.2.10/24 and the node side with 192.0.2.1/24 and a default route over the link, so a
// limited broadcast from the node reaches the device. Both are removed in t.Cleanup.
func labPair(t testing.TB) (dev, node netns.NsHandle) {
	t.Helper()
	_, dev = labns.New(t, "rdfos-dev")
	_, node = labns.New(t, "rdfos-node")
	hd, err := netlink.NewHandleAt(dev)
	if err != nil {
		t.Fatal(err)
	}
	defer hd.Close()
	hn, err := netlink.NewHandleAt(node)
	if err != nil {
		t.Fatal(err)
	}
	defer hn.Close()
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "fos0"}, PeerName: "node0", PeerNamespace: netlink.NsFd(node)}
	if err := hd.LinkAdd(veth); err != nil {
		t.Fatalf("veth: %v", err)
	}
	setup := func(h *netlink.Handle, ifname, cidr string, defRoute bool) {
		t.Helper()
		for _, n := range []string{"lo", ifname} {
			l, err := h.LinkByName(n)
			if err != nil {
				t.Fatal(err)
			}
			if err := h.LinkSetUp(l); err != nil {
				t.Fatal(err)
			}
		}
		l, _ := h.LinkByName(ifname)
		a, err := netlink.ParseAddr(cidr)
		if err != nil {
			t.Fatal(err)
		}
		if err := h.AddrAdd(l, a); err != nil {
			t.Fatal(err)
		}
		if defRoute {
			r := &netlink.Route{LinkIndex: l.Attrs().Index, Scope: netlink.SCOPE_LINK,
				Dst: &net.IPNet{IP: net.IPv4zero, Mask: net.CIDRMask(0, 32)}}
			if err := h.RouteAdd(r); err != nil {
				t.Fatalf("default route: %v", err)
			}
		}
	}
	setup(hd, "fos0", "192.0.2.10/24", false)
	setup(hn, "node0", "192.0.2.1/24", true)
	// The kernel drops what is sent before the carrier is up, and reports the carrier up to
	// a rate-limited link watcher (up to a second): wait for both ends.
	for _, p := range []struct {
		h    *netlink.Handle
		name string
	}{{hd, "fos0"}, {hn, "node0"}} {
		poll.Until(t, 5*time.Second, p.name+" operationally up", func() bool {
			l, err := p.h.LinkByName(p.name)
			return err == nil && l.Attrs().OperState == netlink.OperUp
		})
	}
	return dev, node
}

// nsClient returns a client whose sockets live in ns.
func nsClient(t testing.TB, ns netns.NsHandle, timeout time.Duration) *berofos.Client {
	c := berofos.NewClient(berofos.ClientOptions{
		Timeout:    timeout,
		Retransmit: 100 * time.Millisecond,
		Dial: func(ctx context.Context, network, addr string) (c net.Conn, err error) {
			err = labns.Do(ns, func() (err error) {
				c, err = (&net.Dialer{}).DialContext(ctx, network, addr)
				return err
			})
			return c, err
		},
		ListenPacket: func(ctx context.Context) (pc net.PacketConn, err error) {
			err = labns.Do(ns, func() (err error) {
				pc, err = (&net.ListenConfig{}).ListenPacket(ctx, "udp4", ":0")
				return err
			})
			return pc, err
		},
	})
	t.Cleanup(c.Close)
	return c
}

// labSim runs a simulator in ns on the berofos ports of 192.0.2.10.
func labSim(t testing.TB, ns netns.NsHandle, cfg fossim.Config) *fossim.Sim {
	t.Helper()
	cfg.IP = mustAddr("192.0.2.10")
	sim, err := fossim.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var ln net.Listener
	var pc net.PacketConn
	if err := labns.Do(ns, func() (err error) {
		if ln, err = net.Listen("tcp4", "192.0.2.10:80"); err != nil {
			return err
		}
		pc, err = net.ListenPacket("udp4", fmt.Sprintf("0.0.0.0:%d", berofos.UDPPort))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- sim.Run(ctx, ln, pc) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("sim: %v", err)
		}
	})
	return sim
}

// TestLabNamespaceFailures runs the failure cases across the lab link: wrong password, CRLF
// config.txt, garbage answers, a slow device, a device that is down, and a device that
// reboots to its default mode while the controller holds the lines.
func TestLabNamespaceFailures(t *testing.T) {
	devNS, nodeNS := labPair(t)
	sim := labSim(t, devNS, fossim.Config{Password: "secret", Settings: map[string]string{"modedef": "0"}})
	client := nsClient(t, nodeNS, 300*time.Millisecond)
	dev := berofos.Device{Name: "fos1", Host: "192.0.2.10", MAC: net.HardwareAddr{0x00, 0x19, 0x32, 0x00, 0x12, 0x1D}, Login: "admin:secret"}
	ctx := t.Context()

	wrong := dev
	wrong.Login = "admin:nope"
	if _, err := nsClient(t, nodeNS, time.Second).ReadConfig(ctx, wrong); !errors.Is(err, berofos.ErrAuth) {
		t.Errorf("wrong password: %v, want ErrAuth", err)
	}
	sim.SetCRLF(true)
	if cfg, err := client.ReadConfig(ctx, dev); err != nil {
		t.Errorf("CRLF config.txt: %v", err)
	} else if m, _ := cfg.Mode(); m != 0 {
		t.Errorf("CRLF config.txt: mode %d", m)
	}
	sim.SetCRLF(false)
	sim.SetGarbage(true)
	if _, err := client.ReadConfig(ctx, dev); !errors.Is(err, berofos.ErrNoMagic) {
		t.Errorf("garbage: %v, want ErrNoMagic", err)
	}
	if err := client.Kick(ctx, dev); !errors.Is(err, berofos.ErrNoReply) {
		t.Errorf("garbage GBL4: %v, want ErrNoReply", err)
	}
	sim.SetGarbage(false)
	sim.SetDelay(time.Second)
	if _, err := client.ReadConfig(ctx, dev); err == nil || !strings.Contains(err.Error(), "no answer within") {
		t.Errorf("slow device: %v", err)
	}
	sim.SetDelay(0)
	sim.SetDown(true)
	if _, err := client.ReadConfig(ctx, dev); err == nil {
		t.Error("device down: no error")
	}
	if err := client.Ping(ctx, dev); !errors.Is(err, berofos.ErrNoReply) {
		t.Errorf("device down, ping: %v", err)
	}
	sim.SetDown(false)

	ev := &events{}
	c, err := berofos.NewController(berofos.ControllerConfig{Devices: []berofos.Device{dev}, ModeForMe: 1,
		PollInterval: 100 * time.Millisecond, RetryMin: 50 * time.Millisecond, RetryMax: 200 * time.Millisecond,
		Timeout: 300 * time.Millisecond, OnEvent: ev.add}, client)
	if err != nil {
		t.Fatal(err)
	}
	cctx, ccancel := context.WithCancel(context.Background())
	cdone := make(chan error, 1)
	go func() { cdone <- c.Run(cctx) }()
	defer func() { ccancel(); <-cdone }()
	c.SetDesired(berofos.LinesToMe)
	poll.Until(t, 5*time.Second, "confirmed", func() bool { return ev.count("fos1", berofos.EventConfirmed) == 1 })
	sim.SetDown(true)
	sim.Reboot() // comes back in modedef 0
	poll.Until(t, 5*time.Second, "unreachable", func() bool { return ev.count("fos1", berofos.EventUnreachable) == 1 })
	sim.SetDown(false)
	poll.Until(t, 5*time.Second, "re-asserted after the reboot", func() bool { return ev.count("fos1", berofos.EventConfirmed) == 2 })
	if sim.Mode() != 1 || ev.count("fos1", berofos.EventReachable) != 1 {
		t.Errorf("after the reboot: mode %d, %d reachable events", sim.Mode(), ev.count("fos1", berofos.EventReachable))
	}
}

// TestLabNamespaceScanAndControl runs the simulator in its own namespace, on the real
// berofos ports, and drives it from another namespace: a broadcast scan, password-protected
// HTTP and the controller, watchdog kicks over GBL4 included.
func TestLabNamespaceScanAndControl(t *testing.T) {
	devNS, nodeNS := labPair(t)
	sim := labSim(t, devNS, fossim.Config{Password: "secret",
		Settings: map[string]string{"modedef": "0", "scenario": "1", "wdogitime": "2"}})
	client := nsClient(t, nodeNS, time.Second)

	replies, err := client.Scan(t.Context(), "", 0, 500*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if len(replies) != 1 || replies[0].IP != mustAddr("192.0.2.10") || replies[0].Options&berofos.OptionHTTPAuth == 0 || replies[0].HTTPPort != 80 {
		t.Fatalf("broadcast scan: %+v", replies)
	}
	dev := berofos.Device{Name: "fos1", Host: replies[0].IP.String(), MAC: replies[0].MAC, Login: "admin:secret"}

	ev := &events{}
	c, err := berofos.NewController(berofos.ControllerConfig{
		Devices: []berofos.Device{dev}, ModeForMe: 1, Kick: true, KickInterval: 300 * time.Millisecond,
		PollInterval: 100 * time.Millisecond, Timeout: time.Second, OnEvent: ev.add,
	}, client)
	if err != nil {
		t.Fatal(err)
	}
	cctx, ccancel := context.WithCancel(context.Background())
	cdone := make(chan error, 1)
	go func() { cdone <- c.Run(cctx) }()
	c.SetHealthy(true)
	c.SetDesired(berofos.LinesToMe)
	poll.Until(t, 5*time.Second, "confirmed over the lab link", func() bool { return ev.count("fos1", berofos.EventConfirmed) == 1 })
	if sim.Mode() != 1 {
		t.Errorf("mode %d", sim.Mode())
	}
	poll.Until(t, 5*time.Second, "kicks", func() bool { return sim.Kicks() >= 3 })
	// The daemon stops: kicks stop, the device falls back to A-D on its own.
	ccancel()
	if err := <-cdone; err != nil {
		t.Fatal(err)
	}
	poll.Until(t, 5*time.Second, "watchdog fallback", func() bool { return sim.Mode() == 0 })
	if v, _ := sim.Get("wdogstate"); v != "2" {
		t.Errorf("wdogstate %s after the fallback, want 2", v)
	}
}

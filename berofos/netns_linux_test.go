package berofos_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"runtime"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/redundantd/redundantd/berofos"
	"github.com/redundantd/redundantd/testlab/fossim"
)

// inNS runs f on a thread switched into ns; sockets f opens live in ns.
func inNS(ns netns.NsHandle, f func() error) error {
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		return err
	}
	defer orig.Close()
	if err := netns.Set(ns); err != nil {
		runtime.UnlockOSThread()
		return err
	}
	ferr := f()
	if err := netns.Set(orig); err != nil {
		// Leave the thread locked: the runtime discards it when the goroutine ends.
		return fmt.Errorf("restoring the namespace: %w", err)
	}
	runtime.UnlockOSThread()
	return ferr
}

// labPair creates two uniquely named namespaces joined by a veth pair: the device side with
// 192.0.2.10/24 and the node side with 192.0.2.1/24 and a default route over the link, so a
// limited broadcast from the node reaches the device. Both are removed in t.Cleanup.
func labPair(t testing.TB) (dev, node netns.NsHandle) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to create network namespaces")
	}
	tag := fmt.Sprintf("%d-%04x", os.Getpid()%100000, rand.IntN(0x10000))
	names := []string{"rdfos-dev-" + tag, "rdfos-node-" + tag}
	var handles []netns.NsHandle
	err := func() error {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		orig, err := netns.Get()
		if err != nil {
			return err
		}
		defer func() {
			netns.Set(orig)
			orig.Close()
		}()
		for _, n := range names {
			h, err := netns.NewNamed(n) // also switches this thread into it
			if err != nil {
				return err
			}
			handles = append(handles, h)
			t.Cleanup(func() {
				h.Close()
				if err := netns.DeleteNamed(n); err != nil {
					t.Errorf("removing namespace %s: %v", n, err)
				}
			})
		}
		return nil
	}()
	if err != nil {
		t.Fatalf("creating namespaces: %v", err)
	}
	dev, node = handles[0], handles[1]
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
	return dev, node
}

// TestLabNamespaceScanAndControl runs the simulator in its own namespace, on the real
// berofos ports, and drives it from another namespace: a broadcast scan, password-protected
// HTTP and the controller, watchdog kicks over GBL4 included.
func TestLabNamespaceScanAndControl(t *testing.T) {
	devNS, nodeNS := labPair(t)
	sim, err := fossim.New(fossim.Config{IP: mustAddr("192.0.2.10"), Password: "secret",
		Settings: map[string]string{"modedef": "0", "scenario": "1", "wdogitime": "2"}})
	if err != nil {
		t.Fatal(err)
	}
	var ln net.Listener
	var pc net.PacketConn
	if err := inNS(devNS, func() (err error) {
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

	client := berofos.NewClient(berofos.ClientOptions{
		Timeout:    time.Second,
		Retransmit: 100 * time.Millisecond,
		Dial: func(ctx context.Context, network, addr string) (c net.Conn, err error) {
			err = inNS(nodeNS, func() (err error) {
				c, err = (&net.Dialer{}).DialContext(ctx, network, addr)
				return err
			})
			return c, err
		},
		ListenPacket: func(ctx context.Context) (pc net.PacketConn, err error) {
			err = inNS(nodeNS, func() (err error) {
				pc, err = (&net.ListenConfig{}).ListenPacket(ctx, "udp4", ":0")
				return err
			})
			return pc, err
		},
	})
	t.Cleanup(client.Close)

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
	eventually(t, 5*time.Second, "confirmed over the lab link", func() bool { return ev.count("fos1", berofos.EventConfirmed) == 1 })
	if sim.Mode() != 1 {
		t.Errorf("mode %d", sim.Mode())
	}
	eventually(t, 5*time.Second, "kicks", func() bool { return sim.Kicks() >= 3 })
	// The daemon stops: kicks stop, the device falls back to A-D on its own.
	ccancel()
	if err := <-cdone; err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "watchdog fallback", func() bool { return sim.Mode() == 0 })
	if v, _ := sim.Get("wdogstate"); v != "2" {
		t.Errorf("wdogstate %s after the fallback, want 2", v)
	}
}

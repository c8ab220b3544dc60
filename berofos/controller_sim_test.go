package berofos_test

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/redundantd/redundantd/berofos"
	"github.com/redundantd/redundantd/testlab/fossim"
	"github.com/redundantd/redundantd/testlab/poll"
)

func mustAddr(s string) netip.Addr { return netip.MustParseAddr(s) }

type events struct {
	mu sync.Mutex
	ev []berofos.DeviceEvent
}

func (e *events) add(ev berofos.DeviceEvent) { e.mu.Lock(); e.ev = append(e.ev, ev); e.mu.Unlock() }

func (e *events) count(dev string, kind berofos.EventKind) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	n := 0
	for _, ev := range e.ev {
		if ev.Device == dev && ev.Kind == kind {
			n++
		}
	}
	return n
}

// runController starts a controller with a fast poll over real HTTP and UDP.
func runController(t *testing.T, cfg berofos.ControllerConfig) (*berofos.Controller, *events) {
	t.Helper()
	ev := &events{}
	cfg.OnEvent = ev.add
	if cfg.PollInterval == 0 {
		cfg.PollInterval = 50 * time.Millisecond
	}
	cfg.RetryMin, cfg.RetryMax = 20*time.Millisecond, 200*time.Millisecond
	if cfg.Timeout == 0 {
		cfg.Timeout = 300 * time.Millisecond
	}
	client := berofos.NewClient(berofos.ClientOptions{Timeout: cfg.Timeout, Retransmit: 50 * time.Millisecond})
	t.Cleanup(client.Close)
	c, err := berofos.NewController(cfg, client)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return c, ev
}

func TestControllerFourDevicesAgainstSim(t *testing.T) {
	var devs []berofos.Device
	var sims []*fossim.Sim
	for i := range 4 {
		sim, dev := startSim(t, fmt.Sprintf("fos%d", i+1), fossim.Config{
			MAC:      net.HardwareAddr{0, 0x19, 0x32, 0, 0x12, byte(i)},
			Password: map[bool]string{true: "secret"}[i%2 == 1],
			Settings: map[string]string{"modedef": "0"},
		})
		devs, sims = append(devs, dev), append(sims, sim)
	}
	c, ev := runController(t, berofos.ControllerConfig{Devices: devs, ModeForMe: 1})
	c.SetDesired(berofos.LinesToMe)
	poll.Until(t, 5*time.Second, "all four confirmed", func() bool {
		for _, d := range devs {
			if ev.count(d.Name, berofos.EventConfirmed) != 1 {
				return false
			}
		}
		return true
	})
	for i, s := range sims {
		if s.Mode() != 1 || len(s.Sets()) != 1 {
			t.Errorf("fos%d: mode %d after %d sets", i+1, s.Mode(), len(s.Sets()))
		}
	}
	c.SetDesired(berofos.LinesToPeer)
	poll.Until(t, 5*time.Second, "all four back to mode 0", func() bool {
		for _, d := range devs {
			if ev.count(d.Name, berofos.EventConfirmed) != 2 {
				return false
			}
		}
		return true
	})
	// Polls go on; nothing more is sent while the modes are in place.
	time.Sleep(300 * time.Millisecond)
	for i, s := range sims {
		if s.Mode() != 0 || len(s.Sets()) != 2 {
			t.Errorf("fos%d: mode %d after %d sets, want 0 after 2", i+1, s.Mode(), len(s.Sets()))
		}
	}
	for _, st := range c.Status() {
		if !st.Reachable || !st.InPlace || st.LastChangeMode != 0 || st.LastError != "" {
			t.Errorf("status %+v", st)
		}
	}
}

func TestControllerReassertsAfterRebootAndButton(t *testing.T) {
	sim, dev := startSim(t, "fos1", fossim.Config{Settings: map[string]string{"modedef": "1"}})
	c, ev := runController(t, berofos.ControllerConfig{Devices: []berofos.Device{dev}, ModeForMe: 0})
	c.SetDesired(berofos.LinesToMe)
	poll.Until(t, 5*time.Second, "mode 0 confirmed", func() bool { return ev.count("fos1", berofos.EventConfirmed) == 1 })

	sim.Reboot() // back to modedef 1
	poll.Until(t, 5*time.Second, "mode 0 re-asserted after reboot", func() bool { return ev.count("fos1", berofos.EventConfirmed) == 2 })
	if sim.Mode() != 0 || ev.count("fos1", berofos.EventDrift) != 1 {
		t.Errorf("after reboot: mode %d, %d drift events", sim.Mode(), ev.count("fos1", berofos.EventDrift))
	}
	sim.PressButton()
	poll.Until(t, 5*time.Second, "mode 0 re-asserted after the button", func() bool { return ev.count("fos1", berofos.EventConfirmed) == 3 })

	// Down for a while: unreachable, then reachable again and re-asserted if needed.
	sim.SetDown(true)
	poll.Until(t, 5*time.Second, "unreachable", func() bool { return ev.count("fos1", berofos.EventUnreachable) == 1 })
	if st := c.Status()[0]; st.Reachable || st.LastError == "" {
		t.Errorf("status while down: %+v", st)
	}
	sim.Reboot()
	sim.SetDown(false)
	poll.Until(t, 5*time.Second, "re-asserted after coming back", func() bool { return ev.count("fos1", berofos.EventConfirmed) == 4 })
	if ev.count("fos1", berofos.EventReachable) != 1 || sim.Mode() != 0 {
		t.Errorf("after coming back: %d reachable events, mode %d", ev.count("fos1", berofos.EventReachable), sim.Mode())
	}
	want := []string{"Powerup", "Relay Mode changed: A-D", "Powerup", "Relay Mode changed: A-B", "Relay Mode changed: A-D",
		"Relay Mode changed: A-B", "Relay Mode changed: A-D", "Powerup", "Relay Mode changed: A-B", "Relay Mode changed: A-D"}
	var got []string
	for _, m := range sim.Messages() {
		got = append(got, m[len("berofos:NN: "):])
	}
	if !slices.Equal(want, got) {
		t.Errorf("device log:\n got %q\nwant %q", got, want)
	}
}

func TestControllerGarbageAndSlowDeviceAgainstSim(t *testing.T) {
	good, gdev := startSim(t, "fos1", fossim.Config{Settings: map[string]string{"modedef": "0"}})
	bad, bdev := startSim(t, "fos2", fossim.Config{MAC: net.HardwareAddr{0, 0x19, 0x32, 0, 0, 2}, Settings: map[string]string{"modedef": "0"}})
	slow, sdev := startSim(t, "fos3", fossim.Config{MAC: net.HardwareAddr{0, 0x19, 0x32, 0, 0, 3}, Settings: map[string]string{"modedef": "0"}})
	bad.SetGarbage(true)
	slow.SetDelay(time.Hour)
	c, ev := runController(t, berofos.ControllerConfig{Devices: []berofos.Device{gdev, bdev, sdev}, ModeForMe: 1, Timeout: 200 * time.Millisecond})
	start := time.Now()
	c.SetDesired(berofos.LinesToMe)
	poll.Until(t, 5*time.Second, "fos1 confirmed", func() bool { return ev.count("fos1", berofos.EventConfirmed) == 1 })
	t.Logf("fos1 confirmed after %v while fos2 answers garbage and fos3 hangs", time.Since(start))
	if good.Mode() != 1 {
		t.Error("fos1 not switched")
	}
	poll.Until(t, 5*time.Second, "fos2 and fos3 unreachable", func() bool {
		return ev.count("fos2", berofos.EventUnreachable) == 1 && ev.count("fos3", berofos.EventUnreachable) == 1
	})
	bad.SetGarbage(false)
	slow.SetDelay(0)
	poll.Until(t, 5*time.Second, "fos2 and fos3 confirmed once healthy", func() bool {
		return ev.count("fos2", berofos.EventConfirmed) == 1 && ev.count("fos3", berofos.EventConfirmed) == 1
	})
}

func TestControllerWatchdogFallbackAgainstSim(t *testing.T) {
	sim, dev := startSim(t, "fos1", fossim.Config{Settings: map[string]string{
		"scenario": "1", "modedef": "0", "wdogitime": "1", "wdogdef": "0",
	}})
	c, ev := runController(t, berofos.ControllerConfig{Devices: []berofos.Device{dev}, ModeForMe: 1,
		Kick: true, KickInterval: 200 * time.Millisecond})
	c.SetHealthy(true)
	c.SetDesired(berofos.LinesToMe)
	poll.Until(t, 5*time.Second, "armed and confirmed", func() bool {
		return ev.count("fos1", berofos.EventWatchdogArmed) == 1 && ev.count("fos1", berofos.EventConfirmed) == 1
	})
	// Kicked every 200ms, the 1s watchdog does not fire.
	time.Sleep(1500 * time.Millisecond)
	if sim.Mode() != 1 || sim.Kicks() < 5 {
		t.Fatalf("while kicked: mode %d after %d kicks", sim.Mode(), sim.Kicks())
	}
	if v, _ := sim.Get("wdogstate"); v != "1" {
		t.Errorf("wdogstate %s, want 1", v)
	}
	c.SetHealthy(false)
	poll.Until(t, 5*time.Second, "watchdog failover", func() bool { return ev.count("fos1", berofos.EventWatchdogFailure) == 1 })
	if v, _ := sim.Get("wdogstate"); v != "2" || sim.Mode() != 0 {
		t.Errorf("after failover: wdogstate %s, mode %d", v, sim.Mode())
	}
	// Unhealthy: the controller leaves the fallback alone.
	time.Sleep(300 * time.Millisecond)
	if sim.Mode() != 0 {
		t.Error("an unhealthy controller pulled the lines back")
	}
	c.SetHealthy(true)
	poll.Until(t, 5*time.Second, "re-armed and re-asserted", func() bool {
		return ev.count("fos1", berofos.EventWatchdogArmed) == 2 && ev.count("fos1", berofos.EventConfirmed) == 2
	})
	if st := c.Status()[0]; st.Watchdog != berofos.WatchdogOn || st.Mode != 1 || st.LastKick.IsZero() {
		t.Errorf("status: %+v", st)
	}
	msgs := sim.Messages()
	if !slices.Contains(msgs, "berofos:42: Wdog swithed: Failover (timeout)") || !slices.Contains(msgs, "berofos:40: Wdog swithed: on") {
		t.Errorf("device log lacks the watchdog messages: %q", msgs)
	}
}

// TestInPlaceOnlyAfterARead: after the desired state changes back to one the last read
// matched, the status says "in place" only once a read made for the new desire confirms it,
// not from the stale read (a swap waiting for the lines was answered 0.7-337 ms before the
// device was set).
func TestInPlaceOnlyAfterARead(t *testing.T) {
	sim, dev := startSim(t, "fos1", fossim.Config{Settings: map[string]string{"modedef": "1"}})
	c, ev := runController(t, berofos.ControllerConfig{Devices: []berofos.Device{dev}, ModeForMe: 0, PollInterval: time.Hour})
	c.SetDesired(berofos.LinesToMe)
	poll.Until(t, 5*time.Second, "mode 0 confirmed", func() bool { return ev.count("fos1", berofos.EventConfirmed) == 1 })
	c.SetDesired(berofos.LinesUnknown) // Backup: the peer moves the lines
	sim.PressButton()                  // ... to mode 1; no read follows (poll every hour)
	c.SetDesired(berofos.LinesToMe)    // Master again
	if st := c.Status()[0]; st.InPlace {
		t.Fatalf("in place right after SetDesired, from a read made before it: %+v", st)
	}
	poll.Until(t, 5*time.Second, "mode 0 set again", func() bool { return ev.count("fos1", berofos.EventConfirmed) == 2 })
	if st := c.Status()[0]; !st.InPlace || sim.Mode() != 0 {
		t.Errorf("after the set: %+v, device mode %d", st, sim.Mode())
	}
}

package appliance

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redundantd/redundantd/berofos"
	"github.com/redundantd/redundantd/testlab/fossim"
	"github.com/redundantd/redundantd/vrrp"
)

// startSim runs a simulated berofos on loopback and returns it with a bnfos.conf naming it.
func startSim(t *testing.T, settings map[string]string) (*fossim.Sim, string) {
	t.Helper()
	sim, dev := fossim.StartLoopback(t, "fos1", fossim.Config{Settings: settings})
	conf := filepath.Join(t.TempDir(), "bnfos.conf")
	if err := berofos.WriteConf(conf, []berofos.Device{dev}); err != nil {
		t.Fatal(err)
	}
	return sim, conf
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// runWithBerofos runs an appliance driving the devices of conf, with a fake VRRP engine,
// until the test ends.
func runWithBerofos(t *testing.T, conf string, timeout time.Duration) (*Appliance, *fakeRouter) {
	t.Helper()
	cfg := testConfig(t)
	cfg.Berofos = BerofosConfig{Enabled: true, Conf: conf, LinesMode: 1, Timeout: timeout,
		PollInterval: 50 * time.Millisecond, KickInterval: time.Second}
	fr := &fakeRouter{ran: make(chan struct{})}
	a, err := New(cfg, Options{DialVRRP: func(c vrrp.Config) (Router, error) { fr.cfg = c; return fr, nil }})
	if err != nil {
		t.Fatal(err)
	}
	runUntilCleanup(t, a, fr)
	return a, fr
}

func eventsMatching(a *Appliance, app, name string) []Event {
	var out []Event
	for _, e := range a.events.log.all() {
		if e.Application == app && e.Name == name {
			out = append(out, e)
		}
	}
	return out
}

func TestBerofosLinesFollowTheMaster(t *testing.T) {
	sim, conf := startSim(t, map[string]string{"mode": "0", "modedef": "0"})
	a, fr := runWithBerofos(t, conf, time.Second)

	// A Backup leaves the device alone.
	fr.cfg.OnEvent(vrrp.Event{From: vrrp.StateInitialize, To: vrrp.StateBackup})
	time.Sleep(200 * time.Millisecond)
	if n := len(sim.Sets()); n != 0 {
		t.Fatalf("a Backup sent %d sets: %+v", n, sim.Sets())
	}
	// The Master takes the lines, confirmed by read-back.
	fr.cfg.OnEvent(vrrp.Event{From: vrrp.StateBackup, To: vrrp.StateMaster})
	waitFor(t, "relay mode 1", func() bool { return sim.Mode() == 1 })
	waitFor(t, "a confirmed event", func() bool { return len(eventsMatching(a, AppBerofos, "confirmed")) == 1 })
	// Someone presses the button: the Master puts the lines back. The second "confirmed"
	// event is emitted after the controller has recorded the read-back in its status, so the
	// status read below sees the re-asserted mode, not the drifted one of the read before it.
	sim.PressButton()
	waitFor(t, "drift seen", func() bool { return len(eventsMatching(a, AppBerofos, "drift")) >= 1 })
	waitFor(t, "drift re-asserted and confirmed", func() bool { return len(eventsMatching(a, AppBerofos, "confirmed")) >= 2 })
	if m := sim.Mode(); m != 1 {
		t.Fatalf("relay mode after the re-assertion was confirmed = %d, want 1", m)
	}

	st := a.Status()
	devs, ok := st.Parts["berofos"].([]berofos.DeviceStatus)
	if !ok || len(devs) != 1 || !devs[0].Reachable || devs[0].Mode != 1 {
		t.Errorf("status parts[berofos] = %#v", st.Parts["berofos"])
	}
}

func TestBerofosUnreachableIsAnEvent(t *testing.T) {
	sim, conf := startSim(t, map[string]string{"mode": "0"})
	sim.SetDown(true)
	a, fr := runWithBerofos(t, conf, 200*time.Millisecond)
	fr.cfg.OnEvent(vrrp.Event{From: vrrp.StateBackup, To: vrrp.StateMaster})
	waitFor(t, "an unreachable event", func() bool { return len(eventsMatching(a, AppBerofos, "unreachable")) > 0 })
	if e := eventsMatching(a, AppBerofos, "unreachable")[0]; e.Priority != PriorityWarning || !strings.Contains(e.Description, "fos1") {
		t.Errorf("event = %+v", e)
	}
	// The device comes back: the lines move without anyone asking again.
	sim.SetDown(false)
	waitFor(t, "relay mode 1 after recovery", func() bool { return sim.Mode() == 1 })
}

func TestBerofosBadConfIsAStartupError(t *testing.T) {
	conf := filepath.Join(t.TempDir(), "bnfos.conf")
	if err := os.WriteFile(conf, []byte("[fos1]\nmac = zz\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(t)
	cfg.Berofos = BerofosConfig{Enabled: true, Conf: conf, LinesMode: 1}
	_, err := New(cfg, Options{DialVRRP: func(c vrrp.Config) (Router, error) { return &fakeRouter{}, nil }})
	if err == nil || !strings.Contains(err.Error(), "bnfos.conf") {
		t.Fatalf("New with a malformed bnfos.conf: err = %v", err)
	}
	cfg.Berofos.Devices = []string{"fos9"}
	if err := berofos.WriteConf(conf, []berofos.Device{{Name: "fos1", Host: "127.0.0.1:1"}}); err != nil {
		t.Fatal(err)
	}
	_, err = New(cfg, Options{DialVRRP: func(c vrrp.Config) (Router, error) { return &fakeRouter{}, nil }})
	if err == nil || !strings.Contains(err.Error(), "fos9") {
		t.Fatalf("New naming a missing device: err = %v", err)
	}
}

// TestReloadRebuildsBerofos: a reload with changed [berofos] settings replaces the part with
// one built from them, which takes over the current role; bnfos.conf is read again.
func TestReloadRebuildsBerofos(t *testing.T) {
	sim, conf := startSim(t, map[string]string{"mode": "0", "modedef": "0"})
	a, fr := runWithBerofos(t, conf, time.Second)
	fr.status.State = vrrp.StateMaster
	fr.cfg.OnEvent(vrrp.Event{From: vrrp.StateBackup, To: vrrp.StateMaster})
	waitFor(t, "relay mode 1 confirmed", func() bool { return len(eventsMatching(a, AppBerofos, "confirmed")) == 1 })
	old := a.berofosPart()

	next := *a.live
	next.Berofos.PollInterval = 70 * time.Millisecond
	res, err := a.Reload(&next)
	if err != nil || len(res.Applied) != 1 || res.Applied[0] != "berofos.poll_interval" {
		t.Fatalf("reload: %+v, %v", res, err)
	}
	if a.berofosPart() == old || a.berofosPart() == nil {
		t.Fatal("the berofos part was not rebuilt")
	}
	// The new part knows the role: it finds the lines in place, and puts them back after a
	// press of the button.
	waitFor(t, "the new part's first read", func() bool { return len(eventsMatching(a, AppBerofos, "in-place")) == 1 })
	sim.PressButton()
	waitFor(t, "the rebuilt part re-asserting the lines", func() bool {
		return sim.Mode() == 1 && len(eventsMatching(a, AppBerofos, "drift")) == 1 && len(eventsMatching(a, AppBerofos, "confirmed")) == 2
	})
	if n := len(eventsMatching(a, AppRedundancy, "config reloaded")); n != 1 {
		t.Errorf("%d config reloaded events", n)
	}
}

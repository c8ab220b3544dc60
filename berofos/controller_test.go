package berofos

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
)

// fakeDevice is an in-memory berofos for the controller's timing tests: no sockets, so that
// testing/synctest can run the controller's timers on a fake clock.
type fakeDevice struct {
	mu      sync.Mutex
	mode    int
	wstate  int
	down    bool          // answers with an error at once
	hang    bool          // never answers (until the context ends)
	ignore  bool          // sets answer but do not take
	delay   time.Duration // every answer takes this long
	reads   []time.Time
	sets    []string
	kicks   []time.Time
	garbage bool
}

type fakeClient struct{ devs map[string]*fakeDevice }

func (f *fakeClient) dev(d Device) *fakeDevice { return f.devs[d.Name] }

func (fd *fakeDevice) wait(ctx context.Context) error {
	fd.mu.Lock()
	hang, down, delay := fd.hang, fd.down, fd.delay
	fd.mu.Unlock()
	if hang {
		<-ctx.Done()
		return ctx.Err()
	}
	if delay > 0 {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(delay):
		}
	}
	if down {
		return errors.New("connect: connection refused")
	}
	return nil
}

func (fd *fakeDevice) config() *ConfigTxt {
	c := &ConfigTxt{Version: MagicVersion}
	if fd.garbage {
		return c
	}
	c.Set("4_mode", strconv.Itoa(fd.mode))
	c.Set("6_wstate", strconv.Itoa(fd.wstate))
	wen := "0"
	if fd.wstate != WatchdogOff {
		wen = "1"
	}
	c.Set("6_wen", wen)
	return c
}

func (f *fakeClient) ReadConfig(ctx context.Context, d Device) (*ConfigTxt, error) {
	fd := f.dev(d)
	fd.mu.Lock()
	fd.reads = append(fd.reads, time.Now())
	fd.mu.Unlock()
	if err := fd.wait(ctx); err != nil {
		return nil, err
	}
	fd.mu.Lock()
	defer fd.mu.Unlock()
	return fd.config(), nil
}

func (f *fakeClient) Set(ctx context.Context, d Device, name, value string) (*ConfigTxt, error) {
	fd := f.dev(d)
	if err := fd.wait(ctx); err != nil {
		return nil, err
	}
	fd.mu.Lock()
	defer fd.mu.Unlock()
	fd.sets = append(fd.sets, name+"="+value)
	if !fd.ignore {
		switch name {
		case "mode":
			fd.mode, _ = strconv.Atoi(value)
		case "wdog":
			if value == "1" {
				fd.wstate = WatchdogOn
			} else {
				fd.wstate = WatchdogOff
			}
		}
	}
	c := fd.config()
	if got, _ := c.Get(name); got != value {
		return c, fmt.Errorf("%w: %s=%s", ErrNotApplied, name, value)
	}
	return c, nil
}

func (f *fakeClient) Kick(ctx context.Context, d Device) error {
	fd := f.dev(d)
	if err := fd.wait(ctx); err != nil {
		return err
	}
	fd.mu.Lock()
	defer fd.mu.Unlock()
	fd.kicks = append(fd.kicks, time.Now())
	return nil
}

func (fd *fakeDevice) snapshot() (sets []string, reads, kicks []time.Time, mode int) {
	fd.mu.Lock()
	defer fd.mu.Unlock()
	return append([]string(nil), fd.sets...), append([]time.Time(nil), fd.reads...), append([]time.Time(nil), fd.kicks...), fd.mode
}

type eventLog struct {
	mu sync.Mutex
	ev []DeviceEvent
}

func (l *eventLog) add(e DeviceEvent) { l.mu.Lock(); l.ev = append(l.ev, e); l.mu.Unlock() }

// kinds returns "device:kind" for every event so far.
func (l *eventLog) kinds() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, e := range l.ev {
		out = append(out, e.Device+":"+e.Kind.String())
	}
	return out
}

// harness builds a controller over fake devices fos1..fosN inside a synctest bubble; the
// returned start runs it (tests first set up the devices and the desired state, so that the
// first attempt happens at a known time).
func harness(t *testing.T, n int, mut func(*ControllerConfig)) (*Controller, *fakeClient, *eventLog, func() context.CancelFunc) {
	t.Helper()
	fc := &fakeClient{devs: map[string]*fakeDevice{}}
	cfg := ControllerConfig{ModeForMe: 1}
	for i := 1; i <= n; i++ {
		name := fmt.Sprintf("fos%d", i)
		cfg.Devices = append(cfg.Devices, Device{Name: name, Host: fmt.Sprintf("192.0.2.%d", 10+i), MAC: net.HardwareAddr{0, 0x19, 0x32, 0, 0, byte(i)}})
		fc.devs[name] = &fakeDevice{}
	}
	log := &eventLog{}
	cfg.OnEvent = log.add
	if mut != nil {
		mut(&cfg)
	}
	c, err := NewController(cfg, fc)
	if err != nil {
		t.Fatal(err)
	}
	start := func() context.CancelFunc {
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- c.Run(ctx) }()
		t.Cleanup(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
		})
		return cancel
	}
	return c, fc, log, start
}

func TestControllerSetsConfirmsAndNeverResends(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, fc, log, run := harness(t, 1, nil)
		fd := fc.devs["fos1"]
		start := time.Now()
		c.SetDesired(LinesToMe)
		run()
		synctest.Wait()
		sets, _, _, mode := fd.snapshot()
		if diff := cmp.Diff([]string{"mode=1"}, sets); diff != "" {
			t.Errorf("sets (-want +got):\n%s", diff)
		}
		if mode != 1 {
			t.Errorf("device mode %d, want 1", mode)
		}
		st := c.Status()[0]
		if !st.Reachable || st.Mode != 1 || !st.InPlace || st.LastChangeMode != 1 || !st.LastChange.Equal(start) || st.Desired != LinesToMe || st.Changes != 1 {
			t.Errorf("status after change: %+v", st)
		}
		// Polls for a minute: the mode is in place, nothing more is sent.
		time.Sleep(time.Minute)
		synctest.Wait()
		sets, reads, _, _ := fd.snapshot()
		if len(sets) != 1 {
			t.Errorf("sets after a minute of polling: %v, want only the first", sets)
		}
		if len(reads) != 31 { // the read at 0 and one every 2s
			t.Errorf("%d reads in a minute, want 31 (poll every 2s)", len(reads))
		}
		// Asserting the same state again sends nothing either.
		c.SetDesired(LinesToMe)
		c.SetDesired(LinesToPeer)
		synctest.Wait()
		sets, _, _, _ = fd.snapshot()
		if diff := cmp.Diff([]string{"mode=1", "mode=0"}, sets); diff != "" {
			t.Errorf("sets (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff([]string{"fos1:confirmed", "fos1:confirmed"}, log.kinds()); diff != "" {
			t.Errorf("events (-want +got):\n%s", diff)
		}
	})
}

func TestControllerAlreadyInPlace(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, fc, log, run := harness(t, 1, func(cfg *ControllerConfig) { cfg.ModeForMe = 0 })
		fc.devs["fos1"].mode = 0
		c.SetDesired(LinesToMe)
		run()
		synctest.Wait()
		time.Sleep(10 * time.Second)
		synctest.Wait()
		if sets, _, _, _ := fc.devs["fos1"].snapshot(); len(sets) != 0 {
			t.Errorf("sets %v, want none: mode 0 was already in place", sets)
		}
		if diff := cmp.Diff([]string{"fos1:in-place"}, log.kinds()); diff != "" {
			t.Errorf("events (-want +got):\n%s", diff)
		}
	})
}

func TestControllerBackoffWhileUnreachable(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, fc, log, run := harness(t, 1, func(cfg *ControllerConfig) {
			cfg.RetryMin, cfg.RetryMax = 200*time.Millisecond, 2*time.Second
		})
		fd := fc.devs["fos1"]
		fd.down = true
		start := time.Now()
		c.SetDesired(LinesToMe)
		run()
		time.Sleep(7 * time.Second)
		synctest.Wait()
		_, reads, _, _ := fd.snapshot()
		var got []time.Duration
		for _, r := range reads {
			got = append(got, r.Sub(start))
		}
		ms := time.Millisecond
		// Exponential from 200ms, doubling, capped at 2s.
		want := []time.Duration{0, 200 * ms, 600 * ms, 1400 * ms, 3000 * ms, 5000 * ms, 7000 * ms}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("attempt times (-want +got):\n%s", diff)
		}
		st := c.Status()[0]
		if st.Reachable || st.Failures != 7 || st.LastError == "" || st.Mode != -1 {
			t.Errorf("status while down: %+v", st)
		}
		// The device comes back: the next retry (at 9s) reaches it and asserts the mode.
		fd.mu.Lock()
		fd.down = false
		fd.mu.Unlock()
		time.Sleep(2 * time.Second)
		synctest.Wait()
		sets, _, _, _ := fd.snapshot()
		if diff := cmp.Diff([]string{"mode=1"}, sets); diff != "" {
			t.Errorf("sets (-want +got):\n%s", diff)
		}
		if st := c.Status()[0]; !st.Reachable || st.LastChange.Sub(start) != 9*time.Second || st.Failures != 0 {
			t.Errorf("status after recovery: %+v (change at %v)", st, st.LastChange.Sub(start))
		}
		if diff := cmp.Diff([]string{"fos1:unreachable", "fos1:reachable", "fos1:confirmed"}, log.kinds()); diff != "" {
			t.Errorf("events (-want +got):\n%s", diff)
		}
	})
}

func TestControllerReassertsAfterDrift(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, fc, log, run := harness(t, 1, nil)
		fd := fc.devs["fos1"]
		c.SetDesired(LinesToMe)
		run()
		synctest.Wait()
		// Someone presses the button; the next poll (within 2s) notices and re-asserts.
		time.Sleep(500 * time.Millisecond)
		fd.mu.Lock()
		fd.mode = 0
		fd.mu.Unlock()
		time.Sleep(1600 * time.Millisecond)
		synctest.Wait()
		sets, _, _, mode := fd.snapshot()
		if mode != 1 || len(sets) != 2 {
			t.Errorf("mode %d, sets %v: want mode 1 re-asserted", mode, sets)
		}
		if diff := cmp.Diff([]string{"fos1:confirmed", "fos1:drift", "fos1:confirmed"}, log.kinds()); diff != "" {
			t.Errorf("events (-want +got):\n%s", diff)
		}
	})
}

func TestControllerSetNotTaking(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, fc, log, run := harness(t, 1, nil)
		fc.devs["fos1"].ignore = true
		c.SetDesired(LinesToMe)
		run()
		time.Sleep(300 * time.Millisecond)
		synctest.Wait()
		st := c.Status()[0]
		if !st.Reachable || st.InPlace || st.Failures != 2 || st.LastChangeMode != -1 || st.Changes != 0 {
			t.Errorf("status: %+v", st)
		}
		// Retried with backoff, reported once.
		if diff := cmp.Diff([]string{"fos1:set-failed"}, log.kinds()); diff != "" {
			t.Errorf("events (-want +got):\n%s", diff)
		}
	})
}

func TestControllerGarbageIsUnreachable(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, fc, log, run := harness(t, 1, nil)
		fc.devs["fos1"].garbage = true
		c.SetDesired(LinesToMe)
		run()
		synctest.Wait()
		if st := c.Status()[0]; st.Reachable || st.LastError == "" {
			t.Errorf("status: %+v", st)
		}
		if diff := cmp.Diff([]string{"fos1:unreachable"}, log.kinds()); diff != "" {
			t.Errorf("events (-want +got):\n%s", diff)
		}
	})
}

func TestControllerHungDeviceDelaysNobody(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, fc, _, run := harness(t, 3, nil)
		fc.devs["fos2"].hang = true
		start := time.Now()
		run()
		synctest.Wait()
		c.SetDesired(LinesToMe) // returns at once although fos2 never answers
		if time.Since(start) != 0 {
			t.Errorf("SetDesired blocked for %v", time.Since(start))
		}
		synctest.Wait()
		for _, n := range []string{"fos1", "fos3"} {
			if _, _, _, mode := fc.devs[n].snapshot(); mode != 1 {
				t.Errorf("%s mode %d, want 1 at once", n, mode)
			}
		}
		// A new desired state cancels fos2's hung request and reaches the others at once.
		time.Sleep(time.Second)
		c.SetDesired(LinesToPeer)
		synctest.Wait()
		for _, n := range []string{"fos1", "fos3"} {
			if _, _, _, mode := fc.devs[n].snapshot(); mode != 0 {
				t.Errorf("%s mode %d, want 0 at once", n, mode)
			}
		}
		_, reads, _, _ := fc.devs["fos2"].snapshot()
		// One read hung since before the first SetDesired, a second since it, a third since
		// the second SetDesired.
		if len(reads) != 3 || reads[2].Sub(start) != time.Second {
			t.Errorf("fos2 reads at %v: want a new attempt as soon as the desired state changed", reads)
		}
		st := c.Status()
		if st[1].Reachable || st[0].Mode != 0 || st[2].Mode != 0 {
			t.Errorf("status: %+v", st)
		}
	})
}

func TestControllerNewestWins(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, fc, log, run := harness(t, 1, nil)
		fd := fc.devs["fos1"]
		fd.delay = time.Second // every answer takes 1s
		c.SetDesired(LinesToMe)
		run()
		time.Sleep(1500 * time.Millisecond) // read done, set of mode 1 in flight
		c.SetDesired(LinesToPeer)
		c.SetDesired(LinesToMe)
		c.SetDesired(LinesToPeer)
		time.Sleep(5 * time.Second)
		synctest.Wait()
		sets, _, _, mode := fd.snapshot()
		if mode != 0 {
			t.Errorf("mode %d, want 0 (the newest desired state)", mode)
		}
		// The set of mode 1 was cancelled before it landed; mode 0 was in place already.
		if len(sets) != 0 {
			t.Errorf("sets %v, want none", sets)
		}
		if diff := cmp.Diff([]string{"fos1:in-place"}, log.kinds()); diff != "" {
			t.Errorf("events (-want +got):\n%s", diff)
		}
	})
}

func TestControllerKicksWhileHealthy(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, fc, log, run := harness(t, 2, func(cfg *ControllerConfig) {
			cfg.Kick = true
			cfg.KickInterval = 5 * time.Second
		})
		start := time.Now()
		c.SetHealthy(true)
		c.SetDesired(LinesToMe)
		cancel := run()
		time.Sleep(12 * time.Second)
		synctest.Wait()
		for _, n := range []string{"fos1", "fos2"} {
			sets, _, kicks, _ := fc.devs[n].snapshot()
			if diff := cmp.Diff([]string{"wdog=1", "mode=1"}, sets); diff != "" {
				t.Errorf("%s sets (-want +got):\n%s", n, diff)
			}
			var at []time.Duration
			for _, k := range kicks {
				at = append(at, k.Sub(start))
			}
			if diff := cmp.Diff([]time.Duration{0, 5 * time.Second, 10 * time.Second}, at); diff != "" {
				t.Errorf("%s kicks (-want +got):\n%s", n, diff)
			}
		}
		if st := c.Status()[0]; st.Watchdog != WatchdogOn || !st.LastKick.Equal(start.Add(10*time.Second)) {
			t.Errorf("status: %+v", st)
		}
		// Unhealthy: no more kicks, so the device falls back by itself.
		c.SetHealthy(false)
		time.Sleep(20500 * time.Millisecond)
		synctest.Wait()
		if _, _, kicks, _ := fc.devs["fos1"].snapshot(); len(kicks) != 3 {
			t.Errorf("%d kicks, want none after SetHealthy(false)", len(kicks))
		}
		// The device failed over (wdogstate 2, relays A-D): reported, and left alone while the
		// node is unhealthy; once healthy again the controller re-arms the watchdog, kicks and
		// re-asserts the mode.
		fd := fc.devs["fos1"]
		fd.mu.Lock()
		fd.wstate, fd.mode = WatchdogFailure, 0
		fd.mu.Unlock()
		time.Sleep(2 * time.Second)
		synctest.Wait()
		c.SetHealthy(true)
		synctest.Wait()
		sets, _, kicks, mode := fd.snapshot()
		if diff := cmp.Diff([]string{"wdog=1", "mode=1", "wdog=1", "mode=1"}, sets); diff != "" {
			t.Errorf("sets (-want +got):\n%s", diff)
		}
		if mode != 1 || len(kicks) != 4 {
			t.Errorf("mode %d, %d kicks after recovery", mode, len(kicks))
		}
		var fos1 []string
		for _, k := range log.kinds() {
			if k[:4] == "fos1" {
				fos1 = append(fos1, k)
			}
		}
		want := []string{"fos1:watchdog-armed", "fos1:confirmed", "fos1:watchdog-failure",
			"fos1:watchdog-armed", "fos1:drift", "fos1:confirmed"}
		if diff := cmp.Diff(want, fos1); diff != "" {
			t.Errorf("events (-want +got):\n%s", diff)
		}
		// Stopping the controller stops the kicks too.
		cancel()
		time.Sleep(time.Minute)
		if _, _, kicks, _ := fd.snapshot(); len(kicks) != 4 {
			t.Errorf("%d kicks after Run returned", len(kicks))
		}
	})
}

func TestNewControllerValidation(t *testing.T) {
	dev := Device{Name: "fos1", Host: "192.0.2.10"}
	tests := []struct {
		name string
		cfg  ControllerConfig
	}{
		{"no devices", ControllerConfig{}},
		{"bad mode", ControllerConfig{Devices: []Device{dev}, ModeForMe: 2}},
		{"duplicate", ControllerConfig{Devices: []Device{dev, dev}}},
		{"kick without mac", ControllerConfig{Devices: []Device{dev}, Kick: true}},
		{"bad host", ControllerConfig{Devices: []Device{{Name: "fos1", Host: "a b"}}}},
		{"negative poll", ControllerConfig{Devices: []Device{dev}, PollInterval: -time.Second}},
		{"retry max below min", ControllerConfig{Devices: []Device{dev}, RetryMin: time.Second, RetryMax: time.Millisecond}},
	}
	for _, tt := range tests {
		if _, err := NewController(tt.cfg, nil); err == nil {
			t.Errorf("%s: NewController accepted %+v", tt.name, tt.cfg)
		}
	}
}

func TestDeviceStatusJSON(t *testing.T) {
	st := DeviceStatus{Name: "fos1", Host: "192.0.2.11", Reachable: true, Mode: 1, Desired: LinesToMe, WantMode: 1,
		InPlace: true, LastChangeMode: 1, Changes: 2, Watchdog: -1,
		LastChange: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	b, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"name":"fos1","host":"192.0.2.11","reachable":true,"mode":1,"desired":"to-me","want_mode":1,"in_place":true,` +
		`"failures":0,"last_change":"2026-01-02T03:04:05Z","last_change_mode":1,"changes":2,"watchdog":-1}`
	if diff := cmp.Diff(want, string(b)); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

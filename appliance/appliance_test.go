package appliance

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/redundantd/redundantd/vrrp"
)

// fakeRouter stands in for the VRRP engine: it records the Config the appliance built and
// lets the test publish events through the OnEvent callback, as the engine would.
type fakeRouter struct {
	cfg    vrrp.Config
	status vrrp.Status
	ran    chan struct{}
	mu     sync.Mutex
	calls  []string
}

func (f *fakeRouter) Run(ctx context.Context) error {
	close(f.ran)
	<-ctx.Done()
	return nil
}
func (f *fakeRouter) Status() vrrp.Status { return f.status }

// The operator's controls are recorded, not acted on: tests of what they do run the real
// engine (see twoNodes).
func (f *fakeRouter) SetPassive(on bool)     { f.note(fmt.Sprintf("passive %t", on)) }
func (f *fakeRouter) Resign(reason string)   { f.note("resign " + reason) }
func (f *fakeRouter) TakeOver(reason string) { f.note("takeover " + reason) }
func (f *fakeRouter) Reload(rc vrrp.RuntimeConfig) error {
	f.note(fmt.Sprintf("reload %+v", rc))
	return nil
}
func (f *fakeRouter) note(s string) {
	f.mu.Lock()
	f.calls = append(f.calls, s)
	f.mu.Unlock()
}

type recordingFollower struct {
	mu    sync.Mutex
	roles []vrrp.State
	got   chan struct{}
}

func (r *recordingFollower) Name() string                  { return "recorder" }
func (r *recordingFollower) Run(ctx context.Context) error { <-ctx.Done(); return nil }
func (r *recordingFollower) Status() any                   { return nil }
func (r *recordingFollower) Follow(s vrrp.State) {
	r.mu.Lock()
	r.roles = append(r.roles, s)
	r.mu.Unlock()
	r.got <- struct{}{}
}

func testConfig(t *testing.T) *Config {
	t.Helper()
	cfg, err := ParseConfig([]byte(minimal + "peer = \"192.0.2.12\"\nunicast = true\n[api]\nlisten = \"127.0.0.1:7499\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	cfg.API.Listen = "127.0.0.1:0"
	cfg.Node.StateDir = t.TempDir()
	cfg.API.TokenFile = filepath.Join(cfg.Node.StateDir, "api.token")
	return cfg
}

// runTestAppliance makes an Appliance of cfg over a fakeRouter, runs it until the test ends
// and returns once the engine runs.
func runTestAppliance(t *testing.T, cfg *Config, opts Options) (*Appliance, *fakeRouter) {
	t.Helper()
	fr := &fakeRouter{ran: make(chan struct{})}
	opts.DialVRRP = func(c vrrp.Config) (Router, error) { fr.cfg = c; return fr, nil }
	a, err := New(cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	runUntilCleanup(t, a, fr)
	return a, fr
}

// runUntilCleanup runs a until the test ends, once its fake engine has started.
func runUntilCleanup(t *testing.T, a *Appliance, fr *fakeRouter) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	<-fr.ran
}

func newTestAppliance(t *testing.T, parts ...Part) (*Appliance, *fakeRouter) {
	t.Helper()
	fr := &fakeRouter{ran: make(chan struct{})}
	a, err := New(testConfig(t), Options{
		DialVRRP: func(c vrrp.Config) (Router, error) { fr.cfg = c; return fr, nil },
		Parts:    parts,
		Now:      func() time.Time { return time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC) },
	})
	if err != nil {
		t.Fatal(err)
	}
	return a, fr
}

func TestVRRPConfigFromOperatorSettings(t *testing.T) {
	_, fr := newTestAppliance(t)
	c := fr.cfg
	if c.Interface != "eth0" || c.VRID != 18 || c.Priority != 100 || c.AdvertInterval != time.Second ||
		c.Primary != netip.MustParseAddr("192.0.2.11") || !c.Unicast || c.OnEvent == nil {
		t.Errorf("vrrp.Config = %+v", c)
	}
	if diff := cmp.Diff([]netip.Addr{netip.MustParseAddr("192.0.2.12")}, c.Peers, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
		t.Errorf("Peers (-want +got):\n%s", diff)
	}
}

func TestStatusAPI(t *testing.T) {
	a, fr := newTestAppliance(t)
	since := time.Date(2026, 11, 22, 11, 59, 0, 500_000_000, time.UTC)
	fr.status = vrrp.Status{
		State: vrrp.StateMaster, Priority: 100, MasterIP: netip.MustParseAddr("192.0.2.11"),
		VirtualIPs: []netip.Prefix{netip.MustParsePrefix("192.0.2.100/24")},
		Since:      since, Transitions: 2, Dropped: map[string]uint64{"checksum": 3},
		Adverts: vrrp.AdvertCounts{Sent: 7, SentPriorityZero: 1, SendErrors: 2, Received: 5, ReceivedPriorityZero: 3},
	}
	srv := httptest.NewServer(a.Handler())
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/api/v1/status")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var got StatusResponse
	if err := json.NewDecoder(resp.Body).Decode(&got); err != nil {
		t.Fatal(err)
	}
	want := StatusResponse{
		NodeID: "pbx-a", Enabled: true, State: "master", GroupID: 18, Priority: 100,
		VirtualIPs: []string{"192.0.2.100/24"}, Holding: []string{"192.0.2.100/24"},
		MasterIP: "192.0.2.11", Since: "2026-11-22T11:59:00.5Z", Transitions: 2,
		Dropped: map[string]uint64{"checksum": 3}, BackupMode: "active", Version: Version,
		Adverts: AdvertCounts{Sent: 7, SentPriorityZero: 1, SendErrors: 2, Received: 5, ReceivedPriorityZero: 3},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("status (-want +got):\n%s", diff)
	}
}

func TestDisabledReportsDisabled(t *testing.T) {
	cfg := testConfig(t)
	cfg.Redundancy.Enabled = false
	a, err := New(cfg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if s := a.Status(); s.State != "disabled" {
		t.Errorf("state = %q, want disabled", s.State)
	}
}

func TestTransitionsReachFollowersAndEventLog(t *testing.T) {
	f := &recordingFollower{got: make(chan struct{}, 8)}
	a, fr := newTestAppliance(t, f)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	<-fr.ran

	at := time.Date(2026, 11, 22, 12, 0, 1, 0, time.UTC)
	fr.cfg.OnEvent(vrrp.Event{From: vrrp.StateInitialize, To: vrrp.StateBackup, Reason: "startup", At: at})
	<-f.got
	fr.cfg.OnEvent(vrrp.Event{From: vrrp.StateBackup, To: vrrp.StateMaster, Reason: "master down", At: at.Add(time.Second),
		MasterIP: netip.MustParseAddr("192.0.2.11")})
	<-f.got
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	f.mu.Lock()
	if diff := cmp.Diff([]vrrp.State{vrrp.StateBackup, vrrp.StateMaster}, f.roles); diff != "" {
		t.Errorf("roles followed (-want +got):\n%s", diff)
	}
	f.mu.Unlock()

	var msgs []string
	for _, e := range a.events.log.all() {
		if e.Name == "became backup" || e.Name == "became master" {
			msgs = append(msgs, e.Description)
		}
	}
	want := []string{"initialize -> backup: startup", "backup -> master: master down (master 192.0.2.11)"}
	if diff := cmp.Diff(want, msgs); diff != "" {
		t.Errorf("vrrp events (-want +got):\n%s", diff)
	}
}

func TestNewestRoleWins(t *testing.T) {
	a, fr := newTestAppliance(t)
	// No worker is running: three changes queue up and only the newest survives.
	for _, to := range []vrrp.State{vrrp.StateBackup, vrrp.StateMaster, vrrp.StateBackup} {
		fr.cfg.OnEvent(vrrp.Event{From: vrrp.StateInitialize, To: to})
	}
	if got := len(a.roles); got != 1 {
		t.Fatalf("%d role changes queued, want 1", got)
	}
	if e := <-a.roles; e.To != vrrp.StateBackup {
		t.Errorf("queued role %s, want the newest (backup)", e.To)
	}
}

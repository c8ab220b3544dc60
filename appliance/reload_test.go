package appliance

import (
	"fmt"
	"net/netip"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/redundantd/redundantd/vrrp"
)

func TestReloadPlan(t *testing.T) {
	base := func(t *testing.T) *Config {
		t.Helper()
		cfg, err := ParseConfig([]byte(minimal + "peer = \"192.0.2.12\"\n[berofos]\nlines_mode = 1\n[sync]\npaths = [\"/etc/asterisk\"]\n"))
		if err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	tests := []struct {
		name           string
		edit           func(c *Config)
		apply, restart []string
	}{
		{"nothing changed", func(c *Config) {}, nil, nil},
		{"empty and absent list are the same", func(c *Config) { c.Berofos.Devices = []string{} }, nil, nil},
		{"priority", func(c *Config) { c.Redundancy.Priority = 150 }, []string{"redundancy.priority"}, nil},
		{"preempt", func(c *Config) { c.Redundancy.Preempt = true }, []string{"redundancy.preempt"}, nil},
		{"garp", func(c *Config) { c.Redundancy.GARPCount, c.Redundancy.GARPInterval = 3, time.Second },
			[]string{"redundancy.garp_count", "redundancy.garp_interval"}, nil},
		{"garp refresh", func(c *Config) { c.Redundancy.GARPRefresh = time.Minute }, []string{"redundancy.garp_refresh"}, nil},
		{"berofos section", func(c *Config) {
			c.Berofos.Enabled, c.Berofos.Devices, c.Berofos.Timeout = true, []string{"fos2"}, time.Second
		}, []string{"berofos.enabled", "berofos.devices", "berofos.timeout"}, nil},
		{"sync section", func(c *Config) {
			c.Sync.Interval, c.Sync.Paths, c.Sync.PeerFingerprint, c.Sync.Listen = "@hourly", []string{"/etc/asterisk", "/srv/vm"}, testFingerprint, ":7411"
		}, []string{"sync.interval"}, []string{"sync.paths", "sync.listen", "sync.peer_fingerprint"}},
		{"services and notify need a restart", func(c *Config) {
			c.Services = []ServiceConfig{{Name: "asterisk", Start: []string{"/bin/true"}, Stop: []string{"/bin/true"}}}
			c.Redundancy.Notify = []string{"/usr/local/bin/notify"}
		}, nil, []string{"redundancy.notify", "service"}},
		{"node", func(c *Config) {
			c.Node.ID, c.Node.Interface, c.Node.Address, c.Node.StateDir = "pbx-z", "eth1", netip.MustParseAddr("192.0.2.13"), "/srv/state"
		}, nil, []string{"node.id", "node.interface", "node.address", "node.state_dir"}},
		{"the virtual router's identity", func(c *Config) {
			r := &c.Redundancy
			r.Enabled, r.GroupID, r.AdvertInterval, r.Unicast, r.VirtualMAC = false, 19, 2*time.Second, true, true
			r.VirtualIPs = append(r.VirtualIPs, netip.MustParsePrefix("192.0.2.101/24"))
			r.Peer = netip.MustParseAddr("192.0.2.14")
		}, nil, []string{"redundancy.enabled", "redundancy.group_id", "redundancy.advert_interval", "redundancy.virtual_ips",
			"redundancy.peer", "redundancy.unicast", "redundancy.virtual_mac"}},
		{"a virtual IP's prefix length", func(c *Config) { c.Redundancy.VirtualIPs[0] = netip.MustParsePrefix("192.0.2.100/25") },
			nil, []string{"redundancy.virtual_ips"}},
		{"api", func(c *Config) { c.API.Listen = "127.0.0.1:7410" }, nil, []string{"api.listen"}},
		{"mixed", func(c *Config) {
			c.Redundancy.Priority, c.Sync.Watch, c.Node.Interface, c.API.Listen = 50, true, "bond0", "0.0.0.0:7400"
		}, []string{"redundancy.priority", "sync.watch"}, []string{"node.interface", "api.listen"}},
		{"link-local opt-in alone", func(c *Config) { c.Redundancy.AllowLinkLocal = true }, []string{"redundancy.allow_link_local"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			old, new := base(t), base(t)
			tt.edit(new)
			apply, restart := ReloadPlan(old, new)
			if diff := cmp.Diff(tt.apply, apply); diff != "" {
				t.Errorf("apply (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.restart, restart); diff != "" {
				t.Errorf("restart (-want +got):\n%s", diff)
			}
			// The plan is symmetric: going back is the same set of keys.
			back, backRestart := ReloadPlan(new, old)
			if !reflect.DeepEqual(back, apply) || !reflect.DeepEqual(backRestart, restart) {
				t.Errorf("reverse plan %v %v, want %v %v", back, backRestart, apply, restart)
			}
		})
	}
}

// TestReloadPlanKeysAreTOMLKeys: every setting in Config is named by the key of the file
// (the rawConfig field of the same Go name), so ReloadPlan never reports an invented key,
// and a Config field without a rawConfig twin fails here rather than being misnamed.
func TestReloadPlanKeysAreTOMLKeys(t *testing.T) {
	rawT := reflect.TypeOf(rawConfig{})
	ct := reflect.TypeOf(Config{})
	for i := range ct.NumField() {
		sec := ct.Field(i)
		rf, ok := rawT.FieldByName(sec.Name)
		if !ok {
			t.Errorf("Config.%s has no rawConfig.%s", sec.Name, sec.Name)
			continue
		}
		if sec.Type.Kind() != reflect.Struct {
			continue
		}
		for j := range sec.Type.NumField() {
			name := sec.Type.Field(j).Name
			if _, ok := rf.Type.FieldByName(name); !ok {
				t.Errorf("Config.%s.%s has no rawConfig.%s.%s: ReloadPlan would name it %q", sec.Name, name, sec.Name, name, sec.Name+"."+name)
			}
		}
	}
}

// A SIGHUP that changes garp_refresh hands the new period to the engine, with the other
// runtime settings, and keeps it as the running value.
func TestReloadAppliesGARPRefresh(t *testing.T) {
	a, fr := runTestAppliance(t, testConfig(t), Options{})
	if fr.cfg.GARPRefresh != 0 {
		t.Errorf("engine's GARPRefresh at start %v; want 0 (off by default)", fr.cfg.GARPRefresh)
	}

	next := *a.live
	next.Redundancy.GARPRefresh = time.Minute
	res, err := a.Reload(&next)
	if err != nil || !slices.Equal(res.Applied, []string{"redundancy.garp_refresh"}) || len(res.Restart) != 0 {
		t.Fatalf("reload: %+v, %v; want garp_refresh applied", res, err)
	}
	fr.mu.Lock()
	calls := slices.Clone(fr.calls)
	fr.mu.Unlock()
	want := fmt.Sprintf("reload %+v", vrrp.RuntimeConfig{Priority: 100, GARPCount: 5, GARPInterval: 200 * time.Millisecond, GARPRefresh: time.Minute})
	if !slices.Contains(calls, want) {
		t.Errorf("engine calls %q; want %q", calls, want)
	}
	if a.live.Redundancy.GARPRefresh != time.Minute {
		t.Errorf("running garp_refresh %v after the reload; want 1m", a.live.Redundancy.GARPRefresh)
	}
}

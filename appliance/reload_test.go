package appliance

import (
	"fmt"
	"net/netip"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
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

// groupsDoc is a node with [redundancy] and two groups, eth1/52 and (on eth0) 19; top is
// added to [redundancy], and each group's extra lines to its table.
func groupsDoc(top, g52, g19 string) string {
	return minimal + top + `
[[redundancy.group]]
interface = "eth1"
address = "198.51.100.11"
group_id = 52
virtual_ips = ["198.51.100.100/24"]
` + g52 + `
[[redundancy.group]]
group_id = 19
virtual_ips = ["192.0.2.101/24"]
` + g19
}

// The groups' part of the reload plan: a group's priority, preempt and gratuitous-ARP keys
// are live, also when the change is one it inherits from [redundancy]; what names the group
// on the network needs a restart, named under the group; a group added or removed needs a
// restart, named as a whole, and one moved to another interface is one removed and one added.
func TestReloadPlanGroups(t *testing.T) {
	tests := []struct {
		name           string
		doc            string // the new file; the old one is groupsDoc("", "", "")
		apply, restart []string
	}{
		{"nothing changed", groupsDoc("", "", ""), nil, nil},
		{"the second group's priority", groupsDoc("", "priority = 150\n", ""),
			[]string{"redundancy.group[eth1/52].priority"}, nil},
		{"live keys of both groups", groupsDoc("", "preempt = true\ngarp_count = 3\n", "garp_interval = \"1s\"\n"),
			[]string{"redundancy.group[eth1/52].preempt", "redundancy.group[eth1/52].garp_count", "redundancy.group[eth0/19].garp_interval"}, nil},
		{"an inherited priority", groupsDoc("priority = 120\n", "priority = 100\n", ""),
			[]string{"redundancy.priority", "redundancy.group[eth0/19].priority"}, nil},
		{"garp_refresh is [redundancy]'s only", groupsDoc("garp_refresh = \"1m\"\n", "", ""),
			[]string{"redundancy.garp_refresh"}, nil},
		{"virtual ips", groupsDocVIP("192.0.2.102/24"),
			nil, []string{"redundancy.group[eth0/19].virtual_ips"}},
		{"what names the group on the network", strings.Replace(groupsDoc("", "version = 3\nadvert_interval = \"100ms\"\nunicast = true\npeer = \"198.51.100.12\"\nvirtual_mac = true\n", ""),
			"198.51.100.11", "198.51.100.13", 1),
			nil, []string{"redundancy.group[eth1/52].address", "redundancy.group[eth1/52].version", "redundancy.group[eth1/52].advert_interval",
				"redundancy.group[eth1/52].unicast", "redundancy.group[eth1/52].peer", "redundancy.group[eth1/52].virtual_mac"}},
		{"an inherited advert interval", groupsDoc("advert_interval = \"2s\"\n", "advert_interval = \"1s\"\n", ""),
			nil, []string{"redundancy.advert_interval", "redundancy.group[eth0/19].advert_interval"}},
		{"a group added", groupsDoc("", "", "") + "[[redundancy.group]]\ngroup_id = 20\nvirtual_ips = [\"192.0.2.103/24\"]\n",
			nil, []string{"redundancy.group[eth0/20]"}},
		{"a group removed", minimal + "[[redundancy.group]]\ngroup_id = 19\nvirtual_ips = [\"192.0.2.101/24\"]\n",
			nil, []string{"redundancy.group[eth1/52]"}},
		{"a group's group_id", strings.Replace(groupsDoc("", "", ""), "group_id = 19", "group_id = 21", 1),
			nil, []string{"redundancy.group[eth0/21]", "redundancy.group[eth0/19]"}},
		{"a group's interface", strings.Replace(groupsDoc("", "", ""), `interface = "eth1"`, `interface = "eth2"`, 1),
			nil, []string{"redundancy.group[eth2/52]", "redundancy.group[eth1/52]"}},
		{"the groups' order", minimal + "[[redundancy.group]]\ngroup_id = 19\nvirtual_ips = [\"192.0.2.101/24\"]\n" +
			"[[redundancy.group]]\ninterface = \"eth1\"\naddress = \"198.51.100.11\"\ngroup_id = 52\nvirtual_ips = [\"198.51.100.100/24\"]\n", nil, nil},
		{"mixed", groupsDoc("", "priority = 90\n", "virtual_mac = true\n"),
			[]string{"redundancy.group[eth1/52].priority"}, []string{"redundancy.group[eth0/19].virtual_mac"}},
	}
	parse := func(t *testing.T, doc string) *Config {
		t.Helper()
		cfg, err := ParseConfig([]byte(doc))
		if err != nil {
			t.Fatalf("%v\n%s", err, doc)
		}
		return cfg
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			old, new := parse(t, groupsDoc("", "", "")), parse(t, tt.doc)
			apply, restart := ReloadPlan(old, new)
			if diff := cmp.Diff(tt.apply, apply); diff != "" {
				t.Errorf("apply (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.restart, restart); diff != "" {
				t.Errorf("restart (-want +got):\n%s", diff)
			}
			// Going back names the same keys (a group added one way is removed the other,
			// so the order may differ).
			back, backRestart := ReloadPlan(new, old)
			sorted := func(s []string) []string { return slices.Sorted(slices.Values(s)) }
			if !slices.Equal(sorted(back), sorted(apply)) || !slices.Equal(sorted(backRestart), sorted(restart)) {
				t.Errorf("reverse plan %v %v, want %v %v", back, backRestart, apply, restart)
			}
		})
	}
}

// groupsDocVIP is groupsDoc with the eth0/19 group's virtual IP replaced.
func groupsDocVIP(p string) string {
	return strings.Replace(groupsDoc("", "", ""), `"192.0.2.101/24"`, strconv.Quote(p), 1)
}

// Every GroupConfig field is named by its [[redundancy.group]] key, so that
// groupsReloadPlan never reports an invented key.
func TestGroupsReloadPlanKeysAreTOMLKeys(t *testing.T) {
	rawT := reflect.TypeOf(rawGroup{})
	gt := reflect.TypeOf(GroupConfig{})
	for i := range gt.NumField() {
		if _, ok := rawT.FieldByName(gt.Field(i).Name); !ok {
			t.Errorf("GroupConfig.%s has no rawGroup.%s", gt.Field(i).Name, gt.Field(i).Name)
		}
	}
}

// With groups, a SIGHUP reloads each member of the unit with its own group's settings:
// [redundancy]'s garp_refresh reaches every group, a group's priority its own member
// only, and a change that needs a restart reloads nobody.
func TestReloadGroupsMembers(t *testing.T) {
	cfg, err := ParseConfig([]byte(minimal + "[[redundancy.group]]\ninterface = \"eth1\"\naddress = \"198.51.100.11\"\ngroup_id = 18\nvirtual_ips = [\"198.51.100.100/24\"]\n"))
	if err != nil {
		t.Fatal(err)
	}
	cfg.API.Listen, cfg.Node.StateDir = "127.0.0.1:0", t.TempDir()
	cfg.API.TokenFile = filepath.Join(cfg.Node.StateDir, "api.token")
	members := map[string]*fakeRouter{}
	a, err := New(cfg, Options{DialVRRP: func(c vrrp.Config) (Router, error) {
		fr := &fakeRouter{cfg: c, ran: make(chan struct{})}
		members[c.Interface] = fr
		return fr, nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	runUntilCleanup(t, a, members["eth0"])
	<-members["eth1"].ran
	calls := func(ifname string) []string {
		fr := members[ifname]
		fr.mu.Lock()
		defer fr.mu.Unlock()
		out := slices.DeleteFunc(slices.Clone(fr.calls), func(c string) bool { return !strings.HasPrefix(c, "reload ") })
		fr.calls = nil
		return out
	}
	calls("eth0")
	calls("eth1")

	next := *a.live
	next.Redundancy.GARPRefresh = time.Minute
	next.Redundancy.Groups = slices.Clone(next.Redundancy.Groups)
	next.Redundancy.Groups[0].Priority = 150
	res, err := a.Reload(&next)
	if err != nil || !slices.Equal(res.Applied, []string{"redundancy.garp_refresh", "redundancy.group[eth1/18].priority"}) || len(res.Restart) != 0 {
		t.Fatalf("reload: %+v, %v", res, err)
	}
	rc := vrrp.RuntimeConfig{Priority: 100, GARPCount: 5, GARPInterval: 200 * time.Millisecond, GARPRefresh: time.Minute}
	if got, want := calls("eth0"), []string{fmt.Sprintf("reload %+v", rc)}; !slices.Equal(got, want) {
		t.Errorf("[redundancy]'s member: %q; want %q", got, want)
	}
	rc.Priority = 150
	if got, want := calls("eth1"), []string{fmt.Sprintf("reload %+v", rc)}; !slices.Equal(got, want) {
		t.Errorf("the group's member: %q; want %q", got, want)
	}

	again := *a.live
	again.Redundancy.Groups = slices.Clone(again.Redundancy.Groups)
	again.Redundancy.Groups[0].VirtualIPs = []netip.Prefix{netip.MustParsePrefix("198.51.100.101/24")}
	res, err = a.Reload(&again)
	if err != nil || len(res.Applied) != 0 || !slices.Equal(res.Restart, []string{"redundancy.group[eth1/18].virtual_ips"}) {
		t.Fatalf("second reload: %+v, %v", res, err)
	}
	if got := append(calls("eth0"), calls("eth1")...); len(got) != 0 {
		t.Errorf("a change that needs a restart reloaded %q", got)
	}
	if g := a.live.Redundancy.Groups[0]; g.Priority != 150 || g.VirtualIPs[0] != netip.MustParsePrefix("198.51.100.100/24") {
		t.Errorf("running group %+v; want priority 150 and the old virtual IP", g)
	}
}

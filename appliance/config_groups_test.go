package appliance

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

const twoGroups = `
[node]
id = "pbx-a"
interface = "eth0"
address = "192.0.2.11"
[redundancy]
group_id = 18
priority = 150
preempt = true
garp_count = 3
peer = "192.0.2.12"
unicast = true
virtual_ips = ["192.0.2.100/24"]
[[redundancy.group]]
interface = "eth1"
address = "198.51.100.11"
group_id = 18
peer = "198.51.100.12"
virtual_ips = ["198.51.100.100/24"]
[[redundancy.group]]
group_id = 19
priority = 120
advert_interval = "2s"
virtual_ips = ["192.0.2.101/24"]
`

// The groups inherit [redundancy]'s unset keys; peer only on node.interface.
func TestParseConfigGroups(t *testing.T) {
	cfg, err := ParseConfig([]byte(twoGroups))
	if err != nil {
		t.Fatal(err)
	}
	want := []GroupConfig{
		{Interface: "eth1", Address: netip.MustParseAddr("198.51.100.11"), Version: 2, GroupID: 18, Priority: 150,
			AdvertInterval: time.Second, Preempt: true, VirtualIPs: []netip.Prefix{netip.MustParsePrefix("198.51.100.100/24")},
			Unicast: true, Peer: netip.MustParseAddr("198.51.100.12"), GARPCount: 3, GARPInterval: DefaultGARPInterval},
		{Interface: "eth0", Address: netip.MustParseAddr("192.0.2.11"), Version: 2, GroupID: 19, Priority: 120,
			AdvertInterval: 2 * time.Second, Preempt: true, VirtualIPs: []netip.Prefix{netip.MustParsePrefix("192.0.2.101/24")},
			Unicast: true, Peer: netip.MustParseAddr("192.0.2.12"), GARPCount: 3, GARPInterval: DefaultGARPInterval},
	}
	if diff := cmp.Diff(want, cfg.Redundancy.Groups, cmpopts.EquateComparable(netip.Addr{}, netip.Prefix{})); diff != "" {
		t.Errorf("groups (-want +got):\n%s", diff)
	}
	// The one-group file of today decodes without groups.
	if cfg, err := ParseConfig([]byte(minimal)); err != nil || cfg.Redundancy.Groups != nil {
		t.Errorf("minimal: %v, groups %v", err, cfg.Redundancy.Groups)
	}
}

func TestParseConfigGroupErrors(t *testing.T) {
	tests := []struct {
		name     string
		from, to string // edit of twoGroups
		wantKeys []string
		wantIn   string
	}{
		{"same vrid on the same interface", "group_id = 19", "group_id = 18",
			[]string{"redundancy.group[1].group_id"}, "18 on eth0 is also redundancy's"},
		{"a virtual IP in two groups", `"192.0.2.101/24"`, `"192.0.2.100/24"`,
			[]string{"redundancy.group[1].virtual_ips[0]"}, "also a virtual IP of redundancy"},
		{"group_id missing", "group_id = 19\n", "",
			[]string{"redundancy.group[1].group_id"}, "is required"},
		{"no virtual IP", `virtual_ips = ["192.0.2.101/24"]`, ``,
			[]string{"redundancy.group[1].virtual_ips"}, "at least one virtual IP"},
		{"priority out of range", "priority = 120", "priority = 0",
			[]string{"redundancy.group[1].priority"}, "out of range"},
		{"bad interval", `advert_interval = "2s"`, `advert_interval = "250ms"`,
			[]string{"redundancy.group[1].advert_interval"}, "whole number of seconds"},
		{"version out of range", "group_id = 19", "group_id = 19\nversion = 4",
			[]string{"redundancy.group[1].version"}, "not a VRRP version"},
		{"IPv6 virtual IP in a version 2 group", `virtual_ips = ["192.0.2.101/24"]`, `virtual_ips = ["fe80::1/64"]`,
			[]string{"redundancy.group[1].virtual_ips[0]"}, "set redundancy.group[1].version = 3"},
		{"bad interface", `interface = "eth1"`, `interface = "eth 1"`,
			[]string{"redundancy.group[0].interface"}, "not an interface name"},
		{"bad address", `address = "198.51.100.11"`, `address = "2001:db8::1"`,
			[]string{"redundancy.group[0].address"}, "not an IPv4 address"},
		{"unicast on another interface without a peer", `peer = "198.51.100.12"`, ``,
			[]string{"redundancy.group[0].peer"}, "required when unicast"},
		{"peer is the group's own address", `peer = "198.51.100.12"`, `peer = "198.51.100.11"`,
			[]string{"redundancy.group[0].peer"}, "own address"},
		{"unknown key", "group_id = 19", "group_id = 19\nvrid = 3",
			[]string{"redundancy.group.vrid"}, "(line 22): unknown key"},
		{"virtual MAC with a VRID of another interface", "[redundancy]", "[redundancy]\nvirtual_mac = true",
			[]string{"redundancy.group[0].group_id"}, "the link is named vrrp.18"},
		// An inherited bad value is reported once, under [redundancy].
		{"inherited bad garp_count", "garp_count = 3", "garp_count = 0",
			[]string{"redundancy.garp_count"}, "out of range 1..100"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkConfigError(t, strings.Replace(twoGroups, tt.from, tt.to, 1), tt.wantKeys, tt.wantIn)
		})
	}
}

// A group's advert_interval follows its own version's rule, as [redundancy]'s does: whole
// seconds 1s..255s for version 2 (RFC 3768 section 5.3.7), multiples of 10ms from 10ms to
// 40.95s for version 3 (RFC 9568 section 5.2.7); the version is the group's own or, unset,
// [redundancy]'s.
func TestParseConfigGroupIntervalByVersion(t *testing.T) {
	const head = `[node]
id = "pbx-a"
interface = "eth0"
address = "192.0.2.11"
[redundancy]
group_id = 18
virtual_ips = ["192.0.2.100/24"]
%s
[[redundancy.group]]
interface = "eth1"
group_id = 18
virtual_ips = ["198.51.100.100/24"]
%s
`
	tests := []struct {
		name       string
		top, group string // lines added to [redundancy] and to the group
		want       time.Duration
		wantErr    string // "" when valid
	}{
		{"v2 inherited, whole seconds", "", `advert_interval = "3s"`, 3 * time.Second, ""},
		{"v2 inherited, the default", "", "", time.Second, ""},
		{"v2 inherited, 255s", "", `advert_interval = "255s"`, 255 * time.Second, ""},
		{"v2 inherited, sub-second", "", `advert_interval = "100ms"`, 0, "whole number of seconds"},
		{"v2 inherited, 256s", "", `advert_interval = "256s"`, 0, "whole number of seconds"},
		{"v2 inherited, 1.5s", "", `advert_interval = "1500ms"`, 0, "whole number of seconds"},
		{"v2 own, under a v3 [redundancy]", "version = 3", "version = 2\nadvert_interval = \"100ms\"", 0, "whole number of seconds"},
		{"v3 own, 100ms", "", "version = 3\nadvert_interval = \"100ms\"", 100 * time.Millisecond, ""},
		{"v3 own, 10ms", "", "version = 3\nadvert_interval = \"10ms\"", 10 * time.Millisecond, ""},
		{"v3 own, 40.95s", "", "version = 3\nadvert_interval = \"40.95s\"", 40950 * time.Millisecond, ""},
		{"v3 own, 5ms", "", "version = 3\nadvert_interval = \"5ms\"", 0, "multiple of 10ms from 10ms to 40.95s"},
		{"v3 own, 15ms", "", "version = 3\nadvert_interval = \"15ms\"", 0, "multiple of 10ms from 10ms to 40.95s"},
		{"v3 own, 41s", "", "version = 3\nadvert_interval = \"41s\"", 0, "multiple of 10ms from 10ms to 40.95s"},
		{"v3 inherited from [redundancy]", "version = 3", `advert_interval = "250ms"`, 250 * time.Millisecond, ""},
		{"v3 inherited, with the interval too", "version = 3\nadvert_interval = \"50ms\"", "", 50 * time.Millisecond, ""},
		{"v3 inherited, 5ms", "version = 3", `advert_interval = "5ms"`, 0, "multiple of 10ms from 10ms to 40.95s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc := fmt.Sprintf(head, tt.top, tt.group)
			if tt.wantErr != "" {
				checkConfigError(t, doc, []string{"redundancy.group[0].advert_interval"}, tt.wantErr)
				return
			}
			cfg, err := ParseConfig([]byte(doc))
			if err != nil {
				t.Fatalf("refused: %v\n%s", err, doc)
			}
			if g := cfg.Redundancy.Groups[0]; g.AdvertInterval != tt.want {
				t.Errorf("advert_interval %s, want %s", g.AdvertInterval, tt.want)
			}
		})
	}
}

func TestParseConfigGroupLimit(t *testing.T) {
	var b strings.Builder
	b.WriteString(minimal)
	for range MaxGroups + 1 {
		b.WriteString("[[redundancy.group]]\n")
	}
	_, err := ParseConfig([]byte(b.String()))
	if err == nil || !strings.Contains(err.Error(), "redundancy.group: 255 entries; at most 254") {
		t.Errorf("%d groups: %v", MaxGroups+1, err)
	}
}

// checkConfigError parses doc and checks that it is refused with an error wrapping ErrConfig
// that names wantKeys (in order; nil: not checked) and says wantIn.
func checkConfigError(t *testing.T, doc string, wantKeys []string, wantIn string) {
	t.Helper()
	_, err := ParseConfig([]byte(doc))
	if err == nil {
		t.Fatalf("ParseConfig accepted:\n%s", doc)
	}
	if !errors.Is(err, ErrConfig) {
		t.Errorf("error %v does not wrap ErrConfig", err)
	}
	var got []string
	for _, e := range flatten(err) {
		var ce *ConfigError
		if errors.As(e, &ce) {
			got = append(got, ce.Key)
		}
	}
	if wantKeys != nil {
		if diff := cmp.Diff(wantKeys, got); diff != "" {
			t.Errorf("keys named (-want +got):\n%s\nerror: %v", diff, err)
		}
	}
	if !strings.Contains(err.Error(), wantIn) {
		t.Errorf("error %q does not say %q", err, wantIn)
	}
}

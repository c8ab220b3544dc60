package appliance

import (
	"errors"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

const minimal = `
[node]
id = "pbx-a"
interface = "eth0"
address = "192.0.2.11"
[redundancy]
group_id = 18
virtual_ips = ["192.0.2.100/24"]
`

func TestParseConfigDefaults(t *testing.T) {
	cfg, err := ParseConfig([]byte(minimal))
	if err != nil {
		t.Fatal(err)
	}
	want := &Config{
		Node: NodeConfig{ID: "pbx-a", Interface: "eth0", Address: netip.MustParseAddr("192.0.2.11"), StateDir: DefaultStateDir},
		Redundancy: RedundancyConfig{
			Enabled: true, GroupID: 18, Priority: 100, AdvertInterval: time.Second,
			VirtualIPs: []netip.Prefix{netip.MustParsePrefix("192.0.2.100/24")},
			GARPCount:  5, GARPInterval: 200 * time.Millisecond,
		},
		Berofos: BerofosConfig{Conf: "/etc/bnfos.conf", LinesMode: -1, KickInterval: 5 * time.Second,
			Timeout: 3 * time.Second, PollInterval: 2 * time.Second},
		Sync: SyncConfig{Listen: ":7401", Interval: "60s", TrashRetention: 7 * 24 * time.Hour, MaxDelete: 0.2},
		API:  APIConfig{Listen: "127.0.0.1:7400"},
	}
	if diff := cmp.Diff(want, cfg, cmp.Comparer(func(a, b netip.Addr) bool { return a == b }),
		cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })); diff != "" {
		t.Errorf("ParseConfig (-want +got):\n%s", diff)
	}
}

func TestReferenceConfigParses(t *testing.T) {
	cfg, err := LoadConfig("../docs/redundantd.toml")
	if err != nil {
		t.Fatalf("the shipped reference configuration is invalid: %v", err)
	}
	if cfg.Redundancy.GroupID != 18 || cfg.Redundancy.Peer != netip.MustParseAddr("192.0.2.12") {
		t.Errorf("reference config decoded wrongly: %+v", cfg.Redundancy)
	}
}

func TestParseConfigErrors(t *testing.T) {
	tests := []struct {
		name string
		// edit replaces the first string with the second in the minimal document.
		from, to string
		// wantKeys are the keys the error must name, in order.
		wantKeys []string
		wantIn   string
	}{
		{"unknown key", `group_id = 18`, "group_id = 18\ngroupid = 3", []string{"redundancy.groupid"}, "unknown key"},
		{"unknown section", `[redundancy]`, "[redundnacy]\nx=1\n[redundancy]", []string{"redundnacy"}, "unknown key"},
		{"vrid zero", `group_id = 18`, `group_id = 0`, []string{"redundancy.group_id"}, "out of range 1..255"},
		{"vrid too big", `group_id = 18`, `group_id = 256`, []string{"redundancy.group_id"}, "out of range"},
		{"vrid missing", `group_id = 18`, ``, []string{"redundancy.group_id"}, "is required"},
		{"wrong type", `group_id = 18`, `group_id = "18"`, []string{"redundancy.group_id"}, ""},
		{"priority zero", `group_id = 18`, "group_id = 18\npriority = 0", []string{"redundancy.priority"}, "reserved"},
		{"owner priority without owning", `group_id = 18`, "group_id = 18\npriority = 255", []string{"redundancy.priority"}, "owner"},
		{"own address as vip", `"192.0.2.100/24"`, `"192.0.2.11/24"`, []string{"redundancy.virtual_ips"}, "owner"},
		{"fractional interval", `group_id = 18`, "group_id = 18\nadvert_interval = \"1500ms\"", []string{"redundancy.advert_interval"}, "whole number of seconds"},
		{"bad interval", `group_id = 18`, "group_id = 18\nadvert_interval = \"soon\"", []string{"redundancy.advert_interval"}, "not a duration"},
		{"vip without prefix", `"192.0.2.100/24"`, `"192.0.2.100"`, []string{"redundancy.virtual_ips[0]"}, "no prefix length"},
		{"vip ipv6", `"192.0.2.100/24"`, `"2001:db8::1/64"`, []string{"redundancy.virtual_ips[0]"}, "not IPv4"},
		{"vip twice", `"192.0.2.100/24"`, `"192.0.2.100/24", "192.0.2.100/32"`, []string{"redundancy.virtual_ips[1]"}, "twice"},
		{"no vips", `virtual_ips = ["192.0.2.100/24"]`, `virtual_ips = []`, []string{"redundancy.virtual_ips"}, "at least one"},
		{"unicast without peer", `group_id = 18`, "group_id = 18\nunicast = true", []string{"redundancy.peer"}, "required when unicast"},
		{"peer is self", `group_id = 18`, "group_id = 18\npeer = \"192.0.2.11\"", []string{"redundancy.peer"}, "own address"},
		{"bad address", `"192.0.2.11"`, `"pbx-a.local"`, []string{"node.address"}, "not an IPv4 address"},
		{"missing interface", `interface = "eth0"`, ``, []string{"node.interface"}, "is required"},
		{"relative state dir", `interface = "eth0"`, "interface = \"eth0\"\nstate_dir = \"state\"", []string{"node.state_dir"}, "absolute"},
		{"garp count", `group_id = 18`, "group_id = 18\ngarp_count = -1", []string{"redundancy.garp_count"}, "out of range"},
		{"api listen", `virtual_ips = ["192.0.2.100/24"]`, "virtual_ips = [\"192.0.2.100/24\"]\n[api]\nlisten = \"localhost\"", []string{"api.listen"}, "address:port"},
		{"berofos lines_mode missing", `virtual_ips = ["192.0.2.100/24"]`, "virtual_ips = [\"192.0.2.100/24\"]\n[berofos]\nenabled = true", []string{"berofos.lines_mode"}, "port B"},
		{"berofos lines_mode 2", `virtual_ips = ["192.0.2.100/24"]`, "virtual_ips = [\"192.0.2.100/24\"]\n[berofos]\nlines_mode = 2", []string{"berofos.lines_mode"}, "want 1"},
		{"berofos kick interval", `virtual_ips = ["192.0.2.100/24"]`, "virtual_ips = [\"192.0.2.100/24\"]\n[berofos]\nkick_interval = \"1ms\"", []string{"berofos.kick_interval"}, "out of range"},
		{"sync without fingerprint", `virtual_ips = ["192.0.2.100/24"]`, "virtual_ips = [\"192.0.2.100/24\"]\npeer = \"192.0.2.12\"\n[sync]\nenabled = true\npaths = [\"/etc/asterisk\"]", []string{"sync.peer_fingerprint"}, "redundantd -fingerprint"},
		{"sync relative path", `virtual_ips = ["192.0.2.100/24"]`, "virtual_ips = [\"192.0.2.100/24\"]\n[sync]\npaths = [\"etc/asterisk\"]", []string{"sync.paths[0]"}, "absolute"},
		{"sync without peer", `virtual_ips = ["192.0.2.100/24"]`, "virtual_ips = [\"192.0.2.100/24\"]\n[sync]\nenabled = true\npaths = [\"/etc/asterisk\"]\npeer_fingerprint = \"ab\"", []string{"sync.peer"}, "required"},
		{"sync max_delete", `virtual_ips = ["192.0.2.100/24"]`, "virtual_ips = [\"192.0.2.100/24\"]\n[sync]\nmax_delete = 1.5", []string{"sync.max_delete"}, "share"},
		{"syntax", `group_id = 18`, `group_id = = 18`, nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc := strings.Replace(minimal, tt.from, tt.to, 1)
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
			if tt.wantKeys != nil {
				if diff := cmp.Diff(tt.wantKeys, got); diff != "" {
					t.Errorf("keys named (-want +got):\n%s\nerror: %v", diff, err)
				}
			}
			if !strings.Contains(err.Error(), tt.wantIn) {
				t.Errorf("error %q does not say %q", err, tt.wantIn)
			}
		})
	}
}

func TestParseConfigDisabledNeedsNoGroup(t *testing.T) {
	doc := "[node]\ninterface = \"eth0\"\naddress = \"192.0.2.11\"\n[redundancy]\nenabled = false\n"
	cfg, err := ParseConfig([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Redundancy.Enabled {
		t.Error("enabled = false was ignored")
	}
	if cfg.Node.ID == "" {
		h, _ := os.Hostname()
		t.Errorf("node.id = %q, want the hostname %q", cfg.Node.ID, h)
	}
}

// flatten unpacks errors.Join trees into their leaves.
func flatten(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, flatten(e)...)
		}
		return out
	}
	return []error{err}
}

package appliance

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
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
			Enabled: true, Version: 2, GroupID: 18, Priority: 100, AdvertInterval: time.Second,
			VirtualIPs: []netip.Prefix{netip.MustParsePrefix("192.0.2.100/24")},
			GARPCount:  5, GARPInterval: 200 * time.Millisecond, BackupMode: ModeActive,
		},
		Berofos: BerofosConfig{Conf: "/etc/bnfos.conf", LinesMode: -1, KickInterval: 5 * time.Second,
			Timeout: 3 * time.Second, PollInterval: 2 * time.Second},
		Sync: SyncConfig{Listen: ":7401", Interval: "60s", TrashRetention: 7 * 24 * time.Hour, MaxDelete: 0.2},
		API:  APIConfig{Listen: "127.0.0.1:7400", TokenFile: "/var/lib/redundantd/api.token"},
		Peer: PeerLinkConfig{Listen: ":7402", Interval: time.Second},
		Console: ConsoleConfig{LockoutAttempts: DefaultLockoutAttempts, LockoutWindow: DefaultLockoutWindow,
			SessionIdle: DefaultSessionIdle},
	}
	if diff := cmp.Diff(want, cfg, cmp.Comparer(func(a, b netip.Addr) bool { return a == b }),
		cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })); diff != "" {
		t.Errorf("ParseConfig (-want +got):\n%s", diff)
	}
}

// An IPv6 group: VRRPv3, the link-local virtual address first, the Router flag of its Neighbor
// Advertisements as set.
func TestParseConfigIPv6Group(t *testing.T) {
	doc := strings.Replace(minimal, `virtual_ips = ["192.0.2.100/24"]`,
		"version = 3\nadvert_interval = \"100ms\"\nna_router = true\nvirtual_ips = [\"fe80::1/64\", \"2001:db8::100/64\"]", 1)
	cfg, err := ParseConfig([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	rc := cfg.Redundancy
	want := []netip.Prefix{netip.MustParsePrefix("fe80::1/64"), netip.MustParsePrefix("2001:db8::100/64")}
	if rc.Version != 3 || rc.AdvertInterval != 100*time.Millisecond || !rc.NARouter ||
		!slices.Equal(rc.VirtualIPs, want) {
		t.Errorf("decoded version %d interval %v na_router %t virtual_ips %v; want 3, 100ms, true, %v",
			rc.Version, rc.AdvertInterval, rc.NARouter, rc.VirtualIPs, want)
	}
	// The engine gets no Primary (node.address is IPv4): it advertises from the interface's
	// link-local address.
	a := &Appliance{cfg: cfg, log: slog.New(slog.DiscardHandler)}
	if c := a.vrrpConfig(); !c.IPv6() || c.Primary.IsValid() || !c.NARouter || c.Version != 3 {
		t.Errorf("engine config: IPv6 %t, primary %v, na_router %t, version %d; want true, none, true, 3",
			c.IPv6(), c.Primary, c.NARouter, c.Version)
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
		{"sub-second interval with version 2", `group_id = 18`, "group_id = 18\nadvert_interval = \"100ms\"", []string{"redundancy.advert_interval"}, "version = 3 allows"},
		{"version 1", `group_id = 18`, "group_id = 18\nversion = 1", []string{"redundancy.version"}, "2 (RFC 3768) or 3"},
		{"version 4", `group_id = 18`, "group_id = 18\nversion = 4", []string{"redundancy.version"}, "not a VRRP version"},
		{"version as a string", `group_id = 18`, "group_id = 18\nversion = \"3\"", []string{"redundancy.version"}, ""},
		{"version 3 interval 5ms", `group_id = 18`, "group_id = 18\nversion = 3\nadvert_interval = \"5ms\"", []string{"redundancy.advert_interval"}, "multiple of 10ms"},
		{"version 3 interval 105ms", `group_id = 18`, "group_id = 18\nversion = 3\nadvert_interval = \"105ms\"", []string{"redundancy.advert_interval"}, "multiple of 10ms"},
		{"version 3 interval 41s", `group_id = 18`, "group_id = 18\nversion = 3\nadvert_interval = \"41s\"", []string{"redundancy.advert_interval"}, "40.95s"},
		{"vip without prefix", `"192.0.2.100/24"`, `"192.0.2.100"`, []string{"redundancy.virtual_ips[0]"}, "no prefix length"},
		{"vip ipv6 in v2", `"192.0.2.100/24"`, `"fe80::1/64"`, []string{"redundancy.virtual_ips[0]"}, "set redundancy.version = 3"},
		{"mixed families", `virtual_ips = ["192.0.2.100/24"]`, "version = 3\nvirtual_ips = [\"fe80::1/64\", \"192.0.2.100/24\"]", []string{"redundancy.virtual_ips[1]"}, "IPv4 or IPv6 addresses, not both"},
		{"mixed families v4 first", `virtual_ips = ["192.0.2.100/24"]`, "version = 3\nvirtual_ips = [\"192.0.2.100/24\", \"fe80::1/64\"]", []string{"redundancy.virtual_ips[1]"}, "not both"},
		{"ipv6 group without link-local first", `virtual_ips = ["192.0.2.100/24"]`, "version = 3\nvirtual_ips = [\"2001:db8::100/64\", \"fe80::1/64\"]", []string{"redundancy.virtual_ips[0]"}, "link-local virtual address"},
		{"ipv6 vip without prefix", `virtual_ips = ["192.0.2.100/24"]`, "version = 3\nvirtual_ips = [\"fe80::1\"]", []string{"redundancy.virtual_ips[0]"}, "fe80::1/64"},
		{"ipv6 multicast vip", `virtual_ips = ["192.0.2.100/24"]`, "version = 3\nvirtual_ips = [\"fe80::1/64\", \"ff02::12/64\"]", []string{"redundancy.virtual_ips[1]"}, "multicast"},
		{"ipv6 mapped vip", `virtual_ips = ["192.0.2.100/24"]`, "version = 3\nvirtual_ips = [\"fe80::1/64\", \"::ffff:192.0.2.100/120\"]", []string{"redundancy.virtual_ips[1]"}, "IPv4-mapped"},
		{"ipv6 anycast vip", `virtual_ips = ["192.0.2.100/24"]`, "version = 3\nvirtual_ips = [\"fe80::1/64\", \"2001:db8::/64\"]", []string{"redundancy.virtual_ips[1]"}, "Subnet-Router anycast"},
		{"ipv6 unicast", `virtual_ips = ["192.0.2.100/24"]`, "version = 3\nunicast = true\npeer = \"192.0.2.12\"\nvirtual_ips = [\"fe80::1/64\"]", []string{"redundancy.unicast"}, "not available for IPv6"},
		{"na_router in an IPv4 group", `group_id = 18`, "group_id = 18\nna_router = true", []string{"redundancy.na_router"}, "IPv6 virtual IPs only"},
		{"vip twice", `"192.0.2.100/24"`, `"192.0.2.100/24", "192.0.2.100/32"`, []string{"redundancy.virtual_ips[1]"}, "twice"},
		{"no vips", `virtual_ips = ["192.0.2.100/24"]`, `virtual_ips = []`, []string{"redundancy.virtual_ips"}, "at least one"},
		{"unicast without peer", `group_id = 18`, "group_id = 18\nunicast = true", []string{"redundancy.peer"}, "required when unicast"},
		{"peer is self", `group_id = 18`, "group_id = 18\npeer = \"192.0.2.11\"", []string{"redundancy.peer"}, "own address"},
		{"bad address", `"192.0.2.11"`, `"pbx-a.local"`, []string{"node.address"}, "not an IPv4 address"},
		{"missing interface", `interface = "eth0"`, ``, []string{"node.interface"}, "is required"},
		{"relative state dir", `interface = "eth0"`, "interface = \"eth0\"\nstate_dir = \"state\"", []string{"node.state_dir"}, "absolute"},
		{"garp count", `group_id = 18`, "group_id = 18\ngarp_count = -1", []string{"redundancy.garp_count"}, "out of range"},
		{"garp refresh too short", `group_id = 18`, "group_id = 18\ngarp_refresh = \"500ms\"", []string{"redundancy.garp_refresh"}, "out of range 1s..1h0m0s"},
		{"garp refresh too long", `group_id = 18`, "group_id = 18\ngarp_refresh = \"2h\"", []string{"redundancy.garp_refresh"}, "out of range"},
		{"garp refresh negative", `group_id = 18`, "group_id = 18\ngarp_refresh = \"-1m\"", []string{"redundancy.garp_refresh"}, "out of range"},
		{"garp refresh not a duration", `group_id = 18`, "group_id = 18\ngarp_refresh = \"60\"", []string{"redundancy.garp_refresh"}, "not a duration"},
		{"api listen", `virtual_ips = ["192.0.2.100/24"]`, "virtual_ips = [\"192.0.2.100/24\"]\n[api]\nlisten = \"localhost\"", []string{"api.listen"}, "address:port"},
		{"berofos lines_mode missing", `virtual_ips = ["192.0.2.100/24"]`, "virtual_ips = [\"192.0.2.100/24\"]\n[berofos]\nenabled = true", []string{"berofos.lines_mode"}, "port B"},
		{"berofos lines_mode 2", `virtual_ips = ["192.0.2.100/24"]`, "virtual_ips = [\"192.0.2.100/24\"]\n[berofos]\nlines_mode = 2", []string{"berofos.lines_mode"}, "want 1"},
		{"berofos kick interval", `virtual_ips = ["192.0.2.100/24"]`, "virtual_ips = [\"192.0.2.100/24\"]\n[berofos]\nkick_interval = \"1ms\"", []string{"berofos.kick_interval"}, "out of range"},
		{"sync without fingerprint", `virtual_ips = ["192.0.2.100/24"]`, "virtual_ips = [\"192.0.2.100/24\"]\npeer = \"192.0.2.12\"\n[sync]\nenabled = true\npaths = [\"/etc/asterisk\"]", []string{"sync.peer_fingerprint"}, "redundantd -fingerprint"},
		{"sync relative path", `virtual_ips = ["192.0.2.100/24"]`, "virtual_ips = [\"192.0.2.100/24\"]\n[sync]\npaths = [\"etc/asterisk\"]", []string{"sync.paths[0]"}, "absolute"},
		{"sync without peer", `virtual_ips = ["192.0.2.100/24"]`, "virtual_ips = [\"192.0.2.100/24\"]\n[sync]\nenabled = true\npaths = [\"/etc/asterisk\"]\npeer_fingerprint = \"" + testFingerprint + "\"", []string{"sync.peer"}, "required"},
		{"sync max_delete", `virtual_ips = ["192.0.2.100/24"]`, "virtual_ips = [\"192.0.2.100/24\"]\n[sync]\nmax_delete = 1.5", []string{"sync.max_delete"}, "share"},
		{"syntax", `group_id = 18`, `group_id = = 18`, []string{"redundancy.group_id"}, "(line 7)"},
		{"key given twice", `interface = "eth0"`, "interface = \"eth0\"\ninterface = \"eth1\"", []string{"node.interface"}, "(line 5): key interface is already defined"},
		{"wrong type", `interface = "eth0"`, `interface = true`, []string{"node.interface"}, "expected a string, not a boolean"},
		{"wrong type in a list", `"192.0.2.100/24"`, `"192.0.2.100/24", 7`, []string{"redundancy.virtual_ips"}, "expected a list of strings, not an integer"},
		{"section as a value", `[node]`, "api = 1\n[node]", []string{"api"}, "expected a table, not an integer"},
		{"unterminated string", `group_id = 18`, "group_id = 18\ngarp_interval = \"1s", []string{"redundancy.garp_interval"}, "(line 8)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkConfigError(t, strings.Replace(minimal, tt.from, tt.to, 1), tt.wantKeys, tt.wantIn)
		})
	}
}

// testFingerprint is a well-formed sync.peer_fingerprint.
const testFingerprint = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"

// badFile is one of testdata/bad/*.toml: a configuration with one mistake, and in its
// header comments the key the error must name ("# want:"), a phrase it must contain
// ("# says:") and, for some, its line ("# line:"; every error must have one). The header
// lines count: "# line:" is the line in the file as it is.
type badFile struct {
	path, want, says string
	line             int
}

func readBadFiles(t *testing.T) []badFile {
	t.Helper()
	paths, err := filepath.Glob("testdata/bad/*.toml")
	if err != nil || len(paths) == 0 {
		t.Fatalf("no testdata/bad/*.toml: %v", err)
	}
	var out []badFile
	for _, path := range paths {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		f := badFile{path: path}
		for _, l := range strings.Split(string(b), "\n") {
			switch k, v, _ := strings.Cut(strings.TrimPrefix(l, "# "), ": "); k {
			case "want":
				f.want = v
			case "says":
				f.says = v
			case "line":
				f.line, _ = strconv.Atoi(v)
			}
		}
		if f.want == "" || f.says == "" {
			t.Fatalf("%s: no \"# want:\" or \"# says:\" header", path)
		}
		out = append(out, f)
	}
	return out
}

// TestLoadConfigBadFiles: each file has exactly one mistake, and LoadConfig names exactly
// that key, so that what redundantd -check accepts the daemon starts with (issue 12 item 7).
func TestLoadConfigBadFiles(t *testing.T) {
	for _, f := range readBadFiles(t) {
		t.Run(strings.TrimSuffix(filepath.Base(f.path), ".toml"), func(t *testing.T) {
			_, err := LoadConfig(f.path)
			if err == nil {
				t.Fatalf("LoadConfig accepted %s", f.path)
			}
			if !errors.Is(err, ErrConfig) {
				t.Errorf("error %v does not wrap ErrConfig", err)
			}
			var keys []string
			var lines []int
			for _, e := range flatten(errors.Unwrap(err)) {
				var ce *ConfigError
				if errors.As(e, &ce) {
					keys, lines = append(keys, ce.Key), append(lines, ce.Line)
				}
			}
			if diff := cmp.Diff([]string{f.want}, keys); diff != "" {
				t.Errorf("keys named (-want +got):\n%s\nerror: %v", diff, err)
			}
			if !strings.Contains(err.Error(), f.says) {
				t.Errorf("error %q does not say %q", err, f.says)
			}
			switch {
			case len(lines) != 1 || lines[0] == 0:
				t.Errorf("lines %v: want the line of %s", lines, f.want)
			case f.line != 0 && lines[0] != f.line:
				t.Errorf("line %d, want %d", lines[0], f.line)
			}
			if strings.Contains(err.Error(), "struct {") || strings.Contains(err.Error(), "rawConfig") {
				t.Errorf("error dumps a Go type: %v", err)
			}
		})
	}
}

// TestLoadConfigFiles covers the checks of the files a configuration names: berofos.conf
// must parse and list the devices, bypass needs their MACs, and the peer's fingerprint must
// not be this node's own certificate.
func TestLoadConfigFiles(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	conf := write("bnfos.conf", "[fos1]\nhost = 192.0.2.50\nmac = 00:19:32:00:12:1D\n[fos2]\nhost = 192.0.2.51\n")
	broken := write("broken.conf", "[fos1]\nhost = 192.0.2.50\n[fos1]\nhost = 192.0.2.51\n")
	empty := write("empty.conf", "# no devices yet\n")
	stateDir := filepath.Join(dir, "state")
	own, err := Fingerprint(&Config{Node: NodeConfig{StateDir: stateDir}})
	if err != nil {
		t.Fatal(err)
	}
	base := minimal + "peer = \"192.0.2.12\"\n"
	tests := []struct {
		name, extra string
		wantKeys    []string
		wantIn      string
	}{
		{"good berofos", "[berofos]\nenabled = true\nlines_mode = 1\nconf = \"" + conf + "\"\ndevices = [\"fos2\"]\n", nil, ""},
		{"device not in conf", "[berofos]\nenabled = true\nlines_mode = 1\nconf = \"" + conf + "\"\ndevices = [\"fos1\", \"fos3\"]\n", []string{"berofos.devices[1]"}, "fos3"},
		{"bypass without mac", "[berofos]\nenabled = true\nlines_mode = 1\nbypass = true\nconf = \"" + conf + "\"\n", []string{"berofos.bypass"}, "mac of [fos2]"},
		{"malformed conf", "[berofos]\nenabled = true\nlines_mode = 1\nconf = \"" + broken + "\"\n", []string{"berofos.conf"}, "bnfos.conf:3: section [fos1] appears twice"},
		{"conf without devices", "[berofos]\nenabled = true\nlines_mode = 0\nconf = \"" + empty + "\"\n", []string{"berofos.conf"}, "lists no device"},
		{"disabled berofos reads no conf", "[berofos]\nconf = \"/nonexistent/bnfos.conf\"\n", nil, ""},
		{"own certificate as peer", "[sync]\nenabled = true\npaths = [\"/etc/asterisk\"]\npeer_fingerprint = \"" + strings.ToUpper(own) + "\"\n", []string{"sync.peer_fingerprint"}, "this node's own certificate"},
		{"peer's certificate", "[sync]\nenabled = true\npaths = [\"/etc/asterisk\"]\npeer_fingerprint = \"" + testFingerprint + "\"\n", nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc := strings.Replace(base, "[node]\n", "[node]\nstate_dir = \""+stateDir+"\"\n", 1) + tt.extra
			cfg, err := LoadConfig(write("redundantd.toml", doc))
			if tt.wantKeys == nil {
				if err != nil {
					t.Fatalf("LoadConfig: %v", err)
				}
				if cfg.Sync.Enabled && cfg.Sync.PeerFingerprint != testFingerprint {
					t.Errorf("fingerprint %q, want it normalized", cfg.Sync.PeerFingerprint)
				}
				return
			}
			if err == nil {
				t.Fatalf("LoadConfig accepted:\n%s", doc)
			}
			var got []string
			for _, e := range flatten(errors.Unwrap(err)) {
				var ce *ConfigError
				if errors.As(e, &ce) {
					got = append(got, ce.Key)
				}
			}
			if diff := cmp.Diff(tt.wantKeys, got); diff != "" || !strings.Contains(err.Error(), tt.wantIn) {
				t.Errorf("keys (-want +got):\n%s\nerror %q, want it to say %q", diff, err, tt.wantIn)
			}
		})
	}
}

// TestConfigSizeLimits: a file over 1 MiB is refused before it is decoded, and a long list
// is one problem, not one per entry (issue 12 item 9: a 50 MB list took 12.7 s and 922 MB).
func TestConfigSizeLimits(t *testing.T) {
	dir := t.TempDir()
	var b strings.Builder
	b.WriteString(minimal + "[sync]\npaths = [")
	for b.Len() <= MaxConfigSize {
		b.WriteString("\"relative\", ")
	}
	b.WriteString("]\n")
	big := filepath.Join(dir, "big.toml")
	if err := os.WriteFile(big, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := LoadConfig(big)
	var ce *ConfigError
	if !errors.As(err, &ce) || ce.Key != "(document)" || !strings.Contains(err.Error(), "larger than 1048576 bytes") {
		t.Errorf("LoadConfig of %d bytes: %v", b.Len(), err)
	}
	if _, err := ParseConfig([]byte(b.String())); !errors.As(err, &ce) || !strings.Contains(ce.Problem, "larger than") {
		t.Errorf("ParseConfig of %d bytes: %v", b.Len(), err)
	}
	// Just under the limit: decoded, and the list is reported once.
	var under strings.Builder
	under.WriteString(minimal + "[sync]\npaths = [")
	for under.Len() < MaxConfigSize-100 {
		under.WriteString("\"relative\", ")
	}
	under.WriteString("]\n")
	_, err = ParseConfig([]byte(under.String()))
	if err == nil || len(err.Error()) > 200 || !strings.Contains(err.Error(), "sync.paths (line 10): ") || !strings.Contains(err.Error(), "at most 64") {
		t.Errorf("ParseConfig of a %d-byte list: %.300v", under.Len(), err)
	}
	// Many bad entries within the list limits: at most maxReported are listed.
	var many strings.Builder
	many.WriteString(minimal)
	for i := range 60 {
		fmt.Fprintf(&many, "unknown%d = 1\n", i)
	}
	err = ParseConfig2(t, many.String())
	if n := len(flatten(err)); n != maxReported+1 || !strings.Contains(err.Error(), "and 35 more problems") {
		t.Errorf("%d problems reported: %v", n, err)
	}
}

// ParseConfig2 parses doc and returns its error, failing the test when it is accepted.
func ParseConfig2(t *testing.T, doc string) error {
	t.Helper()
	_, err := ParseConfig([]byte(doc))
	if err == nil {
		t.Fatalf("accepted:\n%s", doc)
	}
	return err
}

// TestAllowLinkLocal: link-local virtual IPs, node address and peer are accepted when asked
// for, and only then.
func TestAllowLinkLocal(t *testing.T) {
	doc := "[node]\ninterface = \"eth0\"\naddress = \"169.254.0.11\"\n[redundancy]\ngroup_id = 18\npeer = \"169.254.0.12\"\nvirtual_ips = [\"169.254.0.100/16\"]\n"
	err := ParseConfig2(t, doc)
	var keys []string
	for _, e := range flatten(err) {
		var ce *ConfigError
		if errors.As(e, &ce) {
			keys = append(keys, ce.Key)
		}
	}
	if diff := cmp.Diff([]string{"node.address", "redundancy.peer", "redundancy.virtual_ips[0]"}, keys); diff != "" {
		t.Errorf("keys (-want +got):\n%s", diff)
	}
	cfg, err := ParseConfig([]byte(doc + "allow_link_local = true\n"))
	if err != nil {
		t.Fatal(err)
	}
	if !cfg.Redundancy.AllowLinkLocal || cfg.Redundancy.VirtualIPs[0] != netip.MustParsePrefix("169.254.0.100/16") {
		t.Errorf("redundancy %+v", cfg.Redundancy)
	}
	// /31 and /32 have no network or broadcast address to refuse.
	for _, v := range []string{"192.0.2.100/32", "192.0.2.100/31", "192.0.2.101/31"} {
		if _, err := ParseConfig([]byte(strings.Replace(minimal, "192.0.2.100/24", v, 1))); err != nil {
			t.Errorf("%s: %v", v, err)
		}
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

// FuzzParseConfig: any document is either a Config or an error that wraps ErrConfig and
// names a key; never a panic (the UTF-8 and line scans index into the document).
func FuzzParseConfig(f *testing.F) {
	f.Add([]byte(minimal))
	f.Add([]byte("[node]\nid = \"caf\xe9\"\n"))
	f.Add([]byte("[node]\ninterface = 5\n[[x]]\ny = = 1\n"))
	f.Add([]byte("\xef\xbb\xbf[a]\nb = \"\n"))
	if b, err := os.ReadFile("../docs/redundantd.toml"); err == nil {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		cfg, err := ParseConfig(b)
		if err == nil {
			if cfg == nil {
				t.Fatal("nil Config without an error")
			}
			return
		}
		if !errors.Is(err, ErrConfig) {
			t.Fatalf("error %v does not wrap ErrConfig", err)
		}
		for _, e := range flatten(err) {
			var ce *ConfigError
			if !errors.As(e, &ce) || ce.Key == "" {
				t.Fatalf("error %q names no key", e)
			}
		}
	})
}

// garp_refresh: absent and "0" mean no refresh, a duration of 1s..1h the period.
func TestGARPRefreshConfig(t *testing.T) {
	for _, tc := range []struct {
		line string
		want time.Duration
	}{
		{"", 0},
		{`garp_refresh = "0"`, 0},
		{`garp_refresh = "0s"`, 0},
		{`garp_refresh = "1s"`, time.Second},
		{`garp_refresh = "60s"`, time.Minute},
		{`garp_refresh = "1h"`, time.Hour},
	} {
		cfg, err := ParseConfig([]byte(strings.Replace(minimal, "group_id = 18", "group_id = 18\n"+tc.line, 1)))
		if err != nil {
			t.Errorf("%q: %v", tc.line, err)
			continue
		}
		if cfg.Redundancy.GARPRefresh != tc.want {
			t.Errorf("%q: GARPRefresh %v, want %v", tc.line, cfg.Redundancy.GARPRefresh, tc.want)
		}
	}
}

// version = 3 takes advert intervals in 10 ms steps; the boundaries are accepted, and the
// appliance hands the version to the engine.
func TestParseConfigVersion3(t *testing.T) {
	for _, tt := range []struct {
		interval string
		want     time.Duration
	}{
		{`"100ms"`, 100 * time.Millisecond},
		{`"10ms"`, 10 * time.Millisecond},
		{`"40.95s"`, 40950 * time.Millisecond},
		{`"1s"`, time.Second},
		{`"1.23s"`, 1230 * time.Millisecond},
	} {
		doc := strings.Replace(minimal, "group_id = 18", "group_id = 18\nversion = 3\nadvert_interval = "+tt.interval, 1)
		cfg, err := ParseConfig([]byte(doc))
		if err != nil {
			t.Errorf("advert_interval = %s with version 3: %v", tt.interval, err)
			continue
		}
		if r := cfg.Redundancy; r.Version != 3 || r.AdvertInterval != tt.want {
			t.Errorf("advert_interval = %s: version %d, interval %v; want 3, %v", tt.interval, r.Version, r.AdvertInterval, tt.want)
		}
	}
	cfg, err := ParseConfig([]byte(strings.Replace(minimal, "group_id = 18", "group_id = 18\nversion = 3", 1)))
	if err != nil {
		t.Fatal(err)
	}
	if r := cfg.Redundancy; r.Version != 3 || r.AdvertInterval != time.Second {
		t.Errorf("version 3 without advert_interval: %+v; want the 1 s default", r)
	}
	a := &Appliance{cfg: cfg, log: slog.New(slog.DiscardHandler)}
	if c := a.vrrpConfig(); c.Version != 3 || c.AdvertInterval != time.Second {
		t.Errorf("engine config: version %d, interval %v; want 3, 1s", c.Version, c.AdvertInterval)
	}
}

package appliance

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/pelletier/go-toml/v2"
)

// decodeServices decodes a document holding [[service]] tables and [redundancy] notify the
// way ParseConfig does (strictly) and validates them.
func decodeServices(t *testing.T, doc string) ([]ServiceConfig, []string, problems) {
	t.Helper()
	var raw struct {
		Service    []rawService `toml:"service"`
		Redundancy struct {
			Notify []string `toml:"notify"`
		} `toml:"redundancy"`
	}
	dec := toml.NewDecoder(bytes.NewReader([]byte(doc))).DisallowUnknownFields()
	if err := dec.Decode(&raw); err != nil {
		t.Fatalf("decode: %v", err)
	}
	var p problems
	svcs := validateServices(raw.Service, &p)
	notify := validateNotify(raw.Redundancy.Notify, &p)
	return svcs, notify, p
}

func TestServicesConfigDefaults(t *testing.T) {
	svcs, notify, p := decodeServices(t, `
[redundancy]
notify = ["/usr/local/bin/notify.sh", "--verbose"]

[[service]]
name = "mariadb"
start = ["systemctl", "start", "mariadb"]
stop = ["systemctl", "stop", "mariadb"]

[[service]]
name = "asterisk"
start = ["systemctl", "start", "asterisk"]
stop = ["systemctl", "stop", "asterisk"]
check = ["asterisk", "-rx", "core show uptime"]
drain_check = ["/usr/local/bin/calls-in-progress"]
timeout = "1m"
check_interval = "2s"
fall = 5
rise = 1
`)
	if len(p) > 0 {
		t.Fatalf("unexpected problems: %v", errors.Join(p...))
	}
	want := []ServiceConfig{
		{Name: "mariadb", Start: []string{"systemctl", "start", "mariadb"}, Stop: []string{"systemctl", "stop", "mariadb"},
			Timeout: 30 * time.Second, CheckInterval: 5 * time.Second, Fall: 3, Rise: 2},
		{Name: "asterisk", Start: []string{"systemctl", "start", "asterisk"}, Stop: []string{"systemctl", "stop", "asterisk"},
			Check: []string{"asterisk", "-rx", "core show uptime"}, DrainCheck: []string{"/usr/local/bin/calls-in-progress"},
			Timeout: time.Minute, CheckInterval: 2 * time.Second, Fall: 5, Rise: 1},
	}
	if diff := cmp.Diff(want, svcs); diff != "" {
		t.Errorf("services (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"/usr/local/bin/notify.sh", "--verbose"}, notify); diff != "" {
		t.Errorf("notify (-want +got):\n%s", diff)
	}
}

func TestServicesConfigNone(t *testing.T) {
	svcs, notify, p := decodeServices(t, "")
	if len(svcs) != 0 || notify != nil || len(p) != 0 {
		t.Errorf("empty document: services %v, notify %v, problems %v", svcs, notify, p)
	}
}

func TestServicesConfigUnknownKey(t *testing.T) {
	var raw struct {
		Service []rawService `toml:"service"`
	}
	doc := "[[service]]\nname = \"a\"\nstart = [\"true\"]\nstop = [\"true\"]\nrestart = [\"true\"]\n"
	err := toml.NewDecoder(strings.NewReader(doc)).DisallowUnknownFields().Decode(&raw)
	var strict *toml.StrictMissingError
	if !errors.As(err, &strict) || len(strict.Errors) != 1 || strings.Join(strict.Errors[0].Key(), ".") != "service.restart" {
		t.Errorf("strict decoding of an unknown service key: err = %v, want service.restart refused", err)
	}
}

func TestServicesConfigErrors(t *testing.T) {
	const ok = "start = [\"true\"]\nstop = [\"true\"]\n"
	tests := []struct {
		name string
		doc  string
		want []string // "key: fragment of the problem", one per problem, in order
	}{
		{"no name", "[[service]]\n" + ok, []string{"service[0].name: is required"}},
		{"bad name", "[[service]]\nname = \"my pbx\"\n" + ok, []string{"service[0].name: \"my pbx\": use letters"}},
		{"duplicate name", "[[service]]\nname = \"a\"\n" + ok + "[[service]]\nname = \"a\"\n" + ok,
			[]string{"service[1].name: \"a\" is already the name of service[0]"}},
		{"no start", "[[service]]\nname = \"a\"\nstop = [\"true\"]\n", []string{"service[0].start: is required"}},
		{"empty stop", "[[service]]\nname = \"a\"\nstart = [\"true\"]\nstop = []\n", []string{"service[0].stop: is required"}},
		{"empty program", "[[service]]\nname = \"a\"\nstart = [\"\", \"x\"]\nstop = [\"true\"]\n",
			[]string{"service[0].start: the program (first element) must not be empty"}},
		{"relative program", "[[service]]\nname = \"a\"\nstart = [\"./start.sh\"]\nstop = [\"true\"]\n",
			[]string{"service[0].start: \"./start.sh\": a program with a / must be an absolute path"}},
		{"relative check", "[[service]]\nname = \"a\"\n" + ok + "check = [\"bin/check\"]\n",
			[]string{"service[0].check: \"bin/check\""}},
		{"empty drain_check", "[[service]]\nname = \"a\"\n" + ok + "drain_check = []\n",
			[]string{"service[0].drain_check: the program (first element) must not be empty"}},
		{"timeout not a duration", "[[service]]\nname = \"a\"\n" + ok + "timeout = \"30\"\n",
			[]string{"service[0].timeout: \"30\" is not a duration"}},
		{"timeout too long", "[[service]]\nname = \"a\"\n" + ok + "[[service]]\nname = \"b\"\n" + ok + "timeout = \"2h\"\n",
			[]string{"service[1].timeout: 2h0m0s is out of range"}},
		{"interval too short", "[[service]]\nname = \"a\"\n" + ok + "check = [\"true\"]\ncheck_interval = \"10ms\"\n",
			[]string{"service[0].check_interval: 10ms is out of range"}},
		{"fall zero", "[[service]]\nname = \"a\"\n" + ok + "check = [\"true\"]\nfall = 0\n",
			[]string{"service[0].fall: 0 is out of range 1..100"}},
		{"rise too big", "[[service]]\nname = \"a\"\n" + ok + "check = [\"true\"]\nrise = 101\n",
			[]string{"service[0].rise: 101 is out of range 1..100"}},
		{"check settings without check", "[[service]]\nname = \"a\"\n" + ok + "check_interval = \"1s\"\nfall = 2\nrise = 2\n",
			[]string{"service[0].check_interval: has no effect without check", "service[0].fall: has no effect without check",
				"service[0].rise: has no effect without check"}},
		{"notify relative", "[redundancy]\nnotify = [\"notify.d/x\"]\n", []string{"redundancy.notify: \"notify.d/x\""}},
		{"notify empty program", "[redundancy]\nnotify = [\"\"]\n", []string{"redundancy.notify: the program (first element) must not be empty"}},
		{"several at once", "[[service]]\nstart = []\nstop = [\"x/y\"]\n",
			[]string{"service[0].name: is required", "service[0].start: is required", "service[0].stop: \"x/y\""}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, p := decodeServices(t, tt.doc)
			if len(p) != len(tt.want) {
				t.Fatalf("got %d problems, want %d:\n%v", len(p), len(tt.want), errors.Join(p...))
			}
			for i, err := range p {
				if !errors.Is(err, ErrConfig) {
					t.Errorf("problem %d does not wrap ErrConfig: %v", i, err)
				}
				if !strings.HasPrefix(err.Error(), tt.want[i]) {
					t.Errorf("problem %d = %q, want it to start with %q", i, err, tt.want[i])
				}
			}
		})
	}
}

func TestResolveProgram(t *testing.T) {
	got, err := resolveProgram("service[0].start", []string{"sh", "-c", "exit 0"})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(got[0], "/") || got[1] != "-c" || got[2] != "exit 0" {
		t.Errorf("resolveProgram(sh) = %q, want an absolute sh and the same arguments", got)
	}
	_, err = resolveProgram("service[3].check", []string{"/nonexistent/redundantd-check"})
	var ce *ConfigError
	if !errors.As(err, &ce) || ce.Key != "service[3].check" || !errors.Is(err, ErrConfig) {
		t.Errorf("resolveProgram(missing) = %v, want a ConfigError naming service[3].check", err)
	}
	_, err = resolveProgram("redundancy.notify", []string{"redundantd-no-such-program"})
	if err == nil || !strings.Contains(err.Error(), "redundantd-no-such-program") {
		t.Errorf("resolveProgram(not in PATH) = %v, want the program named", err)
	}
}

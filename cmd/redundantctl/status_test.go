package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/redundantd/redundantd/appliance"
	"github.com/redundantd/redundantd/testlab/memwire"
	"github.com/redundantd/redundantd/testlab/poll"
	"github.com/redundantd/redundantd/testlab/tlscert"
	"github.com/redundantd/redundantd/vrrp"
)

// startDaemon runs a real appliance (redundancy disabled, so no engine is needed) with its
// API on a loopback listener, and returns the API address and the token file. extra is
// added to the configuration.
func startDaemon(t *testing.T, extra ...string) (string, string) {
	t.Helper()
	dir := t.TempDir()
	cfg, err := appliance.ParseConfig([]byte(`[node]
id = "pbx-a"
interface = "eth0"
address = "192.0.2.11"
state_dir = "` + dir + `"
[redundancy]
enabled = false
` + strings.Join(extra, "\n")))
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a, err := appliance.New(cfg, appliance.Options{APIListener: ln})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return ln.Addr().String(), filepath.Join(dir, "api.token")
}

// apictl runs one redundantctl API command and returns its exit status and output.
func apictl(t *testing.T, name string, args []string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	var f func(ctx context.Context, c *apiClient, args []string) int
	switch name {
	case "status":
		f = cmdStatus
	case "events":
		f = cmdEvents
	case "mode":
		f = cmdMode
	case "swap":
		f = cmdSwap
	case "sync":
		f = cmdSync
	}
	code := runAPI(context.Background(), name, args, &out, &errOut, f)
	return code, out.String(), errOut.String()
}

func TestCtlAgainstTheDaemon(t *testing.T) {
	api, tok := startDaemon(t)
	waitToken(t, tok)
	common := []string{"-api", api, "-token-file", tok}

	code, out, errOut := apictl(t, "status", common)
	if code != 0 || !strings.Contains(out, "this node") || !strings.Contains(out, "pbx-a") || !strings.Contains(out, "disabled") {
		t.Fatalf("status: %d\n%s%s", code, out, errOut)
	}
	code, out, _ = apictl(t, "status", append(common, "-json"))
	var st appliance.StatusResponse
	if code != 0 || json.Unmarshal([]byte(out), &st) != nil || st.NodeID != "pbx-a" || st.BackupMode != "active" {
		t.Fatalf("status -json: %d %s", code, out)
	}

	// mode: a bad word is a usage error; without the token the daemon refuses (exit 1).
	if code, _, _ := apictl(t, "mode", append(common, "sleepy")); code != 2 {
		t.Errorf("mode sleepy: exit %d, want 2", code)
	}
	code, _, errOut = apictl(t, "mode", []string{"-api", api, "-token-file", filepath.Join(t.TempDir(), "none"), "passive"})
	if code != 1 || !strings.Contains(errOut, "401") {
		t.Errorf("mode without a token: exit %d %s", code, errOut)
	}
	code, out, errOut = apictl(t, "mode", append(common, "passive"))
	if code != 0 || !strings.Contains(out, "backup mode passive") {
		t.Fatalf("mode passive: %d %s %s", code, out, errOut)
	}

	// swap on a node that is not Master: refused with the reason, exit 1.
	code, out, errOut = apictl(t, "swap", common)
	if code != 1 || !strings.Contains(out+errOut, "not Master") {
		t.Errorf("swap: exit %d\n%s%s", code, out, errOut)
	}
	// sync with replication off: exit 1 with the reason.
	if code, _, errOut = apictl(t, "sync", common); code != 1 || !strings.Contains(errOut, "not enabled") {
		t.Errorf("sync: exit %d %s", code, errOut)
	}

	// events: the mode change is there; events read marks everything.
	code, out, _ = apictl(t, "events", common)
	if code != 0 || !strings.Contains(out, "mode changed") || !strings.Contains(out, "new") {
		t.Fatalf("events: %d\n%s", code, out)
	}
	code, out, _ = apictl(t, "events", append(common, "read"))
	if code != 0 || !strings.Contains(out, "marked read") {
		t.Fatalf("events read: %d %s", code, out)
	}
	code, out, _ = apictl(t, "events", append(common, "-json"))
	var evs []appliance.Event
	if code != 0 || json.Unmarshal([]byte(out), &evs) != nil || len(evs) == 0 {
		t.Fatalf("events -json: %d %s", code, out)
	}
	for _, e := range evs {
		if e.Status != appliance.StatusRead {
			t.Errorf("event %d is %s after events read", e.Seq, e.Status)
		}
	}
}

// waitToken waits for the daemon to have written its token (New does, before Run).
func waitToken(t *testing.T, path string) {
	t.Helper()
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("token file: %v", err)
	}
}

func TestCtlDaemonDown(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	code, _, errOut := apictl(t, "status", []string{"-api", addr})
	if code != 1 || !strings.Contains(errOut, "is redundantd running?") {
		t.Errorf("status with no daemon: exit %d %s", code, errOut)
	}
}

// TestCtlOverTLS: with console.tls_cert the API speaks HTTPS; -cacert trusts the daemon's
// certificate, and without it the connection is refused.
func TestCtlOverTLS(t *testing.T) {
	cert, key, _ := tlscert.Files(t, t.TempDir())
	api, tok := startDaemon(t, "[console]", `tls_cert = "`+cert+`"`, `tls_key = "`+key+`"`)
	waitToken(t, tok)
	code, out, errOut := apictl(t, "mode", []string{"-api", "https://" + api, "-token-file", tok, "-cacert", cert, "passive"})
	if code != 0 || !strings.Contains(out, "passive") {
		t.Fatalf("mode over TLS: exit %d %s%s", code, out, errOut)
	}
	if code, _, errOut := apictl(t, "status", []string{"-api", "https://" + api, "-token-file", tok}); code != 1 || !strings.Contains(errOut, "certificate") {
		t.Fatalf("status over TLS without -cacert: exit %d %s", code, errOut)
	}
	if code, _, errOut := apictl(t, "status", []string{"-api", "https://" + api, "-cacert", tok}); code != 2 || !strings.Contains(errOut, "no PEM certificate") {
		t.Fatalf("-cacert with a file that is not a certificate: exit %d %s", code, errOut)
	}
}

// startGroupDaemon runs an appliance with two groups, [redundancy] on eth0 and a
// [[redundancy.group]] on eth1, whose engines are real Routers on the in-memory segments lan
// and wan; node i is pbx-a (i 0) or pbx-b, with priority prio. It returns the appliance and
// its API address.
func startGroupDaemon(t *testing.T, lan, wan *memwire.Segment, i, prio int) (*appliance.Appliance, string) {
	t.Helper()
	dir := t.TempDir()
	cfg, err := appliance.ParseConfig([]byte(fmt.Sprintf(`[node]
id = "pbx-%c"
interface = "eth0"
address = "192.0.2.1%d"
state_dir = %q
[redundancy]
group_id = 18
priority = %d
preempt = true
virtual_ips = ["192.0.2.100/24"]
[[redundancy.group]]
interface = "eth1"
address = "198.51.100.1%d"
group_id = 18
version = 3
advert_interval = "100ms"
virtual_ips = ["198.51.100.100/24"]
`, 'a'+i, i+1, dir, prio, i+1)))
	if err != nil {
		t.Fatal(err)
	}
	segs := map[string]*memwire.Segment{"eth0": lan, "eth1": wan}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a, err := appliance.New(cfg, appliance.Options{APIListener: ln, DialVRRP: func(c vrrp.Config) (appliance.Router, error) {
		m := segs[c.Interface].Join(cfg.Node.ID, c.Primary)
		return vrrp.New(c, m, m, m)
	}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return a, ln.Addr().String()
}

// statusTimes matches what changes from run to run in redundantctl status: times, the
// uptime and the transition count.
var statusTimes = regexp.MustCompile(`\d{4}-\d\d-\d\d[T ][0-9:.]+Z?|\d+ transitions`)

// TestCtlStatusGroups: redundantctl status of a node with two groups shows the unit's role,
// each group (interface, VRID, version, priority, state, virtual IPs, held ones, Master) and
// why the unit left Master, decoded from the API's own StatusResponse.
func TestCtlStatusGroups(t *testing.T) {
	lan, wan := memwire.New(), memwire.New()
	b, api := startGroupDaemon(t, lan, wan, 1, 100)
	poll.Until(t, 5*time.Second, "pbx-b master of the unit", func() bool { return b.Status().State == "master" })
	a, _ := startGroupDaemon(t, lan, wan, 0, 200) // preempts pbx-b's unit
	poll.Until(t, 10*time.Second, "pbx-a master, pbx-b's groups backup knowing pbx-a as Master", func() bool {
		gs := b.Status().Groups
		return a.Status().State == "master" && b.Status().State == "backup" && len(gs) == 2 &&
			gs[0].MasterIP == "192.0.2.11" && gs[1].MasterIP == "198.51.100.11"
	})
	code, out, errOut := apictl(t, "status", []string{"-api", api})
	if code != 0 {
		t.Fatalf("status: exit %d %s", code, errOut)
	}
	_, tail, ok := strings.Cut(out, "\nunit of")
	if !ok {
		t.Fatalf("status has no unit section:\n%s", out)
	}
	got := statusTimes.ReplaceAllString("unit of"+tail, "T")
	// The reason names the group whose preemption moved the unit: either one.
	got = regexp.MustCompile(`group eth[01]/18: .*`).ReplaceAllString(got, "group G: R")
	want := `unit of 2 groups: backup since T, T
  group    interface  vrid  version  priority  state   virtual IPs        holding  master
  eth0/18  eth0       18    2        100       backup  192.0.2.100/24     -        192.0.2.11
  eth1/18  eth1       18    3        100       backup  198.51.100.100/24  -        198.51.100.11
left master at T (master -> backup, preempted by higher priority): group G: R
`
	if got != want {
		t.Errorf("status with groups:\n%s\nwant:\n%s\nfull output:\n%s", got, want, out)
	}
	// -json is the API's own body: it decodes into the API's type with the same groups.
	code, out, _ = apictl(t, "status", []string{"-api", api, "-json"})
	var st appliance.StatusResponse
	if code != 0 || json.Unmarshal([]byte(out), &st) != nil || len(st.Groups) != 2 || st.Groups[1].Version != 3 ||
		st.LeftMaster == nil || st.LeftMaster.Cause != vrrp.CausePreempted.String() {
		t.Errorf("status -json: exit %d, groups %+v, left_master %+v", code, st.Groups, st.LeftMaster)
	}
}

// A group at fault is named under the table, once (not again as the unit's fault).
func TestPrintStatusGroupFault(t *testing.T) {
	st := appliance.StatusResponse{NodeID: "pbx-a", State: "initialize", Fault: "group eth1/52: interface eth1 has no carrier",
		Since: "2026-12-02T02:50:48.219Z", Transitions: 3, Groups: []appliance.GroupStatus{
			{Name: "eth0/51", Interface: "eth0", GroupID: 51, Version: 2, State: "backup", Priority: 100, MasterIP: "192.0.2.12",
				VirtualIPs: []string{"192.0.2.100/24"}, Holding: []string{}},
			{Name: "eth1/52", Interface: "eth1", GroupID: 52, Version: 3, State: "initialize", Priority: 100,
				VirtualIPs: []string{"198.51.100.100/24"}, Holding: []string{}, Fault: "interface eth1 has no carrier"},
		}}
	var b bytes.Buffer
	printStatus(&b, st)
	_, got, _ := strings.Cut(b.String(), "\nunit of")
	want := ` 2 groups: initialize since 2026-12-02T02:50:48.219Z, 3 transitions
  group    interface  vrid  version  priority  state       virtual IPs        holding  master
  eth0/51  eth0       51    2        100       backup      192.0.2.100/24     -        192.0.2.12
  eth1/52  eth1       52    3        100       initialize  198.51.100.100/24  -        -
fault: group eth1/52: interface eth1 has no carrier
`
	if got != want {
		t.Errorf("status:\n%s\nwant:\n%s", got, want)
	}
}

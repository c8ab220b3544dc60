package appliance

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redundantd/redundantd/testlab/memwire"
	"github.com/redundantd/redundantd/testlab/poll"
	"github.com/redundantd/redundantd/vrrp"
)

// node is one appliance of a two-node group on an in-memory segment: a real VRRP engine,
// the real peer link over loopback, and its API served as in production.
type node struct {
	a      *Appliance
	router *vrrp.Router
	member *memwire.Member
	api    string
	runner
}

// runner runs an Appliance of a test until stop or the test's end.
type runner struct {
	cancel context.CancelFunc
	done   chan error
}

// run starts a.Run and stops it when the test ends.
func (r *runner) run(t *testing.T, a *Appliance) {
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel, r.done = cancel, make(chan error, 1)
	go func() { r.done <- a.Run(ctx) }()
	t.Cleanup(r.stop)
}

// stop ends the run and waits for it; a second stop does nothing.
func (r *runner) stop() {
	if r.cancel != nil {
		r.cancel()
		<-r.done
		r.cancel = nil
	}
}

var vip = netip.MustParsePrefix("192.0.2.100/24")

// twoNodes starts node 0 (priority 200) until it is Master, then node 1 (priority 100) as
// its Backup, and waits until the peer link is up on both.
func twoNodes(t *testing.T, edit func(i int, cfg *Config)) (*memwire.Segment, [2]*node) {
	t.Helper()
	return twoNodesWith(t, edit, nil)
}

// twoNodesWith is twoNodes with per-node Options (listeners the test made).
func twoNodesWith(t *testing.T, edit func(i int, cfg *Config), opts func(i int, o *Options)) (*memwire.Segment, [2]*node) {
	t.Helper()
	seg := memwire.New()
	addrs := []string{"192.0.2.11", "192.0.2.12"}
	var peerLns [2]net.Listener
	var cfgs [2]*Config
	for i := range 2 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		peerLns[i] = ln
		toml := fmt.Sprintf("[node]\nid = \"pbx-%c\"\ninterface = \"eth0\"\naddress = %q\n[redundancy]\ngroup_id = 18\n"+
			"priority = %d\npreempt = true\nvirtual_ips = [%q]\npeer = %q\n", 'a'+i, addrs[i], 200-100*i, vip, addrs[1-i])
		cfg, err := ParseConfig([]byte(toml))
		if err != nil {
			t.Fatal(err)
		}
		cfg.Node.StateDir = t.TempDir()
		cfg.API.TokenFile = filepath.Join(cfg.Node.StateDir, "api.token")
		cfgs[i] = cfg
	}
	for i := range 2 {
		fp, err := Fingerprint(cfgs[1-i])
		if err != nil {
			t.Fatal(err)
		}
		cfgs[i].Sync.PeerFingerprint = fp
		cfgs[i].Peer = PeerLinkConfig{Enabled: true, Listen: peerLns[i].Addr().String(),
			Address: peerLns[1-i].Addr().String(), Interval: 100 * time.Millisecond}
		if edit != nil {
			edit(i, cfgs[i])
		}
	}
	var nodes [2]*node
	for i := range 2 {
		var extra []func(*Options)
		if opts != nil {
			extra = append(extra, func(o *Options) { opts(i, o) })
		}
		nodes[i] = startNode(t, seg, cfgs[i], peerLns[i], extra...)
		want := "master"
		if i == 1 {
			want = "backup"
		}
		poll.Until(t, 5*time.Second, fmt.Sprintf("node %d %s", i, want), func() bool { return nodes[i].a.role() == want })
	}
	poll.Until(t, 5*time.Second, "the peer link", func() bool {
		return nodes[0].a.peerView().Role == "backup" && nodes[1].a.peerView().Role == "master"
	})
	return seg, nodes
}

func startNode(t *testing.T, seg *memwire.Segment, cfg *Config, peerLn net.Listener, extra ...func(*Options)) *node {
	t.Helper()
	n := &node{member: seg.Join(cfg.Node.ID, cfg.Node.Address)}
	opts := Options{
		PeerListener: peerLn,
		DialVRRP: func(c vrrp.Config) (Router, error) {
			r, err := vrrp.New(c, n.member, n.member, n.member)
			n.router = r
			return r, err
		},
	}
	for _, f := range extra {
		f(&opts)
	}
	if opts.APIListener == nil {
		apiLn, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		opts.APIListener = apiLn
	}
	n.api = "http://" + opts.APIListener.Addr().String()
	a, err := New(cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	n.a = a
	n.run(t, a)
	return n
}

// call sends an API request with the node's token (unless token is "-") and decodes the
// answer into out; it returns the status code.
func (n *node) call(t *testing.T, method, path, body string, out any, token string) int {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, n.api+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if token == "" {
		token = n.a.guard.token
	}
	if token != "-" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil {
		if err := json.NewDecoder(bytes.NewReader(b)).Decode(out); err != nil {
			t.Fatalf("%s %s: %s: %v", method, path, b, err)
		}
	}
	return resp.StatusCode
}

func eventNames(a *Appliance) []string {
	var out []string
	for _, e := range a.events.log.all() {
		out = append(out, e.Name)
	}
	return out
}

// TestModeAndSwap walks the seed's operator workflow on two real engines: the Master sees
// its Backup UP, the Backup is set Passive from the Master, a swap hands the role over (the
// old Master does not preempt back although its priority is higher), the mode stays with
// the group's Backup, and a swap back restores the first layout.
func TestModeAndSwap(t *testing.T) {
	seg, n := twoNodes(t, nil)
	poll.Until(t, 5*time.Second, "the Backup's UP event", func() bool { return slices.Contains(eventNames(n[0].a), "up active") })

	// A change without the token changes nothing.
	if code := n[0].call(t, "PUT", "/api/v1/backup-mode", `{"mode":"passive"}`, nil, "-"); code != http.StatusUnauthorized {
		t.Fatalf("backup-mode without the token: %d, want 401", code)
	}
	if code := n[0].call(t, "POST", "/api/v1/swap", `{}`, nil, strings.Repeat("0", 64)); code != http.StatusUnauthorized {
		t.Fatalf("swap with a wrong token: %d, want 401", code)
	}
	if n[0].a.role() != "master" || n[0].a.mode().Mode != ModeActive {
		t.Fatalf("a refused request changed something: role %s, mode %s", n[0].a.role(), n[0].a.mode().Mode)
	}

	// The mode set on the Master reaches the Backup.
	var mr BackupModeResponse
	if code := n[0].call(t, "PUT", "/api/v1/backup-mode", `{"mode":"passive"}`, &mr, ""); code != http.StatusOK || mr.Peer != "confirmed" {
		t.Fatalf("backup-mode: %d %+v", code, mr)
	}
	if m := n[1].a.mode().Mode; m != ModePassive || !n[1].router.Status().Passive {
		t.Fatalf("the Backup's mode is %s (engine passive %t), want passive", m, n[1].router.Status().Passive)
	}
	poll.Until(t, 5*time.Second, "the Backup's UP (Passive mode) event", func() bool { return slices.Contains(eventNames(n[0].a), "up passive") })

	// A swap asked of the Backup is refused.
	var res SwapResult
	if code := n[1].call(t, "POST", "/api/v1/swap", `{}`, &res, ""); code != http.StatusConflict || !strings.Contains(res.Error, "not Master") {
		t.Fatalf("swap on the Backup: %d %+v", code, res)
	}
	// The swap on the Master, to the Passive Backup.
	if code := n[0].call(t, "POST", "/api/v1/swap", `{}`, &res, ""); code != http.StatusOK || res.State != "done" {
		t.Fatalf("swap: %d %+v", code, res)
	}
	t.Logf("swap timeline: %+v", res.Timeline)
	if n[1].a.role() != "master" || n[0].a.role() != "backup" {
		t.Fatalf("after the swap: node 0 %s, node 1 %s", n[0].a.role(), n[1].a.role())
	}
	if h := seg.Holders(vip); !slices.Equal(h, []string{"pbx-b"}) {
		t.Fatalf("virtual IP held by %v after the swap, want pbx-b", h)
	}
	// The old Master (priority 200, preempt on) stays Backup, and Passive: the group's mode.
	time.Sleep(2500 * time.Millisecond) // two advert intervals of the new Master
	if n[0].a.role() != "backup" || !n[0].router.Status().Passive {
		t.Fatalf("2.5 s after the swap node 0 is %s (passive %t); it must stay a Passive Backup", n[0].a.role(), n[0].router.Status().Passive)
	}
	// And back.
	if code := n[1].call(t, "POST", "/api/v1/swap", `{}`, &res, ""); code != http.StatusOK || res.State != "done" {
		t.Fatalf("swap back: %d %+v", code, res)
	}
	if h := seg.Holders(vip); n[0].a.role() != "master" || !slices.Equal(h, []string{"pbx-a"}) {
		t.Fatalf("after the swap back: node 0 %s, holders %v", n[0].a.role(), h)
	}
	for _, name := range []string{"swap started", "swap done", "mode changed"} {
		if !slices.Contains(eventNames(n[0].a), name) {
			t.Errorf("node 0's events lack %q: %v", name, eventNames(n[0].a))
		}
	}
}

// TestPassiveBackupDoesNotTakeOver: with the Master gone, a Passive Backup stays Backup; set
// Active, it takes over.
func TestPassiveBackupDoesNotTakeOver(t *testing.T) {
	seg, n := twoNodes(t, nil)
	if code := n[0].call(t, "PUT", "/api/v1/backup-mode", `{"mode":"passive"}`, nil, ""); code != http.StatusOK {
		t.Fatalf("backup-mode passive: %d", code)
	}
	n[0].member.Cut(true) // the Master's cable is pulled
	n[0].stop()
	time.Sleep(4500 * time.Millisecond) // past Master_Down_Interval (3.6 s)
	if n[1].a.role() != "backup" {
		t.Fatalf("the Passive Backup is %s with the Master gone", n[1].a.role())
	}
	var mr BackupModeResponse
	if code := n[1].call(t, "PUT", "/api/v1/backup-mode", `{"mode":"active"}`, &mr, ""); code != http.StatusOK {
		t.Fatalf("backup-mode active: %d %+v", code, mr)
	}
	poll.Until(t, 5*time.Second, "the now Active Backup takes over", func() bool { return n[1].a.role() == "master" })
	if h := seg.Holders(vip); !slices.Equal(h, []string{"pbx-b"}) {
		t.Errorf("holders %v", h)
	}
	if !slices.Contains(eventNames(n[1].a), "became master") {
		t.Errorf("events %v", eventNames(n[1].a))
	}
}

// TestPassiveNodeAloneSaysSo: a node whose group mode is Passive, that was a Backup when it
// stopped, starts, hears no Master, stays Backup and raises the event the issue asks for.
func TestPassiveNodeAloneSaysSo(t *testing.T) {
	seg := memwire.New()
	cfg := testConfig(t)
	if err := saveNodeState(cfg.Node.StateDir, nodeState{Mode: modeRecord{ModePassive, time.Now(), "test"}, LastRole: "backup"}); err != nil {
		t.Fatal(err)
	}
	n := startNode(t, seg, cfg, nil)
	poll.Until(t, 10*time.Second, "the passive-no-master event", func() bool { return slices.Contains(eventNames(n.a), "passive no master") })
	if n.a.role() != "backup" || len(seg.Holders(vip)) != 0 {
		t.Errorf("the lone Passive node is %s, holders %v", n.a.role(), seg.Holders(vip))
	}
}

// TestSwapDrainsAndCanBeCancelled: a swap with a drain waits while drain_check reports calls,
// is shown as pending, and a cancel leaves the Master as it was with its service running.
func TestSwapDrainsAndCanBeCancelled(t *testing.T) {
	dir := t.TempDir()
	calls := filepath.Join(dir, "calls")
	marker := func(i int) string { return filepath.Join(dir, fmt.Sprintf("running%d", i)) }
	_, n := twoNodes(t, func(i int, cfg *Config) {
		cfg.Services = []ServiceConfig{{Name: "pbx",
			Start:      []string{"sh", "-c", "touch " + marker(i)},
			Stop:       []string{"sh", "-c", "rm -f " + marker(i)},
			DrainCheck: []string{"sh", "-c", "test -e " + calls + " && { echo 2; exit 1; }; exit 0"},
			Timeout:    5 * time.Second, CheckInterval: DefaultCheckInterval, Fall: 3, Rise: 2}}
	})
	poll.Until(t, 5*time.Second, "the PBX on the Master", func() bool { _, err := os.Stat(marker(0)); return err == nil })
	if err := os.WriteFile(calls, nil, 0o600); err != nil { // two calls in progress
		t.Fatal(err)
	}
	result := make(chan SwapResult, 1)
	go func() {
		var res SwapResult
		n[0].call(t, "POST", "/api/v1/swap", `{"drain":"1m"}`, &res, "")
		result <- res
	}()
	poll.Until(t, 5*time.Second, "the swap pending", func() bool { s := n[0].a.LastSwap(); return s != nil && s.State == "pending" })
	if code := n[0].call(t, "DELETE", "/api/v1/swap", "", nil, ""); code != http.StatusOK {
		t.Fatalf("cancel: %d", code)
	}
	res := <-result
	if res.State != "cancelled" || n[0].a.role() != "master" {
		t.Fatalf("after the cancel: %+v, role %s", res, n[0].a.role())
	}
	if _, err := os.Stat(marker(0)); err != nil {
		t.Errorf("the Master's service is not running after the cancelled swap: %v", err)
	}
	// The calls end: a drained swap goes through.
	if err := os.Remove(calls); err != nil {
		t.Fatal(err)
	}
	var done SwapResult
	if code := n[0].call(t, "POST", "/api/v1/swap", `{"drain":"1m"}`, &done, ""); code != http.StatusOK || done.State != "done" {
		t.Fatalf("drained swap: %d %+v", code, done)
	}
	if len(done.Timeline) == 0 || done.Timeline[0].Step != "drain" || done.Timeline[0].Detail != "no call in progress" {
		t.Errorf("timeline %+v", done.Timeline)
	}
	poll.Until(t, 5*time.Second, "the PBX on the new Master only", func() bool {
		_, e0 := os.Stat(marker(0))
		_, e1 := os.Stat(marker(1))
		return e0 != nil && e1 == nil
	})
}

func TestMayResign(t *testing.T) {
	healthyBackup := PeerView{Connected: true, Role: "backup", BackupMode: "active"}
	tests := []struct {
		name      string
		unhealthy string
		role      string
		peer      func(PeerView) PeerView
		want      bool
	}{
		{"healthy Master stays", "", "master", func(v PeerView) PeerView { return v }, false},
		{"failed Master, healthy Active Backup", "service pbx failed", "master", func(v PeerView) PeerView { return v }, true},
		{"a Backup has nothing to give", "service pbx failed", "backup", func(v PeerView) PeerView { return v }, false},
		{"peer link down", "service pbx failed", "master", func(v PeerView) PeerView { v.Connected = false; return v }, false},
		{"Passive Backup", "service pbx failed", "master", func(v PeerView) PeerView { v.BackupMode = "passive"; return v }, false},
		{"Backup's PBX fails too", "service pbx failed", "master", func(v PeerView) PeerView { v.Unhealthy = "service pbx failed"; return v }, false},
		{"peer is not Backup", "service pbx failed", "master", func(v PeerView) PeerView { v.Role = "initialize"; return v }, false},
	}
	for _, tc := range tests {
		if got := mayResign(tc.unhealthy, tc.role, tc.peer(healthyBackup)); got != tc.want {
			t.Errorf("%s: mayResign = %t, want %t", tc.name, got, tc.want)
		}
	}
}

// TestFailedServiceHandsOver: the Master's PBX fails its check `fall` times; the node gives
// the role to the healthy Active Backup (priority-0 advert), which starts its PBX; the old
// Master does not take the role back although its priority is higher.
func TestFailedServiceHandsOver(t *testing.T) {
	dir := t.TempDir()
	broken := filepath.Join(dir, "broken")
	marker := func(i int) string { return filepath.Join(dir, fmt.Sprintf("running%d", i)) }
	seg, n := twoNodes(t, func(i int, cfg *Config) {
		cfg.Services = []ServiceConfig{{Name: "pbx",
			Start:   []string{"sh", "-c", "touch " + marker(i)},
			Stop:    []string{"sh", "-c", "rm -f " + marker(i)},
			Check:   []string{"sh", "-c", fmt.Sprintf("test -e %s && ! test -e %s.%d", marker(i), broken, i)},
			Timeout: 5 * time.Second, CheckInterval: 100 * time.Millisecond, Fall: 3, Rise: 2}}
	})
	poll.Until(t, 5*time.Second, "the PBX on the Master", func() bool { _, err := os.Stat(marker(0)); return err == nil })
	if err := os.WriteFile(broken+".0", nil, 0o600); err != nil { // the Master's PBX crashes
		t.Fatal(err)
	}
	poll.Until(t, 10*time.Second, "the Backup taking over", func() bool { return n[1].a.role() == "master" })
	poll.Until(t, 5*time.Second, "the PBX on the new Master only", func() bool {
		_, e0 := os.Stat(marker(0))
		_, e1 := os.Stat(marker(1))
		return e0 != nil && e1 == nil
	})
	if h := seg.Holders(vip); !slices.Equal(h, []string{"pbx-b"}) {
		t.Errorf("holders %v", h)
	}
	if !slices.Contains(eventNames(n[0].a), "resigned") || !slices.Contains(eventNames(n[0].a), "unhealthy") {
		t.Errorf("node 0 events %v", eventNames(n[0].a))
	}
	time.Sleep(2500 * time.Millisecond) // two adverts of the new Master
	if n[0].a.role() != "backup" {
		t.Errorf("the failed node took the role back: %s", n[0].a.role())
	}
}

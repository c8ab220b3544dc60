package appliance

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/redundantd/redundantd/testlab/memwire"
	"github.com/redundantd/redundantd/testlab/poll"
	"github.com/redundantd/redundantd/vrrp"
)

// groupNode is one appliance with two groups, on a LAN and a WAN in-memory segment.
type groupNode struct {
	a *Appliance
	runner
}

var wanVIP = netip.MustParsePrefix("198.51.100.100/24")

// groupNodeConfig is the configuration of node i of a two-group pair: pbx-a (i 0, priority
// 200) or pbx-b (i 1, priority 100), with a LAN group on eth0 and a WAN group on eth1, its own
// state directory and API token; with peer, [redundancy] names the other node as its peer.
func groupNodeConfig(t *testing.T, i int, peer bool) *Config {
	t.Helper()
	peerLine := ""
	if peer {
		peerLine = fmt.Sprintf("peer = \"192.0.2.1%d\"\n", 2-i)
	}
	doc := fmt.Sprintf(`[node]
id = "pbx-%c"
interface = "eth0"
address = "192.0.2.1%d"
[redundancy]
group_id = 18
priority = %d
preempt = true
%svirtual_ips = [%q]
[[redundancy.group]]
interface = "eth1"
address = "198.51.100.1%d"
group_id = 18
virtual_ips = [%q]
`, 'a'+i, i+1, 200-100*i, peerLine, vip, i+1, wanVIP)
	cfg, err := ParseConfig([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	cfg.Node.StateDir = t.TempDir()
	cfg.API.TokenFile = filepath.Join(cfg.Node.StateDir, "api.token")
	return cfg
}

func startGroupNode(t *testing.T, lan, wan *memwire.Segment, i int) *groupNode {
	t.Helper()
	cfg := groupNodeConfig(t, i, false)
	segs := map[string]*memwire.Segment{"eth0": lan, "eth1": wan}
	apiLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	n := &groupNode{}
	n.a, err = New(cfg, Options{
		APIListener: apiLn,
		DialVRRP: func(c vrrp.Config) (Router, error) {
			m := segs[c.Interface].Join(fmt.Sprintf("pbx-%c", 'a'+i), c.Primary)
			return vrrp.New(c, m, m, m)
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	n.run(t, n.a)
	return n
}

// The appliance sees the unit's one role: node a becomes Master of both groups; when it
// stops, both groups resign and node b takes both. Each group's transitions are in the event
// log, named, beside the unit's "became ..." events.
func TestApplianceGroupsMoveTogether(t *testing.T) {
	lan, wan := memwire.New(), memwire.New()
	a := startGroupNode(t, lan, wan, 0)
	poll.Until(t, 5*time.Second, "a master", func() bool { return a.a.role() == "master" })
	b := startGroupNode(t, lan, wan, 1)
	poll.Until(t, 5*time.Second, "b backup", func() bool { return b.a.role() == "backup" })
	if got := lan.Holders(vip); !slices.Equal(got, []string{"pbx-a"}) {
		t.Errorf("LAN VIP held by %v", got)
	}
	if got := wan.Holders(wanVIP); !slices.Equal(got, []string{"pbx-a"}) {
		t.Errorf("WAN VIP held by %v", got)
	}
	// The groups publish their status after the unit's role change.
	poll.Until(t, 5*time.Second, "a's status: master holding both VIPs", func() bool {
		s := a.a.Status()
		return s.State == "master" && len(s.Holding) == 2
	})
	gs := a.a.Status().Groups
	if len(gs) != 2 || gs[0].Name != "eth0/18" || gs[1].Name != "eth1/18" || gs[0].State != "master" || gs[1].State != "master" ||
		len(gs[1].Holding) != 1 || gs[1].Holding[0] != wanVIP.String() {
		t.Errorf("a's groups: %+v; want eth0/18 and eth1/18, both master, eth1 holding %s", gs, wanVIP)
	}
	a.stop()
	poll.Until(t, 5*time.Second, "b master", func() bool { return b.a.role() == "master" })
	poll.Until(t, 5*time.Second, "b holds both VIPs", func() bool {
		return slices.Equal(lan.Holders(vip), []string{"pbx-b"}) && slices.Equal(wan.Holders(wanVIP), []string{"pbx-b"})
	})
	var log []string
	for _, e := range b.a.events.log.all() {
		if e.Application == AppRedundancy && (strings.HasPrefix(e.Name, "group ") || strings.HasPrefix(e.Name, "became ")) {
			log = append(log, e.Name+": "+e.Description)
		}
	}
	// b's unit became Master by the first group that heard a's priority-0 advert.
	var became, lanGroup, wanGroup bool
	for _, l := range log {
		became = became || strings.HasPrefix(l, "became master: backup -> master: group eth")
		lanGroup = lanGroup || strings.HasPrefix(l, "group master: group eth0/18: backup -> master")
		wanGroup = wanGroup || strings.HasPrefix(l, "group master: group eth1/18: backup -> master")
	}
	if !became || !lanGroup || !wanGroup {
		t.Errorf("b's event log: %q; want both groups' transitions and the unit's", log)
	}
	// The metrics: each group under its name, the unit's role changes under "unit"; a
	// resigned in both groups and b heard it in both.
	page := metricsPage(t, b.a)
	for _, want := range []string{
		`redundantd_vrrp_state{group="eth0/18",state="master"} 1`,
		`redundantd_vrrp_state{group="eth1/18",state="master"} 1`,
		`redundantd_vrrp_priority_zero_received_total{group="eth0/18"} 1`,
		`redundantd_vrrp_priority_zero_received_total{group="eth1/18"} 1`,
		`redundantd_vrrp_virtual_ips_held{group="eth1/18"} 1`,
		`redundantd_vrrp_passive{group="unit"} 0`,
		`redundantd_vrrp_transitions_total{cause="`,
	} {
		if !strings.Contains(page, want) {
			t.Errorf("b's metrics lack %s:\n%s", want, page)
		}
	}
	if strings.Contains(page, `group="18"`) {
		t.Errorf("b's metrics name a group by its ID alone:\n%s", page)
	}
	if page := metricsPage(t, a.a); !strings.Contains(page, `redundantd_vrrp_priority_zero_sent_total{group="eth0/18"} 1`) ||
		!strings.Contains(page, `redundantd_vrrp_priority_zero_sent_total{group="eth1/18"} 1`) {
		t.Errorf("a's metrics after it stopped: want one priority-0 advert sent in each group:\n%s", page)
	}
}

// metricsPage is the appliance's /metrics page.
func metricsPage(t *testing.T, a *Appliance) string {
	t.Helper()
	rec := httptest.NewRecorder()
	a.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("GET /metrics: %d %s", rec.Code, rec.Body)
	}
	return rec.Body.String()
}

// The API's status of a node with groups: every group with its interface, VRID, version,
// priority, state, configured and held virtual IPs and Master, and why the unit left Master
// (here: preempted by the peer's higher priority, as the JSON says in snake_case).
func TestApplianceGroupsStatusJSON(t *testing.T) {
	lan, wan := memwire.New(), memwire.New()
	b := startGroupNode(t, lan, wan, 1) // priority 100: Master alone
	poll.Until(t, 5*time.Second, "b master", func() bool { return b.a.role() == "master" })
	if b.a.Status().LeftMaster != nil {
		t.Fatalf("left_master %+v before b ever left Master", b.a.Status().LeftMaster)
	}
	a := startGroupNode(t, lan, wan, 0) // priority 200 with preempt: takes the unit
	poll.Until(t, 5*time.Second, "a master, b backup", func() bool { return a.a.role() == "master" && b.a.role() == "backup" })
	poll.Until(t, 5*time.Second, "b's groups backup, each knowing a as its Master", func() bool {
		gs := b.a.Status().Groups
		return len(gs) == 2 && gs[0].State == "backup" && gs[1].State == "backup" &&
			gs[0].MasterIP == "192.0.2.11" && gs[1].MasterIP == "198.51.100.11"
	})

	rec := httptest.NewRecorder()
	b.a.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/api/v1/status", nil))
	var raw struct {
		State      string           `json:"state"`
		Groups     []map[string]any `json:"groups"`
		LeftMaster map[string]any   `json:"left_master"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &raw); err != nil {
		t.Fatalf("status JSON %s: %v", rec.Body, err)
	}
	want := []map[string]any{
		{"name": "eth0/18", "interface": "eth0", "group_id": 18.0, "version": 2.0, "priority": 100.0, "state": "backup",
			"master_ip": "192.0.2.11", "virtual_ips": []any{vip.String()}, "holding": []any{}},
		{"name": "eth1/18", "interface": "eth1", "group_id": 18.0, "version": 2.0, "priority": 100.0, "state": "backup",
			"master_ip": "198.51.100.11", "virtual_ips": []any{wanVIP.String()}, "holding": []any{}},
	}
	for i := range raw.Groups {
		for _, k := range []string{"since", "transitions", "dropped", "adverts"} { // times and counts of the run
			if _, ok := raw.Groups[i][k]; !ok {
				t.Errorf("group %d has no %q: %v", i, k, raw.Groups[i])
			}
			delete(raw.Groups[i], k)
		}
	}
	if diff := cmp.Diff(want, raw.Groups); diff != "" || raw.State != "backup" {
		t.Errorf("state %q, groups (-want +got):\n%s", raw.State, diff)
	}
	// Each group counts its own adverts: b, a Backup in both, has heard a in both.
	for _, g := range b.a.Status().Groups {
		if g.Adverts.Received == 0 || g.Adverts.Sent == 0 {
			t.Errorf("group %s: adverts %+v, want some received (from a) and sent (before a preempted b)", g.Name, g.Adverts)
		}
	}
	lm := raw.LeftMaster
	reason, _ := lm["reason"].(string)
	if lm["from"] != "master" || lm["to"] != "backup" || lm["cause"] != vrrp.CausePreempted.String() ||
		!strings.HasPrefix(reason, "group eth") || lm["at"] == nil {
		t.Errorf("left_master %v: want master -> backup, %q, the reason naming the group", lm, vrrp.CausePreempted)
	}
}

// A SIGHUP that changes the second group's priority reaches that group's Router alone: the
// group's status and its adverts on the WAN carry the new priority at once, [redundancy]'s
// group keeps its own, and the plan names the group's key as applied.
func TestApplianceGroupsReloadPriority(t *testing.T) {
	lan, wan := memwire.New(), memwire.New()
	a := startGroupNode(t, lan, wan, 0) // priority 200 on both groups (eth1/18 inherits it)
	poll.Until(t, 5*time.Second, "a master", func() bool { return a.a.role() == "master" })

	// An observer on the WAN reports the priority of each advert from a's WAN address.
	obs := wan.Join("observer", netip.MustParseAddr("198.51.100.99"))
	t.Cleanup(func() { obs.Close() })
	prios := make(chan uint8, 1)
	go func() {
		for {
			in, err := obs.Receive()
			if err != nil {
				close(prios)
				return
			}
			var ad vrrp.Advertisement
			if in.Src != netip.MustParseAddr("198.51.100.11") || ad.UnmarshalBinary(in.Payload) != nil {
				continue
			}
			select {
			case prios <- ad.Priority:
			default: // the test reads the newest one it needs; older ones may be dropped
			}
		}
	}()

	next := *a.a.live
	next.Redundancy.Groups = slices.Clone(next.Redundancy.Groups)
	next.Redundancy.Groups[0].Priority = 150
	res, err := a.a.Reload(&next)
	if err != nil || !slices.Equal(res.Applied, []string{"redundancy.group[eth1/18].priority"}) || len(res.Restart) != 0 {
		t.Fatalf("reload: %+v, %v; want redundancy.group[eth1/18].priority applied", res, err)
	}
	poll.Until(t, 5*time.Second, "eth1/18 at priority 150 in the status", func() bool {
		gs := a.a.Status().Groups
		return len(gs) == 2 && gs[1].Priority == 150
	})
	if gs := a.a.Status().Groups; gs[0].Priority != 200 || gs[1].State != "master" {
		t.Errorf("groups after the reload: %+v; want eth0/18 still at 200 and eth1/18 master", gs)
	}
	deadline := time.After(10 * time.Second) // bounds a hang only: adverts come every second
	for seen := false; !seen; {
		select {
		case p, ok := <-prios:
			if !ok {
				t.Fatal("observer closed before an advert at priority 150")
			}
			seen = p == 150
		case <-deadline:
			t.Fatal("no advert at priority 150 from a's WAN address")
		}
	}
	if a.a.live.Redundancy.Groups[0].Priority != 150 {
		t.Errorf("running group priority %d after the reload; want 150", a.a.live.Redundancy.Groups[0].Priority)
	}
}

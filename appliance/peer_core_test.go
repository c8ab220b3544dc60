package appliance

import (
	"encoding/json"
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

var (
	peerT0      = time.Date(2026, 12, 1, 16, 59, 17, 0, time.UTC)
	coreVIPs    = []netip.Prefix{netip.MustParsePrefix("192.168.74.12/24"), netip.MustParsePrefix("192.168.74.13/24")}
	coreLocal   = peerLocal{NodeID: "node-a", Version: "6.0.9", Settings: PeerSettings{GroupID: 12, VirtualIPs: coreVIPs, AdvertInterval: time.Second, SyncPaths: []string{"/var/spool/asterisk/voicemail", "/etc/asterisk"}}}
	corePeerID  = "12-6.0.9-02022e71495548488048538516516657"
	corePeerRaw = "02022e71495548488048538516516657"
)

// corePeer is a valid hello of the seed's Backup device, with the local node's settings.
func corePeer(role, mode string) *peerInfo {
	return &peerInfo{NodeID: corePeerRaw, Version: "6.0.9", Settings: coreLocal.Settings,
		SettingsFingerprint: coreLocal.Settings.Fingerprint(), PeerStatus: PeerStatus{Role: role, BackupMode: mode}}
}

func TestPeerID(t *testing.T) {
	// Figure 10 of the seed.
	if got := PeerID(12, "6.0.9", corePeerRaw); got != corePeerID {
		t.Errorf("PeerID = %q, want %q", got, corePeerID)
	}
}

func TestSettingsFingerprint(t *testing.T) {
	base := SettingsFingerprint(12, coreVIPs, time.Second, []string{"/etc/asterisk", "/var/spool/asterisk/voicemail"})
	if len(base) != 64 {
		t.Fatalf("fingerprint %q is not hex SHA-256", base)
	}
	same := []struct {
		name string
		fp   string
	}{
		{"lists in another order", SettingsFingerprint(12, []netip.Prefix{coreVIPs[1], coreVIPs[0]}, time.Second, []string{"/var/spool/asterisk/voicemail", "/etc/asterisk"})},
		{"unclean paths", SettingsFingerprint(12, coreVIPs, time.Second, []string{"/etc/asterisk/", "/var/spool/asterisk//voicemail"})},
		{"method", coreLocal.Settings.Fingerprint()},
	}
	for _, c := range same {
		if c.fp != base {
			t.Errorf("%s: fingerprint %s, want %s", c.name, c.fp, base)
		}
	}
	if a, b := SettingsFingerprint(1, nil, time.Second, nil), SettingsFingerprint(1, []netip.Prefix{}, time.Second, []string{}); a != b {
		t.Error("nil and empty lists give different fingerprints")
	}
	differ := []struct {
		name string
		fp   string
	}{
		{"group", SettingsFingerprint(13, coreVIPs, time.Second, []string{"/etc/asterisk", "/var/spool/asterisk/voicemail"})},
		{"virtual IP", SettingsFingerprint(12, coreVIPs[:1], time.Second, []string{"/etc/asterisk", "/var/spool/asterisk/voicemail"})},
		{"prefix length", SettingsFingerprint(12, []netip.Prefix{coreVIPs[0], netip.MustParsePrefix("192.168.74.13/25")}, time.Second, []string{"/etc/asterisk", "/var/spool/asterisk/voicemail"})},
		{"advert interval", SettingsFingerprint(12, coreVIPs, 2*time.Second, []string{"/etc/asterisk", "/var/spool/asterisk/voicemail"})},
		{"sync paths", SettingsFingerprint(12, coreVIPs, time.Second, []string{"/etc/asterisk"})},
		{"sync off", SettingsFingerprint(12, coreVIPs, time.Second, nil)},
	}
	for _, c := range differ {
		if c.fp == base {
			t.Errorf("%s differs but the fingerprint is the same", c.name)
		}
	}
}

func TestPeerDials(t *testing.T) {
	a, b := netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2")
	if !PeerDials(a, b) || PeerDials(b, a) {
		t.Errorf("PeerDials(%s,%s)=%t, PeerDials(%s,%s)=%t: want exactly the lower address to dial", a, b, PeerDials(a, b), b, a, PeerDials(b, a))
	}
}

func TestPeerInfoValidate(t *testing.T) {
	mod := func(f func(*peerInfo)) *peerInfo { m := corePeer(PeerRoleBackup, PeerModeActive); f(m); return m }
	cases := []struct {
		name string
		m    *peerInfo
		ok   bool
	}{
		{"valid", corePeer(PeerRoleBackup, PeerModeActive), true},
		{"no node id", mod(func(m *peerInfo) { m.NodeID = "" }), false},
		{"no version", mod(func(m *peerInfo) { m.Version = "" }), false},
		{"no fingerprint", mod(func(m *peerInfo) { m.SettingsFingerprint = "" }), false},
		{"no role", mod(func(m *peerInfo) { m.Role = "" }), false},
		{"bad mode", mod(func(m *peerInfo) { m.BackupMode = "lazy" }), false},
	}
	for _, c := range cases {
		err := c.m.validate()
		if (err == nil) != c.ok || (err != nil && !errors.Is(err, ErrPeerMessage)) {
			t.Errorf("%s: validate() = %v, want ok=%t or ErrPeerMessage", c.name, err, c.ok)
		}
	}
}

func TestPeerCheck(t *testing.T) {
	other := corePeer(PeerRoleBackup, PeerModeActive)
	other.Settings.GroupID = 13
	self := corePeer(PeerRoleBackup, PeerModeActive)
	self.NodeID = coreLocal.NodeID
	cases := []struct {
		name string
		m    *peerInfo
		want error
	}{
		{"same group", corePeer(PeerRoleBackup, PeerModeActive), nil},
		{"other group", other, ErrPeerGroup},
		{"itself", self, ErrPeerSelf},
	}
	for _, c := range cases {
		if err := peerCheck(coreLocal, c.m); !errors.Is(err, c.want) || (c.want == nil && err != nil) {
			t.Errorf("%s: peerCheck = %v, want %v", c.name, err, c.want)
		}
	}
}

func TestPeerMismatches(t *testing.T) {
	mod := func(f func(*peerInfo)) *peerInfo {
		m := corePeer(PeerRoleBackup, PeerModeActive)
		f(m)
		m.SettingsFingerprint = m.Settings.Fingerprint()
		return m
	}
	cases := []struct {
		name string
		m    *peerInfo
		want []PeerMismatch
	}{
		{"match", corePeer(PeerRoleBackup, PeerModeActive), nil},
		{"version", mod(func(m *peerInfo) { m.Version = "6.1.0" }), []PeerMismatch{{"version", "6.0.9", "6.1.0"}}},
		{"virtual ips", mod(func(m *peerInfo) { m.Settings.VirtualIPs = coreVIPs[:1] }),
			[]PeerMismatch{{"virtual_ips", "192.168.74.12/24,192.168.74.13/24", "192.168.74.12/24"}}},
		{"advert interval and paths", mod(func(m *peerInfo) {
			m.Settings.AdvertInterval = 3 * time.Second
			m.Settings.SyncPaths = nil
		}), []PeerMismatch{{"advert_interval", "1s", "3s"}, {"sync_paths", "/etc/asterisk,/var/spool/asterisk/voicemail", ""}}},
		{"vrrp version", mod(func(m *peerInfo) { m.Settings.VRRPVersion = 3 }), []PeerMismatch{{"vrrp_version", "2", "3"}}},
		{"vrrp version 2 written out is the default", mod(func(m *peerInfo) { m.Settings.VRRPVersion = 2 }), nil},
		{"fingerprint only", func() *peerInfo {
			m := corePeer(PeerRoleBackup, PeerModeActive)
			m.SettingsFingerprint = "00"
			return m
		}(), []PeerMismatch{{"settings", coreLocal.Settings.Fingerprint(), "00"}}},
	}
	for _, c := range cases {
		if diff := cmp.Diff(c.want, peerMismatches(coreLocal, c.m)); diff != "" {
			t.Errorf("%s: mismatches (-want +got):\n%s", c.name, diff)
		}
	}
}

func TestPeerView(t *testing.T) {
	m := corePeer(PeerRoleBackup, PeerModePassive)
	m.LastSync = &PeerSyncResult{At: peerT0, OK: true}
	m.Services = []PeerServiceState{{Name: "asterisk", State: "stopped"}}
	v := peerViewUpdate(PeerView{}, coreLocal, m, peerT0)
	want := PeerView{Connected: true, ID: corePeerID, NodeID: corePeerRaw, Version: "6.0.9", GroupID: 12,
		SettingsFingerprint: coreLocal.Settings.Fingerprint(), Role: PeerRoleBackup, BackupMode: PeerModePassive,
		LastSync: &PeerSyncResult{At: peerT0, OK: true}, Services: []PeerServiceState{{"asterisk", "stopped"}},
		LastSeen: peerT0, Since: peerT0}
	if diff := cmp.Diff(want, v); diff != "" {
		t.Errorf("first hello (-want +got):\n%s", diff)
	}
	m.Services[0].State = "running" // the view must not alias the message
	if v.Services[0].State != "stopped" {
		t.Error("view aliases the message's services")
	}
	v2 := peerViewUpdate(v, coreLocal, m, peerT0.Add(time.Second))
	if !v2.Since.Equal(peerT0) || !v2.LastSeen.Equal(peerT0.Add(time.Second)) {
		t.Errorf("status: since %v last_seen %v, want since kept at %v and last_seen advanced", v2.Since, v2.LastSeen, peerT0)
	}
	lost := peerViewLost(v2, "connection closed", PeerEndClosed, peerT0.Add(3*time.Second))
	if lost.Connected || lost.LastError != "connection closed" || !lost.Since.Equal(peerT0.Add(3*time.Second)) || lost.ID != corePeerID || lost.Ended != PeerEndClosed {
		t.Errorf("lost view = %+v, want down since the loss, naming the device and the reason", lost)
	}
	if again := peerViewLost(lost, "dial: refused", PeerEndError, peerT0.Add(9*time.Second)); !again.Since.Equal(lost.Since) || again.Ended != PeerEndClosed {
		t.Errorf("a second loss moved since to %v or changed how the connection ended to %q", again.Since, again.Ended)
	}
	if up := peerViewUpdate(lost, coreLocal, m, peerT0.Add(10*time.Second)); up.Ended != "" {
		t.Errorf("a reconnected view keeps ended %q", up.Ended)
	}
	if r := peerViewRefused(lost, "group"); r.Refused != "group" || lost.Refused != "" {
		t.Error("peerViewRefused does not record the reason, or modifies its input")
	}
}

// snap builds a snapshot of a connected peer.
func peerSnap(local, role, mode string, mm ...PeerMismatch) peerSnapshot {
	return peerSnapshot{LocalRole: local, View: PeerView{Connected: true, ID: corePeerID, Role: role, BackupMode: mode, Mismatches: mm}}
}

func peerLost(s peerSnapshot, reason string) peerSnapshot {
	s.View.Connected = false
	s.View.LastError = reason
	return s
}

func both(s peerSnapshot, n int) peerSnapshot {
	s.bothMaster = n
	return s
}

func TestPeerStepBothMaster(t *testing.T) {
	// A swap: the stale status of the old Master (still "master") arrives once after this
	// node took over, then the old Master reports Backup. No split brain event.
	up := func(role string) PeerView {
		return PeerView{Connected: true, ID: corePeerID, Role: role, BackupMode: PeerModeActive}
	}
	s := peerSnapshot{View: up(PeerRoleMaster), LocalRole: PeerRoleBackup}
	var names []string
	for _, step := range []struct{ peer, local string }{
		{PeerRoleMaster, PeerRoleMaster}, // stale
		{PeerRoleBackup, PeerRoleMaster},
		{PeerRoleMaster, PeerRoleMaster}, // a real split brain: reported on its second update
		{PeerRoleMaster, PeerRoleMaster},
		{PeerRoleMaster, PeerRoleMaster},
	} {
		var evs []Event
		s, evs = peerStep(s, up(step.peer), step.local)
		for _, e := range evs {
			names = append(names, e.Name)
		}
	}
	want := []string{"up active", "peer role", "peer role", "both master"}
	if diff := cmp.Diff(want, names); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
}

func TestPeerEvents(t *testing.T) {
	const (
		M, B   = PeerRoleMaster, PeerRoleBackup
		Ac, Pa = PeerModeActive, PeerModePassive
	)
	ev := func(prio Priority, name, msg string) Event {
		return Event{Priority: prio, Application: AppRedundancy, Name: name, Description: msg}
	}
	upActive := ev(PriorityInfo, "up active", "Backup device with ID "+corePeerID+" is UP (Active mode)")
	upPassive := ev(PriorityNotice, "up passive", "Backup device with ID "+corePeerID+" is UP (Passive mode)")
	bdown := ev(PriorityWarning, "down", "Backup device is DOWN")
	version := PeerMismatch{"version", "6.0.9", "6.1.0"}
	vips := PeerMismatch{"virtual_ips", "a", "b"}
	never := peerSnapshot{LocalRole: M}
	refused := never
	refused.View.Refused = "peer: different redundancy group: ..."

	cases := []struct {
		name       string
		prev, next peerSnapshot
		want       []Event
	}{
		{"backup comes up active", never, peerSnap(M, B, Ac), []Event{upActive}},
		{"backup comes up passive", never, peerSnap(M, B, Pa), []Event{upPassive}},
		{"status unchanged", peerSnap(M, B, Ac), peerSnap(M, B, Ac), nil},
		{"backup switched to passive", peerSnap(M, B, Ac), peerSnap(M, B, Pa), []Event{upPassive}},
		{"backup back to active", peerSnap(M, B, Pa), peerSnap(M, B, Ac), []Event{upActive}},
		{"backup lost", peerSnap(M, B, Pa), peerLost(peerSnap(M, B, Pa), "connection closed"), []Event{bdown}},
		{"still down", peerLost(peerSnap(M, B, Pa), "x"), peerLost(peerSnap(M, B, Pa), "y"), nil},
		{"backup returns", peerLost(peerSnap(M, B, Pa), "x"), peerSnap(M, B, Pa), []Event{upPassive}},
		{"this node became master (failover, peer connected)", peerSnap(B, B, Ac), peerSnap(M, B, Ac), []Event{upActive}},
		{"swap seen on the new master", peerSnap(B, M, Ac), peerSnap(M, B, Pa),
			[]Event{upPassive, ev(PriorityInfo, "peer role", "Peer device with ID "+corePeerID+" changed role: master -> backup")}},
		{"swap seen on the old master: no DOWN", peerSnap(M, B, Pa), peerSnap(B, M, Pa),
			[]Event{ev(PriorityInfo, "peer role", "Peer device with ID "+corePeerID+" changed role: backup -> master")}},
		{"master seen from the backup", peerSnapshot{LocalRole: B}, peerSnap(B, M, Ac),
			[]Event{ev(PriorityInfo, "peer up", "Peer device with ID "+corePeerID+" is UP (master, active mode)")}},
		{"master lost, seen from the backup", peerSnap(B, M, Ac), peerLost(peerSnap(B, M, Ac), "no status for 3 intervals"),
			[]Event{ev(PriorityNotice, "peer down", "Peer device with ID "+corePeerID+" is DOWN (no status for 3 intervals)")}},
		{"both master, first update", peerSnap(M, B, Ac), both(peerSnap(M, M, Ac), 1),
			[]Event{ev(PriorityInfo, "peer role", "Peer device with ID "+corePeerID+" changed role: backup -> master")}},
		{"both master, second update", both(peerSnap(M, M, Ac), 1), both(peerSnap(M, M, Ac), 2),
			[]Event{ev(PriorityWarning, "both master", "Peer device with ID "+corePeerID+" is Master too")}},
		{"both master, still", both(peerSnap(M, M, Ac), 2), both(peerSnap(M, M, Ac), 3), nil},
		{"refused", never, refused, []Event{ev(PriorityWarning, "refused", "peer link refused: peer: different redundancy group: ...")}},
		{"refused again for the same reason", refused, refused, nil},
		{"version mismatch on connect", never, peerSnap(M, B, Ac, version), []Event{upActive,
			ev(PriorityNotice, "mismatch", "Peer device with ID "+corePeerID+" differs in version: 6.0.9 here, 6.1.0 there (both devices must run the same software version)")}},
		{"mismatch kept", peerSnap(M, B, Ac, version), peerSnap(M, B, Ac, version), nil},
		{"mismatch known from before the loss", peerLost(peerSnap(M, B, Ac, version), "x"), peerSnap(M, B, Ac, version), []Event{upActive}},
		{"second mismatch", peerSnap(M, B, Ac, version), peerSnap(M, B, Ac, version, vips),
			[]Event{ev(PriorityNotice, "mismatch", "Peer device with ID "+corePeerID+" differs in virtual_ips: a here, b there")}},
		{"mismatch resolved", peerSnap(M, B, Ac, version), peerSnap(M, B, Ac),
			[]Event{ev(PriorityInfo, "mismatch resolved", "Peer device with ID "+corePeerID+": versions and settings match")}},
	}
	for _, c := range cases {
		if diff := cmp.Diff(c.want, peerEvents(c.prev, c.next)); diff != "" {
			t.Errorf("%s: events (-want +got):\n%s", c.name, diff)
		}
	}
}

func TestPeerBackoff(t *testing.T) {
	var got []time.Duration
	d := time.Duration(0)
	for range 8 {
		d = peerNextBackoff(d)
		got = append(got, d)
	}
	want := []time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond, 800 * time.Millisecond,
		1600 * time.Millisecond, 3200 * time.Millisecond, 5 * time.Second, 5 * time.Second}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("backoff (-want +got):\n%s", diff)
	}
}

func TestPeerPrefer(t *testing.T) {
	cases := []struct {
		cur, new string
		want     bool
	}{
		{"a", "a", true},  // the lower node dialled again: it lost the old connection
		{"b", "b", true},  // same for the higher one
		{"b", "a", true},  // both dial: the lower node's connection wins
		{"a", "b", false}, // and is kept
	}
	for _, c := range cases {
		if got := peerPrefer(c.cur, c.new, "a"); got != c.want {
			t.Errorf("peerPrefer(current dialled by %s, new by %s) = %t, want %t", c.cur, c.new, got, c.want)
		}
	}
}

func TestPeerRequestValidate(t *testing.T) {
	cases := []struct {
		r  PeerRequest
		ok bool
	}{
		{PeerRequest{Type: PeerRequestSetBackupMode, Mode: PeerModePassive}, true},
		{PeerRequest{Type: PeerRequestSetBackupMode, Mode: PeerModeActive}, true},
		{PeerRequest{Type: PeerRequestSetBackupMode, Mode: "Passive"}, false},
		{PeerRequest{Type: PeerRequestSetBackupMode}, false},
		{PeerRequest{Type: PeerRequestTakeOver, Reason: "swap requested by the operator"}, true},
		{PeerRequest{Type: PeerRequestTakeOver}, true},
		{PeerRequest{Type: "reboot"}, false},
		{PeerRequest{}, false},
	}
	for _, c := range cases {
		err := c.r.validate()
		if (err == nil) != c.ok || (err != nil && !errors.Is(err, ErrPeerMessage)) {
			t.Errorf("%+v: validate() = %v, want ok=%t or ErrPeerMessage", c.r, err, c.ok)
		}
	}
}

// A version 2 group's fingerprint does not change with the vrrp_version setting's arrival, so
// that a node of the previous release agrees with one of this release.
func TestPeerSettingsVersion2Fingerprint(t *testing.T) {
	v2 := PeerSettings{GroupID: 12, VirtualIPs: coreVIPs, AdvertInterval: time.Second}
	withTwo := v2
	withTwo.VRRPVersion = 2
	v3 := v2
	v3.VRRPVersion = 3
	if v2.Fingerprint() != withTwo.Fingerprint() {
		t.Errorf("version 2 written out changes the fingerprint")
	}
	if v2.Fingerprint() == v3.Fingerprint() {
		t.Errorf("version 3 does not change the fingerprint")
	}
	b, err := json.Marshal(v2.canonical())
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), "vrrp_version") {
		t.Errorf("version 2 settings on the wire: %s; want no vrrp_version", b)
	}
	cfg := &Config{Redundancy: RedundancyConfig{GroupID: 12, Version: 3, VirtualIPs: coreVIPs, AdvertInterval: 100 * time.Millisecond}}
	if got := PeerSettingsOf(cfg); got.VRRPVersion != 3 {
		t.Errorf("PeerSettingsOf(version 3) = %+v", got)
	}
	cfg.Redundancy.Version = 2
	if got := PeerSettingsOf(cfg); got.VRRPVersion != 0 {
		t.Errorf("PeerSettingsOf(version 2) = %+v; want VRRPVersion 0", got)
	}
}

var (
	groupWAN = []netip.Prefix{netip.MustParsePrefix("198.51.100.100/24"), netip.MustParsePrefix("198.51.100.101/24")}
	group52  = PeerGroup{GroupID: 52, AdvertInterval: time.Second, VirtualIPs: groupWAN}
	group9   = PeerGroup{GroupID: 9, VRRPVersion: 3, AdvertInterval: 100 * time.Millisecond, VirtualIPs: []netip.Prefix{netip.MustParsePrefix("2001:db8::100/64")}}
)

// The groups are compared by their settings, whatever their order, interface or position:
// a group_id found once on each side is one group with differing keys, anything else is a
// group missing on one side; the groups of a peer that does not send them (nil: the
// previous release) are not compared.
func TestPeerGroupMismatches(t *testing.T) {
	with := func(g PeerGroup, f func(*PeerGroup)) PeerGroup {
		g.VirtualIPs = slices.Clone(g.VirtualIPs)
		f(&g)
		return g
	}
	desc52 := "version 2, advert_interval 1s, virtual_ips 198.51.100.100/24,198.51.100.101/24"
	cases := []struct {
		name        string
		local, peer []PeerGroup
		want        []PeerMismatch
	}{
		{"no groups on either node", []PeerGroup{}, []PeerGroup{}, nil},
		{"a peer of the previous release", []PeerGroup{group52}, nil, nil},
		{"the same groups in another order", []PeerGroup{group52, group9}, []PeerGroup{group9, with(group52, func(g *PeerGroup) {
			slices.Reverse(g.VirtualIPs)
		})}, nil},
		{"version 2 written out is the default", []PeerGroup{group52}, []PeerGroup{with(group52, func(g *PeerGroup) { g.VRRPVersion = 2 })}, nil},
		{"advert interval", []PeerGroup{group52, group9}, []PeerGroup{group9, with(group52, func(g *PeerGroup) { g.AdvertInterval = 2 * time.Second })},
			[]PeerMismatch{{"group[52].advert_interval", "1s", "2s"}}},
		{"virtual ips and version", []PeerGroup{group52}, []PeerGroup{with(group52, func(g *PeerGroup) {
			g.VirtualIPs, g.VRRPVersion = g.VirtualIPs[:1], 3
		})}, []PeerMismatch{{"group[52].virtual_ips", "198.51.100.100/24,198.51.100.101/24", "198.51.100.100/24"}, {"group[52].vrrp_version", "2", "3"}}},
		{"a group only here", []PeerGroup{group52}, []PeerGroup{}, []PeerMismatch{{"group[52]", desc52, "none"}}},
		{"a group only there", []PeerGroup{group9}, []PeerGroup{group9, group52}, []PeerMismatch{{"group[52]", "none", desc52}}},
		{"another group_id", []PeerGroup{group52}, []PeerGroup{with(group52, func(g *PeerGroup) { g.GroupID = 53 })},
			[]PeerMismatch{{"group[52]", desc52, "none"}, {"group[53]", "none", desc52}}},
		{"a group_id twice, one of them differs", []PeerGroup{group52, with(group52, func(g *PeerGroup) { g.VirtualIPs = nil })},
			[]PeerGroup{group52, with(group52, func(g *PeerGroup) { g.VirtualIPs = g.VirtualIPs[1:] })},
			[]PeerMismatch{{"group[52].virtual_ips", "", "198.51.100.101/24"}}}, // the equal ones set aside, one 52 is left each side
		{"a group_id twice on both nodes, all differ", []PeerGroup{with(group52, func(g *PeerGroup) { g.VirtualIPs = g.VirtualIPs[:1] }),
			with(group52, func(g *PeerGroup) { g.VirtualIPs = g.VirtualIPs[1:] })},
			[]PeerGroup{with(group52, func(g *PeerGroup) { g.VirtualIPs, g.AdvertInterval = g.VirtualIPs[:1], 2*time.Second }),
				with(group52, func(g *PeerGroup) { g.VirtualIPs = []netip.Prefix{netip.MustParsePrefix("198.51.100.102/24")} })},
			[]PeerMismatch{
				{"group[52]", "version 2, advert_interval 1s, virtual_ips 198.51.100.100/24", "none"},
				{"group[52]", "version 2, advert_interval 1s, virtual_ips 198.51.100.101/24", "none"},
				{"group[52]", "none", "version 2, advert_interval 1s, virtual_ips 198.51.100.102/24"},
				{"group[52]", "none", "version 2, advert_interval 2s, virtual_ips 198.51.100.100/24"},
			}},
		{"the same group twice on one node", []PeerGroup{group52, group52}, []PeerGroup{group52}, []PeerMismatch{{"group[52]", desc52, "none"}}},
	}
	for _, c := range cases {
		if diff := cmp.Diff(c.want, peerGroupMismatches(c.local, c.peer)); diff != "" {
			t.Errorf("%s: mismatches (-want +got):\n%s", c.name, diff)
		}
	}
}

// The groups are compared beside the fingerprint, which does not cover them (so that a
// node of the previous release computes the same one): equal fingerprints do not hide a
// group that differs, and a peer that sends no groups is no mismatch.
func TestPeerMismatchesGroups(t *testing.T) {
	local := coreLocal
	local.Settings.Groups = []PeerGroup{group52}
	if local.Settings.Fingerprint() != coreLocal.Settings.Fingerprint() {
		t.Error("the groups change the settings fingerprint")
	}
	m := corePeer(PeerRoleBackup, PeerModeActive)
	m.Settings.Groups = []PeerGroup{with52(func(g *PeerGroup) { g.AdvertInterval = 3 * time.Second })}
	if diff := cmp.Diff([]PeerMismatch{{"group[52].advert_interval", "1s", "3s"}}, peerMismatches(local, m)); diff != "" {
		t.Errorf("groups differ, same fingerprint: mismatches (-want +got):\n%s", diff)
	}
	m.Settings.Groups = nil // a node of the previous release
	if got := peerMismatches(local, m); len(got) != 0 {
		t.Errorf("a peer without the groups field: mismatches %+v; want none", got)
	}
	m.Version, m.Settings.AdvertInterval = "6.1.0", 2*time.Second
	m.SettingsFingerprint = m.Settings.Fingerprint()
	m.Settings.Groups = []PeerGroup{}
	want := []PeerMismatch{{"version", "6.0.9", "6.1.0"}, {"advert_interval", "1s", "2s"}, {"group[52]", group52.canonical().String(), "none"}}
	if diff := cmp.Diff(want, peerMismatches(local, m)); diff != "" {
		t.Errorf("version, settings and groups: mismatches (-want +got):\n%s", diff)
	}
}

func with52(f func(*PeerGroup)) PeerGroup {
	g := group52
	g.VirtualIPs = slices.Clone(g.VirtualIPs)
	f(&g)
	return g
}

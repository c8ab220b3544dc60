package appliance

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// The peer link's decisions: what a hello or a status from the other node means, which
// settings differ, and which events an update raises. Everything here is pure (no clock, no
// socket, no goroutine); peer.go drives it.

// Roles and backup modes as they travel on the peer link and appear in PeerView.
const (
	PeerRoleMaster  = "master"
	PeerRoleBackup  = "backup"
	PeerModeActive  = "active"
	PeerModePassive = "passive"
)

// Errors of the peer link. A refusal is reported as an event and in PeerView.Refused.
var (
	// ErrPeerGroup: the peer belongs to another redundancy group (seed: the Redundant Group
	// ID "must be set to the same value in both PBXs").
	ErrPeerGroup = errors.New("peer: different redundancy group")
	// ErrPeerSelf: the peer link reached this node itself (same node id).
	ErrPeerSelf = errors.New("peer: the peer has this node's id")
	// ErrPeerMessage: a malformed or unexpected message; the connection is closed.
	ErrPeerMessage = errors.New("peer: bad message")
	// ErrPeerDown: no peer connected, or the connection was lost before the answer.
	ErrPeerDown = errors.New("peer: not connected")
	// ErrPeerRejected: the peer answered a request with an error.
	ErrPeerRejected = errors.New("peer: request rejected")
	// ErrPeerTimeout: the peer did not answer a request in time.
	ErrPeerTimeout = errors.New("peer: no answer")
)

// PeerSettings are the settings that must be the same on both nodes for the group to work:
// a failover to a node with other virtual IPs, another advert interval or other sync trees
// is not a failover.
type PeerSettings struct {
	GroupID        uint8          `json:"group_id"`
	VirtualIPs     []netip.Prefix `json:"virtual_ips"`
	AdvertInterval time.Duration  `json:"advert_interval"` // nanoseconds on the wire
	SyncPaths      []string       `json:"sync_paths"`
	// VRRPVersion is redundancy.version when it is 3, zero (absent) for the default 2, so
	// that the fingerprint of a version 2 group is what it was before version 3 existed.
	VRRPVersion uint8 `json:"vrrp_version,omitempty"`
	// Groups are the node's [[redundancy.group]] groups, compared one by one
	// (peerGroupMismatches). Backward compatibility with a peer of the previous release,
	// which has groups but neither sends nor reads this field: this release always sends
	// the list, "groups":[] when the node has none (omitzero keeps a non-nil empty list), so
	// an absent field (nil after decoding) can only mean a peer that does not compare
	// groups, and is not itself a mismatch; the groups are then not compared. For the same
	// reason the fingerprint does not cover the groups: it stays what the previous release
	// computes, so that neither node reports a "settings" mismatch for the groups' arrival.
	Groups []PeerGroup `json:"groups,omitzero"`
}

// PeerGroup is one [[redundancy.group]] as the peer link compares it: what must be the same
// on both nodes for the group to fail over. The interface is not compared (each node names
// its own: eth1 here, lan1 there), nor the group's priority, preempt or addresses, which
// differ between the nodes by design.
type PeerGroup struct {
	GroupID        uint8          `json:"group_id"`
	VRRPVersion    uint8          `json:"vrrp_version,omitempty"` // as PeerSettings.VRRPVersion: zero for 2
	AdvertInterval time.Duration  `json:"advert_interval"`        // nanoseconds on the wire
	VirtualIPs     []netip.Prefix `json:"virtual_ips"`
}

// canonical is the group in the form both nodes compare: virtual IPs sorted, version 2 as
// zero.
func (g PeerGroup) canonical() PeerGroup {
	c := PeerGroup{GroupID: g.GroupID, AdvertInterval: g.AdvertInterval, VirtualIPs: slices.Clone(g.VirtualIPs)}
	if g.VRRPVersion != 2 {
		c.VRRPVersion = g.VRRPVersion
	}
	if c.VirtualIPs == nil {
		c.VirtualIPs = []netip.Prefix{}
	}
	slices.SortFunc(c.VirtualIPs, func(a, b netip.Prefix) int { return strings.Compare(a.String(), b.String()) })
	return c
}

// String describes a canonical group in a mismatch: "version 2, advert_interval 1s,
// virtual_ips 198.51.100.100/24".
func (g PeerGroup) String() string {
	return fmt.Sprintf("version %s, advert_interval %s, virtual_ips %s", vrrpVersionName(g.VRRPVersion), g.AdvertInterval, peerPrefixList(g.VirtualIPs))
}

// canonical returns the settings in the form both nodes compare: virtual IPs and sync paths
// sorted (their order has no meaning), paths cleaned, nil and empty lists alike.
func (s PeerSettings) canonical() PeerSettings {
	c := PeerSettings{GroupID: s.GroupID, AdvertInterval: s.AdvertInterval,
		VirtualIPs: slices.Clone(s.VirtualIPs), SyncPaths: make([]string, 0, len(s.SyncPaths))}
	if s.VRRPVersion != 2 {
		c.VRRPVersion = s.VRRPVersion
	}
	if c.VirtualIPs == nil {
		c.VirtualIPs = []netip.Prefix{}
	}
	slices.SortFunc(c.VirtualIPs, func(a, b netip.Prefix) int { return strings.Compare(a.String(), b.String()) })
	for _, p := range s.SyncPaths {
		c.SyncPaths = append(c.SyncPaths, filepath.Clean(p))
	}
	slices.Sort(c.SyncPaths)
	return c
}

// Fingerprint is the hex SHA-256 of the canonical JSON encoding of the settings (fields in
// declaration order, lists sorted), so two nodes with the same settings in any order agree.
func (s PeerSettings) Fingerprint() string {
	b, err := json.Marshal(s.canonical())
	if err != nil { // cannot happen: every field marshals
		panic(fmt.Sprintf("peer settings: %v", err))
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// SettingsFingerprint is PeerSettings.Fingerprint for the settings given one by one.
func SettingsFingerprint(groupID uint8, virtualIPs []netip.Prefix, advertInterval time.Duration, syncPaths []string) string {
	return PeerSettings{GroupID: groupID, VirtualIPs: virtualIPs, AdvertInterval: advertInterval, SyncPaths: syncPaths}.Fingerprint()
}

// PeerID builds a device's ID the way the seed's event log shows it: group, software
// version and node id joined by dashes ("12-6.0.9-02022e71495548488048538516516657").
func PeerID(groupID uint8, version, nodeID string) string {
	return fmt.Sprintf("%d-%s-%s", groupID, version, nodeID)
}

// PeerDials tells whether the node at local dials the peer link to the node at peer: the
// node with the lower address dials, the other only accepts, so that the two nodes never
// race two connections. The caller sets PeerConfig.Dial only when it returns true.
func PeerDials(local, peer netip.Addr) bool { return local.Less(peer) }

// PeerSyncResult is the outcome of the node's last replication run.
type PeerSyncResult struct {
	At    time.Time `json:"at,omitzero"`
	OK    bool      `json:"ok"`
	Error string    `json:"error,omitempty"`
}

// PeerServiceState is one PBX service as its node reports it.
type PeerServiceState struct {
	Name  string `json:"name"`
	State string `json:"state"` // "running", "stopped", "failed", ...
}

// PeerStatus is what a node tells its peer about itself every interval; the appliance
// provides it (PeerConfig.Local).
type PeerStatus struct {
	Role       string `json:"role"`        // PeerRoleMaster, PeerRoleBackup or another vrrp state name
	BackupMode string `json:"backup_mode"` // PeerModeActive or PeerModePassive
	// ModeSetAt is when the group's Backup mode was last set at run time (zero: the
	// configuration's default); the newer setting wins between the nodes (newerMode).
	ModeSetAt time.Time          `json:"mode_set_at,omitzero"`
	ModeSetBy string             `json:"mode_set_by,omitempty"`
	LastSync  *PeerSyncResult    `json:"last_sync,omitempty"`
	Services  []PeerServiceState `json:"services,omitempty"`
	// Unhealthy says why the node's services fail their checks; "" when healthy.
	Unhealthy string `json:"unhealthy,omitempty"`
	// HoldsAddresses: the node is Master and holds every virtual IP (the engine confirmed
	// them). With Role master it is what the Backup's second heartbeat trusts (fastfail.go).
	HoldsAddresses bool `json:"holds_addresses,omitempty"`
}

// peerInfo is the body of a hello and of every status: who the node is and how it stands.
type peerInfo struct {
	NodeID              string       `json:"node_id"`
	Version             string       `json:"version"`
	Settings            PeerSettings `json:"settings"`
	SettingsFingerprint string       `json:"settings_fingerprint"`
	PeerStatus
}

// PeerMismatch is one setting in which the peer differs from this node.
type PeerMismatch struct {
	Setting string `json:"setting"` // "version", "virtual_ips", "advert_interval", "sync_paths", "settings"
	Local   string `json:"local"`
	Peer    string `json:"peer"`
}

// PeerView is this node's view of the other node, as the status API shows it.
type PeerView struct {
	Connected           bool               `json:"connected"`
	ID                  string             `json:"id,omitempty"` // PeerID, the seed's device ID
	NodeID              string             `json:"node_id,omitempty"`
	Version             string             `json:"version,omitempty"`
	GroupID             uint8              `json:"group_id,omitempty"`
	SettingsFingerprint string             `json:"settings_fingerprint,omitempty"`
	Role                string             `json:"role,omitempty"`
	BackupMode          string             `json:"backup_mode,omitempty"`
	ModeSetAt           time.Time          `json:"mode_set_at,omitzero"`
	ModeSetBy           string             `json:"mode_set_by,omitempty"`
	LastSync            *PeerSyncResult    `json:"last_sync,omitempty"`
	Services            []PeerServiceState `json:"services,omitempty"`
	Unhealthy           string             `json:"unhealthy,omitempty"` // why the peer's services fail their checks
	LastSeen            time.Time          `json:"last_seen,omitzero"`  // last message received
	Since               time.Time          `json:"since,omitzero"`      // connected since, or down since
	Mismatches          []PeerMismatch     `json:"mismatches,omitempty"`
	Refused             string             `json:"refused,omitempty"`    // why the last connection was refused
	LastError           string             `json:"last_error,omitempty"` // why the link went down
	HoldsAddresses      bool               `json:"holds_addresses,omitempty"`
	// Ended says how the last connection ended, while the peer is down: one of the PeerEnd
	// values. "closed" is what a dead daemon leaves (fastfail.go).
	Ended string `json:"ended,omitempty"`
}

// How a peer link connection ended (PeerView.Ended).
const (
	// PeerEndClosed: the peer's side closed the TCP connection (FIN at a frame boundary, or
	// RST) without saying goodbye first: what its kernel does when the daemon dies.
	PeerEndClosed = "closed"
	// PeerEndBye: the peer said goodbye (a "bye" frame: it stops, or replaces the
	// connection), then closed.
	PeerEndBye = "bye"
	// PeerEndSilent: nothing arrived for peerMissed intervals (a hung daemon, a lost host, a
	// cut path).
	PeerEndSilent = "silent"
	// PeerEndError: anything else: a malformed frame, a TLS error, a connection cut inside a
	// frame, or this node closing it.
	PeerEndError = "error"
)

// peerEndOf classifies how a connection ended from the error its read loop returned and the
// reason of a bye received on it ("" when none). Only a clean end of stream between two
// frames or a reset count as closed: a stream cut inside a frame may be a network fault.
func peerEndOf(err error, bye string) string {
	var ne net.Error
	switch {
	case bye != "":
		return PeerEndBye
	case errors.Is(err, io.EOF), errors.Is(err, syscall.ECONNRESET):
		return PeerEndClosed
	case errors.As(err, &ne) && ne.Timeout():
		return PeerEndSilent
	}
	return PeerEndError
}

// clone deep-copies the view so that a caller of Status cannot alias the link's state.
func (v PeerView) clone() PeerView {
	if v.LastSync != nil {
		ls := *v.LastSync
		v.LastSync = &ls
	}
	v.Services = slices.Clone(v.Services)
	v.Mismatches = slices.Clone(v.Mismatches)
	return v
}

// peerLocal is this node's side of the comparison.
type peerLocal struct {
	NodeID   string
	Version  string
	Settings PeerSettings
}

// validate checks a hello or status from the peer before anything is taken from it.
func (m *peerInfo) validate() error {
	switch {
	case m.NodeID == "" || len(m.NodeID) > 128:
		return fmt.Errorf("%w: node_id %q", ErrPeerMessage, m.NodeID)
	case m.Version == "" || len(m.Version) > 64:
		return fmt.Errorf("%w: version %q", ErrPeerMessage, m.Version)
	case m.SettingsFingerprint == "":
		return fmt.Errorf("%w: no settings_fingerprint", ErrPeerMessage)
	case m.Role == "":
		return fmt.Errorf("%w: no role", ErrPeerMessage)
	case m.BackupMode != PeerModeActive && m.BackupMode != PeerModePassive:
		return fmt.Errorf("%w: backup_mode %q", ErrPeerMessage, m.BackupMode)
	}
	return nil
}

// peerCheck decides whether a validated hello is accepted at all: a node of another group,
// or this node itself, is refused. Other differences are mismatches, not refusals.
func peerCheck(local peerLocal, m *peerInfo) error {
	if m.Settings.GroupID != local.Settings.GroupID {
		return fmt.Errorf("%w: the peer %s is in group %d, this node in group %d",
			ErrPeerGroup, m.NodeID, m.Settings.GroupID, local.Settings.GroupID)
	}
	if m.NodeID == local.NodeID {
		return fmt.Errorf("%w (%s)", ErrPeerSelf, m.NodeID)
	}
	return nil
}

// peerMismatches lists the differences the seed requires absent ("both devices must run the
// same version") and the settings a failover depends on, the groups' last
// (peerGroupMismatches). A fingerprint that differs while the settings sent look equal is
// reported as "settings" (a node computing it otherwise).
func peerMismatches(local peerLocal, m *peerInfo) []PeerMismatch {
	var out []PeerMismatch
	if m.Version != local.Version {
		out = append(out, PeerMismatch{Setting: "version", Local: local.Version, Peer: m.Version})
	}
	out = append(out, peerSettingsMismatches(local, m)...)
	return append(out, peerGroupMismatches(local.Settings.Groups, m.Settings.Groups)...)
}

// peerSettingsMismatches compares the settings the fingerprint covers ([redundancy]'s
// group and the sync paths).
func peerSettingsMismatches(local peerLocal, m *peerInfo) []PeerMismatch {
	var out []PeerMismatch
	if m.SettingsFingerprint == local.Settings.Fingerprint() {
		return out
	}
	l, p := local.Settings.canonical(), m.Settings.canonical()
	if a, b := peerPrefixList(l.VirtualIPs), peerPrefixList(p.VirtualIPs); a != b {
		out = append(out, PeerMismatch{Setting: "virtual_ips", Local: a, Peer: b})
	}
	if l.VRRPVersion != p.VRRPVersion {
		out = append(out, PeerMismatch{Setting: "vrrp_version", Local: vrrpVersionName(l.VRRPVersion), Peer: vrrpVersionName(p.VRRPVersion)})
	}
	if l.AdvertInterval != p.AdvertInterval {
		out = append(out, PeerMismatch{Setting: "advert_interval", Local: l.AdvertInterval.String(), Peer: p.AdvertInterval.String()})
	}
	if a, b := strings.Join(l.SyncPaths, ","), strings.Join(p.SyncPaths, ","); a != b {
		out = append(out, PeerMismatch{Setting: "sync_paths", Local: a, Peer: b})
	}
	if len(out) == 0 {
		out = append(out, PeerMismatch{Setting: "settings", Local: local.Settings.Fingerprint(), Peer: m.SettingsFingerprint})
	}
	return out
}

// peerGroupMismatches compares this node's groups with the peer's; peer is nil when the
// peer did not send its groups (a node of the previous release, see PeerSettings.Groups),
// and then nothing is compared. Groups are matched by their settings, not by position or
// interface: the groups equal on both nodes are set aside, then a group_id left once on
// each side is one group whose keys differ ("group[52].advert_interval"), and any other
// group left is missing on one side ("group[52]", "none" on the side without it).
func peerGroupMismatches(local, peer []PeerGroup) []PeerMismatch {
	if peer == nil {
		return nil
	}
	l, p := canonicalGroups(local), canonicalGroups(peer)
	l, p = withoutCommon(l, p)
	var out []PeerMismatch
	ids := func(gs []PeerGroup) map[uint8][]PeerGroup {
		m := map[uint8][]PeerGroup{}
		for _, g := range gs {
			m[g.GroupID] = append(m[g.GroupID], g)
		}
		return m
	}
	lids, pids := ids(l), ids(p)
	paired := map[uint8]bool{}
	for _, g := range l {
		if len(lids[g.GroupID]) != 1 || len(pids[g.GroupID]) != 1 {
			continue
		}
		paired[g.GroupID] = true
		o := pids[g.GroupID][0]
		key := fmt.Sprintf("group[%d].", g.GroupID)
		if a, b := peerPrefixList(g.VirtualIPs), peerPrefixList(o.VirtualIPs); a != b {
			out = append(out, PeerMismatch{Setting: key + "virtual_ips", Local: a, Peer: b})
		}
		if g.VRRPVersion != o.VRRPVersion {
			out = append(out, PeerMismatch{Setting: key + "vrrp_version", Local: vrrpVersionName(g.VRRPVersion), Peer: vrrpVersionName(o.VRRPVersion)})
		}
		if g.AdvertInterval != o.AdvertInterval {
			out = append(out, PeerMismatch{Setting: key + "advert_interval", Local: g.AdvertInterval.String(), Peer: o.AdvertInterval.String()})
		}
	}
	for _, g := range l {
		if !paired[g.GroupID] {
			out = append(out, PeerMismatch{Setting: fmt.Sprintf("group[%d]", g.GroupID), Local: g.String(), Peer: "none"})
		}
	}
	for _, g := range p {
		if !paired[g.GroupID] {
			out = append(out, PeerMismatch{Setting: fmt.Sprintf("group[%d]", g.GroupID), Local: "none", Peer: g.String()})
		}
	}
	return out
}

// canonicalGroups returns the groups canonical, sorted by group_id and then by their
// description (two groups may share a group_id on different interfaces).
func canonicalGroups(gs []PeerGroup) []PeerGroup {
	out := make([]PeerGroup, len(gs))
	for i, g := range gs {
		out[i] = g.canonical()
	}
	slices.SortFunc(out, func(a, b PeerGroup) int {
		if a.GroupID != b.GroupID {
			return int(a.GroupID) - int(b.GroupID)
		}
		return strings.Compare(a.String(), b.String())
	})
	return out
}

// withoutCommon removes from two canonical lists the groups both hold (as many times as
// both hold them), keeping the order of the others.
func withoutCommon(l, p []PeerGroup) ([]PeerGroup, []PeerGroup) {
	lk, pk := groupKeys(l), groupKeys(p)
	count := func(keys []string) map[string]int {
		m := make(map[string]int, len(keys))
		for _, k := range keys {
			m[k]++
		}
		return m
	}
	rest := func(gs []PeerGroup, keys []string, other map[string]int) []PeerGroup {
		var out []PeerGroup
		for i, k := range keys {
			if other[k] > 0 {
				other[k]--
				continue
			}
			out = append(out, gs[i])
		}
		return out
	}
	return rest(l, lk, count(pk)), rest(p, pk, count(lk))
}

// groupKeys are the groups' identities for withoutCommon: group_id and description.
func groupKeys(gs []PeerGroup) []string {
	out := make([]string, len(gs))
	for i, g := range gs {
		out[i] = strconv.Itoa(int(g.GroupID)) + " " + g.String()
	}
	return out
}

// vrrpVersionName is a PeerSettings.VRRPVersion as the operator writes it ("2" for zero).
func vrrpVersionName(v uint8) string {
	if v == 0 {
		v = 2
	}
	return strconv.Itoa(int(v))
}

func peerPrefixList(ps []netip.Prefix) string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = p.String()
	}
	return strings.Join(s, ",")
}

// peerViewUpdate applies an accepted hello or status to the view. since is set when the link
// comes up.
func peerViewUpdate(prev PeerView, local peerLocal, m *peerInfo, now time.Time) PeerView {
	v := PeerView{
		Connected:           true,
		ID:                  PeerID(m.Settings.GroupID, m.Version, m.NodeID),
		NodeID:              m.NodeID,
		Version:             m.Version,
		GroupID:             m.Settings.GroupID,
		SettingsFingerprint: m.SettingsFingerprint,
		Role:                m.Role,
		BackupMode:          m.BackupMode,
		ModeSetAt:           m.ModeSetAt,
		ModeSetBy:           m.ModeSetBy,
		LastSync:            m.LastSync,
		Services:            m.Services,
		Unhealthy:           m.Unhealthy,
		HoldsAddresses:      m.HoldsAddresses,
		LastSeen:            now,
		Since:               prev.Since,
		Mismatches:          peerMismatches(local, m),
	}
	if !prev.Connected {
		v.Since = now
	}
	return v.clone()
}

// peerViewLost marks the peer down, keeping what was last known of it (the status page still
// names the device that went away, and a reconnection with the same mismatch raises no new
// event).
// ended is how the connection ended (PeerEnd*), kept with the loss it describes.
func peerViewLost(prev PeerView, reason, ended string, now time.Time) PeerView {
	v := prev.clone()
	if v.Connected {
		v.Since = now
		v.Ended = ended
	}
	v.Connected = false
	v.LastError = reason
	return v
}

// peerViewRefused records why a connection attempt was refused.
func peerViewRefused(prev PeerView, reason string) PeerView {
	v := prev.clone()
	v.Refused = reason
	return v
}

// peerSnapshot is what the events are derived from: the view of the peer and this node's
// own role at one moment, and for how many consecutive updates both nodes have said Master.
type peerSnapshot struct {
	View       PeerView
	LocalRole  string
	bothMaster int
}

// peerBothMasterAfter is how many consecutive updates must show both nodes Master before it
// is an event: in a swap a status the old Master sent just before resigning may arrive just
// after the new Master took over, and that is not a split brain.
const peerBothMasterAfter = 2

// peerStep moves from prev to the new view and this node's role, and returns the events.
func peerStep(prev peerSnapshot, view PeerView, localRole string) (peerSnapshot, []Event) {
	next := peerSnapshot{View: view, LocalRole: localRole}
	if view.Connected && localRole == PeerRoleMaster && view.Role == PeerRoleMaster {
		next.bothMaster = prev.bothMaster + 1
	}
	return next, peerEvents(prev, next)
}

// backupUp tells whether the snapshot shows what the seed's Master reports as "Backup
// device ... is UP": this node is Master and the peer is connected as its Backup.
func (s peerSnapshot) backupUp() bool {
	return s.View.Connected && s.LocalRole == PeerRoleMaster && s.View.Role == PeerRoleBackup
}

// peerEvents returns the events raised by going from prev to next, in the seed's words
// where the seed has them (Figure 10). The seed's priorities are 1 for "up active", 2 for
// "up passive" and 3 for "down"; PriorityInfo, PriorityNotice and PriorityWarning.
func peerEvents(prev, next peerSnapshot) []Event {
	var out []Event
	add := func(prio Priority, name, format string, args ...any) {
		out = append(out, Event{Priority: prio, Application: AppRedundancy, Name: name, Description: fmt.Sprintf(format, args...)})
	}
	p, n := prev.View, next.View
	if next.View.Refused != "" && next.View.Refused != prev.View.Refused {
		add(PriorityWarning, "refused", "peer link refused: %s", n.Refused)
	}
	switch {
	case next.backupUp() && (!prev.backupUp() || p.BackupMode != n.BackupMode || p.ID != n.ID):
		if n.BackupMode == PeerModePassive {
			add(PriorityNotice, "up passive", "Backup device with ID %s is UP (Passive mode)", n.ID)
		} else {
			add(PriorityInfo, "up active", "Backup device with ID %s is UP (Active mode)", n.ID)
		}
	case prev.backupUp() && !n.Connected:
		add(PriorityWarning, "down", "Backup device is DOWN")
	case p.Connected && !n.Connected:
		add(PriorityNotice, "peer down", "Peer device with ID %s is DOWN (%s)", p.ID, n.LastError)
	case !p.Connected && n.Connected:
		add(PriorityInfo, "peer up", "Peer device with ID %s is UP (%s, %s mode)", n.ID, n.Role, n.BackupMode)
	}
	if p.Connected && n.Connected && p.Role != n.Role {
		add(PriorityInfo, "peer role", "Peer device with ID %s changed role: %s -> %s", n.ID, p.Role, n.Role)
	}
	if next.bothMaster == peerBothMasterAfter {
		add(PriorityWarning, "both master", "Peer device with ID %s is Master too", n.ID)
	}
	if n.Connected {
		out = append(out, peerMismatchEvents(p.Mismatches, n.Mismatches, n.ID)...)
	}
	return out
}

// peerMismatchEvents raises one event per new mismatch and one when all are resolved.
func peerMismatchEvents(prev, next []PeerMismatch, id string) []Event {
	var out []Event
	for _, m := range next {
		if slices.Contains(prev, m) {
			continue
		}
		msg := fmt.Sprintf("Peer device with ID %s differs in %s: %s here, %s there", id, m.Setting, m.Local, m.Peer)
		if m.Setting == "version" {
			msg += " (both devices must run the same software version)"
		}
		out = append(out, Event{Priority: PriorityNotice, Application: AppRedundancy, Name: "mismatch", Description: msg})
	}
	if len(prev) > 0 && len(next) == 0 {
		out = append(out, Event{Priority: PriorityInfo, Application: AppRedundancy, Name: "mismatch resolved",
			Description: fmt.Sprintf("Peer device with ID %s: versions and settings match", id)})
	}
	return out
}

// Reconnection backoff: the first retry is quick (a peer that restarts is back within a
// second), then it doubles up to peerBackoffMax.
const (
	peerBackoffMin = 100 * time.Millisecond
	peerBackoffMax = 5 * time.Second
)

func peerNextBackoff(d time.Duration) time.Duration {
	switch {
	case d < peerBackoffMin:
		return peerBackoffMin
	case 2*d > peerBackoffMax:
		return peerBackoffMax
	}
	return 2 * d
}

// peerPrefer decides, when a second authenticated connection arrives while one is in use,
// whether the new one replaces it. Normally only one node dials (PeerDials), and a new
// connection means the peer lost the old one: the newest wins. If both nodes dial, both keep
// the connection dialled by the node with the lower node id, so they agree on one.
func peerPrefer(curDialer, newDialer, lowerID string) bool {
	return curDialer != lowerID || newDialer == lowerID
}

// Requests one node makes of the other over the peer link; the receiver answers each.
const (
	// PeerRequestSetBackupMode asks the Backup to change its mode (the Master forwards an
	// operator's change made on it; issue 7 section 2).
	PeerRequestSetBackupMode = "set-backup-mode"
	// PeerRequestTakeOver asks the Backup to become Master now, also when Passive (swap).
	PeerRequestTakeOver = "take-over"
)

// PeerRequest is a request to the peer. ID is assigned by PeerLink.Request.
type PeerRequest struct {
	ID     uint64 `json:"id"`
	Type   string `json:"type"`
	Mode   string `json:"mode,omitempty"`   // set-backup-mode: PeerModeActive or PeerModePassive
	Reason string `json:"reason,omitempty"` // take-over: shown in the new Master's events
}

// validate checks a request before it is sent and again when it is received.
func (r PeerRequest) validate() error {
	switch r.Type {
	case PeerRequestSetBackupMode:
		if r.Mode != PeerModeActive && r.Mode != PeerModePassive {
			return fmt.Errorf("%w: %s: mode %q is neither %q nor %q", ErrPeerMessage, r.Type, r.Mode, PeerModeActive, PeerModePassive)
		}
	case PeerRequestTakeOver:
		if len(r.Reason) > 1024 {
			return fmt.Errorf("%w: %s: reason longer than 1024 bytes", ErrPeerMessage, r.Type)
		}
	default:
		return fmt.Errorf("%w: unknown request %q", ErrPeerMessage, r.Type)
	}
	return nil
}

package appliance

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/redundantd/redundantd/berofos"
	pbxsync "github.com/redundantd/redundantd/sync"
)

// The console's pages are built from Status and the event log, the JSON API's own answers,
// turned into what a page shows.

// settingsView is the Redundancy Settings page: the seed's Figure 4 from the configuration,
// the current mode, the Backup mode switch and the swap.
type settingsView struct {
	Enabled        bool
	GroupID        uint8
	VirtualIPs     []string
	PeerAddress    string // the seed's "Redundant Device Virtual IP Address": the peer's own address
	SyncInterval   string
	AccessPort     string // Backup Device GUI Access Port
	Priority       uint8
	AdvertInterval time.Duration
	Preempt        bool

	Role          string
	BackupMode    string
	ModeSetAt     time.Time
	ModeSetBy     string
	PeerConnected bool
	PeerNode      string
	PeerRole      string
	CanSwap       bool
	SwapNote      string // why the swap button is off
	Swap          *SwapResult
}

func (c *console) settingsView() settingsView {
	cfg := c.a.cfg
	st := c.a.Status()
	v := settingsView{Enabled: cfg.Redundancy.Enabled, GroupID: cfg.Redundancy.GroupID, SyncInterval: "replication off",
		AccessPort: "not configured", Priority: st.Priority, AdvertInterval: cfg.Redundancy.AdvertInterval,
		Preempt: cfg.Redundancy.Preempt, Role: st.State, BackupMode: st.BackupMode, ModeSetAt: st.ModeSetAt,
		ModeSetBy: st.ModeSetBy, Swap: st.Swap, VirtualIPs: st.VirtualIPs}
	if cfg.Redundancy.Peer.IsValid() {
		v.PeerAddress = cfg.Redundancy.Peer.String()
	}
	if cfg.Sync.Enabled {
		v.SyncInterval = cfg.Sync.Interval
	}
	if cc := cfg.Console; cc.BackupAccessPort != 0 {
		v.AccessPort = fmt.Sprintf("%d (while Master: to the other node's console at %s)", cc.BackupAccessPort, cc.BackupConsole)
	}
	if p := st.Peer; p != nil {
		v.PeerConnected, v.PeerNode, v.PeerRole = p.Connected, p.NodeID, p.Role
	}
	in := swapInputs{Role: st.State, Pending: st.Swap != nil && st.Swap.State == "pending",
		PeerConnected: v.PeerConnected, PeerRole: v.PeerRole, PeerMode: BackupMode(st.BackupMode)}
	if err := swapRefusal(in); err != nil {
		v.SwapNote = strings.TrimPrefix(err.Error(), ErrSwapRefused.Error()+": ")
	} else {
		v.CanSwap = true
	}
	return v
}

// nodeCard is one node on the Status page.
type nodeCard struct {
	Title     string
	Known     bool // false: the peer link is off or the peer never answered
	Connected bool
	ID        string
	NodeID    string
	Role      string
	Mode      string
	Version   string
	LastSync  *PeerSyncResult
	Services  []PeerServiceState
	Unhealthy string
	Note      string
}

// ledPort is one port of a berofos and its four LEDs: "on" green (connected), "off" red,
// "unknown" grey (the device did not answer).
type ledPort struct {
	Name  string
	State string
}

type berofosCard struct {
	berofos.DeviceStatus
	Ports []ledPort
	Fail  bool // the watchdog failed over: the device's Fail LED
}

// statusView is the Status page.
type statusView struct {
	Nodes   []nodeCard
	Berofos []berofosCard
	Sync    *pbxsync.Status
	Swap    *SwapResult
	Events  EventStoreStatus
}

func (c *console) statusView() statusView {
	st := c.a.Status()
	local := c.a.peerLocal()
	self := nodeCard{Title: "This node", Known: true, Connected: true, NodeID: st.NodeID,
		ID: PeerID(st.GroupID, st.Version, st.NodeID), Role: st.State, Mode: st.BackupMode,
		Version: st.Version, LastSync: local.LastSync, Services: local.Services, Unhealthy: st.Unhealthy}
	peer := nodeCard{Title: "Peer", Note: "the peer link is off ([peer] enabled = false)"}
	if p := st.Peer; p != nil {
		peer = nodeCard{Title: "Peer", Known: p.NodeID != "", Connected: p.Connected, ID: p.ID, NodeID: p.NodeID,
			Role: p.Role, Mode: p.BackupMode, Version: p.Version, LastSync: p.LastSync, Services: p.Services,
			Unhealthy: p.Unhealthy}
		if !p.Connected {
			peer.Note = "DOWN since " + consoleTime(p.Since)
			if p.LastError != "" {
				peer.Note += ": " + p.LastError
			}
		}
	}
	v := statusView{Nodes: []nodeCard{self, peer}, Swap: st.Swap, Events: st.Events}
	if devs, ok := st.Parts["berofos"].([]berofos.DeviceStatus); ok {
		for _, d := range devs {
			v.Berofos = append(v.Berofos, berofosCard{DeviceStatus: d, Ports: berofosLEDs(d, c.a.cfg.Berofos.Bypass),
				Fail: d.Watchdog == 2})
		}
	}
	if ss, ok := st.Parts["sync"].(pbxsync.Status); ok {
		v.Sync = &ss
	}
	return v
}

// berofosLEDs draws ports A-D the way the device's front shows them (berofos manual,
// "Relay mode"): mode 0 connects A-D (A and D green, B and C red); mode 1 connects A-B, and
// in the bypass scenario also C-D; an unreachable device or an unknown mode is grey.
func berofosLEDs(d berofos.DeviceStatus, bypass bool) []ledPort {
	on := map[string]bool{}
	switch {
	case !d.Reachable || d.Mode < 0:
		return []ledPort{{"A", "unknown"}, {"B", "unknown"}, {"C", "unknown"}, {"D", "unknown"}}
	case d.Mode == 0:
		on["A"], on["D"] = true, true
	case d.Mode == 1:
		on["A"], on["B"] = true, true
		on["C"], on["D"] = bypass, bypass
	}
	out := make([]ledPort, 0, 4)
	for _, p := range []string{"A", "B", "C", "D"} {
		s := "off"
		if on[p] {
			s = "on"
		}
		out = append(out, ledPort{p, s})
	}
	return out
}

// eventsView is the System Events page's table: the seed's Figure 10, newest first.
type eventsView struct {
	Filter eventFilter
	Rows   []Event
	More   int    // matching events not shown
	UpTo   uint64 // the newest event shown, for "mark all read"
	Unread int
	CSRF   string
}

// consoleMaxRows is the most events one page shows.
const consoleMaxRows = 300

func (c *console) eventsView(f eventFilter, csrf string) eventsView {
	v := eventsView{Filter: f, CSRF: csrf}
	all := c.a.events.log.all()
	for _, e := range slices.Backward(all) {
		if !f.match(e) {
			continue
		}
		if e.Status != StatusRead {
			v.Unread++
		}
		if len(v.Rows) == consoleMaxRows {
			v.More++
			continue
		}
		v.Rows = append(v.Rows, e)
		v.UpTo = max(v.UpTo, e.Seq)
	}
	return v
}

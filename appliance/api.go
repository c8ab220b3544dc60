package appliance

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	"github.com/redundantd/redundantd/vrrp"
)

// StatusResponse is the body of GET /api/v1/status.
type StatusResponse struct {
	NodeID  string `json:"node_id"`
	Enabled bool   `json:"enabled"`
	// State is "initialize", "backup" or "master"; "disabled" when redundancy is off.
	State       string            `json:"state"`
	GroupID     uint8             `json:"group_id"`
	Priority    uint8             `json:"priority"`
	VirtualIPs  []string          `json:"virtual_ips"`
	Holding     []string          `json:"holding"`   // virtual IPs this node holds now (confirmed by netlink)
	MasterIP    string            `json:"master_ip"` // the current Master's address as last heard
	Since       string            `json:"since"`     // RFC 3339 time of the last transition
	Transitions uint64            `json:"transitions"`
	Dropped     map[string]uint64 `json:"dropped"` // rejected adverts by reason
	Adverts     AdvertCounts      `json:"adverts"` // adverts sent and received (summed over the groups)
	Uptime      string            `json:"uptime"`
	// Parts holds the status of each part by name: "berofos" (one entry per device), "sync".
	Parts map[string]any `json:"parts,omitempty"`
	// Events is the state of the event log: how many are kept, how many only in memory.
	Events EventStoreStatus `json:"events"`
	// BackupMode is the group's Backup mode ("active" or "passive") as this node knows it,
	// with when and by whom it was last set at run time.
	BackupMode string    `json:"backup_mode"`
	ModeSetAt  time.Time `json:"mode_set_at,omitzero"`
	ModeSetBy  string    `json:"mode_set_by,omitempty"`
	// Passive: the VRRP engine will not take over on its own while Backup.
	Passive bool `json:"passive"`
	// Fault says why the node is out of the protocol (its interface gone or down).
	Fault string `json:"fault,omitempty"`
	// RecordError says why the record of claimed virtual IPs is kept in memory only.
	RecordError string `json:"record_error,omitempty"`
	// PreemptSuppressed: this node resigned (a swap, a failed service) and does not take the
	// Master role back by preemption until it next becomes Master by Master_Down or takeover.
	PreemptSuppressed bool `json:"preempt_suppressed,omitempty"`
	// Unhealthy says why the PBX services fail their checks; "" when healthy.
	Unhealthy string `json:"unhealthy,omitempty"`
	// Peer is the other node as the peer link shows it; nil when the link is off.
	Peer *PeerView `json:"peer,omitempty"`
	// Services are the PBX services of this node, in configuration order.
	Services []ServiceStatus `json:"services,omitempty"`
	// Swap is the swap in progress or the last one.
	Swap *SwapResult `json:"swap,omitempty"`
	// Notifications are the notification channels' counters.
	Notifications []ChannelStatus `json:"notifications,omitempty"`
	// Groups are the node's VRRP groups one by one when it runs several ([[redundancy.group]]);
	// State and the keys above are then the unit's (docs/configuration.md).
	Groups []GroupStatus `json:"groups,omitempty"`
	// LeftMaster is the last time this node (the unit, with groups) left the Master role and
	// why, as the engine reported it: with groups the reason names the group whose move took
	// the whole unit out ("group eth1/18: ..."). nil until it has left Master once.
	LeftMaster *RoleChange `json:"left_master,omitempty"`
	// SyncDown says why the replication is enabled but not running (a full or read-only
	// state_dir); it is retried.
	SyncDown string `json:"sync_down,omitempty"`
	// StateError says why the Backup mode and last role are not saved in state_dir.
	StateError string `json:"state_error,omitempty"`
	Version    string `json:"version"`
}

// AdvertCounts are the VRRP adverts a node (or one of its groups) sent and received since
// the daemon started: received counts only those that passed the RFC 3768 section 7.1
// checks (the others are StatusResponse.Dropped); priority 0 is a Master resigning.
type AdvertCounts struct {
	Sent                 uint64 `json:"sent"`
	SentPriorityZero     uint64 `json:"sent_priority_zero"`
	SendErrors           uint64 `json:"send_errors"`
	Received             uint64 `json:"received"`
	ReceivedPriorityZero uint64 `json:"received_priority_zero"`
}

func advertCounts(c vrrp.AdvertCounts) AdvertCounts {
	return AdvertCounts{Sent: c.Sent, SentPriorityZero: c.SentPriorityZero, SendErrors: c.SendErrors,
		Received: c.Received, ReceivedPriorityZero: c.ReceivedPriorityZero}
}

// RoleChange is one change of the node's VRRP role, in the API's status.
type RoleChange struct {
	At     time.Time `json:"at"`
	From   string    `json:"from"`
	To     string    `json:"to"`
	Cause  string    `json:"cause"`  // the protocol's cause, e.g. "interface down" (vrrp.Cause)
	Reason string    `json:"reason"` // the engine's words, e.g. "group eth1/18: interface eth1 has no carrier"
}

// BackupModeRequest is the body of PUT /api/v1/backup-mode.
type BackupModeRequest struct {
	Mode string `json:"mode"`
}

// BackupModeResponse answers PUT /api/v1/backup-mode.
type BackupModeResponse struct {
	Mode string `json:"mode"`
	// Peer is "confirmed" when the other node acknowledged the mode, else why not (it gets
	// the mode when the link is back: the newer setting wins).
	Peer string `json:"peer"`
}

// Status reports the node's current state.
func (a *Appliance) Status() StatusResponse {
	rc := a.cfg.Redundancy
	s := StatusResponse{
		NodeID:     a.cfg.Node.ID,
		Enabled:    rc.Enabled,
		State:      "disabled",
		GroupID:    rc.GroupID,
		Priority:   rc.Priority,
		VirtualIPs: make([]string, 0, len(rc.VirtualIPs)),
		Holding:    []string{},
		Dropped:    map[string]uint64{},
		Events:     a.events.status(),
		Unhealthy:  a.health(),
		Swap:       a.LastSwap(),
		Version:    Version,
		SyncDown:   a.SyncDown(),
	}
	if a.notifier != nil {
		s.Notifications = a.notifier.Status()
	}
	m := a.mode()
	s.BackupMode, s.ModeSetAt, s.ModeSetBy = string(m.Mode), m.SetAt, m.SetBy
	a.stMu.Lock()
	s.StateError = a.stateErr
	a.stMu.Unlock()
	if a.peer != nil {
		v := a.peer.Status()
		s.Peer = &v
	}
	if a.services != nil {
		s.Services = a.services.Status().([]ServiceStatus)
	}
	for _, p := range rc.VirtualIPs {
		s.VirtualIPs = append(s.VirtualIPs, p.String())
	}
	if !a.started.IsZero() {
		s.Uptime = a.now().Sub(a.started).Truncate(time.Second).String()
	}
	for _, p := range a.partList() {
		if s.Parts == nil {
			s.Parts = map[string]any{}
		}
		s.Parts[p.Name()] = p.Status()
	}
	if a.router == nil {
		return s
	}
	st := a.router.Status()
	s.Groups = a.groupStatus()
	a.leftMu.Lock()
	if a.leftMaster != nil {
		lm := *a.leftMaster
		s.LeftMaster = &lm
	}
	a.leftMu.Unlock()
	s.State = st.State.String()
	s.Priority = st.Priority
	if st.MasterIP.IsValid() {
		s.MasterIP = st.MasterIP.String()
	}
	if !st.Since.IsZero() {
		s.Since = st.Since.UTC().Format(time.RFC3339Nano)
	}
	s.Transitions = st.Transitions
	s.Passive, s.Fault, s.RecordError, s.PreemptSuppressed = st.Passive, st.Fault, st.RecordError, st.PreemptSuppressed
	for _, p := range st.VirtualIPs {
		s.Holding = append(s.Holding, p.String())
	}
	for k, v := range st.Dropped {
		s.Dropped[k] = v
	}
	s.Adverts = advertCounts(st.Adverts)
	return s
}

// Handler serves the HTTP API:
//
//	GET /metrics                   Prometheus metrics (metrics.go)
//	GET /api/v1/status             the node's state (StatusResponse)
//	GET /api/v1/events?after=SEQ   the retained event log, oldest first
//	POST /api/v1/events/read       mark events read: {"seqs":[..]} or {"up_to":SEQ}
//	POST /api/v1/sync              replicate now (on the Master), answers the run's figures
//	PUT /api/v1/backup-mode        {"mode":"active"|"passive"}: the group's Backup mode
//	POST /api/v1/swap              {"force":bool,"drain":"5m"}: hand the Master role over
//	DELETE /api/v1/swap            cancel a swap still draining or syncing
//
// The server in Run puts apiGuard in front: mutating calls need the bearer token.
//
// Mutating requests share one rate limit (429 when exceeded), so a flood can neither run
// the replication back to back nor push the log's events out; concurrent "sync now"
// requests share runs.
func (a *Appliance) Handler() http.Handler {
	mux := http.NewServeMux()
	mutating := func(h http.HandlerFunc) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if !a.mutating.allow(a.now()) {
				w.Header().Set("Retry-After", "1")
				writeJSON(w, http.StatusTooManyRequests, map[string]string{"error": "too many requests; try again in a second"})
				return
			}
			h(w, r)
		}
	}
	mux.HandleFunc("GET /api/v1/status", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, a.Status())
	})
	mux.HandleFunc("GET /api/v1/events", func(w http.ResponseWriter, r *http.Request) {
		var after uint64
		if v := r.URL.Query().Get("after"); v != "" {
			n, err := strconv.ParseUint(v, 10, 64)
			if err != nil {
				writeJSON(w, http.StatusBadRequest, map[string]string{"error": "after: not a sequence number"})
				return
			}
			after = n
		}
		ev, _ := a.events.log.since(after)
		if ev == nil {
			ev = []Event{}
		}
		writeJSON(w, http.StatusOK, ev)
	})
	mux.HandleFunc("POST /api/v1/events/read", mutating(func(w http.ResponseWriter, r *http.Request) {
		var req MarkReadRequest
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(&req); err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "body: " + err.Error()})
			return
		}
		if len(req.Seqs) == 0 && req.UpTo == 0 {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "name the events: seqs or up_to"})
			return
		}
		writeJSON(w, http.StatusOK, MarkReadResponse{Marked: a.events.markRead(req.Seqs, req.UpTo)})
	}))
	mux.Handle("GET /metrics", a.metrics.handler())
	mux.HandleFunc("PUT /api/v1/backup-mode", mutating(a.handleBackupMode))
	mux.HandleFunc("POST /api/v1/swap", mutating(a.handleSwap))
	mux.HandleFunc("DELETE /api/v1/swap", mutating(func(w http.ResponseWriter, r *http.Request) {
		if !a.CancelSwap() {
			writeJSON(w, http.StatusConflict, map[string]string{"error": "no swap is pending"})
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"cancelled": "true"})
	}))
	mux.HandleFunc("POST /api/v1/sync", mutating(func(w http.ResponseWriter, r *http.Request) {
		if a.syncPart() == nil {
			writeJSON(w, http.StatusConflict, map[string]string{"error": "replication is not enabled ([sync] enabled = false)"})
			return
		}
		// A large run may outlast the server's write timeout.
		_ = http.NewResponseController(w).SetWriteDeadline(time.Time{})
		st, err := a.syncNow(r.Context())
		if err != nil {
			writeJSON(w, http.StatusConflict, map[string]any{"error": err.Error(), "stats": st})
			return
		}
		writeJSON(w, http.StatusOK, st)
	}))
	return mux
}

func decodeBody(w http.ResponseWriter, r *http.Request, v any) bool {
	if r.ContentLength == 0 {
		return true
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "body: " + err.Error()})
		return false
	}
	return true
}

func (a *Appliance) handleBackupMode(w http.ResponseWriter, r *http.Request) {
	var req BackupModeRequest
	if !decodeBody(w, r, &req) {
		return
	}
	m, err := ParseBackupMode(req.Mode)
	if err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, a.SetBackupMode(r.Context(), m, "api on "+a.cfg.Node.ID))
}

// SetBackupMode sets the group's Backup mode here (kept in state_dir, applied to the engine)
// and forwards it to the peer, waiting up to 5 s for its acknowledgement. by says who set it
// ("api on pbx-a", "console user admin on pbx-a"); it is shown with the mode.
func (a *Appliance) SetBackupMode(ctx context.Context, m BackupMode, by string) BackupModeResponse {
	a.setMode(modeRecord{Mode: m, SetAt: a.now(), SetBy: by})
	resp := BackupModeResponse{Mode: string(m), Peer: "no peer link configured"}
	if a.peer != nil {
		ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		resp.Peer = "confirmed"
		if err := a.peer.Request(ctx, PeerRequest{Type: PeerRequestSetBackupMode, Mode: string(m)}); err != nil {
			resp.Peer = "not reached (it takes the mode when the link is back): " + err.Error()
		}
	}
	return resp
}

func (a *Appliance) handleSwap(w http.ResponseWriter, r *http.Request) {
	var req SwapRequest
	if !decodeBody(w, r, &req) {
		return
	}
	_ = http.NewResponseController(w).SetWriteDeadline(time.Time{}) // a drain may take minutes
	res, err := a.Swap(r.Context(), req)
	code := http.StatusOK
	if err != nil {
		code = http.StatusConflict
	}
	writeJSON(w, code, res)
}

// MarkReadRequest is the body of POST /api/v1/events/read: the events to mark, by number,
// or every event up to and including UpTo.
type MarkReadRequest struct {
	Seqs []uint64 `json:"seqs,omitempty"`
	UpTo uint64   `json:"up_to,omitempty"`
}

// MarkReadResponse answers POST /api/v1/events/read.
type MarkReadResponse struct {
	Marked int `json:"marked"`
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

package appliance

import (
	"bytes"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/redundantd/redundantd/appliance/internal/promtext"
	"github.com/redundantd/redundantd/berofos"
	pbxsync "github.com/redundantd/redundantd/sync"
	"github.com/redundantd/redundantd/vrrp"
)

// metrics exposes the node on GET /metrics in the Prometheus text format (issue 11 section
// 3). It reads the same snapshots as the status answer at scrape time, so nothing on the
// transition path updates a metric except the transition counter by cause; the names follow
// the keepalived exporters' (state, transitions, adverts dropped by reason, priority) with
// the appliance's own beside them (peer, services, berofos, sync, notifications).
//
// The page is written by appliance/internal/promtext rather than client_golang, whose
// protocol buffers cost more memory than the daemon's whole gap to keepalived (see that
// package and docs/benchmarks.md, "resources"); the tests read it with Prometheus's own
// parser and promtool.
type metrics struct {
	a *Appliance

	mu          sync.Mutex
	transitions map[[3]string]uint64 // from, to, cause -> count
}

func newMetrics(a *Appliance) *metrics {
	return &metrics{a: a, transitions: map[[3]string]uint64{}}
}

// countTransition is called for every engine event (from the engine's goroutine: a map
// increment under a mutex, nothing more).
func (m *metrics) countTransition(e vrrp.Event) {
	m.mu.Lock()
	m.transitions[[3]string{e.From.String(), e.To.String(), e.Cause.String()}]++
	m.mu.Unlock()
}

func gaugeF(name, help string, labels ...string) *promtext.Family {
	return promtext.MustFamily("redundantd_"+name, help, promtext.Gauge, labels...)
}

func counterF(name, help string, labels ...string) *promtext.Family {
	return promtext.MustFamily("redundantd_"+name, help, promtext.Counter, labels...)
}

var (
	mUp            = gaugeF("up", "1 while the daemon runs.")
	mInfo          = gaugeF("info", "The node and its software version.", "node", "version")
	mState         = gaugeF("vrrp_state", "1 for the group's current VRRP state, 0 for the others.", "group", "state")
	mPriority      = gaugeF("vrrp_priority", "The group's current VRRP priority.", "group")
	mPassive       = gaugeF("vrrp_passive", "1 when the node will not take over on its own (Passive Backup).", "group")
	mFault         = gaugeF("vrrp_fault", "1 while the group is out of the protocol (interface gone or down).", "group")
	mTransitions   = counterF("vrrp_transitions_total", "The node's state transitions by cause.", "group", "from", "to", "cause")
	mDropped       = counterF("vrrp_adverts_dropped_total", "Adverts rejected by the RFC 3768 section 7.1 checks, by reason.", "group", "reason")
	mSent          = counterF("vrrp_adverts_sent_total", "Adverts sent (one per destination).", "group")
	mSendErrors    = counterF("vrrp_advert_send_errors_total", "Adverts the kernel refused to send.", "group")
	mReceived      = counterF("vrrp_adverts_received_total", "Adverts received that passed the checks.", "group")
	mZeroSent      = counterF("vrrp_priority_zero_sent_total", "Priority-0 adverts sent: this node resigning the Master role.", "group")
	mZeroReceived  = counterF("vrrp_priority_zero_received_total", "Priority-0 adverts received: a Master resigning.", "group")
	mHolding       = gaugeF("vrrp_virtual_ips_held", "Virtual IPs this node holds now.", "group")
	mPeerUp        = gaugeF("peer_up", "1 while the peer link is connected.")
	mPeerMismatch  = gaugeF("peer_mismatches", "Settings in which the peer differs from this node.")
	mBackupPassive = gaugeF("backup_mode_passive", "1 when the group's Backup mode is passive.")
	mSvcRunning    = gaugeF("service_running", "1 while the PBX service runs on this node.", "service")
	mSvcHealthy    = gaugeF("service_healthy", "1 while the service passes its check.", "service")
	mFosReachable  = gaugeF("berofos_reachable", "1 when the last read of the device succeeded.", "device")
	mFosInPlace    = gaugeF("berofos_in_place", "1 when the device is confirmed in the mode this node wants.", "device")
	mFosMode       = gaugeF("berofos_relay_mode", "The relay mode last read (-1 unknown).", "device")
	mFosChanges    = counterF("berofos_changes_total", "Relay mode changes this node made and confirmed by reading the device back.", "device")
	mSyncRuns      = counterF("sync_runs_total", "Replication runs.")
	mSyncLastOK    = gaugeF("sync_last_success_timestamp_seconds", "When the last replication run succeeded.")
	mSyncLag       = gaugeF("sync_lag_seconds", "Seconds since the last successful replication run: how far the Backup's copy may be behind.")
	mSyncDuration  = gaugeF("sync_last_run_duration_seconds", "How long the last replication run took.")
	mSyncBytes     = gaugeF("sync_last_run_sent_bytes", "Bytes sent by the last replication run, TLS included.")
	mSyncFailing   = gaugeF("sync_last_run_failed", "1 when the last replication run failed.")
	mSyncJunk      = counterF("sync_junk_connections_total", "Connections to the sync port refused before a run (probes, wrong certificates).")
	mEventsMemOnly = gaugeF("events_unpersisted", "Events kept in memory only (the state directory refuses writes).")
	mNotifySent    = counterF("notify_sent_total", "Events delivered by the notification channel.", "channel", "type")
	mNotifyFailed  = counterF("notify_failed_attempts_total", "Failed delivery attempts (each retry counts).", "channel", "type")
	mNotifyDropped = counterF("notify_dropped_total", "Events the channel gave up: queue full, retries used up, or the daemon stopping.", "channel", "type", "reason")
	mNotifyQueued  = gaugeF("notify_queued", "Events waiting in the channel's queue.", "channel", "type")
)

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// collect reads the node's snapshots into one scrape's samples.
func (m *metrics) collect(s *promtext.Set) {
	a := m.a
	st := a.Status()
	s.Add(mUp, 1)
	s.Add(mInfo, 1, st.NodeID, Version)
	s.Add(mBackupPassive, b2f(st.BackupMode == string(ModePassive)))
	s.Add(mEventsMemOnly, float64(st.Events.Unpersisted))
	if a.router != nil {
		m.collectVRRP(s, st)
	}
	if st.Peer != nil {
		s.Add(mPeerUp, b2f(st.Peer.Connected))
		s.Add(mPeerMismatch, float64(len(st.Peer.Mismatches)))
	}
	for _, sv := range st.Services {
		s.Add(mSvcRunning, b2f(sv.State == ServiceRunning), sv.Name)
		s.Add(mSvcHealthy, b2f(sv.Healthy), sv.Name)
	}
	if devs, ok := st.Parts["berofos"].([]berofos.DeviceStatus); ok {
		for _, d := range devs {
			s.Add(mFosReachable, b2f(d.Reachable), d.Name)
			s.Add(mFosInPlace, b2f(d.InPlace), d.Name)
			s.Add(mFosMode, float64(d.Mode), d.Name)
			s.Add(mFosChanges, float64(d.Changes), d.Name)
		}
	}
	if ss, ok := st.Parts["sync"].(pbxsync.Status); ok {
		collectSync(s, ss, a.now())
	}
	for _, c := range st.Notifications {
		s.Add(mNotifySent, float64(c.Sent), c.Name, c.Type)
		s.Add(mNotifyFailed, float64(c.Failed), c.Name, c.Type)
		s.Add(mNotifyDropped, float64(c.DroppedQueueFull), c.Name, c.Type, "queue_full")
		s.Add(mNotifyDropped, float64(c.DroppedRetries), c.Name, c.Type, "retries")
		s.Add(mNotifyDropped, float64(c.Dropped-min(c.Dropped, c.DroppedQueueFull+c.DroppedRetries)), c.Name, c.Type, "stopped")
		s.Add(mNotifyQueued, float64(c.Queued), c.Name, c.Type)
	}
}

func collectSync(s *promtext.Set, ss pbxsync.Status, now time.Time) {
	s.Add(mSyncRuns, float64(ss.Runs))
	if !ss.LastSuccess.IsZero() {
		s.Add(mSyncLastOK, float64(ss.LastSuccess.UnixNano())/1e9)
		s.Add(mSyncLag, max(0, now.Sub(ss.LastSuccess).Seconds()))
	}
	s.Add(mSyncDuration, ss.LastRun.Duration.Seconds())
	s.Add(mSyncBytes, float64(ss.LastRun.BytesSent))
	s.Add(mSyncFailing, b2f(ss.LastError != ""))
	s.Add(mSyncJunk, float64(ss.JunkConnections))
}

// collectVRRP writes the groups. A node with one group labels it with its group ID
// (group="18"); a node with [[redundancy.group]]s writes each group under its name
// (group="eth1/18"), and the unit's own role (transitions, Passive) under "unit".
func (m *metrics) collectVRRP(s *promtext.Set, st StatusResponse) {
	unit := strconv.Itoa(int(st.GroupID))
	if len(st.Groups) == 0 {
		collectGroup(s, unit, st.State, st.Priority, st.Fault != "", len(st.Holding), st.Dropped, st.Adverts)
	} else {
		unit = "unit"
		for _, g := range st.Groups {
			collectGroup(s, g.Name, g.State, g.Priority, g.Fault != "", len(g.Holding), g.Dropped, g.Adverts)
		}
	}
	s.Add(mPassive, b2f(st.Passive), unit)
	m.mu.Lock()
	defer m.mu.Unlock()
	for k, n := range m.transitions {
		s.Add(mTransitions, float64(n), unit, k[0], k[1], k[2])
	}
}

func collectGroup(s *promtext.Set, g, state string, prio uint8, fault bool, held int, dropped map[string]uint64, c AdvertCounts) {
	for _, v := range []vrrp.State{vrrp.StateInitialize, vrrp.StateBackup, vrrp.StateMaster} {
		s.Add(mState, b2f(state == v.String()), g, v.String())
	}
	s.Add(mPriority, float64(prio), g)
	s.Add(mFault, b2f(fault), g)
	s.Add(mHolding, float64(held), g)
	for reason, n := range dropped {
		s.Add(mDropped, float64(n), g, reason)
	}
	s.Add(mSent, float64(c.Sent), g)
	s.Add(mSendErrors, float64(c.SendErrors), g)
	s.Add(mReceived, float64(c.Received), g)
	s.Add(mZeroSent, float64(c.SentPriorityZero), g)
	s.Add(mZeroReceived, float64(c.ReceivedPriorityZero), g)
}

// handler serves the page. Uncompressed: it is a few KB, and gzip for a scraper that
// asks for it (Prometheus always does) would allocate a compressor per scrape on an idle
// daemon whose garbage collections empty any pool between scrapes 15 s apart. A sample
// the writer refuses (a bug) is logged and left out; the rest is served.
func (m *metrics) handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var s promtext.Set
		m.collect(&s)
		var b bytes.Buffer
		if _, err := s.WriteTo(&b); err != nil {
			m.a.log.Error("metrics: samples left out", "err", err)
		}
		w.Header().Set("Content-Type", promtext.ContentType)
		w.Header().Set("Content-Length", strconv.Itoa(b.Len()))
		if r.Method != http.MethodHead {
			_, _ = w.Write(b.Bytes())
		}
	})
}

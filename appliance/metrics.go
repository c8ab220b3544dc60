package appliance

import (
	"net/http"
	"strconv"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/redundantd/redundantd/berofos"
	pbxsync "github.com/redundantd/redundantd/sync"
	"github.com/redundantd/redundantd/vrrp"
)

// metrics exposes the node on GET /metrics in the Prometheus text format (issue 11 section
// 3). It reads the same snapshots as the status answer at scrape time, so nothing on the
// transition path updates a metric except the transition counter by cause; the names follow
// the keepalived exporters' (state, transitions, adverts dropped by reason, priority) with
// the appliance's own beside them (peer, services, berofos, sync).
type metrics struct {
	a *Appliance

	mu          sync.Mutex
	transitions map[[3]string]uint64 // from, to, cause -> count
}

var _ prometheus.Collector = (*metrics)(nil)

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

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc("redundantd_"+name, help, labels, nil)
}

var (
	mUp            = desc("up", "1 while the daemon runs.")
	mInfo          = desc("info", "The node and its software version.", "node", "version")
	mState         = desc("vrrp_state", "1 for the node's current VRRP state, 0 for the others.", "group", "state")
	mPriority      = desc("vrrp_priority", "The node's current VRRP priority.", "group")
	mPassive       = desc("vrrp_passive", "1 when the node will not take over on its own (Passive Backup).", "group")
	mFault         = desc("vrrp_fault", "1 while the node is out of the protocol (interface gone or down).", "group")
	mTransitions   = desc("vrrp_transitions_total", "State transitions by cause.", "group", "from", "to", "cause")
	mDropped       = desc("vrrp_adverts_dropped_total", "Adverts rejected by the RFC 3768 section 7.1 checks, by reason.", "group", "reason")
	mHolding       = desc("vrrp_virtual_ips_held", "Virtual IPs this node holds now.", "group")
	mPeerUp        = desc("peer_up", "1 while the peer link is connected.")
	mPeerMismatch  = desc("peer_mismatches", "Settings in which the peer differs from this node.")
	mBackupPassive = desc("backup_mode_passive", "1 when the group's Backup mode is passive.")
	mSvcRunning    = desc("service_running", "1 while the PBX service runs on this node.", "service")
	mSvcHealthy    = desc("service_healthy", "1 while the service passes its check.", "service")
	mFosReachable  = desc("berofos_reachable", "1 when the last read of the device succeeded.", "device")
	mFosInPlace    = desc("berofos_in_place", "1 when the device is confirmed in the mode this node wants.", "device")
	mFosMode       = desc("berofos_relay_mode", "The relay mode last read (-1 unknown).", "device")
	mSyncRuns      = desc("sync_runs_total", "Replication runs.")
	mSyncLastOK    = desc("sync_last_success_timestamp_seconds", "When the last replication run succeeded.")
	mSyncDuration  = desc("sync_last_run_duration_seconds", "How long the last replication run took.")
	mSyncBytes     = desc("sync_last_run_sent_bytes", "Bytes sent by the last replication run, TLS included.")
	mSyncFailing   = desc("sync_last_run_failed", "1 when the last replication run failed.")
	mSyncJunk      = desc("sync_junk_connections_total", "Connections to the sync port refused before a run (probes, wrong certificates).")
	mEventsMemOnly = desc("events_unpersisted", "Events kept in memory only (the state directory refuses writes).")
)

// Describe sends every descriptor.
func (m *metrics) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{mUp, mInfo, mState, mPriority, mPassive, mFault, mTransitions, mDropped,
		mHolding, mPeerUp, mPeerMismatch, mBackupPassive, mSvcRunning, mSvcHealthy, mFosReachable, mFosInPlace,
		mFosMode, mSyncRuns, mSyncLastOK, mSyncDuration, mSyncBytes, mSyncFailing, mSyncJunk, mEventsMemOnly} {
		ch <- d
	}
}

func gauge(d *prometheus.Desc, v float64, labels ...string) prometheus.Metric {
	return prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
}

func counter(d *prometheus.Desc, v float64, labels ...string) prometheus.Metric {
	return prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, labels...)
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// Collect reads the node's snapshots.
func (m *metrics) Collect(ch chan<- prometheus.Metric) {
	a := m.a
	st := a.Status()
	ch <- gauge(mUp, 1)
	ch <- gauge(mInfo, 1, st.NodeID, Version)
	ch <- gauge(mBackupPassive, b2f(st.BackupMode == string(ModePassive)))
	ch <- gauge(mEventsMemOnly, float64(st.Events.Unpersisted))
	if a.router != nil {
		m.collectVRRP(ch, st)
	}
	if st.Peer != nil {
		ch <- gauge(mPeerUp, b2f(st.Peer.Connected))
		ch <- gauge(mPeerMismatch, float64(len(st.Peer.Mismatches)))
	}
	for _, s := range st.Services {
		ch <- gauge(mSvcRunning, b2f(s.State == ServiceRunning), s.Name)
		ch <- gauge(mSvcHealthy, b2f(s.Healthy), s.Name)
	}
	if devs, ok := st.Parts["berofos"].([]berofos.DeviceStatus); ok {
		for _, d := range devs {
			ch <- gauge(mFosReachable, b2f(d.Reachable), d.Name)
			ch <- gauge(mFosInPlace, b2f(d.InPlace), d.Name)
			ch <- gauge(mFosMode, float64(d.Mode), d.Name)
		}
	}
	if ss, ok := st.Parts["sync"].(pbxsync.Status); ok {
		ch <- counter(mSyncRuns, float64(ss.Runs))
		if !ss.LastSuccess.IsZero() {
			ch <- gauge(mSyncLastOK, float64(ss.LastSuccess.UnixNano())/1e9)
		}
		ch <- gauge(mSyncDuration, ss.LastRun.Duration.Seconds())
		ch <- gauge(mSyncBytes, float64(ss.LastRun.BytesSent))
		ch <- gauge(mSyncFailing, b2f(ss.LastError != ""))
		ch <- counter(mSyncJunk, float64(ss.JunkConnections))
	}
}

func (m *metrics) collectVRRP(ch chan<- prometheus.Metric, st StatusResponse) {
	g := strconv.Itoa(int(st.GroupID))
	for _, s := range []vrrp.State{vrrp.StateInitialize, vrrp.StateBackup, vrrp.StateMaster} {
		ch <- gauge(mState, b2f(st.State == s.String()), g, s.String())
	}
	ch <- gauge(mPriority, float64(st.Priority), g)
	ch <- gauge(mPassive, b2f(st.Passive), g)
	ch <- gauge(mFault, b2f(st.Fault != ""), g)
	ch <- gauge(mHolding, float64(len(st.Holding)), g)
	for reason, n := range st.Dropped {
		ch <- counter(mDropped, float64(n), g, reason)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for k, n := range m.transitions {
		ch <- counter(mTransitions, float64(n), g, k[0], k[1], k[2])
	}
}

// handler serves the registry of this node alone (no process-wide default registry).
//
// Uncompressed: the page is about 2 KB, and compressing it for a scraper that asks for gzip
// (Prometheus always does) allocated about 860 KB per scrape instead of 66 KB (a fresh
// compressor each time: the handler's pool of them is emptied by the garbage collections
// between scrapes 15 s apart), which grew an idle daemon's heap (docs/benchmarks.md,
// resources).
func (m *metrics) handler() http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(m)
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError, DisableCompression: true})
}

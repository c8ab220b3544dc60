package sync

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"slices"
	"strings"
	stdsync "sync"
	"sync/atomic"
	"time"

	"github.com/robfig/cron/v3"
	"lukechampine.com/blake3"
)

// Role is this node's part in replication; it follows the VRRP state.
type Role uint8

const (
	RoleNone    Role = 0 // neither sends nor accepts data (start-up, fault)
	RoleSource  Role = 1 // VRRP Master: runs scheduled syncs towards the peer
	RoleReplica Role = 2 // VRRP Backup (Active or Passive): accepts the source's data
)

func (r Role) String() string {
	switch r {
	case RoleSource:
		return "source"
	case RoleReplica:
		return "replica"
	default:
		return "none"
	}
}

// ErrBadRole is returned when decoding a role name that is not none, source or replica.
var ErrBadRole = errors.New("sync: unknown role")

// MarshalText encodes the role by name ("none", "source", "replica"): the API's JSON.
func (r Role) MarshalText() ([]byte, error) {
	if r > RoleReplica {
		return nil, fmt.Errorf("%w: %d", ErrBadRole, uint8(r))
	}
	return []byte(r.String()), nil
}

// UnmarshalText decodes a role name written by MarshalText.
func (r *Role) UnmarshalText(b []byte) error {
	for _, x := range []Role{RoleNone, RoleSource, RoleReplica} {
		if string(b) == x.String() {
			*r = x
			return nil
		}
	}
	return fmt.Errorf("%w: %q", ErrBadRole, b)
}

// Config configures a Node. Both nodes of a pair use the same Paths, in the same order.
type Config struct {
	Paths           []string      // absolute trees, e.g. /etc/asterisk, /var/spool/asterisk/voicemail
	StateDir        string        // manifest, certificate, conflict records (the trash is in each tree)
	Peer            string        // the peer's sync port, host:port: dialled when Dial is nil; names the peer in events
	PeerFingerprint string        // SHA-256 of the peer's certificate, hex (colons allowed)
	Interval        string        // "60s" or a cron spec ("*/5 * * * *", "@hourly"); default "60s"
	Watch           bool          // push changes seen by fsnotify within about a second
	TrashRetention  time.Duration // default 7 days
	MaxDeleteShare  float64       // a run deleting more than this share of the replica's files stops; default 0.2
	Logger          *slog.Logger
	OnEvent         func(Event) // called in order; must not block
	// Dial opens a connection to the peer's sync port; nil dials Peer over TCP (5 s timeout).
	// A lab dials inside a network namespace, a test through a proxy. This node's own port
	// is the listener the caller gives Run (the appliance opens it on sync.listen).
	Dial func(ctx context.Context) (net.Conn, error)
}

// EventKind classifies an Event.
type EventKind string

const (
	EventRun           EventKind = "run"          // a run finished (Stats; Err when it failed)
	EventConflict      EventKind = "conflict"     // a config file changed on both sides; Path is the .conflict copy
	EventMerged        EventKind = "merged"       // a voicemail message recorded on the peer was merged; Path is its new name
	EventWrongPeer     EventKind = "wrong-peer"   // the peer presented another certificate; Detail has its fingerprint
	EventPeerRole      EventKind = "peer-role"    // the peer refused (it is not a replica, trees differ, ...)
	EventDeleteGuard   EventKind = "delete-guard" // a run was stopped by the max-delete guard
	EventPeerConnected EventKind = "peer-connected"
	// EventUnreadable: a run found entries it could not read or list (permission denied,
	// I/O error); it left the replica's copies of them as they were. Path is the first,
	// Detail names them all. A warning: replication of those entries is stalled.
	EventUnreadable EventKind = "unreadable"
	// EventSpecial: the FIFOs, sockets or device nodes in the trees (never replicated)
	// changed since the last report. Informational.
	EventSpecial EventKind = "special-files"
)

// Event is reported through Config.OnEvent.
type Event struct {
	Kind   EventKind
	At     time.Time
	Path   string    // absolute path concerned, when there is one
	Detail string    // human-readable detail
	Stats  *RunStats // EventRun
	Err    error
}

// RunStats describes one run, on the node that ran it (the source).
// Its JSON (the API's) uses snake_case names; Duration is in nanoseconds (duration_ns).
type RunStats struct {
	Started    time.Time     `json:"started"`
	Duration   time.Duration `json:"duration_ns"`
	Full       bool          `json:"full"`        // the replica's manifest had to be compared entry by entry
	Files      int           `json:"files"`       // entries created or updated on the replica
	FilesWhole int           `json:"files_whole"` // sent whole
	FilesDelta int           `json:"files_delta"` // sent as a delta
	FilesLocal int           `json:"files_local"` // copied or renamed on the replica from content it already had
	Deleted    int           `json:"deleted"`
	Pulled     int           `json:"pulled"` // files taken from the replica (failback adopt, merge, conflict copies)
	Conflicts  int           `json:"conflicts"`
	Skipped    int           `json:"skipped"`    // locked folders, files changing while read: retried next run
	BytesSent  int64         `json:"bytes_sent"` // on the wire, TLS included
	BytesRecv  int64         `json:"bytes_recv"`
	Literal    int64         `json:"literal"` // file bytes that had to be sent (before compression)
	Errors     []string      `json:"errors,omitempty"`
	// Unreadable names (absolute paths) the entries either node could not stat, read or
	// list: nothing at or under them was changed or deleted on the replica (event
	// EventUnreadable).
	Unreadable []string `json:"unreadable,omitempty"`
	// Special counts the FIFOs, sockets and device nodes in the source's trees, which are not
	// replicated; SpecialPaths names the first 20 (event EventSpecial when the set changes).
	Special      int      `json:"special"`
	SpecialPaths []string `json:"special_paths,omitempty"`
}

// Status is a snapshot for the appliance. Its JSON (the API's) uses snake_case names and the
// role by name ("none", "source", "replica").
type Status struct {
	Role          Role      `json:"role"`
	Fingerprint   string    `json:"fingerprint"` // this node's certificate
	PeerConnected bool      `json:"peer_connected"`
	LastRun       RunStats  `json:"last_run"`
	LastError     string    `json:"last_error"`
	LastSuccess   time.Time `json:"last_success,omitzero"`
	Runs          uint64    `json:"runs"`
	// JunkConnections counts the connections to the sync port refused before a run could
	// start: a failed TLS handshake (port scans, probes, a certificate other than the
	// peer's) or a bad Hello. They are logged a few times a minute at most.
	JunkConnections uint64 `json:"junk_connections"`
}

var (
	ErrNotSource   = errors.New("sync: this node is not the source")
	ErrNotRunning  = errors.New("sync: node is not running")
	ErrDeleteGuard = errors.New("sync: max-delete guard")
	ErrDiskFull    = errors.New("sync: replica could not write")
)

// Node replicates the trees to or from the peer, depending on its role.
type Node struct {
	cfg    Config
	log    *slog.Logger
	sched  cron.Schedule
	peerFP string
	id     tls.Certificate
	fp     string
	trees  Hash
	retain time.Duration
	share  float64

	role    atomic.Uint32
	roleCh  chan struct{}
	trigger chan struct{}

	runMu     stdsync.Mutex // one run or replica session at a time
	man       *manifest
	fs        *trees
	conn      *peerConn // source side, long-lived
	running   atomic.Bool
	sess      atomic.Pointer[sessionHandle] // replica side
	addr      atomic.Pointer[net.Addr]      // the sync port while Run serves it
	ready     chan struct{}                 // closed once Run serves (Ready)
	readyOnce stdsync.Once

	evMu stdsync.Mutex
	stMu stdsync.Mutex
	st   Status
	// junkLog and wrongPeerEv limit the log lines and wrong-peer events junk connections
	// cause (stMu)
	junkLog, wrongPeerEv logLimit

	noDelta map[string]bool

	// watcher state for skipping the source's stat walk (watch.go)
	sentinel     chan struct{}
	watchOK      atomic.Bool
	watchGen     atomic.Uint64
	lastScanGen  uint64                // watchGen when the last complete source scan started (runMu)
	lastScanOK   bool                  // the watcher was healthy when it started
	lastFullScan time.Time             // time of the last scan; one is forced every fullScanEvery
	lastPrune    time.Time             // block sums no entry refers to are dropped hourly
	lastSpecial  string                // special files last reported by EventSpecial (runMu)
	runHook      func(context.Context) // tests: replaces the run the scheduler starts
	// sendChunkHook, set by tests, runs after each chunk of a file this node reads for
	// sending (source push and replica pull answers); atomic, as a test sets and clears it
	// while the node runs.
	sendChunkHook atomic.Pointer[func(name string)]

	now func() time.Time
}

type sessionHandle struct {
	cancel context.CancelFunc
	done   chan struct{}
}

// New validates cfg and loads (or creates) this node's certificate. It starts nothing.
func New(cfg Config) (*Node, error) {
	if err := checkPlatform(); err != nil {
		return nil, err
	}
	if err := checkPaths(cfg.Paths, cfg.StateDir); err != nil {
		return nil, err
	}
	if _, _, err := net.SplitHostPort(cfg.Peer); err != nil && cfg.Dial == nil {
		return nil, fmt.Errorf("sync: peer %q: %w", cfg.Peer, err)
	}
	if cfg.Peer == "" {
		cfg.Peer = "peer"
	}
	fp, err := normalizeFingerprint(cfg.PeerFingerprint)
	if err != nil {
		return nil, fmt.Errorf("sync: peer_fingerprint: %w", err)
	}
	if cfg.Interval == "" {
		cfg.Interval = "60s"
	}
	sched, err := parseInterval(cfg.Interval)
	if err != nil {
		return nil, fmt.Errorf("sync: interval %q: %w", cfg.Interval, err)
	}
	if cfg.TrashRetention == 0 {
		cfg.TrashRetention = 7 * 24 * time.Hour
	}
	if cfg.TrashRetention < 0 {
		return nil, fmt.Errorf("sync: trash_retention %v: must not be negative", cfg.TrashRetention)
	}
	if cfg.MaxDeleteShare == 0 {
		cfg.MaxDeleteShare = 0.2
	}
	if cfg.MaxDeleteShare < 0 || cfg.MaxDeleteShare > 1 {
		return nil, fmt.Errorf("sync: max_delete %v: want a share in (0, 1]", cfg.MaxDeleteShare)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	id, err := loadOrCreateIdentity(cfg.StateDir)
	if err != nil {
		return nil, err
	}
	own, err := Fingerprint(id.Certificate[0])
	if err != nil {
		return nil, err
	}
	if own == fp {
		return nil, errors.New("sync: peer_fingerprint is this node's own certificate")
	}
	th := blake3.New(32, nil)
	for _, p := range cfg.Paths {
		// Last components only, in order: the nodes of a pair normally use identical paths,
		// but a lab or a migration may place the trees elsewhere.
		th.Write([]byte(filepath.Base(p)))
		th.Write([]byte{0})
	}
	n := &Node{
		cfg: cfg, log: cfg.Logger, sched: sched, peerFP: fp, id: id, fp: own,
		retain: cfg.TrashRetention, share: cfg.MaxDeleteShare,
		roleCh: make(chan struct{}, 1), trigger: make(chan struct{}, 1), sentinel: make(chan struct{}, 1), now: time.Now, noDelta: map[string]bool{},
		ready:       make(chan struct{}),
		junkLog:     logLimit{window: junkLogWindow, burst: junkLogBurst},
		wrongPeerEv: logLimit{window: junkLogWindow, burst: junkLogBurst},
	}
	th.Sum(n.trees[:0])
	n.st.Fingerprint = own
	return n, nil
}

// checkPaths checks the replicated trees (clean, absolute, not nested) and that the state
// folder is outside them.
func checkPaths(paths []string, stateDir string) error {
	if len(paths) == 0 {
		return errors.New("sync: paths: at least one tree is required")
	}
	if len(paths) > maxTrees {
		return fmt.Errorf("sync: paths: at most %d trees", maxTrees)
	}
	for i, p := range paths {
		if !filepath.IsAbs(p) || filepath.Clean(p) != p || p == "/" {
			return fmt.Errorf("sync: paths[%d] %q: want a clean absolute path other than /", i, p)
		}
		for _, q := range paths[:i] {
			if rel, err := filepath.Rel(q, p); err == nil && filepath.IsLocal(rel) || q == p {
				return fmt.Errorf("sync: paths[%d] %q: nested in %q", i, p, q)
			}
			if rel, err := filepath.Rel(p, q); err == nil && filepath.IsLocal(rel) {
				return fmt.Errorf("sync: paths[%d] %q: contains %q", i, p, q)
			}
		}
	}
	if !filepath.IsAbs(stateDir) {
		return fmt.Errorf("sync: state_dir %q: want an absolute path", stateDir)
	}
	for _, p := range paths {
		if rel, err := filepath.Rel(p, stateDir); err == nil && filepath.IsLocal(rel) {
			return fmt.Errorf("sync: state_dir %q: inside replicated tree %q", stateDir, p)
		}
	}
	return nil
}

func parseInterval(s string) (cron.Schedule, error) {
	if d, err := time.ParseDuration(s); err == nil {
		if d < time.Second {
			return nil, errors.New("at least 1s")
		}
		return cron.Every(d), nil
	}
	p := cron.NewParser(cron.SecondOptional | cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)
	return p.Parse(s)
}

// ListenAddr returns the address of the listener Run serves (nil before and after).
func (n *Node) ListenAddr() net.Addr {
	if a := n.addr.Load(); a != nil {
		return *a
	}
	return nil
}

// Ready returns a channel closed once Run serves its listener: the manifest and the trees
// are open and the watcher is up, so the peer can connect and a role set now takes effect
// at once. It stays closed (a second Run after the first returned does not reopen it).
func (n *Node) Ready() <-chan struct{} { return n.ready }

// chunkHook returns the hook sendWhole calls after each chunk (nil outside tests).
func (n *Node) chunkHook() func(string) {
	if h := n.sendChunkHook.Load(); h != nil {
		return *h
	}
	return nil
}

// Fingerprint returns this node's certificate fingerprint (to configure on the peer).
func (n *Node) Fingerprint() string { return n.fp }

// SetRole changes the role; it never blocks. Leaving the replica role aborts a session in
// progress (its temporary files are removed, nothing partial becomes visible).
func (n *Node) SetRole(r Role) {
	old := Role(n.role.Swap(uint32(r)))
	if old == r {
		return
	}
	n.stMu.Lock()
	n.st.Role = r
	n.stMu.Unlock()
	if r != RoleReplica {
		if h := n.sess.Load(); h != nil {
			h.cancel()
		}
	}
	select {
	case n.roleCh <- struct{}{}:
	default:
	}
}

// Role returns the current role.
func (n *Node) Role() Role { return Role(n.role.Load()) }

// Status returns a snapshot.
func (n *Node) Status() Status {
	n.stMu.Lock()
	defer n.stMu.Unlock()
	s := n.st
	s.LastRun.Errors = slices.Clone(s.LastRun.Errors)
	return s
}

func (n *Node) emit(e Event) {
	if e.At.IsZero() {
		e.At = n.now()
	}
	n.evMu.Lock()
	defer n.evMu.Unlock()
	if n.cfg.OnEvent != nil {
		n.cfg.OnEvent(e)
	}
}

func (n *Node) setConnected(c bool) {
	n.stMu.Lock()
	n.st.PeerConnected = c
	n.stMu.Unlock()
}

// Run serves the sync port on ln, which the caller opened (the appliance on sync.listen, a
// lab inside a network namespace, a test on loopback), and, while the role is RoleSource,
// runs scheduled syncs. It closes ln and returns when ctx is done; Ready is closed once it
// serves.
func (n *Node) Run(ctx context.Context, ln net.Listener) error {
	if ln == nil {
		return errors.New("sync: Run without a listener")
	}
	defer ln.Close()
	if !n.running.CompareAndSwap(false, true) {
		return errors.New("sync: Run called twice")
	}
	defer n.running.Store(false)
	n.runMu.Lock()
	man, err := openManifest(filepath.Join(n.cfg.StateDir, "sync.db"), n.cfg.Paths)
	if err != nil {
		n.runMu.Unlock()
		return err
	}
	tfs, err := openTrees(n.cfg.Paths)
	if err != nil {
		man.close()
		n.runMu.Unlock()
		return err
	}
	tfs.removeStaleTemps()
	n.man, n.fs = man, tfs
	n.runMu.Unlock()

	addr := ln.Addr()
	n.addr.Store(&addr)
	defer n.addr.Store(nil)
	ctx, cancel := context.WithCancel(ctx)
	var wg stdsync.WaitGroup
	watching := make(chan struct{})
	wg.Go(func() { n.watch(ctx, watching) }) // pushes changes only with Config.Watch
	<-watching                               // the first run can already rely on the watcher
	wg.Go(func() { n.serve(ctx, ln) })
	wg.Go(func() { n.schedule(ctx) })
	n.readyOnce.Do(func() { close(n.ready) })
	<-ctx.Done()
	ln.Close()
	cancel()
	wg.Wait()
	n.closeState()
	return nil
}

func (n *Node) closeState() {
	n.runMu.Lock()
	defer n.runMu.Unlock()
	if n.conn != nil {
		n.conn.Close()
		n.conn = nil
	}
	if n.man != nil {
		n.man.close()
		n.man = nil
	}
	if n.fs != nil {
		n.fs.close()
		n.fs = nil
	}
}

// schedule runs syncs on the configured schedule while this node is the source, immediately
// on becoming the source, and on watch triggers. Runs never overlap (runMu).
func (n *Node) schedule(ctx context.Context) {
	for {
		if n.Role() != RoleSource {
			select {
			case <-ctx.Done():
				return
			case <-n.roleCh:
				if n.Role() == RoleSource {
					n.scheduledRun(ctx)
				}
				continue
			}
		}
		now := n.now()
		t := time.NewTimer(n.sched.Next(now).Sub(now))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-n.roleCh:
			t.Stop()
			if n.Role() == RoleSource {
				n.scheduledRun(ctx)
			}
		case <-n.trigger:
			t.Stop()
			n.scheduledRun(ctx)
		case <-t.C:
			n.scheduledRun(ctx)
		}
	}
}

func (n *Node) scheduledRun(ctx context.Context) {
	if n.runHook != nil {
		n.runHook(ctx)
		return
	}
	if _, err := n.SyncNow(ctx); err != nil && ctx.Err() == nil {
		n.log.Warn("sync run failed", "err", err)
	}
}

// SyncNow runs one sync immediately (after any run in progress) and returns its statistics.
// The appliance calls it before a planned swap.
func (n *Node) SyncNow(ctx context.Context) (RunStats, error) {
	if !n.running.Load() {
		return RunStats{}, ErrNotRunning
	}
	if n.Role() != RoleSource {
		return RunStats{}, ErrNotSource
	}
	n.runMu.Lock()
	defer n.runMu.Unlock()
	if n.man == nil {
		return RunStats{}, ErrNotRunning
	}
	if n.Role() != RoleSource {
		return RunStats{}, ErrNotSource
	}
	st, err := n.runOnce(ctx)
	n.stMu.Lock()
	n.st.LastRun = st
	n.st.Runs++
	if err != nil {
		n.st.LastError = err.Error()
	} else {
		n.st.LastError = ""
		n.st.LastSuccess = st.Started.Add(st.Duration)
	}
	n.stMu.Unlock()
	stc := st
	n.emit(Event{Kind: EventRun, Stats: &stc, Err: err})
	n.reportEntries(&st)
	return st, err
}

// reportEntries emits EventUnreadable after every run that met unreadable entries, and
// EventSpecial when the special files found differ from those last reported (they are in
// every run's statistics; an event each minute for the same FIFO would bury the others).
// runMu is held.
func (n *Node) reportEntries(st *RunStats) {
	if len(st.Unreadable) > 0 {
		names := st.Unreadable
		more := ""
		if len(names) > maxReported {
			names, more = names[:maxReported], fmt.Sprintf(" and %d more", len(st.Unreadable)-maxReported)
		}
		n.emit(Event{Kind: EventUnreadable, Path: strings.TrimSuffix(names[0], " (on the replica)"),
			Detail: fmt.Sprintf("%d entries could not be read or listed; their copies on the replica are neither changed nor deleted until they can: %s%s",
				len(st.Unreadable), strings.Join(names, ", "), more)})
	}
	key := fmt.Sprint(st.Special, st.SpecialPaths)
	if st.Special > 0 && key != n.lastSpecial {
		n.emit(Event{Kind: EventSpecial, Path: st.SpecialPaths[0],
			Detail: fmt.Sprintf("%d FIFOs, sockets or device nodes are not replicated: %s", st.Special, strings.Join(st.SpecialPaths, ", "))})
	}
	if st.Special > 0 || len(st.Errors) == 0 {
		n.lastSpecial = key
	}
}

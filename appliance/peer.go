package appliance

import (
	"cmp"
	"context"
	"crypto/tls"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	pbxsync "github.com/redundantd/redundantd/sync"
)

// The peer link: one mutually authenticated TLS 1.3 connection between the two nodes (the
// replication's pinned certificates, pbxsync.PinnedTLS), carrying each node's status every
// interval and the requests of a swap and of a backup-mode change. It is also a second
// heartbeat: a peer whose daemon dies closes it at once.
//
// Who dials: both nodes listen; the node with the lower address dials (PeerDials), the other
// only accepts. A new authenticated connection replaces the one in use (the peer dialled
// again, so it lost the old one); if both nodes are given a dialer anyway, both keep the
// connection dialled by the node with the lower node id (peerPrefer). A lost connection is
// redialled with a backoff of 100 ms doubling up to 5 s.
//
// Framing: a 4-byte big-endian length, then a JSON object (snake_case) of at most
// peerMaxFrame bytes: {"type":"hello"|"status","info":{...}}, {"type":"request",
// "request":{...}}, {"type":"response","response":{...}}. Each side sends a hello first and
// a status every interval; unknown types are ignored so that a newer node can talk to an
// older one during an upgrade.

const (
	peerDefaultInterval       = time.Second
	peerDefaultRequestTimeout = 10 * time.Second
	peerHelloTimeout          = 10 * time.Second // TLS handshake and hello exchange
	peerMissed                = 3                // statuses missed before the peer is down
	peerMaxFrame              = 256 << 10
	peerALPN                  = "redundantd-peer/1"
	peerByeTimeout            = 100 * time.Millisecond
	peerByeReasonMax          = 200 // bytes of a received bye's reason kept
)

// PeerConfig configures a PeerLink.
type PeerConfig struct {
	NodeID   string
	Version  string       // this node's software version (the seed's ID: group-version-node)
	Settings PeerSettings // compared with the peer's; a different group id is refused
	// ServerTLS and ClientTLS are the pinned configurations, from pbxsync.PinnedTLS or
	// PeerTLS.
	ServerTLS, ClientTLS *tls.Config
	// Dial opens a connection to the peer's listener; nil makes this node accept only (see
	// PeerDials).
	Dial func(ctx context.Context) (net.Conn, error)
	// Interval between statuses; default 1s. The peer is down after 3 intervals without one.
	Interval time.Duration
	// RequestTimeout bounds a request whose context has no deadline, and the handling of a
	// received request; default 10s.
	RequestTimeout time.Duration
	// Local returns this node's current status; it is called every interval and for each
	// status received, from the link's goroutines, and must be cheap and must not call the
	// link.
	Local func() PeerStatus
	// OnRequest handles a request from the peer; its error is sent back as the answer. Nil
	// answers every request with an error.
	OnRequest func(ctx context.Context, r PeerRequest) error
	// OnChange, when set, is called with the new view after every change (peer up, down,
	// status received). It must not block and must not call the link.
	OnChange func(PeerView)
	// Record receives the link's events (Source "peer").
	Record func(Event) Event
	Logger *slog.Logger
	Now    func() time.Time
}

// PeerTLS returns the pinned TLS configurations of the peer link for a node: its sync
// certificate in SyncStateDir(cfg) and the peer pinned by sync.peer_fingerprint, used also
// when replication is off.
func PeerTLS(cfg *Config) (server, client *tls.Config, err error) {
	s, c, err := pbxsync.PinnedTLS(SyncStateDir(cfg), cfg.Sync.PeerFingerprint)
	if err != nil {
		return nil, nil, fmt.Errorf("peer link: %w", err)
	}
	return s, c, nil
}

// PeerSettingsOf returns the settings of cfg that must match on both nodes. Sync paths count
// only when replication is on. The groups count without their interface, which each node
// names its own way (PeerGroup).
func PeerSettingsOf(cfg *Config) PeerSettings {
	s := PeerSettings{GroupID: cfg.Redundancy.GroupID, VirtualIPs: cfg.Redundancy.VirtualIPs,
		AdvertInterval: cfg.Redundancy.AdvertInterval}
	if cfg.Redundancy.Version == 3 {
		s.VRRPVersion = 3
	}
	if cfg.Sync.Enabled {
		s.SyncPaths = cfg.Sync.Paths
	}
	s.Groups = []PeerGroup{} // sent also when empty: see PeerSettings.Groups
	for _, g := range cfg.Redundancy.Groups {
		pg := PeerGroup{GroupID: g.GroupID, AdvertInterval: g.AdvertInterval, VirtualIPs: g.VirtualIPs}
		if g.Version == 3 {
			pg.VRRPVersion = 3
		}
		s.Groups = append(s.Groups, pg)
	}
	return s
}

// PeerLink keeps the connection to the other node and this node's view of it.
type PeerLink struct {
	cfg   PeerConfig
	local peerLocal
	fp    string // local.Settings.Fingerprint()
	log   *slog.Logger
	now   func() time.Time
	srv   *tls.Config
	cli   *tls.Config

	mu      sync.Mutex
	cur     *peerConn
	view    PeerView
	snap    peerSnapshot  // what the last events were derived from
	ready   chan struct{} // closed while connected
	down    chan struct{} // closed while not connected
	nextID  uint64
	waiters map[uint64]chan error

	pending []peerPending // changes not yet delivered to Record and OnChange, in order
	evMu    sync.Mutex    // held by the goroutine delivering pending
	kick    chan struct{}
	wg      sync.WaitGroup
}

// peerConn is one authenticated connection.
type peerConn struct {
	tc     *tls.Conn
	dialer string // node id of the node that dialled
	wmu    sync.Mutex
	done   chan struct{}
	once   sync.Once
	bye    atomic.Pointer[string] // the reason of the peer's bye, once received
	said   atomic.Bool            // this side's bye was written (or tried)
}

func (c *peerConn) close() {
	c.once.Do(func() {
		close(c.done)
		c.tc.Close()
	})
}

// peerPending is one change's events and resulting view, waiting for delivery.
type peerPending struct {
	events []Event
	view   PeerView
}

type peerMsg struct {
	Type     string        `json:"type"`
	Reason   string        `json:"reason,omitempty"` // bye: why this side closes
	Info     *peerInfo     `json:"info,omitempty"`
	Request  *PeerRequest  `json:"request,omitempty"`
	Response *peerResponse `json:"response,omitempty"`
}

type peerResponse struct {
	ID    uint64 `json:"id"`
	OK    bool   `json:"ok"`
	Error string `json:"error,omitempty"`
}

// NewPeerLink checks the configuration; Run starts the link.
func NewPeerLink(cfg PeerConfig) (*PeerLink, error) {
	switch {
	case cfg.NodeID == "" || cfg.Version == "":
		return nil, errors.New("peer link: NodeID and Version are required")
	case cfg.ServerTLS == nil || cfg.ClientTLS == nil:
		return nil, errors.New("peer link: ServerTLS and ClientTLS are required (PeerTLS)")
	case cfg.Local == nil || cfg.Record == nil:
		return nil, errors.New("peer link: Local and Record are required")
	case cfg.Interval < 0 || cfg.RequestTimeout < 0:
		return nil, errors.New("peer link: negative interval or timeout")
	}
	if cfg.Interval == 0 {
		cfg.Interval = peerDefaultInterval
	}
	if cfg.RequestTimeout == 0 {
		cfg.RequestTimeout = peerDefaultRequestTimeout
	}
	l := &PeerLink{
		cfg:     cfg,
		local:   peerLocal{NodeID: cfg.NodeID, Version: cfg.Version, Settings: cfg.Settings},
		fp:      cfg.Settings.Fingerprint(),
		log:     cfg.Logger,
		now:     cfg.Now,
		srv:     cfg.ServerTLS.Clone(),
		cli:     cfg.ClientTLS.Clone(),
		ready:   make(chan struct{}),
		down:    make(chan struct{}),
		waiters: make(map[uint64]chan error),
		kick:    make(chan struct{}, 1),
	}
	close(l.down)
	if l.log == nil {
		l.log = slog.New(slog.DiscardHandler)
	}
	if l.now == nil {
		l.now = time.Now
	}
	// The protocol name keeps the peer link and the sync port apart if one is dialled for
	// the other by mistake.
	l.srv.NextProtos = []string{peerALPN}
	l.cli.NextProtos = []string{peerALPN}
	return l, nil
}

// Ready returns a channel that is closed while a peer is connected and accepted; after a
// loss Ready returns a new, open channel.
func (l *PeerLink) Ready() <-chan struct{} {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.ready
}

// Status returns this node's view of the peer.
func (l *PeerLink) Status() PeerView {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.view.clone()
}

// Changed sends this node's status to the peer now instead of at the next interval, for
// example after a role or mode change. It never blocks.
func (l *PeerLink) Changed() {
	select {
	case l.kick <- struct{}{}:
	default:
	}
}

// Run accepts connections on ln (and dials, with a Dial) until ctx is cancelled, then
// closes ln and the connection and returns. It returns an error only when ln fails.
func (l *PeerLink) Run(ctx context.Context, ln net.Listener) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	if l.cfg.Dial != nil {
		l.wg.Go(func() { l.dialLoop(ctx) })
	}
	var err error
	var backoff time.Duration
	for {
		c, aerr := ln.Accept()
		if aerr != nil {
			if ctx.Err() != nil {
				break
			}
			if errors.Is(aerr, net.ErrClosed) {
				err = fmt.Errorf("peer link: accept: %w", aerr)
				break
			}
			// Out of file descriptors and the like: wait and accept again.
			backoff = peerNextBackoff(backoff)
			l.log.Warn("peer link: accept failed", "err", aerr, "retry_in", backoff)
			if peerSleep(ctx, backoff) != nil {
				break
			}
			continue
		}
		backoff = 0
		l.wg.Go(func() {
			if _, err := l.serve(ctx, tls.Server(c, l.srv), false); err != nil && ctx.Err() == nil {
				l.log.Debug("peer link: incoming connection ended", "remote", c.RemoteAddr(), "err", err)
			}
		})
	}
	cancel()
	ln.Close()
	l.wg.Wait()
	return err
}

// dialLoop keeps a connection up from this side: it dials while none is in use, with a
// backoff between failed attempts.
func (l *PeerLink) dialLoop(ctx context.Context) {
	var backoff time.Duration
	for {
		l.mu.Lock()
		down := l.down
		l.mu.Unlock()
		select {
		case <-ctx.Done():
			return
		case <-down:
		}
		c, err := l.cfg.Dial(ctx)
		adopted := false
		if err == nil {
			adopted, err = l.serve(ctx, tls.Client(c, l.cli), true)
		}
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			l.log.Debug("peer link: connection to the peer ended", "err", err)
			if !adopted { // an adopted one's end is in the view already (lost)
				l.noteError(err.Error())
			}
		}
		if adopted {
			backoff = 0
		}
		backoff = peerNextBackoff(backoff)
		if peerSleep(ctx, backoff) != nil {
			return
		}
	}
}

// peerSleep waits for d or until ctx ends.
func peerSleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// serve authenticates a connection, exchanges hellos and, if the connection is adopted,
// runs it until it ends. It reports whether the connection was adopted.
func (l *PeerLink) serve(ctx context.Context, tc *tls.Conn, dialled bool) (bool, error) {
	pc := &peerConn{tc: tc, done: make(chan struct{})}
	defer l.shut(pc, "connection ended by this node")
	stop := context.AfterFunc(ctx, func() { l.shut(pc, "shutting down") })
	defer stop()

	tc.SetDeadline(time.Now().Add(peerHelloTimeout))
	if err := tc.HandshakeContext(ctx); err != nil {
		l.refuseTLS(err)
		return false, fmt.Errorf("peer link: TLS: %w", err)
	}
	if p := tc.ConnectionState().NegotiatedProtocol; p != peerALPN {
		l.refuse("the address answering is not a redundantd peer link")
		return false, fmt.Errorf("%w: protocol %q, want %q", ErrPeerMessage, p, peerALPN)
	}
	if err := l.write(pc, peerMsg{Type: "hello", Info: l.info()}); err != nil {
		return false, err
	}
	m, err := readPeerMsg(tc)
	if err == nil && (m.Type != "hello" || m.Info == nil) {
		err = fmt.Errorf("%w: first message is %q, want hello", ErrPeerMessage, m.Type)
	}
	if err != nil {
		l.refuseTLS(err)
		if errors.Is(err, ErrPeerMessage) {
			l.refuse(err.Error())
		}
		return false, err
	}
	if err := l.accept(m.Info); err != nil {
		return false, err
	}
	if dialled {
		pc.dialer = l.local.NodeID
	} else {
		pc.dialer = m.Info.NodeID
	}
	if !l.adopt(pc, m.Info) {
		return false, nil
	}
	tc.SetDeadline(time.Time{})
	l.wg.Go(func() { l.sendStatus(pc) })
	err = l.readLoop(ctx, pc)
	l.lost(ctx, pc, err)
	return true, err
}

// accept validates a hello or status and refuses a peer of another group (or this node).
func (l *PeerLink) accept(m *peerInfo) error {
	err := m.validate()
	if err == nil {
		err = peerCheck(l.local, m)
	}
	if err != nil {
		l.refuse(err.Error())
		return err
	}
	return nil
}

// refuseTLS turns a failed authentication into a refusal: this side saw the wrong
// certificate, or the peer rejected ours. Other failures (a peer going away) are not.
func (l *PeerLink) refuseTLS(err error) {
	switch {
	case errors.Is(err, pbxsync.ErrWrongPeer):
		l.refuse(fmt.Sprintf("the peer's certificate is not the pinned one (sync.peer_fingerprint): %v", err))
	case strings.Contains(err.Error(), "remote error: tls: bad certificate"):
		l.refuse("the peer rejected this node's certificate (check its sync.peer_fingerprint)")
	case strings.Contains(err.Error(), "no application protocol"):
		l.refuse("the address answering is not a redundantd peer link")
	}
}

func (l *PeerLink) info() *peerInfo {
	return &peerInfo{NodeID: l.local.NodeID, Version: l.local.Version, Settings: l.local.Settings,
		SettingsFingerprint: l.fp, PeerStatus: l.cfg.Local()}
}

// update applies a change to the view under the lock and raises the events it implies, in
// order, outside the lock.
func (l *PeerLink) update(localRole string, change func() (PeerView, bool)) {
	l.mu.Lock()
	next, ok := change()
	if !ok {
		l.mu.Unlock()
		return
	}
	snap, events := peerStep(l.snap, next, localRole)
	l.view, l.snap = next, snap
	at := l.now()
	for i := range events {
		events[i].Time = at
	}
	l.pending = append(l.pending, peerPending{events: events, view: next.clone()})
	l.mu.Unlock()
	l.deliver()
}

// deliver hands the pending changes to OnChange and Record in the order they were made,
// without holding the link's lock (so that a callback may read Status). OnChange comes
// first: the appliance's failover rules (fastfail.go) must not wait for the event log.
func (l *PeerLink) deliver() {
	l.evMu.Lock()
	defer l.evMu.Unlock()
	for {
		l.mu.Lock()
		todo := l.pending
		l.pending = nil
		l.mu.Unlock()
		if len(todo) == 0 {
			return
		}
		for _, p := range todo {
			if l.cfg.OnChange != nil {
				l.cfg.OnChange(p.view)
			}
			for _, e := range p.events {
				l.cfg.Record(e)
			}
		}
	}
}

func (l *PeerLink) refuse(reason string) {
	role := l.cfg.Local().Role
	l.update(role, func() (PeerView, bool) { return peerViewRefused(l.view, reason), true })
}

// noteError shows why the link is down while it is down.
func (l *PeerLink) noteError(reason string) {
	role := l.cfg.Local().Role
	l.update(role, func() (PeerView, bool) {
		if l.view.Connected || l.view.LastError == reason {
			return PeerView{}, false
		}
		v := l.view.clone()
		v.LastError = reason
		return v, true
	})
}

// adopt makes pc the connection in use unless the one in use is preferred.
func (l *PeerLink) adopt(pc *peerConn, m *peerInfo) bool {
	role := l.cfg.Local().Role
	var old *peerConn
	adopted := false
	l.update(role, func() (PeerView, bool) {
		if l.cur != nil {
			if !peerPrefer(l.cur.dialer, pc.dialer, min(l.local.NodeID, m.NodeID)) {
				return PeerView{}, false
			}
			old = l.cur
		} else {
			close(l.ready)
			l.down = make(chan struct{})
		}
		l.cur, adopted = pc, true
		v := peerViewUpdate(l.view, l.local, m, l.now())
		return v, true
	})
	if old != nil {
		l.log.Info("peer link: a new connection replaces the one in use", "dialled_by", pc.dialer)
		l.shut(old, "replaced by a new connection")
	}
	if adopted {
		l.log.Info("peer link up", "peer", m.NodeID, "version", m.Version, "role", m.Role, "backup_mode", m.BackupMode)
	}
	return adopted
}

// lost marks the peer down if pc was the connection in use. Stopping the link raises no
// events.
func (l *PeerLink) lost(ctx context.Context, pc *peerConn, err error) {
	bye := ""
	if b := pc.bye.Load(); b != nil {
		bye = *b
	}
	ended := peerEndOf(err, bye)
	reason := "connection closed"
	switch {
	case ended == PeerEndBye:
		reason = "closed by the peer: " + bye
	case ended == PeerEndSilent:
		reason = fmt.Sprintf("no status for %d intervals", peerMissed)
	case err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed):
		reason = err.Error()
	}
	role := l.cfg.Local().Role
	change := func() (PeerView, bool) {
		if l.cur != pc {
			return PeerView{}, false
		}
		l.cur = nil
		l.ready = make(chan struct{})
		close(l.down)
		return peerViewLost(l.view, reason, ended, l.now()), true
	}
	if ctx.Err() != nil {
		l.mu.Lock()
		if v, ok := change(); ok {
			l.view = v
		}
		l.mu.Unlock()
		return
	}
	l.update(role, change)
	l.log.Warn("peer link down", "reason", reason, "ended", ended)
}

// readLoop reads messages until the connection fails or the peer misses peerMissed
// statuses.
func (l *PeerLink) readLoop(ctx context.Context, pc *peerConn) error {
	for {
		pc.tc.SetReadDeadline(time.Now().Add(peerMissed * l.cfg.Interval))
		m, err := readPeerMsg(pc.tc)
		if err != nil {
			return err
		}
		switch m.Type {
		case "status":
			if m.Info == nil {
				return fmt.Errorf("%w: status without info", ErrPeerMessage)
			}
			if err := l.accept(m.Info); err != nil {
				return err
			}
			role := l.cfg.Local().Role
			l.update(role, func() (PeerView, bool) {
				if l.cur != pc {
					return PeerView{}, false
				}
				return peerViewUpdate(l.view, l.local, m.Info, l.now()), true
			})
		case "request":
			if m.Request == nil {
				return fmt.Errorf("%w: request without body", ErrPeerMessage)
			}
			r := *m.Request
			l.wg.Go(func() { l.handle(ctx, pc, r) })
		case "bye":
			// The peer closes on purpose; the end of stream that follows is no crash.
			reason := cmp.Or(m.Reason, "no reason given")
			if len(reason) > peerByeReasonMax { // it ends up in the view and the events
				reason = strings.ToValidUTF8(reason[:peerByeReasonMax], "") + "..."
			}
			pc.bye.Store(&reason)
		case "response":
			if m.Response == nil {
				return fmt.Errorf("%w: response without body", ErrPeerMessage)
			}
			l.answer(*m.Response)
		default:
			l.log.Debug("peer link: message of unknown type ignored", "type", m.Type)
		}
	}
}

// sendStatus sends this node's status every interval, and at once on Changed.
func (l *PeerLink) sendStatus(pc *peerConn) {
	t := time.NewTicker(l.cfg.Interval)
	defer t.Stop()
	for {
		select {
		case <-pc.done:
			return
		case <-t.C:
		case <-l.kick:
		}
		if err := l.write(pc, peerMsg{Type: "status", Info: l.info()}); err != nil {
			l.log.Debug("peer link: status not sent", "err", err)
			pc.close()
			return
		}
	}
}

// handle runs a request from the peer through OnRequest and answers it.
func (l *PeerLink) handle(ctx context.Context, pc *peerConn, r PeerRequest) {
	err := r.validate()
	if err == nil && l.cfg.OnRequest == nil {
		err = errors.New("this node does not handle peer requests")
	}
	if err == nil {
		hctx, cancel := context.WithTimeout(ctx, l.cfg.RequestTimeout)
		err = l.cfg.OnRequest(hctx, r)
		cancel()
	}
	resp := &peerResponse{ID: r.ID, OK: err == nil}
	if err != nil {
		resp.Error = err.Error()
	}
	l.log.Info("peer link: request from the peer", "type", r.Type, "id", r.ID, "mode", r.Mode, "reason", r.Reason, "err", err)
	if werr := l.write(pc, peerMsg{Type: "response", Response: resp}); werr != nil {
		l.log.Warn("peer link: answer not sent", "id", r.ID, "err", werr)
	}
}

func (l *PeerLink) answer(r peerResponse) {
	l.mu.Lock()
	w := l.waiters[r.ID]
	delete(l.waiters, r.ID)
	l.mu.Unlock()
	if w == nil {
		l.log.Debug("peer link: answer to no pending request", "id", r.ID)
		return
	}
	if r.OK {
		w <- nil
	} else {
		w <- fmt.Errorf("%w: %s", ErrPeerRejected, r.Error)
	}
}

// Request sends r to the peer and waits for its answer: nil when the peer's handler
// succeeded, ErrPeerRejected with the peer's reason when it failed, ErrPeerDown when no peer
// is connected or the connection is lost first, ErrPeerTimeout when ctx (or, without a
// deadline, RequestTimeout) ends first.
func (l *PeerLink) Request(ctx context.Context, r PeerRequest) error {
	if err := r.validate(); err != nil {
		return err
	}
	l.mu.Lock()
	pc := l.cur
	if pc == nil {
		l.mu.Unlock()
		return fmt.Errorf("%w: %s not sent", ErrPeerDown, r.Type)
	}
	l.nextID++
	r.ID = l.nextID
	w := make(chan error, 1)
	l.waiters[r.ID] = w
	l.mu.Unlock()
	defer func() {
		l.mu.Lock()
		delete(l.waiters, r.ID)
		l.mu.Unlock()
	}()
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, l.cfg.RequestTimeout)
		defer cancel()
	}
	if err := l.write(pc, peerMsg{Type: "request", Request: &r}); err != nil {
		pc.close()
		return fmt.Errorf("%w: %s: %w", ErrPeerDown, r.Type, err)
	}
	select {
	case err := <-w:
		return err
	case <-pc.done:
		select {
		case err := <-w:
			return err
		default:
		}
		return fmt.Errorf("%w: connection lost before the answer to %s", ErrPeerDown, r.Type)
	case <-ctx.Done():
		return fmt.Errorf("%w to %s within the deadline: %w", ErrPeerTimeout, r.Type, ctx.Err())
	}
}

// shut closes pc after telling the peer why (a "bye" frame), so that the peer does not take
// the end of the connection for this daemon's death (fastfail.go). A write blocked on a peer
// that does not read is cut short: the bye gets at most peerByeTimeout.
func (l *PeerLink) shut(pc *peerConn, why string) {
	if pc.said.CompareAndSwap(false, true) {
		pc.tc.SetWriteDeadline(time.Now().Add(peerByeTimeout))
		pc.wmu.Lock()
		pc.tc.SetWriteDeadline(time.Now().Add(peerByeTimeout))
		if err := writePeerMsg(pc.tc, peerMsg{Type: "bye", Reason: why}); err != nil {
			l.log.Debug("peer link: bye not sent", "err", err)
		}
		pc.wmu.Unlock()
	}
	pc.close()
}

// write sends one frame; a peer that does not take it within peerMissed intervals is
// treated as gone.
func (l *PeerLink) write(pc *peerConn, m peerMsg) error {
	pc.wmu.Lock()
	defer pc.wmu.Unlock()
	pc.tc.SetWriteDeadline(time.Now().Add(max(peerMissed*l.cfg.Interval, time.Second)))
	return writePeerMsg(pc.tc, m)
}

// writePeerMsg writes one frame.
func writePeerMsg(w io.Writer, m peerMsg) error {
	b, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("peer link: encode %s: %w", m.Type, err)
	}
	if len(b) > peerMaxFrame {
		return fmt.Errorf("%w: %s of %d bytes (limit %d)", ErrPeerMessage, m.Type, len(b), peerMaxFrame)
	}
	frame := make([]byte, 4+len(b))
	binary.BigEndian.PutUint32(frame, uint32(len(b)))
	copy(frame[4:], b)
	if _, err := w.Write(frame); err != nil {
		return fmt.Errorf("peer link: send %s: %w", m.Type, err)
	}
	return nil
}

// readPeerMsg reads one frame. A frame over peerMaxFrame or that is not JSON ends the
// connection.
func readPeerMsg(r io.Reader) (peerMsg, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return peerMsg{}, err
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if n == 0 || n > peerMaxFrame {
		return peerMsg{}, fmt.Errorf("%w: frame of %d bytes (limit %d)", ErrPeerMessage, n, peerMaxFrame)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF // cut inside a frame: not a clean close
		}
		return peerMsg{}, err
	}
	var m peerMsg
	if err := json.Unmarshal(b, &m); err != nil {
		return peerMsg{}, fmt.Errorf("%w: %w", ErrPeerMessage, err)
	}
	return m, nil
}

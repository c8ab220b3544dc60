package appliance

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	pbxsync "github.com/redundantd/redundantd/sync"
)

// peerWait bounds every wait of these tests: they wait for events and states, never for
// time; the bound only turns a hang into a failure.
const peerWait = 20 * time.Second

// peerTestNode is one node's peer link on loopback with a status the test sets.
type peerTestNode struct {
	t      *testing.T
	name   string
	dir    string
	link   *PeerLink
	addr   atomic.Value // string: the listener's address, for the other node's Dial
	ln     net.Listener // opened by listen, used by the next start
	mu     sync.Mutex
	status PeerStatus
	events []Event
	reqs   []PeerRequest
	onReq  func(PeerRequest) error
	signal chan struct{} // pulsed on every event, view change and request
	cancel context.CancelFunc
	done   chan error
}

func newPeerTestNode(t *testing.T, name string, status PeerStatus) *peerTestNode {
	n := &peerTestNode{t: t, name: name, dir: t.TempDir(), status: status, signal: make(chan struct{}, 1)}
	if _, err := pbxsync.LocalFingerprint(n.dir); err != nil {
		t.Fatal(err)
	}
	return n
}

func (n *peerTestNode) fingerprint() string {
	fp, err := pbxsync.LocalFingerprint(n.dir)
	if err != nil {
		n.t.Fatal(err)
	}
	return fp
}

func (n *peerTestNode) pulse() {
	select {
	case n.signal <- struct{}{}:
	default:
	}
}

func (n *peerTestNode) setStatus(f func(*PeerStatus)) {
	n.mu.Lock()
	f(&n.status)
	n.mu.Unlock()
	n.link.Changed()
}

// peerTestConfig is the configuration of node n pinning the certificate in peerDir.
func (n *peerTestNode) config(peerDir string, settings PeerSettings, dial func(context.Context) (net.Conn, error)) PeerConfig {
	fp, err := pbxsync.LocalFingerprint(peerDir)
	if err != nil {
		n.t.Fatal(err)
	}
	srv, cli, err := pbxsync.PinnedTLS(n.dir, fp)
	if err != nil {
		n.t.Fatal(err)
	}
	return PeerConfig{
		NodeID: n.name, Version: "1.4.0", Settings: settings, ServerTLS: srv, ClientTLS: cli, Dial: dial,
		Local: func() PeerStatus {
			n.mu.Lock()
			defer n.mu.Unlock()
			return n.status
		},
		OnRequest: func(_ context.Context, r PeerRequest) error {
			n.mu.Lock()
			n.reqs = append(n.reqs, r)
			f := n.onReq
			n.mu.Unlock()
			n.pulse()
			if f != nil {
				return f(r)
			}
			return nil
		},
		OnChange: func(PeerView) { n.pulse() },
		Record: func(e Event) Event {
			n.mu.Lock()
			n.events = append(n.events, e)
			n.mu.Unlock()
			n.pulse()
			return e
		},
	}
}

// start runs the link on a fresh loopback listener.
func (n *peerTestNode) start(cfg PeerConfig) {
	l, err := NewPeerLink(cfg)
	if err != nil {
		n.t.Fatal(err)
	}
	ln := n.ln
	if ln == nil {
		ln = n.listen()
	}
	n.ln = nil
	ctx, cancel := context.WithCancel(context.Background())
	n.link, n.cancel, n.done = l, cancel, make(chan error, 1)
	go func() { n.done <- l.Run(ctx, ln) }()
	n.t.Cleanup(n.stop)
}

// listen opens the loopback listener the next start uses, so that the other node can dial
// it before this one runs.
func (n *peerTestNode) listen() net.Listener {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		n.t.Fatal(err)
	}
	n.addr.Store(ln.Addr().String())
	n.ln = ln
	return ln
}

// stop ends the link and checks that Run returned cleanly.
func (n *peerTestNode) stop() {
	if n.cancel == nil {
		return
	}
	n.cancel()
	n.cancel = nil
	if err := <-n.done; err != nil {
		n.t.Errorf("%s: Run: %v", n.name, err)
	}
}

// dialer returns a Dial function reaching n's current listener.
func (n *peerTestNode) dialer() func(context.Context) (net.Conn, error) {
	return func(ctx context.Context) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "tcp", n.addr.Load().(string))
	}
}

// waitFor waits until cond holds, re-checking after every event, view change or request.
func (n *peerTestNode) waitFor(what string, cond func() bool) {
	n.t.Helper()
	deadline := time.NewTimer(peerWait)
	defer deadline.Stop()
	for !cond() {
		select {
		case <-n.signal:
		case <-deadline.C:
			n.mu.Lock()
			defer n.mu.Unlock()
			n.t.Fatalf("%s: gave up waiting for %s; view %+v; events %+v", n.name, what, n.link.Status(), n.events)
		}
	}
}

// waitEvent waits for the (count)th event with this name and returns it.
func (n *peerTestNode) waitEvent(name string, count int) Event {
	n.t.Helper()
	var got Event
	n.waitFor("event "+name, func() bool {
		n.mu.Lock()
		defer n.mu.Unlock()
		c := 0
		for _, e := range n.events {
			if e.Name == name {
				if c++; c == count {
					got = e
					return true
				}
			}
		}
		return false
	})
	return got
}

func (n *peerTestNode) eventCount(name string) int {
	n.mu.Lock()
	defer n.mu.Unlock()
	c := 0
	for _, e := range n.events {
		if e.Name == name {
			c++
		}
	}
	return c
}

var peerTestSettings = PeerSettings{GroupID: 7, VirtualIPs: []netip.Prefix{netip.MustParsePrefix("10.0.0.100/24")},
	AdvertInterval: time.Second, SyncPaths: []string{"/var/spool/asterisk/voicemail"}}

var (
	peerMasterStatus = PeerStatus{Role: PeerRoleMaster, BackupMode: PeerModeActive,
		Services: []PeerServiceState{{Name: "asterisk", State: "running"}}}
	peerBackupStatus = PeerStatus{Role: PeerRoleBackup, BackupMode: PeerModePassive,
		LastSync: &PeerSyncResult{At: time.Date(2026, 12, 1, 20, 0, 0, 0, time.UTC), OK: true}}
)

// peerPair starts a Master "a" that dials and a Backup "b" that accepts.
func peerPair(t *testing.T) (a, b *peerTestNode) {
	a = newPeerTestNode(t, "a", peerMasterStatus)
	b = newPeerTestNode(t, "b", peerBackupStatus)
	b.start(b.config(a.dir, peerTestSettings, nil))
	a.start(a.config(b.dir, peerTestSettings, b.dialer()))
	return a, b
}

func TestPeerLinkUpAndStatus(t *testing.T) {
	a, b := peerPair(t)
	e := a.waitEvent("up passive", 1)
	if want := "Backup device with ID 7-1.4.0-b is UP (Passive mode)"; e.Description != want || e.Application != AppRedundancy || e.Time.IsZero() {
		t.Errorf("master's event = %+v, want %q from source peer, stamped", e, want)
	}
	select {
	case <-a.link.Ready():
	default:
		t.Error("Ready not closed after the link came up")
	}
	v := a.link.Status()
	if !v.Connected || v.NodeID != "b" || v.ID != "7-1.4.0-b" || v.Role != PeerRoleBackup || v.BackupMode != PeerModePassive ||
		v.LastSync == nil || !v.LastSync.OK || len(v.Mismatches) != 0 || v.LastSeen.IsZero() {
		t.Errorf("master's view of the backup = %+v", v)
	}
	b.waitEvent("peer up", 1)
	<-b.link.Ready()
	if v := b.link.Status(); v.Role != PeerRoleMaster || len(v.Services) != 1 || v.Services[0] != (PeerServiceState{"asterisk", "running"}) {
		t.Errorf("backup's view of the master = %+v", v)
	}

	// The Backup's operator switches it to Active: the Master says so in the seed's words.
	b.setStatus(func(s *PeerStatus) { s.BackupMode = PeerModeActive })
	if e := a.waitEvent("up active", 1); e.Description != "Backup device with ID 7-1.4.0-b is UP (Active mode)" {
		t.Errorf("after the mode change: %q", e.Description)
	}

	// The status page's JSON is snake_case.
	j, err := json.Marshal(a.link.Status())
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{`"connected":true`, `"node_id":"b"`, `"backup_mode":"active"`, `"last_seen":`, `"last_sync":{`, `"version":"1.4.0"`} {
		if !strings.Contains(string(j), k) {
			t.Errorf("status JSON %s lacks %s", j, k)
		}
	}
}

func TestPeerLinkMismatch(t *testing.T) {
	a := newPeerTestNode(t, "a", peerMasterStatus)
	b := newPeerTestNode(t, "b", peerBackupStatus)
	other := peerTestSettings
	other.AdvertInterval = 3 * time.Second
	cb := b.config(a.dir, other, nil)
	cb.Version = "1.5.0"
	b.start(cb)
	a.start(a.config(b.dir, peerTestSettings, b.dialer()))
	a.waitEvent("up passive", 1)
	a.waitFor("two mismatch events", func() bool { return a.eventCount("mismatch") == 2 })
	v := a.link.Status()
	if len(v.Mismatches) != 2 || v.Mismatches[0].Setting != "version" || v.Mismatches[1] != (PeerMismatch{"advert_interval", "1s", "3s"}) {
		t.Errorf("mismatches in status = %+v, want version and advert_interval", v.Mismatches)
	}
	b.waitFor("mismatches on the other side", func() bool { return len(b.link.Status().Mismatches) == 2 })
}

func TestPeerLinkWrongCertificate(t *testing.T) {
	a := newPeerTestNode(t, "a", peerMasterStatus)
	b := newPeerTestNode(t, "b", peerBackupStatus)
	stranger := newPeerTestNode(t, "c", peerBackupStatus)
	b.start(b.config(a.dir, peerTestSettings, nil))
	var dials atomic.Int32
	dial := func(ctx context.Context) (net.Conn, error) {
		dials.Add(1)
		a.pulse()
		return b.dialer()(ctx)
	}
	a.start(a.config(stranger.dir, peerTestSettings, dial)) // a pins the wrong node
	ea := a.waitEvent("refused", 1)
	if !strings.Contains(ea.Description, "not the pinned one") || !strings.Contains(ea.Description, b.fingerprint()) {
		t.Errorf("dialler's refusal %q does not say the certificate %s is not the pinned one", ea.Description, b.fingerprint())
	}
	eb := b.waitEvent("refused", 1)
	if !strings.Contains(eb.Description, "rejected this node's certificate") {
		t.Errorf("acceptor's refusal %q does not say its certificate was rejected", eb.Description)
	}
	// Retries with the same result raise no new event; they keep being refused.
	a.waitFor("two retries", func() bool { return dials.Load() >= 3 })
	for _, n := range []*peerTestNode{a, b} {
		if v := n.link.Status(); v.Connected || v.Refused == "" {
			t.Errorf("%s: view %+v, want not connected and the refusal shown", n.name, v)
		}
		if c := n.eventCount("refused"); c != 1 {
			t.Errorf("%s: %d refused events, want 1 for the same reason", n.name, c)
		}
		if c := n.eventCount("peer up") + n.eventCount("up passive"); c != 0 {
			t.Errorf("%s: peer reported up through a wrong certificate", n.name)
		}
	}
}

func TestPeerLinkOtherGroupRefused(t *testing.T) {
	a := newPeerTestNode(t, "a", peerMasterStatus)
	b := newPeerTestNode(t, "b", peerBackupStatus)
	other := peerTestSettings
	other.GroupID = 8
	b.start(b.config(a.dir, other, nil))
	a.start(a.config(b.dir, peerTestSettings, b.dialer()))
	for _, n := range []*peerTestNode{a, b} {
		e := n.waitEvent("refused", 1)
		if !strings.Contains(e.Description, "different redundancy group") || e.Priority != PriorityWarning {
			t.Errorf("%s: refusal %+v, want a critical event naming the group", n.name, e)
		}
		if v := n.link.Status(); v.Connected || !strings.Contains(v.Refused, "group") {
			t.Errorf("%s: view %+v, want refused", n.name, v)
		}
	}
	if err := a.link.Request(context.Background(), PeerRequest{Type: PeerRequestTakeOver}); !errors.Is(err, ErrPeerDown) {
		t.Errorf("request to a refused peer: %v, want ErrPeerDown", err)
	}
}

func TestPeerLinkRequest(t *testing.T) {
	a, b := peerPair(t)
	<-a.link.Ready()
	ctx := context.Background()
	if err := a.link.Request(ctx, PeerRequest{Type: PeerRequestSetBackupMode, Mode: PeerModeActive}); err != nil {
		t.Fatalf("set-backup-mode: %v", err)
	}
	b.mu.Lock()
	b.onReq = func(r PeerRequest) error {
		if r.Type == PeerRequestTakeOver {
			return errors.New("services cannot start")
		}
		return nil
	}
	b.mu.Unlock()
	err := a.link.Request(ctx, PeerRequest{Type: PeerRequestTakeOver, Reason: "swap"})
	if !errors.Is(err, ErrPeerRejected) || !strings.Contains(err.Error(), "services cannot start") {
		t.Errorf("take-over: %v, want ErrPeerRejected with the peer's reason", err)
	}
	if err := a.link.Request(ctx, PeerRequest{Type: PeerRequestSetBackupMode, Mode: "sleepy"}); !errors.Is(err, ErrPeerMessage) {
		t.Errorf("invalid request: %v, want ErrPeerMessage before sending", err)
	}
	// Requests go both ways.
	<-b.link.Ready()
	if err := b.link.Request(ctx, PeerRequest{Type: PeerRequestSetBackupMode, Mode: PeerModePassive}); err != nil {
		t.Errorf("backup -> master request: %v", err)
	}
	b.mu.Lock()
	got := b.reqs
	b.mu.Unlock()
	if len(got) != 2 || got[0].Mode != PeerModeActive || got[1].Type != PeerRequestTakeOver || got[1].Reason != "swap" || got[0].ID == got[1].ID {
		t.Errorf("backup received %+v", got)
	}
}

func TestPeerLinkRequestTimeout(t *testing.T) {
	a, b := peerPair(t)
	<-a.link.Ready()
	release := make(chan struct{})
	b.mu.Lock()
	b.onReq = func(PeerRequest) error { <-release; return nil }
	b.mu.Unlock()
	defer close(release)
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- a.link.Request(ctx, PeerRequest{Type: PeerRequestTakeOver}) }()
	b.waitFor("the request to arrive", func() bool { b.mu.Lock(); defer b.mu.Unlock(); return len(b.reqs) == 1 })
	cancel()
	if err := <-errc; !errors.Is(err, ErrPeerTimeout) {
		t.Errorf("unanswered request: %v, want ErrPeerTimeout", err)
	}
}

func TestPeerLinkDownAndReconnect(t *testing.T) {
	a, b := peerPair(t)
	a.waitEvent("up passive", 1)
	b.stop() // the Backup's daemon dies: its connection closes
	e := a.waitEvent("down", 1)
	if e.Description != "Backup device is DOWN" || e.Priority != PriorityWarning {
		t.Errorf("down event = %+v, want the seed's words, critical", e)
	}
	v := a.link.Status()
	if v.Connected || v.ID != "7-1.4.0-b" || v.LastError == "" {
		t.Errorf("view after the loss = %+v, want down, naming the device and why", v)
	}
	select {
	case <-a.link.Ready():
		t.Error("Ready still closed after the loss")
	default:
	}
	if err := a.link.Request(context.Background(), PeerRequest{Type: PeerRequestTakeOver}); !errors.Is(err, ErrPeerDown) {
		t.Errorf("request with the peer down: %v, want ErrPeerDown", err)
	}

	// The Backup comes back (on a new listener): the Master redials and reports it.
	b.start(b.config(a.dir, peerTestSettings, nil))
	a.waitEvent("up passive", 2)
	<-a.link.Ready()
	if v := a.link.Status(); !v.Connected || v.Role != PeerRoleBackup {
		t.Errorf("view after the reconnection = %+v", v)
	}
}

// peerRaw connects to n's listener as the node whose certificate is in dir and sends the
// given frames; it returns the TLS connection.
func peerRaw(t *testing.T, n *peerTestNode, dir string, frames ...[]byte) *tls.Conn {
	t.Helper()
	_, cli, err := pbxsync.PinnedTLS(dir, n.fingerprint())
	if err != nil {
		t.Fatal(err)
	}
	cli.NextProtos = []string{peerALPN}
	c, err := tls.Dial("tcp", n.addr.Load().(string), cli)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	for _, f := range frames {
		if _, err := c.Write(f); err != nil {
			t.Fatal(err)
		}
	}
	return c
}

func peerFrame(t *testing.T, m peerMsg) []byte {
	var b bytes.Buffer
	if err := writePeerMsg(&b, m); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func TestPeerLinkSilentPeer(t *testing.T) {
	a := newPeerTestNode(t, "a", peerMasterStatus)
	b := newPeerTestNode(t, "b", peerBackupStatus)
	cfg := a.config(b.dir, peerTestSettings, nil)
	cfg.Interval = 50 * time.Millisecond
	a.start(cfg)
	hello := &peerInfo{NodeID: "b", Version: "1.4.0", Settings: peerTestSettings,
		SettingsFingerprint: peerTestSettings.Fingerprint(), PeerStatus: peerBackupStatus}
	// A Backup that says hello, then hangs (its daemon stuck, the TCP connection open).
	peerRaw(t, a, b.dir, peerFrame(t, peerMsg{Type: "hello", Info: hello}))
	a.waitEvent("up passive", 1)
	a.waitEvent("down", 1)
	if v := a.link.Status(); v.LastError != "no status for 3 intervals" {
		t.Errorf("view after silence: last_error %q, want the missed statuses", v.LastError)
	}
}

func TestPeerLinkBadInput(t *testing.T) {
	a := newPeerTestNode(t, "a", peerMasterStatus)
	b := newPeerTestNode(t, "b", peerBackupStatus)
	a.start(a.config(b.dir, peerTestSettings, nil))
	huge := []byte{0xff, 0xff, 0xff, 0xff}
	peerRaw(t, a, b.dir, huge)
	e := a.waitEvent("refused", 1)
	if !strings.Contains(e.Description, "frame of 4294967295 bytes") {
		t.Errorf("oversized frame: %q", e.Description)
	}
	peerRaw(t, a, b.dir, []byte{0, 0, 0, 5}, []byte("nope!"))
	a.waitEvent("refused", 2)
	bad := &peerInfo{NodeID: "b", Version: "1.4.0", Settings: peerTestSettings, SettingsFingerprint: "x",
		PeerStatus: PeerStatus{Role: PeerRoleBackup, BackupMode: "half"}}
	peerRaw(t, a, b.dir, peerFrame(t, peerMsg{Type: "hello", Info: bad}))
	if e := a.waitEvent("refused", 3); !strings.Contains(e.Description, `backup_mode "half"`) {
		t.Errorf("invalid hello: %q", e.Description)
	}
	if v := a.link.Status(); v.Connected {
		t.Errorf("bad input connected the peer: %+v", v)
	}
}

func TestPeerLinkBothDial(t *testing.T) {
	// Misconfiguration: both nodes dial. They settle on one connection and work.
	a := newPeerTestNode(t, "a", peerMasterStatus)
	b := newPeerTestNode(t, "b", peerBackupStatus)
	// Both listen before either runs, so that both first dials succeed and race.
	a.listen()
	b.listen()
	a.start(a.config(b.dir, peerTestSettings, b.dialer()))
	b.start(b.config(a.dir, peerTestSettings, a.dialer()))
	a.waitEvent("up passive", 1)
	b.waitFor("the link up", func() bool { return b.link.Status().Connected })
	// Both first dials succeed, so both must end on the one a dialled (the lower node id).
	a.waitFor("one connection on both sides", func() bool {
		a.link.mu.Lock()
		ca := a.link.cur
		a.link.mu.Unlock()
		b.link.mu.Lock()
		cb := b.link.cur
		b.link.mu.Unlock()
		return ca != nil && cb != nil && ca.dialer == "a" && cb.dialer == "a" &&
			ca.tc.LocalAddr().String() == cb.tc.RemoteAddr().String()
	})
	if err := a.link.Request(context.Background(), PeerRequest{Type: PeerRequestSetBackupMode, Mode: PeerModeActive}); err != nil {
		t.Errorf("request over the settled link: %v", err)
	}
}

// peerCmp compares netip values by ==.
var peerCmp = cmpopts.EquateComparable(netip.Prefix{})

func TestPeerFrameGolden(t *testing.T) {
	m := peerMsg{Type: "status", Info: &peerInfo{NodeID: "b", Version: "1.4.0", Settings: peerTestSettings,
		SettingsFingerprint: "0d86", PeerStatus: peerBackupStatus}}
	body := `{"type":"status","info":{"node_id":"b","version":"1.4.0","settings":{"group_id":7,` +
		`"virtual_ips":["10.0.0.100/24"],"advert_interval":1000000000,"sync_paths":["/var/spool/asterisk/voicemail"]},` +
		`"settings_fingerprint":"0d86","role":"backup","backup_mode":"passive","last_sync":{"at":"2026-12-01T20:00:00Z","ok":true}}}`
	want := append([]byte{0, 0, byte(len(body) >> 8), byte(len(body))}, body...)
	got := peerFrame(t, m)
	if !bytes.Equal(got, want) {
		t.Errorf("frame:\n got %q\nwant %q", got, want)
	}
	back, err := readPeerMsg(bytes.NewReader(want))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(m, back, peerCmp); diff != "" {
		t.Errorf("decoded frame (-want +got):\n%s", diff)
	}
	req := peerFrame(t, peerMsg{Type: "request", Request: &PeerRequest{ID: 3, Type: PeerRequestSetBackupMode, Mode: PeerModePassive}})
	if wantReq := `{"type":"request","request":{"id":3,"type":"set-backup-mode","mode":"passive"}}`; string(req[4:]) != wantReq {
		t.Errorf("request frame %s, want %s", req[4:], wantReq)
	}
}

func FuzzPeerFrame(f *testing.F) {
	f.Add([]byte{0, 0, 0, 2, '{', '}'})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff})
	f.Add([]byte{0, 0, 0, 0})
	f.Add(append([]byte{0, 0, 0, 50}, `{"type":"response","response":{"id":1,"ok":false}}`...))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := readPeerMsg(bytes.NewReader(b))
		if err != nil {
			return
		}
		if m.Info != nil {
			_ = m.Info.validate()
		}
		if m.Request != nil {
			_ = m.Request.validate()
		}
		var buf bytes.Buffer
		if err := writePeerMsg(&buf, m); err != nil {
			t.Fatalf("re-encoding a decoded frame: %v", err)
		}
		again, err := readPeerMsg(&buf)
		if err != nil {
			t.Fatalf("re-reading: %v", err)
		}
		if diff := cmp.Diff(m, again, peerCmp); diff != "" {
			t.Errorf("round trip (-first +second):\n%s", diff)
		}
	})
}

func TestPeerSettingsOf(t *testing.T) {
	cfg := &Config{Redundancy: RedundancyConfig{GroupID: 12, VirtualIPs: peerTestSettings.VirtualIPs, AdvertInterval: 2 * time.Second},
		Sync: SyncConfig{Paths: []string{"/var/spool/asterisk/voicemail"}}}
	want := PeerSettings{GroupID: 12, VirtualIPs: peerTestSettings.VirtualIPs, AdvertInterval: 2 * time.Second, Groups: []PeerGroup{}}
	if diff := cmp.Diff(want, PeerSettingsOf(cfg), peerCmp); diff != "" {
		t.Errorf("sync off (-want +got):\n%s", diff)
	}
	cfg.Sync.Enabled = true
	want.SyncPaths = cfg.Sync.Paths
	if diff := cmp.Diff(want, PeerSettingsOf(cfg), peerCmp); diff != "" {
		t.Errorf("sync on (-want +got):\n%s", diff)
	}
	// The groups without their interfaces, priorities and addresses.
	wanVIPs := []netip.Prefix{netip.MustParsePrefix("198.51.100.100/24")}
	cfg.Redundancy.Groups = []GroupConfig{
		{Interface: "eth1", Version: 3, GroupID: 52, Priority: 150, AdvertInterval: 100 * time.Millisecond, VirtualIPs: wanVIPs,
			Address: netip.MustParseAddr("198.51.100.11")},
		{Interface: "eth0", Version: 2, GroupID: 19, AdvertInterval: time.Second},
	}
	want.Groups = []PeerGroup{{GroupID: 52, VRRPVersion: 3, AdvertInterval: 100 * time.Millisecond, VirtualIPs: wanVIPs},
		{GroupID: 19, AdvertInterval: time.Second}}
	if diff := cmp.Diff(want, PeerSettingsOf(cfg), peerCmp); diff != "" {
		t.Errorf("groups (-want +got):\n%s", diff)
	}
}

// Two nodes whose groups differ (the same interfaces' names need not match) see a mismatch
// per differing key on both sides of the link; a group's interface alone is no mismatch.
func TestPeerLinkGroupsMismatch(t *testing.T) {
	a := newPeerTestNode(t, "a", peerMasterStatus)
	b := newPeerTestNode(t, "b", peerBackupStatus)
	wanVIPs := []netip.Prefix{netip.MustParsePrefix("198.51.100.100/24")}
	sa, sb := peerTestSettings, peerTestSettings
	sa.Groups = []PeerGroup{{GroupID: 52, AdvertInterval: time.Second, VirtualIPs: wanVIPs}, {GroupID: 9, AdvertInterval: time.Second}}
	sb.Groups = []PeerGroup{{GroupID: 9, AdvertInterval: time.Second}, {GroupID: 52, AdvertInterval: 2 * time.Second, VirtualIPs: wanVIPs}}
	b.start(b.config(a.dir, sb, nil))
	a.start(a.config(b.dir, sa, b.dialer()))
	a.waitEvent("up passive", 1)
	e := a.waitEvent("mismatch", 1)
	if want := "Peer device with ID 7-1.4.0-b differs in group[52].advert_interval: 1s here, 2s there"; e.Description != want {
		t.Errorf("mismatch event %q, want %q", e.Description, want)
	}
	if v := a.link.Status(); len(v.Mismatches) != 1 || v.Mismatches[0] != (PeerMismatch{"group[52].advert_interval", "1s", "2s"}) {
		t.Errorf("a's mismatches = %+v, want group[52].advert_interval only", v.Mismatches)
	}
	b.waitFor("the mismatch on the other side", func() bool {
		v := b.link.Status()
		return len(v.Mismatches) == 1 && v.Mismatches[0] == (PeerMismatch{"group[52].advert_interval", "2s", "1s"})
	})
}

// A node of this release sends its groups, "groups":[] when it has none; a hello of the
// previous release has no groups field and decodes to nil groups, which peerMismatches
// does not compare (PeerSettings.Groups).
func TestPeerSettingsGroupsOnTheWire(t *testing.T) {
	b, err := json.Marshal(PeerSettingsOf(&Config{Redundancy: RedundancyConfig{GroupID: 7}}))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"groups":[]`) {
		t.Errorf("settings without groups on the wire: %s; want \"groups\":[]", b)
	}
	var old PeerSettings
	if err := json.Unmarshal([]byte(`{"group_id":7,"virtual_ips":["10.0.0.100/24"],"advert_interval":1000000000,"sync_paths":null}`), &old); err != nil {
		t.Fatal(err)
	}
	if old.Groups != nil {
		t.Errorf("groups of a previous release's settings = %#v; want nil", old.Groups)
	}
	var none PeerSettings
	if err := json.Unmarshal(b, &none); err != nil || none.Groups == nil || len(none.Groups) != 0 {
		t.Errorf("groups of settings without groups = %#v, %v; want an empty non-nil list", none.Groups, err)
	}
}

func TestPeerTLS(t *testing.T) {
	other := t.TempDir()
	fp, err := pbxsync.LocalFingerprint(other)
	if err != nil {
		t.Fatal(err)
	}
	cfg := &Config{Node: NodeConfig{StateDir: t.TempDir()}, Sync: SyncConfig{PeerFingerprint: fp}}
	srv, cli, err := PeerTLS(cfg)
	if err != nil {
		t.Fatal(err)
	}
	own, err := Fingerprint(cfg) // the fingerprint the operator gives the other node
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []*tls.Config{srv, cli} {
		got, err := pbxsync.Fingerprint(c.Certificates[0].Certificate[0])
		if err != nil || got != own {
			t.Errorf("peer link presents %s (%v), want the sync certificate %s", got, err, own)
		}
	}
	cfg.Sync.PeerFingerprint = ""
	if _, _, err := PeerTLS(cfg); err == nil {
		t.Error("PeerTLS without a peer fingerprint succeeded")
	}
}

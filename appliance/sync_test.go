package appliance

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	pbxsync "github.com/redundantd/redundantd/sync"
	"github.com/redundantd/redundantd/testlab/pbxtree"
	"github.com/redundantd/redundantd/testlab/poll"
	"github.com/redundantd/redundantd/vrrp"
)

// syncNode is one appliance with replication on loopback and a fake VRRP engine.
type syncNode struct {
	a    *Appliance
	fr   *fakeRouter
	tree string
}

func TestSyncFollowsTheRole(t *testing.T) {
	base := t.TempDir()
	// The sync ports are the test's listeners (Options.SyncListener); each node's peer is
	// the other's.
	lns := make([]net.Listener, 2)
	for i := range lns {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close() })
		lns[i] = ln
	}
	var dials [2]atomic.Int32 // the replication reaches its peer through Options.SyncDial
	cfgs := make([]*Config, 2)
	for i := range cfgs {
		cfg := testConfig(t)
		cfg.Node.StateDir = filepath.Join(base, fmt.Sprint("state", i))
		tree := filepath.Join(base, fmt.Sprint("tree", i), "voicemail")
		if err := os.MkdirAll(tree, 0o755); err != nil {
			t.Fatal(err)
		}
		cfg.Sync = SyncConfig{Enabled: true, Paths: []string{tree}, Listen: lns[i].Addr().String(),
			Peer: lns[1-i].Addr().String(), Interval: "1h", TrashRetention: DefaultTrashRetention, MaxDelete: 0.5}
		cfgs[i] = cfg
	}
	// The operator's step: each node's fingerprint is configured on the other.
	for i := range cfgs {
		fp, err := Fingerprint(cfgs[1-i])
		if err != nil {
			t.Fatal(err)
		}
		cfgs[i].Sync.PeerFingerprint = fp
	}
	nodes := make([]syncNode, 2)
	ctx, cancel := context.WithCancel(context.Background())
	var done []chan error
	for i, cfg := range cfgs {
		fr := &fakeRouter{ran: make(chan struct{})}
		peer := lns[1-i].Addr().String()
		dial := func(ctx context.Context) (net.Conn, error) {
			dials[i].Add(1)
			var d net.Dialer
			return d.DialContext(ctx, "tcp", peer)
		}
		a, err := New(cfg, Options{SyncListener: lns[i], SyncDial: dial,
			DialVRRP: func(c vrrp.Config) (Router, error) { fr.cfg = c; return fr, nil }})
		if err != nil {
			t.Fatal(err)
		}
		d := make(chan error, 1)
		go func() { d <- a.Run(ctx) }()
		done = append(done, d)
		<-fr.ran
		<-a.Ready()
		<-a.SyncReady()
		nodes[i] = syncNode{a: a, fr: fr, tree: cfg.Sync.Paths[0]}
	}
	defer func() {
		cancel()
		for _, d := range done {
			<-d
		}
	}()

	// Node 0 is Master, node 1 Backup: a message recorded on 0 reaches 1 on "sync now".
	nodes[0].fr.cfg.OnEvent(vrrp.Event{From: vrrp.StateBackup, To: vrrp.StateMaster})
	nodes[1].fr.cfg.OnEvent(vrrp.Event{From: vrrp.StateInitialize, To: vrrp.StateBackup})
	msg := filepath.Join("default", "1001", "INBOX", "msg0000.wav")
	pbxtree.WriteFile(t, filepath.Join(nodes[0].tree, msg), []byte("audio recorded on node 0"), time.Time{})
	syncNow(t, nodes[0].a, http.StatusOK)
	if b, err := os.ReadFile(filepath.Join(nodes[1].tree, msg)); err != nil || string(b) != "audio recorded on node 0" {
		t.Fatalf("replica has %q, %v", b, err)
	}
	// A Backup refuses to be the source.
	syncNow(t, nodes[1].a, http.StatusConflict)

	// Failover: node 1 is Master now and the direction follows.
	nodes[0].fr.cfg.OnEvent(vrrp.Event{From: vrrp.StateMaster, To: vrrp.StateBackup})
	nodes[1].fr.cfg.OnEvent(vrrp.Event{From: vrrp.StateBackup, To: vrrp.StateMaster})
	msg2 := filepath.Join("default", "1001", "INBOX", "msg0001.wav")
	pbxtree.WriteFile(t, filepath.Join(nodes[1].tree, msg2), []byte("audio recorded on node 1 after failover"), time.Time{})
	poll.Until(t, 5*time.Second, "node 1 to replicate", func() bool {
		rec := httptest.NewRecorder()
		nodes[1].a.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/api/v1/sync", nil))
		return rec.Code == http.StatusOK
	})
	if b, err := os.ReadFile(filepath.Join(nodes[0].tree, msg2)); err != nil || string(b) != "audio recorded on node 1 after failover" {
		t.Fatalf("old Master has %q, %v", b, err)
	}
	for i := range dials {
		if dials[i].Load() == 0 {
			t.Errorf("node %d replicated without dialling through Options.SyncDial", i)
		}
	}
	st, ok := nodes[1].a.Status().Parts["sync"].(pbxsync.Status)
	if !ok || st.Role != pbxsync.RoleSource || st.Runs == 0 {
		t.Errorf("status parts[sync] = %#v", nodes[1].a.Status().Parts["sync"])
	}
}

// syncNow asks the API to replicate, retrying while the role change is still on its way.
func syncNow(t *testing.T, a *Appliance, want int) {
	t.Helper()
	var rec *httptest.ResponseRecorder
	poll.Until(t, 5*time.Second, fmt.Sprintf("sync now to answer %d", want), func() bool {
		rec = httptest.NewRecorder()
		a.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/api/v1/sync", nil))
		return rec.Code == want
	})
	if want == http.StatusOK {
		var st pbxsync.RunStats
		if err := json.Unmarshal(rec.Body.Bytes(), &st); err != nil {
			t.Fatalf("sync answer %s: %v", rec.Body, err)
		}
	}
}

// TestSyncWithoutItsDisk reproduces issue 12 item 6 at the appliance: a state_dir the
// replication cannot use kept the daemon from starting, so a full /var meant no redundancy.
// Now the node runs (VRRP, API) with the replication reported down, and starts it once the
// disk is usable.
func TestSyncWithoutItsDisk(t *testing.T) {
	cfg := testConfig(t)
	tree := filepath.Join(t.TempDir(), "voicemail")
	if err := os.MkdirAll(tree, 0o755); err != nil {
		t.Fatal(err)
	}
	other := testConfig(t)
	fp, err := Fingerprint(other)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Sync = SyncConfig{Enabled: true, Paths: []string{tree}, Listen: "127.0.0.1:0", Peer: "127.0.0.1:9",
		PeerFingerprint: fp, Interval: "1h", TrashRetention: DefaultTrashRetention, MaxDelete: 0.5}
	// The replication's state directory is a file: every write there fails, root's too.
	if err := os.WriteFile(SyncStateDir(cfg), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	fr := &fakeRouter{ran: make(chan struct{})}
	a, err := New(cfg, Options{PartRetry: 20 * time.Millisecond,
		DialVRRP: func(c vrrp.Config) (Router, error) { fr.cfg = c; return fr, nil }})
	if err != nil {
		t.Fatalf("New with an unusable sync state dir: %v", err)
	}
	if st := a.Status(); st.SyncDown == "" || len(eventsMatching(a, AppSync, "not started")) != 1 {
		t.Fatalf("status sync_down %q, events %v", st.SyncDown, eventNames(a))
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	defer func() { cancel(); <-done }()
	<-fr.ran
	if err := os.Remove(SyncStateDir(cfg)); err != nil {
		t.Fatal(err)
	}
	// The event is recorded once the new part runs: wait for it, then check the state.
	poll.Until(t, 5*time.Second, "the replication started", func() bool { return len(eventsMatching(a, AppSync, "started")) == 1 })
	if a.syncPart() == nil || a.SyncDown() != "" {
		t.Errorf("after the started event: part %v, sync_down %q", a.syncPart(), a.SyncDown())
	}
}

func TestSyncFailedAndRecoveredEvents(t *testing.T) {
	var got []string
	f := runOutcome(func(e Event) Event { got = append(got, fmt.Sprintf("%s/%d", e.Name, e.Priority)); return e })
	bad := errors.New("dial peer: connection refused")
	for _, err := range []error{nil, bad, bad, nil, nil, bad} {
		f(pbxsync.Event{Kind: pbxsync.EventRun, Stats: &pbxsync.RunStats{}, Err: err})
	}
	want := []string{"run/1", "failed/3", "run/3", "recovered/2", "run/1", "failed/3"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
}

// TestSyncListenerServedInTurn: the caller's sync listener outlives the parts that serve it
// (a reload or a retry builds a new one): a closed view accepts nothing more, the next view
// gets the next connection, and closing the shared listener ends every view.
func TestSyncListenerServedInTurn(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := newSharedListener(ln)
	defer s.close()
	// connect dials the shared port and wants view to accept that very connection.
	connect := func(which string, view net.Listener) {
		t.Helper()
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		got, err := view.Accept()
		if err != nil {
			t.Fatal(err)
		}
		defer got.Close()
		if got.RemoteAddr().String() != c.LocalAddr().String() {
			t.Errorf("%s view accepted %s, want %s", which, got.RemoteAddr(), c.LocalAddr())
		}
	}
	first := s.view()
	if first.Addr().String() != ln.Addr().String() {
		t.Errorf("view address %s, want %s", first.Addr(), ln.Addr())
	}
	connect("first", first)
	first.Close()
	if _, err := first.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Accept on a closed view: %v, want net.ErrClosed", err)
	}
	second := s.view()
	connect("second", second)
	s.close()
	if _, err := second.Accept(); err == nil {
		t.Error("Accept after the shared listener was closed succeeded")
	}
}

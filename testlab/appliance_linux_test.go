package testlab

import (
	"bytes"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redundantd/redundantd/appliance"
	"github.com/redundantd/redundantd/testlab/poll"
)

// pbxWatch samples, every 10 ms until stopped, whether both nodes run the PBX at once.
type pbxWatch struct {
	stop    chan struct{}
	done    chan struct{}
	mu      sync.Mutex
	samples int
	both    int
}

func watchPBX(a, b *PBX) *pbxWatch {
	w := &pbxWatch{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		for {
			select {
			case <-w.stop:
				return
			case <-time.After(10 * time.Millisecond):
			}
			ra, rb := a.Running(), b.Running()
			w.mu.Lock()
			w.samples++
			if ra && rb {
				w.both++
			}
			w.mu.Unlock()
		}
	}()
	return w
}

func (w *pbxWatch) end(t *testing.T) {
	t.Helper()
	close(w.stop)
	<-w.done
	if w.both > 0 {
		t.Errorf("both nodes ran the PBX in %d of %d samples", w.both, w.samples)
	}
	t.Logf("%d samples, the PBX ran on one node at most in each", w.samples)
}

func requireUnshare(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("unshare"); err != nil {
		t.Skip("util-linux's unshare is not installed")
	}
}

// TestApplianceSwapAndFailover runs the whole appliance on two real daemons: the PBX runs on
// the Master only, a voicemail reaches the Backup, a swap hands over with the last message
// and the services (at most one node runs the PBX at every sample), the new Master's crash
// is taken over by the Active old Master, and a Passive Backup refuses to take over on its
// own.
func TestApplianceSwapAndFailover(t *testing.T) {
	t.Parallel()
	requireUnshare(t)
	l, ctx, tl := recordedLab(t, 40*time.Second)
	ps, err := StartPBXPair(ctx, l, [2]VRRPConfig{{Priority: 150}, {Priority: 100}}, [2]string{})
	if err != nil {
		t.Fatal(err)
	}
	a, b := ps[0], ps[1]
	w := watchPBX(a, b)
	if err := poll.Context(ctx, 20*time.Millisecond, func() bool { return a.Running() && !b.Running() }); err != nil {
		t.Fatalf("the PBX is not on the Master only: %v", err)
	}

	// A voicemail on the Master reaches the Backup (inotify-driven sync).
	msg1 := bytes.Repeat([]byte("RIFF voice one "), 4000)
	if err := a.WriteMessage("1000", 1, msg1); err != nil {
		t.Fatal(err)
	}
	if err := poll.Context(ctx, 20*time.Millisecond, func() bool { return b.HasMessage("1000", 1, msg1) }); err != nil {
		t.Fatalf("message 1 not on the Backup: %v", err)
	}

	// A message left just before the swap is on the new Master after it.
	msg2 := bytes.Repeat([]byte("RIFF voice two "), 4000)
	if err := a.WriteMessage("1000", 2, msg2); err != nil {
		t.Fatal(err)
	}
	var res appliance.SwapResult
	if err := a.API(ctx, "POST", "/api/v1/swap", struct{}{}, &res); err != nil || res.State != "done" {
		t.Fatalf("swap: %+v, %v", res, err)
	}
	t.Logf("swap: %.1f ms: %+v", res.TotalMS, res.Timeline)
	if !b.HasMessage("1000", 2, msg2) {
		t.Error("the message left just before the swap is not on the new Master")
	}
	if err := b.Router.WaitState(ctx, "master"); err != nil {
		t.Fatal(err)
	}
	if _, err := tl.WaitVIP(ctx, b.Router.Node, true, time.Time{}); err != nil {
		t.Fatal(err)
	}
	if err := poll.Context(ctx, 20*time.Millisecond, func() bool { return b.Running() && !a.Running() }); err != nil {
		t.Fatalf("the PBX did not follow the swap: %v", err)
	}
	assertSoleMaster(t, ctx, l, tl, b.Router, a.Router)

	// The new Master is lost: the old one (Active) takes over, with the PBX. (SIGKILL leaves
	// the lost node's marker behind, as a power loss leaves a PBX "running" on a dead box:
	// sampling ends here.)
	w.end(t)
	if err := b.Router.Kill(ctx); err != nil {
		t.Fatal(err)
	}
	if err := a.Router.WaitState(ctx, "master"); err != nil {
		t.Fatal(err)
	}
	if err := poll.Context(ctx, 20*time.Millisecond, a.Running); err != nil {
		t.Fatalf("the PBX did not start on the node that took over: %v", err)
	}
	if st, err := a.Status(ctx); err != nil || st.Peer == nil || st.Peer.Connected {
		t.Errorf("the Master's view of the lost peer: %+v, %v", st.Peer, err)
	}
	// The lost node returns as Backup (lower priority, no preemption), then is lost again:
	// the Master reports its Backup UP, then DOWN, in the seed's words.
	if err := b.Router.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := b.Router.WaitState(ctx, "backup"); err != nil {
		t.Fatal(err)
	}
	if err := poll.Context(ctx, 20*time.Millisecond, func() bool { return !b.Running() }); err != nil {
		t.Fatalf("the returning Backup did not stop its PBX: %v", err)
	}
	if err := poll.Context(ctx, 50*time.Millisecond, func() bool {
		st, err := a.Status(ctx)
		return err == nil && st.Peer != nil && st.Peer.Connected && st.Peer.Role == "backup"
	}); err != nil {
		t.Fatalf("the returning Backup's peer link: %v", err)
	}
	if err := b.Router.Kill(ctx); err != nil {
		t.Fatal(err)
	}
	if err := poll.Context(ctx, 50*time.Millisecond, func() bool { return hasEvent(lastEvents(t, a.Router.Node), "down: Backup device is DOWN") }); err != nil {
		t.Errorf("no Backup DOWN event: %v\n%s", err, strings.Join(lastEvents(t, a.Router.Node), "\n"))
	}
	evs := lastEvents(t, a.Router.Node)
	for _, want := range []string{"up active: Backup device with ID 51-0.4.0-node2 is UP (Active mode)", "swap done", "peer down: Peer device with ID 51-0.4.0-node2 is DOWN"} {
		if !hasEvent(evs, want) {
			t.Errorf("no %q event on node 1:\n%s", want, evs)
		}
	}
}

// TestPassiveBackupStaysBackup: the operator sets the Backup Passive (on the Master); the
// Master is lost; the Passive Backup does not take over, says so, and takes over when set
// Active.
func TestPassiveBackupStaysBackup(t *testing.T) {
	t.Parallel()
	requireUnshare(t)
	l, ctx, tl := recordedLab(t, 90*time.Second)
	ps, err := StartPBXPair(ctx, l, [2]VRRPConfig{{Priority: 150}, {Priority: 100}}, [2]string{})
	if err != nil {
		t.Fatal(err)
	}
	a, b := ps[0], ps[1]
	var mr appliance.BackupModeResponse
	if err := a.API(ctx, "PUT", "/api/v1/backup-mode", appliance.BackupModeRequest{Mode: "passive"}, &mr); err != nil || mr.Peer != "confirmed" {
		t.Fatalf("backup-mode passive: %+v, %v", mr, err)
	}
	if err := a.Router.Kill(ctx); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	time.Sleep(5 * time.Second) // Master_Down_Interval is 3.6 s
	if st, err := b.Status(ctx); err != nil || st.State != "backup" || !st.Passive {
		t.Fatalf("the Passive Backup 5 s after the Master's loss: %s passive %t, %v", st.State, st.Passive, err)
	}
	if b.Running() {
		t.Error("the Passive Backup started the PBX")
	}
	if n := len(tl.AdvertsBetween(killed, time.Now(), From(b.Router.Node, 51))); n != 0 {
		t.Errorf("the Passive Backup sent %d adverts", n)
	}
	if err := b.API(ctx, "PUT", "/api/v1/backup-mode", appliance.BackupModeRequest{Mode: "active"}, &mr); err != nil {
		t.Fatal(err)
	}
	if err := b.Router.WaitState(ctx, "master"); err != nil {
		t.Fatal(err)
	}
	if err := poll.Context(ctx, 20*time.Millisecond, b.Running); err != nil {
		t.Fatalf("the PBX did not start after the mode change: %v", err)
	}
}

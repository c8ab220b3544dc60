package testlab

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redundantd/redundantd/appliance"
	"github.com/redundantd/redundantd/testlab/pbxtree"
	"github.com/redundantd/redundantd/testlab/poll"
)

// The procedures of docs/operations.md, each run on two real daemons as the operator runs
// it.

// fileDiff lists how the files of tree b differ from a's (content only, outside the trash).
func fileDiff(t *testing.T, a, b string) []string {
	t.Helper()
	d, err := pbxtree.Diff(a, b, pbxtree.Compare{FilesOnly: true, Skip: func(_ string, d fs.DirEntry) bool {
		return d.IsDir() && d.Name() == ".redundantd-trash"
	}})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// sameTree reports whether the two trees hold the same files with the same contents
// (outside the trash).
func sameTree(t *testing.T, a, b string) bool { t.Helper(); return len(fileDiff(t, a, b)) == 0 }

// inTrash reports whether rel (a path inside the tree) sits in the tree's trash with content.
func inTrash(p *PBX, rel, content string) bool {
	runs, _ := filepath.Glob(filepath.Join(p.Tree, ".redundantd-trash", "*"))
	for _, r := range runs {
		if b, err := os.ReadFile(filepath.Join(r, rel)); err == nil && string(b) == content {
			return true
		}
	}
	return false
}

// writeTree writes files (path inside the tree: content) into the node's tree.
func writeTree(t *testing.T, p *PBX, files map[string]string) {
	t.Helper()
	for rel, c := range files {
		f := filepath.Join(p.Tree, rel)
		if err := os.MkdirAll(filepath.Dir(f), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(f, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// pbxConfig is a PBX's configuration and voicemail, as the operator sets the first node up.
var pbxConfig = map[string]string{
	"etc/asterisk/extensions.conf": "[default]\nexten => 100,1,Dial(PJSIP/100)\n",
	"etc/asterisk/pjsip.conf":      "[100]\ntype=endpoint\n",
	"etc/asterisk/voicemail.conf":  "[default]\n100 => 1234,Alice\n",
}

func waitTree(ctx context.Context, t *testing.T, from, to *PBX, what string) {
	t.Helper()
	if err := poll.Context(ctx, 50*time.Millisecond, func() bool { return sameTree(t, from.Tree, to.Tree) }); err != nil {
		t.Fatalf("%s: %s's tree is not %s's: %v\n%s", what, to.Router.Node.Name, from.Router.Node.Name, err,
			strings.Join(fileDiff(t, from.Tree, to.Tree), "\n"))
	}
}

// setMode sets the group's Backup mode through a node's API and wants the peer's
// confirmation.
func setMode(ctx context.Context, t *testing.T, p *PBX, mode string) {
	t.Helper()
	var mr appliance.BackupModeResponse
	if err := p.API(ctx, "PUT", "/api/v1/backup-mode", appliance.BackupModeRequest{Mode: mode}, &mr); err != nil || mr.Peer != "confirmed" {
		t.Fatalf("backup-mode %s on %s: %+v, %v", mode, p.Router.Node.Name, mr, err)
	}
}

// waitPassive waits until the node reports the wanted Backup role and passive flag.
func waitPassive(ctx context.Context, t *testing.T, p *PBX, passive bool) {
	t.Helper()
	var last appliance.StatusResponse
	if err := poll.Context(ctx, 50*time.Millisecond, func() bool {
		st, err := p.Status(ctx)
		last = st
		return err == nil && st.State == "backup" && st.Passive == passive
	}); err != nil {
		t.Fatalf("%s: want a Backup with passive %t: state %s passive %t mode %s: %v", p.Router.Node.Name, passive, last.State, last.Passive, last.BackupMode, err)
	}
}

// TestProcedureDeployment: the first node is set up alone (its configuration, voicemail)
// and becomes Master with the PBX; the second joins with an empty tree, becomes Backup,
// does not run the PBX and receives everything; the Master reports its Backup UP.
func TestProcedureDeployment(t *testing.T) {
	t.Parallel()
	requireUnshare(t)
	l, ctx, _ := recordedLab(t, 40*time.Second)
	ps, err := NewPBXPair(l)
	if err != nil {
		t.Fatal(err)
	}
	a, b := ps[0], ps[1]
	writeTree(t, a, pbxConfig)
	if err := a.Start(ctx, l.Node(1), VRRPConfig{Priority: 150}, b.Fingerprint, ""); err != nil {
		t.Fatal(err)
	}
	if err := a.Router.WaitState(ctx, "master"); err != nil {
		t.Fatal(err)
	}
	if err := poll.Context(ctx, 20*time.Millisecond, a.Running); err != nil {
		t.Fatalf("the first node does not run the PBX: %v", err)
	}
	// The operator tests the system alone: a voicemail is left.
	msg := bytes.Repeat([]byte("RIFF first message "), 3000)
	if err := a.WriteMessage("100", 1, msg); err != nil {
		t.Fatal(err)
	}

	if err := b.Start(ctx, l.Node(2), VRRPConfig{Priority: 100}, a.Fingerprint, ""); err != nil {
		t.Fatal(err)
	}
	if err := b.Router.WaitState(ctx, "backup"); err != nil {
		t.Fatal(err)
	}
	waitTree(ctx, t, a, b, "deployment")
	if !b.HasMessage("100", 1, msg) {
		t.Error("the voicemail is not on the new Backup")
	}
	if b.Running() || !a.Running() {
		t.Errorf("PBX running: node1 %t, node2 %t; want node1 only", a.Running(), b.Running())
	}
	if err := poll.Context(ctx, 50*time.Millisecond, func() bool {
		return hasEvent(lastEvents(t, a.Router.Node), "up active: Backup device with ID 51-0.4.0-node2 is UP (Active mode)")
	}); err != nil {
		t.Errorf("no Backup UP event on the Master: %v\n%s", err, strings.Join(lastEvents(t, a.Router.Node), "\n"))
	}
	if st, err := b.Status(ctx); err != nil || st.Peer == nil || !st.Peer.Connected || st.Peer.Role != "master" {
		t.Errorf("the Backup's view of the Master: %+v, %v", st.Peer, err)
	}
}

// soleMaster checks, between the steps of a procedure, that exactly m is Master (holding the
// address, running the PBX) and o Backup without the PBX.
func soleMaster(ctx context.Context, t *testing.T, l *Lab, tl *Timeline, m, o *PBX) {
	t.Helper()
	if err := m.Router.WaitState(ctx, "master"); err != nil {
		t.Fatal(err)
	}
	if err := poll.Context(ctx, 20*time.Millisecond, func() bool { h, _ := l.Holders(tl.VIP); return len(h) == 1 }); err != nil {
		t.Fatal(err)
	}
	if err := poll.Context(ctx, 20*time.Millisecond, func() bool { return m.Running() && !o.Running() }); err != nil {
		t.Fatalf("the PBX is not on %s only: %v", m.Router.Node.Name, err)
	}
	// A Backup that just started or stepped down names the Master at its first advert.
	if err := poll.Context(ctx, 20*time.Millisecond, func() bool {
		st, err := o.Router.Node.Status(ctx)
		return err == nil && st.MasterIP == m.Router.Node.Addr.String()
	}); err != nil {
		t.Fatalf("%s does not follow %s: %v", o.Router.Node.Name, m.Router.Node.Name, err)
	}
	assertSoleMaster(t, ctx, l, tl, m.Router, o.Router)
}

// TestProcedureUpgrade: the Backup is set Passive, its daemon restarted as if upgraded, the
// Master swaps to it, the old Master (now a Passive Backup) is restarted in its turn, and the
// group is set Active again. Between the steps exactly one node is Master with the PBX, at
// every sample at most one node runs the PBX, and a message left at each step is on both
// nodes at the end.
func TestProcedureUpgrade(t *testing.T) {
	t.Parallel()
	requireUnshare(t)
	l, ctx, tl := recordedLab(t, 60*time.Second)
	ps, err := StartPBXPair(ctx, l, [2]VRRPConfig{{Priority: 150}, {Priority: 100}}, [2]string{})
	if err != nil {
		t.Fatal(err)
	}
	a, b := ps[0], ps[1]
	w := watchPBX(a, b)
	soleMaster(ctx, t, l, tl, a, b)
	var msgs [][]byte
	leave := func(m *PBX) {
		audio := bytes.Repeat([]byte(fmt.Sprintf("RIFF step %d ", len(msgs)+1)), 2000)
		if err := m.WriteMessage("100", len(msgs)+1, audio); err != nil {
			t.Fatal(err)
		}
		msgs = append(msgs, audio)
	}
	restart := func(p *PBX) {
		t.Helper()
		if err := p.Router.Term(ctx); err != nil {
			t.Fatalf("stopping %s: %v", p.Router, err)
		}
		if err := p.Router.Start(ctx); err != nil {
			t.Fatal(err)
		}
	}
	leave(a)

	// 1. The Backup is set Passive (from the Master; the mode is the group's).
	setMode(ctx, t, a, "passive")
	waitPassive(ctx, t, b, true)
	// 2. It is upgraded: its daemon stops and starts again, still a Passive Backup.
	restart(b)
	waitPassive(ctx, t, b, true)
	soleMaster(ctx, t, l, tl, a, b)
	leave(a)
	// 3. The Master swaps to it; the old Master becomes a Passive Backup.
	if err := poll.Context(ctx, 50*time.Millisecond, func() bool {
		st, err := a.Status(ctx)
		return err == nil && st.Peer != nil && st.Peer.Connected
	}); err != nil {
		t.Fatalf("the upgraded Backup's peer link: %v", err)
	}
	var res appliance.SwapResult
	if err := a.API(ctx, "POST", "/api/v1/swap", struct{}{}, &res); err != nil || res.State != "done" {
		t.Fatalf("swap: %+v, %v", res, err)
	}
	soleMaster(ctx, t, l, tl, b, a)
	waitPassive(ctx, t, a, true)
	leave(b)
	// 4. The old Master is upgraded in its turn.
	restart(a)
	waitPassive(ctx, t, a, true)
	soleMaster(ctx, t, l, tl, b, a)
	leave(b)
	// 5. Active again (on the new Master).
	if err := poll.Context(ctx, 50*time.Millisecond, func() bool {
		st, err := b.Status(ctx)
		return err == nil && st.Peer != nil && st.Peer.Connected
	}); err != nil {
		t.Fatalf("the peer link after the upgrade: %v", err)
	}
	setMode(ctx, t, b, "active")
	waitPassive(ctx, t, a, false)
	soleMaster(ctx, t, l, tl, b, a)
	w.end(t)

	for i, m := range msgs {
		if err := poll.Context(ctx, 50*time.Millisecond, func() bool { return a.HasMessage("100", i+1, m) && b.HasMessage("100", i+1, m) }); err != nil {
			t.Errorf("message %d is not on both nodes: %v", i+1, err)
		}
	}
}

// TestProcedureRestore: the Backup is set Passive; the configuration is restored on the
// Master, which restarts as a restore does (the Passive Backup does not take over meanwhile)
// and comes back as Master; the restored files reach the Backup, the file the restore
// removed is in the Backup's trash; the group is set Active again.
func TestProcedureRestore(t *testing.T) {
	t.Parallel()
	requireUnshare(t)
	l, ctx, tl := recordedLab(t, 60*time.Second)
	ps, err := NewPBXPair(l)
	if err != nil {
		t.Fatal(err)
	}
	a, b := ps[0], ps[1]
	writeTree(t, a, pbxConfig)
	ps, err = startPrepared(ctx, l, ps)
	if err != nil {
		t.Fatal(err)
	}
	waitTree(ctx, t, a, b, "before the restore")

	setMode(ctx, t, a, "passive")
	waitPassive(ctx, t, b, true)
	if err := a.Router.Term(ctx); err != nil {
		t.Fatal(err)
	}
	// The restore: a backup of the configuration replaces the Master's.
	restored := map[string]string{
		"etc/asterisk/extensions.conf": "[default]\nexten => 100,1,Dial(PJSIP/100)\nexten => 200,1,VoiceMail(200)\n",
		"etc/asterisk/voicemail.conf":  "[default]\n100 => 1234,Alice\n200 => 4321,Bob\n",
		"etc/asterisk/queues.conf":     "[support]\nmember => PJSIP/100\n",
	}
	if err := os.Remove(filepath.Join(a.Tree, "etc/asterisk/pjsip.conf")); err != nil {
		t.Fatal(err)
	}
	writeTree(t, a, restored)
	if err := a.Router.Start(ctx); err != nil {
		t.Fatal(err)
	}
	soleMaster(ctx, t, l, tl, a, b)
	if st, err := b.Status(ctx); err != nil || st.Transitions > 1 {
		t.Errorf("the Passive Backup changed role during the restore: %+v, %v", st, err)
	}
	waitTree(ctx, t, a, b, "after the restore")
	if !inTrash(b, "etc/asterisk/pjsip.conf", pbxConfig["etc/asterisk/pjsip.conf"]) {
		t.Error("the file the restore removed is not in the Backup's trash")
	}
	setMode(ctx, t, a, "active")
	waitPassive(ctx, t, b, false)
}

// startPrepared starts a pair made by NewPBXPair as StartPBXPair does (node 1 Master with
// priority 150, node 2 Backup, the peer link up).
func startPrepared(ctx context.Context, l *Lab, ps [2]*PBX) ([2]*PBX, error) {
	for i, want := range []string{"master", "backup"} {
		if err := ps[i].Start(ctx, l.Node(i+1), VRRPConfig{Priority: uint8(150 - 50*i)}, ps[1-i].Fingerprint, ""); err != nil {
			return ps, err
		}
		if err := ps[i].Router.WaitState(ctx, want); err != nil {
			return ps, err
		}
	}
	return ps, poll.Context(ctx, 50*time.Millisecond, func() bool {
		st, err := ps[0].Status(ctx)
		return err == nil && st.Peer != nil && st.Peer.Connected && st.Peer.Role == "backup"
	})
}

// TestProcedureReplaceNode: the Backup's box dies and is replaced by a new one with the
// same configuration file but nothing else (no state, no certificate, an empty tree). The
// operator prints the new box's fingerprint (`redundantd -fingerprint`), pins it in the
// Master's file and restarts the Master's daemon, then starts the new box: it becomes
// Backup and receives everything.
func TestProcedureReplaceNode(t *testing.T) {
	t.Parallel()
	requireUnshare(t)
	l, ctx, tl := recordedLab(t, 60*time.Second)
	ps, err := NewPBXPair(l)
	if err != nil {
		t.Fatal(err)
	}
	a, b := ps[0], ps[1]
	writeTree(t, a, pbxConfig)
	if _, err := startPrepared(ctx, l, ps); err != nil {
		t.Fatal(err)
	}
	msg := bytes.Repeat([]byte("RIFF kept "), 3000)
	if err := a.WriteMessage("100", 1, msg); err != nil {
		t.Fatal(err)
	}
	waitTree(ctx, t, a, b, "before the loss")

	// The box dies; the new one has only the configuration file.
	if err := b.Router.Kill(ctx); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{filepath.Join(b.Router.Dir, "state"), b.Tree} {
		if err := os.RemoveAll(d); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(b.Tree, 0o755); err != nil {
		t.Fatal(err)
	}
	bin, err := BuildBinary(ctx, RedundantdPkg)
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.CommandContext(ctx, bin, "-fingerprint", "-config", filepath.Join(b.Router.Dir, "redundantd.toml")).Output()
	if err != nil {
		t.Fatalf("redundantd -fingerprint: %v", err)
	}
	fp := strings.TrimSpace(string(out))
	if fp == "" || fp == b.Fingerprint {
		t.Fatalf("the new box's fingerprint %q: want a new one (old %q)", fp, b.Fingerprint)
	}
	// The Master pins the new certificate (sync.peer_fingerprint needs a restart).
	a.Configure(l, &a.Router.Config, fp, "")
	if err := a.Router.Term(ctx); err != nil {
		t.Fatal(err)
	}
	if err := a.Router.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := a.Router.WaitState(ctx, "master"); err != nil {
		t.Fatal(err)
	}
	if err := b.Router.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := b.Router.WaitState(ctx, "backup"); err != nil {
		t.Fatal(err)
	}
	waitTree(ctx, t, a, b, "after the replacement")
	if !b.HasMessage("100", 1, msg) {
		t.Error("the voicemail is not on the new box")
	}
	soleMaster(ctx, t, l, tl, a, b)
	if err := poll.Context(ctx, 50*time.Millisecond, func() bool {
		return hasEvent(lastEvents(t, a.Router.Node), "up active: Backup device with ID 51-0.4.0-node2 is UP (Active mode)")
	}); err != nil {
		t.Errorf("no Backup UP event on the Master: %v", err)
	}
}

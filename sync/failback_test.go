package sync

import (
	"fmt"
	"os"
	"strings"
	stdsync "sync"
	"testing"
	"time"

	"github.com/redundantd/redundantd/testlab/pbxtree"
	"github.com/redundantd/redundantd/testlab/poll"
)

// TestFailbackMerge: both nodes change data while each believes it is Master (the old Master
// before it died, the new one after the failover). When they meet again, nothing is lost:
// voicemail recorded on the node that is now the replica is merged under a new message number,
// a config file changed on both sides is kept as a .conflict copy, a change made on one side
// only is kept whichever side made it.
func TestFailbackMerge(t *testing.T) {
	a, b := newPair(t, nil)
	inbox := "default/100/INBOX/"
	pbxtree.WriteFile(t, a.path(1, inbox+"msg0000.wav"), randBytes(1, 100<<10), old0)
	pbxtree.WriteFile(t, a.path(1, inbox+"msg0000.txt"), []byte("[message]\ncallerid=first\n"), old0)
	pbxtree.WriteFile(t, a.path(0, "sip.conf"), []byte("v1"), old0)
	pbxtree.WriteFile(t, a.path(0, "extensions.conf"), []byte("e1"), old0)
	pbxtree.WriteFile(t, a.path(0, "users.conf"), []byte("u1"), old0)
	syncNow(t, a)
	assertSame(t, a, b)

	// a, still Master, records a message and edits two files; none of it is replicated.
	aMsg := randBytes(2, 150<<10)
	pbxtree.WriteFile(t, a.path(1, inbox+"msg0001.wav"), aMsg, old0)
	pbxtree.WriteFile(t, a.path(1, inbox+"msg0001.txt"), []byte("[message]\ncallerid=recorded-on-a\n"), old0)
	pbxtree.WriteFile(t, a.path(0, "sip.conf"), []byte("edited on a"), old0)
	pbxtree.WriteFile(t, a.path(0, "extensions.conf"), []byte("only a changed this"), old0)

	// Failover: b becomes Master, a is gone.
	a.SetRole(RoleNone)
	b.SetRole(RoleSource)
	poll.Until(t, 5*time.Second, "the replica's run event", func() bool { return len(b.eventsOf(EventRun)) > 0 }) // refused: a is not a replica
	bMsg := randBytes(3, 120<<10)
	pbxtree.WriteFile(t, b.path(1, inbox+"msg0001.wav"), bMsg, old0)
	pbxtree.WriteFile(t, b.path(1, inbox+"msg0001.txt"), []byte("[message]\ncallerid=recorded-on-b\n"), old0)
	pbxtree.WriteFile(t, b.path(0, "sip.conf"), []byte("edited on b"), old0)
	pbxtree.WriteFile(t, b.path(0, "users.conf"), []byte("only b changed this"), old0)

	// a comes back as Backup; b stays the source.
	a.SetRole(RoleReplica)
	st := syncNow(t, b)
	assertSame(t, b, a)
	check := func(rel string, tree int, want []byte) {
		t.Helper()
		got, err := os.ReadFile(b.path(tree, rel))
		if err != nil || string(got) != string(want) {
			t.Errorf("%s: %q %v, want %q", rel, got, err, want)
		}
	}
	check(inbox+"msg0001.wav", 1, bMsg)
	check(inbox+"msg0002.wav", 1, aMsg)
	check(inbox+"msg0002.txt", 1, []byte("[message]\ncallerid=recorded-on-a\n"))
	check("sip.conf", 0, []byte("edited on b"))
	check("sip.conf.conflict", 0, []byte("edited on a"))
	check("extensions.conf", 0, []byte("only a changed this"))
	check("users.conf", 0, []byte("only b changed this"))
	if st.Conflicts != 1 || st.Pulled != 4 {
		t.Errorf("stats: conflicts %d pulled %d, want 1 and 4 (2 merged, 1 conflict copy, 1 adopted)", st.Conflicts, st.Pulled)
	}
	if ev := b.eventsOf(EventConflict); len(ev) != 1 || !strings.HasSuffix(ev[0].Path, "sip.conf.conflict") {
		t.Errorf("conflict events: %+v", ev)
	}
	if ev := b.eventsOf(EventMerged); len(ev) != 1 || !strings.HasSuffix(ev[0].Path, "msg0002") {
		t.Errorf("merge events: %+v", ev)
	}
	if _, err := os.Stat(b.state + "/conflicts.jsonl"); err != nil {
		t.Errorf("conflict not recorded: %v", err)
	}
	// The pair is settled: the next run has nothing to do and needs no manifest exchange.
	st = syncNow(t, b)
	if st.Full || st.Files != 0 || st.Pulled != 0 {
		t.Errorf("run after the merge: %+v", st)
	}
}

// TestFailbackAdoptsRenumbering: while b was Master it deleted a message (Asterisk renumbered
// the rest); a, back as Master (preemption), takes that state over instead of resurrecting
// the deleted message or duplicating the renumbered ones.
func TestFailbackAdoptsRenumbering(t *testing.T) {
	a, b := newPair(t, nil)
	inbox := "default/100/INBOX/"
	msgs := [][]byte{randBytes(10, 90<<10), randBytes(11, 90<<10), randBytes(12, 90<<10)}
	for i, m := range msgs {
		pbxtree.WriteFile(t, a.path(1, inbox+"msg000"+string(rune('0'+i))+".wav"), m, old0)
	}
	syncNow(t, a)
	a.SetRole(RoleNone)
	b.SetRole(RoleSource)
	poll.Until(t, 5*time.Second, "the replica's run event", func() bool { return len(b.eventsOf(EventRun)) > 0 })
	os.Remove(b.path(1, inbox+"msg0000.wav"))
	os.Rename(b.path(1, inbox+"msg0001.wav"), b.path(1, inbox+"msg0000.wav"))
	os.Rename(b.path(1, inbox+"msg0002.wav"), b.path(1, inbox+"msg0001.wav"))
	// a preempts: b goes back to Backup, a is the source again.
	b.SetRole(RoleReplica)
	a.SetRole(RoleSource)
	syncNow(t, a)
	assertSame(t, a, b)
	for i, want := range [][]byte{msgs[1], msgs[2]} {
		got, _ := os.ReadFile(a.path(1, inbox+"msg000"+string(rune('0'+i))+".wav"))
		if string(got) != string(want) {
			t.Errorf("msg000%d is not the renumbered message", i)
		}
	}
	if _, err := os.Stat(a.path(1, inbox+"msg0002.wav")); err == nil {
		t.Error("deleted message resurrected")
	}
}

// TestSplitBrainRefused: both nodes believe they are Master; neither accepts the other's data
// and both report it; when one steps down, the next run reconciles without loss.
func TestSplitBrainRefused(t *testing.T) {
	a, b := newPair(t, nil)
	pbxtree.WriteFile(t, a.path(0, "sip.conf"), []byte("v1"), old0)
	syncNow(t, a)
	b.SetRole(RoleSource)
	poll.Until(t, 5*time.Second, "the replica's run event", func() bool { return len(b.eventsOf(EventRun)) > 0 })
	pbxtree.WriteFile(t, a.path(1, "default/1/INBOX/msg0000.wav"), []byte("recorded on a"), old0)
	pbxtree.WriteFile(t, b.path(1, "default/1/INBOX/msg0000.wav"), []byte("recorded on b"), old0)
	if _, err := a.SyncNow(t.Context()); err == nil {
		t.Fatal("a pushed to b while b is source")
	}
	if _, err := b.SyncNow(t.Context()); err == nil {
		t.Fatal("b pushed to a while a is source")
	}
	if len(a.eventsOf(EventPeerRole)) == 0 || len(b.eventsOf(EventPeerRole)) == 0 {
		t.Errorf("peer-role events: a %d, b %d", len(a.eventsOf(EventPeerRole)), len(b.eventsOf(EventPeerRole)))
	}
	// b steps down.
	b.SetRole(RoleReplica)
	syncNow(t, a)
	assertSame(t, a, b)
	for _, n := range []string{"msg0000.wav", "msg0001.wav"} {
		if _, err := os.Stat(a.path(1, "default/1/INBOX/"+n)); err != nil {
			t.Errorf("%s missing after the split brain: %v", n, err)
		}
	}
}

// TestRoleChangeAbortsReplicaSession: a replica that becomes Master in the middle of a run
// stops applying at once; nothing partial is left.
func TestRoleChangeAbortsReplicaSession(t *testing.T) {
	a, b := newPair(t, nil)
	for i := 0; i < 6; i++ {
		pbxtree.WriteFile(t, a.path(1, fmt.Sprintf("default/1/INBOX/msg%04d.wav", i)), randBytes(i, 2<<20), old0)
	}
	var once stdsync.Once
	a.onSendChunk(func(string) { once.Do(func() { b.SetRole(RoleSource) }) })
	defer a.onSendChunk(nil)
	if _, err := a.SyncNow(t.Context()); err == nil {
		t.Fatal("run completed although the replica became source")
	}
	a.onSendChunk(nil)
	b.runMu.Lock() // the aborted session has finished with the trees; none starts while checking
	noTemps(t, b)
	noPartial(t, a, b, nil)
	b.runMu.Unlock()
}

// TestDeltaAfterFailover: the new source never hashed the files it received as replica, so it
// holds no block sums of the peer's version; it asks the peer for them and still sends only
// a delta.
func TestDeltaAfterFailover(t *testing.T) {
	a, b := newPair(t, nil)
	data := randBytes(5, 1<<20)
	pbxtree.WriteFile(t, a.path(1, "default/1/INBOX/msg0000.wav"), data, old0)
	syncNow(t, a)
	a.SetRole(RoleReplica)
	b.SetRole(RoleSource)
	poll.Until(t, 5*time.Second, "the replica's run event", func() bool { return len(b.eventsOf(EventRun)) > 0 })
	copy(data[300000:], "edited after the failover")
	pbxtree.WriteFile(t, b.path(1, "default/1/INBOX/msg0000.wav"), data, old0.Add(time.Minute))
	st := syncNow(t, b)
	assertSame(t, b, a)
	if st.FilesDelta != 1 || st.Literal > 16<<10 || st.BytesSent > 64<<10 {
		t.Errorf("after failover: delta %d, literal %d, sent %d bytes; want one small delta", st.FilesDelta, st.Literal, st.BytesSent)
	}
	if st.BytesRecv < 4<<10 { // 1 MB in 1 KB blocks: about 8 KB of sums from the replica
		t.Errorf("received %d bytes: the replica's block sums were not fetched", st.BytesRecv)
	}
}

// TestFailbackMergeMovedMessage: while b was Master a caller listened to a message (Asterisk
// moved it from INBOX to Old as msg0000); meanwhile a, before it died, had recorded another
// message into Old as msg0000. Back as Master, a deletes its INBOX copy (b deleted it) and
// must merge b's Old/msg0000: that the audio was in a's mailbox before the run (in the INBOX
// being deleted) does not make it a duplicate. Found by TestPlanLosesNothing.
func TestFailbackMergeMovedMessage(t *testing.T) {
	a, b := newPair(t, nil)
	mb := "default/100/"
	heard, recorded := randBytes(20, 90<<10), randBytes(21, 90<<10)
	pbxtree.WriteFile(t, a.path(1, mb+"INBOX/msg0000.wav"), heard, old0)
	pbxtree.WriteFile(t, a.path(1, mb+"INBOX/msg0000.txt"), []byte("[message]\ncallerid=heard\n"), old0)
	pbxtree.WriteFile(t, a.path(1, mb+"Old/.keep"), nil, old0)
	syncNow(t, a)
	assertSame(t, a, b)
	pbxtree.WriteFile(t, a.path(1, mb+"Old/msg0000.wav"), recorded, old0)
	pbxtree.WriteFile(t, a.path(1, mb+"Old/msg0000.txt"), []byte("[message]\ncallerid=recorded-on-a\n"), old0)
	a.SetRole(RoleNone)
	b.SetRole(RoleSource)
	poll.Until(t, 5*time.Second, "the replica's run event", func() bool { return len(b.eventsOf(EventRun)) > 0 })
	for _, ext := range []string{".wav", ".txt"} {
		if err := os.Rename(b.path(1, mb+"INBOX/msg0000"+ext), b.path(1, mb+"Old/msg0000"+ext)); err != nil {
			t.Fatal(err)
		}
	}
	b.SetRole(RoleReplica)
	a.SetRole(RoleSource)
	syncNow(t, a)
	assertSame(t, a, b)
	got0, _ := os.ReadFile(a.path(1, mb+"Old/msg0000.wav"))
	got1, _ := os.ReadFile(a.path(1, mb+"Old/msg0001.wav"))
	if string(got0) != string(recorded) || string(got1) != string(heard) {
		t.Errorf("Old: msg0000 is the message recorded on a %v, msg0001 the one heard on b %v; want both",
			string(got0) == string(recorded), string(got1) == string(heard))
	}
	if _, err := os.Stat(a.path(1, mb+"INBOX/msg0000.wav")); err == nil {
		t.Errorf("INBOX/msg0000.wav, moved to Old on b, is still in INBOX")
	}
}

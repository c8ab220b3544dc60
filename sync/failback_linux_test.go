package sync

import (
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/redundantd/redundantd/testlab/pbxtree"
)

// TestFullDiskOnReplica fills a small tmpfs mounted over the replica's voicemail tree in a
// private mount namespace (the test re-executes itself in one): the run fails with a clear
// error, nothing is deleted, no temporary file is left, and the next run completes once there
// is room.
func TestFullDiskOnReplica(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a tmpfs in a private mount namespace")
	}
	if os.Getenv("SYNC_FULLDISK_CHILD") == "" {
		cmd := exec.Command(os.Args[0], "-test.run=^TestFullDiskOnReplica$", "-test.v", "-test.count=1")
		cmd.Env = append(os.Environ(), "SYNC_FULLDISK_CHILD=1")
		cmd.SysProcAttr = &syscall.SysProcAttr{Unshareflags: syscall.CLONE_NEWNS}
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), "--- PASS: TestFullDiskOnReplica") {
			t.Fatalf("child: %v\n%s", err, out)
		}
		if strings.Contains(string(out), "--- SKIP") {
			t.Skip(string(out))
		}
		return
	}
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		t.Skipf("cannot make mounts private: %v", err)
	}
	a, b := newPair(t, func(_, cb *Config) {
		if err := unix.Mount("tmpfs", cb.Paths[1], "tmpfs", 0, "size=2m"); err != nil {
			t.Skipf("cannot mount tmpfs: %v", err)
		}
		t.Cleanup(func() { unix.Unmount(cb.Paths[1], unix.MNT_DETACH) })
	})
	inbox := "default/100/INBOX/"
	pbxtree.WriteFile(t, a.path(1, inbox+"msg0000.wav"), randBytes(1, 300<<10), old0)
	pbxtree.WriteFile(t, a.path(1, inbox+"msg0001.wav"), randBytes(2, 300<<10), old0)
	syncNow(t, a)
	assertSame(t, a, b)

	os.Remove(a.path(1, inbox+"msg0000.wav"))
	pbxtree.WriteFile(t, a.path(1, inbox+"msg0002.wav"), randBytes(3, 3<<20), old0) // does not fit
	pbxtree.WriteFile(t, a.path(0, "sip.conf"), []byte("config still fits"), old0)
	_, err := a.SyncNow(t.Context())
	if err == nil || !strings.Contains(err.Error(), "no space left") {
		t.Fatalf("run onto a full disk: %v, want a no-space error", err)
	}
	if _, err := os.Stat(b.path(1, inbox+"msg0000.wav")); err != nil {
		t.Errorf("a file was deleted in a failed run: %v", err)
	}
	noTemps(t, b)
	if s := a.Status(); !strings.Contains(s.LastError, "no space left") {
		t.Errorf("status error %q", s.LastError)
	}
	// Room again: the big message goes, the next run completes.
	os.Remove(a.path(1, inbox+"msg0002.wav"))
	syncNow(t, a)
	assertSame(t, a, b)
	t.Log("full disk handled")
}

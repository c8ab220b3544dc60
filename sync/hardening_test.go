package sync

import (
	"os"
	"testing"
)

// TestSymlinkLifecycle creates, retargets and deletes links on the source, and turns a link
// into a file and back: every step reaches the replica with no "changed on the replica"
// error (the replica's check of its own entries compared a link's lstat size with the size 0
// the manifest records for a link, so a link was never deleted there).
func TestSymlinkLifecycle(t *testing.T) {
	a, b := newPair(t, nil)
	writeFile(t, a.path(0, "sip.conf"), []byte("sip"), old0)
	writeFile(t, a.path(0, "pjsip.conf"), []byte("pjsip"), old0)
	writeFile(t, a.path(0, "sub/x.conf"), []byte("x"), old0)
	steps := []struct {
		name string
		do   func() error
	}{
		{"create", func() error {
			if err := os.Symlink("sip.conf", a.path(0, "active.conf")); err != nil {
				return err
			}
			return os.Symlink("../sip.conf", a.path(0, "sub/up.conf"))
		}},
		{"retarget", func() error {
			tmp := a.path(0, ".new-link")
			if err := os.Symlink("pjsip.conf", tmp); err != nil {
				return err
			}
			return os.Rename(tmp, a.path(0, "active.conf"))
		}},
		{"delete", func() error {
			if err := os.Remove(a.path(0, "active.conf")); err != nil {
				return err
			}
			return os.Remove(a.path(0, "sub/up.conf"))
		}},
		{"link again", func() error { return os.Symlink("sip.conf", a.path(0, "active.conf")) }},
		{"link becomes file", func() error {
			if err := os.Remove(a.path(0, "active.conf")); err != nil {
				return err
			}
			writeFile(t, a.path(0, "active.conf"), []byte("a file now"), old0)
			return nil
		}},
		{"file becomes link", func() error {
			if err := os.Remove(a.path(0, "active.conf")); err != nil {
				return err
			}
			return os.Symlink("pjsip.conf", a.path(0, "active.conf"))
		}},
	}
	syncNow(t, a)
	for _, s := range steps {
		if err := s.do(); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		st := syncNow(t, a)
		if len(st.Errors) > 0 {
			t.Errorf("%s: errors %q", s.name, st.Errors)
		}
		assertSame(t, a, b)
		// Nothing left to do: a second run changes nothing on the replica.
		if st := syncNow(t, a); st.Files+st.Deleted != 0 || len(st.Errors) > 0 {
			t.Errorf("%s: second run did %d files, %d deletes, errors %q", s.name, st.Files, st.Deleted, st.Errors)
		}
	}
	if _, err := os.Lstat(b.path(0, "sub/up.conf")); err == nil {
		t.Error("deleted link still on the replica")
	}
	if l, err := os.Readlink(b.path(0, "active.conf")); err != nil || l != "pjsip.conf" {
		t.Errorf("replica link %q %v, want pjsip.conf", l, err)
	}
}

package sync

import (
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/redundantd/redundantd/testlab/pbxtree"
)

// TestSymlinkLifecycle creates, retargets and deletes links on the source, and turns a link
// into a file and back: every step reaches the replica with no "changed on the replica"
// error (the replica's check of its own entries compared a link's lstat size with the size 0
// the manifest records for a link, so a link was never deleted there).
func TestSymlinkLifecycle(t *testing.T) {
	a, b := newPair(t, nil)
	pbxtree.WriteFile(t, a.path(0, "sip.conf"), []byte("sip"), old0)
	pbxtree.WriteFile(t, a.path(0, "pjsip.conf"), []byte("pjsip"), old0)
	pbxtree.WriteFile(t, a.path(0, "sub/x.conf"), []byte("x"), old0)
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
			pbxtree.WriteFile(t, a.path(0, "active.conf"), []byte("a file now"), old0)
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

func TestSkipRule(t *testing.T) {
	skip := skipRule(map[string]bool{"0/busy.conf": true},
		map[string]bool{"1/default/100/INBOX": true},
		map[string]bool{"0/secret.conf": true, "1/default/200": true, "2": true})
	for p, want := range map[string]bool{
		"0/busy.conf":                      true,
		"0/secret.conf":                    true,
		"0/secret.conf.bak":                false,
		"0/sip.conf":                       false,
		"1/default/100/INBOX":              true,
		"1/default/100/INBOX/msg0000.wav":  true,
		"1/default/100/Old/msg0000.wav":    false,
		"1/default/200":                    true,
		"1/default/200/INBOX/msg0000.wav":  true,
		"1/default/2000/INBOX/msg0000.wav": false,
		"2/anything/below":                 true,
		"3/x":                              false,
	} {
		if got := skip(p); got != want {
			t.Errorf("skip(%q) = %v, want %v", p, got, want)
		}
	}
}

func TestStateMsgUnreadable(t *testing.T) {
	in := stateMsg{Count: 3, Locked: []string{"1/a"}, Unreadable: []string{"0", "1/default/100/INBOX"}}
	b, _ := in.MarshalBinary()
	var out stateMsg
	if err := out.UnmarshalBinary(b); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(in, out); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}
	for _, bad := range []string{"0/../etc", "99", "-1", "/abs"} {
		m := stateMsg{Unreadable: []string{bad}}
		b, _ := m.MarshalBinary()
		if err := new(stateMsg).UnmarshalBinary(b); !errors.Is(err, ErrBadPath) {
			t.Errorf("unreadable %q: %v, want ErrBadPath", bad, err)
		}
	}
}

// TestResultMsgRunError: a failure that is not about one entry (the replica could not record
// the run in its state_dir) travels with an empty path; it used to be sent as "0/.", which the
// source refused as a bad path, so the replica's real error never reached it.
func TestResultMsgRunError(t *testing.T) {
	in := resultMsg{Failed: []pathErr{{Path: "", Err: "record the run in /var/lib/redundantd/sync: no space left on device"},
		{Path: "1/default/100/INBOX", Err: "sync: input/output error"}}, Fatal: "no space left on device"}
	b, _ := in.MarshalBinary()
	var out resultMsg
	if err := out.UnmarshalBinary(b); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(in, out); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}
	for _, p := range []string{"0/.", "0/" + trashDirName + "/x", "0/../x"} {
		m := resultMsg{Failed: []pathErr{{Path: p}}}
		b, _ := m.MarshalBinary()
		if err := new(resultMsg).UnmarshalBinary(b); !errors.Is(err, ErrBadPath) {
			t.Errorf("path %q: %v, want ErrBadPath", p, err)
		}
	}
}

func TestStatusJSON(t *testing.T) {
	at := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	s := Status{Role: RoleSource, Fingerprint: "ab12", PeerConnected: true, Runs: 3, JunkConnections: 7,
		LastSuccess: at, LastRun: RunStats{Started: at, Duration: 1500 * time.Millisecond, Files: 2, FilesWhole: 1,
			FilesLocal: 1, Deleted: 1, BytesSent: 900, Literal: 400, Unreadable: []string{"/etc/asterisk/secret.conf"}, Special: 1,
			SpecialPaths: []string{"/etc/asterisk/cli.fifo"}}}
	got, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"role":"source","fingerprint":"ab12","peer_connected":true,"last_run":{"started":"2026-12-01T10:00:00Z",` +
		`"duration_ns":1500000000,"full":false,"files":2,"files_whole":1,"files_delta":0,"files_local":1,"deleted":1,` +
		`"pulled":0,"conflicts":0,"skipped":0,"bytes_sent":900,"bytes_recv":0,"literal":400,` +
		`"unreadable":["/etc/asterisk/secret.conf"],"special":1,"special_paths":["/etc/asterisk/cli.fifo"]},` +
		`"last_error":"","last_success":"2026-12-01T10:00:00Z","runs":3,"junk_connections":7}`
	if diff := cmp.Diff(want, string(got)); diff != "" {
		t.Errorf("JSON (-want +got):\n%s", diff)
	}
	var back Status
	if err := json.Unmarshal(got, &back); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(s, back); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}
	for _, r := range []Role{RoleNone, RoleSource, RoleReplica} {
		b, _ := json.Marshal(Status{Role: r})
		if !strings.Contains(string(b), `"role":"`+r.String()+`"`) {
			t.Errorf("role %v: %s", r, b)
		}
	}
	if err := json.Unmarshal([]byte(`{"role":"master"}`), &back); !errors.Is(err, ErrBadRole) {
		t.Errorf("unknown role: %v, want ErrBadRole", err)
	}
	if _, err := json.Marshal(Status{Role: 9}); !errors.Is(err, ErrBadRole) {
		t.Errorf("role 9: %v, want ErrBadRole", err)
	}
}

package sync

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redundantd/redundantd/testlab/pbxtree"
)

// The source of TestUnreadableNeverDeleted runs in a child process (this test binary again)
// started by setpriv without CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH: root as under SELinux
// or NFS root_squash, which cannot read a mode-000 file or list a mode-000 folder.
const unreadableChildEnv = "SYNC_UNREADABLE_CHILD"

type childConfig struct {
	Paths    []string
	State    string
	Peer     string
	PeerFP   string
	Deadline time.Duration
}

type childEvent struct {
	Kind   EventKind
	Path   string
	Detail string
}

type childResult struct {
	Stats  RunStats
	Err    string
	Events []childEvent
	CapEff uint64
}

const childResultPrefix = "CHILD-RESULT "

// startReplica starts a replica node on a 127.0.0.1 listener (port chosen by the kernel) that accepts
// the source with fingerprint peerFP.
func startReplica(t *testing.T, root, peerFP string) *testNode {
	t.Helper()
	tn := &testNode{root: root, state: filepath.Join(root, "state")}
	tn.trees = []string{filepath.Join(root, "etc"), filepath.Join(root, "voicemail")}
	n, err := New(Config{Paths: tn.trees, StateDir: tn.state, Peer: "127.0.0.1:1",
		PeerFingerprint: peerFP, Interval: "1h", OnEvent: func(e Event) {
			tn.mu.Lock()
			tn.events = append(tn.events, e)
			tn.mu.Unlock()
		}})
	if err != nil {
		t.Fatal(err)
	}
	tn.Node = n
	tn.ln = listen(t, "127.0.0.1:0")
	tn.start(t)
	n.SetRole(RoleReplica)
	return tn
}

// runUnprivilegedSource runs one source run in a child process without DAC override.
func runUnprivilegedSource(t *testing.T, setpriv string, cfg childConfig) childResult {
	t.Helper()
	cj, _ := json.Marshal(cfg)
	cmd := exec.Command(setpriv, "--bounding-set=-dac_override,-dac_read_search", "--",
		os.Args[0], "-test.run=^TestUnreadableNeverDeleted$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), unreadableChildEnv+"="+string(cj))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("source child: %v\n%s", err, out)
	}
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), childResultPrefix); ok {
			var r childResult
			if err := json.Unmarshal([]byte(rest), &r); err != nil {
				t.Fatalf("child result: %v", err)
			}
			return r
		}
	}
	t.Fatalf("no result from the source child:\n%s", out)
	return childResult{}
}

// sourceChild is the child's side: one run as the source, its result on stdout.
func sourceChild(t *testing.T) {
	var cfg childConfig
	if err := json.Unmarshal([]byte(os.Getenv(unreadableChildEnv)), &cfg); err != nil {
		t.Fatal(err)
	}
	runs := make(chan Event, 4)
	var res childResult
	n, err := New(Config{Paths: cfg.Paths, StateDir: cfg.State, Peer: cfg.Peer,
		PeerFingerprint: cfg.PeerFP, Interval: "1h", OnEvent: func(e Event) {
			res.Events = append(res.Events, childEvent{e.Kind, e.Path, e.Detail})
			if e.Kind == EventRun {
				runs <- e
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx, ln) }()
	n.SetRole(RoleSource) // becoming the source starts a run at once
	select {
	case e := <-runs:
		res.Stats = *e.Stats
		if e.Err != nil {
			res.Err = e.Err.Error()
		}
	case err := <-done:
		t.Fatalf("source stopped: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("no run")
	}
	cancel()
	<-done
	status, _ := os.ReadFile("/proc/self/status")
	for _, l := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(l, "CapEff:"); ok {
			res.CapEff, _ = strconv.ParseUint(strings.TrimSpace(v), 16, 64)
		}
	}
	b, _ := json.Marshal(res)
	os.Stdout.WriteString(childResultPrefix + string(b) + "\n")
}

// TestUnreadableNeverDeleted: on a source that cannot read a file or list a folder, the run
// reports both by path (statistics, errors, EventUnreadable) and leaves the replica's copies
// exactly as they were: not deleted, not moved to the trash, mode unchanged; everything else
// is still replicated, and once the entries are readable again the trees converge.
func TestUnreadableNeverDeleted(t *testing.T) {
	if os.Getenv(unreadableChildEnv) != "" {
		sourceChild(t)
		return
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root: the source runs as root without CAP_DAC_OVERRIDE (setpriv)")
	}
	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		t.Skip("needs setpriv (util-linux) to drop CAP_DAC_OVERRIDE for the source")
	}
	dir := t.TempDir()
	src := &testNode{root: filepath.Join(dir, "src"), state: filepath.Join(dir, "src", "state")}
	src.trees = []string{filepath.Join(src.root, "etc"), filepath.Join(src.root, "voicemail")}
	srcFP, err := LocalFingerprint(src.state)
	if err != nil {
		t.Fatal(err)
	}
	b := startReplica(t, filepath.Join(dir, "rep"), srcFP)
	cfg := childConfig{Paths: src.trees, State: src.state, Peer: b.ListenAddr().String(), PeerFP: b.Fingerprint()}

	inbox := "default/100/INBOX"
	pbxtree.WriteFile(t, src.path(0, "sip.conf"), []byte("sip v1"), old0)
	pbxtree.WriteFile(t, src.path(0, "secret.conf"), []byte("secret"), old0)
	if err := os.Chmod(src.path(0, "secret.conf"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"msg0000.wav", "msg0000.txt", "msg0001.wav", "msg0001.txt"} {
		pbxtree.WriteFile(t, src.path(1, inbox+"/"+f), []byte("data of "+f), old0)
	}
	pbxtree.WriteFile(t, src.path(1, "default/100/Old/msg0000.wav"), []byte("old message"), old0)

	r := runUnprivilegedSource(t, setpriv, cfg)
	if r.CapEff&(1<<1|1<<2) != 0 {
		t.Fatalf("the source child kept DAC override: CapEff %#x", r.CapEff)
	}
	if r.Err != "" || len(r.Stats.Errors) > 0 {
		t.Fatalf("first run: %s %q", r.Err, r.Stats.Errors)
	}
	assertSame(t, src, b)

	// Unreadable now: a file, a folder, and a new file.
	for _, c := range []struct {
		rel  string
		mode fs.FileMode
	}{{src.path(0, "secret.conf"), 0}, {src.path(1, inbox), 0}} {
		if err := os.Chmod(c.rel, c.mode); err != nil {
			t.Fatal(err)
		}
	}
	pbxtree.WriteFile(t, src.path(0, "new-secret.conf"), []byte("new"), old0)
	if err := os.Chmod(src.path(0, "new-secret.conf"), 0); err != nil {
		t.Fatal(err)
	}
	pbxtree.WriteFile(t, src.path(0, "sip.conf"), []byte("sip v2"), old0) // still replicated

	r = runUnprivilegedSource(t, setpriv, cfg)
	checkUnreadableRun(t, src, b, r, inbox)

	// Readable again: the trees converge.
	for p, mode := range map[string]fs.FileMode{src.path(0, "secret.conf"): 0o600, src.path(1, inbox): 0o755, src.path(0, "new-secret.conf"): 0o644} {
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
	}
	r = runUnprivilegedSource(t, setpriv, cfg)
	if r.Err != "" || len(r.Stats.Errors) > 0 || len(r.Stats.Unreadable) > 0 {
		t.Errorf("run once readable: %s %q %q", r.Err, r.Stats.Errors, r.Stats.Unreadable)
	}
	assertSame(t, src, b)
}

// checkUnreadableRun checks the run of TestUnreadableNeverDeleted made while src could not
// read secret.conf, new-secret.conf and the inbox: reported by path, nothing of them
// changed, moved or deleted on the replica b, sip.conf's change replicated.
func checkUnreadableRun(t *testing.T, src, b *testNode, r childResult, inbox string) {
	t.Helper()
	t.Logf("run with unreadable entries: err %q, %d files, %d deleted, errors %q, unreadable %q",
		r.Err, r.Stats.Files, r.Stats.Deleted, r.Stats.Errors, r.Stats.Unreadable)
	if r.Err != "" {
		t.Errorf("run error %q", r.Err)
	}
	if r.Stats.Deleted != 0 {
		t.Errorf("%d deleted on the replica, want 0", r.Stats.Deleted)
	}
	errs := strings.Join(r.Stats.Errors, "\n")
	for _, p := range []string{src.path(0, "secret.conf"), src.path(1, inbox), src.path(0, "new-secret.conf")} {
		if !strings.Contains(errs, p) {
			t.Errorf("errors do not name %s: %q", p, r.Stats.Errors)
		}
	}
	want := []string{src.path(0, "secret.conf"), src.path(1, inbox)}
	if strings.Join(r.Stats.Unreadable, "|") != strings.Join(want, "|") {
		t.Errorf("Unreadable %q, want %q", r.Stats.Unreadable, want)
	}
	var ev *childEvent
	for i := range r.Events {
		if r.Events[i].Kind == EventUnreadable {
			ev = &r.Events[i]
		}
	}
	if ev == nil || ev.Path != src.path(0, "secret.conf") || !strings.Contains(ev.Detail, src.path(1, inbox)) {
		t.Errorf("unreadable event %+v", ev)
	}
	if data, err := os.ReadFile(b.path(0, "secret.conf")); err != nil || string(data) != "secret" {
		t.Errorf("replica's secret.conf: %q %v", data, err)
	}
	for p, mode := range map[string]fs.FileMode{b.path(0, "secret.conf"): 0o600, b.path(1, inbox): fs.ModeDir | 0o755} {
		if fi, err := os.Lstat(p); err != nil {
			t.Errorf("replica's %s: %v", p, err)
		} else if fi.Mode() != mode {
			t.Errorf("replica's %s: mode %v, want %v", p, fi.Mode(), mode)
		}
	}
	for _, f := range []string{"msg0000.wav", "msg0000.txt", "msg0001.wav", "msg0001.txt"} {
		if _, err := os.Stat(b.path(1, inbox+"/"+f)); err != nil {
			t.Errorf("replica lost %s: %v", f, err)
		}
	}
	if data, _ := os.ReadFile(b.path(0, "sip.conf")); string(data) != "sip v2" {
		t.Errorf("readable change not replicated: sip.conf %q", data)
	}
	if trashed := trashFiles(t, b); len(trashed) > 0 {
		t.Errorf("moved to the replica's trash: %q", trashed)
	}
}

// trashFiles lists the files in a node's trash areas.
func trashFiles(t *testing.T, tn *testNode) []string {
	t.Helper()
	var out []string
	dirs := []string{filepath.Join(tn.state, "trash")}
	for _, tr := range tn.trees {
		dirs = append(dirs, filepath.Join(tr, trashDirName))
	}
	for _, d := range dirs {
		_ = filepath.WalkDir(d, func(p string, e fs.DirEntry, err error) error {
			if err == nil && !e.IsDir() {
				out = append(out, p)
			}
			return nil
		})
	}
	return out
}

// withoutDACOverride re-runs the calling test in a child process started by setpriv without
// CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH and reports its outcome; it returns true in the
// child, where the test goes on.
func withoutDACOverride(t *testing.T, name string) bool {
	t.Helper()
	env := "SYNC_NODAC_CHILD_" + name
	if os.Getenv(env) != "" {
		return true
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root: the test runs as root without CAP_DAC_OVERRIDE (setpriv)")
	}
	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		t.Skip("needs setpriv (util-linux) to drop CAP_DAC_OVERRIDE")
	}
	cmd := exec.Command(setpriv, "--bounding-set=-dac_override,-dac_read_search", "--",
		os.Args[0], "-test.run=^"+name+"$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), env+"=1")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: "+name) {
		t.Fatalf("child: %v\n%s", err, out)
	}
	for _, l := range strings.Split(string(out), "\n") {
		if strings.Contains(l, "unreadable_linux_test.go") {
			t.Log(strings.TrimSpace(l))
		}
	}
	return false
}

// TestReplicaUnreadableKept: what the replica cannot read or list (both nodes run without
// DAC override in a child process) is left alone by the source: a file and a folder deleted
// on the source stay on the replica, and are deleted once the replica can read them again.
func TestReplicaUnreadableKept(t *testing.T) {
	if !withoutDACOverride(t, "TestReplicaUnreadableKept") {
		return
	}
	a, b := newPair(t, nil)
	inbox := "default/100/INBOX/"
	pbxtree.WriteFile(t, a.path(0, "secret.conf"), []byte("secret"), old0)
	pbxtree.WriteFile(t, a.path(0, "sip.conf"), []byte("sip v1"), old0)
	for _, f := range []string{"msg0000.wav", "msg0000.txt", "msg0001.wav", "msg0001.txt"} {
		pbxtree.WriteFile(t, a.path(1, inbox+f), []byte("data of "+f), old0)
	}
	syncNow(t, a)
	assertSame(t, a, b)
	for _, p := range []string{b.path(0, "secret.conf"), b.path(1, inbox)} {
		if err := os.Chmod(p, 0); err != nil {
			t.Fatal(err)
		}
	}
	os.Remove(a.path(0, "secret.conf"))
	os.Remove(a.path(1, inbox+"msg0001.wav"))
	os.Remove(a.path(1, inbox+"msg0001.txt"))
	pbxtree.WriteFile(t, a.path(0, "sip.conf"), []byte("sip v2"), old0)
	st := syncNow(t, a)
	t.Logf("run with entries the replica cannot read: %d files, %d deleted, unreadable %q", st.Files, st.Deleted, st.Unreadable)
	if st.Deleted != 0 {
		t.Errorf("%d deleted, want 0", st.Deleted)
	}
	if len(st.Unreadable) != 2 || !strings.Contains(strings.Join(st.Errors, " "), "on the replica") {
		t.Errorf("unreadable %q, errors %q: want the replica's 2 entries named", st.Unreadable, st.Errors)
	}
	if len(a.eventsOf(EventUnreadable)) == 0 {
		t.Error("no unreadable event")
	}
	if data, _ := os.ReadFile(a.path(0, "sip.conf")); string(data) != "sip v2" {
		t.Error("source changed")
	}
	if data, _ := os.ReadFile(b.path(0, "sip.conf")); string(data) != "sip v2" {
		t.Errorf("readable change not replicated: %q", data)
	}
	for _, p := range []string{b.path(0, "secret.conf"), b.path(1, inbox)} {
		if err := os.Chmod(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := os.Stat(b.path(1, inbox+"msg0001.wav")); err != nil {
		t.Errorf("message deleted although its folder was unreadable: %v", err)
	}
	if err := os.Chmod(b.path(0, "secret.conf"), 0o644); err != nil {
		t.Fatal(err)
	}
	st = syncNow(t, a)
	if st.Deleted != 3 || len(st.Errors) > 0 {
		t.Errorf("once readable: %d deleted, errors %q; want 3", st.Deleted, st.Errors)
	}
	assertSame(t, a, b)
}

package testlab

import (
	"context"
	"errors"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// requirePBX skips the test unless it runs as root and Kamailio, sqlite3, sipsak and baresip
// are installed.
func requirePBX(t *testing.T) {
	t.Helper()
	RequireRoot(t)
	if m := PBXMissing(); len(m) > 0 {
		t.Skipf("skipping: %v; missing: %s", ErrNoPBX, strings.Join(m, ", "))
	}
}

// waitUsers polls a usrloc database until it lists want (a file on disk has no event to wait
// on); it returns when that was seen.
func waitUsers(ctx context.Context, t *testing.T, db string, want []string) time.Time {
	t.Helper()
	at, err := WaitUsers(ctx, db, want)
	if err != nil {
		t.Fatal(err)
	}
	return at
}

// replicate copies the snapshot from one node's tree into the other's the way the sync
// applies a file: a temporary file in the same folder, fsynced, renamed into place.
func replicate(t *testing.T, from, to KamailioFiles) {
	t.Helper()
	src, err := os.Open(from.Snapshot)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	if err := os.MkdirAll(to.Tree, 0o755); err != nil {
		t.Fatal(err)
	}
	tmp, err := os.CreateTemp(to.Tree, ".rdsync-*.tmp")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(tmp, src); err != nil {
		t.Fatal(err)
	}
	if err := tmp.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := tmp.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp.Name(), to.Snapshot); err != nil {
		t.Fatal(err)
	}
}

// moveVIP takes the virtual IP from one node to the other by hand and announces it.
func moveVIP(t *testing.T, vip netip.Prefix, from, to *Node) {
	t.Helper()
	if err := from.RemoveAddr(vip); err != nil {
		t.Fatal(err)
	}
	if err := to.AddAddr(vip); err != nil {
		t.Fatal(err)
	}
	if err := to.AnnounceAddr(vip.Addr()); err != nil {
		t.Fatal(err)
	}
}

// onlyOn asserts that Kamailio runs in node want and in no other node of the lab.
func onlyOn(t *testing.T, l *Lab, want *Node) {
	t.Helper()
	for _, n := range l.Nodes() {
		pids, err := n.KamailioPids()
		if err != nil {
			t.Fatal(err)
		}
		if running := len(pids) > 0; running != (n == want) {
			t.Fatalf("kamailio processes in %s: %v; want them only in %s", n.Name, pids, want.Name)
		}
	}
}

// TestPBXFailoverKeepsRegistrations runs Kamailio on node 1 with the virtual IP, registers two
// baresip phones with a 3600 s expiry, and moves the PBX to node 2 twice: after a crash
// (SIGKILL, no last snapshot: node 2 starts from the snapshot Kamailio took on its own) and
// after a planned stop and back. Each time phone A's call to phone B is answered through the
// virtual IP while neither phone has sent a second REGISTER. The times are logged, not asserted.
func TestPBXFailoverKeepsRegistrations(t *testing.T) {
	requirePBX(t)
	l := NewT(t, Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	n1, n2 := l.Node(1), l.Node(2)
	phones, err := l.AddHost("phones")
	if err != nil {
		t.Fatal(err)
	}
	vip := l.DefaultVIP()
	sipVIP := netip.AddrPortFrom(vip.Addr(), 5060)
	if err := n1.AddAddr(vip); err != nil {
		t.Fatal(err)
	}
	k1, err := n1.StartKamailio(ctx, KamailioConfig{VIP: vip.Addr()})
	if err != nil {
		t.Fatal(err)
	}
	// Node 2's files are rendered now, as a Backup's are before it is ever Master.
	f2, err := n2.WriteKamailio(KamailioConfig{VIP: vip.Addr()})
	if err != nil {
		t.Fatal(err)
	}

	alice, err := phones.StartPhone(ctx, PhoneConfig{User: "alice", Registrar: sipVIP, Expiry: 3600 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	bob, err := phones.StartPhone(ctx, PhoneConfig{User: "bob", Registrar: sipVIP, Expiry: 3600 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	snapAt := waitUsers(ctx, t, k1.Files.Snapshot, []string{"alice", "bob"})
	t.Logf("registrations in node1's replicated snapshot %v after the second REGISTER was answered (polled every 20 ms)", snapAt.Sub(bob.RegisteredAt()).Round(time.Millisecond))
	if _, err := alice.Call(ctx, "bob"); err != nil {
		t.Fatalf("before any failover: %v", err)
	}
	// What a plain copy of the live database would replicate: the WAL holds the rows.
	if users, err := copyMainFile(ctx, t, k1.Files.LiveDB); err == nil {
		t.Logf("a plain copy of the live database file (without its WAL) lists %v", users)
	}
	onlyOn(t, l, n1)

	// Unplanned: Kamailio on node 1 dies; the last timer snapshot is what node 2 gets.
	crash := time.Now()
	if err := k1.Kill(ctx); err != nil {
		t.Fatal(err)
	}
	replicate(t, k1.Files, f2)
	moveVIP(t, vip, n1, n2)
	vipAt := time.Now()
	k2, err := n2.StartKamailio(ctx, KamailioConfig{VIP: vip.Addr()})
	if err != nil {
		t.Fatal(err)
	}
	upAt := time.Now()
	optAt, err := SIPPing(ctx, phones, sipVIP)
	if err != nil {
		t.Fatal(err)
	}
	callAt, err := alice.Call(ctx, "bob")
	if err != nil {
		snap, serr := RegisteredUsers(ctx, f2.Snapshot)
		live, lerr := RegisteredUsers(ctx, f2.LiveDB)
		dump, _ := n2.Exec(ctx, "kamcmd", "-s", "unix:"+filepath.Join(f2.RunDir, "kamailio_ctl"), "ul.dump")
		dbrows, _ := n2.Exec(ctx, "sqlite3", f2.LiveDB, "select username,contact,expires,methods,socket from location")
		t.Fatalf("after the crash of node1's kamailio: %v\nsnapshot %v %v live %v %v\n%s\n%s", err, snap, serr, live, lerr, dump, dbrows)
	}
	onlyOn(t, l, n2)
	t.Logf("crash: VIP on node2 +%v, kamailio up +%v, OPTIONS to the VIP answered +%v, alice->bob answered +%v (from the kill; the copy is instant here)",
		vipAt.Sub(crash).Round(time.Millisecond), upAt.Sub(crash).Round(time.Millisecond),
		optAt.Sub(crash).Round(time.Millisecond), callAt.Sub(crash).Round(time.Millisecond))
	if a, b := alice.Registers(), bob.Registers(); a != 1 || b != 1 {
		t.Fatalf("REGISTERs sent: alice %d, bob %d; want 1 each (no re-registration)", a, b)
	}

	// Planned: node 2 stops Kamailio (last snapshot), node 1 takes over again.
	swap := time.Now()
	if err := k2.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	onlyOn(t, l, nil)
	replicate(t, f2, k1.Files)
	moveVIP(t, vip, n2, n1)
	if _, err := n1.StartKamailio(ctx, KamailioConfig{VIP: vip.Addr()}); err != nil {
		t.Fatal(err)
	}
	upAt = time.Now()
	callAt, err = alice.Call(ctx, "bob")
	if err != nil {
		t.Fatalf("after the planned move back to node1: %v", err)
	}
	onlyOn(t, l, n1)
	t.Logf("planned: kamailio up on node1 +%v, alice->bob answered +%v (from the stop on node2)",
		upAt.Sub(swap).Round(time.Millisecond), callAt.Sub(swap).Round(time.Millisecond))
	if a, b := alice.Registers(), bob.Registers(); a != 1 || b != 1 {
		t.Fatalf("REGISTERs sent: alice %d, bob %d; want 1 each (no re-registration)", a, b)
	}
}

// copyMainFile copies only the database file (not its -wal), as a file sync would when it
// copies one tree file, and lists the users that copy holds.
func copyMainFile(ctx context.Context, t *testing.T, db string) ([]string, error) {
	b, err := os.ReadFile(db)
	if err != nil {
		return nil, err
	}
	cp := filepath.Join(t.TempDir(), "copy.db")
	if err := os.WriteFile(cp, b, 0o644); err != nil {
		return nil, err
	}
	return RegisteredUsers(ctx, cp)
}

// TestKamailioServiceCommands runs the exact commands a redundantd [[service]] entry gets
// (KamailioFiles.ServiceStart, ServiceCheck, ServiceStop): start daemonizes Kamailio and
// returns, check passes while it answers OPTIONS and fails once it is stopped, stop leaves no
// Kamailio and a snapshot holding the registration made meanwhile, and a second stop is a
// no-op that keeps that snapshot.
func TestKamailioServiceCommands(t *testing.T) {
	requirePBX(t)
	l := NewT(t, Options{Nodes: 1})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	n := l.Node(1)
	vip := l.DefaultVIP()
	if err := n.AddAddr(vip); err != nil {
		t.Fatal(err)
	}
	f, err := n.WriteKamailio(KamailioConfig{VIP: vip.Addr()})
	if err != nil {
		t.Fatal(err)
	}
	run := func(args []string) error {
		out, err := n.Exec(ctx, args[0], args[1:]...)
		if err != nil {
			return errors.Join(err, errors.New(out))
		}
		return nil
	}
	if err := run(f.ServiceStart()); err != nil {
		t.Fatalf("start: %v", err)
	}
	t.Cleanup(func() { run(f.ServiceStop()) })
	// The daemon forked by start needs a moment to bind; wait for its answer, not a time.
	if !n.KamailioUp(ctx, f.Port, 10*time.Second) {
		t.Fatal("kamailio started by the service command does not answer OPTIONS")
	}
	if err := run(f.ServiceCheck()); err != nil {
		t.Fatalf("check while running: %v", err)
	}
	// A hung Kamailio (every process stopped) fails the check: it is SIP-level, not "the
	// process exists".
	pids, err := n.KamailioPids()
	if err != nil || len(pids) == 0 {
		t.Fatalf("kamailio pids %v (%v)", pids, err)
	}
	for _, pid := range pids {
		syscall.Kill(pid, syscall.SIGSTOP)
	}
	hung := time.Now()
	err = run(f.ServiceCheck())
	t.Logf("check against a hung kamailio failed after %v", time.Since(hung).Round(time.Millisecond))
	for _, pid := range pids {
		syscall.Kill(pid, syscall.SIGCONT)
	}
	if err == nil {
		t.Fatal("check passed with every kamailio process stopped (SIGSTOP)")
	}
	// A registration through the VIP (sipsak as the phone), then the stop's last snapshot.
	reg := exec.CommandContext(ctx, "sipsak", "-U", "-i", "-C", "sip:carol@"+n.Addr.String()+":5999",
		"-x", "3600", "-s", "sip:carol@"+vip.Addr().String())
	if out, err := runIn(n, reg); err != nil {
		t.Fatalf("register carol: %v: %s", err, out)
	}
	stopped := time.Now()
	if err := run(f.ServiceStop()); err != nil {
		t.Fatalf("stop: %v", err)
	}
	t.Logf("stop (SIGTERM, exit, last snapshot) took %v", time.Since(stopped).Round(time.Millisecond))
	if pids, err := n.KamailioPids(); err != nil || len(pids) > 0 {
		t.Fatalf("after stop: kamailio pids %v (%v)", pids, err)
	}
	if users, err := RegisteredUsers(ctx, f.Snapshot); err != nil || !slices.Equal(users, []string{"carol"}) {
		t.Fatalf("snapshot after stop lists %v (%v); want [carol]", users, err)
	}
	if err := run(f.ServiceCheck()); err == nil {
		t.Fatal("check passed with kamailio stopped")
	}
	st, err := os.Stat(f.Snapshot)
	if err != nil {
		t.Fatal(err)
	}
	if err := run(f.ServiceStop()); err != nil {
		t.Fatalf("second stop: %v", err)
	}
	st2, err := os.Stat(f.Snapshot)
	if err != nil || !st2.ModTime().Equal(st.ModTime()) {
		t.Fatalf("a stop with nothing running touched the snapshot (%v)", err)
	}
}

// runIn runs cmd in node n and returns its combined output.
func runIn(n *Node, cmd *exec.Cmd) (string, error) {
	var b strings.Builder
	cmd.Stdout, cmd.Stderr = &b, &b
	if err := n.Start(cmd); err != nil {
		return "", err
	}
	err := cmd.Wait()
	return b.String(), err
}

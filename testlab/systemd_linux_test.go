package testlab

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// notifySocket is the test's end of NOTIFY_SOCKET: what systemd reads from a Type=notify
// service. Unix sockets are not scoped by network namespace, so a daemon in a lab node
// reaches it.
type notifySocket struct {
	t    *testing.T
	conn *net.UnixConn
	path string
}

func listenNotifySocket(t *testing.T) *notifySocket {
	t.Helper()
	path := filepath.Join(t.TempDir(), "notify")
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &notifySocket{t: t, conn: c, path: path}
}

// next returns the next message that is not a watchdog ping (skip true) or the next message.
func (s *notifySocket) next(ctx context.Context, skipPings bool) string {
	s.t.Helper()
	dl, _ := ctx.Deadline()
	for {
		if err := s.conn.SetReadDeadline(dl); err != nil {
			s.t.Fatal(err)
		}
		b := make([]byte, 4096)
		n, err := s.conn.Read(b)
		if err != nil {
			s.t.Fatalf("reading NOTIFY_SOCKET: %v", err)
		}
		if msg := string(b[:n]); !skipPings || msg != "WATCHDOG=1" {
			return msg
		}
	}
}

// TestSystemdNotify runs the real redundantd as systemd runs a Type=notify service with
// WatchdogSec=: it says READY=1 once its API answers, pings WATCHDOG=1 while it runs, frames
// a SIGHUP reload with RELOADING=1 and READY=1, and says STOPPING=1 on SIGTERM before it
// exits 0. Redundancy is off (no VRRP), the API is in a lab node of its own.
func TestSystemdNotify(t *testing.T) {
	l := NewT(t, Options{Nodes: 1})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	bin, err := BuildBinary(ctx, "./cmd/redundantd")
	if err != nil {
		t.Fatal(err)
	}
	n := l.Node(1)
	dir := filepath.Join(l.Dir, "sdnotify")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(dir, "redundantd.toml")
	body := fmt.Sprintf("[node]\nid = \"sd\"\ninterface = %q\naddress = %q\nstate_dir = %q\n[redundancy]\nenabled = false\n[api]\nlisten = %q\n",
		n.Iface, n.Addr, dir, APIAddr)
	if err := os.WriteFile(conf, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	sock := listenNotifySocket(t)
	cmd := exec.Command(bin, "-config", conf)
	// WatchdogSec=200ms; no WATCHDOG_PID, which systemd sets after the fork.
	cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+sock.path, "WATCHDOG_USEC=200000")
	p, err := n.StartProcess("redundantd@"+n.Name, dir, cmd)
	if err != nil {
		t.Fatal(err)
	}

	if msg := sock.next(ctx, true); !strings.HasPrefix(msg, "READY=1\n") && msg != "READY=1" {
		t.Fatalf("first message %q, want READY=1", msg)
	}
	if _, err := n.Status(ctx); err != nil {
		t.Errorf("API after READY=1: %v", err)
	}
	for i := range 3 {
		if msg := sock.next(ctx, false); msg != "WATCHDOG=1" {
			t.Fatalf("message %d after READY: %q, want WATCHDOG=1", i, msg)
		}
	}

	if err := p.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	if msg := sock.next(ctx, true); !strings.HasPrefix(msg, "RELOADING=1\nMONOTONIC_USEC=") {
		t.Errorf("after SIGHUP: %q, want RELOADING=1 with MONOTONIC_USEC", msg)
	}
	if msg := sock.next(ctx, true); msg != "READY=1" {
		t.Errorf("after the reload: %q, want READY=1", msg)
	}
	if _, err := p.WaitOutput(ctx, "configuration reloaded"); err != nil {
		t.Error(err)
	}

	if err := p.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if msg := sock.next(ctx, true); msg != "STOPPING=1" {
		t.Errorf("after SIGTERM: %q, want STOPPING=1", msg)
	}
	if exitErr, err := p.Wait(ctx); err != nil || exitErr != nil {
		t.Errorf("exit: %v, %v; want status 0", exitErr, err)
	}
	// Outside journald (no JOURNAL_STREAM) the lines keep their timestamps.
	if out := p.Output(); !strings.Contains(out, "time=") {
		t.Errorf("log without timestamps outside journald:\n%s", out)
	}
}

// unitCaps are the capabilities systemd's CapabilityBoundingSet= may name in our unit, with
// their numbers (capability.h) and setpriv's names.
var unitCaps = map[string]struct {
	bit  uint
	name string
}{
	"CAP_CHOWN":           {unix.CAP_CHOWN, "chown"},
	"CAP_DAC_OVERRIDE":    {unix.CAP_DAC_OVERRIDE, "dac_override"},
	"CAP_DAC_READ_SEARCH": {unix.CAP_DAC_READ_SEARCH, "dac_read_search"},
	"CAP_FOWNER":          {unix.CAP_FOWNER, "fowner"},
	"CAP_NET_ADMIN":       {unix.CAP_NET_ADMIN, "net_admin"},
	"CAP_NET_RAW":         {unix.CAP_NET_RAW, "net_raw"},
}

// unitPrivileges reads packaging/redundantd.service and returns the capabilities of its
// CapabilityBoundingSet= and whether NoNewPrivileges=yes. A directive this test cannot
// reproduce without systemd (AmbientCapabilities=, User=, a "~" inverted set) fails it, so
// a change of the unit cannot silently escape the test.
func unitPrivileges(t *testing.T) (caps []string, noNewPrivs bool) {
	t.Helper()
	root, err := moduleRoot()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(root, "packaging", "redundantd.service"))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), "=")
		if !ok || strings.HasPrefix(k, "#") {
			continue
		}
		switch k {
		case "CapabilityBoundingSet":
			if strings.HasPrefix(v, "~") {
				t.Fatalf("unit: CapabilityBoundingSet=%s: an inverted set is not reproduced here", v)
			}
			for _, c := range strings.Fields(v) {
				if _, ok := unitCaps[c]; !ok {
					t.Fatalf("unit: CapabilityBoundingSet names %s, which this test does not know", c)
				}
				caps = append(caps, c)
			}
		case "NoNewPrivileges":
			noNewPrivs = v == "yes" || v == "true"
		case "AmbientCapabilities", "User", "DynamicUser", "SecureBits":
			t.Fatalf("unit: %s= is set; extend TestUnitCapabilities to reproduce it", k)
		}
	}
	if len(caps) == 0 {
		t.Fatal("unit: no CapabilityBoundingSet=")
	}
	return caps, noNewPrivs
}

// setprivFor is the setpriv(1) command that gives a root process what the unit gives the
// daemon: the bounding set (for a root service also its effective and permitted sets),
// nothing inheritable or ambient, no_new_privs; without the capabilities in drop.
func setprivFor(caps []string, noNewPrivs bool, drop ...string) (args []string, mask uint64) {
	set := "-all"
	for _, c := range caps {
		if slices.Contains(drop, c) {
			continue
		}
		set += ",+" + unitCaps[c].name
		mask |= 1 << unitCaps[c].bit
	}
	args = []string{"setpriv", "--bounding-set=" + set, "--inh-caps=-all", "--ambient-caps=-all"}
	if noNewPrivs {
		args = append(args, "--no-new-privs")
	}
	return args, mask
}

// procCaps reads CapEff, CapBnd and NoNewPrivs of pid.
func procCaps(t *testing.T, pid int) (eff, bnd uint64, nnp string) {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		k, v, _ := strings.Cut(l, ":")
		v = strings.TrimSpace(v)
		switch k {
		case "CapEff":
			eff, err = strconv.ParseUint(v, 16, 64)
		case "CapBnd":
			bnd, err = strconv.ParseUint(v, 16, 64)
		case "NoNewPrivs":
			nnp = v
		}
		if err != nil {
			t.Fatalf("/proc/%d/status %s: %v", pid, k, err)
		}
	}
	return eff, bnd, nnp
}

// readOnlyBut is a command prefix that runs wrap in a mount namespace of its own where every
// mount is read-only except /proc, /sys, /dev and the directory state (made writable by a
// bind mount of its own first).
func readOnlyBut(state string, wrap []string) []string {
	script := `state=$1; shift
mount --bind "$state" "$state" || exit 1
for m in $(awk '{print $5}' /proc/self/mountinfo | sort -u); do
	case $m in /proc|/proc/*|/sys|/sys/*|/dev|/dev/*|"$state") continue;; esac
	mount -o remount,bind,ro "$m" 2>/dev/null
done
touch /ro-probe 2>/dev/null && { echo "/ is still writable"; exit 1; }
exec "$@"`
	return append([]string{"unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh", state}, wrap...)
}

// TestUnitCapabilities runs the real redundantd with exactly the privileges of the systemd
// unit (CapabilityBoundingSet=, NoNewPrivileges=), reproduced with setpriv because this
// machine's PID 1 is not systemd: with them it becomes Master, holds the virtual IP and
// releases it on SIGTERM, also with the file system read-only but for its state directory
// (what ProtectSystem=strict and StateDirectory= leave it); without CAP_NET_RAW it refuses
// to start with an error that says so. The unit's other sandboxing (PrivateTmp=,
// SystemCallFilter=, RestrictAddressFamilies=, ...) is not reproduced here
// (docs/packaging.md says what is verified where).
func TestUnitCapabilities(t *testing.T) {
	RequireRoot(t)
	if _, err := exec.LookPath("setpriv"); err != nil {
		t.Skip("skipping: setpriv is not installed (util-linux)")
	}
	caps, nnp := unitPrivileges(t)
	l := NewT(t, Options{Nodes: 2})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	vip := l.DefaultVIP()
	n := l.Node(1)

	wrap, mask := setprivFor(caps, nnp)
	r, err := n.StartRouter(ctx, Redundantd, VRRPConfig{Priority: 200, VIPs: []netip.Prefix{vip}, Wrap: wrap})
	if err != nil {
		t.Fatal(err)
	}
	// node2 never starts: node1 is Master after its Master_Down_Interval.
	if err := r.WaitState(ctx, "master"); err != nil {
		t.Fatal(err)
	}
	if ok, err := n.HasAddr(vip.Addr()); err != nil || !ok {
		t.Fatalf("Master without the virtual IP %s (%v)", vip, err)
	}
	checkPrivileges(t, r.Proc().Pid(), mask, nnp)
	if err := r.Term(ctx); err != nil {
		t.Fatalf("SIGTERM: %v\n%s", err, r.Proc().Output())
	}
	if ok, err := n.HasAddr(vip.Addr()); err != nil || ok {
		t.Errorf("the virtual IP is still on node1 after SIGTERM (%v)", err)
	}

	// ProtectSystem=strict with StateDirectory=, approximated: every mount read-only except
	// /proc, /sys, /dev and the state directory, in a mount namespace of the daemon's own
	// (made with full privileges, then setpriv drops them as before). The daemon must run
	// as Master and stop cleanly writing nowhere else.
	r.Config.Wrap = readOnlyBut(filepath.Join(r.Dir, "state"), wrap)
	if err := r.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := r.WaitState(ctx, "master"); err != nil {
		t.Fatalf("read-only system: %v", err)
	}
	if err := r.Term(ctx); err != nil {
		t.Fatalf("read-only system: SIGTERM: %v\n%s", err, r.Proc().Output())
	}
	if out := r.Proc().Output(); strings.Contains(out, "read-only file system") {
		t.Errorf("read-only system: the daemon tried to write outside its state directory:\n%s", out)
	}

	// Without CAP_NET_RAW there is no VRRP socket: the daemon must stop at once and say why.
	r.Config.Wrap, _ = setprivFor(caps, nnp, "CAP_NET_RAW")
	if err := r.Start(ctx); err != nil {
		t.Fatal(err)
	}
	exitErr, err := r.Proc().Wait(ctx)
	if err != nil {
		t.Fatalf("without CAP_NET_RAW the daemon still runs: %v\n%s", err, r.Proc().Output())
	}
	out := r.Proc().Output()
	if exitErr == nil || !strings.Contains(out, "raw socket") || !strings.Contains(out, "operation not permitted") {
		t.Errorf("without CAP_NET_RAW: exit %v, want a failure naming the raw socket and EPERM:\n%s", exitErr, out)
	}
	t.Logf("without CAP_NET_RAW: %v: %s", exitErr, tail(out, 1))
	if ok, err := n.HasAddr(vip.Addr()); err != nil || ok {
		t.Errorf("the virtual IP is on node1 although the daemon could not start (%v)", err)
	}
}

// checkPrivileges: pid's effective and bounding sets are exactly mask, and no_new_privs is
// set as nnp says.
func checkPrivileges(t *testing.T, pid int, mask uint64, nnp bool) {
	t.Helper()
	eff, bnd, gotNNP := procCaps(t, pid)
	if eff != mask || bnd != mask {
		t.Errorf("CapEff %#x, CapBnd %#x; want both %#x", eff, bnd, mask)
	}
	if want := map[bool]string{true: "1", false: "0"}[nnp]; gotNNP != want {
		t.Errorf("NoNewPrivs %s, want %s", gotNNP, want)
	}
}

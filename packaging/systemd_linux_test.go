package packaging

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/redundantd/redundantd/testlab/labns"
	"github.com/redundantd/redundantd/testlab/poll"
	"github.com/redundantd/redundantd/testlab/syncbuf"
)

// The container of TestSystemdUnit: systemd 252+ as PID 1 of a systemd-nspawn container
// whose root is this machine's root file system under a tmpfs overlay (nothing it writes
// reaches the machine), with a network namespace of its own. Only the units the test writes
// are enabled in it: /etc/systemd/system is a directory of the test.

// testTarget is the container's default unit: the system's initialisation (journald,
// tmpfiles) and nothing of what the machine itself enables.
const testTarget = `[Unit]
Description=redundantd package test
Requires=sysinit.target
After=sysinit.target
AllowIsolate=yes
`

// pbxUnit stands in for the PBX: redundantd starts and stops it with systemctl, as the
// shipped configuration does asterisk, from inside its sandbox.
const pbxUnit = `[Unit]
Description=stand-in PBX of the redundantd package test
[Service]
ExecStart=/bin/sleep infinity
`

// pbxService replaces the shipped configuration's [[service]] (asterisk).
const pbxService = `[[service]]
name = "pbx"
start = ["systemctl", "start", "rdtest-pbx"]
stop = ["systemctl", "stop", "rdtest-pbx"]
check = ["systemctl", "is-active", "--quiet", "rdtest-pbx"]
timeout = "30s"
check_interval = "2s"
`

type container struct {
	name string
	cmd  *exec.Cmd
	pid  int             // the container's PID 1, in this machine's PID namespace
	log  *syncbuf.Buffer // the container's console, for the failure messages
	root string          // /proc/PID/root: the container's file system seen from here
}

// bootContainer boots the container with the deb directory at /mnt/redundantd-deb, and stops
// it (shutdown, then SIGKILL) in t.Cleanup.
func bootContainer(t *testing.T, debDir string) *container {
	t.Helper()
	dir := t.TempDir()
	units, rootMnt := filepath.Join(dir, "units"), filepath.Join(dir, "root")
	for _, d := range []string{units, rootMnt} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for name, text := range map[string]string{"rdtest.target": testTarget, "rdtest-pbx.service": pbxUnit} {
		if err := os.WriteFile(filepath.Join(units, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	c := &container{name: fmt.Sprintf("rdtest-%d", os.Getpid()), log: &syncbuf.Buffer{}}
	// nspawn refuses -D /, so the root is bound (not recursively: only the root file system)
	// in a mount namespace of its own; --volatile=overlay puts a tmpfs over it.
	args := []string{"-D", rootMnt, "--volatile=overlay", "--boot", "--machine=" + c.name,
		"--private-network", "--console=read-only", "--register=no",
		"--bind=" + units + ":/etc/systemd/system", "--bind-ro=" + debDir + ":/mnt/redundantd-deb"}
	if _, err := os.Stat("/run/systemd/system"); err != nil {
		// No systemd on this machine to make a scope: the container stays in this cgroup.
		args = append(args, "--keep-unit")
	}
	args = append(args, "systemd.unit=rdtest.target")
	script := `mount --bind / "$1" && shift && exec systemd-nspawn "$@"`
	c.cmd = exec.Command("unshare", append([]string{"--mount", "--propagation", "private", "sh", "-c", script, "sh", rootMnt}, args...)...)
	c.cmd.Stdout, c.cmd.Stderr = c.log, c.log
	c.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { c.cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		// SIGTERM makes nspawn shut the container down in order; the process group also holds
		// the unshare that execs it.
		syscall.Kill(c.cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			t.Errorf("the container did not shut down within 30s; killed\n%s", c.log.Tail(4096))
			syscall.Kill(-c.cmd.Process.Pid, syscall.SIGKILL)
			<-exited
		}
	})
	poll.Until(t, 30*time.Second, "the container's PID 1", func() bool {
		select {
		case <-exited:
			t.Fatalf("systemd-nspawn exited: %v\n%s", c.cmd.ProcessState, c.log.Tail(4096))
		default:
		}
		c.pid = childNamed(c.cmd.Process.Pid, "systemd")
		return c.pid != 0
	})
	c.root = fmt.Sprintf("/proc/%d/root", c.pid)
	// is-system-running --wait returns once the boot is over: running, or degraded when a
	// unit failed (that is the machine's business, not this test's).
	var state string
	poll.Until(t, 60*time.Second, "the container's boot", func() bool {
		out, _ := c.exec("systemctl", "is-system-running", "--wait")
		state = strings.TrimSpace(out)
		return state == "running" || state == "degraded"
	})
	if state != "running" {
		out, _ := c.exec("systemctl", "--failed", "--no-pager", "--no-legend")
		t.Logf("container boot: %s; failed units:\n%s", state, out)
	}
	return c
}

// childNamed is the PID of the child of parent whose command is comm, 0 when there is none.
func childNamed(parent int, comm string) int {
	procs, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...
		s := string(b)
		open, closing := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
		if open < 0 || closing < open {
			continue
		}
		f := strings.Fields(s[closing+1:])
		if s[open+1:closing] != comm || len(f) < 2 || f[1] != strconv.Itoa(parent) {
			continue
		}
		pid, _ := strconv.Atoi(strings.TrimSpace(s[:open]))
		return pid
	}
	return 0
}

// exec runs a command in the container's namespaces (outside its cgroup, which does not
// matter to systemctl or journalctl).
func (c *container) exec(args ...string) (string, error) {
	out, err := exec.Command("nsenter", append([]string{"-t", strconv.Itoa(c.pid), "-a"}, args...)...).CombinedOutput()
	return string(out), err
}

func (c *container) must(t *testing.T, args ...string) string {
	t.Helper()
	out, err := c.exec(args...)
	if err != nil {
		t.Fatalf("in the container: %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// show is `systemctl show` of the daemon's unit.
func (c *container) show(t *testing.T, props ...string) map[string]string {
	t.Helper()
	out := c.must(t, "systemctl", "show", "redundantd.service", "-p", strings.Join(props, ","))
	m := map[string]string{}
	for _, l := range strings.Split(out, "\n") {
		if k, v, ok := strings.Cut(l, "="); ok {
			m[k] = v
		}
	}
	return m
}

func (c *container) writeFile(t *testing.T, path, text string) {
	t.Helper()
	if err := os.WriteFile(c.root+path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

// journalLine is one entry of `journalctl -o json`.
type journalLine struct {
	Message  string `json:"MESSAGE"`
	Priority string `json:"PRIORITY"`
	PID      string `json:"_PID"`
	Comm     string `json:"_COMM"`
}

// journal is the unit's journal: the daemon's lines and systemd's about the unit.
func (c *container) journal(t *testing.T) []journalLine {
	t.Helper()
	out := c.must(t, "journalctl", "-u", "redundantd.service", "-o", "json", "--no-pager", "--all")
	var lines []journalLine
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var l journalLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("journalctl -o json: %v: %s", err, sc.Text())
		}
		lines = append(lines, l)
	}
	return lines
}

// journalHas reports whether a line of the unit's journal since the entry numbered from
// contains s.
func journalHas(lines []journalLine, from int, s string) bool {
	for _, l := range lines[min(from, len(lines)):] {
		if strings.Contains(l.Message, s) {
			return true
		}
	}
	return false
}

// TestSystemdUnit runs the installed package under a real systemd: in a systemd-nspawn
// container booted from this machine's root file system, `dpkg -i` the package, give the
// daemon the shipped configuration on a veth pair (with a stand-in PBX unit as its service),
// and check what the unit promises: `systemctl start` returns once READY=1 is sent and the
// API answers; the sandbox leaves the daemon its job (Master, the virtual IP on the link, the
// PBX started with systemctl) and exactly the unit's capabilities; the watchdog pings keep it
// past WatchdogSec; `systemctl reload` applies a change and refuses a bad file; its journal
// lines carry priorities and no timestamps; SIGKILL and a watchdog timeout (SIGSTOP) are
// restarted; `systemctl stop` releases the address and stops the PBX, exit 0; virtual_mac
// makes its macvlan and sets its /proc/sys/net settings, and undoes both on stop.
func TestSystemdUnit(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("skipping: booting a systemd-nspawn container needs root")
	}
	for _, cmd := range []string{"systemd-nspawn", "unshare", "nsenter"} {
		if _, err := exec.LookPath(cmd); err != nil {
			t.Skipf("skipping: %s is not installed (apt-get install systemd-container util-linux)", cmd)
		}
	}
	if _, err := os.Stat("/lib/systemd/systemd"); err != nil {
		t.Skip("skipping: no /lib/systemd/systemd to boot (apt-get install systemd)")
	}
	deb := buildDeb(t)
	u := &unitRun{t: t, c: bootContainer(t, filepath.Dir(deb))}
	t.Cleanup(func() {
		// Before the container's shutdown (cleanups run last first).
		if t.Failed() {
			out, _ := u.c.exec("journalctl", "-u", "redundantd.service", "-o", "short-precise", "--no-pager")
			t.Logf("the unit's journal:\n%s", out)
		}
	})
	u.link()
	u.install(filepath.Base(deb))

	started := u.start()
	u.reload()
	// The watchdog pings keep it past WatchdogSec (10s).
	time.Sleep(time.Until(started.Add(12 * time.Second)))
	st := u.c.show(t, "ActiveState", "MainPID", "NRestarts", "WatchdogTimestampMonotonic")
	if st["ActiveState"] != "active" || st["MainPID"] != u.mainPID || st["NRestarts"] != "0" || st["WatchdogTimestampMonotonic"] == u.firstPing {
		t.Errorf("12s after start: %v (the first ping at %s)", st, u.firstPing)
	}
	u.checkJournal()
	u.restarts()
	u.stop()
	u.virtualMAC()
}

// unitRun is the state of TestSystemdUnit's steps.
type unitRun struct {
	t         *testing.T
	c         *container
	nl        *netlink.Handle // in the container's network namespace
	ns        netns.NsHandle
	eth0      netlink.Link
	good      string // the configuration the daemon runs with
	mainPID   string
	firstPing string // WatchdogTimestampMonotonic right after start
}

// vip is the shipped configuration's virtual IP.
var vip = netip.MustParseAddr("192.0.2.100")

// link makes the link of the shipped configuration (eth0, 192.0.2.11/24): a veth pair in the
// container's network namespace.
func (u *unitRun) link() {
	t := u.t
	ns, err := netns.GetFromPid(u.c.pid)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Close() })
	nl, err := netlink.NewHandleAt(ns)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nl.Close)
	u.ns, u.nl = ns, nl
	if err := nl.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "eth0"}, PeerName: "eth0p"}); err != nil {
		t.Fatalf("veth in the container: %v", err)
	}
	if u.eth0, err = nl.LinkByName("eth0"); err != nil {
		t.Fatal(err)
	}
	addr, _ := netlink.ParseAddr("192.0.2.11/24")
	if err := nl.AddrAdd(u.eth0, addr); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"eth0", "eth0p"} {
		l, err := nl.LinkByName(name)
		if err == nil {
			err = nl.LinkSetUp(l)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

// holds reports whether the virtual IP is on eth0.
func (u *unitRun) holds() bool { return u.holdsOn(u.eth0) }

// holdsOn reports whether the virtual IP is on l.
func (u *unitRun) holdsOn(l netlink.Link) bool {
	as, err := u.nl.AddrList(l, netlink.FAMILY_V4)
	if err != nil {
		u.t.Fatal(err)
	}
	for _, a := range as {
		if ip, ok := netip.AddrFromSlice(a.IP); ok && ip.Unmap() == vip {
			return true
		}
	}
	return false
}

// master reports whether the daemon's own status says Master (a killed daemon leaves the
// address and the PBX behind for the next one to clean up, so the link alone does not tell).
func (u *unitRun) master() bool {
	out, err := u.c.exec("redundantctl", "status", "-json")
	var st struct {
		State string `json:"state"`
	}
	return err == nil && json.Unmarshal([]byte(out), &st) == nil && st.State == "master"
}

func (u *unitRun) pbxActive() bool {
	_, err := u.c.exec("systemctl", "is-active", "--quiet", "rdtest-pbx.service")
	return err == nil
}

// install installs the package and gives it the shipped configuration with the stand-in
// PBX as its only service.
func (u *unitRun) install(deb string) {
	t := u.t
	u.c.must(t, "dpkg", "-i", "/mnt/redundantd-deb/"+deb)
	conf, err := os.ReadFile(u.c.root + "/etc/redundantd/redundantd.toml")
	if err != nil {
		t.Fatal(err)
	}
	shipped, _, ok := strings.Cut(string(conf), "\n[[service]]\n")
	if !ok {
		t.Fatal("the shipped configuration has no [[service]] to replace")
	}
	u.good = shipped + "\n" + pbxService
	u.c.writeFile(t, "/etc/redundantd/redundantd.toml", u.good)
	u.c.must(t, "systemctl", "daemon-reload")
}

// start: Type=notify's start returns after READY=1, which comes after the API listens; the
// sandbox leaves the daemon the unit's capabilities and its job.
func (u *unitRun) start() time.Time {
	t, c := u.t, u.c
	begin := time.Now()
	c.must(t, "systemctl", "start", "redundantd.service")
	started := time.Now()
	t.Logf("systemctl start returned after %v", started.Sub(begin).Round(time.Millisecond))
	st := c.show(t, "ActiveState", "SubState", "StatusText", "MainPID", "WatchdogUSec", "WatchdogTimestampMonotonic")
	if st["ActiveState"] != "active" || st["SubState"] != "running" || st["StatusText"] != "node pbx-a running" || st["WatchdogUSec"] != "10s" {
		t.Fatalf("after systemctl start: %v", st)
	}
	u.mainPID, u.firstPing = st["MainPID"], st["WatchdogTimestampMonotonic"]
	c.must(t, "redundantctl", "status")

	// Exactly the unit's six capabilities (CHOWN, DAC_OVERRIDE, DAC_READ_SEARCH, FOWNER,
	// NET_ADMIN, NET_RAW), no new privileges, a seccomp filter.
	status := c.must(t, "cat", "/proc/"+u.mainPID+"/status")
	for _, want := range []string{"CapEff:\t000000000000300f", "CapBnd:\t000000000000300f", "NoNewPrivs:\t1", "Seccomp:\t2"} {
		if !strings.Contains(status, want+"\n") {
			t.Errorf("/proc/%s/status has no %q:\n%s", u.mainPID, want, status)
		}
	}

	// Its job, in the sandbox: Master (no peer answers), the virtual IP on eth0 (netlink),
	// adverts (raw socket), the PBX started with systemctl.
	poll.Until(t, 30*time.Second, "Master with the virtual IP and the PBX running", func() bool { return u.master() && u.holds() && u.pbxActive() })
	t.Logf("Master with the PBX running %v after start", time.Since(started).Round(time.Millisecond))
	if n := countVRRP(t, u.ns, "eth0p", 3500*time.Millisecond); n < 2 {
		t.Errorf("%d VRRP adverts from the Master in 3.5s on the veth", n)
	}
	return started
}

// reload: -check, then SIGHUP; the new priority is applied by the same process; a bad file
// is refused by ExecReload, and by the daemon itself on a bare SIGHUP.
func (u *unitRun) reload() {
	t, c := u.t, u.c
	const conf = "/etc/redundantd/redundantd.toml"
	c.writeFile(t, conf, strings.Replace(u.good, "\npriority = 100\n", "\npriority = 120\n", 1))
	c.must(t, "systemctl", "reload", "redundantd.service")
	poll.Until(t, 10*time.Second, "the reload in the journal", func() bool {
		return journalHas(c.journal(t), 0, "configuration reloaded; applied: redundancy.priority")
	})
	c.writeFile(t, conf, u.good+"broken = [\n")
	if out, err := c.exec("systemctl", "reload", "redundantd.service"); err == nil {
		t.Errorf("systemctl reload with a bad file succeeded:\n%s", out)
	}
	c.must(t, "kill", "-HUP", u.mainPID)
	poll.Until(t, 10*time.Second, "the refused reload in the journal", func() bool {
		return journalHas(c.journal(t), 0, "reload refused; the running configuration stays")
	})
	c.writeFile(t, conf, u.good)
	if st := c.show(t, "ActiveState", "MainPID"); st["ActiveState"] != "active" || st["MainPID"] != u.mainPID {
		t.Errorf("after the reloads: %v, want active with MainPID %s", st, u.mainPID)
	}
}

// sandboxErrors are how a sandbox option that takes something the daemon needs shows in an
// error: SystemCallErrorNumber=EPERM, a capability or a path denied, ProtectSystem's
// read-only mounts, RestrictAddressFamilies=.
var sandboxErrors = []string{"operation not permitted", "permission denied", "read-only file system", "address family not supported"}

// checkJournal: the daemon's lines without a time, with the priority journald read from the
// "<N>" prefix (which it strips), and no sign of the sandbox in the way. Other warnings (a
// late timer on a loaded machine) are logged, not failed.
func (u *unitRun) checkJournal() {
	t := u.t
	var daemon int
	for _, l := range u.c.journal(t) {
		if l.PID != u.mainPID {
			continue // systemd's lines, and ExecReload's redundantd -check
		}
		daemon++
		want := map[string]string{"level=INFO": "6", "level=WARN": "4", "level=ERROR": "3"}[strings.Fields(l.Message + " x")[0]]
		switch {
		case strings.Contains(l.Message, "time=") || strings.HasPrefix(l.Message, "<"):
			t.Errorf("journal line with a time or an unstripped prefix: %q", l.Message)
		case want == "":
			t.Errorf("journal line not from the daemon's logger: %q", l.Message)
		case l.Priority != want:
			t.Errorf("journal priority %s, want %s: %q", l.Priority, want, l.Message)
		case want != "6" && !strings.Contains(l.Message, "reload refused"):
			t.Logf("in the journal: %q", l.Message)
		}
		for _, e := range sandboxErrors {
			if strings.Contains(strings.ToLower(l.Message), e) {
				t.Errorf("the sandbox in the daemon's way: %q", l.Message)
			}
		}
	}
	if daemon < 5 {
		t.Errorf("%d lines of the daemon in the journal", daemon)
	}
}

// restarted returns the condition: the unit is active again with a new main process after n
// restarts in all (u.mainPID becomes the new one).
func (u *unitRun) restarted(n string) func() bool {
	return func() bool {
		s := u.c.show(u.t, "ActiveState", "MainPID", "NRestarts")
		if s["ActiveState"] == "active" && s["NRestarts"] == n && s["MainPID"] != u.mainPID && s["MainPID"] != "0" {
			u.mainPID = s["MainPID"]
			return true
		}
		return false
	}
}

// restarts: Restart=always after SIGKILL, and after a watchdog timeout (SIGSTOP), each time
// up as Master again.
func (u *unitRun) restarts() {
	t, c := u.t, u.c
	// SIGKILL: restarted after RestartSec=2s, having removed the address the killed one left.
	from := len(c.journal(t))
	c.must(t, "kill", "-KILL", u.mainPID)
	t.Logf("restarted %v after SIGKILL", poll.Until(t, 30*time.Second, "the restart after SIGKILL", u.restarted("1")).Round(time.Millisecond))
	poll.Until(t, 30*time.Second, "Master again after SIGKILL", func() bool { return u.master() && u.holds() })
	if !journalHas(c.journal(t), from, "removed virtual address left by a previous run") {
		t.Error("the restarted daemon did not remove the address the killed one left")
	}

	// A daemon that stops pinging: systemd aborts it (SIGABRT) after WatchdogSec and restarts
	// it; the abort must not look like the exit status 2 that RestartPreventExitStatus keeps
	// down (Go exits 2 on SIGABRT unless GOTRACEBACK=crash).
	from = len(c.journal(t))
	c.must(t, "kill", "-STOP", u.mainPID)
	t.Logf("restarted %v after SIGSTOP", poll.Until(t, 60*time.Second, "the restart after the watchdog timeout", u.restarted("2")).Round(time.Millisecond))
	lines := c.journal(t)
	for _, want := range []string{"Watchdog timeout", "Main process exited, code=killed, status=6/ABRT"} {
		if !journalHas(lines, from, want) {
			t.Errorf("no %q in the journal after SIGSTOP", want)
		}
	}
	poll.Until(t, 30*time.Second, "Master again after the watchdog restart", func() bool { return u.master() && u.holds() && u.pbxActive() })
}

// stop: systemctl stop sends SIGTERM; the address is released and the PBX stopped, exit 0.
func (u *unitRun) stop() {
	t, c := u.t, u.c
	from := len(c.journal(t))
	begin := time.Now()
	c.must(t, "systemctl", "stop", "redundantd.service")
	t.Logf("systemctl stop returned after %v", time.Since(begin).Round(time.Millisecond))
	// Result=success: any exit status but 0 (or death by any signal but SIGTERM) would be
	// exit-code or signal.
	st := c.show(t, "ActiveState", "Result", "ExecMainStatus")
	if st["ActiveState"] != "inactive" || st["Result"] != "success" || st["ExecMainStatus"] != "0" {
		t.Errorf("after systemctl stop: %v", st)
	}
	if u.holds() {
		t.Error("the virtual IP is still on eth0 after systemctl stop")
	}
	if u.pbxActive() {
		t.Error("the PBX still runs after systemctl stop")
	}
	lines := c.journal(t)
	if !journalHas(lines, from, "service pbx stopped") || journalHas(lines, from, "failed to stop") {
		t.Errorf("the stop did not stop the PBX cleanly:\n%s", messages(lines[from:]))
	}
}

func messages(lines []journalLine) string {
	var b strings.Builder
	for _, l := range lines {
		fmt.Fprintf(&b, "%s[%s] %s\n", l.Comm, l.PID, l.Message)
	}
	return b.String()
}

// countVRRP counts the VRRP packets (IP protocol 112) arriving on ifname in ns for d.
func countVRRP(t *testing.T, ns netns.NsHandle, ifname string, d time.Duration) int {
	t.Helper()
	var n int
	err := labns.Do(ns, func() error {
		fd, err := syscall.Socket(syscall.AF_PACKET, syscall.SOCK_DGRAM, int(htons(syscall.ETH_P_IP)))
		if err != nil {
			return err
		}
		defer syscall.Close(fd)
		ifi, err := net.InterfaceByName(ifname)
		if err != nil {
			return err
		}
		if err := syscall.Bind(fd, &syscall.SockaddrLinklayer{Protocol: htons(syscall.ETH_P_IP), Ifindex: ifi.Index}); err != nil {
			return err
		}
		tv := syscall.NsecToTimeval((100 * time.Millisecond).Nanoseconds())
		if err := syscall.SetsockoptTimeval(fd, syscall.SOL_SOCKET, syscall.SO_RCVTIMEO, &tv); err != nil {
			return err
		}
		buf := make([]byte, 2048)
		for end := time.Now().Add(d); time.Now().Before(end); {
			m, _, err := syscall.Recvfrom(fd, buf, 0)
			if err == nil && m >= 20 && buf[9] == 112 {
				n++
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("capturing on %s: %v", ifname, err)
	}
	return n
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// virtualMAC: with virtual_mac the daemon makes the macvlan vrrp.18 and sets arp_ignore and
// arp_announce of eth0 under /proc/sys/net (why the unit has no ProtectKernelTunables=),
// and undoes both on stop.
func (u *unitRun) virtualMAC() {
	t, c := u.t, u.c
	conf := strings.Replace(u.good, "\nvirtual_mac = false\n", "\nvirtual_mac = true\n", 1)
	if conf == u.good {
		t.Fatal("the shipped configuration has no virtual_mac = false to turn on")
	}
	c.writeFile(t, "/etc/redundantd/redundantd.toml", conf)
	sysctls := func() string {
		return strings.Join(strings.Fields(c.must(t, "cat", "/proc/sys/net/ipv4/conf/eth0/arp_ignore", "/proc/sys/net/ipv4/conf/eth0/arp_announce")), " ")
	}
	c.must(t, "systemctl", "start", "redundantd.service")
	poll.Until(t, 30*time.Second, "Master with the virtual IP on the virtual-MAC link", func() bool {
		l, err := u.nl.LinkByName("vrrp.18")
		return err == nil && u.master() && u.holdsOn(l)
	})
	if got := sysctls(); got != "1 2" {
		t.Errorf("eth0's arp_ignore, arp_announce with virtual_mac: %s, want 1 2", got)
	}
	c.must(t, "systemctl", "stop", "redundantd.service")
	if _, err := u.nl.LinkByName("vrrp.18"); err == nil {
		t.Error("the virtual-MAC link is left after systemctl stop")
	}
	if got := sysctls(); got != "0 0" {
		t.Errorf("eth0's arp_ignore, arp_announce after stop: %s, want 0 0 (as before)", got)
	}
	if st := c.show(t, "Result"); st["Result"] != "success" {
		t.Errorf("stop with virtual_mac: %v", st)
	}
}

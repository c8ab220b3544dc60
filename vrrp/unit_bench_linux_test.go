package vrrp

import (
	"bytes"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redundantd/redundantd/testlab/poll"
	"github.com/redundantd/redundantd/testlab/syncbuf"
)

var (
	benchGroupCount  = flag.Int("groups", 64, "BenchmarkUnitGroups: VRRP groups on one interface (1..255)")
	benchGroupWindow = flag.Duration("groups.window", 60*time.Second, "BenchmarkUnitGroups: how long the elected groups are measured")
)

// BenchmarkUnitGroups measures what a Unit of -groups groups on one interface at 1 s adverts
// costs (issue 8 section 2: 64 groups under 3 % of one core, no spurious transition; 255
// groups must work), against keepalived with as many vrrp_instances in the same run, on a
// veth pair between two namespaces. Each sub-benchmark runs once (b.N is 1: one run lasts
// the window), after every group is elected:
//
//   - master: our Unit is Master of every group, keepalived Backup of every group;
//   - backup: keepalived Master, our Unit Backup.
//
// It reports the CPU time of this process (the Unit, its 2 goroutines per group and the test
// harness) and of keepalived's processes over the window, as % of one core; the resident
// set of both at the end; and the transitions seen during the window on both sides, which
// must be 0. Run it as root:
//
//	go test -run '^$' -bench BenchmarkUnitGroups -benchtime 1x ./vrrp -groups 64 -groups.window 60s
func BenchmarkUnitGroups(b *testing.B) {
	needRoot(b)
	if _, err := exec.LookPath("keepalived"); err != nil {
		b.Skip("keepalived is not installed")
	}
	n := *benchGroupCount
	if n < 1 || n > 255 {
		b.Fatalf("-groups %d: want 1..255", n)
	}
	for _, role := range []string{"master", "backup"} {
		b.Run(fmt.Sprintf("groups=%d/ours=%s", n, role), func(b *testing.B) {
			for range b.N {
				benchGroups(b, n, role == "master", *benchGroupWindow)
			}
		})
	}
}

// benchVIP is group vrid's virtual address.
func benchVIP(vrid int) netip.Prefix {
	return netip.PrefixFrom(netip.AddrFrom4([4]byte{198, 18, 0, byte(vrid)}), 16)
}

func benchGroups(b *testing.B, n int, oursMaster bool, window time.Duration) {
	a, k := newTestNS(b), newTestNS(b)
	connect(b, a, "bg0", labA, k, "bg1", labB)
	ours, theirs := uint8(100), 200
	if oursMaster {
		ours, theirs = 200, 100
	}
	var ka strings.Builder
	fmt.Fprintf(&ka, "global_defs {\n\trouter_id %s\n\tvrrp_garp_master_repeat 1\n\tvrrp_garp_master_refresh 0\n}\n", k.name)
	cfgs := make([]Config, n)
	for i := range n {
		vrid := i + 1
		cfgs[i] = Config{Interface: "bg0", VRID: uint8(vrid), Priority: ours, Preempt: true, Primary: labA.Addr(),
			VirtualIPs: []netip.Prefix{benchVIP(vrid)}, GARPCount: 1}
		fmt.Fprintf(&ka, "vrrp_instance VI_%d {\n\tstate BACKUP\n\tinterface bg1\n\tvirtual_router_id %d\n\tpriority %d\n"+
			"\tadvert_int 1\n\tvirtual_ipaddress {\n\t\t%s dev bg1\n\t}\n}\n", vrid, vrid, theirs, benchVIP(vrid))
	}
	kp := startKeepalivedConf(b, k, ka.String())
	nd := dialUnit(b, a, "a", cfgs, nil)

	start := time.Now()
	poll.Until(b, 60*time.Second, "every group elected", func() bool {
		s := nd.u.Status()
		if oursMaster {
			return s.State == StateMaster && len(s.VirtualIPs) == n && len(k.addrs(b, "bg1")) == 1
		}
		for _, m := range nd.u.Members() {
			if m.State != StateBackup || m.MasterIP != labB.Addr() {
				return false
			}
		}
		return len(k.addrs(b, "bg1")) == n+1
	})
	b.Logf("%d groups elected %v after start (ours %s)", n, time.Since(start).Round(time.Millisecond), map[bool]string{true: "master", false: "backup"}[oursMaster])
	time.Sleep(2 * time.Second) // the last gratuitous ARPs and keepalived's settling
	e0, k0 := nd.memberCount(), kp.transitions()
	r0, kc0 := rusageSelf(b), kp.cpu(b)
	b.ResetTimer()
	time.Sleep(window)
	b.StopTimer()
	r1, kc1 := rusageSelf(b), kp.cpu(b)
	spurious, kSpurious := nd.memberCount()-e0, kp.transitions()-k0

	oursCPU := 100 * (r1 - r0).Seconds() / window.Seconds()
	theirCPU := 100 * (kc1 - kc0).Seconds() / window.Seconds()
	rss, krss := procRSS(b, os.Getpid()), kp.rss(b)
	b.ReportMetric(oursCPU, "cpu%_ours")
	b.ReportMetric(theirCPU, "cpu%_keepalived")
	b.ReportMetric(float64(rss)/1024, "rss_MiB_ours")
	b.ReportMetric(float64(krss)/1024, "rss_MiB_keepalived")
	b.ReportMetric(float64(spurious), "transitions_ours")
	b.ReportMetric(float64(kSpurious), "transitions_keepalived")
	b.Logf("%d groups over %v: ours %.2f%% of a core, RSS %.1f MiB, %d transitions; keepalived %.2f%%, RSS %.1f MiB, %d transitions",
		n, window, oursCPU, float64(rss)/1024, spurious, theirCPU, float64(krss)/1024, kSpurious)
	if spurious != 0 || kSpurious != 0 {
		b.Errorf("transitions during the window: ours %d %v, keepalived %d", spurious, nd.memberLog()[e0:], kSpurious)
	}
	if s := nd.u.Status(); len(s.Dropped) > 0 {
		b.Errorf("adverts dropped: %v", s.Dropped)
	}
}

func (nd *unitNode) memberCount() int {
	nd.mu.Lock()
	defer nd.mu.Unlock()
	return len(nd.member)
}

// rusageSelf is this process's CPU time, user and system.
func rusageSelf(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// procRSS is a process's resident set in KiB (VmRSS), 0 when it is gone.
func procRSS(b *testing.B, pid int) int {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for l := range strings.SplitSeq(string(data), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			kb, err := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			if err != nil {
				b.Fatalf("VmRSS of %d: %q", pid, l)
			}
			return kb
		}
	}
	return 0
}

// procCPU is a process's CPU time, user and system (/proc/<pid>/stat, in clock ticks of
// 10 ms: USER_HZ is 100 on Linux).
func procCPU(b *testing.B, pid int) time.Duration {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatalf("keepalived process %d: %v", pid, err)
	}
	// The command name (field 2) may hold spaces; the fields after its ')' are fixed.
	f := strings.Fields(string(data[bytes.LastIndexByte(data, ')')+1:]))
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		b.Fatalf("/proc/%d/stat: %q", pid, data)
	}
	return time.Duration(ut+st) * 10 * time.Millisecond
}

// keepalivedN is keepalived run with a configuration of the caller's.
type keepalivedN struct {
	*keepalived
	dir string
}

// startKeepalivedConf runs keepalived (its VRRP process only) in n with conf.
func startKeepalivedConf(b *testing.B, n *testNS, conf string) *keepalivedN {
	dir := b.TempDir()
	cf := filepath.Join(dir, "keepalived.conf")
	if err := os.WriteFile(cf, []byte(conf), 0o600); err != nil {
		b.Fatal(err)
	}
	k := &keepalived{out: &syncbuf.Buffer{}, done: make(chan struct{})}
	k.cmd = exec.Command("keepalived", "--dont-fork", "--log-console", "--no-syslog", "--vrrp",
		"--namespace", n.name, "--use-file", cf,
		"--pid", filepath.Join(dir, "keepalived.pid"), "--vrrp_pid", filepath.Join(dir, "vrrp.pid"))
	k.cmd.Stdout, k.cmd.Stderr = k.out, k.out
	k.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // never signals anything of ours
	if err := k.cmd.Start(); err != nil {
		b.Fatalf("starting keepalived: %v", err)
	}
	go func() { k.cmd.Wait(); close(k.done) }()
	b.Cleanup(func() {
		k.stop(b)
		if b.Failed() {
			b.Logf("keepalived output:\n%s", k.out.String())
		}
	})
	return &keepalivedN{keepalived: k, dir: dir}
}

// pids are keepalived's parent and its VRRP child.
func (k *keepalivedN) pids(b *testing.B) []int {
	out := []int{k.cmd.Process.Pid}
	if data, err := os.ReadFile(filepath.Join(k.dir, "vrrp.pid")); err == nil {
		if pid, err := strconv.Atoi(strings.TrimSpace(string(data))); err == nil {
			out = append(out, pid)
		}
	}
	return out
}

func (k *keepalivedN) cpu(b *testing.B) time.Duration {
	var d time.Duration
	for _, pid := range k.pids(b) {
		d += procCPU(b, pid)
	}
	return d
}

func (k *keepalivedN) rss(b *testing.B) int {
	kb := 0
	for _, pid := range k.pids(b) {
		kb += procRSS(b, pid)
	}
	return kb
}

// transitions counts keepalived's state changes logged so far.
func (k *keepalivedN) transitions() int {
	return strings.Count(k.out.String(), "Entering ")
}

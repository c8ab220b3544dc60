package vrrp

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redundantd/redundantd/testlab/poll"
	"github.com/redundantd/redundantd/testlab/syncbuf"
)

// keepalived runs keepalived 2.x (multicast, physical MAC) in namespace n with one
// vrrp_instance, until the test ends or stop (or kill) is called. Its console log goes to t.Log
// when the test fails.
type keepalived struct {
	cmd  *exec.Cmd
	out  *syncbuf.Buffer
	once sync.Once
	done chan struct{}
}

// startKeepalived runs keepalived with VRRPv2 at 1 s adverts.
func startKeepalived(t *testing.T, n *testNS, ifname string, prio uint8) *keepalived {
	t.Helper()
	return startKeepalivedVersion(t, n, ifname, prio, 2, time.Second)
}

// startKeepalivedVersion runs keepalived with vrrp_version version (2 or 3) and advert_int
// interval (keepalived takes fractions of a second for version 3).
func startKeepalivedVersion(t *testing.T, n *testNS, ifname string, prio uint8, version uint8, interval time.Duration) *keepalived {
	t.Helper()
	bin, err := exec.LookPath("keepalived")
	if err != nil {
		t.Skip("keepalived is not installed")
	}
	dir := t.TempDir()
	conf := fmt.Sprintf(`global_defs {
	router_id %s
	vrrp_version %d
	vrrp_garp_master_repeat 1
	vrrp_garp_master_refresh 0
}
vrrp_instance VI_51 {
	state BACKUP
	interface %s
	virtual_router_id 51
	priority %d
	advert_int %g
	virtual_ipaddress {
		%s dev %s
	}
}
`, n.name, version, ifname, prio, interval.Seconds(), labVIP, ifname)
	cf := filepath.Join(dir, "keepalived.conf")
	if err := os.WriteFile(cf, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	k := &keepalived{out: &syncbuf.Buffer{}, done: make(chan struct{})}
	k.cmd = exec.Command(bin, "--dont-fork", "--log-console", "--log-detail", "--no-syslog", "--vrrp",
		"--namespace", n.name, "--use-file", cf,
		"--pid", filepath.Join(dir, "keepalived.pid"), "--vrrp_pid", filepath.Join(dir, "vrrp.pid"))
	k.cmd.Stdout, k.cmd.Stderr = k.out, k.out
	// Its own process group, so that stopping it never signals anything of ours.
	k.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := k.cmd.Start(); err != nil {
		t.Fatalf("starting keepalived: %v", err)
	}
	go func() { k.cmd.Wait(); close(k.done) }()
	t.Cleanup(func() {
		k.stop(t)
		if t.Failed() {
			t.Logf("keepalived output:\n%s", k.out.String())
		}
	})
	return k
}

// stop sends SIGTERM (keepalived then resigns with a priority-0 advert) and waits.
func (k *keepalived) stop(t testing.TB) {
	k.once.Do(func() {
		k.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-k.done:
		case <-time.After(10 * time.Second):
			k.cmd.Process.Kill()
			<-k.done
			t.Error("keepalived did not stop within 10 s of SIGTERM")
		}
	})
}

// kill SIGKILLs keepalived's process group (its parent and VRRP child, started in a group of
// their own): a crash, no priority-0 advert.
func (k *keepalived) kill() {
	k.once.Do(func() {
		syscall.Kill(-k.cmd.Process.Pid, syscall.SIGKILL)
		<-k.done
	})
}

// Interoperability with keepalived, the reference implementation: each accepts the other's
// adverts (no drops), follows the other as Master, and takes over when the other resigns.
func TestRouterKeepalivedInterop(t *testing.T) {
	a, b := newTestNS(t), newTestNS(t)
	connect(t, a, "vrt0", labA, b, "vrt1", labB)
	k := startKeepalived(t, b, "vrt1", 150)

	cfg := labConfig("vrt0", labA, 100, t.TempDir())
	cfg.Logger = testLogger(t, "a")
	na := dialNode(t, a, cfg)

	poll.Until(t, 10*time.Second, "keepalived holds the VIP", func() bool { return b.hasAddr(t, "vrt1", labVIP) })
	poll.Until(t, 3*time.Second, "the Router follows keepalived", func() bool { return na.r.Status().MasterIP == labB.Addr() })
	time.Sleep(2 * time.Second)
	s := na.r.Status()
	if s.State != StateBackup || len(s.Dropped) != 0 || a.hasAddr(t, "vrt0", labVIP) {
		t.Errorf("Router beside a keepalived Master: %+v, VIP held %v; want a Backup that dropped nothing", s, a.hasAddr(t, "vrt0", labVIP))
	}

	signalled := time.Now()
	k.stop(t) // keepalived resigns, then takes a while to exit
	poll.Until(t, 5*time.Second, "the Router takes the VIP", func() bool { return a.hasAddr(t, "vrt0", labVIP) })
	t.Logf("VIP on the Router at most %v after keepalived's SIGTERM (Skew_Time(100) = %v)",
		time.Since(signalled).Round(time.Millisecond), SkewTime(100))
	poll.Until(t, time.Second, "takeover event", func() bool { return na.lastEvent().To == StateMaster })
	if e := na.lastEvent(); !strings.Contains(e.Reason, "resigned") {
		t.Errorf("takeover %+v: want it caused by keepalived's priority-0 advert", e)
	}

	// Now the Router is Master with 100 and a keepalived with 50 must stay Backup: it
	// accepts our adverts.
	k2 := startKeepalived(t, b, "vrt1", 50)
	time.Sleep(5 * time.Second) // longer than keepalived's Master_Down_Interval (3.8 s)
	if b.hasAddr(t, "vrt1", labVIP) {
		t.Errorf("keepalived took the VIP beside the Router as Master; its log:\n%s", k2.out.String())
	}
	if s := na.r.Status(); s.State != StateMaster || len(s.Dropped) != 0 {
		t.Errorf("Router: %+v; want master, nothing dropped", s)
	}
}

// VRRPv3 (RFC 9568) over IPv4 with keepalived's vrrp_version 3 at 100 ms adverts, both ways:
// each accepts the other's adverts (the checksum over the pseudo-header verifies: nothing is
// dropped), the Router takes over when a keepalived Master crashes (Master_Down_Interval,
// 360.9375 ms at priority 100) and a keepalived Backup takes over when the Router resigns.
func TestRouterKeepalivedInteropV3(t *testing.T) {
	const iv = 100 * time.Millisecond
	a, b := newTestNS(t), newTestNS(t)
	connect(t, a, "vrt0", labA, b, "vrt1", labB)
	k := startKeepalivedVersion(t, b, "vrt1", 150, 3, iv)

	cfg := labConfig("vrt0", labA, 100, t.TempDir())
	cfg.Version, cfg.AdvertInterval = 3, iv
	cfg.Logger = testLogger(t, "a")
	na := dialNode(t, a, cfg)

	poll.Until(t, 10*time.Second, "keepalived holds the VIP", func() bool { return b.hasAddr(t, "vrt1", labVIP) })
	poll.Until(t, 3*time.Second, "the Router follows keepalived", func() bool { return na.r.Status().MasterIP == labB.Addr() })
	time.Sleep(time.Second) // ten adverts
	s := na.r.Status()
	if s.State != StateBackup || len(s.Dropped) != 0 || s.MasterAdverInterval != iv || a.hasAddr(t, "vrt0", labVIP) {
		t.Errorf("Router beside a keepalived v3 Master: %+v, VIP held %v; want a Backup at 100 ms that dropped nothing", s, a.hasAddr(t, "vrt0", labVIP))
	}

	killed := time.Now()
	k.kill()
	poll.Until(t, 5*time.Second, "the Router takes the VIP", func() bool { return a.hasAddr(t, "vrt0", labVIP) })
	t.Logf("VIP on the Router at most %v after keepalived's SIGKILL (Master_Down_Interval = %v after its last advert)",
		time.Since(killed).Round(time.Millisecond), MasterDownIntervalV3(iv, 100))
	poll.Until(t, time.Second, "takeover event", func() bool { return na.lastEvent().To == StateMaster })
	if e := na.lastEvent(); e.Cause != CauseMasterDown {
		t.Errorf("takeover %+v: want it caused by Master_Down_Timer", e)
	}

	// The Router is Master with 100; a keepalived v3 with 50 stays Backup: it accepts our
	// adverts, then takes over when the Router resigns.
	k2 := startKeepalivedVersion(t, b, "vrt1", 50, 3, iv)
	time.Sleep(2 * time.Second) // keepalived's Master_Down_Interval is 0.38 s
	if b.hasAddr(t, "vrt1", labVIP) {
		t.Fatalf("keepalived took the VIP beside the Router as Master; its log:\n%s", k2.out.String())
	}
	if s := na.r.Status(); s.State != StateMaster || len(s.Dropped) != 0 {
		t.Errorf("Router: %+v; want master, nothing dropped", s)
	}
	stopped := time.Now()
	na.stop(t) // priority-0 advert
	poll.Until(t, 5*time.Second, "keepalived takes the VIP", func() bool { return b.hasAddr(t, "vrt1", labVIP) })
	t.Logf("VIP on keepalived at most %v after the Router resigned (Skew_Time(50) at 100 ms = %v)",
		time.Since(stopped).Round(time.Millisecond), SkewTimeV3(50, iv))
	if a.hasAddr(t, "vrt0", labVIP) {
		t.Error("the Router kept the VIP after it stopped")
	}
}

package appliance

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// mibDirs is the MIB search path of the tests: the product MIB, the IETF modules it and
// VRRPV3-MIB import (docs/mib/ietf), and the system's directory, where keepalived installs
// VRRPV3-MIB (RFC 6527).
func mibDirs(t *testing.T) string {
	t.Helper()
	dirs := []string{"../docs/mib", "../docs/mib/ietf", "/usr/share/snmp/mibs"}
	for i, d := range dirs[:2] {
		abs, err := filepath.Abs(d)
		if err != nil {
			t.Fatal(err)
		}
		dirs[i] = abs
	}
	return strings.Join(dirs, ":")
}

const systemVRRPv3MIB = "/usr/share/snmp/mibs/VRRPv3-MIB.txt"

func needVRRPv3MIB(t *testing.T) {
	t.Helper()
	if _, err := os.Stat(systemVRRPv3MIB); err != nil {
		t.Skipf("VRRPV3-MIB not installed (%v): it comes with Debian's keepalived package, which .ci/run installs", err)
	}
}

// TestMIBTranslate loads REDUNDANTD-MIB and VRRPV3-MIB with net-snmp's snmptranslate and
// checks that every OID the sender uses is the one the MIBs define, by name.
func TestMIBTranslate(t *testing.T) {
	bin, err := exec.LookPath("snmptranslate")
	if err != nil {
		t.Skip("snmptranslate not installed (Debian package snmp, installed by .ci/run)")
	}
	needVRRPv3MIB(t)
	oids := []struct{ name, oid string }{
		{"REDUNDANTD-MIB::redundantdEvent", oidRedundantdEvent},
		{"REDUNDANTD-MIB::redundantdEventSeq.0", oidRedundantdEventSeq},
		{"REDUNDANTD-MIB::redundantdEventPriority.0", oidRedundantdEventPriority},
		{"REDUNDANTD-MIB::redundantdEventApplication.0", oidRedundantdEventApp},
		{"REDUNDANTD-MIB::redundantdEventName.0", oidRedundantdEventName},
		{"REDUNDANTD-MIB::redundantdEventDescription.0", oidRedundantdEventDescr},
		{"REDUNDANTD-MIB::redundantdEventTime.0", oidRedundantdEventTime},
		{"REDUNDANTD-MIB::redundantdNodeName.0", oidRedundantdNodeName},
		{"VRRPV3-MIB::vrrpv3NewMaster", oidVRRPv3NewMaster},
		{"VRRPV3-MIB::vrrpv3ProtoError", oidVRRPv3ProtoError},
		{"VRRPV3-MIB::vrrpv3OperationsMasterIpAddr", oidVRRPv3MasterIPAddr},
		{"VRRPV3-MIB::vrrpv3StatisticsNewMasterReason", oidVRRPv3NewMasterReason},
		{"VRRPV3-MIB::vrrpv3StatisticsProtoErrReason", oidVRRPv3ProtoErrReason},
		{"SNMPv2-MIB::sysUpTime.0", oidSysUpTime},
		{"SNMPv2-MIB::snmpTrapOID.0", oidSnmpTrapOID},
	}
	args := []string{"-M", mibDirs(t), "-m", "REDUNDANTD-MIB:VRRPV3-MIB:SNMPv2-MIB", "-Pw", "-On"}
	for _, o := range oids {
		args = append(args, o.name)
	}
	cmd := exec.Command(bin, args...)
	// net-snmp creates its persistent directory's cert_indexes on first use and says so on
	// stderr ("Created directory: /var/lib/snmp/cert_indexes", on a fresh machine only):
	// give it one of the test's own where that directory is already there.
	persist := t.TempDir()
	if err := os.Mkdir(filepath.Join(persist, "cert_indexes"), 0o700); err != nil {
		t.Fatal(err)
	}
	cmd.Env = append(os.Environ(), "MIBS=", "MIBDIRS=", "SNMP_PERSISTENT_DIR="+persist)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("snmptranslate: %v\n%s", err, stderr.String())
	}
	// -Pw reports every questionable construct; net-snmp's note that it skips the SMI's
	// own macro definitions is not one.
	for _, l := range strings.Split(strings.TrimSpace(stderr.String()), "\n") {
		if l != "" && !strings.Contains(l, "MACRO (lines") {
			t.Errorf("snmptranslate warned about the MIBs: %s", l)
		}
	}
	got := strings.Fields(string(out))
	if len(got) != len(oids) {
		t.Fatalf("snmptranslate gave %d OIDs for %d names:\n%s", len(got), len(oids), out)
	}
	for i, o := range oids {
		if got[i] != "."+o.oid {
			t.Errorf("%s is %s in the MIB, the sender uses .%s", o.name, got[i], o.oid)
		}
	}
}

// snmptrapd runs net-snmp's trap receiver on a loopback socket the test opened (handed over
// with systemd socket activation, which net-snmp supports), with the test's configuration
// and MIBs, and returns the lines it logs.
func snmptrapd(t *testing.T, conf string) (addr string, lines <-chan string) {
	t.Helper()
	bin, err := exec.LookPath("snmptrapd")
	if err != nil {
		t.Skip("snmptrapd not installed (Debian package snmptrapd, installed by .ci/run)")
	}
	needVRRPv3MIB(t)
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f, err := pc.(*net.UDPConn).File()
	pc.Close()
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	addr = pc.LocalAddr().String()
	dir := t.TempDir()
	confPath := filepath.Join(dir, "snmptrapd.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	// LISTEN_PID must be snmptrapd's own pid: the shell sets it to $$ and execs.
	args := []string{"-c", `LISTEN_PID=$$ LISTEN_FDS=1 exec "$0" "$@"`, bin,
		"-f", "-Lo", "-n", "-C", "-c", confPath, "-M", mibDirs(t), "-m", "REDUNDANTD-MIB:VRRPV3-MIB:SNMPv2-MIB",
		"udp:" + addr}
	cmd := exec.Command("/bin/sh", args...)
	cmd.ExtraFiles = []*os.File{f} // fd 3
	cmd.Env = append(os.Environ(), "SNMP_PERSISTENT_DIR="+dir, "SNMPCONFPATH="+dir, "MIBS=", "MIBDIRS=")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	ch := make(chan string, 64)
	go func() {
		defer close(ch)
		s := bufio.NewScanner(out)
		s.Buffer(make([]byte, 64<<10), 1<<20)
		for s.Scan() {
			ch <- s.Text()
		}
	}()
	return addr, ch
}

// waitLine returns the first line logged that contains want, failing with the log so far.
func waitLine(t *testing.T, lines <-chan string, want string) string {
	t.Helper()
	_, l := linesUntil(t, lines, want)
	return l
}

// linesUntil returns the lines logged before the first one containing want, and that line.
func linesUntil(t *testing.T, lines <-chan string, want string) ([]string, string) {
	t.Helper()
	var seen []string
	guard := time.After(hangGuard)
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("snmptrapd exited before logging %q:\n%s", want, strings.Join(seen, "\n"))
			}
			if strings.Contains(l, want) {
				return seen, l
			}
			seen = append(seen, l)
		case <-guard:
			t.Fatalf("snmptrapd never logged %q:\n%s", want, strings.Join(seen, "\n"))
		}
	}
}

func vrrpEvent() (Event, VRRPDetail) {
	e := Event{Seq: 12, Time: testEventTime, Priority: PriorityNotice, Application: AppRedundancy,
		Name: "became master", Description: "master_down timer: peer 192.0.2.2 silent for 3.6s"}
	return e, VRRPDetail{IfIndex: 2, VRID: 51, MasterAddr: netip.MustParseAddr("192.0.2.1"), Reason: NewMasterMasterNoResponse}
}

// checkTraps sends a VRRP transition and a VRRP protocol error and checks that snmptrapd
// decoded both notifications by name, with their objects.
func checkTraps(t *testing.T, n *Notifier, lines <-chan string) {
	t.Helper()
	e, v := vrrpEvent()
	n.NotifyVRRP(e, v)
	l := waitLine(t, lines, "VRRPV3-MIB::vrrpv3NewMaster")
	// InetAddress has no display hint of its own: the address shows as its octets.
	for _, w := range []string{"VRRPV3-MIB::vrrpv3OperationsMasterIpAddr.2.51.ipv4 = Hex-STRING: C0 00 02 01 ",
		"VRRPV3-MIB::vrrpv3StatisticsNewMasterReason.2.51.ipv4 = INTEGER: masterNoResponse(3)"} {
		if !strings.Contains(l, w) {
			t.Errorf("vrrpv3NewMaster lacks %q:\n%s", w, l)
		}
	}
	t.Logf("snmptrapd: %s", l)
	l = waitLine(t, lines, "REDUNDANTD-MIB::redundantdEvent")
	t.Logf("snmptrapd: %s", l)
	host, _ := os.Hostname()
	for _, w := range []string{
		"REDUNDANTD-MIB::redundantdEventSeq.0 = Gauge32: 12",
		"REDUNDANTD-MIB::redundantdEventPriority.0 = INTEGER: notice(2)",
		`REDUNDANTD-MIB::redundantdEventApplication.0 = STRING: REDUNDANCY`,
		`REDUNDANTD-MIB::redundantdEventName.0 = STRING: became master`,
		`REDUNDANTD-MIB::redundantdEventDescription.0 = STRING: master_down timer: peer 192.0.2.2 silent for 3.6s`,
		"REDUNDANTD-MIB::redundantdEventTime.0 = STRING: 2026-12-1,20:15:30.1,+0:0",
		"REDUNDANTD-MIB::redundantdNodeName.0 = STRING: " + host,
	} {
		if !strings.Contains(l, w) {
			t.Errorf("redundantdEvent lacks %q:\n%s", w, l)
		}
	}
	pe := Event{Seq: 13, Time: testEventTime, Priority: PriorityWarning, Application: AppRedundancy, Name: "vrrp protocol error", Description: "bad checksum from 192.0.2.9"}
	n.NotifyVRRP(pe, VRRPDetail{IfIndex: 2, VRID: 51, ProtoError: ProtoErrChecksum})
	l = waitLine(t, lines, "VRRPV3-MIB::vrrpv3ProtoError")
	if w := "VRRPV3-MIB::vrrpv3StatisticsProtoErrReason.2.51.ipv4 = INTEGER: checksumError(3)"; !strings.Contains(l, w) {
		t.Errorf("vrrpv3ProtoError lacks %q:\n%s", w, l)
	}
	waitLine(t, lines, "REDUNDANTD-MIB::redundantdEventSeq.0 = Gauge32: 13")
}

func TestNotifySNMPv2c(t *testing.T) {
	addr, lines := snmptrapd(t, "authCommunity log traps-2c\n")
	c := testChannel("nms", NotifySNMP)
	c.SNMP = &SNMPNotifyConfig{Version: SNMPv2c, Address: addr, Community: "traps-2c"}
	n := startNotifier(t, c)
	checkTraps(t, n, lines)
	waitStatus(t, n, "nms", func(s ChannelStatus) bool { return s.Sent == 2 })
}

func TestNotifySNMPv3(t *testing.T) {
	engine := []byte{0x80, 0x01, 0x86, 0x9f, 0x04, 't', 'e', 's', 't'}
	conf := fmt.Sprintf("createUser -e 0x%x redundantd SHA \"auth-pass-123\" AES \"priv-pass-456\"\nauthUser log redundantd priv\n", engine)
	addr, lines := snmptrapd(t, conf)
	c := testChannel("nms3", NotifySNMP)
	c.SNMP = &SNMPNotifyConfig{Version: SNMPv3, Address: addr, User: "redundantd", AuthProtocol: "SHA", PrivProtocol: "AES",
		AuthPasswordFile: writeSecret(t, "auth", "auth-pass-123"), PrivPasswordFile: writeSecret(t, "priv", "priv-pass-456"), EngineID: engine}
	n := startNotifier(t, c)
	checkTraps(t, n, lines)
	waitStatus(t, n, "nms3", func(s ChannelStatus) bool { return s.Sent == 2 })
}

// TestNotifySNMPv3WrongKey: a trap authenticated under a wrong password is refused by
// snmptrapd and never logged as a notification.
func TestNotifySNMPv3WrongKey(t *testing.T) {
	engine := []byte{0x80, 0x01, 0x86, 0x9f, 0x04, 'b', 'a', 'd'}
	conf := fmt.Sprintf("createUser -e 0x%x redundantd SHA \"auth-pass-123\" AES \"priv-pass-456\"\nauthUser log redundantd priv\nauthCommunity log marker\n", engine)
	addr, lines := snmptrapd(t, conf)
	bad := testChannel("bad", NotifySNMP)
	bad.SNMP = &SNMPNotifyConfig{Version: SNMPv3, Address: addr, User: "redundantd", AuthProtocol: "SHA", PrivProtocol: "AES",
		AuthPasswordFile: writeSecret(t, "auth", "wrong-pass-123"), PrivPasswordFile: writeSecret(t, "priv", "priv-pass-456"), EngineID: engine}
	// A v2c trap sent after the bad one marks the point by which snmptrapd has handled it.
	marker := testChannel("marker", NotifySNMP)
	marker.SNMP = &SNMPNotifyConfig{Version: SNMPv2c, Address: addr, Community: "marker"}
	marker.Applications = []string{AppSync}
	n := startNotifier(t, bad, marker)
	e, _ := vrrpEvent()
	n.Notify(e)
	waitStatus(t, n, "bad", func(s ChannelStatus) bool { return s.Sent == 1 })
	n.Notify(Event{Seq: 99, Time: testEventTime, Priority: PriorityInfo, Application: AppSync, Name: "marker"})
	seen, _ := linesUntil(t, lines, "redundantdEventSeq.0 = Gauge32: 99")
	for _, l := range seen {
		if strings.Contains(l, "redundantdEventSeq.0 = Gauge32: 12") {
			t.Errorf("snmptrapd accepted a trap under a wrong auth password:\n%s", l)
		}
	}
}

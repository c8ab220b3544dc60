package testlab

import (
	"bytes"
	"context"
	_ "embed"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	stdsync "sync"
	"syscall"
	"text/template"
	"time"

	"github.com/redundantd/redundantd/testlab/poll"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// The lab's PBX is Debian's Kamailio (docs/pbx.md): a registrar and proxy on the virtual IP
// whose registrations reach the Backup as a consistent sqlite snapshot in a replicated tree.

//go:embed testdata/kamailio/kamailio.cfg.tmpl
var kamailioCfgTmpl string

//go:embed testdata/kamailio/kamailioctl.tmpl
var kamailioCtlTmpl string

var (
	kamailioCfg = template.Must(template.New("kamailio.cfg").Parse(kamailioCfgTmpl))
	kamailioCtl = template.Must(template.New("kamailioctl").Parse(kamailioCtlTmpl))
)

// Debian's locations of the Kamailio modules and of the sqlite schema files.
const (
	kamailioModulePath = "/usr/lib/x86_64-linux-gnu/kamailio/modules/"
	kamailioSchemaDir  = "/usr/share/kamailio/db_sqlite"
)

// ErrNoPBX says that a program the PBX lab needs is not installed.
var ErrNoPBX = errors.New("the PBX lab needs kamailio (with kamailio-sqlite-modules), sqlite3, sipsak and baresip (Debian: apt-get install kamailio kamailio-sqlite-modules sqlite3 sipsak baresip-core)")

// PBXMissing names the programs or files of the PBX lab that are missing here, empty when
// everything is installed.
func PBXMissing() []string {
	var missing []string
	for _, p := range []string{"kamailio", "sqlite3", "sipsak", "baresip"} {
		if _, err := exec.LookPath(p); err != nil {
			missing = append(missing, p)
		}
	}
	for _, f := range []string{
		filepath.Join(kamailioModulePath, "db_sqlite.so"),
		filepath.Join(kamailioSchemaDir, "usrloc-create.sql"),
		filepath.Join(baresipModulePath, "ctrl_tcp.so"),
	} {
		if _, err := os.Stat(f); err != nil {
			missing = append(missing, f)
		}
	}
	return missing
}

// SnapshotTick is how often Kamailio's snapshot timer looks for a REGISTER saved since the
// last snapshot: a registration is in the replicated tree at most one tick plus one snapshot
// (sqlite3 .backup, tens of milliseconds) after its 200 OK.
const SnapshotTick = 50 * time.Millisecond

// KamailioConfig shapes one node's Kamailio.
type KamailioConfig struct {
	// VIP is the address Kamailio listens on for the phones (besides 127.0.0.1, where the
	// check asks). It must be on the node when Kamailio starts.
	VIP netip.Addr
	// Port is the SIP port on both addresses; default 5060.
	Port int
	// Dir holds the node-local state: the rendered config, kamailioctl, the runtime dir, the
	// pid file and the live database. Default: <lab dir>/<node>/kamailio.
	Dir string
	// Tree is the replicated tree ([sync] paths) that receives the registrations' snapshot
	// usrloc.db. Default: <lab dir>/<node>/pbx.
	Tree string
	// SnapshotInterval is how often Kamailio snapshots its registrations in any case, in
	// seconds; default 1. A REGISTER is snapshotted on the next SnapshotTick (docs/pbx.md).
	SnapshotInterval int
	// Debug is Kamailio's log level; default 2 (warnings and notices).
	Debug int
}

// KamailioFiles are the paths of one node's rendered Kamailio setup.
type KamailioFiles struct {
	Config   string // kamailio.cfg
	Script   string // kamailioctl: start|run|stop|check|snapshot
	RunDir   string // Kamailio's runtime dir (-Y): the ctl socket
	PidFile  string // Kamailio's pid file (-P)
	LiveDB   string // the database Kamailio writes, node-local
	Snapshot string // the consistent copy in the replicated tree
	Tree     string // the replicated tree
	Port     int
}

// ServiceStart, ServiceStop and ServiceCheck are the argument lists of a redundantd
// [[service]] entry that runs this Kamailio.
func (f KamailioFiles) ServiceStart() []string { return []string{f.Script, "start"} }

// ServiceStop is the [[service]] stop command; see ServiceStart.
func (f KamailioFiles) ServiceStop() []string { return []string{f.Script, "stop"} }

// ServiceCheck is the [[service]] check command (a SIP OPTIONS answered); see ServiceStart.
func (f KamailioFiles) ServiceCheck() []string { return []string{f.Script, "check"} }

func (c KamailioConfig) withDefaults(n *Node) (KamailioConfig, error) {
	if !c.VIP.Is4() {
		return c, fmt.Errorf("testlab: kamailio on %s: VIP %v: want an IPv4 address", n.Name, c.VIP)
	}
	if c.Port == 0 {
		c.Port = 5060
	}
	if c.Port < 1 || c.Port > 65535 {
		return c, fmt.Errorf("testlab: kamailio on %s: port %d out of range", n.Name, c.Port)
	}
	if c.Dir == "" {
		c.Dir = filepath.Join(n.lab.Dir, n.Name, "kamailio")
	}
	if c.Tree == "" {
		c.Tree = filepath.Join(n.lab.Dir, n.Name, "pbx")
	}
	if c.SnapshotInterval == 0 {
		c.SnapshotInterval = 1
	}
	if c.Debug == 0 {
		c.Debug = 2
	}
	for _, p := range []string{c.Dir, c.Tree} {
		if !filepath.IsAbs(p) || strings.ContainsAny(p, "'\"\\ \n") {
			return c, fmt.Errorf("testlab: kamailio on %s: path %q: want an absolute path without quotes, backslashes or spaces", n.Name, p)
		}
	}
	return c, nil
}

// WriteKamailio renders the node's kamailio.cfg and kamailioctl from cfg, without starting
// anything: the files a redundantd [[service]] entry runs (KamailioFiles.ServiceStart ...).
func (n *Node) WriteKamailio(cfg KamailioConfig) (KamailioFiles, error) {
	cfg, err := cfg.withDefaults(n)
	if err != nil {
		return KamailioFiles{}, err
	}
	f := KamailioFiles{
		Config:   filepath.Join(cfg.Dir, "kamailio.cfg"),
		Script:   filepath.Join(cfg.Dir, "kamailioctl"),
		RunDir:   filepath.Join(cfg.Dir, "run"),
		PidFile:  filepath.Join(cfg.Dir, "run", "kamailio.pid"),
		LiveDB:   filepath.Join(cfg.Dir, "db", "usrloc.db"),
		Snapshot: filepath.Join(cfg.Tree, "usrloc.db"),
		Tree:     cfg.Tree,
		Port:     cfg.Port,
	}
	data := map[string]any{
		"Node": n.Name, "VIP": cfg.VIP.String(), "Port": cfg.Port, "Debug": cfg.Debug,
		"ModulePath": kamailioModulePath, "SchemaDir": kamailioSchemaDir,
		"Config": f.Config, "Script": f.Script, "RunDir": f.RunDir, "PidFile": f.PidFile,
		"LiveDB": f.LiveDB, "Snapshot": f.Snapshot,
		// tmp/ folders are never replicated (docs/sync.md), so a snapshot being written is not.
		"SnapshotTmpDir":   filepath.Join(cfg.Tree, "tmp"),
		"SnapshotInterval": cfg.SnapshotInterval,
		"SnapshotTickMs":   SnapshotTick.Milliseconds(),
		"SnapshotTickUs":   SnapshotTick.Microseconds(),
		"SnapshotTicks":    int64(cfg.SnapshotInterval) * int64(time.Second/SnapshotTick),
	}
	for _, d := range []string{cfg.Dir, f.RunDir, filepath.Dir(f.LiveDB), cfg.Tree} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return f, fmt.Errorf("testlab: %w", err)
		}
	}
	for _, out := range []struct {
		path string
		t    *template.Template
		mode os.FileMode
	}{{f.Config, kamailioCfg, 0o644}, {f.Script, kamailioCtl, 0o755}} {
		var b bytes.Buffer
		if err := out.t.Execute(&b, data); err != nil {
			return f, fmt.Errorf("testlab: render %s: %w", out.path, err)
		}
		if err := os.WriteFile(out.path, b.Bytes(), out.mode); err != nil {
			return f, fmt.Errorf("testlab: %w", err)
		}
	}
	return f, nil
}

// Kamailio is a Kamailio the lab runs in the foreground in a node ("kamailioctl run"), so
// its log is kept and Close kills it.
type Kamailio struct {
	Node  *Node
	Files KamailioFiles
	Proc  *Process
}

// StartKamailio renders the node's files, restores the replicated registrations and starts
// Kamailio, and returns once it answers an OPTIONS on 127.0.0.1 (or ctx ends).
func (n *Node) StartKamailio(ctx context.Context, cfg KamailioConfig) (*Kamailio, error) {
	f, err := n.WriteKamailio(cfg)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(f.Script, "run")
	p, err := n.StartProcess("kamailio@"+n.Name, filepath.Dir(f.Config), cmd)
	if err != nil {
		return nil, err
	}
	k := &Kamailio{Node: n, Files: f, Proc: p}
	if _, err := k.WaitUp(ctx); err != nil {
		p.kill()
		return nil, err
	}
	return k, nil
}

// WaitUp waits until Kamailio answers an OPTIONS on the node's 127.0.0.1 and returns when it
// did. It fails at once when the process exited.
func (k *Kamailio) WaitUp(ctx context.Context) (time.Time, error) {
	for {
		pctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		at, err := SIPPing(pctx, k.Node, netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, 1}), uint16(k.Files.Port)))
		cancel()
		if err == nil {
			return at, nil
		}
		if done, exitErr := k.Proc.Exited(); done {
			return time.Time{}, fmt.Errorf("testlab: %s exited (%v) before answering OPTIONS:\n%s", k.Proc.Name, exitErr, tail(k.Proc.Output(), 20))
		}
		if ctx.Err() != nil {
			return time.Time{}, fmt.Errorf("testlab: %s does not answer OPTIONS: %w (last: %v)", k.Proc.Name, ctx.Err(), err)
		}
	}
}

// Stop is a planned stop, the same as the service's stop command: SIGTERM, then the last
// snapshot into the replicated tree.
func (k *Kamailio) Stop(ctx context.Context) error {
	out, err := k.Node.Exec(ctx, k.Files.Script, "stop")
	if err != nil {
		return fmt.Errorf("testlab: stop %s: %w: %s", k.Proc.Name, err, out)
	}
	if _, err := k.Proc.Wait(ctx); err != nil {
		return err
	}
	return nil
}

// Kill is an unplanned stop: SIGKILL to Kamailio and its children, no last snapshot.
func (k *Kamailio) Kill(ctx context.Context) error { return k.Proc.Kill(ctx) }

// Exec runs a command in the node (own process group, killed when ctx ends) and returns its
// combined output.
func (n *Node) Exec(ctx context.Context, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	var b bytes.Buffer
	cmd.Stdout, cmd.Stderr = &b, &b
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	if err := n.Start(cmd); err != nil {
		return "", fmt.Errorf("testlab: start %s in %s: %w", name, n.Name, err)
	}
	err := cmd.Wait()
	return b.String(), err
}

// KamailioPids lists the Kamailio processes running in the node's network namespace now,
// whoever started them (the lab, or redundantd through a [[service]]): the sample behind
// "Kamailio runs on exactly one node".
func (n *Node) KamailioPids() ([]int, error) {
	return n.pids(func(comm string) bool { return comm == "kamailio" })
}

// pids lists the processes in the node's network namespace whose command name (comm)
// match accepts.
func (n *Node) pids(match func(comm string) bool) ([]int, error) {
	var st syscall.Stat_t
	if err := syscall.Fstat(int(n.ns), &st); err != nil {
		return nil, fmt.Errorf("testlab: namespace of %s: %w", n.Name, err)
	}
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil, fmt.Errorf("testlab: %w", err)
	}
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		comm, err := os.ReadFile(filepath.Join("/proc", e.Name(), "comm"))
		if err != nil || !match(strings.TrimSpace(string(comm))) {
			continue
		}
		var pst syscall.Stat_t
		if err := syscall.Stat(filepath.Join("/proc", e.Name(), "ns", "net"), &pst); err != nil {
			continue // exited meanwhile
		}
		if pst.Ino == st.Ino && pst.Dev == st.Dev {
			pids = append(pids, pid)
		}
	}
	return pids, nil
}

// killAll sends SIGKILL to every process in the node's namespace and waits (up to wait) until
// none is left. The lab's own processes are killed by their process groups; this catches
// what they started in groups of their own (redundantd runs each service command in a new
// group, so that a timeout kills its whole tree), which would otherwise outlive the daemon
// and write into the lab's folder while it is removed.
func (n *Node) killAll(wait time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	var left []int
	var scanErr error
	err := poll.Context(ctx, 10*time.Millisecond, func() bool {
		left, scanErr = n.pids(func(string) bool { return true })
		// Never this process: a goroutine that entered the namespace on its locked thread
		// may be on the main thread, whose namespace /proc/PID/ns/net shows.
		left = slices.DeleteFunc(left, func(pid int) bool { return pid == os.Getpid() })
		for _, pid := range left {
			syscall.Kill(pid, syscall.SIGKILL)
		}
		return scanErr != nil || len(left) == 0
	})
	if scanErr != nil {
		return scanErr
	}
	if err != nil {
		return fmt.Errorf("testlab: processes %v in %s still running after SIGKILL: %w", left, n.NSName, err)
	}
	return nil
}

// KamailioUp reports whether a Kamailio answers an OPTIONS on the node's 127.0.0.1:port
// within timeout.
func (n *Node) KamailioUp(ctx context.Context, port int, timeout time.Duration) bool {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	_, err := SIPPing(ctx, n, netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, 1}), uint16(port)))
	return err == nil
}

// RegisteredUsers lists the users with a contact in a usrloc sqlite database (a live file or a
// snapshot), sorted, each once.
func RegisteredUsers(ctx context.Context, db string) ([]string, error) {
	if _, err := os.Stat(db); err != nil {
		return nil, fmt.Errorf("testlab: %w", err)
	}
	cmd := exec.CommandContext(ctx, "sqlite3", "-readonly", db, "SELECT DISTINCT username FROM location ORDER BY username;")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("testlab: read %s: %w: %s", db, err, out)
	}
	return strings.Fields(string(out)), nil
}

// AddAddr adds p to the node's eth0, as a VRRP Master does with a virtual IP; a test that
// moves the address by hand uses it with RemoveAddr.
func (n *Node) AddAddr(p netip.Prefix) error {
	eth, err := n.handle.LinkByName(n.Iface)
	if err != nil {
		return fmt.Errorf("testlab: %s/%s: %w", n.Name, n.Iface, err)
	}
	if err := n.handle.AddrAdd(eth, &netlink.Addr{IPNet: ipNet(p)}); err != nil {
		return fmt.Errorf("testlab: add %s to %s: %w", p, n.Name, err)
	}
	return nil
}

// AnnounceAddr sends one gratuitous ARP request for ip from the node's eth0 (RFC 5227 section
// 3 announcement, as a VRRP Master sends on taking a virtual IP), so the other hosts on the
// bridge update their ARP caches after a test moved an address by hand.
func (n *Node) AnnounceAddr(ip netip.Addr) error {
	if !ip.Is4() {
		return fmt.Errorf("testlab: announce %v: want IPv4", ip)
	}
	eth, err := n.handle.LinkByName(n.Iface)
	if err != nil {
		return fmt.Errorf("testlab: %s/%s: %w", n.Name, n.Iface, err)
	}
	hw := eth.Attrs().HardwareAddr
	ifindex := eth.Attrs().Index
	return n.Do(func() error {
		const ethPARP = 0x0806
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_DGRAM, int(htons(ethPARP)))
		if err != nil {
			return fmt.Errorf("testlab: packet socket: %w", err)
		}
		defer unix.Close(fd)
		a := ip.As4()
		pkt := make([]byte, 0, 28)
		pkt = append(pkt, 0, 1, 8, 0, 6, 4, 0, 1) // Ethernet, IPv4, request
		pkt = append(pkt, hw...)
		pkt = append(pkt, a[:]...)
		pkt = append(pkt, 0, 0, 0, 0, 0, 0)
		pkt = append(pkt, a[:]...)
		to := &unix.SockaddrLinklayer{Protocol: htons(ethPARP), Ifindex: ifindex, Halen: 6,
			Addr: [8]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}}
		if err := unix.Sendto(fd, pkt, 0, to); err != nil {
			return fmt.Errorf("testlab: gratuitous ARP for %s from %s: %w", ip, n.Name, err)
		}
		return nil
	})
}

// ServiceTOML is the redundantd [[service]] entry that runs this Kamailio: start, stop and the
// SIP-level check, checked every second (docs/pbx.md).
func (f KamailioFiles) ServiceTOML() string {
	q := func(args []string) string {
		s := make([]string, len(args))
		for i, a := range args {
			s[i] = strconv.Quote(a)
		}
		return "[" + strings.Join(s, ", ") + "]"
	}
	return fmt.Sprintf(`
[[service]]
name = "kamailio"
start = %s
stop = %s
check = %s
timeout = "15s"
check_interval = "1s"
fall = 3
rise = 1
`, q(f.ServiceStart()), q(f.ServiceStop()), q(f.ServiceCheck()))
}

// KamailioWatch samples, every 5 ms, which of a lab's nodes run Kamailio and hold an address:
// it counts the samples in which two nodes ran Kamailio at once, and records when the address
// and a Kamailio were first seen on each node after the last Mark.
type KamailioWatch struct {
	stop chan struct{}
	done chan struct{}
	once stdsync.Once

	mu      stdsync.Mutex
	samples int
	both    int
	mark    time.Time
	first   map[string]time.Time // "vip@node2", "kamailio@node2"
}

// WatchKamailio starts sampling l's nodes for Kamailio and addr until Stop.
func WatchKamailio(l *Lab, addr netip.Addr) *KamailioWatch {
	w := &KamailioWatch{stop: make(chan struct{}), done: make(chan struct{}), first: map[string]time.Time{}}
	go func() {
		defer close(w.done)
		for {
			select {
			case <-w.stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
			w.sample(l, addr)
		}
	}()
	return w
}

func (w *KamailioWatch) sample(l *Lab, addr netip.Addr) {
	now := time.Now()
	running := 0
	seen := map[string]bool{}
	for _, n := range l.Nodes() {
		if pids, err := n.KamailioPids(); err == nil && len(pids) > 0 {
			running++
			seen["kamailio@"+n.Name] = true
		}
		if ok, err := n.HasAddr(addr); err == nil && ok {
			seen["vip@"+n.Name] = true
		}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.samples++
	if running > 1 {
		w.both++
	}
	if w.mark.IsZero() {
		return
	}
	for k := range seen {
		if _, ok := w.first[k]; !ok {
			w.first[k] = now
		}
	}
}

// Mark starts a new measurement: first appearances are recorded from now on.
func (w *KamailioWatch) Mark(now time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.mark = now
	w.first = map[string]time.Time{}
}

// Since is how long after the last Mark "vip@<node>" or "kamailio@<node>" was first seen;
// false when it was not seen yet.
func (w *KamailioWatch) Since(key string) (time.Duration, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	at, ok := w.first[key]
	if !ok {
		return 0, false
	}
	return at.Sub(w.mark), true
}

// Stop ends the sampling (safe to call more than once) and returns the number of samples and
// of samples in which Kamailio ran on more than one node.
func (w *KamailioWatch) Stop() (samples, both int) {
	w.once.Do(func() { close(w.stop) })
	<-w.done
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.samples, w.both
}

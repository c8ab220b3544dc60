package testlab

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Impl names a VRRP implementation the lab can run.
type Impl string

const (
	Redundantd Impl = "redundantd"
	Keepalived Impl = "keepalived"
)

// RedundantdPkg is the import path of the daemon BuildBinary compiles.
const RedundantdPkg = "github.com/redundantd/redundantd/cmd/redundantd"

// APIAddr is where redundantd's API listens inside each node.
const APIAddr = "127.0.0.1:7400"

// VRRPConfig is one node's VRRP instance, translated into a redundantd TOML file or a
// keepalived.conf. Zero fields take the defaults noted.
type VRRPConfig struct {
	Version        uint8          // 2 (default) or 3 (RFC 9568)
	VRID           uint8          // default 51
	Priority       uint8          // default 100
	AdvertInterval time.Duration  // default 1s; whole seconds for version 2, 10 ms steps for 3
	Preempt        bool           // default off, as in the product
	VIPs           []netip.Prefix // default host .100 of the lab subnet
	Peers          []netip.Addr   // default: every other lab node; redundantd takes the first
	Unicast        bool
	VirtualMAC     bool // redundantd only
	// NARouter sets the Router flag of an IPv6 group's Neighbor Advertisements (redundantd's
	// redundancy.na_router; keepalived sets it when the host forwards IPv6).
	NARouter     bool
	GARPCount    int           // 0: the implementation's default
	GARPInterval time.Duration // 0: the implementation's default
	GARPRefresh  time.Duration // redundantd's garp_refresh; 0: none
	// Extra is appended verbatim: TOML sections for redundantd (for example [berofos]),
	// lines inside vrrp_instance for keepalived.
	Extra string
	// Binds are bind mounts made for the daemon only (redundantd), in a mount namespace of
	// its own: Target (the same path on every node, as sync.paths must be) shows Source
	// (the node's own directory). Two nodes on one host then replicate "/srv/pbx" as two
	// machines would.
	Binds []Bind
	// Wrap is a command prefix the daemon is run under (redundantd only, not with Binds): for
	// example setpriv with the capabilities of the systemd unit.
	Wrap []string
}

// Bind is one bind mount: Source (a node's directory) shown at Target.
type Bind struct{ Source, Target string }

func (n *Node) withDefaults(c VRRPConfig) VRRPConfig {
	if c.Version == 0 {
		c.Version = 2
	}
	if c.VRID == 0 {
		c.VRID = 51
	}
	if c.Priority == 0 {
		c.Priority = 100
	}
	if c.AdvertInterval == 0 {
		c.AdvertInterval = time.Second
	}
	if len(c.VIPs) == 0 {
		c.VIPs = []netip.Prefix{n.lab.DefaultVIP()}
	}
	if len(c.Peers) == 0 {
		for _, o := range n.lab.nodes {
			if o != n {
				c.Peers = append(c.Peers, o.Addr)
			}
		}
	}
	return c
}

// DefaultVIPs6 are the virtual addresses of an IPv6 lab group: the link-local virtual address
// first (RFC 9568 section 5.2.9), then host 100 of Subnet6 (2001:db8::64).
func DefaultVIPs6() []netip.Prefix {
	return []netip.Prefix{netip.MustParsePrefix("fe80::1/64"), netip.PrefixFrom(hostAddr6(100), Subnet6.Bits())}
}

// DefaultVIP is host .100 of the lab subnet with the subnet's prefix length.
func (l *Lab) DefaultVIP() netip.Prefix {
	a, _ := l.hostAddr(100)
	return netip.PrefixFrom(a, l.Subnet.Bits())
}

// RedundantdTOML renders the daemon's configuration file for node n.
func RedundantdTOML(n *Node, c VRRPConfig, stateDir string) string {
	c = n.withDefaults(c)
	var b strings.Builder
	fmt.Fprintf(&b, "[node]\nid = %q\ninterface = %q\naddress = %q\nstate_dir = %q\n\n",
		n.Name, n.Iface, n.Addr.String(), stateDir)
	fmt.Fprintf(&b, "[redundancy]\nenabled = true\nversion = %d\ngroup_id = %d\npriority = %d\nadvert_interval = %q\npreempt = %t\n",
		c.Version, c.VRID, c.Priority, c.AdvertInterval.String(), c.Preempt)
	vips := make([]string, len(c.VIPs))
	for i, v := range c.VIPs {
		vips[i] = strconv.Quote(v.String())
	}
	fmt.Fprintf(&b, "virtual_ips = [%s]\n", strings.Join(vips, ", "))
	if len(c.Peers) > 0 {
		fmt.Fprintf(&b, "peer = %q\n", c.Peers[0].String())
	}
	fmt.Fprintf(&b, "unicast = %t\nvirtual_mac = %t\n", c.Unicast, c.VirtualMAC)
	if c.NARouter {
		b.WriteString("na_router = true\n")
	}
	if c.GARPCount > 0 {
		fmt.Fprintf(&b, "garp_count = %d\n", c.GARPCount)
	}
	if c.GARPInterval > 0 {
		fmt.Fprintf(&b, "garp_interval = %q\n", c.GARPInterval.String())
	}
	if c.GARPRefresh > 0 {
		fmt.Fprintf(&b, "garp_refresh = %q\n", c.GARPRefresh.String())
	}
	fmt.Fprintf(&b, "\n[api]\nlisten = %q\n", APIAddr)
	if c.Extra != "" {
		b.WriteString("\n" + c.Extra + "\n")
	}
	return b.String()
}

// KeepalivedConf renders a keepalived.conf for node n: one vrrp_instance VI_1 starting as
// BACKUP (keepalived's nopreempt requires it), vrrp_version c.Version. An instance with IPv6
// virtual addresses is an IPv6 one (keepalived takes the family from them).
func KeepalivedConf(n *Node, c VRRPConfig) (string, error) {
	c = n.withDefaults(c)
	if c.Version == 2 && c.AdvertInterval%time.Second != 0 {
		return "", fmt.Errorf("testlab: keepalived VRRPv2 advert interval %v: want whole seconds", c.AdvertInterval)
	}
	if c.AdvertInterval%(10*time.Millisecond) != 0 {
		return "", fmt.Errorf("testlab: keepalived VRRPv3 advert interval %v: want a multiple of 10ms", c.AdvertInterval)
	}
	if c.VirtualMAC {
		return "", errors.New("testlab: virtual MAC mode is not configured for keepalived here")
	}
	if c.Unicast && len(c.VIPs) > 0 && c.VIPs[0].Addr().Is6() {
		return "", errors.New("testlab: unicast IPv6 is not configured for keepalived here")
	}
	var b strings.Builder
	fmt.Fprintf(&b, "global_defs {\n  router_id %s\n  vrrp_version %d\n}\n\n", n.Name, c.Version)
	fmt.Fprintf(&b, "vrrp_instance VI_1 {\n  state BACKUP\n  interface %s\n  virtual_router_id %d\n  priority %d\n  advert_int %g\n",
		n.Iface, c.VRID, c.Priority, c.AdvertInterval.Seconds())
	if !c.Preempt {
		b.WriteString("  nopreempt\n")
	}
	if c.GARPCount > 0 {
		fmt.Fprintf(&b, "  garp_master_repeat %d\n", c.GARPCount)
	}
	if c.Unicast {
		fmt.Fprintf(&b, "  unicast_src_ip %s\n  unicast_peer {\n", n.Addr)
		for _, p := range c.Peers {
			fmt.Fprintf(&b, "    %s\n", p)
		}
		b.WriteString("  }\n")
	}
	b.WriteString("  virtual_ipaddress {\n")
	for _, v := range c.VIPs {
		fmt.Fprintf(&b, "    %s dev %s\n", v, n.Iface)
	}
	b.WriteString("  }\n")
	if c.Extra != "" {
		b.WriteString(c.Extra + "\n")
	}
	b.WriteString("}\n")
	return b.String(), nil
}

// KeepalivedPath is the keepalived binary, or "" when it is not installed.
func KeepalivedPath() string {
	if _, err := os.Stat("/usr/sbin/keepalived"); err == nil {
		return "/usr/sbin/keepalived"
	}
	if p, err := exec.LookPath("keepalived"); err == nil {
		return p
	}
	return ""
}

// Router is a VRRP implementation running in a node with a generated configuration.
type Router struct {
	Impl   Impl
	Node   *Node
	Config VRRPConfig // as given (before defaults)
	Dir    string     // config, state and pid files

	mu    sync.Mutex
	proc  *Process
	state string // keepalived: from its log; "" before the first state line
	runs  int
}

// StartRouter starts impl in node n with configuration c. For redundantd the binary is built
// on first use (BuildBinary); for keepalived an error wrapping ErrNoKeepalived is returned when
// it is not installed.
func (n *Node) StartRouter(ctx context.Context, impl Impl, c VRRPConfig) (*Router, error) {
	r := &Router{Impl: impl, Node: n, Config: c, Dir: filepath.Join(n.lab.Dir, n.Name+"-"+string(impl))}
	if err := r.Start(ctx); err != nil {
		return nil, err
	}
	return r, nil
}

// ErrNoKeepalived says keepalived is not installed.
var ErrNoKeepalived = errors.New("keepalived is not installed (Debian: apt-get install keepalived)")

// Start (re)starts the implementation with the router's configuration. The previous process,
// if any, must have exited.
func (r *Router) Start(ctx context.Context) error {
	r.mu.Lock()
	prev := r.proc
	if prev != nil {
		if exited, _ := prev.Exited(); !exited {
			r.mu.Unlock()
			return fmt.Errorf("testlab: %s in %s still runs", r.Impl, r.Node.Name)
		}
	}
	r.mu.Unlock()
	if prev != nil {
		if err := prev.WaitGroupGone(ctx); err != nil {
			return err
		}
	}
	r.mu.Lock()
	r.runs++
	r.state = ""
	run := r.runs
	r.mu.Unlock()

	if err := os.MkdirAll(r.Dir, 0o755); err != nil {
		return fmt.Errorf("testlab: %w", err)
	}
	name := fmt.Sprintf("%s@%s", r.Impl, r.Node.Name)
	var (
		cmd    *exec.Cmd
		onLine func(string)
	)
	switch r.Impl {
	case Redundantd:
		bin, err := BuildBinary(ctx, RedundantdPkg)
		if err != nil {
			return err
		}
		// The daemon creates its state directory itself on first start.
		stateDir := filepath.Join(r.Dir, "state")
		conf := filepath.Join(r.Dir, "redundantd.toml")
		toml := RedundantdTOML(r.Node, r.Config, stateDir)
		if err := os.WriteFile(conf, []byte(toml), 0o644); err != nil {
			return fmt.Errorf("testlab: %w", err)
		}
		if len(r.Config.Wrap) > 0 {
			if len(r.Config.Binds) > 0 {
				return errors.New("testlab: VRRPConfig.Wrap and Binds together are not supported")
			}
			cmd = exec.Command(r.Config.Wrap[0], append(r.Config.Wrap[1:], bin, "-config", conf)...)
		} else {
			cmd = daemonCommand(bin, conf, r.Config.Binds)
		}
	case Keepalived:
		bin := KeepalivedPath()
		if bin == "" {
			return fmt.Errorf("testlab: %w", ErrNoKeepalived)
		}
		text, err := KeepalivedConf(r.Node, r.Config)
		if err != nil {
			return err
		}
		conf := filepath.Join(r.Dir, "keepalived.conf")
		if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
			return fmt.Errorf("testlab: %w", err)
		}
		// -P: VRRP only; -n -l -D: foreground, log to the console in detail; -G: no syslog;
		// -R: do not respawn a killed child; private pid files so instances do not collide.
		cmd = exec.Command(bin, "-P", "-n", "-l", "-D", "-G", "-R", "-f", conf,
			"-p", filepath.Join(r.Dir, "keepalived.pid"),
			"-r", filepath.Join(r.Dir, "vrrp.pid"),
			"-c", filepath.Join(r.Dir, "checkers.pid"),
			"-b", filepath.Join(r.Dir, "bfd.pid"))
		onLine = func(line string) {
			for _, st := range []string{"MASTER", "BACKUP", "FAULT"} {
				if strings.Contains(line, "Entering "+st+" STATE") {
					r.mu.Lock()
					if r.runs == run {
						r.state = strings.ToLower(st)
					}
					r.mu.Unlock()
				}
			}
		}
	default:
		return fmt.Errorf("testlab: unknown implementation %q", r.Impl)
	}
	cmd.Dir = r.Dir
	p, err := r.Node.startProcess(name, r.Dir, cmd, onLine)
	if err != nil {
		return err
	}
	r.mu.Lock()
	r.proc = p
	r.mu.Unlock()
	return nil
}

// Proc is the current process.
func (r *Router) Proc() *Process {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.proc
}

// String is "redundantd@node1".
func (r *Router) String() string { return fmt.Sprintf("%s@%s", r.Impl, r.Node.Name) }

// State is the instance's VRRP state: "initialize", "backup" or "master" (keepalived also
// "fault"). For redundantd it comes from the status API, for keepalived from its log. A
// process that has exited is an error.
func (r *Router) State(ctx context.Context) (string, error) {
	p := r.Proc()
	if exited, err := p.Exited(); exited {
		return "", fmt.Errorf("testlab: %s exited: %v\n%s", r, err, tail(p.Output(), 20))
	}
	if r.Impl == Redundantd {
		st, err := r.Node.Status(ctx)
		if err != nil {
			return "", err
		}
		return st.State, nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.state == "" {
		return "initialize", nil
	}
	return r.state, nil
}

// WaitState polls State every 20 ms until it equals want or ctx ends.
func (r *Router) WaitState(ctx context.Context, want string) error {
	var last string
	var lastErr error
	for {
		st, err := r.State(ctx)
		if err == nil && st == want {
			return nil
		}
		last, lastErr = st, err
		if err != nil {
			if exited, _ := r.Proc().Exited(); exited {
				return err
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("testlab: %s: waiting for state %s (last %q, %v): %w", r, want, last, lastErr, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// Kill sends SIGKILL to the process group and waits for it to exit.
func (r *Router) Kill(ctx context.Context) error { return r.Proc().Kill(ctx) }

// Term sends SIGTERM and waits for a clean exit.
func (r *Router) Term(ctx context.Context) error { return r.Proc().Term(ctx) }

// Status is redundantd's GET /api/v1/status answer.
type Status struct {
	State       string            `json:"state"`
	GroupID     int               `json:"group_id"`
	Priority    int               `json:"priority"`
	VirtualIPs  []string          `json:"virtual_ips"`
	MasterIP    string            `json:"master_ip"`
	Since       string            `json:"since"` // RFC 3339; empty before the first transition
	Transitions uint64            `json:"transitions"`
	Dropped     map[string]uint64 `json:"dropped"`
	Fault       string            `json:"fault"` // why the node is out of the protocol
}

// SinceTime parses Since; the zero time when it is empty or malformed.
func (s Status) SinceTime() time.Time {
	t, _ := time.Parse(time.RFC3339Nano, s.Since)
	return t
}

// Status queries redundantd's API inside the node.
func (n *Node) Status(ctx context.Context) (Status, error) {
	var st Status
	return st, n.getStatus(ctx, &st)
}

// getStatus decodes redundantd's GET /api/v1/status inside the node into out.
func (n *Node) getStatus(ctx context.Context, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+APIAddr+"/api/v1/status", nil)
	if err != nil {
		return err
	}
	resp, err := n.HTTPClient().Do(req)
	if err != nil {
		return fmt.Errorf("testlab: status of %s: %w", n.Name, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("testlab: status of %s: %w", n.Name, err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("testlab: status of %s: %s: %s", n.Name, resp.Status, body)
	}
	if err := json.Unmarshal(body, out); err != nil {
		return fmt.Errorf("testlab: status of %s: %w: %s", n.Name, err, body)
	}
	return nil
}

func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// daemonCommand runs redundantd, inside a private mount namespace with binds when asked
// (util-linux's unshare makes it; the daemon is then unshare's exec'd child, so signals and
// the process group are the daemon's own).
func daemonCommand(bin, conf string, binds []Bind) *exec.Cmd {
	if len(binds) == 0 {
		return exec.Command(bin, "-config", conf)
	}
	script := ""
	args := []string{}
	for i, b := range binds {
		script += fmt.Sprintf(`mkdir -p "$%d" && mount --bind "$%d" "$%d" && `, 2*i+2, 2*i+1, 2*i+2)
		args = append(args, b.Source, b.Target)
	}
	n := len(args)
	script += fmt.Sprintf(`exec "$%d" -config "$%d"`, n+1, n+2)
	args = append(args, bin, conf)
	return exec.Command("unshare", append([]string{"--mount", "--propagation", "private", "sh", "-c", script, "redundantd"}, args...)...)
}

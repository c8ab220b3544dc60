package testlab

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redundantd/redundantd/testlab/labns"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// DefaultPrefix starts the name of every namespace a lab creates unless Options.Prefix is set.
const DefaultPrefix = "rlab"

// netnsDir is where named network namespaces are bind-mounted (the iproute2 convention, so
// `ip netns list` shows a running lab).
const netnsDir = "/run/netns"

// Options shape a lab. The zero value is a two-node lab on 192.0.2.0/24.
type Options struct {
	Nodes  int          // number of nodes; default 2, at most 100
	Prefix string       // namespace name prefix; default DefaultPrefix
	Subnet netip.Prefix // IPv4 subnet of the bridge; default 192.0.2.0/24
	// WAN gives the lab a second bridge, br1, and every node a second interface on it, eth1
	// (Node.WAN): a LAN and a WAN side, as a PBX has. Extra hosts (AddHost) are on br0 only.
	WAN bool
	// WANSubnet is br1's IPv4 subnet; default DefaultWANSubnet. Node i has host part 10+i.
	WANSubnet netip.Prefix
}

// DefaultWANSubnet is the subnet of br1 in a lab with Options.WAN (RFC 5737's second
// documentation network).
var DefaultWANSubnet = netip.MustParsePrefix("198.51.100.0/24")

// Subnet6 is the IPv6 prefix of every lab bridge (RFC 3849's documentation prefix): node i has
// host part 10+i in it, as in the IPv4 subnet.
var Subnet6 = netip.MustParsePrefix("2001:db8::/64")

// Lab is a bridge namespace with bridge br0 and node namespaces attached to it by veth pairs.
//
// Every node has IPv6 too (unless the kernel has none): a link-local address and one in Subnet6. The node namespaces run no
// duplicate address detection (accept_dad 0), and New and AddHost return once each node's
// link-local address is usable, so an IPv6 test starts with no address "tentative".
type Lab struct {
	Name   string       // unique base name; every namespace of the lab starts with it
	Subnet netip.Prefix // the bridge's subnet
	// WANSubnet is br1's subnet in a lab with Options.WAN; invalid otherwise.
	WANSubnet netip.Prefix
	Dir       string // temporary directory for configs, pid files and state; removed by Close

	bridgeNS netns.NsHandle
	bridge   *netlink.Handle
	brIndex  int
	wanIndex int // br1's index; 0 without Options.WAN

	ctx    context.Context // cancelled by Close: stops sniffers and watchers
	cancel context.CancelFunc

	mu     sync.Mutex
	nodes  []*Node
	hosts  []*Node
	procs  []*Process
	closed bool
}

// Node is one namespace on the lab bridge: a redundancy node or an extra host.
type Node struct {
	Name   string       // short name: "node1", "node2", ... or the name given to AddHost
	NSName string       // the namespace's name under /run/netns
	Iface  string       // the interface inside the namespace: always "eth0"
	Addr   netip.Addr   // its fixed address
	Prefix netip.Prefix // Addr with the subnet's prefix length, as installed
	// Addr6 is its fixed IPv6 address in Subnet6 (installed with Subnet6's prefix length), and
	// LinkLocal its eth0's link-local address, known once the lab is built: the source of its
	// IPv6 adverts (RFC 9568 section 5.1.2.1).
	Addr6     netip.Addr
	LinkLocal netip.Addr

	// WAN is the node's second interface, eth1 on br1, in a lab with Options.WAN; nil
	// otherwise.
	WAN *Link

	lab      *Lab
	ipv6     bool // the kernel has IPv6 (see disableDAD)
	ns       netns.NsHandle
	handle   *netlink.Handle
	portName string // the veth end on the bridge side, in the bridge namespace
}

var labCounter atomic.Uint64

// withDefaults fills in and checks the options.
func (opts Options) withDefaults() (Options, error) {
	if opts.Nodes == 0 {
		opts.Nodes = 2
	}
	if opts.Nodes < 0 || opts.Nodes > 100 {
		return opts, fmt.Errorf("testlab: %d nodes: want 1..100", opts.Nodes)
	}
	if opts.Prefix == "" {
		opts.Prefix = DefaultPrefix
	}
	if strings.ContainsAny(opts.Prefix, "/- \t") {
		return opts, fmt.Errorf("testlab: prefix %q: must not contain '/', '-' or spaces", opts.Prefix)
	}
	if !opts.Subnet.IsValid() {
		opts.Subnet = netip.MustParsePrefix("192.0.2.0/24")
	}
	if !opts.Subnet.Addr().Is4() || opts.Subnet.Bits() > 24 {
		return opts, fmt.Errorf("testlab: subnet %s: want IPv4 with a prefix of /24 or shorter", opts.Subnet)
	}
	if opts.WAN && !opts.WANSubnet.IsValid() {
		opts.WANSubnet = DefaultWANSubnet
	}
	if opts.WAN && (!opts.WANSubnet.Addr().Is4() || opts.WANSubnet.Bits() > 24 || opts.WANSubnet.Overlaps(opts.Subnet)) {
		return opts, fmt.Errorf("testlab: WAN subnet %s: want IPv4 with a prefix of /24 or shorter, apart from %s", opts.WANSubnet, opts.Subnet)
	}
	return opts, nil
}

// New builds a lab. On error everything created so far is removed. The lab lives until Close,
// or until ctx is cancelled, whichever comes first.
func New(ctx context.Context, opts Options) (*Lab, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	if os.Geteuid() != 0 {
		return nil, errors.New("testlab: network namespaces need root")
	}
	removeStale(opts.Prefix)

	l := &Lab{
		Name:   fmt.Sprintf("%s-%d-%d", opts.Prefix, os.Getpid(), labCounter.Add(1)),
		Subnet: opts.Subnet.Masked(),
	}
	l.ctx, l.cancel = context.WithCancel(context.Background())
	stop := context.AfterFunc(ctx, func() { l.Close() })
	ok := false
	defer func() {
		if !ok {
			stop()
			l.Close()
		}
	}()

	dir, err := os.MkdirTemp("", l.Name+"-")
	if err != nil {
		return nil, fmt.Errorf("testlab: %w", err)
	}
	l.Dir = dir

	l.bridgeNS, err = labns.Create(l.Name + "-br")
	if err != nil {
		return nil, err
	}
	l.bridge, err = netlink.NewHandleAt(l.bridgeNS)
	if err != nil {
		return nil, fmt.Errorf("testlab: netlink in bridge namespace: %w", err)
	}
	if err := linkUp(l.bridge, "lo"); err != nil {
		return nil, err
	}
	if l.brIndex, err = l.addBridge("br0"); err != nil {
		return nil, err
	}
	if opts.WAN {
		l.WANSubnet = opts.WANSubnet.Masked()
		if l.wanIndex, err = l.addBridge("br1"); err != nil {
			return nil, err
		}
	}
	if err := l.addNodes(ctx, opts); err != nil {
		return nil, err
	}
	ok = true
	return l, nil
}

// addNodes attaches opts.Nodes nodes (with their WAN links when opts.WAN) and waits until
// each has carrier.
func (l *Lab) addNodes(ctx context.Context, opts Options) error {
	for i := 1; i <= opts.Nodes; i++ {
		addr, err := l.hostAddr(10 + i)
		if err != nil {
			return err
		}
		n, err := l.attach(fmt.Sprintf("node%d", i), fmt.Sprintf("n%d", i), addr)
		if err != nil {
			return err
		}
		l.nodes = append(l.nodes, n)
		if opts.WAN {
			if err := l.attachWAN(n, i); err != nil {
				return err
			}
		}
	}
	for _, n := range l.nodes {
		if err := n.waitCarrier(ctx); err != nil {
			return err
		}
		if n.WAN != nil {
			if err := n.WAN.waitCarrier(ctx); err != nil {
				return err
			}
		}
	}
	return nil
}

// addBridge creates bridge name in the bridge namespace, brings it up and returns its index.
func (l *Lab) addBridge(name string) (int, error) {
	br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: name}}
	if err := l.bridge.LinkAdd(br); err != nil {
		return 0, fmt.Errorf("testlab: add bridge %s: %w", name, err)
	}
	if err := linkUp(l.bridge, name); err != nil {
		return 0, err
	}
	link, err := l.bridge.LinkByName(name)
	if err != nil {
		return 0, fmt.Errorf("testlab: bridge %s: %w", name, err)
	}
	return link.Attrs().Index, nil
}

// waitCarrier waits until the node's eth0 is operationally up and the bridge forwards from
// its port: the kernel reports carrier asynchronously (link watch), and the bridge moves the
// port out of the disabled state only when it hears of it, some time after eth0 is up; until
// both, frames sent on eth0 are lost (a lab test's first advert went nowhere).
func (n *Node) waitCarrier(ctx context.Context) error {
	deadline := time.Now().Add(5 * time.Second)
	for {
		eth, err := n.handle.LinkByName(n.Iface)
		if err != nil {
			return fmt.Errorf("testlab: %s/%s: %w", n.Name, n.Iface, err)
		}
		port, err := n.lab.bridgePortState(n.portName)
		if err != nil {
			return err
		}
		if eth.Attrs().OperState == netlink.OperUp && port == brStateForwarding {
			if !n.ipv6 {
				return nil
			}
			ll, err := n.usableLinkLocal(eth)
			if err != nil {
				return err
			}
			if ll.IsValid() {
				n.LinkLocal = ll
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("testlab: %s/%s has no carrier or no usable link-local address after 5 s (state %s, bridge port %s state %d)",
				n.Name, n.Iface, eth.Attrs().OperState, n.portName, port)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// usableLinkLocal returns eth's link-local address once the kernel has made it (at carrier,
// asynchronously) and it is not tentative (without DAD, as soon as the kernel's address work
// ran); an invalid address until then.
func (n *Node) usableLinkLocal(eth netlink.Link) (netip.Addr, error) {
	as, err := n.handle.AddrList(eth, netlink.FAMILY_V6)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("testlab: IPv6 addresses of %s/%s: %w", n.Name, n.Iface, err)
	}
	for _, a := range as {
		p, ok := prefixOf(a.IPNet)
		if ok && p.Addr().IsLinkLocalUnicast() && a.Flags&(unix.IFA_F_TENTATIVE|unix.IFA_F_DADFAILED) == 0 {
			return p.Addr(), nil
		}
	}
	return netip.Addr{}, nil
}

// disableDAD turns duplicate address detection off for the links made in ns from now on
// (net.ipv6.conf.default) and for the existing ones (all): the lab's addresses are unique by
// construction, and DAD would leave each link-local address unusable for a second or more.
// It reports false, and no error, on a kernel without IPv6 (booted with ipv6.disable=1): the
// lab is IPv4 only there.
func disableDAD(ns netns.NsHandle) (ipv6 bool, err error) {
	err = labns.Do(ns, func() error {
		for _, conf := range []string{"default", "all"} {
			p := "/proc/sys/net/ipv6/conf/" + conf + "/accept_dad"
			if err := os.WriteFile(p, []byte("0\n"), 0o644); err != nil {
				if errors.Is(err, os.ErrNotExist) {
					return nil
				}
				return fmt.Errorf("testlab: disabling DAD: %w", err)
			}
			ipv6 = true
		}
		return nil
	})
	return ipv6, err
}

// brStateForwarding is BR_STATE_FORWARDING (linux/if_bridge.h), the state of a bridge port
// that passes frames.
const brStateForwarding = 3

// bridgePortState returns the STP state of br0's port name (IFLA_BRPORT_STATE from an
// AF_BRIDGE link dump in the bridge namespace; netlink.Protinfo does not carry it).
func (l *Lab) bridgePortState(name string) (uint8, error) {
	link, err := l.bridge.LinkByName(name)
	if err != nil {
		return 0, fmt.Errorf("testlab: bridge port %s: %w", name, err)
	}
	var msgs [][]byte
	err = labns.Do(l.bridgeNS, func() error {
		req := nl.NewNetlinkRequest(unix.RTM_GETLINK, unix.NLM_F_DUMP)
		req.AddData(nl.NewIfInfomsg(unix.AF_BRIDGE))
		var err error
		msgs, err = req.Execute(unix.NETLINK_ROUTE, unix.RTM_NEWLINK)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("testlab: bridge port states: %w", err)
	}
	for _, m := range msgs {
		info := nl.DeserializeIfInfomsg(m)
		if int(info.Index) != link.Attrs().Index {
			continue
		}
		attrs, err := nl.ParseRouteAttr(m[info.Len():])
		if err != nil {
			return 0, fmt.Errorf("testlab: bridge port %s: %w", name, err)
		}
		for _, a := range attrs {
			if a.Attr.Type&^unix.NLA_F_NESTED != unix.IFLA_PROTINFO {
				continue
			}
			infos, err := nl.ParseRouteAttr(a.Value)
			if err != nil {
				return 0, fmt.Errorf("testlab: bridge port %s: %w", name, err)
			}
			for _, i := range infos {
				if i.Attr.Type == nl.IFLA_BRPORT_STATE && len(i.Value) > 0 {
					return i.Value[0], nil
				}
			}
		}
	}
	return 0, fmt.Errorf("testlab: bridge port %s: no state reported", name)
}

// hostAddr is the address with host part h in the lab's subnet.
func (l *Lab) hostAddr(h int) (netip.Addr, error) {
	b := l.Subnet.Addr().As4()
	v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	v += uint32(h)
	a := netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
	if !l.Subnet.Contains(a) {
		return netip.Addr{}, fmt.Errorf("testlab: host %d does not fit in %s", h, l.Subnet)
	}
	return a, nil
}

// hostAddr6 is the address with host part h in Subnet6.
func hostAddr6(h uint8) netip.Addr {
	b := Subnet6.Addr().As16()
	b[15] = h
	return netip.AddrFrom16(b)
}

// attach creates a namespace named after the lab and name, a veth pair from br0 (bridge end
// portName) into it (node end eth0), the address, and brings everything up.
func (l *Lab) attach(name, portName string, addr netip.Addr) (*Node, error) {
	n := &Node{
		Name:     name,
		NSName:   l.Name + "-" + name,
		Iface:    "eth0",
		Addr:     addr,
		Prefix:   netip.PrefixFrom(addr, l.Subnet.Bits()),
		Addr6:    hostAddr6(addr.As4()[3] - l.Subnet.Addr().As4()[3]),
		lab:      l,
		portName: portName,
	}
	var err error
	n.ns, err = labns.Create(n.NSName)
	if err != nil {
		return nil, err
	}
	// Registered before anything else can fail, so that Close removes the namespace.
	l.mu.Lock()
	l.hosts = append(l.hosts, n)
	l.mu.Unlock()

	n.handle, err = netlink.NewHandleAt(n.ns)
	if err != nil {
		return nil, fmt.Errorf("testlab: netlink in %s: %w", n.NSName, err)
	}
	if n.ipv6, err = disableDAD(n.ns); err != nil { // before eth0 exists: it takes the default
		return nil, err
	}
	if err := linkUp(n.handle, "lo"); err != nil {
		return nil, err
	}
	if err := l.plug(n); err != nil {
		return nil, err
	}
	return n, nil
}

// plug creates the node's veth pair (bridge end n.portName in br0, node end n.Iface), gives
// the node end its address and brings both ends up.
func (l *Lab) plug(n *Node) error {
	portName := n.portName
	veth := &netlink.Veth{
		LinkAttrs:     netlink.LinkAttrs{Name: portName},
		PeerName:      n.Iface,
		PeerNamespace: netlink.NsFd(int(n.ns)),
	}
	if err := l.bridge.LinkAdd(veth); err != nil {
		return fmt.Errorf("testlab: add veth %s<->%s/%s: %w", portName, n.NSName, n.Iface, err)
	}
	port, err := l.bridge.LinkByName(portName)
	if err != nil {
		return fmt.Errorf("testlab: veth %s: %w", portName, err)
	}
	if err := l.bridge.LinkSetMasterByIndex(port, l.brIndex); err != nil {
		return fmt.Errorf("testlab: attach %s to br0: %w", portName, err)
	}
	if err := l.bridge.LinkSetUp(port); err != nil {
		return fmt.Errorf("testlab: %s up: %w", portName, err)
	}
	eth, err := n.handle.LinkByName(n.Iface)
	if err != nil {
		return fmt.Errorf("testlab: %s in %s: %w", n.Iface, n.NSName, err)
	}
	if err := n.handle.AddrAdd(eth, &netlink.Addr{IPNet: ipNet(n.Prefix)}); err != nil {
		return fmt.Errorf("testlab: address %s on %s/%s: %w", n.Prefix, n.NSName, n.Iface, err)
	}
	if p6 := netip.PrefixFrom(n.Addr6, Subnet6.Bits()); n.ipv6 {
		if err := n.handle.AddrAdd(eth, &netlink.Addr{IPNet: ipNet(p6), Flags: unix.IFA_F_NODAD}); err != nil {
			return fmt.Errorf("testlab: address %s on %s/%s: %w", p6, n.NSName, n.Iface, err)
		}
	}
	if err := n.handle.LinkSetUp(eth); err != nil {
		return fmt.Errorf("testlab: %s/%s up: %w", n.NSName, n.Iface, err)
	}
	return nil
}

// AddHost adds an extra host on the bridge (for example the berofos simulator) with the next
// free address from .201 up. name must be short and unique in the lab (letters and digits).
func (l *Lab) AddHost(name string) (*Node, error) {
	if name == "" || len(name) > 12 || strings.ContainsAny(name, "/- \t") {
		return nil, fmt.Errorf("testlab: host name %q: want 1..12 characters without '/', '-' or spaces", name)
	}
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil, errors.New("testlab: lab closed")
	}
	extra := len(l.hosts) - len(l.nodes)
	for _, h := range l.hosts {
		if h.Name == name {
			l.mu.Unlock()
			return nil, fmt.Errorf("testlab: host %q exists", name)
		}
	}
	l.mu.Unlock()
	addr, err := l.hostAddr(201 + extra)
	if err != nil {
		return nil, err
	}
	n, err := l.attach(name, fmt.Sprintf("h%d", extra+1), addr)
	if err != nil {
		return nil, err
	}
	if err := n.waitCarrier(l.ctx); err != nil {
		return nil, err
	}
	return n, nil
}

// Node returns node i, counted from 1 as in its name ("node1" is Node(1)); nil if none.
func (l *Lab) Node(i int) *Node {
	if i < 1 || i > len(l.nodes) {
		return nil
	}
	return l.nodes[i-1]
}

// Nodes returns the redundancy nodes (not the extra hosts), in order.
func (l *Lab) Nodes() []*Node { return append([]*Node(nil), l.nodes...) }

// Close stops every process started through the lab (SIGKILL to its process group), stops the
// sniffers and watchers, and removes every namespace (and with them every link) and the
// temporary directory. It is safe to call more than once and after a failed New.
func (l *Lab) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	procs := l.procs
	hosts := l.hosts
	l.mu.Unlock()

	l.cancel()
	var errs []error
	for _, p := range procs {
		p.kill()
	}
	for _, p := range procs {
		select {
		case <-p.done:
		case <-time.After(5 * time.Second):
			errs = append(errs, fmt.Errorf("testlab: %s did not exit after SIGKILL", p.Name))
		}
	}
	for _, n := range hosts {
		if n.ns.IsOpen() {
			if err := n.killAll(5 * time.Second); err != nil {
				errs = append(errs, err)
			}
		}
		if n.handle != nil {
			n.handle.Close()
		}
		if n.ns.IsOpen() {
			n.ns.Close()
		}
		if err := labns.Remove(n.NSName); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, fmt.Errorf("testlab: remove namespace %s: %w", n.NSName, err))
		}
	}
	if l.bridge != nil {
		l.bridge.Close()
	}
	if l.bridgeNS.IsOpen() {
		l.bridgeNS.Close()
		if err := labns.Remove(l.Name + "-br"); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, fmt.Errorf("testlab: remove namespace %s-br: %w", l.Name, err))
		}
	}
	if l.Dir != "" {
		if err := os.RemoveAll(l.Dir); err != nil {
			errs = append(errs, fmt.Errorf("testlab: %w", err))
		}
	}
	return errors.Join(errs...)
}

// Namespaces lists the names of the namespaces of this lab that exist now under /run/netns.
func (l *Lab) Namespaces() ([]string, error) {
	ents, err := os.ReadDir(netnsDir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	var out []string
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), l.Name+"-") {
			out = append(out, e.Name())
		}
	}
	return out, nil
}

// removeStale deletes namespaces "<prefix>-<pid>-..." whose creating process no longer runs:
// leftovers of a lab whose process was killed before it could clean up.
func removeStale(prefix string) {
	ents, err := os.ReadDir(netnsDir)
	if err != nil {
		return
	}
	for _, e := range ents {
		rest, ok := strings.CutPrefix(e.Name(), prefix+"-")
		if !ok {
			continue
		}
		pidStr, _, ok := strings.Cut(rest, "-")
		pid, err := strconv.Atoi(pidStr)
		if !ok || err != nil || pid <= 0 {
			continue
		}
		if _, err := os.Stat(filepath.Join("/proc", pidStr)); err == nil {
			continue
		}
		labns.Remove(e.Name())
	}
}

func linkUp(h *netlink.Handle, name string) error {
	l, err := h.LinkByName(name)
	if err != nil {
		return fmt.Errorf("testlab: link %s: %w", name, err)
	}
	if err := h.LinkSetUp(l); err != nil {
		return fmt.Errorf("testlab: link %s up: %w", name, err)
	}
	return nil
}

func ipNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

// Lab returns the lab the node belongs to.
func (n *Node) Lab() *Lab { return n.lab }

// Do runs fn on a locked OS thread inside the node's namespace. Sockets fn creates belong to
// the node; goroutines fn starts do not run in it.
func (n *Node) Do(fn func() error) error { return labns.Do(n.ns, fn) }

// Start starts cmd inside the node's namespace (the child inherits the namespace of the
// thread that forks it). The caller owns cmd; prefer StartProcess, which the lab tracks.
func (n *Node) Start(cmd *exec.Cmd) error {
	return n.Do(cmd.Start)
}

// DialContext connects from inside the node's namespace.
func (n *Node) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	var c net.Conn
	err := n.Do(func() error {
		var err error
		c, err = (&net.Dialer{}).DialContext(ctx, network, address)
		return err
	})
	return c, err
}

// Listen opens a stream listener inside the node's namespace.
func (n *Node) Listen(network, address string) (net.Listener, error) {
	var ln net.Listener
	err := n.Do(func() error {
		var err error
		ln, err = net.Listen(network, address)
		return err
	})
	return ln, err
}

// ListenPacket opens a packet socket (for example "udp4") inside the node's namespace.
func (n *Node) ListenPacket(network, address string) (net.PacketConn, error) {
	var pc net.PacketConn
	err := n.Do(func() error {
		var err error
		pc, err = net.ListenPacket(network, address)
		return err
	})
	return pc, err
}

// HTTPClient returns a client whose connections are made inside the node's namespace, so
// http://127.0.0.1:7400/ reaches the daemon running in that node.
func (n *Node) HTTPClient() *http.Client {
	return &http.Client{
		Timeout: 5 * time.Second,
		Transport: &http.Transport{
			DialContext:       n.DialContext,
			DisableKeepAlives: true,
		},
	}
}

// CutLink sets the bridge end of the node's veth down: the node loses carrier, as when its
// cable is pulled. RestoreLink undoes it.
func (n *Node) CutLink() error { return n.setPort(false) }

// RestoreLink sets the bridge end of the node's veth up again and waits until the node's eth0
// has carrier.
func (n *Node) RestoreLink() error {
	if err := n.setPort(true); err != nil {
		return err
	}
	return n.waitCarrier(n.lab.ctx)
}

// Sysctl reads a /proc/sys value (path relative to /proc/sys, e.g.
// "net/ipv4/conf/eth0/arp_ignore") in the node's network namespace.
func (n *Node) Sysctl(path string) (string, error) {
	var b []byte
	err := n.Do(func() (err error) {
		b, err = os.ReadFile(filepath.Join("/proc/sys", path))
		return err
	})
	if err != nil {
		return "", fmt.Errorf("testlab: %s: sysctl %s: %w", n.Name, path, err)
	}
	return strings.TrimSpace(string(b)), nil
}

// DeleteLink deletes the node's eth0, and with it the veth pair and its address: what a
// driver unload or a VLAN removed by the network configuration does to a daemon's interface.
func (n *Node) DeleteLink() error {
	eth, err := n.handle.LinkByName(n.Iface)
	if err != nil {
		return fmt.Errorf("testlab: %s/%s: %w", n.Name, n.Iface, err)
	}
	if err := n.handle.LinkDel(eth); err != nil {
		return fmt.Errorf("testlab: deleting %s/%s: %w", n.Name, n.Iface, err)
	}
	return nil
}

// RecreateLink makes the node's eth0 again after DeleteLink (same names and address, a new
// interface index) and waits until it has carrier and the bridge forwards from its port.
func (n *Node) RecreateLink() error {
	if err := n.lab.plug(n); err != nil {
		return err
	}
	return n.waitCarrier(n.lab.ctx)
}

func (n *Node) setPort(up bool) error {
	port, err := n.lab.bridge.LinkByName(n.portName)
	if err != nil {
		return fmt.Errorf("testlab: port %s of %s: %w", n.portName, n.Name, err)
	}
	if up {
		err = n.lab.bridge.LinkSetUp(port)
	} else {
		err = n.lab.bridge.LinkSetDown(port)
	}
	if err != nil {
		return fmt.Errorf("testlab: set port %s of %s up=%t: %w", n.portName, n.Name, up, err)
	}
	return nil
}

// Addrs lists the IPv4 and IPv6 addresses in the node's namespace now, on every link (a
// virtual IP may sit on a macvlan in virtual MAC mode).
func (n *Node) Addrs() ([]netip.Prefix, error) {
	as, err := n.handle.AddrList(nil, netlink.FAMILY_ALL)
	if err != nil {
		return nil, fmt.Errorf("testlab: addresses of %s: %w", n.Name, err)
	}
	out := make([]netip.Prefix, 0, len(as))
	for _, a := range as {
		if p, ok := prefixOf(a.IPNet); ok {
			out = append(out, p)
		}
	}
	return out, nil
}

// MAC is the hardware address of the node's eth0.
func (n *Node) MAC() (net.HardwareAddr, error) {
	eth, err := n.handle.LinkByName(n.Iface)
	if err != nil {
		return nil, fmt.Errorf("testlab: %s/%s: %w", n.Name, n.Iface, err)
	}
	return eth.Attrs().HardwareAddr, nil
}

// HasAddr reports whether addr is in the node's namespace now (on any link).
func (n *Node) HasAddr(addr netip.Addr) (bool, error) {
	ps, err := n.Addrs()
	if err != nil {
		return false, err
	}
	for _, p := range ps {
		if p.Addr() == addr {
			return true, nil
		}
	}
	return false, nil
}

// RemoveAddr deletes p from the node's eth0 if it is there (for example a virtual IP left by a
// process killed with SIGKILL, standing in for a host that died).
func (n *Node) RemoveAddr(p netip.Prefix) error {
	eth, err := n.handle.LinkByName(n.Iface)
	if err != nil {
		return fmt.Errorf("testlab: %s/%s: %w", n.Name, n.Iface, err)
	}
	err = n.handle.AddrDel(eth, &netlink.Addr{IPNet: ipNet(p)})
	if err != nil && !errors.Is(err, os.ErrNotExist) && !strings.Contains(err.Error(), "cannot assign") {
		return fmt.Errorf("testlab: remove %s from %s: %w", p, n.Name, err)
	}
	return nil
}

// Holders lists the nodes (not extra hosts) that have addr on eth0 now.
func (l *Lab) Holders(addr netip.Addr) ([]*Node, error) {
	var out []*Node
	for _, n := range l.nodes {
		ok, err := n.HasAddr(addr)
		if err != nil {
			return nil, err
		}
		if ok {
			out = append(out, n)
		}
	}
	return out, nil
}

func prefixOf(n *net.IPNet) (netip.Prefix, bool) {
	if n == nil {
		return netip.Prefix{}, false
	}
	a, ok := netip.AddrFromSlice(n.IP)
	if !ok {
		return netip.Prefix{}, false
	}
	ones, _ := n.Mask.Size()
	return netip.PrefixFrom(a.Unmap(), ones), true
}

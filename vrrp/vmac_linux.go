package vrrp

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// VirtualMAC returns the RFC 3768 section 7.3 virtual router MAC address 00-00-5E-00-01-{VRID}.
func VirtualMAC(vrid uint8) net.HardwareAddr {
	return net.HardwareAddr{0x00, 0x00, 0x5e, 0x00, 0x01, vrid}
}

// VirtualMAC6 returns the RFC 9568 section 7.3 virtual router MAC address of an IPv6 virtual
// router, 00-00-5E-00-02-{VRID}.
func VirtualMAC6(vrid uint8) net.HardwareAddr {
	return net.HardwareAddr{0x00, 0x00, 0x5e, 0x00, 0x02, vrid}
}

// vmacName is the name of the macvlan carrying a virtual router's MAC address, as keepalived
// names it. It identifies the link as ours when a crashed run left it behind.
func vmacName(vrid uint8) string { return fmt.Sprintf("vrrp.%d", vrid) }

// vmacName6 is vmacName for an IPv6 group: IPv6 VRIDs are a space of their own (RFC 9568
// section 7.3 gives an IPv4 and an IPv6 group of the same VRID different MACs), so the two
// may run side by side on one interface.
func vmacName6(vrid uint8) string { return fmt.Sprintf("vrrp6.%d", vrid) }

// vmacLink is the bridge-mode macvlan of virtual-MAC mode (RFC 3768 sections 7.3 and 8.2). The
// Master's adverts, gratuitous ARPs and ARP replies for the virtual addresses leave from it, so
// the segment sees the virtual MAC and a takeover needs no ARP cache change at all.
//
// The link stays up for the Router's whole life but carries addresses only while Master, and
// answers ARP only for its own addresses (arp_ignore=1), so a Backup never answers for a
// virtual address. For an IPv4 group its IPv6 is disabled: every node of the group has a link
// with the same MAC, hence the same EUI-64 link-local address, and each would fail duplicate
// address detection and send MLD reports from the shared MAC.
//
// On the parent of an IPv4 group, arp_ignore=1 stops the physical MAC from answering ARP for the virtual
// addresses (which live on the macvlan) and arp_announce=2 stops the host from using a virtual
// address as the source of its own ARP requests, which would teach the segment the physical
// MAC for it. Close deletes the link and restores the parent's values. The values from before
// are recorded in the StateDir (sysctlJournal) before they change, so that the next start puts
// them back after a crash.
//
// For an IPv6 group the macvlan carries 00-00-5E-00-02-{VRID} and IPv6 stays on, but it
// generates no address of its own (addr_gen_mode 1: the shared MAC would give every node the
// same EUI-64 link-local address), runs no duplicate address detection and ignores router
// advertisements (no SLAAC address from the shared MAC either). It is given no link-local
// address either: the adverts leave from it with the parent's link-local address as source
// (RFC 9568 section 5.1.2.1; the raw socket sends with IPV6_FREEBIND), and the Neighbor
// Advertisements are built by hand. So a Backup's macvlan holds no address at all and is in
// no solicited-node group, and its egress is closed besides (vmacGate): a Backup sends no
// frame from the virtual MAC, not at start-up, not at an MLD query, not when it leaves
// Master; a learning switch keeps the virtual MAC at the Master's port. The node's own
// link-local address stays at its own MAC, answered by the parent only. Linux answers a
// Neighbor Solicitation only on the interface holding the target, so the parent never
// answers for a virtual address on the macvlan.
type vmacLink struct {
	ipv6    bool      // an IPv6 group's
	gate    *vmacGate // an IPv6 group's; nil for IPv4
	h       *netlink.Handle
	link    netlink.Link
	ifi     *net.Interface
	log     *slog.Logger
	journal *sysctlJournal // nil without a StateDir
	restore []sysctlRestore
}

type sysctlValue struct{ path, value string }

// sysctlRestore puts back a value through a file opened in the right namespace.
type sysctlRestore struct {
	f     *os.File
	path  string // relative to /proc/sys: the journal's key
	value string
}

// sysctlRoot is /proc/sys; the net subtree there is the calling thread's network namespace.
const sysctlRoot = "/proc/sys"

// setupVMAC creates the macvlan on parent, replacing a leftover from a crashed run (with its
// addresses: only this daemon puts addresses on it). A link of that name that is not such a
// leftover is someone else's and makes setup fail. (keepalived's use_vmac link for the same
// VRID on the same parent looks exactly like a leftover: the two must not share a VRID on one
// segment anyway.)
//
// An IPv6 group's macvlan is made with its egress closed (vmacGate), before it is up.
func setupVMAC(h *netlink.Handle, parent netlink.Link, vrid uint8, ipv6 bool, j *sysctlJournal, log *slog.Logger) (_ *vmacLink, err error) {
	name, mac := vmacName(vrid), VirtualMAC(vrid)
	if ipv6 {
		name, mac = vmacName6(vrid), VirtualMAC6(vrid)
	}
	if err := deleteLeftoverVMAC(h, parent, vrid, ipv6, true, log); err != nil {
		return nil, err
	}

	mv := &netlink.Macvlan{
		LinkAttrs: netlink.LinkAttrs{Name: name, ParentIndex: parent.Attrs().Index, HardwareAddr: mac},
		Mode:      netlink.MACVLAN_MODE_BRIDGE,
	}
	if err := h.LinkAdd(mv); err != nil {
		return nil, fmt.Errorf("vrrp: virtual MAC: creating macvlan %s on %s: %w", name, parent.Attrs().Name, err)
	}
	v := &vmacLink{h: h, log: log, journal: j, ipv6: ipv6}
	defer func() {
		if err != nil {
			v.Close()
		}
	}()
	link, err := h.LinkByName(name)
	if err != nil {
		h.LinkDel(mv)
		return nil, fmt.Errorf("vrrp: virtual MAC: reading back %s: %w", name, err)
	}
	v.link = link

	// The macvlan's own settings die with it; nothing to restore.
	for _, s := range vmacSysctls(name, ipv6) {
		if err := writeSysctl(s); err != nil {
			if !ipv6 && strings.HasPrefix(s.path, "net/ipv6/") && errors.Is(err, os.ErrNotExist) {
				continue // kernel without IPv6
			}
			return nil, fmt.Errorf("vrrp: virtual MAC: %w", err)
		}
	}
	pname := parent.Attrs().Name
	var parentSysctls []sysctlValue
	if !ipv6 {
		parentSysctls = []sysctlValue{
			{filepath.Join("net/ipv4/conf", pname, "arp_ignore"), "1"},
			{filepath.Join("net/ipv4/conf", pname, "arp_announce"), "2"},
		}
	}
	for _, s := range parentSysctls {
		if err := v.setParent(s); err != nil {
			return nil, fmt.Errorf("vrrp: virtual MAC: %w", err)
		}
	}
	if ipv6 {
		g, err := newVMACGate(h, link)
		if err != nil {
			// A kernel without clsact or cls_bpf: virtual-MAC mode works, but a Backup's
			// kernel may send MLD reports from the virtual MAC (see vmacGate).
			log.Warn("cannot close the virtual-MAC link's egress while Backup; a Backup may send MLD reports from the virtual MAC", "link", name, "err", err)
		}
		v.gate = g
	}
	if err := h.LinkSetUp(link); err != nil {
		return nil, fmt.Errorf("vrrp: virtual MAC: setting %s up: %w", name, err)
	}
	a := link.Attrs()
	v.ifi = &net.Interface{Index: a.Index, MTU: a.MTU, Name: a.Name, HardwareAddr: mac, Flags: net.FlagUp | net.FlagBroadcast | net.FlagMulticast}
	log.Info("virtual-MAC link ready", "link", name, "parent", pname, "mac", mac.String())
	return v, nil
}

// setParent sets one of the parent's settings, recording its value from before in the
// journal first and keeping the file open to restore it.
func (v *vmacLink) setParent(s sysctlValue) error {
	f, old, err := readSysctl(s.path)
	if err != nil {
		return err
	}
	if old == s.value {
		f.Close()
		return nil
	}
	v.journal.note(s.path, old) // before the change: a crash right after it is covered
	if _, err := f.WriteAt([]byte(s.value+"\n"), 0); err != nil {
		f.Close()
		v.journal.forget(s.path)
		return fmt.Errorf("setting %s to %s: %w", f.Name(), s.value, err)
	}
	v.restore = append(v.restore, sysctlRestore{f, s.path, old})
	return nil
}

// deleteLeftoverVMAC deletes the macvlan a crashed run in virtual-MAC mode left on parent, with
// the virtual addresses on it. Dial calls it in either mode: a node restarted without
// virtual-MAC mode would otherwise keep answering for the virtual addresses from the leftover
// (ARP replies from the virtual MAC) while it is Backup. A link of that name that is not such
// a leftover is someone else's: an error when strict (virtual-MAC mode needs the name), left
// alone with a warning otherwise.
func deleteLeftoverVMAC(h *netlink.Handle, parent netlink.Link, vrid uint8, ipv6, strict bool, log *slog.Logger) error {
	name, mac := vmacName(vrid), VirtualMAC(vrid)
	if ipv6 {
		name, mac = vmacName6(vrid), VirtualMAC6(vrid)
	}
	old, err := h.LinkByName(name)
	if nf := (netlink.LinkNotFoundError{}); errors.As(err, &nf) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("vrrp: virtual MAC: looking up %s: %w", name, err)
	}
	mv, ok := old.(*netlink.Macvlan)
	if !ok || mv.ParentIndex != parent.Attrs().Index || !bytes.Equal(mv.HardwareAddr, mac) {
		if !strict {
			log.Warn("a link has the virtual-MAC link's name but is not one; leaving it alone", "link", name)
			return nil
		}
		return fmt.Errorf("vrrp: virtual MAC: link %s exists and is not a macvlan of %s with MAC %s; refusing to touch it",
			name, parent.Attrs().Name, mac)
	}
	if err := h.LinkDel(old); err != nil {
		return fmt.Errorf("vrrp: virtual MAC: deleting leftover %s: %w", name, err)
	}
	log.Info("deleted virtual-MAC link left by a previous run", "link", name)
	return nil
}

// vmacSysctls are the macvlan's own settings (see vmacLink), set before it is up: an IPv6
// link-local address generated at link-up could not be taken back before it was announced.
func vmacSysctls(name string, ipv6 bool) []sysctlValue {
	v4 := []sysctlValue{
		{filepath.Join("net/ipv4/conf", name, "arp_ignore"), "1"},
		{filepath.Join("net/ipv4/conf", name, "arp_announce"), "2"},
		// Traffic to a virtual address arrives on the macvlan and its replies leave by the
		// parent's route; strict reverse-path filtering on the macvlan would drop it.
		{filepath.Join("net/ipv4/conf", name, "rp_filter"), "0"},
	}
	if !ipv6 {
		return append([]sysctlValue{{filepath.Join("net/ipv6/conf", name, "disable_ipv6"), "1"}}, v4...)
	}
	v6 := func(key, value string) sysctlValue {
		return sysctlValue{filepath.Join("net/ipv6/conf", name, key), value}
	}
	return append(v4,
		v6("disable_ipv6", "0"),
		v6("addr_gen_mode", "1"), // IN6_ADDR_GEN_MODE_NONE
		v6("accept_dad", "0"),
		v6("accept_ra", "0"),
		v6("autoconf", "0"),
	)
}

// Close deletes the macvlan (and with it any address still on it) and restores the parent's
// ARP settings, forgetting each in the journal once it is back.
func (v *vmacLink) Close() error {
	var errs []error
	if v.gate != nil {
		v.gate.Close()
		v.gate = nil
	}
	if v.link != nil {
		if err := v.h.LinkDel(v.link); err != nil {
			if !errors.Is(err, unix.ENODEV) {
				errs = append(errs, fmt.Errorf("vrrp: virtual MAC: deleting %s: %w", v.link.Attrs().Name, err))
			}
		}
		v.link = nil
	}
	for _, r := range v.restore {
		_, err := r.f.WriteAt([]byte(r.value+"\n"), 0)
		switch {
		case errors.Is(err, unix.ENODEV), errors.Is(err, os.ErrNotExist):
			v.journal.forget(r.path) // the parent is gone, and its settings with it
		case err != nil:
			// Kept in the journal: the next start tries again.
			errs = append(errs, fmt.Errorf("vrrp: virtual MAC: restoring %s to %s: %w", r.f.Name(), r.value, err))
		default:
			v.journal.forget(r.path)
		}
		r.f.Close()
	}
	v.restore = nil
	return errors.Join(errs...)
}

// parentRenamed follows the parent renamed from one name to another: the values to restore
// are reopened under the new name (a /proc/sys/net file opened under the old one fails with
// ENOENT once the device is renamed), and the journal records them so. It runs in Dial's
// network namespace.
func (v *vmacLink) parentRenamed(from, to string) {
	for i, r := range v.restore {
		path := strings.Replace(r.path, "/"+from+"/", "/"+to+"/", 1)
		f, _, err := readSysctl(path)
		if err != nil {
			v.log.Warn("the renamed parent's setting cannot be restored", "path", path, "err", err)
			continue
		}
		r.f.Close()
		v.journal.forget(r.path)
		v.journal.note(path, r.value)
		v.restore[i] = sysctlRestore{f, path, r.value}
	}
}

// replace takes over n, made on a recreated parent: the old macvlan went with the old parent,
// and so did the sysctls to restore (their files are closed unwritten). Close then deletes n's
// link and restores n's values.
func (v *vmacLink) replace(n *vmacLink) {
	if v.gate != nil {
		v.gate.Close()
	}
	for _, r := range v.restore {
		r.f.Close()
		if !slices.ContainsFunc(n.restore, func(nr sysctlRestore) bool { return nr.path == r.path }) {
			v.journal.forget(r.path) // the new parent already had our value: nothing to restore
		}
	}
	*v = *n
}

// writeSysctl sets a /proc/sys value (path relative to /proc/sys), in the network namespace
// of the calling thread, unless it has that value already.
func writeSysctl(s sysctlValue) error {
	f, old, err := readSysctl(s.path)
	if err != nil {
		return err
	}
	defer f.Close()
	if old == s.value {
		return nil
	}
	if _, err := f.WriteAt([]byte(s.value+"\n"), 0); err != nil {
		return fmt.Errorf("setting %s to %s: %w", f.Name(), s.value, err)
	}
	return nil
}

// readSysctl opens a /proc/sys value (path relative to /proc/sys) for reading and writing and
// returns it with its value now. A /proc/sys/net file belongs to the network namespace of the
// thread that opened it, so a value restored through the open file reaches the right
// namespace from any thread.
func readSysctl(path string) (*os.File, string, error) {
	p := filepath.Join(sysctlRoot, path)
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		return nil, "", fmt.Errorf("opening %s: %w", p, err)
	}
	b := make([]byte, 64)
	n, err := f.ReadAt(b, 0)
	if err != nil && !errors.Is(err, io.EOF) {
		f.Close()
		return nil, "", fmt.Errorf("reading %s: %w", p, err)
	}
	return f, strings.TrimSpace(string(b[:n])), nil
}

package vrrp

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// netlinkAddresser is the production [Addresser]. It installs the virtual addresses on one
// link with RTM_NEWADDR/RTM_DELADDR; each call returns after the kernel's netlink ACK, so a nil
// error means the address is (or is no longer) configured.
//
// Ownership: it removes only addresses it added itself. An address that is on the link when
// it is not ours to add belongs to someone else (an operator, another daemon) and is left
// alone, with a log line. Which addresses are ours is kept in a state file, the record, so that
// after a crash the next start removes what this process left ([netlinkAddresser.removeStale])
// instead of mistaking it for someone else's.
//
// The record names the addresses this addresser has claimed. At start-up, after the stale
// removal, Dial claims every virtual address that is not on the link ([netlinkAddresser.claim])
// and records the claim, fsynced: that is the slow part, done once, when no takeover waits for
// it. A claimed address is ours whether or not it is configured, so Add installs it and Remove
// deletes it without touching the disk: a takeover costs one address dump and one RTM_NEWADDR.
// An address on the link at start-up that the record does not name is foreign and never
// touched. If a foreign address disappears later, Add claims it on the slow path: the record is
// replaced before the netlink request (write-ahead) and fsynced by Flush after the step. If a
// claimed address that Add has not installed shows up on the link anyway (added by hand), Add
// gives the claim up (record replaced) and leaves the address alone. Close gives up the claims
// on what is not installed, so that a clean stop leaves a record of installed addresses only
// (none, after the Router's release).
//
// One narrow case remains: an operator adds a claimed virtual address by hand while this node
// does not hold it (Backup, after redundantd started or released it), and redundantd then
// crashes (no Close) before an Add noticed the address. The record still claims it, so the
// next start removes it as stale, and the hand-made address is gone (the node claims it again
// and installs it when it is Master). No other address is ever removed.
//
// The record is replaced atomically (temporary file, rename), and made durable (fsync of the
// file and its directory) by Flush, which the Router calls once each step is done. On the
// slow path the order is deliberate: addresses do not outlive the kernel, so the record only
// has to survive a crash of this process, which the page cache does; an fsync on the takeover
// path would put a disk flush (milliseconds, far more on a disk busy with voicemail or
// replication) between Master_Down_Timer and the VIP. A record torn by an OS crash in that
// window describes addresses the crash removed, and is ignored at start-up. For the same reason
// the record is best kept on a tmpfs such as /run, whose lifetime is the addresses' own.
//
// The record is bookkeeping for crash recovery, never a condition of redundancy: when it cannot
// be written (a read-only or full StateDir, a StateDir that is not a directory), the claims are
// kept in memory and everything else works as before; Flush returns the error, so that the
// Router reports it (Status.RecordError), and writes the record again at most once per
// recordRetryEvery until it succeeds. While the record is stale on disk, a crash of this
// process can leave virtual addresses behind that the next start does not remove (or remove
// one given up since); the error says so until the record is written.
type netlinkAddresser struct {
	h      *netlink.Handle
	link   netlink.Link
	record string // state file path; empty: no crash recovery
	bootID string
	log    *slog.Logger

	claimed   []netip.Prefix // ours, as the record says, in claim order
	installed []netip.Prefix // claimed and added by us since; a subset of claimed
	file      recordFile

	dirty   bool      // claimed differs from the record on disk: write it again
	failing error     // the last failure to write or flush the record; nil when it is on disk
	lastTry time.Time // of the last retry while failing

	// The link's addresses as Prepare listed them, for the Add that follows within
	// preparedFor; Add uses them once.
	prepared   []netip.Prefix
	preparedAt time.Time
}

// preparedFor is how long the addresses Prepare listed stand in for a fresh listing in Add.
// The Router prepares a takeover less than this before its deadline; an address configured
// by someone else in between is still refused by the kernel (EEXIST), as in the window
// between a listing and the request that Add always had.
const preparedFor = 20 * time.Millisecond

// recordRetryEvery spaces the attempts to write a record that could not be written: often
// enough that a StateDir fixed by the operator is used within seconds, rarely enough that a
// full disk costs nothing measurable.
const recordRetryEvery = time.Second

var _ Addresser = (*netlinkAddresser)(nil)

// addrRecord is the state file's content: the claimed addresses. Interface names the link the
// addresses are claimed on, so that a record is never applied to a different link. BootID is
// the kernel's boot_id: addresses do not survive a reboot, so a record from another boot
// describes nothing that is still configured, and an address found after a reboot is someone
// else's (the distribution's network configuration), never a leftover of ours.
type addrRecord struct {
	Interface string         `json:"interface"`
	Addresses []netip.Prefix `json:"addresses"`
	BootID    string         `json:"boot_id,omitempty"`
}

// bootIDPath is the kernel's random UUID for the current boot.
const bootIDPath = "/proc/sys/kernel/random/boot_id"

func readBootID() string {
	b, err := os.ReadFile(bootIDPath)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// recordPath names the state file of one IPv4 virtual router on one interface.
func recordPath(dir, ifname string, vrid uint8) string {
	if dir == "" {
		return ""
	}
	return filepath.Join(dir, fmt.Sprintf("vrrp-%s-%d.json", ifname, vrid))
}

// recordPath6 names the state file of one IPv6 virtual router on one interface: an IPv4 and
// an IPv6 group may share a VRID (RFC 9568 section 7.3).
func recordPath6(dir, ifname string, vrid uint8) string {
	if dir == "" {
		return ""
	}
	return filepath.Join(dir, fmt.Sprintf("vrrp6-%s-%d.json", ifname, vrid))
}

func newNetlinkAddresser(h *netlink.Handle, link netlink.Link, record string, log *slog.Logger) *netlinkAddresser {
	return &netlinkAddresser{h: h, link: link, record: record, bootID: readBootID(), log: log, file: recordFile{path: record}}
}

// present lists the prefixes configured on the link, IPv4 and IPv6.
func (a *netlinkAddresser) present() ([]netip.Prefix, error) {
	addrs, err := a.h.AddrList(a.link, netlink.FAMILY_ALL)
	if err != nil {
		return nil, fmt.Errorf("vrrp: listing addresses of %s: %w", a.link.Attrs().Name, err)
	}
	out := make([]netip.Prefix, 0, len(addrs))
	for _, ad := range addrs {
		if p, ok := ipNetPrefix(ad.IPNet); ok {
			out = append(out, p)
		}
	}
	return out, nil
}

// claim makes ours every prefix of vips whose address is not on the link, records the claim
// and makes it durable. Dial calls it once, after removeStale; an address that is configured
// now (with any prefix length) is someone else's and is not claimed.
func (a *netlinkAddresser) claim(vips []netip.Prefix) error {
	present, err := a.present()
	if err != nil {
		return err
	}
	var add []netip.Prefix
	for _, v := range vips {
		switch {
		case slices.Contains(a.claimed, v), slices.Contains(add, v):
		case containsAddr(present, v.Addr()):
			a.log.Warn("virtual address already configured and not added by redundantd; leaving it alone",
				"interface", a.link.Attrs().Name, "address", v)
		default:
			add = append(add, v)
		}
	}
	if len(add) == 0 {
		return nil
	}
	a.claimed = append(a.claimed, add...)
	a.saveOrKeep()
	return nil
}

// saveOrKeep saves the record and makes it durable; when that fails, the claims stay in memory
// (see netlinkAddresser), the failure is logged, and Flush retries and reports it.
func (a *netlinkAddresser) saveOrKeep() {
	err := a.save()
	if err == nil {
		err = a.Flush()
	} else {
		a.failing, a.lastTry = err, time.Now()
	}
	if err != nil {
		a.log.Warn("address record not written; keeping it in memory and retrying", "record", a.record, "err", err)
	}
}

// Add installs every prefix in vips that is not on the link yet and is ours or can be made
// ours. An address that is already configured but was not added by us is skipped: it is not
// ours to manage. Installing a claimed prefix writes nothing to disk; only claiming one (a
// foreign address that has gone since start-up) or giving a claim up replaces the record, and
// before the netlink request.
func (a *netlinkAddresser) Add(vips []netip.Prefix) error {
	present, err := a.presentForAdd()
	if err != nil {
		return err
	}
	var todo, claim, unclaim []netip.Prefix
	for _, v := range vips {
		here := containsAddr(present, v.Addr())
		switch {
		case slices.Contains(a.installed, v):
			if !here {
				todo = append(todo, v) // ours, but removed behind our back: put it back
			}
		case here:
			if slices.Contains(a.claimed, v) {
				unclaim = append(unclaim, v) // configured by someone else since we claimed it
			}
			a.log.Warn("virtual address already configured and not added by redundantd; leaving it alone",
				"interface", a.link.Attrs().Name, "address", v)
		case slices.Contains(a.claimed, v):
			todo = append(todo, v)
		default:
			claim = append(claim, v)
			todo = append(todo, v)
		}
	}
	if len(claim) > 0 || len(unclaim) > 0 {
		old := a.claimed
		a.claimed = append(slices.DeleteFunc(slices.Clone(a.claimed), func(p netip.Prefix) bool {
			return slices.Contains(unclaim, p)
		}), claim...)
		if err := a.save(); err != nil {
			// Redundancy comes first: keep the claim in memory and let Flush retry and report.
			// Until the record is written a crash could orphan the new address.
			a.log.Warn("address record not written before claiming an address; keeping it in memory",
				"record", a.record, "err", err, "claimed", claim, "given_up", unclaim, "before", old)
		}
	}
	var errs []error
	for _, v := range todo {
		err := a.h.AddrAdd(a.link, netlinkAddr(v))
		switch {
		case errors.Is(err, unix.EEXIST) && !slices.Contains(a.installed, v):
			// Configured by someone else since the listing: theirs, as above.
			a.giveUp(v)
		case err != nil && !errors.Is(err, unix.EEXIST):
			errs = append(errs, fmt.Errorf("vrrp: adding %s to %s: %w", v, a.link.Attrs().Name, err))
		case !slices.Contains(a.installed, v):
			a.installed = append(a.installed, v)
		}
	}
	if slices.ContainsFunc(todo, func(p netip.Prefix) bool { return p.Addr().Is6() }) {
		// Linux finishes an IPv6 address (the RTM_NEWADDR that tells other processes, the
		// multicast joins) in a work queue item on this CPU, even without DAD; the Router's
		// advert and Neighbor Advertisements would otherwise run first and delay it.
		unix.Syscall(unix.SYS_SCHED_YIELD, 0, 0, 0)
	}
	return errors.Join(errs...)
}

// giveUp drops the claim on v, which someone else configured between the listing of Add (or
// Prepare) and its request, and records that; the address is left alone.
func (a *netlinkAddresser) giveUp(v netip.Prefix) {
	a.log.Warn("virtual address already configured and not added by redundantd; leaving it alone",
		"interface", a.link.Attrs().Name, "address", v)
	if !slices.Contains(a.claimed, v) {
		return
	}
	a.claimed = slices.DeleteFunc(a.claimed, func(p netip.Prefix) bool { return p == v })
	if err := a.save(); err != nil {
		a.log.Warn("address record not written after giving up a claim; keeping it in memory", "record", a.record, "err", err)
	}
}

// Prepare lists the link's addresses for the Add that the Router calls at a takeover deadline
// less than preparedFor from now, so that Add has only the kernel requests left to make (a
// listing is a netlink dump, its round trip and its parsing; the takeover is timed). A failed
// listing is not kept: Add then lists again and reports the error.
func (a *netlinkAddresser) Prepare([]netip.Prefix) {
	present, err := a.present()
	if err != nil {
		a.prepared, a.preparedAt = nil, time.Time{}
		return
	}
	a.prepared, a.preparedAt = present, time.Now()
}

// presentForAdd is the prepared listing when it is recent enough, else a fresh one; either
// way the prepared one is used up.
func (a *netlinkAddresser) presentForAdd() ([]netip.Prefix, error) {
	prepared, at := a.prepared, a.preparedAt
	a.prepared, a.preparedAt = nil, time.Time{}
	if !at.IsZero() && time.Since(at) < preparedFor {
		return prepared, nil
	}
	return a.present()
}

// Remove deletes those prefixes of vips that this addresser installed; any other is left
// alone. An address that is already gone counts as removed. The claims stay, so the record is
// not touched.
func (a *netlinkAddresser) Remove(vips []netip.Prefix) error {
	var errs []error
	for _, v := range vips {
		if !slices.Contains(a.installed, v) {
			continue
		}
		err := a.h.AddrDel(a.link, netlinkAddr(v))
		if err != nil && !errors.Is(err, unix.EADDRNOTAVAIL) && !errors.Is(err, unix.ENODEV) {
			errs = append(errs, fmt.Errorf("vrrp: removing %s from %s: %w", v, a.link.Attrs().Name, err))
			continue
		}
		a.installed = slices.DeleteFunc(a.installed, func(p netip.Prefix) bool { return p == v })
	}
	return errors.Join(errs...)
}

// removeStale removes the addresses a previous run recorded as claimed and that are still
// configured (it crashed or was killed as Master), then clears the record. Recorded addresses
// that are gone are ignored.
// The record may name a link other than the Addresser's (the run before used the other
// virtual-MAC setting); it is honoured only for a link in allowed, and looked up through h.
func (a *netlinkAddresser) removeStale(h *netlink.Handle, allowed []string) error {
	if a.record == "" {
		return nil
	}
	a.file.removeLeftovers()
	b, err := os.ReadFile(a.record)
	if errors.Is(err, os.ErrNotExist) {
		// First start: write an empty record now, so that a StateDir where it cannot be
		// written is reported at start-up rather than at the first takeover.
		a.saveOrKeep()
		return nil
	}
	var rec addrRecord
	if err != nil {
		// An unreadable record (EIO, a directory in its place, a StateDir that is a file):
		// remove nothing on its strength, and replace it.
		a.log.Warn("address record unreadable; removing no address on its strength", "record", a.record, "err", err)
	} else if err := json.Unmarshal(b, &rec); err != nil {
		// Only an OS crash between a rename and its Flush tears the record, and that crash
		// took the addresses with it. Remove nothing: anything on the link now is not ours.
		a.log.Warn("address record unreadable; removing no address on its strength", "record", a.record, "err", err)
		rec = addrRecord{}
	}
	var errs []error
	switch link, err := h.LinkByName(rec.Interface); {
	case len(rec.Addresses) == 0:
	case rec.BootID != a.bootID:
		a.log.Info("address record is from an earlier boot; its addresses are long gone",
			"record", a.record, "addresses", rec.Addresses)
	case !slices.Contains(allowed, rec.Interface):
		a.log.Warn("address record names another interface; leaving its addresses alone",
			"record", a.record, "record_interface", rec.Interface, "addresses", rec.Addresses)
	case err != nil:
		// The link is gone (a virtual-MAC macvlan deleted with its addresses, or a vanished
		// interface): nothing left to remove.
		a.log.Info("link of recorded addresses is gone", "link", rec.Interface, "err", err)
	default:
		stale := &netlinkAddresser{h: h, link: link, log: a.log}
		present, err := stale.present()
		if err != nil {
			return err
		}
		for _, v := range rec.Addresses {
			if !slices.Contains(present, v) {
				continue
			}
			if err := h.AddrDel(link, netlinkAddr(v)); err != nil && !errors.Is(err, unix.EADDRNOTAVAIL) {
				errs = append(errs, fmt.Errorf("vrrp: removing stale %s from %s: %w", v, rec.Interface, err))
				continue
			}
			a.log.Info("removed virtual address left by a previous run", "link", rec.Interface, "address", v)
		}
	}
	if len(errs) > 0 {
		return errors.Join(errs...) // keep the record, so that the next start retries
	}
	a.saveOrKeep()
	return nil
}

// save replaces the record atomically (temporary file, rename): readers, and a restart after
// a crash of this process, see the old or the new record, never a mix. Flush makes it durable.
func (a *netlinkAddresser) save() error {
	if a.record == "" {
		return nil
	}
	a.dirty = true
	if err := a.write(); err != nil {
		return err
	}
	a.dirty = false
	return nil
}

// write replaces the record with the claims now.
func (a *netlinkAddresser) write() error {
	rec := addrRecord{Interface: a.link.Attrs().Name, Addresses: a.claimed, BootID: a.bootID}
	if rec.Addresses == nil {
		rec.Addresses = []netip.Prefix{}
	}
	b, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("vrrp: encoding address record: %w", err)
	}
	if err := a.file.replace(append(b, '\n')); err != nil {
		return fmt.Errorf("vrrp: writing address record: %w", err)
	}
	return nil
}

// Flush makes the last record change durable and prepares the next one. The Router calls it
// after each step, off the takeover path; it does nothing when nothing is pending. While the
// record cannot be written it returns the last failure, and tries again (writing the claims
// kept in memory) at most once per recordRetryEvery.
func (a *netlinkAddresser) Flush() error {
	if a.record == "" {
		return nil
	}
	if a.failing != nil && time.Since(a.lastTry) < recordRetryEvery {
		return a.failing
	}
	a.lastTry = time.Now()
	var err error
	if a.dirty {
		// The StateDir may have been missing at start-up (or unmakeable: a file in its way).
		_ = os.MkdirAll(filepath.Dir(a.record), 0o750)
		if err = a.write(); err == nil {
			a.dirty = false
		}
	}
	if err == nil {
		if err = a.file.flush(); err != nil {
			err = fmt.Errorf("vrrp: flushing address record: %w", err)
		}
	}
	if err == nil && a.failing != nil {
		a.log.Info("address record written again", "record", a.record)
	}
	a.failing = err
	return err
}

// Close gives up the claims on the addresses that are not installed, so that the record left
// behind names only addresses this process put on the link (none after the Router's release),
// and releases the record's files. It removes no address.
func (a *netlinkAddresser) Close() error {
	var errs []error
	if len(a.claimed) != len(a.installed) {
		a.claimed = slices.Clone(a.installed)
		if err := a.save(); err != nil {
			errs = append(errs, err)
		} else if err := a.file.sync(); err != nil {
			errs = append(errs, fmt.Errorf("vrrp: flushing address record: %w", err))
		}
	}
	return errors.Join(append(errs, a.file.close())...)
}

// recordFile replaces a small file atomically and fast. A temporary file (the spare) is created
// ahead of time; replace writes into it and renames it over the file, and flush fsyncs the
// result and its directory, closes it and creates the next spare.
//
// The spare is filled with spareLen spaces and fsynced when it is made, so that the record is
// written over blocks already on disk: ext4 then has no delayed allocation to force at the
// rename (auto_da_alloc), which is most of what a replacement costs. JSON allows the trailing
// spaces.
type recordFile struct {
	path    string
	spare   *os.File
	written []*os.File // renamed into place, not yet fsynced
}

func (rf *recordFile) tempPattern() string { return "." + filepath.Base(rf.path) + ".tmp*" }

// spareLen holds a record of about 150 virtual addresses; a longer one is still written, with
// the allocation cost.
const spareLen = 4096

func (rf *recordFile) create() (*os.File, error) {
	return os.CreateTemp(filepath.Dir(rf.path), rf.tempPattern())
}

func (rf *recordFile) createSpare() (*os.File, error) {
	f, err := rf.create()
	if err != nil {
		return nil, err
	}
	_, err = f.Write(bytes.Repeat([]byte{' '}, spareLen))
	if err == nil {
		err = f.Sync()
	}
	if err != nil {
		f.Close()
		os.Remove(f.Name())
		return nil, err
	}
	return f, nil
}

func (rf *recordFile) replace(data []byte) error {
	f := rf.spare
	rf.spare = nil
	if f == nil {
		var err error
		if f, err = rf.create(); err != nil {
			return err
		}
	}
	_, err := f.WriteAt(data, 0)
	if err == nil {
		err = os.Rename(f.Name(), rf.path)
	}
	if err != nil {
		f.Close()
		os.Remove(f.Name())
		return err
	}
	rf.written = append(rf.written, f)
	return nil
}

// flush makes the last replacement durable (sync) and creates the next spare.
func (rf *recordFile) flush() error {
	errs := []error{rf.sync()}
	if rf.spare == nil {
		f, err := rf.createSpare()
		if err != nil {
			errs = append(errs, err)
		} else {
			rf.spare = f
		}
	}
	return errors.Join(errs...)
}

// sync fsyncs the last file renamed into place and the directory, and closes the written files.
func (rf *recordFile) sync() error {
	var errs []error
	if n := len(rf.written); n > 0 {
		// Only the newest is the record now; the others were renamed over.
		if err := rf.written[n-1].Sync(); err != nil {
			errs = append(errs, err)
		}
		if err := fsyncPath(filepath.Dir(rf.path)); err != nil {
			errs = append(errs, err)
		}
		for _, f := range rf.written {
			f.Close()
		}
		rf.written = nil
	}
	return errors.Join(errs...)
}

func (rf *recordFile) close() error {
	for _, f := range rf.written {
		f.Close()
	}
	rf.written = nil
	if rf.spare == nil {
		return nil
	}
	rf.spare.Close()
	err := os.Remove(rf.spare.Name())
	rf.spare = nil
	return err
}

// removeLeftovers deletes temporary files a crashed run left next to the record.
func (rf *recordFile) removeLeftovers() {
	old, _ := filepath.Glob(filepath.Join(filepath.Dir(rf.path), rf.tempPattern()))
	for _, p := range old {
		if rf.spare == nil || p != rf.spare.Name() {
			os.Remove(p)
		}
	}
}

func fsyncPath(p string) error {
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

// netlinkAddr converts a prefix to the netlink form. The broadcast address of an IPv4 one is
// left for netlink to derive, as `ip addr add ... brd +` would. An IPv6 one is added with
// IFA_F_NODAD: without it the kernel runs duplicate address detection first and the address
// is "tentative" for a second or more (RFC 4862 section 5.4), unusable as a source and not
// answered for, right when a takeover needs it; keepalived's Masters went to FAULT on that.
// The group has one Master by the protocol, so there is nobody the detection would find.
func netlinkAddr(p netip.Prefix) *netlink.Addr {
	a := &netlink.Addr{IPNet: &net.IPNet{
		IP:   p.Addr().AsSlice(),
		Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen()),
	}}
	if p.Addr().Is6() {
		a.Flags = unix.IFA_F_NODAD
	}
	return a
}

func ipNetPrefix(n *net.IPNet) (netip.Prefix, bool) {
	if n == nil {
		return netip.Prefix{}, false
	}
	ip, ok := netip.AddrFromSlice(n.IP)
	if !ok {
		return netip.Prefix{}, false
	}
	ip = ip.Unmap()
	ones, _ := n.Mask.Size()
	return netip.PrefixFrom(ip, ones), true
}

func containsAddr(ps []netip.Prefix, ip netip.Addr) bool {
	return slices.ContainsFunc(ps, func(p netip.Prefix) bool { return p.Addr() == ip })
}

package vrrp

import (
	"encoding/json"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

var (
	labA   = netip.MustParsePrefix("192.0.2.1/24")
	labB   = netip.MustParsePrefix("192.0.2.2/24")
	labVIP = netip.MustParsePrefix("192.0.2.100/24")
)

var (
	cmpPrefix    = cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })
	sortPrefixes = cmpopts.SortSlices(func(a, b netip.Prefix) bool { return a.String() < b.String() })
)

func readRecord(t *testing.T, path string) addrRecord {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("reading record: %v", err)
	}
	var rec addrRecord
	if err := json.Unmarshal(b, &rec); err != nil {
		t.Fatalf("record %q: %v", b, err)
	}
	return rec
}

// The Addresser removes only what it added: an address that was configured before it was
// asked to add it survives Add and Remove. An address it adds without a claim made at start-up
// is claimed on the way, and recorded on disk before the kernel is asked; the claim outlives
// Remove and is given up by Close.
func TestAddresserOwnership(t *testing.T) {
	a, b := newTestNS(t), newTestNS(t)
	connect(t, a, "vrt0", labA, b, "vrt1", labB)
	foreign := netip.MustParsePrefix("192.0.2.101/24")
	a.addAddr(t, "vrt0", foreign)

	dir := t.TempDir()
	path := recordPath(dir, "vrt0", 51)
	ad := newNetlinkAddresser(a.h, a.link(t, "vrt0"), path, slog.New(slog.DiscardHandler))
	vips := []netip.Prefix{labVIP, foreign}
	if err := ad.Add(vips); err != nil {
		t.Fatalf("Add: %v", err)
	}
	if !a.hasAddr(t, "vrt0", labVIP) || !a.hasAddr(t, "vrt0", foreign) {
		t.Fatalf("after Add: %v", a.addrs(t, "vrt0"))
	}
	claimed := addrRecord{Interface: "vrt0", Addresses: []netip.Prefix{labVIP}, BootID: readBootID()}
	if diff := cmp.Diff(claimed, readRecord(t, path), cmpPrefix); diff != "" {
		t.Errorf("record after Add (-want +got):\n%s", diff)
	}
	// Adding again is a no-op, not an error.
	if err := ad.Add(vips); err != nil {
		t.Fatalf("second Add: %v", err)
	}

	if err := ad.Remove(vips); err != nil {
		t.Fatalf("Remove: %v", err)
	}
	if a.hasAddr(t, "vrt0", labVIP) {
		t.Errorf("our address %v survived Remove", labVIP)
	}
	if !a.hasAddr(t, "vrt0", foreign) {
		t.Errorf("Remove took away %v, which it had not added", foreign)
	}
	if diff := cmp.Diff(claimed, readRecord(t, path), cmpPrefix); diff != "" {
		t.Errorf("record after Remove (-want +got):\n%s", diff)
	}
	if err := ad.Remove(vips); err != nil {
		t.Errorf("second Remove: %v", err)
	}

	// An address of ours that someone deleted behind our back is put back by the next Add.
	if err := ad.Add(vips); err != nil {
		t.Fatal(err)
	}
	if err := a.h.AddrDel(a.link(t, "vrt0"), netlinkAddr(labVIP)); err != nil {
		t.Fatal(err)
	}
	if err := ad.Add(vips); err != nil || !a.hasAddr(t, "vrt0", labVIP) {
		t.Errorf("re-Add after external delete: %v, addresses %v", err, a.addrs(t, "vrt0"))
	}
	if err := ad.Remove(vips); err != nil {
		t.Fatal(err)
	}
	if err := ad.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if got := readRecord(t, path); got.Interface != "vrt0" || len(got.Addresses) != 0 {
		t.Errorf("record after Close: %+v, want vrt0 with no addresses", got)
	}
	if !a.hasAddr(t, "vrt0", foreign) {
		t.Errorf("Close took away %v", foreign)
	}
}

// recordFileID identifies the record file on disk: every replacement (a rename) changes it.
func recordFileID(t *testing.T, path string) os.FileInfo {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi
}

// The claim made at start-up: the virtual addresses that are not configured are recorded as
// ours, durably, once; Add and Remove of a claimed address then leave the record alone. An
// address configured at start-up is not claimed and never touched; when it disappears, Add
// claims it on the slow path. A claimed address that someone configures by hand (with our
// prefix length or another) before Add installed it is given up, not taken over.
func TestAddresserClaim(t *testing.T) {
	a, b := newTestNS(t), newTestNS(t)
	connect(t, a, "vrt0", labA, b, "vrt1", labB)
	foreign := netip.MustParsePrefix("192.0.2.101/24")
	a.addAddr(t, "vrt0", foreign)

	dir := t.TempDir()
	path := recordPath(dir, "vrt0", 51)
	ad := newNetlinkAddresser(a.h, a.link(t, "vrt0"), path, slog.New(slog.DiscardHandler))
	t.Cleanup(func() { ad.Close() })
	if err := ad.removeStale(a.h, []string{"vrt0"}); err != nil {
		t.Fatal(err)
	}
	vips := []netip.Prefix{labVIP, foreign}
	if err := ad.claim(vips); err != nil {
		t.Fatalf("claim: %v", err)
	}
	want := addrRecord{Interface: "vrt0", Addresses: []netip.Prefix{labVIP}, BootID: readBootID()}
	if diff := cmp.Diff(want, readRecord(t, path), cmpPrefix); diff != "" {
		t.Errorf("record after claim (-want +got):\n%s", diff)
	}
	if len(ad.file.written) != 0 {
		t.Error("the claim is not fsynced when claim returns")
	}
	if !a.hasAddr(t, "vrt0", foreign) || a.hasAddr(t, "vrt0", labVIP) {
		t.Errorf("claim changed the link: %v", a.addrs(t, "vrt0"))
	}

	// Takeover and release of the claimed address: no record replacement.
	before := recordFileID(t, path)
	for i := range 2 {
		if err := ad.Add(vips); err != nil {
			t.Fatalf("Add %d: %v", i, err)
		}
		if !a.hasAddr(t, "vrt0", labVIP) || !a.hasAddr(t, "vrt0", foreign) {
			t.Fatalf("after Add %d: %v", i, a.addrs(t, "vrt0"))
		}
		if err := ad.Remove(vips); err != nil {
			t.Fatalf("Remove %d: %v", i, err)
		}
		if a.hasAddr(t, "vrt0", labVIP) || !a.hasAddr(t, "vrt0", foreign) {
			t.Fatalf("after Remove %d: %v", i, a.addrs(t, "vrt0"))
		}
	}
	if !os.SameFile(before, recordFileID(t, path)) {
		t.Error("Add or Remove of a claimed address replaced the record")
	}

	// Someone configures the claimed address by hand while we are not Master: it is theirs.
	for _, byHand := range []netip.Prefix{labVIP, netip.MustParsePrefix("192.0.2.100/32")} {
		a.addAddr(t, "vrt0", byHand)
		if err := ad.Add(vips); err != nil {
			t.Fatalf("Add over %v configured by hand: %v", byHand, err)
		}
		if diff := cmp.Diff([]netip.Prefix{labA, foreign, byHand}, a.addrs(t, "vrt0"), cmpPrefix, sortPrefixes); diff != "" {
			t.Errorf("Add over %v configured by hand (-want +got):\n%s", byHand, diff)
		}
		if got := readRecord(t, path); len(got.Addresses) != 0 {
			t.Errorf("record with %v configured by hand: %+v, want the claim given up", byHand, got)
		}
		if err := ad.Remove(vips); err != nil {
			t.Fatal(err)
		}
		if !a.hasAddr(t, "vrt0", byHand) {
			t.Errorf("Remove took away %v, configured by hand", byHand)
		}
		// Once it is gone, the address is claimed again by the next Add, on the slow path.
		if err := a.h.AddrDel(a.link(t, "vrt0"), netlinkAddr(byHand)); err != nil {
			t.Fatal(err)
		}
		if err := ad.Add(vips); err != nil || !a.hasAddr(t, "vrt0", labVIP) {
			t.Fatalf("Add after the hand-made %v went: %v, addresses %v", byHand, err, a.addrs(t, "vrt0"))
		}
		if diff := cmp.Diff(want, readRecord(t, path), cmpPrefix); diff != "" {
			t.Errorf("record after claiming %v again (-want +got):\n%s", labVIP, diff)
		}
		if err := ad.Remove(vips); err != nil {
			t.Fatal(err)
		}
	}

	// The foreign address goes away: the next Add claims it, recorded before it is added.
	if err := a.h.AddrDel(a.link(t, "vrt0"), netlinkAddr(foreign)); err != nil {
		t.Fatal(err)
	}
	if err := ad.Add(vips); err != nil {
		t.Fatal(err)
	}
	if !a.hasAddr(t, "vrt0", labVIP) || !a.hasAddr(t, "vrt0", foreign) {
		t.Fatalf("after Add claiming %v: %v", foreign, a.addrs(t, "vrt0"))
	}
	want.Addresses = vips
	if diff := cmp.Diff(want, readRecord(t, path), cmpPrefix); diff != "" {
		t.Errorf("record after claiming %v (-want +got):\n%s", foreign, diff)
	}

	// A crash as Master: the next start removes both (they are recorded), and claims them again.
	ad2 := newNetlinkAddresser(a.h, a.link(t, "vrt0"), path, slog.New(slog.DiscardHandler))
	t.Cleanup(func() { ad2.Close() })
	if err := ad2.removeStale(a.h, []string{"vrt0"}); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]netip.Prefix{labA}, a.addrs(t, "vrt0"), cmpPrefix); diff != "" {
		t.Errorf("addresses after the restart (-want +got):\n%s", diff)
	}
	if err := ad2.claim(vips); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, readRecord(t, path), cmpPrefix); diff != "" {
		t.Errorf("record after the restart's claim (-want +got):\n%s", diff)
	}
}

// At start-up, addresses a crashed run recorded and left configured are removed; recorded
// addresses that are gone, and addresses never recorded, are left as they are.
func TestAddresserRemovesStale(t *testing.T) {
	a, b := newTestNS(t), newTestNS(t)
	connect(t, a, "vrt0", labA, b, "vrt1", labB)
	stale := labVIP
	gone := netip.MustParsePrefix("192.0.2.102/32")
	notOurs := netip.MustParsePrefix("192.0.2.103/24")
	a.addAddr(t, "vrt0", stale)
	a.addAddr(t, "vrt0", notOurs)

	dir := t.TempDir()
	path := recordPath(dir, "vrt0", 51)
	b0, _ := json.Marshal(addrRecord{Interface: "vrt0", Addresses: []netip.Prefix{stale, gone}, BootID: readBootID()})
	if err := os.WriteFile(path, b0, 0o600); err != nil {
		t.Fatal(err)
	}
	ad := newNetlinkAddresser(a.h, a.link(t, "vrt0"), path, slog.New(slog.DiscardHandler))
	if err := ad.removeStale(a.h, []string{"vrt0"}); err != nil {
		t.Fatalf("removeStale: %v", err)
	}
	want := []netip.Prefix{labA, notOurs}
	if diff := cmp.Diff(want, a.addrs(t, "vrt0"), cmpPrefix); diff != "" {
		t.Errorf("addresses after removeStale (-want +got):\n%s", diff)
	}
	if got := readRecord(t, path); got.Interface != "vrt0" || len(got.Addresses) != 0 {
		t.Errorf("record after removeStale: %+v, want vrt0 with no addresses", got)
	}
	// Besides the record, the state dir holds the spare for the next replacement (created
	// ahead of the takeover); Close removes it, and a crashed run's spares go at the next start.
	if ents, _ := os.ReadDir(dir); len(ents) != 2 {
		t.Errorf("state dir holds %v, want the record and one spare", ents)
	}
	if err := ad.Close(); err != nil {
		t.Fatal(err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("state dir after Close holds %v, want only the record", ents)
	}
	leftover := filepath.Join(dir, ".vrrp-vrt0-51.json.tmp123")
	if err := os.WriteFile(leftover, []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	ad2 := newNetlinkAddresser(a.h, a.link(t, "vrt0"), path, slog.New(slog.DiscardHandler))
	defer ad2.Close()
	if err := ad2.removeStale(a.h, []string{"vrt0"}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(leftover); err == nil {
		t.Error("a crashed run's temporary file survived the next start")
	}
}

// A record naming a link this router would never use, written before the last reboot, or torn
// (only an OS crash can tear it, and that crash removed the addresses) is not acted on.
func TestAddresserRecordSafety(t *testing.T) {
	a, b := newTestNS(t), newTestNS(t)
	connect(t, a, "vrt0", labA, b, "vrt1", labB)
	a.addAddr(t, "vrt0", labVIP)
	dir := t.TempDir()
	path := filepath.Join(dir, "record.json")
	ad := newNetlinkAddresser(a.h, a.link(t, "vrt0"), path, slog.New(slog.DiscardHandler))

	for _, tc := range []struct {
		name    string
		rec     addrRecord
		allowed string
	}{
		{"another link", addrRecord{Interface: "vrt0", Addresses: []netip.Prefix{labVIP}, BootID: readBootID()}, "eth9"},
		{"another boot", addrRecord{Interface: "vrt0", Addresses: []netip.Prefix{labVIP}, BootID: "0b0b0b0b-earlier-boot"}, "vrt0"},
	} {
		b0, _ := json.Marshal(tc.rec)
		if err := os.WriteFile(path, b0, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := ad.removeStale(a.h, []string{tc.allowed}); err != nil {
			t.Fatalf("%s: removeStale: %v", tc.name, err)
		}
		if !a.hasAddr(t, "vrt0", labVIP) {
			t.Errorf("%s: removed an address on the strength of the record", tc.name)
		}
	}

	if err := os.WriteFile(path, []byte(`{"interface": "vrt0", "addresses": [`), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := ad.removeStale(a.h, []string{"vrt0"}); err != nil {
		t.Errorf("removeStale with a torn record: %v; want it ignored", err)
	}
	if !a.hasAddr(t, "vrt0", labVIP) {
		t.Error("removed an address on the strength of a torn record")
	}
	if got := readRecord(t, path); got.Interface != "vrt0" || len(got.Addresses) != 0 {
		t.Errorf("record after a torn one: %+v, want a fresh empty record", got)
	}
}

// Prepare lists the link's addresses ahead of a takeover, and the Add that follows uses that
// listing. An address configured by hand in between (with our prefix length) is refused by
// the kernel, and Add then treats it as it treats one it listed: not ours, claim given up,
// never removed by Remove.
func TestAddresserPrepare(t *testing.T) {
	a, b := newTestNS(t), newTestNS(t)
	connect(t, a, "vrt0", labA, b, "vrt1", labB)
	dir := t.TempDir()
	path := recordPath(dir, "vrt0", 51)
	ad := newNetlinkAddresser(a.h, a.link(t, "vrt0"), path, slog.New(slog.DiscardHandler))
	t.Cleanup(func() { ad.Close() })
	vips := []netip.Prefix{labVIP}
	if err := ad.claim(vips); err != nil {
		t.Fatal(err)
	}

	ad.Prepare(vips)
	if err := ad.Add(vips); err != nil || !a.hasAddr(t, "vrt0", labVIP) {
		t.Fatalf("Add after Prepare: %v, addresses %v", err, a.addrs(t, "vrt0"))
	}
	if err := ad.Remove(vips); err != nil || a.hasAddr(t, "vrt0", labVIP) {
		t.Fatalf("Remove: %v, addresses %v", err, a.addrs(t, "vrt0"))
	}

	ad.Prepare(vips)
	a.addAddr(t, "vrt0", labVIP) // by hand, after the listing
	if err := ad.Add(vips); err != nil {
		t.Fatalf("Add over an address configured after Prepare: %v", err)
	}
	if got := readRecord(t, path); len(got.Addresses) != 0 {
		t.Errorf("record: %+v, want the claim given up", got)
	}
	if err := ad.Remove(vips); err != nil {
		t.Fatal(err)
	}
	if !a.hasAddr(t, "vrt0", labVIP) {
		t.Error("Remove took away the address configured by hand after Prepare")
	}
}

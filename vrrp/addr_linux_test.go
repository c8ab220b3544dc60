package vrrp

import (
	"encoding/json"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var (
	labA   = netip.MustParsePrefix("192.0.2.1/24")
	labB   = netip.MustParsePrefix("192.0.2.2/24")
	labVIP = netip.MustParsePrefix("192.0.2.100/24")
)

var cmpPrefix = cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })

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
// asked to add it survives Add and Remove, and every change is recorded on disk before the
// kernel is asked.
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
	if diff := cmp.Diff(addrRecord{Interface: "vrt0", Addresses: []netip.Prefix{labVIP}, BootID: readBootID()}, readRecord(t, path), cmpPrefix); diff != "" {
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
	if got := readRecord(t, path); len(got.Addresses) != 0 {
		t.Errorf("record after Remove: %+v, want no addresses", got)
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

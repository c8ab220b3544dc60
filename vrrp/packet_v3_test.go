package vrrp

import (
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// Pseudo-headers of the keepalived captures (testdata/README.md).
var (
	phKeepalived4   = PseudoHeader{Src: netip.MustParseAddr("192.0.2.1"), Dst: netip.MustParseAddr("224.0.0.18")}
	phKeepalived6a  = PseudoHeader{Src: netip.MustParseAddr("fe80::ecb4:11ff:fe86:84ab"), Dst: netip.MustParseAddr("ff02::12")}
	phKeepalived6b  = PseudoHeader{Src: netip.MustParseAddr("fe80::a8ae:beff:fe13:8616"), Dst: netip.MustParseAddr("ff02::12")}
	keepalivedAddr6 = addrs("fe80::52", "2001:db8::100")
)

// goldenV3Tests are version 3 advertisements, the pseudo-header they were sent with and their
// exact encoding. The keepalived rows are the bytes captured from keepalived 2.2.7 with
// vrrp_version 3 (testdata/README.md); the others were computed by hand, the checksum
// cross-checked with an independent RFC 1071 implementation over the pseudo-header.
var goldenV3Tests = []struct {
	name string
	file string // testdata file holding the same bytes, if captured
	hex  string
	ph   PseudoHeader
	adv  Advertisement
}{
	{
		name: "keepalived IPv4 1 s",
		file: "keepalived/v3-ipv4-1s.hex",
		hex:  "31 33 64 02 0064 4307 c0000264 c0000265",
		ph:   phKeepalived4,
		adv: Advertisement{Version: 3, Type: 1, VRID: 51, Priority: 100, Interval: time.Second,
			Checksum: 0x4307, Addresses: keepalivedAddrs},
	},
	{
		name: "keepalived IPv4 1 s priority 0 on SIGTERM",
		file: "keepalived/v3-ipv4-1s-prio0.hex",
		hex:  "31 33 00 02 0064 a707 c0000264 c0000265",
		ph:   phKeepalived4,
		adv: Advertisement{Version: 3, Type: 1, VRID: 51, Priority: 0, Interval: time.Second,
			Checksum: 0xa707, Addresses: keepalivedAddrs},
	},
	{
		name: "keepalived IPv4 100 ms",
		file: "keepalived/v3-ipv4-100ms.hex",
		hex:  "31 33 64 02 000a 4361 c0000264 c0000265",
		ph:   phKeepalived4,
		adv: Advertisement{Version: 3, Type: 1, VRID: 51, Priority: 100, Interval: 100 * time.Millisecond,
			Checksum: 0x4361, Addresses: keepalivedAddrs},
	},
	{
		name: "keepalived IPv4 100 ms priority 0 on SIGTERM",
		file: "keepalived/v3-ipv4-100ms-prio0.hex",
		hex:  "31 33 00 02 000a a761 c0000264 c0000265",
		ph:   phKeepalived4,
		adv: Advertisement{Version: 3, Type: 1, VRID: 51, Priority: 0, Interval: 100 * time.Millisecond,
			Checksum: 0xa761, Addresses: keepalivedAddrs},
	},
	{
		name: "keepalived IPv6 100 ms",
		file: "keepalived/v3-ipv6-100ms.hex",
		hex:  "31 34 64 02 000a bd1e fe800000000000000000000000000052 20010db8000000000000000000000100",
		ph:   phKeepalived6a,
		adv: Advertisement{Version: 3, Type: 1, VRID: 52, Priority: 100, Interval: 100 * time.Millisecond,
			Checksum: 0xbd1e, Addresses: keepalivedAddr6},
	},
	{
		name: "keepalived IPv6 100 ms priority 0 on SIGTERM",
		file: "keepalived/v3-ipv6-100ms-prio0.hex",
		hex:  "31 34 00 02 000a 211f fe800000000000000000000000000052 20010db8000000000000000000000100",
		ph:   phKeepalived6a,
		adv: Advertisement{Version: 3, Type: 1, VRID: 52, Priority: 0, Interval: 100 * time.Millisecond,
			Checksum: 0x211f, Addresses: keepalivedAddr6},
	},
	{
		name: "keepalived IPv6 1 s",
		file: "keepalived/v3-ipv6-1s.hex",
		hex:  "31 34 64 02 0064 52d2 fe800000000000000000000000000052 20010db8000000000000000000000100",
		ph:   phKeepalived6b,
		adv: Advertisement{Version: 3, Type: 1, VRID: 52, Priority: 100, Interval: time.Second,
			Checksum: 0x52d2, Addresses: keepalivedAddr6},
	},
	{
		name: "keepalived IPv6 1 s priority 0 on SIGTERM",
		file: "keepalived/v3-ipv6-1s-prio0.hex",
		hex:  "31 34 00 02 0064 b6d2 fe800000000000000000000000000052 20010db8000000000000000000000100",
		ph:   phKeepalived6b,
		adv: Advertisement{Version: 3, Type: 1, VRID: 52, Priority: 0, Interval: time.Second,
			Checksum: 0xb6d2, Addresses: keepalivedAddr6},
	},
	{
		name: "IPv6, no address, largest VRID, 10 ms",
		hex:  "31 ff 01 00 0001 cef0",
		ph:   PseudoHeader{Src: netip.MustParseAddr("fe80::1"), Dst: netip.MustParseAddr("ff02::12")},
		adv: Advertisement{Version: 3, Type: 1, VRID: 255, Priority: 1, Interval: 10 * time.Millisecond,
			Checksum: 0xcef0},
	},
	{
		name: "IPv4 unicast peer, 10 ms",
		hex:  "31 07 fe 01 0001 51cd c6336401",
		ph:   PseudoHeader{Src: netip.MustParseAddr("198.51.100.7"), Dst: netip.MustParseAddr("198.51.100.8")},
		adv: Advertisement{Version: 3, Type: 1, VRID: 7, Priority: 254, Interval: 10 * time.Millisecond,
			Checksum: 0x51cd, Addresses: addrs("198.51.100.1")},
	},
	{
		name: "IPv6 largest interval 40.95 s",
		hex:  "31 01 64 01 0fff 2f25 20010db8000000000000000000000001",
		ph:   PseudoHeader{Src: netip.MustParseAddr("fe80::1"), Dst: netip.MustParseAddr("ff02::12")},
		adv: Advertisement{Version: 3, Type: 1, VRID: 1, Priority: 100, Interval: 40950 * time.Millisecond,
			Checksum: 0x2f25, Addresses: addrs("2001:db8::1")},
	},
}

func TestUnmarshalGoldenV3(t *testing.T) {
	for _, tt := range goldenV3Tests {
		t.Run(tt.name, func(t *testing.T) {
			b := mustHex(t, tt.hex)
			var got Advertisement
			if err := got.Unmarshal(b, tt.ph); err != nil {
				t.Fatalf("Unmarshal: %v", err)
			}
			if diff := cmp.Diff(tt.adv, got, cmpAddr); diff != "" {
				t.Errorf("Unmarshal (-want +got):\n%s", diff)
			}
			if !tt.ph.ChecksumValid(b) {
				t.Errorf("PseudoHeader.ChecksumValid = false")
			}
			b[6], b[7] = 0, 0
			if got := tt.ph.Checksum(b); got != tt.adv.Checksum {
				t.Errorf("PseudoHeader.Checksum = %#04x, want %#04x", got, tt.adv.Checksum)
			}
		})
	}
}

func TestMarshalGoldenV3(t *testing.T) {
	for _, tt := range goldenV3Tests {
		t.Run(tt.name, func(t *testing.T) {
			checkMarshal(t, tt.adv, mustHex(t, tt.hex), func(a *Advertisement) ([]byte, error) { return a.Marshal(tt.ph) })
			adv := tt.adv
			if b, err := adv.MarshalBinary(); !errors.Is(err, ErrPseudoHeader) || b != nil {
				t.Errorf("MarshalBinary() = %x, %v; want an error wrapping ErrPseudoHeader", b, err)
			}
		})
	}
}

// The pseudo-header is the whole point of the version 3 checksum: the same bytes from another
// source or to another destination do not verify (the classic interop bug of a v2-style sum).
func TestUnmarshalV3Errors(t *testing.T) {
	good := "31 33 64 02 0064 4307 c0000264 c0000265"
	other4 := PseudoHeader{Src: netip.MustParseAddr("192.0.2.2"), Dst: netip.MustParseAddr("224.0.0.18")}
	mixed := PseudoHeader{Src: netip.MustParseAddr("192.0.2.1"), Dst: netip.MustParseAddr("ff02::12")}
	tests := []struct {
		name string
		hex  string
		ph   PseudoHeader
		want error
	}{
		{"no pseudo-header", good, PseudoHeader{}, ErrPseudoHeader},
		{"no destination", good, PseudoHeader{Src: phKeepalived4.Src}, ErrPseudoHeader},
		{"families differ", good, mixed, ErrPseudoHeader},
		{"another source", good, other4, ErrChecksum},
		{"another destination", good, PseudoHeader{Src: phKeepalived4.Src, Dst: netip.MustParseAddr("192.0.2.2")}, ErrChecksum},
		{"v2-style checksum without pseudo-header", "31 33 64 02 0064 e59b c0000264 c0000265", phKeepalived4, ErrChecksum},
		{"IPv4 message in an IPv6 packet", good, phKeepalived6a, ErrTooShort},
		{"header only", "31 33 64 02 0064 4307", phKeepalived4, ErrTooShort},
		{"too short for the fixed header", "31 33 64 02 0064 43", phKeepalived4, ErrTooShort},
		{"trailing byte", good + "00", phKeepalived4, ErrLength},
		{"v2 auth data after the addresses", good + "0000000000000000", phKeepalived4, ErrLength},
		{"type 2", "32 33 64 02 0064 4207 c0000264 c0000265", phKeepalived4, ErrType},
		{"VRID 0", "31 00 64 02 0064 433a c0000264 c0000265", phKeepalived4, ErrVRID},
		{"interval 0", "31 33 64 02 0000 436b c0000264 c0000265", phKeepalived4, ErrInterval},
		{"interval 0 with reserved bits", "31 33 64 02 f000 536a c0000264 c0000265", phKeepalived4, ErrInterval},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := mustHex(t, tt.hex)
			before := Advertisement{Version: 3, Type: 1, VRID: 9, Interval: time.Second, Addresses: addrs("192.0.2.9")}
			got := before
			err := got.Unmarshal(b, tt.ph)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Unmarshal(% x, %v) = %v, want an error wrapping %v", b, tt.ph, err, tt.want)
			}
			if diff := cmp.Diff(before, got, cmpAddr); diff != "" {
				t.Errorf("a failed Unmarshal changed the advertisement (-want +got):\n%s", diff)
			}
		})
	}
}

// Section 5.2.7: the reserved bits are ignored on receipt and sent as zero.
func TestUnmarshalV3ReservedBits(t *testing.T) {
	// keepalived's 1 s advert with the reserved nibble 0xa and the checksum adjusted.
	b := mustHex(t, "31 33 64 02 a064 a306 c0000264 c0000265")
	var got Advertisement
	if err := got.Unmarshal(b, phKeepalived4); err != nil {
		t.Fatalf("Unmarshal: %v", err)
	}
	if got.Interval != time.Second {
		t.Errorf("Interval = %v, want 1s (reserved bits ignored)", got.Interval)
	}
	out, err := got.Marshal(phKeepalived4)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(readHexFile(t, "testdata/keepalived/v3-ipv4-1s.hex"), out); diff != "" {
		t.Errorf("Marshal (-want +got):\n%s", diff)
	}
}

// A version 2 message does not use the pseudo-header: Unmarshal and Marshal ignore it.
func TestV2IgnoresPseudoHeader(t *testing.T) {
	b := readHexFile(t, "testdata/keepalived/auth-none.hex")
	var a Advertisement
	if err := a.Unmarshal(b, PseudoHeader{Src: netip.MustParseAddr("198.51.100.1"), Dst: netip.MustParseAddr("ff02::12")}); err != nil {
		t.Fatalf("Unmarshal of a v2 message with an unrelated pseudo-header: %v", err)
	}
	out, err := a.Marshal(phKeepalived6a)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(b, out); diff != "" {
		t.Errorf("Marshal (-want +got):\n%s", diff)
	}
}

func TestValidateV3(t *testing.T) {
	base := func() Advertisement {
		return Advertisement{Version: 3, Type: 1, VRID: 1, Priority: 100, Interval: time.Second,
			Addresses: addrs("192.0.2.1")}
	}
	tests := []struct {
		name   string
		modify func(*Advertisement)
		want   error // nil: valid
	}{
		{"valid", func(*Advertisement) {}, nil},
		{"10 ms", func(a *Advertisement) { a.Interval = 10 * time.Millisecond }, nil},
		{"40.95 s", func(a *Advertisement) { a.Interval = 40950 * time.Millisecond }, nil},
		{"1.23 s", func(a *Advertisement) { a.Interval = 1230 * time.Millisecond }, nil},
		{"no address", func(a *Advertisement) { a.Addresses = nil }, nil},
		{"IPv6", func(a *Advertisement) { a.Addresses = addrs("fe80::1", "2001:db8::1") }, nil},
		{"interval 0", func(a *Advertisement) { a.Interval = 0 }, ErrInterval},
		{"interval 5 ms", func(a *Advertisement) { a.Interval = 5 * time.Millisecond }, ErrInterval},
		{"interval 15 ms", func(a *Advertisement) { a.Interval = 15 * time.Millisecond }, ErrInterval},
		{"interval 40.96 s", func(a *Advertisement) { a.Interval = 40960 * time.Millisecond }, ErrInterval},
		{"interval negative", func(a *Advertisement) { a.Interval = -time.Second }, ErrInterval},
		{"auth type simple", func(a *Advertisement) { a.AuthType = AuthSimple }, ErrAuthType},
		{"auth data", func(a *Advertisement) { a.AuthData[0] = 'x' }, ErrAuthType},
		{"mixed families", func(a *Advertisement) { a.Addresses = addrs("192.0.2.1", "2001:db8::1") }, ErrAddress},
		{"IPv4-mapped IPv6", func(a *Advertisement) { a.Addresses = addrs("::ffff:192.0.2.1") }, ErrAddress},
		{"zero address", func(a *Advertisement) { a.Addresses = []netip.Addr{{}} }, ErrAddress},
		{"VRID 0", func(a *Advertisement) { a.VRID = 0 }, ErrVRID},
		{"type 2", func(a *Advertisement) { a.Type = 2 }, ErrType},
	}
	ph4 := PseudoHeader{Src: netip.MustParseAddr("192.0.2.10"), Dst: netip.MustParseAddr("224.0.0.18")}
	ph6 := PseudoHeader{Src: netip.MustParseAddr("fe80::10"), Dst: netip.MustParseAddr("ff02::12")}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := base()
			tt.modify(&a)
			ph := ph4
			if len(a.Addresses) > 0 && a.Addresses[0].Is6() {
				ph = ph6
			}
			err := a.Validate()
			if tt.want != nil {
				if !errors.Is(err, tt.want) {
					t.Fatalf("Validate() = %v, want an error wrapping %v", err, tt.want)
				}
				if b, err := a.Marshal(ph); !errors.Is(err, tt.want) || b != nil {
					t.Errorf("Marshal() = %x, %v; want nil, an error wrapping %v", b, err, tt.want)
				}
				return
			}
			if err != nil {
				t.Fatalf("Validate() = %v, want nil", err)
			}
			b, err := a.Marshal(ph)
			if err != nil {
				t.Fatalf("Marshal: %v", err)
			}
			var back Advertisement
			if err := back.Unmarshal(b, ph); err != nil {
				t.Fatalf("Unmarshal of our own encoding: %v", err)
			}
			back.Checksum = 0
			if diff := cmp.Diff(a, back, cmpAddr, cmp.Transformer("nil", func(s []netip.Addr) []netip.Addr {
				if len(s) == 0 {
					return nil
				}
				return s
			})); diff != "" {
				t.Errorf("round trip (-want +got):\n%s", diff)
			}
		})
	}
}

// Marshal needs a pseudo-header of the addresses' family.
func TestMarshalV3PseudoHeader(t *testing.T) {
	a4 := Advertisement{Version: 3, Type: 1, VRID: 1, Priority: 100, Interval: time.Second, Addresses: addrs("192.0.2.1")}
	a6 := Advertisement{Version: 3, Type: 1, VRID: 1, Priority: 100, Interval: time.Second, Addresses: addrs("fe80::1")}
	mapped := PseudoHeader{Src: netip.MustParseAddr("::ffff:192.0.2.1"), Dst: netip.MustParseAddr("::ffff:224.0.0.18")}
	tests := []struct {
		name string
		a    Advertisement
		ph   PseudoHeader
		want error
	}{
		{"none", a4, PseudoHeader{}, ErrPseudoHeader},
		{"no source", a4, PseudoHeader{Dst: phKeepalived4.Dst}, ErrPseudoHeader},
		{"families differ", a4, PseudoHeader{Src: phKeepalived4.Src, Dst: phKeepalived6a.Dst}, ErrPseudoHeader},
		{"IPv4 addresses from IPv6", a4, phKeepalived6a, ErrAddress},
		{"IPv6 addresses from IPv4", a6, phKeepalived4, ErrAddress},
		{"IPv4-mapped pseudo-header counts as IPv4", a4, mapped, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := tt.a.Marshal(tt.ph)
			if tt.want == nil {
				if err != nil {
					t.Fatalf("Marshal: %v", err)
				}
				var back Advertisement
				if err := back.Unmarshal(b, phKeepalived4); err != nil {
					t.Errorf("Unmarshal with the unmapped pseudo-header: %v", err)
				}
				return
			}
			if !errors.Is(err, tt.want) || b != nil {
				t.Errorf("Marshal(%v) = %x, %v; want an error wrapping %v", tt.ph, b, err, tt.want)
			}
		})
	}
	if got := (PseudoHeader{}).Checksum([]byte{0x31}); got != 0 {
		t.Errorf("Checksum with no pseudo-header = %#04x, want 0", got)
	}
	if (PseudoHeader{}).ChecksumValid(readHexFile(t, "testdata/keepalived/v3-ipv4-1s.hex")) {
		t.Errorf("ChecksumValid with no pseudo-header = true")
	}
}

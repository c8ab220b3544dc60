package vrrp

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// cmpAddr compares netip.Addr values, whose fields are unexported.
var cmpAddr = cmp.Comparer(func(a, b netip.Addr) bool { return a == b })

func mustHex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatalf("bad hex %q: %v", s, err)
	}
	return b
}

func addrs(ss ...string) []netip.Addr {
	out := make([]netip.Addr, len(ss))
	for i, s := range ss {
		out[i] = netip.MustParseAddr(s)
	}
	return out
}

// readHexFile reads a testdata/*.hex file: '#' comment lines, then hex.
func readHexFile(t *testing.T, path string) []byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var buf strings.Builder
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		buf.WriteString(line)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return mustHex(t, buf.String())
}

var keepalivedAddrs = addrs("192.0.2.100", "192.0.2.101")

// goldenTests are advertisements and their exact encoding. The keepalived rows are the bytes
// captured from keepalived 2.2.7 (testdata/README.md); the others were computed by hand
// (checksum cross-checked with an independent RFC 1071 implementation).
var goldenTests = []struct {
	name string
	file string // testdata file holding the same bytes, if captured
	hex  string
	adv  Advertisement
}{
	{
		name: "keepalived auth none",
		file: "keepalived/auth-none.hex",
		hex:  "21 33 64 02 00 01 f5fe c0000264 c0000265 0000000000000000",
		adv: Advertisement{Version: 2, Type: 1, VRID: 51, Priority: 100, AuthType: AuthNone,
			Interval: time.Second, Checksum: 0xf5fe, Addresses: keepalivedAddrs},
	},
	{
		name: "keepalived auth none priority 0 on SIGTERM",
		file: "keepalived/auth-none-prio0.hex",
		hex:  "21 33 00 02 00 01 59ff c0000264 c0000265 0000000000000000",
		adv: Advertisement{Version: 2, Type: 1, VRID: 51, Priority: 0, AuthType: AuthNone,
			Interval: time.Second, Checksum: 0x59ff, Addresses: keepalivedAddrs},
	},
	{
		name: "keepalived auth PASS",
		file: "keepalived/auth-pass.hex",
		hex:  "21 33 64 02 01 01 8780 c0000264 c0000265 7365637265743132",
		adv: Advertisement{Version: 2, Type: 1, VRID: 51, Priority: 100, AuthType: AuthSimple,
			Interval: time.Second, Checksum: 0x8780, Addresses: keepalivedAddrs,
			AuthData: [8]byte{'s', 'e', 'c', 'r', 'e', 't', '1', '2'}},
	},
	{
		name: "keepalived auth PASS priority 0 on SIGTERM",
		file: "keepalived/auth-pass-prio0.hex",
		hex:  "21 33 00 02 01 01 eb80 c0000264 c0000265 7365637265743132",
		adv: Advertisement{Version: 2, Type: 1, VRID: 51, Priority: 0, AuthType: AuthSimple,
			Interval: time.Second, Checksum: 0xeb80, Addresses: keepalivedAddrs,
			AuthData: [8]byte{'s', 'e', 'c', 'r', 'e', 't', '1', '2'}},
	},
	{
		name: "owner, one address",
		hex:  "21 01 ff 01 00 01 1df1 c000020a 0000000000000000",
		adv: Advertisement{Version: 2, Type: 1, VRID: 1, Priority: 255, Interval: time.Second,
			Checksum: 0x1df1, Addresses: addrs("192.0.2.10")},
	},
	{
		name: "no address, largest VRID and interval",
		hex:  "21 ff 01 00 00 ff dc01 0000000000000000",
		adv: Advertisement{Version: 2, Type: 1, VRID: 255, Priority: 1, Interval: 255 * time.Second,
			Checksum: 0xdc01},
	},
	{
		name: "three addresses, plain text with padding, 3 s",
		hex:  "21 07 96 03 01 03 58d8 c6336401 c6336402 c6336403 7077000000000000",
		adv: Advertisement{Version: 2, Type: 1, VRID: 7, Priority: 150, AuthType: AuthSimple,
			Interval: 3 * time.Second, Checksum: 0x58d8,
			Addresses: addrs("198.51.100.1", "198.51.100.2", "198.51.100.3"),
			AuthData:  [8]byte{'p', 'w'}},
	},
	{
		name: "checksum that computes to zero",
		hex:  "21 01 64 01 00 01 0000 c000bafb 0000000000000000",
		adv: Advertisement{Version: 2, Type: 1, VRID: 1, Priority: 100, Interval: time.Second,
			Addresses: addrs("192.0.186.251")},
	},
}

func TestGoldenFilesMatchTable(t *testing.T) {
	type row struct{ name, file, hex string }
	var rows []row
	for _, tt := range goldenTests {
		rows = append(rows, row{tt.name, tt.file, tt.hex})
	}
	for _, tt := range goldenV3Tests {
		rows = append(rows, row{tt.name, tt.file, tt.hex})
	}
	for _, tt := range rows {
		if tt.file == "" {
			continue
		}
		got := readHexFile(t, filepath.Join("testdata", tt.file))
		if diff := cmp.Diff(mustHex(t, tt.hex), got); diff != "" {
			t.Errorf("%s: %s differs from the table (-want +got):\n%s", tt.name, tt.file, diff)
		}
	}
}

func TestUnmarshalGolden(t *testing.T) {
	for _, tt := range goldenTests {
		t.Run(tt.name, func(t *testing.T) {
			var got Advertisement
			if err := got.UnmarshalBinary(mustHex(t, tt.hex)); err != nil {
				t.Fatalf("UnmarshalBinary: %v", err)
			}
			if diff := cmp.Diff(tt.adv, got, cmpAddr); diff != "" {
				t.Errorf("UnmarshalBinary (-want +got):\n%s", diff)
			}
		})
	}
}

func TestMarshalGolden(t *testing.T) {
	for _, tt := range goldenTests {
		t.Run(tt.name, func(t *testing.T) {
			checkMarshal(t, tt.adv, mustHex(t, tt.hex), (*Advertisement).MarshalBinary)
		})
	}
}

// checkMarshal checks that marshal encodes adv as want, computing the checksum without
// changing adv's Checksum field, in adv.Len() bytes.
func checkMarshal(t *testing.T, adv Advertisement, want []byte, marshal func(*Advertisement) ([]byte, error)) {
	t.Helper()
	adv.Checksum = 0x1234 // ignored: marshalling computes it
	got, err := marshal(&adv)
	if err != nil {
		t.Fatalf("marshal: %v", err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("marshal (-want +got):\n%s", diff)
	}
	if adv.Checksum != 0x1234 {
		t.Errorf("marshal changed the Checksum field to %#04x", adv.Checksum)
	}
	if adv.Len() != len(got) {
		t.Errorf("Len() = %d, encoding is %d bytes", adv.Len(), len(got))
	}
}

// A zero checksum has two encodings in one's complement; both must be accepted, and the
// canonical one (0x0000, what keepalived and the Linux kernel write) is what we send.
func TestChecksumNegativeZero(t *testing.T) {
	b := mustHex(t, "21 01 64 01 00 01 ffff c000bafb 0000000000000000")
	var got Advertisement
	if err := got.UnmarshalBinary(b); err != nil {
		t.Fatalf("UnmarshalBinary with checksum 0xffff: %v", err)
	}
	if got.Checksum != 0xffff {
		t.Errorf("Checksum = %#04x, want the value as read, 0xffff", got.Checksum)
	}
	out, err := got.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	want := mustHex(t, "21 01 64 01 00 01 0000 c000bafb 0000000000000000")
	if diff := cmp.Diff(want, out); diff != "" {
		t.Errorf("MarshalBinary (-want +got):\n%s", diff)
	}
}

func TestChecksumRFC1071(t *testing.T) {
	// RFC 1071 section 3 example: the words sum to 0xddf2.
	b := mustHex(t, "0001 f203 f4f5 f6f7")
	if got, want := Checksum(b), uint16(^uint16(0xddf2)); got != want {
		t.Errorf("Checksum = %#04x, want %#04x", got, want)
	}
	// An odd byte is padded with zero on the right.
	if got, want := Checksum([]byte{0x01}), ^uint16(0x0100); got != want {
		t.Errorf("Checksum(odd) = %#04x, want %#04x", got, want)
	}
	withSum := append(bytes.Clone(b), 0x22, 0x0d)
	if !ChecksumValid(withSum) {
		t.Errorf("ChecksumValid(% x) = false, want true", withSum)
	}
}

func TestUnmarshalErrors(t *testing.T) {
	good := "21 33 64 02 00 01 f5fe c0000264 c0000265 0000000000000000"
	tests := []struct {
		name string
		hex  string
		want error
	}{
		{"empty", "", ErrTooShort},
		{"header only", "21 33 64 02 00 01 f5fe", ErrTooShort},
		{"one byte short of auth data", good[:len(good)-2], ErrTooShort},
		{"count says three addresses", "21 33 64 03 00 01 f4fe c0000264 c0000265 0000000000000000", ErrTooShort},
		{"trailing byte", good + "00", ErrLength},
		{"count says one address", "21 33 64 01 00 01 f69a c0000264 c0000265 0000000000000000", ErrLength},
		{"version 1", "11 33 64 02 00 01 05fe c0000264 c0000265 0000000000000000", ErrVersion},
		{"version 3 without pseudo-header", "31 33 64 02 00 64 4307 c0000264 c0000265", ErrPseudoHeader},
		{"version 4", "41 33 64 02 00 01 e5fe c0000264 c0000265 0000000000000000", ErrVersion},
		{"version 0", "01 33 64 02 00 01 15fe c0000264 c0000265 0000000000000000", ErrVersion},
		{"type 2", "22 33 64 02 00 01 f4fe c0000264 c0000265 0000000000000000", ErrType},
		{"type 0", "20 33 64 02 00 01 f6fe c0000264 c0000265 0000000000000000", ErrType},
		{"checksum off by one", "21 33 64 02 00 01 f5ff c0000264 c0000265 0000000000000000", ErrChecksum},
		{"checksum zero", "21 33 64 02 00 01 0000 c0000264 c0000265 0000000000000000", ErrChecksum},
		{"flipped address bit", "21 33 64 02 00 01 f5fe c0000265 c0000265 0000000000000000", ErrChecksum},
		{"VRID 0", "21 00 64 02 00 01 f631 c0000264 c0000265 0000000000000000", ErrVRID},
		{"interval 0", "21 33 64 02 00 00 f5ff c0000264 c0000265 0000000000000000", ErrInterval},
		{"auth type 3", "21 33 64 02 03 01 f2fe c0000264 c0000265 0000000000000000", ErrAuthType},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := mustHex(t, tt.hex)
			before := Advertisement{Version: 2, Type: 1, VRID: 9, Interval: time.Second, Addresses: addrs("192.0.2.9")}
			got := before
			err := got.UnmarshalBinary(b)
			if !errors.Is(err, tt.want) {
				t.Fatalf("UnmarshalBinary(% x) = %v, want an error wrapping %v", b, err, tt.want)
			}
			if diff := cmp.Diff(before, got, cmpAddr); diff != "" {
				t.Errorf("a failed UnmarshalBinary changed the advertisement (-want +got):\n%s", diff)
			}
		})
	}
}

func TestUnmarshalCopies(t *testing.T) {
	b := readHexFile(t, "testdata/keepalived/auth-pass.hex")
	var got Advertisement
	if err := got.UnmarshalBinary(b); err != nil {
		t.Fatal(err)
	}
	want := got
	want.Addresses = append([]netip.Addr(nil), got.Addresses...)
	for i := range b {
		b[i] = 0xaa
	}
	if diff := cmp.Diff(want, got, cmpAddr); diff != "" {
		t.Errorf("advertisement changed when the input buffer was overwritten (-want +got):\n%s", diff)
	}
}

func TestValidate(t *testing.T) {
	base := func() Advertisement {
		return Advertisement{Version: 2, Type: 1, VRID: 1, Priority: 100, Interval: time.Second,
			Addresses: addrs("192.0.2.1")}
	}
	many := make([]netip.Addr, 256)
	for i := range many {
		many[i] = netip.AddrFrom4([4]byte{192, 0, 2, byte(i)})
	}
	tests := []struct {
		name   string
		modify func(*Advertisement)
		want   error // nil: valid
	}{
		{"valid", func(*Advertisement) {}, nil},
		{"priority 0 resign is valid", func(a *Advertisement) { a.Priority = 0 }, nil},
		{"AH is a known type", func(a *Advertisement) { a.AuthType = AuthAH }, nil},
		{"255 addresses", func(a *Advertisement) { a.Addresses = many[:255] }, nil},
		{"version 0", func(a *Advertisement) { a.Version = 0 }, ErrVersion},
		{"version 4", func(a *Advertisement) { a.Version = 4 }, ErrVersion},
		{"type 0", func(a *Advertisement) { a.Type = 0 }, ErrType},
		{"VRID 0", func(a *Advertisement) { a.VRID = 0 }, ErrVRID},
		{"interval 0", func(a *Advertisement) { a.Interval = 0 }, ErrInterval},
		{"interval 1.5 s", func(a *Advertisement) { a.Interval = 1500 * time.Millisecond }, ErrInterval},
		{"interval 256 s", func(a *Advertisement) { a.Interval = 256 * time.Second }, ErrInterval},
		{"interval negative", func(a *Advertisement) { a.Interval = -time.Second }, ErrInterval},
		{"auth type 3", func(a *Advertisement) { a.AuthType = 3 }, ErrAuthType},
		{"IPv6 address", func(a *Advertisement) { a.Addresses = addrs("2001:db8::1") }, ErrAddress},
		{"IPv4-mapped IPv6", func(a *Advertisement) { a.Addresses = addrs("::ffff:192.0.2.1") }, ErrAddress},
		{"zero address", func(a *Advertisement) { a.Addresses = []netip.Addr{{}} }, ErrAddress},
		{"256 addresses", func(a *Advertisement) { a.Addresses = many }, ErrAddress},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := base()
			tt.modify(&a)
			err := a.Validate()
			if tt.want == nil {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				b, err := a.MarshalBinary()
				if err != nil {
					t.Fatalf("MarshalBinary: %v", err)
				}
				var back Advertisement
				if err := back.UnmarshalBinary(b); err != nil {
					t.Fatalf("UnmarshalBinary of our own encoding: %v", err)
				}
				return
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("Validate() = %v, want an error wrapping %v", err, tt.want)
			}
			if b, err := a.MarshalBinary(); !errors.Is(err, tt.want) || b != nil {
				t.Errorf("MarshalBinary() = %x, %v; want nil, an error wrapping %v", b, err, tt.want)
			}
		})
	}
}

func TestAuthTypeString(t *testing.T) {
	for at, want := range map[AuthType]string{AuthNone: "none", AuthSimple: "simple", AuthAH: "ah", 9: "AuthType(9)"} {
		if got := at.String(); got != want {
			t.Errorf("AuthType(%d).String() = %q, want %q", uint8(at), got, want)
		}
	}
}

// Pseudo-headers the fuzz target parses with, by its family argument: none (version 2 only),
// keepalived's IPv4 multicast and its IPv6 multicast.
var fuzzPseudoHeaders = []PseudoHeader{
	{},
	{Src: netip.MustParseAddr("192.0.2.1"), Dst: netip.MustParseAddr("224.0.0.18")},
	{Src: netip.MustParseAddr("fe80::ecb4:11ff:fe86:84ab"), Dst: netip.MustParseAddr("ff02::12")},
}

// FuzzAdvertisement: Unmarshal must never panic; whatever it accepts must validate, marshal
// back to the same bytes (up to the encoding of a zero checksum and, in version 3, the reserved
// bits, which are ignored on receipt) and re-parse equal. family picks the pseudo-header
// (fuzzPseudoHeaders); with fix set the input's checksum is corrected first, so that the
// fuzzer reaches the checks behind the checksum instead of stopping at it.
func FuzzAdvertisement(f *testing.F) {
	for _, tt := range goldenTests {
		f.Add(mustHex(f, tt.hex), uint8(0), false)
	}
	for _, tt := range goldenV3Tests {
		fam := uint8(1)
		if tt.ph.Src.Is6() {
			fam = 2
		}
		f.Add(mustHex(f, tt.hex), fam, false)
		f.Add(mustHex(f, tt.hex), fam, true)
	}
	f.Add([]byte{}, uint8(0), false)
	f.Add(mustHex(f, "31 33 64 02 f0 64 0000 c0000264 c0000265"), uint8(1), true)
	f.Fuzz(func(t *testing.T, b []byte, family uint8, fix bool) {
		ph := fuzzPseudoHeaders[int(family)%len(fuzzPseudoHeaders)]
		if fix && len(b) >= 8 {
			b[6], b[7] = 0, 0
			sum := Checksum(b)
			if b[0]>>4 == 3 {
				sum = ph.Checksum(b)
			}
			binary.BigEndian.PutUint16(b[6:8], sum)
		}
		in := bytes.Clone(b)
		var a Advertisement
		if err := a.Unmarshal(b, ph); err != nil {
			return
		}
		if !bytes.Equal(in, b) {
			t.Fatalf("Unmarshal modified its input")
		}
		if err := a.Validate(); err != nil {
			t.Fatalf("parsed advertisement does not validate: %v\n%+v", err, a)
		}
		out, err := a.Marshal(ph)
		if err != nil {
			t.Fatalf("Marshal of a parsed advertisement: %v", err)
		}
		if len(out) != len(b) {
			t.Fatalf("re-encoding is %d bytes, input was %d", len(out), len(b))
		}
		want := bytes.Clone(b)
		reserved := a.Version == 3 && want[4]&0xf0 != 0
		if reserved {
			want[4] &= 0x0f // ignored on receipt, zero on transmission (RFC 9568 section 5.2.7)
		}
		if !bytes.Equal(out[:6], want[:6]) || !bytes.Equal(out[8:], want[8:]) {
			t.Fatalf("re-encoding differs:\n in % x\nout % x", b, out)
		}
		if !reserved && !bytes.Equal(out[6:8], b[6:8]) && !(a.Checksum == 0xffff && out[6] == 0 && out[7] == 0) {
			t.Fatalf("checksum re-encoded as % x, read % x", out[6:8], b[6:8])
		}
		var back Advertisement
		if err := back.Unmarshal(out, ph); err != nil {
			t.Fatalf("Unmarshal of our own encoding: %v", err)
		}
		a.Checksum = back.Checksum // the only field allowed to differ (0xffff -> 0x0000, reserved bits)
		if diff := cmp.Diff(a, back, cmpAddr); diff != "" {
			t.Fatalf("round trip (-first +second):\n%s", diff)
		}
	})
}

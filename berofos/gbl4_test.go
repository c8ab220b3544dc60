package berofos

import (
	"bytes"
	"encoding/hex"
	"errors"
	"net"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// cmpAddr lets cmp compare netip.Addr values.
var cmpAddr = cmpopts.EquateComparable(netip.Addr{})

var testMAC = net.HardwareAddr{0x00, 0x19, 0x32, 0x00, 0x12, 0x1D}

func TestRequestGolden(t *testing.T) {
	tests := []struct {
		name string
		req  Request
		want string
	}{
		// The kick from the reference document (berofos user manual, bnfos --kick).
		{"kick", Request{Cmd: CmdKick, MAC: testMAC}, "47 42 4c 04 0b 00 19 32 00 12 1d 00 62"},
		{"ping", Request{Cmd: CmdPing, MAC: testMAC}, "47 42 4c 04 09 00 19 32 00 12 1d 00 00 60"},
		{"reset", Request{Cmd: CmdReset, MAC: testMAC}, "47 42 4c 04 05 00 19 32 00 12 1d 6c"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.req.MarshalBinary()
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(unhex(t, tt.want), got); diff != "" {
				t.Errorf("MarshalBinary (-want +got):\n%s", diff)
			}
			var back Request
			if err := back.UnmarshalBinary(got); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.req, back); diff != "" {
				t.Errorf("UnmarshalBinary (-want +got):\n%s", diff)
			}
		})
	}
}

func TestScanFrameGolden(t *testing.T) {
	f := ScanFrame()
	got, err := f.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(unhex(t, "47 42 4c 04 01 4c"), got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

// scanReplyHex is a 36-byte scan reply: MAC 00:19:32:00:12:1D, hwmagic 0x0050, bootloader
// 1.0, firmware 1.53, operational, 10.34.1.50/255.255.255.0 gw 10.34.1.1, phy auto, link
// 100 Mbit full duplex, HTTP auth on, port 80.
const scanReplyHex = "47424c0401 00193200121d 0050 0100 0135 00 0a220132 ffffff00 0a220101 00 07 02 0050 94"

var scanReplyWant = ScanReply{
	MAC: testMAC, HWMagic: HWMagic1, BootMajor: 1, BootMinor: 0, FWMajor: 1, FWMinor: 53,
	DevMode: DevModeOperational,
	IP:      netip.MustParseAddr("10.34.1.50"), Netmask: netip.MustParseAddr("255.255.255.0"),
	Gateway: netip.MustParseAddr("10.34.1.1"),
	PhyConf: 0, PhyState: PhyStateLink | PhyState100M | PhyStateFull, Options: OptionHTTPAuth, HTTPPort: 80,
}

func TestScanReplyGolden(t *testing.T) {
	b := unhex(t, scanReplyHex)
	if len(b) != 36 {
		t.Fatalf("golden reply is %d bytes, want 36", len(b))
	}
	var got ScanReply
	if err := got.UnmarshalBinary(b); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(scanReplyWant, got, cmpAddr); diff != "" {
		t.Errorf("UnmarshalBinary (-want +got):\n%s", diff)
	}
	if got.Firmware() != "1.53" {
		t.Errorf("Firmware() = %q, want 1.53", got.Firmware())
	}
	out, err := scanReplyWant.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(b, out); diff != "" {
		t.Errorf("MarshalBinary (-want +got):\n%s", diff)
	}
	// Parsing copies: scribbling on the buffer does not change the reply.
	for i := range b {
		b[i] = 0xFF
	}
	if diff := cmp.Diff(scanReplyWant, got, cmpAddr); diff != "" {
		t.Errorf("reply aliases the read buffer (-want +got):\n%s", diff)
	}
}

func TestResultNetconfFlashRoundTrip(t *testing.T) {
	res := Result{Cmd: CmdReset, MAC: testMAC, Code: 0}
	b, err := res.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(unhex(t, "47424c0405 00193200121d 00 6c"), b); diff != "" {
		t.Errorf("reset result (-want +got):\n%s", diff)
	}
	nc := Netconf{MAC: testMAC, IP: netip.MustParseAddr("10.34.1.20"), Netmask: netip.MustParseAddr("255.255.255.0"),
		Gateway: netip.MustParseAddr("10.34.1.1"), Options: OptionDHCP, HTTPPort: 80}
	b, err = nc.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(unhex(t, "47424c0402 00193200121d 0a220114 ffffff00 0a220101 00 01 0050"), b[:len(b)-1]); diff != "" {
		t.Errorf("netconf (-want +got):\n%s", diff)
	}
	var nc2 Netconf
	if err := nc2.UnmarshalBinary(b); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(nc, nc2, cmpAddr); diff != "" {
		t.Errorf("netconf round trip (-want +got):\n%s", diff)
	}
	img := bytes.Repeat([]byte{0xA5, 0x01}, 300) // 600 bytes: two pages, the last padded
	pages, sum := FirmwarePages(img)
	if len(pages) != 2 || pages[1][88] != 0 || pages[1][87] != 0x01 || sum != 0 {
		t.Errorf("FirmwarePages: %d pages, sum %#x", len(pages), sum)
	}
	fp := FlashPage{MAC: testMAC, Page: 1, Data: pages[1]}
	b, err = fp.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if len(b) != 4+1+6+2+PageSize+1 {
		t.Errorf("flash page frame is %d bytes", len(b))
	}
	var fp2 FlashPage
	if err := fp2.UnmarshalBinary(b); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(fp, fp2); diff != "" {
		t.Errorf("flash page round trip (-want +got):\n%s", diff)
	}
	prep := FlashPrepare{MAC: testMAC, Pages: 2, Checksum: 0x5A}
	b, _ = prep.MarshalBinary()
	if diff := cmp.Diff(unhex(t, "47424c0403 00193200121d 0002 5a"), b[:len(b)-1]); diff != "" {
		t.Errorf("flash prepare (-want +got):\n%s", diff)
	}
}

func TestGBL4Errors(t *testing.T) {
	kick := "47 42 4c 04 0b 00 19 32 00 12 1d 00 62"
	tests := []struct {
		name  string
		in    string
		parse func([]byte) error
		want  error
	}{
		{"empty", "", func(b []byte) error { var f Frame; return f.UnmarshalBinary(b) }, ErrTooShort},
		{"prefix only", "47 42 4c 04 01", func(b []byte) error { var f Frame; return f.UnmarshalBinary(b) }, ErrTooShort},
		{"bad magic", "47 42 4c 05 01 4d", func(b []byte) error { var f Frame; return f.UnmarshalBinary(b) }, ErrMagic},
		{"bad checksum", "47 42 4c 04 0b 00 19 32 00 12 1d 00 63", func(b []byte) error { var q Request; return q.UnmarshalBinary(b) }, ErrChecksum},
		{"kick as scan reply", kick, func(b []byte) error { var r ScanReply; return r.UnmarshalBinary(b) }, ErrCmd},
		{"short scan reply", "47 42 4c 04 01 00 4c", func(b []byte) error { var r ScanReply; return r.UnmarshalBinary(b) }, ErrLength},
		{"kick padding not zero", "47 42 4c 04 0b 00 19 32 00 12 1d 01 63", func(b []byte) error { var q Request; return q.UnmarshalBinary(b) }, ErrLength},
		{"scan is not a MAC request", "47 42 4c 04 01 4c", func(b []byte) error { var q Request; return q.UnmarshalBinary(b) }, ErrCmd},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.parse(unhex(t, tt.in))
			if !errors.Is(err, tt.want) {
				t.Errorf("error = %v, want %v", err, tt.want)
			}
		})
	}
	if _, err := (&Request{Cmd: CmdKick, MAC: testMAC[:5]}).MarshalBinary(); !errors.Is(err, ErrMAC) {
		t.Errorf("short MAC: %v, want ErrMAC", err)
	}
	if _, err := (&ScanReply{MAC: testMAC}).MarshalBinary(); !errors.Is(err, ErrAddr) {
		t.Errorf("reply without addresses: %v, want ErrAddr", err)
	}
}

func FuzzFrame(f *testing.F) {
	f.Add(unhex(f, "47 42 4c 04 0b 00 19 32 00 12 1d 00 62"))
	f.Add(unhex(f, "47 42 4c 04 01 4c"))
	f.Add(unhex(f, scanReplyHex))
	f.Add([]byte("GBL"))
	f.Fuzz(func(t *testing.T, b []byte) {
		var fr Frame
		if err := fr.UnmarshalBinary(b); err == nil {
			out, err := fr.MarshalBinary()
			if err != nil {
				t.Fatalf("parsed frame does not marshal: %v", err)
			}
			if !bytes.Equal(out, b) {
				t.Fatalf("frame round trip:\n in % x\nout % x", b, out)
			}
		}
		var r ScanReply
		if err := r.UnmarshalBinary(b); err == nil {
			out, err := r.MarshalBinary()
			if err != nil || !bytes.Equal(out, b) {
				t.Fatalf("scan reply round trip: %v\n in % x\nout % x", err, b, out)
			}
		}
		var q Request
		if err := q.UnmarshalBinary(b); err == nil {
			out, err := q.MarshalBinary()
			if err != nil || !bytes.Equal(out, b) {
				t.Fatalf("request round trip: %v\n in % x\nout % x", err, b, out)
			}
		}
		var n Netconf
		if err := n.UnmarshalBinary(b); err == nil {
			if _, err := n.MarshalBinary(); err != nil && n.HTTPPort != 0 {
				t.Fatalf("netconf does not marshal: %v", err)
			}
		}
		var res Result
		if err := res.UnmarshalBinary(b); err == nil {
			out, err := res.MarshalBinary()
			if err != nil || !bytes.Equal(out, b) {
				t.Fatalf("result round trip: %v", err)
			}
		}
	})
}

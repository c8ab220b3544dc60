package berofos

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"testing"
	"time"
)

// responder answers every datagram on a loopback socket with the frames reply returns.
func responder(t *testing.T, reply func(req []byte) [][]byte) Device {
	t.Helper()
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 2048)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			for _, b := range reply(append([]byte(nil), buf[:n]...)) {
				pc.WriteTo(b, from)
			}
		}
	}()
	return Device{Name: "fake", Host: "127.0.0.1", MAC: testMAC, UDPPort: pc.LocalAddr().(*net.UDPAddr).Port}
}

func mustMarshal(t *testing.T, m interface{ MarshalBinary() ([]byte, error) }) []byte {
	t.Helper()
	b, err := m.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestGBL4IgnoresMismatchedReplies: replies for another command, another device, with a bad
// checksum or from another product are skipped; the matching one is taken.
func TestGBL4IgnoresMismatchedReplies(t *testing.T) {
	otherMAC := net.HardwareAddr{0, 0x19, 0x32, 0, 0, 0x77}
	ping := mustMarshal(t, &Frame{Cmd: CmdPing})
	kick := mustMarshal(t, &Frame{Cmd: CmdKick})
	badSum := append(append([]byte(nil), kick[:len(kick)-1]...), kick[len(kick)-1]^0xFF)
	dev := responder(t, func(req []byte) [][]byte {
		var f Frame
		if f.UnmarshalBinary(req) != nil {
			return nil
		}
		switch f.Cmd {
		case CmdKick:
			return [][]byte{ping, badSum, []byte("GBL"), kick}
		case CmdReset:
			return [][]byte{mustMarshal(t, &Result{Cmd: CmdReset, MAC: otherMAC, Code: 5}), mustMarshal(t, &Result{Cmd: CmdReset, MAC: testMAC})}
		case CmdNetconf:
			return [][]byte{mustMarshal(t, &Result{Cmd: CmdNetconf, MAC: testMAC, Code: 3})}
		case CmdScan:
			rp := scanReplyWant
			rp.HWMagic = 0x1234 // a beroNet power switch, not a berofos
			other := mustMarshal(t, &rp)
			rp = scanReplyWant
			rp.MAC = otherMAC
			return [][]byte{other, mustMarshal(t, &rp), mustMarshal(t, &scanReplyWant)}
		}
		return nil
	})
	c := NewClient(ClientOptions{Timeout: 300 * time.Millisecond, Retransmit: 100 * time.Millisecond})
	ctx := context.Background()
	if err := c.Kick(ctx, dev); err != nil {
		t.Errorf("kick: %v", err)
	}
	if err := c.Reset(ctx, dev); err != nil {
		t.Errorf("reset (a failure reported for another MAC must be skipped): %v", err)
	}
	nc := Netconf{IP: netip.MustParseAddr("192.0.2.20"), Netmask: netip.MustParseAddr("255.255.255.0"), Gateway: netip.MustParseAddr("192.0.2.1"), HTTPPort: 80}
	if err := c.Netconf(ctx, dev, nc); !errors.Is(err, ErrDevice) {
		t.Errorf("netconf with error code 3: %v, want ErrDevice", err)
	}
	// Scanning one host returns at its first berofos reply.
	replies, err := c.Scan(ctx, "127.0.0.1", dev.UDPPort, time.Second)
	if err != nil || len(replies) != 1 || replies[0].MAC.String() != otherMAC.String() {
		t.Errorf("scan: %v %+v", err, replies)
	}
	if err := c.Kick(ctx, Device{Name: "nomac", Host: "127.0.0.1"}); !errors.Is(err, ErrMAC) {
		t.Errorf("kick without MAC: %v", err)
	}
}

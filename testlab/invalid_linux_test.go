package testlab

import (
	"context"
	"net"
	"testing"
	"time"

	"golang.org/x/net/ipv4"
)

// advertPayload builds an RFC 3768 advertisement for VRID 51 and one address, with a correct
// checksum unless badSum.
func advertPayload(prio uint8, vip [4]byte, badSum bool) []byte {
	b := []byte{0x21, 51, prio, 1, 0, 1, 0, 0, vip[0], vip[1], vip[2], vip[3], 0, 0, 0, 0, 0, 0, 0, 0}
	var sum uint32
	for i := 0; i < len(b); i += 2 {
		sum += uint32(b[i])<<8 | uint32(b[i+1])
	}
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	c := ^uint16(sum)
	if badSum {
		c ^= 0x5a5a
	}
	b[6], b[7] = byte(c>>8), byte(c)
	return b
}

// TestInvalidAdvertsDoNotDelayTakeover kills the Master and, while the Backup waits out
// Master_Down_Interval, floods the bridge from a third host with high-priority adverts for the
// same VRID that fail RFC 3768 section 7.1 checks (IP TTL not 255; bad checksum). Had any of
// them reset the Backup's timer, the takeover would slip; it must happen on time, and the
// daemon must count the drops by reason.
func TestInvalidAdvertsDoNotDelayTakeover(t *testing.T) {
	t.Parallel()
	l, ctx, tl := recordedLab(t, 60*time.Second)
	evil, err := l.AddHost("evil")
	if err != nil {
		t.Fatal(err)
	}
	master, backup := pair(t, ctx, l, tl, Redundantd, Redundantd, VRRPConfig{})

	vip := l.DefaultVIP().Addr().As4()
	type bad struct {
		ttl     int
		payload []byte
	}
	bads := []bad{
		{ttl: 64, payload: advertPayload(254, vip, false)},
		{ttl: 255, payload: advertPayload(254, vip, true)},
	}
	sent := 0
	flood, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- sendVRRP(evil, func(pc *ipv4.PacketConn, dst *net.IPAddr) error {
			tick := time.NewTicker(250 * time.Millisecond)
			defer tick.Stop()
			for {
				for _, b := range bads {
					if err := pc.SetMulticastTTL(b.ttl); err != nil {
						return err
					}
					if _, err := pc.WriteTo(b.payload, nil, dst); err != nil {
						return err
					}
					sent++
				}
				select {
				case <-flood.Done():
					return nil
				case <-tick.C:
				}
			}
		})
	}()

	f, err := MeasureFailover(ctx, tl, master, backup, false)
	if err != nil {
		stop()
		<-done
		t.Fatal(err)
	}
	// The new Master keeps its advert rhythm under the flood: an invalid packet must not
	// delay its next advert either (RFC 3768 section 7.1: discard, nothing else).
	rhythm := []Advert{f.FirstAdvert}
	for len(rhythm) < 5 {
		a, err := tl.WaitAdvert(ctx, rhythm[len(rhythm)-1].At, "an advert of the new Master", From(backup.Node, 51))
		if err != nil {
			stop()
			<-done
			t.Fatal(err)
		}
		rhythm = append(rhythm, a)
	}
	stop()
	if ferr := <-done; ferr != nil {
		t.Fatalf("sending the invalid adverts: %v", ferr)
	}
	for i := 1; i < len(rhythm); i++ {
		if gap := rhythm[i].At.Sub(rhythm[i-1].At); gap < 950*time.Millisecond || gap > 1050*time.Millisecond {
			t.Errorf("the Master's advert %d came %v after the previous one under the flood, want 1 s", i, gap.Round(time.Millisecond))
		}
	}
	checkFailover(t, f)
	// The flood lasts the whole interval, so a Backup that let any of it reset its timer would
	// not have taken over at all; a tight bound also catches one that accepted a few.
	if f.Elapsed() > f.Theory()+100*time.Millisecond {
		t.Errorf("takeover %v after the last valid advert, want within 100 ms of %v", f.Elapsed(), f.Theory())
	}
	evilAdverts := tl.AdvertsBetween(f.Ref.At, f.VIP.At, From(evil, 51))
	if len(evilAdverts) < 10 {
		t.Fatalf("only %d invalid adverts crossed the bridge during the takeover; the test proves nothing", len(evilAdverts))
	}
	st, err := backup.Node.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d invalid adverts sent, %d during Master_Down_Interval; dropped: %v", sent, len(evilAdverts), st.Dropped)
	if st.Dropped["ttl"] == 0 || st.Dropped["checksum"] == 0 {
		t.Errorf("dropped = %v, want counts for both \"ttl\" and \"checksum\"", st.Dropped)
	}
	if st.State != "master" {
		t.Errorf("%s state %q after the takeover, want master", backup, st.State)
	}
}

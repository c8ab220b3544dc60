package berofos_test

import (
	"context"
	"fmt"
	"net"
	"slices"
	"testing"
	"time"

	"github.com/redundantd/redundantd/berofos"
	"github.com/redundantd/redundantd/testlab/fossim"
)

// benchRoleChange measures role changes against n local simulated devices over real HTTP:
// "issue" is the time from SetDesired to the set request arriving at the (last) device,
// "confirm" the time from SetDesired to the controller's confirmed event for the (last)
// device, which includes the read before the set and the read-back after it.
// Targets (issue 3): issued within 10ms, confirmed within 50ms (one device) or 60ms (four).
func benchRoleChange(b *testing.B, n int) {
	var devs []berofos.Device
	var sims []*fossim.Sim
	for i := range n {
		sim, dev := startSim(b, fmt.Sprintf("fos%d", i+1), fossim.Config{MAC: net.HardwareAddr{0, 0x19, 0x32, 0, 0x12, byte(i)}})
		devs, sims = append(devs, dev), append(sims, sim)
	}
	client := berofos.NewClient(berofos.ClientOptions{})
	b.Cleanup(client.Close)
	measureRoleChange(b, client, devs, sims)
}

// measureRoleChange flips the desired state b.N times and reports the figures.
func measureRoleChange(b *testing.B, client *berofos.Client, devs []berofos.Device, sims []*fossim.Sim) {
	n := len(devs)
	confirmed := make(chan berofos.DeviceEvent, 1024)
	c, err := berofos.NewController(berofos.ControllerConfig{
		Devices: devs, ModeForMe: 1,
		OnEvent: func(e berofos.DeviceEvent) {
			if e.Kind == berofos.EventConfirmed || e.Kind == berofos.EventInPlace {
				select {
				case confirmed <- e:
				default:
				}
			}
		},
	}, client)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	b.Cleanup(func() {
		cancel()
		<-done
	})
	// Start from a known state: lines to the peer (mode 0) on every device.
	c.SetDesired(berofos.LinesToPeer)
	for range n {
		<-confirmed
	}

	var issue, confirm []time.Duration
	desired := berofos.LinesToMe
	for b.Loop() {
		before := make([]int, n)
		for i, s := range sims {
			before[i] = len(s.Sets())
		}
		t0 := time.Now()
		c.SetDesired(desired)
		var last time.Time
		for range n {
			select {
			case e := <-confirmed:
				if e.Kind != berofos.EventConfirmed {
					b.Fatalf("%s: %v, want a confirmed change", e.Device, e.Kind)
				}
				last = e.At
			case <-time.After(5 * time.Second):
				b.Fatal("no confirmation within 5s")
			}
		}
		confirm = append(confirm, last.Sub(t0))
		var lastSet time.Time
		for i, s := range sims {
			sets := s.Sets()
			if len(sets) != before[i]+1 {
				b.Fatalf("fos%d: %d sets for one role change, want 1", i+1, len(sets)-before[i])
			}
			if at := sets[len(sets)-1].At; at.After(lastSet) {
				lastSet = at
			}
		}
		issue = append(issue, lastSet.Sub(t0))
		if desired == berofos.LinesToMe {
			desired = berofos.LinesToPeer
		} else {
			desired = berofos.LinesToMe
		}
	}
	b.StopTimer()
	report := func(d []time.Duration, name string) {
		slices.Sort(d)
		ms := func(x time.Duration) float64 { return float64(x) / float64(time.Millisecond) }
		b.ReportMetric(ms(d[len(d)/2]), name+"-p50-ms")
		b.ReportMetric(ms(d[len(d)*99/100]), name+"-p99-ms")
		b.ReportMetric(ms(d[len(d)-1]), name+"-max-ms")
	}
	report(issue, "issue")
	report(confirm, "confirm")
}

func BenchmarkRoleChange1Device(b *testing.B)  { benchRoleChange(b, 1) }
func BenchmarkRoleChange4Devices(b *testing.B) { benchRoleChange(b, 4) }

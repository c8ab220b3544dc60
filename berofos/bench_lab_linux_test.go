package berofos_test

import (
	"context"
	"fmt"
	"net"
	"testing"

	"github.com/redundantd/redundantd/berofos"
	"github.com/redundantd/redundantd/testlab/fossim"
	"github.com/redundantd/redundantd/testlab/labns"
)

// benchRoleChangeLab is benchRoleChange across a veth pair between two network namespaces,
// the simulators listening on 192.0.2.10 as in the lab.
func benchRoleChangeLab(b *testing.B, n int) {
	devNS, nodeNS := labPair(b)
	var devs []berofos.Device
	var sims []*fossim.Sim
	for i := range n {
		sim, err := fossim.New(fossim.Config{MAC: net.HardwareAddr{0, 0x19, 0x32, 0, 0x12, byte(i)}})
		if err != nil {
			b.Fatal(err)
		}
		var ln net.Listener
		if err := labns.Do(devNS, func() (err error) {
			ln, err = net.Listen("tcp4", fmt.Sprintf("192.0.2.10:%d", 8001+i))
			return err
		}); err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- sim.Run(ctx, ln, nil) }()
		b.Cleanup(func() { cancel(); <-done })
		devs = append(devs, berofos.Device{Name: fmt.Sprintf("fos%d", i+1), Host: ln.Addr().String()})
		sims = append(sims, sim)
	}
	client := berofos.NewClient(berofos.ClientOptions{
		Dial: func(ctx context.Context, network, addr string) (c net.Conn, err error) {
			err = labns.Do(nodeNS, func() (err error) {
				c, err = (&net.Dialer{}).DialContext(ctx, network, addr)
				return err
			})
			return c, err
		},
	})
	b.Cleanup(client.Close)
	measureRoleChange(b, client, devs, sims)
}

func BenchmarkRoleChangeLab1Device(b *testing.B)  { benchRoleChangeLab(b, 1) }
func BenchmarkRoleChangeLab4Devices(b *testing.B) { benchRoleChangeLab(b, 4) }

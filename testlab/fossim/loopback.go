package fossim

import (
	"context"
	"net"
	"testing"

	"github.com/redundantd/redundantd/berofos"
)

// StartLoopback runs a simulated device on loopback ephemeral ports (HTTP and GBL4) until
// the test ends, and returns it with the device entry that reaches it (its UDPPort set, as
// bnfos.conf cannot say it). A Run error is reported as a test error at cleanup.
func StartLoopback(tb testing.TB, name string, cfg Config) (*Sim, berofos.Device) {
	tb.Helper()
	sim, err := New(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		ln.Close()
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- sim.Run(ctx, ln, pc) }()
	tb.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			tb.Errorf("simulated berofos %s: %v", name, err)
		}
	})
	dev := berofos.Device{Name: name, Host: ln.Addr().String(), MAC: sim.cfg.MAC,
		UDPPort: pc.LocalAddr().(*net.UDPAddr).Port}
	if cfg.Password != "" {
		dev.Login = "admin:" + cfg.Password
	}
	return sim, dev
}

package testlab

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"path/filepath"

	"github.com/redundantd/redundantd/berofos"
	"github.com/redundantd/redundantd/testlab/fossim"
)

// Berofos is a simulated berofos (testlab/fossim) on an extra host of the lab, answering HTTP
// on port 80 and GBL4 on its standard UDP port at the host's address.
type Berofos struct {
	Sim    *fossim.Sim
	Host   *Node          // the extra host it runs on
	Device berofos.Device // how the daemon reaches it
	Conf   string         // a bnfos.conf naming it, in the lab's directory
}

// StartBerofos adds an extra host called name, runs a simulated berofos on it until the lab
// is closed or ctx ends, and writes a bnfos.conf for it. cfg.IP, Netmask and Gateway default to
// the host's address and the lab subnet.
func (l *Lab) StartBerofos(ctx context.Context, name string, cfg fossim.Config) (*Berofos, error) {
	h, err := l.AddHost(name)
	if err != nil {
		return nil, err
	}
	if !cfg.IP.IsValid() {
		cfg.IP = h.Addr
	}
	if !cfg.Netmask.IsValid() {
		m := net.CIDRMask(l.Subnet.Bits(), 32)
		cfg.Netmask = netip.AddrFrom4([4]byte(m))
	}
	if !cfg.Gateway.IsValid() {
		cfg.Gateway, _ = l.hostAddr(1)
	}
	sim, err := fossim.New(cfg)
	if err != nil {
		return nil, fmt.Errorf("testlab: %w", err)
	}
	ln, pc, err := fossim.ListenIn(h.NSName, netip.AddrPortFrom(h.Addr, 80).String(),
		netip.AddrPortFrom(h.Addr, berofos.UDPPort).String())
	if err != nil {
		return nil, fmt.Errorf("testlab: %w", err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	context.AfterFunc(l.ctx, cancel)
	go func() {
		defer cancel()
		sim.Run(runCtx, ln, pc)
	}()
	mac := cfg.MAC
	if mac == nil {
		mac = net.HardwareAddr{0x00, 0x19, 0x32, 0x00, 0x12, 0x1D} // fossim's default
	}
	b := &Berofos{
		Sim:    sim,
		Host:   h,
		Device: berofos.Device{Name: name, Host: h.Addr.String(), MAC: mac},
		Conf:   filepath.Join(l.Dir, name+"-bnfos.conf"),
	}
	if cfg.Password != "" {
		b.Device.Login = "admin:" + cfg.Password
	}
	if err := berofos.WriteConf(b.Conf, []berofos.Device{b.Device}); err != nil {
		cancel()
		return nil, fmt.Errorf("testlab: %w", err)
	}
	return b, nil
}

// TOML is the daemon's [berofos] section for a node wired to port B (linesMode 1: relay mode
// A-B gives it the lines) or to port D (linesMode 0: A-D).
func (b *Berofos) TOML(linesMode int) string {
	return fmt.Sprintf("[berofos]\nenabled = true\nconf = %q\ndevices = [%q]\nlines_mode = %d\n",
		b.Conf, b.Device.Name, linesMode)
}

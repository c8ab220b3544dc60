package fossim

import (
	"fmt"
	"net"

	"github.com/vishvananda/netns"

	"github.com/redundantd/redundantd/testlab/labns"
)

// ListenIn opens the simulator's HTTP listener and GBL4 socket inside the named network
// namespace ("" for the current one), so that a lab can run a Sim in its bridge namespace
// from the root namespace. Either address may be "" to skip that socket.
func ListenIn(nsName, httpAddr, udpAddr string) (net.Listener, net.PacketConn, error) {
	var ln net.Listener
	var pc net.PacketConn
	open := func() error {
		var err error
		if httpAddr != "" {
			if ln, err = net.Listen("tcp", httpAddr); err != nil {
				return fmt.Errorf("fossim: http: %w", err)
			}
		}
		if udpAddr != "" {
			if pc, err = net.ListenPacket("udp4", udpAddr); err != nil {
				if ln != nil {
					ln.Close()
				}
				return fmt.Errorf("fossim: udp: %w", err)
			}
		}
		return nil
	}
	if nsName == "" {
		return ln, pc, open()
	}
	ns, err := netns.GetFromName(nsName)
	if err != nil {
		return nil, nil, fmt.Errorf("fossim: namespace %s: %w", nsName, err)
	}
	defer ns.Close()
	if err := labns.Do(ns, open); err != nil {
		return nil, nil, fmt.Errorf("fossim: in namespace %s: %w", nsName, err)
	}
	return ln, pc, nil
}

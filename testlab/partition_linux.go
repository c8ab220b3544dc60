package testlab

import "fmt"

// Isolate sets the node's port on the lab bridge isolated (on) or not. The bridge forwards
// nothing between two isolated ports but everything between an isolated port and the others,
// so isolating both nodes of a pair separates them while each keeps its carrier and still
// reaches the lab's extra hosts (a berofos, a phone): the split brain of a switch that drops
// the traffic between the two PBXs. CutLink (a pulled cable) cannot show it: without carrier
// a node leaves the protocol instead of becoming Master. The bridge's own sniffers (Timeline)
// still see every frame.
func (n *Node) Isolate(on bool) error {
	port, err := n.lab.bridge.LinkByName(n.portName)
	if err != nil {
		return fmt.Errorf("testlab: port %s of %s: %w", n.portName, n.Name, err)
	}
	if err := n.lab.bridge.LinkSetIsolated(port, on); err != nil {
		return fmt.Errorf("testlab: set port %s of %s isolated=%t: %w", n.portName, n.Name, on, err)
	}
	return nil
}

// Partition isolates (on) or rejoins (off) every node of the lab (not the extra hosts): the
// nodes stop hearing each other, VRRP, the peer link and the replication included, with
// their links up. On error the nodes already changed stay changed.
func (l *Lab) Partition(on bool) error {
	for _, n := range l.Nodes() {
		if err := n.Isolate(on); err != nil {
			return err
		}
	}
	return nil
}

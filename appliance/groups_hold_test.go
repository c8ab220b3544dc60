package appliance

import (
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redundantd/redundantd/testlab/memwire"
	"github.com/redundantd/redundantd/testlab/poll"
	"github.com/redundantd/redundantd/vrrp"
)

// linkRelay carries the peer link between two nodes of a test over loopback, so that the
// test can cut the link without stopping either daemon: Cut closes the relayed connections
// (each node's kernel sends FIN, as a dead peer's does) and refuses new ones.
type linkRelay struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	conns  []net.Conn
	cut    bool
	wg     sync.WaitGroup
}

// newLinkRelay listens on loopback and relays every connection to target.
func newLinkRelay(t *testing.T, target string) *linkRelay {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &linkRelay{ln: ln, target: target}
	r.wg.Go(r.accept)
	t.Cleanup(func() { r.Cut(); r.wg.Wait() })
	return r
}

func (r *linkRelay) accept() {
	for {
		c, err := r.ln.Accept()
		if err != nil {
			return
		}
		o, err := net.Dial("tcp", r.target)
		if err != nil {
			c.Close()
			continue
		}
		r.mu.Lock()
		if r.cut {
			r.mu.Unlock()
			c.Close()
			o.Close()
			return
		}
		r.conns = append(r.conns, c, o)
		r.mu.Unlock()
		pipe := func(dst, src net.Conn) {
			io.Copy(dst, src)
			dst.Close()
			src.Close()
		}
		r.wg.Go(func() { pipe(o, c) })
		r.wg.Go(func() { pipe(c, o) })
	}
}

// Cut closes the listener and every relayed connection; it is safe to call twice.
func (r *linkRelay) Cut() {
	r.mu.Lock()
	r.cut = true
	conns := r.conns
	r.conns = nil
	r.mu.Unlock()
	r.ln.Close()
	for _, c := range conns {
		c.Close()
	}
}

// holdNode is an appliance with two groups (LAN eth0, WAN eth1) and the peer link.
type holdNode struct {
	a        *Appliance
	lan, wan *memwire.Member
	runner
}

// twoGroupNodesLinked starts node 0 (pbx-a, priority 200) until its unit is Master, then node
// 1 (pbx-b, priority 100) as its Backup, each with a LAN and a WAN group on lan and wan, and
// the peer link from pbx-a (the lower address dials) through a relay to pbx-b; it waits
// until pbx-b sees pbx-a as Master holding every virtual IP of its unit.
func twoGroupNodesLinked(t *testing.T, lan, wan *memwire.Segment) ([2]*holdNode, *linkRelay) {
	t.Helper()
	var lns [2]net.Listener
	var cfgs [2]*Config
	for i := range 2 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns[i] = ln
		cfgs[i] = groupNodeConfig(t, i, true)
	}
	relay := newLinkRelay(t, lns[1].Addr().String())
	peerAddr := [2]string{relay.ln.Addr().String(), lns[0].Addr().String()}
	for i := range 2 {
		fp, err := Fingerprint(cfgs[1-i])
		if err != nil {
			t.Fatal(err)
		}
		cfgs[i].Sync.PeerFingerprint = fp
		cfgs[i].Peer = PeerLinkConfig{Enabled: true, Listen: lns[i].Addr().String(), Address: peerAddr[i], Interval: 100 * time.Millisecond}
	}
	var nodes [2]*holdNode
	for i := range 2 {
		n := &holdNode{lan: lan.Join(cfgs[i].Node.ID, cfgs[i].Node.Address), wan: wan.Join(cfgs[i].Node.ID, cfgs[i].Redundancy.Groups[0].Address)}
		members := map[string]*memwire.Member{"eth0": n.lan, "eth1": n.wan}
		apiLn, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		n.a, err = New(cfgs[i], Options{APIListener: apiLn, PeerListener: lns[i], DialVRRP: func(c vrrp.Config) (Router, error) {
			m := members[c.Interface]
			return vrrp.New(c, m, m, m)
		}})
		if err != nil {
			t.Fatal(err)
		}
		n.run(t, n.a)
		nodes[i] = n
		want := [2]string{"master", "backup"}[i]
		poll.Until(t, 5*time.Second, fmt.Sprintf("node %d %s", i, want), func() bool { return n.a.role() == want })
	}
	poll.Until(t, 5*time.Second, "pbx-b seeing pbx-a Master holding both groups' addresses", func() bool {
		v := nodes[1].a.peerView()
		return v.Connected && v.Role == PeerRoleMaster && v.HoldsAddresses
	})
	return nodes, relay
}

// heldGroups returns the names of the node's groups that are held Backups now.
func heldGroups(a *Appliance) []string {
	var out []string
	for _, m := range a.router.(unitRouter).Members() {
		if m.State == vrrp.StateBackup && m.Held {
			out = append(out, m.Name)
		}
	}
	return out
}

// The second heartbeat with groups (issue 8 sections 2 and 4): the adverts of both groups
// stop reaching the Backup while the peer link shows the Master alive holding all its
// addresses: the Backup's unit stays Backup, both groups held, and says so. When the peer
// link closes too (as a dead Master's kernel closes it), the Backup's unit takes over every
// group together.
func TestGroupsAdvertsLostMasterAliveOnPeerLink(t *testing.T) {
	lan, wan := memwire.New(), memwire.New()
	n, relay := twoGroupNodesLinked(t, lan, wan)
	n[0].lan.Cut(true) // no advert passes on either segment; the peer link still does
	n[0].wan.Cut(true)
	poll.Until(t, 10*time.Second, "both groups of pbx-b held", func() bool {
		return slices.Equal(heldGroups(n[1].a), []string{"eth0/18", "eth1/18"})
	})
	var lost []string
	for _, e := range n[1].a.events.log.all() {
		if e.Name == "adverts lost" {
			lost = append(lost, e.Description)
		}
	}
	if len(lost) == 0 || !strings.HasPrefix(lost[0], "group eth") || !strings.Contains(lost[0], "Master alive on the peer link") {
		t.Errorf("pbx-b's adverts lost events %q: want one naming its group", lost)
	}
	if r := n[1].a.role(); r != "backup" {
		t.Fatalf("held pbx-b's unit is %s", r)
	}
	if h, w := lan.Holders(vip), wan.Holders(wanVIP); !slices.Equal(h, []string{"pbx-a"}) || !slices.Equal(w, []string{"pbx-a"}) {
		t.Fatalf("holders LAN %v WAN %v with the Master alive on the peer link; want pbx-a only", h, w)
	}
	if slices.Contains(eventNames(n[1].a), "became master") {
		t.Fatalf("pbx-b became Master while held: %v", eventNames(n[1].a))
	}

	relay.Cut() // the second heartbeat is gone too: nothing says pbx-a is alive
	poll.Until(t, 5*time.Second, "pbx-b master of the unit", func() bool { return n[1].a.role() == "master" })
	poll.Until(t, 5*time.Second, "pbx-b holding both groups' addresses", func() bool {
		return slices.Contains(lan.Holders(vip), "pbx-b") && slices.Contains(wan.Holders(wanVIP), "pbx-b")
	})
	for _, m := range n[1].a.router.(unitRouter).Members() {
		if m.State != vrrp.StateMaster {
			t.Errorf("pbx-b's group %s is %s after the takeover", m.Name, m.State)
		}
	}
	if got := lastMasterEvent(n[1].a); !strings.Contains(got, "group eth") {
		t.Errorf("pbx-b's takeover %q: want the unit's, naming the group that moved it", got)
	}
}

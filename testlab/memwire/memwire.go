// Package memwire is an in-memory network segment for VRRP engines: the vrrp.Conn,
// vrrp.Addresser and vrrp.Announcer of several vrrp.Routers in one process, so that tests
// of what is built on the engine (the appliance's swap, modes, peer status) run real
// Routers without root or namespaces. Adverts are delivered to every other member as a
// multicast segment would (TTL 255), the addresses each member holds are tracked, and a
// member can be cut off the segment.
package memwire

import (
	"net"
	"net/netip"
	"slices"
	"sync"

	"github.com/redundantd/redundantd/vrrp"
)

// Segment is one broadcast domain.
type Segment struct {
	mu      sync.Mutex
	members []*Member
	holders map[netip.Prefix][]string // virtual IP -> names of the members holding it
}

// New returns an empty segment.
func New() *Segment { return &Segment{holders: map[netip.Prefix][]string{}} }

// Member is one node's attachment: its Conn, Addresser and Announcer.
type Member struct {
	seg    *Segment
	name   string
	src    netip.Addr
	in     chan vrrp.Inbound
	closed chan struct{}
	once   sync.Once
	mu     sync.Mutex
	cut    bool
}

var (
	_ vrrp.Conn      = (*Member)(nil)
	_ vrrp.Addresser = (*Member)(nil)
	_ vrrp.Announcer = (*Member)(nil)
)

// Join attaches a node with the given name and primary address.
func (s *Segment) Join(name string, src netip.Addr) *Member {
	m := &Member{seg: s, name: name, src: src, in: make(chan vrrp.Inbound, 64), closed: make(chan struct{})}
	s.mu.Lock()
	s.members = append(s.members, m)
	s.mu.Unlock()
	return m
}

// Receive returns the next advert sent by another member.
func (m *Member) Receive() (vrrp.Inbound, error) {
	select {
	case in := <-m.in:
		return in, nil
	case <-m.closed:
		return vrrp.Inbound{}, net.ErrClosed
	}
}

// Send delivers the advert to every other member that is not cut off (a full queue drops
// it, as a busy segment would), whatever dst is, as sent to dst.
func (m *Member) Send(b []byte, dst netip.Addr) error {
	if m.isCut() {
		return nil
	}
	m.seg.mu.Lock()
	others := slices.Clone(m.seg.members)
	m.seg.mu.Unlock()
	for _, o := range others {
		if o == m || o.isCut() {
			continue
		}
		in := vrrp.Inbound{Src: m.src, Dst: dst, TTL: 255, Payload: slices.Clone(b)}
		select {
		case o.in <- in:
		default:
		}
	}
	return nil
}

// Close detaches the Conn; Receive returns net.ErrClosed.
func (m *Member) Close() error {
	m.once.Do(func() { close(m.closed) })
	return nil
}

// Add records that this member holds vips.
func (m *Member) Add(vips []netip.Prefix) error {
	m.seg.mu.Lock()
	defer m.seg.mu.Unlock()
	for _, p := range vips {
		if !slices.Contains(m.seg.holders[p], m.name) {
			m.seg.holders[p] = append(m.seg.holders[p], m.name)
		}
	}
	return nil
}

// Remove records that this member no longer holds vips.
func (m *Member) Remove(vips []netip.Prefix) error {
	m.seg.mu.Lock()
	defer m.seg.mu.Unlock()
	for _, p := range vips {
		m.seg.holders[p] = slices.DeleteFunc(m.seg.holders[p], func(n string) bool { return n == m.name })
	}
	return nil
}

// Announce does nothing: the segment has no ARP caches.
func (m *Member) Announce([]netip.Addr) error { return nil }

// Cut takes the member off the segment (true) or puts it back (false): it neither sends
// nor receives adverts meanwhile, as with a pulled cable.
func (m *Member) Cut(on bool) {
	m.mu.Lock()
	m.cut = on
	m.mu.Unlock()
}

func (m *Member) isCut() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.cut
}

// Holders returns the names of the members holding p, in the order they took it.
func (s *Segment) Holders(p netip.Prefix) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.holders[p])
}

package appliance

import (
	"net/netip"
	"time"
)

// DefaultPeerPort is the peer link's port (the API is 7400, the replication 7401).
const DefaultPeerPort = 7402

// PeerLinkConfig is the peer link between the two nodes ([peer], docs/peer.md): status both
// ways, the swap hand-over and backup-mode changes, over TLS pinned with the replication's
// certificates (sync.peer_fingerprint), also when replication is off.
type PeerLinkConfig struct {
	Enabled bool
	Listen  string // this node's link address, default ":7402"
	// Address is the peer's link address, default redundancy.peer with listen's port.
	Address  string
	Interval time.Duration
}

type rawPeer struct {
	Enabled  *bool   `toml:"enabled"`
	Listen   *string `toml:"listen"`
	Address  *string `toml:"address"`
	Interval *string `toml:"interval"`
}

// validatePeerLink checks [peer]. The link is on by default whenever it can be: the peer's
// address is known (redundancy.peer or peer.address) and its certificate is pinned
// (sync.peer_fingerprint). Asked for explicitly, each missing piece is an error.
func validatePeerLink(p *problems, r *rawPeer, red RedundancyConfig, sc SyncConfig) PeerLinkConfig {
	pc := PeerLinkConfig{Listen: ":7402"}
	if r.Listen != nil {
		pc.Listen = *r.Listen
	}
	port, err := listenPort(pc.Listen)
	if err != nil {
		p.add("peer.listen", "%.60q: %v (for example \":7402\")", pc.Listen, err)
	}
	switch {
	case r.Address != nil:
		pc.Address = *r.Address
		if err := checkHostPort(pc.Address); err != nil {
			p.add("peer.address", "%.60q: %v (for example \"192.0.2.12:7402\")", pc.Address, err)
		}
	case red.Peer.IsValid() && port != 0:
		pc.Address = netip.AddrPortFrom(red.Peer, port).String()
	}
	pc.Interval = p.duration("peer.interval", r.Interval, time.Second, 100*time.Millisecond, 10*time.Second)
	possible := pc.Address != "" && sc.PeerFingerprint != "" && red.Enabled
	pc.Enabled = possible
	if r.Enabled != nil {
		pc.Enabled = *r.Enabled
		if pc.Enabled && !possible {
			switch {
			case !red.Enabled:
				p.add("peer.enabled", "needs redundancy.enabled")
			case pc.Address == "":
				p.add("peer.enabled", "needs the peer's address: redundancy.peer or peer.address")
			default:
				p.add("peer.enabled", "needs sync.peer_fingerprint (run `redundantd -fingerprint` on the peer), also when [sync] is off")
			}
		}
	}
	if pc.Enabled && sc.Enabled && port != 0 {
		if sp, err := listenPort(sc.Listen); err == nil && sp == port {
			p.add("peer.listen", "%s and sync.listen %q would listen on the same port", pc.Listen, sc.Listen)
		}
	}
	return pc
}

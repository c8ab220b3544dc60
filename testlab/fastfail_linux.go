package testlab

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/redundantd/redundantd/appliance"
	"github.com/redundantd/redundantd/testlab/poll"
)

// CablePeers lays a cable between nodes 1 and 2 (Crosslink) and points each node's peer link
// at the other's end of it ([peer] address), before the pair is started (StartPBXs): the
// adverts and the replication keep to the bridge, the peer link to the cable, as on two PBX
// boxes with a crossover cable between them.
func CablePeers(l *Lab, ps [2]*PBX) error {
	a, b, err := l.Crosslink(l.Node(1), l.Node(2))
	if err != nil {
		return err
	}
	port := strconv.Itoa(appliance.DefaultPeerPort)
	ps[0].PeerAddress = net.JoinHostPort(b.String(), port)
	ps[1].PeerAddress = net.JoinHostPort(a.String(), port)
	return nil
}

// Events is the daemon's event log, oldest first.
func (p *PBX) Events(ctx context.Context) ([]appliance.Event, error) {
	var evs []appliance.Event
	err := p.API(ctx, http.MethodGet, "/api/v1/events", nil, &evs)
	return evs, err
}

// WaitEvent waits until the daemon's log holds an event named name after sequence number
// after, and returns the first such.
func (p *PBX) WaitEvent(ctx context.Context, name string, after uint64) (appliance.Event, error) {
	var found appliance.Event
	err := poll.Context(ctx, 20*time.Millisecond, func() bool {
		evs, err := p.Events(ctx)
		if err != nil {
			return false
		}
		for _, e := range evs {
			if e.Name == name && e.Seq > after {
				found = e
				return true
			}
		}
		return false
	})
	if err != nil {
		return found, fmt.Errorf("testlab: no event %q on %s: %w", name, p.Router.Node.Name, err)
	}
	return found, nil
}

// LastSeq is the sequence number of the daemon's newest event (0 when none).
func (p *PBX) LastSeq(ctx context.Context) (uint64, error) {
	evs, err := p.Events(ctx)
	if err != nil || len(evs) == 0 {
		return 0, err
	}
	return evs[len(evs)-1].Seq, nil
}

package appliance

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redundantd/redundantd/testlab/poll"
	"github.com/redundantd/redundantd/vrrp"
)

// lastMasterEvent returns the description of the node's last "became master" event.
func lastMasterEvent(a *Appliance) string {
	evs := a.events.log.all()
	for i := len(evs) - 1; i >= 0; i-- {
		if evs[i].Name == "became master" {
			return evs[i].Description
		}
	}
	return ""
}

// TestAdvertsLostMasterAliveOnPeerLink: the adverts stop reaching the Backup (the segment
// drops them) while the peer link, on another path, shows the Master alive and holding its
// addresses: the Backup stays Backup and says why. When the Master then stops, its link
// says goodbye and the protocol rules again: the Backup, whose Master_Down_Timer already
// fired, becomes Master at once.
func TestAdvertsLostMasterAliveOnPeerLink(t *testing.T) {
	seg, n := twoNodes(t, nil)
	poll.Until(t, 5*time.Second, "the Master's status holding its addresses", func() bool { return n[1].a.peerView().HoldsAddresses })
	n[0].member.Cut(true) // multicast no longer passes; the peer link (loopback) still does
	poll.Until(t, 10*time.Second, "the adverts lost event", func() bool { return slices.Contains(eventNames(n[1].a), "adverts lost") })
	if st := n[1].router.Status(); st.State != vrrp.StateBackup || !st.Held {
		t.Fatalf("the held Backup is %s (held %t)", st.State, st.Held)
	}
	if h := seg.Holders(vip); !slices.Equal(h, []string{"pbx-a"}) {
		t.Fatalf("holders %v with the Master alive on the peer link, want pbx-a only", h)
	}
	n[0].stop() // SIGTERM: the priority-0 advert is lost on the cut segment, the bye is not
	poll.Until(t, 5*time.Second, "the Backup taking over", func() bool { return n[1].a.role() == "master" })
	desc := lastMasterEvent(n[1].a)
	if !strings.Contains(desc, "held since") || slices.Contains(eventNames(n[1].a), "peer crashed") {
		t.Errorf("takeover %q (events %v): want the protocol's takeover after the hold, not the crash rule", desc, eventNames(n[1].a))
	}
	if v := n[1].a.peerView(); v.Ended != PeerEndBye {
		t.Errorf("the stopped Master's link ended %q, want %q", v.Ended, PeerEndBye)
	}
}

package vrrp

import "time"

// announceSchedule decides when a Master announces its virtual addresses to the segment
// (gratuitous ARP for IPv4; the Announcer decides the frame, so the schedule is the same for
// any family). It is pure, like the Machine: the Router tells it what happened at which time
// and arms one timer at its deadline.
//
// On becoming Master, and on a Reassert (RFC 3768 section 6.4.3's Master that hears a Master it
// outranks, the usual end of a split brain), it asks for a burst of count rounds, interval
// apart, the first at once; a Reassert during a burst does not start another. With refresh set
// it then asks for one round every refresh for as long as the node is Master (keepalived's
// garp_master_refresh): switches and phones age their ARP entries out or missed the burst (a
// port still in STP learning, a phone booting), and a periodic announcement puts them right
// without waiting for their own ARP request.
type announceSchedule struct {
	count    int           // rounds in a burst; at least 1
	interval time.Duration // between the rounds of a burst
	refresh  time.Duration // between refresh rounds after a burst; 0: none

	active bool      // the node holds the addresses: rounds may be asked for
	left   int       // rounds of the current burst still to send after the last one
	next   time.Time // when the next round is due; zero: none
}

// burst starts a burst at now (the addresses were just installed): the caller sends a round
// now, and the rest follow at the deadline.
func (s *announceSchedule) burst(now time.Time) {
	s.active = true
	s.left = s.count
	s.sent(now)
}

// reassert starts a burst at now unless one is running, and says whether the caller must
// send a round now. It does nothing on a node that does not hold the addresses.
func (s *announceSchedule) reassert(now time.Time) bool {
	if !s.active || s.left > 0 {
		return false
	}
	s.burst(now)
	return true
}

// due says whether a round is due at now, and if so schedules the one after it: the caller
// sends it. A timer that fires early (or for a schedule changed since) gets false.
func (s *announceSchedule) due(now time.Time) bool {
	if !s.active || s.next.IsZero() || now.Before(s.next) {
		return false
	}
	s.sent(now)
	return true
}

// sent accounts for a round sent at now and schedules the next one.
func (s *announceSchedule) sent(now time.Time) {
	if s.left > 0 {
		s.left--
	}
	switch {
	case s.left > 0:
		s.next = now.Add(s.interval)
	case s.refresh > 0:
		s.next = now.Add(s.refresh)
	default:
		s.next = time.Time{}
	}
}

// stop ends every round: the addresses are gone (or going).
func (s *announceSchedule) stop() {
	s.active, s.left, s.next = false, 0, time.Time{}
}

// configure changes the settings at now (a reload). count applies from the next burst;
// interval from the next round of a running burst (the round already due keeps its time). A new refresh applies at once: a node between
// refresh rounds has its next round refresh after now (none when refresh is 0).
func (s *announceSchedule) configure(now time.Time, count int, interval, refresh time.Duration) {
	s.count, s.interval = count, interval
	if refresh == s.refresh {
		return
	}
	s.refresh = refresh
	if !s.active || s.left > 0 {
		return
	}
	if refresh > 0 {
		s.next = now.Add(refresh)
	} else {
		s.next = time.Time{}
	}
}

// deadline is when the Router must call due next; zero when nothing is scheduled.
func (s *announceSchedule) deadline() time.Time { return s.next }

package vrrp

import "time"

// maxStampAge is the oldest a kernel receive time may make an advert. Beyond it the stamp is
// not believed: an advert waits in the socket for as long as the reader goroutine is kept from
// running (up to ~130 ms seen on a loaded 2-core machine), not for seconds, so a larger age
// means the wall clock was stepped between the stamp and the reading.
const maxStampAge = time.Second

// arrival dates a received datagram on the monotonic clock: now (a time.Now reading taken
// after the datagram was read, monotonic reading included) less the datagram's age, which is
// now's wall-clock reading less stamp, the kernel's CLOCK_REALTIME receive time.
//
// The kernel stamp cannot be used as it is: the Machine runs on the monotonic clock, and a
// wall-clock reading mixed into it would move every timer whenever NTP steps or slews the
// clock. Only the age, a difference of two wall-clock readings microseconds to milliseconds
// apart, comes from the wall clock. A zero stamp (none came), a negative age (the wall clock
// stepped back in between) or one above maxStampAge (stepped forward) gives now: the
// reader's own time, as before kernel stamps, never a date in the future or seconds back.
func arrival(now, stamp time.Time) time.Time {
	if stamp.IsZero() {
		return now
	}
	age := now.Round(0).Sub(stamp) // Round(0): wall readings only, stamp has no monotonic one
	if age < 0 || age > maxStampAge {
		return now
	}
	return now.Add(-age)
}

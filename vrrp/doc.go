// Package vrrp implements the Virtual Router Redundancy Protocol, version 2 (RFC 3768) and
// version 3 (RFC 9568, which obsoletes RFC 5798), for redundantd: the advertisement wire format,
// the section 6.4 state machine and, around them, the Linux I/O that sends and receives adverts
// and owns the virtual addresses.
//
// The package is split in two halves.
//
// The pure half has no clock, no sockets and no goroutines:
//
//   - [Advertisement] is the RFC 3768 / RFC 9568 section 5 packet, with Marshal, Unmarshal
//     (taking a [PseudoHeader]), MarshalBinary and UnmarshalBinary (version 2) and Validate. Parsing copies its input and fails with wrapped sentinel errors ([ErrTooShort],
//     [ErrVersion], [ErrChecksum], ...), so callers can both log the detail and classify it
//     with errors.Is.
//   - [Machine] is the section 6.4 state machine (Initialize, Backup, Master) together with
//     every receive check of section 7.1. It is driven with explicit times: Start, Receive, Tick,
//     SetPriority, Resign, TakeOver, Fault and Shutdown all take `now` and return the [Action]s the caller must perform
//     ([SendAdvert], [Transition], [Reassert]), and [Machine.Deadline] says when Tick must next be called.
//     A packet that fails any check changes no state and no timer; it is only counted.
//
// The I/O half (the Router) owns a Machine and performs its actions on a raw IP socket.
//
// # Beyond RFC 3768
//
// For the appliance's operator workflow the Machine, and the Router around it, add:
//
//   - passive mode ([Router.SetPassive]): a Backup that never takes over on its own;
//   - [Router.Resign]: a Master steps down with a priority-0 advert and does not preempt back
//     until it next becomes Master through Master_Down_Timer or [Router.TakeOver];
//   - [Router.TakeOver]: a Backup becomes Master now;
//   - [Router.Reload]: priority, preemption and the gratuitous ARP settings change at run time;
//   - holding ([Router.SetHold], hold.go): for a caller with a second heartbeat, a Backup's
//     Master_Down_Timer that fires for want of adverts reports [Held] instead of making it
//     Master, until released;
//   - faults: an interface that is deleted or renamed away, down, without carrier, dormant
//     or without the Primary address takes the node out of the protocol (Initialize,
//     [Status].Fault) until it is usable again; one deleted and created again under the same
//     name (or another renamed to it) is followed to its new index, and a Primary Dial picked
//     to the interface's new address (a new MAC's link-local address; the verdict and the
//     pick are the pure linkVerdict, the Machine's inputs Fault, ClearFault and SetPrimary);
//   - Config.GARPRefresh: a Master announces its addresses once per period after the burst,
//     as long as it is Master (the pure announceSchedule decides every round);
//   - virtual-MAC mode records the parent's ARP settings before changing them, so that the
//     next start restores what a killed run could not.
//   - [Unit]: several Routers of one node (a LAN and a WAN interface, more VRIDs) move as one,
//     keepalived's vrrp_sync_group: when one must leave Master all resign, when one becomes
//     Master the others take over, and the Unit has one role. Its decisions are a pure core
//     (unitCore, table-tested) like the Machine's. Each Router's socket passes only its own
//     VRID (a BPF filter), so many groups on one interface cost n, not n², wake-ups.
//
// Every [Transition] and [Event] carries a [Cause] that says why, for programs: "master down",
// "priority 0 from master", "preempted by higher priority", "preempting lower priority",
// "resigned", "takeover", "interface gone", "interface down", "interface back", "start",
// "address owner", "shutdown"; the Reason beside it is the same for people, with addresses,
// priorities and the operator's reason ("resigned: <reason>", "takeover: <reason>",
// "interface eth0 gone").
//
// # Versions
//
// The Version field of [Advertisement] selects the wire layout, [MachineConfig].Version (and
// [Config].Version) the protocol a virtual router speaks; a Machine drops adverts of the other
// version ("version"). Version 3 (RFC 9568) differs from version 2 in four ways:
//
//   - the advertisement interval is a 12-bit count of centiseconds (10 ms..40.95 s) where
//     version 2 has the auth type and a whole-seconds byte;
//   - the addresses may be IPv6; the message does not say which, the IP header does;
//   - there is no authentication;
//   - the checksum covers the IP pseudo-header (source, destination, protocol 112, length).
//
// The pseudo-header is an explicit argument, not a field: [Advertisement.Marshal] and
// [Advertisement.Unmarshal] take a [PseudoHeader] (the IP source and destination) and take the
// address family from it; MarshalBinary and UnmarshalBinary are the same with none, which
// suffices for version 2 and fails with [ErrPseudoHeader] for version 3.
// [PseudoHeader.Checksum] and [PseudoHeader.ChecksumValid] compute and verify the checksum of
// raw bytes. The receive path fills [Inbound].Dst from the IP_PKTINFO control message, and the
// Router marshals a version 3 advert once per destination ([Conn].Send takes the destination)
// because each unicast peer's copy has its own checksum.
//
// A version 3 Backup adopts the Master's advertised interval as Master_Adver_Interval and
// computes Skew_Time = ((256 - Priority) * Master_Adver_Interval) / 256 and
// Master_Down_Interval = 3 * Master_Adver_Interval + Skew_Time from it ([SkewTimeV3],
// [MasterDownIntervalV3]; RFC 9568 sections 6.1 and 6.4), in nanoseconds rather than whole
// centiseconds; version 2 keeps RFC 3768's fixed Skew_Time and drops an advert whose interval
// differs from its own.
//
// The Machine and the wire format are family-agnostic: an IPv6 Machine has a link-local
// Primary and IPv6 virtual addresses; [Dial] gives an IPv6 group its own I/O (below).
//
// # IPv6
//
// A [Config] whose virtual addresses are IPv6 ([Config.IPv6]) is an IPv6 virtual router,
// which RFC 9568 runs with version 3 only. The first virtual address must be the group's
// link-local one (section 5.2.9); IPv4 and IPv6 never share a group. [Dial] gives it the IPv6
// transport of section 5.1.2: a raw IPv6 socket for next header 112 joined to ff02::12,
// sending from the interface's link-local address (the Primary, also the tie-breaker) with hop
// limit 255 and reporting the hop limit, interface and destination of what it receives. The
// kernel computes no checksum for next header 112; the Conn writes the pseudo-header checksum
// ([PseudoHeader]) for each destination. Virtual addresses are added with IFA_F_NODAD, so they
// are never tentative (a tentative address cannot be used as a source nor is it defended);
// unsolicited Neighbor Advertisements (RFC 4861 section 7.2.6: to ff02::1, hop limit 255,
// Override set, the Router flag as [Config.NARouter] says, a Target Link-Layer Address option)
// take the place of gratuitous ARP. Virtual-MAC mode uses 00-00-5E-00-02-{VRID} (section 7.3)
// on a macvlan "vrrp6.<VRID>" that holds the virtual addresses while Master and no address
// of its own (adverts leave from it with the parent's link-local address, IPV6_FREEBIND);
// while the node is not Master a tc filter drops everything leaving it, so a Backup sends no
// frame from the virtual MAC (no MLD report; see vmacGate).
//
// # Authentication
//
// RFC 3768 removed authentication; auth types 1 (plain text) and 2 (IP AH) are kept as reserved
// values for RFC 2338 compatibility. keepalived still sends type 1 when configured with
// `auth_type PASS`, so the Machine accepts and sends type 1 and checks the 8-byte
// authentication data. It gives no security: the password travels in clear text. Type 2 is
// parsed but never accepted by a Machine.
package vrrp

// Package vrrp implements the Virtual Router Redundancy Protocol, version 2 (RFC 3768), for
// redundantd: the advertisement wire format, the section 6.4 state machine and, around them,
// the Linux I/O that sends and receives adverts and owns the virtual addresses.
//
// The package is split in two halves.
//
// The pure half has no clock, no sockets and no goroutines:
//
//   - [Advertisement] is the RFC 3768 section 5 packet, with MarshalBinary, UnmarshalBinary and
//     Validate. Parsing copies its input and fails with wrapped sentinel errors ([ErrTooShort],
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
//   - faults: an interface that is deleted, down, without carrier or without the Primary
//     address takes the node out of the protocol (Initialize, [Status].Fault) until it is
//     usable again.
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
// The Version field of [Advertisement] selects the wire layout. Only version 2 is implemented.
// VRRPv3 (RFC 5798) differs in three ways that the layout switch is built to absorb: the
// advertisement interval becomes a 12-bit count of centiseconds where version 2 has the auth
// type and a whole-seconds byte, addresses may be IPv6 (the family comes from the IP header, not
// the VRRP message), there is no authentication data, and the checksum covers an IP
// pseudo-header. Version 3 is rejected with an error wrapping [ErrVersion] until then.
//
// # Authentication
//
// RFC 3768 removed authentication; auth types 1 (plain text) and 2 (IP AH) are kept as reserved
// values for RFC 2338 compatibility. keepalived still sends type 1 when configured with
// `auth_type PASS`, so the Machine accepts and sends type 1 and checks the 8-byte
// authentication data. It gives no security: the password travels in clear text. Type 2 is
// parsed but never accepted by a Machine.
package vrrp

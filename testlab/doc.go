// Package testlab builds a network-namespace lab on one Linux machine and drives the real
// redundantd and keepalived binaries in it, so the VRRP engine (RFC 3768) can be proved end to
// end without a second host.
//
// A Lab is one bridge namespace holding the bridge br0 plus N node namespaces, each joined to
// br0 by a veth pair whose node end is called eth0. Everything is created through netlink (no
// `ip` binary), every namespace is named uniquely per lab (prefix, process id, counter) so labs
// can run in parallel, and Close removes all of it, including the processes started in it.
//
// Observation is passive: SniffVRRP reads every VRRP frame on the bridge (AF_PACKET,
// promiscuous, stamped with the kernel's receive time so a late reader does not skew it),
// WatchVIP follows a virtual IP in every node through
// netlink address notifications, and Timeline keeps both so a failover can be measured from
// the last advertisement heard to the moment the new Master holds the address.
//
// The product never imports this package.
package testlab

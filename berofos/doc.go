// Package berofos drives beroNet berofos relay boxes: the 4-port ISDN failover switch that
// moves the provider's lines (port A) between two PBX nodes (ports B and D) or, in the bypass
// scenario, between a new PBX and an old one.
//
// The package has four parts:
//
//   - the UDP management protocol "GBL4" (port 50123): scan, ping, watchdog kick, netconf,
//     reset and firmware flash frames ([Frame], [ScanReply], [Request], ...);
//   - the HTTP interface: /config.txt parsing ([ConfigTxt]) and the "/?cmd=N&param=value"
//     sets described by the bnfos key table ([Keys]);
//   - /etc/bnfos.conf, the device list written by "bnfos --scan -x" ([ParseConf], [WriteConf]);
//   - [Client], which speaks both protocols, and [Controller], which keeps every configured
//     device in the relay mode the appliance wants, confirmed by read-back.
//
// The facts about the device come from the bntools source (bnfos, res_bnfos), rsclib and the
// berofos user manual; see docs/berofos.md for the operator's view. Relay mode 0 connects A-D
// (also the state without power); mode 1 connects A-B (fallback scenario) or A-B and C-D
// (bypass scenario).
package berofos

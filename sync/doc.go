// Package sync replicates the PBX's configuration and voicemail trees from the VRRP Master (the
// source) to the Backup (the replica), and merges back what a node changed while it was
// Master when the nodes meet again. Importers alias it pbxsync: it shadows the standard
// library's sync.
//
// A Node runs on each machine. Run serves the sync port on a listener the caller opened
// (Ready is closed once it does; Config.Dial, when set, reaches the peer); SetRole follows
// the VRRP state
// (Master: RoleSource, Backup: RoleReplica). The source connects to its peer over TLS 1.3 with
// both certificates pinned by fingerprint and runs a sync on a cron/v3 schedule, on SyncNow,
// and (Config.Watch) shortly after inotify reports a change.
//
// A run: both nodes stat-walk their trees against a persistent manifest (bbolt) and only
// rehash what moved; the replica answers with a digest, so a run with nothing to do is one
// round trip. Otherwise the source decides per path, three-way between its state, the
// replica's state and the state both last agreed on, and sends folders, content the replica
// already has (copied or hard-linked there: renamed or renumbered voicemail), rsync-style
// deltas computed from block sums the source kept of the replica's version, whole files
// (zstd for text), voicemail .txt files last, and deletes into a trash inside each tree (a
// rename, no copy) with retention behind a max-delete guard. The replica writes each file to a temporary file in the same folder,
// fsyncs and renames it, and fsyncs the folders at commit: a reader never sees a partial
// file, and a failed run deletes nothing.
//
// The protocol's frames and messages are in wire.go and messages.go; docs/sync.md is the
// operator's view.
package sync

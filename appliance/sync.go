package appliance

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"

	pbxsync "github.com/redundantd/redundantd/sync"
	"github.com/redundantd/redundantd/vrrp"
)

// SyncStateDir is where the replication keeps its manifest and certificate (the trash is in
// each replicated tree, docs/sync.md).
func SyncStateDir(cfg *Config) string { return filepath.Join(cfg.Node.StateDir, "sync") }

// Fingerprint returns this node's sync certificate fingerprint, creating the certificate on
// first use, for the operator to configure as sync.peer_fingerprint on the other node.
func Fingerprint(cfg *Config) (string, error) {
	return pbxsync.LocalFingerprint(SyncStateDir(cfg))
}

// syncPart makes the replication follow the role: the Master is the source, a Backup (Active
// or Passive) the replica; after a failover the new Master is the source.
type syncPart struct {
	n *pbxsync.Node
}

func newSyncPart(cfg *Config, log *slog.Logger, record func(Event) Event) (*syncPart, error) {
	sc := cfg.Sync
	n, err := pbxsync.New(pbxsync.Config{
		Paths:           sc.Paths,
		StateDir:        SyncStateDir(cfg),
		Listen:          sc.Listen,
		Peer:            sc.Peer,
		PeerFingerprint: sc.PeerFingerprint,
		Interval:        sc.Interval,
		Watch:           sc.Watch,
		TrashRetention:  sc.TrashRetention,
		MaxDeleteShare:  sc.MaxDelete,
		Logger:          log,
		OnEvent:         runOutcome(record),
	})
	if err != nil {
		return nil, err
	}
	return &syncPart{n: n}, nil
}

func (p *syncPart) Name() string                  { return "sync" }
func (p *syncPart) Run(ctx context.Context) error { return p.n.Run(ctx) }
func (p *syncPart) Status() any                   { return p.n.Status() }

func (p *syncPart) Follow(role vrrp.State) {
	switch role {
	case vrrp.StateMaster:
		p.n.SetRole(pbxsync.RoleSource)
	case vrrp.StateBackup:
		p.n.SetRole(pbxsync.RoleReplica)
	default:
		p.n.SetRole(pbxsync.RoleNone)
	}
}

// SyncNow runs one replication immediately; the Master calls it before a planned swap.
func (p *syncPart) SyncNow(ctx context.Context) (pbxsync.RunStats, error) { return p.n.SyncNow(ctx) }

// runOutcome names the runs the operator must hear of: the first failed run after a good one
// is "failed" (warning), the first good one after a failure "recovered" (notice); the others
// stay "run". Events arrive one at a time from the replication's goroutine.
func runOutcome(record func(Event) Event) func(pbxsync.Event) {
	failing := false
	return func(e pbxsync.Event) {
		ev := syncEvent(e)
		if e.Kind == pbxsync.EventRun {
			switch {
			case e.Err != nil && !failing:
				failing, ev.Name = true, "failed"
			case e.Err == nil && failing:
				failing, ev.Name, ev.Priority = false, "recovered", PriorityNotice
			}
		}
		record(ev)
	}
}

func syncEvent(e pbxsync.Event) Event {
	ev := Event{Time: e.At, Priority: PriorityInfo, Application: AppSync, Name: string(e.Kind)}
	var b strings.Builder
	switch e.Kind {
	case pbxsync.EventRun:
		if s := e.Stats; s != nil {
			fmt.Fprintf(&b, "run: %d files (%d whole, %d delta, %d local), %d deleted, %d bytes sent in %s",
				s.Files, s.FilesWhole, s.FilesDelta, s.FilesLocal, s.Deleted, s.BytesSent, s.Duration.Round(1e6))
		} else {
			b.WriteString("run")
		}
	case pbxsync.EventConflict, pbxsync.EventWrongPeer, pbxsync.EventDeleteGuard, pbxsync.EventPeerRole:
		ev.Priority = PriorityWarning
		b.WriteString(string(e.Kind))
	case pbxsync.EventMerged:
		ev.Priority = PriorityNotice
		b.WriteString(string(e.Kind))
	case pbxsync.EventUnreadable:
		// The source could not read an entry: the Backup keeps its copy, the operator must
		// fix the permissions (issue 12 item 1).
		ev.Priority = PriorityWarning
		b.WriteString(string(e.Kind))
	default:
		b.WriteString(string(e.Kind))
	}
	if e.Path != "" {
		fmt.Fprintf(&b, " %s", e.Path)
	}
	if e.Detail != "" {
		fmt.Fprintf(&b, ": %s", e.Detail)
	}
	if e.Err != nil {
		ev.Priority = PriorityWarning
		fmt.Fprintf(&b, ": %v", e.Err)
	}
	ev.Description = b.String()
	return ev
}

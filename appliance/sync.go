package appliance

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"sync"

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
	n      *pbxsync.Node
	listen string          // sync.listen, opened by Run when ln is nil
	ln     *sharedListener // Options.SyncListener, or nil
}

// newSyncPart builds the replication from the configuration; its port is ln when the caller
// gave one (Options.SyncListener), sync.listen otherwise, and it reaches the peer with dial
// (Options.SyncDial) when not nil, at sync.peer otherwise.
func newSyncPart(cfg *Config, log *slog.Logger, record func(Event) Event, ln *sharedListener,
	dial func(context.Context) (net.Conn, error)) (*syncPart, error) {
	sc := cfg.Sync
	n, err := pbxsync.New(pbxsync.Config{
		Paths:           sc.Paths,
		StateDir:        SyncStateDir(cfg),
		Peer:            sc.Peer,
		PeerFingerprint: sc.PeerFingerprint,
		Interval:        sc.Interval,
		Watch:           sc.Watch,
		TrashRetention:  sc.TrashRetention,
		MaxDeleteShare:  sc.MaxDelete,
		Logger:          log,
		OnEvent:         runOutcome(record),
		Dial:            dial,
	})
	if err != nil {
		return nil, err
	}
	return &syncPart{n: n, listen: sc.Listen, ln: ln}, nil
}

func (p *syncPart) Name() string { return "sync" }
func (p *syncPart) Status() any  { return p.n.Status() }

// Run serves the sync port until ctx ends: the caller's listener (a view of it, which the
// next part built by a reload or a retry serves in turn), or one opened on sync.listen.
func (p *syncPart) Run(ctx context.Context) error {
	if p.ln != nil {
		return p.n.Run(ctx, p.ln.view())
	}
	ln, err := net.Listen("tcp", p.listen)
	if err != nil {
		return fmt.Errorf("sync: listen on %s: %w", p.listen, err)
	}
	return p.n.Run(ctx, ln)
}

// Ready is closed once the replication serves its port.
func (p *syncPart) Ready() <-chan struct{} { return p.n.Ready() }

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

// sharedListener is a listener the caller gave (Options.SyncListener) that the sync parts
// built in turn serve one after the other: a part's Node closes its listener when it stops,
// but a reload or a retry builds a new part that must serve the same port. One goroutine
// accepts on the real listener and hands connections to the current view; closing a view
// ends only its Accept. close (when the appliance's Run returns) closes the real listener.
type sharedListener struct {
	ln      net.Listener
	start   sync.Once
	conns   chan net.Conn
	failed  chan struct{} // closed when Accept on ln failed; err says why
	err     error
	closing chan struct{} // closed by close
	stop    sync.Once
}

func newSharedListener(ln net.Listener) *sharedListener {
	return &sharedListener{ln: ln, conns: make(chan net.Conn), failed: make(chan struct{}), closing: make(chan struct{})}
}

func (s *sharedListener) accept() {
	for {
		c, err := s.ln.Accept()
		if err != nil {
			s.err = err
			close(s.failed)
			return
		}
		select {
		case s.conns <- c:
		case <-s.closing:
			c.Close()
			return
		}
	}
}

// close closes the real listener; views then fail Accept with its error.
func (s *sharedListener) close() {
	s.stop.Do(func() {
		close(s.closing)
		s.ln.Close()
	})
}

// view returns a listener that serves the shared one until it is closed.
func (s *sharedListener) view() net.Listener {
	s.start.Do(func() { go s.accept() })
	return &listenerView{s: s, closed: make(chan struct{})}
}

type listenerView struct {
	s      *sharedListener
	once   sync.Once
	closed chan struct{}
}

var _ net.Listener = (*listenerView)(nil)

func (v *listenerView) Accept() (net.Conn, error) {
	select {
	case c := <-v.s.conns:
		return c, nil
	case <-v.closed:
		return nil, net.ErrClosed
	case <-v.s.failed:
		return nil, v.s.err
	}
}

func (v *listenerView) Close() error   { v.once.Do(func() { close(v.closed) }); return nil }
func (v *listenerView) Addr() net.Addr { return v.s.ln.Addr() }

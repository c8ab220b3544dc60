package appliance

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redundantd/redundantd/vrrp"
)

// accessPart is the seed's Backup Device GUI Access Port (seed 004 section 6): while this
// node is Master, a connection to console.backup_access_port is forwarded, byte for byte, to
// the other node's API listener (console.backup_console), so operators reach the Backup's
// console through the Master's address, e.g. http://192.0.2.100:7777/ on the virtual IP.
// The port follows the role: a Backup closes what it accepts, and a node that stops being
// Master cuts the connections it forwarded. Forwarding bytes, not HTTP, keeps TLS end to end
// (the browser talks to the Backup's own certificate) and keeps the Backup's log-in, CSRF
// and Host checks in force.
type accessPart struct {
	listen string
	target string
	ln     net.Listener // given by the caller (Options.AccessListener), else opened by Run
	dial   func(ctx context.Context, network, addr string) (net.Conn, error)
	retry  time.Duration
	log    *slog.Logger

	master    atomic.Bool
	forwarded atomic.Uint64
	refused   atomic.Uint64

	mu      sync.Mutex
	active  map[net.Conn]struct{} // both ends of every forwarded connection
	lastErr string
	bound   string
}

// AccessStatus is the forwarder's part of the status answer (parts.access).
type AccessStatus struct {
	Listen     string `json:"listen"`
	Target     string `json:"target"`
	Forwarding bool   `json:"forwarding"` // this node is Master: connections are forwarded
	Active     int    `json:"active"`     // connections forwarded now
	Forwarded  uint64 `json:"forwarded"`
	Refused    uint64 `json:"refused"` // accepted while Backup, closed at once
	LastError  string `json:"last_error,omitempty"`
}

func newAccessPart(listen, target string, ln net.Listener, retry time.Duration, log *slog.Logger) *accessPart {
	var d net.Dialer
	return &accessPart{listen: listen, target: target, ln: ln, dial: d.DialContext,
		retry: retry, log: log, active: map[net.Conn]struct{}{}}
}

func (p *accessPart) Name() string { return "access" }

func (p *accessPart) Status() any {
	p.mu.Lock()
	defer p.mu.Unlock()
	listen := p.listen
	if p.bound != "" {
		listen = p.bound
	}
	return AccessStatus{Listen: listen, Target: p.target, Forwarding: p.master.Load(), Active: len(p.active) / 2,
		Forwarded: p.forwarded.Load(), Refused: p.refused.Load(), LastError: p.lastErr}
}

// Follow starts forwarding on Master; any other role stops it and cuts the forwarded
// connections (they belong to the Master's address). It never blocks.
func (p *accessPart) Follow(role vrrp.State) {
	master := role == vrrp.StateMaster
	if p.master.Swap(master) && !master {
		p.mu.Lock()
		for c := range p.active {
			c.Close()
		}
		p.mu.Unlock()
	}
}

// Run accepts until ctx ends. A port that cannot be opened (in use) is retried every
// retry interval, and reported in the status; the node runs on without it.
func (p *accessPart) Run(ctx context.Context) error {
	for ctx.Err() == nil {
		ln := p.ln
		p.ln = nil
		if ln == nil {
			var lc net.ListenConfig
			l, err := lc.Listen(ctx, "tcp", p.listen)
			if err != nil {
				p.setErr(fmt.Sprintf("listen on %s: %v (retrying every %s)", p.listen, err, p.retry))
				select {
				case <-ctx.Done():
				case <-time.After(p.retry):
				}
				continue
			}
			ln = l
		}
		p.mu.Lock()
		p.bound, p.lastErr = ln.Addr().String(), ""
		p.mu.Unlock()
		p.serve(ctx, ln)
	}
	return nil
}

func (p *accessPart) setErr(msg string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.lastErr != msg {
		p.log.Warn("backup access port", "err", msg)
	}
	p.lastErr = msg
}

// serve accepts on ln until ctx ends or ln fails.
func (p *accessPart) serve(ctx context.Context, ln net.Listener) {
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	defer ln.Close()
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() == nil {
				p.setErr(fmt.Sprintf("accept on %s: %v", ln.Addr(), err))
			}
			return
		}
		if !p.master.Load() {
			p.refused.Add(1)
			c.Close()
			continue
		}
		wg.Go(func() { p.forward(ctx, c) })
	}
}

// forward connects c to the target and copies both ways until either side closes, the
// node stops being Master or ctx ends.
func (p *accessPart) forward(ctx context.Context, c net.Conn) {
	dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	up, err := p.dial(dctx, "tcp", p.target)
	cancel()
	if err != nil {
		p.setErr(fmt.Sprintf("the other node's console %s: %v", p.target, err))
		c.Close()
		return
	}
	if !p.track(c, up) {
		return
	}
	p.forwarded.Add(1)
	stop := context.AfterFunc(ctx, func() { c.Close(); up.Close() })
	defer stop()
	done := make(chan struct{}, 2)
	pipe := func(dst, src net.Conn) {
		_, _ = io.Copy(dst, src)
		// Half-close so that the other direction can finish (an HTTP answer after the
		// request's end), then let the other copy end the pair.
		if tc, ok := dst.(interface{ CloseWrite() error }); ok {
			_ = tc.CloseWrite()
		}
		done <- struct{}{}
	}
	go pipe(up, c)
	go pipe(c, up)
	<-done
	<-done
	p.untrack(c, up)
}

// track registers a forwarded pair; false (both closed) when the node stopped being
// Master meanwhile.
func (p *accessPart) track(c, up net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.master.Load() {
		c.Close()
		up.Close()
		return false
	}
	p.active[c], p.active[up] = struct{}{}, struct{}{}
	return true
}

func (p *accessPart) untrack(c, up net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.active, c)
	delete(p.active, up)
	c.Close() // either may be closed already (Follow, ctx); nothing to report
	up.Close()
}

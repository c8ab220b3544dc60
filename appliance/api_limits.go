package appliance

import (
	"context"
	"net"
	"net/http"
	"sync"
	"time"
)

// The API's protections against a client that opens connections and never uses them, or
// floods the node with requests (issue 12 items 4 and 8).
const (
	apiMaxConns          = 64               // connections held open at once
	apiReadHeaderTimeout = 5 * time.Second  // a new connection must send its request line by then
	apiReadTimeout       = 10 * time.Second // the whole request
	apiWriteTimeout      = 30 * time.Second // an answer (a sync run extends its own)
	apiIdleTimeout       = 30 * time.Second // a keep-alive connection with no request
	apiSilentAfter       = time.Second      // a new connection that sent nothing yet may be closed for room
	apiMutatingRate      = 2                // mutating requests per second, sustained
	apiMutatingBurst     = 10
)

// newAPIServer returns the API's HTTP server with its timeouts, and the listener wrapper that
// bounds its connections.
func newAPIServer(h http.Handler, ln net.Listener) (*http.Server, *connLimiter) {
	cl := &connLimiter{Listener: ln, max: apiMaxConns, conns: map[net.Conn]connInfo{}}
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: apiReadHeaderTimeout,
		ReadTimeout:       apiReadTimeout,
		WriteTimeout:      apiWriteTimeout,
		IdleTimeout:       apiIdleTimeout,
		MaxHeaderBytes:    16 << 10,
		ConnState:         cl.track,
		Protocols:         http1Only(),
	}
	return srv, cl
}

// http1Only is the protocol set of the API's server and the webhook's client: HTTP/1.1, over
// TLS too. HTTP/2 would bring nothing to a console with one operator and a few API calls,
// and it is a large part of net/http (half a megabyte of the binary, and the memory its
// pages take: docs/benchmarks.md, "resources") with a history of denial-of-service bugs of
// its own (CVE-2023-44487, CVE-2023-45288). The package builds with -tags nethttpomithttp2
// (packaging/build.sh), which leaves that code out; this setting makes every other build
// speak the same protocols.
func http1Only() *http.Protocols {
	p := new(http.Protocols)
	p.SetHTTP1(true)
	return p
}

type connInfo struct {
	state http.ConnState
	since time.Time
}

// connLimiter bounds the API's open connections. When a new connection would pass the bound,
// one that holds a slot without using it is closed to make room: the oldest idle keep-alive
// connection, else the oldest connection that has sent nothing for a second. An operator's
// redundantctl gets in even while someone holds every slot with idle connections. When
// every slot is in use, the newcomer is closed instead.
type connLimiter struct {
	net.Listener
	max   int
	mu    sync.Mutex
	conns map[net.Conn]connInfo
}

func (l *connLimiter) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.conns) >= l.max {
		victim := l.oldestUnused()
		if victim == nil {
			c.Close()
			// Accept must return a connection or an error; a closed one is answered with
			// nothing and the client sees the close.
			return c, nil
		}
		victim.Close()
		delete(l.conns, victim)
	}
	l.conns[c] = connInfo{state: http.StateNew, since: time.Now()}
	return c, nil
}

func (l *connLimiter) oldestUnused() net.Conn {
	silent := time.Now().Add(-apiSilentAfter)
	var victim net.Conn
	var rank int // 2 idle, 1 new and silent for a second
	var since time.Time
	for c, ci := range l.conns {
		r := 0
		switch {
		case ci.state == http.StateIdle:
			r = 2
		case ci.state == http.StateNew && ci.since.Before(silent):
			r = 1
		}
		if r > 0 && (r > rank || (r == rank && ci.since.Before(since))) {
			victim, rank, since = c, r, ci.since
		}
	}
	return victim
}

func (l *connLimiter) track(c net.Conn, s http.ConnState) {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch s {
	case http.StateClosed, http.StateHijacked:
		delete(l.conns, c)
	default:
		if _, ok := l.conns[c]; ok {
			l.conns[c] = connInfo{state: s, since: time.Now()}
		}
	}
}

// open returns the number of connections held now.
func (l *connLimiter) open() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.conns)
}

// tokenBucket limits the rate of requests that change something or cause events. It is pure
// apart from the mutex: the caller passes the time.
type tokenBucket struct {
	mu     sync.Mutex
	rate   float64 // tokens per second
	burst  float64
	tokens float64
	last   time.Time
}

func newTokenBucket(rate, burst float64) *tokenBucket {
	return &tokenBucket{rate: rate, burst: burst, tokens: burst}
}

// allow takes a token at now, reporting false (and taking nothing) when none is left.
func (b *tokenBucket) allow(now time.Time) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.last.IsZero() {
		b.tokens = min(b.burst, b.tokens+now.Sub(b.last).Seconds()*b.rate)
	}
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// coalescer runs f for any number of concurrent callers with the guarantee each needs ("what
// I changed before I asked is replicated") and no more runs than that takes: a caller
// arriving while a run is in progress joins the next run, and every caller waiting for that
// next run shares it. Fifty parallel "sync now" requests cause two runs, not fifty.
type coalescer[T any] struct {
	mu      sync.Mutex
	running bool
	next    *flight[T]
}

type flight[T any] struct {
	done    chan struct{}
	val     T
	err     error
	callers int // callers sharing this run (c.mu): what a test waits on before a run ends
}

// do waits for a run of f that started after the call, or for ctx. f runs detached from
// any one caller, so a caller giving up does not cancel the run the others wait for; f
// carries its own context.
func (c *coalescer[T]) do(ctx context.Context, f func() (T, error)) (T, error) {
	if err := ctx.Err(); err != nil {
		var zero T
		return zero, err
	}
	c.mu.Lock()
	if c.next == nil {
		c.next = &flight[T]{done: make(chan struct{})}
	}
	fl := c.next
	fl.callers++
	lead := !c.running
	if lead {
		c.running, c.next = true, nil
	}
	c.mu.Unlock()
	if lead {
		go c.runChain(fl, f)
	}
	select {
	case <-fl.done:
		return fl.val, fl.err
	case <-ctx.Done():
		var zero T
		return zero, ctx.Err()
	}
}

// runChain runs fl, then the flight that gathered meanwhile, until none is waiting.
func (c *coalescer[T]) runChain(fl *flight[T], f func() (T, error)) {
	for fl != nil {
		fl.val, fl.err = f()
		close(fl.done)
		c.mu.Lock()
		fl, c.next = c.next, nil
		if fl == nil {
			c.running = false
		}
		c.mu.Unlock()
	}
}

package appliance

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redundantd/redundantd/vrrp"
)

func TestTokenBucket(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	steps := []struct {
		at   time.Duration
		want bool
	}{
		{0, true}, {0, true}, {0, true}, // the burst
		{0, false},
		{400 * time.Millisecond, false}, // 0.8 of a token
		{500 * time.Millisecond, true},  // 1.0
		{500 * time.Millisecond, false},
		{10 * time.Second, true}, // refilled to the burst, not beyond
		{10 * time.Second, true},
		{10 * time.Second, true},
		{10 * time.Second, false},
	}
	b := newTokenBucket(2, 3)
	for i, s := range steps {
		if got := b.allow(t0.Add(s.at)); got != s.want {
			t.Errorf("step %d at %s: allow = %t, want %t", i, s.at, got, s.want)
		}
	}
}

// TestCoalescerSharesRuns: callers that arrive while a run is in progress share the next
// run, and each gets a run that started after it asked.
func TestCoalescerSharesRuns(t *testing.T) {
	var c coalescer[int]
	var runs atomic.Int32
	release := make(chan struct{})
	started := make(chan int, 10)
	f := func() (int, error) {
		n := int(runs.Add(1))
		started <- n
		<-release
		return n, nil
	}
	first := make(chan int, 1)
	go func() { v, _ := c.do(context.Background(), f); first <- v }()
	if n := <-started; n != 1 {
		t.Fatalf("first run is %d", n)
	}
	// 49 callers arrive during run 1: they must all get run 2.
	var wg sync.WaitGroup
	results := make(chan int, 49)
	for range 49 {
		wg.Go(func() {
			v, err := c.do(context.Background(), f)
			if err != nil {
				t.Error(err)
			}
			results <- v
		})
	}
	// Wait until all 49 are queued on the next flight before letting run 1 finish.
	waitFor(t, "49 callers queued", func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		return c.next != nil
	})
	time.Sleep(50 * time.Millisecond) // let the rest of the goroutines reach do(); the assertions below hold either way
	close(release)
	wg.Wait()
	close(results)
	if v := <-first; v != 1 {
		t.Errorf("first caller got run %d, want 1", v)
	}
	for v := range results {
		if v < 2 {
			t.Errorf("a caller that arrived during run 1 got run %d", v)
		}
	}
	if n := runs.Load(); n > 3 {
		t.Errorf("%d runs for 50 callers, want at most 3", n)
	}
	// A caller that gives up returns at once; the run goes on for the others.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := c.do(ctx, func() (int, error) { return 0, nil }); err == nil {
		t.Error("a cancelled caller got no error")
	}
}

// runAPI runs an appliance serving its API on a loopback listener the test made.
func runAPI(t *testing.T, opts Options) (*Appliance, *fakeRouter, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fr := &fakeRouter{ran: make(chan struct{})}
	opts.APIListener = ln
	opts.DialVRRP = func(c vrrp.Config) (Router, error) { fr.cfg = c; return fr, nil }
	a, err := New(testConfig(t), opts)
	if err != nil {
		t.Fatal(err)
	}
	runUntilCleanup(t, a, fr)
	return a, fr, "http://" + ln.Addr().String()
}

// TestAPIOutlivesIdleConnections reproduces issue 12 item 4: thousands of idle connections
// took the daemon to its file limit and the API hung.
func TestAPIOutlivesIdleConnections(t *testing.T) {
	a, _, base := runAPI(t, Options{})
	addr := strings.TrimPrefix(base, "http://")
	var idle []net.Conn
	t.Cleanup(func() {
		for _, c := range idle {
			c.Close()
		}
	})
	for range 4 * apiMaxConns {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatalf("dial: %v", err)
		}
		idle = append(idle, c)
	}
	// Half of them finish a request and stay as keep-alive connections.
	for _, c := range idle[len(idle)/2:] {
		fmt.Fprintf(c, "GET /api/v1/status HTTP/1.1\r\nHost: x\r\n\r\n")
	}
	// The attacker holds them: the silent ones become reclaimable after apiSilentAfter.
	time.Sleep(apiSilentAfter + 100*time.Millisecond)
	cl := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 10 * time.Second}
	resp, err := cl.Get(base + "/api/v1/status")
	if err != nil {
		t.Fatalf("status with %d idle connections open: %v", len(idle), err)
	}
	var st StatusResponse
	err = json.NewDecoder(resp.Body).Decode(&st)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK || st.NodeID == "" {
		t.Fatalf("status = %d %+v, %v", resp.StatusCode, st, err)
	}
	if n := a.apiConns.open(); n > apiMaxConns {
		t.Errorf("%d connections held open, bound %d", n, apiMaxConns)
	}
}

// TestEventFloodKeepsTransitions reproduces issue 12 item 8: a flood pushed every start and
// transition event out of the log. Mutating requests are rate limited, and ordinary events
// cannot evict the protected ones.
func TestEventFloodKeepsTransitions(t *testing.T) {
	a, fr, base := runAPI(t, Options{EventLimits: EventLimits{Count: 16}})
	fr.cfg.OnEvent(vrrp.Event{From: vrrp.StateInitialize, To: vrrp.StateMaster, Reason: "master down"})

	cl := &http.Client{Timeout: 10 * time.Second}
	begin := time.Now()
	var allowed, limited atomic.Int32
	var wg sync.WaitGroup
	var next atomic.Int32
	for range 32 { // 520 requests from 32 clients at once
		wg.Go(func() {
			for next.Add(1) <= 520 {
				req, _ := http.NewRequest(http.MethodPost, base+"/api/v1/events/read", strings.NewReader(`{"up_to":1}`))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("Authorization", "Bearer "+a.guard.token)
				resp, err := cl.Do(req)
				if err != nil {
					t.Error(err)
					return
				}
				resp.Body.Close()
				switch resp.StatusCode {
				case http.StatusTooManyRequests:
					limited.Add(1)
				case http.StatusOK:
					allowed.Add(1)
				default:
					t.Errorf("answer %s", resp.Status)
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(begin)
	if max := apiMutatingBurst + int32(elapsed.Seconds()*apiMutatingRate) + 1; allowed.Load() > max {
		t.Errorf("%d of 520 mutating requests served in %s; the limit allows %d", allowed.Load(), elapsed, max)
	}
	// And a flood of ordinary events (a device flapping) evicts only its own kind.
	for i := range 520 {
		a.record(Event{Priority: PriorityNotice, Application: AppBerofos, Name: "drift", Description: fmt.Sprint(i)})
	}
	names := map[string]bool{}
	for _, e := range a.events.log.all() {
		names[e.Name] = true
	}
	if !names["start"] || !names["became master"] {
		t.Errorf("after the flood the log has %v; the start and transition events are gone", names)
	}
}

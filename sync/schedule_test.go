package sync

import (
	"context"
	"path/filepath"
	stdsync "sync"
	"testing"
	"testing/synctest"
	"time"
)

func TestScheduleIntervalNoOverlap(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		peer, err := LocalFingerprint(filepath.Join(dir, "peer"))
		if err != nil {
			t.Fatal(err)
		}
		n, err := New(Config{Paths: []string{filepath.Join(dir, "etc")}, StateDir: filepath.Join(dir, "state"),
			Peer: "127.0.0.1:1", PeerFingerprint: peer, Interval: "10s"})
		if err != nil {
			t.Fatal(err)
		}
		var mu stdsync.Mutex
		var starts []time.Duration
		t0 := time.Now()
		n.runHook = func(ctx context.Context) {
			mu.Lock()
			starts = append(starts, time.Since(t0))
			mu.Unlock()
			time.Sleep(15 * time.Second) // longer than the interval
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { n.schedule(ctx); close(done) }()
		time.Sleep(time.Minute)
		synctest.Wait()
		if len(starts) != 0 {
			t.Fatalf("runs without being the source: %v", starts)
		}
		t0 = time.Now()
		n.SetRole(RoleSource)
		time.Sleep(61 * time.Second)
		synctest.Wait()
		mu.Lock()
		got := append([]time.Duration(nil), starts...)
		mu.Unlock()
		// Immediately on becoming the source, then 10 s after each run ended.
		want := []time.Duration{0, 25 * time.Second, 50 * time.Second}
		if len(got) != len(want) {
			t.Fatalf("run starts %v, want %v", got, want)
		}
		for i := range want {
			if got[i] != want[i] {
				t.Fatalf("run starts %v, want %v", got, want)
			}
		}
		n.SetRole(RoleReplica)
		time.Sleep(5 * time.Minute)
		synctest.Wait()
		mu.Lock()
		if len(starts) != 3 {
			t.Errorf("runs continued as replica: %v", starts)
		}
		mu.Unlock()
		cancel()
		<-done
	})
}

func TestParseInterval(t *testing.T) {
	base := time.Date(2026, 5, 1, 10, 2, 30, 0, time.UTC)
	tests := []struct {
		spec string
		next time.Time
	}{
		{"60s", base.Add(time.Minute)},
		{"*/5 * * * *", time.Date(2026, 5, 1, 10, 5, 0, 0, time.UTC)},
		{"@hourly", time.Date(2026, 5, 1, 11, 0, 0, 0, time.UTC)},
		{"30 * * * * *", time.Date(2026, 5, 1, 10, 3, 30, 0, time.UTC)},
	}
	for _, tt := range tests {
		s, err := parseInterval(tt.spec)
		if err != nil {
			t.Fatalf("%q: %v", tt.spec, err)
		}
		if got := s.Next(base); !got.Equal(tt.next) {
			t.Errorf("%q: next %v, want %v", tt.spec, got, tt.next)
		}
	}
	for _, bad := range []string{"100ms", "every minute", "* * *"} {
		if _, err := parseInterval(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestNewValidates(t *testing.T) {
	dir := t.TempDir()
	peer, _ := LocalFingerprint(filepath.Join(dir, "peer"))
	good := Config{Paths: []string{"/srv/a", "/srv/b"}, StateDir: filepath.Join(dir, "state"), Peer: "192.0.2.1:7401", PeerFingerprint: peer}
	if _, err := New(good); err != nil {
		t.Fatalf("good config: %v", err)
	}
	bad := map[string]func(*Config){
		"no paths":        func(c *Config) { c.Paths = nil },
		"relative path":   func(c *Config) { c.Paths = []string{"etc"} },
		"nested paths":    func(c *Config) { c.Paths = []string{"/srv/a", "/srv/a/b"} },
		"state in tree":   func(c *Config) { c.StateDir = "/srv/a/state" },
		"bad peer":        func(c *Config) { c.Peer = "7401" },
		"bad fingerprint": func(c *Config) { c.PeerFingerprint = "abc" },
		"bad interval":    func(c *Config) { c.Interval = "sometimes" },
		"bad share":       func(c *Config) { c.MaxDeleteShare = 2 },
		"own cert":        func(c *Config) { c.StateDir = filepath.Join(dir, "peer") },
	}
	for name, f := range bad {
		c := good
		f(&c)
		if _, err := New(c); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

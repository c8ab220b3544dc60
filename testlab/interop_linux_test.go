package testlab

import (
	"context"
	"net/netip"
	"testing"
	"time"
)

// holdFor waits for n adverts of master after now and asserts that during that whole window
// backup sent no advert and never gained the VIP (it never claimed Master), and that at the
// end both report the expected states and only the Master holds the VIP.
func holdFor(t *testing.T, ctx context.Context, l *Lab, tl *Timeline, n int, master, backup *Router) {
	t.Helper()
	from := time.Now()
	var last Advert
	after := from
	for i := 0; i < n; i++ {
		a, err := tl.WaitAdvert(ctx, after, "an advert of the Master", From(master.Node, vrid(master)))
		if err != nil {
			t.Fatalf("after %d of %d adverts: %v", i, n, err)
		}
		if a.Priority == 0 {
			t.Fatalf("%s resigned during the hold", master)
		}
		last, after = a, a.At
	}
	if bad := tl.AdvertsBetween(from, last.At, From(backup.Node, vrid(backup))); len(bad) != 0 {
		t.Errorf("%s sent %d adverts while %s was a healthy Master (first: %v)", backup, len(bad), master, bad[0])
	}
	for _, e := range tl.VIPEvents() {
		if e.Node == backup.Node && e.Present && e.At.After(from) {
			t.Errorf("%s gained the VIP at %s while %s was a healthy Master", backup, e.At.Format("15:04:05.000"), master)
		}
	}
	t.Logf("%s stayed Backup for %d adverts of %s (%v)", backup, n, master, last.At.Sub(from).Round(time.Millisecond))
	assertSoleMaster(t, ctx, l, tl, master, backup)
	for _, r := range []*Router{master, backup} {
		if r.Impl != Redundantd {
			continue
		}
		st, err := r.Node.Status(ctx)
		if err != nil {
			t.Error(err)
			continue
		}
		for reason, c := range st.Dropped {
			if c > 0 {
				t.Errorf("%s dropped %d of the peer's adverts (%s)", r, c, reason)
			}
		}
	}
}

// interop runs one direction of the keepalived interoperability check: first is Master,
// second Backup, both with cfg. Each side must take over when the other is killed, respect a
// healthy Master for 10 adverts, and take over on the other's priority-0 advert. The Timeline
// follows cfg's last virtual address (the lab's default VIP when cfg has none).
func interop(t *testing.T, first, second Impl, cfg VRRPConfig) {
	t.Parallel()
	RequireKeepalived(t)
	var vip netip.Addr
	if n := len(cfg.VIPs); n > 0 {
		vip = cfg.VIPs[n-1].Addr()
	}
	l, ctx, tl := recordedLabFor(t, 90*time.Second, vip)
	master, backup := pair(t, ctx, l, tl, first, second, cfg)
	holdFor(t, ctx, l, tl, 10, master, backup)

	// The Master dies: the Backup (the other implementation) takes over.
	f, err := MeasureFailover(ctx, tl, master, backup, false)
	if err != nil {
		t.Fatal(err)
	}
	checkFailover(t, f)
	if err := backup.WaitState(ctx, "master"); err != nil {
		t.Fatal(err)
	}

	// The old Master returns with preempt off: it must come back as Backup and release the
	// VIP it held when it was killed.
	if err := master.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := master.WaitState(ctx, "backup"); err != nil {
		t.Fatal(err)
	}
	if _, err := tl.WaitVIP(ctx, master.Node, false, f.Signal); err != nil {
		t.Fatalf("restarted %s kept the stale VIP: %v", master, err)
	}
	holdFor(t, ctx, l, tl, 2, backup, master)

	// Planned handover the other way: the new Master resigns with a priority-0 advert.
	f, err = MeasureFailover(ctx, tl, backup, master, true)
	if err != nil {
		t.Fatal(err)
	}
	checkFailover(t, f)
	if exitErr := backup.Proc().err; exitErr != nil {
		t.Errorf("%s exit after SIGTERM: %v, want status 0", backup, exitErr)
	}
	if err := master.WaitState(ctx, "master"); err != nil {
		t.Fatal(err)
	}
	if _, err := tl.WaitVIP(ctx, backup.Node, false, f.Signal); err != nil {
		t.Errorf("%s did not remove the VIP when it stopped: %v", backup, err)
	}
	assertSoleMaster(t, ctx, l, tl, master)
}

func TestInteropKeepalivedMasterRedundantdBackup(t *testing.T) {
	interop(t, Keepalived, Redundantd, VRRPConfig{AdvertInterval: time.Second})
}

func TestInteropRedundantdMasterKeepalivedBackup(t *testing.T) {
	interop(t, Redundantd, Keepalived, VRRPConfig{AdvertInterval: time.Second})
}

// The same both ways with VRRPv3 (RFC 9568) at 100 ms adverts, keepalived's vrrp_version 3:
// the checksum over the pseudo-header, the centisecond interval and the section 6.1 timers
// (a takeover 360.9375 ms after the last advert at priority 100) against the reference.
func TestInteropV3KeepalivedMasterRedundantdBackup(t *testing.T) {
	interop(t, Keepalived, Redundantd, VRRPConfig{Version: 3, AdvertInterval: 100 * time.Millisecond})
}

func TestInteropV3RedundantdMasterKeepalivedBackup(t *testing.T) {
	interop(t, Redundantd, Keepalived, VRRPConfig{Version: 3, AdvertInterval: 100 * time.Millisecond})
}

// TestInteropUnicast checks the unicast-peer mode against keepalived's unicast_peer: adverts go
// to the peer's address, each side accepts the other's, and a SIGTERM handover works both ways.
func TestInteropUnicast(t *testing.T) {
	t.Parallel()
	RequireKeepalived(t)
	l, ctx, tl := recordedLab(t, 60*time.Second)
	cfg := VRRPConfig{Unicast: true}
	master, backup := pair(t, ctx, l, tl, Keepalived, Redundantd, cfg)
	holdFor(t, ctx, l, tl, 3, master, backup)
	for _, a := range tl.AdvertsBetween(time.Time{}, time.Now(), From(master.Node, 51)) {
		if a.Dst != backup.Node.Addr {
			t.Fatalf("keepalived advert to %s, want unicast to %s", a.Dst, backup.Node.Addr)
		}
	}
	for i := 0; i < 2; i++ {
		f, err := MeasureFailover(ctx, tl, master, backup, true)
		if err != nil {
			t.Fatal(err)
		}
		checkFailover(t, f)
		if f.FirstAdvert.Dst != master.Node.Addr {
			t.Errorf("%s's first advert went to %s, want unicast to %s", backup, f.FirstAdvert.Dst, master.Node.Addr)
		}
		if err := master.Start(ctx); err != nil {
			t.Fatal(err)
		}
		if err := master.WaitState(ctx, "backup"); err != nil {
			t.Fatal(err)
		}
		holdFor(t, ctx, l, tl, 2, backup, master)
		master, backup = backup, master
	}
}

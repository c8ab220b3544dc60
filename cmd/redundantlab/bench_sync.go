//go:build linux

package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"time"

	pbxsync "github.com/redundantd/redundantd/sync"
	"github.com/redundantd/redundantd/testlab/pbxtree"
)

func init() {
	register("bench sync", "replication vs rsync -a --delete (daemon) on loopback: 5 scenarios", benchSync)
}

// benchSync generates the data set of sync-notes.md (seeded) and replicates it with
// redundantd's sync and with rsync through an rsync daemon, scenario by scenario, printing
// wall time, CPU and bytes on the wire, and checking every destination against the source.
func benchSync(ctx context.Context, args []string) error {
	fl := flag.NewFlagSet("bench sync", flag.ContinueOnError)
	scale := fl.Float64("scale", 1, "data set size factor (1 = 2,000 config files and 500 messages, about 530 MB)")
	seed := fl.Uint64("seed", 1, "PRNG seed of the data set and the edits")
	keep := fl.Bool("keep", false, "keep the temporary directory")
	rsyncBin := fl.String("rsync", "/usr/bin/rsync", "rsync binary")
	verbose := fl.Bool("v", false, "log redundantd's run phases")
	cpuProfile := fl.String("cpuprofile", "", "write a CPU profile of redundantd's runs to this file")
	if err := fl.Parse(args); err != nil {
		return err
	}
	if _, err := os.Stat(*rsyncBin); err != nil {
		return fmt.Errorf("rsync not found: %w", err)
	}
	dir, err := os.MkdirTemp("", "bench-sync-")
	if err != nil {
		return err
	}
	if !*keep {
		defer os.RemoveAll(dir)
	} else {
		fmt.Println("data in", dir)
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	b := &syncBench{dir: dir, gen: pbxtree.NewGen(filepath.Join(dir, "src"), *seed), rsync: *rsyncBin, verbose: *verbose}
	t0 := time.Now()
	ds, err := b.gen.Generate(*scale)
	if err != nil {
		return err
	}
	fmt.Printf("data set: %d config files, %d messages, %d files, %d folders, %.1f MB (generated in %.1fs, seed %d, scale %g)\n",
		ds.Configs, ds.Messages, ds.Files, ds.Dirs, float64(ds.Bytes)/1e6, time.Since(t0).Seconds(), *seed, *scale)

	if err := b.startRsyncd(); err != nil {
		return err
	}
	defer b.stopRsyncd()
	if err := b.startNodes(ctx); err != nil {
		return err
	}
	defer b.stopNodes()

	scenarios := []struct {
		name   string
		fsync  bool
		mutate func() (string, error)
	}{
		{"initial", true, func() (string, error) { return "", nil }},
		{"no change", false, func() (string, error) { return "", nil }},
		{"25 audio edits", false, func() (string, error) { return b.gen.EditAudio(25) }},
		{"100 new messages", true, func() (string, error) { return b.gen.NewMessages(100) }},
		{"50 renumbered", false, func() (string, error) { return b.gen.Renumber(50) }},
	}
	fmt.Printf("\n%-18s %-16s %9s %9s %12s  %s\n", "scenario", "tool", "wall", "cpu", "wire", "notes")
	var results []benchRow
	for _, sc := range scenarios {
		note, err := sc.mutate()
		if err != nil {
			return fmt.Errorf("%s: %w", sc.name, err)
		}
		if note != "" {
			fmt.Printf("%-18s (%s)\n", sc.name, note)
		}
		ours, err := b.runOurs(ctx)
		if err != nil {
			return fmt.Errorf("%s: redundantd: %w", sc.name, err)
		}
		ours.scenario = sc.name
		rs, err := b.runRsync(ctx, "plain", false)
		if err != nil {
			return fmt.Errorf("%s: rsync: %w", sc.name, err)
		}
		rs.scenario = sc.name
		rows := []benchRow{ours, rs}
		// The --fsync copy is kept in step in every scenario; its figures matter for
		// initial and new messages.
		rf, err := b.runRsync(ctx, "fsync", true)
		if err != nil {
			return fmt.Errorf("%s: rsync --fsync: %w", sc.name, err)
		}
		rf.scenario = sc.name
		if sc.fsync {
			rows = append(rows, rf)
		}
		if err := checkDestinations(dir, sc.name); err != nil {
			return err
		}
		for _, r := range rows {
			fmt.Printf("%-18s %-16s %8.3fs %8.3fs %12s  %s\n", r.scenario, r.tool, r.wall.Seconds(), r.cpu.Seconds(), fmtBytes(r.wire), r.note)
		}
		results = append(results, rows...)
	}
	fmt.Println("\nall destinations byte-identical to the source after every scenario")
	printTargets(results)
	return nil
}

// checkDestinations compares every destination with the source, tree by tree (a tree's own
// folder is the replica's, not replicated): content everywhere, mode and mtime on
// redundantd's copy.
func checkDestinations(dir, scenario string) error {
	for _, d := range []struct{ name, path string }{
		{"redundantd", filepath.Join(dir, "ours")}, {"rsync", filepath.Join(dir, "rsync-plain")}, {"rsync --fsync", filepath.Join(dir, "rsync-fsync")},
	} {
		attrs := d.name == "redundantd"
		var diffs []string
		for _, tree := range []string{"etc", "voicemail"} {
			dt, err := pbxtree.Diff(filepath.Join(dir, "src", tree), filepath.Join(d.path, tree), pbxtree.Compare{Mode: attrs, Mtime: attrs})
			if err != nil {
				return err
			}
			for _, x := range dt {
				diffs = append(diffs, tree+": "+x)
			}
		}
		if len(diffs) > 0 {
			if len(diffs) > 5 {
				diffs = diffs[:5]
			}
			return fmt.Errorf("%s: %s destination differs from the source:\n  %s", scenario, d.name, strings.Join(diffs, "\n  "))
		}
	}
	return nil
}

type benchRow struct {
	scenario, tool string
	wall, cpu      time.Duration
	wire           int64
	note           string
	audioBytes     int64
}

func fmtBytes(n int64) string {
	switch {
	case n >= 10e6:
		return fmt.Sprintf("%.1f MB", float64(n)/1e6)
	case n >= 10e3:
		return fmt.Sprintf("%.1f KB", float64(n)/1e3)
	default:
		return fmt.Sprintf("%d B", n)
	}
}

func printTargets(rows []benchRow) {
	get := func(sc, tool string) benchRow {
		for _, r := range rows {
			if r.scenario == sc && r.tool == tool {
				return r
			}
		}
		return benchRow{}
	}
	check := func(ok bool) string {
		if ok {
			return "met"
		}
		return "MISSED"
	}
	nc := get("no change", "redundantd")
	fmt.Printf("target no change < 20 ms and < 2 KB: %s (%.1f ms, %d B)\n", check(nc.wall < 20*time.Millisecond && nc.wire < 2048), float64(nc.wall.Microseconds())/1000, nc.wire)
	eo, er := get("25 audio edits", "redundantd"), get("25 audio edits", "rsync")
	fmt.Printf("target edits <= 1.2x rsync bytes and faster: %s (%s vs %s, %.3fs vs %.3fs)\n",
		check(float64(eo.wire) <= 1.2*float64(er.wire) && eo.wall < er.wall), fmtBytes(eo.wire), fmtBytes(er.wire), eo.wall.Seconds(), er.wall.Seconds())
	for _, sc := range []string{"initial", "100 new messages"} {
		o, f := get(sc, "redundantd"), get(sc, "rsync --fsync")
		fmt.Printf("target %s no slower than rsync --fsync: %s (%.3fs vs %.3fs)\n", sc, check(o.wall <= f.wall), o.wall.Seconds(), f.wall.Seconds())
	}
	rn := get("50 renumbered", "redundantd")
	fmt.Printf("target renumbering re-sends no audio: %s (%d audio bytes sent, %s on the wire)\n", check(rn.audioBytes == 0), rn.audioBytes, fmtBytes(rn.wire))
}

type syncBench struct {
	dir   string
	gen   *pbxtree.Gen // the source tree, dir/src
	rsync string

	rsyncd *pbxtree.Rsyncd

	src, dst *pbxsync.Node
	cancel   context.CancelFunc
	done     chan error
	ran      chan struct{} // a run ended (the source's EventRun)

	verbose bool
}

// startRsyncd serves the rsync destinations (modules plain and fsync) on a loopback
// listener.
func (b *syncBench) startRsyncd() error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	mods := map[string]string{}
	for _, m := range []string{"plain", "fsync"} {
		mods[m] = filepath.Join(b.dir, "rsync-"+m)
	}
	b.rsyncd, err = pbxtree.StartRsyncd(ln, b.rsync, b.dir, mods)
	if err != nil {
		ln.Close()
	}
	return err
}

func (b *syncBench) stopRsyncd() {
	if b.rsyncd != nil {
		if err := b.rsyncd.Close(); err != nil {
			fmt.Fprintln(os.Stderr, "rsync daemon:", err)
		}
	}
}

var rsyncStat = regexp.MustCompile(`Total bytes (sent|received): ([0-9,.]+)`)

func (b *syncBench) runRsync(ctx context.Context, module string, fsync bool) (benchRow, error) {
	args := []string{"-a", "--delete", "--stats"}
	tool := "rsync"
	if fsync {
		args = append(args, "--fsync")
		tool = "rsync --fsync"
	}
	args = append(args, filepath.Join(b.dir, "src")+"/", b.rsyncd.URL(module))
	cmd := exec.CommandContext(ctx, b.rsync, args...)
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	d0 := b.rsyncd.CPU()
	t0 := time.Now()
	err := cmd.Run()
	wall := time.Since(t0)
	if err != nil {
		return benchRow{}, fmt.Errorf("%v: %s", err, out.String())
	}
	// The daemon's process for this connection ends shortly after the client; CPU waits
	// for it.
	daemon := b.rsyncd.CPU() - d0
	cpu := cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime() + daemon
	var wire int64
	sc := bufio.NewScanner(&out)
	for sc.Scan() {
		if m := rsyncStat.FindStringSubmatch(sc.Text()); m != nil {
			v, _ := strconv.ParseInt(strings.NewReplacer(",", "", ".", "").Replace(m[2]), 10, 64)
			wire += v
		}
	}
	return benchRow{tool: tool, wall: wall, cpu: cpu, wire: wire}, nil
}

func (b *syncBench) startNodes(ctx context.Context) error {
	log := slog.New(slog.DiscardHandler)
	if b.verbose {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	trees := func(root string) []string {
		return []string{filepath.Join(root, "etc"), filepath.Join(root, "voicemail")}
	}
	// Only the source runs, so every run event is the source's.
	b.ran = make(chan struct{}, 1)
	onEvent := func(e pbxsync.Event) {
		if e.Kind == pbxsync.EventRun {
			select {
			case b.ran <- struct{}{}:
			default:
			}
		}
	}
	p, err := startSyncPair(ctx, b.dir, trees(filepath.Join(b.dir, "src")), trees(filepath.Join(b.dir, "ours")),
		pbxsync.Config{Interval: "24h", Logger: log, MaxDeleteShare: 0.5, OnEvent: onEvent})
	if err != nil {
		return err
	}
	b.src, b.dst, b.cancel, b.done = p.src, p.dst, p.cancel, p.done
	b.dst.SetRole(pbxsync.RoleReplica)
	return nil
}

// syncPair is a source and a replica node replicating on loopback.
type syncPair struct {
	src, dst *pbxsync.Node
	cancel   context.CancelFunc
	done     chan error // one value per node when it stops
}

func (p *syncPair) stop() { p.cancel(); <-p.done; <-p.done }

// startSyncPair runs two nodes with the settings of base, each on a loopback listener,
// state in dir/state-src and dir/state-dst, each pinned to the other, and returns once both
// serve. No role is set.
func startSyncPair(ctx context.Context, dir string, srcPaths, dstPaths []string, base pbxsync.Config) (*syncPair, error) {
	srcState, dstState := filepath.Join(dir, "state-src"), filepath.Join(dir, "state-dst")
	fs, err := pbxsync.LocalFingerprint(srcState)
	if err != nil {
		return nil, err
	}
	fd, err := pbxsync.LocalFingerprint(dstState)
	if err != nil {
		return nil, err
	}
	var lns []net.Listener
	for range 2 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			for _, l := range lns {
				l.Close()
			}
			return nil, err
		}
		lns = append(lns, ln)
	}
	sc, dc := base, base
	sc.Paths, sc.StateDir, sc.Peer, sc.PeerFingerprint = srcPaths, srcState, lns[1].Addr().String(), fd
	dc.Paths, dc.StateDir, dc.Peer, dc.PeerFingerprint = dstPaths, dstState, lns[0].Addr().String(), fs
	p := &syncPair{done: make(chan error, 2)}
	if p.src, err = pbxsync.New(sc); err == nil {
		p.dst, err = pbxsync.New(dc)
	}
	if err != nil {
		lns[0].Close()
		lns[1].Close()
		return nil, err
	}
	ctx, p.cancel = context.WithCancel(ctx)
	go func() { p.done <- p.src.Run(ctx, lns[0]) }()
	go func() { p.done <- p.dst.Run(ctx, lns[1]) }()
	for _, n := range []*pbxsync.Node{p.src, p.dst} {
		select {
		case <-n.Ready():
		case err := <-p.done:
			p.cancel()
			<-p.done
			return nil, fmt.Errorf("sync node did not start: %w", err)
		}
	}
	return p, nil
}

func (b *syncBench) stopNodes() {
	if b.cancel != nil {
		b.cancel()
		<-b.done
		<-b.done
	}
}

func selfCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func (b *syncBench) runOurs(ctx context.Context) (benchRow, error) {
	if b.src.Role() != pbxsync.RoleSource {
		// Becoming the source triggers a run by itself; make that the timed run by letting
		// SyncNow queue behind it only after the role is set.
		c0 := selfCPU()
		b.src.SetRole(pbxsync.RoleSource)
		select {
		case <-b.ran:
		case <-ctx.Done():
			return benchRow{}, ctx.Err()
		}
		cpu := selfCPU() - c0
		// The scheduled first run did the initial copy: report it.
		s := b.src.Status()
		if s.LastError != "" {
			return benchRow{}, errors.New(s.LastError)
		}
		return b.row(s.LastRun, cpu), nil
	}
	c0 := selfCPU()
	st, err := b.src.SyncNow(ctx)
	if err != nil {
		return benchRow{}, err
	}
	return b.row(st, selfCPU()-c0), nil
}

func (b *syncBench) row(st pbxsync.RunStats, cpu time.Duration) benchRow {
	note := fmt.Sprintf("files %d (whole %d, delta %d, local %d), deleted %d, file bytes sent %s",
		st.Files, st.FilesWhole, st.FilesDelta, st.FilesLocal, st.Deleted, fmtBytes(st.Literal))
	if len(st.Errors) > 0 {
		note += fmt.Sprintf(", %d errors: %s", len(st.Errors), st.Errors[0])
	}
	return benchRow{tool: "redundantd", wall: st.Duration, cpu: cpu, wire: st.BytesSent + st.BytesRecv, note: note, audioBytes: st.Literal}
}

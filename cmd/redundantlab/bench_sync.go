//go:build linux

package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	pbxsync "github.com/redundantd/redundantd/sync"
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
	rng := rand.New(rand.NewPCG(*seed, 0x5eed))
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
	b := &syncBench{dir: dir, rng: rng, rsync: *rsyncBin, verbose: *verbose, clock: time.Date(2026, 1, 1, 8, 0, 0, 0, time.UTC)}
	t0 := time.Now()
	ds, err := b.generate(*scale)
	if err != nil {
		return err
	}
	fmt.Printf("data set: %d config files, %d messages, %d files, %d folders, %.1f MB (generated in %.1fs, seed %d, scale %g)\n",
		ds.configs, ds.messages, ds.files, ds.dirs, float64(ds.bytes)/1e6, time.Since(t0).Seconds(), *seed, *scale)

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
		{"25 audio edits", false, func() (string, error) { return b.editAudio(25) }},
		{"100 new messages", true, func() (string, error) { return b.newMessages(100) }},
		{"50 renumbered", false, func() (string, error) { return b.renumber(50) }},
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
		for _, d := range []struct{ name, path string }{
			{"redundantd", filepath.Join(dir, "ours")}, {"rsync", filepath.Join(dir, "rsync-plain")}, {"rsync --fsync", filepath.Join(dir, "rsync-fsync")},
		} {
			diffs, err := compareTrees(filepath.Join(dir, "src"), d.path, d.name == "redundantd")
			if err != nil {
				return err
			}
			if len(diffs) > 0 {
				if len(diffs) > 5 {
					diffs = diffs[:5]
				}
				return fmt.Errorf("%s: %s destination differs from the source:\n  %s", sc.name, d.name, strings.Join(diffs, "\n  "))
			}
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
	rng   *rand.Rand
	rsync string

	rsyncd    *exec.Cmd
	rsyncAddr string

	src, dst *pbxsync.Node
	cancel   context.CancelFunc
	done     chan error

	clock     time.Time
	verbose   bool
	mailboxes []string // voicemail folders (relative to src/voicemail) holding messages
}

type dataSet struct {
	configs, messages, files, dirs int
	bytes                          int64
}

var words = strings.Fields(`context exten same include callerid secret host type friend peer user
	nat qualify canreinvite disallow allow ulaw alaw g722 dial hangup answer playback voicemail
	queue member agent musiconhold transfer pickupgroup callgroup mailbox language dtmfmode`)

func (b *syncBench) text(n int) []byte {
	var buf bytes.Buffer
	for buf.Len() < n {
		fmt.Fprintf(&buf, "%s=%s,%d\n", words[b.rng.IntN(len(words))], words[b.rng.IntN(len(words))], b.rng.IntN(10000))
	}
	return buf.Bytes()[:n]
}

func (b *syncBench) random(n int) []byte {
	p := make([]byte, n)
	for i := 0; i+8 <= n; i += 8 {
		v := b.rng.Uint64()
		for k := 0; k < 8; k++ {
			p[i+k] = byte(v >> (8 * k))
		}
	}
	return p
}

func (b *syncBench) msgTxt(box string, num int) []byte {
	return fmt.Appendf(nil, "[message]\norigmailbox=%s\ncontext=default\nmacrocontext=\nexten=%s\nrdnis=unknown\n"+
		"priority=2\ncallerchan=SIP/trunk-%08x\ncallerid=\"Caller\" <0049301234%04d>\norigdate=Mon Nov 16 10:%02d:00 AM UTC 2026\n"+
		"origtime=%d\ncategory=\nmsg_id=%d-%08x\nflag=\nduration=%d\n",
		filepath.Base(filepath.Dir(box)), filepath.Base(filepath.Dir(box)), b.rng.Uint32(), num, num%60, 1763287200+num, 1763287200+num, b.rng.Uint32(), 5+b.rng.IntN(120))
}

func (b *syncBench) writeMsg(folder string, num int) (int64, error) {
	audio := b.random(100<<10 + b.rng.IntN(1800<<10))
	base := filepath.Join(b.dir, "src", "voicemail", folder, fmt.Sprintf("msg%04d", num))
	if err := os.WriteFile(base+".wav", audio, 0o640); err != nil {
		return 0, err
	}
	txt := b.msgTxt(folder, num)
	if err := os.WriteFile(base+".txt", txt, 0o640); err != nil {
		return 0, err
	}
	// Each message has its own recording time, as on a real PBX.
	b.clock = b.clock.Add(time.Duration(1+b.rng.IntN(3600)) * time.Second)
	for _, ext := range []string{".wav", ".txt"} {
		if err := os.Chtimes(base+ext, b.clock, b.clock); err != nil {
			return 0, err
		}
	}
	return int64(len(audio) + len(txt)), nil
}

func (b *syncBench) generate(scale float64) (dataSet, error) {
	var ds dataSet
	src := filepath.Join(b.dir, "src")
	nconf := max(1, int(2000*scale))
	nmsg := max(1, int(500*scale))
	nbox := max(1, nmsg/5)
	confDirs := 20
	for i := 0; i < confDirs; i++ {
		if err := os.MkdirAll(filepath.Join(src, "etc", fmt.Sprintf("conf.d%02d", i)), 0o755); err != nil {
			return ds, err
		}
		ds.dirs++
	}
	for i := 0; i < nconf; i++ {
		data := b.text(1<<10 + b.rng.IntN(19<<10))
		p := filepath.Join(src, "etc", fmt.Sprintf("conf.d%02d", i%confDirs), fmt.Sprintf("%s-%04d.conf", words[i%len(words)], i))
		if err := os.WriteFile(p, data, 0o644); err != nil {
			return ds, err
		}
		ds.configs++
		ds.bytes += int64(len(data))
	}
	for i := 0; i < nbox; i++ {
		for _, f := range []string{"INBOX", "Old"} {
			folder := filepath.Join("default", strconv.Itoa(1000+i), f)
			if err := os.MkdirAll(filepath.Join(src, "voicemail", folder), 0o750); err != nil {
				return ds, err
			}
			ds.dirs++
			b.mailboxes = append(b.mailboxes, folder)
		}
	}
	counts := map[string]int{}
	for i := 0; i < nmsg; i++ {
		folder := b.mailboxes[i%len(b.mailboxes)]
		n, err := b.writeMsg(folder, counts[folder])
		if err != nil {
			return ds, err
		}
		counts[folder]++
		ds.messages++
		ds.bytes += n
	}
	ds.files = ds.configs + 2*ds.messages
	return ds, nil
}

// editAudio overwrites a few small regions of n audio files in place (size kept).
func (b *syncBench) editAudio(n int) (string, error) {
	files, err := b.audioFiles()
	if err != nil {
		return "", err
	}
	var total int
	for _, i := range b.rng.Perm(len(files))[:min(n, len(files))] {
		f, err := os.OpenFile(files[i], os.O_WRONLY, 0)
		if err != nil {
			return "", err
		}
		fi, _ := f.Stat()
		for k := 0; k < 3; k++ {
			patch := b.random(512)
			off := b.rng.Int64N(fi.Size() - 512)
			if _, err := f.WriteAt(patch, off); err != nil {
				f.Close()
				return "", err
			}
			total += len(patch)
		}
		f.Close()
	}
	return fmt.Sprintf("%d files, %.1f KB overwritten in place", n, float64(total)/1e3), nil
}

func (b *syncBench) audioFiles() ([]string, error) {
	var files []string
	err := filepath.WalkDir(filepath.Join(b.dir, "src", "voicemail"), func(p string, d fs.DirEntry, err error) error {
		if err == nil && strings.HasSuffix(p, ".wav") {
			files = append(files, p)
		}
		return err
	})
	slices.Sort(files)
	return files, err
}

func (b *syncBench) msgCount(folder string) int {
	n := 0
	for {
		if _, err := os.Stat(filepath.Join(b.dir, "src", "voicemail", folder, fmt.Sprintf("msg%04d.txt", n))); err != nil {
			return n
		}
		n++
	}
}

func (b *syncBench) newMessages(n int) (string, error) {
	var total int64
	for i := 0; i < n; i++ {
		folder := b.mailboxes[b.rng.IntN(len(b.mailboxes))]
		k, err := b.writeMsg(folder, b.msgCount(folder))
		if err != nil {
			return "", err
		}
		total += k
	}
	return fmt.Sprintf("%d messages, %.1f MB", n, float64(total)/1e6), nil
}

// renumber deletes the first message of n folders and renumbers the later ones down by one,
// as Asterisk does under the folder lock.
func (b *syncBench) renumber(n int) (string, error) {
	var cands []string
	for _, f := range b.mailboxes {
		if b.msgCount(f) >= 2 {
			cands = append(cands, f)
		}
	}
	moved := 0
	for _, i := range b.rng.Perm(len(cands))[:min(n, len(cands))] {
		folder := filepath.Join(b.dir, "src", "voicemail", cands[i])
		cnt := b.msgCount(cands[i])
		for _, ext := range []string{".wav", ".txt"} {
			if err := os.Remove(filepath.Join(folder, "msg0000"+ext)); err != nil {
				return "", err
			}
		}
		for k := 1; k < cnt; k++ {
			for _, ext := range []string{".wav", ".txt"} {
				if err := os.Rename(filepath.Join(folder, fmt.Sprintf("msg%04d%s", k, ext)), filepath.Join(folder, fmt.Sprintf("msg%04d%s", k-1, ext))); err != nil {
					return "", err
				}
			}
			moved++
		}
	}
	return fmt.Sprintf("%d folders: msg0000 deleted, %d messages renumbered", min(n, len(cands)), moved), nil
}

var handedOut = map[string]bool{}

// freeAddr returns a free loopback port, never one it returned before (the kernel may hand a
// just-closed port out again).
func freeAddr() (string, error) {
	for {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return "", err
		}
		addr := l.Addr().String()
		l.Close()
		if !handedOut[addr] {
			handedOut[addr] = true
			return addr, nil
		}
	}
}

func (b *syncBench) startRsyncd() error {
	addr, err := freeAddr()
	if err != nil {
		return err
	}
	_, port, _ := net.SplitHostPort(addr)
	conf := filepath.Join(b.dir, "rsyncd.conf")
	var c strings.Builder
	fmt.Fprintf(&c, "use chroot = no\nnumeric ids = yes\npid file = %s\n", filepath.Join(b.dir, "rsyncd.pid"))
	for _, m := range []string{"plain", "fsync"} {
		d := filepath.Join(b.dir, "rsync-"+m)
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
		fmt.Fprintf(&c, "[%s]\n  path = %s\n  read only = no\n", m, d)
		if os.Geteuid() == 0 {
			c.WriteString("  uid = 0\n  gid = 0\n")
		}
	}
	if err := os.WriteFile(conf, []byte(c.String()), 0o600); err != nil {
		return err
	}
	b.rsyncd = exec.Command(b.rsync, "--daemon", "--no-detach", "--config="+conf, "--address=127.0.0.1", "--port="+port,
		"--log-file="+filepath.Join(b.dir, "rsyncd.log"))
	b.rsyncd.Stderr = os.Stderr
	if err := b.rsyncd.Start(); err != nil {
		return err
	}
	b.rsyncAddr = addr
	for i := 0; i < 200; i++ {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return nil
		}
		time.Sleep(10 * time.Millisecond)
	}
	return errors.New("rsync daemon did not start")
}

func (b *syncBench) stopRsyncd() {
	if b.rsyncd != nil && b.rsyncd.Process != nil {
		_ = b.rsyncd.Process.Signal(syscall.SIGTERM)
		_ = b.rsyncd.Wait()
	}
}

// procCPU returns the CPU time of pid plus its reaped children (the daemon's per-connection
// processes) from /proc/<pid>/stat.
func procCPU(pid int) time.Duration {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(data)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	var ticks int64
	for _, i := range []int{11, 12, 13, 14} { // utime stime cutime cstime (fields 14-17)
		v, _ := strconv.ParseInt(f[i], 10, 64)
		ticks += v
	}
	return time.Duration(ticks) * (time.Second / 100)
}

var rsyncStat = regexp.MustCompile(`Total bytes (sent|received): ([0-9,.]+)`)

func (b *syncBench) runRsync(ctx context.Context, module string, fsync bool) (benchRow, error) {
	args := []string{"-a", "--delete", "--stats"}
	tool := "rsync"
	if fsync {
		args = append(args, "--fsync")
		tool = "rsync --fsync"
	}
	args = append(args, filepath.Join(b.dir, "src")+"/", "rsync://"+b.rsyncAddr+"/"+module+"/")
	cmd := exec.CommandContext(ctx, b.rsync, args...)
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	d0 := procCPU(b.rsyncd.Process.Pid)
	t0 := time.Now()
	err := cmd.Run()
	wall := time.Since(t0)
	if err != nil {
		return benchRow{}, fmt.Errorf("%v: %s", err, out.String())
	}
	// The daemon reaps its connection process shortly after the client exits; its CPU time
	// is in the daemon's cutime/cstime from then on.
	pid := b.rsyncd.Process.Pid
	for i := 0; i < 1000; i++ {
		kids, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
		if err != nil || len(strings.TrimSpace(string(kids))) == 0 {
			break
		}
		time.Sleep(2 * time.Millisecond)
	}
	daemon := procCPU(pid) - d0
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
	srcState, dstState := filepath.Join(b.dir, "state-src"), filepath.Join(b.dir, "state-dst")
	fs, err := pbxsync.LocalFingerprint(srcState)
	if err != nil {
		return err
	}
	fd, err := pbxsync.LocalFingerprint(dstState)
	if err != nil {
		return err
	}
	a1, err := freeAddr()
	if err != nil {
		return err
	}
	a2, err := freeAddr()
	if err != nil {
		return err
	}
	src := filepath.Join(b.dir, "src")
	dst := filepath.Join(b.dir, "ours")
	log := slog.New(slog.DiscardHandler)
	if b.verbose {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	b.src, err = pbxsync.New(pbxsync.Config{Paths: []string{filepath.Join(src, "etc"), filepath.Join(src, "voicemail")},
		StateDir: srcState, Listen: a1, Peer: a2, PeerFingerprint: fd, Interval: "24h", Logger: log, MaxDeleteShare: 0.5})
	if err != nil {
		return err
	}
	b.dst, err = pbxsync.New(pbxsync.Config{Paths: []string{filepath.Join(dst, "etc"), filepath.Join(dst, "voicemail")},
		StateDir: dstState, Listen: a2, Peer: a1, PeerFingerprint: fs, Interval: "24h", Logger: log, MaxDeleteShare: 0.5})
	if err != nil {
		return err
	}
	ctx, b.cancel = context.WithCancel(ctx)
	b.done = make(chan error, 2)
	go func() { b.done <- b.src.Run(ctx) }()
	go func() { b.done <- b.dst.Run(ctx) }()
	for i := 0; i < 200; i++ {
		if c, err := net.Dial("tcp", a2); err == nil {
			c.Close()
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	b.dst.SetRole(pbxsync.RoleReplica)
	return nil
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
		for b.src.Status().Runs == 0 {
			time.Sleep(time.Millisecond)
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

// compareTrees checks that dst holds exactly src's files with the same content (and, when
// attrs, the same mode and mtime).
func compareTrees(src, dst string, attrs bool) ([]string, error) {
	var diffs []string
	seen := map[string]bool{}
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		seen[rel] = true
		if d.IsDir() {
			return nil
		}
		q := filepath.Join(dst, rel)
		fa, err := os.Lstat(p)
		if err != nil {
			return err
		}
		fb, err := os.Lstat(q)
		if err != nil {
			diffs = append(diffs, "missing: "+rel)
			return nil
		}
		if fa.Size() != fb.Size() {
			diffs = append(diffs, "size: "+rel)
			return nil
		}
		if attrs && (fa.Mode() != fb.Mode() || !fa.ModTime().Equal(fb.ModTime())) {
			diffs = append(diffs, "mode/mtime: "+rel)
		}
		same, err := sameFile(p, q)
		if err != nil {
			return err
		}
		if !same {
			diffs = append(diffs, "content: "+rel)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	err = filepath.WalkDir(dst, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dst, p)
		if !seen[rel] {
			diffs = append(diffs, "extra: "+rel)
		}
		return nil
	})
	return diffs, err
}

var cmpBufA, cmpBufB [256 << 10]byte

func sameFile(a, b string) (bool, error) {
	fa, err := os.Open(a)
	if err != nil {
		return false, err
	}
	defer fa.Close()
	fb, err := os.Open(b)
	if err != nil {
		return false, err
	}
	defer fb.Close()
	ba, bb := cmpBufA[:], cmpBufB[:]
	for {
		na, ea := io.ReadFull(fa, ba)
		nb, eb := io.ReadFull(fb, bb)
		if na != nb || !bytes.Equal(ba[:na], bb[:nb]) {
			return false, nil
		}
		if ea != nil || eb != nil {
			return ea != nil && eb != nil, nil
		}
	}
}

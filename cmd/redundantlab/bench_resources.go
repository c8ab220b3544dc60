//go:build linux

package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redundantd/redundantd/testlab"
	"github.com/redundantd/redundantd/testlab/poll"
)

func init() {
	register("bench resources", "RSS and CPU of an idle Master and Backup: redundantd bare, with notifications and scraped metrics (and the console with -console), vs keepalived", runBenchResources)
}

// userHZ is the unit of utime and stime in /proc/PID/stat (USER_HZ, 100 on every
// architecture Go's linux ports run on except alpha, which Go does not support).
const userHZ = 100

// resCase is one configuration measured by bench resources: a pair of nodes in a lab of its
// own, node1 preferred (Master), node2 Backup.
type resCase struct {
	key  string // for -cases
	name string
	impl testlab.Impl
	// notify gives each redundantd node [[notify]] channels to receivers in its namespace.
	notify bool
	// scrape fetches GET /metrics from both nodes every -scrape during the window.
	scrape bool
	// console enables the web console ([console] enabled = true, a users file).
	console bool
	// browser keeps a headless browser logged in on the Master's live Status page during
	// the window.
	browser bool
}

func (c resCase) String() string { return c.name }

// resPair is a running case.
type resPair struct {
	c       resCase
	lab     *testlab.Lab
	routers [2]*testlab.Router
	recv    [2]*receivers
	browser *benchBrowser // with the console: the browser on node1's Status page
	scrapes atomic.Int64  // successful /metrics answers during the window
	scrapeE atomic.Value  // last scrape error (string)
}

// procSample is what /proc says about one process group at one moment.
type procSample struct {
	pids   int
	rssKB  int64 // VmRSS summed over the group's processes
	anonKB int64 // RssAnon summed: the processes' own memory (heap, stacks, data written)
	fileKB int64 // RssFile summed: mapped file pages (the binary, shared libraries)
	pssKB  int64 // Pss (smaps_rollup) summed: shared pages counted once
	ticks  int64 // utime+stime summed, in 1/userHZ s
	// onCPU is each thread's time on a CPU (/proc/PID/task/TID/schedstat, nanoseconds, not
	// tick-sampled), by thread id.
	onCPU map[int]int64
	thr   int // threads summed
}

// resResult is one node's figures over the window.
type resResult struct {
	pair     *resPair
	node     int // 0 or 1
	role     string
	first    procSample
	last     procSample
	maxRSSKB int64
	window   time.Duration
}

func (r resResult) cpuPercent() float64 {
	cpu := float64(r.last.ticks-r.first.ticks) / userHZ
	return 100 * cpu / r.window.Seconds()
}

// onCPU is the threads' time on a CPU during the window: for each thread alive at the end,
// its time less what it had at the start (a thread started meanwhile counts whole; one that
// ended meanwhile is missed, which a Go daemon's threads do not do when idle).
func (r resResult) onCPU() time.Duration {
	var d int64
	for tid, ns := range r.last.onCPU {
		d += ns - r.first.onCPU[tid]
	}
	return time.Duration(d)
}

// onCPUPercent is onCPU as a percentage of one core; utime+stime's when the kernel keeps no
// schedstat.
func (r resResult) onCPUPercent() float64 {
	if len(r.last.onCPU) == 0 {
		return r.cpuPercent()
	}
	return 100 * r.onCPU().Seconds() / r.window.Seconds()
}

// resCases are the cases named in -cases (comma-separated), in the order bare, notify, with
// -console idle (console and notifications enabled, no client) and console (a browser open,
// metrics scraped), then keepalived, which is left out with a message when it is not
// installed.
func resCases(only string, console bool) ([]resCase, error) {
	all := []resCase{
		{key: "bare", name: "redundantd (VRRP + API)", impl: testlab.Redundantd},
		{key: "notify", name: "redundantd + notify + metrics", impl: testlab.Redundantd, notify: true, scrape: true},
		{key: "idle", name: "redundantd + console + notify, no client", impl: testlab.Redundantd, notify: true, console: true},
		{key: "console", name: "redundantd + console open + notify + metrics", impl: testlab.Redundantd, notify: true, scrape: true, console: true, browser: true},
		{key: "keepalived", name: "keepalived", impl: testlab.Keepalived},
	}
	want := map[string]bool{}
	for _, k := range strings.Split(only, ",") {
		k = strings.TrimSpace(k)
		if !slices.ContainsFunc(all, func(c resCase) bool { return c.key == k }) || k == "console" || k == "idle" {
			return nil, fmt.Errorf("bench resources: -cases: unknown case %q (want bare, notify, keepalived; the console's cases are -console)", k)
		}
		want[k] = true
	}
	want["console"], want["idle"] = console, console
	var cases []resCase
	for _, c := range all {
		if !want[c.key] {
			continue
		}
		if c.impl == testlab.Keepalived && testlab.KeepalivedPath() == "" {
			fmt.Println("keepalived is not installed: measuring redundantd only (no reference)")
			continue
		}
		cases = append(cases, c)
	}
	if len(cases) == 0 {
		return nil, errors.New("bench resources: no case to run")
	}
	return cases, nil
}

func runBenchResources(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("bench resources", flag.ContinueOnError)
	window := fs.Duration("duration", 60*time.Second, "idle window over which CPU is measured")
	settle := fs.Duration("settle", 10*time.Second, "wait after the roles are taken before the window starts")
	scrape := fs.Duration("scrape", 15*time.Second, "interval of the /metrics scrapes during the window")
	only := fs.String("cases", "bare,notify,keepalived", "the cases to run: bare (redundantd with VRRP and the API), notify (with notifications and scraped metrics), keepalived")
	console := fs.Bool("console", false, "also measure redundantd with [console] enabled, with no client and with a headless Chromium logged in on the live Status page (needs chromium)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if os.Geteuid() != 0 {
		return errors.New("bench resources: the lab needs root (network namespaces)")
	}
	if *window < 10*time.Second || *scrape <= 0 {
		return errors.New("bench resources: -duration must be at least 10s and -scrape positive")
	}
	cases, err := resCases(*only, *console)
	if err != nil {
		return err
	}
	// The daemon as the package installs it: static and stripped (a cgo build maps libc and
	// its symbols, which an operator's binary does not have). The lab starts REDUNDANTD_BIN;
	// one set by the caller (another build to compare) is taken as it is.
	how := "built as packaging/build.sh does: CGO_ENABLED=0 -trimpath -tags=nethttpomithttp2 -ldflags='-s -w'"
	if os.Getenv("REDUNDANTD_BIN") != "" {
		how = "REDUNDANTD_BIN"
	}
	bin, err := testlab.BuildRelease(ctx, testlab.RedundantdPkg)
	if err != nil {
		return err
	}
	defer testlab.RemoveBinaries()
	if err := os.Setenv("REDUNDANTD_BIN", bin); err != nil {
		return err
	}
	fi, err := os.Stat(bin)
	if err != nil {
		return err
	}

	fmt.Printf("resource benchmark: each case a pair in its own lab (node1 priority 110 Master, node2 100 Backup), adverts every 1 s, one VIP\n")
	fmt.Printf("redundantd: %s (%.1f MB, %s)\n", bin, float64(fi.Size())/1e6, how)
	fmt.Printf("window %s idle after %s settling; /metrics scraped every %s; GOGC=%q GOMEMLIMIT=%q in the daemons' environment\n",
		*window, *settle, *scrape, os.Getenv("GOGC"), os.Getenv("GOMEMLIMIT"))
	var pairs []*resPair
	defer func() {
		for _, p := range pairs {
			p.close()
		}
	}()
	for _, c := range cases {
		p, err := startResPair(ctx, c)
		if p != nil {
			pairs = append(pairs, p)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", c, err)
		}
		fmt.Printf("  %-40s node1 master, node2 backup (lab %s)\n", c.name, p.lab.Name)
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(*settle):
	}
	results, err := measureWindow(ctx, pairs, *window, *scrape)
	if err != nil {
		return err
	}
	printResources(results)
	return nil
}

// startResPair builds the case's lab and starts node1 (until Master) then node2 (until
// Backup). With notifications it waits until node1's receivers have each had its
// "became master", so the channels are known to work before the window.
func startResPair(ctx context.Context, c resCase) (*resPair, error) {
	lab, err := testlab.New(ctx, testlab.Options{Nodes: 2})
	if err != nil {
		return nil, err
	}
	p := &resPair{c: c, lab: lab}
	vip := lab.DefaultVIP()
	var users, password string
	if c.console {
		if users, password, err = writeConsoleUsers(lab.Dir); err != nil {
			return p, err
		}
	}
	for i, prio := range []uint8{110, 100} {
		n := lab.Node(i + 1)
		cfg := testlab.VRRPConfig{VRID: 51, Priority: prio, AdvertInterval: time.Second, VIPs: []netip.Prefix{vip}}
		if c.notify {
			r, err := startReceivers(n)
			if err != nil {
				return p, err
			}
			p.recv[i] = r
			cfg.Extra = r.toml()
		}
		if c.console {
			cfg.Extra += consoleTOML(users)
		}
		r, err := n.StartRouter(ctx, c.impl, cfg)
		if err != nil {
			return p, err
		}
		p.routers[i] = r
		want := []string{"master", "backup"}[i]
		wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		err = r.WaitState(wctx, want)
		cancel()
		if err != nil {
			if c.console {
				return p, fmt.Errorf("-console: does this redundantd have the web console ([console] enabled = true)? %w", err)
			}
			return p, err
		}
	}
	if c.notify {
		if err := p.recv[0].waitEach(ctx, 10*time.Second); err != nil {
			return p, fmt.Errorf("node1's notifications: %w", err)
		}
	}
	if c.browser {
		if p.browser, err = startBrowser(ctx, lab.Node(1), password); err != nil {
			return p, err
		}
	}
	return p, nil
}

func (p *resPair) close() {
	if p.browser != nil {
		p.browser.close()
	}
	for _, r := range p.recv {
		if r != nil {
			r.close()
		}
	}
	p.lab.Close()
}

// measureWindow samples every node's process group each second for window, scrapes the
// metrics of the cases that ask for it, and returns each node's figures.
func measureWindow(ctx context.Context, pairs []*resPair, window, scrape time.Duration) ([]resResult, error) {
	results, err := startResults(ctx, pairs)
	if err != nil {
		return nil, err
	}
	start := time.Now()
	wctx, cancel := context.WithDeadline(ctx, start.Add(window))
	defer cancel()
	var wg sync.WaitGroup
	for _, p := range pairs {
		if p.c.scrape {
			wg.Go(func() { p.scrapeEvery(wctx, scrape) })
		}
	}
	fmt.Printf("\nmeasuring %s from %s:", window, start.UTC().Format("15:04:05"))
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	var serr error
	for done := false; !done; {
		select {
		case <-ctx.Done():
			wg.Wait()
			return nil, ctx.Err()
		case <-wctx.Done():
			done = true
		case <-tick.C:
		}
		if n := int(time.Since(start).Seconds()); !done && n%10 == 0 {
			fmt.Printf(" %ds", n)
		}
		for i := range results {
			r := &results[i]
			s, err := sampleGroup(r.pair.routers[r.node].Proc().Pid())
			if err != nil {
				serr = errors.Join(serr, err)
				continue
			}
			r.maxRSSKB = max(r.maxRSSKB, s.rssKB)
			r.last, r.window = s, time.Since(start)
		}
	}
	wg.Wait()
	fmt.Println()
	if serr != nil {
		return nil, serr
	}
	return results, checkWindow(ctx, results)
}

// startResults takes every node's role and first sample, and starts the receivers' counts
// from zero.
func startResults(ctx context.Context, pairs []*resPair) ([]resResult, error) {
	var results []resResult
	for _, p := range pairs {
		for i, r := range p.routers {
			role, err := r.State(ctx)
			if err != nil {
				return nil, err
			}
			s, err := sampleGroup(r.Proc().Pid())
			if err != nil {
				return nil, fmt.Errorf("%s: %w", r, err)
			}
			results = append(results, resResult{pair: p, node: i, role: role, first: s, maxRSSKB: s.rssKB})
		}
		for _, r := range p.recv {
			if r != nil {
				r.mark()
			}
		}
	}
	return results, nil
}

// checkWindow fails the measurement if a node changed its role or its number of processes
// during the window, or the browser of the console case no longer holds the live Status page:
// the figures would not be of what the case says.
func checkWindow(ctx context.Context, results []resResult) error {
	for _, r := range results {
		if r.first.pids != r.last.pids {
			return fmt.Errorf("%s node%d: %d processes at the start of the window, %d at the end", r.pair.c, r.node+1, r.first.pids, r.last.pids)
		}
		if st, err := r.pair.routers[r.node].State(ctx); err != nil || st != r.role {
			return fmt.Errorf("%s node%d: %s at the start of the window, %s at the end (%v)", r.pair.c, r.node+1, r.role, st, err)
		}
		if b := r.pair.browser; b != nil && r.node == 0 {
			if err := b.check(); err != nil {
				return fmt.Errorf("%s: %w", r.pair.c, err)
			}
		}
	}
	return nil
}

// scrapeEvery fetches /metrics from both nodes at once and then every interval until ctx
// ends, over keep-alive connections as Prometheus does.
func (p *resPair) scrapeEvery(ctx context.Context, interval time.Duration) {
	var clients [2]*http.Client
	for i, r := range p.routers {
		clients[i] = &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DialContext: r.Node.DialContext}}
		defer clients[i].CloseIdleConnections()
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		for _, c := range clients {
			if err := scrapeOnce(ctx, c); err != nil {
				if ctx.Err() == nil {
					p.scrapeE.Store(err.Error())
				}
				continue
			}
			p.scrapes.Add(1)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func scrapeOnce(ctx context.Context, c *http.Client) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+testlab.APIAddr+"/metrics", nil)
	if err != nil {
		return err
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(b), "redundantd_") {
		return fmt.Errorf("GET /metrics: %s, %d bytes", resp.Status, len(b))
	}
	return nil
}

// sampleGroup reads /proc for every process of process group pgid (the lab starts each
// daemon as the leader of its own group: keepalived's parent and its VRRP child, or
// redundantd alone).
func sampleGroup(pgid int) (procSample, error) {
	var s procSample
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return s, err
	}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		st, err := readStat(pid)
		if err != nil || st.pgrp != pgid {
			continue // gone meanwhile, or another group
		}
		ps, err := readStatus(pid)
		if err != nil {
			continue
		}
		if s.onCPU == nil {
			s.onCPU = map[int]int64{}
		}
		threadsOnCPU(pid, s.onCPU)
		s.pids++
		s.ticks += st.ticks
		s.rssKB += ps.rssKB
		s.anonKB += ps.anonKB
		s.fileKB += ps.fileKB
		s.thr += ps.threads
		s.pssKB += readPss(pid)
	}
	if s.pids == 0 {
		return s, fmt.Errorf("no process in group %d", pgid)
	}
	return s, nil
}

type procStat struct {
	pgrp  int
	ticks int64 // utime + stime
}

// readStat parses /proc/PID/stat (proc(5)): the fields after the command's closing
// parenthesis, from field 3 (state) on.
func readStat(pid int) (procStat, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return procStat{}, err
	}
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return procStat{}, fmt.Errorf("/proc/%d/stat: no command", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return procStat{}, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f))
	}
	pgrp, err1 := strconv.Atoi(f[2])               // field 5
	utime, err2 := strconv.ParseInt(f[11], 10, 64) // field 14
	stime, err3 := strconv.ParseInt(f[12], 10, 64) // field 15
	if err := errors.Join(err1, err2, err3); err != nil {
		return procStat{}, fmt.Errorf("/proc/%d/stat: %w", pid, err)
	}
	return procStat{pgrp: pgrp, ticks: utime + stime}, nil
}

// procStatus is what bench resources reads from /proc/PID/status (proc(5)).
type procStatus struct {
	rssKB, anonKB, fileKB int64 // VmRSS, RssAnon, RssFile
	threads               int
}

// readStatus reads VmRSS, RssAnon, RssFile (kB) and Threads from /proc/PID/status.
func readStatus(pid int) (procStatus, error) {
	var st procStatus
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return st, err
	}
	fields := map[string]*int64{"VmRSS": &st.rssKB, "RssAnon": &st.anonKB, "RssFile": &st.fileKB}
	found := 0
	for _, l := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(l, ":")
		f := strings.Fields(v)
		if !ok || len(f) == 0 {
			continue
		}
		if k == "Threads" {
			st.threads, err = strconv.Atoi(f[0])
			found++
		} else if into, ok := fields[k]; ok {
			*into, err = strconv.ParseInt(f[0], 10, 64)
			found++
		}
		if err != nil {
			return st, fmt.Errorf("/proc/%d/status: %s: %w", pid, k, err)
		}
	}
	if found != 4 {
		return st, fmt.Errorf("/proc/%d/status: no VmRSS, RssAnon, RssFile or Threads", pid)
	}
	return st, nil
}

// threadsOnCPU adds each thread of pid with its schedstat run time (proc(5): the first field
// of /proc/PID/task/TID/schedstat, nanoseconds on a CPU) to into.
func threadsOnCPU(pid int, into map[int]int64) {
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		return
	}
	for _, e := range ents {
		tid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/schedstat", pid, tid))
		if err != nil {
			continue
		}
		if f := strings.Fields(string(b)); len(f) > 0 {
			if ns, err := strconv.ParseInt(f[0], 10, 64); err == nil {
				into[tid] = ns
			}
		}
	}
}

// readPss is the Pss of /proc/PID/smaps_rollup in kB (0 when the kernel has none).
func readPss(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "Pss:" {
			n, _ := strconv.ParseInt(f[1], 10, 64)
			return n
		}
	}
	return 0
}

func mib(kb int64) string { return fmt.Sprintf("%.1f MiB", float64(kb)/1024) }

func printResources(results []resResult) {
	fmt.Println()
	fmt.Printf("%-46s %-6s %-6s %5s %7s %10s %10s %10s %10s %10s %9s %9s %9s %9s\n", "case", "node", "role", "procs", "threads", "RSS", "RSS max", "anon", "file", "PSS", "CPU", "% of core", "on CPU", "% of core")
	for _, r := range results {
		cpu := time.Duration(r.last.ticks-r.first.ticks) * time.Second / userHZ
		fmt.Printf("%-46s node%-2d %-6s %5d %7d %10s %10s %10s %10s %10s %7dms %8.3f%% %7.1fms %8.3f%%\n", r.pair.c, r.node+1, r.role, r.last.pids, r.last.thr,
			mib(r.last.rssKB), mib(r.maxRSSKB), mib(r.last.anonKB), mib(r.last.fileKB), mib(r.last.pssKB), cpu.Milliseconds(), r.cpuPercent(),
			float64(r.onCPU())/float64(time.Millisecond), r.onCPUPercent())
	}
	fmt.Printf("(RSS: VmRSS at the end of the window, summed over the group's processes; anon: their RssAnon (heap, stacks,\n")
	fmt.Printf(" data written); file: their RssFile, mapped file pages: the binary, shared libraries; PSS: shared pages counted once;\n")
	fmt.Printf(" CPU: utime+stime over the window from /proc/PID/stat, in %d ms ticks; on CPU: the threads' schedstat run time,\n", 1000/userHZ)
	fmt.Printf(" in nanoseconds, which the verdicts use)\n")
	for _, r := range results {
		p := r.pair
		if p.c.scrape && r.node == 0 {
			last, _ := p.scrapeE.Load().(string)
			fmt.Printf("%s: %d scrapes of /metrics answered", p.c, p.scrapes.Load())
			if last != "" {
				fmt.Printf(" (last error: %s)", last)
			}
			fmt.Println()
		}
		if p.c.notify {
			fmt.Printf("%s node%d: notifications received before the window %s, during it %s\n", p.c, r.node+1, p.recv[r.node].before, p.recv[r.node].counts())
		}
	}
	fmt.Println()
	var ka *resResult
	for i := range results {
		if results[i].pair.c.impl == testlab.Keepalived && results[i].role == "master" {
			ka = &results[i]
		}
	}
	for _, r := range results {
		if r.pair.c.impl != testlab.Redundantd || r.role != "master" {
			continue
		}
		// The CPU targets: under 0.1 % of a core idle, under 0.5 % with the console
		// open in a browser and metrics scraped.
		limit := 0.1
		if r.pair.c.browser {
			limit = 0.5
		}
		verdict := fmt.Sprintf("under %.1f %% of a core", limit)
		if r.onCPUPercent() >= limit {
			verdict = "NOT " + verdict
		}
		line := fmt.Sprintf("%s as Master: on CPU %.3f %% (utime+stime %.3f %%): %s", r.pair.c, r.onCPUPercent(), r.cpuPercent(), verdict)
		if ka != nil {
			cmp := "at or below keepalived's"
			if r.last.rssKB > ka.last.rssKB {
				cmp = "ABOVE keepalived's"
			}
			line += fmt.Sprintf("; RSS %s (anon %s, file %s) vs keepalived %s (anon %s, file %s): %s", mib(r.last.rssKB), mib(r.last.anonKB), mib(r.last.fileKB),
				mib(ka.last.rssKB), mib(ka.last.anonKB), mib(ka.last.fileKB), cmp)
		}
		fmt.Println(line)
	}
}

// receivers are a node's notification receivers on its loopback: a webhook (HTTP), a
// syslog collector (UDP) and an SNMP trap sink (UDP). They count what arrives.
type receivers struct {
	hookLn   net.Listener
	srv      *http.Server
	syslog   net.PacketConn
	traps    net.PacketConn
	hooks    atomic.Int64
	messages atomic.Int64
	trapN    atomic.Int64
	before   string // the counts when the window started
}

func startReceivers(n *testlab.Node) (*receivers, error) {
	r := &receivers{}
	var err error
	if r.hookLn, err = n.Listen("tcp4", "127.0.0.1:0"); err != nil {
		return nil, err
	}
	r.srv = &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		_, _ = io.Copy(io.Discard, req.Body)
		r.hooks.Add(1)
		w.WriteHeader(http.StatusNoContent)
	})}
	go func() { _ = r.srv.Serve(r.hookLn) }()
	if r.syslog, err = n.ListenPacket("udp4", "127.0.0.1:0"); err != nil {
		r.close()
		return nil, err
	}
	if r.traps, err = n.ListenPacket("udp4", "127.0.0.1:0"); err != nil {
		r.close()
		return nil, err
	}
	go countPackets(r.syslog, &r.messages)
	go countPackets(r.traps, &r.trapN)
	return r, nil
}

func countPackets(pc net.PacketConn, n *atomic.Int64) {
	buf := make([]byte, 64<<10)
	for {
		if _, _, err := pc.ReadFrom(buf); err != nil {
			return
		}
		n.Add(1)
	}
}

// toml is the node's [[notify]] channels to these receivers.
func (r *receivers) toml() string {
	return fmt.Sprintf(`[[notify]]
name = "hook"
type = "webhook"
url = "http://%s/hook"

[[notify]]
name = "syslog"
type = "syslog"
network = "udp"
address = %q

[[notify]]
name = "traps"
type = "snmp"
address = %q
community = "public"
`, r.hookLn.Addr(), r.syslog.LocalAddr().String(), r.traps.LocalAddr().String())
}

// waitEach waits up to timeout until every receiver has had at least one message (the
// node's start-up events), so the channels are known to deliver.
func (r *receivers) waitEach(ctx context.Context, timeout time.Duration) error {
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	err := poll.Context(wctx, 50*time.Millisecond, func() bool {
		return r.hooks.Load() > 0 && r.messages.Load() > 0 && r.trapN.Load() > 0
	})
	if err != nil {
		return fmt.Errorf("after %s: %s: %w", timeout, r.counts(), err)
	}
	return nil
}

// mark notes the counts so far as "before" and starts counting the window from zero.
func (r *receivers) mark() {
	r.before = r.counts()
	r.hooks.Store(0)
	r.messages.Store(0)
	r.trapN.Store(0)
}

func (r *receivers) counts() string {
	return fmt.Sprintf("%d webhook POSTs, %d syslog messages, %d trap datagrams", r.hooks.Load(), r.messages.Load(), r.trapN.Load())
}

func (r *receivers) close() {
	if r.srv != nil {
		r.srv.Close()
	}
	if r.syslog != nil {
		r.syslog.Close()
	}
	if r.traps != nil {
		r.traps.Close()
	}
}

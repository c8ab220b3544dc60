package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/redundantd/redundantd/appliance"
)

// The commands that talk to a running redundantd over its API. They decode the API's own
// types (appliance.StatusResponse, appliance.Event, ...): one contract.

func init() {
	reg := func(name, summary string, f func(ctx context.Context, c *apiClient, args []string) int) {
		register(name, summary, func(ctx context.Context, args []string) int {
			return runAPI(ctx, name, args, os.Stdout, os.Stderr, f)
		})
	}
	reg("status", "this node and its peer side by side: role, mode, Master, sync, services", cmdStatus)
	reg("events", "the event log (-follow to keep reading; `events read` marks events read)", cmdEvents)
	reg("mode", "set the group's Backup mode: mode active | mode passive", cmdMode)
	reg("swap", "hand the Master role to the Backup (on the Master; -force, -drain 5m, -cancel)", cmdSwap)
	reg("sync", "replicate now, on the Master (before a planned swap)", cmdSync)
}

const defaultTokenFile = "/var/lib/redundantd/api.token"

// apiClient is one command's connection to the daemon.
type apiClient struct {
	base   string
	token  string
	json   bool
	out    io.Writer
	errOut io.Writer
	http   *http.Client
}

// runAPI parses the common flags (-api, -token-file, -json), then runs f with the rest.
func runAPI(ctx context.Context, name string, args []string, stdout, stderr io.Writer,
	f func(ctx context.Context, c *apiClient, args []string) int) int {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	api := fs.String("api", "127.0.0.1:7400", "the daemon's API address")
	tokenFile := fs.String("token-file", defaultTokenFile, "the API token (api.token_file); REDUNDANTD_TOKEN overrides")
	asJSON := fs.Bool("json", false, "print the API's JSON instead of text")
	caCert := fs.String("cacert", os.Getenv("REDUNDANTD_CACERT"), "with -api https://...: trust this certificate (console.tls_cert); REDUNDANTD_CACERT")
	extra := commandFlags(name, fs)
	if err := fs.Parse(args); err != nil {
		return 2
	}
	hc, err := httpClient(*caCert)
	if err != nil {
		fmt.Fprintf(stderr, "redundantctl: %v\n", err)
		return 2
	}
	c := &apiClient{base: *api, json: *asJSON, out: stdout, errOut: stderr, http: hc}
	if !strings.Contains(c.base, "://") {
		c.base = "http://" + c.base
	}
	c.token = os.Getenv("REDUNDANTD_TOKEN")
	if c.token == "" {
		if b, err := os.ReadFile(*tokenFile); err == nil {
			c.token = strings.TrimSpace(string(b))
		}
	}
	ctx = context.WithValue(ctx, flagsKey{}, extra)
	return f(ctx, c, fs.Args())
}

type flagsKey struct{}

// httpClient trusts the certificate in caFile besides the system's when it is set: the API
// speaks HTTPS when the daemon has console.tls_cert, usually a self-signed certificate.
func httpClient(caFile string) (*http.Client, error) {
	if caFile == "" {
		return &http.Client{}, nil
	}
	b, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("-cacert: %w", err)
	}
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("-cacert: %s holds no PEM certificate", caFile)
	}
	return &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}, nil
}

// cmdFlags are the command-specific flags.
type cmdFlags struct {
	after  *uint64
	follow *bool
	force  *bool
	drain  *string
	cancel *bool
}

func commandFlags(name string, fs *flag.FlagSet) *cmdFlags {
	f := &cmdFlags{}
	switch name {
	case "events":
		f.after = fs.Uint64("after", 0, "only events after this sequence number")
		f.follow = fs.Bool("follow", false, "keep printing new events until interrupted")
	case "swap":
		f.force = fs.Bool("force", false, "hand over even if the final sync fails or the peer link is down")
		f.drain = fs.String("drain", "", "wait up to this long for calls to finish (e.g. 5m)")
		f.cancel = fs.Bool("cancel", false, "cancel a swap still draining or syncing")
	}
	return f
}

func flagsOf(ctx context.Context) *cmdFlags { return ctx.Value(flagsKey{}).(*cmdFlags) }

// apiError is a non-2xx answer, with the API's {"error": ...} text when there is one.
type apiError struct {
	code int
	msg  string
	body []byte
}

func (e *apiError) Error() string {
	return fmt.Sprintf("%d %s: %s", e.code, http.StatusText(e.code), e.msg)
}

// do sends one request and decodes a JSON answer into out (also a 409 answer, which carries
// a body of the same type for a swap). The raw body is returned for -json.
func (c *apiClient) do(ctx context.Context, method, path string, body, out any) ([]byte, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(c.base, "/")+path, rd)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("is redundantd running? %w", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if out != nil && (resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusConflict) {
		if jerr := json.Unmarshal(b, out); jerr != nil && resp.StatusCode == http.StatusOK {
			return b, fmt.Errorf("%s: bad answer: %w", path, jerr)
		}
	}
	if resp.StatusCode/100 != 2 {
		var e struct {
			Error string `json:"error"`
		}
		msg := strings.TrimSpace(string(b))
		if json.Unmarshal(b, &e) == nil && e.Error != "" {
			msg = e.Error
		}
		if resp.StatusCode == http.StatusUnauthorized {
			msg += " (run as root, or pass -token-file)"
		}
		return b, &apiError{code: resp.StatusCode, msg: msg, body: b}
	}
	return b, nil
}

// fail prints err and returns the exit status: 1 for a refusal or failure.
func (c *apiClient) fail(cmd string, err error) int {
	fmt.Fprintf(c.errOut, "redundantctl %s: %v\n", cmd, err)
	return 1
}

func (c *apiClient) printJSON(b []byte) {
	var buf bytes.Buffer
	if json.Indent(&buf, b, "", "  ") != nil {
		buf.Write(b)
	}
	fmt.Fprintln(c.out, strings.TrimSpace(buf.String()))
}

func cmdStatus(ctx context.Context, c *apiClient, args []string) int {
	var st appliance.StatusResponse
	b, err := c.do(ctx, http.MethodGet, "/api/v1/status", nil, &st)
	if err != nil {
		return c.fail("status", err)
	}
	if c.json {
		c.printJSON(b)
		return 0
	}
	printStatus(c.out, st)
	return 0
}

// printStatus shows this node and its peer side by side.
func printStatus(w io.Writer, st appliance.StatusResponse) {
	peer := appliance.PeerView{}
	if st.Peer != nil {
		peer = *st.Peer
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(k, a, b string) { fmt.Fprintf(tw, "%s\t%s\t%s\n", k, a, b) }
	peerName := "peer"
	if st.Peer == nil {
		peerName = "peer (no link)"
	}
	row("", "this node", peerName)
	row("node", st.NodeID, dash(peer.NodeID))
	row("role", st.State, peerRole(st.Peer))
	row("backup mode", st.BackupMode, dash(peer.BackupMode))
	row("version", st.Version, dash(peer.Version))
	row("health", health(st.Unhealthy), peerHealth(st.Peer))
	row("services", services(st.Services), peerServices(peer.Services))
	row("last sync", syncOf(st.Parts["sync"]), peerSync(peer.LastSync))
	tw.Flush()
	if len(st.Groups) == 0 {
		fmt.Fprintf(w, "\ngroup %d, priority %d, virtual IPs %s, holding %s, master %s since %s, %d transitions\n",
			st.GroupID, st.Priority, strings.Join(st.VirtualIPs, " "), dash(strings.Join(st.Holding, " ")),
			dash(st.MasterIP), dash(st.Since), st.Transitions)
	} else {
		printGroups(w, st)
	}
	if st.Fault != "" && len(st.Groups) == 0 { // with groups, each group's is under the table
		fmt.Fprintf(w, "fault: %s\n", st.Fault)
	}
	if lm := st.LeftMaster; lm != nil {
		fmt.Fprintf(w, "left master at %s (%s -> %s, %s): %s\n", lm.At.Local().Format("2006-01-02 15:04:05.000"), lm.From, lm.To, lm.Cause, lm.Reason)
	}
	for _, m := range peer.Mismatches {
		fmt.Fprintf(w, "mismatch: %s here %s, peer %s\n", m.Setting, m.Local, m.Peer)
	}
	if s := st.Swap; s != nil {
		fmt.Fprintf(w, "last swap: %s at %s (%.1f ms)%s\n", s.State, s.Started.Local().Format(time.DateTime), s.TotalMS, errSuffix(s.Error))
	}
	if st.Events.Unpersisted > 0 {
		fmt.Fprintf(w, "events: %d kept in memory only (%s)\n", st.Events.Unpersisted, st.Events.Error)
	}
}

// printGroups shows the unit of a node with several groups: the unit's role (the one the
// services and the berofos follow) and every group's settings and state, which differ from
// the unit's only while it moves.
func printGroups(w io.Writer, st appliance.StatusResponse) {
	fmt.Fprintf(w, "\nunit of %d groups: %s since %s, %d transitions\n", len(st.Groups), st.State, dash(st.Since), st.Transitions)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  group\tinterface\tvrid\tversion\tpriority\tstate\tvirtual IPs\tholding\tmaster")
	for _, g := range st.Groups {
		fmt.Fprintf(tw, "  %s\t%s\t%d\t%d\t%d\t%s\t%s\t%s\t%s\n", g.Name, g.Interface, g.GroupID, g.Version, g.Priority, g.State,
			dash(strings.Join(g.VirtualIPs, " ")), dash(strings.Join(g.Holding, " ")), dash(g.MasterIP))
	}
	tw.Flush()
	for _, g := range st.Groups {
		if g.Fault != "" {
			fmt.Fprintf(w, "fault: group %s: %s\n", g.Name, g.Fault)
		}
	}
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func errSuffix(e string) string {
	if e == "" {
		return ""
	}
	return ": " + e
}

func health(why string) string {
	if why == "" {
		return "healthy"
	}
	return "unhealthy: " + why
}

func peerRole(p *appliance.PeerView) string {
	switch {
	case p == nil:
		return "-"
	case !p.Connected && p.NodeID != "":
		return "DOWN (was " + p.Role + ")"
	case !p.Connected:
		return "not connected"
	}
	return p.Role
}

func peerHealth(p *appliance.PeerView) string {
	if p == nil || !p.Connected {
		return "-"
	}
	return health(p.Unhealthy)
}

func services(ss []appliance.ServiceStatus) string {
	var out []string
	for _, s := range ss {
		out = append(out, s.Name+" "+s.State.String())
	}
	return dash(strings.Join(out, ", "))
}

func peerServices(ss []appliance.PeerServiceState) string {
	var out []string
	for _, s := range ss {
		out = append(out, s.Name+" "+s.State)
	}
	return dash(strings.Join(out, ", "))
}

// syncOf renders the sync part's status (decoded generically: Parts is a map).
func syncOf(v any) string {
	m, ok := v.(map[string]any)
	if !ok {
		return "-"
	}
	role, _ := m["role"].(string)
	last, _ := m["last_success"].(string)
	if e, _ := m["last_error"].(string); e != "" {
		return fmt.Sprintf("%s, failed: %s", role, e)
	}
	return fmt.Sprintf("%s, last success %s", role, dash(last))
}

func peerSync(s *appliance.PeerSyncResult) string {
	switch {
	case s == nil:
		return "-"
	case s.OK:
		return "ok at " + s.At.Local().Format(time.DateTime)
	}
	return "failed: " + s.Error
}

func cmdEvents(ctx context.Context, c *apiClient, args []string) int {
	f := flagsOf(ctx)
	if len(args) > 0 {
		if args[0] != "read" {
			fmt.Fprintf(c.errOut, "redundantctl events: unknown argument %q (events [-follow] | events read [SEQ...])\n", args[0])
			return 2
		}
		return eventsRead(ctx, c, args[1:])
	}
	after := *f.after
	tw := tabwriter.NewWriter(c.out, 0, 0, 2, ' ', 0)
	for {
		var ev []appliance.Event
		b, err := c.do(ctx, http.MethodGet, fmt.Sprintf("/api/v1/events?after=%d", after), nil, &ev)
		if err != nil {
			if ctx.Err() != nil {
				return 0
			}
			return c.fail("events", err)
		}
		if c.json && !*f.follow {
			c.printJSON(b)
			return 0
		}
		for _, e := range ev {
			if c.json {
				line, _ := json.Marshal(e)
				fmt.Fprintln(c.out, string(line))
			} else {
				fmt.Fprintf(tw, "%d\t%s\t%s\t%d\t%s\t%s\t%s\n", e.Seq, e.Status, e.Time.Local().Format("2006-01-02 15:04:05.000"),
					e.Priority, e.Application, e.Name, e.Description)
			}
			after = e.Seq
		}
		tw.Flush()
		if !*f.follow {
			return 0
		}
		select {
		case <-ctx.Done():
			return 0
		case <-time.After(time.Second):
		}
	}
}

func eventsRead(ctx context.Context, c *apiClient, args []string) int {
	req := appliance.MarkReadRequest{}
	for _, a := range args {
		var n uint64
		if _, err := fmt.Sscan(a, &n); err != nil || n == 0 {
			fmt.Fprintf(c.errOut, "redundantctl events read: %q is not an event number\n", a)
			return 2
		}
		req.Seqs = append(req.Seqs, n)
	}
	if len(req.Seqs) == 0 {
		var ev []appliance.Event
		if _, err := c.do(ctx, http.MethodGet, "/api/v1/events", nil, &ev); err != nil {
			return c.fail("events read", err)
		}
		if len(ev) == 0 {
			fmt.Fprintln(c.out, "no events")
			return 0
		}
		req.UpTo = ev[len(ev)-1].Seq
	}
	var resp appliance.MarkReadResponse
	b, err := c.do(ctx, http.MethodPost, "/api/v1/events/read", req, &resp)
	if err != nil {
		return c.fail("events read", err)
	}
	if c.json {
		c.printJSON(b)
	} else {
		fmt.Fprintf(c.out, "%d events marked read\n", resp.Marked)
	}
	return 0
}

func cmdMode(ctx context.Context, c *apiClient, args []string) int {
	if len(args) != 1 {
		fmt.Fprintln(c.errOut, "usage: redundantctl mode active|passive")
		return 2
	}
	if _, err := appliance.ParseBackupMode(args[0]); err != nil {
		fmt.Fprintf(c.errOut, "redundantctl mode: %v\n", err)
		return 2
	}
	var resp appliance.BackupModeResponse
	b, err := c.do(ctx, http.MethodPut, "/api/v1/backup-mode", appliance.BackupModeRequest{Mode: args[0]}, &resp)
	if err != nil {
		return c.fail("mode", err)
	}
	if c.json {
		c.printJSON(b)
	} else {
		fmt.Fprintf(c.out, "backup mode %s (peer: %s)\n", resp.Mode, resp.Peer)
	}
	return 0
}

func cmdSwap(ctx context.Context, c *apiClient, args []string) int {
	f := flagsOf(ctx)
	if *f.cancel {
		b, err := c.do(ctx, http.MethodDelete, "/api/v1/swap", nil, nil)
		if err != nil {
			return c.fail("swap -cancel", err)
		}
		if c.json {
			c.printJSON(b)
		} else {
			fmt.Fprintln(c.out, "swap cancelled")
		}
		return 0
	}
	var res appliance.SwapResult
	b, err := c.do(ctx, http.MethodPost, "/api/v1/swap", appliance.SwapRequest{Force: *f.force, Drain: *f.drain}, &res)
	if c.json && b != nil {
		c.printJSON(b)
	} else if res.State != "" {
		printSwap(c.out, res)
	}
	var ae *apiError
	if err != nil && (!errors.As(err, &ae) || res.State == "" || c.json) {
		return c.fail("swap", err)
	}
	if err != nil {
		return 1
	}
	return 0
}

func printSwap(w io.Writer, res appliance.SwapResult) {
	fmt.Fprintf(w, "swap %s", res.State)
	if res.NewMaster != "" {
		fmt.Fprintf(w, ": %s is Master", res.NewMaster)
	}
	fmt.Fprintf(w, " (%.1f ms)\n", res.TotalMS)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	for _, s := range res.Timeline {
		fmt.Fprintf(tw, "  +%.1f ms\t%.1f ms\t %s\t %s\n", s.AtMS, s.TookMS, s.Step, s.Detail)
	}
	tw.Flush()
	if res.Error != "" {
		fmt.Fprintf(w, "error: %s\n", res.Error)
	}
}

func cmdSync(ctx context.Context, c *apiClient, args []string) int {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Minute)
	defer cancel()
	var st map[string]any
	b, err := c.do(ctx, http.MethodPost, "/api/v1/sync", struct{}{}, &st)
	if err != nil {
		return c.fail("sync", err)
	}
	c.printJSON(b)
	return 0
}

package main

import (
	"context"
	"encoding/json"
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

func init() {
	register("status", "show the node's role, group and peer as the daemon sees them", runStatus)
	register("events", "list the daemon's event log", runEvents)
}

// apiGet fetches path from the daemon's API and decodes the JSON body into v.
func apiGet(ctx context.Context, api, path string, v any) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	body, err := apiDo(ctx, http.MethodGet, api, path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("%s: bad answer: %w", path, err)
	}
	return nil
}

// apiDo sends one request to the daemon's API and returns the body of a 200 answer.
func apiDo(ctx context.Context, method, api, path string) ([]byte, error) {
	if !strings.Contains(api, "://") {
		api = "http://" + api
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(api, "/")+path, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("is redundantd running? %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: %s: %s", path, resp.Status, strings.TrimSpace(string(body)))
	}
	return body, nil
}

func runStatus(ctx context.Context, args []string) int {
	fs := flag.NewFlagSet("status", flag.ContinueOnError)
	api := fs.String("api", "127.0.0.1:7400", "the daemon's API address")
	asJSON := fs.Bool("json", false, "print the raw JSON")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	var st map[string]any
	if err := apiGet(ctx, *api, "/api/v1/status", &st); err != nil {
		fmt.Fprintln(os.Stderr, "redundantctl status:", err)
		return 1
	}
	if *asJSON {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(st)
		return 0
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	order := []string{"node_id", "state", "group_id", "priority", "virtual_ips", "master_ip", "since", "transitions", "dropped", "uptime"}
	seen := map[string]bool{}
	for _, k := range order {
		if v, ok := st[k]; ok {
			fmt.Fprintf(tw, "%s:\t%s\n", k, render(v))
			seen[k] = true
		}
	}
	for k, v := range st {
		if !seen[k] && k != "enabled" {
			fmt.Fprintf(tw, "%s:\t%s\n", k, render(v))
		}
	}
	tw.Flush()
	return 0
}

func runEvents(ctx context.Context, args []string) int {
	fs := flag.NewFlagSet("events", flag.ContinueOnError)
	api := fs.String("api", "127.0.0.1:7400", "the daemon's API address")
	after := fs.Uint64("after", 0, "only events after this sequence number")
	asJSON := fs.Bool("json", false, "print the raw JSON")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	var ev []appliance.Event
	if err := apiGet(ctx, *api, fmt.Sprintf("/api/v1/events?after=%d", *after), &ev); err != nil {
		fmt.Fprintln(os.Stderr, "redundantctl events:", err)
		return 1
	}
	if *asJSON {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(ev)
		return 0
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	for _, e := range ev {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%d\t%s\t%s\t%s\n", e.Seq, e.Status, e.Time.Local().Format("2006-01-02 15:04:05.000"), e.Priority, e.Application, e.Name, e.Description)
	}
	tw.Flush()
	return 0
}

// render prints a JSON value compactly for the table.
func render(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case nil:
		return "-"
	default:
		b, _ := json.Marshal(x)
		return string(b)
	}
}

func init() {
	register("sync", "replicate now, on the Master (before a planned swap)", runSyncNow)
}

func runSyncNow(ctx context.Context, args []string) int {
	fs := flag.NewFlagSet("sync", flag.ContinueOnError)
	api := fs.String("api", "127.0.0.1:7400", "the daemon's API address")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	body, err := apiDo(ctx, http.MethodPost, *api, "/api/v1/sync")
	if err != nil {
		fmt.Fprintln(os.Stderr, "redundantctl sync:", err)
		return 1
	}
	os.Stdout.Write(body)
	return 0
}

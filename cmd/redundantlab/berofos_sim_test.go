//go:build linux

package main

import (
	"bufio"
	"context"
	"io"
	"net"
	"regexp"
	"testing"
	"time"

	"github.com/redundantd/redundantd/berofos"
)

func TestBerofosSimCommand(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- berofosSim(ctx, []string{"-http", "127.0.0.1:0", "-udp", "127.0.0.1:0", "-password", "pw",
			"-mac", "00:19:32:00:12:99", "-set", "modedef=0", "-set", "scenario=1"}, pw)
		pw.Close()
	}()
	lines := bufio.NewScanner(pr)
	banner := regexp.MustCompile(`serving http://(\S+), gbl4 udp (\S+);`)
	var m []string
	for lines.Scan() {
		if m = banner.FindStringSubmatch(lines.Text()); m != nil {
			break
		}
	}
	if m == nil {
		t.Fatalf("no banner; exit: %v", <-done)
	}
	go io.Copy(io.Discard, pr)
	_, udpPort, _ := net.SplitHostPort(m[2])
	port, _ := net.LookupPort("udp", udpPort)
	dev := berofos.Device{Name: "sim", Host: m[1], Login: "admin:pw", UDPPort: port}
	c := berofos.NewClient(berofos.ClientOptions{Timeout: time.Second})
	defer c.Close()
	cfg, err := c.ReadConfig(ctx, dev)
	if err != nil {
		t.Fatal(err)
	}
	if mode, _ := cfg.Mode(); mode != 0 {
		t.Errorf("mode %d, want modedef 0", mode)
	}
	if sz, _ := cfg.Get("scenario"); sz != "1" {
		t.Errorf("scenario %s, want 1", sz)
	}
	replies, err := c.Scan(ctx, "127.0.0.1", port, time.Second)
	if err != nil || len(replies) != 1 || replies[0].MAC.String() != "00:19:32:00:12:99" || replies[0].IP.String() != "127.0.0.1" {
		t.Errorf("scan: %v %+v", err, replies)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("berofos-sim returned %v after the interrupt", err)
	}
	if err := berofosSim(context.Background(), []string{"-set", "nosuchkey=1", "-http", "127.0.0.1:0", "-udp", ""}, io.Discard); err == nil {
		t.Error("unknown -set key accepted")
	}
}

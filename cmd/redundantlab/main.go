//go:build linux

// Command redundantlab (Linux only: it needs network namespaces) builds a network-namespace lab of redundantd nodes and a simulated
// berofos on one Linux machine, runs the demo and the benchmarks in it, and removes it again.
//
// Each subcommand lives in its own file and registers itself in commands, so that the demo,
// the berofos simulator and the benchmarks can grow independently.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"sort"
	"syscall"
)

// command is one redundantlab subcommand.
type command struct {
	summary string
	run     func(ctx context.Context, args []string) error
}

// commands maps a subcommand name (for example "demo" or "bench failover") to its command.
var commands = map[string]command{}

func register(name, summary string, run func(ctx context.Context, args []string) error) {
	if _, dup := commands[name]; dup {
		panic("redundantlab: duplicate command " + name)
	}
	commands[name] = command{summary: summary, run: run}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: redundantlab <command> [flags]\n\ncommands:")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(os.Stderr, "  %-20s %s\n", n, commands[n].summary)
	}
}

// lookup finds the command named by the first one or two arguments ("bench sync" is two words).
func lookup(args []string) (command, []string, bool) {
	if len(args) >= 2 {
		if c, ok := commands[args[0]+" "+args[1]]; ok {
			return c, args[2:], true
		}
	}
	if len(args) >= 1 {
		if c, ok := commands[args[0]]; ok {
			return c, args[1:], true
		}
	}
	return command{}, nil, false
}

func main() {
	c, rest, ok := lookup(os.Args[1:])
	if !ok {
		usage()
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := c.run(ctx, rest); err != nil {
		fmt.Fprintln(os.Stderr, "redundantlab:", err)
		os.Exit(1)
	}
}

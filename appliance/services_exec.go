package appliance

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"
)

// Limits of the output kept of a command: enough to see why systemctl or a script failed,
// small enough for an event and the status answer.
const (
	tailBytes = 2048
	tailLines = 20
	// commandWaitDelay bounds how long a finished (or killed) command's output pipes may be
	// held open by a background process it left behind, e.g. a daemon that did not close
	// its inherited stdout.
	commandWaitDelay = 2 * time.Second
)

// cmdResult is what one run of a command left behind.
type cmdResult struct {
	Exit     int   // the exit status; -1 when the command could not run or was killed
	Err      error // nil on exit status 0
	TimedOut bool  // killed because it ran longer than its timeout
	Output   string
	Took     time.Duration
}

// runCommand runs argv (argv[0] already resolved) in its own process group with the given
// timeout and extra environment, capturing the tail of its stdout and stderr together. At
// the timeout, or when ctx ends, the whole process group is killed, so a hung script and
// whatever it spawned are gone and never hold up the caller for longer than the timeout plus
// commandWaitDelay.
func runCommand(ctx context.Context, argv []string, timeout time.Duration, env []string) cmdResult {
	if len(argv) == 0 {
		return cmdResult{Exit: -1, Err: errors.New("no command")}
	}
	tctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(tctx, argv[0], argv[1:]...)
	var out tailBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.Stdin = nil
	cmd.Env = append(os.Environ(), env...)
	cmd.WaitDelay = commandWaitDelay
	ownProcessGroup(cmd)
	start := time.Now()
	err := cmd.Run()
	res := cmdResult{Exit: -1, Output: out.String(), Took: time.Since(start)}
	if cmd.ProcessState != nil {
		res.Exit = cmd.ProcessState.ExitCode()
	}
	switch {
	case errors.Is(err, exec.ErrWaitDelay) && res.Exit == 0:
		// The command succeeded; a process it started kept the output open. That is how
		// some daemons start, not a failure.
		err = nil
	case err != nil && tctx.Err() == context.DeadlineExceeded && ctx.Err() == nil:
		res.TimedOut = true
		res.Exit = -1
		err = fmt.Errorf("timed out after %s; its process group was killed", timeout)
	case err != nil && ctx.Err() != nil:
		res.Exit = -1
		err = fmt.Errorf("killed: %w", ctx.Err())
	}
	res.Err = err
	return res
}

// describe says how a command ended, for events: "exit status 0 in 120ms",
// "exit status 3 after 1.2s", "timed out after 30s; ...".
func (r cmdResult) describe() string {
	took := r.Took.Round(time.Millisecond)
	switch {
	case r.Err == nil:
		return fmt.Sprintf("exit status 0 in %s", took)
	case r.Exit > 0:
		return fmt.Sprintf("exit status %d after %s", r.Exit, took)
	}
	return r.Err.Error()
}

// tailBuffer keeps the last tailBytes written to it. exec serialises writes when Stdout and
// Stderr are the same writer, so it needs no lock.
type tailBuffer struct {
	b         []byte
	truncated bool
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.b = append(t.b, p...)
	if len(t.b) > 2*tailBytes {
		t.b = append(t.b[:0], t.b[len(t.b)-tailBytes:]...)
		t.truncated = true
	}
	return len(p), nil
}

// String is the kept output: at most tailLines lines and tailBytes bytes, the first partial
// line dropped when the start was cut off, valid UTF-8, without trailing blank space.
func (t *tailBuffer) String() string {
	b := t.b
	cut := t.truncated
	if len(b) > tailBytes {
		b, cut = b[len(b)-tailBytes:], true
	}
	b = bytes.TrimRight(b, " \t\r\n")
	if cut {
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			b = b[i+1:]
		}
	}
	lines := bytes.Split(b, []byte("\n"))
	if len(lines) > tailLines {
		lines = lines[len(lines)-tailLines:]
	}
	return strings.ToValidUTF8(string(bytes.Join(lines, []byte("\n"))), "\uFFFD")
}

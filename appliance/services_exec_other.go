//go:build !linux

package appliance

import "os/exec"

// ownProcessGroup is Linux-only; elsewhere a timed-out command is killed alone (exec's
// default), and commandWaitDelay bounds how long its children may hold the output open.
func ownProcessGroup(cmd *exec.Cmd) {}

//go:build !linux

package main

import (
	"os"
	"time"
)

// monotonicNow is 0 where there is no systemd: the MONOTONIC_USEC field is left out.
func monotonicNow() time.Duration { return 0 }

// fileID reports no file: there is no journald off Linux.
func fileID(*os.File) (dev, ino uint64, ok bool) { return 0, 0, false }

package main

import (
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// monotonicNow is CLOCK_MONOTONIC, the clock of the MONOTONIC_USEC field systemd compares
// with the time it sent SIGHUP.
func monotonicNow() time.Duration {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return 0
	}
	return time.Duration(ts.Nano())
}

// fileID is the "device:inode" of f, the form of JOURNAL_STREAM (systemd.exec(5)).
func fileID(f *os.File) (dev, ino uint64, ok bool) {
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return 0, 0, false
	}
	return st.Dev, st.Ino, true
}

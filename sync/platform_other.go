//go:build !linux

package sync

import (
	"errors"
	"io/fs"
	"runtime"

	"golang.org/x/sys/unix"
)

// errUnsupported is why New refuses here: change detection keys on the inode and ctime that
// Linux's stat(2) reports, and Config.Watch relies on inotify's per-folder watches; neither
// is tested on other systems.
var errUnsupported = errors.New("sync: replication needs Linux (inode and ctime tracking, inotify)")

// checkPlatform reports errUnsupported: New refuses on this system, so the helpers below only
// let the package compile.
func checkPlatform() error {
	return errors.Join(errUnsupported, errors.New("running on "+runtime.GOOS))
}

func statDev(st *unix.Stat_t) uint64 { return uint64(st.Dev) }

func statMode(st *unix.Stat_t) uint32 { return uint32(st.Mode) }

// fileIdentity reports no identity (ok false): the layout of syscall.Stat_t differs per
// system, and New refuses here anyway.
func fileIdentity(fs.FileInfo) (dev, ino uint64, ctimeNs int64, ok bool) { return 0, 0, 0, false }

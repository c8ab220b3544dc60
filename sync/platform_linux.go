package sync

import (
	"io/fs"
	"syscall"

	"golang.org/x/sys/unix"
)

// checkPlatform reports why New cannot run on this system: on Linux it can.
func checkPlatform() error { return nil }

// statDev is st_dev at the width the manifest stores.
func statDev(st *unix.Stat_t) uint64 { return st.Dev }

// statMode is st_mode (type and permission bits) at the width Meta stores.
func statMode(st *unix.Stat_t) uint32 { return st.Mode }

// fileIdentity returns the device, inode and change time of a file os stat'ed, which the
// manifest records so that a scan can skip rehashing it; ok is false if fi carries no stat(2)
// result.
func fileIdentity(fi fs.FileInfo) (dev, ino uint64, ctimeNs int64, ok bool) {
	st, _ := fi.Sys().(*syscall.Stat_t)
	if st == nil {
		return 0, 0, 0, false
	}
	return st.Dev, st.Ino, st.Ctim.Nano(), true
}

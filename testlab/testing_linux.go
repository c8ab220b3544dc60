package testlab

import (
	"context"
	"errors"
	"os"
	"testing"

	"golang.org/x/sys/unix"
)

// RequireRoot skips the test unless it runs as root (namespaces need CAP_SYS_ADMIN and
// CAP_NET_ADMIN).
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("skipping: the network-namespace lab needs root (run go test as root)")
	}
}

// RequireKeepalived skips the test unless keepalived is installed.
func RequireKeepalived(t testing.TB) {
	t.Helper()
	if KeepalivedPath() == "" {
		t.Skip("skipping: " + ErrNoKeepalived.Error())
	}
}

// SkipIfUnprivileged skips the test when err from New says that this process, although root,
// may not create namespaces or links (an unprivileged container without CAP_SYS_ADMIN or
// CAP_NET_ADMIN).
func SkipIfUnprivileged(t testing.TB, err error) {
	t.Helper()
	if errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES) {
		t.Skipf("skipping: cannot build a network-namespace lab here: %v", err)
	}
}

// NewT builds a lab for a test: it skips unless root, fails the test if the lab cannot be
// built, and removes the lab in t.Cleanup even when the test fails. When the test failed, the
// output of every process the lab ran is logged.
func NewT(t testing.TB, opts Options) *Lab {
	t.Helper()
	RequireRoot(t)
	l, err := New(context.Background(), opts)
	SkipIfUnprivileged(t, err)
	if err != nil {
		t.Fatalf("testlab.New: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			l.mu.Lock()
			procs := append([]*Process(nil), l.procs...)
			l.mu.Unlock()
			for _, p := range procs {
				t.Logf("output of %s (pid %d):\n%s", p.Name, p.Pid(), tail(p.Output(), 60))
			}
		}
		if err := l.Close(); err != nil {
			t.Errorf("closing lab %s: %v", l.Name, err)
		}
	})
	return l
}

// StartRouterT starts impl in n and fails the test if it cannot; keepalived tests are skipped
// when keepalived is absent.
func StartRouterT(t testing.TB, n *Node, impl Impl, c VRRPConfig) *Router {
	t.Helper()
	if impl == Keepalived {
		RequireKeepalived(t)
	}
	r, err := n.StartRouter(context.Background(), impl, c)
	if err != nil {
		t.Fatalf("start %s in %s: %v", impl, n.Name, err)
	}
	return r
}

package labns

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"testing"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// TestNewAndDo: a namespace from New exists under /run/netns, a listener opened in Do lives
// there (its port is not reachable from the test's namespace), and the calling thread never
// leaves its own namespace.
func TestNewAndDo(t *testing.T) {
	orig, err := netns.Get()
	if err != nil {
		t.Fatal(err)
	}
	defer orig.Close()
	name, ns := New(t, "labns-test")
	if _, err := os.Stat(filepath.Join("/run/netns", name)); err != nil {
		t.Fatalf("namespace %s: %v", name, err)
	}
	var inside, here netns.NsHandle
	var ln net.Listener
	if err := Do(ns, func() error {
		var err error
		if inside, err = netns.Get(); err != nil {
			return err
		}
		ln, err = net.Listen("tcp", "127.0.0.1:0")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer inside.Close()
	defer ln.Close()
	if !inside.Equal(ns) {
		t.Error("Do did not run in the namespace")
	}
	if here, err = netns.Get(); err != nil {
		t.Fatal(err)
	}
	defer here.Close()
	if !here.Equal(orig) {
		t.Error("the test's thread left its namespace")
	}
	if c, err := net.Dial("tcp", ln.Addr().String()); err == nil {
		c.Close()
		t.Errorf("a listener inside %s answers in the test's namespace", name)
	}
}

// TestRemoveStacked: a namespace file with a second mount stacked on it is removed, where
// netns.DeleteNamed unmounts once and then fails with EBUSY; removing a name that does not
// exist is os.ErrNotExist.
func TestRemoveStacked(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to create namespaces")
	}
	name := fmt.Sprintf("labns-stacked-%d", os.Getpid())
	ns, err := Create(name)
	if err != nil {
		t.Fatal(err)
	}
	ns.Close()
	p := filepath.Join("/run/netns", name)
	if err := unix.Mount(p, p, "", unix.MS_BIND, ""); err != nil {
		Remove(name)
		t.Fatal(err)
	}
	if err := Remove(name); err != nil {
		t.Fatalf("Remove with two mounts: %v", err)
	}
	if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s after Remove: %v", p, err)
	}
	if err := Remove(name); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Remove of a missing namespace: %v, want os.ErrNotExist", err)
	}
}

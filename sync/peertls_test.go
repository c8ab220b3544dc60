package sync

import (
	"crypto/tls"
	"errors"
	"net"
	"strings"
	"testing"
)

// handshake runs a TLS handshake between the two configurations over loopback TCP (kernel
// buffers take the server's alert after a TLS 1.3 client has finished its side) and returns
// the client's and the server's errors.
func handshake(t *testing.T, client, server *tls.Config) (cerr, serr error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	done := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			done <- err
			return
		}
		defer c.Close()
		done <- tls.Server(c, server).Handshake()
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cerr = tls.Client(c, client).Handshake()
	serr = <-done
	return cerr, serr
}

func TestPinnedTLS(t *testing.T) {
	dirA, dirB, dirC := t.TempDir(), t.TempDir(), t.TempDir()
	fpA, err := LocalFingerprint(dirA)
	if err != nil {
		t.Fatal(err)
	}
	fpB, err := LocalFingerprint(dirB)
	if err != nil {
		t.Fatal(err)
	}
	fpC, err := LocalFingerprint(dirC)
	if err != nil {
		t.Fatal(err)
	}
	// The operator may paste the fingerprint with colons and in upper case.
	var colons []string
	for i := 0; i < len(fpB); i += 2 {
		colons = append(colons, strings.ToUpper(fpB[i:i+2]))
	}
	aSrv, aCli, err := PinnedTLS(dirA, strings.Join(colons, ":"))
	if err != nil {
		t.Fatal(err)
	}
	bSrv, bCli, err := PinnedTLS(dirB, fpA)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []*tls.Config{aSrv, aCli, bSrv, bCli} {
		if c.MinVersion != tls.VersionTLS13 {
			t.Errorf("MinVersion = %#x, want TLS 1.3", c.MinVersion)
		}
	}
	if aSrv.ClientAuth != tls.RequireAnyClientCert {
		t.Errorf("server ClientAuth = %v, want a client certificate required", aSrv.ClientAuth)
	}

	t.Run("pinned both ways", func(t *testing.T) {
		if cerr, serr := handshake(t, aCli, bSrv); cerr != nil || serr != nil {
			t.Errorf("A->B: client %v, server %v", cerr, serr)
		}
		if cerr, serr := handshake(t, bCli, aSrv); cerr != nil || serr != nil {
			t.Errorf("B->A: client %v, server %v", cerr, serr)
		}
	})
	t.Run("server refuses an unknown client", func(t *testing.T) {
		// C pins B correctly, but B pins A: B must refuse C.
		_, cCli, err := PinnedTLS(dirC, fpB)
		if err != nil {
			t.Fatal(err)
		}
		_, serr := handshake(t, cCli, bSrv)
		if !errors.Is(serr, ErrWrongPeer) || !strings.Contains(serr.Error(), fpC) {
			t.Errorf("server error = %v, want ErrWrongPeer naming %s", serr, fpC)
		}
	})
	t.Run("client refuses an unknown server", func(t *testing.T) {
		cSrv, _, err := PinnedTLS(dirC, fpA)
		if err != nil {
			t.Fatal(err)
		}
		cerr, _ := handshake(t, aCli, cSrv)
		if !errors.Is(cerr, ErrWrongPeer) || !strings.Contains(cerr.Error(), fpC) {
			t.Errorf("client error = %v, want ErrWrongPeer naming %s", cerr, fpC)
		}
	})
	t.Run("same identity as the replication", func(t *testing.T) {
		id, err := loadOrCreateIdentity(dirA)
		if err != nil {
			t.Fatal(err)
		}
		if got := aSrv.Certificates[0].Certificate[0]; string(got) != string(id.Certificate[0]) {
			t.Error("PinnedTLS does not present the certificate in the state directory")
		}
	})
}

func TestPinnedTLSBadFingerprint(t *testing.T) {
	for _, fp := range []string{"", "zz", "abcd", strings.Repeat("0", 63)} {
		if _, _, err := PinnedTLS(t.TempDir(), fp); err == nil {
			t.Errorf("PinnedTLS(%q) succeeded, want an error", fp)
		}
	}
}

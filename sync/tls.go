package sync

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Transport security: TLS 1.3, both sides present a self-signed certificate generated in the
// state directory on first use, and each side accepts exactly one peer certificate, pinned by
// the SHA-256 fingerprint of its DER encoding (the Syncthing model). No CA is involved.

// ErrWrongPeer is returned (wrapped) when the peer presents a certificate other than the pinned
// one, or none.
var ErrWrongPeer = errors.New("sync: peer certificate does not match the pinned fingerprint")

const (
	certFile = "sync-cert.pem"
	keyFile  = "sync-key.pem"
)

// Fingerprint returns the lowercase hex SHA-256 fingerprint of a certificate given as PEM or DER.
func Fingerprint(cert []byte) (string, error) {
	der := cert
	if blk, _ := pem.Decode(cert); blk != nil {
		if blk.Type != "CERTIFICATE" {
			return "", fmt.Errorf("sync: PEM block is %q, want CERTIFICATE", blk.Type)
		}
		der = blk.Bytes
	}
	if _, err := x509.ParseCertificate(der); err != nil {
		return "", fmt.Errorf("sync: parse certificate: %w", err)
	}
	sum := sha256.Sum256(der)
	return hex.EncodeToString(sum[:]), nil
}

// normalizeFingerprint accepts hex with or without colons, any case.
func normalizeFingerprint(s string) (string, error) {
	s = strings.ToLower(strings.ReplaceAll(strings.TrimSpace(s), ":", ""))
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != sha256.Size {
		return "", fmt.Errorf("fingerprint %q: want 64 hex digits (SHA-256)", s)
	}
	return s, nil
}

// LocalFingerprint returns the fingerprint of this node's certificate in stateDir, creating
// the certificate and key on first use. The operator gives it to the peer's peer_fingerprint.
func LocalFingerprint(stateDir string) (string, error) {
	c, err := loadOrCreateIdentity(stateDir)
	if err != nil {
		return "", err
	}
	return Fingerprint(c.Certificate[0])
}

func loadOrCreateIdentity(stateDir string) (tls.Certificate, error) {
	cp, kp := filepath.Join(stateDir, certFile), filepath.Join(stateDir, keyFile)
	c, err := tls.LoadX509KeyPair(cp, kp)
	if err == nil {
		return c, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return tls.Certificate{}, fmt.Errorf("sync: load identity: %w", err)
	}
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		return tls.Certificate{}, fmt.Errorf("sync: state dir: %w", err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	serial, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	host, _ := os.Hostname()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "redundantd-sync " + host},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().AddDate(100, 0, 0),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
		DNSNames:              []string{"redundantd-sync"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, err
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return tls.Certificate{}, err
	}
	if err := writeFileAtomic(kp, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		return tls.Certificate{}, err
	}
	if err := writeFileAtomic(cp, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		return tls.Certificate{}, err
	}
	return tls.LoadX509KeyPair(cp, kp)
}

func writeFileAtomic(name string, data []byte, perm fs.FileMode) error {
	tmp := name + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, perm)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, name)
}

// pinnedVerify returns a VerifyConnection callback accepting only the pinned certificate;
// the fingerprint actually seen is reported through seen for the wrong-peer event.
func pinnedVerify(want string, seen func(string)) func(tls.ConnectionState) error {
	return func(cs tls.ConnectionState) error {
		if len(cs.PeerCertificates) == 0 {
			seen("")
			return fmt.Errorf("%w: no certificate presented", ErrWrongPeer)
		}
		sum := sha256.Sum256(cs.PeerCertificates[0].Raw)
		got := hex.EncodeToString(sum[:])
		if got != want {
			seen(got)
			return fmt.Errorf("%w: got %s", ErrWrongPeer, got)
		}
		return nil
	}
}

func serverTLS(id tls.Certificate, peer string, seen func(string)) *tls.Config {
	return &tls.Config{
		Certificates:     []tls.Certificate{id},
		MinVersion:       tls.VersionTLS13,
		ClientAuth:       tls.RequireAnyClientCert,
		VerifyConnection: pinnedVerify(peer, seen),
	}
}

func clientTLS(id tls.Certificate, peer string, seen func(string)) *tls.Config {
	return &tls.Config{
		Certificates: []tls.Certificate{id},
		MinVersion:   tls.VersionTLS13,
		// The chain is not verified against any CA: the peer is identified only by the pinned
		// fingerprint, checked in VerifyConnection.
		InsecureSkipVerify: true,
		VerifyConnection:   pinnedVerify(peer, seen),
		ServerName:         "redundantd-sync",
	}
}

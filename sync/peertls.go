package sync

import (
	"crypto/tls"
	"fmt"
)

// PinnedTLS returns the TLS configurations another protocol between the same two nodes uses
// to reuse the replication's identity: this node's certificate in stateDir (created on first
// use, the one LocalFingerprint reports) and the peer pinned by peerFingerprint (hex SHA-256,
// colons and case ignored). Both are TLS 1.3 and mutual: the server requires a client
// certificate and each side accepts exactly the pinned one, failing the handshake with an
// error wrapping ErrWrongPeer otherwise. The appliance's peer link uses it so that the
// operator exchanges one fingerprint per node, also when replication is off.
//
// Each call returns fresh configurations the caller may adjust (NextProtos, for example).
func PinnedTLS(stateDir, peerFingerprint string) (server, client *tls.Config, err error) {
	fp, err := normalizeFingerprint(peerFingerprint)
	if err != nil {
		return nil, nil, fmt.Errorf("sync: peer fingerprint: %w", err)
	}
	id, err := loadOrCreateIdentity(stateDir)
	if err != nil {
		return nil, nil, err
	}
	ignore := func(string) {}
	return serverTLS(id, fp, ignore), clientTLS(id, fp, ignore), nil
}

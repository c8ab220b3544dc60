package appliance

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"mime"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
)

// LoadOrCreateToken returns the API token kept in path, creating the file (0600, 32 random
// bytes in hex) when it is missing, so that a fresh node is never open. A token file that is
// empty or readable by others is refused: a token anyone on the box can read protects nothing.
func LoadOrCreateToken(path string) (string, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		raw := make([]byte, 32)
		_, _ = rand.Read(raw) // never fails (crypto/rand)
		tok := hex.EncodeToString(raw)
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return "", fmt.Errorf("api token: %w", err)
		}
		if err := writeFileAtomic(path, []byte(tok+"\n"), 0o600); err != nil {
			return "", fmt.Errorf("api token: %w", err)
		}
		return tok, nil
	}
	if err != nil {
		return "", fmt.Errorf("api token: %w", err)
	}
	if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&0o077 != 0 {
		return "", fmt.Errorf("api token: %s is readable by others (mode %04o); chmod 600 it", path, fi.Mode().Perm())
	}
	tok := strings.TrimSpace(string(b))
	if len(tok) < 16 {
		return "", fmt.Errorf("api token: %s holds %d characters, want at least 16", path, len(tok))
	}
	return tok, nil
}

// apiGuard decides whether a request may reach the API (issue 7 section 6). It is pure: the
// decision depends only on the request's method, headers and the node's settings.
type apiGuard struct {
	token string
	// names are the host names accepted in the Host header besides address literals:
	// "localhost" and api.names. A browser tricked by DNS rebinding sends the attacker's
	// name and is refused; an address literal cannot be rebound.
	names map[string]bool
	// readsNeedToken is true when the API listens beyond loopback.
	readsNeedToken bool
}

func newAPIGuard(listen, token string, names []string) apiGuard {
	g := apiGuard{token: token, names: map[string]bool{"localhost": true}}
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		host = listen
	}
	addr, err := netip.ParseAddr(host)
	g.readsNeedToken = err != nil || !addr.IsLoopback()
	for _, n := range names {
		g.names[strings.ToLower(n)] = true
	}
	return g
}

// guardError is a refusal with its HTTP status.
type guardError struct {
	code int
	msg  string
}

func (e *guardError) Error() string { return e.msg }

// check returns nil when r may proceed, or the refusal. Mutating methods always need the
// token and a JSON body type (a cross-site form post cannot send one); reads need the token
// when the API listens beyond loopback.
func (g apiGuard) check(r *http.Request) *guardError {
	if !g.hostAllowed(r.Host) {
		return &guardError{http.StatusMisdirectedRequest, fmt.Sprintf("host %q is not this node's API address (api.listen, api.names)", r.Host)}
	}
	mutating := r.Method != http.MethodGet && r.Method != http.MethodHead
	if mutating || g.readsNeedToken {
		if !g.tokenOK(r.Header.Get("Authorization")) {
			return &guardError{http.StatusUnauthorized, "missing or wrong token (Authorization: Bearer <api.token_file>)"}
		}
	}
	if mutating && r.ContentLength != 0 {
		mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
		if err != nil || mt != "application/json" {
			return &guardError{http.StatusUnsupportedMediaType, "a request body must be application/json"}
		}
	}
	return nil
}

func (g apiGuard) hostAllowed(h string) bool {
	host, _, err := net.SplitHostPort(h)
	if err != nil {
		host = h
	}
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	if g.names[host] {
		return true
	}
	_, err = netip.ParseAddr(strings.Trim(host, "[]"))
	return err == nil
}

func (g apiGuard) tokenOK(auth string) bool {
	tok, ok := strings.CutPrefix(auth, "Bearer ")
	if !ok || g.token == "" {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(strings.TrimSpace(tok)), []byte(g.token)) == 1
}

// wrap applies the guard in front of h.
func (g apiGuard) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := g.check(r); err != nil {
			if err.code == http.StatusUnauthorized {
				w.Header().Set("WWW-Authenticate", `Bearer realm="redundantd"`)
			}
			writeJSON(w, err.code, map[string]string{"error": err.msg})
			return
		}
		h.ServeHTTP(w, r)
	})
}

package appliance

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"sync"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// The console's log-in state: who may log in (users), who is logged in (sessions), who has
// guessed wrong too often (lockout). Every method takes the time from the caller, so the
// rules are tested without a clock.

const (
	consoleMaxSessions = 32   // sessions held at once; the least recently used goes first
	consoleMaxTracked  = 1024 // user names with recent wrong passwords, known or not
)

// consoleSession is one logged-in browser. The CSRF token is the session's own, sent in
// every form and checked on every POST: a page of another site cannot read it (SameSite and
// the same-origin policy), so it cannot forge a request even if the cookie were sent.
type consoleSession struct {
	id       string
	user     string
	csrf     string
	lastSeen time.Time
	flash    string // one message for the next page (the result of a change)
}

// lockState is the recent wrong passwords for one user name.
type lockState struct {
	first  time.Time // the first failure in the window
	fails  int
	locked bool // the event was recorded for this window
}

// consoleAuth keeps the users, the sessions and the lock-out counters.
type consoleAuth struct {
	users    map[string][]byte // user -> bcrypt hash
	dummy    []byte            // compared for unknown users, so they cost as much as known ones
	attempts int
	window   time.Duration
	idle     time.Duration

	mu       sync.Mutex
	sessions map[string]*consoleSession
	fails    map[string]*lockState
}

func newConsoleAuth(users map[string][]byte, cfg ConsoleConfig) *consoleAuth {
	// The dummy's cost matches the users' (the first one found) so that timing does not
	// tell a known name from an unknown one.
	cost := bcrypt.DefaultCost
	for _, h := range users {
		if c, err := bcrypt.Cost(h); err == nil {
			cost = c
		}
		break
	}
	dummy, _ := bcrypt.GenerateFromPassword([]byte(randomHex(8)), cost)
	return &consoleAuth{users: users, dummy: dummy, attempts: cfg.LockoutAttempts, window: cfg.LockoutWindow,
		idle: cfg.SessionIdle, sessions: map[string]*consoleSession{}, fails: map[string]*lockState{}}
}

// randomHex returns n random bytes in hex.
func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // never fails (crypto/rand)
	return hex.EncodeToString(b)
}

// loginResult is the outcome of a log-in attempt.
type loginResult int

const (
	loginOK loginResult = iota
	loginWrong
	loginLockedNow // this wrong password locked the user out
	loginLocked    // the user was locked out already; the password was not checked
)

// lockedUntil reports whether user is locked out at now, and until when.
func (c *consoleAuth) lockedUntil(user string, now time.Time) (time.Time, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	st := c.fails[user]
	if st == nil || now.Sub(st.first) >= c.window || st.fails < c.attempts {
		return time.Time{}, false
	}
	return st.first.Add(c.window), true
}

// login checks user's password at now. A locked-out user is refused without the password
// being compared, so a correct guess during the lock-out tells the guesser nothing.
func (c *consoleAuth) login(user, password string, now time.Time) loginResult {
	if _, locked := c.lockedUntil(user, now); locked {
		return loginLocked
	}
	hash, known := c.users[user]
	if !known {
		hash = c.dummy
	}
	ok := bcrypt.CompareHashAndPassword(hash, []byte(password)) == nil && known
	c.mu.Lock()
	defer c.mu.Unlock()
	if ok {
		delete(c.fails, user)
		return loginOK
	}
	st := c.fails[user]
	if st == nil || now.Sub(st.first) >= c.window {
		c.pruneFails(now)
		st = &lockState{first: now}
		c.fails[user] = st
	}
	st.fails++
	if st.fails >= c.attempts && !st.locked {
		st.locked = true
		return loginLockedNow
	}
	return loginWrong
}

// pruneFails drops the windows that have passed, and when the table is still full (a spray
// of invented names) the oldest, so that it stays bounded. Called with mu held.
func (c *consoleAuth) pruneFails(now time.Time) {
	if len(c.fails) < consoleMaxTracked {
		return
	}
	var oldest string
	for u, st := range c.fails {
		if now.Sub(st.first) >= c.window {
			delete(c.fails, u)
		} else if oldest == "" || st.first.Before(c.fails[oldest].first) {
			oldest = u
		}
	}
	if len(c.fails) >= consoleMaxTracked {
		delete(c.fails, oldest)
	}
}

// open starts a session for user at now, evicting the least recently used when full.
func (c *consoleAuth) open(user string, now time.Time) *consoleSession {
	s := &consoleSession{id: randomHex(32), user: user, csrf: randomHex(32), lastSeen: now}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.sessions) >= consoleMaxSessions {
		var lru *consoleSession
		for _, o := range c.sessions {
			if lru == nil || o.lastSeen.Before(lru.lastSeen) {
				lru = o
			}
		}
		delete(c.sessions, lru.id)
	}
	c.sessions[s.id] = s
	return s
}

// session returns the live session with id at now, refreshing its idle time when touch is
// set (a page or a form; the live stream does not keep a session alive), or nil.
func (c *consoleAuth) session(id string, now time.Time, touch bool) *consoleSession {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.sessions[id]
	if s == nil {
		return nil
	}
	if now.Sub(s.lastSeen) >= c.idle {
		delete(c.sessions, id)
		return nil
	}
	if touch {
		s.lastSeen = now
	}
	cp := *s
	return &cp
}

// setFlash keeps msg for the session's next page; takeFlash returns and clears it.
func (c *consoleAuth) setFlash(id, msg string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if s := c.sessions[id]; s != nil {
		s.flash = msg
	}
}

func (c *consoleAuth) takeFlash(id string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.sessions[id]
	if s == nil {
		return ""
	}
	msg := s.flash
	s.flash = ""
	return msg
}

// close ends the session.
func (c *consoleAuth) close(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.sessions, id)
}

// tokenEqual compares two CSRF tokens in constant time; an empty one never matches.
func tokenEqual(got, want string) bool {
	return got != "" && want != "" && subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
}

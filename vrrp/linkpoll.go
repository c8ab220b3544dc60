package vrrp

import "time"

// linkPollEvery bounds how often a Router polls its interface (linkWatcher.check) when the
// advertisement interval is shorter. The link and address notifications wake it at once for
// every change it looks for; the poll only covers a notification lost to a full socket
// buffer. Polling each second was the largest cost of many groups on one interface (each
// poll lists the namespace's addresses, 64 groups: 64 dumps of 64+ addresses a second).
const linkPollEvery = 5 * time.Second

// linkPollInterval is the Router's poll period for advertisement interval adv.
func linkPollInterval(adv time.Duration) time.Duration { return max(adv, linkPollEvery) }

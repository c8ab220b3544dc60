// Package pbxtree is test support for the replication: a seeded generator of PBX trees
// (Asterisk configuration and voicemail, the data set of docs/reference sync-notes.md) with
// the changes a PBX makes to them, a comparison of two trees, and an rsync daemon to measure
// against. Tests and benchmarks use it; the product never does.
package pbxtree

import (
	"bytes"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Gen writes a PBX tree under Root: Root/etc (configuration) and Root/voicemail (messages as
// Asterisk stores them, msgNNNN.wav beside msgNNNN.txt, in INBOX and Old). The same seed
// gives the same tree and the same changes.
type Gen struct {
	Root      string
	rng       *rand.Rand
	clock     time.Time // the recording time of the next message
	mailboxes []string  // voicemail folders (relative to Root/voicemail) holding messages
}

// NewGen returns a generator for root with the PRNG seeded by seed.
func NewGen(root string, seed uint64) *Gen {
	return &Gen{Root: root, rng: rand.New(rand.NewPCG(seed, 0x5eed)), clock: time.Date(2026, 1, 1, 8, 0, 0, 0, time.UTC)}
}

// Stats describes a generated tree.
type Stats struct {
	Configs, Messages, Files, Dirs int
	Bytes                          int64
}

var words = strings.Fields(`context exten same include callerid secret host type friend peer user
	nat qualify canreinvite disallow allow ulaw alaw g722 dial hangup answer playback voicemail
	queue member agent musiconhold transfer pickupgroup callgroup mailbox language dtmfmode`)

func (g *Gen) text(n int) []byte {
	var buf bytes.Buffer
	for buf.Len() < n {
		fmt.Fprintf(&buf, "%s=%s,%d\n", words[g.rng.IntN(len(words))], words[g.rng.IntN(len(words))], g.rng.IntN(10000))
	}
	return buf.Bytes()[:n]
}

func (g *Gen) random(n int) []byte {
	p := make([]byte, n)
	for i := 0; i+8 <= n; i += 8 {
		v := g.rng.Uint64()
		for k := 0; k < 8; k++ {
			p[i+k] = byte(v >> (8 * k))
		}
	}
	return p
}

func (g *Gen) msgTxt(box string, num int) []byte {
	return fmt.Appendf(nil, "[message]\norigmailbox=%s\ncontext=default\nmacrocontext=\nexten=%s\nrdnis=unknown\n"+
		"priority=2\ncallerchan=SIP/trunk-%08x\ncallerid=\"Caller\" <0049301234%04d>\norigdate=Mon Nov 16 10:%02d:00 AM UTC 2026\n"+
		"origtime=%d\ncategory=\nmsg_id=%d-%08x\nflag=\nduration=%d\n",
		filepath.Base(filepath.Dir(box)), filepath.Base(filepath.Dir(box)), g.rng.Uint32(), num, num%60, 1763287200+num, 1763287200+num, g.rng.Uint32(), 5+g.rng.IntN(120))
}

// writeMsg records message num in folder: audio of 100 KB to 1.9 MB, then its .txt, both
// stamped with the message's own recording time.
func (g *Gen) writeMsg(folder string, num int) (int64, error) {
	audio := g.random(100<<10 + g.rng.IntN(1800<<10))
	base := filepath.Join(g.Root, "voicemail", folder, fmt.Sprintf("msg%04d", num))
	if err := os.WriteFile(base+".wav", audio, 0o640); err != nil {
		return 0, err
	}
	txt := g.msgTxt(folder, num)
	if err := os.WriteFile(base+".txt", txt, 0o640); err != nil {
		return 0, err
	}
	g.clock = g.clock.Add(time.Duration(1+g.rng.IntN(3600)) * time.Second)
	for _, ext := range []string{".wav", ".txt"} {
		if err := os.Chtimes(base+ext, g.clock, g.clock); err != nil {
			return 0, err
		}
	}
	return int64(len(audio) + len(txt)), nil
}

// Generate writes the tree: at scale 1, 2,000 configuration files of 1 to 20 KB in 20
// folders and 500 messages in 100 mailboxes (about 530 MB).
func (g *Gen) Generate(scale float64) (Stats, error) {
	var ds Stats
	nconf := max(1, int(2000*scale))
	nmsg := max(1, int(500*scale))
	nbox := max(1, nmsg/5)
	const confDirs = 20
	for i := 0; i < confDirs; i++ {
		if err := os.MkdirAll(filepath.Join(g.Root, "etc", fmt.Sprintf("conf.d%02d", i)), 0o755); err != nil {
			return ds, err
		}
		ds.Dirs++
	}
	for i := 0; i < nconf; i++ {
		data := g.text(1<<10 + g.rng.IntN(19<<10))
		p := filepath.Join(g.Root, "etc", fmt.Sprintf("conf.d%02d", i%confDirs), fmt.Sprintf("%s-%04d.conf", words[i%len(words)], i))
		if err := os.WriteFile(p, data, 0o644); err != nil {
			return ds, err
		}
		ds.Configs++
		ds.Bytes += int64(len(data))
	}
	for i := 0; i < nbox; i++ {
		for _, f := range []string{"INBOX", "Old"} {
			folder := filepath.Join("default", strconv.Itoa(1000+i), f)
			if err := os.MkdirAll(filepath.Join(g.Root, "voicemail", folder), 0o750); err != nil {
				return ds, err
			}
			ds.Dirs++
			g.mailboxes = append(g.mailboxes, folder)
		}
	}
	counts := map[string]int{}
	for i := 0; i < nmsg; i++ {
		folder := g.mailboxes[i%len(g.mailboxes)]
		n, err := g.writeMsg(folder, counts[folder])
		if err != nil {
			return ds, err
		}
		counts[folder]++
		ds.Messages++
		ds.Bytes += n
	}
	ds.Files = ds.Configs + 2*ds.Messages
	return ds, nil
}

// EditAudio overwrites three 512-byte regions of n audio files in place (size kept) and
// says what it did.
func (g *Gen) EditAudio(n int) (string, error) {
	files, err := g.audioFiles()
	if err != nil {
		return "", err
	}
	var total int
	for _, i := range g.rng.Perm(len(files))[:min(n, len(files))] {
		k, err := g.patch(files[i])
		if err != nil {
			return "", err
		}
		total += k
	}
	return fmt.Sprintf("%d files, %.1f KB overwritten in place", n, float64(total)/1e3), nil
}

func (g *Gen) patch(name string) (int, error) {
	f, err := os.OpenFile(name, os.O_WRONLY, 0)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return 0, err
	}
	total := 0
	for k := 0; k < 3; k++ {
		patch := g.random(512)
		off := g.rng.Int64N(fi.Size() - 512)
		if _, err := f.WriteAt(patch, off); err != nil {
			return total, err
		}
		total += len(patch)
	}
	return total, f.Close()
}

func (g *Gen) audioFiles() ([]string, error) {
	var files []string
	err := filepath.WalkDir(filepath.Join(g.Root, "voicemail"), func(p string, d fs.DirEntry, err error) error {
		if err == nil && strings.HasSuffix(p, ".wav") {
			files = append(files, p)
		}
		return err
	})
	slices.Sort(files)
	return files, err
}

// msgCount returns how many messages folder holds (they are numbered from 0 without gaps).
func (g *Gen) msgCount(folder string) int {
	n := 0
	for {
		if _, err := os.Stat(filepath.Join(g.Root, "voicemail", folder, fmt.Sprintf("msg%04d.txt", n))); err != nil {
			return n
		}
		n++
	}
}

// NewMessages records n messages in random mailboxes, each at the next free number.
func (g *Gen) NewMessages(n int) (string, error) {
	var total int64
	for i := 0; i < n; i++ {
		folder := g.mailboxes[g.rng.IntN(len(g.mailboxes))]
		k, err := g.writeMsg(folder, g.msgCount(folder))
		if err != nil {
			return "", err
		}
		total += k
	}
	return fmt.Sprintf("%d messages, %.1f MB", n, float64(total)/1e6), nil
}

// Renumber deletes the first message of n folders and renumbers the later ones down by one,
// as Asterisk does under the folder lock.
func (g *Gen) Renumber(n int) (string, error) {
	var cands []string
	for _, f := range g.mailboxes {
		if g.msgCount(f) >= 2 {
			cands = append(cands, f)
		}
	}
	moved := 0
	for _, i := range g.rng.Perm(len(cands))[:min(n, len(cands))] {
		k, err := g.renumberFolder(cands[i])
		if err != nil {
			return "", err
		}
		moved += k
	}
	return fmt.Sprintf("%d folders: msg0000 deleted, %d messages renumbered", min(n, len(cands)), moved), nil
}

func (g *Gen) renumberFolder(rel string) (int, error) {
	folder := filepath.Join(g.Root, "voicemail", rel)
	cnt := g.msgCount(rel)
	for _, ext := range []string{".wav", ".txt"} {
		if err := os.Remove(filepath.Join(folder, "msg0000"+ext)); err != nil {
			return 0, err
		}
	}
	for k := 1; k < cnt; k++ {
		for _, ext := range []string{".wav", ".txt"} {
			if err := os.Rename(filepath.Join(folder, fmt.Sprintf("msg%04d%s", k, ext)), filepath.Join(folder, fmt.Sprintf("msg%04d%s", k-1, ext))); err != nil {
				return 0, err
			}
		}
	}
	return cnt - 1, nil
}

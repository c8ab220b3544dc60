package sync

import (
	"fmt"
	"path"
	"slices"
	"strings"
)

// plan is what one run does: the failback work the source does first (taking back what the
// replica changed since the last sync), then what it pushes, in push order.
type plan struct {
	mkdirs, locals, files, txts []fileMsg
	deletes                     []deleteMsg
	newBase                     map[string]*Meta // applied path -> new base (nil: none)
	skipped                     int
	// failback work
	adopt     []string            // replica paths taken over unchanged
	conflicts []string            // config files changed on both sides
	merges    map[string][]string // voicemail group (folder/msgNNNN) -> replica files
	sdeletes  []string            // deleted on the replica only: delete here too
	smkdirs   []string
	owner     bool
}

func (p *plan) failbackWork() bool {
	return len(p.adopt)+len(p.conflicts)+len(p.merges)+len(p.sdeletes)+len(p.smkdirs) > 0
}

func (p *plan) add(m fileMsg) {
	if isTxt(m.Path) {
		p.txts = append(p.txts, m)
	} else {
		p.files = append(p.files, m)
	}
}

// planInput is everything the planner decides from: the source's current entries and bases,
// the replica's view (its current entries and bases), and the paths the run leaves alone.
// The driver (sourceRun, failback) fills resolved between two plans of one run.
type planInput struct {
	sCur, sBase map[string]*Meta
	view        map[string]viewEntry
	rEver       bool              // the replica has synced with this source before
	owner       bool              // owners are kept on both sides
	skip        func(string) bool // paths left alone on both sides (see skipRule)
	resolved    map[string]bool   // taken back by failback in this run: push this side's
	noDelta     map[string]bool   // deltas that failed on the replica: send whole
}

// rChanged reports whether the replica changed p since the last sync.
func (in *planInput) rChanged(p string) bool {
	if !in.rEver || in.resolved[p] {
		return false
	}
	v := in.view[p]
	return !sameContent(v.Cur, v.Base)
}

// makePlan is the three-way decision of a run, per path, between the source's current entry,
// the replica's current entry and the replica's base (docs/sync.md, Failback). It is pure: no
// I/O, no clock. A delta it plans carries BlockSize 0; the driver fills in the block size of
// the block sums it holds (useLocalSigs) or asks the replica for them (fetchSigs).
func makePlan(in *planInput) *plan {
	out := &plan{newBase: map[string]*Meta{}, merges: map[string][]string{}, owner: in.owner}
	keys := in.keys()
	sHashes := map[Hash]bool{}
	for _, m := range in.sCur {
		if m.Kind == KindFile {
			sHashes[m.Hash] = true
		}
	}
	var content []string
	replaced := map[string]bool{}
	for _, p := range keys {
		if in.skip(p) {
			out.skipped++
			continue
		}
		if in.takeBack(out, p) {
			continue
		}
		if in.pushEntry(out, p, sHashes, replaced) {
			content = append(content, p)
		}
	}
	in.planContent(out, keys, content, replaced)
	return out
}

// keys returns every path either side holds, sorted (a folder before what is in it).
func (in *planInput) keys() []string {
	keys := make([]string, 0, len(in.sCur)+len(in.view))
	for k := range in.sCur {
		keys = append(keys, k)
	}
	for k := range in.view {
		if _, ok := in.sCur[k]; !ok {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	return keys
}

// takeBack plans the failback work for p when the replica changed it since the last sync and
// the two sides now differ: adopted when only the replica changed it (or this side deleted
// it), merged under a new number for voicemail, kept as a .conflict copy for other files. It
// reports false when this side's entry is pushed instead (the replica did not change p, or
// deleted what this side changed).
func (in *planInput) takeBack(out *plan, p string) bool {
	sc, rc := in.sCur[p], in.view[p].Cur
	if !in.rChanged(p) || sameContent(sc, rc) {
		return false
	}
	sChanged := !sameContent(sc, in.sBase[p])
	switch {
	case !sChanged && rc != nil && rc.Kind == KindFile:
		out.adopt = append(out.adopt, p)
	case !sChanged && rc != nil && rc.Kind == KindDir:
		out.smkdirs = append(out.smkdirs, p)
	case !sChanged && rc == nil && sc != nil:
		out.sdeletes = append(out.sdeletes, p)
	case rc == nil:
		return false // changed here, deleted there: keep this side's
	case sc == nil && rc.Kind == KindFile:
		out.adopt = append(out.adopt, p) // deleted here, changed there: keep theirs
	case sc != nil && sc.Kind == KindFile && rc.Kind == KindFile && isMsgFile(p):
		g := strings.TrimSuffix(p, path.Ext(p))
		out.merges[g] = append(out.merges[g], p)
	case rc.Kind == KindFile:
		out.conflicts = append(out.conflicts, p)
	default:
		return false
	}
	return true
}

// pushEntry plans what makes the replica's p equal to this side's: a delete, a folder, a
// symlink, new attributes or only a new base. It reports true when p needs content, which
// planContent decides once the copies the replica already holds are known. replaced collects
// the replica paths whose entry the run replaces or deletes (their content may be moved).
func (in *planInput) pushEntry(out *plan, p string, sHashes map[Hash]bool, replaced map[string]bool) bool {
	sc, v := in.sCur[p], in.view[p]
	rc, rb := v.Cur, v.Base
	if sc == nil {
		switch {
		case rc != nil:
			// Trash what this side does not hold anywhere.
			out.deletes = append(out.deletes, deleteMsg{Path: p, Kind: rc.Kind, Trash: !(rc.Kind == KindFile && sHashes[rc.Hash])})
			replaced[p] = true
			out.newBase[p] = nil
		case rb != nil:
			out.deletes = append(out.deletes, deleteMsg{Path: p, Kind: rb.Kind})
			out.newBase[p] = nil
		}
		return false
	}
	out.newBase[p] = sc
	switch {
	case rc == nil || !sameContent(sc, rc):
		replaced[p] = rc != nil
		switch sc.Kind {
		case KindDir:
			out.mkdirs = append(out.mkdirs, fileMsg{Path: p, Meta: *sc, Method: methodMkdir})
		case KindSymlink:
			out.files = append(out.files, fileMsg{Path: p, Meta: *sc, Method: methodSymlink})
		default:
			return true
		}
	case !sameAttrs(sc, rc, in.owner):
		out.add(fileMsg{Path: p, Meta: *sc, Method: methodMeta})
	case in.resolved[p] || rb == nil || !sameContent(rb, rc) || !sameAttrs(rb, rc, in.owner):
		out.add(fileMsg{Path: p, Meta: *sc, Method: methodBase})
	}
	return false
}

// planContent decides how the content of each path in content reaches the replica: copied
// (or moved, when the copy there is replaced anyway) from a file the replica already holds,
// as a delta against the replica's version, or whole.
func (in *planInput) planContent(out *plan, keys, content []string, replaced map[string]bool) {
	rByHash := in.replicaCopies(keys)
	moved := map[string]bool{}
	for _, p := range content {
		sc, rc := in.sCur[p], in.view[p].Cur
		if sc.Kind == KindFile && sc.Hash == (Hash{}) { // new file, hashed while sent
			out.add(fileMsg{Path: p, Meta: *sc, Method: methodFull})
			continue
		}
		if q, ok := rByHash[sc.Hash]; ok {
			mv := replaced[q] && !moved[q]
			moved[q] = moved[q] || mv
			out.locals = append(out.locals, fileMsg{Path: p, Meta: *sc, Method: methodLocal, Src: q, Move: mv})
			continue
		}
		if rc != nil && rc.Kind == KindFile && rc.Size >= sigMinSize && sc.Size <= maxDelta && !in.noDelta[p] {
			out.add(fileMsg{Path: p, Meta: *sc, Method: methodDelta, Basis: rc.Hash})
			continue
		}
		out.add(fileMsg{Path: p, Meta: *sc, Method: methodFull})
	}
}

// replicaCopies maps content the replica holds, at a path the run does not protect (skipped,
// or changed there since the last sync), to the first such path.
func (in *planInput) replicaCopies(keys []string) map[Hash]string {
	rByHash := map[Hash]string{}
	for _, p := range keys {
		v := in.view[p]
		if v.Cur != nil && v.Cur.Kind == KindFile && !in.skip(p) && !in.rChanged(p) {
			if _, ok := rByHash[v.Cur.Hash]; !ok {
				rByHash[v.Cur.Hash] = p
			}
		}
	}
	return rByHash
}

// useLocalSigs gives every planned delta whose basis this node holds block sums of (of the
// basis's size, from the replica's view) their block size; the others keep BlockSize 0 and
// fetchSigs asks the replica.
func useLocalSigs(p *plan, view map[string]viewEntry, sigsOf func(Hash) *sigs) {
	for _, l := range []*[]fileMsg{&p.files, &p.txts} {
		for i := range *l {
			m := &(*l)[i]
			if m.Method != methodDelta || m.BlockSize != 0 {
				continue
			}
			rc := view[m.Path].Cur
			if s := sigsOf(m.Basis); s != nil && rc != nil && s.Size == rc.Size {
				m.BlockSize = s.BlockSize
			}
		}
	}
}

// guardDeletes refuses a plan that would move more than share of the replica's count files
// to its trash (and more than 5): a wiped or unmounted tree on the source must not empty the
// replica.
func guardDeletes(p *plan, count uint64, share float64) error {
	trash := 0
	for _, d := range p.deletes {
		if d.Trash && d.Kind != KindDir {
			trash++
		}
	}
	if trash > 5 && float64(trash) > share*float64(count) {
		return fmt.Errorf("%w: run would delete %d of %d files on the replica (max_delete %.0f%%); nothing was sent",
			ErrDeleteGuard, trash, count, share*100)
	}
	return nil
}

// skipRule returns which paths a run leaves alone on both sides: files changing while read
// (unstable), files and folders holding a .lock and the files in them (locked), and
// everything at or under an entry either node could not read or list (unreadable).
func skipRule(unstable, locked, unreadable map[string]bool) func(string) bool {
	return func(p string) bool {
		if unstable[p] || locked[p] || underAny(p, unreadable) {
			return true
		}
		i, rel := splitWirePath(p)
		d := path.Dir(rel)
		if d == "." {
			return false
		}
		return locked[wirePath(i, d)]
	}
}

package sync

import (
	"errors"
	"maps"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"lukechampine.com/blake3"
)

// planMtime is the mtime of every file in the planner's tests: attributes agree unless a case
// changes them.
const planMtime = 1_700_000_000_000_000_000

// pf is a file holding content.
func pf(content string) *Meta {
	return &Meta{Kind: KindFile, Size: int64(len(content)), Mtime: planMtime, Mode: 0o644, Hash: blake3.Sum256([]byte(content))}
}

// pbig is a file of size bytes (a delta candidate) named by seed.
func pbig(seed string, size int64) *Meta {
	m := pf(seed)
	m.Size = size
	return m
}

func pdir() *Meta { return &Meta{Kind: KindDir, Mode: 0o755} }

// Wire paths of the planner's tests: tree 0 is /etc/asterisk, tree 1 the voicemail spool.
const (
	pConf   = "0/sip.conf"
	pInbox  = "1/default/100/INBOX"
	pMsg0w  = "1/default/100/INBOX/msg0000.wav"
	pMsg0t  = "1/default/100/INBOX/msg0000.txt"
	pMsg1w  = "1/default/100/INBOX/msg0001.wav"
	pMsg1t  = "1/default/100/INBOX/msg0001.txt"
	pOld    = "1/default/100/Old"
	pOldMsg = "1/default/100/Old/msg0000.wav"
)

// agreed is the state both nodes agreed on at the last sync: a config file, one message in
// INBOX, one in Old.
func agreed() map[string]*Meta {
	return map[string]*Meta{
		"1/default": pdir(), "1/default/100": pdir(), pInbox: pdir(), pOld: pdir(),
		pConf: pf("v1"), pMsg0w: pf("audio 0"), pMsg0t: pf("txt 0"), pOldMsg: pf("old audio"),
	}
}

// with returns a copy of tree with the entries in set (a nil entry deletes).
func with(tree map[string]*Meta, set map[string]*Meta) map[string]*Meta {
	out := maps.Clone(tree)
	for p, m := range set {
		if m == nil {
			delete(out, p)
		} else {
			out[p] = m
		}
	}
	return out
}

// planInputOf builds the planner's input from the agreed state and both sides' trees: the
// source's bases and the replica's are the agreed state.
func planInputOf(base, src, rep map[string]*Meta, ever bool, skip, resolved []string) *planInput {
	view := map[string]viewEntry{}
	for p, m := range rep {
		view[p] = viewEntry{Path: p, Cur: m, Base: base[p]}
	}
	for p, m := range base {
		if _, ok := rep[p]; !ok {
			view[p] = viewEntry{Path: p, Base: m}
		}
	}
	skipSet := map[string]bool{}
	for _, p := range skip {
		skipSet[p] = true
	}
	res := map[string]bool{}
	for _, p := range resolved {
		res[p] = true
	}
	if !ever {
		for p, v := range view {
			v.Base = nil
			view[p] = v
		}
	}
	return &planInput{sCur: src, sBase: base, view: view, rEver: ever, skip: func(p string) bool { return skipSet[p] },
		resolved: res, noDelta: map[string]bool{}}
}

// bases returns the newBase of a plan that records tree as the new agreed state, with the
// paths in gone recorded as deleted.
func bases(tree map[string]*Meta, gone ...string) map[string]*Meta {
	out := maps.Clone(tree)
	for _, p := range gone {
		out[p] = nil
	}
	return out
}

// TestPlan: every row of the failback table in docs/sync.md, and the cases around it, as the
// trees both nodes hold going in and the plan coming out.
func TestPlan(t *testing.T) {
	base := agreed()
	never := false
	tests := []struct {
		name     string
		base     map[string]*Meta // default: agreed()
		src, rep map[string]*Meta
		ever     *bool // default true: the replica has synced with this source before
		skip     []string
		resolved []string
		want     *plan
	}{
		{
			name: "nothing changed: only bases",
			src:  base, rep: base,
			want: &plan{newBase: bases(base)},
		},
		{
			name: "changed on the source only: pushed whole",
			src:  with(base, map[string]*Meta{pConf: pf("v2")}), rep: base,
			want: &plan{
				files:   []fileMsg{{Path: pConf, Meta: *pf("v2"), Method: methodFull}},
				newBase: bases(with(base, map[string]*Meta{pConf: pf("v2")})),
			},
		},
		{
			name: "changed on the source only, big enough for a delta",
			src:  with(base, map[string]*Meta{pConf: pbig("v2", 1<<20)}),
			rep:  with(base, map[string]*Meta{pConf: pbig("v1", 1<<20)}),
			want: &plan{
				files:   []fileMsg{{Path: pConf, Meta: *pbig("v2", 1<<20), Method: methodDelta, Basis: pbig("v1", 1<<20).Hash}},
				newBase: bases(with(base, map[string]*Meta{pConf: pbig("v2", 1<<20)})),
			},
		},
		{
			name: "new message on the source: audio among the files, .txt after the barrier",
			src:  with(base, map[string]*Meta{pMsg1w: pf("audio 1"), pMsg1t: pf("txt 1")}), rep: base,
			want: &plan{
				files:   []fileMsg{{Path: pMsg1w, Meta: *pf("audio 1"), Method: methodFull}},
				txts:    []fileMsg{{Path: pMsg1t, Meta: *pf("txt 1"), Method: methodFull}},
				newBase: bases(with(base, map[string]*Meta{pMsg1w: pf("audio 1"), pMsg1t: pf("txt 1")})),
			},
		},
		{
			name: "attributes changed on the source only",
			src:  with(base, map[string]*Meta{pConf: func() *Meta { m := pf("v1"); m.Mode = 0o600; return m }()}), rep: base,
			want: &plan{
				files:   []fileMsg{{Path: pConf, Meta: func() Meta { m := *pf("v1"); m.Mode = 0o600; return m }(), Method: methodMeta}},
				newBase: bases(with(base, map[string]*Meta{pConf: func() *Meta { m := pf("v1"); m.Mode = 0o600; return m }()})),
			},
		},
		{
			name: "changed on the replica only: adopted",
			src:  base, rep: with(base, map[string]*Meta{pConf: pf("edited there")}),
			want: &plan{adopt: []string{pConf}, newBase: bases(with(base, map[string]*Meta{pConf: nil}))},
		},
		{
			name: "changed on the replica only, after the pull: only the base is recorded",
			src:  with(base, map[string]*Meta{pConf: pf("edited there")}), rep: with(base, map[string]*Meta{pConf: pf("edited there")}),
			resolved: []string{pConf},
			want: &plan{
				files:   []fileMsg{{Path: pConf, Meta: *pf("edited there"), Method: methodBase}},
				newBase: bases(with(base, map[string]*Meta{pConf: pf("edited there")})),
			},
		},
		{
			name: "message recorded on the replica only: adopted",
			src:  base, rep: with(base, map[string]*Meta{pMsg1w: pf("audio r"), pMsg1t: pf("txt r")}),
			want: &plan{adopt: []string{pMsg1t, pMsg1w}, newBase: bases(base)},
		},
		{
			name: "folder made on the replica only: made here",
			src:  base, rep: with(base, map[string]*Meta{"1/default/100/Work": pdir()}),
			want: &plan{smkdirs: []string{"1/default/100/Work"}, newBase: bases(base)},
		},
		{
			name: "changed on both, voicemail message: merged under a new number",
			src:  with(base, map[string]*Meta{pMsg1w: pf("audio s"), pMsg1t: pf("txt s")}),
			rep:  with(base, map[string]*Meta{pMsg1w: pf("audio r"), pMsg1t: pf("txt r")}),
			want: &plan{
				merges:  map[string][]string{"1/default/100/INBOX/msg0001": {pMsg1t, pMsg1w}},
				newBase: bases(base),
			},
		},
		{
			name: "changed on both, other file: the replica's kept as a conflict copy",
			src:  with(base, map[string]*Meta{pConf: pf("edited here")}),
			rep:  with(base, map[string]*Meta{pConf: pf("edited there")}),
			want: &plan{conflicts: []string{pConf}, newBase: with(base, map[string]*Meta{pConf: nil})},
		},
		{
			name: "changed on both, the same way: only the base is recorded",
			src:  with(base, map[string]*Meta{pConf: pf("same edit")}),
			rep:  with(base, map[string]*Meta{pConf: pf("same edit")}),
			want: &plan{
				files:   []fileMsg{{Path: pConf, Meta: *pf("same edit"), Method: methodBase}},
				newBase: bases(with(base, map[string]*Meta{pConf: pf("same edit")})),
			},
		},
		{
			name: "deleted on the source only: deleted there, into the trash",
			src:  with(base, map[string]*Meta{pConf: nil}), rep: base,
			want: &plan{
				deletes: []deleteMsg{{Path: pConf, Kind: KindFile, Trash: true}},
				newBase: bases(with(base, map[string]*Meta{pConf: nil}), pConf),
			},
		},
		{
			name: "deleted on the replica only: deleted here",
			src:  base, rep: with(base, map[string]*Meta{pConf: nil}),
			want: &plan{sdeletes: []string{pConf}, newBase: with(base, map[string]*Meta{pConf: nil})},
		},
		{
			name: "deleted on both: only the base goes",
			src:  with(base, map[string]*Meta{pConf: nil}), rep: with(base, map[string]*Meta{pConf: nil}),
			want: &plan{
				deletes: []deleteMsg{{Path: pConf, Kind: KindFile}},
				newBase: bases(with(base, map[string]*Meta{pConf: nil}), pConf),
			},
		},
		{
			name: "changed on the source, deleted on the replica: this side's comes back",
			src:  with(base, map[string]*Meta{pConf: pf("v2")}), rep: with(base, map[string]*Meta{pConf: nil}),
			want: &plan{
				files:   []fileMsg{{Path: pConf, Meta: *pf("v2"), Method: methodFull}},
				newBase: bases(with(base, map[string]*Meta{pConf: pf("v2")})),
			},
		},
		{
			name: "deleted on the source, changed on the replica: theirs adopted",
			src:  with(base, map[string]*Meta{pConf: nil}), rep: with(base, map[string]*Meta{pConf: pf("v2")}),
			want: &plan{adopt: []string{pConf}, newBase: with(base, map[string]*Meta{pConf: nil})},
		},
		{
			name: "deleted on the source while the replica recorded at that number: merged, not lost",
			src:  with(base, map[string]*Meta{pMsg0w: nil, pMsg0t: nil}),
			rep:  with(base, map[string]*Meta{pMsg0w: pf("audio r"), pMsg0t: pf("txt r")}),
			want: &plan{adopt: []string{pMsg0t, pMsg0w}, newBase: with(base, map[string]*Meta{pMsg0w: nil, pMsg0t: nil})},
		},
		{
			name: "renumbered on the source: the replica moves its own copies, nothing is sent",
			base: agreedWith(map[string]*Meta{pMsg1w: pf("audio 1"), pMsg1t: pf("txt 1")}),
			src: with(agreedWith(map[string]*Meta{pMsg1w: pf("audio 1"), pMsg1t: pf("txt 1")}),
				map[string]*Meta{pMsg0w: pf("audio 1"), pMsg0t: pf("txt 1"), pMsg1w: nil, pMsg1t: nil}),
			rep: agreedWith(map[string]*Meta{pMsg1w: pf("audio 1"), pMsg1t: pf("txt 1")}),
			want: &plan{
				locals: []fileMsg{
					{Path: pMsg0t, Meta: *pf("txt 1"), Method: methodLocal, Src: pMsg1t, Move: true},
					{Path: pMsg0w, Meta: *pf("audio 1"), Method: methodLocal, Src: pMsg1w, Move: true},
				},
				deletes: []deleteMsg{{Path: pMsg1t, Kind: KindFile}, {Path: pMsg1w, Kind: KindFile}},
				newBase: bases(with(base, map[string]*Meta{pMsg0w: pf("audio 1"), pMsg0t: pf("txt 1")}), pMsg1t, pMsg1w),
			},
		},
		{
			name: "renumbered on the replica: adopted and deleted here",
			base: agreedWith(map[string]*Meta{pMsg1w: pf("audio 1"), pMsg1t: pf("txt 1")}),
			src:  agreedWith(map[string]*Meta{pMsg1w: pf("audio 1"), pMsg1t: pf("txt 1")}),
			rep: with(agreedWith(map[string]*Meta{pMsg1w: pf("audio 1"), pMsg1t: pf("txt 1")}),
				map[string]*Meta{pMsg0w: pf("audio 1"), pMsg0t: pf("txt 1"), pMsg1w: nil, pMsg1t: nil}),
			want: &plan{
				adopt:    []string{pMsg0t, pMsg0w},
				sdeletes: []string{pMsg1t, pMsg1w},
				newBase:  with(base, map[string]*Meta{pMsg0w: nil, pMsg0t: nil}),
			},
		},
		{
			name: "a folder replaced by a file on the source",
			src:  with(base, map[string]*Meta{pOld: pf("now a file"), pOldMsg: nil}), rep: base,
			want: &plan{
				files:   []fileMsg{{Path: pOld, Meta: *pf("now a file"), Method: methodFull}},
				deletes: []deleteMsg{{Path: pOldMsg, Kind: KindFile, Trash: true}},
				newBase: bases(with(base, map[string]*Meta{pOld: pf("now a file"), pOldMsg: nil}), pOldMsg),
			},
		},
		{
			name: "a folder replaced by a file on the replica: adopted",
			src:  base, rep: with(base, map[string]*Meta{pOld: pf("now a file"), pOldMsg: nil}),
			want: &plan{
				adopt:    []string{pOld},
				sdeletes: []string{pOldMsg},
				newBase:  with(base, map[string]*Meta{pOld: nil, pOldMsg: nil}),
			},
		},
		{
			name: "a file replaced by a folder on the source: the folder replaces it there",
			src:  with(base, map[string]*Meta{pConf: pdir(), "0/sip.conf/x": pf("x")}), rep: base,
			want: &plan{
				mkdirs:  []fileMsg{{Path: pConf, Meta: *pdir(), Method: methodMkdir}},
				files:   []fileMsg{{Path: "0/sip.conf/x", Meta: *pf("x"), Method: methodFull}},
				newBase: bases(with(base, map[string]*Meta{pConf: pdir(), "0/sip.conf/x": pf("x")})),
			},
		},
		{
			name: "first sync (no history): the replica becomes a copy, its extra files trashed, every base recorded",
			src:  base, rep: with(base, map[string]*Meta{pConf: pf("other"), "0/extra.conf": pf("extra")}),
			ever: &never,
			want: &plan{
				files: []fileMsg{
					{Path: "1/default", Meta: *pdir(), Method: methodBase},
					{Path: "1/default/100", Meta: *pdir(), Method: methodBase},
					{Path: pInbox, Meta: *pdir(), Method: methodBase},
					{Path: pMsg0w, Meta: *pf("audio 0"), Method: methodBase},
					{Path: pOld, Meta: *pdir(), Method: methodBase},
					{Path: pOldMsg, Meta: *pf("old audio"), Method: methodBase},
					{Path: pConf, Meta: *pf("v1"), Method: methodFull},
				},
				txts:    []fileMsg{{Path: pMsg0t, Meta: *pf("txt 0"), Method: methodBase}},
				deletes: []deleteMsg{{Path: "0/extra.conf", Kind: KindFile, Trash: true}},
				newBase: bases(base, "0/extra.conf"),
			},
		},
		{
			name: "skipped paths (locked, unstable, unreadable) are left alone on both sides",
			src:  with(base, map[string]*Meta{pConf: pf("v2")}), rep: with(base, map[string]*Meta{pMsg0w: pf("audio r")}),
			skip: []string{pConf, pMsg0w},
			want: &plan{skipped: 2, newBase: with(base, map[string]*Meta{pConf: nil, pMsg0w: nil})},
		},
		{
			name: "the new file not yet hashed is sent whole",
			src:  with(base, map[string]*Meta{"0/new.conf": {Kind: KindFile, Size: 3, Mtime: planMtime, Mode: 0o644}}), rep: base,
			want: &plan{
				files:   []fileMsg{{Path: "0/new.conf", Meta: Meta{Kind: KindFile, Size: 3, Mtime: planMtime, Mode: 0o644}, Method: methodFull}},
				newBase: bases(with(base, map[string]*Meta{"0/new.conf": {Kind: KindFile, Size: 3, Mtime: planMtime, Mode: 0o644}})),
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ever := tc.ever == nil || *tc.ever
			b := tc.base
			if b == nil {
				b = base
			}
			got := makePlan(planInputOf(b, tc.src, tc.rep, ever, tc.skip, tc.resolved))
			if tc.want.merges == nil {
				tc.want.merges = map[string][]string{}
			}
			if diff := cmp.Diff(tc.want, got, cmp.AllowUnexported(plan{}), cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("makePlan (-want +got):\n%s", diff)
			}
		})
	}
}

// agreedWith is the agreed state with more entries.
func agreedWith(set map[string]*Meta) map[string]*Meta { return with(agreed(), set) }

// TestDeleteGuard: the row of docs/sync.md on max_delete: a run that would trash more than
// the share of the replica's files (and more than 5) is refused; folders and deletes of
// content this side still holds (a rename) do not count.
func TestDeleteGuard(t *testing.T) {
	dels := func(n int, kind Kind, trash bool) []deleteMsg {
		var out []deleteMsg
		for i := range n {
			out = append(out, deleteMsg{Path: "0/f" + string(rune('a'+i)), Kind: kind, Trash: trash})
		}
		return out
	}
	tests := []struct {
		name    string
		deletes []deleteMsg
		count   uint64
		share   float64
		refused bool
	}{
		{"5 files of 6: at most 5 always pass", dels(5, KindFile, true), 6, 0.2, false},
		{"6 files of 10 at 20 %: refused", dels(6, KindFile, true), 10, 0.2, true},
		{"6 files of 30 at 20 %: passes", dels(6, KindFile, true), 30, 0.2, false},
		{"6 files of 30 at 10 %: refused", dels(6, KindFile, true), 30, 0.1, true},
		{"20 folders: not counted", dels(20, KindDir, true), 21, 0.2, false},
		{"20 moved files (not trashed): not counted", dels(20, KindFile, false), 21, 0.2, false},
		{"an empty replica: 6 deletes are refused", dels(6, KindFile, true), 0, 0.2, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := guardDeletes(&plan{deletes: tc.deletes}, tc.count, tc.share)
			if tc.refused != (err != nil) {
				t.Fatalf("guardDeletes = %v, want refused %v", err, tc.refused)
			}
			if err != nil && !errors.Is(err, ErrDeleteGuard) {
				t.Fatalf("guardDeletes = %v, want ErrDeleteGuard", err)
			}
		})
	}
}

package sync

import (
	"bytes"
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestFrameGolden(t *testing.T) {
	tests := []struct {
		name string
		f    Frame
		want []byte
	}{
		{"begin", Frame{Type: MsgBegin}, []byte{3, 0, 0, 0, 0}},
		{"data", Frame{Type: MsgData, Payload: []byte{0, 'a', 'b'}}, []byte{8, 0, 0, 0, 3, 0, 'a', 'b'}},
	}
	for _, tt := range tests {
		got, err := tt.f.MarshalBinary()
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if d := cmp.Diff(tt.want, got); d != "" {
			t.Errorf("%s: marshal (-want +got):\n%s", tt.name, d)
		}
		var back Frame
		if err := back.UnmarshalBinary(got); err != nil {
			t.Fatalf("%s: unmarshal: %v", tt.name, err)
		}
		if back.Type != tt.f.Type || !bytes.Equal(back.Payload, tt.f.Payload) {
			t.Errorf("%s: round trip %+v", tt.name, back)
		}
	}
}

func TestFrameErrors(t *testing.T) {
	tests := []struct {
		name string
		in   []byte
		want error
	}{
		{"short", []byte{3, 0, 0}, ErrFrameTooShort},
		{"type 0", []byte{0, 0, 0, 0, 0}, ErrFrameType},
		{"type 99", []byte{99, 0, 0, 0, 0}, ErrFrameType},
		{"huge", []byte{8, 0xff, 0, 0, 0}, ErrFrameTooLarge},
		{"truncated", []byte{8, 0, 0, 0, 4, 1}, ErrTruncated},
		{"trailing", []byte{8, 0, 0, 0, 1, 1, 2}, ErrTrailing},
	}
	for _, tt := range tests {
		var f Frame
		if err := f.UnmarshalBinary(tt.in); !errors.Is(err, tt.want) {
			t.Errorf("%s: got %v, want %v", tt.name, err, tt.want)
		}
	}
}

func TestFileMsgGolden(t *testing.T) {
	m := fileMsg{Path: "1/default/100/INBOX/msg0000.wav", Method: methodLocal, Src: "1/default/100/INBOX/msg0001.wav", Move: true,
		Meta: Meta{Kind: KindFile, Size: 3, Mtime: 5, Mode: 0o640, UID: 7, GID: 8, Hash: Hash{1, 2}}}
	b, err := m.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	want := append([]byte{31}, "1/default/100/INBOX/msg0000.wav"...)
	want = append(want, 1, 6, 10, 0xa0, 0x03, 7, 8, 1, 2)
	want = append(want, make([]byte, 30)...)
	want = append(want, 0, methodLocal, 31)
	want = append(want, "1/default/100/INBOX/msg0001.wav"...)
	want = append(want, 1)
	want = append(want, make([]byte, 32)...)
	want = append(want, 0)
	if d := cmp.Diff(want, b); d != "" {
		t.Errorf("marshal (-want +got):\n%s", d)
	}
	var back fileMsg
	if err := back.UnmarshalBinary(b); err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(m, back); d != "" {
		t.Errorf("round trip (-want +got):\n%s", d)
	}
}

func TestWirePathRejectsTraversal(t *testing.T) {
	bad := []string{
		"", "0", "0/", "/etc/passwd", "0//etc/passwd", "0/../etc/passwd", "0/a/../../b", "0/a/./b",
		"0/a/", "x/a", "-1/a", "01/a", "64/a", "0/a\x00b", "0/..", "0/.",
	}
	for _, p := range bad {
		if err := checkWirePath(p); !errors.Is(err, ErrBadPath) {
			t.Errorf("checkWirePath(%q) = %v, want ErrBadPath", p, err)
		}
		m := fileMsg{Path: p, Method: methodFull, Meta: Meta{Kind: KindFile}}
		b, _ := m.MarshalBinary()
		if err := new(fileMsg).UnmarshalBinary(b); !errors.Is(err, ErrBadPath) {
			t.Errorf("fileMsg with path %q: %v, want ErrBadPath", p, err)
		}
		lm := fileMsg{Path: "0/ok", Src: p, Method: methodLocal, Meta: Meta{Kind: KindFile}}
		b, _ = lm.MarshalBinary()
		if err := new(fileMsg).UnmarshalBinary(b); !errors.Is(err, ErrBadPath) {
			t.Errorf("local source %q: %v, want ErrBadPath", p, err)
		}
	}
	for _, p := range []string{"0/a", "1/default/100/INBOX/msg0000.txt", "63/.hidden", "0/a..b"} {
		if err := checkWirePath(p); err != nil {
			t.Errorf("checkWirePath(%q) = %v", p, err)
		}
	}
}

// FuzzFrame feeds arbitrary bytes to the frame decoder and every message decoder: none may
// panic, and whatever decodes must encode back to the same bytes.
func FuzzFrame(f *testing.F) {
	seeds := []encodingPair{
		{MsgHello, &helloMsg{Version: 1, Role: RoleSource, OK: true, Reason: "x"}},
		{MsgState, &stateMsg{Clean: true, Count: 3, Locked: []string{"1/a/INBOX"}}},
		{MsgFile, &fileMsg{Path: "0/a", Method: methodDelta, BlockSize: 1024, Meta: Meta{Kind: KindFile, Size: 9}}},
		{MsgDelete, &deleteMsg{Path: "0/a", Kind: KindFile, Trash: true}},
		{MsgResult, &resultMsg{Failed: []pathErr{{Path: "0/a", Err: "x", Retry: true}}, Fatal: "disk"}},
		{MsgManifest, &manifestMsg{Last: true, Entries: []viewEntry{{Path: "0/a", Cur: &Meta{Kind: KindDir}}}}},
		{MsgFileEnd, &fileEndMsg{Hash: Hash{9}}},
		{MsgPull, &pathMsg{Path: "1/x"}},
		{MsgSigReq, &sigReqMsg{Items: []sigReqItem{{Path: "1/a/msg0000.wav", Basis: Hash{3}}}}},
		{MsgSigs, &sigsMsg{Path: "1/a/msg0000.wav", Sums: []byte{0x80, 0x08, 0x80, 0x80, 0x08, 1, 2, 3, 4, 5, 6, 7, 8}}},
	}
	for _, s := range seeds {
		p, _ := s.m.MarshalBinary()
		fr := Frame{Type: s.t, Payload: p}
		b, _ := fr.MarshalBinary()
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var fr Frame
		if err := fr.UnmarshalBinary(b); err != nil {
			return
		}
		back, err := fr.MarshalBinary()
		if err != nil || !bytes.Equal(back, b) {
			t.Fatalf("frame round trip: %v", err)
		}
		var got []byte
		t2, p2, err := readFrame(bytes.NewReader(b), &got)
		if err != nil || t2 != fr.Type || !bytes.Equal(p2, fr.Payload) {
			t.Fatalf("readFrame disagrees: %v", err)
		}
		for _, m := range []interface {
			UnmarshalBinary([]byte) error
			MarshalBinary() ([]byte, error)
		}{&helloMsg{}, &stateMsg{}, &manifestMsg{}, &fileMsg{}, &fileEndMsg{}, &textMsg{}, &pathMsg{}, &deleteMsg{}, &resultMsg{},
			&sigReqMsg{}, &sigsMsg{}} {
			if err := m.UnmarshalBinary(fr.Payload); err != nil {
				continue
			}
			enc, err := m.MarshalBinary()
			if err != nil {
				t.Fatalf("%T: re-encode: %v", m, err)
			}
			if !bytes.Equal(enc, fr.Payload) {
				// Varints have one canonical form only when minimal; accept a shorter
				// re-encoding only if it decodes to the same message.
				m2 := m
				if err := m2.UnmarshalBinary(enc); err != nil {
					t.Fatalf("%T: re-encoded message does not decode: %v", m, err)
				}
			}
		}
		var s sigs
		_ = s.UnmarshalBinary(fr.Payload)
		var r record
		_ = r.UnmarshalBinary(fr.Payload)
	})
}

type encodingPair struct {
	t MsgType
	m interface{ MarshalBinary() ([]byte, error) }
}

func TestDeltaRoundTrip(t *testing.T) {
	base := randBytes(7, 300<<10)
	h := newContentHasher(int64(len(base)))
	h.Write(base)
	_, s := h.finish()
	if s == nil {
		t.Fatal("no block sums for a 300 KB file")
	}
	edits := map[string]func([]byte) []byte{
		"same":      func(b []byte) []byte { return b },
		"overwrite": func(b []byte) []byte { copy(b[5000:], "XXXXXXXXXXXXXXXX"); return b },
		"insert": func(b []byte) []byte {
			return append(append(append([]byte{}, b[:9999]...), "inserted"...), b[9999:]...)
		},
		"truncate": func(b []byte) []byte { return b[:len(b)-777] },
		"append":   func(b []byte) []byte { return append(b, randBytes(8, 5000)...) },
		"empty":    func(b []byte) []byte { return nil },
	}
	for name, edit := range edits {
		nb := edit(bytes.Clone(base))
		d := makeDelta(nb, s)
		var out bytes.Buffer
		if err := applyDelta(&out, bytes.NewReader(base), int64(len(base)), s.BlockSize, d); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !bytes.Equal(out.Bytes(), nb) {
			t.Fatalf("%s: delta did not reproduce the file", name)
		}
		if name == "overwrite" && len(d) > 3*int(s.BlockSize) {
			t.Errorf("%s: delta %d bytes for a 16-byte change (block %d)", name, len(d), s.BlockSize)
		}
	}
	// A hostile delta cannot read outside the basis or crash the decoder.
	for _, d := range [][]byte{{opCopy, 0xff, 0xff, 0xff, 0xff, 0x0f, 1}, {opLiteral, 10, 1}, {'Z'}, {opCopy}} {
		if err := applyDelta(&bytes.Buffer{}, bytes.NewReader(base), int64(len(base)), s.BlockSize, d); err == nil {
			t.Errorf("delta %x accepted", d)
		}
	}
}

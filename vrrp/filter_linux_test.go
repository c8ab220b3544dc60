package vrrp

import (
	"testing"

	"golang.org/x/net/bpf"
)

// The VRID filter, run in x/net/bpf's interpreter on IP datagrams as a raw socket sees them:
// it passes its own VRID whatever the IP header's length, and drops other VRIDs whole.
func TestVRIDFilter(t *testing.T) {
	prog, err := vridFilter(51)
	if err != nil {
		t.Fatal(err)
	}
	var ins []bpf.Instruction
	for _, r := range prog {
		ins = append(ins, r.Disassemble())
	}
	vm, err := bpf.NewVM(ins)
	if err != nil {
		t.Fatal(err)
	}
	datagram := func(ihl int, vrid byte) []byte {
		b := make([]byte, 4*ihl+20)
		b[0] = 0x40 | byte(ihl)
		b[9] = ipProtoVRRP
		b[4*ihl] = 0x21 // version 2, type 1
		b[4*ihl+1] = vrid
		return b
	}
	for _, tt := range []struct {
		name string
		pkt  []byte
		pass bool
	}{
		{"own VRID", datagram(5, 51), true},
		{"own VRID after IP options", datagram(6, 51), true},
		{"another VRID", datagram(5, 52), false},
		{"another VRID whose options hold ours", func() []byte { b := datagram(6, 52); b[21] = 51; return b }(), false},
		{"VRID 0", datagram(5, 0), false},
		{"too short for a VRID", []byte{0x45}, false},
	} {
		n, err := vm.Run(tt.pkt)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if got := n >= len(tt.pkt); got != tt.pass || (!tt.pass && n != 0) {
			t.Errorf("%s: filter kept %d of %d bytes; want pass=%t", tt.name, n, len(tt.pkt), tt.pass)
		}
	}
}

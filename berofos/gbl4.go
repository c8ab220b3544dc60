package berofos

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
)

// UDPPort is the berofos management port; requests go to it from an ephemeral port, to the
// limited broadcast address when no host is known.
const UDPPort = 50123

// PageSize is the firmware flash page size; the last page is zero padded.
const PageSize = 512

// magic is the GBL4 prefix: ASCII "GBL" and protocol version 4.
var magic = [4]byte{'G', 'B', 'L', 0x04}

// Sentinel errors of the GBL4 parsers; the returned errors wrap them with details.
var (
	ErrTooShort = errors.New("gbl4: frame too short")
	ErrMagic    = errors.New("gbl4: bad prefix")
	ErrChecksum = errors.New("gbl4: bad checksum")
	ErrCmd      = errors.New("gbl4: unexpected command")
	ErrLength   = errors.New("gbl4: bad payload length")
	ErrMAC      = errors.New("gbl4: bad MAC address")
	ErrAddr     = errors.New("gbl4: bad IPv4 address")
)

// Cmd is a GBL4 command byte.
type Cmd uint8

// The GBL4 commands. Netconf, flash and reset are answered only in flash mode.
const (
	CmdScan         Cmd = 0x01
	CmdNetconf      Cmd = 0x02
	CmdFlashPrepare Cmd = 0x03
	CmdFlashPage    Cmd = 0x04
	CmdReset        Cmd = 0x05
	CmdPing         Cmd = 0x09
	CmdKick         Cmd = 0x0B
)

func (c Cmd) String() string {
	switch c {
	case CmdScan:
		return "scan"
	case CmdNetconf:
		return "netconf"
	case CmdFlashPrepare:
		return "flash-prepare"
	case CmdFlashPage:
		return "flash-page"
	case CmdReset:
		return "reset"
	case CmdPing:
		return "ping"
	case CmdKick:
		return "kick"
	}
	return fmt.Sprintf("cmd(0x%02x)", uint8(c))
}

// maxPayload bounds a frame: the largest defined payload is a flash page (6+2+512 bytes).
const maxPayload = 6 + 2 + PageSize

// Frame is one GBL4 datagram: "GBL\x04", the command, the payload and a checksum byte that
// is the XOR of every byte before it.
type Frame struct {
	Cmd     Cmd
	Payload []byte
}

// Validate reports whether f can be sent.
func (f *Frame) Validate() error {
	if len(f.Payload) > maxPayload {
		return fmt.Errorf("%w: %d bytes, at most %d", ErrLength, len(f.Payload), maxPayload)
	}
	return nil
}

// MarshalBinary encodes f with its checksum.
func (f *Frame) MarshalBinary() ([]byte, error) {
	if err := f.Validate(); err != nil {
		return nil, err
	}
	b := make([]byte, 0, len(magic)+1+len(f.Payload)+1)
	b = append(b, magic[:]...)
	b = append(b, byte(f.Cmd))
	b = append(b, f.Payload...)
	return append(b, xorSum(b)), nil
}

// UnmarshalBinary decodes a datagram, checking the prefix and the checksum. The payload is a
// copy of b's bytes.
func (f *Frame) UnmarshalBinary(b []byte) error {
	if len(b) < len(magic)+2 {
		return fmt.Errorf("%w: %d bytes", ErrTooShort, len(b))
	}
	if [4]byte(b[:4]) != magic {
		return fmt.Errorf("%w: % x", ErrMagic, b[:4])
	}
	n := len(b) - 1
	if sum := xorSum(b[:n]); sum != b[n] {
		return fmt.Errorf("%w: got 0x%02x, want 0x%02x", ErrChecksum, b[n], sum)
	}
	payload := b[5:n]
	if len(payload) > maxPayload {
		return fmt.Errorf("%w: %d bytes, at most %d", ErrLength, len(payload), maxPayload)
	}
	f.Cmd = Cmd(b[4])
	f.Payload = append([]byte(nil), payload...)
	return nil
}

func xorSum(b []byte) byte {
	var s byte
	for _, c := range b {
		s ^= c
	}
	return s
}

// decodeAs unmarshals b and checks its command and payload length.
func decodeAs(b []byte, cmd Cmd, length int) ([]byte, error) {
	var f Frame
	if err := f.UnmarshalBinary(b); err != nil {
		return nil, err
	}
	if f.Cmd != cmd {
		return nil, fmt.Errorf("%w: got %v, want %v", ErrCmd, f.Cmd, cmd)
	}
	if len(f.Payload) != length {
		return nil, fmt.Errorf("%w: %v payload of %d bytes, want %d", ErrLength, cmd, len(f.Payload), length)
	}
	return f.Payload, nil
}

func checkMAC(mac net.HardwareAddr) error {
	if len(mac) != 6 {
		return fmt.Errorf("%w: %d bytes, want 6", ErrMAC, len(mac))
	}
	return nil
}

func checkAddr(name string, a netip.Addr) error {
	if !a.Is4() {
		return fmt.Errorf("%w: %s %v", ErrAddr, name, a)
	}
	return nil
}

func addr4(b []byte) netip.Addr { return netip.AddrFrom4([4]byte(b)) }

func cloneMAC(b []byte) net.HardwareAddr { return append(net.HardwareAddr(nil), b...) }

// ScanFrame returns the scan request, "47 42 4c 04 01 4c" on the wire.
func ScanFrame() Frame { return Frame{Cmd: CmdScan} }

// Devmode values in a scan reply.
const (
	DevModeOperational = 0
	DevModeFlash       = 1
)

// Bits of ScanReply.PhyConf, PhyState and Options.
const (
	PhyConf10M     = 0x01
	PhyConf100M    = 0x02
	PhyConfAuto    = 0xFF
	PhyStateLink   = 0x01
	PhyState100M   = 0x02
	PhyStateFull   = 0x04
	OptionDHCP     = 0x01
	OptionHTTPAuth = 0x02
	OptionIPACL    = 0x04
)

// Hardware magic numbers a berofos reports in its scan reply.
const (
	HWMagic1 = 0x0050
	HWMagic2 = 0x00BB
)

// ScanReply is a device's answer to a scan: its identity, firmware and network setup.
type ScanReply struct {
	MAC                  net.HardwareAddr
	HWMagic              uint16
	BootMajor, BootMinor uint8
	FWMajor, FWMinor     uint8
	DevMode              uint8 // 0 operational, else flash mode
	IP, Netmask, Gateway netip.Addr
	PhyConf, PhyState    uint8
	Options              uint8
	HTTPPort             uint16
}

const scanReplyLen = 30

// Validate reports whether r can be encoded.
func (r *ScanReply) Validate() error {
	if err := checkMAC(r.MAC); err != nil {
		return err
	}
	for _, a := range []struct {
		n string
		a netip.Addr
	}{{"ip", r.IP}, {"netmask", r.Netmask}, {"gateway", r.Gateway}} {
		if err := checkAddr(a.n, a.a); err != nil {
			return err
		}
	}
	return nil
}

// MarshalBinary encodes the whole reply datagram (36 bytes).
func (r *ScanReply) MarshalBinary() ([]byte, error) {
	if err := r.Validate(); err != nil {
		return nil, err
	}
	p := make([]byte, 0, scanReplyLen)
	p = append(p, r.MAC...)
	p = binary.BigEndian.AppendUint16(p, r.HWMagic)
	p = append(p, r.BootMajor, r.BootMinor, r.FWMajor, r.FWMinor, r.DevMode)
	p = append(p, r.IP.AsSlice()...)
	p = append(p, r.Netmask.AsSlice()...)
	p = append(p, r.Gateway.AsSlice()...)
	p = append(p, r.PhyConf, r.PhyState, r.Options)
	p = binary.BigEndian.AppendUint16(p, r.HTTPPort)
	f := Frame{Cmd: CmdScan, Payload: p}
	return f.MarshalBinary()
}

// UnmarshalBinary decodes a scan reply datagram.
func (r *ScanReply) UnmarshalBinary(b []byte) error {
	p, err := decodeAs(b, CmdScan, scanReplyLen)
	if err != nil {
		return err
	}
	*r = ScanReply{
		MAC:       cloneMAC(p[0:6]),
		HWMagic:   binary.BigEndian.Uint16(p[6:8]),
		BootMajor: p[8], BootMinor: p[9], FWMajor: p[10], FWMinor: p[11],
		DevMode:  p[12],
		IP:       addr4(p[13:17]),
		Netmask:  addr4(p[17:21]),
		Gateway:  addr4(p[21:25]),
		PhyConf:  p[25],
		PhyState: p[26],
		Options:  p[27],
		HTTPPort: binary.BigEndian.Uint16(p[28:30]),
	}
	return nil
}

// Firmware returns the firmware version as bnfos prints it, e.g. "1.53".
func (r *ScanReply) Firmware() string { return fmt.Sprintf("%d.%d", r.FWMajor, r.FWMinor) }

// Request is a GBL4 command addressed to one device by MAC: ping (MAC and a zero u16), kick
// (MAC and a zero byte) or reset (MAC only).
type Request struct {
	Cmd Cmd
	MAC net.HardwareAddr
}

func requestLen(c Cmd) (int, error) {
	switch c {
	case CmdPing:
		return 8, nil
	case CmdKick:
		return 7, nil
	case CmdReset:
		return 6, nil
	}
	return 0, fmt.Errorf("%w: %v is not a MAC request", ErrCmd, c)
}

// Validate reports whether q can be encoded.
func (q *Request) Validate() error {
	if _, err := requestLen(q.Cmd); err != nil {
		return err
	}
	return checkMAC(q.MAC)
}

// MarshalBinary encodes the request datagram.
func (q *Request) MarshalBinary() ([]byte, error) {
	if err := q.Validate(); err != nil {
		return nil, err
	}
	n, _ := requestLen(q.Cmd)
	p := make([]byte, n)
	copy(p, q.MAC)
	f := Frame{Cmd: q.Cmd, Payload: p}
	return f.MarshalBinary()
}

// UnmarshalBinary decodes a ping, kick or reset request; the padding must be zero.
func (q *Request) UnmarshalBinary(b []byte) error {
	var f Frame
	if err := f.UnmarshalBinary(b); err != nil {
		return err
	}
	n, err := requestLen(f.Cmd)
	if err != nil {
		return err
	}
	if len(f.Payload) != n {
		return fmt.Errorf("%w: %v payload of %d bytes, want %d", ErrLength, f.Cmd, len(f.Payload), n)
	}
	for _, c := range f.Payload[6:] {
		if c != 0 {
			return fmt.Errorf("%w: %v padding not zero", ErrLength, f.Cmd)
		}
	}
	*q = Request{Cmd: f.Cmd, MAC: cloneMAC(f.Payload[:6])}
	return nil
}

// Result is the reply to netconf and reset: the device's MAC and an error code (0 = ok).
type Result struct {
	Cmd  Cmd
	MAC  net.HardwareAddr
	Code uint8
}

// Validate reports whether r can be encoded.
func (r *Result) Validate() error {
	if r.Cmd != CmdNetconf && r.Cmd != CmdReset {
		return fmt.Errorf("%w: %v has no result reply", ErrCmd, r.Cmd)
	}
	return checkMAC(r.MAC)
}

// MarshalBinary encodes the reply datagram.
func (r *Result) MarshalBinary() ([]byte, error) {
	if err := r.Validate(); err != nil {
		return nil, err
	}
	f := Frame{Cmd: r.Cmd, Payload: append(append([]byte(nil), r.MAC...), r.Code)}
	return f.MarshalBinary()
}

// UnmarshalBinary decodes a netconf or reset reply.
func (r *Result) UnmarshalBinary(b []byte) error {
	var f Frame
	if err := f.UnmarshalBinary(b); err != nil {
		return err
	}
	if f.Cmd != CmdNetconf && f.Cmd != CmdReset {
		return fmt.Errorf("%w: %v has no result reply", ErrCmd, f.Cmd)
	}
	if len(f.Payload) != 7 {
		return fmt.Errorf("%w: %v reply of %d bytes, want 7", ErrLength, f.Cmd, len(f.Payload))
	}
	*r = Result{Cmd: f.Cmd, MAC: cloneMAC(f.Payload[:6]), Code: f.Payload[6]}
	return nil
}

// Netconf sets a device's network configuration (flash mode only; applied at the next boot).
type Netconf struct {
	MAC                  net.HardwareAddr
	IP, Netmask, Gateway netip.Addr
	PhyConf              uint8 // PhyConfAuto, PhyConf10M or PhyConf100M
	Options              uint8 // OptionDHCP | OptionHTTPAuth | OptionIPACL
	HTTPPort             uint16
}

const netconfLen = 6 + 12 + 1 + 1 + 2

// Validate reports whether n can be encoded.
func (n *Netconf) Validate() error {
	if err := checkMAC(n.MAC); err != nil {
		return err
	}
	for _, a := range []struct {
		n string
		a netip.Addr
	}{{"ip", n.IP}, {"netmask", n.Netmask}, {"gateway", n.Gateway}} {
		if err := checkAddr(a.n, a.a); err != nil {
			return err
		}
	}
	if n.HTTPPort == 0 {
		return fmt.Errorf("%w: http port 0", ErrLength)
	}
	return nil
}

// MarshalBinary encodes the netconf request datagram.
func (n *Netconf) MarshalBinary() ([]byte, error) {
	if err := n.Validate(); err != nil {
		return nil, err
	}
	p := make([]byte, 0, netconfLen)
	p = append(p, n.MAC...)
	p = append(p, n.IP.AsSlice()...)
	p = append(p, n.Netmask.AsSlice()...)
	p = append(p, n.Gateway.AsSlice()...)
	p = append(p, n.PhyConf, n.Options)
	p = binary.BigEndian.AppendUint16(p, n.HTTPPort)
	f := Frame{Cmd: CmdNetconf, Payload: p}
	return f.MarshalBinary()
}

// UnmarshalBinary decodes a netconf request datagram.
func (n *Netconf) UnmarshalBinary(b []byte) error {
	p, err := decodeAs(b, CmdNetconf, netconfLen)
	if err != nil {
		return err
	}
	*n = Netconf{
		MAC: cloneMAC(p[0:6]), IP: addr4(p[6:10]), Netmask: addr4(p[10:14]), Gateway: addr4(p[14:18]),
		PhyConf: p[18], Options: p[19], HTTPPort: binary.BigEndian.Uint16(p[20:22]),
	}
	return nil
}

// FlashPrepare announces a firmware image: its size in 512-byte pages and the XOR of all its
// bytes, which the device checks after the last page.
type FlashPrepare struct {
	MAC      net.HardwareAddr
	Pages    uint16
	Checksum uint8
}

// Validate reports whether p can be encoded.
func (p *FlashPrepare) Validate() error { return checkMAC(p.MAC) }

// MarshalBinary encodes the request datagram.
func (p *FlashPrepare) MarshalBinary() ([]byte, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	b := append([]byte(nil), p.MAC...)
	b = binary.BigEndian.AppendUint16(b, p.Pages)
	f := Frame{Cmd: CmdFlashPrepare, Payload: append(b, p.Checksum)}
	return f.MarshalBinary()
}

// UnmarshalBinary decodes the request datagram.
func (p *FlashPrepare) UnmarshalBinary(b []byte) error {
	q, err := decodeAs(b, CmdFlashPrepare, 9)
	if err != nil {
		return err
	}
	*p = FlashPrepare{MAC: cloneMAC(q[:6]), Pages: binary.BigEndian.Uint16(q[6:8]), Checksum: q[8]}
	return nil
}

// FlashPage carries one 512-byte page of a firmware image.
type FlashPage struct {
	MAC  net.HardwareAddr
	Page uint16
	Data [PageSize]byte
}

// Validate reports whether p can be encoded.
func (p *FlashPage) Validate() error { return checkMAC(p.MAC) }

// MarshalBinary encodes the request datagram.
func (p *FlashPage) MarshalBinary() ([]byte, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	b := append([]byte(nil), p.MAC...)
	b = binary.BigEndian.AppendUint16(b, p.Page)
	f := Frame{Cmd: CmdFlashPage, Payload: append(b, p.Data[:]...)}
	return f.MarshalBinary()
}

// UnmarshalBinary decodes the request datagram.
func (p *FlashPage) UnmarshalBinary(b []byte) error {
	q, err := decodeAs(b, CmdFlashPage, 8+PageSize)
	if err != nil {
		return err
	}
	*p = FlashPage{MAC: cloneMAC(q[:6]), Page: binary.BigEndian.Uint16(q[6:8])}
	copy(p.Data[:], q[8:])
	return nil
}

// FirmwarePages splits a firmware image into zero-padded pages and returns them with the
// XOR of the image's bytes, as the flash prepare request announces it.
func FirmwarePages(image []byte) (pages [][PageSize]byte, checksum uint8) {
	for off := 0; off < len(image); off += PageSize {
		var p [PageSize]byte
		copy(p[:], image[off:])
		pages = append(pages, p)
	}
	return pages, xorSum(image)
}

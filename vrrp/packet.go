package vrrp

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"time"
)

// Sentinel errors returned (wrapped, with the detail) by [Advertisement.UnmarshalBinary],
// [Advertisement.Unmarshal], [Advertisement.MarshalBinary], [Advertisement.Marshal] and
// [Advertisement.Validate]. Test with errors.Is.
var (
	// ErrTooShort: the message is shorter than its fixed header, or than the length its
	// address count implies (RFC 3768 section 7.1, RFC 9568 section 7.1: "contains the
	// complete VRRP packet").
	ErrTooShort = errors.New("vrrp: message too short")
	// ErrLength: the message is longer than its address count implies. The checksum of such a
	// message is ambiguous (which bytes does it cover?), so it is refused rather than trimmed.
	ErrLength = errors.New("vrrp: message length does not match address count")
	// ErrVersion: a version other than 2 (RFC 3768) and 3 (RFC 9568).
	ErrVersion = errors.New("vrrp: unsupported version")
	// ErrType: a type other than 1 (ADVERTISEMENT), RFC 3768 section 5.3.2.
	ErrType = errors.New("vrrp: unknown packet type")
	// ErrChecksum: the one's complement sum of the message (for version 3, of the IP
	// pseudo-header and the message) does not verify (RFC 3768 section 5.3.8, RFC 9568
	// section 5.2.8).
	ErrChecksum = errors.New("vrrp: bad checksum")
	// ErrInterval: an advertisement interval the version cannot carry: for version 2 whole
	// seconds 1..255, for version 3 a multiple of 10 ms in 10 ms..40.95 s.
	ErrInterval = errors.New("vrrp: invalid advertisement interval")
	// ErrAuthType: an authentication type outside 0..2 (section 5.3.6 and RFC 2338), or any
	// authentication at all in a version 3 advertisement (RFC 9568 has none).
	ErrAuthType = errors.New("vrrp: unknown authentication type")
	// ErrVRID: virtual router ID 0; section 5.3.3 allows 1..255.
	ErrVRID = errors.New("vrrp: invalid virtual router ID")
	// ErrAddress: an address that is not a plain IPv4 address (version 2), addresses of mixed
	// families or of another family than the pseudo-header (version 3), or more than 255.
	ErrAddress = errors.New("vrrp: invalid address list")
	// ErrPseudoHeader: a version 3 advertisement was marshalled or parsed without a valid
	// [PseudoHeader] (both addresses set and of one family), which its checksum needs.
	ErrPseudoHeader = errors.New("vrrp: version 3 needs the IP pseudo-header")
)

// Protocol constants of RFC 3768 section 5 and RFC 9568 section 5.
const (
	// ipProtoVRRP is the IP protocol number of VRRP (RFC 3768 section 5.2.4), also in the
	// version 3 pseudo-header.
	ipProtoVRRP = 112

	// TypeAdvertisement is the only packet type VRRP defines (section 5.3.2).
	TypeAdvertisement uint8 = 1

	// AuthDataLen is the length of the RFC 2338 authentication data trailing a version 2
	// advertisement (section 5.3.10).
	AuthDataLen = 8

	// v2HeaderLen is the fixed part of a version 2 message: version/type, VRID, priority,
	// count, auth type, advertisement interval and checksum.
	v2HeaderLen = 8
	// v2MinLen is a version 2 message with no address.
	v2MinLen = v2HeaderLen + AuthDataLen
	// v3HeaderLen is the fixed part of a version 3 message: version/type, VRID, priority,
	// count, 4 reserved bits and the 12-bit Max Adver Int, checksum. Nothing trails the
	// addresses.
	v3HeaderLen = 8

	// MinIntervalV3 and MaxIntervalV3 bound the version 3 Max Adver Int: 1..4095
	// centiseconds (RFC 9568 section 5.2.7).
	MinIntervalV3 = 10 * time.Millisecond
	MaxIntervalV3 = 4095 * MinIntervalV3
)

// AuthType is the version 2 authentication type (RFC 3768 section 5.3.6).
type AuthType uint8

const (
	// AuthNone: no authentication, the only type RFC 3768 defines.
	AuthNone AuthType = 0
	// AuthSimple: RFC 2338 plain-text password in the 8-byte authentication data. Reserved by
	// RFC 3768, still sent by keepalived's "auth_type PASS".
	AuthSimple AuthType = 1
	// AuthAH: RFC 2338 IP Authentication Header. Reserved by RFC 3768; never accepted by a
	// Machine.
	AuthAH AuthType = 2
)

func (t AuthType) String() string {
	switch t {
	case AuthNone:
		return "none"
	case AuthSimple:
		return "simple"
	case AuthAH:
		return "ah"
	}
	return fmt.Sprintf("AuthType(%d)", uint8(t))
}

// Advertisement is a VRRP ADVERTISEMENT (RFC 3768 section 5.1, RFC 9568 section 5.1). The
// zero value is not valid; fill Version 2 or 3, Type 1, a VRID, an Interval and the addresses.
//
// Version selects the wire layout. Version 2: the interval travels as whole seconds (1..255),
// the addresses are IPv4 and the message ends with 8 bytes of authentication data; the checksum
// covers the message alone, so [Advertisement.MarshalBinary] and
// [Advertisement.UnmarshalBinary] suffice. Version 3: the interval travels as 12 bits of
// centiseconds (10 ms..40.95 s), the addresses are all IPv4 or all IPv6, there is no
// authentication (AuthType and AuthData must be zero), and the checksum also covers the IP
// pseudo-header, so the message is built and read with [Advertisement.Marshal] and
// [Advertisement.Unmarshal], which take the IP source and destination as a [PseudoHeader].
type Advertisement struct {
	Version  uint8 // 2 = RFC 3768, 3 = RFC 9568
	Type     uint8 // 1 = ADVERTISEMENT
	VRID     uint8
	Priority uint8    // 255 = address owner, 1..254 backups, 0 = the Master resigns
	AuthType AuthType // version 2 only; zero in version 3
	// Interval is Adver Int (version 2, whole seconds) or Max Adver Int (version 3,
	// centiseconds).
	Interval time.Duration
	// Checksum is the value read by UnmarshalBinary or Unmarshal. Marshalling ignores it and
	// writes the checksum of the bytes it produces.
	Checksum  uint16
	Addresses []netip.Addr
	AuthData  [AuthDataLen]byte // version 2 only; zero in version 3
}

// PseudoHeader is what the version 3 checksum covers besides the message (RFC 9568 section
// 5.2.8): the source and destination of the IP packet that carries the advertisement. Both
// must be IPv4 (the pseudo-header is then source, destination, a zero byte, protocol 112 and
// the VRRP length in 16 bits, as for UDP in RFC 768) or both IPv6 (RFC 8200 section 8.1:
// source, destination, the VRRP length in 32 bits, three zero bytes, next header 112). The
// family also says whether the message's addresses are IPv4 or IPv6, which the message itself
// does not. Version 2 ignores it.
//
// A sender fills Src with its Primary address and Dst with 224.0.0.18, ff02::12 or the unicast
// peer; a receiver takes both from the received packet (Dst from the IP_PKTINFO or
// IPV6_PKTINFO control message). IPv4-mapped IPv6 addresses count as IPv4.
type PseudoHeader struct {
	Src, Dst netip.Addr
}

// family returns the pseudo-header's addresses unmapped and whether they are IPv6, or an error
// wrapping ErrPseudoHeader when they are missing or of two families.
func (ph PseudoHeader) family() (src, dst netip.Addr, is6 bool, err error) {
	src, dst = ph.Src.Unmap(), ph.Dst.Unmap()
	switch {
	case !src.IsValid() || !dst.IsValid():
		return src, dst, false, fmt.Errorf("%w: source %v, destination %v", ErrPseudoHeader, ph.Src, ph.Dst)
	case src.Is4() != dst.Is4():
		return src, dst, false, fmt.Errorf("%w: source %v and destination %v of different families", ErrPseudoHeader, ph.Src, ph.Dst)
	}
	return src, dst, src.Is6(), nil
}

// sum is the one's complement sum of the pseudo-header for a VRRP message of n bytes.
func (ph PseudoHeader) sum(src, dst netip.Addr, n int) uint64 {
	var hdr [40]byte
	var b []byte
	if src.Is4() {
		s, d := src.As4(), dst.As4()
		copy(hdr[0:4], s[:])
		copy(hdr[4:8], d[:])
		hdr[9] = ipProtoVRRP
		binary.BigEndian.PutUint16(hdr[10:12], uint16(n))
		b = hdr[:12]
	} else {
		s, d := src.As16(), dst.As16()
		copy(hdr[0:16], s[:])
		copy(hdr[16:32], d[:])
		binary.BigEndian.PutUint32(hdr[32:36], uint32(n))
		hdr[39] = ipProtoVRRP
		b = hdr[:40]
	}
	return addWords(0, b)
}

// Checksum returns the version 3 checksum of msg, a VRRP message whose checksum field is zero,
// sent from ph.Src to ph.Dst (RFC 9568 section 5.2.8). It returns 0 for an invalid ph.
func (ph PseudoHeader) Checksum(msg []byte) uint16 {
	src, dst, _, err := ph.family()
	if err != nil {
		return 0
	}
	return ^fold(addWords(ph.sum(src, dst, len(msg)), msg))
}

// ChecksumValid reports whether msg, a version 3 message including its checksum field, verifies
// with the pseudo-header ph. It is false for an invalid ph.
func (ph PseudoHeader) ChecksumValid(msg []byte) bool {
	src, dst, _, err := ph.family()
	if err != nil {
		return false
	}
	return fold(addWords(ph.sum(src, dst, len(msg)), msg)) == 0xffff
}

// errVersion reports a version other than 2 and 3.
func errVersion(v uint8) error {
	return fmt.Errorf("%w: %d (2 = RFC 3768, 3 = RFC 9568)", ErrVersion, v)
}

// Validate reports whether a can be put on the wire: a known version and type, a VRID in
// 1..255, an interval the version can encode, for version 2 an auth type it knows and IPv4
// addresses, for version 3 no authentication and addresses of one family, and at most 255
// addresses. Priority 0 is valid: it is how a Master resigns (section 6.4.3). Validate does not
// need the pseudo-header; [Advertisement.Marshal] checks it against the addresses.
func (a *Advertisement) Validate() error {
	if a.Version != 2 && a.Version != 3 {
		return errVersion(a.Version)
	}
	if a.Type != TypeAdvertisement {
		return fmt.Errorf("%w: %d", ErrType, a.Type)
	}
	if a.VRID == 0 {
		return fmt.Errorf("%w: 0", ErrVRID)
	}
	if len(a.Addresses) > 255 {
		return fmt.Errorf("%w: %d addresses, the count field holds at most 255", ErrAddress, len(a.Addresses))
	}
	if a.Version == 3 {
		return a.validateV3()
	}
	if _, err := v2IntervalByte(a.Interval); err != nil {
		return err
	}
	if a.AuthType > AuthAH {
		return fmt.Errorf("%w: %d", ErrAuthType, uint8(a.AuthType))
	}
	for i, ip := range a.Addresses {
		if !ip.Is4() {
			return fmt.Errorf("%w: address %d (%v) is not IPv4", ErrAddress, i, ip)
		}
	}
	return nil
}

// validateV3 is Validate's version 3 part.
func (a *Advertisement) validateV3() error {
	if _, err := v3IntervalField(a.Interval); err != nil {
		return err
	}
	if a.AuthType != AuthNone || a.AuthData != ([AuthDataLen]byte{}) {
		return fmt.Errorf("%w: auth type %v: version 3 has no authentication (RFC 9568 section 9)", ErrAuthType, a.AuthType)
	}
	for i, ip := range a.Addresses {
		switch {
		case !ip.IsValid() || ip.Is4In6():
			return fmt.Errorf("%w: address %d (%v) is neither plain IPv4 nor IPv6", ErrAddress, i, ip)
		case ip.Is4() != a.Addresses[0].Is4():
			return fmt.Errorf("%w: address %d (%v) is not of the family of address 0 (%v)", ErrAddress, i, ip, a.Addresses[0])
		}
	}
	return nil
}

// v2IntervalByte encodes d as the version 2 Adver Int field: whole seconds, 1..255 (section
// 5.3.7; the RFC's default is 1).
func v2IntervalByte(d time.Duration) (uint8, error) {
	if d%time.Second != 0 || d < time.Second || d > 255*time.Second {
		return 0, fmt.Errorf("%w: %v (version 2 carries whole seconds 1..255)", ErrInterval, d)
	}
	return uint8(d / time.Second), nil
}

// v3IntervalField encodes d as the version 3 Max Adver Int: 12 bits of centiseconds, 1..4095
// (RFC 9568 section 5.2.7; the default is 100, one second). 0 is refused: a Backup that
// adopted it would have a Master_Down_Interval of nothing but Skew_Time.
func v3IntervalField(d time.Duration) (uint16, error) {
	if d%MinIntervalV3 != 0 || d < MinIntervalV3 || d > MaxIntervalV3 {
		return 0, fmt.Errorf("%w: %v (version 3 carries centiseconds, 10ms..40.95s)", ErrInterval, d)
	}
	return uint16(d / MinIntervalV3), nil
}

// Len is the length of a's encoding in bytes, for the layout its Version selects. It is only
// meaningful for an advertisement that passes Validate.
func (a *Advertisement) Len() int {
	if a.Version == 3 {
		size := 4
		if len(a.Addresses) > 0 && a.Addresses[0].Is6() {
			size = 16
		}
		return v3HeaderLen + size*len(a.Addresses)
	}
	return v2MinLen + 4*len(a.Addresses)
}

// MarshalBinary validates a version 2 advertisement and encodes it, computing the checksum
// (RFC 3768 section 5.3.8). a.Checksum is ignored and left unchanged. A version 3
// advertisement fails with [ErrPseudoHeader]: use [Advertisement.Marshal].
func (a *Advertisement) MarshalBinary() ([]byte, error) {
	return a.Marshal(PseudoHeader{})
}

// Marshal validates a and encodes it, computing the checksum: for version 3 over the
// pseudo-header ph and the message (RFC 9568 section 5.2.8), which needs a valid ph of the
// addresses' family; for version 2 over the message alone, ph being ignored. a.Checksum is
// ignored and left unchanged.
func (a *Advertisement) Marshal(ph PseudoHeader) ([]byte, error) {
	if err := a.Validate(); err != nil {
		return nil, err
	}
	if a.Version == 2 {
		b := make([]byte, a.Len())
		a.marshalV2(b)
		return b, nil
	}
	src, dst, is6, err := ph.family()
	if err != nil {
		return nil, err
	}
	if len(a.Addresses) > 0 && a.Addresses[0].Is6() != is6 {
		return nil, fmt.Errorf("%w: IPv%d addresses in an advert from %v", ErrAddress, ipVersion(!is6), src)
	}
	b := make([]byte, a.Len())
	a.marshalV3(b)
	binary.BigEndian.PutUint16(b[6:8], ^fold(addWords(ph.sum(src, dst, len(b)), b)))
	return b, nil
}

// ipVersion is 6 or 4.
func ipVersion(is6 bool) int {
	if is6 {
		return 6
	}
	return 4
}

// marshalV2 writes the RFC 3768 section 5.1 layout into b, which is exactly a.Len() long:
//
//	 0                   1                   2                   3
//	 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|Version| Type  | Virtual Rtr ID|   Priority    | Count IP Addrs|
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|   Auth Type   |   Adver Int   |          Checksum             |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                         IP Address (1)                        |
//	|                            ...                                |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                     Authentication Data (1)                   |
//	|                     Authentication Data (2)                   |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
func (a *Advertisement) marshalV2(b []byte) {
	interval, _ := v2IntervalByte(a.Interval) // checked by Validate
	a.putCommon(b)
	b[4] = uint8(a.AuthType)
	b[5] = interval
	off := v2HeaderLen + a.putAddresses(b[v2HeaderLen:])
	copy(b[off:], a.AuthData[:])
	binary.BigEndian.PutUint16(b[6:8], Checksum(b))
}

// putCommon writes the fields both versions share (version/type, VRID, priority, count) and a
// zero checksum.
func (a *Advertisement) putCommon(b []byte) {
	b[0] = a.Version<<4 | a.Type&0x0f
	b[1] = a.VRID
	b[2] = a.Priority
	b[3] = uint8(len(a.Addresses))
	b[6], b[7] = 0, 0
}

// putAddresses writes the addresses at the start of b, 4 bytes for an IPv4 address and 16 for
// an IPv6 one, and returns the bytes written.
func (a *Advertisement) putAddresses(b []byte) int {
	off := 0
	for _, ip := range a.Addresses {
		if ip.Is4() {
			v4 := ip.As4()
			off += copy(b[off:], v4[:])
		} else {
			v6 := ip.As16()
			off += copy(b[off:], v6[:])
		}
	}
	return off
}

// marshalV3 writes the RFC 9568 section 5.1 layout into b, which is exactly a.Len() long, with
// a zero checksum (the caller adds it, with the pseudo-header):
//
//	 0                   1                   2                   3
//	 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|Version| Type  | Virtual Rtr ID|   Priority    |Count IPvX Addr|
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|(rsvd) |     Max Adver Int     |          Checksum             |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|            IPvX Address(es): 4 bytes each for IPv4,           |
//	|                  16 bytes each for IPv6                       |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
func (a *Advertisement) marshalV3(b []byte) {
	interval, _ := v3IntervalField(a.Interval) // checked by Validate
	a.putCommon(b)
	binary.BigEndian.PutUint16(b[4:6], interval) // the reserved bits are zero: interval < 4096
	a.putAddresses(b[v3HeaderLen:])
}

// UnmarshalBinary decodes a version 2 VRRP message (the IP payload) into a, replacing all its
// fields; see [Advertisement.Unmarshal]. A version 3 message fails with [ErrPseudoHeader]:
// its checksum cannot be verified without the IP addresses.
func (a *Advertisement) UnmarshalBinary(b []byte) error {
	return a.Unmarshal(b, PseudoHeader{})
}

// Unmarshal decodes a VRRP message (the IP payload) into a, replacing all its fields. ph is
// the source and destination of the IP packet that carried it: version 3 needs them for the
// checksum and takes the address family from them (RFC 9568 section 5.2.8); version 2 ignores
// them. Unmarshal checks what the message alone can tell (RFC 3768 and RFC 9568 section 7.1):
// version, type, complete length, checksum, a VRID and interval in range and, for version 2, a
// known auth type. The 4 reserved bits of version 3 are ignored, as section 5.2.7 says.
// Checks against local configuration (VRID, auth data, interval, addresses) belong to
// [Machine.Receive].
//
// The decoded advertisement shares no memory with b. On error a is left unchanged.
func (a *Advertisement) Unmarshal(b []byte, ph PseudoHeader) error {
	if len(b) < 1 {
		return fmt.Errorf("%w: empty", ErrTooShort)
	}
	switch v := b[0] >> 4; v {
	case 2:
		return a.unmarshalV2(b)
	case 3:
		return a.unmarshalV3(b, ph)
	default:
		return errVersion(v)
	}
}

// checkLength checks b's type and that it is exactly header+size*count+trailer bytes long,
// count being its address count.
func checkLength(b []byte, version, header, size, trailer int) error {
	if len(b) < header+trailer {
		return fmt.Errorf("%w: %d bytes, a version %d advertisement has at least %d", ErrTooShort, len(b), version, header+trailer)
	}
	if t := b[0] & 0x0f; t != TypeAdvertisement {
		return fmt.Errorf("%w: %d", ErrType, t)
	}
	count := int(b[3])
	want := header + size*count + trailer
	if len(b) < want {
		return fmt.Errorf("%w: %d bytes, %d addresses need %d", ErrTooShort, len(b), count, want)
	}
	if len(b) > want {
		return fmt.Errorf("%w: %d bytes, %d addresses need exactly %d", ErrLength, len(b), count, want)
	}
	return nil
}

func (a *Advertisement) unmarshalV2(b []byte) error {
	if err := checkLength(b, 2, v2HeaderLen, 4, AuthDataLen); err != nil {
		return err
	}
	if !ChecksumValid(b) {
		return fmt.Errorf("%w: field %#04x, computed %#04x", ErrChecksum,
			binary.BigEndian.Uint16(b[6:8]), checksumWithout(0, b, 6))
	}
	if b[1] == 0 {
		return fmt.Errorf("%w: 0", ErrVRID)
	}
	if b[4] > uint8(AuthAH) {
		return fmt.Errorf("%w: %d", ErrAuthType, b[4])
	}
	if b[5] == 0 {
		return fmt.Errorf("%w: 0 s", ErrInterval)
	}
	count := int(b[3])
	out := Advertisement{
		Version:   2,
		Type:      TypeAdvertisement,
		VRID:      b[1],
		Priority:  b[2],
		AuthType:  AuthType(b[4]),
		Interval:  time.Duration(b[5]) * time.Second,
		Checksum:  binary.BigEndian.Uint16(b[6:8]),
		Addresses: readAddresses(b[v2HeaderLen:], count, 4),
	}
	copy(out.AuthData[:], b[v2HeaderLen+4*count:])
	*a = out
	return nil
}

func (a *Advertisement) unmarshalV3(b []byte, ph PseudoHeader) error {
	src, dst, is6, err := ph.family()
	if err != nil {
		return err
	}
	size := 4
	if is6 {
		size = 16
	}
	if err := checkLength(b, 3, v3HeaderLen, size, 0); err != nil {
		return err
	}
	pseudo := ph.sum(src, dst, len(b))
	if fold(addWords(pseudo, b)) != 0xffff {
		return fmt.Errorf("%w: field %#04x, computed %#04x with source %v and destination %v", ErrChecksum,
			binary.BigEndian.Uint16(b[6:8]), checksumWithout(pseudo, b, 6), src, dst)
	}
	if b[1] == 0 {
		return fmt.Errorf("%w: 0", ErrVRID)
	}
	interval := binary.BigEndian.Uint16(b[4:6]) & 0x0fff
	if interval == 0 {
		return fmt.Errorf("%w: 0 cs", ErrInterval)
	}
	*a = Advertisement{
		Version:   3,
		Type:      TypeAdvertisement,
		VRID:      b[1],
		Priority:  b[2],
		Interval:  time.Duration(interval) * MinIntervalV3,
		Checksum:  binary.BigEndian.Uint16(b[6:8]),
		Addresses: readAddresses(b[v3HeaderLen:], int(b[3]), size),
	}
	return nil
}

// readAddresses copies count addresses of size bytes (4 or 16) from the start of b; nil for
// none.
func readAddresses(b []byte, count, size int) []netip.Addr {
	if count == 0 {
		return nil
	}
	out := make([]netip.Addr, count)
	for i := range out {
		if size == 4 {
			out[i] = netip.AddrFrom4([4]byte(b[4*i : 4*i+4]))
		} else {
			out[i] = netip.AddrFrom16([16]byte(b[16*i : 16*i+16]))
		}
	}
	return out
}

// Checksum returns the Internet checksum (RFC 1071) of b: the 16-bit one's complement of the
// one's complement sum of b taken as big-endian 16-bit words, an odd final byte padded with
// zero. For a VRRPv2 message the checksum field must be zero while it is computed, and no
// pseudo-header is included (RFC 3768 section 5.3.8); for version 3 see
// [PseudoHeader.Checksum].
func Checksum(b []byte) uint16 {
	return ^fold(addWords(0, b))
}

// ChecksumValid reports whether b, including its checksum field, sums to 0xffff in one's
// complement arithmetic, which is how a receiver verifies an Internet checksum. Both encodings
// of a zero checksum (0x0000 and 0xffff) verify.
func ChecksumValid(b []byte) bool {
	return fold(addWords(0, b)) == 0xffff
}

// checksumWithout is the checksum b should carry at off, computed with that field as zero and
// start (a pseudo-header's sum, or 0) added.
func checksumWithout(start uint64, b []byte, off int) uint16 {
	field := uint64(binary.BigEndian.Uint16(b[off : off+2]))
	// Subtracting in one's complement is adding the complement.
	return ^fold(addWords(start, b) + (^field & 0xffff))
}

// addWords adds b, taken as big-endian 16-bit words (an odd final byte padded with zero), to
// the running one's complement sum s, unfolded.
func addWords(s uint64, b []byte) uint64 {
	for len(b) >= 2 {
		s += uint64(binary.BigEndian.Uint16(b))
		b = b[2:]
	}
	if len(b) == 1 {
		s += uint64(b[0]) << 8
	}
	return s
}

// fold folds an unfolded one's complement sum into 16 bits.
func fold(s uint64) uint16 {
	for s > 0xffff {
		s = s&0xffff + s>>16
	}
	return uint16(s)
}

package vrrp

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"time"
)

// Sentinel errors returned (wrapped, with the detail) by [Advertisement.UnmarshalBinary],
// [Advertisement.MarshalBinary] and [Advertisement.Validate]. Test with errors.Is.
var (
	// ErrTooShort: the message is shorter than its fixed header, or than the length its
	// address count implies (RFC 3768 section 7.1, "contains the complete VRRP packet").
	ErrTooShort = errors.New("vrrp: message too short")
	// ErrLength: the message is longer than its address count implies. The checksum of such a
	// message is ambiguous (which bytes does it cover?), so it is refused rather than trimmed.
	ErrLength = errors.New("vrrp: message length does not match address count")
	// ErrVersion: a version other than 2. Version 3 (RFC 5798) is recognised but not yet
	// implemented.
	ErrVersion = errors.New("vrrp: unsupported version")
	// ErrType: a type other than 1 (ADVERTISEMENT), RFC 3768 section 5.3.2.
	ErrType = errors.New("vrrp: unknown packet type")
	// ErrChecksum: the one's complement sum of the message does not verify (section 5.3.8).
	ErrChecksum = errors.New("vrrp: bad checksum")
	// ErrInterval: an advertisement interval that is not a whole number of seconds in 1..255.
	ErrInterval = errors.New("vrrp: invalid advertisement interval")
	// ErrAuthType: an authentication type outside 0..2 (section 5.3.6 and RFC 2338).
	ErrAuthType = errors.New("vrrp: unknown authentication type")
	// ErrVRID: virtual router ID 0; section 5.3.3 allows 1..255.
	ErrVRID = errors.New("vrrp: invalid virtual router ID")
	// ErrAddress: an address that is not a plain IPv4 address, or more than 255 of them.
	ErrAddress = errors.New("vrrp: invalid address list")
)

// Protocol constants of RFC 3768 section 5.
const (
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

// Advertisement is a VRRP ADVERTISEMENT (RFC 3768 section 5.1). The zero value is not valid;
// fill Version 2, Type 1, a VRID, an Interval and the addresses.
//
// Version selects the wire layout. For version 2 the interval travels as whole seconds
// (1..255) and the message ends with 8 bytes of authentication data; version 3 (RFC 5798) is
// reserved for later and currently fails with [ErrVersion].
type Advertisement struct {
	Version  uint8 // 2 = RFC 3768; 3 (RFC 5798) to be added later without a rewrite
	Type     uint8 // 1 = ADVERTISEMENT
	VRID     uint8
	Priority uint8    // 255 = address owner, 1..254 backups, 0 = the Master resigns
	AuthType AuthType // v2 only
	Interval time.Duration
	// Checksum is the value read by UnmarshalBinary. MarshalBinary ignores it and writes the
	// checksum of the bytes it produces.
	Checksum  uint16
	Addresses []netip.Addr
	AuthData  [AuthDataLen]byte // v2 only
}

// errVersion3 reports a VRRPv3 message: recognised, not implemented.
func errVersion3() error {
	return fmt.Errorf("%w: version 3 (RFC 5798) is not implemented yet", ErrVersion)
}

// Validate reports whether a can be put on the wire: a known version and type, a VRID in
// 1..255, an interval the version can encode, an auth type it knows and at most 255 IPv4
// addresses. Priority 0 is valid: it is how a Master resigns (section 6.4.3).
func (a *Advertisement) Validate() error {
	switch a.Version {
	case 2:
	case 3:
		return errVersion3()
	default:
		return fmt.Errorf("%w: %d", ErrVersion, a.Version)
	}
	if a.Type != TypeAdvertisement {
		return fmt.Errorf("%w: %d", ErrType, a.Type)
	}
	if a.VRID == 0 {
		return fmt.Errorf("%w: 0", ErrVRID)
	}
	if _, err := v2IntervalByte(a.Interval); err != nil {
		return err
	}
	if a.AuthType > AuthAH {
		return fmt.Errorf("%w: %d", ErrAuthType, uint8(a.AuthType))
	}
	if len(a.Addresses) > 255 {
		return fmt.Errorf("%w: %d addresses, the count field holds at most 255", ErrAddress, len(a.Addresses))
	}
	for i, ip := range a.Addresses {
		if !ip.Is4() {
			return fmt.Errorf("%w: address %d (%v) is not IPv4", ErrAddress, i, ip)
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

// Len is the length of a's encoding in bytes, for the layout its Version selects. It is only
// meaningful for an advertisement that passes Validate.
func (a *Advertisement) Len() int {
	return v2MinLen + 4*len(a.Addresses)
}

// MarshalBinary validates a and encodes it, computing the checksum (section 5.3.8). a.Checksum
// is ignored and left unchanged.
func (a *Advertisement) MarshalBinary() ([]byte, error) {
	if err := a.Validate(); err != nil {
		return nil, err
	}
	b := make([]byte, a.Len())
	a.marshalV2(b)
	return b, nil
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
	b[0] = a.Version<<4 | a.Type&0x0f
	b[1] = a.VRID
	b[2] = a.Priority
	b[3] = uint8(len(a.Addresses))
	b[4] = uint8(a.AuthType)
	b[5] = interval
	b[6], b[7] = 0, 0
	off := v2HeaderLen
	for _, ip := range a.Addresses {
		v4 := ip.As4()
		off += copy(b[off:], v4[:])
	}
	copy(b[off:], a.AuthData[:])
	binary.BigEndian.PutUint16(b[6:8], Checksum(b))
}

// UnmarshalBinary decodes a VRRP message (the IP payload) into a, replacing all its fields.
// It checks what the message alone can tell (RFC 3768 section 7.1): version, type, complete
// length, checksum, a VRID and interval in range and a known auth type. Checks against local
// configuration (VRID, auth data, interval, addresses) belong to [Machine.Receive].
//
// The decoded advertisement shares no memory with b. On error a is left unchanged.
func (a *Advertisement) UnmarshalBinary(b []byte) error {
	if len(b) < 1 {
		return fmt.Errorf("%w: empty", ErrTooShort)
	}
	switch v := b[0] >> 4; v {
	case 2:
		return a.unmarshalV2(b)
	case 3:
		return errVersion3()
	default:
		return fmt.Errorf("%w: %d", ErrVersion, v)
	}
}

func (a *Advertisement) unmarshalV2(b []byte) error {
	if len(b) < v2MinLen {
		return fmt.Errorf("%w: %d bytes, a version 2 advertisement has at least %d", ErrTooShort, len(b), v2MinLen)
	}
	if t := b[0] & 0x0f; t != TypeAdvertisement {
		return fmt.Errorf("%w: %d", ErrType, t)
	}
	count := int(b[3])
	want := v2MinLen + 4*count
	if len(b) < want {
		return fmt.Errorf("%w: %d bytes, %d addresses need %d", ErrTooShort, len(b), count, want)
	}
	if len(b) > want {
		return fmt.Errorf("%w: %d bytes, %d addresses need exactly %d", ErrLength, len(b), count, want)
	}
	if !ChecksumValid(b) {
		return fmt.Errorf("%w: field %#04x, computed %#04x", ErrChecksum,
			binary.BigEndian.Uint16(b[6:8]), checksumWithout(b, 6))
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

	out := Advertisement{
		Version:  2,
		Type:     TypeAdvertisement,
		VRID:     b[1],
		Priority: b[2],
		AuthType: AuthType(b[4]),
		Interval: time.Duration(b[5]) * time.Second,
		Checksum: binary.BigEndian.Uint16(b[6:8]),
	}
	if count > 0 {
		out.Addresses = make([]netip.Addr, count)
		for i := range out.Addresses {
			off := v2HeaderLen + 4*i
			out.Addresses[i] = netip.AddrFrom4([4]byte(b[off : off+4]))
		}
	}
	copy(out.AuthData[:], b[v2HeaderLen+4*count:])
	*a = out
	return nil
}

// Checksum returns the Internet checksum (RFC 1071) of b: the 16-bit one's complement of the
// one's complement sum of b taken as big-endian 16-bit words, an odd final byte padded with
// zero. For a VRRPv2 message the checksum field must be zero while it is computed, and no
// pseudo-header is included (RFC 3768 section 5.3.8; VRRPv3 adds one, a classic interop bug).
func Checksum(b []byte) uint16 {
	return ^onesSum(b)
}

// ChecksumValid reports whether b, including its checksum field, sums to 0xffff in one's
// complement arithmetic, which is how a receiver verifies an Internet checksum. Both encodings
// of a zero checksum (0x0000 and 0xffff) verify.
func ChecksumValid(b []byte) bool {
	return onesSum(b) == 0xffff
}

// checksumWithout is the checksum b should carry at off, computed with that field as zero.
func checksumWithout(b []byte, off int) uint16 {
	field := uint32(binary.BigEndian.Uint16(b[off : off+2]))
	// Subtracting in one's complement is adding the complement.
	s := uint32(onesSum(b)) + (^field & 0xffff)
	for s > 0xffff {
		s = s&0xffff + s>>16
	}
	return ^uint16(s)
}

// onesSum is the folded 16-bit one's complement sum of b.
func onesSum(b []byte) uint16 {
	var s uint64
	for len(b) >= 2 {
		s += uint64(binary.BigEndian.Uint16(b))
		b = b[2:]
	}
	if len(b) == 1 {
		s += uint64(b[0]) << 8
	}
	for s > 0xffff {
		s = s&0xffff + s>>16
	}
	return uint16(s)
}

package appliance

import (
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/gosnmp/gosnmp"
)

// PEN is the IANA Private Enterprise Number of the product MIB (docs/mib/REDUNDANTD-MIB.mib),
// of the syslog structured-data ID (RFC 5424 section 6.3.2) and of the default SNMPv3 engine
// ID (RFC 3411). 99999 is a PLACEHOLDER, not a registered PEN: no number has been assigned
// to redundantd, and 99999 is not known to be free (IANA may assign it to someone else).
// Until the project registers one, an operator whose managers load other vendors' MIBs
// replaces it with their own organisation's PEN, here and in the MIB's MODULE-IDENTITY, and
// rebuilds; TestMIBTranslate checks that the two agree (docs/notifications.md).
const PEN = "99999"

// OIDs of the notifications (SNMPv2-MIB, RFC 6527 VRRPv3-MIB, REDUNDANTD-MIB).
const (
	oidSysUpTime   = "1.3.6.1.2.1.1.3.0"
	oidSnmpTrapOID = "1.3.6.1.6.3.1.1.4.1.0"

	oidVRRPv3NewMaster         = "1.3.6.1.2.1.207.0.1"
	oidVRRPv3ProtoError        = "1.3.6.1.2.1.207.0.2"
	oidVRRPv3MasterIPAddr      = "1.3.6.1.2.1.207.1.1.1.1.3" // vrrpv3OperationsMasterIpAddr
	oidVRRPv3NewMasterReason   = "1.3.6.1.2.1.207.1.2.5.1.2" // vrrpv3StatisticsNewMasterReason
	oidVRRPv3ProtoErrReason    = "1.3.6.1.2.1.207.1.2.5.1.6" // vrrpv3StatisticsProtoErrReason
	oidRedundantd              = "1.3.6.1.4.1." + PEN
	oidRedundantdEvent         = oidRedundantd + ".0.1"
	oidRedundantdEventObjects  = oidRedundantd + ".1"
	oidRedundantdEventSeq      = oidRedundantdEventObjects + ".1.0"
	oidRedundantdEventPriority = oidRedundantdEventObjects + ".2.0"
	oidRedundantdEventApp      = oidRedundantdEventObjects + ".3.0"
	oidRedundantdEventName     = oidRedundantdEventObjects + ".4.0"
	oidRedundantdEventDescr    = oidRedundantdEventObjects + ".5.0"
	oidRedundantdEventTime     = oidRedundantdEventObjects + ".6.0"
	oidRedundantdNodeName      = oidRedundantdEventObjects + ".7.0"
)

// engineTimeEpoch is the origin of the snmpEngineTime this sender reports. A trap sender is
// the authoritative engine (RFC 3414 section 2.3) and the receiver refuses a trap whose
// boots/time go back; without persistent state across restarts, boots stays 1 and time
// counts seconds from this fixed epoch, so it only grows (until 2088).
var engineTimeEpoch = time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)

// DefaultEngineID is the engine ID used when engine_id is not configured: the RFC 3411
// SnmpEngineID text format, 0x80 | PEN, format 4, then the host name (at most 27 bytes).
func DefaultEngineID(host string) []byte {
	pen, _ := strconv.ParseUint(PEN, 10, 32)
	id := binary.BigEndian.AppendUint32(nil, 0x80000000|uint32(pen))
	id = append(id, 4)
	if len(host) > 27 {
		host = host[:27]
	}
	if host == "" {
		host = "redundantd"
	}
	return append(id, host...)
}

// adminString makes s an SnmpAdminString: UTF-8 (invalid bytes become U+FFFD), at most
// 255 octets, cut at a character boundary.
func adminString(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if len(s) <= 255 {
		return s
	}
	s = s[:255]
	for !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s
}

// dateAndTime encodes t as SNMPv2-TC's DateAndTime in UTC (11 octets).
func dateAndTime(t time.Time) []byte {
	t = t.UTC()
	b := binary.BigEndian.AppendUint16(nil, uint16(t.Year()))
	return append(b, byte(t.Month()), byte(t.Day()), byte(t.Hour()), byte(t.Minute()), byte(t.Second()),
		byte(t.Nanosecond()/100_000_000), '+', 0, 0)
}

// snmpTraps builds the trap varbind lists for m (without sysUpTime, added by the sender):
// the product's redundantdEvent always, and before it vrrpv3NewMaster or vrrpv3ProtoError
// when m carries VRRP details. It is pure.
func snmpTraps(m message, host string) [][]gosnmp.SnmpPDU {
	var traps [][]gosnmp.SnmpPDU
	if v := m.VRRP; v != nil {
		// Row index of the vrrpv3 tables: ifIndex, VRID, InetAddressType (1 ipv4, 2 ipv6).
		addrType := 1
		if v.MasterAddr.Is6() && !v.MasterAddr.Is4In6() {
			addrType = 2
		}
		idx := fmt.Sprintf(".%d.%d.%d", v.IfIndex, v.VRID, addrType)
		if v.ProtoError != 0 {
			traps = append(traps, []gosnmp.SnmpPDU{
				{Name: oidSnmpTrapOID, Type: gosnmp.ObjectIdentifier, Value: oidVRRPv3ProtoError},
				{Name: oidVRRPv3ProtoErrReason + idx, Type: gosnmp.Integer, Value: v.ProtoError},
			})
		} else {
			addr := v.MasterAddr.Unmap().AsSlice()
			traps = append(traps, []gosnmp.SnmpPDU{
				{Name: oidSnmpTrapOID, Type: gosnmp.ObjectIdentifier, Value: oidVRRPv3NewMaster},
				{Name: oidVRRPv3MasterIPAddr + idx, Type: gosnmp.OctetString, Value: addr},
				{Name: oidVRRPv3NewMasterReason + idx, Type: gosnmp.Integer, Value: v.Reason},
			})
		}
	}
	e := m.Event
	traps = append(traps, []gosnmp.SnmpPDU{
		{Name: oidSnmpTrapOID, Type: gosnmp.ObjectIdentifier, Value: oidRedundantdEvent},
		{Name: oidRedundantdEventSeq, Type: gosnmp.Gauge32, Value: uint(uint32(e.Seq))},
		{Name: oidRedundantdEventPriority, Type: gosnmp.Integer, Value: int(e.Priority)},
		{Name: oidRedundantdEventApp, Type: gosnmp.OctetString, Value: adminString(e.Application)},
		{Name: oidRedundantdEventName, Type: gosnmp.OctetString, Value: adminString(e.Name)},
		{Name: oidRedundantdEventDescr, Type: gosnmp.OctetString, Value: adminString(e.Description)},
		{Name: oidRedundantdEventTime, Type: gosnmp.OctetString, Value: dateAndTime(e.Time)},
		{Name: oidRedundantdNodeName, Type: gosnmp.OctetString, Value: adminString(host)},
	})
	return traps
}

// snmpSender sends SNMPv2-Trap PDUs (unconfirmed: a manager that is down loses them, which
// an ICMP error may report on a later send).
type snmpSender struct {
	cfg     *SNMPNotifyConfig
	host    string
	port    uint16
	target  string
	started time.Time
	usm     *gosnmp.UsmSecurityParameters // nil for v2c

	mu sync.Mutex
}

var (
	snmpAuthMap = map[string]gosnmp.SnmpV3AuthProtocol{"SHA": gosnmp.SHA, "SHA-256": gosnmp.SHA256, "SHA-512": gosnmp.SHA512}
	snmpPrivMap = map[string]gosnmp.SnmpV3PrivProtocol{"AES": gosnmp.AES, "AES-256": gosnmp.AES256}
)

func newSNMPSender(c *SNMPNotifyConfig, host string, i int) (*snmpSender, error) {
	h, p, err := net.SplitHostPort(c.Address)
	if err != nil {
		return nil, &ConfigError{Key: fmt.Sprintf("notify[%d].address", i), Problem: err.Error()}
	}
	port, _ := strconv.ParseUint(p, 10, 16)
	s := &snmpSender{cfg: c, host: host, target: h, port: uint16(port), started: time.Now()}
	if c.Version != SNMPv3 {
		return s, nil
	}
	auth, err := readSecret(fmt.Sprintf("notify[%d].auth_password_file", i), c.AuthPasswordFile)
	if err != nil {
		return nil, err
	}
	priv, err := readSecret(fmt.Sprintf("notify[%d].priv_password_file", i), c.PrivPasswordFile)
	if err != nil {
		return nil, err
	}
	if len(auth) < 8 || len(priv) < 8 {
		return nil, &ConfigError{Key: fmt.Sprintf("notify[%d].auth_password_file", i), Problem: "USM passwords are at least 8 characters (RFC 3414 section 11.2)"}
	}
	id := c.EngineID
	if id == nil {
		id = DefaultEngineID(host)
	}
	s.usm = &gosnmp.UsmSecurityParameters{
		UserName:                 c.User,
		AuthoritativeEngineID:    string(id),
		AuthenticationProtocol:   snmpAuthMap[c.AuthProtocol],
		AuthenticationPassphrase: auth,
		PrivacyProtocol:          snmpPrivMap[c.PrivProtocol],
		PrivacyPassphrase:        priv,
	}
	return s, nil
}

func (s *snmpSender) send(ctx context.Context, m message) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	timeout := DefaultNotifySendTimeout
	if dl, ok := ctx.Deadline(); ok {
		timeout = time.Until(dl)
	}
	g := &gosnmp.GoSNMP{
		Target: s.target, Port: s.port, Transport: "udp", Context: ctx,
		Timeout: timeout, Retries: 0, MaxOids: gosnmp.MaxOids,
	}
	if s.usm == nil {
		g.Version, g.Community = gosnmp.Version2c, s.cfg.Community
	} else {
		usm := &gosnmp.UsmSecurityParameters{
			UserName:                 s.usm.UserName,
			AuthoritativeEngineID:    s.usm.AuthoritativeEngineID,
			AuthoritativeEngineBoots: 1,
			AuthoritativeEngineTime:  uint32(now.Sub(engineTimeEpoch) / time.Second),
			AuthenticationProtocol:   s.usm.AuthenticationProtocol,
			AuthenticationPassphrase: s.usm.AuthenticationPassphrase,
			PrivacyProtocol:          s.usm.PrivacyProtocol,
			PrivacyPassphrase:        s.usm.PrivacyPassphrase,
		}
		g.Version, g.SecurityModel, g.MsgFlags, g.SecurityParameters = gosnmp.Version3, gosnmp.UserSecurityModel, gosnmp.AuthPriv, usm
	}
	if err := g.Connect(); err != nil {
		return fmt.Errorf("%w: snmp %s: %w", ErrNotify, s.cfg.Address, err)
	}
	defer g.Conn.Close()
	uptime := gosnmp.SnmpPDU{Name: oidSysUpTime, Type: gosnmp.TimeTicks, Value: uint32(now.Sub(s.started) / (10 * time.Millisecond))}
	for _, vars := range snmpTraps(m, s.host) {
		if _, err := g.SendTrap(gosnmp.SnmpTrap{Variables: append([]gosnmp.SnmpPDU{uptime}, vars...)}); err != nil {
			return fmt.Errorf("%w: snmp %s: %w", ErrNotify, s.cfg.Address, err)
		}
	}
	return nil
}

func (s *snmpSender) close() error { return nil }

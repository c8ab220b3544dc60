# Print every VRRP frame (IPv4 protocol / IPv6 next header 112) seen on an interface:
# python3 capture.py IFNAME SECONDS (as root, in the namespace). See capture-v3.sh.
import socket, sys, time, struct
# capture VRRP (IP proto / next header 112) frames on one interface for N seconds; print
# src dst ttl/hlim and the VRRP payload in hex, one line each.
ifname, secs = sys.argv[1], float(sys.argv[2])
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
s.bind((ifname, 0))
s.settimeout(0.2)
end = time.time() + secs
while time.time() < end:
    try:
        f = s.recv(4096)
    except socket.timeout:
        continue
    et = struct.unpack('!H', f[12:14])[0]
    ip = f[14:]
    if et == 0x0800 and ip[9] == 112:
        ihl = (ip[0] & 15) * 4
        tot = struct.unpack('!H', ip[2:4])[0]
        print("v4", socket.inet_ntop(socket.AF_INET, ip[12:16]), socket.inet_ntop(socket.AF_INET, ip[16:20]), "ttl", ip[8], "mac", f[6:12].hex(), ip[ihl:tot].hex(), flush=True)
    elif et == 0x86dd and ip[6] == 112:
        pl = struct.unpack('!H', ip[4:6])[0]
        print("v6", socket.inet_ntop(socket.AF_INET6, ip[8:24]), socket.inet_ntop(socket.AF_INET6, ip[24:40]), "hlim", ip[7], "mac", f[6:12].hex(), ip[40:40+pl].hex(), flush=True)

#!/bin/sh
# Capture the VRRPv3 adverts of keepalived (vrrp_version 3, IPv4 and IPv6) as root, in two
# throw-away namespaces joined by a veth pair: ./capture-v3.sh v3-run1.conf > cap.txt
# Each output line: family, IP source, destination, TTL/hop limit, source MAC, VRRP payload.
set -e
conf=$(realpath "$1"); dir=$(mktemp -d)
A=vrrpcap3-a B=vrrpcap3-b
ip netns add $A; ip netns add $B
trap 'ip netns del $A; ip netns del $B; rm -rf $dir' EXIT
ip link add vcap-a netns $A type veth peer name vcap-b netns $B
ip -n $A addr add 192.0.2.1/24 dev vcap-a; ip -n $B addr add 192.0.2.2/24 dev vcap-b
ip -n $A link set vcap-a up; ip -n $B link set vcap-b up; ip -n $A link set lo up
sleep 2 # link-local addresses leave DAD
ip netns exec $B python3 "$(dirname "$0")/capture.py" vcap-b 9 &
cap=$!
sleep 0.5
ip netns exec $A /usr/sbin/keepalived -n -l -D --vrrp -f "$conf" -p $dir/k.pid -r $dir/v.pid >$dir/log 2>&1 &
k=$!
sleep 6
kill -TERM $k # keepalived resigns: the priority-0 adverts
wait $k || true
wait $cap

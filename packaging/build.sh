#!/bin/bash
# Builds the Debian package from the repository with dpkg-deb on a staged tree:
#   packaging/build.sh [-o DIR] [-v VERSION]
# writes DIR/redundantd_<version>_<arch>.deb (DIR defaults to dist/ at the repository root)
# and prints its path. The version defaults to 0.1.0~git<commit date>.<commit> (or the
# latest v* tag when HEAD is tagged). Needs go and dpkg-deb; runs as any user.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
out=$root/dist
version=
while getopts o:v: opt; do
	case $opt in
	o) out=$OPTARG ;;
	v) version=$OPTARG ;;
	*) echo "usage: $0 [-o DIR] [-v VERSION]" >&2; exit 2 ;;
	esac
done

cd "$root"
if [ -z "$version" ]; then
	if tag=$(git describe --tags --exact-match --match 'v[0-9]*' 2>/dev/null); then
		version=${tag#v}
	elif commit=$(git log -1 --format=%cd.%h --date=format:%Y%m%d 2>/dev/null); then
		version=0.1.0~git$commit
	else
		version=0.1.0
	fi
fi
arch=$(go env GOARCH)
# The date of the commit (or now) stamps the files and the changelog, so two builds of one
# commit are the same bytes.
epoch=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}
export SOURCE_DATE_EPOCH=$epoch

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
pkg=$stage/redundantd
mkdir -p "$pkg/DEBIAN"

# Static, stripped (-s -w), without local paths (-trimpath). Not -buildmode=pie: a static
# PIE looks like a shared library to lintian (shared-library-lacks-prerequisites).
# nethttpomithttp2: without net/http's HTTP/2, which the daemon never speaks (the API and the
# webhooks are HTTP/1.1 only: appliance.http1Only); 0.5 MB less binary and memory.
# testlab.BuildRelease builds the daemon the same way for the lab's benchmarks.
export CGO_ENABLED=0
ldflags="-s -w"
tags=nethttpomithttp2
go build -trimpath -tags="$tags" -ldflags="$ldflags" -o "$stage/redundantd.bin" ./cmd/redundantd
go build -trimpath -tags="$tags" -ldflags="$ldflags" -o "$stage/redundantctl.bin" ./cmd/redundantctl

install -D -m 0755 "$stage/redundantd.bin" "$pkg/usr/sbin/redundantd"
install -D -m 0755 "$stage/redundantctl.bin" "$pkg/usr/bin/redundantctl"
install -D -m 0644 "$here/redundantd.service" "$pkg/lib/systemd/system/redundantd.service"
install -D -m 0644 "$here/debian/lintian-overrides" "$pkg/usr/share/lintian/overrides/redundantd"
install -D -m 0644 "$here/completion/redundantctl" "$pkg/usr/share/bash-completion/completions/redundantctl"
# The product MIB where net-snmp looks by default (keepalived puts VRRPv3-MIB there too). The
# IETF modules it imports (docs/mib/ietf) are not shipped: Debian keeps them out of main.
install -D -m 0644 docs/mib/REDUNDANTD-MIB.mib "$pkg/usr/share/snmp/mibs/REDUNDANTD-MIB.txt"

# The shipped configuration is the reference file with a warning on top.
install -d -m 0755 "$pkg/etc/redundantd"
{
	cat <<'HEAD'
# /etc/redundantd/redundantd.toml: the configuration of redundantd(8).
#
# This is the reference configuration: its addresses are examples (192.0.2.0/24 is
# TEST-NET-1). Set node.interface, node.address, redundancy.group_id, redundancy.virtual_ips
# and redundancy.peer (and [sync], [berofos], [[service]] as needed), check the file with
#   redundantd -check
# and only then start the daemon: systemctl enable --now redundantd
#
HEAD
	cat docs/redundantd.toml
} >"$pkg/etc/redundantd/redundantd.toml"
chmod 0644 "$pkg/etc/redundantd/redundantd.toml"

doc=$pkg/usr/share/doc/redundantd
install -D -m 0644 "$here/debian/copyright" "$doc/copyright"
install -D -m 0644 "$here/debian/sync.conf" "$doc/examples/sync.conf"
install -D -m 0644 docs/redundantd.toml "$doc/examples/redundantd.toml"
for f in docs/configuration.md docs/packaging.md README.md; do
	if [ -f "$f" ]; then
		install -m 0644 "$f" "$doc/"
	fi
done
date=$(date -u -d "@$epoch" -R)
printf 'redundantd (%s) unstable; urgency=medium\n\n  * Package built from the repository (packaging/build.sh).\n\n -- redundantd developers <redundantd@example.org>  %s\n' \
	"$version" "$date" | gzip -9n >"$doc/changelog.gz"

install -D -m 0644 "$here/man/redundantd.8" "$pkg/usr/share/man/man8/redundantd.8"
install -D -m 0644 "$here/man/redundantctl.1" "$pkg/usr/share/man/man1/redundantctl.1"
gzip -9n "$pkg/usr/share/man/man8/redundantd.8" "$pkg/usr/share/man/man1/redundantctl.1"

for s in postinst prerm postrm; do
	install -m 0755 "$here/debian/$s" "$pkg/DEBIAN/$s"
done
echo /etc/redundantd/redundantd.toml >"$pkg/DEBIAN/conffiles"

size=$(du -sk --exclude=DEBIAN "$pkg" | cut -f1)
cat >"$pkg/DEBIAN/control" <<CONTROL
Package: redundantd
Version: $version
Architecture: $arch
Maintainer: redundantd developers <redundantd@example.org>
Installed-Size: $size
Section: net
Priority: optional
Homepage: https://github.com/redundantd/redundantd
Description: redundancy daemon for a pair of PBX nodes
 redundantd elects the Master of two PBX nodes with a native VRRP engine
 (RFC 3768), moves the virtual IP addresses the phones and trunks use,
 switches the ISDN lines with beroNet berofos relay boxes, starts and stops
 the PBX services and replicates configuration and voicemail from the Master
 to the Backup. The Backup runs in active or passive mode, and an operator can
 swap Master and Backup for maintenance.
 .
 This package holds the daemon, its systemd unit (installed, not enabled),
 the operator command line redundantctl with bash completion, and a commented
 configuration in /etc/redundantd.
CONTROL

(cd "$pkg" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | LC_ALL=C sort -z | xargs -0 md5sum) >"$pkg/DEBIAN/md5sums"
find "$pkg" -exec touch -h -d "@$epoch" {} +

mkdir -p "$out"
deb=$out/redundantd_${version}_${arch}.deb
dpkg-deb --root-owner-group -Zxz --build "$pkg" "$deb" >/dev/null
echo "$deb"

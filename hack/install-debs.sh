#!/usr/bin/env bash
# Installs Debian packages that are missing, without starting their services: the tests and the
# local cluster start their own processes on their own ports and state dirs.
#
#   hack/install-debs.sh redis       redis-server, redis-tools
#   hack/install-debs.sh cluster     containerd, runc, CNI plugins, iptables and friends
#   hack/install-debs.sh PKG...      any packages
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

pkgs=()
for a in "$@"; do
	case "$a" in
	redis) pkgs+=(redis-server redis-tools) ;;
	cluster) pkgs+=(containerd runc containernetworking-plugins iptables nftables conntrack ipset socat iproute2 util-linux kmod procps openssl) ;;
	*) pkgs+=("$a") ;;
	esac
done
[ ${#pkgs[@]} -gt 0 ] || die "usage: $0 redis|cluster|PKG..."

missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

[ "$(id -u)" -eq 0 ] || die "installing ${missing[*]} needs root (apt-get)"
log "installing Debian packages: ${missing[*]}"

# Keep package scripts from starting daemons (redis on :6379, containerd on the system socket).
policy=/usr/sbin/policy-rc.d
own_policy=false
if [ ! -e "$policy" ]; then
	printf '#!/bin/sh\nexit 101\n' >"$policy"
	chmod +x "$policy"
	own_policy=true
fi
cleanup() { if $own_policy; then rm -f "$policy"; fi; }
trap cleanup EXIT

export DEBIAN_FRONTEND=noninteractive
install() { apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null; }
if ! install; then
	apt-get update -q >/dev/null
	install || die "apt-get install ${missing[*]} failed"
fi

#!/usr/bin/env bash
# install-tool.sh NAME PACKAGE VERSION: go install PACKAGE@VERSION into the version-keyed cache
# ($TRACESTREAM_CACHE/tools/NAME-VERSION/NAME) unless it is already there, and print its path.
# A warm call only checks that the file exists.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

[ $# -eq 3 ] || die "usage: install-tool.sh NAME PACKAGE VERSION"
name="$1" pkg="$2" version="$3"
dir="$TRACESTREAM_CACHE/tools/$name-$version"

install() {
	[ -x "$dir/$name" ] && return 0
	log "installing $name $version ($pkg)"
	local tmp
	tmp="$(mktemp -d "$TRACESTREAM_CACHE/tools/.$name.XXXXXX")"
	GOBIN="$tmp" GOFLAGS="-mod=mod" GOWORK=off CGO_ENABLED=0 go install "$pkg@$version" \
		|| { rm -rf "$tmp"; die "go install $pkg@$version failed"; }
	[ -x "$tmp/$name" ] || { rm -rf "$tmp"; die "go install $pkg@$version did not produce $name"; }
	rm -rf "$dir"
	mv "$tmp" "$dir"
}

if [ ! -x "$dir/$name" ]; then
	mkdir -p "$TRACESTREAM_CACHE/tools"
	with_lock "$TRACESTREAM_CACHE/tools/.$name.lock" install
fi
echo "$dir/$name"

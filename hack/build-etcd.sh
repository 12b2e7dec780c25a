#!/usr/bin/env bash
# Builds etcd from the go.etcd.io/etcd/server/v3 Go module (Debian's etcd is too old for recent
# kube-apiservers). Prints the directory holding the etcd binary.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ETCD_DIR="$TRACESTREAM_CACHE/etcd/$ETCD_VERSION"
if [ -x "$ETCD_DIR/bin/etcd" ]; then
	echo "$ETCD_DIR/bin"
	exit 0
fi

build() {
	[ -x "$ETCD_DIR/bin/etcd" ] && return 0
	log "building etcd $ETCD_VERSION from Go modules (about a minute; cached afterwards)"
	rm -rf "$ETCD_DIR/mod"
	mkdir -p "$ETCD_DIR/mod" "$ETCD_DIR/bin"
	cd "$ETCD_DIR/mod"
	go_build_env
	printf 'module tracestream.local/etcdbuild\n\ngo 1.26\n' >go.mod
	go get "go.etcd.io/etcd/server/v3@$ETCD_VERSION" || die "resolving etcd $ETCD_VERSION failed"
	go build -trimpath -ldflags "-s -w" -o "$ETCD_DIR/bin/etcd.tmp" go.etcd.io/etcd/server/v3 ||
		die "building etcd $ETCD_VERSION failed"
	mv "$ETCD_DIR/bin/etcd.tmp" "$ETCD_DIR/bin/etcd"
}

with_lock "$TRACESTREAM_CACHE/etcd/.lock" build
echo "$ETCD_DIR/bin"

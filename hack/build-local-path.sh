#!/usr/bin/env bash
# Builds rancher's local-path-provisioner (the local cluster's storage provisioner) from its Go
# module, github.com/rancher/local-path-provisioner, in a throwaway module like hack/build-etcd.sh.
# Prints the directory holding the local-path-provisioner binary.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

LOCAL_PATH_DIR="$TRACESTREAM_CACHE/local-path/$LOCAL_PATH_VERSION"
if [ -x "$LOCAL_PATH_DIR/bin/local-path-provisioner" ]; then
	echo "$LOCAL_PATH_DIR/bin"
	exit 0
fi

build() {
	[ -x "$LOCAL_PATH_DIR/bin/local-path-provisioner" ] && return 0
	log "building local-path-provisioner $LOCAL_PATH_VERSION from Go modules (a few minutes; cached afterwards)"
	rm -rf "$LOCAL_PATH_DIR/mod"
	mkdir -p "$LOCAL_PATH_DIR/mod" "$LOCAL_PATH_DIR/bin"
	cd "$LOCAL_PATH_DIR/mod"
	go_build_env
	printf 'module tracestream.local/localpathbuild\n\ngo 1.26\n' >go.mod
	go get "github.com/rancher/local-path-provisioner@$LOCAL_PATH_VERSION" ||
		die "resolving local-path-provisioner $LOCAL_PATH_VERSION failed"
	# The module zip's vendor/ is not used: as a dependency, its packages come from the module cache.
	go build -trimpath -ldflags "-s -w -X main.VERSION=$LOCAL_PATH_VERSION" \
		-o "$LOCAL_PATH_DIR/bin/local-path-provisioner.tmp" github.com/rancher/local-path-provisioner ||
		die "building local-path-provisioner $LOCAL_PATH_VERSION failed"
	mv "$LOCAL_PATH_DIR/bin/local-path-provisioner.tmp" "$LOCAL_PATH_DIR/bin/local-path-provisioner"
}

with_lock "$TRACESTREAM_CACHE/local-path/.lock" build
echo "$LOCAL_PATH_DIR/bin"

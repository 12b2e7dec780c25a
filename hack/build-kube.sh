#!/usr/bin/env bash
# Builds Kubernetes components (kube-apiserver, kubelet, ...) from the k8s.io/kubernetes Go module.
#
#   hack/build-kube.sh kube-apiserver kubelet ...   -> prints the bin dir holding them
#
# k8s.io/kubernetes cannot be `go install`ed: its go.mod replaces the staging modules with
# ./staging/src paths that are not in the module zip. A throwaway module in the cache requires
# k8s.io/kubernetes and pins every staging module to its published v0.Y.Z instead.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

[ $# -gt 0 ] || die "usage: $0 COMPONENT..."

KUBE_DIR="$TRACESTREAM_CACHE/kube/$KUBE_VERSION"
BIN_DIR="$KUBE_DIR/bin"
MOD_DIR="$KUBE_DIR/mod"

missing=()
for c in "$@"; do
	[ -x "$BIN_DIR/$c" ] || missing+=("$c")
done
if [ ${#missing[@]} -eq 0 ]; then
	echo "$BIN_DIR"
	exit 0
fi

prepare_module() {
	[ -f "$MOD_DIR/.ready" ] && return 0
	log "preparing build module for k8s.io/kubernetes $KUBE_VERSION"
	rm -rf "$MOD_DIR"
	mkdir -p "$MOD_DIR"
	# Ask for the zip explicitly first: the proxy has served a release's .mod while refusing its .zip.
	local info
	info=$(go mod download -json "k8s.io/kubernetes@$KUBE_VERSION") ||
		die "cannot download k8s.io/kubernetes@$KUBE_VERSION from the module proxy"
	local src
	src=$(printf '%s' "$info" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
	[ -f "$src/go.mod" ] || die "k8s.io/kubernetes@$KUBE_VERSION has no go.mod at $src"
	local minor="${KUBE_VERSION#v1.}"
	local staging_version="v0.${minor}"
	{
		echo "module tracestream.local/kubebuild"
		echo
		sed -n 's/^go \(.*\)$/go \1/p' "$src/go.mod" | head -1
		echo
		echo "require k8s.io/kubernetes $KUBE_VERSION"
		echo
		echo "replace ("
		sed -n 's|^[[:space:]]*\(k8s.io/[^ ]*\) => ./staging/src/.*$|\t\1 => \1 '"$staging_version"'|p' "$src/go.mod"
		echo ")"
	} >"$MOD_DIR/go.mod"
	printf 'package kubebuild\n' >"$MOD_DIR/doc.go"
	(cd "$MOD_DIR" && go_build_env && go get "k8s.io/kubernetes@$KUBE_VERSION") ||
		die "resolving k8s.io/kubernetes@$KUBE_VERSION dependencies failed"
	touch "$MOD_DIR/.ready"
}

build_one() {
	local c="$1"
	[ -x "$BIN_DIR/$c" ] && return 0
	local minor="${KUBE_VERSION#v1.}"; minor="${minor%%.*}"
	local now; now=$(date -u +%Y-%m-%dT%H:%M:%SZ)
	local ld=""
	for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
		ld+=" -X $p.gitVersion=$KUBE_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$minor"
		ld+=" -X $p.gitTreeState=clean -X $p.buildDate=$now"
	done
	log "building $c $KUBE_VERSION (cold builds take minutes; cached afterwards)"
	local start=$SECONDS
	(cd "$MOD_DIR" && go_build_env && go build -trimpath -ldflags "-s -w$ld" -o "$BIN_DIR/$c.tmp" "k8s.io/kubernetes/cmd/$c") ||
		die "building $c $KUBE_VERSION failed"
	mv "$BIN_DIR/$c.tmp" "$BIN_DIR/$c"
	log "built $c in $((SECONDS - start))s"
}

build_all() {
	mkdir -p "$BIN_DIR"
	prepare_module
	for c in "${missing[@]}"; do
		build_one "$c"
	done
}

with_lock "$TRACESTREAM_CACHE/kube/.lock" build_all
echo "$BIN_DIR"

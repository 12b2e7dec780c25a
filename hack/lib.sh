# shellcheck shell=bash
# Shared settings for the hack/ scripts. Sourced, never executed.
#
# Everything built or downloaded here is cached by version under TRACESTREAM_CACHE (outside the
# repository), so a second run finds it and returns at once.

set -euo pipefail

KUBE_VERSION="${KUBE_VERSION:-v1.37.1}"
ETCD_VERSION="${ETCD_VERSION:-v3.7.3}"
# rancher's local-path-provisioner: the local cluster's storage (hack/build-local-path.sh).
LOCAL_PATH_VERSION="${LOCAL_PATH_VERSION:-v0.0.30}"
TRACESTREAM_CACHE="${TRACESTREAM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/tracestream}"

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# with_lock FILE CMD...: run CMD holding an exclusive lock, so that two callers (make test and
# make cluster-up in parallel shells) never build the same thing at once.
with_lock() {
	local lock="$1"; shift
	mkdir -p "$(dirname "$lock")"
	exec {fd}>"$lock"
	flock "$fd"
	"$@"
	local rc=$?
	exec {fd}>&-
	return "$rc"
}

# go_build_env: the environment every from-module build uses. Static binaries, no workspace,
# modules resolved from the proxy rather than a vendor dir.
go_build_env() {
	export GOFLAGS="-mod=mod -buildvcs=false" GOWORK=off CGO_ENABLED=0
}

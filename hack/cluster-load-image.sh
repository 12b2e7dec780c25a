#!/usr/bin/env bash
# Imports an image tarball (from `make image`) into the local cluster's containerd, where pods
# with imagePullPolicy IfNotPresent or Never find it without a registry.
source "$(dirname "${BASH_SOURCE[0]}")/cluster-lib.sh"

tar="${1:?usage: $0 IMAGE.tar}"
[ -f "$tar" ] || die "no image tarball at $tar: run make image"
sock="$CLUSTER_DIR/containerd/containerd.sock"
[ -S "$sock" ] || die "the local cluster is not up (no $sock): run make cluster-up"
ctr --address "$sock" -n k8s.io images import "$tar" >/dev/null
log "imported $tar into the local cluster"

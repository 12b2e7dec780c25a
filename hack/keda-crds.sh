#!/usr/bin/env bash
# keda-crds.sh: print a directory holding KEDA's CRDs (ScaledObject, TriggerAuthentication, ...) at
# a pinned version, from the Go module proxy (the module cache keeps it by version), so that tests
# can dry-run the autoscaling examples (examples/autoscaling) against a real API server.
#
# v2.20.2 is the newest KEDA whose go.mod this Go toolchain accepts: v2.21 requires go 1.27.4, and
# `go mod download` refuses to extract a module that needs a newer Go than GOTOOLCHAIN=local runs.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

KEDA_VERSION="${KEDA_VERSION:-v2.20.2}"
mod="github.com/kedacore/keda/v2"
dir="$(GOFLAGS=-mod=mod GOWORK=off go mod download -json "$mod@$KEDA_VERSION" \
	| sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
crds="$dir/config/crd/bases"
[ -f "$crds/keda.sh_scaledobjects.yaml" ] || die "no ScaledObject CRD in $mod@$KEDA_VERSION"
echo "$crds"

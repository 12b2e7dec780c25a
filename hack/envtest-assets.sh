#!/usr/bin/env bash
# Prints a directory holding kube-apiserver, etcd and kubectl for controller-runtime's envtest
# (use it as KUBEBUILDER_ASSETS). Builds them from Go modules the first time; afterwards it only
# checks that the cached binaries are there, which takes milliseconds.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ASSETS="$TRACESTREAM_CACHE/envtest/$KUBE_VERSION-etcd-$ETCD_VERSION"
if [ -x "$ASSETS/kube-apiserver" ] && [ -x "$ASSETS/etcd" ] && [ -x "$ASSETS/kubectl" ]; then
	echo "$ASSETS"
	exit 0
fi

kube_bin=$("$REPO_ROOT/hack/build-kube.sh" kube-apiserver kubectl)
etcd_bin=$("$REPO_ROOT/hack/build-etcd.sh")
mkdir -p "$ASSETS"
ln -sf "$kube_bin/kube-apiserver" "$ASSETS/kube-apiserver"
ln -sf "$kube_bin/kubectl" "$ASSETS/kubectl"
ln -sf "$etcd_bin/etcd" "$ASSETS/etcd"
echo "$ASSETS"

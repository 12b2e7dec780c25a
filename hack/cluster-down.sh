#!/usr/bin/env bash
# Tears down the cluster hack/cluster-up.sh started and leaves the host as it found it: every
# process stopped by PID, every mount under the cluster dir unmounted, pod network namespaces,
# the bridge and its veths deleted, Kubernetes/CNI iptables chains removed, sysctls restored,
# kubepods cgroups removed and the cluster dir deleted, with the storage volumes in it. Safe to
# run when nothing is up.
source "$(dirname "${BASH_SOURCE[0]}")/cluster-lib.sh"

[ "$(id -u)" -eq 0 ] || die "tearing down the local cluster needs root"

# await_exit TENTHS PID...: succeeds once every PID has exited, fails after TENTHS tenths of a second.
await_exit() {
	local tenths="$1" p i left
	shift
	for ((i = 0; i < tenths; i++)); do
		left=0
		for p in "$@"; do kill -0 "$p" 2>/dev/null && left=1; done
		[ $left -eq 0 ] && return 0
		sleep 0.1
	done
	return 1
}

# The demo's redis-server (hack/demo.sh) listens on the cluster bridge's address and on
# loopback: it is part of what the local cluster set up on this host, so it goes with it, even
# when the cluster itself is already gone (a later make demo would find its port taken). Only a
# process that still is redis-server is stopped: a pid may have been reused since.
stop_demo_redis() {
	local pidfile="$DEMO_REDIS_PIDFILE" pid
	[ -f "$pidfile" ] || return 0
	pid="$(cat "$pidfile")"
	if [ -n "$pid" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = redis-server ]; then
		log "stopping the demo's redis-server (pid $pid)"
		kill -TERM "$pid" 2>/dev/null || true
		await_exit 50 "$pid" || true
		kill -KILL "$pid" 2>/dev/null || true
	fi
	rm -f "$pidfile"
}
stop_demo_redis

[ -d "$CLUSTER_DIR" ] || { log "no cluster at $CLUSTER_DIR"; exit 0; }
set +e # keep going: one failed step must not leave the rest behind

# stop_pids PID...: SIGTERM, wait up to 10 s, then SIGKILL and wait up to 5 s.
stop_pids() {
	local pids=("$@")
	[ ${#pids[@]} -gt 0 ] || return 0
	kill -TERM "${pids[@]}" 2>/dev/null
	await_exit 100 "${pids[@]}" && return 0
	kill -KILL "${pids[@]}" 2>/dev/null
	await_exit 50 "${pids[@]}" && return 0
	log "processes still alive after SIGKILL: ${pids[*]}"
}

stop_component() {
	local pid
	pid=$(pid_of "$1") || return 0
	if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
		log "stopping $1 (pid $pid)"
		stop_pids "$pid"
	fi
	rm -f "$CLUSTER_DIR/pids/$1"
}

# Processes in the pods' cgroups, and the containerd shims serving this cluster's containerd.
pod_pids() {
	find /sys/fs/cgroup/*/kubepods -name cgroup.procs -exec cat {} + 2>/dev/null | sort -un
}
shim_pids() {
	local p
	for p in /proc/[0-9]*; do
		tr '\0' ' ' <"$p/cmdline" 2>/dev/null | grep -q "containerd-shim.*$CLUSTER_DIR/containerd" && echo "${p#/proc/}"
	done
}

# 1. The kubelet first, so that nothing restarts pods while they are being stopped.
stop_component kubelet
# 2. Pods and shims.
mapfile -t pids < <( (pod_pids; shim_pids) | sort -un)
if [ ${#pids[@]} -gt 0 ]; then
	log "stopping ${#pids[@]} pod and shim processes"
	stop_pids "${pids[@]}"
fi
# 3. The rest of the components in reverse start order.
for ((i = ${#COMPONENTS[@]} - 1; i >= 0; i--)); do
	stop_component "${COMPONENTS[$i]}"
done

# 4. Mounts: anything under the cluster dir or containerd's fixed runtime dir, deepest first.
mapfile -t mounts < <(awk -v d="$CLUSTER_DIR" '$5 == d || index($5, d "/") == 1 || index($5, "/run/containerd/") == 1 {print $5}' /proc/self/mountinfo | awk '{print length, $0}' | sort -rn | cut -d' ' -f2-)
for m in "${mounts[@]}"; do umount "$m" 2>/dev/null || umount -l "$m"; done

# 5. Pod network namespaces created while the cluster ran (containerd names them cni-*), then the bridge.
for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep '^cni-'); do
	grep -qx "$ns" "$CLUSTER_DIR/netns.before" 2>/dev/null || ip netns delete "$ns"
done
for v in $(ip -o link show master "$BRIDGE" 2>/dev/null | awk -F': ' '{print $2}' | cut -d@ -f1); do
	ip link delete "$v" 2>/dev/null
done
ip link show "$BRIDGE" >/dev/null 2>&1 && ip link delete "$BRIDGE"

# 6. iptables: drop every chain with our prefixes and every rule that jumps to one, per table.
clean_tables() {
	local save="$1" restore="$2" t
	command -v "$save" >/dev/null || return 0
	for t in filter nat mangle raw; do
		"$save" -t "$t" 2>/dev/null | grep -qE "^:($CHAIN_PREFIXES)|-[jg] ($CHAIN_PREFIXES)" || continue
		"$save" -t "$t" | grep -vE "^:($CHAIN_PREFIXES)|^-A ($CHAIN_PREFIXES)|-[jg] ($CHAIN_PREFIXES)" | "$restore" -w -T "$t" ||
			log "could not restore $save table $t"
	done
}
clean_tables iptables-save iptables-restore
clean_tables ip6tables-save ip6tables-restore
# iptables-nft creates whole nftables tables (ip filter, ip6 nat, ...) on first use; remove the
# ones that did not exist before cluster-up, now that our chains are gone from them.
if [ -f "$CLUSTER_DIR/nft-tables.before" ] && command -v nft >/dev/null; then
	nft list tables | while read -r _ family name; do
		grep -qx "table $family $name" "$CLUSTER_DIR/nft-tables.before" || nft delete table "$family" "$name"
	done
fi

# 7. Sysctls as they were before cluster-up.
if [ -f "$CLUSTER_DIR/sysctls.saved" ]; then
	while IFS='=' read -r k v; do
		[ "$(sysctl -n "$k" 2>/dev/null)" = "$v" ] || sysctl -q -w "$k=$v" >/dev/null
	done <"$CLUSTER_DIR/sysctls.saved"
fi

# 8. The kubelet's cgroups (empty now), deepest first.
for root in /sys/fs/cgroup/*/kubepods; do
	[ -d "$root" ] && find "$root" -depth -type d -exec rmdir {} + 2>/dev/null
done

# 9. Host paths that did not exist before, then the cluster dir itself. It holds the volumes the
# local-path-provisioner made (one directory per claim, unmounted in step 4): every claim's data
# goes with the cluster, whatever its reclaim policy said.
if [ -f "$CLUSTER_DIR/host-paths.created" ]; then
	while read -r p; do [ -n "$p" ] && rm -rf "$p"; done <"$CLUSTER_DIR/host-paths.created"
fi
if [ -d "$LOCAL_PATH_VOLUMES" ]; then
	n=$(find "$LOCAL_PATH_VOLUMES" -mindepth 1 -maxdepth 1 | wc -l)
	[ "$n" -eq 0 ] || log "removing $n local-path volumes"
fi
rm -rf "$CLUSTER_DIR"
log "cluster down"

#!/usr/bin/env bash
# Set up the Kubernetes test tier: apt packages, then etcd, kube-apiserver,
# kube-controller-manager and kubectl built from their Go modules (cached under
# $RAYSCALE_CACHE, so a second run takes about a second).
#
# Idempotent and non-interactive. Usage:  eval "$(scripts/setup-k8s.sh)"
# stdout carries ONLY `export` lines; every log line goes to stderr. On failure it exits
# non-zero and prints a lone `false` on stdout, so that `eval "$(scripts/setup-k8s.sh)"` under
# `set -e` fails too (eval of an empty string would succeed and hide the failure).
set -euo pipefail
cd "$(dirname "$0")/.."

export RAYSCALE_CACHE=${RAYSCALE_CACHE:-$HOME/.cache/rayscale}
export DEBIAN_FRONTEND=noninteractive

log() { printf '[setup-k8s] %s\n' "$*" >&2; }
fail() {
    printf '[setup-k8s] FAILED: %s\n' "$*" >&2
    echo false
    exit 1
}
trap 'fail "command failed at line $LINENO (see the log above)"' ERR

started_ns=$(date +%s%N)

# --- apt packages: `time` gives /usr/bin/time -v for the build's wall time and peak RSS -------
APT_PACKAGES=(time ca-certificates)
missing=()
for pkg in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" \
        || missing+=("$pkg")
done
if ((${#missing[@]})); then
    [[ $(id -u) == 0 ]] || fail "need root to apt-get install ${missing[*]}"
    log "apt-get install ${missing[*]}"
    if ! apt-get install -y -q --no-install-recommends "${missing[@]}" </dev/null >&2; then
        log "apt-get update (package lists missing or stale)"
        apt-get update -q </dev/null >&2
        apt-get install -y -q --no-install-recommends "${missing[@]}" </dev/null >&2
    fi
fi

# The build scripts find Go themselves (RAYSCALE_GO, else `go` on PATH, else /usr/local/go/bin/go)
# and need it only when a binary is not cached yet. Debian's golang is too old for Kubernetes
# 1.35 (go >= 1.25), so a machine without the image's Go fails there, with Go's own message.

# --- builds, serialised by a lock so parallel runs do not build twice --------------------------
mkdir -p "$RAYSCALE_CACHE"
exec 9>"$RAYSCALE_CACHE/.setup-k8s.lock"
if ! flock -n 9; then
    log "another setup-k8s is running; waiting for its lock"
    flock 9
fi
etcd=$(scripts/build-etcd.sh)
apiserver=$(scripts/build-kube-apiserver.sh)
controller_manager=$(scripts/build-kube-component.sh kube-controller-manager)
kubectl=$(scripts/build-kube-component.sh kubectl)
flock -u 9

[[ -x $etcd && -x $apiserver && -x $controller_manager && -x $kubectl ]] \
    || fail "build scripts returned no binaries ('$etcd', '$apiserver', '$controller_manager', '$kubectl')"
log "etcd: $("$etcd" --version | head -1)"
log "kube-apiserver: $("$apiserver" --version)"
log "kube-controller-manager: $("$controller_manager" --version)"
log "kubectl: $("$kubectl" version --client | head -1)"
elapsed_ms=$((($(date +%s%N) - started_ns) / 1000000))
log "setup took $((elapsed_ms / 1000)).$(printf '%03d' $((elapsed_ms % 1000)))s"

printf 'export RAYSCALE_ETCD=%q\n' "$etcd"
printf 'export RAYSCALE_KUBE_APISERVER=%q\n' "$apiserver"
printf 'export RAYSCALE_KUBE_CONTROLLER_MANAGER=%q\n' "$controller_manager"
printf 'export RAYSCALE_KUBECTL=%q\n' "$kubectl"

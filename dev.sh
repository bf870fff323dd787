#!/usr/bin/env bash
# The project's two entry points (see README):
#   ./dev.sh demo   set up, then run KubeRay's detached-actor autoscaling walkthrough as a demo, locally
#   ./dev.sh test   set up everything (virtualenv, apt packages, kube-apiserver build), then run
#                   lint, types and every test tier
#   ./dev.sh dev-cluster up|down|env
#                   the same set-up, then a one-machine Kubernetes with the operator
# Extra arguments after `test` go to pytest, e.g. `./dev.sh test -m unit`.
set -euo pipefail
cd "$(dirname "$0")"
ROOT=$PWD
VENV=${RAYSCALE_VENV:-$ROOT/.venv}
export RAYSCALE_CACHE=${RAYSCALE_CACHE:-$HOME/.cache/rayscale}

log() { printf '[dev] %s\n' "$*" >&2; }

setup_venv() {
    local stamp=$VENV/.rayscale-installed
    if [[ ! -x $VENV/bin/python ]]; then
        log "creating virtualenv $VENV"
        python3 -m venv "$VENV"
    fi
    if [[ ! -f $stamp || pyproject.toml -nt $stamp ]]; then
        log "installing rayscale and its dependencies into $VENV"
        "$VENV/bin/pip" install -q --upgrade pip
        "$VENV/bin/pip" install -q -e ".[dev]"
        touch "$stamp"
    fi
}

setup_k8s() {
    # Installs etcd and builds kube-apiserver (cached under $RAYSCALE_CACHE); prints the
    # environment the Kubernetes tier needs.
    local exports
    exports=$(scripts/setup-k8s.sh)
    eval "$exports"
}

cmd=${1:-}
shift || true
case $cmd in
    demo)
        setup_venv
        exec "$VENV/bin/rayscale" demo "$@"
        ;;
    test)
        setup_venv
        setup_k8s
        log "ruff"
        "$VENV/bin/ruff" check src tests
        log "mypy"
        "$VENV/bin/mypy"
        log "lint-imports (layers)"
        "$VENV/bin/lint-imports"
        log "pytest (all tiers)"
        exec "$VENV/bin/pytest" "$@"
        ;;
    dev-cluster)
        setup_venv
        setup_k8s
        exec "$VENV/bin/rayscale" dev-cluster "$@"
        ;;
    *)
        echo "usage: ./dev.sh demo | ./dev.sh test [pytest args] | ./dev.sh dev-cluster up|down|env" >&2
        exit 2
        ;;
esac

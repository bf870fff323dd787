# Shared by build-etcd.sh and build-kube-component.sh (sourced, not run). The sourcing script
# sets TOOL (log prefix), BIN (cached binary), CACHE, WORK and VERSION, and defines
# inner_build; `main_build "$@"` then runs it once, timed, unless BIN is cached.

log() { printf '[build-%s] %s\n' "$TOOL" "$*" >&2; }
die() { printf '[build-%s] ERROR: %s\n' "$TOOL" "$*" >&2; exit 1; }

find_go() {
    if [[ -n ${RAYSCALE_GO:-} ]]; then echo "$RAYSCALE_GO"; return; fi
    if command -v go >/dev/null 2>&1; then command -v go; return; fi
    if [[ -x /usr/local/go/bin/go ]]; then echo /usr/local/go/bin/go; return; fi
    die "no Go toolchain found (need a Go at least as new as the module's go.mod asks); set RAYSCALE_GO"
}

# Runs inner_build under /usr/bin/time (a re-exec of the calling script with --inner) and
# prints the build's wall time and peak memory; prints BIN on stdout.
main_build() {
    if [[ ${1:-} == --inner ]]; then
        inner_build
        exit 0
    fi
    if [[ -x $BIN ]]; then
        log "cached: $BIN"
        echo "$BIN"
        exit 0
    fi
    [[ -x /usr/bin/time ]] || die "/usr/bin/time missing: apt-get install time (scripts/setup-k8s.sh does)"
    mkdir -p "$CACHE/build"
    local timing wall rss_kb
    timing=$(mktemp "$CACHE/build/time.XXXXXX")
    log "building $TOOL $VERSION into $(dirname "$BIN")"
    if ! /usr/bin/time -v -o "$timing" bash "$0" --inner; then
        grep -E 'Elapsed|Maximum resident' "$timing" >&2 || true
        die "$TOOL $VERSION build failed (work dir: $WORK)"
    fi
    wall=$(sed -n 's/^[[:space:]]*Elapsed (wall clock) time (h:mm:ss or m:ss): //p' "$timing")
    rss_kb=$(sed -n 's/^[[:space:]]*Maximum resident set size (kbytes): //p' "$timing")
    rm -f "$timing"
    log "built $BIN"
    log "build wall time: $wall; peak RSS (largest single process): $((rss_kb / 1024)) MiB"
    echo "$BIN"
}

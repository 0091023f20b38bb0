#!/usr/bin/env bash
# The benchmark harness (issue #7): the edge, nginx and Varnish in front of one origin on
# loopback, same workloads, interleaved runs, one table. Not run in CI.
#
#   benches/run.sh [--duration 5] [--rounds 3] [--only h1-1k,keys,js-gzip] [--baseline REV]
#                  [--json out.json] [--nice N] [--keep]
#
# Builds the edge and the bench programs (--release), installs nginx, Varnish, hitch, wrk and
# h2load from Debian packages when missing (needs root then), and runs benches/harness.py,
# which writes its configs under a temporary directory and stops everything it started.
# --baseline REV also builds the edge of git revision REV and runs it as "edge before".
set -euo pipefail
cd "$(dirname "$0")/.."

baseline=""
args=()
while [ $# -gt 0 ]; do
    case "$1" in
        --baseline) baseline="$2"; shift 2 ;;
        *) args+=("$1"); shift ;;
    esac
done

if [ "$(nproc)" -lt 2 ]; then
    echo "benches/run.sh: needs 2 cores (servers on one, the load generator on the other)" >&2
    exit 1
fi

missing=()
for pair in nginx:nginx varnishd:varnish hitch:hitch wrk:wrk h2load:nghttp2-client \
            openssl:openssl taskset:util-linux python3:python3; do
    command -v "${pair%%:*}" >/dev/null 2>&1 || missing+=("${pair#*:}")
done
if [ "${#missing[@]}" -gt 0 ]; then
    echo "installing: ${missing[*]}" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
# Copy the binaries: a concurrent build in a shared target directory must not swap them mid-run.
bins="$(mktemp -d -t edge-bench-bin-XXXXXX)"
harness=""
baseline_tree=""
cleanup() {
    if [ -n "$harness" ] && kill -0 "$harness" 2>/dev/null; then
        kill -TERM "$harness" 2>/dev/null || true
        wait "$harness" 2>/dev/null || true
    fi
    if [ -n "$baseline_tree" ]; then
        git worktree remove --force "$baseline_tree" >/dev/null 2>&1 || true
    fi
    rm -rf "$bins"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [ -n "$baseline" ]; then
    baseline_tree="$(mktemp -d -t edge-bench-baseline-XXXXXX)"
    git worktree add --detach "$baseline_tree" "$baseline" >&2
    # Its own target directory: cargo tells fresh from stale by file times, and two trees
    # built in one directory can each be taken for the other's build.
    (cd "$baseline_tree" && CARGO_TARGET_DIR="$CARGO_TARGET_DIR/bench-baseline" \
        cargo build --release --bin edge >&2)
    cp "$CARGO_TARGET_DIR/bench-baseline/release/edge" "$bins/edge-baseline"
    args+=(--baseline-bin "$bins/edge-baseline")
fi

# Two builds: `--bin edge` would also filter edge-bench's binaries out of a combined one.
cargo build --release --locked -p edge --bin edge >&2
cargo build --release --locked -p edge-bench >&2
cp "$CARGO_TARGET_DIR/release/edge" "$CARGO_TARGET_DIR/release/bench-origin" \
   "$CARGO_TARGET_DIR/release/bench-ceiling" "$bins/"

python3 benches/harness.py --bin-dir "$bins" "${args[@]}" &
harness=$!
wait "$harness"

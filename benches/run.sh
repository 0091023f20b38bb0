#!/usr/bin/env bash
# The benchmark harness (issue #7): the edge, nginx and Varnish in front of one origin on
# loopback, same workloads, interleaved runs, one table. Not run in CI.
#
#   benches/run.sh [--duration 5] [--rounds 3] [--only h1-1k,keys] [--json out.json] [--keep]
#
# Builds the edge and the bench programs (--release), installs nginx, Varnish, hitch, wrk and
# h2load from Debian packages when missing (needs root then), and runs benches/harness.py,
# which writes its configs under a temporary directory and stops everything it started.
set -euo pipefail
cd "$(dirname "$0")/.."

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

cargo build --release --locked -p edge --bin edge -p edge-bench >&2
target="${CARGO_TARGET_DIR:-target}"
# Copy the binaries: a concurrent build in a shared target directory must not swap them mid-run.
bins="$(mktemp -d -t edge-bench-bin-XXXXXX)"
cp "$target/release/edge" "$target/release/bench-origin" "$target/release/bench-ceiling" "$bins/"

harness=""
cleanup() {
    if [ -n "$harness" ] && kill -0 "$harness" 2>/dev/null; then
        kill -TERM "$harness" 2>/dev/null || true
        wait "$harness" 2>/dev/null || true
    fi
    rm -rf "$bins"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

python3 benches/harness.py --bin-dir "$bins" "$@" &
harness=$!
wait "$harness"

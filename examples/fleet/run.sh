#!/usr/bin/env bash
# Starts the example fleet on loopback: one origin, a shield and two edges.
# Ctrl-C stops everything. Data goes to ./data under this directory.
set -euo pipefail
cd "$(dirname "$0")"
export FLEET_ORIGIN_SECRET="${FLEET_ORIGIN_SECRET:-fleet-origin-secret}"
export FLEET_PURGE_TOKEN="${FLEET_PURGE_TOKEN:-fleet-purge-token}"
cargo build --release --manifest-path ../../Cargo.toml
EDGE=../../target/release/edge
mkdir -p data
pids=()
trap 'kill "${pids[@]}" 2>/dev/null; wait' EXIT INT TERM
"$EDGE" origin --config origin.toml & pids+=($!)
sleep 0.5
for pop in shield edge-a edge-b; do
  "$EDGE" serve --config "$pop.toml" & pids+=($!)
done
cat <<MSG
fleet up:
  origin  s3://127.0.0.1:9000   (access key FLEETADMIN, secret \$FLEET_ORIGIN_SECRET)
  shield  http://assets.local.cdn.localhost:8180   admin :8181
  edge-a  http://assets.local.cdn.localhost:8280   admin :8281
  edge-b  http://assets.local.cdn.localhost:8380   admin :8381
purge everywhere:
  $EDGE purge --admin http://127.0.0.1:8281 --token \$FLEET_PURGE_TOKEN assets 'img/*'
MSG
wait

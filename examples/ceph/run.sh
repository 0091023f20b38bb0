#!/usr/bin/env bash
# A fleet in front of a Ceph cluster, all on this machine: scripts/ceph-dev.sh starts a
# single-node cluster (monitor, OSD, manager, RADOS Gateway), then a shield and two edge PoPs
# whose origin is the gateway. Ctrl-C stops the PoPs and the cluster. Files go to ./data.
set -euo pipefail
cd "$(dirname "$0")"
export FLEET_PURGE_TOKEN="${FLEET_PURGE_TOKEN:-fleet-purge-token}"
cargo build --release --manifest-path ../../Cargo.toml
EDGE=../../target/release/edge
CEPH=../../scripts/ceph-dev.sh
mkdir -p data
cluster="$PWD/data/ceph"
pids=()
trap 'kill "${pids[@]}" 2>/dev/null; wait; "$CEPH" stop "$cluster"' EXIT INT TERM
# The cluster also stops if this script is killed without running its trap.
"$CEPH" start "$cluster" --watch $$
# endpoint=, access_key=, secret_key= of the gateway's user `edge`
. "$cluster/env"
export CEPH_SECRET_KEY="$secret_key"

# The bucket behind the spaces, a public and a private object.
host="${endpoint#http://}"
printf '[default]\naccess_key = %s\nsecret_key = %s\nhost_base = %s\nhost_bucket = %s\nuse_https = False\n' \
  "$access_key" "$secret_key" "$host" "$host" >data/s3cfg
s3cmd -c data/s3cfg mb s3://assets >/dev/null
echo "hello from Ceph" >data/hello.txt
echo "for signed spaces only" >data/secret.txt
s3cmd -c data/s3cfg put --acl-public data/hello.txt s3://assets/hello.txt >/dev/null
s3cmd -c data/s3cfg put data/secret.txt s3://assets/secret.txt >/dev/null

for pop in shield edge-a edge-b; do
  sed -e "s#@ENDPOINT@#$endpoint#" -e "s#@ACCESS_KEY@#$access_key#" "$pop.toml" >"data/$pop.toml"
  "$EDGE" serve --config "data/$pop.toml" & pids+=($!)
done
cat <<MSG
fleet up in front of Ceph:
  RGW     $endpoint   (s3cmd -c data/s3cfg ...; access key $access_key)
  shield  http://assets.local.cdn.localhost:8480   admin :8481
  edge-a  http://assets.local.cdn.localhost:8580   admin :8581
  edge-b  http://assets.local.cdn.localhost:8680   admin :8681
try:
  curl -i http://assets.local.cdn.localhost:8580/hello.txt
  curl -i http://private.local.cdn.localhost:8680/secret.txt
  $EDGE purge --admin http://127.0.0.1:8581 --token \$FLEET_PURGE_TOKEN assets hello.txt
MSG
wait

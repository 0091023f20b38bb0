#!/usr/bin/env bash
# Runs the whole test suite, installing what the tests need when it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v s3cmd >/dev/null 2>&1 || missing+=(s3cmd)
# The versioning, lifecycle and HTTPS tests drive the AWS CLI (`aws s3api`); it counts as
# present only when it runs (a pyenv shim without it does not).
aws --version >/dev/null 2>&1 || missing+=(awscli)
# The origin's conformance tests drive boto3 (with requests) under `python3`.
python3 -c 'import boto3, requests' >/dev/null 2>&1 || missing+=(python3-boto3 python3-requests)
command -v pebble >/dev/null 2>&1 || missing+=(pebble)
# The browser end-to-end test drives Debian's Chromium at this path.
[ -x /usr/bin/chromium ] || missing+=(chromium)
# The Ceph tests run a single-node cluster (scripts/ceph-dev.sh) from Debian's Ceph 16.2.
ceph=()
for tool in ceph-mon ceph-osd ceph-mgr radosgw radosgw-admin; do
  command -v "$tool" >/dev/null 2>&1 || ceph=(ceph-mon ceph-osd ceph-mgr radosgw ceph-common)
done
if [ ${#missing[@]} -gt 0 ] || [ ${#ceph[@]} -gt 0 ]; then
  echo "installing test dependencies: ${missing[*]} ${ceph[*]}"
  if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
  $SUDO apt-get update -qq
  if [ ${#missing[@]} -gt 0 ]; then
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}"
  fi
  if [ ${#ceph[@]} -gt 0 ]; then
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${ceph[@]}"
  fi
fi

# A `python3` or `aws` on PATH that is not Debian's (pyenv, a virtualenv) does not see the
# packages above: install into that Python with pip then.
pip=()
python3 -c 'import boto3, requests' >/dev/null 2>&1 || pip+=(boto3 requests)
aws --version >/dev/null 2>&1 || pip+=(awscli)
if [ ${#pip[@]} -gt 0 ]; then
  echo "installing test dependencies with pip: ${pip[*]}"
  python3 -m pip install --quiet "${pip[@]}"
fi

cargo test --workspace --locked "$@"

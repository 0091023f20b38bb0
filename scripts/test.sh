#!/usr/bin/env bash
# Runs the whole test suite, installing what the tests need when it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v s3cmd >/dev/null 2>&1 || missing+=(s3cmd)
command -v pebble >/dev/null 2>&1 || missing+=(pebble)
# The browser end-to-end test drives Debian's Chromium at this path.
[ -x /usr/bin/chromium ] || missing+=(chromium)
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing test dependencies: ${missing[*]}"
  if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}"
fi

# The origin's conformance and HTTPS tests drive boto3 (with requests) and the aws cli.
if ! command -v aws >/dev/null 2>&1 || ! python3 -c 'import boto3, requests' >/dev/null 2>&1; then
  echo "installing test dependencies: boto3 requests awscli (pip)"
  python3 -m pip install --quiet boto3 requests awscli
fi

cargo test --workspace --locked "$@"

#!/usr/bin/env bash
# Runs the HTTP caching conformance suite of cache-tests.fyi (github.com/http-tests/cache-tests)
# through the edge, in front of the suite's own origin server, and prints the summary the site
# shows: passes, failures (required, and recommended ones apart), and how many of its required
# tests pass (a test whose dependencies fail counts as not passed, as on the site).
#
#   scripts/cache-tests.sh /path/to/cache-tests [path/to/edge]    # after `npm install` there
#   KEEP=1 scripts/cache-tests.sh ...    # keep the results, edge and origin logs
#
# The edge runs with a generic HTTP origin and the settings such an origin expects: no TTL of
# its own (`ttl = "0s"`, `default_ttl = "0s"`: only what the origin gives explicit freshness is
# stored) and a `stale_grace` of 1 h (stale content is served when the origin fails).
set -euo pipefail

suite="${1:?usage: scripts/cache-tests.sh /path/to/cache-tests [edge binary]}"
suite="$(cd "$suite" && pwd)"
edge="${2:-$(cd "$(dirname "$0")/.." && pwd)/target/release/edge}"
[ -x "$edge" ] || { echo "no edge binary at $edge (cargo build --release)" >&2; exit 1; }

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
origin_port="$(free_port)"; edge_port="$(free_port)"; admin_port="$(free_port)"
work="$(mktemp -d -t edge-cache-tests-XXXXXX)"
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    if [ -n "${KEEP:-}" ]; then echo "kept: $work (results.json, edge.log, server.log)"; else rm -rf "$work"; fi
}
trap cleanup EXIT

cat > "$work/edge.toml" <<EOF
[pop]
name = "edge"
[listen]
http = "127.0.0.1:$edge_port"
admin = "127.0.0.1:$admin_port"
[cache]
memory = "64MiB"
disk = "0"
default_ttl = "0s"
negative_ttl = "0s"
stale_grace = "1h"
[origin]
kind = "http"
url = "http://127.0.0.1:$origin_port"
[[space]]
name = "conformance"
ttl = "0s"
custom_domain = "127.0.0.1"
[purge]
token = "cache-tests-token"
[log]
access = "off"
EOF

(cd "$suite" && npm_config_protocol=http npm_config_port="$origin_port" \
    npm_config_pidfile="$work/server.pid" exec node test-engine/server/server.mjs > "$work/server.log" 2>&1) &
pids+=($!)
(cd "$work" && exec "$edge" serve --config "$work/edge.toml" > "$work/edge.log" 2>&1) &
pids+=($!)
for _ in $(seq 100); do
    curl -s -o /dev/null "http://127.0.0.1:$edge_port/" && break
    sleep 0.1
done

(cd "$suite" && npm run --silent cli --base="http://127.0.0.1:$edge_port") > "$work/results.json"

cd "$suite"
node --input-type=module - "$work/results.json" <<'EOF'
import fs from 'fs'
import { determineTestResult, resultTypes } from './test-engine/lib/results.mjs'
import tests from './tests/index.mjs'
const results = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'))
const counts = {}
let required = 0
let requiredPassed = 0
for (const suite of tests) {
  for (const test of suite.tests) {
    if (test.browser_only) continue
    const result = determineTestResult(tests, test.id, results)
    const name = Object.keys(resultTypes).find(k => resultTypes[k] === result)
    counts[name] = (counts[name] || 0) + 1
    if ((test.kind || 'required') === 'required') {
      required++
      if (name === 'pass') requiredPassed++
    }
    if (name === 'fail' || name === 'optional_fail') {
      console.log(`${name}: ${test.id} ${JSON.stringify(results[test.id])}`)
    }
  }
}
console.log(JSON.stringify(counts))
// The site's "fail" is a required test failing; "optional_fail" a recommended (optimal) one.
console.log(`failures: ${counts.fail || 0} required, ${counts.optional_fail || 0} recommended`)
console.log(`required tests passed: ${requiredPassed} of ${required}`)
EOF

#!/usr/bin/env bash
# Time from starting `healthstream run` on an existing data directory to /readyz answering 200,
# then stop it cleanly. Usage: ops/bench/restart-to-ready.sh DATA_DIR [PORT]
# Build a data directory with a million instances first:
#   HOSTS=10000 HEALTHSTREAM_SPACE_DIR=DATA_DIR/state/discovery cargo bench -p healthstream-discovery --bench space_size
set -euo pipefail
data="${1:?data directory}"
port="${2:-18080}"
bin="$(dirname "$0")/../../target/release/healthstream"
start=$(date +%s%N)
"$bin" run --data-dir "$data" --listen "127.0.0.1:$port" >/dev/null 2>&1 &
pid=$!
until curl -fs "http://127.0.0.1:$port/readyz" >/dev/null 2>&1; do
  if ! kill -0 "$pid" 2>/dev/null; then echo "healthstream exited before it was ready" >&2; exit 1; fi
  sleep 0.02
done
ready=$(date +%s%N)
kill -INT "$pid"
wait "$pid" || true
echo "ready after $(( (ready - start) / 1000000 )) ms"

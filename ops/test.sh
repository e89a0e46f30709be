#!/usr/bin/env bash
# The test command: installs the prerequisites, then checks formatting and lints and runs
# every test, including the bus conformance suite against a real Kafka-protocol broker.
set -euo pipefail
cd "$(dirname "$0")/.."

./ops/setup.sh
./ops/test-broker.sh
export HEALTHSTREAM_NISSHI="${HEALTHSTREAM_TOOLS:-$HOME/.cache/healthstream}/nisshi/bin/nisshi"

cargo fmt --all -- --check
cargo clippy --workspace --all-targets --quiet -- -D warnings

log="$(mktemp)"
trap 'rm -f "$log"' EXIT
status=0
cargo test --workspace 2>&1 | tee "$log" || status=$?
passed=$(grep -E '^test result:' "$log" | sed -E 's/.* ([0-9]+) passed.*/\1/' | awk '{s+=$1} END {print s+0}')
failed=$(grep -E '^test result:' "$log" | sed -E 's/.* ([0-9]+) failed.*/\1/' | awk '{s+=$1} END {print s+0}')
echo
echo "healthstream: ${passed} passed, ${failed} failed"
exit "$status"

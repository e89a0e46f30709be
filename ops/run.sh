#!/usr/bin/env bash
# The run command: installs the prerequisites, builds healthstream and starts every
# service in one process over the embedded bus (no Kafka), with its data in ./data, and the
# reference collector sending this machine's inventory, counters, journal and heartbeats to it.
set -euo pipefail
cd "$(dirname "$0")/.."

./ops/setup.sh
cargo build --release -p healthstream --quiet
exec ./target/release/healthstream run --collect --data-dir "${HEALTHSTREAM_DATA_DIR:-data}" "$@"

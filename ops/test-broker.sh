#!/usr/bin/env bash
# Installs the Kafka-protocol broker the tests run against (nisshi, a Kafka-compatible
# broker written in Rust) into a cache outside the work tree, once. Later runs reuse it.
set -euo pipefail

TOOLS="${HEALTHSTREAM_TOOLS:-$HOME/.cache/healthstream}"
VERSION="0.8.1"
BIN="$TOOLS/nisshi/bin/nisshi"

if [ -x "$BIN" ] && "$BIN" --version 2>/dev/null | grep -q "$VERSION"; then
    exit 0
fi
# An unoptimised build: about half the build time of a release build, and fast enough
# for the tests.
echo "installing the test broker nisshi $VERSION into $TOOLS/nisshi (once; about 14 minutes on 2 cores)"
cargo install nisshi --version "$VERSION" --debug --locked --ignore-rust-version \
    --no-default-features --features dynostore --root "$TOOLS/nisshi" --quiet
"$BIN" --version

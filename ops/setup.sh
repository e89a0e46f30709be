#!/usr/bin/env bash
# Installs what building healthstream needs on a fresh Debian machine: a C/C++ toolchain
# and libclang (the rocksdb crate generates its bindings with it). Safe to run again.
set -euo pipefail

need=()
command -v cc >/dev/null 2>&1 || need+=(build-essential)
command -v make >/dev/null 2>&1 || need+=(make)
dpkg -s libclang-dev >/dev/null 2>&1 || need+=(libclang-dev)
command -v cargo >/dev/null 2>&1 || { echo "error: cargo (the Rust toolchain) is required" >&2; exit 1; }

if [ ${#need[@]} -gt 0 ]; then
    echo "installing: ${need[*]}"
    SUDO=""
    if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi

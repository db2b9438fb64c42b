#!/usr/bin/env bash
# The main job until the native host lands: the deterministic simulation of the protocol
# (writers, zombies, crashes, faults, GC and a tailing reader over a seeded in-memory store).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/toolchain.sh
cargo run --release -q -p tidewal-sim -- --seeds "${1:-1000}"

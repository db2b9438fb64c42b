#!/usr/bin/env bash
# The main job: `tidewal demo` on a local directory (default ./tidewal-demo): appends sample
# data, fences a writer with a second one, reopens to replay, flushes a generation, prints a
# summary. Sets up Rust if the machine has none.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/toolchain.sh
cargo run --release -q -p tidewal-cli -- demo "${1:-./tidewal-demo}"

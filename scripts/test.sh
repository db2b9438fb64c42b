#!/usr/bin/env bash
# Sets up what the tests need and runs all of them. TIDEWAL_SIM_SEEDS sets the number of
# simulation seeds (default 2000).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/toolchain.sh
seeds="${TIDEWAL_SIM_SEEDS:-2000}"
step() { printf '\n== %s\n' "$*"; }

step "format and lints"
if command -v rustup >/dev/null; then rustup component add rustfmt clippy >/dev/null 2>&1 || true; fi
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --features tidewal-core/arrow -- -D warnings

step "python with pyarrow (for the interop test)"
if [ ! -x .tools/venv/bin/python ]; then
  python3 -m venv .tools/venv || { apt_install python3-venv && python3 -m venv .tools/venv; }
fi
.tools/venv/bin/python -c "import pyarrow" 2>/dev/null || .tools/venv/bin/pip install -q pyarrow==26.0.1
export TIDEWAL_PYTHON="$PWD/.tools/venv/bin/python"

step "a real S3 server: SeaweedFS on loopback"
. scripts/seaweedfs.sh
seaweedfs_start "$PWD/.tools/venv"

step "unit, integration, codec and host tests"
cargo test --workspace --features tidewal-core/arrow

step "WebAssembly host: headless Chromium tests, package size, imports"
. scripts/wasm.sh
wasm_setup
wasm_cargo clippy -q -p tidewal-wasm --all-targets -- -D warnings
wasm_test
wasm_package
wasm_types
wasm_cross_host
wasm_workerd
www_test

step "fuzz targets (decoders, and machines fed arbitrary answers), 20 s each"
scripts/fuzz.sh 20

step "core builds without std (thumbv7em-none-eabihf)"
nostd_build

step "deterministic simulation: $seeds seeds, then a determinism check"
cargo run --release -q -p tidewal-sim -- --seeds "$seeds"
cargo run --release -q -p tidewal-sim -- --check-determinism 20

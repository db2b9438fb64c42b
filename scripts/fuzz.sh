#!/usr/bin/env bash
# Fuzzes the decoders of what tidewal reads from outside (tests/fuzz: manifest, entry,
# generation, stream) and the machines fed arbitrary answers (machines) with cargo-fuzz on
# libFuzzer: seeds the corpora from real objects,
# then runs each target SECONDS (default 60). The test command runs it briefly, so a parser
# that panics on some input fails the build; long runs are this script with a big SECONDS.
# A crash is saved under tests/fuzz/artifacts/<target>/ and fails the script.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/toolchain.sh
seconds="${1:-60}"
command -v c++ >/dev/null || apt_install g++
root="$PWD/.tools/cargo-fuzz"
[ -x "$root/bin/cargo-fuzz" ] || cargo install -q cargo-fuzz --version 0.13.2 --locked --root "$root"
export PATH="$root/bin:$PATH"
# Stable rustc with the instrumentation flags cargo-fuzz passes; no sanitizer (none needed
# for safe Rust, and it needs nightly's std).
export RUSTC_BOOTSTRAP=1 CARGO_TARGET_DIR="$PWD/target/fuzz"
cargo fmt --manifest-path tests/fuzz/Cargo.toml -- --check
CARGO_TARGET_DIR="$PWD/target/fuzz-lint" \
  cargo clippy -q --manifest-path tests/fuzz/Cargo.toml --all-targets -- -D warnings
cargo run -q --manifest-path tests/fuzz/Cargo.toml --example seeds
cargo fuzz build --fuzz-dir tests/fuzz --sanitizer none -O
for target in manifest entry generation stream machines; do
  log="target/fuzz/$target.log"
  if ! cargo fuzz run --fuzz-dir tests/fuzz --sanitizer none -O "$target" -- \
      -max_total_time="$seconds" -rss_limit_mb=2048 -max_len=65536 >"$log" 2>&1; then
    tail -40 "$log"
    echo "fuzz target $target failed: the input is under tests/fuzz/artifacts/$target/" >&2
    exit 1
  fi
  grep -E '^Done [0-9]+ runs' "$log" | sed "s/^/$target: /"
  grep -E '^#[0-9]+.*DONE' "$log" | sed -E "s/.*(cov: [0-9]+ ft: [0-9]+ corp: [^ ]+).*/$target: \1/"
done

#!/usr/bin/env bash
# The peer benchmark (tidewal vs SlateDB vs Lance MemWAL vs a raw put loop, one store per
# cell): builds tests/peers into target/peers (once: ~40 min on 2 cores, needs protoc), starts
# SeaweedFS, runs every cell (extra arguments go to `tidewal-peers run`, e.g. --quick), and
# writes docs/benchmarks/results.{json,md} and the plots.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/toolchain.sh
command -v protoc >/dev/null || apt_install protobuf-compiler
(cd tests/peers && CARGO_TARGET_DIR="$PWD/../../target/peers" cargo build --release)
if [ ! -x .tools/venv/bin/python ]; then
  python3 -m venv .tools/venv || { apt_install python3-venv && python3 -m venv .tools/venv; }
fi
.tools/venv/bin/python -c "import matplotlib" 2>/dev/null || .tools/venv/bin/pip install -q matplotlib==3.10.7
. scripts/seaweedfs.sh
seaweedfs_start "$PWD/.tools/venv"
if [[ " $* " == *" --merge "* ]]; then
  # Some cells measured again into the earlier results: say so under the first command.
  echo "then: scripts/peers.sh $* ($(date -u +%Y-%m-%dT%H:%MZ), tidewal $(git rev-parse --short HEAD))" \
    >> docs/benchmarks/machine.txt
else
  {
    echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB, $(uname -sr)"
    echo "command: scripts/peers.sh $*"
    echo "date: $(date -u +%Y-%m-%dT%H:%MZ), tidewal $(git rev-parse --short HEAD)"
  } > docs/benchmarks/machine.txt
fi
target/peers/release/tidewal-peers run --out docs/benchmarks "$@"
.tools/venv/bin/python docs/benchmarks/plot.py docs/benchmarks/results.json docs/benchmarks

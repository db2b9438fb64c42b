#!/usr/bin/env bash
# The memory proof (not part of scripts/test.sh: it writes a 1 GiB log). Writes MIB MiB
# (default 1024) of 256 KiB entries in generations of MEMTABLE_MIB (default 64, the writer's
# default) to DIR (default a tmpfs folder), then streams `tidewal cat` of it (all columns, then
# one column) to /dev/null and `Wal::scan` over it, printing each one's peak RSS (VmHWM) and
# failing if one reaches 128 MiB. A generation larger than the 16 MiB read-ahead bound is read
# in runs of records by ranged get (PROTOCOL.md §5 "Flow control"), so the generation size
# does not set the peak.
#   scripts/memory.sh [DIR] [MIB] [MEMTABLE_MIB]
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-/dev/shm/tidewal-memory-$$}
mib=${2:-1024}
memtable=${3:-64}
limit_kb=$((128 * 1024))
cargo build --release -p tidewal-cli
bin=${CARGO_TARGET_DIR:-target}/release/tidewal
rm -rf "$dir"
trap 'rm -rf "$dir"' EXIT
"$bin" fill "$dir" --mib "$mib" --entry-kib 256 --memtable-mib "$memtable"
du -sh "$dir"
status=0
peak() { # label command...: runs it, prints its VmHWM, checks the limit
  local label=$1; shift
  local started=$SECONDS
  local hwm
  hwm=$(TIDEWAL_PRINT_VMHWM=1 "$@" 2>&1 >/dev/null | awk '/^VmHWM:/ {print $2}')
  echo "$label: peak RSS ${hwm} kB ($((hwm / 1024)) MiB), $((SECONDS - started)) s"
  if [ "${hwm:-999999999}" -ge "$limit_kb" ]; then
    echo "  over the 128 MiB limit" >&2
    status=1
  fi
}
peak "tidewal cat ($mib MiB log, all columns) > /dev/null" "$bin" cat "$dir" --format ipc
peak "tidewal cat --columns id > /dev/null" "$bin" cat "$dir" --format ipc --columns id
# glibc raises its mmap threshold after large buffers are freed, then keeps freed generation
# bodies in its heaps: the same reads with the threshold pinned at 1 MiB show what the reader
# itself holds. (Printed for comparison; the default allocator is what the limit is checked on.)
peak "Wal::scan (tidewal scan-count)" "$bin" scan-count "$dir"
limit_kb=$((1 << 40)) # the pinned runs are shown, not checked
peak "  same, MALLOC_MMAP_THRESHOLD_=1048576" env MALLOC_MMAP_THRESHOLD_=1048576 "$bin" scan-count "$dir"
peak "tidewal cat, MALLOC_MMAP_THRESHOLD_=1048576" env MALLOC_MMAP_THRESHOLD_=1048576 "$bin" cat "$dir" --format ipc
exit $status

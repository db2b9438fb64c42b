#!/usr/bin/env bash
# Builds the wasm package and serves the demo page on http://127.0.0.1:${1:-8080}/ (OPFS needs
# a secure context: localhost is one).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/toolchain.sh
. scripts/wasm.sh
wasm_setup
wasm_package
www_assets
echo "open http://127.0.0.1:${1:-8080}/"
exec python3 -m http.server "${1:-8080}" --bind 127.0.0.1 --directory www

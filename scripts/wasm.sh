# Sourced by the scripts: sets up the WebAssembly toolchain and browser, and runs the wasm tests.
#   wasm_setup   wasm32 target (rustup, else Debian's rustc-web + rust-web-src with
#                -Zbuild-std), wasm-bindgen-cli at exactly the version in Cargo.lock,
#                chromium + chromium-driver, node + npm
#   wasm_cargo   cargo for wasm32 with whatever wasm_setup chose (same arguments as cargo)
#   wasm_test    the wasm-bindgen tests in headless Chromium
#   wasm_bench   appends/s and MB/s in headless Chromium (printed)
#   wasm_package the web package in target/wasm-pkg, its size, the `env` import check
#   wasm_types   tsc --strict over a usage file against the generated and hand-written typings
#   wasm_cross_host  native CLI <-> wasm (Node.js) on one directory
#   wasm_workerd the module in workerd (miniflare) on an R2 bucket binding
#   www_assets, www_test  the demo page's files; the page in Chromium via Playwright

WASM_TARGET=wasm32-unknown-unknown

wasm_setup() {
  # TIDEWAL_DEBIAN_RUST=1 takes the fallback even where rustup works (to test it).
  if [ -z "${TIDEWAL_DEBIAN_RUST:-}" ] && command -v rustup >/dev/null \
    && rustup target add "$WASM_TARGET" >/dev/null 2>&1; then
    WASM_BUILD_STD=()
    WASM_ENV=()
    WASM_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}
  else
    echo "rustup cannot add $WASM_TARGET: using Debian's rustc-web, rust-web-src and lld" >&2
    apt_install rustc-web cargo-web rust-web-src lld-22
    # Only for the wasm builds (wasm_cargo), so the native steps keep their toolchain.
    WASM_TARGET_DIR=$PWD/target/debian
    WASM_ENV=(RUSTC=/usr/bin/rustc RUSTC_BOOTSTRAP=1 CARGO_TARGET_DIR="$WASM_TARGET_DIR"
      CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_LINKER=/usr/lib/llvm-22/bin/wasm-ld)
    WASM_BUILD_STD=(-Zbuild-std=std,panic_abort)
  fi
  local version
  version=$(awk '/^name = "wasm-bindgen"$/ {getline; gsub(/version = |"/, ""); print}' Cargo.lock)
  WASM_BINDGEN_ROOT="$PWD/.tools/wasm-bindgen-$version"
  if [ ! -x "$WASM_BINDGEN_ROOT/bin/wasm-bindgen-test-runner" ]; then
    echo "installing wasm-bindgen-cli $version (a few minutes, once)" >&2
    cargo install -q wasm-bindgen-cli --version "$version" --root "$WASM_BINDGEN_ROOT"
  fi
  export PATH="$WASM_BINDGEN_ROOT/bin:$PATH"
  command -v chromium >/dev/null && command -v chromedriver >/dev/null \
    || apt_install chromium chromium-driver
  command -v node >/dev/null && command -v npm >/dev/null || apt_install nodejs npm
  # binaryen (wasm-opt), miniflare (workerd), apache-arrow, playwright-core: pinned in
  # host-wasm/package-lock.json.
  [ host-wasm/node_modules/.package-lock.json -nt host-wasm/package-lock.json ] \
    || (cd host-wasm && npm ci --silent --no-audit --no-fund)
}

wasm_cargo() {
  local cargo=cargo
  [ ${#WASM_BUILD_STD[@]} -eq 0 ] || cargo=/usr/bin/cargo
  local sub=$1
  shift
  env "${WASM_ENV[@]}" "$cargo" "$sub" --target "$WASM_TARGET" "${WASM_BUILD_STD[@]}" "$@"
}

wasm_test() {
  # webdriver.json (Chromium's flags: headless, no sandbox as root, no background network) is
  # read from the crate directory.
  (
    cd host-wasm
    export CHROMEDRIVER=/usr/bin/chromedriver
    export CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER=wasm-bindgen-test-runner
    export WASM_BINDGEN_TEST_TIMEOUT=120
    wasm_cargo test -p tidewal-wasm --test web --test worker "$@"
  )
}

# Throughput in headless Chromium on MemoryStore (release build), printed as a table; compare
# with `cargo run --release -p tidewal-cli -- bench --latency-ms 0 --seconds 0.5 --sizes-kib 1,64,1024`.
wasm_bench() {
  (
    cd host-wasm
    export CHROMEDRIVER=/usr/bin/chromedriver
    export CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER=wasm-bindgen-test-runner
    export WASM_BINDGEN_TEST_TIMEOUT=300
    wasm_cargo test --release -p tidewal-wasm --test bench -- --nocapture
  )
}

# Builds the npm-style package into target/wasm-pkg (wasm-bindgen --target web, then
# wasm-opt -Oz from npm's binaryen: Debian's binaryen 108 cannot parse what Rust emits now),
# prints its size raw and gzipped and by crate, and fails if the module imports anything from
# `env`.
wasm_package() {
  local out=target/wasm-pkg
  wasm_cargo build -q -p tidewal-wasm --profile wasm-release
  local built=$WASM_TARGET_DIR/$WASM_TARGET/wasm-release/tidewal_wasm.wasm
  rm -rf "$out"
  wasm-bindgen --target web --out-dir "$out" "$built"
  local wasm=$out/tidewal_wasm_bg.wasm before after
  before=$(stat -c %s "$wasm")
  host-wasm/node_modules/.bin/wasm-opt -Oz --enable-bulk-memory --enable-sign-ext \
    --enable-nontrapping-float-to-int --enable-mutable-globals --enable-reference-types \
    --enable-multivalue "$wasm" -o "$wasm.opt"
  mv "$wasm.opt" "$wasm"
  after=$(stat -c %s "$wasm")
  echo "tidewal_wasm_bg.wasm: $before bytes after wasm-bindgen, $after after wasm-opt -Oz," \
    "$(gzip -9c "$wasm" | wc -c) gzipped"
  python3 scripts/wasm_imports.py "$wasm"
  echo "what the code is (before wasm-opt, by crate; generics count where instantiated from):"
  python3 scripts/wasm_sizes.py "$built" 10
}

# The cross-host test: the native CLI writes a log in a directory, the wasm module (in Node.js,
# on FsStore) reads and extends it, the CLI reads and verifies it. Needs wasm_package first.
wasm_cross_host() {
  cargo build -q -p tidewal-cli --bin tidewal
  rm -rf target/wasm-node
  wasm-bindgen --target nodejs --out-dir target/wasm-node \
    "$WASM_TARGET_DIR/$WASM_TARGET/wasm-release/tidewal_wasm.wasm"
  node host-wasm/tests/cross_host.mjs "${CARGO_TARGET_DIR:-target}/debug/tidewal" target/wasm-node
}

# The module inside workerd (miniflare) on an R2 bucket: append, fence, reopen and replay.
# Needs wasm_package first.
wasm_workerd() {
  node host-wasm/tests/workerd/run.mjs target/wasm-pkg host-wasm/node_modules
}

# Copies what the demo page loads next to it (ignored by git): the wasm package, OpfsStore,
# and apache-arrow's single-file build. Needs wasm_package first.
www_assets() {
  rm -rf www/pkg www/vendor
  mkdir -p www/pkg www/vendor
  cp target/wasm-pkg/tidewal_wasm.js target/wasm-pkg/tidewal_wasm_bg.wasm host-wasm/js/opfs_store.js www/pkg/
  cp host-wasm/node_modules/apache-arrow/Arrow.esnext.min.js www/vendor/
}

# The demo page in Chromium driven by Playwright: fencing across tabs, replay after reload.
# Screenshots go to target/www-demo*.png.
www_test() {
  www_assets
  node www/tests/demo.mjs host-wasm/node_modules target/www-demo.png
}

# Type-checks host-wasm/tests/types.ts (the API as a user writes it, and misuse that must fail)
# against the generated typings and the hand-written ones of the JS stores. Needs wasm_package.
wasm_types() {
  local dir=target/wasm-types
  rm -rf "$dir"
  mkdir -p "$dir/js"
  cp target/wasm-pkg/tidewal_wasm.js target/wasm-pkg/tidewal_wasm.d.ts host-wasm/tests/types.ts "$dir/"
  cp host-wasm/js/opfs_store.js host-wasm/js/opfs_store.d.ts host-wasm/js/r2_store.js \
    host-wasm/js/r2_store.d.ts "$dir/js/"
  host-wasm/node_modules/.bin/tsc --noEmit --strict --target es2022 --module es2022 \
    --moduleResolution bundler --lib esnext,dom --skipLibCheck false "$dir/types.ts" || return 1
  echo "typings check: ok"
}

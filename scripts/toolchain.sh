# Sourced by the scripts: makes sure cargo is there and offers `nostd_build`.
# Prefers rustup; falls back to Debian's rustc-web / cargo-web / rust-web-src (Rust 1.96)
# with -Zbuild-std when rustup cannot download a target.

apt_install() {
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    [ -n "${TIDEWAL_APT_UPDATED:-}" ] || { apt-get update -qq; export TIDEWAL_APT_UPDATED=1; }
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
  else
    echo "cannot install $* (not root or no apt-get)" >&2
    return 1
  fi
}

if ! command -v cargo >/dev/null; then
  [ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"
fi
if ! command -v cargo >/dev/null; then
  echo "no cargo: installing Debian's cargo-web and rustc-web" >&2
  apt_install cargo-web rustc-web
fi

# Builds the core without std for a bare-metal target (proves it is no_std + alloc).
nostd_build() {
  local target=thumbv7em-none-eabihf
  if command -v rustup >/dev/null && rustup target add "$target" >/dev/null 2>&1; then
    cargo build -p tidewal-core --no-default-features --target "$target"
    return
  fi
  echo "rustup cannot add $target: building core with Debian's rust-web-src and -Zbuild-std" >&2
  apt_install rustc-web cargo-web rust-web-src
  RUSTC=/usr/bin/rustc RUSTC_BOOTSTRAP=1 CARGO_TARGET_DIR=target/debian \
    /usr/bin/cargo build -p tidewal-core --no-default-features --target "$target" \
    -Zbuild-std=core,alloc
}

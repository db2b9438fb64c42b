//! What every test of the `tidewal` command line runs it with.

#![allow(dead_code)] // each test binary uses its own part

use std::process::{Command, Output};

/// Runs the `tidewal` binary this package built with `args`, waiting for it.
pub fn tidewal(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tidewal"))
        .args(args)
        .output()
        .unwrap()
}

/// A process output as text.
pub fn text(o: &[u8]) -> String {
    String::from_utf8_lossy(o).into_owned()
}

//! The `autosign-proxy` command line: parse arguments, call the library, print.
#![forbid(unsafe_code)]
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}

//! The `cnnc` command line: one subcommand, one small function in `cli/`.
//! Only this binary prints or exits. Exit codes: 0 success, 1 the input has errors
//! (diagnostics), 2 usage or I/O problems, 3 a runtime failure (ONNX Runtime, data).

mod cli;

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    cli::dispatch(args)
}

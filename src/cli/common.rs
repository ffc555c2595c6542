//! Helpers shared by subcommands: exit codes, output format, error printing.

use std::process::ExitCode;

/// Exit code: the input has errors (diagnostics were printed).
pub const EXIT_DIAGNOSTICS: u8 = 1;
/// Exit code: usage or I/O problem (bad arguments, unreadable or unwritable file).
pub const EXIT_USAGE: u8 = 2;
/// Exit code: a failure at run time (ONNX Runtime, data set, training diverged).
pub const EXIT_RUNTIME: u8 = 3;

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Format {
    /// Human-readable text.
    #[default]
    Text,
    /// Machine-readable JSON.
    Json,
}

/// Prints `error: message` to stderr and returns the exit code.
pub fn fail(code: u8, message: impl std::fmt::Display) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::from(code)
}

//! `cnnc export` (being written).
use std::process::ExitCode;
#[derive(clap::Args, Debug)]
pub struct ExportArgs {}
pub fn run(_a: ExportArgs) -> ExitCode {
    ExitCode::SUCCESS
}

//! `cnnc check` (being written).
use std::process::ExitCode;
#[derive(clap::Args, Debug)]
pub struct CheckArgs {}
pub fn run(_a: CheckArgs) -> ExitCode { ExitCode::SUCCESS }

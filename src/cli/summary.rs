//! `cnnc summary` (being written).
use std::process::ExitCode;
#[derive(clap::Args, Debug)]
pub struct SummaryArgs {}
pub fn run(_a: SummaryArgs) -> ExitCode { ExitCode::SUCCESS }

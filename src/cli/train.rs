//! `cnnc train` (being written).
use std::process::ExitCode;
#[derive(clap::Args, Debug)]
pub struct TrainArgs {}
pub fn run(_a: TrainArgs) -> ExitCode {
    ExitCode::SUCCESS
}

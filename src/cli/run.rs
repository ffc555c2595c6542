//! `cnnc run`, `cnnc bench`, `cnnc doctor` (being written).
use std::process::ExitCode;
#[derive(clap::Args, Debug)]
pub struct RunArgs {}
#[derive(clap::Args, Debug)]
pub struct BenchArgs {}
#[derive(clap::Args, Debug)]
pub struct DoctorArgs {}
pub fn run(_a: RunArgs) -> ExitCode {
    ExitCode::SUCCESS
}
pub fn bench(_a: BenchArgs) -> ExitCode {
    ExitCode::SUCCESS
}
pub fn doctor(_a: DoctorArgs) -> ExitCode {
    ExitCode::SUCCESS
}

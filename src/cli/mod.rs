//! Subcommands. Each file holds one subcommand's arguments and its function.

pub mod check;
pub mod common;
pub mod export;
pub mod run;
pub mod summary;
pub mod train;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// cnnc: check, summarize, export, run and train convolutional networks written in .cnn.
#[derive(Parser, Debug)]
#[command(name = "cnnc", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    /// Silence a warning everywhere it would be printed (repeatable): its code, with or
    /// without the `cnnc::…::` prefix, e.g. `--allow unused_input`. Errors cannot be
    /// silenced.
    #[arg(long, global = true, value_name = "WARNING", value_parser = common::warning_code)]
    pub allow: Vec<&'static str>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Check .cnn files: syntax, shapes, arguments; exit 1 on any error.
    Check(check::CheckArgs),
    /// Per-layer table of output shapes, parameters and multiply-accumulates.
    Summary(summary::SummaryArgs),
    /// Compile a model to ONNX.
    Export(export::ExportArgs),
    /// Run a model (.cnn or .onnx) on an input array through ONNX Runtime.
    Run(run::RunArgs),
    /// Measure inference throughput and latency through ONNX Runtime.
    Bench(run::BenchArgs),
    /// Show which ONNX Runtime library is loaded and which execution providers work.
    Doctor(run::DoctorArgs),
    /// Train a model on an IDX data set (Fashion-MNIST) through ONNX Runtime.
    Train(train::TrainArgs),
}

pub fn dispatch(cli: Cli) -> ExitCode {
    common::allow_warnings(cli.allow);
    match cli.command {
        Command::Check(a) => check::run(a),
        Command::Summary(a) => summary::run(a),
        Command::Export(a) => export::run(a),
        Command::Run(a) => run::run(a),
        Command::Bench(a) => run::bench(a),
        Command::Doctor(a) => run::doctor(a),
        Command::Train(a) => train::run(a),
    }
}

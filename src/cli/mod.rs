//! Subcommands. Each file holds one subcommand's arguments and its function.

/// `eprintln!` that never panics: a reader of stderr that went away (`cnnc train … 2>&1 |
/// head -1`) must not end a run or turn its exit code into a panic's.
macro_rules! note {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

/// `eprint!` that never panics (see `note!`).
macro_rules! note_raw {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = write!(std::io::stderr(), $($arg)*);
    }};
}

/// `println!` for results, through [`common::stdout_line`]: a write that fails is recorded
/// and makes the exit code 2 ([`common::stdout_failure`]), where `println!` would panic.
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::cli::common::stdout_line(format_args!($($arg)*))
    };
}

/// `print!` for results (see `outln!`).
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::cli::common::stdout_text(format_args!($($arg)*))
    };
}

pub mod check;
pub mod common;
pub mod export;
pub mod run;
pub mod summary;
pub mod train;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// The language in brief, after `cnnc --help`: a model that checks (a test checks it, and
/// that every layer is listed).
const LANGUAGE: &str = "\
The language in brief (README.md has all of it; models/ holds the classic networks):

  block basic(c, stride=1) {                 # a block: layers with parameters
      residual { conv(c, 3, stride=stride, pad=1) batchnorm relu conv(c, 3, pad=1) }
      shortcut if stride != 1 or in.c != c { conv(c, 1, stride=stride) }
      relu
  }
  model Net(input: [1, 28, 28]) {            # one example's shape, channels first
      conv(16, 3, pad=1) relu as c1          # layers in order; `as` names a tensor
      basic(16) : [16, 28, 28]               # `: [C, H, W]` asserts the shape
      concat { {} c1 }                       # branches side by side ({} is the tensor as it is)
      repeat c in [32, 64] { basic(c, stride=2) }
      output aux { global_avgpool flatten linear(10) }   # a second output
      global_avgpool flatten linear(10)
  }

`in.c`, `in.h` and `in.w` read the incoming tensor's size; `repeat n { … }` and `repeat i in
0..n { … }` repeat; `if cond { … } else { … }` picks layers; `use \"blocks.cnn\"` brings in
another file's blocks. A layer's arguments are PyTorch's, its input sizes inferred:
  conv(out, kernel, stride=1, pad=0|same, dilation=1, groups=1, bias=true), convT(...),
  maxpool, avgpool, adaptive_avgpool, global_avgpool, adaptive_maxpool, global_maxpool,
  batchnorm, groupnorm, instancenorm, layernorm, layer_scale, relu, relu6, leaky_relu, prelu,
  elu, sigmoid, hardsigmoid, tanh, silu, hardswish, mish, gelu, softmax, dropout, flatten,
  linear(out), crop(NAME), pad, slice, scale, normalize, channel_shuffle, pixel_shuffle,
  pixel_unshuffle, upsample.
`cnnc check` says what is wrong with a file, where, and what to write instead.";

/// cnnc: check, summarize, export, run and train convolutional networks written in .cnn.
#[derive(Parser, Debug)]
#[command(name = "cnnc", version, about, long_about = None, propagate_version = true, after_help = LANGUAGE)]
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
    #[command(
        after_help = "Examples:\n  cnnc check models/*.cnn\n  cnnc check model.cnn --format json     # diagnostics for an editor or CI\n  cnnc check models/*.cnn --deny-warnings  # CI: a warning fails the build too"
    )]
    Check(check::CheckArgs),
    /// Per-layer table of output shapes, parameters and multiply-accumulates.
    #[command(
        after_help = "Examples:\n  cnnc summary models/resnet18.cnn\n  cnnc summary models/unet.cnn --format json"
    )]
    Summary(summary::SummaryArgs),
    /// Compile a model to ONNX.
    #[command(
        after_help = "Examples:\n  cnnc export models/lenet.cnn -o lenet.onnx\n  cnnc export models/resnet18.cnn -o r18.onnx --opset 21 --init kaiming --seed 7\n  cnnc export model.cnn -o model.onnx --weights trained.safetensors\n  cnnc export models/lenet.cnn --train --optimizer adam -o step.onnx"
    )]
    Export(export::ExportArgs),
    /// Run a model (.cnn or .onnx) on an input array through ONNX Runtime.
    #[command(
        after_help = "Examples:\n  python3 -c 'import numpy as np; np.save(\"x.npy\", np.random.rand(1, 1, 28, 28).astype(\"float32\"))'\n  cnnc run lenet.trained.onnx --input x.npy --output y.npy"
    )]
    Run(run::RunArgs),
    /// Measure inference throughput and latency through ONNX Runtime.
    #[command(
        after_help = "Examples:\n  cnnc bench models/resnet18.cnn --batch 32\n  cnnc bench model.onnx --device cuda --seconds 10 --format json"
    )]
    Bench(run::BenchArgs),
    /// Show which ONNX Runtime library is loaded and which execution providers work.
    #[command(
        after_help = "Environment:\n  ORT_DYLIB_PATH  the ONNX Runtime library to load (else a pip-installed onnxruntime)\n  CNNC_ORT_LOG    show ONNX Runtime's own log: verbose, info, warning, error, fatal (default: fatal, quiet)\n\nExamples:\n  cnnc doctor\n  ORT_DYLIB_PATH=/path/to/libonnxruntime.so cnnc doctor --format json\n  CNNC_ORT_LOG=warning cnnc run model.onnx --input x.npy --device cuda   # see what CUDA leaves to the CPU"
    )]
    Doctor(run::DoctorArgs),
    /// Train a model on an IDX data set (Fashion-MNIST) through ONNX Runtime.
    #[command(
        after_help = "Examples:\n  cnnc train models/lenet.cnn --data fashion-mnist --epochs 10 --optimizer sgd --lr 0.9 --init xavier\n  cnnc train models/lenet_bn.cnn --epochs 5 --optimizer adam --lr 0.001 --init xavier\n  cnnc train models/alexnet.cnn --resize 224 --batch 128 --lr 0.01 --device cuda\n  cnnc train models/lenet.cnn --resume                # after Ctrl-C or a crash"
    )]
    Train(train::TrainArgs),
}

/// A command line clap did not take as a command: `--help` and `--version` printed (exit 0,
/// or 2 where standard output cannot take them, `> /dev/full`), any other mistake reported
/// as clap does (exit 2). (A closed standard output, `>&-`, is /dev/null by then: Rust's
/// runtime opens it there at start, so no file cnnc opens can take descriptor 1.)
pub fn argument_error(e: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    use std::io::Write;
    if !matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
        e.exit();
    }
    let printed = e.print().and_then(|()| std::io::stdout().lock().flush());
    match printed {
        Ok(()) => ExitCode::SUCCESS,
        // A reader that went away (`cnnc --help | head -1`) took what it wanted.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(why) => {
            note!("error: cannot write the help to standard output: {why}");
            ExitCode::from(common::EXIT_USAGE)
        }
    }
}

pub fn dispatch(cli: Cli) -> ExitCode {
    common::allow_warnings(cli.allow);
    // Only where ONNX Runtime may be loaded; an empty value is as good as none.
    let loads_ort = matches!(
        cli.command,
        Command::Run(_) | Command::Bench(_) | Command::Doctor(_) | Command::Train(_)
    );
    if let Ok(level) = std::env::var("CNNC_ORT_LOG").map(|l| l.trim().to_string()) {
        if loads_ort && !level.is_empty() && !cnnc::runtime::is_ort_log_level(&level) {
            note!(
                "warning: CNNC_ORT_LOG={level} is not a level ({}); ONNX Runtime's log stays quiet",
                cnnc::runtime::ORT_LOG_LEVELS.join(", ")
            );
        }
    }
    // A reader that goes away (`cnnc summary big.cnn | head`) ends the commands whose output
    // is what they print the Unix way, by SIGPIPE, where Rust's default (SIGPIPE ignored)
    // makes `println!` panic. Those that write files (export, run -o, train) keep ignoring
    // it: their messages go out through `note!` and `stdout_line`, and a closed pipe must
    // not cost the file.
    if matches!(
        cli.command,
        Command::Check(_) | Command::Summary(_) | Command::Bench(_) | Command::Doctor(_)
    ) {
        // SAFETY: setting a signal's disposition to the default before any thread starts.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
    let code = match cli.command {
        Command::Check(a) => check::run(a),
        Command::Summary(a) => summary::run(a),
        Command::Export(a) => export::run(a),
        Command::Run(a) => run::run(a),
        Command::Bench(a) => run::bench(a),
        Command::Doctor(a) => run::doctor(a),
        Command::Train(a) => train::run(a),
    };
    match common::stdout_failure() {
        Some(why) => {
            note!("error: cannot write the results to standard output: {why}");
            if code == ExitCode::SUCCESS {
                ExitCode::from(common::EXIT_USAGE)
            } else {
                code
            }
        }
        None => code,
    }
}

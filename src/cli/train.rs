//! `cnnc train`: train a model on an IDX data set through ONNX Runtime with the
//! compiler-generated step graph, print one line (or JSON object) per epoch, checkpoint after
//! every epoch, and export the trained model as inference ONNX.
//!
//! Defaults: `--out` is `<file stem>.trained.onnx` in the current directory
//! (`<file stem>.<model>.trained.onnx` with `--model`), `--checkpoint` is `--out` with
//! `.onnx` replaced by `.ckpt.safetensors` (the default `--out`'s when `--out` is a device or
//! under `/dev`, `/proc`). Exit codes: 0 done, 1 the model has errors, 2 usage or a model that
//! does not fit the data, 3 a missing or bad data set, an ONNX Runtime failure (CUDA
//! unavailable included) or a diverged loss, 130 stopped by Ctrl-C or SIGTERM (after the
//! current step, with a checkpoint written).

use super::common::{
    at_least_one, check_output_path, compile_one_as, install_sigint, report_failure, stdout_line,
    switch_sigint_unless_stopped, whole_number, Format, OnSigint, TrainPhase, EXIT_INTERRUPTED,
    EXIT_RUNTIME, EXIT_USAGE, STOP_AFTER_STEP,
};
use super::export::{InitArg, OptimizerArg};
use super::run::DeviceArg;
use cnnc::fsutil::Found;
use cnnc::onnx::proto::StringStringEntryProto;
use cnnc::onnx::{self, ExportOptions, Init};
use cnnc::runtime::{Device, SessionOptions};
use cnnc::train::progress::epoch_bar;
use cnnc::train::{self, EpochPlan, EpochStats, Observer, Position, TrainConfig, TrainError};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(clap::Args, Debug)]
pub struct TrainArgs {
    /// The .cnn file.
    pub file: PathBuf,
    /// The data set: `fashion-mnist` (the Debian package) or a directory of IDX files.
    #[arg(long, value_name = "DATA", default_value = "fashion-mnist", value_parser = data_arg)]
    pub data: String,
    /// Which model of the file (needed when it defines several).
    #[arg(long, value_name = "NAME")]
    pub model: Option<String>,
    /// Epochs in total (a resumed run continues up to this many).
    #[arg(long, value_name = "E", default_value_t = 10, value_parser = at_least_one::<u32>, allow_negative_numbers = true)]
    pub epochs: u32,
    /// Examples per step.
    #[arg(long, value_name = "B", default_value_t = 256, value_parser = at_least_one::<usize>, allow_negative_numbers = true)]
    pub batch: usize,
    /// The optimizer, run inside the step graph.
    #[arg(long, value_enum, default_value = "sgd")]
    pub optimizer: OptimizerArg,
    /// Learning rate [default: 0.1 for SGD, 0.001 for Adam].
    #[arg(long, value_name = "LR", value_parser = learning_rate_arg, allow_negative_numbers = true)]
    pub lr: Option<f64>,
    /// SGD momentum (PyTorch semantics).
    #[arg(long, value_name = "M", default_value_t = 0.0, value_parser = super::common::non_negative, allow_negative_numbers = true)]
    pub momentum: f32,
    /// L2 weight decay added to the gradient (PyTorch's `weight_decay`).
    #[arg(long, value_name = "W", default_value_t = 0.0, value_parser = super::common::non_negative, allow_negative_numbers = true)]
    pub weight_decay: f32,
    /// The weight of each named output's cross-entropy in the loss (`output NAME { … }`,
    /// an auxiliary classifier; torchvision trains GoogLeNet's with 0.3) [default: 0.3]; 0
    /// trains on the main output alone.
    #[arg(long, value_name = "W", value_parser = super::common::non_negative, allow_negative_numbers = true)]
    pub aux_weight: Option<f32>,
    /// Seed of the initial weights, the data order and the dropout masks.
    #[arg(long, value_name = "S", default_value_t = 0, value_parser = whole_number::<u64>, allow_negative_numbers = true)]
    pub seed: u64,
    /// How to draw the initial weights [default: default, PyTorch's].
    #[arg(long, value_enum)]
    pub init: Option<InitArg>,
    /// Resize the images to H×H (bilinear) to fit the model's input.
    #[arg(long, value_name = "H", value_parser = at_least_one::<usize>, allow_negative_numbers = true)]
    pub resize: Option<usize>,
    /// Where ONNX Runtime runs the training steps.
    #[arg(long, value_enum, default_value_t = DeviceArg::Cpu)]
    pub device: DeviceArg,
    /// Let idle ONNX Runtime threads spin between operators instead of sleeping: 5–12 %
    /// faster on the CPU when nothing else runs, much slower when other processes compete
    /// for the cores (off by default: machines are usually shared).
    #[arg(long)]
    pub spin_wait: bool,
    /// Where to write the trained model (inference ONNX) [default: <file stem>.trained.onnx
    /// in the current directory; <file stem>.<model>.trained.onnx with --model].
    #[arg(
        long,
        short = 'o',
        visible_alias = "output",
        value_name = "TRAINED.onnx"
    )]
    pub out: Option<PathBuf>,
    /// Where to write the checkpoint after every epoch [default: --out with .onnx replaced
    /// by .ckpt.safetensors; when --out is a device such as /dev/null, the default --out's].
    #[arg(long, value_name = "PATH")]
    pub checkpoint: Option<PathBuf>,
    /// Continue from the checkpoint.
    #[arg(long, conflicts_with = "restart")]
    pub resume: bool,
    /// Train from the start even though the checkpoint exists, replacing it with the new
    /// run's first checkpoint (after the first epoch, or on Ctrl-C before that; without
    /// --resume or --restart, an existing checkpoint is refused: a forgotten --resume would
    /// lose the run).
    #[arg(long)]
    pub restart: bool,
    /// Train on the first N training examples only.
    #[arg(long, value_name = "N", value_parser = at_least_one::<usize>, allow_negative_numbers = true)]
    pub limit_train: Option<usize>,
    /// Evaluate on the first N test examples only.
    #[arg(long, value_name = "N", value_parser = at_least_one::<usize>, allow_negative_numbers = true)]
    pub limit_test: Option<usize>,
    /// One line per epoch (text) or one JSON object per line (json).
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// After each epoch, say on stderr where its time went: the steps (the step graph's runs,
    /// the batch's copy to the device included), waiting for batches (prepared, with their
    /// dropout masks, on another thread), reading the state back and evaluating.
    #[arg(long)]
    pub timings: bool,
}

struct Report {
    /// What the run does, said once its state is ready: not for a run a checkpoint refuses.
    banner: Option<String>,
    format: Format,
    bar: Option<indicatif::ProgressBar>,
    checkpoint: PathBuf,
    /// Where the run resumed, if it did.
    resumed_at: Option<Position>,
    /// The last epoch this run finished (and checkpointed).
    last_epoch_ended: Option<u32>,
    /// `--timings`: each epoch's times on stderr after its line.
    timings: bool,
}

impl Report {
    /// `--timings`: where the epoch's time went, on stderr after its line.
    fn say_times(&self, stats: &EpochStats) {
        if self.timings {
            note!("epoch {} time: {}", stats.epoch, stats.times);
        }
    }

    /// What the checkpoint holds after this run failed part-way: this run's last epoch, the
    /// state it resumed from, or (a run that wrote none) nothing of this run's, where an
    /// earlier run's file may still lie (a `--restart` replaces it only after an epoch).
    fn checkpoint_after_failure(&self) -> String {
        let path = self.checkpoint.display();
        if let Some(epoch) = self.last_epoch_ended {
            format!("{path} holds the state after epoch {epoch}; --resume continues from it")
        } else if let Some(at) = self.resumed_at {
            format!("{path} still holds the state it resumed from, {at}")
        } else if holds_data(&self.checkpoint) {
            format!(
                "this run wrote no checkpoint: {path} is still an earlier run's, which --resume \
                 would continue"
            )
        } else {
            "this run wrote no checkpoint".to_string()
        }
    }
}

/// A regular file with something in it: what a checkpoint path must not silently lose.
fn holds_data(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.len() > 0)
}

/// "1 epoch", "3 epochs".
fn plural(n: impl Into<u64>, noun: &str) -> String {
    let n = n.into();
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

impl Observer for Report {
    fn started(&mut self) {
        if let Some(banner) = self.banner.take() {
            note!("{banner}");
        }
    }
    fn resumed(&mut self, at: Position) {
        self.resumed_at = Some(at);
        note!("resumed from {} {at}", self.checkpoint.display());
    }
    fn epoch_start(&mut self, epoch: u32, batches: usize) {
        TrainPhase::Stepping.enter();
        self.bar = Some(epoch_bar(epoch, batches as u64));
    }
    fn step(&mut self, _epoch: u32, mean_loss: f64) {
        if let Some(b) = &self.bar {
            b.inc(1);
            b.set_message(format!("loss {mean_loss:.4}"));
        }
    }
    fn evaluating(&mut self) {
        TrainPhase::Evaluating.enter();
    }
    fn epoch_cut_short(&mut self, stats: &EpochStats) {
        if let Some(b) = self.bar.take() {
            b.finish_and_clear();
        }
        match self.format {
            Format::Text => stdout_line(format!(
                "epoch {}, loss {:.4}, train acc {:.3}, test acc not measured (stopped during \
                 its evaluation)",
                stats.epoch, stats.loss, stats.train_acc
            )),
            // `test_acc` is null (NaN); `examples_per_sec` over the epoch's time until the stop.
            Format::Json => stdout_line(stats.to_json()),
        }
        self.say_times(stats);
    }
    fn checkpointing(&mut self) {
        TrainPhase::Checkpointing.enter();
    }
    fn epoch_end(&mut self, stats: &EpochStats) {
        self.last_epoch_ended = Some(stats.epoch);
        TrainPhase::Stepping.enter();
        if let Some(b) = self.bar.take() {
            b.finish_and_clear();
        }
        match self.format {
            Format::Text => stdout_line(stats),
            Format::Json => stdout_line(stats.to_json()),
        }
        self.say_times(stats);
    }
}

/// `--lr` as the argument parser reads it, so that a rate that cannot train is refused as
/// every other bad argument is (as text, before anything runs). Kept as f64 so that a value
/// float32 cannot hold is named as given, not as the 0 or infinity it would round to.
fn learning_rate_arg(s: &str) -> Result<f64, String> {
    let lr: f64 = s.parse().map_err(|_| format!("`{s}` is not a number"))?;
    single_learning_rate(lr)?;
    Ok(lr)
}

/// The learning rate to train with: `given` (parsed by [`learning_rate_arg`], or recorded in
/// a checkpoint), else the optimizer's default; an error names the value.
fn learning_rate(given: Option<f64>, optimizer: OptimizerArg) -> Result<f32, String> {
    match given {
        Some(lr) => {
            single_learning_rate(lr).map_err(|why| format!("{}: {why}", compact_number(lr)))
        }
        None => Ok(match optimizer {
            OptimizerArg::Sgd => 0.1,
            OptimizerArg::Adam => 0.001,
        }),
    }
}

/// `lr` as the float32 the step graph takes, if it can train: finite, positive and normal;
/// else why not (without the value, which the argument parser's error names).
fn single_learning_rate(lr: f64) -> Result<f32, String> {
    if !(lr.is_finite() && lr > 0.0) {
        return Err("the learning rate must be a finite positive number".to_string());
    }
    let single = lr as f32;
    if !single.is_finite() {
        return Err(format!(
            "too large for float32, whose largest value is {:e}",
            f32::MAX
        ));
    }
    if single < f32::MIN_POSITIVE {
        return Err(format!(
            "too small for float32 (it would train as 0 or lose precision); the \
             smallest normal value is {:e}",
            f32::MIN_POSITIVE
        ));
    }
    Ok(single)
}

/// A number as a reader wants it: `0.05` or `3`, but `1e30` and `1e-30` rather than
/// thirty-one digits.
fn compact_number<T: Copy + Into<f64> + std::fmt::Display + std::fmt::LowerExp>(x: T) -> String {
    let wide: f64 = x.into();
    if wide != 0.0 && wide.is_finite() && !(1e-4..1e6).contains(&wide.abs()) {
        format!("{x:e}")
    } else {
        format!("{x}")
    }
}

/// "3 epochs", or "2 epochs and 42 of the 79 steps of epoch 3" for a model written from a
/// checkpoint taken mid-epoch.
fn trained_for(at: &Position) -> String {
    let epochs = plural(at.epochs_done, "epoch");
    if at.steps_in_epoch == 0 {
        return epochs;
    }
    format!(
        "{epochs} and {} of the {} steps of epoch {}",
        at.steps_in_epoch,
        at.steps_per_epoch,
        at.epochs_done + 1
    )
}

fn default_out(file: &Path, model: Option<&str>) -> PathBuf {
    // The source read from stdin (`-`): no file name to start from. The stem's bytes are
    // kept as they are (a name that is not UTF-8 names its own file, not a lossy other).
    let mut name = file
        .file_stem()
        .filter(|s| *s != "-")
        .map_or_else(|| std::ffi::OsString::from("stdin"), |s| s.to_os_string());
    if let Some(m) = model {
        name.push(format!(".{m}"));
    }
    name.push(".trained.onnx");
    PathBuf::from(name)
}

/// Why a batch cannot fit in this machine's memory: a training step's layer outputs and
/// their gradients (2 × the summary's activations per example, and the im2col patches of the
/// strided convs whose weight gradient takes them, `train` examples) or an
/// evaluation's layer outputs (`test` examples), each with the batch's input four times (the
/// three batches the preparing thread holds at most, `train::prefetch`, and ONNX Runtime's
/// copy; while evaluating, the step's copy of the last training batch stays allocated),
/// against the memory Linux reports available.
/// `None` when both fit or the memory is unknown.
fn batch_exceeds_memory(
    model: &cnnc::shape::CheckedModel,
    train: usize,
    test: usize,
) -> Option<String> {
    let activations = cnnc::shape::summary::summarize(model).activation_bytes;
    let patches = cnnc::train::graph::im2col_bytes_per_example(model);
    let input = model.input_shape().elements().saturating_mul(4);
    batch_memory_problem(
        activations,
        patches,
        input,
        train,
        test,
        super::common::available_memory()?,
    )
}

/// [`batch_exceeds_memory`] for `activations`, `patches` (a step's alone) and `input` bytes
/// per example and `available` bytes of memory.
fn batch_memory_problem(
    activations: u64,
    patches: u64,
    input: u64,
    train: usize,
    test: usize,
    available: u64,
) -> Option<String> {
    let inputs = input.saturating_mul(4);
    let step_per = activations
        .saturating_mul(2)
        .saturating_add(patches)
        .saturating_add(inputs);
    let eval_per = activations.saturating_add(inputs);
    let step = step_per.saturating_mul(train as u64);
    let eval = eval_per
        .saturating_mul(test as u64)
        .saturating_add(input.saturating_mul(train as u64));
    let need = step.max(eval);
    (need > available).then(|| {
        let what = if step >= eval {
            "a training step (its input images, layer outputs and their gradients)"
        } else {
            "evaluating the test set (its input images and layer outputs, beside the training \
             batch's images)"
        };
        // One --batch for both: per example of it, the larger of the two.
        let per = step_per.max(eval_per.saturating_add(input));
        let fits = match available / per.max(1) {
            0 => "not even one example fits".to_string(),
            n => format!("at most about {n} examples per batch fit"),
        };
        format!(
            "a batch of {} needs about {} for {what}, more than the {} of memory available; \
             {fits}",
            if step >= eval { train } else { test },
            cnnc::shape::summary::bytes(need),
            cnnc::shape::summary::bytes(available)
        )
    })
}

/// Whether `out` is no place for a file to go beside: a device or pipe, or anything under
/// `/dev` or `/proc` (`/dev/stdout` leads through `/proc/self/fd/1` to whatever stdout is).
fn is_device_path(out: &Path) -> bool {
    // `/dev/shm` is an ordinary (tmpfs) folder.
    (out.starts_with("/dev") && !out.starts_with("/dev/shm"))
        || out.starts_with("/proc")
        || cnnc::fsutil::is_special(&cnnc::fsutil::resolve_output(out))
}

/// Why one of `outputs` cannot be written: it takes one of the `names` the data loader
/// looks for in the data folder `dir` (with the split each belongs to), read or not this
/// time (a `.gz` beside the file read, the `idx4` name of the images), so that the folder
/// would give other data, or none, to the next run.
fn data_name_clash(outputs: &[&Path], names: &[(PathBuf, &str)], dir: &Path) -> Option<String> {
    for out in outputs {
        // A device or pipe is written in place, never made a file there.
        if cnnc::fsutil::is_special(out) {
            continue;
        }
        let Some(key) = super::common::same_file_key(out) else {
            continue;
        };
        if let Some((name, split)) = names
            .iter()
            .find(|(name, _)| super::common::same_file_key(name).as_ref() == Some(&key))
        {
            return Some(format!(
                "cannot write {}: it is {}, a name the {split} data is read from in the data \
                 folder {} (a file there by that name would be read as data by the next run); \
                 choose another file name",
                out.display(),
                name.display(),
                dir.display()
            ));
        }
    }
    None
}

/// The last JSON object of a run stopped by Ctrl-C or SIGTERM after training started.
fn stopped_json(outcome: &train::TrainOutcome, checkpoint: &Path) -> serde_json::Value {
    serde_json::json!({
        "stopped": true,
        "epochs_done": outcome.position.epochs_done,
        "steps_done": outcome.steps_done,
        "checkpoint": checkpoint.display().to_string(),
        "exit_code": EXIT_INTERRUPTED,
    })
}

/// clap value parser of `--data`: anything but the empty string.
fn data_arg(s: &str) -> Result<String, String> {
    if s.is_empty() {
        Err("is empty: pass `fashion-mnist` or a directory holding the IDX files".into())
    } else {
        Ok(s.to_string())
    }
}

/// `--out` with `.onnx` replaced by `.ckpt.safetensors`, its other bytes as they are (two
/// names that are not UTF-8 must not share one checkpoint).
fn default_checkpoint(out: &Path) -> PathBuf {
    use std::os::unix::ffi::{OsStrExt, OsStringExt};
    let name = out.file_name().map(OsStrExt::as_bytes).unwrap_or_default();
    let mut base = name.strip_suffix(b".onnx").unwrap_or(name).to_vec();
    base.extend_from_slice(b".ckpt.safetensors");
    out.with_file_name(std::ffi::OsString::from_vec(base))
}

fn train_fail(format: Format, e: &TrainError) -> ExitCode {
    let code = match e {
        TrainError::Runtime(r) if !r.is_user_input() => EXIT_RUNTIME,
        TrainError::Data(d) if d.is_user_input() => EXIT_USAGE,
        TrainError::Diverged { .. } | TrainError::DivergedWeights { .. } | TrainError::Data(_) => {
            EXIT_RUNTIME
        }
        _ => EXIT_USAGE,
    };
    report_failure(format, code, e, e.help())
}

/// [`report_failure`] without a help line.
fn fail_as(format: Format, code: u8, message: impl std::fmt::Display) -> ExitCode {
    report_failure(format, code, message, None)
}

pub fn run(a: TrainArgs) -> ExitCode {
    // From the start: a Ctrl-C while the data loads stops cleanly too (below, before the
    // first step), rather than killing the process without a word.
    install_sigint(OnSigint::StopBeforeStart);
    if a.optimizer == OptimizerArg::Adam && a.momentum != 0.0 {
        return fail_as(
            a.format,
            EXIT_USAGE,
            "--momentum is SGD's; Adam uses its betas (0.9, 0.999)",
        );
    }
    let (compilation, index) = match compile_one_as(&a.file, a.model.as_deref(), a.format, false) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let model = &compilation.models[index];
    // Nothing to learn: the scores of such a model are its input, reshaped.
    if !onnx::parameter_specs(model)
        .iter()
        .any(|s| s.kind.is_trainable() && s.elements() > 0)
    {
        return report_failure(
            a.format,
            EXIT_USAGE,
            format!(
                "model `{}` has no trainable parameters: training cannot change what it \
                 computes",
                model.name
            ),
            Some(
                "give it layers that learn, such as conv or linear; for K classes, end it \
                 with `flatten linear(K)`"
                    .into(),
            ),
        );
    }
    let out = a
        .out
        .clone()
        .unwrap_or_else(|| default_out(&a.file, a.model.as_deref()));
    // Beside a device (`--out /dev/null` to keep only the checkpoint), no file can go: the
    // checkpoint goes where it would without --out.
    let checkpoint = a.checkpoint.clone().unwrap_or_else(|| {
        if is_device_path(&out) {
            default_checkpoint(&default_out(&a.file, a.model.as_deref()))
        } else {
            default_checkpoint(&out)
        }
    });
    // Into a pipe on standard output (`--out /dev/stdout | …`), the epoch lines would land
    // inside the model: they go to standard error then.
    super::common::results_to_stderr_if_output_is_stdout([out.as_path(), checkpoint.as_path()]);
    // The data files are inputs too: an output must not land on one of them. (A data
    // source that does not resolve is reported when the data is loaded.)
    let data_source = cnnc::train::DataSource::resolve(&a.data).ok();
    for (read, unread) in data_source.iter().flat_map(|d| d.shadowed()) {
        let why = if read.with_extension("") == unread {
            "the gzipped one is read (delete the one that is out of date)".to_string()
        } else {
            format!(
                "{} is read and {} is not: images are looked for as `…-idx3-ubyte` first \
                 (move away the one not meant for this run)",
                read.file_name().unwrap_or_default().to_string_lossy(),
                unread.file_name().unwrap_or_default().to_string_lossy()
            )
        };
        note!(
            "note: both {} and {} are there; {why}",
            read.display(),
            unread.display()
        );
    }
    // Every name the loader looks for there, the files not read this time included.
    let data_names = data_source
        .as_ref()
        .map(|d| (d.dir.clone(), d.names_looked_for()));
    let data_files =
        data_source.map(|d| [d.train_images, d.train_labels, d.test_images, d.test_labels]);
    let mut inputs: Vec<(&str, &Path)> = vec![("the model's source", &a.file)];
    inputs.extend(
        compilation
            .sources
            .files()
            .map(|(_, f)| ("a source of the model (through `use`)", f.path.as_path())),
    );
    inputs.extend(data_files.iter().flat_map(|[a, b, c, d]| {
        [
            ("a file of the training data", a.as_path()),
            ("a file of the training data", b.as_path()),
            ("a file of the test data", c.as_path()),
            ("a file of the test data", d.as_path()),
        ]
    }));
    let with_checkpoint: Vec<(&str, &Path)> = inputs
        .iter()
        .copied()
        .chain([("the checkpoint", checkpoint.as_path())])
        .collect();
    if let Err(e) = check_output_path(&out, Some("trained.onnx"), &with_checkpoint) {
        return fail_as(a.format, EXIT_USAGE, e);
    }
    if let Err(e) = check_output_path(&checkpoint, Some("ckpt.safetensors"), &inputs) {
        // A default path the user never wrote: the way out is the option that sets it.
        if let (None, Some(why)) = (&a.checkpoint, cnnc::fsutil::name_too_long(&checkpoint)) {
            return report_failure(
                a.format,
                EXIT_USAGE,
                format!(
                    "cannot write the checkpoint to {} (the default, from --out): {}",
                    checkpoint.display(),
                    why.split_once("; ").map_or(why.as_str(), |(w, _)| w)
                ),
                Some("pass --checkpoint PATH with a shorter name, or a shorter --out".into()),
            );
        }
        if a.checkpoint.is_none() && checkpoint.is_dir() {
            return report_failure(
                a.format,
                EXIT_USAGE,
                format!(
                    "cannot write the checkpoint to {} (the default, from --out): it is a folder",
                    checkpoint.display()
                ),
                Some("pass --checkpoint PATH to write it elsewhere".into()),
            );
        }
        return fail_as(a.format, EXIT_USAGE, e);
    }
    if let Some((dir, names)) = &data_names {
        if let Some(e) = data_name_clash(&[&out, &checkpoint], names, dir) {
            return fail_as(a.format, EXIT_USAGE, e);
        }
    }
    // After what the path is to this run (an input, a data name): what it holds.
    if let Err(e) = super::common::check_replaces_only_a_model(&out) {
        return fail_as(a.format, EXIT_USAGE, e);
    }
    // A file that is no checkpoint is never replaced, --restart or not (it may be anything:
    // notes, a trained model, an array); with --resume, the loader says what it is. An empty
    // file holds nothing to lose (`mktemp`, `touch`): it is replaced, as at --out.
    if !a.resume && holds_data(&checkpoint) && !cnnc::train::Checkpoint::is_checkpoint(&checkpoint)
    {
        return report_failure(
            a.format,
            EXIT_USAGE,
            format!(
                "{} exists, and is not a cnnc checkpoint",
                checkpoint.display()
            ),
            Some(format!(
                "pass --checkpoint PATH to write the checkpoint elsewhere{}, or remove the file \
                 if it is not needed",
                if a.checkpoint.is_none() {
                    " (the default is --out's name with .onnx replaced by .ckpt.safetensors)"
                } else {
                    ""
                }
            )),
        );
    }
    if !a.resume && !a.restart && holds_data(&checkpoint) {
        return report_failure(
            a.format,
            EXIT_USAGE,
            format!(
                "{} holds a checkpoint of an earlier run",
                checkpoint.display()
            ),
            Some(
                "pass --resume to continue it, --restart to train from the start and replace \
                 it, or --checkpoint PATH to keep it"
                    .into(),
            ),
        );
    }
    if a.resume && !checkpoint.is_file() {
        // There but no file (a folder, a device, a pipe): said as such, not as missing.
        let there = checkpoint.exists();
        let what = if there {
            "is not a regular file, so no checkpoint".to_string()
        } else if std::fs::symlink_metadata(&checkpoint).is_ok() {
            // A link to nothing: the name to check is the link's target.
            format!(
                "does not exist ({}): no checkpoint to resume",
                cnnc::fsutil::read_message(
                    &checkpoint,
                    &std::io::Error::from(std::io::ErrorKind::NotFound)
                )
            )
        } else {
            "does not exist: no checkpoint to resume".to_string()
        };
        // The way out fits what was given: the path written, or the default one.
        let help = match (&a.checkpoint, there) {
            (Some(_), true) => "give --checkpoint the checkpoint file `cnnc train` wrote, or drop \
                                --resume to start a new run"
                .to_string(),
            (Some(_), false) => "check the path given to --checkpoint (the file the run to \
                                 resume wrote), or drop --resume to start a new run"
                .to_string(),
            (None, _) => format!(
                "{} is the default checkpoint (from --out); pass --checkpoint PATH where the run \
                 to resume wrote its checkpoint, or drop --resume to start a new run",
                checkpoint.display()
            ),
        };
        return report_failure(
            a.format,
            EXIT_USAGE,
            format!("--resume: {} {what}", checkpoint.display()),
            Some(help),
        );
    }
    // Room for what the run writes, before it trains: a checkpoint after each epoch (the
    // weights and the optimizer's state) and the model at the end. The headers, names and
    // running statistics are a margin.
    let weights = model.total_params().saturating_mul(4);
    let slots = a.optimizer.build(a.momentum, a.weight_decay).slots().len() as u64;
    let margin = 256 << 10;
    let checkpoint_bytes = weights.saturating_mul(1 + slots).saturating_add(margin);
    let model_bytes = weights.saturating_add(margin);
    // What the run's files take at most, beside what is there already and gets replaced: a
    // checkpoint is written beside the one before it (from the second epoch, or over an
    // earlier run's), and the model, at the end, beside the last checkpoint and the model
    // it replaces.
    let existing = |p: &Path| {
        std::fs::metadata(p)
            .ok()
            .filter(|m| m.is_file())
            .map_or(0, |m| m.len())
    };
    let (old_checkpoint, old_model) = (existing(&checkpoint), existing(&out));
    let checkpoints_at_once = if a.epochs >= 2 || old_checkpoint > 0 {
        2
    } else {
        1
    };
    let checkpoint_peak = checkpoint_bytes.saturating_mul(checkpoints_at_once);
    let needs = if cnnc::fsutil::same_file_system(&out, &checkpoint) {
        let peak = checkpoint_peak.max(
            checkpoint_bytes
                .saturating_add(model_bytes)
                .saturating_add(old_model),
        );
        vec![(
            &checkpoint,
            "the checkpoint and the model",
            peak.saturating_sub(old_checkpoint.saturating_add(old_model)),
        )]
    } else {
        vec![
            (
                &checkpoint,
                "the checkpoint",
                checkpoint_peak.saturating_sub(old_checkpoint),
            ),
            (&out, "the trained model", model_bytes),
        ]
    };
    // Weights beyond memory are refused later, as what stops the run first.
    let fits = super::common::available_memory().is_none_or(|m| weights <= m);
    for (path, what, bytes) in needs.into_iter().filter(|_| fits) {
        if let Err(e) = cnnc::fsutil::check_space(path, bytes) {
            return report_failure(
                a.format,
                EXIT_USAGE,
                format!("cannot write {what} to {}: {e}", path.display()),
                Some(format!(
                    "free space, or pass {} with a path on another disk",
                    match what {
                        "the checkpoint" => "--checkpoint",
                        "the trained model" => "--out",
                        _ => "--checkpoint or --out",
                    }
                )),
            );
        }
    }
    // Each output replaces only what was there at the start (nothing, or a file: the
    // checkpoint resumed, the model of an earlier run), and the checkpoint then only the
    // run's own last one: a file there by then is another process's (runs at the same time,
    // given the same paths, or resuming the same checkpoint).
    let out_found = Found::at(&out);
    let checkpoint_found = Found::at(&checkpoint);
    // A resumed run continues with the learning rate it was started with, unless told
    // otherwise (then it says so: a lower rate to fine-tune is a choice, a forgotten --lr
    // is not).
    let recorded_lr = if a.resume {
        cnnc::train::Checkpoint::recorded_lr(&checkpoint)
    } else {
        None
    };
    let recorded_lr = match (a.lr, recorded_lr) {
        (None, Some(Err(what))) => {
            return report_failure(
                a.format,
                EXIT_USAGE,
                format!(
                    "{}: the checkpoint records no learning rate to resume with ({what})",
                    checkpoint.display()
                ),
                Some("pass --lr to resume with a rate of your choice".into()),
            )
        }
        (_, recorded) => recorded.and_then(Result::ok),
    };
    let lr = match (a.lr, recorded_lr) {
        (None, Some(recorded)) => match learning_rate(Some(recorded), a.optimizer) {
            Ok(lr) => lr,
            Err(why) => {
                return report_failure(
                    a.format,
                    EXIT_USAGE,
                    format!(
                        "{}: the checkpoint records a learning rate that cannot train ({why})",
                        checkpoint.display(),
                    ),
                    Some("pass --lr to resume with a rate of your choice".into()),
                )
            }
        },
        (given, _) => match learning_rate(given, a.optimizer) {
            Ok(lr) => lr,
            Err(message) => return fail_as(a.format, EXIT_USAGE, message),
        },
    };
    if let (Some(given), Some(recorded)) = (a.lr, recorded_lr) {
        // Recorded as the float32 it trained with: 0.2, not 0.20000000298023224.
        let recorded = recorded as f32;
        if given as f32 != recorded {
            let (given, recorded) = (compact_number(given), compact_number(recorded));
            note!(
                "note: --lr {given} differs from the checkpoint's {recorded}: the run continues \
                 with {given}"
            );
        }
    }
    if let (true, Some(init)) = (a.resume, a.init) {
        note!(
            "note: --init {} has no effect with --resume: the weights come from the checkpoint",
            clap::ValueEnum::to_possible_value(&init)
                .map_or("…".into(), |v| v.get_name().to_string())
        );
    }
    // `--data fashion-mnist` names the Debian package even beside a folder of that name.
    if a.data == "fashion-mnist" && Path::new("fashion-mnist").is_dir() {
        note!(
            "note: --data fashion-mnist reads the Debian package in {}; for the folder \
             ./fashion-mnist here, pass --data ./fashion-mnist",
            cnnc::train::data::FASHION_MNIST_DIR
        );
    }
    // Data first: every problem with it is reported before ONNX Runtime starts.
    let (splits, resize) =
        match train::load_data(&a.data, model, a.resize, a.limit_train, a.limit_test) {
            Ok(d) => d,
            Err(e) => return train_fail(a.format, &e),
        };
    let aux_weight = a
        .aux_weight
        .unwrap_or(cnnc::train::graph::DEFAULT_AUX_WEIGHT);
    if a.aux_weight.is_some() && model.graph.named_outputs.is_empty() {
        note!(
            "note: model `{}` has no named outputs (`output NAME {{ … }}`): --aux-weight \
             changes nothing",
            model.name
        );
    }
    super::common::warn_final_softmax(model, aux_weight);
    let plan = match EpochPlan::new(model, splits.train.n, a.batch) {
        Ok(p) => p,
        Err(e) => return train_fail(a.format, &e),
    };
    if let (true, Some(bn)) = (plan.drops_last, &plan.single_value_batchnorm) {
        note!(
            "note: the last batch of each epoch would hold 1 example, which `{bn}` cannot \
             normalise (one value per channel); that example, a different one each epoch, is \
             left out"
        );
    }
    // Parameters, gradients and up to two optimizer states: fail before ONNX Runtime starts.
    if let Err(e) = cnnc::onnx::weights::check_fits_in_memory(model, 4) {
        return report_failure(
            a.format,
            EXIT_USAGE,
            e,
            Some("train a smaller model, or on a machine with more memory".into()),
        );
    }
    // A step holds the batch's layer outputs and their gradients: a batch far beyond the
    // machine's memory is refused here, not aborted (or the machine swamped) mid-step.
    if let Some(message) = batch_exceeds_memory(
        model,
        a.batch.min(splits.train.n),
        a.batch.min(splits.test.n),
    ) {
        return report_failure(
            a.format,
            EXIT_USAGE,
            message,
            Some("use a smaller --batch (or a smaller --resize)".into()),
        );
    }
    super::common::warn_large_momentum(a.momentum);
    let optimizer = a.optimizer.build(a.momentum, a.weight_decay);
    let device: Device = a.device.into();
    let session_options = SessionOptions {
        device,
        spin_wait: a.spin_wait,
        ..SessionOptions::default()
    };
    let mut sessions = match train::sessions(
        model,
        &compilation.sources,
        &optimizer,
        aux_weight,
        &session_options,
    ) {
        Ok(s) => s,
        Err(e) => return train_fail(a.format, &e),
    };
    let config = TrainConfig {
        epochs: a.epochs,
        batch_size: a.batch,
        optimizer,
        lr,
        seed: a.seed,
        init: match a.init.unwrap_or(InitArg::Default) {
            InitArg::Default => Init::Default,
            InitArg::Xavier => Init::Xavier,
            InitArg::Kaiming => Init::Kaiming,
        },
        device,
        data: a.data.clone(),
        checkpoint: Some(checkpoint.clone()),
        resume: a.resume,
        checkpoint_found,
    };
    if switch_sigint_unless_stopped(OnSigint::StopAfterStep) {
        note!("stopped before training started: nothing was written");
        if a.format == Format::Json {
            stdout_line(serde_json::json!({
                "stopped": true,
                "epochs_done": 0,
                "steps_done": 0,
                "exit_code": EXIT_INTERRUPTED,
            }));
        }
        return ExitCode::from(EXIT_INTERRUPTED);
    }
    let lr_text = compact_number(lr);
    let banner = format!(
        "training {} ({} parameters) on {} ({} train, {} test examples{}) on {device}: {}, lr {lr_text}, batch {}, {}{}",
        model.name,
        cnnc::shape::summary::group(
            onnx::parameter_specs(model)
                .iter()
                .filter(|s| s.kind.is_trainable())
                .map(|s| s.elements() as u64)
                .sum::<u64>()
        ),
        // The package's folder said, as a folder given is.
        if a.data == "fashion-mnist" {
            format!("fashion-mnist in {}", cnnc::train::data::FASHION_MNIST_DIR)
        } else {
            a.data.clone()
        },
        cnnc::shape::summary::group(splits.train.n as u64),
        cnnc::shape::summary::group(splits.test.n as u64),
        resize
            .map(|(h, w)| format!(", resized to {h}×{w}"))
            .unwrap_or_default(),
        optimizer.describe(),
        if a.batch > splits.train.n {
            format!("{} (the whole data set: --batch {})", splits.train.n, a.batch)
        } else {
            a.batch.to_string()
        },
        plural(a.epochs, "epoch"),
        aux_loss_note(model, aux_weight),
    );
    let mut report = Report {
        banner: Some(banner),
        format: a.format,
        bar: None,
        checkpoint: checkpoint.clone(),
        resumed_at: None,
        last_epoch_ended: None,
        timings: a.timings,
    };
    let outcome = match train::train(
        model,
        &mut sessions,
        &splits,
        resize,
        &config,
        &STOP_AFTER_STEP,
        &mut report,
    ) {
        Ok(o) => o,
        Err(e) => {
            if let Some(b) = report.bar.take() {
                b.abandon();
            }
            if let TrainError::Diverged { .. } | TrainError::DivergedWeights { .. } = e {
                let help = format!(
                    "{}; {}",
                    e.help().unwrap_or_default(),
                    report.checkpoint_after_failure()
                );
                return report_failure(a.format, EXIT_RUNTIME, &e, Some(help));
            }
            return train_fail(a.format, &e);
        }
    };
    if let Some(b) = report.bar.take() {
        b.finish_and_clear();
    }
    // A Ctrl-C after the last step's checks (while the last checkpoint was written) still
    // stops: the model is not written, the checkpoint holds it. Otherwise Ctrl-C now stops
    // the export (its temporary file removed), not a training step.
    if outcome.interrupted || switch_sigint_unless_stopped(OnSigint::CancelWrites) {
        if cnnc::fsutil::is_special(&checkpoint) {
            note!(
                "stopped {}: the checkpoint went to {}, which is no file, so there is none to \
                 resume from",
                outcome.position,
                checkpoint.display()
            );
        } else {
            note!(
                "stopped {}: checkpoint written to {}; continue with --resume",
                outcome.position,
                checkpoint.display()
            );
        }
        if a.format == Format::Json {
            stdout_line(stopped_json(&outcome, &checkpoint));
        }
        return ExitCode::from(EXIT_INTERRUPTED);
    }
    if outcome.resumed_from.is_some() && outcome.history.is_empty() {
        note!(
            "note: the checkpoint is already {} and this run has --epochs {}: nothing to \
             train; the model is written from it (raise --epochs to train further){}",
            outcome.position,
            a.epochs,
            outcome
                .test_acc
                .map(|acc| format!(
                    "; its test accuracy is {acc:.3}, on {}",
                    plural(splits.test.n as u64, "test example")
                ))
                .unwrap_or_default()
        );
    }
    let options = ExportOptions::default();
    // What a user of the trained file needs to feed it, and how it was trained.
    let training = cnnc::train::TrainingSummary {
        data: Some(a.data.clone()),
        train_examples: Some(splits.train.n as u64),
        // `test_acc` is measured on these (fewer than the split holds with --limit-test).
        test_examples: Some(splits.test.n as u64),
        epochs: outcome.position.epochs_done,
        steps: outcome.steps_done,
        batch: Some(a.batch as u64),
        optimizer: Some(optimizer.describe()),
        lr: Some(cnnc::train::checkpoint::lr_as_written(lr)),
        seed: a.seed,
        resize: a.resize.map(|h| h as u64),
        aux_weight: sessions
            .aux_weight
            .map(cnnc::train::checkpoint::lr_as_written),
        test_acc: outcome.test_acc,
    };
    // The export command the messages below suggest picks the same model.
    let model_flag = a
        .model
        .as_ref()
        .map(|m| format!(" --model {m}"))
        .unwrap_or_default();
    // The trained model to `path`, replacing only what `found` says is there.
    let write_to = |path: &Path, found: Found| {
        onnx::export(model, &compilation.sources, &outcome.weights, &options).and_then(|mut p| {
            p.metadata_props.extend(
                training
                    .metadata()
                    .into_iter()
                    .map(|(k, v)| StringStringEntryProto::new(&k, v)),
            );
            onnx::write_model_expecting(p, path, &options, found)
        })
    };
    let written = write_to(&out, out_found);
    if let Err(onnx::ExportError::Exists { replaced, .. }) = written {
        // Not what was there when the run started: another run wrote it meanwhile. Its file
        // stays; this run's model goes beside it, under a name of its own.
        let resolved = cnnc::fsutil::resolve_output(&out);
        let mut kept = None;
        for n in 0..100 {
            let other = cnnc::fsutil::alternative_name(&resolved, n);
            match write_to(&other, Found::Nothing) {
                Err(onnx::ExportError::Exists { .. }) => continue,
                Ok(_) => kept = Some(Ok(other)),
                Err(e) => kept = Some(Err(e)),
            }
            break;
        }
        let message = format!(
            "another process wrote {} while this run trained ({}); it was left as it is, and {}",
            out.display(),
            if replaced {
                "it is not the file that was there when the run started"
            } else {
                "it did not exist when the run started"
            },
            match &kept {
                Some(Ok(other)) => format!("this run's model is in {} instead", other.display()),
                Some(Err(e)) => format!("this run's model could not be written beside it: {e}"),
                None => "no name beside it was free for this run's model".into(),
            }
        );
        return report_failure(
            a.format,
            EXIT_USAGE,
            message,
            Some(format!(
                "runs at the same time need their own --out (and --checkpoint); this run's \
                 checkpoint is {}",
                checkpoint.display()
            )),
        );
    }
    match written {
        Ok(_) => {
            if a.format == Format::Json {
                stdout_line(serde_json::json!({
                    "done": true,
                    "test_acc": outcome.test_acc,
                    "epochs_done": outcome.position.epochs_done,
                    "steps_in_epoch": outcome.position.steps_in_epoch,
                    "steps_done": outcome.steps_done,
                    "out": out.display().to_string(),
                    "checkpoint": checkpoint.display().to_string(),
                }));
            }
            note!(
                "wrote {} (trained {}, {}); checkpoint {}",
                out.display(),
                trained_for(&outcome.position),
                plural(outcome.steps_done, "step"),
                checkpoint.display()
            );
            ExitCode::SUCCESS
        }
        Err(_) if cnnc::fsutil::CANCEL.load(std::sync::atomic::Ordering::SeqCst) => {
            // A stop, as one during training is (the checkpoint is whole), not a failure.
            note!(
                "stopped by {}: {} was not written; the checkpoint {} holds the trained \
                 weights (`cnnc export {}{} --weights {} -o MODEL.onnx`)",
                cnnc::fsutil::stopped_by(),
                out.display(),
                checkpoint.display(),
                a.file.display(),
                model_flag,
                checkpoint.display()
            );
            if a.format == Format::Json {
                stdout_line(stopped_json(&outcome, &checkpoint));
            }
            ExitCode::from(EXIT_INTERRUPTED)
        }
        Err(e) => report_failure(
            a.format,
            EXIT_USAGE,
            e,
            Some(format!(
                "the checkpoint {} holds the trained weights: `cnnc export {}{} --weights {} -o \
                 MODEL.onnx` writes the model from it",
                checkpoint.display(),
                a.file.display(),
                model_flag,
                checkpoint.display()
            )),
        ),
    }
}

/// The banner's note of the named outputs' part in the loss: `; loss + 0.3 × (aux1, aux2)`.
fn aux_loss_note(model: &cnnc::shape::CheckedModel, aux_weight: f32) -> String {
    let names: Vec<&str> = model
        .graph
        .named_outputs
        .iter()
        .map(|o| o.name.as_str())
        .collect();
    match (names.is_empty(), aux_weight == 0.0) {
        (true, _) => String::new(),
        (false, true) => format!(
            "; output{} {} not trained (--aux-weight 0)",
            if names.len() == 1 { "" } else { "s" },
            names.join(", ")
        ),
        (false, false) => format!(
            "; loss + {aux_weight} × the cross-entropy of {}",
            if names.len() == 1 {
                names[0].to_string()
            } else {
                format!("each of {}", names.join(", "))
            }
        ),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_failed_run_says_which_state_its_checkpoint_holds() {
        let dir = tempfile::tempdir().unwrap();
        let mut report = super::Report {
            banner: None,
            format: super::Format::Text,
            bar: None,
            checkpoint: dir.path().join("c.ckpt.safetensors"),
            resumed_at: None,
            last_epoch_ended: None,
            timings: false,
        };
        assert_eq!(
            report.checkpoint_after_failure(),
            "this run wrote no checkpoint"
        );
        std::fs::write(&report.checkpoint, b"an earlier run's").unwrap();
        assert!(report.checkpoint_after_failure().ends_with(
            "c.ckpt.safetensors is still an earlier run's, which --resume would continue"
        ));
        report.resumed_at = Some(cnnc::train::Position {
            epochs_done: 2,
            steps_in_epoch: 5,
            steps_per_epoch: 10,
        });
        assert!(report
            .checkpoint_after_failure()
            .ends_with("still holds the state it resumed from, in epoch 3, after step 5 of 10"));
        report.last_epoch_ended = Some(4);
        assert!(report
            .checkpoint_after_failure()
            .ends_with("holds the state after epoch 4; --resume continues from it"));
    }

    #[test]
    fn rates_print_as_written_unless_far_from_one() {
        use super::compact_number;
        assert_eq!(compact_number(0.2f32), "0.2");
        assert_eq!(compact_number(0.001f64), "0.001");
        assert_eq!(compact_number(3.0f64), "3");
        assert_eq!(compact_number(1e30f32), "1e30");
        assert_eq!(compact_number(1e-30f64), "1e-30");
        assert_eq!(compact_number(-2.5e-7f64), "-2.5e-7");
        assert_eq!(compact_number(f64::NAN), "NaN");
    }

    use super::{batch_memory_problem, default_checkpoint, default_out};
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;
    use std::path::Path;

    /// Names that are not UTF-8 keep their bytes: `o\xff.onnx` and `o\xfe.onnx` got one
    /// checkpoint, `o\u{fffd}.ckpt.safetensors`, and the second run resumed the first's.
    #[test]
    fn derived_names_keep_the_bytes_of_names_that_are_not_utf8() {
        let path = |b: &[u8]| Path::new(OsStr::from_bytes(b)).to_path_buf();
        assert_eq!(
            default_checkpoint(&path(b"d/o\xff.onnx")),
            path(b"d/o\xff.ckpt.safetensors")
        );
        assert_ne!(
            default_checkpoint(&path(b"o\xff.onnx")),
            default_checkpoint(&path(b"o\xfe.onnx"))
        );
        assert_eq!(
            default_checkpoint(Path::new("run.model")),
            Path::new("run.model.ckpt.safetensors")
        );
        assert_eq!(
            default_out(&path(b"m\xff.cnn"), Some("A")),
            path(b"m\xff.A.trained.onnx")
        );
        assert_eq!(
            default_out(Path::new("-"), None),
            Path::new("stdin.trained.onnx")
        );
    }

    #[test]
    fn the_input_batch_counts_in_the_memory_a_batch_needs() {
        const MIB: u64 = 1 << 20;
        // 1 MiB of layer outputs per example: a step of 100 needs 200 MiB.
        assert!(batch_memory_problem(MIB, 0, 0, 100, 100, 201 * MIB).is_none());
        assert!(batch_memory_problem(MIB, 0, 0, 100, 100, 199 * MIB).is_some());
        // Huge images under a small network (a 4000×4000 input, a strided conv): the
        // input, four times, is what does not fit.
        let input = 64 * MIB;
        let m = batch_memory_problem(MIB, 0, input, 256, 256, 16 * 1024 * MIB).unwrap();
        assert!(
            m.contains("a batch of 256") && m.contains("input images"),
            "{m}"
        );
        // Per example: 2 × 1 MiB + 4 × 64 MiB for a step, 1 + 5 × 64 MiB while evaluating.
        assert!(m.contains("at most about 51 examples per batch fit"), "{m}");
        // The batch named is the one of the phase that does not fit.
        let m = batch_memory_problem(MIB, 0, 0, 200, 256, 100 * MIB).unwrap();
        assert!(
            m.contains("a batch of 200") && m.contains("training step"),
            "{m}"
        );
        let m = batch_memory_problem(MIB, 0, input, 1, 1, 100 * MIB).unwrap();
        assert!(m.contains("not even one example fits"), "{m}");
        // A step's im2col patches count for the step alone: 2 + 10 MiB per example.
        assert!(batch_memory_problem(MIB, 10 * MIB, 0, 100, 100, 1201 * MIB).is_none());
        let m = batch_memory_problem(MIB, 10 * MIB, 0, 100, 100, 1199 * MIB).unwrap();
        assert!(m.contains("training step"), "{m}");
    }
}

//! The training loop: one ONNX Runtime session runs the step graph ([`super::graph`]), another
//! the evaluation graph. Parameters, running statistics and optimizer state stay in ONNX
//! Runtime's memory on the session's device for the whole run ([`StatefulSession`]: GPU memory
//! on CUDA); only the batch, its dropout masks ([`super::dropout`]), the learning rate and the
//! step go in, and the loss and the count of
//! correct answers come out, each step. The state is copied back to the host (`State::values`)
//! once per epoch for evaluation and the checkpoint, on a stop request, and at the end.
//! Each batch and its dropout masks are prepared on another thread while the step before runs
//! ([`super::prefetch`]).
//!
//! After every epoch the state is checkpointed atomically (safetensors, [`Checkpoint`]); a stop
//! request (Ctrl-C in the CLI) is honoured after the current step, with a checkpoint that
//! records the step, so `--resume` continues mid-epoch with the same batches. A non-finite
//! loss stops training with the epoch and step named.

use super::checkpoint::{Checkpoint, CheckpointError};
use super::data::{BatchConfig, Batches, DataError, DataSource, Dataset, Splits};
use super::dropout;
use super::graph::{self, Carried, CarriedKind, GraphError, Optimizer};
use super::prefetch::prefetched;
use super::progress::{EpochStats, EpochTimes};
use crate::fsutil::Found;
use crate::ir::Op;
use crate::onnx::{Init, Tensor, Weights};
use crate::runtime::{
    Device, Input, OutputData, Runtime, RuntimeError, Session, SessionOptions, StateTensor,
    StatefulSession,
};
use crate::shape::CheckedModel;
use crate::source::SourceMap;
use prost::Message;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

/// Everything that shapes a run.
#[derive(Clone, Debug)]
pub struct TrainConfig {
    /// Epochs in total (a resumed run continues up to this many).
    pub epochs: u32,
    pub batch_size: usize,
    pub optimizer: Optimizer,
    pub lr: f32,
    /// Seeds the initial weights and the data order.
    pub seed: u64,
    pub init: Init,
    pub device: Device,
    /// What `--data` named (`fashion-mnist` or a folder), recorded in the checkpoints.
    pub data: String,
    /// Where the state is written after every epoch (and on a stop request).
    pub checkpoint: Option<PathBuf>,
    /// Continue from `checkpoint`.
    pub resume: bool,
    /// What was at `checkpoint` when the run started ([`Found::at`]): nothing, or the file
    /// it resumes (or, with `--restart`, replaces). A write replaces only that, then only the
    /// run's own last checkpoint: a file another process wrote there meanwhile (a run beside
    /// this one) is left as it is, and this run's checkpoint is kept beside it and the run
    /// fails ([`CheckpointError::Appeared`]). [`Found::Any`] replaces whatever is there;
    /// with `resume`, [`Found::Nothing`] stands for the file read when the run starts.
    pub checkpoint_found: Found,
}

/// Why training stopped early or could not start.
#[derive(Debug)]
pub enum TrainError {
    Data(DataError),
    /// The model and the data do not fit together (labels, channels, sizes).
    Mismatch {
        message: String,
        help: Option<String>,
    },
    Graph(GraphError),
    Runtime(RuntimeError),
    Checkpoint(CheckpointError),
    /// Writing the checkpoint failed (a full disk); the one before it is intact.
    CheckpointWrite {
        error: CheckpointError,
        /// Where training was: epochs done and steps done in all.
        epochs_done: u32,
        steps_done: u64,
    },
    /// The checkpoint cannot continue this run.
    Resume {
        path: PathBuf,
        message: String,
        /// What to do instead.
        help: String,
    },
    /// The loss became NaN or infinite.
    Diverged {
        /// 1-based.
        epoch: u32,
        /// 1-based step within the epoch.
        step: usize,
        global_step: u64,
        loss: f32,
    },
    /// An epoch's last update made a parameter (or running statistic) NaN or infinite, or
    /// the model's outputs so (overflowing weights): no later training loss shows it, so the
    /// values and the test loss are looked at before they are kept.
    DivergedWeights {
        /// 1-based.
        epoch: u32,
        global_step: u64,
        /// What is not finite.
        what: String,
    },
}

impl TrainError {
    pub fn help(&self) -> Option<String> {
        match self {
            TrainError::Data(e) => e.help(),
            // Training can always start over instead, replacing a damaged checkpoint (never
            // a file that is none: `cnnc train` refuses to replace it).
            TrainError::Checkpoint(e @ CheckpointError::Invalid { .. }) => Some(format!(
                "{}; or train from the start: --restart in place of --resume",
                e.help().unwrap_or_default()
            )),
            TrainError::Checkpoint(e) => e.help(),
            TrainError::Mismatch { help, .. } => help.clone(),
            // What the checkpoint holds is the caller's to say (it knows which it wrote).
            TrainError::Diverged { .. } | TrainError::DivergedWeights { .. } => {
                Some("lower the learning rate (--lr), or use --optimizer adam".into())
            }
            TrainError::Resume { help, .. } => Some(help.clone()),
            TrainError::CheckpointWrite {
                error: CheckpointError::Appeared { kept, .. },
                ..
            } => Some(format!(
                "runs at the same time need their own --out and --checkpoint{}",
                kept.as_ref()
                    .map(|k| format!(
                        "; continue this run with --resume --checkpoint {} and an --out of its \
                         own",
                        k.display()
                    ))
                    .unwrap_or_default()
            )),
            TrainError::CheckpointWrite { error, .. } => Some(format!(
                "the checkpoint written before, if any, is intact (no partial file is left): \
                 {}; add --resume to continue from it (with another --checkpoint path, copy \
                 it there first)",
                checkpoint_write_remedy(error)
            )),
            _ => None,
        }
    }
}

/// What to do about a checkpoint that could not be written, after its I/O error: free
/// space for a full disk only, a shorter name for one too long.
fn checkpoint_write_remedy(error: &CheckpointError) -> &'static str {
    let CheckpointError::Io { source, .. } = error else {
        return "pass --checkpoint with another path";
    };
    match source.raw_os_error() {
        Some(libc::ENAMETOOLONG) => {
            "its name is longer than the file system takes: pass --checkpoint with a shorter one"
        }
        Some(libc::ENOSPC | libc::EDQUOT) => {
            "free space, or pass --checkpoint with a path on another disk"
        }
        _ => match source.kind() {
            std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded => {
                "free space, or pass --checkpoint with a path on another disk"
            }
            std::io::ErrorKind::InvalidFilename => {
                "its name is longer than the file system takes: pass --checkpoint with a \
                 shorter one"
            }
            _ => "pass --checkpoint with a path where it can be written",
        },
    }
}

impl fmt::Display for TrainError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TrainError::Data(e) => write!(f, "{e}"),
            TrainError::Mismatch { message, .. } => f.write_str(message),
            TrainError::Graph(e) => write!(f, "cannot build the training graph: {e}"),
            TrainError::Runtime(e) => write!(f, "{e}"),
            TrainError::Checkpoint(e) => write!(f, "{e}"),
            TrainError::CheckpointWrite {
                error,
                epochs_done,
                steps_done,
            } => write!(
                f,
                "cannot write the checkpoint at step {steps_done} ({epochs_done} epoch(s) done): {error}"
            ),
            TrainError::Resume { path, message, .. } => {
                write!(f, "{}: cannot resume: {message}", path.display())
            }
            TrainError::Diverged {
                epoch,
                step,
                global_step,
                loss,
            } => write!(
                f,
                "training diverged: the loss is {loss} at epoch {epoch}, step {step} (step {global_step} overall)"
            ),
            TrainError::DivergedWeights {
                epoch,
                global_step,
                what,
            } => write!(
                f,
                "training diverged in the last step of epoch {epoch} (step {global_step} \
                 overall): {what}"
            ),
        }
    }
}

impl std::error::Error for TrainError {}

impl From<DataError> for TrainError {
    fn from(e: DataError) -> Self {
        TrainError::Data(e)
    }
}
impl From<GraphError> for TrainError {
    fn from(e: GraphError) -> Self {
        TrainError::Graph(e)
    }
}
impl From<RuntimeError> for TrainError {
    fn from(e: RuntimeError) -> Self {
        TrainError::Runtime(e)
    }
}
impl From<CheckpointError> for TrainError {
    fn from(e: CheckpointError) -> Self {
        TrainError::Checkpoint(e)
    }
}

/// Loads `--data`, checks it against the model and cuts it to the limits. `resize` is the
/// side the images are resized to (`--resize H`: H×H). Returns the splits and the size
/// batches must be resized to, if any.
pub fn load_data(
    data: &str,
    model: &CheckedModel,
    resize: Option<usize>,
    limit_train: Option<usize>,
    limit_test: Option<usize>,
) -> Result<(Splits, Option<(usize, usize)>), TrainError> {
    let input = model.input_shape();
    let output = model.output_shape();
    // An image [C, H, W], or the image's values in a row ([F]: an MLP on the pixels).
    let (expected, flat) = match input.dims()[..] {
        [c, h, w] => ([c as usize, h as usize, w as usize], None),
        [f] => ([0; 3], Some(f as usize)),
        _ => {
            return Err(TrainError::Mismatch {
                message: format!(
                    "model `{}` takes {input}; training on images needs an input [C, H, W] (or \
                     [C·H·W], the pixels in a row)",
                    model.name
                ),
                help: Some(
                    "declare the input as the images are, `input: [1, 28, 28]` for \
                            Fashion-MNIST"
                        .into(),
                ),
            });
        }
    };
    if output.rank() != 1 {
        return Err(TrainError::Mismatch {
            message: format!(
                "model `{}` gives {output} per example, but the data set has one label per image",
                model.name
            ),
            help: Some(if output.rank() == 3 {
                format!(
                    "end the model with class scores [K] (e.g. global_avgpool flatten \
                     linear(K)) to classify the images; a segmentation model such as this one \
                     ({output}: scores per pixel) trains on labels per pixel, which `cnnc \
                     export FILE --train -o STEP.onnx` (or `--grad`) gives a step for, to drive \
                     from your own loop"
                )
            } else {
                "end the model with class scores [K] (e.g. global_avgpool flatten linear(K))".into()
            }),
        });
    }
    let source = DataSource::resolve(data)?;
    // The image size is judged from the headers, before gigabytes of examples are read.
    let check = |found: [usize; 3]| match flat {
        Some(values) => fit_flat(model, values, found, resize),
        None => fit_images(model, expected, found, resize),
    };
    // The model's class count bounds the labels: every label must name one of its scores.
    let (splits, fit) = source
        .load_with(
            output.channels() as usize,
            [limit_train, limit_test],
            check,
        )
        .map_err(|e| match e {
            TrainError::Data(DataError::LabelOutOfRange { largest, .. }) => TrainError::Mismatch {
                message: e.to_string(),
                help: Some(format!(
                    "end the model with at least {} class scores (e.g. linear({})), or check the labels",
                    largest + 1,
                    largest + 1
                )),
            },
            e => e,
        })?;
    if splits.train.n == 0 {
        return Err(match limit_train {
            Some(0) => TrainError::Mismatch {
                message: "--limit-train 0 leaves no training examples".into(),
                help: Some("pass --limit-train 1 or more".into()),
            },
            _ => TrainError::Data(DataError::Empty {
                path: source.train_images.clone(),
            }),
        });
    }
    if splits.test.n == 0 && limit_test != Some(0) {
        return Err(TrainError::Data(DataError::Empty {
            path: source.test_images.clone(),
        }));
    }
    Ok((splits, fit))
}

/// Judges images of `found` `[C, H, W]` against a model whose input is flat, `[values]`:
/// they fit when they hold that many values, which go in as they lie (C, then H, then W, as
/// PyTorch's `x.view(-1, C * H * W)`).
fn fit_flat(
    model: &CheckedModel,
    values: usize,
    found: [usize; 3],
    resize: Option<usize>,
) -> Result<Option<(usize, usize)>, TrainError> {
    let [c, h, w] = found;
    if let Some(side) = resize {
        return Err(TrainError::Mismatch {
            message: format!(
                "--resize {side}: model `{}` takes [{values}], a flat input, not an image",
                model.name
            ),
            help: Some(format!(
                "declare the input as an image, `input: [{c}, {side}, {side}]`, with `flatten` \
                 first if the layers take a vector, or drop --resize"
            )),
        });
    }
    let held = c.saturating_mul(h).saturating_mul(w);
    if held == values {
        return Ok(None);
    }
    Err(TrainError::Mismatch {
        message: format!(
            "model `{}` takes [{values}] values per example, but the images are {c}×{h}×{w}, \
             {held} values",
            model.name
        ),
        help: Some(format!(
            "declare the input as `input: [{held}]` (the pixels in a row), or as the image, \
             `input: [{c}, {h}, {w}]`, with `flatten` first"
        )),
    })
}

/// Judges images of `found` `[C, H, W]` against the model's input `expected`: `Some((h, w))`
/// when `--resize` must resample them, `None` when they fit as they are.
fn fit_images(
    model: &CheckedModel,
    expected: [usize; 3],
    found: [usize; 3],
    resize: Option<usize>,
) -> Result<Option<(usize, usize)>, TrainError> {
    let input = model.input_shape();
    if let Some(help) = super::data::channels_last_help(found, expected) {
        return Err(TrainError::Mismatch {
            message: format!(
                "the images are {}×{} with {} channels last, but model `{}` takes {input}",
                found[0], found[1], found[2], model.name
            ),
            help: Some(help),
        });
    }
    if found[0] != expected[0] {
        return Err(TrainError::Mismatch {
            message: format!(
                "the images have {} channel(s) but model `{}` takes {} ({input})",
                found[0], model.name, expected[0]
            ),
            help: Some(match resize {
                Some(side) => format!(
                    "declare the model's input as {:?}",
                    [found[0], side, side]
                ),
                // A model made for other data (3-channel 224×224 ImageNet) keeps its size
                // with the data's channels, resized to it.
                None if expected[1] == expected[2] && found[1..] != expected[1..] => format!(
                    "declare the model's input as {:?} and pass --resize {} (or as {found:?} to train on the images as they are)",
                    [found[0], expected[1], expected[2]],
                    expected[1]
                ),
                None => format!("declare the model's input as {found:?}"),
            }),
        });
    }
    let same_size = [found[1], found[2]] == [expected[1], expected[2]];
    if let Some(side) = resize.filter(|&side| [side, side] != [expected[1], expected[2]]) {
        let help = if same_size {
            Some(format!(
                "drop --resize: the images are already {}×{}",
                found[1], found[2]
            ))
        } else if expected[1] == expected[2] {
            Some(format!("pass --resize {}", expected[1]))
        } else if [found[1], found[2]] == [side, side] {
            // The images are that size already: one way, not the same one twice.
            Some(format!(
                "--resize makes square images, and these are {side}×{side} already: declare \
                 the model's input as {found:?} and drop --resize"
            ))
        } else {
            Some(format!(
                "--resize makes square images: declare the model's input as {:?} to train on \
                 them, or as {found:?} to train on the images as they are, without --resize",
                [expected[0], side, side]
            ))
        };
        return Err(TrainError::Mismatch {
            message: format!(
                "--resize {side} gives {side}×{side} images but model `{}` takes {}×{}",
                model.name, expected[1], expected[2]
            ),
            help,
        });
    }
    super::data::fit_input(found, expected, resize.is_some()).map_err(|e| {
        let help = if expected[1] == expected[2] {
            format!(
                "pass --resize {} to resize the {}×{} images to the model's {}×{} (bilinear), or declare the model's input as {:?}",
                expected[1], found[1], found[2], expected[1], expected[2], found
            )
        } else {
            format!("declare the model's input as {found:?}")
        };
        TrainError::Mismatch {
            message: e.to_string(),
            help: Some(help),
        }
    })
}

/// What a run reports as it goes.
pub trait Observer {
    /// The run's state is ready (fresh, or from a checkpoint that fits this run): its steps
    /// follow. Called before [`Observer::resumed`]; a run refused before it (a checkpoint
    /// that cannot continue) never gets here.
    fn started(&mut self) {}
    /// The run continues from a checkpoint, at `at`.
    fn resumed(&mut self, _at: Position) {}
    /// An epoch starts with `batches` steps (fewer when resumed mid-epoch).
    fn epoch_start(&mut self, _epoch: u32, _batches: usize) {}
    /// A step finished; `mean_loss` is the epoch's running mean.
    fn step(&mut self, _epoch: u32, _mean_loss: f64) {}
    /// An epoch finished (after evaluation and checkpointing).
    fn epoch_end(&mut self, _stats: &EpochStats) {}
    /// An epoch was trained, but a stop request cut its evaluation short: `stats` without
    /// the test accuracy (NaN).
    fn epoch_cut_short(&mut self, _stats: &EpochStats) {}
    /// The test split is evaluated (after an epoch's last step).
    fn evaluating(&mut self) {}
    /// A checkpoint is written (after an epoch, or on a stop request).
    fn checkpointing(&mut self) {}
}

/// Where a run is: epochs finished, and steps into the next one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Position {
    pub epochs_done: u32,
    pub steps_in_epoch: u64,
    pub steps_per_epoch: u64,
}

impl Position {
    fn new(epochs_done: u32, global_step: u64, steps_per_epoch: u64) -> Position {
        Position {
            epochs_done,
            steps_in_epoch: global_step.saturating_sub(u64::from(epochs_done) * steps_per_epoch),
            steps_per_epoch,
        }
    }
}

impl fmt::Display for Position {
    /// "after epoch 3", or "in epoch 4, after step 36 of 235".
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.steps_in_epoch == 0 {
            write!(f, "after epoch {}", self.epochs_done)
        } else {
            write!(
                f,
                "in epoch {}, after step {} of {}",
                u64::from(self.epochs_done) + 1,
                self.steps_in_epoch,
                self.steps_per_epoch
            )
        }
    }
}

/// An observer that ignores everything.
pub struct Quiet;
impl Observer for Quiet {}

/// How a run ended.
#[derive(Clone, Debug)]
pub struct TrainOutcome {
    /// Parameters and running statistics: the trained model's weights.
    pub weights: Weights,
    /// Per-epoch stats of this invocation.
    pub history: Vec<EpochStats>,
    /// Where the run ended (epochs include those of a resumed checkpoint).
    pub position: Position,
    /// Optimizer steps in total.
    pub steps_done: u64,
    /// Stopped on request before `epochs`; the checkpoint (if any) holds the state.
    pub interrupted: bool,
    /// Where the run started from a checkpoint.
    pub resumed_from: Option<Position>,
    /// The test accuracy of `weights` when the run ended at the end of an epoch (measured by
    /// this run, or read from the checkpoint it resumed); `None` mid-epoch.
    pub test_acc: Option<f64>,
}

/// Training state: the carried tensors and where the run is. While steps run, the carried
/// tensors' current values are on the step session's device; `values` is their host copy,
/// refreshed from the device before it is read.
struct State {
    carried: Vec<Carried>,
    values: Vec<Vec<f32>>,
    epoch: u32,
    step: u64,
    seed: u64,
    /// The test accuracy after the last completed epoch (carried by checkpoints).
    test_acc: Option<f64>,
    /// How many test examples `test_acc` was measured on (`None`: unknown, from a checkpoint
    /// that does not say).
    test_examples: Option<u64>,
}

impl State {
    /// The name of the first parameter or running statistic with a NaN or infinite value.
    fn first_non_finite(&self) -> Option<String> {
        self.carried
            .iter()
            .zip(&self.values)
            .filter(|(c, _)| matches!(c.kind, CarriedKind::Param | CarriedKind::RunningStat))
            .find(|(_, v)| v.iter().any(|x| !x.is_finite()))
            .map(|(c, _)| c.name.clone())
    }
}

/// A fingerprint of the training examples a run sees: their size, every label and a sample
/// of the pixels (as stored, before any `--resize`), so that a resume on other data is refused even when
/// the number of examples matches. Cheap: a few hundred kilobytes are hashed.
fn data_fingerprint(train: &crate::train::data::Dataset) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for d in [train.n, train.channels, train.height, train.width] {
        h.update((d as u64).to_le_bytes());
    }
    for &l in &train.labels {
        h.update([l as u8]);
    }
    let stride = (train.images.len() / 65_536).max(1);
    for x in train.images.iter().step_by(stride) {
        h.update(x.to_le_bytes());
    }
    format!("{:x}", h.finalize())
}

/// The run's settings, as a checkpoint's `optimizer` metadata entry: what a resume must match
/// (optimizer, batch size, examples) and what [`Checkpoint::training_summary`] reads back
/// (`data` and `resize` too).
fn run_info(
    config: &TrainConfig,
    aux_weight: Option<f32>,
    train_examples: usize,
    resize: Option<(usize, usize)>,
) -> serde_json::Value {
    serde_json::json!({
        "optimizer": config.optimizer,
        "lr": config.lr,
        "batch_size": config.batch_size,
        "train_examples": train_examples,
        "data": config.data,
        "resize": resize.map(|(h, _)| h),
        "aux_weight": aux_weight,
    })
}

fn checkpoint_name(c: &Carried) -> String {
    match c.kind {
        CarriedKind::Param | CarriedKind::RunningStat => format!("param.{}", c.name),
        CarriedKind::State { slot } => {
            let param = c.name.strip_suffix(&format!(".{slot}")).unwrap_or(&c.name);
            format!("opt.{slot}.{param}")
        }
    }
}

impl State {
    fn fresh(
        model: &CheckedModel,
        carried: Vec<Carried>,
        config: &TrainConfig,
    ) -> Result<State, TrainError> {
        let w =
            crate::onnx::weights::try_initialize(model, config.init, config.seed).map_err(|e| {
                TrainError::Mismatch {
                    message: e.to_string(),
                    help: Some("train a smaller model, or on a machine with more memory".into()),
                }
            })?;
        let values = carried
            .iter()
            .map(|c| match c.kind {
                CarriedKind::Param | CarriedKind::RunningStat => w
                    .get(&c.name)
                    .expect("initialize covers every spec")
                    .data
                    .clone(),
                CarriedKind::State { .. } => vec![0.0; c.dims.iter().product()],
            })
            .collect();
        Ok(State {
            carried,
            values,
            epoch: 0,
            step: 0,
            seed: config.seed,
            test_acc: None,
            test_examples: None,
        })
    }

    fn from_checkpoint(
        path: &Path,
        model: &CheckedModel,
        carried: Vec<Carried>,
        config: &TrainConfig,
        aux_weight: Option<f32>,
        train: &crate::train::data::Dataset,
        steps_per_epoch: usize,
    ) -> Result<State, TrainError> {
        let train_examples = train.n;
        let ck = Checkpoint::load_for(path, model)?;
        let resume_err = |message: String, help: &str| TrainError::Resume {
            path: path.to_path_buf(),
            message,
            help: format!("{help}, or train from the start: --restart in place of --resume"),
        };
        let info = &ck.optimizer;
        let written_with = info
            .get("optimizer")
            .cloned()
            .and_then(|v| serde_json::from_value::<Optimizer>(v).ok());
        if written_with != Some(config.optimizer) {
            return Err(resume_err(
                format!(
                    "it was written with {}; this run uses {}",
                    written_with.map_or_else(|| "another optimizer".into(), |o| o.describe()),
                    config.optimizer.describe()
                ),
                "resume with the optimizer options of the run that wrote it",
            ));
        }
        // The position in the data is a step count: it means the same batches only with the
        // same batch size over the same examples.
        // A batch beyond the examples is all of them, whatever number was asked for.
        let whole = |b: u64| b.min(train_examples as u64);
        let same_batches = info.get("batch_size").and_then(|v| v.as_u64()).map(whole)
            == Some(whole(config.batch_size as u64))
            && info.get("train_examples").and_then(|v| v.as_u64()) == Some(train_examples as u64);
        if !same_batches {
            return Err(resume_err(
                format!(
                    "it was written with batch size {} over {} training examples; this run has \
                     batch size {} over {}",
                    info.get("batch_size").cloned().unwrap_or_default(),
                    info.get("train_examples").cloned().unwrap_or_default(),
                    config.batch_size,
                    train_examples
                ),
                "resume with the same --batch and --limit-train as the run that wrote it",
            ));
        }
        // Other examples of the same number (another folder, another --resize): refused, as
        // the step count would index other batches. Checkpoints without it are trusted.
        let data = data_fingerprint(train);
        if info
            .get("train_data_sha256")
            .and_then(|v| v.as_str())
            .is_some_and(|written| written != data)
        {
            return Err(resume_err(
                "it was trained on other examples than this run's (another data folder or \
                 --limit-train)"
                    .into(),
                "resume with the --data and --limit-train of the run that wrote it",
            ));
        }
        // The loss weighs the named outputs as it did (checkpoints of a cnnc that did not
        // record it are trusted).
        let written_aux = info.get("aux_weight").and_then(|v| v.as_f64());
        if let (Some(written), Some(now)) = (written_aux, aux_weight) {
            if written as f32 != now {
                let written = super::checkpoint::lr_as_written(written as f32);
                return Err(resume_err(
                    format!(
                        "it was written with --aux-weight {written}; this run has \
                         --aux-weight {}",
                        super::checkpoint::lr_as_written(now)
                    ),
                    &format!("resume with --aux-weight {written}"),
                ));
            }
        }
        if ck.rng_seed != config.seed {
            return Err(resume_err(
                format!(
                    "it was written with --seed {}; this run has --seed {}",
                    ck.rng_seed, config.seed
                ),
                &format!("resume with --seed {}", ck.rng_seed),
            ));
        }
        // Its step count must fall inside the epoch it names with this run's batches (an
        // older cnnc counted a last batch of one example that this one leaves out).
        let into_epoch = ck
            .step
            .checked_sub(u64::from(ck.epoch) * steps_per_epoch as u64);
        if into_epoch.is_none_or(|k| k >= steps_per_epoch as u64) {
            return Err(resume_err(
                format!(
                    "its step count ({} after {} epoch{}) does not fit {steps_per_epoch} batches \
                     per epoch: it was written by another version of cnnc, or is damaged",
                    ck.step,
                    ck.epoch,
                    if ck.epoch == 1 { "" } else { "s" }
                ),
                "resume it with the cnnc that wrote it",
            ));
        }
        let mut values = Vec::with_capacity(carried.len());
        for c in &carried {
            let name = checkpoint_name(c);
            match ck.tensors.get(&name) {
                Some((dims, data)) if *dims == c.dims => values.push(data.clone()),
                Some((dims, _)) => {
                    return Err(resume_err(
                        format!(
                            "tensor `{name}` has shape {dims:?}, the model needs {:?}",
                            c.dims
                        ),
                        "resume with the model that wrote it",
                    ))
                }
                None => {
                    return Err(resume_err(
                        format!("tensor `{name}` is missing"),
                        "resume with the model and optimizer that wrote it",
                    ))
                }
            }
        }
        Ok(State {
            carried,
            values,
            epoch: ck.epoch,
            step: ck.step,
            seed: ck.rng_seed,
            test_acc: ck.test_acc,
            test_examples: ck.test_examples,
        })
    }

    /// The test accuracy of the current weights: known at the end of an epoch only.
    fn epoch_end_test_acc(&self, steps_per_epoch: usize) -> Option<f64> {
        let at_epoch_end = self.step == u64::from(self.epoch) * steps_per_epoch as u64;
        self.test_acc.filter(|_| at_epoch_end)
    }

    /// Writes the checkpoint to `path` (atomically), replacing only what `*found` says is
    /// there ([`Checkpoint::save_expecting`]), which then becomes the file written.
    fn save(
        &self,
        model: &CheckedModel,
        info: serde_json::Value,
        path: &Path,
        found: &mut Found,
    ) -> Result<(), TrainError> {
        *found = self
            .checkpoint(model, info)
            .save_expecting(path, *found)
            .map_err(|error| TrainError::CheckpointWrite {
                error,
                epochs_done: self.epoch,
                steps_done: self.step,
            })?;
        Ok(())
    }

    fn checkpoint(&self, model: &CheckedModel, info: serde_json::Value) -> Checkpoint {
        Checkpoint {
            tensors: self
                .carried
                .iter()
                .zip(&self.values)
                .map(|(c, v)| (checkpoint_name(c), (c.dims.clone(), v.clone())))
                .collect(),
            epoch: self.epoch,
            step: self.step,
            rng_seed: self.seed,
            model_name: model.name.clone(),
            source_sha256: model.source_hash.clone(),
            model_sha256: Some(model.structure_hash()),
            optimizer: info,
            test_acc: self.test_acc,
            test_examples: self.test_examples,
        }
    }

    fn weights(&self) -> Weights {
        let mut w = Weights::new();
        for (c, v) in self.carried.iter().zip(&self.values) {
            if matches!(c.kind, CarriedKind::Param | CarriedKind::RunningStat) {
                w.insert(
                    c.name.clone(),
                    Tensor {
                        dims: c.dims.clone(),
                        data: v.clone(),
                    },
                );
            }
        }
        w
    }
}

/// Sessions for the step and evaluation graphs.
pub struct Sessions {
    pub step: Session,
    pub eval: Session,
    pub carried: Vec<Carried>,
    pub takes_step: bool,
    /// The dropout masks the step takes, drawn by [`crate::train::dropout::draw`].
    pub masks: Vec<graph::DropoutMask>,
    /// The weight of the named outputs' cross-entropy in the step's loss; `None` for a model
    /// without named outputs, whose loss it leaves alone.
    pub aux_weight: Option<f32>,
}

/// Builds both graphs and loads them with `options` (CUDA fails clearly when unavailable).
/// The step graph takes its dropout masks as inputs, which [`train`] draws.
pub fn sessions(
    model: &CheckedModel,
    sources: &SourceMap,
    optimizer: &Optimizer,
    aux_weight: f32,
    options: &SessionOptions,
) -> Result<Sessions, TrainError> {
    let step = graph::step_model(
        model,
        sources,
        optimizer,
        graph::DropoutMode::MaskInput,
        aux_weight,
    )?;
    let eval = graph::eval_model(model, sources)?;
    let rt = Runtime::get()?;
    Ok(Sessions {
        step: rt
            .session_with(&step.model.encode_to_vec(), options)
            .map_err(RuntimeError::for_generated_graph)?,
        eval: rt
            .session_with(&eval.encode_to_vec(), options)
            .map_err(RuntimeError::for_generated_graph)?,
        carried: step.carried,
        takes_step: step.takes_step,
        masks: step.masks,
        aux_weight: (!model.graph.named_outputs.is_empty()).then_some(aux_weight),
    })
}

/// How an epoch is cut into batches.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EpochPlan {
    pub batches: usize,
    /// The batch norm that sees one value per channel per example, if any (after a linear
    /// layer, or on a 1×1 map): a batch of one example has no variance there.
    pub single_value_batchnorm: Option<String>,
    /// The last batch would hold one example and such a batch norm exists: that example is
    /// left out of the epoch (a different one each epoch, the order being shuffled).
    pub drops_last: bool,
}

impl EpochPlan {
    /// Refuses a batch size of 1 where a batch norm would see a single value per channel
    /// (PyTorch refuses such a batch too); drops a last batch of one example there.
    pub fn new(
        model: &CheckedModel,
        n_train: usize,
        batch_size: usize,
    ) -> Result<EpochPlan, TrainError> {
        let single_value_batchnorm = model.layers().into_iter().find_map(|ix| {
            let node = model.node(ix);
            let Op::BatchNorm { .. } = node.op else {
                return None;
            };
            let input = model.shape(*model.graph.inputs(ix).first()?);
            (input.elements() == input.channels()).then(|| node.name.clone())
        });
        if let Some(name) = &single_value_batchnorm {
            if batch_size < 2 || n_train < 2 {
                return Err(TrainError::Mismatch {
                    message: format!(
                        "`{name}` normalises one value per channel per example, so it needs at \
                         least 2 examples per batch ({})",
                        if n_train < 2 {
                            format!("the training data has {n_train} example")
                        } else {
                            format!("--batch {batch_size}")
                        }
                    ),
                    help: Some(if n_train < 2 {
                        "train on at least 2 examples (raise --limit-train, if it is given)".into()
                    } else {
                        "use --batch 2 or more".into()
                    }),
                });
            }
        }
        let drops_last = single_value_batchnorm.is_some() && n_train % batch_size == 1;
        Ok(EpochPlan {
            batches: if drops_last {
                n_train / batch_size
            } else {
                n_train.div_ceil(batch_size)
            },
            single_value_batchnorm,
            drops_last,
        })
    }
}

/// Trains `model` on `splits`. `stop` is polled after every step.
#[allow(clippy::too_many_arguments)]
pub fn train(
    model: &CheckedModel,
    sessions: &mut Sessions,
    splits: &Splits,
    resize: Option<(usize, usize)>,
    config: &TrainConfig,
    stop: &AtomicBool,
    observer: &mut dyn Observer,
) -> Result<TrainOutcome, TrainError> {
    let n_train = splits.train.n;
    let flat = model.input_shape().rank() == 1;
    let plan = EpochPlan::new(model, n_train, config.batch_size)?;
    let mut info = run_info(config, sessions.aux_weight, n_train, resize);
    info["train_data_sha256"] = data_fingerprint(&splits.train).into();
    // What each write may replace: what was there at the start, then the run's own last. A
    // resumed checkpoint is there: where the caller did not say which file it found, the one
    // about to be read.
    let mut found = match (&config.checkpoint, config.resume, config.checkpoint_found) {
        (Some(path), true, Found::Nothing) => Found::at(path),
        (_, _, found) => found,
    };
    let mut state = match (&config.checkpoint, config.resume) {
        (Some(path), true) => State::from_checkpoint(
            path,
            model,
            sessions.carried.clone(),
            config,
            sessions.aux_weight,
            &splits.train,
            plan.batches,
        )?,
        (None, true) => {
            return Err(TrainError::Mismatch {
                message: "--resume needs a checkpoint path".into(),
                help: None,
            })
        }
        _ => State::fresh(model, sessions.carried.clone(), config)?,
    };
    let steps_per_epoch = plan.batches;
    let position = |state: &State| Position::new(state.epoch, state.step, steps_per_epoch as u64);
    let resumed_from = config.resume.then(|| position(&state));
    // How the run ended, from where the state is: the test accuracy is known only at the end
    // of an epoch that was evaluated.
    let outcome = |state: &State, history: Vec<EpochStats>, interrupted: bool| TrainOutcome {
        weights: state.weights(),
        history,
        position: position(state),
        steps_done: state.step,
        interrupted,
        resumed_from,
        test_acc: state.epoch_end_test_acc(steps_per_epoch),
    };
    observer.started();
    if let Some(at) = resumed_from {
        observer.resumed(at);
    }
    let new_names: Vec<String> = state.carried.iter().map(Carried::new_name).collect();
    let tensors: Vec<StateTensor<'_>> = state
        .carried
        .iter()
        .zip(&new_names)
        .zip(&state.values)
        .map(|((c, new), v)| StateTensor {
            input: &c.name,
            output: Some(new),
            dims: &c.dims,
            values: v,
        })
        .collect();
    // The state goes to the device once (fresh or from the checkpoint) and stays there.
    let mut stepper = StatefulSession::new(&mut sessions.step, &tensors, &["loss", "correct"])?;
    drop(tensors);
    let takes_step = sessions.takes_step;
    let masks = &sessions.masks;
    let lr = [config.lr];
    let mut history = Vec::new();
    while state.epoch < config.epochs {
        let epoch = state.epoch + 1;
        let started = Instant::now();
        let mut batches = Batches::new(
            &splits.train,
            BatchConfig {
                resize,
                drop_last: plan.drops_last,
                ..BatchConfig::train(config.batch_size, state.seed, state.epoch)
            },
        );
        let first = (state.step - u64::from(state.epoch) * steps_per_epoch as u64) as usize;
        batches.seek(first);
        observer.epoch_start(epoch, steps_per_epoch - first);
        let (mut loss_sum, mut correct, mut seen) = (0.0f64, 0u64, 0usize);
        let mut index = first;
        let mut times = EpochTimes::default();
        // The k-th batch from here is the run's step `step0 + k` (counted from 0): its masks
        // are drawn with the batch, on the preparing thread.
        let (seed, step0) = (state.seed, state.step);
        let draw_masks = |k: usize, b: usize, values: &mut Vec<Vec<f32>>| {
            values.resize_with(masks.len(), Vec::new);
            for (m, v) in masks.iter().zip(values.iter_mut()) {
                dropout::draw(m, seed, step0 + k as u64, b, v);
            }
        };
        let stopped = prefetched(batches, draw_masks, |batches| -> Result<bool, TrainError> {
            let mut waited = Instant::now();
            while let Some((batch, mask_values)) = batches.next_with_extra() {
                times.batches += waited.elapsed();
                index += 1;
                let b = batch.len();
                let t = [(state.step + 1) as f32];
                let lab_shape = [b];
                let mask_shapes: Vec<Vec<usize>> = masks
                    .iter()
                    .map(|m| std::iter::once(b).chain(m.dims.iter().copied()).collect())
                    .collect();
                let mut inputs = Vec::with_capacity(4 + masks.len());
                let input_dims = model_input_dims(&batch, flat);
                inputs.push(Input::f32("input", &input_dims, batch.images));
                inputs.push(Input::i64("labels", &lab_shape, batch.labels));
                inputs.push(Input::f32("lr", &[], &lr));
                if takes_step {
                    inputs.push(Input::f32("t", &[], &t));
                }
                for ((m, shape), values) in masks.iter().zip(&mask_shapes).zip(mask_values) {
                    inputs.push(Input::f32(&m.input, shape, values));
                }
                let step_started = Instant::now();
                let outs = stepper.run(&inputs)?;
                times.steps += step_started.elapsed();
                drop(inputs);
                let mut outs = outs.into_iter();
                let loss = match outs.next().map(|o| o.data) {
                    Some(OutputData::F32(v)) => v[0],
                    _ => f32::NAN,
                };
                if !loss.is_finite() {
                    return Err(TrainError::Diverged {
                        epoch,
                        step: index,
                        global_step: state.step + 1,
                        loss,
                    });
                }
                if let Some(OutputData::I64(v)) = outs.next().map(|o| o.data) {
                    correct += v[0].max(0) as u64;
                }
                state.step += 1;
                loss_sum += f64::from(loss) * b as f64;
                seen += b;
                observer.step(epoch, loss_sum / seen as f64);
                if stop.load(Ordering::SeqCst) && index < steps_per_epoch {
                    return Ok(true);
                }
                waited = Instant::now();
            }
            Ok(false)
        })?;
        // The batches' buffers are gone (large with --resize) before evaluating.
        let state_started = Instant::now();
        state.values = stepper.state()?;
        if stopped {
            if let Some(path) = &config.checkpoint {
                observer.checkpointing();
                state.save(model, info.clone(), path, &mut found)?;
            }
            return Ok(outcome(&state, history, true));
        }
        // The last update's loss is never computed: a blow-up there shows only in the values.
        let diverged = |what: String| TrainError::DivergedWeights {
            epoch,
            global_step: state.step,
            what,
        };
        if let Some(name) = state.first_non_finite() {
            return Err(diverged(format!("`{name}` holds NaN or infinite values")));
        }
        times.state = state_started.elapsed();
        observer.evaluating();
        let evaluation_started = Instant::now();
        let test_acc = match evaluate(
            &mut sessions.eval,
            &state,
            &splits.test,
            resize,
            config.batch_size,
            flat,
            stop,
        )? {
            Evaluated::Accuracy(acc) => acc,
            Evaluated::NonFiniteLoss(loss) => {
                return Err(diverged(format!(
                    "the model's outputs overflow: the test loss is {loss}"
                )))
            }
        };
        times.evaluation = evaluation_started.elapsed();
        let elapsed = started.elapsed().as_secs_f64();
        state.epoch = epoch;
        state.test_acc = test_acc;
        state.test_examples = Some(splits.test.n as u64);
        let stats = EpochStats {
            epoch,
            loss: if seen > 0 {
                loss_sum / seen as f64
            } else {
                0.0
            },
            train_acc: if seen > 0 {
                correct as f64 / seen as f64
            } else {
                0.0
            },
            examples_per_sec: seen as f64 / elapsed.max(1e-9),
            steps: (first > 0).then_some((first as u64 + 1, steps_per_epoch as u64)),
            test_acc: test_acc.unwrap_or(f64::NAN),
            times,
        };
        if let Some(path) = &config.checkpoint {
            observer.checkpointing();
            if let Err(e) = state.save(model, info.clone(), path, &mut found) {
                // The epoch is trained (and evaluated): its line is said before the error.
                match test_acc {
                    Some(_) => observer.epoch_end(&stats),
                    None => observer.epoch_cut_short(&stats),
                }
                return Err(e);
            }
        }
        // Stopped while evaluating: the epoch is trained and saved, its test accuracy not
        // measured (a test set of 10,000 large images takes long).
        if test_acc.is_none() {
            observer.epoch_cut_short(&stats);
            return Ok(outcome(&state, history, true));
        }
        observer.epoch_end(&stats);
        history.push(stats);
        if stop.load(Ordering::SeqCst) && state.epoch < config.epochs {
            return Ok(outcome(&state, history, true));
        }
    }
    // Resumed at the end of an epoch whose evaluation a stop cut short, with nothing left to
    // train: the test accuracy is measured now (and kept in the checkpoint), not left unknown.
    // So it is when the checkpoint's was measured on another number of test examples
    // (another --limit-test), or on a number it does not record: the accuracy reported, and
    // recorded in the trained model beside its number of test examples, is this run's
    // (the checkpoint keeps its own).
    let at_epoch_end = state.step == u64::from(state.epoch) * steps_per_epoch as u64;
    let unknown = state.test_acc.is_none();
    let measured_on_others = state.test_examples != Some(splits.test.n as u64);
    if history.is_empty() && at_epoch_end && state.epoch > 0 && (unknown || measured_on_others) {
        observer.evaluating();
        state.test_acc = match evaluate(
            &mut sessions.eval,
            &state,
            &splits.test,
            resize,
            config.batch_size,
            flat,
            stop,
        )? {
            Evaluated::Accuracy(acc) => acc,
            Evaluated::NonFiniteLoss(loss) => {
                return Err(TrainError::DivergedWeights {
                    epoch: state.epoch,
                    global_step: state.step,
                    what: format!("the model's outputs overflow: the test loss is {loss}"),
                })
            }
        };
        state.test_examples = Some(splits.test.n as u64);
        if let (Some(path), Some(_), true) = (&config.checkpoint, state.test_acc, unknown) {
            observer.checkpointing();
            state.save(model, info.clone(), path, &mut found)?;
        }
    }
    Ok(outcome(&state, history, false))
}

/// What an evaluation found.
enum Evaluated {
    /// The test accuracy; `None` when a stop came before it was done.
    Accuracy(Option<f64>),
    /// A batch's loss was NaN or infinite: the outputs overflow.
    NonFiniteLoss(f32),
}

/// The shape the model's `input` takes `batch` in: `[B, C, H, W]`, or `[B, C·H·W]` for a
/// model whose input is flat (the same values in the same order).
fn model_input_dims(batch: &super::data::Batch<'_>, flat: bool) -> Vec<usize> {
    let [b, c, h, w] = batch.shape;
    if flat {
        vec![b, c * h * w]
    } else {
        vec![b, c, h, w]
    }
}

/// Test accuracy with the current parameters and running statistics (inference mode).
fn evaluate(
    eval: &mut Session,
    state: &State,
    test: &Dataset,
    resize: Option<(usize, usize)>,
    batch_size: usize,
    flat: bool,
    stop: &AtomicBool,
) -> Result<Evaluated, TrainError> {
    if test.n == 0 {
        return Ok(Evaluated::Accuracy(Some(0.0)));
    }
    let batches = Batches::new(
        test,
        BatchConfig {
            resize,
            ..BatchConfig::eval(batch_size)
        },
    );
    // The parameters and running statistics go to the session's device once per evaluation
    // and are held there; each batch sends only its images and labels.
    let held: Vec<StateTensor<'_>> = state
        .carried
        .iter()
        .zip(&state.values)
        .filter(|(c, _)| matches!(c.kind, CarriedKind::Param | CarriedKind::RunningStat))
        .map(|(c, v)| StateTensor {
            input: &c.name,
            output: None,
            dims: &c.dims,
            values: v,
        })
        .collect();
    let mut eval = StatefulSession::new(eval, &held, &["loss", "correct"])?;
    let mut correct = 0u64;
    prefetched(
        batches,
        |_, _, _| {},
        |batches| {
            while let Some(batch) = batches.next_batch() {
                if stop.load(Ordering::SeqCst) {
                    return Ok(Evaluated::Accuracy(None));
                }
                let lab_shape = [batch.len()];
                let input_dims = model_input_dims(&batch, flat);
                let inputs = [
                    Input::f32("input", &input_dims, batch.images),
                    Input::i64("labels", &lab_shape, batch.labels),
                ];
                let out = eval.run(&inputs)?;
                if let Some(OutputData::F32(v)) = out.first().map(|o| &o.data) {
                    if !v[0].is_finite() {
                        return Ok(Evaluated::NonFiniteLoss(v[0]));
                    }
                }
                if let Some(OutputData::I64(v)) = out.get(1).map(|o| &o.data) {
                    correct += v[0].max(0) as u64;
                }
            }
            Ok(Evaluated::Accuracy(Some(correct as f64 / test.n as f64)))
        },
    )
}

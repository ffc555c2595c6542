//! `cnnc export`: compile a model and write it as ONNX (atomically; with external data
//! beside it when the weights pass 2 GB).

use super::common::{
    check_output_path, fail, install_sigint, OnSigint, EXIT_DIAGNOSTICS, EXIT_INTERRUPTED,
    EXIT_USAGE,
};
use cnnc::onnx::{self, ExportOptions, Init};
use cnnc::shape::summary::bytes;
use cnnc::train::graph::{self, DropoutMode, GradOptions, TRAIN_OPSET};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum InitArg {
    /// PyTorch's default initialization.
    Default,
    /// Xavier (Glorot) uniform weights, zero biases.
    Xavier,
    /// Kaiming (He) uniform weights for ReLU, zero biases.
    Kaiming,
}

#[derive(clap::Args, Debug)]
pub struct ExportArgs {
    /// The .cnn file.
    pub file: PathBuf,
    /// Where to write the ONNX model.
    #[arg(short, long, value_name = "OUT.onnx")]
    pub output: PathBuf,
    /// Which model of the file (needed when it defines several).
    #[arg(long, value_name = "NAME")]
    pub model: Option<String>,
    /// ONNX opset, 17 to 21 [default: 17]; --grad and --train graphs are always opset 18 (only --opset 18 is taken with them).
    #[arg(long, value_name = "N", allow_negative_numbers = true, value_parser = super::common::whole_number::<i64>)]
    pub opset: Option<i64>,
    /// Seed of the random initial weights, and with --grad or --train of the dropout masks
    /// (as `cnnc train --seed` draws them) [default: 0].
    #[arg(long, value_name = "S", value_parser = super::common::whole_number::<u64>, allow_negative_numbers = true)]
    pub seed: Option<u64>,
    /// How to draw the initial weights [default: default, PyTorch's].
    #[arg(long, value_enum, conflicts_with = "weights")]
    pub init: Option<InitArg>,
    /// Take the weights from a safetensors file (keyed by layer name, PyTorch-style), or from
    /// a checkpoint of `cnnc train`.
    #[arg(long, value_name = "W.safetensors")]
    pub weights: Option<PathBuf>,
    /// Leave the input's height and width open (`height`, `width`; the output's
    /// `output_height`, `output_width`), so the model runs on images of any size, as a
    /// fully convolutional network (U-Net, super-resolution) should. The shapes are
    /// checked at the declared size; `crop(e1)` and `upsample(size=[skip.h, skip.w])` take
    /// the tensor's size at run time; a layer whose export holds at that size only
    /// (flatten, ceil-mode pooling with a stride, adaptive pooling to more than one pixel, a
    /// value computed from `in.h`/`skip.w`) is refused with its place.
    #[arg(long, conflicts_with_all = ["grad", "train"])]
    pub dynamic_size: bool,
    /// Write the main output alone: leave out the named outputs (`output NAME { … }`) and
    /// the layers only they read, as PyTorch's evaluation mode drops GoogLeNet's auxiliary
    /// classifiers. --weights may be a checkpoint of the whole model, or lack the left-out
    /// layers' tensors.
    #[arg(long, conflicts_with_all = ["grad", "train"])]
    pub main_output_only: bool,
    /// Write the gradient graph instead (opset 18): inputs `input`, `labels` and every
    /// parameter (defaulting to the weights); outputs `loss` and `grad.<parameter>`.
    #[arg(long, conflicts_with = "train")]
    pub grad: bool,
    /// Write the training step graph instead (opset 18): forward, loss, backward and the
    /// optimizer update. Inputs `input`, `labels`, `lr` (a float scalar), for Adam `t` (the
    /// step number as a float, counted from 1), and every carried tensor: the parameters
    /// and running statistics (defaulting to the weights: drawn, or read with --weights) and
    /// the optimizer state (defaulting to zeros). Outputs `loss`, `correct` and
    /// `new.<tensor>` for each carried tensor; feed those back as the next step's inputs.
    #[arg(long)]
    pub train: bool,
    /// The optimizer of the step graph (with --train) [default: sgd].
    #[arg(long, value_enum)]
    pub optimizer: Option<OptimizerArg>,
    /// SGD momentum of the step graph (with --train) [default: 0].
    #[arg(long, value_name = "M", value_parser = super::common::non_negative, allow_negative_numbers = true)]
    pub momentum: Option<f32>,
    /// Weight decay of the step graph (with --train) [default: 0].
    #[arg(long, value_name = "W", value_parser = super::common::non_negative, allow_negative_numbers = true)]
    pub weight_decay: Option<f32>,
    /// The weight of each named output's cross-entropy in the loss of the gradient or step
    /// graph (with --grad or --train) [default: 0.3]; 0 leaves the named outputs out.
    #[arg(long, value_name = "W", value_parser = super::common::non_negative, allow_negative_numbers = true)]
    pub aux_weight: Option<f32>,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum OptimizerArg {
    /// Stochastic gradient descent, optionally with momentum (PyTorch's SGD).
    Sgd,
    /// Adam with betas (0.9, 0.999), eps 1e-8 (PyTorch's Adam).
    Adam,
}

impl OptimizerArg {
    pub fn build(self, momentum: f32, weight_decay: f32) -> cnnc::train::graph::Optimizer {
        match self {
            OptimizerArg::Sgd => cnnc::train::graph::Optimizer::Sgd {
                momentum,
                weight_decay,
            },
            OptimizerArg::Adam => cnnc::train::graph::Optimizer::adam(weight_decay),
        }
    }
}

pub fn run(a: ExportArgs) -> ExitCode {
    let start = Instant::now();
    install_sigint(OnSigint::CancelWrites);
    let opset = a.opset.unwrap_or(onnx::DEFAULT_OPSET);
    if let Err(e) = onnx::ir_version(opset) {
        return fail(EXIT_USAGE, e);
    }
    if a.seed.is_some() && a.weights.is_some() && !(a.grad || a.train) {
        return fail(
            EXIT_USAGE,
            "--seed draws the initial weights, which --weights gives: leave one out (with \
             --grad or --train, --seed seeds the dropout masks and may go with --weights)",
        );
    }
    let mut inputs = vec![("the model's source", a.file.as_path())];
    inputs.extend(a.weights.as_deref().map(|w| ("the weights file", w)));
    if let Err(e) = check_output_path(&a.output, Some("model.onnx"), &inputs) {
        return fail(EXIT_USAGE, e);
    }
    let compilation = match super::common::compile_for(&a.file, a.model.as_deref()) {
        Ok(c) => c,
        Err(e) => return fail(EXIT_USAGE, e),
    };
    // Files reached through `use` are known only now.
    let sources: Vec<(&str, &std::path::Path)> = compilation
        .sources
        .files()
        .map(|(_, f)| ("a source of the model (through `use`)", f.path.as_path()))
        .collect();
    // After what the path is to this command (a source): what it holds.
    if let Err(e) = check_output_path(&a.output, Some("model.onnx"), &sources)
        .and_then(|()| super::common::check_replaces_only_a_model(&a.output))
    {
        return fail(EXIT_USAGE, e);
    }
    // Warnings are shown too; errors stop the export.
    super::common::print_diagnostics(&compilation);
    if compilation.diagnostics.has_errors() {
        return ExitCode::from(EXIT_DIAGNOSTICS);
    }
    let model = match compilation.model(a.model.as_deref()) {
        Ok(m) => m,
        Err(e) => return fail(EXIT_USAGE, e),
    };
    let specs = onnx::parameter_specs(model);
    // With --main-output-only, the parameters of the layers left out, which need not be
    // given (`stand_in_for_dropped`); with --dynamic-size also those of layers kept only
    // for a size taken from their output, whose values reach no output.
    let dropped: std::collections::HashSet<&str> = if a.main_output_only {
        let kept = model.graph.feeding(model.graph.output);
        specs
            .iter()
            .filter(|s| !kept.contains(&s.node))
            .map(|s| s.name.as_str())
            .collect()
    } else {
        Default::default()
    };
    // How a checkpoint's weights were trained, for the inference model's metadata.
    let mut trained_by = None;
    // Read once (a pipe gives its bytes once), then told apart by their header.
    let weights_bytes = match &a.weights {
        // Parameters and up to two optimizer states (a checkpoint), and the header.
        Some(path) => match cnnc::fsutil::read_input(path, weights_limit(model)) {
            Ok(b) => Some((path, b)),
            Err(e) => return fail(EXIT_USAGE, format!("{}: {e}", path.display())),
        },
        None => None,
    };
    let given = match &weights_bytes {
        // A checkpoint of `cnnc train` (after Ctrl-C, the only file there is) gives the
        // weights it holds, once it is known to be this model's.
        Some((path, bytes)) if cnnc::train::Checkpoint::is_checkpoint_bytes(bytes) => {
            match cnnc::train::Checkpoint::from_bytes(path, bytes)
                .and_then(|c| c.verified_for(path, model))
            {
                Ok(ck) => {
                    trained_by = Some(ck.training_summary());
                    let mut w = ck.weights();
                    if let Err(problems) = w
                        .check(&specs)
                        .or_else(|p| stand_in_for_dropped(&mut w, p, &specs, &dropped))
                    {
                        let e = onnx::weights::WeightsError::Mismatch {
                            path: path.to_path_buf(),
                            problems,
                            foreign_name: None,
                        };
                        return fail(EXIT_USAGE, e);
                    }
                    Some(w)
                }
                Err(e) => {
                    let help = e
                        .help()
                        .map(|h| format!("\n  help: {h}"))
                        .unwrap_or_default();
                    return fail(EXIT_USAGE, format!("{e}{help}"));
                }
            }
        }
        Some((path, bytes)) => match onnx::weights::load_safetensors_bytes(path, bytes, &specs) {
            Ok(w) => Some(w),
            // Missing only what --main-output-only leaves out: read without those.
            Err(onnx::weights::WeightsError::Mismatch { problems, .. })
                if missing_only(&problems, &dropped).is_some() =>
            {
                let missing = missing_only(&problems, &dropped).unwrap_or_default();
                let given: Vec<onnx::ParamSpec> = specs
                    .iter()
                    .filter(|s| !missing.contains(s.name.as_str()))
                    .cloned()
                    .collect();
                match onnx::weights::load_safetensors_bytes(path, bytes, &given) {
                    Ok(mut w) => {
                        zeros_for(&mut w, &specs, &missing);
                        Some(w)
                    }
                    Err(e) => return fail(EXIT_USAGE, e),
                }
            }
            Err(e) => return fail(EXIT_USAGE, e),
        },
        None => None,
    };
    let init = match a.init.unwrap_or(InitArg::Default) {
        InitArg::Default => Init::Default,
        InitArg::Xavier => Init::Xavier,
        InitArg::Kaiming => Init::Kaiming,
    };
    let seed = a.seed.unwrap_or(0);
    let training = a.grad || a.train;
    if !a.train && (a.optimizer.is_some() || a.momentum.is_some() || a.weight_decay.is_some()) {
        return fail(
            EXIT_USAGE,
            format!(
                "--optimizer, --momentum and --weight-decay configure the training step graph: \
                 add --train{}",
                if a.grad {
                    " (the gradient graph of --grad has no optimizer)"
                } else {
                    ""
                }
            ),
        );
    }
    let optimizer = a.optimizer.unwrap_or(OptimizerArg::Sgd);
    let (momentum, weight_decay) = (a.momentum.unwrap_or(0.0), a.weight_decay.unwrap_or(0.0));
    if a.train && optimizer == OptimizerArg::Adam && momentum != 0.0 {
        return fail(
            EXIT_USAGE,
            "--momentum is SGD's; Adam uses its betas (0.9, 0.999)",
        );
    }
    if !training && a.aux_weight.is_some() {
        return fail(
            EXIT_USAGE,
            "--aux-weight weighs the named outputs' losses in a training graph: add --grad or \
             --train",
        );
    }
    let aux_weight = a
        .aux_weight
        .unwrap_or(cnnc::train::graph::DEFAULT_AUX_WEIGHT);
    if training {
        super::common::warn_final_softmax(model, aux_weight);
    }
    if training && a.opset.is_some_and(|o| o != TRAIN_OPSET) {
        return fail(
            EXIT_USAGE,
            format!("training graphs are written with opset {TRAIN_OPSET}; leave out --opset"),
        );
    }
    if a.aux_weight.is_some() && model.graph.named_outputs.is_empty() {
        note!(
            "note: model `{}` has no named outputs (`output NAME {{ … }}`): --aux-weight \
             changes nothing",
            model.name
        );
    }
    if a.main_output_only && model.graph.named_outputs.is_empty() {
        note!(
            "note: model `{}` has no named outputs (`output NAME {{ … }}`): --main-output-only \
             changes nothing",
            model.name
        );
    }
    let options = ExportOptions {
        opset: if training { TRAIN_OPSET } else { opset },
        dynamic_size: a.dynamic_size,
        main_output_only: a.main_output_only,
        // As `cnnc train --out` would have written it (the graphs of --grad and --train are
        // for training, not for feeding images).
        metadata: trained_by
            .filter(|_| !training)
            .map(|t| t.metadata())
            .unwrap_or_default(),
        ..Default::default()
    };
    // Whether the model about to be replaced keeps its weights in the data file beside it
    // (read only where that file is there).
    let used_its_data_file = onnx::lower::external_data_file(&a.output).1.is_file()
        && onnx::lower::uses_its_data_file(&a.output);
    let written = if training {
        // Training graphs hold the weights in memory (they are their parameters' defaults):
        // drawn, as initializers, the optimizer state's zeros, and all of it encoded.
        let slots = if a.grad {
            0
        } else {
            optimizer.build(momentum, weight_decay).slots().len() as u64
        };
        let copies = 3 + 2 * slots;
        let need = model
            .total_params()
            .saturating_mul(4)
            .saturating_mul(copies);
        if let Some(available) = super::common::available_memory().filter(|&m| need > m) {
            return fail(
                EXIT_USAGE,
                format!(
                    "the {} graph holds the weights {copies} times over (the weights, the \
                     graph's copy as its inputs' defaults{}, and the encoded file), about {}, \
                     more than the {} of memory available",
                    if a.grad { "gradient" } else { "training step" },
                    if slots > 0 {
                        ", the optimizer state"
                    } else {
                        ""
                    },
                    cnnc::shape::summary::bytes(need),
                    cnnc::shape::summary::bytes(available)
                ) + "\n  help: export the inference model (without --grad or --train), which \
                     streams its weights, or use a machine with more memory",
            );
        }
        let weights = match given {
            Some(w) => w,
            None => match onnx::weights::try_initialize(model, init, seed) {
                Ok(w) => w,
                Err(e) => return fail(EXIT_USAGE, e),
            },
        };
        let built = if a.grad {
            let o = GradOptions {
                weights: Some(&weights),
                aux_weight,
                ..Default::default()
            };
            graph::grad_model(model, &compilation.sources, &o)
                .map(|mut m| {
                    graph::seed_dropout(&mut m, seed);
                    m
                })
                .map_err(|e| e.to_string())
        } else {
            super::common::warn_large_momentum(momentum);
            let opt = optimizer.build(momentum, weight_decay);
            graph::step_model(
                model,
                &compilation.sources,
                &opt,
                DropoutMode::Random,
                aux_weight,
            )
            .and_then(|mut s| {
                s.set_dropout_seed(seed);
                s.set_initial_state(&weights).map(|()| s.model)
            })
            .map_err(|e| e.to_string())
        };
        built.and_then(|p| onnx::write_model(p, &a.output, &options).map_err(|e| e.to_string()))
    } else {
        // The inference model streams: weights drawn (or copied) as the file is written.
        let values = match &given {
            Some(w) => onnx::ParamValues::Given(w),
            None => onnx::ParamValues::Drawn { init, seed },
        };
        onnx::export_to_file(model, &compilation.sources, values, &a.output, &options)
            .map_err(|e| e.to_string())
    };
    let written = match written {
        Ok(w) => w,
        Err(_) if cnnc::fsutil::CANCEL.load(std::sync::atomic::Ordering::SeqCst) => {
            return fail(
                EXIT_INTERRUPTED,
                format!(
                    "stopped by {}: {} was not written",
                    cnnc::fsutil::stopped_by(),
                    a.output.display()
                ),
            )
        }
        Err(e) => return fail(EXIT_USAGE, e),
    };
    // The parameters written: with --main-output-only, those of the layers kept.
    let kept = a
        .main_output_only
        .then(|| onnx::main_output_nodes(model, a.dynamic_size));
    let params: usize = specs
        .iter()
        .filter(|s| s.kind.is_trainable())
        .filter(|s| kept.as_ref().is_none_or(|k| k.contains(&s.node)))
        .map(|s| s.elements())
        .sum();
    let data = match &written.data {
        Some((p, n)) => format!(" + {} ({})", p.display(), bytes(*n)),
        None => String::new(),
    };
    // A self-contained model beside the external data of the earlier, larger export it
    // replaced: that file is not cnnc's to delete, but it is stale.
    let (_, stale) = onnx::lower::external_data_file(&a.output);
    if written.data.is_none() && stale.is_file() && used_its_data_file {
        note!(
            "note: {} is left from an earlier export; {} no longer uses it, so it can be deleted",
            stale.display(),
            a.output.display()
        );
    }
    note!(
        "wrote {}{} ({}){data}: model {}, {} parameters, opset {}, in {:.2} s",
        if a.grad {
            "the gradient graph "
        } else if a.train {
            "the training step graph "
        } else {
            ""
        },
        a.output.display(),
        bytes(written.model_bytes),
        model.name,
        cnnc::shape::summary::group(params as u64),
        options.opset,
        start.elapsed().as_secs_f64()
    );
    ExitCode::SUCCESS
}

/// The names of `problems` when each is a missing parameter of `dropped` (none at all when
/// anything else is wrong).
fn missing_only<'p>(
    problems: &'p [onnx::weights::WeightProblem],
    dropped: &std::collections::HashSet<&str>,
) -> Option<std::collections::HashSet<&'p str>> {
    problems
        .iter()
        .map(|p| match p {
            onnx::weights::WeightProblem::Missing { name, .. }
                if dropped.contains(name.as_str()) =>
            {
                Some(name.as_str())
            }
            _ => None,
        })
        .collect()
}

/// `export --main-output-only`: weights missing only parameters of the layers it leaves out
/// (a file made for the model without its heads) get zeros in their place, which are never
/// written; any other problem stands.
fn stand_in_for_dropped(
    w: &mut onnx::Weights,
    problems: Vec<onnx::weights::WeightProblem>,
    specs: &[onnx::ParamSpec],
    dropped: &std::collections::HashSet<&str>,
) -> Result<(), Vec<onnx::weights::WeightProblem>> {
    let Some(missing) = missing_only(&problems, dropped) else {
        return Err(problems);
    };
    zeros_for(w, specs, &missing);
    Ok(())
}

/// Zeros for the parameters of `specs` named in `names`.
fn zeros_for(
    w: &mut onnx::Weights,
    specs: &[onnx::ParamSpec],
    names: &std::collections::HashSet<&str>,
) {
    for s in specs.iter().filter(|s| names.contains(s.name.as_str())) {
        w.insert(
            s.name.clone(),
            onnx::weights::Tensor {
                dims: s.dims.clone(),
                data: vec![0.0; s.elements()],
            },
        );
    }
}

/// The most bytes a `--weights` file for `model` can hold: a checkpoint's parameters and two
/// optimizer states, with room for its header.
fn weights_limit(model: &cnnc::shape::CheckedModel) -> u64 {
    model
        .total_params()
        .saturating_mul(4 * 3)
        .saturating_add(256 << 20)
}

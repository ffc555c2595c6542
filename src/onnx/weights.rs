//! Parameters: their names and shapes ([`parameter_specs`], the single source of truth that
//! export and training share), their initialization, and safetensors files.
//!
//! Names are PyTorch's: `<layer>.weight`, `<layer>.bias`, and for batch norm also
//! `<layer>.running_mean`, `<layer>.running_var`, where `<layer>` is the IR node's scoped
//! name. Shapes are PyTorch's too (Conv `[M, C/g, kh, kw]`, ConvTranspose `[C, M/g, kh, kw]`,
//! Linear `[out, in]`), so a PyTorch `state_dict` saved as safetensors loads as is.

use crate::fsutil;
use crate::ir::Op;
use crate::shape::CheckedModel;
use petgraph::graph::NodeIndex;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

/// What a parameter is to its layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ParamKind {
    /// Conv, ConvTranspose or Linear weight.
    Weight,
    /// Conv, ConvTranspose or Linear bias.
    Bias,
    /// Batch or group norm γ (`.weight`), 1 at first.
    BnScale,
    /// Batch or group norm β (`.bias`), 0 at first.
    BnShift,
    /// PReLU's slopes (`.weight`), 0.25 at first, as PyTorch's.
    Slope,
    /// A layer scale's factors (`.weight`), the layer's `init` at first (its f32 bits, so
    /// that the kind stays `Eq` and `Hash`).
    LayerScale { init_bits: u32 },
    /// Batch norm running mean (a buffer, not trained by gradient).
    RunningMean,
    /// Batch norm running variance (a buffer, not trained by gradient).
    RunningVar,
}

impl ParamKind {
    /// The name's suffix after the layer name.
    pub fn suffix(self) -> &'static str {
        match self {
            ParamKind::Weight
            | ParamKind::BnScale
            | ParamKind::Slope
            | ParamKind::LayerScale { .. } => "weight",
            ParamKind::Bias | ParamKind::BnShift => "bias",
            ParamKind::RunningMean => "running_mean",
            ParamKind::RunningVar => "running_var",
        }
    }

    /// Whether gradient descent updates it (running statistics are buffers).
    pub fn is_trainable(self) -> bool {
        !matches!(self, ParamKind::RunningMean | ParamKind::RunningVar)
    }
}

/// One parameter (or buffer) of a model.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParamSpec {
    /// `<layer>.<suffix>`, e.g. `stage1.conv1.weight`.
    pub name: String,
    /// The layer (IR node) it belongs to.
    pub node: NodeIndex,
    pub dims: Vec<usize>,
    pub kind: ParamKind,
    /// PyTorch's `_calculate_fan_in_and_fan_out` of the layer's weight (for a bias, of the
    /// weight beside it; 0 for batch norm).
    pub fan_in: usize,
    pub fan_out: usize,
}

impl ParamSpec {
    /// Its elements: at most 2^38 in a checked model (`shape::rules::MAX_CONSTANT_ELEMENTS`);
    /// saturating, never wrapped, all the same.
    pub fn elements(&self) -> usize {
        self.dims.iter().fold(1usize, |n, &d| n.saturating_mul(d))
    }
}

/// Every parameter of the model, layers in topological order, and within a layer weight,
/// bias, running mean, running variance.
pub fn parameter_specs(model: &CheckedModel) -> Vec<ParamSpec> {
    let mut specs = Vec::new();
    for ix in model.layers() {
        let node = model.node(ix);
        let in_ch = || {
            let inputs = model.graph.inputs(ix);
            inputs.first().map_or(0, |&i| model.shape(i).channels()) as usize
        };
        let mut push = |kind: ParamKind, dims: Vec<usize>, fan_in: usize, fan_out: usize| {
            specs.push(ParamSpec {
                name: format!("{}.{}", node.name, kind.suffix()),
                node: ix,
                dims,
                kind,
                fan_in,
                fan_out,
            })
        };
        match &node.op {
            Op::Conv(a) => {
                let (m, g) = (a.out_channels as usize, a.groups.max(1) as usize);
                let rf = (a.kernel[0] * a.kernel[1]) as usize;
                let c_g = in_ch() / g;
                push(
                    ParamKind::Weight,
                    vec![m, c_g, a.kernel[0] as usize, a.kernel[1] as usize],
                    c_g * rf,
                    m * rf,
                );
                if a.bias {
                    push(ParamKind::Bias, vec![m], c_g * rf, m * rf);
                }
            }
            Op::ConvTranspose(a) => {
                let (m, g) = (a.out_channels as usize, a.groups.max(1) as usize);
                let rf = (a.kernel[0] * a.kernel[1]) as usize;
                let c = in_ch();
                // PyTorch: fan_in = weight.size(1) * receptive field, fan_out = size(0) * rf.
                push(
                    ParamKind::Weight,
                    vec![c, m / g, a.kernel[0] as usize, a.kernel[1] as usize],
                    m / g * rf,
                    c * rf,
                );
                if a.bias {
                    push(ParamKind::Bias, vec![m], m / g * rf, c * rf);
                }
            }
            Op::Linear { out_features, bias } => {
                let (o, i) = (*out_features as usize, in_ch());
                push(ParamKind::Weight, vec![o, i], i, o);
                if *bias {
                    push(ParamKind::Bias, vec![o], i, o);
                }
            }
            Op::Prelu { per_channel } => {
                let c = if *per_channel { in_ch() } else { 1 };
                push(ParamKind::Slope, vec![c], 0, 0);
            }
            Op::GroupNorm { affine: true, .. } | Op::LayerNorm { affine: true, .. } => {
                let c = in_ch();
                push(ParamKind::BnScale, vec![c], 0, 0);
                push(ParamKind::BnShift, vec![c], 0, 0);
            }
            // PyTorch's [C, 1, 1] on an image (torchvision's ConvNeXt), [F] on a vector: it
            // broadcasts over the pixels as it is.
            Op::LayerScale { init } => {
                let image = model
                    .graph
                    .inputs(ix)
                    .first()
                    .is_some_and(|&i| model.shape(i).rank() == 3);
                let dims = if image {
                    vec![in_ch(), 1, 1]
                } else {
                    vec![in_ch()]
                };
                let init_bits = (*init as f32).to_bits();
                push(ParamKind::LayerScale { init_bits }, dims, 0, 0);
            }
            Op::BatchNorm { affine, .. } => {
                let c = in_ch();
                if *affine {
                    push(ParamKind::BnScale, vec![c], 0, 0);
                    push(ParamKind::BnShift, vec![c], 0, 0);
                }
                push(ParamKind::RunningMean, vec![c], 0, 0);
                push(ParamKind::RunningVar, vec![c], 0, 0);
            }
            Op::Input
            | Op::GroupNorm { affine: false, .. }
            | Op::LayerNorm { affine: false, .. }
            | Op::MaxPool(_)
            | Op::AvgPool(_)
            | Op::AdaptiveAvgPool { .. }
            | Op::GlobalAvgPool
            | Op::AdaptiveMaxPool { .. }
            | Op::GlobalMaxPool
            | Op::Relu
            | Op::Sigmoid
            | Op::Tanh
            | Op::LeakyRelu { .. }
            | Op::Elu { .. }
            | Op::Silu
            | Op::Mish
            | Op::Scale { .. }
            | Op::Normalize { .. }
            | Op::Gelu
            | Op::Relu6
            | Op::HardSigmoid
            | Op::HardSwish
            | Op::Softmax
            | Op::Dropout { .. }
            | Op::Flatten
            | Op::Concat
            | Op::Add
            | Op::Mul
            | Op::Crop { .. }
            | Op::Pad { .. }
            | Op::Slice { .. }
            | Op::ChannelShuffle { .. }
            | Op::PixelShuffle { .. }
            | Op::Upsample { .. } => {}
        }
    }
    specs
}

/// A dense float32 tensor, row-major.
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor {
    pub dims: Vec<usize>,
    pub data: Vec<f32>,
}

/// Named tensors, ordered by name.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Weights {
    pub tensors: BTreeMap<String, Tensor>,
}

impl Weights {
    pub fn new() -> Weights {
        Weights::default()
    }
    pub fn get(&self, name: &str) -> Option<&Tensor> {
        self.tensors.get(name)
    }
    pub fn insert(&mut self, name: impl Into<String>, tensor: Tensor) {
        self.tensors.insert(name.into(), tensor);
    }
    pub fn len(&self) -> usize {
        self.tensors.len()
    }
    pub fn is_empty(&self) -> bool {
        self.tensors.is_empty()
    }
    /// Total number of scalars.
    pub fn elements(&self) -> usize {
        self.tensors.values().map(|t| t.data.len()).sum()
    }

    /// Checks that the tensors are exactly `specs`: reports every missing, extra and
    /// wrongly shaped tensor.
    pub fn check(&self, specs: &[ParamSpec]) -> Result<(), Vec<WeightProblem>> {
        let mut problems = Vec::new();
        for s in specs {
            match self.tensors.get(&s.name) {
                None => problems.push(WeightProblem::Missing {
                    name: s.name.clone(),
                    expected: s.dims.clone(),
                }),
                Some(t) if t.dims != s.dims || t.data.len() != s.elements() => {
                    problems.push(WeightProblem::WrongShape {
                        name: s.name.clone(),
                        expected: s.dims.clone(),
                        found: t.dims.clone(),
                    })
                }
                Some(_) => {}
            }
        }
        // A set, not `specs.iter().any(…)` per tensor: that was quadratic (a model of
        // 20,000 batchnorms took 71 s to export).
        let expected: std::collections::HashSet<&str> =
            specs.iter().map(|s| s.name.as_str()).collect();
        for (name, t) in &self.tensors {
            if !expected.contains(name.as_str()) {
                problems.push(WeightProblem::Extra {
                    name: name.clone(),
                    dims: t.dims.clone(),
                });
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }
}

/// How to draw initial weights.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Init {
    /// PyTorch's defaults: weights kaiming_uniform(a=√5), i.e. U(±1/√fan_in), and biases
    /// U(±1/√fan_in).
    #[default]
    Default,
    /// xavier_uniform weights, U(±√(6/(fan_in+fan_out))); zero biases.
    Xavier,
    /// kaiming_uniform with ReLU gain, U(±√(6/fan_in)); zero biases.
    Kaiming,
}

/// Draws every parameter of `model`. Each parameter has its own random stream, keyed by
/// SHA-256 of `seed` and its name, so a layer's values depend only on the seed, its name and
/// its shape: adding another layer does not change them. The stream is counter-based
/// (wyrand: word `j` is a hash of key + j·constant), so any slice of a parameter can be
/// drawn alone, which lets `cnnc export` draw chunks on several threads as it writes. Batch norm: scale 1, shift 0,
/// running mean 0, running variance 1.
pub fn initialize(model: &CheckedModel, init: Init, seed: u64) -> Weights {
    try_initialize(model, init, seed).expect("the weights fit in memory")
}

/// [`initialize`], or [`OutOfMemory`] when the weights cannot be allocated (a model of tens
/// of gigabytes), instead of aborting the process.
pub fn try_initialize(model: &CheckedModel, init: Init, seed: u64) -> Result<Weights, OutOfMemory> {
    let specs = parameter_specs(model);
    // Each parameter has its own random stream, so the tensors can be drawn in parallel; the
    // result does not depend on the number of threads.
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(8);
    let total: usize = specs.iter().map(ParamSpec::elements).sum();
    let mut chunks: Vec<Vec<ParamSpec>> = vec![Vec::new(); threads];
    let (mut chunk, mut filled) = (0, 0);
    for spec in specs {
        filled += spec.elements();
        chunks[chunk].push(spec);
        if filled * threads > total * (chunk + 1) && chunk + 1 < threads {
            chunk += 1;
        }
    }
    let drawn: Vec<Result<Vec<(String, Tensor)>, OutOfMemory>> = std::thread::scope(|scope| {
        let handles: Vec<_> = chunks
            .into_iter()
            .map(|specs| {
                scope.spawn(move || {
                    specs
                        .into_iter()
                        .map(|spec| {
                            let data = draw(&spec, init, seed)?;
                            let tensor = Tensor {
                                dims: spec.dims,
                                data,
                            };
                            Ok((spec.name, tensor))
                        })
                        .collect::<Result<Vec<_>, OutOfMemory>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("initialisation threads do not panic"))
            .collect()
    });
    let mut w = Weights::new();
    for chunk in drawn {
        for (name, tensor) in chunk? {
            w.insert(name, tensor);
        }
    }
    Ok(w)
}

/// Whether the model's weights (times `copies`: optimizer state, gradients) can be allocated,
/// tried without touching the memory, so a command fails early and clearly on a model of tens
/// of gigabytes.
pub fn check_fits_in_memory(model: &CheckedModel, copies: u64) -> Result<(), OutOfMemory> {
    let bytes = model
        .total_params()
        .saturating_mul(4)
        .saturating_mul(copies);
    let too_large = OutOfMemory { bytes };
    let len = usize::try_from(bytes).map_err(|_| too_large)?;
    let mut probe: Vec<u8> = Vec::new();
    crate::oom::try_reserve_exact(&mut probe, len).map_err(|_| too_large)
}

/// The weights of a model do not fit in memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OutOfMemory {
    pub bytes: u64,
}

impl fmt::Display for OutOfMemory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "cannot allocate {} for the weights: the model is too large for this machine's memory",
            crate::shape::summary::bytes(self.bytes)
        )
    }
}

impl std::error::Error for OutOfMemory {}

/// A zeroed buffer of `n` values, or [`OutOfMemory`].
fn try_filled<T: Clone>(n: usize, value: T) -> Result<Vec<T>, OutOfMemory> {
    let mut v = Vec::new();
    crate::oom::try_reserve_exact(&mut v, n).map_err(|_| OutOfMemory {
        bytes: (n as u64).saturating_mul(std::mem::size_of::<T>() as u64),
    })?;
    v.resize(n, value);
    Ok(v)
}

/// The initial values of one parameter.
fn draw(spec: &ParamSpec, init: Init, seed: u64) -> Result<Vec<f32>, OutOfMemory> {
    let mut out = try_filled(spec.elements(), 0f32)?;
    draw_into(spec, init, seed, 0, &mut out);
    Ok(out)
}

/// Elements `start .. start + out.len()` of the parameter's initial values (row-major), the
/// same values [`initialize`] gives it: each value is drawn from its own position of the
/// parameter's stream, so any range can be drawn alone, on any thread, in any order.
pub fn draw_into(spec: &ParamSpec, init: Init, seed: u64, start: usize, out: &mut [f32]) {
    debug_assert!(start + out.len() <= spec.elements());
    match spec.kind {
        ParamKind::BnScale | ParamKind::RunningVar => out.fill(1.0),
        ParamKind::Slope => out.fill(0.25),
        ParamKind::LayerScale { init_bits } => out.fill(f32::from_bits(init_bits)),
        ParamKind::BnShift | ParamKind::RunningMean => out.fill(0.0),
        ParamKind::Bias if init != Init::Default => out.fill(0.0),
        ParamKind::Bias | ParamKind::Weight => {
            let (fi, fo) = (spec.fan_in as f64, spec.fan_out as f64);
            let bound = match (spec.kind, init) {
                (ParamKind::Bias, _) | (_, Init::Default) => 1.0 / fi.sqrt(),
                (_, Init::Xavier) => (6.0 / (fi + fo)).sqrt(),
                (_, Init::Kaiming) => (6.0 / fi).sqrt(),
            };
            let bound = if bound.is_finite() { bound } else { 0.0 };
            uniform(param_key(seed, &spec.name), start, out, bound as f32);
        }
    }
}

/// The key of a parameter's stream: the first 8 bytes of SHA-256 of the seed and its name.
fn param_key(seed: u64, name: &str) -> u64 {
    let mut h = Sha256::new();
    h.update(b"cnnc-init\0");
    h.update(seed.to_le_bytes());
    h.update(name.as_bytes());
    let d = h.finalize();
    u64::from_le_bytes(d[..8].try_into().expect("32 bytes"))
}

/// wyrand's constants (Wang Yi's wyhash, public domain).
const WY0: u64 = 0xa076_1d64_78bd_642f;
const WY1: u64 = 0xe703_7ed1_a0b4_28db;

/// Word `j` of the stream keyed `key`: wyrand's output after `j + 1` steps. wyrand's state
/// advances by a constant, so any word is computed directly from its position.
/// Also the stream of dropout's masks (`train::dropout`).
#[inline]
pub(crate) fn word_at(key: u64, j: u64) -> u64 {
    let s = key.wrapping_add(j.wrapping_add(1).wrapping_mul(WY0));
    let m = (s as u128) * ((s ^ WY1) as u128);
    ((m >> 64) as u64) ^ (m as u64)
}

/// Values `start ..` of U(−bound, bound) from the stream keyed `key`: value `i` is the top
/// 24 bits of half `i mod 2` (low half first) of word `i / 2`.
fn uniform(key: u64, start: usize, out: &mut [f32], bound: f32) {
    let value = |half: u64| -> f32 {
        let u = ((half as u32) >> 8) as f32 * (1.0 / 16_777_216.0);
        (2.0 * u - 1.0) * bound
    };
    let mut i = start;
    let mut rest = out;
    if i % 2 == 1 && !rest.is_empty() {
        let (first, tail) = std::mem::take(&mut rest).split_at_mut(1);
        first[0] = value(word_at(key, (i / 2) as u64) >> 32);
        rest = tail;
        i += 1;
    }
    let mut pairs = rest.chunks_exact_mut(2);
    let mut j = (i / 2) as u64;
    for pair in &mut pairs {
        let w = word_at(key, j);
        pair[0] = value(w);
        pair[1] = value(w >> 32);
        j += 1;
    }
    if let [last] = pairs.into_remainder() {
        *last = value(word_at(key, j));
    }
}

/// One way a weights file fails to match the model.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WeightProblem {
    Missing {
        name: String,
        expected: Vec<usize>,
    },
    Extra {
        name: String,
        dims: Vec<usize>,
    },
    WrongShape {
        name: String,
        expected: Vec<usize>,
        found: Vec<usize>,
    },
    WrongDtype {
        name: String,
        dtype: String,
    },
    /// Values that are NaN or infinite: a diverged training run.
    NotFinite {
        name: String,
        count: usize,
    },
    /// A batch norm's running variance with negative values (its square root is NaN).
    NegativeVariance {
        name: String,
        count: usize,
    },
}

impl fmt::Display for WeightProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WeightProblem::Missing { name, expected } => {
                write!(f, "missing `{name}` (the model needs {expected:?})")
            }
            WeightProblem::Extra { name, dims } => {
                write!(f, "`{name}` {dims:?} is not a parameter of the model")
            }
            WeightProblem::WrongShape {
                name,
                expected,
                found,
            } => {
                write!(
                    f,
                    "`{name}` has shape {found:?}; the model needs {expected:?}"
                )
            }
            WeightProblem::WrongDtype { name, dtype } => {
                write!(
                    f,
                    "`{name}` is {dtype}; cnnc reads float32 (F32) and float64 (F64) tensors \
                     (save a PyTorch state_dict as float32: `{{k: v.float() for k, v in \
                     sd.items()}}`)"
                )
            }
            WeightProblem::NotFinite { name, count } => {
                write!(
                    f,
                    "`{name}` holds {count} NaN or infinite value(s) (from a training run that diverged?)"
                )
            }
            WeightProblem::NegativeVariance { name, count } => {
                write!(
                    f,
                    "`{name}` holds {count} negative value(s): a variance is never negative \
                     (the model would output NaN; were the tensors swapped?)"
                )
            }
        }
    }
}

/// The most problems a mismatch lists one by one.
const MAX_PROBLEMS_LISTED: usize = 20;

#[derive(Debug)]
pub enum WeightsError {
    Io {
        path: PathBuf,
        message: String,
    },
    /// Not a valid safetensors file.
    Format {
        path: PathBuf,
        message: String,
    },
    /// The file's tensors do not match the model's parameters; every problem is listed.
    Mismatch {
        path: PathBuf,
        problems: Vec<WeightProblem>,
        /// One of the file's names that is not the model's, when fewer than half of the
        /// model's names are in the file: the file names its tensors another way (PyTorch's
        /// module paths).
        foreign_name: Option<String>,
    },
}

impl fmt::Display for WeightsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WeightsError::Io { path, message } => write!(f, "{}: {message}", path.display()),
            WeightsError::Format { path, message } => {
                write!(
                    f,
                    "{} is not a valid safetensors file: {message}",
                    path.display()
                )
            }
            WeightsError::Mismatch {
                path,
                problems,
                foreign_name,
            } => {
                write!(
                    f,
                    "{} does not match the model ({} problem{}):",
                    path.display(),
                    problems.len(),
                    if problems.len() == 1 { "" } else { "s" }
                )?;
                for p in problems.iter().take(MAX_PROBLEMS_LISTED) {
                    write!(f, "\n  {p}")?;
                }
                if problems.len() > MAX_PROBLEMS_LISTED {
                    write!(f, "\n  … and {} more", problems.len() - MAX_PROBLEMS_LISTED)?;
                }
                if let Some(extra) = foreign_name {
                    write!(
                        f,
                        "\n  help: the file names its tensors another way (`{extra}`) than the \
                         model, which names them by layer: `cnnc summary FILE --format json` lists them \
                         in order under `tensors`, the order of PyTorch's `state_dict()` when the \
                         module declares its layers in the order of the .cnn file; rename the \
                         keys (e.g. `dict(zip(names, values))`, leaving out \
                         `num_batches_tracked`)"
                    )?;
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for WeightsError {}

/// Whether a file starts as text does (UTF-8, a byte-order mark allowed, no control bytes
/// but whitespace) rather than with a safetensors header length, whose high bytes are 0.
fn looks_like_text(bytes: &[u8]) -> bool {
    let head = &bytes[..bytes.len().min(64)];
    let utf8 = match std::str::from_utf8(head) {
        Ok(_) => true,
        // A character cut at the end of the window is still text.
        Err(e) => e.error_len().is_none(),
    };
    head.len() >= 8 && utf8 && head.iter().all(|&b| b >= 0x20 || b"\t\n\r".contains(&b))
}

/// Reads a safetensors file keyed by scoped parameter name and checks it against `specs`.
pub fn load_safetensors(path: &Path, specs: &[ParamSpec]) -> Result<Weights, WeightsError> {
    let expected: u64 = specs
        .iter()
        .map(|s| (s.elements() as u64).saturating_mul(4))
        .fold(0, u64::saturating_add);
    let limit = expected.saturating_mul(3).saturating_add(256 << 20);
    let bytes = crate::fsutil::read_input(path, limit).map_err(|message| WeightsError::Io {
        path: path.to_path_buf(),
        message,
    })?;
    load_safetensors_bytes(path, &bytes, specs)
}

/// [`load_safetensors`] of bytes already read (from a pipe, say); `path` names them in errors.
pub fn load_safetensors_bytes(
    path: &Path,
    bytes: &[u8],
    specs: &[ParamSpec],
) -> Result<Weights, WeightsError> {
    let st = safetensors::SafeTensors::deserialize(bytes).map_err(|e| WeightsError::Format {
        path: path.to_path_buf(),
        // A safetensors file starts with the length of its JSON header; text (a `.cnn`
        // source, a JSON file) reads as an absurd length, which safetensors calls "header
        // too large". Say what the file looks like instead.
        message: if looks_like_text(bytes) {
            "it starts with text, not with the 8-byte header length of a safetensors file \
             (give the weights, e.g. saved with `safetensors.torch.save_file`, not a source)"
                .to_string()
        } else if matches!(bytes, [0x08, v, ..] if (1..=30).contains(v)) {
            // An ONNX model starts with the tag of `ir_version`: a trained model given where
            // its checkpoint belongs.
            "it is an ONNX model: --weights takes a safetensors file, such as the \
             `.ckpt.safetensors` checkpoint `cnnc train` writes beside its model (a trained \
             `.onnx` holds its weights already: `cnnc run` and `cnnc bench` take it as it is)"
                .to_string()
        } else if bytes.starts_with(b"\x93NUMPY") {
            "it is a NumPy `.npy` array: --weights takes a safetensors file of the model's \
             parameters by name (`safetensors.numpy.save_file`, or `cnnc train`'s \
             `.ckpt.safetensors`)"
                .to_string()
        } else {
            e.to_string()
        },
    })?;
    let mut weights = Weights::new();
    let mut problems = Vec::new();
    let mut names: Vec<&str> = st.names();
    names.sort();
    let batchnorms: std::collections::HashSet<&str> = specs
        .iter()
        .filter_map(|s| s.name.strip_suffix(".running_mean"))
        .collect();
    for &name in &names {
        let view = st.tensor(name).map_err(|e| WeightsError::Format {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        // PyTorch's BatchNorm keeps a step counter (int64) in its state_dict; it plays no
        // part in the model (cnnc's momentum is fixed), so a state_dict loads as it is. Under
        // PyTorch's names too: no parameter of cnnc's ends so, so it is never a mismatch.
        if name.ends_with(".num_batches_tracked") && view.shape().iter().product::<usize>() == 1 {
            continue;
        }
        // float64 is converted, as a float64 `.npy` input is (a value beyond float32's
        // range becomes infinite, and is reported so below).
        let data = match view.dtype() {
            safetensors::Dtype::F32 => view
                .data()
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect::<Vec<f32>>(),
            safetensors::Dtype::F64 => view
                .data()
                .chunks_exact(8)
                .map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")) as f32)
                .collect::<Vec<f32>>(),
            other => {
                problems.push(WeightProblem::WrongDtype {
                    name: name.to_string(),
                    dtype: format!("{other:?}"),
                });
                continue;
            }
        };
        let not_finite = data.iter().filter(|x| !x.is_finite()).count();
        if not_finite > 0 {
            problems.push(WeightProblem::NotFinite {
                name: name.to_string(),
                count: not_finite,
            });
        }
        let negative = data.iter().filter(|x| **x < 0.0).count();
        let is_variance = name
            .strip_suffix(".running_var")
            .is_some_and(|layer| batchnorms.contains(layer));
        if is_variance && negative > 0 {
            problems.push(WeightProblem::NegativeVariance {
                name: name.to_string(),
                count: negative,
            });
        }
        weights.insert(
            name,
            Tensor {
                dims: view.shape().to_vec(),
                data,
            },
        );
    }
    if let Err(more) = weights.check(specs) {
        // A tensor with the wrong dtype is reported as such, not also as missing.
        let wrong_dtype: Vec<String> = problems
            .iter()
            .filter_map(|p| match p {
                WeightProblem::WrongDtype { name, .. } => Some(name.clone()),
                _ => None,
            })
            .collect();
        problems.extend(more.into_iter().filter(|p| match p {
            WeightProblem::Missing { name, .. } => !wrong_dtype.contains(name),
            _ => true,
        }));
    }
    if problems.is_empty() {
        Ok(weights)
    } else {
        // Fewer than half of the model's names in the file: it names its tensors another
        // way (PyTorch's module paths; a stem's `conv1.weight` may still coincide).
        let model_names: std::collections::HashSet<&str> =
            specs.iter().map(|s| s.name.as_str()).collect();
        let matched = names.iter().filter(|n| model_names.contains(*n)).count();
        let foreign_name = names
            .iter()
            .find(|n| !model_names.contains(*n) && !n.ends_with(".num_batches_tracked"))
            .filter(|_| matched * 2 < specs.len())
            .map(|n| n.to_string());
        Err(WeightsError::Mismatch {
            path: path.to_path_buf(),
            problems,
            foreign_name,
        })
    }
}

/// Writes `weights` as a safetensors file (float32), atomically.
pub fn save_safetensors(path: &Path, weights: &Weights) -> Result<(), WeightsError> {
    let err = |message: String| WeightsError::Io {
        path: path.to_path_buf(),
        message,
    };
    let bytes: Vec<(String, Vec<u8>, Vec<usize>)> = weights
        .tensors
        .iter()
        .map(|(n, t)| {
            let raw = t.data.iter().flat_map(|v| v.to_le_bytes()).collect();
            (n.clone(), raw, t.dims.clone())
        })
        .collect();
    let mut views = Vec::with_capacity(bytes.len());
    for (n, raw, dims) in &bytes {
        let v = safetensors::tensor::TensorView::new(safetensors::Dtype::F32, dims.clone(), raw)
            .map_err(|e| err(format!("tensor `{n}`: {e}")))?;
        views.push((n.as_str(), v));
    }
    let out = safetensors::serialize(views, None).map_err(|e| err(e.to_string()))?;
    fsutil::write_atomic(path, &out).map_err(|e| err(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(n: usize) -> ParamSpec {
        ParamSpec {
            name: "fc.weight".into(),
            node: NodeIndex::new(0),
            dims: vec![n],
            kind: ParamKind::Weight,
            fan_in: 9,
            fan_out: 4,
        }
    }

    #[test]
    fn uniform_draws_have_the_moments_and_histogram_of_the_uniform_law() {
        let n = 1 << 20;
        let mut v = vec![0f32; n];
        draw_into(&spec(n), Init::Default, 5, 0, &mut v);
        let bound = 1.0f64 / 3.0;
        assert!(v.iter().all(|&x| (x as f64).abs() <= bound));
        let mean = v.iter().map(|&x| x as f64).sum::<f64>() / n as f64;
        let var = v.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / n as f64;
        // U(−b, b): mean 0 (sd b/√(3n) ≈ 0.0002), variance b²/3.
        assert!(mean.abs() < 0.001, "mean {mean}");
        assert!(
            (var / (bound * bound / 3.0) - 1.0).abs() < 0.01,
            "variance {var}"
        );
        // 64 equal bins: a χ² with 63 degrees of freedom stays far below 150.
        let mut bins = [0u64; 64];
        for &x in &v {
            let b = ((x as f64 / bound + 1.0) / 2.0 * 64.0) as usize;
            bins[b.min(63)] += 1;
        }
        let e = n as f64 / 64.0;
        let chi2: f64 = bins.iter().map(|&c| (c as f64 - e).powi(2) / e).sum();
        assert!(chi2 < 150.0, "χ² {chi2}");
        // Neighbours are not correlated (both halves of a word are used).
        let lag1 = v.windows(2).map(|w| (w[0] * w[1]) as f64).sum::<f64>() / n as f64;
        assert!(
            (lag1 / var).abs() < 0.01,
            "lag-1 correlation {}",
            lag1 / var
        );
    }

    #[test]
    fn any_range_draws_the_same_values_as_the_whole() {
        let n = 1001;
        let s = spec(n);
        let mut whole = vec![0f32; n];
        draw_into(&s, Init::Xavier, 9, 0, &mut whole);
        for (start, len) in [
            (0, 1),
            (1, 1),
            (1, 2),
            (7, 100),
            (500, 501),
            (1000, 1),
            (3, 0),
        ] {
            let mut part = vec![0f32; len];
            draw_into(&s, Init::Xavier, 9, start, &mut part);
            assert_eq!(part, whole[start..start + len], "{start}+{len}");
        }
        let mut other = vec![0f32; n];
        draw_into(&s, Init::Xavier, 10, 0, &mut other);
        assert_ne!(whole, other, "the seed matters");
    }
}

//! Training graphs: the model's forward pass in training mode, the loss, a reverse-mode
//! backward pass written as standard ONNX ops, and the optimizer update, all in one ONNX
//! graph (opset 18) that plain ONNX Runtime runs. No ONNX Runtime training build is needed.
//!
//! Three graphs come from one lowering:
//! - [`grad_model`]: inputs `input`, `labels` and every trainable parameter; outputs `loss`
//!   and `grad.<parameter>` (batch norm on batch statistics).
//! - [`step_model`]: one optimizer step. Inputs `input`, `labels`, `lr` (and `t` for Adam),
//!   every parameter, running statistic and optimizer state; outputs `loss`, `correct` and
//!   `new.<name>` for every tensor carried from step to step ([`StepGraph::carried`]).
//! - [`eval_model`]: inference mode (running statistics, no dropout) with parameters as
//!   inputs; outputs `loss` and `correct`, so one session evaluates every epoch.
//!
//! Recipes per layer are in `backward.rs`; optimizers (PyTorch semantics) in `optim.rs`.

mod backward;
pub mod builder;
mod forward;
mod optim;

pub use backward::im2col_bytes_per_example;
pub use optim::Optimizer;

use crate::onnx::proto::{
    data_type, AttributeProto, Dim, ModelProto, OperatorSetIdProto, StringStringEntryProto,
    TensorProto,
};
use crate::onnx::{parameter_specs, ParamSpec, Weights};
use crate::shape::CheckedModel;
use crate::source::SourceMap;
use builder::{batched, fixed, Builder};
use petgraph::graph::NodeIndex;
use sha2::{Digest, Sha256};
use std::collections::{HashMap, HashSet};
use std::fmt;

/// The opset of every training graph (Reduce* take their axes as an input from 18 on).
pub const TRAIN_OPSET: i64 = 18;

/// Why a training graph could not be built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GraphError {
    pub message: String,
}

impl fmt::Display for GraphError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for GraphError {}

fn err(message: impl Into<String>) -> GraphError {
    GraphError {
        message: message.into(),
    }
}

/// How dropout behaves in a gradient graph.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum DropoutMode {
    /// ONNX Dropout in training mode, seeded: a fresh mask every run (the graphs `export
    /// --grad` and `--train` write, which run on their own).
    #[default]
    Random,
    /// The keep-mask is an input `dropout_mask.<layer>` (float 0/1, the layer's shape with the
    /// batch first), so the loss is a deterministic function of the parameters and the masks:
    /// what `cnnc train` runs (it draws them, `train::dropout`), and gradient checks.
    MaskInput,
}

/// A keep-mask input of a graph lowered with [`DropoutMode::MaskInput`]: the caller draws it
/// (`train::dropout`) and feeds it each run.
#[derive(Clone, Debug, PartialEq)]
pub struct DropoutMask {
    /// The graph input, `dropout_mask.<layer>`.
    pub input: String,
    /// Its dims after the batch (the layer's output).
    pub dims: Vec<usize>,
    /// The probability of dropping a value.
    pub p: f64,
}

/// Options of [`grad_model`].
#[derive(Clone, Debug)]
pub struct GradOptions<'w> {
    /// Also store every parameter as an initializer holding these weights, so the graph runs
    /// with only `input` and `labels` given (parameters stay overridable inputs).
    pub weights: Option<&'w Weights>,
    pub dropout: DropoutMode,
    /// The weight of each named output's loss in the total (see [`Lowering::loss_terms`]).
    pub aux_weight: f32,
}

impl Default for GradOptions<'_> {
    fn default() -> Self {
        GradOptions {
            weights: None,
            dropout: DropoutMode::default(),
            aux_weight: DEFAULT_AUX_WEIGHT,
        }
    }
}

/// A tensor that goes into the step graph and comes back updated as `new.<name>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Carried {
    pub name: String,
    pub dims: Vec<usize>,
    pub kind: CarriedKind,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CarriedKind {
    /// A trainable parameter.
    Param,
    /// Batch norm running mean or variance.
    RunningStat,
    /// Optimizer state; `slot` is PyTorch's state name (`momentum_buffer`, `exp_avg`, …).
    State { slot: &'static str },
}

impl Carried {
    /// The output name of its updated value.
    pub fn new_name(&self) -> String {
        format!("new.{}", self.name)
    }
}

/// The step graph and what it carries.
#[derive(Clone, Debug)]
pub struct StepGraph {
    pub model: ModelProto,
    /// Inputs beyond `input`, `labels` and the scalars, each with its `new.` output, in the
    /// graph's input order: parameters, running statistics, optimizer state.
    pub carried: Vec<Carried>,
    /// Whether the graph takes the step number `t` (Adam's bias correction).
    pub takes_step: bool,
    /// The dropout masks it takes, in the graph's input order (none with
    /// [`DropoutMode::Random`]).
    pub masks: Vec<DropoutMask>,
}

/// Seeds every Dropout node of `model` from `seed` and the node's name (see
/// [`StepGraph::set_dropout_seed`]); for the gradient graph of `export --grad` too.
pub fn seed_dropout(model: &mut ModelProto, seed: u64) {
    let Some(graph) = model.graph.as_mut() else {
        return;
    };
    for node in graph.node.iter_mut().filter(|n| n.op_type == "Dropout") {
        let mut h = Sha256::new();
        h.update(seed.to_le_bytes());
        h.update(node.name.as_bytes());
        let digest = h.finalize();
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(&digest[..8]);
        // Non-negative: some kernels read the seed as a signed value.
        let value = (u64::from_le_bytes(bytes) >> 1) as i64;
        node.attribute.retain(|a| a.name != "seed");
        node.attribute.push(AttributeProto::int("seed", value));
    }
}

impl StepGraph {
    /// Seeds every Dropout node from `seed` and the node's name, so that a run is repeated
    /// exactly by the same command. ONNX Runtime's Dropout kernel draws its masks from a
    /// generator made once per session from this attribute (a fresh mask every step);
    /// without it the generator is seeded from the clock. A resumed run starts the sequence
    /// again: it is reproducible, but its masks are not the ones the uninterrupted run drew.
    pub fn set_dropout_seed(&mut self, seed: u64) {
        seed_dropout(&mut self.model, seed);
    }

    /// Stores the starting state as initializers, the defaults of the carried inputs:
    /// parameters and running statistics from `weights`, optimizer state at zero. The graph
    /// then runs from `input`, `labels`, `lr` (and `t`, counted from 1) alone, and a caller
    /// that feeds the carried tensors overrides them.
    pub fn set_initial_state(&mut self, weights: &Weights) -> Result<(), GraphError> {
        for c in &self.carried {
            let data = match c.kind {
                CarriedKind::State { .. } => {
                    vec![0.0; c.dims.iter().product()]
                }
                _ => {
                    let t = weights
                        .get(&c.name)
                        .ok_or_else(|| err(format!("the weights have no tensor `{}`", c.name)))?;
                    if t.dims != c.dims {
                        return Err(err(format!(
                            "`{}` has shape {:?} in the weights, {:?} in the model",
                            c.name, t.dims, c.dims
                        )));
                    }
                    t.data.clone()
                }
            };
            self.model
                .graph
                .get_or_insert_with(Default::default)
                .initializer
                .push(TensorProto::from_f32(&c.name, &c.dims, &data));
        }
        Ok(())
    }
}

/// The shape of the labels for a model: `[N]` for an output `[K]`, `[N, H, W]` for a
/// per-pixel output `[K, H, W]`.
pub fn label_dims(model: &CheckedModel) -> Vec<Dim> {
    let out = model.output_shape().dims();
    let mut d = vec![Dim::Param("N".into())];
    d.extend(out[1..].iter().map(|&x| Dim::Value(x as i64)));
    d
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// Batch statistics, dropout active.
    Train,
    /// Running statistics, dropout off.
    Eval,
}

/// What the backward pass needs from a node's forward pass beyond its input and output.
#[derive(Clone, Debug, Default)]
enum Saved {
    #[default]
    None,
    MaxPoolIndices(String),
    /// Adaptive and global max pooling: the MaxPool's indices into `bins`, the input with
    /// its uneven or overlapping bins gathered ([`crate::ir::adaptive_max_gather`]).
    AdaptiveMaxPool {
        indices: String,
        bins: String,
    },
    BatchNorm {
        xhat: String,
        inv_std: String,
        gamma: String,
        axes: Vec<i64>,
        /// With learned γ and β (else `gamma` is ones and they get no gradient).
        affine: bool,
    },
    /// Group, instance and layer norm: x̂ as the statistics were taken (in groups, [N, G, M],
    /// or as the input, for a layer norm's over the channels) and as the input's shape; 1/σ,
    /// [N, G, 1] or [N, 1, H, W]; γ shaped to broadcast over the input (`None` without
    /// affine).
    GroupNorm {
        xhat_grouped: String,
        xhat: String,
        inv_std: String,
        gamma: Option<String>,
        over: NormOver,
    },
    /// Bool keep-mask (ONNX Dropout) or float mask (mask input), and the scale 1/(1-p).
    Dropout {
        mask: String,
        is_bool: bool,
        scale: f32,
    },
}

/// The values of the loss its gradient reuses.
struct Loss {
    /// log softmax(logits) along the class axis.
    log_prob: String,
    /// The labels with a class axis of size 1: [N, 1] or [N, 1, H, W].
    labels: String,
    /// The number of labels, as a float scalar.
    count: String,
}

/// The weight of the named outputs' losses unless told otherwise: torchvision's for
/// GoogLeNet's auxiliary classifiers.
pub const DEFAULT_AUX_WEIGHT: f32 = 0.3;

/// One lowering of a model into a training graph.
struct Lowering<'a> {
    model: &'a CheckedModel,
    sources: &'a SourceMap,
    b: Builder,
    mode: Mode,
    dropout: DropoutMode,
    /// Emit the running-statistic updates (`new.<layer>.running_mean` …).
    update_running: bool,
    specs: Vec<ParamSpec>,
    /// The ONNX value of each IR node's output.
    value: HashMap<NodeIndex, String>,
    saved: HashMap<NodeIndex, Saved>,
    /// Whether a node's output depends on a trainable parameter.
    needs_grad: HashMap<NodeIndex, bool>,
    /// Gradient of each trainable parameter.
    param_grad: HashMap<String, String>,
    /// Memo of `feeds_only_batchnorm`, per layer.
    feeds_only_batchnorm: HashMap<NodeIndex, bool>,
    /// Extra graph outputs made during the forward pass (running statistics).
    extra_outputs: Vec<(String, Vec<usize>)>,
    /// The mask inputs made during the forward pass ([`DropoutMode::MaskInput`]).
    masks: Vec<DropoutMask>,
    /// The weight of each named output's cross-entropy in the loss; 0 leaves them out.
    aux_weight: f32,
    /// The trainable parameters that do not reach the loss (given zero gradients).
    unreached: HashSet<String>,
    /// The trainable parameters that reach the loss with a gradient known to be exactly
    /// zero (a bias before a batch norm): given zero gradients too, but updated (weight
    /// decay, momentum), as PyTorch updates a parameter whose gradient is zero.
    zero_grad: HashSet<String>,
}

impl<'a> Lowering<'a> {
    fn new(model: &'a CheckedModel, sources: &'a SourceMap, mode: Mode, graph: &str) -> Self {
        Lowering {
            model,
            sources,
            b: Builder::new(graph),
            mode,
            dropout: DropoutMode::Random,
            update_running: false,
            specs: parameter_specs(model),
            value: HashMap::new(),
            saved: HashMap::new(),
            needs_grad: HashMap::new(),
            param_grad: HashMap::new(),
            feeds_only_batchnorm: HashMap::new(),
            extra_outputs: Vec::new(),
            masks: Vec::new(),
            aux_weight: 0.0,
            unreached: HashSet::new(),
            zero_grad: HashSet::new(),
        }
    }

    /// The outputs whose cross-entropy makes the loss, with their weights: the main
    /// output's at 1, and with a nonzero `aux_weight` each named output's at that weight
    /// (torchvision trains GoogLeNet with 0.3, Inception-v3 with 0.4).
    fn loss_terms(&self) -> Vec<(NodeIndex, f32)> {
        let graph = &self.model.graph;
        let mut terms = vec![(graph.output, 1.0)];
        if self.aux_weight != 0.0 {
            terms.extend(
                graph
                    .named_outputs
                    .iter()
                    .map(|o| (o.node, self.aux_weight)),
            );
        }
        terms
    }

    /// The total loss over [`Lowering::loss_terms`] as `loss` (exact name), and the gradient
    /// of each term's output.
    fn losses(&mut self) -> (Vec<Loss>, Vec<(NodeIndex, String)>) {
        let terms = self.loss_terms();
        let mut losses = Vec::new();
        let mut seeds = Vec::new();
        let mut parts = Vec::new();
        for &(ix, weight) in &terms {
            let logits = self.value[&ix].clone();
            let target = (terms.len() == 1).then_some("loss");
            let (loss, value) = self.loss(&logits, target);
            if weight == 1.0 {
                parts.push(value);
            } else {
                parts.push(self.b.scale(&value, weight, "loss.weighted"));
            }
            seeds.push((ix, self.loss_grad(&loss, ix, weight)));
            losses.push(loss);
        }
        if terms.len() > 1 {
            let ins: Vec<&str> = parts.iter().map(String::as_str).collect();
            self.b.node_to("Sum", &ins, &["loss"], vec![]);
        }
        (losses, seeds)
    }

    fn reserve(&mut self, name: &str) -> Result<(), GraphError> {
        if self.b.reserve(name) {
            Ok(())
        } else {
            Err(err(format!(
                "two values of the training graph would both be named `{name}`; rename the \
                 layer (`as NAME`)"
            )))
        }
    }

    /// Declares `input`, `labels` and the parameters (all, or only trainable ones) as graph
    /// inputs, and reserves every output name given.
    fn declare(&mut self, with_buffers: bool, outputs: &[String]) -> Result<(), GraphError> {
        for n in ["input", "labels"] {
            self.reserve(n)?;
        }
        self.b.input(
            "input",
            data_type::FLOAT,
            &batched(self.model.input_shape().dims()),
        );
        self.b
            .input("labels", data_type::INT64, &label_dims(self.model));
        for s in self.specs.clone() {
            if s.kind.is_trainable() || with_buffers {
                self.reserve(&s.name)?;
                self.b.input(&s.name, data_type::FLOAT, &fixed(&s.dims));
            }
        }
        for o in outputs {
            self.reserve(o)?;
        }
        Ok(())
    }

    fn trainable(&self) -> Vec<ParamSpec> {
        self.specs
            .iter()
            .filter(|s| s.kind.is_trainable())
            .cloned()
            .collect()
    }

    fn running_stats(&self) -> Vec<ParamSpec> {
        self.specs
            .iter()
            .filter(|s| !s.kind.is_trainable())
            .cloned()
            .collect()
    }

    fn location(&self, ix: NodeIndex) -> String {
        let span = self.model.node(ix).span;
        if (span.file.0 as usize) >= self.sources.files().count() {
            return String::new();
        }
        let f = self.sources.get(span.file);
        let (line, col) = f.line_col(span.start);
        format!("{}:{line}:{col}", f.path.display())
    }

    /// The forward pass over every layer; returns the logits.
    fn forward_all(&mut self) -> Result<String, GraphError> {
        let model = self.model;
        let input = model.graph.input;
        self.value.insert(input, "input".into());
        self.needs_grad.insert(input, false);
        // A set, not `specs.iter().any(…)` per layer: that was quadratic in the layers.
        let trainable: HashSet<NodeIndex> = self
            .specs
            .iter()
            .filter(|s| s.kind.is_trainable())
            .map(|s| s.node)
            .collect();
        // Evaluation reads the main output alone: the named outputs' own layers are left out.
        let evaluated: Option<HashSet<NodeIndex>> = (matches!(self.mode, Mode::Eval)
            && !model.graph.named_outputs.is_empty())
        .then(|| model.graph.feeding(model.graph.output));
        for ix in model.layers() {
            if evaluated.as_ref().is_some_and(|read| !read.contains(&ix)) {
                continue;
            }
            self.b.doc = self.location(ix);
            let has_params = trainable.contains(&ix);
            let needs = has_params || model.graph.inputs(ix).iter().any(|i| self.needs_grad[i]);
            self.needs_grad.insert(ix, needs);
            self.forward(ix)?;
        }
        self.b.doc.clear();
        Ok(self.value[&model.graph.output].clone())
    }

    /// `loss` (exact name): the mean over labels of −log softmax(logits)[label], along the
    /// class axis 1 (per pixel for segmentation outputs). Written with LogSoftmax and
    /// GatherElements rather than SoftmaxCrossEntropyLoss, which ONNX Runtime's CUDA execution
    /// provider lacks (it would run on the CPU, with the logits copied over every step).
    /// `target`: the exact name of the loss value; else a fresh one (one term of several).
    /// Returns the loss's parts for its gradient and the loss value's name.
    fn loss(&mut self, logits: &str, target: Option<&str>) -> (Loss, String) {
        use crate::onnx::proto::AttributeProto;
        let log_prob = self.b.op(
            "LogSoftmax",
            &[logits],
            "log_prob",
            vec![AttributeProto::int("axis", 1)],
        );
        let axis1 = self.b.ints(&[1]);
        let labels = self.b.op(
            "Unsqueeze",
            &["labels", &axis1],
            "labels.unsqueezed",
            vec![],
        );
        let picked = self.b.op(
            "GatherElements",
            &[&log_prob, &labels],
            "log_prob.of_label",
            vec![AttributeProto::int("axis", 1)],
        );
        let total = self.b.op(
            "ReduceSum",
            &[&picked],
            "log_prob.sum",
            vec![AttributeProto::int("keepdims", 0)],
        );
        let count = self.b.size_f32("labels", "label_count");
        let mean = self.b.div(&total, &count, "log_prob.mean");
        let value = match target {
            Some(name) => {
                self.b.node_to("Neg", &[&mean], &[name], vec![]);
                name.to_string()
            }
            None => self.b.op("Neg", &[&mean], "loss.term", vec![]),
        };
        (
            Loss {
                log_prob,
                labels,
                count,
            },
            value,
        )
    }

    /// `correct` (exact name): the number of labels the arg-max of the logits hits.
    fn correct(&mut self, logits: &str) {
        use crate::onnx::proto::AttributeProto;
        let am = self.b.op(
            "ArgMax",
            &[logits],
            "predicted",
            vec![
                AttributeProto::int("axis", 1),
                AttributeProto::int("keepdims", 0),
            ],
        );
        let eq = self.b.op("Equal", &[&am, "labels"], "hits", vec![]);
        let c = self.b.cast(&eq, data_type::INT64, "hits.int");
        self.b.node_to(
            "ReduceSum",
            &[&c],
            &["correct"],
            vec![AttributeProto::int("keepdims", 0)],
        );
    }

    /// The gradient of `weight` × the loss w.r.t. the logits of output `ix`:
    /// weight · (softmax − one-hot(labels)) / #labels.
    fn loss_grad(&mut self, loss: &Loss, ix: NodeIndex, weight: f32) -> String {
        let out = self.model.shape(ix).dims().to_vec();
        let k = out[0] as usize;
        let p = self.b.op("Exp", &[&loss.log_prob], "prob", vec![]);
        let mut cdims = vec![1, k];
        cdims.extend(std::iter::repeat_n(1, out.len() - 1));
        let classes: Vec<i64> = (0..k as i64).collect();
        let cls = self.b.ints_shaped("classes", &cdims, &classes);
        let eq = self
            .b
            .op("Equal", &[&loss.labels, &cls], "onehot.bool", vec![]);
        let onehot = self.b.cast(&eq, data_type::FLOAT, "onehot");
        let diff = self.b.sub(&p, &onehot, "dlogits.sum");
        let diff = if weight == 1.0 {
            diff
        } else {
            self.b.scale(&diff, weight, "dlogits.weighted")
        };
        self.b.div(&diff, &loss.count, "dlogits")
    }

    /// The backward pass from the gradients of the loss's outputs; fills `param_grad`.
    fn backward_all(&mut self, seeds: Vec<(NodeIndex, String)>) -> Result<(), GraphError> {
        let model = self.model;
        let mut grads: HashMap<NodeIndex, Vec<String>> = HashMap::new();
        for (ix, g) in seeds {
            grads.entry(ix).or_default().push(g);
        }
        let mut order = model.layers();
        order.reverse();
        for ix in order {
            let Some(gs) = grads.remove(&ix) else {
                continue;
            };
            if !self.needs_grad[&ix] {
                continue;
            }
            self.b.doc = self.location(ix);
            let name = model.node(ix).name.clone();
            let dy = self.b.sum(&gs, &format!("grad_sum.{name}"));
            let inputs = model.graph.inputs(ix);
            let want: Vec<bool> = inputs.iter().map(|i| self.needs_grad[i]).collect();
            let dxs = self.backward(ix, &dy, &want)?;
            for (slot, dx) in dxs.into_iter().enumerate() {
                if let (Some(dx), true) = (dx, want[slot]) {
                    grads.entry(inputs[slot]).or_default().push(dx);
                }
            }
        }
        self.b.doc.clear();
        // Parameters that do not reach the loss get zero gradients, as do those whose
        // gradient is exactly zero.
        for s in self.trainable() {
            if !self.param_grad.contains_key(&s.name) {
                if !self.zero_grad.contains(&s.name) {
                    self.unreached.insert(s.name.clone());
                }
                let z = self.b.init_f32(
                    &format!("grad.{}.zero", s.name),
                    &s.dims,
                    &vec![0.0; s.elements()],
                );
                self.param_grad.insert(s.name.clone(), z);
            }
        }
        Ok(())
    }

    fn finish(self, doc: String) -> ModelProto {
        let model = self.model;
        ModelProto {
            ir_version: 8,
            opset_import: vec![OperatorSetIdProto {
                domain: String::new(),
                version: TRAIN_OPSET,
            }],
            producer_name: "cnnc".into(),
            producer_version: crate::VERSION.into(),
            doc_string: doc,
            graph: Some(self.b.graph),
            metadata_props: vec![
                StringStringEntryProto::new("cnnc_version", crate::VERSION),
                StringStringEntryProto::new("source_file", model.source_path.clone()),
                StringStringEntryProto::new("source_sha256", model.source_hash.clone()),
            ],
            ..Default::default()
        }
    }
}

fn check_model(model: &CheckedModel, aux_weight: f32) -> Result<(), GraphError> {
    let out = model.output_shape();
    if aux_weight != 0.0 {
        let misshaped: Vec<String> = model
            .graph
            .named_outputs
            .iter()
            .filter(|o| model.shape(o.node) != out)
            .map(|o| format!("`{}` is {}", o.name, model.shape(o.node)))
            .collect();
        if !misshaped.is_empty() {
            const NAMED: usize = 4;
            let more = match misshaped.len().saturating_sub(NAMED) {
                0 => String::new(),
                n => format!(" and {n} more"),
            };
            return Err(err(format!(
                "the output {}{more}: training adds each named output's cross-entropy against \
                 the labels to the loss (weighted by --aux-weight, {aux_weight}), so each must \
                 be class scores like the main output's {out}; to train on the main output \
                 alone, pass --aux-weight 0",
                misshaped[..misshaped.len().min(NAMED)].join(", the output ")
            )));
        }
    }
    if out.rank() != 1 && out.rank() != 3 {
        return Err(err(format!(
            "the model's output is {out}; training needs class scores [K] or per-pixel scores \
             [K, H, W]"
        )));
    }
    match out.channels() {
        0 => return Err(err("the model's output has no classes")),
        1 => {
            return Err(err(format!(
                "the model's output {out} has one class score{}: the loss is softmax \
                 cross-entropy over the classes, which is always 0 for one class, so nothing \
                 would train; a classifier needs two or more (two for a yes/no task; a model \
                 that outputs an image or one value to regress needs a loss cnnc does not have)",
                if out.rank() == 3 { " per pixel" } else { "" }
            )))
        }
        _ => {}
    }
    if model.graph.input == model.graph.output {
        return Err(err("the model has no layers to train"));
    }
    check_constants(model)
}

/// Refuses a model whose training graph's constants could not be held: they are built in
/// memory (a matrix, its transpose, the graph's copy), and `cnnc train` hands the graph to
/// ONNX Runtime as one protobuf message, which cannot pass 2 GiB. The shape check bounds
/// each constant to 2^38 elements, not to this; a real network's are kilobytes.
fn check_constants(model: &CheckedModel) -> Result<(), GraphError> {
    use crate::ir::{Op, UpsampleMode};
    let mut bytes = 0u64;
    for ix in model.layers() {
        let Some(&[c, h, w]) = model
            .graph
            .inputs(ix)
            .first()
            .map(|&i| model.shape(i).dims())
        else {
            continue;
        };
        let [_, oh, ow] = model.shape(ix).dims()[..] else {
            continue;
        };
        // Elements; the forward pass's and the backward's (transposed) alike.
        let gathers = |to: &crate::ir::UpsampleTo| to.nearest_repeats([h, w]).is_none();
        let elements = match &model.node(ix).op {
            Op::AdaptiveAvgPool { .. }
            | Op::Upsample {
                mode: UpsampleMode::Bilinear { .. },
                ..
            } => (oh.saturating_mul(h))
                .saturating_add(ow.saturating_mul(w))
                .saturating_mul(2),
            // Nearest to pixels gathered: the backward's 0/1 maps.
            Op::Upsample {
                to,
                mode: UpsampleMode::Nearest,
            } if gathers(to) => (oh.saturating_mul(h))
                .saturating_add(ow.saturating_mul(w))
                .saturating_mul(2),
            // A reflecting or replicating pad's 0/1 maps, in the backward (none for a pad of
            // the model's input, whose gradient is not needed).
            Op::Pad { mode, .. }
                if *mode != crate::ir::PadMode::Zeros
                    && model.graph.inputs(ix).first() != Some(&model.graph.input) =>
            {
                (oh.saturating_mul(h))
                    .saturating_add(ow.saturating_mul(w))
                    .saturating_mul(2)
            }
            // The backward's 0/1 maps of the gathered bins.
            Op::AdaptiveMaxPool { output } => {
                let gathered = |n: u64, m: u64| {
                    crate::ir::adaptive_max_gather_width(n, m)
                        .map_or(0, |k| m.saturating_mul(k).saturating_mul(n))
                };
                gathered(h, output[0]).saturating_add(gathered(w, output[1]))
            }
            // The backward's kernel of ones; the rescale and inverse divisors.
            Op::AvgPool(p) => c
                .saturating_mul(p.kernel[0])
                .saturating_mul(p.kernel[1])
                .saturating_add(oh.saturating_mul(ow).saturating_mul(2)),
            _ => 0,
        };
        bytes = bytes.saturating_add(elements.saturating_mul(4));
    }
    if bytes > crate::onnx::lower::PROTOBUF_LIMIT {
        return Err(err(format!(
            "the training graph's constants (adaptive pooling's, upsampling's and reflecting \
             or replicating padding's matrices, average pooling's kernels of ones) need {}, \
             over the 2 GiB that a graph ONNX Runtime loads can hold; pool, upsample or pad \
             smaller images to train this model",
            crate::shape::summary::bytes(bytes)
        )));
    }
    // Built as f32 (and a bilinear map first as f64), transposed, and copied into the graph.
    let mut probe: Vec<u8> = Vec::new();
    crate::oom::try_reserve_exact(&mut probe, bytes.saturating_mul(4) as usize).map_err(|_| {
        err(format!(
            "cannot allocate {} for the training graph's constants: the model is too \
                 large for this machine's memory",
            crate::shape::summary::bytes(bytes.saturating_mul(4))
        ))
    })
}

/// The gradient graph: `loss` and `grad.<parameter>` for every trainable parameter, batch
/// norm on batch statistics.
pub fn grad_model(
    model: &CheckedModel,
    sources: &SourceMap,
    options: &GradOptions<'_>,
) -> Result<ModelProto, GraphError> {
    check_model(model, options.aux_weight)?;
    let mut l = Lowering::new(model, sources, Mode::Train, &format!("{}_grad", model.name));
    l.dropout = options.dropout;
    l.aux_weight = options.aux_weight;
    let trainable = l.trainable();
    let mut outs = vec!["loss".to_string()];
    outs.extend(trainable.iter().map(|s| format!("grad.{}", s.name)));
    l.declare(false, &outs)?;
    if let Some(w) = options.weights {
        w.check(&l.specs).map_err(|problems| {
            let list: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
            err(format!(
                "the weights do not match the model: {}",
                list.join("; ")
            ))
        })?;
        for s in &trainable {
            let t = w.get(&s.name).expect("checked");
            l.b.init_f32_exact(&s.name, &t.dims, &t.data);
        }
    }
    l.forward_all()?;
    let (_, seeds) = l.losses();
    l.backward_all(seeds)?;
    l.b.output("loss", data_type::FLOAT, &[]);
    for s in &trainable {
        let g = l.param_grad[&s.name].clone();
        let exact = format!("grad.{}", s.name);
        l.b.node_to("Identity", &[&g], &[&exact], vec![]);
        l.b.output(&exact, data_type::FLOAT, &fixed(&s.dims));
    }
    let doc = format!(
        "gradient graph of model {} of {}",
        model.name, model.source_path
    );
    Ok(l.finish(doc))
}

/// The training step graph for `optimizer`, its dropout as `dropout` says (`cnnc train` feeds
/// the masks; `export --train` writes seeded Dropout nodes, so the file runs on its own).
pub fn step_model(
    model: &CheckedModel,
    sources: &SourceMap,
    optimizer: &Optimizer,
    dropout: DropoutMode,
    aux_weight: f32,
) -> Result<StepGraph, GraphError> {
    check_model(model, aux_weight)?;
    let mut l = Lowering::new(model, sources, Mode::Train, &format!("{}_step", model.name));
    l.update_running = true;
    l.dropout = dropout;
    l.aux_weight = aux_weight;
    let trainable = l.trainable();
    let running = l.running_stats();
    let mut carried: Vec<Carried> = trainable
        .iter()
        .map(|s| Carried {
            name: s.name.clone(),
            dims: s.dims.clone(),
            kind: CarriedKind::Param,
        })
        .collect();
    carried.extend(running.iter().map(|s| Carried {
        name: s.name.clone(),
        dims: s.dims.clone(),
        kind: CarriedKind::RunningStat,
    }));
    for slot in optimizer.slots() {
        carried.extend(trainable.iter().map(|s| Carried {
            name: format!("{}.{slot}", s.name),
            dims: s.dims.clone(),
            kind: CarriedKind::State { slot },
        }));
    }
    let mut outs = vec!["loss".to_string(), "correct".to_string()];
    outs.extend(carried.iter().map(Carried::new_name));
    l.declare(true, &outs)?;
    for c in &carried {
        if let CarriedKind::State { .. } = c.kind {
            l.reserve(&c.name)?;
            l.b.input(&c.name, data_type::FLOAT, &fixed(&c.dims));
        }
    }
    l.reserve("lr")?;
    l.b.input("lr", data_type::FLOAT, &[]);
    let takes_step = optimizer.takes_step();
    if takes_step {
        l.reserve("t")?;
        l.b.input("t", data_type::FLOAT, &[]);
    }
    let logits = l.forward_all()?;
    l.correct(&logits);
    let (_, seeds) = l.losses();
    l.backward_all(seeds)?;
    // As PyTorch's optimizers skip a parameter without a gradient, one that does not reach
    // the loss (a named output's head with --aux-weight 0) keeps its value and its state:
    // no weight decay, no Adam step from old momentum.
    let (updated, kept): (Vec<ParamSpec>, Vec<ParamSpec>) = trainable
        .iter()
        .cloned()
        .partition(|s| !l.unreached.contains(&s.name));
    optimizer.lower(&mut l.b, &updated, &l.param_grad);
    for s in &kept {
        let mut names = vec![s.name.clone()];
        names.extend(
            optimizer
                .slots()
                .iter()
                .map(|slot| format!("{}.{slot}", s.name)),
        );
        for n in names {
            l.b.node_to("Identity", &[&n], &[&format!("new.{n}")], vec![]);
        }
    }
    l.b.output("loss", data_type::FLOAT, &[]);
    l.b.output("correct", data_type::INT64, &[]);
    for c in &carried {
        l.b.output(&c.new_name(), data_type::FLOAT, &fixed(&c.dims));
    }
    debug_assert_eq!(
        l.extra_outputs.len(),
        running.len(),
        "every running statistic is updated"
    );
    let doc = format!(
        "training step ({}) of model {} of {}",
        optimizer.describe(),
        model.name,
        model.source_path
    );
    let masks = std::mem::take(&mut l.masks);
    Ok(StepGraph {
        model: l.finish(doc),
        carried,
        takes_step,
        masks,
    })
}

/// The evaluation graph: inference mode, every parameter and running statistic an input;
/// outputs `loss` (mean over the batch) and `correct`.
pub fn eval_model(model: &CheckedModel, sources: &SourceMap) -> Result<ModelProto, GraphError> {
    check_model(model, 0.0)?;
    let mut l = Lowering::new(model, sources, Mode::Eval, &format!("{}_eval", model.name));
    l.declare(true, &["loss".to_string(), "correct".to_string()])?;
    let logits = l.forward_all()?;
    l.loss(&logits, Some("loss"));
    l.correct(&logits);
    l.b.output("loss", data_type::FLOAT, &[]);
    l.b.output("correct", data_type::INT64, &[]);
    let doc = format!(
        "evaluation graph of model {} of {}",
        model.name, model.source_path
    );
    Ok(l.finish(doc))
}

/// The values a per-sample normalization's statistics are taken over.
#[derive(Clone, Copy, Debug)]
pub(crate) enum NormOver {
    /// Each of G groups of channels with all their pixels (group and instance norm): the
    /// input reshaped to [N, G, M], statistics over axis 2.
    Groups(u64),
    /// The channels of each pixel (layer norm): statistics over axis 1 of the input as it is.
    Channels,
}

impl NormOver {
    /// The axis of the values one statistic is taken over.
    pub(crate) fn axis(self) -> i64 {
        match self {
            NormOver::Groups(_) => 2,
            NormOver::Channels => 1,
        }
    }
}

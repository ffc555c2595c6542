//! Lowering a [`CheckedModel`] to an ONNX [`ModelProto`]: one or a few standard ONNX nodes
//! per IR node, with the exact semantics of the PyTorch layer the IR op names.
//!
//! Naming: each IR node's output tensor and main ONNX node carry its scoped name (the last
//! layer's tensor is `output`); helper nodes and constants are `<name>.<suffix>`;
//! parameters are `<name>.weight` etc. ([`super::weights::parameter_specs`]).

use super::proto::{
    data_location, data_type, AttributeProto, Dim, GraphProto, ModelProto, NodeProto,
    OperatorSetIdProto, StringStringEntryProto, TensorProto, ValueInfoProto,
};
use super::weights::{parameter_specs, WeightProblem, Weights};
use crate::fsutil;
use crate::ir::{Op, Pads, PoolAttrs};
use crate::ir::{UpsampleMode, UpsampleTo};
use crate::shape::CheckedModel;
use crate::source::SourceMap;
use petgraph::graph::NodeIndex;
use prost::Message;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};

/// The opsets cnnc can target.
pub const OPSETS: std::ops::RangeInclusive<i64> = 17..=21;
/// The default opset.
pub const DEFAULT_OPSET: i64 = 17;
/// The largest protobuf message parsers accept (2 GiB − 1).
pub const PROTOBUF_LIMIT: u64 = i32::MAX as u64;
/// Default external-data threshold: initializers above 2 GB in total go to `<out>.data`.
pub const EXTERNAL_DATA_THRESHOLD: u64 = 2_000_000_000;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExportOptions {
    /// ONNX default-domain opset, one of [`OPSETS`].
    pub opset: i64,
    /// When the initializers' raw data exceed this many bytes in total, [`write_model`]
    /// stores them in an external data file.
    pub external_data_threshold: u64,
    /// The input's height and width are symbolic (`height`, `width`), not the declared
    /// ones: every layer whose export depends on the size is refused
    /// ([`ExportError::FixedSize`]).
    pub dynamic_size: bool,
    /// The main output alone: the named outputs (`output NAME { … }`) and the layers only
    /// they read are left out, as PyTorch's evaluation mode drops GoogLeNet's auxiliary
    /// classifiers. Their parameters are still part of the model's (a checkpoint of it loads).
    pub main_output_only: bool,
    /// More `metadata_props` entries (key, value), after cnnc's own: how the weights were
    /// trained, where they come from a checkpoint.
    pub metadata: Vec<(String, String)>,
}

impl Default for ExportOptions {
    fn default() -> ExportOptions {
        ExportOptions {
            opset: DEFAULT_OPSET,
            external_data_threshold: EXTERNAL_DATA_THRESHOLD,
            dynamic_size: false,
            main_output_only: false,
            metadata: Vec::new(),
        }
    }
}

/// The ONNX IR version that goes with an opset (ONNX's versioning table).
pub fn ir_version(opset: i64) -> Result<i64, ExportError> {
    match opset {
        17 | 18 => Ok(8),
        19 | 20 => Ok(9),
        21 => Ok(10),
        _ => Err(ExportError::UnsupportedOpset(opset)),
    }
}

#[derive(Debug)]
pub enum ExportError {
    /// An opset outside [`OPSETS`].
    UnsupportedOpset(i64),
    /// The weights do not match the model's parameters (every problem listed).
    Weights(Vec<WeightProblem>),
    /// Two ONNX values would get the same name.
    NameClash(String),
    /// A layer cnnc cannot lower exactly.
    Unsupported {
        node: String,
        location: String,
        message: String,
    },
    /// With [`ExportOptions::dynamic_size`]: a layer or value that holds at the declared
    /// input size only.
    FixedSize {
        location: String,
        message: String,
    },
    /// The model with inline weights exceeds protobuf's 2 GiB limit.
    TooLarge {
        bytes: u64,
    },
    Io {
        path: PathBuf,
        message: String,
    },
    /// [`write_model_expecting`] found at `path` another file than the one expected there
    /// (a file where there was none, when `replaced` is false), which it left as it was.
    Exists {
        path: PathBuf,
        replaced: bool,
    },
    /// The weights go to an external data file, and a file is at its name that is not the
    /// data of the model being replaced (it may be anyone's): left as it is.
    DataFileInTheWay {
        data: PathBuf,
        model: PathBuf,
        bytes: u64,
    },
}

impl fmt::Display for ExportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExportError::UnsupportedOpset(o) => write!(
                f,
                "opset {o} is not supported; cnnc exports opsets {} to {} (default {DEFAULT_OPSET})",
                OPSETS.start(),
                OPSETS.end()
            ),
            ExportError::Weights(problems) => {
                write!(f, "the weights do not match the model ({} problems):", problems.len())?;
                for p in problems {
                    write!(f, "\n  {p}")?;
                }
                Ok(())
            }
            ExportError::NameClash(n) => write!(
                f,
                "two ONNX values would both be named `{n}`; rename the layer (`as NAME`)"
            ),
            ExportError::Unsupported {
                node,
                location,
                message,
            } => write!(f, "{location}: cannot export layer `{node}`: {message}"),
            ExportError::FixedSize { location, message } => write!(
                f,
                "{location}: cannot export with a variable input size (--dynamic-size): {message}"
            ),
            ExportError::TooLarge { bytes } => write!(
                f,
                "the model is {bytes} bytes, over protobuf's 2 GiB limit; write it with \
                 external data (cnnc export does so above the threshold)"
            ),
            ExportError::Io { path, message } => {
                write!(f, "cannot write {}: {message}", path.display())
            }
            ExportError::DataFileInTheWay { data, model, bytes } => write!(
                f,
                "cannot write {}: the model's {} of weights go there as ONNX external data, and \
                 a file is there that {} (it was left as it is); remove it or choose another \
                 output name",
                data.display(),
                crate::shape::summary::bytes(*bytes),
                if model.exists() {
                    format!("is not the data of the model at {}", model.display())
                } else {
                    "no model uses".to_string()
                }
            ),
            ExportError::Exists { path, replaced } => write!(
                f,
                "cannot write {}: {}; it was left as it is",
                path.display(),
                if *replaced {
                    "another file is there now than when asked to write it"
                } else {
                    "a file is there now (it was not when asked to write it)"
                }
            ),
        }
    }
}

impl std::error::Error for ExportError {}

/// Lowers `model` with `weights` (which must match [`parameter_specs`] exactly). Every
/// initializer is inline (`raw_data`); [`write_model`] moves them out when they are large.
/// (`cnnc export` writes through [`super::stream::export_to_file`] instead, which never
/// holds the weights in memory.)
pub fn export(
    model: &CheckedModel,
    sources: &SourceMap,
    weights: &Weights,
    options: &ExportOptions,
) -> Result<ModelProto, ExportError> {
    weights
        .check(&parameter_specs(model))
        .map_err(ExportError::Weights)?;
    let (mut proto, slots) = lower(model, sources, options)?;
    let graph = proto.graph.as_mut().expect("lower builds a graph");
    for slot in slots {
        let t = weights.get(&slot.name).expect("checked against the specs");
        graph.initializer[slot.initializer].raw_data = super::proto::f32_le_bytes(&t.data);
    }
    Ok(proto)
}

/// A parameter's initializer in a lowered graph, still without its values.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParamSlot {
    /// Its index in `graph.initializer`.
    pub initializer: usize,
    /// The parameter's scoped name (a [`super::ParamSpec`] name).
    pub name: String,
}

/// Lowers `model` to ONNX with every parameter's initializer left without data (float,
/// named, shaped, empty `raw_data`); the slots say which initializers those are, in order.
/// Lowering never touches the weights' values, so the caller picks where they come from.
pub fn lower(
    model: &CheckedModel,
    sources: &SourceMap,
    options: &ExportOptions,
) -> Result<(ModelProto, Vec<ParamSlot>), ExportError> {
    let ir_version = ir_version(options.opset)?;
    let specs = parameter_specs(model);
    let mut l = Lowerer {
        model,
        specs: specs.iter().map(|s| (s.name.as_str(), s)).collect(),
        slots: Vec::new(),
        graph: GraphProto {
            name: model.name.clone(),
            ..Default::default()
        },
        // Several values per layer (a GELU's five): room for them up front, and a fast
        // hash (the names are cnnc's own, no attacker's): a million-node graph spent a
        // sixth of its export growing and hashing this set.
        values: HashSet::with_capacity_and_hasher(
            model.graph.graph.node_count().saturating_mul(4),
            Default::default(),
        ),
        tensor: HashMap::new(),
        doc: String::new(),
        dynamic: options.dynamic_size,
        varies: HashSet::default(),
        cur_varies: false,
        lowered: (options.main_output_only && !model.graph.named_outputs.is_empty())
            .then(|| main_output_nodes(model, options.dynamic_size)),
    };
    l.lower(sources)?;
    let proto = ModelProto {
        ir_version,
        opset_import: vec![OperatorSetIdProto {
            domain: String::new(),
            version: options.opset,
        }],
        producer_name: "cnnc".into(),
        producer_version: crate::VERSION.into(),
        doc_string: format!("model {} of {}", model.name, model.source_path),
        graph: Some(l.graph),
        metadata_props: [
            StringStringEntryProto::new("cnnc_version", crate::VERSION),
            StringStringEntryProto::new("source_file", model.source_path.clone()),
            StringStringEntryProto::new("source_sha256", model.source_hash.clone()),
        ]
        .into_iter()
        .chain(
            options
                .dynamic_size
                .then(|| size_step_metadata(model))
                .into_iter()
                .flatten(),
        )
        .chain(
            options
                .metadata
                .iter()
                .map(|(k, v)| StringStringEntryProto::new(k, v.clone())),
        )
        .collect(),
        ..Default::default()
    };
    Ok((proto, l.slots))
}

/// [`export`], serialized. Fails with [`ExportError::TooLarge`] past protobuf's limit.
pub fn export_bytes(
    model: &CheckedModel,
    sources: &SourceMap,
    weights: &Weights,
    options: &ExportOptions,
) -> Result<Vec<u8>, ExportError> {
    encode(&export(model, sources, weights, options)?)
}

fn encode(model: &ModelProto) -> Result<Vec<u8>, ExportError> {
    let len = model.encoded_len() as u64;
    if len > PROTOBUF_LIMIT {
        return Err(ExportError::TooLarge { bytes: len });
    }
    Ok(model.encode_to_vec())
}

/// The float initializers ONNX's shape inference reads as data: Resize's scales (and its
/// other optional inputs). They stay in the model when the weights go to an external data
/// file, since shape inference cannot read external data; int64 constants (Slice starts,
/// Pad pads, Reshape shapes) stay there anyway.
pub(crate) fn shape_data(graph: &GraphProto) -> HashSet<String> {
    graph
        .node
        .iter()
        .filter(|n| n.op_type == "Resize")
        .flat_map(|n| n.input.iter().skip(1).filter(|i| !i.is_empty()).cloned())
        .collect()
}

/// Whether initializer `t` goes to the external data file when the model has one: every
/// float tensor but the [`shape_data`].
pub(crate) fn goes_external(t: &TensorProto, shape_data: &HashSet<String>) -> bool {
    t.data_type == data_type::FLOAT && !shape_data.contains(&t.name)
}

/// Moves the `raw_data` of every initializer that [`goes_external`] into one external data
/// buffer (ONNX external data: `location`, `offset`, `length`; offsets aligned to 64 bytes)
/// when their total exceeds `threshold`. Returns the buffer to write at `location`, beside
/// the model.
pub fn externalize(model: &mut ModelProto, location: &str, threshold: u64) -> Option<Vec<u8>> {
    let graph = model.graph.as_mut()?;
    let shape_data = shape_data(graph);
    let external = |t: &TensorProto| goes_external(t, &shape_data);
    let total: u64 = graph
        .initializer
        .iter()
        .filter(|t| external(t))
        .map(|t| t.raw_data.len() as u64)
        .sum();
    if total <= threshold {
        return None;
    }
    let mut data = Vec::with_capacity(total as usize);
    for t in graph.initializer.iter_mut().filter(|t| external(t)) {
        data.resize(data.len().next_multiple_of(64), 0);
        let raw = std::mem::take(&mut t.raw_data);
        t.data_location = data_location::EXTERNAL;
        t.external_data = vec![
            StringStringEntryProto::new("location", location),
            StringStringEntryProto::new("offset", data.len().to_string()),
            StringStringEntryProto::new("length", raw.len().to_string()),
        ];
        data.extend(raw);
    }
    Some(data)
}

/// What [`write_model`] wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Written {
    pub model_bytes: u64,
    /// The external data file and its size, when the weights went there.
    pub data: Option<(PathBuf, u64)>,
}

/// The external data file of a model written to `path`: its `location` as the model records
/// it (`<file name>.data`, beside the model) and its path.
pub fn external_data_file(path: &Path) -> (String, PathBuf) {
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "model.onnx".into());
    let location = format!("{file_name}.data");
    let data_path = path.with_file_name(&location);
    (location, data_path)
}

/// Whether the file at `path` is an ONNX model whose weights are in its external data file
/// ([`external_data_file`]), and the file there is as long as those weights say, so that a
/// new export may replace that file with its own (a user's file put at that name since is
/// not that model's data).
pub fn uses_its_data_file(path: &Path) -> bool {
    let (location, data) = external_data_file(path);
    let Ok(bytes) = std::fs::read(path) else {
        return false;
    };
    let extent = super::external_data_extent(&bytes, &location);
    let length = std::fs::metadata(&data).map(|m| m.len());
    match (extent, length) {
        (Some((end, false)), Ok(length)) => end == length,
        (Some((end, true)), Ok(length)) => end <= length,
        // No data file there: nothing of a user's to keep.
        (Some(_), Err(_)) => true,
        (None, _) => false,
    }
}

/// Refuses to replace a file at the external data name of `path` that is not the data of the
/// model there (a user's file of that name, a link): only a file cnnc wrote for that model is
/// replaced.
pub fn check_data_file_free(path: &Path, bytes: u64) -> Result<(), ExportError> {
    let (_, data) = external_data_file(path);
    let in_the_way = match std::fs::symlink_metadata(&data) {
        Err(_) => false,
        Ok(m) => !m.file_type().is_file() || !uses_its_data_file(path),
    };
    if in_the_way {
        return Err(ExportError::DataFileInTheWay {
            data,
            model: path.to_path_buf(),
            bytes,
        });
    }
    Ok(())
}

/// Writes `model` to `path`, atomically; above `options.external_data_threshold` the
/// initializers go to `<path>.data`, and the two files are replaced together or not at all.
pub fn write_model(
    model: ModelProto,
    path: &Path,
    options: &ExportOptions,
) -> Result<Written, ExportError> {
    write_model_as(model, path, options, fsutil::Found::Any)
}

/// [`write_model`] of a model that replaces only what was found at `path` (when the command
/// started, [`fsutil::Found`]): where another file is there when it is put in place (another
/// process wrote it meanwhile), that file is left as it is and the error is
/// [`ExportError::Exists`]. (Its external data file, if any, replaces one there, as a stale
/// one is.)
pub fn write_model_expecting(
    model: ModelProto,
    path: &Path,
    options: &ExportOptions,
    found: fsutil::Found,
) -> Result<Written, ExportError> {
    write_model_as(model, path, options, found)
}

fn write_model_as(
    mut model: ModelProto,
    path: &Path,
    options: &ExportOptions,
    found: fsutil::Found,
) -> Result<Written, ExportError> {
    // Through links: the model and its data file go beside the file the link names, as
    // `export_to_file` puts them.
    let resolved = fsutil::resolve_output(path);
    let path = resolved.as_path();
    let (location, data_path) = external_data_file(path);
    let io = |p: &Path, e: std::io::Error| ExportError::Io {
        path: p.to_path_buf(),
        message: e.to_string(),
    };
    let mut data = None;
    let mut staged = Vec::new();
    if let Some(buf) = externalize(&mut model, &location, options.external_data_threshold) {
        check_data_file_free(path, buf.len() as u64)?;
        let file = fsutil::stage_with(&data_path, |o| std::io::Write::write_all(o, &buf))
            .map_err(|e| io(&data_path, e))?;
        staged.push(file);
        data = Some((data_path, buf.len() as u64));
    }
    let bytes = encode(&model)?;
    let file = fsutil::stage_with(path, |o| std::io::Write::write_all(o, &bytes))
        .map_err(|e| io(path, e))?;
    staged.push(file.expecting(found));
    fsutil::commit(staged).map_err(|e| match fsutil::appeared_meanwhile(&e) {
        Some(a) => ExportError::Exists {
            path: path.to_path_buf(),
            replaced: a.replaced,
        },
        None => io(path, e),
    })?;
    Ok(Written {
        model_bytes: bytes.len() as u64,
        data,
    })
}

struct Lowerer<'a> {
    model: &'a CheckedModel,
    /// Every parameter, by name.
    specs: HashMap<&'a str, &'a super::ParamSpec>,
    /// The parameters' initializers, in the order they were made.
    slots: Vec<ParamSlot>,
    graph: GraphProto,
    /// Every value name used so far (inputs, outputs, initializers).
    values: HashSet<String, foldhash::fast::RandomState>,
    /// The ONNX tensor holding each IR node's output.
    tensor: HashMap<NodeIndex, String>,
    /// `path:line:col` of the IR node being lowered.
    doc: String,
    /// [`ExportOptions::dynamic_size`].
    dynamic: bool,
    /// With `dynamic`: the nodes whose height and width follow the input's.
    varies: HashSet<NodeIndex>,
    /// Whether the node being lowered reads a tensor whose size varies: its intermediate
    /// values then get no fixed shape.
    cur_varies: bool,
    /// With [`ExportOptions::main_output_only`]: the nodes the main output reads, the only
    /// ones lowered.
    lowered: Option<HashSet<NodeIndex>>,
}

/// `[N, ...dims]`.
fn batched(dims: &[u64]) -> Vec<Dim> {
    std::iter::once(Dim::Param("N".into()))
        .chain(dims.iter().map(|&d| Dim::Value(d as i64)))
        .collect()
}

/// `[N, C, height, width]` with the two sizes symbolic, named `{prefix}height` and
/// `{prefix}width`.
fn batched_variable(dims: &[u64], prefix: &str) -> Vec<Dim> {
    let mut out = batched(dims);
    if let [_, _, h, w] = &mut out[..] {
        *h = Dim::Param(format!("{prefix}height"));
        *w = Dim::Param(format!("{prefix}width"));
    }
    out
}

/// The nodes an export with `--main-output-only` lowers: what computing the main output
/// needs; with `dynamic_size`, also the tensors whose size a layer takes at run time
/// (`Graph::size_sources`), and what they need.
pub fn main_output_nodes(model: &CheckedModel, dynamic_size: bool) -> HashSet<NodeIndex> {
    let graph = &model.graph;
    let mut kept = graph.feeding(graph.output);
    let mut todo: Vec<NodeIndex> = kept.iter().copied().collect();
    while let Some(ix) = todo.pop() {
        let Some(&source) = graph.size_sources.get(&ix).filter(|_| dynamic_size) else {
            continue;
        };
        for n in graph.feeding(source) {
            if kept.insert(n) {
                todo.push(n);
            }
        }
    }
    kept
}

/// The metadata of a model exported with a variable size: the size it was declared at
/// (`cnnc_declared_size`, `HxW`) and how far it downsamples (`cnnc_size_step`, `HxW`: the
/// largest product of strides from the input to any tensor), which `cnnc run` names when
/// ONNX Runtime fails at a size that step does not divide (a U-Net's concat of a skip and an
/// upsampled tensor).
fn size_step_metadata(model: &CheckedModel) -> Vec<StringStringEntryProto> {
    let graph = &model.graph.graph;
    let mut step: HashMap<NodeIndex, [u64; 2]> = HashMap::new();
    let mut largest = [1u64; 2];
    // Nodes are added after their inputs: index order is an order of the graph.
    for ix in graph.node_indices() {
        let before = graph
            .neighbors_directed(ix, petgraph::Direction::Incoming)
            .filter_map(|n| step.get(&n))
            .fold([1u64; 2], |m, s| [m[0].max(s[0]), m[1].max(s[1])]);
        let own = match &graph[ix].op {
            Op::Conv(c) => [c.stride[0], c.stride[1]],
            Op::MaxPool(p) | Op::AvgPool(p) => [p.stride[0], p.stride[1]],
            Op::PixelShuffle {
                factor,
                unshuffle: true,
            } => [*factor; 2],
            // Past a global or adaptive pooling the size is fixed.
            op if fixes_size(op) => [0, 0],
            _ => [1, 1],
        };
        let here = if own == [0, 0] {
            [1, 1]
        } else {
            [
                before[0].saturating_mul(own[0]),
                before[1].saturating_mul(own[1]),
            ]
        };
        largest = [largest[0].max(here[0]), largest[1].max(here[1])];
        step.insert(ix, here);
    }
    let declared = model
        .input_shape()
        .spatial()
        .map(|[h, w]| format!("{h}x{w}"));
    declared
        .map(|d| {
            vec![
                StringStringEntryProto::new("cnnc_declared_size", d),
                StringStringEntryProto::new(
                    "cnnc_size_step",
                    format!("{}x{}", largest[0], largest[1]),
                ),
            ]
        })
        .unwrap_or_default()
}

/// Whether `op`'s output has the same size whatever its input's: a global pooling, an
/// upsampling to a size.
fn fixes_size(op: &Op) -> bool {
    matches!(
        op,
        Op::GlobalAvgPool
            | Op::AdaptiveAvgPool { .. }
            | Op::GlobalMaxPool
            | Op::AdaptiveMaxPool { .. }
            | Op::Upsample {
                to: UpsampleTo::Size(_),
                ..
            }
    )
}

fn i64s(v: &[u64]) -> Vec<i64> {
    v.iter().map(|&x| x as i64).collect()
}

impl Lowerer<'_> {
    fn claim(&mut self, name: &str) -> Result<(), ExportError> {
        if self.values.insert(name.to_string()) {
            Ok(())
        } else {
            Err(ExportError::NameClash(name.to_string()))
        }
    }

    fn node(
        &mut self,
        op_type: &str,
        name: &str,
        inputs: &[&str],
        output: &str,
        attribute: Vec<AttributeProto>,
    ) -> Result<(), ExportError> {
        self.claim(output)?;
        self.graph.node.push(NodeProto {
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: vec![output.to_string()],
            name: name.to_string(),
            op_type: op_type.to_string(),
            attribute,
            doc_string: self.doc.clone(),
            ..Default::default()
        });
        Ok(())
    }

    /// Records the shape of an intermediate value (batch dimension excluded); none for a
    /// value of a node that reads a tensor of variable size.
    fn value_info(&mut self, name: &str, dims: &[u64]) {
        if self.cur_varies {
            return;
        }
        self.graph.value_info.push(ValueInfoProto::tensor(
            name,
            data_type::FLOAT,
            &batched(dims),
        ));
    }

    /// Records the shape of an intermediate value that has no batch dimension.
    fn value_info_unbatched(&mut self, name: &str, dims: &[i64]) {
        let dims: Vec<Dim> = dims.iter().map(|&d| Dim::Value(d)).collect();
        self.graph
            .value_info
            .push(ValueInfoProto::tensor(name, data_type::FLOAT, &dims));
    }

    fn init_f32(&mut self, name: &str, dims: &[usize], data: &[f32]) -> Result<(), ExportError> {
        self.claim(name)?;
        self.graph
            .initializer
            .push(TensorProto::from_f32(name, dims, data));
        Ok(())
    }

    fn init_i64(&mut self, name: &str, data: &[i64]) -> Result<(), ExportError> {
        self.claim(name)?;
        self.graph
            .initializer
            .push(TensorProto::from_i64(name, &[data.len()], data));
        Ok(())
    }

    /// A parameter's initializer, without its values ([`ParamSlot`]).
    fn param(&mut self, name: String) -> Result<String, ExportError> {
        let spec = *self.specs.get(name.as_str()).ok_or_else(|| {
            ExportError::Weights(vec![WeightProblem::Missing {
                name: name.clone(),
                expected: vec![],
            }])
        })?;
        self.claim(&name)?;
        self.slots.push(ParamSlot {
            initializer: self.graph.initializer.len(),
            name: name.clone(),
        });
        self.graph
            .initializer
            .push(TensorProto::f32_without_data(&name, &spec.dims));
        Ok(name)
    }

    fn lower(&mut self, sources: &SourceMap) -> Result<(), ExportError> {
        let model = self.model;
        let input_ix = model.graph.input;
        let output_ix = model.graph.output;
        self.claim("input")?;
        if self.dynamic {
            self.check_variable_input(sources)?;
            self.varies.insert(input_ix);
        }
        let input_dims = if self.dynamic {
            batched_variable(model.input_shape().dims(), "")
        } else {
            batched(model.input_shape().dims())
        };
        self.graph.input.push(ValueInfoProto::tensor(
            "input",
            data_type::FLOAT,
            &input_dims,
        ));
        self.tensor.insert(input_ix, "input".into());
        if self.dynamic {
            // Which nodes follow the input's size, before lowering any: the output's shape
            // says so.
            for ix in model.layers() {
                let ins = model.graph.inputs(ix);
                let varies = match model.graph.size_sources.get(&ix) {
                    Some(source) => self.varies.contains(source),
                    None => {
                        ins.iter().any(|i| self.varies.contains(i))
                            && !fixes_size(&model.node(ix).op)
                    }
                };
                if varies {
                    self.varies.insert(ix);
                }
            }
        }
        let output_dims = if self.varies.contains(&output_ix) {
            batched_variable(model.output_shape().dims(), "output_")
        } else {
            batched(model.output_shape().dims())
        };
        self.graph.output.push(ValueInfoProto::tensor(
            "output",
            data_type::FLOAT,
            &output_dims,
        ));
        // A named output is its layer's value, named for it; one that is the input, the main
        // output or another named output's tensor is an Identity of it, after the layers.
        let mut named: HashMap<NodeIndex, &str> = HashMap::new();
        let mut copies: Vec<&crate::ir::NamedOutput> = Vec::new();
        let named_outputs = if self.lowered.is_some() {
            &[][..]
        } else {
            &model.graph.named_outputs[..]
        };
        for o in named_outputs {
            let dims = if self.varies.contains(&o.node) {
                batched_variable(model.shape(o.node).dims(), &format!("{}_", o.name))
            } else {
                batched(model.shape(o.node).dims())
            };
            self.graph
                .output
                .push(ValueInfoProto::tensor(&o.name, data_type::FLOAT, &dims));
            if o.node == input_ix || o.node == output_ix || named.contains_key(&o.node) {
                copies.push(o);
            } else {
                named.insert(o.node, &o.name);
            }
        }
        if input_ix == output_ix {
            self.doc = location(sources, model.node(input_ix).span);
            self.node("Identity", "output", &["input"], "output", vec![])?;
        }
        for ix in model.layers() {
            if self
                .lowered
                .as_ref()
                .is_some_and(|kept| !kept.contains(&ix))
            {
                continue;
            }
            let node = model.node(ix);
            self.doc = location(sources, node.span);
            let out = if ix == output_ix {
                "output".to_string()
            } else if let Some(name) = named.get(&ix) {
                name.to_string()
            } else {
                node.name.clone()
            };
            let inputs: Vec<String> = model
                .graph
                .inputs(ix)
                .iter()
                .map(|i| self.tensor[i].clone())
                .collect();
            let in_dims: Vec<u64> = model
                .graph
                .inputs(ix)
                .first()
                .map(|&i| model.shape(i).dims().to_vec())
                .unwrap_or_default();
            let out_dims = model.shape(ix).dims().to_vec();
            self.cur_varies = false;
            if self.dynamic {
                let ins = model.graph.inputs(ix);
                // A layer sized by another tensor varies with it too.
                self.cur_varies = ins
                    .iter()
                    .chain(model.graph.size_sources.get(&ix))
                    .any(|i| self.varies.contains(i));
                self.check_size_independent(ix, &ins)?;
            }
            self.lower_node(ix, &inputs, &in_dims, &out_dims, &out)?;
            if ix != output_ix && !named.contains_key(&ix) && !self.varies.contains(&ix) {
                // Not through `value_info`, which a fixed output of a variable input
                // (a global pooling's) would skip.
                self.graph.value_info.push(ValueInfoProto::tensor(
                    &out,
                    data_type::FLOAT,
                    &batched(&out_dims),
                ));
            }
            self.tensor.insert(ix, out);
        }
        for o in copies {
            self.doc = location(sources, o.span);
            let from = self.tensor[&o.node].clone();
            self.node("Identity", &o.name, &[&from], &o.name, vec![])?;
        }
        Ok(())
    }

    fn fixed_size(&self, message: String) -> ExportError {
        ExportError::FixedSize {
            location: self.doc.clone(),
            message,
        }
    }

    /// With `dynamic`: the input is an image, and no value of the model was computed from
    /// its declared height or width.
    fn check_variable_input(&mut self, sources: &SourceMap) -> Result<(), ExportError> {
        let model = self.model;
        let dims = model.input_shape().dims();
        let [_, h, w] = dims[..] else {
            self.doc = location(sources, model.node(model.graph.input).span);
            return Err(self.fixed_size(format!(
                "the input is {}, not an image [C, H, W]: it has no height and width to vary",
                model.input_shape()
            )));
        };
        if let Some(&read) = model.graph.size_reads.first() {
            let file = sources.get(read.file);
            let text = file
                .text
                .get(read.start as usize..read.end as usize)
                .unwrap_or("the size");
            self.doc = location(sources, read);
            return Err(self.fixed_size(format!(
                "`{text}` reads a height or width, which at the declared {h}×{w} input gives a \
                 number the export keeps at every other size; write the model without it, or \
                 export at the declared size (without --dynamic-size)"
            )));
        }
        Ok(())
    }

    /// With `dynamic`: errors unless the node's export, and its output, are right at every
    /// size. Only a node that reads a tensor whose size follows the input's can be wrong,
    /// and a `crop`, whose size is the current tensor's (no input of the node).
    fn check_size_independent(
        &self,
        ix: NodeIndex,
        inputs: &[NodeIndex],
    ) -> Result<(), ExportError> {
        let model = self.model;
        let node = model.node(ix);
        let layer = node.name.as_str();
        let refuse = |why: String| Err(self.fixed_size(format!("layer `{layer}`: {why}")));
        if !self.cur_varies {
            return Ok(());
        }
        match &node.op {
            Op::Crop { .. } if !self.varies.contains(&inputs[0]) => refuse(format!(
                "it crops `{}`, whose size is fixed at {}, to the size of a tensor that \
                 follows the input's: past the declared size the crop would not fit",
                model.node(inputs[0]).name,
                model.shape(inputs[0])
            )),
            Op::Flatten => refuse(
                "`flatten` of a tensor whose height and width follow the input's would give a \
                 different number of features at every size; pool to one pixel first \
                 (`global_avgpool`), or export at the declared size"
                    .into(),
            ),
            Op::AdaptiveAvgPool { output } | Op::AdaptiveMaxPool { output }
                if *output != [1, 1] =>
            {
                refuse(format!(
                    "`{}` to {}×{}: ONNX has no adaptive pooling, and cnnc exports one for \
                     the declared input size; to one pixel (`{}`) it exports for any size",
                    node.op.kind(),
                    output[0],
                    output[1],
                    node.op.kind().replace("adaptive", "global")
                ))
            }
            // At stride 1 every window count is whole: ceil mode is floor mode at any size
            // (no overhang, `pool_overhang` adds nothing).
            Op::MaxPool(p) | Op::AvgPool(p) if p.ceil && p.stride != [1, 1] => refuse(
                "a ceil-mode pooling with a stride: whether its last window overhangs the \
                 input depends on the size, and cnnc exports it for the declared one (at \
                 stride 1, or without `ceil=true`, it exports for any size)"
                    .into(),
            ),
            Op::AvgPool(p) if !p.count_pad && p.pads != Pads::default() => refuse(
                "an average pooling that leaves its padding out of the divisor rescales \
                 its border windows by constants made for the declared size"
                    .into(),
            ),
            Op::ConvTranspose(a) if a.needs_output_pad_plan() => refuse(
                "a transposed conv whose output_pad reaches its stride is exported as a slice \
                 and a pad sized for the declared input"
                    .into(),
            ),
            // To a tensor's size, the source pixels are picked at run time.
            Op::Upsample {
                to: UpsampleTo::Size(_),
                mode: UpsampleMode::Nearest,
            } if !model.graph.size_sources.contains_key(&ix) => refuse(
                "nearest upsampling to a fixed size picks its source pixels for the declared \
                 input size (`bilinear=true` resamples from any size, and to a named \
                 tensor's size, `size=[skip.h, skip.w]`, either mode follows it)"
                    .into(),
            ),
            Op::Upsample {
                to: to @ UpsampleTo::Scale(scale),
                mode: UpsampleMode::Nearest,
            } if !to.nearest_repeats_at_any_size() => refuse(format!(
                "nearest upsampling by {}×{}: PyTorch picks its source pixels through the \
                 float32 reciprocal of the factor, which at some sizes is not a plain \
                 repetition (every factor up to 40 is, up to 8,388,608 output pixels a side)",
                scale[0], scale[1]
            )),
            Op::Concat | Op::Add | Op::Mul => {
                // A gate's [C, 1, 1] broadcasts over any size; other fixed sizes would not
                // match a variable one.
                let broadcasts = |i: NodeIndex| {
                    matches!(node.op, Op::Mul) && matches!(model.shape(i).dims(), [_, 1, 1])
                };
                let fixed = inputs
                    .iter()
                    .find(|&&i| !self.varies.contains(&i) && !broadcasts(i));
                match fixed {
                    Some(&i) => refuse(format!(
                        "it joins `{}`, whose size is fixed at {}, with tensors whose size \
                         follows the input's: they match at the declared size only",
                        model.node(i).name,
                        model.shape(i)
                    )),
                    None => Ok(()),
                }
            }
            _ => Ok(()),
        }
    }

    /// A Shape node: the runtime shape of `x`, an int64 vector of `rank` values.
    fn shape_of(&mut self, name: &str, x: &str, rank: usize) -> Result<(), ExportError> {
        self.node("Shape", name, &[x], name, vec![])?;
        self.graph.value_info.push(ValueInfoProto::tensor(
            name,
            data_type::INT64,
            &[Dim::Value(rank as i64)],
        ));
        Ok(())
    }

    fn unsupported(&self, name: &str, message: String) -> ExportError {
        ExportError::Unsupported {
            node: name.to_string(),
            location: self.doc.clone(),
            message,
        }
    }

    fn lower_node(
        &mut self,
        ix: NodeIndex,
        inputs: &[String],
        in_dims: &[u64],
        out_dims: &[u64],
        out: &str,
    ) -> Result<(), ExportError> {
        let node = self.model.node(ix);
        let name = node.name.as_str();
        let x = inputs.first().map(String::as_str).unwrap_or("input");
        let simple =
            |l: &mut Self, op: &str, attrs: Vec<AttributeProto>| l.node(op, name, &[x], out, attrs);
        match &node.op {
            Op::Input => Err(self.unsupported(name, "a second input node".into())),
            Op::Conv(a) => {
                let mut ins = vec![x.to_string(), self.param(format!("{name}.weight"))?];
                if a.bias {
                    ins.push(self.param(format!("{name}.bias"))?);
                }
                let ins: Vec<&str> = ins.iter().map(String::as_str).collect();
                self.node(
                    "Conv",
                    name,
                    &ins,
                    out,
                    vec![
                        AttributeProto::ints("dilations", i64s(&a.dilation)),
                        AttributeProto::int("group", a.groups as i64),
                        AttributeProto::ints("kernel_shape", i64s(&a.kernel)),
                        AttributeProto::ints("pads", i64s(&a.pads.onnx())),
                        AttributeProto::ints("strides", i64s(&a.stride)),
                    ],
                )
            }
            Op::ConvTranspose(a) if a.needs_output_pad_plan() => {
                self.conv_transpose_planned(name, x, a, in_dims, out_dims, out)
            }
            Op::ConvTranspose(a) => {
                let mut ins = vec![x.to_string(), self.param(format!("{name}.weight"))?];
                if a.bias {
                    ins.push(self.param(format!("{name}.bias"))?);
                }
                let ins: Vec<&str> = ins.iter().map(String::as_str).collect();
                self.node(
                    "ConvTranspose",
                    name,
                    &ins,
                    out,
                    vec![
                        AttributeProto::ints("dilations", i64s(&a.dilation)),
                        AttributeProto::int("group", a.groups as i64),
                        AttributeProto::ints("kernel_shape", i64s(&a.kernel)),
                        AttributeProto::ints("output_padding", i64s(&a.output_pad)),
                        AttributeProto::ints("pads", i64s(&a.pads.onnx())),
                        AttributeProto::ints("strides", i64s(&a.stride)),
                    ],
                )
            }
            Op::MaxPool(p) => {
                let extra = self.pool_overhang(name, p, in_dims, out_dims)?;
                let pads = [
                    p.pads.begin,
                    [p.pads.end[0] + extra[0], p.pads.end[1] + extra[1]],
                ];
                simple(
                    self,
                    "MaxPool",
                    vec![
                        AttributeProto::ints("kernel_shape", i64s(&p.kernel)),
                        AttributeProto::ints(
                            "pads",
                            i64s(
                                &Pads {
                                    begin: pads[0],
                                    end: pads[1],
                                }
                                .onnx(),
                            ),
                        ),
                        AttributeProto::ints("strides", i64s(&p.stride)),
                    ],
                )
            }
            Op::AvgPool(p) => self.avgpool(name, x, p, in_dims, out_dims, out),
            // To one pixel from a variable size (any other output is refused then).
            Op::AdaptiveAvgPool { .. } if self.cur_varies => {
                simple(self, "GlobalAveragePool", vec![])
            }
            Op::AdaptiveAvgPool { output } => {
                self.adaptive_avgpool(name, x, *output, in_dims, out_dims, out)
            }
            Op::GlobalAvgPool => simple(self, "GlobalAveragePool", vec![]),
            // To one pixel from a variable size (any other output is refused then).
            Op::AdaptiveMaxPool { .. } if self.cur_varies => simple(self, "GlobalMaxPool", vec![]),
            Op::AdaptiveMaxPool { output } => {
                self.adaptive_maxpool(name, x, *output, in_dims, out_dims, out)
            }
            Op::GlobalMaxPool => simple(self, "GlobalMaxPool", vec![]),
            Op::BatchNorm {
                eps,
                momentum,
                affine,
            } => {
                let mut ins = vec![x.to_string()];
                if *affine {
                    for s in ["weight", "bias"] {
                        ins.push(self.param(format!("{name}.{s}"))?);
                    }
                } else {
                    // No learned scale and shift: ONNX's are required, so ones and zeros.
                    let c = in_dims[0] as usize;
                    for (s, v) in [("ones", 1.0), ("zeros", 0.0)] {
                        let constant = format!("{name}.{s}");
                        self.init_f32(&constant, &[c], &vec![v; c])?;
                        ins.push(constant);
                    }
                }
                for s in ["running_mean", "running_var"] {
                    ins.push(self.param(format!("{name}.{s}"))?);
                }
                let ins: Vec<&str> = ins.iter().map(String::as_str).collect();
                self.node(
                    "BatchNormalization",
                    name,
                    &ins,
                    out,
                    vec![
                        AttributeProto::float("epsilon", *eps as f32),
                        // ONNX's momentum weighs the old running value.
                        AttributeProto::float("momentum", (1.0 - momentum) as f32),
                    ],
                )
            }
            Op::GroupNorm {
                groups,
                eps,
                affine,
            } => self.group_norm(name, x, *groups, *eps, *affine, in_dims, out),
            Op::LayerNorm { eps, affine } => self.layer_norm(name, x, *eps, *affine, in_dims, out),
            // γ·x, γ the [C, 1, 1] (or [F]) parameter, which broadcasts as it is.
            Op::LayerScale { .. } => {
                let weight = self.param(format!("{name}.weight"))?;
                self.node("Mul", name, &[x, &weight], out, vec![])
            }
            Op::Relu => simple(self, "Relu", vec![]),
            Op::Sigmoid => simple(self, "Sigmoid", vec![]),
            Op::Tanh => simple(self, "Tanh", vec![]),
            Op::LeakyRelu { alpha } => simple(
                self,
                "LeakyRelu",
                vec![AttributeProto::float("alpha", *alpha as f32)],
            ),
            Op::Elu { alpha } => simple(
                self,
                "Elu",
                vec![AttributeProto::float("alpha", *alpha as f32)],
            ),
            // x·σ(x): Sigmoid then Mul (ONNX has no SiLU operator).
            Op::Silu => {
                let s = format!("{name}.sigmoid");
                self.node("Sigmoid", &s, &[x], &s, vec![])?;
                self.value_info(&s, out_dims);
                self.node("Mul", name, &[x, &s], out, vec![])
            }
            // x·k, k a float32 initializer named after the layer.
            Op::Scale { factor } => {
                let k = format!("{name}.factor");
                self.init_f32(&k, &[], &[*factor as f32])?;
                self.node("Mul", name, &[x, &k], out, vec![])
            }
            // (x − mean) / std, float32 initializers of one value or one per channel
            // ([C, 1, 1] on an image), as torchvision's `Normalize` subtracts and divides.
            Op::Normalize { mean, std } => {
                let (m, s, centered) = (
                    format!("{name}.mean"),
                    format!("{name}.std"),
                    format!("{name}.centered"),
                );
                for (init, values) in [(&m, mean), (&s, std)] {
                    let dims = per_channel_dims(values.len(), in_dims.len());
                    let data: Vec<f32> = values.iter().map(|&v| v as f32).collect();
                    self.init_f32(init, &dims, &data)?;
                }
                self.node("Sub", &centered, &[x, &m], &centered, vec![])?;
                self.value_info(&centered, out_dims);
                self.node("Div", name, &[&centered, &s], out, vec![])
            }
            // x·tanh(softplus(x)) (ONNX's own Mish needs opset 18).
            Op::Mish => {
                let (sp, t) = (format!("{name}.softplus"), format!("{name}.tanh"));
                self.node("Softplus", &sp, &[x], &sp, vec![])?;
                self.value_info(&sp, out_dims);
                self.node("Tanh", &t, &[&sp], &t, vec![])?;
                self.value_info(&t, out_dims);
                self.node("Mul", name, &[x, &t], out, vec![])
            }
            // ONNX's PRelu broadcasts the slope from the right: one per channel of an image
            // is reshaped to [C, 1, 1].
            Op::Prelu { per_channel } => {
                let weight = self.param(format!("{name}.weight"))?;
                if !per_channel || in_dims.len() == 1 {
                    return self.node("PRelu", name, &[x, &weight], out, vec![]);
                }
                let mut per = vec![in_dims[0] as i64];
                per.extend(std::iter::repeat_n(1, in_dims.len() - 1));
                let (shape, slope) = (format!("{name}.slope_shape"), format!("{name}.slope"));
                self.init_i64(&shape, &per)?;
                self.node("Reshape", &slope, &[&weight, &shape], &slope, vec![])?;
                self.value_info_unbatched(&slope, &per);
                self.node("PRelu", name, &[x, &slope], out, vec![])
            }
            // x·½(1 + erf(x/√2)), PyTorch's exact GELU, in the operators of every opset cnnc
            // writes (ONNX's own Gelu needs opset 20).
            Op::Gelu => {
                let c = |what: &str| format!("{name}.{what}");
                self.init_f32(&c("inv_sqrt2"), &[], &[std::f32::consts::FRAC_1_SQRT_2])?;
                self.init_f32(&c("one"), &[], &[1.0])?;
                self.init_f32(&c("half"), &[], &[0.5])?;
                let steps = [
                    ("Mul", c("scaled"), [x.to_string(), c("inv_sqrt2")]),
                    ("Erf", c("erf"), [c("scaled"), String::new()]),
                    ("Add", c("one_plus"), [c("erf"), c("one")]),
                    ("Mul", c("cdf"), [c("one_plus"), c("half")]),
                ];
                for (op, output, ins) in &steps {
                    let ins: Vec<&str> = ins
                        .iter()
                        .map(String::as_str)
                        .filter(|s| !s.is_empty())
                        .collect();
                    self.node(op, output, &ins, output, vec![])?;
                    self.value_info(output, out_dims);
                }
                self.node("Mul", name, &[x, &c("cdf")], out, vec![])
            }
            // Clip to [0, 6], its bounds as scalar initializers (Clip takes them as inputs).
            Op::Relu6 => {
                let (lo, hi) = (format!("{name}.min"), format!("{name}.max"));
                self.init_f32(&lo, &[], &[0.0])?;
                self.init_f32(&hi, &[], &[6.0])?;
                self.node("Clip", name, &[x, &lo, &hi], out, vec![])
            }
            Op::HardSigmoid => simple(self, "HardSigmoid", hard_sigmoid_attrs()),
            // x·HardSigmoid(x): the operators the CUDA provider runs (ORT's CPU provider
            // fuses them into HardSwish).
            Op::HardSwish => {
                let g = format!("{name}.gate");
                self.node("HardSigmoid", &g, &[x], &g, hard_sigmoid_attrs())?;
                self.value_info(&g, out_dims);
                self.node("Mul", name, &[x, &g], out, vec![])
            }
            Op::Softmax => simple(self, "Softmax", vec![AttributeProto::int("axis", 1)]),
            // Dropout is the identity at inference; the node stays so the layer keeps its
            // name in the exported graph.
            Op::Dropout { .. } => simple(self, "Identity", vec![]),
            Op::Flatten => simple(self, "Flatten", vec![AttributeProto::int("axis", 1)]),
            Op::Linear { bias, .. } => {
                let w = self.param(format!("{name}.weight"))?;
                let b = if *bias {
                    Some(self.param(format!("{name}.bias"))?)
                } else {
                    None
                };
                if in_dims.len() == 1 {
                    let mut ins = vec![x, w.as_str()];
                    ins.extend(b.as_deref());
                    self.node(
                        "Gemm",
                        name,
                        &ins,
                        out,
                        vec![AttributeProto::int("transB", 1)],
                    )
                } else {
                    // PyTorch's Linear acts on the last axis: x · Wᵀ + b.
                    let wt = format!("{name}.weight_t");
                    self.node(
                        "Transpose",
                        &wt,
                        &[&w],
                        &wt,
                        vec![AttributeProto::ints("perm", [1, 0])],
                    )?;
                    match b {
                        None => self.node("MatMul", name, &[x, &wt], out, vec![]),
                        Some(b) => {
                            let mm = format!("{name}.matmul");
                            self.node("MatMul", &mm, &[x, &wt], &mm, vec![])?;
                            self.value_info(&mm, out_dims);
                            self.node("Add", name, &[&mm, &b], out, vec![])
                        }
                    }
                }
            }
            Op::Concat => {
                let ins: Vec<&str> = inputs.iter().map(String::as_str).collect();
                self.node(
                    "Concat",
                    name,
                    &ins,
                    out,
                    vec![AttributeProto::int("axis", 1)],
                )
            }
            // [N, C, H, W] · [N, C, 1, 1]: ONNX's Mul broadcasts.
            Op::Mul => {
                let ins: Vec<&str> = inputs.iter().map(String::as_str).collect();
                self.node("Mul", name, &ins, out, vec![])
            }
            Op::Add => {
                let ins: Vec<&str> = inputs.iter().map(String::as_str).collect();
                self.node("Add", name, &ins, out, vec![])
            }
            Op::Crop { .. } if self.cur_varies => {
                let source = self.size_source_name(ix);
                self.crop_varying(name, x, &source, out)
            }
            Op::Crop { size } => {
                let [_, h, w] = in_dims[..] else {
                    return Err(
                        self.unsupported(name, "crop of a tensor that is not [C, H, W]".into())
                    );
                };
                if size[0] > h || size[1] > w {
                    return Err(self.unsupported(name, "crop larger than its input".into()));
                }
                let starts = [((h - size[0]) / 2) as i64, ((w - size[1]) / 2) as i64];
                let ends = [starts[0] + size[0] as i64, starts[1] + size[1] as i64];
                let (s, e, a) = (
                    format!("{name}.starts"),
                    format!("{name}.ends"),
                    format!("{name}.axes"),
                );
                self.init_i64(&s, &starts)?;
                self.init_i64(&e, &ends)?;
                self.init_i64(&a, &[2, 3])?;
                self.node("Slice", name, &[x, &s, &e, &a], out, vec![])
            }
            Op::Pad { pads, mode } => {
                let [t, l, b, r] = pads.onnx().map(|p| p as i64);
                let p = format!("{name}.pads");
                self.init_i64(&p, &[0, 0, t, l, 0, 0, b, r])?;
                self.node(
                    "Pad",
                    name,
                    &[x, &p],
                    out,
                    vec![AttributeProto::string("mode", mode.onnx())],
                )
            }
            Op::Slice { start, end } => {
                let (s, e, a) = (
                    format!("{name}.starts"),
                    format!("{name}.ends"),
                    format!("{name}.axes"),
                );
                self.init_i64(&s, &[*start as i64])?;
                self.init_i64(&e, &[*end as i64])?;
                self.init_i64(&a, &[1])?;
                self.node("Slice", name, &[x, &s, &e, &a], out, vec![])
            }
            Op::ChannelShuffle { groups } if self.cur_varies => {
                // [N, g, C/g, H·W], its group axes swapped, back to the input's shape.
                let (g, c) = (*groups as i64, in_dims[0] as i64);
                let v = |what: &str| format!("{name}.{what}");
                self.init_i64(&v("grouped_shape"), &[0, g, c / g, -1])?;
                self.shape_of(&v("shape"), x, in_dims.len() + 1)?;
                self.node(
                    "Reshape",
                    &v("grouped"),
                    &[x, &v("grouped_shape")],
                    &v("grouped"),
                    vec![],
                )?;
                self.node(
                    "Transpose",
                    &v("swapped"),
                    &[&v("grouped")],
                    &v("swapped"),
                    vec![AttributeProto::ints("perm", [0, 2, 1, 3])],
                )?;
                self.node("Reshape", name, &[&v("swapped"), &v("shape")], out, vec![])
            }
            Op::ChannelShuffle { groups } => {
                let [c, h, w] = in_dims[..] else {
                    return Err(self.unsupported(
                        name,
                        "channel shuffle of a tensor that is not [C, H, W]".into(),
                    ));
                };
                // [N, g, C/g, H, W], its two group axes swapped, back to [N, C, H, W]; a 0
                // in Reshape's shape keeps the batch dimension.
                let g = *groups;
                let (grouped_shape, shape) =
                    (format!("{name}.grouped_shape"), format!("{name}.shape"));
                self.init_i64(
                    &grouped_shape,
                    &[0, g as i64, (c / g) as i64, h as i64, w as i64],
                )?;
                self.init_i64(&shape, &[0, c as i64, h as i64, w as i64])?;
                let grouped = format!("{name}.grouped");
                self.node("Reshape", &grouped, &[x, &grouped_shape], &grouped, vec![])?;
                self.value_info(&grouped, &[g, c / g, h, w]);
                let swapped = format!("{name}.swapped");
                self.node(
                    "Transpose",
                    &swapped,
                    &[&grouped],
                    &swapped,
                    vec![AttributeProto::ints("perm", [0, 2, 1, 3, 4])],
                )?;
                self.value_info(&swapped, &[c / g, g, h, w]);
                self.node("Reshape", name, &[&swapped, &shape], out, vec![])
            }
            Op::PixelShuffle {
                factor,
                unshuffle: false,
            } => self.node(
                "DepthToSpace",
                name,
                &[x],
                out,
                vec![
                    AttributeProto::int("blocksize", *factor as i64),
                    AttributeProto::string("mode", "CRD"),
                ],
            ),
            // SpaceToDepth orders the channels block-major (DCR: channel (i·r + j)·C + c);
            // a Gather puts them in PyTorch's order, c·r² + i·r + j, at any size.
            Op::PixelShuffle {
                factor,
                unshuffle: true,
            } if self.cur_varies => {
                let (r, c) = (*factor as i64, in_dims[0] as i64);
                let order: Vec<i64> = (0..c * r * r)
                    .map(|k| (k % (r * r)) * c + k / (r * r))
                    .collect();
                let (blocks, order_name) = (format!("{name}.blocks"), format!("{name}.order"));
                self.init_i64(&order_name, &order)?;
                self.node(
                    "SpaceToDepth",
                    &blocks,
                    &[x],
                    &blocks,
                    vec![AttributeProto::int("blocksize", r)],
                )?;
                self.node(
                    "Gather",
                    name,
                    &[&blocks, &order_name],
                    out,
                    vec![AttributeProto::int("axis", 1)],
                )
            }
            Op::PixelShuffle {
                factor,
                unshuffle: true,
            } => {
                let [c, h, w] = in_dims[..] else {
                    return Err(self.unsupported(
                        name,
                        "pixel unshuffle of a tensor that is not [C, H, W]".into(),
                    ));
                };
                // [N, C, H/r, r, W/r, r] with the two block axes moved before the pixels,
                // [N, C, r, r, H/r, W/r], is [N, C·r², H/r, W/r]; ONNX's SpaceToDepth orders
                // the channels the other way (DCR).
                let r = *factor;
                let (blocks_shape, shape) =
                    (format!("{name}.blocks_shape"), format!("{name}.shape"));
                let blocks_dims = [c, h / r, r, w / r, r];
                let mut blocks_i64 = vec![0i64];
                blocks_i64.extend(blocks_dims.iter().map(|&d| d as i64));
                self.init_i64(&blocks_shape, &blocks_i64)?;
                self.init_i64(
                    &shape,
                    &[0, (c * r * r) as i64, (h / r) as i64, (w / r) as i64],
                )?;
                let blocks = format!("{name}.blocks");
                self.node("Reshape", &blocks, &[x, &blocks_shape], &blocks, vec![])?;
                self.value_info(&blocks, &blocks_dims);
                let moved = format!("{name}.moved");
                self.node(
                    "Transpose",
                    &moved,
                    &[&blocks],
                    &moved,
                    vec![AttributeProto::ints("perm", [0, 1, 3, 5, 2, 4])],
                )?;
                self.value_info(&moved, &[c, r, r, h / r, w / r]);
                self.node("Reshape", name, &[&moved, &shape], out, vec![])
            }
            // ONNX's Resize in linear mode, as PyTorch exports it: the scales by axis (1 for
            // N and C), and PyTorch's coordinate convention. Its inferred output loses the
            // batch dimension's name; the value_info every layer output gets keeps it.
            // Nearest to a size no whole multiple of the input's: the source rows, then the
            // source columns, gathered ([`nearest_indices`]).
            Op::Upsample {
                to: UpsampleTo::Size(_),
                mode: UpsampleMode::Bilinear { align_corners },
            } if self.cur_varies && self.model.graph.size_sources.contains_key(&ix) => {
                let source = self.size_source_name(ix);
                let size = format!("{name}.size");
                self.spatial_size(&size, &source)?;
                self.resize_to(name, x, &size, *align_corners, out)
            }
            Op::Upsample {
                to: UpsampleTo::Size(_),
                mode: UpsampleMode::Nearest,
            } if self.cur_varies && self.model.graph.size_sources.contains_key(&ix) => {
                let source = self.size_source_name(ix);
                self.nearest_to_size_varying(name, x, &source, out)
            }
            Op::Upsample { to, mode } if self.cur_varies => {
                self.upsample_varying(name, x, *to, *mode, out)
            }
            Op::Upsample {
                to,
                mode: UpsampleMode::Nearest,
            } if !matches!(in_dims, [_, h, w] if to.nearest_repeats([*h, *w]).is_some()) => {
                let [c, h, w] = in_dims[..] else {
                    return Err(self
                        .unsupported(name, "upsampling of a tensor that is not [C, H, W]".into()));
                };
                let (oh, ow) = (out_dims[1], out_dims[2]);
                let rows_name = format!("{name}.rows");
                let rows_out = if ow == w { out } else { &rows_name };
                let mut y = x.to_string();
                for (axis, n, m, dims, target) in [
                    (2, h, oh, [c, oh, w], rows_out),
                    (3, w, ow, [c, oh, ow], out),
                ] {
                    if n == m {
                        continue;
                    }
                    let index = format!("{name}.index{axis}");
                    self.init_i64(&index, &nearest_indices(to, axis as usize - 2, n, m))?;
                    let node = if target == out { name } else { target };
                    self.node(
                        "Gather",
                        node,
                        &[&y, &index],
                        target,
                        vec![AttributeProto::int("axis", axis)],
                    )?;
                    if target != out {
                        self.value_info(target, &dims);
                    }
                    y = target.to_string();
                }
                Ok(())
            }
            // Bilinear to a size no whole multiple of the input's: Resize to it, with the
            // batch and channels of the input.
            Op::Upsample {
                to,
                mode: UpsampleMode::Bilinear { align_corners },
            } if !matches!(in_dims, [_, h, w] if to.whole_scale([*h, *w]).is_some()) => {
                let size = [out_dims[1], out_dims[2]];
                self.resize_to_size(name, x, size, *align_corners, out)
            }
            Op::Upsample {
                to,
                mode: UpsampleMode::Bilinear { align_corners },
            } => {
                let scale = match in_dims {
                    [_, h, w] => to.whole_scale([*h, *w]).unwrap_or([1, 1]),
                    _ => [1, 1],
                };
                let scales = format!("{name}.scales");
                self.init_f32(&scales, &[4], &resize_scales(scale))?;
                self.node(
                    "Resize",
                    name,
                    &[x, "", &scales],
                    out,
                    resize_attrs(*align_corners),
                )
            }
            Op::Upsample {
                to,
                mode: UpsampleMode::Nearest,
            } => {
                let [c, h, w] = in_dims[..] else {
                    return Err(self
                        .unsupported(name, "upsampling of a tensor that is not [C, H, W]".into()));
                };
                let scale = &to.nearest_repeats([h, w]).unwrap_or([1, 1]);
                // [N, C, H, 1, W, 1] expanded to [N, C, H, sh, W, sw] and joined back: each
                // pixel repeated, as PyTorch's nearest Upsample by a whole factor. (Resize would
                // say the same, but ONNX's shape inference loses the batch dimension's name
                // through its scales.)
                let [sh, sw] = *scale;
                let (split_dims, repeat_dims, out_dims) = upsample_shapes([c, h, w], *scale);
                let (split_shape, repeats, shape) = (
                    format!("{name}.split_shape"),
                    format!("{name}.repeats"),
                    format!("{name}.shape"),
                );
                self.init_i64(&split_shape, &split_dims)?;
                self.init_i64(&repeats, &repeat_dims)?;
                self.init_i64(&shape, &out_dims)?;
                let split = format!("{name}.split");
                self.node("Reshape", &split, &[x, &split_shape], &split, vec![])?;
                self.value_info(&split, &[c, h, 1, w, 1]);
                let blocks = format!("{name}.blocks");
                self.node("Expand", &blocks, &[&split, &repeats], &blocks, vec![])?;
                self.value_info(&blocks, &[c, h, sh, w, sw]);
                self.node("Reshape", name, &[&blocks, &shape], out, vec![])
            }
        }
    }

    /// Bilinear Resize to `size`, with the batch and channels of the input.
    fn resize_to_size(
        &mut self,
        name: &str,
        x: &str,
        size: crate::ir::Pair,
        align_corners: bool,
        out: &str,
    ) -> Result<(), ExportError> {
        let shape = format!("{name}.size");
        self.init_i64(&shape, &i64s(&size))?;
        self.resize_to(name, x, &shape, align_corners, out)
    }

    /// The name of the tensor whose size the layer `ix` takes (`Graph::size_sources`).
    fn size_source_name(&self, ix: NodeIndex) -> String {
        let source = self.model.graph.size_sources[&ix];
        self.tensor[&source].clone()
    }

    /// `name`: the height and width of `x` at run time, an int64 pair.
    fn spatial_size(&mut self, name: &str, x: &str) -> Result<(), ExportError> {
        self.node(
            "Shape",
            name,
            &[x],
            name,
            vec![
                AttributeProto::int("start", 2),
                AttributeProto::int("end", 4),
            ],
        )?;
        self.graph.value_info.push(ValueInfoProto::tensor(
            name,
            data_type::INT64,
            &[Dim::Value(2)],
        ));
        Ok(())
    }

    /// A crop of `x` to the height and width `source` has at run time, centred as
    /// [`Op::Crop`] at a fixed size: it starts at half the difference, rounded down. A
    /// Reshape to the size makes a crop larger than its input (which Slice would cut short)
    /// an error at run time, as the check makes it at the declared size.
    fn crop_varying(
        &mut self,
        name: &str,
        x: &str,
        source: &str,
        out: &str,
    ) -> Result<(), ExportError> {
        let [size, own, excess, two, starts, ends, axes, sliced, leading, shape] = [
            "size",
            "own_size",
            "excess",
            "two",
            "starts",
            "ends",
            "axes",
            "sliced",
            "batch_and_channels",
            "shape",
        ]
        .map(|part| format!("{name}.{part}"));
        self.spatial_size(&size, source)?;
        self.spatial_size(&own, x)?;
        self.init_i64(&two, &[2])?;
        self.init_i64(&axes, &[2, 3])?;
        for (op, node, inputs) in [
            ("Sub", &excess, [&own, &size]),
            ("Div", &starts, [&excess, &two]),
            ("Add", &ends, [&starts, &size]),
        ] {
            self.node(op, node, &[inputs[0], inputs[1]], node, vec![])?;
            self.graph.value_info.push(ValueInfoProto::tensor(
                node,
                data_type::INT64,
                &[Dim::Value(2)],
            ));
        }
        self.node(
            "Slice",
            &sliced,
            &[x, &starts, &ends, &axes],
            &sliced,
            vec![],
        )?;
        self.node(
            "Shape",
            &leading,
            &[x],
            &leading,
            vec![AttributeProto::int("end", 2)],
        )?;
        self.node(
            "Concat",
            &shape,
            &[&leading, &size],
            &shape,
            vec![AttributeProto::int("axis", 0)],
        )?;
        self.node("Reshape", name, &[&sliced, &shape], out, vec![])
    }

    /// Nearest-neighbour upsampling of `x` to the height and width `source` has at run time,
    /// with PyTorch's source pixels ([`crate::ir::UpsampleTo::nearest_source`]): for each
    /// axis of n pixels to m, ⌊o · fl32(n / m)⌋ (at most n − 1) for o in 0..m, in float32
    /// as PyTorch computes it (ONNX's Resize divides by m/n, which differs for some sizes),
    /// then the rows and the columns gathered.
    fn nearest_to_size_varying(
        &mut self,
        name: &str,
        x: &str,
        source: &str,
        out: &str,
    ) -> Result<(), ExportError> {
        let part = |p: &str| format!("{name}.{p}");
        let (own_shape, source_shape) = (part("own_shape"), part("source_shape"));
        self.shape_of(&own_shape, x, 4)?;
        self.shape_of(&source_shape, source, 4)?;
        let (zero, one, one_i) = (part("zero"), part("one"), part("one_int"));
        for (scalar, value) in [(&zero, 0.0), (&one, 1.0)] {
            self.claim(scalar)?;
            self.graph
                .initializer
                .push(TensorProto::from_f32(scalar, &[], &[value]));
        }
        self.claim(&one_i)?;
        self.graph
            .initializer
            .push(TensorProto::from_i64(&one_i, &[], &[1]));
        let mut y = x.to_string();
        for axis in [2i64, 3] {
            let at = |p: &str| part(&format!("{p}{axis}"));
            let [axis_ix, n, m, n_f, m_f, scale, o, scaled, floor, floored, last, index] = [
                "axis",
                "n",
                "m",
                "n_float",
                "m_float",
                "scale",
                "o",
                "scaled",
                "floor",
                "floor_int",
                "last",
                "index",
            ]
            .map(at);
            self.claim(&axis_ix)?;
            self.graph
                .initializer
                .push(TensorProto::from_i64(&axis_ix, &[], &[axis]));
            let float = || vec![AttributeProto::int("to", data_type::FLOAT as i64)];
            let steps: [(&str, &String, Vec<&str>, Vec<AttributeProto>); 11] = [
                ("Gather", &n, vec![&own_shape, &axis_ix], vec![]),
                ("Gather", &m, vec![&source_shape, &axis_ix], vec![]),
                ("Cast", &n_f, vec![&n], float()),
                ("Cast", &m_f, vec![&m], float()),
                ("Div", &scale, vec![&n_f, &m_f], vec![]),
                ("Range", &o, vec![&zero, &m_f, &one], vec![]),
                ("Mul", &scaled, vec![&o, &scale], vec![]),
                ("Floor", &floor, vec![&scaled], vec![]),
                (
                    "Cast",
                    &floored,
                    vec![&floor],
                    vec![AttributeProto::int("to", data_type::INT64 as i64)],
                ),
                ("Sub", &last, vec![&n, &one_i], vec![]),
                ("Min", &index, vec![&floored, &last], vec![]),
            ];
            for (op, value, inputs, attrs) in steps {
                self.node(op, value, &inputs, value, attrs)?;
            }
            let (node, target) = if axis == 3 {
                (name.to_string(), out.to_string())
            } else {
                let rows = part("rows");
                (rows.clone(), rows)
            };
            self.node(
                "Gather",
                &node,
                &[&y, &index],
                &target,
                vec![AttributeProto::int("axis", axis)],
            )?;
            y = target;
        }
        Ok(())
    }

    /// Bilinear Resize to the int64 pair `size`, with the batch and channels of the input.
    fn resize_to(
        &mut self,
        name: &str,
        x: &str,
        shape: &str,
        align_corners: bool,
        out: &str,
    ) -> Result<(), ExportError> {
        let (sizes, batch_and_channels) = (
            format!("{name}.sizes"),
            format!("{name}.batch_and_channels"),
        );
        self.node(
            "Shape",
            &batch_and_channels,
            &[x],
            &batch_and_channels,
            vec![AttributeProto::int("end", 2)],
        )?;
        self.node(
            "Concat",
            &sizes,
            &[&batch_and_channels, shape],
            &sizes,
            vec![AttributeProto::int("axis", 0)],
        )?;
        for (value, len) in [(&batch_and_channels, 2), (&sizes, 4)] {
            self.graph.value_info.push(ValueInfoProto::tensor(
                value,
                data_type::INT64,
                &[Dim::Value(len)],
            ));
        }
        self.node(
            "Resize",
            name,
            &[x, "", "", &sizes],
            out,
            resize_to_size_attrs(align_corners),
        )
    }

    /// An upsampling of a tensor whose size follows the input's: Resize by the scales, or
    /// to the size (bilinear). Nearest by a whole factor is the `asymmetric` source
    /// position o/s rounded down, PyTorch's o·n/m exactly; nearest to a size was refused.
    fn upsample_varying(
        &mut self,
        name: &str,
        x: &str,
        to: UpsampleTo,
        mode: UpsampleMode,
        out: &str,
    ) -> Result<(), ExportError> {
        let attrs = match (to, mode) {
            (UpsampleTo::Size(size), UpsampleMode::Bilinear { align_corners }) => {
                return self.resize_to_size(name, x, size, align_corners, out);
            }
            (UpsampleTo::Size(_), UpsampleMode::Nearest) => {
                return Err(self.unsupported(name, "nearest upsampling to a size".into()));
            }
            (UpsampleTo::Scale(_), UpsampleMode::Bilinear { align_corners }) => {
                resize_attrs(align_corners)
            }
            (UpsampleTo::Scale(_), UpsampleMode::Nearest) => vec![
                AttributeProto::string("mode", "nearest"),
                AttributeProto::string("coordinate_transformation_mode", "asymmetric"),
                AttributeProto::string("nearest_mode", "floor"),
            ],
        };
        let UpsampleTo::Scale(scale) = to else {
            unreachable!("a size returned above")
        };
        let scales = format!("{name}.scales");
        self.init_f32(&scales, &[4], &resize_scales(scale))?;
        self.node("Resize", name, &[x, "", &scales], out, attrs)
    }

    /// LayerNorm over the channels as ONNX's LayerNormalization (opset 17, as every opset cnnc
    /// writes), which normalizes over the last axes: a vector's features directly, an image's
    /// channels between a Transpose to channels-last and one back, as PyTorch exports
    /// ConvNeXt's `LayerNorm2d`. Without affine, the scale is ones and there is no shift.
    fn layer_norm(
        &mut self,
        name: &str,
        x: &str,
        eps: f64,
        affine: bool,
        in_dims: &[u64],
        out: &str,
    ) -> Result<(), ExportError> {
        let c = in_dims[0] as usize;
        let mut ins = if affine {
            vec![
                self.param(format!("{name}.weight"))?,
                self.param(format!("{name}.bias"))?,
            ]
        } else {
            let ones = format!("{name}.ones");
            self.init_f32(&ones, &[c], &vec![1.0; c])?;
            vec![ones]
        };
        let attrs = vec![
            AttributeProto::int("axis", -1),
            AttributeProto::float("epsilon", eps as f32),
        ];
        if in_dims.len() == 1 {
            ins.insert(0, x.to_string());
            let ins: Vec<&str> = ins.iter().map(String::as_str).collect();
            return self.node("LayerNormalization", name, &ins, out, attrs);
        }
        let last = [in_dims[1], in_dims[2], in_dims[0]];
        let (to_last, normalized) = (
            format!("{name}.channels_last"),
            format!("{name}.normalized"),
        );
        self.node(
            "Transpose",
            &to_last,
            &[x],
            &to_last,
            vec![AttributeProto::ints("perm", [0, 2, 3, 1])],
        )?;
        self.value_info(&to_last, &last);
        ins.insert(0, to_last);
        let ins: Vec<&str> = ins.iter().map(String::as_str).collect();
        self.node("LayerNormalization", &normalized, &ins, &normalized, attrs)?;
        self.value_info(&normalized, &last);
        self.node(
            "Transpose",
            name,
            &[&normalized],
            out,
            vec![AttributeProto::ints("perm", [0, 3, 1, 2])],
        )
    }

    /// GroupNorm as ONNX's InstanceNormalization, which every opset and ONNX Runtime's
    /// providers have (GroupNormalization came with opset 18 and changed its scale's meaning
    /// in 21): one channel a group is InstanceNormalization itself, with the learned scale
    /// and shift or ones and zeros; otherwise the sample is reshaped to [N, G, rest], each
    /// group normalized as one channel of values, reshaped back, then scaled and shifted
    /// per channel.
    #[allow(clippy::too_many_arguments)]
    fn group_norm(
        &mut self,
        name: &str,
        x: &str,
        groups: Option<u64>,
        eps: f64,
        affine: bool,
        in_dims: &[u64],
        out: &str,
    ) -> Result<(), ExportError> {
        let c = in_dims[0];
        let g = groups.unwrap_or(c);
        let epsilon = vec![AttributeProto::float("epsilon", eps as f32)];
        let (ones, zeros) = (format!("{name}.ones"), format!("{name}.zeros"));
        if g == c && in_dims.len() == 3 {
            let (scale, shift) = if affine {
                (
                    self.param(format!("{name}.weight"))?,
                    self.param(format!("{name}.bias"))?,
                )
            } else {
                self.init_f32(&ones, &[c as usize], &vec![1.0; c as usize])?;
                self.init_f32(&zeros, &[c as usize], &vec![0.0; c as usize])?;
                (ones, zeros)
            };
            return self.node(
                "InstanceNormalization",
                name,
                &[x, &scale, &shift],
                out,
                epsilon,
            );
        }
        let rest = in_dims.iter().product::<u64>() / g;
        let (grouped_shape, shape) = (format!("{name}.grouped_shape"), format!("{name}.shape"));
        if self.cur_varies {
            // The group's values and the shape back: those of the input at run time.
            self.init_i64(&grouped_shape, &[0, g as i64, -1])?;
            self.shape_of(&shape, x, in_dims.len() + 1)?;
        } else {
            self.init_i64(&grouped_shape, &[0, g as i64, rest as i64])?;
            let mut back = vec![0i64];
            back.extend(i64s(in_dims));
            self.init_i64(&shape, &back)?;
        }
        self.init_f32(&ones, &[g as usize], &vec![1.0; g as usize])?;
        self.init_f32(&zeros, &[g as usize], &vec![0.0; g as usize])?;
        let grouped = format!("{name}.grouped");
        self.node("Reshape", &grouped, &[x, &grouped_shape], &grouped, vec![])?;
        self.value_info(&grouped, &[g, rest]);
        let normalized = format!("{name}.normalized");
        self.node(
            "InstanceNormalization",
            &normalized,
            &[&grouped, &ones, &zeros],
            &normalized,
            epsilon,
        )?;
        self.value_info(&normalized, &[g, rest]);
        if !affine {
            return self.node("Reshape", name, &[&normalized, &shape], out, vec![]);
        }
        let ungrouped = format!("{name}.ungrouped");
        self.node(
            "Reshape",
            &ungrouped,
            &[&normalized, &shape],
            &ungrouped,
            vec![],
        )?;
        self.value_info(&ungrouped, in_dims);
        // [C] against [N, C, H, W] broadcasts from the right: as [C, 1, 1].
        let mut per_channel = vec![c as i64];
        per_channel.extend(std::iter::repeat_n(1, in_dims.len() - 1));
        let channel_shape = format!("{name}.channel_shape");
        self.init_i64(&channel_shape, &per_channel)?;
        let (weight, bias) = (
            self.param(format!("{name}.weight"))?,
            self.param(format!("{name}.bias"))?,
        );
        let (scale, shift) = (format!("{name}.scale"), format!("{name}.shift"));
        self.node(
            "Reshape",
            &scale,
            &[&weight, &channel_shape],
            &scale,
            vec![],
        )?;
        self.node("Reshape", &shift, &[&bias, &channel_shape], &shift, vec![])?;
        self.value_info_unbatched(&scale, &per_channel);
        self.value_info_unbatched(&shift, &per_channel);
        let scaled = format!("{name}.scaled");
        self.node("Mul", &scaled, &[&ungrouped, &scale], &scaled, vec![])?;
        self.value_info(&scaled, in_dims);
        self.node("Add", name, &[&scaled, &shift], out, vec![])
    }

    /// A transposed conv whose `output_pad` reaches its stride ([`OutputPadPlan`]): the
    /// unpadded ConvTranspose, a Slice of the kept rows and columns, a zero Pad of the rows
    /// and columns no input reaches, then the bias.
    fn conv_transpose_planned(
        &mut self,
        name: &str,
        x: &str,
        a: &crate::ir::ConvTransposeAttrs,
        in_dims: &[u64],
        out_dims: &[u64],
        out: &str,
    ) -> Result<(), ExportError> {
        let [_, h, w] = in_dims[..] else {
            return Err(self.unsupported(name, "convT of a tensor that is not [C, H, W]".into()));
        };
        let plan = a.output_pad_plan([h, w]);
        let c = out_dims[0];
        let weight = self.param(format!("{name}.weight"))?;
        let bias = if a.bias {
            Some(self.param(format!("{name}.bias"))?)
        } else {
            None
        };
        let v = |what: &str| format!("{name}.{what}");
        self.node(
            "ConvTranspose",
            &v("full"),
            &[x, &weight],
            &v("full"),
            vec![
                AttributeProto::ints("dilations", i64s(&a.dilation)),
                AttributeProto::int("group", a.groups as i64),
                AttributeProto::ints("kernel_shape", i64s(&a.kernel)),
                AttributeProto::ints("pads", vec![0; 4]),
                AttributeProto::ints("strides", i64s(&a.stride)),
            ],
        )?;
        self.value_info(&v("full"), &[c, plan.full[0], plan.full[1]]);
        // Each step's output is the next one's input; the last writes `out`.
        let mut steps: Vec<(&str, String, Vec<String>, Vec<u64>)> = Vec::new();
        let kept = [plan.end[0] - plan.start[0], plan.end[1] - plan.start[1]];
        self.init_i64(&v("starts"), &i64s(&plan.start))?;
        self.init_i64(&v("ends"), &i64s(&plan.end))?;
        self.init_i64(&v("axes"), &[2, 3])?;
        steps.push((
            "Slice",
            v("kept"),
            vec![v("starts"), v("ends"), v("axes")],
            vec![c, kept[0], kept[1]],
        ));
        if plan.extend != [0, 0] {
            let [eh, ew] = plan.extend;
            self.init_i64(&v("extend"), &[0, 0, 0, 0, 0, 0, eh as i64, ew as i64])?;
            steps.push((
                "Pad",
                v("extended"),
                vec![v("extend")],
                vec![c, kept[0] + eh, kept[1] + ew],
            ));
        }
        if let Some(b) = bias {
            self.init_i64(&v("bias_shape"), &[c as i64, 1, 1])?;
            self.node(
                "Reshape",
                &v("bias_c11"),
                &[&b, &v("bias_shape")],
                &v("bias_c11"),
                vec![],
            )?;
            // No batch dimension: the bias broadcasts over it.
            self.graph.value_info.push(ValueInfoProto::tensor(
                &v("bias_c11"),
                data_type::FLOAT,
                &[c as i64, 1, 1].map(Dim::Value),
            ));
            steps.push(("Add", v("biased"), vec![v("bias_c11")], out_dims.to_vec()));
        }
        let mut input = v("full");
        let last = steps.len() - 1;
        for (i, (op, output, rest, dims)) in steps.into_iter().enumerate() {
            let output = if i == last { out.to_string() } else { output };
            let node_name = if i == last {
                name.to_string()
            } else {
                output.clone()
            };
            let mut ins = vec![input.as_str()];
            ins.extend(rest.iter().map(String::as_str));
            self.node(op, &node_name, &ins, &output, vec![])?;
            if i != last {
                self.value_info(&output, &dims);
            }
            input = output;
        }
        Ok(())
    }

    /// Extra end padding that turns a ceil-mode pooling into floor mode with the same
    /// windows: the checked output shape fixes the window count, so cnnc never relies on
    /// ONNX's `ceil_mode` (whose output size and divisor differ between ONNX versions and
    /// from PyTorch's rule that drops a last window starting in the end padding).
    fn pool_overhang(
        &self,
        name: &str,
        p: &PoolAttrs,
        in_dims: &[u64],
        out_dims: &[u64],
    ) -> Result<[u64; 2], ExportError> {
        let (&[_, ih, iw], &[_, oh, ow]) = (in_dims, out_dims) else {
            return Err(self.unsupported(name, "pooling of a tensor that is not [C, H, W]".into()));
        };
        let mut extra = [0u64; 2];
        for (axis, (n, o)) in [(ih, oh), (iw, ow)].into_iter().enumerate() {
            let (k, s) = (p.kernel[axis], p.stride[axis].max(1));
            let (pb, pe) = (p.pads.begin[axis], p.pads.end[axis]);
            let have = n + pb + pe;
            let need = (o.max(1) - 1) * s + k;
            let e = need.saturating_sub(have);
            // Floor mode on the padded size must give exactly `o` windows.
            if have + e < k || (have + e - k) / s + 1 != o {
                return Err(self.unsupported(
                    name,
                    format!("pooling output size {o} on axis {axis} does not follow from input {n}, kernel {k}, stride {s}, pads {pb}+{pe}"),
                ));
            }
            if e > 0 && pe + e >= k {
                return Err(self.unsupported(
                    name,
                    "a ceil-mode window would lie entirely in the padding".into(),
                ));
            }
            extra[axis] = e;
        }
        Ok(extra)
    }

    /// PyTorch `AvgPool2d`: with `count_include_pad=True` the divisor counts padding but not
    /// the part of a ceil-mode window past the end padding; with `False`, only the input's
    /// values. The overhang is added to the end padding, so every window lies inside it and
    /// AveragePool (`count_include_pad=1`) divides by kh·kw; a constant rescales the windows
    /// whose divisor differs to PyTorch's ([`PoolAttrs::avg_divisors`]).
    /// Asymmetric padding is made explicit (Pad with zeros), never given to AveragePool:
    /// ONNX Runtime's CUDA AveragePool applied the begin pads to both sides (fixed in 2026,
    /// onnxruntime#29631), and its CPU one took a wrong divisor for them (#27375).
    fn avgpool(
        &mut self,
        name: &str,
        x: &str,
        p: &PoolAttrs,
        in_dims: &[u64],
        out_dims: &[u64],
        out: &str,
    ) -> Result<(), ExportError> {
        let extra = self.pool_overhang(name, p, in_dims, out_dims)?;
        let pads = Pads {
            begin: p.pads.begin,
            end: [p.pads.end[0] + extra[0], p.pads.end[1] + extra[1]],
        };
        let padded = format!("{name}.padded");
        let (input, pads) = if pads.is_symmetric() {
            (x, pads)
        } else {
            let pads_name = format!("{name}.pads");
            self.init_i64(&pads_name, &pad_amounts(&pads))?;
            self.node("Pad", &padded, &[x, &pads_name], &padded, vec![])?;
            let (b, e) = (pads.begin, pads.end);
            self.value_info(
                &padded,
                &[
                    in_dims[0],
                    in_dims[1] + b[0] + e[0],
                    in_dims[2] + b[1] + e[1],
                ],
            );
            (padded.as_str(), Pads::default())
        };
        let attrs = avgpool_attrs(p, &pads);
        if p.divides_by_kernel(extra) {
            return self.node("AveragePool", name, &[input], out, attrs);
        }
        let full = format!("{name}.full");
        self.node("AveragePool", name, &[input], &full, attrs)?;
        self.value_info(&full, out_dims);
        let k = (p.kernel[0] * p.kernel[1]) as f32;
        let rescale: Vec<f32> = p
            .avg_divisors([in_dims[1], in_dims[2]], [out_dims[1], out_dims[2]])
            .iter()
            .map(|d| k / d)
            .collect();
        let rescale_name = format!("{name}.rescale");
        self.init_f32(
            &rescale_name,
            &[out_dims[1] as usize, out_dims[2] as usize],
            &rescale,
        )?;
        self.node(
            "Mul",
            &format!("{name}.rescaled"),
            &[&full, &rescale_name],
            out,
            vec![],
        )
    }

    /// An adaptive pooling's input `[C, H, W]`, or why it cannot be exported (the shape
    /// check refuses both first).
    fn adaptive_input(
        &self,
        name: &str,
        in_dims: &[u64],
        output: [u64; 2],
    ) -> Result<[u64; 3], ExportError> {
        let [c, h, w] = in_dims[..] else {
            return Err(self.unsupported(
                name,
                "adaptive pooling of a tensor that is not [C, H, W]".into(),
            ));
        };
        if output.contains(&0) {
            return Err(self.unsupported(name, "adaptive pooling to an empty size".into()));
        }
        Ok([c, h, w])
    }

    /// PyTorch `AdaptiveAvgPool2d`: bin i of n → m covers [⌊i·n/m⌋, ⌈(i+1)·n/m⌉). Divisible
    /// sizes are an AveragePool; otherwise `Ph · X · Pwᵀ` with constant averaging matrices
    /// (two MatMuls), exact for any sizes.
    fn adaptive_avgpool(
        &mut self,
        name: &str,
        x: &str,
        output: [u64; 2],
        in_dims: &[u64],
        out_dims: &[u64],
        out: &str,
    ) -> Result<(), ExportError> {
        let [c, h, w] = self.adaptive_input(name, in_dims, output)?;
        let [oh, ow] = output;
        if h % oh == 0 && w % ow == 0 {
            let k = [h / oh, w / ow];
            return self.node(
                "AveragePool",
                name,
                &[x],
                out,
                vec![
                    AttributeProto::ints("kernel_shape", i64s(&k)),
                    AttributeProto::ints("strides", i64s(&k)),
                ],
            );
        }
        // pool_w: [w, ow], column j averages bin j; pool_h: [oh, h], row i averages bin i.
        // The shape check bounds them (2^38 elements each), not to what this machine can
        // hold: they are allocated only if they can be, once each, as their bytes.
        let (Some(pw), Some(ph)) = (averaging_bytes(w, ow, true), averaging_bytes(h, oh, false))
        else {
            let need = (h.saturating_mul(oh))
                .saturating_add(w.saturating_mul(ow))
                .saturating_mul(4);
            return Err(self.unsupported(
                name,
                format!(
                    "its averaging matrices [{oh}, {h}] and [{w}, {ow}] need {}, more than \
                     this machine can allocate; an output size that divides the input's \
                     needs none (it is an AveragePool)",
                    crate::shape::summary::bytes(need)
                ),
            ));
        };
        let (pw_name, ph_name, cols) = (
            format!("{name}.pool_w"),
            format!("{name}.pool_h"),
            format!("{name}.cols"),
        );
        for (n, dims, bytes) in [
            (&pw_name, [w as usize, ow as usize], pw),
            (&ph_name, [oh as usize, h as usize], ph),
        ] {
            self.claim(n)?;
            self.graph.initializer.push(TensorProto {
                raw_data: bytes,
                ..TensorProto::f32_without_data(n, &dims)
            });
        }
        self.node("MatMul", &cols, &[x, &pw_name], &cols, vec![])?;
        self.value_info(&cols, &[c, h, ow]);
        debug_assert_eq!(out_dims, [c, oh, ow]);
        self.node("MatMul", name, &[&ph_name, &cols], out, vec![])
    }

    /// PyTorch `AdaptiveMaxPool2d`, over the bins of `adaptive_avgpool`. Divisible sizes
    /// are a MaxPool; an axis whose bins are uneven or overlap is first gathered, bin after
    /// bin, each widened to the widest by repeating its last index
    /// ([`crate::ir::adaptive_max_gather`]), and a MaxPool with that width as kernel and
    /// stride takes each bin's maximum: exact for any sizes.
    fn adaptive_maxpool(
        &mut self,
        name: &str,
        x: &str,
        output: [u64; 2],
        in_dims: &[u64],
        out_dims: &[u64],
        out: &str,
    ) -> Result<(), ExportError> {
        let [c, h, w] = self.adaptive_input(name, in_dims, output)?;
        // The int64 indices stay in the model (never external data): refused before they
        // are built where they alone would pass protobuf's limit.
        let index_bytes = (0..2)
            .map(|a| {
                crate::ir::adaptive_max_gather_width(in_dims[a + 1], output[a])
                    .map_or(0, |k| output[a].saturating_mul(k).saturating_mul(8))
            })
            .fold(0, u64::saturating_add);
        if index_bytes > PROTOBUF_LIMIT {
            return Err(self.unsupported(
                name,
                format!(
                    "the indices of its gathered bins need {}, over the 2 GiB an ONNX model \
                     can hold (constants stay in the model, not in external data); an output \
                     size that divides the input's needs none (the pooling is then a MaxPool)",
                    crate::shape::summary::bytes(index_bytes)
                ),
            ));
        }
        let (mut y, mut dims, mut kernel) = (x.to_string(), [c, h, w], [0u64; 2]);
        for axis in 0..2 {
            let (n, m) = (dims[axis + 1], output[axis]);
            let Some((k, index)) = crate::ir::adaptive_max_gather(n, m) else {
                kernel[axis] = n / m;
                continue;
            };
            kernel[axis] = k;
            let (index_name, bins) = (
                format!("{name}.index{}", axis + 2),
                format!("{name}.bins{}", axis + 2),
            );
            self.init_i64(&index_name, &index)?;
            self.node(
                "Gather",
                &bins,
                &[&y, &index_name],
                &bins,
                vec![AttributeProto::int("axis", axis as i64 + 2)],
            )?;
            dims[axis + 1] = m * k;
            self.value_info(&bins, &dims);
            y = bins;
        }
        debug_assert_eq!(out_dims, [c, output[0], output[1]]);
        self.node(
            "MaxPool",
            name,
            &[&y],
            out,
            vec![
                AttributeProto::ints("kernel_shape", i64s(&kernel)),
                AttributeProto::ints("strides", i64s(&kernel)),
            ],
        )
    }
}

/// PyTorch's adaptive pooling bins of `n` values into `m` as an averaging matrix, as the
/// little-endian bytes of its float32 values: `[m, n]`, row i averaging bin i, or with
/// `transposed` `[n, m]`, column i. `None` when it cannot be allocated.
fn averaging_bytes(n: u64, m: u64, transposed: bool) -> Option<Vec<u8>> {
    let len = usize::try_from(n.checked_mul(m)?.checked_mul(4)?).ok()?;
    let mut out = Vec::new();
    crate::oom::try_reserve_exact(&mut out, len).ok()?;
    out.resize(len, 0);
    for i in 0..m {
        let bin = crate::ir::adaptive_bin(i, n, m);
        let v = (1.0 / (bin.end - bin.start) as f32).to_le_bytes();
        for j in bin {
            let at = 4 * if transposed { j * m + i } else { i * n + j } as usize;
            out[at..at + 4].copy_from_slice(&v);
        }
    }
    Some(out)
}

/// `path:line:col` of a span's start.
fn location(sources: &SourceMap, span: crate::source::Span) -> String {
    if (span.file.0 as usize) >= sources.files().count() {
        return String::new();
    }
    let f = sources.get(span.file);
    let (line, col) = f.line_col(span.start);
    format!("{}:{line}:{col}", f.path.display())
}

/// AveragePool's attributes for a pooling whose (symmetric) pads are `pads`, counting them in
/// the divisor (PyTorch's `count_include_pad=True`); shared with the training graphs.
pub(crate) fn avgpool_attrs(p: &PoolAttrs, pads: &Pads) -> Vec<AttributeProto> {
    vec![
        AttributeProto::int("count_include_pad", 1),
        AttributeProto::ints("kernel_shape", i64s(&p.kernel)),
        AttributeProto::ints("pads", i64s(&pads.onnx())),
        AttributeProto::ints("strides", i64s(&p.stride)),
    ]
}

/// ONNX Pad's amounts for an `[N, C, H, W]` tensor padded by `pads` on H and W.
pub(crate) fn pad_amounts(pads: &Pads) -> [i64; 8] {
    let (b, e) = (pads.begin, pads.end);
    [
        0,
        0,
        b[0] as i64,
        b[1] as i64,
        0,
        0,
        e[0] as i64,
        e[1] as i64,
    ]
}

/// The dims of `normalize`'s constants of `n` values for an input of rank `rank` (without
/// the batch): a scalar for one value, `[C, 1, 1]` (or `[F]`) for one per channel.
pub(crate) fn per_channel_dims(n: usize, rank: usize) -> Vec<usize> {
    if n == 1 {
        Vec::new()
    } else {
        let mut dims = vec![n];
        dims.extend(std::iter::repeat_n(1, rank.saturating_sub(1)));
        dims
    }
}

/// PyTorch's hardsigmoid, relu6(x + 3) / 6, as ONNX's HardSigmoid max(0, min(1, αx + β)).
pub(crate) fn hard_sigmoid_attrs() -> Vec<AttributeProto> {
    vec![
        AttributeProto::float("alpha", 1.0 / 6.0),
        AttributeProto::float("beta", 0.5),
    ]
}

/// The `scales` input of bilinear upsampling's Resize: `[1, 1, sh, sw]`.
pub(crate) fn resize_scales(scale: crate::ir::Pair) -> [f32; 4] {
    [1.0, 1.0, scale[0] as f32, scale[1] as f32]
}

/// Resize's attributes for PyTorch's bilinear interpolation: `pytorch_half_pixel` is
/// `align_corners=False` (PyTorch's own export writes it), `align_corners` the other.
pub(crate) fn resize_attrs(align_corners: bool) -> Vec<AttributeProto> {
    let coordinates = if align_corners {
        "align_corners"
    } else {
        "pytorch_half_pixel"
    };
    vec![
        AttributeProto::string("mode", "linear"),
        AttributeProto::string("coordinate_transformation_mode", coordinates),
    ]
}

/// Resize's attributes for bilinear resampling to a size, as PyTorch's
/// `interpolate(size=…, mode='bilinear')` computes: output pixel o of an axis of m reads the
/// source position (o + ½)·n/m − ½, clamped at 0 (`half_pixel`, which unlike
/// `pytorch_half_pixel` does so for an output of one pixel too), or aligns the corners.
pub(crate) fn resize_to_size_attrs(align_corners: bool) -> Vec<AttributeProto> {
    vec![
        AttributeProto::string("mode", "linear"),
        AttributeProto::string(
            "coordinate_transformation_mode",
            if align_corners {
                "align_corners"
            } else {
                "half_pixel"
            },
        ),
    ]
}

/// The source pixel of each of the `m` output pixels of axis `axis` (0 the height, 1 the
/// width) of `n` pixels, as PyTorch picks them ([`crate::ir::UpsampleTo::nearest_source`]).
/// (ONNX's Resize divides by m/n instead, which differs from PyTorch by one pixel for some
/// sizes, such as 2 → 82: cnnc gathers these indices.)
pub(crate) fn nearest_indices(to: &crate::ir::UpsampleTo, axis: usize, n: u64, m: u64) -> Vec<i64> {
    (0..m)
        .map(|o| to.nearest_source(axis, n, m, o) as i64)
        .collect()
}

/// The three shapes of `upsample`'s lowering of a `[C, H, W]` input: the input split to
/// `[N, C, H, 1, W, 1]` (0 keeps the batch), what Expand broadcasts it to, `[1, 1, 1, sh, 1,
/// sw]`, and the output `[N, C, H·sh, W·sw]`.
pub(crate) fn upsample_shapes(
    dims: [u64; 3],
    scale: crate::ir::Pair,
) -> ([i64; 6], [i64; 6], [i64; 4]) {
    let [c, h, w] = dims.map(|d| d as i64);
    let [sh, sw] = scale.map(|s| s as i64);
    (
        [0, c, h, 1, w, 1],
        [1, 1, 1, sh, 1, sw],
        [0, c, h * sh, w * sw],
    )
}

//! ONNX export: consumes a [`crate::shape::CheckedModel`] and its [`Weights`], produces an
//! ONNX `ModelProto` (hand-written prost messages, no protoc).
//!
//! [`proto`] holds the messages, [`lower`] the per-op lowering, [`weights`] the parameter
//! names, shapes, initialization and safetensors I/O.

pub mod lower;
pub mod proto;
pub mod stream;
pub mod weights;

pub use lower::{
    export, export_bytes, externalize, ir_version, lower, main_output_nodes, write_model,
    write_model_expecting, ExportError, ExportOptions, ParamSlot, Written, DEFAULT_OPSET,
    EXTERNAL_DATA_THRESHOLD, OPSETS,
};
pub use stream::{export_to_file, ParamValues};
pub use weights::{
    initialize, load_safetensors, parameter_specs, save_safetensors, Init, ParamKind, ParamSpec,
    Tensor, WeightProblem, Weights, WeightsError,
};

#[cfg(test)]
mod tests;

/// The operator that computes an ONNX model's first output (`Gemm`, `Relu`, …); `None` when
/// the bytes are no ONNX model or the output is no node's (an input, an initializer). Reads
/// the nodes and outputs only: the initializers' bytes are skipped, not copied.
pub fn first_output_op(bytes: &[u8]) -> Option<String> {
    use prost::Message;
    #[derive(Clone, PartialEq, prost::Message)]
    struct Model {
        #[prost(message, optional, tag = "7")]
        graph: Option<Graph>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    struct Graph {
        #[prost(message, repeated, tag = "1")]
        node: Vec<proto::NodeProto>,
        #[prost(message, repeated, tag = "12")]
        output: Vec<proto::ValueInfoProto>,
    }
    let graph = Model::decode(bytes).ok()?.graph?;
    let output = &graph.output.first()?.name;
    graph
        .node
        .iter()
        .find(|n| n.output.contains(output))
        .map(|n| n.op_type.clone())
}

/// The value of a model's metadata entry `key` (`cnnc_input`, `cnnc_training`); `None`
/// when it has none, or the bytes are no ONNX model. The graph is skipped, not decoded.
pub fn metadata_value(bytes: &[u8], key: &str) -> Option<String> {
    use prost::Message;
    #[derive(Clone, PartialEq, prost::Message)]
    struct Model {
        #[prost(message, repeated, tag = "14")]
        metadata_props: Vec<proto::StringStringEntryProto>,
    }
    Model::decode(bytes)
        .ok()?
        .metadata_props
        .into_iter()
        .find(|p| p.key == key)
        .map(|p| p.value)
}

/// Where the external data of the model `bytes` stored in the file `location` ends: the
/// largest offset + length of its tensors there, and whether one of them has no length (its
/// data runs to the end of the file, so the file may be longer). None for a model that does
/// not parse or keeps nothing there, or a value that is not a number.
pub fn external_data_extent(bytes: &[u8], location: &str) -> Option<(u64, bool)> {
    use prost::Message;
    let model = proto::ModelProto::decode(bytes).ok()?;
    let ends: Option<Vec<(u64, bool)>> = model
        .graph
        .iter()
        .flat_map(|g| &g.initializer)
        .filter(|t| t.data_location == proto::data_location::EXTERNAL)
        .filter(|t| {
            t.external_data
                .iter()
                .any(|e| e.key == "location" && e.value == location)
        })
        .map(|t| {
            let field = |key: &str| -> Option<Option<u64>> {
                match t.external_data.iter().find(|e| e.key == key) {
                    None => Some(None),
                    Some(e) => e.value.parse().ok().map(Some),
                }
            };
            let offset = field("offset")?.unwrap_or(0);
            match field("length")? {
                Some(length) => Some((offset.checked_add(length)?, false)),
                None => Some((offset, true)),
            }
        })
        .collect();
    let ends = ends?;
    let end = ends.iter().map(|(e, _)| *e).max()?;
    Some((end, ends.iter().any(|(_, open)| *open)))
}

/// The files an ONNX model's initializers keep their data in (`location` of each external
/// tensor, relative to the model's folder); `None` when the bytes are no ONNX model.
pub fn external_data_locations(bytes: &[u8]) -> Option<Vec<String>> {
    use prost::Message;
    let model = proto::ModelProto::decode(bytes).ok()?;
    Some(
        model
            .graph
            .iter()
            .flat_map(|g| &g.initializer)
            .filter(|t| t.data_location == proto::data_location::EXTERNAL)
            .flat_map(|t| &t.external_data)
            .filter(|e| e.key == "location")
            .map(|e| e.value.clone())
            .collect(),
    )
}

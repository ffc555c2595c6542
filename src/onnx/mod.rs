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

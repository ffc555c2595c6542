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
    export, export_bytes, externalize, ir_version, lower, write_model, write_model_expecting,
    ExportError, ExportOptions, ParamSlot, Written, DEFAULT_OPSET, EXTERNAL_DATA_THRESHOLD, OPSETS,
};
pub use stream::{export_to_file, ParamValues};
pub use weights::{
    initialize, load_safetensors, parameter_specs, save_safetensors, Init, ParamKind, ParamSpec,
    Tensor, WeightProblem, Weights, WeightsError,
};

#[cfg(test)]
mod tests;

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

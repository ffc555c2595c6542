//! Shared code of the fuzz targets: the pipeline every input goes through, and a
//! grammar-aware generator of mostly valid `.cnn` programs.

pub mod gen;

use cnnc::onnx;
use std::path::Path;

/// Runs everything a user can reach from source text without ONNX Runtime: parse,
/// elaborate, check, render every diagnostic (text and JSON), summarize and print each
/// checked model, and lower it to ONNX in memory. Panics are the bugs the fuzzer looks for.
pub fn compile_all(text: &str) -> cnnc::Compilation {
    // A path in a folder with no `.cnn` files: `use` declarations resolve to nothing.
    let c = cnnc::compile_source(Path::new("/nonexistent/fuzz.cnn"), text.to_string());
    for d in c.diagnostics.iter() {
        let _ = d.render(&c.sources, false);
        let _ = d.to_json(&c.sources);
    }
    let _ = c.model(None);
    for m in &c.models {
        let _ = cnnc::shape::summary::summarize(m).to_text();
        let _ = cnnc::ir::print::dump(&m.graph);
        lower(m, &c.sources);
    }
    c
}

/// Most parameters a model may have for the fuzzer to initialize and lower it (the weights
/// are allocated in full: 4 bytes each).
pub const MAX_LOWERED_PARAMS: u64 = 4_000_000;

/// Most layers a model may have for the fuzzer to lower it: a repeat of hundreds of
/// thousands of layers lowers correctly, but in seconds per opset, and the fuzzer would
/// spend its time there (each layer lowers alone, so a long chain finds nothing a short
/// one does not).
pub const MAX_LOWERED_LAYERS: usize = 20_000;

/// Lowers a checked model to ONNX bytes in memory, with the oldest and newest opset and with
/// a variable input size; only errors the exporter documents are allowed (a panic is a bug).
pub fn lower(m: &cnnc::CheckedModel, sources: &cnnc::SourceMap) {
    if m.total_params() > MAX_LOWERED_PARAMS || m.graph.graph.node_count() > MAX_LOWERED_LAYERS {
        return;
    }
    let weights = onnx::initialize(m, onnx::Init::Default, 0);
    for opset in [*onnx::OPSETS.start(), *onnx::OPSETS.end()] {
        let options = onnx::ExportOptions {
            opset,
            ..Default::default()
        };
        let _ = onnx::export_bytes(m, sources, &weights, &options);
    }
    // With the input's size left open: refused (`FixedSize`) or lowered, never a panic.
    let options = onnx::ExportOptions {
        dynamic_size: true,
        ..Default::default()
    };
    let _ = onnx::export_bytes(m, sources, &weights, &options);
}

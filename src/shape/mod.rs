//! Shape checking: the per-op size rules and the [`CheckedModel`] they certify.
//!
//! Elaboration calls [`rules::infer`] for every node as it builds the graph (the language
//! can query the incoming shape, `in.c`), so shapes, parameter counts and MACs are known per
//! node. [`check`] then turns an error-free graph into a [`CheckedModel`]; later stages
//! (summary, ONNX lowering, training) take a `&CheckedModel`, so an unchecked graph cannot
//! be exported.

pub mod rules;
pub mod summary;

use crate::diag::{Diagnostic, Diagnostics};
use crate::ir::{Graph, Node, Shape};
use crate::source::Span;
use petgraph::graph::NodeIndex;

/// How many named outputs [`CheckedModel::outputs_text`] lists by name.
pub const LISTED_OUTPUTS: usize = 8;

/// A model whose every node has a known, valid output shape.
// Not `#[non_exhaustive]`: that keeps out other crates only, and the private field keeps
// out the other modules of this one too.
#[allow(clippy::manual_non_exhaustive)]
#[derive(Clone, Debug)]
pub struct CheckedModel {
    pub name: String,
    pub graph: Graph,
    /// Span of the `model` declaration.
    pub span: Span,
    /// Path of the file that defines the model, as given by the user.
    pub source_path: String,
    /// SHA-256 (hex) of that file's text.
    pub source_hash: String,
    /// Private: no code outside this module can write a `CheckedModel { … }`, so every one
    /// comes from [`check`]; and lowering, summary and training take it by shared reference,
    /// so its graph is the one checked.
    _checked: (),
}

impl CheckedModel {
    /// SHA-256 (lowercase hex) of the graph's structure (`ir::print::structure`: every layer
    /// with its attributes, inputs and shape, no source positions): what a checkpoint must
    /// match, so an edit of comments or layout keeps it usable and a change of the network
    /// does not.
    pub fn structure_hash(&self) -> String {
        use sha2::{Digest, Sha256};
        let text = format!(
            "{}\n{}",
            self.name,
            crate::ir::print::structure(&self.graph)
        );
        format!("{:x}", Sha256::digest(text.as_bytes()))
    }

    pub fn node(&self, ix: NodeIndex) -> &Node {
        self.graph.node(ix)
    }

    /// The node's output shape (known for every node of a checked model).
    pub fn shape(&self, ix: NodeIndex) -> &Shape {
        self.graph.graph[ix]
            .shape
            .as_ref()
            .expect("a checked model has every shape")
    }

    pub fn input_shape(&self) -> &Shape {
        self.shape(self.graph.input)
    }

    pub fn output_shape(&self) -> &Shape {
        self.shape(self.graph.output)
    }

    /// The main output's shape, then each named output's name and shape: `[10], aux1 [10]`
    /// (the first [`LISTED_OUTPUTS`], then how many more: a one-line summary).
    pub fn outputs_text(&self) -> String {
        let mut text = self.output_shape().to_string();
        let named = &self.graph.named_outputs;
        for o in named.iter().take(LISTED_OUTPUTS) {
            text.push_str(&format!(", {} {}", o.name, self.shape(o.node)));
        }
        match named.len().saturating_sub(LISTED_OUTPUTS) {
            0 => {}
            1 => text.push_str(" and 1 more named output"),
            n => text.push_str(&format!(
                " and {} more named outputs",
                summary::group(n as u64)
            )),
        }
        text
    }

    pub fn total_params(&self) -> u64 {
        // Saturating: each layer's count fits in u64, but 2,000,000 of them need not.
        self.graph
            .graph
            .node_weights()
            .fold(0, |total, n| total.saturating_add(n.params))
    }

    pub fn total_macs(&self) -> u64 {
        // Saturating: each layer's count fits in u64, but 2,000,000 of them need not.
        self.graph
            .graph
            .node_weights()
            .fold(0, |total, n| total.saturating_add(n.macs))
    }

    /// Layers in topological order, the input excluded.
    pub fn layers(&self) -> Vec<NodeIndex> {
        self.graph
            .topo_order()
            .into_iter()
            .filter(|&ix| ix != self.graph.input)
            .collect()
    }
}

/// Certifies a graph: every shape known and the diagnostics free of errors.
pub fn check(
    name: String,
    graph: Graph,
    span: Span,
    source_path: String,
    source_hash: String,
    diagnostics: &Diagnostics,
) -> Result<CheckedModel, Diagnostics> {
    let missing = graph.graph.node_weights().any(|n| n.shape.is_none());
    if diagnostics.has_errors() || missing {
        let mut d = Diagnostics::new();
        if !diagnostics.has_errors() {
            d.push(
                Diagnostic::error(
                    "cnnc::internal::unknown_shape",
                    format!("model `{name}` has a layer whose shape could not be inferred"),
                )
                .label(span, "in this model"),
            );
        }
        return Err(d);
    }
    Ok(CheckedModel {
        name,
        graph,
        span,
        source_path,
        source_hash,
        _checked: (),
    })
}

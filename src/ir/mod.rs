//! The graph IR: a petgraph graph of typed ops, built from the AST by elaboration.
//!
//! Consumes [`crate::syntax::ast`] and produces a [`Graph`] whose nodes carry their scoped
//! name, op, source span and inferred output shape. Blocks, repeats and conditionals are
//! fully expanded; concat and residual become merge nodes with several inputs.

pub mod elaborate;
pub mod layers;
pub mod op;
pub mod print;
pub mod unexpanded;
pub mod value;

pub use op::{
    adaptive_bin, adaptive_max_gather, adaptive_max_gather_width, ConvAttrs, ConvTransposeAttrs,
    Op, PadMode, Pads, Pair, PoolAttrs, UpsampleMode, UpsampleTo,
};

use crate::source::Span;
use petgraph::graph::{DiGraph, NodeIndex};
use petgraph::visit::EdgeRef;
use std::fmt;

/// A tensor shape without the (implicit, symbolic) batch dimension: `[C, H, W]` or `[F]`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Shape(pub Vec<u64>);

impl Shape {
    pub fn dims(&self) -> &[u64] {
        &self.0
    }
    pub fn rank(&self) -> usize {
        self.0.len()
    }
    /// Elements per sample; saturates (shape rules keep it under 2^31 anyway).
    pub fn elements(&self) -> u64 {
        self.0.iter().fold(1u64, |a, &d| a.saturating_mul(d))
    }
    /// Channels of `[C, H, W]` or features of `[F]`.
    pub fn channels(&self) -> u64 {
        self.0.first().copied().unwrap_or(0)
    }
    /// `[H, W]` of a rank-3 shape.
    pub fn spatial(&self) -> Option<[u64; 2]> {
        match self.0[..] {
            [_, h, w] => Some([h, w]),
            _ => None,
        }
    }
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[")?;
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                write!(f, ", ")?;
            }
            write!(f, "{d}")?;
        }
        write!(f, "]")
    }
}

/// One layer instance.
#[derive(Clone, Debug)]
pub struct Node {
    /// Scope path, unique in the graph: `stage2.unit1.conv1`. Becomes the ONNX node name
    /// and the prefix of its initializers (`stage2.unit1.conv1.weight`).
    pub name: String,
    pub op: Op,
    /// The source text the layer came from (the call, or the concat/residual statement).
    pub span: Span,
    /// Output shape; `None` only while elaborating a graph that has errors.
    pub shape: Option<Shape>,
    /// Trainable parameters (weights and biases).
    pub params: u64,
    /// Multiply-accumulates per sample (biases not counted).
    pub macs: u64,
}

/// An output of the model besides its main one: `output NAME { body }`.
#[derive(Clone, Debug)]
pub struct NamedOutput {
    /// The statement's name in its scope (`aux1`, `stage4.aux`): the ONNX output's name.
    pub name: String,
    /// The body's last tensor (the tapped tensor itself for an empty body).
    pub node: NodeIndex,
    /// The `NAME` of the statement.
    pub span: Span,
}

/// The model graph. Edge weights are the input slot of the target node (0, 1, …).
#[derive(Clone, Debug)]
pub struct Graph {
    pub graph: DiGraph<Node, usize>,
    pub input: NodeIndex,
    /// The main output: the model body's last tensor (ONNX `output`).
    pub output: NodeIndex,
    /// The other outputs, in the order their statements ran.
    pub named_outputs: Vec<NamedOutput>,
    /// Where elaboration read an image's height or width (`in.h`, `e1.w`; the first few):
    /// values fixed at the declared input size, which an export with a variable size
    /// (`export --dynamic-size`) cannot keep.
    pub size_reads: Vec<crate::source::Span>,
    /// The layers whose output size is another tensor's, by node: an upsampling to a named
    /// tensor's size (`upsample(size=[skip.h, skip.w])`, whose reads are no `size_reads`)
    /// and a `crop(skip)` (to the size of the tensor it joins). An export with a variable
    /// size takes that size at run time.
    pub size_sources: std::collections::HashMap<NodeIndex, NodeIndex>,
}

impl Graph {
    pub fn node(&self, ix: NodeIndex) -> &Node {
        &self.graph[ix]
    }

    /// Whether `ix` is the main output's node or a named output's.
    pub fn is_output(&self, ix: NodeIndex) -> bool {
        ix == self.output || self.named_outputs.iter().any(|o| o.node == ix)
    }

    /// `ix` and every node whose value reaches it: what computing `ix` needs.
    pub fn feeding(&self, ix: NodeIndex) -> std::collections::HashSet<NodeIndex> {
        let reversed = petgraph::visit::Reversed(&self.graph);
        let mut dfs = petgraph::visit::Dfs::new(reversed, ix);
        let mut needed = std::collections::HashSet::new();
        while let Some(n) = dfs.next(reversed) {
            needed.insert(n);
        }
        needed
    }

    /// The node's inputs in slot order.
    pub fn inputs(&self, ix: NodeIndex) -> Vec<NodeIndex> {
        let mut edges: Vec<(usize, NodeIndex)> = self
            .graph
            .edges_directed(ix, petgraph::Direction::Incoming)
            .map(|e| (*e.weight(), e.source()))
            .collect();
        edges.sort();
        edges.into_iter().map(|(_, n)| n).collect()
    }

    /// Nodes in creation order: source order, and a topological order (inputs before
    /// users), because elaboration only adds edges from existing nodes to the one it creates.
    pub fn topo_order(&self) -> Vec<NodeIndex> {
        debug_assert!(self
            .graph
            .edge_indices()
            .all(|e| self.graph.edge_endpoints(e).is_some_and(|(a, b)| a < b)));
        self.graph.node_indices().collect()
    }
}

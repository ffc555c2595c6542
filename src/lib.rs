//! cnnc: a compiler for a small language of convolutional network architectures.
//!
//! The pipeline, one module per stage:
//! `.cnn` text → [`syntax`] (pest → AST with spans) → [`ir`] (elaboration into a petgraph
//! graph, shapes inferred by [`shape::rules`] as nodes are added) → [`shape::check`]
//! ([`shape::CheckedModel`]) → [`onnx`] (ModelProto via prost) → [`runtime`] (ONNX Runtime
//! through ort) and [`train`] (gradient and step graphs). [`driver`] ties the first stages
//! together for a file on disk; only the binary prints or exits.

pub mod allow;
pub mod diag;
pub mod driver;
pub mod fsutil;
pub mod ir;
pub mod onnx;
pub mod oom;
pub mod runtime;
pub mod shape;
pub mod source;
pub mod syntax;
pub mod train;

pub use diag::{Diagnostic, Diagnostics, Severity};
pub use driver::{compile_file, compile_source, Compilation};
pub use shape::CheckedModel;
pub use source::{FileId, SourceMap, Span};

/// The version recorded in exported models' metadata.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

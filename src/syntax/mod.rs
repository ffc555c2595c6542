//! Syntax: consumes `.cnn` text and produces the typed AST ([`ast::File`]) with spans.
//!
//! The grammar is `grammar/cnn.pest`; this module is the only one that knows pest.

pub mod ast;
pub mod parser;
pub mod port;

pub use parser::parse;

//! Elaboration (stub: being written).
use crate::diag::Diagnostics;
use crate::ir::Graph;
use crate::source::FileId;
use crate::syntax::ast;

pub struct Definitions<'a> {
    pub files: &'a [(FileId, ast::File)],
}

impl<'a> Definitions<'a> {
    pub fn collect(files: &'a [(FileId, ast::File)], _d: &mut Diagnostics) -> Definitions<'a> {
        Definitions { files }
    }
}

pub fn elaborate_model(_m: &ast::ModelDef, _defs: &Definitions, _d: &mut Diagnostics) -> Graph {
    todo!()
}

//! The names in code that no elaboration expanded: a block no model calls, the branch of an
//! `if` no call takes, the body of a `repeat 0`. Elaboration checks what it expands, with
//! the values; this checks what holds whatever the values are, as a compiler checks dead
//! code: every call names a layer, a block or a tensor named in its own body (or a block's
//! parameter, which may be given a tensor and is judged where the block is expanded), and
//! every named argument is one the layer or block has. A mistake elaboration already
//! reported is not reported again.

use super::elaborate::{
    output_without_body, output_without_braces, unknown_block_parameter, unknown_layer,
    Definitions, MAX_DIAGNOSTICS,
};
use super::layers;
use crate::diag::{Diagnostic, Diagnostics};
use crate::source::{FileId, Span};
use crate::syntax::ast::{self, StmtKind};
use std::collections::HashSet;

/// Appends to `diags` the name errors of the blocks and models of `files` that `diags` does
/// not already hold at the same place.
pub fn check(files: &[(FileId, ast::File)], defs: &Definitions<'_>, diags: &mut Diagnostics) {
    let reported: HashSet<Span> = diags.iter().filter_map(Diagnostic::primary_span).collect();
    // As many in all as elaboration reports of one model at most; past them, one that says
    // so, unless elaboration has said it already.
    let room = MAX_DIAGNOSTICS.saturating_sub(diags.0.len());
    let is_new = |d: &Diagnostic| d.primary_span().is_none_or(|s| !reported.contains(&s));
    let mut found = Vec::new();
    let main = files.first().map(|(id, _)| *id);
    for (id, item) in files
        .iter()
        .flat_map(|(id, f)| f.items.iter().map(move |i| (*id, i)))
    {
        let (body, params): (&[ast::Stmt], Vec<&str>) = match item {
            ast::Item::Use(_) => continue,
            // A `use`d file's models are no part of this file (they cannot be called).
            ast::Item::Model(_) if Some(id) != main => continue,
            ast::Item::Block(b) => (
                &b.body,
                b.params.iter().map(|p| p.name.name.as_str()).collect(),
            ),
            ast::Item::Model(m) => (&m.body, Vec::new()),
        };
        // Names are local to their body: a block reads only the tensors it names, a model
        // also its input.
        let mut tensors: Vec<&str> = match item {
            ast::Item::Model(_) => vec!["input"],
            _ => Vec::new(),
        };
        let mut loop_vars: Vec<&str> = Vec::new();
        ast::walk(body, &mut |st| {
            tensors.extend(st.alias.as_ref().map(|a| a.name.as_str()));
            if let StmtKind::Repeat(r) = &st.kind {
                loop_vars.extend(r.var.as_ref().map(|v| v.name.as_str()));
            }
        });
        // `output aux` without braces: one error for the two calls it parses as.
        let mut paired: HashSet<Span> = HashSet::new();
        let output_is_a_name = tensors.contains(&"output") || params.contains(&"output");
        if defs.block("output").is_none() && !output_is_a_name {
            let mut each_body = |stmts: &[ast::Stmt]| {
                for at in 0..stmts.len() {
                    if let Some((call, name)) = output_without_braces(&stmts[at..], defs) {
                        if paired.insert(call.span) {
                            paired.insert(name.span);
                            found.extend(Some(output_without_body(call, name)).filter(is_new));
                        }
                    }
                }
            };
            each_body(body);
            ast::walk(body, &mut |st| {
                st.bodies().into_iter().for_each(&mut each_body)
            });
        }
        ast::walk(body, &mut |st| {
            if let StmtKind::Call(call) = &st.kind {
                // Past what can be shown (and the one that says so), nothing more is
                // looked for: each unknown name is compared with every name in sight.
                if !paired.contains(&call.span) && found.len() <= room {
                    found.extend(
                        check_call(call, defs, &tensors, &params, &loop_vars, &reported)
                            .into_iter()
                            .filter(is_new),
                    );
                }
            }
        });
    }
    let mut found = found.into_iter();
    diags.0.extend(found.by_ref().take(room));
    let said = diags
        .iter()
        .any(|d| d.code == "cnnc::elab::too_many_errors");
    if let Some(next) = found.next().filter(|_| !said) {
        let mut d = Diagnostic::error(
            "cnnc::elab::too_many_errors",
            format!(
                "more than {MAX_DIAGNOSTICS} diagnostics; the rest, in code no model expands, \
                 are not shown"
            ),
        )
        .help("fix the first errors and check again");
        if let Some(span) = next.primary_span() {
            d = d.label(span, "the first one not shown");
        }
        diags.push(d);
    }
}

/// The name errors of one call.
fn check_call(
    call: &ast::Call,
    defs: &Definitions<'_>,
    tensors: &[&str],
    params: &[&str],
    loop_vars: &[&str],
    reported: &HashSet<Span>,
) -> Vec<Diagnostic> {
    let name = call.name.name.as_str();
    let named = call.args.iter().filter_map(|a| a.name.as_ref());
    if let Some(spec) = layers::lookup(name) {
        return call
            .args
            .iter()
            .filter_map(|a| Some((a.name.as_ref()?, &a.value)))
            .filter(|(n, _)| !spec.params.iter().any(|p| p.name == n.name))
            .map(|(n, value)| layers::unknown_argument(spec, n, value))
            .collect();
    }
    if let Some(block) = defs.block(name) {
        return named
            .filter(|n| !block.params.iter().any(|p| p.name.name == n.name))
            .map(|n| unknown_block_parameter(block, n))
            .collect();
    }
    if tensors.contains(&name) {
        return Vec::new();
    }
    // A block's parameter may be given a tensor, which elaboration judges at the call;
    // called with arguments (`blk(16)`), it is wrong whatever it is given.
    if params.contains(&name) {
        if call.args.is_empty() {
            return Vec::new();
        }
        return vec![Diagnostic::error(
            "cnnc::elab::unknown_layer",
            format!("`{name}` is a block's parameter, a value or a tensor, not a layer"),
        )
        .label(call.name.span, "called as a layer")
        .help(
            "a block's parameters are numbers, lists or tensors, and a layer or block cannot be \
             passed: pass a flag and pick one with `if`, as in `if deep { bottleneck(c) } else \
             { basic(c) }`",
        )];
    }
    // A repeat's variable used as a layer: wrong whatever its values.
    if loop_vars.contains(&name) {
        return vec![Diagnostic::error(
            "cnnc::elab::unknown_layer",
            format!("`{name}` is a repeat's variable, a value, not a layer or tensor"),
        )
        .label(call.name.span, "used as a layer")
        .help("a repeat's variable is one of its values, never a tensor or a layer")];
    }
    // Elaboration has said it (its did-you-mean looks through every name in sight: not
    // twice).
    if reported.contains(&call.name.span) {
        return Vec::new();
    }
    vec![unknown_layer(call, defs, tensors.iter().copied())]
}

//! Elaboration: AST → IR graph. Expands block calls, repeats and conditionals, evaluates
//! argument expressions, resolves named tensors, and infers each node's shape as it is
//! added (the language can query the incoming shape with `in.c`).
//!
//! Errors never stop elaboration: a failed layer yields an *unknown* tensor, and every
//! later use of an unknown tensor is silent, so each independent mistake is reported once;
//! where the shape the layer was meant to give is clear (`rules::recover`), checking goes on
//! with it instead, so later mistakes are reported too.

use super::layers::{self, LayerSpec};
use super::value::{eval, Env, EvalError, Value};
use crate::diag::{
    did_you_mean, did_you_mean_text, nearest, same_way, Diagnostic, Diagnostics, Label,
};
use crate::ir::{ConvTransposeAttrs, Graph, NamedOutput, Node, Op, Pads, Shape};
use crate::shape::rules::{self, RuleError};
use crate::source::{FileId, Span};
use crate::syntax::ast::{self, StmtKind};
use petgraph::graph::{DiGraph, NodeIndex};
use std::collections::{HashMap, HashSet};

/// Most layers one model may expand to.
pub const MAX_NODES: usize = 2_000_000;
/// Most bytes of layer names one model may have: 64 a layer at [`MAX_NODES`]. A name
/// holds the scope of every call it is in (`b0_1.b1_2.….conv1`), so blocks that call the
/// next one twice, nested a hundred deep, reach the node limit with names of a kilobyte
/// and gigabytes of them.
pub const MAX_NAME_BYTES: usize = 128 << 20;
/// Most evaluation work (expressions evaluated, plus values copied out of variables; see
/// [`super::value::take_eval_work`]) of one model. A list of thousands of values
/// evaluated at each of millions of calls stays within [`MAX_STEPS`] and would take
/// minutes.
pub const MAX_EVAL_WORK: u64 = 1 << 28;
/// A repeat being elaborated, at one of its iterations: part of the way to what is reported
/// from its body.
struct Iteration {
    /// The repeat's count or range, where its label goes.
    span: Span,
    /// The loop variable.
    var: Option<String>,
    /// Which iteration, from 0, of how many.
    index: usize,
    count: i64,
    /// The loop variable's value in it (the count, or the list's item).
    item: Value,
    /// Whether another iteration has the same value (a list that repeats an item), so the
    /// value alone does not say which iteration.
    shared_item: bool,
}

impl Iteration {
    /// Which iteration, as a label: the sizes in a message are that iteration's. The loop
    /// variable's value when it is short to write, else the iteration's number.
    fn label(&self) -> String {
        let item = self.item.written();
        let number = format!("in iteration {} of {}", self.index + 1, self.count);
        match &self.var {
            Some(var) if item.chars().count() <= 40 => {
                if self.shared_item {
                    format!("{number}, with {var} = {item}")
                } else {
                    format!("in the iteration with {var} = {item}")
                }
            }
            _ => number,
        }
    }
}

/// Iterations in a row of one `repeat` that only give errors already reported, after which
/// the rest of it is skipped.
const MAX_REPEATING_ITERATIONS: u32 = 64;

/// Most iterations of one `repeat`.
pub const MAX_REPEAT: i64 = 1_000_000;
/// Deepest nesting of block calls.
pub const MAX_CALL_DEPTH: usize = 100;
/// Most elaboration steps (statements evaluated plus repeat iterations) of one model.
/// Nested repeats multiply, and a body that adds no layer (empty, `if false`, or failing)
/// never meets the node limit: without this budget `repeat 1000 { repeat 1000 { repeat
/// 1000 {} } }` runs for a billion iterations.
pub const MAX_STEPS: u64 = 4 * MAX_NODES as u64;
/// Most distinct diagnostics one model reports before elaboration stops.
pub const MAX_DIAGNOSTICS: usize = 1000;

/// The blocks visible to a model: those of its file and of every file it `use`s.
pub struct Definitions<'a> {
    blocks: HashMap<&'a str, &'a ast::BlockDef>,
    /// The models of every file, by name (called as a layer, they get a help): the first of
    /// each name.
    models: HashMap<&'a str, Span>,
}

impl<'a> Definitions<'a> {
    /// Whether `name` is a block of the compilation.
    pub fn is_block(&self, name: &str) -> bool {
        self.blocks.contains_key(name)
    }

    /// The block named `name`.
    pub fn block(&self, name: &str) -> Option<&'a ast::BlockDef> {
        self.blocks.get(name).copied()
    }

    /// The names of the blocks.
    pub fn block_names(&self) -> impl Iterator<Item = &'a str> + '_ {
        self.blocks.keys().copied()
    }

    /// Collects the blocks, reporting duplicates and blocks named like a built-in layer.
    pub fn collect(files: &'a [(FileId, ast::File)], diags: &mut Diagnostics) -> Definitions<'a> {
        let mut blocks: HashMap<&'a str, &'a ast::BlockDef> = HashMap::new();
        let mut models: HashMap<&'a str, Span> = HashMap::new();
        for (_, file) in files {
            for item in &file.items {
                if let ast::Item::Model(m) = item {
                    models.entry(m.name.name.as_str()).or_insert(m.name.span);
                }
            }
        }
        let root = files.first().map(|(id, _)| *id);
        for (_, file) in files {
            for item in &file.items {
                if let ast::Item::Block(b) = item {
                    check_parameters(b, diags);
                    let name = b.name.name.as_str();
                    if layers::lookup(name).is_some() {
                        diags.push(
                            Diagnostic::error(
                                "cnnc::elab::duplicate_definition",
                                format!("block `{name}` has the name of a built-in layer"),
                            )
                            .label(b.name.span, "this block")
                            .help("rename the block"),
                        );
                        continue;
                    }
                    if let Some(&model) = models.get(name) {
                        // `Net()` would call the block, where a reader may see the model; the
                        // block is kept, so that its calls check as the block's.
                        let d = Diagnostic::error(
                            "cnnc::elab::duplicate_definition",
                            format!("`{name}` is the name of a block and of a model"),
                        );
                        // The file being checked's name first (as for a block defined twice).
                        let d = if model.file != b.name.span.file && Some(model.file) == root {
                            d.label(model, "the model").label(b.name.span, "the block")
                        } else {
                            d.label(b.name.span, "the block").label(model, "the model")
                        };
                        diags.push(d.help(format!(
                            "rename one of them: a call `{name}(…)` would run the block, \
                                 where a reader may take it for the model"
                        )));
                    }
                    if let Some(prev) = blocks.get(name) {
                        let d = Diagnostic::error(
                            "cnnc::elab::duplicate_definition",
                            format!("block `{name}` is defined twice"),
                        );
                        // Across files, the error belongs to the file being checked (the
                        // first), not to the library it `use`s.
                        let d = if prev.name.span.file != b.name.span.file
                            && Some(prev.name.span.file) == root
                        {
                            d.label(prev.name.span, "defined here")
                                .label(b.name.span, "also defined here, in a `use`d file")
                        } else {
                            d.label(b.name.span, "defined again here")
                                .label(prev.name.span, "first defined here")
                        };
                        diags.push(d.help("rename one of them"));
                    } else {
                        blocks.insert(name, b);
                    }
                }
            }
        }
        Definitions { blocks, models }
    }
}

/// The error for a call of `name` that is no layer, block or tensor in sight, with the
/// fitting help; `candidates` are the names it may be a slip for.
/// The help for `return a, b`: one result, the others named outputs.
pub(crate) const RETURN_SEVERAL: &str =
    "a model's main output is the tensor its last statement makes, and every other output is \
     an `output NAME { … }` statement around the layers that make it (an auxiliary head: \
     `output aux { flatten linear(10) }`); delete the `return`, and end the model on the main \
     output";

pub(crate) fn unknown_layer<'c>(
    call: &ast::Call,
    defs: &Definitions<'_>,
    candidates: impl Iterator<Item = &'c str>,
) -> Diagnostic {
    let (name, span) = (call.name.name.as_str(), call.name.span);
    let d = Diagnostic::error(
        "cnnc::elab::unknown_layer",
        format!("unknown layer `{name}`"),
    )
    .label(span, "not a layer, block or named tensor");
    let tensors: Vec<&str> = candidates.collect();
    // PyTorch's `torch.cat((a, b))` and `a + b` written as calls of named tensors.
    let named_args: Option<Vec<&str>> = call
        .args
        .iter()
        .map(|a| match &a.value.kind {
            ast::ExprKind::Var(n) if a.name.is_none() && tensors.contains(&n.as_str()) => {
                Some(n.as_str())
            }
            _ => None,
        })
        .collect();
    // A slip for one of the model's own names (`upconv` for a block `up_conv`) comes before
    // what a common name from elsewhere means in cnnc. The model's names are looked
    // through once (a file may define thousands of blocks).
    let own_nearest = nearest(name, defs.block_names().chain(tensors.iter().copied()));
    let own = own_nearest.text();
    let near = nearest(name, layers::names()).or(own_nearest).text();
    let tensors = listed_tensors(&tensors);
    if name == "input" {
        // Found wherever a model's body reads it: this is a block's.
        return d.help(
            "`input` is the model's input, a named tensor of the model's body only: a block \
             reads the tensors it names and those passed to it, so pass the input to the \
             block (`b(…, input)`) or join it where the block is called",
        );
    }
    if name == "return" {
        // PyTorch's `forward` and Keras's functional model end in `return x`; `return (a,
        // b)`, two outputs.
        return d.help(if call.args.len() >= 2 {
            RETURN_SEVERAL
        } else {
            "a block's or model's result is the tensor its last statement makes: delete the \
             `return` (to end on a tensor named earlier, its name alone as the last statement \
             reads it back)"
        });
    }
    if name == "output" {
        // `output aux` or `output aux(…)`: the statement without its braces.
        return d.help(
            "a named output is `output NAME { body }`: its name, then the body in braces \
             (`output aux { linear(10) }`, or `output features {}` for the tensor as it is)",
        );
    }
    if defs.models.contains_key(name) {
        return d.help(format!(
            "`{name}` is a model, and a model cannot be called: write its layers as a block, \
             `block {name}_body(…) {{ … }}`, and call that from both models"
        ));
    }
    // Keras's `ReLU(6.0)`, `ReLU(max_value=6)`: capped at 6, cnnc's `relu6`.
    let capped_at_six = call.args.iter().any(|a| {
        matches!(&a.value.kind, ast::ExprKind::Int(6))
            || matches!(&a.value.kind, ast::ExprKind::Float(f) if *f == 6.0)
    });
    if name == "ReLU" && capped_at_six {
        return d.help(
            "a ReLU capped at 6 (Keras's `ReLU(6.0)`, `ReLU(max_value=6)`; PyTorch's `ReLU6`) \
             is cnnc's `relu6`",
        );
    }
    match (name.to_ascii_lowercase().as_str(), named_args.as_deref()) {
        ("cat" | "concatenate" | "stack" | "hstack", Some(named)) if named.len() >= 2 => {
            return d.help(format!(
                "named tensors are joined along the channels by `concat {{ {} }}`: a branch \
                 that is a tensor's name gives that tensor (and `{{}}` the current one)",
                named.join(" ")
            ));
        }
        ("add" | "sum", Some([a, b])) => {
            return d.help(format!(
                "a sum of two tensors is a residual: `{a} residual {{}} shortcut {{ {b} }}` \
                 (`{a}` made the current tensor, then `{b}` added to it; `residual {{}} \
                 shortcut {{ {b} }}` alone adds `{b}` to the current tensor)"
            ));
        }
        _ => {}
    }
    match near {
        _ if layers::pytorch_equivalent(name).is_some() => {
            d.help(layers::pytorch_equivalent(name).expect("checked"))
        }
        _ if layers::keras_equivalent(name).is_some() => {
            d.help(layers::keras_equivalent(name).expect("checked"))
        }
        _ if own.is_some() => d.help(own.expect("checked")),
        _ if layers::missing_layer_hint(name).is_some() => {
            d.help(layers::missing_layer_hint(name).expect("checked"))
        }
        Some(text) => d.help(text),
        None if tensors.is_empty() => d.help(format!(
            "the layers are: {}",
            layers::names().collect::<Vec<_>>().join(", ")
        )),
        None => d.help(format!(
            "the tensors named here are: {}; the layers are: {}",
            tensors.join(", "),
            layers::names().collect::<Vec<_>>().join(", ")
        )),
    }
}

/// `output aux` or `output aux(…)` at the start of `stmts`: a named output written without
/// its braces, which parses as a call of `output` and one of `aux` (no layer or block: in
/// `output flatten`, `flatten` is the layer it says). Returns the two calls.
pub(crate) fn output_without_braces<'s>(
    stmts: &'s [ast::Stmt],
    defs: &Definitions<'_>,
) -> Option<(&'s ast::Call, &'s ast::Call)> {
    let [first, second, ..] = stmts else {
        return None;
    };
    match (&first.kind, &second.kind) {
        (StmtKind::Call(call), StmtKind::Call(name))
            if call.name.name == "output"
                && !call.parens
                && first.alias.is_none()
                && first.assert.is_none()
                && layers::lookup(&name.name.name).is_none()
                && defs.block(&name.name.name).is_none() =>
        {
            Some((call, name))
        }
        _ => None,
    }
}

/// The error for [`output_without_braces`]: one for the pair of calls.
pub(crate) fn output_without_body(call: &ast::Call, name: &ast::Call) -> Diagnostic {
    let name_text = &name.name.name;
    Diagnostic::error(
        "cnnc::elab::unknown_layer",
        format!("named output `{name_text}` without a body"),
    )
    .label(call.name.span.to(name.span), "no `{ … }` after the name")
    .help(format!(
        "a named output is `output NAME {{ body }}`: write `output {name_text} {{ … }}` with \
         the output's layers in the braces (`output {name_text} {{}}` for the tensor as it is)"
    ))
}

/// The tensor names a help lists, sorted: those named with `as`, not the model's `input`,
/// which every model body has.
fn listed_tensors<'n>(names: &[&'n str]) -> Vec<&'n str> {
    let mut listed: Vec<&str> = names.iter().copied().filter(|n| *n != "input").collect();
    listed.sort_unstable();
    listed
}

/// The error for `n=…` in a call of `block`, which has no such parameter.
pub(crate) fn unknown_block_parameter(block: &ast::BlockDef, n: &ast::Ident) -> Diagnostic {
    let d = Diagnostic::error(
        "cnnc::elab::unknown_argument",
        format!("block `{}` has no parameter `{}`", block.name.name, n.name),
    )
    .label(n.span, "unknown parameter");
    let params = block.params.iter().map(|p| p.name.name.as_str());
    // `kernel=5` for a parameter `k`: names too far apart for did-you-mean, but the
    // signature shows them.
    d.help(match did_you_mean(&n.name, params) {
        Some(s) => format!("did you mean `{s}`? ({})", block_signature(block)),
        None => block_signature(block),
    })
}

/// A block's parameters as Python takes a function's: each name once, and no parameter
/// without a default after one with (a call could never leave the first out).
fn check_parameters(b: &ast::BlockDef, diags: &mut Diagnostics) {
    let block = &b.name.name;
    for (i, p) in b.params.iter().enumerate() {
        if let Some(first) = b.params[..i].iter().find(|q| q.name.name == p.name.name) {
            diags.push(
                Diagnostic::error(
                    "cnnc::elab::duplicate_definition",
                    format!("block `{block}` has two parameters named `{}`", p.name.name),
                )
                .label(p.name.span, "named again here")
                .label(first.name.span, "first here")
                .help("rename one of them: a call could set only one"),
            );
        }
    }
    let Some(fd) = b.params.iter().position(|p| p.default.is_some()) else {
        return;
    };
    let late: Vec<&ast::Param> = b.params[fd..]
        .iter()
        .filter(|p| p.default.is_none())
        .collect();
    let Some(p) = late.first() else {
        return;
    };
    let late_names: Vec<String> = late.iter().map(|p| format!("`{}`", p.name.name)).collect();
    let order: Vec<String> = b
        .params
        .iter()
        .filter(|p| p.default.is_none())
        .map(|p| p.name.name.clone())
        .chain(
            b.params
                .iter()
                .filter(|p| p.default.is_some())
                .map(|p| format!("{}=…", p.name.name)),
        )
        .collect();
    diags.push(
        Diagnostic::error(
            "cnnc::elab::parameter_order",
            format!(
                "parameter `{}` of block `{block}` has no default but follows \
                 `{}`, which has one",
                p.name.name, b.params[fd].name.name
            ),
        )
        .label(p.name.span, "no default")
        .label(b.params[fd].name.span, "a default before it")
        .help(format!(
            "put the parameters without a default first, as Python requires: \
             `block {block}({})`, or give {} {}",
            order.join(", "),
            late_names.join(" and "),
            if late_names.len() == 1 {
                "a default"
            } else {
                "defaults"
            }
        )),
    );
}

/// The tensor flowing through a body: a node and its shape (`None` after an error).
#[derive(Clone, Debug)]
struct Cur {
    node: NodeIndex,
    shape: Option<Shape>,
}

/// The help of an input written with its batch dimension, given the other dimensions: the
/// input without it, channels first (Keras's channels-last `(N, 28, 28, 1)` is `[1, 28, 28]`).
fn input_without_batch(rest: &[u64]) -> String {
    let list = |d: &[u64]| d.iter().map(u64::to_string).collect::<Vec<_>>().join(", ");
    match *rest {
        // The channels_last warning's test: few channels last, a larger image before.
        [h, w, c] if c <= 4 && h >= 8 && w >= 8 => format!(
            "the batch dimension is left out, and cnnc, like PyTorch, puts the channels \
             first: for {c}-channel {h}×{w} images write `input: [{c}, {h}, {w}]`"
        ),
        // Keras's `Input((28, 28))`: one channel, written too.
        [h, w] => format!(
            "the batch dimension is left out, and an image has its channels: for one-channel \
             {h}×{w} images write `input: [1, {h}, {w}]`"
        ),
        [] => "the input is one example's shape without the batch: [C, H, W] for images \
               (e.g. `input: [1, 28, 28]`) or [F] for features"
            .to_string(),
        _ => format!("the batch dimension is left out: `input: [{}]`", list(rest)),
    }
}

/// The size most of a reduction block's branches give, how many give it, and each branch
/// that does not with the padding that would make it (see [`Elab::reduction_fixes`]).
type ReductionFixes = ([u64; 2], usize, Vec<(Span, String)>);

/// For a conv or pooling of input size `from`, the same padding on each side that makes it
/// give `to`, said as a label's fix (`its 3×3 conv with stride 2 gives 17×17 with `pad=0``);
/// `None` for another layer, or where no padding up to half the window does.
fn padding_for_size(op: &Op, from: [u64; 2], to: [u64; 2]) -> Option<String> {
    let (kernel, stride, dilation, ceil, what) = match op {
        Op::Conv(a) => (a.kernel, a.stride, a.dilation, false, "conv"),
        Op::MaxPool(p) => (p.kernel, p.stride, [1, 1], p.ceil, "maxpool"),
        Op::AvgPool(p) => (p.kernel, p.stride, [1, 1], p.ceil, "avgpool"),
        _ => return None,
    };
    let pad = |a: usize| {
        // A pooling's padding is at most half its window; a conv's, half its reach.
        let reach = i128::from(dilation[a]) * (i128::from(kernel[a].max(1)) - 1) + 1;
        let most = reach / 2;
        // The output grows with p: around the least p whose floor-mode output reaches `to`
        // (ceil mode's extra window may reach it one sooner).
        let least = (i128::from(to[a]) - 1) * i128::from(stride[a]) + reach - i128::from(from[a]);
        let least = (least.max(0) + 1) / 2;
        ((least - 1).max(0)..=least + 1)
            .filter(|&p| p <= most)
            .filter_map(|p| u64::try_from(p).ok())
            .find(|&p| {
                rules::window_out(from[a], kernel[a], stride[a], p, p, dilation[a], ceil)
                    .is_some_and(|(out, _)| out == to[a])
            })
    };
    let (ph, pw) = (pad(0)?, pad(1)?);
    let strided = match stride {
        [1, 1] => String::new(),
        [a, b] if a == b => format!(" with stride {a}"),
        [a, b] => format!(" with stride [{a}, {b}]"),
    };
    let padding = if ph == pw {
        ph.to_string()
    } else {
        format!("[{ph}, {pw}]")
    };
    Some(format!(
        "its {}×{} {what}{strided} gives {}×{} with `pad={padding}`",
        kernel[0], kernel[1], to[0], to[1]
    ))
}

/// The padding that takes a transposed conv's output from `from` down to `to` (a few
/// pixels, in each axis): its padding grows by p and its `output_pad` becomes one that stays
/// below its stride or dilation, with 2p − (new output_pad − old) the pixels to lose.
fn transposed_conv_fix(t: &ConvTransposeAttrs, from: [u64; 2], to: [u64; 2]) -> Option<String> {
    if !t.pads.is_symmetric() {
        return None;
    }
    let mut pad = [0u64; 2];
    let mut output_pad = [0u64; 2];
    for a in 0..2 {
        let over = from[a].checked_sub(to[a])?;
        let limit = t.stride[a].max(t.dilation[a]);
        // The smallest output_pad below the limit that makes the pixels to lose even.
        let op = (0..limit).find(|op| {
            (over + op)
                .checked_sub(t.output_pad[a])
                .is_some_and(|n| n % 2 == 0)
        })?;
        pad[a] = t.pads.begin[a] + (over + op - t.output_pad[a]) / 2;
        output_pad[a] = op;
        // At most half the kernel's reach (`convT(c, 3, stride=2, pad=1)`): more takes off
        // what the layers before it made (an unpadded conv's lost border, a stride too
        // many), which a padding should not hide.
        if pad[a] > t.dilation[a] * t.kernel[a].saturating_sub(1) / 2 {
            return None;
        }
    }
    let written = |p: [u64; 2]| {
        if p[0] == p[1] {
            p[0].to_string()
        } else {
            format!("[{}, {}]", p[0], p[1])
        }
    };
    let mut fix = format!("pad={}", written(pad));
    if output_pad != [0, 0] || t.output_pad != [0, 0] {
        fix.push_str(&format!(", output_pad={}", written(output_pad)));
    }
    Some(format!(
        "write `{fix}` in it to give {}×{} (PyTorch's size: (in − 1)·stride − 2·pad + dilation·(kernel \
         − 1) + output_pad + 1)",
        to[0], to[1]
    ))
}

/// Where a repeat's iterations go.
enum Iterations<'o> {
    /// One after another, each taking the tensor the one before made.
    InARow,
    /// Side by side, as branches of the concat named `concat`, each from the concat's
    /// input: their outputs are pushed on `outs`, with the iteration each is of.
    Branches {
        concat: &'o str,
        outs: &'o mut Vec<(Cur, Span, Option<String>)>,
    },
}

/// The repeat a concat's branch is, when it is one written without braces.
fn repeat_as_branch(branch: &ast::Branch) -> Option<(&ast::Repeat, &ast::Stmt)> {
    match branch.body.as_slice() {
        [stmt] if stmt.span == branch.span => match &stmt.kind {
            StmtKind::Repeat(r) => Some((r, stmt)),
            _ => None,
        },
        _ => None,
    }
}

/// The `if` of a concat branch written without braces (nor `as` or `: [shape]` after it).
fn if_as_branch(branch: &ast::Branch) -> Option<&ast::IfStmt> {
    match branch.body.as_slice() {
        [stmt] if stmt.span == branch.span && stmt.alias.is_none() && stmt.assert.is_none() => {
            match &stmt.kind {
                StmtKind::If(i) => Some(i),
                _ => None,
            }
        }
        _ => None,
    }
}

/// The `output` statement of a concat branch written without braces.
fn output_as_branch(branch: &ast::Branch) -> Option<&ast::Output> {
    match branch.body.as_slice() {
        [stmt] if stmt.span == branch.span => match &stmt.kind {
            StmtKind::Output(o) => Some(o),
            _ => None,
        },
        _ => None,
    }
}

/// A naming scope: the prefix of node names and per-kind counters.
struct Scope {
    prefix: String,
    counters: HashMap<String, u32>,
}

impl Scope {
    fn new(prefix: String) -> Scope {
        Scope {
            prefix,
            counters: HashMap::new(),
        }
    }
    fn fresh(&mut self, kind: &str) -> String {
        let n = self.counters.entry(kind.to_string()).or_insert(0);
        *n += 1;
        // `b3` called twice gives `b3_1`, `b3_2`, not the ambiguous `b31`, `b32`.
        let sep = if kind.ends_with(|c: char| c.is_ascii_digit()) {
            "_"
        } else {
            ""
        };
        format!("{}{}{}{}", self.prefix, kind, sep, n)
    }
}

/// Per block invocation: its variables, its named tensors and the names of the outputs
/// its body declares (one namespace with the tensors: `as aux` and `output aux` would read
/// as one thing).
struct Frame {
    env: Env,
    tensors: HashMap<String, Named>,
    outputs: HashMap<String, Span>,
}

/// The named tensor `upsample(…, size=[skip.h, skip.w])` takes its size from (the height and
/// width of one tensor, as written), with the places of the two reads.
fn size_of_named_tensor(call: &ast::Call, frame: &Frame) -> Option<(NodeIndex, [Span; 2])> {
    let size = call
        .args
        .iter()
        .find(|a| a.name.as_ref().is_some_and(|n| n.name == "size"))?;
    let ast::ExprKind::List(items) = &size.value.kind else {
        return None;
    };
    let [h, w] = items.as_slice() else {
        return None;
    };
    match (&h.kind, &w.kind) {
        (ast::ExprKind::TensorQuery(a, qh), ast::ExprKind::TensorQuery(b, qw))
            if a == b && qh == "h" && qw == "w" =>
        {
            Some((frame.tensors.get(a.as_str())?.cur.node, [h.span, w.span]))
        }
        _ => None,
    }
}

/// When `name`, unknown as a tensor where it is used, is an output the body declared before:
/// an output is not read back as a tensor.
fn output_read_as_tensor(name: &str, used: Span, frame: &Frame) -> Option<Diagnostic> {
    let &declared = frame.outputs.get(name)?;
    Some(
        Diagnostic::error(
            "cnnc::elab::unknown_tensor",
            format!("`{name}` is a named output, not a tensor"),
        )
        .label(used, "read as a tensor here")
        .label(declared, "the output")
        .help(format!(
            "an output is not read back in the model: name its body's result, `output {name} \
             {{ … as {name}_out }}`, and read that name"
        )),
    )
}

/// A tensor named with `as`.
struct Named {
    cur: Cur,
    /// The `as NAME` that named it.
    span: Span,
    /// Whether anything has read it since (a layer position or `crop`).
    used: bool,
    /// The repeat iteration it was named in (innermost; see [`Elab::iterations`]).
    iteration: Option<u64>,
}

/// The tensors a block call was given by name (`up(32, d1)`: parameter `skip`, the caller's
/// `d1`), and the caller's named tensors at the call with their sizes: where the block finds
/// a passed tensor at the wrong scale, the help can name the caller's tensor that fits.
#[derive(Default)]
struct PassedTensors {
    /// (parameter, the caller's name for the tensor).
    args: Vec<(String, String)>,
    /// The caller's named tensors, in the order they were made, and their height and width.
    named: Vec<(String, [u64; 2])>,
}

impl PassedTensors {
    fn of(args: Vec<(String, String)>, frame: &Frame, input: NodeIndex) -> Self {
        if args.is_empty() {
            return Self::default();
        }
        // Not the call's own input: passed as the skip too, it would be joined with itself.
        let mut named: Vec<(NodeIndex, String, [u64; 2])> = frame
            .tensors
            .iter()
            .filter(|(_, t)| t.cur.node != input)
            .filter_map(|(n, t)| {
                let hw = t.cur.shape.as_ref().and_then(Shape::spatial)?;
                Some((t.cur.node, n.clone(), hw))
            })
            .collect();
        named.sort();
        Self {
            args,
            named: named.into_iter().map(|(_, n, hw)| (n, hw)).collect(),
        }
    }

    /// `skip` is `d1` of the call, and the caller's tensor of height and width `hw` made
    /// last: "(`d1` in this call)" and "pass the caller's `d2` (32×32) in place of `d1`".
    fn wrong_scale(&self, param: &str, hw: [u64; 2]) -> Option<(String, Option<String>, String)> {
        let (_, given) = self.args.iter().find(|(p, _)| p == param)?;
        // The last one made is the nearest to the call: a U-Net names each scale's skip
        // after its convs, and its input is of the first scale too.
        let fix = self
            .named
            .iter()
            .rev()
            .find(|(n, size)| *size == hw && n != given)
            .map(|(n, _)| {
                format!(
                    "pass the caller's `{n}` ({}×{}) in place of `{given}`",
                    hw[0], hw[1]
                )
            });
        Some((
            format!("`{param}` (`{given}` in this call)"),
            fix,
            given.clone(),
        ))
    }
}

/// A block's argument: a value, or a tensor of the caller's (with the argument's place).
#[derive(Clone)]
enum Argument {
    Value(Value),
    Tensor(Cur, Span),
}

/// Raised when elaboration must stop for the whole model (a budget exceeded).
struct Abort;

/// Whether a diagnostic from inside a block is pointed at the call that expanded it: all but
/// those about the block's text alone.
/// A call as a diagnostic quotes it in a fix: as written when short, else `name(…)`.
fn quoted_call(call: &ast::Call) -> String {
    let text = call.to_string();
    if text.chars().count() <= 32 {
        text
    } else {
        format!("{}(…)", call.name.name)
    }
}

fn gets_call_labels(code: &str) -> bool {
    !matches!(
        code,
        "cnnc::elab::too_many_errors" | "cnnc::elab::recursive_block" | "cnnc::elab::bare_branch"
    )
}

/// What makes two diagnostics the same report: a repeat or a block called twice can make
/// the same mistake once per iteration or call, which is reported once.
type DiagKey = (&'static str, Vec<Span>, String);

/// A failed assertion checking went on from, as rustc goes on with an ascribed type.
struct Assumed {
    /// The assertion.
    at: Span,
    /// The shape it wrote, which the tensor has from there on.
    written: Shape,
    /// The shape the layers gave.
    given: Shape,
    /// The diagnostics found before checking went on from it (its own included).
    from_diag: usize,
}

struct Elab<'a, 'd> {
    defs: &'a Definitions<'a>,
    model: &'a ast::ModelDef,
    graph: DiGraph<Node, usize>,
    /// See [`Graph::size_sources`].
    size_sources: HashMap<NodeIndex, NodeIndex>,
    diags: &'d mut Diagnostics,
    call_stack: Vec<(&'a str, Span)>,
    /// For each call of `call_stack`, the graph's node count when its body began: the
    /// nodes that call made are those from it on.
    call_first_nodes: Vec<usize>,
    /// For each call of `call_stack`, the tensors its caller passed by name and the caller's
    /// other named tensors then (see [`PassedTensors`]).
    passed_tensors: Vec<PassedTensors>,
    /// The current chain of stride-1 convolutions (gridding check).
    dilation_run: Vec<ChainConv>,
    /// How many concat branches or residual shortcuts are being elaborated (a `crop` outside
    /// any is suspicious).
    concat_depth: usize,
    /// Statements evaluated and repeat iterations so far (see [`MAX_STEPS`]).
    steps: u64,
    /// Evaluation work so far (see [`MAX_EVAL_WORK`]).
    eval_work: u64,
    /// Bytes of the layer names so far (see [`MAX_NAME_BYTES`]).
    name_bytes: usize,
    /// The shape assertions that have held somewhere (a repeat's iteration, a block's call):
    /// one that fails later holds for no single shape.
    held_assertions: HashSet<Span>,
    /// The blocks of each recursion reported (sorted): a cycle entered again, from another
    /// of its blocks, is the same mistake.
    reported_cycles: HashSet<Vec<&'a str>>,
    /// The last failed assertion checking went on from. A later assertion or shape error
    /// may fail only because of it.
    assumed: Option<Assumed>,
    /// Names refused to a tensor (`as up` where `up` is a block): a later bare `up` meant
    /// that tensor, and is not reported again as a call of the block.
    refused_names: HashSet<String>,
    /// How many residual bodies are being elaborated: there, the shortcut fills the holes
    /// of one dilated conv on plain ones (ERFNet's blocks), which gridding leaves alone.
    residual_bodies: usize,
    /// The ranges of the repeats of more than one iteration being elaborated, outermost
    /// first: part of the way to a diagnostic, as calls are (an allow on a repeat's line
    /// covers what is called in it), each at its current iteration.
    repeating: Vec<Iteration>,
    /// Diagnostics before this index have been deduplicated; their keys are in `seen`, with
    /// the index of the one kept and the calls it came from.
    checked_diags: usize,
    seen: HashMap<DiagKey, (usize, Vec<Label>)>,
    /// Errors dropped as repeats of one already reported (see [`MAX_REPEATING_ITERATIONS`]).
    errors_repeated: u64,
    /// The repeats whose last iterations were skipped for that.
    skipped_repeats: Vec<Span>,
    /// Every `as NAME` elaborated (by its place), with the nodes it named.
    names: HashMap<Span, (String, Vec<NodeIndex>)>,
    /// The calls each `as NAME` inside a block was met through, one chain of call labels
    /// per way (innermost first), for the warnings given of it after the calls returned.
    name_calls: HashMap<Span, Vec<Vec<Label>>>,
    /// The `as NAME` places whose tensor was read by name at least once, or that a
    /// `name_reused` warning already covers.
    names_read: HashSet<Span>,
    /// The `as NAME` places in a repeat whose tensor was read in the very iteration that
    /// named it: the loop reads its tensors where they are made (perhaps in only some
    /// iterations, under an `if`), so an earlier unread one is no slip.
    read_within_iteration: HashSet<Span>,
    /// The repeat iterations running, innermost last, each by a number of its own, and the
    /// next number to give.
    iterations: Vec<u64>,
    next_iteration: u64,
    /// Where a statement continued from a named tensor without reading the current one (a
    /// name alone, or `crop(NAME)` in a concat branch): the tensor left behind, and how.
    left_behind: Vec<LeftBehind<'a>>,
    /// The `output NAME { }` statements run, with the nodes their bodies made.
    named_outputs: Vec<(NamedOutput, std::ops::Range<usize>)>,
    /// The nodes made by the bodies of outputs whose name was refused (already reported).
    refused_outputs: Vec<std::ops::Range<usize>>,
}

/// A tensor a statement left behind: the node, the statement, how it continued, and the
/// block calls (name, call) it happened in, innermost last.
type LeftBehind<'a> = (NodeIndex, Span, Continued, Vec<(&'a str, Span)>);

/// The label of a `name_reused` warning for the same `as` in the next iteration.
const NAMED_IN_NEXT_ITERATION: &str = "named again in the next iteration";

/// How a statement continued from a named tensor instead of the current one.
#[derive(Clone, Debug)]
enum Continued {
    /// `NAME` alone; `true` as a concat branch (or shortcut).
    Name(String, bool),
    /// `crop(NAME)`, which reads the current tensor's size only.
    Crop(String),
}

/// Elaborates one model. The returned graph has every node's shape when `diags` got no
/// error; `shape::check` certifies it.
pub fn elaborate_model<'a>(
    model: &'a ast::ModelDef,
    defs: &'a Definitions<'a>,
    diags: &mut Diagnostics,
) -> Graph {
    let (mut graph, size_reads) =
        super::value::record_size_reads(|| elaborate_model_body(model, defs, diags));
    graph.size_reads = size_reads;
    graph
}

fn elaborate_model_body<'a>(
    model: &'a ast::ModelDef,
    defs: &'a Definitions<'a>,
    diags: &mut Diagnostics,
) -> Graph {
    // Work of evaluations before this model's (another model's, a default's) is not its.
    super::value::take_eval_work();
    let mut e = Elab {
        defs,
        model,
        graph: DiGraph::new(),
        size_sources: HashMap::new(),
        diags,
        call_stack: Vec::new(),
        passed_tensors: Vec::new(),
        call_first_nodes: Vec::new(),
        dilation_run: Vec::new(),
        concat_depth: 0,
        steps: 0,
        eval_work: 0,
        name_bytes: 0,
        checked_diags: 0,
        held_assertions: HashSet::new(),
        reported_cycles: HashSet::new(),
        assumed: None,
        refused_names: HashSet::new(),
        residual_bodies: 0,
        repeating: Vec::new(),
        seen: HashMap::new(),
        errors_repeated: 0,
        skipped_repeats: Vec::new(),
        names: HashMap::new(),
        name_calls: HashMap::new(),
        names_read: HashSet::new(),
        read_within_iteration: HashSet::new(),
        iterations: Vec::new(),
        next_iteration: 0,
        left_behind: Vec::new(),
        named_outputs: Vec::new(),
        refused_outputs: Vec::new(),
    };
    let mut frame = Frame {
        env: Env::new(),
        tensors: HashMap::new(),
        outputs: HashMap::new(),
    };
    let input_shape = e.input_shape(model, &frame);
    let input = e.graph.add_node(Node {
        name: "input".into(),
        op: Op::Input,
        span: model.input_span,
        shape: input_shape.clone(),
        params: 0,
        macs: 0,
    });
    let cur = Cur {
        node: input,
        shape: input_shape,
    };
    // The model's input is a named tensor of the model's body, as `input` (a global skip,
    // `concat { input {} }`); never warned of as unused.
    frame.env.set_tensor("input", cur.shape.clone());
    frame.tensors.insert(
        "input".to_string(),
        Named {
            cur: cur.clone(),
            span: model.input_span,
            used: true,
            iteration: None,
        },
    );
    let mut scope = Scope::new(String::new());
    let out = match e.body(&model.body, cur, &mut frame, &mut scope) {
        Ok(c) => {
            e.flush_dilation_run();
            c.node
        }
        Err(Abort) => input,
    };
    e.check_output_names();
    if !e.diags.has_errors() {
        e.warn_unused_names(out);
        e.warn_dropped_tensors(out);
    }
    e.dedupe_diagnostics(None);
    e.drop_reuse_warnings_read_within_iterations();
    if out == input && !e.diags.has_errors() {
        let outputs_only = !e.named_outputs.is_empty();
        // Layers made, then the input read again as the last tensor (`conv(8, 1) as a
        // input`): the layers' results are dropped.
        let input_again = !outputs_only && e.graph.node_count() > 1;
        e.diags.push(
            Diagnostic::error(
                "cnnc::elab::empty_model",
                if outputs_only {
                    format!(
                        "model `{}` has no layers outside its named outputs: its main output \
                         would be its input",
                        model.name.name
                    )
                } else if input_again {
                    format!(
                        "model `{}`'s main output is its input: its last statement reads \
                         `input` again, and the layers before it are left unused",
                        model.name.name
                    )
                } else {
                    format!("model `{}` has no layers", model.name.name)
                },
            )
            .label(model.name.span, "this model")
            .help(if outputs_only {
                "`output NAME { … }` passes its input on, and the main output is the body's \
                 last tensor: write the main output's layers after the `output` statements"
            } else if input_again {
                "the main output is the body's last tensor: end the model with the layers that \
                 make it (a named tensor, `input` too, is read where a layer goes as the \
                 tensor itself)"
            } else if model.body.is_empty() {
                "add layers between the braces, e.g. `flatten linear(10)`"
            } else {
                "its statements expand to no layer (a `repeat 0`, an `if` that is false, a \
                 block with an empty body): check their counts and conditions"
            }),
        );
    }
    Graph {
        graph: e.graph,
        input,
        output: out,
        named_outputs: e.named_outputs.into_iter().map(|(o, _)| o).collect(),
        size_reads: Vec::new(),
        size_sources: e.size_sources,
    }
}

impl<'a, 'd> Elab<'a, 'd> {
    fn input_shape(&mut self, model: &ast::ModelDef, frame: &Frame) -> Option<Shape> {
        // Keras's `Input(shape=(None, None, 3))` (with its batch, `(None, None, None, 3)`): a
        // fully convolutional model's height and width left open, channels last.
        let is_none = |d: &ast::Expr| matches!(&d.kind, ast::ExprKind::Var(n) if n == "None");
        if let [.., h, w, c] = model.input.as_slice() {
            let channels = match eval(c, &frame.env, None) {
                Ok(Value::Int(n)) if n > 0 => Some(n),
                _ => None,
            };
            let batch_too = model.input.len() == 4 && is_none(&model.input[0]);
            if let (true, Some(channels)) = (
                is_none(h) && is_none(w) && (model.input.len() == 3 || batch_too),
                channels,
            ) {
                self.diags.push(
                    Diagnostic::error(
                        "cnnc::elab::argument_value",
                        "the model's input has no height and width: shapes are checked at one \
                         size",
                    )
                    .label(h.span.to(w.span), "a size left open, as Keras writes it")
                    .help(format!(
                        "write a typical size, channels first as cnnc's shapes are: `input: \
                         [{channels}, 224, 224]`{}; `cnnc export --dynamic-size` then lets the \
                         height and width vary in the exported model",
                        if batch_too {
                            " (without the batch)"
                        } else {
                            ""
                        }
                    )),
                );
                return None;
            }
        }
        // Keras's `(None, 28, 28, 1)`: the batch dimension written as `None`.
        if let Some(first) = model.input.first() {
            if matches!(&first.kind, ast::ExprKind::Var(n) if n == "None") {
                let rest: Option<Vec<u64>> = model.input[1..]
                    .iter()
                    .map(|d| match eval(d, &frame.env, None) {
                        Ok(Value::Int(n)) if n > 0 => Some(n as u64),
                        _ => None,
                    })
                    .collect();
                self.diags.push(
                    Diagnostic::error(
                        "cnnc::elab::argument_value",
                        "the model's input is one example's shape, without the batch dimension",
                    )
                    .label(first.span, "the batch dimension")
                    .help(match rest {
                        Some(rest) => input_without_batch(&rest),
                        None => "leave the batch dimension out: [C, H, W] for images (e.g. \
                                 `input: [1, 28, 28]`) or [F] for features"
                            .to_string(),
                    }),
                );
                return None;
            }
        }
        let mut dims = Vec::new();
        for d in &model.input {
            match eval(d, &frame.env, None) {
                Ok(Value::Int(n)) if n > 0 => dims.push(n as u64),
                Ok(v) => {
                    self.diags.push(
                        Diagnostic::error(
                            "cnnc::elab::argument_value",
                            format!(
                                "an input dimension must be a positive integer, got {}",
                                v.describe()
                            ),
                        )
                        .label(d.span, "here")
                        .help(
                            "the input is one example's shape without the batch: [C, H, W] for \
                             images (e.g. `input: [1, 28, 28]`) or [F] for features",
                        ),
                    );
                    return None;
                }
                // `in.c`, `in.h`, …: the only thing that is unknown here.
                Err(EvalError::Unknown) => {
                    self.diags.push(
                        Diagnostic::error(
                            "cnnc::elab::unknown_variable",
                            "`in` has no shape in the model's input: no tensor comes before it",
                        )
                        .label(d.span, "uses `in`")
                        .help(
                            "write the input's sizes as numbers, e.g. `input: [3, 32, 32]`; \
                             `in.c`, `in.h` and `in.w` are for layers, where they read the \
                             incoming tensor",
                        ),
                    );
                    return None;
                }
                Err(e) => {
                    let before = self.diags.0.len();
                    self.report_eval(e);
                    self.retell_none(
                        before,
                        "every input size is a number: shapes are checked at one size. For a \
                         fully convolutional model, check it at a typical size and export with \
                         `cnnc export --dynamic-size`, which lets the height and width vary",
                    );
                    return None;
                }
            }
        }
        if dims.len() != 3 && dims.len() != 1 {
            self.diags.push(
                Diagnostic::error(
                    "cnnc::shape::rank",
                    format!(
                        "the model input must be [C, H, W] or [F], got {} dimensions",
                        dims.len()
                    ),
                )
                .label(model.input_span, "this shape")
                .help(match dims.as_slice() {
                    [h, w] => format!(
                        "an image needs its channel axis too: `input: [1, {h}, {w}]` for \
                         one channel (the batch dimension is left out); for a sequence of \
                         {h} channels and length {w} (PyTorch's `Conv1d`), write `input: \
                         [{h}, 1, {w}]` and give kernels as `[1, k]`"
                    ),
                    [_, rest @ ..] if rest.len() == 3 => input_without_batch(rest),
                    _ => "write [C, H, W] for an image or [F] for features, without the \
                          batch dimension, e.g. `input: [1, 28, 28]`"
                        .to_string(),
                }),
            );
            return None;
        }
        let s = Shape(dims);
        if s.dims()
            .iter()
            .try_fold(1u64, |a, &d| a.checked_mul(d))
            .is_none_or(|n| n > rules::MAX_ELEMENTS)
        {
            self.diags.push(
                Diagnostic::error(
                    "cnnc::shape::tensor_too_large",
                    format!("the input {s} is too large to be real (over 2^31 elements)"),
                )
                .label(model.input_span, "this shape"),
            );
            return None;
        }
        // NumPy's and TensorFlow's [H, W, C]: 32 channels of 32×3 images to cnnc.
        if let [h, w, c] = s.dims()[..] {
            if c <= 4 && h >= 8 && w >= 8 && h > c {
                self.diags.push(
                    Diagnostic::warning(
                        "cnnc::elab::channels_last",
                        format!(
                            "the input [{h}, {w}, {c}] reads as {h} channels of {w}×{c} images: \
                             cnnc, like PyTorch, puts the channels first"
                        ),
                    )
                    .label(model.input_span, "channels, height, width")
                    .help(format!(
                        "for {c}-channel {h}×{w} images write `input: [{c}, {h}, {w}]`"
                    )),
                );
            }
        }
        Some(s)
    }

    /// Counts one step against [`MAX_STEPS`], drops the diagnostics reported since the last
    /// step that repeat an earlier one, and stops the model at either budget.
    fn step(&mut self, span: Span) -> Result<(), Abort> {
        self.steps += 1;
        self.eval_work = self
            .eval_work
            .saturating_add(super::value::take_eval_work());
        self.dedupe_diagnostics(None);
        if self.eval_work > MAX_EVAL_WORK {
            self.diags.push(
                Diagnostic::error(
                    "cnnc::elab::too_large",
                    format!(
                        "the model's expressions take more than {MAX_EVAL_WORK} evaluation \
                         steps"
                    ),
                )
                .label(span, "the limit was reached here")
                .help(
                    "a long list evaluated or read at each call or iteration adds up: pass \
                     each call only the values it needs, or shorten the list",
                ),
            );
            return Err(Abort);
        }
        if self.steps > MAX_STEPS {
            self.diags.push(
                Diagnostic::error(
                    "cnnc::elab::too_large",
                    format!("the model takes more than {MAX_STEPS} elaboration steps"),
                )
                .label(span, "the limit was reached here")
                .help("check repeat counts: nested repeats multiply"),
            );
            return Err(Abort);
        }
        if self.diags.0.len() >= MAX_DIAGNOSTICS {
            self.diags.push(
                Diagnostic::error(
                    "cnnc::elab::too_many_errors",
                    format!("more than {MAX_DIAGNOSTICS} diagnostics; elaboration stopped"),
                )
                .label(span, "stopped here")
                .help("fix the first errors and check again"),
            );
            return Err(Abort);
        }
        Ok(())
    }

    /// Drops the diagnostics reported since the last call that repeat an earlier one. They
    /// were raised inside the calls on the call stack and, when `left` is given, inside that
    /// call, just left: a warning repeated by another call records that call's labels on the
    /// one kept (see [`crate::diag::OtherCalls`]), so that an allow at only one call does
    /// not hide it.
    fn dedupe_diagnostics(&mut self, left: Option<(&str, Span)>) {
        if self.diags.0.len() <= self.checked_diags {
            return;
        }
        let new = self.diags.0.split_off(self.checked_diags);
        let chain: Vec<Label> = left
            .into_iter()
            .chain(self.call_stack.iter().rev().copied())
            .map(|(block, span)| Label::call(block, span))
            .chain(self.repeating.iter().rev().map(|it| Label {
                span: it.span,
                text: it.label(),
                call: true,
            }))
            .collect();
        for d in new {
            // The same code at the same places is the same mistake, whatever the message says:
            // a repeat that meets it again with other sizes (checking goes on with a recovered
            // shape) reports it once. Without a place, the message tells mistakes apart.
            let key = (
                d.code,
                d.labels.iter().map(|l| l.span).collect(),
                if d.labels.is_empty() {
                    d.message.clone()
                } else {
                    String::new()
                },
            );
            match self.seen.get(&key) {
                None => {
                    self.seen.insert(key, (self.diags.0.len(), chain.clone()));
                    self.diags.0.push(d);
                }
                Some((kept, kept_chain)) => {
                    self.errors_repeated += d.is_error() as u64;
                    if !d.is_error() && gets_call_labels(d.code) && !same_way(kept_chain, &chain) {
                        // Kept whole only when it says other things (its sizes).
                        let first = &self.diags.0[*kept];
                        let same = d.message == first.message
                            && d.help == first.help
                            && d.labels.iter().map(|l| &l.text).eq(first
                                .labels
                                .iter()
                                .filter(|l| !l.call)
                                .map(|l| &l.text));
                        let differs = (!same).then_some(d);
                        self.diags.0[*kept].other_calls.add(chain.clone(), differs);
                    }
                }
            }
        }
        self.checked_diags = self.diags.0.len();
    }

    /// Says more of each "unknown variable" among the diagnostics from `from` on, at a place
    /// `within`, whose name is something else in this body: a named tensor (passed as a
    /// number or to a block), or the variable of a repeat used after its body.
    fn explain_unknown_variables(&mut self, from: usize, frame: &Frame, within: Span) {
        let here: &[ast::Stmt] = match self.call_stack.last() {
            Some((block, _)) => match self.defs.blocks.get(block) {
                Some(def) => &def.body,
                None => return,
            },
            None => &self.model.body,
        };
        // (Deduplication after a block call may have dropped some since `from`.)
        let from = from.min(self.diags.0.len());
        // A size read of a tensor named later, or only in a part that did not run, or in
        // another body (`e1.h` in a block, of its caller's `e1`): said as for any read.
        for i in from..self.diags.0.len() {
            let d = &self.diags.0[i];
            let (Some(span), Some(name)) = (
                d.primary_span().filter(|s| within.contains(*s)),
                d.message
                    .strip_prefix("no tensor is named `")
                    .and_then(|m| m.strip_suffix('`')),
            ) else {
                continue;
            };
            if d.code != "cnnc::elab::unknown_tensor" || name == "input" {
                continue;
            }
            if let Some(better) = self.misplaced_name(name, span) {
                self.diags.0[i] = better;
            }
        }
        for d in &mut self.diags.0[from..] {
            if d.code != "cnnc::elab::unknown_variable"
                || d.primary_span().is_none_or(|s| !within.contains(s))
            {
                continue;
            }
            let Some(name) = d
                .message
                .strip_prefix("unknown variable `")
                .and_then(|m| m.strip_suffix('`'))
                .map(str::to_string)
            else {
                continue;
            };
            if frame.tensors.contains_key(&name) {
                d.message = format!("`{name}` is a tensor, not a number");
                if let Some(l) = d.labels.first_mut() {
                    l.text = "a named tensor".into();
                }
                d.help = Some(format!(
                    "a named tensor is read as a statement of its own (`{name}`), as a concat \
                     branch (`concat {{ {{}} {name} }}`), in `crop({name})` or passed alone to a \
                     block (`b(…, {name})`); it is no value to compute with, but its sizes are: \
                     `{name}.c`, `{name}.h`, `{name}.w`"
                ));
            } else if let Some(var) = loop_variable(here, &name) {
                d.help = Some(format!(
                    "`{name}` is the variable of a repeat, and exists only inside that repeat's \
                     body"
                ));
                d.labels.push(Label {
                    span: var,
                    text: "defined here, for the repeat's body only".into(),
                    call: false,
                });
            }
        }
    }

    /// `convT(21, 16, 8) : [21, 136, 136]` (FCN's upsampling, PyTorch's
    /// `ConvTranspose2d(21, 21, 16, stride=8)`) reads as PyTorch's order to the
    /// `pytorch_argument_order` guess of [`layers`], but the assertion that holds on it says
    /// cnnc's reading is the one meant: the guess, if made on this statement's layer, is
    /// withdrawn.
    fn withdraw_pytorch_order(&mut self, stmt: &ast::Stmt, first_diag: usize) {
        if !matches!(stmt.kind, StmtKind::Call(_)) {
            return;
        }
        let from = first_diag.min(self.diags.0.len());
        let mut i = from;
        while i < self.diags.0.len() {
            let d = &self.diags.0[i];
            if d.code == "cnnc::elab::pytorch_argument_order"
                && d.primary_span().is_some_and(|s| stmt.span.contains(s))
            {
                self.diags.0.remove(i);
            } else {
                i += 1;
            }
        }
    }

    /// Gives the "unknown variable `None`" errors reported since `before` the help of the
    /// place it was written in, in place of [`super::value::NONE_HELP`]'s general "write a
    /// value".
    fn retell_none(&mut self, before: usize, help: &str) {
        let before = before.min(self.diags.0.len());
        for d in &mut self.diags.0[before..] {
            if d.code == "cnnc::elab::unknown_variable" && d.message == "unknown variable `None`" {
                d.help = Some(help.to_string());
            }
        }
    }

    /// A default of parameter `i` of `block` (`d`) that read what it cannot see: a later
    /// parameter (`block g(c=d, d=2)`), or a tensor of the caller's (`block f(c=x.c)`).
    /// The errors since `before` get the help that says what a default sees.
    fn retell_default_scope(
        &mut self,
        before: usize,
        block: &ast::BlockDef,
        i: usize,
        d: &ast::Expr,
        tensors: &HashMap<String, Named>,
    ) {
        let param = &block.params[i].name.name;
        let mut later: Option<String> = None;
        let mut foreign: Option<String> = None;
        ast::walk_expr(d, &mut |x| match &x.kind {
            ast::ExprKind::Var(n) if block.params[i + 1..].iter().any(|p| p.name.name == *n) => {
                later.get_or_insert_with(|| n.clone());
            }
            ast::ExprKind::TensorQuery(n, _) if !tensors.contains_key(n) => {
                foreign.get_or_insert_with(|| n.clone());
            }
            _ => {}
        });
        let (later, foreign) = (later.as_deref(), foreign.as_deref());
        let before = before.min(self.diags.0.len());
        for diag in &mut self.diags.0[before..] {
            if diag.message == format!("unknown variable `{param}`") {
                diag.help = Some(format!(
                    "a default cannot read its own parameter: give `{param}` a value, or read \
                     the parameters before it or the incoming tensor (`in.c`)"
                ));
            } else if let Some(n) =
                later.filter(|n| diag.message == format!("unknown variable `{n}`"))
            {
                diag.help = Some(format!(
                    "a default reads only the parameters before it (and the incoming tensor, \
                     `in.c`): put `{n}` before `{param}` in `{}`'s parameters, or pass `{param}`",
                    block.name.name
                ));
            } else if let Some(n) = foreign.filter(|n| diag.message.contains(&format!("`{n}`"))) {
                diag.help = Some(format!(
                    "a default is computed in the block, which sees its parameters and the \
                     incoming tensor (`in.c`), not the tensors named where it is called: pass \
                     the size (`{}({param}={n}.c)`), or the tensor to a parameter of its own",
                    block.name.name
                ));
            }
        }
    }

    fn report_eval(&mut self, e: EvalError) {
        if let EvalError::Diag(mut d) = e {
            // The expression language knows no blocks or models: a name of one, read as a
            // variable (`blk=basic`) or called as a function (`stage(basic(16))`), gets
            // what to do instead.
            let name = match d.code {
                "cnnc::elab::unknown_variable" => d.message.strip_prefix("unknown variable `"),
                "cnnc::elab::unknown_function" => d.message.strip_prefix("unknown function `"),
                _ => None,
            }
            .and_then(|rest| rest.strip_suffix('`'));
            if let Some((what, help)) = name.and_then(|n| self.definition_as_value(n)) {
                if let Some(label) = d.labels.first_mut() {
                    label.text = format!("a {what}, not a value");
                }
                d.help = Some(help);
            }
            self.diags.push(*d);
        }
    }

    /// For the name of a block or model where a value is read: which it is, and what to
    /// write instead (a block is called in a block's body, or picked by a flag).
    fn definition_as_value(&self, name: &str) -> Option<(&'static str, String)> {
        if self.defs.is_block(name) {
            Some((
                "block",
                format!(
                    "`{name}` is a block, and a block is no value to pass or compute with: \
                     call it in the body of the block, or pass a flag and pick it with `if`, \
                     as in `block b(c, use_{name}=true) {{ conv(c, 3) if use_{name} {{ \
                     {name}(…) }} }}`"
                ),
            ))
        } else if self.defs.models.contains_key(name) {
            Some((
                "model",
                format!(
                    "`{name}` is a model, and a model is no value to pass or compute with: \
                     make it a block (`block {name}(…) {{ … }}`) and call it in the body of \
                     the block"
                ),
            ))
        } else {
            None
        }
    }

    fn body(
        &mut self,
        stmts: &'a [ast::Stmt],
        mut cur: Cur,
        frame: &mut Frame,
        scope: &mut Scope,
    ) -> Result<Cur, Abort> {
        let mut rest = stmts;
        while let [stmt, after @ ..] = rest {
            if self.output_without_body(rest, frame) {
                cur = unknown(cur);
                rest = &after[1..];
                continue;
            }
            cur = self.stmt(stmt, cur, frame, scope)?;
            rest = after;
        }
        Ok(cur)
    }

    /// `output aux` or `output aux(…)` at the start of `stmts` (where no block or tensor is
    /// named `output`): one error for the pair, which the caller skips.
    fn output_without_body(&mut self, stmts: &[ast::Stmt], frame: &Frame) -> bool {
        let Some((call, name)) = output_without_braces(stmts, self.defs) else {
            return false;
        };
        if self.defs.blocks.contains_key("output") || frame.tensors.contains_key("output") {
            return false;
        }
        self.diags.push(output_without_body(call, name));
        true
    }

    /// Points the shape errors found since `first_diag`, after a failed assertion checking
    /// went on from, at that assertion: the shapes they quote may be its written one, which
    /// the layers do not give (`concat` branches "[8, 32, 32] and [8, 30, 30]" where both
    /// are [8, 30, 30]). A later failed assertion says so itself (`check_assert`).
    fn note_assumed_shape(&mut self, first_diag: usize) {
        let Some(Assumed {
            at,
            written,
            given,
            from_diag,
        }) = &self.assumed
        else {
            return;
        };
        let from = first_diag.max(*from_diag).min(self.diags.0.len());
        for d in &mut self.diags.0[from..] {
            // The errors of shapes, and the warnings that sizes give (rows a stride leaves
            // unused, an upsampling that shrinks), may be the written shape's alone.
            let of_sizes = d.is_error()
                || matches!(
                    d.code,
                    "cnnc::shape::unused_input" | "cnnc::shape::upsample_shrinks"
                );
            if !of_sizes
                || !d.code.starts_with("cnnc::shape::")
                || d.code == "cnnc::shape::assertion_failed"
                || d.labels.iter().any(|l| l.span == *at)
            {
                continue;
            }
            d.labels.push(crate::diag::Label {
                span: *at,
                text: format!("checking went on from {written}, as written here"),
                call: false,
            });
            let help = d.help.take().map(|h| format!("; {h}")).unwrap_or_default();
            d.help = Some(format!(
                "checking went on from the shape written in a failed assertion, {written}, \
                 where the layers gave {given}: this {} may be that assertion's alone, so \
                 fix it first{help}",
                if d.is_error() { "error" } else { "warning" }
            ));
        }
    }

    fn stmt(
        &mut self,
        stmt: &'a ast::Stmt,
        cur: Cur,
        frame: &mut Frame,
        scope: &mut Scope,
    ) -> Result<Cur, Abort> {
        self.step(stmt.span)?;
        let first_diag = self.diags.0.len();
        // The sizes the statement's own expressions read (its layer's arguments are read in
        // `call`): a repeat's count, a condition, its shape assertion.
        let own: Vec<&ast::Expr> = match &stmt.kind {
            StmtKind::Repeat(r) => match &r.range {
                ast::RepeatRange::Count(e) | ast::RepeatRange::Each(e) => vec![e],
                ast::RepeatRange::Range(a, b) => vec![a, b],
            },
            StmtKind::If(i) => vec![&i.cond],
            StmtKind::Residual(r) => r
                .cond
                .iter()
                .chain(r.shortcut.as_ref().and_then(|s| s.cond.as_ref()))
                .collect(),
            _ => Vec::new(),
        };
        let asserted = stmt.assert.iter().flat_map(|a| a.dims.iter());
        self.mark_size_reads(own.into_iter().chain(asserted), frame);
        let input_node = cur.node;
        let out = match &stmt.kind {
            StmtKind::Call(call) => self.call(call, cur, frame, scope)?,
            StmtKind::Repeat(r) => {
                self.repeat(r, stmt.span, cur, frame, scope, Iterations::InARow)?
            }
            StmtKind::If(i) => match self.eval_bool(&i.cond, frame, &cur) {
                Some(true) => self.body(&i.then_body, cur, frame, scope)?,
                Some(false) => match &i.else_body {
                    Some(b) => self.body(b, cur, frame, scope)?,
                    None => cur,
                },
                None => unknown(cur),
            },
            StmtKind::Concat(c) => self.concat(c, stmt.span, cur, frame, scope)?,
            StmtKind::Residual(r) => self.residual(r, stmt.span, cur, frame, scope)?,
            StmtKind::Gate(g) => self.gate(g, stmt.span, cur, frame, scope)?,
            StmtKind::Output(o) => self.output(o, cur, frame, scope)?,
        };
        self.note_assumed_shape(first_diag);
        let mut out = out;
        if let Some(assert) = &stmt.assert {
            // As a type ascription does in rustc: after a failed assertion, checking goes on
            // with the shape the user wrote, so the assertions and layers written from that
            // belief do not all fail in turn.
            let before = self.diags.0.len();
            let checked = self.check_assert(assert, &out, frame);
            if let (Err(_), StmtKind::Output(o)) = (&checked, &stmt.kind) {
                self.explain_assert_after_output(o, before);
            }
            // A block call, repeat or `if` that made no layer passed its input on: a repeat
            // that ran no iteration (`n=0`, a defaulted count), an `if` that took no branch.
            if checked.is_err() && out.node == input_node && out.shape.is_some() {
                let what = match &stmt.kind {
                    StmtKind::Call(c) if self.defs.is_block(&c.name.name) => Some(format!(
                        "the call of `{}` makes no layer with these arguments (a `repeat` in it \
                         runs no iteration, or an `if` takes no branch) and passes its input \
                         on",
                        c.name.name
                    )),
                    StmtKind::Repeat(_) => {
                        Some("the repeat runs no iteration and passes its input on".to_string())
                    }
                    StmtKind::If(_) => {
                        Some("the `if` takes no branch and passes its input on".to_string())
                    }
                    _ => None,
                };
                if let Some(what) = what {
                    for d in &mut self.diags.0[before..] {
                        if d.code == "cnnc::shape::assertion_failed" {
                            d.help = Some(match d.help.take() {
                                Some(h) => format!("{what}; {h}"),
                                None => what.clone(),
                            });
                        }
                    }
                }
            }
            match checked {
                Ok(()) => self.withdraw_pytorch_order(stmt, first_diag),
                Err(Some(believed)) => {
                    if let Some(given) = out.shape.replace(believed.clone()) {
                        self.assumed = Some(Assumed {
                            at: assert.span,
                            written: believed,
                            given,
                            from_diag: self.diags.0.len(),
                        });
                    }
                }
                Err(None) => {}
            }
        }
        if let Some(alias) = &stmt.alias {
            if alias.name == "input" {
                self.diags.push(
                    Diagnostic::error(
                        "cnnc::elab::duplicate_definition",
                        "`input` names the model's input; a tensor cannot take that name",
                    )
                    .label(alias.span, "this name")
                    .help("pick another name for the tensor"),
                );
                self.refused_names.insert(alias.name.clone());
            } else if layers::lookup(&alias.name).is_some()
                || self.defs.blocks.contains_key(alias.name.as_str())
            {
                self.diags.push(
                    Diagnostic::error(
                        "cnnc::elab::duplicate_definition",
                        format!(
                            "`{}` names a layer or block; a tensor cannot take that name",
                            alias.name
                        ),
                    )
                    .label(alias.span, "this name")
                    .help(
                        "pick another name for the tensor; an `as` at the end of a line takes \
                         the first word of the next as its name",
                    ),
                );
                self.refused_names.insert(alias.name.clone());
                // Most likely a layer taken as the name (`relu as` above `flatten`): the
                // tensor after it is not what the layers after it were written for, so what
                // they would say of it is left unsaid, as after any failed layer.
                out = unknown(out);
            } else if let Some(&output) = frame.outputs.get(&alias.name) {
                self.diags.push(
                    Diagnostic::error(
                        "cnnc::elab::duplicate_definition",
                        format!(
                            "`{}` names an output of the model; a tensor cannot take that name",
                            alias.name
                        ),
                    )
                    .label(alias.span, "this name")
                    .label(output, "the output")
                    .help("pick another name for the tensor"),
                );
                self.refused_names.insert(alias.name.clone());
            } else {
                let named = Named {
                    cur: out.clone(),
                    span: alias.span,
                    used: false,
                    iteration: self.iterations.last().copied(),
                };
                self.names
                    .entry(alias.span)
                    .or_insert_with(|| (alias.name.clone(), Vec::new()))
                    .1
                    .push(out.node);
                let chain = self.call_chain();
                let ways = self.name_calls.entry(alias.span).or_default();
                if !chain.is_empty() && !ways.iter().any(|w| same_way(w, &chain)) {
                    ways.push(chain);
                }
                frame.env.set_tensor(&alias.name, out.shape.clone());
                if let Some(old) = frame.tensors.insert(alias.name.clone(), named) {
                    // The same `as` in the next iteration of a repeat, the last one's tensor
                    // never read: each iteration's was meant to be read later (a U-Net
                    // encoder written as a loop), but only the last one's can be.
                    // (Withdrawn at the end if that `as` is read where it is made, or never:
                    // `unused_name` is the warning then, or none for a `_` label.)
                    if !old.used && old.span == alias.span {
                        self.diags.push(
                            Diagnostic::warning(
                                "cnnc::elab::name_reused",
                                format!(
                                    "`{}` names a tensor in every iteration of this repeat, \
                                     and the one before was never read",
                                    alias.name
                                ),
                            )
                            .label(alias.span, NAMED_IN_NEXT_ITERATION)
                            .help(format!(
                                "after the repeat, `{0}` is only the last iteration's tensor: \
                                 read each one inside the loop where it is made, or write \
                                 the layers out one by one with a name each; to name only \
                                 the last one, write `as {0}` after the repeat's `}}`",
                                alias.name
                            )),
                        );
                    }
                    // A second `as` of the same name (not the same `as` in a repeat) before
                    // the first tensor was read: usually a copy-paste slip.
                    // (The walks of the source last: a repeat names a tensor many times.)
                    let label =
                        |e: &Self| alias.name.starts_with('_') && !e.read_in_source(&alias.name);
                    if !old.used
                        && old.span != alias.span
                        && !self.read_between(&alias.name, old.span, alias.span)
                        && !label(self)
                    {
                        self.names_read.extend([old.span, alias.span]);
                        self.diags.push(
                            Diagnostic::warning(
                                "cnnc::elab::name_reused",
                                format!(
                                    "`{}` names a second tensor before the first was used",
                                    alias.name
                                ),
                            )
                            .label(alias.span, "named again here")
                            .label(old.span, "the first, never used")
                            .help("give one of them another name if both are needed later"),
                        );
                    }
                }
            }
        }
        Ok(out)
    }

    /// A failed `output NAME { … } : [shape]`: the assertion is of the tensor that goes on,
    /// which the help of the diagnostics from `from` on says.
    fn explain_assert_after_output(&mut self, o: &ast::Output, from: usize) {
        let own = self
            .named_outputs
            .last()
            .filter(|(n, _)| n.span == o.name.span)
            .and_then(|(n, _)| self.graph[n.node].shape.clone());
        for d in &mut self.diags.0[from..] {
            if d.code != "cnnc::shape::assertion_failed" {
                continue;
            }
            let output = match &own {
                Some(shape) => format!("the output `{}` itself is {shape}", o.name.name),
                None => format!("the output `{}` itself", o.name.name),
            };
            let said = d.help.take().map(|h| format!("{h}; ")).unwrap_or_default();
            d.help = Some(format!(
                "{said}after `output {} {{ … }}` an assertion is of the tensor that goes on \
                 (the statement's input); {output}: assert it inside the braces, after the \
                 body's last layer",
                o.name.name
            ));
        }
    }

    /// Reports a failed shape assertion: `Ok` when it holds, else the asserted shape when
    /// checking should go on with it (of the tensor's rank, no zero, within the size limit,
    /// not one with the batch written in).
    fn check_assert(
        &mut self,
        assert: &ast::ShapeAssert,
        out: &Cur,
        frame: &Frame,
    ) -> Result<(), Option<Shape>> {
        let Some(shape) = out.shape.as_ref() else {
            return Err(None);
        };
        // `: [8, in.h - 4, in.w - 4]`: `in` here would be the asserted tensor itself, so
        // each size would be compared with one computed from itself (always equal, or
        // never).
        if let Some(q) = assert.dims.iter().find_map(in_query_in) {
            let ast::ExprKind::InQuery(name) = &q.kind else {
                unreachable!("in_query_in finds queries")
            };
            self.diags.push(
                Diagnostic::error(
                    "cnnc::elab::unknown_variable",
                    format!(
                        "`in.{name}` has no meaning in a shape assertion: it would read the \
                         asserted tensor itself, so each size would be compared with one \
                         computed from itself"
                    ),
                )
                .label(q.span, "here")
                .help(
                    "write the size the statement must give, as a number or from the \
                     block's parameters (`: [c, 14, 14]`); `in` reads a layer's incoming \
                     tensor in that layer's arguments",
                ),
            );
            return Err(None);
        }
        let mut dims = Vec::new();
        for d in &assert.dims {
            // An assertion checks the declared size; the sizes it reads are no part of
            // the model (`size_reads`).
            match super::value::record_size_reads(|| eval(d, &frame.env, Some(shape))).0 {
                Ok(Value::Int(n)) if n >= 0 => dims.push(n as u64),
                Ok(v) => {
                    let mut e = Diagnostic::error(
                        "cnnc::elab::argument_type",
                        format!(
                            "a shape dimension must be a non-negative integer, got {}",
                            v.describe()
                        ),
                    )
                    .label(d.span, "here");
                    // `: [-1, 32, 14, 14]`, a view's batch of any size.
                    if assert.dims.len() == shape.rank() + 1 && std::ptr::eq(d, &assert.dims[0]) {
                        e = e.help(format!(
                            "the batch dimension is left out of shapes: write `: {}`",
                            Shape(shape.dims().to_vec())
                        ));
                    }
                    self.diags.push(e);
                    return Err(None);
                }
                Err(e) => {
                    let before = self.diags.0.len();
                    self.report_eval(e);
                    // `: [N, 16, 32, 32]`: the batch written as a variable.
                    if assert.dims.len() == shape.rank() + 1 && std::ptr::eq(d, &assert.dims[0]) {
                        for diag in &mut self.diags.0[before..] {
                            if diag.code == "cnnc::elab::unknown_variable" {
                                diag.help = Some(format!(
                                    "the batch dimension is left out of shapes: write `: {}`",
                                    Shape(shape.dims().to_vec())
                                ));
                            }
                        }
                    }
                    self.explain_unknown_variables(before, frame, assert.span);
                    let batch =
                        assert.dims.len() == shape.rank() + 1 && std::ptr::eq(d, &assert.dims[0]);
                    self.retell_none(
                        before,
                        &if batch {
                            // `: [None, 32, 28, 28]`, Keras's summary with its batch.
                            format!(
                                "the batch dimension is left out of shapes: write `: {}`",
                                Shape(shape.dims().to_vec())
                            )
                        } else {
                            "an assertion states every size: write the one this dimension has \
                             (`cnnc summary` prints each layer's shape), or leave the assertion \
                             out"
                            .to_string()
                        },
                    );
                    return Err(None);
                }
            }
        }
        let expected = Shape(dims);
        if &expected == shape {
            self.held_assertions.insert(assert.span);
            // Written and computed shapes agree again: later failures are the model's own.
            self.assumed = None;
            return Ok(());
        }
        let batch_written = expected.dims().get(1..) == Some(shape.dims());
        // `: [28, 28, 32]` for [32, 28, 28]: Keras's and TensorFlow's channels-last order.
        let channels_last = match (expected.dims(), shape.dims()) {
            (&[h, w, c], &[c2, h2, w2]) => [h, w, c] == [h2, w2, c2] && c != h,
            _ => false,
        };
        // The same order with the sizes off too (`conv(32, 3) : [28, 28, 32]`, Keras's
        // valid padding forgotten): the channels last, where the layer gives them first.
        let channels_last_off = !channels_last
            && match (expected.dims(), shape.dims()) {
                (&[h, _, c], &[c2, _, _]) => c == c2 && h != c2,
                _ => false,
            };
        let help = if self.held_assertions.contains(&assert.span) {
            format!(
                "this assertion held before, at an earlier iteration of the repeat or call of \
                 the block it is in, and fails here, where the tensor is {shape}: no one shape \
                 holds at all of them, so writing this one would fail the others; assert \
                 after the repeat, or write the sizes from the loop variable or the block's \
                 arguments"
            )
        } else if batch_written {
            format!("shapes leave out the batch dimension: write `: {shape}`")
        } else if channels_last {
            format!(
                "this is the shape channels-last, [H, W, C], as Keras and TensorFlow write it; \
                 cnnc's shapes are [C, H, W], channels first: write `: {shape}`"
            )
        } else if channels_last_off {
            format!(
                "this reads as a shape channels-last, [H, W, C], as Keras and TensorFlow write \
                 it, with other sizes too; cnnc's shapes are [C, H, W], channels first, and the \
                 layer gives {shape}: write `: {shape}` if that is what you meant, or fix the \
                 layers before it (an unpadded conv shrinks each side by its kernel less one, as \
                 Keras's `padding='valid'`)"
            )
        } else if let Some(h) = convt_short(&self.graph[out.node].op, &expected, shape) {
            h
        } else if let Some(h) = self.flattened_count_help(out.node, &expected, shape) {
            h
        } else if let Some(Assumed { written, given, .. }) =
            self.assumed.as_ref().filter(|a| a.at != assert.span)
        {
            // `: [64, 16, 16]` wrong on a conv giving [64, 32, 32], then a right `: [64, 16,
            // 16]` after a maxpool(2): this one fails from the first one's shape alone.
            format!(
                "checking went on from the shape written in the earlier failed assertion, \
                 {written}, where the layer gave {given}: fix that one first, then see whether \
                 this one still fails (`: {shape}` is what that written shape leads to here, \
                 which may not be the model's)"
            )
        } else if !self.repeating.is_empty() {
            format!(
                "write `: {shape}` if that is what you meant, or fix the layers before it; in a \
                 repeat, it must hold at every iteration"
            )
        } else {
            format!("write `: {shape}` if that is what you meant, or fix the layers before it")
        };
        let assumed = self
            .assumed
            .as_ref()
            // (The same assertion in a later iteration of a repeat is the same mistake.)
            .filter(|a| a.at != assert.span)
            .filter(|_| {
                !batch_written
                    && !channels_last
                    && !channels_last_off
                    && !self.held_assertions.contains(&assert.span)
            });
        let message = match assumed {
            Some(Assumed { written, .. }) => format!(
                "shape assertion failed: expected {expected}; from the shape an earlier failed \
                 assertion wrote, {written}, the layer gives {shape}"
            ),
            None => format!("shape assertion failed: expected {expected}, the layer gives {shape}"),
        };
        let mut d = Diagnostic::error("cnnc::shape::assertion_failed", message)
            .label(assert.span, format!("the tensor here is {shape}"));
        if let Some(Assumed { at, written, .. }) = assumed {
            d = d.label(
                *at,
                format!("checking went on from {written}, as written here"),
            );
        }
        self.diags.push(d.help(help));
        // Only a shape of the same rank: `conv(…) : [400]` is more likely a misplaced
        // assertion than a belief that the conv flattens, and the layers after it would
        // all fail on a vector.
        let elements = expected
            .dims()
            .iter()
            .try_fold(1u64, |n, &d| n.checked_mul(d));
        // Nor one in the wrong order: the layers after it are checked on the real shape,
        // where each channels-last assertion is its own error with its own fix.
        let usable = !batch_written
            && !channels_last
            && !channels_last_off
            && expected.rank() == shape.rank()
            && expected.dims().iter().all(|&d| d > 0)
            && elements.is_some_and(|n| n <= rules::MAX_ELEMENTS);
        Err(usable.then_some(expected))
    }

    fn eval_bool(&mut self, e: &ast::Expr, frame: &Frame, cur: &Cur) -> Option<bool> {
        match eval(e, &frame.env, cur.shape.as_ref()) {
            Ok(Value::Bool(b)) => Some(b),
            Ok(v) => {
                self.diags.push(
                    Diagnostic::error(
                        "cnnc::elab::type_error",
                        format!("a condition must be true or false, got {}", v.describe()),
                    )
                    .label(e.span, "this condition")
                    .help("compare with `==`, `!=`, `<`, … to get a boolean"),
                );
                None
            }
            Err(err) => {
                let before = self.diags.0.len();
                self.report_eval(err);
                self.explain_unknown_variables(before, frame, e.span);
                None
            }
        }
    }

    fn eval_int(&mut self, e: &ast::Expr, frame: &Frame, cur: &Cur, what: &str) -> Option<i64> {
        match eval(e, &frame.env, cur.shape.as_ref()) {
            Ok(Value::Int(n)) => Some(n),
            Ok(v) => {
                self.diags.push(
                    Diagnostic::error(
                        "cnnc::elab::argument_type",
                        format!("{what} must be an integer, got {}", v.describe()),
                    )
                    .label(e.span, "here"),
                );
                None
            }
            Err(err) => {
                let before = self.diags.0.len();
                self.report_eval(err);
                self.explain_unknown_variables(before, frame, e.span);
                None
            }
        }
    }

    /// A repeat: its iterations in a row, or, written as a concat's branch, side by side
    /// (`Iterations::Branches`, where each iteration's output goes; the input is returned).
    fn repeat(
        &mut self,
        r: &'a ast::Repeat,
        span: Span,
        cur: Cur,
        frame: &mut Frame,
        scope: &mut Scope,
        mut iterations: Iterations<'_>,
    ) -> Result<Cur, Abort> {
        // The items of `repeat w in list`; a range's values are its integers.
        let mut items: Option<Vec<Value>> = None;
        let (from, to, count_span) = match &r.range {
            ast::RepeatRange::Count(n) => (
                Some(0),
                self.eval_int(n, frame, &cur, "a repeat count"),
                n.span,
            ),
            ast::RepeatRange::Range(a, b) => (
                self.eval_int(a, frame, &cur, "a range bound"),
                self.eval_int(b, frame, &cur, "a range bound"),
                a.span.to(b.span),
            ),
            ast::RepeatRange::Each(list) => {
                let values = self.eval_repeat_list(list, r.var.as_ref(), frame, &cur);
                let count = values.as_ref().map(|v| v.len() as i64);
                items = values;
                (Some(0), count, list.span)
            }
        };
        let (Some(from), Some(to)) = (from, to) else {
            return Ok(unknown(cur));
        };
        let count = to.saturating_sub(from);
        if count > MAX_REPEAT {
            self.diags.push(
                Diagnostic::error(
                    "cnnc::elab::too_large",
                    format!("repeat count {count} is too large to be real"),
                )
                .label(count_span, format!("{count} iterations"))
                .help(format!(
                    "cnnc expands repeats into layers; at most {MAX_REPEAT} iterations are allowed"
                )),
            );
            return Ok(unknown(cur));
        }
        if count < 0 && matches!(r.range, ast::RepeatRange::Count(_)) {
            self.diags.push(
                Diagnostic::error(
                    "cnnc::elab::argument_value",
                    format!("repeat count {count} is negative"),
                )
                .label(count_span, "here")
                .help("a repeat runs its body that many times; 0 leaves it out"),
            );
            return Ok(unknown(cur));
        }
        // The loop variable hides a parameter or an outer loop's variable of that name (and
        // the body meant the one or the other): an error, checked on with the loop's.
        let outer = r
            .var
            .as_ref()
            .and_then(|v| frame.env.get(&v.name).cloned().map(|value| (v, value)));
        if let Some((var, value)) = &outer {
            self.diags.push(
                Diagnostic::error(
                    "cnnc::elab::duplicate_definition",
                    format!(
                        "the loop variable `{}` hides the outer `{}`, here {}",
                        var.name,
                        var.name,
                        value.describe()
                    ),
                )
                .label(var.span, "defined again by this repeat")
                .help(format!(
                    "give the loop another name, e.g. `repeat {} in …`: inside it, `{}` would \
                     be {}, not the value it has outside",
                    ["i", "j", "k", "n", "idx", "step"]
                        .into_iter()
                        .find(|n| frame.env.get(n).is_none())
                        .unwrap_or("i2"),
                    var.name,
                    if items.is_some() {
                        "each item of the list in turn"
                    } else {
                        "the loop's count"
                    }
                )),
            );
        }
        // `block f(skip) { repeat skip in [5, 6] { concat { skip {} } conv(skip, 1) } }`: a
        // statement would read the tensor and an argument the number.
        if let Some(var) = r.var.as_ref().filter(|_| outer.is_none()) {
            if let Some(named) = frame.tensors.get(&var.name) {
                self.diags.push(
                    Diagnostic::error(
                        "cnnc::elab::duplicate_definition",
                        format!("the loop variable `{}` has the name of a tensor", var.name),
                    )
                    .label(var.span, "defined again by this repeat")
                    .label(named.span, "the tensor")
                    .help(format!(
                        "give the loop another name: inside it, `{0}` alone would be the tensor \
                         and `{0}` in an argument the loop's value",
                        var.name
                    )),
                );
            }
        }
        let mut cur = cur;
        if count > 1 {
            self.repeating.push(Iteration {
                span: count_span,
                var: r.var.as_ref().map(|v| v.name.clone()),
                index: 0,
                count,
                item: Value::Int(from),
                shared_item: false,
            });
        }
        // How often each item of a list is written, to tell iterations of equal items apart.
        let mut written_items: HashMap<String, usize> = HashMap::new();
        if count > 1 {
            for item in items.iter().flatten() {
                *written_items.entry(item.written()).or_default() += 1;
            }
        }
        // Iterations in a row that only met errors already reported (they are known once the
        // next step has deduplicated them), and where the last one started.
        let mut repeating_errors = 0;
        let mut last: Option<(usize, u64)> = None;
        for i in from..to {
            self.step(count_span)?;
            if let Some((kept, repeated)) = last {
                repeating_errors = if self.errors_repeated > repeated && self.diags.0.len() == kept
                {
                    repeating_errors + 1
                } else {
                    0
                };
                if repeating_errors == MAX_REPEATING_ITERATIONS {
                    // They teach nothing more: the rest are skipped, as after an error that
                    // loses the tensor, and so is checking what follows, which would see the
                    // tensor of an unfinished repeat (or miss one it names).
                    match &mut iterations {
                        Iterations::InARow => cur = unknown(cur),
                        Iterations::Branches { outs, .. } => {
                            outs.push((unknown(cur.clone()), span, None))
                        }
                    }
                    self.skipped_repeats.push(span);
                    break;
                }
            }
            last = Some((self.diags.0.len(), self.errors_repeated));
            let index = (i - from) as usize;
            let value = match &items {
                Some(items) => items[index].clone(),
                None => Value::Int(i),
            };
            if let Some(var) = &r.var {
                frame.env.set(&var.name, value.clone());
            }
            if count > 1 {
                let shared_item = !written_items.is_empty()
                    && written_items.get(&value.written()).is_some_and(|&n| n > 1);
                let it = self.repeating.last_mut().expect("pushed above");
                (it.index, it.item, it.shared_item) = (index, value, shared_item);
            }
            let before = self.diags.0.len();
            self.iterations.push(self.next_iteration);
            self.next_iteration += 1;
            let lost = match &mut iterations {
                Iterations::InARow => {
                    let body = self.body(&r.body, cur, frame, scope);
                    self.iterations.pop();
                    cur = body?;
                    cur.shape.is_none()
                }
                Iterations::Branches { concat, outs } => {
                    let mut sub = Scope::new(format!("{concat}.branch{}.", outs.len() + 1));
                    self.concat_depth += 1;
                    let body = self.body(&r.body, cur.clone(), frame, &mut sub);
                    self.concat_depth -= 1;
                    self.iterations.pop();
                    let out = body?;
                    self.flush_dilation_run();
                    let lost = out.shape.is_none();
                    let which =
                        (count > 1).then(|| self.repeating.last().expect("pushed above").label());
                    outs.push((out, span, which));
                    lost
                }
            };
            // Which iteration: the sizes in a message are that iteration's. Said only when
            // there is something to say (a list's item may be long to write).
            if count > 1 && self.diags.0.len() > before {
                let which = self.repeating.last().expect("pushed above").label();
                for d in &mut self.diags.0[before..] {
                    if d.labels.iter().all(|l| l.span != count_span) {
                        // From a block called in the body, the iteration is part of the way
                        // to it, as its calls are: an allow there covers this call only,
                        // and the label goes with them when the warning moves to another.
                        let call = d.labels.iter().any(|l| l.call);
                        d.labels.push(Label {
                            span: count_span,
                            text: which.clone(),
                            call,
                        });
                    }
                }
            }
            if lost {
                // After an error the tensor stays unknown: later iterations could only
                // repeat the same mistakes (at a cost: `repeat 1000000 { typo }`).
                break;
            }
        }
        if count > 1 {
            self.repeating.pop();
        }
        if let Some(var) = &r.var {
            match outer {
                Some((_, value)) => frame.env.set(&var.name, value),
                None => frame.env.remove(&var.name),
            }
        }
        Ok(cur)
    }

    /// The items `repeat w in list` runs over; `None` after an error (reported).
    fn eval_repeat_list(
        &mut self,
        list: &ast::Expr,
        var: Option<&ast::Ident>,
        frame: &Frame,
        cur: &Cur,
    ) -> Option<Vec<Value>> {
        let value = match eval(list, &frame.env, cur.shape.as_ref()) {
            Ok(v) => v,
            Err(e) => {
                let before = self.diags.0.len();
                self.report_eval(e);
                self.explain_unknown_variables(before, frame, list.span);
                return None;
            }
        };
        let var = var.map_or("i", |v| v.name.as_str());
        let value = match value {
            Value::List(items) => return Some(items),
            other => other,
        };
        let help = if let Value::Int(_) = value {
            let count = match &list.kind {
                ast::ExprKind::Binary(..) => format!("({list})"),
                _ => list.to_string(),
            };
            format!(
                "to count, write a range: `repeat {var} in 0..{count}` ({var} from 0 up to \
                 {count} - 1)"
            )
        } else {
            format!(
                "`repeat {var} in` takes a range `a..b` or a list `[…]` (a list parameter, or \
                 one written out)"
            )
        };
        self.diags.push(
            Diagnostic::error(
                "cnnc::elab::argument_type",
                format!(
                    "a repeat runs over a range or a list, got {}",
                    value.describe()
                ),
            )
            .label(list.span, "not a list")
            .help(help),
        );
        None
    }

    /// The arm of an `if` (an `else if` chain followed) whose condition holds: `Some(None)`
    /// when none does and there is no `else`, `None` when a condition cannot be evaluated
    /// (reported).
    fn taken_arm(
        &mut self,
        i: &'a ast::IfStmt,
        frame: &Frame,
        cur: &Cur,
    ) -> Option<Option<&'a [ast::Stmt]>> {
        match self.eval_bool(&i.cond, frame, cur)? {
            true => Some(Some(&i.then_body)),
            false => match i.else_body.as_deref() {
                None => Some(None),
                // `else if`: its own `if`, followed.
                Some([stmt]) if stmt.alias.is_none() && stmt.assert.is_none() => match &stmt.kind {
                    StmtKind::If(inner) => self.taken_arm(inner, frame, cur),
                    _ => Some(Some(i.else_body.as_deref()?)),
                },
                Some(body) => Some(Some(body)),
            },
        }
    }

    /// `concat { {a} {b} output aux { … } }`: the output is a branch of its own, which
    /// passes the concat's input on into the join; it was meant after the concat, or in a
    /// branch.
    fn warn_output_as_branch(&mut self, o: &ast::Output, span: Span) {
        self.diags.push(
            Diagnostic::warning(
                "cnnc::elab::output_as_branch",
                format!(
                    "the output `{}` is a branch of the concat: the concat joins the input \
                     that it passes on",
                    o.name.name
                ),
            )
            .label(span, "a branch of its own")
            .help(format!(
                "to output the concat's result, write `output {0} {{ … }}` after its closing \
                 brace; to output a branch's, put it inside that branch's braces, `{{ conv(…) \
                 output {0} {{ … }} }}`; in braces of its own, `{{ output {0} {{ … }} }}`, it \
                 is an identity branch on purpose",
                o.name.name
            )),
        );
    }

    fn concat(
        &mut self,
        c: &'a ast::Concat,
        span: Span,
        cur: Cur,
        frame: &mut Frame,
        scope: &mut Scope,
    ) -> Result<Cur, Abort> {
        self.flush_dilation_run();
        let name = scope.fresh("concat");
        self.warn_bare_branches(c, frame);
        let branches_first = self.graph.node_count();
        let mut outs = Vec::new();
        for branch in &c.branches {
            // A repeat written as a branch, without braces, is a branch per iteration (ASPP's
            // rates, PSP's bins); in braces it is one branch, its iterations in a row.
            if let Some((r, stmt)) = repeat_as_branch(branch) {
                let iterations = Iterations::Branches {
                    concat: &name,
                    outs: &mut outs,
                };
                self.repeat(r, stmt.span, cur.clone(), frame, scope, iterations)?;
                continue;
            }
            // An `if` written as a branch, without braces, is an optional branch: its arm
            // when a condition holds, no branch when none does (PyTorch's
            // `torch.cat([a(x), b(x)] + ([c(x)] if cond else []), 1)`); in braces, a false
            // condition is the identity branch.
            let body = match if_as_branch(branch) {
                Some(i) => match self.taken_arm(i, frame, &cur) {
                    Some(Some(arm)) => arm,
                    Some(None) => continue,
                    None => {
                        outs.push((unknown(cur.clone()), branch.span, None));
                        continue;
                    }
                },
                None => &branch.body,
            };
            if let Some(o) = output_as_branch(branch) {
                self.warn_output_as_branch(o, branch.span);
            }
            let mut sub = Scope::new(format!("{name}.branch{}.", outs.len() + 1));
            self.concat_depth += 1;
            let out = self.body(body, cur.clone(), frame, &mut sub);
            self.concat_depth -= 1;
            let out = out?;
            self.flush_dilation_run();
            outs.push((out, branch.span, None));
        }
        if let ([only], [_]) = (c.branches.as_slice(), outs.as_slice()) {
            if repeat_as_branch(only).is_none() {
                self.warn_single_branch(only, frame);
            }
        }
        if outs.is_empty() {
            self.diags.push(
                Diagnostic::error("cnnc::elab::argument_count", "a concat needs at least one branch")
                    .label(span, "this concat")
                    .help("write the branches in braces: `concat { { conv(16, 1) } { conv(16, 3, pad=1) } }`"),
            );
            return Ok(unknown(cur));
        }
        let before = self.diags.0.len();
        let cur_shape = cur.shape.clone();
        let (outs, iterations): (Vec<_>, Vec<_>) = outs
            .into_iter()
            .map(|(cur, span, which)| ((cur, span), which))
            .unzip();
        let out = self.merge_labelled(Op::Concat, name, span, &outs, &iterations)?;
        if self.diags.0.len() > before {
            // The block whose first statement this concat is: its input is the block's.
            let block = self.call_stack.last().map(|(b, _)| *b).filter(|b| {
                self.defs.blocks.get(*b).is_some_and(|def| {
                    def.body.first().is_some_and(
                        |st| matches!(&st.kind, StmtKind::Concat(first) if std::ptr::eq(first, c)),
                    )
                })
            });
            let help = in_size_read_in_branch_help(c, &outs, cur_shape.as_ref(), block)
                .or_else(|| self.concat_help(c, &outs, cur_shape.as_ref(), frame));
            let shrinking = self.shrinking_layers(&outs, cur_shape.as_ref(), branches_first);
            let reduction = self.reduction_fixes(&outs, cur_shape.as_ref(), branches_first);
            if let Some(d) = self.diags.0.last_mut() {
                if d.code == "cnnc::shape::concat_mismatch" {
                    if let Some(help) = help {
                        d.help = Some(help);
                    } else if !shrinking.is_empty() {
                        // An Inception module's branch whose conv or pooling lacks the
                        // padding that keeps the size: its label says which, and the pad.
                        for (branch, fixes) in &shrinking {
                            if let Some(l) = d.labels.iter_mut().find(|l| l.span == *branch) {
                                l.text = format!("{}: {fixes}", l.text);
                            }
                        }
                        d.help = Some(
                            "every branch must keep the spatial size [H, W] (only channels may \
                             differ): give the layers named in the labels the padding shown, \
                             `(k − 1)/2` times the dilation, as an Inception module's branches \
                             do"
                            .to_string(),
                        );
                    } else if let Some((target, agree, fixes)) = reduction {
                        // A reduction block (every branch strided): the branches that do
                        // not give the others' size, and the padding that would.
                        for (branch, fix) in &fixes {
                            if let Some(l) = d.labels.iter_mut().find(|l| l.span == *branch) {
                                l.text = format!("{}: {fix}", l.text);
                            }
                        }
                        d.help = Some(format!(
                            "every branch must give the same spatial size [H, W] (only channels \
                             may differ); each branch here reduces the input with a stride, so \
                             each must reduce it to the same size: {agree} of {} give {}×{}{}",
                            outs.len(),
                            target[0],
                            target[1],
                            if fixes.is_empty() {
                                ""
                            } else {
                                ", and the labels give the padding that makes the others that \
                                 size"
                            }
                        ));
                    }
                }
            }
        }
        Ok(out)
    }

    /// A concat none of whose branches keeps its input's size (an Inception reduction
    /// block): the size most branches give and, for each branch giving another, the padding
    /// of its last size-changing conv or pooling that would give that size
    /// (`its 3×3 conv with stride 2 gives 17×17 with pad=0`). `None` where a branch keeps
    /// the input's size or a size is unknown.
    fn reduction_fixes(
        &self,
        outs: &[(Cur, Span)],
        input: Option<&Shape>,
        first: usize,
    ) -> Option<ReductionFixes> {
        let here = input.and_then(Shape::spatial)?;
        let sizes: Vec<[u64; 2]> = outs
            .iter()
            .map(|(cur, _)| cur.shape.as_ref().and_then(Shape::spatial))
            .collect::<Option<_>>()?;
        let spatial = |n: NodeIndex| self.graph[n].shape.as_ref().and_then(Shape::spatial);
        // Each branch made smaller by a strided conv or pooling of its own: not an Inception
        // module whose padding is missing, nor upsampling branches.
        let strided = |mut n: NodeIndex| loop {
            if n.index() < first {
                return false;
            }
            let stride = match &self.graph[n].op {
                Op::Conv(a) => a.stride,
                Op::MaxPool(p) | Op::AvgPool(p) => p.stride,
                _ => [1, 1],
            };
            if stride != [1, 1] {
                return true;
            }
            match self.first_input(n) {
                Some(i) => n = i,
                None => return false,
            }
        };
        let reduced = sizes.iter().all(|hw| hw[0] < here[0] && hw[1] < here[1]);
        if !reduced || !outs.iter().all(|(cur, _)| strided(cur.node)) {
            return None;
        }
        // The most common size; between as common, the first branch's.
        let count = |hw: &[u64; 2]| sizes.iter().filter(|s| *s == hw).count();
        let target = *sizes
            .iter()
            .rev()
            .max_by_key(|hw| count(hw))
            .expect("a concat has branches");
        let mut fixes = Vec::new();
        for ((cur, branch), size) in outs.iter().zip(&sizes) {
            // The iterations of a repeat written as a branch share its span: a label there
            // would not say which iteration.
            let shared = outs.iter().filter(|(_, b)| b == branch).count() > 1;
            if *size == target || shared {
                continue;
            }
            // Back along first inputs to the last layer that changes the size.
            let mut n = cur.node;
            let fix = loop {
                if n.index() < first {
                    break None;
                }
                let Some(input) = self.first_input(n) else {
                    break None;
                };
                let (Some(from), Some(to)) = (spatial(input), spatial(n)) else {
                    break None;
                };
                if from != to {
                    break padding_for_size(&self.graph[n].op, from, target);
                }
                n = input;
            };
            if let Some(fix) = fix {
                fixes.push((*branch, fix));
            }
        }
        Some((target, count(&target), fixes))
    }

    /// The stride-1 convs and poolings of concat branches (the nodes made since the graph
    /// had `first`) that make a branch smaller than the concat's input, where another
    /// branch keeps that size: per branch (its span), each layer with the padding that
    /// would keep the size (`its 3×3 conv needs pad=1`).
    fn shrinking_layers(
        &self,
        outs: &[(Cur, Span)],
        input: Option<&Shape>,
        first: usize,
    ) -> Vec<(Span, String)> {
        let Some(here) = input.and_then(Shape::spatial) else {
            return Vec::new();
        };
        let sizes: Vec<Option<[u64; 2]>> = outs
            .iter()
            .map(|(cur, _)| cur.shape.as_ref().and_then(Shape::spatial))
            .collect();
        if !sizes.contains(&Some(here)) {
            return Vec::new();
        }
        let mut found = Vec::new();
        for ((cur, branch), size) in outs.iter().zip(&sizes) {
            if *size == Some(here) {
                continue;
            }
            let fixes: Vec<PadFix> = self
                .path_since(cur.node, first)
                .into_iter()
                .filter_map(|n| self.padding_that_keeps_size(n))
                .collect();
            if !fixes.is_empty() {
                found.push((*branch, PadFix::say(&fixes)));
            }
        }
        found
    }

    /// A `flatten : [400]` that fails (PyTorch's hand-counted `in_features`): the image it
    /// flattens, and the image the number was counted from when it is one of the same
    /// channels and proportions (`[400]` is [16, 5, 5] where the layers give [16, 4, 4]).
    fn flattened_count_help(
        &self,
        n: NodeIndex,
        expected: &Shape,
        shape: &Shape,
    ) -> Option<String> {
        if !matches!(self.graph[n].op, Op::Flatten) || expected.rank() != 1 || shape.rank() != 1 {
            return None;
        }
        let input = self
            .graph
            .edges_directed(n, petgraph::Direction::Incoming)
            .find(|e| *e.weight() == 0)
            .map(|e| petgraph::visit::EdgeRef::source(&e))?;
        let image = self.graph[input].shape.clone()?;
        let &[c, h, w] = image.dims() else {
            return None;
        };
        let counted = expected.dims()[0];
        let gives = format!(
            "`flatten` turns {image} into {c} × {h} × {w} = {} values",
            shape.dims()[0]
        );
        // The size the count was made for: the same channels, and h × w scaled alike.
        let fit = (c > 0 && counted.is_multiple_of(c))
            .then(|| counted / c)
            .and_then(|pixels| {
                (1..=pixels.min(1 << 20))
                    .map(|a| (a, pixels / a))
                    .find(|&(a, b)| a * b == pixels && a.checked_mul(w) == b.checked_mul(h))
            });
        Some(match fit {
            Some((a, b)) => format!(
                "{gives}; [{counted}] is [{c}, {a}, {b}] flattened: the count assumed {a}×{b} \
                 where the layers before it give {h}×{w} (a conv or pooling with other padding \
                 or stride, or another input size); write `: {shape}` if the layers are right, \
                 since `linear` counts its inputs itself"
            ),
            None => format!(
                "{gives}, not {counted}; write `: {shape}` if the layers are right, since \
                 `linear` counts its inputs itself, or fix the layers before it"
            ),
        })
    }

    /// The node `n` reads first (its input, or a merge's first branch).
    fn first_input(&self, n: NodeIndex) -> Option<NodeIndex> {
        self.graph
            .edges_directed(n, petgraph::Direction::Incoming)
            .find(|e| *e.weight() == 0)
            .map(|e| petgraph::visit::EdgeRef::source(&e))
    }

    /// The nodes made since the graph had `first` that lead to `end` along first inputs
    /// (a branch's or a body's main line), in source order.
    fn path_since(&self, end: NodeIndex, first: usize) -> Vec<NodeIndex> {
        let mut path = Vec::new();
        let mut n = end;
        while n.index() >= first {
            path.push(n);
            let Some(input) = self.first_input(n) else {
                break;
            };
            n = input;
        }
        path.reverse();
        path
    }

    /// A stride-1 conv or pooling of odd reach whose padding falls short of keeping the size:
    /// which it is and the padding that keeps it.
    fn padding_that_keeps_size(&self, n: NodeIndex) -> Option<PadFix> {
        let (kernel, stride, dilation, pads, layer) = match &self.graph[n].op {
            Op::Conv(a) => (a.kernel, a.stride, a.dilation, a.pads, "conv"),
            Op::MaxPool(p) => (p.kernel, p.stride, [1, 1], p.pads, "maxpool"),
            Op::AvgPool(p) => (p.kernel, p.stride, [1, 1], p.pads, "avgpool"),
            _ => return None,
        };
        let keep = |a: usize| dilation[a] * (kernel[a].max(1) - 1) / 2;
        let odd = (0..2).all(|a| (dilation[a] * (kernel[a].max(1) - 1)) % 2 == 0);
        let short = (0..2).any(|a| pads.begin[a] + pads.end[a] < 2 * keep(a));
        (stride == [1, 1] && odd && short).then(|| PadFix {
            kernel,
            layer,
            pads: Pads::symmetric([keep(0), keep(1)]),
        })
    }

    /// The layers of a residual body (its main line, the nodes since `first` up to `end`)
    /// whose missing padding alone makes it give another size than `target`: each with the
    /// padding it needs, when with that padding the body gives `target`. Empty when the
    /// padding does not explain the difference (a stride, an upsampling), or is not missing.
    fn body_padding_fixes(&self, end: NodeIndex, first: usize, target: [u64; 2]) -> Vec<PadFix> {
        let path = self.path_since(end, first);
        let fixes: Vec<(NodeIndex, PadFix)> = path
            .iter()
            .filter_map(|&n| Some((n, self.padding_that_keeps_size(n)?)))
            .collect();
        let resized = self.simulate_path(&path, |n, stride, pads| {
            let pads = fixes
                .iter()
                .find(|(m, _)| *m == n)
                .map_or(pads, |(_, f)| f.pads);
            (stride, pads)
        });
        if resized == Some(target) {
            fixes.into_iter().map(|(_, f)| f).collect()
        } else {
            Vec::new()
        }
    }

    /// A residual body that strides more than once where once gives `target` (ResNet's
    /// block with `stride=stride` written in both convs): the strided layers after the
    /// first, which would give `target` at stride 1.
    fn body_stride_repeats(
        &self,
        end: NodeIndex,
        first: usize,
        target: [u64; 2],
    ) -> Vec<NodeIndex> {
        let path = self.path_since(end, first);
        let strided: Vec<NodeIndex> = path
            .iter()
            .copied()
            .filter(|&n| match &self.graph[n].op {
                Op::Conv(a) => a.stride != [1, 1],
                Op::MaxPool(p) | Op::AvgPool(p) => p.stride != [1, 1],
                _ => false,
            })
            .collect();
        let Some((_, later)) = strided.split_first() else {
            return Vec::new();
        };
        let resized = self.simulate_path(&path, |n, stride, pads| {
            (if later.contains(&n) { [1, 1] } else { stride }, pads)
        });
        if later.is_empty() || resized != Some(target) {
            return Vec::new();
        }
        later.to_vec()
    }

    /// The spatial size at the end of `path` (a line of layers, each the first input of the
    /// next) with each conv's and pooling's stride and padding as `change(node, stride,
    /// pads)` makes them: `None` when a size cannot be worked out, or a layer other than
    /// those changes the size.
    fn simulate_path(
        &self,
        path: &[NodeIndex],
        change: impl Fn(NodeIndex, [u64; 2], Pads) -> ([u64; 2], Pads),
    ) -> Option<[u64; 2]> {
        let spatial = |n: NodeIndex| self.graph[n].shape.as_ref().and_then(Shape::spatial);
        let mut size = path
            .first()
            .and_then(|&n| self.first_input(n))
            .and_then(spatial)?;
        for &n in path {
            let window = match &self.graph[n].op {
                Op::Conv(a) => Some((a.kernel, a.stride, a.dilation, a.pads, false)),
                Op::MaxPool(p) | Op::AvgPool(p) => {
                    Some((p.kernel, p.stride, [1, 1], p.pads, p.ceil))
                }
                _ => None,
            };
            match window {
                Some((kernel, stride, dilation, pads, ceil)) => {
                    let (stride, given) = change(n, stride, pads);
                    for a in 0..2 {
                        size[a] = rules::window_out(
                            size[a],
                            kernel[a],
                            stride[a],
                            given.begin[a],
                            given.end[a],
                            dilation[a],
                            ceil,
                        )?
                        .0;
                    }
                }
                // Any other layer must keep the size it was given.
                None => match (self.first_input(n).and_then(spatial), spatial(n)) {
                    (Some(i), Some(o)) if i == o => {}
                    _ => return None,
                },
            }
        }
        Some(size)
    }

    /// The fix for a concat whose branches differ in size, when a skip connection is plain
    /// to see: a branch that is a named tensor alone, larger than the others, is cropped
    /// (U-Net's copy-and-crop); a transposed conv just short of the skip's size can reach it
    /// with `output_pad` (a stride before it rounded an odd size down).
    fn concat_help(
        &self,
        c: &ast::Concat,
        outs: &[(Cur, Span)],
        input: Option<&Shape>,
        frame: &Frame,
    ) -> Option<String> {
        // Said of the branches as written: not where a repeat made several.
        if outs.len() != c.branches.len()
            || c.branches.iter().any(|b| repeat_as_branch(b).is_some())
        {
            return None;
        }
        let sizes: Vec<[u64; 2]> = outs
            .iter()
            .map(|(cur, _)| cur.shape.as_ref().and_then(Shape::spatial))
            .collect::<Option<_>>()?;
        let small = *sizes.iter().min_by_key(|[h, w]| h * w)?;
        let named = |b: &ast::Branch| match b.body.as_slice() {
            [st] => match &st.kind {
                StmtKind::Call(call)
                    if !call.parens && frame.tensors.contains_key(&call.name.name) =>
                {
                    Some(call.name.name.clone())
                }
                _ => None,
            },
            _ => None,
        };
        // A named skip smaller than every other branch (a U-Net decoder with one upsampling
        // too many, or an encoder stage too many): no crop makes it larger.
        let larger_than = |hw: [u64; 2]| {
            sizes
                .iter()
                .filter(|o| **o != hw)
                .all(|o| o[0] >= hw[0] && o[1] >= hw[1])
                .then(|| sizes.iter().find(|o| **o != hw).copied())
                .flatten()
        };
        // A block's parameter given the caller's tensor: which, and the caller's tensor of
        // the size wanted (a U-Net's `up(32, d1)` where `d2` was meant).
        let passed = |skip: &str, wanted: [u64; 2]| -> (String, Option<String>, String) {
            let from_caller = frame.tensors.get(skip).is_some_and(|t| {
                self.call_first_nodes
                    .last()
                    .is_some_and(|first| t.cur.node.index() < *first)
            });
            from_caller
                .then(|| self.passed_tensors.last()?.wrong_scale(skip, wanted))
                .flatten()
                .unwrap_or_else(|| (format!("`{skip}`"), None, skip.to_string()))
        };
        if let Some((skip, hw, other)) = c.branches.iter().enumerate().find_map(|(i, b)| {
            let other = larger_than(sizes[i])?;
            Some((named(b)?, sizes[i], other))
        }) {
            // A transposed conv a few pixels over the skip's size (`convT(16, 3, stride=2)`
            // doubles and adds one): its padding takes them off. Twice the size or more is
            // an upsampling too many, which no padding should undo.
            let doubled = other[0] >= 2 * hw[0] && other[1] >= 2 * hw[1];
            let overshoot = outs.iter().zip(&sizes).find_map(|((cur, _), size)| {
                if doubled {
                    return None;
                }
                let Op::ConvTranspose(t) = &self.graph[cur.node].op else {
                    return None;
                };
                (*size == other)
                    .then(|| transposed_conv_fix(t, other, hw))
                    .flatten()
            });
            if let Some(fix) = overshoot {
                return Some(format!(
                    "the skip tensor `{skip}` is {}×{} and the transposed conv before this \
                     concat gives {}×{}: {fix}",
                    hw[0], hw[1], other[0], other[1]
                ));
            }
            let (said, fix, origin) = passed(&skip, other);
            let mut help = format!(
                "the skip tensor {said} is {}×{}, smaller than the other branch's {}×{}: a \
                 crop cannot make it larger; ",
                hw[0], hw[1], other[0], other[1]
            );
            if let Some(fix) = fix {
                help.push_str(&format!("{fix}, or "));
            }
            help.push_str(&format!(
                "the layers before this concat upsample once too often (or downsample once \
                 too few) since `{origin}` was named"
            ));
            return Some(help);
        }
        let here = input.and_then(Shape::spatial)?;
        // `crop(skip)` cuts to the concat's input size: the fix only where that is the size
        // the other branches give.
        if here != small {
            return None;
        }
        let larger: Vec<(usize, String, [u64; 2])> = c
            .branches
            .iter()
            .enumerate()
            .filter_map(|(i, b)| Some((i, named(b)?, sizes[i])))
            .filter(|(_, _, hw)| hw[0] >= small[0] && hw[1] >= small[1] && *hw != small)
            .collect();
        let (_, skip, big) = larger.first()?.clone();
        // The concat's branches written again, each larger skip `n` as `fix(n)`.
        let rewrite = |fix: &dyn Fn(&str) -> String| -> String {
            c.branches
                .iter()
                .enumerate()
                .map(
                    |(i, b)| match (larger.iter().find(|(j, _, _)| *j == i), b.body.is_empty()) {
                        (Some((_, n, _)), _) => fix(n),
                        (None, true) => "{}".to_string(),
                        (None, false) => named(b).unwrap_or_else(|| "{ … }".to_string()),
                    },
                )
                .collect::<Vec<_>>()
                .join(" ")
        };
        let rewritten = rewrite(&|n| format!("crop({n})"));
        // A whole factor of 2 or more: the skip was named before a downsampling, and a crop
        // would keep only its center; pooling it keeps all of it, at the other's size.
        let factor = [big[0] / small[0].max(1), big[1] / small[1].max(1)];
        let whole = big[0] % small[0].max(1) == 0
            && big[1] % small[1].max(1) == 0
            && factor.iter().all(|f| *f >= 2);
        let mut help = if whole {
            let kernel = if factor[0] == factor[1] {
                factor[0].to_string()
            } else {
                format!("[{}, {}]", factor[0], factor[1])
            };
            let pooled = rewrite(&|n| format!("{{ {n} maxpool({kernel}) }}"));
            let (said, fix, _) = passed(&skip, small);
            // The smaller branch is the concat's input as it came (`{}`), not made by an
            // upsampling: a decoder or FPN may have meant to upsample it to the skip's size.
            let input_small = c
                .branches
                .iter()
                .zip(&sizes)
                .zip(outs)
                .any(|((b, hw), (cur, _))| {
                    b.body.is_empty()
                        && *hw == small
                        && !matches!(
                            self.graph[cur.node].op,
                            Op::Upsample { .. } | Op::ConvTranspose(_)
                        )
                });
            let upsampled = if !input_small {
                String::new()
            } else if factor[0] == factor[1] {
                format!(
                    ", or upsample this tensor to the skip's size before the concat, \
                     `upsample({})` (`upsample(size=[{skip}.h, {skip}.w])` fits any size)",
                    factor[0]
                )
            } else {
                format!(
                    ", or upsample this tensor to the skip's size before the concat, \
                     `upsample(size=[{skip}.h, {skip}.w])`"
                )
            };
            format!(
                "the skip tensor {said} is {}×{}, {}× the other branch's {}×{}: {}pool it to \
                 that size, `concat {{ {} }}`, or name the skip after the layers that \
                 downsample{upsampled}; a crop (`concat {{ {} }}`) would keep only its center",
                big[0],
                big[1],
                if factor[0] == factor[1] {
                    factor[0].to_string()
                } else {
                    format!("{}×{}", factor[0], factor[1])
                },
                small[0],
                small[1],
                fix.map(|f| format!("{f}; or ")).unwrap_or_default(),
                pooled,
                rewritten
            )
        } else {
            format!(
                "the skip tensor `{skip}` is {}×{} and the other branch {}×{}: crop it to the \
                 center, `concat {{ {} }}` (U-Net's copy-and-crop)",
                big[0], big[1], small[0], small[1], rewritten
            )
        };
        // The branch that came out small: a transposed conv whose output_pad would close the
        // gap (less than its stride), an upsampling by a factor that can take the skip's size.
        let smaller = sizes.iter().position(|hw| *hw == small)?;
        if let Op::Upsample {
            to: crate::ir::UpsampleTo::Scale(_),
            mode,
        } = &self.graph[outs[smaller].0.node].op
        {
            let bilinear = match mode {
                crate::ir::UpsampleMode::Nearest => "",
                crate::ir::UpsampleMode::Bilinear {
                    align_corners: false,
                } => ", bilinear=true",
                crate::ir::UpsampleMode::Bilinear {
                    align_corners: true,
                } => ", bilinear=true, align_corners=true",
            };
            help.push_str(&format!(
                ", or let the upsampling give {}×{}, `upsample(size=[{skip}.h, {skip}.w]{bilinear})` \
                 in place of its factor",
                big[0], big[1]
            ));
        }
        if let Op::ConvTranspose(t) = &self.graph[outs[smaller].0.node].op {
            let gap = [
                big[0] - small[0] + t.output_pad[0],
                big[1] - small[1] + t.output_pad[1],
            ];
            if (0..2).all(|a| gap[a] < t.stride[a]) {
                let pad = if gap[0] == gap[1] {
                    gap[0].to_string()
                } else {
                    format!("[{}, {}]", gap[0], gap[1])
                };
                let before = self
                    .graph
                    .edges_directed(outs[smaller].0.node, petgraph::Direction::Incoming)
                    .find(|e| *e.weight() == 0)
                    .and_then(|e| {
                        self.graph[petgraph::visit::EdgeRef::source(&e)]
                            .shape
                            .as_ref()
                            .and_then(Shape::spatial)
                    });
                // The input times the stride is the skip's size: the transposed conv's own
                // padding falls short (kernel 3, stride 2, pad=1 gives 2n − 1), and
                // output_pad is the fix; else a stride before it rounded an odd size down.
                if before
                    .is_some_and(|n| (0..2).all(|a| n[a].checked_mul(t.stride[a]) == Some(big[a])))
                {
                    return Some(format!(
                        "the transposed conv gives {}×{} where the skip tensor `{skip}` is \
                         {}×{}, its input times the stride: `output_pad={pad}` makes it that \
                         (its padding takes off more than its kernel adds)",
                        small[0], small[1], big[0], big[1]
                    ));
                }
                // In a block, the pad one call needs may not be another's (a U-Net's `up`
                // block at each scale): the expression that reads it off the skip fits all.
                // Only where the transposed conv is the block's own (made in this call),
                // so that `skip` is a name where it stands.
                let own_block = self
                    .call_stack
                    .last()
                    .zip(self.call_first_nodes.last())
                    .filter(|(_, first)| outs[smaller].0.node.index() >= **first)
                    .map(|(call, _)| call);
                match own_block {
                    Some((block, _)) => help.push_str(&format!(
                        ", or let the transposed conv give {}×{} with `output_pad={}` ({pad} in \
                         this call: a stride before it rounded an odd size down; the \
                         expression fits every call of `{block}`)",
                        big[0],
                        big[1],
                        output_pad_expression(t, &skip, big[0] == big[1] && small[0] == small[1])
                    )),
                    None => help.push_str(&format!(
                        ", or let the transposed conv give {}×{} with `output_pad={pad}` (a \
                         stride before it rounded an odd size down)",
                        big[0], big[1]
                    )),
                }
            }
        }
        Some(help)
    }

    /// Warns of an unbraced concat branch that is only an activation, dropout or batch norm
    /// after another branch: `concat { conv(64, 1) relu … }` reads as two branches, `conv`
    /// and `relu`, where the PyTorch habit meant one. So does an unbraced layer or block call
    /// on the line of the unbraced branch before it (`concat { conv(48, 1) conv(64, 5) }`
    /// reads as a sequence), except the layers that pick part of the input (`crop`, `slice`),
    /// which a sequence would not follow with another.
    fn warn_bare_branches(&mut self, c: &ast::Concat, frame: &Frame) {
        const SHAPE_KEEPING: [&str; 21] = [
            "relu",
            "mish",
            "scale",
            "prelu",
            "groupnorm",
            "instancenorm",
            "sigmoid",
            "tanh",
            "leaky_relu",
            "elu",
            "silu",
            "gelu",
            "relu6",
            "hardsigmoid",
            "hardswish",
            "softmax",
            "dropout",
            "batchnorm",
            "layernorm",
            "layer_scale",
            "channel_shuffle",
        ];
        let bare = |b: &ast::Branch| matches!(b.body.as_slice(), [st] if st.span == b.span);
        let shape_keeping = |b: &ast::Branch| {
            matches!(b.body.as_slice(), [st] if matches!(&st.kind,
                StmtKind::Call(c) if SHAPE_KEEPING.contains(&c.name.name.as_str())))
        };
        // Three or more unbraced calls on one line (`conv(96, 1) relu conv(128, 3) relu`) read
        // as one branch written in a row: one warning for the line, whose fix braces it all
        // (the pairs within it would each be braced alone, making other branches).
        // Layers and blocks that compute from the branch's input: not a named tensor (a
        // concat of skips, `concat { e1 e2 e3 }`), nor a layer that picks a part of it.
        let call_of = |b: &ast::Branch| match b.body.as_slice() {
            [st] if st.span == b.span => match &st.kind {
                StmtKind::Call(call)
                    if (layers::lookup(&call.name.name).is_some()
                        || self.defs.is_block(&call.name.name))
                        && !matches!(call.name.name.as_str(), "crop" | "slice")
                        && !call.args.iter().any(|a| {
                            matches!(&a.value.kind, ast::ExprKind::Var(n)
                                if frame.env.get(n).is_none() && frame.tensors.contains_key(n))
                        }) =>
                {
                    Some(quoted_call(call))
                }
                _ => None,
            },
            _ => None,
        };
        let mut in_a_line = vec![false; c.branches.len()];
        // (where, warning), told in the order of the source.
        let mut found: Vec<(u32, Diagnostic)> = Vec::new();
        let mut start = 0;
        while start < c.branches.len() {
            let mut end = start + 1;
            while end < c.branches.len()
                && c.branches[end].shares_line
                && call_of(&c.branches[end]).is_some()
                && call_of(&c.branches[start]).is_some()
            {
                end += 1;
            }
            if end - start >= 3 {
                let run = &c.branches[start..end];
                let calls: Vec<String> = run.iter().filter_map(call_of).collect();
                let line = calls.join(" ");
                let n = calls.len();
                let mut d = Diagnostic::warning(
                    "cnnc::elab::bare_branch",
                    format!(
                        "these {n} calls on one line are {n} concat branches: each statement \
                         not in braces is a branch of its own"
                    ),
                )
                .label(
                    Span::new(
                        run[0].span.file,
                        run[0].span.start as usize,
                        run[n - 1].span.end as usize,
                    ),
                    format!("{n} branches"),
                );
                d = d.help(format!(
                    "if they are one branch, brace the line: `{{ {line} }}`; if they are \
                     several, brace each"
                ));
                found.push((run[0].span.start, d));
                in_a_line[start..end].fill(true);
            }
            start = end;
        }
        for (k, pair) in c.branches.windows(2).enumerate() {
            let (before, branch) = (&pair[0], &pair[1]);
            if in_a_line[k] && in_a_line[k + 1] && branch.shares_line {
                continue;
            }
            let [stmt] = branch.body.as_slice() else {
                continue;
            };
            let StmtKind::Call(call) = &stmt.kind else {
                continue;
            };
            let layer = call.name.name.as_str();
            // A braced branch spans its braces; a bare statement spans only itself. Only a
            // bare statement after another bare one is the slip: a braced branch is closed.
            if !bare(branch) || !bare(before) {
                continue;
            }
            let computes = |name: &str| {
                (layers::lookup(name).is_some() || self.defs.is_block(name))
                    && !matches!(name, "crop" | "slice")
            };
            // A block passed a tensor starts from it, as `crop(NAME)` does (an FPN's heads,
            // `head(p5, 8) head(p4, 4)`): no continuation of the branch before.
            let passes_tensor = call.args.iter().any(|a| {
                matches!(&a.value.kind, ast::ExprKind::Var(n)
                    if frame.env.get(n).is_none() && frame.tensors.contains_key(n))
            });
            if passes_tensor && self.defs.is_block(layer) {
                continue;
            }
            // A call after a call (a statement is not quoted in a fix), unless the one before
            // is shape-keeping and was itself warned of as a branch of its own, after a bare
            // branch (`conv relu conv relu`: the middle pair is no slip of its own).
            let before_warned = k >= 1 && shape_keeping(before) && bare(&c.branches[k - 1]);
            let previous_computes = matches!(&before.body[0].kind,
                StmtKind::Call(c) if computes(&c.name.name))
                && !before_warned;
            // A named tensor and a layer on one line (`concat { {} a conv(8, 1) }`) read as
            // the layer applied to it, as they are in a shortcut; in a concat they are two.
            let previous_is_tensor = matches!(&before.body[0].kind,
                StmtKind::Call(c) if !c.parens && c.args.is_empty()
                    && layers::lookup(&c.name.name).is_none()
                    && !self.defs.is_block(&c.name.name));
            let on_one_line =
                branch.shares_line && computes(layer) && (previous_computes || previous_is_tensor);
            if !SHAPE_KEEPING.contains(&layer) && !on_one_line {
                continue;
            }
            let layer_text = quoted_call(call);
            let previous = match &before.body[0].kind {
                StmtKind::Call(c) => quoted_call(c),
                _ => "…".to_string(),
            };
            let message = if SHAPE_KEEPING.contains(&layer) {
                format!(
                    "this concat branch is `{layer}` alone: each statement not in braces is a \
                     branch of its own"
                )
            } else {
                format!(
                    "`{previous}` and `{layer_text}` on one line are two concat branches: each \
                     statement not in braces is a branch of its own"
                )
            };
            let help = if SHAPE_KEEPING.contains(&layer) {
                format!(
                    "to apply `{layer}` within the branch before, brace the two: \
                     `{{ {previous} {layer_text} }}`; if a branch of `{layer}` alone is meant, \
                     write it as `{{ {layer_text} }}`"
                )
            } else {
                format!(
                    "if `{layer_text}` follows `{previous}` in one branch, brace the two: \
                     `{{ {previous} {layer_text} }}`; if they are two branches, brace each, \
                     `{{ {previous} }} {{ {layer_text} }}`, or put each on a line of its own"
                )
            };
            found.push((
                before.span.start,
                Diagnostic::warning("cnnc::elab::bare_branch", message)
                    .label(branch.span, "a branch of its own")
                    .label(before.span, "the branch before, not followed by it")
                    .help(help),
            ));
        }
        found.sort_by_key(|(at, _)| *at);
        for (_, d) in found {
            self.diags.push(d);
        }
    }

    /// A concat of one branch is that branch alone: an Inception module's branches written
    /// as a repeat (`concat { repeat 3 { conv(8, 1) } }`, one branch of three convs in a
    /// row), or the `{}` of a DenseNet layer with the layers left outside. A branch that
    /// starts from a named tensor is `dropped_tensor`'s or `crop_outside_concat`'s to report.
    fn warn_single_branch(&mut self, branch: &ast::Branch, frame: &Frame) {
        let from_name = |st: &ast::Stmt| match &st.kind {
            StmtKind::Call(call) => {
                frame.tensors.contains_key(&call.name.name) || call.name.name == "crop"
            }
            _ => false,
        };
        if branch.body.first().is_some_and(from_name) {
            return;
        }
        let repeat = branch
            .body
            .iter()
            .find(|st| matches!(st.kind, StmtKind::Repeat(_)));
        let help = match repeat {
            Some(_) => "a repeat inside a branch's braces runs its iterations one after \
                        another in that branch; for a branch per iteration write the repeat \
                        as the branch itself, without braces: `concat { repeat k in [1, 3, \
                        5] { conv(8, k, pad=k / 2) } }`"
                .to_string(),
            None if branch.body.is_empty() => "`concat { {} }` is its input alone: add the \
                 other branches, e.g. `concat { {} { conv(32, 3, pad=1) } }` (DenseNet's \
                 layer), or remove the concat"
                .to_string(),
            None => "add the other branches (`{}` for the input itself, as DenseNet's layer \
                     does), or remove the concat and keep the branch's layers"
                .to_string(),
        };
        self.diags.push(
            Diagnostic::warning(
                "cnnc::elab::single_branch",
                "this concat has one branch: it joins nothing",
            )
            .label(branch.span, "the only branch")
            .help(help),
        );
    }

    /// `gate { body }`: the input times body(input). The body's layers are named in the
    /// enclosing scope, as a residual body's are; the product is `mul<k>`.
    /// A `residual { }` or `gate { }` whose body is empty: the input meets itself, surely
    /// not what was meant (layers left out, or moved out by an edit).
    fn warn_empty_body(&mut self, span: Span, keyword: &str, does: &str) {
        self.diags.push(
            Diagnostic::warning(
                "cnnc::elab::empty_body",
                format!("this `{keyword}` has an empty body: it {does}"),
            )
            .label(keyword_span(span, keyword), "empty body")
            .help(format!(
                "put the layers of the branch inside the braces, `{keyword} {{ conv(…) … }}`, \
                 or remove the `{keyword}`"
            )),
        );
    }

    fn gate(
        &mut self,
        g: &'a ast::Gate,
        span: Span,
        cur: Cur,
        frame: &mut Frame,
        scope: &mut Scope,
    ) -> Result<Cur, Abort> {
        self.flush_dilation_run();
        if g.body.is_empty() {
            self.warn_empty_body(span, "gate", "multiplies its input by itself (x · x)");
        }
        let body_first = self.graph.node_count();
        let body = self.body(&g.body, cur.clone(), frame, scope)?;
        self.flush_dilation_run();
        let body_node = body.node;
        let name = scope.fresh("mul");
        let keyword = keyword_span(span, "gate");
        let before = self.diags.0.len();
        let (x, gate) = (cur.shape.clone(), body.shape.clone());
        let body_known = body.shape.is_some();
        let mut out = self.merge(Op::Mul, name, span, &[(cur, keyword), (body, g.body_span)])?;
        // A gate gives its input's shape whatever its body did: after an error in the body
        // (reported there), checking goes on with it.
        if !body_known && out.shape.is_none() {
            if let Some(x) = &x {
                out.shape = Some(x.clone());
                self.graph[out.node].shape = Some(x.clone());
            }
        }
        if let (true, Some(x), Some(gate)) = (self.diags.0.len() > before, x, gate) {
            if let Some(note) = ends_with_in_query(&g.body, &x, &gate) {
                if let Some(d) = self.diags.0.last_mut() {
                    d.help = Some(format!("{note}; {}", d.help.take().unwrap_or_default()));
                }
            }
            // A per-place gate (a spatial attention map) that lost pixels to a conv without
            // the padding that keeps the size: that layer, as a residual body's.
            let fixes = match (x.spatial(), gate.spatial()) {
                (Some(here), Some(given)) if given != here && given != [1, 1] => {
                    self.body_padding_fixes(body_node, body_first, here)
                }
                _ => Vec::new(),
            };
            if let (false, Some(d)) = (fixes.is_empty(), self.diags.0.last_mut()) {
                if d.code == "cnnc::shape::gate_mismatch" {
                    if let Some(l) = d.labels.iter_mut().find(|l| l.span == g.body_span) {
                        l.text = format!("{}: {}", l.text, PadFix::say(&fixes));
                    }
                    d.help = Some(format!(
                        "give the layers named in the gate's label the padding shown \
                         (`pad=d·(k−1)/2` for a k×k kernel of dilation d, or `pad=same`), so \
                         that it keeps the input's size; {}",
                        d.help.take().unwrap_or_default()
                    ));
                }
            }
        }
        Ok(out)
    }

    /// `output NAME { body }`: the body's result becomes an output of the model named by
    /// the statement's scope; the statement passes its input on unchanged.
    fn output(
        &mut self,
        o: &'a ast::Output,
        cur: Cur,
        frame: &mut Frame,
        scope: &mut Scope,
    ) -> Result<Cur, Abort> {
        let name = format!("{}{}", scope.prefix, o.name.name);
        let tensor = frame
            .tensors
            .get(&o.name.name)
            .filter(|_| o.name.name != "input")
            .map(|t| t.span);
        let refused = name == "input"
            || name == "output"
            || tensor.is_some()
            || self.named_outputs.iter().any(|(d, _)| d.name == name);
        if let Some(tensor) = tensor {
            self.diags.push(
                Diagnostic::error(
                    "cnnc::elab::duplicate_definition",
                    format!(
                        "the output `{}` has the name of a tensor named before it",
                        o.name.name
                    ),
                )
                .label(o.name.span, "this name")
                .label(tensor, "the tensor")
                .help(if o.body.is_empty() {
                    // `… as aux` then `output aux {}`: that tensor was meant as the output.
                    format!(
                        "an output and a tensor of one name would read as one thing: rename \
                         one of them; `output {0}_out {{ {0} }}` outputs the tensor named \
                         `{0}`, and `output {0} {{ … }}` around the layers that make it names \
                         the output `{0}` (then drop their `as {0}`)",
                        o.name.name
                    )
                } else {
                    format!(
                        "an output and a tensor of one name would read as one thing: rename \
                         one of them (`output {0}_out {{ … }}`)",
                        o.name.name
                    )
                }),
            );
        } else if name == "input" || name == "output" {
            self.diags.push(
                Diagnostic::error(
                    "cnnc::elab::duplicate_definition",
                    format!(
                        "`{name}` names the model's {}; an output cannot take that name",
                        if name == "input" {
                            "input"
                        } else {
                            "main output (its last tensor)"
                        }
                    ),
                )
                .label(o.name.span, "this name")
                .help("pick another name for the output, e.g. `aux1`"),
            );
        } else if let Some((first, _)) = self.named_outputs.iter().find(|(d, _)| d.name == name) {
            let d = if first.span == o.name.span {
                Diagnostic::error(
                    "cnnc::elab::duplicate_definition",
                    format!("the output `{name}` is declared again in every iteration"),
                )
                .label(o.name.span, "declared in each iteration of a repeat")
                .help(
                    "an output has one name: declare it outside the repeat, or in a block, \
                     where each call's output takes the call's name (`stage1.aux`, \
                     `stage2.aux`)",
                )
            } else {
                Diagnostic::error(
                    "cnnc::elab::duplicate_definition",
                    format!("two outputs are named `{name}`"),
                )
                .label(o.name.span, "named again here")
                .label(first.span, "the first")
                .help("give each output a name of its own")
            };
            self.diags.push(d);
        }
        if !refused {
            frame.outputs.insert(o.name.name.clone(), o.name.span);
        }
        self.flush_dilation_run();
        let first_node = self.graph.node_count();
        let mut sub = Scope::new(format!("{name}."));
        let out = self.body(&o.body, cur.clone(), frame, &mut sub)?;
        self.flush_dilation_run();
        let made = first_node..self.graph.node_count();
        if refused {
            self.refused_outputs.push(made);
            return Ok(cur);
        }
        self.named_outputs.push((
            NamedOutput {
                name,
                node: out.node,
                span: o.name.span,
            },
            made,
        ));
        Ok(cur)
    }

    /// Refuses an output whose name is a layer's or a scope's outside its body (`concat1`,
    /// the name of a block's call): the ONNX output, or its layers, would share names.
    fn check_output_names(&mut self) {
        if self.named_outputs.is_empty() {
            return;
        }
        // Each name and scope (`a.b.c`: `a`, `a.b`, `a.b.c`) with the nodes that have it, in
        // index order; the nodes of refused outputs' bodies left out. One pass over the
        // nodes, not one per output.
        let mut by_scope: HashMap<&str, Vec<usize>> = HashMap::new();
        for n in self.graph.node_indices() {
            if self.refused_outputs.iter().any(|r| r.contains(&n.index())) {
                continue;
            }
            let name = self.graph[n].name.as_str();
            let ends = name.match_indices('.').map(|(i, _)| i).chain([name.len()]);
            for end in ends {
                by_scope.entry(&name[..end]).or_default().push(n.index());
            }
        }
        let mut clashes = Vec::new();
        for (o, made) in &self.named_outputs {
            // The first node outside the output's own body with its name or scope.
            let clash = by_scope.get(o.name.as_str()).and_then(|nodes| {
                let before = nodes.first().filter(|&&i| i < made.start);
                let after = nodes.get(nodes.partition_point(|&i| i < made.end));
                before.or(after).map(|&i| NodeIndex::new(i))
            });
            if let Some(n) = clash {
                let node = &self.graph[n];
                // `stage1`: the scope of the first call of the block `stage`.
                let last = o.name.rsplit('.').next().unwrap_or(&o.name);
                let base = last
                    .trim_end_matches(|c: char| c.is_ascii_digit())
                    .trim_end_matches('_');
                let help = if base != last && self.defs.is_block(base) {
                    format!(
                        "`{last}` is the scope of a call of the block `{base}` (its layers \
                         are `{last}.…`): pick another name for the output"
                    )
                } else {
                    "an output's name is also its layers' scope (`aux1.linear1`): pick one \
                     that no layer, block call or concat of the model takes"
                        .to_string()
                };
                clashes.push(
                    Diagnostic::error(
                        "cnnc::elab::duplicate_definition",
                        format!(
                            "the output `{}` has the name of {}",
                            o.name,
                            if node.name == o.name {
                                format!("the layer `{}`", node.name)
                            } else {
                                format!("the scope of the layer `{}`", node.name)
                            }
                        ),
                    )
                    .label(o.span, "this name")
                    .label(node.span, format!("`{}`", node.name))
                    .help(help),
                );
            }
        }
        self.diags.0.extend(clashes);
    }

    fn residual(
        &mut self,
        r: &'a ast::Residual,
        span: Span,
        cur: Cur,
        frame: &mut Frame,
        scope: &mut Scope,
    ) -> Result<Cur, Abort> {
        self.flush_dilation_run();
        // `residual if cond { … }` with cond false: the body alone, its layers named as in
        // the sum. A condition that could not be evaluated (reported) goes on with the body
        // alone too, so the body's shape change is not reported again as a mismatch.
        if let Some(cond) = &r.cond {
            if self.eval_bool(cond, frame, &cur) != Some(true) {
                return self.body(&r.body, cur, frame, scope);
            }
        }
        // The shortcut's condition reads the statement's input, and its scope is numbered
        // before the body's (source order: an outer residual's shortcut is `shortcut1` and
        // one nested in its body `shortcut2`).
        let apply = r.shortcut.as_ref().map(|s| match &s.cond {
            Some(cond) => self.eval_bool(cond, frame, &cur),
            None => Some(true),
        });
        // With a shortcut of its own (`residual { } shortcut { conv(…) }`), x + f(x) is
        // meant; with none, an empty one or one whose condition is false here, it is x + x.
        if r.body.is_empty()
            && (r.shortcut.as_ref().is_none_or(|s| s.body.is_empty()) || apply == Some(Some(false)))
        {
            self.warn_empty_body(span, "residual", "adds its input to itself (2 · x)");
        }
        let short_scope = match apply {
            Some(Some(true)) => Some(scope.fresh("shortcut") + "."),
            _ => None,
        };
        self.residual_bodies += 1;
        let body_first = self.graph.node_count();
        let body = self.body(&r.body, cur.clone(), frame, scope);
        self.flush_dilation_run();
        self.residual_bodies -= 1;
        let body = body?;
        // The identity: no shortcut written, or its condition false (a written shortcut that
        // names the input, `shortcut { x }`, is not called the identity).
        // The shortcut's own nodes come after every node before it: what a shortcut that
        // starts from a named tensor has (`shortcut { a }`) is told apart from what made `a`.
        let shortcut_first = self.graph.node_count();
        let (short, short_span, short_is_identity) = match &r.shortcut {
            Some(s) => {
                match apply.flatten() {
                    Some(true) => {
                        let mut sub = Scope::new(short_scope.expect("numbered above"));
                        // A shortcut joins the body as a concat branch joins the others: a
                        // `crop(x)` there is the skip connection itself.
                        self.concat_depth += 1;
                        let short = self.body(&s.body, cur.clone(), frame, &mut sub);
                        self.concat_depth -= 1;
                        (short?, s.span, false)
                    }
                    Some(false) => (cur.clone(), s.span, true),
                    None => (unknown(cur.clone()), s.span, false),
                }
            }
            None => (cur.clone(), keyword_span(span, "residual"), true),
        };
        self.flush_dilation_run();
        let name = scope.fresh("add");
        let inputs = [(body, r.body_span), (short, short_span)];
        let before = self.diags.0.len();
        let mut out = self.merge(Op::Add, name, span, &inputs)?;
        // After an error inside the body (reported there), the sum has the shortcut's shape,
        // the one the body was written to match: checking goes on with it.
        if let (None, None, Some(short)) =
            (&out.shape, &inputs[0].0.shape, inputs[1].0.shape.as_ref())
        {
            out.shape = Some(short.clone());
            self.graph[out.node].shape = Some(short.clone());
        }
        // Add a residual-specific help: the projection shortcut that would fix it.
        if self.diags.0.len() > before {
            let has_conv = self.op_made_since(shortcut_first, inputs[1].0.node, |op| {
                matches!(op, Op::Conv(_))
            });
            let has_pool = self.op_made_since(shortcut_first, inputs[1].0.node, |op| {
                matches!(op, Op::MaxPool(_) | Op::AvgPool(_))
            });
            let body_bn = self.op_between(cur.node, inputs[0].0.node, |op| {
                matches!(op, Op::BatchNorm { .. })
            });
            let block_params = self.block_params(frame);
            let padding_fixes = inputs[1]
                .0
                .shape
                .as_ref()
                .and_then(Shape::spatial)
                .map(|t| (t, self.body_padding_fixes(inputs[0].0.node, body_first, t)));
            // A body short of padding (or striding again) is the one at fault: checking goes
            // on with the shortcut's shape, the one the body was meant to give, so that the
            // errors after it have the numbers they will have once it is fixed.
            let body_at_fault = padding_fixes.as_ref().is_some_and(|(_, f)| !f.is_empty());
            if let (true, Some(short), Some(body)) = (
                body_at_fault,
                inputs[1].0.shape.as_ref(),
                inputs[0].0.shape.as_ref(),
            ) {
                if short.channels() == body.channels() && short.rank() == body.rank() {
                    out.shape = Some(short.clone());
                    self.graph[out.node].shape = Some(short.clone());
                }
            }
            // The strided layers of the body after its first, where striding once gives the
            // shortcut's size: with their kinds and places.
            let stride_repeats: Vec<(Span, &'static str)> = inputs[1]
                .0
                .shape
                .as_ref()
                .and_then(Shape::spatial)
                .map(|t| self.body_stride_repeats(inputs[0].0.node, body_first, t))
                .unwrap_or_default()
                .into_iter()
                .map(|n| (self.graph[n].span, self.graph[n].op.kind()))
                .collect();
            if let (Some(b), Some(x)) = (&inputs[0].0.shape, &cur.shape) {
                if let Some(d) = self.diags.0.last_mut() {
                    if d.code == "cnnc::shape::residual_mismatch" {
                        let shortcut = r.shortcut.as_ref().and(inputs[1].0.shape.as_ref());
                        // `shortcut if cond` whose cond is false here (the identity), when a
                        // term the condition lacks explains the change.
                        let widened = match (&r.shortcut, short_is_identity) {
                            (Some(s), true) => s.cond.as_ref().and_then(|c| {
                                widen_condition_help(x, b, c, "shortcut if", "or", &block_params)
                            }),
                            _ => None,
                        };
                        let mut help = match shortcut {
                            _ if x.rank() != b.rank() => rank_change_help(x, b),
                            _ if widened.is_some() => widened.clone().unwrap_or_default(),
                            Some(_) if short_is_identity => format!(
                                "`shortcut if`'s condition is false in this call, so the \
                                 identity passes the input {x}, and the body gives {b}: the \
                                 condition must hold wherever the body changes the shape"
                            ),
                            Some(sc) => shortcut_help(x, b, sc, has_conv, has_pool, &block_params),
                            None => projection_help(x, b, r.shortcut.is_some()),
                        };
                        if r.shortcut.is_none() && x.rank() == b.rank() {
                            if let Some(better) =
                                block_projection_help(x, b, &block_params, body_bn)
                            {
                                help = better;
                            }
                        }
                        // `residual if cond` that holds where the body changes the shape, when
                        // a term the condition lacks explains the change.
                        let narrowed = match (&r.cond, &r.shortcut) {
                            (Some(c), None) if x.rank() == b.rank() => {
                                widen_condition_help(x, b, c, "residual if", "and", &block_params)
                            }
                            _ => None,
                        };
                        if let Some(narrowed) = narrowed {
                            help = narrowed;
                        } else if let Some(note) = ends_with_in_query(&r.body, x, b) {
                            help = format!("{note}; or {help}");
                        }
                        // A body that loses pixels to a conv or pooling without the padding
                        // that keeps the size (ResNet's 3×3 conv without `pad=1`): that
                        // layer, whatever the shortcut or its condition.
                        if let Some((target, fixes)) = &padding_fixes {
                            let target = *target;
                            if !fixes.is_empty() && b.spatial() != Some(target) {
                                if let Some(l) = d.labels.first_mut() {
                                    l.text = format!("{}: {}", l.text, PadFix::say(fixes));
                                }
                                let padding = format!(
                                    "the body must give the {}'s {}×{}: give the layers named \
                                     in its label the padding shown (`pad=d·(k−1)/2` for a k×k \
                                     kernel of dilation d, or `pad=same`), as a ResNet block's \
                                     3×3 convs have `pad=1`",
                                    if short_is_identity {
                                        "identity"
                                    } else {
                                        "shortcut"
                                    },
                                    target[0],
                                    target[1],
                                );
                                // The channels differing too: their fix, as it would be
                                // said of the body once padded.
                                let short_shape = inputs[1].0.shape.as_ref();
                                help = match short_shape {
                                    Some(sc) if sc.channels() != b.channels() => {
                                        let padded =
                                            Shape(vec![b.channels(), target[0], target[1]]);
                                        let channels = match (&r.cond, &r.shortcut) {
                                            (Some(c), None) => widen_condition_help(
                                                x,
                                                &padded,
                                                c,
                                                "residual if",
                                                "and",
                                                &block_params,
                                            ),
                                            (_, Some(s)) if short_is_identity => {
                                                s.cond.as_ref().and_then(|c| {
                                                    widen_condition_help(
                                                        x,
                                                        &padded,
                                                        c,
                                                        "shortcut if",
                                                        "or",
                                                        &block_params,
                                                    )
                                                })
                                            }
                                            (_, Some(_)) => Some(shortcut_help(
                                                x,
                                                &padded,
                                                sc,
                                                has_conv,
                                                has_pool,
                                                &block_params,
                                            )),
                                            (_, None) => Some(
                                                block_projection_help(
                                                    x,
                                                    &padded,
                                                    &block_params,
                                                    body_bn,
                                                )
                                                .unwrap_or_else(|| {
                                                    projection_help(x, &padded, false)
                                                }),
                                            ),
                                        };
                                        format!(
                                            "{padding}; the channels differ too ({} and {}): {}",
                                            b.channels(),
                                            sc.channels(),
                                            channels.unwrap_or_else(|| {
                                                "the shortcut must give the body's".to_string()
                                            })
                                        )
                                    }
                                    _ => padding,
                                };
                            }
                        }
                        // A body that strides again where the shortcut strides once.
                        if !stride_repeats.is_empty() && !short_is_identity {
                            // Before the call labels, beside the body's own.
                            let at = d
                                .labels
                                .iter()
                                .position(|l| l.call)
                                .unwrap_or(d.labels.len());
                            for (i, (span, kind)) in stride_repeats.iter().enumerate() {
                                d.labels.insert(
                                    at + i,
                                    Label {
                                        span: *span,
                                        text: format!("this {kind} strides again"),
                                        call: false,
                                    },
                                );
                            }
                            let target = inputs[1].0.shape.as_ref().and_then(Shape::spatial);
                            let size = |s: Option<[u64; 2]>| {
                                s.map_or(String::new(), |[h, w]| format!("{h}×{w}"))
                            };
                            help = format!(
                                "the body strides {}, {} → {}, where the shortcut strides \
                                 once, to {}: give the {} labelled `stride=1` (ResNet's block \
                                 strides in its first conv alone)",
                                match stride_repeats.len() {
                                    1 => "twice".to_string(),
                                    n => format!("{} times", n + 1),
                                },
                                size(x.spatial()),
                                size(b.spatial()),
                                size(target),
                                if stride_repeats.len() == 1 {
                                    "layer"
                                } else {
                                    "layers"
                                },
                            );
                        }
                        d.help = Some(help);
                        if short_is_identity {
                            if let Some(l) = d.labels.get_mut(1) {
                                l.text = format!("the identity shortcut passes the input {x}");
                            }
                        }
                    }
                }
            }
        }
        Ok(out)
    }

    /// Adds a node with several inputs (concat, add), labelling the inputs on error.
    fn merge(
        &mut self,
        op: Op,
        name: String,
        span: Span,
        inputs: &[(Cur, Span)],
    ) -> Result<Cur, Abort> {
        self.merge_labelled(op, name, span, inputs, &[])
    }

    /// [`Self::merge`], where some inputs are iterations of one repeat, at one place: their
    /// labels say which (`iterations[i]`).
    fn merge_labelled(
        &mut self,
        op: Op,
        name: String,
        span: Span,
        inputs: &[(Cur, Span)],
        iterations: &[Option<String>],
    ) -> Result<Cur, Abort> {
        let shapes: Option<Vec<&Shape>> = inputs.iter().map(|(c, _)| c.shape.as_ref()).collect();
        let result = shapes.as_ref().map(|s| rules::infer(&op, s));
        let node = self.add_node(name, op, span, inputs.iter().map(|(c, _)| c.node).collect())?;
        let shape = match result {
            Some(Ok(inf)) => {
                self.set_inferred(node, inf, span);
                self.graph[node].shape.clone()
            }
            Some(Err(e)) => {
                let recovered = shapes
                    .as_ref()
                    .and_then(|s| rules::recover(&self.graph[node].op, s, &e));
                let mut d = Diagnostic::error(e.code, e.message);
                for (slot, text) in e.input_labels {
                    let text = match iterations.get(slot) {
                        Some(Some(which)) => format!("{text}, {which}"),
                        _ => text,
                    };
                    d = d.label(inputs[slot].1, text);
                }
                if d.labels.is_empty() {
                    d = d.label(span, "in this statement");
                }
                if let Some(h) = e.help {
                    d = d.help(h);
                }
                self.diags.push(d);
                self.graph[node].shape = recovered.clone();
                recovered
            }
            None => None,
        };
        Ok(Cur { node, shape })
    }

    fn add_node(
        &mut self,
        name: String,
        op: Op,
        span: Span,
        inputs: Vec<NodeIndex>,
    ) -> Result<NodeIndex, Abort> {
        self.name_bytes = self.name_bytes.saturating_add(name.len());
        if self.name_bytes > MAX_NAME_BYTES {
            self.diags.push(
                Diagnostic::error(
                    "cnnc::elab::too_large",
                    format!(
                        "the model's layer names take more than {} ({} layers, calls nested \
                         {} deep)",
                        crate::shape::summary::bytes(MAX_NAME_BYTES as u64),
                        self.graph.node_count() - 1,
                        self.call_stack.len()
                    ),
                )
                .label(span, "the limit was reached here")
                .help(
                    "check the block calls: a block that calls another twice, nested, \
                     doubles the layers at each level",
                ),
            );
            return Err(Abort);
        }
        // The input node is no layer: up to MAX_NODES layers beside it.
        if self.graph.node_count() > MAX_NODES {
            self.diags.push(
                Diagnostic::error(
                    "cnnc::elab::too_large",
                    format!("the model expands to more than {MAX_NODES} layers"),
                )
                .label(span, "the limit was reached here")
                .help("check the repeat counts (and those of the blocks' calls)"),
            );
            return Err(Abort);
        }
        let node = self.graph.add_node(Node {
            name,
            op,
            span,
            shape: None,
            params: 0,
            macs: 0,
        });
        for (slot, input) in inputs.into_iter().enumerate() {
            self.graph.add_edge(input, node, slot);
        }
        Ok(node)
    }

    fn set_inferred(&mut self, node: NodeIndex, inf: rules::Inferred, span: Span) {
        // A `pad` layer just before: the padding it adds at the end is not lost input.
        let padded_end = self
            .graph
            .edges_directed(node, petgraph::Direction::Incoming)
            .find(|e| *e.weight() == 0)
            .and_then(
                |e| match &self.graph[petgraph::visit::EdgeRef::source(&e)].op {
                    Op::Pad { pads, .. } => Some(pads.end),
                    _ => None,
                },
            )
            .unwrap_or_default();
        for w in inf.warnings {
            if w.code == "cnnc::shape::unused_input"
                && (0..2).all(|a| w.unread_end[a] <= padded_end[a])
            {
                continue;
            }
            let mut d = Diagnostic::warning(w.code, w.message).label(span, "this layer");
            d.help = w.help;
            self.diags.push(d);
        }
        let n = &mut self.graph[node];
        n.shape = Some(inf.shape);
        n.params = inf.params;
        n.macs = inf.macs;
    }

    /// Marks the tensors whose sizes `exprs` read (`upsample(size=[e1.h, e1.w])`) as read:
    /// a tensor named for its size is no forgotten skip connection.
    fn mark_size_reads<'e>(
        &mut self,
        exprs: impl Iterator<Item = &'e ast::Expr>,
        frame: &mut Frame,
    ) {
        for e in exprs {
            ast::walk_expr(e, &mut |x| {
                if let ast::ExprKind::TensorQuery(name, _) = &x.kind {
                    if let Some(named) = frame.tensors.get_mut(name) {
                        self.note_read(named);
                    }
                }
            });
        }
    }

    /// Records that the tensor `named` was read (for `unused_name` and `name_reused`).
    fn note_read(&mut self, named: &mut Named) {
        named.used = true;
        self.names_read.insert(named.span);
        if named
            .iteration
            .is_some_and(|it| self.iterations.contains(&it))
        {
            self.read_within_iteration.insert(named.span);
        }
    }

    fn call(
        &mut self,
        call: &'a ast::Call,
        cur: Cur,
        frame: &mut Frame,
        scope: &mut Scope,
    ) -> Result<Cur, Abort> {
        let name = call.name.name.as_str();
        self.mark_size_reads(call.args.iter().map(|a| &a.value), frame);
        if let Some(spec) = layers::lookup(name) {
            let before = self.diags.0.len();
            let out = self.layer(spec, call, cur, frame, scope);
            self.explain_unknown_variables(before, frame, call.span);
            return out;
        }
        if let Some(block) = self.defs.blocks.get(name).copied() {
            let before = self.diags.0.len();
            let out = self.block_call(block, call, cur, frame, scope);
            self.explain_unknown_variables(before, frame, call.span);
            return out;
        }
        if let Some(named) = frame.tensors.get_mut(name) {
            self.note_read(named);
            let tensor = &named.cur;
            if call.parens {
                self.diags.push(
                    Diagnostic::error("cnnc::elab::argument_count", format!("`{name}` is a named tensor; it takes no arguments"))
                        .label(call.span, "here")
                        .help(format!("write `{name}` alone to use the tensor, or `crop({name})` to crop it to the current size")),
                );
                return Ok(unknown(cur));
            }
            self.flush_dilation_run();
            if tensor.node != cur.node {
                self.left_behind.push((
                    cur.node,
                    call.span,
                    Continued::Name(name.to_string(), self.concat_depth > 0),
                    self.call_stack.clone(),
                ));
            }
            return Ok(tensor.clone());
        }
        if self.named_in_skipped_iterations(name) {
            return Ok(unknown(cur));
        }
        // `block up(c, skip) { concat { skip {} } }` called with a number for `skip`.
        if let Some(value) = frame.env.get(name) {
            let block = self.call_stack.last().map(|(b, _)| *b);
            let param = block
                .and_then(|b| self.defs.blocks.get(b))
                .is_some_and(|def| def.params.iter().any(|p| p.name.name == name));
            let (whose, help) = match block {
                Some(b) if param => (
                    format!("a parameter of block `{b}`"),
                    format!(
                        "a parameter is a tensor when the call passes a tensor's name: name \
                         the tensor with `as` where the block is called and pass that name \
                         (`{b}(…, e1)`)"
                    ),
                ),
                _ => (
                    "a repeat's variable".to_string(),
                    "a repeat's variable is one of its values, never a tensor or a layer"
                        .to_string(),
                ),
            };
            self.diags.push(
                Diagnostic::error(
                    "cnnc::elab::unknown_layer",
                    format!(
                        "`{name}` is {whose}, here {}, not a layer or tensor",
                        value.describe()
                    ),
                )
                .label(call.name.span, "used as a layer")
                .help(help),
            );
            return Ok(unknown(cur));
        }
        // A name whose `as` was refused (reported there).
        if self.refused_names.contains(name) {
            return Ok(unknown(cur));
        }
        if let Some(d) = output_read_as_tensor(name, call.name.span, frame)
            .or_else(|| self.misplaced_name(name, call.name.span))
        {
            self.diags.push(d);
            return Ok(unknown(cur));
        }
        let tensors = frame.tensors.keys().map(String::as_str);
        self.diags.push(unknown_layer(call, self.defs, tensors));
        Ok(unknown(cur))
    }

    /// Whether a node whose op satisfies `is` lies on a path from `from` (excluded) to `to`.
    fn op_between(&self, from: NodeIndex, to: NodeIndex, is: impl Fn(&Op) -> bool) -> bool {
        self.op_upstream(to, |n| n == from, is)
    }

    /// Whether a node whose op satisfies `is` leads to `to` among the nodes made since the
    /// graph had `first` of them (the layers of one construct, whatever it started from): a
    /// shortcut with a projection, however written (a block, an `if`).
    fn op_made_since(&self, first: usize, to: NodeIndex, is: impl Fn(&Op) -> bool) -> bool {
        self.op_upstream(to, |n| n.index() < first, is)
    }

    /// Whether a node whose op satisfies `is` leads to `to` (itself included), walking back
    /// from it no further than the nodes where `stop` holds (excluded).
    fn op_upstream(
        &self,
        to: NodeIndex,
        stop: impl Fn(NodeIndex) -> bool,
        is: impl Fn(&Op) -> bool,
    ) -> bool {
        let mut stack = vec![to];
        let mut seen = HashSet::new();
        while let Some(n) = stack.pop() {
            if stop(n) || !seen.insert(n) {
                continue;
            }
            if is(&self.graph[n].op) {
                return true;
            }
            stack.extend(
                self.graph
                    .neighbors_directed(n, petgraph::Direction::Incoming),
            );
        }
        false
    }

    /// How much the layers from `from` to `to` downsample and upsample in all (the products
    /// of their strides and scales, per axis), along each layer's first input; `None` where
    /// a layer's factor is no whole number (an adaptive pooling) or `from` is not reached.
    fn scales_between(&self, from: NodeIndex, to: NodeIndex) -> Option<([u64; 2], [u64; 2])> {
        let (mut down, mut up) = ([1u64; 2], [1u64; 2]);
        let mut n = to;
        while n != from {
            let (d, u) = match &self.graph[n].op {
                Op::Conv(c) => (c.stride, [1, 1]),
                Op::MaxPool(p) | Op::AvgPool(p) => (p.stride, [1, 1]),
                Op::ConvTranspose(t) => ([1, 1], t.stride),
                Op::Upsample {
                    to: crate::ir::UpsampleTo::Scale(scale),
                    ..
                } => ([1, 1], *scale),
                Op::PixelShuffle {
                    factor,
                    unshuffle: false,
                } => ([1, 1], [*factor; 2]),
                Op::PixelShuffle {
                    factor,
                    unshuffle: true,
                } => ([*factor; 2], [1, 1]),
                Op::AdaptiveAvgPool { .. }
                | Op::GlobalAvgPool
                | Op::AdaptiveMaxPool { .. }
                | Op::GlobalMaxPool
                | Op::Input
                | Op::Upsample {
                    to: crate::ir::UpsampleTo::Size(_),
                    ..
                } => return None,
                // A crop's size is the tensor it was cropped to, not the skip it cuts: the
                // way back goes on from there (`concat { crop(e1) {} }` as a concat's first
                // branch).
                Op::Crop { .. } => {
                    n = *self.size_sources.get(&n)?;
                    continue;
                }
                _ => ([1, 1], [1, 1]),
            };
            for a in 0..2 {
                down[a] = down[a].checked_mul(d[a])?;
                up[a] = up[a].checked_mul(u[a])?;
            }
            n = self
                .graph
                .edges_directed(n, petgraph::Direction::Incoming)
                .min_by_key(|e| *e.weight())
                .map(|e| petgraph::visit::EdgeRef::source(&e))?;
        }
        Some((down, up))
    }

    /// Whether a pooling with `ceil=true` between `from` and `to` rounded a size up (a window
    /// left over past the last whole one), where floor rounding would have given one less.
    fn ceil_rounded_up_between(&self, from: NodeIndex, to: NodeIndex) -> bool {
        let mut stack = vec![to];
        let mut seen = HashSet::new();
        while let Some(n) = stack.pop() {
            if n == from || !seen.insert(n) {
                continue;
            }
            let inputs: Vec<NodeIndex> = self
                .graph
                .neighbors_directed(n, petgraph::Direction::Incoming)
                .collect();
            if let Op::MaxPool(p) | Op::AvgPool(p) = &self.graph[n].op {
                let input = inputs.first().and_then(|&i| self.graph[i].shape.as_ref());
                if let (true, Some([h, w])) = (p.ceil, input.and_then(|s| s.spatial())) {
                    let rounds = |a: usize, n: u64| {
                        let span = n + p.pads.begin[a] + p.pads.end[a];
                        span >= p.kernel[a] && !(span - p.kernel[a]).is_multiple_of(p.stride[a])
                    };
                    if rounds(0, h) || rounds(1, w) {
                        return true;
                    }
                }
            }
            stack.extend(inputs);
        }
        false
    }

    /// The integer arguments of the block being elaborated (none in a model's own body).
    fn block_params(&self, frame: &Frame) -> Vec<(String, i64)> {
        let Some((name, _)) = self.call_stack.last() else {
            return Vec::new();
        };
        let Some(block) = self.defs.blocks.get(name) else {
            return Vec::new();
        };
        block
            .params
            .iter()
            .filter_map(|p| match frame.env.get(&p.name.name) {
                Some(Value::Int(v)) => Some((p.name.name.clone(), *v)),
                _ => None,
            })
            .collect()
    }

    /// Whether any body (the model's, a block's) reads `name`: as a statement of its own or
    /// in `crop(name)`.
    fn read_in_source(&self, name: &str) -> bool {
        std::iter::once(&self.model.body[..])
            .chain(self.defs.blocks.values().map(|b| &b.body[..]))
            .any(|body| reads_name(body, name))
    }

    /// Whether `name` is named (`as`) in the iterations of a repeat that were skipped after
    /// it only met errors already reported: unknown, not missing, so its reads are silent.
    fn named_in_skipped_iterations(&self, name: &str) -> bool {
        let here: &[ast::Stmt] = match self.call_stack.last() {
            Some((block, _)) => match self.defs.blocks.get(block) {
                Some(def) => &def.body,
                None => return false,
            },
            None => &self.model.body,
        };
        find_alias(here, name).is_some_and(|named| {
            self.skipped_repeats
                .iter()
                .any(|r| r.file == named.file && r.start <= named.start && named.end <= r.end)
        })
    }

    /// When `name`, unknown where it is used, is the `as` of a tensor elsewhere: named later
    /// in the same body, or in another block or the model (names are local to their body).
    fn misplaced_name(&self, name: &str, used: Span) -> Option<Diagnostic> {
        let current = self.call_stack.last().map(|(block, _)| *block);
        let here: &[ast::Stmt] = match current {
            Some(block) => &self.defs.blocks.get(block)?.body,
            None => &self.model.body,
        };
        let error = |message: String| {
            Diagnostic::error("cnnc::elab::unknown_tensor", message).label(used, "used here")
        };
        if let Some(named) = find_alias(here, name) {
            let later = named.file == used.file && named.start > used.start;
            return Some(if later {
                error(format!("`{name}` is used before the statement that names it"))
                    .label(named, "named here, later")
                    .help("a tensor can be used only after its `as`: move the use below it, or name an earlier tensor")
            } else {
                error(format!("no tensor is named `{name}` here"))
                    .label(named, "named only here, in a part that did not run")
                    .help("this `as` is in an `if` branch not taken or a repeat of no iterations; name the tensor where it always runs")
            });
        }
        let mut elsewhere: Vec<(&str, Span)> = self
            .defs
            .blocks
            .iter()
            .filter(|(block, _)| Some(**block) != current)
            .filter_map(|(block, def)| find_alias(&def.body, name).map(|s| (*block, s)))
            .collect();
        elsewhere.sort_by_key(|(_, s)| (s.file, s.start));
        let (owner, named) = match (current, elsewhere.first()) {
            (_, Some(&(block, span))) => (format!("block `{block}`"), span),
            (Some(_), None) => (
                format!("model `{}`", self.model.name.name),
                find_alias(&self.model.body, name)?,
            ),
            (None, None) => return None,
        };
        let inside = match current {
            Some(block) => format!("block `{block}`"),
            None => format!("model `{}`", self.model.name.name),
        };
        let help = match current {
            // The caller's tensor (or another's the caller may have): passed in by name.
            Some(block) => format!(
                "a name is local to the block or model whose body makes it; to read a \
                 tensor of the caller here, give block `{block}` a parameter for it and pass \
                 the tensor by name where the block is called (`{block}(…, {name})`)"
            ),
            None => format!(
                "a name is local to the block or model whose body makes it, and a block gives \
                 back only its last tensor; to join that tensor, write the concat or residual \
                 inside {owner}"
            ),
        };
        Some(
            error(format!("`{name}` is a tensor of {owner}, not of {inside}"))
                .label(named, format!("named here, in {owner}"))
                .help(help),
        )
    }

    /// `batchnorm(momentum=0.9)`: Keras's and TensorFlow's convention (the weight of the
    /// running statistic), where PyTorch's and cnnc's momentum is the weight of the new
    /// batch, 0.1 by default: the running statistics would follow each batch.
    fn warn_keras_momentum(&mut self, momentum: f64, call: &ast::Call) {
        // 1 is PyTorch's "the last batch only", deliberate; Keras's values are 0.9, 0.99, …
        if momentum <= 0.5 || momentum >= 1.0 {
            return;
        }
        let Some(arg) = call
            .args
            .iter()
            .find(|a| a.name.as_ref().is_some_and(|n| n.name == "momentum"))
        else {
            return;
        };
        let pytorch = ((1.0 - momentum) * 1e6).round() / 1e6;
        self.diags.push(
            Diagnostic::warning(
                "cnnc::elab::keras_momentum",
                format!(
                    "batch norm momentum {momentum} weighs each new batch by {momentum}: the \
                     running statistics follow the last few batches"
                ),
            )
            .label(arg.span, "Keras's convention?")
            .help(format!(
                "cnnc's momentum is PyTorch's, the weight of the new batch (default 0.1); \
                 Keras's and TensorFlow's momentum={momentum} is momentum={pytorch} here"
            )),
        );
    }

    /// `upsample(size=[skip.h, skip.w])` on the main line where `skip` is smaller than the
    /// tensor here: a decoder given its skips in the wrong order (the shallow one first)
    /// resamples down, and the model checks with a smaller output than meant. In a concat
    /// branch or shortcut, resizing a tensor down to join another is meant (multi-scale
    /// fusion: `concat { {} { full upsample(size=[half.h, half.w]) } }`). (The shape rule's
    /// own `upsample_shrinks`, for a size of a few pixels, is not said twice.)
    fn warn_upsample_to_smaller_tensor(
        &mut self,
        call: &ast::Call,
        cur: &Cur,
        out: &Cur,
        from: usize,
    ) {
        if self.concat_depth > 0 {
            return;
        }
        let (Some([h, w]), Some([oh, ow])) = (
            cur.shape.as_ref().and_then(Shape::spatial),
            out.shape.as_ref().and_then(Shape::spatial),
        ) else {
            return;
        };
        if !(oh <= h && ow <= w && (oh, ow) != (h, w)) {
            return;
        }
        if self.diags.0[from..]
            .iter()
            .any(|d| d.code == "cnnc::shape::upsample_shrinks")
        {
            return;
        }
        let skip = call
            .args
            .iter()
            .find_map(|a| match (&a.name, &a.value.kind) {
                (Some(n), ast::ExprKind::List(items)) if n.name == "size" => match &items[0].kind {
                    ast::ExprKind::TensorQuery(t, _) => Some(t.clone()),
                    _ => None,
                },
                _ => None,
            });
        let Some(skip) = skip else {
            return;
        };
        self.diags.push(
            Diagnostic::warning(
                "cnnc::shape::upsample_shrinks",
                format!(
                    "`upsample` resamples {h}×{w} down to {oh}×{ow}, the size of `{skip}`, which \
                     is smaller than the tensor here"
                ),
            )
            .label(call.span, format!("takes {h}×{w} down to {oh}×{ow}"))
            .help(format!(
                "a decoder upsamples to the skip of the next larger scale: if `{skip}` is a \
                 skip connection, check that the skips are passed in the order the decoder \
                 meets them (the deepest first); a downsampling is a pooling or a strided \
                 conv, or allow the warning (`# cnnc: allow(upsample_shrinks)`) if a resize \
                 down is meant"
            )),
        );
    }

    fn layer(
        &mut self,
        spec: &'static LayerSpec,
        call: &'a ast::Call,
        cur: Cur,
        frame: &mut Frame,
        scope: &mut Scope,
    ) -> Result<Cur, Abort> {
        // crop(NAME) takes a tensor, not a value.
        if spec.name == "crop" {
            return self.crop(call, cur, frame, scope);
        }
        // `upsample(size=[skip.h, skip.w])`: the size is the tensor's at any input size,
        // which those two reads, alone, do not tie to the declared one.
        let size_source = (spec.name == "upsample")
            .then(|| size_of_named_tensor(call, frame))
            .flatten();
        let built = |diags: &mut Diagnostics| {
            layers::build(spec, call, &frame.env, cur.shape.as_ref(), diags)
        };
        let built = match &size_source {
            Some((_, read_spans)) => {
                let (op, reads) = super::value::record_size_reads(|| built(self.diags));
                for read in reads.into_iter().filter(|r| !read_spans.contains(r)) {
                    super::value::note_size_read(read);
                }
                op
            }
            None => built(self.diags),
        };
        let op = match built {
            Some(op) => op,
            None => return Ok(unknown(cur)),
        };
        self.track_dilation(&op, call.span);
        if let Op::BatchNorm { momentum, .. } = op {
            self.warn_keras_momentum(momentum, call);
        }
        let name = scope.fresh(spec.name);
        let before = self.diags.0.len();
        let groups = match &op {
            Op::Conv(a) => a.groups,
            Op::ConvTranspose(a) => a.groups,
            _ => 1,
        };
        let out = self.add_unary(name, op, call.span, &cur);
        // The shape rule's warning of a few-pixel size is of Keras's factor written as a
        // size: one read off a tensor (`skip.h`, `in.h`) is no factor (and the same size, in a
        // block called at every scale, is a resize with nothing to do at one of them).
        let size_read = size_source.is_some()
            || call.args.iter().any(|a| {
                a.name.as_ref().is_some_and(|n| n.name == "size") && reads_tensor_size(&a.value)
            });
        if out.is_ok() && size_read {
            let from = before.min(self.diags.0.len());
            let mut i = from;
            while i < self.diags.0.len() {
                if self.diags.0[i].code == "cnnc::shape::upsample_shrinks" {
                    self.diags.0.remove(i);
                } else {
                    i += 1;
                }
            }
        }
        if let (Ok(out), Some((source, _))) = (&out, size_source) {
            self.size_sources.insert(out.node, source);
            self.warn_upsample_to_smaller_tensor(call, &cur, out, before);
        }
        // A depthwise conv written `groups=in.c * t` after an expansion: `in.c` is already
        // the expanded count there, and the groups do not divide it.
        let groups_reads_in_c = call.args.iter().any(|a| {
            a.name.as_ref().is_some_and(|n| n.name == "groups")
                && reads_in_c(&a.value)
                && !matches!(&a.value.kind, ast::ExprKind::InQuery(q) if q == "c")
        });
        let input_channels = cur.shape.as_ref().map(|s| s.channels());
        if let (true, Some(c)) = (
            groups_reads_in_c,
            input_channels.filter(|c| !c.is_multiple_of(groups)),
        ) {
            if let Some(d) = self.diags.0[before..]
                .iter_mut()
                .find(|d| d.code == "cnnc::shape::groups")
            {
                let help = d.help.take().unwrap_or_default();
                d.help = Some(format!(
                    "{help}; `in.c` in `groups=…` is {c} here, the channels of the tensor this \
                     layer meets (after the layers before it): a depthwise conv after an \
                     expansion is `conv(in.c, …, groups=in.c)`, with `in.c` as its output \
                     channels too (each channel filtered on its own)"
                ));
            }
        }
        out
    }

    /// Adds a node with one input and infers its shape, reporting a rule error at `span`.
    fn add_unary(&mut self, name: String, op: Op, span: Span, input: &Cur) -> Result<Cur, Abort> {
        let node = self.add_node(name, op, span, vec![input.node])?;
        let Some(shape) = &input.shape else {
            return Ok(Cur { node, shape: None });
        };
        match rules::infer(&self.graph[node].op, &[shape]) {
            Ok(inf) => {
                self.set_inferred(node, inf, span);
                Ok(Cur {
                    node,
                    shape: self.graph[node].shape.clone(),
                })
            }
            Err(mut e) => {
                let recovered = rules::recover(&self.graph[node].op, &[shape], &e);
                // An image layer on a flat model input: no `flatten` to move, the input is
                // written flat (a GAN's latent vector, `input: [100]`).
                if e.code == "cnnc::shape::rank"
                    && e.message.contains("needs an image")
                    && matches!(self.graph[input.node].op, Op::Input)
                    && shape.rank() == 1
                {
                    let n = shape.dims()[0];
                    // 784 = 28², 3072 = 3·32²: a flattened image of a data set's size, as
                    // MNIST's and CIFAR's loaders give it (not 100 = 10², a GAN's code).
                    let image = [1u64, 3].into_iter().find_map(|c| {
                        [28u64, 32, 64, 96, 224]
                            .into_iter()
                            .find(|side| side * side * c == n)
                            .map(|side| (c, side))
                    });
                    e.help = Some(match image {
                        Some((c, side)) => format!(
                            "the model's input is flat, [{n}], and a layer of images needs [C, \
                             H, W]: {n} is a {c}×{side}×{side} image flattened, `input: [{c}, \
                             {side}, {side}]`; for a vector such as a GAN's latent code, an \
                             image of one pixel, `input: [{n}, 1, 1]`"
                        ),
                        None => format!(
                            "the model's input is flat, [{n}], and a layer of images needs [C, \
                             H, W]: for a vector such as a GAN's latent code, write the input as \
                             an image of one pixel, `input: [{n}, 1, 1]`"
                        ),
                    });
                } else if e.code == "cnnc::shape::rank" && e.message.contains("needs an image") {
                    if let Some(help) = self.linear_then_reshape_help(input.node, shape) {
                        e.help = Some(help);
                    }
                }
                // A `linear` on an image inside a residual body is one meant per pixel (a
                // ConvNeXt block's MLP written as PyTorch's channels-last `nn.Linear`): the
                // 1×1 conv first, and checking goes on as if it were one, so the residual and
                // the layers after it are not reported for this mistake.
                let mut recovered = recovered;
                if let (Op::Linear { out_features, .. }, true, [_, h, w]) = (
                    &self.graph[node].op,
                    self.residual_bodies > 0 && e.code == "cnnc::shape::rank",
                    shape.dims(),
                ) {
                    e.help = Some(format!(
                        "in a residual body, a linear over the channels at every pixel is \
                         meant (PyTorch's `nn.Linear` on channels-last values, as in ConvNeXt's \
                         block): write `conv({out_features}, 1)`; `flatten` would make the \
                         body a vector, which the residual cannot add to its input"
                    ));
                    recovered = Some(Shape(vec![*out_features, *h, *w]));
                }
                self.push_rule_error(e, span, shape);
                self.graph[node].shape = recovered.clone();
                Ok(Cur {
                    node,
                    shape: recovered,
                })
            }
        }
    }

    /// A generator's `linear(3136)` on the flat model input, then an image layer: PyTorch's
    /// `Linear` and `view(-1, 64, 7, 7)` (Keras's `Dense` and `Reshape`), which cnnc writes
    /// as one transposed conv on a one-pixel input. `None` where the flat tensor does not come
    /// from a linear layer on the input (through layers that keep its shape).
    fn linear_then_reshape_help(&self, mut n: NodeIndex, flat: &Shape) -> Option<String> {
        let features = *flat.dims().first()?;
        while !matches!(self.graph[n].op, Op::Linear { .. }) {
            if self.graph[n].shape.as_ref() != Some(flat) {
                return None;
            }
            n = self.first_input(n)?;
        }
        let input = self.first_input(n)?;
        let Op::Input = self.graph[input].op else {
            return None;
        };
        let latent = self.graph[input].shape.as_ref()?.dims().first().copied()?;
        let example = [7u64, 4, 8, 6, 5, 3, 2]
            .into_iter()
            .find(|h| features % (h * h) == 0)
            .map(|h| {
                format!(
                    " (`convT({}, {h})` gives [{0}, {h}, {h}], as `view(-1, {0}, {h}, {h})` \
                     does)",
                    features / (h * h)
                )
            })
            .unwrap_or_default();
        Some(format!(
            "cnnc has no reshape (PyTorch's `view`, Keras's `Reshape`): a linear layer whose \
             {features} outputs are reshaped to an image [C, h, w] is a transposed conv with an \
             h×w kernel on an image of one pixel; write the input as `input: [{latent}, 1, 1]` \
             and `linear({features})` as `convT(C, [h, w])` with C·h·w = {features}{example}, \
             as DCGAN's generator begins; its bias is one per channel, not one per value"
        ))
    }

    fn push_rule_error(&mut self, e: RuleError, span: Span, input: &Shape) {
        let mut d =
            Diagnostic::error(e.code, e.message).label(span, format!("its input is {input}"));
        d.help = e.help;
        self.diags.push(d);
    }

    fn crop(
        &mut self,
        call: &'a ast::Call,
        cur: Cur,
        frame: &mut Frame,
        scope: &mut Scope,
    ) -> Result<Cur, Abort> {
        let target = match (
            call.args.as_slice(),
            call.args.first().map(|a| &a.value.kind),
        ) {
            ([a], Some(ast::ExprKind::Var(n))) if a.name.is_none() => (n, a.value.span),
            _ => {
                self.diags.push(
                    Diagnostic::error(
                        "cnnc::elab::argument_count",
                        "`crop` takes one named tensor: `crop(e2)`",
                    )
                    .label(call.span, "here")
                    .help("name a tensor with `… as e2` earlier, then write `crop(e2)`"),
                );
                return Ok(unknown(cur));
            }
        };
        let found = frame.tensors.get_mut(target.0.as_str()).map(|n| {
            n.used = true;
            self.names_read.insert(n.span);
            if n.iteration.is_some_and(|it| self.iterations.contains(&it)) {
                self.read_within_iteration.insert(n.span);
            }
            n.cur.clone()
        });
        let Some(tensor) = found else {
            // A name whose `as` was refused (reported there).
            if self.named_in_skipped_iterations(target.0) || self.refused_names.contains(target.0) {
                return Ok(unknown(cur));
            }
            if let Some(d) = output_read_as_tensor(target.0, target.1, frame)
                .or_else(|| self.misplaced_name(target.0, target.1))
            {
                self.diags.push(d);
                return Ok(unknown(cur));
            }
            let names: Vec<&str> = frame.tensors.keys().map(String::as_str).collect();
            let mut d = Diagnostic::error(
                "cnnc::elab::unknown_tensor",
                format!("no tensor is named `{}`", target.0),
            )
            .label(target.1, "unknown tensor");
            d = match did_you_mean_text(target.0, names.iter().copied()) {
                // `block up(c, skip) { … crop(skip) … }` called with a number for `skip`.
                _ if frame.env.get(target.0).is_some() => d.help(format!(
                    "`{0}` is a variable (a block's parameter or a repeat's), here {1}, not a \
                     tensor: a block's parameter is a tensor when the call passes a tensor's \
                     name (`b(…, e1)`)",
                    target.0,
                    frame
                        .env
                        .get(target.0)
                        .map(Value::describe)
                        .unwrap_or_default()
                )),
                Some(text) => d.help(text),
                None if target.0 == "input" => d.help(
                    "`input` is the model's input, a named tensor of the model's body only: a \
                     block reads the tensors it names and those passed to it, so pass the \
                     input to the block (`b(…, input)`) or crop it where the block is called",
                ),
                None => match listed_tensors(&names).as_slice() {
                    [] => d.help("name a tensor with `… as NAME` before using it"),
                    listed => d.help(format!("the named tensors here are: {}", listed.join(", "))),
                },
            };
            self.diags.push(d);
            return Ok(unknown(cur));
        };
        self.flush_dilation_run();
        let size = match cur.shape.as_ref().map(|s| s.spatial()) {
            Some(Some(hw)) => hw,
            Some(None) => {
                self.diags.push(
                    Diagnostic::error(
                        "cnnc::shape::rank",
                        format!(
                            "`crop` crops to the current [H, W], but the current tensor is {}",
                            cur.shape.as_ref().unwrap()
                        ),
                    )
                    .label(call.span, "here"),
                );
                return Ok(unknown(cur));
            }
            None => return Ok(unknown(cur)),
        };
        if self.concat_depth == 0 {
            let current = cur.shape.as_ref().expect("known: its size was read");
            self.diags.push(
                Diagnostic::warning(
                    "cnnc::elab::crop_outside_concat",
                    format!(
                        "`crop({})` continues from `{}` cropped: the current tensor {current} is only used for its size and then dropped",
                        target.0, target.0
                    ),
                )
                .label(call.span, "the current tensor is dropped here")
                .help(format!(
                    "to join the cropped tensor with the current one, put it in a concat branch: `concat {{ crop({}) {{}} }}`",
                    target.0
                )),
            );
        }
        if self.concat_depth > 0 && tensor.node != cur.node {
            // (Outside a concat, `crop_outside_concat` says so already.)
            self.left_behind.push((
                cur.node,
                call.span,
                Continued::Crop(target.0.clone()),
                self.call_stack.clone(),
            ));
        }
        let name = scope.fresh("crop");
        let before = self.diags.0.len();
        let out = self.add_unary(name, Op::Crop { size }, call.span, &tensor);
        if let Ok(out) = &out {
            self.size_sources.insert(out.node, cur.node);
        }
        // The input of the crop is the named tensor, not the current one: say so.
        if let (Some(d), Some(skip)) = (self.diags.0.get_mut(before), &tensor.shape) {
            if d.code == "cnnc::shape::crop_too_large" {
                if let Some(l) = d.labels.first_mut() {
                    l.text = format!("`{}` is {skip}", target.0);
                }
            }
        }
        // A U-Net on an odd size with `maxpool(2, ceil=true)`: 75 → 38 → 76, past the skip's
        // 75. The pooling is the cause, not the padding the general help names.
        // More upsampling than downsampling since the skip (`maxpool(2)` then
        // `upsample(4)`): the imbalance is the cause, whatever a ceil pooling added.
        let scales = self.scales_between(tensor.node, cur.node);
        let unbalanced = scales.filter(|(down, up)| (0..2).any(|a| up[a] > down[a]));
        let ceil_between = self.ceil_rounded_up_between(tensor.node, cur.node);
        if let (Some(d), Some(here), Some((down, up))) =
            (self.diags.0.get_mut(before), &cur.shape, unbalanced)
        {
            if d.code == "cnnc::shape::crop_too_large" {
                let factor = |f: [u64; 2]| {
                    if f[0] == f[1] {
                        f[0].to_string()
                    } else {
                        format!("{}×{}", f[0], f[1])
                    }
                };
                d.help = Some(format!(
                    "`crop(name)` cuts a larger skip tensor down to the current size, but here \
                     the current tensor, {here}, is the larger: since `{}` the layers \
                     downsample by {} and upsample by {}: make them equal (upsample by {} in \
                     all, or downsample by {}), so that the skip stays the larger and the crop \
                     cuts it",
                    target.0,
                    factor(down),
                    factor(up),
                    factor(down),
                    factor(up),
                ));
            }
        } else if let (Some(d), Some(here)) = (self.diags.0.get_mut(before), &cur.shape) {
            if d.code == "cnnc::shape::crop_too_large" && ceil_between {
                d.help = Some(format!(
                    "`crop(name)` cuts a larger skip tensor down to the current size, but here \
                     the current tensor, {here}, is the larger: a pooling with `ceil=true` since \
                     `{}` rounded an odd size up, and the upsampling after it went past the \
                     skip; drop `ceil=true` (rounding down leaves the skip the larger, and the \
                     crop cuts it), or give the model an input size that the poolings halve \
                     evenly",
                    target.0
                ));
            }
        }
        out
    }

    fn block_call(
        &mut self,
        block: &'a ast::BlockDef,
        call: &'a ast::Call,
        cur: Cur,
        frame: &mut Frame,
        scope: &mut Scope,
    ) -> Result<Cur, Abort> {
        let name = block.name.name.as_str();
        if let Some(pos) = self.call_stack.iter().position(|(n, _)| *n == name) {
            let first = self.call_stack[pos].1;
            // `a` calls `b`, which calls `a`: the blocks of the cycle, in call order.
            let cycle = &self.call_stack[pos..];
            let mut blocks: Vec<&'a str> = cycle.iter().map(|(n, _)| *n).collect();
            blocks.sort_unstable();
            if !self.reported_cycles.insert(blocks) {
                return Ok(unknown(cur));
            }
            let mut d = if cycle.len() == 1 {
                Diagnostic::error(
                    "cnnc::elab::recursive_block",
                    format!("block `{name}` calls itself"),
                )
                .label(call.span, "this call expands the block again")
                .label(block.name.span, "in this block")
            } else {
                let path: Vec<String> = cycle
                    .iter()
                    .map(|(n, _)| format!("`{n}`"))
                    .chain([format!("`{name}`")])
                    .collect();
                let mut d = Diagnostic::error(
                    "cnnc::elab::recursive_block",
                    format!("block `{name}` calls itself through {}", path.join(" → ")),
                );
                for pair in cycle.windows(2) {
                    d = d.label(
                        pair[1].1,
                        format!("`{}` calls `{}` here", pair[0].0, pair[1].0),
                    );
                }
                let caller = cycle[cycle.len() - 1].0;
                d.label(call.span, format!("`{caller}` calls `{name}` again here"))
            };
            if first != call.span {
                d = d.label(first, "first expanded here");
            }
            self.diags.push(d.help("blocks are expanded at compile time and cannot call themselves, directly or through other blocks, even with a base case; use `repeat n { … }` for a stack of layers"));
            return Ok(unknown(cur));
        }
        if self.call_stack.len() >= MAX_CALL_DEPTH {
            self.diags.push(
                Diagnostic::error(
                    "cnnc::elab::too_deep",
                    format!("block calls nest more than {MAX_CALL_DEPTH} deep"),
                )
                .label(call.span, "here"),
            );
            return Ok(unknown(cur));
        }
        // Bind arguments: positional first, then named; defaults see earlier parameters.
        let mut env = Env::new();
        let mut ok = true;
        let mut bound: Vec<Option<Argument>> = vec![None; block.params.len()];
        // The parameters whose argument failed: a default that reads one is not evaluated.
        let mut failed: Vec<&str> = Vec::new();
        let mut positional = 0;
        // The tensors passed by name, for helps inside the body (see [`PassedTensors`]).
        let mut passed: Vec<(String, String)> = Vec::new();
        for arg in &call.args {
            let slot = match &arg.name {
                None => {
                    positional += 1;
                    if positional > block.params.len() {
                        if positional == block.params.len() + 1 {
                            let given = call.args.iter().filter(|a| a.name.is_none()).count();
                            self.diags.push(
                                Diagnostic::error(
                                    "cnnc::elab::argument_count",
                                    format!(
                                        "block `{name}` takes {} argument{}, got {given}",
                                        block.params.len(),
                                        if block.params.len() == 1 { "" } else { "s" }
                                    ),
                                )
                                .label(arg.span, "first extra argument")
                                .label(block.name.span, "defined here")
                                .help(block_signature(block)),
                            );
                        }
                        ok = false;
                        continue;
                    }
                    positional - 1
                }
                Some(n) => match block.params.iter().position(|p| p.name.name == n.name) {
                    Some(i) => i,
                    None => {
                        self.diags.push(unknown_block_parameter(block, n));
                        ok = false;
                        continue;
                    }
                },
            };
            // `up(256, e4)`: a name of the caller's tensors (and no variable) passes the
            // tensor, which the block reads by the parameter's name.
            let given = match &arg.value.kind {
                ast::ExprKind::Var(n) if frame.env.get(n).is_none() => frame.tensors.get_mut(n),
                _ => None,
            };
            let given = match given {
                Some(named) => {
                    self.note_read(named);
                    if let ast::ExprKind::Var(n) = &arg.value.kind {
                        passed.push((block.params[slot].name.name.clone(), n.clone()));
                    }
                    Ok(Argument::Tensor(named.cur.clone(), arg.span))
                }
                None => match eval(&arg.value, &frame.env, cur.shape.as_ref()) {
                    Err(EvalError::Diag(_)) if self.unknown_name_argument(&arg.value, frame) => {
                        ok = false;
                        continue;
                    }
                    evaluated => evaluated.map(Argument::Value),
                },
            };
            match given {
                Ok(_) if bound[slot].is_some() => {
                    self.diags.push(
                        Diagnostic::error(
                            "cnnc::elab::argument_count",
                            format!(
                                "argument `{}` of block `{name}` is given twice",
                                block.params[slot].name.name
                            ),
                        )
                        .label(arg.span, "given again here")
                        .help(block_signature(block)),
                    );
                    ok = false;
                }
                Ok(v) => bound[slot] = Some(v),
                Err(e) => {
                    let before = self.diags.0.len();
                    self.report_eval(e);
                    let param = &block.params[slot];
                    if is_none_literal(&arg.value) {
                        self.retell_none(
                            before,
                            &match param.default {
                                None => format!(
                                    "cnnc has no `None`, and `{}` of block `{name}` has no \
                                     default: pass it ({})",
                                    param.name.name,
                                    block_signature(block)
                                ),
                                Some(_) => super::value::NONE_ARGUMENT_HELP.to_string(),
                            },
                        );
                    }
                    failed.push(param.name.name.as_str());
                    ok = false;
                }
            }
        }
        let mut missing: Vec<&ast::Param> = Vec::new();
        let mut tensors: HashMap<String, Named> = HashMap::new();
        let mut tensor_arguments = Vec::new();
        // Errors of the defaults are in the block's text: labelled with this call, whose
        // values they were evaluated with.
        let defaults_from = self.diags.0.len();
        for (i, p) in block.params.iter().enumerate() {
            // `block s(c, c)`, reported at the definition: the second `c` is that one.
            if block.params[..i].iter().any(|q| q.name.name == p.name.name) {
                continue;
            }
            let given = match bound[i].take() {
                Some(given) => Some(given),
                None => match &p.default {
                    // `k=c` where the argument for `c` failed: said once, at the argument.
                    Some(d) if reads_any(d, &failed) => {
                        failed.push(p.name.name.as_str());
                        None
                    }
                    Some(d) => {
                        // A default reads earlier tensors' sizes (`c=skip.c`), or is one
                        // (`b=a`).
                        ast::walk_expr(d, &mut |x| {
                            if let ast::ExprKind::TensorQuery(n, _) = &x.kind {
                                if let Some(named) = tensors.get_mut(n) {
                                    named.used = true;
                                }
                            }
                        });
                        match &d.kind {
                            ast::ExprKind::Var(n) if env.get(n).is_none() => {
                                tensors.get_mut(n).map(|named| {
                                    named.used = true;
                                    Argument::Tensor(named.cur.clone(), d.span)
                                })
                            }
                            _ => None,
                        }
                        .or_else(|| {
                            match eval(d, &env, cur.shape.as_ref()) {
                                Ok(v) => Some(Argument::Value(v)),
                                Err(e) => {
                                    let before = self.diags.0.len();
                                    self.report_eval(e);
                                    self.retell_default_scope(before, block, i, d, &tensors);
                                    if is_none_literal(d) {
                                        self.retell_none(
                                            before,
                                            &format!(
                                                "a parameter without a default is written \
                                                 without `=` (`{}` alone), and every call must \
                                                 then pass it",
                                                p.name.name
                                            ),
                                        );
                                    }
                                    ok = false;
                                    None
                                }
                            }
                        })
                    }
                    None => {
                        missing.push(p);
                        None
                    }
                },
            };
            match given {
                Some(Argument::Value(v)) => env.set(&p.name.name, v),
                Some(Argument::Tensor(t, given)) => {
                    // `block f(relu) { concat { relu {} } }`: the layer would win where the
                    // tensor is read, and the tensor would be lost.
                    let layer = layers::lookup(&p.name.name).is_some();
                    if layer || self.defs.is_block(&p.name.name) {
                        self.diags.push(
                            Diagnostic::error(
                                "cnnc::elab::duplicate_definition",
                                format!(
                                    "block `{name}`'s parameter `{}` is given a tensor, but `{}` \
                                     names a {}",
                                    p.name.name,
                                    p.name.name,
                                    if layer { "layer" } else { "block" }
                                ),
                            )
                            .label(given, "a tensor passed")
                            .label(p.name.span, "this parameter")
                            .help(format!(
                                "in the block's body `{0}` would be the {1}, not the tensor: \
                                 rename the parameter (`{0}_in`, `skip`)",
                                p.name.name,
                                if layer { "layer" } else { "block" }
                            )),
                        );
                        ok = false;
                        continue;
                    }
                    // Its sizes are read as a named tensor's (`skip.h`), also by the
                    // defaults of later parameters.
                    env.set_tensor(&p.name.name, t.shape.clone());
                    tensors.insert(
                        p.name.name.clone(),
                        Named {
                            cur: t,
                            span: p.name.span,
                            used: false,
                            iteration: None,
                        },
                    );
                    tensor_arguments.push(p);
                }
                None => {}
            }
        }
        // A default's mistake made again at a later call is the one already reported.
        let from_defaults = self.diags.0.split_off(defaults_from);
        for mut d in from_defaults {
            let again = self.diags.0.iter().any(|e| {
                e.code == d.code && e.message == d.message && e.primary_span() == d.primary_span()
            });
            if again {
                continue;
            }
            if d.labels
                .first()
                .is_some_and(|l| block.span.contains(l.span))
            {
                d.labels.push(Label::call(name, call.span));
            }
            self.diags.0.push(d);
        }
        // `… as up` was refused (a block's name), and this bare `up` reads that tensor.
        let meant_the_tensor =
            !call.parens && call.args.is_empty() && self.refused_names.contains(name);
        if !missing.is_empty() && ok && !meant_the_tensor {
            let names: Vec<String> = missing
                .iter()
                .map(|p| format!("`{}`", p.name.name))
                .collect();
            let mut d = Diagnostic::error(
                "cnnc::elab::argument_count",
                format!("block `{name}` needs {}", names.join(" and ")),
            )
            .label(call.span, format!("missing {}", names.join(", ")));
            for p in &missing {
                d = d.label(p.name.span, "parameter declared here");
            }
            self.diags.push(d.help(block_signature(block)));
        }
        if !ok || !missing.is_empty() {
            return Ok(unknown(cur));
        }
        // Deduplicate on both sides of the body, so that what it reports is new and keyed
        // without the call: a mistake inside a block is reported once, at its first call.
        self.dedupe_diagnostics(None);
        self.call_stack.push((name, call.span));
        self.call_first_nodes.push(self.graph.node_count());
        self.passed_tensors
            .push(PassedTensors::of(passed, frame, cur.node));
        let mut inner = Frame {
            env,
            tensors,
            outputs: HashMap::new(),
        };
        let mut sub = Scope::new(format!("{}.", scope.fresh(name)));
        let before = self.diags.0.len();
        let out = self.body(&block.body, cur, &mut inner, &mut sub);
        // An error in the body may be where the tensor was to be read.
        if !self.diags.0[before..].iter().any(Diagnostic::is_error) {
            self.warn_unread_tensor_arguments(name, &tensor_arguments, &inner);
        }
        self.call_stack.pop();
        self.call_first_nodes.pop();
        self.passed_tensors.pop();
        self.dedupe_diagnostics(Some((name, call.span)));
        // Point every error and warning from inside the block at the call that expanded it
        // (the sizes in its message are that call's), except those about the text alone.
        for d in &mut self.diags.0[before..] {
            if gets_call_labels(d.code) {
                d.labels.push(Label::call(name, call.span));
            }
        }
        out
    }

    /// `up(256, x9)`, where `x9` is neither a variable nor a tensor: reported as a name that
    /// could be either (a tensor is the likelier meaning of a bare name). Returns whether it
    /// was, leaving literals (`True`, a layer's name, …) to the variable's error.
    fn unknown_name_argument(&mut self, value: &ast::Expr, frame: &Frame) -> bool {
        let ast::ExprKind::Var(name) = &value.kind else {
            return false;
        };
        if layers::lookup(name).is_some()
            || matches!(name.as_str(), "True" | "False" | "None" | "valid")
        {
            return false;
        }
        // A name whose `as` was refused (reported there).
        if self.refused_names.contains(name) {
            return true;
        }
        if let Some(d) = output_read_as_tensor(name, value.span, frame)
            .or_else(|| self.misplaced_name(name, value.span))
        {
            self.diags.push(d);
            return true;
        }
        // `head(p5, classifier)`: a block or model passed as if it were a value.
        if let Some((what, help)) = self.definition_as_value(name) {
            self.diags.push(
                Diagnostic::error(
                    "cnnc::elab::unknown_variable",
                    format!("unknown variable `{name}`"),
                )
                .label(value.span, format!("a {what}, not a value"))
                .help(help),
            );
            return true;
        }
        let tensors: Vec<&str> = frame.tensors.keys().map(String::as_str).collect();
        let mut variables: Vec<&str> = frame.env.variable_names().collect();
        variables.sort_unstable();
        let near = tensors.iter().chain(&variables).copied();
        let help = match did_you_mean_text(name, near) {
            Some(text) => text,
            None => {
                let listed = listed_tensors(&tensors);
                let mut parts = Vec::new();
                if !listed.is_empty() {
                    parts.push(format!("the named tensors here are: {}", listed.join(", ")));
                }
                if !variables.is_empty() {
                    parts.push(format!("the variables: {}", variables.join(", ")));
                }
                if parts.is_empty() {
                    "name a tensor with `… as NAME` before passing it to a block".to_string()
                } else {
                    parts.join("; ")
                }
            }
        };
        self.diags.push(
            Diagnostic::error(
                "cnnc::elab::unknown_tensor",
                format!("no tensor or variable is named `{name}`"),
            )
            .label(value.span, "unknown name")
            .help(help),
        );
        true
    }

    /// A tensor passed to a block that its body never read (in this call): a skip
    /// connection lost on the way in, as an unread `as` name is one never made.
    fn warn_unread_tensor_arguments(
        &mut self,
        block: &str,
        arguments: &[&ast::Param],
        inner: &Frame,
    ) {
        for p in arguments {
            let param = p.name.name.as_str();
            let unread = inner
                .tensors
                .get(param)
                .is_some_and(|n| n.span == p.name.span && !n.used);
            if !unread || param.starts_with('_') {
                continue;
            }
            self.diags.push(
                Diagnostic::warning(
                    "cnnc::elab::unused_name",
                    format!("block `{block}` never reads the tensor passed as `{param}`"),
                )
                .label(p.name.span, "never read in the block's body")
                .help(format!(
                    "the block reads it as a concat branch (`concat {{ {{}} {param} }}`), in a \
                     shortcut (`shortcut {{ {param} }}`), in `crop({param})`, for its sizes \
                     (`{param}.h`) or as a layer of its own; if no tensor is meant, pass the \
                     block a number, or name the parameter `_{param}`"
                )),
            );
        }
    }

    /// Gridding check: a run of stacked dilated convs whose rates share a factor > 1.
    /// Follows the current chain of stride-1 convolutions (dilated or not) for the gridding
    /// warning; anything else but a shape-preserving layer ends the chain.
    fn track_dilation(&mut self, op: &Op, span: Span) {
        match op {
            Op::Conv(c) => {
                let calls = self.call_chain();
                self.dilation_run.push(ChainConv {
                    kernel: c.kernel,
                    dilation: c.dilation,
                    span,
                    pooling: false,
                    calls,
                });
                if c.stride != [1, 1] {
                    self.flush_dilation_run();
                }
            }
            // A pooling window covers its offsets as a plain conv of its size does: at stride
            // 1 it fills holes like one (DeepLab-LargeFOV's 3×3 pools before its rates).
            Op::MaxPool(p) | Op::AvgPool(p) if p.stride == [1, 1] => {
                let calls = self.call_chain();
                self.dilation_run.push(ChainConv {
                    kernel: p.kernel,
                    dilation: [1, 1],
                    span,
                    pooling: true,
                    calls,
                });
            }
            // Padding moves no offset (`pad(2, reflect=true) conv(8, 3, dilation=2)` is the
            // padded conv written in two).
            Op::Pad { .. } => {}
            op if op.is_shape_preserving() => {}
            _ => self.flush_dilation_run(),
        }
    }

    /// Withdraws the `name_reused` warnings of a repeat's `as` whose tensor some iteration
    /// did read before the next named another (`if i == 2 { concat { {} t } }`): they warned
    /// of an iteration whose tensor was not meant to be read.
    fn drop_reuse_warnings_read_within_iterations(&mut self) {
        // Never read: `unused_name` says so where it fired, and a `_` label is no slip.
        let unused: HashSet<Span> = self
            .diags
            .iter()
            .filter(|d| d.code == "cnnc::elab::unused_name")
            .filter_map(Diagnostic::primary_span)
            .collect();
        let never_read_label = |span: &Span| {
            !self.names_read.contains(span)
                && self
                    .names
                    .get(span)
                    .is_some_and(|(name, _)| name.starts_with('_'))
        };
        let within = &self.read_within_iteration;
        self.diags.0.retain(|d| {
            !(d.code == "cnnc::elab::name_reused"
                && d.labels.first().is_some_and(|l| {
                    l.text == NAMED_IN_NEXT_ITERATION
                        && (within.contains(&l.span)
                            || unused.contains(&l.span)
                            || never_read_label(&l.span))
                }))
        });
    }

    /// Whether the body being elaborated reads `name` (alone, or in `crop`) between the
    /// places `from` and `to`, in a branch that ran or not (`if skip { concat { {} t } }`).
    fn read_between(&self, name: &str, from: Span, to: Span) -> bool {
        let here: &[ast::Stmt] = match self.call_stack.last() {
            Some((block, _)) => match self.defs.blocks.get(block) {
                Some(def) => &def.body,
                None => return false,
            },
            None => &self.model.body,
        };
        let mut found = false;
        ast::walk(here, &mut |st| {
            let StmtKind::Call(c) = &st.kind else { return };
            let between =
                c.span.file == from.file && from.end <= c.span.start && c.span.end <= to.start;
            found |= between && reads_name(std::slice::from_ref(st), name);
        });
        found
    }

    /// Warns of every `as NAME` whose tensor was never read by name (in any iteration of a
    /// repeat, in any call of a block): usually a skip connection that was meant and
    /// forgotten. The model's output and names starting with `_` are exempt.
    fn warn_unused_names(&mut self, output: NodeIndex) {
        // A name on layers that reach nothing is `dropped_tensor`'s (or
        // `crop_outside_concat`'s) to report: "drop `as b`" would not be the fix.
        let live = self.live_nodes(output);
        let mut unused: Vec<(&Span, &String)> = self
            .names
            .iter()
            .filter(|(span, (name, nodes))| {
                !self.names_read.contains(span)
                    && !name.starts_with('_')
                    && !nodes.contains(&output)
                    && !self.named_outputs.iter().any(|(o, _)| nodes.contains(&o.node))
                    && nodes.iter().any(|n| live.contains(n))
                    // Read in the source, in a branch or call that did not run this time.
                    && !self.read_in_source(name)
            })
            .map(|(span, (name, _))| (span, name))
            .collect();
        unused.sort_by_key(|(span, _)| (span.file, span.start));
        let warnings: Vec<(Diagnostic, Vec<Vec<Label>>)> = unused
            .into_iter()
            .map(|(&span, name)| {
                let d = Diagnostic::warning(
                    "cnnc::elab::unused_name",
                    format!("the tensor named `{name}` is never used"),
                )
                .label(span, "named here, never read")
                .help(format!(
                    "a name is read in a concat branch (`concat {{ {{}} {name} }}`), in a \
                     residual's shortcut (`shortcut {{ {name} }}`), in `crop({name})`, for its \
                     sizes (`{name}.h`) or as a layer of its own; if no skip connection was \
                     meant, drop `as {name}`, or write `as _{name}` to keep it as a label"
                ));
                (d, self.name_calls.get(&span).cloned().unwrap_or_default())
            })
            .collect();
        for (d, ways) in warnings {
            self.push_with_calls(d, ways);
        }
    }

    /// The nodes the outputs depend on (the main one, `output`, and the named ones).
    fn live_nodes(&self, output: NodeIndex) -> HashSet<NodeIndex> {
        let mut stack: Vec<NodeIndex> = std::iter::once(output)
            .chain(self.named_outputs.iter().map(|(o, _)| o.node))
            .collect();
        let mut live: HashSet<NodeIndex> = stack.iter().copied().collect();
        while let Some(n) = stack.pop() {
            for m in self
                .graph
                .neighbors_directed(n, petgraph::Direction::Incoming)
            {
                if live.insert(m) {
                    stack.push(m);
                }
            }
        }
        live
    }

    /// Warns of each tensor that a statement left behind (see [`Elab::left_behind`]) and
    /// that nothing reads: the layers that lead only to it are computed, exported and
    /// counted for nothing. A forgotten `{}` branch (`concat { crop(e4) }`) or a name on its
    /// own line does this silently otherwise.
    fn warn_dropped_tensors(&mut self, output: NodeIndex) {
        use petgraph::Direction::{Incoming, Outgoing};
        let live = self.live_nodes(output);
        // A tensor an upsampling takes its size from (`size=[t.h, t.w]`) is read for that:
        // deleting it is no fix. (A crop's current tensor, dropped by a forgotten `{}`
        // branch, still is one.)
        let sizes_read: HashSet<NodeIndex> = self
            .size_sources
            .iter()
            .filter(|(user, _)| matches!(self.graph[**user].op, Op::Upsample { .. }))
            .map(|(_, &source)| source)
            .collect();
        let mut warned = HashSet::new();
        let mut warnings = Vec::new();
        for (node, at, how, calls) in &self.left_behind {
            let dropped = &self.graph[*node];
            if live.contains(node)
                || sizes_read.contains(node)
                || matches!(dropped.op, Op::Input)
                || self
                    .graph
                    .neighbors_directed(*node, Outgoing)
                    .next()
                    .is_some()
                || !warned.insert(dropped.span)
            {
                continue;
            }
            // The layers computed only for this tensor.
            let (mut layers, mut params, mut macs) = (0u64, 0u64, 0u64);
            let mut seen = HashSet::from([*node]);
            let mut stack = vec![*node];
            while let Some(n) = stack.pop() {
                let layer = &self.graph[n];
                layers += 1;
                params += layer.params;
                macs += layer.macs;
                for m in self.graph.neighbors_directed(n, Incoming) {
                    if !live.contains(&m) && seen.insert(m) {
                        stack.push(m);
                    }
                }
            }
            let shape = dropped
                .shape
                .as_ref()
                .map(|s| format!(" {s}"))
                .unwrap_or_default();
            let cost = format!(
                "{} ({} parameters, {} MACs per example)",
                if layers == 1 {
                    "the layer that computes it".to_string()
                } else {
                    format!("the {layers} layers that lead only to it")
                },
                crate::shape::summary::group(params),
                crate::shape::summary::group(macs)
            );
            let d = match how {
                Continued::Name(name, in_branch) => Diagnostic::warning(
                    "cnnc::elab::dropped_tensor",
                    format!(
                        "this tensor is never used: `{name}` on its own continues from the \
                         tensor named `{name}`"
                    ),
                )
                .label(dropped.span, format!("its result{shape} is dropped"))
                .label(*at, format!("continues from `{name}`"))
                .help(if *in_branch {
                    format!(
                        "a concat branch starts from its input only when it does not name a \
                         tensor: add a `{{}}` branch, which passes this one on (`concat {{ … \
                         {{}} }}`); if `{name}` alone is meant, delete {cost}"
                    )
                } else if dropped.shape.as_ref().is_some_and(|s| s.rank() == 1) {
                    // `main aux` at a model's end: two classifier heads, the second meant as
                    // an output too.
                    format!(
                        "a second output of the model (an auxiliary head) is written `output \
                         NAME {{ … }}` around its layers, its tensor then no longer dropped; \
                         to join the two, concatenate them, `concat {{ {name} {{}} }}`; if \
                         `{name}` alone is meant, delete {cost}"
                    )
                } else {
                    format!(
                        "to join the two, concatenate them, `concat {{ {name} {{}} }}`, or add \
                         them with `residual`; if `{name}` alone is meant, delete {cost}"
                    )
                }),
                Continued::Crop(name) => Diagnostic::warning(
                    "cnnc::elab::dropped_tensor",
                    format!(
                        "this tensor is never used: `crop({name})` reads only its size, and \
                         no other branch of the concat reads it"
                    ),
                )
                .label(dropped.span, format!("its result{shape} is dropped"))
                .label(*at, "reads only the size of the current tensor")
                .help(format!(
                    "to keep it beside the cropped tensor, add a branch that passes it on: \
                     `concat {{ crop({name}) {{}} }}`; if only `{name}` is meant, delete {cost}"
                )),
            };
            // As every diagnostic from inside a block: labelled at its calls, innermost first.
            let d = calls.iter().rev().fold(d, |d, (name, call)| {
                d.label(*call, format!("in this call of `{name}`"))
            });
            warnings.push(d);
        }
        self.diags.0.extend(warnings);
    }

    /// Warns when a chain with dilated convolutions leaves holes in its receptive field:
    /// offsets between its first and last that no path through the chain reaches.
    fn flush_dilation_run(&mut self) {
        let run = std::mem::take(&mut self.dilation_run);
        // Per axis: two convolutions dilated along it, or one stacked on another of a kernel
        // above 1 (a dilated conv alone has holes by design), and a hole along it: `[1, 1, 1,
        // 8]` reaches ±3 below a conv whose taps are 8 apart, and never sees ±4. Not the
        // latter in a residual body, whose shortcut brings the offsets the body skips
        // (ERFNet's non-bottleneck-1D blocks: `[3, 1]` and `[1, 3]` convs, then dilated).
        let found: Vec<(usize, Holes)> = (0..2)
            .filter(|&a| {
                let dilated = run
                    .iter()
                    .filter(|c| c.kernel[a] > 1 && c.dilation[a] > 1)
                    .count();
                let spread = run.iter().filter(|c| c.kernel[a] > 1).count();
                dilated >= 2 || (dilated == 1 && spread >= 2 && self.residual_bodies == 0)
            })
            .filter_map(|a| {
                let taps: Vec<(u64, u64)> =
                    run.iter().map(|c| (c.kernel[a], c.dilation[a])).collect();
                receptive_field_holes(&taps).map(|h| (a, h))
            })
            .collect();
        let Some((axis, holes)) = found.first() else {
            return;
        };
        let axis = *axis;
        let along = if found.len() == 2 {
            "along each axis"
        } else if axis == 0 {
            "along the height"
        } else {
            "along the width"
        };
        let spread: Vec<&ChainConv> = run.iter().filter(|c| c.kernel[axis] > 1).collect();
        let rates: Vec<String> = spread
            .iter()
            .filter(|c| !c.pooling)
            .map(|c| c.dilation[axis].to_string())
            .collect();
        let pooled = if spread.iter().any(|c| c.pooling) {
            " (with the stride-1 pooling among them)"
        } else {
            ""
        };
        let g = spread.iter().fold(0, |g, c| gcd(g, c.dilation[axis]));
        let message = if g > 1 {
            format!(
                "stacked dilated convolutions with rates [{}]{pooled} share the factor {g}: each output sees only one input pixel in {g} {along} (gridding)",
                rates.join(", ")
            )
        } else {
            let shown: Vec<String> = holes
                .missing
                .iter()
                .take(5)
                .map(|o| o.to_string())
                .collect();
            let more = if holes.missing.len() > 5 { ", …" } else { "" };
            format!(
                "stacked dilated convolutions with rates [{}]{pooled} leave holes in their receptive field: {along} it spans {} pixels but never sees offsets {}{more} of them (gridding)",
                rates.join(", "),
                holes.span,
                shown.join(", ")
            )
        };
        let mut d = Diagnostic::warning("cnnc::shape::gridding", message);
        let mut labelled: Vec<Span> = Vec::new();
        for c in spread.iter().filter(|c| c.dilation[axis] > 1) {
            // A repeat puts the same layer in the chain several times: one label each.
            if !labelled.contains(&c.span) {
                labelled.push(c.span);
                d = d.label(c.span, format!("dilation {}", c.dilation[axis]));
            }
        }
        let d = d.help("choose rates whose receptive field has no holes, as hybrid dilated convolution does: e.g. [1, 2, 3] or [1, 2, 5]");
        // The chain may have ended after the calls its convs are in returned (`g(8, 2, 4)
        // maxpool(2)`): labelled at those calls here, as a returning call labels what it
        // gave (the calls still under way do so when they return).
        let open: Vec<Span> = self.call_stack.iter().map(|(_, span)| *span).collect();
        let mut chain: Vec<Label> = Vec::new();
        for c in spread.iter().filter(|c| c.dilation[axis] > 1) {
            for l in &c.calls {
                if !open.contains(&l.span) && !chain.iter().any(|k| k.span == l.span) {
                    chain.push(l.clone());
                }
            }
        }
        self.push_with_calls(d, vec![chain]);
    }

    /// The labels of the calls under way, innermost first: those a diagnostic from here
    /// gets (see [`Elab::dedupe_diagnostics`]).
    fn call_chain(&self) -> Vec<Label> {
        self.call_stack
            .iter()
            .rev()
            .map(|(block, span)| Label::call(block, *span))
            .collect()
    }

    /// Adds `d`, found after the calls it came through returned, with the labels of the
    /// first of `ways` (chains of call labels) and the others as its other calls; a
    /// diagnostic already there of the same code and places takes `d`'s ways as its other
    /// calls instead, as a block's warning is reported once, at its first call.
    fn push_with_calls(&mut self, mut d: Diagnostic, ways: Vec<Vec<Label>>) {
        let ways: Vec<Vec<Label>> = ways.into_iter().filter(|w| !w.is_empty()).collect();
        let none = ways.is_empty();
        let mut ways = ways.into_iter();
        // Inside a call still under way: labelled with the calls that returned (one way:
        // a chain of convs ends once), the open ones label it as they return, and
        // `dedupe_diagnostics` makes it one with a repeat then, as any diagnostic.
        if !self.call_stack.is_empty() || none {
            if let Some(first) = ways.next() {
                d.labels.extend(first);
            }
            self.diags.push(d);
            return;
        }
        let places: Vec<Span> = d.labels.iter().map(|l| l.span).collect();
        let same = self.diags.0.iter_mut().rev().find(|k| {
            k.code == d.code
                && k.labels
                    .iter()
                    .filter(|l| !l.call)
                    .map(|l| l.span)
                    .eq(places.iter().copied())
        });
        match same {
            Some(kept) => {
                // As `dedupe_diagnostics` keeps it: the later call's own diagnostic where it
                // says other things (other rates).
                let alike = d.message == kept.message
                    && d.help == kept.help
                    && d.labels.iter().map(|l| &l.text).eq(kept
                        .labels
                        .iter()
                        .filter(|l| !l.call)
                        .map(|l| &l.text));
                let first: Vec<Label> = kept.labels.iter().filter(|l| l.call).cloned().collect();
                for way in ways {
                    if !same_way(&first, &way) {
                        kept.other_calls.add(way, (!alike).then(|| d.clone()));
                    }
                }
            }
            None => {
                if let Some(first) = ways.next() {
                    d.labels.extend(first);
                }
                for way in ways {
                    d.other_calls.add(way, None);
                }
                self.diags.push(d);
            }
        }
    }
}

/// A convolution of the chain the gridding warning follows.
struct ChainConv {
    kernel: [u64; 2],
    dilation: [u64; 2],
    span: Span,
    /// A stride-1 pooling: it covers its window as a plain conv does, but has no rate.
    pooling: bool,
    /// The calls of blocks it was met through, innermost first (see [`Elab::call_chain`]).
    calls: Vec<Label>,
}

/// The receptive field of a stack of convolutions along one axis.
struct Holes {
    /// Pixels from the first offset reached to the last.
    span: u64,
    /// Offsets (from the first) that no path reaches.
    missing: Vec<u64>,
}

/// The `output_pad` that makes transposed conv `t` give the size of the named tensor `skip`,
/// as an expression of the conv's input (`skip.h - 2 * in.h` for U-Net's `convT(c, 2,
/// stride=2)`): its output is `(n − 1)·s + d·(k − 1) + 1 − pads + output_pad`. One
/// expression for both axes where `square` and the conv is alike in both, else a pair.
fn output_pad_expression(t: &ConvTransposeAttrs, skip: &str, square: bool) -> String {
    let axis = |a: usize, q: &str| {
        // (n − 1)·s + d·(k − 1) + 1 − pads = s·n + rest.
        let rest = (t.dilation[a] * (t.kernel[a].max(1) - 1) + 1) as i64
            - (t.pads.begin[a] + t.pads.end[a]) as i64
            - t.stride[a] as i64;
        let scaled = match t.stride[a] {
            1 => format!("in.{q}"),
            s => format!("{s} * in.{q}"),
        };
        match rest {
            0 => format!("{skip}.{q} - {scaled}"),
            r if r > 0 => format!("{skip}.{q} - {scaled} - {r}"),
            r => format!("{skip}.{q} - {scaled} + {}", -r),
        }
    };
    let alike = t.kernel[0] == t.kernel[1]
        && t.stride[0] == t.stride[1]
        && t.dilation[0] == t.dilation[1]
        && t.pads.begin[0] + t.pads.end[0] == t.pads.begin[1] + t.pads.end[1];
    if square && alike {
        axis(0, "h")
    } else {
        format!("[{}, {}]", axis(0, "h"), axis(1, "w"))
    }
}

/// A concat branch that ends in `upsample(size=[in.h, in.w])` and comes out another size
/// than the concat's input: `in` there is the tensor coming into the upsampling (pooled to a
/// pixel in ASPP's image branch), not the concat's input, which a name reaches, or (`block`:
/// the block whose first statement the concat is) a parameter defaulting to `in.h`.
fn in_size_read_in_branch_help(
    c: &ast::Concat,
    outs: &[(Cur, Span)],
    input: Option<&Shape>,
    block: Option<&str>,
) -> Option<String> {
    let here = input.and_then(Shape::spatial)?;
    outs.iter().find_map(|(cur, span)| {
        let branch = c.branches.iter().find(|b| b.span == *span)?;
        let StmtKind::Call(call) = &branch.body.last()?.kind else {
            return None;
        };
        if call.name.name != "upsample" {
            return None;
        }
        let reads_in = call.args.iter().any(|a| {
            a.name.as_ref().is_some_and(|n| n.name == "size")
                && matches!(&a.value.kind, ast::ExprKind::List(items)
                    if items.iter().any(|i| matches!(&i.kind, ast::ExprKind::InQuery(q) if q == "h" || q == "w")))
        });
        let size = cur.shape.as_ref().and_then(Shape::spatial)?;
        (reads_in && size != here).then(|| {
            let reach = match block {
                // A default sees the block's input as `in`.
                Some(b) => format!(
                    "give the block parameters of that size, `block {b}(…, h=in.h, w=in.w)` (a \
                     default reads the block's input, which the concat takes), and write \
                     `upsample(size=[h, w])`"
                ),
                None => "name the concat's input (`… as x` on the statement before the \
                         `concat`) and write `upsample(size=[x.h, x.w])`"
                    .to_string(),
            };
            format!(
                "`in.h` and `in.w` in this branch's `upsample(size=[in.h, in.w])` read the tensor \
                 coming into the upsampling, {}×{} there, not the concat's input, {}×{}: {reach}",
                size[0], size[1], here[0], here[1]
            )
        })
    })
}

/// A conv or pooling of stride 1 whose padding falls short of keeping the size, and the
/// padding that keeps it: `(k − 1)/2` times the dilation on each side.
#[derive(Clone, Debug, PartialEq)]
struct PadFix {
    kernel: [u64; 2],
    /// `conv`, `maxpool` or `avgpool`.
    layer: &'static str,
    pads: Pads,
}

impl PadFix {
    /// The fixes of one line of layers, alike ones said once, in source order: "its 3×3
    /// conv needs `pad=1`", "its two 3×3 convs need `pad=1`, its 5×5 conv needs `pad=2`".
    fn say(fixes: &[PadFix]) -> String {
        let mut groups: Vec<(&PadFix, usize)> = Vec::new();
        for f in fixes {
            match groups.iter_mut().find(|(g, _)| *g == f) {
                Some((_, n)) => *n += 1,
                None => groups.push((f, 1)),
            }
        }
        let said: Vec<String> = groups
            .into_iter()
            .map(|(f, n)| {
                let [kh, kw] = f.kernel;
                let [ph, pw] = f.pads.begin;
                let pad = if ph == pw {
                    ph.to_string()
                } else {
                    format!("[{ph}, {pw}]")
                };
                let layers = match n {
                    1 => format!("its {kh}×{kw} {} needs", f.layer),
                    n => {
                        let count = [
                            "two", "three", "four", "five", "six", "seven", "eight", "nine",
                        ]
                        .get(n - 2)
                        .map_or(n.to_string(), |w| w.to_string());
                        format!("its {count} {kh}×{kw} {}s need", f.layer)
                    }
                };
                format!("{layers} `pad={pad}`")
            })
            .collect();
        said.join(", ")
    }
}

/// The holes in the receptive field of convolutions `(kernel, dilation)` stacked along one
/// axis: the offsets each reaches are {0, d, …, (k − 1)·d}, and the stack reaches their sums.
/// `None` when there are none, or when the field is too large to enumerate (over a million).
fn receptive_field_holes(taps: &[(u64, u64)]) -> Option<Holes> {
    let span = taps
        .iter()
        .try_fold(1u64, |acc, &(k, d)| {
            acc.checked_add(k.saturating_sub(1).checked_mul(d)?)
        })
        .filter(|&s| s <= 1_000_000)?;
    // Two buffers for the whole chain, and only the offsets reached so far (`width`) are
    // read and cleared: a fresh buffer of `span` per convolution made a chain of 2,000,000
    // 1×1 convolutions below a wide dilation take 45 s.
    let mut reach = vec![false; span as usize];
    let mut next = vec![false; span as usize];
    reach[0] = true;
    let mut width = 1usize;
    // A bound on the work: a very long chain of very wide dilations is not checked.
    let mut work = 0usize;
    for &(k, d) in taps {
        let (k, d) = (k as usize, d as usize);
        work = work.saturating_add(width.saturating_mul(k));
        if work > 50_000_000 {
            return None;
        }
        if k == 1 {
            // A 1×1 convolution reaches what its input reached.
            continue;
        }
        // Cleared up to the new width, which the widths before it never passed; the
        // clearing costs at most the work counted plus the span, over the whole chain.
        let new_width = width + (k - 1) * d;
        next[..new_width].fill(false);
        for (o, _) in reach[..width].iter().enumerate().filter(|(_, &r)| r) {
            for t in 0..k {
                next[o + t * d] = true;
            }
        }
        width = new_width;
        std::mem::swap(&mut reach, &mut next);
    }
    let missing: Vec<u64> = (0..span).filter(|&o| !reach[o as usize]).collect();
    (!missing.is_empty()).then_some(Holes { span, missing })
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

fn unknown(cur: Cur) -> Cur {
    Cur {
        node: cur.node,
        shape: None,
    }
}

/// Whether `stmts` read the tensor `name` (`name` as a statement, or `crop(name)`), at any
/// depth.
fn reads_name(stmts: &[ast::Stmt], name: &str) -> bool {
    stmts.iter().any(|st| match &st.kind {
        StmtKind::Call(c) => {
            (c.name.name == name && !c.parens)
                || (c.name.name == "crop"
                    && c.args
                        .iter()
                        .any(|a| matches!(&a.value.kind, ast::ExprKind::Var(n) if n == name)))
        }
        _ => st.bodies().into_iter().any(|b| reads_name(b, name)),
    })
}

/// Whether `e` reads a tensor's size, `in.h` or `skip.w`, anywhere in it.
fn reads_tensor_size(e: &ast::Expr) -> bool {
    let mut found = false;
    ast::walk_expr(e, &mut |x| {
        found |= matches!(
            x.kind,
            ast::ExprKind::InQuery(_) | ast::ExprKind::TensorQuery(..)
        );
    });
    found
}

/// The place of the first `as NAME` in `stmts`, at any depth.
/// Where `repeat NAME in …` defines `name` in `stmts` (or the bodies in them).
fn loop_variable(stmts: &[ast::Stmt], name: &str) -> Option<Span> {
    let mut found = None;
    ast::walk(stmts, &mut |st| {
        if let StmtKind::Repeat(r) = &st.kind {
            if let Some(v) = r.var.as_ref().filter(|v| v.name == name) {
                found.get_or_insert(v.span);
            }
        }
    });
    found
}

fn find_alias(stmts: &[ast::Stmt], name: &str) -> Option<Span> {
    stmts.iter().find_map(|st| {
        if let Some(alias) = st.alias.as_ref().filter(|a| a.name == name) {
            return Some(alias.span);
        }
        st.bodies().into_iter().find_map(|b| find_alias(b, name))
    })
}

/// The help for a written shortcut whose shape differs from the body's: what to change in it.
/// `has_conv`: whether the shortcut has a `conv` to fix; without one, the fix is to add one.
/// `block_params`: the arguments of the block it is in, so that a stride is written as the
/// block's `stride` argument where that has the value needed (a literal would break the
/// block's other calls).
fn shortcut_help(
    input: &Shape,
    body: &Shape,
    shortcut: &Shape,
    has_conv: bool,
    has_pool: bool,
    block_params: &[(String, i64)],
) -> String {
    let (Some([h, w]), Some([bh, bw]), Some(ss)) =
        (input.spatial(), body.spatial(), shortcut.spatial())
    else {
        return format!("the shortcut must give {body}, like the body");
    };
    let channels_ok = shortcut.channels() == body.channels();
    let size_ok = ss == [bh, bw];
    // The stride a 1×1 conv needs to take h×w to bh×bw.
    let stride = (1..=64).find(|&s| (h.max(1) - 1) / s + 1 == bh && (w.max(1) - 1) / s + 1 == bw);
    // `stride` itself before another stride-like name of the same value (`dw_stride`).
    let stride_param = |s: u64| {
        let candidates = || {
            block_params
                .iter()
                .filter(move |(n, v)| is_stride_name(n) && *v == s as i64)
        };
        candidates()
            .find(|(n, _)| n == "stride")
            .or_else(|| candidates().next())
            .map(|(n, _)| n.as_str())
    };
    let stride_fix = match stride {
        Some(s) if s > 1 && has_conv => match stride_param(s) {
            Some(p) => format!("give its conv the body's stride, `stride={p}` (here {s})"),
            None => format!("give its conv the body's stride, `stride={s}`"),
        },
        Some(s) if s > 1 => format!(
            "add a projection `conv({}, 1, stride={})` to it",
            body.channels(),
            stride_param(s).map_or(s.to_string(), str::to_string)
        ),
        // The body keeps the input's size and the shortcut shrinks it: its conv's stride.
        Some(1) if has_conv && !has_pool && ss[0] <= h && ss[1] <= w => {
            "remove the stride of the shortcut's conv, as the body keeps the input's size (or \
             give the body's first conv the same stride, if the block is meant to downsample)"
                .to_string()
        }
        // A shortcut from a skip at another scale (`shortcut { e1 }` named before a
        // downsampling): a whole factor off, pooled or projected down, or upsampled.
        _ => {
            let whole = |big: [u64; 2], small: [u64; 2]| {
                (small[0] > 0
                    && small[1] > 0
                    && big[0].is_multiple_of(small[0])
                    && big[1].is_multiple_of(small[1]))
                .then(|| (big[0] / small[0], big[1] / small[1]))
                .filter(|(fh, fw)| fh == fw && *fh > 1)
                .map(|(f, _)| f)
            };
            match (whole(ss, [bh, bw]), whole([bh, bw], ss)) {
                (Some(f), _) => format!(
                    "pool it to {bh}×{bw} at its end, `maxpool({f})`, or project it with a \
                     stride, `conv({}, 1, stride={f})` (ResNet's downsampling shortcut)",
                    body.channels()
                ),
                (_, Some(f)) => format!("upsample it to {bh}×{bw} at its end, `upsample({f})`"),
                _ => format!("make it give {bh}×{bw}"),
            }
        }
    };
    if !has_conv && size_ok {
        return format!(
            "the shortcut gives {} channels but the body {}: add a projection `conv({}, 1)` to it",
            shortcut.channels(),
            body.channels(),
            body.channels()
        );
    }
    // A pooling shortcut rounds down where the body's strided conv (with padding) rounds up:
    // 15 → 7 against 8.
    if has_pool && !size_ok && ss[0] <= bh && ss[1] <= bw {
        if let Some(s) = stride.filter(|&s| s > 1) {
            let channels = match (channels_ok, has_conv) {
                (true, _) => String::new(),
                (false, true) => format!(
                    "; and its conv must give the body's {} channels, not {}",
                    body.channels(),
                    shortcut.channels()
                ),
                (false, false) => format!(
                    "; it also needs a conv for the body's {} channels (it gives {})",
                    body.channels(),
                    shortcut.channels()
                ),
            };
            return format!(
                "the shortcut gives {}×{} but the body {bh}×{bw}: its pooling drops the last \
                 rows and columns where the body's padded, strided conv keeps them; pool with \
                 `ceil=true`, or downsample with the conv instead, `conv({}, 1, stride={s})`\
                 {channels}",
                ss[0],
                ss[1],
                body.channels()
            );
        }
    }
    match (channels_ok, size_ok) {
        (true, false) => format!(
            "the shortcut gives {}×{} but the body {bh}×{bw}: {stride_fix}",
            ss[0], ss[1]
        ),
        (false, true) => format!(
            "the shortcut gives {} channels but the body {}: make its conv produce {}",
            shortcut.channels(),
            body.channels(),
            body.channels()
        ),
        _ if has_conv => format!(
            "the shortcut must give {body}, like the body: make its conv produce {} channels and {stride_fix}",
            body.channels()
        ),
        // No conv to fix, channels and size both off: a projection does both. Without a
        // pooling, the shortcut's size is that of the tensor it starts from (a named skip
        // may be another than the residual's input): its stride is reckoned from there.
        _ => {
            let from_start = (!has_pool)
                .then(|| {
                    (1..=64u64).find(|&s| {
                        (ss[0].max(1) - 1) / s + 1 == bh && (ss[1].max(1) - 1) / s + 1 == bw
                    })
                })
                .flatten();
            match from_start {
                Some(s) => format!(
                    "the shortcut must give {body}, like the body: add a projection \
                     `conv({}, 1{})` to it, for the body's {} channels (it gives {}){}",
                    body.channels(),
                    if s > 1 {
                        format!(", stride={}", stride_param(s).map_or(s.to_string(), str::to_string))
                    } else {
                        String::new()
                    },
                    body.channels(),
                    shortcut.channels(),
                    if s > 1 {
                        format!(" and its {}×{}", bh, bw)
                    } else {
                        String::new()
                    }
                ),
                None => format!(
                    "the shortcut must give {body}, like the body: it needs a conv for the \
                     body's {} channels (it gives {}), and to {stride_fix}",
                    body.channels(),
                    shortcut.channels()
                ),
            }
        }
    }
}

/// A residual whose body changes the rank (a `flatten` or `global_avgpool flatten` inside
/// it): no shortcut can follow.
fn rank_change_help(input: &Shape, body: &Shape) -> String {
    format!(
        "the body turns {input} into {body}, another rank: a residual adds tensors of one shape, \
         so end the body before it changes the rank and flatten (or pool) after the residual"
    )
}

/// Whether a block's parameter is named as a stride: `stride`, `strides`, `down_stride`, or
/// the short `s` and `st` (torchvision's MobileNet blocks).
fn is_stride_name(n: &str) -> bool {
    n.contains("stride") || matches!(n, "s" | "st")
}

/// A residual with a condition (`residual if`, `shortcut if`) that lets the body's shape
/// change through in this call: the condition should take in the change, joined with
/// `join` (`and` for `residual if`, which must be false there; `or` for `shortcut if`,
/// which must be true), written with the block's arguments where one holds the value.
/// `None` when no such term is missing (the condition tests the channels and the stride
/// already, or no argument of this call downsamples): the change has another cause (a
/// missing padding, say), which the general help names.
fn widen_condition_help(
    input: &Shape,
    body: &Shape,
    cond: &ast::Expr,
    keyword: &str,
    join: &str,
    params: &[(String, i64)],
) -> Option<String> {
    // `residual if … and in.c == c` keeps the skip where the shape is kept;
    // `shortcut if … or in.c != c` projects where it changes.
    let ne = if join == "and" { "==" } else { "!=" };
    let mut terms = Vec::new();
    if input.channels() != body.channels() && !reads_in_c(cond) {
        let c = params
            .iter()
            .find(|(n, v)| *v == body.channels() as i64 && !is_stride_name(n))
            .map(|(n, _)| n.clone())
            .unwrap_or_else(|| body.channels().to_string());
        terms.push(format!("in.c {ne} {c}"));
    }
    // A stride argument of this call that downsamples, and that the condition does not test.
    if input.spatial() != body.spatial() {
        if let Some((n, _)) = params
            .iter()
            .find(|(n, v)| is_stride_name(n) && *v != 1 && !reads_var(cond, n))
        {
            terms.push(format!("{n} {ne} 1"));
        }
    }
    if terms.is_empty() {
        return None;
    }
    let (when, role) = if join == "and" {
        (
            format!("holds in this call, where the input is {input}"),
            "the skip must be left out where the body changes the shape",
        )
    } else {
        (
            format!("is false in this call, so the identity passes the input {input}"),
            "the projection must apply wherever the body changes the shape",
        )
    };
    Some(format!(
        "`{keyword}`'s condition {when}, and the body gives {body}: {role}; add \
         `{join} {}` to the condition",
        terms.join(&format!(" {join} "))
    ))
}

fn projection_help(input: &Shape, body: &Shape, has_shortcut: bool) -> String {
    match (input.spatial(), body.spatial()) {
        (Some([h, w]), Some([bh, bw])) if !has_shortcut => {
            // A 1×1 conv with stride s gives ⌊(n − 1) / s⌋ + 1 from n.
            let fits = |s: u64| (h - 1) / s + 1 == bh && (w - 1) / s + 1 == bw;
            // Candidates: small strides, the one the heights imply, and one past the input.
            let implied = (bh > 1).then(|| (h.saturating_sub(1) / (bh - 1)).max(1));
            let mut candidates = (1..=64).chain(implied).chain([h.max(w).max(1)]);
            match candidates.find(|&s| h > 0 && w > 0 && fits(s)) {
                Some(s) => {
                    let stride = if s > 1 {
                        format!(", stride={s}")
                    } else {
                        String::new()
                    };
                    format!(
                        "add a projection shortcut: `residual {{ … }} shortcut {{ conv({}, 1{stride}) }}`",
                        body.channels()
                    )
                }
                None if bh > h || bw > w => {
                    let up = if h > 0 && w > 0 && bh % h == 0 && bw % w == 0 && bh / h == bw / w {
                        let f = bh / h;
                        format!(
                            ", e.g. `residual {{ … }} shortcut {{ convT({}, {f}, stride={f}) }}`",
                            body.channels()
                        )
                    } else {
                        String::new()
                    };
                    format!(
                        "the body enlarges {h}×{w} to {bh}×{bw}: the shortcut must upsample too{up}"
                    )
                }
                None => format!(
                    "the body turns {h}×{w} into {bh}×{bw}, which no strided 1×1 shortcut matches: \
                     its layers do not keep the size (a k×k conv or pooling of stride 1 and \
                     dilation d keeps it with pad=d·(k−1)/2: `conv(C, 3, pad=1)`, `conv(C, 3, \
                     pad=2, dilation=2)`, `maxpool(3, stride=1, pad=1)`; or `pad=same`), or the \
                     shortcut must shrink it alike (the body's pooling in `shortcut {{ … }}`)"
                ),
            }
        }
        // Vectors: a `linear` projects them.
        (None, None) if !has_shortcut => format!(
            "add a projection shortcut: `residual {{ … }} shortcut {{ linear({}) }}`",
            body.channels()
        ),
        (None, None) => format!(
            "the shortcut must give {body}, like the body: make its `linear` give {}",
            body.channels()
        ),
        _ => format!(
            "the shortcut must give {body}, like the body; make its conv produce {} channels with the body's stride",
            body.channels()
        ),
    }
}

/// Inside a block, the projection written with the block's own arguments, under the
/// condition that makes it needed (ResNet's `shortcut if in.c != c or stride != 1`): a
/// literal `conv(128, 1, stride=2)` would be wrong for the calls that keep the shape.
fn block_projection_help(
    input: &Shape,
    body: &Shape,
    params: &[(String, i64)],
    batchnorm: bool,
) -> Option<String> {
    let ([h, w], [bh, bw]) = (input.spatial()?, body.spatial()?);
    let stride =
        (1..=64).find(|&s| (h.max(1) - 1) / s + 1 == bh && (w.max(1) - 1) / s + 1 == bw)?;
    let is_stride = is_stride_name;
    let channels = params
        .iter()
        .find(|(n, v)| *v == body.channels() as i64 && !is_stride(n))
        .map(|(n, _)| n.as_str())?;
    // A stride argument by its name (its value may be 1 in this call and 2 in the next);
    // without one, the body's stride is written in it and holds for every call.
    let stride_param = params
        .iter()
        .map(|(n, _)| n.as_str())
        .find(|n| is_stride(n));
    let bn = if batchnorm { " batchnorm" } else { "" };
    Some(match stride_param {
        Some(sp) => format!(
            "add a projection shortcut for the calls that change the shape: `residual {{ … }} \
             shortcut if in.c != {channels} or {sp} != 1 {{ conv({channels}, 1, stride={sp}){bn} }}` \
             (the other calls keep the identity)"
        ),
        None if stride > 1 => format!(
            "add a projection shortcut (every call downsamples): `residual {{ … }} shortcut {{ \
             conv({channels}, 1, stride={stride}){bn} }}`"
        ),
        None => format!(
            "add a projection shortcut for the calls that change the channels: `residual {{ … }} \
             shortcut if in.c != {channels} {{ conv({channels}, 1){bn} }}`"
        ),
    })
}

/// A transposed conv that falls short of the asserted size by less than its stride (or
/// dilation): `convT(256, 3, stride=2, pad=1)` gives 2n − 1, not 2n. The fix is `output_pad`
/// (PyTorch's `output_padding`) or a kernel that much larger.
fn convt_short(op: &Op, expected: &Shape, got: &Shape) -> Option<String> {
    let Op::ConvTranspose(a) = op else {
        return None;
    };
    let (Some(want), Some(have)) = (expected.spatial(), got.spatial()) else {
        return None;
    };
    if expected.channels() != got.channels() {
        return None;
    }
    let mut pad = [0u64; 2];
    for axis in 0..2 {
        let short = want[axis].checked_sub(have[axis])?;
        pad[axis] = a.output_pad[axis] + short;
        if pad[axis] >= a.stride[axis].max(a.dilation[axis]) {
            return None;
        }
    }
    if pad == a.output_pad {
        return None;
    }
    let text = |p: [u64; 2]| {
        if p[0] == p[1] {
            p[0].to_string()
        } else {
            format!("[{}, {}]", p[0], p[1])
        }
    };
    let kernel = [
        a.kernel[0] + pad[0] - a.output_pad[0],
        a.kernel[1] + pad[1] - a.output_pad[1],
    ];
    let by_kernel = if a.dilation == [1, 1] && a.output_pad == [0, 0] {
        format!(", or a kernel of {}", text(kernel))
    } else {
        String::new()
    };
    Some(format!(
        "the transposed conv falls short of {} by less than its stride (or dilation): \
         `output_pad={}` adds \
         the missing rows and columns (PyTorch's `output_padding`){by_kernel}",
        Shape(want.to_vec()),
        text(pad)
    ))
}

/// Whether an expression reads the variable `name`.
fn reads_var(e: &ast::Expr, name: &str) -> bool {
    match &e.kind {
        ast::ExprKind::Var(v) => v == name,
        ast::ExprKind::List(xs) | ast::ExprKind::Call(_, _, xs) => {
            xs.iter().any(|x| reads_var(x, name))
        }
        ast::ExprKind::Index(a, b) | ast::ExprKind::Binary(_, a, b) => {
            reads_var(a, name) || reads_var(b, name)
        }
        ast::ExprKind::Unary(_, a) => reads_var(a, name),
        _ => false,
    }
}

/// The first `in.…` query an expression makes, if any.
fn in_query_in(e: &ast::Expr) -> Option<&ast::Expr> {
    match &e.kind {
        ast::ExprKind::InQuery(_) => Some(e),
        ast::ExprKind::List(xs) | ast::ExprKind::Call(_, _, xs) => xs.iter().find_map(in_query_in),
        ast::ExprKind::Index(a, b) | ast::ExprKind::Binary(_, a, b) => {
            in_query_in(a).or_else(|| in_query_in(b))
        }
        ast::ExprKind::Unary(_, a) => in_query_in(a),
        _ => None,
    }
}

/// Whether an expression reads the incoming channels (`in.c`, or `in.f` of a vector).
fn reads_in_c(e: &ast::Expr) -> bool {
    match &e.kind {
        ast::ExprKind::InQuery(q) => q == "c" || q == "f",
        ast::ExprKind::List(xs) | ast::ExprKind::Call(_, _, xs) => xs.iter().any(reads_in_c),
        ast::ExprKind::Index(a, b) | ast::ExprKind::Binary(_, a, b) => {
            reads_in_c(a) || reads_in_c(b)
        }
        ast::ExprKind::Unary(_, a) => reads_in_c(a),
        _ => false,
    }
}

/// When a layer of the body reads `in.c` in its arguments (`conv(in.c, 1)`, meant to give
/// back the statement's input channels) and the channels came out wrong, what `in.c` was
/// there. The last such layer of the body's own statements is named.
fn ends_with_in_query(body: &[ast::Stmt], input: &Shape, out: &Shape) -> Option<String> {
    if input.channels() == out.channels() {
        return None;
    }
    // The first statement meets the statement's input itself: its `in.c` is right.
    let call = body.iter().skip(1).rev().find_map(|st| match &st.kind {
        StmtKind::Call(call) if call.args.iter().any(|a| reads_in_c(&a.value)) => Some(call),
        _ => None,
    })?;
    Some(format!(
        "`in.c` in `{}(…)` is the channel count of the tensor it meets there, not of the \
         statement's input: to give back the input's {} channels, write the number, or take \
         it as a block argument `c=in.c` (read at the call) and write `c`",
        call.name.name,
        input.channels()
    ))
}

/// The span of the keyword that starts the statement at `span` (`residual`, `gate`).
fn keyword_span(span: Span, keyword: &str) -> Span {
    Span {
        end: span.start + keyword.len() as u32,
        ..span
    }
}

/// `block NAME(a, b, c=…)`, for help lines.
/// `None`, written alone (not within an expression).
fn is_none_literal(e: &ast::Expr) -> bool {
    matches!(&e.kind, ast::ExprKind::Var(n) if n == "None")
}

/// Whether `e` reads one of `names`, as a variable or a tensor's size (`c`, `skip.c`).
fn reads_any(e: &ast::Expr, names: &[&str]) -> bool {
    let mut found = false;
    ast::walk_expr(e, &mut |x| match &x.kind {
        ast::ExprKind::Var(n) | ast::ExprKind::TensorQuery(n, _) => {
            found |= names.contains(&n.as_str());
        }
        _ => {}
    });
    found
}

fn block_signature(block: &ast::BlockDef) -> String {
    let params: Vec<String> = block
        .params
        .iter()
        .map(|p| match p.default {
            Some(_) => format!("{}=…", p.name.name),
            None => p.name.name.clone(),
        })
        .collect();
    format!(
        "the signature is {}({})",
        block.name.name,
        params.join(", ")
    )
}

#[cfg(test)]
mod receptive_field_tests {
    use super::*;

    /// The algorithm before its buffers were reused: a fresh buffer of the whole span per
    /// convolution.
    fn holes_fresh_buffers(taps: &[(u64, u64)]) -> Option<Holes> {
        let span = taps
            .iter()
            .try_fold(1u64, |acc, &(k, d)| {
                acc.checked_add(k.saturating_sub(1).checked_mul(d)?)
            })
            .filter(|&s| s <= 1_000_000)?;
        let mut reach = vec![false; span as usize];
        reach[0] = true;
        let mut width = 1usize;
        let mut work = 0usize;
        for &(k, d) in taps {
            let (k, d) = (k as usize, d as usize);
            work = work.saturating_add(width.saturating_mul(k));
            if work > 50_000_000 {
                return None;
            }
            let mut next = vec![false; span as usize];
            for (o, _) in reach[..width].iter().enumerate().filter(|(_, &r)| r) {
                for t in 0..k {
                    next[o + t * d] = true;
                }
            }
            width += (k - 1) * d;
            reach = next;
        }
        let missing: Vec<u64> = (0..span).filter(|&o| !reach[o as usize]).collect();
        (!missing.is_empty()).then_some(Holes { span, missing })
    }

    /// Span and missing offsets, comparable.
    fn found(h: Option<Holes>) -> Option<(u64, Vec<u64>)> {
        h.map(|h| (h.span, h.missing))
    }

    proptest::proptest! {
        /// Reusing the buffers finds the same holes (so the same warnings) as before.
        #[test]
        fn reused_buffers_find_the_same_holes(
            taps in proptest::collection::vec((1u64..6, 1u64..40), 0..12)
        ) {
            proptest::prop_assert_eq!(
                found(receptive_field_holes(&taps)),
                found(holes_fresh_buffers(&taps))
            );
        }
    }

    /// 2,000,000 1×1 convolutions between a 3×3 and a conv of dilation 999,997: a buffer of
    /// the million-pixel span per convolution took 45 s (the work is now linear in the
    /// chain; no timing is asserted here, the machines are shared).
    #[test]
    fn a_long_chain_below_a_wide_dilation_finds_its_holes() {
        let mut taps = vec![(3, 1)];
        taps.extend(std::iter::repeat_n((1, 1), 1_999_990));
        taps.push((2, 999_997));
        let holes = receptive_field_holes(&taps).expect("holes");
        // Reached: 0, 1, 2 and 999,997 more; every offset between is a hole.
        assert_eq!(holes.span, 1_000_000);
        assert_eq!(holes.missing, (3..999_997).collect::<Vec<u64>>());
    }
}

//! Compile-time values and expression evaluation. All integer arithmetic is checked:
//! overflow and division by zero are diagnostics, never a wrap or a panic.

use crate::diag::{did_you_mean, Diagnostic};
use crate::ir::Shape;
use crate::source::Span;
use crate::syntax::ast::{BinaryOp, Expr, ExprKind, UnaryOp};
use std::cell::RefCell;
use std::collections::HashMap;

/// The most size reads one elaboration records: the first few are all a message names.
const MAX_SIZE_READS: usize = 8;

thread_local! {
    /// Where this thread's elaboration read an image's height or width (`in.h`, `e1.w`):
    /// a value that holds at the declared input size only. Evaluation is a pure function of
    /// its arguments everywhere else; this side record spares threading a log through
    /// every evaluation site (see [`record_size_reads`]).
    static SIZE_READS: RefCell<Option<Vec<Span>>> = const { RefCell::new(None) };
    /// The work this thread's evaluations did since [`take_eval_work`] last read it: one
    /// per expression evaluated, plus the values copied out of variables. Each evaluation
    /// is bounded (by the file's size and [`MAX_LIST_VALUES`]), but a large list evaluated
    /// at each of millions of calls or iterations is not; elaboration charges this against
    /// a budget of its own.
    static EVAL_WORK: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// The evaluation work done on this thread since the last call (see `EVAL_WORK`).
pub fn take_eval_work() -> u64 {
    EVAL_WORK.with(|w| w.replace(0))
}

fn add_eval_work(n: u64) {
    EVAL_WORK.with(|w| w.set(w.get().saturating_add(n)));
}

/// Records the size reads of what `f` evaluates (up to [`MAX_SIZE_READS`], first first).
pub fn record_size_reads<T>(f: impl FnOnce() -> T) -> (T, Vec<Span>) {
    let outer = SIZE_READS.with(|r| r.replace(Some(Vec::new())));
    let value = f();
    let reads = SIZE_READS.with(|r| r.replace(outer)).unwrap_or_default();
    (value, reads)
}

/// Records a read of an image's height or width at `span` (while [`record_size_reads`] runs).
pub fn note_size_read(span: Span) {
    SIZE_READS.with(|r| {
        if let Some(reads) = r.borrow_mut().as_mut() {
            if reads.len() < MAX_SIZE_READS {
                reads.push(span);
            }
        }
    });
}

#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Int(i64),
    Float(f64),
    Bool(bool),
    List(Vec<Value>),
    /// `same` padding.
    Same,
}

/// The most values one list may hold: its items, and those of nested lists (each nested
/// list counting as one value too, so that lists of empty lists cannot grow unchecked).
pub const MAX_LIST_VALUES: usize = 10_000;

impl Value {
    /// How many values this one is: 1 for a number, 1 plus its items' for a list.
    pub fn size(&self) -> usize {
        match self {
            Value::List(items) => items.iter().map(Value::size).fold(1, usize::saturating_add),
            _ => 1,
        }
    }

    /// "the integer 3", "a list of 2 values", … for messages.
    pub fn describe(&self) -> String {
        match self {
            Value::Int(n) => format!("the integer {n}"),
            // `{:?}` keeps the decimal point: "the number 10.0", not "10".
            Value::Float(x) => format!("the number {x:?}"),
            Value::Bool(b) => format!("the boolean {b}"),
            Value::List(v) if v.len() == 1 => "a list of 1 value".into(),
            Value::List(v) => format!("a list of {} values", v.len()),
            Value::Same => "`same`".into(),
        }
    }

    /// The value as the source would write it: `32`, `0.5`, `[64, 128]`, `same`.
    pub fn written(&self) -> String {
        match self {
            Value::Int(n) => n.to_string(),
            Value::Float(x) => format!("{x:?}"),
            Value::Bool(b) => b.to_string(),
            Value::List(items) => {
                let items: Vec<String> = items.iter().map(Value::written).collect();
                format!("[{}]", items.join(", "))
            }
            Value::Same => "same".into(),
        }
    }
}

/// Variables in scope: block parameters and repeat variables.
#[derive(Clone, Debug, Default)]
pub struct Env {
    vars: HashMap<String, Value>,
    /// The shapes of the tensors named in this body so far, for `e1.h` (`None`: unknown
    /// after an earlier error).
    tensors: HashMap<String, Option<Shape>>,
}

impl Env {
    pub fn new() -> Env {
        Env::default()
    }
    pub fn set(&mut self, name: &str, v: Value) {
        self.vars.insert(name.to_string(), v);
    }
    pub fn remove(&mut self, name: &str) {
        self.vars.remove(name);
    }
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.vars.get(name)
    }
    /// The names of the variables in scope.
    pub fn variable_names(&self) -> impl Iterator<Item = &str> {
        self.vars.keys().map(String::as_str)
    }
    /// Records the shape of the tensor `name` names from here on.
    pub fn set_tensor(&mut self, name: &str, shape: Option<Shape>) {
        self.tensors.insert(name.to_string(), shape);
    }
}

/// The help for `None` read as a value. Where it is written says more (`Elab::retell_none`):
/// an argument ([`NONE_ARGUMENT_HELP`]), an input size, an assertion, a parameter's default.
pub const NONE_HELP: &str = "cnnc has no `None`: write a value (an argument that has a default \
                             is left out to get it)";

/// The help for `None` given as an argument that has a default.
pub const NONE_ARGUMENT_HELP: &str =
    "cnnc has no `None`: leave the argument out to get its default";

#[derive(Debug)]
pub enum EvalError {
    /// A new problem, to report.
    Diag(Box<Diagnostic>),
    /// The value depends on a tensor whose shape is unknown after an earlier error.
    Unknown,
}

fn fail(code: &'static str, msg: String, e: &Expr, label: &str) -> EvalError {
    EvalError::Diag(Box::new(Diagnostic::error(code, msg).label(e.span, label)))
}

fn fail_help(code: &'static str, msg: String, e: &Expr, label: &str, help: String) -> EvalError {
    EvalError::Diag(Box::new(
        Diagnostic::error(code, msg).label(e.span, label).help(help),
    ))
}

/// A variable's value, its copy counted as evaluation work.
fn copied_out(v: &Value) -> Value {
    add_eval_work(v.size() as u64);
    v.clone()
}

/// Evaluates `e`. `incoming` is the shape `in.c`/`in.h`/`in.w` refer to: `None` where no
/// tensor is in scope or its shape is unknown.
pub fn eval(e: &Expr, env: &Env, incoming: Option<&Shape>) -> Result<Value, EvalError> {
    add_eval_work(1);
    match &e.kind {
        ExprKind::Int(n) => Ok(Value::Int(*n)),
        ExprKind::Float(x) => Ok(Value::Float(*x)),
        ExprKind::Bool(b) => Ok(Value::Bool(*b)),
        ExprKind::Same => Ok(Value::Same),
        ExprKind::Var(name) => env.get(name).map(copied_out).ok_or_else(|| {
            let names: Vec<&str> = env.vars.keys().map(String::as_str).collect();
            let literal = match name.as_str() {
                "True" | "False" => Some(format!("booleans are written `{}`", name.to_lowercase())),
                "valid" | "VALID" | "Valid" => Some("for no padding write `pad=0`".to_string()),
                "SAME" | "Same" => Some("`same` is written in lower case: `pad=same`".to_string()),
                "None" => Some(NONE_HELP.to_string()),
                // `block b(c, act=relu) { … act }`: a layer passed as a value.
                _ => layer_as_value(name),
            };
            let help = match (literal, did_you_mean(name, names.iter().copied())) {
                (Some(h), _) => h,
                (None, Some(s)) => format!("did you mean `{s}`?"),
                (None, None) if names.is_empty() => {
                    "no variables are in scope here: only block parameters and repeat variables are variables"
                        .into()
                }
                (None, None) => format!("the variables in scope are: {}", names.join(", ")),
            };
            let label = if super::layers::lookup(name).is_some() {
                "a layer, not a value"
            } else {
                "not defined"
            };
            fail_help(
                "cnnc::elab::unknown_variable",
                format!("unknown variable `{name}`"),
                e,
                label,
                help,
            )
        }),
        ExprKind::InQuery(q) => in_query(q, e, incoming),
        ExprKind::TensorQuery(name, q) => tensor_query(name, q, e, env),
        ExprKind::List(items) => {
            // Checked as it grows: `[x, x]` in a chain of blocks doubles at each, and a few
            // lines must not claim gigabytes.
            let mut out = Vec::with_capacity(items.len());
            let mut size = 0usize;
            for item in items {
                let v = eval(item, env, incoming)?;
                size = size.saturating_add(v.size());
                if size > MAX_LIST_VALUES {
                    return Err(fail_help(
                        "cnnc::elab::too_large",
                        format!("this list would hold more than {MAX_LIST_VALUES} values"),
                        e,
                        "this list",
                        "lists describe a network's configuration (widths, depths, kernel \
                         sizes); compute large sizes with arithmetic instead"
                            .to_string(),
                    ));
                }
                out.push(v);
            }
            Ok(Value::List(out))
        }
        ExprKind::Index(list, index) => {
            let l = eval(list, env, incoming)?;
            let i = eval(index, env, incoming)?;
            match (l, i) {
                (Value::List(items), Value::Int(i)) => {
                    let len = items.len();
                    // As in Python, a negative index counts from the end: `cs[-1]` is the last.
                    let from_start = if i < 0 {
                        i64::try_from(len).ok().and_then(|n| n.checked_add(i))
                    } else {
                        Some(i)
                    };
                    from_start
                        .and_then(|i| usize::try_from(i).ok())
                        .and_then(|i| items.into_iter().nth(i))
                        .ok_or_else(|| {
                            fail_help(
                                "cnnc::elab::index_out_of_range",
                                format!("index {i} is out of range for a list of {len}"),
                                index,
                                "this index",
                                if len == 0 {
                                    "the list is empty: no index is valid".to_string()
                                } else {
                                    format!(
                                        "valid indices are 0 to {}, or -{len} to -1 from the end",
                                        len - 1
                                    )
                                },
                            )
                        })
                }
                (Value::List(_), other) => Err(fail(
                    "cnnc::elab::type_error",
                    format!("a list index must be an integer, got {}", other.describe()),
                    index,
                    "this index",
                )),
                (other, _) => Err(fail(
                    "cnnc::elab::type_error",
                    format!("only lists can be indexed, this is {}", other.describe()),
                    list,
                    "not a list",
                )),
            }
        }
        ExprKind::Unary(op, inner) => {
            let v = eval(inner, env, incoming)?;
            match (op, v) {
                (UnaryOp::Neg, Value::Int(n)) => {
                    n.checked_neg().map(Value::Int).ok_or_else(|| overflow(e))
                }
                (UnaryOp::Neg, Value::Float(x)) => Ok(Value::Float(-x)),
                (UnaryOp::Not, Value::Bool(b)) => Ok(Value::Bool(!b)),
                (op, v) => Err(fail(
                    "cnnc::elab::type_error",
                    format!(
                        "`{}` does not apply to {}",
                        if *op == UnaryOp::Neg { "-" } else { "not" },
                        v.describe()
                    ),
                    e,
                    "here",
                )),
            }
        }
        ExprKind::Binary(op, a, b) => binary(*op, e, a, b, env, incoming),
        ExprKind::Call(name, name_span, args) => call(name, *name_span, args, e, env, incoming),
    }
}

fn overflow(e: &Expr) -> EvalError {
    fail_help(
        "cnnc::elab::overflow",
        "integer overflow: the value does not fit in 64 bits".into(),
        e,
        "this expression",
        "sizes this large cannot be real; check the arithmetic".into(),
    )
}

fn in_query(q: &str, e: &Expr, incoming: Option<&Shape>) -> Result<Value, EvalError> {
    let Some(s) = incoming else {
        return Err(EvalError::Unknown);
    };
    shape_query("in", "the incoming tensor", q, s, e)
}

/// `name.q`: a size of the tensor named `name` in this body.
fn tensor_query(name: &str, q: &str, e: &Expr, env: &Env) -> Result<Value, EvalError> {
    match env.tensors.get(name) {
        Some(Some(s)) => shape_query(name, &format!("the tensor `{name}`"), q, s, e),
        Some(None) => Err(EvalError::Unknown),
        None => {
            let mut named: Vec<&str> = env.tensors.keys().map(String::as_str).collect();
            named.sort_unstable();
            let help = match crate::diag::did_you_mean_text(name, named.iter().copied()) {
                _ if env.get(name).is_none() && name == "input" => "`input` is the model's \
                    input, a named tensor of the model's body only: pass it to the block as an \
                    argument (`b(…, input)`) to read its sizes there"
                    .to_string(),
                _ if env.get(name).is_some() => format!(
                    "`{name}` is a variable (a block's parameter or a repeat's), here {}, not a \
                     tensor: a block's parameter is a tensor when the call passes a tensor's \
                     name (`b(…, e1)`)",
                    env.get(name).map(Value::describe).unwrap_or_default()
                ),
                Some(text) => text,
                None => {
                    named.retain(|n| *n != "input");
                    if named.is_empty() {
                        format!(
                            "name a tensor with `… as {name}` before reading its size; the \
                             incoming tensor's sizes are `in.c`, `in.h` and `in.w`"
                        )
                    } else {
                        format!("the named tensors here are: {}", named.join(", "))
                    }
                }
            };
            Err(fail_help(
                "cnnc::elab::unknown_tensor",
                format!("no tensor is named `{name}`"),
                e,
                "unknown tensor",
                help,
            ))
        }
    }
}

/// Query `q` (`c`, `h`, `w`, `f` or `rank`) of the shape `s`, written `{prefix}.{q}`.
fn shape_query(prefix: &str, what: &str, q: &str, s: &Shape, e: &Expr) -> Result<Value, EvalError> {
    let dim = match (q, s.dims()) {
        ("c", [c, _, _]) | ("f", [c]) => Some(*c),
        ("h", [_, h, _]) | ("w", [_, _, h]) => {
            note_size_read(e.span);
            Some(*h)
        }
        ("rank", d) => Some(d.len() as u64),
        _ => None,
    };
    match dim {
        Some(d) => Ok(Value::Int(d as i64)),
        None => Err(fail_help(
            "cnnc::elab::unknown_variable",
            format!("`{prefix}.{q}` does not exist for {what} {s}"),
            e,
            "here",
            format!(
                "the queries are {prefix}.c, {prefix}.h, {prefix}.w for [C, H, W], {prefix}.f \
                 for [F], and {prefix}.rank"
            ),
        )),
    }
}

fn binary(
    op: BinaryOp,
    e: &Expr,
    a: &Expr,
    b: &Expr,
    env: &Env,
    incoming: Option<&Shape>,
) -> Result<Value, EvalError> {
    // `and` / `or` short-circuit, so `stride != 1 or in.c != c` works where `in` is unknown
    // only if needed.
    if matches!(op, BinaryOp::And | BinaryOp::Or) {
        let l = expect_bool(eval(a, env, incoming)?, a, op)?;
        if (op == BinaryOp::Or && l) || (op == BinaryOp::And && !l) {
            return Ok(Value::Bool(l));
        }
        return Ok(Value::Bool(expect_bool(eval(b, env, incoming)?, b, op)?));
    }
    let l = eval(a, env, incoming)?;
    let r = eval(b, env, incoming)?;
    use BinaryOp::*;
    match (l, r) {
        (Value::Int(x), Value::Int(y)) => match op {
            Add => x.checked_add(y).map(Value::Int).ok_or_else(|| overflow(e)),
            Sub => x.checked_sub(y).map(Value::Int).ok_or_else(|| overflow(e)),
            Mul => x.checked_mul(y).map(Value::Int).ok_or_else(|| overflow(e)),
            Div | Rem if y == 0 => Err(fail_help(
                "cnnc::elab::division_by_zero",
                format!("division by zero in `{}`", op.symbol()),
                e,
                "the divisor is 0 here",
                "the right-hand side evaluates to 0 here; check the values it is computed from"
                    .into(),
            )),
            // Floor division and modulo, as in Python (and the notes).
            Div => x
                .checked_div_euclid(y)
                .map(|q| {
                    if y < 0 && x.rem_euclid(y) != 0 {
                        q - 1
                    } else {
                        q
                    }
                })
                .map(Value::Int)
                .ok_or_else(|| overflow(e)),
            // `i64::MIN % -1` overflows in Rust; it is 0 in Python, as every `x % -1`.
            Rem => Ok(Value::Int(x.checked_rem_euclid(y).map_or(0, |r| {
                if y < 0 && r != 0 {
                    r + y
                } else {
                    r
                }
            }))),
            Eq => Ok(Value::Bool(x == y)),
            Ne => Ok(Value::Bool(x != y)),
            Lt => Ok(Value::Bool(x < y)),
            Le => Ok(Value::Bool(x <= y)),
            Gt => Ok(Value::Bool(x > y)),
            Ge => Ok(Value::Bool(x >= y)),
            And | Or => unreachable!("handled above"),
        },
        (l @ (Value::Int(_) | Value::Float(_)), r @ (Value::Int(_) | Value::Float(_))) => {
            let (x, y) = (as_f64(&l), as_f64(&r));
            match op {
                Add => Ok(Value::Float(x + y)),
                Sub => Ok(Value::Float(x - y)),
                Mul => Ok(Value::Float(x * y)),
                Div | Rem if y == 0.0 => Err(fail(
                    "cnnc::elab::division_by_zero",
                    format!("division by zero in `{}`", op.symbol()),
                    e,
                    "the divisor is 0 here",
                )),
                Div => Ok(Value::Float(x / y)),
                // Python's sign: that of the divisor (`5.0 % -3.0` is -1.0).
                Rem => Ok(Value::Float({
                    let r = x.rem_euclid(y);
                    if y < 0.0 && r != 0.0 {
                        r + y
                    } else {
                        r
                    }
                })),
                Eq => Ok(Value::Bool(x == y)),
                Ne => Ok(Value::Bool(x != y)),
                Lt => Ok(Value::Bool(x < y)),
                Le => Ok(Value::Bool(x <= y)),
                Gt => Ok(Value::Bool(x > y)),
                Ge => Ok(Value::Bool(x >= y)),
                And | Or => unreachable!("handled above"),
            }
        }
        (l, r) if matches!(op, Eq | Ne) => Ok(Value::Bool((l == r) == (op == Eq))),
        (l, r) => {
            let message = format!(
                "`{}` does not apply to {} and {}",
                op.symbol(),
                l.describe(),
                r.describe()
            );
            // Python's `[stride] + [1] * (blocks - 1)` (torchvision's `_make_layer`): lists
            // do not join or repeat; a list indexed by the loop variable does the same.
            let lists = matches!(l, Value::List(_)) || matches!(r, Value::List(_));
            Err(if matches!(op, Add | Mul) && lists {
                fail_help(
                    "cnnc::elab::type_error",
                    message,
                    e,
                    "here",
                    "lists do not join or repeat in cnnc: write the list out (`[2, 1, 1]`), or \
                     index one by the loop variable, as PyTorch's `[stride] + [1] * (blocks - \
                     1)` is `repeat i in 0..blocks { conv(c, 3, stride=[stride, 1][min(i, 1)], \
                     pad=1) }`"
                        .to_string(),
                )
            } else {
                fail("cnnc::elab::type_error", message, e, "here")
            })
        }
    }
}

fn as_f64(v: &Value) -> f64 {
    match v {
        Value::Int(n) => *n as f64,
        Value::Float(x) => *x,
        _ => f64::NAN,
    }
}

fn expect_bool(v: Value, e: &Expr, op: BinaryOp) -> Result<bool, EvalError> {
    match v {
        Value::Bool(b) => Ok(b),
        other => Err(fail(
            "cnnc::elab::type_error",
            format!("`{}` needs booleans, got {}", op.symbol(), other.describe()),
            e,
            "not a boolean",
        )),
    }
}

/// For a layer's name where a value is read (`act=relu`, `b(pixel_shuffle(2))`): what to
/// write instead, a flag that picks the layer with `if`.
fn layer_as_value(name: &str) -> Option<String> {
    let spec = super::layers::lookup(name)?;
    // A layer with required arguments is called with them in the example.
    let call = if spec.params.iter().any(|p| p.required) {
        format!("{name}(…)")
    } else {
        name.to_string()
    };
    Some(format!(
        "`{name}` is a layer, and a layer is no value to pass or compute with: pass a flag \
         instead and pick the layer with `if`, as in `block b(c, use_{name}=true) {{ conv(c, \
         3) if use_{name} {{ {call} }} }}`"
    ))
}

/// The functions of the expression language.
const FUNCTIONS: [&str; 3] = ["min", "max", "len"];

/// `min(a, b, …)` / `max(a, b, …)` (or of one list), as Python's: the value picked keeps its
/// type (`max(1.5, 2)` is the integer 2). `len(list)`: its number of items. Anything else is
/// an unknown function, with what to write instead for the ones PyTorch code calls.
fn call(
    name: &str,
    name_span: crate::source::Span,
    args: &[Expr],
    e: &Expr,
    env: &Env,
    incoming: Option<&Shape>,
) -> Result<Value, EvalError> {
    if !FUNCTIONS.contains(&name) {
        let help = match name {
            "int" | "floor" | "round" | "ceil" => {
                "`/` on integers already rounds down (`a / b` is ⌊a/b⌋), and `(a + b - 1) / \
                 b` rounds up: keep the arithmetic in integers (`c / 4`, not `c * 0.25`)"
                    .to_string()
            }
            "range" => "a range of a repeat is `repeat i in a..b { … }`, and `repeat w in \
                        widths { … }` runs over a list's items"
                .to_string(),
            _ if let Some(help) = layer_as_value(name) => help,
            _ => match did_you_mean(name, FUNCTIONS.iter().copied()) {
                Some(f) => {
                    format!("did you mean `{f}`? the functions are `min`, `max` and `len`")
                }
                None => "the functions are `min`, `max` and `len`".to_string(),
            },
        };
        return Err(EvalError::Diag(Box::new(
            Diagnostic::error(
                "cnnc::elab::unknown_function",
                format!("unknown function `{name}`"),
            )
            .label(
                name_span,
                if super::layers::lookup(name).is_some() {
                    "a layer, not a value"
                } else {
                    "not a function cnnc has"
                },
            )
            .help(help),
        )));
    }
    let mut values = args
        .iter()
        .map(|a| eval(a, env, incoming))
        .collect::<Result<Vec<_>, _>>()?;
    if name == "len" {
        return match values.as_slice() {
            [Value::List(items)] => Ok(Value::Int(items.len() as i64)),
            [other] => Err(fail(
                "cnnc::elab::type_error",
                format!("`len` takes a list, got {}", other.describe()),
                &args[0],
                "not a list",
            )),
            _ => Err(fail_help(
                "cnnc::elab::argument_count",
                format!("`len` takes one list, got {} arguments", values.len()),
                e,
                "here",
                "write `len(widths)`".to_string(),
            )),
        };
    }
    // One list argument is its items (Python's `max(widths)`), and may hold one number.
    let from_list = matches!(values.as_slice(), [Value::List(_)]);
    if let [Value::List(items)] = values.as_slice() {
        values = items.clone();
    }
    if values.is_empty() || (values.len() < 2 && !from_list) {
        let (got, help) = if from_list {
            (
                "an empty list".to_string(),
                format!("`{name}` of a list needs one number or more"),
            )
        } else {
            (values.len().to_string(), format!("write `{name}(a, b)`"))
        };
        return Err(fail_help(
            "cnnc::elab::argument_count",
            format!("`{name}` takes two or more numbers (or one list), got {got}"),
            e,
            "here",
            help,
        ));
    }
    for (i, v) in values.iter().enumerate() {
        if !matches!(v, Value::Int(_) | Value::Float(_)) {
            let at = args
                .get(i)
                .filter(|_| args.len() == values.len())
                .unwrap_or(e);
            return Err(fail(
                "cnnc::elab::type_error",
                format!("`{name}` takes numbers, got {}", v.describe()),
                at,
                "not a number",
            ));
        }
    }
    // As Python's: the first largest (smallest) value, of its own type, compared exactly
    // between integers.
    let better = |a: &Value, b: &Value| -> bool {
        let ord = match (a, b) {
            (Value::Int(x), Value::Int(y)) => x.cmp(y),
            _ => {
                let f = |v: &Value| match v {
                    Value::Int(n) => *n as f64,
                    Value::Float(x) => *x,
                    _ => f64::NAN,
                };
                f(a).partial_cmp(&f(b)).unwrap_or(std::cmp::Ordering::Equal)
            }
        };
        if name == "max" {
            ord.is_gt()
        } else {
            ord.is_lt()
        }
    };
    let mut pick = &values[0];
    for v in &values[1..] {
        if better(v, pick) {
            pick = v;
        }
    }
    Ok(pick.clone())
}

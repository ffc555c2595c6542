//! The typed syntax tree. Every node keeps the byte span of the text it came from.

use crate::source::Span;
use std::fmt;

#[derive(Clone, Debug, PartialEq)]
pub struct File {
    pub items: Vec<Item>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Item {
    /// `use "other.cnn"`: the blocks (and models) of another file become visible.
    Use(UseDecl),
    Block(BlockDef),
    Model(ModelDef),
}

#[derive(Clone, Debug, PartialEq)]
pub struct UseDecl {
    /// The path as written, without quotes, relative to the file containing the `use`.
    pub path: String,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Ident {
    pub name: String,
    pub span: Span,
}

/// `block NAME(params) { body }`
#[derive(Clone, Debug, PartialEq)]
pub struct BlockDef {
    pub name: Ident,
    pub params: Vec<Param>,
    pub body: Vec<Stmt>,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Param {
    pub name: Ident,
    pub default: Option<Expr>,
}

/// `model NAME(input: [C, H, W]) { body }`
#[derive(Clone, Debug, PartialEq)]
pub struct ModelDef {
    pub name: Ident,
    /// The input shape's dimensions, without the batch; constant expressions.
    pub input: Vec<Expr>,
    /// Span of the `[C, H, W]` list.
    pub input_span: Span,
    pub body: Vec<Stmt>,
    pub span: Span,
}

/// One statement of a body, with its optional postfix parts: `stmt as NAME : [shape]`.
#[derive(Clone, Debug, PartialEq)]
pub struct Stmt {
    pub kind: StmtKind,
    /// `as NAME`: keeps the statement's output tensor under a name.
    pub alias: Option<Ident>,
    /// `: [400]`: a checked assertion of the statement's output shape.
    pub assert: Option<ShapeAssert>,
    pub span: Span,
}

impl Stmt {
    /// The bodies nested in this statement (a repeat's, an if's two, each concat branch, a
    /// residual's and its shortcut's, a gate's), in source order.
    pub fn bodies(&self) -> Vec<&[Stmt]> {
        match &self.kind {
            StmtKind::Call(_) => Vec::new(),
            StmtKind::Repeat(r) => vec![&r.body],
            StmtKind::If(i) => std::iter::once(&i.then_body[..])
                .chain(i.else_body.as_deref())
                .collect(),
            StmtKind::Concat(c) => c.branches.iter().map(|b| &b.body[..]).collect(),
            StmtKind::Residual(r) => std::iter::once(&r.body[..])
                .chain(r.shortcut.as_ref().map(|s| &s.body[..]))
                .collect(),
            StmtKind::Gate(g) => vec![&g.body],
            StmtKind::Output(o) => vec![&o.body],
        }
    }
}

/// Calls `f` on every statement of `stmts` and of the bodies nested in them, each before
/// those nested in it.
pub fn walk<'s>(stmts: &'s [Stmt], f: &mut impl FnMut(&'s Stmt)) {
    for st in stmts {
        f(st);
        for body in st.bodies() {
            walk(body, f);
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct ShapeAssert {
    pub dims: Vec<Expr>,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub enum StmtKind {
    /// A layer (`conv(6, 5, pad=2)`, `relu`), a block call, or a named tensor (`e2`).
    Call(Call),
    /// `repeat n { }` or `repeat i in a..b { }`.
    Repeat(Repeat),
    /// `if cond { } else { }`; `else if` nests an `If` in the else body.
    If(IfStmt),
    /// `concat { {…} {…} stmt … }`.
    Concat(Concat),
    /// `residual { body } shortcut [if cond] { … }`.
    Residual(Residual),
    /// `gate { body }`: the input times what the body makes of it (squeeze-and-excitation).
    Gate(Gate),
    /// `output NAME { body }`: another output of the model, the body applied to the tensor
    /// here, which goes on unchanged (GoogLeNet's auxiliary classifiers).
    Output(Output),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Call {
    pub name: Ident,
    pub args: Vec<Arg>,
    /// Whether the call was written with parentheses (`relu()` vs `relu`).
    pub parens: bool,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Arg {
    /// `Some` for a named argument (`pad=2`).
    pub name: Option<Ident>,
    pub value: Expr,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Repeat {
    /// `Some(i)` in `repeat i in a..b`.
    pub var: Option<Ident>,
    pub range: RepeatRange,
    pub body: Vec<Stmt>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum RepeatRange {
    /// `repeat n`: n times (the variable, if any, runs 0..n).
    Count(Expr),
    /// `a..b`: from a inclusive to b exclusive.
    Range(Expr, Expr),
    /// `repeat w in widths`: once per item of a list, the variable each item in turn.
    Each(Expr),
}

#[derive(Clone, Debug, PartialEq)]
pub struct IfStmt {
    pub cond: Expr,
    pub then_body: Vec<Stmt>,
    pub else_body: Option<Vec<Stmt>>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Concat {
    pub branches: Vec<Branch>,
}

/// One branch of a concat: a braced sequence (`{}` is the identity) or a single statement.
#[derive(Clone, Debug, PartialEq)]
pub struct Branch {
    pub body: Vec<Stmt>,
    pub span: Span,
    /// It begins on the line where the branch before it ends (`concat { a b }`).
    pub shares_line: bool,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Residual {
    /// `residual if cond { … }`: the sum only when cond holds, else the body alone.
    pub cond: Option<Expr>,
    pub body: Vec<Stmt>,
    /// Span of the body's braces, for labels.
    pub body_span: Span,
    pub shortcut: Option<Shortcut>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Gate {
    pub body: Vec<Stmt>,
    /// Span of the body's braces, for labels.
    pub body_span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Output {
    pub name: Ident,
    pub body: Vec<Stmt>,
    /// Span of the body's braces, for labels.
    pub body_span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Shortcut {
    /// `shortcut if cond { … }`: the projection applies only when cond holds.
    pub cond: Option<Expr>,
    pub body: Vec<Stmt>,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Expr {
    pub kind: ExprKind,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub enum ExprKind {
    Int(i64),
    Float(f64),
    Bool(bool),
    /// `same` (for `pad=same`).
    Same,
    Var(String),
    /// `in.c`, `in.h`, `in.w`, `in.f` (features of a rank-1 tensor), `in.rank`.
    InQuery(String),
    /// `e1.h`: a named tensor's size (the tensor's name, then the query as for `in`).
    TensorQuery(String, String),
    List(Vec<Expr>),
    Index(Box<Expr>, Box<Expr>),
    Unary(UnaryOp, Box<Expr>),
    Binary(BinaryOp, Box<Expr>, Box<Expr>),
    /// `max(a, b)`: a function (its name and the name's span) applied to arguments.
    Call(String, Span, Vec<Expr>),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnaryOp {
    Neg,
    Not,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinaryOp {
    Add,
    Sub,
    Mul,
    Div,
    Rem,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    And,
    Or,
}

impl BinaryOp {
    pub fn symbol(self) -> &'static str {
        match self {
            BinaryOp::Add => "+",
            BinaryOp::Sub => "-",
            BinaryOp::Mul => "*",
            BinaryOp::Div => "/",
            BinaryOp::Rem => "%",
            BinaryOp::Eq => "==",
            BinaryOp::Ne => "!=",
            BinaryOp::Lt => "<",
            BinaryOp::Le => "<=",
            BinaryOp::Gt => ">",
            BinaryOp::Ge => ">=",
            BinaryOp::And => "and",
            BinaryOp::Or => "or",
        }
    }
}

impl BinaryOp {
    /// Binding strength, as in the grammar: `or` loosest, `*` `/` `%` tightest.
    fn precedence(self) -> u8 {
        match self {
            BinaryOp::Or => 1,
            BinaryOp::And => 2,
            BinaryOp::Eq
            | BinaryOp::Ne
            | BinaryOp::Lt
            | BinaryOp::Le
            | BinaryOp::Gt
            | BinaryOp::Ge => 4,
            BinaryOp::Add | BinaryOp::Sub => 5,
            BinaryOp::Mul | BinaryOp::Div | BinaryOp::Rem => 6,
        }
    }
}

/// How tightly an expression binds: an operand looser than its place is parenthesized.
fn binding(e: &Expr) -> u8 {
    match &e.kind {
        ExprKind::Binary(op, _, _) => op.precedence(),
        ExprKind::Unary(UnaryOp::Not, _) => 3,
        ExprKind::Unary(UnaryOp::Neg, _) => 7,
        _ => 8,
    }
}

struct Operand<'a>(&'a Expr, u8);

impl fmt::Display for Operand<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if binding(self.0) < self.1 {
            write!(f, "({})", self.0)
        } else {
            write!(f, "{}", self.0)
        }
    }
}

fn comma_separated<T: fmt::Display>(f: &mut fmt::Formatter<'_>, items: &[T]) -> fmt::Result {
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            f.write_str(", ")?;
        }
        write!(f, "{item}")?;
    }
    Ok(())
}

/// The expression as it could be written (spacing normalized, parentheses only where
/// needed), for diagnostics that quote a fix.
impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            ExprKind::Int(n) => write!(f, "{n}"),
            ExprKind::Float(x) => write!(f, "{x:?}"),
            ExprKind::Bool(b) => write!(f, "{b}"),
            ExprKind::Same => f.write_str("same"),
            ExprKind::Var(name) => f.write_str(name),
            ExprKind::InQuery(field) => write!(f, "in.{field}"),
            ExprKind::TensorQuery(name, field) => write!(f, "{name}.{field}"),
            ExprKind::List(items) => {
                f.write_str("[")?;
                comma_separated(f, items)?;
                f.write_str("]")
            }
            ExprKind::Index(list, i) => write!(f, "{}[{i}]", Operand(list, 8)),
            ExprKind::Unary(UnaryOp::Neg, x) => write!(f, "-{}", Operand(x, 7)),
            ExprKind::Unary(UnaryOp::Not, x) => write!(f, "not {}", Operand(x, 3)),
            ExprKind::Binary(op, a, b) => {
                let p = op.precedence();
                // Left-associative: an equal-precedence right operand needs parentheses,
                // and comparisons do not chain, so neither side may be one unbracketed.
                let left = if p == 4 { p + 1 } else { p };
                write!(
                    f,
                    "{} {} {}",
                    Operand(a, left),
                    op.symbol(),
                    Operand(b, p + 1)
                )
            }
            ExprKind::Call(name, _, args) => {
                write!(f, "{name}(")?;
                comma_separated(f, args)?;
                f.write_str(")")
            }
        }
    }
}

impl fmt::Display for Arg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.name {
            Some(name) => write!(f, "{}={}", name.name, self.value),
            None => write!(f, "{}", self.value),
        }
    }
}

/// The call as it could be written: `conv(64, 5, pad=2)`, `relu`.
impl fmt::Display for Call {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name.name)?;
        if self.parens {
            f.write_str("(")?;
            comma_separated(f, &self.args)?;
            f.write_str(")")?;
        }
        Ok(())
    }
}

/// Calls `f` on `e` and every expression inside it, outer first.
pub fn walk_expr(e: &Expr, f: &mut impl FnMut(&Expr)) {
    f(e);
    match &e.kind {
        ExprKind::List(xs) | ExprKind::Call(_, _, xs) => xs.iter().for_each(|x| walk_expr(x, f)),
        ExprKind::Index(a, b) | ExprKind::Binary(_, a, b) => {
            walk_expr(a, f);
            walk_expr(b, f);
        }
        ExprKind::Unary(_, a) => walk_expr(a, f),
        ExprKind::Int(_)
        | ExprKind::Float(_)
        | ExprKind::Bool(_)
        | ExprKind::Same
        | ExprKind::Var(_)
        | ExprKind::InQuery(_)
        | ExprKind::TensorQuery(..) => {}
    }
}

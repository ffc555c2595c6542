//! A grammar-aware generator: fuzzer bytes → a small program AST → `.cnn` text.
//!
//! Leaves (layers, arguments, operators) derive [`Arbitrary`]; the recursive parts (bodies,
//! expressions) are drawn by hand with a depth budget, so generation cannot recurse without
//! bound, and with the names in scope (block parameters, loop variables, named tensors), so
//! most programs get past the parser and name resolution into shape checking and lowering.
//! Numbers are mostly plausible (sizes 1..64, kernels 1..7), sometimes extreme.

use arbitrary::{Arbitrary, Result, Unstructured};
use std::fmt::Write;

const MAX_DEPTH: u32 = 5;
const MAX_STMTS: usize = 6;
const MAX_BLOCKS: usize = 4;

/// A whole file: some blocks, then one or two models.
#[derive(Debug)]
pub struct Program {
    pub blocks: Vec<Block>,
    pub models: Vec<Model>,
}

#[derive(Debug)]
pub struct Block {
    pub params: Vec<Option<Expr>>,
    pub body: Vec<Stmt>,
}

#[derive(Debug)]
pub struct Model {
    pub input: Vec<Expr>,
    pub body: Vec<Stmt>,
}

#[derive(Debug)]
pub struct Stmt {
    pub kind: StmtKind,
    pub alias: Option<u8>,
    pub assert: Option<Vec<Expr>>,
}

#[derive(Debug)]
pub enum StmtKind {
    Layer(Layer, Vec<Expr>, Vec<(&'static str, Expr)>),
    /// `crop(tN)` or a bare `tN`.
    Tensor {
        crop: bool,
        name: u8,
    },
    Call {
        block: usize,
        args: Vec<Expr>,
        named: Vec<(usize, Expr)>,
    },
    Repeat {
        var: Option<String>,
        range: (Expr, Option<Expr>),
        body: Vec<Stmt>,
    },
    If {
        cond: Expr,
        then: Vec<Stmt>,
        elifs: Vec<(Expr, Vec<Stmt>)>,
        els: Option<Vec<Stmt>>,
    },
    /// Each branch: braced (`{…}`), or else a single unbraced statement when it has one.
    Concat(Vec<(bool, Vec<Stmt>)>),
    Residual {
        cond: Option<Expr>,
        body: Vec<Stmt>,
        shortcut: Option<(Option<Expr>, Vec<Stmt>)>,
    },
    Gate(Vec<Stmt>),
    /// `output NAME { … }`: 0–3 are `o0`…`o3`, 4 the refused `output`, 5 a tensor's `t0`.
    Output(u8, Vec<Stmt>),
}

#[derive(Arbitrary, Clone, Copy, Debug)]
pub enum Layer {
    Conv,
    ConvT,
    MaxPool,
    AvgPool,
    AdaptiveAvgPool,
    GlobalAvgPool,
    AdaptiveMaxPool,
    GlobalMaxPool,
    BatchNorm,
    Relu,
    Sigmoid,
    Tanh,
    LeakyRelu,
    Elu,
    Silu,
    Gelu,
    Relu6,
    HardSigmoid,
    HardSwish,
    Softmax,
    Dropout,
    Flatten,
    Linear,
    Slice,
    ChannelShuffle,
    PixelShuffle,
    PixelUnshuffle,
    Pad,
    GroupNorm,
    InstanceNorm,
    Mish,
    Prelu,
    Scale,
    Normalize,
    LayerNorm,
    LayerScale,
    Upsample,
    /// A misspelt or PyTorch-style name (did-you-mean).
    Typo,
}

#[derive(Arbitrary, Clone, Copy, Debug)]
pub enum BinOp {
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

impl BinOp {
    fn symbol(self) -> &'static str {
        match self {
            BinOp::Add => "+",
            BinOp::Sub => "-",
            BinOp::Mul => "*",
            BinOp::Div => "/",
            BinOp::Rem => "%",
            BinOp::Eq => "==",
            BinOp::Ne => "!=",
            BinOp::Lt => "<",
            BinOp::Le => "<=",
            BinOp::Gt => ">",
            BinOp::Ge => ">=",
            BinOp::And => "and",
            BinOp::Or => "or",
        }
    }
}

#[derive(Debug, Clone)]
pub enum Expr {
    Int(i64),
    Float(f64),
    Bool(bool),
    Same,
    Var(String),
    In(&'static str),
    List(Vec<Expr>),
    Index(Box<Expr>, Box<Expr>),
    Neg(Box<Expr>),
    Not(Box<Expr>),
    Bin(BinOp, Box<Expr>, Box<Expr>),
    Paren(Box<Expr>),
    /// `min(…)`, `max(…)`, or another name (an unknown function).
    Call(&'static str, Vec<Expr>),
}

/// What an expression is for: decides which plausible values to draw.
#[derive(Clone, Copy, PartialEq)]
enum Want {
    Size,
    Kernel,
    Stride,
    Pad,
    Pair,
    Bool,
    Prob,
    Any,
}

struct Gen<'u, 'a> {
    u: &'u mut Unstructured<'a>,
    /// Variables in scope (block parameters and loop variables).
    vars: Vec<String>,
    /// Blocks defined so far (a block may call those before it; rarely any, for recursion).
    blocks: usize,
    /// Parameter counts of the blocks.
    arity: Vec<usize>,
    loop_vars: u32,
}

impl<'a> Arbitrary<'a> for Program {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Program> {
        let n_blocks = u.int_in_range(0..=MAX_BLOCKS)?;
        let mut g = Gen {
            u,
            vars: Vec::new(),
            blocks: 0,
            arity: Vec::new(),
            loop_vars: 0,
        };
        let mut blocks = Vec::new();
        for _ in 0..n_blocks {
            let n_params = g.u.int_in_range(0..=3)?;
            let mut params = Vec::new();
            for k in 0..n_params {
                // Defaults must follow required parameters to be valid; mostly keep that.
                let default = if g.u.ratio(1, 2)? || (k > 0 && params.iter().any(Option::is_some)) {
                    Some(g.expr(Want::Size, 1)?)
                } else {
                    None
                };
                params.push(default);
            }
            g.vars = (0..n_params).map(|k| format!("p{k}")).collect();
            let body = g.body(0)?;
            g.vars.clear();
            g.arity.push(n_params);
            g.blocks += 1;
            blocks.push(Block { params, body });
        }
        let n_models = if g.u.ratio(1, 8)? { 2 } else { 1 };
        let mut models = Vec::new();
        for _ in 0..n_models {
            let input = if g.u.ratio(1, 4)? {
                vec![g.expr(Want::Size, MAX_DEPTH)?]
            } else if g.u.ratio(1, 16)? {
                let n = g.u.int_in_range(0..=4)?;
                (0..n)
                    .map(|_| g.expr(Want::Size, 2))
                    .collect::<Result<_>>()?
            } else {
                let c = g.u.int_in_range(1..=8)?;
                let hw = g.u.int_in_range(1..=64)?;
                let w = if g.u.ratio(3, 4)? {
                    hw
                } else {
                    g.u.int_in_range(1..=64)?
                };
                vec![Expr::Int(c), Expr::Int(hw), Expr::Int(w)]
            };
            let body = g.body(0)?;
            models.push(Model { input, body });
        }
        Ok(Program { blocks, models })
    }
}

impl Gen<'_, '_> {
    fn body(&mut self, depth: u32) -> Result<Vec<Stmt>> {
        let n = self.u.int_in_range(0..=MAX_STMTS)?;
        let mut out = Vec::new();
        for _ in 0..n {
            if self.u.is_empty() {
                break;
            }
            out.push(self.stmt(depth)?);
        }
        Ok(out)
    }

    fn stmt(&mut self, depth: u32) -> Result<Stmt> {
        let nested = depth < MAX_DEPTH;
        let kind = match self.u.int_in_range(0..=19)? {
            13 if nested => self.repeat(depth)?,
            14 if nested => {
                let cond = self.expr(Want::Bool, 0)?;
                let then = self.body(depth + 1)?;
                let mut elifs = Vec::new();
                // `ratio` is true on exhausted data: every loop needs its own bound.
                for _ in 0..3 {
                    if self.u.is_empty() || !self.u.ratio(1, 4)? {
                        break;
                    }
                    elifs.push((self.expr(Want::Bool, 0)?, self.body(depth + 1)?));
                }
                let els = if self.u.arbitrary()? {
                    Some(self.body(depth + 1)?)
                } else {
                    None
                };
                StmtKind::If {
                    cond,
                    then,
                    elifs,
                    els,
                }
            }
            15 if nested => {
                let n = self.u.int_in_range(0..=4)?;
                let mut branches = Vec::new();
                for _ in 0..n {
                    let braced = self.u.ratio(3, 4)?;
                    let body = if braced {
                        self.body(depth + 1)?
                    } else {
                        vec![self.stmt(depth + 1)?]
                    };
                    branches.push((braced, body));
                }
                StmtKind::Concat(branches)
            }
            16 if nested => {
                let body = self.body(depth + 1)?;
                if self.u.ratio(1, 4)? {
                    return Ok(Stmt {
                        kind: StmtKind::Gate(body),
                        alias: None,
                        assert: None,
                    });
                }
                if self.u.ratio(1, 5)? {
                    return Ok(Stmt {
                        kind: StmtKind::Output(self.u.int_in_range(0..=5)?, body),
                        alias: None,
                        assert: None,
                    });
                }
                let shortcut = if self.u.arbitrary()? {
                    let cond = if self.u.arbitrary()? {
                        Some(self.expr(Want::Bool, 0)?)
                    } else {
                        None
                    };
                    Some((cond, self.body(depth + 1)?))
                } else {
                    None
                };
                // `residual if cond { … }`, now and then.
                let cond = if self.u.ratio(1, 4)? {
                    Some(self.expr(Want::Bool, 1)?)
                } else {
                    None
                };
                StmtKind::Residual {
                    cond,
                    body,
                    shortcut,
                }
            }
            17 if self.blocks > 0 || self.u.ratio(1, 8)? => {
                // Mostly an earlier block; sometimes any (recursion, unknown names).
                let block = if self.blocks > 0 && self.u.ratio(7, 8)? {
                    self.u.choose_index(self.blocks)?
                } else {
                    self.u.int_in_range(0..=MAX_BLOCKS)?
                };
                let arity = self.arity.get(block).copied().unwrap_or(1);
                let n_args = if self.u.ratio(7, 8)? {
                    arity
                } else {
                    self.u.int_in_range(0..=4)?
                };
                let mut args = Vec::new();
                let mut named = Vec::new();
                for k in 0..n_args {
                    let e = self.expr(Want::Size, 1)?;
                    if self.u.ratio(1, 4)? {
                        named.push((k, e));
                    } else {
                        args.push(e);
                    }
                }
                StmtKind::Call { block, args, named }
            }
            18 => StmtKind::Tensor {
                crop: self.u.ratio(3, 4)?,
                name: self.u.int_in_range(0..=3)?,
            },
            _ => self.layer()?,
        };
        let alias = if self.u.ratio(1, 6)? {
            Some(self.u.int_in_range(0..=3)?)
        } else {
            None
        };
        let assert = if self.u.ratio(1, 8)? {
            let n = self.u.int_in_range(1..=3)?;
            Some(
                (0..n)
                    .map(|_| self.expr(Want::Size, 1))
                    .collect::<Result<_>>()?,
            )
        } else {
            None
        };
        Ok(Stmt {
            kind,
            alias,
            assert,
        })
    }

    fn repeat(&mut self, depth: u32) -> Result<StmtKind> {
        let var = if self.u.arbitrary()? {
            self.loop_vars += 1;
            Some(format!("i{}", self.loop_vars))
        } else {
            None
        };
        let count = if self.u.ratio(1, 32)? {
            Expr::Int(self.u.int_in_range(-2..=2_000_000)?)
        } else {
            Expr::Int(self.u.int_in_range(0..=3)?)
        };
        let range = if var.is_some() && self.u.ratio(1, 4)? {
            // `repeat v in [a, b, …]`: the items of a list, usually small integers.
            let n = self.u.int_in_range(0..=3)?;
            let items = (0..n)
                .map(|_| self.expr(Want::Size, 1))
                .collect::<Result<Vec<_>>>()?;
            (Expr::List(items), None)
        } else if var.is_some() && self.u.arbitrary()? {
            let from = self.u.int_in_range(-1..=2)?;
            (Expr::Int(from), Some(count))
        } else {
            (count, None)
        };
        if let Some(v) = &var {
            self.vars.push(v.clone());
        }
        let body = self.body(depth + 1)?;
        if var.is_some() {
            self.vars.pop();
        }
        Ok(StmtKind::Repeat { var, range, body })
    }

    fn layer(&mut self) -> Result<StmtKind> {
        let layer: Layer = self.u.arbitrary()?;
        let mut pos = Vec::new();
        let mut named = Vec::new();
        match layer {
            Layer::Conv | Layer::ConvT => {
                pos.push(self.expr(Want::Size, 2)?);
                pos.push(self.expr(Want::Kernel, 1)?);
                self.opt(&mut named, "stride", Want::Stride)?;
                self.opt(&mut named, "pad", Want::Pad)?;
                if matches!(layer, Layer::ConvT) {
                    self.opt(&mut named, "output_pad", Want::Stride)?;
                }
                self.opt(&mut named, "dilation", Want::Stride)?;
                self.opt(&mut named, "groups", Want::Stride)?;
                self.opt(&mut named, "bias", Want::Bool)?;
            }
            Layer::MaxPool | Layer::AvgPool => {
                pos.push(self.expr(Want::Kernel, 1)?);
                self.opt(&mut named, "stride", Want::Stride)?;
                self.opt(&mut named, "pad", Want::Pad)?;
                self.opt(&mut named, "ceil", Want::Bool)?;
            }
            Layer::AdaptiveAvgPool | Layer::AdaptiveMaxPool => {
                pos.push(self.expr(Want::Pair, 1)?)
            }
            Layer::BatchNorm => {
                self.opt(&mut named, "eps", Want::Prob)?;
                self.opt(&mut named, "momentum", Want::Prob)?;
            }
            Layer::LeakyRelu | Layer::Elu => self.opt(&mut named, "alpha", Want::Prob)?,
            Layer::Dropout => self.opt(&mut named, "p", Want::Prob)?,
            Layer::Linear => {
                pos.push(self.expr(Want::Size, 2)?);
                self.opt(&mut named, "bias", Want::Bool)?;
            }
            Layer::Slice => {
                pos.push(self.expr(Want::Stride, 1)?);
                pos.push(self.expr(Want::Size, 1)?);
            }
            Layer::ChannelShuffle | Layer::PixelShuffle | Layer::PixelUnshuffle => {
                pos.push(self.expr(Want::Stride, 1)?)
            }
            Layer::Pad => {
                pos.push(self.expr(Want::Pad, 1)?);
                self.opt(&mut named, "reflect", Want::Bool)?;
                self.opt(&mut named, "replicate", Want::Bool)?;
            }
            Layer::GroupNorm => {
                pos.push(self.expr(Want::Stride, 1)?);
                self.opt(&mut named, "eps", Want::Prob)?;
                self.opt(&mut named, "affine", Want::Bool)?;
            }
            Layer::InstanceNorm => {
                self.opt(&mut named, "eps", Want::Prob)?;
                self.opt(&mut named, "affine", Want::Bool)?;
            }
            Layer::Prelu => self.opt(&mut named, "per_channel", Want::Bool)?,
            Layer::Scale | Layer::LayerScale => pos.push(self.expr(Want::Any, 2)?),
            Layer::LayerNorm => {
                self.opt(&mut named, "eps", Want::Prob)?;
                self.opt(&mut named, "affine", Want::Bool)?;
            }
            // A constant, or a list of them (two: mostly not the channel count).
            Layer::Normalize => {
                for _ in 0..2 {
                    let want = if self.u.ratio(1, 3)? { Want::Pair } else { Want::Any };
                    pos.push(self.expr(want, 2)?);
                }
            }
            Layer::Upsample => {
                pos.push(self.expr(Want::Stride, 1)?);
                self.opt(&mut named, "bilinear", Want::Bool)?;
                // Mostly beside `bilinear`: alone it is an error.
                if named.iter().any(|(n, _)| *n == "bilinear") || self.u.ratio(1, 8)? {
                    self.opt(&mut named, "align_corners", Want::Bool)?;
                }
            }
            _ => {}
        }
        // Sometimes a wrong argument: an unknown name, one too many, one missing.
        if self.u.ratio(1, 16)? {
            named.push(("padding", self.expr(Want::Any, 1)?));
        }
        if self.u.ratio(1, 16)? {
            pos.push(self.expr(Want::Any, 1)?);
        }
        if self.u.ratio(1, 16)? {
            pos.pop();
        }
        Ok(StmtKind::Layer(layer, pos, named))
    }

    fn opt(
        &mut self,
        named: &mut Vec<(&'static str, Expr)>,
        name: &'static str,
        w: Want,
    ) -> Result<()> {
        if self.u.ratio(1, 3)? {
            named.push((name, self.expr(w, 1)?));
        }
        Ok(())
    }

    /// An expression for `want`; `depth` counts down to leaves.
    fn expr(&mut self, want: Want, depth: u32) -> Result<Expr> {
        if self.u.is_empty() {
            return Ok(Expr::Int(1));
        }
        let choice = self.u.int_in_range(0..=15)?;
        if depth > 0 && choice >= 13 {
            return Ok(match self.u.int_in_range(0..=5)? {
                0 => Expr::Neg(Box::new(self.expr(want, depth - 1)?)),
                5 => {
                    let f = *self.u.choose(&["max", "min", "max", "min", "int", "len"])?;
                    let n = self.u.int_in_range(0..=3)?;
                    let args = (0..n)
                        .map(|_| self.expr(want, depth - 1))
                        .collect::<Result<Vec<_>>>()?;
                    Expr::Call(f, args)
                }
                1 => Expr::Not(Box::new(self.expr(Want::Bool, depth - 1)?)),
                2 => Expr::Paren(Box::new(self.expr(want, depth - 1)?)),
                3 => {
                    let list = vec![self.expr(want, depth - 1)?, self.expr(want, depth - 1)?];
                    let ix = self.u.int_in_range(-1..=2)?;
                    Expr::Index(Box::new(Expr::List(list)), Box::new(Expr::Int(ix)))
                }
                _ => {
                    let op: BinOp = self.u.arbitrary()?;
                    let w = if matches!(op, BinOp::And | BinOp::Or) {
                        Want::Bool
                    } else {
                        Want::Size
                    };
                    let a = self.expr(w, depth - 1)?;
                    let b = self.expr(w, depth - 1)?;
                    Expr::Bin(op, Box::new(a), Box::new(b))
                }
            });
        }
        if choice == 12 && !self.vars.is_empty() {
            let v = self.u.choose(&self.vars)?.clone();
            return Ok(Expr::Var(v));
        }
        if choice == 11 {
            return Ok(Expr::In(
                *self.u.choose(&["c", "h", "w", "f", "rank", "x"])?,
            ));
        }
        if choice == 10 {
            // Anything, including extremes and the wrong type.
            return Ok(match self.u.int_in_range(0..=6)? {
                0 => Expr::Int(self.u.arbitrary()?),
                1 => Expr::Int(i64::MAX),
                2 => Expr::Float(self.u.arbitrary::<f64>()?.abs()),
                3 => Expr::Bool(self.u.arbitrary()?),
                4 => Expr::Same,
                5 => Expr::Var("undefined".into()),
                _ => Expr::List(vec![]),
            });
        }
        Ok(match want {
            Want::Size => Expr::Int(self.u.int_in_range(1..=64)?),
            Want::Kernel => self.int_or_pair(1, 7)?,
            Want::Stride => self.int_or_pair(1, 3)?,
            Want::Pad => match self.u.int_in_range(0..=5)? {
                0 => Expr::Same,
                1 => Expr::List(vec![
                    Expr::Int(self.u.int_in_range(0..=3)?),
                    Expr::Int(self.u.int_in_range(0..=3)?),
                    Expr::Int(self.u.int_in_range(0..=3)?),
                    Expr::Int(self.u.int_in_range(0..=3)?),
                ]),
                _ => self.int_or_pair(0, 3)?,
            },
            Want::Pair => self.int_or_pair(1, 8)?,
            Want::Bool => match self.u.int_in_range(0..=3)? {
                0 => Expr::Bool(self.u.arbitrary()?),
                _ => {
                    let op = *self
                        .u
                        .choose(&[BinOp::Eq, BinOp::Ne, BinOp::Lt, BinOp::Ge])?;
                    let a = if self.vars.is_empty() || self.u.arbitrary()? {
                        Expr::In(*self.u.choose(&["c", "h", "w"])?)
                    } else {
                        Expr::Var(self.u.choose(&self.vars)?.clone())
                    };
                    Expr::Bin(
                        op,
                        Box::new(a),
                        Box::new(Expr::Int(self.u.int_in_range(0..=64)?)),
                    )
                }
            },
            Want::Prob => Expr::Float(f64::from(self.u.int_in_range(0..=100u8)?) / 100.0),
            Want::Any => Expr::Int(self.u.int_in_range(-3..=64)?),
        })
    }

    fn int_or_pair(&mut self, lo: i64, hi: i64) -> Result<Expr> {
        Ok(if self.u.ratio(1, 4)? {
            Expr::List(vec![
                Expr::Int(self.u.int_in_range(lo..=hi)?),
                Expr::Int(self.u.int_in_range(lo..=hi)?),
            ])
        } else {
            Expr::Int(self.u.int_in_range(lo..=hi)?)
        })
    }
}

// ---- printing ---------------------------------------------------------------------------

impl Program {
    /// The program as `.cnn` text.
    pub fn to_source(&self) -> String {
        let mut s = String::new();
        for (i, b) in self.blocks.iter().enumerate() {
            let params: Vec<String> = b
                .params
                .iter()
                .enumerate()
                .map(|(k, d)| match d {
                    Some(e) => format!("p{k}={}", expr(e)),
                    None => format!("p{k}"),
                })
                .collect();
            let _ = writeln!(s, "block b{i}({}) {{", params.join(", "));
            body(&mut s, &b.body, 1);
            s.push_str("}\n");
        }
        for (i, m) in self.models.iter().enumerate() {
            let dims: Vec<String> = m.input.iter().map(expr).collect();
            let _ = writeln!(s, "model M{i}(input: [{}]) {{", dims.join(", "));
            body(&mut s, &m.body, 1);
            s.push_str("}\n");
        }
        s
    }
}

fn indent(s: &mut String, level: usize) {
    for _ in 0..level {
        s.push_str("    ");
    }
}

fn body(s: &mut String, stmts: &[Stmt], level: usize) {
    for st in stmts {
        indent(s, level);
        stmt(s, st, level);
        s.push('\n');
    }
}

fn braced(s: &mut String, stmts: &[Stmt], level: usize) {
    if stmts.is_empty() {
        s.push_str("{}");
        return;
    }
    s.push_str("{\n");
    body(s, stmts, level + 1);
    indent(s, level);
    s.push('}');
}

fn stmt(s: &mut String, st: &Stmt, level: usize) {
    match &st.kind {
        StmtKind::Layer(layer, pos, named) => {
            let name = match layer {
                Layer::Conv => "conv",
                Layer::ConvT => "convT",
                Layer::MaxPool => "maxpool",
                Layer::AvgPool => "avgpool",
                Layer::AdaptiveAvgPool => "adaptive_avgpool",
                Layer::GlobalAvgPool => "global_avgpool",
                Layer::AdaptiveMaxPool => "adaptive_maxpool",
                Layer::GlobalMaxPool => "global_maxpool",
                Layer::BatchNorm => "batchnorm",
                Layer::Relu => "relu",
                Layer::Sigmoid => "sigmoid",
                Layer::Tanh => "tanh",
                Layer::LeakyRelu => "leaky_relu",
                Layer::Elu => "elu",
                Layer::Silu => "silu",
                Layer::Gelu => "gelu",
                Layer::Relu6 => "relu6",
                Layer::HardSigmoid => "hardsigmoid",
                Layer::HardSwish => "hardswish",
                Layer::Softmax => "softmax",
                Layer::Dropout => "dropout",
                Layer::Flatten => "flatten",
                Layer::Linear => "linear",
                Layer::Slice => "slice",
                Layer::ChannelShuffle => "channel_shuffle",
                Layer::PixelShuffle => "pixel_shuffle",
                Layer::PixelUnshuffle => "pixel_unshuffle",
                Layer::Pad => "pad",
                Layer::GroupNorm => "groupnorm",
                Layer::InstanceNorm => "instancenorm",
                Layer::Mish => "mish",
                Layer::Prelu => "prelu",
                Layer::Scale => "scale",
                Layer::Normalize => "normalize",
                Layer::LayerNorm => "layernorm",
                Layer::LayerScale => "layer_scale",
                Layer::Upsample => "upsample",
                Layer::Typo => "Conv2d",
            };
            s.push_str(name);
            let mut args: Vec<String> = pos.iter().map(expr).collect();
            args.extend(named.iter().map(|(n, e)| format!("{n}={}", expr(e))));
            if !args.is_empty() {
                let _ = write!(s, "({})", args.join(", "));
            }
        }
        StmtKind::Tensor { crop, name } => {
            if *crop {
                let _ = write!(s, "crop(t{name})");
            } else {
                let _ = write!(s, "t{name}");
            }
        }
        StmtKind::Call { block, args, named } => {
            let mut a: Vec<String> = args.iter().map(expr).collect();
            a.extend(named.iter().map(|(k, e)| format!("p{k}={}", expr(e))));
            let _ = write!(s, "b{block}({})", a.join(", "));
        }
        StmtKind::Repeat { var, range, body } => {
            s.push_str("repeat ");
            match (var, range) {
                (Some(v), (from, Some(to))) => {
                    let _ = write!(s, "{v} in {}..{} ", expr(from), expr(to));
                }
                (Some(v), (list @ Expr::List(_), None)) => {
                    let _ = write!(s, "{v} in {} ", expr(list));
                }
                (Some(v), (n, None)) => {
                    let _ = write!(s, "{v} in 0..{} ", expr(n));
                }
                (None, (n, _)) => {
                    let _ = write!(s, "{} ", expr(n));
                }
            }
            braced(s, body, level);
        }
        StmtKind::If {
            cond,
            then,
            elifs,
            els,
        } => {
            let _ = write!(s, "if {} ", expr(cond));
            braced(s, then, level);
            for (c, b) in elifs {
                let _ = write!(s, " else if {} ", expr(c));
                braced(s, b, level);
            }
            if let Some(b) = els {
                s.push_str(" else ");
                braced(s, b, level);
            }
        }
        StmtKind::Concat(branches) => {
            s.push_str("concat {");
            for (braced_branch, b) in branches {
                s.push(' ');
                if *braced_branch || b.len() != 1 {
                    braced(s, b, level + 1);
                } else {
                    stmt(s, &b[0], level + 1);
                }
            }
            s.push_str(" }");
        }
        StmtKind::Gate(body) => {
            s.push_str("gate ");
            braced(s, body, level);
        }
        StmtKind::Output(name, body) => {
            match name {
                0..=3 => {
                    let _ = write!(s, "output o{name} ");
                }
                4 => s.push_str("output output "),
                _ => s.push_str("output t0 "),
            }
            braced(s, body, level);
        }
        StmtKind::Residual {
            cond,
            body,
            shortcut,
        } => {
            s.push_str("residual ");
            if let Some(c) = cond {
                let _ = write!(s, "if {} ", expr(c));
            }
            braced(s, body, level);
            if let Some((cond, b)) = shortcut {
                s.push_str(" shortcut ");
                if let Some(c) = cond {
                    let _ = write!(s, "if {} ", expr(c));
                }
                braced(s, b, level);
            }
        }
    }
    if let Some(a) = st.alias {
        let _ = write!(s, " as t{a}");
    }
    if let Some(dims) = &st.assert {
        let d: Vec<String> = dims.iter().map(expr).collect();
        let _ = write!(s, " : [{}]", d.join(", "));
    }
}

fn expr(e: &Expr) -> String {
    match e {
        Expr::Int(i64::MIN) => "(-9223372036854775807 - 1)".into(),
        Expr::Int(n) if *n < 0 => format!("({n})"),
        Expr::Int(n) => n.to_string(),
        Expr::Float(f) if f.is_finite() => {
            let t = format!("{f:?}");
            if t.contains('.') || t.contains('e') {
                t
            } else {
                format!("{t}.0")
            }
        }
        Expr::Float(_) => "1.5".into(),
        Expr::Bool(b) => b.to_string(),
        Expr::Same => "same".into(),
        Expr::Var(v) => v.clone(),
        Expr::In(q) => format!("in.{q}"),
        Expr::List(items) => {
            let v: Vec<String> = items.iter().map(expr).collect();
            format!("[{}]", v.join(", "))
        }
        Expr::Index(a, i) => format!("{}[{}]", expr(a), expr(i)),
        // `-not x` does not parse (as in Python): negate only atoms.
        Expr::Neg(a) if matches!(**a, Expr::Not(_) | Expr::Bin(..)) => format!("-({})", expr(a)),
        Expr::Neg(a) => format!("-{}", expr(a)),
        // `not` binds loosest but `and`/`or`: `1 + not x` does not parse.
        Expr::Not(a) => format!("(not {})", expr(a)),
        Expr::Bin(op, a, b) => format!("({} {} {})", expr(a), op.symbol(), expr(b)),
        Expr::Paren(a) => format!("({})", expr(a)),
        Expr::Call(f, args) => {
            let v: Vec<String> = args.iter().map(expr).collect();
            format!("{f}({})", v.join(", "))
        }
    }
}

//! The forward pass of a training graph, one IR node at a time. Training mode differs from
//! the inference export: batch norm uses batch statistics (written from primitive ops, as
//! ONNX BatchNormalization's training mode gives neither the batch mean nor the inverse
//! standard deviation and updates the running variance with the biased estimate), dropout
//! draws a mask, and max pooling keeps its Indices for the backward pass.

use super::builder::i64s;
use super::{err, DropoutMode, GraphError, Lowering, Mode, NormOver, Saved};
use crate::ir::{Op, Pads, PoolAttrs};
use crate::ir::{PadMode, UpsampleMode, UpsampleTo};
use crate::onnx::proto::{data_type, AttributeProto};
use petgraph::graph::NodeIndex;

/// Extra end padding that turns a ceil-mode pooling into floor mode with the same windows
/// (the checked output size fixes the window count), as the inference export does.
pub(super) fn pool_overhang(
    p: &PoolAttrs,
    in_hw: [u64; 2],
    out_hw: [u64; 2],
) -> Result<[u64; 2], GraphError> {
    let mut extra = [0u64; 2];
    for axis in 0..2 {
        let (n, o) = (in_hw[axis], out_hw[axis]);
        let (k, s) = (p.kernel[axis], p.stride[axis].max(1));
        let have = n + p.pads.begin[axis] + p.pads.end[axis];
        let need = (o.max(1) - 1) * s + k;
        let e = need.saturating_sub(have);
        if have + e < k || (have + e - k) / s + 1 != o {
            return Err(err(format!(
                "pooling output size {o} on axis {axis} does not follow from input {n}, \
                 kernel {k}, stride {s}"
            )));
        }
        extra[axis] = e;
    }
    Ok(extra)
}

/// The pads of a pooling with its ceil-mode overhang made explicit.
pub(super) fn pool_pads(p: &PoolAttrs, extra: [u64; 2]) -> Pads {
    Pads {
        begin: p.pads.begin,
        end: [p.pads.end[0] + extra[0], p.pads.end[1] + extra[1]],
    }
}

/// PyTorch's adaptive pooling bins as an averaging matrix `[m, n]`: row i averages
/// [⌊i·n/m⌋, ⌈(i+1)·n/m⌉).
pub(super) fn adaptive_matrix(n: u64, m: u64) -> Vec<f32> {
    let mut out = vec![0.0f32; (n * m) as usize];
    for i in 0..m {
        let bin = crate::ir::adaptive_bin(i, n, m);
        let v = 1.0 / (bin.end - bin.start) as f32;
        for j in bin {
            out[(i * n + j) as usize] = v;
        }
    }
    out
}

/// The weights of bilinear resampling of an axis of `n` pixels to `m`, PyTorch's
/// (`upsample_bilinear2d`): output pixel o reads the source position `(o + ½)·n/m − ½`
/// (clamped at 0), or `o·(n − 1)/(m − 1)` with `align_corners`, from its two neighbours
/// in proportion. Row-major `[m, n]`: what Resize computes, as a matrix (the training
/// graph's backward multiplies by its transpose).
pub(super) fn bilinear_weights(n: u64, m: u64, align_corners: bool) -> Vec<f32> {
    let (n, m) = (n as usize, m as usize);
    let mut a = vec![0f64; m * n];
    for o in 0..m {
        let src = if align_corners {
            if m > 1 {
                o as f64 * (n - 1) as f64 / (m - 1) as f64
            } else {
                0.0
            }
        } else {
            ((o as f64 + 0.5) * n as f64 / m as f64 - 0.5).max(0.0)
        };
        let i0 = (src.floor() as usize).min(n - 1);
        let lambda = (src - i0 as f64).clamp(0.0, 1.0);
        let i1 = (i0 + 1).min(n - 1);
        for (i, weight) in [(i0, 1.0 - lambda), (i1, lambda)] {
            a[o * n + i] += weight;
        }
    }
    a.into_iter().map(|v| v as f32).collect()
}

/// A matrix `[out, in]` (row-major) that maps one axis of an image, as
/// [`Lowering::separable`] applies it. An empty matrix stands for the identity.
#[derive(Clone)]
pub(super) struct Separable {
    pub(super) matrix: Vec<f32>,
    pub(super) out: u64,
    pub(super) inp: u64,
}

impl Separable {
    pub(super) fn new(matrix: Vec<f32>, out: u64, inp: u64) -> Separable {
        debug_assert_eq!(matrix.len() as u64, out * inp);
        Separable { matrix, out, inp }
    }

    /// The identity on an axis of `n`, without its matrix (it is never multiplied by).
    pub(super) fn identity(n: u64) -> Separable {
        Separable {
            matrix: Vec::new(),
            out: n,
            inp: n,
        }
    }

    /// The transpose, `[in, out]`: the map of the gradient.
    pub(super) fn transposed(&self) -> Separable {
        if self.matrix.is_empty() {
            return self.clone();
        }
        Separable {
            matrix: transpose_matrix(&self.matrix, self.out as usize, self.inp as usize),
            out: self.inp,
            inp: self.out,
        }
    }

    fn is_identity(&self) -> bool {
        self.out == self.inp
            && (self.matrix.is_empty()
                || (0..self.out).all(|i| {
                    (0..self.inp)
                        .all(|j| self.matrix[(i * self.inp + j) as usize] == (i == j) as u8 as f32)
                }))
    }
}

/// Adaptive max pooling's gathers of the rows and of the columns of a `[C, H, W]` input
/// ([`crate::ir::adaptive_max_gather`]) as 0/1 maps `[m·k, n]`, the identity for an axis
/// not gathered; the backward multiplies by their transposes.
pub(super) fn adaptive_max_maps(in_dims: &[u64], output: [u64; 2]) -> (Separable, Separable) {
    let map = |axis: usize| {
        let n = in_dims[axis + 1];
        let Some((_, index)) = crate::ir::adaptive_max_gather(n, output[axis]) else {
            return Separable::identity(n);
        };
        let mut a = vec![0f32; index.len() * n as usize];
        for (o, &src) in index.iter().enumerate() {
            a[o * n as usize + src as usize] = 1.0;
        }
        Separable::new(a, index.len() as u64, n)
    };
    (map(0), map(1))
}

/// Upsampling (or resampling to a size) of a `[C, H, W]` input to `[C, h, w]` as its row
/// and column maps.
pub(super) fn upsample_maps(
    in_dims: &[u64],
    out_dims: &[u64],
    to: &UpsampleTo,
    mode: UpsampleMode,
) -> (Separable, Separable) {
    let map = |axis: usize| {
        let (n, m) = (in_dims[axis + 1], out_dims[axis + 1]);
        let weights = match mode {
            UpsampleMode::Bilinear { align_corners } => bilinear_weights(n, m, align_corners),
            UpsampleMode::Nearest => nearest_weights(to, axis, n, m),
        };
        Separable::new(weights, m, n)
    };
    (map(0), map(1))
}

/// The row and column maps of a reflecting or replicating `pad` of a `[C, H, W]` input:
/// a 1 at each output pixel's source, so that the backward (their transposes) sums the
/// gradient of every copy into the pixel copied. `None` for zero padding (no copies).
pub(super) fn pad_maps(
    in_dims: &[u64],
    pads: &Pads,
    mode: PadMode,
) -> Option<(Separable, Separable)> {
    let map = |axis: usize| {
        let n = in_dims[axis + 1];
        let sources = mode.source_indices(n, pads.begin[axis], pads.end[axis])?;
        let m = sources.len() as u64;
        let mut a = vec![0f32; (m * n) as usize];
        for (o, src) in sources.into_iter().enumerate() {
            a[o * n as usize + src as usize] = 1.0;
        }
        Some(Separable::new(a, m, n))
    };
    Some((map(0)?, map(1)?))
}

/// The weights of nearest-neighbour resampling of axis `axis` of `n` pixels to `m`,
/// row-major `[m, n]`: a 1 at each output pixel's source (the indices the forward pass
/// gathers, [`crate::onnx::lower::nearest_indices`]), so that the gradient goes back
/// exactly where each value came from.
pub(super) fn nearest_weights(to: &UpsampleTo, axis: usize, n: u64, m: u64) -> Vec<f32> {
    let mut a = vec![0f32; (m * n) as usize];
    for (o, src) in crate::onnx::lower::nearest_indices(to, axis, n, m)
        .into_iter()
        .enumerate()
    {
        a[o * n as usize + src as usize] = 1.0;
    }
    a
}

/// `[a, b]` row-major → `[b, a]`.
pub(super) fn transpose_matrix(m: &[f32], a: usize, b: usize) -> Vec<f32> {
    let mut t = vec![0.0; m.len()];
    for i in 0..a {
        for j in 0..b {
            t[j * a + i] = m[i * b + j];
        }
    }
    t
}

pub(super) fn conv_attrs(
    kernel: Option<[u64; 2]>,
    stride: [u64; 2],
    pads: &Pads,
    dilation: [u64; 2],
    groups: u64,
) -> Vec<AttributeProto> {
    let mut v = vec![
        AttributeProto::ints("dilations", i64s(&dilation)),
        AttributeProto::int("group", groups as i64),
    ];
    if let Some(k) = kernel {
        v.push(AttributeProto::ints("kernel_shape", i64s(&k)));
    }
    v.push(AttributeProto::ints("pads", i64s(&pads.onnx())));
    v.push(AttributeProto::ints("strides", i64s(&stride)));
    v
}

/// PReLU's slope shaped to broadcast over the batch: `[1, C, 1, 1]` (or `[1, F]`) per
/// channel, the single `[1]` otherwise.
pub(super) fn prelu_slope(
    b: &mut super::builder::Builder,
    layer: &str,
    base: &str,
    per_channel: bool,
    in_dims: &[u64],
) -> String {
    let weight = format!("{layer}.weight");
    if !per_channel {
        return weight;
    }
    let mut shape = vec![1i64, in_dims[0] as i64];
    shape.extend(std::iter::repeat_n(1, in_dims.len() - 1));
    b.reshape(&weight, &shape, &format!("{base}.slope"))
}

/// One of `normalize`'s constants (its mean or std) as an initializer broadcast against a
/// batch of rank `rank + 1`, as the export writes it.
pub(super) fn normalize_constant(
    b: &mut super::builder::Builder,
    base: &str,
    values: &[f64],
    rank: usize,
) -> String {
    let dims = crate::onnx::lower::per_channel_dims(values.len(), rank);
    let data: Vec<f32> = values.iter().map(|&v| v as f32).collect();
    b.init_f32(base, &dims, &data)
}

/// Axes a batch norm reduces over for a tensor of per-sample rank `rank`: the batch and
/// every spatial axis.
pub(super) fn bn_axes(rank: usize) -> Vec<i64> {
    std::iter::once(0)
        .chain((2..=rank).map(|a| a as i64))
        .collect()
}

impl Lowering<'_> {
    /// `rows · x · colsᵀ` for `x` `[N, C, h, w]`: a linear map that acts on the height and
    /// the width apart (adaptive average pooling, bilinear upsampling), as two MatMuls
    /// broadcast over N and C. A map that is the identity is left out.
    pub(super) fn separable(
        &mut self,
        x: &str,
        rows: &Separable,
        cols: &Separable,
        name: &str,
    ) -> String {
        let (do_rows, do_cols) = (!rows.is_identity(), !cols.is_identity());
        let mut y = x.to_string();
        if do_cols {
            let cols_t = transpose_matrix(&cols.matrix, cols.out as usize, cols.inp as usize);
            let weights = self.b.init_f32(
                &format!("{name}.col_weights"),
                &[cols.inp as usize, cols.out as usize],
                &cols_t,
            );
            let out = if do_rows {
                format!("{name}.cols")
            } else {
                name.to_string()
            };
            y = self.b.op("MatMul", &[&y, &weights], &out, vec![]);
        }
        if do_rows {
            let weights = self.b.init_f32(
                &format!("{name}.row_weights"),
                &[rows.out as usize, rows.inp as usize],
                &rows.matrix,
            );
            y = self.b.op("MatMul", &[&weights, &y], name, vec![]);
        }
        if !do_rows && !do_cols {
            y = self.b.op("Identity", &[x], name, vec![]);
        }
        y
    }

    fn in_dims(&self, ix: NodeIndex, slot: usize) -> Vec<u64> {
        let i = self.model.graph.inputs(ix)[slot];
        self.model.shape(i).dims().to_vec()
    }

    pub(super) fn forward(&mut self, ix: NodeIndex) -> Result<(), GraphError> {
        let model = self.model;
        let node = model.node(ix);
        let name = node.name.clone();
        let ins: Vec<String> = model
            .graph
            .inputs(ix)
            .iter()
            .map(|i| self.value[i].clone())
            .collect();
        let x = ins.first().cloned().unwrap_or_else(|| "input".into());
        let out_dims = model.shape(ix).dims().to_vec();
        let in_dims = if ins.is_empty() {
            vec![]
        } else {
            self.in_dims(ix, 0)
        };
        let hw = |d: &[u64]| -> [u64; 2] { [d[1], d[2]] };
        let y = match &node.op {
            Op::Input => return Err(err(format!("`{name}`: a second input node"))),
            Op::Conv(a) => {
                let mut v = vec![x.clone(), format!("{name}.weight")];
                if a.bias {
                    v.push(format!("{name}.bias"));
                }
                let v: Vec<&str> = v.iter().map(String::as_str).collect();
                self.b.op(
                    "Conv",
                    &v,
                    &name,
                    conv_attrs(Some(a.kernel), a.stride, &a.pads, a.dilation, a.groups),
                )
            }
            // An output_pad at or above the stride, which ONNX Runtime's ConvTranspose refuses:
            // the unpadded transposed conv, cut and zero-extended, then the bias
            // (`ConvTransposeAttrs::output_pad_plan`, as the inference lowering does).
            Op::ConvTranspose(a) if a.needs_output_pad_plan() => {
                let plan = a.output_pad_plan(hw(&in_dims));
                let attrs = conv_attrs(
                    Some(a.kernel),
                    a.stride,
                    &Pads::default(),
                    a.dilation,
                    a.groups,
                );
                let full = self.b.op(
                    "ConvTranspose",
                    &[&x, &format!("{name}.weight")],
                    &format!("{name}.full"),
                    attrs,
                );
                let mut y = self.b.slice(
                    &full,
                    &i64s(&plan.start),
                    &i64s(&plan.end),
                    &[2, 3],
                    &format!("{name}.kept"),
                );
                if plan.extend != [0, 0] {
                    let [eh, ew] = plan.extend;
                    let pads = self.b.ints(&[0, 0, 0, 0, 0, 0, eh as i64, ew as i64]);
                    y = self
                        .b
                        .op("Pad", &[&y, &pads], &format!("{name}.extended"), vec![]);
                }
                if a.bias {
                    let c = out_dims[0] as i64;
                    let b = self.b.reshape(
                        &format!("{name}.bias"),
                        &[c, 1, 1],
                        &format!("{name}.bias_c11"),
                    );
                    y = self.b.add(&y, &b, &name);
                }
                y
            }
            Op::ConvTranspose(a) => {
                let mut v = vec![x.clone(), format!("{name}.weight")];
                if a.bias {
                    v.push(format!("{name}.bias"));
                }
                let v: Vec<&str> = v.iter().map(String::as_str).collect();
                let mut attrs = conv_attrs(Some(a.kernel), a.stride, &a.pads, a.dilation, a.groups);
                attrs.push(AttributeProto::ints("output_padding", i64s(&a.output_pad)));
                self.b.op("ConvTranspose", &v, &name, attrs)
            }
            Op::MaxPool(p) => {
                let extra = pool_overhang(p, hw(&in_dims), hw(&out_dims))?;
                let pads = pool_pads(p, extra);
                let attrs = vec![
                    AttributeProto::ints("kernel_shape", i64s(&p.kernel)),
                    AttributeProto::ints("pads", i64s(&pads.onnx())),
                    AttributeProto::ints("strides", i64s(&p.stride)),
                ];
                if self.mode == Mode::Train {
                    let y = self.b.fresh(&name);
                    let idx = self.b.fresh(&format!("{name}.indices"));
                    self.b.node_to("MaxPool", &[&x], &[&y, &idx], attrs);
                    self.saved.insert(ix, Saved::MaxPoolIndices(idx));
                    y
                } else {
                    self.b.op("MaxPool", &[&x], &name, attrs)
                }
            }
            Op::AvgPool(p) => {
                let extra = pool_overhang(p, hw(&in_dims), hw(&out_dims))?;
                let pads = pool_pads(p, extra);
                // Asymmetric pads are made explicit: ONNX Runtime's CUDA AveragePool applied
                // the begin pads to both sides (fixed in 2026, onnxruntime#29631), and its
                // CPU one took a wrong divisor for them (#27375).
                let (input, pads) = if pads.is_symmetric() {
                    (x, pads)
                } else {
                    let onnx_pads = self.b.ints(&crate::onnx::lower::pad_amounts(&pads));
                    let padded =
                        self.b
                            .op("Pad", &[&x, &onnx_pads], &format!("{name}.padded"), vec![]);
                    (padded, Pads::default())
                };
                let attrs = crate::onnx::lower::avgpool_attrs(p, &pads);
                if p.divides_by_kernel(extra) {
                    self.b.op("AveragePool", &[&input], &name, attrs)
                } else {
                    // Every window lies inside the padding, so AveragePool divides by kh·kw;
                    // rescale each window to PyTorch's divisor.
                    let avg = self
                        .b
                        .op("AveragePool", &[&input], &format!("{name}.full"), attrs);
                    let k = (p.kernel[0] * p.kernel[1]) as f32;
                    let div = p.avg_divisors(hw(&in_dims), hw(&out_dims));
                    let fix: Vec<f32> = div.iter().map(|d| k / d).collect();
                    let c = self.b.init_f32(
                        &format!("{name}.rescale"),
                        &[out_dims[1] as usize, out_dims[2] as usize],
                        &fix,
                    );
                    self.b.mul(&avg, &c, &name)
                }
            }
            Op::AdaptiveAvgPool { output } => {
                let (h, w) = (in_dims[1], in_dims[2]);
                let [oh, ow] = *output;
                let rows = Separable::new(adaptive_matrix(h, oh), oh, h);
                let cols = Separable::new(adaptive_matrix(w, ow), ow, w);
                self.separable(&x, &rows, &cols, &name)
            }
            Op::GlobalAvgPool => self.b.op("GlobalAveragePool", &[&x], &name, vec![]),
            // As the inference model (a global one as an adaptive one to 1×1): the uneven
            // bins gathered, then a MaxPool, whose indices the backward scatters at.
            Op::AdaptiveMaxPool { .. } | Op::GlobalMaxPool => {
                let output = match &node.op {
                    Op::AdaptiveMaxPool { output } => *output,
                    _ => [1, 1],
                };
                let (mut bins, mut kernel) = (x.clone(), [0u64; 2]);
                for axis in 0..2 {
                    let (n, m) = (in_dims[axis + 1], output[axis]);
                    let Some((k, index)) = crate::ir::adaptive_max_gather(n, m) else {
                        kernel[axis] = n / m;
                        continue;
                    };
                    kernel[axis] = k;
                    let index = self.b.ints(&index);
                    bins = self.b.op(
                        "Gather",
                        &[&bins, &index],
                        &format!("{name}.bins{}", axis + 2),
                        vec![AttributeProto::int("axis", axis as i64 + 2)],
                    );
                }
                let attrs = vec![
                    AttributeProto::ints("kernel_shape", i64s(&kernel)),
                    AttributeProto::ints("strides", i64s(&kernel)),
                ];
                if self.mode == Mode::Train {
                    let y = self.b.fresh(&name);
                    let indices = self.b.fresh(&format!("{name}.indices"));
                    self.b.node_to("MaxPool", &[&bins], &[&y, &indices], attrs);
                    self.saved
                        .insert(ix, Saved::AdaptiveMaxPool { indices, bins });
                    y
                } else {
                    self.b.op("MaxPool", &[&bins], &name, attrs)
                }
            }
            Op::BatchNorm {
                eps,
                momentum,
                affine,
            } => self.batchnorm(ix, &name, &x, &in_dims, (*eps, *momentum, *affine))?,
            Op::GroupNorm {
                groups,
                eps,
                affine,
            } => self.group_norm(ix, &name, &x, &in_dims, *groups, *eps, *affine),
            Op::LayerNorm { eps, affine } => {
                self.norm(ix, &name, &x, &in_dims, NormOver::Channels, *eps, *affine)
            }
            Op::LayerScale { .. } => self.b.mul(&x, &format!("{name}.weight"), &name),
            Op::Relu => self.b.op("Relu", &[&x], &name, vec![]),
            Op::Sigmoid => self.b.op("Sigmoid", &[&x], &name, vec![]),
            Op::Tanh => self.b.op("Tanh", &[&x], &name, vec![]),
            Op::LeakyRelu { alpha } => self.b.op(
                "LeakyRelu",
                &[&x],
                &name,
                vec![AttributeProto::float("alpha", *alpha as f32)],
            ),
            Op::Elu { alpha } => self.b.op(
                "Elu",
                &[&x],
                &name,
                vec![AttributeProto::float("alpha", *alpha as f32)],
            ),
            Op::Silu => {
                let s = self
                    .b
                    .op("Sigmoid", &[&x], &format!("{name}.sigmoid"), vec![]);
                self.b.mul(&x, &s, &name)
            }
            Op::Scale { factor } => self.b.scale(&x, *factor as f32, &name),
            Op::Normalize { mean, std } => {
                let rank = in_dims.len();
                let m = normalize_constant(&mut self.b, &format!("{name}.mean"), mean, rank);
                let s = normalize_constant(&mut self.b, &format!("{name}.std"), std, rank);
                let centered = self.b.sub(&x, &m, &format!("{name}.centered"));
                self.b.div(&centered, &s, &name)
            }
            Op::Mish => {
                let sp = self
                    .b
                    .op("Softplus", &[&x], &format!("{name}.softplus"), vec![]);
                let t = self.b.op("Tanh", &[&sp], &format!("{name}.tanh"), vec![]);
                self.b.mul(&x, &t, &name)
            }
            Op::Prelu { per_channel } => {
                let slope = prelu_slope(&mut self.b, &name, &name, *per_channel, &in_dims);
                self.b.op("PRelu", &[&x, &slope], &name, vec![])
            }
            Op::Gelu => {
                let cdf = self.normal_cdf(&x, &name);
                self.b.mul(&x, &cdf, &name)
            }
            Op::Relu6 => {
                let (lo, hi) = (self.b.scalar(0.0), self.b.scalar(6.0));
                self.b.op("Clip", &[&x, &lo, &hi], &name, vec![])
            }
            Op::HardSigmoid => self.b.op(
                "HardSigmoid",
                &[&x],
                &name,
                crate::onnx::lower::hard_sigmoid_attrs(),
            ),
            Op::HardSwish => {
                let g = self.b.op(
                    "HardSigmoid",
                    &[&x],
                    &format!("{name}.gate"),
                    crate::onnx::lower::hard_sigmoid_attrs(),
                );
                self.b.mul(&x, &g, &name)
            }
            Op::Softmax => self.b.op(
                "Softmax",
                &[&x],
                &name,
                vec![AttributeProto::int("axis", 1)],
            ),
            Op::Dropout { p } => self.dropout(ix, &name, &x, &out_dims, *p)?,
            Op::Flatten => self.b.op(
                "Flatten",
                &[&x],
                &name,
                vec![AttributeProto::int("axis", 1)],
            ),
            Op::Linear { bias, .. } => {
                if in_dims.len() != 1 {
                    return Err(err(format!(
                        "`{name}`: linear of a tensor that is not flat [F]"
                    )));
                }
                let mut v = vec![x.clone(), format!("{name}.weight")];
                if *bias {
                    v.push(format!("{name}.bias"));
                }
                let v: Vec<&str> = v.iter().map(String::as_str).collect();
                self.b
                    .op("Gemm", &v, &name, vec![AttributeProto::int("transB", 1)])
            }
            Op::Concat => {
                let v: Vec<&str> = ins.iter().map(String::as_str).collect();
                self.b
                    .op("Concat", &v, &name, vec![AttributeProto::int("axis", 1)])
            }
            Op::Add => {
                let v: Vec<&str> = ins.iter().map(String::as_str).collect();
                self.b.op("Add", &v, &name, vec![])
            }
            Op::Mul => self.b.mul(&ins[0], &ins[1], &name),
            Op::Crop { size } => {
                let (h, w) = (in_dims[1], in_dims[2]);
                let starts = [((h - size[0]) / 2) as i64, ((w - size[1]) / 2) as i64];
                let ends = [starts[0] + size[0] as i64, starts[1] + size[1] as i64];
                self.b.slice(&x, &starts, &ends, &[2, 3], &name)
            }
            Op::Slice { start, end } => {
                self.b
                    .slice(&x, &[*start as i64], &[*end as i64], &[1], &name)
            }
            Op::Pad { pads, mode } => {
                // As the inference model; the backward takes the gradient of the copies back
                // to where they came from (`pad_maps`).
                let [t, l, b, r] = pads.onnx().map(|p| p as i64);
                let pads = self.b.ints(&[0, 0, t, l, 0, 0, b, r]);
                self.b.op(
                    "Pad",
                    &[&x, &pads],
                    &name,
                    vec![AttributeProto::string("mode", mode.onnx())],
                )
            }
            Op::ChannelShuffle { groups } => self.shuffle(&x, &in_dims, *groups, &name),
            Op::PixelShuffle { factor, unshuffle } => {
                self.pixel_shuffle(&x, &in_dims, *factor, *unshuffle, &name)
            }
            Op::Upsample {
                to,
                mode: UpsampleMode::Nearest,
            } if to.nearest_repeats(hw(&in_dims)).is_none() => {
                // As the inference model: the source rows and columns gathered. The backward
                // multiplies by the transposed 0/1 maps of the same indices.
                let mut y = x.clone();
                for (axis, n, m) in [(2, in_dims[1], out_dims[1]), (3, in_dims[2], out_dims[2])] {
                    if n != m {
                        let index = self.b.ints(&crate::onnx::lower::nearest_indices(
                            to,
                            axis as usize - 2,
                            n,
                            m,
                        ));
                        y = self.b.op(
                            "Gather",
                            &[&y, &index],
                            &format!("{name}.axis{axis}"),
                            vec![AttributeProto::int("axis", axis)],
                        );
                    }
                }
                y
            }
            Op::Upsample {
                to,
                mode: UpsampleMode::Bilinear { align_corners },
            } if to.whole_scale(hw(&in_dims)).is_none() => {
                // As the inference model: Resize to the size, with the batch and channels of
                // the input. Its gradient is the map of its weights, transposed (the backward).
                let batch_and_channels = self.b.op(
                    "Shape",
                    &[&x],
                    &format!("{name}.batch_and_channels"),
                    vec![AttributeProto::int("end", 2)],
                );
                let size = self.b.ints(&i64s(&hw(&out_dims)));
                let sizes = self.b.op(
                    "Concat",
                    &[&batch_and_channels, &size],
                    &format!("{name}.sizes"),
                    vec![AttributeProto::int("axis", 0)],
                );
                let (roi, scales) = (String::new(), String::new());
                self.b.op(
                    "Resize",
                    &[&x, &roi, &scales, &sizes],
                    &name,
                    crate::onnx::lower::resize_to_size_attrs(*align_corners),
                )
            }
            Op::Upsample {
                to,
                mode: UpsampleMode::Bilinear { align_corners },
            } => {
                // As the inference model: Resize. Its gradient is the map of its weights,
                // transposed (the backward).
                let scale = to.whole_scale(hw(&in_dims)).unwrap_or([1, 1]);
                let scales = self.b.init_f32(
                    &format!("{name}.scales"),
                    &[4],
                    &crate::onnx::lower::resize_scales(scale),
                );
                let roi = String::new();
                self.b.op(
                    "Resize",
                    &[&x, &roi, &scales],
                    &name,
                    crate::onnx::lower::resize_attrs(*align_corners),
                )
            }
            Op::Upsample {
                to,
                mode: UpsampleMode::Nearest,
            } => {
                // As the inference model: [N, C, H, 1, W, 1] expanded, then joined.
                let dims = [in_dims[0], in_dims[1], in_dims[2]];
                let scale = to.nearest_repeats(hw(&in_dims)).unwrap_or([1, 1]);
                let (split_dims, repeat_dims, out_dims) =
                    crate::onnx::lower::upsample_shapes(dims, scale);
                let split = self.b.reshape(&x, &split_dims, &format!("{name}.split"));
                let repeats = self.b.ints(&repeat_dims);
                let blocks = self.b.op(
                    "Expand",
                    &[&split, &repeats],
                    &format!("{name}.blocks"),
                    vec![],
                );
                self.b.reshape(&blocks, &out_dims, &name)
            }
        };
        self.value.insert(ix, y);
        Ok(())
    }

    /// ShuffleNet's channel shuffle of `x` (`[N, C, H, W]`) in `groups`: `[N, g, C/g, H, W]`
    /// with its group axes swapped. Its inverse is the shuffle in C/g groups (the backward).
    pub(super) fn shuffle(&mut self, x: &str, in_dims: &[u64], groups: u64, base: &str) -> String {
        let (c, h, w) = (in_dims[0] as i64, in_dims[1] as i64, in_dims[2] as i64);
        let g = groups as i64;
        let grouped = self
            .b
            .reshape(x, &[0, g, c / g, h, w], &format!("{base}.grouped"));
        let swapped = self
            .b
            .transpose(&grouped, &[0, 2, 1, 3, 4], &format!("{base}.swapped"));
        self.b.reshape(&swapped, &[0, c, h, w], base)
    }

    /// PyTorch's `pixel_shuffle(x, r)` of `[N, C·r², H, W]` (`in_dims` without the batch),
    /// ONNX's DepthToSpace in CRD mode as the inference model has it, or with `unshuffle` its
    /// inverse, `pixel_unshuffle`: the blocks [N, C, H/r, r, W/r, r] moved to the channels.
    /// Each is the other's backward.
    pub(super) fn pixel_shuffle(
        &mut self,
        x: &str,
        in_dims: &[u64],
        r: u64,
        unshuffle: bool,
        base: &str,
    ) -> String {
        if !unshuffle {
            return self.b.op(
                "DepthToSpace",
                &[x],
                base,
                vec![
                    AttributeProto::int("blocksize", r as i64),
                    AttributeProto::string("mode", "CRD"),
                ],
            );
        }
        let (c, h, w, r) = (
            in_dims[0] as i64,
            in_dims[1] as i64,
            in_dims[2] as i64,
            r as i64,
        );
        let blocks = self
            .b
            .reshape(x, &[0, c, h / r, r, w / r, r], &format!("{base}.blocks"));
        let moved = self
            .b
            .transpose(&blocks, &[0, 1, 3, 5, 2, 4], &format!("{base}.moved"));
        self.b.reshape(&moved, &[0, c * r * r, h / r, w / r], base)
    }

    /// Φ(x) = ½(1 + erf(x/√2)), the standard normal CDF (GELU's gate), under names from
    /// `base`.
    pub(super) fn normal_cdf(&mut self, x: &str, base: &str) -> String {
        let scaled = self.b.scale(
            x,
            std::f32::consts::FRAC_1_SQRT_2,
            &format!("{base}.scaled"),
        );
        let e = self.b.op("Erf", &[&scaled], &format!("{base}.erf"), vec![]);
        let one = self.b.scalar(1.0);
        let p = self.b.add(&e, &one, &format!("{base}.one_plus"));
        self.b.scale(&p, 0.5, &format!("{base}.cdf"))
    }

    fn batchnorm(
        &mut self,
        ix: NodeIndex,
        name: &str,
        x: &str,
        in_dims: &[u64],
        (eps, momentum, affine): (f64, f64, bool),
    ) -> Result<String, GraphError> {
        let c = in_dims[0] as usize;
        // Without `affine`, ones stand in for γ (the backward pass reads its shape) and, in
        // evaluation, zeros for β (ONNX's BatchNormalization requires both).
        let (gamma, beta) = if affine {
            (format!("{name}.weight"), format!("{name}.bias"))
        } else if self.mode == Mode::Eval {
            (
                self.b
                    .init_f32(&format!("{name}.ones"), &[c], &vec![1.0; c]),
                self.b
                    .init_f32(&format!("{name}.zeros"), &[c], &vec![0.0; c]),
            )
        } else {
            let ones = self
                .b
                .init_f32(&format!("{name}.ones"), &[c], &vec![1.0; c]);
            (ones, String::new())
        };
        let (rm, rv) = (
            format!("{name}.running_mean"),
            format!("{name}.running_var"),
        );
        if self.mode == Mode::Eval {
            return Ok(self.b.op(
                "BatchNormalization",
                &[x, &gamma, &beta, &rm, &rv],
                name,
                vec![AttributeProto::float("epsilon", eps as f32)],
            ));
        }
        let axes = bn_axes(in_dims.len());
        let mut cshape = vec![1i64, c as i64];
        cshape.extend(std::iter::repeat_n(1, in_dims.len() - 1));
        let mean = self
            .b
            .reduce("ReduceMean", x, &axes, true, &format!("{name}.mean"));
        let xc = self.b.sub(x, &mean, &format!("{name}.centered"));
        let sq = self.b.mul(&xc, &xc, &format!("{name}.centered_sq"));
        let var = self
            .b
            .reduce("ReduceMean", &sq, &axes, true, &format!("{name}.var"));
        let e = self.b.scalar(eps as f32);
        let ve = self.b.add(&var, &e, &format!("{name}.var_eps"));
        let std = self.b.op("Sqrt", &[&ve], &format!("{name}.std"), vec![]);
        let inv = self
            .b
            .op("Reciprocal", &[&std], &format!("{name}.inv_std"), vec![]);
        let xhat_name = if affine {
            format!("{name}.xhat")
        } else {
            name.to_string()
        };
        let xhat = self.b.mul(&xc, &inv, &xhat_name);
        let g = self.b.reshape(&gamma, &cshape, &format!("{name}.gamma"));
        let y = if affine {
            let bt = self.b.reshape(&beta, &cshape, &format!("{name}.beta"));
            let scaled = self.b.mul(&xhat, &g, &format!("{name}.scaled"));
            self.b.add(&scaled, &bt, name)
        } else {
            xhat.clone()
        };
        if self.update_running {
            // PyTorch: running = (1 − m)·running + m·batch, with the unbiased variance.
            let m = momentum as f32;
            let mean_c = self
                .b
                .reshape(&mean, &[c as i64], &format!("{name}.mean_c"));
            let var_c = self.b.reshape(&var, &[c as i64], &format!("{name}.var_c"));
            let count = self.b.size_f32(x, &format!("{name}.count_all"));
            let cc = self.b.scalar(c as f32);
            let per = self.b.div(&count, &cc, &format!("{name}.count"));
            let one = self.b.scalar(1.0);
            let per1 = self.b.sub(&per, &one, &format!("{name}.count_m1"));
            let corr = self.b.div(&per, &per1, &format!("{name}.bessel"));
            let unbiased = self.b.mul(&var_c, &corr, &format!("{name}.var_unbiased"));
            for (run, batch, out) in [
                (&rm, &mean_c, "running_mean"),
                (&rv, &unbiased, "running_var"),
            ] {
                let old = self.b.scale(run, 1.0 - m, &format!("{name}.{out}.old"));
                let new = self.b.scale(batch, m, &format!("{name}.{out}.batch"));
                let exact = format!("new.{name}.{out}");
                self.b.node_to("Add", &[&old, &new], &[&exact], vec![]);
                self.extra_outputs.push((exact, vec![c]));
            }
        }
        self.saved.insert(
            ix,
            Saved::BatchNorm {
                xhat,
                inv_std: inv,
                gamma: g,
                axes,
                affine,
            },
        );
        Ok(y)
    }

    /// Group norm as its arithmetic, in training and evaluation alike (no running
    /// statistics): the sample reshaped to [N, G, M], each group centred and scaled by
    /// 1/√(var + ε) (the biased variance, as PyTorch), reshaped back, then γ and β per
    /// channel. The backward pass reuses x̂ and 1/σ.
    #[allow(clippy::too_many_arguments)]
    #[allow(clippy::too_many_arguments)]
    fn group_norm(
        &mut self,
        ix: NodeIndex,
        name: &str,
        x: &str,
        in_dims: &[u64],
        groups: Option<u64>,
        eps: f64,
        affine: bool,
    ) -> String {
        let g = groups.unwrap_or(in_dims[0]);
        self.norm(ix, name, x, in_dims, NormOver::Groups(g), eps, affine)
    }

    /// A normalization by each sample's own statistics, over `over`, then the per-channel
    /// γ and β when `affine`.
    #[allow(clippy::too_many_arguments)]
    fn norm(
        &mut self,
        ix: NodeIndex,
        name: &str,
        x: &str,
        in_dims: &[u64],
        over: NormOver,
        eps: f64,
        affine: bool,
    ) -> String {
        let c = in_dims[0];
        let xg = match over {
            NormOver::Groups(g) => {
                self.b
                    .reshape(x, &[0, g as i64, -1], &format!("{name}.grouped"))
            }
            NormOver::Channels => x.to_string(),
        };
        let axis = over.axis();
        let mean = self
            .b
            .reduce("ReduceMean", &xg, &[axis], true, &format!("{name}.mean"));
        let xc = self.b.sub(&xg, &mean, &format!("{name}.centered"));
        let sq = self.b.mul(&xc, &xc, &format!("{name}.centered_sq"));
        let var = self
            .b
            .reduce("ReduceMean", &sq, &[axis], true, &format!("{name}.var"));
        let e = self.b.scalar(eps as f32);
        let ve = self.b.add(&var, &e, &format!("{name}.var_eps"));
        let std = self.b.op("Sqrt", &[&ve], &format!("{name}.std"), vec![]);
        let inv = self
            .b
            .op("Reciprocal", &[&std], &format!("{name}.inv_std"), vec![]);
        let xhat_grouped = self.b.mul(&xc, &inv, &format!("{name}.xhat_grouped"));
        let mut shape = vec![0i64];
        shape.extend(in_dims.iter().map(|&d| d as i64));
        let (xhat, gamma, y) = if affine {
            let xhat = match over {
                NormOver::Groups(_) => {
                    self.b
                        .reshape(&xhat_grouped, &shape, &format!("{name}.xhat"))
                }
                NormOver::Channels => xhat_grouped.clone(),
            };
            let mut cshape = vec![1i64, c as i64];
            cshape.extend(std::iter::repeat_n(1, in_dims.len() - 1));
            let (weight, bias) = (format!("{name}.weight"), format!("{name}.bias"));
            let gamma = self.b.reshape(&weight, &cshape, &format!("{name}.gamma"));
            let beta = self.b.reshape(&bias, &cshape, &format!("{name}.beta"));
            let scaled = self.b.mul(&xhat, &gamma, &format!("{name}.scaled"));
            let y = self.b.add(&scaled, &beta, name);
            (xhat, Some(gamma), y)
        } else {
            let y = match over {
                NormOver::Groups(_) => self.b.reshape(&xhat_grouped, &shape, name),
                NormOver::Channels => xhat_grouped.clone(),
            };
            (y.clone(), None, y)
        };
        self.saved.insert(
            ix,
            Saved::GroupNorm {
                xhat_grouped,
                xhat,
                inv_std: inv,
                gamma,
                over,
            },
        );
        y
    }

    fn dropout(
        &mut self,
        ix: NodeIndex,
        name: &str,
        x: &str,
        out_dims: &[u64],
        p: f64,
    ) -> Result<String, GraphError> {
        if self.mode == Mode::Eval || p == 0.0 {
            return Ok(x.to_string());
        }
        if !(0.0..1.0).contains(&p) {
            return Err(err(format!(
                "`{name}`: dropout probability {p} must be in [0, 1) for training"
            )));
        }
        let scale = (1.0 / (1.0 - p)) as f32;
        match self.dropout {
            DropoutMode::Random => {
                let ratio = self.b.scalar(p as f32);
                let on = self.b.bool_scalar(true);
                let y = self.b.fresh(name);
                let mask = self.b.fresh(&format!("{name}.mask"));
                self.b
                    .node_to("Dropout", &[x, &ratio, &on], &[&y, &mask], vec![]);
                if !self.needs_grad[&ix] {
                    // No gradient flows back through this dropout (no trainable layer
                    // before it), so no backward node reads its mask, and ONNX Runtime's
                    // basic optimizer removes a Dropout whose mask is unused whatever its
                    // training_mode: training would silently run without it. Reading the
                    // mask once keeps it: Where(mask, y, 0) is y, as y is 0 where the mask
                    // is.
                    let zero = self.b.scalar(0.0);
                    return Ok(self.b.op(
                        "Where",
                        &[&mask, &y, &zero],
                        &format!("{name}.masked"),
                        vec![],
                    ));
                }
                self.saved.insert(
                    ix,
                    Saved::Dropout {
                        mask,
                        is_bool: true,
                        scale,
                    },
                );
                Ok(y)
            }
            DropoutMode::MaskInput => {
                let mask = format!("dropout_mask.{name}");
                if !self.b.reserve(&mask) {
                    return Err(err(format!("the value name `{mask}` is taken")));
                }
                self.b
                    .input(&mask, data_type::FLOAT, &super::builder::batched(out_dims));
                self.masks.push(super::DropoutMask {
                    input: mask.clone(),
                    dims: out_dims.iter().map(|&d| d as usize).collect(),
                    p,
                });
                let kept = self.b.mul(x, &mask, &format!("{name}.kept"));
                let y = self.b.scale(&kept, scale, name);
                self.saved.insert(
                    ix,
                    Saved::Dropout {
                        mask,
                        is_bool: false,
                        scale,
                    },
                );
                Ok(y)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adaptive_bins_match_pytorch() {
        // 5 → 3: bins [0,2), [1,4), [3,5).
        let m = adaptive_matrix(5, 3);
        let want = [
            0.5,
            0.5,
            0.0,
            0.0,
            0.0, //
            0.0,
            1.0 / 3.0,
            1.0 / 3.0,
            1.0 / 3.0,
            0.0, //
            0.0,
            0.0,
            0.0,
            0.5,
            0.5,
        ];
        for (a, b) in m.iter().zip(want) {
            assert!((a - b).abs() < 1e-7);
        }
    }

    #[test]
    fn avgpool_divisor_excludes_ceil_overhang() {
        // n = 5, k = 2, s = 2, pad 1 each side, ceil: windows start at −1, 1, 3, 5?
        // PyTorch: out = ceil((5 + 2 − 2) / 2) + 1 = 4, last window starts at 5 < 5 + 1.
        let p = PoolAttrs {
            kernel: [2, 2],
            stride: [2, 2],
            pads: Pads::symmetric([1, 1]),
            ceil: true,
            count_pad: true,
        };
        let d = p.avg_divisors([5, 5], [4, 4]);
        // Row sizes: 2, 2, 2, 1 (the last window covers the end padding only up to n + pe).
        assert_eq!(&d[..4], &[4.0, 4.0, 4.0, 2.0]);
        assert_eq!(d[15], 1.0);
    }
}

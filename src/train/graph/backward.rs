//! The backward pass: for one IR node, the gradient of the loss w.r.t. each of its inputs
//! (only where an input depends on a parameter) and w.r.t. its parameters, from the gradient
//! w.r.t. its output. Every recipe is standard ONNX (opset 18):
//!
//! | layer | input gradient | parameter gradient |
//! | --- | --- | --- |
//! | conv | ConvTranspose(dY, W) with the forward strides, dilations, group, pads and the output padding that restores H×W | Conv of x as (C/g, g·N, H, W) by dY as (M, N, oH, oW): strides ↔ dilations swapped, group g, sliced to the kernel, transposed to (M, C/g, kh, kw); for a strided conv with ≥ 100 output positions (cuDNN is slow on that Conv's large dilated kernel): im2col (a Conv with one-hot kernels, group C) by dY, MatMul per sample and group, ReduceSum over the batch; bias: ReduceSum, or exactly zero when a batch norm is the only consumer (also through a residual add, concat, flatten, scale, channel shuffle, slice, crop or pixel unshuffle) |
//! | convT | Conv(dY, W) with the forward hyperparameters (sliced to H×W) | the conv weight-gradient routine with input and output gradient swapped; bias as for conv |
//! | maxpool | ScatterElements(add) of dY at the flat Indices into zeros, Reshape | — |
//! | avgpool | dY / divisor (PyTorch's count_include_pad divisor per window), then ConvTranspose with a ones kernel, group C | — |
//! | adaptive_avgpool | Phᵀ · dY · Pw (the transposed averaging matrices) | — |
//! | global_avgpool | Expand(dY / (H·W)) | — |
//! | adaptive_maxpool, global_maxpool | as maxpool's into the gathered bins, then Rᵀ · dBins · C (the gathers' transposed 0/1 maps) | — |
//! | batchnorm | (dx̂ − mean(dx̂) − x̂·mean(dx̂·x̂)) / σ, dx̂ = dY·γ | γ: ReduceSum(dY·x̂), β: ReduceSum(dY), or exactly zero before another batch norm |
//! | groupnorm, instancenorm | as batch norm's, the means over a sample's group, [N, G, M] | with affine, γ: ReduceSum(dY·x̂), β: ReduceSum(dY), or exactly zero before a batch norm |
//! | layernorm | as batch norm's, the means over a pixel's channels (a vector's features) | as group norm's |
//! | layer_scale | dY·γ | γ: ReduceSum(dY·x) over the batch and the pixels |
//! | relu, leaky_relu, elu | Where(x > 0, dY, …) | — |
//! | sigmoid, tanh | dY·y(1−y), dY·(1−y²) | — |
//! | relu6, hardsigmoid | Where(lo < x < hi, dY, 0), dY/6 inside | — |
//! | hardswish | dY·(0 to −3, x/3 + ½ between, 1 from 3), PyTorch 2's at the kinks | — |
//! | silu, gelu | dY·σ(x)(1 + x(1−σ(x))), dY·(Φ(x) + x·φ(x)), σ and Φ computed again from x | — |
//! | mish | dY·(tanh(sp) + x·σ(x)·(1 − tanh²(sp))), sp = softplus(x) | — |
//! | scale(k) | k·dY | — |
//! | prelu | Where(x > 0, dY, a·dY) | a: ReduceSum of x·dY where x ≤ 0, per channel or over all |
//! | softmax | y·(dY − ReduceSum(dY·y, channels)) | — |
//! | gate (mul) | dY·g for x; dY·x for g, ReduceSum over H, W for a per-channel g | — |
//! | dropout | Where(mask, dY/(1−p), 0) | — |
//! | flatten | Reshape | — |
//! | linear | MatMul(dY, W) | W: Gemm(dYᵀ, x); b: ReduceSum, or exactly zero when a batch norm is the only consumer (also through an add, concat, flatten, scale, channel shuffle or slice) |
//! | concat | Split by channel counts | — |
//! | add | dY to both inputs | — |
//! | crop | Pad with zeros back to the input size | — |
//! | slice | Pad with zeros for the channels (features) left out | — |
//! | channel_shuffle | the shuffle in C/g groups (its inverse) | — |
//! | pixel_shuffle, pixel_unshuffle | the other one (each is the other's inverse) | — |
//! | upsample | nearest: dY as [N, C, H, sh, W, sw], ReduceSum over the block axes; bilinear: Rᵀ · dY · C (the transposed interpolation matrices) | — |

use super::forward::{
    adaptive_matrix, adaptive_max_maps, bn_axes, conv_attrs, pad_maps, pool_overhang, pool_pads,
    prelu_slope, upsample_maps, Separable,
};
use super::{err, GraphError, Lowering, NormOver, Saved};
use crate::ir::UpsampleMode;
use crate::ir::{Op, Pads};
use crate::onnx::proto::AttributeProto;
use crate::shape::CheckedModel;
use petgraph::graph::NodeIndex;

/// The convolution hyperparameters the gradient routines share.
#[derive(Clone, Copy, Debug)]
struct ConvGeom {
    kernel: [u64; 2],
    stride: [u64; 2],
    pads: Pads,
    dilation: [u64; 2],
    groups: u64,
}

/// Whether a conv's weight gradient is computed as im2col and a product
/// ([`Lowering::conv_weight_grad_im2col`]) rather than as one Conv with dY as the kernel: for a
/// strided conv with at least 100 output positions, whose patches take at most 4M values
/// (16 MB) per example. Measured with cuDNN on an H100 (benches/reference/conv_grad_forms.py):
/// the Conv form takes 10.8 ms for AlexNet's first conv at batch 128 (54×54 outputs, stride
/// 4) and 11.1 ms for ResNet-18's stem at 96×96, batch 256 (48×48, stride 2), the im2col form
/// 1.3 and 0.7 ms; at 12×12 outputs they are even, at 6×6 the Conv form is twice as fast.
fn im2col_pays(g: &ConvGeom, x_dims: &[u64], dy_dims: &[u64]) -> bool {
    let positions = dy_dims[1] * dy_dims[2];
    g.stride.iter().any(|&s| s > 1)
        && positions >= 100
        && patch_values(g, x_dims, dy_dims) <= 1 << 22
}

/// The values of one example's im2col patches: C·kh·kw per output position.
fn patch_values(g: &ConvGeom, x_dims: &[u64], dy_dims: &[u64]) -> u64 {
    x_dims[0] * g.kernel[0] * g.kernel[1] * dy_dims[1] * dy_dims[2]
}

/// The bytes per example that the im2col weight gradients of `model`'s convs hold beyond
/// the layer outputs: each conv's patches and their transposed copy, in float32. For the
/// memory a training step needs.
pub fn im2col_bytes_per_example(model: &CheckedModel) -> u64 {
    model
        .layers()
        .into_iter()
        .filter_map(|ix| {
            let Op::Conv(a) = &model.node(ix).op else {
                return None;
            };
            let &input = model.graph.inputs(ix).first()?;
            let (x_dims, dy_dims) = (model.shape(input).dims(), model.shape(ix).dims());
            let g = ConvGeom {
                kernel: a.kernel,
                stride: a.stride,
                pads: a.pads,
                dilation: a.dilation,
                groups: a.groups,
            };
            im2col_pays(&g, x_dims, dy_dims).then(|| patch_values(&g, x_dims, dy_dims) * 2 * 4)
        })
        .fold(0u64, u64::saturating_add)
}

impl Lowering<'_> {
    /// A max pooling's input gradient: `dy` added at the flat `indices` (a MaxPool's
    /// second output) into zeros shaped as `x`, the MaxPool's input.
    fn scatter_at_indices(&mut self, indices: &str, x: &str, dy: &str, base: &str) -> String {
        let shape = self.b.op("Shape", &[x], &format!("{base}.shape"), vec![]);
        let size = self.b.op("Size", &[x], &format!("{base}.size"), vec![]);
        let axes0 = self.b.ints(&[0]);
        let size1 = self.b.op(
            "Unsqueeze",
            &[&size, &axes0],
            &format!("{base}.size1"),
            vec![],
        );
        let zeros = self.b.op(
            "ConstantOfShape",
            &[&size1],
            &format!("{base}.zeros"),
            vec![],
        );
        let idx_flat = self.b.reshape(indices, &[-1], &format!("{base}.indices"));
        let dy_flat = self.b.reshape(dy, &[-1], &format!("{base}.flat"));
        let sc = self.b.op(
            "ScatterElements",
            &[&zeros, &idx_flat, &dy_flat],
            &format!("{base}.scattered"),
            vec![
                AttributeProto::int("axis", 0),
                AttributeProto::string("reduction", "add"),
            ],
        );
        self.b.op("Reshape", &[&sc, &shape], base, vec![])
    }

    pub(super) fn backward(
        &mut self,
        ix: NodeIndex,
        dy: &str,
        want: &[bool],
    ) -> Result<Vec<Option<String>>, GraphError> {
        let model = self.model;
        let node = model.node(ix);
        let name = node.name.clone();
        let inputs = model.graph.inputs(ix);
        let x = inputs
            .first()
            .map(|i| self.value[i].clone())
            .unwrap_or_default();
        let y = self.value[&ix].clone();
        let in_dims: Vec<u64> = inputs
            .first()
            .map(|&i| model.shape(i).dims().to_vec())
            .unwrap_or_default();
        let out_dims = model.shape(ix).dims().to_vec();
        let base = format!("d.{name}");
        let want0 = want.first().copied().unwrap_or(false);
        let one = |v: Option<String>| vec![v];
        Ok(match &node.op {
            Op::Input => vec![],
            Op::Conv(a) => {
                let g = ConvGeom {
                    kernel: a.kernel,
                    stride: a.stride,
                    pads: a.pads,
                    dilation: a.dilation,
                    groups: a.groups,
                };
                let w = format!("{name}.weight");
                let dx =
                    want0.then(|| self.conv_input_grad(dy, &w, &in_dims, &out_dims, &g, &base));
                let grad_name = format!("grad.{name}.weight");
                let dw = if im2col_pays(&g, &in_dims, &out_dims) {
                    self.conv_weight_grad_im2col(&x, &in_dims, dy, &out_dims, &g, &grad_name)
                } else {
                    self.conv_weight_grad(&x, &in_dims, dy, &out_dims, &g, &grad_name)
                };
                self.param_grad.insert(w, dw);
                if a.bias {
                    self.bias_grad(ix, dy, &[0, 2, 3], &name);
                }
                one(dx)
            }
            Op::ConvTranspose(a) => {
                let g = ConvGeom {
                    kernel: a.kernel,
                    stride: a.stride,
                    pads: a.pads,
                    dilation: a.dilation,
                    groups: a.groups,
                };
                let w = format!("{name}.weight");
                let dx = if want0 {
                    let c = self.b.op(
                        "Conv",
                        &[dy, &w],
                        &base,
                        conv_attrs(Some(g.kernel), g.stride, &g.pads, g.dilation, g.groups),
                    );
                    // Conv of the output size can give more rows than the input had (when
                    // output_padding ≥ stride); those rows never reached the output.
                    let full = |n: u64, axis: usize| {
                        let span = (g.kernel[axis] - 1) * g.dilation[axis] + 1;
                        (n + g.pads.begin[axis] + g.pads.end[axis] - span) / g.stride[axis] + 1
                    };
                    if full(out_dims[1], 0) != in_dims[1] || full(out_dims[2], 1) != in_dims[2] {
                        Some(self.b.slice(
                            &c,
                            &[0, 0],
                            &[in_dims[1] as i64, in_dims[2] as i64],
                            &[2, 3],
                            &format!("{base}.cut"),
                        ))
                    } else {
                        Some(c)
                    }
                } else {
                    None
                };
                // The transposed conv is the adjoint of a conv from y to x: its weight
                // gradient is that conv's, with dY as the conv's input and x as its output
                // gradient.
                let dw = self.conv_weight_grad(
                    dy,
                    &out_dims,
                    &x,
                    &in_dims,
                    &g,
                    &format!("grad.{name}.weight"),
                );
                self.param_grad.insert(w, dw);
                if a.bias {
                    self.bias_grad(ix, dy, &[0, 2, 3], &name);
                }
                one(dx)
            }
            Op::MaxPool(_) => {
                let Saved::MaxPoolIndices(idx) = self.saved[&ix].clone() else {
                    return Err(err(format!("`{name}`: max pooling lost its indices")));
                };
                one(Some(self.scatter_at_indices(&idx, &x, dy, &base)))
            }
            // The gradient of the gathered bins, then each gather's transposed 0/1 map.
            Op::AdaptiveMaxPool { .. } | Op::GlobalMaxPool => {
                let Saved::AdaptiveMaxPool { indices, bins } = self.saved[&ix].clone() else {
                    return Err(err(format!("`{name}`: max pooling lost its indices")));
                };
                let output = [out_dims[1], out_dims[2]];
                let (rows, cols) = adaptive_max_maps(&in_dims, output);
                let d_bins = self.scatter_at_indices(&indices, &bins, dy, &format!("{base}.bins"));
                one(Some(self.separable(
                    &d_bins,
                    &rows.transposed(),
                    &cols.transposed(),
                    &base,
                )))
            }
            Op::AvgPool(p) => {
                let in_hw = [in_dims[1], in_dims[2]];
                let out_hw = [out_dims[1], out_dims[2]];
                let extra = pool_overhang(p, in_hw, out_hw)?;
                let pads = pool_pads(p, extra);
                let k = p.kernel;
                let scaled = if p.divides_by_kernel(extra) {
                    self.b
                        .scale(dy, 1.0 / (k[0] * k[1]) as f32, &format!("{base}.scaled"))
                } else {
                    let inv: Vec<f32> = p
                        .avg_divisors(in_hw, out_hw)
                        .iter()
                        .map(|d| 1.0 / d)
                        .collect();
                    let c = self.b.init_f32(
                        &format!("{name}.inv_divisor"),
                        &[out_hw[0] as usize, out_hw[1] as usize],
                        &inv,
                    );
                    self.b.mul(dy, &c, &format!("{base}.scaled"))
                };
                one(Some(self.spread_windows(
                    &scaled, &in_dims, &out_dims, k, p.stride, pads, &base,
                )))
            }
            // y = R·x·Cᵀ, so dx = Rᵀ·dy·C: the same maps transposed.
            Op::AdaptiveAvgPool { output } => {
                let (h, w) = (in_dims[1], in_dims[2]);
                let [oh, ow] = *output;
                let rows = Separable::new(adaptive_matrix(h, oh), oh, h);
                let cols = Separable::new(adaptive_matrix(w, ow), ow, w);
                one(Some(self.separable(
                    dy,
                    &rows.transposed(),
                    &cols.transposed(),
                    &base,
                )))
            }
            Op::GlobalAvgPool => {
                let s = self.b.scale(
                    dy,
                    1.0 / (in_dims[1] * in_dims[2]) as f32,
                    &format!("{base}.scaled"),
                );
                let shape = self.b.op("Shape", &[&x], &format!("{base}.shape"), vec![]);
                one(Some(self.b.op("Expand", &[&s, &shape], &base, vec![])))
            }
            Op::BatchNorm { .. } => {
                let Saved::BatchNorm {
                    xhat,
                    inv_std,
                    gamma,
                    axes,
                    affine,
                } = self.saved[&ix].clone()
                else {
                    return Err(err(format!("`{name}`: batch norm lost its statistics")));
                };
                // γ's gradient is Σ(dY·x̂) and β's ΣdY, which the input gradient needs too.
                // Before another batch norm β's is exactly zero and left so (see
                // `bias_grad`); without `affine` neither is a parameter.
                let dg = if affine {
                    self.scale_grad(&name, &base, dy, &xhat, &axes)
                } else {
                    let t = self.b.mul(dy, &xhat, &format!("{base}.dy_xhat"));
                    self.b.reduce(
                        "ReduceSum",
                        &t,
                        &axes,
                        false,
                        &format!("{base}.sum_dy_xhat_all"),
                    )
                };
                let beta_zero = affine && self.feeds_only_batchnorm(ix);
                let db_name = if beta_zero || !affine {
                    format!("{base}.sum_dy_all")
                } else {
                    format!("grad.{name}.bias")
                };
                let db = self.b.reduce("ReduceSum", dy, &axes, false, &db_name);
                if beta_zero {
                    self.zero_grad.insert(format!("{name}.bias"));
                } else if affine {
                    self.param_grad.insert(format!("{name}.bias"), db.clone());
                }
                let dx = if want0 {
                    // dx = γ/σ · (dy − mean(dy) − x̂·mean(dy·x̂)), the means over the N values
                    // of a channel: they are the parameter gradients' sums over N, so only
                    // four passes over the tensor remain.
                    let n_all = self.b.size_f32(dy, &format!("{base}.count_all"));
                    let c = self.b.size_f32(&gamma, &format!("{base}.channels"));
                    let n = self.b.div(&n_all, &c, &format!("{base}.count"));
                    let mean_dy = self.b.reshape_like(&db, &gamma, &format!("{base}.sum_dy"));
                    let mean_dy = self.b.div(&mean_dy, &n, &format!("{base}.mean_dy"));
                    let mean_t = self
                        .b
                        .reshape_like(&dg, &gamma, &format!("{base}.sum_dy_xhat"));
                    let mean_t = self.b.div(&mean_t, &n, &format!("{base}.mean_dy_xhat"));
                    let k = self
                        .b
                        .mul(&gamma, &inv_std, &format!("{base}.gamma_inv_std"));
                    let a = self.b.sub(dy, &mean_dy, &format!("{base}.a"));
                    let bterm = self.b.mul(&xhat, &mean_t, &format!("{base}.b"));
                    let c = self.b.sub(&a, &bterm, &format!("{base}.c"));
                    Some(self.b.mul(&c, &k, &base))
                } else {
                    None
                };
                one(dx)
            }
            Op::GroupNorm { .. } | Op::LayerNorm { .. } => {
                let Saved::GroupNorm {
                    xhat_grouped,
                    xhat,
                    inv_std,
                    gamma,
                    over,
                } = self.saved[&ix].clone()
                else {
                    return Err(err(format!("`{name}`: group norm lost its statistics")));
                };
                // γ and β: sums over the batch and the pixels, per channel.
                let dxhat = match &gamma {
                    Some(gamma) => {
                        let axes = bn_axes(in_dims.len());
                        self.scale_grad(&name, &base, dy, &xhat, &axes);
                        self.bias_grad(ix, dy, &axes, &name);
                        self.b.mul(dy, gamma, &format!("{base}.dxhat"))
                    }
                    None => dy.to_string(),
                };
                let dx = if want0 {
                    // dx = 1/σ · (dx̂ − mean(dx̂) − x̂·mean(dx̂·x̂)), the means over the values
                    // of one statistic: a group's values of one sample, or a pixel's channels.
                    let dg = match over {
                        NormOver::Groups(g) => self.b.reshape(
                            &dxhat,
                            &[0, g as i64, -1],
                            &format!("{base}.dxhat_grouped"),
                        ),
                        NormOver::Channels => dxhat,
                    };
                    let axis = over.axis();
                    let m1 = self.b.reduce(
                        "ReduceMean",
                        &dg,
                        &[axis],
                        true,
                        &format!("{base}.mean_dxhat"),
                    );
                    let t = self
                        .b
                        .mul(&dg, &xhat_grouped, &format!("{base}.dxhat_xhat"));
                    let m2 = self.b.reduce(
                        "ReduceMean",
                        &t,
                        &[axis],
                        true,
                        &format!("{base}.mean_dxhat_xhat"),
                    );
                    let a = self.b.sub(&dg, &m1, &format!("{base}.a"));
                    let bterm = self.b.mul(&xhat_grouped, &m2, &format!("{base}.b"));
                    let c = self.b.sub(&a, &bterm, &format!("{base}.c"));
                    Some(match over {
                        NormOver::Groups(_) => {
                            let dxg = self.b.mul(&c, &inv_std, &format!("{base}.grouped"));
                            let mut shape = vec![0i64];
                            shape.extend(in_dims.iter().map(|&d| d as i64));
                            self.b.reshape(&dxg, &shape, &base)
                        }
                        NormOver::Channels => self.b.mul(&c, &inv_std, &base),
                    })
                } else {
                    None
                };
                one(dx)
            }
            // γ·x: dY·γ for x; ΣdY·x over the batch and the pixels for γ, in its own shape.
            Op::LayerScale { .. } => {
                let weight = format!("{name}.weight");
                let xdy = self.b.mul(&x, dy, &format!("{base}.x_dy"));
                let axes = bn_axes(in_dims.len());
                let grad = format!("grad.{weight}");
                let dg = if in_dims.len() == 1 {
                    self.b.reduce("ReduceSum", &xdy, &axes, false, &grad)
                } else {
                    let sum =
                        self.b
                            .reduce("ReduceSum", &xdy, &axes, false, &format!("{base}.sum_x_dy"));
                    self.b.reshape(&sum, &[-1, 1, 1], &grad)
                };
                self.param_grad.insert(weight.clone(), dg);
                one(want0.then(|| self.b.mul(dy, &weight, &base)))
            }
            Op::Relu => {
                let zero = self.b.scalar(0.0);
                let pos = self
                    .b
                    .op("Greater", &[&y, &zero], &format!("{base}.pos"), vec![]);
                one(Some(self.b.op("Where", &[&pos, dy, &zero], &base, vec![])))
            }
            Op::Sigmoid => {
                let one_c = self.b.scalar(1.0);
                let t = self.b.sub(&one_c, &y, &format!("{base}.one_minus"));
                let u = self.b.mul(&y, &t, &format!("{base}.slope"));
                one(Some(self.b.mul(dy, &u, &base)))
            }
            Op::Tanh => {
                let one_c = self.b.scalar(1.0);
                let sq = self.b.mul(&y, &y, &format!("{base}.sq"));
                let t = self.b.sub(&one_c, &sq, &format!("{base}.slope"));
                one(Some(self.b.mul(dy, &t, &base)))
            }
            Op::LeakyRelu { alpha } => {
                let zero = self.b.scalar(0.0);
                let pos = self
                    .b
                    .op("Greater", &[&x, &zero], &format!("{base}.pos"), vec![]);
                let neg = self.b.scale(dy, *alpha as f32, &format!("{base}.neg"));
                one(Some(self.b.op("Where", &[&pos, dy, &neg], &base, vec![])))
            }
            Op::Elu { alpha } => {
                let zero = self.b.scalar(0.0);
                let pos = self
                    .b
                    .op("Greater", &[&x, &zero], &format!("{base}.pos"), vec![]);
                let a = self.b.scalar(*alpha as f32);
                let ya = self.b.add(&y, &a, &format!("{base}.slope"));
                let neg = self.b.mul(dy, &ya, &format!("{base}.neg"));
                one(Some(self.b.op("Where", &[&pos, dy, &neg], &base, vec![])))
            }
            // σ(x)·(1 + x·(1 − σ(x))), with σ(x) computed again from x.
            Op::Silu => {
                let s = self
                    .b
                    .op("Sigmoid", &[&x], &format!("{base}.sigmoid"), vec![]);
                let one_c = self.b.scalar(1.0);
                let t = self.b.sub(&one_c, &s, &format!("{base}.one_minus"));
                let xt = self.b.mul(&x, &t, &format!("{base}.x_one_minus"));
                let u = self.b.add(&one_c, &xt, &format!("{base}.one_plus"));
                let slope = self.b.mul(&s, &u, &format!("{base}.slope"));
                one(Some(self.b.mul(dy, &slope, &base)))
            }
            Op::Scale { factor } => one(Some(self.b.scale(dy, *factor as f32, &base))),
            // dY / std, as PyTorch's Div gives it.
            Op::Normalize { std, .. } => {
                let s = super::forward::normalize_constant(
                    &mut self.b,
                    &format!("{base}.std"),
                    std,
                    in_dims.len(),
                );
                one(Some(self.b.div(dy, &s, &base)))
            }
            // tanh(sp) + x·σ(x)·(1 − tanh²(sp)), sp = softplus(x) (its derivative is σ(x)).
            Op::Mish => {
                let sp = self
                    .b
                    .op("Softplus", &[&x], &format!("{base}.softplus"), vec![]);
                let t = self.b.op("Tanh", &[&sp], &format!("{base}.tanh"), vec![]);
                let s = self
                    .b
                    .op("Sigmoid", &[&x], &format!("{base}.sigmoid"), vec![]);
                let one_c = self.b.scalar(1.0);
                let t2 = self.b.mul(&t, &t, &format!("{base}.tanh_sq"));
                let sech2 = self.b.sub(&one_c, &t2, &format!("{base}.sech_sq"));
                let xs = self.b.mul(&x, &s, &format!("{base}.x_sigmoid"));
                let xss = self
                    .b
                    .mul(&xs, &sech2, &format!("{base}.x_sigmoid_sech_sq"));
                let slope = self.b.add(&t, &xss, &format!("{base}.slope"));
                one(Some(self.b.mul(dy, &slope, &base)))
            }
            // PyTorch's: dY where x > 0, a·dY elsewhere; a: Σ x·dY where x ≤ 0, per channel
            // or over everything.
            Op::Prelu { per_channel } => {
                let zero = self.b.scalar(0.0);
                let pos = self
                    .b
                    .op("Greater", &[&x, &zero], &format!("{base}.pos"), vec![]);
                let xdy = self.b.mul(&x, dy, &format!("{base}.x_dy"));
                let neg_part = self.b.op(
                    "Where",
                    &[&pos, &zero, &xdy],
                    &format!("{base}.neg_x_dy"),
                    vec![],
                );
                let grad = format!("grad.{name}.weight");
                let da = if *per_channel {
                    self.b.reduce(
                        "ReduceSum",
                        &neg_part,
                        &bn_axes(in_dims.len()),
                        false,
                        &grad,
                    )
                } else {
                    let all = self.b.reduce(
                        "ReduceSum",
                        &neg_part,
                        &[],
                        false,
                        &format!("{base}.sum_all"),
                    );
                    self.b.reshape(&all, &[1], &grad)
                };
                self.param_grad.insert(format!("{name}.weight"), da);
                let dx = if want0 {
                    let slope = prelu_slope(&mut self.b, &name, &base, *per_channel, &in_dims);
                    let ady = self.b.mul(dy, &slope, &format!("{base}.slope_dy"));
                    Some(self.b.op("Where", &[&pos, dy, &ady], &base, vec![]))
                } else {
                    None
                };
                one(dx)
            }
            // Φ(x) + x·φ(x), φ(x) = exp(−x²/2)/√(2π).
            Op::Gelu => {
                let cdf = self.normal_cdf(&x, &base);
                let sq = self.b.mul(&x, &x, &format!("{base}.sq"));
                let m = self.b.scale(&sq, -0.5, &format!("{base}.half_sq"));
                let e = self.b.op("Exp", &[&m], &format!("{base}.exp"), vec![]);
                let inv_sqrt_2pi =
                    0.5 * std::f32::consts::FRAC_2_SQRT_PI * std::f32::consts::FRAC_1_SQRT_2;
                let pdf = self.b.scale(&e, inv_sqrt_2pi, &format!("{base}.pdf"));
                let xp = self.b.mul(&x, &pdf, &format!("{base}.x_pdf"));
                let slope = self.b.add(&cdf, &xp, &format!("{base}.slope"));
                one(Some(self.b.mul(dy, &slope, &base)))
            }
            // PyTorch's: dY where 0 < x < 6, else 0 (at the bounds too).
            Op::Relu6 => {
                let inside = self.open_interval(&x, 0.0, 6.0, &base);
                let zero = self.b.scalar(0.0);
                one(Some(self.b.op(
                    "Where",
                    &[&inside, dy, &zero],
                    &base,
                    vec![],
                )))
            }
            // dY/6 where −3 < x < 3, else 0.
            Op::HardSigmoid => {
                let inside = self.open_interval(&x, -3.0, 3.0, &base);
                let zero = self.b.scalar(0.0);
                let sixth = self.b.scale(dy, 1.0 / 6.0, &format!("{base}.sixth"));
                one(Some(self.b.op(
                    "Where",
                    &[&inside, &sixth, &zero],
                    &base,
                    vec![],
                )))
            }
            // PyTorch's (2.x): 0 for x ≤ −3, x/3 + ½ for −3 < x < 3, 1 from 3 on.
            Op::HardSwish => {
                let (lo, hi) = (self.b.scalar(-3.0), self.b.scalar(3.0));
                let third = self.b.scale(&x, 1.0 / 3.0, &format!("{base}.third"));
                let half = self.b.scalar(0.5);
                let mid = self.b.add(&third, &half, &format!("{base}.mid"));
                let below = self
                    .b
                    .op("LessOrEqual", &[&x, &lo], &format!("{base}.below"), vec![]);
                let above = self.b.op(
                    "GreaterOrEqual",
                    &[&x, &hi],
                    &format!("{base}.above"),
                    vec![],
                );
                let (zero, one_c) = (self.b.scalar(0.0), self.b.scalar(1.0));
                let low = self.b.op(
                    "Where",
                    &[&below, &zero, &mid],
                    &format!("{base}.low"),
                    vec![],
                );
                let slope = self.b.op(
                    "Where",
                    &[&above, &one_c, &low],
                    &format!("{base}.slope"),
                    vec![],
                );
                one(Some(self.b.mul(dy, &slope, &base)))
            }
            Op::Softmax => {
                let p = self.b.mul(dy, &y, &format!("{base}.dy_y"));
                let s = self
                    .b
                    .reduce("ReduceSum", &p, &[1], true, &format!("{base}.dot"));
                let d = self.b.sub(dy, &s, &format!("{base}.centered"));
                one(Some(self.b.mul(&y, &d, &base)))
            }
            Op::Dropout { .. } => match self.saved.get(&ix).cloned() {
                // p = 0 (or inference mode): the identity.
                None | Some(Saved::None) => one(Some(dy.to_string())),
                Some(Saved::Dropout {
                    mask,
                    is_bool,
                    scale,
                }) => {
                    let s = self.b.scale(dy, scale, &format!("{base}.scaled"));
                    if is_bool {
                        let zero = self.b.scalar(0.0);
                        one(Some(self.b.op("Where", &[&mask, &s, &zero], &base, vec![])))
                    } else {
                        one(Some(self.b.mul(&s, &mask, &base)))
                    }
                }
                Some(_) => return Err(err(format!("`{name}`: dropout lost its mask"))),
            },
            Op::Flatten => {
                let mut shape = vec![-1i64];
                shape.extend(in_dims.iter().map(|&d| d as i64));
                one(Some(self.b.reshape(dy, &shape, &base)))
            }
            Op::Linear { bias, .. } => {
                let w = format!("{name}.weight");
                let dx = want0.then(|| self.b.op("MatMul", &[dy, &w], &base, vec![]));
                let dw = self.b.op(
                    "Gemm",
                    &[dy, &x],
                    &format!("grad.{name}.weight"),
                    vec![AttributeProto::int("transA", 1)],
                );
                self.param_grad.insert(w, dw);
                if *bias {
                    self.bias_grad(ix, dy, &[0], &name);
                }
                one(dx)
            }
            Op::Concat => {
                let sizes: Vec<i64> = inputs
                    .iter()
                    .map(|&i| model.shape(i).channels() as i64)
                    .collect();
                let split = self.b.ints(&sizes);
                let outs: Vec<String> = (0..inputs.len())
                    .map(|k| self.b.fresh(&format!("{base}.{k}")))
                    .collect();
                let o: Vec<&str> = outs.iter().map(String::as_str).collect();
                self.b.node_to(
                    "Split",
                    &[dy, &split],
                    &o,
                    vec![AttributeProto::int("axis", 1)],
                );
                outs.into_iter().map(Some).collect()
            }
            Op::Add => inputs.iter().map(|_| Some(dy.to_string())).collect(),
            // y = x·g: dx = dY·g (g broadcast), dg = dY·x summed over the axes g broadcasts
            // along (H and W for a per-channel g, C for a map).
            Op::Mul => {
                let g = self.value[&inputs[1]].clone();
                let dx = self.b.mul(dy, &g, &format!("{base}.dx"));
                let dyx = self.b.mul(dy, &x, &format!("{base}.dy_x"));
                let axes: Vec<i64> = model
                    .shape(inputs[1])
                    .dims()
                    .iter()
                    .zip(&in_dims)
                    .enumerate()
                    .filter(|(_, (g, x))| g != x)
                    .map(|(a, _)| a as i64 + 1)
                    .collect();
                let dg = if axes.is_empty() {
                    dyx
                } else {
                    self.b
                        .reduce("ReduceSum", &dyx, &axes, true, &format!("{base}.dg"))
                };
                vec![Some(dx), Some(dg)]
            }
            Op::Crop { size } => {
                let (h, w) = (in_dims[1] as i64, in_dims[2] as i64);
                let top = (h - size[0] as i64) / 2;
                let left = (w - size[1] as i64) / 2;
                let bottom = h - size[0] as i64 - top;
                let right = w - size[1] as i64 - left;
                let pads = self.b.ints(&[0, 0, top, left, 0, 0, bottom, right]);
                one(Some(self.b.op("Pad", &[dy, &pads], &base, vec![])))
            }
            Op::Pad { pads, mode } => match pad_maps(&in_dims, pads, *mode) {
                // Zeros: the gradient of the input is the middle of the output's.
                None => {
                    let starts = [pads.begin[0] as i64, pads.begin[1] as i64];
                    let ends = [starts[0] + in_dims[1] as i64, starts[1] + in_dims[2] as i64];
                    one(Some(self.b.slice(dy, &starts, &ends, &[2, 3], &base)))
                }
                Some((rows, cols)) => one(Some(self.separable(
                    dy,
                    &rows.transposed(),
                    &cols.transposed(),
                    &base,
                ))),
            },
            Op::Slice { start, end } => {
                // Zeros for the channels (features) the slice left out.
                let rank = in_dims.len() + 1;
                let mut pads = vec![0i64; 2 * rank];
                pads[1] = *start as i64;
                pads[rank + 1] = (in_dims[0] - end) as i64;
                let pads = self.b.ints(&pads);
                one(Some(self.b.op("Pad", &[dy, &pads], &base, vec![])))
            }
            Op::ChannelShuffle { groups } => {
                let inverse = in_dims[0] / groups;
                one(Some(self.shuffle(dy, &in_dims, inverse, &base)))
            }
            Op::PixelShuffle { factor, unshuffle } => one(Some(
                self.pixel_shuffle(dy, &out_dims, *factor, !unshuffle, &base),
            )),
            Op::Upsample { to, mode } => {
                match (mode, to.nearest_repeats([in_dims[1], in_dims[2]])) {
                    (UpsampleMode::Nearest, Some(scale)) => {
                        // Each input pixel was copied to an sh × sw block: its gradient is the
                        // block's sum, [N, C, H, sh, W, sw] summed over the two block axes.
                        let (c, h, w) = (in_dims[0] as i64, in_dims[1] as i64, in_dims[2] as i64);
                        let (sh, sw) = (scale[0] as i64, scale[1] as i64);
                        let blocks =
                            self.b
                                .reshape(dy, &[0, c, h, sh, w, sw], &format!("{base}.blocks"));
                        one(Some(self.b.reduce(
                            "ReduceSum",
                            &blocks,
                            &[3, 5],
                            false,
                            &base,
                        )))
                    }
                    // Interpolation, or nearest to a size: the transposed maps of its weights.
                    _ => {
                        let (rows, cols) = upsample_maps(&in_dims, &out_dims, to, *mode);
                        one(Some(self.separable(
                            dy,
                            &rows.transposed(),
                            &cols.transposed(),
                            &base,
                        )))
                    }
                }
            }
        })
    }

    /// The gradient of layer `ix`'s bias (a conv's, a linear's; a batch or group norm's β
    /// likewise):
    /// `dy` summed over `axes`, except when the layer's only consumer is a batch norm. Batch norm in training mode subtracts each channel's
    /// batch mean, so a per-channel constant added before it cannot change the loss: the
    /// gradient is exactly zero, a zero tensor (recorded in `zero_grad`: the optimizer still
    /// applies weight decay and momentum to it). Summing `dy` would give rounding noise instead (about 1e-9), which
    /// Adam divides by its own size and turns into steps of about `lr` in a random direction
    /// each step; the bias then wanders, and the running mean that evaluation uses lags it.
    fn bias_grad(&mut self, ix: NodeIndex, dy: &str, axes: &[i64], name: &str) {
        if self.feeds_only_batchnorm(ix) {
            self.zero_grad.insert(format!("{name}.bias"));
            return;
        }
        let db = self
            .b
            .reduce("ReduceSum", dy, axes, false, &format!("grad.{name}.bias"));
        self.param_grad.insert(format!("{name}.bias"), db);
    }

    /// A normalization's γ gradient, ΣdY·x̂ over `axes` (all but the channels), recorded
    /// as `grad.<name>.weight`.
    fn scale_grad(&mut self, name: &str, base: &str, dy: &str, xhat: &str, axes: &[i64]) -> String {
        let t = self.b.mul(dy, xhat, &format!("{base}.dy_xhat"));
        let dg = self
            .b
            .reduce("ReduceSum", &t, axes, false, &format!("grad.{name}.weight"));
        self.param_grad.insert(format!("{name}.weight"), dg.clone());
        dg
    }

    /// Whether layer `ix`'s one consumer is a batch norm, directly or through layers that
    /// pass a per-channel constant on as one (a residual add, a concat, a flatten, a scale,
    /// a channel shuffle, slice, crop or pixel unshuffle: each the one consumer of the
    /// last), and none of them is the model's output, which takes the
    /// loss gradient directly, whatever else reads it.
    ///
    /// The walk is iterative and its answer is remembered for every layer on it, so a
    /// model that is one long chain of concats costs linear time, not quadratic, and no
    /// stack.
    fn feeds_only_batchnorm(&mut self, ix: NodeIndex) -> bool {
        let graph = &self.model.graph.graph;
        let mut walked = Vec::new();
        let mut at = ix;
        let answer = loop {
            if let Some(&known) = self.feeds_only_batchnorm.get(&at) {
                break known;
            }
            walked.push(at);
            if self.model.graph.is_output(at) {
                break false;
            }
            let mut users = graph.neighbors_directed(at, petgraph::Direction::Outgoing);
            match (users.next(), users.next()) {
                (Some(user), None) => match graph[user].op {
                    Op::BatchNorm { .. } => break true,
                    // Each passes a per-channel constant on as one (moved, scaled or
                    // cut); a pixel shuffle spreads r² of them over one channel, so it does
                    // not.
                    Op::Add
                    | Op::Concat
                    | Op::Flatten
                    | Op::Scale { .. }
                    | Op::Normalize { .. }
                    | Op::LayerScale { .. }
                    | Op::ChannelShuffle { .. }
                    | Op::Slice { .. }
                    | Op::Crop { .. }
                    | Op::PixelShuffle {
                        unshuffle: true, ..
                    } => at = user,
                    _ => break false,
                },
                _ => break false,
            }
        };
        for layer in walked {
            self.feeds_only_batchnorm.insert(layer, answer);
        }
        answer
    }

    /// The input gradient of a conv: ConvTranspose(dY, W) with the forward strides,
    /// dilations, group and pads, and the output padding that restores the input size.
    /// Asymmetric pads (ceil-mode pooling, `pad=same` with an even kernel, four-value pads)
    /// are written as the smaller pad on both sides and a Slice of the extra rows and
    /// columns, since ONNX Runtime's CUDA provider runs a ConvTranspose with asymmetric pads
    /// on the CPU.
    fn conv_input_grad(
        &mut self,
        dy: &str,
        w: &str,
        in_dims: &[u64],
        out_dims: &[u64],
        g: &ConvGeom,
        base: &str,
    ) -> String {
        let mut op = [0i64; 2];
        for axis in 0..2 {
            let n = in_dims[axis + 1] as i64;
            let o = out_dims[axis + 1] as i64;
            let (s, k, d) = (
                g.stride[axis] as i64,
                g.kernel[axis] as i64,
                g.dilation[axis] as i64,
            );
            let total = n + g.pads.begin[axis] as i64 + g.pads.end[axis] as i64;
            op[axis] = total - ((o - 1) * s + (k - 1) * d + 1);
        }
        let common = [0, 1].map(|a| g.pads.begin[a].min(g.pads.end[a]));
        let pads = Pads::symmetric(common);
        let mut attrs = conv_attrs(Some(g.kernel), g.stride, &pads, g.dilation, g.groups);
        attrs.push(AttributeProto::ints("output_padding", op));
        if g.pads.is_symmetric() {
            return self.b.op("ConvTranspose", &[dy, w], base, attrs);
        }
        let full = self
            .b
            .op("ConvTranspose", &[dy, w], &format!("{base}.padded"), attrs);
        let starts = [0, 1].map(|a| (g.pads.begin[a] - common[a]) as i64);
        let ends = [0, 1].map(|a| starts[a] + in_dims[a + 1] as i64);
        self.b.slice(&full, &starts, &ends, &[2, 3], base)
    }

    /// The weight gradient of a conv from `x` ([C, H, W] per sample) to `dy` ([M, oH, oW]):
    /// Conv of x as (C/g, g·N, H, W) by dY as (M, N, oH, oW), group g, strides = the forward
    /// dilations, dilations = the forward strides, the forward pads; sliced to the kernel
    /// size and transposed to (M, C/g, kh, kw).
    fn conv_weight_grad(
        &mut self,
        x: &str,
        x_dims: &[u64],
        dy: &str,
        dy_dims: &[u64],
        g: &ConvGeom,
        name: &str,
    ) -> String {
        let (c, h, w) = (x_dims[0] as i64, x_dims[1] as i64, x_dims[2] as i64);
        let groups = g.groups.max(1) as i64;
        let cg = c / groups;
        let xt = if groups == 1 {
            self.b.transpose(x, &[1, 0, 2, 3], &format!("{name}.x_t"))
        } else {
            let r = self
                .b
                .reshape(x, &[-1, groups, cg, h, w], &format!("{name}.x_groups"));
            let t = self
                .b
                .transpose(&r, &[2, 1, 0, 3, 4], &format!("{name}.x_groups_t"));
            self.b.reshape(&t, &[cg, -1, h, w], &format!("{name}.x_t"))
        };
        let dyt = self.b.transpose(dy, &[1, 0, 2, 3], &format!("{name}.dy_t"));
        let corr = self.b.op(
            "Conv",
            &[&xt, &dyt],
            &format!("{name}.corr"),
            conv_attrs(None, g.dilation, &g.pads, g.stride, g.groups),
        );
        let mut size = [0u64; 2];
        for axis in 0..2 {
            let n = x_dims[axis + 1] + g.pads.begin[axis] + g.pads.end[axis];
            let span = (dy_dims[axis + 1] - 1) * g.stride[axis] + 1;
            size[axis] = (n - span) / g.dilation[axis] + 1;
        }
        let corr = if size != g.kernel {
            self.b.slice(
                &corr,
                &[0, 0],
                &[g.kernel[0] as i64, g.kernel[1] as i64],
                &[2, 3],
                &format!("{name}.cut"),
            )
        } else {
            corr
        };
        self.b.transpose(&corr, &[1, 0, 2, 3], name)
    }

    /// The weight gradient of a strided conv with a large output, as im2col and a product:
    /// the patches of x (a Conv with one-hot kernels, one group per input channel, the forward
    /// strides, pads and dilations: [N, C·kh·kw, oH, oW]) times dY, summed over the batch and
    /// the output positions (MatMul per sample and group, then ReduceSum over the batch).
    /// The same numbers as [`Self::conv_weight_grad`], but a product of ordinary shape where
    /// that routine's Conv has dY (oH×oW, dilated by the stride) as its kernel, which cuDNN
    /// runs slowly; see [`im2col_pays`].
    fn conv_weight_grad_im2col(
        &mut self,
        x: &str,
        x_dims: &[u64],
        dy: &str,
        dy_dims: &[u64],
        g: &ConvGeom,
        name: &str,
    ) -> String {
        let [kh, kw] = g.kernel.map(|k| k as usize);
        let taps = kh * kw;
        let (c, m) = (x_dims[0] as i64, dy_dims[0] as i64);
        let groups = g.groups.max(1) as i64;
        let (cg, mg) = (c / groups, m / groups);
        let positions = (dy_dims[1] * dy_dims[2]) as i64;
        // One one-hot kernel per tap, repeated for every input channel.
        let mut one_hot = vec![0.0f32; taps * taps];
        for t in 0..taps {
            one_hot[t * taps + t] = 1.0;
        }
        let taps_kernel = self
            .b
            .init_f32(&format!("{name}.taps"), &[1, taps, 1, kh, kw], &one_hot);
        let expand_to = self.b.ints(&[c, taps as i64, 1, kh as i64, kw as i64]);
        let expanded = self.b.op(
            "Expand",
            &[&taps_kernel, &expand_to],
            &format!("{name}.taps_all"),
            vec![],
        );
        let kernel = self.b.reshape(
            &expanded,
            &[c * taps as i64, 1, kh as i64, kw as i64],
            &format!("{name}.taps_kernel"),
        );
        let patches = self.b.op(
            "Conv",
            &[x, &kernel],
            &format!("{name}.patches"),
            conv_attrs(Some(g.kernel), g.stride, &g.pads, g.dilation, c as u64),
        );
        let patches = self.b.reshape(
            &patches,
            &[-1, groups, cg * taps as i64, positions],
            &format!("{name}.patches_g"),
        );
        let patches_t = self
            .b
            .transpose(&patches, &[0, 1, 3, 2], &format!("{name}.patches_t"));
        let dy_g = self
            .b
            .reshape(dy, &[-1, groups, mg, positions], &format!("{name}.dy_g"));
        let per_sample = self.b.op(
            "MatMul",
            &[&dy_g, &patches_t],
            &format!("{name}.per_sample"),
            vec![],
        );
        let summed = self.b.reduce(
            "ReduceSum",
            &per_sample,
            &[0],
            false,
            &format!("{name}.sum"),
        );
        self.b
            .reshape(&summed, &[m, cg, kh as i64, kw as i64], name)
    }

    /// A bool tensor: `lo < x < hi`.
    fn open_interval(&mut self, x: &str, lo: f32, hi: f32, base: &str) -> String {
        let (l, h) = (self.b.scalar(lo), self.b.scalar(hi));
        let above = self
            .b
            .op("Greater", &[x, &l], &format!("{base}.above_lo"), vec![]);
        let below = self
            .b
            .op("Less", &[x, &h], &format!("{base}.below_hi"), vec![]);
        self.b
            .op("And", &[&above, &below], &format!("{base}.inside"), vec![])
    }

    /// The adjoint of a window sum with a `k` kernel, stride `s` and `pads`: each input
    /// element receives the sum of `g` over the windows that contain it.
    #[allow(clippy::too_many_arguments)]
    fn spread_windows(
        &mut self,
        g: &str,
        in_dims: &[u64],
        out_dims: &[u64],
        k: [u64; 2],
        s: [u64; 2],
        pads: Pads,
        base: &str,
    ) -> String {
        // A ConvTranspose with a ones kernel, one channel per group, beats Expand-based
        // tiling even for non-overlapping windows (ORT CPU: 0.8 ms against 8 ms for LeNet's
        // first pooling at batch 256).
        let c = in_dims[0];
        let ones = self.b.init_f32(
            &format!("{base}.ones"),
            &[c as usize, 1, k[0] as usize, k[1] as usize],
            &vec![1.0; (c * k[0] * k[1]) as usize],
        );
        let geom = ConvGeom {
            kernel: k,
            stride: s,
            pads,
            dilation: [1, 1],
            groups: c,
        };
        self.conv_input_grad(g, &ones, in_dims, out_dims, &geom, base)
    }
}

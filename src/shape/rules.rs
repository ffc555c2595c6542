//! Per-op shape rules: given an op and its input shapes, the output shape, parameter
//! count and multiply-accumulates, or why the op cannot apply.
//!
//! Sizes follow the formulas of the notes, per spatial axis with input n, kernel k,
//! padding p_begin/p_end, stride s, dilation d:
//! - conv / pool: `floor((n + p_begin + p_end - d*(k-1) - 1) / s) + 1` (ceil in ceil mode,
//!   dropping a last window that would start in the end padding, as PyTorch does);
//! - transposed conv: `(n-1)*s - p_begin - p_end + d*(k-1) + output_pad + 1`.
//!
//! All arithmetic is checked: an overflow is reported as a tensor too large, never wraps.

use crate::ir::{ConvAttrs, ConvTransposeAttrs, Op, PadMode, Pads, PoolAttrs, Shape};

/// The largest tensor cnnc accepts, in elements per sample (2^31): every layer's output, and
/// every per-sample intermediate an export or training graph computes on the way (a
/// transposed conv's unpadded result, an average pooling's padded input).
pub const MAX_ELEMENTS: u64 = 1 << 31;

/// The largest weight cnnc accepts, and the largest constant an export or training graph
/// builds (adaptive pooling's and bilinear upsampling's averaging matrices), in elements:
/// 2^38, 1 TiB of float32. No real network comes near it (VGG-16's largest weight has 103
/// million elements, under 2^27), and it keeps every later sum far from overflowing: a model
/// has at most 2,000,000 nodes (under 2^21), each with a weight, a bias of at most 2^32 and
/// at most two such constants, so its parameters' and constants' bytes stay below 2^63 in
/// u64, usize and ONNX's int64 alike, and `4 * elements` never wraps anywhere.
pub const MAX_CONSTANT_ELEMENTS: u64 = 1 << 38;

/// What a rule infers for one node.
#[derive(Debug, Clone, PartialEq)]
pub struct Inferred {
    pub shape: Shape,
    pub params: u64,
    pub macs: u64,
    pub warnings: Vec<RuleWarning>,
}

/// Why an op cannot apply to its inputs. The elaborator turns it into a diagnostic with the
/// layer's span, and labels the inputs named in `input_labels`.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleError {
    pub code: &'static str,
    pub message: String,
    pub help: Option<String>,
    /// `(input slot, label text)` for ops with several inputs (concat, add).
    pub input_labels: Vec<(usize, String)>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RuleWarning {
    pub code: &'static str,
    pub message: String,
    pub help: Option<String>,
    /// For `unused_input`, the rows and columns at the end of the input that no window
    /// reads: zero padding there (a `pad` layer just before) is no lost input.
    pub unread_end: [u64; 2],
}

/// The divisors of `c` other than 1 and `c` (the first twelve), as a list to offer; `None`
/// for a prime (or 1).
fn divisors_between(c: u64) -> Option<String> {
    let divisors: Vec<String> = (2..c)
        .filter(|g| c.is_multiple_of(*g))
        .take(12)
        .map(|g| g.to_string())
        .collect();
    (!divisors.is_empty()).then(|| divisors.join(", "))
}

fn err(code: &'static str, message: impl Into<String>) -> RuleError {
    RuleError {
        code,
        message: message.into(),
        help: None,
        input_labels: Vec::new(),
    }
}

impl RuleError {
    fn help(mut self, h: impl Into<String>) -> RuleError {
        self.help = Some(h.into());
        self
    }
}

const AXES: [&str; 2] = ["height", "width"];

fn too_large(what: &str) -> RuleError {
    err(
        "cnnc::shape::tensor_too_large",
        format!("{what} is too large to be real (over 2^31 elements per sample)"),
    )
    .help("check the channel counts and the input size; cnnc accepts at most 2^31 elements per sample")
}

/// A product of sizes that overflows u64: only a layer's multiply-accumulates can (its
/// tensors are bounded before they are multiplied).
fn mul(a: u64, b: u64) -> Result<u64, RuleError> {
    a.checked_mul(b).ok_or_else(|| {
        err(
            "cnnc::shape::tensor_too_large",
            "the layer's multiply-accumulates per sample are too many to count (over 2^64)",
        )
        .help("check the channel counts, the kernel size and the input size")
    })
}

fn product(dims: &[u64]) -> Result<u64, RuleError> {
    dims.iter().try_fold(1u64, |acc, &d| mul(acc, d))
}

/// The elements of `dims`, or `None` past u64.
fn elements(dims: &[u64]) -> Option<u64> {
    dims.iter().try_fold(1u64, |acc, &d| acc.checked_mul(d))
}

/// Refuses a per-sample tensor (`what`, e.g. "the output") over [`MAX_ELEMENTS`].
fn per_sample(what: &str, dims: &[u64]) -> Result<u64, RuleError> {
    match elements(dims) {
        Some(n) if n <= MAX_ELEMENTS => Ok(n),
        _ => Err(too_large(&format!("{what} {}", Shape(dims.to_vec())))),
    }
}

/// Refuses a weight or constant (`what`, e.g. "the weight") over [`MAX_CONSTANT_ELEMENTS`];
/// its elements otherwise.
fn constant(what: &str, dims: &[u64]) -> Result<u64, RuleError> {
    let n = elements(dims);
    if let Some(n) = n.filter(|&n| n <= MAX_CONSTANT_ELEMENTS) {
        return Ok(n);
    }
    let size = match n.and_then(|n| n.checked_mul(4)) {
        Some(bytes) => format!(
            "{} elements, {} of float32",
            super::summary::group(n.unwrap_or(0)),
            super::summary::bytes(bytes)
        ),
        None => "more than 2^62 elements, over 16 EiB of float32".to_string(),
    };
    Err(err(
        "cnnc::shape::tensor_too_large",
        format!(
            "{what} {} has {size}: over cnnc's limit of 2^38 elements (1 TiB) per tensor",
            Shape(dims.to_vec())
        ),
    )
    .help(
        "check the channel counts, the kernel size and the input size: no real network comes \
         near this (VGG-16's largest weight has 103 million elements)",
    ))
}

fn finish(
    shape: Vec<u64>,
    params: u64,
    macs: u64,
    warnings: Vec<RuleWarning>,
) -> Result<Inferred, RuleError> {
    per_sample("the output", &shape)?;
    Ok(Inferred {
        shape: Shape(shape),
        params,
        macs,
        warnings,
    })
}

fn need_image(op: &str, input: &Shape) -> Result<(u64, [u64; 2]), RuleError> {
    match input.dims() {
        [c, h, w] => Ok((*c, [*h, *w])),
        _ => Err(err(
            "cnnc::shape::rank",
            format!("`{op}` needs an image [C, H, W], but its input is {input}"),
        )
        .help(format!(
            "`{op}` works on [C, H, W] tensors; move it before the `flatten` (or the layer that made the tensor flat)"
        ))),
    }
}

/// Output size of a sliding window over one axis, or an error naming the axis.
/// Also returns how many padded input rows the windows leave unused (floor mode).
pub fn window_out(
    n: u64,
    k: u64,
    s: u64,
    p_begin: u64,
    p_end: u64,
    d: u64,
    ceil: bool,
) -> Option<(u64, u64)> {
    let padded = n.checked_add(p_begin)?.checked_add(p_end)?;
    let span = d.checked_mul(k.checked_sub(1)?)?.checked_add(1)?;
    if s == 0 {
        return None;
    }
    if span > padded {
        // PyTorch's ceil mode still gives one window when it overhangs the padded input by
        // less than a stride: floor((padded − span + s − 1) / s) + 1 = 1.
        return (ceil && span - padded < s).then_some((1, 0));
    }
    let room = padded - span;
    let mut out = if ceil {
        room.div_ceil(s) + 1
    } else {
        room / s + 1
    };
    // PyTorch: in ceil mode the last window must start inside the input or the begin padding.
    if ceil && (out - 1) * s >= n + p_begin {
        out -= 1;
    }
    let unused = if ceil { 0 } else { room % s };
    Some((out, unused))
}

/// Transposed-conv output size of one axis; `None` when it is not positive.
pub fn transposed_out(
    n: u64,
    k: u64,
    s: u64,
    p_begin: u64,
    p_end: u64,
    d: u64,
    output_pad: u64,
) -> Option<u64> {
    let grown = (n.checked_sub(1)?)
        .checked_mul(s)?
        .checked_add(d.checked_mul(k.checked_sub(1)?)?)?
        .checked_add(output_pad)?
        .checked_add(1)?;
    let out = grown.checked_sub(p_begin.checked_add(p_end)?)?;
    (out > 0).then_some(out)
}

fn window_spatial(
    op: &str,
    hw: [u64; 2],
    kernel: [u64; 2],
    stride: [u64; 2],
    pads: &Pads,
    dilation: [u64; 2],
    ceil: bool,
) -> Result<([u64; 2], Vec<RuleWarning>), RuleError> {
    let mut out = [0; 2];
    // Per axis: (real input rows left unused, extra end padding that would use them).
    let mut unused_axes: Vec<(usize, u64, u64, u64)> = Vec::new();
    for a in 0..2 {
        let (n, k, s, d) = (hw[a], kernel[a], stride[a], dilation[a]);
        let (pb, pe) = (pads.begin[a], pads.end[a]);
        match window_out(n, k, s, pb, pe, d, ceil) {
            Some((o, unused)) => {
                out[a] = o;
                // Only rows of the real input count, not end padding; and a window smaller
                // than its stride skips rows by design (a 1×1 stride-2 projection).
                let extra = s - unused;
                let unused = unused.saturating_sub(pe);
                let span = d.saturating_mul(k - 1) + 1;
                let contiguous = span >= s;
                // Overlapping pooling (AlexNet's, NiN's, GoogLeNet's `maxpool(3, stride=2)`)
                // drops a last row by design; a non-overlapping one on an odd size is the slip.
                let overlapping_pool = ceil_possible(op) && span > s;
                if unused > 0 && contiguous && !overlapping_pool {
                    unused_axes.push((a, unused, extra, s));
                }
            }
            None => {
                let span = d.saturating_mul(k.saturating_sub(1)).saturating_add(1);
                let padded = n.saturating_add(pb).saturating_add(pe);
                let window = if d > 1 {
                    format!("kernel {k} (with dilation {d}, a window of {span})")
                } else {
                    format!("kernel {k}")
                };
                let pad = if pb + pe > 0 {
                    format!(" ({n} + padding {})", pb + pe)
                } else {
                    String::new()
                };
                return Err(err(
                    "cnnc::shape::window_too_large",
                    format!(
                        "`{op}` {window} does not fit in its input {} of {padded}{pad}",
                        AXES[a]
                    ),
                )
                .help({
                    let deficit = span - padded;
                    let per_side = deficit.div_ceil(2);
                    let fix = if d > 1 {
                        let max_d = if k > 1 { (padded - 1) / (k - 1) } else { d };
                        format!("use a dilation of at most {max_d}")
                    } else {
                        format!("use a kernel of at most {padded}")
                    };
                    format!(
                        "the output {} would be zero or negative: {fix}, pad each side by {per_side} more, or remove a downsampling layer before this one",
                        AXES[a]
                    )
                }));
            }
        }
    }
    let mut warnings = Vec::new();
    if let Some(&(_, _, _, s)) = unused_axes.first() {
        let mut unread_end = [0; 2];
        for &(a, unused, _, _) in &unused_axes {
            unread_end[a] = unused;
        }
        let parts: Vec<String> = unused_axes
            .iter()
            .map(|&(a, unused, _, _)| {
                let what = if a == 0 { "row" } else { "column" };
                let plural = if unused > 1 { "s" } else { "" };
                format!("{unused} {what}{plural}")
            })
            .collect();
        let stride = if stride[0] == stride[1] {
            s.to_string()
        } else {
            format!("[{}, {}]", stride[0], stride[1])
        };
        warnings.push(RuleWarning {
            code: "cnnc::shape::unused_input",
            message: format!(
                "stride {stride} leaves the last {} of the input {}×{} unused",
                parts.join(" and "),
                hw[0],
                hw[1]
            ),
            help: Some(if ceil_possible(op) {
                format!(
                    "the windows of `{op}` never reach them; if they matter, `ceil=true` adds a last, partial window"
                )
            } else {
                let mut end = pads.end;
                for &(a, _, extra, _) in &unused_axes {
                    end[a] += extra;
                }
                format!(
                    "the windows of `{op}` never reach them; if they matter, pad the end as well: `pad=[{}, {}, {}, {}]` (top, bottom, left, right)",
                    pads.begin[0], end[0], pads.begin[1], end[1]
                )
            }),
            unread_end,
        });
    }
    Ok((out, warnings))
}

/// Whether `op` is a pooling layer, whose partial windows `ceil=true` keeps.
fn ceil_possible(op: &str) -> bool {
    op.ends_with("pool")
}

fn check_groups(op: &str, c_in: u64, c_out: u64, groups: u64) -> Result<(), RuleError> {
    if !c_in.is_multiple_of(groups) || !c_out.is_multiple_of(groups) {
        let which = if !c_in.is_multiple_of(groups) {
            format!("the {c_in} input channels")
        } else {
            format!("the {c_out} output channels")
        };
        // The common divisors are those of the greatest one; many are said by the ends.
        let (mut a, mut b) = (c_in, c_out);
        while b != 0 {
            (a, b) = (b, a % b);
        }
        let common = a;
        let mut divisors: Vec<u64> = (1..)
            .take_while(|d| d * d <= common)
            .filter(|d| common.is_multiple_of(*d))
            .flat_map(|d| [d, common / d])
            .collect();
        divisors.sort_unstable();
        divisors.dedup();
        let said: Vec<String> = divisors.iter().map(u64::to_string).collect();
        let listed = if said.len() > 12 {
            format!(
                "{}, …, {}",
                said[..6].join(", "),
                said[said.len() - 4..].join(", ")
            )
        } else {
            said.join(", ")
        };
        let depthwise = if common == c_in && c_in > 1 {
            format!(" ({c_in}, the input's channels, is depthwise: each input channel a group of its own)")
        } else {
            String::new()
        };
        return Err(err(
            "cnnc::shape::groups",
            format!("`{op}` with groups={groups}: {groups} does not divide {which}"),
        )
        .help(format!(
            "groups must divide both the input ({c_in}) and output ({c_out}) channels; candidates: {listed}{depthwise}"
        )));
    }
    Ok(())
}

fn conv(a: &ConvAttrs, input: &Shape) -> Result<Inferred, RuleError> {
    let (c, hw) = need_image("conv", input)?;
    check_groups("conv", c, a.out_channels, a.groups)?;
    let (out, warnings) =
        window_spatial("conv", hw, a.kernel, a.stride, &a.pads, a.dilation, false)?;
    let shape = vec![a.out_channels, out[0], out[1]];
    let out_elems = per_sample("the output", &shape)?;
    let m = a.out_channels;
    let weight = constant("the weight", &[m, c / a.groups, a.kernel[0], a.kernel[1]])?;
    // Both within 2^38 + 2^32: no overflow.
    let per_out = weight / m;
    let params = weight + if a.bias { m } else { 0 };
    finish(shape, params, mul(out_elems, per_out)?, warnings)
}

fn conv_transpose(a: &ConvTransposeAttrs, input: &Shape) -> Result<Inferred, RuleError> {
    conv_transpose_with(a, input, true)
}

/// `check_output_pad`: refuse an `output_pad` of at least the stride (off only to recover).
fn conv_transpose_with(
    a: &ConvTransposeAttrs,
    input: &Shape,
    check_output_pad: bool,
) -> Result<Inferred, RuleError> {
    let (c, hw) = need_image("convT", input)?;
    check_groups("convT", c, a.out_channels, a.groups)?;
    let mut out = [0; 2];
    let mut full = [0; 2];
    for ax in 0..2 {
        let (s, d, op) = (a.stride[ax], a.dilation[ax], a.output_pad[ax]);
        // PyTorch's rule: below the stride or below the dilation.
        if check_output_pad && op >= s && op >= d {
            let or_dilation = if d > 1 {
                format!(" or the dilation ({d})")
            } else {
                String::new()
            };
            return Err(err(
                "cnnc::shape::output_pad",
                format!(
                    "`convT` output_pad {op} on the {} must be smaller than the stride \
                     ({s}){or_dilation}",
                    AXES[ax]
                ),
            )
            .help(format!(
                "output_pad only picks among the sizes a strided conv could have come from; use \
                 a value below the stride{}",
                if d > 1 { " or the dilation" } else { "" }
            )));
        }
        // The unpadded result's size, (n − 1)·s + d·(k − 1) + 1, before the output padding
        // and the padding are applied: over u64 only with a huge dilation and kernel.
        full[ax] = (hw[ax] - 1)
            .checked_mul(s)
            .and_then(|g| g.checked_add(d.checked_mul(a.kernel[ax] - 1)?))
            .and_then(|g| g.checked_add(1))
            .filter(|g| g.checked_add(op).is_some())
            .ok_or_else(|| {
                too_large(&format!(
                    "the `convT` output {} ({} − 1)·{s} + {d}·({} − 1) + 1",
                    AXES[ax], hw[ax], a.kernel[ax]
                ))
            })?;
        out[ax] = transposed_out(hw[ax], a.kernel[ax], s, a.pads.begin[ax], a.pads.end[ax], d, op)
            .ok_or_else(|| {
                err(
                    "cnnc::shape::window_too_large",
                    format!(
                        "`convT` output {} would be zero or negative: the padding {} removes more than the {} the layer produces",
                        AXES[ax],
                        a.pads.begin[ax] + a.pads.end[ax],
                        AXES[ax]
                    ),
                )
                .help("reduce `pad` or increase the kernel or stride")
            })?;
    }
    let shape = vec![a.out_channels, out[0], out[1]];
    per_sample("the output", &shape)?;
    if a.needs_output_pad_plan() {
        // Computed in full, then cut and zero-extended (`ConvTransposeAttrs::output_pad_plan`).
        per_sample("the unpadded result", &[a.out_channels, full[0], full[1]]).map_err(|e| {
            e.help(
                "an output_pad at or above the stride is exported as the transposed conv without \
                 padding, cut to size afterwards, and that result is this large: reduce the \
                 dilation, the kernel or the padding, or use an output_pad below the stride",
            )
        })?;
    }
    let weight = constant(
        "the weight",
        &[c, a.out_channels / a.groups, a.kernel[0], a.kernel[1]],
    )?;
    // Both within 2^38 + 2^32: no overflow.
    let per_in = weight / c;
    let params = weight + if a.bias { a.out_channels } else { 0 };
    let macs = mul(product(input.dims())?, per_in)?;
    finish(shape, params, macs, Vec::new())
}

fn pool(op: &str, a: &PoolAttrs, input: &Shape) -> Result<Inferred, RuleError> {
    pool_with(op, a, input, true)
}

/// `check_pad`: refuse padding beyond half the kernel (off only to recover).
fn pool_with(
    op: &str,
    a: &PoolAttrs,
    input: &Shape,
    check_pad: bool,
) -> Result<Inferred, RuleError> {
    let (c, hw) = need_image(op, input)?;
    for (ax, axis) in AXES.iter().enumerate().filter(|_| check_pad) {
        let half = a.kernel[ax] / 2;
        if a.pads.begin[ax] > half || a.pads.end[ax] > half {
            return Err(err(
                "cnnc::shape::pool_pad",
                format!(
                    "`{op}` padding {} on the {} is more than half its kernel ({})",
                    a.pads.begin[ax].max(a.pads.end[ax]),
                    axis,
                    a.kernel[ax]
                ),
            )
            .help(format!(
                "pooling padding must be at most kernel / 2 = {half}, as in PyTorch"
            )));
        }
    }
    let (out, warnings) = window_spatial(op, hw, a.kernel, a.stride, &a.pads, [1, 1], a.ceil)?;
    if op == "avgpool" {
        // Export and training pad the input explicitly (with a ceil-mode window's overhang)
        // when the padding is asymmetric, and training spreads the gradient with a kernel of
        // ones [C, 1, kh, kw], no larger: the padded input must be a tensor cnnc accepts.
        // (n, p ≤ 2^32 and o·s ≤ 2^63: no overflow.)
        let padded = |ax: usize| {
            let have = hw[ax] + a.pads.begin[ax] + a.pads.end[ax];
            let need = (out[ax] - 1) * a.stride[ax] + a.kernel[ax];
            have.max(need)
        };
        per_sample("the padded input", &[c, padded(0), padded(1)]).map_err(|e| {
            e.help(
                "average pooling counts its padding in the divisor, as PyTorch's \
                 `count_include_pad` does, so cnnc pads the input itself: reduce the kernel and \
                 its padding",
            )
        })?;
    }
    finish(vec![c, out[0], out[1]], 0, 0, warnings)
}

/// After a rule error, the shape the layer was evidently meant to give, so checking goes on
/// and later, independent mistakes are reported too; `None` when it is not clear.
///
/// - groups that do not divide the channels: the conv's output without groups;
/// - a residual whose body and shortcut differ: the body's shape (the shortcut is the usual
///   mistake, a missing projection);
/// - concat branches of different spatial sizes: the first branch's size, channels summed;
/// - `linear` on an image (a forgotten `flatten`): `[out_features]`;
/// - pooling padding beyond half the kernel, a convT `output_pad` not below the stride: the
///   formula's size with the values as written;
/// - `flatten` of a flat tensor: the same tensor;
/// - a pixel (un)shuffle of sizes the factor does not divide: the sizes divided (or
///   multiplied) as far as they go.
pub fn recover(op: &Op, inputs: &[&Shape], e: &RuleError) -> Option<Shape> {
    match (e.code, op) {
        ("cnnc::shape::groups", Op::Conv(a)) => {
            let a = ConvAttrs {
                groups: 1,
                ..a.clone()
            };
            infer(&Op::Conv(a), inputs).ok().map(|i| i.shape)
        }
        ("cnnc::shape::groups", Op::ConvTranspose(a)) => {
            let a = ConvTransposeAttrs {
                groups: 1,
                ..a.clone()
            };
            infer(&Op::ConvTranspose(a), inputs).ok().map(|i| i.shape)
        }
        ("cnnc::shape::residual_mismatch", Op::Add) => inputs.first().map(|s| (*s).clone()),
        ("cnnc::shape::groups", Op::ChannelShuffle { .. })
        | ("cnnc::shape::groups" | "cnnc::shape::norm_single_value", Op::GroupNorm { .. })
        | ("cnnc::shape::norm_single_value", Op::LayerNorm { .. }) => {
            inputs.first().map(|s| (*s).clone())
        }
        ("cnnc::shape::gate_mismatch", Op::Mul) => inputs.first().map(|s| (*s).clone()),
        // The spatial size is clear; the channels as near as they come.
        ("cnnc::shape::pixel_shuffle", Op::PixelShuffle { factor, unshuffle }) => {
            let [c, h, w] = inputs.first()?.dims()[..] else {
                return None;
            };
            let r = *factor;
            let dims = if *unshuffle {
                vec![
                    c.checked_mul(r.checked_mul(r)?)?,
                    (h / r).max(1),
                    (w / r).max(1),
                ]
            } else {
                vec![
                    (c / r.checked_mul(r)?).max(1),
                    h.checked_mul(r)?,
                    w.checked_mul(r)?,
                ]
            };
            per_sample("the output", &dims).ok()?;
            Some(Shape(dims))
        }
        ("cnnc::shape::concat_mismatch", Op::Concat) => {
            let first = inputs.first()?;
            if inputs.iter().any(|s| s.rank() != first.rank()) {
                return None;
            }
            let mut dims = first.0.clone();
            dims[0] = inputs
                .iter()
                .try_fold(0u64, |acc, s| acc.checked_add(s.channels()))?;
            Some(Shape(dims))
        }
        ("cnnc::shape::rank", Op::Linear { out_features, .. }) => Some(Shape(vec![*out_features])),
        // The sizes the formulas give with the padding as written.
        ("cnnc::shape::pool_pad", Op::MaxPool(a)) => {
            pool_with("maxpool", a, inputs.first()?, false)
                .ok()
                .map(|i| i.shape)
        }
        ("cnnc::shape::pool_pad", Op::AvgPool(a)) => {
            pool_with("avgpool", a, inputs.first()?, false)
                .ok()
                .map(|i| i.shape)
        }
        ("cnnc::shape::output_pad", Op::ConvTranspose(a)) => {
            conv_transpose_with(a, inputs.first()?, false)
                .ok()
                .map(|i| i.shape)
        }
        // A second `flatten`: the tensor stays flat.
        ("cnnc::shape::rank", Op::Flatten) if inputs.first()?.rank() == 1 => {
            inputs.first().map(|s| (*s).clone())
        }
        _ => None,
    }
}

/// Infers one node. `inputs` are the shapes of the node's inputs in slot order.
pub fn infer(op: &Op, inputs: &[&Shape]) -> Result<Inferred, RuleError> {
    let first = || inputs[0];
    match op {
        Op::Input => finish(first().0.clone(), 0, 0, Vec::new()),
        Op::Conv(a) => conv(a, first()),
        Op::ConvTranspose(a) => conv_transpose(a, first()),
        Op::MaxPool(a) => pool("maxpool", a, first()),
        Op::AvgPool(a) => pool("avgpool", a, first()),
        Op::AdaptiveAvgPool { output } => {
            let (c, [h, w]) = need_image("adaptive_avgpool", first())?;
            let shape = vec![c, output[0], output[1]];
            per_sample("the output", &shape)?;
            // Export (sizes that do not divide) and training average with the matrices
            // [oh, h] and [w, ow].
            constant("the averaging matrix", &[output[0], h])?;
            constant("the averaging matrix", &[w, output[1]])?;
            finish(shape, 0, 0, Vec::new())
        }
        Op::GlobalAvgPool | Op::GlobalMaxPool => {
            let (c, _) = need_image(op.kind(), first())?;
            finish(vec![c, 1, 1], 0, 0, Vec::new())
        }
        Op::AdaptiveMaxPool { output } => {
            let (c, [h, w]) = need_image("adaptive_maxpool", first())?;
            let shape = vec![c, output[0], output[1]];
            per_sample("the output", &shape)?;
            // Where the output does not divide the input, export and training gather each
            // bin's rows and columns, widened to the widest bin, for a MaxPool.
            let gathered =
                |n: u64, m: u64| crate::ir::adaptive_max_gather_width(n, m).map_or(n, |k| m * k);
            let bins = [c, gathered(h, output[0]), gathered(w, output[1])];
            per_sample("the bins", &bins).map_err(|e| {
                e.help(format!(
                    "the export gathers each uneven bin, widened to the widest, into a tensor \
                     {} for a MaxPool to pool; an output size that divides the input's \
                     needs no gather (the pooling is then a MaxPool)",
                    Shape(bins.to_vec())
                ))
            })?;
            finish(shape, 0, 0, Vec::new())
        }
        Op::BatchNorm { affine, .. } => {
            let s = first();
            if s.rank() != 3 && s.rank() != 1 {
                return Err(err(
                    "cnnc::shape::rank",
                    format!("`batchnorm` needs [C, H, W] or [F], got {s}"),
                ));
            }
            let params = if *affine { 2 * s.channels() } else { 0 };
            finish(s.0.clone(), params, 0, Vec::new())
        }
        Op::GroupNorm { groups, affine, .. } => {
            let s = first();
            let layer = op.kind();
            let rank_ok = match groups {
                Some(_) => s.rank() == 3 || s.rank() == 1,
                None => s.rank() == 3,
            };
            if !rank_ok {
                let needs = if groups.is_some() {
                    "[C, H, W] or [F]"
                } else {
                    "[C, H, W]"
                };
                return Err(err(
                    "cnnc::shape::rank",
                    format!("`{layer}` needs {needs}, got {s}"),
                ));
            }
            let c = s.channels();
            let g = groups.unwrap_or(c);
            if !c.is_multiple_of(g) {
                let candidates = match divisors_between(c) {
                    Some(d) => format!("1, {d} and {c}"),
                    None => format!("1 and {c}"),
                };
                return Err(err(
                    "cnnc::shape::groups",
                    format!("`groupnorm({g})`: {g} groups do not divide the {c} channels"),
                )
                .help(format!(
                    "each group takes the same number of channels, so the groups must divide \
                     the channels: {candidates}"
                )));
            }
            if s.elements() / g == 1 {
                let each = if groups.is_some() { "group" } else { "channel" };
                return Err(err(
                    "cnnc::shape::norm_single_value",
                    format!(
                        "`{layer}` of {s}: each {each} is a single value, which normalizes to 0"
                    ),
                )
                .help(
                    "the statistics are each sample's own, over a group's values: normalize \
                     before the layer that shrank the tensor, use fewer groups, or `batchnorm`, \
                     whose statistics run over the batch",
                ));
            }
            let params = if *affine { 2 * c } else { 0 };
            finish(s.0.clone(), params, 0, Vec::new())
        }
        Op::LayerNorm { affine, .. } => {
            let s = first();
            if s.rank() != 3 && s.rank() != 1 {
                return Err(err(
                    "cnnc::shape::rank",
                    format!("`layernorm` needs [C, H, W] or [F], got {s}"),
                ));
            }
            let c = s.channels();
            if c == 1 {
                let unit = if s.rank() == 1 { "feature" } else { "channel" };
                return Err(err(
                    "cnnc::shape::norm_single_value",
                    format!(
                        "`layernorm` of {s}: it normalizes over the {unit}s, and there is only one, \
                         which normalizes to 0"
                    ),
                )
                .help(
                    "`layernorm` normalizes each pixel's channels (a vector's features): put it \
                     where there are several, or use `groupnorm(1)`, over all of a sample's \
                     values, or `batchnorm`, whose statistics run over the batch",
                ));
            }
            let params = if *affine { 2 * c } else { 0 };
            finish(s.0.clone(), params, 0, Vec::new())
        }
        Op::LayerScale { .. } => {
            let s = first();
            finish(s.0.clone(), s.channels(), 0, Vec::new())
        }
        Op::Normalize { mean, std } => {
            let s = first();
            let c = s.channels();
            let unit = if s.rank() == 1 { "feature" } else { "channel" };
            for (arg, values) in [("mean", mean), ("std", std)] {
                let n = values.len() as u64;
                if n != 1 && n != c {
                    return Err(err(
                        "cnnc::shape::channel_count",
                        format!(
                            "`normalize`: `{arg}` has {n} values, but {s} has {c} {unit}{}",
                            if c == 1 { "" } else { "s" }
                        ),
                    )
                    .help(if c == 1 {
                        format!("give one number, for the one {unit}")
                    } else {
                        format!(
                            "give a list of {c} numbers, one per {unit}, or one number for \
                             every {unit}"
                        )
                    }));
                }
            }
            finish(s.0.clone(), 0, 0, Vec::new())
        }
        Op::Prelu { per_channel } => {
            let s = first();
            let params = if *per_channel { s.channels() } else { 1 };
            finish(s.0.clone(), params, 0, Vec::new())
        }
        Op::Relu
        | Op::Mish
        | Op::Scale { .. }
        | Op::Sigmoid
        | Op::Tanh
        | Op::LeakyRelu { .. }
        | Op::Elu { .. }
        | Op::Silu
        | Op::Gelu
        | Op::Relu6
        | Op::HardSigmoid
        | Op::HardSwish
        | Op::Softmax
        | Op::Dropout { .. } => finish(first().0.clone(), 0, 0, Vec::new()),
        Op::Flatten => {
            let s = first();
            if s.rank() == 1 {
                return Err(err(
                    "cnnc::shape::rank",
                    format!("`flatten` of {s}: the tensor is already flat"),
                )
                .help("remove this `flatten`"));
            }
            finish(vec![product(s.dims())?], 0, 0, Vec::new())
        }
        Op::Linear { out_features, bias } => {
            let s = first();
            if s.rank() != 1 {
                return Err(err(
                    "cnnc::shape::rank",
                    format!("`linear` needs a flat [F] input, but its input is {s}"),
                )
                .help(if s.rank() == 3 {
                    format!(
                        "insert `flatten` before this `linear` to read the whole image (it \
                         will then receive {} features); for a linear at every pixel, over \
                         the channels (PyTorch's `nn.Linear` on channels-last values, as in \
                         ConvNeXt's block), write `conv({out_features}, 1)`",
                        s.elements()
                    )
                } else {
                    format!(
                        "insert `flatten` before this `linear`; it will then receive {} features",
                        s.elements()
                    )
                }));
            }
            let shape = vec![*out_features];
            per_sample("the output", &shape)?;
            let weight = constant("the weight", &[*out_features, s.channels()])?;
            // Within 2^38 + 2^32: no overflow.
            let params = weight + if *bias { *out_features } else { 0 };
            finish(shape, params, weight, Vec::new())
        }
        Op::Concat => concat(inputs),
        Op::Mul => {
            let (x, g) = (inputs[0], inputs[1]);
            // Each of g's axes is x's or 1 (broadcast): [C, 1, 1], [1, H, W], x's shape, …
            let broadcasts = g.rank() == x.rank()
                && g.dims()
                    .iter()
                    .zip(x.dims())
                    .all(|(gd, xd)| gd == xd || *gd == 1);
            if !broadcasts {
                let mut e = err(
                    "cnnc::shape::gate_mismatch",
                    format!("a gate multiplies its input {x} by {g}"),
                );
                e.input_labels = vec![
                    (0, format!("the input is {x}")),
                    (1, format!("the gate gives {g}")),
                ];
                e.help = Some(match x.spatial() {
                    // PyTorch's squeeze-and-excitation with `Linear`s on the pooled vector.
                    Some(_) if g.rank() == 1 && g.dims()[0] == x.channels() => format!(
                        "a gate's factors keep the input's rank: one per channel is [{c}, 1, \
                         1], not the vector [{c}]; drop the `flatten` and write each `linear(n)` \
                         on the pooled image as `conv(n, 1)`, the same weights (squeeze and \
                         excitation, for example, is `gate {{ global_avgpool conv({r}, 1) relu \
                         conv({c}, 1) sigmoid }}`)",
                        c = x.channels(),
                        r = (x.channels() / 4).max(1)
                    ),
                    Some([h, w]) => format!(
                        "the gate must give one factor per channel, [{c}, 1, 1] (squeeze and \
                         excitation: `global_avgpool conv({c}, 1) sigmoid` at its end), one per \
                         place, [1, {h}, {w}] (a spatial attention map), or one per value, {x}: \
                         each of its sizes the input's or 1",
                        c = x.channels()
                    ),
                    None => format!(
                        "the gate must give one factor per feature, {x}, or one in all, [1]"
                    ),
                });
                return Err(e);
            }
            finish(x.0.clone(), 0, 0, Vec::new())
        }
        Op::Add => {
            let (a, b) = (inputs[0], inputs[1]);
            if a != b {
                let mut e = err(
                    "cnnc::shape::residual_mismatch",
                    format!("a residual adds tensors of different shapes: {a} and {b}"),
                );
                e.input_labels = vec![
                    (0, format!("the body gives {a}")),
                    (1, format!("the shortcut gives {b}")),
                ];
                return Err(e);
            }
            finish(a.0.clone(), 0, 0, Vec::new())
        }
        Op::Crop { size } => {
            let (c, hw) = need_image("crop", first())?;
            if size[0] > hw[0] || size[1] > hw[1] {
                let smaller = match (size[0] > hw[0], size[1] > hw[1]) {
                    (true, true) => "in height and width",
                    (true, false) => "in height",
                    _ => "in width",
                };
                return Err(err(
                    "cnnc::shape::crop_too_large",
                    format!(
                        "cannot crop the {}×{} tensor to the current {}×{}: it is smaller {smaller}",
                        hw[0], hw[1], size[0], size[1]
                    ),
                )
                .help(format!(
                    "`crop(name)` cuts the named tensor down to the current size, never the \
                     other way, and here the current tensor, {}×{}, is the larger {smaller}. \
                     If a layer since the named tensor grew it (padding over (k−1)/2, a \
                     transposed conv's `output_pad`), fix that; if it is the current tensor \
                     that should be cut to the named one's size, name it (`as x`) and crop it \
                     where the smaller tensor is the current one: `concat {{ crop(x) {{}} }}`",
                    size[0], size[1]
                )));
            }
            finish(vec![c, size[0], size[1]], 0, 0, Vec::new())
        }
        Op::Pad { pads, mode } => {
            let (c, hw) = need_image("pad", first())?;
            // PyTorch's reflection needs each side's padding below the size (the mirror
            // repeats no edge); it refuses more, and ONNX Runtime would give another result.
            if *mode == PadMode::Reflect {
                for (a, axis) in ["height", "width"].into_iter().enumerate() {
                    let most = pads.begin[a].max(pads.end[a]);
                    if most >= hw[a] {
                        let (pixels, side) = if a == 0 {
                            ("rows", "taller")
                        } else {
                            ("columns", "wider")
                        };
                        return Err(err(
                            "cnnc::shape::pad_too_large",
                            format!(
                                "reflection padding of {most} along the {axis} needs an input \
                                 {side} than {most} {pixels}, but the input is {}×{}",
                                hw[0], hw[1]
                            ),
                        )
                        .help(format!(
                            "reflection mirrors the input about its edge without repeating it, \
                             so each side's padding must be below the size ({}): pad less, or \
                             use `replicate=true`, which repeats the edge as often as needed",
                            hw[a]
                        )));
                    }
                }
            }
            let grow = |a: usize| {
                hw[a]
                    .checked_add(pads.begin[a])
                    .and_then(|x| x.checked_add(pads.end[a]))
            };
            match (grow(0), grow(1)) {
                (Some(h), Some(w)) => finish(vec![c, h, w], 0, 0, Vec::new()),
                _ => Err(err(
                    "cnnc::shape::tensor_too_large",
                    "the padded size does not fit in 64 bits".to_string(),
                )),
            }
        }
        Op::Slice { start, end } => {
            let x = first();
            let n = x.dims()[0];
            let what = if x.rank() == 3 {
                "channels"
            } else {
                "features"
            };
            if start >= end || *end > n {
                let half = n / 2;
                let q = if x.rank() == 3 { "in.c" } else { "in.f" };
                let halves = if n >= 2 {
                    format!(
                        "; halves are `slice(0, {half})` and `slice({half}, {n})`, or \
                         `slice(0, {q} / 2)` and `slice({q} / 2, {q})`"
                    )
                } else {
                    String::new()
                };
                return Err(err(
                    "cnnc::shape::slice_range",
                    format!("`slice({start}, {end})` of {x}: the {what} are 0 up to {n}"),
                )
                .help(format!(
                    "`slice(a, b)` keeps {what} a up to b − 1, with a < b ≤ {n} (PyTorch's \
                     `x[:, a:b]`){halves}"
                )));
            }
            let mut dims = x.dims().to_vec();
            dims[0] = end - start;
            finish(dims, 0, 0, Vec::new())
        }
        Op::ChannelShuffle { groups } => {
            let x = first();
            let (c, _) = need_image("channel_shuffle", x)?;
            if !c.is_multiple_of(*groups) {
                let candidates = match divisors_between(c) {
                    None => format!("{c} is prime: no groups but 1 and {c} divide it, so no shuffle mixes its channels"),
                    Some(d) => format!("candidates: {d}"),
                };
                return Err(err(
                    "cnnc::shape::groups",
                    format!(
                        "`channel_shuffle` with groups={groups}: {groups} does not divide the {c} \
                         channels"
                    ),
                )
                .help(format!("the groups must divide the channels; {candidates}")));
            }
            finish(x.dims().to_vec(), 0, 0, Vec::new())
        }
        Op::PixelShuffle { factor, unshuffle } => {
            let (c, [h, w]) = need_image(op.kind(), first())?;
            let r = *factor;
            let too_large = || too_large(&format!("the output of `{}({r})`", op.kind()));
            if !unshuffle {
                let r2 = r.checked_mul(r).ok_or_else(too_large)?;
                if !c.is_multiple_of(r2) {
                    let fits: Vec<String> = (2..=c.isqrt())
                        .filter(|f| c.is_multiple_of(f * f))
                        .map(|f| f.to_string())
                        .collect();
                    let others = match fits.as_slice() {
                        [] => String::new(),
                        f => format!(", or a factor whose square divides {c}: {}", f.join(", ")),
                    };
                    return Err(err(
                        "cnnc::shape::pixel_shuffle",
                        format!(
                            "`pixel_shuffle({r})` needs channels in multiples of {r}² = {r2}, \
                             but its input has {c}"
                        ),
                    )
                    .help(format!(
                        "each output channel takes its {r}×{r} blocks of pixels from {r2} input \
                         channels: the layer before it must give a multiple of {r2}, \
                         `conv({r2} * c, …)` for c channels after the shuffle{others}"
                    )));
                }
                let (oh, ow) = (h.checked_mul(r), w.checked_mul(r));
                let (Some(oh), Some(ow)) = (oh, ow) else {
                    return Err(too_large());
                };
                finish(vec![c / r2, oh, ow], 0, 0, Vec::new())
            } else {
                if !h.is_multiple_of(r) || !w.is_multiple_of(r) {
                    let fits: Vec<String> = (2..=h.min(w))
                        .filter(|f| h.is_multiple_of(*f) && w.is_multiple_of(*f))
                        .take(12)
                        .map(|f| f.to_string())
                        .collect();
                    let others = match fits.as_slice() {
                        [] => String::new(),
                        f => format!(", or a factor that divides both: {}", f.join(", ")),
                    };
                    return Err(err(
                        "cnnc::shape::pixel_shuffle",
                        format!(
                            "`pixel_unshuffle({r})` needs a height and width divisible by {r}, \
                             but its input is {h}×{w}"
                        ),
                    )
                    .help(format!(
                        "each {r}×{r} block of pixels becomes {} channels of one pixel: pad or \
                         crop the input to multiples of {r}{others}",
                        r.saturating_mul(r)
                    )));
                }
                let oc = c.checked_mul(r).and_then(|x| x.checked_mul(r));
                let Some(oc) = oc else {
                    return Err(too_large());
                };
                finish(vec![oc, h / r, w / r], 0, 0, Vec::new())
            }
        }
        Op::Upsample { to, mode } => {
            let (c, hw) = need_image("upsample", first())?;
            let grown = |n: u64, s: u64| {
                n.checked_mul(s)
                    .ok_or_else(|| too_large(&format!("the output of `upsample` ({n}·{s})")))
            };
            let (oh, ow) = match to {
                crate::ir::UpsampleTo::Scale(scale) => {
                    (grown(hw[0], scale[0])?, grown(hw[1], scale[1])?)
                }
                crate::ir::UpsampleTo::Size(size) => (size[0], size[1]),
            };
            let shape = vec![c, oh, ow];
            per_sample("the output", &shape)?;
            let repeats = to.nearest_repeats([hw[0], hw[1]]).is_some();
            if matches!(mode, crate::ir::UpsampleMode::Bilinear { .. }) || !repeats {
                // Training interpolates, or sends the gradient back to the pixels a size
                // picked, with the matrices [oh, h] and [ow, w].
                constant("the interpolation matrix", &[oh, hw[0]])?;
                constant("the interpolation matrix", &[ow, hw[1]])?;
            }
            // `size` is the output's size, not Keras's factor: `UpSampling2D(size=2)` written
            // as `upsample(size=2)` shrinks a larger image without a word. A size of a few
            // pixels only: a resize to 224×224 or to a skip tensor's size is meant.
            let mut warnings = Vec::new();
            if let crate::ir::UpsampleTo::Size(size) = to {
                let factor_like = size.iter().all(|&s| s <= MAX_UPSAMPLE_FACTOR_LIKE);
                // The same size is no resampling at all: `upsample(size=2)` on a 2×2 image.
                let same = *size == [hw[0], hw[1]];
                if factor_like && size[0] <= hw[0] && size[1] <= hw[1] {
                    warnings.push(RuleWarning {
                        code: "cnnc::shape::upsample_shrinks",
                        message: if same {
                            format!(
                                "`upsample(size=[{}, {}])` gives the {}×{} it is given: it does \
                                 nothing",
                                size[0], size[1], hw[0], hw[1]
                            )
                        } else {
                            format!(
                                "`upsample(size=[{}, {}])` resamples {}×{} down to {}×{}",
                                size[0], size[1], hw[0], hw[1], size[0], size[1]
                            )
                        },
                        help: Some(
                            "`size` is the output's height and width (PyTorch's \
                             `Upsample(size=…)`), not a factor: Keras's `UpSampling2D(size=2)` \
                             is `upsample(2)`; if this small a size is meant, allow the warning \
                             (`# cnnc: allow(upsample_shrinks)`)"
                                .to_string(),
                        ),
                        unread_end: [0, 0],
                    });
                }
            }
            finish(shape, 0, 0, warnings)
        }
    }
}

/// The largest `upsample(size=…)` that the `upsample_shrinks` warning takes for Keras's
/// factor (`UpSampling2D(size=2)`, 3, 4) when the input is larger in both axes.
const MAX_UPSAMPLE_FACTOR_LIKE: u64 = 4;

fn concat(inputs: &[&Shape]) -> Result<Inferred, RuleError> {
    let first = inputs[0];
    // Every branch that differs from the first is named at once, not only the first one.
    let differing: Vec<usize> = (1..inputs.len())
        .filter(|&i| {
            let s = inputs[i];
            !(s.rank() == first.rank() && s.dims()[1..] == first.dims()[1..])
        })
        .collect();
    if !differing.is_empty() {
        let what = if differing
            .iter()
            .all(|&i| inputs[i].rank() == 3 && first.rank() == 3)
        {
            "spatial sizes"
        } else {
            "ranks"
        };
        let shapes: Vec<String> = std::iter::once(0)
            .chain(differing.iter().copied())
            .map(|i| inputs[i].to_string())
            .collect();
        let mut e = err(
            "cnnc::shape::concat_mismatch",
            format!(
                "concat branches have different {what}: {}",
                join_and(&shapes)
            ),
        )
        .help(if what == "ranks" {
            "a concat joins its branches along the channels (features): every branch must have \
             the same rank, [C, H, W] or [F]; flatten (or pool and flatten) after the concat, \
             not inside one branch"
        } else {
            "every branch must keep the spatial size [H, W] (only channels may differ): adjust \
             padding or strides; `crop(name)` cuts a larger named skip tensor down to the \
             current size"
        });
        e.input_labels = std::iter::once(0)
            .chain(differing)
            .map(|i| (i, format!("this branch gives {}", inputs[i])))
            .collect();
        return Err(e);
    }
    let mut dims = first.0.clone();
    dims[0] = inputs
        .iter()
        .try_fold(0u64, |acc, s| acc.checked_add(s.channels()))
        .ok_or_else(|| too_large("the concat"))?;
    finish(dims, 0, 0, Vec::new())
}

/// `a and b`, `a, b and c`.
fn join_and(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_formula_matches_the_notes() {
        // 6x8 input examples of the notes.
        assert_eq!(window_out(6, 3, 1, 1, 1, 1, false), Some((6, 0)));
        assert_eq!(window_out(6, 3, 2, 1, 1, 1, false), Some((3, 1)));
        assert_eq!(window_out(8, 3, 2, 1, 1, 1, false), Some((4, 1)));
        assert_eq!(window_out(6, 3, 3, 0, 0, 1, false), Some((2, 0)));
        assert_eq!(window_out(8, 5, 4, 1, 1, 1, false), Some((2, 1)));
        assert_eq!(window_out(4, 5, 1, 0, 0, 1, false), None);
    }

    #[test]
    fn ceil_mode_drops_a_window_starting_in_the_padding() {
        // PyTorch: MaxPool2d(2, stride=2, ceil_mode=True) on 5 → 3; on 4 with pad 1 → 3.
        assert_eq!(window_out(5, 2, 2, 0, 0, 1, true), Some((3, 0)));
        assert_eq!(window_out(4, 2, 2, 1, 1, 1, true), Some((3, 0)));
        // 6 with k3 s2 p1 ceil: room = 5, ceil(5/2)+1 = 4, (4-1)*2 = 6 >= 6+1? no → 4.
        assert_eq!(window_out(6, 3, 2, 1, 1, 1, true), Some((4, 0)));
        // 5 with k2 s2 p1 ceil: room 5, 3+1 = 4; (4-1)*2 = 6 >= 5+1 → 3.
        assert_eq!(window_out(5, 2, 2, 1, 1, 1, true), Some((3, 0)));
    }

    #[test]
    fn transposed_conv_inverts_conv_sizes() {
        assert_eq!(transposed_out(3, 3, 2, 1, 1, 1, 1), Some(6));
        assert_eq!(transposed_out(2, 2, 2, 0, 0, 1, 0), Some(4));
        assert_eq!(transposed_out(1, 1, 1, 1, 1, 1, 0), None);
    }

    #[test]
    fn overflow_is_reported_not_wrapped() {
        assert_eq!(window_out(u64::MAX, 3, 1, 1, 1, 1, false), None);
        let op = Op::Linear {
            out_features: u64::MAX / 2,
            bias: true,
        };
        let e = infer(&op, &[&Shape(vec![4])]).unwrap_err();
        assert_eq!(e.code, "cnnc::shape::tensor_too_large");
    }
}

#[cfg(test)]
mod concat_tests {
    use super::*;

    #[test]
    fn every_mismatching_branch_is_named() {
        let s = |d: &[u64]| Shape(d.to_vec());
        let (a, b, c, d) = (s(&[8, 4, 4]), s(&[8, 3, 3]), s(&[2, 4, 4]), s(&[8, 2, 2]));
        let e = concat(&[&a, &b, &c, &d]).unwrap_err();
        assert_eq!(
            e.message,
            "concat branches have different spatial sizes: [8, 4, 4], [8, 3, 3] and [8, 2, 2]"
        );
        let slots: Vec<usize> = e.input_labels.iter().map(|(i, _)| *i).collect();
        assert_eq!(slots, [0, 1, 3], "the agreeing branch is not blamed");
        assert!(concat(&[&a, &c]).is_ok());
    }
}

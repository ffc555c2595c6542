//! The op enum: one variant per layer kind, with typed, fully resolved attributes.
//!
//! Every per-layer stage (shape rule, cost, ONNX lowering, gradient) matches on [`Op`], so
//! adding a layer is one variant here and one arm in each stage, found by the compiler.

/// Per-axis pair `[h, w]`.
pub type Pair = [u64; 2];

/// Padding of the two spatial axes: `begin = [top, left]`, `end = [bottom, right]`
/// (the order of ONNX's `pads` attribute is `begin ++ end`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Pads {
    pub begin: Pair,
    pub end: Pair,
}

impl Pads {
    pub fn symmetric(p: Pair) -> Pads {
        Pads { begin: p, end: p }
    }
    pub fn is_symmetric(&self) -> bool {
        self.begin == self.end
    }
    /// ONNX order: `[top, left, bottom, right]`.
    pub fn onnx(&self) -> [u64; 4] {
        [self.begin[0], self.begin[1], self.end[0], self.end[1]]
    }
}

/// What a `pad` layer puts around its input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PadMode {
    /// Zeros (`ZeroPad2d`).
    Zeros,
    /// The input mirrored about its edge row, which is not repeated (`ReflectionPad2d`).
    Reflect,
    /// The edge row repeated (`ReplicationPad2d`).
    Replicate,
}

impl PadMode {
    /// ONNX `Pad`'s `mode` attribute.
    pub fn onnx(self) -> &'static str {
        match self {
            PadMode::Zeros => "constant",
            PadMode::Reflect => "reflect",
            PadMode::Replicate => "edge",
        }
    }

    /// The input index each of the `n + before + after` outputs of one axis copies, for the
    /// modes that copy (`None` for zeros: the padding comes from no input).
    pub fn source_indices(self, n: u64, before: u64, after: u64) -> Option<Vec<u64>> {
        if self == PadMode::Zeros || n == 0 {
            return None;
        }
        let n = n as i64;
        let pick = |i: i64| -> u64 {
            match self {
                PadMode::Reflect if n > 1 => {
                    // Mirrored about the edges, which are not repeated: a period of 2(n − 1).
                    let period = 2 * (n - 1);
                    let j = i.rem_euclid(period);
                    (if j < n { j } else { period - j }) as u64
                }
                _ => i.clamp(0, n - 1) as u64,
            }
        };
        Some(
            (0..n + (before + after) as i64)
                .map(|o| pick(o - before as i64))
                .collect(),
        )
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct ConvAttrs {
    pub out_channels: u64,
    pub kernel: Pair,
    pub stride: Pair,
    pub pads: Pads,
    pub dilation: Pair,
    pub groups: u64,
    pub bias: bool,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ConvTransposeAttrs {
    pub out_channels: u64,
    pub kernel: Pair,
    pub stride: Pair,
    pub pads: Pads,
    pub output_pad: Pair,
    pub dilation: Pair,
    pub groups: u64,
    pub bias: bool,
}

/// How a transposed conv whose `output_pad` reaches its stride is computed: ONNX Runtime's
/// ConvTranspose refuses such an `output_padding` (PyTorch allows it below the dilation), so
/// the conv runs without padding or output padding, giving `full`, then the rows and columns
/// `start .. end` are kept and `extend` zero rows and columns (that no input reaches) are
/// appended, before the bias.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OutputPadPlan {
    pub full: Pair,
    pub start: Pair,
    pub end: Pair,
    pub extend: Pair,
}

impl ConvTransposeAttrs {
    /// Whether ONNX's ConvTranspose cannot take this `output_pad` as it is (one at or above
    /// the stride), so [`ConvTransposeAttrs::output_pad_plan`] is needed.
    pub fn needs_output_pad_plan(&self) -> bool {
        (0..2).any(|a| self.output_pad[a] >= self.stride[a])
    }

    /// The plan for an input of `in_hw` (sizes already checked: `full` within
    /// [`crate::shape::rules::MAX_ELEMENTS`], every output size positive; the arithmetic
    /// saturates all the same, so unchecked sizes give a wrong plan, never a wrapped one).
    pub fn output_pad_plan(&self, in_hw: Pair) -> OutputPadPlan {
        let axis = |a: usize| {
            let full = (in_hw[a].saturating_sub(1))
                .saturating_mul(self.stride[a])
                .saturating_add(self.dilation[a].saturating_mul(self.kernel[a].saturating_sub(1)))
                .saturating_add(1);
            // PyTorch's size is full − pad_begin − pad_end + output_pad: the rows up to
            // `want` (from pad_begin), those past `full` being zeros.
            let want = full
                .saturating_add(self.output_pad[a])
                .saturating_sub(self.pads.end[a]);
            (
                full,
                self.pads.begin[a],
                want.min(full),
                want.saturating_sub(full),
            )
        };
        let (h, w) = (axis(0), axis(1));
        OutputPadPlan {
            full: [h.0, w.0],
            start: [h.1, w.1],
            end: [h.2, w.2],
            extend: [h.3, w.3],
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct PoolAttrs {
    pub kernel: Pair,
    pub stride: Pair,
    pub pads: Pads,
    pub ceil: bool,
    /// Average pooling: whether the zero padding counts in the divisor (PyTorch's
    /// `count_include_pad`, default true). Always true for max pooling.
    pub count_pad: bool,
}

impl PoolAttrs {
    /// Whether every window of an average pooling divides by kh·kw, so that ONNX's
    /// AveragePool (`count_include_pad=1`, over the padded input and any ceil-mode
    /// overhang `extra`) is PyTorch's result without a rescale: no overhang, and the
    /// padding counted or absent.
    pub fn divides_by_kernel(&self, extra: Pair) -> bool {
        extra == [0, 0] && (self.count_pad || self.pads == Pads::default())
    }

    /// PyTorch's divisor of each average-pooling window: with `count_pad`, the window clipped
    /// to the padded input (a ceil-mode overhang past the end padding does not count);
    /// without, clipped to the input itself. Row-major `[oh, ow]`.
    ///
    /// In 128-bit integers: sizes below 2^32 (every argument is) and 2^31 windows cannot
    /// overflow them, and a window's two sides, each below 2^33, multiply exactly before the
    /// one rounding to `f32` (in `i64` their product wrapped, to a negative divisor).
    pub fn avg_divisors(&self, in_hw: [u64; 2], out_hw: [u64; 2]) -> Vec<f32> {
        let sizes = |axis: usize| -> Vec<i128> {
            let (n, o) = (i128::from(in_hw[axis]), i128::from(out_hw[axis]));
            let (k, s) = (
                i128::from(self.kernel[axis]),
                i128::from(self.stride[axis].max(1)),
            );
            let (pb, pe) = (
                i128::from(self.pads.begin[axis]),
                i128::from(self.pads.end[axis]),
            );
            (0..o)
                .map(|i| {
                    let start = i * s - pb;
                    let end = (start + k).min(n + pe);
                    if self.count_pad {
                        end - start
                    } else {
                        // At least one input value: a pad above half the kernel is refused.
                        (end.min(n) - start.max(0)).max(1)
                    }
                })
                .collect()
        };
        let (h, w) = (sizes(0), sizes(1));
        h.iter()
            .flat_map(|&a| w.iter().map(move |&b| (a * b) as f32))
            .collect()
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum Op {
    /// The model's input; no inputs.
    Input,
    Conv(ConvAttrs),
    ConvTranspose(ConvTransposeAttrs),
    MaxPool(PoolAttrs),
    /// PyTorch semantics, padding counted in the divisor or not (`count_pad`).
    AvgPool(PoolAttrs),
    /// PyTorch's `AdaptiveAvgPool2d([h, w])`.
    AdaptiveAvgPool {
        output: Pair,
    },
    GlobalAvgPool,
    /// PyTorch's `AdaptiveMaxPool2d([h, w])`: the maximum over the same bins as
    /// `AdaptiveAvgPool`'s.
    AdaptiveMaxPool {
        output: Pair,
    },
    GlobalMaxPool,
    /// 2-D on `[C, H, W]`, 1-D on `[F]`. `momentum` in PyTorch's convention (weight of the
    /// new batch statistic, default 0.1). Without `affine` (PyTorch's `affine=False`) it
    /// learns no scale and shift: the normalized value is the output.
    BatchNorm {
        eps: f64,
        momentum: f64,
        affine: bool,
    },
    /// Normalization of each sample over groups of its channels (and all their pixels):
    /// PyTorch's `GroupNorm(groups, C)`, or with `groups: None` one channel a group,
    /// `InstanceNorm2d(C)`; then a learned per-channel scale and shift when `affine`. Its
    /// statistics are the sample's own, so training and inference compute the same.
    GroupNorm {
        groups: Option<u64>,
        eps: f64,
        affine: bool,
    },
    /// Normalization of each sample at each pixel over its channels (of a vector, over its
    /// features), then a learned per-channel scale and shift when `affine`: ConvNeXt's
    /// `LayerNorm2d` (PyTorch's `LayerNorm(C)` on channels-last values), and on a vector
    /// PyTorch's `LayerNorm(F)`. Its statistics are the sample's own.
    LayerNorm {
        eps: f64,
        affine: bool,
    },
    /// A learned factor per channel (per feature of a vector), `init` at first: ConvNeXt's
    /// and CaiT's layer scale, `γ · f(x)` with γ of shape [C, 1, 1].
    LayerScale {
        init: f64,
    },
    Relu,
    Sigmoid,
    Tanh,
    LeakyRelu {
        alpha: f64,
    },
    Elu {
        alpha: f64,
    },
    /// x·σ(x) (PyTorch's `SiLU`, also called swish).
    Silu,
    /// x·tanh(softplus(x)) (PyTorch's `Mish`).
    Mish,
    /// x·k for a constant k: Inception-ResNet's and EDSR's residual scaling, `0.17 * f(x)`.
    Scale {
        factor: f64,
    },
    /// (x − mean) / std per channel (or per feature of a vector), constants one for every
    /// channel or one each: torchvision's `transforms.Normalize`, put into the model.
    Normalize {
        mean: Vec<f64>,
        std: Vec<f64>,
    },
    /// max(0, x) + a·min(0, x) with a learned slope `a`, one for all channels or one per
    /// channel (PyTorch's `PReLU()` and `PReLU(C)`), initialized to 0.25.
    Prelu {
        per_channel: bool,
    },
    /// x·Φ(x) with Φ the standard normal CDF, the exact form (PyTorch's `GELU()`, whose
    /// default `approximate='none'`).
    Gelu,
    /// min(max(x, 0), 6) (PyTorch's `ReLU6`, MobileNet's activation).
    Relu6,
    /// relu6(x + 3) / 6 (PyTorch's `Hardsigmoid`).
    HardSigmoid,
    /// x · relu6(x + 3) / 6 (PyTorch's `Hardswish`, MobileNetV3's activation).
    HardSwish,
    /// Over the channel (or feature) axis.
    Softmax,
    Dropout {
        p: f64,
    },
    /// `[C, H, W]` → `[C·H·W]`.
    Flatten,
    Linear {
        out_features: u64,
        bias: bool,
    },
    /// Joins its inputs (in edge-slot order) along channels.
    Concat,
    /// Elementwise sum of its two inputs (a residual connection).
    Add,
    /// Its first input times its second, the second `[C, 1, 1]` broadcast over H and W or
    /// of the first's shape (a gate: squeeze-and-excitation).
    Mul,
    /// Center crop of its input to `[h, w]` (U-Net's copy-and-crop).
    Crop {
        size: Pair,
    },
    /// Padding of the height and width (PyTorch's `ZeroPad2d`, `ReflectionPad2d`,
    /// `ReplicationPad2d`, `F.pad`).
    Pad {
        pads: Pads,
        mode: PadMode,
    },
    /// Channels (or features) `start .. end` of its input: PyTorch's `x[:, start:end]`,
    /// ShuffleNet's channel split.
    Slice {
        start: u64,
        end: u64,
    },
    /// ShuffleNet's channel shuffle (PyTorch's `ChannelShuffle(groups)`): channel i·(C/g) + j
    /// goes to j·g + i.
    ChannelShuffle {
        groups: u64,
    },
    /// Sub-pixel rearrangement by a factor r (PyTorch's `PixelShuffle(r)`): [C·r², H, W] to
    /// [C, H·r, W·r], channel c·r² + i·r + j becoming pixel (h·r + i, w·r + j) of channel c;
    /// with `unshuffle`, its inverse (`PixelUnshuffle(r)`).
    PixelShuffle {
        factor: u64,
        unshuffle: bool,
    },
    /// Upsampling by whole factors `[sh, sw]` (PyTorch's `Upsample(scale_factor=s)`), each
    /// pixel repeated sh × sw times or interpolated bilinearly, or resampling to a size
    /// (`Upsample(size=…)`).
    Upsample {
        to: UpsampleTo,
        mode: UpsampleMode,
    },
}

impl UpsampleTo {
    /// The whole factors that take an `[h, w]` input to this size: the scale, or a size
    /// that is a whole multiple of the input's (which resamples exactly as that scale).
    pub fn whole_scale(&self, in_hw: Pair) -> Option<Pair> {
        match *self {
            UpsampleTo::Scale(scale) => Some(scale),
            UpsampleTo::Size(size) => {
                let factor = |a: usize| {
                    (in_hw[a] > 0 && size[a] >= in_hw[a] && size[a] % in_hw[a] == 0)
                        .then(|| size[a] / in_hw[a])
                };
                Some([factor(0)?, factor(1)?])
            }
        }
    }

    /// The source pixel of output pixel `o` when nearest-neighbour upsampling takes axis
    /// `axis` (0 the height, 1 the width) of `n` pixels to `m`, as PyTorch's
    /// `upsample_nearest2d` computes it: o itself when m = n, o/2 when m = 2n, else
    /// ⌊o·scale⌋ in float32 (at most n − 1), where scale is 1/s for a scale factor s and n/m
    /// for a size. For most factors that repeats each pixel s times; for some (41, 47, 55, …
    /// with some n) the float32 rounding picks the pixel before, and cnnc picks the same.
    pub fn nearest_source(&self, axis: usize, n: u64, m: u64, o: u64) -> u64 {
        if m == n {
            return o;
        }
        if m == 2 * n {
            return o >> 1;
        }
        let scale = match self {
            UpsampleTo::Scale(s) => (1.0 / s[axis] as f64) as f32,
            UpsampleTo::Size(_) => n as f32 / m as f32,
        };
        ((o as f32 * scale).floor() as u64).min(n.saturating_sub(1))
    }

    /// 2^23: past it, float32 rounding makes even factors below 40 pick another pixel
    /// somewhere (3 does below 2^24).
    pub const MAX_EXACT_NEAREST: u64 = 1 << 23;

    /// Whether nearest-neighbour upsampling by this scale repeats each pixel exactly at every
    /// size up to [`Self::MAX_EXACT_NEAREST`] output pixels a side, as PyTorch picks the
    /// source pixels (`⌊o · fl32(1/s)⌋`): true for 1 to 40, not for 41, 47, 55, 61, 82, …,
    /// whose float32 reciprocals pick another pixel at some sizes. `false` for a size.
    ///
    /// The float32 product is non-decreasing in o, so within each run of s outputs that
    /// share a source pixel q it is checked at the run's ends only: not below q at its
    /// first, not q + 1 at its last.
    pub fn nearest_repeats_at_any_size(&self) -> bool {
        let UpsampleTo::Scale(scale) = self else {
            return false;
        };
        scale.iter().all(|&s| {
            let inverse = (1.0 / s as f64) as f32;
            let pick = |o: u64| (o as f32 * inverse).floor() as u64;
            let last = Self::MAX_EXACT_NEAREST - 1;
            s <= 2
                || (0..=last / s).all(|q| pick(q * s) == q && pick((q * s + s - 1).min(last)) == q)
        })
    }

    /// The whole factors by which nearest-neighbour upsampling of an `[h, w]` input repeats
    /// each pixel, when PyTorch's source pixels ([`Self::nearest_source`]) are exactly that
    /// repetition; `None` when they are not (a size no whole multiple, or a factor whose
    /// float32 rounding picks another pixel somewhere), and the pixels must be gathered.
    pub fn nearest_repeats(&self, in_hw: Pair) -> Option<Pair> {
        let scale = self.whole_scale(in_hw)?;
        for axis in 0..2 {
            let (n, s) = (in_hw[axis], scale[axis]);
            let m = n.checked_mul(s)?;
            if !(0..m).all(|o| self.nearest_source(axis, n, m, o) == o / s) {
                return None;
            }
        }
        Some(scale)
    }
}

/// PyTorch's adaptive pooling of `n` values into `m` bins: bin `i` covers
/// `[⌊i·n/m⌋, ⌈(i+1)·n/m⌉)`, so the bins overlap where `m` does not divide `n`.
/// (`n`, `m` < 2^32: no overflow.)
pub fn adaptive_bin(i: u64, n: u64, m: u64) -> std::ops::Range<u64> {
    i * n / m..((i + 1) * n).div_ceil(m)
}

/// The width of the widest of the bins of `n` into `m` where `m` does not divide `n`
/// (`None` where it does: the bins are then a MaxPool's windows, `n/m` wide and apart).
///
/// Bin `i`'s width is ⌈(r + n)/m⌉ with r = i·n mod m, a multiple of g = gcd(n, m) below
/// `m`, and every such multiple occurs: the widest is ⌈(n + m − g)/m⌉.
pub fn adaptive_max_gather_width(n: u64, m: u64) -> Option<u64> {
    if m == 0 || n.is_multiple_of(m) {
        return None;
    }
    let (mut a, mut g) = (n, m);
    while g != 0 {
        (a, g) = (g, a % g);
    }
    Some((n + m - a).div_ceil(m))
}

/// How adaptive max pooling lowers one axis of `n` into `m` where `m` does not divide `n`:
/// the width `k` of the widest bin and each bin's indices, a short bin's padded with its
/// last index (a repeat does not change a maximum, and keeps PyTorch's first-of-equals
/// order), so that a Gather of the `m·k` indices and a MaxPool with kernel and stride `k`
/// give the bins' maxima. `None` where `m` divides `n`.
pub fn adaptive_max_gather(n: u64, m: u64) -> Option<(u64, Vec<i64>)> {
    let k = adaptive_max_gather_width(n, m)?;
    let mut index = Vec::with_capacity((m * k) as usize);
    for i in 0..m {
        let bin = adaptive_bin(i, n, m);
        let last = bin.end - 1;
        index.extend(bin.map(|j| j as i64));
        index.resize(((i + 1) * k) as usize, last as i64);
    }
    Some((k, index))
}

/// How large [`Op::Upsample`] makes its input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UpsampleTo {
    /// By whole factors `[sh, sw]`: H·sh × W·sw.
    Scale(Pair),
    /// To `[h, w]`, whatever the input's size (PyTorch's `size=`): output pixel o of an axis
    /// of n reads source position o·n/h (nearest, rounded down) or (o + ½)·n/h − ½ (bilinear).
    Size(Pair),
}

/// How [`Op::Upsample`] fills the new pixels: PyTorch's `mode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum UpsampleMode {
    /// Each pixel repeated (`mode='nearest'`, PyTorch's default).
    #[default]
    Nearest,
    /// Each output pixel interpolated between the (up to) four nearest input pixels
    /// (`mode='bilinear'`); with `align_corners` the corner pixels of input and output are
    /// aligned, otherwise their areas are (PyTorch's default, `align_corners=False`).
    Bilinear { align_corners: bool },
}

impl Op {
    /// The layer's name in the language (and in summaries).
    pub fn kind(&self) -> &'static str {
        match self {
            Op::Input => "input",
            Op::Conv(_) => "conv",
            Op::ConvTranspose(_) => "convT",
            Op::MaxPool(_) => "maxpool",
            Op::AvgPool(_) => "avgpool",
            Op::AdaptiveAvgPool { .. } => "adaptive_avgpool",
            Op::GlobalAvgPool => "global_avgpool",
            Op::AdaptiveMaxPool { .. } => "adaptive_maxpool",
            Op::GlobalMaxPool => "global_maxpool",
            Op::BatchNorm { .. } => "batchnorm",
            Op::GroupNorm {
                groups: Some(_), ..
            } => "groupnorm",
            Op::GroupNorm { groups: None, .. } => "instancenorm",
            Op::LayerNorm { .. } => "layernorm",
            Op::LayerScale { .. } => "layer_scale",
            Op::Relu => "relu",
            Op::Sigmoid => "sigmoid",
            Op::Tanh => "tanh",
            Op::LeakyRelu { .. } => "leaky_relu",
            Op::Elu { .. } => "elu",
            Op::Silu => "silu",
            Op::Mish => "mish",
            Op::Scale { .. } => "scale",
            Op::Normalize { .. } => "normalize",
            Op::Prelu { .. } => "prelu",
            Op::Gelu => "gelu",
            Op::Relu6 => "relu6",
            Op::HardSigmoid => "hardsigmoid",
            Op::HardSwish => "hardswish",
            Op::Softmax => "softmax",
            Op::Dropout { .. } => "dropout",
            Op::Flatten => "flatten",
            Op::Linear { .. } => "linear",
            Op::Concat => "concat",
            Op::Add => "add",
            Op::Mul => "mul",
            Op::Crop { .. } => "crop",
            Op::Pad { .. } => "pad",
            Op::Slice { .. } => "slice",
            Op::ChannelShuffle { .. } => "channel_shuffle",
            Op::PixelShuffle {
                unshuffle: false, ..
            } => "pixel_shuffle",
            Op::PixelShuffle {
                unshuffle: true, ..
            } => "pixel_unshuffle",
            Op::Upsample { .. } => "upsample",
        }
    }

    /// Activations and other ops that keep the shape and act elementwise (or per channel, or
    /// move whole channels: a shuffle keeps every pixel's receptive field).
    pub fn is_shape_preserving(&self) -> bool {
        matches!(
            self,
            Op::BatchNorm { .. }
                | Op::GroupNorm { .. }
                | Op::LayerNorm { .. }
                | Op::LayerScale { .. }
                | Op::Relu
                | Op::Sigmoid
                | Op::Tanh
                | Op::LeakyRelu { .. }
                | Op::Elu { .. }
                | Op::Silu
                | Op::Mish
                | Op::Scale { .. }
                | Op::Normalize { .. }
                | Op::Prelu { .. }
                | Op::Gelu
                | Op::Relu6
                | Op::HardSigmoid
                | Op::HardSwish
                | Op::Softmax
                | Op::Dropout { .. }
                | Op::ChannelShuffle { .. }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The factors whose nearest upsampling a `--dynamic-size` export may make a plain
    /// repetition: those the per-size check (`nearest_repeats`) accepts at every size tried,
    /// and not 41, 47, 55 or 61, which it refuses at some size below 64.
    #[test]
    fn nearest_repeats_at_any_size_agrees_with_the_per_size_check() {
        let failing: Vec<u64> = (1..=64)
            .filter(|&s| !UpsampleTo::Scale([s, s]).nearest_repeats_at_any_size())
            .collect();
        assert_eq!(failing, [41, 47, 55, 61]);
        for s in 1..=64 {
            let to = UpsampleTo::Scale([s, 1]);
            let everywhere = (1..=64).all(|n| to.nearest_repeats([n, 3]).is_some());
            assert_eq!(to.nearest_repeats_at_any_size(), everywhere, "factor {s}");
        }
        assert!(!UpsampleTo::Size([4, 4]).nearest_repeats_at_any_size());
        // The check at each run's ends says what a check of every output pixel says.
        for s in [3, 5, 40, 41, 82, 97, 123, 128] {
            let inverse = (1.0 / s as f64) as f32;
            let every = (0..UpsampleTo::MAX_EXACT_NEAREST)
                .all(|o| (o as f32 * inverse).floor() as u64 == o / s);
            let to = UpsampleTo::Scale([s, s]);
            assert_eq!(to.nearest_repeats_at_any_size(), every, "factor {s}");
        }
    }

    /// The gather's width is the widest bin's, found by brute force, and every bin's
    /// indices are the bin's, padded with its last.
    #[test]
    fn adaptive_max_gather_pads_every_bin_to_the_widest() {
        for n in 1..40u64 {
            for m in 1..40u64 {
                let Some((k, index)) = adaptive_max_gather(n, m) else {
                    assert_eq!(n % m, 0, "{n} → {m}");
                    continue;
                };
                let widest = (0..m).map(|i| adaptive_bin(i, n, m).count() as u64).max();
                assert_eq!(Some(k), widest, "{n} → {m}");
                assert_eq!(index.len() as u64, m * k);
                for i in 0..m {
                    let bin: Vec<i64> = adaptive_bin(i, n, m).map(|j| j as i64).collect();
                    let got = &index[(i * k) as usize..((i + 1) * k) as usize];
                    assert_eq!(&got[..bin.len()], &bin[..], "{n} → {m}, bin {i}");
                    assert!(got[bin.len()..].iter().all(|&j| j == *bin.last().unwrap()));
                }
            }
        }
        // 5 → 3: [0, 2), [1, 4), [3, 5), widened to 3.
        assert_eq!(
            adaptive_max_gather(5, 3),
            Some((3, vec![0, 1, 1, 1, 2, 3, 3, 4, 4]))
        );
    }

    /// Windows of nearly 2^32 on each side: their product, near 2^64, wrapped in i64 to a
    /// negative divisor (the exported rescale and training's inverse divisors with it).
    #[test]
    fn avg_divisors_of_huge_windows_do_not_wrap() {
        let p = PoolAttrs {
            kernel: [4294967295, 4294967295],
            stride: [2, 2],
            pads: Pads::symmetric([2147483647, 2147483647]),
            ceil: true,
            count_pad: true,
        };
        let d = p.avg_divisors([2, 2], [2, 2]);
        // Window sizes: the whole padded input, 2^32 (clipped at n + pe), then 2^32 − 2.
        let sizes = [4294967296f64, 4294967294f64];
        let want: Vec<f32> = sizes
            .iter()
            .flat_map(|a| sizes.iter().map(move |b| (a * b) as f32))
            .collect();
        assert_eq!(d, want);
        assert!(d.iter().all(|&x| x > 1e19), "{d:?}");
    }
}

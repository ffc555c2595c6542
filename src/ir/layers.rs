//! The built-in layers: their names, parameters (PyTorch's names and defaults) and the
//! binding of a call's arguments into a typed [`Op`].

use super::value::{eval, Env, EvalError, Value};
use crate::diag::{did_you_mean, Diagnostic, Diagnostics};
use crate::ir::{ConvAttrs, ConvTransposeAttrs, Op, Pads, Pair, PoolAttrs, Shape};
use crate::ir::{PadMode, UpsampleMode, UpsampleTo};
use crate::source::Span;
use crate::syntax::ast;

/// The two ways to write `upsample`, for the helps that ask for one.
const UPSAMPLE_FORMS: &str = "`upsample(2)` doubles the height and the width (PyTorch's \
                              `scale_factor=2`), `upsample(size=[h, w])` resamples to h × w \
                              (PyTorch's `size=(h, w)`)";

/// How an argument's value is checked and converted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// An integer ≥ 1.
    Count,
    /// An integer ≥ 1, or `[h, w]` of them.
    Pair,
    /// An integer ≥ 0, or `[h, w]` of them.
    PairOrZero,
    /// `p`, `[h, w]`, `[top, bottom, left, right]` (all ≥ 0) or `same`.
    Pad,
    /// `p`, `[h, w]` or `[top, bottom, left, right]` (all ≥ 0): pixels, not `same`.
    Pixels,
    Bool,
    /// A number in [0, 1) (a dropout rate: ONNX's Dropout refuses 1).
    Probability,
    /// A number in [0, 1] (batch norm's momentum, as PyTorch allows).
    Fraction,
    /// Any finite number.
    Number,
    /// A number > 0.
    Positive,
    /// An integer ≥ 0 (a position).
    Index,
    /// A [`Kind::Number`], or a list of them (one per channel).
    Numbers,
    /// A [`Kind::Positive`], or a list of them (one per channel).
    PositiveNumbers,
}

impl Kind {
    /// Whether the argument takes a fraction (a float), not a count.
    fn is_fractional(self) -> bool {
        matches!(
            self,
            Kind::Probability
                | Kind::Fraction
                | Kind::Number
                | Kind::Positive
                | Kind::Numbers
                | Kind::PositiveNumbers
        )
    }
}

#[derive(Debug)]
pub struct ParamSpec {
    pub name: &'static str,
    pub kind: Kind,
    pub required: bool,
}

#[derive(Debug)]
pub struct LayerSpec {
    pub name: &'static str,
    pub params: &'static [ParamSpec],
}

const fn req(name: &'static str, kind: Kind) -> ParamSpec {
    ParamSpec {
        name,
        kind,
        required: true,
    }
}

const fn opt(name: &'static str, kind: Kind) -> ParamSpec {
    ParamSpec {
        name,
        kind,
        required: false,
    }
}

const POOL: &[ParamSpec] = &[
    req("kernel", Kind::Pair),
    opt("stride", Kind::Pair),
    opt("pad", Kind::Pad),
    opt("ceil", Kind::Bool),
];

/// `avgpool`'s: the pooling's, and whether the padding counts in the divisor.
const AVG_POOL: &[ParamSpec] = &[
    req("kernel", Kind::Pair),
    opt("stride", Kind::Pair),
    opt("pad", Kind::Pad),
    opt("ceil", Kind::Bool),
    opt("count_include_pad", Kind::Bool),
];

/// Every built-in layer.
pub static LAYERS: &[LayerSpec] = &[
    LayerSpec {
        name: "conv",
        params: &[
            req("out", Kind::Count),
            req("kernel", Kind::Pair),
            opt("stride", Kind::Pair),
            opt("pad", Kind::Pad),
            opt("dilation", Kind::Pair),
            opt("groups", Kind::Count),
            opt("bias", Kind::Bool),
        ],
    },
    LayerSpec {
        name: "convT",
        params: &[
            req("out", Kind::Count),
            req("kernel", Kind::Pair),
            opt("stride", Kind::Pair),
            opt("pad", Kind::Pad),
            opt("output_pad", Kind::PairOrZero),
            opt("dilation", Kind::Pair),
            opt("groups", Kind::Count),
            opt("bias", Kind::Bool),
        ],
    },
    LayerSpec {
        name: "maxpool",
        params: POOL,
    },
    LayerSpec {
        name: "avgpool",
        params: AVG_POOL,
    },
    LayerSpec {
        name: "adaptive_avgpool",
        params: &[req("output", Kind::Pair)],
    },
    LayerSpec {
        name: "global_avgpool",
        params: &[],
    },
    LayerSpec {
        name: "adaptive_maxpool",
        params: &[req("output", Kind::Pair)],
    },
    LayerSpec {
        name: "global_maxpool",
        params: &[],
    },
    LayerSpec {
        name: "batchnorm",
        params: &[
            opt("eps", Kind::Positive),
            opt("momentum", Kind::Fraction),
            opt("affine", Kind::Bool),
        ],
    },
    LayerSpec {
        name: "groupnorm",
        params: &[
            req("groups", Kind::Count),
            opt("eps", Kind::Positive),
            opt("affine", Kind::Bool),
        ],
    },
    LayerSpec {
        name: "instancenorm",
        params: &[opt("eps", Kind::Positive), opt("affine", Kind::Bool)],
    },
    LayerSpec {
        name: "layernorm",
        params: &[opt("eps", Kind::Positive), opt("affine", Kind::Bool)],
    },
    LayerSpec {
        name: "layer_scale",
        params: &[req("init", Kind::Number)],
    },
    LayerSpec {
        name: "relu",
        params: &[],
    },
    LayerSpec {
        name: "mish",
        params: &[],
    },
    LayerSpec {
        name: "scale",
        params: &[req("factor", Kind::Number)],
    },
    LayerSpec {
        name: "normalize",
        params: &[
            req("mean", Kind::Numbers),
            req("std", Kind::PositiveNumbers),
        ],
    },
    LayerSpec {
        name: "prelu",
        params: &[opt("per_channel", Kind::Bool)],
    },
    LayerSpec {
        name: "sigmoid",
        params: &[],
    },
    LayerSpec {
        name: "tanh",
        params: &[],
    },
    LayerSpec {
        name: "leaky_relu",
        params: &[opt("alpha", Kind::Number)],
    },
    LayerSpec {
        name: "elu",
        params: &[opt("alpha", Kind::Number)],
    },
    LayerSpec {
        name: "silu",
        params: &[],
    },
    LayerSpec {
        name: "gelu",
        params: &[],
    },
    LayerSpec {
        name: "relu6",
        params: &[],
    },
    LayerSpec {
        name: "hardsigmoid",
        params: &[],
    },
    LayerSpec {
        name: "hardswish",
        params: &[],
    },
    LayerSpec {
        name: "softmax",
        params: &[],
    },
    LayerSpec {
        name: "dropout",
        params: &[opt("p", Kind::Probability)],
    },
    LayerSpec {
        name: "flatten",
        params: &[],
    },
    LayerSpec {
        name: "linear",
        params: &[req("out", Kind::Count), opt("bias", Kind::Bool)],
    },
    // crop(NAME) takes a tensor; the elaborator handles it.
    LayerSpec {
        name: "crop",
        params: &[],
    },
    LayerSpec {
        name: "pad",
        params: &[
            req("pad", Kind::Pixels),
            opt("reflect", Kind::Bool),
            opt("replicate", Kind::Bool),
        ],
    },
    LayerSpec {
        name: "slice",
        params: &[req("start", Kind::Index), req("end", Kind::Count)],
    },
    LayerSpec {
        name: "channel_shuffle",
        params: &[req("groups", Kind::Count)],
    },
    LayerSpec {
        name: "pixel_shuffle",
        params: &[req("factor", Kind::Count)],
    },
    LayerSpec {
        name: "pixel_unshuffle",
        params: &[req("factor", Kind::Count)],
    },
    LayerSpec {
        name: "upsample",
        params: &[
            opt("scale", Kind::Pair),
            opt("bilinear", Kind::Bool),
            opt("align_corners", Kind::Bool),
            opt("size", Kind::Pair),
        ],
    },
];

pub fn lookup(name: &str) -> Option<&'static LayerSpec> {
    LAYERS.iter().find(|l| l.name == name)
}

pub fn names() -> impl Iterator<Item = &'static str> {
    LAYERS.iter().map(|l| l.name)
}

/// cnnc's layer for a PyTorch `nn` class name (`Conv2d`, `nn.BatchNorm2d` without `nn.`),
/// with how its arguments differ: the help of an unknown layer written PyTorch's way.
pub fn pytorch_equivalent(name: &str) -> Option<String> {
    let (cnnc, how) = match name {
        "Conv2d" => ("conv", "`conv(out_channels, kernel, …)`: the input channels are inferred, so `Conv2d(3, 16, 3)` is `conv(16, 3)`"),
        "ConvTranspose2d" => ("convT", "`convT(out_channels, kernel, …)`: the input channels are inferred"),
        "Linear" => ("linear", "`linear(out_features)`: the input features are inferred, so `Linear(400, 120)` is `linear(120)`"),
        "BatchNorm1d" | "BatchNorm2d" => ("batchnorm", "`batchnorm`: the features are inferred, so it takes no number"),
        "GroupNorm" => ("groupnorm", "`groupnorm(groups)`: the channels are inferred, so `GroupNorm(32, 256)` is `groupnorm(32)`"),
        "LayerNorm" => ("layernorm", LAYERNORM),
        "InstanceNorm2d" => ("instancenorm", "`instancenorm`: the channels are inferred, and as in PyTorch it learns no scale and shift unless `affine=true`"),
        "MaxPool2d" => ("maxpool", "`maxpool(kernel, stride=…, pad=…)`"),
        "AvgPool2d" => ("avgpool", "`avgpool(kernel, stride=…, pad=…)`"),
        "AdaptiveAvgPool2d" => ("adaptive_avgpool", "`adaptive_avgpool(output)`, e.g. `adaptive_avgpool([6, 6])`"),
        "AdaptiveMaxPool2d" => ("adaptive_maxpool", "`adaptive_maxpool(output)`, e.g. `adaptive_maxpool([6, 6])`; to one pixel it is also `global_maxpool`"),
        "ReLU" => ("relu", "`relu`"),
        "LeakyReLU" => ("leaky_relu", "`leaky_relu(slope)`, by default PyTorch's 0.01: `LeakyReLU(0.2)` is `leaky_relu(0.2)`, and Keras's `LeakyReLU()`, whose default is 0.3, `leaky_relu(0.3)`"),
        "ELU" => ("elu", "`elu`"),
        "Sigmoid" => ("sigmoid", "`sigmoid`"),
        "Tanh" => ("tanh", "`tanh`"),
        "SiLU" => ("silu", "`silu`"),
        "Mish" => ("mish", "`mish`"),
        "PReLU" => ("prelu", "`prelu` (one slope, PyTorch's `PReLU()`) or `prelu(per_channel=true)` (a slope per channel, `PReLU(C)`)"),
        "ReLU6" => ("relu6", "`relu6`"),
        "Hardsigmoid" => ("hardsigmoid", "`hardsigmoid`"),
        "Hardswish" => ("hardswish", "`hardswish`"),
        "GELU" => ("gelu", "`gelu` (the exact form, PyTorch's default `approximate='none'`)"),
        "Softmax" => ("softmax", "`softmax`"),
        "Dropout" => ("dropout", "`dropout(p)`"),
        "Dropout2d" => ("dropout", "`dropout(p)`, which zeroes single values: PyTorch's `Dropout2d` zeroes whole channels, which cnnc does not do (the two differ in training only)"),
        "Flatten" => ("flatten", "`flatten`"),
        "Normalize" => ("normalize", "`normalize(mean, std)`, torchvision's `transforms.Normalize` put into the model: `normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225])`"),
        "PixelShuffle" => ("pixel_shuffle", "`pixel_shuffle(r)`: [C·r², H, W] to [C, H·r, W·r]"),
        "PixelUnshuffle" => ("pixel_unshuffle", "`pixel_unshuffle(r)`: [C, H·r, W·r] to [C·r², H, W]"),
        "ZeroPad2d" => ("pad", "`pad(p)`; PyTorch's 4-tuple is `(left, right, top, bottom)`, cnnc's list `[top, bottom, left, right]`"),
        "ReflectionPad2d" => ("pad", "`pad(p, reflect=true)`; PyTorch's 4-tuple is `(left, right, top, bottom)`, cnnc's list `[top, bottom, left, right]`"),
        "ReplicationPad2d" => ("pad", "`pad(p, replicate=true)`; PyTorch's 4-tuple is `(left, right, top, bottom)`, cnnc's list `[top, bottom, left, right]`"),
        "Upsample" | "UpsamplingNearest2d" => ("upsample", "`upsample(scale)`, nearest-neighbour by a whole factor (`Upsample(scale_factor=2)` is `upsample(2)`, `Upsample(size=(h, w))` is `upsample(size=[h, w])`; `mode='bilinear'` is `upsample(2, bilinear=true)`, and `align_corners=True` is `align_corners=true` beside it)"),
        "UpsamplingBilinear2d" => ("upsample", "`upsample(scale, bilinear=true, align_corners=true)`: PyTorch's `UpsamplingBilinear2d(scale_factor=2)` aligns the corners, unlike `Upsample(scale_factor=2, mode='bilinear')`, which is `upsample(2, bilinear=true)`"),
        _ => return None,
    };
    debug_assert!(names().any(|n| n == cnnc));
    // Names Keras's layers share.
    let whose = if matches!(
        name,
        "ReLU" | "LeakyReLU" | "ELU" | "PReLU" | "Softmax" | "Dropout" | "Flatten"
    ) {
        "PyTorch's and Keras's name"
    } else {
        "PyTorch's name"
    };
    Some(format!("`{name}` is {whose}; cnnc's layer is {how}"))
}

/// What cnnc writes for a Keras layer class (`Dense`, `Conv2D`, `MaxPooling2D`, …): the help
/// of an unknown layer written Keras's way. Keras's images are channels-last; cnnc's are
/// [C, H, W], which the shape errors of a channels-last input say.
pub fn keras_equivalent(name: &str) -> Option<String> {
    let how = match name {
        "Dense" => "`linear(units)`, with the activation as a layer of its own: `Dense(120, activation='relu')` is `linear(120) relu`",
        "Conv2D" | "Convolution2D" => "`conv(filters, kernel, stride=…, pad=…)`, with the activation as a layer of its own: `Conv2D(32, 3, padding='same', activation='relu')` is `conv(32, 3, pad=same) relu`; with a stride, the padding is given as numbers (`strides=2, padding='same'` on an even size pads the bottom and right only, `stride=2, pad=[0, 1, 0, 1]` for a 3×3 kernel; `pad=1` gives the same shapes, its windows a pixel apart); Keras's default `padding='valid'` is `pad=0`, cnnc's default",
        "Conv2DTranspose" => "`convT(filters, kernel, stride=…, pad=…)`: `Conv2DTranspose(64, 2, strides=2)` is `convT(64, 2, stride=2)`",
        "DepthwiseConv2D" => "a conv with a group per channel: `DepthwiseConv2D(3, padding='same')` is `conv(in.c, 3, pad=same, groups=in.c)`",
        "SeparableConv2D" => "a depthwise conv and a 1×1 conv: `SeparableConv2D(64, 3, padding='same')` is `conv(in.c, 3, pad=same, groups=in.c, bias=false) conv(64, 1)`",
        "MaxPooling2D" | "MaxPool2D" => "`maxpool(pool_size, stride=…)`; as in Keras, the stride defaults to the window: `MaxPooling2D(2)` is `maxpool(2)`",
        "AveragePooling2D" | "AvgPool2D" => "`avgpool(pool_size, stride=…)`; as in Keras, the stride defaults to the window: `AveragePooling2D(2)` is `avgpool(2)`; with `padding='same'` Keras leaves the padding out of each average, `AveragePooling2D(3, strides=1, padding='same')` is `avgpool(3, stride=1, pad=1, count_include_pad=false)`",
        "GlobalAveragePooling2D" | "GlobalAvgPool2D" => "`global_avgpool flatten`: `global_avgpool` keeps an image of one pixel, [C, 1, 1], and `flatten` makes the vector that Keras's layer gives",
        "GlobalMaxPooling2D" | "GlobalMaxPool2D" => "`global_maxpool flatten`: `global_maxpool` keeps an image of one pixel, [C, 1, 1], and `flatten` makes the vector that Keras's layer gives",
        "BatchNormalization" => "`batchnorm`; Keras's `momentum=0.99` (the share of the old running mean) is cnnc's and PyTorch's `momentum=0.01`, and its `epsilon=1e-3` is `eps=1e-3`",
        "LayerNormalization" => "`layernorm` over the channels of each pixel (Keras's default `axis=-1` on channels-last images)",
        "GroupNormalization" => "`groupnorm(groups)`",
        "Activation" => "the activation itself, a layer of its own: `Activation('relu')` is `relu`",
        "Cropping2D" => "a crop of a named tensor to the current size: `crop(NAME)` takes the centre, as U-Net's copy-and-crop skips do (`… as e1 … concat { crop(e1) {} }`; an odd difference leaves the extra row and column at the end)",
        "InputLayer" | "Input" => "the model's header: the input's shape without the batch, channels first, so `Input(shape=(28, 28, 1))` is `model M(input: [1, 28, 28]) { … }`; in the body, the input tensor is `input`, in lower case",
        "Rescaling" => "`scale(k)` for a factor, `Rescaling(1/255)` is `scale(1.0 / 255)` (`cnnc train` already reads pixels as [0, 1]); with an offset, `Rescaling(1/127.5, offset=-1)` is `normalize(mean=127.5, std=127.5)`",
        "Normalization" => "`normalize(mean, std)`, with the mean and the standard deviation (the square root of Keras's variance) that `adapt` found, one number for every channel or a list with one per channel",
        "ZeroPadding2D" => "`pad(p)`; Keras's `((top, bottom), (left, right))` is cnnc's list `[top, bottom, left, right]`",
        "UpSampling2D" => "`upsample(factor)`: `UpSampling2D(2)` and `UpSampling2D(size=2)` are `upsample(2)` (cnnc's own `size=` is the output's height and width), and `interpolation='bilinear'` is `bilinear=true` beside it",
        "SpatialDropout2D" => "`dropout(rate)`, which zeroes single values: Keras's `SpatialDropout2D` zeroes whole channels, which cnnc does not do (the two differ in training only)",
        "Concatenate" => "`concat { {branch} {branch} … }`: each braced branch takes the same input, and the outputs are joined along the channels",
        "Add" => "`residual { body }` (body(x) + x), with `shortcut { … }` for a projection",
        "Multiply" => "a gate: `gate { … sigmoid }` multiplies the input by what its body makes of it",
        _ => return None,
    };
    Some(format!("`{name}` is Keras's name; cnnc writes {how}"))
}

/// What to write instead of a well-known layer cnnc does not have (`mish`, `upsample`,
/// `LayerNorm`, `GlobalMaxPool`, `cat`, …), matched ignoring case and underscores: the help
/// of an unknown layer where a near name would mislead (`mish` is not `relu`).
pub fn missing_layer_hint(name: &str) -> Option<String> {
    let key: String = name
        .chars()
        .filter(|&c| c != '_')
        .flat_map(char::to_lowercase)
        .collect();
    let activations =
        "relu, relu6, leaky_relu, prelu, elu, sigmoid, hardsigmoid, tanh, silu, hardswish, mish, \
         gelu and softmax";
    let hint = match key.as_str() {
        "swish" => "swish is `silu` (x·sigmoid(x), PyTorch's `SiLU`)".to_string(),
        "separableconv" | "separableconv2d" | "sepconv" => "a depthwise separable conv is a \
            depthwise conv and a 1×1 conv: `conv(in.c, 3, pad=1, groups=in.c) conv(64, 1)` \
            (Keras's `SeparableConv2D(64, 3, padding='same')`)"
            .to_string(),
        "depthwiseconv" | "depthwiseconv2d" | "dwconv" => "a depthwise conv is a conv with a \
            group per channel: `conv(in.c, 3, pad=1, groups=in.c)`"
            .to_string(),
        // Also with PyTorch's and TensorFlow's `2d` (`conv_transpose2d`, `conv2d_transpose`).
        k if matches!(
            k.replace("2d", "").as_str(),
            "tconv"
                | "deconv"
                | "deconvolution"
                | "convt"
                | "convtranspose"
                | "transposeconv"
                | "transposedconv"
                | "convtransposed"
                | "transposedconvolution"
                | "upconv"
        ) =>
        {
            "the transposed convolution is `convT(out_channels, kernel, stride=…, pad=…, \
             output_pad=…)`: `convT(64, 2, stride=2)` doubles the height and width, as U-Net's \
             up-convolutions do"
                .to_string()
        }
        "softplus" | "selu" | "celu" | "softsign" | "hardtanh" | "logsigmoid" => {
            format!("cnnc has no `{name}`; its activations are {activations}")
        }
        "mul" | "multiply" | "squeezeexcitation" | "squeezeexcite" | "seblock" => {
            "a product of the input and what a few layers make of it is a gate: `gate { \
             global_avgpool conv(c / 4, 1) relu conv(c, 1) sigmoid }` (squeeze-and-excitation; \
             c the input's channels); a product with a constant is `scale(k)`"
                .to_string()
        }
        "layerscale" | "constantscale" | "scalar" | "rescale" | "mulconstant" => {
            "a constant factor is `scale(k)` (Inception-ResNet's `x + 0.17 * f(x)` is `residual \
             { … scale(0.17) }`); a learned one per channel is `layer_scale(init)` (ConvNeXt's \
             `layer_scale`, `layer_scale(1e-6)`); a product with what layers make of the input \
             is a gate, `gate { … sigmoid }`"
                .to_string()
        }
        "logsoftmax" => "cnnc has no `log_softmax`: end the model with its last `linear` (the \
                         logits); `cnnc train` applies softmax cross-entropy itself"
            .to_string(),
        "interpolate" | "upsamplingbilinear2d" | "resize" => format!(
            "cnnc has no `{name}`; `upsample(scale)` repeats each pixel and `upsample(scale, \
             bilinear=true)` interpolates (PyTorch's `interpolate(x, scale_factor=2, \
             mode='bilinear')`; add `align_corners=true` for its `align_corners=True`, which \
             `UpsamplingBilinear2d` always uses), both by a whole factor; `size=[h, w]` in place \
             of the scale resamples to a size (`interpolate(x, size=(h, w))`); a transposed conv \
             learns the upsampling: `convT(64, 2, stride=2)` doubles the height and width, as \
             U-Net's up-convolutions do"
        ),
        "depthtospace" => "a depth-to-space rearrangement is `pixel_shuffle(r)` (PyTorch's \
                           `PixelShuffle(r)`, ONNX's DepthToSpace in CRD mode); its inverse is \
                           `pixel_unshuffle(r)`"
            .to_string(),
        "spacetodepth" => "a space-to-depth rearrangement is `pixel_unshuffle(r)` (PyTorch's \
                           `PixelUnshuffle(r)`); its inverse is `pixel_shuffle(r)`"
            .to_string(),
        "maxunpool2d" | "maxunpool" => format!(
            "cnnc has no `{name}` (SegNet's unpooling at a max pooling's indices); a learned \
             upsampling takes its place as in U-Net: `convT(64, 2, stride=2)` doubles the \
             height and width"
        ),
        "chunk" | "split" | "narrow" | "select" | "tensorsplit" => format!(
            "cnnc has no `{name}`: a part of the channels (or features) is `slice(start, end)`, \
             PyTorch's `x[:, start:end]`; ShuffleNet's split into halves is `concat {{ \
             slice(0, in.c / 2) {{ slice(in.c / 2, in.c) … }} }}`"
        ),
        "shuffle" | "channelshuffle2d" => {
            "a channel shuffle is `channel_shuffle(groups)` (PyTorch's `ChannelShuffle`)"
                .to_string()
        }
        "permute" | "transpose" => "cnnc's tensors stay channels first, [C, H, W], and need \
                                    no permute: the channels-last round trip of PyTorch's \
                                    ConvNeXt block (`permute(0, 2, 3, 1)`, `nn.Linear`, \
                                    `nn.LayerNorm`, back) is `conv(n, 1)` and `layernorm` on \
                                    the channels directly"
            .to_string(),
        "reshape" | "view" | "unflatten" | "squeeze" | "unsqueeze" => {
            format!(
                "cnnc has no `{name}`: tensors are images [C, H, W] and vectors [F], and only \
             `flatten` turns one into the other; an image of one pixel, [F, 1, 1], is what a \
             vector becomes to `conv` (write the model's input so, `input: [F, 1, 1]`); a \
             linear layer reshaped to an image (a generator's `Dense` and `Reshape`) is \
             `convT(C, [h, w])` on such a one-pixel input"
            )
        }
        "layernorm" | "layernorm2d" => format!("`{name}` is {LAYERNORM}"),
        "lrn" | "localresponsenorm" => format!(
            "cnnc has no `{name}`; its normalization layer is `batchnorm` (d2l's AlexNet drops \
             the original's local response normalization)"
        ),
        "globalmaxpool" | "globalmaxpool2d" => "a global max pooling is `global_maxpool` (to \
                                                one pixel, [C, 1, 1]; `flatten` after it \
                                                gives the vector)"
            .to_string(),
        "adaptivemaxpool" | "adaptivemaxpool2d" => {
            "an adaptive max pooling is `adaptive_maxpool(output)`, e.g. \
             `adaptive_maxpool([6, 6])`"
                .to_string()
        }
        "cat" | "concatenate" | "stack" => {
            "concatenation is `concat { {branch} {branch} … }`: each braced branch takes the \
             same input, and the outputs are joined along the channels"
                .to_string()
        }
        "add" | "sum" => "a sum with the input is `residual { body }` (body(x) + x), with \
                          `shortcut { … }` for a projection"
            .to_string(),
        "identity" => "in a sequence of layers, delete it; as a branch of a concat or a \
                       shortcut, the identity is an empty branch, `{}`; to keep the tensor a \
                       block starts from for later, `residual { … }` adds it back, and a \
                       block can take it as a parameter, `block b(x, c)` called as `b(t, 16)`"
            .to_string(),
        "sequential" | "modulelist" => {
            "layers in a row are simply written one after another; `block Name(params) { … }` \
             names a group to reuse; branches made in a loop and joined (`torch.cat([b(x) for \
             b in branches], 1)`) are a repeat written as a concat's branch, `concat { repeat \
             r in [6, 12] { conv(64, 3, pad=r, dilation=r) } }`"
                .to_string()
        }
        "dropout2d" | "dropout3d" | "spatialdropout" | "spatialdropout2d" | "channeldropout" => {
            format!(
                "cnnc has no `{name}`: its `dropout(p)` zeroes single values, where PyTorch's \
                 `Dropout2d` zeroes whole channels (the two differ in training only)"
            )
        }
        "zeropad" | "zeropad2d" | "padding" => "zero padding is `pad(p)` (`pad([h, w])`, \
            `pad([top, bottom, left, right])`), or the `pad=…` of the conv or pooling that \
            needs it"
            .to_string(),
        "constantpad2d" => "`pad(p)` pads with zeros; padding with another constant is not \
                            supported"
            .to_string(),
        "reflectionpad2d" | "reflectionpad" | "reflectpad" | "reflectpad2d" => {
            "reflection padding is `pad(p, reflect=true)`".to_string()
        }
        "replicationpad2d" | "replicationpad" | "replicatepad" | "replicatepad2d" => {
            "replication padding is `pad(p, replicate=true)`".to_string()
        }
        "circularpad2d" => {
            format!("cnnc has no `{name}`: `pad` pads with zeros, by reflection or by replication")
        }
        "conv1d" | "conv3d" | "maxpool1d" | "maxpool3d" | "avgpool1d" | "avgpool3d"
        | "batchnorm3d" => format!("cnnc is for 2-D images only: it has no `{name}`"),
        // Short names from papers and code: nearer to other layers by edit distance (`drop`
        // is one letter from `crop`, `lrelu` from `relu`) than to what they mean.
        "fc" | "dense" | "fullyconnected" | "innerproduct" => {
            "a fully connected layer is `linear(out_features)`: the input features are \
             inferred (`flatten` first on an image)"
                .to_string()
        }
        "bn" | "bn2d" | "batchnormalization" => {
            "batch normalization is `batchnorm`: the features are inferred, so it takes no \
             number"
                .to_string()
        }
        "gap" | "globalaveragepooling" | "globalaveragepooling2d" | "avgpoolglobal" => {
            "a global average pooling is `global_avgpool` (to one pixel, [C, 1, 1]; `flatten` \
             after it gives the vector)"
                .to_string()
        }
        "gmp" => "a global max pooling is `global_maxpool` (to one pixel, [C, 1, 1])".to_string(),
        "drop" => "dropout is `dropout(p)`, p the probability of zeroing a value".to_string(),
        "lrelu" | "leaky" => "the leaky ReLU is `leaky_relu` (`leaky_relu(alpha=0.2)` for \
                              another slope than 0.01)"
            .to_string(),
        _ => return None,
    };
    Some(hint)
}

/// The help of `pad=same` on a transposed conv: the padding and `output_pad` that make the
/// output the input times the stride, which is what Keras's `Conv2DTranspose(…,
/// padding='same')` gives.
fn conv_transpose_same_help(kernel: [u64; 2], stride: [u64; 2], dilation: [u64; 2]) -> String {
    // out = (n − 1)·s − 2p + d·(k − 1) + 1 + output_pad = n·s  ⇔  2p − output_pad = reach − s.
    let fit = |a: usize| {
        let reach = dilation[a]
            .saturating_mul(kernel[a].max(1) - 1)
            .saturating_add(1);
        let (p, extra) = if reach >= stride[a] {
            let p = (reach - stride[a]).div_ceil(2);
            (p, (reach - stride[a]) % 2)
        } else {
            (0, stride[a] - reach)
        };
        // ONNX and PyTorch take an output_pad below the stride or the dilation.
        (extra < stride[a].max(dilation[a])).then_some((p, extra))
    };
    let what = "the padding explicitly (PyTorch's ConvTranspose2d has no 'same' either)";
    let (Some(h), Some(w)) = (fit(0), fit(1)) else {
        // An even kernel at stride 1: the padding differs between the sides.
        let side = |a: usize| {
            let reach = dilation[a]
                .saturating_mul(kernel[a].max(1) - 1)
                .saturating_add(1);
            let total = reach.saturating_sub(stride[a]);
            (total / 2, total - total / 2)
        };
        let ((top, bottom), (left, right)) = (side(0), side(1));
        return format!(
            "give {what}: this kernel needs more padding on one side than the other, \
             `pad=[{top}, {bottom}, {left}, {right}]` (top, bottom, left, right) makes the \
             output the input times the stride, as Keras's `padding='same'` does"
        );
    };
    let both = |a: u64, b: u64| {
        if a == b {
            a.to_string()
        } else {
            format!("[{a}, {b}]")
        }
    };
    let output_pad = if (h.1, w.1) == (0, 0) {
        String::new()
    } else {
        format!(", output_pad={}", both(h.1, w.1))
    };
    let times = if stride[0] == stride[1] {
        format!("{}", stride[0])
    } else {
        format!("{}×{}", stride[0], stride[1])
    };
    // An odd number of pixels to take off (kernel 3, stride 2): TensorFlow takes the odd one
    // at the bottom and right, where `pad=p, output_pad=1` takes p on both sides and adds
    // one back at the end, a pixel shifted; the padding list is Keras's exactly.
    let tf_sides = |a: usize| {
        let reach = dilation[a]
            .saturating_mul(kernel[a].max(1) - 1)
            .saturating_add(1);
        let total = reach.checked_sub(stride[a])?;
        Some((total / 2, total - total / 2))
    };
    if let (Some((top, bottom)), Some((left, right))) = (tf_sides(0), tf_sides(1)) {
        if top != bottom || left != right {
            return format!(
                "give {what}: `pad=[{top}, {bottom}, {left}, {right}]` (top, bottom, left, \
                 right) makes the output the input times {times} with the pixels of Keras's \
                 `padding='same'`; `pad={}{output_pad}`, PyTorch's way, gives that size too, \
                 its output shifted by a pixel",
                both(h.0, w.0)
            );
        }
    }
    format!(
        "give {what}: `pad={}{output_pad}` makes the output the input times {times}, as \
             Keras's `padding='same'` does",
        both(h.0, w.0)
    )
}

/// The help of `pad=same` on a strided conv of `kernel` on an input of `size`: the padding of
/// Keras's and TensorFlow's `padding='same'` (⌈n / stride⌉ out, the odd pixel of padding at
/// the bottom and right), and the symmetric padding PyTorch writes where it gives that size
/// too.
fn tensorflow_same_help(size: [u64; 2], kernel: Pair, stride: Pair, dilation: Pair) -> String {
    let mut out = [0u64; 2];
    let mut sides = [[0u64; 2]; 2];
    let mut symmetric = [0u64; 2];
    let mut symmetric_fits = true;
    for a in 0..2 {
        let (n, s, reach) = (
            size[a],
            stride[a].max(1),
            dilation[a] * (kernel[a].max(1) - 1),
        );
        out[a] = n.div_ceil(s);
        let total = ((out[a] - 1) * s + reach + 1).saturating_sub(n);
        sides[a] = [total / 2, total - total / 2];
        symmetric[a] = reach / 2;
        let symmetric_out = (n + 2 * symmetric[a]).saturating_sub(reach + 1) / s + 1;
        symmetric_fits &= symmetric_out == out[a];
    }
    let pad = if sides[0][0] == sides[0][1] && sides[1][0] == sides[1][1] {
        if sides[0] == sides[1] {
            sides[0][0].to_string()
        } else {
            format!("[{}, {}]", sides[0][0], sides[1][0])
        }
    } else {
        format!(
            "[{}, {}, {}, {}]",
            sides[0][0], sides[0][1], sides[1][0], sides[1][1]
        )
    };
    let order = if pad.matches(',').count() == 3 {
        " ([top, bottom, left, right])"
    } else {
        ""
    };
    let mut help = format!(
        "with a stride, give the padding explicitly: Keras's and TensorFlow's `padding='same'` \
         on this {}×{} input is `pad={pad}`{order}, which gives {}×{}",
        size[0], size[1], out[0], out[1]
    );
    let written = if symmetric[0] == symmetric[1] {
        symmetric[0].to_string()
    } else {
        format!("[{}, {}]", symmetric[0], symmetric[1])
    };
    if symmetric_fits && pad != written {
        // With an odd reach, half of it on each side gives ⌈n / stride⌉ at every n: the form
        // for a block called at several sizes, where the list fits this one only.
        let every_size = (0..2).all(|a| (dilation[a] * (kernel[a].max(1) - 1)).is_multiple_of(2));
        help.push_str(&format!(
            "; `pad={written}` (both sides alike, as PyTorch pads) gives that size too, its \
             windows shifted by the difference{}",
            if every_size {
                ", and does at every input size (the list is for this one: in a block called \
                 at several sizes, write this)"
            } else {
                ""
            }
        ));
    }
    help
}

/// The help of `pad=same` on a pooling (`layer`) of `kernel` and `stride`: the padding that
/// does what was meant, for this window.
fn pool_same_help(layer: &str, kernel: [u64; 2], stride: [u64; 2]) -> String {
    let window = format!("{}×{}", kernel[0], kernel[1]);
    if stride != [1, 1] {
        return format!(
            "give the padding explicitly: with stride {} the size shrinks whatever the padding \
             (as PyTorch's pooling, which has no `same` either); `pad=0` drops a last partial \
             window, `ceil=true` keeps it, `pad=p` (at most half the window) adds p on each side",
            if stride[0] == stride[1] {
                stride[0].to_string()
            } else {
                format!("{stride:?}")
            }
        );
    }
    // k − 1 in all, the odd one at the end (bottom, right), as Keras's and TensorFlow's
    // `padding='same'` puts it; at most half the window on a side, as pooling allows.
    let (begin, end) = (kernel.map(|k| (k - 1) / 2), kernel.map(|k| k / 2));
    let pad = if begin != end {
        format!("[{}, {}, {}, {}]", begin[0], end[0], begin[1], end[1])
    } else if begin[0] == begin[1] {
        begin[0].to_string()
    } else {
        format!("[{}, {}]", begin[0], begin[1])
    };
    let mut help = format!(
        "give the padding explicitly: `pad={pad}` keeps the size with this {window} window"
    );
    if begin != end {
        help.push_str(
            " (an even window is padded one more at the bottom and right, as Keras pads it)",
        );
    }
    if layer == "avgpool" {
        help.push_str(
            "; Keras's `padding='same'` also leaves the padding out of each average: add \
             `count_include_pad=false` (PyTorch's default counts it)",
        );
    }
    help
}

/// The help of a whole-number argument that a division inside it rounded down to 0.
const FLOORED_TO_ZERO: &str = "`/` is floor division on integers, so a quotient here may have \
                               rounded down to 0; multiply before dividing (`a * b / c`, not \
                               `a * (b / c)`); ";

/// How PyTorch's `LayerNorm` is written.
const LAYERNORM: &str = "`layernorm`: each sample is normalized at each pixel over its channels \
                         (ConvNeXt's `LayerNorm2d`, PyTorch's `LayerNorm(C)` on channels-last \
                         values), and a vector over its features (`LayerNorm(F)`); the size is \
                         inferred, so it takes no number. A `LayerNorm([C, H, W])` over the \
                         whole sample is nearest to `groupnorm(1)`, whose scale and shift are \
                         per channel, not per value";

/// The help of `softmax(dim=1)` and `softmax(1)`.
const SOFTMAX_DIM: &str = "cnnc's softmax is over the channels of an image or the features of \
                           a vector (PyTorch's dim=1), and takes no arguments: write `softmax`";

/// PyTorch argument names users type from habit, and cnnc's name for each.
const ALIASES: &[(&str, &str)] = &[
    ("padding", "pad"),
    ("kernel_size", "kernel"),
    ("out_channels", "out"),
    ("out_features", "out"),
    ("output_padding", "output_pad"),
    ("ceil_mode", "ceil"),
    ("negative_slope", "alpha"),
    ("output_size", "output"),
    ("scale_factor", "scale"),
    ("rate", "p"),
    ("upscale_factor", "factor"),
    ("downscale_factor", "factor"),
    // Keras's.
    ("filters", "out"),
    ("units", "out"),
    ("pool_size", "kernel"),
    ("strides", "stride"),
    ("dilation_rate", "dilation"),
    ("use_bias", "bias"),
    ("epsilon", "eps"),
];

/// The bound, converted arguments of one call, by parameter index.
struct Bound {
    values: Vec<Option<(Value, Span)>>,
}

impl Bound {
    fn get(&self, spec: &LayerSpec, name: &str) -> Option<&Value> {
        let i = spec.params.iter().position(|p| p.name == name)?;
        self.values[i].as_ref().map(|(v, _)| v)
    }
}

/// Binds and checks `call`'s arguments against `spec` and builds the op. Reports every
/// problem of the call; `None` if there was any.
pub fn build(
    spec: &'static LayerSpec,
    call: &ast::Call,
    env: &Env,
    incoming: Option<&Shape>,
    diags: &mut Diagnostics,
) -> Option<Op> {
    let bound = bind(spec, call, env, incoming, diags)?;
    warn_pytorch_order(spec, call, &bound, incoming, diags);
    let pair = |name: &str, default: Pair| -> Pair {
        match bound.get(spec, name) {
            Some(v) => to_pair(v).expect("checked by bind"),
            None => default,
        }
    };
    let int = |name: &str, default: u64| -> u64 {
        match bound.get(spec, name) {
            Some(Value::Int(n)) => *n as u64,
            _ => default,
        }
    };
    let boolean = |name: &str, default: bool| -> bool {
        match bound.get(spec, name) {
            Some(Value::Bool(b)) => *b,
            _ => default,
        }
    };
    let number = |name: &str, default: f64| -> f64 {
        match bound.get(spec, name) {
            Some(Value::Int(n)) => *n as f64,
            Some(Value::Float(x)) => *x,
            _ => default,
        }
    };
    let numbers = |name: &str| -> Vec<f64> {
        match bound.get(spec, name) {
            Some(Value::List(items)) => items.iter().filter_map(self::number).collect(),
            Some(v) => self::number(v).into_iter().collect(),
            None => Vec::new(),
        }
    };
    let arg_span = |name: &str| {
        let i = spec.params.iter().position(|p| p.name == name)?;
        bound.values[i].as_ref().map(|(_, s)| *s)
    };
    let pad_span = || arg_span("pad");
    // Resolves `pad` (incl. `same`) for a kernel and dilation.
    let pads = |kernel: Pair,
                dilation: Pair,
                stride: Pair,
                diags: &mut Diagnostics|
     -> Option<Pads> {
        match bound.get(spec, "pad") {
            None => Some(Pads::default()),
            Some(Value::Same) => {
                if stride != [1, 1] {
                    diags.push(
                        Diagnostic::error(
                            "cnnc::elab::argument_value",
                            format!(
                                "`pad=same` needs stride 1, but `{}` has stride {}",
                                spec.name,
                                fmt_pair(stride)
                            ),
                        )
                        .label(pad_span().unwrap_or(call.span), "same padding")
                        .help({
                            // d·(k−1)/2 per axis: the padding that keeps the size at stride 1,
                            // ⌈n / stride⌉ for an odd kernel, as TensorFlow's SAME gives.
                            let keep = |a: usize| dilation[a] * (kernel[a].max(1) - 1) / 2;
                            let (h, w) = (keep(0), keep(1));
                            let pad = if h == w {
                                h.to_string()
                            } else {
                                format!("[{h}, {w}]")
                            };
                            match incoming.and_then(Shape::spatial) {
                                Some(size) => tensorflow_same_help(size, kernel, stride, dilation),
                                None => format!(
                                    "with a stride, give the padding explicitly: `pad={pad}` for \
                                 this {}×{} kernel{}",
                                    kernel[0],
                                    kernel[1],
                                    if dilation != [1, 1] {
                                        format!(" with dilation {}", fmt_pair(dilation))
                                    } else {
                                        String::new()
                                    }
                                ),
                            }
                        }),
                    );
                    return None;
                }
                // d·(k−1) (below 2^64: both are below 2^32) on each side: at most what an
                // explicit pad may be (< 2^32), so the padded size and ONNX's int64
                // arithmetic on it cannot overflow.
                let too_wide = (0..2).find(|&a| {
                    dilation[a] * (kernel[a] - 1) - dilation[a] * (kernel[a] - 1) / 2
                        > u32::MAX as u64
                });
                if let Some(a) = too_wide {
                    let total = dilation[a] * (kernel[a] - 1);
                    diags.push(
                        Diagnostic::error(
                            "cnnc::elab::argument_value",
                            format!(
                                "`pad=same` would pad the {} by {} on a side: dilation {} × \
                                 (kernel {} − 1) = {total}, and a padding must be below 2^32",
                                ["height", "width"][a],
                                total - total / 2,
                                dilation[a],
                                kernel[a]
                            ),
                        )
                        .label(pad_span().unwrap_or(call.span), "same padding")
                        .help("reduce the dilation or the kernel"),
                    );
                    return None;
                }
                let mut p = Pads::default();
                let mut even = false;
                for a in 0..2 {
                    let total = dilation[a] * (kernel[a] - 1);
                    p.begin[a] = total / 2;
                    p.end[a] = total - total / 2;
                    // Odd total padding (an even kernel, unless an even dilation evens it).
                    even |= p.begin[a] != p.end[a];
                }
                if even {
                    diags.push(
                        Diagnostic::warning(
                            "cnnc::shape::even_kernel_same",
                            format!("`pad=same` with the even kernel {} pads asymmetrically", fmt_pair(kernel)),
                        )
                        .label(call.span, format!("padding {:?} before, {:?} after", p.begin, p.end))
                        .help("the extra row and column go at the end, as in PyTorch; use an odd kernel for symmetric padding"),
                    );
                }
                Some(p)
            }
            Some(v) => to_pads(v),
        }
    };
    let op = match spec.name {
        "conv" => {
            let (kernel, stride, dilation) = (
                pair("kernel", [1, 1]),
                pair("stride", [1, 1]),
                pair("dilation", [1, 1]),
            );
            Op::Conv(ConvAttrs {
                out_channels: int("out", 1),
                kernel,
                stride,
                pads: pads(kernel, dilation, stride, diags)?,
                dilation,
                groups: int("groups", 1),
                bias: boolean("bias", true),
            })
        }
        "convT" => {
            let (kernel, stride, dilation) = (
                pair("kernel", [1, 1]),
                pair("stride", [1, 1]),
                pair("dilation", [1, 1]),
            );
            if bound.get(spec, "pad") == Some(&Value::Same) {
                diags.push(
                    Diagnostic::error(
                        "cnnc::elab::argument_value",
                        "`convT` does not take `pad=same`",
                    )
                    .label(pad_span().unwrap_or(call.span), "here")
                    .help(conv_transpose_same_help(kernel, stride, dilation)),
                );
                return None;
            }
            Op::ConvTranspose(ConvTransposeAttrs {
                out_channels: int("out", 1),
                kernel,
                stride,
                pads: pads(kernel, dilation, stride, diags)?,
                output_pad: pair("output_pad", [0, 0]),
                dilation,
                groups: int("groups", 1),
                bias: boolean("bias", true),
            })
        }
        "maxpool" | "avgpool" => {
            let kernel = pair("kernel", [1, 1]);
            let stride = pair("stride", kernel);
            if bound.get(spec, "pad") == Some(&Value::Same) {
                diags.push(
                    Diagnostic::error(
                        "cnnc::elab::argument_value",
                        format!("`{}` does not take `pad=same`", spec.name),
                    )
                    .label(pad_span().unwrap_or(call.span), "here")
                    .help(pool_same_help(spec.name, kernel, stride)),
                );
                return None;
            }
            let attrs = PoolAttrs {
                kernel,
                stride,
                pads: pads(kernel, [1, 1], stride, diags)?,
                ceil: boolean("ceil", false),
                count_pad: spec.name == "maxpool" || boolean("count_include_pad", true),
            };
            if spec.name == "maxpool" {
                Op::MaxPool(attrs)
            } else {
                Op::AvgPool(attrs)
            }
        }
        "adaptive_avgpool" => Op::AdaptiveAvgPool {
            output: pair("output", [1, 1]),
        },
        "global_avgpool" => Op::GlobalAvgPool,
        "adaptive_maxpool" => Op::AdaptiveMaxPool {
            output: pair("output", [1, 1]),
        },
        "global_maxpool" => Op::GlobalMaxPool,
        "batchnorm" => Op::BatchNorm {
            eps: number("eps", 1e-5),
            momentum: number("momentum", 0.1),
            affine: boolean("affine", true),
        },
        "groupnorm" => Op::GroupNorm {
            groups: Some(int("groups", 1)),
            eps: number("eps", 1e-5),
            affine: boolean("affine", true),
        },
        // PyTorch's InstanceNorm2d learns no scale and shift by default (GroupNorm does).
        "instancenorm" => Op::GroupNorm {
            groups: None,
            eps: number("eps", 1e-5),
            affine: boolean("affine", false),
        },
        "layernorm" => Op::LayerNorm {
            eps: number("eps", 1e-5),
            affine: boolean("affine", true),
        },
        "layer_scale" => Op::LayerScale {
            init: number("init", 1.0),
        },
        "relu" => Op::Relu,
        "sigmoid" => Op::Sigmoid,
        "tanh" => Op::Tanh,
        "leaky_relu" => Op::LeakyRelu {
            alpha: number("alpha", 0.01),
        },
        "elu" => Op::Elu {
            alpha: number("alpha", 1.0),
        },
        "silu" => Op::Silu,
        "mish" => Op::Mish,
        "scale" => Op::Scale {
            factor: number("factor", 1.0),
        },
        "normalize" => Op::Normalize {
            mean: numbers("mean"),
            std: numbers("std"),
        },
        "prelu" => Op::Prelu {
            per_channel: boolean("per_channel", false),
        },
        "gelu" => Op::Gelu,
        "relu6" => Op::Relu6,
        "hardsigmoid" => Op::HardSigmoid,
        "hardswish" => Op::HardSwish,
        "softmax" => Op::Softmax,
        "dropout" => Op::Dropout {
            p: number("p", 0.5),
        },
        "flatten" => Op::Flatten,
        "pad" => {
            let (reflect, replicate) = (boolean("reflect", false), boolean("replicate", false));
            let mode = match (reflect, replicate) {
                (false, false) => PadMode::Zeros,
                (true, false) => PadMode::Reflect,
                (false, true) => PadMode::Replicate,
                (true, true) => {
                    diags.push(
                        Diagnostic::error(
                            "cnnc::elab::argument_value",
                            "`pad` reflects or replicates, not both",
                        )
                        .label(arg_span("replicate").unwrap_or(call.span), "here")
                        .help(
                            "`reflect=true` mirrors the input about its edge (PyTorch's \
                             `ReflectionPad2d`), `replicate=true` repeats the edge \
                             (`ReplicationPad2d`); without either, the padding is zeros",
                        ),
                    );
                    return None;
                }
            };
            let pads = bound.get(spec, "pad").and_then(to_pads).unwrap_or_default();
            Op::Pad { pads, mode }
        }
        "slice" => Op::Slice {
            start: int("start", 0),
            end: int("end", 1),
        },
        "channel_shuffle" => Op::ChannelShuffle {
            groups: int("groups", 1),
        },
        "pixel_shuffle" | "pixel_unshuffle" => Op::PixelShuffle {
            factor: int("factor", 1),
            unshuffle: spec.name == "pixel_unshuffle",
        },
        "upsample" => {
            let align_corners = bound
                .get(spec, "align_corners")
                .map(|_| boolean("align_corners", false));
            let mode = if boolean("bilinear", false) {
                UpsampleMode::Bilinear {
                    align_corners: align_corners.unwrap_or(false),
                }
            } else {
                // `align_corners=false` is the default that does nothing here; `true` asks
                // for what nearest-neighbour upsampling cannot do.
                if let Some(align @ true) = align_corners {
                    diags.push(
                        Diagnostic::error(
                            "cnnc::elab::argument_value",
                            "`align_corners` is an option of bilinear upsampling",
                        )
                        .label(arg_span("align_corners").unwrap_or(call.span), "here")
                        .help(format!(
                            "set `bilinear=true` (PyTorch's `mode='bilinear'`), or leave \
                             `align_corners={align}` out: nearest-neighbour upsampling repeats \
                             each pixel and has no corners to align, and PyTorch refuses it too"
                        )),
                    );
                    return None;
                }
                UpsampleMode::Nearest
            };
            let to = match (arg_span("scale"), arg_span("size")) {
                (Some(_), None) => UpsampleTo::Scale(pair("scale", [1, 1])),
                (None, Some(_)) => UpsampleTo::Size(pair("size", [1, 1])),
                (Some(scale), Some(size)) => {
                    diags.push(
                        Diagnostic::error(
                            "cnnc::elab::argument_count",
                            "`upsample` takes a `scale` or a `size`, not both",
                        )
                        .label(scale, "a scale")
                        .label(size, "and a size")
                        .help(
                            "keep one: `upsample(2)` doubles the height and the width, \
                             `upsample(size=[h, w])` resamples to h × w whatever comes in",
                        ),
                    );
                    return None;
                }
                (None, None) => {
                    diags.push(
                        Diagnostic::error(
                            "cnnc::elab::argument_count",
                            "`upsample` needs a `scale` or a `size`",
                        )
                        .label(call.span, "missing `scale` or `size`")
                        .help(UPSAMPLE_FORMS),
                    );
                    return None;
                }
            };
            Op::Upsample { to, mode }
        }
        "linear" => Op::Linear {
            out_features: int("out", 1),
            bias: boolean("bias", true),
        },
        other => unreachable!("layer `{other}` has no builder"),
    };
    Some(op)
}

fn fmt_pair(p: Pair) -> String {
    if p[0] == p[1] {
        p[0].to_string()
    } else {
        format!("[{}, {}]", p[0], p[1])
    }
}

/// How `spec` is called: `conv(out_channels, kernel, stride=…, …)`.
fn signature(spec: &LayerSpec) -> String {
    // `crop` takes a named tensor, which no parameter declares.
    if spec.name == "crop" {
        return "crop(NAME), NAME a tensor named earlier".to_string();
    }
    let ps: Vec<String> = spec
        .params
        .iter()
        .map(|p| {
            if p.required {
                p.name.to_string()
            } else {
                format!("{}=…", p.name)
            }
        })
        .collect();
    format!("{}({})", spec.name, ps.join(", "))
}

/// Arguments of other frameworks whose fix is to remove them and that change no layer's
/// output shape: the layer is checked without them (see [`bind`]).
const SHAPELESS_ARGUMENTS: [&str; 16] = [
    "activation",
    "kernel_initializer",
    "bias_initializer",
    "kernel_regularizer",
    "bias_regularizer",
    "activity_regularizer",
    "input_shape",
    "input_dim",
    "batch_input_shape",
    "data_format",
    "name",
    "inplace",
    "in_channels",
    "in_features",
    "num_features",
    "num_channels",
];

/// What cnnc does instead of a PyTorch argument it does not have, where a near name would
/// mislead (`padding_mode` is not `pad`).
fn unsupported_argument(layer: &str, argument: &str) -> Option<&'static str> {
    Some(match (layer, argument) {
        ("pad", "mode" | "padding_mode") => {
            "`pad` takes its mode as a flag: `reflect=true` (PyTorch's `mode='reflect'`), \
             `replicate=true` (`mode='replicate'`), neither for zeros"
        }
        ("pad", "circular") => {
            "circular padding is not supported: `pad` pads with zeros, \
                                 `reflect=true` or `replicate=true`"
        }
        ("pad", "value") => "`pad` pads with zeros; another constant is not supported",
        ("conv" | "convT", "padding_mode") => {
            "a conv's `pad` is zeros (PyTorch's default `padding_mode='zeros'`); for \
             `padding_mode='reflect'` or `'replicate'`, pad before the conv, `pad(1, \
             reflect=true) conv(c, 3)`; circular padding is not supported"
        }
        ("avgpool", "divisor_override") => "cnnc's avgpool divides by the window's size",
        ("maxpool", "dilation") => "cnnc's maxpool has no dilation (PyTorch's default 1)",
        ("maxpool", "return_indices") => "cnnc's maxpool returns the maximum values alone",
        // Keras's arguments of every layer.
        (_, "kernel_initializer" | "bias_initializer") => {
            "the weights are drawn when the model is exported or trained, for every layer at \
             once: `--init xavier` (Keras's default `glorot_uniform`), `--init kaiming` \
             (`he_uniform`; cnnc draws uniformly, so `he_normal` too is this) or `--init \
             default` (PyTorch's); remove the argument"
        }
        (_, "kernel_regularizer" | "bias_regularizer" | "activity_regularizer") => {
            "an L2 penalty on the weights is `cnnc train --weight-decay W` (for every \
             layer); remove the argument"
        }
        (_, "input_shape" | "input_dim" | "batch_input_shape") => {
            "the input's shape goes in the model's header, without the batch and channels \
             first: `model M(input: [1, 28, 28]) { … }` for Keras's `input_shape=(28, 28, \
             1)`; remove the argument"
        }
        (_, "data_format") => {
            "cnnc's images are always channels first, [C, H, W] (Keras's \
             `data_format='channels_first'`); remove the argument"
        }
        (_, "name") => {
            "cnnc names each layer itself, by its kind and count (`conv1`, `conv2`, … in \
             `cnnc summary` and in the ONNX model, `stage1.conv1` inside a block call); `as \
             NAME` after a layer names its tensor, to read it later; remove the argument"
        }
        _ => return None,
    })
}

/// The error for `n=…`, an argument `spec` does not have, with the fitting help (PyTorch's
/// names, a near name, the signature).
pub(crate) fn unknown_argument(spec: &LayerSpec, n: &ast::Ident, value: &ast::Expr) -> Diagnostic {
    let d = Diagnostic::error(
        "cnnc::elab::unknown_argument",
        format!("`{}` has no argument `{}`", spec.name, n.name),
    )
    .label(n.span, "unknown argument");
    // PyTorch's names this layer has a parameter for, matched exactly or misspelt
    // (`paddng` is `padding`, so `pad`), beside the layer's own names.
    let aliases = ALIASES
        .iter()
        .filter(|(_, to)| spec.params.iter().any(|p| p.name == *to));
    let suggestion = aliases
        .clone()
        .find(|(from, _)| *from == n.name)
        .map(|(_, to)| *to)
        .or_else(|| {
            let near = did_you_mean(
                &n.name,
                spec.params
                    .iter()
                    .map(|p| p.name)
                    .chain(aliases.clone().map(|(from, _)| *from)),
            )?;
            Some(
                aliases
                    .clone()
                    .find(|(from, _)| *from == near)
                    .map_or(near, |(_, to)| *to),
            )
        });
    if spec.name == "softmax" && n.name == "dim" {
        d.help(SOFTMAX_DIM)
    } else if spec.name == "relu" && n.name == "max_value" {
        d.help(
            "a ReLU capped at 6 (Keras's `max_value=6`, PyTorch's `ReLU6`) is cnnc's `relu6`; \
             other caps are not available",
        )
    } else if spec.name == "gelu" && n.name == "approximate" {
        d.help(
            "cnnc's gelu is the exact x·Φ(x) (PyTorch's default, \
             approximate='none'); the tanh approximation is not available: \
             write `gelu`",
        )
    } else if n.name == "activation" {
        // The activation given, where it is one of the activation layers (`activation=silu`);
        // Keras's `'linear'` (and `None`) is none at all.
        const ACTIVATIONS: [&str; 13] = [
            "relu",
            "relu6",
            "leaky_relu",
            "elu",
            "gelu",
            "silu",
            "mish",
            "prelu",
            "sigmoid",
            "tanh",
            "hardsigmoid",
            "hardswish",
            "softmax",
        ];
        let named = match &value.kind {
            ast::ExprKind::Var(v) => Some(v.to_ascii_lowercase()),
            _ => None,
        };
        let written = match &value.kind {
            ast::ExprKind::Var(v) => v.as_str(),
            _ => "",
        };
        // Keras's and PyTorch's other names of cnnc's activations.
        let alias = |v: &str| match v.replace('_', "").as_str() {
            "swish" => Some("silu"),
            "hardsigmoid" => Some("hardsigmoid"),
            "hardswish" | "hardsilu" => Some("hardswish"),
            "leakyrelu" => Some("leaky_relu"),
            _ => None,
        };
        match named.as_deref() {
            Some("linear" | "none" | "identity") => d.help(format!(
                "cnnc has no activation argument, and `{value}` is none: delete the argument \
                 (Keras's `activation='linear'` applies nothing)"
            )),
            Some(v) => {
                let given = lookup(v)
                    .map(|s| s.name)
                    .filter(|name| ACTIVATIONS.contains(name))
                    .or_else(|| alias(v));
                d.help(match given {
                    Some(given) => format!(
                        "cnnc has no activation argument: write the activation as the next \
                         layer, `{}(…) {given}` (for `activation={written}`){}",
                        spec.name,
                        if given == "leaky_relu" {
                            "; Keras's function slopes by 0.2 there, `leaky_relu(0.2)`, \
                             where cnnc's default is PyTorch's 0.01"
                        } else {
                            ""
                        }
                    ),
                    None => format!(
                        "cnnc has no activation argument, and no `{v}` activation: write one \
                         of its activations as the next layer, `{}(…) relu`; they are {}",
                        spec.name,
                        ACTIVATIONS.join(", ")
                    ),
                })
            }
            None => d.help(format!(
                "cnnc has no activation argument: write the activation as the next layer, \
                 `{}(…) relu` (Keras's `activation='relu'`)",
                spec.name
            )),
        }
    } else if (n.name == "axis" || n.name == "dim") && spec.name == "layernorm" {
        d.help(format!(
            "`layernorm` takes no axis: it is {LAYERNORM}; the signature is {}",
            signature(spec)
        ))
    } else if (n.name == "axis" || n.name == "dim")
        && matches!(
            spec.name,
            "batchnorm" | "instancenorm" | "groupnorm" | "prelu"
        )
    {
        d.help(format!(
            "`{}` works on the channels (PyTorch's dim 1, Keras's axis -1 on channels-last \
             images), the only axis it takes: remove `{}`",
            spec.name, n.name
        ))
    } else if spec.name == "upsample" && n.name == "interpolation" {
        d.help(
            "the interpolation is a switch: Keras's `interpolation='bilinear'` is \
             `bilinear=true`, and `'nearest'` is the default",
        )
    } else if spec.name == "upsample" && n.name == "mode" {
        d.help(format!(
            "the mode is a switch: PyTorch's `mode='bilinear'` is \
             `bilinear=true`, and `mode='nearest'` is the default; the \
             signature is {}",
            signature(spec)
        ))
    } else if let Some(help) = unsupported_argument(spec.name, &n.name) {
        d.help(format!("{help}; the signature is {}", signature(spec)))
    } else if matches!(
        n.name.as_str(),
        "in_channels" | "in_features" | "num_features" | "num_channels"
    ) {
        d.help(format!(
            "cnnc infers `{}` from the incoming tensor; remove it",
            n.name
        ))
    } else if n.name == "inplace" {
        d.help(format!(
            "cnnc's layers never change their input in place (the compiled graph decides \
             where values live), so there is nothing to ask for: remove `inplace`; the \
             signature is {}",
            signature(spec)
        ))
    } else if let Some(s) = suggestion {
        d.help(format!(
            "did you mean `{s}`? the signature is {}",
            signature(spec)
        ))
    } else {
        d.help(format!("the signature is {}", signature(spec)))
    }
}

fn bind(
    spec: &'static LayerSpec,
    call: &ast::Call,
    env: &Env,
    incoming: Option<&Shape>,
    diags: &mut Diagnostics,
) -> Option<Bound> {
    let mut values: Vec<Option<(Value, Span)>> = vec![None; spec.params.len()];
    let mut ok = true;
    let mut positional = 0;
    let mut extra: Vec<Span> = Vec::new();
    for arg in &call.args {
        let index = match &arg.name {
            // `BatchNorm2d(16)` habit: the feature count is inferred, eps and momentum are
            // named only, so `batchnorm(16)` cannot silently mean eps=16 (nor
            // `layernorm(64)`, PyTorch's `LayerNorm(64)`).
            None if matches!(spec.name, "batchnorm" | "instancenorm" | "layernorm") => {
                let (counted, options) = match spec.name {
                    "batchnorm" => ("features", "eps=1e-3, momentum=0.1"),
                    "layernorm" => ("channels (or features)", "eps=1e-6, affine=false"),
                    _ => ("channels", "eps=1e-3, affine=true"),
                };
                // PyTorch's `LayerNorm([C, H, W])`, over the whole sample, is not what
                // cnnc's layernorm does: the help says which layer is.
                let whole_sample = spec.name == "layernorm"
                    && matches!(&arg.value.kind, ast::ExprKind::List(items) if items.len() == 3);
                let help = if whole_sample {
                    format!(
                        "PyTorch's `LayerNorm([C, H, W])` normalizes each sample as a whole; \
                         cnnc's {LAYERNORM}"
                    )
                } else {
                    format!(
                        "cnnc infers the number of {counted} from the incoming tensor; write \
                         `{0}`, or name the options: `{0}({options})`",
                        spec.name
                    )
                };
                diags.push(
                    Diagnostic::error(
                        "cnnc::elab::argument_count",
                        format!("`{}` takes no positional arguments", spec.name),
                    )
                    .label(arg.span, "this argument")
                    .help(help),
                );
                ok = false;
                continue;
            }
            // `PReLU(64)`: the channels are inferred; one slope or one per channel is a flag.
            None if spec.name == "prelu" => {
                diags.push(
                    Diagnostic::error(
                        "cnnc::elab::argument_count",
                        "`prelu` takes no positional arguments",
                    )
                    .label(arg.span, "this argument")
                    .help(
                        "cnnc infers the number of channels from the incoming tensor: PyTorch's \
                         `PReLU()`, one slope, is `prelu`, and `PReLU(C)`, a slope per channel, \
                         is `prelu(per_channel=true)`",
                    ),
                );
                ok = false;
                continue;
            }
            // `GroupNorm(4, 64)`: the groups only; eps and affine are named, so the channel
            // count cannot silently become eps.
            None if spec.name == "groupnorm" && positional == 1 => {
                diags.push(
                    Diagnostic::error(
                        "cnnc::elab::argument_count",
                        "`groupnorm` takes one positional argument, the number of groups",
                    )
                    .label(arg.span, "this argument")
                    .help(
                        "cnnc infers the number of channels from the incoming tensor, so \
                         PyTorch's `GroupNorm(32, 256)` is `groupnorm(32)`; name the options: \
                         `groupnorm(32, eps=1e-3, affine=false)`",
                    ),
                );
                ok = false;
                continue;
            }
            None => {
                positional += 1;
                if positional > spec.params.len() {
                    extra.push(arg.span);
                    ok = false;
                    continue;
                }
                positional - 1
            }
            Some(n) => match spec.params.iter().position(|p| p.name == n.name) {
                Some(i) => i,
                None => {
                    diags.push(unknown_argument(spec, n, &arg.value));
                    // PyTorch's name of one of this layer's own (`padding=1` for `pad`):
                    // reported, and checking goes on with it as meant, so that the mistakes
                    // after it are found in the same run.
                    // (Not where that argument is given already: one error for one mistake.)
                    let alias = ALIASES
                        .iter()
                        .find(|(from, _)| *from == n.name)
                        .and_then(|(_, to)| spec.params.iter().position(|p| p.name == *to))
                        .filter(|&i| values[i].is_none());
                    match alias {
                        Some(i) => i,
                        // An argument whose fix is to remove it, and that changes no shape
                        // (Keras's `activation=`, `kernel_initializer=`, PyTorch's
                        // `in_channels=`): reported, and the layer checked without it, so that
                        // its other mistakes show in the same run.
                        None if SHAPELESS_ARGUMENTS.contains(&n.name.as_str()) => continue,
                        None => {
                            ok = false;
                            continue;
                        }
                    }
                }
            },
        };
        if let Some((_, first_span)) = &values[index] {
            let param = spec.params[index].name;
            // `convT(1024, 512, 2, stride=2)` on 1024 channels: PyTorch's order pushes the
            // kernel onto `stride`.
            let pytorch = match &arg.name {
                Some(_) => pytorch_class(spec, call, &values, incoming)
                    .or_else(|| channels_then_named_kernel(spec, index, &values, incoming)),
                None => None,
            };
            // The earlier one: by position, or by name (`pad=1, pad=2`).
            let first_named = call
                .args
                .iter()
                .any(|a| a.span == *first_span && a.name.is_some());
            let first_label = if first_named {
                format!("`{param}` first given here")
            } else {
                format!("`{param}` by position")
            };
            let help = match pytorch {
                Some(torch) => drop_first_help(
                    &format!(
                        "the first argument is the input's channel count, as in PyTorch's \
                         `{torch}(in_channels, out_channels, kernel_size, …)`"
                    ),
                    spec,
                    call,
                ),
                None => format!("give `{param}` once; the signature is {}", signature(spec)),
            };
            diags.push(
                Diagnostic::error(
                    "cnnc::elab::argument_count",
                    format!("argument `{param}` of `{}` is given twice", spec.name),
                )
                .label(*first_span, first_label)
                .label(arg.span, "given again here")
                .help(help),
            );
            ok = false;
            continue;
        }
        match eval(&arg.value, env, incoming) {
            Ok(v) => match check_kind(spec.params[index].kind, &v) {
                Ok(()) => {
                    if spec.params[index].kind.is_fractional() {
                        warn_floored_division(spec, index, &arg.value, env, incoming, diags);
                    }
                    values[index] = Some((v, arg.span))
                }
                Err((code, expected)) => {
                    let literal = matches!(arg.value.kind, ast::ExprKind::Float(_));
                    let hint = match v {
                        // PyTorch accepts p=1 (every value zeroed); ONNX's Dropout does not.
                        _ if spec.params[index].kind == Kind::Probability
                            && number(&v) == Some(1.0) =>
                        {
                            "a rate of 1 would zero every value, so nothing would pass (ONNX's \
                             Dropout takes rates below 1): use a rate below 1, or remove the \
                             path; "
                                .to_string()
                        }
                        _ if spec.params[index].kind == Kind::Probability
                            && number(&v).is_some_and(|x| x > 1.0) =>
                        {
                            "the rate is the fraction of values dropped, as PyTorch's `p`: 0.5 \
                             drops half; "
                                .to_string()
                        }
                        // `upsample(1.5)`, PyTorch's `scale_factor=1.5`: a size, not a scale.
                        Value::Float(x)
                            if spec.name == "upsample"
                                && spec.params[index].name == "scale"
                                && x.fract() != 0.0 =>
                        {
                            "a scale repeats each pixel a whole number of times; for any \
                             other size, give the output's: `upsample(size=[h, w])`, or a \
                             named tensor's, `upsample(size=[skip.h, skip.w])`; "
                                .to_string()
                        }
                        Value::Float(x) if expected.contains("integer") => {
                            if !literal {
                                "the value is computed with a float; integer arithmetic keeps \
             it whole (`/` is floor division: write `in.c / 2`, not \
             `in.c * 0.5`); "
                                    .to_string()
                            } else if x.fract() == 0.0 && x.abs() < 1e15 {
                                format!("write `{}` without the decimal point; ", x as i64)
                            } else {
                                String::new()
                            }
                        }
                        // Keras's `ZeroPadding2D(((0, 1), (0, 1)))`: two pairs.
                        Value::List(ref items)
                            if spec.params[index].name == "pad"
                                && items.len() == 2
                                && items.iter().all(
                                    |i| matches!(i, Value::List(p) if p.len() == 2 && p.iter().all(|x| matches!(x, Value::Int(_)))),
                                ) =>
                        {
                            let flat: Vec<String> = items
                                .iter()
                                .flat_map(|i| match i {
                                    Value::List(p) => p.iter().map(value_text).collect(),
                                    _ => Vec::new(),
                                })
                                .collect();
                            format!(
                                "Keras's `((top, bottom), (left, right))` is one flat list in \
                                 cnnc, `[top, bottom, left, right]`: `pad=[{}]`; ",
                                flat.join(", ")
                            )
                        }
                        // `planes * (base_width / 64) * groups`, torchvision's ResNeXt width.
                        // `c / r` of an SE block at a small `c`: the values, and the
                        // floor of 1 torchvision keeps.
                        Value::Int(0) => match &arg.value.kind {
                            ast::ExprKind::Binary(ast::BinaryOp::Div, l, r) => {
                                let value = |e: &ast::Expr| match eval(e, env, incoming) {
                                    Ok(Value::Int(n)) => Some(n),
                                    _ => None,
                                };
                                match (value(l), value(r)) {
                                    (Some(a), Some(b)) => format!(
                                        "`/` is floor division: `{}` is {a} / {b} = 0 here; \
                                         a width worked out by a division is kept at least 1 \
                                         with `max(1, {})` (an SE block's squeeze, as \
                                         torchvision keeps it); ",
                                        arg.value, arg.value
                                    ),
                                    _ => FLOORED_TO_ZERO.to_string(),
                                }
                            }
                            _ if divides(&arg.value) => FLOORED_TO_ZERO.to_string(),
                            _ => String::new(),
                        },
                        _ => String::new(),
                    };
                    // `linear(400, 120)` from PyTorch's `Linear(400, 120)`: the second number
                    // lands on `bias`.
                    let help = match (&v, spec.name, arg.name.is_none()) {
                        (Value::Int(n), "linear", true) if spec.params[index].name == "bias" => {
                            format!(
                                "`linear` takes the output size only, as PyTorch's \
             `Linear(in_features, out_features)` without the first: cnnc \
             infers the input's; write `linear({n})`"
                            )
                        }
                        // `conv(512, 1, 4, 1, 0)` from `Conv2d(512, 1, 4, 1, 0)`: PyTorch's
                        // padding lands on `dilation`.
                        _ => match pytorch_class(spec, call, &values, incoming) {
                            Some(torch) => drop_first_help(
                                &format!(
                                    "the first argument looks like the input's channel count, \
                                     as in PyTorch's `{torch}(in_channels, out_channels, \
                                     kernel_size, stride, padding, …)`"
                                ),
                                spec,
                                call,
                            ),
                            None => format!("{hint}the signature is {}", signature(spec)),
                        },
                    };
                    diags.push(
                        Diagnostic::error(
                            code,
                            format!(
                                "argument `{}` of `{}` must be {expected}, got {}",
                                spec.params[index].name,
                                spec.name,
                                // A short list as written (`[0, 1]`), not "a list of 2".
                                match &v {
                                    Value::List(_) if v.written().chars().count() <= 40 => {
                                        v.written()
                                    }
                                    _ => v.describe(),
                                }
                            ),
                        )
                        .label(arg.value.span, "this value")
                        .help(help),
                    );
                    ok = false;
                }
            },
            Err(EvalError::Diag(mut d)) => {
                let param = &spec.params[index];
                if let Some(name) = doubled_equals(arg, spec) {
                    // `pad==1`: a comparison that failed because `pad` is no value here.
                    *d = Diagnostic::error(
                        "cnnc::elab::argument_value",
                        format!(
                            "`{name}==…` compares `{name}` with a value, and `{name}` is \
                                 no value here"
                        ),
                    )
                    .label(arg.value.span, "a comparison, passed by position")
                    .help(format!(
                        "did you mean `{name}=…`? an argument is named with one `=`; the \
                             signature is {}",
                        signature(spec)
                    ));
                } else if let Some(act) = match &arg.value.kind {
                    ast::ExprKind::Var(n) if arg.name.is_none() => lookup(n)
                        .filter(|l| l.params.iter().all(|p| !p.required) && l.name != spec.name)
                        .map(|l| l.name),
                    _ => None,
                } {
                    // `linear(10, relu)`: Keras's `Dense(10, 'relu')`, the activation
                    // passed by position.
                    d.help = Some(format!(
                        "`{act}` is a layer of its own, written after this one: `{}(…) {act}` \
                         (Keras's `Dense(10, 'relu')` is `linear(10) relu`)",
                        spec.name
                    ));
                } else if matches!(&arg.value.kind, ast::ExprKind::Var(n) if n == "None") {
                    d.help = Some(if param.required {
                        format!(
                            "cnnc has no `None`, and `{}` of `{}` has no default: pass a value \
                             (the signature is {})",
                            param.name,
                            spec.name,
                            signature(spec)
                        )
                    } else if param.name == "momentum" {
                        // PyTorch's `momentum=None` is a cumulative average, no default.
                        format!(
                            "cnnc has no `None`, and no cumulative average of the batch \
                             statistics (PyTorch's `momentum=None`): the running statistics \
                             are an exponential average, leaving `momentum` out gives {}'s \
                             0.1",
                            spec.name
                        )
                    } else if spec.name == "upsample" {
                        // Its arguments are optional one by one, but one of the two is
                        // needed: leaving this one out is half the answer.
                        format!(
                            "cnnc has no `None`: `upsample` takes one of `scale` and `size`, \
                             and the other is left out: {UPSAMPLE_FORMS}"
                        )
                    } else {
                        super::value::NONE_ARGUMENT_HELP.to_string()
                    });
                }
                diags.push(*d);
                ok = false;
            }
            Err(EvalError::Unknown) => ok = false,
        }
    }
    if !extra.is_empty() {
        let takes = match spec.params.len() {
            0 => "takes no arguments".to_string(),
            n => format!(
                "takes at most {n} argument{}",
                if n == 1 { "" } else { "s" }
            ),
        };
        let mut d = Diagnostic::error(
            "cnnc::elab::argument_count",
            format!(
                "`{}` {takes}, got {}",
                spec.name,
                spec.params.len() + extra.len()
            ),
        );
        for span in &extra {
            d = d.label(*span, "extra argument");
        }
        diags.push(
            d.help(match spec.name {
                "softmax" => SOFTMAX_DIM.to_string(),
                "flatten" => {
                    "`flatten` is PyTorch's `nn.Flatten()`, `flatten(x, 1)`: it keeps the \
                          batch and flattens everything after it; write `flatten` alone"
                        .to_string()
                }
                // Keras's `ReLU(6)`, capped at 6.
                "relu" if call.args.len() == 1 => {
                    "a ReLU capped at 6 (Keras's `ReLU(6)`, PyTorch's `ReLU6`) is cnnc's \
                     `relu6`; `relu` takes no arguments"
                        .to_string()
                }
                _ => format!("the signature is {}", signature(spec)),
            }),
        );
    }
    let missing: Vec<&str> = spec
        .params
        .iter()
        .zip(&values)
        .filter(|(p, v)| p.required && v.is_none())
        .map(|(p, _)| p.name)
        .collect();
    if !missing.is_empty() && ok {
        let list: Vec<String> = missing.iter().map(|m| format!("`{m}`")).collect();
        diags.push(
            Diagnostic::error(
                "cnnc::elab::argument_count",
                format!("`{}` needs {}", spec.name, list.join(" and ")),
            )
            .label(call.span, format!("missing {}", list.join(", ")))
            .help(format!("the signature is {}", signature(spec))),
        );
        ok = false;
    }
    ok.then_some(Bound { values })
}

/// A value as it would be written in a `.cnn` file: `5`, `[3, 1]`, `true`.
fn value_text(v: &Value) -> String {
    match v {
        Value::Int(n) => n.to_string(),
        Value::Float(x) => format!("{x:?}"),
        Value::Bool(b) => b.to_string(),
        Value::List(items) => {
            let inner: Vec<String> = items.iter().map(value_text).collect();
            format!("[{}]", inner.join(", "))
        }
        Value::Same => "same".to_string(),
    }
}

/// Whether an expression divides (`/`) anywhere.
/// `scale(1 / 3)`, `dropout(1 / n)`: a division of whole numbers, which floors, in an
/// argument that takes a fraction, where it dropped a remainder: warned
/// (`cnnc::elab::integer_division`), with the float division to write. The first such
/// division in the expression, outermost first.
fn warn_floored_division(
    spec: &LayerSpec,
    index: usize,
    e: &ast::Expr,
    env: &Env,
    incoming: Option<&Shape>,
    diags: &mut Diagnostics,
) {
    use ast::ExprKind as K;
    let mut stack = vec![e];
    while let Some(e) = stack.pop() {
        match &e.kind {
            K::Binary(op, a, b) => {
                if *op == ast::BinaryOp::Div {
                    if let (Ok(Value::Int(x)), Ok(Value::Int(y))) =
                        (eval(a, env, incoming), eval(b, env, incoming))
                    {
                        if y != 0 && x % y != 0 {
                            let floored = x.div_euclid(y);
                            let exact = short_decimal(x as f64 / y as f64);
                            diags.push(
                                Diagnostic::warning(
                                    "cnnc::elab::integer_division",
                                    format!(
                                        "`{x} / {y}` divides whole numbers and rounds down to \
                                         {floored}, in `{}`'s `{}`, which takes a fraction",
                                        spec.name, spec.params[index].name
                                    ),
                                )
                                .label(e.span, format!("{floored}, not {exact}"))
                                .help(format!(
                                    "`/` of two integers is floor division, as Python's `//` \
                                     (so that channel counts stay whole); for {exact}, make \
                                     one a float: `{x}.0 / {y}`, or `1.0 * a / b` for variables"
                                )),
                            );
                            return;
                        }
                    }
                }
                stack.push(b);
                stack.push(a);
            }
            K::Unary(_, a) => stack.push(a),
            K::Index(a, b) => {
                stack.push(b);
                stack.push(a);
            }
            K::List(items) | K::Call(_, _, items) => stack.extend(items.iter().rev()),
            _ => {}
        }
    }
}

/// `v` to four decimals without trailing zeros, `…` where that cut digits (0.3333…).
fn short_decimal(v: f64) -> String {
    let s = format!("{v:.4}");
    let t = s.trim_end_matches('0').trim_end_matches('.');
    if t.parse::<f64>().is_ok_and(|r| r == v) {
        t.to_string()
    } else {
        format!("{t}…")
    }
}

fn divides(e: &ast::Expr) -> bool {
    use ast::ExprKind as K;
    match &e.kind {
        K::Binary(op, a, b) => *op == ast::BinaryOp::Div || divides(a) || divides(b),
        K::Unary(_, a) => divides(a),
        K::Index(a, b) => divides(a) || divides(b),
        K::List(items) | K::Call(_, _, items) => items.iter().any(divides),
        _ => false,
    }
}

/// The PyTorch class (`Conv2d`, `ConvTranspose2d`) whose argument order a conv call seems
/// written in, `in_channels` first, from the first three values bound so far: the first
/// equals the input's channels and no `groups` is named (a depthwise
/// `conv(96, 7, 1, 3, groups=96)` is cnnc's own order), and either
/// - `Conv2d(1, 6, 5)`: three or more positional numbers, the second a channel count rather
///   than a kernel (6 or more, even or above 11: real kernels are odd and at most AlexNet's
///   11) and above the third, or
/// - `ConvTranspose2d(64, 3, 4, 2, 1)`: four or more positional numbers, and the third (read
///   by cnnc as the stride) above the second (read as the kernel): a stride above the kernel
///   skips input in a conv and leaves gaps in a transposed conv, which no classic network does.
fn pytorch_class(
    spec: &LayerSpec,
    call: &ast::Call,
    values: &[Option<(Value, Span)>],
    incoming: Option<&Shape>,
) -> Option<&'static str> {
    let (class, channels) = pytorch_conv(spec, incoming)?;
    let int = |i: usize| int_value(values, i);
    let (first, second, third) = (int(0)?, int(1)?, int(2)?);
    let positional = call.args.iter().filter(|a| a.name.is_none()).count();
    let grouped = call
        .args
        .iter()
        .any(|a| a.name.as_ref().is_some_and(|n| n.name == "groups"));
    let channel_like = second >= 6 && (second % 2 == 0 || second > 11) && second > third;
    // A depthwise conv, PyTorch's `Conv2d(C, C, k, groups=C)`: as many channels out as in.
    let depthwise = grouped && second == first && channel_like;
    // PyTorch's stride is cnnc's 4th value (its `pad`): 0 there is cnnc's own order
    // (`conv(64, 1, 2, 0)`, a 1×1 stride-2 projection), which PyTorch could not mean.
    let fourth = int(3);
    let stride_over_kernel = positional >= 4 && third > second && fourth.is_some_and(|s| s >= 1);
    let ungrouped = !grouped && (channel_like || stride_over_kernel);
    (first == channels && positional >= 3 && (ungrouped || depthwise)).then_some(class)
}

/// The parameter `p` of `spec` when `arg` is `p==…` by position: `conv(16, 3, pad==1)`, a
/// slip for `pad=1`.
fn doubled_equals<'a>(arg: &'a ast::Arg, spec: &LayerSpec) -> Option<&'a str> {
    let ast::ExprKind::Binary(ast::BinaryOp::Eq, left, _) = &arg.value.kind else {
        return None;
    };
    match &left.kind {
        ast::ExprKind::Var(name)
            if arg.name.is_none() && spec.params.iter().any(|p| p.name == name) =>
        {
            Some(name)
        }
        _ => None,
    }
}

/// The help for a call written in PyTorch's order (`why` says what gave it away): cnnc's
/// order is PyTorch's without `in_channels`, except past a transposed conv's
/// `output_padding`, where PyTorch's `ConvTranspose2d` goes on with `groups, bias, dilation`
/// and cnnc's `convT` with `dilation, groups, bias`.
fn drop_first_help(why: &str, spec: &LayerSpec, call: &ast::Call) -> String {
    let positional = call.args.iter().filter(|a| a.name.is_none()).count();
    let tail = if spec.name == "convT" && positional > 6 {
        ", and name what follows PyTorch's `output_padding`: its next arguments are `groups`, \
         `bias` and `dilation`, where cnnc's are `dilation`, `groups` and `bias` \
         (`ConvTranspose2d(64, 32, 4, 2, 1, 0, 2)` is `convT(32, 4, 2, 1, 0, groups=2)`)"
    } else {
        ""
    };
    format!("{why}; cnnc infers it, and its order is PyTorch's without it: drop the first argument{tail}")
}

/// `conv(64, 128, kernel=3)` on 64 channels, from PyTorch's `Conv2d(64, 128, kernel_size=3)`:
/// the output channels land on `kernel`, which is then given twice. The class when the
/// parameter given again is `kernel` and the first two values, by position, read as the
/// input's channels and a channel count.
fn channels_then_named_kernel(
    spec: &LayerSpec,
    index: usize,
    values: &[Option<(Value, Span)>],
    incoming: Option<&Shape>,
) -> Option<&'static str> {
    let (class, channels) = pytorch_conv(spec, incoming)?;
    let int = |i: usize| int_value(values, i);
    (spec.params[index].name == "kernel" && int(0)? == channels && int(1)? >= 2).then_some(class)
}

/// PyTorch's class of a `conv` or `convT` on an image, and the image's channels.
fn pytorch_conv(spec: &LayerSpec, incoming: Option<&Shape>) -> Option<(&'static str, i64)> {
    let class = match spec.name {
        "conv" => "Conv2d",
        "convT" => "ConvTranspose2d",
        _ => return None,
    };
    Some((class, incoming.filter(|s| s.rank() == 3)?.dims()[0] as i64))
}

/// The `i`th bound value, where it is an integer.
fn int_value(values: &[Option<(Value, Span)>], i: usize) -> Option<i64> {
    match values.get(i)? {
        Some((Value::Int(n), _)) => Some(*n),
        _ => None,
    }
}

/// `conv(1, 6, 5)` written from PyTorch's `Conv2d(1, 6, 5)`: valid (out 1, kernel 6, stride 5)
/// and wrong; warned when [`pytorch_class`] says so. cnnc's order is PyTorch's without
/// `in_channels`, so the fix is to drop the first argument.
fn warn_pytorch_order(
    spec: &LayerSpec,
    call: &ast::Call,
    bound: &Bound,
    incoming: Option<&Shape>,
    diags: &mut Diagnostics,
) {
    let Some(pytorch) = pytorch_class(spec, call, &bound.values, incoming) else {
        return;
    };
    let positional: Vec<&ast::Arg> = call.args.iter().filter(|a| a.name.is_none()).collect();
    let channels = incoming.map_or(0, |s| s.dims()[0] as i64);
    let int = |i: usize| match bound.values[i].as_ref() {
        Some((Value::Int(n), _)) => *n,
        _ => 0,
    };
    let (first, second, third) = (int(0), int(1), int(2));
    // PyTorch's ConvTranspose2d has `output_padding` where cnnc's convT has it too, but its
    // 7th argument is `groups` where cnnc's is `dilation`: past 6, dropping the first is no
    // faithful rewrite.
    if spec.name == "convT" && positional.len() > 6 {
        return;
    }
    let named = call.args.iter().filter_map(|a| {
        let name = &a.name.as_ref()?.name;
        let i = spec.params.iter().position(|p| p.name == *name)?;
        let (v, _) = bound.values[i].as_ref()?;
        Some(format!("{name}={}", value_text(v)))
    });
    let rest: Vec<String> = (1..positional.len())
        .filter_map(|i| bound.values[i].as_ref().map(|(v, _)| value_text(v)))
        .chain(named)
        .collect();
    let plural = |n: i64, noun: &str| format!("{n} {noun}{}", if n == 1 { "" } else { "s" });
    diags.push(
        Diagnostic::warning(
            "cnnc::elab::pytorch_argument_order",
            format!(
                "`{}` reads as {}, kernel {second}, stride {third}: its first argument is the \
                 input's channel count, as in PyTorch's `{pytorch}`",
                spec.name,
                plural(first, "output channel")
            ),
        )
        .label(
            positional[0].span,
            format!("the input has {}", plural(channels, "channel")),
        )
        .help(format!(
            "cnnc infers the input channels, and its order is PyTorch's without them: write \
             `{}({})`",
            spec.name,
            rest.join(", ")
        )),
    );
}

/// `Ok` when `v` fits `kind`, else what was expected.
fn check_kind(kind: Kind, v: &Value) -> Result<(), (&'static str, &'static str)> {
    const TYPE: &str = "cnnc::elab::argument_type";
    const VALUE: &str = "cnnc::elab::argument_value";
    match kind {
        Kind::Count => match v {
            Value::Int(n) if *n >= 1 && *n <= u32::MAX as i64 => Ok(()),
            Value::Int(_) => Err((VALUE, "a positive integer (≥ 1, < 2^32)")),
            _ => Err((TYPE, "an integer")),
        },
        Kind::Index => match v {
            Value::Int(n) if *n >= 0 && *n <= u32::MAX as i64 => Ok(()),
            Value::Int(_) => Err((VALUE, "an integer ≥ 0 (< 2^32)")),
            _ => Err((TYPE, "an integer")),
        },
        Kind::Pair => match to_pair(v) {
            Some(p)
                if p[0] >= 1 && p[1] >= 1 && p[0] <= u32::MAX as u64 && p[1] <= u32::MAX as u64 =>
            {
                Ok(())
            }
            // Negative, or too large: the right kind, a wrong value.
            Some(_) => Err((VALUE, "a positive integer or a pair [h, w] of them (≥ 1)")),
            None if integers(v, &[2]) => {
                Err((VALUE, "a positive integer or a pair [h, w] of them (≥ 1)"))
            }
            None => Err((TYPE, "an integer or a pair [h, w]")),
        },
        Kind::PairOrZero => match to_pair(v) {
            Some(p) if p[0] <= u32::MAX as u64 && p[1] <= u32::MAX as u64 => Ok(()),
            _ if integers(v, &[2]) => {
                Err((VALUE, "an integer or a pair [h, w] of them ≥ 0 (< 2^32)"))
            }
            _ => Err((TYPE, "an integer or a pair [h, w] (≥ 0)")),
        },
        Kind::Pixels => match to_pads(v) {
            Some(p) if p.onnx().iter().all(|&x| x <= u32::MAX as u64) => Ok(()),
            _ if integers(v, &[2, 4]) || matches!(v, Value::Same) => Err((
                VALUE,
                "an integer, [h, w] or [top, bottom, left, right] of pixels, each ≥ 0 (< 2^32; \
                 `same` is a conv's or a pooling's padding that keeps the size)",
            )),
            _ => Err((
                TYPE,
                "an integer, [h, w] or [top, bottom, left, right] (≥ 0)",
            )),
        },
        Kind::Pad => match v {
            Value::Same => Ok(()),
            _ => match to_pads(v) {
                Some(p) if p.onnx().iter().all(|&x| x <= u32::MAX as u64) => Ok(()),
                _ if integers(v, &[2, 4]) => Err((
                    VALUE,
                    "an integer, [h, w] or [top, bottom, left, right], each ≥ 0 (< 2^32), or \
                     `same`",
                )),
                _ => Err((
                    TYPE,
                    "an integer, [h, w], [top, bottom, left, right] (≥ 0) or `same`",
                )),
            },
        },
        Kind::Bool => match v {
            Value::Bool(_) => Ok(()),
            _ => Err((TYPE, "true or false")),
        },
        Kind::Probability => match number(v) {
            Some(x) if (0.0..1.0).contains(&x) => Ok(()),
            Some(_) => Err((VALUE, "a number in [0, 1)")),
            None => Err((TYPE, "a number")),
        },
        Kind::Fraction => match number(v) {
            Some(x) if (0.0..=1.0).contains(&x) => Ok(()),
            Some(_) => Err((VALUE, "a number in [0, 1]")),
            None => Err((TYPE, "a number")),
        },
        // ONNX stores these as float32: a value it cannot hold would be exported as inf or 0.
        Kind::Number => match number(v) {
            Some(x) if x != 0.0 && (x as f32) == 0.0 => Err((
                VALUE,
                "a number float32 can hold (0, or |x| from 1.4e-45 to 3.4e38)",
            )),
            Some(x) if (x as f32).is_finite() => Ok(()),
            Some(x) if x.is_finite() => Err((VALUE, "a number float32 can hold (|x| < 3.4e38)")),
            Some(_) => Err((VALUE, "a finite number")),
            None => Err((TYPE, "a number")),
        },
        Kind::Numbers | Kind::PositiveNumbers => {
            let one = if kind == Kind::Numbers {
                Kind::Number
            } else {
                Kind::Positive
            };
            let (code, what) = match v {
                Value::List(items) if items.is_empty() => (VALUE, "no value"),
                Value::List(items) => match items.iter().find_map(|i| check_kind(one, i).err()) {
                    None => return Ok(()),
                    Some((VALUE, _)) if kind == Kind::Numbers => (
                        VALUE,
                        "a list of numbers float32 can hold (|x| < 3.4e38, one per channel)",
                    ),
                    Some((VALUE, _)) => (
                        VALUE,
                        "a list of positive numbers float32 can hold (one per channel)",
                    ),
                    Some(e) => e,
                },
                v => match check_kind(one, v) {
                    Ok(()) => return Ok(()),
                    Err(e) => e,
                },
            };
            Err(match (kind, code == TYPE, what == "no value") {
                (_, _, true) => (VALUE, "a number, or a list of one number per channel"),
                (Kind::Numbers, true, _) => {
                    (TYPE, "a number, or a list of numbers (one per channel)")
                }
                (_, true, _) => (
                    TYPE,
                    "a positive number, or a list of them (one per channel)",
                ),
                (_, false, _) => (VALUE, what),
            })
        }
        Kind::Positive => match number(v) {
            Some(x) if (x as f32) > 0.0 && (x as f32).is_finite() => Ok(()),
            Some(x) if x > 0.0 && x.is_finite() => Err((
                VALUE,
                "a positive number float32 can hold (from 1.4e-45 to 3.4e38)",
            )),
            Some(_) => Err((VALUE, "a positive number")),
            None => Err((TYPE, "a number")),
        },
    }
}

fn number(v: &Value) -> Option<f64> {
    match v {
        Value::Int(n) => Some(*n as f64),
        Value::Float(x) => Some(*x),
        _ => None,
    }
}

fn nonneg(v: &Value) -> Option<u64> {
    match v {
        Value::Int(n) if *n >= 0 => Some(*n as u64),
        _ => None,
    }
}

/// Whether `v` is an integer or a list of integers of one of the lengths `lens`, whatever
/// their signs and sizes.
fn integers(v: &Value, lens: &[usize]) -> bool {
    match v {
        Value::Int(_) => true,
        Value::List(items) => {
            lens.contains(&items.len()) && items.iter().all(|i| matches!(i, Value::Int(_)))
        }
        _ => false,
    }
}

fn to_pair(v: &Value) -> Option<Pair> {
    match v {
        Value::List(items) if items.len() == 2 => Some([nonneg(&items[0])?, nonneg(&items[1])?]),
        v => nonneg(v).map(|n| [n, n]),
    }
}

/// `p`, `[h, w]` or `[top, bottom, left, right]`.
fn to_pads(v: &Value) -> Option<Pads> {
    match v {
        Value::List(items) if items.len() == 4 => {
            let p: Vec<u64> = items.iter().map(nonneg).collect::<Option<_>>()?;
            Some(Pads {
                begin: [p[0], p[2]],
                end: [p[1], p[3]],
            })
        }
        v => to_pair(v).map(Pads::symmetric),
    }
}

//! A stable, readable text form of the graph, for the IR snapshot tests (`tests/models.rs`).

use super::{Graph, Op, Pads, Pair};
use super::{UpsampleMode, UpsampleTo};
use std::fmt::Write as _;

fn pair(p: Pair) -> String {
    if p[0] == p[1] {
        p[0].to_string()
    } else {
        format!("[{}, {}]", p[0], p[1])
    }
}

fn pads(p: &Pads) -> String {
    if p.is_symmetric() {
        pair(p.begin)
    } else {
        format!(
            "[{}, {}, {}, {}]",
            p.begin[0], p.end[0], p.begin[1], p.end[1]
        )
    }
}

/// The op with its attributes in the language's syntax: `conv(6, 5, pad=2)`.
pub fn op_text(op: &Op) -> String {
    match op {
        Op::Conv(a) => format!(
            "conv({}, {}, stride={}, pad={}, dilation={}, groups={}, bias={})",
            a.out_channels,
            pair(a.kernel),
            pair(a.stride),
            pads(&a.pads),
            pair(a.dilation),
            a.groups,
            a.bias
        ),
        Op::ConvTranspose(a) => format!(
            "convT({}, {}, stride={}, pad={}, output_pad={}, dilation={}, groups={}, bias={})",
            a.out_channels,
            pair(a.kernel),
            pair(a.stride),
            pads(&a.pads),
            pair(a.output_pad),
            pair(a.dilation),
            a.groups,
            a.bias
        ),
        Op::MaxPool(a) | Op::AvgPool(a) => format!(
            "{}({}, stride={}, pad={}, ceil={}{})",
            op.kind(),
            pair(a.kernel),
            pair(a.stride),
            pads(&a.pads),
            a.ceil,
            if a.count_pad {
                ""
            } else {
                ", count_include_pad=false"
            }
        ),
        Op::AdaptiveAvgPool { output } => format!("adaptive_avgpool({})", pair(*output)),
        Op::AdaptiveMaxPool { output } => format!("adaptive_maxpool({})", pair(*output)),
        Op::BatchNorm {
            eps,
            momentum,
            affine,
        } => format!(
            "batchnorm(eps={eps}, momentum={momentum}{})",
            if *affine { "" } else { ", affine=false" }
        ),
        Op::Prelu { per_channel } => format!("prelu(per_channel={per_channel})"),
        Op::Scale { factor } => format!("scale({factor})"),
        Op::Normalize { mean, std } => {
            let list = |v: &[f64]| match v {
                [one] => one.to_string(),
                _ => format!(
                    "[{}]",
                    v.iter().map(f64::to_string).collect::<Vec<_>>().join(", ")
                ),
            };
            format!("normalize(mean={}, std={})", list(mean), list(std))
        }
        Op::GroupNorm {
            groups: Some(g),
            eps,
            affine,
        } => format!("groupnorm({g}, eps={eps}, affine={affine})"),
        Op::GroupNorm {
            groups: None,
            eps,
            affine,
        } => format!("instancenorm(eps={eps}, affine={affine})"),
        Op::LayerNorm { eps, affine } => format!("layernorm(eps={eps}, affine={affine})"),
        Op::LayerScale { init } => format!("layer_scale({init})"),
        Op::LeakyRelu { alpha } | Op::Elu { alpha } => format!("{}(alpha={alpha})", op.kind()),
        Op::Dropout { p } => format!("dropout(p={p})"),
        Op::Linear { out_features, bias } => format!("linear({out_features}, bias={bias})"),
        Op::Crop { size } => format!("crop(to {}×{})", size[0], size[1]),
        Op::Pad { pads: p, mode } => format!("pad({}, mode={})", pads(p), mode.onnx()),
        Op::Slice { start, end } => format!("slice({start}, {end})"),
        Op::ChannelShuffle { groups } => format!("channel_shuffle({groups})"),
        Op::PixelShuffle { factor, .. } => format!("{}({factor})", op.kind()),
        Op::Upsample { to, mode } => {
            let mode = match mode {
                UpsampleMode::Nearest => "",
                UpsampleMode::Bilinear {
                    align_corners: false,
                } => ", bilinear",
                UpsampleMode::Bilinear {
                    align_corners: true,
                } => ", bilinear, align_corners",
            };
            match to {
                UpsampleTo::Scale(scale) => format!("upsample({}, {}{mode})", scale[0], scale[1]),
                UpsampleTo::Size(size) => format!("upsample(to {}×{}{mode})", size[0], size[1]),
            }
        }
        other => other.kind().to_string(),
    }
}

/// One line per node in topological order: `name = op(inputs) : shape  params macs`, and
/// `size_of=NODE` for a layer whose output size is another tensor's (`Graph::size_sources`).
pub fn dump(g: &Graph) -> String {
    lines(g, true)
}

/// The network's structure as text, for fingerprints (a checkpoint's `model_sha256`): the
/// lines of [`dump`] without the parameter and MAC counts, which are derived (a fix to how
/// MACs are counted must not orphan every checkpoint), and without the size sources, which
/// only an export with a variable size reads, after a version tag to change
/// deliberately if this text ever must.
pub fn structure(g: &Graph) -> String {
    format!("cnnc-structure 1\n{}", lines(g, false))
}

fn lines(g: &Graph, with_counts: bool) -> String {
    let mut out = String::new();
    for ix in g.topo_order() {
        let n = g.node(ix);
        let inputs: Vec<String> = g
            .inputs(ix)
            .into_iter()
            .map(|i| g.node(i).name.clone())
            .collect();
        let shape = n.shape.as_ref().map_or("?".to_string(), |s| s.to_string());
        let _ = write!(out, "{} = {}", n.name, op_text(&n.op));
        if !inputs.is_empty() {
            let _ = write!(out, " <- {}", inputs.join(", "));
        }
        let _ = write!(out, " : {shape}");
        if with_counts && (n.params > 0 || n.macs > 0) {
            let _ = write!(out, "  params={} macs={}", n.params, n.macs);
        }
        if let Some(&source) = g.size_sources.get(&ix).filter(|_| with_counts) {
            let _ = write!(out, "  size_of={}", g.node(source).name);
        }
        out.push('\n');
    }
    for o in &g.named_outputs {
        let _ = writeln!(out, "output {} <- {}", o.name, g.node(o.node).name);
    }
    out
}

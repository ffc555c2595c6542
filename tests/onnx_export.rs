//! ONNX export of hand-built graphs, checked by `tests/python/check_onnx.py` (onnx checker,
//! ONNX shape inference against cnnc's shapes, ONNX Runtime, NumPy references).
//!
//! Graphs are built by hand (with shapes from PyTorch's formulas, computed here) so that
//! export is tested independently of the parser and elaborator.

mod common;

use cnnc::diag::Diagnostics;
use cnnc::ir::{
    ConvAttrs, ConvTransposeAttrs, Graph, Node, Op, PadMode, Pads, PoolAttrs, Shape, UpsampleMode,
    UpsampleTo,
};
use cnnc::onnx::{self, ExportOptions, Init};
use cnnc::{CheckedModel, SourceMap, Span};
use petgraph::graph::{DiGraph, NodeIndex};
use std::path::{Path, PathBuf};
use std::process::Command;

struct Builder {
    g: DiGraph<Node, usize>,
    input: NodeIndex,
    file: cnnc::FileId,
    count: u32,
}

impl Builder {
    fn new(sources: &mut SourceMap, input: &[u64]) -> Builder {
        let text = (0..64).map(|i| format!("layer{i}\n")).collect::<String>();
        let file = sources.add("models/test.cnn", text);
        let mut g = DiGraph::new();
        let input = g.add_node(Node {
            name: "input".into(),
            op: Op::Input,
            span: Span::new(file, 0, 1),
            shape: Some(Shape(input.to_vec())),
            params: 0,
            macs: 0,
        });
        Builder {
            g,
            input,
            file,
            count: 1,
        }
    }

    fn shape(&self, ix: NodeIndex) -> Vec<u64> {
        self.g[ix].shape.clone().unwrap().0
    }

    /// Adds a layer; its shape follows PyTorch's formulas.
    fn add(&mut self, name: &str, op: Op, inputs: &[NodeIndex]) -> NodeIndex {
        let ins: Vec<Vec<u64>> = inputs.iter().map(|&i| self.shape(i)).collect();
        let shape = shape_of(&op, &ins);
        let start = self.count * 7; // "layerN\n" lines: a distinct line per layer
        self.count += 1;
        let ix = self.g.add_node(Node {
            name: name.into(),
            op,
            span: Span::new(self.file, start as usize, start as usize + 1),
            shape: Some(Shape(shape)),
            params: 0,
            macs: 0,
        });
        for (slot, &i) in inputs.iter().enumerate() {
            self.g.add_edge(i, ix, slot);
        }
        ix
    }

    fn finish(self, name: &str, output: NodeIndex) -> CheckedModel {
        let graph = Graph {
            graph: self.g,
            input: self.input,
            output,
            named_outputs: Vec::new(),
            size_reads: Vec::new(),
            size_sources: Default::default(),
        };
        cnnc::shape::check(
            name.into(),
            graph,
            Span::new(self.file, 0, 1),
            "models/test.cnn".into(),
            "00".repeat(32),
            &Diagnostics::new(),
        )
        .unwrap()
    }
}

fn pool_out(n: u64, k: u64, s: u64, pb: u64, pe: u64, ceil: bool) -> u64 {
    let span = n + pb + pe - k;
    let mut o = if ceil { span.div_ceil(s) } else { span / s } + 1;
    if ceil && (o - 1) * s >= n + pb {
        o -= 1;
    }
    o
}

fn shape_of(op: &Op, ins: &[Vec<u64>]) -> Vec<u64> {
    let x = &ins[0];
    let conv =
        |n: u64, k: u64, s: u64, pb: u64, pe: u64, d: u64| (n + pb + pe - d * (k - 1) - 1) / s + 1;
    match op {
        Op::Conv(a) => (0..2)
            .map(|i| {
                conv(
                    x[i + 1],
                    a.kernel[i],
                    a.stride[i],
                    a.pads.begin[i],
                    a.pads.end[i],
                    a.dilation[i],
                )
            })
            .fold(vec![a.out_channels], |mut v, d| {
                v.push(d);
                v
            }),
        Op::ConvTranspose(a) => {
            let mut v = vec![a.out_channels];
            for i in 0..2 {
                v.push(
                    (x[i + 1] - 1) * a.stride[i] - a.pads.begin[i] - a.pads.end[i]
                        + a.dilation[i] * (a.kernel[i] - 1)
                        + a.output_pad[i]
                        + 1,
                );
            }
            v
        }
        Op::MaxPool(p) | Op::AvgPool(p) => {
            let mut v = vec![x[0]];
            for i in 0..2 {
                v.push(pool_out(
                    x[i + 1],
                    p.kernel[i],
                    p.stride[i],
                    p.pads.begin[i],
                    p.pads.end[i],
                    p.ceil,
                ));
            }
            v
        }
        Op::AdaptiveAvgPool { output } => vec![x[0], output[0], output[1]],
        Op::AdaptiveMaxPool { output } => vec![x[0], output[0], output[1]],
        Op::GlobalAvgPool | Op::GlobalMaxPool => vec![x[0], 1, 1],
        Op::Flatten => vec![x.iter().product()],
        Op::Linear { out_features, .. } => {
            let mut v = x.clone();
            *v.last_mut().unwrap() = *out_features;
            v
        }
        Op::Concat => {
            let mut v = x.clone();
            v[0] = ins.iter().map(|s| s[0]).sum();
            v
        }
        Op::Crop { size } => vec![x[0], size[0], size[1]],
        Op::Pad { pads, .. } => vec![
            x[0],
            x[1] + pads.begin[0] + pads.end[0],
            x[2] + pads.begin[1] + pads.end[1],
        ],
        Op::Upsample {
            to: UpsampleTo::Scale(scale),
            ..
        } => vec![x[0], x[1] * scale[0], x[2] * scale[1]],
        Op::Upsample {
            to: UpsampleTo::Size(size),
            ..
        } => vec![x[0], size[0], size[1]],
        Op::PixelShuffle {
            factor: r,
            unshuffle: false,
        } => vec![x[0] / (r * r), x[1] * r, x[2] * r],
        Op::PixelShuffle {
            factor: r,
            unshuffle: true,
        } => vec![x[0] * r * r, x[1] / r, x[2] / r],
        _ => x.clone(),
    }
}

fn conv(
    out: u64,
    k: [u64; 2],
    stride: [u64; 2],
    pads: Pads,
    dil: [u64; 2],
    groups: u64,
    bias: bool,
) -> Op {
    Op::Conv(ConvAttrs {
        out_channels: out,
        kernel: k,
        stride,
        pads,
        dilation: dil,
        groups,
        bias,
    })
}

fn pool(k: [u64; 2], s: [u64; 2], pads: Pads, ceil: bool) -> PoolAttrs {
    PoolAttrs {
        kernel: k,
        stride: s,
        pads,
        ceil,
        count_pad: true,
    }
}

fn pads(t: u64, l: u64, b: u64, r: u64) -> Pads {
    Pads {
        begin: [t, l],
        end: [b, r],
    }
}

/// Every op, with asymmetric pads, ceil mode, groups, dilation, output_padding,
/// non-divisible adaptive pooling, crop, and rank-1 batch norm.
fn every_op(sources: &mut SourceMap) -> (CheckedModel, Vec<Vec<u64>>) {
    let mut b = Builder::new(sources, &[3, 17, 15]);
    let x = b.input;
    let c1 = b.add(
        "stem.conv1",
        conv(8, [3, 3], [2, 1], pads(1, 0, 2, 1), [1, 2], 1, true),
        &[x],
    );
    let bn = b.add(
        "stem.bn1",
        Op::BatchNorm {
            eps: 1e-5,
            momentum: 0.1,
            affine: true,
        },
        &[c1],
    );
    let r = b.add("stem.relu1", Op::Relu, &[bn]);
    let c2 = b.add(
        "stem.conv2",
        conv(8, [3, 3], [1, 1], Pads::symmetric([1, 1]), [2, 2], 4, false),
        &[r],
    );
    let lr = b.add("stem.lrelu", Op::LeakyRelu { alpha: 0.1 }, &[c2]);
    let si = b.add("stem.silu", Op::Silu, &[lr]);
    let ge = b.add("stem.gelu", Op::Gelu, &[si]);
    let mp = b.add(
        "mp",
        Op::MaxPool(pool([3, 3], [2, 2], Pads::symmetric([1, 1]), true)),
        &[ge],
    );
    let ap = b.add(
        "ap",
        Op::AvgPool(pool([3, 3], [2, 2], Pads::symmetric([1, 1]), true)),
        &[mp],
    );
    let ap2 = b.add(
        "ap_floor",
        Op::AvgPool(pool([2, 2], [1, 1], pads(1, 0, 0, 1), false)),
        &[ap],
    );
    let ct = b.add(
        "up.convT",
        Op::ConvTranspose(ConvTransposeAttrs {
            out_channels: 6,
            kernel: [3, 2],
            stride: [2, 3],
            pads: pads(1, 0, 0, 1),
            output_pad: [1, 2],
            dilation: [1, 1],
            groups: 2,
            bias: true,
        }),
        &[ap2],
    );
    let elu = b.add("up.elu", Op::Elu { alpha: 1.0 }, &[ct]);
    let crop = b.add("skip.crop", Op::Crop { size: [4, 7] }, &[elu]);
    let ad = b.add("skip.pool", Op::AdaptiveAvgPool { output: [4, 7] }, &[elu]);
    let cat = b.add("merge.cat", Op::Concat, &[crop, ad]);
    let th = b.add("merge.tanh", Op::Tanh, &[cat]);
    let add = b.add("merge.add", Op::Add, &[cat, th]);
    let sg = b.add("head.sigmoid", Op::Sigmoid, &[add]);
    let dr = b.add("head.dropout", Op::Dropout { p: 0.5 }, &[sg]);
    let sm = b.add("head.softmax2d", Op::Softmax, &[dr]);
    // Bilinear (Resize, whose inference loses the batch's name) with layers after it.
    let bl = b.add(
        "head.bilinear",
        Op::Upsample {
            to: UpsampleTo::Scale([2, 1]),
            mode: UpsampleMode::Bilinear {
                align_corners: true,
            },
        },
        &[sm],
    );
    let ne = b.add(
        "head.nearest",
        Op::Upsample {
            to: UpsampleTo::Scale([1, 2]),
            mode: UpsampleMode::Nearest,
        },
        &[bl],
    );
    // Resampling to sizes no whole multiple of the input's: Resize, then Gather.
    let rs = b.add(
        "head.resize",
        Op::Upsample {
            to: UpsampleTo::Size([9, 15]),
            mode: UpsampleMode::Bilinear {
                align_corners: false,
            },
        },
        &[ne],
    );
    let ga = b.add(
        "head.gather",
        Op::Upsample {
            to: UpsampleTo::Size([11, 13]),
            mode: UpsampleMode::Nearest,
        },
        &[rs],
    );
    let ad2 = b.add("head.pool", Op::AdaptiveAvgPool { output: [2, 7] }, &[ga]);
    let gap = b.add("head.gap", Op::GlobalAvgPool, &[ad2]);
    let fl = b.add("head.flatten", Op::Flatten, &[gap]);
    let bn1 = b.add(
        "head.bn",
        Op::BatchNorm {
            eps: 1e-3,
            momentum: 0.01,
            affine: false,
        },
        &[fl],
    );
    let l1 = b.add(
        "head.fc1",
        Op::Linear {
            out_features: 5,
            bias: true,
        },
        &[bn1],
    );
    let l2 = b.add(
        "head.fc2",
        Op::Linear {
            out_features: 4,
            bias: false,
        },
        &[l1],
    );
    let out = b.add("head.softmax", Op::Softmax, &[l2]);
    let shapes = [c1, mp, ap, ap2, ct, ad, cat, ne, ad2, out]
        .iter()
        .map(|&i| b.shape(i))
        .collect();
    (b.finish("EveryOp", out), shapes)
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/check_onnx.py")
}

fn run_check(model: &Path, reference: Option<&Path>) {
    let mut cmd = Command::new("python3");
    cmd.arg(script()).arg(model);
    if let Some(r) = reference {
        cmd.arg("--reference").arg(r);
    }
    let out = cmd.output().expect("run python3");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "check_onnx.py failed on {}:\n{text}",
        model.display()
    );
    eprint!("{text}");
}

fn write(
    model: &CheckedModel,
    sources: &SourceMap,
    path: &Path,
    options: &ExportOptions,
) -> onnx::Written {
    let weights = onnx::initialize(model, Init::Default, 7);
    let proto = onnx::export(model, sources, &weights, options).unwrap();
    onnx::write_model(proto, path, options).unwrap()
}

#[test]
fn every_op_passes_checker_shape_inference_and_runtime() {
    common::require_python();
    let mut sources = SourceMap::new();
    let (model, shapes) = every_op(&mut sources);
    // The hand-computed shapes this graph is meant to exercise.
    assert_eq!(
        shapes,
        vec![
            vec![8, 9, 12],
            vec![8, 4, 6],
            vec![8, 3, 4],
            vec![8, 3, 4],
            vec![6, 7, 12],
            vec![6, 4, 7],
            vec![12, 4, 7],
            vec![12, 8, 14],
            vec![12, 2, 7],
            vec![4]
        ]
    );
    let dir = tempfile::tempdir().unwrap();
    for opset in onnx::OPSETS {
        let path = dir.path().join(format!("every_op_{opset}.onnx"));
        let options = ExportOptions {
            opset,
            ..Default::default()
        };
        let w = write(&model, &sources, &path, &options);
        assert!(w.data.is_none());
        run_check(&path, None);
    }
}

#[test]
fn external_data_beside_the_model() {
    common::require_python();
    let mut sources = SourceMap::new();
    // A conv whose weights (5 KiB) go to the external data, then layers whose small float
    // constants stay inline, Resize's scales among them (shape inference reads them).
    let mut b = Builder::new(&mut sources, &[3, 17, 15]);
    let x = b.input;
    let wide = b.add(
        "wide",
        conv(48, [3, 3], [1, 1], Pads::symmetric([1, 1]), [1, 1], 1, true),
        &[x],
    );
    let gelu = b.add("gelu", Op::Gelu, &[wide]);
    let up = b.add(
        "up",
        Op::Upsample {
            to: UpsampleTo::Scale([2, 3]),
            mode: UpsampleMode::Bilinear {
                align_corners: false,
            },
        },
        &[gelu],
    );
    let out = b.add("relu6", Op::Relu6, &[up]);
    let model = b.finish("External", out);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ext.onnx");
    let options = ExportOptions {
        external_data_threshold: 16,
        ..Default::default()
    };
    let w = write(&model, &sources, &path, &options);
    let (data_path, data_len) = w
        .data
        .expect("weights go to external data above the threshold");
    assert_eq!(data_path, dir.path().join("ext.onnx.data"));
    assert_eq!(std::fs::metadata(&data_path).unwrap().len(), data_len);
    // Nothing else (no temporary files) is left in the folder.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);
    run_check(&path, None);
}

/// Single-layer models compared with NumPy references of PyTorch's semantics.
#[test]
fn tricky_lowerings_match_pytorch_semantics() {
    common::require_python();
    let dir = tempfile::tempdir().unwrap();
    let cases: Vec<(&str, [u64; 3], Op, serde_json::Value)> = {
        let mut v = Vec::new();
        let mut pool_case = |name: &'static str, input: [u64; 3], kind: &str, p: PoolAttrs| {
            let spec = serde_json::json!({
                "op": kind, "kernel": p.kernel, "stride": p.stride,
                "pads": p.pads.onnx().to_vec(), "ceil": p.ceil,
                "count_include_pad": p.count_pad,
            });
            let op = if kind == "maxpool" {
                Op::MaxPool(p)
            } else {
                Op::AvgPool(p)
            };
            v.push((name, input, op, spec));
        };
        // count_include_pad with padding, floor mode: divisor k·k everywhere.
        pool_case(
            "avg_pad",
            [2, 7, 6],
            "avgpool",
            pool([3, 3], [2, 2], Pads::symmetric([1, 1]), false),
        );
        // ceil mode with padding and an overhanging last window (Pad + count_include_pad=0).
        pool_case(
            "avg_ceil_pad",
            [2, 7, 10],
            "avgpool",
            pool([3, 3], [2, 2], Pads::symmetric([1, 1]), true),
        );
        // ceil mode without padding, overhanging.
        pool_case(
            "avg_ceil",
            [2, 8, 9],
            "avgpool",
            pool([3, 2], [2, 2], Pads::default(), true),
        );
        // ceil mode where PyTorch drops the window that would start in the end padding.
        pool_case(
            "avg_ceil_drop",
            [1, 5, 5],
            "avgpool",
            pool([2, 2], [2, 2], Pads::symmetric([1, 1]), true),
        );
        // asymmetric padding.
        pool_case(
            "avg_asym",
            [2, 6, 7],
            "avgpool",
            pool([3, 2], [1, 2], pads(2, 0, 1, 1), true),
        );
        // The padding left out of the divisor (count_include_pad=False): symmetric, with a
        // ceil-mode overhang, and asymmetric.
        for (name, input, p) in [
            (
                "avg_nocount_pad",
                [2, 7, 6],
                pool([3, 3], [2, 2], Pads::symmetric([1, 1]), false),
            ),
            (
                "avg_nocount_ceil",
                [2, 7, 10],
                pool([3, 3], [2, 2], Pads::symmetric([1, 1]), true),
            ),
            (
                "avg_nocount_asym",
                [2, 6, 7],
                pool([3, 2], [1, 2], pads(1, 0, 1, 1), true),
            ),
        ] {
            pool_case(
                name,
                input,
                "avgpool",
                PoolAttrs {
                    count_pad: false,
                    ..p
                },
            );
        }
        pool_case(
            "max_ceil",
            [2, 7, 10],
            "maxpool",
            pool([3, 3], [2, 2], Pads::symmetric([1, 1]), true),
        );
        pool_case(
            "max_ceil_nopad",
            [2, 8, 9],
            "maxpool",
            pool([2, 3], [2, 2], Pads::default(), true),
        );
        pool_case(
            "max_ceil_drop",
            [1, 5, 5],
            "maxpool",
            pool([2, 2], [2, 2], Pads::symmetric([1, 1]), true),
        );
        for (name, max_name, input, out) in [
            ("adaptive_5_3", "adaptive_max_5_3", [3, 5, 7], [3, 3]),
            ("adaptive_up", "adaptive_max_up", [2, 3, 4], [5, 7]),
            ("adaptive_div", "adaptive_max_div", [2, 8, 6], [4, 3]),
            ("adaptive_mixed", "adaptive_max_mixed", [2, 8, 7], [4, 3]),
            ("adaptive_wide", "adaptive_max_wide", [1, 2, 29], [1, 5]),
        ] {
            v.push((
                name,
                input,
                Op::AdaptiveAvgPool { output: out },
                serde_json::json!({"op": "adaptive_avgpool", "output": out}),
            ));
            // The same bins' maxima: Gathers of the uneven bins and a MaxPool.
            v.push((
                max_name,
                input,
                Op::AdaptiveMaxPool { output: out },
                serde_json::json!({"op": "adaptive_maxpool", "output": out}),
            ));
        }
        v.push((
            "global_max",
            [3, 5, 7],
            Op::GlobalMaxPool,
            serde_json::json!({"op": "global_maxpool"}),
        ));
        // Transposed convs against their definition: plain, and with an output_pad at or
        // above the stride (below the dilation: PyTorch's rule), which ONNX Runtime's
        // ConvTranspose refuses and cnnc lowers as ConvTranspose + Slice + Pad + bias.
        for (name, input, k, s, d, p, op, groups, bias) in [
            (
                "convT_plain",
                [4, 5, 6],
                [3, 2],
                [2, 2],
                [1, 1],
                pads(1, 0, 0, 1),
                [1, 0],
                2,
                true,
            ),
            (
                "convT_op_dil",
                [2, 4, 5],
                [3, 3],
                [1, 2],
                [2, 3],
                pads(1, 1, 0, 0),
                [1, 2],
                1,
                true,
            ),
            (
                "convT_op_cut",
                [2, 4, 4],
                [2, 3],
                [1, 1],
                [3, 2],
                pads(2, 2, 1, 1),
                [2, 1],
                1,
                false,
            ),
            (
                "convT_op_grp",
                [4, 3, 3],
                [3, 3],
                [1, 1],
                [2, 2],
                pads(0, 0, 0, 0),
                [1, 1],
                2,
                true,
            ),
        ] {
            v.push((
                name,
                input,
                Op::ConvTranspose(ConvTransposeAttrs {
                    out_channels: 4,
                    kernel: k,
                    stride: s,
                    pads: p,
                    output_pad: op,
                    dilation: d,
                    groups,
                    bias,
                }),
                serde_json::json!({
                    "op": "convT", "stride": s, "dilation": d, "groups": groups,
                    "pads": [p.begin[0], p.end[0], p.begin[1], p.end[1]], "output_pad": op,
                    "weight": format!("{name}.weight"),
                    "bias": if bias { Some(format!("{name}.bias")) } else { None },
                }),
            ));
        }
        // The activations ONNX has no operator for, or whose ONNX form differs from
        // PyTorch's, against their definitions; inputs scaled ×4 reach the flat parts.
        for (name, op) in [
            ("silu", Op::Silu),
            ("mish", Op::Mish),
            ("gelu", Op::Gelu),
            ("relu6", Op::Relu6),
            ("hardsigmoid", Op::HardSigmoid),
            ("hardswish", Op::HardSwish),
        ] {
            let spec = serde_json::json!({ "op": name, "input_scale": 4.0 });
            v.push((name, [3, 4, 5], op, spec));
        }
        for (name, factor) in [("scale", 0.17), ("scale_negative", -2.5)] {
            let spec = serde_json::json!({ "op": "scale", "factor": factor });
            v.push((name, [2, 3, 4], Op::Scale { factor }, spec));
        }
        // One constant per channel, and one for all.
        for (name, mean, std) in [
            (
                "normalize_per_channel",
                vec![0.485, -0.456, 2.0],
                vec![0.229, 0.224, 3.5],
            ),
            ("normalize_one", vec![0.2860], vec![0.3530]),
        ] {
            let spec = serde_json::json!({ "op": "normalize", "mean": mean, "std": std });
            v.push((name, [3, 4, 5], Op::Normalize { mean, std }, spec));
        }
        for (name, input, size) in [
            ("crop_odd", [2, 9, 8], [4, 5]),
            ("crop_same", [1, 4, 4], [4, 4]),
        ] {
            v.push((
                name,
                input,
                Op::Crop { size },
                serde_json::json!({"op": "crop", "size": size}),
            ));
        }
        // Padding, each mode, uneven sides, and reflection as deep as it goes (size − 1).
        for (name, input, pads, mode) in [
            ("pad_zeros", [2, 3, 4], [1, 2, 0, 3], PadMode::Zeros),
            ("pad_reflect", [2, 3, 4], [2, 1, 3, 0], PadMode::Reflect),
            ("pad_replicate", [1, 2, 3], [4, 0, 1, 5], PadMode::Replicate),
            (
                "pad_reflect_one_column",
                [1, 3, 2],
                [2, 2, 1, 1],
                PadMode::Reflect,
            ),
        ] {
            let [t, b, l, r] = pads;
            let mode_name = match mode {
                PadMode::Zeros => "zeros",
                PadMode::Reflect => "reflect",
                PadMode::Replicate => "replicate",
            };
            v.push((
                name,
                input,
                Op::Pad {
                    pads: Pads {
                        begin: [t, l],
                        end: [b, r],
                    },
                    mode,
                },
                serde_json::json!({"op": "pad", "pads": pads, "mode": mode_name}),
            ));
        }
        // PReLU, one slope and one per channel (the slopes differ: see below).
        for (name, per_channel) in [("prelu", false), ("prelu_per_channel", true)] {
            v.push((
                name,
                [3, 4, 5],
                Op::Prelu { per_channel },
                serde_json::json!({"op": "prelu", "weight": format!("{name}.weight")}),
            ));
        }
        // Pixel shuffle and unshuffle, non-square blocks of channels and pixels.
        for (name, input, factor, unshuffle) in [
            ("pixel_shuffle_2", [12, 2, 3], 2, false),
            ("pixel_shuffle_3", [9, 3, 2], 3, false),
            ("pixel_unshuffle_2", [3, 4, 6], 2, true),
            ("pixel_unshuffle_3", [2, 3, 6], 3, true),
        ] {
            v.push((
                name,
                input,
                Op::PixelShuffle { factor, unshuffle },
                serde_json::json!({"op": "pixel_shuffle", "factor": factor, "unshuffle": unshuffle}),
            ));
        }
        // Group norm (several channels a group, and one: instance norm), its statistics the
        // sample's own, against the definition, with and without the learned scale.
        for (name, input, groups, affine) in [
            ("groupnorm_2", [4, 3, 5], Some(2), true),
            ("groupnorm_1", [6, 2, 3], Some(1), false),
            ("groupnorm_per_channel", [3, 2, 2], Some(3), true),
            ("instancenorm", [3, 4, 5], None, false),
            ("instancenorm_affine", [2, 3, 3], None, true),
        ] {
            let c = input[0];
            v.push((
                name,
                input,
                Op::GroupNorm {
                    groups,
                    eps: 1e-3,
                    affine,
                },
                serde_json::json!({
                    "op": "groupnorm", "groups": groups.unwrap_or(c), "eps": 1e-3,
                    "weight": affine.then(|| format!("{name}.weight")),
                    "bias": affine.then(|| format!("{name}.bias")),
                    "input_scale": 3.0,
                }),
            ));
        }
        // Layer norm over each pixel's channels (ConvNeXt's LayerNorm2d), with and without
        // the learned scale, and a layer scale: against the definition.
        for (name, input, affine) in [
            ("layernorm", [5, 3, 4], true),
            ("layernorm_no_affine", [3, 2, 5], false),
        ] {
            v.push((
                name,
                input,
                Op::LayerNorm { eps: 1e-3, affine },
                serde_json::json!({
                    "op": "layernorm", "eps": 1e-3,
                    "weight": affine.then(|| format!("{name}.weight")),
                    "bias": affine.then(|| format!("{name}.bias")),
                    "input_scale": 3.0,
                }),
            ));
        }
        v.push((
            "layer_scale",
            [4, 3, 2],
            Op::LayerScale { init: 1e-6 },
            serde_json::json!({"op": "layer_scale", "weight": "layer_scale.weight"}),
        ));
        // Nearest-neighbour upsampling: each pixel repeated (PyTorch's Upsample, 'nearest').
        for (name, input, scale) in [
            ("upsample_2", [2, 3, 4], [2, 2]),
            ("upsample_3x1", [1, 4, 3], [3, 1]),
            // PyTorch's float32 1/41 picks the pixel before at some outputs: gathered.
            ("upsample_41x2", [1, 2, 4], [41, 2]),
        ] {
            v.push((
                name,
                input,
                Op::Upsample {
                    to: UpsampleTo::Scale(scale),
                    mode: UpsampleMode::Nearest,
                },
                serde_json::json!({"op": "upsample", "scale": scale}),
            ));
        }
        // Nearest to a size, as PyTorch's `interpolate(size=…)` picks the source pixels
        // (2 → 82 is where ONNX's Resize would pick another), a whole multiple, a shrink.
        for (name, input, size) in [
            ("upsample_to_7x13", [2, 5, 6], [7, 13]),
            ("upsample_to_82x94", [1, 2, 4], [82, 94]),
            ("upsample_to_82x8_a_multiple", [1, 2, 4], [82, 8]),
            ("upsample_to_rows_only", [1, 6, 5], [74, 5]),
            ("upsample_to_multiple", [2, 3, 4], [6, 12]),
            ("upsample_to_smaller", [1, 6, 5], [4, 3]),
        ] {
            v.push((
                name,
                input,
                Op::Upsample {
                    to: UpsampleTo::Size(size),
                    mode: UpsampleMode::Nearest,
                },
                serde_json::json!({"op": "upsample", "size": size}),
            ));
        }
        // Bilinear upsampling, both of PyTorch's corner conventions, against an
        // interpolation written out pixel by pixel.
        for (name, input, scale, align_corners) in [
            ("bilinear_2", [2, 3, 4], [2, 2], false),
            ("bilinear_3x1", [1, 4, 3], [3, 1], false),
            ("bilinear_1x4_one_row", [2, 1, 3], [1, 4], false),
            ("bilinear_aligned", [2, 3, 5], [2, 3], true),
            ("bilinear_aligned_one_pixel", [1, 1, 1], [2, 2], true),
        ] {
            v.push((
                name,
                input,
                Op::Upsample {
                    to: UpsampleTo::Scale(scale),
                    mode: UpsampleMode::Bilinear { align_corners },
                },
                serde_json::json!({"op": "upsample_bilinear", "scale": scale,
                                   "align_corners": align_corners}),
            ));
        }
        for (name, input, size, align_corners) in [
            ("bilinear_to_7x13", [2, 5, 6], [7, 13], false),
            ("bilinear_to_one_row", [2, 5, 6], [1, 3], false),
            ("bilinear_to_smaller", [1, 6, 5], [4, 3], false),
            ("bilinear_to_aligned", [2, 5, 6], [7, 4], true),
            ("bilinear_to_aligned_one_row", [2, 5, 6], [1, 4], true),
        ] {
            v.push((
                name,
                input,
                Op::Upsample {
                    to: UpsampleTo::Size(size),
                    mode: UpsampleMode::Bilinear { align_corners },
                },
                serde_json::json!({"op": "upsample_bilinear", "size": size,
                                   "align_corners": align_corners}),
            ));
        }
        v
    };
    for (name, input, op, spec) in cases {
        let mut sources = SourceMap::new();
        let mut b = Builder::new(&mut sources, &input);
        let x = b.input;
        let y = b.add(name, op, &[x]);
        let model = b.finish(name, y);
        let path = dir.path().join(format!("{name}.onnx"));
        // Scales and shifts initialized to ones and zeros would not show their layout: a
        // different value for each channel.
        let mut weights = onnx::initialize(&model, Init::Default, 7);
        for (k, t) in weights.tensors.iter_mut() {
            if k.ends_with(".weight") || k.ends_with(".bias") {
                for (i, v) in t.data.iter_mut().enumerate() {
                    *v += 0.25 * (i as f32 + 1.0);
                }
            }
        }
        let options = ExportOptions::default();
        let proto = onnx::export(&model, &sources, &weights, &options).unwrap();
        onnx::write_model(proto, &path, &options).unwrap();
        let spec_path = dir.path().join(format!("{name}.json"));
        std::fs::write(&spec_path, spec.to_string()).unwrap();
        run_check(&path, Some(&spec_path));
    }
}

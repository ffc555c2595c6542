//! Unit tests of export on hand-built graphs (the parser is not needed). The Python checks
//! (checker, shape inference, ONNX Runtime, NumPy references) are in tests/onnx_export.rs.

use super::proto::{data_location, ModelProto};
use super::*;
use crate::diag::Diagnostics;
use crate::ir::{ConvAttrs, ConvTransposeAttrs, Graph, Node, Op, Pads, Shape};
use crate::source::{SourceMap, Span};
use crate::CheckedModel;
use petgraph::graph::{DiGraph, NodeIndex};
use prost::Message;

/// `(name, op, output shape)` applied in sequence to an input; spans on line i+2, col 3.
fn chain(sources: &mut SourceMap, input: &[u64], layers: &[(&str, Op, &[u64])]) -> CheckedModel {
    let text: String = (0..=layers.len()).map(|i| format!("  l{i}\n")).collect();
    let file = sources.add("models/t.cnn", text);
    let span = |i: usize| Span::new(file, i * 5 + 2, i * 5 + 4);
    let mut g = DiGraph::new();
    let node = |name: &str, op: Op, shape: &[u64], span: Span| Node {
        name: name.into(),
        op,
        span,
        shape: Some(Shape(shape.to_vec())),
        params: 0,
        macs: 0,
    };
    let input_ix = g.add_node(node("input", Op::Input, input, span(0)));
    let mut last = input_ix;
    for (i, (name, op, shape)) in layers.iter().enumerate() {
        let ix = g.add_node(node(name, op.clone(), shape, span(i + 1)));
        g.add_edge(last, ix, 0);
        last = ix;
    }
    let graph = Graph {
        graph: g,
        input: input_ix,
        output: last,
        named_outputs: Vec::new(),
        size_reads: Vec::new(),
        size_sources: Default::default(),
    };
    crate::shape::check(
        "T".into(),
        graph,
        span(0),
        "models/t.cnn".into(),
        "ab".repeat(32),
        &Diagnostics::new(),
    )
    .unwrap()
}

fn conv(out: u64, k: u64, pad: u64, groups: u64, bias: bool) -> Op {
    Op::Conv(ConvAttrs {
        out_channels: out,
        kernel: [k, k],
        stride: [1, 1],
        pads: Pads::symmetric([pad, pad]),
        dilation: [1, 1],
        groups,
        bias,
    })
}

fn small(sources: &mut SourceMap) -> CheckedModel {
    chain(
        sources,
        &[2, 6, 6],
        &[
            ("conv1", conv(4, 3, 1, 2, true), &[4, 6, 6]),
            (
                "bn1",
                Op::BatchNorm {
                    eps: 1e-5,
                    momentum: 0.1,
                    affine: true,
                },
                &[4, 6, 6],
            ),
            ("relu1", Op::Relu, &[4, 6, 6]),
            ("flat", Op::Flatten, &[144]),
            (
                "fc",
                Op::Linear {
                    out_features: 10,
                    bias: true,
                },
                &[10],
            ),
        ],
    )
}

#[test]
fn parameter_specs_follow_pytorch() {
    let mut s = SourceMap::new();
    let m = small(&mut s);
    let specs = parameter_specs(&m);
    let got: Vec<(&str, &[usize], ParamKind, usize, usize)> = specs
        .iter()
        .map(|p| (p.name.as_str(), &p.dims[..], p.kind, p.fan_in, p.fan_out))
        .collect();
    assert_eq!(
        got,
        vec![
            ("conv1.weight", &[4, 1, 3, 3][..], ParamKind::Weight, 9, 36),
            ("conv1.bias", &[4][..], ParamKind::Bias, 9, 36),
            ("bn1.weight", &[4][..], ParamKind::BnScale, 0, 0),
            ("bn1.bias", &[4][..], ParamKind::BnShift, 0, 0),
            ("bn1.running_mean", &[4][..], ParamKind::RunningMean, 0, 0),
            ("bn1.running_var", &[4][..], ParamKind::RunningVar, 0, 0),
            ("fc.weight", &[10, 144][..], ParamKind::Weight, 144, 10),
            ("fc.bias", &[10][..], ParamKind::Bias, 144, 10),
        ]
    );

    // ConvTranspose: weight [C, M/g, kh, kw], fan_in from dim 1 as PyTorch computes it.
    let m = chain(
        &mut s,
        &[6, 4, 4],
        &[(
            "up",
            Op::ConvTranspose(ConvTransposeAttrs {
                out_channels: 4,
                kernel: [2, 3],
                stride: [2, 2],
                pads: Pads::default(),
                output_pad: [0, 0],
                dilation: [1, 1],
                groups: 2,
                bias: true,
            }),
            &[4, 8, 9],
        )],
    );
    let specs = parameter_specs(&m);
    assert_eq!(specs[0].dims, vec![6, 2, 2, 3]);
    assert_eq!((specs[0].fan_in, specs[0].fan_out), (12, 36));
    assert_eq!((specs[1].dims.clone(), specs[1].fan_in), (vec![4], 12));
}

#[test]
fn initialization_is_reproducible_bounded_and_per_parameter() {
    let mut s = SourceMap::new();
    let m = small(&mut s);
    let a = initialize(&m, Init::Default, 42);
    assert_eq!(a, initialize(&m, Init::Default, 42));
    assert_ne!(a, initialize(&m, Init::Default, 43));
    let w = &a.get("conv1.weight").unwrap().data;
    let bound = 1.0 / 9f32.sqrt();
    assert!(w.iter().all(|v| v.abs() <= bound));
    assert!(
        w.iter().any(|v| v.abs() > bound * 0.5),
        "values spread over the range"
    );
    assert!(a.get("conv1.bias").unwrap().data.iter().any(|&v| v != 0.0));
    assert!(a.get("bn1.weight").unwrap().data.iter().all(|&v| v == 1.0));
    assert!(a.get("bn1.bias").unwrap().data.iter().all(|&v| v == 0.0));
    assert!(a
        .get("bn1.running_mean")
        .unwrap()
        .data
        .iter()
        .all(|&v| v == 0.0));
    assert!(a
        .get("bn1.running_var")
        .unwrap()
        .data
        .iter()
        .all(|&v| v == 1.0));

    let x = initialize(&m, Init::Xavier, 42);
    let xb = (6.0f32 / (144.0 + 10.0)).sqrt();
    assert!(x
        .get("fc.weight")
        .unwrap()
        .data
        .iter()
        .all(|v| v.abs() <= xb));
    assert!(x.get("fc.bias").unwrap().data.iter().all(|&v| v == 0.0));
    let k = initialize(&m, Init::Kaiming, 42);
    let kb = (6.0f32 / 144.0).sqrt();
    let kw = &k.get("fc.weight").unwrap().data;
    assert!(kw.iter().all(|v| v.abs() <= kb) && kw.iter().any(|v| v.abs() > xb));

    // Adding a layer in front of the head changes no other layer's values.
    let bigger = chain(
        &mut s,
        &[2, 6, 6],
        &[
            ("conv1", conv(4, 3, 1, 2, true), &[4, 6, 6]),
            ("conv0", conv(4, 1, 0, 1, true), &[4, 6, 6]),
            (
                "bn1",
                Op::BatchNorm {
                    eps: 1e-5,
                    momentum: 0.1,
                    affine: true,
                },
                &[4, 6, 6],
            ),
            ("relu1", Op::Relu, &[4, 6, 6]),
            ("flat", Op::Flatten, &[144]),
            (
                "fc",
                Op::Linear {
                    out_features: 10,
                    bias: true,
                },
                &[10],
            ),
        ],
    );
    let b = initialize(&bigger, Init::Default, 42);
    for (name, t) in &a.tensors {
        assert_eq!(
            b.get(name),
            Some(t),
            "{name} changed when a layer was added"
        );
    }
}

#[test]
fn safetensors_round_trip_and_every_problem_reported() {
    let mut s = SourceMap::new();
    let m = small(&mut s);
    let specs = parameter_specs(&m);
    let w = initialize(&m, Init::Default, 1);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.safetensors");
    save_safetensors(&path, &w).unwrap();
    assert_eq!(load_safetensors(&path, &specs).unwrap(), w);

    // Missing conv1.bias, fc.weight transposed, an extra tensor, bn1.weight in float64, a
    // NaN in conv1.weight, a negative running variance; PyTorch's int64 bn1.num_batches_tracked is no problem.
    let mut bad: Vec<(String, safetensors::Dtype, Vec<usize>, Vec<u8>)> = Vec::new();
    for (name, t) in &w.tensors {
        let raw: Vec<u8> = t.data.iter().flat_map(|v| v.to_le_bytes()).collect();
        match name.as_str() {
            "conv1.bias" => {}
            "conv1.weight" => {
                let mut raw = raw;
                raw[..4].copy_from_slice(&f32::NAN.to_le_bytes());
                bad.push((name.clone(), safetensors::Dtype::F32, t.dims.clone(), raw))
            }
            "fc.weight" => bad.push((name.clone(), safetensors::Dtype::F32, vec![144, 10], raw)),
            "bn1.running_var" => {
                let mut raw = raw;
                raw[4..8].copy_from_slice(&(-0.5f32).to_le_bytes());
                bad.push((name.clone(), safetensors::Dtype::F32, t.dims.clone(), raw))
            }
            "bn1.weight" => bad.push((
                name.clone(),
                safetensors::Dtype::F64,
                t.dims.clone(),
                t.data
                    .iter()
                    .flat_map(|&v| (v as f64).to_le_bytes())
                    .collect(),
            )),
            _ => bad.push((name.clone(), safetensors::Dtype::F32, t.dims.clone(), raw)),
        }
    }
    bad.push((
        "bn1.num_batches_tracked".into(),
        safetensors::Dtype::I64,
        vec![],
        vec![0; 8],
    ));
    bad.push((
        "head.weight".into(),
        safetensors::Dtype::F32,
        vec![1],
        vec![0; 4],
    ));
    bad.push((
        "head.half".into(),
        safetensors::Dtype::F16,
        vec![2],
        vec![0; 4],
    ));
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = bad
        .iter()
        .map(|(n, d, dims, raw)| {
            (
                n.clone(),
                safetensors::tensor::TensorView::new(*d, dims.clone(), raw).unwrap(),
            )
        })
        .collect();
    std::fs::write(&path, safetensors::serialize(views, None).unwrap()).unwrap();
    let err = load_safetensors(&path, &specs).unwrap_err();
    let WeightsError::Mismatch { problems, .. } = &err else {
        panic!("{err}")
    };
    // The float64 `bn1.weight` is converted, not a problem; float16 is one.
    assert_eq!(problems.len(), 6, "{err}");
    let text = err.to_string();
    assert!(!text.contains("bn1.weight"), "{text}");
    for needle in [
        "6 problems",
        "`head.half` is F16; cnnc reads float32 (F32) and float64 (F64) tensors",
        "`bn1.running_var` holds 1 negative value(s)",
        "`conv1.weight` holds 1 NaN or infinite value(s)",
        "missing `conv1.bias`",
        "`fc.weight` has shape [144, 10]; the model needs [10, 144]",
        "`head.weight` [1] is not a parameter",
    ] {
        assert!(text.contains(needle), "{needle:?} not in:\n{text}");
    }
    assert!(!text.contains("names its tensors another way"), "{text}");

    // A PyTorch state_dict as it is, named by module path (its first name happening to be
    // the model's, as torchvision's `conv1.weight` is a ResNet's), with the step counters of
    // its batch norms: said in one line, with where the model's names are listed; the
    // counters are no problem whatever their layer's name.
    let mut renamed: Vec<(String, safetensors::Dtype, Vec<usize>, Vec<u8>)> = Vec::new();
    for (i, (name, t)) in w.tensors.iter().enumerate() {
        let raw: Vec<u8> = t.data.iter().flat_map(|v| v.to_le_bytes()).collect();
        let name = if i == 0 {
            name.clone()
        } else {
            format!("features.{i}.weight")
        };
        renamed.push((name, safetensors::Dtype::F32, t.dims.clone(), raw));
        renamed.push((
            format!("features.{i}.num_batches_tracked"),
            safetensors::Dtype::I64,
            vec![],
            vec![0; 8],
        ));
    }
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = renamed
        .iter()
        .map(|(n, d, dims, raw)| {
            let view = safetensors::tensor::TensorView::new(*d, dims.clone(), raw);
            (n.clone(), view.unwrap())
        })
        .collect();
    std::fs::write(&path, safetensors::serialize(views, None).unwrap()).unwrap();
    let text = load_safetensors(&path, &specs).unwrap_err().to_string();
    assert!(
        text.contains("the file names its tensors another way (`features.")
            && text.contains("--format json` lists them")
            && !text.contains("num_batches_tracked` is"),
        "{text}"
    );
    // At most 20 problems are listed one by one.
    let many = WeightsError::Mismatch {
        path: path.clone(),
        problems: (0..30)
            .map(|i| WeightProblem::Missing {
                name: format!("conv{i}.weight"),
                expected: vec![1],
            })
            .collect(),
        foreign_name: None,
    }
    .to_string();
    assert_eq!(many.lines().count(), 22, "{many}");
    assert!(
        many.contains("30 problems") && many.ends_with("… and 10 more"),
        "{many}"
    );

    // Text (a `.cnn` given as weights) is named as such, not as safetensors' "header too
    // large"; a missing file in words, without the OS error number.
    std::fs::write(&path, b"model M(input: [1, 4, 4]) { flatten }").unwrap();
    let e = load_safetensors(&path, &specs).unwrap_err();
    assert!(matches!(e, WeightsError::Format { .. }));
    assert!(e.to_string().contains("it starts with text"), "{e}");
    // Non-ASCII text with a byte-order mark too.
    std::fs::write(
        &path,
        "\u{feff}# modèle\nmodel M(input: [1, 4, 4]) { flatten }",
    )
    .unwrap();
    let e = load_safetensors(&path, &specs).unwrap_err();
    assert!(e.to_string().contains("it starts with text"), "{e}");
    // A trained ONNX model, or a NumPy array, given as the weights: named as what it is.
    let mut model = vec![0x08, 0x08, 0x12, 0x04];
    model.extend_from_slice(b"cnnc and more bytes than a header");
    std::fs::write(&path, &model).unwrap();
    let e = load_safetensors(&path, &specs).unwrap_err();
    assert!(e.to_string().contains("it is an ONNX model"), "{e}");
    let mut array = Vec::new();
    crate::runtime::npy::write_f32(&mut array, &[2], &[1.0, 2.0]).unwrap();
    std::fs::write(&path, &array).unwrap();
    let e = load_safetensors(&path, &specs).unwrap_err();
    assert!(e.to_string().contains("it is a NumPy `.npy` array"), "{e}");
    let missing = dir.path().join("none.safetensors");
    let e = load_safetensors(&missing, &specs).unwrap_err();
    assert!(matches!(e, WeightsError::Io { .. }));
    assert!(e.to_string().ends_with(": no such file"), "{e}");
}

#[test]
fn opsets_and_ir_versions() {
    assert_eq!(
        OPSETS.map(|o| ir_version(o).unwrap()).collect::<Vec<_>>(),
        vec![8, 8, 9, 9, 10]
    );
    let mut s = SourceMap::new();
    let m = small(&mut s);
    let w = initialize(&m, Init::Default, 0);
    for bad in [16, 22] {
        let o = ExportOptions {
            opset: bad,
            ..Default::default()
        };
        let e = export(&m, &s, &w, &o).unwrap_err();
        assert!(e.to_string().contains("opsets 17 to 21"), "{e}");
    }
    let o = ExportOptions {
        opset: 21,
        ..Default::default()
    };
    let p = export(&m, &s, &w, &o).unwrap();
    assert_eq!((p.ir_version, p.opset_import[0].version), (10, 21));
}

#[test]
fn names_spans_metadata_and_attributes() {
    let mut s = SourceMap::new();
    let m = small(&mut s);
    let w = initialize(&m, Init::Default, 0);
    let bytes = export_bytes(&m, &s, &w, &ExportOptions::default()).unwrap();
    let p = ModelProto::decode(&bytes[..]).unwrap();
    assert_eq!(p, export(&m, &s, &w, &ExportOptions::default()).unwrap());
    assert_eq!((p.ir_version, p.producer_name.as_str()), (8, "cnnc"));
    let meta: Vec<(&str, &str)> = p
        .metadata_props
        .iter()
        .map(|e| (e.key.as_str(), e.value.as_str()))
        .collect();
    let hash = "ab".repeat(32);
    assert_eq!(
        meta,
        vec![
            ("cnnc_version", crate::VERSION),
            ("source_file", "models/t.cnn"),
            ("source_sha256", hash.as_str()),
        ]
    );
    let g = p.graph.unwrap();
    let nodes: Vec<(&str, &str, Vec<&str>, &str, &str)> = g
        .node
        .iter()
        .map(|n| {
            (
                n.name.as_str(),
                n.op_type.as_str(),
                n.input.iter().map(String::as_str).collect(),
                n.output[0].as_str(),
                n.doc_string.as_str(),
            )
        })
        .collect();
    assert_eq!(
        nodes,
        vec![
            (
                "conv1",
                "Conv",
                vec!["input", "conv1.weight", "conv1.bias"],
                "conv1",
                "models/t.cnn:2:3"
            ),
            (
                "bn1",
                "BatchNormalization",
                vec![
                    "conv1",
                    "bn1.weight",
                    "bn1.bias",
                    "bn1.running_mean",
                    "bn1.running_var"
                ],
                "bn1",
                "models/t.cnn:3:3"
            ),
            ("relu1", "Relu", vec!["bn1"], "relu1", "models/t.cnn:4:3"),
            ("flat", "Flatten", vec!["relu1"], "flat", "models/t.cnn:5:3"),
            (
                "fc",
                "Gemm",
                vec!["flat", "fc.weight", "fc.bias"],
                "output",
                "models/t.cnn:6:3"
            ),
        ]
    );
    let bn = &g.node[1];
    let attr = |n: &str| {
        bn.attribute
            .iter()
            .find(|a| a.name == n)
            .unwrap()
            .f
            .unwrap()
    };
    assert!((attr("momentum") - 0.9).abs() < 1e-7);
    assert!((attr("epsilon") - 1e-5).abs() < 1e-10);
    let conv_group = g.node[0]
        .attribute
        .iter()
        .find(|a| a.name == "group")
        .unwrap();
    assert_eq!(conv_group.i, Some(2));
    assert_eq!(
        g.value_info
            .iter()
            .map(|v| v.name.as_str())
            .collect::<Vec<_>>(),
        vec!["conv1", "bn1", "relu1", "flat"]
    );
    assert_eq!(
        (g.input[0].name.as_str(), g.output[0].name.as_str()),
        ("input", "output")
    );
    let init: Vec<&str> = g.initializer.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(init.len(), 8);
    let fc = g
        .initializer
        .iter()
        .find(|t| t.name == "fc.weight")
        .unwrap();
    assert_eq!(fc.dims, vec![10, 144]);
    assert_eq!(fc.raw_data.len(), 1440 * 4);
    assert_eq!(
        &fc.raw_data[..4],
        &w.get("fc.weight").unwrap().data[0].to_le_bytes()
    );
}

#[test]
fn mismatched_weights_and_name_clashes_are_errors() {
    let mut s = SourceMap::new();
    let m = small(&mut s);
    let mut w = initialize(&m, Init::Default, 0);
    w.tensors.remove("fc.bias");
    w.tensors.get_mut("conv1.weight").unwrap().dims = vec![4, 2, 3, 3];
    match export(&m, &s, &w, &ExportOptions::default()) {
        Err(ExportError::Weights(p)) => assert_eq!(p.len(), 2, "{p:?}"),
        other => panic!("{other:?}"),
    }

    let m = chain(
        &mut s,
        &[2, 6, 6],
        &[
            ("conv", conv(2, 1, 0, 1, false), &[2, 6, 6]),
            ("conv.weight", Op::Relu, &[2, 6, 6]),
            ("relu", Op::Relu, &[2, 6, 6]),
        ],
    );
    let w = initialize(&m, Init::Default, 0);
    let e = export(&m, &s, &w, &ExportOptions::default()).unwrap_err();
    assert!(
        matches!(&e, ExportError::NameClash(n) if n == "conv.weight"),
        "{e}"
    );
}

/// Float tensors go to the external data; int64 constants and Resize's scales, which shape
/// inference reads, stay inline.
#[test]
fn external_data_moves_float_initializers_but_shape_data() {
    let mut s = SourceMap::new();
    let m = chain(
        &mut s,
        &[8, 6, 6],
        &[
            ("conv1", conv(16, 3, 1, 1, true), &[16, 6, 6]),
            ("crop", Op::Crop { size: [4, 4] }, &[16, 4, 4]),
            (
                "up",
                Op::Upsample {
                    to: crate::ir::UpsampleTo::Scale([2, 2]),
                    mode: crate::ir::UpsampleMode::Bilinear {
                        align_corners: false,
                    },
                },
                &[16, 8, 8],
            ),
        ],
    );
    let w = initialize(&m, Init::Default, 0);
    let mut p = export(&m, &s, &w, &ExportOptions::default()).unwrap();
    assert!(externalize(&mut p.clone(), "m.onnx.data", 1 << 20).is_none());
    let data = externalize(&mut p, "m.onnx.data", 16).unwrap();
    let g = p.graph.unwrap();
    let external: Vec<&str> = g
        .initializer
        .iter()
        .filter(|t| t.data_location == data_location::EXTERNAL)
        .map(|t| t.name.as_str())
        .collect();
    assert_eq!(external, ["conv1.weight", "conv1.bias"]);
    for t in &g.initializer {
        if !external.contains(&t.name.as_str()) {
            assert_eq!(t.data_location, data_location::DEFAULT);
            assert!(!t.raw_data.is_empty(), "{} is inline", t.name);
            continue;
        }
        assert!(t.raw_data.is_empty());
        let kv = |k: &str| {
            t.external_data
                .iter()
                .find(|e| e.key == k)
                .unwrap()
                .value
                .clone()
        };
        assert_eq!(kv("location"), "m.onnx.data");
        let off: usize = kv("offset").parse().unwrap();
        let len: usize = kv("length").parse().unwrap();
        assert_eq!(off % 64, 0);
        let want: Vec<u8> = w
            .get(&t.name)
            .unwrap()
            .data
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        assert_eq!(&data[off..off + len], &want[..]);
    }
}

#[test]
fn adaptive_pool_matrices_average_pytorch_bins() {
    let mut s = SourceMap::new();
    let m = chain(
        &mut s,
        &[1, 5, 3],
        &[("ap", Op::AdaptiveAvgPool { output: [3, 2] }, &[1, 3, 2])],
    );
    let w = initialize(&m, Init::Default, 0);
    let g = export(&m, &s, &w, &ExportOptions::default())
        .unwrap()
        .graph
        .unwrap();
    let f32s = |name: &str| -> Vec<f32> {
        let t = g.initializer.iter().find(|t| t.name == name).unwrap();
        t.raw_data
            .chunks(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect()
    };
    // 5 → 3: bins [0,2), [1,4), [3,5).
    let third = 1.0 / 3.0;
    assert_eq!(
        f32s("ap.pool_h"),
        vec![0.5, 0.5, 0.0, 0.0, 0.0, 0.0, third, third, third, 0.0, 0.0, 0.0, 0.0, 0.5, 0.5]
    );
    // 3 → 2 (stored transposed, [3, 2]): bins [0,2), [1,3).
    assert_eq!(f32s("ap.pool_w"), vec![0.5, 0.0, 0.5, 0.5, 0.0, 0.5]);
    let _: NodeIndex = m.graph.output;
}

/// A model whose parameters cross the streaming writer's chunk boundaries both ways: a
/// 300,000-value weight spans two chunks, and one chunk holds many small tensors; the
/// adaptive pool adds float constants that are not parameters.
fn chunky(sources: &mut SourceMap) -> CheckedModel {
    let lin = |out| Op::Linear {
        out_features: out,
        bias: true,
    };
    let bn = Op::BatchNorm {
        eps: 1e-5,
        momentum: 0.1,
        affine: true,
    };
    chain(
        sources,
        &[3, 10, 10],
        &[
            ("conv1", conv(8, 3, 1, 1, true), &[8, 10, 10]),
            ("bn1", bn.clone(), &[8, 10, 10]),
            ("ap", Op::AdaptiveAvgPool { output: [3, 2] }, &[8, 3, 2]),
            ("flat", Op::Flatten, &[48]),
            ("fc1", lin(6250), &[6250]),
            ("bn2", bn, &[6250]),
            ("fc2", lin(48), &[48]),
            ("fc3", lin(10), &[10]),
        ],
    )
}

#[test]
fn streamed_export_is_byte_identical_to_the_encoded_model() {
    let mut s = SourceMap::new();
    let m = chunky(&mut s);
    let values: usize = parameter_specs(&m).iter().map(ParamSpec::elements).sum();
    assert!(values > 1 << 18, "crosses a chunk boundary");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.onnx");
    let options = ExportOptions::default();
    for (init, seed) in [(Init::Default, 0), (Init::Xavier, 7), (Init::Kaiming, 1)] {
        let w = initialize(&m, init, seed);
        let want = export_bytes(&m, &s, &w, &options).unwrap();
        let drawn = ParamValues::Drawn { init, seed };
        let written = export_to_file(&m, &s, drawn, &path, &options).unwrap();
        let got = std::fs::read(&path).unwrap();
        assert_eq!(written.model_bytes, got.len() as u64);
        let first = got.iter().zip(&want).position(|(a, b)| a != b);
        assert!(
            got == want,
            "drawn {init:?} {seed}: bytes differ from {first:?} on"
        );
        export_to_file(&m, &s, ParamValues::Given(&w), &path, &options).unwrap();
        assert!(
            std::fs::read(&path).unwrap() == want,
            "given: the bytes differ"
        );
    }
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}

#[test]
fn streamed_external_data_matches_the_in_memory_writer() {
    let mut s = SourceMap::new();
    let m = chunky(&mut s);
    let dir = tempfile::tempdir().unwrap();
    let options = ExportOptions {
        external_data_threshold: 1000,
        ..Default::default()
    };
    let w = initialize(&m, Init::Default, 3);
    let a = dir.path().join("a.onnx");
    write_model(export(&m, &s, &w, &options).unwrap(), &a, &options).unwrap();
    let b = dir.path().join("b.onnx");
    let drawn = ParamValues::Drawn {
        init: Init::Default,
        seed: 3,
    };
    let written = export_to_file(&m, &s, drawn, &b, &options).unwrap();
    let (data_path, data_len) = written.data.unwrap();
    assert_eq!(data_path, dir.path().join("b.onnx.data"));
    let data = std::fs::read(&data_path).unwrap();
    assert_eq!(data_len, data.len() as u64);
    assert!(data == std::fs::read(dir.path().join("a.onnx.data")).unwrap());
    // The models differ only in the data file's name.
    let model = |p: &std::path::Path| -> ModelProto {
        let mut m = ModelProto::decode(&std::fs::read(p).unwrap()[..]).unwrap();
        for t in &mut m.graph.as_mut().unwrap().initializer {
            for e in &mut t.external_data {
                e.value = e.value.replace("b.onnx.data", "a.onnx.data");
            }
        }
        m
    };
    let (ma, mb) = (model(&a), model(&b));
    let inits = &ma.graph.as_ref().unwrap().initializer;
    let location = |name: &str| inits.iter().find(|t| t.name == name).unwrap().data_location;
    assert_eq!(location("fc1.weight"), data_location::EXTERNAL);
    assert_eq!(location("conv1.bias"), data_location::EXTERNAL);
    assert_eq!(ma, mb);
    // The same from given weights.
    export_to_file(&m, &s, ParamValues::Given(&w), &b, &options).unwrap();
    assert!(data == std::fs::read(&data_path).unwrap());
    assert_eq!(ma, model(&b));
}

/// An export replaces the external data file beside its model only where that model uses it:
/// a user's file (or a link) of that name is refused and left as it is, by both writers.
#[test]
fn external_data_replaces_only_the_replaced_models_data() {
    let mut s = SourceMap::new();
    let m = chunky(&mut s);
    let dir = tempfile::tempdir().unwrap();
    let options = ExportOptions {
        external_data_threshold: 1000,
        ..Default::default()
    };
    let drawn = ParamValues::Drawn {
        init: Init::Default,
        seed: 0,
    };
    let w = initialize(&m, Init::Default, 0);
    let path = dir.path().join("m.onnx");
    let data = dir.path().join("m.onnx.data");
    std::fs::write(&data, "precious").unwrap();
    let e = export_to_file(&m, &s, drawn, &path, &options).unwrap_err();
    assert!(matches!(e, ExportError::DataFileInTheWay { .. }), "{e}");
    assert!(
        e.to_string().contains(
            "a file is there that no model uses (it was left as it is); remove it or choose \
             another output name"
        ),
        "{e}"
    );
    let e = write_model(export(&m, &s, &w, &options).unwrap(), &path, &options).unwrap_err();
    assert!(matches!(e, ExportError::DataFileInTheWay { .. }), "{e}");
    assert_eq!(std::fs::read_to_string(&data).unwrap(), "precious");
    assert!(!path.exists());
    // A link there is refused too, and its target left alone.
    std::fs::remove_file(&data).unwrap();
    #[cfg(unix)]
    {
        let target = dir.path().join("target.txt");
        std::fs::write(&target, "mine").unwrap();
        std::os::unix::fs::symlink(&target, &data).unwrap();
        assert!(export_to_file(&m, &s, drawn, &path, &options).is_err());
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "mine");
        std::fs::remove_file(&data).unwrap();
    }
    // The model's own data file is replaced by the next export.
    export_to_file(&m, &s, drawn, &path, &options).unwrap();
    assert!(super::lower::uses_its_data_file(&path));
    // A file of another length put at its name since is not its data: left alone.
    let data_bytes = std::fs::read(&data).unwrap();
    std::fs::write(&data, "my notes").unwrap();
    assert!(!super::lower::uses_its_data_file(&path));
    let e = export_to_file(&m, &s, drawn, &path, &options).unwrap_err();
    assert!(
        e.to_string()
            .contains("a file is there that is not the data of the model at"),
        "{e}"
    );
    assert_eq!(std::fs::read_to_string(&data).unwrap(), "my notes");
    std::fs::write(&data, &data_bytes).unwrap();
    let other = ParamValues::Drawn {
        init: Init::Default,
        seed: 1,
    };
    let before = std::fs::read(&data).unwrap();
    export_to_file(&m, &s, other, &path, &options).unwrap();
    assert!(std::fs::read(&data).unwrap() != before);
}

#[test]
fn streamed_export_checks_given_weights_and_leaves_nothing_on_error() {
    let mut s = SourceMap::new();
    let m = chunky(&mut s);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.onnx");
    let mut w = initialize(&m, Init::Default, 0);
    w.tensors.remove("fc1.weight");
    let e = export_to_file(
        &m,
        &s,
        ParamValues::Given(&w),
        &path,
        &ExportOptions::default(),
    )
    .unwrap_err();
    assert!(e.to_string().contains("fc1.weight"), "{e}");
    let missing = dir.path().join("no/such/m.onnx");
    let drawn = ParamValues::Drawn {
        init: Init::Default,
        seed: 0,
    };
    assert!(export_to_file(&m, &s, drawn, &missing, &ExportOptions::default()).is_err());
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[cfg(unix)]
#[test]
fn external_data_goes_beside_a_linked_model_and_not_to_a_device() {
    let mut s = SourceMap::new();
    let m = chunky(&mut s);
    let dir = tempfile::tempdir().unwrap();
    let options = ExportOptions {
        external_data_threshold: 1000,
        ..Default::default()
    };
    let drawn = ParamValues::Drawn {
        init: Init::Default,
        seed: 0,
    };
    std::fs::create_dir(dir.path().join("real")).unwrap();
    std::fs::create_dir(dir.path().join("links")).unwrap();
    let link = dir.path().join("links/m.onnx");
    std::os::unix::fs::symlink("../real/m.onnx", &link).unwrap();
    let written = export_to_file(&m, &s, drawn, &link, &options).unwrap();
    assert_eq!(
        written.data.unwrap().0,
        dir.path().join("links/../real/m.onnx.data")
    );
    assert!(dir.path().join("real/m.onnx").is_file());
    assert!(dir.path().join("real/m.onnx.data").is_file());
    assert!(!dir.path().join("links/m.onnx.data").exists());
    // A pipe cannot have a data file beside it: refused before anything is written.
    let fifo = dir.path().join("pipe");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let e = export_to_file(&m, &s, drawn, &fifo, &options).unwrap_err();
    assert!(e.to_string().contains("not a regular file"), "{e}");
    assert!(!dir.path().join("pipe.data").exists());
}

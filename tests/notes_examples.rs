//! The worked examples of the notes, compiled from `.cnn` text, exported with given weights
//! and run through ONNX Runtime: the numbers must come out exactly.

use cnnc::onnx::{self, ExportOptions, Tensor};
use cnnc::runtime::{Device, Input, Runtime};
use std::path::Path;

/// Compiles a one-model source, exports it with `weights`, runs it on `input` (one sample).
fn run(source: &str, weights: &[(&str, Vec<usize>, Vec<f32>)], input: &[f32]) -> (Vec<usize>, Vec<f32>) {
    let c = cnnc::compile_source(Path::new("example.cnn"), source.to_string());
    let errors: Vec<String> = c.diagnostics.iter().map(|d| d.render(&c.sources, false)).collect();
    assert!(!c.diagnostics.has_errors(), "{}", errors.join("\n"));
    let model = c.model(None).unwrap();
    // Given weights override the default initialisation.
    let mut w = onnx::initialize(model, onnx::Init::Default, 0);
    for (name, dims, data) in weights {
        w.insert(*name, Tensor { dims: dims.clone(), data: data.clone() });
    }
    let bytes = onnx::export_bytes(model, &c.sources, &w, &ExportOptions::default()).unwrap();
    let runtime = Runtime::get().expect("ONNX Runtime: pip install onnxruntime");
    let mut session = runtime.session(&bytes, Device::Cpu).unwrap();
    let mut shape = vec![1usize];
    shape.extend(model.input_shape().dims().iter().map(|&d| d as usize));
    let out = session.run(&[Input::f32("input", &shape, input)]).unwrap();
    let o = out.into_iter().next().unwrap();
    let shape = o.shape.clone();
    (shape, o.into_f32().unwrap())
}

fn arange(n: usize) -> Vec<f32> {
    (0..n).map(|i| i as f32).collect()
}

#[test]
fn cross_correlation_of_the_notes() {
    let (shape, y) = run(
        "model M(input: [1, 3, 3]) { conv(1, 2, bias=false) }",
        &[("conv1.weight", vec![1, 1, 2, 2], vec![0.0, 1.0, 2.0, 3.0])],
        &arange(9),
    );
    assert_eq!(shape, vec![1, 1, 2, 2]);
    assert_eq!(y, vec![19.0, 25.0, 37.0, 43.0]);
}

#[test]
fn two_input_channels_sum() {
    let x: Vec<f32> = arange(9).into_iter().chain((1..10).map(|i| i as f32)).collect();
    let k = vec![0.0, 1.0, 2.0, 3.0, 1.0, 2.0, 3.0, 4.0];
    let (_, y) = run(
        "model M(input: [2, 3, 3]) { conv(1, 2, bias=false) }",
        &[("conv1.weight", vec![1, 2, 2, 2], k)],
        &x,
    );
    assert_eq!(y, vec![56.0, 72.0, 104.0, 120.0]);
}

#[test]
fn three_output_channels() {
    let x: Vec<f32> = arange(9).into_iter().chain((1..10).map(|i| i as f32)).collect();
    let k0 = [0.0f32, 1.0, 2.0, 3.0, 1.0, 2.0, 3.0, 4.0];
    let k: Vec<f32> = (0..3).flat_map(|o| k0.iter().map(move |v| v + o as f32)).collect();
    let (shape, y) = run(
        "model M(input: [2, 3, 3]) { conv(3, 2, bias=false) }",
        &[("conv1.weight", vec![3, 2, 2, 2], k)],
        &x,
    );
    assert_eq!(shape, vec![1, 3, 2, 2]);
    assert_eq!(
        y,
        vec![56.0, 72.0, 104.0, 120.0, 76.0, 100.0, 148.0, 172.0, 96.0, 128.0, 192.0, 224.0]
    );
}

#[test]
fn max_and_average_pooling() {
    let (_, y) = run("model M(input: [1, 3, 3]) { maxpool(2, stride=1) }", &[], &arange(9));
    assert_eq!(y, vec![4.0, 5.0, 7.0, 8.0]);
    let (_, y) = run("model M(input: [1, 3, 3]) { avgpool(2, stride=1) }", &[], &arange(9));
    assert_eq!(y, vec![2.0, 3.0, 5.0, 6.0]);
    let (shape, y) = run("model M(input: [1, 4, 4]) { maxpool(3, pad=1, stride=2) }", &[], &arange(16));
    assert_eq!(shape, vec![1, 1, 2, 2]);
    assert_eq!(y, vec![5.0, 7.0, 13.0, 15.0]);
}

#[test]
fn the_learned_edge_detector() {
    // The notes' 6×8 image: ones with a black stripe in columns 2..6.
    let x: Vec<f32> = (0..48).map(|i| if (2..6).contains(&(i % 8)) { 0.0 } else { 1.0 }).collect();
    let (shape, y) = run(
        "model M(input: [1, 6, 8]) { conv(1, [1, 2], bias=false) }",
        &[("conv1.weight", vec![1, 1, 1, 2], vec![1.0, -1.0])],
        &x,
    );
    assert_eq!(shape, vec![1, 1, 6, 7]);
    for row in y.chunks(7) {
        assert_eq!(row, &[0.0, 1.0, 0.0, 0.0, 0.0, -1.0, 0.0]);
    }
}

#[test]
fn padding_and_stride_shapes_of_the_notes() {
    let cases = [
        ("conv(1, 3, pad=1)", [6, 8]),
        ("conv(1, [5, 3], pad=[2, 1])", [6, 8]),
        ("conv(1, 3, pad=1, stride=2)", [3, 4]),
        ("conv(1, [3, 5], pad=[0, 1], stride=[3, 4])", [2, 2]),
    ];
    for (layer, [h, w]) in cases {
        let (shape, _) = run(&format!("model M(input: [1, 6, 8]) {{ {layer} }}"), &[], &[0.5; 48]);
        assert_eq!(shape, vec![1, 1, h, w], "{layer}");
    }
}

#[test]
fn a_transposed_conv_undoes_the_size_change() {
    for (conv, convt) in [
        ("conv(4, 3, pad=1, stride=2)", "convT(1, 3, pad=1, stride=2, output_pad=1)"),
        ("conv(4, 2, stride=2)", "convT(1, 2, stride=2)"),
        ("conv(4, [3, 5], pad=[0, 1], stride=[3, 4])", "convT(1, [3, 5], pad=[0, 1], stride=[3, 4], output_pad=[0, 1])"),
    ] {
        let (shape, _) = run(&format!("model M(input: [1, 6, 8]) {{ {conv} {convt} }}"), &[], &[0.5; 48]);
        assert_eq!(shape, vec![1, 1, 6, 8], "{conv} then {convt}");
    }
}

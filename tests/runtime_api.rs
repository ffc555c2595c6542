//! The library side of `cnnc::runtime`: one Runtime per process, sessions, the general named
//! f32/i64 run that training uses, and the errors for inputs that do not fit. Models come from
//! tests/python/rt_make_models.py; a machine without python3+onnx+numpy skips with a reason.

mod common;

use cnnc::runtime::{
    Device, Dim, ElementType, Input, OutputData, Runtime, RuntimeError, CUDA_PROVIDER,
};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The ONNX models and inputs made by tests/python (python3 with onnx and numpy, which
/// `.ci/run` installs): a failure to make them fails the test, never skips it.
fn fixtures() -> &'static Path {
    static DIR: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let dir = DIR.get_or_init(|| common::make_runtime_fixtures("runtime_api"));
    match dir {
        Ok(d) => d,
        Err(why) => panic!("the runtime fixtures cannot be made: {why}"),
    }
}

fn model(name: &str) -> Vec<u8> {
    std::fs::read(fixtures().join(name)).unwrap()
}

fn runtime() -> &'static Runtime {
    Runtime::get().expect("onnxruntime is installed on this machine (see `cnnc doctor`)")
}

#[test]
fn one_runtime_per_process() {
    let a = runtime();
    let b = Runtime::get().unwrap();
    assert!(std::ptr::eq(a, b));
    assert!(a.version().is_some(), "{a:?}");
    assert!(a.library().path.exists());
    let providers = a.available_providers().unwrap();
    assert!(
        providers.iter().any(|p| p == "CPUExecutionProvider"),
        "{providers:?}"
    );
}

#[test]
fn run_f32_on_a_conv_model() {
    let bytes = model("conv.onnx");
    let mut s = runtime().session(&bytes, Device::Cpu).unwrap();
    assert_eq!(
        s.input_shape(),
        &[
            Dim::Symbolic("N".into()),
            Dim::Fixed(1),
            Dim::Fixed(3),
            Dim::Fixed(3)
        ]
    );
    assert_eq!(s.output_names(), vec!["y"]);
    let x: Vec<f32> = (0..9).map(|v| v as f32).collect();
    let (shape, y) = s.run_f32(&x, &[1, 1, 3, 3]).unwrap();
    assert_eq!(shape, vec![1, 1, 2, 2]);
    assert_eq!(y, vec![19.0, 25.0, 37.0, 43.0]);
    // The batch dimension is free: two copies give two results.
    let x2: Vec<f32> = x.iter().chain(&x).copied().collect();
    let (shape, y) = s.run_f32(&x2, &[2, 1, 3, 3]).unwrap();
    assert_eq!(shape, vec![2, 1, 2, 2]);
    assert_eq!(&y[4..], &[19.0, 25.0, 37.0, 43.0]);
}

#[test]
fn named_f32_and_i64_inputs_and_several_outputs() {
    let bytes = model("step.onnx");
    let mut s = runtime().session(&bytes, Device::Cpu).unwrap();
    let names: Vec<_> = s
        .inputs()
        .iter()
        .map(|i| (i.name.as_str(), &i.element))
        .collect();
    assert_eq!(
        names,
        vec![
            ("input", &ElementType::F32),
            ("labels", &ElementType::I64),
            ("p", &ElementType::F32)
        ]
    );
    let input = [1.0f32, 2.0, 3.0, 4.0];
    let labels = [7i64, -1];
    let p = [10.0f32, 0.5];
    let out = s
        .run(&[
            Input::i64("labels", &[2], &labels),
            Input::f32("input", &[2, 2], &input),
            Input::f32("p", &[2], &p),
        ])
        .unwrap();
    assert_eq!(out.len(), 2);
    assert_eq!(out[0].name, "scaled");
    assert_eq!(out[0].shape, vec![2, 2]);
    assert_eq!(out[0].data, OutputData::F32(vec![10.0, 1.0, 30.0, 2.0]));
    assert_eq!(out[1].name, "labels_f");
    assert_eq!(out[1].as_f32().unwrap(), &[7.0, -1.0]);

    // Asking for one output by name.
    let only = s
        .run_selected(
            &[
                Input::f32("input", &[2, 2], &input),
                Input::i64("labels", &[2], &labels),
                Input::f32("p", &[2], &p),
            ],
            &["labels_f"],
        )
        .unwrap();
    assert_eq!(only.len(), 1);
    assert_eq!(only[0].name, "labels_f");
}

#[test]
fn inputs_that_do_not_fit_are_input_errors() {
    let bytes = model("step.onnx");
    let mut s = runtime().session(&bytes, Device::Cpu).unwrap();
    let input = [1.0f32, 2.0, 3.0, 4.0];
    let labels = [7i64, -1];
    let labels_f = [7.0f32, -1.0];
    let p = [10.0f32, 0.5];
    let cases: Vec<(Vec<Input<'_>>, &str)> = vec![
        (
            vec![
                Input::f32("input", &[2, 2], &input),
                Input::f32("p", &[2], &p),
            ],
            "input `labels` (int64 [N]) is missing",
        ),
        (
            vec![
                Input::f32("input", &[2, 2], &input),
                Input::f32("labels", &[2], &labels_f),
                Input::f32("p", &[2], &p),
            ],
            "input `labels` is int64 in the model, the value given is float32",
        ),
        (
            vec![
                Input::f32("input", &[1, 4], &input),
                Input::i64("labels", &[2], &labels),
                Input::f32("p", &[2], &p),
            ],
            "input `input`: the model expects [N, 2], the input is [1, 4]",
        ),
        (
            vec![
                Input::f32("input", &[2, 3], &input),
                Input::i64("labels", &[2], &labels),
                Input::f32("p", &[2], &p),
            ],
            "input `input` has shape [2, 3] but 4 values",
        ),
        (
            vec![Input::f32("image", &[2, 2], &input)],
            "the model has no input `image` (its inputs: input, labels, p)",
        ),
    ];
    for (inputs, expect) in cases {
        match s.run(&inputs) {
            Err(e @ RuntimeError::Input { .. }) => {
                assert!(e.to_string().contains(expect), "{e} / {expect}")
            }
            other => panic!("expected an input error {expect:?}, got {other:?}"),
        }
    }
}

#[test]
fn bytes_that_are_not_onnx_are_invalid_models() {
    let rt = runtime();
    for bytes in [
        &b""[..],
        b"hello world",
        &[0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59],
    ] {
        match rt.session(bytes, Device::Cpu) {
            Err(e @ RuntimeError::InvalidModel { .. }) => assert!(e.is_user_input()),
            other => panic!("{bytes:?}: {other:?}"),
        }
    }
}

#[test]
fn the_built_in_tiny_model_runs_on_the_cpu() {
    let mut s = runtime()
        .session(&cnnc::runtime::tiny_model(), Device::Cpu)
        .unwrap();
    let (shape, y) = s.run_f32(&[-1.0, 0.5, 2.0, -3.0], &[1, 4]).unwrap();
    assert_eq!((shape, y), (vec![1, 4], vec![0.0, 0.5, 2.0, 0.0]));
}

#[test]
fn cuda_is_never_a_silent_cpu_fallback() {
    let rt = runtime();
    let has_cuda = rt
        .available_providers()
        .unwrap()
        .iter()
        .any(|p| p == CUDA_PROVIDER);
    let result = rt.session(&cnnc::runtime::tiny_model(), Device::Cuda);
    if has_cuda {
        println!("this ONNX Runtime has CUDA; the session may or may not start: {result:?}");
        if let Err(e) = result {
            assert!(matches!(e, RuntimeError::CudaUnavailable { .. }), "{e}");
        }
        return;
    }
    match result {
        Err(e @ RuntimeError::CudaUnavailable { .. }) => {
            let text = e.to_string();
            assert!(text.contains("built without CUDA"), "{text}");
            assert!(text.contains("pip install onnxruntime-gpu"), "{text}");
        }
        other => panic!("expected CudaUnavailable, got {other:?}"),
    }
}

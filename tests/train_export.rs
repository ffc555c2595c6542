//! `cnnc export --grad` and `--train`: the files pass `onnx.checker.check_model(full_check=True)`
//! and, for small models, tests/python/grad_check.py's finite-difference check of the
//! gradient graph (run with the weights stored as initializers) and one step of the step
//! graph. A machine without python3 + onnx + onnxruntime + numpy skips with a reason.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn cnnc(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cnnc"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("NO_COLOR", "1")
        .output()
        .unwrap()
}

fn python_ready() -> bool {
    let ok = Command::new("python3")
        .args(["-c", "import onnx, onnxruntime, numpy"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        println!("skipped: python3 with onnx, onnxruntime and numpy is not available");
    }
    ok
}

fn tmp(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("train_export");
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

fn export(model: &str, flags: &[&str], out: &Path) {
    let mut args = vec!["export", model, "-o", out.to_str().unwrap()];
    args.extend_from_slice(flags);
    let o = cnnc(&args);
    assert!(
        o.status.success(),
        "cnnc {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

fn grad_check(file: &Path, extra: &[&str]) {
    let args: Vec<&std::ffi::OsStr> = std::iter::once(file.as_os_str())
        .chain(extra.iter().map(std::ffi::OsStr::new))
        .collect();
    let (ok, text) = common::python_script("grad_check.py", &args);
    println!("{text}");
    assert!(ok, "{}: {text}", file.display());
}

const SMALL_UNET: &str = "block double_conv(c) { conv(c, 3) relu conv(c, 3) relu }
model UNet(input: [1, 20, 20]) {
    double_conv(4) as e1
    maxpool(2) double_conv(6)
    convT(4, 2, stride=2)
    concat { crop(e1) {} }
    double_conv(4)
    conv(2, 1)                         : [2, 4, 4]
}
";

#[test]
fn gradient_graphs_check_and_agree_with_finite_differences() {
    if !python_ready() {
        return;
    }
    let unet = tmp("small_unet.cnn");
    std::fs::write(&unet, SMALL_UNET).unwrap();
    for (model, batch) in [
        ("models/lenet.cnn", "4"),
        ("models/lenet_bn.cnn", "8"),
        (unet.to_str().unwrap(), "2"),
    ] {
        let stem = Path::new(model).file_stem().unwrap().to_str().unwrap();
        let out = tmp(&format!("{stem}.grad.onnx"));
        export(model, &["--grad", "--seed", "3"], &out);
        grad_check(&out, &["--batch", batch]);
    }
}

#[test]
fn step_graphs_check_and_run() {
    if !python_ready() {
        return;
    }
    for (model, flags) in [
        ("models/lenet.cnn", &["--train"][..]),
        (
            "models/lenet_bn.cnn",
            &["--train", "--momentum", "0.9", "--weight-decay", "1e-4"][..],
        ),
        (
            "models/lenet_bn.cnn",
            &["--train", "--optimizer", "adam"][..],
        ),
        (
            "models/simple_cnn.cnn",
            &["--train", "--optimizer", "adam"][..],
        ),
    ] {
        let out = tmp("step.onnx");
        export(model, flags, &out);
        grad_check(&out, &["--batch", "4"]);
    }
}

#[test]
fn every_model_of_the_notes_exports_valid_training_graphs() {
    if !python_ready() {
        return;
    }
    let mut models: Vec<PathBuf> =
        std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("models"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "cnn"))
            .collect();
    models.sort();
    let mut refused = Vec::new();
    for m in models {
        let out = tmp("model.train.onnx");
        // One class score (per pixel): an image out, which cross-entropy cannot train.
        let text = std::fs::read_to_string(&m).unwrap();
        let c = cnnc::compile_source(&m, text);
        if c.models[0].output_shape().0[0] == 1 {
            let o = cnnc(&[
                "export",
                m.to_str().unwrap(),
                "--train",
                "-o",
                out.to_str().unwrap(),
            ]);
            assert_eq!(o.status.code(), Some(2), "{}", m.display());
            let stderr = String::from_utf8_lossy(&o.stderr);
            assert!(
                stderr.contains("has one class score per pixel: the loss is softmax cross-entropy"),
                "{stderr}"
            );
            refused.push(m.file_name().unwrap().to_string_lossy().into_owned());
            continue;
        }
        export(
            m.to_str().unwrap(),
            &["--train", "--optimizer", "adam", "--weight-decay", "0.01"],
            &out,
        );
        grad_check(&out, &["--check-only"]);
    }
    assert_eq!(refused, ["super_resolution.cnn", "tconv_decoder.cnn"]);
}

/// The float initializer `name` of the ONNX file at `path`.
fn initializer(path: &Path, name: &str) -> Vec<f32> {
    use prost::Message;
    let m = cnnc::onnx::proto::ModelProto::decode(&std::fs::read(path).unwrap()[..]).unwrap();
    let t = m
        .graph
        .unwrap()
        .initializer
        .into_iter()
        .find(|t| t.name == name)
        .unwrap_or_else(|| panic!("{}: no initializer {name}", path.display()));
    if t.raw_data.is_empty() {
        t.float_data
    } else {
        t.raw_data
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect()
    }
}

/// `--train` stores the starting state (the weights of `--seed`/`--init`, optimizer state at
/// zero, running statistics at 0 and 1) as the carried inputs' defaults: the step runs from
/// `input`, `labels`, `lr` and `t` alone, and moves the weights by one Adam step.
#[test]
fn step_graph_runs_from_its_stored_state() {
    use cnnc::runtime::{Device, Input, Runtime};
    let Ok(rt) = Runtime::get() else {
        println!("skipped: ONNX Runtime is not installed");
        return;
    };
    let (step, weights) = (tmp("stored_state.onnx"), tmp("stored_state_weights.onnx"));
    export(
        "models/lenet_bn.cnn",
        &["--train", "--optimizer", "adam", "--seed", "3"],
        &step,
    );
    export("models/lenet_bn.cnn", &["--seed", "3"], &weights);
    let w0 = initializer(&step, "conv1.weight");
    assert_eq!(w0, initializer(&weights, "conv1.weight"));
    assert!(initializer(&step, "conv1.weight.exp_avg")
        .iter()
        .all(|&v| v == 0.0));

    let mut session = rt
        .session(&std::fs::read(&step).unwrap(), Device::Cpu)
        .unwrap();
    let x: Vec<f32> = (0..4 * 28 * 28).map(|i| (i % 17) as f32 / 17.0).collect();
    let outs = session
        .run_selected(
            &[
                Input::f32("input", &[4, 1, 28, 28], &x),
                Input::i64("labels", &[4], &[0, 1, 2, 3]),
                Input::f32("lr", &[], &[1e-3]),
                Input::f32("t", &[], &[1.0]),
            ],
            &["loss", "new.conv1.weight"],
        )
        .unwrap();
    let mut outs = outs.into_iter().map(|o| o.into_f32().unwrap());
    let loss = outs.next().unwrap()[0];
    assert!(loss.is_finite() && loss > 0.0, "loss {loss}");
    let w1 = outs.next().unwrap();
    // Adam's first step moves each weight by lr · g/(|g| + eps): at most lr, and by about lr
    // wherever the gradient is not tiny.
    let moved: Vec<f32> = w0.iter().zip(&w1).map(|(a, b)| (a - b).abs()).collect();
    assert!(moved.iter().all(|&d| d <= 1.001e-3), "{moved:?}");
    assert!(moved.iter().filter(|&&d| d > 0.9e-3).count() > moved.len() / 2);
}

/// A model ending in softmax gets `train`'s warning from `export --grad/--train` too (the loss
/// applies log-softmax itself); a plain export is an inference model and stays quiet.
#[test]
fn training_exports_warn_of_a_final_softmax() {
    let src = tmp("ends_in_softmax.cnn");
    std::fs::write(&src, "model S(input: [4]) { linear(3) softmax }\n").unwrap();
    let out = tmp("ends_in_softmax.onnx");
    for (flags, warned) in [
        (&["--grad"][..], true),
        (&["--train"][..], true),
        (&[][..], false),
    ] {
        let mut args = vec!["export", src.to_str().unwrap(), "-o", out.to_str().unwrap()];
        args.extend_from_slice(flags);
        let o = cnnc(&args);
        assert!(o.status.success(), "{flags:?}");
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert_eq!(
            stderr.contains("ends in softmax"),
            warned,
            "{flags:?}: {stderr}"
        );
    }
}

/// A named output ending in softmax is warned of too while it is a loss term, and not at
/// `--aux-weight 0`, which leaves it out of the loss.
#[test]
fn training_exports_warn_of_a_named_output_ending_in_softmax() {
    let src = tmp("head_ends_in_softmax.cnn");
    std::fs::write(
        &src,
        "model S(input: [4]) {\n  linear(3)\n  output aux { linear(3) softmax }\n  linear(3)\n}\n",
    )
    .unwrap();
    let out = tmp("head_ends_in_softmax.onnx");
    for (flags, warned) in [
        (&["--grad"][..], true),
        (&["--train", "--aux-weight", "0.5"][..], true),
        (&["--grad", "--aux-weight", "0"][..], false),
        (&[][..], false),
    ] {
        let mut args = vec!["export", src.to_str().unwrap(), "-o", out.to_str().unwrap()];
        args.extend_from_slice(flags);
        let o = cnnc(&args);
        assert!(o.status.success(), "{flags:?}");
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert_eq!(
            stderr.contains("warning: the named output `aux` of model `S` ends in softmax"),
            warned,
            "{flags:?}: {stderr}"
        );
        // The main output is class scores: its own warning is not given.
        assert!(!stderr.contains("warning: model `S`"), "{stderr}");
    }
}

/// Named outputs that are no class scores are all named (the first four, then how many
/// more), not only the first, so one fix does not lead to the next refusal.
#[test]
fn training_exports_name_every_misshaped_output() {
    let src = tmp("misshaped_outputs.cnn");
    let heads: String = (0..6)
        .map(|i| format!("  output f{i} {{ linear({}) }}\n", 4 + i))
        .collect();
    std::fs::write(
        &src,
        format!("model S(input: [4]) {{\n  linear(3)\n  output ok {{ linear(2) }}\n{heads}  linear(2)\n}}\n"),
    )
    .unwrap();
    let out = tmp("misshaped_outputs.onnx");
    let o = cnnc(&[
        "export",
        src.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--grad",
    ]);
    assert_eq!(o.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        stderr.contains(
            "the output `f0` is [4], the output `f1` is [5], the output `f2` is [6], the output \
             `f3` is [7] and 2 more: training adds"
        ),
        "{stderr}"
    );
    assert!(!stderr.contains("`ok`"), "{stderr}");
}

/// The Dropout seeds of a written graph, in node order.
fn dropout_seeds(path: &Path) -> Vec<i64> {
    use prost::Message;
    let m = cnnc::onnx::proto::ModelProto::decode(std::fs::read(path).unwrap().as_slice()).unwrap();
    m.graph
        .unwrap()
        .node
        .iter()
        .filter(|n| n.op_type == "Dropout")
        .map(|n| {
            n.attribute
                .iter()
                .find(|a| a.name == "seed")
                .unwrap_or_else(|| panic!("{}: a Dropout without a seed", path.display()))
                .i
                .unwrap_or_default()
        })
        .collect()
}

/// `--seed` seeds the dropout masks of the written gradient and step graphs as `cnnc train
/// --seed` does (ONNX Runtime seeds an unseeded Dropout from the clock); for an inference
/// model, which has no dropout, `--seed` with `--weights` is refused before anything is read.
#[test]
fn seed_fixes_the_dropout_masks_of_training_graphs() {
    let src = tmp("dropout.cnn");
    std::fs::write(
        &src,
        "model D(input: [4]) { linear(8) relu dropout(0.5) linear(8) dropout(0.2) linear(3) }\n",
    )
    .unwrap();
    let src = src.to_str().unwrap();
    for kind in ["--grad", "--train"] {
        let seeds = |seed: &str, name: &str| {
            let out = tmp(name);
            export(src, &[kind, "--seed", seed], &out);
            dropout_seeds(&out)
        };
        let (a, again, other) = (
            seeds("5", "d5.onnx"),
            seeds("5", "d5b.onnx"),
            seeds("6", "d6.onnx"),
        );
        assert_eq!(a.len(), 2, "{kind}");
        assert_eq!(a, again, "{kind}: the same seed, the same masks");
        assert_ne!(a[0], a[1], "{kind}: each Dropout draws its own masks");
        assert!(a.iter().zip(&other).all(|(x, y)| x != y), "{kind}");
    }
    let init = tmp("dropout_init.onnx");
    export(src, &[], &init);
    let w = tmp("dropout_w.onnx");
    let _ = std::fs::remove_file(&w);
    // A refusal names both flags and the way to combine them.
    let o = cnnc(&[
        "export",
        src,
        "--seed",
        "5",
        "--weights",
        init.to_str().unwrap(),
        "-o",
        w.to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("--seed draws the initial weights") && err.contains("--grad or --train"),
        "{err}"
    );
    assert!(!w.exists());
}

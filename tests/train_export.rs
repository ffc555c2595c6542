//! `cnnc export --grad` and `--train`: the files pass `onnx.checker.check_model(full_check=True)`
//! and, for small models, tests/python/grad_check.py's finite-difference check of the
//! gradient graph (run with the weights stored as initializers) and one step of the step
//! graph. A machine without python3 + onnx + onnxruntime + numpy skips with a reason.

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
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/grad_check.py");
    let o = Command::new("python3")
        .arg(&script)
        .arg(file)
        .args(extra)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    println!("{text}");
    assert!(o.status.success(), "{}: {text}", file.display());
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
    for m in models {
        let out = tmp("model.train.onnx");
        export(
            m.to_str().unwrap(),
            &["--train", "--optimizer", "adam", "--weight-decay", "0.01"],
            &out,
        );
        grad_check(&out, &["--check-only"]);
    }
}

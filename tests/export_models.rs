//! Every network of `models/` exports through the real binary, passes
//! `onnx.checker.check_model(full_check=True)`, ONNX's own shape inference agrees with cnnc's
//! shape for every intermediate tensor, and ONNX Runtime runs it (tests/python/check_onnx.py).

use std::path::Path;
use std::process::Command;

#[test]
fn every_model_exports_to_valid_onnx_with_agreeing_shapes() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().unwrap();
    let mut models: Vec<_> = std::fs::read_dir(root.join("models"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "cnn"))
        .collect();
    models.sort();
    assert!(models.len() >= 13);
    // A model with named outputs also without them (`--main-output-only`).
    let without: &[&str] = &["--main-output-only"];
    let exports: Vec<(_, &[&str])> = models
        .into_iter()
        .flat_map(|m| {
            let heads = std::fs::read_to_string(&m)
                .unwrap()
                .lines()
                .any(|l| l.trim_start().starts_with("output ") && l.contains('{'));
            std::iter::once((m.clone(), &[][..])).chain(heads.then_some((m, without)))
        })
        .collect();
    assert!(exports.iter().any(|(_, flags)| !flags.is_empty()));
    for (model, flags) in exports {
        let out = dir
            .path()
            .join(model.file_stem().unwrap())
            .with_extension("onnx");
        let export = Command::new(env!("CARGO_BIN_EXE_cnnc"))
            .arg("export")
            .arg(&model)
            .args(flags)
            .arg("-o")
            .arg(&out)
            .output()
            .unwrap();
        assert!(
            export.status.success(),
            "{} {flags:?}: {}",
            model.display(),
            String::from_utf8_lossy(&export.stderr)
        );
        let check = Command::new("python3")
            .arg(root.join("tests/python/check_onnx.py"))
            .arg(&out)
            .arg("--batch")
            .arg("1")
            .output()
            .expect("python3 (pip install onnx onnxruntime numpy)");
        assert!(
            check.status.success(),
            "{} {flags:?}: check_onnx.py failed:\n{}{}",
            model.display(),
            String::from_utf8_lossy(&check.stdout),
            String::from_utf8_lossy(&check.stderr)
        );
        std::fs::remove_file(&out).unwrap();
    }
    // Nothing but what we removed was ever written: no temporary files left behind.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

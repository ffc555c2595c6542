//! Helpers shared by integration tests (each test binary includes the ones it uses).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// Runs tests/python/rt_make_models.py into `CARGO_TARGET_TMPDIR/<name>`: ONNX models and .npy
/// inputs written with onnx.helper and numpy, independent of cnnc's exporter. `Err` says why
/// (python3, onnx or numpy missing).
pub fn make_runtime_fixtures(name: &str) -> Result<PathBuf, String> {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/rt_make_models.py");
    let out = Command::new("python3")
        .arg(&script)
        .arg(&dir)
        .output()
        .map_err(|e| format!("python3 cannot be started: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "python3 {} failed (needs onnx and numpy): {}",
            script.display(),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(dir)
}

/// Runs `tests/python/<script>` with `args`: whether it exited 0, and its standard output
/// then its standard error.
pub fn python_script<S: AsRef<std::ffi::OsStr>>(script: &str, args: &[S]) -> (bool, String) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/python")
        .join(script);
    let o = Command::new("python3")
        .arg(path)
        .args(args)
        .output()
        .expect("python3 cannot be started");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    (o.status.success(), text)
}

/// Fails the test, saying what to install, unless python3 has onnx, onnxruntime and numpy.
pub fn require_python() {
    let ok = Command::new("python3")
        .args(["-c", "import onnx, onnxruntime, numpy"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(
        ok,
        "these tests need python3 with onnx, onnxruntime and numpy: pip install onnx onnxruntime numpy"
    );
}

/// How many bytes the temporary file that process `pid` is writing in `dir` holds: a hidden
/// `.cnnc-tmp-*` file there, or a nameless one (`O_TMPFILE`), seen among the process's open
/// files as `DIR/#INODE (deleted)`. `None` before it has one.
pub fn temporary_file_size(pid: u32, dir: &Path) -> Option<u64> {
    let dir = dir.canonicalize().ok()?;
    let named = std::fs::read_dir(&dir)
        .ok()?
        .filter_map(|e| e.ok())
        .find(|e| e.file_name().to_string_lossy().starts_with(".cnnc-tmp-"));
    if let Some(e) = named {
        return e.metadata().ok().map(|m| m.len());
    }
    let nameless = format!("{}/#", dir.display());
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .ok()?
        .filter_map(|e| e.ok())
        .find(|e| {
            std::fs::read_link(e.path()).is_ok_and(|t| {
                let t = t.to_string_lossy();
                t.starts_with(&nameless) && t.ends_with(" (deleted)")
            })
        })
        // The link opens the file itself.
        .and_then(|e| std::fs::metadata(e.path()).ok())
        .map(|m| m.len())
}

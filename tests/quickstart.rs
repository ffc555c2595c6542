//! End-to-end test of README's quick start: `scripts/quickstart.sh` (check, summary, export,
//! run, bench, doctor) on a small model, with the binary under test.

use std::process::Command;

#[test]
fn the_quick_start_runs_end_to_end() {
    let out = Command::new("bash")
        .arg("scripts/quickstart.sh")
        .arg("models/lenet.cnn")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("CNNC_BIN", env!("CARGO_BIN_EXE_cnnc"))
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "quickstart failed:\n{stdout}\n{stderr}");
    assert!(stderr.contains("LeNet [1, 28, 28] → [10]"), "{stderr}");
    assert!(stdout.contains("61,706"), "summary totals missing:\n{stdout}");
    assert!(stdout.contains("output `output`: [2, 10]"), "run output missing:\n{stdout}");
    assert!(stdout.contains("images/s") || stdout.contains("images per second"), "bench missing:\n{stdout}");
    assert!(stdout.contains("CPUExecutionProvider"), "doctor missing:\n{stdout}");
}

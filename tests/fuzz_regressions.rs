//! Every input the fuzzers (fuzz/) found to crash, hang or blow up memory, kept as
//! `tests/fixtures/fuzz/*.cnn`: the whole library pipeline (compile, render every
//! diagnostic, summarize, lower to ONNX in memory) must give a clear result. Each fixture's
//! `# expect:` line names the diagnostic codes it must produce, or `ok` for a model that
//! checks.

use cnnc::onnx::{self, ExportOptions, Init};
use std::path::{Path, PathBuf};

/// Models with more parameters are not lowered here: their weights are allocated in full.
const MAX_LOWERED_PARAMS: u64 = 4_000_000;

fn fixtures() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/fuzz");
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "cnn"))
        .collect();
    v.sort();
    v
}

fn expected(text: &str, path: &Path) -> Vec<String> {
    text.lines()
        .find_map(|l| l.trim().strip_prefix("# expect:"))
        .unwrap_or_else(|| panic!("{} has no `# expect:` line", path.display()))
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

#[test]
fn every_fuzz_fixture_compiles_to_a_clear_result() {
    let files = fixtures();
    assert!(!files.is_empty());
    for path in files {
        let text = std::fs::read_to_string(&path).unwrap();
        let expect = expected(&text, &path);
        let c = cnnc::compile_source(&path, text);
        let name = path.display();
        for d in c.diagnostics.iter() {
            assert!(!d.render(&c.sources, false).is_empty());
            let _ = d.to_json(&c.sources);
        }
        let codes: Vec<&str> = c.diagnostics.iter().map(|d| d.code).collect();
        assert!(
            codes.len() <= cnnc::ir::elaborate::MAX_DIAGNOSTICS + 2,
            "{name}: {} diagnostics",
            codes.len()
        );
        if expect == ["ok"] {
            assert!(!c.diagnostics.has_errors(), "{name}: {codes:?}");
            assert!(!c.models.is_empty(), "{name}: no model checked");
        } else {
            assert!(c.diagnostics.has_errors(), "{name}: expected errors");
            for code in &expect {
                assert!(
                    codes.contains(&code.as_str()),
                    "{name}: {code} not in {codes:?}"
                );
            }
        }
        for m in &c.models {
            let _ = cnnc::shape::summary::summarize(m).to_text();
            if m.total_params() <= MAX_LOWERED_PARAMS {
                let w = onnx::initialize(m, Init::Default, 0);
                let bytes = onnx::export_bytes(m, &c.sources, &w, &ExportOptions::default())
                    .unwrap_or_else(|e| panic!("{name}: {e}"));
                assert!(!bytes.is_empty());
            }
        }
    }
}

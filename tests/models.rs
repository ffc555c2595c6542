//! Every network of `models/`: its IR is snapshotted (any change shows up in review), and
//! its output shape, parameter count and MACs equal an independent computation
//! (`tests/reference/reference.py`, written the PyTorch way, stored in expected.json).

use std::path::Path;

fn compile(path: &Path) -> cnnc::Compilation {
    let c = cnnc::compile_file(path).unwrap();
    let rendered: Vec<String> = c
        .diagnostics
        .iter()
        .map(|d| d.render(&c.sources, false))
        .collect();
    assert!(
        !c.diagnostics.has_errors(),
        "{}:\n{}",
        path.display(),
        rendered.join("\n")
    );
    c
}

#[test]
fn model_ir_snapshots() {
    insta::glob!("../models", "*.cnn", |path| {
        let c = compile(path);
        let mut text = String::new();
        for m in &c.models {
            text.push_str(&format!(
                "model {} : {} -> {}\n",
                m.name,
                m.input_shape(),
                m.output_shape()
            ));
            text.push_str(&cnnc::ir::print::dump(&m.graph));
        }
        insta::assert_snapshot!(text);
    });
}

/// Checks every .cnn file of `dir` against its entry in `reference` (output shape,
/// parameters, MACs); returns how many were checked.
fn check_against_reference(dir: &str, reference: &str) -> usize {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let expected: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(root.join(reference)).unwrap()).unwrap();
    let mut checked = 0;
    for entry in std::fs::read_dir(root.join(dir)).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "cnn") {
            continue;
        }
        let stem = path.file_stem().unwrap().to_str().unwrap().to_string();
        let want = expected
            .get(&stem)
            .unwrap_or_else(|| panic!("{reference} has no entry for {stem}"));
        let c = compile(&path);
        let m = c.model(None).unwrap();
        let output: Vec<u64> = serde_json::from_value(want["output"].clone()).unwrap();
        assert_eq!(m.output_shape().0, output, "{stem}: output shape");
        assert_eq!(
            m.total_params(),
            want["params"].as_u64().unwrap(),
            "{stem}: parameters"
        );
        if let Some(macs) = want.get("macs").and_then(|v| v.as_u64()) {
            assert_eq!(m.total_macs(), macs, "{stem}: MACs");
        }
        checked += 1;
    }
    checked
}

#[test]
fn models_match_the_independent_reference() {
    let checked = check_against_reference("models", "tests/reference/expected.json");
    assert!(checked >= 20, "only {checked} models checked");
}

/// The valid fixtures, which exercise the language's constructs (expressions, repeats over
/// lists, skips, gates, pooling options), against the same independent reference.
#[test]
fn valid_fixtures_match_the_independent_reference() {
    let checked = check_against_reference(
        "tests/fixtures/valid",
        "tests/reference/expected_valid.json",
    );
    assert!(checked >= 8, "only {checked} fixtures checked");
}

#[test]
fn lenet_has_the_parameter_counts_of_the_notes() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("models");
    let lenet = compile(&root.join("lenet.cnn"));
    assert_eq!(lenet.model(None).unwrap().total_params(), 61_706);
    let nopad = compile(&root.join("lenet_nopad_maxpool.cnn"));
    assert_eq!(nopad.model(None).unwrap().total_params(), 44_426);
}

/// README's ```cnn examples check with no diagnostic at all, and give what their comments say
/// (the tour's output is 10 class scores).
#[test]
fn readme_examples_check_clean() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let blocks: Vec<&str> = readme
        .split("```cnn\n")
        .skip(1)
        .map(|rest| rest.split("```").next().unwrap())
        .collect();
    assert!(!blocks.is_empty(), "no ```cnn example in README");
    for block in &blocks {
        let c = cnnc::compile_source(Path::new("readme.cnn"), block.to_string());
        let rendered: Vec<String> = c
            .diagnostics
            .iter()
            .map(|d| d.render(&c.sources, false))
            .collect();
        assert!(c.diagnostics.is_empty(), "{block}\n{}", rendered.join("\n"));
        for m in &c.models {
            assert_eq!(m.output_shape().dims(), [10], "{block}");
        }
    }
}

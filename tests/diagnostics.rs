//! Data-driven diagnostics tests over `tests/fixtures/`: each error fixture names the codes
//! it must produce (`# expect: cnnc::…`) and its rendered diagnostics are snapshotted; each
//! warning fixture checks (exit 0) with its warning; each valid fixture checks clean.

use std::path::Path;
use std::process::Command;

fn cnnc() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_cnnc"));
    c.current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("NO_COLOR", "1");
    c
}

/// The path relative to the crate root, so rendered diagnostics are machine-independent.
fn relative(path: &Path) -> String {
    path.strip_prefix(env!("CARGO_MANIFEST_DIR"))
        .unwrap()
        .display()
        .to_string()
}

fn expected_codes(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap();
    let line = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("# expect:"))
        .unwrap_or_else(|| panic!("{} has no `# expect:` line", path.display()));
    line.split_whitespace().map(str::to_string).collect()
}

fn json_codes(path: &str) -> (i32, Vec<(String, String)>) {
    let out = cnnc()
        .args(["check", "--format", "json", path])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{path}: JSON output does not parse: {e}"));
    let codes = v
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["severity"].as_str().unwrap().to_string(),
                d["code"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    (out.status.code().unwrap(), codes)
}

#[test]
fn error_fixtures_report_their_codes() {
    insta::glob!("fixtures/errors/*.cnn", |path| {
        let rel = relative(path);
        let expected = expected_codes(path);
        let (status, codes) = json_codes(&rel);
        assert_eq!(status, 1, "{rel}: `cnnc check` must exit 1");
        for code in &expected {
            assert!(
                codes.iter().any(|(s, c)| s == "error" && c == code),
                "{rel}: expected error {code}, got {codes:?}"
            );
        }
        let errors = codes.iter().filter(|(s, _)| s == "error").count();
        assert_eq!(
            errors,
            expected.len(),
            "{rel}: expected exactly {expected:?}, got {codes:?}"
        );
        let out = cnnc().args(["check", &rel]).output().unwrap();
        insta::assert_snapshot!(String::from_utf8_lossy(&out.stderr));
    });
}

#[test]
fn warning_fixtures_check_with_their_warning() {
    insta::glob!("fixtures/warnings/*.cnn", |path| {
        let rel = relative(path);
        let expected = expected_codes(path);
        let (status, codes) = json_codes(&rel);
        assert_eq!(
            status, 0,
            "{rel}: warnings alone must exit 0, got {codes:?}"
        );
        for code in &expected {
            assert!(
                codes.iter().any(|(s, c)| s == "warning" && c == code),
                "{rel}: expected warning {code}, got {codes:?}"
            );
        }
        let out = cnnc().args(["check", &rel]).output().unwrap();
        insta::assert_snapshot!(String::from_utf8_lossy(&out.stderr));
    });
}

#[test]
fn valid_fixtures_check_clean() {
    insta::glob!("fixtures/valid/*.cnn", |path| {
        let rel = relative(path);
        let (status, codes) = json_codes(&rel);
        assert_eq!(status, 0, "{rel}: {codes:?}");
        assert!(
            codes.iter().all(|(s, _)| s != "error"),
            "{rel}: unexpected errors {codes:?}"
        );
    });
}

/// The gridding warning follows the receptive field: a stack whose offsets leave no hole is
/// quiet, whatever its rates share, and one with holes warns, common factor or not.
#[test]
fn gridding_is_warned_exactly_when_the_receptive_field_has_holes() {
    for (rates, holes) in [
        (&[1u64, 2, 4][..], false),
        (&[1, 2, 5], false),
        (&[1, 2, 3], false),
        (&[1, 2, 2], false),
        (&[2, 4], true),
        (&[1, 4, 8], true),
        (&[2, 3], true),
        (&[4, 8, 1], true),
        // One dilated conv on plain ones: its taps farther apart than they reach.
        (&[1, 1, 1, 8], true),
        (&[1, 6], true),
        (&[1, 4], true),
        (&[1, 2], false),
        (&[1, 1, 3], false),
        (&[8], false),
    ] {
        let body: String = rates
            .iter()
            .map(|d| format!("conv(8, 3, pad={d}, dilation={d}) relu\n"))
            .collect();
        let c = cnnc::compile_source(
            std::path::Path::new("rates.cnn"),
            format!("model M(input: [3, 64, 64]) {{\n{body}}}\n"),
        );
        let warned = c
            .diagnostics
            .iter()
            .any(|d| d.code == "cnnc::shape::gridding");
        assert_eq!(warned, holes, "rates {rates:?}");
    }
    // A stride-1 pooling covers its window as a plain conv does: it continues the stack (its
    // window fills holes) rather than starting a new one; a strided one starts one.
    for (pool, holes) in [
        ("maxpool(3, stride=1, pad=1)", false),
        ("avgpool(3, stride=1, pad=1)", false),
        ("maxpool(2, stride=2)", true),
    ] {
        let c = cnnc::compile_source(
            std::path::Path::new("pool.cnn"),
            format!(
                "model M(input: [8, 64, 64]) {{ repeat 3 {{ conv(8, 3, pad=1) relu }} {pool} \
                 repeat 3 {{ conv(8, 3, pad=2, dilation=2) relu }} }}"
            ),
        );
        let warned = c
            .diagnostics
            .iter()
            .any(|d| d.code == "cnnc::shape::gridding");
        assert_eq!(warned, holes, "{pool}");
    }
    // A pad layer before each dilated conv is the padded conv written in two: still a stack.
    let c = cnnc::compile_source(
        std::path::Path::new("pad.cnn"),
        "model M(input: [8, 64, 64]) { repeat 2 { pad(2, reflect=true) conv(8, 3, dilation=2) \
         relu } }"
            .into(),
    );
    let d: Vec<_> = c
        .diagnostics
        .iter()
        .filter(|d| d.code == "cnnc::shape::gridding")
        .collect();
    assert_eq!(d.len(), 1, "{:?}", c.diagnostics);
    assert!(
        d[0].message.contains("rates [2, 2] share"),
        "{}",
        d[0].message
    );
    // A pooling in the stack is no rate.
    let c = cnnc::compile_source(
        std::path::Path::new("pool.cnn"),
        "model M(input: [8, 64, 64]) { conv(8, 3, pad=4, dilation=4) relu avgpool(2, stride=1) \
         conv(8, 3, pad=4, dilation=4) }"
            .into(),
    );
    let d = c
        .diagnostics
        .iter()
        .find(|d| d.code == "cnnc::shape::gridding")
        .expect("gridding");
    assert!(
        d.message
            .contains("rates [4, 4] (with the stride-1 pooling among them)"),
        "{}",
        d.message
    );
    // ERFNet's non-bottleneck-1D block: one dilated conv per axis on plain ones, in a
    // residual body, whose shortcut fills the holes: quiet. The same stack alone warns.
    let nb1d = |residual: bool| {
        let layers = "conv(16, [3, 1], pad=[1, 0]) relu conv(16, [1, 3], pad=[0, 1]) relu \
                      conv(16, [3, 1], pad=[8, 0], dilation=[8, 1]) relu \
                      conv(16, [1, 3], pad=[0, 8], dilation=[1, 8])";
        let body = if residual {
            format!("residual {{ {layers} }}")
        } else {
            layers.to_string()
        };
        let c = cnnc::compile_source(
            std::path::Path::new("erf.cnn"),
            format!("model E(input: [16, 64, 64]) {{ {body} }}"),
        );
        c.diagnostics
            .iter()
            .any(|d| d.code == "cnnc::shape::gridding")
    };
    assert!(!nb1d(true), "ERFNet's block");
    assert!(nb1d(false));
    // Per axis: a [3, 1] and a [1, 3] conv, each dilated along its own axis, leave no hole;
    // dilation [1, 2] twice leaves holes along the width only, and says so.
    for (body, warning) in [
        (
            "conv(8, [3, 1], pad=[2, 0], dilation=2) relu conv(8, [1, 3], pad=[0, 2], dilation=2)",
            None,
        ),
        (
            "conv(8, 3, pad=[1, 2], dilation=[1, 2]) relu conv(8, 3, pad=[1, 2], dilation=[1, 2])",
            Some("along the width"),
        ),
        // A channel shuffle keeps every pixel's receptive field: the run goes on through it.
        (
            "conv(8, 3, pad=2, dilation=2) channel_shuffle(2) conv(8, 3, pad=4, dilation=4)",
            Some("rates [2, 4]"),
        ),
    ] {
        let c = cnnc::compile_source(
            std::path::Path::new("axes.cnn"),
            format!("model M(input: [3, 64, 64]) {{ {body} }}"),
        );
        let got = c
            .diagnostics
            .iter()
            .find(|d| d.code == "cnnc::shape::gridding")
            .map(|d| d.message.clone());
        match warning {
            None => assert_eq!(got, None, "{body}"),
            Some(w) => assert!(
                got.as_deref().is_some_and(|m| m.contains(w)),
                "{body}: {got:?}"
            ),
        }
    }
}

/// `pad=same` warns exactly when its total padding d·(k−1) is odd, so that it cannot be split
/// evenly: an even kernel, unless an even dilation makes the total even.
#[test]
fn even_kernel_same_is_warned_exactly_when_the_padding_is_asymmetric() {
    for (conv, asymmetric) in [
        ("conv(4, 3, pad=same)", false),
        ("conv(4, 4, pad=same)", true),
        ("conv(4, 2, pad=same, dilation=2)", false),
        ("conv(4, 2, pad=same, dilation=3)", true),
        ("conv(4, [3, 2], pad=same, dilation=2)", false),
        ("conv(4, [3, 2], pad=same)", true),
    ] {
        let c = cnnc::compile_source(
            std::path::Path::new("same.cnn"),
            format!("model M(input: [2, 16, 16]) {{ {conv} }}"),
        );
        assert!(!c.diagnostics.has_errors(), "{conv}");
        let warned = c
            .diagnostics
            .iter()
            .any(|d| d.code == "cnnc::shape::even_kernel_same");
        assert_eq!(warned, asymmetric, "{conv}");
    }
}

/// `--allow CODE` silences each warning of the warning fixtures (by its short name), and only
/// warnings: an error code is refused as an argument.
#[test]
fn every_warning_can_be_allowed() {
    for entry in
        std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/warnings"))
            .unwrap()
    {
        let path = entry.unwrap().path();
        let rel = relative(&path);
        for code in expected_codes(&path) {
            let short = code.rsplit("::").next().unwrap().to_string();
            let out = cnnc()
                .args(["check", "--format", "json", "--allow", &short, &rel])
                .output()
                .unwrap();
            assert_eq!(
                out.status.code(),
                Some(0),
                "{rel}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
            assert!(
                v.as_array()
                    .unwrap()
                    .iter()
                    .all(|d| d["code"] != code.as_str()),
                "{rel}: {code} still reported with --allow {short}: {v}"
            );
        }
    }
    let out = cnnc()
        .args(["check", "--allow", "residual_mismatch", "models/lenet.cnn"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("errors cannot be silenced"));
    // A slip in a warning's name gets a did-you-mean, as in an allow comment.
    let out = cnnc()
        .args(["check", "--allow", "unused_nam", "models/lenet.cnn"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("did you mean `unused_name`?"));
}

/// `unused_name` fires for an `as x` that nothing ever reads, counting every iteration of a
/// repeat and every call of a block: a name read in a later iteration, in one call only, or
/// written in a branch that did not run, is used. The model's output, `_`-names and an erroneous model are left alone.
#[test]
fn unused_name_is_warned_exactly_when_no_elaboration_reads_the_name() {
    let cases = [
        ("conv(8, 3) as a relu concat { {} a }", None),
        (
            "conv(8, 3) as a relu conv(8, 3, pad=1) as b relu concat { {} a }",
            Some("`b`"),
        ),
        // Layers that reach nothing are `crop_outside_concat`'s and `dropped_tensor`'s to
        // report ("drop `as b`" would not be the fix).
        ("conv(8, 3) as a relu conv(8, 3) as b crop(a)", None),
        ("conv(8, 3) as a relu conv(8, 3) as b a", None),
        ("conv(8, 3) as _a relu flatten linear(2)", None),
        ("conv(8, 3) relu flatten linear(2) as logits", None),
        // Each iteration reads the tensor named by the previous one, the last is never read.
        (
            "conv(8, 1) as x repeat 3 { concat { {} x } conv(8, 1) as x }",
            None,
        ),
        // A block names its input and reads it only when `skip` is set; one call sets it.
        ("unit(false) unit(true)", None),
        // Read in the source, in a branch no call takes: not this warning's business.
        ("unit(false) unit(false)", None),
        (
            "conv(8, 3) as a relu conv(9, 3) as b residual { conv(8, 1) }",
            None,
        ),
        // Named in every iteration and read nowhere: unused, not reused.
        (
            "repeat 3 { conv(8, 1) relu as feat conv(8, 1) } flatten linear(2)",
            Some("`feat`"),
        ),
    ];
    for (body, warned) in cases {
        let src = format!(
            "block unit(skip) {{ conv(8, 1) as t relu if skip {{ concat {{ {{}} t }} conv(8, 1) }} }}\n\
             model M(input: [3, 32, 32]) {{ {body} }}\n"
        );
        let c = cnnc::compile_source(std::path::Path::new("names.cnn"), src);
        let got: Vec<&str> = c
            .diagnostics
            .iter()
            .filter(|d| d.code == "cnnc::elab::unused_name")
            .map(|d| d.message.as_str())
            .collect();
        match warned {
            None => assert!(got.is_empty(), "{body}: {got:?}"),
            Some(name) => assert!(got.len() == 1 && got[0].contains(name), "{body}: {got:?}"),
        }
        // One warning for one mistake: never `name_reused` beside `unused_name`.
        assert!(
            got.is_empty()
                || !c
                    .diagnostics
                    .iter()
                    .any(|d| d.code == "cnnc::elab::name_reused"),
            "{body}: {:?}",
            c.diagnostics
        );
    }
    // Read under an `if` between the two names (a branch this call does not take): the
    // second name is no slip.
    let src = "block unit(c, skip) { conv(c, 1) relu as t if skip { concat { {} t } conv(c, 1) } \
               conv(c, 3, pad=1) relu as t concat { {} t } }\n\
               model M(input: [3, 8, 8]) { unit(8, false) unit(8, true) flatten linear(2) }\n";
    let c = cnnc::compile_source(std::path::Path::new("r7.cnn"), src.to_string());
    assert!(c.diagnostics.is_empty(), "{:?}", c.diagnostics);
}

/// `dropped_tensor` fires where a statement continues from a named tensor and what it left
/// behind reaches nothing: a name alone, a concat whose branches all start from names or
/// `crop`. Reading the tensor anywhere later (a branch, a residual, a later name) keeps it.
#[test]
fn dropped_tensor_is_warned_exactly_when_a_result_reaches_nothing() {
    let cases = [
        ("conv(8, 3) as a conv(8, 1) a", Some(("`a` on its own", 1))),
        (
            "conv(8, 3) as a conv(8, 1) concat { a }",
            Some(("`a` on its own", 1)),
        ),
        (
            "conv(8, 3) as a conv(8, 1) concat { crop(a) }",
            Some(("`crop(a)`", 1)),
        ),
        ("conv(8, 3) as a conv(8, 1) concat { crop(a) {} }", None),
        ("conv(8, 3) as a conv(8, 1) concat { {} a }", None),
        // Read later by name: not dropped.
        ("conv(8, 3) as a conv(8, 1) as b a concat { {} b }", None),
        // A residual body that starts from a name still has its shortcut read the input.
        ("conv(8, 3) as a residual { a conv(8, 1) }", None),
        // Left behind in each call of a block: one warning, at the layer in the block.
        ("twice() twice()", Some(("`t` on its own", 1))),
        // Outside a concat, `crop_outside_concat` covers it.
        ("conv(8, 3) as a conv(8, 1) crop(a)", None),
    ];
    for (body, warned) in cases {
        let src = format!(
            "block twice() {{ conv(8, 1) as t conv(8, 1) t }}\n\
             model M(input: [3, 32, 32]) {{ {body} }}\n"
        );
        let c = cnnc::compile_source(std::path::Path::new("dropped.cnn"), src);
        assert!(!c.diagnostics.has_errors(), "{body}");
        let got: Vec<&str> = c
            .diagnostics
            .iter()
            .filter(|d| d.code == "cnnc::elab::dropped_tensor")
            .map(|d| d.message.as_str())
            .collect();
        match warned {
            None => assert!(got.is_empty(), "{body}: {got:?}"),
            Some((says, n)) => assert!(got.len() == n && got[0].contains(says), "{body}: {got:?}"),
        }
        // Inside a block, it is labelled at the call, as every diagnostic from a block is.
        if body.starts_with("twice") {
            let d = c
                .diagnostics
                .iter()
                .find(|d| d.code == "cnnc::elab::dropped_tensor")
                .unwrap();
            assert!(
                d.labels.iter().any(|l| l.text == "in this call of `twice`"),
                "{:?}",
                d.labels
            );
        }
    }
}

/// A residual's help fits how it went wrong: a pooling shortcut that rounds down, a body
/// that restores `in.c` read after a concat, a block whose calls differ (the projection in
/// its own arguments, under a condition), a model's own residual (the literal projection).
#[test]
fn residual_mismatch_helps_fit_the_mistake() {
    // `in.c` in the body's first layer is the residual's input: no note.
    let c = cnnc::compile_source(
        std::path::Path::new("res.cnn"),
        "model M(input: [16, 8, 8]) { residual { conv(in.c * 2, 3, pad=1) } }".to_string(),
    );
    let d = c.diagnostics.iter().next().expect("a residual_mismatch");
    assert!(
        !d.help.as_deref().unwrap_or("").contains("`in.c`"),
        "{:?}",
        d.help
    );
    let cases: [(&str, &[&str]); 11] = [
        // A written shortcut without the stride, in a block that takes one: the block's
        // argument, not the literal, which would break the calls of stride 1.
        (
            "block basic(c, stride=1) {\n\
                 residual { conv(c, 3, stride=stride, pad=1) relu conv(c, 3, pad=1) }\n\
                 shortcut if stride != 1 or in.c != c { conv(c, 1) }\n\
             }\n\
             model N(input: [16, 32, 32]) { basic(32) basic(64, stride=2) }",
            &["`stride=stride` (here 2)"],
        ),
        (
            "block basic(c, stride=1) {\n\
                 residual { conv(c, 3, stride=stride, pad=1) } shortcut { avgpool(1) }\n\
             }\n\
             model N(input: [16, 32, 32]) { basic(16, stride=2) }",
            &["`conv(16, 1, stride=stride)`"],
        ),
        // The stride written in the block: every call downsamples.
        (
            "block down(c) { residual { conv(c, 3, stride=2, pad=1) } }\n\
             model M(input: [8, 8, 8]) { down(8) }",
            &["every call downsamples", "shortcut { conv(c, 1, stride=2) }"],
        ),
        // A stride argument found by its name, even where this call passes 1.
        (
            "block b(c, n=2, stride=1) { residual { conv(c, 3, stride=stride, pad=1) } }\n\
             model M(input: [8, 8, 8]) { b(16) }",
            &["shortcut if in.c != c or stride != 1 { conv(c, 1, stride=stride) }"],
        ),
        (
            "block down(c) { residual { conv(c, 3, stride=2, pad=1) } shortcut { conv(c, 1) avgpool(2) } }\n\
             model M(input: [16, 15, 15]) { down(32) }",
            &["pooling drops the last rows", "`ceil=true`", "`conv(32, 1, stride=2)`"],
        ),
        (
            "block a() { residual { concat { conv(32, 1) conv(32, 1) } conv(in.c, 1) } }\n\
             model M(input: [96, 8, 8]) { a }",
            &["`in.c` in `conv(…)`", "input's 96 channels"],
        ),
        (
            "block unit(width, stride=1) { residual { conv(width, 3, stride=stride, pad=1) } }\n\
             model M(input: [8, 8, 8]) { unit(8) unit(16, stride=2) }",
            &["shortcut if in.c != width or stride != 1 { conv(width, 1, stride=stride) }"],
        ),
        (
            "block unit(width) { residual { conv(width, 3, pad=1) batchnorm } }\n\
             model M(input: [8, 8, 8]) { unit(8) unit(16) }",
            &["shortcut if in.c != width { conv(width, 1) batchnorm }"],
        ),
        (
            "model M(input: [8, 8, 8]) { residual { conv(16, 3, stride=2, pad=1) } }",
            &["shortcut { conv(16, 1, stride=2) }"],
        ),
        // A shortcut from a skip named before a downsampling, or after an upsampling.
        (
            "model R(input: [3, 32, 32]) { conv(16, 3, pad=1) as e1 conv(16, 3, stride=2, pad=1) \
             residual { conv(16, 3, pad=1) } shortcut { e1 } }",
            &["pool it to 16×16 at its end, `maxpool(2)`", "`conv(16, 1, stride=2)`"],
        ),
        (
            "model R(input: [3, 32, 32]) { conv(16, 3, stride=2, pad=1) as e1 upsample(2) \
             residual { conv(16, 3, pad=1) } shortcut { e1 } }",
            &["upsample it to 32×32 at its end, `upsample(2)`"],
        ),
    ];
    for (src, says) in cases {
        let c = cnnc::compile_source(std::path::Path::new("res.cnn"), src.to_string());
        let d = c
            .diagnostics
            .iter()
            .find(|d| d.code == "cnnc::shape::residual_mismatch")
            .unwrap_or_else(|| panic!("{src}: no residual_mismatch"));
        let help = d.help.as_deref().unwrap_or("");
        for s in says {
            assert!(help.contains(s), "{src}:\n{help}\nlacks {s}");
        }
    }
}

/// `# cnnc: allow(code)` silences that warning on its line, or on the line below when it
/// stands alone; not elsewhere, never an error; a code that names no warning is warned, and
/// so is one that silenced nothing in a model without errors.
#[test]
fn allow_comments_silence_warnings_where_they_are() {
    let codes = |src: &str| -> Vec<&'static str> {
        let c = cnnc::compile_source(std::path::Path::new("allow.cnn"), src.to_string());
        c.diagnostics.iter().map(|d| d.code).collect()
    };
    const UNUSED: &str = "cnnc::shape::unused_input";
    // Two 2×2 poolings on odd sizes: 11 → 5 → 2, each leaving a row unused.
    let m = |a: &str, b: &str| {
        format!("model W(input: [1, 11, 11]) {{\n{a}\n    maxpool(2){b}\n    avgpool(2)\n    flatten linear(2)\n}}\n")
    };
    assert_eq!(codes(&m("", "")), [UNUSED, UNUSED]);
    assert_eq!(codes(&m("", "  # cnnc: allow(unused_input)")), [UNUSED]);
    assert_eq!(
        codes(&m("", " // cnnc: allow(cnnc::shape::unused_input)")),
        [UNUSED]
    );
    // Another code, or a comment two lines up, silences nothing, and is told so.
    const STALE: &str = "cnnc::syntax::unused_allow";
    assert_eq!(
        codes(&m("    # cnnc: allow(gridding, unused_input)", "")),
        [UNUSED, STALE]
    );
    assert_eq!(
        codes(&m("", " # cnnc: allow(gridding)")),
        [UNUSED, UNUSED, STALE]
    );
    let far = "model W(input: [1, 11, 11]) {\n    # cnnc: allow(unused_input)\n    relu\n    maxpool(2)\n    flatten linear(2)\n}\n";
    assert_eq!(codes(far), [UNUSED, STALE]);
    // Only the stale code of a list, and only in a model without errors (an error stops
    // the checks that give warnings), and not in a block, whose warnings depend on its calls.
    assert_eq!(
        codes(&m("", " # cnnc: allow(unused_input, gridding)")),
        [UNUSED, STALE]
    );
    let broken =
        "model W(input: [1, 11, 11]) {\n    relu  # cnnc: allow(unused_input)\n    linear(x)\n}\n";
    assert_eq!(codes(broken), ["cnnc::elab::unknown_variable"]);
    let block = "block B() {\n    relu  # cnnc: allow(unused_input)\n}\nmodel W(input: [1, 4, 4]) {\n    B()\n    flatten linear(2)\n}\n";
    assert_eq!(codes(block), Vec::<&str>::new());
    // An allow on a `block` line (or alone above it) never silences a warning of its body,
    // and says so; one on a block written on one line is on its layer's line and works.
    let header = |above: &str, on: &str| {
        format!("{above}block B() {{{on}\n    maxpool(2)\n}}\nmodel W(input: [1, 11, 11]) {{\n    B()\n    flatten linear(2)\n}}\n")
    };
    for src in [
        header("", "  # cnnc: allow(unused_input)"),
        header("# cnnc: allow(unused_input)\n", ""),
    ] {
        assert_eq!(codes(&src), [UNUSED, STALE], "{src}");
        let c = cnnc::compile_source(std::path::Path::new("h.cnn"), src.clone());
        let d = c.diagnostics.iter().find(|d| d.code == STALE).unwrap();
        assert!(d.message.contains("on a `block` line"), "{}", d.message);
    }
    let one_line = "block B() { maxpool(2) }  # cnnc: allow(unused_input)\nmodel W(input: [1, 11, 11]) {\n    B()\n    flatten linear(2)\n}\n";
    assert_eq!(codes(one_line), Vec::<&str>::new());
    // A block called twice reports its warning once, at the first call; an allow at every
    // call silences it, and neither allow is stale.
    let calls = |first: &str, second: &str| {
        format!("block b() {{ conv(8, 3, stride=2) }}\nmodel M(input: [8, 34, 34]) {{\n    b(){first}\n    b(){second}\n    flatten linear(2)\n}}\n")
    };
    const ALLOW: &str = "  # cnnc: allow(unused_input)";
    assert_eq!(codes(&calls(ALLOW, ALLOW)), Vec::<&str>::new());
    // An allow at one call only leaves the warning of the other, shown at that call and
    // with its sizes (the second call's input is the first's output).
    for (first, second, line, size) in [(ALLOW, "", 4, "16×16"), ("", ALLOW, 3, "34×34")] {
        let src = calls(first, second);
        let c = cnnc::compile_source(std::path::Path::new("calls.cnn"), src.clone());
        let d: Vec<_> = c.diagnostics.iter().collect();
        assert_eq!(d.len(), 1, "{src}: {d:?}");
        assert_eq!(d[0].code, UNUSED);
        let call = d[0].labels.iter().find(|l| l.call).expect("a call label");
        let at = src[..call.span.start as usize].matches('\n').count() + 1;
        assert_eq!(
            at, line,
            "{src}: the warning is shown at the call not allowed"
        );
        assert!(d[0].message.contains(size), "{src}: {}", d[0].message);
    }
    // The call not allowed is in a repeat: the warning names the iteration that gave it.
    let src = "block b(s) { conv(8, 3, stride=s) }\nmodel M(input: [8, 34, 34]) {\n    b(2)  # cnnc: allow(unused_input)\n    repeat s in [1, 2] { b(s) }\n    flatten linear(2)\n}\n";
    let c = cnnc::compile_source(std::path::Path::new("calls.cnn"), src.to_string());
    let d: Vec<_> = c.diagnostics.iter().collect();
    assert_eq!(d.len(), 1, "{src}: {d:?}");
    assert!(d[0].message.contains("14×14"), "{}", d[0].message);
    let texts: Vec<&str> = d[0].labels.iter().map(|l| l.text.as_str()).collect();
    assert!(texts.contains(&"in the iteration with s = 2"), "{texts:?}");
    // A name given in a repeat: each iteration's tensor read in the loop, or only the last
    // one named, after the repeat, is clean; every iteration's named and only the last one
    // read is a warning.
    for (src, warned) in [
        ("repeat 2 { conv(8, 3, pad=1) as e concat { {} e } }", false),
        (
            "repeat 2 { conv(8, 3, pad=1) } as e conv(8, 1) concat { {} e }",
            false,
        ),
        (
            "repeat 2 { conv(8, 3, pad=1) as e } conv(8, 1) concat { {} e }",
            true,
        ),
        // Read in only some iterations, where each is made: the others were not meant.
        (
            "repeat i in 0..3 { conv(8, 3, pad=1) as e if i == 1 { concat { {} e } } }",
            false,
        ),
        (
            "repeat i in 0..2 { conv(8, 3, pad=1) as e if i == 1 { concat { {} e } } }",
            false,
        ),
        (
            "repeat i in 0..3 { conv(8, 3, pad=1) as e if i == 0 { concat { {} e } } }",
            false,
        ),
        // An inner repeat's tensors read only after it ends, in each outer iteration: the
        // inner iterations' are lost, whatever the outer loop does.
        (
            "repeat 2 { repeat 3 { conv(8, 3, pad=1) as e } concat { {} e } conv(8, 1) }",
            true,
        ),
        // A label (`_`) read nowhere is no slip; one read later is a lost tensor as any.
        ("repeat 3 { conv(8, 3, pad=1) as _e }", false),
        (
            "repeat 3 { conv(8, 3, pad=1) as _e maxpool(2) } upsample(2) concat { {} crop(_e) }",
            true,
        ),
        // Read elsewhere (an earlier `as e`): `unused_name` stays silent, so this warns.
        (
            "conv(8, 3, pad=1) as e concat { {} e } repeat 3 { conv(8, 3, pad=1) as e maxpool(2) }",
            true,
        ),
        // Read in the naming iteration, in a repeat nested inside it.
        (
            "repeat i in 0..3 { conv(8, 3, pad=1) as t repeat 1 { if i == 2 { concat { {} t } } } }",
            false,
        ),
    ] {
        let model = format!("model M(input: [8, 8, 8]) {{\n    {src}\n    flatten linear(2)\n}}\n");
        let expected: &[&str] = if warned {
            &["cnnc::elab::name_reused"]
        } else {
            &[]
        };
        assert_eq!(codes(&model), expected, "{model}");
    }
    // A list that repeats its item: the value alone would not say which iteration failed.
    let iteration_label = |src: &str| {
        let c = cnnc::compile_source(std::path::Path::new("list.cnn"), src.to_string());
        let d: Vec<_> = c.diagnostics.iter().collect();
        assert_eq!(d.len(), 1, "{src}: {d:?}");
        let label = d[0].labels.iter().find(|l| l.text.contains("iteration"));
        label.expect("an iteration label").text.clone()
    };
    let list = |size: u32, items: &str| {
        format!("model M(input: [8, {size}, {size}]) {{\n    repeat k in {items} {{ conv(8, k) }}\n    flatten linear(2)\n}}\n")
    };
    assert_eq!(
        iteration_label(&list(4, "[3, 3]")),
        "in iteration 2 of 2, with k = 3"
    );
    assert_eq!(
        iteration_label(&list(2, "[1, 3]")),
        "in the iteration with k = 3"
    );
    // An allow at the call inside a block covers every call of that block; calls in a
    // repeat are one place.
    let nested = "block b() { conv(8, 3, stride=2) }\nblock a() {\n    b()  # cnnc: allow(unused_input)\n}\nmodel M(input: [8, 34, 34]) {\n    a()\n    repeat 2 { a() }\n    flatten linear(2)\n}\n";
    assert_eq!(codes(nested), Vec::<&str>::new());
    let repeated = "block b() { conv(8, 3, stride=2) }\nmodel M(input: [8, 66, 66]) {\n    b()  # cnnc: allow(unused_input)\n    repeat 2 { b() }  # cnnc: allow(unused_input)\n    flatten linear(2)\n}\n";
    assert_eq!(codes(repeated), Vec::<&str>::new());
    // Every call's allow is judged: here the block never warns.
    let quiet = "block b() { conv(8, 3, stride=2, pad=1) }\nmodel M(input: [8, 34, 34]) {\n    b()  # cnnc: allow(unused_input)\n    b()  # cnnc: allow(unused_input)\n    flatten linear(2)\n}\n";
    assert_eq!(
        codes(quiet),
        ["cnnc::syntax::unused_allow", "cnnc::syntax::unused_allow"]
    );
    // The allow warnings themselves are silenced by `--allow` only: a comment of them is
    // told so (not judged stale).
    let meta = "model W(input: [1, 4, 4]) {\n    relu  # cnnc: allow(unused_allow)\n    flatten linear(2)\n}\n";
    assert_eq!(codes(meta), ["cnnc::syntax::unknown_allow"]);
    // A layer written over two lines: the allow may be on either.
    let split = "model W(input: [1, 11, 11]) {\n    maxpool(2,\n        stride=2)  # cnnc: allow(unused_input)\n    flatten linear(2)\n}\n";
    assert_eq!(codes(split), Vec::<&str>::new());
    // On the statement that caused the warning (its second label), not only the layer.
    let dropped = "model D(input: [1, 8, 8]) {\n    conv(4, 3, pad=1) as a\n    conv(4, 3, pad=1)\n    a  # cnnc: allow(dropped_tensor)\n    flatten linear(2)\n}\n";
    assert_eq!(codes(dropped), Vec::<&str>::new());
    // A misspelt code is itself warned, with the right name.
    let c = cnnc::compile_source(
        std::path::Path::new("allow.cnn"),
        m("", " # cnnc: allow(unused_inptu)"),
    );
    let unknown = c
        .diagnostics
        .iter()
        .find(|d| d.code == "cnnc::syntax::unknown_allow")
        .expect("the misspelt code is warned");
    assert!(unknown.help.as_deref().unwrap().contains("`unused_input`"));
    assert_eq!(c.diagnostics.warning_count(), 3);
    // Errors stay.
    let err = "model W(input: [1, 4, 4]) {\n    conv(2, 9)  # cnnc: allow(window_too_large)\n}\n";
    assert!(codes(err).contains(&"cnnc::shape::window_too_large"));
}

/// A concat whose skip tensor is larger than the upsampled branch is told to crop it (with
/// the concat rewritten), and to reach it with `output_pad` when a transposed conv falls
/// short by less than its stride; other mismatches keep the general help.
#[test]
fn concat_mismatch_help_crops_the_skip_or_pads_the_upsampling() {
    let help = |body: &str| -> String {
        let src = format!("model U(input: [4, 25, 25]) {{ conv(8, 3, pad=1) as e {body} }}");
        let c = cnnc::compile_source(std::path::Path::new("u.cnn"), src.clone());
        let d = c
            .diagnostics
            .iter()
            .find(|d| d.code == "cnnc::shape::concat_mismatch")
            .unwrap_or_else(|| panic!("{src}: no concat_mismatch"));
        d.help.clone().unwrap_or_default()
    };
    let h = help("maxpool(2) convT(8, 2, stride=2) concat { e {} }");
    assert!(h.contains("`concat { crop(e) {} }`"), "{h}");
    assert!(h.contains("`output_pad=1`"), "{h}");
    // Short by more than the stride: cropping only.
    let h = help("maxpool(4) convT(8, 2, stride=2) conv(8, 3, pad=1) concat { {} e }");
    assert!(h.contains("`concat { {} crop(e) }`"), "{h}");
    assert!(!h.contains("output_pad"), "{h}");
    // An upsampling by a factor: or to the skip's size, in its mode; what it writes compiles.
    let h = help("maxpool(2) conv(8, 3, pad=1) upsample(2, bilinear=true) concat { {} e }");
    let fix = "upsample(size=[e.h, e.w], bilinear=true)";
    assert!(
        h.contains("`concat { {} crop(e) }`") && h.contains(&format!("`{fix}` in place")),
        "{h}"
    );
    let fixed = format!(
        "model U(input: [4, 25, 25]) {{ conv(8, 3, pad=1) as e maxpool(2) conv(8, 3, pad=1) \
         {fix} concat {{ {{}} e }} : [16, 25, 25] }}"
    );
    let c = cnnc::compile_source(std::path::Path::new("u.cnn"), fixed);
    assert!(
        c.diagnostics
            .iter()
            .all(|d| d.severity != cnnc::diag::Severity::Error),
        "{:?}",
        c.diagnostics
    );
    assert!(!help("maxpool(2) convT(8, 2, stride=2) concat { e {} }").contains("upsample"));
    // The smaller branch is not the concat's input size: `crop(e)` would not reach it.
    let h = help("concat { e { conv(8, 3) } }");
    assert!(!h.contains("crop(e)"), "{h}");
    // No named skip: the general help.
    let h = help("concat { {} maxpool(2) }");
    assert!(h.contains("every branch must keep the spatial size"), "{h}");
    // The skip is the smaller one (an upsampling too many): no crop, but where to look.
    let h = help("upsample(2) concat { {} e }");
    assert!(
        h.contains("`e` is 25×25, smaller than the other branch's 50×50") && !h.contains("crop(e)"),
        "{h}"
    );
    // The skip is the larger branch though smaller than the concat's input: not this help.
    let h = help("conv(8, 3) as f conv(8, 1, pad=1) concat { f { conv(8, 5) } }");
    assert!(!h.contains("smaller than"), "{h}");
}

/// A U-Net's `up` block given the skip of another scale (`up(32, d1)` where `d2` was meant):
/// the help names the caller's tensor that was passed and the one of the size wanted, and
/// passing it checks clean; a transposed conv far over the skip's size is not told to pad it
/// away; an FPN's coarse tensor is offered an upsampling to the skip's size.
#[test]
fn concat_help_names_the_callers_skip_of_the_right_scale() {
    let src = |calls: &str, conv: &str| {
        format!(
            "block down(c) {{ conv(c, 3, pad=1) relu }}\n\
             block up(c, skip) {{ convT(c, 2, stride=2) concat {{ {{}} skip }} {conv} relu }}\n\
             model U(input: [1, 64, 64]) {{\n\
             down(16) as d1 maxpool(2) down(32) as d2 maxpool(2) down(64)\n{calls}\nconv(2, 1) }}\n"
        )
    };
    let check = |text: String| cnnc::compile_source(std::path::Path::new("u.cnn"), text);
    let help = |text: String| help_for(&text, "cnnc::shape::concat_mismatch");
    let padded = "conv(c, 3, pad=1)";
    // The skip of the scale above: 2× the other branch.
    let h = help(src("up(32, d1) up(16, d1)", padded));
    assert!(h.contains("`skip` (`d1` in this call)"), "{h}");
    assert!(
        h.contains("pass the caller's `d2` (32×32) in place of `d1`"),
        "{h}"
    );
    // The skip of the scale below: smaller, and the caller's tensor of the right size.
    let h = help(src("up(32, d2) up(16, d2)", padded));
    assert!(h.contains("`skip` (`d2` in this call)"), "{h}");
    assert!(
        h.contains("pass the caller's `d1` (64×64) in place of `d2`"),
        "{h}"
    );
    assert!(h.contains("since `d2` was named"), "{h}");
    // The fix checks clean.
    let fixed = check(src("up(32, d2) up(16, d1)", padded));
    assert!(
        fixed
            .diagnostics
            .iter()
            .all(|d| d.severity != cnnc::diag::Severity::Error),
        "{:?}",
        fixed.diagnostics
    );
    // The call's own input is never offered as the skip: it would be joined with itself.
    let h = help(
        "block fuse(c, skip) { concat { skip {} } conv(c, 3, pad=1) relu }\n\
         model F(input: [3, 64, 64]) { conv(8, 3, pad=1) as x1 maxpool(2) conv(16, 3, pad=1) \
         as x2 fuse(16, x1) }\n"
            .to_string(),
    );
    assert!(
        h.contains("`skip` (`x1` in this call)") && !h.contains("`x2`"),
        "{h}"
    );
    // A skip named in the block itself is not the caller's: no call is named.
    let own = "block up(c, x) { convT(c, 2, stride=2) as skip maxpool(2) concat { {} skip } }\n\
               model U(input: [1, 8, 8]) { conv(4, 3, pad=1) as d up(4, d) }\n";
    let h = help(own.to_string());
    assert!(!h.contains("in this call"), "{h}");
    // An FPN's top-down concat of the coarse tensor as it came with a finer skip: upsampling
    // it is offered beside pooling the skip, and checks clean as written.
    let fpn = |fix: &str| {
        format!(
            "model F(input: [3, 64, 64]) {{ conv(16, 3, stride=2, pad=1) as c3 \
             conv(32, 3, stride=2, pad=1) conv(16, 1) {fix} concat {{ {{}} c3 }} }}"
        )
    };
    let h = help(fpn(""));
    assert!(
        h.contains("upsample this tensor to the skip's size before the concat, `upsample(2)`"),
        "{h}"
    );
    assert!(h.contains("`concat { {} { c3 maxpool(2) } }`"), "{h}");
    for fix in ["upsample(2)", "upsample(size=[c3.h, c3.w])"] {
        let c = check(fpn(fix));
        assert!(
            c.diagnostics
                .iter()
                .all(|d| d.severity != cnnc::diag::Severity::Error),
            "{fix}: {:?}",
            c.diagnostics
        );
    }
    // A tensor a transposed conv made is not told to upsample again (U-Net's `up` above).
    assert!(!help(src("up(32, d1) up(16, d1)", padded)).contains("upsample this tensor"));
    // Unpadded convs leave the transposed conv at 60×60 against a 32×32 skip: pad=14 would
    // hide the lost borders, and is not offered.
    let h = help(src("up(32, d2) up(16, d2)", "conv(c, 3)"));
    assert!(!h.contains("pad=14"), "{h}");
}

/// An argument given twice: PyTorch's order is named only when the numbers look like it;
/// otherwise the help says to give it once. The earlier one is labelled as it was given.
#[test]
fn an_argument_given_twice_gets_the_fitting_help() {
    for (layer, says, label) in [
        (
            "convT(16, 512, 2, stride=2)",
            "drop the first argument",
            "`stride` by position",
        ),
        (
            "conv(16, 3, 2, stride=2)",
            "give `stride` once",
            "`stride` by position",
        ),
        (
            "conv(16, 3, pad=1, pad=2)",
            "give `pad` once",
            "`pad` first given here",
        ),
    ] {
        let src = format!("model M(input: [16, 28, 28]) {{ {layer} }}");
        let c = cnnc::compile_source(std::path::Path::new("twice.cnn"), src);
        let d = c
            .diagnostics
            .iter()
            .find(|d| d.message.contains("is given twice"))
            .unwrap_or_else(|| panic!("{layer}: no diagnostic"));
        assert!(
            d.help.as_deref().unwrap_or("").contains(says),
            "{layer}: {:?}",
            d.help
        );
        assert!(
            d.labels.iter().any(|l| l.text == label),
            "{layer}: {:?}",
            d.labels
        );
    }
}

/// A gate gives its input's shape whatever its body does, and a residual its shortcut's:
/// after an error in the body, later mistakes are still found; `mul` as a layer points to
/// `gate`.
#[test]
fn checking_goes_on_after_a_gate_or_residual_and_mul_points_to_gate() {
    let src = "model S(input: [16, 8, 8]) {\n gate { conv(4, 50) sigmoid }\n gate { conv(4, 1) sigmoid }\n}\n";
    let c = cnnc::compile_source(std::path::Path::new("g.cnn"), src.to_string());
    let codes: Vec<&str> = c.diagnostics.iter().map(|d| d.code).collect();
    assert_eq!(
        codes,
        [
            "cnnc::shape::window_too_large",
            "cnnc::shape::gate_mismatch"
        ]
    );
    // A residual too: the sum takes the shortcut's shape after an error in the body.
    let src =
        "model R(input: [16, 8, 8]) {\n residual { conv(16, 50) }\n conv(4, 1) : [5, 8, 8]\n}\n";
    let c = cnnc::compile_source(std::path::Path::new("r.cnn"), src.to_string());
    let codes: Vec<&str> = c.diagnostics.iter().map(|d| d.code).collect();
    assert_eq!(
        codes,
        [
            "cnnc::shape::window_too_large",
            "cnnc::shape::assertion_failed"
        ]
    );
    let src = "model S(input: [4, 8, 8]) { conv(4, 1) mul }";
    let c = cnnc::compile_source(std::path::Path::new("m.cnn"), src.to_string());
    let d = c.diagnostics.iter().next().unwrap();
    assert!(
        d.help.as_deref().unwrap().contains("gate {"),
        "{:?}",
        d.help
    );
}

/// A mistake far out on a very long line (a generated one-line model) is reported with its
/// `file:line:col`, not drawn on the line (miette fails past column 65,535).
#[test]
fn a_mistake_past_column_65535_is_reported_by_position() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("long.cnn");
    let line = format!("model M(input: [1, 8, 8]) {{{}cnv }}\n", " ".repeat(70_000));
    std::fs::write(&path, line).unwrap();
    let out = cnnc()
        .args(["check", path.to_str().unwrap()])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("unknown layer `cnv`"), "{stderr}");
    assert!(stderr.contains("long.cnn:1:70028"), "{stderr}");
    assert!(
        stderr.len() < 2000,
        "the line is not drawn: {} bytes",
        stderr.len()
    );
}

/// A name used where it is not visible says why: named later in the same body, named only in
/// a branch that did not run, or named in another block.
#[test]
fn a_tensor_out_of_sight_says_where_it_is_named() {
    for (body, message, label) in [
        (
            "concat { e {} } conv(8, 1) as e",
            "used before the statement that names it",
            "named here, later",
        ),
        (
            "if false { conv(8, 1) as e } concat { e {} }",
            "no tensor is named `e` here",
            "did not run",
        ),
        (
            "enc concat { crop(s) {} }",
            "a tensor of block `enc`, not of model `M`",
            "in block `enc`",
        ),
    ] {
        let src = format!(
            "block enc() {{ conv(8, 1) as s relu }}\nmodel M(input: [8, 8, 8]) {{ {body} }}\n"
        );
        let c = cnnc::compile_source(std::path::Path::new("sight.cnn"), src);
        let d = c
            .diagnostics
            .iter()
            .find(|d| d.code == "cnnc::elab::unknown_tensor")
            .unwrap_or_else(|| panic!("{body}: no unknown_tensor"));
        assert!(d.message.contains(message), "{body}: {}", d.message);
        assert!(
            d.labels.iter().any(|l| l.text.contains(label)),
            "{body}: {:?}",
            d.labels
        );
    }
}

/// PyTorch's `softmax(dim=1)` (or `softmax(1)`) is told that cnnc's softmax has no dimension
/// to give, and `gelu(approximate=tanh)` that cnnc's gelu is the exact one.
#[test]
fn softmax_dim_is_explained() {
    for (call, code) in [
        ("softmax(dim=1)", "cnnc::elab::unknown_argument"),
        ("softmax(1)", "cnnc::elab::argument_count"),
        ("gelu(approximate=tanh)", "cnnc::elab::unknown_argument"),
    ] {
        let c = cnnc::compile_source(
            Path::new("softmax.cnn"),
            format!("model M(input: [1, 8, 8]) {{ flatten linear(10) {call} }}"),
        );
        let d = c
            .diagnostics
            .iter()
            .find(|d| d.code == code)
            .unwrap_or_else(|| panic!("{call}: no {code}"));
        let help = d.help.clone().unwrap_or_default();
        let layer = &call[..call.find('(').unwrap()];
        assert!(
            help.contains("PyTorch's") && help.contains(&format!("write `{layer}`")),
            "{call}: {help}"
        );
    }
}

/// After a failed shape assertion, checking goes on with the shape written when it is of the
/// tensor's rank (the layers after it were written from that belief), else with the real
/// one (a vector written after a conv is a misplaced assertion): one error either way.
#[test]
fn a_failed_assertion_is_one_error() {
    for body in [
        // Belief [16, 10, 10] (pad=2 forgotten): the later `: [400]` holds under it.
        "conv(6, 5) avgpool(2) conv(16, 5) : [16, 10, 10] avgpool(2) flatten : [400] linear(10)",
        // A vector asserted on an image: the pooling after it still sees the image.
        "conv(6, 5) : [400] avgpool(2) flatten linear(10)",
    ] {
        let c = cnnc::compile_source(
            Path::new("assert.cnn"),
            format!("model M(input: [1, 28, 28]) {{ {body} }}"),
        );
        let codes: Vec<_> = c.diagnostics.iter().map(|d| d.code).collect();
        assert_eq!(codes, ["cnnc::shape::assertion_failed"], "{body}");
    }
}

/// PyTorch's argument order (`in_channels` first) is warned where the numbers give it away:
/// a channel count where cnnc reads the kernel, or a stride above the kernel in a call of
/// four or more positional numbers (`ConvTranspose2d(64, 3, 4, 2, 1)`, a DCGAN's last
/// layer); where they cannot tell, nothing is said. Where PyTorch's padding lands on
/// `dilation` as 0, the error says why.
#[test]
fn pytorch_argument_order_is_told_where_the_numbers_give_it_away() {
    let compile = |input: &str, layer: &str| {
        let src =
            format!("model M(input: [{input}]) {{ {layer} global_avgpool flatten linear(2) }}");
        cnnc::compile_source(Path::new("order.cnn"), src)
    };
    const ORDER: &str = "cnnc::elab::pytorch_argument_order";
    let cases: &[(&str, &str, Option<&str>)] = &[
        (
            "1, 28, 28",
            "conv(1, 6, 5, pad=2)",
            Some("`conv(6, 5, pad=2)`"),
        ),
        (
            "64, 32, 32",
            "convT(64, 3, 4, 2, 1)",
            Some("`convT(3, 4, 2, 1)`"),
        ),
        (
            "64, 32, 32",
            "conv(64, 128, 1, 2)",
            Some("`conv(128, 1, 2)`"),
        ),
        // Numbers that read the same in both orders, or are cnnc's own.
        ("64, 32, 32", "conv(64, 3, 3, 1, 1)", None),
        ("64, 32, 32", "conv(64, 3, 1, 1)", None),
        ("64, 32, 32", "conv(64, 1, 2)", None),
        ("96, 32, 32", "conv(96, 7, 1, 3, groups=96)", None),
        ("32, 32, 32", "convT(64, 3, 4, 2, 1)", None),
        // A 1×1 stride-2 projection that keeps the channels, pad written: PyTorch's reading
        // would have stride 0.
        ("64, 32, 32", "conv(64, 1, 2, 0, bias=false)", None),
    ];
    for (input, layer, help) in cases {
        let c = compile(input, layer);
        let d = c.diagnostics.iter().find(|d| d.code == ORDER);
        match (help, d) {
            (Some(h), Some(d)) => {
                let text = d.help.as_deref().unwrap_or("");
                assert!(text.contains(h), "{layer}: {text}");
            }
            (None, None) => {}
            (Some(_), None) => panic!("{layer} on [{input}]: not warned"),
            (None, Some(d)) => panic!("{layer} on [{input}]: warned: {}", d.message),
        }
    }
    // `Conv2d(512, 1, 4, 1, 0)`, a DCGAN discriminator's last layer: dilation 0.
    let help_of = |input: &str| {
        let c = compile(input, "conv(512, 1, 4, 1, 0)");
        let d = c
            .diagnostics
            .iter()
            .find(|d| d.code == "cnnc::elab::argument_value")
            .expect("dilation 0 is an error");
        d.help.clone().unwrap_or_default()
    };
    assert!(help_of("512, 4, 4").contains("drop the first argument"));
    assert!(!help_of("256, 4, 4").contains("PyTorch"));
}

/// FCN's upsampling, `ConvTranspose2d(21, 21, 16, stride=8)`, is `convT(21, 16, 8)` in cnnc:
/// the numbers also read as PyTorch's order, but an assertion that holds on the statement
/// says cnnc's reading is the one meant, and nothing is said. Without it, or with one that
/// fails, the warning stands.
#[test]
fn an_assertion_that_holds_settles_the_argument_order() {
    let warned = |statement: &str| {
        let src = format!("model Head(input: [21, 16, 16]) {{\n    {statement}\n}}\n");
        let c = cnnc::compile_source(Path::new("fcn.cnn"), src);
        c.diagnostics
            .iter()
            .any(|d| d.code == "cnnc::elab::pytorch_argument_order")
    };
    assert!(!warned("convT(21, 16, 8, bias=false) : [21, 136, 136]"));
    assert!(!warned("convT(21, 64, 32, bias=false) : [21, 544, 544]"));
    assert!(warned("convT(21, 16, 8, bias=false)"));
    // PyTorch's reading (16 channels out, kernel 8) asserted: cnnc's reading fails it.
    assert!(warned("convT(21, 16, 8, bias=false) : [16, 23, 23]"));
    // An assertion belongs to the last layer of its line: after `relu`, it does not settle
    // the convT's order (a limit: the warning stays).
    assert!(warned("convT(21, 16, 8) relu : [21, 136, 136]"));
}

/// Helps for what a porter from PyTorch meets: a flat latent input under a transposed conv,
/// a width formula that floor division rounds to 0, a squeeze-and-excitation gate written
/// with `Linear`s, and layers cnnc lacks (said honestly, not as a near miss).
#[test]
fn porting_mistakes_get_helps_that_fit() {
    let help = |src: &str, code: &str| -> String {
        let c = cnnc::compile_source(Path::new("port.cnn"), src.to_string());
        let d = c
            .diagnostics
            .iter()
            .find(|d| d.code == code)
            .unwrap_or_else(|| panic!("{src}: no {code}"));
        d.help.clone().unwrap_or_default()
    };
    const RANK: &str = "cnnc::shape::rank";
    let h = help("model G(input: [100]) { convT(512, 4) }", RANK);
    assert!(h.contains("`input: [100, 1, 1]`"), "{h}");
    assert!(!h.contains("image flattened"), "{h}");
    // MNIST's and CIFAR's flattened images: the image itself first.
    for (n, image) in [(784, "[1, 28, 28]"), (3072, "[3, 32, 32]")] {
        let h = help(&format!("model K(input: [{n}]) {{ conv(8, 3) }}"), RANK);
        assert!(
            h.contains(&format!("image flattened, `input: {image}`")),
            "{h}"
        );
    }
    // Keras's separable and depthwise convs.
    for (layer, writes) in [
        (
            "separable_conv(16, 3)",
            "`conv(in.c, 3, pad=1, groups=in.c) conv(64, 1)`",
        ),
        ("depthwise_conv(3)", "`conv(in.c, 3, pad=1, groups=in.c)`"),
    ] {
        let h = help(
            &format!("model K(input: [8, 8, 8]) {{ {layer} }}"),
            "cnnc::elab::unknown_layer",
        );
        assert!(h.contains(writes), "{h}");
    }
    // After a flatten, the flatten is what to move.
    let h = help("model G(input: [4, 8, 8]) { flatten conv(8, 3) }", RANK);
    assert!(h.contains("move it before the `flatten`"), "{h}");
    let value = "cnnc::elab::argument_value";
    let h = help(
        "model M(input: [64, 8, 8]) { conv(64 * (4 / 64) * 32, 1) }",
        value,
    );
    assert!(h.contains("multiply before dividing"), "{h}");
    let h = help("model M(input: [64, 8, 8]) { conv(64 - 64, 1) }", value);
    assert!(!h.contains("floor division"), "{h}");
    let h = help(
        "model M(input: [64, 8, 8]) { gate { global_avgpool flatten linear(16) relu linear(64) sigmoid } }",
        "cnnc::shape::gate_mismatch",
    );
    assert!(
        h.contains("`conv(n, 1)`") && h.contains("[64, 1, 1]"),
        "{h}"
    );
    // A transposed conv one row short of the asserted size: output_pad or a larger kernel.
    let assertion = "cnnc::shape::assertion_failed";
    let h = help(
        "model M(input: [8, 4, 4]) { convT(8, 3, stride=2, pad=1) : [8, 8, 8] }",
        assertion,
    );
    assert!(
        h.contains("`output_pad=1`") && h.contains("kernel of 4"),
        "{h}"
    );
    let h = help(
        "model M(input: [8, 4, 4]) { convT(8, 3, stride=2, pad=1) : [8, 9, 9] }",
        assertion,
    );
    assert!(!h.contains("output_pad"), "{h}");
    // A depthwise conv's groups read after the expansion: `in.c` is explained there.
    let h = help(
        "model M(input: [16, 8, 8]) { conv(in.c * 6, 1) conv(in.c * 6, 3, pad=1, groups=in.c * 6) }",
        "cnnc::shape::groups",
    );
    assert!(h.contains("`in.c` in `groups=…` is 96"), "{h}");
    for layer in [
        "conv(96, 3, pad=1, groups=7)",
        "conv(24, 3, pad=1, groups=in.c)",
    ] {
        let h = help(
            &format!("model M(input: [16, 8, 8]) {{ {layer} }}"),
            "cnnc::shape::groups",
        );
        assert!(!h.contains("`in.c` in"), "{layer}: {h}");
    }
    // A shape-keeping layer after a bare branch is the missing-braces slip, whichever it is.
    for layer in ["channel_shuffle(2)", "hardswish", "relu6", "silu"] {
        let src = format!("model M(input: [4, 8, 8]) {{ concat {{ conv(16, 1) {layer} }} }}");
        let c = cnnc::compile_source(Path::new("bare.cnn"), src);
        assert!(
            c.diagnostics
                .iter()
                .any(|d| d.code == "cnnc::elab::bare_branch"),
            "{layer}"
        );
    }
    // slice and channel_shuffle: helps that fit the tensor.
    let range = "cnnc::shape::slice_range";
    let h = help("model M(input: [128]) { slice(100, 129) }", range);
    assert!(h.contains("`slice(0, in.f / 2)`"), "{h}");
    let h = help("model M(input: [1, 4, 4]) { slice(0, 2) }", range);
    assert!(!h.contains("halves"), "{h}");
    let h = help(
        "model M(input: [67, 4, 4]) { channel_shuffle(2) }",
        "cnnc::shape::groups",
    );
    assert!(h.contains("67 is prime"), "{h}");
    let h = help(
        "model M(input: [134, 4, 4]) { channel_shuffle(4) }",
        "cnnc::shape::groups",
    );
    assert!(h.contains("candidates: 2, 67"), "{h}");
    // PyTorch's Upsample arguments: its mode is a switch, its scale_factor is `scale`.
    let arg = "cnnc::elab::unknown_argument";
    let h = help(
        "model M(input: [4, 8, 8]) { upsample(2, mode=bilinear) }",
        arg,
    );
    assert!(h.contains("`bilinear=true`"), "{h}");
    let h = help(
        "model M(input: [4, 8, 8]) { upsample(scale_factor=2) }",
        arg,
    );
    assert!(h.contains("did you mean `scale`?"), "{h}");
    let h = help(
        "model M(input: [4, 8, 8]) { upsample(2, mode='bilinear') }",
        "cnnc::syntax::unexpected",
    );
    assert!(h.contains("`upsample(scale, bilinear=true)`"), "{h}");
    // `align_corners=false` beside nearest is the default, harmless (a block may pass its
    // own `bilinear` switch); only `true` asks for bilinear.
    let c = cnnc::compile_source(
        Path::new("port.cnn"),
        "model M(input: [4, 8, 8]) { upsample(2, bilinear=false, align_corners=false) }".into(),
    );
    assert!(!c.diagnostics.has_errors(), "{:?}", c.diagnostics);
    let h = help(
        "model M(input: [4, 8, 8]) { upsample(2, mode='bicubic') }",
        "cnnc::syntax::unexpected",
    );
    assert!(h.contains("no mode 'bicubic'"), "{h}");
    let unknown = "cnnc::elab::unknown_layer";
    for (layer, says) in [
        ("chunk(2)", "`slice(start, end)`"),
        ("shuffle(2)", "`channel_shuffle(groups)`"),
        ("view(64, 4)", "only `flatten`"),
        ("depth_to_space(2)", "`pixel_shuffle(r)`"),
        ("SpaceToDepth(2)", "`pixel_unshuffle(r)`"),
        ("PixelUnshuffle(2)", "cnnc's layer is `pixel_unshuffle(r)`"),
        ("max_unpool(2)", "indices"),
        (
            "interpolate(2)",
            "`upsample(scale, bilinear=true)` interpolates",
        ),
        (
            "UpsamplingBilinear2d(2)",
            "`upsample(scale, bilinear=true, align_corners=true)`",
        ),
        ("Upsample(2)", "`upsample(2, bilinear=true)`"),
    ] {
        let h = help(
            &format!("model M(input: [64, 8, 8]) {{ {layer} }}"),
            unknown,
        );
        assert!(h.contains(says), "{layer}: {h}");
    }
}

/// `residual if cond { body }` adds the skip only where cond holds; otherwise the body alone,
/// its layers named the same, so weights carry over. `min`/`max` follow Python (integers stay
/// integers, a float makes a float, one list is its items), and other functions are named.
#[test]
fn conditional_residuals_and_min_max() {
    let compile = |src: &str| cnnc::compile_source(Path::new("lang.cnn"), src.to_string());
    let layers = |src: &str| -> Vec<(String, Vec<u64>)> {
        let c = compile(src);
        assert!(!c.diagnostics.has_errors(), "{src}: {:?}", c.diagnostics);
        let m = &c.models[0];
        m.graph
            .graph
            .node_weights()
            .map(|n| (n.name.clone(), n.shape.as_ref().unwrap().dims().to_vec()))
            .collect()
    };
    let inverted = |input: &str, out: u64| {
        format!(
            "block inv(out) {{ residual if in.c == out {{ conv(in.c * 2, 1) conv(out, 1) }} }}\n\
             model M(input: [{input}]) {{ inv({out}) }}"
        )
    };
    let kept = layers(&inverted("8, 4, 4", 8));
    let changed = layers(&inverted("8, 4, 4", 16));
    let names = |l: &[(String, Vec<u64>)]| l.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
    assert!(names(&kept).contains(&"inv1.add1".to_string()), "{kept:?}");
    assert!(
        !names(&changed).iter().any(|n| n.contains("add")),
        "{changed:?}"
    );
    for name in ["inv1.conv1", "inv1.conv2"] {
        assert!(names(&kept).contains(&name.to_string()), "{kept:?}");
        assert!(names(&changed).contains(&name.to_string()), "{changed:?}");
    }
    assert_eq!(changed.last().unwrap().1, [16, 4, 4]);
    // A condition that is no boolean is an error, not a guess; one that cannot be evaluated
    // is reported once, not again as the mismatch of a sum it might not have made.
    let c = compile("model M(input: [4, 4, 4]) { residual if 1 { relu } }");
    assert!(c
        .diagnostics
        .iter()
        .any(|d| d.code == "cnnc::elab::type_error"));
    let c = compile("model M(input: [8, 4, 4]) { residual if nope { conv(16, 3, pad=1) } }");
    let codes: Vec<&str> = c.diagnostics.iter().map(|d| d.code).collect();
    assert_eq!(codes, ["cnnc::elab::unknown_variable"]);
    // Its missing braces are named after the residual.
    let c = compile("model M(input: [8, 4, 4]) { residual if in.c == 8 conv(8, 1) }");
    let help = c
        .diagnostics
        .iter()
        .next()
        .and_then(|d| d.help.clone())
        .unwrap_or_default();
    assert!(help.contains("`residual if in.c == 8 { … }`"), "{help}");

    let out = |arg: &str| -> Result<u64, Vec<&'static str>> {
        let c = compile(&format!("model M(input: [4, 4, 4]) {{ conv({arg}, 1) }}"));
        if c.diagnostics.has_errors() {
            return Err(c.diagnostics.iter().map(|d| d.code).collect());
        }
        Ok(c.models[0].output_shape().0[0])
    };
    assert_eq!(out("max(3, 7)"), Ok(7));
    assert_eq!(out("min(in.c * 4, 9, 12)"), Ok(9));
    assert_eq!(out("max([4, 9, 2])"), Ok(9));
    assert_eq!(out("max(8, 64 / 4)"), Ok(16));
    // A float among the numbers makes a float, which a channel count is not.
    assert_eq!(out("max(2, 3.0)"), Err(vec!["cnnc::elab::argument_type"]));
    // Python's pick keeps its type: max(1.5, 2) is the integer 2.
    assert_eq!(out("max(1.5, 2)"), Ok(2));
    assert_eq!(out("min([5])"), Ok(5));
    assert_eq!(out("max([])"), Err(vec!["cnnc::elab::argument_count"]));
    // A list held by a parameter is a list too.
    let c = compile("block b(ws) { conv(max(ws), 1) }\nmodel M(input: [4, 4, 4]) { b([5]) }");
    assert!(!c.diagnostics.has_errors(), "{:?}", c.diagnostics);
    assert_eq!(c.models[0].output_shape().0[0], 5);
    assert_eq!(out("max(1)"), Err(vec!["cnnc::elab::argument_count"]));
    assert_eq!(out("max(true, 2)"), Err(vec!["cnnc::elab::type_error"]));
    assert_eq!(out("ceil(2)"), Err(vec!["cnnc::elab::unknown_function"]));
}

/// Scopes are numbered in source order: an outer residual's shortcut is `shortcut1`, the one
/// nested in its body `shortcut2` (they used to be numbered as each finished), so weights
/// renamed by hand from a `state_dict` follow the text.
#[test]
fn nested_shortcuts_are_numbered_in_source_order() {
    let src = "model M(input: [8, 16, 16]) {
    residual {
        residual { conv(8, 3, pad=1) } shortcut { conv(4, 1) conv(8, 1) }
    } shortcut { conv(8, 1) }
}";
    let c = cnnc::compile_source(Path::new("nested.cnn"), src.to_string());
    assert!(!c.diagnostics.has_errors(), "{:?}", c.diagnostics);
    let params = |name: &str| {
        c.models[0]
            .graph
            .graph
            .node_weights()
            .find(|n| n.name == name)
            .unwrap_or_else(|| panic!("no {name}"))
            .params
    };
    // The outer shortcut's one conv (8·8 + 8), the inner's two.
    assert_eq!(params("shortcut1.conv1"), 72);
    assert_eq!(params("shortcut2.conv1"), 36);
    assert_eq!(params("shortcut2.conv2"), 40);
}

/// The help of a residual, concat or crop mismatch names the fix that fits how it was
/// written: a condition that lets the shape change through, a change of rank, vectors, a
/// crop whose skip is the smaller tensor.
#[test]
fn mismatch_helps_fit_how_the_network_was_written() {
    let help = help_for;
    const RESIDUAL: &str = "cnnc::shape::residual_mismatch";
    // ResNet's shortcut condition missing the change of channels: widen it.
    let h = help(
        "block unit(c, stride=1) {\n    residual { conv(c, 3, stride=stride, pad=1) relu conv(c, 3, pad=1) }\n    shortcut if stride != 1 { conv(c, 1, stride=stride) }\n}\nmodel M(input: [64, 32, 32]) { unit(64) unit(128) }\n",
        RESIDUAL,
    );
    assert!(h.contains("`or in.c != c`"), "{h}");
    assert!(!h.contains("add a projection"), "{h}");
    // A shortcut of a named tensor has no conv of its own, whatever made the tensor.
    let h = help(
        "model M(input: [16, 8, 8]) { conv(32, 3, pad=1) as a conv(64, 3, pad=1)\n\
         residual { conv(64, 1) } shortcut { a } }\n",
        RESIDUAL,
    );
    assert!(h.contains("add a projection `conv(64, 1)`"), "{h}");
    assert!(!h.contains("make its conv"), "{h}");
    // MobileNetV2's `residual if` without the channel test: narrow it.
    let h = help(
        "block ir(out, stride=1) {\n    residual if stride == 1 {\n        conv(in.c * 6, 1) relu6\n        conv(in.c, 3, stride=stride, pad=1, groups=in.c) relu6\n        conv(out, 1)\n    }\n}\nmodel M(input: [16, 32, 32]) { ir(16) ir(24) }\n",
        RESIDUAL,
    );
    assert!(h.contains("`and in.c == out`"), "{h}");
    assert!(!h.contains("in.c` in `conv"), "{h}");
    // A body that flattens cannot have a shortcut; vectors are projected by a linear.
    let h = help(
        "model M(input: [16, 8, 8]) { residual { conv(16, 3, pad=1) global_avgpool flatten } }",
        RESIDUAL,
    );
    assert!(h.contains("another rank"), "{h}");
    let h = help(
        "model M(input: [64]) { residual { linear(32) relu } }",
        RESIDUAL,
    );
    assert!(h.contains("shortcut { linear(32) }"), "{h}");
    // A dilated conv keeps the size with pad = d·(k−1)/2: its label says so.
    let c = cnnc::compile_source(
        Path::new("m.cnn"),
        "model M(input: [16, 32, 32]) { residual { conv(16, 3, pad=1, dilation=2) relu } }".into(),
    );
    let d = c.diagnostics.iter().next().unwrap();
    assert_eq!(d.code, RESIDUAL);
    assert!(
        d.labels[0].text.ends_with("its 3×3 conv needs `pad=2`"),
        "{:?}",
        d.labels
    );
    assert!(
        d.help.as_ref().unwrap().contains("d·(k−1)/2"),
        "{:?}",
        d.help
    );
    // ResNet's block with its second conv unpadded: that conv, not the shortcut or its
    // condition, whichever the call; with a stride, the size the shortcut gives.
    let block = "block unit(c, stride=1) {\n    residual { conv(c, 3, stride=stride, pad=1) relu conv(c, 3) }\n    shortcut if stride != 1 or in.c != c { conv(c, 1, stride=stride) }\n}\n";
    for (call, body, target) in [
        ("unit(64)", "[64, 30, 30]", "identity's 32×32"),
        ("unit(128, stride=2)", "[128, 14, 14]", "shortcut's 16×16"),
    ] {
        let src = format!("{block}model M(input: [64, 32, 32]) {{ {call} }}\n");
        let c = cnnc::compile_source(Path::new("m.cnn"), src.clone());
        let d = c.diagnostics.iter().next().unwrap();
        assert_eq!(d.code, RESIDUAL, "{src}");
        assert_eq!(
            d.labels[0].text,
            format!("the body gives {body}: its 3×3 conv needs `pad=1`"),
            "{src}"
        );
        let h = d.help.clone().unwrap();
        assert!(
            h.starts_with(&format!("the body must give the {target}")),
            "{h}"
        );
        assert!(!h.contains("condition"), "{h}");
    }
    // The channels differing too: both fixes, the projection as of the padded body.
    let h = help(
        "model M(input: [32, 8, 8]) { residual { conv(64, 3) relu conv(64, 3, pad=1) } }",
        RESIDUAL,
    );
    assert!(
        h.ends_with("the channels differ too (64 and 32): add a projection shortcut: `residual { … } shortcut { conv(64, 1) }`"),
        "{h}"
    );
    // Two alike layers are said once; a stride the shortcut lacks is not a padding fault.
    let c = cnnc::compile_source(
        Path::new("m.cnn"),
        "model M(input: [16, 32, 32]) { residual { conv(16, 3) relu conv(16, 3) } }\n\
         model N(input: [16, 32, 32]) { residual { conv(16, 3, stride=2, pad=1) conv(16, 3) } }\n"
            .into(),
    );
    let labels: Vec<&str> = c
        .diagnostics
        .iter()
        .map(|d| d.labels[0].text.as_str())
        .collect();
    assert_eq!(
        labels,
        [
            "the body gives [16, 28, 28]: its two 3×3 convs need `pad=1`",
            "the body gives [16, 14, 14]"
        ]
    );
    // Concat branches of different ranks: flatten after the concat.
    let h = help(
        "model M(input: [16, 8, 8]) { concat { {} { global_avgpool flatten } } }",
        "cnnc::shape::concat_mismatch",
    );
    assert!(h.contains("same rank"), "{h}");
    // A crop whose skip is smaller in one axis only says which.
    let c = cnnc::compile_source(
        Path::new("m.cnn"),
        "model U(input: [3, 64, 32]) {\n    conv(16, 3, pad=1) as e1\n    conv(16, [5, 1], pad=[0, 2])\n    concat { crop(e1) {} }\n}\n".into(),
    );
    let d = c
        .diagnostics
        .iter()
        .find(|d| d.code == "cnnc::shape::crop_too_large")
        .expect("crop_too_large");
    assert!(d.message.ends_with("smaller in width"), "{}", d.message);
    assert_eq!(d.labels[0].text, "`e1` is [16, 64, 32]");
    // A skip made smaller than the up path by a ceil-mode pooling: that is the cause named
    // (75 → 38 → 76), not padding.
    let src = |ceil: &str| {
        format!(
            "model U(input: [3, 75, 75]) {{\n    conv(16, 3, pad=1) as e1\n    maxpool(2{ceil}) conv(32, 3, pad=1)\n    convT(16, 2, stride=2)\n    concat {{ crop(e1) {{}} }}\n}}\n"
        )
    };
    let h = help(&src(", ceil=true"), "cnnc::shape::crop_too_large");
    assert!(h.contains("drop `ceil=true`"), "{h}");
    let c = cnnc::compile_source(Path::new("m.cnn"), src(""));
    assert!(!c.diagnostics.has_errors(), "{:?}", c.diagnostics);
    // A ceil-mode pooling that rounded nothing (64 is even) is not blamed: the padding is.
    let h = help(
        "model U(input: [3, 64, 64]) {\n    conv(16, 3, pad=1) as e1\n    maxpool(2, ceil=true) conv(32, 3, pad=2)\n    convT(16, 2, stride=2)\n    concat { crop(e1) {} }\n}\n",
        "cnnc::shape::crop_too_large",
    );
    assert!(!h.contains("ceil") && h.contains("padding over"), "{h}");
    // Crop's direction is said, and how to cut the current tensor instead.
    assert!(
        h.contains("never the other way") && h.contains("name it (`as x`)"),
        "{h}"
    );
    // More upsampling than downsampling since the skip is named: that is the cause named,
    // with or without a ceil-mode pooling on the way, and the fix it gives checks clean.
    let src = |ceil: &str, up: u32| {
        format!(
            "model M(input: [4, 15, 15]) {{\n    conv(8, 3, pad=1) as a\n    maxpool(2{ceil})\n    upsample({up})\n    concat {{ {{}} crop(a) }}\n}}\n"
        )
    };
    for ceil in ["", ", ceil=true"] {
        let h = help(&src(ceil, 4), "cnnc::shape::crop_too_large");
        assert!(
            h.contains("downsample by 2 and upsample by 4: make them equal (upsample by 2 in all, or downsample by 4)")
                && !h.contains("ceil"),
            "{h}"
        );
    }
    let c = cnnc::compile_source(Path::new("m.cnn"), src("", 2));
    assert!(!c.diagnostics.has_errors(), "{:?}", c.diagnostics);
    // A pixel unshuffle downsamples and a pixel shuffle upsamples, by their factor.
    let src = |layers: &str| {
        format!(
            "model M(input: [4, 16, 16]) {{\n    conv(8, 3, pad=1) as a\n    {layers}\n    concat {{ {{}} crop(a) }}\n}}\n"
        )
    };
    let h = help(
        &src("pixel_unshuffle(2) upsample(4)"),
        "cnnc::shape::crop_too_large",
    );
    assert!(
        h.contains("downsample by 2 and upsample by 4: make them equal"),
        "{h}"
    );
    let h = help(
        &src("maxpool(2) conv(16, 1) pixel_shuffle(4)"),
        "cnnc::shape::crop_too_large",
    );
    assert!(
        h.contains("downsample by 2 and upsample by 4: make them equal"),
        "{h}"
    );
    let c = cnnc::compile_source(
        Path::new("m.cnn"),
        src("pixel_unshuffle(4) pixel_shuffle(4)"),
    );
    assert!(!c.diagnostics.has_errors(), "{:?}", c.diagnostics);
}

/// Helps audited from a PyTorch user's mistakes: a block's signature for an unknown or an
/// extra argument, the earlier PyTorch-order layer behind a later shape error, and a source
/// excerpt that never echoes a control character to the terminal.
#[test]
fn helps_point_at_the_real_mistake() {
    let diags = |src: &str| cnnc::compile_source(Path::new("h.cnn"), src.to_string());
    let help_of = help_for;
    let block = "block cbr(c, k=3) { conv(c, k, pad=k / 2) relu }\n";
    let h = help_of(
        &format!("{block}model M(input: [3, 32, 32]) {{ cbr(16, kernel=5) }}"),
        "cnnc::elab::unknown_argument",
    );
    assert!(h.contains("cbr(c, k=…)"), "{h}");
    let h = help_of(
        &format!("{block}model M(input: [3, 32, 32]) {{ cbr(16, 3, 2) }}"),
        "cnnc::elab::argument_count",
    );
    assert!(h.contains("cbr(c, k=…)"), "{h}");
    // LeNet written with PyTorch's `Conv2d(1, 6, 5)`: the second conv's error points back.
    let lenet =
        "model M(input: [1, 28, 28]) { conv(1, 6, 5) sigmoid avgpool(2, 2) conv(6, 16, 5) }";
    let h = help_of(lenet, "cnnc::shape::window_too_large");
    assert!(
        h.starts_with("a layer checked before this one reads as PyTorch's"),
        "{h}"
    );
    // A layer passed to a block as a value: a flag and `if` instead.
    let h = help_of(
        "block b(c, act=relu) { conv(c, 1) }\nmodel M(input: [3, 8, 8]) { b(4) flatten linear(2) }",
        "cnnc::elab::unknown_variable",
    );
    assert!(
        h.starts_with("`relu` is a layer") && h.contains("if use_relu"),
        "{h}"
    );
    // The shape error of the very layer written so says so of that layer.
    let h = help_of(
        "model M(input: [64, 56, 56]) { conv(64, 64, 3, 1, 1) }",
        "cnnc::shape::window_too_large",
    );
    assert!(
        h.starts_with("this layer reads as PyTorch's argument order"),
        "{h}"
    );
    // An error on a statement around the layer is not that layer's.
    let h = help_of(
        "model M(input: [1, 28, 28]) { residual { conv(1, 6, 5) } flatten linear(2) }",
        "cnnc::shape::residual_mismatch",
    );
    assert!(h.starts_with("a layer checked before this one"), "{h}");
    // An escape sequence in the source is shown as `?`.
    let c = diags("model M(input: [3, 8, 8]) {\n    conv(16, 3) \u{1b}[31m\n}\n");
    let text: String = c
        .diagnostics
        .iter()
        .map(|d| d.render(&c.sources, false))
        .collect();
    assert!(!text.contains('\u{1b}'), "{text}");
    assert!(text.contains("?[31m"), "{text}");
}

/// The second review's cases: an allow inside a repeat covers the calls in it only; the
/// PyTorch-order note follows a warning that is shown and came first; an empty residual body
/// with a projection of its own is x + f(x); a condition help only where a term is missing.
#[test]
fn review_cases_of_allows_notes_and_conditions() {
    let codes = |src: &str| -> Vec<&'static str> {
        let c = cnnc::compile_source(Path::new("r.cnn"), src.to_string());
        c.diagnostics.iter().map(|d| d.code).collect()
    };
    const EVEN: &str = "cnnc::shape::even_kernel_same";
    let block = "block b(c) {\n    conv(c, 4, pad=same)\n}\n";
    // The allow on the repeat line does not cover the call after the repeat.
    let after = format!(
        "{block}model M(input: [3, 32, 32]) {{\n    repeat 2 {{ b(8) }}  # cnnc: allow(even_kernel_same)\n    b(8)\n    global_avgpool flatten linear(10)\n}}\n"
    );
    let c = cnnc::compile_source(Path::new("r.cnn"), after.clone());
    let d: Vec<_> = c.diagnostics.iter().collect();
    assert_eq!(
        d.iter().map(|d| d.code).collect::<Vec<_>>(),
        [EVEN],
        "{after}"
    );
    let calls: Vec<_> = d[0].labels.iter().filter(|l| l.call).collect();
    assert_eq!(calls.len(), 1, "{:?}", d[0].labels);
    assert!(!d[0].labels.iter().any(|l| l.text.contains("iteration")));
    // With an allow at both, nothing is left.
    let both = after.replace("    b(8)\n", "    b(8)  # cnnc: allow(even_kernel_same)\n");
    assert_eq!(codes(&both), Vec::<&str>::new(), "{both}");

    // A silenced PyTorch-order warning is not pointed at.
    let help_of = help_for;
    let allowed = "model M(input: [1, 28, 28]) {\n    conv(1, 6, 5)   # cnnc: allow(pytorch_argument_order)\n    relu\n    conv(8, 3) : [8, 10, 10]\n    flatten linear(10)\n}\n";
    let h = help_of(allowed, "cnnc::shape::assertion_failed");
    assert!(!h.contains("PyTorch"), "{h}");
    // Nor is one found after the error (a block defined above, called below).
    let later = "block b() { conv(1, 6, 5) relu }\nmodel M(input: [1, 28, 28]) {\n    conv(1, 3) : [1, 28, 28]\n    b()\n    flatten linear(10)\n}\n";
    let h = help_of(later, "cnnc::shape::assertion_failed");
    assert!(!h.contains("PyTorch"), "{h}");

    // `residual { } shortcut { conv(…) }` is x + conv(x): no warning.
    let projected = "model M(input: [8, 32, 32]) {\n    residual { } shortcut { conv(8, 1) }\n    flatten linear(10)\n}\n";
    assert_eq!(codes(projected), Vec::<&str>::new());

    // `residual if stride == 1` called with stride 1, its conv unpadded: the padding is the
    // fault, not the condition.
    let unpadded = "block b(out, stride=1) {\n    residual if stride == 1 { conv(out, 3, stride=stride) relu }\n}\nmodel M(input: [8, 32, 32]) {\n    b(8)\n    global_avgpool flatten linear(10)\n}\n";
    let h = help_of(unpadded, "cnnc::shape::residual_mismatch");
    assert!(h.contains("the padding shown"), "{h}");
    assert!(!h.contains("to the condition"), "{h}");
}

/// The help of the first diagnostic of `code` that compiling `src` gives (empty without one).
fn help_for(src: &str, code: &str) -> String {
    let c = cnnc::compile_source(Path::new("h.cnn"), src.to_string());
    let d = c
        .diagnostics
        .iter()
        .find(|d| d.code == code)
        .unwrap_or_else(|| panic!("{src}: no {code} in {:?}", c.diagnostics));
    d.help.clone().unwrap_or_default()
}

/// The third review's cases: an allow on a repeat covers the calls in it whichever call
/// comes first; a `shortcut if` false where the shape changes says so; an empty body beside
/// an identity shortcut is x + x.
#[test]
fn third_review_cases() {
    let codes = |src: &str| -> Vec<&'static str> {
        let c = cnnc::compile_source(Path::new("t.cnn"), src.to_string());
        c.diagnostics.iter().map(|d| d.code).collect()
    };
    let src = "block b(c) {\n    conv(c, 4, pad=same)\n}\nmodel M(input: [3, 32, 32]) {\n    b(8)  # cnnc: allow(even_kernel_same)\n    repeat 2 {  # cnnc: allow(even_kernel_same)\n        b(8)\n    }\n    global_avgpool flatten linear(10)\n}\n";
    assert_eq!(codes(src), Vec::<&str>::new(), "{src}");
    let h = help_for(
        "block b(out, s=1) {\n    residual { conv(out, 3, stride=s, pad=1) }\n    shortcut if in.c != out { conv(out, 1, stride=s) }\n}\nmodel M(input: [8, 32, 32]) { b(8, s=2) flatten linear(2) }\n",
        "cnnc::shape::residual_mismatch",
    );
    assert!(h.contains("condition is false in this call"), "{h}");
    assert!(!h.contains("add a projection"), "{h}");
    let identity = "model M(input: [8, 16, 16]) {\n    residual { } shortcut if in.c != 8 { conv(8, 1) }\n    flatten linear(2)\n}\n";
    assert_eq!(codes(identity), ["cnnc::elab::empty_body"]);
}

/// `bare_branch` on one line: a layer or block call after an unbraced call is a branch of
/// its own, whatever the first one is; three or more such calls (`conv relu conv relu`) are
/// one warning for the line, whose help braces it whole (bracing each `relu` with the conv
/// before it would leave two branches where one was meant).
#[test]
fn bare_branches_on_one_line_are_warned_once_each() {
    let warnings = |body: &str| -> Vec<String> {
        let src = format!("model M(input: [4, 8, 8]) {{ concat {{ {body} }} }}\n");
        let c = cnnc::compile_source(std::path::Path::new("b.cnn"), src);
        c.diagnostics
            .iter()
            .filter(|d| d.code == "cnnc::elab::bare_branch")
            .map(|d| d.message.clone())
            .collect()
    };
    let w = warnings("relu conv(8, 1)");
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(
        w[0].starts_with("`relu` and `conv(8, 1)` on one line"),
        "{w:?}"
    );
    let w = warnings("conv(8, 1) relu conv(4, 1) relu");
    assert_eq!(w, ["these 4 calls on one line are 4 concat branches: each statement not in braces is a branch of its own"]);
    let src = "model M(input: [4, 8, 8]) { concat { conv(8, 1) relu conv(4, 1) relu } }\n";
    let c = cnnc::compile_source(std::path::Path::new("b.cnn"), src.to_string());
    let help = c.diagnostics.iter().next().unwrap().help.clone().unwrap();
    assert!(
        help.contains("`{ conv(8, 1) relu conv(4, 1) relu }`"),
        "{help}"
    );
    assert!(warnings("{ relu } conv(8, 1)").is_empty());
    // A named tensor then a layer: a shortcut's sequence, a concat's two branches.
    let named = |body: &str| -> Vec<String> {
        let src = format!(
            "model M(input: [4, 8, 8]) {{ conv(6, 1) as a conv(4, 1) concat {{ {body} }} }}\n"
        );
        let c = cnnc::compile_source(std::path::Path::new("b.cnn"), src);
        assert!(!c.diagnostics.has_errors(), "{body}: {:?}", c.diagnostics);
        c.diagnostics
            .iter()
            .filter(|d| d.code == "cnnc::elab::bare_branch")
            .map(|d| d.message.clone())
            .collect()
    };
    let w = named("{} a conv(8, 1)");
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(
        w[0].starts_with("`a` and `conv(8, 1)` on one line"),
        "{w:?}"
    );
    assert_eq!(named("a conv(8, 1)").len(), 1);
    assert!(named("{} { a conv(8, 1) }").is_empty());
    assert!(named("{} a\n conv(8, 1)").is_empty());
    // On lines of their own, a first branch of `relu` alone reads as meant.
    assert!(warnings("relu\n conv(8, 1)").is_empty());
}

/// Old Mac line ends (`\r` alone) end lines as `\n` does: a comment stops at its line's end,
/// and the message's line number is that of its excerpt.
#[test]
fn carriage_returns_alone_end_lines() {
    let src = "# a comment\rmodel M(input: [3, 8, 8]) {\r    conv(16, 3, pad=-1)\r}\r";
    let c = cnnc::compile_source(Path::new("cr.cnn"), src.to_string());
    let d: Vec<_> = c.diagnostics.iter().collect();
    assert_eq!(d.len(), 1, "{d:?}");
    assert_eq!(d[0].code, "cnnc::elab::argument_value");
    let text = d[0].render(&c.sources, false);
    assert!(text.contains("cr.cnn:3:21"), "{text}");
    assert!(text.contains(" 3 │     conv(16, 3, pad=-1)"), "{text}");
    assert!(!text.contains('\r'), "{text:?}");
}

/// A name used as what it is not is told what it is: a tensor passed as a number or to a
/// block, a block's parameter used as a tensor, a repeat's variable after its body, a
/// model called as a layer, the batch written in a shape assertion.
#[test]
fn names_used_as_what_they_are_not_are_told_what_they_are() {
    let cases: [(&str, &str, &[&str]); 18] = [
        // A parameter called with arguments, in a block no model calls: a layer passed.
        (
            "block stage(blk, n) { repeat n { blk(16) } }\nmodel M(input: [3, 8, 8]) { relu }",
            "cnnc::elab::unknown_layer",
            &["`blk` is a block's parameter", "if deep { bottleneck(c) }"],
        ),
        // In a block no model calls too (a parameter there may be a tensor).
        (
            "block f() { repeat i in 0..2 { conv(8, 1) concat { {} i } } }\n\
             model M(input: [3, 8, 8]) { relu }",
            "cnnc::elab::unknown_layer",
            &["`i` is a repeat's variable, a value"],
        ),
        (
            "model M(input: [3, 8, 8]) { conv(8, 1) as a if a > 2 { relu } flatten linear(2) }",
            "cnnc::elab::unknown_variable",
            &["`a` is a tensor, not a number"],
        ),
        (
            "block up(c, skip) { convT(c, 2, stride=2) concat { crop(skip) {} } }\n\
             model M(input: [3, 8, 8]) { conv(8, 1) as s up(8, 3) concat { s {} } }",
            "cnnc::elab::unknown_tensor",
            &["`skip` is a variable", "here the integer 3"],
        ),
        (
            "block f(x) { conv(x, 1) }\nmodel M(input: [3, 8, 8]) { conv(8, 1) as skip f(skip) }",
            "cnnc::elab::unknown_variable",
            &["`x` is a tensor, not a number", "its sizes are: `x.c`"],
        ),
        (
            "model M(input: [3, 8, 8]) { conv(8, 1) as a conv(a, 1) }",
            "cnnc::elab::unknown_variable",
            &["`a` is a tensor, not a number"],
        ),
        (
            "block f(x) { conv(8, 1) concat { {} x } }\nmodel M(input: [3, 8, 8]) { f(3) }",
            "cnnc::elab::unknown_layer",
            &[
                "`x` is a parameter of block `f`, here the integer 3",
                "pass that name (`f(…, e1)`)",
            ],
        ),
        (
            "model M(input: [3, 8, 8]) { repeat i in 0..2 { conv(8, 1) } conv(i + 1, 1) }",
            "cnnc::elab::unknown_variable",
            &["exists only inside that repeat's body"],
        ),
        (
            "model M(input: [3, 8, 8]) { conv(8, 1) output aux conv(4, 1) }",
            "cnnc::elab::unknown_layer",
            &[
                "named output `aux` without a body",
                "write `output aux { … }`",
            ],
        ),
        (
            "block b() { relu output aux }\nmodel M(input: [3, 8, 8]) { conv(8, 1) }",
            "cnnc::elab::unknown_layer",
            &["named output `aux` without a body"],
        ),
        (
            "model M(input: [3, 8, 8]) { conv(8, 1) output aux(10) conv(4, 1) }",
            "cnnc::elab::unknown_layer",
            &["named output `aux` without a body"],
        ),
        (
            "model M(input: [3, 8, 8]) { output aux { conv(8, 1) } }",
            "cnnc::elab::empty_model",
            &[
                "has no layers outside its named outputs",
                "write the main output's layers after the `output` statements",
            ],
        ),
        (
            "model M(input: [3, 8, 8]) { conv(2, 1) as a input }",
            "cnnc::elab::empty_model",
            &[
                "main output is its input: its last statement reads `input` again",
                "end the model with the layers that make it",
            ],
        ),
        (
            "model M(input: [4]) { linear(3) output aux { linear(2) } : [2] linear(2) }",
            "cnnc::shape::assertion_failed",
            &[
                "an assertion is of the tensor that goes on",
                "the output `aux` itself is [2]",
            ],
        ),
        (
            "model M(input: [1, 8, 8]) { conv(4, 3) output aux { flatten linear(3) } : [3] flatten linear(2) }",
            "cnnc::shape::assertion_failed",
            &["an assertion is of the tensor that goes on", "the output `aux` itself is [3]"],
        ),
        (
            "model M(input: [3, 8, 8]) { conv(8, 1) output }",
            "cnnc::elab::unknown_layer",
            &["unknown layer `output`", "`output NAME { body }`"],
        ),
        (
            "model A(input: [3, 8, 8]) { conv(8, 1) }\nmodel B(input: [3, 8, 8]) { A }",
            "cnnc::elab::unknown_layer",
            &["`A` is a model, and a model cannot be called"],
        ),
        (
            "model M(input: [3, 8, 8]) { conv(16, 3, pad=1) : [N, 16, 8, 8] }",
            "cnnc::elab::unknown_variable",
            &["the batch dimension is left out of shapes: write `: [16, 8, 8]`"],
        ),
    ];
    for (src, code, says) in cases {
        assert_one_error_saying(src, code, says);
    }
}

/// The one error `src` gives: of `code`, its message and help saying each of `says`.
fn assert_one_error_saying(src: &str, code: &str, says: &[&str]) -> String {
    let c = cnnc::compile_source(Path::new("k.cnn"), src.to_string());
    let d = c
        .diagnostics
        .iter()
        .find(|d| d.code == code)
        .unwrap_or_else(|| panic!("{src}: no {code} in {:?}", c.diagnostics));
    let text = format!("{} {}", d.message, d.help.clone().unwrap_or_default());
    for s in says {
        assert!(text.contains(s), "{src}: {s:?} not in {text:?}");
    }
    assert_eq!(c.diagnostics.error_count(), 1, "{src}: {:?}", c.diagnostics);
    text
}

/// As in Python, a negative index counts from the end of a list; past either end it is an
/// error naming both ranges.
#[test]
fn negative_indices_count_from_the_end() {
    let src = "block f(cs) { conv(cs[-1], 1) conv(cs[-2] + cs[0], 1) }\n\
               model M(input: [3, 8, 8]) { f([8, 16]) }\n";
    let c = cnnc::compile_source(Path::new("i.cnn"), src.to_string());
    assert!(c.diagnostics.is_empty(), "{:?}", c.diagnostics);
    assert_eq!(c.models[0].output_shape().0, vec![16, 8, 8]);
    let help = help_for(
        "model M(input: [3, 8, 8]) { conv([8, 16][-3], 1) }",
        "cnnc::elab::index_out_of_range",
    );
    assert_eq!(help, "valid indices are 0 to 1, or -2 to -1 from the end");
}

/// `single_branch` fires for a concat of one branch, except one that starts from a named
/// tensor (`dropped_tensor`'s and `crop_outside_concat`'s to report) or a repeat without
/// braces (a branch per iteration, however many the list gives).
#[test]
fn single_branch_is_warned_for_a_concat_that_joins_nothing() {
    for (body, warned) in [
        ("concat { {} }", true),
        ("concat { { conv(8, 1) relu } }", true),
        ("concat { { repeat 2 { conv(8, 1) } } }", true),
        // Without braces, a repeat is a branch per iteration.
        ("concat { repeat 2 { conv(8, 1) } }", false),
        ("concat { repeat k in [1] { conv(8, k) } }", false),
        ("concat { {} {} }", false),
        ("concat { {} { repeat 2 { conv(8, 1) } } }", false),
        ("conv(8, 1) as a relu concat { a }", false),
        ("conv(8, 1) as a relu concat { crop(a) }", false),
    ] {
        let src = format!("model M(input: [8, 8, 8]) {{ {body} flatten linear(2) }}\n");
        let c = cnnc::compile_source(Path::new("s.cnn"), src);
        let got = c
            .diagnostics
            .iter()
            .any(|d| d.code == "cnnc::elab::single_branch");
        assert_eq!(got, warned, "{body}: {:?}", c.diagnostics);
    }
}

/// An `if` written as a concat branch without braces is an optional branch: its taken arm
/// (an `else if` chain followed), or no branch when no condition holds; in braces, a false
/// condition is the identity branch. An `output` written as a branch is warned of.
#[test]
fn an_unbraced_if_in_a_concat_is_an_optional_branch() {
    for (k, channels) in [(0, 2 + 3), (1, 2 + 5 + 8), (2, 2 + 7 + 8), (3, 2 + 8)] {
        let src = format!(
            "block pick(k) {{ concat {{ {{ conv(2, 1) }} if k == 1 {{ conv(5, 1) }} else if \
             k == 2 {{ conv(7, 1) }} {{ if k == 0 {{ conv(3, 1) }} }} }} }}\n\
             model M(input: [8, 4, 4]) {{ pick({k}) }}\n"
        );
        let c = cnnc::compile_source(Path::new("s.cnn"), src);
        assert!(!c.diagnostics.has_errors(), "{k}: {:?}", c.diagnostics);
        assert_eq!(c.models[0].output_shape().0, vec![channels, 4, 4], "{k}");
    }
    // With an `else`, an arm is always taken.
    let src =
        "model M(input: [8, 4, 4]) { concat { {} if 1 > 2 { conv(5, 1) } else { conv(6, 1) } } }";
    let c = cnnc::compile_source(Path::new("s.cnn"), src.to_string());
    assert_eq!(c.models[0].output_shape().0, vec![8 + 6, 4, 4]);
    // Only branch, not taken: the concat joins nothing.
    let src = "model M(input: [8, 4, 4]) { concat { if 1 > 2 { conv(5, 1) } } }";
    let c = cnnc::compile_source(Path::new("s.cnn"), src.to_string());
    let codes: Vec<_> = c.diagnostics.iter().map(|d| d.code).collect();
    assert_eq!(codes, ["cnnc::elab::argument_count"]);
    // An output as a branch of its own.
    let src = "model M(input: [8, 4, 4]) { concat { { conv(8, 1) } output aux { global_avgpool \
               flatten } } flatten }";
    let c = cnnc::compile_source(Path::new("s.cnn"), src.to_string());
    let codes: Vec<_> = c.diagnostics.iter().map(|d| d.code).collect();
    assert_eq!(codes, ["cnnc::elab::output_as_branch"]);
    assert_eq!(c.models[0].output_shape().0, vec![(8 + 8) * 16]);
    let src = "model M(input: [8, 4, 4]) { concat { { conv(8, 1) output aux { global_avgpool \
               flatten } } {} } flatten }";
    let c = cnnc::compile_source(Path::new("s.cnn"), src.to_string());
    assert!(c.diagnostics.is_empty(), "{:?}", c.diagnostics);
}

/// Float arguments go into ONNX as float32: one it cannot hold (inf, or 0 for a positive
/// epsilon) is an error, not an exported inf.
#[test]
fn float_arguments_must_fit_in_float32() {
    let codes = |layer: &str| -> Vec<&'static str> {
        let src = format!("model M(input: [2, 8, 8]) {{ conv(2, 3) {layer} flatten linear(10) }}");
        let c = cnnc::compile_source(Path::new("f.cnn"), src);
        c.diagnostics.iter().map(|d| d.code).collect()
    };
    const VALUE: &str = "cnnc::elab::argument_value";
    for bad in [
        "leaky_relu(alpha=1e39)",
        "elu(alpha=-1e39)",
        "batchnorm(eps=1e39)",
        "batchnorm(eps=1e-50)",
    ] {
        assert_eq!(codes(bad), [VALUE], "{bad}");
    }
    for good in [
        "leaky_relu(alpha=3e38)",
        "batchnorm(eps=1e-44)",
        "elu(alpha=0)",
    ] {
        assert!(codes(good).is_empty(), "{good}: {:?}", codes(good));
    }
}

/// `pad=same` with a stride is refused; the help gives the padding of this kernel and
/// dilation, d·(k−1)/2 per axis.
#[test]
fn same_padding_with_a_stride_gets_this_kernels_padding() {
    for (layer, pad) in [
        ("conv(8, 3, stride=2, pad=same)", "`pad=1`"),
        ("conv(8, 3, stride=2, pad=same, dilation=2)", "`pad=2`"),
        ("conv(8, [1, 7], stride=2, pad=same)", "`pad=[0, 3]`"),
    ] {
        let h = help_for(
            &format!("model M(input: [3, 32, 32]) {{ {layer} }}"),
            "cnnc::elab::argument_value",
        );
        assert!(h.contains(pad), "{layer}: {h}");
    }
}

/// One mistake, one error: a block with a parameter written twice is not also called with
/// a missing argument, and a tensor name refused (a block's name) is not then reported as
/// a call of that block where it is read.
#[test]
fn refused_definitions_do_not_cascade() {
    let errors = |src: &str| -> Vec<&'static str> {
        let c = cnnc::compile_source(Path::new("c.cnn"), src.to_string());
        c.diagnostics
            .iter()
            .filter(|d| d.is_error())
            .map(|d| d.code)
            .collect()
    };
    const DUP: &str = "cnnc::elab::duplicate_definition";
    assert_eq!(
        errors("block s(c, c) { conv(c, 1) }\nmodel N(input: [3, 8, 8]) { s(4) }"),
        [DUP]
    );
    assert_eq!(
        errors(
            "block up(c) { convT(c, 2, stride=2) }\nmodel N(input: [3, 8, 8]) {\n    conv(8, 3, pad=1) as up\n    maxpool(2) up(8)\n    concat { up {} }\n}"
        ),
        [DUP]
    );
    // A call of the block written as one, with its argument missing, is still told.
    assert!(errors(
        "block up(c) { convT(c, 2, stride=2) }\nmodel N(input: [3, 8, 8]) { conv(8, 3) up() }"
    )
    .contains(&"cnnc::elab::argument_count"));
}

/// After a failed assertion, checking goes on from its written shape; once an assertion
/// holds again, a later failure is the model's own and gets the usual help.
#[test]
fn an_assertion_that_holds_ends_the_written_shapes_reign() {
    let src = "model m(input: [3, 32, 32]) {
    conv(16, 3, pad=1) : [8, 32, 32]
    conv(32, 3, pad=1) : [32, 32, 32]
    maxpool(2) flatten
    linear(10) : [12]
}";
    let c = cnnc::compile_source(Path::new("a.cnn"), src.into());
    let failed: Vec<_> = c
        .diagnostics
        .iter()
        .filter(|d| d.code == "cnnc::shape::assertion_failed")
        .collect();
    assert_eq!(failed.len(), 2, "{failed:?}");
    assert_eq!(
        failed[1].message,
        "shape assertion failed: expected [12], the layer gives [10]"
    );
    assert!(failed[1]
        .help
        .as_deref()
        .unwrap()
        .contains("write `: [10]`"));
}

/// A transposed conv a few pixels over a skip's size gets the padding that fits, and the
/// model with that padding checks clean (the help is the fix, not "upsample once too often").
#[test]
fn a_transposed_conv_over_the_skip_size_gets_its_padding() {
    let model = |convt: &str| {
        format!(
            "model M(input: [1, 64, 64]) {{\n conv(16, 3, pad=1) relu as e1\n maxpool(2)\n \
             conv(32, 3, pad=1) relu\n {convt}\n concat {{ {{}} e1 }}\n conv(2, 1)\n}}\n"
        )
    };
    for (kernel, fix) in [
        ("3, stride=2", "pad=1, output_pad=1"),
        ("4, stride=2", "pad=1"),
        ("5, stride=2", "pad=2, output_pad=1"),
        ("3, stride=2, output_pad=1", "pad=1, output_pad=1"),
        ("[3, 5], stride=2", "pad=[1, 2], output_pad=1"),
    ] {
        let c = cnnc::compile_source(Path::new("u.cnn"), model(&format!("convT(16, {kernel})")));
        let d = c
            .diagnostics
            .iter()
            .find(|d| d.code == "cnnc::shape::concat_mismatch")
            .unwrap_or_else(|| panic!("{kernel}: {:?}", c.diagnostics));
        let help = d.help.as_deref().unwrap();
        assert!(
            help.contains(&format!("write `{fix}` in it to give 64×64")),
            "{kernel}: {help}"
        );
        let kernel_only = kernel.split(", output_pad").next().unwrap();
        let fixed = cnnc::compile_source(
            Path::new("u.cnn"),
            model(&format!("convT(16, {kernel_only}, {fix})")),
        );
        assert!(
            !fixed.diagnostics.has_errors(),
            "{kernel} + {fix}: {:?}",
            fixed.diagnostics
        );
    }
}

/// `upsample` takes a scale or a size: both, or neither, is an error that shows each form.
#[test]
fn upsample_takes_a_scale_or_a_size() {
    for (layer, words) in [
        (
            "upsample(2, size=[16, 16])",
            "keep one: `upsample(2)` doubles",
        ),
        (
            "upsample(bilinear=true)",
            "`upsample(size=[h, w])` resamples to h × w",
        ),
    ] {
        let h = help_for(
            &format!("model M(input: [3, 8, 8]) {{ {layer} }}"),
            "cnnc::elab::argument_count",
        );
        assert!(h.contains(words), "{layer}: {h}");
    }
    let c = cnnc::compile_source(
        std::path::Path::new("m.cnn"),
        "model M(input: [3, 8, 8]) { upsample(size=[5, 16]) }".into(),
    );
    assert!(c.diagnostics.is_empty(), "{:?}", c.diagnostics);
    assert_eq!(c.models[0].output_shape().to_string(), "[3, 5, 16]");
}

/// A slip for the model's own block or tensor comes before what the name means elsewhere:
/// `upconv` is U-Net's usual block name, not only a transposed conv.
#[test]
fn a_slip_for_an_own_name_is_said_before_a_common_meaning() {
    let h = help_for(
        "block up_conv(c) { convT(c, 2, stride=2) }\nmodel M(input: [1, 8, 8]) { upconv(4) }",
        "cnnc::elab::unknown_layer",
    );
    assert_eq!(h, "did you mean `up_conv`?");
    let h = help_for(
        "model M(input: [1, 8, 8]) { upconv(4) }",
        "cnnc::elab::unknown_layer",
    );
    assert!(h.contains("`convT("), "{h}");
}

/// PyTorch layers and arguments cnnc does not have get what to write instead, not a near
/// name that means something else (`dropout2d` is not `dropout`, `padding_mode` not `pad`).
#[test]
fn what_cnnc_lacks_is_said_not_guessed() {
    for (layer, code, words) in [
        ("dropout2d(0.1)", "unknown_layer", "zeroes whole channels"),
        ("ZeroPad2d(1)", "unknown_layer", "cnnc's layer is `pad(p)`"),
        // Not `conv`, the nearest name.
        (
            "deconv(4, 2, stride=2)",
            "unknown_layer",
            "`convT(64, 2, stride=2)`",
        ),
        (
            "tconv(4, 2)",
            "unknown_layer",
            "the transposed convolution is `convT",
        ),
        (
            "conv_transpose(4, 2)",
            "unknown_layer",
            "the transposed convolution is `convT",
        ),
        (
            "deconv2d(4, 2)",
            "unknown_layer",
            "the transposed convolution is `convT",
        ),
        (
            "conv2d_transpose(4, 2)",
            "unknown_layer",
            "the transposed convolution is `convT",
        ),
        (
            "ReflectionPad2d(1)",
            "unknown_layer",
            "`pad(p, reflect=true)`",
        ),
        (
            "ModuleList",
            "unknown_layer",
            "a repeat written as a concat's branch",
        ),
        (
            "conv(8, 3, padding_mode=1)",
            "unknown_argument",
            "pad before the conv, `pad(1, reflect=true) conv(c, 3)`",
        ),
        (
            "avgpool(2, divisor_override=3)",
            "unknown_argument",
            "divides by the window's size",
        ),
        (
            "maxpool(2, dilation=2)",
            "unknown_argument",
            "has no dilation",
        ),
    ] {
        let h = help_for(
            &format!("model M(input: [3, 8, 8]) {{ {layer} }}"),
            &format!("cnnc::elab::{code}"),
        );
        assert!(
            h.contains(words) && !h.contains("did you mean"),
            "{layer}: {h}"
        );
    }
}

/// A name that is nothing here: two equally near names are both offered (`encl`: `enc1` or
/// `enc2`), and with none near, the named tensors are listed before the layers.
#[test]
fn unknown_names_offer_every_near_name_and_the_named_tensors() {
    let model = |use_: &str| {
        format!(
            "model M(input: [16, 8, 8]) {{ conv(16, 3, pad=1) as enc1 conv(16, 3, pad=1) as enc2\n\
             {use_} }}\n"
        )
    };
    let h = help_for(&model("concat { encl {} }"), "cnnc::elab::unknown_layer");
    assert_eq!(h, "did you mean `enc1` or `enc2`?");
    let h = help_for(
        &model("concat { crop(encl) {} }"),
        "cnnc::elab::unknown_tensor",
    );
    assert_eq!(h, "did you mean `enc1` or `enc2`?");
    let h = help_for(
        &model("residual { conv(16, 1) } shortcut { b }"),
        "cnnc::elab::unknown_layer",
    );
    assert!(
        h.starts_with("the tensors named here are: enc1, enc2; the layers are: conv,"),
        "{h}"
    );
    // One near name is offered alone, as before.
    let h = help_for(
        "model M(input: [16, 8, 8]) { conv(16, 1) as down conv(16, 1) as up concat { dwn {} } }",
        "cnnc::elab::unknown_layer",
    );
    assert_eq!(h, "did you mean `down`?");
}

/// The model's input is a named tensor of the model's body, `input`: read in a concat, a
/// shortcut or a crop; no tensor can take its name, and a block, which reads only the tensors
/// it names, is told so.
#[test]
fn the_model_input_is_the_tensor_named_input() {
    let c = cnnc::compile_source(
        Path::new("i.cnn"),
        "model M(input: [4, 8, 8]) { conv(4, 3) concat { crop(input) {} }\n\
         residual { conv(8, 1) } shortcut { crop(input) conv(8, 1) } }\n"
            .into(),
    );
    assert!(c.diagnostics.is_empty(), "{:?}", c.diagnostics);
    let g = &c.models[0].graph;
    let out = g.node(g.output).shape.as_ref().map(|s| s.to_string());
    assert_eq!(out.as_deref(), Some("[8, 6, 6]"));
    let m = |body: &str| format!("model M(input: [4, 8, 8]) {{ {body} }}\n");
    let h = help_for(
        &m("conv(4, 1) as input concat { input {} }"),
        "cnnc::elab::duplicate_definition",
    );
    assert_eq!(h, "pick another name for the tensor");
    let h = help_for(
        &format!(
            "block b() {{ conv(4, 1) concat {{ input {{}} }} }}\n{}",
            m("b()")
        ),
        "cnnc::elab::unknown_layer",
    );
    assert!(
        h.contains("pass the input to the block (`b(…, input)`)"),
        "{h}"
    );
}

/// `name.h` reads a named tensor's sizes as `in.h` reads the incoming one's: an FCN's
/// upsampling back to the input's size, a conv as wide as a skip. Reading a tensor's size
/// reads the tensor (no `unused_name`); unknown tensors and queries are errors naming what
/// exists.
#[test]
fn named_tensors_sizes_are_read_with_a_dot() {
    let c = cnnc::compile_source(
        Path::new("q.cnn"),
        "model FCN(input: [3, 50, 40]) {\n\
         conv(8, 3, pad=1) as feat\n\
         maxpool(2) conv(16, 3, pad=1) as mid\n\
         maxpool(2, ceil=true) conv(4, 1)\n\
         upsample(size=[input.h, input.w], bilinear=true) : [4, input.h, input.w]\n\
         concat { {} conv(feat.c + mid.rank, 1) }          : [15, 50, 40]\n\
         }\n"
        .into(),
    );
    assert!(c.diagnostics.is_empty(), "{:?}", c.diagnostics);
    let m = |body: &str| format!("model M(input: [3, 8, 8]) {{ conv(8, 3) as a\n{body} }}\n");
    let h = help_for(&m("conv(a.x, 1)"), "cnnc::elab::unknown_variable");
    assert!(h.contains("a.c, a.h, a.w for [C, H, W]"), "{h}");
    let h = help_for(&m("conv(b.h, 1)"), "cnnc::elab::unknown_tensor");
    assert_eq!(h, "the named tensors here are: a");
    let h = help_for(
        &m("conv(8, 1) as skip2 conv(8, 1) as skip3 conv(skip4.c, 1) concat { skip2 skip3 {} }"),
        "cnnc::elab::unknown_tensor",
    );
    assert_eq!(h, "did you mean `skip2` or `skip3`?");
    // A size read anywhere is a read: an assertion, a condition, a repeat's count, a
    // residual's condition, an assertion in a repeat (no `name_reused` either).
    let src = "model Q(input: [3, 32, 32]) {\n\
    conv(8, 3, pad=1) as e1\n\
    maxpool(2)                : [8, e1.h / 2, 16]\n\
}\n\
model R(input: [3, 32, 32]) {\n\
    conv(8, 3, pad=1) as e2\n\
    maxpool(2)\n\
    if e2.h > 10 { conv(4, 1) }\n\
}\n\
model S(input: [3, 32, 32]) {\n\
    conv(8, 3, pad=1) as e3\n\
    residual if e3.c == 8 { conv(8, 3, pad=1) }\n\
}\n\
model T(input: [3, 32, 32]) {\n\
    conv(8, 3, pad=1) as e4\n\
    repeat e4.c / 4 { conv(8, 3, pad=1) }\n\
}\n\
model M(input: [2, 32, 32]) {\n\
    repeat i in 0..3 {\n\
        conv(4 * (i + 1), 3, pad=1) as s\n\
        maxpool(2)   : [4 * (i + 1), s.h / 2, s.w / 2]\n\
    }\n\
}\n\
"
    .to_string();
    let c = cnnc::compile_source(Path::new("size_reads.cnn"), src);
    assert!(c.diagnostics.is_empty(), "{:?}", c.diagnostics);
    // A block reads only the sizes of the tensors it names.
    let h = help_for(
        &format!("block b() {{ conv(input.c, 1) }}\n{}", m("b()")),
        "cnnc::elab::unknown_tensor",
    );
    assert!(h.contains("pass it to the block as an argument"), "{h}");
}

/// Helps from a PyTorch user's review: `flatten(1)` is cnnc's `flatten`, a constant `scale`
/// is no gate, a 2-D input may be a `Conv1d`'s sequence, and a name is also read by a
/// shortcut or for its sizes.
#[test]
fn helps_for_pytorch_habits() {
    let m = |body: &str| format!("model M(input: [3, 8, 8]) {{ {body} }}\n");
    let h = help_for(&m("flatten(1) linear(10)"), "cnnc::elab::argument_count");
    assert!(
        h.contains("`nn.Flatten()`") && h.contains("write `flatten` alone"),
        "{h}"
    );
    let h = help_for(
        &m("conv(8, 3) LayerScale(0.17)"),
        "cnnc::elab::unknown_layer",
    );
    assert!(h.starts_with("a constant factor is `scale(k)`"), "{h}");
    let h = help_for(&m("conv(8, 3) scale"), "cnnc::elab::argument_count");
    assert_eq!(h, "the signature is scale(factor)");
    let h = help_for(&m("scale(1e39)"), "cnnc::elab::argument_value");
    assert_eq!(h, "the signature is scale(factor)");
    let c = cnnc::compile_source(Path::new("s.cnn"), m("scale(1e-50)"));
    let e = c.diagnostics.iter().find(|d| d.is_error()).unwrap();
    assert!(
        e.message.contains("from 1.4e-45 to 3.4e38"),
        "{}",
        e.message
    );
    // A floored division in an argument that takes a fraction is warned, with the exact
    // value; one that divides evenly, or in a count, is not.
    let c = cnnc::compile_source(
        Path::new("s.cnn"),
        "block b(n) { scale(2 * (1 / n)) dropout(n / 4) }\n\
         model M(input: [4, 8, 8]) { b(3) scale(6 / 3) conv(8 / 3, 1) scale(1.0 / 3) }\n"
            .into(),
    );
    let w: Vec<(&str, String)> = c
        .diagnostics
        .iter()
        .map(|d| (d.code, d.labels[0].text.clone()))
        .collect();
    assert_eq!(
        w,
        [
            ("cnnc::elab::integer_division", "0, not 0.3333…".to_string()),
            ("cnnc::elab::integer_division", "0, not 0.75".to_string()),
        ]
    );
    let h = help_for("model M(input: [3, 8]) { relu }\n", "cnnc::shape::rank");
    assert!(
        h.contains("`input: [3, 1, 8]`") && h.contains("`Conv1d`"),
        "{h}"
    );
    let h = help_for(&m("conv(8, 3) as a relu"), "cnnc::elab::unused_name");
    assert!(h.contains("`shortcut { a }`") && h.contains("`a.h`"), "{h}");
}

/// `pad`: its shapes, and its mistakes: `same`, both modes, reflection as deep as the size
/// or deeper (PyTorch refuses it), PyTorch's class names pointing at it.
#[test]
fn pad_layer_shapes_and_mistakes() {
    let c = cnnc::compile_source(
        Path::new("p.cnn"),
        "model P(input: [3, 8, 8]) {\n\
         pad(1) : [3, 10, 10]\n\
         pad([1, 2]) : [3, 12, 14]\n\
         pad([0, 1, 2, 3], reflect=true) : [3, 13, 19]\n\
         pad([12, 0, 0, 18], reflect=true) : [3, 25, 37]\n\
         pad(40, replicate=true) : [3, 105, 117]\n\
         }\n"
        .into(),
    );
    assert!(c.diagnostics.is_empty(), "{:?}", c.diagnostics);
    let m = |body: &str| format!("model P(input: [3, 8, 8]) {{ {body} }}\n");
    let c = cnnc::compile_source(Path::new("p.cnn"), m("pad(same)"));
    assert!(
        c.diagnostics
            .iter()
            .any(|d| d.code == "cnnc::elab::argument_value"
                && d.message
                    .contains("(< 2^32; `same` is a conv's or a pooling's padding")),
        "{:?}",
        c.diagnostics
    );
    let h = help_for(&m("pad(1, mode=1)"), "cnnc::elab::unknown_argument");
    assert!(h.contains("`reflect=true`"), "{h}");
    let h = help_for(
        &m("pad(1, reflect=true, replicate=true)"),
        "cnnc::elab::argument_value",
    );
    assert!(h.contains("`ReflectionPad2d`"), "{h}");
    let h = help_for(
        &m("pad([0, 8, 0, 0], reflect=true)"),
        "cnnc::shape::pad_too_large",
    );
    assert!(
        h.contains("below the size (8)") && h.contains("replicate=true"),
        "{h}"
    );
    let c = cnnc::compile_source(Path::new("p.cnn"), m("pad([0, 0, 7, 7], reflect=true)"));
    assert!(!c.diagnostics.has_errors(), "{:?}", c.diagnostics);
    let h = help_for(&m("ReplicationPad2d(2)"), "cnnc::elab::unknown_layer");
    assert!(
        h.contains("`pad(p, replicate=true)`") && h.contains("(left, right, top, bottom)"),
        "{h}"
    );
    let h = help_for(&m("ZeroPad"), "cnnc::elab::unknown_layer");
    assert!(h.starts_with("zero padding is `pad(p)`"), "{h}");
}

/// An Inception module whose branch lacks a conv's or a pooling's padding: the branch's
/// label names the layer and the padding that keeps the size (`[0, 3]` for a 1×7 conv).
#[test]
fn a_concat_branch_that_shrinks_names_the_padding_to_keep_its_size() {
    let src = "model I(input: [16, 28, 28]) {\n\
               concat {\n\
               { conv(8, 1) }\n\
               { conv(8, 1) conv(16, 3) }\n\
               { conv(4, 1) conv(8, [1, 7], pad=[0, 2]) }\n\
               { maxpool(3, stride=1) conv(8, 1) }\n\
               }\n}\n";
    let c = cnnc::compile_source(Path::new("inc.cnn"), src.into());
    let d = c
        .diagnostics
        .iter()
        .find(|d| d.code == "cnnc::shape::concat_mismatch")
        .expect("concat_mismatch");
    let labels: Vec<&str> = d.labels.iter().map(|l| l.text.as_str()).collect();
    assert_eq!(
        labels,
        [
            "this branch gives [8, 28, 28]",
            "this branch gives [16, 26, 26]: its 3×3 conv needs `pad=1`",
            "this branch gives [8, 28, 26]: its 1×7 conv needs `pad=[0, 3]`",
            "this branch gives [8, 26, 26]: its 3×3 maxpool needs `pad=1`",
        ]
    );
    assert!(
        d.help
            .as_deref()
            .unwrap()
            .contains("as an Inception module"),
        "{d:?}"
    );
}

/// Size reads of tensors that are not there say why, as other reads do: named later, a
/// caller's tensor read in a block, the model's `input` in a block (also cropped), and a
/// block's parameter that happens to be called `input`.
#[test]
fn size_reads_of_missing_tensors_say_why() {
    let first_error = |src: &str| -> (String, String) {
        let c = cnnc::compile_source(Path::new("u.cnn"), src.to_string());
        let d = c
            .diagnostics
            .iter()
            .find(|d| d.is_error())
            .unwrap_or_else(|| panic!("{src}: no error"));
        (d.message.clone(), d.help.clone().unwrap_or_default())
    };
    let (m, _) = first_error(
        "model A(input: [3, 32, 32]) { repeat 3 { conv(s.c, 3, pad=1) maxpool(2) as s } }",
    );
    assert_eq!(m, "`s` is used before the statement that names it");
    let (m, _) = first_error(
        "block up() { upsample(size=[e1.h, e1.w]) }\n\
         model B(input: [3, 32, 32]) { conv(8, 3, pad=1) as e1 maxpool(2) up() concat { {} e1 } }",
    );
    assert_eq!(m, "`e1` is a tensor of model `B`, not of block `up`");
    let (_, h) =
        first_error("block e() { concat { crop(input) {} } }\nmodel D(input: [3, 32, 32]) { e() }");
    assert!(h.starts_with("`input` is the model's input"), "{h}");
    let (_, h) =
        first_error("block d(input) { conv(input.c, 1) }\nmodel C(input: [3, 32, 32]) { d(4) }");
    assert!(h.starts_with("`input` is a variable"), "{h}");
}

/// The graph without its names: each node's op, its inputs by position in creation order,
/// and its shape. Two texts that build the same network give the same lines.
fn structure(m: &cnnc::ir::Graph) -> Vec<String> {
    let order = m.topo_order();
    let position = |n| order.iter().position(|&o| o == n).unwrap();
    order
        .iter()
        .map(|&n| {
            let inputs: Vec<usize> = m.inputs(n).into_iter().map(position).collect();
            let node = m.node(n);
            format!(
                "{} <- {inputs:?} : {:?}",
                cnnc::ir::print::op_text(&node.op),
                node.shape
            )
        })
        .collect()
}

/// A tensor is passed to a block by its name (`up(256, x4)`), and the block reads it by the
/// parameter's name wherever a named tensor is read: in a concat, a crop, a shortcut, for
/// its sizes (also in a later parameter's default), and on through another block. The
/// network is the one written out by hand.
#[test]
fn tensors_are_passed_to_blocks_by_name() {
    let with_blocks = "\
block pair(c) { conv(c, 3, pad=1) relu }
block up(c, skip) { upsample(2) concat { crop(skip) {} } pair(c) }
block fuse(skip, c=skip.c) { conv(c, 1) upsample(size=[skip.h, skip.w]) residual { pair(c) } shortcut { skip } }
block through(c, t) { up(c, t) }
model M(input: [3, 32, 32]) {
    pair(8) as e1
    maxpool(2) pair(16) as e2
    maxpool(2) pair(32)
    through(16, e2)
    up(skip=e1, c=8)
    fuse(input)
}
";
    let by_hand = "\
model M(input: [3, 32, 32]) {
    conv(8, 3, pad=1) relu as e1
    maxpool(2) conv(16, 3, pad=1) relu as e2
    maxpool(2) conv(32, 3, pad=1) relu
    upsample(2) concat { crop(e2) {} } conv(16, 3, pad=1) relu
    upsample(2) concat { crop(e1) {} } conv(8, 3, pad=1) relu
    conv(3, 1) upsample(size=[32, 32]) residual { conv(3, 3, pad=1) relu } shortcut { input }
}
";
    let compile = |src: &str| {
        let c = cnnc::compile_source(Path::new("t.cnn"), src.to_string());
        assert!(c.diagnostics.is_empty(), "{src}{:?}", c.diagnostics);
        c
    };
    let (a, b) = (compile(with_blocks), compile(by_hand));
    assert_eq!(structure(&a.models[0].graph), structure(&b.models[0].graph));
    assert_eq!(a.models[0].output_shape().0, vec![3, 32, 32]);
    // The block's layers are named in its scope; the tensor passed is the caller's node.
    let g = &a.models[0].graph;
    let concat = g
        .topo_order()
        .into_iter()
        .find(|&n| g.node(n).name == "through1.up1.concat1")
        .expect("the concat of the nested call");
    let crop = g.inputs(concat)[0];
    assert_eq!(g.node(g.inputs(crop)[0]).name, "pair2.relu1");
}

/// What goes wrong passing tensors is said at the call: a tensor the block never reads (a
/// skip connection lost, unless the parameter starts with `_`), a name that is neither a
/// variable nor a tensor, one named later, a number where the block reads a tensor, and a
/// tensor where it computes with a number.
#[test]
fn tensor_arguments_are_checked_at_the_call() {
    let blocks = "block up(c, skip) { upsample(2) conv(c, 3, pad=1) }\n\
                  block keep(c, _skip) { conv(c, 1) }\n\
                  block cat(skip) { concat { skip {} } }\n\
                  block width(c) { conv(c, 1) }\n";
    let check = |body: &str| {
        let src = format!("{blocks}model M(input: [3, 16, 16]) {{ conv(8, 1) as enc1 {body} }}");
        cnnc::compile_source(Path::new("t.cnn"), src).diagnostics
    };
    let d = check("up(8, enc1)");
    let w: Vec<_> = d
        .iter()
        .filter(|d| d.code == "cnnc::elab::unused_name")
        .collect();
    assert_eq!(w.len(), 1, "{d:?}");
    assert_eq!(
        w[0].message,
        "block `up` never reads the tensor passed as `skip`"
    );
    assert_eq!(d.error_count(), 0, "{d:?}");
    // The caller's `enc1` was read (passed), so it is not an unused name of the model.
    assert!(check("keep(8, enc1)").is_empty());
    let first_error = |body: &str| {
        let d = check(body);
        let e = d.iter().find(|d| d.is_error()).cloned();
        e.unwrap_or_else(|| panic!("{body}: no error in {d:?}"))
    };
    let e = first_error("cat(enc2)");
    assert_eq!(e.message, "no tensor or variable is named `enc2`");
    assert_eq!(e.help.as_deref(), Some("did you mean `enc1`?"));
    // A block or model passed as if it were a value: what to do instead.
    let e = first_error("cat(width)");
    assert_eq!(e.code, "cnnc::elab::unknown_variable");
    assert!(e
        .help
        .unwrap()
        .starts_with("`width` is a block, and a block is no value"));
    let e = first_error("up(8, skip=M)");
    assert!(e
        .help
        .unwrap()
        .starts_with("`M` is a model, and a model is no value"));
    // Called as a function (PyTorch's `Stage(BasicBlock(16))`), or as a parameter's
    // default, the same; a layer with required arguments is shown called with them.
    let e = first_error("width(width(8))");
    assert_eq!(e.code, "cnnc::elab::unknown_function");
    assert_eq!(e.labels[0].text, "a block, not a value");
    assert!(e.help.unwrap().starts_with("`width` is a block"));
    let src = "block w(c) { conv(c, 1) }\nblock s(n, blk=w) { conv(n, 1) }\n\
               model M(input: [3, 8, 8]) { s(4) }\n";
    let d = cnnc::compile_source(Path::new("t.cnn"), src.into()).diagnostics;
    let e = d.iter().find(|d| d.is_error()).unwrap();
    assert!(
        e.help.as_deref().unwrap().starts_with("`w` is a block"),
        "{e:?}"
    );
    let e = first_error("width(pixel_shuffle)");
    assert_eq!(e.labels[0].text, "a layer, not a value");
    assert!(e
        .help
        .unwrap()
        .contains("if use_pixel_shuffle { pixel_shuffle(…) }"));
    let e = first_error("width(relu(2))");
    assert!(e.help.unwrap().contains("if use_relu { relu }"));
    let e = first_error("cat(later) conv(8, 1) as later");
    assert_eq!(
        e.message,
        "`later` is used before the statement that names it"
    );
    let e = first_error("cat(3)");
    assert!(e
        .message
        .starts_with("`skip` is a parameter of block `cat`, here the integer 3"));
    assert!(e.help.unwrap().contains("pass that name (`cat(…, e1)`)"));
    let e = first_error("width(enc1)");
    assert_eq!(e.message, "`c` is a tensor, not a number");
    assert!(e.help.unwrap().contains("`c.c`"));
    // An error in the body is not also a tensor never read.
    let d = check("up(enc1, enc1)");
    assert!(
        d.iter().all(|d| d.code != "cnnc::elab::unused_name"),
        "{d:?}"
    );
    // Called twice, the block's unread parameter is one warning.
    let d = check("up(8, enc1) up(8, enc1)");
    assert_eq!(d.iter().count(), 1, "{d:?}");
}

/// The reviewer's cases: a tensor given to a parameter named like a layer (which the body
/// would read as the layer), a loop variable named like a tensor parameter, a default that
/// reads a tensor's size (a read) or is a tensor (`b=a`), its errors labelled with the
/// call, and blocks passed tensors side by side in a concat (no `bare_branch`).
#[test]
fn tensor_parameters_keep_their_tensor() {
    let check = |blocks: &str, body: &str| {
        let src = format!("{blocks}\nmodel M(input: [4, 8, 8]) {{ conv(4, 1) as e1 {body} }}");
        cnnc::compile_source(Path::new("t.cnn"), src).diagnostics
    };
    let d = check("block f(relu) { concat { relu {} } }", "conv(4, 1) f(e1)");
    assert_eq!(d.error_count(), 1, "{d:?}");
    let e = d.iter().find(|d| d.is_error()).unwrap();
    assert_eq!(
        e.message,
        "block `f`'s parameter `relu` is given a tensor, but `relu` names a layer"
    );
    let d = check(
        "block g(skip) { repeat skip in [5, 6] { concat { skip {} } conv(skip, 1) } }",
        "g(e1)",
    );
    let e = d.iter().find(|d| d.is_error()).expect("an error");
    assert_eq!(
        e.message,
        "the loop variable `skip` has the name of a tensor"
    );
    let d = check(
        "block h(skip, c=skip.c) { conv(c, 1) }\nblock k(a, b=a, c=b.c) { concat { b {} } conv(c, 1) }",
        "h(e1) k(e1) : [4, 8, 8]",
    );
    assert!(d.is_empty(), "{d:?}");
    let d = check("block h(skip, c=skip.c) { conv(c, 1) }", "h(e1) h(e1.c)");
    let e = d.iter().find(|d| d.is_error()).expect("an error");
    assert_eq!(e.message, "no tensor is named `skip`");
    assert!(e.labels.iter().any(|l| l.call), "{e:?}");
    // The same mistake of a default at each call is reported once, as the body's are.
    let d = check(
        "block h(skip, c=skip.q) { conv(c, 1) }",
        "h(e1) h(e1) h(e1)",
    );
    assert_eq!(d.error_count(), 1, "{d:?}");
    let d = check(
        "block head(p, s) { concat { p {} } conv(s, 1) }",
        "concat { head(e1, 8) head(e1, 4) }",
    );
    assert!(d.is_empty(), "{d:?}");
}

/// Group and instance norm say what is wrong with the tensor they get: groups that do not
/// divide the channels (with the ones that do), groups of a single value (always 0), a
/// vector to instance norm; PyTorch's names and argument habits point at them.
#[test]
fn group_and_instance_norm_are_checked() {
    let first = |body: &str| {
        let src = format!("model M(input: [12, 4, 4]) {{ {body} }}");
        let c = cnnc::compile_source(Path::new("n.cnn"), src);
        let d = c.diagnostics.iter().find(|d| d.is_error()).cloned();
        d.unwrap_or_else(|| panic!("{body}: no error in {:?}", c.diagnostics))
    };
    let e = first("groupnorm(5)");
    assert_eq!(e.code, "cnnc::shape::groups");
    assert_eq!(
        e.message,
        "`groupnorm(5)`: 5 groups do not divide the 12 channels"
    );
    assert!(e.help.unwrap().ends_with("1, 2, 3, 4, 6 and 12"));
    let e = first("global_avgpool instancenorm");
    assert_eq!(e.code, "cnnc::shape::norm_single_value");
    assert_eq!(
        e.message,
        "`instancenorm` of [12, 1, 1]: each channel is a single value, which normalizes to 0"
    );
    let e = first("global_avgpool flatten groupnorm(12)");
    assert_eq!(e.code, "cnnc::shape::norm_single_value");
    let e = first("flatten instancenorm");
    assert_eq!(e.code, "cnnc::shape::rank");
    // Checking goes on after either, with the shape kept.
    let src = "model M(input: [12, 4, 4]) { groupnorm(5) conv(8, 3) : [8, 2, 2] conv(8, 5) }";
    let c = cnnc::compile_source(Path::new("n.cnn"), src.to_string());
    let codes: Vec<&str> = c.diagnostics.iter().map(|d| d.code).collect();
    assert_eq!(
        codes,
        ["cnnc::shape::groups", "cnnc::shape::window_too_large"]
    );
    let e = first("GroupNorm(4, 12)");
    assert!(e
        .help
        .unwrap()
        .contains("`GroupNorm(32, 256)` is `groupnorm(32)`"));
    let e = first("prelu(12)");
    assert!(e.help.unwrap().contains("`prelu(per_channel=true)`"));
    let e = first("PReLU(12)");
    assert!(e.help.unwrap().contains("`prelu(per_channel=true)`"));
    let e = first("InstanceNorm2d(12)");
    assert!(e.help.unwrap().contains("unless `affine=true`"));
    // PyTorch's channel count is no eps.
    let e = first("instancenorm(12)");
    assert_eq!(e.code, "cnnc::elab::argument_count");
    let e = first("groupnorm(4, 12)");
    assert_eq!(
        e.message,
        "`groupnorm` takes one positional argument, the number of groups"
    );
    // Both fine, with and without their parameters.
    let src = "model M(input: [12, 4, 4]) { groupnorm(3) instancenorm instancenorm(affine=true) \
               groupnorm(4, eps=0.001, affine=false) batchnorm(affine=false) flatten linear(6) \
               groupnorm(2) batchnorm batchnorm(affine=false) }";
    let c = cnnc::compile_source(Path::new("n.cnn"), src.to_string());
    assert!(c.diagnostics.is_empty(), "{:?}", c.diagnostics);
    let params: u64 = c.models[0]
        .graph
        .topo_order()
        .into_iter()
        .map(|n| c.models[0].graph.node(n).params)
        .sum();
    // groupnorm 2·12, instancenorm 0, affine instancenorm 2·12, groupnorm without affine 0,
    // batchnorm without affine 0, linear 192·6 + 6, groupnorm and batchnorm on the vector
    // 2·6 each (the batch norm's running statistics are no parameters), batchnorm without
    // affine 0.
    assert_eq!(params, 24 + 24 + 192 * 6 + 6 + 12 + 12);
}

/// `pixel_shuffle(r)` needs channels in multiples of r², `pixel_unshuffle(r)` sizes in
/// multiples of r; the help lists the factors that would fit, and checking goes on.
#[test]
fn pixel_shuffle_is_checked() {
    let compile = |input: &str, body: &str| {
        let src = format!("model M(input: {input}) {{ {body} }}");
        cnnc::compile_source(Path::new("p.cnn"), src)
    };
    let first = |input: &str, body: &str| {
        let c = compile(input, body);
        let d = c.diagnostics.iter().find(|d| d.is_error()).cloned();
        d.unwrap_or_else(|| panic!("{body}: no error in {:?}", c.diagnostics))
    };
    let e = first("[12, 4, 4]", "pixel_shuffle(3)");
    assert_eq!(e.code, "cnnc::shape::pixel_shuffle");
    assert_eq!(
        e.message,
        "`pixel_shuffle(3)` needs channels in multiples of 3² = 9, but its input has 12"
    );
    assert!(e
        .help
        .unwrap()
        .ends_with("a factor whose square divides 12: 2"));
    let e = first("[7, 4, 4]", "pixel_shuffle(2)");
    assert!(e
        .help
        .unwrap()
        .ends_with("for c channels after the shuffle"));
    let e = first("[3, 12, 8]", "pixel_unshuffle(3)");
    assert_eq!(
        e.message,
        "`pixel_unshuffle(3)` needs a height and width divisible by 3, but its input is 12×8"
    );
    assert!(e
        .help
        .unwrap()
        .ends_with("a factor that divides both: 2, 4"));
    let e = first("[4, 4, 4]", "flatten pixel_shuffle(2)");
    assert_eq!(e.code, "cnnc::shape::rank");
    // Checking goes on with the height and width the factor gives.
    let c = compile("[6, 5, 5]", "pixel_shuffle(2) : [1, 10, 10] conv(4, 11)");
    let codes: Vec<&str> = c.diagnostics.iter().map(|d| d.code).collect();
    assert_eq!(
        codes,
        [
            "cnnc::shape::pixel_shuffle",
            "cnnc::shape::window_too_large"
        ]
    );
    // Each is the other's inverse, and neither has parameters.
    let c = compile(
        "[8, 6, 4]",
        "pixel_shuffle(2) : [2, 12, 8] pixel_unshuffle(4) : [32, 3, 2] pixel_unshuffle(1)",
    );
    assert!(c.diagnostics.is_empty(), "{:?}", c.diagnostics);
    let g = &c.models[0].graph;
    let params: u64 = g.topo_order().into_iter().map(|n| g.node(n).params).sum();
    assert_eq!(params, 0);
    // PyTorch's argument names.
    let c = compile("[8, 6, 4]", "pixel_shuffle(upscale_factor=2)");
    let e = c.diagnostics.iter().find(|d| d.is_error()).unwrap();
    assert!(
        e.help.as_deref().unwrap_or("").contains("`factor`"),
        "{e:?}"
    );
}

/// `pad=same` on a pooling: the help gives the padding for this window and stride (it gave
/// a 3×3 window's `pad=1` whatever the pooling).
#[test]
fn pooling_pad_same_gets_this_windows_padding() {
    let help = |layer: &str| {
        help_for(
            &format!("model M(input: [3, 8, 8]) {{ {layer} }}\n"),
            "cnnc::elab::argument_value",
        )
    };
    assert!(help("maxpool(5, stride=1, pad=same)")
        .contains("`pad=2` keeps the size with this 5×5 window"));
    assert!(help("avgpool([3, 1], stride=1, pad=same)").contains("`pad=[1, 0]`"));
    // An even window: the odd row and column at the end, as Keras pads; an average pooling
    // leaves the padding out of the divisor, as Keras's does.
    let even = help("avgpool(2, stride=1, pad=same)");
    assert!(
        even.contains("`pad=[0, 1, 0, 1]` keeps the size with this 2×2 window")
            && even.contains("add `count_include_pad=false`"),
        "{even}"
    );
    assert!(help("maxpool([4, 3], stride=1, pad=same)").contains("`pad=[1, 2, 1, 1]`"));
    assert!(!help("maxpool(3, stride=1, pad=same)").contains("count_include_pad"));
    // What the helps write keeps the size.
    let c = cnnc::compile_source(
        Path::new("p.cnn"),
        "model P(input: [3, 8, 7]) {\n\
         avgpool(2, stride=1, pad=[0, 1, 0, 1], count_include_pad=false) : [3, 8, 7]\n\
         maxpool([4, 3], stride=1, pad=[1, 2, 1, 1]) : [3, 8, 7]\n\
         }\n"
        .into(),
    );
    assert!(c.diagnostics.is_empty(), "{:?}", c.diagnostics);
    let strided = help("maxpool(2, pad=same)");
    assert!(
        strided.contains("with stride 2 the size shrinks") && strided.contains("ceil=true"),
        "{strided}"
    );
    assert!(help("maxpool(2, stride=1, pad=same)")
        .contains("an even window is padded one more at the bottom and right"));
}

/// A shortcut whose conv strides where the body keeps the size: the help says to remove
/// that stride (it said only "make it give 32×32").
#[test]
fn a_strided_shortcut_beside_a_size_keeping_body_is_told_to_drop_its_stride() {
    let help = help_for(
        "model M(input: [32, 32, 32]) {\n    residual { conv(64, 3, pad=1) relu conv(64, 3, pad=1) }\n    shortcut { conv(64, 1, stride=2) }\n}\n",
        "cnnc::shape::residual_mismatch",
    );
    assert!(
        help.contains("remove the stride of the shortcut's conv"),
        "{help}"
    );
    // The other way round, the body's stride is what the shortcut's conv needs.
    let help = help_for(
        "model M(input: [32, 32, 32]) {\n    residual { conv(64, 3, stride=2, pad=1) }\n    shortcut { conv(64, 1) }\n}\n",
        "cnnc::shape::residual_mismatch",
    );
    assert!(help.contains("`stride=2`"), "{help}");
}

/// Keras's layer names, PyTorch's arguments that cnnc has no use for, misspelt PyTorch
/// argument names and misspelt used files get a help that says what to write; what the
/// Keras helps write compiles to the shapes Keras gives.
#[test]
fn helps_for_keras_habits_and_misspellings() {
    let m = |body: &str| format!("model M(input: [3, 8, 8]) {{ {body} }}\n");
    let arg = "cnnc::elab::unknown_argument";
    let h = help_for(&m("conv(6, 5, paddng=2)"), arg);
    assert!(h.starts_with("did you mean `pad`?"), "{h}");
    let h = help_for(&m("maxpool(2, kernal_size=2)"), arg);
    assert!(h.starts_with("did you mean `kernel`?"), "{h}");
    let h = help_for(&m("relu(inplace=true)"), arg);
    assert!(h.contains("remove `inplace`"), "{h}");
    // Keras's arguments of every layer: what cnnc does instead.
    for (call, words) in [
        (
            "conv(8, 3, kernel_initializer=he_normal)",
            "`--init kaiming`",
        ),
        (
            "linear(8, kernel_initializer=glorot_uniform)",
            "`--init xavier`",
        ),
        (
            "conv(8, 3, kernel_regularizer=l2)",
            "`cnnc train --weight-decay W`",
        ),
        (
            "conv(8, 3, input_shape=[28, 28, 1])",
            "`model M(input: [1, 28, 28]) { … }`",
        ),
        (
            "conv(8, 3, data_format=channels_last)",
            "always channels first",
        ),
        ("conv(8, 3, name=conv1)", "cnnc names each layer itself"),
    ] {
        let h = help_for(&m(call), arg);
        assert!(h.contains(words), "{call}: {h}");
    }
    // The activation by position, Keras's `Dense(10, 'relu')`; Keras's nested pad pairs.
    let h = help_for(
        &m("flatten linear(10, relu)"),
        "cnnc::elab::unknown_variable",
    );
    assert!(h.contains("`linear(…) relu`"), "{h}");
    let h = help_for(&m("pad([[0, 1], [2, 3]])"), "cnnc::elab::argument_type");
    assert!(h.contains("`pad=[0, 1, 2, 3]`"), "{h}");
    let h = help_for(&m("conv(8, 3, return_x)"), "cnnc::elab::unknown_variable");
    assert!(!h.contains("a layer of its own"), "{h}");
    let h = help_for(&m("conv(8, 3) return"), "cnnc::elab::unknown_layer");
    assert!(h.contains("delete the `return`"), "{h}");
    let h = help_for(&m("relu(max_value=6)"), arg);
    assert!(h.contains("is cnnc's `relu6`"), "{h}");
    // The slope the help gives is one `leaky_relu` takes.
    let c = cnnc::compile_source(
        std::path::Path::new("m.cnn"),
        m("leaky_relu(0.3) leaky_relu(0.2)"),
    );
    assert!(c.diagnostics.is_empty(), "{:?}", c.diagnostics);
    for (call, name) in [
        ("batchnorm(num_features=3)", "num_features"),
        ("groupnorm(1, num_channels=3)", "num_channels"),
    ] {
        let h = help_for(&m(call), arg);
        assert_eq!(
            h,
            format!("cnnc infers `{name}` from the incoming tensor; remove it")
        );
    }
    let layer = "cnnc::elab::unknown_layer";
    for (keras, writes) in [
        ("Dense(10)", "`linear(120) relu`"),
        ("Conv2D(8, 3)", "`conv(32, 3, pad=same) relu`"),
        ("GlobalAveragePooling2D", "`global_avgpool flatten`"),
        ("GlobalMaxPooling2D", "`global_maxpool flatten`"),
        (
            "AveragePooling2D(3)",
            "`avgpool(3, stride=1, pad=1, count_include_pad=false)`",
        ),
        ("Cropping2D(2)", "`crop(NAME)`"),
        ("Input([28, 28, 1])", "`model M(input: [1, 28, 28]) { … }`"),
        ("InputLayer", "`input`, in lower case"),
        ("Rescaling(1)", "`scale(1.0 / 255)`"),
        ("Normalization", "`normalize(mean, std)`"),
        ("BatchNormalization", "`momentum=0.01`"),
        ("Activation(1)", "`relu`"),
        ("SeparableConv2D(64, 3)", "conv(64, 1)`"),
    ] {
        let h = help_for(&m(keras), layer);
        assert!(
            h.contains("is Keras's name; cnnc writes") && h.contains(writes),
            "{keras}: {h}"
        );
    }
    // Keras's capped ReLU and its LeakyReLU's own default slope.
    for (keras, writes) in [
        ("ReLU(6.0)", "is cnnc's `relu6`"),
        ("ReLU(max_value=6)", "is cnnc's `relu6`"),
        (
            "LeakyReLU()",
            "Keras's `LeakyReLU()`, whose default is 0.3, `leaky_relu(0.3)`",
        ),
    ] {
        let h = help_for(&m(keras), layer);
        assert!(h.contains(writes), "{keras}: {h}");
    }
    let h = help_for(&m("Flatten"), layer);
    assert_eq!(
        h,
        "`Flatten` is PyTorch's and Keras's name; cnnc's layer is `flatten`"
    );
    let h = help_for(&m("MaxPool2d(2)"), layer);
    assert!(h.starts_with("`MaxPool2d` is PyTorch's name;"), "{h}");
    let h = help_for(&m("AdaptiveMaxPool2d(1)"), layer);
    assert!(
        h.contains("cnnc's layer is `adaptive_maxpool(output)`"),
        "{h}"
    );
    for (name, writes) in [
        ("GlobalMaxPool", "`global_maxpool`"),
        ("adaptiveMaxPool", "`adaptive_maxpool(output)`"),
    ] {
        let h = help_for(&m(name), layer);
        assert!(h.contains(writes), "{name}: {h}");
    }
    // The helps' translations, with Keras's output shapes.
    let c = cnnc::compile_source(
        Path::new("k.cnn"),
        "model K(input: [3, 32, 32]) {\n\
         conv(32, 3, pad=same) relu : [32, 32, 32]\n\
         conv(32, 3, stride=2, pad=[0, 1, 0, 1]) : [32, 16, 16]\n\
         conv(in.c, 3, pad=same, groups=in.c, bias=false) conv(64, 1) : [64, 16, 16]\n\
         conv(in.c, 3, pad=same, groups=in.c) : [64, 16, 16]\n\
         maxpool(2) : [64, 8, 8]\n\
         avgpool(2) : [64, 4, 4]\n\
         upsample(2) : [64, 8, 8]\n\
         convT(64, 2, stride=2) : [64, 16, 16]\n\
         pad([0, 1, 2, 3]) : [64, 17, 21]\n\
         avgpool(3, stride=1, pad=1, count_include_pad=false) : [64, 17, 21]\n\
         scale(1.0 / 255) normalize(mean=127.5, std=127.5) : [64, 17, 21]\n\
         global_maxpool flatten : [64]\n\
         linear(120) relu : [120]\n\
         }\n"
        .into(),
    );
    assert!(c.diagnostics.is_empty(), "{:?}", c.diagnostics);
    // A misspelt used file: the nearest .cnn file beside it, as the `use` writes it.
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("lib")).unwrap();
    std::fs::write(dir.path().join("lib/blocks.cnn"), "block b() { relu }\n").unwrap();
    let main = dir.path().join("main.cnn");
    let use_help = |used: &str| {
        std::fs::write(
            &main,
            format!("use \"{used}\"\nmodel M(input: [4]) {{ b() }}\n"),
        )
        .unwrap();
        let c = cnnc::compile_file(&main).unwrap();
        let d = c
            .diagnostics
            .iter()
            .find(|d| d.code == "cnnc::syntax::use_not_found")
            .unwrap_or_else(|| panic!("{used}: {:?}", c.diagnostics));
        d.help.clone().unwrap_or_default()
    };
    assert_eq!(
        use_help("lib/blokcs.cnn"),
        "did you mean `use \"lib/blocks.cnn\"`?"
    );
    assert_eq!(
        use_help("lib/layers.cnn"),
        "the path of a `use` is relative to the file that contains it"
    );
    // A file of that name one folder down.
    assert_eq!(
        use_help("blocks.cnn"),
        "did you mean `use \"lib/blocks.cnn\"`?"
    );
    // Not the file that has the `use`.
    assert_eq!(
        use_help("mian.cnn"),
        "the path of a `use` is relative to the file that contains it"
    );
}

/// Keras's argument habits and input shapes get the help that writes them cnnc's way.
#[test]
fn helps_for_keras_arguments_and_inputs() {
    let m = |body: &str| format!("model M(input: [3, 32, 32]) {{ {body} }}\n");
    let arg = "cnnc::elab::unknown_argument";
    for (call, words) in [
        (
            "conv(8, 3, activation=relu)",
            "write the activation as the next layer, `conv(…) relu`",
        ),
        ("linear(10, activation=softmax)", "`linear(…) softmax`"),
        (
            "conv(8, 3, activation=SiLU)",
            "`conv(…) silu` (for `activation=SiLU`)",
        ),
        ("conv(8, 3, activation=1)", "`conv(…) relu`"),
        // Keras's names of cnnc's activations; one cnnc lacks is not made a relu.
        ("conv(8, 3, activation=swish)", "`conv(…) silu`"),
        (
            "conv(8, 3, activation=hard_sigmoid)",
            "`conv(…) hardsigmoid`",
        ),
        ("conv(8, 3, activation=hard_swish)", "`conv(…) hardswish`"),
        ("conv(8, 3, activation=leaky_relu)", "`leaky_relu(0.2)`"),
        (
            "conv(8, 3, activation=selu)",
            "and no `selu` activation: write one of its activations",
        ),
        ("conv(8, 3, activation=conv)", "`conv(…) relu`"),
        (
            "conv(8, 3, activation=None)",
            "and `None` is none: delete the argument",
        ),
        (
            "conv(8, 3, activation=linear)",
            "and `linear` is none: delete the argument",
        ),
        ("batchnorm(axis=-1)", "remove `axis`"),
        ("layernorm(dim=1)", "`layernorm` takes no axis"),
        ("groupnorm(2, axis=1)", "remove `axis`"),
        ("upsample(2, interpolation=bilinear)", "`bilinear=true`"),
        ("conv(filters=8, kernel=3)", "did you mean `out`?"),
        ("flatten linear(units=8)", "did you mean `out`?"),
        ("maxpool(pool_size=2)", "did you mean `kernel`?"),
        ("conv(8, 3, use_bias=false)", "did you mean `bias`?"),
        ("batchnorm(epsilon=1e-3)", "did you mean `eps`?"),
    ] {
        let h = help_for(&m(call), arg);
        assert!(h.contains(words), "{call}: {h}");
    }
    let syntax = "cnnc::syntax::unexpected";
    for (call, words) in [
        (
            "conv(8, 3, pad='SAME')",
            "`pad=same`: it keeps a conv's size at stride 1",
        ),
        ("conv(8, 3, pad='valid')", "`pad=0`, the default"),
        ("relu as c2 concat(c2)", "`concat { {} skip }`"),
        ("concat(axis=-1) { {} {} }", "`concat` takes no arguments"),
        (
            "relu as x conv(32, 3)(x)",
            "a layer is not called on a tensor",
        ),
        (
            "relu as x conv(3, 3, pad=1) add(shortcut)",
            "`shortcut` is a keyword, not a value or a tensor's name: a sum with a named \
             tensor x is `residual { … } shortcut { x }`",
        ),
        (
            "if in.c > 1:\n relu",
            "bodies are braced, not indented: `if in.c > 1 { … }`",
        ),
    ] {
        let h = help_for(&m(call), syntax);
        assert!(h.contains(words), "{call}: {h}");
    }
    // A parenthesis on the next line is no call of a layer on a tensor.
    let h = help_for(&m("conv(8, 3)\n(relu)"), syntax);
    assert!(!h.contains("called on a tensor"), "{h}");
    let h = help_for(&m("conv(8, 3, pad=SAME)"), "cnnc::elab::unknown_variable");
    assert_eq!(h, "`same` is written in lower case: `pad=same`");
    // The batch dimension, as a number or Keras's None, channels last or first.
    for (input, code, written) in [
        (
            "[1, 28, 28, 1]",
            "cnnc::shape::rank",
            "`input: [1, 28, 28]`",
        ),
        (
            "[None, 28, 28, 1]",
            "cnnc::elab::argument_value",
            "`input: [1, 28, 28]`",
        ),
        (
            "[None, 3, 32, 32]",
            "cnnc::elab::argument_value",
            "`input: [3, 32, 32]`",
        ),
        (
            "[None, 28, 28]",
            "cnnc::elab::argument_value",
            "`input: [1, 28, 28]`",
        ),
        (
            "[None, 784]",
            "cnnc::elab::argument_value",
            "`input: [784]`",
        ),
        // A fully convolutional net's open height and width, with or without the batch.
        (
            "[None, None, 3]",
            "cnnc::elab::argument_value",
            "`input: [3, 224, 224]`; `cnnc export --dynamic-size`",
        ),
        (
            "[None, None, None, 3]",
            "cnnc::elab::argument_value",
            "`input: [3, 224, 224]` (without the batch)",
        ),
    ] {
        let h = help_for(&format!("model M(input: {input}) {{ relu }}\n"), code);
        assert!(h.contains(written), "{input}: {h}");
    }
    // Dense + Reshape in a generator: one transposed conv on a one-pixel input, which the
    // help's numbers write; not where the flat tensor came from a flatten.
    let gen = "model G(input: [100]) {\n  linear(3136) relu\n  convT(32, 4, stride=2, pad=1)\n}\n";
    let h = help_for(gen, "cnnc::shape::rank");
    assert!(
        h.contains("`input: [100, 1, 1]`") && h.contains("`convT(64, 7)` gives [64, 7, 7]"),
        "{h}"
    );
    let written =
        "model G(input: [100, 1, 1]) {\n  convT(64, 7) relu\n  convT(32, 4, stride=2, pad=1)\n}\n";
    let c = cnnc::compile_source(Path::new("g.cnn"), written.into());
    assert!(c.diagnostics.is_empty(), "{:?}", c.diagnostics);
    assert_eq!(c.models[0].output_shape().to_string(), "[32, 14, 14]");
    let h = help_for(
        "model G(input: [3, 8, 8]) { flatten linear(48) relu conv(4, 3) }\n",
        "cnnc::shape::rank",
    );
    assert!(h.contains("move it before the `flatten`"), "{h}");
}

/// `convT(…, pad=same)`: the help's padding and output_pad make the output the input times
/// the stride (Keras's 'same'), for every kernel, stride and dilation it gives them for.
#[test]
fn conv_transpose_same_help_gives_the_input_times_the_stride() {
    let mut given = 0;
    for k in 1..=7 {
        for s in 1..=4 {
            for d in 1..=3 {
                let call = format!("convT(4, {k}, stride={s}, dilation={d}");
                let h = help_for(
                    &format!("model M(input: [2, 9, 9]) {{ {call}, pad=same) }}\n"),
                    "cnnc::elab::argument_value",
                );
                let at = h.find("`pad=").unwrap_or_else(|| panic!("{call}: {h}"));
                if h.contains("more padding on one side") {
                    assert!(k % 2 == 0 && s == 1 && d == 1, "{call}: {h}");
                }
                given += 1;
                // Every padding it offers (Keras's exact list, and PyTorch's form beside it).
                assert!(at > 0);
                for (at, _) in h.match_indices("`pad=") {
                    let fix = &h[at + 1..at + 1 + h[at + 1..].find('`').unwrap()];
                    let c = cnnc::compile_source(
                        Path::new("t.cnn"),
                        format!("model M(input: [2, 9, 9]) {{ {call}, {fix}) }}\n"),
                    );
                    assert!(
                        c.diagnostics.is_empty(),
                        "{call}, {fix}: {:?}",
                        c.diagnostics
                    );
                    let out = c.models[0].output_shape().to_string();
                    assert_eq!(out, format!("[4, {0}, {0}]", 9 * s), "{call}, {fix}");
                }
            }
        }
    }
    assert_eq!(given, 7 * 4 * 3);
}

/// Concat and stride helps that the Keras walkthrough found wrong: zero padding from a `pad`
/// layer is no unused input; a reduction block's branches are told the size they must
/// reach; a transposed conv that falls one short of its input times the stride is told
/// output_pad, not a stride before it.
#[test]
fn reduction_blocks_pad_layers_and_short_transposed_convs() {
    let codes = |src: &str| -> Vec<&'static str> {
        let c = cnnc::compile_source(Path::new("t.cnn"), src.to_string());
        c.diagnostics.iter().map(|d| d.code).collect()
    };
    let m = |body: &str| format!("model M(input: [3, 224, 224]) {{ {body} }}\n");
    assert_eq!(
        codes(&m("pad(3) conv(64, 7, stride=2)")),
        Vec::<&str>::new()
    );
    assert_eq!(
        codes(&m("pad(1) conv(64, 3, stride=2)")),
        Vec::<&str>::new()
    );
    // Padding that covers less than the unread rows: real input is lost.
    assert_eq!(
        codes(&m("pad([2, 0, 2, 0]) conv(8, 3, stride=2)")),
        ["cnnc::shape::unused_input"]
    );
    let reduction = "model M(input: [192, 35, 35]) {\n  concat {\n    conv(384, 3, stride=2)\n    \
         { conv(64, 1) conv(96, 3, pad=1) conv(96, 3, stride=2, pad=1) }\n    \
         maxpool(3, stride=2)\n  }\n}\n";
    let c = cnnc::compile_source(Path::new("r.cnn"), reduction.into());
    let d = &c.diagnostics.0[0];
    assert_eq!(d.code, "cnnc::shape::concat_mismatch");
    assert!(
        d.help.as_deref().unwrap().contains("2 of 3 give 17×17"),
        "{:?}",
        d.help
    );
    assert!(
        d.labels.iter().any(|l| {
            l.text
            == "this branch gives [96, 18, 18]: its 3×3 conv with stride 2 gives 17×17 with `pad=0`"
        }),
        "{:?}",
        d.labels
    );
    // Not for branches that are no reduction: a GoogLeNet module missing its padding,
    // upsampling branches; nor a label shared by a repeat's iterations.
    for src in [
        "model M(input: [64, 28, 28]) { concat { {conv(16, 1) conv(32, 3)} {conv(16, 1) \
         conv(32, 5)} {maxpool(3, stride=1) conv(16, 1)} } }\n",
        "model M(input: [8, 16, 16]) { concat { upsample(2) convT(8, 3, stride=2, pad=1) \
         convT(8, 3, stride=2, pad=1) } }\n",
    ] {
        let h = help_for(src, "cnnc::shape::concat_mismatch");
        assert!(!h.contains("with a stride"), "{src}: {h}");
    }
    let c = cnnc::compile_source(
        Path::new("r.cnn"),
        "model M(input: [8, 16, 16]) { concat { repeat p in [1, 0] { conv(8, 3, stride=2, \
         pad=p) } maxpool(2) } }\n"
            .into(),
    );
    let d = &c.diagnostics.0[0];
    assert!(
        d.labels.iter().all(|l| !l.text.contains("with `pad=")),
        "{:?}",
        d.labels
    );
    // upsample_shrinks: a resize to a skip tensor's size or to 224×224 is meant.
    for body in [
        "conv(8, 3, pad=1) as full maxpool(2) as half concat { {} { full upsample(size=[half.h, \
         half.w], bilinear=true) } }",
        "upsample(size=[224, 224], bilinear=true)",
    ] {
        let src = format!("model M(input: [3, 256, 256]) {{ {body} }}\n");
        assert_eq!(codes(&src), Vec::<&str>::new(), "{src}");
    }
    // Keras's `UpSampling2D(size=2)` on a 2×2 image: the same size, nothing done, warned;
    // a size read off a tensor is no factor, even of a few pixels (multi-scale fusion at
    // 4×4, a block's resize that has nothing to do at one scale).
    let src = "model M(input: [8, 2, 2]) { upsample(size=2) }\n";
    assert_eq!(codes(src), vec!["cnnc::shape::upsample_shrinks"], "{src}");
    let c = cnnc::compile_source(Path::new("u.cnn"), src.into());
    assert!(c.diagnostics.0[0].message.contains("it does nothing"));
    for (body, side) in [
        ("relu as s upsample(size=[s.h, s.w])", 4),
        ("relu upsample(size=[in.h, in.w])", 2),
        (
            "conv(8, 3, pad=1) as full maxpool(2) as half concat { {} { full \
             upsample(size=[half.h, half.w]) } }",
            8,
        ),
    ] {
        let src = format!("model M(input: [8, {side}, {side}]) {{ {body} }}\n");
        assert_eq!(codes(&src), Vec::<&str>::new(), "{src}");
    }
    // The axis help only where the layer works on the channels.
    let h = help_for(
        "model M(input: [3, 8, 8]) { global_avgpool(dim=[2, 3]) }\n",
        "cnnc::elab::unknown_argument",
    );
    assert!(!h.contains("works on the channels"), "{h}");
    let fixed = reduction.replace("stride=2, pad=1", "stride=2, pad=0");
    assert_eq!(codes(&fixed), Vec::<&str>::new());
    let short = "model M(input: [3, 64, 64]) {\n  conv(16, 3, pad=1) relu as c1\n  maxpool(2)\n  \
         convT(16, 3, stride=2, pad=1)\n  concat { {} c1 }\n}\n";
    let h = help_for(short, "cnnc::shape::concat_mismatch");
    assert!(h.contains("`output_pad=1` makes it that"), "{h}");
    assert!(!h.contains("odd size"), "{h}");
    assert_eq!(
        codes(&short.replace("pad=1)\n  concat", "pad=1, output_pad=1)\n  concat")),
        Vec::<&str>::new()
    );
}

/// `output` stays a name where something is called so: a block's parameter holding a tensor
/// (`output aux` then reads that tensor and calls the block `aux`) or a block, in code a model
/// expands and in code none does; and `output flatten` is the layer it names.
#[test]
fn output_followed_by_a_name_is_no_statement_where_output_is_a_name() {
    for src in [
        "block aux() { relu }\nblock b(output) { output aux }\n\
         model M(input: [4, 8, 8]) { conv(4, 1) as t relu b(t) conv(2, 1) }",
        "block aux() { relu }\nblock b(output) { output aux }\n\
         model M(input: [4, 8, 8]) { conv(4, 1) }",
        "block output() { relu }\nmodel M(input: [4, 8, 8]) { conv(4, 1) output flatten linear(2) }",
    ] {
        let c = cnnc::compile_source(Path::new("k.cnn"), src.to_string());
        assert_eq!(c.diagnostics.error_count(), 0, "{src}: {:?}", c.diagnostics);
    }
    // Where `output` is nothing, `output flatten` is `output` unknown (with the statement's
    // form in the help), not a named output called `flatten`.
    let c = cnnc::compile_source(
        Path::new("k.cnn"),
        "model M(input: [4, 8, 8]) { conv(4, 1) output flatten linear(2) }".to_string(),
    );
    let messages: Vec<&str> = c.diagnostics.iter().map(|d| d.message.as_str()).collect();
    assert_eq!(messages, ["unknown layer `output`"]);
}

/// Habits from PyTorch and papers get the help that fixes them, not a near name that does
/// not (`drop` is one letter from `crop`): PyTorch's norm sizes, its argument order (also
/// with the kernel named, and past a transposed conv's `output_padding`), `==` for `=`.
#[test]
fn pytorch_and_paper_habits_get_the_fitting_help() {
    let cases: &[(&str, &str, &[&str])] = &[
        (
            "model M(input: [64, 8, 8]) { layernorm(64) flatten linear(10) }",
            "cnnc::elab::argument_count",
            &[
                "`layernorm` takes no positional arguments",
                "`layernorm(eps=",
            ],
        ),
        (
            "model M(input: [64, 32, 32]) { conv(64, 128, kernel=3, stride=1, pad=1) }",
            "cnnc::elab::argument_count",
            &[
                "`kernel` of `conv` is given twice",
                "drop the first argument",
            ],
        ),
        (
            "model M(input: [64, 8, 8]) { convT(64, 32, 4, 2, 1, 0, 2) }",
            "cnnc::elab::argument_value",
            &[
                "drop the first argument, and name what follows PyTorch's `output_padding`",
                "`convT(32, 4, 2, 1, 0, groups=2)`",
            ],
        ),
        (
            "model M(input: [3, 32, 32]) { conv(16, 3, pad==1) }",
            "cnnc::elab::argument_value",
            &["`pad==…` compares", "did you mean `pad=…`?"],
        ),
        (
            "model M(input: [3, 8, 8]) { flatten fc(10) }",
            "cnnc::elab::unknown_layer",
            &["`linear(out_features)`"],
        ),
        (
            "model M(input: [3, 8, 8]) { flatten dense(10) }",
            "cnnc::elab::unknown_layer",
            &["`linear(out_features)`"],
        ),
        (
            "model M(input: [3, 8, 8]) { conv(8, 3) bn }",
            "cnnc::elab::unknown_layer",
            &["is `batchnorm`"],
        ),
        (
            "model M(input: [3, 8, 8]) { conv(8, 3) gap }",
            "cnnc::elab::unknown_layer",
            &["`global_avgpool`"],
        ),
        (
            "model M(input: [3, 8, 8]) { conv(8, 3) drop(0.5) }",
            "cnnc::elab::unknown_layer",
            &["`dropout(p)`"],
        ),
        (
            "model M(input: [3, 8, 8]) { conv(8, 3) lrelu }",
            "cnnc::elab::unknown_layer",
            &["`leaky_relu`"],
        ),
    ];
    for (src, code, says) in cases {
        let text = assert_one_error_saying(src, code, says);
        assert!(!text.contains("`crop`"), "{src}: {text:?}");
    }
    // A depthwise conv in PyTorch's order, `Conv2d(32, 32, 3, 1, 1, groups=32)`: warned with
    // the rewrite; cnnc's own depthwise conv is not.
    for (src, warned) in [
        ("conv(32, 32, 3, 1, 1, groups=32)", true),
        ("conv(32, 3, 1, 1, groups=32)", false),
        ("conv(in.c, 3, pad=1, groups=in.c)", false),
        ("conv(64, 64, 3, 1, 1, groups=32)", false),
    ] {
        let c = cnnc::compile_source(
            Path::new("d.cnn"),
            format!("model M(input: [32, 64, 64]) {{ {src} }}"),
        );
        let d = c
            .diagnostics
            .iter()
            .find(|d| d.code == "cnnc::elab::pytorch_argument_order");
        assert_eq!(d.is_some(), warned, "{src}: {:?}", c.diagnostics);
        if let Some(d) = d {
            let help = d.help.clone().unwrap_or_default();
            assert!(help.contains("`conv(32, 3, 1, 1, groups=32)`"), "{help}");
        }
    }
}

/// Warnings found after the block call they came from returned (a dilated chain that ends
/// past the call, a name never read by the model's end) are labelled at that call, as any
/// warning from inside a block is, and an allow at every call that gave one silences it.
#[test]
fn warnings_found_after_a_call_returned_are_labelled_at_it() {
    let warnings = |src: &str| {
        let c = cnnc::compile_source(Path::new("w.cnn"), src.to_string());
        assert!(!c.diagnostics.has_errors(), "{src}: {:?}", c.diagnostics);
        c.diagnostics
            .iter()
            .map(|d| {
                let calls: Vec<usize> = d
                    .labels
                    .iter()
                    .filter(|l| l.call)
                    .map(|l| src[..l.span.start as usize].matches('\n').count() + 1)
                    .collect();
                (d.code, calls)
            })
            .collect::<Vec<_>>()
    };
    let gridding = "block g(c, d1, d2) {\n    conv(c, 3, pad=d1, dilation=d1)\n    conv(c, 3, pad=d2, dilation=d2)\n}\n\
                    model M(input: [3, 32, 32]) {\n    g(8, 2, 4)ALLOW\n    maxpool(2)\n    g(8, 1, 2)\n}\n";
    assert_eq!(
        warnings(&gridding.replace("ALLOW", "")),
        [("cnnc::shape::gridding", vec![6])]
    );
    assert_eq!(
        warnings(&gridding.replace("ALLOW", "  # cnnc: allow(gridding)")),
        []
    );
    let unused = "block b(c) {\n    conv(c, 3, pad=1) as x\n    maxpool(2)\n}\n\
                  model M(input: [3, 32, 32]) {\n    b(8)ALLOW\n    b(8)SECOND\n}\n";
    assert_eq!(
        warnings(&unused.replace("ALLOW", "").replace("SECOND", "")),
        [("cnnc::elab::unused_name", vec![6])]
    );
    // Allowed at the first call only: reported at the second, which gave it too.
    assert_eq!(
        warnings(
            &unused
                .replace("ALLOW", "  # cnnc: allow(unused_name)")
                .replace("SECOND", "")
        ),
        [("cnnc::elab::unused_name", vec![7])]
    );
    assert_eq!(
        warnings(
            &unused
                .replace("ALLOW", "  # cnnc: allow(unused_name)")
                .replace("SECOND", "  # cnnc: allow(unused_name)")
        ),
        []
    );
    // A chain that ends inside the call: labelled as the call returns, once.
    let inside = "block g(c) {\n    conv(c, 3, pad=2, dilation=2)\n    conv(c, 3, pad=4, dilation=4)\n    maxpool(2)\n}\n\
                  model M(input: [3, 64, 64]) {\n    g(8)\n    g(8)\n}\n";
    assert_eq!(warnings(inside), [("cnnc::shape::gridding", vec![7])]);
    // A chain that ends in an outer call still under way, after the inner one returned:
    // an allow at each outer call silences it.
    let nested =
        "block g(c) {\n    conv(c, 3, dilation=2, pad=2)\n    conv(c, 3, dilation=2, pad=2)\n}\n\
                  block a(c) {\n    g(c)\n    maxpool(2)\n}\n\
                  model M(input: [8, 32, 32]) {\n    a(8)ALLOW\n    a(8)ALLOW\n}\n";
    assert_eq!(
        warnings(&nested.replace("ALLOW", "")),
        [("cnnc::shape::gridding", vec![6, 10])]
    );
    assert_eq!(
        warnings(&nested.replace("ALLOW", "  # cnnc: allow(gridding)")),
        []
    );
    // A later call with other rates, the first one allowed: reported with its own rates.
    let other = gridding
        .replace("ALLOW", "  # cnnc: allow(gridding)")
        .replace("g(8, 1, 2)", "g(8, 4, 8)\n    maxpool(2)");
    let c = cnnc::compile_source(Path::new("w.cnn"), other.clone());
    let d: Vec<_> = c.diagnostics.iter().collect();
    assert_eq!(d.len(), 1, "{d:?}");
    assert!(d[0].message.contains("rates [4, 8]"), "{}", d[0].message);
    assert_eq!(warnings(&other), [("cnnc::shape::gridding", vec![8])]);
}

/// An `as` left at the end of a line takes the next line's layer as its name: one error,
/// which says so, and no follow-on from the layer it ate (`linear` without `flatten`).
#[test]
fn an_as_at_the_end_of_a_line_is_one_error() {
    let src = "model M(input: [3, 32, 32]) {\n    conv(16, 3, pad=1) relu as\n    flatten\n    linear(10)\n}\n";
    let c = cnnc::compile_source(Path::new("a.cnn"), src.to_string());
    assert_eq!(c.diagnostics.error_count(), 1, "{:?}", c.diagnostics);
    let d = &c.diagnostics.0[0];
    assert!(
        d.message.contains("`flatten` names a layer or block"),
        "{d:?}"
    );
    assert!(
        d.help
            .as_deref()
            .unwrap_or("")
            .contains("an `as` at the end of a line"),
        "{d:?}"
    );
}

/// Helps that said false things (found by a QA pass): a warning from a shape that a failed
/// assertion wrote says so; a crop's scales count from the skip along the current tensor's
/// way, through an earlier concat's crop; a block default that reads a later parameter or a
/// caller's tensor says what a default sees.
#[test]
fn helps_tell_the_truth_of_what_went_wrong() {
    let help_of = |src: &str, code: &str| {
        let c = cnnc::compile_source(Path::new("t.cnn"), src.to_string());
        let d = c
            .diagnostics
            .iter()
            .find(|d| d.code == code)
            .unwrap_or_else(|| panic!("{src}: no {code} in {:?}", c.diagnostics));
        d.help.clone().unwrap_or_default()
    };
    let help = help_of(
        "model M(input: [3, 32, 32]) {\n conv(16, 3, pad=1)\n maxpool(2) : [16, 15, 15]\n \
         conv(32, 3, pad=1)\n maxpool(2)\n flatten linear(10)\n}\n",
        "cnnc::shape::unused_input",
    );
    assert!(
        help.contains("this warning may be that assertion's alone"),
        "{help}"
    );
    let help = help_of(
        "model U(input: [1, 64, 64]) {\n conv(8, 3) relu as e1\n maxpool(2)\n conv(16, 3) relu\n \
         upsample(2)\n concat { crop(e1) {} }\n upsample(4)\n concat { {} crop(e1) }\n}\n",
        "cnnc::shape::crop_too_large",
    );
    assert!(
        help.contains("the layers downsample by 2 and upsample by 8"),
        "{help}"
    );
    let help = help_of(
        "block g(c=d, d=2) { conv(c, 1) }\nmodel M(input: [3, 8, 8]) { g() }\n",
        "cnnc::elab::unknown_variable",
    );
    assert!(
        help.contains("a default reads only the parameters before it")
            && help.contains("put `d` before `c`"),
        "{help}"
    );
    let help = help_of(
        "block g(c=c) { conv(c, 1) }\nmodel M(input: [3, 8, 8]) { g() }\n",
        "cnnc::elab::unknown_variable",
    );
    assert!(
        help.contains("a default cannot read its own parameter"),
        "{help}"
    );
    let c = cnnc::compile_source(
        Path::new("t.cnn"),
        "block f(c=x.c) { conv(c, 1) }\nmodel M(input: [3, 8, 8]) { conv(4, 1) as x f() }\n"
            .to_string(),
    );
    let help = c.diagnostics.0[0].help.clone().unwrap_or_default();
    assert!(
        help.contains("not the tensors named where it is called") && help.contains("`f(c=x.c)`"),
        "{help}"
    );
    // A shortcut from a named skip of other channels and size: the projection that fixes
    // both, reckoned from the skip, and it does.
    let residual = "model R(input: [3, 32, 32]) {\n conv(16, 3, pad=1) relu as skip\n \
                    conv(32, 3, stride=2, pad=1) relu\n residual { conv(32, 3, pad=1) } \
                    shortcut { skip FIX }\n}\n";
    let help = help_of(
        &residual.replace("FIX", ""),
        "cnnc::shape::residual_mismatch",
    );
    assert!(
        help.contains("add a projection `conv(32, 1, stride=2)` to it"),
        "{help}"
    );
    let fixed = cnnc::compile_source(
        Path::new("t.cnn"),
        residual.replace("FIX", "conv(32, 1, stride=2)"),
    );
    assert!(fixed.diagnostics.is_empty(), "{:?}", fixed.diagnostics);
}

/// A U-Net's `up` block whose transposed conv falls a pixel short at one scale: the
/// `output_pad` offered reads the skip's size, so that applied it fits every call (a constant
/// right for one call breaks another); in a model's own body, the constant.
#[test]
fn output_pad_help_in_a_block_fits_every_call() {
    let src = "block up(c, skip) {\n    convT(c, 2, stride=2)\n    concat { skip {} }\n    conv(c, 3, pad=1)\n}\n\
               model U(input: [3, 100, 100]) {\n    conv(8, 3, pad=1) as e1\n    maxpool(2) conv(16, 3, pad=1) as e2\n    maxpool(2) conv(32, 3, pad=1) as e3\n    maxpool(2) conv(64, 3, pad=1)\n    up(32, e3)\n    up(16, e2)\n    up(8, e1)\n}\n";
    let h = help_for(src, "cnnc::shape::concat_mismatch");
    let fix = "output_pad=skip.h - 2 * in.h";
    assert!(h.contains(&format!("`{fix}` (1 in this call")), "{h}");
    assert!(h.contains("every call of `up`"), "{h}");
    let fixed = src.replace(
        "convT(c, 2, stride=2)",
        &format!("convT(c, 2, stride=2, {fix})"),
    );
    let c = cnnc::compile_source(Path::new("u.cnn"), fixed.clone());
    // The pooling of 25×25 leaves a row unused, a warning the fix leaves as it is.
    let codes: Vec<_> = c.diagnostics.iter().map(|d| d.code).collect();
    assert_eq!(codes, ["cnnc::shape::unused_input"], "{fixed}");
    // The constant that fits the failing call alone breaks another.
    let constant = src.replace(
        "convT(c, 2, stride=2)",
        "convT(c, 2, stride=2, output_pad=1)",
    );
    let c = cnnc::compile_source(Path::new("u.cnn"), constant);
    assert!(c
        .diagnostics
        .iter()
        .any(|d| d.code == "cnnc::shape::concat_mismatch"));
    // A transposed conv of the model's body before a block that joins: the block's `skip`
    // is no name there, so the number.
    let join = "block join(skip) {\n    concat { {} skip }\n}\nmodel U(input: [3, 51, 51]) {\n    conv(8, 3, pad=1) as e1\n    maxpool(2)\n    convT(8, 2, stride=2)\n    join(e1)\n}\n";
    let h = help_for(join, "cnnc::shape::concat_mismatch");
    assert!(!h.contains("skip.h"), "{h}");
    assert!(h.contains("`output_pad=1` (a stride"), "{h}");
    // Unrolled into the model's body, each transposed conv has its own: the number.
    let flat = "model U(input: [3, 51, 51]) {\n    conv(8, 3, pad=1) as e1\n    maxpool(2)\n    convT(8, 2, stride=2)\n    concat { e1 {} }\n}\n";
    let h = help_for(flat, "cnnc::shape::concat_mismatch");
    assert!(h.contains("`output_pad=1` (a stride"), "{h}");
}

/// PyTorch's `torch.cat((a, b))` and `torch.add(a, b)` of named tensors get the statements
/// that do it, which check.
#[test]
fn calls_joining_named_tensors_get_the_statement() {
    let model = |line: &str| {
        format!("model M(input: [3, 8, 8]) {{\n    conv(4, 1) as a\n    conv(4, 1) as b\n    {line}\n}}\n")
    };
    let h = help_for(&model("cat(a, b)"), "cnnc::elab::unknown_layer");
    assert!(h.contains("`concat { a b }`"), "{h}");
    assert!(
        cnnc::compile_source(Path::new("m.cnn"), model("concat { a b }"))
            .diagnostics
            .is_empty()
    );
    let h = help_for(&model("add(a, b)"), "cnnc::elab::unknown_layer");
    assert!(h.contains("`a residual {} shortcut { b }`"), "{h}");
    assert!(
        cnnc::compile_source(Path::new("m.cnn"), model("a residual {} shortcut { b }"))
            .diagnostics
            .is_empty()
    );
    // Not tensors: the general help.
    let h = help_for(&model("cat(1, 2)"), "cnnc::elab::unknown_layer");
    assert!(h.starts_with("concatenation is `concat {"), "{h}");
}

/// A `flatten : [N]` counted by hand and wrong: the image flattened, and the one the count
/// was made for when it has the same channels and proportions.
#[test]
fn a_wrong_flatten_count_says_what_it_was_counted_for() {
    let src = |count: &str| {
        format!(
            "model M(input: [1, 28, 36]) {{\n    conv(6, 5) relu maxpool(2)\n    conv(16, 5) relu maxpool(2)\n    flatten : [{count}]\n    linear(10)\n}}\n"
        )
    };
    // The layers give [16, 4, 6]; 16 × 6 × 9 is an image of the same proportions.
    let h = help_for(&src("864"), "cnnc::shape::assertion_failed");
    assert!(
        h.contains("turns [16, 4, 6] into 16 × 4 × 6 = 384 values"),
        "{h}"
    );
    assert!(h.contains("[864] is [16, 6, 9] flattened"), "{h}");
    assert!(h.contains("write `: [384]`"), "{h}");
    // A count of no such image: the flattened size alone.
    let h = help_for(&src("385"), "cnnc::shape::assertion_failed");
    assert!(h.contains("= 384 values, not 385"), "{h}");
}

/// A conv in PyTorch's order that happens to fit (`conv(3, 64, 3)`: kernel 64, stride 3) gets
/// its warning alone, not also the rows its misread stride leaves unused; silenced, the
/// layer is taken as written, and that warning is the layer's again.
#[test]
fn a_pytorch_order_layer_gets_no_warnings_of_its_misread_numbers() {
    let codes = |src: &str| -> Vec<&'static str> {
        let c = cnnc::compile_source(Path::new("p.cnn"), src.to_string());
        c.diagnostics.iter().map(|d| d.code).collect()
    };
    let src = "model M(input: [3, 224, 224]) {\n    conv(3, 64, 3) relu\n    global_avgpool flatten linear(10)\n}\n";
    assert_eq!(codes(src), ["cnnc::elab::pytorch_argument_order"]);
    let allowed = src.replace("relu\n", "relu  # cnnc: allow(pytorch_argument_order)\n");
    assert_eq!(codes(&allowed), ["cnnc::shape::unused_input"]);
    // So with `--allow pytorch_argument_order` on the command line.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("p.cnn");
    std::fs::write(&file, src).unwrap();
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_cnnc"))
        .args([
            "check",
            file.to_str().unwrap(),
            "--allow",
            "pytorch_argument_order",
        ])
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("cnnc::shape::unused_input"), "{err}");
    assert!(!err.contains("pytorch_argument_order"), "{err}");
}

/// ResNet's block with `stride=stride` in both body convs: the second conv is labelled and
/// the help says to drop its stride (which fixes it), not to make the shortcut stride 4.
#[test]
fn a_body_that_strides_twice_names_the_second_stride() {
    let src = "block basic(c, stride=1) {\n    residual {\n        conv(c, 3, stride=stride, pad=1) relu\n        conv(c, 3, stride=stride, pad=1)\n    } shortcut if stride != 1 or in.c != c {\n        conv(c, 1, stride=stride)\n    }\n}\nmodel R(input: [16, 32, 32]) {\n    basic(16)\n    basic(32, stride=2)\n    global_avgpool flatten linear(10)\n}\n";
    let c = cnnc::compile_source(Path::new("r.cnn"), src.into());
    let d = c.diagnostics.iter().next().unwrap();
    assert_eq!(d.code, "cnnc::shape::residual_mismatch");
    let help = d.help.clone().unwrap();
    assert!(
        help.starts_with(
            "the body strides twice, 32×32 → 8×8, where the shortcut strides once, to 16×16"
        ),
        "{help}"
    );
    assert!(!help.contains("stride=4"), "{help}");
    let again: Vec<_> = d
        .labels
        .iter()
        .filter(|l| l.text == "this conv strides again")
        .collect();
    assert_eq!(again.len(), 1, "{:?}", d.labels);
    // The label is the second conv's.
    assert_eq!(
        &src[again[0].span.start as usize..again[0].span.end as usize],
        "conv(c, 3, stride=stride, pad=1)"
    );
    assert!(
        src.find("conv(c, 3, stride=stride, pad=1)\n    }")
            .map(|i| i as u32)
            == Some(again[0].span.start)
    );
    let fixed = src.replace(
        "conv(c, 3, stride=stride, pad=1)\n    }",
        "conv(c, 3, pad=1)\n    }",
    );
    assert!(cnnc::compile_source(Path::new("r.cnn"), fixed)
        .diagnostics
        .is_empty());
}

/// MobileNetV2's block with a stride parameter named `s`: `residual if in.c == c` on the
/// call that downsamples is told to add `and s == 1` (which fixes it), not that every call
/// downsamples.
#[test]
fn a_short_stride_name_is_a_stride_in_condition_helps() {
    let src = "block ir(c, t, s=1) {\n    residual if in.c == c {\n        conv(in.c * t, 1) relu6\n        conv(in.c, 3, stride=s, pad=1, groups=in.c) relu6\n        conv(c, 1)\n    }\n}\nmodel M(input: [16, 32, 32]) {\n    ir(16, 6)\n    ir(16, 6, s=2)\n    global_avgpool flatten linear(10)\n}\n";
    let h = help_for(src, "cnnc::shape::residual_mismatch");
    assert!(h.ends_with("add `and s == 1` to the condition"), "{h}");
    assert!(!h.contains("every call"), "{h}");
    let fixed = src.replace("in.c == c {", "in.c == c and s == 1 {");
    assert!(cnnc::compile_source(Path::new("m.cnn"), fixed)
        .diagnostics
        .is_empty());
}

/// The groups that fit are all listed, by their ends when there are many, with the depthwise
/// one (the input's channels) among them and named.
#[test]
fn group_candidates_reach_the_depthwise_value() {
    let h = help_for(
        "model M(input: [144, 8, 8]) { conv(144, 3, pad=1, groups=145) }",
        "cnnc::shape::groups",
    );
    assert!(h.contains("candidates: 1, 2, 3, 4, 6, 8, …, 36, 48, 72, 144 (144, the input's channels, is depthwise"), "{h}");
    let h = help_for(
        "model M(input: [6, 8, 8]) { conv(4, 1, groups=3) }",
        "cnnc::shape::groups",
    );
    assert!(h.ends_with("candidates: 1, 2"), "{h}");
}

/// PyTorch's `LayerNorm([C, H, W])` is told what cnnc's layernorm is, and the layer nearest
/// to PyTorch's; `layernorm(64)` the inferred size.
#[test]
fn layernorm_over_the_whole_sample_is_pointed_at_groupnorm() {
    let h = help_for(
        "model M(input: [8, 16, 16]) { layernorm([8, 16, 16]) }",
        "cnnc::elab::argument_count",
    );
    assert!(h.contains("nearest to `groupnorm(1)`"), "{h}");
    let h = help_for(
        "model M(input: [8, 16, 16]) { layernorm(8) }",
        "cnnc::elab::argument_count",
    );
    assert!(h.starts_with("cnnc infers the number of channels"), "{h}");
}

/// A U-Net decoder whose skips are passed shallow first, its upsampling written to the skip's
/// size: the second call resamples down, which checks, and is warned at that call.
#[test]
fn an_upsampling_to_a_smaller_skip_is_warned() {
    let src = "block up(c, skip) {\n    upsample(size=[skip.h, skip.w])\n    concat { skip {} }\n    conv(c, 3, pad=1)\n}\nmodel U(input: [3, 64, 64]) {\n    conv(16, 3, pad=1) as e1\n    maxpool(2) conv(32, 3, pad=1) as e2\n    maxpool(2) conv(64, 3, pad=1)\n    up(32, e1)\n    up(16, e2)\n}\n";
    let c = cnnc::compile_source(Path::new("u.cnn"), src.into());
    let d: Vec<_> = c.diagnostics.iter().collect();
    assert_eq!(d.len(), 1, "{d:?}");
    assert_eq!(d[0].code, "cnnc::shape::upsample_shrinks");
    assert!(
        d[0].message
            .contains("64×64 down to 32×32, the size of `skip`"),
        "{}",
        d[0].message
    );
    assert!(d[0].labels.iter().any(|l| l.call), "{:?}", d[0].labels);
    // In the right order, nothing.
    let right = src.replace("up(32, e1)\n    up(16, e2)", "up(32, e2)\n    up(16, e1)");
    assert!(cnnc::compile_source(Path::new("u.cnn"), right)
        .diagnostics
        .is_empty());
}

/// ConvNeXt's block written with PyTorch's channels-last `nn.Linear`s: each linear gets the
/// 1×1 conv, and nothing after it is reported for the same mistake (the residual, the next
/// call, the pooling); `permute` is told that no permute is needed.
#[test]
fn a_linear_in_a_residual_body_is_a_per_pixel_conv() {
    let src = "block cnb(c) {\n    residual {\n        conv(c, 7, pad=3, groups=c)\n        layernorm\n        linear(4 * c) gelu\n        linear(c)\n    }\n}\nmodel M(input: [3, 64, 64]) {\n    conv(96, 4, stride=4)\n    cnb(96) cnb(96)\n    global_avgpool flatten linear(10)\n}\n";
    let c = cnnc::compile_source(Path::new("m.cnn"), src.into());
    let helps: Vec<String> = c
        .diagnostics
        .iter()
        .map(|d| format!("{}: {}", d.code, d.help.clone().unwrap_or_default()))
        .collect();
    assert_eq!(helps.len(), 2, "{helps:#?}");
    assert!(helps[0].contains("write `conv(384, 1)`"), "{}", helps[0]);
    assert!(helps[1].contains("write `conv(96, 1)`"), "{}", helps[1]);
    let fixed = src
        .replace("linear(4 * c) gelu", "conv(4 * c, 1) gelu")
        .replace("linear(c)\n", "conv(c, 1)\n");
    assert!(cnnc::compile_source(Path::new("m.cnn"), fixed)
        .diagnostics
        .is_empty());
    // Outside a residual: flatten first, or the 1×1 conv.
    let h = help_for(
        "model M(input: [8, 4, 4]) { linear(10) }",
        "cnnc::shape::rank",
    );
    assert!(
        h.starts_with("insert `flatten` before this `linear`"),
        "{h}"
    );
    assert!(h.contains("`conv(10, 1)`"), "{h}");
    let h = help_for(
        "model M(input: [8, 4, 4]) { permute(0, 2, 3, 1) }",
        "cnnc::elab::unknown_layer",
    );
    assert!(h.contains("need no permute"), "{h}");
}

/// After a failed `use`, the calls of a block it may have defined are one error per name and
/// model, the other calls labelled on it (the first model's, the second's), and `--model`
/// still picks each model's own.
#[test]
fn calls_after_a_failed_use_are_one_error_per_name() {
    let dir = tempfile::tempdir().unwrap();
    let main = dir.path().join("main.cnn");
    std::fs::write(
        &main,
        "use \"missing.cnn\"\nmodel M(input: [3, 8, 8]) {\n    cbr(16) cbr(16)\n    repeat 2 { cbr(32) }\n    other(4)\n}\nmodel N(input: [3, 8, 8]) { cbr(8) cbr(8) }\n",
    )
    .unwrap();
    let c = cnnc::compile_file(&main).unwrap();
    let unknown: Vec<_> = c
        .diagnostics
        .iter()
        .filter(|d| d.code == "cnnc::elab::unknown_layer")
        .collect();
    let summary: Vec<(String, usize)> = unknown
        .iter()
        .map(|d| {
            (
                d.message.clone(),
                d.labels
                    .iter()
                    .filter(|l| l.text == "also used here")
                    .count(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("unknown layer `cbr`".to_string(), 2),
            ("unknown layer `other`".to_string(), 0),
            ("unknown layer `cbr`".to_string(), 1),
        ]
    );
    for (model, says) in [("M", "`other`"), ("N", "`cbr`")] {
        let o = std::process::Command::new(env!("CARGO_BIN_EXE_cnnc"))
            .args(["summary", main.to_str().unwrap(), "--model", model])
            .env("NO_COLOR", "1")
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{err}");
        assert!(err.contains(says), "{model}: {err}");
    }
}

/// PyTorch's name of a layer's own argument (`padding=1`) is an error, and checking goes on
/// with it as meant: the mistakes after it are found in the same run, and none that the
/// argument, read as meant, avoids.
#[test]
fn a_pytorch_argument_name_does_not_hide_later_mistakes() {
    let codes = |src: &str| -> Vec<&'static str> {
        let c = cnnc::compile_source(Path::new("m.cnn"), src.to_string());
        c.diagnostics.iter().map(|d| d.code).collect()
    };
    let src = "model M(input: [3, 64, 64]) {\n    conv(16, 3, padding=1) relu\n    conv(32, 3, pad=1, groups=5)\n    maxpool(2) : [32, 16, 16]\n    flatten linear(10)\n}\n";
    assert_eq!(
        codes(src),
        [
            "cnnc::elab::unknown_argument",
            "cnnc::shape::groups",
            "cnnc::shape::assertion_failed"
        ]
    );
    // Given twice, in both spellings: the one error.
    let twice = "model M(input: [3, 8, 8]) { conv(4, 3, pad=1, padding=1) }\n";
    assert_eq!(codes(twice), ["cnnc::elab::unknown_argument"]);
    // Read as `pad=1`, the size is kept: nothing else to report.
    let only = "model M(input: [3, 8, 8]) { conv(4, 3, padding=1) : [4, 8, 8] }\n";
    assert_eq!(codes(only), ["cnnc::elab::unknown_argument"]);
}

/// ASPP's image branch resized with `upsample(size=[in.h, in.w])`: `in` is the pooled tensor
/// there; the help says so, and its fix (a block parameter defaulting to the input's size)
/// checks.
#[test]
fn in_size_in_a_branch_is_the_branchs_own() {
    let src = "block aspp(c) {\n    concat {\n        conv(c, 1)\n        { global_avgpool conv(c, 1) upsample(size=[in.h, in.w]) }\n    }\n}\nmodel M(input: [32, 16, 16]) { aspp(8) }\n";
    let h = help_for(src, "cnnc::shape::concat_mismatch");
    assert!(
        h.contains(
            "read the tensor coming into the upsampling, 1×1 there, not the concat's input, 16×16"
        ),
        "{h}"
    );
    assert!(h.contains("`block aspp(…, h=in.h, w=in.w)`"), "{h}");
    let fixed = src
        .replace("block aspp(c)", "block aspp(c, h=in.h, w=in.w)")
        .replace("size=[in.h, in.w]", "size=[h, w]");
    assert!(cnnc::compile_source(Path::new("a.cnn"), fixed)
        .diagnostics
        .is_empty());
    // In a model's body: a name.
    let flat = "model M(input: [32, 16, 16]) {\n    conv(32, 1)\n    concat {\n        conv(8, 1)\n        { global_avgpool conv(8, 1) upsample(size=[in.h, in.w]) }\n    }\n}\n";
    let h = help_for(flat, "cnnc::shape::concat_mismatch");
    assert!(h.ends_with("and write `upsample(size=[x.h, x.w])`"), "{h}");
    let fixed = flat
        .replace("conv(32, 1)\n", "conv(32, 1) as x\n")
        .replace("size=[in.h, in.w]", "size=[x.h, x.w]");
    assert!(cnnc::compile_source(Path::new("a.cnn"), fixed)
        .diagnostics
        .is_empty());
}

/// An SE block's `c / r` that floors to 0 at a small width: the values and `max(1, …)`.
#[test]
fn a_division_that_floors_to_zero_gives_its_values() {
    let h = help_for(
        "block se(c=in.c, r=16) {\n    gate { global_avgpool conv(c / r, 1) relu conv(c, 1) sigmoid }\n}\nmodel M(input: [8, 4, 4]) { se }\n",
        "cnnc::elab::argument_value",
    );
    assert!(
        h.starts_with("`/` is floor division: `c / r` is 8 / 16 = 0 here"),
        "{h}"
    );
    assert!(h.contains("`max(1, c / r)`"), "{h}");
}

/// The block-parameter fix of an `in.h` read in a branch is offered only where the concat is
/// the block's first statement (its input is the block's); after a layer, a name.
#[test]
fn in_size_help_offers_a_default_only_for_the_blocks_input() {
    let src = "block aspp(c) {\n    conv(32, 3, stride=2, pad=1)\n    concat {\n        conv(c, 1)\n        { global_avgpool conv(c, 1) upsample(size=[in.h, in.w]) }\n    }\n}\nmodel M(input: [16, 32, 32]) { aspp(8) }\n";
    let h = help_for(src, "cnnc::shape::concat_mismatch");
    assert!(!h.contains("h=in.h"), "{h}");
    assert!(h.ends_with("and write `upsample(size=[x.h, x.w])`"), "{h}");
    let fixed = src
        .replace("pad=1)\n", "pad=1) as x\n")
        .replace("size=[in.h, in.w]", "size=[x.h, x.w]");
    assert!(cnnc::compile_source(Path::new("a.cnn"), fixed)
        .diagnostics
        .is_empty());
}

/// After a residual whose body lacks padding, checking goes on with the shape the body was
/// meant to give (the identity's), so a later error has the numbers it keeps once the body is
/// fixed.
#[test]
fn checking_goes_on_with_the_shape_an_unpadded_body_was_meant_to_give() {
    let src = "model M(input: [3, 32, 32]) {\n    conv(16, 3, pad=1)\n    residual { conv(16, 7, pad=2) }\n    gate { conv(1, 7, pad=2) sigmoid }\n}\n";
    let c = cnnc::compile_source(Path::new("m.cnn"), src.into());
    let gate = c
        .diagnostics
        .iter()
        .find(|d| d.code == "cnnc::shape::gate_mismatch")
        .unwrap();
    assert_eq!(
        gate.message,
        "a gate multiplies its input [16, 32, 32] by [1, 30, 30]"
    );
    // The gate's own unpadded conv is named, as a residual body's is; its fix checks.
    assert!(
        gate.labels
            .iter()
            .any(|l| l.text == "the gate gives [1, 30, 30]: its 7×7 conv needs `pad=3`"),
        "{:?}",
        gate.labels
    );
    let fixed = src.replace(
        "residual { conv(16, 7, pad=2) }",
        "residual { conv(16, 7, pad=3) }",
    );
    let c = cnnc::compile_source(Path::new("m.cnn"), fixed.clone());
    let gate = c.diagnostics.iter().next().unwrap();
    assert_eq!(
        gate.message,
        "a gate multiplies its input [16, 32, 32] by [1, 30, 30]"
    );
    let fixed = fixed.replace("gate { conv(1, 7, pad=2)", "gate { conv(1, 7, pad=3)");
    assert!(cnnc::compile_source(Path::new("m.cnn"), fixed)
        .diagnostics
        .is_empty());
}

/// In a block called at several sizes, the symmetric padding the help offers for an odd
/// kernel gives Keras's ⌈n / stride⌉ at every call.
#[test]
fn strided_same_padding_in_a_block_fits_every_call() {
    let c = cnnc::compile_source(
        Path::new("s.cnn"),
        "model N(input: [4, 18, 18]) { conv(8, 3, stride=2, pad=same) }\n".into(),
    );
    let help = c.diagnostics.iter().find_map(|d| d.help.clone()).unwrap();
    assert!(
        help.contains("`pad=1` (both sides alike") && help.contains("at every input size"),
        "{help}"
    );
    let fixed = "block down(c) { conv(c, 3, stride=2, pad=1) }\n\
                 model N(input: [4, 18, 18]) { down(8) : [8, 9, 9] down(8) : [8, 5, 5] down(8) : [8, 3, 3] }\n";
    let c = cnnc::compile_source(Path::new("s.cnn"), fixed.into());
    assert!(c.diagnostics.is_empty(), "{:?}", c.diagnostics);
    // An even kernel's symmetric padding fits some sizes only: not said to fit all.
    let c = cnnc::compile_source(
        Path::new("s.cnn"),
        "model N(input: [4, 8, 8]) { conv(8, 4, stride=2, pad=same) }\n".into(),
    );
    let help = c.diagnostics.iter().find_map(|d| d.help.clone()).unwrap();
    assert!(!help.contains("at every input size"), "{help}");
}

/// `pad=same` with a stride gets the padding of Keras's and TensorFlow's `padding='same'` on
/// the layer's input (⌈n / stride⌉ out, the odd pixel at the bottom and right), and what it
/// writes gives that size, even kernels and odd sizes included.
#[test]
fn strided_same_padding_is_given_as_keras_pads_it() {
    for (kernel, side) in [
        (4u64, 7u64),
        (4, 8),
        (3, 8),
        (3, 33),
        (2, 33),
        (5, 10),
        (1, 9),
    ] {
        let m = |conv: &str| format!("model N(input: [4, {side}, {side}]) {{ {conv} }}\n");
        let c = cnnc::compile_source(
            std::path::Path::new("s.cnn"),
            m(&format!("conv(8, {kernel}, stride=2, pad=same)")),
        );
        let help = c
            .diagnostics
            .iter()
            .find(|d| d.code == "cnnc::elab::argument_value")
            .and_then(|d| d.help.clone())
            .unwrap_or_else(|| panic!("{kernel}, {side}: {:?}", c.diagnostics));
        let out = side.div_ceil(2);
        assert!(help.contains(&format!("which gives {out}×{out}")), "{help}");
        let pad = help
            .split("`pad=")
            .nth(1)
            .and_then(|rest| rest.split('`').next())
            .unwrap_or_else(|| panic!("{help}"));
        if pad.matches(',').count() == 3 {
            assert!(
                help.contains(&format!(
                    "`pad={pad}` ([top, bottom, left, right]), which gives"
                )),
                "{help}"
            );
        }
        let fixed = m(&format!(
            "conv(8, {kernel}, stride=2, pad={pad}) : [8, {out}, {out}]"
        ));
        let c = cnnc::compile_source(std::path::Path::new("s.cnn"), fixed.clone());
        assert!(c.diagnostics.is_empty(), "{fixed}: {:?}", c.diagnostics);
    }
}

/// Shape assertions written channels-last ([H, W, C], Keras's and TensorFlow's order) are
/// said to be so, each with its [C, H, W], and checking goes on from the real shape: one
/// error per assertion, none from a shape that was never the model's. `[None, …]` with the
/// batch is told to leave the batch out.
#[test]
fn channels_last_shape_assertions_are_named_and_do_not_cascade() {
    let src = "model K(input: [1, 28, 28]) {\n    conv(32, 3, pad=1) relu : [28, 28, 32]\n    \
               maxpool(2) : [14, 14, 32]\n    conv(64, 3) relu : [12, 12, 64]\n}\n";
    let c = cnnc::compile_source(std::path::Path::new("k.cnn"), src.to_string());
    let failed: Vec<_> = c
        .diagnostics
        .iter()
        .filter(|d| d.code == "cnnc::shape::assertion_failed")
        .collect();
    assert_eq!(failed.len(), 3, "{:?}", c.diagnostics);
    for (d, fix) in failed
        .iter()
        .zip(["[32, 28, 28]", "[32, 14, 14]", "[64, 12, 12]"])
    {
        let help = d.help.as_deref().unwrap_or_default();
        assert!(
            help.contains("channels-last, [H, W, C]") && help.contains(&format!("`: {fix}`")),
            "{help}"
        );
        assert!(!d.message.contains("earlier failed"), "{}", d.message);
    }
    // A shape channels-first, its sizes off, keeps the general help.
    let c = cnnc::compile_source(
        std::path::Path::new("k.cnn"),
        "model K(input: [1, 8, 8]) { conv(4, 3) : [4, 8, 8] }\n".to_string(),
    );
    let help = c.diagnostics.iter().find_map(|d| d.help.clone()).unwrap();
    assert!(!help.contains("channels-last"), "{help}");
    let c = cnnc::compile_source(
        std::path::Path::new("k.cnn"),
        "model K(input: [1, 8, 8]) { conv(4, 3, pad=1) : [-1, 4, 8, 8] }\n".to_string(),
    );
    let help = c.diagnostics.iter().find_map(|d| d.help.clone()).unwrap();
    assert!(help.contains("write `: [4, 8, 8]`"), "{help}");
    let c = cnnc::compile_source(
        std::path::Path::new("k.cnn"),
        "model K(input: [1, 8, 8]) { conv(4, 3, pad=1) : [None, 4, 8, 8] }\n".to_string(),
    );
    let help = c.diagnostics.iter().find_map(|d| d.help.clone()).unwrap();
    assert!(
        help.contains("the batch dimension is left out of shapes: write `: [4, 8, 8]`"),
        "{help}"
    );
}

/// A failed assertion after a block call, repeat or `if` that made no layer (a repeat of no
/// iteration, a defaulted count of 0) says that the input was passed on; one after layers
/// that were made keeps the plain help.
#[test]
fn an_assertion_after_a_statement_that_made_nothing_says_so() {
    let help = |src: &str| help_for(src, "cnnc::shape::assertion_failed");
    let h = help(
        "block stage(c, n=2) { repeat n { conv(c, 3, pad=1) relu } }\n\
         model M(input: [3, 32, 32]) { stage(16, 0) : [16, 32, 32] }\n",
    );
    assert!(
        h.starts_with("the call of `stage` makes no layer with these arguments")
            && h.contains("`: [3, 32, 32]`"),
        "{h}"
    );
    let h = help("model M(input: [3, 8, 8]) { repeat 0 { conv(4, 3, pad=1) } : [4, 8, 8] }\n");
    assert!(h.starts_with("the repeat runs no iteration"), "{h}");
    let h = help("model M(input: [3, 8, 8]) { if in.c == 4 { conv(4, 1) } : [4, 8, 8] }\n");
    assert!(h.starts_with("the `if` takes no branch"), "{h}");
    let h = help(
        "block stage(c, n=2) { repeat n { conv(c, 3, pad=1) relu } }\n\
         model M(input: [3, 32, 32]) { stage(16) : [16, 30, 30] }\n",
    );
    assert!(!h.contains("makes no layer"), "{h}");
}

/// A model with two heads, the second meant as an output: `return (main, aux)`, `main aux`
/// (the one dropped) and `output aux {}` after `as aux` each point at `output NAME { … }`,
/// and the forms the helps write check clean with two outputs.
#[test]
fn a_second_head_is_pointed_at_named_outputs() {
    let m = |tail: &str| {
        format!(
            "model M(input: [1, 28, 28]) {{\n    conv(8, 3, pad=1) relu as feat\n    \
             flatten linear(10) as aux\n    feat flatten linear(10) as main\n    {tail}\n}}\n"
        )
    };
    let help = |src: String, code: &str| help_for(&src, code);
    let h = help(m("return (main, aux)"), "cnnc::elab::unknown_layer");
    assert!(
        h.contains("every other output is an `output NAME { … }`"),
        "{h}"
    );
    let h = help(m("main aux"), "cnnc::elab::dropped_tensor");
    assert!(h.contains("a second output of the model"), "{h}");
    let h = help(m("output aux {}"), "cnnc::elab::duplicate_definition");
    assert!(h.contains("`output aux_out { aux }`"), "{h}");
    let c = cnnc::compile_source(Path::new("o.cnn"), m("output aux_out { aux }"));
    assert!(c.diagnostics.is_empty(), "{:?}", c.diagnostics);
    assert_eq!(c.model(None).unwrap().graph.named_outputs.len(), 1);
}

/// torchvision's `_make_layer` strides, `[stride] + [1] * (blocks - 1)`: lists neither join
/// nor repeat, and the help's indexed list checks clean and downsamples once.
#[test]
fn list_arithmetic_points_at_an_indexed_list() {
    let src = "block layer(c, blocks, stride) {\n    repeat s in [stride] + [1] * (blocks - 1) { \
               conv(c, 3, stride=s, pad=1) }\n}\nmodel K(input: [8, 8, 8]) { layer(16, 2, 2) }\n";
    let c = cnnc::compile_source(Path::new("l.cnn"), src.to_string());
    let h = c
        .diagnostics
        .iter()
        .find(|d| d.code == "cnnc::elab::type_error")
        .and_then(|d| d.help.clone())
        .unwrap_or_else(|| panic!("{:?}", c.diagnostics));
    let fix = "repeat i in 0..blocks { conv(c, 3, stride=[stride, 1][min(i, 1)], pad=1) }";
    assert!(h.contains(fix), "{h}");
    let fixed = format!(
        "block layer(c, blocks, stride) {{ {fix} }}\nmodel K(input: [8, 8, 8]) {{ layer(16, 3, \
         2) : [16, 4, 4] }}\n"
    );
    let c = cnnc::compile_source(Path::new("l.cnn"), fixed);
    assert!(c.diagnostics.is_empty(), "{:?}", c.diagnostics);
}

/// Keras habits, second round: a quoted activation is not told to drop only its quotes;
/// `model.summary()` in a body names the commands; a channels-last assertion whose sizes are
/// off too is named so and not checked on from; `relu(6)` is `relu6`.
#[test]
fn keras_habits_second_round() {
    let m = |body: &str| format!("model M(input: [1, 28, 28]) {{\n    {body}\n}}\n");
    let first_help = |src: String| -> String {
        let c = cnnc::compile_source(Path::new("k.cnn"), src.clone());
        c.diagnostics
            .iter()
            .find_map(|d| d.help.clone())
            .unwrap_or_else(|| panic!("{src}: {:?}", c.diagnostics))
    };
    let h = first_help(m("conv(8, 3, activation='relu')"));
    assert!(
        h.contains("cnnc has no activation argument") && !h.contains("without quotes: `relu`"),
        "{h}"
    );
    let h = first_help(m("model.summary()"));
    assert!(h.contains("`cnnc summary FILE`"), "{h}");
    let src = m("conv(32, 3) relu : [28, 28, 32]\n    maxpool(2) : [13, 13, 32]\n    conv(64, 3) relu : [11, 11, 64]");
    let c = cnnc::compile_source(Path::new("k.cnn"), src);
    let failed: Vec<_> = c
        .diagnostics
        .iter()
        .filter(|d| d.code == "cnnc::shape::assertion_failed")
        .collect();
    assert_eq!(failed.len(), 3, "{:?}", c.diagnostics);
    assert!(failed[0]
        .help
        .as_deref()
        .unwrap()
        .contains("reads as a shape channels-last"));
    assert!(failed.iter().all(|d| !d.message.contains("earlier failed")));
    assert!(c.diagnostics.warning_count() == 0, "{:?}", c.diagnostics);
    // Keras's model object and input at the top level, a model of two inputs.
    for (src, says) in [
        (
            "model = keras.Sequential([\n    layers.Dense(10),\n])\n",
            "a network is a model",
        ),
        (
            "inputs = keras.Input(shape=(28, 28, 1))\n",
            "`model M(input: [1, 28, 28]) { … }`",
        ),
        (
            "model M(img: [3, 32, 32], meta: [10]) { relu }\n",
            "a model takes one input",
        ),
    ] {
        let h = first_help(src.to_string());
        assert!(h.contains(says), "{src}: {h}");
    }
    // An argument to remove that changes no shape hides none of the layer's other mistakes.
    let c = cnnc::compile_source(
        Path::new("k.cnn"),
        m("conv(64, 3, pad=same, stride=2, activation=relu, kernel_initializer=he_normal)"),
    );
    let codes: Vec<_> = c.diagnostics.iter().map(|d| d.code).collect();
    assert_eq!(
        codes,
        [
            "cnnc::elab::unknown_argument",
            "cnnc::elab::unknown_argument",
            "cnnc::elab::argument_value"
        ],
        "{:?}",
        c.diagnostics
    );
    let h = first_help(m("relu(6)"));
    assert!(h.contains("is cnnc's `relu6`"), "{h}");
    let h = first_help(m(
        "Conv2D(64, (3, 3), padding='same', strides=(2, 2), activation='relu')",
    ));
    assert!(
        h.contains("this line in cnnc is `conv(64, 3, stride=2, pad=same) relu`"),
        "{h}"
    );
}

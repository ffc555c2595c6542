//! Hostile inputs and outputs through the real binary: unwritable outputs leave nothing
//! behind, huge programs end in a diagnostic rather than a hang or a memory blow-up, and
//! every documented exit code (README.md, "Exit codes") comes from a real invocation.
//! (tests/cli.rs covers missing, non-UTF-8, oversized and empty files, deep nesting, 1,000
//! nested block calls and overflow.)

mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A hang guard, not a timing assertion: a run that takes this long is stuck.
const HANG: Duration = Duration::from_secs(120);

/// Runs `cnnc` with `args` (and extra environment), killing it after [`HANG`].
fn cnnc_env(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cnnc"));
    cmd.args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let start = Instant::now();
    // Drain the pipes on threads so a chatty child cannot block on a full pipe.
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let out_t = std::thread::spawn(move || {
        let mut b = Vec::new();
        std::io::Read::read_to_end(&mut out, &mut b).unwrap();
        b
    });
    let err_t = std::thread::spawn(move || {
        let mut b = Vec::new();
        std::io::Read::read_to_end(&mut err, &mut b).unwrap();
        b
    });
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if start.elapsed() > HANG {
            child.kill().unwrap();
            panic!("cnnc {args:?} ran for more than {HANG:?}: it hangs");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output {
        status,
        stdout: out_t.join().unwrap(),
        stderr: err_t.join().unwrap(),
    }
}

fn cnnc(args: &[&str]) -> Output {
    cnnc_env(args, &[])
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

fn listing(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

fn assert_check_fails_with(text: &str, code: &str) -> Output {
    let dir = tempfile::tempdir().unwrap();
    let f = write(dir.path(), "m.cnn", text);
    let o = cnnc(&["check", &f]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains(code), "expected {code}: {}", stderr(&o));
    o
}

// ---- outputs that cannot be written -----------------------------------------------------

#[test]
fn export_to_a_missing_folder_exits_2_and_writes_nothing() {
    let o = cnnc(&[
        "export",
        "models/lenet.cnn",
        "-o",
        "/nonexistent/dir/x.onnx",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("/nonexistent/dir/x.onnx"),
        "{}",
        stderr(&o)
    );
    assert!(!Path::new("/nonexistent").exists());
}

#[test]
fn export_under_a_file_exits_2_and_leaves_the_folder_as_it_was() {
    // `notes.txt/x.onnx`: the parent is a file (unwritable even for root).
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "notes.txt", "not a folder");
    let before = listing(dir.path());
    let out = dir.path().join("notes.txt/x.onnx");
    let o = cnnc(&["export", "models/lenet.cnn", "-o", out.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert_eq!(listing(dir.path()), before);
}

#[test]
fn export_onto_a_folder_exits_2_and_leaves_no_temporary_file() {
    // The temporary file is created beside the target; the final rename fails.
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("x.onnx")).unwrap();
    let before = listing(dir.path());
    let out = dir.path().join("x.onnx");
    let o = cnnc(&["export", "models/lenet.cnn", "-o", out.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert_eq!(
        listing(dir.path()),
        before,
        "a temporary file was left behind"
    );
    assert!(listing(&out).is_empty());
}

#[test]
fn export_into_a_read_only_folder_exits_2_and_writes_nothing() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let ro = dir.path().join("ro");
    std::fs::create_dir(&ro).unwrap();
    std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o555)).unwrap();
    // Root ignores permissions: then there is nothing to test.
    if std::fs::write(ro.join("probe"), b"").is_ok() {
        std::fs::remove_file(ro.join("probe")).unwrap();
        eprintln!("skipped: this user can write into a 0o555 folder (root)");
        return;
    }
    let out = ro.join("x.onnx");
    let o = cnnc(&["export", "models/lenet.cnn", "-o", out.to_str().unwrap()]);
    std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o755)).unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(listing(&ro).is_empty(), "{:?}", listing(&ro));
}

// ---- programs that expand without bound -------------------------------------------------

#[test]
fn a_huge_repeat_count_is_a_diagnostic() {
    assert_check_fails_with(
        "model M(input: [4]) { repeat 9223372036854775807 { relu } }",
        "cnnc::elab::too_large",
    );
}

/// Lists built from lists double at each of a chain of blocks: 40 blocks would claim 2^40
/// values from a few lines. The list that passes the limit is the error, at once.
#[test]
fn lists_that_double_through_blocks_stop_at_the_value_limit() {
    let mut text = String::new();
    for i in 0..40 {
        text.push_str(&format!("block d{i}(x) {{ d{}([x, x]) }}\n", i + 1));
    }
    text.push_str("block d40(x) { repeat w in x { relu } }\nmodel M(input: [4]) { d0(1) }\n");
    let o = assert_check_fails_with(&text, "cnnc::elab::too_large");
    assert!(
        stderr(&o).contains("this list would hold more than 10000 values"),
        "{}",
        stderr(&o)
    );
}

/// A long repeat whose body gives the same errors in every iteration while its tensor stays
/// known (a gate keeps its input's shape): after 64 iterations that teach nothing new the
/// rest are skipped, with what follows (272,685 iterations took 30 s before). A short
/// repeat is checked in full, the assertion after it included.
#[test]
fn a_long_repeat_of_the_same_errors_stops_early() {
    let model = |n: u32| {
        format!(
            "model M(input: [7, 23, 23]) {{\n    repeat {n} {{\n        gate {{ Conv2d conv(23, 1, \
             bias=1) }}\n    }} : [1]\n}}\n"
        )
    };
    let codes = |n: u32| -> Vec<&'static str> {
        let c = cnnc::compile_source(Path::new("m.cnn"), model(n));
        c.diagnostics.iter().map(|d| d.code).collect()
    };
    let errors = ["cnnc::elab::unknown_layer", "cnnc::elab::argument_type"];
    let long = codes(272_685);
    assert_eq!(long, errors, "{long:?}");
    let short = codes(20);
    assert_eq!(
        short,
        [errors[0], errors[1], "cnnc::shape::assertion_failed"],
        "{short:?}"
    );
    // A tensor named in a skipped iteration is unknown after the repeat, not missing.
    let named_late = "model M(input: [8, 16, 16]) {\n    repeat i in 0..100 {\n        gate { \
                      conv(in.c, 1) sigmod }\n        if i == 90 { conv(8, 1) as late }\n    }\n    \
                      concat { {} late }\n    flatten linear(10)\n}\n";
    let c = cnnc::compile_source(Path::new("m.cnn"), named_late.to_string());
    let codes: Vec<&str> = c.diagnostics.iter().map(|d| d.code).collect();
    assert_eq!(codes, ["cnnc::elab::unknown_layer"], "{codes:?}");
}

#[test]
fn nested_repeats_multiply_into_the_node_limit() {
    // 10^9 layers: stopped at 2,000,000.
    let o = assert_check_fails_with(
        "model M(input: [4]) { repeat 1000 { repeat 1000 { repeat 1000 { relu } } } }",
        "cnnc::elab::too_large",
    );
    assert!(
        stderr(&o).contains("more than 2000000 layers"),
        "{}",
        stderr(&o)
    );
    // The limit is on layers: 2,000,000 of them (and the input) pass, one more does not.
    let src = |extra: &str| {
        format!(
            "model M(input: [4]) {{ repeat 1000 {{ repeat 1999 {{ relu }} }} repeat 1000 {{ \
             relu }} {extra} }}"
        )
    };
    let c = cnnc::compile_source(std::path::Path::new("m.cnn"), src(""));
    assert!(c.diagnostics.is_empty(), "{:?}", c.diagnostics);
    let c = cnnc::compile_source(std::path::Path::new("m.cnn"), src("relu"));
    let codes: Vec<&str> = c.diagnostics.iter().map(|d| d.code).collect();
    assert_eq!(codes, ["cnnc::elab::too_large"]);
}

#[test]
fn nested_repeats_that_add_no_layer_end_by_the_step_budget() {
    // Never meets the node limit: 10^18 iterations without the step budget.
    for body in ["", "if false { relu }", "repeat 0 { relu }"] {
        let text = format!(
            "model M(input: [4]) {{ relu repeat 1000000 {{ repeat 1000000 {{ repeat 1000000 {{ {body} }} }} }} }}"
        );
        let o = assert_check_fails_with(&text, "cnnc::elab::too_large");
        assert!(stderr(&o).contains("elaboration steps"), "{}", stderr(&o));
    }
}

/// Blocks that each call the next twice in a concat, 98 deep: 2^98 layers, stopped by the
/// node limit, but only after 2,000,000 names of a kilobyte each (`b0_1.concat1.branch1.
/// b1_1.…`): 9 GB, or an abort where memory is limited. The names' budget stops it first.
#[test]
fn blocks_that_double_the_layers_stop_at_the_names_budget() {
    let mut text = String::new();
    for i in 0..98 {
        text.push_str(&format!(
            "block b{i}() {{ concat {{ {{ b{}() }} {{ b{}() }} }} }}\n",
            i + 1,
            i + 1
        ));
    }
    text.push_str("block b98() { conv(1, 1) }\nmodel M(input: [3, 8, 8]) { b0() }\n");
    let o = assert_check_fails_with(&text, "cnnc::elab::too_large");
    let err = stderr(&o);
    assert!(
        err.contains("the model's layer names take more than 128.0 MiB"),
        "{err}"
    );
    assert!(err.contains("calls nested 98 deep"), "{err}");
    // Names of ~2 KB at depth 98: the budget holds tens of thousands of layers, not millions.
    let layers: u64 = err
        .split("MiB (")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no layer count in: {err}"));
    assert!((10_000..200_000).contains(&layers), "{layers}: {err}");
}

/// A list of 9,999 values read at each of 20,000 calls: 20,000 statements, well within the
/// step budget, but 400 million values copied (a 10,000-value list at 2,000,000 calls took
/// four minutes). The evaluation budget stops it; half as many calls pass.
#[test]
fn a_long_list_read_at_every_call_stops_at_the_evaluation_budget() {
    let ones = vec!["1"; 9999].join(", ");
    let model = |calls: u32| {
        format!(
            "block f(l) {{ if l[0] == 2 {{ relu }} }}\n\
             block g(xs) {{ repeat {calls} {{ f(xs) }} relu }}\n\
             model M(input: [3, 8, 8]) {{ g([{ones}]) }}\n"
        )
    };
    let o = assert_check_fails_with(&model(20_000), "cnnc::elab::too_large");
    assert!(
        stderr(&o).contains("the model's expressions take more than 268435456 evaluation steps"),
        "{}",
        stderr(&o)
    );
    let c = cnnc::compile_source(std::path::Path::new("m.cnn"), model(10_000));
    assert!(c.diagnostics.is_empty(), "{:?}", c.diagnostics);
}

/// Floor division's remainder, as in Python: `i64::MIN % -1` is 0 (Rust's overflows), and
/// a float's takes the divisor's sign (`5.0 % -3.0` is -1.0, not 2.0).
#[test]
fn remainders_follow_python_at_the_edges() {
    let text = "model M(input: [3, 8, 8]) {
        conv((-9223372036854775807 - 1) % -1 + 4, 1)
        if 5.0 % -3.0 == -1.0 and -5.0 % 3.0 == 1.0 and 7 % -3 == -2 and -7 % 3 == 2 {
            conv(7, 1)
        }
    }";
    let c = cnnc::compile_source(std::path::Path::new("m.cnn"), text.to_string());
    assert!(c.diagnostics.is_empty(), "{:?}", c.diagnostics);
    assert_eq!(c.models[0].output_shape().0, vec![7, 8, 8]);
}

#[test]
fn an_error_in_nested_repeats_is_reported_once() {
    let o = assert_check_fails_with(
        "model M(input: [4]) { repeat 1000000 { repeat 1000000 { relu_ } } }",
        "cnnc::elab::unknown_layer",
    );
    assert!(
        stderr(&o).contains("1 error(s), 0 warning(s)"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn a_mistake_whose_message_changes_in_a_repeat_is_reported_once() {
    // Each iteration's assertion fails with another shape, at the same place.
    let o = assert_check_fails_with(
        "model M(input: [4]) { repeat 100000 { linear(in.f + 1) : [1] } }",
        "cnnc::shape::assertion_failed",
    );
    assert!(
        stderr(&o).contains("1 error(s), 0 warning(s)"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn distinct_errors_stop_after_a_thousand() {
    // 1,200 assertions that fail, each at its own place.
    let body = "linear(5) : [1]\n".repeat(1200);
    let o = assert_check_fails_with(
        &format!("model M(input: [4]) {{\n{body}}}"),
        "cnnc::elab::too_many_errors",
    );
    assert!(
        stderr(&o).contains("1001 error(s), 0 warning(s)"),
        "{}",
        stderr(&o)
    );
}

/// The statements after elaboration stopped, and blocks no model calls, are checked for
/// names alone (dead code): their errors count toward the same 1,000.
#[test]
fn dead_code_errors_count_toward_the_limit_too() {
    let body = "conv(4, 3, padding=1)\n".repeat(2500);
    let o = assert_check_fails_with(
        &format!("model M(input: [4, 8, 8]) {{\n{body}}}"),
        "cnnc::elab::too_many_errors",
    );
    assert!(
        stderr(&o).contains("1001 error(s), 0 warning(s)"),
        "{}",
        stderr(&o)
    );
    let blocks: String = (0..1500)
        .map(|i| format!("block b{i}() {{ conv(4, 3, padding=1) }}\n"))
        .collect();
    let o = assert_check_fails_with(
        &format!("{blocks}model M(input: [4, 8, 8]) {{ relu }}\n"),
        "cnnc::elab::too_many_errors",
    );
    assert!(
        stderr(&o).contains("1001 error(s), 0 warning(s)"),
        "{}",
        stderr(&o)
    );
    assert!(
        stderr(&o).contains("the rest, in code no model expands, are not shown"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn a_chain_of_100_000_blocks_stops_at_the_call_depth_limit() {
    let mut text = String::new();
    for i in 0..100_000 {
        text.push_str(&format!("block b{i}() {{ b{}() }}\n", i + 1));
    }
    text.push_str("block b100000() { relu }\nmodel M(input: [4]) { b0() }\n");
    let o = assert_check_fails_with(&text, "cnnc::elab::too_deep");
    assert!(
        stderr(&o).contains("1 error(s), 0 warning(s)"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn an_expression_with_100_000_operators_is_a_diagnostic() {
    // The parser folds `1+1+…` into a tree 100,000 deep; it stops at its depth limit
    // rather than letting evaluation (or dropping the tree) overflow the stack.
    for op in ["+", "*", "-", "and"] {
        let terms = vec!["1"; 100_001].join(&format!(" {op} "));
        let text = format!("model M(input: [4]) {{ linear({terms}) }}");
        assert_check_fails_with(&text, "cnnc::syntax::too_deep");
    }
}

#[test]
fn a_line_of_100_000_layers_checks() {
    // (1,000,000 also checks, in about 6 s and 600 MB in a debug build.)
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "model M(input: [4]) {{ {} }}",
        vec!["relu"; 100_000].join(" ")
    );
    let f = write(dir.path(), "line.cnn", &text);
    let o = cnnc(&["check", &f]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
}

#[test]
fn a_device_as_a_used_file_is_read_with_the_size_limit() {
    // The metadata says 0 bytes; /dev/zero never ends.
    let o = assert_check_fails_with(
        "use \"/dev/zero\"\nmodel M(input: [4]) { linear(2) }",
        "cnnc::syntax::use_not_found",
    );
    assert!(stderr(&o).contains("at most"), "{}", stderr(&o));
    let o = cnnc(&["check", "/dev/zero"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
}

/// Each layer's multiply-accumulates fit in 64 bits, five of them do not: the total
/// saturates, and the JSON says `null`. (Parameters cannot: each weight has at most 2^38 elements, below.)
#[test]
fn a_model_whose_totals_overflow_summarizes() {
    let dir = tempfile::tempdir().unwrap();
    // 2^31 outputs of 46341² taps each: about 2^62 MACs per layer.
    let f = write(
        dir.path(),
        "huge.cnn",
        "model M(input: [1, 32768, 65536]) { repeat 5 { conv(1, 46341, pad=23170) } }",
    );
    let o = cnnc(&["summary", &f, "--format", "json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    // Saturated: beyond 64 bits, which the JSON says as null rather than as a count; each
    // layer's own count is exact.
    assert!(v["macs"].is_null(), "{}", v["macs"]);
    let layer = v["layers"][0]["macs"].as_u64().expect("a layer's count");
    assert!(layer > 1 << 61 && layer < u64::MAX, "{layer}");
}

// ---- sizes past every real network ------------------------------------------------------

/// A weight of 2^62 elements: its bytes wrapped to 0, and export wrote a model whose weight
/// had no data, exit 0. Now no command gets past the shape check.
#[test]
fn a_weight_over_the_limit_is_refused_before_export() {
    let dir = tempfile::tempdir().unwrap();
    let f = write(
        dir.path(),
        "m.cnn",
        "model M(input: [2147483648]) {\n    linear(2147483648, bias=false)\n}\n",
    );
    let out = dir.path().join("m.onnx");
    let o = cnnc(&["export", &f, "-o", out.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains("cnnc::shape::tensor_too_large"), "{err}");
    assert!(
        err.contains("the weight [2147483648, 2147483648] has more than 2^62 elements"),
        "{err}"
    );
    assert!(
        err.contains("limit of 2^38 elements (1 TiB) per tensor"),
        "{err}"
    );
    assert!(err.contains("m.cnn:2:5"), "source-located: {err}");
    assert_eq!(listing(dir.path()), ["m.cnn"]);
    // Just over the limit, and just under it (2^38 elements: a check, no export).
    let over = assert_check_fails_with(
        "model M(input: [262144]) { linear(1048577, bias=false) }",
        "cnnc::shape::tensor_too_large",
    );
    assert!(
        stderr(&over).contains("274,878,169,088 elements, 1.0 TiB of float32"),
        "{}",
        stderr(&over)
    );
    let under = write(
        dir.path(),
        "under.cnn",
        "model M(input: [262144]) { linear(1048576, bias=false) }",
    );
    let o = cnnc(&["check", &under]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
}

/// Kernels whose products wrap u64 (2^62 + 1 elements: 4 bytes as float32, so export
/// streamed floats until the disk filled; exactly 2^64 − 1: 0 parameters in the summary).
#[test]
fn conv_weights_whose_size_wraps_are_refused() {
    for (text, command) in [
        (
            "model M(input: [1, 1, 1]) { conv(1, [2147418113, 2147549185], \
             pad=[1073709056, 1073709056, 1073774592, 1073774592], bias=false) }",
            "check",
        ),
        (
            "model M(input: [641, 1, 1]) { conv(1, [4294967295, 6700417], \
             pad=[2147483647, 2147483647, 3350208, 3350208]) }",
            "summary",
        ),
        (
            "model M(input: [1, 1, 1]) { convT(1, [2147418113, 2147549185], \
             pad=[1073709056, 1073709056, 1073774592, 1073774592], bias=false) }",
            "check",
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let o = cnnc(&[command, &write(dir.path(), "m.cnn", text)]);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(1), "{text}: {err}");
        assert!(err.contains("cnnc::shape::tensor_too_large"), "{err}");
        assert!(err.contains("the weight ["), "{err}");
    }
}

/// Average pooling's divisors were products of i64 window sizes that wrapped (a negative
/// rescale in the exported model); such a pooling pads its input to 2^64 values, which is
/// refused now.
#[test]
fn an_average_pooling_padded_past_the_limit_is_refused() {
    let o = assert_check_fails_with(
        "model M(input: [1, 2, 2]) { avgpool(4294967295, stride=2, pad=2147483647, ceil=true) }",
        "cnnc::shape::tensor_too_large",
    );
    assert!(
        stderr(&o).contains("the padded input [1, 4294967297, 4294967297]"),
        "{}",
        stderr(&o)
    );
}

/// A transposed conv whose output_pad reaches the stride is computed unpadded first; that
/// intermediate of (2^32 + 1)² values made ONNX Runtime fail with "Integer overflow".
#[test]
fn a_transposed_conv_whose_unpadded_result_is_too_large_is_refused() {
    let o = assert_check_fails_with(
        "model M(input: [1, 1, 1]) {\n  convT(1, 3, dilation=2147483648, output_pad=1, \
         pad=2147483648)\n}\n",
        "cnnc::shape::tensor_too_large",
    );
    let err = stderr(&o);
    assert!(
        err.contains("the unpadded result [1, 4294967297, 4294967297]"),
        "{err}"
    );
    assert!(err.contains("output_pad below the stride"), "{err}");
}

/// `pad=same` pads d·(k − 1): with a dilation and a kernel near 2^32 that is near 2^63 on a
/// side, which ONNX Runtime's arithmetic overflowed (the run was killed for memory). It is
/// held to what an explicit padding may be.
#[test]
fn same_padding_over_an_explicit_paddings_limit_is_refused() {
    let o = assert_check_fails_with(
        "model M(input: [1, 5, 5]) {\n  conv(1, [4294967295, 1], dilation=[4294967295, 1], \
         pad=same)\n}\n",
        "cnnc::elab::argument_value",
    );
    let err = stderr(&o);
    assert!(
        err.contains("`pad=same` would pad the height by 9223372030412324865 on a side"),
        "{err}"
    );
    // The largest padding an explicit `pad` can give is still fine.
    let dir = tempfile::tempdir().unwrap();
    let ok = write(
        dir.path(),
        "ok.cnn",
        "model M(input: [1, 5, 5]) { conv(1, 3, dilation=4294967295, pad=same) }",
    );
    let o = cnnc(&["check", &ok]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
}

/// Runs `cnnc args` with its address space limited to `bytes` (`ulimit -v`), so an
/// allocation beyond it fails as it would on a smaller machine.
fn cnnc_limited(args: &[&str], bytes: u64, dir: &Path) -> Output {
    use std::os::unix::process::CommandExt;
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cnnc"));
    cmd.args(args).current_dir(dir).env("NO_COLOR", "1");
    // SAFETY: setrlimit is async-signal-safe, and the closure touches nothing else.
    unsafe {
        cmd.pre_exec(move || {
            let lim = libc::rlimit {
                rlim_cur: bytes as libc::rlim_t,
                rlim_max: bytes as libc::rlim_t,
            };
            if libc::setrlimit(libc::RLIMIT_AS, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd.output().unwrap()
}

/// Adaptive pooling's averaging matrices (16 GiB here) were built without a check, and the
/// export aborted when memory ran out (exit 134); training's were too.
#[test]
fn adaptive_pooling_matrices_beyond_memory_are_an_error_not_an_abort() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "m.cnn",
        "model M(input: [1, 46340, 46340]) {\n    adaptive_avgpool([46339, 46339])\n}\n",
    );
    let o = cnnc_limited(
        &["export", "m.cnn", "-o", "m.onnx"],
        6_000_000_000,
        dir.path(),
    );
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("m.cnn:2:5: cannot export layer `adaptive_avgpool1`"),
        "{err}"
    );
    assert!(
        err.contains("its averaging matrices [46339, 46340] and [46340, 46339] need 16.0 GiB"),
        "{err}"
    );
    assert_eq!(listing(dir.path()), ["m.cnn"]);
    // Training holds them (and their transposes) in one graph ONNX Runtime loads.
    write(
        dir.path(),
        "t.cnn",
        "model M(input: [1, 46340, 46340]) {\n    adaptive_avgpool([46339, 46339])\n    \
         global_avgpool flatten linear(10)\n}\n",
    );
    let o = cnnc_limited(
        &["export", "--grad", "t.cnn", "-o", "t.onnx"],
        6_000_000_000,
        dir.path(),
    );
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("the training graph's constants"), "{err}");
    assert!(err.contains("need 32.0 GiB"), "{err}");
    assert_eq!(listing(dir.path()), ["m.cnn", "t.cnn"]);
}

/// Adaptive max pooling's gather indices (16 GiB of int64 here, within the per-sample limit
/// on the gathered tensor) were built without a check, and the export aborted.
#[test]
fn adaptive_max_pooling_indices_beyond_a_model_are_an_error_not_an_abort() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "m.cnn",
        "model M(input: [1, 1, 1073741824]) {\n    adaptive_maxpool([1, 1073741823])\n}\n",
    );
    let o = cnnc_limited(
        &["export", "m.cnn", "-o", "m.onnx"],
        6_000_000_000,
        dir.path(),
    );
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("m.cnn:2:5: cannot export layer `adaptive_maxpool1`")
            && err.contains("the indices of its gathered bins need 16.0 GiB"),
        "{err}"
    );
    assert_eq!(listing(dir.path()), ["m.cnn"]);
}

// ---- exit codes ------------------------------------------------------------------------

#[test]
fn every_documented_exit_code_has_a_real_invocation() {
    let dir = tempfile::tempdir().unwrap();
    let bad = write(dir.path(), "bad.cnn", "model M(input: [4]) { linear(0) }");
    // 0: success.
    assert_eq!(cnnc(&["check", "models/lenet.cnn"]).status.code(), Some(0));
    // 1: the input has errors.
    let o = cnnc(&["check", "--format", "json", &bad]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v[0]["severity"], "error");
    // 2: usage (unknown flag) and I/O (missing file).
    assert_eq!(cnnc(&["check", "--no-such-flag"]).status.code(), Some(2));
    assert_eq!(cnnc(&["check", "no/such.cnn"]).status.code(), Some(2));
    // 3: ONNX Runtime missing, whatever this machine has installed.
    let missing = dir.path().join("nowhere/libonnxruntime.so");
    let o = cnnc_env(
        &["doctor"],
        &[("ORT_DYLIB_PATH", missing.to_str().unwrap())],
    );
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
}

#[test]
fn weights_beyond_the_disk_are_an_error_before_anything_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("huge.cnn");
    // 10^12 parameters: 4 TB of float32, in four weights of 2^37.9 elements, each within
    // the limit of 2^38. Export streams them (no memory limit applies), so the free space is
    // what stops it, before writing.
    std::fs::write(
        &src,
        "model M(input: [500000]) { repeat 4 { linear(500000) } }\n",
    )
    .unwrap();
    let out = dir.path().join("huge.onnx");
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_cnnc"))
        .arg("export")
        .arg(&src)
        .arg("-o")
        .arg(&out)
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("huge.onnx.data") && err.contains("it needs 3.6 TiB"),
        "{err}"
    );
    assert!(err.contains(" free; free some space"), "{err}");
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        1,
        "nothing but the source"
    );
}

#[test]
fn training_weights_beyond_memory_are_an_error_not_an_abort() {
    if !Path::new("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz").exists() {
        println!("skipped: Fashion-MNIST is not installed (apt-get install dataset-fashion-mnist)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("huge.cnn");
    // 10^12 parameters: 4 TB of float32, each weight within the limit of 2^38 elements.
    std::fs::write(
        &src,
        "model M(input: [1, 28, 28]) { flatten linear(500000) repeat 4 { linear(500000) } \
         linear(10) }\n",
    )
    .unwrap();
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_cnnc"))
        .args([
            "train",
            src.to_str().unwrap(),
            "--data",
            "fashion-mnist",
            "--epochs",
            "1",
        ])
        .args(["--limit-train", "256", "--limit-test", "256"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("cannot allocate"), "{err}");
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        1,
        "nothing but the source"
    );
}

/// Ctrl-C during an export stops it with exit 130, removes its temporary file and leaves the
/// previous output as it was.
#[test]
fn ctrl_c_during_export_leaves_no_partial_file() {
    for (signal, said) in [(libc::SIGINT, "Ctrl-C"), (libc::SIGTERM, "SIGTERM")] {
        export_stopped_by(signal, said);
    }
}

/// The export [`export_stopped_by`] and [`a_killed_export_leaves_no_temporary_file`] stop:
/// started, and writing its temporary file. Returns the folder, the output (holding a
/// previous model), that model and the process.
fn an_export_writing() -> (
    tempfile::TempDir,
    std::path::PathBuf,
    Vec<u8>,
    std::process::Child,
) {
    let dir = tempfile::tempdir().unwrap();
    // 400 million parameters: 1.6 GB to write, seconds of work.
    let src = write(
        dir.path(),
        "big.cnn",
        "model Big(input: [1000]) { linear(400000) linear(1500) }\n",
    );
    let out = dir.path().join("big.onnx");
    // A previous model (an export replaces only a model).
    let previous = cnnc::runtime::tiny_model();
    std::fs::write(&out, &previous).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_cnnc"))
        .args(["export", &src, "-o", out.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until the temporary file has started to fill.
    let started = Instant::now();
    loop {
        if common::temporary_file_size(child.id(), dir.path()).is_some_and(|n| n > 0) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the export never started writing"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "the export ended early"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    (dir, out, previous, child)
}

/// What is left in an export's folder: the source and the previous model, nothing else.
fn assert_only_source_and_previous(dir: &Path, out: &Path, previous: &[u8]) {
    let mut left: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    left.sort();
    assert_eq!(
        left,
        ["big.cnn", "big.onnx"],
        "a temporary file was left behind"
    );
    assert_eq!(std::fs::read(out).unwrap(), previous);
}

fn export_stopped_by(signal: libc::c_int, said: &str) {
    let (dir, out, previous, child) = an_export_writing();
    // SAFETY: kill() with a live child's pid and a valid signal number.
    unsafe {
        libc::kill(child.id() as libc::pid_t, signal);
    }
    let o = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(130), "{err}");
    assert!(err.contains(&format!("stopped by {said}:")), "{err}");
    assert_only_source_and_previous(dir.path(), &out, &previous);
}

/// An export killed outright (SIGKILL, the out-of-memory killer), which no handler sees,
/// leaves no temporary file where the file system makes nameless ones (`O_TMPFILE`: ext4,
/// xfs, btrfs, tmpfs), and the previous model as it was.
#[test]
fn a_killed_export_leaves_no_temporary_file() {
    let probe = tempfile::tempdir().unwrap();
    if !cnnc::fsutil::TempBeside::new_in(probe.path())
        .unwrap()
        .is_anonymous()
    {
        eprintln!("skipped: this file system makes no nameless files (O_TMPFILE)");
        return;
    }
    let (dir, out, previous, mut child) = an_export_writing();
    child.kill().unwrap();
    let status = child.wait().unwrap();
    assert!(!status.success());
    assert_only_source_and_previous(dir.path(), &out, &previous);
}

/// One Ctrl-C or SIGTERM ends a command that waits on the other end of a named pipe (the
/// call is restarted after a signal, so asking the work to stop would leave it waiting):
/// opening it to write the model where no one reads, to read weights where no one writes,
/// and reading the source from a pipe whose writer is silent.
#[test]
fn one_signal_ends_a_wait_for_a_pipe() {
    use std::os::unix::process::ExitStatusExt;
    let dir = tempfile::tempdir().unwrap();
    let src = write(dir.path(), "m.cnn", "model M(input: [4]) { linear(2) }\n");
    let fifo = dir.path().join("p.fifo");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
    let fifo = fifo.to_str().unwrap();
    let out = dir.path().join("m.onnx");
    let out = out.to_str().unwrap();
    for (args, signal) in [
        (vec!["export", &src, "-o", fifo], libc::SIGINT),
        (
            vec!["export", &src, "--weights", fifo, "-o", out],
            libc::SIGTERM,
        ),
        (vec!["export", fifo, "-o", out], libc::SIGINT),
    ] {
        // The source from the pipe: a writer that opens it once cnnc does, then says
        // nothing until told (left waiting, if cnnc never opens it, until the tests end).
        let silent_writer = (args[1] == fifo).then(|| {
            let (done, wait) = std::sync::mpsc::channel::<()>();
            let fifo = fifo.to_string();
            std::thread::spawn(move || {
                let f = std::fs::OpenOptions::new().write(true).open(&fifo).unwrap();
                let _ = wait.recv();
                drop(f);
            });
            done
        });
        let mut child = Command::new(env!("CARGO_BIN_EXE_cnnc"))
            .args(&args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Wait until it waits for the pipe's other end.
        let wchan = format!("/proc/{}/wchan", child.id());
        let started = Instant::now();
        let waiting = |w: String| w == "wait_for_partner" || w.contains("pipe");
        while !waiting(std::fs::read_to_string(&wchan).unwrap_or_default()) {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "{args:?} never waited for the pipe"
            );
            assert!(child.try_wait().unwrap().is_none(), "{args:?} ended early");
            std::thread::sleep(Duration::from_millis(5));
        }
        // SAFETY: kill() with a live child's pid and a valid signal number.
        unsafe {
            libc::kill(child.id() as libc::pid_t, signal);
        }
        // Still waiting a minute later is the bug: end it, and say so.
        let stopped = Instant::now();
        while child.try_wait().unwrap().is_none() && stopped.elapsed() < Duration::from_secs(60) {
            std::thread::sleep(Duration::from_millis(5));
        }
        let _ = child.kill();
        let o = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.signal(), Some(signal), "{args:?}: {err}");
        assert!(
            err.contains("stopped while waiting for the other end of a pipe"),
            "{args:?}: {err}"
        );
        assert!(!Path::new(out).exists(), "{args:?} wrote a model");
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(left.len(), 2, "{args:?} left a file: {left:?}");
        drop(silent_writer);
    }
}

/// The list limit counts values: 10,000 numbers pass, one more does not; a nested list
/// counts as one value beside its items.
#[test]
fn a_list_of_ten_thousand_numbers_is_the_most() {
    let list = |n: usize| vec!["1"; n].join(", ");
    let ok = format!(
        "block b() {{ repeat v in [{}] {{ }} }}\nmodel M(input: [4]) {{ b() relu }}\n",
        list(10_000)
    );
    let dir = tempfile::tempdir().unwrap();
    let o = cnnc(&["check", &write(dir.path(), "ten_thousand.cnn", &ok)]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let over = format!(
        "model M(input: [4]) {{ repeat v in [[{}]] {{ relu }} }}\n",
        list(10_000)
    );
    let o = assert_check_fails_with(&over, "cnnc::elab::too_large");
    assert!(
        stderr(&o).contains("more than 10000 values"),
        "{}",
        stderr(&o)
    );
}

/// A chain of 20,000 files, each `use`ing the next, loads as one file does: no stack runs
/// out (it was reported as a file "nested too deeply to parse"), and each `use` is looked
/// up without a pass over the files loaded (it took minutes).
#[test]
fn a_chain_of_20_000_used_files_loads() {
    let dir = tempfile::tempdir().unwrap();
    const N: usize = 20_000;
    for i in 0..N {
        let next = if i + 1 < N {
            format!("use \"c{}.cnn\"\n", i + 1)
        } else {
            String::new()
        };
        std::fs::write(
            dir.path().join(format!("c{i}.cnn")),
            format!("{next}block b{i}() {{ relu }}\n"),
        )
        .unwrap();
    }
    let main = dir.path().join("main.cnn");
    std::fs::write(
        &main,
        format!(
            "use \"c0.cnn\"\nmodel M(input: [4]) {{ b{}() b0() }}\n",
            N - 1
        ),
    )
    .unwrap();
    let c = cnnc::compile_file(&main).unwrap();
    assert!(c.diagnostics.is_empty(), "{:?}", c.diagnostics);
    assert_eq!(c.sources.files().count(), N + 1);
}

// ---- memory the system refuses ----------------------------------------------------------

/// `cnnc run` of a 100 MB input under address-space limits from too little to load ONNX
/// Runtime up to enough: wherever the system refuses memory (reading the input, converting
/// it, ONNX Runtime's buffers, copying the output), the run ends in a message and exit 2 or
/// 3, never Rust's abort (exit 134, "memory allocation of N bytes failed"), and `-o` is
/// either the whole output or absent.
#[test]
fn memory_the_system_refuses_is_an_error_not_an_abort() {
    let dir = tempfile::tempdir().unwrap();
    let p = |name: &str| dir.path().join(name).to_str().unwrap().to_string();
    std::fs::write(p("r.cnn"), "model R(input: [1, 4, 4]) { relu }\n").unwrap();
    let o = cnnc(&["export", &p("r.cnn"), "--dynamic-size", "-o", &p("r.onnx")]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let side = 5000;
    let mut bytes = Vec::new();
    cnnc::runtime::npy::write_f32(&mut bytes, &[1, 1, side, side], &vec![0.25; side * side])
        .unwrap();
    std::fs::write(p("x.npy"), bytes).unwrap();
    let script = "ulimit -v \"$1\"; shift; exec \"$@\"";
    let mut outcomes = Vec::new();
    for kib in (150_000..=1_550_000).step_by(100_000) {
        let _ = std::fs::remove_file(p("y.npy"));
        let o = Command::new("sh")
            .args([
                "-c",
                script,
                "sh",
                &kib.to_string(),
                env!("CARGO_BIN_EXE_cnnc"),
            ])
            .args(["run", &p("r.onnx"), "-i", &p("x.npy"), "-o", &p("y.npy")])
            .env("NO_COLOR", "1")
            .output()
            .unwrap();
        let err = stderr(&o);
        assert!(
            matches!(o.status.code(), Some(0 | 2 | 3)),
            "ulimit -v {kib}: {:?}\n{err}",
            o.status
        );
        match o.status.code() {
            Some(0) => {
                let y = cnnc::runtime::npy::parse(&std::fs::read(p("y.npy")).unwrap()).unwrap();
                assert_eq!(y.data.len(), side * side, "ulimit -v {kib}");
            }
            _ => {
                assert!(err.contains("error: "), "ulimit -v {kib}: {err}");
                assert!(!dir.path().join("y.npy").exists(), "ulimit -v {kib}");
            }
        }
        outcomes.push(o.status.code());
    }
    // Enough memory at the top of the range: the sweep reached a run that works.
    assert_eq!(outcomes.last(), Some(&Some(0)), "{outcomes:?}");
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

//! The `cnnc` binary as a user meets it: exit codes, JSON formats, hostile inputs.

use std::path::Path;
use std::process::{Command, Output};

fn cnnc(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cnnc"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("NO_COLOR", "1")
        .output()
        .unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> String {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p.display().to_string()
}

#[test]
fn a_clean_model_checks_with_exit_0() {
    let o = cnnc(&["check", "models/lenet.cnn"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stderr(&o).contains("LeNet [1, 28, 28] → [10]"));
}

#[test]
fn several_files_are_all_checked_and_any_error_gives_exit_1() {
    let o = cnnc(&[
        "check",
        "models/lenet.cnn",
        "tests/fixtures/errors/groups.cnn",
        "tests/fixtures/errors/unknown_tensor.cnn",
    ]);
    assert_eq!(o.status.code(), Some(1));
    let e = stderr(&o);
    assert!(
        e.contains("cnnc::shape::groups") && e.contains("cnnc::elab::unknown_tensor"),
        "{e}"
    );
    assert!(e.contains("2 error(s), 0 warning(s) in 3 file(s)"), "{e}");
}

#[test]
fn a_mistake_in_a_shared_library_is_reported_once_per_check() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("sub")).unwrap();
    let lib = write(
        dir.path(),
        "lib.cnn",
        b"block unused_one(c) {\n    conv(c, 3, padd=1) relu\n}\nblock good(c) { conv(c, 3, pad=1) }\n",
    );
    let a = write(
        dir.path(),
        "a.cnn",
        b"use \"lib.cnn\"\nmodel A(input: [3, 8, 8]) { good(4) }\n",
    );
    let b = write(
        &dir.path().join("sub"),
        "b.cnn",
        b"use \"../lib.cnn\"\nmodel B(input: [3, 8, 8]) { good(5) }\n",
    );
    // Reached along two paths, and also checked itself: one report.
    for files in [[&a, &b], [&lib, &a]] {
        let o = cnnc(&["check", files[0], files[1]]);
        assert_eq!(o.status.code(), Some(1));
        let e = stderr(&o);
        assert_eq!(e.matches("has no argument `padd`").count(), 1, "{e}");
        assert!(e.contains("1 error above, in "), "{e}");
        assert!(e.contains("1 error(s), 0 warning(s) in 2 file(s)"), "{e}");
        let o = cnnc(&["check", "--format", "json", files[0], files[1]]);
        let json: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(json.as_array().unwrap().len(), 1, "{json}");
    }
    // A mistake inside a block as each file calls it is each file's own.
    std::fs::write(&lib, b"block good(c) { conv(c, 3, pad=1) linear(3) }\n").unwrap();
    let o = cnnc(&["check", &a, &b]);
    let e = stderr(&o);
    assert_eq!(e.matches("in this call of `good`").count(), 2, "{e}");
    assert!(!e.contains("not shown again"), "{e}");
}

#[test]
fn json_diagnostics_have_the_documented_fields() {
    let o = cnnc(&[
        "check",
        "--format",
        "json",
        "tests/fixtures/errors/unknown_argument.cnn",
    ]);
    assert_eq!(o.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let d = &v[0];
    assert_eq!(d["severity"], "error");
    assert_eq!(d["code"], "cnnc::elab::unknown_argument");
    assert_eq!(d["file"], "tests/fixtures/errors/unknown_argument.cnn");
    assert_eq!(d["line"], 4);
    assert_eq!(d["column"], 16);
    let text = std::fs::read_to_string("tests/fixtures/errors/unknown_argument.cnn").unwrap();
    let span = d["span"].as_array().unwrap();
    let (start, end) = (
        span[0].as_u64().unwrap() as usize,
        span[1].as_u64().unwrap() as usize,
    );
    assert_eq!(&text[start..end], "padding");
    assert!(d["help"].as_str().unwrap().contains("`pad`"));
    assert!(d["message"].as_str().unwrap().contains("padding"));
}

#[test]
fn named_outputs_are_listed_by_check_and_summary() {
    let o = cnnc(&["summary", "--format", "json", "models/googlenet_aux.cnn"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["output"], serde_json::json!([1000]));
    assert_eq!(
        v["named_outputs"],
        serde_json::json!([
            {"name": "aux1", "shape": [1000]},
            {"name": "aux2", "shape": [1000]},
        ])
    );
    // The heads' layers are counted, under their output's name.
    assert_eq!(v["params"], 13_004_888);
    let layers = v["layers"].as_array().unwrap();
    assert!(layers
        .iter()
        .any(|l| l["name"] == "aux2.aux_classifier1.linear2"));
    let o = cnnc(&["summary", "models/googlenet_aux.cnn"]);
    assert!(String::from_utf8_lossy(&o.stdout).starts_with(
        "model GoogLeNet: input [3, 224, 224] → output [1000], aux1 [1000], aux2 [1000]\n"
    ));
    let o = cnnc(&["check", "models/googlenet_aux.cnn"]);
    assert!(
        stderr(&o).contains("(GoogLeNet [3, 224, 224] → [1000], aux1 [1000], aux2 [1000])"),
        "{}",
        stderr(&o)
    );
    // `check`'s one line names the first eight, then says how many more.
    let dir = tempfile::tempdir().unwrap();
    let heads: String = (0..10)
        .map(|i| format!("  output o{i} {{ relu }}\n"))
        .collect();
    let many = write(
        dir.path(),
        "many.cnn",
        format!("model M(input: [4]) {{\n  linear(3)\n{heads}  linear(2)\n}}\n").as_bytes(),
    );
    let o = cnnc(&["check", &many]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("(M [4] → [2], o0 [3], o1 [3], o2 [3], o3 [3], o4 [3], o5 [3], o6 [3], o7 [3] and 2 more named outputs)"),
        "{}",
        stderr(&o)
    );
    // A model without named outputs has no such key.
    let o = cnnc(&["summary", "--format", "json", "models/lenet.cnn"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(v.get("named_outputs").is_none(), "{v}");
    // --aux-weight weighs a training graph's loss: alone it is refused.
    let never = Path::new(env!("CARGO_TARGET_TMPDIR")).join("aux_weight_alone.onnx");
    let o = cnnc(&[
        "export",
        "models/googlenet_aux.cnn",
        "--aux-weight",
        "0.5",
        "-o",
        never.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("add --grad or --train"),
        "{}",
        stderr(&o)
    );
    assert!(!never.exists());
}

/// `export --main-output-only` writes what PyTorch's evaluation mode computes: GoogLeNet
/// without its auxiliary classifiers has torchvision's `googlenet()` parameter count, and its
/// graph is the full export's, less the heads' nodes and initializers. The weights may be a
/// checkpoint of the whole model.
#[test]
fn export_can_leave_the_named_outputs_out() {
    use cnnc::onnx::proto::ModelProto;
    use prost::Message;
    let dir = tempfile::tempdir().unwrap();
    let export = |args: &[&str], out: &Path| -> (ModelProto, String) {
        let mut all = vec!["export"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["-o", out.to_str().unwrap()]);
        let o = cnnc(&all);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        let bytes = std::fs::read(out).unwrap();
        (ModelProto::decode(&bytes[..]).unwrap(), stderr(&o))
    };
    let model = "models/googlenet_aux.cnn";
    let (full, _) = export(&[model], &dir.path().join("full.onnx"));
    let (main, said) = export(
        &[model, "--main-output-only"],
        &dir.path().join("main.onnx"),
    );
    // torchvision.models.googlenet(aux_logits=False): 6,624,904 parameters.
    assert!(said.contains("6,624,904 parameters"), "{said}");
    let (full, main) = (full.graph.unwrap(), main.graph.unwrap());
    let names = |g: &cnnc::onnx::proto::GraphProto| -> Vec<String> {
        g.output.iter().map(|o| o.name.clone()).collect()
    };
    assert_eq!(names(&full), ["output", "aux1", "aux2"]);
    assert_eq!(names(&main), ["output"]);
    let is_head = |name: &str| name.starts_with("aux1.") || name.starts_with("aux2.");
    let full_nodes: Vec<_> = full.node.iter().filter(|n| !is_head(&n.name)).collect();
    assert!(full_nodes.len() < full.node.len());
    assert_eq!(full_nodes, main.node.iter().collect::<Vec<_>>());
    let full_inits: Vec<_> = full
        .initializer
        .iter()
        .filter(|t| !is_head(&t.name))
        .collect();
    assert_eq!(full_inits, main.initializer.iter().collect::<Vec<_>>());

    // A checkpoint of a model with a head: the head's tensors are in it, and left out.
    let m = write(
        dir.path(),
        "m.cnn",
        b"model M(input: [4]) {\n  linear(3)\n  output aux { linear(2) }\n  linear(2)\n}\n",
    );
    let text = std::fs::read_to_string(&m).unwrap();
    let compiled = cnnc::compile_source(Path::new(&m), text).models.remove(0);
    let mut tensors = std::collections::BTreeMap::new();
    let mut value = 0.0f32;
    for (name, dims) in [
        ("linear1.weight", vec![3, 4]),
        ("linear1.bias", vec![3]),
        ("aux.linear1.weight", vec![2, 3]),
        ("aux.linear1.bias", vec![2]),
        ("linear2.weight", vec![2, 3]),
        ("linear2.bias", vec![2]),
    ] {
        let n: usize = dims.iter().product();
        let data: Vec<f32> = (0..n).map(|i| value + i as f32).collect();
        value += 100.0;
        tensors.insert(format!("param.{name}"), (dims, data));
    }
    let ckpt = cnnc::train::Checkpoint {
        tensors: tensors.clone(),
        epoch: 1,
        step: 4,
        rng_seed: 0,
        model_name: compiled.name.clone(),
        source_sha256: compiled.source_hash.clone(),
        model_sha256: Some(compiled.structure_hash()),
        optimizer: serde_json::json!({}),
        test_acc: None,
        test_examples: None,
    };
    let ckpt_file = dir.path().join("c.ckpt");
    ckpt.save(&ckpt_file).unwrap();
    let (out, said) = export(
        &[
            &m,
            "--main-output-only",
            "--weights",
            ckpt_file.to_str().unwrap(),
        ],
        &dir.path().join("m.onnx"),
    );
    assert!(said.contains(" 23 parameters"), "{said}");
    let g = out.graph.unwrap();
    assert_eq!(names(&g), ["output"]);
    let written: Vec<(String, Vec<f32>)> = g
        .initializer
        .iter()
        .map(|t| {
            let values = t
                .raw_data
                .chunks(4)
                .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
                .collect();
            (t.name.clone(), values)
        })
        .collect();
    let expected: Vec<(String, Vec<f32>)> = [
        "linear1.weight",
        "linear1.bias",
        "linear2.weight",
        "linear2.bias",
    ]
    .iter()
    .map(|n| (n.to_string(), tensors[&format!("param.{n}")].1.clone()))
    .collect();
    assert_eq!(written, expected);

    // A safetensors file of the model without its head will do: the head's tensors are not
    // written, so they need not be given. A main tensor missing is still refused, and so is
    // the file for the whole model.
    let main_only: Vec<(String, Vec<usize>, Vec<u8>)> = tensors
        .iter()
        .filter(|(name, _)| !name.starts_with("param.aux."))
        .map(|(name, (dims, data))| {
            let bytes = data.iter().flat_map(|x| x.to_le_bytes()).collect();
            (name["param.".len()..].to_string(), dims.clone(), bytes)
        })
        .collect();
    let save = |file: &str, skip: &str| -> String {
        let views: Vec<_> = main_only
            .iter()
            .filter(|(name, ..)| name != skip)
            .map(|(name, dims, bytes)| {
                let v = safetensors::tensor::TensorView::new(
                    safetensors::Dtype::F32,
                    dims.clone(),
                    bytes,
                )
                .unwrap();
                (name.as_str(), v)
            })
            .collect();
        let path = dir.path().join(file);
        std::fs::write(&path, safetensors::serialize(views, None).unwrap()).unwrap();
        path.display().to_string()
    };
    let heads_left_out = save("main.safetensors", "");
    let (out, _) = export(
        &[&m, "--main-output-only", "--weights", &heads_left_out],
        &dir.path().join("m2.onnx"),
    );
    assert_eq!(out.graph.unwrap().initializer.len(), 4);
    let bias_left_out = save("no_bias.safetensors", "linear2.bias");
    for (file, flags, says) in [
        (&bias_left_out, &["--main-output-only"][..], "linear2.bias"),
        (&heads_left_out, &[][..], "aux.linear1.weight"),
    ] {
        let never = dir.path().join("never.onnx");
        let mut args = vec![
            "export",
            &m,
            "--weights",
            file,
            "-o",
            never.to_str().unwrap(),
        ];
        args.extend_from_slice(flags);
        let o = cnnc(&args);
        assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
        assert!(stderr(&o).contains(says), "{}", stderr(&o));
        assert!(!never.exists());
    }
}

#[test]
fn summary_json_has_the_documented_keys_and_totals() {
    let o = cnnc(&["summary", "--format", "json", "models/lenet.cnn"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["model"], "LeNet");
    assert_eq!(v["input"], serde_json::json!([1, 28, 28]));
    assert_eq!(v["output"], serde_json::json!([10]));
    assert_eq!(v["params"], 61706);
    let layers = v["layers"].as_array().unwrap();
    let sum: u64 = layers.iter().map(|l| l["params"].as_u64().unwrap()).sum();
    assert_eq!(sum, 61706);
    let macs: u64 = layers.iter().map(|l| l["macs"].as_u64().unwrap()).sum();
    assert_eq!(v["macs"].as_u64().unwrap(), macs);
    let conv1 = &layers[0];
    assert_eq!(conv1["name"], "conv1");
    assert_eq!(conv1["op"], "conv");
    assert_eq!(conv1["output"], serde_json::json!([6, 28, 28]));
    // 6·28·28 outputs × 1 input channel × 5×5 kernel.
    assert_eq!(conv1["macs"], 6 * 28 * 28 * 25);
    assert_eq!(v["warnings"], serde_json::json!([]));
    // Every tensor of the weights, in order, with its shape: what renaming a PyTorch
    // state_dict needs.
    let tensors = v["tensors"].as_array().unwrap();
    assert_eq!(tensors.len(), 10, "{v}");
    assert_eq!(
        tensors[0],
        serde_json::json!({"name": "conv1.weight", "shape": [6, 1, 5, 5], "trainable": true})
    );
    assert_eq!(tensors[1]["name"], "conv1.bias");
    let elements: u64 = tensors
        .iter()
        .map(|t| {
            t["shape"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d.as_u64().unwrap())
                .product::<u64>()
        })
        .sum();
    assert_eq!(elements, 61706);
    // A batch norm's running statistics are tensors of the weights, not trainable.
    let o = cnnc(&["summary", "--format", "json", "models/lenet_bn.cnn"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let stats: Vec<&str> = v["tensors"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["trainable"] == false)
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        &stats[..2],
        ["batchnorm1.running_mean", "batchnorm1.running_var"]
    );
    // A model with warnings lists them, as `check --format json` does.
    let dir = tempfile::tempdir().unwrap();
    let warned = write(
        dir.path(),
        "w.cnn",
        b"model W(input: [1, 11, 11]) { maxpool(2) avgpool(2) flatten linear(2) }\n",
    );
    let o = cnnc(&["summary", "--format", "json", &warned]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let warnings = v["warnings"].as_array().unwrap();
    assert_eq!(warnings.len(), 2, "{v}");
    assert!(warnings
        .iter()
        .all(|w| w["code"] == "cnnc::shape::unused_input" && w["severity"] == "warning"));
}

#[test]
fn summary_json_of_a_wrong_model_prints_its_diagnostics_on_stdout() {
    let o = cnnc(&[
        "summary",
        "--format",
        "json",
        "tests/fixtures/errors/assertion_failed.cnn",
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let d = v["diagnostics"].as_array().unwrap();
    assert!(!d.is_empty());
    assert!(d
        .iter()
        .all(|d| d["severity"] == "error" || d["severity"] == "warning"));
    assert!(
        d.iter()
            .any(|d| d["code"] == "cnnc::shape::assertion_failed"),
        "{v}"
    );
    // Said once: on stdout, not rendered on stderr too.
    assert!(!stderr(&o).contains("assertion failed"), "{}", stderr(&o));
    let o = cnnc(&["summary", "--format", "json", "models/alexnet.cnn"]);
    assert!(!stderr(&o).contains("unused_input"), "{}", stderr(&o));
    let o = cnnc(&["summary", "--format", "json", "no/such.cnn"]);
    assert_eq!(o.status.code(), Some(2));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["diagnostics"][0]["code"], "cnnc::io::read");
    let dir = tempfile::tempdir().unwrap();
    let two = dir.path().join("two.cnn");
    std::fs::write(
        &two,
        "model A(input: [1]) { linear(2) }\nmodel B(input: [1]) { linear(2) }\n",
    )
    .unwrap();
    let o = cnnc(&["summary", "--format", "json", two.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["diagnostics"][0]["code"], "cnnc::cli::model");
    // The same keys as every other diagnostic.
    for key in [
        "severity", "message", "file", "line", "column", "span", "labels", "help",
    ] {
        assert!(v["diagnostics"][0].get(key).is_some(), "{key} missing: {v}");
    }
}

#[test]
fn summary_text_names_scoped_layers_and_totals() {
    let o = cnnc(&["summary", "models/resnet18.cnn"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("stage2.unit1.conv1"), "{out}");
    assert!(out.contains("11,178,378"), "{out}");
}

#[test]
fn missing_file_directory_and_bad_bytes_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let o = cnnc(&["check", "no/such/file.cnn"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("no such file"), "{}", stderr(&o));
    // A link to nothing names its target, the file the user must look for.
    let link = dir.path().join("model.cnn");
    std::os::unix::fs::symlink("moved-away.cnn", &link).unwrap();
    let o = cnnc(&["check", link.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("it is a symbolic link to moved-away.cnn, which does not exist"),
        "{}",
        stderr(&o)
    );

    let d = dir.path().display().to_string();
    let o = cnnc(&["check", &d]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("directory"), "{}", stderr(&o));

    let bad = write(
        dir.path(),
        "bad.cnn",
        b"model M(input: [1, 2, 2]) {\n  relu \xff\xfe }",
    );
    let o = cnnc(&["check", &bad]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("not UTF-8 text: byte 0xFF at line 2, column 8 (offset 35)"),
        "{}",
        stderr(&o)
    );

    // UTF-16, with its byte order mark or without (then valid UTF-8, with NULs), is named
    // with the command that converts it.
    let text = "model M(input: [1, 2, 2]) { relu }\n";
    let le: Vec<u8> = text.encode_utf16().flat_map(u16::to_le_bytes).collect();
    let be: Vec<u8> = text.encode_utf16().flat_map(u16::to_be_bytes).collect();
    for (name, bytes, encoding) in [
        ("le_bom.cnn", [&[0xff, 0xfe][..], &le].concat(), "UTF-16LE"),
        ("le.cnn", le.clone(), "UTF-16LE"),
        ("be_bom.cnn", [&[0xfe, 0xff][..], &be].concat(), "UTF-16BE"),
        ("be.cnn", be.clone(), "UTF-16BE"),
    ] {
        let path = write(dir.path(), name, &bytes);
        let o = cnnc(&["check", &path]);
        assert_eq!(o.status.code(), Some(2), "{name}");
        let convert = format!(
            "`iconv -f {encoding} -t UTF-8 {path} > {}`",
            path.replace(".cnn", ".utf8.cnn")
        );
        assert!(stderr(&o).contains(&convert), "{name}: {}", stderr(&o));
    }
    // UTF-32 with its mark; UTF-16 without a mark whose first characters are not all ASCII.
    let wide: Vec<u8> = [0xff, 0xfe, 0, 0]
        .into_iter()
        .chain(text.chars().flat_map(|c| (c as u32).to_le_bytes()))
        .collect();
    let latin: Vec<u8> = format!("# é, ü\n{text}")
        .encode_utf16()
        .flat_map(u16::to_le_bytes)
        .collect();
    for (name, bytes, encoding) in [
        ("wide.cnn", wide, "UTF-32LE"),
        ("latin.cnn", latin, "UTF-16LE"),
    ] {
        let path = write(dir.path(), name, &bytes);
        let o = cnnc(&["check", &path]);
        assert_eq!(o.status.code(), Some(2), "{name}");
        assert!(
            stderr(&o).contains(&format!("the file is {encoding} text")),
            "{name}: {}",
            stderr(&o)
        );
    }
    // Text with a NUL here and there is not taken for UTF-16.
    let nul = write(dir.path(), "nul.cnn", b"model M(input: [1, 2, 2]) { \0 }");
    let o = cnnc(&["check", &nul]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(!stderr(&o).contains("UTF-16"), "{}", stderr(&o));

    let big = write(dir.path(), "big.cnn", &vec![b'#'; 17 * 1024 * 1024]);
    let o = cnnc(&["check", &big]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("at most"), "{}", stderr(&o));
}

/// An empty file (or one of comments alone) checks with a warning that it defines nothing,
/// which `--deny-warnings` makes fail; a file of blocks alone (a library to `use`) is no
/// such file.
#[test]
fn an_empty_file_checks_but_has_no_model_to_summarize() {
    let dir = tempfile::tempdir().unwrap();
    let empty = write(dir.path(), "empty.cnn", b"");
    let o = cnnc(&["check", &empty]);
    assert_eq!(o.status.code(), Some(0));
    assert!(
        stderr(&o).contains("the file is empty: it defines no model, block or `use`"),
        "{}",
        stderr(&o)
    );
    assert!(stderr(&o).contains("ok (no models)"), "{}", stderr(&o));
    let o = cnnc(&["check", "--deny-warnings", &empty]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let comments = write(
        dir.path(),
        "comments.cnn",
        b"# a model goes here\n\n// soon\n",
    );
    let o = cnnc(&["check", &comments]);
    assert!(
        stderr(&o).contains("the file holds only comments"),
        "{}",
        stderr(&o)
    );
    let blocks = write(dir.path(), "blocks.cnn", b"block b(c) { conv(c, 3) }\n");
    let o = cnnc(&["check", &blocks]);
    assert_eq!(o.status.code(), Some(0));
    assert!(!stderr(&o).contains("warning"), "{}", stderr(&o));
    let o = cnnc(&["summary", &empty]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("defines no model; one is written `model NAME("),
        "{}",
        stderr(&o)
    );
}

#[test]
fn several_models_need_a_model_flag() {
    let dir = tempfile::tempdir().unwrap();
    let f = write(
        dir.path(),
        "two.cnn",
        b"model A(input: [4]) { linear(2) }\nmodel B(input: [4]) { linear(3) }\n",
    );
    let o = cnnc(&["summary", &f]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--model"), "{}", stderr(&o));
    let o = cnnc(&["summary", &f, "--model", "B", "--format", "json"]);
    assert_eq!(o.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["output"], serde_json::json!([3]));
    // A name in the wrong case is found for the user.
    let o = cnnc(&["summary", &f, "--model", "b"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("no model named `b` (did you mean `B`?)"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn deep_nesting_is_a_diagnostic_not_a_stack_overflow() {
    let dir = tempfile::tempdir().unwrap();
    let mut text = String::from("model M(input: [1, 8, 8]) { ");
    text.push_str(&"concat { { ".repeat(100_000));
    let f = write(dir.path(), "deep.cnn", text.as_bytes());
    let o = cnnc(&["check", &f]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("cnnc::syntax::too_deep"),
        "{}",
        stderr(&o)
    );

    let expr = format!(
        "model M(input: [4]) {{ linear({}1{}) }}",
        "(".repeat(100_000),
        ")".repeat(100_000)
    );
    let f = write(dir.path(), "parens.cnn", expr.as_bytes());
    let o = cnnc(&["check", &f]);
    assert_eq!(o.status.code(), Some(1));
}

#[test]
fn deeply_nested_block_calls_are_limited() {
    let dir = tempfile::tempdir().unwrap();
    let mut text = String::new();
    for i in 0..1000 {
        text.push_str(&format!("block b{i}() {{ b{}() }}\n", i + 1));
    }
    text.push_str("block b1000() { relu }\nmodel M(input: [4]) { b0() }\n");
    let f = write(dir.path(), "calls.cnn", text.as_bytes());
    let o = cnnc(&["check", &f]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("cnnc::elab::too_deep"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn huge_expression_values_do_not_overflow() {
    let dir = tempfile::tempdir().unwrap();
    let f = write(
        dir.path(),
        "overflow.cnn",
        b"model M(input: [4]) { linear(9223372036854775807 * 2) }",
    );
    let o = cnnc(&["check", &f]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("cnnc::elab::overflow"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn help_lists_the_subcommands() {
    let o = cnnc(&["--help"]);
    assert_eq!(o.status.code(), Some(0));
    let out = String::from_utf8_lossy(&o.stdout);
    for cmd in [
        "check", "summary", "export", "run", "bench", "doctor", "train",
    ] {
        assert!(out.contains(cmd), "--help lacks {cmd}");
    }
    let o = cnnc(&["check"]);
    assert_eq!(o.status.code(), Some(2), "a usage error exits 2");
}

#[test]
fn optimizer_values_and_training_opsets_are_validated() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("t.onnx").display().to_string();
    let o = cnnc(&[
        "export",
        "models/lenet.cnn",
        "--train",
        "--momentum=-1",
        "-o",
        &out,
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("≥ 0"), "{}", stderr(&o));
    // A momentum of 1 or more is PyTorch's to accept too, but said to diverge.
    let o = cnnc(&[
        "export",
        "models/lenet.cnn",
        "--train",
        "--momentum",
        "1.5",
        "-o",
        &out,
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stderr(&o).contains("training diverges"), "{}", stderr(&o));
    std::fs::remove_file(&out).unwrap();
    let o = cnnc(&[
        "export",
        "models/lenet.cnn",
        "--grad",
        "--opset",
        "17",
        "-o",
        &out,
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("opset 18"), "{}", stderr(&o));
    // Zero epochs would write an untrained model and a checkpoint: refused by the parser.
    let ckpt = dir.path().join("t.ckpt").display().to_string();
    let o = cnnc(&[
        "train",
        "models/lenet.cnn",
        "--epochs",
        "0",
        "--out",
        &out,
        "--checkpoint",
        &ckpt,
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--epochs"), "{}", stderr(&o));
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "nothing written"
    );
}

/// An output that is the model's source, the weights read or the other output is refused
/// before anything is written, as is one in a missing folder; the source is left intact.
#[test]
fn outputs_never_overwrite_the_inputs() {
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read("models/lenet.cnn").unwrap();
    let src = write(dir.path(), "m.cnn", &text);
    let same = dir.path().join(".").join("m.cnn").display().to_string();
    let ckpt = dir.path().join("c.ckpt").display().to_string();
    // A file reached through `use` (any extension), another model's `.cnn`, and a file of
    // the training data are inputs too.
    let lib_text = b"block dc(c) { conv(c, 3, pad=1) relu }\n";
    let lib = write(dir.path(), "blocks.inc", lib_text);
    let main = write(
        dir.path(),
        "main.cnn",
        b"use \"blocks.inc\"\nmodel M(input: [1, 8, 8]) { dc(4) flatten linear(2) }\n",
    );
    let other = write(dir.path(), "other.cnn", &text);
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let label_file = write(&data, "train-labels-idx1-ubyte", b"labels");
    for name in [
        "train-images-idx3-ubyte",
        "t10k-images-idx3-ubyte",
        "t10k-labels-idx1-ubyte",
    ] {
        write(&data, name, b"x");
    }
    let data_arg = data.display().to_string();
    // Each command, and the file it must leave as it was.
    for (args, kept) in [
        (vec!["export", &src, "-o", &src], &src),
        (vec!["export", &src, "-o", &same], &src),
        (vec!["export", &src, "--grad", "-o", &src], &src),
        (vec!["train", &src, "--out", &src], &src),
        (vec!["train", &src, "--checkpoint", &src], &src),
        (
            vec!["train", &src, "--out", &ckpt, "--checkpoint", &ckpt],
            &src,
        ),
        (vec!["export", &main, "-o", &lib], &lib),
        (vec!["export", &main, "-o", &other], &other),
        (vec!["run", &main, "--input", &lib, "-o", &other], &other),
        (
            vec![
                "train",
                &src,
                "--data",
                &data_arg,
                "--checkpoint",
                &label_file,
            ],
            &label_file,
        ),
        (
            vec!["train", &main, "--data", &data_arg, "--out", &label_file],
            &label_file,
        ),
    ] {
        let before = std::fs::read(kept).unwrap();
        let o = cnnc(&args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        assert!(
            stderr(&o).contains("which writing it would destroy"),
            "{args:?}: {}",
            stderr(&o)
        );
        assert_eq!(std::fs::read(kept).unwrap(), before, "{args:?}");
    }
    let missing = dir.path().join("no").join("x.onnx").display().to_string();
    for args in [
        vec!["export", &src, "-o", &missing],
        vec!["train", &src, "--out", &missing],
        vec!["train", &src, "--checkpoint", &missing],
    ] {
        let o = cnnc(&args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        assert!(
            stderr(&o).contains("does not exist"),
            "{args:?}: {}",
            stderr(&o)
        );
    }
}

/// A model written over an existing file replaces a model, never another file: `export -o`
/// and `train --out` refuse a file that is no ONNX model (as `train` refuses one at its
/// checkpoint path), before any work; an empty file and an earlier model are replaced.
#[test]
fn a_file_that_is_no_model_is_not_replaced_by_one() {
    let dir = tempfile::tempdir().unwrap();
    let precious = write(dir.path(), "precious.txt", b"precious notes\n");
    for args in [
        vec!["export", "models/lenet.cnn", "-o", &precious],
        vec!["train", "models/lenet.cnn", "--out", &precious],
    ] {
        let o = cnnc(&args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        assert!(
            stderr(&o).contains(&format!(
                "cannot write {precious}: it exists and is not an ONNX model"
            )),
            "{args:?}: {}",
            stderr(&o)
        );
        assert!(
            stderr(&o).contains("remove it or choose another file name"),
            "{}",
            stderr(&o)
        );
        assert!(!stderr(&o).contains("training "), "{args:?}: trained first");
        assert_eq!(std::fs::read(&precious).unwrap(), b"precious notes\n");
    }
    let empty = write(dir.path(), "empty.onnx", b"");
    let o = cnnc(&["export", "models/lenet.cnn", "-o", &empty]);
    assert!(o.status.success(), "{}", stderr(&o));
    // Now a model (of more than 64 KiB, judged by its first bytes): replaced.
    assert!(std::fs::metadata(&empty).unwrap().len() > 1 << 16);
    let o = cnnc(&["export", "models/lenet.cnn", "-o", &empty, "--seed", "3"]);
    assert!(o.status.success(), "{}", stderr(&o));
    // A small model, checked whole.
    let src = write(
        dir.path(),
        "small.cnn",
        b"model Small(input: [1, 4, 4]) { flatten linear(2) }\n",
    );
    let small = dir.path().join("small.onnx").display().to_string();
    for _ in 0..2 {
        let o = cnnc(&["export", &src, "-o", &small]);
        assert!(o.status.success(), "{}", stderr(&o));
    }
}

/// Argument mistakes of `cnnc train` are named before anything loads.
#[test]
fn train_arguments_say_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let onnx = write(dir.path(), "m.onnx", b"\x08\x08\x12\x04cnnc\xff\xfe");
    let missing = dir.path().join("none.ckpt").display().to_string();
    let out = dir.path().join("o.onnx").display().to_string();
    for (args, says) in [
        (
            vec![
                "train",
                "models/lenet.cnn",
                "--resume",
                "--checkpoint",
                &missing,
                "--out",
                &out,
            ],
            "none.ckpt does not exist: no checkpoint to resume",
        ),
        (
            vec![
                "train",
                "models/lenet.cnn",
                "--resume",
                "--checkpoint",
                "/dev/null",
                "--out",
                &out,
            ],
            "/dev/null is not a regular file, so no checkpoint",
        ),
        (
            vec!["train", "models/lenet.cnn", "--lr", "-1"],
            "invalid value '-1' for '--lr <LR>': the learning rate must be a finite positive number",
        ),
        (
            vec!["train", "models/lenet.cnn", "--lr", "inf"],
            "invalid value 'inf' for '--lr <LR>': the learning rate must be a finite positive number",
        ),
        (
            vec!["train", "models/lenet.cnn", "--lr", "nan"],
            "invalid value 'nan' for '--lr <LR>': the learning rate must be a finite positive number",
        ),
        (
            vec!["train", "models/lenet.cnn", "--momentum", "nan"],
            "must be a finite number ≥ 0, got nan",
        ),
        (
            vec!["train", "models/lenet.cnn", "--lr", "1e-50"],
            "invalid value '1e-50' for '--lr <LR>': too small for float32",
        ),
        (
            vec!["train", "models/lenet.cnn", "--lr", "1e40"],
            "invalid value '1e40' for '--lr <LR>': too large for float32",
        ),
        (
            vec!["export", "models/lenet.cnn", "-o", "no_such_folder_x/"],
            "cannot write no_such_folder_x/: a name ending in `/` is a folder's",
        ),
        (
            vec!["train", "models/lenet.cnn", "--data", ""],
            "is empty: pass `fashion-mnist` or a directory",
        ),
        (
            vec!["train", "models/lenet.cnn", "--momentum", "1e39"],
            "1e39 is too large for float32",
        ),
        (
            vec!["train", "models/lenet.cnn", "--weight-decay", "-0.1"],
            "must be a finite number ≥ 0, got -0.1",
        ),
        (
            vec!["train", "models/lenet.cnn", "--epochs", "0"],
            "at least 1",
        ),
        (
            vec!["train", "models/lenet.cnn", "--limit-test", "0"],
            "at least 1",
        ),
        (
            vec!["train", &onnx],
            "it is an ONNX model, not a .cnn source",
        ),
        // Negative numbers are values, told what is wrong (not "unexpected argument '-1'").
        (
            vec!["train", "models/lenet.cnn", "--seed", "-1"],
            "must be a whole number ≥ 0, not -1",
        ),
        (
            vec!["train", "models/lenet.cnn", "--batch=-5"],
            "must be a whole number ≥ 1, not -5",
        ),
        (
            vec!["export", "models/lenet.cnn", "--seed", "-1", "-o", "x.onnx"],
            "must be a whole number ≥ 0, not -1",
        ),
        (
            vec!["bench", "models/lenet.cnn", "--batch", "-1"],
            "must be a whole number ≥ 1, not -1",
        ),
        (
            vec!["bench", "models/lenet.cnn", "--seconds", "-1"],
            "invalid value '-1' for '--seconds <S>': must be a positive, finite number",
        ),
        (
            vec![
                "train",
                "models/lenet.cnn",
                "--seed",
                "99999999999999999999999",
            ],
            "is too large",
        ),
        // Optimizer options belong to the step graph only.
        (
            vec![
                "export",
                "models/lenet.cnn",
                "--momentum",
                "0.9",
                "-o",
                "x.onnx",
            ],
            "configure the training step graph: add --train",
        ),
        (
            vec![
                "export",
                "models/lenet.cnn",
                "--grad",
                "--optimizer",
                "adam",
                "-o",
                "x.onnx",
            ],
            "the gradient graph of --grad has no optimizer",
        ),
    ] {
        let o = cnnc(&args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        assert!(stderr(&o).contains(says), "{args:?}: {}", stderr(&o));
    }
}

/// With `--format json`, a training failure is also one JSON object on stdout, and a model
/// with errors gives its diagnostics there, as `summary --format json` does.
#[test]
fn train_json_reports_failures_on_stdout() {
    let o = cnnc(&[
        "train",
        "models/lenet.cnn",
        "--data",
        "/nonexistent/data",
        "--format",
        "json",
    ]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["exit_code"], 3);
    assert!(
        v["error"].as_str().unwrap().contains("/nonexistent/data"),
        "{v}"
    );
    assert!(v["help"].is_string(), "{v}");

    let dir = tempfile::tempdir().unwrap();
    let bad = write(
        dir.path(),
        "bad.cnn",
        b"model X(input: [1, 28, 28]) { linear( }\n",
    );
    let o = cnnc(&["train", &bad, "--format", "json"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["diagnostics"][0]["severity"], "error", "{v}");
}

/// An endless device given as an input file (`/dev/zero`) is refused at once, not read
/// until the memory runs out.
#[test]
fn devices_are_no_input_files() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("w.onnx").display().to_string();
    for args in [
        vec!["run", "models/lenet.cnn", "--input", "/dev/zero"],
        vec!["run", "/dev/zero", "--input", "x.npy"],
        vec!["bench", "/dev/zero"],
        vec![
            "export",
            "models/lenet.cnn",
            "-o",
            &out,
            "--weights",
            "/dev/zero",
        ],
    ] {
        let o = cnnc(&args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        assert!(
            stderr(&o).contains("/dev/zero: it is a device, not a file"),
            "{args:?}: {}",
            stderr(&o)
        );
    }
    assert!(!Path::new(&out).exists());
}

/// `bench --format json` says why it failed as one JSON object on stdout, like `train`.
#[test]
fn bench_json_reports_failures_on_stdout() {
    let dir = tempfile::tempdir().unwrap();
    let bad = write(
        dir.path(),
        "bad.cnn",
        b"model X(input: [1, 28, 28]) { conv(6, 30) }\n",
    );
    let missing = dir.path().join("missing.cnn").display().to_string();
    for (args, code, says) in [
        (vec![missing.as_str()], 2, "missing.cnn"),
        (vec![bad.as_str()], 1, "error(s)"),
        (vec!["models/lenet.cnn", "--size", "28x28"], 2, "--size"),
    ] {
        let mut all = vec!["bench"];
        all.extend(args);
        all.extend(["--format", "json"]);
        let o = cnnc(&all);
        assert_eq!(o.status.code(), Some(code), "{all:?}: {}", stderr(&o));
        let v: serde_json::Value = serde_json::from_slice(&o.stdout)
            .unwrap_or_else(|e| panic!("{all:?}: stdout is not one JSON object: {e}"));
        assert_eq!(v["exit_code"], code, "{v}");
        assert!(v["error"].as_str().unwrap().contains(says), "{v}");
    }
}

/// A reader that stops reading (`cnnc summary big.cnn | head -1`) ends the command quietly,
/// by SIGPIPE as for any Unix tool, not with a panic.
#[test]
fn a_reader_that_goes_away_is_no_panic() {
    use std::io::Read;
    use std::os::unix::process::ExitStatusExt;
    let dir = tempfile::tempdir().unwrap();
    let mut text = String::from("model Big(input: [4, 8, 8]) {\n");
    text.push_str(&"  conv(4, 3, pad=1) relu\n".repeat(2000));
    text.push_str("  flatten linear(10)\n}\n");
    let big = write(dir.path(), "big.cnn", text.as_bytes());
    for format in ["text", "json"] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_cnnc"))
            .args(["summary", &big, "--format", format])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut first = [0u8; 16];
        child.stdout.take().unwrap().read_exact(&mut first).unwrap();
        // The pipe's read end is closed here, with most of the summary still to come.
        let o = child.wait_with_output().unwrap();
        let err = stderr(&o);
        assert!(!err.contains("panicked"), "{format}: {err}");
        assert!(
            o.status.success() || o.status.signal() == Some(libc::SIGPIPE),
            "{format}: {:?} {err}",
            o.status
        );
    }
    // `export` whose stderr reader is gone before its warnings are written: the file is
    // still written, and the exit is a success.
    let warned = write(
        dir.path(),
        "warned.cnn",
        b"model W(input: [1, 11, 11]) { maxpool(2) avgpool(2) flatten linear(2) }\n",
    );
    let out = dir.path().join("w.onnx");
    let mut child = Command::new(env!("CARGO_BIN_EXE_cnnc"))
        .args(["export", &warned, "-o", out.to_str().unwrap()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stderr.take());
    drop(child.stdout.take());
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");
    assert!(out.exists());
}

/// Across `use`d files: a block defined in both is reported in the file being checked, and a
/// JSON label names its own file (an error inside a library block, labelled at the call).
#[test]
fn diagnostics_across_used_files_point_at_the_right_file() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "lib.cnn",
        b"block dconv(c) {\n  conv(c, 3) relu\n  conv(c, 30) relu\n}\n",
    );
    let dup = write(
        dir.path(),
        "dup.cnn",
        b"use \"lib.cnn\"\nblock dconv(c) { relu }\nmodel U(input: [1, 28, 28]) { dconv(6) flatten linear(10) }\n",
    );
    let o = cnnc(&["check", "--format", "json", &dup]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let d = &v[0];
    assert_eq!(d["code"], "cnnc::elab::duplicate_definition");
    assert!(d["file"].as_str().unwrap().ends_with("dup.cnn"), "{d}");
    assert_eq!(d["line"], 2);
    let user = write(
        dir.path(),
        "user.cnn",
        b"use \"lib.cnn\"\nmodel U(input: [1, 28, 28]) { dconv(6) flatten linear(10) }\n",
    );
    let o = cnnc(&["check", "--format", "json", &user]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let d = &v[0];
    assert_eq!(d["code"], "cnnc::shape::window_too_large", "{d}");
    assert!(d["file"].as_str().unwrap().ends_with("lib.cnn"), "{d}");
    let labels = d["labels"].as_array().unwrap();
    let call = labels
        .iter()
        .find(|l| l["file"].as_str().unwrap().ends_with("user.cnn"))
        .unwrap_or_else(|| panic!("no label in user.cnn: {d}"));
    assert_eq!(
        (call["line"].clone(), call["column"].clone()),
        (2.into(), 31.into())
    );
    assert!(labels
        .iter()
        .any(|l| l["file"].as_str().unwrap().ends_with("lib.cnn")));
}

/// A 2-D input and a shape assertion with the batch dimension are told what to write.
#[test]
fn shapes_written_with_a_batch_or_without_channels_get_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let two_d = write(
        dir.path(),
        "a.cnn",
        b"model A(input: [28, 28]) { flatten linear(10) }\n",
    );
    let o = cnnc(&["check", &two_d]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("`input: [1, 28, 28]` for"),
        "{}",
        stderr(&o)
    );
    let batch = write(
        dir.path(),
        "b.cnn",
        b"model B(input: [3, 8, 8]) { conv(4, 1) : [1, 4, 8, 8] }\n",
    );
    let o = cnnc(&["check", &batch]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("leave out the batch dimension: write `: [4, 8, 8]`"),
        "{}",
        stderr(&o)
    );
}

/// Checking goes on after a shape error with the shape the layer was meant to give, and a
/// repeat that meets the same mistake again with other sizes still reports it once.
#[test]
fn a_mistake_in_a_repeat_is_reported_once_after_recovery() {
    let dir = tempfile::tempdir().unwrap();
    let f = write(
        dir.path(),
        "r.cnn",
        b"model M(input: [8, 32, 32]) {\n    repeat 3 { residual { conv(8, 3, stride=2, pad=1) } }\n    repeat 3 { conv(6, 3, groups=4, pad=1) }\n    linear(2)\n}\n",
    );
    let o = cnnc(&["check", "--format", "json", &f]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let codes: Vec<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["code"].as_str().unwrap())
        .collect();
    assert_eq!(
        codes,
        [
            "cnnc::shape::residual_mismatch",
            "cnnc::shape::groups",
            "cnnc::shape::rank"
        ],
        "{v}"
    );
}

/// A self-contained export that replaces a model whose weights were in its `.data` file says
/// that file is stale, and leaves it; a `.data` file that the replaced model does not use is
/// nobody's business of cnnc's: no note.
#[test]
fn export_names_a_stale_external_data_file() {
    use cnnc::onnx::proto::{data_location, ModelProto, StringStringEntryProto};
    use prost::Message;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("m.onnx");
    let o = cnnc(&["export", "models/lenet.cnn", "-o", out.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(!stderr(&o).contains("is left from an earlier export"));
    let stale = dir.path().join("m.onnx.data");
    std::fs::write(&stale, b"old weights").unwrap();
    let o = cnnc(&["export", "models/lenet.cnn", "-o", out.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(!stderr(&o).contains("is left from an earlier export"));
    // The earlier model keeps a weight in m.onnx.data (as a large export would).
    let mut model = ModelProto::decode(&std::fs::read(&out).unwrap()[..]).unwrap();
    let t = &mut model.graph.as_mut().unwrap().initializer[0];
    t.raw_data.clear();
    t.data_location = data_location::EXTERNAL;
    t.external_data = vec![StringStringEntryProto::new("location", "m.onnx.data")];
    std::fs::write(&out, model.encode_to_vec()).unwrap();
    let o = cnnc(&["export", "models/lenet.cnn", "-o", out.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("m.onnx.data is left from an earlier export"),
        "{}",
        stderr(&o)
    );
    assert!(stale.exists());
}

/// `--model A` works on a file whose other model is being written (has errors): the note
/// names it, A's result is as usual. B itself, no `--model`, or an error of the file's own
/// (syntax) still stop everything.
#[test]
fn a_model_is_usable_while_another_of_its_file_has_errors() {
    let dir = tempfile::tempdir().unwrap();
    let f = write(
        dir.path(),
        "two.cnn",
        b"model A(input: [4]) { linear(2) }\nmodel B(input: [4]) { conv(3, 3) }\n",
    );
    let out = dir.path().join("a.onnx").display().to_string();
    for args in [
        vec!["summary", f.as_str(), "--model", "A"],
        vec!["export", f.as_str(), "--model", "A", "-o", out.as_str()],
    ] {
        let o = cnnc(&args);
        assert_eq!(o.status.code(), Some(0), "{args:?}: {}", stderr(&o));
        assert!(stderr(&o).contains("`B` of"), "{}", stderr(&o));
        assert!(!stderr(&o).contains("cnnc::shape::rank"), "{}", stderr(&o));
    }
    // A name that is no model: said as such (exit 2, did-you-mean), not B's errors.
    for name in ["C", "a"] {
        let o = cnnc(&["summary", &f, "--model", name]);
        assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
        assert!(stderr(&o).contains("no model named"), "{}", stderr(&o));
        assert!(!stderr(&o).contains("cnnc::shape::rank"), "{}", stderr(&o));
    }
    for args in [
        vec!["summary", f.as_str(), "--model", "B"],
        vec!["summary", f.as_str()],
    ] {
        let o = cnnc(&args);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {}", stderr(&o));
        assert!(stderr(&o).contains("cnnc::shape::rank"), "{}", stderr(&o));
        // Without --model, the way to the model that checks.
        assert_eq!(
            stderr(&o).contains("pick a model that checks with --model NAME (A)"),
            args.len() == 2,
            "{}",
            stderr(&o)
        );
    }
    let broken = write(
        dir.path(),
        "syntax.cnn",
        b"model A(input: [4]) { linear(2) }\nmodel B(input: [4]) { linear(3) ) }\n",
    );
    let o = cnnc(&["summary", &broken, "--model", "A"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));

    // Another model's warnings are not A's either (its errors get a note, its warnings
    // nothing); B's own summary keeps them.
    let warned = write(
        dir.path(),
        "warned.cnn",
        b"model A(input: [1, 8, 8]) { conv(4, 3) flatten linear(2) }
\
          model B(input: [1, 8, 8]) { conv(4, 4, pad=same) flatten linear(2) }
",
    );
    let o = cnnc(&["summary", &warned, "--model", "A", "--format", "json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["warnings"], serde_json::json!([]), "{v}");
    assert!(!stderr(&o).contains("even_kernel_same"), "{}", stderr(&o));
    let o = cnnc(&["summary", &warned, "--model", "B"]);
    assert!(stderr(&o).contains("even_kernel_same"), "{}", stderr(&o));
    // Without --model: which model is the question, before any model's warnings.
    let o = cnnc(&["summary", &warned]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("pick one with --model"),
        "{}",
        stderr(&o)
    );
    assert!(!stderr(&o).contains("even_kernel_same"), "{}", stderr(&o));

    // A model with errors of its own: its errors only, not the others' warnings or errors
    // (those get the note), in text and in JSON.
    let three = write(
        dir.path(),
        "three.cnn",
        b"model A(input: [1, 8, 8]) { conv(4, 4, pad=same) flatten linear(2) }
\
          model B(input: [1, 8, 8]) { conv(4, 9) }
\
          model C(input: [1, 8, 8]) { linear(x) }
",
    );
    let o = cnnc(&["summary", &three, "--model", "B"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let e = stderr(&o);
    assert!(
        e.contains("window_too_large") && e.contains("`C` of"),
        "{e}"
    );
    assert!(
        !e.contains("even_kernel_same") && !e.contains("unknown_variable"),
        "{e}"
    );
    let o = cnnc(&["summary", &three, "--model", "B", "--format", "json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let codes: Vec<&str> = v["diagnostics"]
        .as_array()
        .unwrap_or_else(|| panic!("{v}"))
        .iter()
        .filter_map(|d| d["code"].as_str())
        .collect();
    assert_eq!(codes, ["cnnc::shape::window_too_large"], "{v}");

    // A misspelt allow in another model is that model's warning, left out too.
    let allow = write(
        dir.path(),
        "allow.cnn",
        b"model A(input: [1, 8, 8]) { conv(4, 3) flatten linear(2) }
model B(input: [1, 8, 8]) {
    relu  # cnnc: allow(unsued_input)
    flatten linear(2)
}
",
    );
    let o = cnnc(&["summary", &allow, "--model", "A"]);
    assert!(!stderr(&o).contains("unknown_allow"), "{}", stderr(&o));
    let o = cnnc(&["summary", &allow, "--model", "B"]);
    assert!(stderr(&o).contains("unknown_allow"), "{}", stderr(&o));
}

/// `cnnc check -` reads standard input (an editor's buffer, a pipe), named `<stdin>`.
#[test]
fn check_reads_standard_input() {
    use std::io::Write;
    for (text, code, says) in [
        (
            &b"model M(input: [1, 8, 8]) { conv(4, 3) }"[..],
            0,
            "<stdin>: ok",
        ),
        (
            &b"model M(input: [1, 8, 8]) { conv(4, 9) }"[..],
            1,
            "<stdin>:1:29",
        ),
        // A use from standard input is read from the current folder, which the help names.
        (
            &b"use \"no_such_blocks.cnn\"\nmodel M(input: [1, 8, 8]) { conv(4, 3) }"[..],
            1,
            "to the current folder, ",
        ),
    ] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_cnnc"))
            .args(["check", "-"])
            .env("NO_COLOR", "1")
            .stdin(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(text).unwrap();
        let o = child.wait_with_output().unwrap();
        assert_eq!(o.status.code(), Some(code), "{}", stderr(&o));
        assert!(stderr(&o).contains(says), "{}", stderr(&o));
    }
}

/// A standard output that cannot be written (a full disk) is an error, exit 2, not a panic
/// and not a success whose results were lost.
#[test]
fn an_unwritable_standard_output_is_an_error() {
    let Ok(full) = std::fs::OpenOptions::new().write(true).open("/dev/full") else {
        println!("skipped: no /dev/full");
        return;
    };
    for args in [
        &["summary", "models/lenet.cnn"][..],
        &["summary", "models/lenet.cnn", "--format", "json"],
        &["check", "models/lenet.cnn", "--format", "json"],
    ] {
        let o = Command::new(env!("CARGO_BIN_EXE_cnnc"))
            .args(args)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .stdout(full.try_clone().unwrap())
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        assert!(
            stderr(&o).contains("cannot write the results to standard output")
                && !stderr(&o).contains("panicked"),
            "{args:?}: {}",
            stderr(&o)
        );
    }
    // The help and the version, which clap would print and call a success.
    for args in [
        &["--help"][..],
        &["train", "--help"],
        &["--version"],
        &["check", "-h"],
    ] {
        let o = Command::new(env!("CARGO_BIN_EXE_cnnc"))
            .args(args)
            .stdout(full.try_clone().unwrap())
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        assert!(
            stderr(&o).contains("cannot write the help to standard output"),
            "{args:?}: {}",
            stderr(&o)
        );
        // Where it can be written, it is, and that is a success.
        let o = Command::new(env!("CARGO_BIN_EXE_cnnc"))
            .args(args)
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(0), "{args:?}: {}", stderr(&o));
        assert!(
            String::from_utf8_lossy(&o.stdout).contains("cnnc"),
            "{args:?}"
        );
    }
}

/// An ONNX model given where a source belongs, whatever its name, is said to be one, with
/// what takes it.
#[test]
fn an_onnx_model_read_as_a_source_is_named_as_one() {
    let dir = tempfile::tempdir().unwrap();
    let onnx = dir.path().join("m.onnx");
    let o = cnnc(&["export", "models/lenet.cnn", "-o", onnx.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let renamed = dir.path().join("m.cnn");
    std::fs::copy(&onnx, &renamed).unwrap();
    let o = cnnc(&["check", renamed.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("it is an ONNX model, not a .cnn source")
            && stderr(&o).contains("named `.onnx`"),
        "{}",
        stderr(&o)
    );
}

/// Standard input can be read once: `check - -` is a usage error, not a second, empty file.
#[test]
fn check_refuses_standard_input_twice() {
    let o = cnnc(&["check", "-", "models/lenet.cnn", "-"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("`-` (standard input) is given 2 times; it can be read only once"),
        "{}",
        stderr(&o)
    );
}

/// `--weights` from a pipe (`<(…)`, a FIFO) is read once: telling a checkpoint from plain
/// weights must not consume its first bytes.
#[test]
fn weights_can_come_through_a_pipe() {
    let dir = tempfile::tempdir().unwrap();
    let m = write(dir.path(), "m.cnn", b"model M(input: [4]) { linear(2) }\n");
    let (w, b) = ([0.5f32; 8], [0.25f32; 2]);
    let view = |dims: Vec<usize>, data: &[f32]| {
        let bytes: Vec<u8> = data.iter().flat_map(|x| x.to_le_bytes()).collect();
        (dims, bytes)
    };
    let tensors = [
        ("linear1.weight", view(vec![2, 4], &w)),
        ("linear1.bias", view(vec![2], &b)),
    ];
    let views: Vec<_> = tensors
        .iter()
        .map(|(name, (dims, bytes))| {
            let v =
                safetensors::tensor::TensorView::new(safetensors::Dtype::F32, dims.clone(), bytes)
                    .unwrap();
            (*name, v)
        })
        .collect();
    let bytes = safetensors::serialize(views, None).unwrap();
    let fifo = dir.path().join("w.fifo");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
    let out = dir.path().join("m.onnx");
    // Exports `m` with `bytes` written into the FIFO as its --weights; the model is written.
    let export_through_fifo = |bytes: Vec<u8>| {
        let _ = std::fs::remove_file(&out);
        let writer = {
            let fifo = fifo.clone();
            std::thread::spawn(move || std::fs::write(fifo, bytes).unwrap())
        };
        let args = [
            "export",
            &m,
            "--weights",
            fifo.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
        ];
        let o = cnnc(&args);
        writer.join().unwrap();
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        assert!(out.is_file());
    };
    export_through_fifo(bytes);

    // A checkpoint of `cnnc train` through the pipe too: told apart from plain weights by the
    // bytes read, not by a second read.
    let text = std::fs::read_to_string(&m).unwrap();
    let model = cnnc::compile_source(Path::new(&m), text).models.remove(0);
    let mut tensors = std::collections::BTreeMap::new();
    tensors.insert("param.linear1.weight".to_string(), (vec![2, 4], w.to_vec()));
    tensors.insert("param.linear1.bias".to_string(), (vec![2], b.to_vec()));
    let ckpt = cnnc::train::Checkpoint {
        tensors,
        epoch: 1,
        step: 4,
        rng_seed: 0,
        model_name: model.name.clone(),
        source_sha256: model.source_hash.clone(),
        model_sha256: Some(model.structure_hash()),
        optimizer: serde_json::json!({}),
        test_acc: None,
        test_examples: None,
    };
    let ckpt_file = dir.path().join("c.ckpt");
    ckpt.save(&ckpt_file).unwrap();
    export_through_fifo(std::fs::read(&ckpt_file).unwrap());
}

/// An output the file system cannot take (a folder where no file can be created, a link
/// into a missing folder) is refused before any work, as a usage error; `/dev/stdout` into a
/// pipe is written through (not resolved to `/proc/self/fd/pipe:[…]`).
#[test]
fn outputs_are_checked_before_work_and_stdout_pipes_work() {
    let dir = tempfile::tempdir().unwrap();
    let dangling = dir.path().join("dangling.onnx");
    std::os::unix::fs::symlink(dir.path().join("nowhere/x.onnx"), &dangling).unwrap();
    let dangling = dangling.display().to_string();
    for (args, says) in [
        (
            vec!["export", "models/lenet.cnn", "-o", "/proc/x.onnx"],
            "cannot create a file in /proc",
        ),
        (
            vec!["export", "models/lenet.cnn", "-o", &dangling],
            "whose folder",
        ),
        (
            vec!["train", "models/lenet.cnn", "--out", "/proc/x.onnx"],
            "cannot create a file in /proc",
        ),
    ] {
        let o = cnnc(&args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        assert!(stderr(&o).contains(says), "{args:?}: {}", stderr(&o));
        assert!(!stderr(&o).contains("training "), "{args:?}: trained first");
    }
    assert!(!dir.path().join("nowhere").exists());
    // `Command::output` gives the child a pipe for stdout.
    let o = cnnc(&["export", "models/lenet.cnn", "-o", "/dev/stdout"]);
    assert!(o.status.success(), "{}", stderr(&o));
    use prost::Message;
    let model = cnnc::onnx::proto::ModelProto::decode(o.stdout.as_slice())
        .expect("the model came through the pipe");
    assert_eq!(model.graph.unwrap().node.len(), 12);
}

/// `check --deny-warnings` fails on a warning (exit 1) that plain `check` lets pass, and a
/// warning silenced by `--allow` does not count.
#[test]
fn deny_warnings_fails_the_check_on_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    // PyTorch's `Conv2d(3, 16, 3, 1, 1)` on a 3-channel input: a warning.
    let src = write(
        dir.path(),
        "w.cnn",
        b"model W(input: [3, 32, 32]) { conv(3, 16, 3, 1, 1) relu flatten linear(10) }\n",
    );
    let plain = cnnc(&["check", &src]);
    assert_eq!(plain.status.code(), Some(0), "{}", stderr(&plain));
    assert!(stderr(&plain).contains("pytorch_argument_order"));
    let denied = cnnc(&["check", &src, "--deny-warnings"]);
    assert_eq!(denied.status.code(), Some(1), "{}", stderr(&denied));
    assert!(stderr(&denied).contains("--deny-warnings: the warnings fail the check"));
    assert!(!stderr(&denied).contains(": ok ("), "{}", stderr(&denied));
    let allowed = cnnc(&[
        "check",
        &src,
        "--deny-warnings",
        "--allow",
        "pytorch_argument_order",
    ]);
    assert_eq!(allowed.status.code(), Some(0), "{}", stderr(&allowed));
    let clean = cnnc(&["check", "models/lenet.cnn", "--deny-warnings"]);
    assert_eq!(clean.status.code(), Some(0), "{}", stderr(&clean));
}

/// A folder holding the four IDX files, empty (the output checks come before reading
/// them), and its path as an argument.
fn empty_data_folder() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    for name in [
        "train-images-idx3-ubyte",
        "train-labels-idx1-ubyte",
        "t10k-images-idx3-ubyte",
        "t10k-labels-idx1-ubyte",
    ] {
        write(dir.path(), name, b"");
    }
    let data = dir.path().display().to_string();
    (dir, data)
}

/// The output checks of `train` name what a path is: a test data file as test data, and a
/// default checkpoint path that is a folder with the option that moves it.
#[test]
fn train_output_checks_name_the_file_and_the_option() {
    let (dir, data) = empty_data_folder();
    // `train models/lenet.cnn --data DIR --out OUT` and `more`: its stderr, expecting exit 2
    // (or any failure with `more`, which fails later, on the fake checkpoint).
    let train = |out: &Path, more: &[&str]| -> String {
        let mut args = vec![
            "train",
            "models/lenet.cnn",
            "--data",
            &data,
            "--out",
            out.to_str().unwrap(),
        ];
        args.extend(more);
        let o = cnnc(&args);
        if more.is_empty() {
            assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
        }
        assert_ne!(o.status.code(), Some(0), "{}", stderr(&o));
        stderr(&o)
    };
    let e = train(&dir.path().join("t10k-labels-idx1-ubyte"), &[]);
    assert!(e.contains("a file of the test data"), "{e}");

    std::fs::create_dir(dir.path().join("m.ckpt.safetensors")).unwrap();
    let out = dir.path().join("m.onnx");
    let e = train(&out, &[]);
    assert!(e.contains("(the default, from --out)"), "{e}");
    assert!(e.contains("pass --checkpoint PATH"), "{e}");

    // Resuming takes the weights from the checkpoint: an --init given is said to be unused.
    let ckpt = write(dir.path(), "r.ckpt", b"not a checkpoint");
    let e = train(
        &out,
        &["--checkpoint", &ckpt, "--resume", "--init", "xavier"],
    );
    assert!(
        e.contains("--init xavier has no effect with --resume"),
        "{e}"
    );
}

/// A typo in code no model expands is an error for `check` (in the file and in the files it
/// `use`s), and left out with a note under `--model`, as another model's errors are.
#[test]
fn errors_in_code_no_model_expands_do_not_block_another_model() {
    let dir = tempfile::tempdir().unwrap();
    // (Its model is no part of the files that use it: its typo is not theirs.)
    write(
        dir.path(),
        "lib.cnn",
        b"block cbr(c, bn=false) { conv(c, 3, pad=1) if bn { batchnorm } else { reluu } }\n\
          model Demo(input: [1]) { relux }\n",
    );
    let f = write(
        dir.path(),
        "wip.cnn",
        b"use \"lib.cnn\"\n\
          block new_head(n) { global_avgpool flaten linear(n) }\n\
          model A(input: [8, 16, 16]) { cbr(8, bn=true) global_avgpool flatten linear(10) }\n",
    );
    let o = cnnc(&["check", &f]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("unknown layer `flaten`"),
        "{}",
        stderr(&o)
    );
    assert!(
        stderr(&o).contains("unknown layer `reluu`"),
        "{}",
        stderr(&o)
    );
    let o = cnnc(&["summary", &f, "--model", "A"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("2 error(s) in code `A` does not expand"),
        "{}",
        stderr(&o)
    );
    assert!(!stderr(&o).contains("relux"), "{}", stderr(&o));
    // Without --model in a file of two models that both check: no help naming none.
    let two = write(
        dir.path(),
        "two.cnn",
        b"block b() { relux }\nmodel A(input: [4]) { linear(2) }\nmodel B(input: [4]) { linear(3) }\n",
    );
    let o = cnnc(&["summary", &two]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(!stderr(&o).contains("the errors are in"), "{}", stderr(&o));
}

/// A file `use`d along two paths (`lib.cnn`, and `../lib.cnn` from a subfolder) is one file,
/// loaded once: its blocks are not defined twice.
#[test]
fn a_file_used_along_two_paths_is_loaded_once() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("sub")).unwrap();
    write(
        dir.path(),
        "lib.cnn",
        b"block cbr(c) { conv(c, 3, pad=1) relu }\n",
    );
    write(
        &dir.path().join("sub"),
        "x.cnn",
        b"use \"../lib.cnn\"\nblock two(c) { cbr(c) cbr(c) }\n",
    );
    let main = write(
        dir.path(),
        "main.cnn",
        b"use \"lib.cnn\"\nuse \"sub/x.cnn\"\nmodel M(input: [3, 8, 8]) { two(8) cbr(8) }\n",
    );
    let o = cnnc(&["check", &main]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
}

/// A gradient or training graph holds its weights in memory several times over: one beyond
/// the machine's memory is refused before anything is drawn, and nothing is written.
#[test]
fn training_graphs_beyond_memory_are_refused_up_front() {
    let dir = tempfile::tempdir().unwrap();
    // 10^11 parameters: 400 GB each copy.
    let src = write(
        dir.path(),
        "big.cnn",
        b"model Big(input: [1000000]) { linear(100000) }\n",
    );
    let out = dir.path().join("g.onnx");
    for flag in ["--grad", "--train"] {
        let o = cnnc(&["export", &src, flag, "-o", out.to_str().unwrap()]);
        let e = stderr(&o);
        if cfg!(target_os = "linux") {
            assert_eq!(o.status.code(), Some(2), "{e}");
            assert!(e.contains("holds the weights 3 times over"), "{e}");
            assert!(e.contains("help: export the inference model"), "{e}");
        } else {
            assert_ne!(o.status.code(), Some(0), "{e}");
        }
        assert!(!out.exists());
    }
}

/// An output name longer than the file system takes is refused before training, whether
/// written (`--out`, `--checkpoint`) or made from `--out` (the default checkpoint, longer
/// than `--out` itself), rather than failing when the file is written at the end of an
/// epoch.
#[test]
fn train_refuses_output_names_too_long_up_front() {
    let (dir, data) = empty_data_folder();
    let max = cnnc::fsutil::name_max(dir.path());
    let path = |name: String| dir.path().join(name).display().to_string();
    let long_out = path(format!("{}.onnx", "e".repeat(max - 5)));
    let too_long = path(format!("{}.onnx", "e".repeat(max - 4)));
    let ckpt = path("c.ckpt".into());
    let out = path("m.onnx".into());
    for (args, says) in [
        (
            vec!["--out", &long_out],
            "(the default, from --out): its file name is",
        ),
        (
            vec!["--out", &too_long, "--checkpoint", &ckpt],
            "its file name is",
        ),
        (
            vec!["--out", &out, "--checkpoint", &too_long],
            "its file name is",
        ),
    ] {
        let mut all = vec![
            "train",
            "models/lenet.cnn",
            "--data",
            &data,
            "--format",
            "json",
        ];
        all.extend(args.iter().copied());
        let o = cnnc(&all);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        let last: serde_json::Value =
            serde_json::from_str(String::from_utf8_lossy(&o.stdout).lines().last().unwrap())
                .unwrap();
        let error = last["error"].as_str().unwrap();
        assert!(error.contains(says), "{args:?}: {error}");
        assert!(error.contains("bytes long"), "{args:?}: {error}");
        // Refused before the (empty, so unusable) data is read.
        assert!(!stderr(&o).contains("IDX"), "{args:?}: {}", stderr(&o));
    }
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 4);
}

/// No output of `train` takes a name the data loader looks for in the data folder, read
/// this time or not: a `.gz` written beside the plain file would be read in its place by
/// the next run, an `idx4` name beside the `idx3` one would be refused as ambiguous data.
#[test]
fn train_outputs_never_take_a_data_file_name() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    for name in [
        "train-images-idx3-ubyte",
        "train-labels-idx1-ubyte",
        "t10k-images-idx3-ubyte",
        "t10k-labels-idx1-ubyte",
    ] {
        write(&data, name, b"");
    }
    let data_arg = data.display().to_string();
    let ckpt = dir.path().join("c.ckpt").display().to_string();
    let out = dir.path().join("m.onnx").display().to_string();
    for (option, name, split) in [
        ("--checkpoint", "t10k-labels-idx1-ubyte.gz", "test"),
        ("--checkpoint", "train-images-idx4-ubyte", "train"),
        ("--out", "train-images-idx3-ubyte.gz", "train"),
        ("--out", "t10k-images-idx4-ubyte.gz", "test"),
    ] {
        let target = data.join(name).display().to_string();
        let mut args = vec!["train", "models/lenet.cnn", "--data", &data_arg];
        args.extend(if option == "--out" {
            ["--out", &target, "--checkpoint", &ckpt]
        } else {
            ["--out", &out, "--checkpoint", &target]
        });
        let o = cnnc(&args);
        assert_eq!(o.status.code(), Some(2), "{name}: {}", stderr(&o));
        assert!(
            stderr(&o).contains(&format!("a name the {split} data is read from")),
            "{name}: {}",
            stderr(&o)
        );
        assert_eq!(std::fs::read_dir(&data).unwrap().count(), 4, "{name}");
    }
}

/// A model without trainable parameters is refused before training (there is nothing to
/// learn), with the layer that would learn in the help.
#[test]
fn train_refuses_a_model_with_nothing_to_learn() {
    let dir = tempfile::tempdir().unwrap();
    let src = write(
        dir.path(),
        "a.cnn",
        b"model A(input: [1, 28, 28]) { flatten }\n",
    );
    let out = dir.path().join("a.onnx").display().to_string();
    let o = cnnc(&[
        "train",
        &src,
        "--data",
        "fashion-mnist",
        "--out",
        &out,
        "--format",
        "json",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let last: serde_json::Value =
        serde_json::from_str(String::from_utf8_lossy(&o.stdout).lines().last().unwrap()).unwrap();
    let error = last["error"].as_str().unwrap();
    assert!(error.contains("no trainable parameters"), "{error}");
    assert!(
        last["help"].as_str().unwrap().contains("linear(K)"),
        "{last}"
    );
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}

/// `--resume` without its checkpoint says what to do in the help (JSON `help`), fitting what
/// was given: the path written to --checkpoint to check, or the default path to replace
/// with --checkpoint; starting anew is dropping --resume.
#[test]
fn resume_without_a_checkpoint_helps_after_what_was_given() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("o.onnx").display().to_string();
    let missing = dir.path().join("foo.ckpt").display().to_string();
    let resume = |more: &[&str]| -> (String, String) {
        let mut args = vec![
            "train",
            "models/lenet.cnn",
            "--resume",
            "--out",
            &out,
            "--format",
            "json",
        ];
        args.extend(more);
        let o = cnnc(&args);
        assert_eq!(o.status.code(), Some(2), "{more:?}: {}", stderr(&o));
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        (
            v["error"].as_str().unwrap().to_string(),
            v["help"]
                .as_str()
                .unwrap_or_else(|| panic!("{v}"))
                .to_string(),
        )
    };
    let (error, help) = resume(&["--checkpoint", &missing]);
    assert!(error.contains("foo.ckpt does not exist"), "{error}");
    assert!(!error.contains("pass --checkpoint"), "{error}");
    assert!(
        help.contains("check the path given to --checkpoint"),
        "{help}"
    );
    assert!(help.contains("drop --resume"), "{help}");

    let (error, help) = resume(&[]);
    assert!(
        error.contains("o.ckpt.safetensors does not exist"),
        "{error}"
    );
    assert!(help.contains("default checkpoint (from --out)"), "{help}");
    assert!(help.contains("pass --checkpoint PATH"), "{help}");

    let (_, help) = resume(&["--checkpoint", "/dev/null"]);
    assert!(
        help.contains("give --checkpoint the checkpoint file"),
        "{help}"
    );
}

/// `--aux-weight` on a model without named outputs changes nothing, and export says so (as
/// train does, with the same words).
#[test]
fn aux_weight_without_named_outputs_is_noted() {
    let dir = tempfile::tempdir().unwrap();
    let m = write(
        dir.path(),
        "m.cnn",
        b"model M(input: [1, 4, 4]) { flatten linear(3) }\n",
    );
    let out = dir.path().join("g.onnx").display().to_string();
    let o = cnnc(&["export", &m, "--grad", "--aux-weight", "1", "-o", &out]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        stderr(&o).contains(
            "model `M` has no named outputs (`output NAME { … }`): --aux-weight changes nothing"
        ),
        "{}",
        stderr(&o)
    );
    let o = cnnc(&["export", &m, "--grad", "-o", &out]);
    assert!(!stderr(&o).contains("--aux-weight"), "{}", stderr(&o));
}

/// A name that a failed `use` may have defined is an unknown layer whose help points at the
/// `use`, not a list of every layer.
#[test]
fn an_unknown_name_after_a_failed_use_points_at_the_use() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "blocks.cnn",
        b"block fz(c) { conv(c, 3, pad=1) }\n",
    );
    let m = write(
        dir.path(),
        "m.cnn",
        b"use \"blcoks.cnn\"\nmodel C(input: [3, 16, 16]) { fz(8) }\n",
    );
    let o = cnnc(&["check", &m]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(err.contains("did you mean `use \"blocks.cnn\"`?"), "{err}");
    assert!(
        err.contains("a `use` above failed, and this may be a block of the file it names"),
        "{err}"
    );
    assert!(!err.contains("the layers are:"), "{err}");
}

/// `cnnc --help` ends with the language in brief: its example checks clean, with the
/// shapes and outputs it claims, and it names every layer there is.
#[test]
fn the_help_shows_the_language_and_every_layer() {
    let o = cnnc(&["--help"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let help = String::from_utf8(o.stdout).unwrap();
    let example: String = help
        .lines()
        .skip_while(|l| !l.trim_start().starts_with("block basic"))
        .take_while(|l| !l.trim().is_empty())
        .map(|l| format!("{}\n", l.strip_prefix("  ").unwrap_or(l)))
        .collect();
    assert!(example.contains("model Net"), "{help}");
    let c = cnnc::compile_source(Path::new("help.cnn"), example.clone());
    assert!(c.diagnostics.is_empty(), "{example}\n{:?}", c.diagnostics);
    let model = c.model(None).unwrap();
    assert_eq!(model.output_shape().dims(), &[10]);
    assert_eq!(model.graph.named_outputs.len(), 1);
    let listed = help.split("inferred:").nth(1).expect("the layer list");
    for layer in cnnc::ir::layers::names() {
        assert!(
            listed
                .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .any(|w| w == layer),
            "`{layer}` is missing from cnnc --help"
        );
    }
}

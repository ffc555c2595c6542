//! `cnnc train` end to end on Fashion-MNIST subsets: LeNet learns (a test-accuracy floor a
//! broken gradient cannot reach), the exported model reproduces the reported test accuracy,
//! resume continues exactly, Ctrl-C stops with a checkpoint, divergence and bad set-ups fail
//! clearly. Without /usr/share/datasets/fashion-mnist the tests print why they skip.

use cnnc::runtime::{Device, Runtime};
use cnnc::train::data::{DataSource, FASHION_MNIST_DIR};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn data_ready() -> bool {
    let ok = DataSource::resolve("fashion-mnist").is_ok();
    if !ok {
        println!(
            "skipped: Fashion-MNIST is not installed at {FASHION_MNIST_DIR} \
             (apt-get install dataset-fashion-mnist)"
        );
    }
    ok && Runtime::get().is_ok()
}

fn cnnc(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cnnc"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("NO_COLOR", "1")
        .output()
        .unwrap()
}

fn dir(name: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("train_loop")
        .join(name);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The JSON objects of `--format json`, one per epoch.
/// Every JSON object of a `--format json` run's stdout.
fn json_lines(o: &Output) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect()
}

/// The per-epoch objects of a `--format json` run (the last object says what was written).
fn epochs(o: &Output) -> Vec<serde_json::Value> {
    json_lines(o)
        .into_iter()
        .filter(|v| v.get("epoch").is_some())
        .collect()
}

/// Accuracy of an exported inference model on the first `n` test images.
fn accuracy_of(onnx: &Path, n: usize) -> f64 {
    accuracy_in_shape(onnx, n, &[n, 1, 28, 28])
}

/// [`accuracy_of`] with the images given in `shape` (`[n, 784]` for a flat input).
fn accuracy_in_shape(onnx: &Path, n: usize, shape: &[usize]) -> f64 {
    let src = DataSource::resolve("fashion-mnist").unwrap();
    let mut test = src.load(10).unwrap().test;
    test.n = n;
    let bytes = std::fs::read(onnx).unwrap();
    let mut s = Runtime::get()
        .unwrap()
        .session(&bytes, Device::Cpu)
        .unwrap();
    let (_, logits) = s.run_f32(&test.images[..n * 784], shape).unwrap();
    let hits = logits
        .chunks_exact(10)
        .zip(&test.labels)
        .filter(|(row, &l)| {
            let best = row
                .iter()
                .enumerate()
                .max_by(|a, b| a.1.total_cmp(b.1))
                .unwrap()
                .0;
            best as i64 == l
        })
        .count();
    hits as f64 / n as f64
}

/// A model of a flat input (an MLP on the pixels, PyTorch's `x.view(-1, 784)`) trains on
/// the images' values in a row; the accuracy it reports is the exported model's on the test
/// images given as `[N, 784]`. Input sizes that do not hold the images' values, and
/// `--resize`, are refused before training.
#[test]
fn a_flat_input_trains_on_the_pixels_in_a_row() {
    if !data_ready() {
        return;
    }
    let d = dir("mlp");
    let m = d.join("mlp.cnn");
    std::fs::write(
        &m,
        "model MLP(input: [784]) { linear(64) relu linear(10) }\n",
    )
    .unwrap();
    let out = d.join("mlp.onnx");
    let args = |extra: &[&str]| -> Vec<String> {
        let mut a: Vec<String> = [
            "train",
            m.to_str().unwrap(),
            "--epochs",
            "2",
            "--limit-train",
            "2000",
            "--limit-test",
            "300",
            "--format",
            "json",
            "-o",
            out.to_str().unwrap(),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        a.extend(extra.iter().map(|s| s.to_string()));
        a
    };
    let run = |extra: &[&str]| {
        let a = args(extra);
        cnnc(&a.iter().map(String::as_str).collect::<Vec<_>>())
    };
    let o = run(&[]);
    assert!(o.status.success(), "{}", text(&o));
    let e = epochs(&o);
    let acc = e[1]["test_acc"].as_f64().unwrap();
    // Chance is 0.1; two epochs of 2,000 examples reach about 0.63.
    assert!(acc > 0.45, "{}", text(&o));
    assert_eq!(accuracy_in_shape(&out, 300, &[300, 784]), acc);
    // The banner names the folder the package's data was read from.
    assert!(
        text(&o).contains("on fashion-mnist in /usr/share/datasets/fashion-mnist ("),
        "{}",
        text(&o)
    );
    let o = run(&["--resize", "32", "--restart"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).contains("a flat input, not an image"),
        "{}",
        text(&o)
    );
    std::fs::write(&m, "model MLP(input: [700]) { linear(10) }\n").unwrap();
    let o = run(&["--restart"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("`input: [784]`"), "{}", text(&o));
}

#[test]
fn lenet_learns_a_fashion_mnist_subset() {
    if !data_ready() {
        return;
    }
    let d = dir("lenet");
    let out = d.join("lenet.onnx");
    let o = cnnc(&[
        "train",
        "models/lenet.cnn",
        "--data",
        "fashion-mnist",
        "--epochs",
        "3",
        "--batch",
        "32",
        "--optimizer",
        "adam",
        "--lr",
        "0.005",
        // The notes' initialisation: with PyTorch's default one, a sigmoid LeNet under Adam
        // at this rate stays at chance for some seeds (seen for 1 seed in 4), with Xavier it
        // learned for each of 5 seeds (0.69–0.73).
        "--init",
        "xavier",
        "--limit-train",
        "5000",
        "--limit-test",
        "1000",
        "--format",
        "json",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let e = epochs(&o);
    assert_eq!(e.len(), 3, "{}", text(&o));
    // One more object, the last, says what was written.
    let all = json_lines(&o);
    assert_eq!(all.len(), 4, "{}", text(&o));
    let done = &all[3];
    assert_eq!(done["done"], true);
    assert_eq!(done["epochs_done"], 3);
    assert_eq!(done["out"], out.to_str().unwrap());
    assert_eq!(
        done["checkpoint"],
        d.join("lenet.ckpt.safetensors").to_str().unwrap()
    );
    let acc = e[2]["test_acc"].as_f64().unwrap();
    assert_eq!(done["test_acc"].as_f64(), Some(acc), "{done}");
    println!("{}", text(&o));
    // Chance is 0.1; a wrong gradient stays near it.
    assert!(
        acc >= 0.6,
        "test accuracy {acc} after 3 epochs: {}",
        text(&o)
    );
    assert!(e[2]["loss"].as_f64().unwrap() < e[0]["loss"].as_f64().unwrap());
    // The exported model is the trained one: it reproduces the reported test accuracy.
    let exported = accuracy_of(&out, 1000);
    assert!(
        (exported - acc).abs() < 1e-9,
        "exported model: {exported}, reported {acc}"
    );
    // `export --weights` reads the checkpoint (after a stop, the only file there is): the
    // same weights, the same accuracy.
    let ckpt = d.join("lenet.ckpt.safetensors");
    let from_ckpt = d.join("from_ckpt.onnx");
    let o = cnnc(&[
        "export",
        "models/lenet.cnn",
        "--weights",
        ckpt.to_str().unwrap(),
        "-o",
        from_ckpt.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(accuracy_of(&from_ckpt, 1000), acc);
    // And says how to feed it and how it was trained, as the trained file does.
    let (trained, exported) = (read_model(&out), read_model(&from_ckpt));
    for key in ["cnnc_input", "cnnc_training"] {
        assert_eq!(metadata(&exported, key), metadata(&trained, key), "{key}");
    }
    let training: serde_json::Value =
        serde_json::from_str(&metadata(&exported, "cnnc_training")).unwrap();
    assert_eq!(training["data"], "fashion-mnist", "{training}");
    assert_eq!(training["epochs"], 3, "{training}");
    assert_eq!(training["lr"], 0.005, "{training}");
    assert_eq!(training["batch"], 32, "{training}");
    assert_eq!(training["test_examples"], 1000, "{training}");
    assert_eq!(training["test_acc"].as_f64(), Some(acc), "{training}");
    // A model drawn, not trained, says nothing of training.
    let drawn = d.join("drawn.onnx");
    let o = cnnc(&["export", "models/lenet.cnn", "-o", drawn.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    let drawn = read_model(&drawn);
    assert!(drawn
        .metadata_props
        .iter()
        .all(|p| !p.key.starts_with("cnnc_input") && p.key != "cnnc_training"));
    // Another model's checkpoint is refused as such, not as a list of missing tensors.
    let o = cnnc(&[
        "export",
        "models/lenet_bn.cnn",
        "--weights",
        ckpt.to_str().unwrap(),
        "-o",
        from_ckpt.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).contains("checkpoint is of model `LeNet`"),
        "{}",
        text(&o)
    );
}

#[test]
fn batchnorm_running_statistics_reach_the_exported_model() {
    if !data_ready() {
        return;
    }
    let d = dir("lenet_bn");
    let out = d.join("bn.onnx");
    let o = cnnc(&[
        "train",
        "models/lenet_bn.cnn",
        "--epochs",
        "2",
        "--batch",
        "64",
        "--optimizer",
        "adam",
        "--lr",
        "0.01",
        "--limit-train",
        "3000",
        "--limit-test",
        "500",
        "--format",
        "json",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let acc = epochs(&o)[1]["test_acc"].as_f64().unwrap();
    assert!(acc >= 0.5, "LeNet-BN test accuracy {acc}: {}", text(&o));
    let exported = accuracy_of(&out, 500);
    assert!(
        (exported - acc).abs() < 1e-9,
        "exported model: {exported}, reported {acc}"
    );
}

fn common<'a>(ckpt: &'a str, out: &'a str) -> Vec<&'a str> {
    vec![
        "train",
        "models/lenet.cnn",
        "--batch",
        "100",
        "--optimizer",
        "sgd",
        "--momentum",
        "0.9",
        "--lr",
        "0.1",
        "--weight-decay",
        "0.0001",
        "--limit-train",
        "1000",
        "--limit-test",
        "200",
        "--seed",
        "5",
        "--format",
        "json",
        "--checkpoint",
        ckpt,
        "--out",
        out,
    ]
}

#[test]
fn resume_continues_as_if_uninterrupted() {
    if !data_ready() {
        return;
    }
    let d = dir("resume");
    let (ck, out) = (
        d.join("a.ckpt").display().to_string(),
        d.join("a.onnx").display().to_string(),
    );
    let mut args = common(&ck, &out);
    args.extend(["--epochs", "3"]);
    let straight = cnnc(&args);
    assert!(straight.status.success(), "{}", text(&straight));
    let straight = epochs(&straight);

    let (ck, out) = (
        d.join("b.ckpt").display().to_string(),
        d.join("b.onnx").display().to_string(),
    );
    let mut args = common(&ck, &out);
    args.extend(["--epochs", "1"]);
    let first = cnnc(&args);
    assert!(first.status.success(), "{}", text(&first));
    let mut args = common(&ck, &out);
    args.extend(["--epochs", "3", "--resume"]);
    let rest = cnnc(&args);
    assert!(rest.status.success(), "{}", text(&rest));
    assert!(text(&rest).contains("resumed from"), "{}", text(&rest));
    let rest = epochs(&rest);
    assert_eq!(rest.len(), 2);
    for (a, b) in straight[1..].iter().zip(&rest) {
        assert_eq!(a["epoch"], b["epoch"]);
        for key in ["loss", "train_acc", "test_acc"] {
            let (x, y) = (a[key].as_f64().unwrap(), b[key].as_f64().unwrap());
            assert!((x - y).abs() < 1e-6, "{key}: straight {x}, resumed {y}");
        }
    }

    // Resuming a finished run trains nothing; the model written from the checkpoint still
    // records the test accuracy of its weights (the checkpoint carries it).
    let mut args = common(&ck, &out);
    args.extend(["--epochs", "3", "--resume"]);
    let again = cnnc(&args);
    assert!(again.status.success(), "{}", text(&again));
    assert!(
        text(&again).contains("nothing to train"),
        "{}",
        text(&again)
    );
    assert!(epochs(&again).is_empty(), "{}", text(&again));
    let training: serde_json::Value =
        serde_json::from_str(&metadata(&read_model(Path::new(&out)), "cnnc_training")).unwrap();
    assert_eq!(training["test_acc"], rest[1]["test_acc"], "{training}");
}

fn read_model(path: &Path) -> cnnc::onnx::proto::ModelProto {
    use prost::Message;
    cnnc::onnx::proto::ModelProto::decode(&std::fs::read(path).unwrap()[..]).unwrap()
}

/// The value of a model's metadata entry `key`.
fn metadata(m: &cnnc::onnx::proto::ModelProto, key: &str) -> String {
    let entry = m.metadata_props.iter().find(|p| p.key == key);
    entry
        .unwrap_or_else(|| panic!("no metadata `{key}`"))
        .value
        .clone()
}

/// Dropout masks come from `--seed`: the same command gives the same numbers (that masks
/// change with the seed alone is tests/train_step.rs's `dropout_masks_follow_their_seed`).
#[test]
fn dropout_runs_repeat_with_the_seed() {
    if !data_ready() {
        return;
    }
    let d = dir("dropout_seed");
    let model = d.join("drop.cnn");
    std::fs::write(
        &model,
        "model D(input: [1, 28, 28]) {\n    flatten linear(32) relu dropout(p=0.5) linear(10)\n}\n",
    )
    .unwrap();
    let run = |tag: &str, seed: &str| {
        let (ck, out) = (
            d.join(format!("{tag}.ckpt")).display().to_string(),
            d.join(format!("{tag}.onnx")).display().to_string(),
        );
        let o = cnnc(&[
            "train",
            model.to_str().unwrap(),
            "--limit-train",
            "1000",
            "--limit-test",
            "200",
            "--batch",
            "50",
            "--epochs",
            "1",
            "--seed",
            seed,
            "--format",
            "json",
            "--checkpoint",
            &ck,
            "--out",
            &out,
        ]);
        assert!(o.status.success(), "{}", text(&o));
        epochs(&o).remove(0)
    };
    let (a, b) = (run("a", "3"), run("b", "3"));
    for key in ["loss", "train_acc", "test_acc"] {
        assert_eq!(a[key], b[key], "{key}: the same seed must repeat the run");
    }
}

/// `--timings` says on stderr, after each epoch, where its time went; stdout keeps one JSON
/// object per epoch (and the final summary) with the keys alone.
#[test]
fn timings_say_where_each_epoch_went() {
    if !data_ready() {
        return;
    }
    let d = dir("timings");
    let model = d.join("drop.cnn");
    std::fs::write(
        &model,
        "model D(input: [1, 28, 28]) {\n    flatten linear(32) relu dropout(p=0.5) linear(10)\n}\n",
    )
    .unwrap();
    let (ck, out) = (d.join("t.ckpt"), d.join("t.onnx"));
    let o = cnnc(&[
        "train",
        model.to_str().unwrap(),
        "--limit-train",
        "300",
        "--limit-test",
        "100",
        "--batch",
        "50",
        "--epochs",
        "2",
        "--timings",
        "--format",
        "json",
        "--checkpoint",
        ck.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let lines = epochs(&o);
    assert_eq!(lines.len(), 2);
    for line in &lines {
        let keys: Vec<&String> = line.as_object().unwrap().keys().collect();
        assert_eq!(
            keys,
            ["epoch", "examples_per_sec", "loss", "test_acc", "train_acc"],
            "{line}"
        );
    }
    let stderr = String::from_utf8_lossy(&o.stderr);
    for epoch in [1, 2] {
        let prefix = format!("epoch {epoch} time: ");
        let line = stderr
            .lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .unwrap_or_else(|| panic!("no `{prefix}` line in:\n{stderr}"));
        let parts: Vec<&str> = line.split(", ").collect();
        let names = [
            "steps",
            "waiting for batches",
            "state read back",
            "evaluation",
        ];
        assert_eq!(parts.len(), names.len(), "{line}");
        for (part, name) in parts.iter().zip(names) {
            let seconds = part
                .strip_prefix(name)
                .and_then(|r| r.strip_suffix(" s"))
                .and_then(|n| n.trim().parse::<f64>().ok())
                .unwrap_or_else(|| panic!("`{part}` is not `{name} <seconds> s`"));
            assert!(seconds >= 0.0, "{part}");
        }
    }
    // Without the option, no such line.
    let quiet = cnnc(&[
        "train",
        model.to_str().unwrap(),
        "--limit-train",
        "100",
        "--epochs",
        "1",
        "--restart",
        "--checkpoint",
        ck.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(quiet.status.success(), "{}", text(&quiet));
    assert!(!String::from_utf8_lossy(&quiet.stderr).contains(" time: "));
}

/// Readers of stdout and stderr that go away (`cnnc train … 2>&1 | head -1`) neither stop
/// training nor turn its exit into a panic: the run ends as usual, its files written.
#[test]
fn training_outlives_its_readers() {
    use std::io::{BufRead, BufReader};
    if !data_ready() {
        return;
    }
    let d = dir("readers");
    let (ck, out) = (
        d.join("r.ckpt").display().to_string(),
        d.join("r.onnx").display().to_string(),
    );
    let mut args = common(&ck, &out);
    args.extend(["--epochs", "2"]);
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_cnnc"))
        .args(&args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stderr.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(first.starts_with("training"), "{first}");
    drop(child.stdout.take());
    // Both pipes' read ends are closed now, long before the run ends.
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");
    assert!(Path::new(&out).exists() && Path::new(&ck).exists());
}

/// `--spin-wait` changes how ONNX Runtime's idle threads wait, never what they compute.
#[test]
fn spin_wait_changes_the_speed_not_the_numbers() {
    if !data_ready() {
        return;
    }
    let d = dir("spin_wait");
    let mut runs = Vec::new();
    for (tag, extra) in [("sleep", None), ("spin", Some("--spin-wait"))] {
        let (ck, out) = (
            d.join(format!("{tag}.ckpt")).display().to_string(),
            d.join(format!("{tag}.onnx")).display().to_string(),
        );
        let mut args = common(&ck, &out);
        args.extend(["--epochs", "1"]);
        args.extend(extra);
        let o = cnnc(&args);
        assert!(o.status.success(), "{}", text(&o));
        runs.push(epochs(&o).remove(0));
    }
    for key in ["loss", "train_acc", "test_acc"] {
        assert_eq!(runs[0][key], runs[1][key], "{key}");
    }
}

/// Starts `cnnc` with `args` and returns once it says `training …`, which it prints after
/// installing its signal handler: the child, its stderr and what it said so far.
fn spawn_training(
    args: &[&str],
    stdout: Stdio,
) -> (
    std::process::Child,
    std::io::BufReader<std::process::ChildStderr>,
    String,
) {
    use std::io::BufRead;
    let mut child = Command::new(env!("CARGO_BIN_EXE_cnnc"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdout(stdout)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut seen = String::new();
    while !seen.lines().any(|l| l.starts_with("training ")) {
        if err.read_line(&mut seen).unwrap() == 0 {
            panic!("cnnc ended before training: {seen}");
        }
    }
    (child, err, seen)
}

#[test]
fn ctrl_c_stops_after_the_step_and_resume_continues_mid_epoch() {
    use std::io::Read;
    if !data_ready() {
        return;
    }
    let d = dir("sigint");
    let (ck, out) = (
        d.join("c.ckpt").display().to_string(),
        d.join("c.onnx").display().to_string(),
    );
    let mut args = common(&ck, &out);
    // Enough work (100 steps per epoch) that the signal arrives mid-epoch.
    let limit = args.iter().position(|a| *a == "1000").unwrap();
    args[limit] = "10000";
    let mut stopped_args = args.clone();
    stopped_args.extend(["--epochs", "50"]);
    let (mut child, mut err, mut seen) = spawn_training(&stopped_args, Stdio::piped());
    std::thread::sleep(std::time::Duration::from_millis(300));
    // SAFETY: signalling our own child process.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGINT);
    }
    err.read_to_string(&mut seen).unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130), "{seen}");
    // Said at once (a step can take seconds), then again when the checkpoint is written.
    // (What it finishes first depends on when the signal lands: a step, the evaluation or
    // the checkpoint being written.)
    assert!(seen.contains("cnnc: stopping"), "{seen}");
    assert!(seen.contains("continue with --resume"), "{seen}");
    // With --format json, the last object says where training stopped.
    let mut stdout = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    let last: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!(last["stopped"], true, "{stdout}");
    assert_eq!(last["checkpoint"], ck.as_str());
    assert_eq!(last["exit_code"], 130);
    assert!(!Path::new(&out).exists(), "no model is exported on a stop");
    let ckpt = cnnc::train::Checkpoint::load(Path::new(&ck)).unwrap();
    assert!(ckpt.step > 0);
    assert!(ckpt.tensors.contains_key("param.conv1.weight"));
    assert!(ckpt
        .tensors
        .contains_key("opt.momentum_buffer.conv1.weight"));

    // Resuming finishes the interrupted epoch with the same batches: the state equals an
    // uninterrupted run's.
    let epochs = (ckpt.epoch + 1).to_string();
    let mut resumed = args.clone();
    resumed.extend(["--epochs", &epochs, "--resume"]);
    let o = cnnc(&resumed);
    assert!(o.status.success(), "{}", text(&o));
    let (ck2, out2) = (
        d.join("straight.ckpt").display().to_string(),
        d.join("straight.onnx").display().to_string(),
    );
    let mut straight = common(&ck2, &out2);
    straight[limit] = "10000";
    straight.extend(["--epochs", &epochs]);
    let o = cnnc(&straight);
    assert!(o.status.success(), "{}", text(&o));
    let a = cnnc::train::Checkpoint::load(Path::new(&ck)).unwrap();
    let b = cnnc::train::Checkpoint::load(Path::new(&ck2)).unwrap();
    assert_eq!((a.epoch, a.step), (b.epoch, b.step));
    for (name, (_, x)) in &b.tensors {
        let y = &a.tensors[name].1;
        let worst = x
            .iter()
            .zip(y)
            .map(|(p, q)| (p - q).abs())
            .fold(0.0f32, f32::max);
        assert!(
            worst < 1e-5,
            "{name}: resumed and uninterrupted differ by {worst}"
        );
    }
}

/// Trains for long in the folder `name` and sends `signals` to the process, 10 ms apart,
/// once it trains: the exit code, what it said on stderr, the folder and the checkpoint.
fn stop_training(name: &str, signals: &[libc::c_int]) -> (Option<i32>, String, PathBuf, String) {
    use std::io::Read;
    let d = dir(name);
    let (ck, out) = (
        d.join("t.ckpt").display().to_string(),
        d.join("t.onnx").display().to_string(),
    );
    let mut args = common(&ck, &out);
    args.extend(["--epochs", "1000"]);
    let (mut child, mut err, mut seen) = spawn_training(&args, Stdio::null());
    std::thread::sleep(std::time::Duration::from_millis(300));
    for &signal in signals {
        // SAFETY: signalling our own child process.
        unsafe {
            libc::kill(child.id() as i32, signal);
        }
        // Apart enough to be two deliveries (pending, they would merge into one).
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    err.read_to_string(&mut seen).unwrap();
    (child.wait().unwrap().code(), seen, d, ck)
}

/// SIGTERM (`kill`, `timeout`, a job scheduler) stops training as Ctrl-C does: after the
/// step, with a checkpoint, exit 130.
#[test]
fn sigterm_stops_after_the_step_with_a_checkpoint() {
    if !data_ready() {
        return;
    }
    let (code, seen, d, ck) = stop_training("sigterm", &[libc::SIGTERM]);
    assert_eq!(code, Some(130), "{seen}");
    assert!(seen.contains("continue with --resume"), "{seen}");
    assert!(
        seen.contains("cnnc: SIGTERM: stopping"),
        "the notice names the signal: {seen}"
    );
    assert!(cnnc::train::Checkpoint::load(Path::new(&ck)).unwrap().step > 0);
    let left: Vec<_> = std::fs::read_dir(&d)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        left,
        [std::ffi::OsString::from("t.ckpt")],
        "no temporary file is left"
    );
}

/// A run stopped with its checkpoint going to a device (`--checkpoint /dev/null`) does not
/// say to resume: there is nothing to resume from.
#[test]
fn a_stop_with_the_checkpoint_in_a_device_offers_no_resume() {
    use std::io::Read;
    if !data_ready() {
        return;
    }
    let d = dir("sigint_devnull");
    let out = d.join("c.onnx").display().to_string();
    let mut args = common("/dev/null", &out);
    let limit = args.iter().position(|a| *a == "1000").unwrap();
    args[limit] = "10000";
    args.extend(["--epochs", "50"]);
    let (mut child, mut err, mut seen) = spawn_training(&args, Stdio::null());
    std::thread::sleep(std::time::Duration::from_millis(300));
    // SAFETY: signalling our own child process.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGINT);
    }
    err.read_to_string(&mut seen).unwrap();
    assert_eq!(child.wait().unwrap().code(), Some(130), "{seen}");
    assert!(
        seen.contains(
            "the checkpoint went to /dev/null, which is no file, so there is none to resume from"
        ),
        "{seen}"
    );
    assert!(!seen.contains("continue with --resume"), "{seen}");
}

/// Two signals at once (GNU `timeout -s INT` signals the process, then its group) are one
/// request: training stops after its step with a checkpoint, not at once without one.
#[test]
fn two_signals_at_once_are_one_stop_request() {
    if !data_ready() {
        return;
    }
    let (code, seen, _, ck) = stop_training("double_sigint", &[libc::SIGINT, libc::SIGINT]);
    assert_eq!(code, Some(130), "{seen}");
    assert!(!seen.contains("second signal"), "{seen}");
    assert!(seen.contains("continue with --resume"), "{seen}");
    assert!(cnnc::train::Checkpoint::load(Path::new(&ck)).unwrap().step > 0);
}

/// The checkpoint is written as every output is: through a symbolic link (the link stays), in
/// place into a pipe or device (never replacing it), and `--out /dev/null` does not put it
/// beside the device but where it would go without `--out`.
#[test]
fn checkpoint_goes_through_links_and_into_devices() {
    use std::os::unix::fs::FileTypeExt;
    if !data_ready() {
        return;
    }
    let d = dir("ckpt_paths");
    let model = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/lenet.cnn");
    let model = model.to_str().unwrap();
    let quick = |extra: &[&str]| {
        let mut args = vec![
            "train",
            model,
            "--epochs",
            "1",
            "--limit-train",
            "200",
            "--limit-test",
            "50",
        ];
        args.extend(extra);
        Command::new(env!("CARGO_BIN_EXE_cnnc"))
            .args(&args)
            .current_dir(&d)
            .env("NO_COLOR", "1")
            .output()
            .unwrap()
    };
    // A link to a file not yet there: the target is written, the link stays a link.
    std::fs::create_dir(d.join("real")).unwrap();
    std::os::unix::fs::symlink("real/ck.st", d.join("link.st")).unwrap();
    let o = quick(&["--out", "a.onnx", "--checkpoint", "link.st"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(std::fs::symlink_metadata(d.join("link.st"))
        .unwrap()
        .file_type()
        .is_symlink());
    cnnc::train::Checkpoint::load(&d.join("real/ck.st")).unwrap();

    // A named pipe is written in place; whoever reads it gets the checkpoint.
    let fifo = d.join("ck.fifo");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
    let reader = {
        let fifo = fifo.clone();
        std::thread::spawn(move || std::fs::read(fifo).unwrap())
    };
    let o = quick(&["--out", "b.onnx", "--checkpoint", "ck.fifo"]);
    assert!(o.status.success(), "{}", text(&o));
    let bytes = reader.join().unwrap();
    assert!(std::fs::metadata(&fifo).unwrap().file_type().is_fifo());
    let got = d.join("from_fifo.st");
    std::fs::write(&got, bytes).unwrap();
    cnnc::train::Checkpoint::load(&got).unwrap();

    // A path that is not UTF-8 is written, and named in the JSON as best it can be.
    {
        use std::os::unix::ffi::OsStrExt;
        let bad = std::ffi::OsStr::from_bytes(b"bad\xff.onnx");
        let o = Command::new(env!("CARGO_BIN_EXE_cnnc"))
            .args(["train", model, "--epochs", "1", "--limit-train", "200"])
            .args(["--limit-test", "50", "--format", "json", "--out"])
            .arg(bad)
            .current_dir(&d)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", text(&o));
        let stdout = String::from_utf8_lossy(&o.stdout);
        let last: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
        assert!(last["out"].as_str().unwrap().starts_with("bad"), "{stdout}");
        assert!(d.join(bad).is_file());
    }

    // `--out /dev/null`: the checkpoint is `lenet.trained.ckpt.safetensors` here.
    let o = quick(&["--out", "/dev/null"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(std::fs::metadata("/dev/null")
        .unwrap()
        .file_type()
        .is_char_device());
    cnnc::train::Checkpoint::load(&d.join("lenet.trained.ckpt.safetensors")).unwrap();
    assert!(!Path::new("/dev/null.ckpt.safetensors").exists());
}

#[test]
fn divergence_names_the_epoch_and_step() {
    if !data_ready() {
        return;
    }
    let d = dir("nan");
    let m = d.join("mlp.cnn");
    std::fs::write(
        &m,
        "model M(input: [1, 28, 28]) { flatten linear(32) relu linear(10) }\n",
    )
    .unwrap();
    let out = d.join("x.onnx");
    let o = cnnc(&[
        "train",
        m.to_str().unwrap(),
        "--lr",
        "1e30",
        "--limit-train",
        "1000",
        "--limit-test",
        "100",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    let t = text(&o);
    assert!(
        t.contains("diverged") && t.contains("at epoch 1, step"),
        "{t}"
    );
    assert!(
        t.contains("this run wrote no checkpoint") && !t.contains("earlier run's"),
        "{t}"
    );
    // The help says what the checkpoint holds: an earlier run's, which a --restart replaces
    // only after its first epoch; or the state a --resume started from.
    let run = |extra: &[&str]| {
        let mut args = vec![
            "train",
            m.to_str().unwrap(),
            "--limit-train",
            "256",
            "--limit-test",
            "64",
            "--batch",
            "64",
            "--out",
            out.to_str().unwrap(),
        ];
        args.extend(extra);
        cnnc(&args)
    };
    let o = run(&["--epochs", "1", "--lr", "0.01"]);
    assert!(o.status.success(), "{}", text(&o));
    let o = run(&["--epochs", "1", "--lr", "1e30", "--restart"]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    assert!(
        text(&o).contains("this run wrote no checkpoint: ")
            && text(&o).contains("x.ckpt.safetensors is still an earlier run's"),
        "{}",
        text(&o)
    );
    let o = run(&["--epochs", "2", "--lr", "1e30", "--resume"]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    assert!(
        text(&o)
            .contains("x.ckpt.safetensors still holds the state it resumed from, after epoch 1"),
        "{}",
        text(&o)
    );
    std::fs::remove_file(d.join("x.ckpt.safetensors")).unwrap();
    std::fs::remove_file(&out).unwrap();
    // One step only: its loss is finite, its update blows the outputs up, and no later loss
    // shows it; the test loss does, before any model or checkpoint is written.
    let o = cnnc(&[
        "train",
        m.to_str().unwrap(),
        "--lr",
        "1e30",
        "--batch",
        "128",
        "--epochs",
        "1",
        "--limit-train",
        "128",
        "--limit-test",
        "64",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    let t = text(&o);
    assert!(
        t.contains("training diverged in the last step of epoch 1 (step 1 overall)"),
        "{t}"
    );
    assert!(!out.exists() && !d.join("x.ckpt.safetensors").exists());
}

#[test]
fn setup_errors_are_clear() {
    if !data_ready() {
        return;
    }
    let d = dir("setup");
    let m = d.join("m32.cnn");
    std::fs::write(
        &m,
        "model M(input: [1, 32, 32]) { conv(4, 5) relu global_avgpool flatten linear(10) }\n",
    )
    .unwrap();
    let out = d.join("x.onnx").display().to_string();
    let m = m.display().to_string();
    // A batch far beyond the memory (2 × 4.3 GB of layer outputs per example) is refused
    // before anything runs; one beyond the data set is just the whole data set.
    let huge = d.join("huge.cnn");
    std::fs::write(
        &huge,
        "model H(input: [1, 8192, 8192]) { conv(16, 3, pad=1) global_avgpool flatten linear(10) }\n",
    )
    .unwrap();
    let o = cnnc(&[
        "train",
        huge.to_str().unwrap(),
        "--resize",
        "8192",
        "--limit-train",
        "300",
        "--out",
        &out,
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("use a smaller --batch"), "{}", text(&o));
    let o = cnnc(&[
        "train",
        "models/lenet.cnn",
        "--batch",
        "1000000000",
        "--limit-train",
        "300",
        "--limit-test",
        "50",
        "--epochs",
        "1",
        "--out",
        &out,
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    std::fs::remove_file(&out).unwrap();
    let _ = std::fs::remove_file(d.join("x.ckpt.safetensors"));
    // Evaluation batches the test set with --batch too: 10,000 test examples of 51 MB of
    // layer outputs each are refused even when the training set is small.
    let wide = d.join("wide.cnn");
    std::fs::write(
        &wide,
        "model W(input: [1, 28, 28]) { conv(16384, 1) relu global_avgpool flatten linear(10) }\n",
    )
    .unwrap();
    let o = cnnc(&[
        "train",
        wide.to_str().unwrap(),
        "--batch",
        "100000",
        "--limit-train",
        "64",
        "--out",
        &out,
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("evaluating the test set"), "{}", text(&o));
    // Model and data of other sizes or channels: what to declare or pass, before anything
    // runs.
    let rgb = d.join("rgb.cnn");
    std::fs::write(
        &rgb,
        "model R(input: [3, 64, 64]) { conv(4, 3) relu global_avgpool flatten linear(10) }\n",
    )
    .unwrap();
    let oblong = d.join("oblong.cnn");
    std::fs::write(
        &oblong,
        "model W(input: [1, 28, 32]) { flatten linear(10) }\n",
    )
    .unwrap();
    let (rgb, oblong) = (rgb.display().to_string(), oblong.display().to_string());
    for (model, resize, says) in [
        // The image size: suggests --resize.
        (m.as_str(), None, "--resize 32"),
        // A 3-channel model of another size: the data's channels at the model's size,
        // resized.
        (
            &rgb,
            None,
            "declare the model's input as [1, 64, 64] and pass --resize 64",
        ),
        // --resize on images that already fit: drop it.
        ("models/lenet.cnn", Some("32"), "drop --resize"),
        // --resize to a side of a model whose input is not square: the images' own size,
        // one way out (not the same one twice); another side, both.
        (
            &oblong,
            Some("28"),
            "--resize makes square images, and these are 28×28 already: declare the model's \
             input as [1, 28, 28] and drop --resize",
        ),
        (
            &oblong,
            Some("32"),
            "--resize makes square images: declare the model's input as [1, 32, 32] to train on \
             them, or as [1, 28, 28]",
        ),
    ] {
        let mut args = vec!["train", model, "--limit-train", "100", "--out", &out];
        if let Some(side) = resize {
            args.extend(["--resize", side]);
        }
        let o = cnnc(&args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", text(&o));
        assert!(text(&o).contains(says), "{args:?}: {}", text(&o));
    }
    // With it, training runs.
    let o = cnnc(&[
        "train",
        &m,
        "--resize",
        "32",
        "--epochs",
        "1",
        "--limit-train",
        "300",
        "--limit-test",
        "100",
        "--out",
        &out,
    ]);
    assert!(o.status.success(), "{}", text(&o));
    // The same command again would replace that run's checkpoint: refused, with the ways on.
    let again = cnnc(&[
        "train",
        "models/lenet.cnn",
        "--limit-train",
        "100",
        "--out",
        &out,
    ]);
    assert_eq!(again.status.code(), Some(2), "{}", text(&again));
    for words in [
        "holds a checkpoint of an earlier run",
        "--resume",
        "--restart",
    ] {
        assert!(text(&again).contains(words), "{words}: {}", text(&again));
    }
    // A file that is no checkpoint is never replaced, --restart or not, and the help does
    // not offer --restart.
    let notes = d.join("notes.txt");
    std::fs::write(&notes, "my notes\n").unwrap();
    for restart in [false, true] {
        let mut args = vec![
            "train",
            "models/lenet.cnn",
            "--limit-train",
            "100",
            "--out",
            &out,
            "--checkpoint",
            notes.to_str().unwrap(),
        ];
        if restart {
            args.push("--restart");
        }
        let o = cnnc(&args);
        assert_eq!(o.status.code(), Some(2), "{}", text(&o));
        assert!(
            text(&o).contains("is not a cnnc checkpoint") && !text(&o).contains("--restart"),
            "{}",
            text(&o)
        );
        assert_eq!(std::fs::read_to_string(&notes).unwrap(), "my notes\n");
    }
    // An empty file holds nothing to lose (`mktemp`): replaced, as one at -o is; --resume
    // from it says it is empty.
    let empty = d.join("empty.ckpt");
    std::fs::write(&empty, "").unwrap();
    let empty_arg = empty.to_str().unwrap();
    let o = cnnc(&[
        "train",
        "models/lenet.cnn",
        "--limit-train",
        "100",
        "--limit-test",
        "100",
        "--epochs",
        "1",
        "--checkpoint",
        empty_arg,
        "--resume",
        "-o",
        &out,
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("the file is empty"), "{}", text(&o));
    let o = cnnc(&[
        "train",
        "models/lenet.cnn",
        "--limit-train",
        "100",
        "--limit-test",
        "100",
        "--epochs",
        "1",
        "--checkpoint",
        empty_arg,
        "-o",
        &out,
    ]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(cnnc::train::Checkpoint::is_checkpoint(&empty));
    // CUDA is never a silent fall-back.
    let o = cnnc(&[
        "train",
        "models/lenet.cnn",
        "--device",
        "cuda",
        "--limit-train",
        "100",
        "--out",
        &out,
        "--restart",
    ]);
    if Runtime::get()
        .unwrap()
        .available_providers()
        .unwrap()
        .iter()
        .all(|p| p != cnnc::runtime::CUDA_PROVIDER)
    {
        assert_eq!(o.status.code(), Some(3), "{}", text(&o));
        assert!(text(&o).contains("CUDA"), "{}", text(&o));
    }
    // A final softmax under the loss's own log-softmax is flagged.
    let soft = d.join("soft.cnn");
    std::fs::write(
        &soft,
        "model S(input: [1, 28, 28]) { flatten linear(10) softmax }\n",
    )
    .unwrap();
    let o = cnnc(&[
        "train",
        soft.to_str().unwrap(),
        "--epochs",
        "1",
        "--limit-train",
        "100",
        "--limit-test",
        "50",
        "--out",
        &out,
        "--restart",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("ends in softmax"), "{}", text(&o));
    // A per-pixel model cannot train on one label per image.
    let seg = d.join("seg.cnn");
    std::fs::write(&seg, "model S(input: [1, 28, 28]) { conv(10, 3, pad=1) }\n").unwrap();
    let o = cnnc(&["train", seg.to_str().unwrap(), "--out", &out, "--restart"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("one label per image"), "{}", text(&o));
    assert!(
        text(&o).contains("`cnnc export FILE --train"),
        "{}",
        text(&o)
    );
    // A missing data directory: a bad data set (exit 3, as README says).
    let o = cnnc(&[
        "train",
        "models/lenet.cnn",
        "--data",
        "/nonexistent/dir",
        "--out",
        &out,
        "--restart",
    ]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    // --resume without a checkpoint.
    let o = cnnc(&[
        "train",
        "models/lenet.cnn",
        "--resume",
        "--checkpoint",
        "/nonexistent/c.ckpt",
        "--out",
        &out,
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
}

/// Batch norm over one value per channel (after a linear layer) has no variance in a batch of
/// one example: `--batch 1` is refused, and a last batch of one example is left out, so the
/// running statistics and the exported model stay finite.
#[test]
fn a_batch_of_one_never_reaches_a_batch_norm_over_features() {
    if !data_ready() {
        return;
    }
    let d = dir("batch_of_one");
    let out = d.join("bn.onnx");
    let ck = d.join("bn.ckpt").display().to_string();
    let base = [
        "train",
        "models/lenet_bn.cnn",
        "--limit-test",
        "200",
        "--epochs",
        "1",
        "--format",
        "json",
        "--checkpoint",
        &ck,
        "--out",
        out.to_str().unwrap(),
    ];
    let mut args = base.to_vec();
    args.extend(["--batch", "1", "--limit-train", "10"]);
    let o = cnnc(&args);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("--batch 2"), "{}", text(&o));
    // One training example: the data is what to change, not --batch.
    let mut args = base.to_vec();
    args.extend(["--batch", "256", "--limit-train", "1"]);
    let o = cnnc(&args);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).contains("the training data has 1 example") && text(&o).contains("--limit-train"),
        "{}",
        text(&o)
    );

    let mut args = base.to_vec();
    args.extend(["--batch", "256", "--limit-train", "513"]);
    let o = cnnc(&args);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("left out"), "{}", text(&o));
    #[cfg(unix)]
    {
        // The checkpoint is an ordinary output file, like the model.
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(Path::new(&ck)), mode(&out));
    }
    let acc = epochs(&o)[0]["test_acc"].as_f64().unwrap();
    assert_eq!(accuracy_of(&out, 200), acc);
    let m = read_model(&out);
    // The file says how to feed it and how it was trained.
    assert!(metadata(&m, "cnnc_input").contains("divided by 255"));
    let training: serde_json::Value = serde_json::from_str(&metadata(&m, "cnnc_training")).unwrap();
    assert_eq!(training["test_acc"].as_f64(), Some(acc), "{training}");
    assert_eq!(training["train_examples"], 513);
    assert_eq!(training["test_examples"], 200);
    for t in m.graph.unwrap().initializer {
        let finite = t
            .raw_data
            .chunks_exact(4)
            .all(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]).is_finite());
        assert!(finite, "{} holds NaN or infinity", t.name);
    }
}

/// The model's class scores bound the labels, and changing the batches or the optimizer on
/// `--resume` is refused with what the checkpoint was written with.
#[test]
fn labels_follow_the_model_and_resume_names_what_differs() {
    if !data_ready() {
        return;
    }
    let d = dir("classes_resume");
    let five = d.join("five.cnn");
    std::fs::write(&five, "model F(input: [1, 28, 28]) { flatten linear(5) }\n").unwrap();
    let out = d.join("x.onnx").display().to_string();
    let o = cnnc(&["train", five.to_str().unwrap(), "--out", &out]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("linear(10)"), "{}", text(&o));
    assert!(
        text(&o).contains("the model gives 5 class scores, so labels go from 0 to 4"),
        "{}",
        text(&o)
    );

    let ck = d.join("r.ckpt").display().to_string();
    let mut first = common(&ck, &out);
    first.extend(["--epochs", "1"]);
    assert!(cnnc(&first).status.success());
    let mut batch = common(&ck, &out);
    let at = batch.iter().position(|a| *a == "--batch").unwrap();
    batch[at + 1] = "50";
    batch.extend(["--epochs", "2", "--resume"]);
    let o = cnnc(&batch);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).contains("written with batch size 100 over 1000 training examples"),
        "{}",
        text(&o)
    );
    let mut momentum = common(&ck, &out);
    let at = momentum.iter().position(|a| *a == "--momentum").unwrap();
    momentum[at + 1] = "0.5";
    momentum.extend(["--epochs", "2", "--resume"]);
    let o = cnnc(&momentum);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).contains(
            "written with SGD, momentum 0.9, weight decay 0.0001; this run uses SGD, momentum 0.5"
        ),
        "{}",
        text(&o)
    );
    assert!(text(&o).contains("optimizer options"), "{}", text(&o));
    let mut seed = common(&ck, &out);
    let at = seed.iter().position(|a| *a == "--seed").unwrap();
    seed[at + 1] = "6";
    seed.extend(["--epochs", "2", "--resume"]);
    let o = cnnc(&seed);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("resume with --seed 5"), "{}", text(&o));
    // Refused before it starts: no line describes a run that never happens.
    assert!(!text(&o).contains("training LeNet"), "{}", text(&o));

    // Other examples of the same number: the checkpoint's position would index other
    // batches. A folder of 1,000 other 28×28 images (raw IDX) is refused.
    let other = d.join("other");
    std::fs::create_dir_all(&other).unwrap();
    let idx = |magic: u32, dims: &[u32], data: Vec<u8>| {
        let mut out = magic.to_be_bytes().to_vec();
        dims.iter().for_each(|d| out.extend(d.to_be_bytes()));
        out.extend(data);
        out
    };
    for (split, n) in [("train", 1000u32), ("t10k", 200)] {
        let pixels = (0..n * 784).map(|i| (i % 251) as u8).collect();
        let labels = (0..n).map(|i| (i % 10) as u8).collect();
        std::fs::write(
            other.join(format!("{split}-images-idx3-ubyte")),
            idx(0x803, &[n, 28, 28], pixels),
        )
        .unwrap();
        std::fs::write(
            other.join(format!("{split}-labels-idx1-ubyte")),
            idx(0x801, &[n], labels),
        )
        .unwrap();
    }
    let mut args = common(&ck, &out);
    args.extend([
        "--epochs",
        "2",
        "--resume",
        "--data",
        other.to_str().unwrap(),
    ]);
    let o = cnnc(&args);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).contains("trained on other examples than this run's"),
        "{}",
        text(&o)
    );
}

/// `--resume` without `--lr` continues with the learning rate of the run that wrote the
/// checkpoint (not the optimizer's default); another `--lr` is taken, and said.
#[test]
fn resume_keeps_the_checkpoints_learning_rate() {
    if !data_ready() {
        return;
    }
    let d = dir("resume_lr");
    let (ck, out) = (
        d.join("r.ckpt").display().to_string(),
        d.join("r.onnx").display().to_string(),
    );
    let base = [
        "train",
        "models/lenet.cnn",
        "--limit-train",
        "200",
        "--limit-test",
        "100",
        "--batch",
        "100",
        "--checkpoint",
        &ck,
        "--out",
        &out,
    ];
    let run = |extra: &[&str]| {
        let args: Vec<&str> = base.iter().chain(extra).copied().collect();
        let o = cnnc(&args);
        assert!(o.status.success(), "{}", text(&o));
        String::from_utf8_lossy(&o.stderr).into_owned()
    };
    let first = run(&["--epochs", "1", "--lr", "0.05"]);
    assert!(first.contains("lr 0.05,"), "{first}");
    let resumed = run(&["--epochs", "2", "--resume"]);
    assert!(resumed.contains("lr 0.05,"), "{resumed}");
    assert!(!resumed.contains("differs"), "{resumed}");
    let trained = onnx_metadata(&out, "cnnc_training");
    assert_eq!(trained["lr"], 0.05, "{trained}");
    let changed = run(&["--epochs", "3", "--resume", "--lr", "0.02"]);
    assert!(
        changed.contains("--lr 0.02 differs from the checkpoint's 0.05"),
        "{changed}"
    );
    assert!(changed.contains("lr 0.02,"), "{changed}");
}

/// A metadata entry of an ONNX file, parsed as JSON.
fn onnx_metadata(path: &str, key: &str) -> serde_json::Value {
    use prost::Message;
    let bytes = std::fs::read(path).unwrap();
    let model = cnnc::onnx::proto::ModelProto::decode(bytes.as_slice()).unwrap();
    let value = model
        .metadata_props
        .iter()
        .find(|p| p.key == key)
        .unwrap_or_else(|| panic!("{path} has no {key}"))
        .value
        .clone();
    serde_json::from_str(&value).unwrap()
}

/// A made-up data set of 1×4×4 images in 3 classes, `train` and `test` examples, pixels
/// `(i % period) / period`.
fn tiny_splits(train: usize, test: usize, period: usize) -> cnnc::train::Splits {
    let data = |n: usize| cnnc::train::Dataset {
        images: (0..n * 16)
            .map(|i| (i % period) as f32 / period as f32)
            .collect(),
        labels: (0..n).map(|i| (i % 3) as i64).collect(),
        n,
        channels: 1,
        height: 4,
        width: 4,
        classes: 3,
    };
    cnnc::train::Splits {
        train: data(train),
        test: data(test),
    }
}

/// The tiny network of the in-process loop tests, compiled.
fn tiny_compilation() -> cnnc::Compilation {
    let src = "model Tiny(input: [1, 4, 4]) { conv(2, 3, pad=1) relu flatten linear(3) }";
    cnnc::compile_source(Path::new("tiny.cnn"), src.into())
}

/// Plain SGD (lr 0.1, seed 1) over batches of 10 on the CPU, checkpointing at `checkpoint`,
/// for a new run.
fn tiny_sgd_config(checkpoint: &Path, epochs: u32) -> cnnc::train::TrainConfig {
    cnnc::train::TrainConfig {
        epochs,
        batch_size: 10,
        optimizer: cnnc::train::graph::Optimizer::Sgd {
            momentum: 0.0,
            weight_decay: 0.0,
        },
        lr: 0.1,
        seed: 1,
        init: cnnc::onnx::Init::Default,
        device: cnnc::runtime::Device::Cpu,
        data: "tiny".to_string(),
        checkpoint: Some(checkpoint.to_path_buf()),
        resume: false,
        checkpoint_found: cnnc::fsutil::Found::Nothing,
    }
}

/// Ctrl-C during the test-set evaluation stops it there: the epoch is trained and its
/// checkpoint written (without a test accuracy), and the run ends as stopped.
#[test]
fn a_stop_during_evaluation_ends_it_with_a_checkpoint() {
    use cnnc::train::{Observer, TrainConfig};
    use std::sync::atomic::{AtomicBool, Ordering};
    if Runtime::get().is_err() {
        return;
    }
    let c = tiny_compilation();
    let model = &c.models[0];
    let splits = tiny_splits(20, 50, 7);
    let d = dir("stop_in_eval");
    let ck = d.join("t.ckpt");
    let config = tiny_sgd_config(&ck, 3);
    /// Asks to stop at the last step of the first epoch: the request is then seen by the
    /// evaluation that follows.
    struct StopAtEpochEnd<'a> {
        stop: &'a AtomicBool,
        steps: usize,
        epochs_ended: usize,
        /// What the loop said it was doing, in order (the first Ctrl-C's notice follows it).
        phases: Vec<&'static str>,
    }
    impl Observer for StopAtEpochEnd<'_> {
        fn evaluating(&mut self) {
            self.phases.push("evaluating");
        }
        fn epoch_cut_short(&mut self, stats: &cnnc::train::EpochStats) {
            self.phases.push("cut short");
            // The epoch's training is reported, its test accuracy as unknown (JSON null).
            assert!(
                stats.loss.is_finite() && stats.test_acc.is_nan(),
                "{stats:?}"
            );
            let json: serde_json::Value = serde_json::from_str(&stats.to_json()).unwrap();
            assert!(
                json["test_acc"].is_null() && json["loss"].is_number(),
                "{json}"
            );
        }
        fn checkpointing(&mut self) {
            self.phases.push("checkpointing");
        }
        fn step(&mut self, _epoch: u32, _mean_loss: f64) {
            self.phases.push("step");
            self.steps += 1;
            if self.steps == 2 {
                self.stop.store(true, Ordering::SeqCst);
            }
        }
        fn epoch_end(&mut self, _stats: &cnnc::train::EpochStats) {
            self.epochs_ended += 1;
        }
    }
    let stop = AtomicBool::new(false);
    let mut observer = StopAtEpochEnd {
        stop: &stop,
        steps: 0,
        epochs_ended: 0,
        phases: Vec::new(),
    };
    let mut sessions = cnnc::train::sessions(
        model,
        &c.sources,
        &config.optimizer,
        cnnc::train::graph::DEFAULT_AUX_WEIGHT,
        &Default::default(),
    )
    .unwrap();
    let outcome = cnnc::train::train(
        model,
        &mut sessions,
        &splits,
        None,
        &config,
        &stop,
        &mut observer,
    )
    .unwrap();
    assert!(outcome.interrupted);
    assert_eq!(outcome.position.epochs_done, 1);
    assert_eq!(outcome.position.steps_in_epoch, 0);
    assert_eq!(outcome.test_acc, None);
    assert_eq!(
        observer.epochs_ended, 0,
        "no epoch line without its test accuracy"
    );
    assert_eq!(
        observer.phases,
        ["step", "step", "evaluating", "checkpointing", "cut short"]
    );
    let ckpt = cnnc::train::Checkpoint::load(&ck).unwrap();
    assert_eq!((ckpt.epoch, ckpt.step, ckpt.test_acc), (1, 2, None));

    // Resumed with nothing left to train (`--epochs 1`): the cut-short evaluation is done
    // now, reported, and kept in the checkpoint.
    let resumed = TrainConfig {
        epochs: 1,
        resume: true,
        ..config
    };
    let stop = AtomicBool::new(false);
    let outcome = cnnc::train::train(
        model,
        &mut sessions,
        &splits,
        None,
        &resumed,
        &stop,
        &mut cnnc::train::Quiet,
    )
    .unwrap();
    let acc = outcome.test_acc.expect("evaluated on resuming");
    assert!((0.0..=1.0).contains(&acc), "{acc}");
    let ckpt = cnnc::train::Checkpoint::load(&ck).unwrap();
    assert_eq!((ckpt.epoch, ckpt.step, ckpt.test_acc), (1, 2, Some(acc)));
}

/// Dropout's masks follow the seed, the layer and the global step alone: a run stopped
/// mid-epoch and resumed from its checkpoint ends with the weights of the run that was never
/// stopped, to the bit.
#[test]
fn a_resumed_run_draws_the_dropout_masks_of_the_uninterrupted_one() {
    use cnnc::train::{graph::Optimizer, Observer, TrainConfig};
    use std::sync::atomic::{AtomicBool, Ordering};
    if Runtime::get().is_err() {
        return;
    }
    let src = "model Drop(input: [1, 4, 4]) {
    conv(4, 3, pad=1) relu dropout(0.3) flatten linear(8) relu dropout(0.5) linear(3)
}";
    let c = cnnc::compile_source(Path::new("drop.cnn"), src.into());
    let model = &c.models[0];
    let splits = tiny_splits(30, 12, 11);
    let d = dir("dropout_resume");
    struct StopAtStep<'a> {
        stop: &'a AtomicBool,
        steps: usize,
        at: usize,
    }
    impl Observer for StopAtStep<'_> {
        fn step(&mut self, _epoch: u32, _mean_loss: f64) {
            self.steps += 1;
            if self.steps == self.at {
                self.stop.store(true, Ordering::SeqCst);
            }
        }
    }
    // 3 steps an epoch; the stopped runs stop after steps 4 (mid-epoch) and 6 (at its end).
    let run = |name: &str, stops: &[usize]| {
        let config = TrainConfig {
            epochs: 3,
            batch_size: 10,
            optimizer: Optimizer::adam(0.01),
            lr: 0.01,
            seed: 5,
            init: cnnc::onnx::Init::Default,
            device: cnnc::runtime::Device::Cpu,
            data: "tiny".to_string(),
            checkpoint: Some(d.join(format!("{name}.ckpt"))),
            resume: false,
            checkpoint_found: cnnc::fsutil::Found::Nothing,
        };
        let mut done = 0;
        for (i, &at) in stops.iter().chain([&usize::MAX]).enumerate() {
            // A new process would build new sessions: so does each part here.
            let mut sessions = cnnc::train::sessions(
                model,
                &c.sources,
                &config.optimizer,
                cnnc::train::graph::DEFAULT_AUX_WEIGHT,
                &Default::default(),
            )
            .unwrap();
            assert_eq!(sessions.masks.len(), 2);
            let stop = AtomicBool::new(false);
            let mut observer = StopAtStep {
                stop: &stop,
                steps: done,
                at,
            };
            // A resumed part replaces the checkpoint it found.
            let config = TrainConfig {
                resume: i > 0,
                checkpoint_found: cnnc::fsutil::Found::at(config.checkpoint.as_ref().unwrap()),
                ..config.clone()
            };
            let outcome = cnnc::train::train(
                model,
                &mut sessions,
                &splits,
                None,
                &config,
                &stop,
                &mut observer,
            )
            .unwrap();
            done = outcome.steps_done as usize;
            if at != usize::MAX {
                assert!(outcome.interrupted && done == at, "stopped at {done}");
            } else {
                assert_eq!(done, 9);
                return outcome.weights;
            }
        }
        unreachable!()
    };
    let straight = run("straight", &[]);
    let resumed = run("resumed", &[4, 6]);
    assert!(straight == resumed, "the resumed run's weights differ");
}

/// Writes one split of a 3-channel, 3-class data set of 4×4 images: class k has channel k
/// bright, the others dark (with some texture), as a 4-dimensional IDX file `[N, C, H, W]`;
/// `channels_last` writes `[N, H, W, C]` instead.
fn rgb_split(dir: &Path, prefix: &str, n: u32, channels_last: bool) {
    let mut pixels = Vec::new();
    let mut labels = Vec::new();
    for i in 0..n {
        let class = i % 3;
        let value = |c: u32, p: u32| -> u8 {
            let texture = ((i * 31 + p * 17) % 40) as u8;
            if c == class {
                200 + texture / 2
            } else {
                texture
            }
        };
        if channels_last {
            for p in 0..16 {
                for c in 0..3 {
                    pixels.push(value(c, p));
                }
            }
        } else {
            for c in 0..3 {
                for p in 0..16 {
                    pixels.push(value(c, p));
                }
            }
        }
        labels.push(class as u8);
    }
    let dims: [u32; 4] = if channels_last {
        [n, 4, 4, 3]
    } else {
        [n, 3, 4, 4]
    };
    let mut images = 0x0804u32.to_be_bytes().to_vec();
    dims.iter().for_each(|d| images.extend(d.to_be_bytes()));
    images.extend(pixels);
    let mut label_file = 0x0801u32.to_be_bytes().to_vec();
    label_file.extend(n.to_be_bytes());
    label_file.extend(labels);
    std::fs::write(dir.join(format!("{prefix}-images-idx4-ubyte")), images).unwrap();
    std::fs::write(dir.join(format!("{prefix}-labels-idx1-ubyte")), label_file).unwrap();
}

/// `cnnc train MODEL` on the RGB data of [`rgb_split`] in `data`: 8 epochs of Adam (lr
/// 0.05) over batches of 16, JSON lines, the trained model written to `out`.
fn rgb_train_args<'a>(model: &'a str, data: &'a str, out: &'a str) -> Vec<&'a str> {
    vec![
        "train",
        model,
        "--data",
        data,
        "--epochs",
        "8",
        "--batch",
        "16",
        "--optimizer",
        "adam",
        "--lr",
        "0.05",
        "--format",
        "json",
        "--out",
        out,
    ]
}

/// A model with an auxiliary classifier (`output aux { … }`) trains with its loss added
/// (the banner says at which weight), reports the main output's accuracy and writes both
/// outputs; a named output that is no class scores is refused, with the way out,
/// `--aux-weight 0`, which trains the main output alone.
#[test]
fn trains_a_model_with_named_outputs() {
    if Runtime::get().is_err() {
        println!("skipped: ONNX Runtime is not installed");
        return;
    }
    let d = dir("named_outputs");
    let data = d.join("data");
    std::fs::create_dir_all(&data).unwrap();
    rgb_split(&data, "train", 96, false);
    rgb_split(&data, "t10k", 30, false);
    let data = data.display().to_string();
    let train = |source: &str, extra: &[&str]| {
        let model = d.join("m.cnn");
        std::fs::write(&model, source).unwrap();
        let _ = std::fs::remove_file(d.join("m.ckpt.safetensors"));
        let out = d.join("m.onnx").display().to_string();
        let model = model.display().to_string();
        let mut args = rgb_train_args(&model, &data, &out);
        args.extend(extra);
        (cnnc(&args), out)
    };
    let (o, out) = train(
        "model M(input: [3, 4, 4]) {
            conv(4, 1) relu
            output aux { global_avgpool flatten linear(3) }
            global_avgpool flatten linear(3)
        }\n",
        &[],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        text(&o).contains("loss + 0.3 × the cross-entropy of aux"),
        "{}",
        text(&o)
    );
    let last = epochs(&o).last().cloned().unwrap();
    assert!(last["test_acc"].as_f64().unwrap() >= 0.9, "{last}");
    let session = Runtime::get()
        .unwrap()
        .session(&std::fs::read(&out).unwrap(), cnnc::runtime::Device::Cpu)
        .unwrap();
    assert_eq!(session.output_names(), ["output", "aux"]);
    assert_eq!(onnx_metadata(&out, "cnnc_training")["aux_weight"], 0.3);
    // The weight is the loss's: a resume with another is refused, naming the one to give.
    let model = d.join("m.cnn").display().to_string();
    let resume = |weight: &str| {
        let mut args = rgb_train_args(&model, &data, &out);
        let at = args.iter().position(|a| *a == "--epochs").unwrap();
        args[at + 1] = "9";
        args.extend(["--resume", "--aux-weight", weight]);
        cnnc(&args)
    };
    let o = resume("1");
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).contains("it was written with --aux-weight 0.3; this run has --aux-weight 1")
            && text(&o).contains("resume with --aux-weight 0.3"),
        "{}",
        text(&o)
    );
    assert_eq!(resume("0.3").status.code(), Some(0));

    let features = "model M(input: [3, 4, 4]) {
        conv(4, 1) relu
        output features {}
        global_avgpool flatten linear(3)
    }\n";
    let (o, _) = train(features, &[]);
    assert_ne!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        text(&o).contains("the output `features` is [4, 4, 4]")
            && text(&o).contains("--aux-weight 0"),
        "{}",
        text(&o)
    );
    let (o, _) = train(features, &["--aux-weight", "0"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(text(&o).contains("output features not trained (--aux-weight 0)"));
}

/// A data directory of RGB images (`[N, C, H, W]` IDX files) trains a 3-channel model to
/// tell which channel is bright (the pixel order itself is pinned by train_data.rs);
/// channels-last files are refused with how to transpose them, also when `--resize` would
/// change their size.
#[test]
fn trains_on_images_of_several_channels() {
    if Runtime::get().is_err() {
        println!("skipped: ONNX Runtime is not installed");
        return;
    }
    let d = dir("rgb");
    let data = d.join("data");
    std::fs::create_dir_all(&data).unwrap();
    rgb_split(&data, "train", 96, false);
    rgb_split(&data, "t10k", 30, false);
    let model = d.join("rgb.cnn");
    std::fs::write(
        &model,
        "model RGB(input: [3, 4, 4]) { conv(4, 1) relu global_avgpool flatten linear(3) }\n",
    )
    .unwrap();
    let out = d.join("rgb.onnx").display().to_string();
    let (model, data) = (model.display().to_string(), data.display().to_string());
    let args = rgb_train_args(&model, &data, &out);
    let o = cnnc(&args);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let last = epochs(&o).last().cloned().unwrap();
    assert!(
        last["test_acc"].as_f64().unwrap() >= 0.9,
        "the brightest channel is the class: {last}"
    );
    // The same images written channels last.
    let _ = std::fs::remove_file(d.join("rgb.ckpt.safetensors"));
    let last_dir = d.join("last");
    std::fs::create_dir_all(&last_dir).unwrap();
    rgb_split(&last_dir, "train", 12, true);
    rgb_split(&last_dir, "t10k", 6, true);
    let mut args = args.to_vec();
    let last_dir = last_dir.display().to_string();
    args[3] = &last_dir;
    let o = cnnc(&args);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).contains("channels last") && text(&o).contains("x.transpose(0, 3, 1, 2)"),
        "{}",
        text(&o)
    );
    // A model of another size, reached with --resize once the axes are in order.
    let model8 = d.join("rgb8.cnn");
    std::fs::write(
        &model8,
        "model RGB(input: [3, 8, 8]) { conv(4, 1) relu global_avgpool flatten linear(3) }\n",
    )
    .unwrap();
    let model8 = model8.display().to_string();
    args[1] = &model8;
    args.extend(["--resize", "8"]);
    let o = cnnc(&args);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("x.transpose(0, 3, 1, 2)"), "{}", text(&o));
}

/// A checkpoint that cannot be written (a full disk: /dev/full) ends the run with exit 2
/// and a help that says the earlier checkpoint is intact and how to go on; the epoch that
/// was trained is still reported first.
#[test]
fn a_full_disk_at_the_checkpoint_is_told_after_the_epochs_line() {
    if !data_ready() || !Path::new("/dev/full").exists() {
        return;
    }
    let d = dir("full_disk");
    let out = d.join("m.onnx").display().to_string();
    let mut args = common("/dev/full", &out);
    args.extend(["--epochs", "2"]);
    let o = cnnc(&args);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let lines = json_lines(&o);
    assert_eq!(lines.len(), 2, "{}", text(&o));
    assert_eq!(lines[0]["epoch"], 1, "{}", text(&o));
    let error = lines[1]["error"].as_str().unwrap();
    assert!(error.contains("cannot write the checkpoint"), "{error}");
    let help = lines[1]["help"].as_str().unwrap();
    assert!(help.contains("--resume"), "{help}");
    assert!(!Path::new(&out).exists());
}

/// The learning rate a checkpoint records (metadata, outside the tensors' checksum) is
/// judged as `--lr` is: a rate that cannot train, or none (missing, not a number), is refused
/// on `--resume`, not replaced by the default in silence; `--lr` overrides it.
#[test]
fn a_checkpoints_learning_rate_is_judged_on_resume() {
    if !data_ready() {
        return;
    }
    let d = dir("recorded_lr");
    let (ck, out) = (
        d.join("a.ckpt").display().to_string(),
        d.join("a.onnx").display().to_string(),
    );
    let mut args = common(&ck, &out);
    args.extend(["--epochs", "1"]);
    assert!(cnnc(&args).status.success());
    // Rewrite the header's optimizer metadata with another lr.
    let set_lr = |lr: &str| {
        let bytes = std::fs::read(&ck).unwrap();
        let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
        let mut header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
        let meta = &mut header["__metadata__"];
        let mut optimizer: serde_json::Value =
            serde_json::from_str(meta["optimizer"].as_str().unwrap()).unwrap();
        optimizer["lr"] = serde_json::from_str(lr).unwrap();
        meta["optimizer"] = optimizer.to_string().into();
        let mut text = header.to_string().into_bytes();
        text.resize(text.len().div_ceil(8) * 8, b' ');
        let mut file = (text.len() as u64).to_le_bytes().to_vec();
        file.extend(text);
        file.extend(&bytes[8 + n..]);
        std::fs::write(&ck, file).unwrap();
    };
    for bad in ["-5", "0", "1e39", "null", "\"oops\""] {
        set_lr(bad);
        let mut args = common(&ck, &out);
        let at = args.iter().position(|&a| a == "--lr").unwrap();
        args.drain(at..at + 2);
        args.extend(["--epochs", "2", "--resume"]);
        let o = cnnc(&args);
        assert_eq!(o.status.code(), Some(2), "lr {bad}: {}", text(&o));
        let last = json_lines(&o).pop().unwrap();
        let error = last["error"].as_str().unwrap();
        let why = if bad == "null" || bad.starts_with('"') {
            "records no learning rate to resume with"
        } else {
            "records a learning rate that cannot train"
        };
        assert!(error.contains(why), "{error}");
        assert!(last["help"].as_str().unwrap().contains("--lr"), "{last}");
    }
    let mut args = common(&ck, &out);
    args.extend(["--epochs", "2", "--resume"]);
    let o = cnnc(&args);
    assert!(o.status.success(), "with --lr: {}", text(&o));
}

/// A checkpoint that was not there when the run started is not replaced by its first write:
/// a file there by then is another run's (two runs given the same paths). It is left as it
/// is, this run's checkpoint is kept beside it, and the run fails saying where and that runs
/// at the same time need their own paths; later writes replace the run's own checkpoint.
#[test]
fn a_checkpoint_written_meanwhile_by_another_run_is_kept() {
    use cnnc::train::{CheckpointError, TrainConfig, TrainError};
    use std::sync::atomic::AtomicBool;
    if Runtime::get().is_err() {
        return;
    }
    let c = tiny_compilation();
    let model = &c.models[0];
    let splits = tiny_splits(20, 10, 7);
    let d = dir("checkpoint_appeared");
    let ck = d.join("t.ckpt");
    let config = tiny_sgd_config(&ck, 2);
    let mut sessions = cnnc::train::sessions(
        model,
        &c.sources,
        &config.optimizer,
        cnnc::train::graph::DEFAULT_AUX_WEIGHT,
        &Default::default(),
    )
    .unwrap();
    let mut train = |config: &TrainConfig| {
        cnnc::train::train(
            model,
            &mut sessions,
            &splits,
            None,
            config,
            &AtomicBool::new(false),
            &mut cnnc::train::Quiet,
        )
    };
    // Alone: two epochs, two writes, the second replacing the first.
    let outcome = train(&config).unwrap();
    assert_eq!(outcome.position.epochs_done, 2);
    assert_eq!(cnnc::train::Checkpoint::load(&ck).unwrap().epoch, 2);
    assert_eq!(std::fs::read_dir(&d).unwrap().count(), 1);

    // Another run's file appeared (here: was there all along, unknown to this run).
    std::fs::write(&ck, b"another run's").unwrap();
    let e = train(&config).unwrap_err();
    let TrainError::CheckpointWrite {
        error: CheckpointError::Appeared {
            kept: Some(kept), ..
        },
        epochs_done: 1,
        ..
    } = &e
    else {
        panic!("{e:?}");
    };
    assert_eq!(std::fs::read(&ck).unwrap(), b"another run's");
    assert_eq!(kept.parent(), ck.parent());
    assert_eq!(cnnc::train::Checkpoint::load(kept).unwrap().epoch, 1);
    let (message, help) = (e.to_string(), e.help().unwrap());
    assert!(message.contains("another process wrote"), "{message}");
    assert!(message.contains(&kept.display().to_string()), "{message}");
    assert!(help.contains("their own --out and --checkpoint"), "{help}");
    assert!(
        help.contains(&format!("--resume --checkpoint {}", kept.display())),
        "{help}"
    );
    // Known to exist at the start (`--restart`): replaced, as before.
    let restart = TrainConfig {
        checkpoint_found: cnnc::fsutil::Found::at(&ck),
        ..config.clone()
    };
    train(&restart).unwrap();
    assert_eq!(cnnc::train::Checkpoint::load(&ck).unwrap().epoch, 2);
}

/// A checkpoint is replaced only while it is the file the run found (the one it resumes) or
/// last wrote: where another process put another file there meanwhile (two runs resuming
/// one checkpoint at once), that file is left as it is, this run's checkpoint is kept beside
/// it, and the run fails saying so.
#[test]
fn a_checkpoint_another_run_replaced_meanwhile_is_kept() {
    use cnnc::fsutil::Found;
    use cnnc::train::{CheckpointError, Observer, TrainConfig, TrainError};
    use std::sync::atomic::AtomicBool;
    if Runtime::get().is_err() {
        return;
    }
    /// Writes another file over the checkpoint (by a rename, as another run would) after the
    /// step `at` of the run, or once epoch `after_epoch` ends (its checkpoint written).
    struct Meddler<'a> {
        path: &'a Path,
        steps: usize,
        at: usize,
        after_epoch: u32,
    }
    impl Observer for Meddler<'_> {
        fn step(&mut self, _epoch: u32, _mean_loss: f64) {
            self.steps += 1;
            if self.steps == self.at {
                cnnc::fsutil::write_atomic(self.path, b"another run's").unwrap();
            }
        }
        fn epoch_end(&mut self, stats: &cnnc::train::progress::EpochStats) {
            if stats.epoch == self.after_epoch {
                cnnc::fsutil::write_atomic(self.path, b"another run's").unwrap();
            }
        }
    }
    let c = tiny_compilation();
    let model = &c.models[0];
    let splits = tiny_splits(20, 10, 7);
    let d = dir("checkpoint_replaced");
    let ck = d.join("t.ckpt");
    let mut sessions = cnnc::train::sessions(
        model,
        &c.sources,
        &tiny_sgd_config(&ck, 1).optimizer,
        cnnc::train::graph::DEFAULT_AUX_WEIGHT,
        &Default::default(),
    )
    .unwrap();
    let mut train = |config: &TrainConfig, meddler: &mut Meddler| {
        cnnc::train::train(
            model,
            &mut sessions,
            &splits,
            None,
            config,
            &AtomicBool::new(false),
            meddler,
        )
    };
    let resume = |epochs| TrainConfig {
        resume: true,
        checkpoint_found: Found::at(&ck),
        ..tiny_sgd_config(&ck, epochs)
    };
    let never = |path| Meddler {
        path,
        steps: 0,
        at: 0,
        after_epoch: 0,
    };
    train(&tiny_sgd_config(&ck, 1), &mut never(&ck)).unwrap();
    let first = std::fs::read(&ck).unwrap();
    // Alone: resumed, its own checkpoints replace the one it found, then each other.
    let outcome = train(&resume(3), &mut never(&ck)).unwrap();
    assert_eq!(outcome.position.epochs_done, 3);
    assert_eq!(cnnc::train::Checkpoint::load(&ck).unwrap().epoch, 3);

    // Another file in place of the checkpoint the run resumed, before its first write.
    for (meddler, epochs_done) in [
        (
            Meddler {
                at: 1,
                ..never(&ck)
            },
            2,
        ),
        // In place of the run's own checkpoint of epoch 2, before it writes epoch 3's.
        (
            Meddler {
                after_epoch: 2,
                ..never(&ck)
            },
            3,
        ),
    ] {
        std::fs::write(&ck, &first).unwrap();
        let config = resume(3);
        let mut meddler = meddler;
        let e = train(&config, &mut meddler).unwrap_err();
        let TrainError::CheckpointWrite {
            error:
                CheckpointError::Appeared {
                    kept: Some(kept),
                    replaced: true,
                    ..
                },
            epochs_done: done,
            ..
        } = &e
        else {
            panic!("{e:?}");
        };
        assert_eq!(*done, epochs_done);
        assert_eq!(std::fs::read(&ck).unwrap(), b"another run's");
        assert_eq!(kept.parent(), ck.parent());
        assert_eq!(
            cnnc::train::Checkpoint::load(kept).unwrap().epoch,
            epochs_done
        );
        let message = e.to_string();
        assert!(
            message.contains("another process wrote this file while this run trained (it is not the checkpoint this run started from or last wrote)"),
            "{message}"
        );
        assert!(message.contains(&kept.display().to_string()), "{message}");
        assert!(
            e.help()
                .unwrap()
                .contains("their own --out and --checkpoint"),
            "{e:?}"
        );
        std::fs::remove_file(kept).unwrap();
    }
}

/// The trained model is not written over a file that another process wrote at `--out` while
/// the run trained, where none was when it started or where an earlier model was: that file
/// stays, the model goes beside it under a name of its own, and the run fails saying so.
/// The file appears while the run writes its checkpoint into a pipe, which it cannot finish
/// before the test reads it.
#[test]
fn a_trained_model_written_meanwhile_by_another_run_is_kept() {
    use std::io::Read;
    if !data_ready() {
        return;
    }
    for earlier in [false, true] {
        let d = dir(&format!("model_appeared_{earlier}"));
        let fifo = d.join("ckpt.pipe");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let out = d.join("m.onnx");
        let (fifo_arg, out_arg) = (fifo.display().to_string(), out.display().to_string());
        if earlier {
            let o = cnnc(&["export", "models/lenet.cnn", "-o", &out_arg]);
            assert!(o.status.success(), "{}", text(&o));
        }
        let mut args = common(&fifo_arg, &out_arg);
        args.extend(["--epochs", "1"]);
        let mut child = Command::new(env!("CARGO_BIN_EXE_cnnc"))
            .args(&args)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Opening the pipe waits for the run to open it, after its epoch; the run then waits
        // for the checkpoint (LeNet's, beyond a pipe's buffer) to be read.
        let opener = {
            let fifo = fifo.clone();
            std::thread::spawn(move || std::fs::File::open(fifo).unwrap())
        };
        while !opener.is_finished() {
            if let Some(status) = child.try_wait().unwrap() {
                let mut err = String::new();
                child
                    .stderr
                    .take()
                    .unwrap()
                    .read_to_string(&mut err)
                    .unwrap();
                panic!("cnnc ended before writing its checkpoint ({status}): {err}");
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let mut pipe = opener.join().unwrap();
        // By a rename, as another run writes it.
        cnnc::fsutil::write_atomic(&out, b"another run's").unwrap();
        let mut checkpoint = Vec::new();
        pipe.read_to_end(&mut checkpoint).unwrap();
        let o = child.wait_with_output().unwrap();
        assert_eq!(o.status.code(), Some(2), "{}", text(&o));
        assert!(cnnc::train::Checkpoint::is_checkpoint_bytes(&checkpoint));
        assert_eq!(std::fs::read(&out).unwrap(), b"another run's");
        let last = json_lines(&o).pop().unwrap();
        let error = last["error"].as_str().unwrap();
        assert!(
            error.contains(&format!(
                "another process wrote {out_arg} while this run trained ({})",
                if earlier {
                    "it is not the file that was there when the run started"
                } else {
                    "it did not exist when the run started"
                }
            )),
            "{error}"
        );
        let kept: Vec<PathBuf> = std::fs::read_dir(&d)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p != &out && p != &fifo)
            .collect();
        assert_eq!(kept.len(), 1, "{kept:?}");
        assert!(error.contains(&kept[0].display().to_string()), "{error}");
        assert!(kept[0].display().to_string().ends_with(".onnx"), "{kept:?}");
        let _ = read_model(&kept[0]);
        assert!(
            last["help"].as_str().unwrap().contains("their own --out"),
            "{last}"
        );
    }
}

/// A resumed run with nothing left to train reports the test accuracy of the test examples
/// it was given: with another --limit-test than the checkpoint's, it is measured again, on
/// those, and said so; the trained model records that figure beside that number. The
/// checkpoint keeps its own.
#[test]
fn nothing_to_train_reports_the_accuracy_of_this_runs_test_examples() {
    if !data_ready() {
        return;
    }
    let d = dir("nothing_to_train_limit_test");
    let (ck, out) = (
        d.join("a.ckpt").display().to_string(),
        d.join("a.onnx").display().to_string(),
    );
    let mut args = common(&ck, &out);
    args.extend(["--epochs", "1"]);
    let first = cnnc(&args);
    assert!(first.status.success(), "{}", text(&first));
    let written = cnnc::train::Checkpoint::load(Path::new(&ck)).unwrap();
    assert_eq!(written.test_examples, Some(200));

    let mut args = common(&ck, &out);
    let at = args.iter().position(|&a| a == "--limit-test").unwrap();
    args[at + 1] = "50";
    args.extend(["--epochs", "1", "--resume"]);
    let again = cnnc(&args);
    assert!(again.status.success(), "{}", text(&again));
    assert!(
        text(&again).contains("on 50 test examples"),
        "{}",
        text(&again)
    );
    let done = json_lines(&again).pop().unwrap();
    let acc = done["test_acc"].as_f64().unwrap();
    assert!(
        (acc - accuracy_of(Path::new(&out), 50)).abs() < 1e-9,
        "{done}"
    );
    let training = onnx_metadata(&out, "cnnc_training");
    assert_eq!(training["test_examples"], 50, "{training}");
    assert_eq!(training["test_acc"], done["test_acc"], "{training}");
    let kept = cnnc::train::Checkpoint::load(Path::new(&ck)).unwrap();
    assert_eq!(
        (kept.test_acc, kept.test_examples),
        (written.test_acc, Some(200))
    );
}

/// Where a nameless temporary file cannot be linked into place (a seccomp or AppArmor rule
/// against `linkat`; here a preloaded shim that refuses it, and leaves a mark that it did),
/// every output goes in place as a named copy: each epoch's checkpoint replaces the run's
/// own last one (not mistaken for another process's), `--resume` continues from it, the
/// model is written, and no temporary file is left.
#[test]
fn training_goes_on_where_links_are_refused() {
    if Runtime::get().is_err() {
        println!("skipped: ONNX Runtime is not installed");
        return;
    }
    let d = dir("links_refused");
    let mark = d.join("linkat-refused");
    let shim_source = d.join("nolink.c");
    std::fs::write(
        &shim_source,
        format!(
            "#include <errno.h>\n#include <fcntl.h>\n#include <unistd.h>\n\
             int linkat(int a, const char *b, int c, const char *e, int f) {{\n\
             (void)a; (void)b; (void)c; (void)e; (void)f;\n\
             int mark = open(\"{}\", O_WRONLY | O_CREAT, 0644);\n\
             if (mark >= 0) close(mark);\n\
             errno = EPERM;\n\
             return -1;\n}}\n",
            mark.display()
        ),
    )
    .unwrap();
    let shim = d.join("nolink.so");
    let built = Command::new("cc")
        .args(["-shared", "-fPIC", "-o"])
        .arg(&shim)
        .arg(&shim_source)
        .status();
    if !matches!(built, Ok(s) if s.success()) {
        println!("skipped: no C compiler (cc) to build the shim that refuses linkat");
        return;
    }
    let work = d.join("run");
    let data = work.join("data");
    std::fs::create_dir_all(&data).unwrap();
    rgb_split(&data, "train", 48, false);
    rgb_split(&data, "t10k", 12, false);
    std::fs::write(
        work.join("m.cnn"),
        "model M(input: [3, 4, 4]) { conv(4, 1) relu global_avgpool flatten linear(3) }\n",
    )
    .unwrap();
    let train = |epochs: &str, extra: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_cnnc"))
            .args(["train", "m.cnn", "--data", "data", "--epochs", epochs])
            .args(["--batch", "16", "--optimizer", "adam", "--lr", "0.05"])
            .args(["--format", "json", "--out", "m.onnx"])
            .args(extra)
            .current_dir(&work)
            .env("LD_PRELOAD", &shim)
            .env("NO_COLOR", "1")
            .output()
            .unwrap()
    };
    let o = train("2", &[]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(epochs(&o).len(), 2, "{}", text(&o));
    assert!(
        mark.exists(),
        "the shim was not used: the test proves nothing"
    );
    let o = train("3", &["--resume"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let resumed = epochs(&o);
    assert_eq!(resumed.len(), 1, "{}", text(&o));
    assert_eq!(resumed[0]["epoch"], 3, "{}", text(&o));
    let mut names: Vec<String> = std::fs::read_dir(&work)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["data", "m.ckpt.safetensors", "m.cnn", "m.onnx"]);
    let session = Runtime::get()
        .unwrap()
        .session(&std::fs::read(work.join("m.onnx")).unwrap(), Device::Cpu)
        .unwrap();
    assert_eq!(session.output_names(), ["output"]);
}

/// A batch beyond the training examples is all of them: a checkpoint written with
/// `--batch 1000` over 300 examples resumes with `--batch 300`, the same batches.
#[test]
fn a_whole_data_set_batch_resumes_under_any_size_that_covers_it() {
    if !data_ready() {
        return;
    }
    let d = dir("whole_batch");
    let (ck, out) = (
        d.join("w.ckpt").display().to_string(),
        d.join("w.onnx").display().to_string(),
    );
    let run = |batch: &str, epochs: &str, resume: bool| {
        let mut args = vec![
            "train",
            "models/lenet.cnn",
            "--limit-train",
            "300",
            "--limit-test",
            "100",
            "--batch",
            batch,
            "--epochs",
            epochs,
            "--checkpoint",
            &ck,
            "--out",
            &out,
        ];
        if resume {
            args.push("--resume");
        }
        cnnc(&args)
    };
    let o = run("1000", "1", false);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let o = run("300", "2", true);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    // A batch that splits the examples otherwise is still refused.
    let o = run("100", "3", true);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
}

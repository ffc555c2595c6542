//! `cnnc run`, `cnnc bench` and `cnnc doctor` end to end: the real binary on ONNX models and
//! .npy inputs written by tests/python/rt_make_models.py (onnx.helper and numpy, independent of
//! cnnc's exporter). A machine without python3+onnx+numpy skips with a printed reason.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

/// The fixture folder, made once per test binary; `None` (with the reason printed) when python3
/// with onnx and numpy is missing.
/// The ONNX models and inputs made by tests/python (python3 with onnx and numpy, which
/// `.ci/run` installs): a failure to make them fails the test, never skips it.
fn fixtures() -> &'static Path {
    static DIR: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let dir = DIR.get_or_init(|| common::make_runtime_fixtures("runtime_cli"));
    match dir {
        Ok(d) => d,
        Err(why) => panic!("the runtime fixtures cannot be made: {why}"),
    }
}

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

fn cnnc_in(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cnnc"));
    cmd.args(args).current_dir(dir).env_remove("ORT_DYLIB_PATH");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let Output {
        status,
        stdout,
        stderr,
    } = cmd.output().expect("the cnnc binary runs");
    let run = Run {
        code: status.code(),
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    };
    assert!(
        !run.stderr.contains("panicked"),
        "cnnc {args:?} panicked:\n{}",
        run.stderr
    );
    run
}

fn cnnc(dir: &Path, args: &[&str]) -> Run {
    cnnc_in(dir, args, &[])
}

fn read_npy(path: &Path) -> (Vec<usize>, Vec<f32>) {
    let a = cnnc::runtime::npy::parse(&std::fs::read(path).unwrap()).unwrap();
    (a.shape, a.data)
}

/// `cnnc run MODEL --input INPUT --output OUT/y.npy` in the fixture folder, which must
/// succeed; the run and the output's path.
fn run_writing(dir: &Path, model: &str, input: &str, out: &str) -> (Run, PathBuf) {
    std::fs::create_dir_all(dir.join(out)).unwrap();
    let y = format!("{out}/y.npy");
    let r = cnnc(dir, &["run", model, "--input", input, "--output", &y]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    (r, dir.join(y))
}

#[test]
fn conv_output_matches_the_hand_computed_cross_correlation() {
    let dir = fixtures();
    let (r, _) = run_writing(dir, "conv.onnx", "x.npy", "out_conv");
    let out_dir = dir.join("out_conv");
    assert!(
        r.stdout.contains("output `y`: [1, 1, 2, 2]"),
        "{}",
        r.stdout
    );
    // [[0,1,2],[3,4,5],[6,7,8]] ⋆ [[0,1],[2,3]]: e.g. top left = 0·0 + 1·1 + 3·2 + 4·3 = 19.
    assert_eq!(
        read_npy(&out_dir.join("y.npy")),
        (vec![1, 1, 2, 2], vec![19.0, 25.0, 37.0, 43.0])
    );
    // The atomic write leaves only the result behind.
    let names: Vec<_> = std::fs::read_dir(&out_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from("y.npy")]);
}

/// `-o /dev/stdout` into a pipe: the array alone goes there, the text to standard error.
#[test]
fn an_output_to_standard_output_gets_no_text_mixed_in() {
    let dir = fixtures();
    let out = Command::new(env!("CARGO_BIN_EXE_cnnc"))
        .args(["run", "conv.onnx", "--input", "x.npy", "-o", "/dev/stdout"])
        .current_dir(dir)
        .env_remove("ORT_DYLIB_PATH")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let array = cnnc::runtime::npy::parse(&out.stdout).unwrap();
    assert_eq!(
        (array.shape, array.data),
        (vec![1, 1, 2, 2], vec![19.0, 25.0, 37.0, 43.0])
    );
    assert!(stderr.contains("output `y`: [1, 1, 2, 2]"), "{stderr}");
    assert!(stderr.contains("wrote /dev/stdout"), "{stderr}");
}

/// `-o` never destroys what it names: the input read from `-` when standard input is that
/// file (`-i - -o /dev/stdin < in.npy`), or an existing file that is no `.npy` array; an
/// earlier output is replaced.
#[test]
fn an_output_that_would_destroy_an_input_or_another_file_is_refused() {
    let dir = fixtures();
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in.npy");
    std::fs::copy(dir.join("x.npy"), &input).unwrap();
    let before = std::fs::read(&input).unwrap();
    let conv = dir.join("conv.onnx").display().to_string();
    let out = Command::new(env!("CARGO_BIN_EXE_cnnc"))
        .args(["run", &conv, "-i", "-", "-o", "/dev/stdin"])
        .stdin(std::fs::File::open(&input).unwrap())
        .env_remove("ORT_DYLIB_PATH")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("it is the input (standard input, `-`)"),
        "{stderr}"
    );
    assert_eq!(std::fs::read(&input).unwrap(), before);

    let notes = tmp.path().join("notes.txt");
    std::fs::write(&notes, "notes").unwrap();
    let notes_s = notes.display().to_string();
    let input_s = input.display().to_string();
    let r = cnnc_in(
        dir,
        &["run", "conv.onnx", "-i", &input_s, "-o", &notes_s],
        &[],
    );
    assert_eq!(r.code, Some(2), "{}", r.stderr);
    assert!(r.stderr.contains("is not a .npy array"), "{}", r.stderr);
    assert_eq!(std::fs::read_to_string(&notes).unwrap(), "notes");

    let y = tmp.path().join("y.npy").display().to_string();
    for _ in 0..2 {
        let r = cnnc_in(dir, &["run", "conv.onnx", "-i", &input_s, "-o", &y], &[]);
        assert_eq!(r.code, Some(0), "{}", r.stderr);
    }
}

#[test]
fn float64_input_is_converted() {
    let dir = fixtures();
    std::fs::create_dir_all(dir.join("out64")).unwrap();
    let r = cnnc(
        dir,
        &[
            "run",
            "conv.onnx",
            "--input",
            "x64.npy",
            "-o",
            "out64/y.npy",
        ],
    );
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert!(r.stdout.contains("converted from float64"), "{}", r.stdout);
    assert_eq!(
        read_npy(&dir.join("out64/y.npy")).1,
        vec![19.0, 25.0, 37.0, 43.0]
    );
    // numpy's `>f4`: the same values, and said so.
    let r = cnnc(
        dir,
        &[
            "run",
            "conv.onnx",
            "--input",
            "xbe.npy",
            "-o",
            "out64/be.npy",
        ],
    );
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert!(
        r.stdout.contains("(converted from big-endian)"),
        "{}",
        r.stdout
    );
    assert_eq!(
        read_npy(&dir.join("out64/be.npy")).1,
        vec![19.0, 25.0, 37.0, 43.0]
    );
}

/// An input whose type declares no shape takes any array, where ONNX Runtime's `[]` would
/// have made it a scalar; bench, which needs a shape to make up its input, says so. A real
/// scalar input is still one.
#[test]
fn an_input_that_declares_no_shape_takes_any_shape() {
    let dir = fixtures();
    let (r, out) = run_writing(dir, "shapeless.onnx", "x.npy", "shapeless_out");
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    let (x_shape, x) = read_npy(&dir.join("x.npy"));
    let (shape, y) = read_npy(&out);
    assert_eq!(shape, x_shape);
    assert_eq!(y, x.iter().map(|v| -v).collect::<Vec<_>>());
    let r = cnnc(dir, &["bench", "shapeless.onnx", "-n", "1"]);
    assert_eq!(r.code, Some(2), "{}", r.stderr);
    assert!(r.stderr.contains("`x` declares no shape"), "{}", r.stderr);
    assert!(r.stderr.contains("\n  help: declare one"), "{}", r.stderr);
    // As JSON, the advice is the help, not part of the error.
    let r = cnnc(
        dir,
        &["bench", "shapeless.onnx", "-n", "1", "--format", "json"],
    );
    assert_eq!(r.code, Some(2), "{}", r.stderr);
    let v: serde_json::Value = serde_json::from_str(r.stdout.trim()).unwrap();
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .ends_with("cannot tell what to feed it"),
        "{v}"
    );
    assert!(
        v["help"].as_str().unwrap().starts_with("declare one"),
        "{v}"
    );
    assert_eq!(v["exit_code"], 2);
    let r = cnnc(dir, &["run", "scalar.onnx", "--input", "x.npy"]);
    assert_eq!(r.code, Some(2), "{}", r.stderr);
    assert!(
        r.stderr
            .contains("the model expects [], the input is [1, 1, 3, 3]")
            && r.stderr.contains("`x` is a scalar"),
        "{}",
        r.stderr
    );
}

#[test]
fn wrong_input_shape_is_a_usage_error_naming_both_shapes() {
    let dir = fixtures();
    let r = cnnc(dir, &["run", "conv.onnx", "--input", "wrong_shape.npy"]);
    assert_eq!(r.code, Some(2));
    assert!(
        r.stderr
            .contains("the model expects [N, 1, 3, 3], the input is [2, 3, 3, 3]"),
        "{}",
        r.stderr
    );
    assert!(!r.stderr.contains("batch axis"), "{}", r.stderr);
    // One example without its batch axis is told how to add it.
    let r = cnnc(dir, &["run", "conv.onnx", "--input", "unbatched.npy"]);
    assert_eq!(r.code, Some(2));
    assert!(
        r.stderr.contains("without the batch axis") && r.stderr.contains("`x[None]`"),
        "{}",
        r.stderr
    );
    // Channels last, [N, H, W, C], is told how to transpose.
    let r = cnnc(dir, &["run", "conv.onnx", "--input", "channels_last.npy"]);
    assert_eq!(r.code, Some(2));
    assert!(
        r.stderr.contains("channels last") && r.stderr.contains("x.transpose(0, 3, 1, 2)"),
        "{}",
        r.stderr
    );
    assert!(!r.stderr.contains("channels last") || !r.stderr.contains("batch axis"));
    // The values of the examples in another shape: told the reshape that fits.
    let tmp = tempfile::tempdir().unwrap();
    for (shape, says) in [
        (
            vec![3, 3],
            "it holds the 9 values of one example: give it the model's shape, batch axis first \
             (numpy: `x.reshape(1, 1, 3, 3)`)",
        ),
        (
            vec![2, 9],
            "each of its 2 examples holds the 9 values the model takes, in another shape: \
             reshape them to its shape (numpy: `x.reshape(2, 1, 3, 3)`)",
        ),
    ] {
        let path = tmp.path().join("x.npy");
        let mut bytes = Vec::new();
        let n = shape.iter().product();
        cnnc::runtime::npy::write_f32(&mut bytes, &shape, &vec![0.5; n]).unwrap();
        std::fs::write(&path, bytes).unwrap();
        let r = cnnc(
            dir,
            &["run", "conv.onnx", "--input", path.to_str().unwrap()],
        );
        assert_eq!(r.code, Some(2));
        assert!(r.stderr.contains(says), "{shape:?}: {}", r.stderr);
    }
    // One image of several channels, channels last: the transpose, never a reshape (which
    // would scramble its pixels).
    let model = tmp.path().join("c.cnn");
    std::fs::write(&model, "model C(input: [3, 4, 4]) { conv(2, 1) }\n").unwrap();
    let path = tmp.path().join("hwc.npy");
    let mut bytes = Vec::new();
    cnnc::runtime::npy::write_f32(&mut bytes, &[4, 4, 3], &[0.5; 48]).unwrap();
    std::fs::write(&path, bytes).unwrap();
    let r = cnnc(
        dir,
        &[
            "run",
            model.to_str().unwrap(),
            "--input",
            path.to_str().unwrap(),
        ],
    );
    assert_eq!(r.code, Some(2));
    assert!(
        r.stderr.contains("(numpy: `x.transpose(2, 0, 1)[None]`)") && !r.stderr.contains("reshape"),
        "{}",
        r.stderr
    );
}

#[test]
fn nan_or_infinite_inputs_are_refused_with_the_count_and_first_index() {
    let dir = fixtures();
    let r = cnnc(dir, &["run", "conv.onnx", "--input", "nan.npy"]);
    assert_eq!(r.code, Some(2), "{}", r.stderr);
    assert!(
        r.stderr
            .contains("2 of the input's 9 values are NaN or infinite (the first at flat index 5)"),
        "{}",
        r.stderr
    );
    assert!(
        r.stdout.is_empty(),
        "nothing is printed as a result: {}",
        r.stdout
    );
}

#[test]
fn an_output_path_that_is_a_folder_is_refused_before_running() {
    let dir = fixtures();
    // The model does not even exist: the output is checked first.
    let r = cnnc(dir, &["run", "missing.onnx", "--input", "x.npy", "-o", "."]);
    assert_eq!(r.code, Some(2), "{}", r.stderr);
    assert!(r.stderr.contains("it is a folder"), "{}", r.stderr);
}

#[test]
fn integer_inputs_are_refused_and_fortran_order_is_converted() {
    let dir = fixtures();
    let r = cnnc(dir, &["run", "conv.onnx", "--input", "xint.npy"]);
    assert_eq!(r.code, Some(2));
    assert!(r.stderr.contains("dtype int64"), "{}", r.stderr);
    // `np.asfortranarray(np.arange(18).reshape(2, 1, 3, 3))`: the same values as C order,
    // so the first image is x.npy's, and so is its output.
    std::fs::create_dir_all(dir.join("out_fortran")).unwrap();
    let r = cnnc(
        dir,
        &[
            "run",
            "conv.onnx",
            "--input",
            "xfortran.npy",
            "-o",
            "out_fortran/y.npy",
        ],
    );
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert!(
        r.stdout.contains("converted from Fortran order"),
        "{}",
        r.stdout
    );
    let (shape, y) = read_npy(&dir.join("out_fortran/y.npy"));
    assert_eq!(shape, vec![2, 1, 2, 2]);
    assert_eq!(y[..4], [19.0, 25.0, 37.0, 43.0]);
    // The second image is 9..17: each output 9 · (0 + 1 + 2 + 3) = 54 more.
    assert_eq!(y[4..], [73.0, 79.0, 91.0, 97.0]);
    // Non-finite outputs from a finite input are shown, and warned of.
    let r = cnnc(dir, &["run", "infinite.onnx", "--input", "ones.npy"]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert!(
        r.stderr
            .contains("warning: 8 of output `y`'s 8 values are NaN or infinite"),
        "{}",
        r.stderr
    );
    // A first output that cannot be written (a string tensor) is named before anything
    // runs; bench times it all the same (it reads no values).
    let r = cnnc(dir, &["run", "string_out.onnx", "--input", "ones.npy"]);
    assert_eq!(r.code, Some(2), "{}", r.stderr);
    assert!(
        r.stderr.contains(
            "the model's first output `text` is string; cnnc run writes tensors of the numeric \
             and bool types NumPy has"
        ),
        "{}",
        r.stderr
    );
    for model in ["int_out.onnx", "string_out.onnx"] {
        let r = cnnc(dir, &["bench", model, "--iterations", "2"]);
        assert_eq!(r.code, Some(0), "{model}: {}", r.stderr);
    }
    // A batch the model fixes at 0 is said to be the model's.
    let r = cnnc(dir, &["bench", "zero_batch.onnx", "--iterations", "2"]);
    assert_eq!(r.code, Some(2), "{}", r.stderr);
    assert!(
        r.stderr.contains(
            "the model's input is [0, 4]: its batch is fixed at 0, which cannot be timed"
        ),
        "{}",
        r.stderr
    );
}

/// A model `cnnc train` wrote (its `cnnc_input` metadata: pixels divided by 255) run on raw
/// pixels runs, with a warning that says to divide them; scaled pixels, or a model without
/// the metadata, get none.
#[test]
fn raw_pixels_into_a_model_trained_on_scaled_ones_are_warned() {
    let dir = fixtures();
    let r = cnnc(dir, &["run", "scaled_input.onnx", "-i", "raw_pixels.npy"]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert!(
        r.stderr
            .contains("warning: the input's values reach 200, but this model was trained on pixels divided by 255"),
        "{}",
        r.stderr
    );
    for (model, input) in [
        ("scaled_input.onnx", "ones.npy"),
        ("two_outputs.onnx", "raw_pixels.npy"),
    ] {
        let r = cnnc(dir, &["run", model, "-i", input]);
        assert_eq!(r.code, Some(0), "{}", r.stderr);
        assert!(
            !r.stderr.contains("divided by 255"),
            "{model}: {}",
            r.stderr
        );
    }
}

/// A foreign model's outputs of other types than float32 are written as .npy files of their
/// own types (NumPy reads them back as the same values); one NumPy has no type for is named.
#[test]
fn outputs_of_other_types_are_written_in_their_types() {
    let dir = fixtures();
    let (r, idx) = run_writing(dir, "typed_outputs.onnx", "ramp.npy", "out_typed");
    assert!(r.stdout.contains("output `idx`: [2] int64"), "{}", r.stdout);
    assert!(
        r.stdout.contains("output `above`: [2, 4] bool"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout
            .contains("the model's outputs that cnnc cannot write are left out: `text` (string)"),
        "{}",
        r.stdout
    );
    // No class scores are made up of indices.
    assert!(!r.stdout.contains("top"), "{}", r.stdout);
    // NumPy, the judge: each file holds the type and the values NumPy computes itself.
    let check = r#"
import sys, numpy as np
x = np.load(sys.argv[1])
base = sys.argv[2][:-len(".npy")]
want = {
    "": x.argmax(1),
    ".above": x > 0.5,
    ".f64": x.astype(np.float64),
    ".i32": x.astype(np.int32),
    ".u8": x.astype(np.uint8),
}
for suffix, w in want.items():
    got = np.load(base + suffix + ".npy")
    assert got.dtype == w.dtype, (suffix, got.dtype, w.dtype)
    assert got.shape == w.shape, (suffix, got.shape, w.shape)
    assert (got == w).all(), (suffix, got, w)
print("ok", len(want))
"#;
    let o = std::process::Command::new("python3")
        .args(["-c", check])
        .arg(dir.join("ramp.npy"))
        .arg(&idx)
        .output()
        .expect("python3 runs");
    assert!(
        o.status.success() && String::from_utf8_lossy(&o.stdout).contains("ok 5"),
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(!idx.with_file_name("y.text.npy").exists());
}

#[test]
fn files_that_are_not_onnx_are_refused_before_onnx_runtime() {
    let dir = fixtures();
    for (model, expect) in [
        ("notes.txt", "not an ONNX model"),
        ("random.onnx", "not an ONNX model"),
        ("empty.onnx", "the file is empty"),
    ] {
        let r = cnnc(dir, &["run", model, "--input", "x.npy"]);
        assert_eq!(r.code, Some(2), "{model}: {}", r.stderr);
        assert!(r.stderr.contains(model), "{model}: {}", r.stderr);
        assert!(r.stderr.contains(expect), "{model}: {}", r.stderr);
    }
}

#[test]
fn missing_files_are_usage_errors() {
    let dir = fixtures();
    let r = cnnc(dir, &["run", "no_such.onnx", "--input", "x.npy"]);
    assert_eq!(r.code, Some(2));
    assert!(
        r.stderr.contains("cannot read the model no_such.onnx"),
        "{}",
        r.stderr
    );
    let r = cnnc(dir, &["run", "conv.onnx", "--input", "no_such.npy"]);
    assert_eq!(r.code, Some(2));
    assert!(
        r.stderr
            .contains("cannot read the input no_such.npy: no such file"),
        "{}",
        r.stderr
    );
    // A .cnn source under another extension is recognised as one.
    std::fs::write(
        dir.join("lenet.txt"),
        "# LeNet\nmodel L(input: [1, 28, 28]) { flatten linear(10) }\n",
    )
    .unwrap();
    let r = cnnc(dir, &["run", "lenet.txt", "--input", "x.npy"]);
    assert_eq!(r.code, Some(2));
    assert!(
        r.stderr.contains("looks like a .cnn source") && r.stderr.contains(".cnn extension"),
        "{}",
        r.stderr
    );
}

/// A model whose weights are external data is run from any folder: the data is looked for
/// beside the model file, as ONNX says, not in the working directory; through a symbolic
/// link, beside the file it leads to (`export -o LINK` writes the data there).
#[test]
fn external_data_is_read_beside_the_model() {
    let dir = fixtures();
    let link = dir.join("classifier_ext_link.onnx");
    if !link.exists() {
        std::os::unix::fs::symlink("ext/classifier_ext.onnx", &link).unwrap();
    }
    for args in [
        &["run", "ext/classifier_ext.onnx", "--input", "ones.npy"][..],
        &["run", "classifier_ext_link.onnx", "--input", "ones.npy"][..],
        &[
            "bench",
            "ext/classifier_ext.onnx",
            "-n",
            "1",
            "--warmup",
            "0",
        ],
    ] {
        let r = cnnc(dir, args);
        assert_eq!(r.code, Some(0), "{args:?}: {}", r.stderr);
    }
    let r = cnnc(
        dir,
        &["run", "ext/classifier_ext.onnx", "--input", "ones.npy"],
    );
    assert!(r.stdout.contains("sample 0: 5"), "{}", r.stdout);
}

#[test]
fn classifier_output_shows_the_top_classes() {
    let dir = fixtures();
    let r = cnnc(dir, &["run", "classifier.onnx", "--input", "ones.npy"]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    // Logits of sample 0 are 0, 2, 4, 6, 8, 10: softmax gives class 5 0.865, class 4 0.117.
    assert!(
        r.stdout
            .contains("sample 0: 5 (0.865)  4 (0.117)  3 (0.016)"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("sample 1:"), "{}", r.stdout);
    // An output that comes out of an activation (a decoder's relu) is no class scores; a
    // linear layer's is.
    for (name, layers, classes) in [
        ("decoder_relu.cnn", "linear(6) relu", false),
        ("decoder_sigmoid.cnn", "linear(6) sigmoid", false),
        ("scores.cnn", "linear(6)", true),
    ] {
        std::fs::write(
            dir.join(name),
            format!("model D(input: [4]) {{ {layers} }}\n"),
        )
        .unwrap();
        let r = cnnc(dir, &["run", name, "--input", "ones.npy"]);
        assert_eq!(r.code, Some(0), "{}", r.stderr);
        assert!(r.stdout.contains("output `output`: [2, 6]"), "{}", r.stdout);
        assert_eq!(r.stdout.contains("top 5 classes"), classes, "{}", r.stdout);
    }
}

/// A `.npy` far longer than its header declares (a sparse 64 GiB file here) is refused after
/// the declared length and one byte, not read whole first.
#[test]
fn an_npy_longer_than_declared_is_refused_without_reading_it_all() {
    let dir = fixtures();
    let path = dir.join("sparse.npy");
    std::fs::copy(dir.join("ones.npy"), &path).unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(1 << 36)
        .unwrap();
    let r = cnnc(dir, &["run", "classifier.onnx", "-i", "sparse.npy"]);
    assert_eq!(r.code, Some(2), "{}", r.stderr);
    assert!(
        r.stderr
            .contains("should be 32 bytes, and the file holds more"),
        "{}",
        r.stderr
    );
}

/// Every output is shown, the first written to `-o`'s file and each other beside it under
/// its (file-safe) name.
#[test]
fn a_model_with_several_outputs_writes_each_one() {
    let dir = fixtures();
    let (r, y) = run_writing(dir, "two_outputs.onnx", "ones.npy", "out_two");
    assert!(r.stdout.contains("output `y`: [2, 4]\n"), "{}", r.stdout);
    assert!(r.stdout.contains("output `z/sq`: [2, 4]\n"), "{}", r.stdout);
    assert!(
        r.stdout.contains("output `n`: [2, 4] int64"),
        "{}",
        r.stdout
    );
    assert!(!r.stdout.contains("left out"), "{}", r.stdout);
    // x + x of ones, not x * x.
    assert_eq!(read_npy(&y), (vec![2, 4], vec![2.0; 8]));
    let z = y.with_file_name("y.z_sq.npy");
    assert!(
        r.stdout.contains(&format!(
            "wrote {} (output `z/sq`)",
            z.strip_prefix(dir).unwrap().display()
        )),
        "{}",
        r.stdout
    );
    assert_eq!(read_npy(&z), (vec![2, 4], vec![1.0; 8]));
    let run_two_to = |out: &str| {
        cnnc(
            dir,
            &["run", "two_outputs.onnx", "-i", "ones.npy", "-o", out],
        )
    };
    let written: Vec<_> = std::fs::read_dir(y.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(written.len(), 3, "{written:?}");
    // To a device: the first output only, and a note that says so.
    let r = run_two_to("/dev/null");
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert!(
        r.stderr.contains(
            "/dev/null is a device or pipe, not a file, so the other outputs (`z/sq`, `n`) are \
             not written"
        ),
        "{}",
        r.stderr
    );
    // To standard output redirected to a file: the same, and nothing written into /dev.
    let out = dir.join("out_two/stdout.npy");
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_cnnc"))
        .current_dir(dir)
        .args([
            "run",
            "two_outputs.onnx",
            "-i",
            "ones.npy",
            "-o",
            "/dev/stdout",
        ])
        .stdout(std::fs::File::create(&out).unwrap())
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        String::from_utf8_lossy(&o.stderr).contains(
            "/dev/stdout is standard output, which holds one array, so the other outputs \
             (`z/sq`, `n`) are not written"
        ),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(!Path::new("/dev/stdout.z_sq.npy").exists());
    assert_eq!(read_npy(&out), (vec![2, 4], vec![2.0; 8]));
    // A file beside that is a link to the first output's file: refused before anything runs.
    let linked = dir.join("out_linked");
    std::fs::create_dir_all(&linked).unwrap();
    std::os::unix::fs::symlink("y.npy", linked.join("y.z_sq.npy")).unwrap();
    let r = run_two_to("out_linked/y.npy");
    assert_eq!(r.code, Some(2), "{}", r.stderr);
    assert!(
        r.stderr
            .contains("the outputs `y` and `z/sq` would both be written to out_linked/y.z_sq.npy"),
        "{}",
        r.stderr
    );
    assert!(!linked.join("y.npy").exists());
    // A folder where a file beside goes: refused, and no file name suggested inside it
    // (the name is cnnc's, not the user's: the way out is another -o).
    let folder = dir.join("out_folder");
    std::fs::create_dir_all(folder.join("y.z_sq.npy")).unwrap();
    let r = run_two_to("out_folder/y.npy");
    assert_eq!(r.code, Some(2), "{}", r.stderr);
    assert!(
        r.stderr.contains(
            "cannot write out_folder/y.z_sq.npy: it is a folder\n  (the output `z/sq` goes \
             beside out_folder/y.npy, named after it and the output: choose another -o)"
        ),
        "{}",
        r.stderr
    );
    assert!(!folder.join("y.npy").exists());
}

/// Two outputs whose file-safe names are the same would write one file: refused before
/// anything runs, naming both.
#[test]
fn outputs_that_would_share_a_file_are_refused() {
    let dir = fixtures();
    std::fs::create_dir_all(dir.join("out_collide")).unwrap();
    let r = cnnc(
        dir,
        &[
            "run",
            "colliding_outputs.onnx",
            "-i",
            "ones.npy",
            "-o",
            "out_collide/c.npy",
        ],
    );
    assert_eq!(r.code, Some(2), "{}", r.stderr);
    assert!(
        r.stderr
            .contains("the outputs `a/b` and `a_b` would both be written to out_collide/c.a_b.npy"),
        "{}",
        r.stderr
    );
    assert_eq!(
        std::fs::read_dir(dir.join("out_collide")).unwrap().count(),
        0
    );
    // Without -o nothing is written, and every output is shown.
    let r = cnnc(dir, &["run", "colliding_outputs.onnx", "-i", "ones.npy"]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert!(
        r.stdout
            .contains("output `a/b`: [2, 4]\noutput `a_b`: [2, 4]"),
        "{}",
        r.stdout
    );
}

/// A named output of a source is shown and written beside the main one, with the values
/// ONNX Runtime's Python API gives for the exported model.
#[test]
fn named_outputs_of_a_source_are_shown_and_written() {
    let dir = fixtures();
    let work = dir.join("named_outputs");
    std::fs::create_dir_all(&work).unwrap();
    std::fs::write(
        work.join("m.cnn"),
        "model M(input: [4]) {\n  linear(3)\n  output aux { relu linear(2) }\n  linear(5)\n}\n",
    )
    .unwrap();
    let x: Vec<f32> = (0..8).map(|i| i as f32 / 4.0 - 1.0).collect();
    let mut bytes = Vec::new();
    cnnc::runtime::npy::write_f32(&mut bytes, &[2, 4], &x).unwrap();
    std::fs::write(work.join("x.npy"), bytes).unwrap();
    let r = cnnc(&work, &["run", "m.cnn", "-i", "x.npy", "-o", "y.npy"]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert!(
        r.stdout
            .contains("output `output`: [2, 5]\noutput `aux`: [2, 2]\n"),
        "{}",
        r.stdout
    );
    let r = cnnc(&work, &["export", "m.cnn", "-o", "m.onnx"]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    let py = std::process::Command::new("python3")
        .current_dir(&work)
        .args([
            "-c",
            "import numpy as np, onnxruntime as ort\n\
             s = ort.InferenceSession('m.onnx', providers=['CPUExecutionProvider'])\n\
             main, aux = s.run(['output', 'aux'], {'input': np.load('x.npy')})\n\
             assert np.allclose(np.load('y.npy'), main, rtol=1e-6, atol=1e-6)\n\
             assert np.allclose(np.load('y.aux.npy'), aux, rtol=1e-6, atol=1e-6)\n\
             assert aux.shape == (2, 2) and np.abs(aux).sum() > 0\n",
        ])
        .output()
        .unwrap();
    assert!(
        py.status.success(),
        "{}",
        String::from_utf8_lossy(&py.stderr)
    );
}

/// Whether CUDA really works here, by `cnnc doctor`'s own test.
fn cuda_works(dir: &Path) -> bool {
    let r = cnnc(dir, &["doctor", "--format", "json"]);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    v["cuda"]["ok"] == serde_json::Value::Bool(true)
}

#[test]
fn cuda_without_cuda_is_an_error_not_a_cpu_fallback() {
    let dir = fixtures();
    let r = cnnc(
        dir,
        &["run", "conv.onnx", "--input", "x.npy", "--device", "cuda"],
    );
    if cuda_works(dir) {
        println!("CUDA works on this machine: checking that --device cuda runs");
        assert_eq!(r.code, Some(0), "{}", r.stderr);
        return;
    }
    assert_eq!(r.code, Some(3), "{}", r.stderr);
    assert!(r.stderr.contains("CUDA is unavailable"), "{}", r.stderr);
    assert!(r.stderr.contains("onnxruntime-gpu"), "{}", r.stderr);
    assert!(
        !r.stdout.contains("output"),
        "nothing ran on the CPU: {}",
        r.stdout
    );
    // `gpu` is the same device as `cuda`.
    let g = cnnc(
        dir,
        &["run", "conv.onnx", "--input", "x.npy", "--device", "gpu"],
    );
    assert_eq!((g.code, g.stderr), (r.code, r.stderr));
}

/// A .cnn model runs with fresh weights, and the output says so.
#[test]
fn running_a_source_says_its_weights_are_untrained() {
    let dir = fixtures();
    let lenet = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/lenet.cnn");
    let mut x = Vec::new();
    cnnc::runtime::npy::write_f32(&mut x, &[1, 1, 28, 28], &[0.5; 784]).unwrap();
    std::fs::write(dir.join("x28.npy"), x).unwrap();
    let r = cnnc(dir, &["run", lenet.to_str().unwrap(), "--input", "x28.npy"]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert!(r.stdout.contains("weights random"), "{}", r.stdout);
    assert!(r.stdout.contains("not trained"), "{}", r.stdout);
    let r = cnnc(dir, &["run", "classifier.onnx", "--input", "ones.npy"]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert!(!r.stdout.contains("weights random"), "{}", r.stdout);
}

#[test]
fn bench_json_has_the_keys_and_positive_numbers() {
    let dir = fixtures();
    let r = cnnc(
        dir,
        &[
            "bench",
            "conv.onnx",
            "--batch",
            "4",
            "--warmup",
            "2",
            "--iterations",
            "20",
            "--format",
            "json",
        ],
    );
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    let v: serde_json::Value = serde_json::from_str(r.stdout.trim()).unwrap();
    assert_eq!(v["model"], "conv.onnx");
    assert_eq!(v["device"], "cpu");
    assert_eq!(v["batch"], 4);
    assert_eq!(v["iterations"], 20);
    for key in ["images_per_sec", "p50_ms", "p99_ms", "mean_ms"] {
        let x = v[key].as_f64().unwrap_or_else(|| panic!("{key} in {v}"));
        assert!(x > 0.0 && x.is_finite(), "{key} = {x}");
    }
    assert!(v["p50_ms"].as_f64() <= v["p99_ms"].as_f64());
}

/// bench reports the process's peak resident memory, which holds at least the model's
/// weights (64 MiB here), as JSON and as text.
#[test]
fn bench_reports_peak_memory_beyond_the_weights() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("wide.cnn"),
        "model Wide(input: [4096]) { linear(4096, bias=false) }\n",
    )
    .unwrap();
    let weights = 4096 * 4096 * 4;
    let args = ["bench", "wide.cnn", "--warmup", "1", "-n", "2"];
    let r = cnnc(dir.path(), &[&args[..], &["--format", "json"]].concat());
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    let v: serde_json::Value = serde_json::from_str(r.stdout.trim()).unwrap();
    let peak = v["peak_memory_bytes"]
        .as_u64()
        .unwrap_or_else(|| panic!("{v}"));
    assert!(peak >= weights, "peak {peak} below the weights' {weights}");
    let r = cnnc(dir.path(), &args);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    let line = r
        .stdout
        .lines()
        .find(|l| l.starts_with("memory      peak "))
        .unwrap_or_else(|| panic!("{}", r.stdout));
    assert!(line.contains("MiB resident"), "{line}");
}

/// The identifiers in backticks in README.md between `from` and the next `to`.
fn readme_names(from: &str, to: &str) -> std::collections::BTreeSet<String> {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let start = readme
        .find(from)
        .unwrap_or_else(|| panic!("README lacks {from}"))
        + from.len();
    let end = start
        + readme[start..]
            .find(to)
            .unwrap_or_else(|| panic!("README lacks {to}"));
    readme[start..end]
        .split('`')
        .skip(1)
        .step_by(2)
        .filter(|w| w.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
        .map(str::to_string)
        .collect()
}

fn json_keys(v: &serde_json::Value) -> std::collections::BTreeSet<String> {
    v.as_object().unwrap().keys().cloned().collect()
}

/// The keys of bench's and doctor's JSON are the ones README.md lists.
#[test]
fn bench_and_doctor_json_keys_are_the_readme_s() {
    let dir = fixtures();
    let r = cnnc(
        dir,
        &[
            "bench",
            "conv.onnx",
            "-n",
            "2",
            "--warmup",
            "1",
            "--format",
            "json",
        ],
    );
    let v: serde_json::Value = serde_json::from_str(r.stdout.trim()).unwrap();
    assert_eq!(
        json_keys(&v),
        readme_names(
            "`cnnc bench --format json` prints one object of results (",
            ", or on"
        )
    );
    let r = cnnc(dir, &["doctor", "--format", "json"]);
    let v: serde_json::Value = serde_json::from_str(r.stdout.trim()).unwrap();
    assert_eq!(
        json_keys(&v),
        readme_names("`cnnc doctor --format json` prints", "(whether")
    );
    for device in ["cpu", "cuda"] {
        assert_eq!(
            json_keys(&v[device]),
            ["error", "ok"].map(String::from).into()
        );
    }
}

/// Ctrl-C during a bench ends the measurement after the current run: the runs so far are
/// reported (JSON says `interrupted`), and the exit code is 130. During the warm-up it ends
/// the warm-up, and one timed run follows.
#[test]
fn bench_ctrl_c_reports_the_runs_so_far() {
    use std::io::{BufRead, BufReader, Read};
    let dir = fixtures();
    let warming = ["--warmup", "1000000000", "-n", "1"];
    for extra in [&["--seconds", "600"][..], &warming] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_cnnc"))
            .args(["bench", "classifier.onnx", "--format", "json"])
            .args(extra)
            .current_dir(dir)
            .env_remove("ORT_DYLIB_PATH")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // The `measuring` line comes once the handler is installed.
        let mut err = BufReader::new(child.stderr.take().unwrap());
        let mut seen = String::new();
        while !seen.contains("measuring") {
            if err.read_line(&mut seen).unwrap() == 0 {
                panic!("bench ended before measuring: {seen}");
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
        // SAFETY: signalling our own child process.
        unsafe {
            libc::kill(child.id() as i32, libc::SIGINT);
        }
        err.read_to_string(&mut seen).unwrap();
        let mut out = String::new();
        child
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut out)
            .unwrap();
        assert_eq!(child.wait().unwrap().code(), Some(130), "{extra:?}: {seen}");
        assert!(seen.contains("stopped by Ctrl-C after"), "{seen}");
        let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
        assert_eq!(v["interrupted"], true, "{out}");
        assert!(v["iterations"].as_u64().unwrap() >= 1, "{out}");
        if extra == warming {
            assert_eq!(v["iterations"], 1, "{out}");
            assert!(v["warmup"].as_u64().unwrap() < 1_000_000_000, "{out}");
        }
    }
}

#[test]
fn bench_text_and_seconds() {
    let dir = fixtures();
    let r = cnnc(dir, &["bench", "scalar.onnx", "--batch", "5", "-n", "1"]);
    assert_eq!(r.code, Some(2), "{}", r.stderr);
    assert!(
        r.stderr
            .contains("is a scalar: it has no batch dimension for --batch"),
        "{}",
        r.stderr
    );
    let r = cnnc(dir, &["bench", "classifier.onnx", "--seconds", "0.2"]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert!(r.stdout.contains("images/s"), "{}", r.stdout);
    assert!(r.stdout.contains("p99"), "{}", r.stdout);
    let r = cnnc(dir, &["bench", "notes.txt"]);
    assert_eq!(r.code, Some(2), "{}", r.stderr);
    // Beyond what a Duration holds: refused before anything runs, not a panic.
    let r = cnnc(dir, &["bench", "classifier.onnx", "--seconds", "1e20"]);
    assert_eq!(r.code, Some(2), "{}", r.stderr);
    assert!(
        r.stderr
            .contains("'--seconds <S>': too large; give a number of seconds"),
        "{}",
        r.stderr
    );
    // A batch whose input alone no machine can hold (12.5 PB) is refused, not an abort.
    let lenet = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/lenet.cnn");
    let r = cnnc(
        dir,
        &[
            "bench",
            lenet.to_str().unwrap(),
            "--batch",
            "4000000000000",
            "-n",
            "1",
        ],
    );
    // A bad argument (2), as in the README's table, not a run-time failure.
    assert_eq!(r.code, Some(2), "{}", r.stderr);
    assert!(
        r.stderr.contains("needs 11.1 PiB for its input alone")
            && r.stderr.contains("use a smaller --batch"),
        "{}",
        r.stderr
    );
    // A model that fixes a shape too large at batch 1: no option to suggest.
    let r = cnnc(dir, &["bench", "huge_input.onnx", "-n", "1"]);
    assert_eq!(r.code, Some(2), "{}", r.stderr);
    assert!(
        r.stderr
            .contains("the model fixes the rest of the input's shape")
            && !r.stderr.contains("--batch"),
        "{}",
        r.stderr
    );
}

#[test]
fn doctor_lists_the_cpu_provider_and_exits_0() {
    let dir = fixtures();
    let r = cnnc(dir, &["doctor"]);
    assert_eq!(r.code, Some(0), "{}\n{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("CPUExecutionProvider"), "{}", r.stdout);
    assert!(r.stdout.contains("libonnxruntime"), "{}", r.stdout);
    let r = cnnc(dir, &["doctor", "--format", "json"]);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["cpu"]["ok"], true);
    assert!(v["providers"]
        .as_array()
        .unwrap()
        .iter()
        .any(|p| p == "CPUExecutionProvider"));
}

#[test]
fn a_wrong_ort_dylib_path_is_named_precisely() {
    let dir = fixtures();
    let missing = dir.join("nowhere/libonnxruntime.so");
    let missing = missing.to_str().unwrap();
    for args in [
        &["doctor"][..],
        &["run", "conv.onnx", "--input", "x.npy"][..],
    ] {
        let r = cnnc_in(dir, args, &[("ORT_DYLIB_PATH", missing)]);
        assert_eq!(r.code, Some(3), "{args:?}: {}", r.stderr);
        assert!(
            r.stderr.contains(&format!(
                "ORT_DYLIB_PATH={missing} points to a file that does not exist"
            )),
            "{args:?}: {}",
            r.stderr
        );
    }
    // A file that is not a shared library: the loader's reason is shown.
    let r = cnnc_in(
        dir,
        &["run", "conv.onnx", "--input", "x.npy"],
        &[("ORT_DYLIB_PATH", dir.join("notes.txt").to_str().unwrap())],
    );
    assert_eq!(r.code, Some(3), "{}", r.stderr);
    assert!(
        r.stderr.contains("could not load ONNX Runtime"),
        "{}",
        r.stderr
    );
}

/// A library with ONNX Runtime's entry point that gives no API (a stub, another build): ort
/// panics inside, which is said as the library's failure to load (exit 3), not a panic.
#[test]
fn a_library_without_an_api_is_no_panic() {
    let dir = fixtures();
    let build = tempfile::tempdir().unwrap();
    let c = build.path().join("fake.c");
    std::fs::write(
        &c,
        "#include <stddef.h>\n\
         typedef struct { const void* (*GetApi)(unsigned); const char* (*GetVersionString)(void); } OrtApiBase;\n\
         static const void* getapi(unsigned v) { return NULL; }\n\
         static const char* ver(void) { return \"1.40.0\"; }\n\
         static OrtApiBase b = { getapi, ver };\n\
         const OrtApiBase* OrtGetApiBase(void) { return &b; }\n",
    )
    .unwrap();
    let lib = build.path().join("libonnxruntime.so.1.40.0");
    let built = std::process::Command::new("cc")
        .args(["-shared", "-fPIC", "-o"])
        .arg(&lib)
        .arg(&c)
        .status();
    if !built.is_ok_and(|s| s.success()) {
        println!("skipped: no C compiler to build a stub library");
        return;
    }
    for args in [
        &["doctor"][..],
        &["run", "conv.onnx", "--input", "x.npy"][..],
    ] {
        let r = cnnc_in(dir, args, &[("ORT_DYLIB_PATH", lib.to_str().unwrap())]);
        assert_eq!(r.code, Some(3), "{args:?}: {}", r.stderr);
        assert!(
            r.stderr.contains("its API could not be initialised"),
            "{}",
            r.stderr
        );
        assert!(!r.stderr.contains("panicked"), "{}", r.stderr);
    }
}

/// A model ONNX Runtime refuses to load is the user's file (exit 2, named); a failure while
/// running is exit 3. Either way the error is said once, in cnnc's words: ONNX Runtime's own
/// log line (with its colour codes) stays quiet unless CNNC_ORT_LOG asks for it.
#[test]
fn load_and_run_failures_are_said_once_with_the_right_exit_code() {
    let dir = fixtures();
    let r = cnnc(dir, &["run", "cycle.onnx", "--input", "ones.npy"]);
    assert_eq!(r.code, Some(2), "{}", r.stderr);
    assert!(
        r.stderr
            .contains("cycle.onnx: ONNX Runtime cannot load the model"),
        "{}",
        r.stderr
    );
    let r = cnnc(dir, &["run", "reshape.onnx", "--input", "ones.npy"]);
    assert_eq!(r.code, Some(3), "{}", r.stderr);
    assert!(r.stderr.contains("cannot be reshaped"), "{}", r.stderr);
    assert!(!r.stderr.contains("[E:onnxruntime"), "{}", r.stderr);
    // Which node failed, in words, without ONNX Runtime's C++ source location and signature.
    assert!(r.stderr.contains("Reshape node"), "{}", r.stderr);
    for internal in [
        "onnxruntime_src",
        "reshape_helper.h",
        "onnxruntime::",
        "was false",
    ] {
        assert!(!r.stderr.contains(internal), "{internal}: {}", r.stderr);
    }
    let r = cnnc_in(
        dir,
        &["run", "reshape.onnx", "--input", "ones.npy"],
        &[("CNNC_ORT_LOG", "error")],
    );
    assert!(r.stderr.contains("[E:onnxruntime"), "{}", r.stderr);
}

/// `export -o` replaces a model another tool wrote, over 64 KiB (judged by its first bytes)
/// or one whose weights are external data, as it replaces its own.
#[test]
fn export_replaces_models_other_tools_wrote() {
    let dir = fixtures();
    let src = dir.join("tiny.cnn");
    std::fs::write(&src, "model T(input: [1, 3, 3]) { conv(2, 1) }\n").unwrap();
    for model in ["big.onnx", "ext/classifier_ext.onnx"] {
        let target = dir.join(format!("replaced_{}", model.replace('/', "_")));
        std::fs::copy(dir.join(model), &target).unwrap();
        assert!(
            model != "big.onnx" || std::fs::metadata(&target).unwrap().len() > 1 << 16,
            "the fixture is meant to be over 64 KiB"
        );
        let r = cnnc(dir, &["export", "tiny.cnn", "-o", target.to_str().unwrap()]);
        assert_eq!(r.code, Some(0), "{model}: {}", r.stderr);
        assert!(r.stderr.contains("wrote"), "{model}: {}", r.stderr);
        let bytes = std::fs::read(&target).unwrap();
        assert!(cnnc::runtime::check_model_bytes(&bytes).is_ok(), "{model}");
    }
}

/// Runs cnnc in `dir` with `stdin` piped to it. A write that fails (cnnc refused before
/// reading) is no error.
fn cnnc_piped(dir: &Path, args: &[&str], stdin: &[u8]) -> (Option<i32>, String, String) {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_cnnc"))
        .args(args)
        .current_dir(dir)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let _ = child.stdin.take().unwrap().write_all(stdin);
    let o = child.wait_with_output().unwrap();
    (
        o.status.code(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// `-` is standard input as a model, for `run` and `bench` as for `check`; as an output it
/// is refused before any work, rather than made a file named `-`.
#[test]
fn a_dash_reads_standard_input_and_is_no_output_name() {
    let dir = fixtures();
    let out = tempfile::tempdir().unwrap();
    let x = out.path().join("x.npy");
    let mut npy = Vec::new();
    cnnc::runtime::npy::write_f32(&mut npy, &[1, 4], &[1.0, 2.0, 3.0, 4.0]).unwrap();
    std::fs::write(&x, npy).unwrap();
    std::fs::write(
        out.path().join("m.cnn"),
        "model M(input: [4]) { linear(3) }\n",
    )
    .unwrap();
    let (code, stdout, stderr) = cnnc_piped(
        dir,
        &["run", "-", "--input", x.to_str().unwrap()],
        b"model M(input: [4]) { linear(3) }\n",
    );
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.contains("[1, 3]"), "{stderr}");
    // The input from standard input, the model from a file; not both from there.
    let (code, stdout, stderr) = cnnc_piped(
        out.path(),
        &["run", "m.cnn", "-i", "-"],
        &std::fs::read(&x).unwrap(),
    );
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.contains("[1, 3]"), "{stderr}");
    // A header that declares more than can be read: refused from the header, not read on
    // until memory runs out (an abort, before).
    let mut huge = Vec::new();
    cnnc::runtime::npy::write_f32(&mut huge, &[1, 4], &[0.0; 4]).unwrap();
    let length = u16::from_le_bytes([huge[8], huge[9]]) as usize;
    let header =
        String::from_utf8_lossy(&huge[10..10 + length]).replace("(1, 4)", "(99999999999, 4)");
    let mut huge = huge[..8].to_vec();
    huge.extend_from_slice(&(header.len() as u16).to_le_bytes());
    huge.extend_from_slice(header.as_bytes());
    let (code, _, stderr) = cnnc_piped(out.path(), &["run", "m.cnn", "-i", "-"], &huge);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("its header declares"), "{stderr}");
    // Nothing piped in: said so, with what belongs there.
    let o = Command::new(env!("CARGO_BIN_EXE_cnnc"))
        .args(["run", "m.cnn", "-i", "-"])
        .current_dir(out.path())
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("standard input is empty; the input is a .npy array"),
        "{stderr}"
    );
    let r = cnnc(out.path(), &["run", "-", "-i", "-"]);
    assert_eq!(r.code, Some(2), "{}", r.stderr);
    assert!(r.stderr.contains("both `-`"), "{}", r.stderr);
    // The same pipe by another name: said as such, not "the input is empty".
    #[cfg(target_os = "linux")]
    for args in [
        ["run", "-", "-i", "/dev/stdin"],
        ["run", "/dev/stdin", "-i", "-"],
    ] {
        // Refused before anything is read: the pipe may close unread.
        let model = std::fs::read(out.path().join("m.cnn")).unwrap();
        let (code, _, stderr) = cnnc_piped(out.path(), &args, &model);
        assert_eq!(code, Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.contains("/dev/stdin is standard input, which `-` reads too"),
            "{args:?}: {stderr}"
        );
    }
    for args in [
        &["export", "m.cnn", "-o", "-"][..],
        &["run", "m.cnn", "--input", "x.npy", "-o", "-"][..],
        &["train", "m.cnn", "--data", "d", "--out", "-"][..],
    ] {
        let r = cnnc(out.path(), args);
        assert_eq!(r.code, Some(2), "{args:?}: {}", r.stderr);
        assert!(
            r.stderr.contains("cannot write -: an output is a file"),
            "{args:?}: {}",
            r.stderr
        );
        assert!(!out.path().join("-").exists(), "{args:?}");
    }
}

/// Ctrl-C while `run -o` writes its output stops the write: exit 130, the temporary file
/// removed, the output not written. (Tried again where the write ended before the signal.)
#[test]
fn ctrl_c_during_the_output_write_leaves_no_partial_file() {
    use std::time::{Duration, Instant};
    fixtures();
    let dir = tempfile::tempdir().unwrap();
    // 256 MiB of output.
    std::fs::write(
        dir.path().join("up.cnn"),
        "model U(input: [1, 1024, 1024]) { upsample(8) }\n",
    )
    .unwrap();
    let mut x = Vec::new();
    cnnc::runtime::npy::write_f32(&mut x, &[1, 1, 1024, 1024], &vec![0.5; 1 << 20]).unwrap();
    std::fs::write(dir.path().join("x.npy"), x).unwrap();
    for attempt in 0.. {
        let mut child = Command::new(env!("CARGO_BIN_EXE_cnnc"))
            .args(["run", "up.cnn", "-i", "x.npy", "-o", "y.npy"])
            .current_dir(dir.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let started = Instant::now();
        let caught = loop {
            if common::temporary_file_size(child.id(), dir.path()).is_some_and(|n| n > 0) {
                break true;
            }
            if child.try_wait().unwrap().is_some() {
                break false;
            }
            assert!(
                started.elapsed() < Duration::from_secs(120),
                "run never wrote"
            );
            std::thread::sleep(Duration::from_millis(1));
        };
        if !caught {
            let o = child.wait_with_output().unwrap();
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
            assert!(attempt < 5, "the write always ended before the signal");
            std::fs::remove_file(dir.path().join("y.npy")).unwrap();
            continue;
        }
        // SAFETY: kill() with a live child's pid and a valid signal number.
        unsafe {
            libc::kill(child.id() as libc::pid_t, libc::SIGINT);
        }
        let o = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        if o.status.success() {
            // The write ended between the look and the signal.
            assert!(attempt < 5, "the write always ended before the signal");
            std::fs::remove_file(dir.path().join("y.npy")).unwrap();
            continue;
        }
        assert_eq!(o.status.code(), Some(130), "{err}");
        assert!(
            err.contains("stopped by Ctrl-C: y.npy was not written"),
            "{err}"
        );
        let mut left: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        left.sort();
        assert_eq!(left, ["up.cnn", "x.npy"], "no output, no temporary file");
        break;
    }
}

/// A .cnn whose weights pass protobuf's 2 GiB cannot be run from memory: `run` and `bench`
/// refuse it before making its weights (at once, with nothing allocated for them), and say
/// to export it first.
#[test]
fn a_source_over_two_gib_of_weights_is_refused_before_its_weights_are_made() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("w.cnn"),
        "model W(input: [23200]) { linear(23200) }\n",
    )
    .unwrap();
    for args in [
        &["run", "w.cnn", "-i", "missing.npy"][..],
        &["bench", "w.cnn", "-n", "1"],
    ] {
        let r = cnnc(dir.path(), args);
        assert_eq!(r.code, Some(2), "{args:?}: {}", r.stderr);
        assert!(
            r.stderr
                .contains("has 2,153,052,800 bytes of weights, over the 2,147,483,647")
                && r.stderr.contains("`cnnc export w.cnn --model W -o W.onnx`"),
            "{args:?}: {}",
            r.stderr
        );
    }
}

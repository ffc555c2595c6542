//! `cnnc export --dynamic-size`: the exported model runs at sizes other than the declared
//! one and gives there what a fixed export at that size gives (same weights); a layer whose
//! export holds at the declared size only is refused with its place, and nothing written.

mod common;

use std::path::Path;
use std::process::{Command, Output};

fn cnnc(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cnnc"))
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A fully convolutional network through every layer kind whose export follows the input's
/// size (an input normalization, strided and dilated convs, reflection padding, batch, group,
/// instance and layer norms and a layer scale,
/// concat, a squeeze-and-excitation gate, a residual, asymmetric average pooling, ceil-mode
/// pooling at stride 1 (torchvision's GoogLeNet), channel
/// and pixel (un)shuffles, a transposed conv, nearest and bilinear upsampling; a shape
/// assertion that reads the input's size, which checks and exports nothing), and a
/// classifier whose bilinear resampling to a size and adaptive and global average and max
/// pooling to one pixel (fastai's concat pooling) fix the size before its `flatten`; a
/// U-Net whose upsamplings (bilinear, with and without aligned corners, and nearest, at
/// ratios no whole factor gives) and crops take the sizes of tensors that follow the
/// input's, and an image-pooling branch spread back over a named tensor's size (DeepLab's).
const MODELS: &str = "
model Fcn(input: [3, HW]) {
    normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225])
    pad(1, reflect=true) conv(8, 3) batchnorm relu
    conv(16, 3, stride=2, pad=1) groupnorm(4) relu
    concat { { conv(8, 1) } { maxpool(3, stride=1, pad=1) conv(8, 1) } { maxpool(3, stride=1, pad=1, ceil=true) conv(8, 1) } }
    channel_shuffle(2)
    conv(16, 1)
    gate { global_avgpool conv(4, 1) relu conv(16, 1) sigmoid }
    residual { conv(16, 3, pad=1) instancenorm relu }
    residual { conv(16, 7, pad=3, groups=16) layernorm conv(32, 1) gelu conv(16, 1) layer_scale(0.5) }
    avgpool(2, stride=1, pad=[0, 1, 0, 1])
    pixel_unshuffle(2)
    avgpool(2, stride=2)
    convT(32, 2, stride=2)
    upsample(2)
    upsample(2, bilinear=true)
    pixel_shuffle(2)
    conv(3, 3, pad=2, dilation=2)                  : [3, input.h * 2, input.w * 2]
}
model Unet(input: [3, HW]) {
    conv(8, 3, pad=1) relu as e1
    conv(8, 3, stride=2, pad=1) relu as e2
    conv(16, 3, stride=3, pad=1) relu as e3
    concat { {} { global_avgpool conv(4, 1) upsample(size=[e3.h, e3.w]) } }
    upsample(size=[e2.h, e2.w], bilinear=true)
    concat { e2 {} } conv(8, 3, pad=1) relu
    upsample(size=[e1.h, e1.w])
    residual { conv(8, 3, pad=1) } shortcut { e1 }
    conv(8, 3) relu as valid
    maxpool(2) conv(8, 3) relu convT(8, 2, stride=2)
    concat { crop(valid) {} }
    upsample(size=[input.h, input.w], bilinear=true, align_corners=true)
    conv(2, 1)
}
model Head(input: [3, HW]) {
    conv(8, 3, pad=1) relu maxpool(2)
    upsample(size=[12, 12], bilinear=true) conv(8, 3) relu
    concat { { adaptive_avgpool(1) } { adaptive_maxpool(1) } { global_maxpool } }
    flatten linear(10)
}
";

fn export(dir: &Path, model: &str, hw: &str, dynamic: bool) -> String {
    let tag = hw.replace(", ", "x");
    let src = dir.join(format!("{model}_{tag}.cnn"));
    std::fs::write(&src, MODELS.replace("HW", hw)).unwrap();
    let out = dir.join(format!(
        "{model}_{tag}{}.onnx",
        if dynamic { "_dynamic" } else { "" }
    ));
    let (src, out_s) = (src.display().to_string(), out.display().to_string());
    let mut args = vec![
        "export", &src, "--model", model, "--seed", "3", "-o", &out_s,
    ];
    if dynamic {
        args.push("--dynamic-size");
    }
    let o = cnnc(&args);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    out_s
}

#[test]
fn a_dynamic_export_runs_at_other_sizes_as_fixed_exports_there() {
    common::require_python();
    let dir = tempfile::tempdir().unwrap();
    for (model, declared, others) in [
        ("Fcn", "32, 32", &["48, 40", "64, 24", "32, 32"][..]),
        ("Head", "32, 32", &["33, 29", "20, 50"][..]),
        ("Unet", "32, 32", &["41, 83", "97, 23", "50, 50"][..]),
    ] {
        let dynamic = export(dir.path(), model, declared, true);
        let fixed: Vec<String> = others
            .iter()
            .map(|hw| export(dir.path(), model, hw, false))
            .collect();
        agree(model, &dynamic, &fixed);
    }
}

/// `check_dynamic.py`: the dynamic export runs at each fixed export's size, and gives what
/// it gives.
fn agree(what: &str, dynamic: &str, fixed: &[String]) {
    let args: Vec<&str> = std::iter::once(dynamic)
        .chain(fixed.iter().map(String::as_str))
        .collect();
    let (ok, text) = common::python_script("check_dynamic.py", &args);
    assert!(ok, "{what}:\n{text}");
    assert_eq!(
        text.matches("max difference").count(),
        fixed.len(),
        "{text}"
    );
}

/// With --main-output-only, the layers that lead only to a tensor the main output takes its
/// size from are written too (at a fixed size they are left out), and so are their weights;
/// a --weights file without them will do, as their values reach no output. A tensor read
/// for its size alone is no dropped tensor.
#[test]
fn main_output_only_keeps_the_layers_a_size_is_taken_from() {
    common::require_python();
    let dir = tempfile::tempdir().unwrap();
    let text = "model M(input: [3, HW]) {
    conv(8, 3, pad=1) relu
    conv(8, 3, stride=2, pad=1) as half
    output aux { global_avgpool flatten linear(3) }
    input conv(4, 3, stride=2, pad=1) relu
    maxpool(2) upsample(size=[half.h, half.w])
}
";
    let export = |hw: &str, dynamic: bool| {
        let tag = hw.replace(", ", "x");
        let src = dir.path().join(format!("m{tag}.cnn"));
        std::fs::write(&src, text.replace("HW", hw)).unwrap();
        let out = dir.path().join(format!("m{tag}{dynamic}.onnx"));
        let (src_s, out_s) = (src.display().to_string(), out.display().to_string());
        let mut args = vec!["export", &src_s, "--main-output-only", "-o", &out_s];
        if dynamic {
            args.push("--dynamic-size");
        }
        let o = cnnc(&args);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        (out_s, stderr(&o))
    };
    let (dynamic, said) = export("32, 32", true);
    // conv1 (224), conv2 (584) and conv3 (112); not the aux head's linear.
    assert!(said.contains("920 parameters"), "{said}");
    let (_, said) = export("32, 32", false);
    assert!(said.contains("112 parameters"), "{said}");
    let fixed: Vec<String> = ["40, 24", "17, 50"]
        .iter()
        .map(|hw| export(hw, false).0)
        .collect();
    agree("main output only", &dynamic, &fixed);

    let bytes = |n: usize| vec![0u8; 4 * n];
    let (weight, bias) = (bytes(4 * 3 * 3 * 3), bytes(4));
    let views = [
        ("conv3.weight", vec![4, 3, 3, 3], &weight),
        ("conv3.bias", vec![4], &bias),
    ]
    .map(|(name, dims, data)| {
        let view =
            safetensors::tensor::TensorView::new(safetensors::Dtype::F32, dims, data).unwrap();
        (name, view)
    });
    let weights = dir.path().join("conv3.safetensors");
    std::fs::write(&weights, safetensors::serialize(views, None).unwrap()).unwrap();
    let src = dir.path().join("m32x32.cnn").display().to_string();
    let out = dir.path().join("w.onnx").display().to_string();
    let w = weights.display().to_string();
    let o = cnnc(&[
        "export",
        &src,
        "--main-output-only",
        "--dynamic-size",
        "--weights",
        &w,
        "-o",
        &out,
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));

    let alone = dir.path().join("alone.cnn");
    std::fs::write(
        &alone,
        "model M(input: [3, 32, 32]) {
    conv(8, 3, stride=2, pad=1) as half
    input conv(4, 3, stride=4, pad=1) upsample(size=[half.h, half.w])
}
",
    )
    .unwrap();
    let o = cnnc(&["check", &alone.display().to_string()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(!stderr(&o).contains("never used"), "{}", stderr(&o));
}

/// A crop that the tensor it joins outgrows at some input size (a transposed conv of
/// kernel 3 and stride 2 gives 2·⌊n/2⌋ + 1 rows, one more than an even n): the declared,
/// odd size runs; an even one fails naming the crop and saying what to do, and writes
/// nothing.
#[test]
fn a_crop_its_joined_tensor_outgrows_fails_at_run_time_saying_why() {
    common::require_python();
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("c.cnn");
    std::fs::write(
        &src,
        "model C(input: [1, 33, 33]) {
    conv(4, 3, pad=1) relu as a
    maxpool(2) convT(4, 3, stride=2)
    concat { crop(a) {} }
    conv(2, 1)
}
",
    )
    .unwrap();
    let model = dir.path().join("c.onnx").display().to_string();
    let o = cnnc(&[
        "export",
        &src.display().to_string(),
        "--dynamic-size",
        "--allow",
        "unused_input",
        "-o",
        &model,
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let run = |side: usize| {
        let x = dir.path().join(format!("x{side}.npy"));
        let mut bytes = Vec::new();
        let data = vec![0.5f32; side * side];
        cnnc::runtime::npy::write_f32(&mut bytes, &[1, 1, side, side], &data).unwrap();
        std::fs::write(&x, bytes).unwrap();
        let y = dir.path().join(format!("y{side}.npy"));
        let o = cnnc(&[
            "run",
            &model,
            "-i",
            &x.display().to_string(),
            "-o",
            &y.display().to_string(),
        ]);
        (o, y.exists())
    };
    let (o, wrote) = run(33);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(wrote);
    let (o, wrote) = run(32);
    let said = stderr(&o);
    assert_eq!(o.status.code(), Some(3), "{said}");
    assert!(!wrote, "{said}");
    for part in [
        "the Reshape node 'concat1.branch1.crop1' failed",
        "Input shape:{1,4,32,32}, requested shape:{1,4,33,33}",
        "the height and width of the tensor it joins",
        "`cnnc check` shows where the sizes part",
    ] {
        assert!(said.contains(part), "{part}: {said}");
    }
}

/// Each layer whose export holds at the declared size only, in a model otherwise fine:
/// the error names its line and column and says why; no file is written.
#[test]
fn size_dependent_layers_are_refused_with_their_place() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("flatten linear(10)", "flatten", "global_avgpool"),
        ("maxpool(3, stride=2, ceil=true)", "maxpool", "ceil-mode pooling with a stride"),
        ("avgpool(3, stride=[1, 2], ceil=true)", "avgpool", "ceil-mode pooling with a stride"),
        ("adaptive_avgpool(2)", "adaptive_avgpool", "to 2×2"),
        ("adaptive_maxpool([2, 3])", "adaptive_maxpool", "to 2×3"),
        // A crop of a tensor of fixed size to the size of one that varies.
        (
            "global_avgpool upsample(size=[24, 24], bilinear=true) as big input conv(4, 3) crop(big)",
            "crop",
            "crops `upsample1`, whose size is fixed at [8, 24, 24]",
        ),
        // A tensor's size read in arithmetic, not as `size=[skip.h, skip.w]`.
        (
            "conv(4, 1) as a upsample(size=[a.h, a.w * 2], bilinear=true)",
            "a.h",
            "reads a height or width",
        ),
        (
            "upsample(size=[20, 20])",
            "upsample",
            "nearest upsampling to a fixed size",
        ),
        (
            "convT(8, 3, stride=2, pad=1, output_pad=2, dilation=3)",
            "convT",
            "output_pad",
        ),
        (
            "concat { { upsample(size=[16, 16], bilinear=true) } {} }",
            "concat",
            "fixed at [8, 16, 16]",
        ),
        ("maxpool([in.h, in.w])", "in.h", "reads a height or width"),
        ("upsample(41)", "upsample", "float32 reciprocal"),
        (
            "avgpool(3, stride=1, pad=1, count_include_pad=false)",
            "avgpool",
            "out of the divisor",
        ),
    ];
    for (body, at, why) in cases {
        let text = format!("model M(input: [8, 16, 16]) {{\n    relu {body}\n}}\n");
        let column = 10 + body.find(at).unwrap_or_else(|| panic!("{at} in {body}"));
        let src = dir.path().join("m.cnn");
        std::fs::write(&src, &text).unwrap();
        let check = cnnc(&["check", &src.display().to_string()]);
        assert_eq!(check.status.code(), Some(0), "{body}: {}", stderr(&check));
        let out = dir.path().join("m.onnx");
        let _ = std::fs::remove_file(&out);
        let o = cnnc(&[
            "export",
            &src.display().to_string(),
            "--dynamic-size",
            "-o",
            &out.display().to_string(),
        ]);
        let e = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{body}: {e}");
        assert!(
            e.contains(&format!(
                "m.cnn:2:{column}: cannot export with a variable input size"
            )),
            "{body}: {e}"
        );
        assert!(e.contains(why), "{body}: {e}");
        assert!(!out.exists(), "{body}");
        // At the declared size it exports.
        let o = cnnc(&[
            "export",
            &src.display().to_string(),
            "-o",
            &out.display().to_string(),
        ]);
        assert_eq!(o.status.code(), Some(0), "{body}: {}", stderr(&o));
    }
    let flat = dir.path().join("flat.cnn");
    std::fs::write(&flat, "model F(input: [16]) { linear(4) }\n").unwrap();
    let o = cnnc(&[
        "export",
        &flat.display().to_string(),
        "--dynamic-size",
        "-o",
        &dir.path().join("f.onnx").display().to_string(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("not an image [C, H, W]"),
        "{}",
        stderr(&o)
    );
}

/// At a size its downsampling does not divide, a U-Net's concat meets tensors a pixel apart
/// and ONNX Runtime fails: `cnnc run` and `bench` add what the model's metadata says (it was
/// exported with a variable size, downsampling by 2 here) and the nearest size that fits.
#[test]
fn a_size_the_downsampling_does_not_divide_is_told_the_nearest_that_does() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("u.cnn");
    std::fs::write(
        &src,
        "model U(input: [1, 16, 16]) {\n conv(4, 3, pad=1) relu as e1\n maxpool(2)\n \
         conv(8, 3, pad=1) relu\n upsample(2)\n concat { {} e1 }\n conv(2, 1)\n}\n",
    )
    .unwrap();
    let model = dir.path().join("u.onnx");
    let o = cnnc(&[
        "export",
        src.to_str().unwrap(),
        "--dynamic-size",
        "-o",
        model.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let x = dir.path().join("x.npy");
    for (side, fails) in [(15, true), (14, false)] {
        let mut bytes = Vec::new();
        let n = side * side;
        cnnc::runtime::npy::write_f32(&mut bytes, &[1, 1, side, side], &vec![0.5; n]).unwrap();
        std::fs::write(&x, bytes).unwrap();
        let o = cnnc(&["run", model.to_str().unwrap(), "-i", x.to_str().unwrap()]);
        if fails {
            assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
            assert!(
                stderr(&o).contains(
                    "the model was exported with --dynamic-size (and checked at 16×16); it \
                     downsamples by 2×2 in all, and at 15×15"
                ) && stderr(&o).contains("try 16×16")
                    && stderr(&o).contains("the tensors a layer joins"),
                "{}",
                stderr(&o)
            );
        } else {
            assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        }
    }
    let o = cnnc(&[
        "bench",
        model.to_str().unwrap(),
        "--size",
        "15x15",
        "-n",
        "1",
    ]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(stderr(&o).contains("try 16×16"), "{}", stderr(&o));
}

/// A conv left too small for its window at a size the downsampling does not divide is not
/// blamed on a join, is named as the model names it (not ONNX Runtime's rewrite), and the
/// sizes offered include those from the checked size up, which always fit.
#[test]
fn a_layer_too_small_for_its_window_at_a_variable_size_is_told_so() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("f.cnn");
    std::fs::write(
        &src,
        "model F(input: [1, 16, 16]) {\n conv(4, 3) maxpool(2) conv(4, 5) as last relu\n}\n",
    )
    .unwrap();
    let model = dir.path().join("f.onnx");
    let o = cnnc(&[
        "export",
        src.to_str().unwrap(),
        "--dynamic-size",
        "-o",
        model.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let x = dir.path().join("x.npy");
    let mut bytes = Vec::new();
    cnnc::runtime::npy::write_f32(&mut bytes, &[1, 1, 7, 7], &[0.5; 49]).unwrap();
    std::fs::write(&x, bytes).unwrap();
    let o = cnnc(&["run", model.to_str().unwrap(), "-i", x.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    let e = stderr(&o);
    assert!(
        !e.contains("joins") && e.contains("smaller than its window"),
        "{e}"
    );
    assert!(
        e.contains("or a size from 16×16 up that 2×2 divides"),
        "{e}"
    );
    assert!(!e.contains("_nchwc"), "{e}");
}

//! Gradient checks: for every layer kind and a small model of each architecture family, the
//! gradient graph's `grad.<p>` must agree with central finite differences of its own `loss`
//! output, run through ONNX Runtime in float32 (ORT has no float64 Conv).
//!
//! For each trainable parameter p and a random direction u (standard normal, p's shape), the
//! analytic directional derivative an = <grad.p, u> is compared with central differences
//! D(ε) = (L(p + εu) − L(p − εu)) / 2ε for ε = 2e-3 … 1.6e-5 (halving) and Richardson's
//! extrapolations (4·D(ε/2) − D(ε)) / 3, which remove the ε² term that batch norm on small
//! batches makes large. The check passes when one of these estimates fd satisfies
//! |fd − an| ≤ 2e-2 · max(|fd|, |an|) + 3e-4: large steps can cross a kink of relu or max
//! pooling, small ones drown in float32 rounding, but a wrong gradient is off at every step.
//! Dropout reads its mask from an input so the loss is deterministic.

use cnnc::onnx::{self, Init, ParamKind, Weights};
use cnnc::runtime::{Device, Input, Runtime};
use cnnc::train::graph::{self, DropoutMode, GradOptions};
use prost::Message;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::HashMap;
use std::path::Path;

/// Steps of the central differences.
const EPS: [f32; 8] = [
    2e-3, 1e-3, 5e-4, 2.5e-4, 1.25e-4, 6.25e-5, 3.125e-5, 1.5625e-5,
];
const REL_TOL: f64 = 2e-2;
const ABS_TOL: f64 = 3e-4;
/// Along a random direction the signal is about √n times weaker than along the gradient, so
/// kinks and rounding weigh more; the tolerance is looser there.
const LOOSE_REL_TOL: f64 = 0.1;
const LOOSE_ABS_TOL: f64 = 2e-3;

fn normal(rng: &mut ChaCha8Rng) -> f32 {
    // Box–Muller.
    let u1: f64 = rng.random::<f64>().max(1e-12);
    let u2: f64 = rng.random::<f64>();
    ((-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()) as f32
}

struct Case<'a> {
    name: &'a str,
    src: &'a str,
    batch: usize,
}

/// Runs the check: the analytic gradients by parameter name when they all agree with finite
/// differences, else the disagreements.
fn grad_check(case: &Case<'_>, seed: u64) -> Result<HashMap<String, Vec<f32>>, Vec<String>> {
    let c = cnnc::compile_source(
        Path::new(&format!("{}.cnn", case.name)),
        case.src.to_string(),
    );
    if c.diagnostics.has_errors() {
        let text: Vec<String> = c
            .diagnostics
            .iter()
            .map(|d| d.render(&c.sources, false))
            .collect();
        panic!("{}: does not compile:\n{}", case.name, text.join("\n"));
    }
    let model = c.model(None).unwrap();
    let proto = graph::grad_model(
        model,
        &c.sources,
        &GradOptions {
            weights: None,
            dropout: DropoutMode::MaskInput,
            ..Default::default()
        },
    )
    .unwrap_or_else(|e| panic!("{}: {e}", case.name));
    let bytes = proto.encode_to_vec();
    let mut session = Runtime::get()
        .expect("onnxruntime is installed")
        .session(&bytes, Device::Cpu)
        .unwrap_or_else(|e| panic!("{}: {e}", case.name));

    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let specs = onnx::parameter_specs(model);
    let mut weights: Weights = onnx::initialize(model, Init::Default, seed);
    // Batch and group norm away from their identity initialization, so γ and β matter.
    for s in &specs {
        let t = weights.tensors.get_mut(&s.name).unwrap();
        match s.kind {
            ParamKind::BnScale => t
                .data
                .iter_mut()
                .for_each(|v| *v = 1.0 + 0.3 * normal(&mut rng)),
            ParamKind::BnShift => t.data.iter_mut().for_each(|v| *v = 0.3 * normal(&mut rng)),
            // PReLU's slopes apart, so that one channel's cannot stand in for another's.
            ParamKind::Slope => t
                .data
                .iter_mut()
                .for_each(|v| *v = 0.25 + 0.3 * normal(&mut rng)),
            _ => {}
        }
    }
    let b = case.batch;
    let in_dims: Vec<usize> = std::iter::once(b)
        .chain(model.input_shape().dims().iter().map(|&d| d as usize))
        .collect();
    let x: Vec<f32> = (0..in_dims.iter().product::<usize>())
        .map(|_| normal(&mut rng))
        .collect();
    let out = model.output_shape().dims().to_vec();
    let k = out[0];
    let lab_dims: Vec<usize> = std::iter::once(b)
        .chain(out[1..].iter().map(|&d| d as usize))
        .collect();
    let labels: Vec<i64> = (0..lab_dims.iter().product::<usize>())
        .map(|_| rng.random_range(0..k as i64))
        .collect();
    // Dropout masks (inputs named dropout_mask.<layer>).
    let masks: Vec<(String, Vec<usize>, Vec<f32>)> = session
        .inputs()
        .iter()
        .filter(|s| s.name.starts_with("dropout_mask."))
        .map(|s| {
            let dims: Vec<usize> = s
                .shape
                .iter()
                .map(|d| match d {
                    cnnc::runtime::Dim::Fixed(n) => *n,
                    cnnc::runtime::Dim::Symbolic(_) => b,
                })
                .collect();
            let n = dims.iter().product();
            let m = (0..n)
                .map(|_| if rng.random::<f32>() < 0.5 { 0.0 } else { 1.0 })
                .collect();
            (s.name.clone(), dims, m)
        })
        .collect();
    let trainable: Vec<_> = specs.iter().filter(|s| s.kind.is_trainable()).collect();

    let mut run = |overrides: Option<(&str, &[f32])>, outputs: &[&str]| -> Vec<Vec<f32>> {
        let mut inputs = vec![
            Input::f32("input", &in_dims, &x),
            Input::i64("labels", &lab_dims, &labels),
        ];
        for s in &trainable {
            let t = weights.get(&s.name).unwrap();
            let data = match overrides {
                Some((n, d)) if n == s.name => d,
                _ => &t.data[..],
            };
            inputs.push(Input::f32(&s.name, &t.dims, data));
        }
        for (n, d, m) in &masks {
            inputs.push(Input::f32(n, d, m));
        }
        session
            .run_selected(&inputs, outputs)
            .unwrap_or_else(|e| panic!("{}: {e}", case.name))
            .into_iter()
            .map(|o| o.into_f32().unwrap())
            .collect()
    };

    let grad_names: Vec<String> = trainable
        .iter()
        .map(|s| format!("grad.{}", s.name))
        .collect();
    let mut outs: Vec<&str> = vec!["loss"];
    outs.extend(grad_names.iter().map(String::as_str));
    let base = run(None, &outs);
    let l0 = base[0][0] as f64;
    assert!(l0.is_finite(), "{}: loss {l0}", case.name);
    let mut report = Vec::new();
    let mut failures = Vec::new();
    for (i, s) in trainable.iter().enumerate() {
        let g = &base[i + 1];
        let p = &weights.get(&s.name).unwrap().data.clone();
        assert_eq!(
            g.len(),
            p.len(),
            "{}: grad.{} has the wrong size",
            case.name,
            s.name
        );
        let random: Vec<f32> = (0..p.len()).map(|_| normal(&mut rng)).collect();
        let norm = g.iter().map(|&v| (v as f64).powi(2)).sum::<f64>().sqrt();
        // Along the gradient itself (scaled to the norm of a random direction): the largest
        // signal; a wrong gradient g' is measured there as <g, g'>/|g'| ≠ |g'|.
        let along: Vec<f32> = if norm > 0.0 {
            let k = (p.len() as f64).sqrt() / norm;
            g.iter().map(|&v| (v as f64 * k) as f32).collect()
        } else {
            random.clone()
        };
        for (dir, u, (rel, abs)) in [
            ("along the gradient", &along, (REL_TOL, ABS_TOL)),
            ("random direction", &random, (LOOSE_REL_TOL, LOOSE_ABS_TOL)),
        ] {
            let an: f64 = g.iter().zip(u).map(|(&a, &b)| a as f64 * b as f64).sum();
            // (central, forward, backward) differences at one step.
            let mut d = |eps: f32| -> [f64; 3] {
                let plus: Vec<f32> = p.iter().zip(u).map(|(&a, &b)| a + eps * b).collect();
                let minus: Vec<f32> = p.iter().zip(u).map(|(&a, &b)| a - eps * b).collect();
                let lp = run(Some((&s.name, &plus)), &["loss"])[0][0] as f64;
                let lm = run(Some((&s.name, &minus)), &["loss"])[0][0] as f64;
                let e = eps as f64;
                [(lp - lm) / (2.0 * e), (lp - l0) / e, (l0 - lm) / e]
            };
            // Central differences at halving steps and Richardson's extrapolation of each
            // consecutive pair; near a kink of relu or max pooling (closer than the step) the
            // one-sided difference away from it is exact to O(ε), so those count too. Large
            // steps cross kinks, small ones drown in float32 rounding; a wrong gradient is
            // off at every step.
            let all: Vec<[f64; 3]> = EPS.iter().map(|&e| d(e)).collect();
            let ds: Vec<f64> = all.iter().map(|x| x[0]).collect();
            let mut candidates = ds.clone();
            candidates.extend(ds.windows(2).map(|w| (4.0 * w[1] - w[0]) / 3.0));
            candidates.extend(all.iter().flat_map(|x| [x[1], x[2]]));
            let allowed = |fd: f64| rel * fd.abs().max(an.abs()) + abs;
            let (fd, err) = candidates
                .iter()
                .map(|&fd| (fd, (fd - an).abs() - allowed(fd)))
                .min_by(|a, b| a.1.total_cmp(&b.1))
                .unwrap();
            let err_abs = (fd - an).abs();
            let list: Vec<String> = ds.iter().map(|d| format!("{d:.6}")).collect();
            let line = format!(
                "{}: {} ({dir}): analytic {an:.6}, best finite difference {fd:.6} (central differences {}), error {err_abs:.2e}",
                case.name,
                s.name,
                list.join(", ")
            );
            if err > 0.0 {
                failures.push(line);
            } else {
                report.push(line);
            }
        }
    }
    for l in &report {
        println!("{l}");
    }
    if failures.is_empty() {
        Ok(trainable
            .iter()
            .zip(&base[1..])
            .map(|(s, g)| (s.name.clone(), g.clone()))
            .collect())
    } else {
        Err(failures)
    }
}

fn check(case: Case<'_>) {
    if Runtime::get().is_err() {
        println!("skipped: ONNX Runtime is not installed (see `cnnc doctor`)");
        return;
    }
    let seed = std::env::var("GRAD_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(7);
    match grad_check(&case, seed) {
        Ok(_) => {}
        Err(failures) => panic!("gradients disagree:\n{}", failures.join("\n")),
    }
}

/// A bias whose layer feeds only a batch norm cannot change the loss (batch norm subtracts the
/// channel's batch mean), so its gradient is exactly zero, not rounding noise that Adam would
/// turn into steps of about `lr`; a batch norm's β before another batch norm too. A bias whose layer also feeds something else (here the
/// residual's sum) keeps its summed gradient.
#[test]
fn a_bias_feeding_only_a_batch_norm_has_exactly_zero_gradient() {
    if Runtime::get().is_err() {
        println!("skipped: ONNX Runtime is not installed (see `cnnc doctor`)");
        return;
    }
    let case = Case {
        name: "bias_before_batchnorm",
        src: "model M(input: [2, 6, 6]) {
    conv(3, 3) batchnorm tanh
    conv(3, 3, pad=1) residual { batchnorm tanh }
    conv(3, 3) tanh
    flatten linear(5) batchnorm batchnorm sigmoid linear(4)
}",
        batch: 4,
    };
    let grads = grad_check(&case, 7).unwrap_or_else(|f| panic!("{}", f.join("\n")));
    // Through layers that pass a per-channel constant on as one (the residual's sum, a
    // concat, a flatten) to a batch norm, likewise; not through a tanh.
    let through = Case {
        name: "bias_through_add_concat_flatten",
        src: "model M(input: [2, 6, 6]) {
    conv(3, 3, pad=1) tanh
    residual { conv(3, 3, pad=1) } batchnorm tanh
    concat { { conv(2, 1) } { conv(2, 1) tanh } } batchnorm tanh
    conv(2, 1) flatten batchnorm linear(4)
}",
        batch: 4,
    };
    let through_grads = grad_check(&through, 7).unwrap_or_else(|f| panic!("{}", f.join("\n")));
    for (name, zero) in [
        ("conv2.bias", true),
        ("concat1.branch1.conv1.bias", true),
        ("conv3.bias", true),
        ("concat1.branch2.conv1.bias", false),
        ("conv1.bias", false),
    ] {
        let g = &through_grads[name];
        assert_eq!(g.iter().all(|&v| v == 0.0), zero, "{name}: {g:?}");
    }
    // Through a normalize, a scale, a layer scale, a channel shuffle, a slice and a pixel
    // unshuffle, which keep per-channel constants per channel, likewise; not through a pixel
    // shuffle, which spreads r² of them over one channel.
    let moved = Case {
        name: "bias_through_scale_shuffle_slice_unshuffle",
        src: "model M(input: [2, 6, 6]) {
    conv(4, 1) normalize(mean=[1, -1, 0.5, 2], std=[0.5, 2, 1, 3]) scale(-0.5)
    layer_scale(-0.7) channel_shuffle(2) batchnorm tanh
    conv(6, 1) slice(1, 5) pixel_unshuffle(2) batchnorm tanh
    conv(8, 1) pixel_shuffle(2) batchnorm tanh
    flatten linear(4)
}",
        batch: 4,
    };
    let moved_grads = grad_check(&moved, 7).unwrap_or_else(|f| panic!("{}", f.join("\n")));
    for (name, zero) in [
        ("conv1.bias", true),
        ("conv2.bias", true),
        ("conv3.bias", false),
    ] {
        let g = &moved_grads[name];
        assert_eq!(g.iter().all(|&v| v == 0.0), zero, "{name}: {g:?}");
    }
    // The model's output is read by the loss, whatever else reads it: its bias keeps its
    // gradient even when a (dead) batch norm is its only other reader.
    let output = Case {
        name: "output_before_dead_batchnorm",
        src: "model M(input: [2, 6, 6]) {
    flatten linear(5) as s batchnorm s
}",
        batch: 4,
    };
    let out_grads = grad_check(&output, 7).unwrap_or_else(|f| panic!("{}", f.join("\n")));
    assert!(
        out_grads["linear1.bias"].iter().any(|&g| g.abs() > 1e-4),
        "{:?}",
        out_grads["linear1.bias"]
    );
    // A batch norm's own β before another batch norm, likewise.
    for zero in ["conv1.bias", "linear1.bias", "batchnorm3.bias"] {
        assert!(
            grads[zero].iter().all(|&g| g == 0.0),
            "{zero}: {:?}",
            grads[zero]
        );
    }
    for kept in [
        "conv2.bias",
        "conv3.bias",
        "linear2.bias",
        "conv1.weight",
        "batchnorm4.bias",
        "batchnorm2.bias",
    ] {
        assert!(
            grads[kept].iter().any(|&g| g.abs() > 1e-4),
            "{kept}: {:?}",
            grads[kept]
        );
    }
}

/// The gradient graph of `src`'s one model, with dropout masks as inputs (as `cnnc train`).
fn gradient_graph(name: &str, src: &str) -> cnnc::onnx::proto::ModelProto {
    let c = cnnc::compile_source(Path::new(name), src.to_string());
    assert!(!c.diagnostics.has_errors(), "{name} does not compile");
    graph::grad_model(
        c.model(None).unwrap(),
        &c.sources,
        &GradOptions {
            weights: None,
            dropout: DropoutMode::MaskInput,
            ..Default::default()
        },
    )
    .unwrap()
}

macro_rules! grad_test {
    ($name:ident, $batch:expr, $src:expr) => {
        #[test]
        fn $name() {
            check(Case {
                name: stringify!($name),
                src: $src,
                batch: $batch,
            });
        }
    };
}

// ---- every layer kind ----

grad_test!(
    conv_stride_asymmetric_pad,
    3,
    "model M(input: [3, 9, 8]) {
    conv(2, 1) conv(4, 3, stride=2, pad=[0, 2, 1, 1]) tanh flatten linear(5)
}"
);

// Strided convs with at least 100 output positions: their weight gradient is im2col and a
// product (see `im2col_weight_gradient_only_where_it_pays`), with a non-square kernel,
// unequal strides and dilations, groups of two channels, asymmetric pads, a depthwise conv
// with two outputs per channel and a 7×7 stem. `every_conv_of_the_im2col_cases_takes_it`
// checks that each of these convs takes that path.
const IM2COL_GROUPS: &str = "model M(input: [4, 24, 40]) {
    conv(6, [3, 5], stride=[1, 2], pad=2, dilation=[2, 1], groups=2, bias=false) tanh : [6, 24, 20]
    conv(4, 3, stride=2, pad=[0, 2, 1, 1]) tanh                                         : [4, 12, 10]
    flatten linear(3)
}";

const IM2COL_DEPTHWISE_STEM: &str = "model M(input: [2, 66, 62]) {
    conv(4, 3, stride=3, groups=2) tanh      : [4, 22, 20]
    conv(4, 7, stride=2, pad=3) tanh         : [4, 11, 10]
    flatten linear(3)
}";

grad_test!(conv_im2col_weight_grad, 2, IM2COL_GROUPS);

grad_test!(conv_im2col_stem_and_depthwise, 2, IM2COL_DEPTHWISE_STEM);

#[test]
fn every_conv_of_the_im2col_cases_takes_it() {
    for (name, src) in [("groups", IM2COL_GROUPS), ("stem", IM2COL_DEPTHWISE_STEM)] {
        let proto = gradient_graph(&format!("{name}.cnn"), src);
        let graph = proto.graph.as_ref().unwrap();
        for conv in ["conv1", "conv2"] {
            let patches = format!("grad.{conv}.weight.patches");
            assert!(
                graph.node.iter().any(|n| n.name == patches),
                "{name}: {conv} does not take the im2col path"
            );
        }
    }
    // What the memory check counts per example: each conv's patches (C·kh·kw per output
    // position) and their transposed copy, in float32.
    let c = cnnc::compile_source(Path::new("groups.cnn"), IM2COL_GROUPS.to_string());
    let patches = (4 * 15 * 24 * 20) + (6 * 9 * 12 * 10);
    assert_eq!(
        graph::im2col_bytes_per_example(c.model(None).unwrap()),
        patches * 2 * 4
    );
    let c = cnnc::compile_file(Path::new("models/lenet.cnn")).unwrap();
    assert_eq!(graph::im2col_bytes_per_example(c.model(None).unwrap()), 0);
}

#[test]
fn im2col_weight_gradient_only_where_it_pays() {
    let src = "model M(input: [3, 40, 40]) {
    conv(4, 3, stride=2, pad=1) tanh     # 20×20 outputs, strided: im2col
    conv(4, 3, pad=1) tanh               # stride 1: one Conv with dY as its kernel
    conv(4, 3, stride=2, pad=1) tanh     # 10×10: im2col
    conv(4, 3, stride=2, pad=1) tanh     # 5×5: one Conv
    flatten linear(3)
}";
    let proto = gradient_graph("im2col.cnn", src);
    let graph = proto.graph.as_ref().unwrap();
    let im2col: Vec<bool> = (1..=4)
        .map(|i| {
            let patches = format!("grad.conv{i}.weight.patches");
            graph
                .node
                .iter()
                .any(|n| n.op_type == "Conv" && n.name == patches)
        })
        .collect();
    assert_eq!(im2col, [true, false, true, false]);
}

grad_test!(
    conv_dilation_groups,
    3,
    "model M(input: [4, 8, 7]) {
    conv(6, 3, pad=2, dilation=2, groups=2) tanh
    conv(6, [1, 3], stride=[1, 2], pad=[0, 1], groups=3, bias=false) tanh
    flatten linear(4)
}"
);

grad_test!(
    conv_depthwise_stride3,
    3,
    "model M(input: [4, 11, 10]) {
    conv(4, 3, stride=3, groups=4) tanh
    conv(5, 2, stride=[2, 1], dilation=[1, 2]) tanh
    flatten linear(3)
}"
);

grad_test!(
    conv_transpose,
    3,
    "model M(input: [3, 5, 4]) {
    convT(4, 3, stride=2, pad=1, output_pad=1) tanh
    convT(4, 2, stride=2, groups=2, bias=false) tanh
    flatten linear(3)
}"
);

grad_test!(
    conv_transpose_dilated,
    3,
    "model M(input: [4, 4, 5]) {
    convT(6, 3, stride=2, dilation=2, groups=2, output_pad=1) tanh
    convT(3, [2, 3], stride=[2, 2], pad=[1, 0, 0, 1], dilation=[2, 1], output_pad=[1, 0]) tanh
    flatten linear(3)
}"
);

grad_test!(
    maxpool,
    3,
    "model M(input: [2, 9, 9]) {
    conv(3, 3, pad=1) maxpool(3, stride=2, pad=1)
    conv(3, 2) maxpool(2, ceil=true)
    flatten linear(4)
}"
);

grad_test!(
    maxpool_plain,
    3,
    "model M(input: [2, 8, 8]) {
    conv(3, 3, pad=1) maxpool(2) flatten linear(4)
}"
);

grad_test!(
    avgpool_padded_and_ceil,
    3,
    "model M(input: [2, 9, 9]) {
    conv(3, 3, pad=1) avgpool(3, stride=2, pad=1)
    conv(3, 2) avgpool(2, ceil=true)
    conv(3, 1) avgpool(3, stride=2, pad=1, ceil=true)
    flatten linear(4)
}"
);

grad_test!(
    avgpool_padding_left_out_of_the_divisor,
    3,
    "model M(input: [2, 9, 9]) {
    conv(3, 3, pad=1) avgpool(3, stride=2, pad=1, count_include_pad=false)
    conv(3, 1) avgpool(3, stride=2, pad=[1, 0, 0, 1], ceil=true, count_include_pad=false)
    flatten linear(4)
}"
);

grad_test!(
    ceil_mode_window_larger_than_the_input,
    3,
    "model M(input: [2, 3, 2]) {
    conv(3, 1) maxpool(4, ceil=true)
    conv(3, 1) avgpool(4, pad=1, ceil=true)
    flatten linear(4)
}"
);

grad_test!(
    avgpool_tiling,
    3,
    "model M(input: [2, 8, 8]) {
    conv(3, 3, pad=1) avgpool(2) conv(3, 3, pad=1) avgpool(2, stride=1) flatten linear(4)
}"
);

grad_test!(
    adaptive_avgpool,
    3,
    "model M(input: [2, 7, 5]) {
    conv(3, 1) adaptive_avgpool([3, 2]) conv(3, 1) adaptive_avgpool([1, 1]) flatten linear(4)
}"
);

// Uneven and overlapping bins (gathered), bins of one pixel duplicated (7 → 9), an even
// split (a plain MaxPool) and the global maximum.
grad_test!(
    adaptive_and_global_maxpool,
    3,
    "model M(input: [2, 7, 5]) {
    conv(3, 1) adaptive_maxpool([3, 2]) conv(3, 1) adaptive_maxpool([5, 4]) tanh
    conv(3, 1) adaptive_maxpool([5, 2]) conv(3, 1) global_maxpool flatten linear(4)
}"
);

// Named outputs: an auxiliary classifier with its own batch norm and dropout, one that taps
// a residual's body, and an empty one (the tapped tensor itself, here the main output) —
// each adds its weighted cross-entropy to the loss.
grad_test!(
    named_outputs,
    4,
    "model M(input: [2, 6, 6]) {
    conv(3, 3) batchnorm tanh
    output aux1 { conv(2, 1) batchnorm tanh flatten dropout(0.5) linear(4) }
    residual { conv(3, 3, pad=1) tanh output aux2 { global_avgpool flatten linear(4) } }
    flatten linear(4)
    output logits {}
}"
);

grad_test!(
    global_avgpool,
    3,
    "model M(input: [2, 6, 5]) {
    conv(4, 3) global_avgpool flatten linear(3)
}"
);

grad_test!(
    batchnorm_2d,
    4,
    "model M(input: [2, 6, 6]) {
    conv(3, 3) batchnorm tanh conv(3, 3) batchnorm(eps=0.001) flatten linear(4)
}"
);

grad_test!(
    mish_and_prelu,
    3,
    "model M(input: [2, 5, 5]) {
    conv(4, 3, pad=1) mish conv(4, 3) prelu(per_channel=true) conv(3, 1) prelu
    flatten linear(6) prelu(per_channel=true) mish linear(5) prelu linear(4)
}"
);

grad_test!(
    groupnorm_and_instancenorm,
    2,
    "model M(input: [2, 5, 5]) {
    conv(4, 3, pad=1) groupnorm(2) tanh conv(6, 3) instancenorm(affine=true) sigmoid
    conv(4, 1) instancenorm tanh conv(6, 1) groupnorm(3, eps=0.01, affine=false) flatten
    linear(6) groupnorm(2) tanh linear(4)
}"
);

// ConvNeXt's layer norm over each pixel's channels and its layer scale, on images and
// vectors; a conv bias before a layer norm keeps its gradient (the norm is per pixel, not
// per channel, so it does not cancel a per-channel constant).
grad_test!(
    layernorm_and_layer_scale,
    2,
    "model M(input: [2, 5, 5]) {
    conv(4, 3, pad=1) layernorm tanh conv(6, 3) layer_scale(0.5) layernorm(eps=0.01)
    sigmoid conv(3, 1) layernorm(affine=false) layer_scale(-1.5) tanh flatten
    linear(6) layernorm tanh linear(5) layer_scale(2) layernorm(affine=false) linear(4)
}"
);

// PyTorch's `affine=False`: no γ and β, on images and vectors, after a conv with a bias
// (whose gradient the norm cancels) and before an affine batch norm (whose β's it does not).
grad_test!(
    batchnorm_without_affine,
    4,
    "model M(input: [2, 6, 6]) {
    conv(3, 3) batchnorm(affine=false) tanh conv(3, 3) batchnorm(affine=false, eps=0.001)
    batchnorm sigmoid flatten linear(6) batchnorm(affine=false) tanh linear(4)
}"
);

grad_test!(
    batchnorm_1d,
    6,
    "model M(input: [2, 4, 4]) {
    flatten linear(6) batchnorm sigmoid linear(4)
}"
);

grad_test!(
    relu,
    3,
    "model M(input: [2, 6, 6]) {
    conv(3, 3) relu flatten linear(8) relu linear(4)
}"
);

grad_test!(
    sigmoid_tanh,
    3,
    "model M(input: [2, 6, 6]) {
    conv(3, 3) sigmoid flatten linear(8) tanh linear(4)
}"
);

grad_test!(
    leaky_relu_elu,
    3,
    "model M(input: [2, 6, 6]) {
    conv(3, 3) leaky_relu(alpha=0.1) conv(3, 3) elu(alpha=0.7) flatten linear(4)
}"
);

// output_pad at or above the stride (below the dilation, PyTorch's rule): ConvTranspose,
// Slice, Pad and the bias in the forward graph; one axis cut, the other extended.
grad_test!(
    conv_transpose_output_pad_below_dilation,
    3,
    "model M(input: [2, 4, 4]) {
    convT(3, 3, stride=[1, 2], dilation=[2, 3], pad=[1, 1, 0, 0], output_pad=[1, 2]) tanh
    convT(2, [2, 3], dilation=[3, 2], pad=[2, 2, 1, 1], output_pad=[2, 1], bias=false)
    flatten linear(4)
}"
);

grad_test!(
    silu_gelu,
    3,
    "model M(input: [2, 6, 6]) {
    conv(3, 3) silu conv(3, 3) gelu flatten linear(8) gelu linear(4)
}"
);

grad_test!(
    relu6_hardswish_hardsigmoid,
    3,
    "model M(input: [2, 6, 6]) {
    conv(3, 3) relu6 conv(3, 3) hardswish flatten linear(8) hardsigmoid linear(4)
}"
);

/// At their kinks the activations take PyTorch's (2.x) one-sided slopes: hardswish 0 at −3
/// and 1 at 3, hardsigmoid and relu6 0 at their bounds. A first layer of zero weights puts
/// its biases exactly on the kinks; a second of ones gives every hidden unit the same
/// upstream gradient g, so grad.bias = g · slope.
#[test]
fn activations_take_pytorchs_slopes_at_their_kinks() {
    if Runtime::get().is_err() {
        println!("skipped: ONNX Runtime is not installed (see `cnnc doctor`)");
        return;
    }
    for (act, at, slopes) in [
        ("hardswish", [-3.0, 3.0, -1.5, 1.5], [0.0, 1.0, 0.0, 1.0]),
        (
            "hardsigmoid",
            [-3.0, 3.0, -1.5, 1.5],
            [0.0, 0.0, 1.0 / 6.0, 1.0 / 6.0],
        ),
        ("relu6", [0.0, 6.0, 3.0, -1.0], [0.0, 0.0, 1.0, 0.0]),
    ] {
        let src = format!("model K(input: [1]) {{ linear(4) {act} linear(2) }}");
        let c = cnnc::compile_source(Path::new("kinks.cnn"), src);
        let model = c.model(None).unwrap();
        let options = GradOptions {
            weights: None,
            dropout: DropoutMode::MaskInput,
            ..Default::default()
        };
        let proto = graph::grad_model(model, &c.sources, &options).unwrap();
        let mut session = Runtime::get()
            .unwrap()
            .session(&proto.encode_to_vec(), Device::Cpu)
            .unwrap();
        // hardswish's middle slope is x/3 + ½: 0 at −1.5 and 1 at 1.5.
        let w2 = [1.0f32, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0];
        let inputs = [
            Input::f32("input", &[1, 1], &[1.0]),
            Input::i64("labels", &[1], &[1]),
            Input::f32("linear1.weight", &[4, 1], &[0.0; 4]),
            Input::f32("linear1.bias", &[4], &at),
            Input::f32("linear2.weight", &[2, 4], &w2),
            Input::f32("linear2.bias", &[2], &[0.0, 0.0]),
        ];
        let out = session
            .run_selected(&inputs, &["grad.linear1.bias"])
            .unwrap()
            .remove(0)
            .into_f32()
            .unwrap();
        // Label 1 and unit weights into class 0: g = softmax(z)[0] > 0.
        let g = out
            .iter()
            .zip(&slopes)
            .find(|(_, &s)| s != 0.0)
            .map(|(o, s)| o / s)
            .unwrap();
        assert!(g > 0.0, "{act}: {out:?}");
        for (i, (o, s)) in out.iter().zip(&slopes).enumerate() {
            assert!(
                (o - g * s).abs() <= 1e-6,
                "{act} at {}: grad {o}, want {}",
                at[i],
                g * s
            );
        }
    }
}

grad_test!(
    gates_per_channel_and_per_value,
    3,
    "model M(input: [3, 6, 6]) {
    conv(4, 3, pad=1) tanh
    gate { global_avgpool conv(2, 1) relu conv(4, 1) sigmoid }
    gate { conv(4, 3, pad=1) sigmoid }
    gate { conv(1, 3, pad=1) sigmoid }
    flatten linear(4)
}"
);

grad_test!(
    softmax_channels,
    3,
    "model M(input: [2, 5, 5]) {
    conv(4, 3) softmax flatten linear(6) softmax linear(3)
}"
);

grad_test!(
    dropout,
    4,
    "model M(input: [2, 5, 5]) {
    conv(3, 3) dropout(0.5) flatten linear(6) tanh dropout(p=0.3) linear(3)
}"
);

grad_test!(
    flatten_linear_no_bias,
    3,
    "model M(input: [2, 3, 3]) {
    flatten linear(5, bias=false) tanh linear(3, bias=false)
}"
);

grad_test!(
    concat,
    3,
    "model M(input: [2, 6, 6]) {
    conv(3, 3, pad=1)
    concat { { conv(2, 1) } { conv(3, 3, pad=1) tanh } {} }
    flatten linear(4)
}"
);

grad_test!(
    add_residual,
    3,
    "model M(input: [2, 6, 6]) {
    conv(3, 3, pad=1) residual { conv(3, 3, pad=1) tanh conv(3, 1) } tanh flatten linear(4)
}"
);

grad_test!(
    the_input_read_by_name,
    3,
    "model M(input: [2, 6, 6]) {
    conv(3, 3, pad=1) tanh
    concat { {} input }                       : [5, 6, 6]
    residual { conv(2, 3, pad=1) tanh } shortcut { input }
    concat { crop(input) {} }                 : [4, 6, 6]
    flatten linear(4)
}"
);

grad_test!(
    pad_zeros_reflect_replicate,
    3,
    "model M(input: [2, 4, 5]) {
    conv(3, 3, pad=1) tanh
    pad([1, 2, 0, 3])                         : [3, 7, 8]
    conv(3, 3) tanh
    pad([2, 1, 3, 0], reflect=true)           : [3, 8, 9]
    conv(3, 3, stride=2) tanh
    pad([0, 4, 2, 1], replicate=true)         : [3, 7, 7]
    flatten linear(4)
}"
);

grad_test!(
    crop,
    3,
    "model M(input: [2, 9, 10]) {
    conv(3, 1) as a
    conv(3, 3) conv(3, 2, stride=[1, 2])      : [3, 6, 4]
    concat { crop(a) {} }                     : [6, 6, 4]
    flatten linear(4)
}"
);

grad_test!(
    slice_and_channel_shuffle,
    3,
    "model M(input: [2, 5, 5]) {
    conv(6, 1) tanh
    concat { slice(0, 3) { slice(3, 6) conv(3, 3, pad=1) tanh } } : [6, 5, 5]
    channel_shuffle(3) conv(4, 1) tanh channel_shuffle(2)
    slice(1, 4)                                                   : [3, 5, 5]
    flatten linear(7) tanh slice(2, 6) linear(4)
}"
);

// Residual scaling (Inception-ResNet's, EDSR's), a negative factor, and one on the scores.
grad_test!(
    scale,
    3,
    "model M(input: [2, 5, 5]) {
    conv(3, 3, pad=1) tanh
    residual { conv(3, 3, pad=1) tanh scale(0.3) }
    scale(-2) conv(2, 3) tanh
    flatten linear(4) scale(0.5)
}"
);

// torchvision's Normalize in the model: on the input, per channel between layers (its
// backward divides by each channel's std), and one constant for every feature of a vector.
grad_test!(
    normalize,
    3,
    "model M(input: [3, 4, 4]) {
    normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225])
    conv(3, 3, pad=1) tanh
    normalize(mean=[1, -2, 0.5], std=[0.5, 4, 2]) conv(2, 3) tanh
    flatten normalize(0.25, std=3) linear(4)
}"
);

// A shuffle whose blocks are not square in the channels' order (factor 2 on 3 output
// channels, 3 on 1) and an unshuffle of a non-square image: a transposed permutation in
// either backward gives wrong gradients.
grad_test!(
    pixel_shuffle_and_unshuffle,
    3,
    "model M(input: [2, 4, 6]) {
    conv(12, 3, pad=1) tanh
    pixel_shuffle(2)                  : [3, 8, 12]
    conv(2, 3, pad=1) tanh
    pixel_unshuffle(4)                : [32, 2, 3]
    conv(9, 1) tanh
    pixel_shuffle(3)                  : [1, 6, 9]
    flatten linear(4)
}"
);

grad_test!(
    upsample_nearest,
    3,
    "model M(input: [2, 3, 4]) {
    conv(3, 3, pad=1) tanh
    upsample(2)                   : [3, 6, 8]
    conv(3, 3, stride=2) tanh
    upsample([3, 1])              : [3, 6, 3]
    flatten linear(4)
}"
);

grad_test!(
    upsample_bilinear,
    3,
    "model M(input: [2, 3, 4]) {
    conv(3, 3, pad=1) tanh
    upsample(2, bilinear=true)                          : [3, 6, 8]
    conv(3, 3, stride=2) tanh
    upsample([3, 2], bilinear=true, align_corners=true) : [3, 6, 6]
    upsample([1, 2], bilinear=true)                     : [3, 6, 12]
    flatten linear(4)
}"
);

grad_test!(
    upsample_to_a_size,
    3,
    "model M(input: [2, 3, 4]) {
    conv(3, 3, pad=1) tanh
    upsample(size=[7, 5])                                   : [3, 7, 5]
    conv(3, 3) tanh
    upsample(size=[4, 6], bilinear=true)                    : [3, 4, 6]
    upsample(size=[5, 2], bilinear=true, align_corners=true) : [3, 5, 2]
    upsample(size=[10, 4])                                  : [3, 10, 4]
    upsample(size=[3, 1])                                   : [3, 3, 1]
    upsample([41, 2])                                       : [3, 123, 2]
    flatten linear(4)
}"
);

grad_test!(
    per_pixel_loss,
    3,
    "model M(input: [2, 6, 6]) {
    conv(4, 3, pad=1) tanh conv(3, 1)
}"
);

// ---- architecture families ----

grad_test!(
    family_lenet,
    4,
    "model LeNet(input: [1, 28, 28]) {
    conv(6, 5, pad=2) sigmoid avgpool(2, stride=2)
    conv(16, 5) sigmoid avgpool(2, stride=2)
    flatten linear(120) sigmoid linear(84) sigmoid linear(10)
}"
);

grad_test!(
    family_vgg_block,
    3,
    "block vgg_block(convs, channels) {
    repeat convs { conv(channels, 3, pad=1) relu }
    maxpool(2, stride=2)
}
model VGG(input: [1, 12, 12]) {
    vgg_block(1, 4) vgg_block(2, 6) flatten linear(8) relu dropout(0.5) linear(5)
}"
);

grad_test!(
    family_nin_block,
    3,
    "block nin_block(c, k, s, p) {
    conv(c, k, stride=s, pad=p) relu conv(c, 1) relu conv(c, 1) relu
}
model NiN(input: [1, 15, 15]) {
    nin_block(6, 5, 2, 1) maxpool(3, stride=2)
    nin_block(5, 3, 1, 1) global_avgpool flatten
}"
);

grad_test!(
    family_inception,
    3,
    "block inception(c1, c2, c3, c4) {
    concat {
        { conv(c1, 1) relu }
        { conv(c2[0], 1) relu conv(c2[1], 3, pad=1) relu }
        { conv(c3[0], 1) relu conv(c3[1], 5, pad=2) relu }
        { maxpool(3, stride=1, pad=1) conv(c4, 1) relu }
    }
}
model Inception(input: [2, 8, 8]) {
    conv(4, 3, pad=1) relu inception(2, [3, 4], [2, 3], 2) global_avgpool flatten linear(4)
}"
);

grad_test!(
    family_residual_projection_bn,
    4,
    "block unit(channels, stride=1) {
    residual {
        conv(channels, 3, pad=1, stride=stride) batchnorm relu
        conv(channels, 3, pad=1) batchnorm
    } shortcut if stride != 1 or in.c != channels {
        conv(channels, 1, stride=stride)
    }
    relu
}
model ResNet(input: [2, 8, 8]) {
    conv(4, 3, pad=1) batchnorm relu unit(4) unit(6, stride=2) global_avgpool flatten linear(4)
}"
);

grad_test!(
    family_dense_transition,
    4,
    "block dense_block(convs, growth) {
    repeat convs { concat { {} { batchnorm relu conv(growth, 3, pad=1) } } }
}
block transition() { batchnorm relu conv(in.c / 2, 1) avgpool(2, stride=2) }
model DenseNet(input: [2, 8, 8]) {
    conv(4, 3, pad=1) dense_block(2, 3) transition() batchnorm relu global_avgpool flatten linear(4)
}"
);

grad_test!(
    family_unet,
    2,
    "block double_conv(c) { conv(c, 3) relu conv(c, 3) relu }
model UNet(input: [1, 20, 20]) {
    double_conv(4) as e1
    maxpool(2) double_conv(6)
    convT(4, 2, stride=2)
    concat { crop(e1) {} }
    double_conv(4)
    conv(2, 1)
}"
);

/// The gradient graph avoids the ops ONNX Runtime's CUDA provider would run on the CPU:
/// SoftmaxCrossEntropyLoss (no CUDA kernel) and ConvTranspose with asymmetric pads (ceil-mode
/// pooling, four-value pads). Their gradients are checked numerically above.
#[test]
fn gradient_graph_keeps_to_ops_cuda_runs() {
    let proto = gradient_graph(
        "cuda_ops.cnn",
        "model M(input: [2, 9, 8]) {
    conv(3, 1) conv(4, 3, stride=2, pad=[0, 2, 1, 1]) relu
    conv(4, 1) avgpool(3, stride=2, pad=1, ceil=true)
    conv(4, 1) maxpool(2, ceil=true) flatten linear(5)
}",
    );
    let graph = proto.graph.as_ref().unwrap();
    assert!(graph
        .node
        .iter()
        .all(|n| n.op_type != "SoftmaxCrossEntropyLoss"));
    let transposed: Vec<_> = graph
        .node
        .iter()
        .filter(|n| n.op_type == "ConvTranspose")
        .collect();
    assert!(transposed.len() >= 3, "{}", transposed.len());
    for n in transposed {
        let pads = &n
            .attribute
            .iter()
            .find(|a| a.name == "pads")
            .expect("pads written")
            .ints;
        assert_eq!(pads[..2], pads[2..], "{}: pads {pads:?}", n.name);
    }
}

/// The loss of a model with named outputs is the main output's cross-entropy plus
/// `aux_weight` times each named output's, each computed here from the exported inference
/// model's outputs (no batch norm or dropout, so training and inference agree); with weight
/// 0 an auxiliary head's parameters get exactly zero gradients, and its gradients scale with
/// the weight.
#[test]
fn the_loss_adds_each_named_outputs_cross_entropy_at_its_weight() {
    if Runtime::get().is_err() {
        println!("skipped: ONNX Runtime is not installed (see `cnnc doctor`)");
        return;
    }
    let src = "model M(input: [1, 5, 5]) {
    conv(3, 3) tanh
    output aux { flatten linear(4) }
    flatten linear(4)
}";
    let c = cnnc::compile_source(Path::new("aux.cnn"), src.to_string());
    assert!(!c.diagnostics.has_errors());
    let model = c.model(None).unwrap();
    let w = onnx::initialize(model, Init::Default, 3);
    let (b, k) = (6usize, 4usize);
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let x: Vec<f32> = (0..b * 25).map(|_| normal(&mut rng)).collect();
    let labels: Vec<i64> = (0..b).map(|_| rng.random_range(0..k as i64)).collect();
    let rt = Runtime::get().unwrap();

    let inference = onnx::export(model, &c.sources, &w, &onnx::ExportOptions::default())
        .unwrap()
        .encode_to_vec();
    let outs = rt
        .session(&inference, Device::Cpu)
        .unwrap()
        .run_selected(
            &[Input::f32("input", &[b, 1, 5, 5], &x)],
            &["output", "aux"],
        )
        .unwrap();
    let cross_entropy = |logits: &[f32]| -> f64 {
        (0..b)
            .map(|i| {
                let row: Vec<f64> = logits[i * k..(i + 1) * k]
                    .iter()
                    .map(|&v| v as f64)
                    .collect();
                let max = row.iter().cloned().fold(f64::MIN, f64::max);
                let lse = max + row.iter().map(|v| (v - max).exp()).sum::<f64>().ln();
                lse - row[labels[i] as usize]
            })
            .sum::<f64>()
            / b as f64
    };
    let mut outs = outs.into_iter().map(|o| o.into_f32().unwrap());
    let main_ce = cross_entropy(&outs.next().unwrap());
    let aux_ce = cross_entropy(&outs.next().unwrap());
    assert!((main_ce - aux_ce).abs() > 1e-3, "the two heads differ");

    let grad_at = |aux_weight: f32| -> (f64, Vec<f32>, Vec<f32>) {
        let proto = graph::grad_model(
            model,
            &c.sources,
            &GradOptions {
                weights: Some(&w),
                dropout: DropoutMode::MaskInput,
                aux_weight,
            },
        )
        .unwrap();
        let r = rt
            .session(&proto.encode_to_vec(), Device::Cpu)
            .unwrap()
            .run_selected(
                &[
                    Input::f32("input", &[b, 1, 5, 5], &x),
                    Input::i64("labels", &[b], &labels),
                ],
                &["loss", "grad.aux.linear1.weight", "grad.conv1.weight"],
            )
            .unwrap();
        let v: Vec<Vec<f32>> = r.into_iter().map(|o| o.into_f32().unwrap()).collect();
        (v[0][0] as f64, v[1].clone(), v[2].clone())
    };
    for (aux_weight, expected) in [
        (0.0, main_ce),
        (0.3, main_ce + 0.3 * aux_ce),
        (1.0, main_ce + aux_ce),
    ] {
        let (loss, _, _) = grad_at(aux_weight);
        assert!(
            (loss - expected).abs() <= 1e-5 * expected.abs().max(1.0),
            "aux weight {aux_weight}: loss {loss}, expected {expected}"
        );
    }
    let (_, head0, _) = grad_at(0.0);
    assert!(
        head0.iter().all(|&g| g == 0.0),
        "weight 0: the head is not trained"
    );
    let (_, head_half, trunk_half) = grad_at(0.5);
    let (_, head1, trunk1) = grad_at(1.0);
    assert!(head1.iter().any(|&g| g.abs() > 1e-4));
    for (h, g) in head_half.iter().zip(&head1) {
        assert!((2.0 * h - g).abs() <= 1e-5 + 1e-4 * g.abs(), "{h} vs {g}");
    }
    // The trunk feeds both heads: its gradient changes with the weight.
    assert!(trunk_half
        .iter()
        .zip(&trunk1)
        .any(|(a, b)| (a - b).abs() > 1e-5));
}

//! The step graph against PyTorch's formulas: its loss is the gradient graph's, its
//! parameter and state updates are SGD (momentum, weight decay) and Adam (bias correction with
//! `t`) applied to the gradient graph's gradients, and batch norm's running statistics move
//! by momentum 0.1 toward the batch mean and the unbiased batch variance.

use cnnc::onnx::{self, Init};
use cnnc::runtime::{Device, Input, Output, OutputData, Runtime};
use cnnc::train::graph::{self, CarriedKind, DropoutMode, GradOptions, Optimizer};
use prost::Message;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::HashMap;
use std::path::Path;

// The conv's bias feeds a batch norm: its gradient is exactly zero, and the step still
// applies weight decay and momentum to it, as PyTorch does.
const SRC: &str = "model M(input: [2, 4, 4]) {
    batchnorm conv(3, 3) batchnorm tanh flatten linear(3)
}";
const B: usize = 5;

fn f32s(o: &Output) -> Vec<f32> {
    match &o.data {
        OutputData::F32(v) => v.clone(),
        OutputData::I64(v) => v.iter().map(|&x| x as f32).collect(),
        other => panic!("a step graph has no {} outputs", other.element()),
    }
}

fn close(name: &str, got: &[f32], want: &[f64]) {
    assert_eq!(got.len(), want.len(), "{name}");
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g as f64 - w).abs() <= 1e-5 * (1.0 + w.abs()),
            "{name}[{i}]: step graph {g}, expected {w}"
        );
    }
}

fn check(optimizer: Optimizer, lr: f32, t: f32) {
    let Ok(rt) = Runtime::get() else {
        println!("skipped: ONNX Runtime is not installed");
        return;
    };
    let c = cnnc::compile_source(Path::new("m.cnn"), SRC.to_string());
    let model = c.model(None).unwrap();
    let step = graph::step_model(
        model,
        &c.sources,
        &optimizer,
        DropoutMode::Random,
        cnnc::train::graph::DEFAULT_AUX_WEIGHT,
    )
    .unwrap();
    let grad = graph::grad_model(model, &c.sources, &GradOptions::default()).unwrap();
    let mut step_s = rt
        .session(&step.model.encode_to_vec(), Device::Cpu)
        .unwrap();
    let mut grad_s = rt.session(&grad.encode_to_vec(), Device::Cpu).unwrap();

    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let w = onnx::initialize(model, Init::Default, 3);
    let x: Vec<f32> = (0..B * 32)
        .map(|_| rng.random::<f32>() * 2.0 - 0.5)
        .collect();
    let labels: Vec<i64> = (0..B).map(|_| rng.random_range(0..3)).collect();
    // Carried values: parameters from the init, running stats and optimizer state random
    // (as in the middle of a run; exp_avg_sq positive).
    let values: Vec<Vec<f32>> = step
        .carried
        .iter()
        .map(|c| match c.kind {
            CarriedKind::Param => w.get(&c.name).unwrap().data.clone(),
            CarriedKind::RunningStat | CarriedKind::State { .. } => (0..c.dims.iter().product())
                .map(|_| rng.random::<f32>() * 0.5 + 0.1)
                .collect(),
        })
        .collect();
    let (xs, ls) = ([B, 2, 4, 4], [B]);
    let (lr_v, t_v) = ([lr], [t]);
    let mut inputs = vec![
        Input::f32("input", &xs, &x),
        Input::i64("labels", &ls, &labels),
        Input::f32("lr", &[], &lr_v),
    ];
    if step.takes_step {
        inputs.push(Input::f32("t", &[], &t_v));
    }
    for (c, v) in step.carried.iter().zip(&values) {
        inputs.push(Input::f32(&c.name, &c.dims, v));
    }
    let outs: HashMap<String, Vec<f32>> = step_s
        .run(&inputs)
        .unwrap()
        .iter()
        .map(|o| (o.name.clone(), f32s(o)))
        .collect();

    let mut ginputs = vec![
        Input::f32("input", &xs, &x),
        Input::i64("labels", &ls, &labels),
    ];
    for (c, v) in step.carried.iter().zip(&values) {
        if c.kind == CarriedKind::Param {
            ginputs.push(Input::f32(&c.name, &c.dims, v));
        }
    }
    let grads: HashMap<String, Vec<f32>> = grad_s
        .run(&ginputs)
        .unwrap()
        .iter()
        .map(|o| (o.name.clone(), f32s(o)))
        .collect();
    close("loss", &outs["loss"], &[grads["loss"][0] as f64]);
    let correct = outs["correct"][0];
    assert!((0.0..=B as f32).contains(&correct) && correct.fract() == 0.0);

    let value = |name: &str| -> &Vec<f32> {
        let i = step.carried.iter().position(|c| c.name == name).unwrap();
        &values[i]
    };
    for c in step.carried.iter().filter(|c| c.kind == CarriedKind::Param) {
        let p = value(&c.name);
        let g = &grads[&format!("grad.{}", c.name)];
        match optimizer {
            Optimizer::Sgd {
                momentum,
                weight_decay,
            } => {
                let d: Vec<f64> = p
                    .iter()
                    .zip(g)
                    .map(|(&p, &g)| g as f64 + weight_decay as f64 * p as f64)
                    .collect();
                let upd: Vec<f64> = if momentum == 0.0 {
                    d
                } else {
                    let buf = value(&format!("{}.momentum_buffer", c.name));
                    let v: Vec<f64> = buf
                        .iter()
                        .zip(&d)
                        .map(|(&b, &d)| momentum as f64 * b as f64 + d)
                        .collect();
                    close(
                        &format!("new.{}.momentum_buffer", c.name),
                        &outs[&format!("new.{}.momentum_buffer", c.name)],
                        &v,
                    );
                    v
                };
                let want: Vec<f64> = p
                    .iter()
                    .zip(&upd)
                    .map(|(&p, &u)| p as f64 - lr as f64 * u)
                    .collect();
                close(
                    &format!("new.{}", c.name),
                    &outs[&format!("new.{}", c.name)],
                    &want,
                );
            }
            Optimizer::Adam {
                beta1,
                beta2,
                eps,
                weight_decay,
            } => {
                let (b1, b2, e, wd, t) = (
                    beta1 as f64,
                    beta2 as f64,
                    eps as f64,
                    weight_decay as f64,
                    t as f64,
                );
                let m = value(&format!("{}.exp_avg", c.name));
                let v = value(&format!("{}.exp_avg_sq", c.name));
                let mut nm = Vec::new();
                let mut nv = Vec::new();
                let mut np = Vec::new();
                for i in 0..p.len() {
                    let gi = g[i] as f64 + wd * p[i] as f64;
                    let mi = b1 * m[i] as f64 + (1.0 - b1) * gi;
                    let vi = b2 * v[i] as f64 + (1.0 - b2) * gi * gi;
                    let bc1 = 1.0 - b1.powf(t);
                    let bc2 = 1.0 - b2.powf(t);
                    let denom = vi.sqrt() / bc2.sqrt() + e;
                    nm.push(mi);
                    nv.push(vi);
                    np.push(p[i] as f64 - lr as f64 / bc1 * mi / denom);
                }
                close(
                    &format!("new.{}.exp_avg", c.name),
                    &outs[&format!("new.{}.exp_avg", c.name)],
                    &nm,
                );
                close(
                    &format!("new.{}.exp_avg_sq", c.name),
                    &outs[&format!("new.{}.exp_avg_sq", c.name)],
                    &nv,
                );
                close(
                    &format!("new.{}", c.name),
                    &outs[&format!("new.{}", c.name)],
                    &np,
                );
            }
        }
    }
    // Running statistics of the first batch norm, which sees the input itself.
    let (mut mean, mut var) = (vec![0.0f64; 2], vec![0.0f64; 2]);
    let per = (B * 16) as f64;
    for ch in 0..2 {
        let vals: Vec<f64> = (0..B)
            .flat_map(|n| (0..16).map(move |i| (n, i)))
            .map(|(n, i)| x[n * 32 + ch * 16 + i] as f64)
            .collect();
        mean[ch] = vals.iter().sum::<f64>() / per;
        var[ch] = vals.iter().map(|v| (v - mean[ch]).powi(2)).sum::<f64>() / (per - 1.0);
    }
    let rm = value("batchnorm1.running_mean");
    let rv = value("batchnorm1.running_var");
    let want_m: Vec<f64> = (0..2).map(|c| 0.9 * rm[c] as f64 + 0.1 * mean[c]).collect();
    let want_v: Vec<f64> = (0..2).map(|c| 0.9 * rv[c] as f64 + 0.1 * var[c]).collect();
    close(
        "new.batchnorm1.running_mean",
        &outs["new.batchnorm1.running_mean"],
        &want_m,
    );
    close(
        "new.batchnorm1.running_var",
        &outs["new.batchnorm1.running_var"],
        &want_v,
    );
}

#[test]
fn sgd_step_is_pytorch_sgd() {
    check(
        Optimizer::Sgd {
            momentum: 0.0,
            weight_decay: 0.0,
        },
        0.3,
        1.0,
    );
}

#[test]
fn sgd_momentum_weight_decay_step_is_pytorch_sgd() {
    check(
        Optimizer::Sgd {
            momentum: 0.9,
            weight_decay: 0.01,
        },
        0.05,
        1.0,
    );
}

#[test]
fn adam_step_is_pytorch_adam() {
    check(Optimizer::adam(0.0), 0.001, 1.0);
    check(Optimizer::adam(0.01), 0.002, 7.0);
}

/// The dropout masks follow `set_dropout_seed`: with the same weights and batch, the same seed
/// gives the same step and another seed another one. Also for a dropout before any
/// trainable layer, whose mask no backward node reads (ONNX Runtime's optimizer removed
/// that Dropout, and training ran without it).
#[test]
fn dropout_masks_follow_their_seed() {
    let Ok(rt) = Runtime::get() else {
        println!("skipped: ONNX Runtime is not installed");
        return;
    };
    for src in [
        "model D(input: [1, 6, 6]) { flatten linear(16) relu dropout(p=0.5) linear(3) }",
        "model D(input: [1, 6, 6]) { flatten dropout(p=0.5) linear(3) }",
    ] {
        dropout_masks_follow_their_seed_in(rt, src);
    }
}

fn dropout_masks_follow_their_seed_in(rt: &Runtime, src: &str) {
    let c = cnnc::compile_source(Path::new("d.cnn"), src.to_string());
    let model = c.model(None).unwrap();
    let weights = onnx::initialize(model, Init::Default, 1);
    let x: Vec<f32> = (0..8 * 36).map(|i| (i % 7) as f32 / 7.0).collect();
    let loss = |seed: u64| -> f32 {
        let sgd = Optimizer::Sgd {
            momentum: 0.0,
            weight_decay: 0.0,
        };
        let mut step = graph::step_model(
            model,
            &c.sources,
            &sgd,
            DropoutMode::Random,
            cnnc::train::graph::DEFAULT_AUX_WEIGHT,
        )
        .unwrap();
        step.set_initial_state(&weights).unwrap();
        step.set_dropout_seed(seed);
        let mut s = rt
            .session(&step.model.encode_to_vec(), Device::Cpu)
            .unwrap();
        let inputs = [
            Input::f32("input", &[8, 1, 6, 6], &x),
            Input::i64("labels", &[8], &[0, 1, 2, 0, 1, 2, 0, 1]),
            Input::f32("lr", &[], &[0.1]),
        ];
        let out = s.run_selected(&inputs, &["loss"]).unwrap();
        out.into_iter().next().unwrap().into_f32().unwrap()[0]
    };
    assert_eq!(loss(1), loss(1), "{src}");
    assert_ne!(loss(1), loss(2), "{src}");
}

/// No AveragePool the inference, gradient, step or evaluation graphs hold has asymmetric
/// pads (ceil-mode overhang, four-value or `same`-like pads): ONNX Runtime's CUDA
/// AveragePool applied the begin pads to both sides (onnxruntime#29631) and its CPU one took
/// a wrong divisor for them (#27375), so such pads are written as an explicit Pad. A
/// symmetric one keeps its pads (no extra node).
#[test]
fn average_pools_never_get_asymmetric_pads() {
    let src = "model M(input: [2, 10, 10]) {
    avgpool(3, stride=2, ceil=true) as a
    avgpool(2, pad=[1, 0, 0, 1]) as b
    avgpool(3, stride=1, pad=1)
    flatten linear(3)
}";
    let c = cnnc::compile_source(Path::new("avg.cnn"), src.to_string());
    assert!(!c.diagnostics.has_errors(), "{:?}", c.diagnostics);
    let model = &c.models[0];
    let w = onnx::initialize(model, Init::Default, 0);
    let graphs = [
        onnx::export(model, &c.sources, &w, &onnx::ExportOptions::default()).unwrap(),
        graph::grad_model(model, &c.sources, &GradOptions::default()).unwrap(),
        graph::step_model(
            model,
            &c.sources,
            &Optimizer::adam(0.0),
            DropoutMode::MaskInput,
            graph::DEFAULT_AUX_WEIGHT,
        )
        .unwrap()
        .model,
        graph::eval_model(model, &c.sources).unwrap(),
    ];
    for (which, m) in ["export", "grad", "step", "eval"].iter().zip(&graphs) {
        let g = m.graph.as_ref().unwrap();
        let pools: Vec<_> = g
            .node
            .iter()
            .filter(|n| n.op_type == "AveragePool")
            .collect();
        assert_eq!(pools.len(), 3, "{which}");
        let mut symmetric_pads = 0;
        for n in &pools {
            let pads = n
                .attribute
                .iter()
                .find(|a| a.name == "pads")
                .map(|a| a.ints.clone())
                .unwrap_or_default();
            assert!(
                pads.is_empty() || pads[..2] == pads[2..],
                "{which}: {} has pads {pads:?}",
                n.name
            );
            symmetric_pads += usize::from(pads.iter().any(|&p| p != 0));
        }
        assert_eq!(
            symmetric_pads, 1,
            "{which}: the pad=1 pooling keeps its pads"
        );
        let explicit = g.node.iter().filter(|n| n.op_type == "Pad").count();
        assert!(explicit >= 2, "{which}: {explicit} Pad nodes");
    }
}

/// A parameter that does not reach the loss (an auxiliary head with aux weight 0) is left
/// as it is by the step, as PyTorch's optimizers skip a parameter without a gradient: no
/// weight decay, no Adam or momentum step; the trunk is updated. With the head in the loss,
/// the head moves too.
#[test]
fn a_step_leaves_parameters_that_do_not_reach_the_loss_alone() {
    let Ok(rt) = Runtime::get() else {
        println!("skipped: ONNX Runtime is not installed");
        return;
    };
    let src = "model M(input: [1, 4, 4]) {
    conv(2, 3) relu
    output aux { flatten linear(3) }
    flatten linear(3)
}";
    let c = cnnc::compile_source(Path::new("m.cnn"), src.to_string());
    let model = c.model(None).unwrap();
    let w = onnx::initialize(model, Init::Default, 3);
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let x: Vec<f32> = (0..4 * 16).map(|_| rng.random::<f32>()).collect();
    let labels: Vec<i64> = (0..4).map(|_| rng.random_range(0..3)).collect();
    for (optimizer, aux_weight) in [
        (Optimizer::adam(0.1), 0.0),
        (
            Optimizer::Sgd {
                momentum: 0.9,
                weight_decay: 0.1,
            },
            0.0,
        ),
        (Optimizer::adam(0.1), 0.3),
    ] {
        let mut step = graph::step_model(
            model,
            &c.sources,
            &optimizer,
            DropoutMode::Random,
            aux_weight,
        )
        .unwrap();
        step.set_initial_state(&w).unwrap();
        let mut s = rt
            .session(&step.model.encode_to_vec(), Device::Cpu)
            .unwrap();
        let mut inputs = vec![
            Input::f32("input", &[4, 1, 4, 4], &x),
            Input::i64("labels", &[4], &labels),
            Input::f32("lr", &[], &[0.01]),
        ];
        if step.takes_step {
            inputs.push(Input::f32("t", &[], &[1.0]));
        }
        let outs: HashMap<String, Vec<f32>> = s
            .run(&inputs)
            .unwrap()
            .iter()
            .map(|o| (o.name.clone(), f32s(o)))
            .collect();
        let moved = |p: &str| outs[&format!("new.{p}")] != w.get(p).unwrap().data;
        let what = format!("{} at aux weight {aux_weight}", optimizer.describe());
        assert!(moved("conv1.weight"), "{what}: the trunk is trained");
        assert!(moved("linear1.weight"), "{what}: the main head is trained");
        assert_eq!(
            moved("aux.linear1.weight"),
            aux_weight != 0.0,
            "{what}: the auxiliary head"
        );
        assert_eq!(moved("aux.linear1.bias"), aux_weight != 0.0, "{what}");
    }
}

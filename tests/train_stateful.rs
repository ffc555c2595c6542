//! The step graph run with its state held in ONNX Runtime memory ([`StatefulSession`]: two
//! buffer sets ping-ponged through IoBinding) against the host path (every carried tensor
//! passed in and copied out by name each step, as `Session::run_selected` does): the same
//! losses and the same parameters, running statistics and optimizer state after several steps;
//! the state reads back and uploads; per-step inputs are checked. The CUDA test runs where a
//! CUDA build of ONNX Runtime and a GPU are present and says why it skips otherwise.

use cnnc::onnx::{self, Init};
use cnnc::runtime::{
    Device, Input, Output, OutputData, Runtime, RuntimeError, Session, SessionOptions, StateTensor,
    StatefulSession, CUDA_PROVIDER,
};
use cnnc::train::graph::{self, Carried, CarriedKind, DropoutMode, Optimizer, StepGraph};
use prost::Message;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::path::Path;

const SRC: &str = "model M(input: [2, 4, 4]) {
    batchnorm conv(3, 3) tanh flatten linear(3)
}";

/// The step graph of `SRC` and its first state: parameters from the default init, running
/// statistics and optimizer state random (as in the middle of a run; all positive).
fn step_graph(optimizer: &Optimizer) -> (StepGraph, Vec<Vec<f32>>) {
    let c = cnnc::compile_source(Path::new("m.cnn"), SRC.to_string());
    let model = c.model(None).unwrap();
    let step = graph::step_model(
        model,
        &c.sources,
        optimizer,
        DropoutMode::MaskInput,
        cnnc::train::graph::DEFAULT_AUX_WEIGHT,
    )
    .unwrap();
    let w = onnx::initialize(model, Init::Default, 3);
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let values = step
        .carried
        .iter()
        .map(|c| match c.kind {
            CarriedKind::Param => w.get(&c.name).unwrap().data.clone(),
            CarriedKind::RunningStat | CarriedKind::State { .. } => (0..c.dims.iter().product())
                .map(|_| rng.random::<f32>() * 0.5 + 0.1)
                .collect(),
        })
        .collect();
    (step, values)
}

struct Batch {
    x: Vec<f32>,
    labels: Vec<i64>,
    shape: [usize; 4],
}

/// Batches of 5, 5, 3 and 5 (the batch dimension is symbolic: a staged input tensor is
/// reused, replaced and replaced again).
fn batches() -> Vec<Batch> {
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    [5usize, 5, 3, 5]
        .iter()
        .map(|&b| Batch {
            x: (0..b * 32)
                .map(|_| rng.random::<f32>() * 2.0 - 0.5)
                .collect(),
            labels: (0..b).map(|_| rng.random_range(0..3)).collect(),
            shape: [b, 2, 4, 4],
        })
        .collect()
}

/// The (loss, correct) of every step, and the state after the last.
type Trace = (Vec<(f32, f32)>, Vec<Vec<f32>>);

fn scalar_f32(o: &Output) -> f32 {
    match &o.data {
        OutputData::F32(v) => v[0],
        OutputData::I64(v) => v[0] as f32,
        other => panic!("a step graph has no {} outputs", other.element()),
    }
}

fn state_of<'a>(
    carried: &'a [Carried],
    names: &'a [String],
    values: &'a [Vec<f32>],
) -> Vec<StateTensor<'a>> {
    carried
        .iter()
        .zip(names)
        .zip(values)
        .map(|((c, new), v)| StateTensor {
            input: &c.name,
            output: Some(new),
            dims: &c.dims,
            values: v,
        })
        .collect()
}

/// Runs every batch through the host path: state in, `new.` outputs copied back. Returns the
/// (loss, correct) of every step and the final state.
/// `held`: a carried tensor fed unchanged to every step (its `new.` output ignored).
fn host_path(
    session: &mut Session,
    step: &StepGraph,
    first: &[Vec<f32>],
    lr: f32,
    held: Option<usize>,
) -> Trace {
    let mut values = first.to_vec();
    let names: Vec<String> = ["loss".to_string(), "correct".to_string()]
        .into_iter()
        .chain(step.carried.iter().map(Carried::new_name))
        .collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let mut per_step = Vec::new();
    for (i, b) in batches().iter().enumerate() {
        let (lr_v, t_v, ls) = ([lr], [(i + 1) as f32], [b.labels.len()]);
        let mut inputs = vec![
            Input::f32("input", &b.shape, &b.x),
            Input::i64("labels", &ls, &b.labels),
            Input::f32("lr", &[], &lr_v),
        ];
        if step.takes_step {
            inputs.push(Input::f32("t", &[], &t_v));
        }
        for (c, v) in step.carried.iter().zip(&values) {
            inputs.push(Input::f32(&c.name, &c.dims, v));
        }
        let outs = session.run_selected(&inputs, &names).unwrap();
        per_step.push((scalar_f32(&outs[0]), scalar_f32(&outs[1])));
        let mut next: Vec<Vec<f32>> = outs[2..]
            .iter()
            .map(|o| o.as_f32().unwrap().to_vec())
            .collect();
        if let Some(h) = held {
            next[h] = values[h].clone();
        }
        values = next;
    }
    (per_step, values)
}

/// The same batches through a [`StatefulSession`].
fn stateful_path(
    session: &mut Session,
    step: &StepGraph,
    first: &[Vec<f32>],
    lr: f32,
    held: Option<usize>,
) -> Result<Trace, RuntimeError> {
    let names: Vec<String> = step.carried.iter().map(Carried::new_name).collect();
    let mut state = state_of(&step.carried, &names, first);
    if let Some(h) = held {
        state[h].output = None;
    }
    let mut s = StatefulSession::new(session, &state, &["loss", "correct"])?;
    let mut per_step = Vec::new();
    for (i, b) in batches().iter().enumerate() {
        let (lr_v, t_v, ls) = ([lr], [(i + 1) as f32], [b.labels.len()]);
        let mut inputs = vec![
            Input::f32("input", &b.shape, &b.x),
            Input::i64("labels", &ls, &b.labels),
            Input::f32("lr", &[], &lr_v),
        ];
        if step.takes_step {
            inputs.push(Input::f32("t", &[], &t_v));
        }
        let outs = s.run(&inputs)?;
        assert_eq!(outs.len(), 2);
        assert_eq!(
            (outs[0].name.as_str(), outs[1].name.as_str()),
            ("loss", "correct")
        );
        assert!(matches!(outs[1].data, OutputData::I64(_)), "{:?}", outs[1]);
        per_step.push((scalar_f32(&outs[0]), scalar_f32(&outs[1])));
    }
    Ok((per_step, s.state()?))
}

fn assert_close(what: &str, got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len(), "{what}");
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= 1e-6 * (1.0 + w.abs()),
            "{what}[{i}]: stateful {g}, host {w}"
        );
    }
}

fn compare(device: Device, optimizer: Optimizer, lr: f32) {
    let Ok(rt) = Runtime::get() else {
        println!("skipped: ONNX Runtime is not installed");
        return;
    };
    let (step, first) = step_graph(&optimizer);
    let bytes = step.model.encode_to_vec();
    // The reference always runs on the CPU.
    let mut host = rt.session(&bytes, Device::Cpu).unwrap();
    let (want_steps, want_state) = host_path(&mut host, &step, &first, lr, None);
    // TF32 off: float32 products on the GPU too.
    let options = SessionOptions {
        device,
        tf32: false,
        ..SessionOptions::default()
    };
    let mut dev = rt.session_with(&bytes, &options).unwrap();
    let (got_steps, got_state) = stateful_path(&mut dev, &step, &first, lr, None).unwrap();
    // CUDA kernels sum in another order than the CPU's; under Adam a gradient that is almost
    // zero can change sign with that order, and the step then moves by about lr either way.
    let tol = if device == Device::Cpu { 1e-6 } else { 1e-4 };
    let moved = match (device, &optimizer) {
        (Device::Cuda, Optimizer::Adam { .. }) => 2.0 * lr,
        _ => 0.0,
    };
    for (i, ((gl, gc), (wl, wc))) in got_steps.iter().zip(&want_steps).enumerate() {
        assert!(
            (gl - wl).abs() <= tol * (1.0 + wl.abs()),
            "step {i} loss: {gl} vs {wl}"
        );
        if device == Device::Cpu {
            assert_eq!(gc, wc, "step {i} correct");
        } else {
            // Two nearly tied class scores may order either way.
            assert!((gc - wc).abs() <= 1.0, "step {i} correct: {gc} vs {wc}");
        }
    }
    assert_eq!(got_state.len(), step.carried.len());
    for ((c, g), w) in step.carried.iter().zip(&got_state).zip(&want_state) {
        if device == Device::Cpu {
            assert_close(&c.name, g, w);
        } else {
            for (i, (&g, &w)) in g.iter().zip(w).enumerate() {
                assert!(
                    (g - w).abs() <= tol * (1.0 + w.abs()) + moved,
                    "{}[{i}]: {device} {g}, cpu {w}",
                    c.name
                );
            }
        }
        // The state moved: the run did not read back its first value.
        assert_ne!(
            g,
            &first[step.carried.iter().position(|d| d.name == c.name).unwrap()]
        );
    }
}

#[test]
fn stateful_sgd_steps_match_the_host_path() {
    compare(
        Device::Cpu,
        Optimizer::Sgd {
            momentum: 0.0,
            weight_decay: 0.0,
        },
        0.3,
    );
    compare(
        Device::Cpu,
        Optimizer::Sgd {
            momentum: 0.9,
            weight_decay: 0.01,
        },
        0.05,
    );
}

#[test]
fn stateful_adam_steps_match_the_host_path() {
    compare(Device::Cpu, Optimizer::adam(0.01), 0.002);
}

#[test]
fn state_reads_back_uploads_and_survives_a_bad_run() {
    let Ok(rt) = Runtime::get() else {
        println!("skipped: ONNX Runtime is not installed");
        return;
    };
    let optimizer = Optimizer::Sgd {
        momentum: 0.9,
        weight_decay: 0.0,
    };
    let (step, first) = step_graph(&optimizer);
    let mut session = rt
        .session(&step.model.encode_to_vec(), Device::Cpu)
        .unwrap();
    let names: Vec<String> = step.carried.iter().map(Carried::new_name).collect();
    let state = state_of(&step.carried, &names, &first);
    let mut s = StatefulSession::new(&mut session, &state, &["loss"]).unwrap();
    assert_eq!(s.device(), Device::Cpu);
    assert_eq!(s.state().unwrap(), first);

    let other: Vec<Vec<f32>> = first
        .iter()
        .map(|v| v.iter().map(|x| x * 0.5 - 0.25).collect())
        .collect();
    let refs: Vec<&[f32]> = other.iter().map(Vec::as_slice).collect();
    s.upload(&refs).unwrap();
    assert_eq!(s.state().unwrap(), other);

    // Rejected per-step inputs leave the state as it was.
    let b = &batches()[0];
    let (lr, ls) = ([0.1f32], [b.labels.len()]);
    let bad_labels = [0.0f32; 5];
    let carried0 = &step.carried[0];
    let cases: Vec<(Vec<Input<'_>>, &str)> = vec![
        (
            vec![
                Input::f32("input", &b.shape, &b.x),
                Input::f32("lr", &[], &lr),
            ],
            "input `labels` (int64 [N]) is missing",
        ),
        (
            vec![
                Input::f32("input", &b.shape, &b.x),
                Input::i64("labels", &ls, &b.labels),
                Input::f32("lr", &[], &lr),
                Input::f32(&carried0.name, &carried0.dims, &other[0]),
            ],
            "is state the session holds between runs",
        ),
        (
            vec![
                Input::f32("input", &b.shape, &b.x),
                Input::f32("labels", &ls, &bad_labels),
                Input::f32("lr", &[], &lr),
            ],
            "input `labels` is int64 in the model, the value given is float32",
        ),
        (
            vec![
                Input::f32("input", &[5, 32], &b.x),
                Input::i64("labels", &ls, &b.labels),
                Input::f32("lr", &[], &lr),
            ],
            "input `input`: the model expects",
        ),
        (
            vec![
                Input::f32("input", &b.shape, &b.x),
                Input::i64("labels", &ls, &b.labels),
                Input::f32("lr", &[], &lr),
                Input::f32("nope", &[], &lr),
            ],
            "the model has no input `nope`",
        ),
    ];
    for (inputs, want) in cases {
        match s.run(&inputs) {
            Err(e @ RuntimeError::Input { .. }) => {
                assert!(e.to_string().contains(want), "{e}\nwanted: {want}")
            }
            other => panic!("expected an input error ({want}), got {other:?}"),
        }
    }
    assert_eq!(s.state().unwrap(), other);

    // One good step: the state is the host path's `new.` outputs from the same state.
    let good = [
        Input::f32("input", &b.shape, &b.x),
        Input::i64("labels", &ls, &b.labels),
        Input::f32("lr", &[], &lr),
    ];
    let outs = s.run(&good).unwrap();
    assert_eq!(outs.len(), 1);
    let after = s.state().unwrap();
    drop(s);
    let mut inputs = good.to_vec();
    for (c, v) in step.carried.iter().zip(&other) {
        inputs.push(Input::f32(&c.name, &c.dims, v));
    }
    let mut want_names = vec!["loss"];
    want_names.extend(names.iter().map(String::as_str));
    let want = session.run_selected(&inputs, &want_names).unwrap();
    assert_close("loss", outs[0].as_f32().unwrap(), want[0].as_f32().unwrap());
    for ((c, got), w) in step.carried.iter().zip(&after).zip(&want[1..]) {
        assert_close(&c.name, got, w.as_f32().unwrap());
    }
}

#[test]
fn a_bad_state_is_refused_by_name() {
    let Ok(rt) = Runtime::get() else {
        println!("skipped: ONNX Runtime is not installed");
        return;
    };
    let (step, first) = step_graph(&Optimizer::adam(0.0));
    let mut session = rt
        .session(&step.model.encode_to_vec(), Device::Cpu)
        .unwrap();
    let names: Vec<String> = step.carried.iter().map(Carried::new_name).collect();
    let good = state_of(&step.carried, &names, &first);
    let wrong_dims = [7usize, 7];
    let short = [0.0f32; 1];
    let mut cases: Vec<(Vec<StateTensor<'_>>, Vec<&str>, &str)> = Vec::new();
    let mut s = good.clone();
    s[0].dims = &wrong_dims;
    cases.push((s, vec!["loss"], "state input `"));
    let mut s = good.clone();
    s[0].values = &short;
    cases.push((s, vec!["loss"], "values"));
    let mut s = good.clone();
    s[0].input = "missing";
    cases.push((
        s,
        vec!["loss"],
        "the model has no input `missing` for state",
    ));
    let mut s = good.clone();
    s[0].output = Some("new.missing");
    cases.push((s, vec!["loss"], "the model has no output `new.missing`"));
    let mut s = good.clone();
    s[1].input = s[0].input;
    cases.push((s, vec!["loss"], "is given twice"));
    cases.push((good.clone(), vec!["los"], "the model has no output `los`"));
    cases.push((good.clone(), vec!["loss", "loss"], "asked for twice"));
    let mut s = good.clone();
    s[0].input = "labels";
    cases.push((
        s,
        vec!["loss"],
        "state input `labels` is int64 in the model",
    ));
    for (state, outs, want) in cases {
        match StatefulSession::new(&mut session, &state, &outs) {
            Err(e @ RuntimeError::Input { .. }) => {
                assert!(e.to_string().contains(want), "{e}\nwanted: {want}")
            }
            other => panic!("expected an input error ({want}), got {other:?}"),
        }
    }
}

/// Skips a CUDA test with `reason`, or fails it where `CNNC_REQUIRE_CUDA=1` says CUDA must
/// work (scripts/gpu_check.sh on a GPU machine: a skip there would pass unseen).
fn skip_cuda(reason: String) {
    if std::env::var("CNNC_REQUIRE_CUDA").is_ok_and(|v| v == "1") {
        panic!("CNNC_REQUIRE_CUDA=1, but {reason}");
    }
    println!("skipped: {reason}");
}

#[test]
fn stateful_cuda_matches_the_cpu() {
    let Ok(rt) = Runtime::get() else {
        skip_cuda("ONNX Runtime is not installed".into());
        return;
    };
    if !rt
        .available_providers()
        .map(|p| p.iter().any(|p| p == CUDA_PROVIDER))
        .unwrap_or(false)
    {
        skip_cuda(
            "this ONNX Runtime has no CUDA execution provider (pip install onnxruntime-gpu)".into(),
        );
        return;
    }
    if let Err(e) = rt.session(&cnnc::runtime::tiny_model(), Device::Cuda) {
        skip_cuda(format!("no CUDA session can start here: {e}"));
        return;
    }
    compare(
        Device::Cuda,
        Optimizer::Sgd {
            momentum: 0.9,
            weight_decay: 0.01,
        },
        0.05,
    );
    compare(Device::Cuda, Optimizer::adam(0.0), 0.002);
}

/// Held tensors (no output): every run reads them, no run changes them, and the results are
/// those of passing them as ordinary inputs (the evaluation path of `cnnc train`).
#[test]
fn held_tensors_are_read_by_every_run_and_never_change() {
    let Ok(rt) = Runtime::get() else {
        println!("skipped: ONNX Runtime is not installed");
        return;
    };
    let optimizer = Optimizer::Sgd {
        momentum: 0.0,
        weight_decay: 0.0,
    };
    let (step, first) = step_graph(&optimizer);
    let c = cnnc::compile_source(Path::new("m.cnn"), SRC.to_string());
    let eval = graph::eval_model(c.model(None).unwrap(), &c.sources).unwrap();
    let mut session = rt.session(&eval.encode_to_vec(), Device::Cpu).unwrap();
    // Every input but the batch; the names are taken from `step`, not from the session,
    // which is borrowed mutably below.
    let held_names: Vec<&str> = session
        .inputs()
        .iter()
        .map(|i| i.name.as_str())
        .filter(|n| !matches!(*n, "input" | "labels"))
        .map(|n| {
            step.carried
                .iter()
                .find(|c| c.name == n)
                .unwrap()
                .name
                .as_str()
        })
        .collect();
    assert!(!held_names.is_empty());
    let held: Vec<StateTensor<'_>> = held_names
        .iter()
        .map(|n| {
            let i = step.carried.iter().position(|c| c.name == *n).unwrap();
            StateTensor {
                input: &step.carried[i].name,
                output: None,
                dims: &step.carried[i].dims,
                values: &first[i],
            }
        })
        .collect();
    // The reference: every tensor passed as an input of each run.
    let mut want = Vec::new();
    for b in batches() {
        let ls = [b.labels.len()];
        let mut inputs = vec![
            Input::f32("input", &b.shape, &b.x),
            Input::i64("labels", &ls, &b.labels),
        ];
        for t in &held {
            inputs.push(Input::f32(t.input, t.dims, t.values));
        }
        want.push(session.run_selected(&inputs, &["loss", "correct"]).unwrap());
    }
    let mut s = StatefulSession::new(&mut session, &held, &["loss", "correct"]).unwrap();
    for (b, w) in batches().iter().zip(&want) {
        let ls = [b.labels.len()];
        let got = s
            .run(&[
                Input::f32("input", &b.shape, &b.x),
                Input::i64("labels", &ls, &b.labels),
            ])
            .unwrap();
        assert_eq!(got[0].data, w[0].data, "loss");
        assert_eq!(got[1].data, w[1].data, "correct");
    }
    let values: Vec<Vec<f32>> = held.iter().map(|t| t.values.to_vec()).collect();
    assert_eq!(s.state().unwrap(), values, "held tensors never change");
}

/// Held and swapped tensors in one session: a parameter held fixed while the rest train
/// follows the host path that feeds it unchanged, over steps that use both bindings.
#[test]
fn held_and_swapped_tensors_mix_in_one_session() {
    let Ok(rt) = Runtime::get() else {
        println!("skipped: ONNX Runtime is not installed");
        return;
    };
    let optimizer = Optimizer::Sgd {
        momentum: 0.9,
        weight_decay: 0.0,
    };
    let (step, first) = step_graph(&optimizer);
    let held = step
        .carried
        .iter()
        .position(|c| matches!(c.kind, CarriedKind::Param))
        .unwrap();
    let bytes = step.model.encode_to_vec();
    let mut host = rt.session(&bytes, Device::Cpu).unwrap();
    let (want_steps, want_state) = host_path(&mut host, &step, &first, 0.1, Some(held));
    let mut session = rt.session(&bytes, Device::Cpu).unwrap();
    let (got_steps, got_state) =
        stateful_path(&mut session, &step, &first, 0.1, Some(held)).unwrap();
    assert!(batches().len() >= 3, "both bindings are used");
    assert_eq!(got_steps, want_steps);
    for ((c, g), w) in step.carried.iter().zip(&got_state).zip(&want_state) {
        assert_close(&c.name, g, w);
    }
    assert_eq!(
        got_state[held], first[held],
        "the held parameter never changed"
    );
    let moved = (0..first.len())
        .filter(|&i| got_state[i] != first[i])
        .count();
    assert!(moved > 0, "the other tensors trained");
}

//! Training throughput through ONNX Runtime (a benchmark, not a test): `cargo bench --bench
//! train`. For models/lenet.cnn and models/lenet_bn.cnn at batch 256 on random data: the median
//! time of one training step two ways, measured alternately so the machine's load falls on
//! both: the state on the host (every carried tensor passed in and its `new.` output copied back
//! each step, what `cnnc train` did before) and the state kept in ONNX Runtime memory
//! (`StatefulSession`, what `cnnc train` does); and two ways to evaluate 10,000 examples: the
//! evaluation graph with parameters as inputs (one session for the whole run, what `cnnc train`
//! does), and a fresh inference export with the weights as initializers plus a new session (per
//! epoch). Sessions are made as `cnnc train` makes them (threads sleep between operators).
//! Last, the time to draw AlexNet's dropout masks of one step on the host.

use cnnc::onnx::{self, ExportOptions, Init};
use cnnc::runtime::{
    Device, Input, OutputData, Runtime, SessionOptions, StateTensor, StatefulSession,
};
use cnnc::train::graph::{self, Carried, CarriedKind, DropoutMode, Optimizer};
use prost::Message;
use std::path::Path;
use std::time::{Duration, Instant};

fn median_time(runs: usize, mut f: impl FnMut()) -> Duration {
    let mut times: Vec<Duration> = (0..runs)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .collect();
    times.sort();
    times[times.len() / 2]
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

fn main() {
    let Ok(rt) = Runtime::get() else {
        eprintln!("ONNX Runtime is not installed; nothing to measure");
        return;
    };
    // The session options of `cnnc train`: idle threads sleep between operators.
    let like_cnnc_train = SessionOptions {
        device: Device::Cpu,
        spin_wait: false,
        ..SessionOptions::default()
    };
    const B: usize = 256;
    const TEST: usize = 10_000;
    const STEPS: usize = 200;
    for file in ["models/lenet.cnn", "models/lenet_bn.cnn"] {
        let c = cnnc::compile_file(Path::new(file)).expect("the model compiles");
        let model = c.model(None).expect("one model");
        let opt = Optimizer::Sgd {
            momentum: 0.0,
            weight_decay: 0.0,
        };
        // As `cnnc train` builds it (its dropout masks fed; these models have none).
        let step = graph::step_model(
            model,
            &c.sources,
            &opt,
            DropoutMode::MaskInput,
            cnnc::train::graph::DEFAULT_AUX_WEIGHT,
        )
        .unwrap();
        let eval = graph::eval_model(model, &c.sources).unwrap();
        let mut step_s = rt
            .session_with(&step.model.encode_to_vec(), &like_cnnc_train)
            .unwrap();
        let mut eval_s = rt
            .session_with(&eval.encode_to_vec(), &like_cnnc_train)
            .unwrap();
        let w = onnx::initialize(model, Init::Xavier, 0);
        let values: Vec<Vec<f32>> = step
            .carried
            .iter()
            .map(|c| match c.kind {
                CarriedKind::State { .. } => vec![0.0; c.dims.iter().product()],
                _ => w.get(&c.name).unwrap().data.clone(),
            })
            .collect();
        let x: Vec<f32> = (0..B * 784)
            .map(|i| ((i * 7919) % 255) as f32 / 255.0)
            .collect();
        let labels: Vec<i64> = (0..B as i64).map(|i| i % 10).collect();
        let (xs, ls, lr) = ([B, 1, 28, 28], [B], [0.01f32]);
        let new_names: Vec<String> = step.carried.iter().map(Carried::new_name).collect();
        let out_names: Vec<&str> = ["loss", "correct"]
            .into_iter()
            .chain(new_names.iter().map(String::as_str))
            .collect();
        let mut host_values = values.clone();
        let mut host_step = || {
            let mut inputs = vec![
                Input::f32("input", &xs, &x),
                Input::i64("labels", &ls, &labels),
                Input::f32("lr", &[], &lr),
            ];
            for (c, v) in step.carried.iter().zip(&host_values) {
                inputs.push(Input::f32(&c.name, &c.dims, v));
            }
            let outs = step_s.run_selected(&inputs, &out_names).unwrap();
            for (slot, o) in host_values.iter_mut().zip(outs.into_iter().skip(2)) {
                if let OutputData::F32(v) = o.data {
                    *slot = v;
                }
            }
        };
        let mut device_s = rt
            .session_with(&step.model.encode_to_vec(), &like_cnnc_train)
            .unwrap();
        let tensors: Vec<StateTensor<'_>> = step
            .carried
            .iter()
            .zip(&new_names)
            .zip(&values)
            .map(|((c, new), v)| StateTensor {
                input: &c.name,
                output: Some(new),
                dims: &c.dims,
                values: v,
            })
            .collect();
        let mut stateful =
            StatefulSession::new(&mut device_s, &tensors, &["loss", "correct"]).unwrap();
        let mut device_step = || {
            let inputs = [
                Input::f32("input", &xs, &x),
                Input::i64("labels", &ls, &labels),
                Input::f32("lr", &[], &lr),
            ];
            stateful.run(&inputs).unwrap();
        };
        host_step();
        device_step();
        let (mut host_times, mut device_times) = (Vec::new(), Vec::new());
        for _ in 0..STEPS {
            let t = Instant::now();
            host_step();
            host_times.push(t.elapsed());
            let t = Instant::now();
            device_step();
            device_times.push(t.elapsed());
        }
        let (host_time, device_time) = (median(host_times), median(device_times));
        let batches = TEST.div_ceil(B);
        let eval_graph = median_time(5, || {
            for _ in 0..batches {
                let mut inputs = vec![
                    Input::f32("input", &xs, &x),
                    Input::i64("labels", &ls, &labels),
                ];
                for (c, v) in step.carried.iter().zip(&values) {
                    if !matches!(c.kind, CarriedKind::State { .. }) {
                        inputs.push(Input::f32(&c.name, &c.dims, v));
                    }
                }
                eval_s.run_selected(&inputs, &["correct"]).unwrap();
            }
        });
        let fresh = median_time(5, || {
            let bytes =
                onnx::export_bytes(model, &c.sources, &w, &ExportOptions::default()).unwrap();
            let mut s = rt.session_with(&bytes, &like_cnnc_train).unwrap();
            for _ in 0..batches {
                s.run_f32(&x, &xs).unwrap();
            }
        });
        println!(
            "{file}: step at batch {B} (median of {STEPS}, alternating): state on the host \
             {:.3} ms ({:.0} examples/s training alone), state in ONNX Runtime memory {:.3} ms \
             ({:.0} examples/s); evaluating {TEST} examples: eval graph {:.0} ms, fresh export + \
             session {:.0} ms",
            host_time.as_secs_f64() * 1e3,
            B as f64 / host_time.as_secs_f64(),
            device_time.as_secs_f64() * 1e3,
            B as f64 / device_time.as_secs_f64(),
            eval_graph.as_secs_f64() * 1e3,
            fresh.as_secs_f64() * 1e3,
        );
    }
    // Dropout's masks, drawn on the host each step: AlexNet's two dropouts of 4096 features.
    let alexnet_masks = graph::DropoutMask {
        input: "dropout_mask.dropout1".into(),
        dims: vec![4096],
        p: 0.5,
    };
    let mut values = Vec::new();
    let masks = median_time(21, || {
        for step in 0..2 {
            cnnc::train::dropout::draw(&alexnet_masks, 0, step, B, &mut values);
        }
    });
    println!(
        "dropout masks of 2 × {B} × 4096 values (AlexNet's per step, median of 21): {:.2} ms",
        masks.as_secs_f64() * 1e3
    );
}

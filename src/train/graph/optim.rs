//! Optimizers written into the step graph, with PyTorch's semantics (`torch.optim.SGD` with
//! dampening 0 and no Nesterov; `torch.optim.Adam` without amsgrad). The learning rate `lr`
//! and Adam's step number `t` (1 on the first step) are graph inputs, so one graph serves a
//! whole run; the other hyperparameters are constants of the graph.

use super::builder::Builder;
use crate::onnx::ParamSpec;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Optimizer {
    /// g ← ∇ + wd·p; v ← μ·v + g (v kept only when μ ≠ 0); p ← p − lr·v.
    Sgd { momentum: f32, weight_decay: f32 },
    /// g ← ∇ + wd·p; m ← β₁m + (1−β₁)g; v ← β₂v + (1−β₂)g²;
    /// p ← p − lr/(1−β₁ᵗ) · m / (√v / √(1−β₂ᵗ) + ε).
    Adam {
        beta1: f32,
        beta2: f32,
        eps: f32,
        weight_decay: f32,
    },
}

impl Optimizer {
    /// Adam with PyTorch's defaults (β = (0.9, 0.999), ε = 1e-8).
    pub fn adam(weight_decay: f32) -> Optimizer {
        Optimizer::Adam {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay,
        }
    }

    /// PyTorch's names of the per-parameter state tensors.
    pub fn slots(&self) -> &'static [&'static str] {
        match self {
            Optimizer::Sgd { momentum, .. } if *momentum == 0.0 => &[],
            Optimizer::Sgd { .. } => &["momentum_buffer"],
            Optimizer::Adam { .. } => &["exp_avg", "exp_avg_sq"],
        }
    }

    /// Whether the step graph takes the step number `t`.
    pub fn takes_step(&self) -> bool {
        matches!(self, Optimizer::Adam { .. })
    }

    pub fn describe(&self) -> String {
        match self {
            Optimizer::Sgd {
                momentum,
                weight_decay,
            } => format!("SGD, momentum {momentum}, weight decay {weight_decay}"),
            Optimizer::Adam {
                beta1,
                beta2,
                eps,
                weight_decay,
            } => {
                format!("Adam, betas ({beta1}, {beta2}), eps {eps:e}, weight decay {weight_decay}")
            }
        }
    }

    /// Emits the update of every parameter; outputs `new.<param>` and `new.<param>.<slot>`.
    pub(super) fn lower(
        &self,
        b: &mut Builder,
        params: &[ParamSpec],
        grads: &HashMap<String, String>,
    ) {
        b.doc = format!("optimizer: {}", self.describe());
        let decayed = |b: &mut Builder, p: &str, g: &str, wd: f32| -> String {
            if wd == 0.0 {
                g.to_string()
            } else {
                let d = b.scale(p, wd, &format!("{p}.decay"));
                b.add(g, &d, &format!("{p}.decayed_grad"))
            }
        };
        match *self {
            Optimizer::Sgd {
                momentum,
                weight_decay,
            } => {
                for s in params {
                    let p = s.name.as_str();
                    let g = decayed(b, p, &grads[p], weight_decay);
                    let update = if momentum == 0.0 {
                        g
                    } else {
                        let buf = format!("{p}.momentum_buffer");
                        let old = b.scale(&buf, momentum, &format!("{buf}.decayed"));
                        let new = format!("new.{buf}");
                        b.node_to("Add", &[&old, &g], &[&new], vec![]);
                        new
                    };
                    let step = b.mul(&update, "lr", &format!("{p}.step"));
                    b.node_to("Sub", &[p, &step], &[&format!("new.{p}")], vec![]);
                }
            }
            Optimizer::Adam {
                beta1,
                beta2,
                eps,
                weight_decay,
            } => {
                // Scalars shared by every parameter: lr / (1 − β₁ᵗ) and √(1 − β₂ᵗ).
                let one = b.scalar(1.0);
                let b1 = b.scalar(beta1);
                let b2 = b.scalar(beta2);
                let p1 = b.op("Pow", &[&b1, "t"], "adam.beta1_t", vec![]);
                let p2 = b.op("Pow", &[&b2, "t"], "adam.beta2_t", vec![]);
                let bc1 = b.sub(&one, &p1, "adam.bias_correction1");
                let bc2 = b.sub(&one, &p2, "adam.bias_correction2");
                let step_size = b.div("lr", &bc1, "adam.step_size");
                let sqrt_bc2 = b.op("Sqrt", &[&bc2], "adam.sqrt_bias_correction2", vec![]);
                let e = b.scalar(eps);
                for s in params {
                    let p = s.name.as_str();
                    let g = decayed(b, p, &grads[p], weight_decay);
                    let (m, v) = (format!("{p}.exp_avg"), format!("{p}.exp_avg_sq"));
                    let (new_m, new_v) = (format!("new.{m}"), format!("new.{v}"));
                    let m_old = b.scale(&m, beta1, &format!("{m}.decayed"));
                    let m_g = b.scale(&g, 1.0 - beta1, &format!("{m}.grad"));
                    b.node_to("Add", &[&m_old, &m_g], &[&new_m], vec![]);
                    let v_old = b.scale(&v, beta2, &format!("{v}.decayed"));
                    let g2 = b.mul(&g, &g, &format!("{p}.grad_sq"));
                    let v_g = b.scale(&g2, 1.0 - beta2, &format!("{v}.grad"));
                    b.node_to("Add", &[&v_old, &v_g], &[&new_v], vec![]);
                    let sv = b.op("Sqrt", &[&new_v], &format!("{v}.sqrt"), vec![]);
                    let sv = b.div(&sv, &sqrt_bc2, &format!("{v}.corrected"));
                    let denom = b.add(&sv, &e, &format!("{p}.denom"));
                    let ratio = b.div(&new_m, &denom, &format!("{p}.ratio"));
                    let step = b.mul(&ratio, &step_size, &format!("{p}.step"));
                    b.node_to("Sub", &[p, &step], &[&format!("new.{p}")], vec![]);
                }
            }
        }
        b.doc.clear();
    }
}

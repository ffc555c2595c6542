//! The per-layer summary of a checked model: output shapes, parameters and MACs.

use super::CheckedModel;
use serde::Serialize;
use std::fmt::Write as _;

/// Bytes per element of every tensor cnnc emits (float32).
pub const BYTES_PER_ELEMENT: u64 = 4;

#[derive(Serialize, Debug, Clone, PartialEq)]
pub struct Summary {
    pub model: String,
    pub input: Vec<u64>,
    pub output: Vec<u64>,
    /// The outputs besides the main one (`output NAME { }`), in the model's order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub named_outputs: Vec<OutputRow>,
    pub params: u64,
    /// Saturated at `u64::MAX`, which the JSON writes as `null` (beyond 64 bits).
    #[serde(serialize_with = "count_or_null")]
    pub macs: u64,
    /// Parameter bytes as float32.
    pub param_bytes: u64,
    /// Bytes of every layer's output for one sample, as float32 (no buffer reuse assumed).
    pub activation_bytes: u64,
    pub layers: Vec<LayerRow>,
}

#[derive(Serialize, Debug, Clone, PartialEq)]
pub struct OutputRow {
    pub name: String,
    pub shape: Vec<u64>,
}

#[derive(Serialize, Debug, Clone, PartialEq)]
pub struct LayerRow {
    pub name: String,
    pub op: String,
    pub output: Vec<u64>,
    pub params: u64,
    #[serde(serialize_with = "count_or_null")]
    pub macs: u64,
}

/// A count saturated at `u64::MAX` is beyond 64 bits, not that number: JSON's `null`.
fn count_or_null<S: serde::Serializer>(n: &u64, s: S) -> Result<S::Ok, S::Error> {
    if *n == u64::MAX {
        s.serialize_none()
    } else {
        s.serialize_u64(*n)
    }
}

pub fn summarize(model: &CheckedModel) -> Summary {
    let layers: Vec<LayerRow> = model
        .layers()
        .into_iter()
        .map(|ix| {
            let n = model.node(ix);
            LayerRow {
                name: n.name.clone(),
                op: n.op.kind().to_string(),
                output: model.shape(ix).0.clone(),
                params: n.params,
                macs: n.macs,
            }
        })
        .collect();
    let activation_elements: u64 = model
        .layers()
        .into_iter()
        .map(|ix| model.shape(ix).elements())
        .fold(0, u64::saturating_add);
    Summary {
        model: model.name.clone(),
        input: model.input_shape().0.clone(),
        output: model.output_shape().0.clone(),
        named_outputs: model
            .graph
            .named_outputs
            .iter()
            .map(|o| OutputRow {
                name: o.name.clone(),
                shape: model.shape(o.node).0.clone(),
            })
            .collect(),
        params: model.total_params(),
        macs: model.total_macs(),
        param_bytes: model.total_params().saturating_mul(BYTES_PER_ELEMENT),
        activation_bytes: activation_elements.saturating_mul(BYTES_PER_ELEMENT),
        layers,
    }
}

/// Thousands separators: 61706 → "61,706". Counts saturate at `u64::MAX` (a model of 8
/// linear layers of 2³¹ features each), which is said as beyond 64 bits, not as a count.
pub fn group(n: u64) -> String {
    if n == u64::MAX {
        return "more than 18,446,744,073,709,551,614 (beyond 64 bits)".into();
    }
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// 1536 → "1.5 KiB".
pub fn bytes(n: u64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    let mut x = n as f64;
    let mut u = 0;
    while x >= 1024.0 && u + 1 < units.len() {
        x /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{x:.1} {}", units[u])
    }
}

fn shape_str(d: &[u64]) -> String {
    crate::ir::Shape(d.to_vec()).to_string()
}

impl Summary {
    /// The human-readable table.
    pub fn to_text(&self) -> String {
        let mut rows: Vec<[String; 5]> = vec![[
            "layer".into(),
            "kind".into(),
            "output".into(),
            "params".into(),
            "MACs".into(),
        ]];
        for l in &self.layers {
            rows.push([
                l.name.clone(),
                l.op.clone(),
                shape_str(&l.output),
                group(l.params),
                group(l.macs),
            ]);
        }
        let mut widths = [0usize; 5];
        for r in &rows {
            for (w, c) in widths.iter_mut().zip(r) {
                *w = (*w).max(c.chars().count());
            }
        }
        let mut out = String::new();
        let _ = write!(
            out,
            "model {}: input {} → output {}",
            self.model,
            shape_str(&self.input),
            shape_str(&self.output)
        );
        for o in &self.named_outputs {
            let _ = write!(out, ", {} {}", o.name, shape_str(&o.shape));
        }
        out.push('\n');
        let line: usize = widths.iter().sum::<usize>() + 8;
        for (i, r) in rows.iter().enumerate() {
            let _ = writeln!(
                out,
                "{:<w0$}  {:<w1$}  {:<w2$}  {:>w3$}  {:>w4$}",
                r[0],
                r[1],
                r[2],
                r[3],
                r[4],
                w0 = widths[0],
                w1 = widths[1],
                w2 = widths[2],
                w3 = widths[3],
                w4 = widths[4]
            );
            if i == 0 {
                let _ = writeln!(out, "{}", "─".repeat(line));
            }
        }
        let _ = writeln!(out, "{}", "─".repeat(line));
        let _ = writeln!(
            out,
            "parameters        {} ({} as float32)",
            group(self.params),
            bytes(self.param_bytes)
        );
        let _ = writeln!(out, "MACs per sample   {}", group(self.macs));
        let _ = writeln!(
            out,
            "activations       {} per sample (float32, all layer outputs)",
            bytes(self.activation_bytes)
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::group;

    #[test]
    fn counts_are_grouped_and_saturation_is_said() {
        assert_eq!(group(0), "0");
        assert_eq!(group(61_706), "61,706");
        assert_eq!(group(1_000_000), "1,000,000");
        assert_eq!(group(u64::MAX - 1), "18,446,744,073,709,551,614");
        assert!(group(u64::MAX).contains("beyond 64 bits"));
    }
}

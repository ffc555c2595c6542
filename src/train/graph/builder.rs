//! A small ONNX graph builder: unique value names, deduplicated constants, and one helper per
//! ONNX op the training graphs use. Every helper returns the name of the value it made.

use crate::onnx::proto::{
    data_type, AttributeProto, Dim, GraphProto, NodeProto, TensorProto, ValueInfoProto,
};
use std::collections::{HashMap, HashSet};

/// `TensorProto.DataType.BOOL` (not in [`data_type`], which lists what export writes).
pub const BOOL: i32 = 9;

#[derive(Default)]
pub struct Builder {
    pub graph: GraphProto,
    /// Every value name in use or reserved.
    names: HashSet<String>,
    /// Per base of [`Builder::fresh`], the suffix to try next (so that many values of one
    /// base, a loss term per named output, cost linear time, not quadratic).
    next_suffix: HashMap<String, usize>,
    /// Constants already made: key → value name.
    consts: HashMap<String, String>,
    /// `path:line:col` written into the doc string of the nodes made next.
    pub doc: String,
}

/// `[N, ...dims]`.
pub fn batched(dims: &[u64]) -> Vec<Dim> {
    std::iter::once(Dim::Param("N".into()))
        .chain(dims.iter().map(|&d| Dim::Value(d as i64)))
        .collect()
}

/// Fixed dims.
pub fn fixed(dims: &[usize]) -> Vec<Dim> {
    dims.iter().map(|&d| Dim::Value(d as i64)).collect()
}

pub fn i64s(v: &[u64]) -> Vec<i64> {
    v.iter().map(|&x| x as i64).collect()
}

impl Builder {
    pub fn new(name: &str) -> Builder {
        Builder {
            graph: GraphProto {
                name: name.to_string(),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    /// Reserves an exact name (a graph input or output); false if it was taken.
    pub fn reserve(&mut self, name: &str) -> bool {
        self.names.insert(name.to_string())
    }

    /// A name not used yet: `base`, else `base.1`, `base.2`, …
    pub fn fresh(&mut self, base: &str) -> String {
        if self.names.insert(base.to_string()) {
            return base.to_string();
        }
        let mut i = self.next_suffix.get(base).copied().unwrap_or(1);
        loop {
            let n = format!("{base}.{i}");
            i += 1;
            if self.names.insert(n.clone()) {
                self.next_suffix.insert(base.to_string(), i);
                return n;
            }
        }
    }

    pub fn input(&mut self, name: &str, elem: i32, dims: &[Dim]) {
        self.graph
            .input
            .push(ValueInfoProto::tensor(name, elem, dims));
    }

    pub fn output(&mut self, name: &str, elem: i32, dims: &[Dim]) {
        self.graph
            .output
            .push(ValueInfoProto::tensor(name, elem, dims));
    }

    /// A node with explicit output names (already reserved or fresh).
    pub fn node_to(
        &mut self,
        op_type: &str,
        inputs: &[&str],
        outputs: &[&str],
        attribute: Vec<AttributeProto>,
    ) {
        self.graph.node.push(NodeProto {
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: outputs.iter().map(|s| s.to_string()).collect(),
            name: outputs[0].to_string(),
            op_type: op_type.to_string(),
            attribute,
            doc_string: self.doc.clone(),
            ..Default::default()
        });
    }

    /// A one-output node whose output gets a fresh name from `base`.
    pub fn op(
        &mut self,
        op_type: &str,
        inputs: &[&str],
        base: &str,
        attribute: Vec<AttributeProto>,
    ) -> String {
        let out = self.fresh(base);
        self.node_to(op_type, inputs, &[&out], attribute);
        out
    }

    /// A float initializer with a fresh name.
    pub fn init_f32(&mut self, base: &str, dims: &[usize], data: &[f32]) -> String {
        let name = self.fresh(base);
        self.graph
            .initializer
            .push(TensorProto::from_f32(&name, dims, data));
        name
    }

    /// A float initializer under an exact (reserved) name.
    pub fn init_f32_exact(&mut self, name: &str, dims: &[usize], data: &[f32]) {
        self.graph
            .initializer
            .push(TensorProto::from_f32(name, dims, data));
    }

    /// A float scalar constant (shape `[]`), shared by every use.
    pub fn scalar(&mut self, v: f32) -> String {
        let key = format!("f32:{:08x}", v.to_bits());
        if let Some(n) = self.consts.get(&key) {
            return n.clone();
        }
        let name = self.fresh(&format!("const.f{}", fmt_float(v)));
        self.graph
            .initializer
            .push(TensorProto::from_f32(&name, &[], &[v]));
        self.consts.insert(key, name.clone());
        name
    }

    /// A 1-D int64 constant, shared by every use.
    pub fn ints(&mut self, v: &[i64]) -> String {
        let key = format!("i64:{v:?}");
        if let Some(n) = self.consts.get(&key) {
            return n.clone();
        }
        let text: Vec<String> = v.iter().map(|x| x.to_string()).collect();
        let name = self.fresh(&format!("const.i[{}]", text.join(",")));
        self.graph
            .initializer
            .push(TensorProto::from_i64(&name, &[v.len()], v));
        self.consts.insert(key, name.clone());
        name
    }

    /// An int64 constant of any shape, shared by every use.
    pub fn ints_shaped(&mut self, base: &str, dims: &[usize], v: &[i64]) -> String {
        let key = format!("i64:{dims:?}:{v:?}");
        if let Some(n) = self.consts.get(&key) {
            return n.clone();
        }
        let name = self.fresh(base);
        self.graph
            .initializer
            .push(TensorProto::from_i64(&name, dims, v));
        self.consts.insert(key, name.clone());
        name
    }

    /// A bool scalar constant.
    pub fn bool_scalar(&mut self, v: bool) -> String {
        let key = format!("bool:{v}");
        if let Some(n) = self.consts.get(&key) {
            return n.clone();
        }
        let name = self.fresh(&format!("const.{v}"));
        self.graph.initializer.push(TensorProto {
            name: name.clone(),
            dims: vec![],
            data_type: BOOL,
            raw_data: vec![u8::from(v)],
            ..Default::default()
        });
        self.consts.insert(key, name.clone());
        name
    }

    // ---- one helper per op ----

    pub fn add(&mut self, a: &str, b: &str, base: &str) -> String {
        self.op("Add", &[a, b], base, vec![])
    }
    pub fn sub(&mut self, a: &str, b: &str, base: &str) -> String {
        self.op("Sub", &[a, b], base, vec![])
    }
    pub fn mul(&mut self, a: &str, b: &str, base: &str) -> String {
        self.op("Mul", &[a, b], base, vec![])
    }
    pub fn div(&mut self, a: &str, b: &str, base: &str) -> String {
        self.op("Div", &[a, b], base, vec![])
    }
    /// `a · v` for a float constant `v`.
    pub fn scale(&mut self, a: &str, v: f32, base: &str) -> String {
        let c = self.scalar(v);
        self.mul(a, &c, base)
    }
    /// The sum of one or more values (no node for one).
    pub fn sum(&mut self, xs: &[String], base: &str) -> String {
        match xs {
            [one] => one.clone(),
            _ => {
                let ins: Vec<&str> = xs.iter().map(String::as_str).collect();
                self.op("Sum", &ins, base, vec![])
            }
        }
    }
    pub fn reshape(&mut self, x: &str, shape: &[i64], base: &str) -> String {
        let s = self.ints(shape);
        self.op("Reshape", &[x, &s], base, vec![])
    }
    /// Reshape to the runtime shape of `like`.
    pub fn reshape_like(&mut self, x: &str, like: &str, base: &str) -> String {
        let s = self.op("Shape", &[like], &format!("{base}.shape"), vec![]);
        self.op("Reshape", &[x, &s], base, vec![])
    }
    pub fn transpose(&mut self, x: &str, perm: &[i64], base: &str) -> String {
        self.op(
            "Transpose",
            &[x],
            base,
            vec![AttributeProto::ints("perm", perm.iter().copied())],
        )
    }
    /// `op` ∈ ReduceSum, ReduceMean, … with axes as an input (opset 18).
    pub fn reduce(&mut self, op: &str, x: &str, axes: &[i64], keep: bool, base: &str) -> String {
        let a = self.ints(axes);
        self.op(
            op,
            &[x, &a],
            base,
            vec![AttributeProto::int("keepdims", i64::from(keep))],
        )
    }
    pub fn slice(
        &mut self,
        x: &str,
        starts: &[i64],
        ends: &[i64],
        axes: &[i64],
        base: &str,
    ) -> String {
        let (s, e, a) = (self.ints(starts), self.ints(ends), self.ints(axes));
        self.op("Slice", &[x, &s, &e, &a], base, vec![])
    }
    pub fn cast(&mut self, x: &str, to: i32, base: &str) -> String {
        self.op(
            "Cast",
            &[x],
            base,
            vec![AttributeProto::int("to", to as i64)],
        )
    }
    /// The number of elements of `x` as a float scalar.
    pub fn size_f32(&mut self, x: &str, base: &str) -> String {
        let s = self.op("Size", &[x], &format!("{base}.int"), vec![]);
        self.cast(&s, data_type::FLOAT, base)
    }
}

fn fmt_float(v: f32) -> String {
    let s = format!("{v}");
    s.replace('-', "m")
}

//! A loaded model: its inputs and outputs as plain shapes, and runs that take and return
//! f32/i64 slices. Inputs are checked against the model before ONNX Runtime sees them.

use super::error::RuntimeError;
use super::Device;
use ort::value::{TensorElementType, TensorRef, ValueType};
use std::borrow::Cow;
use std::fmt;

/// One dimension of a model's input or output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dim {
    Fixed(usize),
    /// A dimension fixed only at run time (the batch), with its name in the model if any.
    Symbolic(String),
}

impl fmt::Display for Dim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Dim::Fixed(n) => write!(f, "{n}"),
            Dim::Symbolic(name) if name.is_empty() => f.write_str("?"),
            Dim::Symbolic(name) => f.write_str(name),
        }
    }
}

/// The element types cnnc passes to and from ONNX Runtime, and the name of any other.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ElementType {
    F32,
    I64,
    Other(String),
}

impl fmt::Display for ElementType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ElementType::F32 => f.write_str("float32"),
            ElementType::I64 => f.write_str("int64"),
            ElementType::Other(name) => f.write_str(name),
        }
    }
}

/// A model input or output: name, element type and shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorSpec {
    pub name: String,
    pub element: ElementType,
    /// Empty for a scalar, and for an input that declares no shape (`shape_declared`).
    pub shape: Vec<Dim>,
    /// False for an input whose type has no shape at all, not even a rank: it takes a
    /// tensor of any shape.
    pub shape_declared: bool,
}

/// `[N, 1, 28, 28]`.
pub fn format_dims(dims: &[Dim]) -> String {
    let parts: Vec<String> = dims.iter().map(|d| d.to_string()).collect();
    format!("[{}]", parts.join(", "))
}

fn format_shape(shape: &[usize]) -> String {
    format!("{shape:?}")
}

/// A value type in words (`a bool tensor`, `a sequence`), for messages.
fn describe_value_type(t: &ValueType) -> String {
    match t {
        ValueType::Tensor { ty, .. } => format!("a {} tensor", format!("{ty:?}").to_lowercase()),
        ValueType::Sequence(_) => "a sequence".to_string(),
        ValueType::Map { .. } => "a map".to_string(),
        ValueType::Optional(_) => "an optional value".to_string(),
    }
}

/// The element type cnnc names `ty`.
fn element_type(ty: TensorElementType) -> ElementType {
    match ty {
        TensorElementType::Float32 => ElementType::F32,
        TensorElementType::Int64 => ElementType::I64,
        other => ElementType::Other(format!("{other:?}").to_lowercase()),
    }
}

/// The tensor element types other than float32 and int64 that NumPy has, and so that
/// `cnnc run` writes as `.npy` files (float16 aside: reading it needs the `half` crate), as
/// [`other_npy_tensor`] reads them.
const OTHER_NPY_TYPES: [TensorElementType; 9] = [
    TensorElementType::Float64,
    TensorElementType::Int8,
    TensorElementType::Int16,
    TensorElementType::Int32,
    TensorElementType::Uint8,
    TensorElementType::Uint16,
    TensorElementType::Uint32,
    TensorElementType::Uint64,
    TensorElementType::Bool,
];

/// NumPy's name of the type and the `.npy` bytes of a tensor of one of [`OTHER_NPY_TYPES`];
/// `None` for another type.
fn other_npy_tensor(
    value: &ort::value::DynValue,
    ty: TensorElementType,
) -> Option<ort::Result<(ort::value::Shape, &'static str, Vec<u8>)>> {
    use super::npy::NpyElement;
    fn take<T: ort::value::PrimitiveTensorElementType + NpyElement + std::fmt::Debug>(
        value: &ort::value::DynValue,
    ) -> ort::Result<(ort::value::Shape, &'static str, Vec<u8>)> {
        let (shape, data) = value.try_extract_tensor::<T>()?;
        Ok((shape.clone(), T::DESCR, super::npy::body(data)))
    }
    Some(match ty {
        TensorElementType::Float64 => take::<f64>(value),
        TensorElementType::Int8 => take::<i8>(value),
        TensorElementType::Int16 => take::<i16>(value),
        TensorElementType::Int32 => take::<i32>(value),
        TensorElementType::Uint8 => take::<u8>(value),
        TensorElementType::Uint16 => take::<u16>(value),
        TensorElementType::Uint32 => take::<u32>(value),
        TensorElementType::Uint64 => take::<u64>(value),
        TensorElementType::Bool => take::<bool>(value),
        _ => return None,
    })
}

impl ElementType {
    /// Whether cnnc reads a tensor of this type (float32, int64 and [`OTHER_NPY_TYPES`]),
    /// so that `cnnc run` can write it as a `.npy` file.
    pub fn has_npy_form(&self) -> bool {
        match self {
            ElementType::F32 | ElementType::I64 => true,
            other => OTHER_NPY_TYPES.iter().any(|&t| element_type(t) == *other),
        }
    }
}

impl TensorSpec {
    fn from_outlet(outlet: &ort::value::Outlet) -> TensorSpec {
        let (element, shape) = match outlet.dtype() {
            ValueType::Tensor {
                ty,
                shape,
                dimension_symbols,
            } => {
                let element = element_type(*ty);
                let dims = shape
                    .iter()
                    .enumerate()
                    .map(|(i, &d)| match usize::try_from(d) {
                        Ok(n) => Dim::Fixed(n),
                        Err(_) => {
                            Dim::Symbolic(dimension_symbols.get(i).cloned().unwrap_or_default())
                        }
                    })
                    .collect();
                (element, dims)
            }
            other => (ElementType::Other(describe_value_type(other)), Vec::new()),
        };
        TensorSpec {
            name: outlet.name().to_string(),
            element,
            shape,
            shape_declared: true,
        }
    }

    /// The shape for messages: `[N, 1, 28, 28]`, or `of any shape` where none is declared.
    pub fn shape_text(&self) -> String {
        if self.shape_declared {
            format_dims(&self.shape)
        } else {
            "of any shape".to_string()
        }
    }

    /// Checks a concrete shape against this one: the rank and every fixed dimension.
    pub fn check_shape(&self, shape: &[usize]) -> Result<(), RuntimeError> {
        let fits = !self.shape_declared
            || shape.len() == self.shape.len()
                && self.shape.iter().zip(shape).all(|(d, &n)| match d {
                    Dim::Fixed(m) => *m == n,
                    Dim::Symbolic(_) => true,
                });
        // One image without its batch axis: `[3, 224, 224]` for `[N, 3, 224, 224]`.
        let unbatched = shape.len() + 1 == self.shape.len()
            && self.shape[1..].iter().zip(shape).all(|(d, &n)| match d {
                Dim::Fixed(m) => *m == n,
                Dim::Symbolic(_) => true,
            });
        // Channels last, NumPy's and TensorFlow's image layout: `[N, H, W, C]` for `[N, C,
        // H, W]`.
        let channels_last = shape.len() == 4
            && self.shape.len() == 4
            && [shape[3], shape[1], shape[2]]
                .iter()
                .zip(&self.shape[1..])
                .all(|(&n, d)| match d {
                    Dim::Fixed(m) => *m == n,
                    Dim::Symbolic(_) => true,
                });
        // The values of the examples in another shape: `[28, 28]` for `[N, 1, 28, 28]`, or
        // images `[N, 1, 28, 28]` for a flat `[N, 784]`. Only where the model's example size
        // is fixed.
        let example: Option<Vec<usize>> = self
            .shape
            .get(1..)
            .unwrap_or_default()
            .iter()
            .map(|d| match d {
                Dim::Fixed(m) => Some(*m),
                Dim::Symbolic(_) => None,
            })
            .collect();
        let values = |dims: &[usize]| dims.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
        let reshape = |n: usize, example: &[usize]| {
            let dims: Vec<String> = std::iter::once(n)
                .chain(example.iter().copied())
                .map(|d| d.to_string())
                .collect();
            format!("(numpy: `x.reshape({})`)", dims.join(", "))
        };
        let reshaped = match &example {
            // One image channels last, `[H, W, C]`: a transpose, not a reshape.
            Some(e)
                if e.len() == 3
                    && e[0] > 1
                    && shape.len() == 3
                    && [shape[2], shape[0], shape[1]] == e[..] =>
            {
                Some(
                    "; it is one image, channels last [H, W, C]: save it channels first, with \
                     the batch axis (numpy: `x.transpose(2, 0, 1)[None]`)"
                        .to_string(),
                )
            }
            // A reshape keeps the values' order: right for a flat input or one channel, a
            // guess for several.
            Some(e)
                if !shape.is_empty()
                    && !e.is_empty()
                    && (e.len() == 1 || e[0] == 1)
                    && !unbatched
                    && !channels_last =>
            {
                let per_example = values(e);
                if per_example.is_some() && values(shape) == per_example {
                    Some(format!(
                        "; it holds the {} values of one example: give it the model's shape, \
                         batch axis first {}",
                        per_example.unwrap_or_default(),
                        reshape(1, e)
                    ))
                } else if shape.len() > 1
                    && per_example.is_some()
                    && values(&shape[1..]) == per_example
                {
                    Some(format!(
                        "; each of its {} examples holds the {} values the model takes, in \
                         another shape: reshape them to its shape {}",
                        shape[0],
                        per_example.unwrap_or_default(),
                        reshape(shape[0], e)
                    ))
                } else {
                    None
                }
            }
            _ => None,
        };
        if fits {
            Ok(())
        } else {
            Err(RuntimeError::Input {
                message: format!(
                    "the model expects {}, the input is {}{}{}",
                    format_dims(&self.shape),
                    format_shape(shape),
                    if self.shape.is_empty() {
                        format!(" (the model's input `{}` is a scalar)", self.name)
                    } else if shape.len() != self.shape.len() {
                        format!(
                            " (rank {} where the model's input `{}` has rank {})",
                            shape.len(),
                            self.name,
                            self.shape.len()
                        )
                    } else {
                        String::new()
                    },
                    if unbatched {
                        "; it is one example without the batch axis: save it with one in front \
                         (numpy: `x[None]`)"
                    } else if channels_last {
                        "; it is channels last, [N, H, W, C]: save it channels first (numpy: \
                         `x.transpose(0, 3, 1, 2)`)"
                    } else {
                        reshaped.as_deref().unwrap_or("")
                    }
                ),
            })
        }
    }
}

/// The data of one input.
#[derive(Debug, Clone, Copy)]
pub enum InputData<'a> {
    F32(&'a [f32]),
    I64(&'a [i64]),
}

impl InputData<'_> {
    fn len(&self) -> usize {
        match self {
            InputData::F32(d) => d.len(),
            InputData::I64(d) => d.len(),
        }
    }
    fn element(&self) -> ElementType {
        match self {
            InputData::F32(_) => ElementType::F32,
            InputData::I64(_) => ElementType::I64,
        }
    }
}

/// A named input, borrowed: ONNX Runtime reads it in place.
#[derive(Debug, Clone, Copy)]
pub struct Input<'a> {
    pub name: &'a str,
    pub shape: &'a [usize],
    pub data: InputData<'a>,
}

impl<'a> Input<'a> {
    pub fn f32(name: &'a str, shape: &'a [usize], data: &'a [f32]) -> Self {
        Input {
            name,
            shape,
            data: InputData::F32(data),
        }
    }
    pub fn i64(name: &'a str, shape: &'a [usize], data: &'a [i64]) -> Self {
        Input {
            name,
            shape,
            data: InputData::I64(data),
        }
    }
}

/// The data of one output.
#[derive(Debug, Clone, PartialEq)]
pub enum OutputData {
    F32(Vec<f32>),
    I64(Vec<i64>),
    /// Another numeric or bool tensor (a foreign model's), as a `.npy` file holds it: its
    /// element type, NumPy's name of it (`descr`, `<f8`) and the values' bytes.
    Other {
        element: ElementType,
        descr: &'static str,
        bytes: Vec<u8>,
    },
}

impl OutputData {
    /// The element type.
    pub fn element(&self) -> ElementType {
        match self {
            OutputData::F32(_) => ElementType::F32,
            OutputData::I64(_) => ElementType::I64,
            OutputData::Other { element, .. } => element.clone(),
        }
    }

    /// NumPy's name of the element type and the values' bytes, as a `.npy` file holds them.
    pub fn npy_body(&self) -> (&'static str, std::borrow::Cow<'_, [u8]>) {
        use super::npy::{body, NpyElement};
        match self {
            OutputData::F32(v) => (f32::DESCR, body(v).into()),
            OutputData::I64(v) => (i64::DESCR, body(v).into()),
            OutputData::Other { descr, bytes, .. } => (descr, bytes.as_slice().into()),
        }
    }
}

/// A named output, copied out of ONNX Runtime.
#[derive(Debug, Clone, PartialEq)]
pub struct Output {
    pub name: String,
    pub shape: Vec<usize>,
    pub data: OutputData,
}

impl Output {
    /// The values if the output is float32.
    pub fn as_f32(&self) -> Option<&[f32]> {
        match &self.data {
            OutputData::F32(v) => Some(v),
            _ => None,
        }
    }

    /// The values if the output is float32, else an error naming the output.
    pub fn into_f32(self) -> Result<Vec<f32>, RuntimeError> {
        match self.data {
            OutputData::F32(v) => Ok(v),
            other => Err(RuntimeError::Input {
                message: format!("output `{}` is {}, not float32", self.name, other.element()),
            }),
        }
    }
}

/// A model loaded into ONNX Runtime on one device.
pub struct Session {
    pub(super) inner: ort::session::Session,
    device: Device,
    inputs: Vec<TensorSpec>,
    outputs: Vec<TensorSpec>,
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("device", &self.device)
            .field("inputs", &self.inputs)
            .field("outputs", &self.outputs)
            .finish_non_exhaustive()
    }
}

impl Session {
    pub(crate) fn new(
        inner: ort::session::Session,
        device: Device,
    ) -> Result<Session, RuntimeError> {
        let inputs: Vec<TensorSpec> = inner.inputs().iter().map(TensorSpec::from_outlet).collect();
        let outputs: Vec<TensorSpec> = inner
            .outputs()
            .iter()
            .map(TensorSpec::from_outlet)
            .collect();
        if outputs.is_empty() {
            return Err(RuntimeError::InvalidModel {
                message: "the model has no outputs".into(),
            });
        }
        Ok(Session {
            inner,
            device,
            inputs,
            outputs,
        })
    }

    pub fn device(&self) -> Device {
        self.device
    }

    pub fn inputs(&self) -> &[TensorSpec] {
        &self.inputs
    }

    pub fn outputs(&self) -> &[TensorSpec] {
        &self.outputs
    }

    /// The shape of the first input (the image batch for a model cnnc exports).
    /// Marks the inputs named in `names` as declaring no shape ([`TensorSpec::shape_declared`]),
    /// which ONNX Runtime reports as scalars.
    pub(super) fn mark_shapeless(&mut self, names: &[String]) {
        for spec in &mut self.inputs {
            if spec.shape.is_empty() && names.contains(&spec.name) {
                spec.shape_declared = false;
            }
        }
    }

    pub fn input_shape(&self) -> &[Dim] {
        self.inputs.first().map_or(&[], |s| &s.shape)
    }

    pub fn output_names(&self) -> Vec<&str> {
        self.outputs.iter().map(|s| s.name.as_str()).collect()
    }

    /// Runs a model with one float32 input and returns its first output (which must be float32).
    pub fn run_f32(
        &mut self,
        input: &[f32],
        shape: &[usize],
    ) -> Result<(Vec<usize>, Vec<f32>), RuntimeError> {
        let out = self.run_first(input, shape)?;
        let shape = out.shape.clone();
        Ok((shape, out.into_f32()?))
    }

    /// Runs a model with one float32 input and reads none of its outputs back (what a
    /// benchmark times: the run, whatever the outputs' types).
    pub fn run_unread(&mut self, input: &[f32], shape: &[usize]) -> Result<(), RuntimeError> {
        let name = self.single_input_name()?;
        self.check_inputs(&[Input::f32(&name, shape, input)])?;
        let value: ort::session::SessionInputValue<'_> = TensorRef::from_array_view((shape, input))
            .map_err(|e| RuntimeError::ort(format!("preparing input `{name}`"), e))?
            .into();
        let device = self.device;
        self.inner
            .run(vec![(Cow::Borrowed(name.as_str()), value)])
            .map_err(|e| RuntimeError::ort(format!("running the model on {device}"), e))?;
        Ok(())
    }

    /// The name of the model's only input; an error naming them when it has several.
    fn single_input_name(&self) -> Result<String, RuntimeError> {
        match self.inputs.as_slice() {
            [one] => Ok(one.name.clone()),
            many => Err(RuntimeError::Input {
                message: format!(
                    "the model has {} inputs ({}); cnnc feeds a model with one",
                    many.len(),
                    many.iter()
                        .map(|s| s.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            }),
        }
    }

    /// Runs a model with one float32 input and returns its first output, of any type cnnc
    /// reads.
    pub fn run_first(&mut self, input: &[f32], shape: &[usize]) -> Result<Output, RuntimeError> {
        let name = self.single_input_name()?;
        let first = self.outputs[0].name.clone();
        Ok(self
            .run_selected(&[Input::f32(&name, shape, input)], &[first.as_str()])?
            .remove(0))
    }

    /// Runs the model on named inputs (every model input, each once) and returns every output,
    /// in the model's order.
    pub fn run(&mut self, inputs: &[Input<'_>]) -> Result<Vec<Output>, RuntimeError> {
        let names: Vec<String> = self.outputs.iter().map(|s| s.name.clone()).collect();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        self.run_selected(inputs, &names)
    }

    /// Runs the model on named inputs and returns the named outputs, in the order asked.
    pub fn run_selected(
        &mut self,
        inputs: &[Input<'_>],
        outputs: &[&str],
    ) -> Result<Vec<Output>, RuntimeError> {
        self.check_inputs(inputs)?;
        self.check_output_names(outputs)?;
        let mut values: Vec<(Cow<'_, str>, ort::session::SessionInputValue<'_>)> =
            Vec::with_capacity(inputs.len());
        for input in inputs {
            let context = || format!("preparing input `{}`", input.name);
            let value: ort::session::SessionInputValue<'_> = match input.data {
                InputData::F32(d) => TensorRef::from_array_view((input.shape, d))
                    .map_err(|e| RuntimeError::ort(context(), e))?
                    .into(),
                InputData::I64(d) => TensorRef::from_array_view((input.shape, d))
                    .map_err(|e| RuntimeError::ort(context(), e))?
                    .into(),
            };
            values.push((Cow::Borrowed(input.name), value));
        }
        let device = self.device;
        let result = self
            .inner
            .run(values)
            .map_err(|e| RuntimeError::ort(format!("running the model on {device}"), e))?;
        let mut out = Vec::with_capacity(outputs.len());
        for name in outputs {
            let value = result.get(*name).ok_or_else(|| RuntimeError::Ort {
                context: "reading the outputs".into(),
                message: format!("output `{name}` is missing from the results"),
            })?;
            out.push(read_output(name, value)?);
        }
        Ok(out)
    }

    /// Errors unless every name is an output of the model.
    pub(super) fn check_output_names(&self, outputs: &[&str]) -> Result<(), RuntimeError> {
        for name in outputs {
            if !self.outputs.iter().any(|s| s.name == *name) {
                return Err(RuntimeError::Input {
                    message: format!(
                        "the model has no output `{name}` (its outputs: {})",
                        self.output_names().join(", ")
                    ),
                });
            }
        }
        Ok(())
    }

    fn check_inputs(&self, inputs: &[Input<'_>]) -> Result<(), RuntimeError> {
        self.check_inputs_bound(inputs, &[])
    }

    /// Checks `inputs` against the model (names, element types, shapes, every input given
    /// once) where the inputs named in `bound` are supplied otherwise (a [`super::StatefulSession`]'s
    /// state): those must not be given, and are not missing.
    pub(super) fn check_inputs_bound(
        &self,
        inputs: &[Input<'_>],
        bound: &[&str],
    ) -> Result<(), RuntimeError> {
        let input_err = |message: String| Err(RuntimeError::Input { message });
        let model_names = || {
            self.inputs
                .iter()
                .map(|s| s.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        };
        for (i, input) in inputs.iter().enumerate() {
            if inputs[..i].iter().any(|o| o.name == input.name) {
                return input_err(format!("input `{}` is given twice", input.name));
            }
            if bound.contains(&input.name) {
                return input_err(format!(
                    "input `{}` is state the session holds between runs; it is not given per run",
                    input.name
                ));
            }
            let Some(spec) = self.inputs.iter().find(|s| s.name == input.name) else {
                return input_err(format!(
                    "the model has no input `{}` (its inputs: {})",
                    input.name,
                    model_names()
                ));
            };
            if spec.element != input.data.element() {
                return input_err(format!(
                    "input `{}` is {} in the model, the value given is {}",
                    input.name,
                    spec.element,
                    input.data.element()
                ));
            }
            let count = input
                .shape
                .iter()
                .try_fold(1usize, |a, &d| a.checked_mul(d));
            if count != Some(input.data.len()) {
                return input_err(format!(
                    "input `{}` has shape {} but {} values",
                    input.name,
                    format_shape(input.shape),
                    input.data.len()
                ));
            }
            spec.check_shape(input.shape)
                .map_err(|e| RuntimeError::Input {
                    message: if self.inputs.len() > 1 {
                        format!("input `{}`: {e}", input.name)
                    } else {
                        e.to_string()
                    },
                })?;
        }
        for spec in &self.inputs {
            if !bound.contains(&spec.name.as_str()) && !inputs.iter().any(|i| i.name == spec.name) {
                return input_err(format!(
                    "input `{}` ({} {}) is missing",
                    spec.name,
                    spec.element,
                    spec.shape_text()
                ));
            }
        }
        Ok(())
    }
}

/// Copies one output value out of ONNX Runtime (float32 or int64 tensors; it must be in CPU
/// memory).
pub(super) fn read_output(
    name: &str,
    value: &ort::value::DynValue,
) -> Result<Output, RuntimeError> {
    let context = || format!("reading output `{name}`");
    let (shape, data) = match value.dtype() {
        ValueType::Tensor {
            ty: TensorElementType::Float32,
            ..
        } => {
            let (shape, data) = value
                .try_extract_tensor::<f32>()
                .map_err(|e| RuntimeError::ort(context(), e))?;
            (shape.clone(), OutputData::F32(data.to_vec()))
        }
        ValueType::Tensor {
            ty: TensorElementType::Int64,
            ..
        } => {
            let (shape, data) = value
                .try_extract_tensor::<i64>()
                .map_err(|e| RuntimeError::ort(context(), e))?;
            (shape.clone(), OutputData::I64(data.to_vec()))
        }
        t => {
            let unreadable = || RuntimeError::Input {
                message: format!(
                    "output `{name}` is {}; cnnc reads tensors of the numeric and bool types \
                     NumPy has (float16 and bfloat16 aside)",
                    describe_value_type(t)
                ),
            };
            let ValueType::Tensor { ty, .. } = t else {
                return Err(unreadable());
            };
            let (shape, descr, bytes) = other_npy_tensor(value, *ty)
                .ok_or_else(unreadable)?
                .map_err(|e| RuntimeError::ort(context(), e))?;
            let element = element_type(*ty);
            (
                shape,
                OutputData::Other {
                    element,
                    descr,
                    bytes,
                },
            )
        }
    };
    Ok(Output {
        name: name.to_string(),
        shape: shape.iter().map(|&d| d.max(0) as usize).collect(),
        data,
    })
}

//! A session whose state stays in ONNX Runtime's memory between runs: the training step's
//! parameters, running statistics and optimizer state live on the session's device (GPU memory
//! on CUDA), and only the per-run inputs (the batch, the learning rate) and the small host
//! outputs (the loss) cross to and from the host each run.
//!
//! Each state tensor has two buffers allocated on the device, A and B. A run reads the state
//! from A (bound as inputs with ORT's IoBinding) and writes the updated state into B (bound as
//! pre-allocated outputs); then the roles swap. Two bindings are made once, one per direction,
//! so a run rebinds only the per-run inputs. The outputs are bound to buffers cnnc allocated
//! (`bind_output`), never with `bind_output_to_device`: ORT keeps the buffer it allocated for
//! such an output and writes the next run's result into it again, so a state output bound that
//! way would be the next run's input and output at once. A tensor without an output is *held*:
//! one buffer, read by every run and never written (an evaluation's parameters, uploaded once
//! per evaluation instead of once per batch). The same code runs on the CPU (the buffers are
//! then host memory ONNX Runtime allocated), so CPU tests exercise it.

use super::error::RuntimeError;
use super::session::{read_output, ElementType, Input, InputData, Output, Session};
use super::Device;
use ort::memory::{AllocationDevice, Allocator, AllocatorType, MemoryInfo, MemoryType};
use ort::session::IoBinding;
use ort::value::Tensor;
use std::fmt;

/// One tensor of state: the model input it is read from, the model output its next value is
/// written to (`None`: the tensor is held as it is, an input no run changes, such as the
/// parameters of an evaluation), its shape and its first value.
#[derive(Debug, Clone, Copy)]
pub struct StateTensor<'a> {
    pub input: &'a str,
    pub output: Option<&'a str>,
    pub dims: &'a [usize],
    pub values: &'a [f32],
}

struct Slot {
    input: String,
    output: Option<String>,
    dims: Vec<usize>,
}

/// The device memory of one state tensor.
enum Buffers {
    /// Read from one, written to the other, swapped after each run.
    Swapped([Tensor<f32>; 2]),
    /// Read by every run, never written.
    Held(Tensor<f32>),
}

impl Buffers {
    /// The buffer that holds the current value when set `current` is the current one.
    fn current(&self, current: usize) -> &Tensor<f32> {
        match self {
            Buffers::Swapped(b) => &b[current],
            Buffers::Held(t) => t,
        }
    }
    fn current_mut(&mut self, current: usize) -> &mut Tensor<f32> {
        match self {
            Buffers::Swapped(b) => &mut b[current],
            Buffers::Held(t) => t,
        }
    }
}

/// A per-run input's host tensor, kept and refilled while its shape and type stay the same
/// (every full batch), so a run copies the batch once into memory that is already mapped.
struct Staged {
    name: String,
    shape: Vec<usize>,
    tensor: StagedTensor,
}

enum StagedTensor {
    F32(Tensor<f32>),
    I64(Tensor<i64>),
}

/// A [`Session`] that runs with its state held in ONNX Runtime memory on the session's device.
pub struct StatefulSession<'s> {
    session: &'s mut Session,
    slots: Vec<Slot>,
    /// `buffers[i]`: state tensor `i`'s memory, on the session's device.
    buffers: Vec<Buffers>,
    /// `bindings[k]` reads the state from set `k` of the swapped buffers (and from the held
    /// ones) and writes it into set `1 - k`.
    bindings: [IoBinding; 2],
    /// The buffer set that holds the current state.
    current: usize,
    host_outputs: Vec<String>,
    staged: Vec<Staged>,
    /// Held so the device buffers' allocator outlives them (they also keep it alive).
    _allocator: Allocator,
}

impl fmt::Debug for StatefulSession<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StatefulSession")
            .field("device", &self.session.device())
            .field(
                "state",
                &self
                    .slots
                    .iter()
                    .map(|s| match &s.output {
                        Some(o) => format!("{} -> {o} {:?}", s.input, s.dims),
                        None => format!("{} (held) {:?}", s.input, s.dims),
                    })
                    .collect::<Vec<_>>(),
            )
            .field("host_outputs", &self.host_outputs)
            .finish_non_exhaustive()
    }
}

fn input_err<T>(message: String) -> Result<T, RuntimeError> {
    Err(RuntimeError::Input { message })
}

fn element_count(dims: &[usize]) -> Option<usize> {
    dims.iter().try_fold(1usize, |a, &d| a.checked_mul(d))
}

impl<'s> StatefulSession<'s> {
    /// Allocates two buffers per state tensor on `session`'s device, uploads the first values
    /// and binds them. `host_outputs` are the outputs every [`StatefulSession::run`] returns
    /// (float32 or int64, copied to the host).
    ///
    /// Every state input must be a float32 input of the model with the given shape, every
    /// state output a float32 output; errors name the tensor.
    pub fn new(
        session: &'s mut Session,
        state: &[StateTensor<'_>],
        host_outputs: &[&str],
    ) -> Result<StatefulSession<'s>, RuntimeError> {
        Self::check(session, state, host_outputs)?;
        let device = session.device();
        let allocator = match device {
            Device::Cpu => Allocator::default(),
            Device::Cuda => {
                let info = MemoryInfo::new(
                    AllocationDevice::CUDA,
                    0,
                    AllocatorType::Device,
                    MemoryType::Default,
                )
                .map_err(|e| RuntimeError::ort("describing CUDA device memory", e))?;
                Allocator::new(&session.inner, info)
                    .map_err(|e| RuntimeError::ort("creating a CUDA allocator", e))?
            }
        };
        let allocate = |t: &StateTensor<'_>| {
            Tensor::<f32>::new(&allocator, t.dims).map_err(|e| {
                RuntimeError::ort(
                    format!(
                        "allocating {:?} for state `{}` on {device}",
                        t.dims, t.input
                    ),
                    e,
                )
            })
        };
        let mut buffers = Vec::with_capacity(state.len());
        for t in state {
            buffers.push(match t.output {
                Some(_) => Buffers::Swapped([allocate(t)?, allocate(t)?]),
                None => Buffers::Held(allocate(t)?),
            });
        }
        let host = MemoryInfo::new(
            AllocationDevice::CPU,
            0,
            AllocatorType::Device,
            MemoryType::Default,
        )
        .map_err(|e| RuntimeError::ort("describing host memory", e))?;
        let binding_err = |e| RuntimeError::ort("binding the state to the session", e);
        let mut make_binding = |from: usize| -> Result<IoBinding, RuntimeError> {
            let mut binding = session.inner.create_binding().map_err(binding_err)?;
            for (t, b) in state.iter().zip(buffers.iter_mut()) {
                match (b, t.output) {
                    (Buffers::Swapped(pair), Some(output)) => {
                        let (a, rest) = pair.split_at_mut(1);
                        let (read, write) = if from == 0 {
                            (&a[0], &mut rest[0])
                        } else {
                            (&rest[0], &mut a[0])
                        };
                        binding.bind_input(t.input, read).map_err(binding_err)?;
                        binding.bind_output(output, write).map_err(binding_err)?;
                    }
                    (b, _) => binding
                        .bind_input(t.input, b.current(from))
                        .map_err(binding_err)?,
                }
            }
            for name in host_outputs {
                binding
                    .bind_output_to_device(*name, &host)
                    .map_err(binding_err)?;
            }
            Ok(binding)
        };
        let bindings = [make_binding(0)?, make_binding(1)?];
        let mut this = StatefulSession {
            session,
            slots: state
                .iter()
                .map(|t| Slot {
                    input: t.input.to_string(),
                    output: t.output.map(str::to_string),
                    dims: t.dims.to_vec(),
                })
                .collect(),
            buffers,
            bindings,
            current: 0,
            host_outputs: host_outputs.iter().map(|s| s.to_string()).collect(),
            staged: Vec::new(),
            _allocator: allocator,
        };
        let values: Vec<&[f32]> = state.iter().map(|t| t.values).collect();
        this.upload(&values)?;
        Ok(this)
    }

    fn check(
        session: &Session,
        state: &[StateTensor<'_>],
        host_outputs: &[&str],
    ) -> Result<(), RuntimeError> {
        for (i, t) in state.iter().enumerate() {
            if state[..i].iter().any(|o| o.input == t.input) {
                return input_err(format!("state input `{}` is given twice", t.input));
            }
            if t.output.is_some() && state[..i].iter().any(|o| o.output == t.output) {
                return input_err(format!(
                    "state output `{}` is given twice",
                    t.output.unwrap_or_default()
                ));
            }
            let Some(spec) = session.inputs().iter().find(|s| s.name == t.input) else {
                return input_err(format!(
                    "the model has no input `{}` for state (its inputs: {})",
                    t.input,
                    session
                        .inputs()
                        .iter()
                        .map(|s| s.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            };
            if spec.element != ElementType::F32 {
                return input_err(format!(
                    "state input `{}` is {} in the model; state is float32",
                    t.input, spec.element
                ));
            }
            spec.check_shape(t.dims).map_err(|e| RuntimeError::Input {
                message: format!("state input `{}`: {e}", t.input),
            })?;
            if let Some(output) = t.output {
                session.check_output_names(&[output])?;
                let out = session
                    .outputs()
                    .iter()
                    .find(|s| s.name == output)
                    .expect("checked above");
                if out.element != ElementType::F32 {
                    return input_err(format!(
                        "state output `{output}` is {} in the model; state is float32",
                        out.element
                    ));
                }
                out.check_shape(t.dims).map_err(|e| RuntimeError::Input {
                    message: format!("state output `{output}`: {e}"),
                })?;
            }
            if element_count(t.dims) != Some(t.values.len()) {
                return input_err(format!(
                    "state `{}` has shape {:?} but {} values",
                    t.input,
                    t.dims,
                    t.values.len()
                ));
            }
        }
        session.check_output_names(host_outputs)?;
        for (i, name) in host_outputs.iter().enumerate() {
            if host_outputs[..i].contains(name) || state.iter().any(|t| t.output == Some(*name)) {
                return input_err(format!("output `{name}` is asked for twice"));
            }
            let spec = session
                .outputs()
                .iter()
                .find(|s| s.name == *name)
                .expect("checked above");
            if !matches!(spec.element, ElementType::F32 | ElementType::I64) {
                return input_err(format!(
                    "output `{name}` is {}; cnnc reads float32 and int64 tensors",
                    spec.element
                ));
            }
        }
        Ok(())
    }

    /// The session's device.
    pub fn device(&self) -> Device {
        self.session.device()
    }

    /// Replaces the state with `values` (one slice per state tensor, in the order given to
    /// [`StatefulSession::new`]), copied to the device.
    pub fn upload(&mut self, values: &[&[f32]]) -> Result<(), RuntimeError> {
        if values.len() != self.slots.len() {
            return input_err(format!(
                "{} state values given for {} state tensors",
                values.len(),
                self.slots.len()
            ));
        }
        for (slot, v) in self.slots.iter().zip(values) {
            if element_count(&slot.dims) != Some(v.len()) {
                return input_err(format!(
                    "state `{}` has shape {:?} but {} values",
                    slot.input,
                    slot.dims,
                    v.len()
                ));
            }
        }
        let device = self.session.device();
        let current = self.current;
        for ((slot, v), b) in self.slots.iter().zip(values).zip(self.buffers.iter_mut()) {
            let target = b.current_mut(current);
            let context = || format!("copying state `{}` to {device}", slot.input);
            let host = Tensor::from_array((slot.dims.clone(), v.to_vec()))
                .map_err(|e| RuntimeError::ort(context(), e))?;
            host.copy_into(target)
                .map_err(|e| RuntimeError::ort(context(), e))?;
        }
        Ok(())
    }

    /// The state copied to the host, one `Vec` per state tensor in the order given to
    /// [`StatefulSession::new`].
    pub fn state(&self) -> Result<Vec<Vec<f32>>, RuntimeError> {
        let device = self.session.device();
        self.slots
            .iter()
            .zip(self.buffers.iter().map(|b| b.current(self.current)))
            .map(|(slot, t)| {
                let context = || format!("copying state `{}` from {device}", slot.input);
                let host = t
                    .to(AllocationDevice::CPU, 0)
                    .map_err(|e| RuntimeError::ort(context(), e))?;
                let (_, data) = host
                    .try_extract_tensor()
                    .map_err(|e| RuntimeError::ort(context(), e))?;
                Ok(data.to_vec())
            })
            .collect()
    }

    /// One run: `inputs` are every model input except the state (checked like
    /// [`Session::run`]'s), copied into host tensors ONNX Runtime allocated (reused from run to
    /// run while an input's shape stays the same); the state advances on the
    /// device; the host outputs come back in the order given to [`StatefulSession::new`].
    /// When the run fails, the state is the one before it.
    pub fn run(&mut self, inputs: &[Input<'_>]) -> Result<Vec<Output>, RuntimeError> {
        let bound: Vec<&str> = self.slots.iter().map(|s| s.input.as_str()).collect();
        self.session.check_inputs_bound(inputs, &bound)?;
        let binding = &mut self.bindings[self.current];
        for input in inputs {
            let context = || format!("preparing input `{}`", input.name);
            let same_type = |t: &StagedTensor| {
                matches!(
                    (t, input.data),
                    (StagedTensor::F32(_), InputData::F32(_))
                        | (StagedTensor::I64(_), InputData::I64(_))
                )
            };
            let found = self.staged.iter().position(|s| s.name == input.name);
            let i = match found {
                Some(i)
                    if self.staged[i].shape == input.shape && same_type(&self.staged[i].tensor) =>
                {
                    i
                }
                _ => {
                    let host = Allocator::default();
                    let tensor = match input.data {
                        InputData::F32(_) => Tensor::new(&host, input.shape).map(StagedTensor::F32),
                        InputData::I64(_) => Tensor::new(&host, input.shape).map(StagedTensor::I64),
                    }
                    .map_err(|e| RuntimeError::ort(context(), e))?;
                    let staged = Staged {
                        name: input.name.to_string(),
                        shape: input.shape.to_vec(),
                        tensor,
                    };
                    match found {
                        Some(i) => {
                            self.staged[i] = staged;
                            i
                        }
                        None => {
                            self.staged.push(staged);
                            self.staged.len() - 1
                        }
                    }
                }
            };
            let staged = &mut self.staged[i];
            // The tensor is not in use: runs are synchronous, and binding it again below is
            // what makes ONNX Runtime read (or, for another device, copy) its new contents.
            let bound = match (&mut staged.tensor, input.data) {
                (StagedTensor::F32(t), InputData::F32(d)) => t
                    .try_extract_tensor_mut()
                    .map(|(_, buf)| buf.copy_from_slice(d))
                    .and_then(|()| binding.bind_input(input.name, &*t)),
                (StagedTensor::I64(t), InputData::I64(d)) => t
                    .try_extract_tensor_mut()
                    .map(|(_, buf)| buf.copy_from_slice(d))
                    .and_then(|()| binding.bind_input(input.name, &*t)),
                _ => unreachable!("the tensor was just made for this element type"),
            };
            bound.map_err(|e| RuntimeError::ort(context(), e))?;
        }
        let device = self.session.device();
        let binding = &self.bindings[self.current];
        let result = self
            .session
            .inner
            .run_binding(binding)
            .map_err(|e| RuntimeError::ort(format!("running the model on {device}"), e))?;
        let mut out = Vec::with_capacity(self.host_outputs.len());
        for name in &self.host_outputs {
            let value = result.get(name).ok_or_else(|| RuntimeError::Ort {
                context: "reading the outputs".into(),
                message: format!("output `{name}` is missing from the results"),
            })?;
            out.push(read_output(name, value)?);
        }
        drop(result);
        self.current = 1 - self.current;
        Ok(out)
    }
}

//! The one error type of the runtime: every ONNX Runtime failure is wrapped with what cnnc was
//! doing when it happened.

use std::fmt;
use std::path::PathBuf;

/// What to do when no ONNX Runtime library can be found or loaded.
pub const INSTALL_HINT: &str =
    "`pip install onnxruntime` (or `onnxruntime-gpu` for CUDA; 1.24 or newer) or \
     set ORT_DYLIB_PATH=/path/to/libonnxruntime.so";

/// An error of the runtime. It is `Clone` because [`super::Runtime::get`] keeps the first
/// failure to start ONNX Runtime and hands it out again (ort allows one try per process).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuntimeError {
    /// `ORT_DYLIB_PATH` is set but does not name a usable library.
    BadEnvPath { path: PathBuf, reason: String },
    /// No ONNX Runtime library was found anywhere cnnc looks.
    NotFound { searched: Vec<PathBuf> },
    /// A library was found but could not be loaded, or the environment could not be created.
    Load { path: PathBuf, message: String },
    /// The bytes are not an ONNX model, or ONNX Runtime refused to load it.
    InvalidModel { message: String },
    /// CUDA was asked for and cannot be used; cnnc never falls back to the CPU silently.
    CudaUnavailable { reason: String },
    /// The inputs given do not match what the model expects (name, type or shape).
    Input { message: String },
    /// ONNX Runtime failed while doing something; `context` says what.
    Ort { context: String, message: String },
}

impl RuntimeError {
    pub(crate) fn ort<R>(context: impl Into<String>, e: ort::Error<R>) -> Self {
        RuntimeError::Ort {
            context: context.into(),
            message: e.message().to_string(),
        }
    }

    /// For a graph cnnc generated itself (a `.cnn` compiled, a training step): ONNX Runtime
    /// refusing it is not the user's file but cnnc's, or an ONNX Runtime too old for it.
    pub fn for_generated_graph(self) -> RuntimeError {
        match self {
            RuntimeError::InvalidModel { message } => RuntimeError::Ort {
                context: "loading the graph cnnc generated (upgrade onnxruntime; if it persists, \
                          this is a cnnc bug)"
                    .to_string(),
                message,
            },
            e => e,
        }
    }

    /// True when the error is the user's input (a bad model file or input array) rather than a
    /// failure of ONNX Runtime itself; the CLI maps it to the usage exit code.
    pub fn is_user_input(&self) -> bool {
        matches!(
            self,
            RuntimeError::InvalidModel { .. } | RuntimeError::Input { .. }
        )
    }
}

impl fmt::Display for RuntimeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RuntimeError::BadEnvPath { path, reason } => {
                write!(f, "ORT_DYLIB_PATH={} {reason}", path.display())?;
                write!(
                    f,
                    "; point it at libonnxruntime.so (for a pip install: \
                     .../site-packages/onnxruntime/capi/libonnxruntime.so.<version>) or unset it"
                )
            }
            RuntimeError::NotFound { searched } => {
                write!(
                    f,
                    "the ONNX Runtime library (libonnxruntime.so) was not found"
                )?;
                if !searched.is_empty() {
                    let dirs: Vec<String> =
                        searched.iter().map(|p| p.display().to_string()).collect();
                    write!(f, " (looked in {})", dirs.join(", "))?;
                }
                write!(f, ": {INSTALL_HINT}")
            }
            RuntimeError::Load { path, message } => {
                write!(
                    f,
                    "could not load ONNX Runtime from {}: {message}",
                    path.display()
                )
            }
            RuntimeError::InvalidModel { message } => write!(f, "{message}"),
            RuntimeError::CudaUnavailable { reason } => write!(f, "CUDA is unavailable: {reason}"),
            RuntimeError::Input { message } => write!(f, "{message}"),
            RuntimeError::Ort { context, message } => {
                write!(f, "ONNX Runtime failed while {context}: {message}")
            }
        }
    }
}

impl std::error::Error for RuntimeError {}

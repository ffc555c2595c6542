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
            message: tidy_ort_message(e.message()),
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

/// ONNX Runtime's message without the C++ it carries: a failed check's source location,
/// function signature and condition (`/onnxruntime_src/...h:84 onnxruntime::X::X(const
/// onnxruntime::TensorShape&, ...) size != 0 was false. The input tensor cannot be
/// reshaped...`) become the sentence meant for the reader, and "Non-zero status code
/// returned while running Reshape node. Name:'r' Status Message: ..." says which node
/// failed in plain words. Whatever does not parse as that is kept as it is.
pub(crate) fn tidy_ort_message(raw: &str) -> String {
    let text = raw.trim();
    const RUNNING: &str = "Non-zero status code returned while running ";
    const STATUS: &str = " Status Message: ";
    if let Some(rest) = text.strip_prefix(RUNNING) {
        if let Some((node, message)) = rest.split_once(STATUS) {
            if let Some((op, name)) = node.split_once(" node. Name:") {
                let name = name.trim().trim_matches('\'');
                // ONNX Runtime's layout rewrite renames `conv2` to `conv2_nchwc`: the model's
                // own name is the one the reader knows.
                let name = name.strip_suffix("_nchwc").unwrap_or(name);
                let op = op.strip_prefix("com.microsoft.nchwc.").unwrap_or(op);
                let which = if name.is_empty() {
                    format!("an unnamed {op} node")
                } else {
                    format!("the {op} node '{name}'")
                };
                let mut tidy = format!("{which} failed: {}", strip_code_location(message.trim()));
                if op == "Reshape" && is_crop_node(name) {
                    tidy.push_str(CROP_TOO_SMALL);
                }
                return tidy;
            }
        }
    }
    strip_code_location(text)
}

/// What a failed crop of a `--dynamic-size` export means: cnnc lowers `crop(t)` there to a
/// centred Slice and a Reshape to `t`'s run-time size, so that a crop larger than its input
/// fails rather than returning a short tensor.
const CROP_TOO_SMALL: &str = " (this crop cuts its input to the height and width of the \
    tensor it joins, and at this input size that tensor is the larger: the requested \
    shape is the crop's, the input shape what it crops; declare this size in the model's `input` \
    and `cnnc check` shows where the sizes part)";

/// A node cnnc named for a `crop` layer: its scoped name's last part is `crop<n>`.
fn is_crop_node(name: &str) -> bool {
    let last = name.rsplit('.').next().unwrap_or(name);
    last.strip_prefix("crop")
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// `text` without a leading `file.cc:123 signature [condition was false.]` of an
/// `ORT_ENFORCE`/`ORT_THROW`, when it starts with one.
fn strip_code_location(text: &str) -> String {
    let Some((location, rest)) = text.split_once(' ') else {
        return text.to_string();
    };
    let is_location = location.rsplit_once(':').is_some_and(|(file, line)| {
        !line.is_empty()
            && line.bytes().all(|b| b.is_ascii_digit())
            && [".h", ".cc", ".cpp", ".cu", ".cuh"]
                .iter()
                .any(|ext| file.ends_with(ext))
    });
    if !is_location {
        return text.to_string();
    }
    // A build that names the function alone (ONNX Runtime 1.32's `concatbase.h:135
    // PrepareForComputeImpl Non concat axis …`): the name is a plain word, and what follows
    // it no qualified name of a signature (`void onnxruntime::Foo(…)`).
    let mut words = rest.splitn(3, ' ');
    let (first, second) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
    let plain =
        |w: &str| !w.is_empty() && w.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    // `void f(int)`: a return type, then the function's name and its parameters.
    let signature_part = |w: &str| {
        w.contains("::")
            || w.split_once('(').is_some_and(|(name, _)| {
                !name.is_empty()
                    && name.bytes().all(|b| {
                        b.is_ascii_alphanumeric() || matches!(b, b'_' | b'<' | b'>' | b'~')
                    })
            })
    };
    if plain(first) && !signature_part(second) && !matches!(first, "virtual" | "static") {
        return finish_after_signature(text, rest[first.len()..].trim_start());
    }
    // The signature runs to the parenthesis that closes its parameter list, then maybe
    // ` const` and GCC's ` [with T = float]`.
    let Some(open) = rest.find('(') else {
        return text.to_string();
    };
    let mut depth = 0usize;
    let mut close = None;
    for (i, c) in rest[open..].char_indices() {
        match c {
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth == 0 {
                    close = Some(open + i);
                    break;
                }
            }
            _ => {}
        }
    }
    let Some(close) = close else {
        return text.to_string();
    };
    let mut after = rest[close + 1..].trim_start();
    // `Compute IsScalar(x) was false.`: the parentheses were the condition's, after a bare
    // function name.
    if after.starts_with("was false") && plain(first) {
        return finish_after_signature(text, rest[first.len()..].trim_start());
    }
    after = after.strip_prefix("const").unwrap_or(after).trim_start();
    if after.starts_with("[with ") {
        match after.find(']') {
            Some(end) => after = after[end + 1..].trim_start(),
            None => return text.to_string(),
        }
    }
    finish_after_signature(text, after)
}

/// What a failed check says after its code location and signature: its own message, or the
/// condition that was false where it has none (`text` is the whole, kept if nothing is left).
fn finish_after_signature(text: &str, after: &str) -> String {
    let tidy = match after.split_once(" was false.") {
        Some((condition, message)) if message.trim().is_empty() => {
            format!("{condition} was false")
        }
        Some((_, message)) => message.trim().to_string(),
        None => after.to_string(),
    };
    if tidy.is_empty() {
        text.to_string()
    } else {
        tidy
    }
}

#[cfg(test)]
mod tests {
    use super::tidy_ort_message;

    #[test]
    fn a_failed_check_keeps_only_its_sentence_and_the_node() {
        let raw = "Non-zero status code returned while running Reshape node. Name:'' Status \
                   Message: /onnxruntime_src/onnxruntime/core/providers/cpu/tensor/\
                   reshape_helper.h:84 onnxruntime::ReshapeHelper::ReshapeHelper(const \
                   onnxruntime::TensorShape&, onnxruntime::TensorShapeVector&, bool) size != 0 \
                   && (input_shape_size % size) == 0 was false. The input tensor cannot be \
                   reshaped to the requested shape. Input shape:{2,6}, requested shape:{5,-1}";
        assert_eq!(
            tidy_ort_message(raw),
            "an unnamed Reshape node failed: The input tensor cannot be reshaped to the \
             requested shape. Input shape:{2,6}, requested shape:{5,-1}"
        );
    }

    /// A node ONNX Runtime's layout rewrite renamed is named as the model names it.
    #[test]
    fn a_rewritten_node_keeps_the_models_name() {
        let raw = "Non-zero status code returned while running Conv node. Name:'conv2_nchwc' \
                   Status Message: Invalid input shape: {1,1}";
        assert_eq!(
            tidy_ort_message(raw),
            "the Conv node 'conv2' failed: Invalid input shape: {1,1}"
        );
    }

    /// ONNX Runtime 1.32 names the function alone, without its parameter list.
    #[test]
    fn a_check_that_names_its_function_alone() {
        let raw = "Non-zero status code returned while running Concat node. Name:'up3.concat1' \
                   Status Message: concatbase.h:135 PrepareForComputeImpl Non concat axis \
                   dimensions must match: Axis 2 has mismatched dimensions of 17 and 16";
        assert_eq!(
            tidy_ort_message(raw),
            "the Concat node 'up3.concat1' failed: Non concat axis dimensions must match: Axis \
             2 has mismatched dimensions of 17 and 16"
        );
        let raw = "Non-zero status code returned while running Conv node. Name:'c' Status \
                   Message: conv.h:50 Compute W.dims() == 4 was false.";
        assert_eq!(
            tidy_ort_message(raw),
            "the Conv node 'c' failed: W.dims() == 4 was false"
        );
        // A condition that is a call or a qualified name, read as no signature.
        let raw = "conv.h:50 Compute IsScalar(x) was false. the scale is one number";
        assert_eq!(tidy_ort_message(raw), "the scale is one number");
        let raw = "conv.h:50 Compute utils::HasDimValue(d) was false.";
        assert_eq!(tidy_ort_message(raw), "utils::HasDimValue(d) was false");
    }

    #[test]
    fn a_throw_with_a_gcc_template_signature_and_a_named_node() {
        let raw = "Non-zero status code returned while running Conv node. Name:'conv1' Status \
                   Message: /src/conv.cc:12 virtual onnxruntime::common::Status \
                   onnxruntime::Conv<T>::Compute(onnxruntime::OpKernelContext*) const [with T \
                   = float] X num_dims does not match W num_dims.";
        assert_eq!(
            tidy_ort_message(raw),
            "the Conv node 'conv1' failed: X num_dims does not match W num_dims."
        );
    }

    #[test]
    fn a_failed_crop_says_what_it_means_and_what_to_do() {
        let raw = "Non-zero status code returned while running Reshape node. \
                   Name:'concat1.branch1.crop1' Status Message: The input tensor cannot be \
                   reshaped to the requested shape. Input shape:{1,4,32,32}, requested \
                   shape:{1,4,33,33}";
        let tidy = tidy_ort_message(raw);
        assert!(
            tidy.starts_with("the Reshape node 'concat1.branch1.crop1' failed: The input")
                && tidy.ends_with(super::CROP_TOO_SMALL),
            "{tidy}"
        );
        for name in ["reshape1", "cropper", "crop", "up.crop1x"] {
            let raw = raw.replace("concat1.branch1.crop1", name);
            assert!(
                !tidy_ort_message(&raw).ends_with(super::CROP_TOO_SMALL),
                "{name}"
            );
        }
    }

    #[test]
    fn a_check_without_a_sentence_keeps_its_condition() {
        let raw = "/src/a.cc:5 void f(int) x > 0 was false. ";
        assert_eq!(tidy_ort_message(raw), "x > 0 was false");
    }

    #[test]
    fn messages_without_code_locations_are_kept() {
        for raw in [
            "Invalid input name: inp",
            "Got invalid dimensions for input: x for the following indices index: 1 Got: 3 \
             Expected: 4",
            "/no/location here (at all)",
            "file.cc:12x f() not a line number",
        ] {
            assert_eq!(tidy_ort_message(raw), raw);
        }
    }
}

//! ONNX Runtime through `ort`: finds `libonnxruntime`, holds the process's one environment, and
//! turns ONNX bytes into [`Session`]s on the CPU or CUDA that run f32/i64 tensors, and
//! [`StatefulSession`]s that keep a training step's state in ONNX Runtime memory between runs.
//!
//! Architecture invariant: this is the only module that uses `ort`; nothing of `ort` appears in
//! its public API. Every ONNX Runtime failure becomes a [`RuntimeError`] that says what cnnc was
//! doing; nothing here panics on a bad model or input.

mod cuda_libs;
mod error;
pub mod locate;
pub mod npy;
mod session;
mod stateful;
mod wire;

pub use error::{RuntimeError, INSTALL_HINT};
pub use locate::{locate, FoundBy, Library};
pub use session::{
    format_dims, Dim, ElementType, Input, InputData, Output, OutputData, Session, TensorSpec,
};
pub use stateful::{StateTensor, StatefulSession};
pub use wire::{check_model_bytes, starts_like_model, tiny_model};

use std::fmt;
use std::sync::OnceLock;

/// Where a session runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Device {
    #[default]
    Cpu,
    Cuda,
}

impl fmt::Display for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Device::Cpu => "cpu",
            Device::Cuda => "cuda",
        })
    }
}

/// How to build a session; [`Runtime::session`] uses the defaults for a device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionOptions {
    pub device: Device,
    /// Threads within one operator; `None` is the number of cores.
    pub intra_threads: Option<usize>,
    /// Let idle intra-op threads spin between operators instead of sleeping (ONNX Runtime's
    /// default). Spinning saves the wake-up after each small operator when the cores are
    /// free, and burns the time of any other process that wants them: on the 2-core
    /// development machine, training LeNet was 5–12 % faster with spinning when nothing else
    /// ran, and 8,900–11,200 against 14,400–14,800 examples/s beside one busy process.
    pub spin_wait: bool,
    /// On CUDA, let convolutions and matrix products run in TF32 (ONNX Runtime's default, and
    /// PyTorch's for convolutions): about 1e-3 relative error for much more speed on Ampere
    /// and later GPUs. Off gives float32 results that agree with the CPU's to rounding.
    pub tf32: bool,
    /// The folder whose files the model's external data names (`location` of a tensor stored
    /// outside the model): the model file's own folder. `None`: the working directory.
    pub external_data_dir: Option<std::path::PathBuf>,
}

impl Default for SessionOptions {
    fn default() -> SessionOptions {
        SessionOptions {
            device: Device::default(),
            intra_threads: None,
            spin_wait: true,
            tf32: true,
            external_data_dir: None,
        }
    }
}

/// The loaded ONNX Runtime: one per process (ort allows one environment), made on first use.
pub struct Runtime {
    env: ort::environment::Environment,
    library: Library,
    version: Option<String>,
}

impl fmt::Debug for Runtime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Runtime")
            .field("library", &self.library)
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

/// The process's runtime, or the error that kept it from starting (kept, since ort cannot retry).
static RUNTIME: OnceLock<Result<Runtime, RuntimeError>> = OnceLock::new();

/// The execution provider names ONNX Runtime uses.
pub const CPU_PROVIDER: &str = "CPUExecutionProvider";
pub const CUDA_PROVIDER: &str = "CUDAExecutionProvider";

impl Runtime {
    /// The runtime, loading the library ([`locate`]) and creating the environment the first time.
    pub fn get() -> Result<&'static Runtime, RuntimeError> {
        RUNTIME
            .get_or_init(Runtime::start)
            .as_ref()
            .map_err(Clone::clone)
    }

    fn start() -> Result<Runtime, RuntimeError> {
        let library = locate()?;
        let load_error = |message: String| RuntimeError::Load {
            path: library.path.clone(),
            message: match library.found_by {
                // The user's own setting: say what it should name.
                locate::FoundBy::EnvVar => format!(
                    "{message} (found by ORT_DYLIB_PATH: point it at libonnxruntime.so, for a \
                     pip install .../site-packages/onnxruntime/capi/libonnxruntime.so.<version>, \
                     or unset it)"
                ),
                _ => format!("{message} (found by {})", library.found_by),
            },
        };
        let start = || -> Result<(ort::environment::Environment, &'static str), RuntimeError> {
            let builder =
                ort::init_from(&library.path).map_err(|e| load_error(describe_load(&e)))?;
            let env = builder
                .with_name("cnnc")
                .with_telemetry(false)
                .build()
                .map_err(|e| load_error(format!("creating the environment: {}", e.message())))?;
            // ONNX Runtime's own log repeats on stderr, with colour codes, every error cnnc
            // reports in its words; `CNNC_ORT_LOG=warning` (or verbose, info, error) shows it.
            env.set_log_level(ort_log_level(std::env::var("CNNC_ORT_LOG").ok().as_deref()));
            Ok((env, ort::info()))
        };
        // A library that has ONNX Runtime's entry point but gives no API (another build, a
        // stub) makes ort panic: that is this library's failure to load, said as such.
        // Its panic message is silenced on this thread only: another thread's panic meanwhile
        // still reaches the hook in place.
        thread_local! {
            static STARTING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
        }
        let previous: std::sync::Arc<dyn Fn(&std::panic::PanicHookInfo<'_>) + Send + Sync> =
            std::panic::take_hook().into();
        let chained = previous.clone();
        std::panic::set_hook(Box::new(move |info| {
            if !STARTING.with(|s| s.get()) {
                chained(info);
            }
        }));
        STARTING.with(|s| s.set(true));
        let started = std::panic::catch_unwind(start);
        STARTING.with(|s| s.set(false));
        let _ = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| previous(info)));
        let (env, info) = started.map_err(|_| {
            load_error(
                "is no working ONNX Runtime library: its API could not be initialised".into(),
            )
        })??;
        let version = version_of(info, &library.path);
        Ok(Runtime {
            env,
            library,
            version,
        })
    }

    /// The library file and how it was found.
    pub fn library(&self) -> &Library {
        &self.library
    }

    /// ONNX Runtime's version (`1.32.0`), read from its build information or its file name.
    pub fn version(&self) -> Option<&str> {
        self.version.as_deref()
    }

    /// ONNX Runtime's build information string.
    pub fn build_info(&self) -> &'static str {
        ort::info()
    }

    /// The execution providers this build of ONNX Runtime has (GetAvailableProviders), e.g.
    /// `["AzureExecutionProvider", "CPUExecutionProvider"]`. Having one does not mean it works:
    /// CUDA still needs a driver and its libraries, which only [`Runtime::session`] finds out.
    pub fn available_providers(&self) -> Result<Vec<String>, RuntimeError> {
        let api = ort::api();
        let mut names: *mut *mut std::ffi::c_char = std::ptr::null_mut();
        let mut count: std::ffi::c_int = 0;
        // SAFETY: the library is loaded (self exists); both out-pointers are valid, and the list
        // ONNX Runtime returns is read within its length, then released exactly once.
        unsafe {
            ort::Error::result_from_status((api.GetAvailableProviders)(&mut names, &mut count))
                .map_err(|e| RuntimeError::ort("listing the execution providers", e))?;
            if names.is_null() {
                return Ok(Vec::new());
            }
            let list = (0..usize::try_from(count).unwrap_or(0))
                .map(|i| {
                    let p = *names.add(i);
                    if p.is_null() {
                        String::new()
                    } else {
                        std::ffi::CStr::from_ptr(p).to_string_lossy().into_owned()
                    }
                })
                .collect();
            // A failure to release leaks a few bytes; nothing to report to the user.
            let _ = ort::Error::result_from_status((api.ReleaseAvailableProviders)(names, count));
            Ok(list)
        }
    }

    /// A session for the ONNX model `bytes` on `device`, with as many intra-op threads as cores.
    pub fn session(&self, bytes: &[u8], device: Device) -> Result<Session, RuntimeError> {
        self.session_with(
            bytes,
            &SessionOptions {
                device,
                ..SessionOptions::default()
            },
        )
    }

    /// A session for the ONNX model `bytes` with explicit options.
    ///
    /// The bytes are checked to be an ONNX ModelProto before ONNX Runtime sees them. With
    /// [`Device::Cuda`], the CUDA execution provider must register and start: a failure of
    /// either is a [`RuntimeError::CudaUnavailable`], never a silent fall back to the CPU.
    pub fn session_with(
        &self,
        bytes: &[u8],
        options: &SessionOptions,
    ) -> Result<Session, RuntimeError> {
        check_model_bytes(bytes)?;
        let threads = options.intra_threads.unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        });
        let mut builder = ort::session::Session::builder(&self.env)
            .map_err(|e| RuntimeError::ort("creating a session builder", e))?
            .with_intra_threads(threads)
            .map_err(|e| RuntimeError::ort(format!("setting {threads} intra-op threads"), e))?
            .with_intra_op_spinning(options.spin_wait)
            .map_err(|e| RuntimeError::ort("setting the intra-op spinning", e))?;
        if let Some(dir) = &options.external_data_dir {
            // ONNX Runtime looks for the external data of a model given as bytes here.
            builder = builder
                .with_config_entry(
                    "session.model_external_initializers_file_folder_path",
                    dir.to_string_lossy(),
                )
                .map_err(|e| RuntimeError::ort("setting the external data folder", e))?;
        }
        if options.device == Device::Cuda {
            builder = self.with_cuda(builder, options.tf32)?;
        }
        let session = builder.commit_from_memory(bytes).map_err(|e| {
            match load_failure(options.device, e.message()) {
                LoadFailure::Memory => {
                    RuntimeError::ort(format!("loading the model on {}", options.device), e)
                }
                LoadFailure::Cuda => RuntimeError::CudaUnavailable {
                    reason: format!(
                        "the CUDA execution provider could not start the model: {}{}",
                        error::tidy_ort_message(e.message()),
                        self.cuda_libraries_note(e.message())
                    ),
                },
                LoadFailure::Model => RuntimeError::InvalidModel {
                    message: format!(
                        "ONNX Runtime cannot load the model: {}",
                        error::tidy_ort_message(e.message())
                    ),
                },
            }
        })?;
        let mut session = Session::new(session, options.device)?;
        session.mark_shapeless(&wire::shapeless_inputs(bytes));
        Ok(session)
    }

    fn with_cuda(
        &self,
        builder: ort::session::builder::SessionBuilder,
        tf32: bool,
    ) -> Result<ort::session::builder::SessionBuilder, RuntimeError> {
        let providers = self.available_providers()?;
        if !providers.iter().any(|p| p == CUDA_PROVIDER) {
            return Err(RuntimeError::CudaUnavailable {
                reason: format!(
                    "the ONNX Runtime {}at {} was built without CUDA (its execution providers: \
                     {}); `pip install onnxruntime-gpu` in place of onnxruntime, or set \
                     ORT_DYLIB_PATH to a CUDA build of libonnxruntime.so",
                    self.version
                        .as_ref()
                        .map(|v| format!("{v} "))
                        .unwrap_or_default(),
                    self.library.path.display(),
                    providers.join(", ")
                ),
            });
        }
        cuda_libs::preload(&self.library.path);
        let cuda = ort::ep::CUDA::default()
            .with_tf32(tf32)
            .build()
            .error_on_failure();
        builder
            .with_execution_providers([cuda])
            .map_err(|e| RuntimeError::CudaUnavailable {
                reason: format!(
                    "registering the CUDA execution provider failed: {}{}",
                    error::tidy_ort_message(e.message()),
                    self.cuda_libraries_note(e.message())
                ),
            })
    }

    /// What a CUDA failure message adds about the libraries the provider needs: which were
    /// loaded from pip's `nvidia` packages, or how to get them.
    fn cuda_libraries_note(&self, message: &str) -> String {
        if message.contains("libcuda.so") {
            return " (libcuda.so.1 is the NVIDIA driver's library: this machine has no NVIDIA \
                    driver, so no GPU that CUDA can use; `nvidia-smi` shows the driver where there \
                    is one)"
                .into();
        }
        let pre = cuda_libs::preload(&self.library.path);
        let mut note = format!(
            " (the CUDA execution provider needs an NVIDIA GPU and driver, and the CUDA {} and \
             cuDNN 9 libraries that onnxruntime-gpu was built for",
            pre.cuda_major
        );
        match &pre.dir {
            Some(dir) if !pre.loaded.is_empty() => note.push_str(&format!(
                "; cnnc loaded {} of them from {}",
                pre.loaded.len(),
                dir.display()
            )),
            _ => note.push_str(
                ": `pip install onnxruntime-gpu[cuda,cudnn]` installs them beside onnxruntime, \
                 where cnnc finds them, or put them on LD_LIBRARY_PATH",
            ),
        }
        for (path, reason) in &pre.failed {
            note.push_str(&format!("; {} failed to load: {reason}", path.display()));
        }
        note.push(')');
        note
    }
}

/// The values `CNNC_ORT_LOG` understands, most verbose first.
pub const ORT_LOG_LEVELS: [&str; 5] = ["verbose", "info", "warning", "error", "fatal"];

/// Whether `CNNC_ORT_LOG`'s value names a level (`warn` for `warning`, any case).
pub fn is_ort_log_level(setting: &str) -> bool {
    parse_ort_log_level(setting).is_some()
}

/// The level `CNNC_ORT_LOG` names (`warn` for `warning`, any case), if it names one.
fn parse_ort_log_level(setting: &str) -> Option<ort::logging::LogLevel> {
    use ort::logging::LogLevel;
    Some(match setting.to_ascii_lowercase().as_str() {
        "verbose" => LogLevel::Verbose,
        "info" => LogLevel::Info,
        "warning" | "warn" => LogLevel::Warning,
        "error" => LogLevel::Error,
        "fatal" => LogLevel::Fatal,
        _ => return None,
    })
}

/// The level of ONNX Runtime's own log from `CNNC_ORT_LOG`: fatal (quiet) unless set to a
/// level (the CLI warns of any other value).
fn ort_log_level(setting: Option<&str>) -> ort::logging::LogLevel {
    setting
        .and_then(parse_ort_log_level)
        .unwrap_or(ort::logging::LogLevel::Fatal)
}

/// Whose fault a failure to load a model is.
#[derive(Debug, PartialEq, Eq)]
enum LoadFailure {
    /// Memory is the machine's limit, not the model's fault.
    Memory,
    /// The CUDA execution provider starts when a session loads, not when it is registered:
    /// no device, or a driver too old for the provider's CUDA, arrive now.
    Cuda,
    /// Everything else at load time (a bad graph, an unknown op or opset, shapes that do not
    /// fit, external data that cannot be read) is the model file's.
    Model,
}

/// Classifies ONNX Runtime's load error message. Memory is checked first: CUDA's "CUDA
/// failure 2: out of memory" names CUDA too.
fn load_failure(device: Device, message: &str) -> LoadFailure {
    if mentions_memory(message) {
        LoadFailure::Memory
    } else if device == Device::Cuda && mentions_cuda(message) {
        LoadFailure::Cuda
    } else {
        LoadFailure::Model
    }
}

/// Whether an ONNX Runtime message is about running out of memory.
fn mentions_memory(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    [
        "bad_alloc",
        "failed to allocate",
        "out of memory",
        "cannot allocate",
    ]
    .iter()
    .any(|w| m.contains(w))
}

/// Whether an ONNX Runtime message is about CUDA itself (the provider, its libraries, the
/// driver or the device) rather than the model.
fn mentions_cuda(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    ["cuda", "cudnn", "cublas", "gpu", "libcuda", "provider"]
        .iter()
        .any(|w| m.contains(w))
}

/// ort's load error with the dynamic loader's own reason (ort shows only "dlopen failed").
fn describe_load(e: &ort::LoadDynamicError) -> String {
    match e {
        ort::LoadDynamicError::Dlopen { error, .. } => match std::error::Error::source(error) {
            Some(reason) => format!("the dynamic loader refused it: {reason}"),
            None => format!("the dynamic loader refused it: {error}"),
        },
        ort::LoadDynamicError::BadVersion { .. } => format!(
            "{e}; `pip install --upgrade onnxruntime` (or onnxruntime-gpu) gives a newer one"
        ),
        other => other.to_string(),
    }
}

/// The version from `git-branch=rel-1.32.0` in the build information, else from a file name
/// such as `libonnxruntime.so.1.32.0`.
fn version_of(build_info: &str, path: &std::path::Path) -> Option<String> {
    let is_version = |s: &str| {
        !s.is_empty()
            && s.split('.').count() >= 2
            && s.split('.')
                .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
    };
    if let Some(rest) = build_info.split("git-branch=rel-").nth(1) {
        let v: String = rest
            .chars()
            .take_while(|c| c.is_ascii_digit() || *c == '.')
            .collect();
        if is_version(&v) {
            return Some(v);
        }
    }
    let name = path.file_name()?.to_string_lossy().into_owned();
    let v = name.strip_prefix("libonnxruntime.so.").or_else(|| {
        name.strip_prefix("libonnxruntime.")
            .and_then(|s| s.strip_suffix(".dylib"))
    })?;
    is_version(v).then(|| v.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn load_failures_are_blamed_on_memory_cuda_or_the_model() {
        use LoadFailure::*;
        for (device, message, want) in [
            (
                Device::Cuda,
                "CUDA failure 2: out of memory ; GPU=0 ; expr=cudaMalloc",
                Memory,
            ),
            (Device::Cpu, "std::bad_alloc", Memory),
            (
                Device::Cuda,
                "CUDA failure 35: CUDA driver version is insufficient for CUDA runtime version",
                Cuda,
            ),
            (
                Device::Cuda,
                "Could not find an implementation for Foo(1) node",
                Model,
            ),
            // On the CPU a message naming a provider is still the model's.
            (Device::Cpu, "Node (x) provider type mismatch", Model),
        ] {
            assert_eq!(load_failure(device, message), want, "{message}");
        }
    }

    #[test]
    fn ort_log_levels_parse_and_anything_else_stays_quiet() {
        use ort::logging::LogLevel;
        for name in ORT_LOG_LEVELS {
            assert!(parse_ort_log_level(name).is_some(), "{name}");
            assert!(
                parse_ort_log_level(&name.to_uppercase()).is_some(),
                "{name}"
            );
        }
        assert!(matches!(
            parse_ort_log_level("warn"),
            Some(LogLevel::Warning)
        ));
        assert!(parse_ort_log_level("loud").is_none());
        assert!(matches!(ort_log_level(Some("loud")), LogLevel::Fatal));
        assert!(matches!(ort_log_level(None), LogLevel::Fatal));
        assert!(matches!(ort_log_level(Some("Info")), LogLevel::Info));
    }

    #[test]
    fn version_from_build_info_or_file_name() {
        assert_eq!(
            version_of(
                "ORT Build Info: git-branch=rel-1.32.0, git-commit-id=abc, build type=Release",
                Path::new("/x/libonnxruntime.so")
            )
            .as_deref(),
            Some("1.32.0")
        );
        assert_eq!(
            version_of(
                "ORT Build Info: git-branch=main",
                Path::new("/x/libonnxruntime.so.1.31.1")
            )
            .as_deref(),
            Some("1.31.1")
        );
        assert_eq!(version_of("", Path::new("/x/libonnxruntime.so")), None);
    }
}

//! `cnnc run`, `cnnc bench` and `cnnc doctor`: models through ONNX Runtime ([`cnnc::runtime`]).

use super::common::{check_output_path, fail, report_failure, Format, EXIT_RUNTIME, EXIT_USAGE};
use cnnc::runtime::{
    self, npy, Device, Library, Runtime, RuntimeError, Session, CPU_PROVIDER, CUDA_PROVIDER,
};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum DeviceArg {
    /// ONNX Runtime's CPU execution provider.
    #[default]
    Cpu,
    /// The CUDA execution provider (needs onnxruntime-gpu and an NVIDIA GPU); never falls back
    /// to the CPU. `gpu` is accepted for it.
    #[value(alias = "gpu")]
    Cuda,
}

impl From<DeviceArg> for Device {
    fn from(d: DeviceArg) -> Device {
        match d {
            DeviceArg::Cpu => Device::Cpu,
            DeviceArg::Cuda => Device::Cuda,
        }
    }
}

#[derive(clap::Args, Debug)]
pub struct RunArgs {
    /// The model: an .onnx file, or a .cnn file (compiled with freshly initialized weights).
    pub model: PathBuf,
    /// The input array, a .npy file of float32 (float64, big-endian and Fortran order are
    /// converted; NaN or infinite values are refused), with the
    /// batch dimension first: [N, C, H, W] (numpy: `np.save("x.npy", x[None])` for one image);
    /// `-` reads it from standard input.
    #[arg(long, short)]
    pub input: PathBuf,
    /// Write the first output here as a .npy file, and each other output (a named output,
    /// `output aux1 { … }`) beside it as `<stem>.<name>.npy`: float32, as a cnnc model's
    /// outputs are, or a foreign model's own type (int64, bool, float64, …).
    #[arg(long, short)]
    pub output: Option<PathBuf>,
    /// Where ONNX Runtime runs the model.
    #[arg(long, value_enum, default_value_t = DeviceArg::Cpu)]
    pub device: DeviceArg,
    /// Which model of a .cnn file that defines several.
    #[arg(long = "model", value_name = "NAME")]
    pub model_name: Option<String>,
}

#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    /// The model: an .onnx or .cnn file.
    pub model: PathBuf,
    /// Images per run [default: 1, or the model's fixed batch size].
    #[arg(long, short, value_parser = super::common::at_least_one::<usize>, allow_negative_numbers = true)]
    pub batch: Option<usize>,
    /// Where ONNX Runtime runs the model.
    #[arg(long, value_enum, default_value_t = DeviceArg::Cpu)]
    pub device: DeviceArg,
    /// Untimed runs before measuring.
    #[arg(long, default_value_t = 5, value_parser = super::common::whole_number::<usize>, allow_negative_numbers = true)]
    pub warmup: usize,
    /// Timed runs [default: as many as fit in 3 seconds].
    #[arg(long, short = 'n', conflicts_with = "seconds", value_parser = super::common::at_least_one::<usize>, allow_negative_numbers = true)]
    pub iterations: Option<usize>,
    /// Measure for this long (at least one run).
    #[arg(long, value_name = "S", value_parser = seconds_arg, allow_negative_numbers = true)]
    pub seconds: Option<Duration>,
    /// Output format of the results.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Which model of a .cnn file that defines several.
    #[arg(long = "model", value_name = "NAME")]
    pub model_name: Option<String>,
    /// The input's height and width, for a model whose input leaves them open (`cnnc
    /// export --dynamic-size`), e.g. `--size 720x1280`.
    #[arg(long, value_name = "HxW", value_parser = image_size)]
    pub size: Option<[usize; 2]>,
}

/// `720x1280` (or `720,1280`): a height and a width, each at least 1.
fn image_size(s: &str) -> Result<[usize; 2], String> {
    let parts: Vec<&str> = s.split(['x', 'X', ',', '×']).collect();
    let [h, w] = parts[..] else {
        return Err(format!(
            "give a height and a width as HxW, e.g. 224x224, not `{s}`"
        ));
    };
    let side = |t: &str| super::common::at_least_one::<usize>(t.trim());
    Ok([side(h)?, side(w)?])
}

#[derive(clap::Args, Debug)]
pub struct DoctorArgs {
    /// Output format of the report.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

/// A failure that ends a subcommand: its exit code and message.
struct Failure(u8, String);

/// Where a [`Failure`]'s message ends and its help begins: printed as it is, it reads as
/// every error with a help does (`error: …` then `  help: …`); `--format json` splits it
/// into `error` and `help` ([`Failure::split_help`]).
const HELP_SEPARATOR: &str = "\n  help: ";

impl Failure {
    fn with_help(
        code: u8,
        message: impl std::fmt::Display,
        help: impl std::fmt::Display,
    ) -> Failure {
        Failure(code, format!("{message}{HELP_SEPARATOR}{help}"))
    }

    /// The message and, where it has one, its help.
    fn split_help(message: &str) -> (&str, Option<&str>) {
        match message.split_once(HELP_SEPARATOR) {
            Some((m, h)) => (m, Some(h)),
            None => (message, None),
        }
    }
}

impl From<RuntimeError> for Failure {
    fn from(e: RuntimeError) -> Failure {
        let code = if e.is_user_input() {
            EXIT_USAGE
        } else {
            EXIT_RUNTIME
        };
        Failure(code, e.to_string())
    }
}

/// The folder where the external data of the model at `path` (its bytes `bytes`) lies:
/// beside the path as given, as ONNX Runtime looks; through a symbolic link whose data is
/// not there, beside the file it leads to (`export -o LINK` writes both there), when every
/// data file is found there.
fn external_data_dir(path: &Path, bytes: &[u8]) -> PathBuf {
    let folder = |p: &Path| match p.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let given = folder(path);
    let Some(resolved) = std::fs::canonicalize(path).ok().map(|p| folder(&p)) else {
        return given;
    };
    if std::fs::canonicalize(&given).is_ok_and(|g| g == resolved) {
        return given;
    }
    let Some(locations) = cnnc::onnx::external_data_locations(bytes) else {
        return given;
    };
    let all_in = |dir: &Path| locations.iter().all(|l| dir.join(l).is_file());
    if locations.is_empty() || all_in(&given) || !all_in(&resolved) {
        given
    } else {
        resolved
    }
}

/// A session for the model read from `path`; a model file ONNX Runtime refuses is named
/// (exit 2), a `.cnn` compiled here that it refuses is cnnc's failure (exit 3).
fn open_session(
    rt: &Runtime,
    bytes: &[u8],
    device: Device,
    path: &Path,
) -> Result<runtime::Session, Failure> {
    // An ONNX file's external data lies beside it, wherever the command runs from.
    let external_data_dir = (!is_source(path)).then(|| external_data_dir(path, bytes));
    let options = runtime::SessionOptions {
        device,
        external_data_dir,
        ..runtime::SessionOptions::default()
    };
    rt.session_with(bytes, &options).map_err(|e| match e {
        RuntimeError::InvalidModel { .. } if !is_source(path) => {
            Failure(EXIT_USAGE, format!("{}: {e}", path.display()))
        }
        e => e.for_generated_graph().into(),
    })
}

fn finish(result: Result<(), Failure>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure(code, message)) if allocation_failed(&message) => fail(
            code,
            Failure::with_help(
                code,
                message,
                "the input's batch does not fit in this machine's memory through the model: \
                 run it in smaller batches",
            )
            .1,
        ),
        Err(Failure(code, message)) => fail(code, message),
    }
}

pub fn run(a: RunArgs) -> ExitCode {
    finish(run_inner(&a))
}

pub fn bench(a: BenchArgs) -> ExitCode {
    match bench_inner(&a) {
        Ok(false) => ExitCode::SUCCESS,
        Ok(true) => ExitCode::from(super::common::EXIT_INTERRUPTED),
        Err(Failure(code, message)) => {
            let (message, help) = Failure::split_help(&message);
            let help = help.map(str::to_string).or_else(|| {
                allocation_failed(message).then(|| {
                    "the batch's layer outputs do not fit in this machine's memory: use a \
                     smaller --batch"
                        .to_string()
                })
            });
            report_failure(a.format, code, message, help)
        }
    }
}

/// Whether ONNX Runtime failed for want of memory (its arena's "Failed to allocate memory",
/// or a `bad_alloc`): the batch is too large, which the user can change.
fn allocation_failed(message: &str) -> bool {
    message.contains("Failed to allocate memory") || message.contains("bad_alloc")
}

/// Whether MODEL is a .cnn source (compiled with fresh weights) rather than an ONNX file;
/// `-`, standard input, is one, as for `check`, `summary` and `export`.
fn is_source(path: &Path) -> bool {
    path == Path::new("-") || path.extension().is_some_and(|e| e == "cnn")
}

/// The ONNX bytes of MODEL: an .onnx file as it is, a .cnn file compiled.
/// `command` is the subcommand, for its messages.
fn model_bytes(path: &Path, model_name: Option<&str>, command: &str) -> Result<Vec<u8>, Failure> {
    if is_source(path) {
        return compile_cnn(path, model_name);
    }
    if model_name.is_some() {
        return Err(Failure(
            EXIT_USAGE,
            format!(
                "--model picks a model of a .cnn file; {} is an ONNX file",
                path.display()
            ),
        ));
    }
    // A protobuf message, so an ONNX file without external data, is below 2 GiB.
    let bytes = read(path, "model", cnnc::onnx::lower::PROTOBUF_LIMIT)?;
    runtime::check_model_bytes(&bytes).map_err(|e| {
        let source_like = std::str::from_utf8(&bytes).is_ok_and(|t| {
            t.lines()
                .map(str::trim)
                .find(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with("//"))
                .is_some_and(|l| {
                    ["model ", "block ", "use "]
                        .iter()
                        .any(|k| l.starts_with(k))
                })
        });
        let message = if source_like {
            format!(
                "{}: this looks like a .cnn source, not an ONNX model; give it the .cnn \
                 extension and `cnnc {command}` compiles it",
                path.display()
            )
        } else {
            format!("{}: {e}", path.display())
        };
        Failure(EXIT_USAGE, message)
    })?;
    Ok(bytes)
}

/// Compiles a .cnn file to ONNX bytes with freshly initialized weights (PyTorch's default
/// initialisation, seed 0), printing its diagnostics.
fn compile_cnn(path: &Path, model_name: Option<&str>) -> Result<Vec<u8>, Failure> {
    let compilation = super::common::compile_for(path, model_name)
        .map_err(|e| Failure(EXIT_USAGE, e.to_string()))?;
    super::common::print_diagnostics(&compilation);
    if compilation.diagnostics.has_errors() {
        return Err(Failure(
            super::common::EXIT_DIAGNOSTICS,
            format!(
                "{} has {} error(s); nothing was run",
                path.display(),
                compilation.diagnostics.error_count()
            ),
        ));
    }
    let model = compilation
        .model(model_name)
        .map_err(|m| Failure(EXIT_USAGE, m))?;
    // An ONNX model held in memory is one protobuf message, below 2 GiB: one with more
    // weights is refused before they are made, with the way that works.
    let weight_bytes = model
        .total_params()
        .saturating_mul(cnnc::shape::summary::BYTES_PER_ELEMENT);
    if weight_bytes > cnnc::onnx::lower::PROTOBUF_LIMIT {
        return Err(Failure::with_help(
            EXIT_USAGE,
            format!(
                "{}: model `{}` has {} bytes of weights, over the {} an ONNX model held in \
                 memory can be (protobuf's 2 GiB)",
                path.display(),
                model.name,
                cnnc::shape::summary::group(weight_bytes),
                cnnc::shape::summary::group(cnnc::onnx::lower::PROTOBUF_LIMIT)
            ),
            format!(
                "export it first, `cnnc export {} --model {} -o {}.onnx`, which writes the \
                 weights beside the model as ONNX external data, then give that .onnx file",
                path.display(),
                model.name,
                model.name
            ),
        ));
    }
    let weights = cnnc::onnx::weights::try_initialize(model, cnnc::onnx::Init::Default, 0)
        .map_err(|e| Failure(EXIT_USAGE, format!("{}: {e}", path.display())))?;
    cnnc::onnx::export_bytes(
        model,
        &compilation.sources,
        &weights,
        &cnnc::onnx::ExportOptions::default(),
    )
    .map_err(|e| Failure(EXIT_USAGE, format!("{}: {e}", path.display())))
}

/// The largest `.npy` input `run` reads (16 GiB).
const MAX_INPUT_BYTES: u64 = 1 << 34;

fn read(path: &Path, what: &str, limit: u64) -> Result<Vec<u8>, Failure> {
    cnnc::fsutil::read_input(path, limit).map_err(|e| {
        Failure(
            EXIT_USAGE,
            format!("cannot read the {what} {}: {e}", path.display()),
        )
    })
}

/// The one float32 input of a model that `run` and `bench` feed.
fn single_input(session: &Session) -> Result<&runtime::TensorSpec, Failure> {
    match session.inputs() {
        [one] if one.element == runtime::ElementType::F32 => Ok(one),
        [one] => Err(Failure(
            EXIT_USAGE,
            format!(
                "the model's input `{}` is {}; cnnc feeds float32",
                one.name, one.element
            ),
        )),
        [] => Err(Failure(
            EXIT_USAGE,
            "the model has no inputs (it computes from its constants alone); cnnc run and \
             bench feed a model with one"
                .to_string(),
        )),
        many => Err(Failure(
            EXIT_USAGE,
            format!(
                "the model has {} inputs ({}); cnnc run and bench feed a model with one",
                many.len(),
                many.iter()
                    .map(|s| s.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )),
    }
}

fn run_inner(a: &RunArgs) -> Result<(), Failure> {
    if let Some(path) = &a.output {
        check_output_path(
            path,
            Some("output.npy"),
            &[("the model", &a.model), ("the input", &a.input)],
        )
        .and_then(|()| super::common::check_replaces_only_an_array(path))
        .map_err(|e| Failure(EXIT_USAGE, e))?;
    }
    let stdin = Path::new("-");
    if a.input == stdin && a.model == stdin {
        return Err(Failure(
            EXIT_USAGE,
            "the model and the input are both `-`: standard input can be read only once".into(),
        ));
    }
    // `cnnc run - -i /dev/stdin`: the same stream under another name.
    for (dash, named, what) in [(&a.model, &a.input, "input"), (&a.input, &a.model, "model")] {
        if dash == stdin && super::common::is_standard_input_stream(named) {
            return Err(Failure(
                EXIT_USAGE,
                format!(
                    "the {what} {} is standard input, which `-` reads too: a pipe or terminal \
                     can be read only once; give one of them as a file",
                    named.display()
                ),
            ));
        }
    }
    let bytes = model_bytes(&a.model, a.model_name.as_deref(), "run")?;
    // No more than memory holds: an array declared larger is refused from its header.
    let limit =
        super::common::available_memory().map_or(MAX_INPUT_BYTES, |m| m.min(MAX_INPUT_BYTES));
    let input_bytes = if a.input == stdin {
        cnnc::fsutil::read_capped(std::io::stdin().lock(), limit, npy::bytes_worth_reading)
    } else {
        cnnc::fsutil::read_input_until(&a.input, limit, npy::bytes_worth_reading)
    };
    let input_name = if a.input == stdin {
        "standard input".to_string()
    } else {
        a.input.display().to_string()
    };
    let input_bytes = input_bytes.map_err(|e| {
        Failure(
            EXIT_USAGE,
            format!("cannot read the input {input_name}: {e}"),
        )
    })?;
    if input_bytes.is_empty() {
        return Err(Failure(
            EXIT_USAGE,
            format!("{input_name} is empty; the input is a .npy array (NumPy's `np.save`)"),
        ));
    }
    let array =
        npy::parse(&input_bytes).map_err(|e| Failure(EXIT_USAGE, format!("{input_name}: {e}")))?;
    if array.data.is_empty() {
        return Err(Failure(
            EXIT_USAGE,
            format!("{input_name}: the array {:?} has no elements", array.shape),
        ));
    }
    let bad = array.data.iter().filter(|v| !v.is_finite()).count();
    if bad > 0 {
        let first = array.data.iter().position(|v| !v.is_finite()).unwrap_or(0);
        return Err(Failure(
            EXIT_USAGE,
            format!(
                "{}: {bad} of the input's {} values {} NaN or infinite{} (the first at flat \
                 index {first}); the model's output would be meaningless",
                input_name,
                array.data.len(),
                if bad == 1 { "is" } else { "are" },
                if array
                    .converted_from
                    .as_deref()
                    .is_some_and(|t| t.contains("float64"))
                {
                    " in float32 (a float64 beyond ±3.4e38 becomes infinite)"
                } else {
                    ""
                }
            ),
        ));
    }
    let rt = Runtime::get()?;
    let mut session = open_session(rt, &bytes, a.device.into(), &a.model)?;
    let spec = single_input(&session)?;
    // The first output is what is shown and written to `--output`: it must be one that can
    // be written.
    if let Some(out) = session
        .outputs()
        .first()
        .filter(|o| !o.element.has_npy_form())
    {
        return Err(Failure(
            EXIT_USAGE,
            format!(
                "the model's first output `{}` is {}; cnnc run writes tensors of the numeric \
                 and bool types NumPy has (float16 and bfloat16 aside)",
                out.name, out.element
            ),
        ));
    }
    spec.check_shape(&array.shape)
        .map_err(|e| Failure(EXIT_USAGE, format!("{input_name}: {e}")))?;
    // A model `cnnc train` wrote takes pixels divided by 255 (its `cnnc_input` says so):
    // raw pixels, PyTorch users' usual slip, give confident nonsense.
    let scaled = cnnc::onnx::metadata_value(&bytes, "cnnc_input")
        .is_some_and(|note| note.contains("divided by 255"));
    let largest = array.data.iter().fold(0f32, |m, v| m.max(*v));
    if scaled && largest > 2.0 {
        note!(
            "warning: the input's values reach {largest}, but this model was trained on pixels \
             divided by 255, from 0 to 1 (its `cnnc_input` metadata): divide the images by 255 \
             first (`x / 255`)"
        );
    }
    // Every output that can be written (the first is one); the others are named below.
    let (written, others): (Vec<_>, Vec<_>) = session
        .outputs()
        .iter()
        .partition(|o| o.element.has_npy_form());
    let names: Vec<String> = written.iter().map(|o| o.name.clone()).collect();
    let left_out: Vec<String> = others
        .iter()
        .map(|o| format!("`{}` ({})", o.name, o.element))
        .collect();
    // Beside `--output`, one file per other output; checked before anything runs.
    // Not beside a device or standard output (`-o /dev/stdout > y.npy` included).
    let beside: Vec<PathBuf> = match &a.output {
        Some(path)
            if names.len() > 1
                && !cnnc::fsutil::is_special(path)
                && !super::common::is_stdout(path) =>
        {
            let mut files = Vec::new();
            // Each file once: two names made file-safe alike (`a/b`, `a_b`), or a link
            // from one file to another, would write one over the other.
            let mut taken: HashMap<PathBuf, &str> = HashMap::new();
            let file_key =
                |p: &Path| super::common::same_file_key(p).unwrap_or_else(|| p.to_path_buf());
            taken.insert(file_key(path), &names[0]);
            for name in &names[1..] {
                let file = output_beside(path, name);
                check_output_path(
                    &file,
                    None,
                    &[("the model", &a.model), ("the input", &a.input)],
                )
                .and_then(|()| super::common::check_replaces_only_an_array(&file))
                .map_err(|e| {
                    Failure(
                        EXIT_USAGE,
                        format!(
                            "{e}\n  (the output `{name}` goes beside {}, named after it and \
                             the output: choose another -o)",
                            path.display()
                        ),
                    )
                })?;
                if let Some(other) = taken.insert(file_key(&file), name) {
                    return Err(Failure(
                        EXIT_USAGE,
                        format!(
                            "the outputs `{other}` and `{name}` would both be written to {} \
                             (beside {}, named after the output, made file-safe): rename one \
                             of them in the model, or run without -o",
                            file.display(),
                            path.display()
                        ),
                    ));
                }
                files.push(file);
            }
            files
        }
        _ => Vec::new(),
    };
    let input_spec = spec.name.clone();
    let selected: Vec<&str> = names.iter().map(String::as_str).collect();
    let results = session
        .run_selected(
            &[runtime::Input::f32(&input_spec, &array.shape, &array.data)],
            &selected,
        )
        .map_err(|e| with_size_step_hint(e, &bytes, &array.shape))?;
    let mut results = results.into_iter();
    let first = results.next().expect("one output per name asked");
    let rest: Vec<runtime::Output> = results.collect();
    for (name, v) in std::iter::once(&first)
        .chain(&rest)
        .filter_map(|o| o.as_f32().map(|v| (&o.name, v)))
    {
        let bad = v.iter().filter(|v| !v.is_finite()).count();
        if bad > 0 {
            note!(
                "warning: {bad} of output `{name}`'s {} values {} NaN or infinite: the model \
                 computes them from this finite input (its weights, or an operator such as a \
                 division by zero)",
                v.len(),
                if bad == 1 { "is" } else { "are" }
            );
        }
    }

    let mut out = String::new();
    if is_source(&a.model) {
        out.push_str(
            "weights random (PyTorch's default initialisation, seed 0), not trained: for real \
             predictions run an .onnx from `cnnc train` or `cnnc export --weights`\n",
        );
    }
    out.push_str(&format!(
        "input  {}: {:?} float32{}\n",
        a.input.display(),
        array.shape,
        array
            .converted_from
            .as_ref()
            .map(|t| format!(" (converted from {t})"))
            .unwrap_or_default()
    ));
    for o in std::iter::once(&first).chain(rest.iter().take(SHOWN_OUTPUTS)) {
        out.push_str(&format!(
            "output `{}`: {:?}{}\n",
            o.name,
            o.shape,
            type_note(o)
        ));
    }
    if rest.len() > SHOWN_OUTPUTS {
        out.push_str(&format!(
            "and {} more outputs\n",
            cnnc::shape::summary::group((rest.len() - SHOWN_OUTPUTS) as u64)
        ));
    }
    if !left_out.is_empty() {
        out.push_str(&format!(
            "the model's outputs that cnnc cannot write are left out: {}\n",
            left_out.join(", ")
        ));
    }
    // Class scores are a linear layer's logits, or their softmax: an output that comes out
    // of an activation (a decoder's relu, a sigmoid's probabilities per label) is no one's.
    let activated = cnnc::onnx::first_output_op(&bytes).is_some_and(|op| {
        matches!(
            op.as_str(),
            "Relu"
                | "Sigmoid"
                | "Tanh"
                | "Clip"
                | "Elu"
                | "LeakyRelu"
                | "PRelu"
                | "HardSigmoid"
                | "HardSwish"
                | "Softplus"
                | "Mish"
                | "Gelu"
        )
    });
    if let (&[n, k], Some(values)) = (&first.shape[..], first.as_f32()) {
        if k >= 2 && n >= 1 && !activated {
            out.push_str(&top_classes(values, n, k, 5, 5));
        }
    }
    // Not `print!`: a reader that went away must not stop the `--output` file below.
    super::common::results_to_stderr_if_output_is_stdout(a.output.as_deref());
    super::common::stdout_text(out);
    if let Some(path) = &a.output {
        // Until now a signal ends the run as its default does (nothing is written yet); from
        // here it stops the write and removes its temporary files.
        super::common::install_sigint(super::common::OnSigint::CancelWrites);
        let arrays = std::iter::once((path.as_path(), &first)).chain(
            rest.iter()
                .zip(&beside)
                .map(|(output, file)| (file.as_path(), output)),
        );
        write_arrays(arrays)?;
        super::common::stdout_line(format!("wrote {}", path.display()));
        for (o, file) in rest.iter().zip(&beside).take(SHOWN_OUTPUTS) {
            super::common::stdout_line(format!("wrote {} (output `{}`)", file.display(), o.name));
        }
        if beside.len() > SHOWN_OUTPUTS {
            super::common::stdout_line(format!(
                "wrote {} more files beside {}, one per output",
                cnnc::shape::summary::group((beside.len() - SHOWN_OUTPUTS) as u64),
                path.display()
            ));
        }
        if beside.is_empty() && !rest.is_empty() {
            let what = if super::common::is_stdout(path) || path == Path::new("/dev/stdout") {
                "standard output, which holds one array"
            } else {
                "a device or pipe, not a file"
            };
            let mut names: Vec<String> = rest
                .iter()
                .take(SHOWN_OUTPUTS)
                .map(|o| format!("`{}`", o.name))
                .collect();
            if rest.len() > SHOWN_OUTPUTS {
                names.push(format!("{} more", rest.len() - SHOWN_OUTPUTS));
            }
            note!(
                "note: {} is {what}, so the other outputs ({}) are not written; give a file \
                 name to have them written beside it",
                path.display(),
                names.join(", ")
            );
        }
    }
    Ok(())
}

/// ` int64` after an output's shape where it is not float32, as a cnnc model's are.
fn type_note(output: &runtime::Output) -> String {
    match output.data.element() {
        runtime::ElementType::F32 => String::new(),
        other => format!(" {other}"),
    }
}

/// `e`, a failure of ONNX Runtime running the model `bytes` on an input of `shape`, with a
/// help where the model was exported with `--dynamic-size` (its `cnnc_size_step` metadata)
/// and the input's height and width are sizes its downsampling does not divide: a U-Net's
/// concat of a skip and an upsampled tensor then meets tensors a pixel apart.
fn with_size_step_hint(e: RuntimeError, bytes: &[u8], shape: &[usize]) -> Failure {
    let failure = Failure::from(e);
    let hxw = |text: String| -> Option<[usize; 2]> {
        let (h, w) = text.split_once('x')?;
        Some([h.parse().ok()?, w.parse().ok()?])
    };
    let hint = (|| {
        let step = hxw(cnnc::onnx::metadata_value(bytes, "cnnc_size_step")?)?;
        let declared_size = cnnc::onnx::metadata_value(bytes, "cnnc_declared_size")?;
        let checked = hxw(declared_size.clone());
        let declared = declared_size.replace('x', "×");
        let [h, w] = shape.get(shape.len().checked_sub(2)?..)? else {
            return None;
        };
        let (h, w) = (*h, *w);
        if step.contains(&0) || (h % step[0] == 0 && w % step[1] == 0) {
            return None;
        }
        let nearest = |n: usize, s: usize| (n.saturating_add(s / 2) / s).max(1) * s;
        // A join (a concat, a residual's sum, a gate's product) meets tensors a pixel
        // apart; any other layer was left too small for its window.
        let joins = [
            "the Concat node",
            "the Add node",
            "the Mul node",
            "the Sum node",
        ]
        .iter()
        .any(|op| failure.1.contains(op));
        let what = if joins {
            "the tensors a layer joins (a skip and an upsampled tensor) can differ by a pixel"
        } else {
            "a layer's input can come out smaller than its window, or of a size the layers \
             after it do not expect"
        };
        let near = [nearest(h, step[0]), nearest(w, step[1])];
        // Below the size it was checked at, a size the steps divide may still leave a
        // window too large; from it up, none does.
        let below = checked.is_some_and(|c| near[0] < c[0] || near[1] < c[1]);
        Some(format!(
            "the model was exported with --dynamic-size (and checked at {declared}); it \
             downsamples by {}×{} in all, and at {h}×{w}, which that does not divide, {what}: \
             try {}×{}{}",
            step[0],
            step[1],
            near[0],
            near[1],
            if below {
                format!(
                    ", or a size from {declared} up that {}×{} divides",
                    step[0], step[1]
                )
            } else {
                String::new()
            }
        ))
    })();
    match hint {
        Some(hint) if failure.0 == EXIT_RUNTIME => Failure::with_help(failure.0, failure.1, hint),
        _ => failure,
    }
}

/// How many outputs besides the first `run` names one by one.
const SHOWN_OUTPUTS: usize = 16;

/// Writes each output to its path as a .npy file of its type: all of them put in place
/// together, or none (each staged in a temporary file first).
fn write_arrays<'a>(
    arrays: impl IntoIterator<Item = (&'a Path, &'a runtime::Output)>,
) -> Result<(), Failure> {
    let failure = |what: String, e: std::io::Error| {
        if cnnc::fsutil::CANCEL.load(std::sync::atomic::Ordering::SeqCst) {
            Failure(
                super::common::EXIT_INTERRUPTED,
                format!(
                    "stopped by {}: {what} was not written",
                    cnnc::fsutil::stopped_by()
                ),
            )
        } else {
            Failure(EXIT_USAGE, format!("cannot write {what}: {e}"))
        }
    };
    let mut staged = Vec::new();
    let mut paths = Vec::new();
    for (path, output) in arrays {
        let mut buf = Vec::new();
        let (descr, body) = output.data.npy_body();
        npy::write_body(&mut buf, &output.shape, descr, &body)
            .map_err(|e| Failure(EXIT_USAGE, format!("cannot encode {}: {e}", path.display())))?;
        let s = cnnc::fsutil::stage_with(path, |out| std::io::Write::write_all(out, &buf))
            .map_err(|e| failure(path.display().to_string(), e))?;
        staged.push(s);
        paths.push(path);
    }
    cnnc::fsutil::commit(staged).map_err(|e| {
        let what = match &paths[..] {
            [one] => one.display().to_string(),
            many => format!("the {} output files", many.len()),
        };
        failure(what, e)
    })
}

/// Where `run -o OUT.npy` writes the output `name`: `OUT.<name>.npy` beside it, the name's
/// characters other than letters, digits, `_`, `-` and `.` made `_` (an ONNX name may
/// hold a `/`).
fn output_beside(path: &Path, name: &str) -> PathBuf {
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let safe: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect();
    path.with_file_name(format!("{stem}.{safe}.npy"))
}

/// Each row's probabilities: the row itself when it already is a distribution (a model ending
/// in softmax), else its softmax.
fn probabilities(row: &[f32]) -> Vec<f32> {
    let sum: f32 = row.iter().sum();
    if row.iter().all(|&v| (0.0..=1.0).contains(&v)) && (sum - 1.0).abs() < 1e-3 {
        return row.to_vec();
    }
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exps: Vec<f32> = row.iter().map(|&v| (v - max).exp()).collect();
    let total: f32 = exps.iter().sum();
    exps.iter().map(|e| e / total).collect()
}

/// `sample 0: 3 (0.912)  8 (0.051) …` for the first `samples` rows of an `[n, k]` output.
fn top_classes(values: &[f32], n: usize, k: usize, top: usize, samples: usize) -> String {
    let mut out = format!("top {} classes (softmax probability):\n", top.min(k));
    for (i, row) in values.chunks_exact(k).take(samples).enumerate() {
        let p = probabilities(row);
        let mut order: Vec<usize> = (0..k).collect();
        order.sort_by(|&x, &y| p[y].total_cmp(&p[x]).then(x.cmp(&y)));
        let items: Vec<String> = order
            .iter()
            .take(top)
            .map(|&c| format!("{c} ({:.3})", p[c]))
            .collect();
        out.push_str(&format!("  sample {i}: {}\n", items.join("  ")));
    }
    if n > samples {
        out.push_str(&format!("  … {} more samples\n", n - samples));
    }
    out
}

/// Latency statistics of the timed runs, in milliseconds.
#[derive(Debug, Clone, PartialEq)]
struct Stats {
    p50_ms: f64,
    p99_ms: f64,
    mean_ms: f64,
    total_s: f64,
}

/// The latencies of a bench's timed runs in bounded memory: their count and sum, and every
/// one up to [`Latencies::KEPT`], beyond which a uniform sample of that many (reservoir
/// sampling) stands for them in the percentiles, so that `--seconds 3600` on a fast model
/// (a billion runs) needs 8 MiB, not 8 GiB.
struct Latencies {
    count: usize,
    total_ms: f64,
    kept_ms: Vec<f64>,
    rng: rand_chacha::ChaCha8Rng,
}

impl Latencies {
    const KEPT: usize = 1 << 20;

    fn new() -> Latencies {
        use rand::SeedableRng;
        Latencies {
            count: 0,
            total_ms: 0.0,
            kept_ms: Vec::new(),
            rng: rand_chacha::ChaCha8Rng::seed_from_u64(0),
        }
    }

    fn push(&mut self, d: Duration) {
        use rand::Rng;
        let ms = d.as_secs_f64() * 1e3;
        self.total_ms += ms;
        if self.kept_ms.len() < Self::KEPT {
            self.kept_ms.push(ms);
        } else {
            let j = self.rng.random_range(0..=self.count);
            if let Some(slot) = self.kept_ms.get_mut(j) {
                *slot = ms;
            }
        }
        self.count += 1;
    }

    fn len(&self) -> usize {
        self.count
    }

    /// Nearest-rank percentiles (the smallest sample with at least p% of samples at or below
    /// it), of every run or of the uniform sample.
    fn stats(&self) -> Stats {
        let mut ms = self.kept_ms.clone();
        ms.sort_by(f64::total_cmp);
        let rank = |p: f64| {
            let r = ((p / 100.0) * ms.len() as f64).ceil() as usize;
            ms[r.clamp(1, ms.len()) - 1]
        };
        Stats {
            p50_ms: rank(50.0),
            p99_ms: rank(99.0),
            mean_ms: self.total_ms / self.count as f64,
            total_s: self.total_ms / 1e3,
        }
    }
}

/// A batch of uniform random values of `shape`, or a clear refusal when it cannot even be
/// allocated (a `--batch` far beyond the machine's memory).
fn random_input(
    shape: &[usize],
    sized: bool,
    rng: &mut impl rand::Rng,
) -> Result<Vec<f32>, Failure> {
    let batch = shape.first().copied().unwrap_or(1);
    let too_large = |bytes: Option<u64>| {
        let size = match bytes {
            Some(b) => cnnc::shape::summary::bytes(b),
            None => format!("more than {}", cnnc::shape::summary::bytes(u64::MAX)),
        };
        Failure(
            EXIT_USAGE,
            format!(
                "a batch of {batch} needs {size} for its input alone, more than this machine \
                 can allocate; {}",
                match (sized, batch) {
                    (true, 1) => "use a smaller --size",
                    (true, _) => "use a smaller --batch or --size",
                    (false, 1) =>
                        "the model fixes the rest of the input's shape, so it cannot \
                                   be benchmarked on this machine",
                    (false, _) => "use a smaller --batch",
                }
            ),
        )
    };
    let count = shape
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or_else(|| too_large(None))?;
    let bytes = (count as u64).checked_mul(4);
    let mut input: Vec<f32> = Vec::new();
    cnnc::oom::try_reserve_exact(&mut input, count).map_err(|_| too_large(bytes))?;
    input.extend((0..count).map(|_| rng.random::<f32>()));
    Ok(input)
}

/// The concrete input shape for `bench`: the batch dimension set, every other one fixed, or
/// the height and width open and given by `size`.
fn bench_shape(
    spec: &runtime::TensorSpec,
    batch: Option<usize>,
    size: Option<[usize; 2]>,
) -> Result<Vec<usize>, Failure> {
    if !spec.shape_declared {
        return Err(Failure::with_help(
            EXIT_USAGE,
            format!(
                "the model's input `{}` declares no shape, so bench cannot tell what to feed it",
                spec.name
            ),
            "declare one in the model (its graph input's `type.tensor_type.shape`; cnnc's own \
             exports always do); `cnnc run` feeds it an array of any shape",
        ));
    }
    let dims = runtime::format_dims(&spec.shape);
    let open_size = matches!(
        &spec.shape[..],
        [_, _, runtime::Dim::Symbolic(_), runtime::Dim::Symbolic(_)]
    );
    if size.is_some() && !open_size {
        return Err(Failure(
            EXIT_USAGE,
            format!(
                "the model's input is {dims}: --size is for a model whose height and width are \
                 open (`cnnc export --dynamic-size`)"
            ),
        ));
    }
    if spec.shape.is_empty() && batch.is_some() {
        return Err(Failure(
            EXIT_USAGE,
            "the model's input is a scalar: it has no batch dimension for --batch".into(),
        ));
    }
    let mut shape = Vec::with_capacity(spec.shape.len());
    for (i, d) in spec.shape.iter().enumerate() {
        match (i, d) {
            (0, runtime::Dim::Symbolic(_)) => shape.push(batch.unwrap_or(1)),
            (0, runtime::Dim::Fixed(n)) => match batch {
                Some(b) if b != *n => {
                    return Err(Failure(
                        EXIT_USAGE,
                        format!(
                            "the model's input is {dims}, its batch size is fixed at {n}, not {b}"
                        ),
                    ))
                }
                _ => shape.push(*n),
            },
            (_, runtime::Dim::Fixed(n)) => shape.push(*n),
            (2 | 3, runtime::Dim::Symbolic(_)) if open_size => match size {
                Some(hw) => shape.push(hw[i - 2]),
                None => {
                    return Err(Failure(
                        EXIT_USAGE,
                        format!(
                            "the model's input is {dims}, its height and width open: give them \
                             with --size HxW, e.g. --size 224x224"
                        ),
                    ))
                }
            },
            (_, runtime::Dim::Symbolic(_)) => {
                return Err(Failure(
                    EXIT_USAGE,
                    format!(
                        "the model's input is {dims}; bench needs every dimension but the batch \
                         fixed"
                    ),
                ))
            }
        }
    }
    if shape.first() == Some(&0) {
        // --batch is at least 1 (its parser says so): a 0 here is the model's own.
        return Err(Failure(
            EXIT_USAGE,
            format!("the model's input is {dims}: its batch is fixed at 0, which cannot be timed"),
        ));
    }
    if shape.contains(&0) {
        return Err(Failure(
            EXIT_USAGE,
            format!("the model's input is {dims}: an input with no elements cannot be timed"),
        ));
    }
    Ok(shape)
}

/// `--seconds` as the argument parser reads it: a positive, finite time.
fn seconds_arg(s: &str) -> Result<Duration, String> {
    let seconds: f64 = s.parse().map_err(|_| format!("`{s}` is not a number"))?;
    if !(seconds.is_finite() && seconds > 0.0) {
        return Err("must be a positive, finite number of seconds".into());
    }
    Duration::try_from_secs_f64(seconds)
        .map_err(|_| "too large; give a number of seconds such as 10".into())
}

/// Measures and reports; `Ok(true)` when Ctrl-C ended the measurement early (the runs so far
/// are reported).
fn bench_inner(a: &BenchArgs) -> Result<bool, Failure> {
    let budget = a.seconds.unwrap_or(Duration::from_secs(3));
    let bytes = model_bytes(&a.model, a.model_name.as_deref(), "bench")?;
    let rt = Runtime::get()?;
    let device: Device = a.device.into();
    let mut session = open_session(rt, &bytes, device, &a.model)?;
    let spec = single_input(&session)?;
    let shape = bench_shape(spec, a.batch, a.size)?;
    let batch = shape.first().copied().unwrap_or(1);

    use rand::SeedableRng;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
    let input = random_input(&shape, a.size.is_some(), &mut rng)?;

    note!(
        "measuring: {} warm-up run(s), then {} (Ctrl-C stops early and reports the runs so far)",
        a.warmup,
        match a.iterations {
            Some(n) => format!("{n} timed run(s)"),
            None => format!("timed runs for {:.1} s", budget.as_secs_f64()),
        }
    );
    // From here Ctrl-C ends the measurement after the current run (at least one is timed).
    super::common::install_sigint(super::common::OnSigint::StopMeasuring);
    let stop = &super::common::STOP_AFTER_STEP;
    // Ctrl-C during the warm-up ends it too: one timed run follows, and the report says how
    // many warm-up runs there were.
    let mut warmed = 0;
    while warmed < a.warmup && !stop.load(std::sync::atomic::Ordering::SeqCst) {
        session
            .run_unread(&input, &shape)
            .map_err(|e| with_size_step_hint(e, &bytes, &shape))?;
        warmed += 1;
    }
    let mut latencies = Latencies::new();
    let started = Instant::now();
    loop {
        let t = Instant::now();
        session
            .run_unread(&input, &shape)
            .map_err(|e| with_size_step_hint(e, &bytes, &shape))?;
        latencies.push(t.elapsed());
        let done = match a.iterations {
            Some(n) => latencies.len() >= n,
            None => started.elapsed() >= budget,
        };
        if done || stop.load(std::sync::atomic::Ordering::SeqCst) {
            break;
        }
    }
    let interrupted = stop.load(std::sync::atomic::Ordering::SeqCst);
    let s = latencies.stats();
    let images_per_sec = (batch * latencies.len()) as f64 / s.total_s;
    let peak = super::common::peak_memory();
    match a.format {
        Format::Json => {
            let json = serde_json::json!({
                "model": a.model.display().to_string(),
                "device": device.to_string(),
                "batch": batch,
                "input": shape,
                "iterations": latencies.len(),
                "warmup": warmed,
                "images_per_sec": images_per_sec,
                "p50_ms": s.p50_ms,
                "p99_ms": s.p99_ms,
                "mean_ms": s.mean_ms,
                "onnxruntime": rt.version(),
                "peak_memory_bytes": peak,
                "interrupted": interrupted,
            });
            outln!("{json}");
        }
        Format::Text => {
            outln!("model       {}", a.model.display());
            outln!(
                "device      {device} (ONNX Runtime {})",
                rt.version().unwrap_or("of unknown version")
            );
            outln!("input       {shape:?}");
            outln!("iterations  {} (after {warmed} warm-up)", latencies.len(),);
            outln!("throughput  {images_per_sec:.1} images/s");
            outln!(
                "latency     p50 {:.3} ms, p99 {:.3} ms, mean {:.3} ms",
                s.p50_ms,
                s.p99_ms,
                s.mean_ms
            );
            if let Some(peak) = peak {
                outln!(
                    "memory      peak {} resident (the whole process: ONNX Runtime, the \
                     weights, the buffers)",
                    cnnc::shape::summary::bytes(peak)
                );
            }
        }
    }
    if interrupted {
        note!(
            "stopped by {} after {} timed run(s): the numbers are of those",
            cnnc::fsutil::stopped_by(),
            latencies.len()
        );
    }
    Ok(interrupted)
}

/// One check of `doctor`: ok, or why not.
fn probe(rt: &Runtime, device: Device) -> Result<(), RuntimeError> {
    let mut session = rt.session(&runtime::tiny_model(), device)?;
    let (shape, y) = session.run_f32(&[-1.0, 0.0, 2.0, -3.0], &[1, 4])?;
    if shape != [1, 4] || y != [0.0, 0.0, 2.0, 0.0] {
        return Err(RuntimeError::Ort {
            context: format!("checking Relu on {device}"),
            message: format!("got {y:?} of shape {shape:?}, expected [0, 0, 2, 0]"),
        });
    }
    Ok(())
}

pub fn doctor(a: DoctorArgs) -> ExitCode {
    let rt = Runtime::get();
    let located = match &rt {
        Ok(rt) => Ok(rt.library().clone()),
        Err(_) => runtime::locate(),
    };
    let (providers, cpu, cuda) = match &rt {
        Ok(rt) => (
            rt.available_providers(),
            probe(rt, Device::Cpu),
            probe(rt, Device::Cuda),
        ),
        Err(e) => (Err(e.clone()), Err(e.clone()), Err(e.clone())),
    };
    let version = rt.as_ref().ok().and_then(|r| r.version());
    let code = if cpu.is_ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_RUNTIME)
    };
    let err_text = |r: &Result<(), RuntimeError>| r.as_ref().err().map(|e| e.to_string());
    match a.format {
        Format::Json => {
            let json = serde_json::json!({
                "library": located.as_ref().ok().map(|l: &Library| l.path.display().to_string()),
                "found_by": located.as_ref().ok().map(|l| l.found_by.to_string()),
                "load_error": rt.as_ref().err().map(|e| e.to_string()),
                "version": version,
                "providers": providers.as_ref().ok(),
                "cpu": { "ok": cpu.is_ok(), "error": err_text(&cpu) },
                "cuda": { "ok": cuda.is_ok(), "error": err_text(&cuda) },
            });
            outln!("{json}");
        }
        Format::Text => {
            match &located {
                Ok(l) => {
                    outln!("library    {}", l.path.display());
                    outln!("found by   {}", l.found_by);
                }
                // The reason follows once, as the error below.
                Err(_) => outln!("library    not found (see the error below)"),
            }
            // The reason follows once, as the error below.
            if let (Err(_), Ok(_)) = (&rt, &located) {
                outln!("load       failed (see the error below)");
            }
            if let Ok(rt) = &rt {
                outln!("version    {}", version.unwrap_or("unknown"));
                outln!("build      {}", rt.build_info().trim());
            }
            match &providers {
                Ok(list) => outln!("providers  {}", list.join(", ")),
                Err(_) if rt.is_err() => {}
                Err(e) => outln!("providers  unknown: {e}"),
            }
            let line = |name: &str, provider: &str, r: &Result<(), RuntimeError>| match r {
                Ok(()) => outln!("{name:<10} ok ({provider} ran a one-node model)"),
                Err(RuntimeError::CudaUnavailable { reason }) => {
                    outln!("{name:<10} unavailable: {reason}")
                }
                Err(e) => outln!("{name:<10} unavailable: {e}"),
            };
            if rt.is_ok() {
                line("cpu", CPU_PROVIDER, &cpu);
                line("cuda", CUDA_PROVIDER, &cuda);
            }
        }
    }
    match (&rt, &cpu) {
        (Err(e), _) => note!("error: {e}"),
        (Ok(_), Err(e)) => note!("error: ONNX Runtime does not work on the CPU: {e}"),
        _ => {}
    }
    code
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn softmax_or_passthrough() {
        let p = probabilities(&[0.0, 0.0]);
        assert!((p[0] - 0.5).abs() < 1e-6);
        assert_eq!(probabilities(&[0.25, 0.75]), vec![0.25, 0.75]);
    }

    fn latencies(ms: impl IntoIterator<Item = u64>) -> Latencies {
        let mut l = Latencies::new();
        for m in ms {
            l.push(Duration::from_micros(m));
        }
        l
    }

    #[test]
    fn nearest_rank_percentiles() {
        let s = latencies((1..=100).map(|m| m * 1000)).stats();
        assert_eq!((s.p50_ms, s.p99_ms), (50.0, 99.0));
        assert!((s.mean_ms - 50.5).abs() < 1e-9);
        let one = latencies([4000]).stats();
        assert_eq!((one.p50_ms, one.p99_ms), (4.0, 4.0));
    }

    /// Past the runs kept, a uniform sample stands for them: memory stays bounded, the mean
    /// is still every run's, and the percentiles stay close.
    #[test]
    fn many_runs_keep_a_bounded_uniform_sample() {
        // 3·KEPT runs, each a microsecond slower than the one before: keeping only the
        // first KEPT would put the median at a sixth of the range, not a half.
        let n = 3 * Latencies::KEPT as u64;
        let l = latencies(1..=n);
        assert_eq!(l.len() as u64, n);
        assert_eq!(l.kept_ms.len(), Latencies::KEPT);
        let s = l.stats();
        let all_ms = n as f64 / 1e3;
        assert!(
            (s.mean_ms - (n + 1) as f64 / 2e3).abs() < 1e-6,
            "{}",
            s.mean_ms
        );
        assert!((s.p50_ms / all_ms - 0.5).abs() < 0.01, "{}", s.p50_ms);
        assert!((s.p99_ms / all_ms - 0.99).abs() < 0.01, "{}", s.p99_ms);
    }
}

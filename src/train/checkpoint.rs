//! Checkpoints: parameters and optimizer state as f32 tensors in a safetensors file, with the
//! training position and provenance as strings in its `__metadata__` map.
//!
//! Metadata keys: `format` (= [`FORMAT`]), `format_version`, `cnnc_version`, `epoch`, `step`,
//! `rng_seed`, `model_name`, `source_sha256`, `optimizer` (JSON). Tensor names are free;
//! the trainer uses `param.<node>` and `opt.<slot>.<node>`. Any safetensors reader (Python's
//! `safetensors.torch.load_file`) can open a checkpoint.
//!
//! A save never leaves a half-written checkpoint behind: it writes a temporary file in the
//! target's directory, fsyncs it, renames it over the target and fsyncs the directory.

use safetensors::tensor::{Dtype, SafeTensors, View};
use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

/// The value of the `format` metadata key.
pub const FORMAT: &str = "cnnc-checkpoint";
/// The layout version this code writes and reads.
pub const FORMAT_VERSION: u32 = 1;

/// Training state: everything needed to resume.
#[derive(Clone, Debug, PartialEq)]
pub struct Checkpoint {
    /// name → (shape, row-major data); parameters and optimizer state.
    pub tensors: BTreeMap<String, (Vec<usize>, Vec<f32>)>,
    /// Epochs completed.
    pub epoch: u32,
    /// Optimizer steps taken.
    pub step: u64,
    /// The run's seed; with the epoch it fixes the data order (see `data::shuffle`).
    pub rng_seed: u64,
    pub model_name: String,
    /// SHA-256 (lowercase hex) of the `.cnn` source the model was compiled from.
    pub source_sha256: String,
    /// The optimizer's configuration (kind, learning rate, momentum, …).
    pub optimizer: serde_json::Value,
}

/// Why a checkpoint could not be written or read.
#[derive(Debug)]
pub enum CheckpointError {
    Io {
        path: PathBuf,
        source: io::Error,
    },
    /// The file is not a safetensors file, or not one written by cnnc.
    NotACheckpoint {
        path: PathBuf,
        reason: String,
    },
    /// Written by a newer cnnc.
    UnsupportedVersion {
        path: PathBuf,
        version: String,
    },
    /// A metadata entry or a tensor is missing or malformed.
    Invalid {
        path: PathBuf,
        message: String,
    },
    /// A tensor's data does not fill its shape (on save).
    BadTensor {
        name: String,
        shape: Vec<usize>,
        len: usize,
    },
    /// The checkpoint belongs to another model, or to another version of its source.
    ModelMismatch {
        path: PathBuf,
        expected_model: String,
        found_model: String,
        source_changed: bool,
    },
}

impl CheckpointError {
    /// What the user can do about it, when something is known.
    pub fn help(&self) -> Option<String> {
        match self {
            CheckpointError::ModelMismatch { source_changed: true, .. } => Some(
                "the .cnn file changed since the checkpoint was written: restore the old \
                 source, or start training afresh without --resume"
                    .to_string(),
            ),
            CheckpointError::ModelMismatch { .. } => Some(
                "pass the .cnn file the checkpoint was trained from, or start afresh without --resume"
                    .to_string(),
            ),
            CheckpointError::UnsupportedVersion { .. } => {
                Some("load it with the cnnc version that wrote it (see its `cnnc_version` metadata)".to_string())
            }
            _ => None,
        }
    }
}

impl fmt::Display for CheckpointError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CheckpointError::Io { path, source } => write!(f, "{}: {source}", path.display()),
            CheckpointError::NotACheckpoint { path, reason } => {
                write!(f, "{}: not a cnnc checkpoint ({reason})", path.display())
            }
            CheckpointError::UnsupportedVersion { path, version } => write!(
                f,
                "{}: checkpoint format version {version} is not supported (this cnnc reads {FORMAT_VERSION})",
                path.display()
            ),
            CheckpointError::Invalid { path, message } => {
                write!(f, "{}: invalid checkpoint: {message}", path.display())
            }
            CheckpointError::BadTensor { name, shape, len } => write!(
                f,
                "tensor `{name}` has shape {shape:?} but {len} values"
            ),
            CheckpointError::ModelMismatch { path, expected_model, found_model, source_changed } => {
                if *source_changed {
                    write!(
                        f,
                        "{}: checkpoint of model `{found_model}` was trained from a different version of its source",
                        path.display()
                    )
                } else {
                    write!(
                        f,
                        "{}: checkpoint is of model `{found_model}`, not `{expected_model}`",
                        path.display()
                    )
                }
            }
        }
    }
}

impl std::error::Error for CheckpointError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            CheckpointError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// A tensor to serialize; its bytes are produced one tensor at a time as the file is written.
struct F32View<'a> {
    shape: &'a [usize],
    data: &'a [f32],
}

impl View for F32View<'_> {
    fn dtype(&self) -> Dtype {
        Dtype::F32
    }

    fn shape(&self) -> &[usize] {
        self.shape
    }

    fn data(&self) -> Cow<'_, [u8]> {
        Cow::Owned(self.data.iter().flat_map(|x| x.to_le_bytes()).collect())
    }

    fn data_len(&self) -> usize {
        self.data.len() * 4
    }
}

impl Checkpoint {
    /// The metadata map written into the file.
    fn metadata(&self) -> HashMap<String, String> {
        let mut m = HashMap::new();
        m.insert("format".to_string(), FORMAT.to_string());
        m.insert("format_version".to_string(), FORMAT_VERSION.to_string());
        m.insert("cnnc_version".to_string(), crate::VERSION.to_string());
        m.insert("epoch".to_string(), self.epoch.to_string());
        m.insert("step".to_string(), self.step.to_string());
        m.insert("rng_seed".to_string(), self.rng_seed.to_string());
        m.insert("model_name".to_string(), self.model_name.clone());
        m.insert("source_sha256".to_string(), self.source_sha256.clone());
        m.insert("optimizer".to_string(), self.optimizer.to_string());
        m
    }

    /// Writes the checkpoint to `path` atomically: after a crash the file holds either the old
    /// checkpoint or the new one, and no temporary file is left after a successful save.
    pub fn save(&self, path: &Path) -> Result<(), CheckpointError> {
        for (name, (shape, data)) in &self.tensors {
            if shape.iter().product::<usize>() != data.len() {
                return Err(CheckpointError::BadTensor {
                    name: name.clone(),
                    shape: shape.clone(),
                    len: data.len(),
                });
            }
        }
        let io_err = |source| CheckpointError::Io {
            path: path.to_path_buf(),
            source,
        };
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let file_name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        // Closed right away: safetensors writes the file by path, then we reopen it to fsync.
        let tmp = tempfile::Builder::new()
            .prefix(&format!(".{file_name}."))
            .suffix(".tmp")
            .tempfile_in(&dir)
            .map_err(io_err)?
            .into_temp_path();
        let views = self
            .tensors
            .iter()
            .map(|(name, (shape, data))| (name.as_str(), F32View { shape, data }));
        safetensors::serialize_to_file(views, Some(self.metadata()), &tmp).map_err(|e| {
            CheckpointError::Io {
                path: path.to_path_buf(),
                source: io::Error::other(e.to_string()),
            }
        })?;
        std::fs::File::open(&tmp)
            .and_then(|f| f.sync_all())
            .map_err(io_err)?;
        crate::fsutil::give_output_mode(&tmp, path).map_err(io_err)?;
        tmp.persist(path).map_err(|e| io_err(e.error))?;
        // Make the rename itself durable. Directories cannot be opened for syncing everywhere.
        #[cfg(unix)]
        std::fs::File::open(&dir)
            .and_then(|d| d.sync_all())
            .map_err(io_err)?;
        Ok(())
    }

    /// Reads and validates a checkpoint written by [`Checkpoint::save`].
    pub fn load(path: &Path) -> Result<Checkpoint, CheckpointError> {
        let bytes = std::fs::read(path).map_err(|source| CheckpointError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let not_ckpt = |reason: String| CheckpointError::NotACheckpoint {
            path: path.to_path_buf(),
            reason,
        };
        let invalid = |message: String| CheckpointError::Invalid {
            path: path.to_path_buf(),
            message,
        };
        let (_, header) = SafeTensors::read_metadata(&bytes)
            .map_err(|e| not_ckpt(format!("not a safetensors file: {e}")))?;
        let meta = header.metadata().clone().unwrap_or_default();
        match meta.get("format") {
            Some(f) if f == FORMAT => {}
            Some(f) => return Err(not_ckpt(format!("its format is `{f}`"))),
            None => {
                return Err(not_ckpt(
                    "a safetensors file without cnnc metadata".to_string(),
                ))
            }
        }
        let get = |key: &str| -> Result<&String, CheckpointError> {
            meta.get(key)
                .ok_or_else(|| invalid(format!("metadata `{key}` is missing")))
        };
        let version = get("format_version")?;
        if version.parse::<u32>() != Ok(FORMAT_VERSION) {
            return Err(CheckpointError::UnsupportedVersion {
                path: path.to_path_buf(),
                version: version.clone(),
            });
        }
        fn parse<T: std::str::FromStr>(key: &str, value: &str) -> Result<T, String> {
            value
                .parse()
                .map_err(|_| format!("metadata `{key}` = `{value}` is not a valid number"))
        }
        let epoch = parse("epoch", get("epoch")?).map_err(invalid)?;
        let step = parse("step", get("step")?).map_err(invalid)?;
        let rng_seed = parse("rng_seed", get("rng_seed")?).map_err(invalid)?;
        let optimizer = serde_json::from_str(get("optimizer")?)
            .map_err(|e| invalid(format!("metadata `optimizer` is not JSON: {e}")))?;
        let st = SafeTensors::deserialize(&bytes).map_err(|e| invalid(e.to_string()))?;
        let mut tensors = BTreeMap::new();
        for (name, view) in st.iter() {
            if view.dtype() != Dtype::F32 {
                return Err(invalid(format!(
                    "tensor `{name}` is {:?}, expected F32",
                    view.dtype()
                )));
            }
            let data = view
                .data()
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect();
            tensors.insert(name.to_string(), (view.shape().to_vec(), data));
        }
        Ok(Checkpoint {
            tensors,
            epoch,
            step,
            rng_seed,
            model_name: get("model_name")?.clone(),
            source_sha256: get("source_sha256")?.clone(),
            optimizer,
        })
    }

    /// Checks that the checkpoint was written for `model_name` compiled from a source whose
    /// SHA-256 is `source_sha256`. `path` is only used in the error.
    pub fn verify_model(
        &self,
        path: &Path,
        model_name: &str,
        source_sha256: &str,
    ) -> Result<(), CheckpointError> {
        if self.model_name == model_name && self.source_sha256.eq_ignore_ascii_case(source_sha256) {
            return Ok(());
        }
        Err(CheckpointError::ModelMismatch {
            path: path.to_path_buf(),
            expected_model: model_name.to_string(),
            found_model: self.model_name.clone(),
            source_changed: self.model_name == model_name,
        })
    }

    /// [`Checkpoint::load`] then [`Checkpoint::verify_model`].
    pub fn load_for(
        path: &Path,
        model_name: &str,
        source_sha256: &str,
    ) -> Result<Checkpoint, CheckpointError> {
        let ckpt = Checkpoint::load(path)?;
        ckpt.verify_model(path, model_name, source_sha256)?;
        // Training stops at the first non-finite loss, before its checkpoint: NaN state is a
        // damaged file, and resuming from it would only say "diverged".
        if let Some((name, _)) = ckpt
            .tensors
            .iter()
            .find(|(_, (_, v))| v.iter().any(|x| !x.is_finite()))
        {
            return Err(CheckpointError::Invalid {
                path: path.to_path_buf(),
                message: format!("tensor `{name}` holds NaN or infinite values"),
            });
        }
        Ok(ckpt)
    }
}

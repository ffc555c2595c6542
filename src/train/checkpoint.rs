//! Checkpoints: parameters and optimizer state as f32 tensors in a safetensors file, with the
//! training position and provenance as strings in its `__metadata__` map.
//!
//! Metadata keys: `format` (= [`FORMAT`]), `format_version`, `cnnc_version`, `epoch`, `step`,
//! `rng_seed`, `model_name`, `source_sha256`, `model_sha256` (of the network's structure,
//! [`crate::shape::CheckedModel::structure_hash`]), `tensors_sha256` (of every tensor's name,
//! shape and data, checked on load), `optimizer` (JSON), `test_acc` and `test_examples` (the
//! test accuracy after the last epoch, and how many test examples it was measured on). Tensor names are free;
//! the trainer uses `param.<node>` and `opt.<slot>.<node>`. Any safetensors reader (Python's
//! `safetensors.torch.load_file`) can open a checkpoint.
//!
//! A save never leaves a half-written checkpoint behind: it writes a temporary file in the
//! target's directory, fsyncs it, renames it over the target and fsyncs the directory. As
//! every output, it goes through a symbolic link to its target, and into a device or pipe
//! in place (renaming over `/dev/null` would destroy it).

use crate::fsutil::{FileId, Found};
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
    /// SHA-256 of the network's structure ([`crate::shape::CheckedModel::structure_hash`]);
    /// absent in checkpoints written before cnnc recorded it, which are matched by source.
    pub model_sha256: Option<String>,
    /// The optimizer's configuration (kind, learning rate, momentum, …).
    pub optimizer: serde_json::Value,
    /// The test accuracy measured after the last completed epoch (absent before the first
    /// epoch ends, and in checkpoints written before cnnc recorded it).
    pub test_acc: Option<f64>,
    /// How many test examples `test_acc` was measured on (absent in checkpoints written
    /// before cnnc recorded it).
    pub test_examples: Option<u64>,
}

/// What a model trained by cnnc expects as input: its file's `cnnc_input` metadata.
pub const INPUT_NOTE: &str = "float32 images [N, C, H, W]: the pixel values divided by 255 \
                              (0 to 1), nothing subtracted";

/// How a model was trained: the `cnnc_training` metadata (as JSON) of the file `cnnc train`
/// writes, and of the one `cnnc export --weights CKPT` writes from a checkpoint. A value a
/// checkpoint of an older cnnc lacks is null.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct TrainingSummary {
    /// What `--data` named.
    pub data: Option<String>,
    pub train_examples: Option<u64>,
    /// How many test examples `test_acc` was measured on.
    pub test_examples: Option<u64>,
    pub epochs: u32,
    pub steps: u64,
    pub batch: Option<u64>,
    /// In words: `SGD, momentum 0.9, weight decay 0`.
    pub optimizer: Option<String>,
    pub lr: Option<f64>,
    pub seed: u64,
    /// `--resize H`: the images were resampled to H×H.
    pub resize: Option<u64>,
    /// `--aux-weight`: the weight of the named outputs' cross-entropy (null for a model
    /// without named outputs).
    pub aux_weight: Option<f64>,
    pub test_acc: Option<f64>,
}

impl TrainingSummary {
    /// The metadata entries (key, value) of a trained model's file: `cnnc_input` and
    /// `cnnc_training`.
    pub fn metadata(&self) -> Vec<(String, String)> {
        vec![
            ("cnnc_input".to_string(), INPUT_NOTE.to_string()),
            (
                "cnnc_training".to_string(),
                serde_json::to_string(self).expect("plain data serializes"),
            ),
        ]
    }
}

/// A learning rate as written: f32 → shortest decimal → f64, so 0.1 and not
/// 0.10000000149011612.
pub fn lr_as_written(lr: f32) -> f64 {
    lr.to_string().parse::<f64>().unwrap_or(f64::from(lr))
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
    /// [`Checkpoint::save_expecting`] found at `path` another file than the one expected
    /// there (another process wrote it since the run started, or since the run's last
    /// checkpoint) and left it as it is; the checkpoint was written to `kept` instead, if any
    /// name beside it was free. `replaced`: a file was expected there (none, otherwise).
    Appeared {
        path: PathBuf,
        kept: Option<PathBuf>,
        replaced: bool,
    },
    /// The checkpoint belongs to another model, or to another version of its source.
    ModelMismatch {
        path: PathBuf,
        expected_model: String,
        found_model: String,
        source_changed: bool,
        /// How the parameters differ (names and shapes), the first few; empty when they
        /// all match and a layer without parameters changed.
        differences: Vec<String>,
    },
}

/// Most parameter differences a [`CheckpointError::ModelMismatch`] lists.
const MAX_DIFFERENCES: usize = 5;

impl CheckpointError {
    /// What the user can do about it, when something is known.
    pub fn help(&self) -> Option<String> {
        match self {
            CheckpointError::ModelMismatch {
                source_changed: true,
                differences,
                ..
            } => Some(format!(
                "the network in the .cnn file changed since the checkpoint was written{}: \
                 the checkpoint's weights fit the old layers only, so restore them (in \
                 `cnnc train`, --restart in place of --resume trains the new network from \
                 the start)",
                if differences.is_empty() {
                    " (every parameter has its old name and shape: a layer without \
                     parameters, such as an activation, a pooling or a stride, changed)"
                        .to_string()
                } else {
                    format!(" ({})", differences.join("; "))
                }
            )),
            CheckpointError::ModelMismatch { .. } => Some(
                "pass the .cnn file the checkpoint was trained from (or --model NAME); in \
                 `cnnc train`, --restart in place of --resume trains this model from the start"
                    .to_string(),
            ),
            CheckpointError::UnsupportedVersion { .. } => Some(
                "load it with the cnnc version that wrote it (see its `cnnc_version` metadata)"
                    .to_string(),
            ),
            CheckpointError::NotACheckpoint { .. } => {
                Some("name the checkpoint `cnnc train` wrote (`*.ckpt.safetensors`)".to_string())
            }
            CheckpointError::Invalid { .. } => Some(
                "the file is damaged or was edited: use another copy of it (or an earlier \
                 checkpoint)"
                    .to_string(),
            ),
            _ => None,
        }
    }
}

impl fmt::Display for CheckpointError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CheckpointError::Io { path, source } => {
                write!(f, "{}: {}", path.display(), crate::fsutil::read_message(path, source))
            }
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
            CheckpointError::Appeared {
                path,
                kept,
                replaced,
            } => {
                write!(
                    f,
                    "{}: another process wrote this file while this run trained ({}); it was \
                     left as it is, and ",
                    path.display(),
                    if *replaced {
                        "it is not the checkpoint this run started from or last wrote"
                    } else {
                        "it did not exist when the run started"
                    }
                )?;
                match kept {
                    Some(k) => write!(f, "this run's checkpoint is in {} instead", k.display()),
                    None => f.write_str("this run's checkpoint could not be kept beside it"),
                }
            }
            CheckpointError::BadTensor { name, shape, len } => write!(
                f,
                "tensor `{name}` has shape {shape:?} but {len} values"
            ),
            CheckpointError::ModelMismatch { path, expected_model, found_model, source_changed, .. } => {
                if *source_changed {
                    write!(
                        f,
                        "{}: checkpoint of model `{found_model}` was trained from a different network (its layers changed)",
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

/// Whether a safetensors JSON header carries cnnc's checkpoint format in its metadata.
/// The JSON header of the safetensors file at `path`, read alone. `None` for anything but a
/// regular file (a pipe read here would lose its first bytes for the real load) and for a
/// file too short or with an implausible header length.
fn read_header(path: &Path) -> Option<Vec<u8>> {
    use std::io::Read;
    if !std::fs::metadata(path).is_ok_and(|m| m.is_file()) {
        return None;
    }
    let mut f = std::fs::File::open(path).ok()?;
    let mut len = [0u8; 8];
    f.read_exact(&mut len).ok()?;
    let len = u64::from_le_bytes(len);
    if len > 100 << 20 {
        return None;
    }
    let mut header = vec![0u8; len as usize];
    f.read_exact(&mut header).ok()?;
    Some(header)
}

fn header_says_checkpoint(header: &[u8]) -> bool {
    serde_json::from_slice::<serde_json::Value>(header)
        .ok()
        .and_then(|h| h["__metadata__"]["format"].as_str().map(|f| f == FORMAT))
        .unwrap_or(false)
}

/// SHA-256 (lowercase hex) of every tensor's name, shape and little-endian data, in name
/// order: the checksum that finds a damaged checkpoint.
fn tensors_hash(tensors: &BTreeMap<String, (Vec<usize>, Vec<f32>)>) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for (name, (shape, data)) in tensors {
        h.update((name.len() as u64).to_le_bytes());
        h.update(name.as_bytes());
        h.update((shape.len() as u64).to_le_bytes());
        for &d in shape {
            h.update((d as u64).to_le_bytes());
        }
        for chunk in data.chunks(1 << 14) {
            let bytes: Vec<u8> = chunk.iter().flat_map(|x| x.to_le_bytes()).collect();
            h.update(&bytes);
        }
    }
    format!("{:x}", h.finalize())
}

/// Where putting a checkpoint in place found another file at `path`: keeps the temporary file
/// `tmp` beside it, under the first name free, and says so ([`CheckpointError::Appeared`]).
fn keep_beside(
    mut tmp: crate::fsutil::TempBeside,
    path: &Path,
    dir: &Path,
    replaced: bool,
) -> CheckpointError {
    let mut kept = None;
    for n in 0..100 {
        let other = crate::fsutil::alternative_name(path, n);
        match tmp.persist_noclobber(&other) {
            Ok(_) => {
                kept = Some(other);
                break;
            }
            Err(e) if e.error.kind() == io::ErrorKind::AlreadyExists => tmp = e.temp,
            Err(_) => break,
        }
    }
    #[cfg(unix)]
    let _ = std::fs::File::open(dir).and_then(|d| d.sync_all());
    CheckpointError::Appeared {
        path: path.to_path_buf(),
        kept,
        replaced,
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
        if let Some(h) = &self.model_sha256 {
            m.insert("model_sha256".to_string(), h.clone());
        }
        m.insert("tensors_sha256".to_string(), tensors_hash(&self.tensors));
        m.insert("optimizer".to_string(), self.optimizer.to_string());
        if let Some(acc) = self.test_acc {
            m.insert("test_acc".to_string(), acc.to_string());
            if let Some(n) = self.test_examples {
                m.insert("test_examples".to_string(), n.to_string());
            }
        }
        m
    }

    /// Writes the checkpoint to `path` atomically: after a crash the file holds either the old
    /// checkpoint or the new one, and no temporary file is left after a successful save.
    pub fn save(&self, path: &Path) -> Result<(), CheckpointError> {
        self.save_expecting(path, Found::Any).map(drop)
    }

    /// [`Checkpoint::save`] of a checkpoint that replaces only what `found` says is at
    /// `path` (what a run found there when it started, or what its last save returned):
    /// nothing, or a given file. Where another file is at `path` now (another run beside
    /// this one wrote it), that file is left as it is, this checkpoint goes beside it under
    /// another name ([`crate::fsutil::alternative_name`]), and the error,
    /// [`CheckpointError::Appeared`], says where. Returns what is at `path` after the save:
    /// the file written, for the next save to replace.
    pub fn save_expecting(&self, path: &Path, found: Found) -> Result<Found, CheckpointError> {
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
        // An I/O error keeps its kind (a full disk, a name too long), which the help follows.
        let ser_err = |e: safetensors::SafeTensorError| CheckpointError::Io {
            path: path.to_path_buf(),
            source: match e {
                safetensors::SafeTensorError::IoError(e) => e,
                e => io::Error::other(e.to_string()),
            },
        };
        let views = self
            .tensors
            .iter()
            .map(|(name, (shape, data))| (name.as_str(), F32View { shape, data }));
        // As every output: a symbolic link's target is replaced, not the link, and a device
        // or a pipe (`/dev/null`) is written in place, since renaming over it would destroy it.
        let resolved = crate::fsutil::resolve_output(path);
        let path = resolved.as_path();
        if crate::fsutil::is_special(path) {
            safetensors::serialize_to_file(views, Some(self.metadata()), path).map_err(ser_err)?;
            return Ok(Found::Any);
        }
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        // As every output's (`fsutil::stage_with`): nameless until in place where the file
        // system can, so a training killed mid-save leaves no temporary file. safetensors
        // writes it by path (its link in /proc where it has no name).
        let tmp = crate::fsutil::TempBeside::new_in(&dir).map_err(io_err)?;
        safetensors::serialize_to_file(views, Some(self.metadata()), &tmp.path_to_open())
            .map_err(ser_err)?;
        tmp.file().sync_all().map_err(io_err)?;
        tmp.give_mode_of(path).map_err(io_err)?;
        // Put in place without replacing a file: one there by then is another process's.
        let noclobber = |tmp: crate::fsutil::TempBeside, replaced| {
            tmp.persist_noclobber(path).map_err(|e| {
                if e.error.kind() == io::ErrorKind::AlreadyExists {
                    keep_beside(e.temp, path, &dir, replaced)
                } else {
                    io_err(e.error)
                }
            })
        };
        let placed = match found {
            Found::Any => tmp.persist(path).map_err(|e| io_err(e.error)),
            Found::Nothing => noclobber(tmp, false),
            // Compared just before the rename: another process's rename between the two is
            // the window left.
            Found::File(_) => match found.still_at(path) {
                Some(true) => tmp.persist(path).map_err(|e| io_err(e.error)),
                // Gone, and nothing in its place: this one goes there, replacing nothing.
                Some(false) => noclobber(tmp, true),
                None => Err(keep_beside(tmp, path, &dir, true)),
            },
        };
        // Kept open: what it is once in place is read from it, whatever the path holds by then.
        let written = placed?;
        // Make the rename itself durable. Directories cannot be opened for syncing everywhere.
        #[cfg(unix)]
        std::fs::File::open(&dir)
            .and_then(|d| d.sync_all())
            .map_err(io_err)?;
        Ok(written
            .metadata()
            .map_or(Found::Any, |m| Found::File(FileId::of(&m))))
    }

    /// Reads and validates a checkpoint written by [`Checkpoint::save`].
    pub fn load(path: &Path) -> Result<Checkpoint, CheckpointError> {
        let bytes = std::fs::read(path).map_err(|source| CheckpointError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Checkpoint::from_bytes(path, &bytes)
    }

    /// [`Checkpoint::load`] of bytes already read (from a pipe, say); `path` names them in
    /// errors.
    pub fn from_bytes(path: &Path, bytes: &[u8]) -> Result<Checkpoint, CheckpointError> {
        let not_ckpt = |reason: String| CheckpointError::NotACheckpoint {
            path: path.to_path_buf(),
            reason,
        };
        let invalid = |message: String| CheckpointError::Invalid {
            path: path.to_path_buf(),
            message,
        };
        if bytes.is_empty() {
            return Err(not_ckpt("the file is empty".to_string()));
        }
        // A header that says "cnnc checkpoint" over a body that does not parse is one cut
        // short or damaged, not some other file.
        let (_, header) = SafeTensors::read_metadata(bytes).map_err(|e| {
            if Checkpoint::is_checkpoint_bytes(bytes) {
                invalid(format!("it is cut short or damaged: {e}"))
            } else {
                not_ckpt(format!("not a safetensors file: {e}"))
            }
        })?;
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
        // Every entry is judged as it is read (the metadata is outside the tensors'
        // checksum): a value cnnc cannot have written is a damaged or edited file, refused
        // rather than reported or recorded in a trained model.
        let epoch: u32 = parse("epoch", get("epoch")?).map_err(invalid)?;
        let step: u64 = parse("step", get("step")?).map_err(invalid)?;
        if step < u64::from(epoch) {
            return Err(invalid(format!(
                "metadata `step` = `{step}` is fewer than its epochs ({epoch}), each of which \
                 takes at least one step"
            )));
        }
        let rng_seed = parse("rng_seed", get("rng_seed")?).map_err(invalid)?;
        let test_acc = match meta.get("test_acc") {
            Some(v) => {
                let acc = parse::<f64>("test_acc", v).map_err(invalid)?;
                if !(0.0..=1.0).contains(&acc) {
                    return Err(invalid(format!(
                        "metadata `test_acc` = `{v}` is not an accuracy (a number from 0 to 1)"
                    )));
                }
                Some(acc)
            }
            None => None,
        };
        let test_examples = match meta.get("test_examples") {
            Some(v) if test_acc.is_some() => {
                let n = parse::<u64>("test_examples", v).map_err(invalid)?;
                if n == 0 {
                    return Err(invalid(
                        "metadata `test_examples` = `0`: an accuracy is measured on at least \
                         one example"
                            .to_string(),
                    ));
                }
                Some(n)
            }
            _ => None,
        };
        for key in ["source_sha256", "model_sha256", "tensors_sha256"] {
            let required = key == "source_sha256";
            match meta.get(key) {
                Some(h) if h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()) => {}
                Some(h) => {
                    return Err(invalid(format!(
                        "metadata `{key}` = `{h}` is not a SHA-256 (64 hexadecimal digits)"
                    )))
                }
                None if required => {
                    return Err(invalid(format!("metadata `{key}` is missing")));
                }
                None => {}
            }
        }
        if get("model_name")?.is_empty() {
            return Err(invalid("metadata `model_name` is empty".to_string()));
        }
        let optimizer: serde_json::Value = serde_json::from_str(get("optimizer")?)
            .map_err(|e| invalid(format!("metadata `optimizer` is not JSON: {e}")))?;
        // Its learning rate is judged by the caller, as `--lr` is (`recorded_lr`).
        if !optimizer.is_object() {
            return Err(invalid(format!(
                "metadata `optimizer` = `{optimizer}` is not a JSON object"
            )));
        }
        let st = SafeTensors::deserialize(bytes).map_err(|e| invalid(e.to_string()))?;
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
        // A damaged file (a bit flipped on disk, bytes overwritten) must not resume silently.
        if let Some(expected) = meta.get("tensors_sha256") {
            if !tensors_hash(&tensors).eq_ignore_ascii_case(expected) {
                return Err(invalid(
                    "its tensors do not match the checksum written with them: the file is \
                     damaged (or was edited without removing its `tensors_sha256` metadata)"
                        .to_string(),
                ));
            }
        }
        Ok(Checkpoint {
            tensors,
            epoch,
            step,
            rng_seed,
            model_name: get("model_name")?.clone(),
            source_sha256: get("source_sha256")?.clone(),
            model_sha256: meta.get("model_sha256").cloned(),
            optimizer,
            test_acc,
            test_examples,
        })
    }

    /// Checks that the checkpoint was written for `model`: the same name and the same
    /// network (its structure hash; by the source's hash for a checkpoint without one).
    /// `path` is only used in the error.
    pub fn verify_model(
        &self,
        path: &Path,
        model: &crate::shape::CheckedModel,
    ) -> Result<(), CheckpointError> {
        // The same source, byte for byte, is the same network whatever its structure hash
        // says (one written by a cnnc whose fingerprint text differed).
        let same_source = self.source_sha256.eq_ignore_ascii_case(&model.source_hash);
        let same_network = same_source
            || self
                .model_sha256
                .as_ref()
                .is_some_and(|h| h.eq_ignore_ascii_case(&model.structure_hash()));
        let model_name = model.name.as_str();
        if self.model_name == model_name && same_network {
            return Ok(());
        }
        Err(CheckpointError::ModelMismatch {
            path: path.to_path_buf(),
            expected_model: model_name.to_string(),
            found_model: self.model_name.clone(),
            source_changed: self.model_name == model_name,
            differences: self.parameter_differences(model),
        })
    }

    /// How the checkpoint's parameters differ from `model`'s, by name and shape, in the
    /// model's order, then those of the checkpoint only: the first [`MAX_DIFFERENCES`].
    fn parameter_differences(&self, model: &crate::shape::CheckedModel) -> Vec<String> {
        let specs = crate::onnx::parameter_specs(model);
        let mut out = Vec::new();
        for s in &specs {
            match self.tensors.get(&format!("param.{}", s.name)) {
                None => out.push(format!("`{}` {:?} is new", s.name, s.dims)),
                Some((dims, _)) if *dims != s.dims => {
                    out.push(format!("`{}` was {dims:?} and is {:?}", s.name, s.dims))
                }
                Some(_) => {}
            }
        }
        let names: std::collections::HashSet<&str> =
            specs.iter().map(|s| s.name.as_str()).collect();
        for (name, (dims, _)) in &self.tensors {
            if let Some(param) = name.strip_prefix("param.") {
                if !names.contains(param) {
                    out.push(format!("`{param}` {dims:?} is gone"));
                }
            }
        }
        if out.len() > MAX_DIFFERENCES {
            let more = out.len() - MAX_DIFFERENCES;
            out.truncate(MAX_DIFFERENCES);
            out.push(format!("{more} more"));
        }
        out
    }

    /// Whether `path` is a cnnc checkpoint (a safetensors file whose metadata says so), read
    /// from its header only. Any failure to tell is `false`, and so is anything but a regular
    /// file: a pipe read here would lose its first bytes for the real load.
    pub fn is_checkpoint(path: &Path) -> bool {
        read_header(path).is_some_and(|h| header_says_checkpoint(&h))
    }

    /// The learning rate of the run that wrote the checkpoint at `path` (its optimizer
    /// metadata), read from its header only: `--resume` without `--lr` continues with it.
    /// As recorded: the caller judges it (the metadata is not under the tensors' checksum).
    /// `None` where the file is no checkpoint (loading it says why); `Some(Err(what))` where
    /// a checkpoint records no number as its rate, so that no default stands in for it.
    pub fn recorded_lr(path: &Path) -> Option<Result<f64, String>> {
        let header = read_header(path).filter(|h| header_says_checkpoint(h))?;
        let Ok(meta) = serde_json::from_slice::<serde_json::Value>(&header) else {
            return Some(Err("its header is no JSON".into()));
        };
        let optimizer = meta["__metadata__"]["optimizer"]
            .as_str()
            .and_then(|s| serde_json::from_str::<serde_json::Value>(s).ok());
        let Some(optimizer) = optimizer else {
            return Some(Err("its `optimizer` metadata is missing or no JSON".into()));
        };
        Some(match &optimizer["lr"] {
            serde_json::Value::Null => Err("its `optimizer` metadata has no `lr`".into()),
            lr => lr.as_f64().ok_or_else(|| {
                format!(
                    "its `optimizer` metadata's `lr` is {}, not a number",
                    crate::diag::shortened(&lr.to_string())
                )
            }),
        })
    }

    /// [`Checkpoint::is_checkpoint`] of a whole file already in memory.
    pub fn is_checkpoint_bytes(bytes: &[u8]) -> bool {
        let Some(len) = bytes
            .get(..8)
            .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
        else {
            return false;
        };
        usize::try_from(len)
            .ok()
            .and_then(|len| bytes.get(8..8usize.checked_add(len)?))
            .is_some_and(header_says_checkpoint)
    }

    /// The model's weights in the checkpoint (its `param.` tensors: parameters and running
    /// statistics), keyed as `--weights` and the ONNX initializers are.
    /// How the weights of this checkpoint were trained, from its metadata (the run's
    /// `optimizer` entry holds the data, batch and learning rate).
    pub fn training_summary(&self) -> TrainingSummary {
        let info = &self.optimizer;
        let optimizer = info
            .get("optimizer")
            .cloned()
            .and_then(|v| serde_json::from_value::<super::graph::Optimizer>(v).ok());
        TrainingSummary {
            data: info
                .get("data")
                .and_then(|v| v.as_str())
                .map(str::to_string),
            train_examples: info.get("train_examples").and_then(|v| v.as_u64()),
            test_examples: self.test_examples,
            epochs: self.epoch,
            steps: self.step,
            batch: info.get("batch_size").and_then(|v| v.as_u64()),
            optimizer: optimizer.map(|o| o.describe()),
            // Written as the f32 it was: read back as one, then as written.
            lr: info
                .get("lr")
                .and_then(|v| v.as_f64())
                .map(|lr| lr_as_written(lr as f32)),
            seed: self.rng_seed,
            resize: info.get("resize").and_then(|v| v.as_u64()),
            aux_weight: info
                .get("aux_weight")
                .and_then(|v| v.as_f64())
                .map(|w| lr_as_written(w as f32)),
            test_acc: self.test_acc,
        }
    }

    pub fn weights(&self) -> crate::onnx::weights::Weights {
        let mut w = crate::onnx::weights::Weights::new();
        for (name, (dims, data)) in &self.tensors {
            if let Some(param) = name.strip_prefix("param.") {
                w.insert(
                    param,
                    crate::onnx::weights::Tensor {
                        dims: dims.clone(),
                        data: data.clone(),
                    },
                );
            }
        }
        w
    }

    /// [`Checkpoint::load`] then [`Checkpoint::verify_model`].
    pub fn load_for(
        path: &Path,
        model: &crate::shape::CheckedModel,
    ) -> Result<Checkpoint, CheckpointError> {
        Checkpoint::load(path)?.verified_for(path, model)
    }

    /// [`Checkpoint::verify_model`], and no NaN or infinite value.
    pub fn verified_for(
        self,
        path: &Path,
        model: &crate::shape::CheckedModel,
    ) -> Result<Checkpoint, CheckpointError> {
        let ckpt = self;
        ckpt.verify_model(path, model)?;
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

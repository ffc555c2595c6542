//! Training data: IDX files (the MNIST / Fashion-MNIST format) → [`Dataset`] → shuffled
//! [`Batches`] of `[B, C, H, W]` f32 images and `[B]` i64 labels.
//!
//! Every file is validated before any training starts, and no allocation is sized from an
//! untrusted header until the header has been checked against the file: a raw file's length
//! must match the header exactly, a gzip file's header claim is bounded by the largest
//! possible deflate expansion of the compressed length, and decompression reads at most the
//! claimed size plus one byte, so a lying header is caught both ways without reading more.

use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::fmt;
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

/// Where `--data fashion-mnist` looks: the Debian package `dataset-fashion-mnist`.
pub const FASHION_MNIST_DIR: &str = "/usr/share/datasets/fashion-mnist";

/// IDX magic of a `u8` tensor with three dimensions `[n, rows, cols]`: grayscale images.
pub const IDX_IMAGES_MAGIC: u32 = 0x0000_0803;
/// IDX magic of a `u8` tensor with four dimensions `[n, channels, rows, cols]`: images of
/// several channels (RGB), channels first as the model's input.
pub const IDX_CHANNEL_IMAGES_MAGIC: u32 = 0x0000_0804;
/// IDX magic of a `u8` tensor with one dimension `[n]`.
pub const IDX_LABELS_MAGIC: u32 = 0x0000_0801;
/// IDX magic of a `u8` tensor without its rank byte.
const IDX_MAGIC_PREFIX: u32 = 0x0000_0800;

/// The largest record (one image) an IDX header may claim (2 GiB): a larger one is a damaged
/// header. The whole file's claim is checked against the file (its length, or what its gzip
/// data can inflate to) and, before anything is read, against the memory free
/// ([`Dataset::from_headers`]'s probe), for the examples read only, so a large file with
/// `--limit-train` reads its first examples.
pub const MAX_IDX_RECORD_BYTES: u64 = 1 << 31;

/// Deflate's best case is about 1032:1; a gzip file of `c` bytes cannot inflate to more than
/// this many bytes per compressed byte (plus a little slack for tiny files).
const MAX_DEFLATE_RATIO: u64 = 1040;

/// Why training data could not be found or loaded. Every variant that concerns a file names it.
#[derive(Debug)]
pub enum DataError {
    /// `--data NAME` named a packaged data set that is not installed.
    MissingPackage {
        name: String,
        dir: PathBuf,
        help: String,
    },
    /// `--data DIR` is not a directory.
    NoDirectory { dir: PathBuf, help: String },
    /// A directory given with `--data` lacks one of the four IDX files.
    MissingFile { dir: PathBuf, wanted: String },
    /// Reading the file failed (permissions, I/O).
    Io { path: PathBuf, source: io::Error },
    /// The file does not start with the expected IDX magic number.
    BadMagic {
        path: PathBuf,
        found: u32,
        expected: u32,
    },
    /// The header's sizes are impossible, or disagree with the data that follows.
    BadHeader { path: PathBuf, message: String },
    /// The gzip stream is corrupt or cut short.
    Gzip { path: PathBuf, source: io::Error },
    /// The image and label files hold different numbers of examples.
    CountMismatch {
        images: PathBuf,
        n_images: usize,
        labels: PathBuf,
        n_labels: usize,
    },
    /// The test images are not the size of the train images (files of two data sets).
    SplitSizes {
        test: PathBuf,
        test_shape: [usize; 3],
        train: PathBuf,
        train_shape: [usize; 3],
    },
    /// A label is not below the number of classes.
    LabelOutOfRange {
        path: PathBuf,
        index: usize,
        label: i64,
        classes: usize,
        /// The largest label of the examples read.
        largest: i64,
    },
    /// The images are not the size of the model's input, and resizing was not requested.
    ShapeMismatch {
        found: [usize; 3],
        expected: [usize; 3],
    },
    /// The examples a file holds need more memory than can be allocated.
    OutOfMemory { path: PathBuf, bytes: u64 },
    /// A file holds no examples.
    Empty { path: PathBuf },
}

impl DataError {
    /// Whether the user can fix it by what they pass (a file they cannot read, a device or
    /// a folder where a data file goes, a file where the data folder goes), rather than the
    /// data set being missing or damaged: exit 2, not 3.
    pub fn is_user_input(&self) -> bool {
        match self {
            DataError::Io { path, source } => {
                source.kind() == io::ErrorKind::PermissionDenied
                    || path.metadata().is_ok_and(|m| !m.is_file())
            }
            DataError::NoDirectory { dir, .. } => dir.exists(),
            _ => false,
        }
    }

    /// What the user can do about it, when something is known.
    pub fn help(&self) -> Option<String> {
        match self {
            DataError::MissingPackage { help, .. } | DataError::NoDirectory { help, .. } => {
                Some(help.clone())
            }
            DataError::MissingFile { .. } => Some(format!(
                "a data directory holds four files: {}, {}, {} and {} (each optionally \
                 gzipped, e.g. `{}.gz`; images of several channels, [N, C, H, W], may be \
                 named `…-images-idx4-ubyte`)",
                IDX_NAMES[0].0, IDX_NAMES[0].1, IDX_NAMES[1].0, IDX_NAMES[1].1, IDX_NAMES[0].0
            )),
            DataError::ShapeMismatch { found, expected }
                if channels_last_help(*found, *expected).is_some() =>
            {
                channels_last_help(*found, *expected)
            }
            DataError::ShapeMismatch { found, expected } if found[0] == expected[0] => {
                Some(format!(
                    "resize the images to {}×{} (bilinear), or declare the model's input as {:?}",
                    expected[1], expected[2], found
                ))
            }
            DataError::Io { source, .. } if source.kind() == io::ErrorKind::PermissionDenied => {
                Some(
                    "this user cannot read the file: make it readable (chmod a+r) or copy the \
                     data set to a folder of yours and pass it to --data"
                        .to_string(),
                )
            }
            DataError::Gzip { .. } | DataError::BadHeader { .. } => {
                Some("the file is damaged: download or install it again".to_string())
            }
            DataError::OutOfMemory { .. } => {
                Some("load fewer examples with --limit-train N / --limit-test N".to_string())
            }
            DataError::BadMagic { .. } => Some(format!(
                "an IDX images file starts with the magic number {IDX_IMAGES_MAGIC:#010x} \
                 ([N, H, W]) or {IDX_CHANNEL_IMAGES_MAGIC:#010x} ([N, C, H, W]), a labels file \
                 with {IDX_LABELS_MAGIC:#010x} (bytes, [N]): check that each file of the data \
                 folder is the one its name says"
            )),
            DataError::CountMismatch { .. } => Some(
                "the images and labels files of a split hold one label per image: they come \
                 from two data sets, or one is cut short; install or download them again"
                    .to_string(),
            ),
            DataError::SplitSizes { .. } => Some(
                "both splits of a data folder hold images of one size: these files come from \
                 two data sets"
                    .to_string(),
            ),
            _ => None,
        }
    }

    /// The file the error is about, when there is one.
    pub fn path(&self) -> Option<&Path> {
        match self {
            DataError::Io { path, .. }
            | DataError::BadMagic { path, .. }
            | DataError::BadHeader { path, .. }
            | DataError::Gzip { path, .. }
            | DataError::LabelOutOfRange { path, .. }
            | DataError::OutOfMemory { path, .. }
            | DataError::Empty { path } => Some(path),
            DataError::CountMismatch { labels, .. } => Some(labels),
            DataError::SplitSizes { test, .. } => Some(test),
            DataError::MissingPackage { dir, .. }
            | DataError::NoDirectory { dir, .. }
            | DataError::MissingFile { dir, .. } => Some(dir),
            DataError::ShapeMismatch { .. } => None,
        }
    }
}

impl fmt::Display for DataError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DataError::MissingPackage { name, dir, .. } => {
                write!(f, "data set `{name}` is not installed ({} not found)", dir.display())
            }
            DataError::NoDirectory { dir, .. } if dir.exists() => {
                write!(f, "{}: not a directory", dir.display())
            }
            // A link to nothing (or a loop of links): the name to check is the link's target.
            DataError::NoDirectory { dir, .. } if dir.is_symlink() => write!(
                f,
                "{}: {}",
                dir.display(),
                crate::fsutil::read_message(dir, &io::Error::from(io::ErrorKind::NotFound))
            ),
            DataError::NoDirectory { dir, .. } => {
                write!(f, "{}: no such data set or directory", dir.display())
            }
            DataError::MissingFile { dir, wanted } => {
                write!(f, "{}: no {wanted} (nor {wanted}.gz)", dir.display())
            }
            DataError::Io { path, source } => {
                write!(f, "{}: {}", path.display(), crate::fsutil::read_message(path, source))
            }
            DataError::BadMagic { path, found, expected } => write!(
                f,
                "{}: not an IDX file of the expected kind (magic 0x{found:08x}, expected 0x{expected:08x})",
                path.display()
            ),
            DataError::SplitSizes { test, test_shape, train, train_shape } => write!(
                f,
                "{}: the test images are {} but the train images ({}) are {}",
                test.display(),
                image_size(*test_shape),
                train.display(),
                image_size(*train_shape)
            ),
            DataError::BadHeader { path, message } => {
                write!(f, "{}: bad IDX header: {message}", path.display())
            }
            DataError::Gzip { path, source } => {
                write!(f, "{}: corrupt or truncated gzip data: {source}", path.display())
            }
            DataError::CountMismatch { images, n_images, labels, n_labels } => write!(
                f,
                "{} holds {n_images} images but {} holds {n_labels} labels",
                images.display(),
                labels.display()
            ),
            DataError::LabelOutOfRange { path, index, label, classes, largest } => write!(
                f,
                "{}: label {label} of example {index} is out of range: the model gives {} (the largest label is {largest})",
                path.display(),
                match classes {
                    1 => "1 class score, so the only label it takes is 0".to_string(),
                    n => format!("{n} class scores, so labels go from 0 to {}", n.saturating_sub(1)),
                }
            ),
            DataError::ShapeMismatch { found, expected } => write!(
                f,
                "the images are {found:?} ([C, H, W]) but the model's input is {expected:?}"
            ),
            DataError::OutOfMemory { path, bytes } => write!(
                f,
                "{}: its examples need {} of memory, more than this machine can allocate",
                path.display(),
                crate::shape::summary::bytes(*bytes)
            ),
            DataError::Empty { path } => write!(f, "{}: the file holds no examples", path.display()),
        }
    }
}

impl std::error::Error for DataError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            DataError::Io { source, .. } | DataError::Gzip { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// A labelled image data set held in memory.
#[derive(Clone, Debug, PartialEq)]
pub struct Dataset {
    /// `[n, channels, height, width]`, row-major, scaled from `u8` to `[0, 1]`.
    pub images: Vec<f32>,
    /// `[n]`, each in `0..classes`.
    pub labels: Vec<i64>,
    pub n: usize,
    pub channels: usize,
    pub height: usize,
    pub width: usize,
    pub classes: usize,
}

impl Dataset {
    /// Floats per image: `channels · height · width`.
    pub fn image_len(&self) -> usize {
        self.channels * self.height * self.width
    }

    /// `[C, H, W]` of one image.
    pub fn image_shape(&self) -> [usize; 3] {
        [self.channels, self.height, self.width]
    }

    /// Loads an image file and a label file and checks them against each other.
    pub fn from_idx_files(
        images: &Path,
        labels: &Path,
        classes: usize,
    ) -> Result<Dataset, DataError> {
        let image_header = IdxHeader::read_images(images)?;
        let label_header = IdxHeader::read(labels, IDX_LABELS_MAGIC)?;
        Dataset::from_headers(&image_header, &label_header, classes, None)
    }

    /// Loads the first `limit` examples (all when `None`) of two files whose headers were
    /// read and checked against each other.
    fn from_headers(
        images: &IdxHeader,
        labels: &IdxHeader,
        classes: usize,
        limit: Option<usize>,
    ) -> Result<Dataset, DataError> {
        images.check_against(labels)?;
        let n = images.dims[0];
        let [channels, height, width] = images.image_shape();
        let n = limit.map_or(n, |l| l.min(n));
        // Everything this set will hold, checked before the first byte is read: a few
        // kilobytes of gzip can claim gigabytes of examples.
        let image_len = channels.saturating_mul(height).saturating_mul(width);
        // Per example: the u8 pixels read, their f32 copy, one u8 label and its i64 copy.
        let bytes =
            (n as u64).saturating_mul((image_len as u64).saturating_mul(5).saturating_add(9));
        let out_of_memory = || DataError::OutOfMemory {
            path: images.path.clone(),
            bytes,
        };
        let mut probe: Vec<u8> = Vec::new();
        crate::oom::try_reserve_exact(
            &mut probe,
            usize::try_from(bytes).map_err(|_| out_of_memory())?,
        )
        .map_err(|_| out_of_memory())?;
        drop(probe);

        let raw_labels = labels.read_records(Some(n))?;
        let mut out_labels = Vec::with_capacity(n);
        for (index, &l) in raw_labels.iter().enumerate() {
            if usize::from(l) >= classes {
                return Err(DataError::LabelOutOfRange {
                    path: labels.path.clone(),
                    index,
                    label: i64::from(l),
                    classes,
                    largest: raw_labels.iter().copied().max().map_or(0, i64::from),
                });
            }
            out_labels.push(i64::from(l));
        }
        drop(raw_labels);
        let pixels = images.read_records(Some(n))?;
        let images = pixels.iter().map(|&p| f32::from(p) / 255.0).collect();
        Ok(Dataset {
            images,
            labels: out_labels,
            n,
            channels,
            height,
            width,
            classes,
        })
    }

    /// [`fit_input`] of these images.
    pub fn fit_input(
        &self,
        expected: [usize; 3],
        resize: bool,
    ) -> Result<Option<(usize, usize)>, DataError> {
        fit_input(self.image_shape(), expected, resize)
    }
}

/// Checks images of `found` `[C, H, W]` against the model's input `expected`. Returns the size
/// batches must be resized to (`Some((h, w))`) when `resize` is allowed and the sizes differ,
/// `None` when they already match. Channels are never converted.
pub fn fit_input(
    found: [usize; 3],
    expected: [usize; 3],
    resize: bool,
) -> Result<Option<(usize, usize)>, DataError> {
    if found == expected {
        Ok(None)
    } else if resize && found[0] == expected[0] && expected[1] > 0 && expected[2] > 0 {
        Ok(Some((expected[1], expected[2])))
    } else {
        Err(DataError::ShapeMismatch { found, expected })
    }
}

/// The file names of the IDX layout, (images, labels) for train then test.
const IDX_NAMES: [(&str, &str); 2] = [
    ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
];

/// When images read as `found` `[C, H, W]` look like an `[N, H, W, C]` array written as IDX
/// (their last axis is the model's channel count, or a usual one, 3 or 4, beside a first
/// one of more than 4; their first is not the model's; they are not grayscale `[N, H, W]`),
/// what to do about it; whatever their size, which `--resize` may change once the axes are
/// in order.
pub fn channels_last_help(found: [usize; 3], expected: [usize; 3]) -> Option<String> {
    let last_is_channels = found[2] == expected[0] || (matches!(found[2], 3 | 4) && found[0] > 4);
    (found[0] != 1 && last_is_channels && found[0] != expected[0]).then(|| {
        let mut help = format!(
            "the file holds [N, {}, {}, {}]: its channels come last; cnnc reads images \
             channels first, [N, C, H, W], as the model's input: write the array transposed \
             (numpy: `x.transpose(0, 3, 1, 2)`)",
            found[0], found[1], found[2]
        );
        if found[2] != expected[0] {
            help.push_str(&format!(
                "; the images then have {} channels and the model takes {}: declare its \
                 input as [{}, {}, {}]",
                found[2], expected[0], found[2], expected[1], expected[2]
            ));
        }
        help
    })
}

/// What a file that is no regular file is, in words: "a folder", "a named pipe (FIFO)".
fn file_kind(m: &std::fs::Metadata) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    let t = m.file_type();
    if t.is_dir() {
        "a folder"
    } else if t.is_fifo() {
        "a named pipe (FIFO)"
    } else if t.is_socket() {
        "a socket"
    } else if t.is_char_device() || t.is_block_device() {
        "a device"
    } else {
        "not a regular file"
    }
}

/// An images file of several channels may be named for its rank: `…-images-idx4-ubyte`.
fn four_dimensional_name(stem: &str) -> String {
    stem.replace("-idx3-", "-idx4-")
}

/// `28×28`, or `3×32×32` for images of several channels.
fn image_size(shape: [usize; 3]) -> String {
    if shape[0] == 1 {
        format!("{}×{}", shape[1], shape[2])
    } else {
        format!("{}×{}×{}", shape[0], shape[1], shape[2])
    }
}

/// The four files of a data set in the (Fashion-)MNIST layout.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DataSource {
    /// What the user wrote after `--data`.
    pub name: String,
    pub dir: PathBuf,
    pub train_images: PathBuf,
    pub train_labels: PathBuf,
    pub test_images: PathBuf,
    pub test_labels: PathBuf,
}

/// The train and test splits of a data source.
#[derive(Clone, Debug, PartialEq)]
pub struct Splits {
    pub train: Dataset,
    pub test: Dataset,
}

impl DataSource {
    /// Resolves `--data ARG`: `fashion-mnist` is the Debian package's directory
    /// ([`FASHION_MNIST_DIR`]); anything else is a directory holding
    /// `{train,t10k}-{images-idx3,labels-idx1}-ubyte`, each gzipped (`.gz`) or not. A
    /// directory that happens to be called `fashion-mnist` is reached as `./fashion-mnist`.
    /// MNIST has no Debian package, so `mnist` must be a directory.
    pub fn resolve(arg: &str) -> Result<DataSource, DataError> {
        let dir = if arg == "fashion-mnist" {
            let dir = PathBuf::from(FASHION_MNIST_DIR);
            if !dir.is_dir() {
                return Err(DataError::MissingPackage {
                    name: arg.to_string(),
                    dir,
                    help: "install it with `apt-get update && apt-get install dataset-fashion-mnist`, \
                           or pass a directory holding the IDX files"
                        .to_string(),
                });
            }
            dir
        } else {
            let dir = PathBuf::from(arg);
            if !dir.is_dir() {
                let help = if arg == "mnist" {
                    "MNIST has no Debian package: download its four IDX files \
                     (train-images-idx3-ubyte.gz, …) into a directory and pass that directory"
                } else {
                    "pass `fashion-mnist` or a directory holding the IDX files"
                };
                return Err(DataError::NoDirectory {
                    dir,
                    help: help.to_string(),
                });
            }
            dir
        };
        let find = |stem: &str| -> Result<PathBuf, DataError> {
            let gz = dir.join(format!("{stem}.gz"));
            if gz.is_file() {
                return Ok(gz);
            }
            let raw = dir.join(stem);
            if raw.is_file() {
                return Ok(raw);
            }
            let mut candidates = vec![gz, raw];
            if stem.contains("-images-") {
                let four = four_dimensional_name(stem);
                for path in [dir.join(format!("{four}.gz")), dir.join(&four)] {
                    if path.is_file() {
                        return Ok(path);
                    }
                    candidates.push(path);
                }
            }
            // There, but no file (a folder, a device, a link to nothing): said as such, not
            // as missing.
            if let Some(there) = candidates.iter().find(|p| p.symlink_metadata().is_ok()) {
                let source = if let Ok(m) = there.metadata() {
                    io::Error::other(format!(
                        "it is {}; data files must be regular files",
                        file_kind(&m)
                    ))
                } else {
                    io::Error::from(io::ErrorKind::NotFound)
                };
                return Err(DataError::Io {
                    path: there.clone(),
                    source,
                });
            }
            Err(DataError::MissingFile {
                dir: dir.clone(),
                wanted: stem.to_string(),
            })
        };
        Ok(DataSource {
            name: arg.to_string(),
            train_images: find(IDX_NAMES[0].0)?,
            train_labels: find(IDX_NAMES[0].1)?,
            test_images: find(IDX_NAMES[1].0)?,
            test_labels: find(IDX_NAMES[1].1)?,
            dir,
        })
    }

    /// Every file name [`DataSource::resolve`] looks for in the folder, whether there or not:
    /// each of the four files, gzipped or not, and the images also as `…-images-idx4-ubyte`
    /// (gzipped or not). A file written under one of them would be read as data by the next
    /// run (a `.gz` in place of the file beside it), so no output may take one. Each with
    /// the split it belongs to (`train` or `test`).
    pub fn names_looked_for(&self) -> Vec<(PathBuf, &'static str)> {
        let mut names = Vec::new();
        for ((images, labels), split) in IDX_NAMES.into_iter().zip(["train", "test"]) {
            for stem in [
                images.to_string(),
                four_dimensional_name(images),
                labels.into(),
            ] {
                names.push((self.dir.join(format!("{stem}.gz")), split));
                names.push((self.dir.join(stem), split));
            }
        }
        names
    }

    /// The files read beside others that could have been (`(read, not read)`): a gzipped file
    /// whose uncompressed copy is there too (`gunzip -k`, or new data beside a stale `.gz`),
    /// and images named for rank 3 (`…-images-idx3-ubyte`, looked for first) beside some
    /// named for rank 4 (`…-images-idx4-ubyte`, gzipped or not).
    pub fn shadowed(&self) -> Vec<(&Path, PathBuf)> {
        let mut out: Vec<(&Path, PathBuf)> = [
            &self.train_images,
            &self.train_labels,
            &self.test_images,
            &self.test_labels,
        ]
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "gz"))
        .map(|p| (p.as_path(), p.with_extension("")))
        .filter(|(_, raw)| raw.is_file())
        .collect();
        for (images, (stem, _)) in [&self.train_images, &self.test_images]
            .into_iter()
            .zip(IDX_NAMES)
        {
            let named_for_rank_3 = images
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(stem));
            if !named_for_rank_3 {
                continue;
            }
            let four = four_dimensional_name(stem);
            for other in [self.dir.join(format!("{four}.gz")), self.dir.join(&four)] {
                if other.is_file() {
                    out.push((images.as_path(), other));
                }
            }
        }
        out
    }

    /// Loads and validates both splits; the test images must be the size of the train images.
    pub fn load(&self, classes: usize) -> Result<Splits, DataError> {
        self.load_with(classes, [None, None], |_| Ok::<(), DataError>(()))
            .map(|(splits, ())| splits)
    }

    /// Reads the four headers, checks them against each other, lets `check` judge the
    /// images' `[C, H, W]` (against the model), and only then loads the first
    /// `limits[0]` train and `limits[1]` test examples (all when `None`).
    pub fn load_with<T, E: From<DataError>>(
        &self,
        classes: usize,
        limits: [Option<usize>; 2],
        check: impl FnOnce([usize; 3]) -> Result<T, E>,
    ) -> Result<(Splits, T), E> {
        let train_images = IdxHeader::read_images(&self.train_images)?;
        let train_labels = IdxHeader::read(&self.train_labels, IDX_LABELS_MAGIC)?;
        let test_images = IdxHeader::read_images(&self.test_images)?;
        let test_labels = IdxHeader::read(&self.test_labels, IDX_LABELS_MAGIC)?;
        // What is wrong with each file (images of 0 pixels, a label count that differs) is
        // said before what does not fit: the other split, then the model.
        for (images, labels) in [(&train_images, &train_labels), (&test_images, &test_labels)] {
            images.check_against(labels)?;
        }
        if test_images.image_shape() != train_images.image_shape() {
            return Err(DataError::SplitSizes {
                test: self.test_images.clone(),
                test_shape: test_images.image_shape(),
                train: self.train_images.clone(),
                train_shape: train_images.image_shape(),
            }
            .into());
        }
        let fit = check(train_images.image_shape())?;
        let train = Dataset::from_headers(&train_images, &train_labels, classes, limits[0])?;
        let test = Dataset::from_headers(&test_images, &test_labels, classes, limits[1])?;
        Ok((Splits { train, test }, fit))
    }
}

/// The checked header of an IDX file: its dimensions, and where its data starts.
#[derive(Debug)]
pub struct IdxHeader {
    pub path: PathBuf,
    pub dims: Vec<usize>,
    gzipped: bool,
    /// The file's length on disk (compressed, for gzip).
    file_len: u64,
}

impl IdxHeader {
    /// Reads and checks the header of an IDX file of `u8` (gzipped or not, told by its first
    /// two bytes) whose magic must be `magic`: the claimed size must fit the file (exactly
    /// for a raw file, within deflate's largest expansion for a gzip file).
    pub fn read(path: &Path, magic: u32) -> Result<IdxHeader, DataError> {
        let (header, _reader) = IdxHeader::open(path, magic)?;
        Ok(header)
    }

    /// Reads the header of an images file: `[N, H, W]` (grayscale) or `[N, C, H, W]`.
    pub fn read_images(path: &Path) -> Result<IdxHeader, DataError> {
        match IdxHeader::read(path, IDX_IMAGES_MAGIC) {
            Err(DataError::BadMagic { found, .. }) if found == IDX_CHANNEL_IMAGES_MAGIC => {
                IdxHeader::read(path, IDX_CHANNEL_IMAGES_MAGIC)
            }
            other => other,
        }
    }

    /// `[C, H, W]` of one image of an images file (C is 1 for `[N, H, W]`, and for `[N, H,
    /// W, 1]`: grayscale images written channels last, the same bytes as `[N, 1, H, W]`,
    /// rather than images one pixel wide).
    pub fn image_shape(&self) -> [usize; 3] {
        match self.dims[..] {
            [_, h, w, 1] if h >= 4 && w >= 4 => [1, h, w],
            [_, c, h, w] => [c, h, w],
            [_, h, w] => [1, h, w],
            _ => [0, 0, 0],
        }
    }

    /// The header, and a reader positioned at the first data byte.
    fn open(path: &Path, magic: u32) -> Result<(IdxHeader, Box<dyn Read>), DataError> {
        let io_err = |source| DataError::Io {
            path: path.to_path_buf(),
            source,
        };
        let bad_header = |message: String| DataError::BadHeader {
            path: path.to_path_buf(),
            message,
        };
        let mut file = crate::fsutil::open_to_read(path).map_err(io_err)?;
        let file_len = file.metadata().map_err(io_err)?.len();
        let mut sniff = [0u8; 2];
        let gzipped = match file.read_exact(&mut sniff) {
            Ok(()) => sniff == [0x1f, 0x8b],
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => false,
            Err(e) => return Err(io_err(e)),
        };
        file.seek(SeekFrom::Start(0)).map_err(io_err)?;
        // Every member of a multi-member gzip file (`cat a.gz b.gz`, bgzip) is read; zero
        // bytes after the last member are padding (as GNU gzip says), other bytes that are no
        // gzip member are an error.
        let mut reader: Box<dyn Read> = if gzipped {
            Box::new(GzMembers {
                decoder: Some(flate2::bufread::GzDecoder::new(BufReader::new(file))),
            })
        } else {
            Box::new(BufReader::new(file))
        };
        let header = |dims| IdxHeader {
            path: path.to_path_buf(),
            dims,
            gzipped,
            file_len,
        };
        let stream_err = |e| header(Vec::new()).stream_error(e);

        let mut word = [0u8; 4];
        read_header_word(&mut reader, &mut word).map_err(|e| match e {
            Some(e) => stream_err(e),
            None if gzipped => bad_header(
                "its gzip data ends before the IDX header: the .gz file is damaged or cut short"
                    .to_string(),
            ),
            None => bad_header("the file ends before the magic number".to_string()),
        })?;
        let found = u32::from_be_bytes(word);
        if found != magic {
            return Err(DataError::BadMagic {
                path: path.to_path_buf(),
                found,
                expected: magic,
            });
        }
        let rank = (magic & 0xff) as usize;
        let mut dims = Vec::with_capacity(rank);
        for axis in 0..rank {
            read_header_word(&mut reader, &mut word).map_err(|e| match e {
                Some(e) => stream_err(e),
                None => bad_header(format!(
                    "the file ends inside the header (dimension {axis})"
                )),
            })?;
            dims.push(u32::from_be_bytes(word) as u64);
        }
        let header_len = 4 * (1 + rank as u64);
        // One record's size is bounded too: with 0 records the whole claim is 0 whatever the
        // other dimensions say, and `record_len` multiplies them.
        let product = |dims: &[u64]| dims.iter().try_fold(1u64, |acc, &d| acc.checked_mul(d));
        let record = product(dims.get(1..).unwrap_or_default());
        let claimed = product(&dims)
            .filter(|_| record.is_some_and(|r| r <= MAX_IDX_RECORD_BYTES))
            .filter(|&c| c <= u64::MAX - header_len);
        let Some(claimed) = claimed else {
            return Err(bad_header(format!(
                "dimensions {dims:?} claim records of more than {MAX_IDX_RECORD_BYTES} bytes, or \
                 more bytes than a file can hold"
            )));
        };
        if gzipped {
            let bound = file_len
                .saturating_mul(MAX_DEFLATE_RATIO)
                .saturating_add(1024);
            if header_len + claimed > bound {
                return Err(bad_header(format!(
                    "dimensions {dims:?} claim {claimed} bytes, more than {file_len} gzipped bytes can hold"
                )));
            }
        } else {
            let actual = file_len.saturating_sub(header_len);
            if actual != claimed {
                return Err(bad_header(format!(
                    "dimensions {dims:?} claim {claimed} bytes of data but the file has {actual}"
                )));
            }
        }
        let dims = dims.into_iter().map(|d| d as usize).collect();
        Ok((header(dims), reader))
    }

    /// Checks an image file's header (`self`) against its label file's: images of some
    /// pixels, one label per image.
    fn check_against(&self, labels: &IdxHeader) -> Result<(), DataError> {
        let n = self.dims[0];
        let [channels, height, width] = self.image_shape();
        if height == 0 || width == 0 {
            return Err(DataError::BadHeader {
                path: self.path.clone(),
                message: format!("images of {height}×{width} pixels"),
            });
        }
        if channels == 0 {
            return Err(DataError::BadHeader {
                path: self.path.clone(),
                message: "images of 0 channels".to_string(),
            });
        }
        if n != labels.dims[0] {
            return Err(DataError::CountMismatch {
                images: self.path.clone(),
                n_images: n,
                labels: labels.path.clone(),
                n_labels: labels.dims[0],
            });
        }
        Ok(())
    }

    /// Bytes per record (one image, one label).
    fn record_len(&self) -> usize {
        self.dims[1..].iter().product()
    }

    /// Reads the data of the first `limit` records (all when `None`). Reading everything
    /// also checks that the file holds exactly what the header claims.
    fn read_records(&self, limit: Option<usize>) -> Result<Vec<u8>, DataError> {
        let (again, mut reader) =
            IdxHeader::open(&self.path, IDX_MAGIC_PREFIX | self.dims.len() as u32)?;
        if again.dims != self.dims {
            return Err(DataError::BadHeader {
                path: self.path.clone(),
                message: format!(
                    "the file changed while it was read (dimensions {:?}, then {:?})",
                    self.dims, again.dims
                ),
            });
        }
        let n = self.dims[0];
        let records = limit.map_or(n, |l| l.min(n));
        // No overflow: the header was checked.
        let claimed = (n * self.record_len()) as u64;
        let wanted = (records * self.record_len()) as u64;
        // A raw file's length has confirmed the claim. A gzip claim is only bounded (by 1040×
        // the file), so start at what such files usually inflate to and let the buffer grow.
        let capacity = if self.gzipped {
            wanted.min(self.file_len.saturating_mul(4))
        } else {
            wanted
        };
        let mut data = Vec::new();
        crate::oom::try_reserve_exact(&mut data, capacity as usize).map_err(|_| {
            DataError::OutOfMemory {
                path: self.path.clone(),
                bytes: wanted,
            }
        })?;
        // Everything: one byte more than claimed, to catch a file longer than its header.
        let take = if wanted == claimed {
            claimed + 1
        } else {
            wanted
        };
        (&mut reader)
            .take(take)
            .read_to_end(&mut data)
            .map_err(|e| self.stream_error(e))?;
        let got = data.len() as u64;
        // A damaged gzip stream can inflate to more than the header claims before its
        // checksum, at the end, says so: read on (a bounded amount) to report the damage
        // rather than a header that seems to lie.
        if self.gzipped && got > claimed {
            io::copy(&mut reader.take(1 << 30), &mut io::sink())
                .map_err(|e| self.stream_error(e))?;
        }
        if got != wanted {
            let found = if got > claimed {
                "more".to_string()
            } else {
                format!("only {got}")
            };
            return Err(DataError::BadHeader {
                path: self.path.clone(),
                message: format!(
                    "dimensions {:?} claim {claimed} bytes of data but the file has {found}",
                    self.dims
                ),
            });
        }
        Ok(data)
    }

    /// An error inside a gzip stream is the stream's fault, not the disk's.
    fn stream_error(&self, source: io::Error) -> DataError {
        let path = self.path.clone();
        if self.gzipped {
            DataError::Gzip { path, source }
        } else {
            DataError::Io { path, source }
        }
    }
}

/// The members of a gzip stream one after another, as GNU gzip reads them: zero bytes after
/// a member (tape or block padding) are skipped when nothing but zeros follows; anything
/// else after a member must be another member.
struct GzMembers<R: BufRead> {
    decoder: Option<flate2::bufread::GzDecoder<R>>,
}

impl<R: BufRead> Read for GzMembers<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            let Some(decoder) = self.decoder.as_mut() else {
                return Ok(0);
            };
            let n = decoder.read(buf)?;
            if n > 0 {
                return Ok(n);
            }
            // The member ended: the end, padding, or the next member.
            let mut inner = self.decoder.take().expect("a decoder").into_inner();
            let mut padded = false;
            loop {
                let available = inner.fill_buf()?;
                match available.first() {
                    None => return Ok(0),
                    Some(0) => {
                        let zeros = available.iter().take_while(|&&b| b == 0).count();
                        inner.consume(zeros);
                        padded = true;
                    }
                    Some(_) if padded => {
                        return Err(io::Error::new(
                            io::ErrorKind::InvalidData,
                            "bytes other than zero padding after the last gzip member",
                        ))
                    }
                    // What follows a member must be another (its magic 1f 8b) or padding.
                    Some(&b) if b != 0x1f || available.get(1).is_some_and(|&c| c != 0x8b) => {
                        return Err(io::Error::new(
                            io::ErrorKind::InvalidData,
                            "bytes after the gzip data that are neither gzip nor zero padding \
                             (\"trailing garbage\", which GNU gzip ignores with a warning); \
                             `gzip -t` shows it",
                        ))
                    }
                    Some(_) => break,
                }
            }
            self.decoder = Some(flate2::bufread::GzDecoder::new(inner));
        }
    }
}

/// Reads an IDX file of `u8` (gzipped or not, told by its first two bytes) whose magic must be
/// `magic`. Returns the dimensions and the raw data, of exactly `product(dims)` bytes.
pub fn read_idx(path: &Path, magic: u32) -> Result<(Vec<usize>, Vec<u8>), DataError> {
    let header = IdxHeader::read(path, magic)?;
    let data = header.read_records(None)?;
    Ok((header.dims, data))
}

/// Reads one big-endian header word; `Err(None)` is a clean end of file.
fn read_header_word(reader: &mut dyn Read, word: &mut [u8; 4]) -> Result<(), Option<io::Error>> {
    match reader.read_exact(word) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Err(None),
        Err(e) => Err(Some(e)),
    }
}

/// Bilinear resize of a stack of `h × w` planes to `new_h × new_w`, as PyTorch's
/// `F.interpolate(mode="bilinear", align_corners=False, antialias=False)` (torchvision
/// `Resize(..., antialias=False)` on tensors): half-pixel centres, source coordinates clamped
/// at 0, the neighbour index clamped at the last row/column.
///
/// For upsampling (28 → 224, what the notes do with `transforms.Resize(224)` on PIL images)
/// PIL's bilinear filter gives the same weights; PIL then rounds to 8 bits, which cnnc does
/// not. For downsampling PIL and antialiased torchvision average over a wider window; cnnc
/// does not antialias.
pub fn resize_bilinear(images: &[f32], h: usize, w: usize, new_h: usize, new_w: usize) -> Vec<f32> {
    let planes = images.len().checked_div(h * w).unwrap_or(0);
    let mut out = vec![0.0; planes * new_h * new_w];
    if out.is_empty() {
        return out;
    }
    let resizer = Resizer::new(h, w, new_h, new_w);
    for (src, dst) in images
        .chunks_exact(h * w)
        .zip(out.chunks_exact_mut(new_h * new_w))
    {
        resizer.resize_plane(src, dst);
    }
    out
}

/// One axis of a bilinear resize: for each output index, the two source indices and weights.
#[derive(Clone, Debug)]
struct AxisTaps {
    lo: Vec<usize>,
    hi: Vec<usize>,
    w_hi: Vec<f32>,
}

impl AxisTaps {
    fn new(n_in: usize, n_out: usize) -> AxisTaps {
        let scale = n_in as f64 / n_out as f64;
        let mut taps = AxisTaps {
            lo: Vec::new(),
            hi: Vec::new(),
            w_hi: Vec::new(),
        };
        for i in 0..n_out {
            // PyTorch's area_pixel_compute_source_index with align_corners=False.
            let src = ((i as f64 + 0.5) * scale - 0.5).max(0.0);
            let lo = (src.floor() as usize).min(n_in - 1);
            let hi = if lo + 1 < n_in { lo + 1 } else { lo };
            taps.lo.push(lo);
            taps.hi.push(hi);
            taps.w_hi.push((src - lo as f64) as f32);
        }
        taps
    }
}

/// Precomputed taps for resizing `h × w` planes to `new_h × new_w`.
#[derive(Clone, Debug)]
struct Resizer {
    w: usize,
    rows: AxisTaps,
    cols: AxisTaps,
}

impl Resizer {
    fn new(h: usize, w: usize, new_h: usize, new_w: usize) -> Resizer {
        Resizer {
            w,
            rows: AxisTaps::new(h, new_h),
            cols: AxisTaps::new(w, new_w),
        }
    }

    fn resize_plane(&self, src: &[f32], dst: &mut [f32]) {
        let new_w = self.cols.lo.len();
        for (y, row_out) in dst.chunks_exact_mut(new_w).enumerate() {
            let (r0, r1) = (self.rows.lo[y] * self.w, self.rows.hi[y] * self.w);
            let wy = self.rows.w_hi[y];
            for (x, out) in row_out.iter_mut().enumerate() {
                let (c0, c1, wx) = (self.cols.lo[x], self.cols.hi[x], self.cols.w_hi[x]);
                let top = src[r0 + c0] * (1.0 - wx) + src[r0 + c1] * wx;
                let bottom = src[r1 + c0] * (1.0 - wx) + src[r1 + c1] * wx;
                *out = top * (1.0 - wy) + bottom * wy;
            }
        }
    }
}

/// How to cut a data set into batches for one epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchConfig {
    pub batch_size: usize,
    /// Shuffle the examples (training); `false` keeps file order (evaluation).
    pub shuffle: bool,
    /// The run's seed; with the epoch number it fixes the order, so a resumed run sees the
    /// same batches as an uninterrupted one.
    pub seed: u64,
    pub epoch: u32,
    /// Leave out the last batch when it is smaller than `batch_size`. By default (`false`) it
    /// is yielded, smaller, like PyTorch's `DataLoader(drop_last=False)`.
    pub drop_last: bool,
    /// Resize every image to `(h, w)` as it is batched (see [`resize_bilinear`]). Resizing
    /// per batch keeps memory at the 28×28 data set's size: Fashion-MNIST at 224×224 would
    /// take 12 GB.
    pub resize: Option<(usize, usize)>,
}

impl BatchConfig {
    /// Shuffled batches of `batch_size`, last partial batch kept, no resize.
    pub fn train(batch_size: usize, seed: u64, epoch: u32) -> BatchConfig {
        BatchConfig {
            batch_size,
            shuffle: true,
            seed,
            epoch,
            drop_last: false,
            resize: None,
        }
    }

    /// Batches in file order, last partial batch kept, no resize.
    pub fn eval(batch_size: usize) -> BatchConfig {
        BatchConfig {
            batch_size,
            shuffle: false,
            seed: 0,
            epoch: 0,
            drop_last: false,
            resize: None,
        }
    }
}

/// One batch, borrowed from [`Batches`]' buffers until the next call to
/// [`Batches::next_batch`].
#[derive(Clone, Copy, Debug)]
pub struct Batch<'a> {
    /// `[B, C, H, W]`, contiguous.
    pub images: &'a [f32],
    /// `[B]`.
    pub labels: &'a [i64],
    /// `[B, C, H, W]`.
    pub shape: [usize; 4],
}

impl Batch<'_> {
    pub fn len(&self) -> usize {
        self.shape[0]
    }

    pub fn is_empty(&self) -> bool {
        self.shape[0] == 0
    }
}

/// The batches of one epoch. A lending iterator: `while let Some(batch) =
/// batches.next_batch() { … }`; each batch is gathered into buffers allocated once.
#[derive(Debug)]
pub struct Batches<'d> {
    data: &'d Dataset,
    order: Vec<usize>,
    batch_size: usize,
    n_batches: usize,
    next: usize,
    resizer: Option<Resizer>,
    out_hw: (usize, usize),
    images: Vec<f32>,
    labels: Vec<i64>,
}

impl<'d> Batches<'d> {
    /// # Panics
    /// If `config.batch_size` is 0, or `config.resize` has a zero side.
    pub fn new(data: &'d Dataset, config: BatchConfig) -> Batches<'d> {
        assert!(config.batch_size > 0, "batch size must be positive");
        assert!(
            config.resize.is_none_or(|(h, w)| h > 0 && w > 0),
            "resize target must be positive"
        );
        let mut order: Vec<usize> = (0..data.n).collect();
        if config.shuffle {
            shuffle(&mut order, config.seed, config.epoch);
        }
        let n_batches = if config.drop_last {
            data.n / config.batch_size
        } else {
            data.n.div_ceil(config.batch_size)
        };
        let out_hw = config.resize.unwrap_or((data.height, data.width));
        let resizer = (out_hw != (data.height, data.width))
            .then(|| Resizer::new(data.height, data.width, out_hw.0, out_hw.1));
        // A batch never holds more than the data set (`--batch 1000000000` on 1,000 examples).
        let batch = config.batch_size.min(data.n);
        let batch_floats = batch
            .saturating_mul(data.channels)
            .saturating_mul(out_hw.0)
            .saturating_mul(out_hw.1);
        Batches {
            data,
            order,
            batch_size: config.batch_size,
            n_batches,
            next: 0,
            resizer,
            out_hw,
            images: Vec::with_capacity(batch_floats),
            labels: Vec::with_capacity(batch),
        }
    }

    /// The number of batches in the epoch (including those already taken).
    pub fn len(&self) -> usize {
        self.n_batches
    }

    pub fn is_empty(&self) -> bool {
        self.n_batches == 0
    }

    /// The example order of this epoch (indices into the data set).
    pub fn order(&self) -> &[usize] {
        &self.order
    }

    /// Skips to batch `index` (to resume part-way through an epoch).
    pub fn seek(&mut self, index: usize) {
        self.next = index.min(self.n_batches);
    }

    /// The next batch, or `None` at the end of the epoch.
    pub fn next_batch(&mut self) -> Option<Batch<'_>> {
        let mut images = std::mem::take(&mut self.images);
        let mut labels = std::mem::take(&mut self.labels);
        let shape = self.fill(&mut images, &mut labels);
        self.images = images;
        self.labels = labels;
        Some(Batch {
            images: &self.images,
            labels: &self.labels,
            shape: shape?,
        })
    }

    /// The next batch into `images` and `labels` (their contents replaced), and its shape;
    /// `None` at the end of the epoch. [`Batches::next_batch`] fills buffers allocated once for
    /// a full batch, which then never reallocate.
    pub fn fill(&mut self, images: &mut Vec<f32>, labels: &mut Vec<i64>) -> Option<[usize; 4]> {
        if self.next >= self.n_batches {
            return None;
        }
        let start = self.next * self.batch_size;
        let end = (start + self.batch_size).min(self.data.n);
        self.next += 1;
        let d = self.data;
        let (c, (oh, ow)) = (d.channels, self.out_hw);
        let in_len = d.image_len();
        let out_plane = oh * ow;
        let b = end - start;
        images.resize(b * c * out_plane, 0.0);
        labels.clear();
        for (slot, &i) in self.order[start..end].iter().enumerate() {
            let src = &d.images[i * in_len..(i + 1) * in_len];
            let dst = &mut images[slot * c * out_plane..(slot + 1) * c * out_plane];
            match &self.resizer {
                None => dst.copy_from_slice(src),
                Some(r) => {
                    let in_plane = d.height * d.width;
                    for (s, t) in src
                        .chunks_exact(in_plane)
                        .zip(dst.chunks_exact_mut(out_plane))
                    {
                        r.resize_plane(s, t);
                    }
                }
            }
            labels.push(d.labels[i]);
        }
        Some([b, c, oh, ow])
    }
}

/// Fisher–Yates with a ChaCha8 stream seeded by `(seed, epoch)`. The bounded draws are
/// written here (Lemire's method on `next_u64`) rather than taken from `rand`, so the order
/// depends only on ChaCha8's output and stays the same across `rand` versions.
pub fn shuffle(order: &mut [usize], seed: u64, epoch: u32) {
    let mut key = [0u8; 32];
    key[..8].copy_from_slice(&seed.to_le_bytes());
    key[8..12].copy_from_slice(&epoch.to_le_bytes());
    key[12..16].copy_from_slice(b"shuf");
    let mut rng = ChaCha8Rng::from_seed(key);
    for i in (1..order.len()).rev() {
        let j = bounded(&mut rng, i as u64 + 1) as usize;
        order.swap(i, j);
    }
}

/// A uniform draw from `0..n` (`n > 0`), without modulo bias.
fn bounded(rng: &mut ChaCha8Rng, n: u64) -> u64 {
    let threshold = n.wrapping_neg() % n;
    loop {
        let m = u128::from(rng.next_u64()) * u128::from(n);
        if (m as u64) >= threshold {
            return (m >> 64) as u64;
        }
    }
}

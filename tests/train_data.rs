//! Data loading, resizing, batching and checkpoints of `cnnc::train`.

use cnnc::train::data::{
    read_idx, shuffle, IDX_CHANNEL_IMAGES_MAGIC, IDX_IMAGES_MAGIC, IDX_LABELS_MAGIC,
};
use cnnc::train::progress::EpochStats;
use cnnc::train::{
    resize_bilinear, BatchConfig, Batches, Checkpoint, CheckpointError, DataError, DataSource,
    Dataset,
};
use flate2::write::GzEncoder;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

fn idx(magic: u32, dims: &[u32], data: &[u8]) -> Vec<u8> {
    let mut out = magic.to_be_bytes().to_vec();
    for d in dims {
        out.extend(d.to_be_bytes());
    }
    out.extend(data);
    out
}

fn gz(bytes: &[u8]) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

/// `n` images of `h × w` where pixel j of image i is `(i * 7 + j) % 256`, labels `i % 10`.
fn sample(n: u32, h: u32, w: u32) -> (Vec<u8>, Vec<u8>) {
    let pixels = (0..n * h * w)
        .map(|k| ((k / (h * w)) * 7 + k % (h * w)) as u8)
        .collect::<Vec<_>>();
    let labels = (0..n).map(|i| (i % 10) as u8).collect::<Vec<_>>();
    (
        idx(IDX_IMAGES_MAGIC, &[n, h, w], &pixels),
        idx(IDX_LABELS_MAGIC, &[n], &labels),
    )
}

/// Writes a data directory; `gzip` picks `.gz` files or raw ones.
fn data_dir(gzip: bool) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let (ti, tl) = sample(12, 3, 4);
    let (ei, el) = sample(5, 3, 4);
    for (name, bytes) in [
        ("train-images-idx3-ubyte", ti),
        ("train-labels-idx1-ubyte", tl),
        ("t10k-images-idx3-ubyte", ei),
        ("t10k-labels-idx1-ubyte", el),
    ] {
        if gzip {
            write(dir.path(), &format!("{name}.gz"), &gz(&bytes));
        } else {
            write(dir.path(), name, &bytes);
        }
    }
    dir
}

#[test]
fn loads_gzipped_and_raw_directories_alike() {
    let mut loaded = Vec::new();
    for gzip in [true, false] {
        let dir = data_dir(gzip);
        let source = DataSource::resolve(dir.path().to_str().unwrap()).unwrap();
        assert_eq!(
            source.train_images.extension().is_some_and(|e| e == "gz"),
            gzip
        );
        let splits = source.load(10).unwrap();
        let t = &splits.train;
        assert_eq!(
            (t.n, t.channels, t.height, t.width, t.classes),
            (12, 1, 3, 4, 10)
        );
        assert_eq!(t.images.len(), 12 * 12);
        assert_eq!(t.images[0], 0.0);
        assert_eq!(t.images[12 + 5], (7.0 + 5.0) / 255.0);
        assert_eq!(t.labels, (0..12).map(|i| i % 10).collect::<Vec<i64>>());
        assert_eq!(splits.test.n, 5);
        loaded.push(splits);
    }
    assert_eq!(loaded[0], loaded[1]);
}

/// `gunzip -k` leaves both files: the `.gz` is read, and `shadowed` names the other for the
/// note `train` prints.
#[test]
fn a_gzipped_file_beside_its_uncompressed_copy_is_named() {
    let dir = data_dir(true);
    let source = DataSource::resolve(dir.path().to_str().unwrap()).unwrap();
    assert!(source.shadowed().is_empty());
    write(dir.path(), "t10k-labels-idx1-ubyte", b"stale");
    let source = DataSource::resolve(dir.path().to_str().unwrap()).unwrap();
    let read = dir.path().join("t10k-labels-idx1-ubyte.gz");
    assert_eq!(
        source.shadowed(),
        vec![(read.as_path(), dir.path().join("t10k-labels-idx1-ubyte"))]
    );
    assert_eq!(source.test_labels, read);
}

/// Images named for rank 3 are looked for first: beside a file named for rank 4 (images of
/// several channels), the one read and the one not read are both named, by `shadowed` and
/// in the note `train` prints.
#[test]
fn images_named_for_both_ranks_are_both_named() {
    let dir = data_dir(true);
    let (rgb, _) = channel_sample(12, [3, 3, 4]);
    write(dir.path(), "train-images-idx4-ubyte.gz", &gz(&rgb));
    let source = DataSource::resolve(dir.path().to_str().unwrap()).unwrap();
    let read = dir.path().join("train-images-idx3-ubyte.gz");
    let unread = dir.path().join("train-images-idx4-ubyte.gz");
    assert_eq!(source.train_images, read);
    assert_eq!(source.shadowed(), vec![(read.as_path(), unread.clone())]);
    let out = dir.path().join("m.onnx");
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_cnnc"))
        .args(["train", "models/lenet.cnn", "--data"])
        .arg(dir.path())
        .arg("--out")
        .arg(&out)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains(&format!(
            "note: both {} and {} are there; train-images-idx3-ubyte.gz is read and \
             train-images-idx4-ubyte.gz is not",
            read.display(),
            unread.display()
        )),
        "{err}"
    );
}

#[test]
fn gzip_is_detected_by_content_not_name() {
    let dir = tempfile::tempdir().unwrap();
    let (images, _) = sample(2, 2, 2);
    let p = write(dir.path(), "images.raw", &gz(&images));
    let (dims, data) = read_idx(&p, IDX_IMAGES_MAGIC).unwrap();
    assert_eq!(dims, vec![2, 2, 2]);
    assert_eq!(data.len(), 8);
    let p = write(dir.path(), "images.gz", &images);
    assert_eq!(read_idx(&p, IDX_IMAGES_MAGIC).unwrap().1.len(), 8);
}

fn load_err(images: &[u8], labels: &[u8], classes: usize) -> DataError {
    let dir = tempfile::tempdir().unwrap();
    let i = write(dir.path(), "images", images);
    let l = write(dir.path(), "labels", labels);
    Dataset::from_idx_files(&i, &l, classes).unwrap_err()
}

#[test]
fn corrupt_files_give_errors_naming_the_file() {
    let (images, labels) = sample(4, 2, 2);
    // Labels given as images.
    let e = load_err(&labels, &labels, 10);
    assert!(
        matches!(
            e,
            DataError::BadMagic {
                found: 0x801,
                expected: 0x803,
                ..
            }
        ),
        "{e}"
    );
    assert!(
        e.to_string().contains("images") && e.to_string().contains("magic"),
        "{e}"
    );

    // Raw file: the header claims one image more / one fewer than the data holds.
    for n in [5u32, 3] {
        let lying = idx(IDX_IMAGES_MAGIC, &[n, 2, 2], &images[16..]);
        let e = load_err(&lying, &labels, 10);
        assert!(matches!(e, DataError::BadHeader { .. }), "{e}");
        assert!(e.to_string().contains("claim"), "{e}");
    }
    // Gzipped: the same lies, found while decompressing (the labels agree with the header,
    // which is checked against them before any data is read).
    for n in [5u32, 3] {
        let lying = gz(&idx(IDX_IMAGES_MAGIC, &[n, 2, 2], &images[16..]));
        let labels = idx(IDX_LABELS_MAGIC, &[n], &vec![0; n as usize]);
        let e = load_err(&lying, &labels, 10);
        assert!(matches!(e, DataError::BadHeader { .. }), "n = {n}: {e}");
    }
    // A damaged gzip stream that inflates to more than its header claims: the damage (the
    // checksum at its end) is what is reported, not a lying header.
    let labels3 = idx(IDX_LABELS_MAGIC, &[3], &[0; 3]);
    let mut damaged = gz(&idx(IDX_IMAGES_MAGIC, &[3, 2, 2], &images[16..]));
    let crc_at = damaged.len() - 8;
    damaged[crc_at] ^= 0xff;
    let e = load_err(&damaged, &labels3, 10);
    assert!(matches!(e, DataError::Gzip { .. }), "{e}");
    // Truncated raw file and truncated gzip stream (cut in the data, and in the trailer).
    let e = load_err(&images[..images.len() - 3], &labels, 10);
    assert!(matches!(e, DataError::BadHeader { .. }), "{e}");
    let (big, big_labels) = sample(50, 28, 28);
    let zipped = gz(&big);
    for cut in [zipped.len() / 2, zipped.len() - 4] {
        let e = load_err(&zipped[..cut], &big_labels, 10);
        assert!(matches!(e, DataError::Gzip { .. }), "cut at {cut}: {e}");
        assert!(
            e.to_string().contains("images: corrupt or truncated gzip"),
            "{e}"
        );
    }
    // Images of zero pixels.
    let e = load_err(&idx(IDX_IMAGES_MAGIC, &[4, 0, 2], &[]), &labels, 10);
    assert!(e.to_string().contains("images of 0×2 pixels"), "{e}");
    // A file too short to hold a header.
    let e = load_err(&images[..6], &labels, 10);
    assert!(matches!(e, DataError::BadHeader { .. }), "{e}");

    // Count mismatch.
    let (_, five_labels) = sample(5, 2, 2);
    let e = load_err(&images, &five_labels, 10);
    assert!(
        matches!(
            e,
            DataError::CountMismatch {
                n_images: 4,
                n_labels: 5,
                ..
            }
        ),
        "{e}"
    );

    // A gzip file cut before the IDX header inflates: the gzip file is named as damaged.
    let cut = gz(&images);
    let e = load_err(&cut[..12], &labels, 10);
    assert!(e.to_string().contains("damaged or cut short"), "{e}");

    // Label out of range: labels go 0..4, so 3 classes rejects example 3, and says the
    // largest label (what the model needs to hold them all).
    let e = load_err(&images, &labels, 3);
    assert!(
        matches!(
            e,
            DataError::LabelOutOfRange {
                index: 3,
                label: 3,
                classes: 3,
                largest: 3,
                ..
            }
        ),
        "{e}"
    );
    assert!(
        e.to_string().contains(
            "the model gives 3 class scores, so labels go from 0 to 2 (the largest label is 3)"
        ),
        "{e}"
    );
    // One class score: said in the singular.
    let e = load_err(&images, &labels, 1);
    assert!(
        e.to_string().contains(
            "label 1 of example 1 is out of range: the model gives 1 class score, so the only \
             label it takes is 0 (the largest label is 3)"
        ),
        "{e}"
    );
}

#[test]
fn huge_header_claims_fail_fast() {
    let dir = tempfile::tempdir().unwrap();
    for (magic, dims) in [
        (IDX_IMAGES_MAGIC, vec![u32::MAX, 28, 28]),
        (IDX_LABELS_MAGIC, vec![u32::MAX]),
        (IDX_IMAGES_MAGIC, vec![1 << 20, 28, 28]), // 822 MB: under the cap, over the file
        // No records, but records of 2^96 bytes: the size of one would overflow.
        (
            IDX_CHANNEL_IMAGES_MAGIC,
            vec![0, u32::MAX, u32::MAX, u32::MAX],
        ),
        (IDX_IMAGES_MAGIC, vec![0, u32::MAX, u32::MAX]),
    ] {
        // Records claimed, or none (then the file has no data either).
        let data: &[u8] = if dims[0] == 0 { &[] } else { &[0; 100] };
        let bytes = idx(magic, &dims, data);
        for (name, bytes) in [("raw", bytes.clone()), ("gz", gz(&bytes))] {
            let p = write(dir.path(), name, &bytes);
            let e = read_idx(&p, magic).unwrap_err();
            assert!(
                matches!(e, DataError::BadHeader { .. }),
                "{name} {dims:?}: {e}"
            );
        }
    }
}

/// A valid file of more than 2 GiB (sparse here: its length agrees with its header) is no
/// damaged one: with a limit, its first examples are read.
#[test]
fn a_file_over_2_gib_reads_its_first_examples() {
    let dir = tempfile::tempdir().unwrap();
    let n = 2_800_000u32; // 28×28 bytes each: 2.2 GB
    let (images, labels) = sample(10, 28, 28);
    let p = dir.path().join("train-images-idx3-ubyte");
    // `sample` gives whole IDX files: their data follows 16 and 8 header bytes.
    std::fs::write(&p, idx(IDX_IMAGES_MAGIC, &[n, 28, 28], &images[16..])).unwrap();
    let file = std::fs::OpenOptions::new().write(true).open(&p).unwrap();
    file.set_len(16 + u64::from(n) * 784).unwrap();
    let all_labels: Vec<u8> = (0..n).map(|i| (i % 10) as u8).collect();
    write(
        dir.path(),
        "train-labels-idx1-ubyte",
        &idx(IDX_LABELS_MAGIC, &[n], &all_labels),
    );
    let (ei, el) = sample(5, 28, 28);
    write(dir.path(), "t10k-images-idx3-ubyte", &ei);
    write(dir.path(), "t10k-labels-idx1-ubyte", &el);
    let source = DataSource::resolve(dir.path().to_str().unwrap()).unwrap();
    let (splits, ()) = source
        .load_with(10, [Some(10), None], |_| Ok::<(), DataError>(()))
        .unwrap();
    assert_eq!(splits.train.n, 10);
    let want: Vec<i64> = labels[8..].iter().map(|&l| i64::from(l)).collect();
    assert_eq!(splits.train.labels, want);
}

#[test]
fn image_size_must_match_the_model_unless_resized() {
    let dir = data_dir(false);
    let train = DataSource::resolve(dir.path().to_str().unwrap())
        .unwrap()
        .load(10)
        .unwrap()
        .train;
    assert_eq!(train.fit_input([1, 3, 4], false).unwrap(), None);
    let e = train.fit_input([1, 6, 8], false).unwrap_err();
    assert!(
        matches!(
            e,
            DataError::ShapeMismatch {
                found: [1, 3, 4],
                expected: [1, 6, 8]
            }
        ),
        "{e}"
    );
    assert!(e.help().unwrap().contains("resize"));
    assert_eq!(train.fit_input([1, 6, 8], true).unwrap(), Some((6, 8)));
    assert!(
        train.fit_input([3, 6, 8], true).is_err(),
        "channels are never converted"
    );
}

#[test]
fn resolve_reports_missing_directories_and_files() {
    let e = DataSource::resolve("/nonexistent/data").unwrap_err();
    assert!(matches!(e, DataError::NoDirectory { .. }), "{e}");
    let e = DataSource::resolve("mnist").unwrap_err();
    assert!(e.help().unwrap().contains("no Debian package"), "{e}");
    let dir = data_dir(true);
    std::fs::remove_file(dir.path().join("t10k-labels-idx1-ubyte.gz")).unwrap();
    let e = DataSource::resolve(dir.path().to_str().unwrap()).unwrap_err();
    assert!(
        matches!(&e, DataError::MissingFile { wanted, .. } if wanted == "t10k-labels-idx1-ubyte"),
        "{e}"
    );
    // The help names all four files, the test split's too.
    assert!(e.help().unwrap().contains("t10k-labels-idx1-ubyte"), "{e}");
    // A folder where a file belongs is said as such, not as missing.
    std::fs::create_dir(dir.path().join("t10k-labels-idx1-ubyte")).unwrap();
    let e = DataSource::resolve(dir.path().to_str().unwrap()).unwrap_err();
    assert!(
        e.to_string()
            .ends_with("it is a folder; data files must be regular files"),
        "{e}"
    );
    // Something the user passed, not a damaged data set: exit 2, as a device given as
    // `--data`.
    assert!(e.is_user_input(), "{e}");
    // So is a named pipe: read twice (its header, then its examples), a data file cannot be
    // one.
    std::fs::remove_dir(dir.path().join("t10k-labels-idx1-ubyte")).unwrap();
    let fifo = dir.path().join("t10k-labels-idx1-ubyte");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let e = DataSource::resolve(dir.path().to_str().unwrap()).unwrap_err();
    assert!(
        e.to_string().ends_with(
            "t10k-labels-idx1-ubyte: it is a named pipe (FIFO); data files must be regular files"
        ),
        "{e}"
    );
    assert!(e.is_user_input(), "{e}");
    std::fs::remove_file(&fifo).unwrap();
    std::fs::create_dir(&fifo).unwrap();
    assert!(DataSource::resolve("/dev/zero")
        .unwrap_err()
        .is_user_input());
    // A link to nothing is said as such: the name the user would look for is the target.
    std::fs::remove_dir(dir.path().join("t10k-labels-idx1-ubyte")).unwrap();
    std::os::unix::fs::symlink(
        "/nonexistent/labels.gz",
        dir.path().join("t10k-labels-idx1-ubyte.gz"),
    )
    .unwrap();
    let dangling = DataSource::resolve(dir.path().to_str().unwrap()).unwrap_err();
    assert!(
        dangling
            .to_string()
            .ends_with("t10k-labels-idx1-ubyte.gz: it is a symbolic link to /nonexistent/labels.gz, which does not exist"),
        "{dangling}"
    );
    assert!(!DataSource::resolve("/no/such/folder")
        .unwrap_err()
        .is_user_input());

    // Test images of another size than the train images: two data sets, not a damaged file.
    let dir = data_dir(false);
    let (other, _) = sample(5, 4, 4);
    write(dir.path(), "t10k-images-idx3-ubyte", &other);
    let e = DataSource::resolve(dir.path().to_str().unwrap())
        .unwrap()
        .load(10)
        .unwrap_err();
    assert!(
        matches!(
            e,
            DataError::SplitSizes {
                test_shape: [1, 4, 4],
                train_shape: [1, 3, 4],
                ..
            }
        ),
        "{e}"
    );
    assert!(e.help().unwrap().contains("two data sets"), "{e}");
    // Train images of 0 rows: the file's own fault, said before the splits are compared.
    write(
        dir.path(),
        "train-images-idx3-ubyte",
        &idx(IDX_IMAGES_MAGIC, &[12, 0, 4], &[]),
    );
    let e = DataSource::resolve(dir.path().to_str().unwrap())
        .unwrap()
        .load(10)
        .unwrap_err();
    assert!(e.to_string().contains("images of 0×4 pixels"), "{e}");
}

/// A loop of symbolic links where a data file goes, and a link to nothing (or a loop) given
/// as `--data`, are said as such, as a link to nothing where a data file goes is.
#[test]
fn links_to_nothing_and_loops_of_links_are_named() {
    let dir = data_dir(true);
    let labels = dir.path().join("t10k-labels-idx1-ubyte.gz");
    std::fs::remove_file(&labels).unwrap();
    std::os::unix::fs::symlink("t10k-labels-idx1-ubyte.gz", &labels).unwrap();
    let e = DataSource::resolve(dir.path().to_str().unwrap()).unwrap_err();
    assert!(
        e.to_string().ends_with(
            "t10k-labels-idx1-ubyte.gz: it is a loop of symbolic links: it links to \
             t10k-labels-idx1-ubyte.gz, which never leads to a file"
        ),
        "{e}"
    );

    let links = tempfile::tempdir().unwrap();
    let gone = links.path().join("gone");
    let dangling = links.path().join("data");
    std::os::unix::fs::symlink(&gone, &dangling).unwrap();
    let e = DataSource::resolve(dangling.to_str().unwrap()).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "{}: it is a symbolic link to {}, which does not exist",
            dangling.display(),
            gone.display()
        )
    );
    // Missing, as a missing folder is (exit 3), not a file given in its place (exit 2).
    assert!(!e.is_user_input(), "{e}");
    let looped = links.path().join("looped");
    std::os::unix::fs::symlink("looped", &looped).unwrap();
    let e = DataSource::resolve(looped.to_str().unwrap()).unwrap_err();
    assert!(e.to_string().contains("a loop of symbolic links"), "{e}");
}

fn close(a: &[f32], b: &[f32]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-6)
}

#[test]
fn resize_matches_pytorch_bilinear_without_align_corners() {
    // F.interpolate(torch.tensor([[[[0., 1.], [2., 3.]]]]), size=(4, 4), mode="bilinear",
    // align_corners=False)
    let out = resize_bilinear(&[0.0, 1.0, 2.0, 3.0], 2, 2, 4, 4);
    #[rustfmt::skip]
    let expected = [
        0.0, 0.25, 0.75, 1.0,
        0.5, 0.75, 1.25, 1.5,
        1.5, 1.75, 2.25, 2.5,
        2.0, 2.25, 2.75, 3.0,
    ];
    assert!(close(&out, &expected), "{out:?}");
    // Downsampling 4 → 2 samples at 0.5 and 2.5: means of neighbouring pairs (no antialias).
    let row = resize_bilinear(&[0.0, 1.0, 2.0, 3.0], 1, 4, 1, 2);
    assert!(close(&row, &[0.5, 2.5]), "{row:?}");
    // 3 → 2: scale 1.5, sources 0.25 and 1.75.
    let row = resize_bilinear(&[0.0, 10.0, 20.0], 1, 3, 1, 2);
    assert!(close(&row, &[2.5, 17.5]), "{row:?}");
    // Identity, and several planes at once.
    let planes: Vec<f32> = (0..24).map(|x| x as f32).collect();
    assert!(close(&resize_bilinear(&planes, 3, 4, 3, 4), &planes));
    assert_eq!(resize_bilinear(&planes, 3, 4, 6, 8).len(), 2 * 48);
}

fn toy(n: usize) -> Dataset {
    Dataset {
        images: (0..n * 4).map(|x| x as f32).collect(),
        labels: (0..n as i64).collect(),
        n,
        channels: 1,
        height: 2,
        width: 2,
        classes: n,
    }
}

#[test]
fn shuffling_is_a_reproducible_permutation() {
    let mut a: Vec<usize> = (0..1000).collect();
    let mut b = a.clone();
    shuffle(&mut a, 42, 3);
    shuffle(&mut b, 42, 3);
    assert_eq!(a, b);
    let mut sorted = a.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, (0..1000).collect::<Vec<_>>());
    assert_ne!(a, sorted);
    let mut other_epoch: Vec<usize> = (0..1000).collect();
    shuffle(&mut other_epoch, 42, 4);
    assert_ne!(a, other_epoch);
    let mut other_seed: Vec<usize> = (0..1000).collect();
    shuffle(&mut other_seed, 43, 3);
    assert_ne!(a, other_seed);
}

#[test]
fn batches_gather_images_with_their_labels() {
    let data = toy(10);
    let mut batches = Batches::new(&data, BatchConfig::train(4, 7, 0));
    assert_eq!(batches.len(), 3);
    let order = batches.order().to_vec();
    let mut seen = Vec::new();
    let mut sizes = Vec::new();
    while let Some(b) = batches.next_batch() {
        sizes.push(b.shape);
        for (k, &label) in b.labels.iter().enumerate() {
            let img = &b.images[k * 4..(k + 1) * 4];
            assert_eq!(
                img,
                &data.images[label as usize * 4..label as usize * 4 + 4]
            );
            seen.push(label as usize);
        }
    }
    assert_eq!(sizes, vec![[4, 1, 2, 2], [4, 1, 2, 2], [2, 1, 2, 2]]);
    assert_eq!(seen, order);

    let mut cfg = BatchConfig::train(4, 7, 0);
    cfg.drop_last = true;
    let mut dropped = Batches::new(&data, cfg);
    assert_eq!(dropped.len(), 2);
    let mut n = 0;
    while let Some(b) = dropped.next_batch() {
        assert_eq!(b.len(), 4);
        n += 1;
    }
    assert_eq!(n, 2);

    // Evaluation order is file order; seek resumes part-way.
    let mut eval = Batches::new(&data, BatchConfig::eval(3));
    eval.seek(3);
    assert_eq!(eval.next_batch().unwrap().labels, &[9]);
    assert!(eval.next_batch().is_none());
}

#[test]
fn batches_resize_on_the_fly() {
    let data = Dataset {
        images: vec![0.0, 1.0, 2.0, 3.0, 10.0, 11.0, 12.0, 13.0],
        labels: vec![0, 1],
        n: 2,
        channels: 1,
        height: 2,
        width: 2,
        classes: 2,
    };
    let mut cfg = BatchConfig::eval(2);
    cfg.resize = Some((4, 4));
    let mut batches = Batches::new(&data, cfg);
    let b = batches.next_batch().unwrap();
    assert_eq!(b.shape, [2, 1, 4, 4]);
    assert!(close(b.images, &resize_bilinear(&data.images, 2, 2, 4, 4)));
}

/// A checked model compiled from `source` (named `lenet.cnn`).
fn checked(source: &str) -> cnnc::shape::CheckedModel {
    let c = cnnc::compile_source(Path::new("lenet.cnn"), source.to_string());
    assert!(!c.diagnostics.has_errors(), "{source}");
    c.models.into_iter().next().unwrap()
}

const LENET: &str = "model LeNet(input: [1, 4, 4]) { conv(2, 2) flatten linear(2) }";

fn checkpoint_of(model: &cnnc::shape::CheckedModel) -> Checkpoint {
    let mut tensors = BTreeMap::new();
    tensors.insert(
        "param.conv1.weight".to_string(),
        (vec![2, 1, 2, 2], (0..8).map(|x| x as f32 * 0.5).collect()),
    );
    tensors.insert(
        "param.conv1.bias".to_string(),
        (vec![2], vec![-1.0, f32::MIN_POSITIVE]),
    );
    tensors.insert(
        "param.linear1.weight".to_string(),
        (vec![2, 18], vec![0.125; 36]),
    );
    tensors.insert("param.linear1.bias".to_string(), (vec![2], vec![0.0; 2]));
    tensors.insert("opt.m.conv1.bias".to_string(), (vec![2], vec![0.25, 1e30]));
    tensors.insert("scalar".to_string(), (vec![], vec![3.5]));
    Checkpoint {
        tensors,
        epoch: 3,
        step: 705,
        rng_seed: u64::MAX - 1,
        model_name: model.name.clone(),
        source_sha256: model.source_hash.clone(),
        model_sha256: Some(model.structure_hash()),
        optimizer: serde_json::json!({"kind": "sgd", "lr": 0.9}),
        test_acc: Some(0.8125),
        test_examples: Some(16),
    }
}

#[test]
fn checkpoint_round_trips_atomically() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("lenet.ckpt");
    let lenet = checked(LENET);
    let mut ckpt = checkpoint_of(&lenet);
    ckpt.save(&path).unwrap();
    assert_eq!(Checkpoint::load(&path).unwrap(), ckpt);
    // Overwriting replaces the file; no temporary files are left either time.
    ckpt.epoch = 4;
    ckpt.save(&path).unwrap();
    let loaded = Checkpoint::load_for(&path, &lenet).unwrap();
    assert_eq!(loaded.epoch, 4);
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from("lenet.ckpt")]);
}

/// A checkpoint belongs to the network, not to the text: an edit of comments or layout keeps
/// it, a changed layer or another model does not; a checkpoint without a structure hash
/// (older cnnc) is matched by the source's hash.
#[test]
fn checkpoint_matches_the_network_not_the_text() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.safetensors");
    let lenet = checked(LENET);
    checkpoint_of(&lenet).save(&path).unwrap();

    let relaid = checked(
        "# LeNet, reformatted\nmodel LeNet(input: [1, 4, 4]) {\n    conv(2, 2)  // the only conv\n    flatten\n    linear(2)\n}\n",
    );
    assert_ne!(relaid.source_hash, lenet.source_hash);
    Checkpoint::load_for(&path, &relaid).unwrap();

    let changed = checked("model LeNet(input: [1, 4, 4]) { conv(2, 2) relu flatten linear(2) }");
    let e = Checkpoint::load_for(&path, &changed).unwrap_err();
    assert!(
        matches!(
            e,
            CheckpointError::ModelMismatch {
                source_changed: true,
                ..
            }
        ),
        "{e}"
    );
    let help = e.help().unwrap();
    assert!(help.contains("network in the .cnn file changed"), "{help}");
    // The parameters all match: a layer without any changed.
    assert!(help.contains("a layer without parameters"), "{help}");
    // A parameter of another shape, one new and one gone are each named.
    let wider = checked(
        "model LeNet(input: [1, 4, 4]) { conv(3, 2) flatten linear(2, bias=false) linear(2) }",
    );
    let help = Checkpoint::load_for(&path, &wider)
        .unwrap_err()
        .help()
        .unwrap();
    for said in [
        "`conv1.weight` was [2, 1, 2, 2] and is [3, 1, 2, 2]",
        "`linear2.bias` [2] is new",
    ] {
        assert!(help.contains(said), "{said}: {help}");
    }
    let other = checked("model AlexNet(input: [1, 4, 4]) { conv(2, 2) flatten linear(2) }");
    let e = Checkpoint::load_for(&path, &other).unwrap_err();
    assert!(e.to_string().contains("`LeNet`, not `AlexNet`"), "{e}");

    let mut old = checkpoint_of(&lenet);
    old.model_sha256 = None;
    old.save(&path).unwrap();
    Checkpoint::load_for(&path, &lenet).unwrap();
    assert!(Checkpoint::load_for(&path, &relaid).is_err());
    // A structure hash of another cnnc's making: the byte-identical source still matches.
    old.model_sha256 = Some("00".repeat(32));
    old.save(&path).unwrap();
    Checkpoint::load_for(&path, &lenet).unwrap();
    assert!(Checkpoint::load_for(&path, &relaid).is_err());
}

#[test]
fn checkpoint_errors_are_clear() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.safetensors");
    let lenet = checked(LENET);
    checkpoint_of(&lenet).save(&path).unwrap();

    // A damaged file: one byte of tensor data changed (the last byte of the file is data).
    let mut bytes = std::fs::read(&path).unwrap();
    *bytes.last_mut().unwrap() ^= 0x40;
    let damaged = write(dir.path(), "damaged.safetensors", &bytes);
    let e = Checkpoint::load(&damaged).unwrap_err();
    assert!(e.to_string().contains("the file is damaged"), "{e}");

    // NaN state cannot come from cnnc (it stops before a non-finite step's checkpoint).
    let mut nan = checkpoint_of(&lenet);
    nan.tensors.get_mut("param.conv1.bias").unwrap().1[1] = f32::NAN;
    let nan_path = dir.path().join("nan.safetensors");
    nan.save(&nan_path).unwrap();
    let e = Checkpoint::load_for(&nan_path, &lenet).unwrap_err();
    assert!(
        e.to_string()
            .contains("`param.conv1.bias` holds NaN or infinite values"),
        "{e}"
    );

    let junk = write(
        dir.path(),
        "junk",
        b"hello, this is not a checkpoint at all",
    );
    let e = Checkpoint::load(&junk).unwrap_err();
    assert!(matches!(e, CheckpointError::NotACheckpoint { .. }), "{e}");
    assert!(e.to_string().contains("junk"), "{e}");

    // A safetensors file from elsewhere.
    let plain = dir.path().join("plain.safetensors");
    let data = [0u8; 8];
    let view =
        safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![2], &data).unwrap();
    safetensors::serialize_to_file([("w", view)], None, &plain).unwrap();
    let e = Checkpoint::load(&plain).unwrap_err();
    assert!(e.to_string().contains("without cnnc metadata"), "{e}");

    let e = Checkpoint::load(&dir.path().join("missing")).unwrap_err();
    assert!(matches!(e, CheckpointError::Io { .. }), "{e}");

    let mut bad = checkpoint_of(&lenet);
    bad.tensors.insert("x".to_string(), (vec![3], vec![1.0]));
    let e = bad.save(&dir.path().join("bad")).unwrap_err();
    assert!(matches!(e, CheckpointError::BadTensor { .. }), "{e}");
    assert!(!dir.path().join("bad").exists());
}

/// Every metadata entry is judged as it is read (the metadata is outside the tensors'
/// checksum): a value cnnc cannot have written is a damaged or edited file, refused as such,
/// never reported (a test accuracy of 5) or recorded in a trained model.
#[test]
fn a_checkpoints_metadata_out_of_range_is_damage() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.safetensors");
    let lenet = checked(LENET);
    type Edit = fn(&mut Checkpoint);
    let edits: [(Edit, &str); 9] = [
        (
            |c| c.test_acc = Some(5.0),
            "metadata `test_acc` = `5` is not an accuracy (a number from 0 to 1)",
        ),
        (
            |c| c.test_acc = Some(f64::NAN),
            "metadata `test_acc` = `NaN` is not an accuracy",
        ),
        (
            |c| c.test_acc = Some(-0.5),
            "metadata `test_acc` = `-0.5` is not an accuracy",
        ),
        (
            |c| c.test_examples = Some(0),
            "metadata `test_examples` = `0`: an accuracy is measured on at least one example",
        ),
        (
            |c| c.step = 2,
            "metadata `step` = `2` is fewer than its epochs (3)",
        ),
        (
            |c| c.source_sha256 = "not a hash".into(),
            "metadata `source_sha256` = `not a hash` is not a SHA-256 (64 hexadecimal digits)",
        ),
        (
            |c| c.model_sha256 = Some("ab".repeat(33)),
            "metadata `model_sha256`",
        ),
        (
            |c| c.model_name = String::new(),
            "metadata `model_name` is empty",
        ),
        (
            |c| c.optimizer = serde_json::json!(5),
            "metadata `optimizer` = `5` is not a JSON object",
        ),
    ];
    for (edit, says) in edits {
        let mut c = checkpoint_of(&lenet);
        edit(&mut c);
        c.save(&path).unwrap();
        let e = Checkpoint::load(&path).unwrap_err();
        assert!(matches!(e, CheckpointError::Invalid { .. }), "{says}: {e}");
        assert!(e.to_string().contains(says), "{says}: {e}");
        assert!(e.help().unwrap().contains("damaged or was edited"), "{e}");
    }
    // The bounds themselves are accuracies.
    for acc in [0.0, 1.0] {
        let mut c = checkpoint_of(&lenet);
        c.test_acc = Some(acc);
        c.save(&path).unwrap();
        assert_eq!(Checkpoint::load(&path).unwrap().test_acc, Some(acc));
    }
}

#[test]
fn epoch_lines_in_text_and_json() {
    let s = EpochStats {
        epoch: 3,
        loss: 0.469,
        train_acc: 0.823,
        test_acc: 0.779,
        examples_per_sec: 35726.4,
        steps: None,
        times: Default::default(),
    };
    assert_eq!(
        s.to_string(),
        "epoch 3, loss 0.4690, train acc 0.823, test acc 0.779, 35726.4 examples/sec"
    );
    let v: serde_json::Value = serde_json::from_str(&s.to_json()).unwrap();
    assert_eq!(
        v,
        serde_json::json!({"epoch": 3, "loss": 0.469, "train_acc": 0.823, "test_acc": 0.779, "examples_per_sec": 35726.4})
    );
    // An epoch resumed mid-way says which of its steps the numbers cover.
    let resumed = EpochStats {
        steps: Some((33, 235)),
        ..s
    };
    assert_eq!(
        resumed.to_string(),
        "epoch 3, loss 0.4690, train acc 0.823, test acc 0.779, 35726.4 examples/sec (steps 33–235, resumed)"
    );
    let v: serde_json::Value = serde_json::from_str(&resumed.to_json()).unwrap();
    assert_eq!(v["steps"], serde_json::json!([33, 235]));
    // Hidden when stderr is not a terminal (as under `cargo test` with captured output).
    let bar = cnnc::train::progress::epoch_bar(1, 10);
    bar.inc(1);
    bar.finish_and_clear();
}

#[test]
fn loads_the_installed_fashion_mnist() {
    let source = match DataSource::resolve("fashion-mnist") {
        Ok(s) => s,
        Err(e) => {
            eprintln!("skipped: {e} ({})", e.help().unwrap_or_default());
            return;
        }
    };
    let splits = source.load(10).unwrap();
    for (d, n) in [(&splits.train, 60_000), (&splits.test, 10_000)] {
        assert_eq!((d.n, d.channels, d.height, d.width), (n, 1, 28, 28));
        assert_eq!(d.images.len(), n * 784);
        assert!(d.images.iter().all(|&x| (0.0..=1.0).contains(&x)));
        let mut counts = [0usize; 10];
        for &l in &d.labels {
            counts[l as usize] += 1;
        }
        assert_eq!(counts, [n / 10; 10], "Fashion-MNIST is balanced");
    }
    assert_eq!(splits.train.fit_input([1, 28, 28], false).unwrap(), None);
}

/// A gzip file of several members (`cat a.gz b.gz`, bgzip) is one stream; bytes after the
/// last member that are neither gzip nor zero padding are damage.
#[test]
fn multi_member_gzip_is_read_whole_and_trailing_bytes_are_damage() {
    let dir = tempfile::tempdir().unwrap();
    let (images, _) = sample(4, 3, 4);
    let mut two = gz(&images[..20]);
    two.extend(gz(&images[20..]));
    let p = write(dir.path(), "two.gz", &two);
    assert_eq!(read_idx(&p, IDX_IMAGES_MAGIC).unwrap().1, images[16..]);
    let mut tail = gz(&images);
    tail.extend(b"garbage!");
    let p = write(dir.path(), "tail.gz", &tail);
    let e = read_idx(&p, IDX_IMAGES_MAGIC).unwrap_err();
    assert!(matches!(e, DataError::Gzip { .. }), "{e}");
    // Said as what it is, not as a file cut short.
    assert!(e.to_string().contains("trailing garbage"), "{e}");
    // Zero padding after the last member (a tape's or a block device's) is no damage, as
    // GNU gzip says; padding followed by more bytes is.
    let mut padded = two.clone();
    padded.extend([0u8; 1000]);
    let p = write(dir.path(), "padded.gz", &padded);
    assert_eq!(read_idx(&p, IDX_IMAGES_MAGIC).unwrap().1, images[16..]);
    padded.extend(b"x");
    let p = write(dir.path(), "padded_tail.gz", &padded);
    let e = read_idx(&p, IDX_IMAGES_MAGIC).unwrap_err();
    assert!(matches!(e, DataError::Gzip { .. }), "{e}");
}

/// `load_with` judges the image size from the headers before reading any example (a file
/// whose data is cut short still gives the size error), and reads only the examples asked.
#[test]
fn load_with_checks_the_size_first_and_reads_only_the_limit() {
    let dir = data_dir(true);
    let source = DataSource::resolve(dir.path().to_str().unwrap()).unwrap();
    let (splits, seen) = source
        .load_with(10, [Some(5), Some(2)], Ok::<_, DataError>)
        .unwrap();
    assert_eq!(seen, [1, 3, 4]);
    assert_eq!((splits.train.n, splits.test.n), (5, 2));
    assert_eq!(splits.train.images.len(), 5 * 12);
    assert_eq!(splits.train.labels, vec![0, 1, 2, 3, 4]);
    // Damage past the limit is not read; damage within it is.
    let (ti, _) = sample(12, 3, 4);
    let cut = gz(&ti)[..gz(&ti).len() - 30].to_vec();
    write(dir.path(), "train-images-idx3-ubyte.gz", &cut);
    let refused = source.load_with(10, [None, None], |_| {
        Err::<(), _>(DataError::ShapeMismatch {
            found: [1, 3, 4],
            expected: [1, 28, 28],
        })
    });
    assert!(matches!(refused, Err(DataError::ShapeMismatch { .. })));
    assert!(source
        .load_with(10, [Some(1), None], |_| Ok::<_, DataError>(()))
        .is_ok());
    let e = source.load(10).unwrap_err();
    assert!(matches!(e, DataError::Gzip { .. }), "{e}");
}

/// A checkpoint cut short is said to be damaged, not "not a checkpoint": its header says
/// what it is.
#[test]
fn a_truncated_checkpoint_is_damaged_not_foreign() {
    let mut tensors = BTreeMap::new();
    tensors.insert("param.w".to_string(), (vec![4096], vec![0.5f32; 4096]));
    let ck = Checkpoint {
        tensors,
        epoch: 1,
        step: 10,
        rng_seed: 0,
        model_name: "M".into(),
        source_sha256: "0".repeat(64),
        model_sha256: None,
        optimizer: serde_json::json!({"kind": "sgd", "momentum": 0.0, "weight_decay": 0.0, "lr": 0.1}),
        test_acc: None,
        test_examples: None,
    };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.ckpt.safetensors");
    ck.save(&path).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    let cut = dir.path().join("cut.ckpt.safetensors");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let e = Checkpoint::load(&cut).unwrap_err();
    assert!(matches!(e, CheckpointError::Invalid { .. }), "{e}");
    assert!(e.to_string().contains("cut short or damaged"), "{e}");
    assert_eq!(Checkpoint::recorded_lr(&path), Some(Ok(0.1)));
}

/// `n` images of `c × h × w`, channels first; pixel j of image i is `(i * 7 + j) % 256`.
fn channel_sample(n: u32, dims: [u32; 3]) -> (Vec<u8>, Vec<u8>) {
    let len = dims.iter().product::<u32>();
    let pixels = (0..n * len)
        .map(|k| ((k / len) * 7 + k % len) as u8)
        .collect::<Vec<_>>();
    let labels = (0..n).map(|i| (i % 10) as u8).collect::<Vec<_>>();
    let mut all = vec![n];
    all.extend(dims);
    (
        idx(IDX_CHANNEL_IMAGES_MAGIC, &all, &pixels),
        idx(IDX_LABELS_MAGIC, &[n], &labels),
    )
}

/// Images of several channels come as 4-dimensional IDX files, `[N, C, H, W]` (magic
/// 0x0804), under the usual names or `…-images-idx4-ubyte`; they load channels first, and
/// splits of other channel counts, channels-last arrays and channel counts the model does not
/// take are told apart.
#[test]
fn images_of_several_channels_load_channels_first() {
    let dir = tempfile::tempdir().unwrap();
    let (ti, tl) = channel_sample(6, [3, 2, 4]);
    let (ei, el) = channel_sample(2, [3, 2, 4]);
    write(dir.path(), "train-images-idx4-ubyte.gz", &gz(&ti));
    write(dir.path(), "train-labels-idx1-ubyte", &tl);
    write(dir.path(), "t10k-images-idx3-ubyte", &ei);
    write(dir.path(), "t10k-labels-idx1-ubyte", &el);
    let source = DataSource::resolve(dir.path().to_str().unwrap()).unwrap();
    assert!(source.train_images.ends_with("train-images-idx4-ubyte.gz"));
    let splits = source.load(10).unwrap();
    let train = &splits.train;
    assert_eq!((train.n, train.image_shape()), (6, [3, 2, 4]));
    assert_eq!(splits.test.image_shape(), [3, 2, 4]);
    // Image 1's second channel starts 8 bytes into it: (1 * 7 + 8) / 255.
    assert_eq!(train.images[24 + 8], 15.0 / 255.0);
    assert_eq!(train.fit_input([3, 2, 4], false).unwrap(), None);
    assert_eq!(train.fit_input([3, 4, 4], true).unwrap(), Some((4, 4)));
    // A channels-last array: [N, H, W, C] = [N, 2, 4, 3] read as [C, H, W] = [2, 4, 3].
    let e = cnnc::train::data::fit_input([2, 4, 3], [3, 2, 4], false).unwrap_err();
    let help = e.help().unwrap();
    assert!(
        help.contains("channels come last") && help.contains("x.transpose(0, 3, 1, 2)"),
        "{help}"
    );
    // RGB channels last for a grayscale model: the transpose, then the model's channels.
    let help = cnnc::train::data::channels_last_help([28, 28, 3], [1, 28, 28]).unwrap();
    assert!(
        help.contains("[N, 28, 28, 3]") && help.ends_with("declare its input as [3, 28, 28]"),
        "{help}"
    );
    assert_eq!(
        cnnc::train::data::channels_last_help([1, 28, 3], [1, 28, 28]),
        None
    );
    // Grayscale channels last, [N, H, W, 1], is the bytes of [N, 1, H, W]: it loads so.
    let gray = tempfile::tempdir().unwrap();
    let (gi, gl) = channel_sample(3, [5, 6, 1]);
    write(gray.path(), "train-images-idx4-ubyte", &gi);
    write(gray.path(), "train-labels-idx1-ubyte", &gl);
    write(gray.path(), "t10k-images-idx4-ubyte", &gi);
    write(gray.path(), "t10k-labels-idx1-ubyte", &gl);
    let splits = DataSource::resolve(gray.path().to_str().unwrap())
        .unwrap()
        .load(10)
        .unwrap();
    assert_eq!(splits.train.image_shape(), [1, 5, 6]);
    assert_eq!(splits.train.fit_input([1, 5, 6], false).unwrap(), None);
    // A grayscale test split beside a 3-channel train split.
    let (gi, gl) = sample(2, 2, 4);
    write(dir.path(), "t10k-images-idx3-ubyte", &gi);
    write(dir.path(), "t10k-labels-idx1-ubyte", &gl);
    let e = DataSource::resolve(dir.path().to_str().unwrap())
        .unwrap()
        .load(10)
        .unwrap_err();
    assert!(matches!(e, DataError::SplitSizes { .. }), "{e}");
    assert!(
        e.to_string().contains("are 2×4 but the train images"),
        "{e}"
    );
    assert!(e.to_string().ends_with("are 3×2×4"), "{e}");
    // A folder where the 4-dimensional file would be is said to be one.
    let folder = tempfile::tempdir().unwrap();
    std::fs::create_dir(folder.path().join("train-images-idx4-ubyte")).unwrap();
    let e = DataSource::resolve(folder.path().to_str().unwrap()).unwrap_err();
    assert!(
        e.to_string()
            .contains("train-images-idx4-ubyte: it is a folder; data files must be regular files"),
        "{e}"
    );
    // A file of another rank is named by its magic, both kinds of images in the help.
    let bad = write(dir.path(), "five.idx", &idx(0x0805, &[1, 1, 1, 1, 1], &[0]));
    let e = Dataset::from_idx_files(&bad, &source.train_labels, 10).unwrap_err();
    assert!(
        matches!(e, DataError::BadMagic { found: 0x0805, .. }),
        "{e}"
    );
    assert!(e.help().unwrap().contains("0x00000804 ([N, C, H, W])"));
}

/// A data file this user cannot read is said in words, with what to do, and is the user's
/// to fix (exit 2), unlike a damaged one (exit 3).
#[test]
fn an_unreadable_data_file_is_said_in_words() {
    let denied = DataError::Io {
        path: "d/train-images-idx3-ubyte".into(),
        source: std::io::Error::from(std::io::ErrorKind::PermissionDenied),
    };
    assert_eq!(
        denied.to_string(),
        "d/train-images-idx3-ubyte: permission denied"
    );
    assert!(denied.is_user_input());
    assert!(denied.help().unwrap().contains("chmod a+r"), "{denied:?}");
    let damaged = DataError::Gzip {
        path: "d/train-images-idx3-ubyte.gz".into(),
        source: std::io::Error::other("corrupt deflate stream"),
    };
    assert!(!damaged.is_user_input());
}

/// A checkpoint whose name is as long as the file system takes is written: its temporary
/// file has a short name of its own, not one made longer from the target's. A write that
/// fails for a name too long is helped with a shorter name, not with freeing disk space.
#[test]
fn a_checkpoint_of_the_longest_name_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let max = cnnc::fsutil::name_max(dir.path());
    let name = format!("{}.ckpt.safetensors", "e".repeat(max - 17));
    assert_eq!(name.len(), max);
    let path = dir.path().join(&name);
    let lenet = checked(LENET);
    let ckpt = checkpoint_of(&lenet);
    ckpt.save(&path).unwrap();
    assert_eq!(Checkpoint::load(&path).unwrap(), ckpt);
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);

    let too_long = dir.path().join(format!("{name}x"));
    let error = ckpt.save(&too_long).unwrap_err();
    assert!(matches!(&error, CheckpointError::Io { .. }), "{error}");
    let e = cnnc::train::TrainError::CheckpointWrite {
        error,
        epochs_done: 1,
        steps_done: 10,
    };
    let help = e.help().unwrap();
    assert!(help.contains("shorter"), "{e}: {help}");
    assert!(!help.contains("free space"), "{e}: {help}");
    // A full disk is still told to free space.
    let full = cnnc::train::TrainError::CheckpointWrite {
        error: CheckpointError::Io {
            path: path.clone(),
            source: std::io::Error::from(std::io::ErrorKind::StorageFull),
        },
        epochs_done: 1,
        steps_done: 10,
    };
    assert!(full.help().unwrap().contains("free space"), "{full:?}");
}

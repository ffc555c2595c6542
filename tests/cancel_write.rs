//! A Ctrl-C (`fsutil::CANCEL`) that comes after the last write call of an atomic write still
//! stops it before the rename. Alone in its own test binary: the flag is process-wide, and
//! would stop the writes of tests running beside it (and the tests here take turns).

use std::io::Write;
use std::sync::atomic::Ordering;
use std::sync::Mutex;

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

#[test]
fn a_cancel_before_the_rename_leaves_the_target_as_it_was() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("m.onnx");
    std::fs::write(&p, b"old").unwrap();
    let r = cnnc::fsutil::write_atomic_with(&p, |out| {
        out.write_all(&[7u8; 1 << 20])?;
        // Ctrl-C after the last write call.
        cnnc::fsutil::CANCEL.store(true, Ordering::SeqCst);
        Ok(())
    });
    cnnc::fsutil::CANCEL.store(false, Ordering::SeqCst);
    assert!(r.is_err());
    assert_eq!(std::fs::read(&p).unwrap(), b"old");
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        1,
        "no temporary file"
    );
}

/// A model and its external data file, staged together, are replaced together: a Ctrl-C
/// after both were written leaves both old files (it once replaced the data file and kept
/// the old model, which then read the new data at the wrong offsets); without one, both
/// new files are in place.
#[test]
fn a_model_and_its_data_file_are_replaced_together_or_not_at_all() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("m.onnx");
    let data = dir.path().join("m.onnx.data");
    std::fs::write(&model, b"old model").unwrap();
    std::fs::write(&data, b"old data").unwrap();
    let stage = |path: &std::path::Path, bytes: &'static [u8]| {
        cnnc::fsutil::stage_with(path, |out| out.write_all(bytes)).unwrap()
    };
    let staged = [stage(&data, b"new data"), stage(&model, b"new model")];
    cnnc::fsutil::CANCEL.store(true, Ordering::SeqCst);
    let r = cnnc::fsutil::commit(staged);
    cnnc::fsutil::CANCEL.store(false, Ordering::SeqCst);
    assert!(r.is_err());
    assert_eq!(std::fs::read(&model).unwrap(), b"old model");
    assert_eq!(std::fs::read(&data).unwrap(), b"old data");
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        2,
        "no temporary file"
    );

    let staged = [stage(&data, b"new data"), stage(&model, b"new model")];
    cnnc::fsutil::commit(staged).unwrap();
    assert_eq!(std::fs::read(&model).unwrap(), b"new model");
    assert_eq!(std::fs::read(&data).unwrap(), b"new data");
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        2,
        "no temporary file"
    );
}

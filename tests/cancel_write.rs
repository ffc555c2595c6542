//! A Ctrl-C (`fsutil::CANCEL`) that comes after the last write call of an atomic write still
//! stops it before the rename. Alone in its own test binary: the flag is process-wide, and
//! would stop the writes of tests running beside it.

use std::io::Write;
use std::sync::atomic::Ordering;

#[test]
fn a_cancel_before_the_rename_leaves_the_target_as_it_was() {
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

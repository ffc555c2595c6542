//! The quit handler's removal of pending temporary files, in a test binary of its own:
//! `remove_pending_temp` removes every file registered in the process, so beside other
//! tests that write files (in the same process, in parallel) it would remove theirs.

use cnnc::fsutil::{remove_pending_temp, PendingTemp};

#[test]
fn a_pending_temporary_file_is_removed_by_the_quit_handler_until_done() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join(".x.tmp");
    std::fs::write(&p, b"partial").unwrap();
    {
        let _pending = PendingTemp::register(&p);
        remove_pending_temp();
        assert!(!p.exists(), "removed while registered");
    }
    std::fs::write(&p, b"done").unwrap();
    remove_pending_temp();
    assert!(p.exists(), "no longer pending once dropped");
}

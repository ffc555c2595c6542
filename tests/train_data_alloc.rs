//! A lying IDX header must not make the loader allocate what it claims. This file is its own
//! test binary because it installs a global allocator that records the largest request.

use cnnc::train::data::{read_idx, DataError, IDX_IMAGES_MAGIC, IDX_LABELS_MAGIC};
use std::alloc::{GlobalAlloc, Layout, System};
use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};

struct Largest;

static LARGEST: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Largest {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LARGEST.fetch_max(new_size, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Largest = Largest;

fn idx(magic: u32, dims: &[u32], data: &[u8]) -> Vec<u8> {
    let mut out = magic.to_be_bytes().to_vec();
    for d in dims {
        out.extend(d.to_be_bytes());
    }
    out.extend(data);
    out
}

fn gz(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

/// The only test in this binary, so no other test's allocations are counted.
#[test]
fn lying_headers_allocate_nothing_large() {
    let dir = tempfile::tempdir().unwrap();
    // Incompressible bytes: 4 KB of gzip may inflate to 4 MB, so a 4 MB claim passes the
    // ratio bound and is caught only while inflating.
    let mut x = 1u32;
    let noise: Vec<u8> = (0..4000)
        .map(|_| {
            x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (x >> 24) as u8
        })
        .collect();
    let cases = [
        (IDX_IMAGES_MAGIC, vec![u32::MAX, 28, 28], vec![7; 1000]),
        (IDX_LABELS_MAGIC, vec![u32::MAX], vec![7; 1000]),
        (IDX_LABELS_MAGIC, vec![1 << 30], vec![7; 1000]),
        (IDX_IMAGES_MAGIC, vec![60_000, 28, 28], vec![7; 1000]),
        (IDX_LABELS_MAGIC, vec![4_000_000], noise),
    ];
    let files: Vec<_> = cases
        .iter()
        .enumerate()
        .flat_map(|(k, (magic, dims, data))| {
            let raw = idx(*magic, dims, data);
            let zipped = gz(&raw);
            [(format!("{k}.raw"), raw), (format!("{k}.gz"), zipped)]
                .into_iter()
                .map(|(name, bytes)| {
                    let p = dir.path().join(name);
                    std::fs::write(&p, bytes).unwrap();
                    (*magic, p)
                })
                .collect::<Vec<_>>()
        })
        .collect();
    LARGEST.store(0, Ordering::Relaxed);
    for (magic, path) in &files {
        let e = read_idx(path, *magic).unwrap_err();
        assert!(
            matches!(e, DataError::BadHeader { .. }),
            "{}: {e}",
            path.display()
        );
    }
    let largest = LARGEST.load(Ordering::Relaxed);
    // Buffers for reading and inflating are tens of KiB; the claims are 47 MB to 3 GB.
    assert!(largest < 1 << 20, "largest allocation {largest} bytes");
}

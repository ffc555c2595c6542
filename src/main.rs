//! The `cnnc` command line: one subcommand, one small function in `cli/`.
//! Only this binary prints or exits. Exit codes: 0 success, 1 the input has errors
//! (diagnostics), 2 usage or I/O problems, 3 a runtime failure (ONNX Runtime, data).

mod cli;

use clap::Parser;
use std::alloc::{GlobalAlloc, Layout, System};
use std::process::ExitCode;

/// The system's allocator, except that an allocation it refuses, where no caller handles
/// the refusal ([`cnnc::oom`]), ends the process with a message and exit 3, its temporary
/// files removed, where Rust would abort with exit 134.
struct ReportingAllocator;

// SAFETY: every call is passed on to `System` as it came; only a null result is looked at.
unsafe impl GlobalAlloc for ReportingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        refused_unless_handled(unsafe { System.alloc(layout) }, layout.size())
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        refused_unless_handled(unsafe { System.alloc_zeroed(layout) }, layout.size())
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        refused_unless_handled(unsafe { System.realloc(ptr, layout, new_size) }, new_size)
    }
}

#[global_allocator]
static ALLOCATOR: ReportingAllocator = ReportingAllocator;

fn refused_unless_handled(ptr: *mut u8, size: usize) -> *mut u8 {
    if ptr.is_null() && !cnnc::oom::refusal_is_handled() {
        out_of_memory(size);
    }
    ptr
}

/// Says that the system refused `size` bytes and ends the process (exit 3), allocating
/// nothing: the message is put together on the stack and written with write(2).
fn out_of_memory(size: usize) -> ! {
    let mut buf = [0u8; 512];
    let mut len = 0;
    let mut put = |bytes: &[u8]| {
        let n = bytes.len().min(buf.len() - len);
        buf[len..len + n].copy_from_slice(&bytes[..n]);
        len += n;
    };
    put(b"error: out of memory: the system refused ");
    // The size in MiB (or bytes below one), in decimal digits.
    let (amount, unit): (usize, &[u8]) = if size >= 1 << 20 {
        (size.div_ceil(1 << 20), b" MiB")
    } else {
        (size, b" bytes")
    };
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    let mut n = amount;
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    put(&digits[i..]);
    put(unit);
    put(
        b" more\n  help: free memory (other programs, a container's or job's memory limit), \
          or give the command less to hold: a smaller --batch or input, a smaller model\n",
    );
    cnnc::fsutil::remove_pending_temp();
    // SAFETY: write(2) of a buffer we own, then _exit(2), both async-signal-safe.
    unsafe {
        libc::write(2, buf.as_ptr().cast(), len);
        libc::_exit(3)
    }
}

fn main() -> ExitCode {
    let args = match cli::Cli::try_parse() {
        Ok(args) => args,
        Err(e) => return cli::argument_error(e),
    };
    cli::dispatch(args)
}

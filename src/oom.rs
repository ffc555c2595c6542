//! Running out of memory. Where cnnc asks for memory it can do without (a file read whole,
//! a data set, a large buffer), it reserves it through [`try_reserve_exact`] or
//! [`try_reserve`], and the system's refusal is an error its caller reports with what to do.
//! Anywhere else the binary's allocator (main.rs) ends the process with a message, exit 3,
//! and its temporary files removed, where Rust would abort ("memory allocation of N bytes
//! failed", exit 134): [`refusal_is_handled`] tells the two apart.

use std::cell::Cell;
use std::collections::TryReserveError;

thread_local! {
    /// Whether this thread is inside a reservation whose failure is handled.
    static HANDLED: Cell<bool> = const { Cell::new(false) };
}

/// Whether an allocation the system refuses now is one a caller handles (inside
/// [`try_reserve_exact`] or [`try_reserve`] on this thread). Allocates nothing: for an
/// allocator to ask.
pub fn refusal_is_handled() -> bool {
    HANDLED.try_with(Cell::get).unwrap_or(false)
}

/// Runs `f` with refusals handled, restoring the state before it after.
fn handled<R>(f: impl FnOnce() -> R) -> R {
    let before = HANDLED.with(|h| h.replace(true));
    let out = f();
    HANDLED.with(|h| h.set(before));
    out
}

/// `v.try_reserve_exact(n)`, the system's refusal returned as an error.
pub fn try_reserve_exact<T>(v: &mut Vec<T>, n: usize) -> Result<(), TryReserveError> {
    handled(|| v.try_reserve_exact(n))
}

/// `v.try_reserve(n)`, the system's refusal returned as an error.
pub fn try_reserve<T>(v: &mut Vec<T>, n: usize) -> Result<(), TryReserveError> {
    handled(|| v.try_reserve(n))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_is_handled_inside_a_reservation_only() {
        assert!(!refusal_is_handled());
        let mut v: Vec<u8> = Vec::new();
        // Beyond any address space: refused, and returned.
        assert!(try_reserve_exact(&mut v, usize::MAX / 2).is_err());
        assert!(try_reserve(&mut v, 16).is_ok());
        assert!(!refusal_is_handled());
        assert!(handled(refusal_is_handled));
    }
}

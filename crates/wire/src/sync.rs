//! Locks that survive a panicking holder: the state behind them stays usable (every
//! update under our locks leaves it consistent), so a poisoned lock is taken as is.

use std::sync::{Mutex, MutexGuard};

/// Locks `m`, ignoring poison.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

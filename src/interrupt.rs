//! Graceful interrupts: the first SIGINT or SIGTERM only raises a flag that long loops poll at a
//! safe point (training writes a checkpoint at the current step, a reconstruction study
//! finishes the batch in flight and writes the metrics of what is done), then the command
//! exits with status [`EXIT_CODE`]; a second signal ends the process at once with the same
//! status (`signal_hook::flag::register_conditional_shutdown`).
//!
//! Nothing is installed by the library on its own: the binary calls [`install`] at start-up,
//! so programs that embed the library keep their own signal handling.
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::sync::OnceLock;

/// Exit status of a command stopped by an interrupt (128 + SIGINT, as shells report it).
pub const EXIT_CODE: i32 = 130;

fn flag() -> &'static Arc<AtomicBool> {
    static FLAG: OnceLock<Arc<AtomicBool>> = OnceLock::new();
    FLAG.get_or_init(|| Arc::new(AtomicBool::new(false)))
}

/// Installs the handlers of SIGINT and SIGTERM (idempotent within a process: a second call
/// adds nothing).
pub fn install() -> std::io::Result<()> {
    static INSTALLED: OnceLock<()> = OnceLock::new();
    if INSTALLED.get().is_some() {
        return Ok(());
    }
    use signal_hook::consts::{SIGINT, SIGTERM};
    for sig in [SIGINT, SIGTERM] {
        // Registered first, so it sees the flag before the second handler sets it: the first
        // signal only sets the flag, a later one exits.
        signal_hook::flag::register_conditional_shutdown(sig, EXIT_CODE, flag().clone())?;
        signal_hook::flag::register(sig, flag().clone())?;
    }
    let _ = INSTALLED.set(());
    Ok(())
}

/// Whether an interrupt was received (polled by long loops at safe points).
pub fn requested() -> bool {
    flag().load(Ordering::SeqCst)
}

/// Raises the flag as a signal would (for tests and for embedding programs).
pub fn request() {
    flag().store(true, Ordering::SeqCst);
}

/// Lowers the flag again (for tests).
pub fn clear() {
    flag().store(false, Ordering::SeqCst);
}

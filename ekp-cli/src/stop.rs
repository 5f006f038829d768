//! Stopping cleanly on SIGINT (Ctrl-C), SIGTERM and SIGHUP.
//!
//! Commands that run models ([`install`] is called by `run` and `forward`)
//! do not die on these signals: the signal is noted, running members'
//! process groups are stopped (SIGTERM, a grace period, then SIGKILL), no
//! outcome is recorded for them (they are run again on resume), the step
//! in progress ends at its checkpoint, and the command exits with
//! 128 + the signal's number, saying how to continue. A second signal of
//! the same kind ends ekp at once.

use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};

use crate::error::Error;

static STOP: OnceLock<Arc<AtomicUsize>> = OnceLock::new();

/// Handle SIGINT, SIGTERM and SIGHUP from now on (once per process).
pub fn install() -> Result<(), Error> {
    if STOP.get().is_some() {
        return Ok(());
    }
    let flag = Arc::new(AtomicUsize::new(0));
    let armed = Arc::new(AtomicBool::new(false));
    for sig in [SIGINT, SIGTERM, SIGHUP] {
        // In this order: the first signal does not end the process (not yet
        // armed), then arms it, then records which signal came; a second
        // signal ends the process at once.
        signal_hook::flag::register_conditional_shutdown(sig, 128 + sig, Arc::clone(&armed))
            .and_then(|_| signal_hook::flag::register(sig, Arc::clone(&armed)))
            .and_then(|_| signal_hook::flag::register_usize(sig, Arc::clone(&flag), sig as usize))
            .map_err(|e| anyhow::anyhow!("cannot handle signal {sig}: {e}"))?;
    }
    let _ = STOP.set(flag);
    Ok(())
}

/// The signal that asked ekp to stop, if any.
pub fn requested() -> Option<i32> {
    let v = STOP.get()?.load(Ordering::SeqCst);
    (v != 0).then(|| i32::try_from(v).unwrap_or(SIGTERM))
}

/// The name of a stopping signal.
pub fn name(signal: i32) -> &'static str {
    match signal {
        SIGINT => "SIGINT (Ctrl-C)",
        SIGTERM => "SIGTERM",
        SIGHUP => "SIGHUP",
        _ => "a signal",
    }
}

/// The error a command returns when it stopped for `signal`, with `hint`
/// saying how to continue.
pub fn interrupted(signal: i32, hint: String) -> Error {
    Error::Interrupted {
        signal,
        name: name(signal),
        hint,
    }
}

//! Telling systemd how the server is doing (`Type=notify`, see
//! `contrib/porter.service`): `READY=1` once the listener is bound (so that
//! units ordered after Porter start when it accepts), `RELOADING=1` then
//! `READY=1` around a SIGHUP, and `STOPPING=1` at shutdown.
//!
//! Without `NOTIFY_SOCKET` (not started by systemd) each call does nothing.
//! A failure to notify is logged, never fatal: the server serves either way.

use sd_notify::NotifyState;

/// The listener is bound: `READY=1`. Also the end of a reload.
pub fn ready() {
    notify(&[NotifyState::Ready], "ready");
}

/// A reload starts: `RELOADING=1`, with the monotonic time systemd 253 and
/// later require beside it.
pub fn reloading() {
    match NotifyState::monotonic_usec_now() {
        Ok(now) => notify(&[NotifyState::Reloading, now], "reloading"),
        Err(_) => notify(&[NotifyState::Reloading], "reloading"),
    }
}

/// Shutdown starts: `STOPPING=1`.
pub fn stopping() {
    notify(&[NotifyState::Stopping], "stopping");
}

fn notify(state: &[NotifyState], what: &str) {
    if let Err(err) = sd_notify::notify(state) {
        tracing::warn!(state = what, cause = %err, "cannot notify systemd");
    }
}

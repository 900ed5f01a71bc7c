//! `porter kick`: remove someone from the chat room of a running server,
//! now, without revoking their session (they may come back; to keep them
//! out, `porter sessions revoke` or `porter users remove`).
//!
//! The kick is recorded in the server's database; every server instance on
//! that database ends the person's live connections within about a second
//! (`error{code: revoked}` with the reason, then `bye`).

use clap::Args;

use crate::control::ControlArgs;
use crate::store::{self, DbArgs};

/// Longest reason accepted: it travels in an `error` frame and is read by a
/// person.
const MAX_REASON_CHARS: usize = 200;

/// Options of `porter kick`.
#[derive(Debug, Args)]
pub struct KickArgs {
    #[command(flatten)]
    db: DbArgs,

    #[command(flatten)]
    control: ControlArgs,

    /// The user name (`--auth password`) or chat name (`--auth ip`)
    user: String,

    /// Why, shown to the person removed
    #[arg(long, value_name = "TEXT")]
    reason: Option<String>,
}

/// Runs `porter kick`.
///
/// # Errors
/// A database that cannot be opened or written; a reason that is too long
/// or holds control characters.
pub fn run(args: KickArgs) -> anyhow::Result<()> {
    if let Some(reason) = &args.reason {
        if reason.chars().count() > MAX_REASON_CHARS {
            anyhow::bail!("--reason is limited to {MAX_REASON_CHARS} characters");
        }
        if reason.chars().any(char::is_control) {
            anyhow::bail!("--reason may not contain control characters");
        }
    }
    let (user, reason) = (args.user.clone(), args.reason.clone());
    store::with_store(&args.db.db, |s| async move {
        Ok(s.kick(&user, reason.as_deref(), store::now()).await?)
    })?;
    args.control.nudge();
    println!(
        "kicked {}: their live connections end within 2 seconds",
        args.user.escape_debug()
    );
    Ok(())
}
